/*
 * auth_perms.c - permission sets (fb_permissions), and reading them from the
 * JSON the Attica service answers with and the run's cache stores.
 *
 * A set is sorted and unique, so fb_permissions_has is a binary search. Its
 * names follow one rule (auth_perms__valid_name), whether they come from the
 * service, the cache or the environment. Nothing here quotes a response: the
 * service might echo the token, so a reason names the case and, for JSON that
 * does not parse, only the line and column.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "auth.h"
#include "internal.h"

struct fb_permissions {
    char **names; /* sorted, unique */
    size_t n;
};

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A permission name: printable ASCII without blanks or commas, 1-AUTH_NAME_MAX bytes. */
int auth_perms__valid_name(const char *s, size_t len)
{
    size_t i;

    if (len == 0 || len > AUTH_NAME_MAX)
        return 0;
    for (i = 0; i < len; i++)
        if (s[i] <= ' ' || s[i] > '~' || s[i] == ',')
            return 0;
    return 1;
}

/*
 * Builds a set from the "permissions" value of an answer: an object of
 * booleans (true grants) or an array of names. Returns FB_OK, FB_ERR_NOMEM,
 * or FB_ERR_DENIED with *why saying what is wrong (no response text in it:
 * the service might echo the token).
 */
enum fb_err auth_perms__from_json(json_t *value, fb_permissions **out, const char **why)
{
    fb_permissions *perms = calloc(1, sizeof *perms);
    size_t cap = json_is_object(value) ? json_object_size(value) : json_array_size(value);
    enum fb_err err = FB_OK;
    const char *key;
    json_t *item;
    size_t i, kept;

    *out = NULL;
    if (perms == NULL || (perms->names = calloc(cap + 1, sizeof *perms->names)) == NULL) {
        err = FB_ERR_NOMEM;
        goto out;
    }
    if (json_is_object(value)) {
        json_object_foreach(value, key, item)
        {
            if (!json_is_boolean(item)) {
                *why = "a value in the \"permissions\" object is not true or false";
                err = FB_ERR_DENIED;
                goto out;
            }
            if (!auth_perms__valid_name(key, strlen(key))) {
                *why = "a permission name is empty, too long or has blanks or control characters";
                err = FB_ERR_DENIED;
                goto out;
            }
            if (json_is_true(item) && (perms->names[perms->n++] = str__dup(key)) == NULL) {
                err = FB_ERR_NOMEM;
                goto out;
            }
        }
    } else if (json_is_array(value)) {
        json_array_foreach(value, i, item)
        {
            const char *name = json_string_value(item);

            if (name == NULL) {
                *why = "an item of the \"permissions\" array is not a string";
                err = FB_ERR_DENIED;
                goto out;
            }
            if (!auth_perms__valid_name(name, json_string_length(item)) ||
                strlen(name) != json_string_length(item)) {
                *why = "a permission name is empty, too long or has blanks or control characters";
                err = FB_ERR_DENIED;
                goto out;
            }
            if ((perms->names[perms->n++] = str__dup(name)) == NULL) {
                err = FB_ERR_NOMEM;
                goto out;
            }
        }
    } else {
        *why = "\"permissions\" is neither an object nor an array";
        err = FB_ERR_DENIED;
        goto out;
    }
    qsort(perms->names, perms->n, sizeof *perms->names, compare_names);
    for (i = 0, kept = 0; i < perms->n; i++) {
        if (kept > 0 && strcmp(perms->names[kept - 1], perms->names[i]) == 0)
            free(perms->names[i]);
        else
            perms->names[kept++] = perms->names[i];
    }
    perms->n = kept;
    *out = perms;
    perms = NULL;
out:
    fb_permissions_free(perms);
    return err;
}

/* The set as the JSON array the cache stores. NULL when memory ran out. */
json_t *auth_perms__to_json(const fb_permissions *perms)
{
    json_t *array = json_array();
    size_t i;

    for (i = 0; array != NULL && i < perms->n; i++) {
        if (json_array_append_new(array, json_string(perms->names[i])) != 0) {
            json_decref(array);
            array = NULL;
        }
    }
    return array;
}

int fb_permissions_has(const fb_permissions *perms, const char *name)
{
    if (perms == NULL || name == NULL)
        return 0;
    return bsearch(&name, perms->names, perms->n, sizeof *perms->names, compare_names) != NULL;
}

size_t fb_permissions_count(const fb_permissions *perms)
{
    return perms != NULL ? perms->n : 0;
}

const char *fb_permissions_name(const fb_permissions *perms, size_t i)
{
    return perms != NULL && i < perms->n ? perms->names[i] : NULL;
}

void fb_permissions_free(fb_permissions *perms)
{
    size_t i;

    if (perms == NULL)
        return;
    for (i = 0; i < perms->n; i++)
        free(perms->names[i]);
    free(perms->names);
    free(perms);
}

enum fb_err auth_perms__parse_answer(const char *data, size_t len, const char *host,
                                     fb_permissions **out, char *errbuf, size_t errlen)
{
    json_error_t jerr;
    json_t *root = NULL;
    json_t *value;
    const char *why = NULL;
    enum fb_err err = FB_ERR_DENIED;

    /*
     * A key given twice is refused, not resolved: jansson would keep the last
     * one, another parser the first, so {"can_execute_commands": false,
     * "can_execute_commands": true} would mean what the reader happens to do.
     */
    root = json_loadb(data != NULL ? data : "", len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL && json_error_code(&jerr) == json_error_duplicate_key) {
        err__set(errbuf, errlen,
                 "malformed response from the permission service at %s: a key appears twice "
                 "in one object (line %d, column %d), so its meaning is ambiguous",
                 host, jerr.line, jerr.column);
        goto out;
    }
    if (root == NULL) {
        /* jerr.text quotes the body, which might echo the token: only the position is safe. */
        err__set(errbuf, errlen,
                 "malformed response from the permission service at %s: not JSON (line %d, "
                 "column %d)",
                 host, jerr.line, jerr.column);
        goto out;
    }
    value = json_object_get(root, "permissions");
    if (!json_is_object(root) || value == NULL) {
        err__set(errbuf, errlen,
                 "malformed response from the permission service at %s: no \"permissions\" key "
                 "in a JSON object",
                 host);
        goto out;
    }
    err = auth_perms__from_json(value, out, &why);
    if (err == FB_ERR_DENIED)
        err__set(errbuf, errlen, "malformed response from the permission service at %s: %s", host,
                 why);
    else if (err == FB_ERR_NOMEM)
        err__set(errbuf, errlen, "out of memory");
out:
    json_decref(root);
    return err;
}
