/*
 * err.c - error texts, the version string and the small helpers every other
 * SDK file needs (clocks, error buffers, the log callback, string copies).
 *
 * They live together because each is a few lines and none has state.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#ifndef FLOWBUS_VERSION
#define FLOWBUS_VERSION "0.0.0"
#endif

const char *fb_strerror(enum fb_err err)
{
    switch (err) {
    case FB_OK:
        return "success";
    case FB_ERR_INVALID:
        return "invalid argument or value";
    case FB_ERR_NOMEM:
        return "out of memory";
    case FB_ERR_ENV:
        return "missing or malformed FLOWBUS_* environment variable";
    case FB_ERR_CONNECT:
        return "could not connect to the broker";
    case FB_ERR_TIMEOUT:
        return "timed out";
    case FB_ERR_PUBLISH:
        return "publish refused or not confirmed";
    case FB_ERR_SUBSCRIBE:
        return "subscription refused";
    case FB_ERR_STOPPED:
        return "the run asked the task to stop";
    case FB_ERR_NOT_FOUND:
        return "no such input, output or param";
    case FB_ERR_TOO_LARGE:
        return "value too large";
    case FB_ERR_LOST:
        return "connection to the broker lost";
    case FB_ERR_SYSTEM:
        return "operating-system error";
    case FB_ERR_DENIED:
        return "permission denied";
    }
    return "unknown error";
}

const char *fb_version(void)
{
    return FLOWBUS_VERSION;
}

/* The one clock of flowbus: the SDK, the coordinator and the plugins all read these. */
double fb_clock_mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double fb_clock_wall(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    /* Whole microseconds, so the JSON shows at most six decimals. */
    return (double)ts.tv_sec + (double)(ts.tv_nsec / 1000) / 1e6;
}

void err__set(char *errbuf, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (errbuf == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

void log__emit(fb_log_fn log, void *ctx, enum fb_log_level level, const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    if (log == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log(ctx, level, buf);
}

char *str__dup(const char *s)
{
    char *copy;
    size_t n;

    if (s == NULL)
        return NULL;
    n = strlen(s) + 1;
    copy = malloc(n);
    if (copy != NULL)
        memcpy(copy, s, n);
    return copy;
}
