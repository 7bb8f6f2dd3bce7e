/*
 * task_absorb.c - applies what a task receives to its view of the run.
 *
 * Everything a task subscribed to (task_connect.c) is interpreted here, on
 * the caller's thread, in fb_task_wait, fb_task_next, fb_task_poll and
 * before fb_task_done decides which outputs to publish: an input's value
 * (the empty string arrives as one NUL byte, a deletion as zero bytes), an
 * output another producer already set, a dependency's state, and the run's
 * control (stop, pause, resume). In reactive mode a value may also be an
 * event, which task_reactive.c queues.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "task_internal.h"

/* A copy of the value a message carries: NULL for a deletion; *nomem if the copy failed. */
static char *decode_value(const fb_msg *msg, int *nomem)
{
    const char *value = fb_value_decode(msg->payload, msg->len);
    char *copy = str__dup(value);

    *nomem = value != NULL && copy == NULL;
    return copy;
}

/*
 * 1 if a message on an input's topic carries a value the task may take: at
 * most the value limit, and text (no NUL byte but the one that encodes "").
 * Every other one is refused with a warning on the task's log, never cut: a
 * value published from outside (`mosquitto_pub`, another client) is held to
 * the limit a task's output is, and a NUL would end the value early in the C
 * string every reader makes of it.
 */
static int value_acceptable(fb_task *task, const struct var *in, const fb_msg *msg)
{
    if (msg->len > task->env.max_value) {
        fb_task_log(task,
                    "warning: value of %s refused: %zu bytes, over the limit of %zu "
                    "(FLOWBUS_MAX_VALUE)",
                    in->name, msg->len, task->env.max_value);
        return 0;
    }
    if (msg->len > 1 && memchr(msg->payload, '\0', msg->len) != NULL) {
        fb_task_log(task, "warning: value of %s refused: it contains a NUL byte (a value is text)",
                    in->name);
        return 0;
    }
    return 1;
}

static int same_value(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

/*
 * A message on vars/<input> in reactive mode. On the task's own connection
 * it updates the input's latest value, and is an event if the input is a
 * trigger and: with a single worker, it is live, or retained with a value
 * other than the one known (the value present at subscribe, or one published
 * while the connection was down); in a pool, only worker 1 takes retained
 * values as events (the start of the flow), the live ones come to the pool
 * through the shared subscriptions. On the events connection (from_share)
 * every live message is an event; retained ones are ignored, as MQTT v5 says
 * a shared subscription gets none (mosquitto 2.0 sends them anyway).
 */
static void absorb_reactive_var(fb_task *task, struct var *in, const fb_msg *msg, int from_share)
{
    int nomem;
    int is_event;
    char *value = decode_value(msg, &nomem);

    if (nomem) {
        log__emit(task->log, task->log_ctx, FB_LOG_ERROR, "out of memory: value of %s lost",
                  in->name);
        return;
    }
    if (from_share) {
        if (!msg->retained && in->trigger)
            task_reactive__event(task, in, value);
        free(value);
        return;
    }
    if (task->env.workers > 1)
        is_event = msg->retained && task->env.worker == 1 && !same_value(in->value, value);
    else
        is_event = !msg->retained || !same_value(in->value, value);
    free(in->value);
    in->value = value;
    if (is_event && in->trigger)
        task_reactive__event(task, in, value);
}

/* A message on vars/<name>: an input's value, or an output's (first value wins). */
static void absorb_var(fb_task *task, const fb_topic *t, const fb_msg *msg, int from_share)
{
    struct var *in = NULL, *out = NULL;
    int nomem;
    size_t i;

    for (i = 0; i < task->n_inputs && in == NULL; i++)
        if (fb_topic_is_name(t, task->inputs[i].name))
            in = &task->inputs[i];
    for (i = 0; i < task->n_outputs && out == NULL; i++)
        if (fb_topic_is_name(t, task->outputs[i].name))
            out = &task->outputs[i];
    if (in != NULL && !in->secret && !value_acceptable(task, in, msg)) {
        /* Refused: the input keeps what it had (and an event is not one). */
    } else if (in != NULL && !in->secret && task->env.reactive) {
        absorb_reactive_var(task, in, msg, from_share);
    } else if (in != NULL && !in->secret) {
        free(in->value);
        /* Zero bytes: the retained value was deleted (NULL). One NUL byte: "". */
        in->value = decode_value(msg, &nomem);
    }
    if (out != NULL)
        out->taken = msg->len > 0;
}

void task_absorb__message(fb_task *task, const fb_msg *msg, int from_share)
{
    fb_topic t;
    size_t i;

    if (fb_topic_parse(msg->topic, &t) == FB_TOPIC_NONE || !fb_topic_is_run(&t, task->env.run_id))
        return;
    switch (t.kind) {
    case FB_TOPIC_VAR:
        absorb_var(task, &t, msg, from_share);
        break;
    case FB_TOPIC_TASK_STATE:
        for (i = 0; i < task->n_deps; i++)
            if (fb_topic_is_name(&t, task->deps[i].name))
                task->deps[i].done = task_state__dep_done(msg, task->env.reactive);
        break;
    case FB_TOPIC_CONTROL:
        switch (fb_control_parse(msg->payload, msg->len)) {
        case FB_CONTROL_STOP:
            task->stopped = 1;
            break;
        case FB_CONTROL_PAUSE:
            task->paused = 1;
            break;
        case FB_CONTROL_RESUME:
            task->paused = 0;
            break;
        case FB_CONTROL_NONE:
            break;
        }
        break;
    default:
        break;
    }
}

/*
 * Absorbs every message already queued on one connection, without waiting,
 * and stops early while a full queue holds the connection back
 * (FLOWBUS_OVERFLOW=block): the rest waits in the bus, in order, and the
 * connection's own work (keepalive, writes) is still done (fb_bus_serve).
 */
static enum fb_err absorb_bus(fb_task *task, fb_bus *bus, int from_share)
{
    fb_msg *msg;
    enum fb_err err = FB_ERR_TIMEOUT;

    while (task_reactive__may_take(task, from_share) &&
           (err = fb_bus_next(bus, 0, &msg)) == FB_OK) {
        task_absorb__message(task, msg, from_share);
        fb_msg_free(msg);
    }
    if (err == FB_ERR_TIMEOUT && !task_reactive__may_take(task, from_share))
        err = fb_bus_serve(bus) == FB_ERR_LOST ? FB_ERR_LOST : FB_ERR_TIMEOUT;
    return err == FB_ERR_TIMEOUT ? FB_OK : err;
}

enum fb_err task_absorb__queued(fb_task *task)
{
    enum fb_err err = absorb_bus(task, task->bus, 0);

    if (err == FB_OK && task->events_bus != NULL)
        err = absorb_bus(task, task->events_bus, 1);
    task_reactive__sync_fd(task);
    return err;
}

int task_absorb__inputs_set(const fb_task *task, size_t except)
{
    size_t i;

    for (i = 0; i < task->n_inputs; i++)
        if (i != except && task->inputs[i].value == NULL)
            return 0;
    return 1;
}

int task_absorb__deps_done(const fb_task *task)
{
    size_t i;

    for (i = 0; i < task->n_deps; i++)
        if (!task->deps[i].done)
            return 0;
    return 1;
}

int task_absorb__ready(const fb_task *task, size_t except)
{
    return task_absorb__inputs_set(task, except) && task_absorb__deps_done(task);
}
