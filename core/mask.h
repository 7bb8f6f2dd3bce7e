/*
 * mask.h - the secrets the flowbus process knows, and masking them in
 * everything it prints or publishes.
 *
 * One list per process: the broker password it connects with, AUTH_TOKEN,
 * the workflow's `secret: true` values and the per-task passwords it
 * generated. Every line flowbus prints (log_printf), every task line it
 * forwards to a log topic (run/output.c), every message it receives before
 * the tracker, the display or --json see it (run/loop.c), and every
 * message a client command (`flowbus logs`, status) reads (view_read.c,
 * cli/session.c) goes through mask__apply, which replaces each
 * secret by "***", as written and as JSON writes it (escaped; with \uXXXX for
 * non-ASCII), since tasks log JSON. Values shorter than MASK_MIN characters are not
 * secrets worth masking (they would mangle ordinary text and protect
 * nothing), as in the SDK (sdk/src/task/task_log.c).
 *
 * Thread-safe: Paho's thread logs through log_printf while the main
 * thread adds secrets.
 */
#ifndef FLOWBUS_CORE_MASK_H
#define FLOWBUS_CORE_MASK_H

#include <stddef.h>

#define MASK_MIN 4

/* Remembers secret (copied); NULL, short or known values are ignored. 0 if out of memory. */
int mask__add(const char *secret);

/* Adds the process's own: $FLOWBUS_PASSWORD and $AUTH_TOKEN. */
void mask__add_environment(void);

/*
 * Replaces every secret in the len bytes at buf by "***", in place (the
 * text only gets shorter), and writes a NUL after the result. Returns the
 * new length. Longer secrets are masked first, so one that contains another
 * is masked whole.
 */
size_t mask__apply(char *buf, size_t len);

/* mask__apply for a NUL-terminated string. */
void mask__string(char *s);

/* Wipes and forgets every secret. */
void mask__clear(void);

#endif
