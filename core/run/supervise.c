/*
 * supervise.c - the run's processes from their start to their reap.
 *
 * The supervisor stops processes (SIGTERM to the whole group, SIGKILL after
 * KILL_GRACE), reaps them, decides the state of a task whose process exited
 * without reporting one, turns a failure with attempts left into a retry
 * (one-shot) or a restart by the task's policy (reactive), stops the whole
 * run early (Ctrl-C, SIGTERM, the run timeout, a stop request, a lost
 * broker), and keeps every timer of the run: deadlines, escalations, sync
 * probes, retries, liveness checks of adopted processes. supervisor__next_wakeup
 * is the one place that says when the next of them is due.
 *
 * When a process exits before its final state has reached us, the coordinator
 * does not guess: it publishes a token on sync/p<process> and waits for it to
 * come back. The broker forwards messages to a subscriber in the order it
 * received them, and the task's last publish was acknowledged before the task
 * exited, so once the token is back every state the task sent has been seen.
 */
#define _GNU_SOURCE
#include "internal.h"
#include "broker.h"
#include "display.h"
#include "log.h"
#include "workflow.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define STOP_GRACE 1.0     /* seconds a waiting task has to obey a stop before SIGTERM */
#define ADOPTED_PROBE 0.1  /* seconds between liveness checks of an adopted process */
#define RESTART_RESET 10.0 /* seconds up after which a restarted process's backoff starts over */

void supervisor__stop_proc(struct run *r, size_t i, enum kill_reason why)
{
    struct proc *p = &r->procs[i];

    if (!proc_alive(p))
        return;
    if (p->process.kill == KILL_NONE)
        p->process.kill = why;
    supervisor__signal(r, i, SIGTERM);
    if (!timer_set(p->timer.term_at))
        p->timer.term_at = fb_clock_mono() + KILL_GRACE;
}

void supervisor__signal(struct run *r, size_t i, int sig)
{
    if (r->procs[i].remote.on)
        placement__signal(r, i, sig);
    else
        launcher__signal(r->procs[i].process.pid, sig);
}

void supervisor__propagate(struct run *r)
{
    size_t n = tracker__propagate(r->tr, fb_clock_wall(), r->sup.skipped);

    for (size_t i = 0; i < n; i++) {
        size_t t = r->sup.skipped[i];
        struct proc *p = &r->procs[t];
        display__task(r->disp, t);
        if (proc_alive(p))
            supervisor__stop_proc(r, t, KILL_SKIP);
        else if (!timer_set(p->timer.sync_at))
            announce__task_state(r, t);
    }
}

static int failed_state(enum fb_state s)
{
    return s == FB_STATE_FAILED || s == FB_STATE_TIMEOUT || s == FB_STATE_CRASHED;
}

/*
 * The pause before the next attempt or restart: retry_delay (1 s if unset),
 * doubled `doublings` times, at most retry_max_delay (60 s if unset).
 */
static double backoff(const struct wf_task *task, int doublings)
{
    double delay = task->retry_delay > 0 ? task->retry_delay : 1.0;
    double cap = task->retry_max_delay > 0 ? task->retry_max_delay : 60.0;

    for (int i = 0; i < doublings && delay < cap; i++)
        delay *= 2;
    return delay > cap ? cap : delay;
}

/*
 * Called whenever task t reaches a final state. A failure with attempts left
 * becomes a retry: the task goes back to waiting (so its dependents are not
 * skipped), and the next attempt starts after an exponential backoff, once
 * the failed process is gone.
 */
void supervisor__on_final(struct run *r, size_t t)
{
    const struct wf_task *task = &r->wf->tasks[t];
    const struct task_info *ti = tracker__task(r->tr, t);
    struct proc *p = &r->procs[t];
    char note[512];

    if (!failed_state(ti->state) || p->attempt > task->retries || r->sup.interrupted ||
        p->retry.pending)
        return;
    p->retry.delay = backoff(task, p->attempt - 1);
    /* What this attempt ended as is published when its process is reaped. */
    if (p->process.pid && !p->process.reaped && p->process.kill != KILL_NONE)
        p->retry.final_json = tracker__state_json(r->tr, t);
    snprintf(note, sizeof note, "attempt %d %s (%s); attempt %d of %d in %g s", p->attempt,
             fb_state_name(ti->state), ti->error ? ti->error : "no reason given",
             p->attempt + 1, task->retries + 1, p->retry.delay);
    display__note(r->disp, "%s: %s", task->name, note);
    tracker__retry(r->tr, t, p->attempt + 1, fb_clock_wall(), note);
    p->retry.pending = 1;
    if (!p->process.pid || p->process.reaped)
        p->timer.retry_at = fb_clock_mono() + p->retry.delay;
}

/*
 * The process of task t that published a state with this pid: the task's
 * first process unless a worker of its pool has that pid.
 */
static size_t proc_of(const struct run *r, size_t t, long pid)
{
    for (size_t i = r->wf->n_tasks; pid > 0 && i < r->n_procs; i++)
        if (r->procs[i].task == t && r->procs[i].process.pid == pid)
            return i;
    return t;
}

void supervisor__on_task_state(struct run *r, size_t t)
{
    const struct task_info *ti = tracker__task(r->tr, t);
    size_t i = proc_of(r, t, ti->pid);
    struct proc *p = &r->procs[i];
    double limit = r->wf->tasks[t].timeout;

    if (ti->state != FB_STATE_PENDING)
        launch__started(r, i);
    if (fb_state_is_final(ti->state) && !r->reactive)
        supervisor__on_final(r, t);
    /* The timeout counts from the start of execution (of each activation). */
    if (ti->state == FB_STATE_RUNNING && limit > 0 && p->process.pid && !p->process.reaped &&
        !timer_set(p->timer.deadline)) {
        double late = fb_clock_wall() - ti->started;
        p->timer.deadline = fb_clock_mono() + limit - (late > 0 && late < limit ? late : 0);
    } else if (ti->state == FB_STATE_WAITING) {
        p->timer.deadline = 0;
    }
}

/* 1 if another process of task t is alive or about to be started again. */
static int task_has_other_process(const struct run *r, size_t t, size_t except)
{
    for (size_t i = 0; i < r->n_procs; i++) {
        const struct proc *p = &r->procs[i];
        if (i != except && p->task == t &&
            ((p->process.pid && !p->process.reaped) || timer_set(p->timer.retry_at)))
            return 1;
    }
    return 0;
}

/*
 * A reactive task's process ended on its own (it was not stopped): record
 * how, and start it again as its restart policy says, after a backoff that
 * doubles from retry_delay up to retry_max_delay. A process that stayed up
 * for RESTART_RESET seconds starts the backoff over.
 */
static void reactive_exit(struct run *r, size_t i)
{
    struct proc *p = &r->procs[i];
    size_t t = p->task;
    const struct wf_task *task = &r->wf->tasks[t];
    const struct task_info *ti = tracker__task(r->tr, t);
    int status = p->process.status, adopted = p->process.adopted;
    int signaled = !adopted && WIFSIGNALED(status);
    int code = !adopted && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    int failure = adopted || signaled || code != 0 || p->process.kill == KILL_TIMEOUT;
    char how[160], note[320];
    int restart;

    if (r->sup.interrupted || r->sup.finishing || p->process.kill == KILL_STOP)
        return;
    if (p->process.kill == KILL_TIMEOUT)
        snprintf(how, sizeof how, "an activation timed out after %g s", task->timeout);
    else if (signaled)
        snprintf(how, sizeof how, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else if (code >= 0)
        snprintf(how, sizeof how, "exited with code %d", code);
    else
        snprintf(how, sizeof how, "ended (adopted process)");
    restart = ti->state != FB_STATE_DENIED &&
              (task->restart == WF_RESTART_ALWAYS ||
               (task->restart == WF_RESTART_ON_FAILURE && failure));
    if (!restart) {
        const char *why = ti->state == FB_STATE_DENIED ? fb_state_name(FB_STATE_DENIED)
                          : failure              ? "on-failure"
                                                 : "never";
        display__note(r->disp, "%s (worker %d): process %s; not started again (restart: %s)",
                      task->name, p->worker, how, why);
        if (!task_has_other_process(r, t, i) && !fb_state_is_final(ti->state)) {
            tracker__set(r->tr, t, !failure ? FB_STATE_DONE : signaled ? FB_STATE_CRASHED : FB_STATE_FAILED,
                         fb_clock_wall(), code, signaled ? WTERMSIG(status) : 0,
                         failure ? how : NULL);
            announce__task_state(r, t);
            display__task(r->disp, t);
        }
        return;
    }
    if (fb_clock_mono() - p->process.up_since >= RESTART_RESET)
        p->retry.restarts = 0;
    p->retry.delay = backoff(task, p->retry.restarts);
    p->retry.restarts++;
    p->timer.retry_at = fb_clock_mono() + p->retry.delay;
    snprintf(note, sizeof note, "process %s; restart %d in %g s", how, p->retry.restarts,
             p->retry.delay);
    display__note(r->disp, "%s (worker %d): %s", task->name, p->worker, note);
    output__note(r, i, note);
}

/* A reactive run is over when it was stopped or no process is left to run: a
 * placed one waiting for an agent, or offered to one, is still to run. */
static int reactive_over(const struct run *r)
{
    if (r->sup.interrupted)
        return 1;
    for (size_t i = 0; i < r->n_procs; i++) {
        const struct proc *p = &r->procs[i];
        if (proc_alive(p) || p->remote.phase == REMOTE_WAITING || timer_set(p->timer.retry_at))
            return 0;
    }
    return 1;
}

int supervisor__over(const struct run *r)
{
    return r->reactive ? reactive_over(r) : tracker__finished(r->tr);
}

void supervisor__finish(struct run *r)
{
    r->sup.finishing = 1;
    for (size_t i = 0; i < r->n_procs; i++) {
        struct proc *p = &r->procs[i];
        if (proc_alive(p) && !timer_set(p->timer.term_at))
            p->timer.term_at = fb_clock_mono() + KILL_GRACE;
    }
}

/* Decides the state of a task whose process (i) exited without reporting one. */
void supervisor__resolve_exit(struct run *r, size_t i)
{
    struct proc *p = &r->procs[i];
    size_t t = p->task;
    const struct task_info *ti = tracker__task(r->tr, t);
    int status = p->process.status;
    double now = fb_clock_wall();
    char err[512];

    p->timer.sync_at = 0;
    /* The attempt's outcome arrived while we waited, and it is being retried. */
    if (p->retry.pending)
        return;
    if (fb_state_is_final(ti->state)) {
        /* A Last Will says "crashed" but not why; add the signal we saw. */
        if (ti->state == FB_STATE_CRASHED && !p->process.adopted && WIFSIGNALED(status) &&
            !ti->signal) {
            if (p->remote.lost[0])
                snprintf(err, sizeof err, "%s", p->remote.lost);
            else
                snprintf(err, sizeof err, "killed by signal %d (%s)", WTERMSIG(status),
                         strsignal(WTERMSIG(status)));
            tracker__set(r->tr, t, FB_STATE_CRASHED, ti->at, -1, WTERMSIG(status), err);
            announce__task_state(r, t);
            display__task(r->disp, t);
        }
        return;
    }
    if (p->process.adopted) {
        /* Not our child: its exit status is gone with the coordinator that was. */
        tracker__set(r->tr, t, FB_STATE_CRASHED, now, -1, 0,
                     "process ended without reporting a final state (adopted after a coordinator "
                     "restart)");
    } else if (p->remote.lost[0]) {
        /* Its agent went away with it: no exit status, only the reason. */
        tracker__set(r->tr, t, FB_STATE_CRASHED, now, -1, SIGKILL, p->remote.lost);
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        tracker__set(r->tr, t, FB_STATE_DONE, now, 0, 0, NULL);
    } else if (WIFEXITED(status)) {
        snprintf(err, sizeof err, "process exited with code %d", WEXITSTATUS(status));
        tracker__set(r->tr, t, FB_STATE_FAILED, now, WEXITSTATUS(status), 0, err);
    } else {
        snprintf(err, sizeof err, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
        tracker__set(r->tr, t, FB_STATE_CRASHED, now, -1, WTERMSIG(status), err);
    }
    announce__task_state(r, t);
    display__task(r->disp, t);
    supervisor__on_final(r, t);
}

void supervisor__probe(struct run *r, size_t i)
{
    char label[32], token[FB_TOPIC_MAX];

    snprintf(label, sizeof label, "p%zu", i);
    if (fb_barrier_token(token, sizeof token, r->run_id, label))
        fb_bus_publish(r->bus, token, "", 0, 1, 0, 0);
    r->procs[i].timer.sync_at = fb_clock_mono() + SYNC_WAIT;
}

void supervisor__probe_again(struct run *r)
{
    for (size_t i = 0; i < r->n_procs; i++)
        if (timer_set(r->procs[i].timer.sync_at))
            supervisor__probe(r, i);
}

static void on_reaped(struct run *r, size_t i, int status)
{
    struct proc *p = &r->procs[i];
    size_t t = p->task;

    p->process.reaped = 1;
    launch__started(r, i);
    p->process.status = status;
    p->remote.phase = REMOTE_NONE;
    p->remote.killed = 0;
    p->timer.place_at = 0;
    p->timer.term_at = 0;
    p->timer.sigterm_at = 0;
    p->timer.deadline = 0;
    if (p->out.fd >= 0)
        output__read(r, i);
    /* Whatever the task left behind in its group goes with it (its agent sees to a placed one's). */
    if (!p->remote.on)
        launcher__signal(p->process.pid, SIGKILL);
    if (r->reactive) {
        reactive_exit(r, i);
        return;
    }
    if (p->retry.pending) {
        if (p->retry.final_json)
            announce__task_json(r, t, p->retry.final_json);
        announce__task_state(r, t); /* waiting for the next attempt, and why */
        p->timer.retry_at = fb_clock_mono() + p->retry.delay;
        return;
    }
    if (p->process.kill != KILL_NONE) {
        announce__task_state(r, t);
        return;
    }
    if (fb_state_is_final(tracker__task(r->tr, t)->state)) {
        supervisor__resolve_exit(r, t);
        return;
    }
    supervisor__probe(r, i);
}

void supervisor__remote_exit(struct run *r, size_t i, int status)
{
    if (!r->procs[i].process.reaped)
        on_reaped(r, i, status);
}

/* The private broker died on its own: it is started again on the same port. */
static void broker_died(struct run *r, int status)
{
    char err[256];

    broker__forget(r->res.broker);
    if (r->sup.finishing || r->sup.interrupted)
        return;
    /* Everyone reconnects on their own: the coordinator's bus, every task
     * through the SDK. The broker's persistence and the tasks' re-sent states
     * cover what it had not saved. */
    display__note(r->disp, "flowbus: the private broker died (%s %d); restarting it",
                  WIFSIGNALED(status) ? "signal" : "exit code",
                  WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    if (!broker__restart(r->res.broker, err, sizeof err)) {
        log_printf(FB_LOG_ERROR, "cannot restart the private broker: %s", err);
        r->sup.fatal = FB_EXIT_BROKER;
        supervisor__interrupt(r, SIGTERM, "the private broker died and could not be restarted");
    }
}

void supervisor__reap(struct run *r)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            break;
        if (r->res.broker && pid == broker__pid(r->res.broker)) {
            broker_died(r, status);
            continue;
        }
        for (size_t i = 0; i < r->n_procs; i++) {
            const struct proc *p = &r->procs[i];
            if (p->process.pid == pid && !p->process.reaped && !p->process.adopted &&
                !p->remote.on) {
                on_reaped(r, i, status);
                break;
            }
        }
    }
}

void supervisor__interrupt(struct run *r, int why, const char *text)
{
    double now = fb_clock_wall();
    unsigned char *stopped = NULL;
    enum { STOPPED_WAITING = 1, STOPPED_RUNNING = 2 };

    if (r->sup.interrupted) {
        /* A second Ctrl-C: no more grace. */
        for (size_t i = 0; i < r->n_procs; i++)
            if (proc_alive(&r->procs[i]))
                supervisor__signal(r, i, SIGKILL);
        return;
    }
    r->sup.interrupted = why;
    /* What each task was, before this stop decides what it becomes. */
    stopped = calloc(r->wf->n_tasks + 1, 1);
    display__note(r->disp, "flowbus: %s; stopping every task", text);
    announce__stop(r);
    for (size_t t = 0; t < r->wf->n_tasks; t++) {
        const struct task_info *ti = tracker__task(r->tr, t);
        if (fb_state_is_final(ti->state))
            continue;
        if (stopped)
            stopped[t] = ti->state == FB_STATE_RUNNING ? STOPPED_RUNNING : STOPPED_WAITING;
        if (r->reactive)
            /* A reactive task has nothing left undone: it was stopped. */
            tracker__set(r->tr, t, FB_STATE_STOPPED, now, -1, 0, text);
        else if (ti->state == FB_STATE_RUNNING)
            tracker__set(r->tr, t, why == -1 ? FB_STATE_TIMEOUT : FB_STATE_FAILED, now, -1, 0, text);
        else if (why == -1 && r->procs[t].remote.phase == REMOTE_WAITING) {
            /* It would have run but no agent could take it: the wait is what timed out. */
            char reason[512];
            snprintf(reason, sizeof reason, "%s (%s)", text, ti->error ? ti->error : "no agent");
            tracker__set(r->tr, t, FB_STATE_TIMEOUT, now, -1, 0, reason);
        } else
            tracker__set(r->tr, t, FB_STATE_SKIPPED, now, -1, 0, text);
        display__task(r->disp, t);
    }
    /*
     * Running tasks are signalled at once. Waiting ones read the stop on the
     * control topic and exit by themselves (a task on another host has only
     * that); the signal follows after STOP_GRACE for those that do not.
     */
    for (size_t i = 0; i < r->n_procs; i++) {
        struct proc *p = &r->procs[i];
        int was = stopped ? stopped[p->task] : STOPPED_RUNNING;
        int alive = proc_alive(p);
        p->timer.retry_at = 0;
        p->timer.wait_until = 0;
        if (p->remote.phase == REMOTE_WAITING)
            p->remote.phase = REMOTE_NONE;
        if (alive && was != STOPPED_WAITING) {
            supervisor__stop_proc(r, i, KILL_STOP);
        } else if (alive) {
            p->process.kill = KILL_STOP;
            p->timer.sigterm_at = fb_clock_mono() + STOP_GRACE;
        } else if (i < r->wf->n_tasks && was) {
            /* Its process is gone already (maybe it obeyed the stop before we
             * read it): the state decided here is the one to keep. */
            announce__task_state(r, p->task);
        }
    }
    free(stopped);
}

int supervisor__all_reaped(const struct run *r)
{
    for (size_t i = 0; i < r->n_procs; i++) {
        const struct proc *p = &r->procs[i];
        if (proc_alive(p) || timer_set(p->timer.sync_at))
            return 0;
    }
    return 1;
}

/* Process i ran past its deadline. */
static void deadline_passed(struct run *r, size_t i)
{
    size_t t = r->procs[i].task;
    char err[128];

    if (r->reactive) {
        /* An activation that overruns: the process is killed and, by the
         * restart policy, started again. */
        snprintf(err, sizeof err, "activation timed out after %g s", r->wf->tasks[t].timeout);
        output__note(r, i, err);
        supervisor__stop_proc(r, i, KILL_TIMEOUT);
    } else if (tracker__task(r->tr, t)->state == FB_STATE_RUNNING) {
        snprintf(err, sizeof err, "timed out after %g s", r->wf->tasks[t].timeout);
        tracker__set(r->tr, t, FB_STATE_TIMEOUT, fb_clock_wall(), -1, 0, err);
        display__task(r->disp, t);
        supervisor__stop_proc(r, t, KILL_TIMEOUT);
        supervisor__on_final(r, t);
    }
}

void supervisor__check_timers(struct run *r)
{
    double now = fb_clock_mono();
    char err[128];

    for (size_t i = 0; i < r->n_procs; i++) {
        struct proc *p = &r->procs[i];
        struct proc_timers *tm = &p->timer;
        if (timer_set(tm->deadline) && now >= tm->deadline && !p->process.reaped) {
            tm->deadline = 0;
            deadline_passed(r, i);
        }
        if (timer_set(tm->sigterm_at) && now >= tm->sigterm_at && !p->process.reaped) {
            tm->sigterm_at = 0;
            supervisor__signal(r, i, SIGTERM);
            tm->term_at = now + KILL_GRACE;
        }
        if (timer_set(tm->term_at) && now >= tm->term_at && !p->process.reaped) {
            tm->term_at = 0;
            supervisor__signal(r, i, SIGKILL);
        }
        if (p->remote.on)
            placement__check_timers(r, i, now);
        if (timer_set(tm->sync_at) && now >= tm->sync_at)
            supervisor__resolve_exit(r, i);
        if (timer_set(tm->retry_at) && now >= tm->retry_at && !r->sup.interrupted) {
            if (launch__may_start(r))
                launch__start(r, i, p->attempt + 1);
            else
                tm->retry_at = now + 0.1; /* once the run is known to be ours (launch.c) */
        }
        if (p->process.adopted && !p->process.reaped && now >= tm->probe_at) {
            tm->probe_at = now + ADOPTED_PROBE;
            if (kill(p->process.pid, 0) != 0 && errno == ESRCH)
                on_reaped(r, i, 0);
        }
    }
    if (timer_set(r->sup.run_deadline) && now >= r->sup.run_deadline && !r->sup.interrupted) {
        snprintf(err, sizeof err, "run timed out after %g s", r->o->timeout);
        supervisor__interrupt(r, -1, err);
    }
}

double supervisor__next_wakeup(const struct run *r)
{
    double next = timer_set(r->sup.run_deadline) && !r->sup.interrupted ? r->sup.run_deadline : 0;

    for (size_t i = 0; i < r->n_procs; i++) {
        const struct proc *p = &r->procs[i];
        const struct proc_timers *tm = &p->timer;
        double c[8] = {tm->deadline, tm->term_at, tm->sync_at, tm->retry_at,
                       p->process.adopted && !p->process.reaped ? tm->probe_at : 0,
                       tm->sigterm_at, tm->place_at, tm->wait_until};
        for (int k = 0; k < 8; k++)
            if (timer_set(c[k]) && (!timer_set(next) || c[k] < next))
                next = c[k];
    }
    if (timer_set(r->sup.final_sync_at) && (!timer_set(next) || r->sup.final_sync_at < next))
        next = r->sup.final_sync_at;
    return next;
}
