/*
 * log.h - the coordinator's one logging function.
 *
 * Every message flowbus itself prints (as opposed to task output, which the
 * display module renders) goes through log_printf, so verbosity and the
 * "flowbus: " prefix are decided in one place.
 */
#ifndef FLOWBUS_CORE_LOG_H
#define FLOWBUS_CORE_LOG_H

#include <flowbus/flowbus.h>

/* Messages below this level are dropped. Default FB_LOG_INFO. */
void log__set_level(enum fb_log_level level);

/* Prints "flowbus: [level: ]message\n" on stderr. Thread-safe. */
void log_printf(enum fb_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* An fb_log_fn that forwards SDK diagnostics to log_printf. */
void log__sdk(void *ctx, enum fb_log_level level, const char *msg);

#endif
