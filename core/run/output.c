/*
 * output.c - a task's stdout and stderr, forwarded to its log topic.
 *
 * Every task process writes into one pipe (launcher.c). What comes out is
 * cut into lines; a line longer than MAX_LINE is cut and marked; past
 * FB_LOG_LINES_PER_S lines a second the rest are dropped and counted (the
 * same bound the SDK's fb_task_log keeps); every secret the coordinator knows is masked
 * before the line goes on the bus, so a task that prints its token does not
 * publish it.
 */
#define _GNU_SOURCE
#include "internal.h"
#include "mask.h"
#include "workflow.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_LINE 65536             /* longer output lines are cut and marked */
#define READ_PER_TURN (256 * 1024) /* bytes of a task's output read before looking elsewhere */

/* Publishes len bytes of text on the log topic of process i's task. */
static void publish_log(struct run *r, size_t i, const char *text, size_t len)
{
    char tp[FB_TOPIC_MAX];

    if (fb_topic_format(tp, sizeof tp, FB_TOPIC_TASK_LOG, r->run_id,
                        r->wf->tasks[r->procs[i].task].name))
        fb_bus_publish(r->bus, tp, text, len, 1, 0, 0);
}

void output__note(struct run *r, size_t i, const char *text)
{
    publish_log(r, i, text, strlen(text));
}

/*
 * A task that floods its output must not flood the bus, the broker's queues
 * or the coordinator: past FB_LOG_LINES_PER_S in a second, lines are dropped
 * and counted, and the count is reported once the second is over.
 */
static int rate_allows(struct run *r, size_t i)
{
    struct proc_output *out = &r->procs[i].out;
    unsigned long dropped = 0;
    int allowed = fb_rate_allow(&out->rate, FB_LOG_LINES_PER_S, fb_clock_mono(), &dropped);

    if (dropped) {
        char note[128];
        snprintf(note, sizeof note,
                 "[flowbus: %lu lines dropped: more than %d lines in a second]", dropped,
                 FB_LOG_LINES_PER_S);
        output__note(r, i, note);
    }
    return allowed;
}

static void flush_line(struct run *r, size_t i)
{
    struct proc_output *out = &r->procs[i].out;

    if (out->len == 0 && !out->cut)
        return;
    if (!rate_allows(r, i) || !out->line) {
        if (out->line == NULL && out->cut)
            output__note(r, i, "[line cut: out of memory]");
        out->len = 0;
        out->cut = 0;
        return;
    }
    out->line[out->len] = '\0';
    /* Every secret the coordinator knows (mask.h): a task that prints one does not publish it. */
    out->len = mask__apply(out->line, out->len);
    if (out->cut) {
        static const char mark[] = " [line cut]";
        memcpy(out->line + out->len, mark, sizeof mark);
        out->len += sizeof mark - 1;
    }
    publish_log(r, i, out->line, out->len);
    out->len = 0;
    out->cut = 0;
}

/* Appends byte c to the current line; it grows up to MAX_LINE, past that the line is cut. */
static void append(struct proc_output *out, char c)
{
    /* 32 bytes stay free for the NUL and the " [line cut]" mark. */
    if (out->len + 32 >= out->cap && out->cap < MAX_LINE + 32) {
        size_t cap = out->cap ? out->cap * 4 : 256;
        char *grown = realloc(out->line, cap < MAX_LINE + 32 ? cap : MAX_LINE + 32);
        if (grown) {
            out->line = grown;
            out->cap = cap < MAX_LINE + 32 ? cap : MAX_LINE + 32;
        }
    }
    if (out->len < MAX_LINE && out->len + 32 < out->cap)
        out->line[out->len++] = c;
    else
        out->cut = 1;
}

void output__read(struct run *r, size_t i)
{
    struct proc_output *out = &r->procs[i].out;
    char buf[8192];
    size_t total = 0;

    while (total < READ_PER_TURN) {
        ssize_t n = read(out->fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
                flush_line(r, i);
                close(out->fd);
                out->fd = -1;
            }
            return;
        }
        total += (size_t)n;
        for (ssize_t k = 0; k < n; k++) {
            if (buf[k] == '\n')
                flush_line(r, i);
            else
                append(out, buf[k]);
        }
    }
}

void output__reset(struct proc *p)
{
    p->out.len = 0;
    p->out.cut = 0;
}

void output__free(struct proc *p)
{
    if (p->out.fd >= 0)
        close(p->out.fd);
    p->out.fd = -1;
    free(p->out.line);
    p->out.line = NULL;
}
