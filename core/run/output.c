/*
 * output.c - a task's stdout and stderr, forwarded to its log topic.
 *
 * Every task process writes into one pipe (launcher.c). What comes out is
 * cut into lines by output_lines.c, as on an agent's host: a line longer
 * than MAX_LINE is cut and marked; past FB_LOG_LINES_PER_S lines a second
 * the rest are dropped and counted (the same bound the SDK's fb_task_log
 * keeps); every secret the coordinator knows is masked before the line goes
 * on the bus, so a task that prints its token does not publish it.
 */
#define _GNU_SOURCE
#include "internal.h"
#include "workflow.h"

#include <errno.h>
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

/* Where process i's lines go (output_lines.h): its log topic. */
struct line_sink {
    struct run *r;
    size_t i;
};

static void emit_line(void *ctx, const char *text, size_t len)
{
    struct line_sink *sink = ctx;

    publish_log(sink->r, sink->i, text, len);
}

void output__read(struct run *r, size_t i)
{
    struct proc_output *out = &r->procs[i].out;
    struct line_sink sink = {r, i};
    char buf[8192];
    size_t total = 0;

    while (total < READ_PER_TURN) {
        ssize_t n = read(out->fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
                output_lines__flush(&out->lines, emit_line, &sink);
                close(out->fd);
                out->fd = -1;
            }
            return;
        }
        total += (size_t)n;
        output_lines__feed(&out->lines, buf, (size_t)n, MAX_LINE, emit_line, &sink);
    }
}

void output__reset(struct proc *p)
{
    output_lines__clear(&p->out.lines);
}

void output__free(struct proc *p)
{
    if (p->out.fd >= 0)
        close(p->out.fd);
    p->out.fd = -1;
    output_lines__free(&p->out.lines);
}
