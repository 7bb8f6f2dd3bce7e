/*
 * test_schedule.c - unit tests of the every task's schedule parts
 * (schedule.h): intervals, cron parsing, next firing times in local time
 * (with TZ set here, including a DST change), ISO-8601 stamps.
 */
#define _GNU_SOURCE

#include "check.h"
#include "schedule.h"

#include <stdlib.h>
#include <time.h>

static char err[256];

static void expect_interval(const char *text, double want)
{
    double got = -1;

    CHECK(schedule__parse_interval(text, &got, err, sizeof err) == 0);
    CHECK(got > want - 1e-9 && got < want + 1e-9);
    if (!(got > want - 1e-9 && got < want + 1e-9))
        fprintf(stderr, "  interval \"%s\": got %g, want %g (%s)\n", text, got, want, err);
}

static void expect_bad_interval(const char *text)
{
    double got;

    err[0] = '\0';
    CHECK(schedule__parse_interval(text, &got, err, sizeof err) == -1);
    CHECK(err[0] != '\0');
}

static void test_intervals(void)
{
    expect_interval("500ms", 0.5);
    expect_interval("5s", 5);
    expect_interval("1m", 60);
    expect_interval("2h", 7200);
    expect_interval("10", 10);
    expect_interval("1.5", 1.5);
    expect_interval(" 1.5m ", 90);
    expect_interval("1ms", 0.001);
    expect_bad_interval("");
    expect_bad_interval("s");
    expect_bad_interval("5x");
    expect_bad_interval("-5s");
    expect_bad_interval("0");
    expect_bad_interval("0.5ms");
    expect_bad_interval("5 s s");
    expect_bad_interval("367d");
    expect_bad_interval("nan");
    expect_bad_interval("inf");
    expect_bad_interval("9000h");
}

/* A local time in the current TZ. */
static time_t local(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {0};

    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_isdst = -1;
    return mktime(&tm);
}

static void expect_next(const char *expr, time_t after, time_t want)
{
    struct cron c;
    time_t got;

    CHECK(schedule__parse_cron(expr, &c, err, sizeof err) == 0);
    got = schedule__cron_next(&c, after);
    CHECK(got == want);
    if (got != want) {
        char a[64], b[64];
        struct tm tm;

        strftime(a, sizeof a, "%F %T %Z", localtime_r(&got, &tm));
        strftime(b, sizeof b, "%F %T %Z", localtime_r(&want, &tm));
        fprintf(stderr, "  cron \"%s\": got %s, want %s\n", expr, a, b);
    }
}

static void expect_bad_cron(const char *expr)
{
    struct cron c;

    err[0] = '\0';
    CHECK(schedule__parse_cron(expr, &c, err, sizeof err) == -1);
    CHECK(err[0] != '\0');
}

static void test_cron_parse(void)
{
    struct cron c;

    CHECK(schedule__parse_cron("*/15 0-6/2 1,15 * 1-5", &c, err, sizeof err) == 0);
    CHECK(c.minute == ((1ULL << 0) | (1ULL << 15) | (1ULL << 30) | (1ULL << 45)));
    CHECK(c.hour == ((1u << 0) | (1u << 2) | (1u << 4) | (1u << 6)));
    CHECK(c.mday == ((1u << 1) | (1u << 15)));
    CHECK(c.month == 0x1ffe);
    CHECK(c.wday == 0x3e);
    CHECK(!c.mday_star && !c.wday_star);
    CHECK(schedule__parse_cron("0 0 * * 7", &c, err, sizeof err) == 0);
    CHECK(c.wday == 1); /* 7 is Sunday */
    CHECK(schedule__parse_cron("5/20 * * * *", &c, err, sizeof err) == 0);
    CHECK(c.minute == ((1ULL << 5) | (1ULL << 25) | (1ULL << 45)));
    expect_bad_cron("");
    expect_bad_cron("* * * *");
    expect_bad_cron("* * * * * *");
    expect_bad_cron("60 * * * *");
    expect_bad_cron("* 24 * * *");
    expect_bad_cron("* * 0 * *");
    expect_bad_cron("* * 32 * *");
    expect_bad_cron("* * * 13 *");
    expect_bad_cron("* * * * 8");
    expect_bad_cron("5-1 * * * *");
    expect_bad_cron("*/0 * * * *");
    expect_bad_cron("a * * * *");
    expect_bad_cron("1,,2 * * * *");
    expect_bad_cron("1- * * * *");
    expect_bad_cron("** * * * *");
}

static void test_cron_next(void)
{
    struct cron c;

    setenv("TZ", "UTC", 1);
    tzset();
    expect_next("* * * * *", local(2026, 3, 1, 10, 0) + 30, local(2026, 3, 1, 10, 1));
    expect_next("* * * * *", local(2026, 3, 1, 10, 0), local(2026, 3, 1, 10, 1));
    expect_next("*/5 * * * *", local(2026, 3, 1, 10, 3), local(2026, 3, 1, 10, 5));
    expect_next("*/5 * * * *", local(2026, 3, 1, 10, 55), local(2026, 3, 1, 11, 0));
    expect_next("30 4 * * *", local(2026, 3, 1, 10, 0), local(2026, 3, 2, 4, 30));
    expect_next("0 0 1 1 *", local(2026, 3, 1, 10, 0), local(2027, 1, 1, 0, 0));
    expect_next("0 12 29 2 *", local(2026, 3, 1, 10, 0), local(2028, 2, 29, 12, 0));
    expect_next("59 23 31 12 *", local(2026, 12, 31, 23, 58), local(2026, 12, 31, 23, 59));
    /* 2026-03-01 is a Sunday: weekdays only, from Saturday evening. */
    expect_next("0 9 * * 1-5", local(2026, 2, 28, 20, 0), local(2026, 3, 2, 9, 0));
    /* Both day fields restricted: either matches (the 15th, or a Friday). */
    expect_next("0 0 15 * 5", local(2026, 3, 1, 10, 0), local(2026, 3, 6, 0, 0));
    expect_next("0 0 15 * 5", local(2026, 3, 14, 1, 0), local(2026, 3, 15, 0, 0));
    /* Day-of-month restricted, weekday "*": only the day of month. */
    expect_next("0 0 15 * *", local(2026, 3, 1, 10, 0), local(2026, 3, 15, 0, 0));
    /* Never: February 30th. */
    CHECK(schedule__parse_cron("0 0 30 2 *", &c, err, sizeof err) == 0);
    CHECK(schedule__cron_next(&c, local(2026, 3, 1, 10, 0)) == (time_t)-1);

    /* Local time across DST (Europe/Berlin: 2026-03-29 02:00 -> 03:00, 2026-10-25 03:00 -> 02:00). */
    setenv("TZ", "Europe/Berlin", 1);
    tzset();
    expect_next("0 9 * * *", local(2026, 3, 28, 12, 0), local(2026, 3, 29, 9, 0));
    CHECK(local(2026, 3, 29, 9, 0) - local(2026, 3, 28, 9, 0) == 23 * 3600);
    expect_next("30 1 * * *", local(2026, 10, 24, 12, 0), local(2026, 10, 25, 1, 30));
    /* 02:30 happens twice on 2026-10-25: it fires once, then next day. */
    {
        time_t first;

        CHECK(schedule__parse_cron("30 2 * * *", &c, err, sizeof err) == 0);
        first = schedule__cron_next(&c, local(2026, 10, 25, 0, 0));
        CHECK(first != (time_t)-1);
        CHECK(schedule__cron_next(&c, first) >= local(2026, 10, 26, 2, 30) - 3600);
        CHECK(schedule__cron_next(&c, first) - first > 12 * 3600);
    }
}

static void test_iso8601(void)
{
    struct timespec t = {.tv_sec = 1764184320, .tv_nsec = 250000000}; /* 2025-11-26 19:12:00 UTC */
    char buf[40];

    setenv("TZ", "UTC", 1);
    tzset();
    CHECK(schedule__iso8601(&t, buf, sizeof buf) == 0);
    CHECK_STR(buf, "2025-11-26T19:12:00.250+00:00");
    setenv("TZ", "Europe/Berlin", 1);
    tzset();
    CHECK(schedule__iso8601(&t, buf, sizeof buf) == 0);
    CHECK_STR(buf, "2025-11-26T20:12:00.250+01:00");
    setenv("TZ", "America/St_Johns", 1);
    tzset();
    CHECK(schedule__iso8601(&t, buf, sizeof buf) == 0);
    CHECK_STR(buf, "2025-11-26T15:42:00.250-03:30");
    CHECK(schedule__iso8601(&t, buf, 10) == -1);
}

int main(void)
{
    test_intervals();
    test_cron_parse();
    test_cron_next();
    test_iso8601();
    return check_summary();
}
