/*
 * names.c - the one splitter of comma-separated name lists.
 *
 * The coordinator hands a task its inputs, outputs, secrets, dependencies,
 * triggers and required permissions as comma-separated lists in the
 * environment (docs/protocol.md "Task environment"). Every list is read the
 * same way, here: blanks around an item are ignored, empty items are skipped
 * (so "A,,B" and "A, B," are both A and B), a repeated item is kept once, and
 * every item must pass the caller's rule (fb_name_valid for variables and
 * tasks, the permission rule for permissions).
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum fb_err names__split(const char *text, names__valid_fn valid, char ***out, size_t *count,
                         char *errbuf, size_t errlen)
{
    char **names = NULL;
    size_t n = 0;
    size_t cap = 0;
    size_t i;
    enum fb_err err = FB_OK;
    const char *p;

    *out = NULL;
    *count = 0;
    for (p = text != NULL ? text : ""; *p != '\0';) {
        const char *start;
        const char *end;
        size_t len;
        int dup = 0;

        while (*p == ' ' || *p == '\t')
            p++;
        start = p;
        while (*p != '\0' && *p != ',')
            p++;
        end = p;
        if (*p == ',')
            p++;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        len = (size_t)(end - start);
        if (len == 0)
            continue;
        if (!valid(start, len)) {
            /* %.*s takes an int; an item longer than INT_MAX is shown cut (it is refused anyway).
             */
            err__set(errbuf, errlen, "'%.*s' is not a valid name", len > 65536 ? 65536 : (int)len,
                     start);
            err = FB_ERR_INVALID;
            goto out;
        }
        for (i = 0; i < n; i++)
            if (strlen(names[i]) == len && strncmp(names[i], start, len) == 0)
                dup = 1;
        if (dup)
            continue;
        if (n == cap) {
            char **bigger;

            cap = cap ? cap * 2 : 8;
            bigger = realloc(names, cap * sizeof *names);
            if (bigger == NULL)
                goto nomem;
            names = bigger;
        }
        names[n] = malloc(len + 1);
        if (names[n] == NULL)
            goto nomem;
        memcpy(names[n], start, len);
        names[n][len] = '\0';
        n++;
    }
    *out = names;
    *count = n;
    names = NULL;
    n = 0;
    goto out;
nomem:
    err__set(errbuf, errlen, "out of memory");
    err = FB_ERR_NOMEM;
out:
    names__free(names, n);
    return err;
}

void names__free(char **names, size_t count)
{
    size_t i;

    for (i = 0; i < count; i++)
        free(names[i]);
    free(names);
}
