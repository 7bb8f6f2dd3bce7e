/*
 * launch.c - which task process starts when: the launch order and window.
 *
 * launcher.c knows how to start one process; this file decides when. The
 * processes start in graph order (by depth, so on a busy machine the tasks
 * that can run first get the CPU first), a few at a time: while a process is
 * starting (exec, the dynamic loader, connecting) it holds a place in the
 * launch window, until it reports its first state or LAUNCH_PATIENCE passes.
 * A process that cannot be started fails its task here.
 */
#define _GNU_SOURCE
#include "internal.h"
#include "access.h"
#include "mask.h"
#include "broker.h"
#include "display.h"
#include "graph.h"
#include "log.h"
#include "workflow.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LAUNCH_PATIENCE 1.0 /* seconds a starting process holds its place in the launch window */

void launch__context(struct run *r)
{
    struct launch_context *lc = &r->window.lc;

    r->res.took_over = 1;
    lc->broker_url = r->res.broker ? broker__url(r->res.broker) : r->o->broker_url;
    lc->username = r->o->username;
    lc->password = r->o->password;
    lc->access = r->res.access;
    /* Whatever a task prints goes through the coordinator's mask (output.c): it knows them all. */
    mask__add(r->o->password);
    for (size_t t = 0; r->res.access && t < r->wf->n_tasks; t++)
        mask__add(access__password(r->res.access, (long)t));
    for (size_t i = 0; i < r->wf->n_vars; i++)
        if (r->wf->vars[i].secret)
            mask__add(r->wf->vars[i].value);
    lc->die_with_parent = r->res.broker != NULL;
    lc->run_dir = r->res.run_dir;
    lc->cache_salt = r->res.cache_salt;
    lc->run_id = r->run_id;
    lc->wf = r->wf;
    /* A run that can be resumed (an external broker's) records each start
     * first; a private broker dies with its coordinator and its tasks. */
    r->window.intents = !r->res.broker && !r->reactive;
}

int launch__may_start(const struct run *r)
{
    /* A run that can be resumed starts nothing while it cannot know that it
     * is still its coordinator's: cut off from the broker (a resume may be
     * taking it over), or reconnected but not yet through the owner check of
     * loop.c. */
    return !r->window.intents ||
           (fb_bus_connected(r->bus) && fb_bus_reconnects(r->bus) == r->res.reconnects);
}

void launch__started(struct run *r, size_t i)
{
    struct window *w = &r->window;

    for (size_t k = 0; k < w->n_starting; k++) {
        if (w->starting[k] == i) {
            w->starting[k] = w->starting[--w->n_starting];
            break;
        }
    }
}

int launch__waiting(const struct run *r)
{
    return r->window.n_starting && r->window.next < r->n_procs;
}

void launch__start(struct run *r, size_t i, int attempt)
{
    struct proc *p = &r->procs[i];
    size_t t = p->task;
    char err[256];

    p->attempt = attempt;
    p->process.adopted = 0;
    p->process.reaped = 0;
    p->process.status = 0;
    p->process.kill = KILL_NONE;
    p->timer.term_at = p->timer.deadline = p->timer.sync_at = p->timer.retry_at = 0;
    p->retry.pending = 0;
    output__reset(p);
    free(p->retry.final_json);
    p->retry.final_json = NULL;
    if (placement__remote(r, t)) {
        /* An agent starts it (place.c): no launch record, no process of ours. */
        p->process.pid = 0;
        p->process.up_since = fb_clock_mono();
        p->timer.place_at = p->timer.wait_until = 0;
        p->remote.killed = 0;
        p->remote.lost[0] = '\0';
        p->remote.phase = REMOTE_NONE;
        json_decref(p->remote.refused);
        p->remote.refused = NULL;
        placement__offer(r, i);
        return;
    }
    if (r->window.intents)
        announce__intent(r, i, attempt, 0);
    p->process.up_since = fb_clock_mono();
    /*
     * A new run set its identities up before it announced itself (run.c); a
     * resumed one does it at its first start, after it has looked at every
     * process it may adopt, which the plugin's answer must not delay.
     */
    if (!r->res.identities_set) {
        r->window.lc.refused = !identity__setup(r);
        r->window.lc.access = r->res.access;
        for (size_t k = 0; r->res.access && k < r->wf->n_tasks; k++)
            mask__add(access__password(r->res.access, (long)k));
    }
    p->process.pid = launcher__spawn(&r->window.lc, t, p->worker, attempt, &p->out.fd);
    if (p->process.pid > 0 && r->window.intents)
        announce__intent(r, i, attempt, p->process.pid);
    if (p->process.pid < 0) {
        snprintf(err, sizeof err, "cannot start %s: %s", r->wf->tasks[t].plugin_path,
                 strerror(errno));
        p->process.pid = 0;
        tracker__set(r->tr, t, FB_STATE_FAILED, fb_clock_wall(), -1, 0, err);
        announce__task_state(r, t);
        display__task(r->disp, t);
        if (!r->reactive)
            supervisor__on_final(r, t);
    }
}

/*
 * How many processes may be starting at once. A task process spends ~2.5 ms
 * of CPU starting (exec, the dynamic loader, connecting; docs/performance.md);
 * 200 started together take every core for half a second, and the tasks that
 * could already run wait their turn among them. A few starts per core keep
 * the cores busy while the tasks that run get the CPU when they need it.
 * FLOWBUS_LAUNCH_WINDOW overrides it (0: start everything at once).
 */
static size_t window_size(void)
{
    const char *env = getenv("FLOWBUS_LAUNCH_WINDOW");
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t w = cpus > 0 ? 2 * (size_t)cpus : 4;

    if (env && *env) {
        char *end;
        unsigned long v = strtoul(env, &end, 10);
        if (*end == '\0' && env[0] != '-')
            w = v == 0 ? SIZE_MAX : v;
        else
            log_printf(FB_LOG_WARN,
                       "FLOWBUS_LAUNCH_WINDOW '%s' is not a number of processes; using %zu",
                       env, w);
    }
    if (w != SIZE_MAX && w > MAX_LAUNCH_WINDOW)
        w = MAX_LAUNCH_WINDOW;
    return w < 1 ? 1 : w;
}

/*
 * Starts processes in graph order (launch__order) while fewer than the
 * window's size are still starting. A process that has not been heard from
 * within LAUNCH_PATIENCE gives up its place, so that a task slow to connect
 * never holds the others back. A task already decided (skipped because an
 * input can never be set, or stopped) is not started at all.
 */
void launch__more(struct run *r)
{
    struct window *w = &r->window;
    double now = fb_clock_mono();
    size_t k = 0;

    while (k < w->n_starting) {
        if (now - r->procs[w->starting[k]].process.up_since > LAUNCH_PATIENCE)
            w->starting[k] = w->starting[--w->n_starting];
        else
            k++;
    }
    if (!launch__may_start(r))
        return;
    while (w->next < r->n_procs && !r->sup.interrupted && !r->sup.finishing &&
           (w->size == SIZE_MAX || w->n_starting < w->size)) {
        size_t i = w->order[w->next++];
        struct proc *p = &r->procs[i];
        if (p->process.pid || fb_state_is_final(tracker__task(r->tr, p->task)->state))
            continue;
        launch__start(r, i, 1);
        if (p->process.pid > 0 && w->n_starting < MAX_LAUNCH_WINDOW && w->size != SIZE_MAX)
            w->starting[w->n_starting++] = i;
    }
}

void launch__all(struct run *r)
{
    launch__context(r);
    r->window.size = window_size();
    launch__more(r);
}

/* What qsort_r compares processes by: their task's depth, then their index. */
struct by_depth {
    const struct run *r;
    const size_t *depth; /* per task */
};

static int by_depth(const void *a, const void *b, void *ctx)
{
    const struct by_depth *c = ctx;
    size_t ia = *(const size_t *)a, ib = *(const size_t *)b;
    size_t da = c->depth[c->r->procs[ia].task], db = c->depth[c->r->procs[ib].task];

    if (da != db)
        return da < db ? -1 : 1;
    return ia < ib ? -1 : 1;
}

/* The depth of task t, from the depths its producers and depends_on tasks have so far. */
static size_t depth_of(const struct run *r, size_t t, const size_t *depth)
{
    const struct wf_task *task = &r->wf->tasks[t];
    size_t d = 0;

    for (size_t k = 0; k < task->inputs.n; k++) {
        long v = graph__var_index(r->g, task->inputs.items[k].name);
        const size_t *from;
        size_t n = v >= 0 ? graph__producers(r->g, (size_t)v, &from) : 0;
        for (size_t j = 0; j < n; j++)
            if (depth[from[j]] + 1 > d)
                d = depth[from[j]] + 1;
    }
    for (size_t k = 0; k < task->depends_on.n; k++) {
        long dep = workflow__find_task(r->wf, task->depends_on.items[k].name);
        if (dep >= 0 && depth[dep] + 1 > d)
            d = depth[dep] + 1;
    }
    return d;
}

/*
 * The order to start processes in: by depth in the graph (a task's depth is
 * one more than the deepest task that feeds it), so that on a busy machine
 * the tasks that can run first get the CPU first; launch__more starts them in
 * this order, a few at a time.
 */
int launch__order(struct run *r)
{
    size_t nt = r->wf->n_tasks, *depth = calloc(nt + 1, sizeof *depth);
    struct by_depth ctx = {r, depth};
    int changed = 1;

    if (!depth)
        return 0;
    /* Relaxation to a fixpoint; the loader rejected cycles, so it ends. */
    for (size_t round = 0; changed && round <= nt; round++) {
        changed = 0;
        for (size_t t = 0; t < nt; t++) {
            size_t d = depth_of(r, t, depth);
            if (d != depth[t]) {
                depth[t] = d;
                changed = 1;
            }
        }
    }
    for (size_t i = 0; i < r->n_procs; i++)
        r->window.order[i] = i;
    /* Insertion sort would be quadratic at 10,000 tasks: sort by depth. */
    qsort_r(r->window.order, r->n_procs, sizeof *r->window.order, by_depth, &ctx);
    free(depth);
    return 1;
}
