/*
 * textdiff.h - a unified diff of two texts (`flowbus fmt --diff`): the lines
 * of a longest common subsequence kept, the rest removed and added, in hunks
 * with three lines of context, as `diff -u` writes them.
 */
#ifndef FLOWBUS_CORE_CLI_TEXTDIFF_H
#define FLOWBUS_CORE_CLI_TEXTDIFF_H

#include <stddef.h>
#include <stdio.h>

/*
 * Writes the diff from a (labelled from_label) to b (to_label) on out;
 * nothing when they are equal. Returns 0, or -1 when out of memory. Where the
 * changed middle of the texts is huge (over 4 million line pairs) it is shown
 * as removed and added whole, which is still a correct diff.
 */
int textdiff__unified(const char *a, size_t a_len, const char *b, size_t b_len,
                      const char *from_label, const char *to_label, FILE *out);

#endif
