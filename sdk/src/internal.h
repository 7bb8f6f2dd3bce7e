/*
 * internal.h - private helpers shared by the SDK's source files.
 *
 * Nothing here is exported: the library is built with hidden visibility and
 * only the fb_* functions of flowbus.h carry FB_API. The names follow the
 * house rule for internal non-static functions, module__verb.
 */
#ifndef FLOWBUS_INTERNAL_H
#define FLOWBUS_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>

#include "flowbus/flowbus.h"
#include "flowbus/protocol.h"

/*
 * Writes a formatted one-line message into errbuf (if errbuf is not NULL and
 * errlen > 0). Always NUL-terminates; truncates silently.
 */
void err__set(char *errbuf, size_t errlen, const char *fmt, ...) FB_PRINTF(3, 4);

/* Calls log (if not NULL) with a formatted message. Never prints. */
void log__emit(fb_log_fn log, void *ctx, enum fb_log_level level, const char *fmt, ...)
    FB_PRINTF(4, 5);

/* A malloc'ed copy of s, or NULL if s is NULL or memory ran out. */
char *str__dup(const char *s);

/*
 * Publishes and confirms a terminal state written by the SDK itself ("failed";
 * "denied" from auth_require.c) with exit_code (< 0: null) and a one-line error, and
 * marks the task finished (even if the broker did not confirm) so that it
 * can no longer report done.
 */
enum fb_err task__end(fb_task *task, const char *state, int exit_code, const char *error);

/* The task's SDK log callback (may be NULL); its context goes to *ctx. */
fb_log_fn task__log_fn(const fb_task *task, void **ctx);

/*
 * The state-typed form of task__end (task.c): publishes and confirms the
 * terminal state (FB_STATE_FAILED, or FB_STATE_DENIED from auth_require.c) with
 * exit_code (< 0: null) and a one-line error, and marks the task finished
 * the same way. task__end is this with the state's name.
 */
enum fb_err task__finish(fb_task *task, enum fb_state state, int exit_code, const char *error);

/* A rule a name must follow, for names__split: 1 if the len bytes at s are a valid name. */
typedef int (*names__valid_fn)(const char *s, size_t len);

/*
 * names.c: splits the comma-separated list text (NULL is empty) into names:
 * blanks around an item are ignored, empty items skipped, repeats kept once.
 * On FB_OK *names is a malloc'd array of *count malloc'd strings (NULL and 0
 * for an empty list; free it with names__free). FB_ERR_INVALID if valid
 * refuses an item (errbuf, if not NULL, gets "'<item>' is not a valid
 * name"), FB_ERR_NOMEM; on an error *names is NULL and *count 0.
 */
enum fb_err names__split(const char *text, names__valid_fn valid, char ***names, size_t *count,
                         char *errbuf, size_t errlen);

/* Frees what names__split returned (NULL is fine). */
void names__free(char **names, size_t count);

#endif
