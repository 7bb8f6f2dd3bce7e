/*
 * suggest.c - did-you-mean (see suggest.h).
 *
 * The edit distance is the model's (workflow__distance, core/model/diag.c),
 * so that a hint of `flowbus set` and one of the loader agree on what is
 * close.
 */
#include "suggest.h"
#include "workflow.h"

#include <stdio.h>
#include <string.h>

const char *suggest__closest(const char *word, const char *const *candidates, size_t n, size_t max)
{
    size_t best = (size_t)-1, len = strlen(word);
    const char *found = NULL;

    for (size_t i = 0; i < n; i++) {
        size_t other = strlen(candidates[i]), d;
        /* Lengths that differ by more than max cannot be within max edits;
         * skipping them keeps a check against thousands of names cheap. */
        if (other > len + max || len > other + max)
            continue;
        d = workflow__distance(word, candidates[i]);
        if (d < best) {
            best = d;
            found = candidates[i];
        }
    }
    return best <= max ? found : NULL;
}

void suggest__hint(char *buf, size_t len, const char *word, const char *const *candidates, size_t n)
{
    const char *near = suggest__closest(word, candidates, n, strlen(word) <= 4 ? 1 : 2);
    size_t used;

    if (near) {
        snprintf(buf, len, " (did you mean '%s'?)", near);
        return;
    }
    if (n == 0) {
        snprintf(buf, len, " (it has none)");
        return;
    }
    used = (size_t)snprintf(buf, len, " (it has: ");
    for (size_t i = 0; i < n; i++) {
        if (used >= len)
            break;
        if (i == 10) {
            used += (size_t)snprintf(buf + used, len - used, ", ...");
            break;
        }
        used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "", candidates[i]);
    }
    if (used < len)
        snprintf(buf + used, len - used, ")");
}
