/*
 * place.c - tasks with `runs_on:`: which agent runs each, and what it says back.
 *
 * The coordinator follows the agents' retained records (flowbus/agents/+)
 * and chooses for each attempt the live agent with every label of the task
 * that carries the least load (its running tasks and the offers this run has
 * out to it), ties broken by free capacity, then name: one explicit choice,
 * deterministic, readable in the records (docs/distributed.md, "Placement",
 * says why not a shared subscription). The offer goes to the agent's inbox;
 * the agent answers on the task's placement topic: refused (full, no such
 * plugin, an offer for an instance before a restart; also no answer within
 * OFFER_PATIENCE) sends the offer to the next agent; failed (a secret it
 * does not hold, a start that failed) fails the attempt; started names the
 * pid; exited is the process's reap. With no agent able to take it the task
 * waits, its state saying why, until an agent's record changes; its
 * execution.timeout (and the run's --timeout) bound the wait.
 *
 * An agent whose record goes offline (its Will, after kill -9 or a lost
 * host) or comes back as another instance takes its tasks with it: each is
 * crashed, and retried elsewhere if it has retries left.
 *
 * A `flowbus resume` reads the placements and the agents' records the run
 * left (placement__remember, placement__resume): a task started on an agent
 * that is still the same instance and online is adopted as it was; one
 * whose agent went offline or restarted meanwhile is lost (crashed, retried);
 * one whose exit the agent reported is decided from that exit; one never
 * started is offered again. A "started" answer to an offer that is no longer
 * the attempt's (sent before a resume, or answered after OFFER_PATIENCE) is
 * killed at once, so that the attempt cannot run twice; being the same task
 * and attempt, what it publishes is told apart by its pid and ignored
 * (placement__stray_state).
 *
 * No secret's value is in an offer: secrets go by name, and the agent gives
 * its own (core/agent/offer.c).
 */
#define _GNU_SOURCE
#include "internal.h"
#include "display.h"
#include "log.h"
#include "workflow.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OFFER_PATIENCE 2.0 /* seconds an agent has to answer an offer before the next is tried */
#define KILL_CONFIRM 3.0   /* seconds an agent has to report the exit of a task it was told to kill */

static int has_runs_on(const struct workflow *wf)
{
    for (size_t t = 0; t < wf->n_tasks; t++)
        if (wf->tasks[t].runs_on.n)
            return 1;
    return 0;
}

int placement__remote(const struct run *r, size_t t)
{
    return r->wf->tasks[t].runs_on.n > 0;
}

int placement__check(struct run *r)
{
    const struct workflow *wf = r->wf;

    r->place.used = has_runs_on(wf);
    if (!r->place.used)
        return 1;
    for (size_t t = 0; t < wf->n_tasks; t++) {
        const struct wf_task *task = &wf->tasks[t];
        if (!task->runs_on.n)
            continue;
        if (!r->o->broker_url) {
            log_printf(FB_LOG_ERROR,
                       "%s:%d:%d: task '%s' has runs_on, but the run has a private broker that "
                       "no agent can reach; run it with --broker URL, the broker the agents use",
                       wf->file, task->runs_on.items[0].pos.line, task->runs_on.items[0].pos.col,
                       task->name);
            return 0;
        }
    }
    r->place.agents = json_object();
    return r->place.agents != NULL;
}

int placement__subscribe(struct run *r)
{
    char f[2][FB_TOPIC_MAX];
    const char *filters[2] = {f[0], f[1]};

    if (!r->place.used)
        return 1;
    /* A resume follows the whole run already (setup__connect): the answers are in it. */
    if (!fb_topic_filter(f[0], sizeof f[0], FB_TOPIC_AGENT, NULL, NULL) ||
        !fb_topic_filter(f[1], sizeof f[1], FB_TOPIC_TASK_PLACEMENT, r->run_id, NULL) ||
        fb_bus_subscribe(r->bus, filters, r->o->resume ? 1 : 2, 5.0) != FB_OK) {
        log_printf(FB_LOG_ERROR, "cannot subscribe to the agents' records (%s)", f[0]);
        return 0;
    }
    return 1;
}

/* "a,b" of task t's labels, into buf. */
static const char *labels_text(const struct wf_task *task, char *buf, size_t size)
{
    size_t used = 0;

    buf[0] = '\0';
    for (size_t k = 0; k < task->runs_on.n; k++) {
        int n = snprintf(buf + used, size - used, "%s%s", k ? "," : "", task->runs_on.items[k].name);
        if (n < 0 || (size_t)n >= size - used)
            break;
        used += (size_t)n;
    }
    return buf;
}

/* 1 if the agent's record rec is online and has every label of task. */
static int matches(const json_t *rec, const struct wf_task *task)
{
    const json_t *labels = json_object_get(rec, "labels");
    const char *state = json_string_value(json_object_get(rec, "state"));

    if (!state || strcmp(state, FB_AGENT_ONLINE) != 0)
        return 0;
    for (size_t k = 0; k < task->runs_on.n; k++) {
        size_t i;
        const json_t *l;
        int found = 0;
        json_array_foreach(labels, i, l) found |= json_is_string(l) &&
                                                   !strcmp(json_string_value(l),
                                                           task->runs_on.items[k].name);
        if (!found)
            return 0;
    }
    return 1;
}

/* 1 if agent record rec lists the task started by offer. */
static int record_lists(const json_t *rec, const char *offer)
{
    const json_t *item;
    size_t k;

    json_array_foreach(json_object_get(rec, "tasks"), k, item)
    {
        const char *o = json_string_value(json_object_get(item, "offer"));
        if (o && !strcmp(o, offer))
            return 1;
    }
    return 0;
}

/* This run's load on agent name that its record rec does not count yet: offers not
 * answered, and tasks it started after it last published its record (the answer
 * can come first), so that a pool's workers spread over agents offered at once. */
static long load_unseen(const struct run *r, const char *name, const json_t *rec)
{
    long n = 0;

    for (size_t i = 0; i < r->n_procs; i++) {
        const struct proc *p = &r->procs[i];
        if (strcmp(p->remote.agent, name) != 0)
            continue;
        if (p->remote.phase == REMOTE_OFFERED ||
            (p->remote.phase == REMOTE_STARTED && !record_lists(rec, p->remote.offer)))
            n++;
    }
    return n;
}

/* The agent to offer process i's attempt to, or NULL; *why says why none (for the wait). */
static const char *choose(struct run *r, size_t i, char *why, size_t size)
{
    const struct wf_task *task = &r->wf->tasks[r->procs[i].task];
    const json_t *refused = r->procs[i].remote.refused;
    const char *best = NULL, *name;
    long best_load = 0, best_free = 0;
    json_t *rec;
    size_t used = 0;
    char labels[512];

    why[0] = '\0';
    json_object_foreach(r->place.agents, name, rec)
    {
        long running = (long)json_integer_value(json_object_get(rec, "running"));
        long cap = (long)json_integer_value(json_object_get(rec, "capacity"));
        long load = running + load_unseen(r, name, rec);
        long free_slots = cap > 0 ? cap - load : 1000000;
        const json_t *no = json_object_get(refused, name);
        if (!matches(rec, task))
            continue;
        if (no || (cap > 0 && load >= cap)) {
            const char *reason = no ? json_string_value(json_object_get(no, "reason")) : "full";
            int n = snprintf(why + used, size - used, "%s%s: %s", used ? "; " : "", name,
                             reason ? reason : "refused");
            if (n > 0 && (size_t)n < size - used)
                used += (size_t)n;
            continue;
        }
        if (!best || load < best_load || (load == best_load && free_slots > best_free) ||
            (load == best_load && free_slots == best_free && strcmp(name, best) < 0)) {
            best = name;
            best_load = load;
            best_free = free_slots;
        }
    }
    if (!best) {
        char detail[1024];
        snprintf(detail, sizeof detail, "%s", why);
        if (detail[0])
            snprintf(why, size, "no agent with labels %s can take it now (%s)",
                     labels_text(task, labels, sizeof labels), detail);
        else
            snprintf(why, size, "no agent with labels %s", labels_text(task, labels, sizeof labels));
    }
    return best;
}

/* The offer of process i's attempt to agent rec: the task as its environment needs it. */
static char *offer_text(struct run *r, size_t i, const json_t *rec)
{
    const struct proc *p = &r->procs[i];
    const struct wf_task *task = &r->wf->tasks[p->task];
    const struct wf_auth *auth = &r->wf->auth;
    json_t *o = json_object(), *lists[4], *secrets = json_array();
    const struct wf_list *src[4] = {&task->inputs, &task->outputs, &task->depends_on,
                                    &task->permissions};
    static const char *const keys[4] = {"inputs", "outputs", "depends_on", "permissions"};
    char *text;

    json_object_set_new(o, "cmd", json_string("offer"));
    json_object_set_new(o, "run", json_string(r->run_id));
    json_object_set_new(o, "task", json_string(task->name));
    json_object_set_new(o, "attempt", json_integer(p->attempt));
    json_object_set_new(o, "offer", json_string(p->remote.offer));
    json_object_set_new(o, "instance", json_incref(json_object_get(rec, "instance")));
    json_object_set_new(o, "coordinator", json_string(r->lease.id));
    json_object_set_new(o, "plugin", json_string(task->plugin));
    for (int k = 0; k < 4; k++) {
        lists[k] = json_array();
        for (size_t n = 0; n < src[k]->n; n++)
            json_array_append_new(lists[k], json_string(src[k]->items[n].name));
        json_object_set_new(o, keys[k], lists[k]);
    }
    json_object_set_new(o, "params", json_incref(task->params));
    json_object_set_new(o, "timeout", json_real(task->timeout));
    json_object_set_new(o, "requires_auth", json_boolean(task->requires_auth));
    if (auth->set)
        json_object_set_new(o, "auth",
                            json_pack("{s:s?,s:f,s:f,s:s?}", "url", auth->url, "timeout",
                                      auth->timeout, "cache_ttl", auth->cache_ttl, "ca_file",
                                      auth->ca_file));
    /* Secrets by name only: the agent gives the values it holds, or fails the task. */
    for (size_t v = 0; v < r->wf->n_vars; v++) {
        const struct wf_var *var = &r->wf->vars[v];
        int wanted = workflow__list_has(&task->inputs, var->name) ||
                     (!strcmp(var->name, "AUTH_TOKEN") &&
                      (task->requires_auth || task->permissions.n > 0));
        if (var->secret && wanted)
            json_array_append_new(secrets, json_string(var->name));
    }
    json_object_set_new(o, "secrets", secrets);
    /* A reactive task's process lives on and reacts; the agent gives it the mode,
     * its triggers, queue bound and overflow, and its place in its pool. */
    if (r->reactive) {
        json_t *trigger = json_array();
        for (size_t n = 0; n < task->trigger.n; n++)
            json_array_append_new(trigger, json_string(task->trigger.items[n].name));
        json_object_set_new(o, "reactive",
                            json_pack("{s:i,s:i,s:o,s:i,s:s}", "worker", p->worker, "workers",
                                      task->workers > 1 ? task->workers : 1, "trigger", trigger,
                                      "queue", task->queue, "overflow",
                                      workflow__overflow_name(task->overflow)));
    }
    text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

/* Says (once per reason) why process i's task waits for an agent, in its state. */
static void say_waiting(struct run *r, size_t i, const char *why)
{
    struct proc *p = &r->procs[i];
    size_t t = p->task;
    const struct task_info *ti = tracker__task(r->tr, t);

    if (p->remote.phase == REMOTE_WAITING && ti->error && !strcmp(ti->error, why))
        return;
    tracker__retry(r->tr, t, p->attempt, fb_clock_wall(), why);
    announce__task_state(r, t);
    display__task(r->disp, t);
}

void placement__offer(struct run *r, size_t i)
{
    struct proc *p = &r->procs[i];
    const struct wf_task *task = &r->wf->tasks[p->task];
    char why[1536], inbox[FB_TOPIC_MAX], *text = NULL;
    const char *name;
    const json_t *rec;

    p->remote.on = 1;
    /* A task decided meanwhile (skipped: an input can never be set) is offered to nobody. */
    if (r->sup.interrupted || r->sup.finishing ||
        (fb_state_is_final(tracker__task(r->tr, p->task)->state) && !p->retry.pending)) {
        p->timer.wait_until = 0;
        p->remote.phase = REMOTE_NONE;
        return;
    }
    name = choose(r, i, why, sizeof why);
    if (!name) {
        say_waiting(r, i, why);
        p->remote.phase = REMOTE_WAITING;
        p->timer.place_at = 0;
        /* One-shot: execution.timeout bounds the wait. A reactive task's timeout
         * bounds each activation, and a reactive run waits for an agent as long
         * as it runs. */
        if (!r->reactive && task->timeout > 0 && !timer_set(p->timer.wait_until))
            p->timer.wait_until = fb_clock_mono() + task->timeout;
        return;
    }
    rec = json_object_get(r->place.agents, name);
    snprintf(p->remote.agent, sizeof p->remote.agent, "%s", name);
    snprintf(p->remote.instance, sizeof p->remote.instance, "%s",
             json_string_value(json_object_get(rec, "instance"))
                 ? json_string_value(json_object_get(rec, "instance"))
                 : "");
    snprintf(p->remote.offer, sizeof p->remote.offer, "%.16s-%u", r->lease.id, ++r->place.counter);
    text = offer_text(r, i, rec);
    if (!text || !fb_topic_format(inbox, sizeof inbox, FB_TOPIC_AGENT_INBOX, NULL, name) ||
        fb_bus_publish(r->bus, inbox, text, strlen(text), 1, 0, 0) != FB_OK) {
        log_printf(FB_LOG_WARN, "%s: could not send the offer to agent %s", task->name, name);
        p->remote.phase = REMOTE_WAITING;
        p->timer.place_at = fb_clock_mono() + OFFER_PATIENCE;
        goto out;
    }
    p->remote.phase = REMOTE_OFFERED;
    p->timer.place_at = fb_clock_mono() + OFFER_PATIENCE;
out:
    free(text);
}

/* Agent name refused process i's attempt (or did not answer): the next is tried. */
static void refused(struct run *r, size_t i, const char *name, const char *reason, int full)
{
    struct proc *p = &r->procs[i];

    if (!p->remote.refused)
        p->remote.refused = json_object();
    json_object_set_new(p->remote.refused, name,
                        json_pack("{s:s,s:b,s:s}", "reason", reason ? reason : "refused", "full",
                                  full, "instance", p->remote.instance));
    p->remote.phase = REMOTE_NONE;
    p->timer.place_at = 0;
    if (p->process.kill != KILL_NONE || r->sup.interrupted || r->sup.finishing) {
        /* It was being stopped: there is nothing to start any more. */
        announce__task_state(r, p->task);
        return;
    }
    placement__offer(r, i);
}

/* The task of process i failed on its agent before it ran (a secret it lacks, a failed start). */
static void failed(struct run *r, size_t i, const char *reason)
{
    struct proc *p = &r->procs[i];
    size_t t = p->task;

    p->remote.phase = REMOTE_NONE;
    p->timer.place_at = 0;
    p->timer.wait_until = 0;
    tracker__set(r->tr, t, FB_STATE_FAILED, fb_clock_wall(), -1, 0, reason);
    announce__task_state(r, t);
    display__task(r->disp, t);
    supervisor__on_final(r, t);
    if (p->retry.pending)
        p->timer.retry_at = fb_clock_mono() + p->retry.delay;
}

/* Process i's task is gone with its agent: crashed (retried if it may be), its process reaped. */
static void lost(struct run *r, size_t i, const char *why)
{
    struct proc *p = &r->procs[i];
    size_t t = p->task;

    if (p->remote.phase == REMOTE_OFFERED) {
        refused(r, i, p->remote.agent, why, 0);
        return;
    }
    /* Gone as if killed: what the task said before (a done on its way) is read first,
     * through the sync probe of a process that exited without a final state; if
     * nothing final came, it crashed, for this reason (supervisor__resolve_exit). */
    snprintf(p->remote.lost, sizeof p->remote.lost, "%s", why);
    display__note(r->disp, "%s: %s", r->wf->tasks[t].name, why);
    supervisor__remote_exit(r, i, SIGKILL);
}

/* An agent's record: kept; an agent gone or restarted loses its tasks; waiting tasks try again. */
static void on_record(struct run *r, const fb_topic *tp, const fb_msg *m)
{
    char name[FB_NAME_MAX + 1], why[512];
    json_t *rec = m->len ? json_loadb(m->payload, m->len, 0, NULL) : NULL;
    const char *state = json_string_value(json_object_get(rec, "state"));
    const char *instance = json_string_value(json_object_get(rec, "instance"));
    int online = state && !strcmp(state, FB_AGENT_ONLINE);

    if (tp->name_len >= sizeof name)
        goto out;
    memcpy(name, tp->name, tp->name_len);
    name[tp->name_len] = '\0';
    snprintf(why, sizeof why, "agent %s%s%s went %s", name,
             json_string_value(json_object_get(rec, "host")) ? " on host " : "",
             json_string_value(json_object_get(rec, "host"))
                 ? json_string_value(json_object_get(rec, "host"))
                 : "",
             online ? "away (it was restarted)" : "offline");
    for (size_t i = 0; i < r->n_procs; i++) {
        struct proc *p = &r->procs[i];
        if ((p->remote.phase != REMOTE_OFFERED && p->remote.phase != REMOTE_STARTED) ||
            strcmp(p->remote.agent, name) != 0)
            continue;
        if (!online || !instance || strcmp(instance, p->remote.instance) != 0)
            lost(r, i, why);
    }
    if (json_is_object(rec))
        json_object_set(r->place.agents, name, rec);
    else
        json_object_del(r->place.agents, name);
    if (!online)
        goto out;
    /* An agent with room, or a new instance of one, may take what waits. */
    for (size_t i = 0; i < r->n_procs; i++) {
        struct proc *p = &r->procs[i];
        json_t *no = json_object_get(p->remote.refused, name);
        if (p->remote.phase != REMOTE_WAITING)
            continue;
        /* A refusal for want of room lasts until the agent's load changes; any other
         * until it restarts (another instance may have the plugin now). */
        if (no && (json_is_true(json_object_get(no, "full")) || !instance ||
                   strcmp(instance, json_string_value(json_object_get(no, "instance"))
                                        ? json_string_value(json_object_get(no, "instance"))
                                        : "") != 0))
            json_object_del(p->remote.refused, name);
        /* Offered at the next timer pass, after every message already here: the
         * retained records of the other agents (a burst at subscribe) are then
         * known too, and the least loaded of all of them is chosen. */
        p->timer.place_at = fb_clock_mono();
    }
out:
    json_decref(rec);
}

/* The wait status of an "exited" answer: its signal, else its exit code. */
static int exit_status(const json_t *a)
{
    const json_t *sig = json_object_get(a, "signal");

    return sig ? (int)json_integer_value(sig) & 0x7f
               : ((int)json_integer_value(json_object_get(a, "exit")) & 0xff) << 8;
}

/*
 * An agent started task name's attempt for an offer that is not the attempt's
 * any more (an offer out when an earlier coordinator died, or one answered
 * after its patience ran out and was offered elsewhere): it is killed, or
 * the attempt would run twice.
 */
static void kill_stray(struct run *r, const char *task, const char *agent, const json_t *a)
{
    char inbox[FB_TOPIC_MAX], *text = NULL;
    json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:s?,s:i}", "cmd", "signal", "run", r->run_id,
                          "task", task, "attempt", json_integer_value(json_object_get(a, "attempt")),
                          "offer", json_string_value(json_object_get(a, "offer")), "signal",
                          SIGKILL);

    text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (text && fb_topic_format(inbox, sizeof inbox, FB_TOPIC_AGENT_INBOX, NULL, agent)) {
        display__note(r->disp, "%s: agent %s started an offer that is no longer this attempt's; "
                      "killing it", task, agent);
        fb_bus_publish(r->bus, inbox, text, strlen(text), 1, 0, 0);
    }
    free(text);
    json_decref(o);
}

/* An agent's answer on a task's placement topic. */
static void on_answer(struct run *r, const fb_topic *tp, const fb_msg *m)
{
    json_t *a = m->len ? json_loadb(m->payload, m->len, 0, NULL) : NULL;
    const char *state = json_string_value(json_object_get(a, "state"));
    const char *offer = json_string_value(json_object_get(a, "offer"));
    const char *agent = json_string_value(json_object_get(a, "agent"));
    const char *reason = json_string_value(json_object_get(a, "reason"));
    char name[FB_NAME_MAX + 1];
    long t;
    size_t i;
    struct proc *p;

    if (!state || !offer || !agent || tp->name_len >= sizeof name)
        goto out;
    memcpy(name, tp->name, tp->name_len);
    name[tp->name_len] = '\0';
    t = workflow__find_task(r->wf, name);
    if (t < 0)
        goto out;
    /* The process the offer was for: procs[t] is the task's first, the other
     * workers of a reactive pool come after every task's first. Answers to other
     * offers (an earlier attempt, a retained one from before) change nothing, but
     * a process started live by
     * another offer for this attempt (or, in a reactive run, any worker's stale
     * offer) must not run: the signal names its offer, so only it is killed. */
    p = NULL;
    for (size_t k = (size_t)t; k < r->n_procs && !p; k++)
        if (r->procs[k].task == (size_t)t && r->procs[k].remote.on &&
            !strcmp(offer, r->procs[k].remote.offer))
            p = &r->procs[k];
    if (!p) {
        if (!m->retained && !strcmp(state, "started") &&
            (r->reactive ||
             json_integer_value(json_object_get(a, "attempt")) == r->procs[t].attempt) &&
            !fb_state_is_final(tracker__task(r->tr, (size_t)t)->state))
            kill_stray(r, name, agent, a);
        goto out;
    }
    i = (size_t)(p - r->procs);
    if (!strcmp(state, "refused") && p->remote.phase == REMOTE_OFFERED) {
        display__note(r->disp, "%s: agent %s refused it: %s", r->wf->tasks[p->task].name, agent,
                      reason ? reason : "no reason given");
        refused(r, i, agent, reason, reason && strstr(reason, " is full ") != NULL);
    } else if (!strcmp(state, "failed") && p->remote.phase == REMOTE_OFFERED) {
        failed(r, i, reason ? reason : "the agent could not start it");
    } else if (!strcmp(state, "started") && p->remote.phase == REMOTE_OFFERED) {
        p->remote.phase = REMOTE_STARTED;
        p->timer.place_at = 0;
        p->timer.wait_until = 0;
        p->process.pid = (pid_t)json_integer_value(json_object_get(a, "pid"));
        p->process.up_since = fb_clock_mono();
        /* A stop that came while the offer was out reaches it now. */
        if (p->process.kill != KILL_NONE || r->sup.interrupted)
            placement__signal(r, i, SIGTERM);
    } else if (!strcmp(state, "exited") && p->remote.phase == REMOTE_STARTED) {
        supervisor__remote_exit(r, i, exit_status(a));
    }
out:
    json_decref(a);
}

int placement__stray_state(struct run *r, const fb_msg *m)
{
    fb_topic tp;
    char name[FB_NAME_MAX + 1];
    json_t *st = NULL;
    const json_t *pid;
    long t;
    enum fb_state state;
    int stray = 0;

    if (!r->place.used || fb_topic_parse(m->topic, &tp) != FB_TOPIC_TASK_STATE ||
        !fb_topic_is_run(&tp, r->run_id) || tp.name_len >= sizeof name || !m->len)
        goto out;
    memcpy(name, tp.name, tp.name_len);
    name[tp.name_len] = '\0';
    t = workflow__find_task(r->wf, name);
    /* Only a started attempt's pid is known (a task may speak before its agent's answer). */
    if (t < 0 || !placement__remote(r, (size_t)t) ||
        r->procs[t].remote.phase != REMOTE_STARTED || r->procs[t].process.pid <= 0)
        goto out;
    st = json_loadb(m->payload, m->len, 0, NULL);
    pid = json_object_get(st, "pid");
    stray = json_is_integer(pid) &&
            json_integer_value(json_object_get(st, "attempt")) == r->procs[t].attempt;
    /* A reactive pool's other workers come after every task's first process: a pid
     * of any of them is no stray. */
    for (size_t k = (size_t)t; stray && k < r->n_procs; k++)
        if (r->procs[k].task == (size_t)t &&
            r->procs[k].process.pid == (pid_t)json_integer_value(pid))
            stray = 0;
    /* Its end (its Will, say) is the retained state now: the attempt's own record goes back. */
    if (stray && fb_state_parse(json_string_value(json_object_get(st, "state")), &state) &&
        fb_state_is_final(state))
        announce__task_state(r, (size_t)t);
out:
    json_decref(st);
    return stray;
}

int placement__on_message(struct run *r, const fb_msg *m)
{
    fb_topic tp;
    enum fb_topic_kind kind = fb_topic_parse(m->topic, &tp);

    if (!r->place.used)
        return 0;
    if (kind == FB_TOPIC_AGENT) {
        on_record(r, &tp, m);
        return 1;
    }
    if (kind == FB_TOPIC_TASK_PLACEMENT && fb_topic_is_run(&tp, r->run_id)) {
        on_answer(r, &tp, m);
        return 1;
    }
    return 0;
}

void placement__remember(struct run *r, fb_msg *const *msgs, size_t n)
{
    char name[FB_NAME_MAX + 1];

    for (size_t k = 0; r->place.used && k < n; k++) {
        fb_topic tp;
        json_t *rec;
        if (fb_topic_parse(msgs[k]->topic, &tp) != FB_TOPIC_AGENT || tp.name_len >= sizeof name)
            continue;
        memcpy(name, tp.name, tp.name_len);
        name[tp.name_len] = '\0';
        rec = msgs[k]->len ? json_loadb(msgs[k]->payload, msgs[k]->len, 0, NULL) : NULL;
        if (json_is_object(rec))
            json_object_set(r->place.agents, name, rec);
        else
            json_object_del(r->place.agents, name);
        json_decref(rec);
    }
}

/* The last placement answer for task t among msgs (the run's retained topics), or NULL. */
static json_t *last_answer(const struct run *r, size_t t, fb_msg *const *msgs, size_t n)
{
    const char *name = r->wf->tasks[t].name;
    json_t *last = NULL;

    for (size_t k = 0; k < n; k++) {
        fb_topic tp;
        if (fb_topic_parse(msgs[k]->topic, &tp) != FB_TOPIC_TASK_PLACEMENT ||
            !fb_topic_is_run(&tp, r->run_id) || tp.name_len != strlen(name) ||
            memcmp(tp.name, name, tp.name_len) != 0)
            continue;
        json_decref(last);
        last = msgs[k]->len ? json_loadb(msgs[k]->payload, msgs[k]->len, 0, NULL) : NULL;
    }
    return last;
}

enum placement_resumed placement__resume(struct run *r, size_t t, int attempt,
                                         fb_msg *const *msgs, size_t n)
{
    struct proc *p = &r->procs[t];
    json_t *a = last_answer(r, t, msgs, n);
    const char *state = json_string_value(json_object_get(a, "state"));
    const char *agent = json_string_value(json_object_get(a, "agent"));
    const char *instance = json_string_value(json_object_get(a, "instance"));
    const char *offer = json_string_value(json_object_get(a, "offer"));
    const json_t *rec;
    const char *rstate, *rinstance, *host;
    enum placement_resumed how = PLACEMENT_OFFER;
    char why[512];

    /* Nothing of this attempt runs (never answered, refused, failed): it is offered again. */
    if (!state || !agent || !instance || !offer ||
        json_integer_value(json_object_get(a, "attempt")) != attempt ||
        (strcmp(state, "started") != 0 && strcmp(state, "exited") != 0))
        goto out;
    p->attempt = attempt;
    p->remote.on = 1;
    p->remote.phase = REMOTE_STARTED;
    snprintf(p->remote.agent, sizeof p->remote.agent, "%s", agent);
    snprintf(p->remote.instance, sizeof p->remote.instance, "%s", instance);
    snprintf(p->remote.offer, sizeof p->remote.offer, "%s", offer);
    p->process.pid = (pid_t)json_integer_value(json_object_get(a, "pid"));
    p->process.up_since = fb_clock_mono();
    how = PLACEMENT_ADOPTED;
    if (!strcmp(state, "exited")) {
        /* It ended while nobody watched: decided as any exit (a sync token first). */
        supervisor__remote_exit(r, t, exit_status(a));
        goto out;
    }
    rec = json_object_get(r->place.agents, agent);
    rstate = json_string_value(json_object_get(rec, "state"));
    rinstance = json_string_value(json_object_get(rec, "instance"));
    if (rstate && !strcmp(rstate, FB_AGENT_ONLINE) && rinstance && !strcmp(rinstance, instance))
        goto out; /* still there: its exit, or its agent's end, comes as for any placed task */
    host = json_string_value(json_object_get(rec, "host"));
    snprintf(why, sizeof why, "agent %s%s%s %s while the run had no coordinator", agent,
             host ? " on host " : "", host ? host : "",
             !rec                                        ? "left no record"
             : rstate && !strcmp(rstate, FB_AGENT_ONLINE) ? "was restarted"
                                                          : "went offline");
    lost(r, t, why);
    how = PLACEMENT_LOST;
out:
    json_decref(a);
    return how;
}

void placement__signal(struct run *r, size_t i, int sig)
{
    struct proc *p = &r->procs[i];
    char inbox[FB_TOPIC_MAX], *text;
    json_t *o;

    if (p->remote.phase != REMOTE_OFFERED && p->remote.phase != REMOTE_STARTED)
        return;
    o = json_pack("{s:s,s:s,s:s,s:i,s:s,s:i}", "cmd", "signal", "run", r->run_id, "task",
                  r->wf->tasks[p->task].name, "attempt", p->attempt, "offer", p->remote.offer,
                  "signal", sig);
    text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (text && fb_topic_format(inbox, sizeof inbox, FB_TOPIC_AGENT_INBOX, NULL, p->remote.agent))
        fb_bus_publish(r->bus, inbox, text, strlen(text), 1, 0, 0);
    free(text);
    json_decref(o);
    /* An agent that does not report the exit of a killed task cannot hold the run for ever. */
    if (sig == SIGKILL && !p->remote.killed) {
        p->remote.killed = 1;
        p->timer.place_at = fb_clock_mono() + KILL_CONFIRM;
    }
}

void placement__check_timers(struct run *r, size_t i, double now)
{
    struct proc *p = &r->procs[i];
    const struct wf_task *task = &r->wf->tasks[p->task];
    char why[256];

    if (timer_set(p->timer.wait_until) && now >= p->timer.wait_until &&
        (p->remote.phase == REMOTE_WAITING || p->remote.phase == REMOTE_OFFERED) &&
        !fb_state_is_final(tracker__task(r->tr, p->task)->state)) {
        p->timer.wait_until = 0;
        p->timer.place_at = 0;
        if (p->remote.phase == REMOTE_OFFERED)
            placement__signal(r, i, SIGKILL);
        p->remote.phase = REMOTE_NONE;
        snprintf(why, sizeof why, "%s, for %g s (execution.timeout)",
                 tracker__task(r->tr, p->task)->error ? tracker__task(r->tr, p->task)->error
                                                      : "no agent took it",
                 task->timeout);
        tracker__set(r->tr, p->task, FB_STATE_TIMEOUT, fb_clock_wall(), -1, 0, why);
        announce__task_state(r, p->task);
        display__task(r->disp, p->task);
        supervisor__on_final(r, p->task);
        if (p->retry.pending)
            p->timer.retry_at = now + p->retry.delay;
        return;
    }
    if (!timer_set(p->timer.place_at) || now < p->timer.place_at)
        return;
    p->timer.place_at = 0;
    if (p->remote.phase == REMOTE_OFFERED && !p->remote.killed) {
        snprintf(why, sizeof why, "no answer within %g s", OFFER_PATIENCE);
        display__note(r->disp, "%s: agent %s gave %s", task->name, p->remote.agent, why);
        refused(r, i, p->remote.agent, why, 0);
    } else if (p->remote.phase == REMOTE_WAITING) {
        placement__offer(r, i);
    } else if (p->remote.killed && (p->remote.phase == REMOTE_STARTED ||
                                    p->remote.phase == REMOTE_OFFERED)) {
        snprintf(why, sizeof why, "agent %s did not report the end of the task within %g s of "
                 "its kill", p->remote.agent, KILL_CONFIRM);
        if (p->remote.phase == REMOTE_OFFERED)
            p->remote.phase = REMOTE_STARTED;
        lost(r, i, why);
    }
}

void placement__free(struct run *r)
{
    for (size_t i = 0; r->procs && i < r->n_procs; i++) {
        json_decref(r->procs[i].remote.refused);
        r->procs[i].remote.refused = NULL;
    }
    json_decref(r->place.agents);
    r->place.agents = NULL;
}
