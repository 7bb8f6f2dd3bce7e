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
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct tracker {
    int reactive;
    const struct workflow *wf;
    const struct graph *g;
    char *root; /* "flowbus/<run>/" */
    size_t root_len;
    struct task_info *tasks;
    unsigned char *var_set;
    char **var_value;
    enum graph_task_state *gstates;
    char **reasons;
};

static const char *const state_names[] = {
    [TS_NONE] = "pending", [TS_WAITING] = "waiting", [TS_RUNNING] = "running",
    [TS_DONE] = "done",    [TS_FAILED] = "failed",   [TS_TIMEOUT] = "timeout",
    [TS_CRASHED] = "crashed", [TS_SKIPPED] = "skipped", [TS_DENIED] = "denied",
    [TS_STOPPED] = "stopped",
};

const char *tracker__state_name(enum task_state s)
{
    return (unsigned)s < sizeof state_names / sizeof state_names[0] ? state_names[s] : "?";
}

static enum task_state parse_state(const char *s)
{
    for (size_t i = TS_WAITING; i < sizeof state_names / sizeof state_names[0]; i++)
        if (strcmp(s, state_names[i]) == 0)
            return (enum task_state)i;
    return TS_NONE;
}

int tracker__terminal(enum task_state s)
{
    return s >= TS_DONE;
}

void tracker__set_reactive(struct tracker *tr)
{
    tr->reactive = 1;
}

/* Reactive mode: a state of an activation older than the one known is stale. */
static int apply_reactive(struct tracker *tr, size_t t, json_t *root, enum task_state state)
{
    struct task_info *ti = &tr->tasks[t];
    json_t *v = json_object_get(root, "activation");
    unsigned long activation = json_is_integer(v) ? (unsigned long)json_integer_value(v) : 0;
    double at;

    /* Only "denied" ends a task from the bus; exits are seen by the coordinator. */
    if (tracker__terminal(ti->state) ||
        (tracker__terminal(state) && state != TS_DENIED) || activation < ti->activation)
        return 0;
    v = json_object_get(root, "at");
    at = json_is_number(v) ? json_number_value(v) : ti->at;
    ti->activation = activation;
    ti->state = state;
    ti->at = at;
    if (state == TS_RUNNING) {
        ti->started = at;
        ti->ended = 0;
    } else if (state == TS_WAITING && activation > 0) {
        ti->ended = at;
    } else if (state == TS_DENIED) {
        ti->ended = at;
    }
    v = json_object_get(root, "result");
    snprintf(ti->result, sizeof ti->result, "%s", json_is_string(v) ? json_string_value(v) : "");
    v = json_object_get(root, "queued");
    ti->queued = json_is_integer(v) ? (long)json_integer_value(v) : 0;
    v = json_object_get(root, "dropped");
    ti->dropped = json_is_integer(v) ? (long)json_integer_value(v) : 0;
    v = json_object_get(root, "pid");
    if (json_is_integer(v))
        ti->pid = (long)json_integer_value(v);
    v = json_object_get(root, "exit");
    ti->has_exit = json_is_integer(v);
    ti->exit_code = ti->has_exit ? (int)json_integer_value(v) : 0;
    v = json_object_get(root, "error");
    free(ti->error);
    ti->error = json_is_string(v) ? strdup(json_string_value(v)) : NULL;
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
    tr->root_len = strlen("flowbus/") + strlen(run_id) + 1;
    tr->root = malloc(tr->root_len + 1);
    tr->tasks = calloc(wf->n_tasks + 1, sizeof *tr->tasks);
    tr->var_set = calloc(nv + 1, 1);
    tr->var_value = calloc(nv + 1, sizeof *tr->var_value);
    tr->gstates = calloc(wf->n_tasks + 1, sizeof *tr->gstates);
    tr->reasons = calloc(wf->n_tasks + 1, sizeof *tr->reasons);
    if (!tr->root || !tr->tasks || !tr->var_set || !tr->var_value || !tr->gstates || !tr->reasons)
        goto fail;
    strcpy(tr->root, "flowbus/");
    strcat(tr->root, run_id);
    strcat(tr->root, "/");
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
    free(tr->root);
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

static void enter(struct task_info *ti, enum task_state state, double at)
{
    ti->state = state;
    ti->at = at;
    if (state == TS_RUNNING && ti->started == 0)
        ti->started = at;
    /* A Last Will carries the time its task connected, before it started. */
    if (tracker__terminal(state))
        ti->ended = at > ti->started ? at : ti->started;
}

/* Applies a state JSON from the bus. Returns 1 if anything visible changed, -1
 * if it repeats the final state with less detail than is known. */
static int apply_state(struct tracker *tr, size_t t, const char *payload, size_t len)
{
    struct task_info *ti = &tr->tasks[t];
    json_t *root = json_loadb(payload, len, 0, NULL);
    json_t *v;
    enum task_state state;
    double at;
    int changed = 0;

    if (!json_is_object(root))
        goto out;
    v = json_object_get(root, "state");
    if (!json_is_string(v))
        goto out;
    state = parse_state(json_string_value(v));
    if (state == TS_NONE)
        goto out;
    if (tr->reactive) {
        changed = apply_reactive(tr, t, root, state);
        goto out;
    }
    /* A state of an earlier attempt (a late echo, a Last Will) is history. */
    v = json_object_get(root, "attempt");
    if (json_is_integer(v) && json_integer_value(v) < (ti->attempt > 0 ? ti->attempt : 1))
        goto out;
    /*
     * A final state is final. Another final state arriving later (the Last
     * Will of a process the coordinator stopped, which the broker may deliver
     * after the coordinator's record) is answered by publishing the record
     * again, so the retained state ends right whatever the order.
     */
    if (tracker__terminal(ti->state) && state != ti->state) {
        changed = tracker__terminal(state) ? -1 : 0;
        goto out;
    }
    if (state == ti->state && ti->signal > 0 && !json_is_integer(json_object_get(root, "signal"))) {
        changed = -1;
        goto out;
    }
    /* Non-terminal states only move forward: a late "waiting" never undoes "running". */
    if (!tracker__terminal(state) && state < ti->state)
        goto out;
    v = json_object_get(root, "at");
    at = json_is_number(v) ? json_number_value(v) : 0;
    changed = state != ti->state;
    enter(ti, state, at > 0 ? at : ti->at);
    v = json_object_get(root, "started");
    if (json_is_number(v) && json_number_value(v) > 0)
        ti->started = json_number_value(v);
    v = json_object_get(root, "pid");
    if (json_is_integer(v))
        ti->pid = (long)json_integer_value(v);
    v = json_object_get(root, "attempt");
    if (json_is_integer(v))
        ti->attempt = (int)json_integer_value(v);
    v = json_object_get(root, "exit");
    if (json_is_integer(v)) {
        ti->has_exit = 1;
        ti->exit_code = (int)json_integer_value(v);
    }
    v = json_object_get(root, "signal");
    if (json_is_integer(v) && json_integer_value(v) > 0) {
        changed |= ti->signal != (int)json_integer_value(v);
        ti->signal = (int)json_integer_value(v);
    }
    v = json_object_get(root, "error");
    if (json_is_string(v) && (!ti->error || strcmp(ti->error, json_string_value(v)) != 0)) {
        set_error(ti, json_string_value(v));
        changed = 1;
    } else if (!json_is_string(v) && changed) {
        set_error(ti, NULL);
    }
out:
    json_decref(root);
    return changed;
}

enum tracker_event tracker__on_message(struct tracker *tr, const char *topic, const char *payload,
                                       size_t len, size_t *index, const char **text)
{
    const char *rest;
    long i;

    if (strncmp(topic, tr->root, tr->root_len) != 0)
        return TRACK_NONE;
    rest = topic + tr->root_len;
    if (strncmp(rest, "vars/", 5) == 0) {
        i = graph__var_index(tr->g, rest + 5);
        if (i < 0 || (tr->var_set[i] && !tr->reactive) || len == 0)
            return TRACK_NONE;
        if (tr->reactive && tr->var_set[i]) {
            /* Every publish is an event: the value is the latest. */
            free(tr->var_value[i]);
            tr->var_value[i] = NULL;
            tr->var_set[i] = 0;
        }
        /* A single NUL byte is the contract's spelling of the empty string. */
        tracker__mark_var(tr, (size_t)i, len == 1 && payload[0] == '\0' ? "" : payload);
        *index = (size_t)i;
        return TRACK_VAR;
    }
    if (strcmp(rest, "control") == 0) {
        *text = payload;
        return TRACK_CONTROL;
    }
    if (strncmp(rest, "sync/", 5) == 0) {
        *text = rest + 5;
        return TRACK_SYNC;
    }
    if (strncmp(rest, "tasks/", 6) == 0) {
        const char *name = rest + 6, *slash = strchr(name, '/');
        char buf[128];
        if (!slash || (size_t)(slash - name) >= sizeof buf)
            return TRACK_NONE;
        memcpy(buf, name, (size_t)(slash - name));
        buf[slash - name] = '\0';
        i = workflow__find_task(tr->wf, buf);
        if (i < 0)
            return TRACK_NONE;
        *index = (size_t)i;
        if (strcmp(slash, "/state") == 0) {
            int changed = apply_state(tr, (size_t)i, payload, len);
            return changed < 0 ? TRACK_STALE : changed ? TRACK_TASK : TRACK_NONE;
        }
        if (strcmp(slash, "/log") == 0) {
            *text = payload;
            return TRACK_LOG;
        }
    }
    return TRACK_NONE;
}

void tracker__retry(struct tracker *tr, size_t t, int attempt, double at, const char *note)
{
    struct task_info *ti = &tr->tasks[t];

    ti->state = TS_WAITING;
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

int tracker__set(struct tracker *tr, size_t t, enum task_state state, double at, int exit_code,
                 int signal, const char *error)
{
    struct task_info *ti = &tr->tasks[t];

    if (tracker__terminal(ti->state) && state != ti->state)
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

static enum graph_task_state gstate(enum task_state s)
{
    switch (s) {
    case TS_DONE:
        return GT_DONE;
    case TS_SKIPPED:
        return GT_SKIPPED;
    case TS_FAILED:
    case TS_TIMEOUT:
    case TS_CRASHED:
    case TS_DENIED:
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
        if (tr->gstates[t] == GT_SKIPPED && tr->tasks[t].state != TS_SKIPPED &&
            !tracker__terminal(tr->tasks[t].state)) {
            tracker__set(tr, t, TS_SKIPPED, at, -1, 0, tr->reasons[t]);
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
        if (!tracker__terminal(tr->tasks[t].state))
            return 0;
    return 1;
}

int tracker__exit_code(const struct tracker *tr)
{
    int end_skipped = 0;

    if (tr->reactive) {
        for (size_t t = 0; t < tr->wf->n_tasks; t++) {
            enum task_state s = tr->tasks[t].state;
            if (s == TS_FAILED || s == TS_TIMEOUT || s == TS_CRASHED || s == TS_DENIED)
                return 1;
        }
        return 0;
    }

    for (size_t t = 0; t < tr->wf->n_tasks; t++) {
        enum task_state s = tr->tasks[t].state;
        if (s == TS_FAILED || s == TS_TIMEOUT || s == TS_CRASHED || s == TS_DENIED ||
            !tracker__terminal(s))
            return 1;
        if (s == TS_SKIPPED && strcmp(tr->wf->tasks[t].plugin, "end") == 0)
            end_skipped = 1;
    }
    return end_skipped ? 3 : 0;
}

char *tracker__state_json(const struct tracker *tr, size_t t)
{
    const struct task_info *ti = &tr->tasks[t];
    json_t *o = json_object();
    char *s;

    json_object_set_new(o, "state", json_string(tracker__state_name(ti->state)));
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
