/*
 * task_state.c - what a task says on the bus about itself: its state JSON
 * (docs/protocol.md "Task state"), its Last Will, its outputs, and saying it
 * all again after a broker restart; and reading a dependency's state JSON.
 *
 * The state is retained, so it is the task's record for whoever subscribes
 * later; the last one published is kept, so that it can be re-asserted when
 * a restarted broker lost what it had acknowledged but not saved. A variable
 * already holding a value is never overwritten ("first value wins"): that
 * is decided in fb_task_done, which publishes through here.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "task_internal.h"

/* The state JSON of docs/protocol.md; exit_code < 0 means null. */
static char *state_json(const fb_task *task, enum fb_state state, double at, int with_started,
                        int exit_code, const char *error)
{
    json_t *obj = json_object();
    char *text = NULL;

    if (obj == NULL)
        return NULL;
    json_object_set_new(obj, "state", json_string(fb_state_name(state)));
    json_object_set_new(obj, "attempt", json_integer(task->env.attempt));
    json_object_set_new(obj, "pid", json_integer(task->pid));
    json_object_set_new(obj, "at", json_real(at));
    if (with_started)
        json_object_set_new(obj, "started",
                            task->started_at > 0 ? json_real(task->started_at) : json_null());
    else
        json_object_set_new(obj, "started", json_null());
    json_object_set_new(obj, "exit", exit_code >= 0 ? json_integer(exit_code) : json_null());
    json_object_set_new(obj, "signal", json_null());
    json_object_set_new(obj, "error", error != NULL ? json_string(error) : json_null());
    if (task->env.reactive) {
        json_object_set_new(obj, "activation", json_integer((json_int_t)task->act.number));
        json_object_set_new(obj, "result",
                            task->act.result != FB_STATE_PENDING
                                ? json_string(fb_state_name(task->act.result))
                                : json_null());
        json_object_set_new(obj, "queued", json_integer((json_int_t)task->queue.len));
        json_object_set_new(obj, "dropped", json_integer((json_int_t)task->queue.dropped));
        if (task->env.workers > 1)
            json_object_set_new(obj, "worker", json_integer(task->env.worker));
    }
    /* 16 significant digits: Unix seconds with exactly the microseconds. */
    text = json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(16));
    json_decref(obj);
    return text;
}

enum fb_err task_state__publish(fb_task *task, enum fb_state state, double at, int with_started,
                                int exit_code, const char *error)
{
    char *text = state_json(task, state, at, with_started, exit_code, error);
    enum fb_err err;

    if (text == NULL)
        return FB_ERR_NOMEM;
    err = fb_bus_publish(task->bus, task->state_topic, text, strlen(text), 1, 1, task->env.expiry);
    free(task->last_state);
    task->last_state = text;
    task->state_at = fb_clock_mono();
    task->state_behind = 0;
    return err;
}

char *task_state__will(const fb_task *task)
{
    const char *crashed = fb_state_name(FB_STATE_CRASHED);

    if (task->env.reactive && task->env.workers > 1)
        return task__format("{\"state\":\"%s\",\"attempt\":%ld,\"pid\":%ld,\"at\":%.6f,"
                            "\"exit\":null,\"error\":\"connection lost\",\"worker\":%ld}",
                            crashed, task->env.attempt, task->pid, fb_clock_wall(),
                            task->env.worker);
    return task__format("{\"state\":\"%s\",\"attempt\":%ld,\"pid\":%ld,\"at\":%.6f,"
                        "\"exit\":null,\"error\":\"connection lost\"}",
                        crashed, task->env.attempt, task->pid, fb_clock_wall());
}

int task_state__dep_done(const fb_msg *msg, int reactive)
{
    json_t *root = json_loadb(msg->payload, msg->len, 0, NULL);
    enum fb_state state = FB_STATE_PENDING, result = FB_STATE_PENDING;
    int done;

    fb_state_parse(json_string_value(json_object_get(root, "state")), &state);
    fb_state_parse(json_string_value(json_object_get(root, "result")), &result);
    /* Other terminal states leave the task waiting: the coordinator decides skips. */
    done = state == FB_STATE_DONE || (reactive && result == FB_STATE_DONE);
    json_decref(root);
    return done;
}

enum fb_err task_state__publish_var(fb_task *task, const char *name, const char *value)
{
    char topic[FB_TOPIC_MAX];
    const char *payload;
    size_t len = fb_value_encode(value, &payload);

    /* The names were validated when the task was opened: this fits. */
    if (fb_topic_format(topic, sizeof topic, FB_TOPIC_VAR, task->env.run_id, name) == 0)
        return FB_ERR_INVALID;
    return fb_bus_publish(task->bus, topic, payload, len, 1, 1, task->env.expiry);
}

/*
 * The bus already re-sent what the broker had not acknowledged; this covers
 * what a restarted broker acknowledged but had not saved yet (same values,
 * retained).
 */
enum fb_err task_state__reassert(fb_task *task)
{
    unsigned now = fb_bus_reconnects(task->bus);
    enum fb_err err = FB_OK;
    size_t i;

    if (now == task->reconnects)
        return FB_OK;
    task->reconnects = now;
    /* In reactive mode a publish is an event downstream: outputs are not sent twice on purpose. */
    for (i = 0; i < task->n_outputs && err == FB_OK && !task->env.reactive; i++)
        if (task->outputs[i].published)
            err = task_state__publish_var(task, task->outputs[i].name, task->outputs[i].value);
    if (err == FB_OK && task->last_state != NULL)
        err = fb_bus_publish(task->bus, task->state_topic, task->last_state,
                             strlen(task->last_state), 1, 1, task->env.expiry);
    return err;
}

enum fb_err task_state__flush(fb_task *task)
{
    enum fb_err err = fb_bus_flush(task->bus, task->flush_timeout);
    int rounds;

    for (rounds = 0; err == FB_OK && rounds < 5 && fb_bus_reconnects(task->bus) != task->reconnects;
         rounds++) {
        err = task_state__reassert(task);
        if (err == FB_OK)
            err = fb_bus_flush(task->bus, task->flush_timeout);
    }
    return err;
}
