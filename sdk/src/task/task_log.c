/*
 * task_log.c - a task's log topic, and keeping its secrets off the bus.
 *
 * fb_task_log publishes one message per line on flowbus/<run>/tasks/<task>/log,
 * at most FB_LOG_LINES_PER_S a second (flowbus/protocol.h, the limiter the
 * coordinator uses for a process's output too): a task that logs in a loop
 * must not flood the bus, the broker and the coordinator. Past the bound,
 * lines are dropped and counted, and the count is published when the next
 * second begins or the task ends.
 *
 * The values of the secret inputs, AUTH_TOKEN and the task's broker
 * password are masked in every line and error a task publishes, and refused
 * as outputs (task_log__has_secret).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "task_internal.h"

/* The slots after the inputs: AUTH_TOKEN, then the broker password. */
#define EXTRA_SECRETS 2

/*
 * Secret i of the task (0 <= i < n_inputs + EXTRA_SECRETS): its secret
 * inputs, then AUTH_TOKEN, then its broker password. NULL when that slot
 * holds no secret. Values shorter than 4 characters do not count (masking
 * them would mangle ordinary text and protect nothing).
 */
static const char *secret_at(const fb_task *task, size_t i)
{
    const char *v = i < task->n_inputs   ? (task->inputs[i].secret ? task->inputs[i].value : NULL)
                    : i == task->n_inputs ? getenv("AUTH_TOKEN")
                                          : task->env.password;
    return v != NULL && strlen(v) >= 4 ? v : NULL;
}

void task_log__mask(const fb_task *task, char *text)
{
    for (size_t i = 0; i < task->n_inputs + EXTRA_SECRETS; i++) {
        const char *secret = secret_at(task, i);
        size_t len = secret ? strlen(secret) : 0;
        char *hit;

        while (secret != NULL && (hit = strstr(text, secret)) != NULL) {
            memcpy(hit, "***", 3);
            memmove(hit + 3, hit + len, strlen(hit + len) + 1);
        }
    }
}

int task_log__has_secret(const fb_task *task, const char *value)
{
    for (size_t i = 0; i < task->n_inputs + EXTRA_SECRETS; i++) {
        const char *secret = secret_at(task, i);
        if (secret != NULL && strstr(value, secret) != NULL)
            return 1;
    }
    return 0;
}

/* Publishes the note that count lines were dropped in a second. */
static void publish_drops(fb_task *task, unsigned long count)
{
    char note[128];

    snprintf(note, sizeof note, "[%lu lines dropped: more than %d lines in a second]", count,
             FB_LOG_LINES_PER_S);
    fb_bus_publish(task->bus, task->log_topic, note, strlen(note), 1, 0, 0);
}

void task_log__report_drops(fb_task *task)
{
    if (task->log_rate.dropped == 0)
        return;
    publish_drops(task, task->log_rate.dropped);
    task->log_rate.dropped = 0;
}

void fb_task_log(fb_task *task, const char *fmt, ...)
{
    va_list ap;
    char *text;
    char *line;
    char *next;
    unsigned long dropped;

    if (task == NULL || fmt == NULL || task->bus == NULL)
        return;
    va_start(ap, fmt);
    text = task__vformat(fmt, ap);
    va_end(ap);
    if (text == NULL)
        return;
    /* The log topic carries one line per message. */
    for (line = text; line != NULL; line = next) {
        int allowed;

        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        if (*line == '\0')
            continue;
        allowed = fb_rate_allow(&task->log_rate, FB_LOG_LINES_PER_S, fb_clock_mono(), &dropped);
        /* The note of the second before goes first, where the lines it counts were. */
        if (dropped > 0)
            publish_drops(task, dropped);
        if (!allowed)
            continue;
        task_log__mask(task, line);
        fb_bus_publish(task->bus, task->log_topic, line, strlen(line), 1, 0, 0);
    }
    free(text);
}
