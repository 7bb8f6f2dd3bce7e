/*
 * diag.h - how the files of the model report problems in a workflow file.
 *
 * The loader and the checks add diagnostics (struct wf_diags, workflow.h)
 * at the position they are about and go on, so that one run reports every
 * problem; workflow__load sorts them into file order before it returns. A
 * message says what was found and what was expected: the helpers here keep a
 * name quoted from the file short and find a did-you-mean.
 */
#ifndef FLOWBUS_CORE_MODEL_DIAG_H
#define FLOWBUS_CORE_MODEL_DIAG_H

#include "workflow.h"

#include <stddef.h>

/*
 * Adds an error (which makes the load fail) or a warning at pos. An error
 * counts even when there is no memory left to describe it.
 */
void diag__error(struct wf_diags *d, struct wf_pos pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void diag__warning(struct wf_diags *d, struct wf_pos pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sorts the diagnostics by position, keeping the discovery order of ties. */
void diag__sort(struct wf_diags *d);

/*
 * Text from the file quoted in a message: s itself when it has at most max
 * bytes, else its start and "..." in buf (max + 1 bytes), cut on a UTF-8
 * character boundary, so that a megabyte-long name is still one short line.
 */
#define NAME_CLIP 80
const char *diag__clip(const char *s, size_t max, char *buf);

/*
 * The len bytes at s, which may hold NULs, quoted for a message into buf
 * (max + 1 bytes, max >= 8): control characters escaped as YAML writes them
 * ("A\nB", "A\0B", "\e[31m"), and, past max bytes, cut and ended with "...".
 * Returns buf.
 */
const char *diag__quote(const char *s, size_t len, size_t max, char *buf);


#endif
