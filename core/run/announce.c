/*
 * announce.c - what the coordinator publishes about its run.
 *
 * The run's record on the bus: the run state, the workflow (with what
 * `flowbus resume` needs to load it again), the initial variables, the task
 * states the coordinator authors, and the stop on the control topic. Every
 * topic is built by protocol.h. The workflow's JSON is kept, so that after a
 * reconnect (the broker may be a restarted one that lost what it had not
 * saved) and at the end of a run (with an MQTT message expiry) the record
 * can be published again exactly as it was.
 */
#include "internal.h"
#include "graph.h"
#include "log.h"
#include "workflow.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void announce__text(struct run *r, const char *t, const char *text, int retained)
{
    enum fb_err e = fb_bus_publish(r->bus, t, text, strlen(text), 1, retained, 0);
    if (e != FB_OK)
        log_printf(FB_LOG_WARN, "publish to %s failed: %s", t, fb_strerror(e));
}

void announce__task_json(struct run *r, size_t t, const char *json)
{
    char tp[FB_TOPIC_MAX];

    if (fb_topic_format(tp, sizeof tp, FB_TOPIC_TASK_STATE, r->run_id, r->wf->tasks[t].name))
        announce__text(r, tp, json, 1);
}

void announce__task_state(struct run *r, size_t t)
{
    char *json = tracker__state_json(r->tr, t);

    if (!json)
        return;
    announce__task_json(r, t, json);
    free(json);
}

void announce__run_state(struct run *r, enum fb_run_state state, int code, unsigned expiry)
{
    char tp[FB_TOPIC_MAX];
    json_t *o = json_pack("{s:s, s:f, s:f, s:i, s:s, s:b, s:s}", "state",
                          fb_run_state_name(state), "at", fb_clock_wall(), "started", r->t0_wall,
                          "tasks", (int)r->wf->n_tasks, "mode",
                          r->reactive ? "reactive" : "oneshot", "paused", r->record.paused,
                          "owner", r->lease.id);
    char *s;

    json_object_set_new(o, "exit", code >= 0 ? json_integer(code) : json_null());
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s && (!fb_topic_format(tp, sizeof tp, FB_TOPIC_RUN_STATE, r->run_id, NULL) ||
              fb_bus_publish(r->bus, tp, s, strlen(s), 1, 1, expiry) != FB_OK))
        log_printf(FB_LOG_WARN, "cannot publish the run state");
    free(s);
}

/* Builds the control topic and the payload of cmd. Returns the payload's length, 0 on failure. */
static size_t control_message(const struct run *r, enum fb_control cmd, char *tp, size_t tp_size,
                              char *payload, size_t size)
{
    size_t len = fb_control_format(payload, size, cmd);

    return len && fb_topic_format(tp, tp_size, FB_TOPIC_CONTROL, r->run_id, NULL) ? len : 0;
}

#define INTENT_CONFIRM 2.0 /* seconds the broker has to confirm a launch record */

void announce__intent(struct run *r, size_t i, int attempt, pid_t pid)
{
    const char *name = r->wf->tasks[r->procs[i].task].name;
    json_t *o = json_pack("{s:i, s:s, s:s, s:f}", "attempt", attempt, "owner", r->lease.id,
                          "host", r->lease.host, "at", fb_clock_wall());
    unsigned long long start = pid > 0 ? adopt__start_time(pid) : 0;
    char tp[FB_TOPIC_MAX], *s = NULL;

    /* Started: which process it is, robust to pid reuse, for a resume that
     * cannot read the process's environment (docs/reliability.md). */
    if (o && pid > 0 && start)
        json_object_set_new(o, "process", json_pack("{s:I, s:I}", "pid", (json_int_t)pid,
                                                     "start", (json_int_t)start));
    s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s || !fb_topic_format(tp, sizeof tp, FB_TOPIC_TASK_LAUNCH, r->run_id, name))
        goto out;
    announce__text(r, tp, s, 1);
    /* Before the start the record must be on the broker; the start's own
     * record need not: the scan of /proc covers a process it misses. While
     * the broker is away the record waits in the bus's queue; the start does
     * not wait (docs/reliability.md says what that leaves open). */
    if (pid <= 0 && fb_bus_connected(r->bus) && fb_bus_flush(r->bus, INTENT_CONFIRM) != FB_OK)
        log_printf(FB_LOG_WARN, "the broker did not confirm the launch record of %s", name);
out:
    free(s);
}

void announce__forget_intents(struct run *r)
{
    char tp[FB_TOPIC_MAX];

    /* Only a run that can be resumed reads them, and this one is over. */
    for (size_t t = 0; r->window.intents && t < r->wf->n_tasks; t++)
        if (fb_topic_format(tp, sizeof tp, FB_TOPIC_TASK_LAUNCH, r->run_id, r->wf->tasks[t].name))
            fb_bus_publish(r->bus, tp, "", 0, 1, 1, 0);
}

void announce__stop(struct run *r)
{
    char tp[FB_TOPIC_MAX], payload[32];

    if (control_message(r, FB_CONTROL_STOP, tp, sizeof tp, payload, sizeof payload))
        announce__text(r, tp, payload, 1);
}

/* Publishes the resolved workflow (retained), with what resume needs. */
static void publish_workflow(struct run *r)
{
    json_t *extra = json_object();
    char tp[FB_TOPIC_MAX], *s = NULL;

    if (!extra)
        goto out;
    json_object_set_new(extra, "run_id", json_string(r->run_id));
    if (r->record.path[0])
        json_object_set_new(extra, "path", json_string(r->record.path));
    if (r->record.cwd[0])
        json_object_set_new(extra, "cwd", json_string(r->record.cwd));
    json_object_set_new(extra, "started", json_real(r->t0_wall));
    /* Written task by task: at 1,000 tasks the whole JSON tree was the coordinator's peak. */
    s = workflow__to_json_text(r->wf, extra);
    json_decref(extra);
out:
    if (s && fb_topic_format(tp, sizeof tp, FB_TOPIC_WORKFLOW, r->run_id, NULL))
        announce__text(r, tp, s, 1);
    /* Kept to publish it again (after a reconnect, with an expiry at the end). */
    free(r->record.workflow_json);
    r->record.workflow_json = s;
}

/* Publishes the initial variables (secrets never). */
static void publish_initial_vars(struct run *r)
{
    char tp[FB_TOPIC_MAX];

    for (size_t i = 0; i < r->wf->n_vars; i++) {
        const struct wf_var *v = &r->wf->vars[i];
        const char *payload;
        size_t len;
        if (v->secret || !fb_topic_format(tp, sizeof tp, FB_TOPIC_VAR, r->run_id, v->name))
            continue;
        /* The empty string travels as one NUL byte: an empty retained payload would delete. */
        len = fb_value_encode(v->value, &payload);
        fb_bus_publish(r->bus, tp, payload, len, 1, 1, 0);
    }
}

void announce__start(struct run *r)
{
    char *abs = realpath(r->o->file, NULL);

    /* What `flowbus resume` needs to load the same file in the same place. */
    snprintf(r->record.path, sizeof r->record.path, "%s", abs ? abs : "");
    free(abs);
    if (!getcwd(r->record.cwd, sizeof r->record.cwd))
        r->record.cwd[0] = '\0';
    publish_workflow(r);
    /* Who holds the run, before the run state that says it is alive. */
    lease__publish(r, 0);
    announce__run_state(r, FB_RUN_RUNNING, -1, 0);
    for (size_t i = 0; i < r->wf->n_vars; i++) {
        long vi = graph__var_index(r->g, r->wf->vars[i].name);
        if (vi >= 0)
            tracker__mark_var(r->tr, (size_t)vi, r->wf->vars[i].value);
    }
    publish_initial_vars(r);
}

/*
 * After a reconnect the broker may be a restarted one that lost what it had
 * not saved. Retained messages arrive again (the tracker takes them as the
 * repeats they are); the coordinator publishes again what it alone knows:
 * its owner record, the workflow, the run state, the initial variables and every final task
 * state it holds. (Its pending sync probes are the supervisor's.)
 */
void announce__again(struct run *r)
{
    /* The owner record too: loop.c read it back first, so it is still ours. */
    lease__publish(r, 0);
    publish_workflow(r);
    announce__run_state(r, FB_RUN_RUNNING, -1, 0);
    publish_initial_vars(r);
    for (size_t t = 0; t < r->wf->n_tasks; t++)
        if (fb_state_is_final(tracker__task(r->tr, t)->state))
            announce__task_state(r, t);
}

/* fb_barrier's callback of announce__collect_vars: every message goes to the tracker. */
static enum fb_err track(void *ctx, fb_msg *m)
{
    struct run *r = ctx;
    size_t idx = 0;
    const char *text = NULL;

    (void)tracker__on_message(r->tr, m->topic, m->payload, m->len, &idx, &text);
    fb_msg_free(m);
    return FB_OK;
}

/*
 * A reactive flow that did not follow its variables learns their last values
 * here, for the summary and so that they can be published again with the
 * run's expiry: the
 * retained values come with the subscription, before the sync token
 * published after it (one connection keeps its order).
 */
void announce__collect_vars(struct run *r)
{
    char filter[FB_TOPIC_MAX], token[FB_TOPIC_MAX];
    const char *filters[1] = {filter};
    double deadline = fb_clock_mono() + SYNC_WAIT;
    int synced = 0;

    if (r->res.follow_vars) {
        synced = 1; /* it has followed them all along */
        goto out;
    }
    if (!fb_topic_filter(filter, sizeof filter, FB_TOPIC_VAR, r->run_id, NULL) ||
        !fb_barrier_token(token, sizeof token, r->run_id, "vars") ||
        fb_bus_subscribe(r->bus, filters, 1, SYNC_WAIT) != FB_OK)
        goto out;
    synced = fb_barrier(r->bus, token, deadline - fb_clock_mono(), track, r) == FB_OK;
out:
    if (!synced)
        log_printf(FB_LOG_WARN, "could not read the flow's variables back: the summary shows "
                                "the values last seen, and on an external broker they keep the "
                                "expiry their tasks gave them");
}

static int var_secret(const struct run *r, const char *name)
{
    for (size_t i = 0; i < r->wf->n_vars; i++)
        if (r->wf->vars[i].secret && strcmp(r->wf->vars[i].name, name) == 0)
            return 1;
    return 0;
}

/*
 * A finished run's retained topics would stay on a long-lived broker for ever.
 * They are published once more with an MQTT v5 message expiry, so the broker
 * drops them after `expiry` seconds (flowbus gc removes them at once). The
 * values are the ones the run ended with: what the coordinator saw last.
 */
void announce__expiring(struct run *r, unsigned expiry)
{
    char tp[FB_TOPIC_MAX], payload[32], *json;
    size_t len;

    for (size_t v = 0; v < graph__var_count(r->g); v++) {
        const char *value = tracker__var_value(r->tr, v), *bytes;
        if (!value || var_secret(r, graph__var_name(r->g, v)) ||
            !fb_topic_format(tp, sizeof tp, FB_TOPIC_VAR, r->run_id, graph__var_name(r->g, v)))
            continue;
        len = fb_value_encode(value, &bytes);
        fb_bus_publish(r->bus, tp, bytes, len, 1, 1, expiry);
    }
    for (size_t t = 0; t < r->wf->n_tasks; t++) {
        json = tracker__state_json(r->tr, t);
        if (json &&
            fb_topic_format(tp, sizeof tp, FB_TOPIC_TASK_STATE, r->run_id, r->wf->tasks[t].name))
            fb_bus_publish(r->bus, tp, json, strlen(json), 1, 1, expiry);
        free(json);
    }
    json = r->record.workflow_json;
    if (json && fb_topic_format(tp, sizeof tp, FB_TOPIC_WORKFLOW, r->run_id, NULL))
        fb_bus_publish(r->bus, tp, json, strlen(json), 1, 1, expiry);
    lease__publish(r, expiry);
    len = control_message(r, FB_CONTROL_STOP, tp, sizeof tp, payload, sizeof payload);
    if (len)
        fb_bus_publish(r->bus, tp, payload, len, 1, 1, expiry);
}
