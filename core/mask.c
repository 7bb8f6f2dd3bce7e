/*
 * mask.c - the process's secrets and masking them (see mask.h).
 *
 * The list is small (a few dozen secrets, one per task at most, each with
 * its JSON forms) and kept sorted longest first; masking is a memmem per
 * secret over the line.
 */
#define _GNU_SOURCE
#include "mask.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char **secrets;
static size_t n_secrets, cap_secrets;

static int add_one(const char *secret);

/*
 * A secret is also masked as JSON writes it, since tasks log JSON: with
 * jansson's escapes (a '"', '\\' or control character) and with every
 * non-ASCII character as \uXXXX, as Python's json.dumps writes by default
 * (lower-case hex there, upper-case in jansson). An escaped backslash
 * before a 'u' would be lowered too: one more harmless form.
 * The quotes around the string are left out.
 */
static int add_json_forms(const char *secret)
{
    static const size_t flags[] = {JSON_ENCODE_ANY, JSON_ENCODE_ANY | JSON_ENSURE_ASCII};
    json_t *str = json_string(secret);
    int ok = 1;

    /* Not UTF-8: no JSON encoder writes it, so there is no other form. */
    if (!str)
        return 1;
    for (size_t i = 0; i < sizeof flags / sizeof *flags && ok; i++) {
        char *text = json_dumps(str, flags[i]);
        size_t n = text ? strlen(text) : 0;
        if (!text) {
            ok = 0;
            break;
        }
        if (n >= 2) {
            text[n - 1] = 0;
            ok = add_one(text + 1);
            /* jansson writes \u00E9, Python \u00e9: both. */
            for (char *u = strstr(text + 1, "\\u"); ok && u; u = strstr(u + 2, "\\u"))
                for (size_t k = 2; k < 6 && u[k]; k++)
                    if (u[k] >= 'A' && u[k] <= 'F')
                        u[k] = (char)(u[k] - 'A' + 'a');
            if (ok)
                ok = add_one(text + 1);
        }
        free(text);
    }
    json_decref(str);
    return ok;
}

int mask__add(const char *secret)
{
    return add_one(secret) && (!secret || add_json_forms(secret));
}

static int add_one(const char *secret)
{
    size_t len = secret ? strlen(secret) : 0;
    size_t at;
    char *copy;
    int ok = 1;

    if (len < MASK_MIN)
        return 1;
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < n_secrets; i++)
        if (strcmp(secrets[i], secret) == 0)
            goto out;
    if (n_secrets == cap_secrets) {
        size_t cap = cap_secrets ? cap_secrets * 2 : 16;
        char **grown = realloc(secrets, cap * sizeof *grown);
        if (!grown) {
            ok = 0;
            goto out;
        }
        secrets = grown;
        cap_secrets = cap;
    }
    copy = strdup(secret);
    if (!copy) {
        ok = 0;
        goto out;
    }
    /* Longest first: the insertion point is after every longer or equal one. */
    for (at = 0; at < n_secrets && strlen(secrets[at]) >= len; at++)
        ;
    memmove(secrets + at + 1, secrets + at, (n_secrets - at) * sizeof *secrets);
    secrets[at] = copy;
    n_secrets++;
out:
    pthread_mutex_unlock(&mu);
    return ok;
}

void mask__add_environment(void)
{
    mask__add(getenv("FLOWBUS_PASSWORD"));
    mask__add(getenv("AUTH_TOKEN"));
}

size_t mask__apply(char *buf, size_t len)
{
    static const char stars[] = "***";

    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < n_secrets; i++) {
        size_t slen = strlen(secrets[i]);
        char *hit;

        while ((hit = memmem(buf, len, secrets[i], slen)) != NULL) {
            size_t tail = len - (size_t)(hit - buf) - slen;
            memcpy(hit, stars, sizeof stars - 1);
            memmove(hit + sizeof stars - 1, hit + slen, tail);
            len -= slen - (sizeof stars - 1);
        }
    }
    pthread_mutex_unlock(&mu);
    buf[len] = '\0';
    return len;
}

void mask__string(char *s)
{
    if (s)
        (void)mask__apply(s, strlen(s));
}

void mask__clear(void)
{
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < n_secrets; i++) {
        explicit_bzero(secrets[i], strlen(secrets[i]));
        free(secrets[i]);
    }
    free(secrets);
    secrets = NULL;
    n_secrets = cap_secrets = 0;
    pthread_mutex_unlock(&mu);
}
