/*
 * tracker.c - the state of a run, derived from what is on the bus (see tracker.h).
 *
 * A task's terminal state is final: once a task is done, failed, timed out,
 * crashed, skipped or denied, later messages with a different state are
 * ignored. This is what makes a Last Will that arrives after the coordinator
 * already decided "timeout" or "skipped" harmless, and what keeps a re-sent
 * or duplicated state from rewriting history. A message repeating the same
 * terminal state may still add details (the signal that killed a process).
 */
#include "tracker.h"
#include "graph.h"
#include "workflow.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tracker {
    int reactive;
    const struct workflow *wf;
    const struct graph *g;
    char *run_id;
    struct task_info *tasks;
    unsigned char *var_set;
    char **var_value;
    enum graph_task_state *gstates;
    char **reasons;
};

/* ------------------------------------------------------------------------ */
/* A task state message                                                      */
/* ------------------------------------------------------------------------ */

/* An integer member as an int: the contract's values (attempts, exit codes,
 * signals) are small, and an absurd one is clamped rather than wrapped. */
static int clamp_int(json_int_t v)
{
    return v > INT_MAX ? INT_MAX : v < INT_MIN ? INT_MIN : (int)v;
}

/* Sets bit in r->has when v is of its type (is), in r->null when it is null. */
static int member(struct task_report *r, unsigned bit, const json_t *v, int (*is)(const json_t *))
{
    if (json_is_null(v))
        r->null |= bit;
    if (!v || !is(v))
        return 0;
    r->has |= bit;
    return 1;
}

static int is_integer(const json_t *v)
{
    return json_is_integer(v);
}

static int is_number(const json_t *v)
{
    return json_is_number(v);
}

static int is_string(const json_t *v)
{
    return json_is_string(v);
}

/* A time member: a number, with whether it was written as an integer. */
static double time_member(struct task_report *r, unsigned bit, const json_t *v)
{
    if (!member(r, bit, v, is_number))
        return 0;
    if (json_is_integer(v))
        r->whole |= bit;
    return json_number_value(v);
}

void tracker__report_clear(struct task_report *r)
{
    free(r->info.error);
    memset(r, 0, sizeof *r);
}

int tracker__parse_report(const char *payload, size_t len, struct task_report *r)
{
    struct task_info *ti = &r->info;
    json_t *root = json_loadb(payload, len, 0, NULL), *v;
    int ok = 0;

    memset(r, 0, sizeof *r);
    if (!json_is_object(root))
        goto out;
    v = json_object_get(root, "state");
    if (!json_is_string(v) || !fb_state_parse(json_string_value(v), &ti->state))
        goto out;
    r->has |= TM_STATE;
    if (member(r, TM_ATTEMPT, json_object_get(root, "attempt"), is_integer))
        ti->attempt = clamp_int(json_integer_value(json_object_get(root, "attempt")));
    if (member(r, TM_PID, v = json_object_get(root, "pid"), is_integer))
        ti->pid = (long)json_integer_value(v);
    ti->at = time_member(r, TM_AT, json_object_get(root, "at"));
    ti->started = time_member(r, TM_STARTED, json_object_get(root, "started"));
    if (member(r, TM_EXIT, v = json_object_get(root, "exit"), is_integer)) {
        ti->has_exit = 1;
        ti->exit_code = clamp_int(json_integer_value(v));
    }
    if (member(r, TM_SIGNAL, v = json_object_get(root, "signal"), is_integer))
        ti->signal = clamp_int(json_integer_value(v));
    if (member(r, TM_ERROR, v = json_object_get(root, "error"), is_string)) {
        ti->error = strdup(json_string_value(v));
        if (!ti->error)
            goto out;
    }
    /* Reactive members. An activation number is never negative; the cast
     * keeps what the old readers made of one that is. */
    if (member(r, TM_ACTIVATION, v = json_object_get(root, "activation"), is_integer))
        ti->activation = (unsigned long)json_integer_value(v);
    if (member(r, TM_RESULT, v = json_object_get(root, "result"), is_string))
        snprintf(ti->result, sizeof ti->result, "%s", json_string_value(v));
    if (member(r, TM_QUEUED, v = json_object_get(root, "queued"), is_integer))
        ti->queued = (long)json_integer_value(v);
    if (member(r, TM_DROPPED, v = json_object_get(root, "dropped"), is_integer))
        ti->dropped = (long)json_integer_value(v);
    if (member(r, TM_WORKER, v = json_object_get(root, "worker"), is_integer))
        r->worker = (long)json_integer_value(v);
    if (fb_state_is_final(ti->state))
        ti->ended = ti->at;
    ok = 1;
out:
    json_decref(root);
    if (!ok)
        tracker__report_clear(r);
    return ok;
}

void tracker__set_reactive(struct tracker *tr)
{
    tr->reactive = 1;
}

/* Reactive mode: a state of an activation older than the one known is stale. */
static int apply_reactive(struct tracker *tr, size_t t, const struct task_report *r)
{
    struct task_info *ti = &tr->tasks[t];
    enum fb_state state = r->info.state;
    unsigned long activation = r->info.activation;
    double at;

    /* Only "denied" ends a task from the bus; exits are seen by the coordinator. */
    if (fb_state_is_final(ti->state) || (fb_state_is_final(state) && state != FB_STATE_DENIED) ||
        activation < ti->activation)
        return 0;
    at = r->has & TM_AT ? r->info.at : ti->at;
    ti->activation = activation;
    ti->state = state;
    ti->at = at;
    if (state == FB_STATE_RUNNING) {
        ti->started = at;
        ti->ended = 0;
    } else if (state == FB_STATE_WAITING && activation > 0) {
        ti->ended = at;
    } else if (state == FB_STATE_DENIED) {
        ti->ended = at;
    }
    memcpy(ti->result, r->info.result, sizeof ti->result);
    ti->queued = r->info.queued;
    ti->dropped = r->info.dropped;
    if (r->has & TM_PID)
        ti->pid = r->info.pid;
    ti->has_exit = r->info.has_exit;
    ti->exit_code = r->info.exit_code;
    free(ti->error);
    ti->error = r->info.error ? strdup(r->info.error) : NULL;
    return 1;
}

struct tracker *tracker__new(const struct workflow *wf, const struct graph *g, const char *run_id)
{
    struct tracker *tr = calloc(1, sizeof *tr);
    size_t nv = graph__var_count(g);

    if (!tr)
        goto fail;
    tr->wf = wf;
    tr->g = g;
    tr->run_id = strdup(run_id);
    tr->tasks = calloc(wf->n_tasks + 1, sizeof *tr->tasks);
    tr->var_set = calloc(nv + 1, 1);
    tr->var_value = calloc(nv + 1, sizeof *tr->var_value);
    tr->gstates = calloc(wf->n_tasks + 1, sizeof *tr->gstates);
    tr->reasons = calloc(wf->n_tasks + 1, sizeof *tr->reasons);
    if (!tr->run_id || !tr->tasks || !tr->var_set || !tr->var_value || !tr->gstates || !tr->reasons)
        goto fail;
    return tr;
fail:
    tracker__free(tr);
    return NULL;
}

void tracker__free(struct tracker *tr)
{
    if (!tr)
        return;
    for (size_t i = 0; tr->tasks && i < tr->wf->n_tasks; i++)
        free(tr->tasks[i].error);
    for (size_t i = 0; tr->var_value && i < graph__var_count(tr->g); i++)
        free(tr->var_value[i]);
    for (size_t i = 0; tr->reasons && i < tr->wf->n_tasks; i++)
        free(tr->reasons[i]);
    free(tr->run_id);
    free(tr->tasks);
    free(tr->var_set);
    free(tr->var_value);
    free(tr->gstates);
    free(tr->reasons);
    free(tr);
}

static void set_error(struct task_info *ti, const char *error)
{
    free(ti->error);
    ti->error = error ? strdup(error) : NULL;
}

static void enter(struct task_info *ti, enum fb_state state, double at)
{
    ti->state = state;
    ti->at = at;
    if (state == FB_STATE_RUNNING && ti->started == 0)
        ti->started = at;
    /* A Last Will carries the time its task connected, before it started. */
    if (fb_state_is_final(state))
        ti->ended = at > ti->started ? at : ti->started;
}

/* Applies a state JSON from the bus. Returns 1 if anything visible changed, -1
 * if it repeats the final state with less detail than is known. */
static int apply_state(struct tracker *tr, size_t t, const char *payload, size_t len)
{
    struct task_info *ti = &tr->tasks[t];
    struct task_report r;
    enum fb_state state;
    double at;
    int changed = 0;

    if (!tracker__parse_report(payload, len, &r))
        goto out;
    state = r.info.state;
    if (tr->reactive) {
        changed = apply_reactive(tr, t, &r);
        goto out;
    }
    /*
     * A state of an earlier attempt (a late echo, a Last Will) is history. A
     * final one that comes when this attempt is final too (a Will of attempt 1
     * after attempt 2 finished) is what the retained topic now says: answered
     * as a stale final state is, by publishing the record again.
     */
    if (r.has & TM_ATTEMPT && r.info.attempt < (ti->attempt > 0 ? ti->attempt : 1)) {
        changed = fb_state_is_final(state) && fb_state_is_final(ti->state) ? -1 : 0;
        goto out;
    }
    /*
     * A final state is final. Another final state arriving later (the Last
     * Will of a process the coordinator stopped, which the broker may deliver
     * after the coordinator's record) is answered by publishing the record
     * again, so the retained state ends right whatever the order.
     */
    if (fb_state_is_final(ti->state) && state != ti->state) {
        changed = fb_state_is_final(state) ? -1 : 0;
        goto out;
    }
    if (state == ti->state && ti->signal > 0 && !(r.has & TM_SIGNAL)) {
        changed = -1;
        goto out;
    }
    /* Non-terminal states only move forward: a late "waiting" never undoes "running". */
    if (!fb_state_is_final(state) && state < ti->state)
        goto out;
    at = r.has & TM_AT ? r.info.at : 0;
    changed = state != ti->state;
    enter(ti, state, at > 0 ? at : ti->at);
    if (r.has & TM_STARTED && r.info.started > 0)
        ti->started = r.info.started;
    if (r.has & TM_PID)
        ti->pid = r.info.pid;
    if (r.has & TM_ATTEMPT)
        ti->attempt = r.info.attempt;
    if (r.has & TM_EXIT) {
        ti->has_exit = 1;
        ti->exit_code = r.info.exit_code;
    }
    if (r.has & TM_SIGNAL && r.info.signal > 0) {
        changed |= ti->signal != r.info.signal;
        ti->signal = r.info.signal;
    }
    if (r.has & TM_ERROR && (!ti->error || strcmp(ti->error, r.info.error) != 0)) {
        set_error(ti, r.info.error);
        changed = 1;
    } else if (!(r.has & TM_ERROR) && changed) {
        set_error(ti, NULL);
    }
out:
    tracker__report_clear(&r);
    return changed;
}

enum tracker_event tracker__on_message(struct tracker *tr, const char *topic, const char *payload,
                                       size_t len, size_t *index, const char **text)
{
    fb_topic tp;
    char name[128];
    const char *value;
    long i;

    if (fb_topic_parse(topic, &tp) == FB_TOPIC_NONE || !fb_topic_is_run(&tp, tr->run_id))
        return TRACK_NONE;
    switch (tp.kind) {
    case FB_TOPIC_VAR:
        /* The variable's name is the topic's last level: it ends the string. */
        i = graph__var_index(tr->g, tp.name);
        value = fb_value_decode(payload, len);
        if (i < 0 || (tr->var_set[i] && !tr->reactive) || !value)
            return TRACK_NONE;
        if (tr->reactive && tr->var_set[i]) {
            /* Every publish is an event: the value is the latest. */
            free(tr->var_value[i]);
            tr->var_value[i] = NULL;
            tr->var_set[i] = 0;
        }
        tracker__mark_var(tr, (size_t)i, value);
        *index = (size_t)i;
        return TRACK_VAR;
    case FB_TOPIC_CONTROL:
        *text = payload;
        return TRACK_CONTROL;
    case FB_TOPIC_SYNC:
        *text = tp.name;
        return TRACK_SYNC;
    case FB_TOPIC_TASK_STATE:
    case FB_TOPIC_TASK_LOG:
        if (tp.name_len >= sizeof name)
            return TRACK_NONE;
        memcpy(name, tp.name, tp.name_len);
        name[tp.name_len] = '\0';
        i = workflow__find_task(tr->wf, name);
        if (i < 0)
            return TRACK_NONE;
        *index = (size_t)i;
        if (tp.kind == FB_TOPIC_TASK_STATE) {
            int changed = apply_state(tr, (size_t)i, payload, len);
            return changed < 0 ? TRACK_STALE : changed ? TRACK_TASK : TRACK_NONE;
        }
        *text = payload;
        return TRACK_LOG;
    default:
        return TRACK_NONE;
    }
}

void tracker__retry(struct tracker *tr, size_t t, int attempt, double at, const char *note)
{
    struct task_info *ti = &tr->tasks[t];

    ti->state = FB_STATE_WAITING;
    ti->attempt = attempt;
    ti->at = at;
    ti->started = 0;
    ti->ended = 0;
    ti->has_exit = 0;
    ti->exit_code = 0;
    ti->signal = 0;
    ti->pid = 0;
    set_error(ti, note);
}

int tracker__set(struct tracker *tr, size_t t, enum fb_state state, double at, int exit_code,
                 int signal, const char *error)
{
    struct task_info *ti = &tr->tasks[t];

    if (fb_state_is_final(ti->state) && state != ti->state)
        return 0;
    enter(ti, state, at);
    if (exit_code >= 0) {
        ti->has_exit = 1;
        ti->exit_code = exit_code;
    }
    if (signal > 0)
        ti->signal = signal;
    if (error)
        set_error(ti, error);
    return 1;
}

static enum graph_task_state gstate(enum fb_state s)
{
    switch (s) {
    case FB_STATE_DONE:
        return GT_DONE;
    case FB_STATE_SKIPPED:
        return GT_SKIPPED;
    case FB_STATE_FAILED:
    case FB_STATE_TIMEOUT:
    case FB_STATE_CRASHED:
    case FB_STATE_DENIED:
        return GT_FAILED;
    default:
        return GT_PENDING;
    }
}

size_t tracker__propagate(struct tracker *tr, double at, size_t *skipped)
{
    size_t n = 0, nt = tr->wf->n_tasks;

    for (size_t t = 0; t < nt; t++)
        tr->gstates[t] = gstate(tr->tasks[t].state);
    if (graph__propagate(tr->g, tr->var_set, tr->gstates, tr->reasons) == 0)
        return 0;
    for (size_t t = 0; t < nt; t++) {
        if (tr->gstates[t] == GT_SKIPPED && tr->tasks[t].state != FB_STATE_SKIPPED &&
            !fb_state_is_final(tr->tasks[t].state)) {
            tracker__set(tr, t, FB_STATE_SKIPPED, at, -1, 0, tr->reasons[t]);
            skipped[n++] = t;
        }
        free(tr->reasons[t]);
        tr->reasons[t] = NULL;
    }
    return n;
}

const struct task_info *tracker__task(const struct tracker *tr, size_t t)
{
    return &tr->tasks[t];
}

int tracker__var_set(const struct tracker *tr, size_t var)
{
    return tr->var_set[var];
}

const char *tracker__var_value(const struct tracker *tr, size_t var)
{
    return tr->var_value[var];
}

void tracker__mark_var(struct tracker *tr, size_t var, const char *value)
{
    if (tr->var_set[var])
        return;
    tr->var_set[var] = 1;
    tr->var_value[var] = strdup(value ? value : "");
}

int tracker__finished(const struct tracker *tr)
{
    for (size_t t = 0; t < tr->wf->n_tasks; t++)
        if (!fb_state_is_final(tr->tasks[t].state))
            return 0;
    return 1;
}

/* A task that ended in failure: failed, timed out, crashed or was denied. */
static int failure(enum fb_state s)
{
    return s == FB_STATE_FAILED || s == FB_STATE_TIMEOUT || s == FB_STATE_CRASHED ||
           s == FB_STATE_DENIED;
}

int tracker__exit_code(const struct tracker *tr)
{
    int end_skipped = 0;

    if (tr->reactive) {
        for (size_t t = 0; t < tr->wf->n_tasks; t++)
            if (failure(tr->tasks[t].state))
                return FB_EXIT_FAILED;
        return FB_EXIT_OK;
    }

    for (size_t t = 0; t < tr->wf->n_tasks; t++) {
        enum fb_state s = tr->tasks[t].state;
        if (failure(s) || !fb_state_is_final(s))
            return FB_EXIT_FAILED;
        if (s == FB_STATE_SKIPPED && strcmp(tr->wf->tasks[t].plugin, "end") == 0)
            end_skipped = 1;
    }
    return end_skipped ? FB_EXIT_END_SKIPPED : FB_EXIT_OK;
}

char *tracker__state_json(const struct tracker *tr, size_t t)
{
    const struct task_info *ti = &tr->tasks[t];
    json_t *o = json_object();
    char *s;

    json_object_set_new(o, "state", json_string(fb_state_name(ti->state)));
    json_object_set_new(o, "attempt", json_integer(ti->attempt > 0 ? ti->attempt : 1));
    json_object_set_new(o, "pid", ti->pid > 0 ? json_integer(ti->pid) : json_null());
    json_object_set_new(o, "at", json_real(round(ti->at * 1e6) / 1e6));
    json_object_set_new(o, "started", ti->started > 0 ? json_real(ti->started) : json_null());
    json_object_set_new(o, "exit", ti->has_exit ? json_integer(ti->exit_code) : json_null());
    json_object_set_new(o, "signal", ti->signal > 0 ? json_integer(ti->signal) : json_null());
    json_object_set_new(o, "error", ti->error ? json_string(ti->error) : json_null());
    if (tr->reactive) {
        json_object_set_new(o, "activation", json_integer((json_int_t)ti->activation));
        if (ti->result[0])
            json_object_set_new(o, "result", json_string(ti->result));
    }
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}
