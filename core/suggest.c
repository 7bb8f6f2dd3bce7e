/*
 * suggest.c - did-you-mean (see suggest.h).
 *
 * The one did-you-mean of flowbus: the loader's hints (core/model) and the
 * command line's (`flowbus set`, `status`, ...) both come from here, so they
 * agree on what is close.
 */
#include "suggest.h"

#include <ctype.h>
#include <stdint.h>

#include <stdio.h>
#include <string.h>

/*
 * Edit distance between a and b, ignoring case; strings longer than 64
 * characters are never close (SIZE_MAX).
 */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t row[65];

    if (la > 64 || lb > 64)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best =
                diag + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

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
        d = distance(word, candidates[i]);
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
