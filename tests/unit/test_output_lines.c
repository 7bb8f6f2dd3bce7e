/*
 * test_output_lines.c - a task's output cut into log lines (core/output_lines.c),
 * as the coordinator and the agent forward it: lines split at '\n' across
 * reads, a line over the bound cut and marked, secrets masked, the line
 * under way handed on at the end, and lines past FB_LOG_LINES_PER_S a
 * second dropped and counted in a note.
 */
#include "mask.h"
#include "output_lines.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* The lines an assembler handed on. */
struct seen {
    char lines[8][256];
    size_t n, total;
};

static void collect(void *ctx, const char *text, size_t len)
{
    struct seen *s = ctx;

    if (s->n < 8)
        snprintf(s->lines[s->n], sizeof s->lines[s->n], "%.*s", (int)len, text);
    s->n++;
    s->total++;
}

static void feed(struct output_lines *o, const char *text, size_t max, struct seen *s)
{
    output_lines__feed(o, text, strlen(text), max, collect, s);
}

static void test_lines_across_reads(void)
{
    struct output_lines o = {0};
    struct seen s = {0};

    feed(&o, "one\ntw", 100, &s);
    CHECK(s.n == 1);
    feed(&o, "o\n\nthree", 100, &s);
    CHECK(s.n == 2); /* an empty line is not forwarded */
    output_lines__flush(&o, collect, &s);
    CHECK(s.n == 3);
    CHECK_STR(s.lines[0], "one");
    CHECK_STR(s.lines[1], "two");
    CHECK_STR(s.lines[2], "three");
    output_lines__flush(&o, collect, &s); /* nothing under way: nothing handed on */
    CHECK(s.n == 3);
    output_lines__free(&o);
}

static void test_long_line_cut(void)
{
    struct output_lines o = {0};
    struct seen s = {0};

    feed(&o, "0123456789abcdef\nshort\n", 10, &s);
    CHECK(s.n == 2);
    CHECK_STR(s.lines[0], "0123456789 [line cut]");
    CHECK_STR(s.lines[1], "short");
    feed(&o, "partial", 10, &s);
    output_lines__clear(&o); /* a new attempt: the old line is forgotten */
    feed(&o, "new\n", 10, &s);
    CHECK_STR(s.lines[2], "new");
    output_lines__free(&o);
}

static void test_secrets_masked(void)
{
    struct output_lines o = {0};
    struct seen s = {0};

    mask__clear();
    CHECK(mask__add("hunter22"));
    feed(&o, "token=hunter22 ok\n", 100, &s);
    CHECK_STR(s.lines[0], "token=*** ok");
    mask__clear();
    output_lines__free(&o);
}

static void test_rate_bound(void)
{
    struct output_lines o = {0};
    struct seen s = {0};
    int dropped = 5;

    for (int i = 0; i < FB_LOG_LINES_PER_S + dropped; i++)
        feed(&o, "x\n", 10, &s);
    CHECK(s.total == FB_LOG_LINES_PER_S);
    /* The next window reports the count first (forced: the window began a second ago). */
    o.rate.window -= 1.5;
    s.n = 0;
    feed(&o, "y\n", 10, &s);
    CHECK(s.n == 2);
    CHECK_CONTAINS(s.lines[0], "5 lines dropped");
    CHECK_STR(s.lines[1], "y");
    output_lines__free(&o);
}

int main(void)
{
    RUN(test_lines_across_reads);
    RUN(test_long_line_cut);
    RUN(test_secrets_masked);
    RUN(test_rate_bound);
    return check_summary();
}
