/*
 * suggest.h - did-you-mean: the name closest to a mistyped one.
 *
 * An unknown task, variable or key is answered with the closest known name,
 * so that a typo costs one look. Pure; thread-safe.
 */
#ifndef FLOWBUS_CORE_SUGGEST_H
#define FLOWBUS_CORE_SUGGEST_H

#include <stddef.h>

/*
 * The first of the n candidates closest to word, ignoring case, if it is
 * within max edits (case-insensitive edit distance); else NULL.
 */
const char *suggest__closest(const char *word, const char *const *candidates, size_t n, size_t max);

/*
 * The end of a "no such name" message, into buf (len bytes): " (did you
 * mean 'X'?)" when a candidate is close (one edit for a word of up to four
 * characters, two for a longer one), else " (it has none)" or " (it has: A,
 * B, ...)" with the first ten candidates.
 */
void suggest__hint(char *buf, size_t len, const char *word, const char *const *candidates,
                   size_t n);

#endif
