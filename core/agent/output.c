/*
 * output.c - what an agent's task prints, forwarded to the task's log topic.
 *
 * As on the coordinator's host (core/run/output.c): stdout and stderr come
 * through one pipe, are cut into lines (longer than AGENT_LINE_MAX: cut and
 * marked), bounded to FB_LOG_LINES_PER_S lines a second (the rest dropped
 * and counted), and every secret the agent holds is masked before a line
 * goes on the bus.
 */
#define _GNU_SOURCE
#include "internal.h"
#include "mask.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void publish(struct agent *a, const struct agent_task *t, const char *text, size_t len)
{
    char topic[FB_TOPIC_MAX];

    if (fb_topic_format(topic, sizeof topic, FB_TOPIC_TASK_LOG, t->run, t->task))
        fb_bus_publish(a->bus, topic, text, len, 1, 0, 0);
}

static void flush_line(struct agent *a, struct agent_task *t)
{
    unsigned long dropped = 0;

    if (t->len == 0 && !t->cut)
        return;
    if (!fb_rate_allow(&t->rate, FB_LOG_LINES_PER_S, fb_clock_mono(), &dropped)) {
        t->len = 0;
        t->cut = 0;
        return;
    }
    if (dropped) {
        char note[128];
        int n = snprintf(note, sizeof note,
                         "[flowbus: %lu lines dropped: more than %d lines in a second]", dropped,
                         FB_LOG_LINES_PER_S);
        publish(a, t, note, (size_t)n);
    }
    t->line[t->len] = '\0';
    t->len = mask__apply(t->line, t->len);
    if (t->cut) {
        static const char mark[] = " [line cut]";
        memcpy(t->line + t->len, mark, sizeof mark);
        t->len += sizeof mark - 1;
    }
    publish(a, t, t->line, t->len);
    t->len = 0;
    t->cut = 0;
}

void agent_output__read(struct agent *a, size_t k)
{
    struct agent_task *t = &a->tasks[k];
    char buf[8192];

    for (int turn = 0; turn < 32; turn++) {
        ssize_t n = read(t->fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
                flush_line(a, t);
                close(t->fd);
                t->fd = -1;
            }
            return;
        }
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n')
                flush_line(a, t);
            else if (t->len < AGENT_LINE_MAX)
                t->line[t->len++] = buf[i];
            else
                t->cut = 1;
        }
    }
}
