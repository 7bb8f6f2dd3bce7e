/*
 * schedule.c - intervals, cron schedules and time stamps for the every task
 * (see schedule.h).
 */
#include "schedule.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INTERVAL (366.0 * 86400.0)

int schedule__parse_interval(const char *text, double *seconds, char *err, size_t errlen)
{
    const char *p = text;
    char *end;
    double value, unit = 1.0;

    if (text == NULL) {
        snprintf(err, errlen, "no interval given");
        return -1;
    }
    while (isspace((unsigned char)*p))
        p++;
    if (!isdigit((unsigned char)*p) && *p != '.')
        goto bad;
    errno = 0;
    value = strtod(p, &end);
    if (errno != 0 || end == p || !isfinite(value))
        goto bad;
    if (strncmp(end, "ms", 2) == 0)
        unit = 0.001, end += 2;
    else if (*end == 's')
        unit = 1.0, end++;
    else if (*end == 'm')
        unit = 60.0, end++;
    else if (*end == 'h')
        unit = 3600.0, end++;
    while (isspace((unsigned char)*end))
        end++;
    if (*end != '\0')
        goto bad;
    value *= unit;
    if (value < 0.001 || value > MAX_INTERVAL) {
        snprintf(err, errlen, "interval '%s' is out of range (1ms to 366 days)", text);
        return -1;
    }
    *seconds = value;
    return 0;
bad:
    snprintf(err, errlen,
             "interval '%s' is not a duration (expected e.g. 500ms, 5s, 1m, 2h or seconds)", text);
    return -1;
}

/* Parses a whole number at *p in [min, max]; advances *p. Returns 0 or -1. */
static int parse_number(const char **p, int min, int max, int *out)
{
    long v = 0;
    int digits = 0;

    while (isdigit((unsigned char)**p) && digits < 4) {
        v = v * 10 + (**p - '0');
        (*p)++;
        digits++;
    }
    if (digits == 0 || isdigit((unsigned char)**p) || v < min || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

/*
 * Parses one field (up to the next blank) into bits, values in [min, max].
 * *star is set if the field is "*" or "*\/n".
 */
static int parse_field(const char **text, int min, int max, uint64_t *bits, int *star)
{
    const char *p = *text;

    *bits = 0;
    *star = 0;
    for (;;) {
        int lo, hi, step = 1, v;

        if (*p == '*') {
            lo = min;
            hi = max;
            p++;
            *star = 1;
        } else {
            if (parse_number(&p, min, max, &lo) != 0)
                return -1;
            hi = lo;
            if (*p == '-') {
                p++;
                if (parse_number(&p, min, max, &hi) != 0 || hi < lo)
                    return -1;
            } else if (*p == '/') {
                hi = max; /* "a/n": from a to the end */
            }
        }
        if (*p == '/') {
            p++;
            if (parse_number(&p, 1, max - min + 1 > 1 ? max - min + 1 : 1, &step) != 0)
                return -1;
        }
        for (v = lo; v <= hi; v += step)
            *bits |= (uint64_t)1 << v;
        if (*p != ',')
            break;
        p++;
        *star = 0; /* "*,5" is a list, not a wildcard for the day rule */
    }
    if (*p != '\0' && !isspace((unsigned char)*p))
        return -1;
    *text = p;
    return 0;
}

int schedule__parse_cron(const char *text, struct cron *out, char *err, size_t errlen)
{
    static const char *const names[] = {"minute", "hour", "day-of-month", "month", "day-of-week"};
    static const int mins[] = {0, 0, 1, 1, 0}, maxs[] = {59, 23, 31, 12, 7};
    uint64_t bits[5];
    int stars[5];
    const char *p = text ? text : "";
    int i;

    memset(out, 0, sizeof *out);
    for (i = 0; i < 5; i++) {
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '\0') {
            snprintf(err, errlen, "cron '%s' has %d fields; expected 5 (minute hour "
                     "day-of-month month day-of-week)", text ? text : "", i);
            return -1;
        }
        if (parse_field(&p, mins[i], maxs[i], &bits[i], &stars[i]) != 0) {
            snprintf(err, errlen, "cron '%s': the %s field is malformed (expected *, N, A-B, "
                     "lists and /steps within %d-%d)", text, names[i], mins[i], maxs[i]);
            return -1;
        }
    }
    while (isspace((unsigned char)*p))
        p++;
    if (*p != '\0') {
        snprintf(err, errlen, "cron '%s' has more than 5 fields", text);
        return -1;
    }
    out->minute = bits[0];
    out->hour = (uint32_t)bits[1];
    out->mday = (uint32_t)bits[2];
    out->month = (uint16_t)bits[3];
    /* 7 is Sunday too. */
    out->wday = (uint8_t)((bits[4] | (bits[4] >> 7)) & 0x7f);
    out->mday_star = stars[2];
    out->wday_star = stars[4];
    return 0;
}

static int day_matches(const struct cron *c, const struct tm *tm)
{
    int mday = (c->mday >> tm->tm_mday) & 1, wday = (c->wday >> tm->tm_wday) & 1;

    if (c->mday_star || c->wday_star)
        return mday && wday;
    return mday || wday;
}

time_t schedule__cron_next(const struct cron *c, time_t after)
{
    struct tm tm;
    time_t t;
    int guard;

    /* Start at the next whole minute. */
    if (localtime_r(&after, &tm) == NULL)
        return (time_t)-1;
    tm.tm_sec = 0;
    tm.tm_min++;
    tm.tm_isdst = -1;
    /* Each step skips at least a minute; 5 years of whole-day skips plus hours and minutes. */
    for (guard = 0; guard < 5 * 366 * (1 + 24 + 60); guard++) {
        t = mktime(&tm);
        if (t == (time_t)-1)
            return t;
        if (!((c->month >> (tm.tm_mon + 1)) & 1)) {
            tm.tm_mon++;
            tm.tm_mday = 1;
            tm.tm_hour = tm.tm_min = 0;
        } else if (!day_matches(c, &tm)) {
            tm.tm_mday++;
            tm.tm_hour = tm.tm_min = 0;
        } else if (!((c->hour >> tm.tm_hour) & 1)) {
            tm.tm_hour++;
            tm.tm_min = 0;
        } else if (!((c->minute >> tm.tm_min) & 1)) {
            tm.tm_min++;
        } else if (t > after) {
            return t;
        } else {
            tm.tm_min++; /* a repeated local time (DST ends) already fired */
        }
        tm.tm_isdst = -1;
    }
    return (time_t)-1;
}

int schedule__iso8601(const struct timespec *t, char *buf, size_t len)
{
    struct tm tm;
    char date[32], zone[16];
    int off;
    int n;

    if (localtime_r(&t->tv_sec, &tm) == NULL)
        return -1;
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    /* UTC offsets stay within a day, so the cast and the two digits are safe. */
    off = (int)(tm.tm_gmtoff % 86400);
    snprintf(zone, sizeof zone, "%c%02d:%02d", off < 0 ? '-' : '+', abs(off) / 3600,
             abs(off) % 3600 / 60);
    n = snprintf(buf, len, "%s.%03ld%s", date, t->tv_nsec / 1000000, zone);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}
