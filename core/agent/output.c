/*
 * output.c - what an agent's task prints, forwarded to the task's log topic.
 *
 * As on the coordinator's host (core/run/output.c), by the same
 * output_lines.c: stdout and stderr come through one pipe, are cut into
 * lines (longer than AGENT_LINE_MAX: cut and marked), bounded to
 * FB_LOG_LINES_PER_S lines a second (the rest dropped and counted), and
 * every secret the agent holds is masked before a line goes on the bus.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <unistd.h>

static void publish(struct agent *a, const struct agent_task *t, const char *text, size_t len)
{
    char topic[FB_TOPIC_MAX];

    if (fb_topic_format(topic, sizeof topic, FB_TOPIC_TASK_LOG, t->run, t->task))
        fb_bus_publish(a->bus, topic, text, len, 1, 0, 0);
}

/* Where task k's lines go (output_lines.h): its log topic. */
struct line_sink {
    struct agent *a;
    const struct agent_task *t;
};

static void emit_line(void *ctx, const char *text, size_t len)
{
    struct line_sink *sink = ctx;

    publish(sink->a, sink->t, text, len);
}

void agent_output__read(struct agent *a, size_t k)
{
    struct agent_task *t = &a->tasks[k];
    struct line_sink sink = {a, t};
    char buf[8192];

    for (int turn = 0; turn < 32; turn++) {
        ssize_t n = read(t->fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
                output_lines__flush(&t->out, emit_line, &sink);
                close(t->fd);
                t->fd = -1;
            }
            return;
        }
        output_lines__feed(&t->out, buf, (size_t)n, AGENT_LINE_MAX, emit_line, &sink);
    }
}
