/*
 * schedule.h - the pure parts of the every task: interval and cron parsing,
 * the next firing time of a cron schedule in local time, and ISO-8601 local
 * time stamps. No SDK, so they are unit-tested on their own
 * (tests/unit/test_schedule.c).
 */
#ifndef FLOWBUS_TASKS_SCHEDULE_H
#define FLOWBUS_TASKS_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/*
 * Parses an interval: a decimal number followed by "ms", "s", "m", "h" or
 * nothing (seconds), e.g. "500ms", "5s", "1.5m", "2h", "10". Blanks around
 * it are allowed. Must be at least 1 ms and at most 366 days. Returns 0 and
 * *seconds, or -1 with a one-line reason in err.
 */
int schedule__parse_interval(const char *text, double *seconds, char *err, size_t errlen);

/*
 * A cron schedule: bit i of a field is set if value i matches. Day of week
 * 0 is Sunday (7 is accepted for Sunday too).
 */
struct cron {
    uint64_t minute; /* 0-59 */
    uint32_t hour;   /* 0-23 */
    uint32_t mday;   /* 1-31 */
    uint16_t month;  /* 1-12 */
    uint8_t wday;    /* 0-6 */
    int mday_star;   /* the day-of-month field was "*" (or "*" with a step) */
    int wday_star;
};

/*
 * Parses the five standard fields "minute hour day-of-month month
 * day-of-week", each a "*", a number, a range "a-b", a step "*\/n" or
 * "a-b/n" or "a/n" (from a to the end), or a comma list of those. As in
 * Vixie cron, when both day fields are restricted a day matches if either
 * does. Returns 0, or -1 with a reason naming the field in err.
 */
int schedule__parse_cron(const char *text, struct cron *out, char *err, size_t errlen);

/*
 * The first time strictly after `after` (whole minutes, local time per TZ)
 * that matches, or (time_t)-1 if none within the next 5 years (e.g.
 * "0 0 30 2 *"). A local time skipped by a DST change is moved forward by
 * the change (as mktime does); a repeated one fires once.
 */
time_t schedule__cron_next(const struct cron *cron, time_t after);

/*
 * Formats t (a CLOCK_REALTIME instant) as local ISO-8601 with milliseconds
 * and the UTC offset, e.g. "2026-11-26T19:12:00.250+01:00". Returns 0, or -1
 * if buf is too small (32 bytes is enough).
 */
int schedule__iso8601(const struct timespec *t, char *buf, size_t len);

#endif
