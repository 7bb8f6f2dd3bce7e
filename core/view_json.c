/*
 * view_json.c - the run view as JSON: what `flowbus status --json` prints
 * (see view.h), for scripts and, next, the HTTP server.
 *
 * A task is shown as its last state message was written: the members it had,
 * in the contract's order (which is the order every writer of flowbus uses),
 * null where it said null, a time written as an integer as an integer. A
 * reader of `status --json` thus sees what it would see on the bus, plus the
 * task's name and duration.
 */
#include "view.h"

/* The members of a task state, in the contract's order, with their bits. */
static const struct {
    unsigned bit;
    const char *name;
} members[TM_COUNT] = {
    {TM_STATE, "state"},   {TM_ATTEMPT, "attempt"}, {TM_PID, "pid"},
    {TM_AT, "at"},         {TM_STARTED, "started"}, {TM_EXIT, "exit"},
    {TM_SIGNAL, "signal"}, {TM_ERROR, "error"},     {TM_ACTIVATION, "activation"},
    {TM_RESULT, "result"}, {TM_QUEUED, "queued"},   {TM_DROPPED, "dropped"},
    {TM_WORKER, "worker"},
};

static json_t *time_json(const struct task_report *r, unsigned bit, double t)
{
    /* A time written as an integer is a whole number of seconds, exact in a double. */
    return r->whole & bit ? json_integer((json_int_t)t) : json_real(t);
}

/* The value of member bit of r, which has it. */
static json_t *member_json(const struct task_report *r, unsigned bit)
{
    const struct task_info *ti = &r->info;

    switch (bit) {
    case TM_STATE:
        return json_string(fb_state_name(ti->state));
    case TM_ATTEMPT:
        return json_integer(ti->attempt);
    case TM_PID:
        return json_integer(ti->pid);
    case TM_AT:
        return time_json(r, bit, ti->at);
    case TM_STARTED:
        return time_json(r, bit, ti->started);
    case TM_EXIT:
        return json_integer(ti->exit_code);
    case TM_SIGNAL:
        return json_integer(ti->signal);
    case TM_ERROR:
        return json_string(ti->error);
    case TM_ACTIVATION:
        /* Read from a JSON integer: it fits one again. */
        return json_integer((json_int_t)ti->activation);
    case TM_RESULT:
        return json_string(ti->result);
    case TM_QUEUED:
        return json_integer(ti->queued);
    case TM_DROPPED:
        return json_integer(ti->dropped);
    case TM_WORKER:
        return json_integer(r->worker);
    default:
        return json_null();
    }
}

json_t *view__task_json(const struct view_task *t)
{
    json_t *o = json_object();

    if (!t || !t->reported) {
        json_object_set_new(o, "state", json_null());
        return o;
    }
    for (size_t i = 0; i < TM_COUNT; i++) {
        unsigned bit = members[i].bit;
        if (t->report.has & bit)
            json_object_set_new(o, members[i].name, member_json(&t->report, bit));
        else if (t->report.null & bit)
            json_object_set_new(o, members[i].name, json_null());
    }
    return o;
}

static json_t *num_or_null(double x)
{
    return x >= 0 ? json_real(x) : json_null();
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* What status --json says of a run, without its tasks (the list and one run both say it). */
static json_t *run_json(const struct run_view *rv, double now)
{
    json_t *o = json_object();

    json_object_set_new(o, "run_id", str_or_null(rv->run_id));
    json_object_set_new(o, "workflow", str_or_null(rv->workflow));
    json_object_set_new(o, "state", str_or_null(rv->state_name));
    json_object_set_new(o, "paused", json_boolean(rv->paused));
    json_object_set_new(o, "started", num_or_null(view__started(rv)));
    json_object_set_new(o, "at", num_or_null(rv->at));
    json_object_set_new(o, "duration", num_or_null(view__duration(rv, now)));
    json_object_set_new(o, "exit", rv->has_exit ? json_integer(rv->exit_code) : json_null());
    json_object_set_new(o, "file", str_or_null(rv->path));
    json_object_set_new(o, "mode", json_string(view__reactive(rv) ? "reactive" : "oneshot"));
    if (rv->error)
        json_object_set_new(o, "error", json_string(rv->error));
    return o;
}

json_t *view__run_json(const struct run_view *rv, double now)
{
    json_t *out = run_json(rv, now), *tasks = json_array();

    for (size_t i = 0; i < rv->n_tasks; i++) {
        const struct view_task *t = &rv->tasks[i];
        json_t *o = view__task_json(t);
        json_object_set_new(o, "name", json_string(t->key.name));
        json_object_set_new(o, "duration", num_or_null(view__task_duration(t, now)));
        {
            const char *agent, *host = view__task_host(rv, t->key.name, &agent);
            /* Only when known: a run without an owner record reads as it did before. */
            if (host)
                json_object_set_new(o, "host", json_string(host));
            if (agent)
                json_object_set_new(o, "agent", json_string(agent));
        }
        json_array_append_new(tasks, o);
    }
    json_object_set_new(out, "tasks", tasks);
    return out;
}

json_t *view__list_json(struct run_view *const *runs, size_t n, const char *broker, double now)
{
    json_t *array = json_array();

    for (size_t i = 0; i < n; i++) {
        size_t counts[FB_STATE_COUNT];
        enum fb_state seen[FB_STATE_COUNT];
        size_t n_seen = view__count_states(runs[i], counts, seen);
        json_t *o = run_json(runs[i], now), *c = json_object();
        /* The states in the order the run's tasks first show them. */
        for (size_t k = 0; k < n_seen; k++)
            json_object_set_new(c, fb_state_name(seen[k]),
                                json_integer((json_int_t)counts[seen[k]]));
        json_object_set_new(o, "tasks", c);
        json_array_append_new(array, o);
    }
    return json_pack("{s:s, s:o}", "broker", broker, "runs", array);
}
