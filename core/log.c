/*
 * log.c - the coordinator's one logging function (see log.h).
 *
 * The SDK may call log__sdk from Paho's thread, so each message is formatted
 * into a local buffer first and written with a single fputs under the stdio
 * lock, which keeps lines whole.
 */
#include "log.h"
#include "mask.h"

#include <stdarg.h>
#include <stdio.h>

static enum fb_log_level threshold = FB_LOG_INFO;

void log__set_level(enum fb_log_level level)
{
    threshold = level;
}

static const char *level_prefix(enum fb_log_level level)
{
    switch (level) {
    case FB_LOG_DEBUG:
        return "debug: ";
    case FB_LOG_WARN:
        return "warning: ";
    case FB_LOG_ERROR:
        return "error: ";
    default:
        return "";
    }
}

void log_printf(enum fb_log_level level, const char *fmt, ...)
{
    char msg[2048];
    char line[2100];
    va_list ap;

    if (level < threshold)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    mask__string(msg);
    snprintf(line, sizeof line, "flowbus: %s%s\n", level_prefix(level), msg);
    fputs(line, stderr);
}

void log__sdk(void *ctx, enum fb_log_level level, const char *msg)
{
    (void)ctx;
    log_printf(level, "%s", msg);
}
