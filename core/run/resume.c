/*
 * resume.c - `flowbus resume RUN`: a coordinator takes over a run whose
 * coordinator died.
 *
 * It rebuilds the run from its retained topics (the workflow it was started
 * with, every variable, every task's last state), loads the same file in the
 * same directory, adopts the task processes that are still alive, starts
 * those that never started, and carries on in the ordinary event loop. A
 * task that finished is never run again. A run whose coordinator is alive
 * but paused is only unpaused; any other run with a live owner is refused,
 * and resumes of the same lost run race for it (lease.c): one wins, the
 * others change nothing. The steps, in order: scan the run's processes
 * (adopt.c), open the claim's connection and read what the run left
 * (read_retained, read_record), check_state, load_workflow, race, and for
 * the winner: wait for starts under way (adopt__settle_intents), connect as
 * the run's coordinator, read the run again (with the agents' records, for a
 * run with placed tasks), rebuild, take_over. A placed task is taken over
 * from its placement answer and its agent's record (place.c), never from
 * this host's processes.
 */
#include "internal.h"
#include "display.h"
#include "graph.h"
#include "log.h"
#include "plugins.h"
#include "workflow.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RESUME_WAIT 5.0 /* seconds the broker has to hand over the run's retained topics */

/* The retained messages of the run, as they arrived. */
struct kept {
    fb_msg **msgs;
    size_t n;
};

/* What the run's retained record says. */
struct found {
    json_t *workflow; /* the workflow topic's JSON, or NULL */
    char state[32];   /* the run state's name, or "" */
    int paused;
    const fb_msg *owner; /* the owner record (in kept), or NULL */
};

static int same_text(json_t *j, const char *s)
{
    return json_is_string(j) && strcmp(json_string_value(j), s) == 0;
}

/* 1 if the loaded workflow has the tasks the run was started with. */
static int same_tasks(const struct workflow *wf, json_t *tasks)
{
    size_t i;
    json_t *jt;

    if (!json_is_array(tasks) || json_array_size(tasks) != wf->n_tasks)
        return 0;
    json_array_foreach(tasks, i, jt) {
        const struct wf_task *t = &wf->tasks[i];
        json_t *in = json_object_get(jt, "inputs"), *out = json_object_get(jt, "outputs");
        if (!json_is_string(json_object_get(jt, "name")) ||
            strcmp(json_string_value(json_object_get(jt, "name")), t->name) != 0 ||
            !json_is_string(json_object_get(jt, "plugin")) ||
            strcmp(json_string_value(json_object_get(jt, "plugin")), t->plugin) != 0 ||
            json_array_size(in) != t->inputs.n || json_array_size(out) != t->outputs.n)
            return 0;
        for (size_t k = 0; k < t->inputs.n; k++)
            if (!same_text(json_array_get(in, k), t->inputs.items[k].name))
                return 0;
        for (size_t k = 0; k < t->outputs.n; k++)
            if (!same_text(json_array_get(out, k), t->outputs.items[k].name))
                return 0;
    }
    return 1;
}

/*
 * fb_barrier's callback of read_retained: keeps every message, in arrival
 * order. The retained ones come first (the broker sends them with the
 * subscription); what arrives live after them is newer: a claim published
 * since takes part in the race, and a task that finished meanwhile would
 * otherwise be taken for one that vanished without a final state.
 */
static enum fb_err keep(void *ctx, fb_msg *m)
{
    struct kept *k = ctx;
    fb_msg **grown;

    grown = realloc(k->msgs, (k->n + 1) * sizeof *k->msgs);
    if (!grown) {
        fb_msg_free(m);
        return FB_ERR_NOMEM;
    }
    k->msgs = grown;
    k->msgs[k->n++] = m;
    return FB_OK;
}

/* Everything retained under the run (bus subscribed to all of it) is here once our token is back. */
static int read_retained(struct run *r, fb_bus *bus, struct kept *kept)
{
    char token[FB_TOPIC_MAX];
    enum fb_err e = FB_ERR_INVALID;

    if (fb_barrier_token(token, sizeof token, r->run_id, "resume"))
        e = fb_barrier(bus, token, RESUME_WAIT, keep, kept);
    if (e == FB_ERR_TIMEOUT)
        log_printf(FB_LOG_ERROR, "the broker did not answer within 5 s");
    else if (e != FB_OK)
        log_printf(FB_LOG_ERROR, "cannot read the run's retained topics: %s", fb_strerror(e));
    return e == FB_OK;
}

/* Finds the run's workflow record and run state among the retained messages. */
static void read_record(const struct run *r, const struct kept *kept, struct found *f)
{
    for (size_t i = 0; i < kept->n; i++) {
        const fb_msg *m = kept->msgs[i];
        fb_topic t;
        enum fb_topic_kind kind = fb_topic_parse(m->topic, &t);

        if (!fb_topic_is_run(&t, r->run_id))
            continue;
        if (kind == FB_TOPIC_WORKFLOW && !f->workflow) {
            f->workflow = json_loadb(m->payload, m->len, 0, NULL);
        } else if (kind == FB_TOPIC_OWNER) {
            f->owner = m->len ? m : NULL;
        } else if (kind == FB_TOPIC_RUN_STATE) {
            json_t *st = json_loadb(m->payload, m->len, 0, NULL);
            json_t *name = json_object_get(st, "state");
            snprintf(f->state, sizeof f->state, "%s",
                     json_is_string(name) ? json_string_value(name) : "");
            f->paused = json_is_true(json_object_get(st, "paused"));
            json_decref(st);
        }
    }
}

/*
 * Decides from the run state whether there is something to take over.
 * Returns FB_EXIT_OK to go on (the run is lost and nobody claims it), or the
 * exit code to end with; *lifted is set when the run's live coordinator was
 * only paused.
 */
static int check_state(struct run *r, fb_bus *bus, const struct found *f, const struct kept *kept,
                       int *lifted)
{
    char tp[FB_TOPIC_MAX], payload[32], who[320] = "";
    size_t len;
    int running = fb_run_state_parse(f->state) == FB_RUN_RUNNING;
    json_t *owner = f->owner ? json_loadb(f->owner->payload, f->owner->len, 0, NULL) : NULL;
    const char *host = json_string_value(json_object_get(owner, "host"));
    int code = FB_EXIT_INVALID;

    if (f->owner)
        lease__describe(f->owner->payload, f->owner->len, who, sizeof who);
    if (!f->workflow) {
        fb_topic_format(tp, sizeof tp, FB_TOPIC_WORKFLOW, r->run_id, NULL);
        log_printf(FB_LOG_ERROR, "there is no run '%s' on %s (no retained %s)", r->run_id,
                   r->o->broker_url, tp);
        goto out;
    }
    if (running && f->paused) {
        /* Its coordinator is alive: resuming means lifting the pause (a control
         * message, not a takeover). */
        len = fb_control_format(payload, sizeof payload, FB_CONTROL_RESUME);
        if (!fb_topic_format(tp, sizeof tp, FB_TOPIC_CONTROL, r->run_id, NULL) ||
            fb_bus_publish(bus, tp, payload, len, 1, 1, 0) != FB_OK ||
            fb_bus_flush(bus, 5.0) != FB_OK) {
            log_printf(FB_LOG_ERROR, "the broker did not take the resume request");
            code = FB_EXIT_BROKER;
            goto out;
        }
        printf("run %s resumed\n", r->run_id);
        *lifted = 1;
        code = FB_EXIT_OK;
        goto out;
    }
    if (running) {
        /* The lease is held: the run state's Will has not fired. */
        if (who[0])
            log_printf(FB_LOG_ERROR,
                       "run %s is owned by a live coordinator: %s; nothing to resume (`flowbus "
                       "stop %s` ends it; its state becomes '%s' if its coordinator dies)",
                       r->run_id, who, r->run_id, fb_run_state_name(FB_RUN_LOST));
        else
            log_printf(FB_LOG_ERROR,
                       "run %s is owned by a live coordinator (one that publishes no owner "
                       "record); nothing to resume (its state becomes '%s' if it dies)",
                       r->run_id, fb_run_state_name(FB_RUN_LOST));
        code = FB_EXIT_OWNED;
        goto out;
    }
    if (fb_run_state_parse(f->state) != FB_RUN_LOST) {
        log_printf(FB_LOG_ERROR, "run '%s' is not running (its state is '%s'): nothing to resume",
                   r->run_id, f->state);
        goto out;
    }
    /* A claim seen since our subscription came before ours could: another resume is first. */
    if (lease__first_claim(r, kept->msgs, kept->n) >= 0) {
        code = lease__race(r, NULL, kept->msgs, kept->n);
        goto out;
    }
    if (host && strcmp(host, r->lease.host) != 0) {
        /* Its processes can be seen, and adopted, only there. */
        log_printf(FB_LOG_ERROR,
                   "run %s was run by a coordinator on host %s, where its task processes "
                   "live: resume it there (from here they cannot be seen, and would run twice)",
                   r->run_id, host);
        goto out;
    }
    code = FB_EXIT_OK;
out:
    json_decref(owner);
    return code;
}

/*
 * Loads the run's workflow file in the run's directory, with the values the
 * run started with, except secrets, which come again from the environment
 * through the file's {{ENV:X}} references. 1 if it has the run's tasks.
 */
static int load_workflow(struct run *r, json_t *wj, struct wf_diags *diags)
{
    struct wf_load_options lo = {0};
    struct wf_setting *settings = NULL;
    size_t n_settings = 0;
    const char *path = json_string_value(json_object_get(wj, "path"));
    const char *cwd = json_string_value(json_object_get(wj, "cwd"));
    json_t *env = json_object_get(wj, "env"), *v;
    const char *key;
    int ok = 0;

    if (!path || !cwd) {
        log_printf(FB_LOG_ERROR, "run '%s' did not record its workflow file and directory",
                   r->run_id);
        goto out;
    }
    if (chdir(cwd) != 0) {
        log_printf(FB_LOG_ERROR, "cannot enter the run's directory %s: %s", cwd, strerror(errno));
        goto out;
    }
    snprintf(r->record.path, sizeof r->record.path, "%s", path);
    snprintf(r->record.cwd, sizeof r->record.cwd, "%s", cwd);
    settings = calloc(json_object_size(env) + 1, sizeof *settings);
    if (!settings)
        goto out;
    json_object_foreach(env, key, v) {
        if (json_is_string(v) && strcmp(json_string_value(v), "<secret>") != 0) {
            settings[n_settings].name = key;
            settings[n_settings++].value = json_string_value(v);
        }
    }
    lo.settings = settings;
    lo.n_settings = n_settings;
    lo.lookup = plugins__lookup;
    lo.reactive = same_text(json_object_get(wj, "mode"), "reactive");
    r->wf = workflow__load(path, &lo, diags);
    wf_diags_print(diags, path, stderr);
    if (!r->wf)
        goto out;
    if (!same_tasks(r->wf, json_object_get(wj, "tasks"))) {
        log_printf(FB_LOG_ERROR, "%s changed since run '%s' started: its tasks differ", path,
                   r->run_id);
        goto out;
    }
    ok = 1;
out:
    free(settings);
    return ok;
}

/* Builds the run's tables and feeds the tracker what the run left. 1 on success. */
static int rebuild(struct run *r, json_t *wj, const struct kept *kept)
{
    json_t *v;

    if (!setup__tables(r))
        return 0;
    v = json_object_get(wj, "started");
    if (json_is_number(v))
        r->t0_wall = json_number_value(v);
    for (size_t i = 0; i < r->wf->n_vars; i++) {
        long vi = graph__var_index(r->g, r->wf->vars[i].name);
        if (vi >= 0 && r->wf->vars[i].secret)
            tracker__mark_var(r->tr, (size_t)vi, r->wf->vars[i].value);
    }
    for (size_t i = 0; i < kept->n; i++) {
        size_t idx;
        const char *text;
        const fb_msg *m = kept->msgs[i];
        tracker__on_message(r->tr, m->topic, m->payload, m->len, &idx, &text);
    }
    placement__remember(r, kept->msgs, kept->n);
    return 1;
}

/* What became of the tasks; the counts of the resume's report. */
enum taken { TAKEN_FINISHED, TAKEN_ADOPTED, TAKEN_LOST, TAKEN_STARTED, TAKEN_KINDS };

/* Watches process pid of task t, started by the coordinator that was, as an adopted process. */
static void adopt(struct run *r, size_t t, pid_t pid, int attempt)
{
    struct proc *p = &r->procs[t];

    p->process.pid = pid;
    p->process.adopted = 1;
    p->attempt = attempt;
    p->timer.probe_at = fb_clock_mono();
}

/* An adopted task that runs keeps the execution timeout it started with. */
static void keep_deadline(struct run *r, size_t t)
{
    const struct task_info *ti = tracker__task(r->tr, t);
    const struct wf_task *task = &r->wf->tasks[t];

    if (ti->state == FB_STATE_RUNNING && task->timeout > 0) {
        double late = fb_clock_wall() - ti->started;
        r->procs[t].timer.deadline = fb_clock_mono() + task->timeout - (late > 0 ? late : 0);
    }
}

/* A failure decided while the run had no coordinator (a Last Will) with attempts left. */
static int retry_left(const struct run *r, size_t t, int attempt)
{
    enum fb_state s = tracker__task(r->tr, t)->state;

    return !r->reactive && attempt <= r->wf->tasks[t].retries &&
           (s == FB_STATE_FAILED || s == FB_STATE_TIMEOUT || s == FB_STATE_CRASHED);
}

/*
 * Takes over task t as its last state says: finished, adopted, lost or
 * (re)started. seen is the scan made before the run was read: a process of
 * the task alive then is adopted even if it has exited since (its final
 * state, published before it exited, arrives through the subscription). A
 * placed task is taken over from what its agent said (kept), not from seen:
 * its process is another host's, even when that host is this one.
 */
static enum taken take_over_task(struct run *r, size_t t, const struct seen *seen,
                                 const struct kept *kept)
{
    const struct task_info *ti = tracker__task(r->tr, t);
    const struct wf_task *task = &r->wf->tasks[t];
    struct proc *p = &r->procs[t];
    int attempt = ti->attempt > 0 ? ti->attempt : 1;
    pid_t pid;

    if (fb_state_is_final(ti->state) && retry_left(r, t, attempt)) {
        /* As its coordinator would have on that state: the next attempt, after the backoff. */
        p->attempt = attempt;
        supervisor__on_final(r, t);
        announce__task_state(r, t);
        return TAKEN_LOST;
    }
    if (fb_state_is_final(ti->state))
        return TAKEN_FINISHED;
    if (placement__remote(r, t)) {
        switch (placement__resume(r, t, attempt, kept->msgs, kept->n)) {
        case PLACEMENT_ADOPTED:
            keep_deadline(r, t);
            return TAKEN_ADOPTED;
        case PLACEMENT_LOST:
            return TAKEN_LOST;
        case PLACEMENT_OFFER:
            break;
        }
        launch__start(r, t, attempt);
        return TAKEN_STARTED;
    }
    if ((pid = adopt__pid(seen, task->name, ti->pid)) != 0) {
        /* Also a process started but not connected yet when its coordinator died. */
        adopt(r, t, pid, attempt);
        keep_deadline(r, t);
        return TAKEN_ADOPTED;
    }
    if (ti->state == FB_STATE_RUNNING) {
        tracker__set(r->tr, t, FB_STATE_CRASHED, fb_clock_wall(), -1, 0,
                     "its process was gone when the coordinator resumed");
        announce__task_state(r, t);
        p->attempt = attempt;
        supervisor__on_final(r, t);
        return TAKEN_LOST;
    }
    launch__start(r, t, attempt);
    return TAKEN_STARTED;
}

/* Announces the run as ours and running again, and takes over every task. */
static void take_over(struct run *r, const struct seen *seen, const struct kept *kept)
{
    size_t counts[TAKEN_KINDS] = {0};

    launch__context(r);
    /* Who holds the run, then the run state that says it is alive again. */
    lease__publish(r, 0);
    announce__run_state(r, FB_RUN_RUNNING, -1, 0);
    for (size_t t = 0; t < r->wf->n_tasks; t++)
        counts[take_over_task(r, t, seen, kept)]++;
    display__note(r->disp,
                  "Resumed run %s of %s on %s: %zu finished, %zu adopted, %zu lost, %zu started",
                  r->run_id, r->wf->name, r->o->broker_url, counts[TAKEN_FINISHED],
                  counts[TAKEN_ADOPTED], counts[TAKEN_LOST], counts[TAKEN_STARTED]);
    for (size_t t = 0; t < r->wf->n_tasks; t++)
        display__task(r->disp, t);
}

static void free_kept(struct kept *kept)
{
    for (size_t i = 0; i < kept->n; i++)
        fb_msg_free(kept->msgs[i]);
    free(kept->msgs);
    kept->msgs = NULL;
    kept->n = 0;
}

int resume__start(struct run *r, struct wf_diags *diags, int *lifted)
{
    const struct run_options *o = r->o;
    struct kept kept = {NULL, 0};
    struct found found = {NULL, "", 0, NULL};
    struct claim claim = {0};
    struct seen seen = {NULL, 0};
    int code = FB_EXIT_INVALID;

    *lifted = 0;
    if (!o->run_id || !o->broker_url) {
        log_printf(FB_LOG_ERROR, "resume needs the run id and the broker it runs on (--broker or "
                                 "FLOWBUS_BROKER)");
        goto out;
    }
    snprintf(r->run_id, sizeof r->run_id, "%s", o->run_id);
    code = FB_EXIT_BROKER;
    if (!setup__signals(r) || !lease__init(r))
        goto out;
    /* The processes first, the run's record after (adopt.c says why). */
    adopt__scan(r->run_id, &seen);
    if (!lease__claim_open(r, &claim) || !read_retained(r, claim.bus, &kept))
        goto out;
    read_record(r, &kept, &found);
    code = check_state(r, claim.bus, &found, &kept, lifted);
    if (code != FB_EXIT_OK || *lifted)
        goto out;
    code = FB_EXIT_INVALID;
    if (!load_workflow(r, found.workflow, diags) || !placement__check(r))
        goto out;
    code = lease__race(r, &claim, kept.msgs, kept.n);
    if (code != FB_EXIT_OK)
        goto out;
    /* Won: nobody else acts on the run from here. */
    adopt__settle_intents(r, kept.msgs, kept.n, &seen);
    free_kept(&kept);
    code = FB_EXIT_BROKER;
    /* The agents' records before the read: they come with it (retained), as the run's do. */
    if (!setup__connect(r, o->broker_url, o->username, o->password) ||
        !placement__subscribe(r) || !read_retained(r, r->bus, &kept) ||
        !rebuild(r, found.workflow, &kept))
        goto out;
    take_over(r, &seen, &kept);
    /* The run state says who owns the run before the claim goes. */
    if (fb_bus_flush(r->bus, 5.0) != FB_OK)
        log_printf(FB_LOG_WARN, "the broker did not confirm the run's new owner record");
    code = FB_EXIT_OK;
out:
    lease__claim_close(&claim);
    adopt__free(&seen);
    free_kept(&kept);
    json_decref(found.workflow);
    return code;
}
