/*
 * output_lines.c - a task's output cut into lines: bounded, rate-bound and
 * masked (output_lines.h says what each step is for).
 */
#include "output_lines.h"
#include "mask.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room kept free past the line bound for the NUL and the " [line cut]" mark. */
#define SPARE 32

void output_lines__flush(struct output_lines *o, output_lines_fn emit, void *ctx)
{
    unsigned long dropped = 0;
    int allowed;

    if (o->len == 0 && !o->cut)
        return;
    /*
     * A task that floods its output must not flood the bus, the broker's
     * queues or this process: past FB_LOG_LINES_PER_S in a second, lines are
     * dropped and counted, and the count is reported once the second is over.
     */
    allowed = fb_rate_allow(&o->rate, FB_LOG_LINES_PER_S, fb_clock_mono(), &dropped);
    if (dropped) {
        char note[128];
        int n = snprintf(note, sizeof note,
                         "[flowbus: %lu lines dropped: more than %d lines in a second]", dropped,
                         FB_LOG_LINES_PER_S);
        emit(ctx, note, (size_t)n);
    }
    if (!allowed || o->line == NULL) {
        if (o->line == NULL && o->cut) {
            static const char oom[] = "[line cut: out of memory]";
            emit(ctx, oom, sizeof oom - 1);
        }
        goto out;
    }
    o->line[o->len] = '\0';
    o->len = mask__apply(o->line, o->len);
    if (o->cut) {
        static const char mark[] = " [line cut]";
        memcpy(o->line + o->len, mark, sizeof mark);
        o->len += sizeof mark - 1;
    }
    emit(ctx, o->line, o->len);
out:
    o->len = 0;
    o->cut = 0;
}

/* Appends byte c to the current line; it grows up to max, past that the line is cut. */
static void append(struct output_lines *o, char c, size_t max)
{
    if (o->len + SPARE >= o->cap && o->cap < max + SPARE) {
        size_t cap = o->cap ? o->cap * 4 : 256;
        char *grown;

        if (cap > max + SPARE)
            cap = max + SPARE;
        grown = realloc(o->line, cap);
        if (grown) {
            o->line = grown;
            o->cap = cap;
        }
    }
    if (o->len < max && o->len + SPARE < o->cap)
        o->line[o->len++] = c;
    else
        o->cut = 1;
}

void output_lines__feed(struct output_lines *o, const char *buf, size_t n, size_t max,
                        output_lines_fn emit, void *ctx)
{
    for (size_t k = 0; k < n; k++) {
        if (buf[k] == '\n')
            output_lines__flush(o, emit, ctx);
        else
            append(o, buf[k], max);
    }
}

void output_lines__clear(struct output_lines *o)
{
    o->len = 0;
    o->cut = 0;
}

void output_lines__free(struct output_lines *o)
{
    free(o->line);
    o->line = NULL;
    o->len = o->cap = 0;
    o->cut = 0;
}
