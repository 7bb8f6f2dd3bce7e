/*
 * run.c - `flowbus run`: one execution of a workflow (see run.h).
 *
 * The coordinator decides as little as it can and derives the rest from the
 * bus: tasks report their own states; the tracker keeps what was reported;
 * the coordinator only authors what a task cannot say for itself (a timeout,
 * a skip, a crash with its signal, the outcome of a process that exited
 * without reporting). It writes those after the process is reaped, so a Last
 * Will fired by the kill can never overwrite them on the broker.
 *
 * When a process exits before its final state has reached us, the coordinator
 * does not guess: it publishes a token on sync/<token> and waits for it to come
 * back. The broker forwards messages to a subscriber in the order it received
 * them, and the task's last publish was acknowledged before the task exited,
 * so once the token is back every state the task sent has been seen.
 */
#define _GNU_SOURCE
#include "run.h"
#include <flowbus/flowbus.h>
#include "access.h"
#include "broker.h"
#include "display.h"
#include "graph.h"
#include "launcher.h"
#include "log.h"
#include "plugins.h"
#include "tracker.h"
#include "workflow.h"

#include <dirent.h>
#include <errno.h>
#include <flowbus/flowbus.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KILL_GRACE 2.0     /* seconds between SIGTERM and SIGKILL */
#define STOP_GRACE 1.0     /* seconds a waiting task has to obey a stop before SIGTERM */
#define SYNC_WAIT 1.0      /* seconds to wait for a sync token */
#define MAX_LINE 65536     /* longer output lines are cut and marked */
#define MSGS_PER_TURN 4096 /* bus messages handled before looking at other fds */
#define READ_PER_TURN (256 * 1024) /* bytes of a task's output read before looking elsewhere */
#define LOG_LINES_PER_S 2000 /* forwarded per task and second; more are counted and dropped */
#define ADOPTED_PROBE 0.1  /* seconds between liveness checks of an adopted process */
#define RECONNECT_EXTERNAL 30.0 /* seconds an external broker may be away mid-run */
#define RESTART_RESET 10.0 /* seconds up after which a restarted process's backoff starts over */
#define CONNECT_ATTEMPTS 8 /* to an external broker: 0.1+0.2+...+2 s, about 10 s */
#define LAUNCH_PATIENCE 1.0 /* seconds a starting process holds its place in the launch window */
#define MAX_LAUNCH_WINDOW 64

enum kill_reason { KILL_NONE, KILL_TIMEOUT, KILL_SKIP, KILL_STOP };

struct proc {
    size_t task; /* index of its task; procs[t] is the first (or only) process of task t */
    int worker;  /* 1..workers (reactive pools), else 1 */
    int restarts;    /* reactive: consecutive restarts, for the backoff */
    double up_since; /* monotonic time it was started */
    pid_t pid; /* also the process group id; 0 if never started */
    int fd;    /* stdout+stderr pipe; -1 once closed */
    int reaped;
    int status;
    enum kill_reason kill;
    double term_at;  /* monotonic time to escalate to SIGKILL; 0 = none */
    double sigterm_at; /* monotonic time to send SIGTERM to a task told to stop; 0 = none */
    double deadline; /* monotonic execution timeout; 0 = none */
    double sync_at;  /* monotonic deadline of a pending sync; 0 = none */
    int attempt;     /* 1 for the first attempt */
    int adopted;     /* started by an earlier coordinator: not our child, watched by pid */
    double probe_at; /* monotonic time to check that an adopted process still lives */
    int retrying;    /* another attempt is decided; it starts once this process is reaped */
    double retry_delay;
    double retry_at; /* monotonic time to start the next attempt; 0 = none */
    char *final_json; /* this attempt's final state, authored here, published at reap */
    char *line; /* allocated on the first output; grows up to MAX_LINE */
    size_t len, cap;
    int cut;
    double window;      /* monotonic start of the current log-rate window */
    unsigned lines;     /* lines forwarded in that window */
    unsigned long dropped; /* lines dropped in that window */
};

struct run {
    const struct run_options *o;
    struct workflow *wf;
    struct graph *g;
    struct tracker *tr;
    struct display *disp;
    struct broker *broker;
    struct access *access;
    fb_bus *bus;
    struct proc *procs;
    size_t n_procs; /* n_tasks, plus the extra workers of reactive pools */
    size_t *order;  /* process indices in the order to start them */
    char *workflow_json; /* as last published on the workflow topic */
    const size_t *order_depth; /* task depths, only while sorting */
    size_t *skipped;
    int reactive;
    int paused;
    int stop_requested; /* {"cmd":"stop"} seen on the control topic */
    int unpaused;       /* resume only lifted a pause: nothing else to do */
    struct launch_context lc;
    char wf_path[4096]; /* the workflow file, absolute, and the directory of the run */
    char wf_cwd[4096];
    char run_dir[256]; /* private (0700) directory of the run: the permission cache */
    char cache_salt[40];
    int sigfd;
    char run_id[72];
    char root[96];
    double t0_wall, t0_mono;
    double run_deadline;
    int finishing;
    int interrupted; /* the signal that stopped the run, or -1 for the run timeout */
    int final_synced;
    double final_sync_at;
    int fatal; /* an exit code forced by an infrastructure failure */
    int follow_vars; /* subscribed to the variables (not a reactive flow without --json) */
    unsigned reconnects; /* fb_bus_reconnects() when last looked at */
    /* The launch window (launch_more): processes started but not yet heard from. */
    size_t next_launch; /* index into order of the next process to start */
    size_t starting[MAX_LAUNCH_WINDOW];
    size_t n_starting, launch_window;
};

static void topic(const struct run *r, char *buf, size_t len, const char *a, const char *b,
                  const char *c)
{
    snprintf(buf, len, "%s/%s%s%s%s", r->root, a, b ? b : "", c ? "/" : "", c ? c : "");
}

static void publish_text(struct run *r, const char *t, const char *text, int retained)
{
    enum fb_err e = fb_bus_publish(r->bus, t, text, strlen(text), 1, retained, 0);
    if (e != FB_OK)
        log_printf(FB_LOG_WARN, "publish to %s failed: %s", t, fb_strerror(e));
}

static void publish_task_state(struct run *r, size_t t)
{
    char tp[256];
    char *json = tracker__state_json(r->tr, t);

    if (!json)
        return;
    topic(r, tp, sizeof tp, "tasks/", r->wf->tasks[t].name, "state");
    publish_text(r, tp, json, 1);
    free(json);
}

static void publish_run_state_expiring(struct run *r, const char *state, int code,
                                       unsigned expiry)
{
    char tp[256];
    json_t *o = json_pack("{s:s, s:f, s:f, s:i, s:s, s:b}", "state", state, "at", fb_clock_wall(),
                          "started", r->t0_wall, "tasks", (int)r->wf->n_tasks, "mode",
                          r->reactive ? "reactive" : "oneshot", "paused", r->paused);
    char *s;

    json_object_set_new(o, "exit", code >= 0 ? json_integer(code) : json_null());
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    topic(r, tp, sizeof tp, "state", NULL, NULL);
    if (s && fb_bus_publish(r->bus, tp, s, strlen(s), 1, 1, expiry) != FB_OK)
        log_printf(FB_LOG_WARN, "cannot publish the run state");
    free(s);
}

static void publish_run_state(struct run *r, const char *state, int code)
{
    publish_run_state_expiring(r, state, code, 0);
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
static void publish_expiring(struct run *r, unsigned expiry)
{
    char tp[256], *json;

    for (size_t v = 0; v < graph__var_count(r->g); v++) {
        const char *value = tracker__var_value(r->tr, v);
        if (!value || var_secret(r, graph__var_name(r->g, v)))
            continue;
        topic(r, tp, sizeof tp, "vars/", graph__var_name(r->g, v), NULL);
        fb_bus_publish(r->bus, tp, value[0] ? value : "", value[0] ? strlen(value) : 1, 1, 1,
                       expiry);
    }
    for (size_t t = 0; t < r->wf->n_tasks; t++) {
        json = tracker__state_json(r->tr, t);
        topic(r, tp, sizeof tp, "tasks/", r->wf->tasks[t].name, "state");
        if (json)
            fb_bus_publish(r->bus, tp, json, strlen(json), 1, 1, expiry);
        free(json);
    }
    json = r->workflow_json;
    topic(r, tp, sizeof tp, "workflow", NULL, NULL);
    if (json)
        fb_bus_publish(r->bus, tp, json, strlen(json), 1, 1, expiry);
    topic(r, tp, sizeof tp, "control", NULL, NULL);
    fb_bus_publish(r->bus, tp, "{\"cmd\":\"stop\"}", 14, 1, 1, expiry);
}

static void generate_run_id(char *buf, size_t len)
{
    time_t now = time(NULL);
    struct tm tm;
    unsigned char rnd[3] = {0};
    char stamp[32];

    localtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        rnd[0] = (unsigned char)getpid();
    snprintf(buf, len, "%s-%02x%02x%02x", stamp, rnd[0], rnd[1], rnd[2]);
}

/* Sends sig to a live task's process group and arranges the SIGKILL escalation. */
static void stop_proc(struct run *r, size_t t, enum kill_reason why)
{
    struct proc *p = &r->procs[t];

    if (!p->pid || p->reaped)
        return;
    if (p->kill == KILL_NONE)
        p->kill = why;
    launcher__signal(p->pid, SIGTERM);
    if (!p->term_at)
        p->term_at = fb_clock_mono() + KILL_GRACE;
}

static void show_task(struct run *r, size_t t)
{
    display__task(r->disp, t);
}

/* Marks newly dead tasks skipped and stops their processes. */
static void propagate(struct run *r)
{
    size_t n = tracker__propagate(r->tr, fb_clock_wall(), r->skipped);

    for (size_t i = 0; i < n; i++) {
        size_t t = r->skipped[i];
        struct proc *p = &r->procs[t];
        show_task(r, t);
        if (p->pid && !p->reaped)
            stop_proc(r, t, KILL_SKIP);
        else if (!p->sync_at)
            publish_task_state(r, t);
    }
}

static int failed_state(enum task_state s)
{
    return s == TS_FAILED || s == TS_TIMEOUT || s == TS_CRASHED;
}

/*
 * Called whenever task t reaches a final state. A failure with attempts left
 * becomes a retry: the task goes back to waiting (so its dependents are not
 * skipped), and the next attempt starts after an exponential backoff, once
 * the failed process is gone.
 */
static void on_final(struct run *r, size_t t)
{
    const struct wf_task *task = &r->wf->tasks[t];
    const struct task_info *ti = tracker__task(r->tr, t);
    struct proc *p = &r->procs[t];
    double base = task->retry_delay > 0 ? task->retry_delay : 1.0;
    double cap = task->retry_max_delay > 0 ? task->retry_max_delay : 60.0;
    char note[512];

    if (!failed_state(ti->state) || p->attempt > task->retries || r->interrupted || p->retrying)
        return;
    p->retry_delay = base;
    for (int i = 1; i < p->attempt && p->retry_delay < cap; i++)
        p->retry_delay *= 2;
    if (p->retry_delay > cap)
        p->retry_delay = cap;
    /* What this attempt ended as is published when its process is reaped. */
    if (p->pid && !p->reaped && p->kill != KILL_NONE)
        p->final_json = tracker__state_json(r->tr, t);
    snprintf(note, sizeof note, "attempt %d %s (%s); attempt %d of %d in %g s", p->attempt,
             tracker__state_name(ti->state), ti->error ? ti->error : "no reason given",
             p->attempt + 1, task->retries + 1, p->retry_delay);
    display__note(r->disp, "%s: %s", task->name, note);
    tracker__retry(r->tr, t, p->attempt + 1, fb_clock_wall(), note);
    p->retrying = 1;
    if (!p->pid || p->reaped)
        p->retry_at = fb_clock_mono() + p->retry_delay;
}

/* Process i has been heard from (or is gone): it no longer holds a place in the launch window. */
static void started(struct run *r, size_t i)
{
    for (size_t k = 0; k < r->n_starting; k++) {
        if (r->starting[k] == i) {
            r->starting[k] = r->starting[--r->n_starting];
            break;
        }
    }
}

/* Starts process i: the next attempt of its task (or the first), or a restart. */
static void launch(struct run *r, size_t i, int attempt)
{
    struct proc *p = &r->procs[i];
    size_t t = p->task;
    char err[256];

    p->attempt = attempt;
    p->adopted = 0;
    p->reaped = 0;
    p->status = 0;
    p->kill = KILL_NONE;
    p->term_at = p->deadline = p->sync_at = p->retry_at = 0;
    p->retrying = 0;
    p->len = 0;
    p->cut = 0;
    free(p->final_json);
    p->final_json = NULL;
    p->up_since = fb_clock_mono();
    p->pid = launcher__spawn(&r->lc, t, p->worker, attempt, &p->fd);
    if (p->pid < 0) {
        snprintf(err, sizeof err, "cannot start %s: %s", r->wf->tasks[t].plugin_path,
                 strerror(errno));
        p->pid = 0;
        tracker__set(r->tr, t, TS_FAILED, fb_clock_wall(), -1, 0, err);
        publish_task_state(r, t);
        show_task(r, t);
        if (!r->reactive)
            on_final(r, t);
    }
}

static void log_note(struct run *r, size_t i, const char *text);

/* 1 if another process of task t is alive or about to be started again. */
static int task_has_other_process(const struct run *r, size_t t, size_t except)
{
    for (size_t i = 0; i < r->n_procs; i++) {
        const struct proc *p = &r->procs[i];
        if (i != except && p->task == t && ((p->pid && !p->reaped) || p->retry_at))
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
    int signaled = !p->adopted && WIFSIGNALED(p->status);
    int code = !p->adopted && WIFEXITED(p->status) ? WEXITSTATUS(p->status) : -1;
    int failure = p->adopted || signaled || code != 0 || p->kill == KILL_TIMEOUT;
    double base = task->retry_delay > 0 ? task->retry_delay : 1.0;
    double cap = task->retry_max_delay > 0 ? task->retry_max_delay : 60.0;
    char how[160], note[320];
    int restart;

    if (r->interrupted || r->finishing || p->kill == KILL_STOP)
        return;
    if (p->kill == KILL_TIMEOUT)
        snprintf(how, sizeof how, "an activation timed out after %g s", task->timeout);
    else if (signaled)
        snprintf(how, sizeof how, "killed by signal %d (%s)", WTERMSIG(p->status),
                 strsignal(WTERMSIG(p->status)));
    else if (code >= 0)
        snprintf(how, sizeof how, "exited with code %d", code);
    else
        snprintf(how, sizeof how, "ended (adopted process)");
    restart = ti->state != TS_DENIED &&
              (task->restart == WF_RESTART_ALWAYS ||
               (task->restart == WF_RESTART_ON_FAILURE && failure));
    if (!restart) {
        display__note(r->disp, "%s (worker %d): process %s; not started again (restart: %s)",
                      task->name, p->worker, how,
                      ti->state == TS_DENIED ? "denied" : failure ? "on-failure" : "never");
        if (!task_has_other_process(r, t, i) && !tracker__terminal(ti->state)) {
            tracker__set(r->tr, t, !failure ? TS_DONE : signaled ? TS_CRASHED : TS_FAILED,
                         fb_clock_wall(), code, signaled ? WTERMSIG(p->status) : 0, failure ? how : NULL);
            publish_task_state(r, t);
            show_task(r, t);
        }
        return;
    }
    if (fb_clock_mono() - p->up_since >= RESTART_RESET)
        p->restarts = 0;
    p->retry_delay = base;
    for (int k = 0; k < p->restarts && p->retry_delay < cap; k++)
        p->retry_delay *= 2;
    if (p->retry_delay > cap)
        p->retry_delay = cap;
    p->restarts++;
    p->retry_at = fb_clock_mono() + p->retry_delay;
    snprintf(note, sizeof note, "process %s; restart %d in %g s", how, p->restarts,
             p->retry_delay);
    display__note(r->disp, "%s (worker %d): %s", task->name, p->worker, note);
    log_note(r, i, note);
}

/* A reactive run is over when it was stopped or no process is left to run. */
static int reactive_over(const struct run *r)
{
    if (r->interrupted)
        return 1;
    for (size_t i = 0; i < r->n_procs; i++) {
        const struct proc *p = &r->procs[i];
        if ((p->pid && !p->reaped) || p->retry_at)
            return 0;
    }
    return 1;
}

/* Decides the state of a task whose process (i) exited without reporting one. */
static void resolve_exit(struct run *r, size_t i)
{
    struct proc *p = &r->procs[i];
    size_t t = p->task;
    const struct task_info *ti = tracker__task(r->tr, t);
    double now = fb_clock_wall();
    char err[160];

    p->sync_at = 0;
    /* The attempt's outcome arrived while we waited, and it is being retried. */
    if (p->retrying)
        return;
    if (tracker__terminal(ti->state)) {
        /* A Last Will says "crashed" but not why; add the signal we saw. */
        if (ti->state == TS_CRASHED && !p->adopted && WIFSIGNALED(p->status) && !ti->signal) {
            snprintf(err, sizeof err, "killed by signal %d (%s)", WTERMSIG(p->status),
                     strsignal(WTERMSIG(p->status)));
            tracker__set(r->tr, t, TS_CRASHED, ti->at, -1, WTERMSIG(p->status), err);
            publish_task_state(r, t);
            show_task(r, t);
        }
        return;
    }
    if (p->adopted) {
        /* Not our child: its exit status is gone with the coordinator that was. */
        tracker__set(r->tr, t, TS_CRASHED, now, -1, 0,
                     "process ended without reporting a final state (adopted after a coordinator "
                     "restart)");
    } else if (WIFEXITED(p->status) && WEXITSTATUS(p->status) == 0) {
        tracker__set(r->tr, t, TS_DONE, now, 0, 0, NULL);
    } else if (WIFEXITED(p->status)) {
        snprintf(err, sizeof err, "process exited with code %d", WEXITSTATUS(p->status));
        tracker__set(r->tr, t, TS_FAILED, now, WEXITSTATUS(p->status), 0, err);
    } else {
        snprintf(err, sizeof err, "killed by signal %d (%s)", WTERMSIG(p->status),
                 strsignal(WTERMSIG(p->status)));
        tracker__set(r->tr, t, TS_CRASHED, now, -1, WTERMSIG(p->status), err);
    }
    publish_task_state(r, t);
    show_task(r, t);
    on_final(r, t);
}

/*
 * Masks every secret value (AUTH_TOKEN, `secret: true` variables) in a line a
 * task wrote, in place, so a task that prints its token does not put it on
 * the bus. Masking only shortens the line.
 */
static void redact(const struct run *r, char *line, size_t *len)
{
    static const char mask[] = "***";

    for (size_t i = 0; i < r->wf->n_vars; i++) {
        const struct wf_var *v = &r->wf->vars[i];
        size_t vlen = strlen(v->value);
        char *hit;

        /* Very short values would mask ordinary text and protect nothing. */
        if (!v->secret || vlen < 4)
            continue;
        while ((hit = memmem(line, *len, v->value, vlen)) != NULL) {
            size_t tail = *len - (size_t)(hit - line) - vlen;
            memcpy(hit, mask, sizeof mask - 1);
            memmove(hit + sizeof mask - 1, hit + vlen, tail);
            *len -= vlen - (sizeof mask - 1);
        }
    }
    line[*len] = '\0';
}

/* Publishes a note on the log topic of process i's task (not subject to the rate limit). */
static void log_note(struct run *r, size_t i, const char *text)
{
    char tp[256];

    topic(r, tp, sizeof tp, "tasks/", r->wf->tasks[r->procs[i].task].name, "log");
    fb_bus_publish(r->bus, tp, text, strlen(text), 1, 0, 0);
}

/*
 * A task that floods its output must not flood the bus, the broker's queues
 * or the coordinator: past LOG_LINES_PER_S in a second, lines are dropped and
 * counted, and the count is reported once the second is over.
 */
static int rate_allows(struct run *r, size_t i)
{
    struct proc *p = &r->procs[i];
    double now = fb_clock_mono();

    if (now - p->window >= 1.0) {
        if (p->dropped) {
            char note[128];
            snprintf(note, sizeof note,
                     "[flowbus: %lu lines dropped: more than %d lines in a second]", p->dropped,
                     LOG_LINES_PER_S);
            log_note(r, i, note);
        }
        p->window = now;
        p->lines = 0;
        p->dropped = 0;
    }
    if (p->lines >= LOG_LINES_PER_S) {
        p->dropped++;
        return 0;
    }
    p->lines++;
    return 1;
}

static void flush_line(struct run *r, size_t i)
{
    struct proc *p = &r->procs[i];
    char tp[256];

    if (p->len == 0 && !p->cut)
        return;
    if (!rate_allows(r, i) || !p->line) {
        if (p->line == NULL && p->cut)
            log_note(r, i, "[line cut: out of memory]");
        p->len = 0;
        p->cut = 0;
        return;
    }
    p->line[p->len] = '\0';
    redact(r, p->line, &p->len);
    if (p->cut) {
        static const char mark[] = " [line cut]";
        memcpy(p->line + p->len, mark, sizeof mark);
        p->len += sizeof mark - 1;
    }
    topic(r, tp, sizeof tp, "tasks/", r->wf->tasks[p->task].name, "log");
    fb_bus_publish(r->bus, tp, p->line, p->len, 1, 0, 0);
    p->len = 0;
    p->cut = 0;
}

/* Reads what process i wrote and publishes it on its task's log topic, line by line. */
static void read_output(struct run *r, size_t i)
{
    struct proc *p = &r->procs[i];
    char buf[8192];
    size_t total = 0;

    while (total < READ_PER_TURN) {
        ssize_t n = read(p->fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
                flush_line(r, i);
                close(p->fd);
                p->fd = -1;
            }
            return;
        }
        total += (size_t)n;
        for (ssize_t k = 0; k < n; k++) {
            if (buf[k] == '\n') {
                flush_line(r, i);
                continue;
            }
            /* 32 bytes stay free for the NUL and the " [line cut]" mark. */
            if (p->len + 32 >= p->cap && p->cap < MAX_LINE + 32) {
                size_t cap = p->cap ? p->cap * 4 : 256;
                char *grown = realloc(p->line, cap < MAX_LINE + 32 ? cap : MAX_LINE + 32);
                if (grown) {
                    p->line = grown;
                    p->cap = cap < MAX_LINE + 32 ? cap : MAX_LINE + 32;
                }
            }
            if (p->len < MAX_LINE && p->len + 32 < p->cap)
                p->line[p->len++] = buf[k];
            else
                p->cut = 1;
        }
    }
}

static void reactive_exit(struct run *r, size_t i);

static void on_reaped(struct run *r, size_t i, int status)
{
    struct proc *p = &r->procs[i];
    size_t t = p->task;
    char tp[256];

    p->reaped = 1;
    started(r, i);
    p->status = status;
    p->term_at = 0;
    p->sigterm_at = 0;
    p->deadline = 0;
    if (p->fd >= 0)
        read_output(r, i);
    /* Whatever the task left behind in its group goes with it. */
    launcher__signal(p->pid, SIGKILL);
    if (r->reactive) {
        reactive_exit(r, i);
        return;
    }
    if (p->retrying) {
        if (p->final_json) {
            topic(r, tp, sizeof tp, "tasks/", r->wf->tasks[t].name, "state");
            publish_text(r, tp, p->final_json, 1);
        }
        publish_task_state(r, t); /* waiting for the next attempt, and why */
        p->retry_at = fb_clock_mono() + p->retry_delay;
        return;
    }
    if (p->kill != KILL_NONE) {
        publish_task_state(r, t);
        return;
    }
    if (tracker__terminal(tracker__task(r->tr, t)->state)) {
        resolve_exit(r, t);
        return;
    }
    snprintf(tp, sizeof tp, "%s/sync/p%zu", r->root, i);
    fb_bus_publish(r->bus, tp, "", 0, 1, 0, 0);
    p->sync_at = fb_clock_mono() + SYNC_WAIT;
}

static void interrupt(struct run *r, int why, const char *text);

static void reap(struct run *r)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            break;
        if (r->broker && pid == broker__pid(r->broker)) {
            char err[256];
            broker__forget(r->broker);
            if (r->finishing || r->interrupted)
                continue;
            /* Everyone reconnects on their own: the coordinator's bus, every
             * task through the SDK. The broker's persistence and the tasks'
             * re-sent states cover what it had not saved. */
            display__note(r->disp, "flowbus: the private broker died (%s %d); restarting it",
                          WIFSIGNALED(status) ? "signal" : "exit code",
                          WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
            if (!broker__restart(r->broker, err, sizeof err)) {
                log_printf(FB_LOG_ERROR, "cannot restart the private broker: %s", err);
                r->fatal = EXIT_BROKER;
                interrupt(r, SIGTERM, "the private broker died and could not be restarted");
            }
            continue;
        }
        for (size_t i = 0; i < r->n_procs; i++) {
            if (r->procs[i].pid == pid && !r->procs[i].reaped && !r->procs[i].adopted) {
                on_reaped(r, i, status);
                break;
            }
        }
    }
}

/* Stops the run early: Ctrl-C, SIGTERM, the run timeout or a lost broker. */
static void interrupt(struct run *r, int why, const char *text)
{
    char tp[256];
    double now = fb_clock_wall();
    unsigned char *stopped = NULL;
    enum { STOPPED_WAITING = 1, STOPPED_RUNNING = 2 };

    if (r->interrupted) {
        /* A second Ctrl-C: no more grace. */
        for (size_t i = 0; i < r->n_procs; i++)
            if (r->procs[i].pid && !r->procs[i].reaped)
                launcher__signal(r->procs[i].pid, SIGKILL);
        return;
    }
    r->interrupted = why;
    /* What each task was, before this stop decides what it becomes. */
    stopped = calloc(r->wf->n_tasks + 1, 1);
    display__note(r->disp, "flowbus: %s; stopping every task", text);
    topic(r, tp, sizeof tp, "control", NULL, NULL);
    publish_text(r, tp, "{\"cmd\":\"stop\"}", 1);
    for (size_t t = 0; t < r->wf->n_tasks; t++) {
        const struct task_info *ti = tracker__task(r->tr, t);
        if (tracker__terminal(ti->state))
            continue;
        if (stopped)
            stopped[t] = ti->state == TS_RUNNING ? STOPPED_RUNNING : STOPPED_WAITING;
        if (r->reactive)
            /* A reactive task has nothing left undone: it was stopped. */
            tracker__set(r->tr, t, TS_STOPPED, now, -1, 0, text);
        else if (ti->state == TS_RUNNING)
            tracker__set(r->tr, t, why == -1 ? TS_TIMEOUT : TS_FAILED, now, -1, 0, text);
        else
            tracker__set(r->tr, t, TS_SKIPPED, now, -1, 0, text);
        show_task(r, t);
    }
    /*
     * Running tasks are signalled at once. Waiting ones read the stop on the
     * control topic and exit by themselves (a task on another host has only
     * that); the signal follows after STOP_GRACE for those that do not.
     */
    for (size_t i = 0; i < r->n_procs; i++) {
        struct proc *p = &r->procs[i];
        int was = stopped ? stopped[p->task] : STOPPED_RUNNING;
        p->retry_at = 0;
        if (p->pid && !p->reaped && was != STOPPED_WAITING) {
            stop_proc(r, i, KILL_STOP);
        } else if (p->pid && !p->reaped) {
            p->kill = KILL_STOP;
            p->sigterm_at = fb_clock_mono() + STOP_GRACE;
        } else if (i < r->wf->n_tasks && was) {
            /* Its process is gone already (maybe it obeyed the stop before we
             * read it): the state decided here is the one to keep. */
            publish_task_state(r, p->task);
        }
    }
    free(stopped);
}

/*
 * The process of task t that published a state with this pid: the task's
 * first process unless a worker of its pool has that pid.
 */
static struct proc *proc_of(struct run *r, size_t t, long pid)
{
    for (size_t i = r->wf->n_tasks; pid > 0 && i < r->n_procs; i++)
        if (r->procs[i].task == t && r->procs[i].pid == pid)
            return &r->procs[i];
    return &r->procs[t];
}

/*
 * The run's control topic: anyone may ask to stop, pause or resume it
 * (flowbus stop/pause/resume, mosquitto_pub). The coordinator's own
 * {"cmd":"stop"} comes back here too and changes nothing then.
 */
static void on_control(struct run *r, const char *payload)
{
    json_t *o = json_loads(payload, 0, NULL);
    const char *cmd = json_string_value(json_object_get(o, "cmd"));

    if (!cmd) {
        log_printf(FB_LOG_WARN, "ignored a malformed control message");
    } else if (strcmp(cmd, "stop") == 0) {
        if (!r->interrupted) {
            r->stop_requested = 1;
            interrupt(r, SIGTERM, "stopped by a stop request on the control topic");
        }
    } else if (strcmp(cmd, "pause") == 0 || strcmp(cmd, "resume") == 0) {
        int paused = strcmp(cmd, "pause") == 0;
        if (paused != r->paused) {
            r->paused = paused;
            display__note(r->disp, "flowbus: run %s", paused ? "paused" : "resumed");
            publish_run_state(r, "running", -1);
        }
    } else {
        log_printf(FB_LOG_WARN, "ignored an unknown control command '%s'", cmd);
    }
    json_decref(o);
}

static void handle_message(struct run *r, fb_msg *m)
{
    size_t idx = 0;
    const char *text = NULL;
    enum tracker_event ev = tracker__on_message(r->tr, m->topic, m->payload, m->len, &idx, &text);

    switch (ev) {
    case TRACK_TASK: {
        const struct task_info *ti = tracker__task(r->tr, idx);
        struct proc *p = proc_of(r, idx, ti->pid);
        double limit = r->wf->tasks[idx].timeout;
        if (ti->state != TS_NONE)
            started(r, (size_t)(p - r->procs));
        show_task(r, idx);
        if (tracker__terminal(ti->state) && !r->reactive)
            on_final(r, idx);
        /* The timeout counts from the start of execution (of each activation). */
        if (ti->state == TS_RUNNING && limit > 0 && p->pid && !p->reaped && !p->deadline) {
            double late = fb_clock_wall() - ti->started;
            p->deadline = fb_clock_mono() + limit - (late > 0 && late < limit ? late : 0);
        } else if (ti->state == TS_WAITING) {
            p->deadline = 0;
        }
        break;
    }
    case TRACK_CONTROL:
        on_control(r, text);
        break;
    case TRACK_STALE:
        publish_task_state(r, idx);
        break;
    case TRACK_VAR:
        display__var(r->disp, idx);
        break;
    case TRACK_LOG:
        display__log(r->disp, idx, text);
        break;
    case TRACK_SYNC:
        if (strcmp(text, "final") == 0) {
            r->final_synced = 1;
        } else if (text[0] == 'p') {
            size_t i = strtoul(text + 1, NULL, 10);
            if (i < r->n_procs && r->procs[i].sync_at)
                resolve_exit(r, i);
        }
        break;
    default:
        break;
    }
}

static void check_timers(struct run *r)
{
    double now = fb_clock_mono();
    char err[128];

    for (size_t i = 0; i < r->n_procs; i++) {
        struct proc *p = &r->procs[i];
        size_t t = p->task;
        if (p->deadline && now >= p->deadline && !p->reaped) {
            p->deadline = 0;
            if (r->reactive) {
                /* An activation that overruns: the process is killed and, by the
                 * restart policy, started again. */
                snprintf(err, sizeof err, "activation timed out after %g s",
                         r->wf->tasks[t].timeout);
                log_note(r, i, err);
                stop_proc(r, i, KILL_TIMEOUT);
            } else if (tracker__task(r->tr, t)->state == TS_RUNNING) {
                snprintf(err, sizeof err, "timed out after %g s", r->wf->tasks[t].timeout);
                tracker__set(r->tr, t, TS_TIMEOUT, fb_clock_wall(), -1, 0, err);
                show_task(r, t);
                stop_proc(r, t, KILL_TIMEOUT);
                on_final(r, t);
            }
        }
        if (p->sigterm_at && now >= p->sigterm_at && !p->reaped) {
            p->sigterm_at = 0;
            launcher__signal(p->pid, SIGTERM);
            p->term_at = now + KILL_GRACE;
        }
        if (p->term_at && now >= p->term_at && !p->reaped) {
            p->term_at = 0;
            launcher__signal(p->pid, SIGKILL);
        }
        if (p->sync_at && now >= p->sync_at)
            resolve_exit(r, i);
        if (p->retry_at && now >= p->retry_at && !r->interrupted)
            launch(r, i, p->attempt + 1);
        if (p->adopted && !p->reaped && now >= p->probe_at) {
            p->probe_at = now + ADOPTED_PROBE;
            if (kill(p->pid, 0) != 0 && errno == ESRCH)
                on_reaped(r, i, 0);
        }
    }
    if (r->run_deadline && now >= r->run_deadline && !r->interrupted) {
        snprintf(err, sizeof err, "run timed out after %g s", r->o->timeout);
        interrupt(r, -1, err);
    }
}

static double next_timer(const struct run *r)
{
    double next = r->run_deadline && !r->interrupted ? r->run_deadline : 0;

    for (size_t i = 0; i < r->n_procs; i++) {
        const struct proc *p = &r->procs[i];
        double c[6] = {p->deadline, p->term_at, p->sync_at, p->retry_at,
                       p->adopted && !p->reaped ? p->probe_at : 0, p->sigterm_at};
        for (int k = 0; k < 6; k++)
            if (c[k] && (!next || c[k] < next))
                next = c[k];
    }
    if (r->final_sync_at && (!next || r->final_sync_at < next))
        next = r->final_sync_at;
    return next;
}

static int all_reaped(const struct run *r)
{
    for (size_t i = 0; i < r->n_procs; i++) {
        const struct proc *p = &r->procs[i];
        if ((p->pid && !p->reaped) || p->sync_at)
            return 0;
    }
    return 1;
}

static void publish_workflow(struct run *r);
static void publish_initial_vars(struct run *r);

/*
 * After a reconnect the broker may be a restarted one that lost what it had
 * not saved. Retained messages arrive again (the tracker takes them as the
 * repeats they are); the coordinator publishes again what it alone knows:
 * the workflow, the run state, the initial variables and every final task
 * state it holds, and its pending sync probes.
 */
static void on_reconnect(struct run *r)
{
    char tp[256];

    display__note(r->disp, "flowbus: reconnected to the broker; publishing the run's state again");
    publish_workflow(r);
    publish_run_state(r, "running", -1);
    publish_initial_vars(r);
    for (size_t t = 0; t < r->wf->n_tasks; t++)
        if (tracker__terminal(tracker__task(r->tr, t)->state))
            publish_task_state(r, t);
    for (size_t i = 0; i < r->n_procs; i++) {
        if (r->procs[i].sync_at) {
            snprintf(tp, sizeof tp, "%s/sync/p%zu", r->root, i);
            fb_bus_publish(r->bus, tp, "", 0, 1, 0, 0);
            r->procs[i].sync_at = fb_clock_mono() + SYNC_WAIT;
        }
    }
}

static void drain_bus(struct run *r)
{
    unsigned reconnects = fb_bus_reconnects(r->bus);

    if (reconnects != r->reconnects) {
        r->reconnects = reconnects;
        on_reconnect(r);
    }
    for (int i = 0; i < MSGS_PER_TURN; i++) {
        fb_msg *m = NULL;
        enum fb_err e = fb_bus_next(r->bus, 0, &m);
        if (e == FB_ERR_LOST) {
            if (!r->fatal) {
                r->fatal = EXIT_BROKER;
                interrupt(r, SIGTERM, "lost the connection to the broker");
            }
            return;
        }
        if (e != FB_OK)
            return;
        handle_message(r, m);
        fb_msg_free(m);
    }
}

static void handle_signals(struct run *r)
{
    struct signalfd_siginfo si;

    while (read(r->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGCHLD)
            reap(r);
        else if (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM || si.ssi_signo == SIGHUP) {
            char text[64];
            snprintf(text, sizeof text, "interrupted by %s", sigabbrev_np((int)si.ssi_signo));
            interrupt(r, (int)si.ssi_signo, text);
        }
    }
}

/* The event loop: runs until every task is finished and every process is gone. */
static void launch_more(struct run *r);

static void loop(struct run *r)
{
    size_t n = r->n_procs;
    struct pollfd *fds = calloc(n + 2, sizeof *fds);
    size_t *owner = calloc(n + 2, sizeof *owner);

    if (!fds || !owner) {
        log_printf(FB_LOG_ERROR, "out of memory");
        r->fatal = EXIT_BROKER;
        goto out;
    }
    for (;;) {
        size_t nfds = 0;
        double next;
        int timeout_ms = 1000;

        /* A reactive flow has no dead variables: anything may be set later. */
        if (!r->reactive)
            propagate(r);
        if (!r->finishing && (r->reactive ? reactive_over(r) : tracker__finished(r->tr))) {
            r->finishing = 1;
            for (size_t i = 0; i < n; i++)
                if (r->procs[i].pid && !r->procs[i].reaped && !r->procs[i].term_at)
                    r->procs[i].term_at = fb_clock_mono() + KILL_GRACE;
        }
        if (r->finishing && all_reaped(r)) {
            if (r->final_synced || (r->final_sync_at && fb_clock_mono() >= r->final_sync_at))
                break;
            if (!r->final_sync_at) {
                char tp[256];
                snprintf(tp, sizeof tp, "%s/sync/final", r->root);
                fb_bus_publish(r->bus, tp, "", 0, 1, 0, 0);
                r->final_sync_at = fb_clock_mono() + SYNC_WAIT;
            }
        }
        display__refresh(r->disp, 0);

        fds[nfds].fd = r->sigfd;
        fds[nfds++].events = POLLIN;
        fds[nfds].fd = fb_bus_fd(r->bus);
        fds[nfds++].events = POLLIN;
        for (size_t i = 0; i < n; i++) {
            if (r->procs[i].fd >= 0) {
                owner[nfds] = i;
                fds[nfds].fd = r->procs[i].fd;
                fds[nfds++].events = POLLIN;
            }
        }
        next = next_timer(r);
        if (next) {
            double d = (next - fb_clock_mono()) * 1000.0 + 1;
            timeout_ms = d < 0 ? 0 : d > 1000 ? 1000 : (int)d;
        }
        /* A process slow to start gives up its place in the launch window in time. */
        if (r->n_starting && r->next_launch < r->n_procs && timeout_ms > 100)
            timeout_ms = 100;
        if (display__next_ms(r->disp) >= 0 && display__next_ms(r->disp) < timeout_ms)
            timeout_ms = display__next_ms(r->disp);
        if (poll(fds, nfds, timeout_ms) < 0 && errno != EINTR) {
            log_printf(FB_LOG_ERROR, "poll: %s", strerror(errno));
            r->fatal = EXIT_BROKER;
            break;
        }
        if (fds[0].revents)
            handle_signals(r);
        if (fds[1].revents)
            drain_bus(r);
        for (size_t k = 2; k < nfds; k++)
            if (fds[k].revents && r->procs[owner[k]].fd >= 0)
                read_output(r, owner[k]);
        check_timers(r);
        launch_more(r);
    }
out:
    free(fds);
    free(owner);
}

static int setup_signals(struct run *r)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    /* Blocked before any thread exists, so Paho's threads inherit the mask and
     * every one of these signals is read from the signalfd by the loop. */
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
        return 0;
    signal(SIGPIPE, SIG_IGN);
    r->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    return r->sigfd >= 0;
}

static int connect_bus(struct run *r, const char *url, const char *user, const char *pass)
{
    fb_bus_options bo = {0};
    char will_topic[128], client_id[96], err[256], filter[5][128];
    char will[256];
    const char *filters[5] = {filter[0], filter[1], filter[2], filter[3], filter[4]};
    size_t n_filters;
    enum fb_err e;

    topic(r, will_topic, sizeof will_topic, "state", NULL, NULL);
    snprintf(will, sizeof will,
             "{\"state\":\"lost\",\"at\":%.6f,\"started\":%.6f,\"exit\":null,"
             "\"error\":\"the coordinator's connection was lost\"}",
             fb_clock_wall(), r->t0_wall);
    snprintf(client_id, sizeof client_id, "flowbus-coordinator-%s", r->run_id);
    bo.url = url;
    bo.username = user;
    bo.password = pass;
    bo.client_id = client_id;
    bo.ca_file = getenv("FLOWBUS_TLS_CA");
    bo.cert_file = getenv("FLOWBUS_TLS_CERT");
    bo.key_file = getenv("FLOWBUS_TLS_KEY");
    /* The private broker is restarted by this coordinator, so keep trying as
     * long as it takes; an external broker gets 30 s to come back. */
    bo.reconnect_max_s = r->broker ? -1 : RECONNECT_EXTERNAL;
    bo.will_topic = will_topic;
    bo.will_payload = will;
    bo.will_retained = 1;
    bo.log = log__sdk;
    /* A broker that is still starting (a service coming up with flowbus) gets
     * a bounded chance: attempts with a doubling pause, about 10 s in all. A
     * signal during a pause ends the wait. */
    for (int attempt = 1;; attempt++) {
        double pause = 0.1 * (1 << (attempt - 1));
        struct pollfd pfd = {.fd = r->sigfd, .events = POLLIN};

        e = fb_bus_new(&bo, &r->bus, err, sizeof err);
        if (e == FB_OK)
            break;
        if (attempt >= CONNECT_ATTEMPTS || e == FB_ERR_INVALID) {
            log_printf(FB_LOG_ERROR, "cannot connect to the broker at %s after %d attempts: %s",
                       url, attempt, err);
            return 0;
        }
        log_printf(FB_LOG_INFO, "broker at %s not reachable (%s); trying again in %.1f s", url, err,
                   pause > 2.0 ? 2.0 : pause);
        if (poll(&pfd, 1, (int)((pause > 2.0 ? 2.0 : pause) * 1000)) > 0) {
            log_printf(FB_LOG_ERROR, "interrupted while waiting for the broker at %s", url);
            return 0;
        }
    }
    /*
     * A one-shot run follows every variable: which are set decides which
     * tasks can still run. A reactive flow has no dead variables, and
     * following them would make the coordinator receive every event of every
     * task (half the CPU of a pass-through flow, docs/performance.md); it
     * reads their last values once, when it stops (collect_vars). --json
     * prints variable events, so it follows them.
     */
    r->follow_vars = !r->reactive || r->o->json;
    if (r->o->resume) {
        /* Resuming reads everything the run left, its workflow first. */
        snprintf(filter[0], sizeof filter[0], "%s/#", r->root);
        n_filters = 1;
    } else {
        /* Not the workflow topic: our own (300 kB at 1,000 tasks) would come back to us.
         * The task states and the run state are enough to see that a run id is used. */
        snprintf(filter[0], sizeof filter[0], "%s/tasks/#", r->root);
        snprintf(filter[1], sizeof filter[1], "%s/control", r->root);
        snprintf(filter[2], sizeof filter[2], "%s/sync/#", r->root);
        snprintf(filter[3], sizeof filter[3], "%s/state", r->root);
        snprintf(filter[4], sizeof filter[4], "%s/vars/#", r->root);
        n_filters = r->follow_vars ? 5 : 4;
    }
    e = fb_bus_subscribe(r->bus, filters, n_filters, 5.0);
    if (e != FB_OK) {
        log_printf(FB_LOG_ERROR, "cannot subscribe to %s: %s", filter[0], fb_strerror(e));
        return 0;
    }
    return 1;
}

/*
 * A reactive flow that did not follow its variables learns their last values
 * here, so that they can be published again with the run's expiry: the
 * retained values come with the subscription, before the sync token
 * published after it (one connection keeps its order).
 */
static void collect_vars(struct run *r)
{
    char filter[160], token[160];
    const char *filters[1] = {filter};
    double deadline = fb_clock_mono() + SYNC_WAIT;
    int synced = 0;

    if (r->follow_vars) {
        synced = 1; /* it has followed them all along */
        goto out;
    }
    snprintf(filter, sizeof filter, "%s/vars/#", r->root);
    snprintf(token, sizeof token, "%s/sync/vars", r->root);
    if (fb_bus_subscribe(r->bus, filters, 1, SYNC_WAIT) != FB_OK ||
        fb_bus_publish(r->bus, token, "", 0, 1, 0, 0) != FB_OK)
        goto out;
    while (!synced && fb_clock_mono() < deadline) {
        fb_msg *m = NULL;
        size_t idx = 0;
        const char *text = NULL;
        if (fb_bus_next(r->bus, deadline - fb_clock_mono(), &m) != FB_OK)
            break;
        if (strcmp(m->topic, token) == 0)
            synced = 1;
        else
            (void)tracker__on_message(r->tr, m->topic, m->payload, m->len, &idx, &text);
        fb_msg_free(m);
    }
out:
    if (!synced)
        log_printf(FB_LOG_WARN, "could not read the flow's variables back; they keep the expiry "
                                "their tasks gave them");
}

/*
 * A run id names its topics, so it must not be in use: retained messages of an
 * earlier run with the same id would be read as this run's (old variables, an
 * old "stop"). Everything retained under the run's root has arrived once a
 * sync token published after the subscription comes back.
 */
static int check_run_id_unused(struct run *r)
{
    char tp[256];
    double deadline = fb_clock_mono() + 5.0;
    int used = 0, synced = 0;

    snprintf(tp, sizeof tp, "%s/sync/fresh", r->root);
    if (fb_bus_publish(r->bus, tp, "", 0, 1, 0, 0) != FB_OK)
        return 0;
    while (!synced && fb_clock_mono() < deadline) {
        fb_msg *m = NULL;
        if (fb_bus_next(r->bus, deadline - fb_clock_mono(), &m) != FB_OK)
            break;
        if (strcmp(m->topic, tp) == 0)
            synced = 1;
        else if (m->retained)
            used = 1;
        fb_msg_free(m);
    }
    if (!synced)
        log_printf(FB_LOG_ERROR, "the broker did not answer within 5 s");
    else if (used)
        log_printf(FB_LOG_ERROR,
                   "run id '%s' is already used on this broker (its retained topics exist): "
                   "choose another --run-id",
                   r->run_id);
    return synced && !used;
}

/* Publishes the resolved workflow (retained), with what resume needs. */
static void publish_workflow(struct run *r)
{
    json_t *extra = json_object();
    char tp[256], *s = NULL;

    if (!extra)
        goto out;
    json_object_set_new(extra, "run_id", json_string(r->run_id));
    if (r->wf_path[0])
        json_object_set_new(extra, "path", json_string(r->wf_path));
    if (r->wf_cwd[0])
        json_object_set_new(extra, "cwd", json_string(r->wf_cwd));
    json_object_set_new(extra, "started", json_real(r->t0_wall));
    /* Written task by task: at 1,000 tasks the whole JSON tree was the coordinator's peak. */
    s = workflow__to_json_text(r->wf, extra);
    json_decref(extra);
out:
    topic(r, tp, sizeof tp, "workflow", NULL, NULL);
    if (s)
        publish_text(r, tp, s, 1);
    /* Kept to publish it again (after a reconnect, with an expiry at the end). */
    free(r->workflow_json);
    r->workflow_json = s;
}

/* Publishes the initial variables (secrets never). */
static void publish_initial_vars(struct run *r)
{
    char tp[256];

    for (size_t i = 0; i < r->wf->n_vars; i++) {
        const struct wf_var *v = &r->wf->vars[i];
        if (v->secret)
            continue;
        topic(r, tp, sizeof tp, "vars/", v->name, NULL);
        /* The empty string travels as one NUL byte: an empty retained payload would delete. */
        if (v->value[0])
            fb_bus_publish(r->bus, tp, v->value, strlen(v->value), 1, 1, 0);
        else
            fb_bus_publish(r->bus, tp, "", 1, 1, 1, 0);
    }
}

/* Publishes the resolved workflow, the run state and the initial variables. */
static void publish_start(struct run *r)
{
    char *abs = realpath(r->o->file, NULL);

    /* What `flowbus resume` needs to load the same file in the same place. */
    snprintf(r->wf_path, sizeof r->wf_path, "%s", abs ? abs : "");
    free(abs);
    if (!getcwd(r->wf_cwd, sizeof r->wf_cwd))
        r->wf_cwd[0] = '\0';
    publish_workflow(r);
    publish_run_state(r, "running", -1);
    for (size_t i = 0; i < r->wf->n_vars; i++) {
        long vi = graph__var_index(r->g, r->wf->vars[i].name);
        if (vi >= 0)
            tracker__mark_var(r->tr, (size_t)vi, r->wf->vars[i].value);
    }
    publish_initial_vars(r);
}

/*
 * How many processes may be starting at once. A task process spends ~2.5 ms
 * of CPU starting (exec, the dynamic loader, connecting; docs/performance.md);
 * 200 started together take every core for half a second, and the tasks that
 * could already run wait their turn among them. A few starts per core keep
 * the cores busy while the tasks that run get the CPU when they need it.
 * FLOWBUS_LAUNCH_WINDOW overrides it (0: start everything at once).
 */
static size_t launch_window(void)
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
 * Starts processes in graph order (launch_order) while fewer than
 * launch_window are still starting. A process that has not been heard from
 * within LAUNCH_PATIENCE gives up its place, so that a task slow to connect
 * never holds the others back. A task already decided (skipped because an
 * input can never be set, or stopped) is not started at all.
 */
static void launch_more(struct run *r)
{
    double now = fb_clock_mono();
    size_t k = 0;

    while (k < r->n_starting) {
        if (now - r->procs[r->starting[k]].up_since > LAUNCH_PATIENCE)
            r->starting[k] = r->starting[--r->n_starting];
        else
            k++;
    }
    while (r->next_launch < r->n_procs && !r->interrupted && !r->finishing &&
           (r->launch_window == SIZE_MAX || r->n_starting < r->launch_window)) {
        size_t i = r->order[r->next_launch++];
        struct proc *p = &r->procs[i];
        if (p->pid || tracker__terminal(tracker__task(r->tr, p->task)->state))
            continue;
        launch(r, i, 1);
        if (p->pid > 0 && r->n_starting < MAX_LAUNCH_WINDOW && r->launch_window != SIZE_MAX)
            r->starting[r->n_starting++] = i;
    }
}

static void launch_all(struct run *r)
{
    r->lc.broker_url = r->broker ? broker__url(r->broker) : r->o->broker_url;
    r->lc.username = r->o->username;
    r->lc.password = r->o->password;
    r->lc.access = r->access;
    r->lc.die_with_parent = r->broker != NULL;
    r->lc.run_id = r->run_id;
    r->lc.wf = r->wf;
    r->launch_window = launch_window();
    launch_more(r);
}

static const char *run_state_name(const struct run *r, int code)
{
    if (r->interrupted > 0 || (r->reactive && code == EXIT_OK))
        return "stopped";
    switch (code) {
    case EXIT_OK:
        return "done";
    case EXIT_END_SKIPPED:
        return "incomplete";
    default:
        return "failed";
    }
}

/* Removes the run directory and the files the tasks left in it (one level). */
static void remove_run_dir(struct run *r)
{
    DIR *d;
    struct dirent *e;
    char path[512];

    if (!r->run_dir[0])
        return;
    d = opendir(r->run_dir);
    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", r->run_dir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(r->run_dir);
    r->run_dir[0] = '\0';
}

/*
 * Creates the run's private directory, where the tasks share their permission
 * cache (file names are salted hashes, never tokens), and the salt.
 */
static int make_run_dir(struct run *r)
{
    const char *tmp = getenv("TMPDIR");
    unsigned char rnd[16];

    if (!tmp || !*tmp || strlen(tmp) > 200)
        tmp = "/tmp";
    snprintf(r->run_dir, sizeof r->run_dir, "%s/flowbus-run-XXXXXX", tmp);
    if (!mkdtemp(r->run_dir)) {
        log_printf(FB_LOG_ERROR, "cannot create the run directory in %s: %s", tmp,
                   strerror(errno));
        r->run_dir[0] = '\0';
        return 0;
    }
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        log_printf(FB_LOG_ERROR, "getrandom: %s", strerror(errno));
        return 0;
    }
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(r->cache_salt + 2 * i, 3, "%02x", rnd[i]);
    r->lc.run_dir = r->run_dir;
    r->lc.cache_salt = r->cache_salt;
    return 1;
}

static int by_depth(const void *a, const void *b, void *ctx)
{
    const struct run *r = ctx;
    size_t ta = r->procs[*(const size_t *)a].task, tb = r->procs[*(const size_t *)b].task;
    size_t da = r->order_depth[ta], db = r->order_depth[tb];

    if (da != db)
        return da < db ? -1 : 1;
    return *(const size_t *)a < *(const size_t *)b ? -1 : 1;
}

/*
 * The order to start processes in: by depth in the graph (a task's depth is
 * one more than the deepest task that feeds it), so that on a busy machine
 * the tasks that can run first get the CPU first; launch_more starts them in
 * this order, a few at a time.
 */
static int launch_order(struct run *r)
{
    size_t nt = r->wf->n_tasks, *depth = calloc(nt + 1, sizeof *depth);
    int changed = 1;

    if (!depth)
        return 0;
    /* Relaxation to a fixpoint; the loader rejected cycles, so it ends. */
    for (size_t round = 0; changed && round <= nt; round++) {
        changed = 0;
        for (size_t t = 0; t < nt; t++) {
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
            if (d != depth[t]) {
                depth[t] = d;
                changed = 1;
            }
        }
    }
    for (size_t i = 0; i < r->n_procs; i++)
        r->order[i] = i;
    /* Insertion sort would be quadratic at 10,000 tasks: sort by depth. */
    r->order_depth = depth;
    qsort_r(r->order, r->n_procs, sizeof *r->order, by_depth, r);
    r->order_depth = NULL;
    free(depth);
    return 1;
}

/* Creates the graph, tracker, process table and display for r->wf. */
static int prepare(struct run *r)
{
    const struct run_options *o = r->o;
    size_t n = 0;

    if (!make_run_dir(r))
        return 0;
    r->reactive = r->wf->reactive;
    r->g = graph__new(r->wf);
    r->tr = r->g ? tracker__new(r->wf, r->g, r->run_id) : NULL;
    /* procs[t] is task t's first process; extra workers of pools follow. */
    for (size_t t = 0; t < r->wf->n_tasks; t++)
        n += r->reactive && r->wf->tasks[t].workers > 1 ? (size_t)r->wf->tasks[t].workers : 1;
    r->n_procs = n;
    r->procs = calloc(n + 1, sizeof *r->procs);
    r->order = calloc(n + 1, sizeof *r->order);
    r->skipped = calloc(r->wf->n_tasks + 1, sizeof *r->skipped);
    if (!r->tr || !r->procs || !r->order || !r->skipped)
        return 0;
    if (r->reactive)
        tracker__set_reactive(r->tr);
    n = r->wf->n_tasks;
    for (size_t t = 0; t < r->wf->n_tasks; t++) {
        r->procs[t].task = t;
        r->procs[t].worker = 1;
        for (int w = 2; r->reactive && w <= r->wf->tasks[t].workers; w++) {
            r->procs[n].task = t;
            r->procs[n++].worker = w;
        }
    }
    for (size_t i = 0; i < r->n_procs; i++)
        r->procs[i].fd = -1;
    if (!launch_order(r))
        return 0;
    r->disp = display__new(o->json ? DISPLAY_JSON : isatty(1) ? DISPLAY_TTY : DISPLAY_LINES, r->wf,
                           r->g, r->tr, r->run_id, stdout);
    return r->disp != NULL;
}

static int start_private_broker(struct run *r)
{
    char err[512] = "", *passwords, *acl;

    r->access = access__new(r->wf, r->run_id);
    passwords = r->access ? access__password_file(r->access) : NULL;
    acl = r->access ? access__acl_file(r->access) : NULL;
    if (passwords && acl)
        r->broker = broker__start(passwords, acl, err, sizeof err);
    else
        snprintf(err, sizeof err, "cannot generate credentials: %s", strerror(errno));
    if (passwords)
        explicit_bzero(passwords, strlen(passwords));
    free(passwords);
    free(acl);
    if (!r->broker)
        log_printf(FB_LOG_ERROR, "cannot start the private broker: %s", err);
    return r->broker != NULL;
}

/* 1 if pid is this run's process for task (its environment says so). */
static int owned(pid_t pid, const char *run_id, const char *task)
{
    char path[64], want_run[128], want_task[128], buf[65536];
    FILE *f;
    size_t n;
    int run_ok = 0, task_ok = 0;

    snprintf(path, sizeof path, "/proc/%ld/environ", (long)pid);
    snprintf(want_run, sizeof want_run, "FLOWBUS_RUN_ID=%s", run_id);
    snprintf(want_task, sizeof want_task, "FLOWBUS_TASK=%s", task);
    f = fopen(path, "r");
    if (!f)
        return 0;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    for (size_t i = 0; i < n; i += strlen(buf + i) + 1) {
        run_ok |= strcmp(buf + i, want_run) == 0;
        task_ok |= strcmp(buf + i, want_task) == 0;
    }
    return run_ok && task_ok;
}

static int same_text(json_t *j, const char *s)
{
    return json_is_string(j) && strcmp(json_string_value(j), s) == 0;
}

/*
 * A process of this run's task on this host that has not reported yet (the
 * dead coordinator started it just before dying): found by its environment.
 * Returns its pid, or 0.
 */
static pid_t find_task_process(const char *run_id, const char *task)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    pid_t found = 0;

    while (d && !found && (e = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0 || pid == (long)getpid())
            continue;
        if (owned((pid_t)pid, run_id, task))
            found = (pid_t)pid;
    }
    if (d)
        closedir(d);
    return found;
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
 * `flowbus resume RUN`: rebuilds the run from its retained topics (the
 * workflow it was started with, every variable, every task's last state),
 * loads the same file in the same directory, adopts the task processes that
 * are still alive, starts those that never started, and carries on. A task
 * that finished is never run again.
 */
static int start_resumed(struct run *r, struct wf_diags *diags)
{
    const struct run_options *o = r->o;
    struct wf_load_options lo = {0};
    struct wf_setting *settings = NULL;
    fb_msg **kept = NULL;
    size_t n_kept = 0, n_settings = 0, counts[4] = {0};
    json_t *wj = NULL, *env, *v;
    const char *path, *cwd, *key;
    char tp[256], sync_topic[256], state[32] = "";
    double deadline;
    int code = EXIT_INVALID, synced = 0, paused = 0;

    if (!o->run_id || !o->broker_url) {
        log_printf(FB_LOG_ERROR, "resume needs the run id and the broker it runs on (--broker or "
                                 "FLOWBUS_BROKER)");
        goto out;
    }
    snprintf(r->run_id, sizeof r->run_id, "%s", o->run_id);
    snprintf(r->root, sizeof r->root, "flowbus/%s", r->run_id);
    code = EXIT_BROKER;
    if (!setup_signals(r) || !connect_bus(r, o->broker_url, o->username, o->password))
        goto out;
    /* Everything retained under the run has arrived once our token is back. */
    snprintf(sync_topic, sizeof sync_topic, "%s/sync/resume", r->root);
    fb_bus_publish(r->bus, sync_topic, "", 0, 1, 0, 0);
    deadline = fb_clock_mono() + 5.0;
    while (!synced && fb_clock_mono() < deadline) {
        fb_msg *m = NULL;
        if (fb_bus_next(r->bus, deadline - fb_clock_mono(), &m) != FB_OK)
            break;
        if (strcmp(m->topic, sync_topic) == 0) {
            synced = 1;
            fb_msg_free(m);
        } else if (m->retained) {
            fb_msg **grown = realloc(kept, (n_kept + 1) * sizeof *kept);
            if (!grown) {
                fb_msg_free(m);
                break;
            }
            kept = grown;
            kept[n_kept++] = m;
        } else {
            fb_msg_free(m);
        }
    }
    if (!synced) {
        log_printf(FB_LOG_ERROR, "the broker did not answer within 5 s");
        goto out;
    }
    code = EXIT_INVALID;
    snprintf(tp, sizeof tp, "%s/workflow", r->root);
    for (size_t i = 0; i < n_kept && !wj; i++)
        if (strcmp(kept[i]->topic, tp) == 0)
            wj = json_loadb(kept[i]->payload, kept[i]->len, 0, NULL);
    snprintf(tp, sizeof tp, "%s/state", r->root);
    for (size_t i = 0; i < n_kept; i++) {
        if (strcmp(kept[i]->topic, tp) == 0) {
            json_t *st = json_loadb(kept[i]->payload, kept[i]->len, 0, NULL);
            json_t *name = json_object_get(st, "state");
            snprintf(state, sizeof state, "%s", json_is_string(name) ? json_string_value(name) : "");
            paused = json_is_true(json_object_get(st, "paused"));
            json_decref(st);
        }
    }
    if (!wj) {
        log_printf(FB_LOG_ERROR, "there is no run '%s' on %s (no retained %s/workflow)", r->run_id,
                   o->broker_url, r->root);
        goto out;
    }
    if (strcmp(state, "running") == 0 && paused) {
        /* Its coordinator is alive: resuming means lifting the pause. */
        snprintf(tp, sizeof tp, "%s/control", r->root);
        if (fb_bus_publish(r->bus, tp, "{\"cmd\":\"resume\"}", 16, 1, 1, 0) != FB_OK ||
            fb_bus_flush(r->bus, 5.0) != FB_OK) {
            log_printf(FB_LOG_ERROR, "the broker did not take the resume request");
            code = EXIT_BROKER;
            goto out;
        }
        printf("run %s resumed\n", r->run_id);
        r->unpaused = 1;
        code = EXIT_OK;
        goto out;
    }
    if (strcmp(state, "running") == 0) {
        log_printf(FB_LOG_ERROR,
                   "run '%s' is running and its coordinator is alive: nothing to resume (its "
                   "state becomes 'lost' when its coordinator dies)",
                   r->run_id);
        goto out;
    }
    if (strcmp(state, "lost") != 0) {
        log_printf(FB_LOG_ERROR, "run '%s' is not running (its state is '%s'): nothing to resume",
                   r->run_id, state);
        goto out;
    }
    path = json_string_value(json_object_get(wj, "path"));
    cwd = json_string_value(json_object_get(wj, "cwd"));
    if (!path || !cwd) {
        log_printf(FB_LOG_ERROR, "run '%s' did not record its workflow file and directory",
                   r->run_id);
        goto out;
    }
    if (chdir(cwd) != 0) {
        log_printf(FB_LOG_ERROR, "cannot enter the run's directory %s: %s", cwd, strerror(errno));
        goto out;
    }
    snprintf(r->wf_path, sizeof r->wf_path, "%s", path);
    snprintf(r->wf_cwd, sizeof r->wf_cwd, "%s", cwd);
    /* The values the run started with, except secrets, which come again from
     * the environment through the file's {{ENV:X}} references. */
    env = json_object_get(wj, "env");
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
    code = EXIT_BROKER;
    if (!prepare(r))
        goto out;
    v = json_object_get(wj, "started");
    if (json_is_number(v))
        r->t0_wall = json_number_value(v);
    for (size_t i = 0; i < r->wf->n_vars; i++) {
        long vi = graph__var_index(r->g, r->wf->vars[i].name);
        if (vi >= 0 && r->wf->vars[i].secret)
            tracker__mark_var(r->tr, (size_t)vi, r->wf->vars[i].value);
    }
    for (size_t i = 0; i < n_kept; i++) {
        size_t idx;
        const char *text;
        tracker__on_message(r->tr, kept[i]->topic, kept[i]->payload, kept[i]->len, &idx, &text);
    }
    r->lc.broker_url = o->broker_url;
    r->lc.username = o->username;
    r->lc.password = o->password;
    r->lc.run_id = r->run_id;
    r->lc.wf = r->wf;
    publish_run_state(r, "running", -1);
    for (size_t t = 0; t < r->wf->n_tasks; t++) {
        const struct task_info *ti = tracker__task(r->tr, t);
        struct proc *p = &r->procs[t];

        if (tracker__terminal(ti->state)) {
            counts[0]++;
        } else if (ti->state != TS_NONE && ti->pid > 0 &&
                   owned((pid_t)ti->pid, r->run_id, r->wf->tasks[t].name)) {
            p->pid = (pid_t)ti->pid;
            p->adopted = 1;
            p->attempt = ti->attempt > 0 ? ti->attempt : 1;
            p->probe_at = fb_clock_mono();
            if (ti->state == TS_RUNNING && r->wf->tasks[t].timeout > 0) {
                double late = fb_clock_wall() - ti->started;
                p->deadline = fb_clock_mono() + r->wf->tasks[t].timeout - (late > 0 ? late : 0);
            }
            counts[1]++;
        } else if (ti->state == TS_RUNNING) {
            tracker__set(r->tr, t, TS_CRASHED, fb_clock_wall(), -1, 0,
                         "its process was gone when the coordinator resumed");
            publish_task_state(r, t);
            p->attempt = ti->attempt > 0 ? ti->attempt : 1;
            on_final(r, t);
            counts[2]++;
        } else if (ti->state == TS_NONE &&
                   (p->pid = find_task_process(r->run_id, r->wf->tasks[t].name)) != 0) {
            /* Started but not connected yet when its coordinator died. */
            p->adopted = 1;
            p->attempt = 1;
            p->probe_at = fb_clock_mono();
            counts[1]++;
        } else {
            launch(r, t, ti->attempt > 0 ? ti->attempt : 1);
            counts[3]++;
        }
    }
    display__note(r->disp,
                  "Resumed run %s of %s on %s: %zu finished, %zu adopted, %zu lost, %zu started",
                  r->run_id, r->wf->name, o->broker_url, counts[0], counts[1], counts[2],
                  counts[3]);
    for (size_t t = 0; t < r->wf->n_tasks; t++)
        show_task(r, t);
    code = EXIT_OK;
out:
    for (size_t i = 0; i < n_kept; i++)
        fb_msg_free(kept[i]);
    free(kept);
    free(settings);
    json_decref(wj);
    return code;
}

/* A new run: load the file, start or join the broker, publish, launch. */
static int start_new(struct run *r, struct wf_diags *diags)
{
    const struct run_options *o = r->o;
    struct wf_load_options lo = {0};

    lo.settings = o->settings;
    lo.n_settings = o->n_settings;
    lo.lookup = plugins__lookup;
    lo.reactive = o->reactive;
    r->wf = workflow__load(o->file, &lo, diags);
    wf_diags_print(diags, o->file, stderr);
    if (!r->wf)
        return EXIT_INVALID;
    if (o->run_id)
        snprintf(r->run_id, sizeof r->run_id, "%s", o->run_id);
    else
        generate_run_id(r->run_id, sizeof r->run_id);
    snprintf(r->root, sizeof r->root, "flowbus/%s", r->run_id);
    if (!prepare(r) || !setup_signals(r)) {
        log_printf(FB_LOG_ERROR, "cannot set up the run: %s", strerror(errno ? errno : ENOMEM));
        return EXIT_BROKER;
    }
    if (!o->broker_url && !start_private_broker(r))
        return EXIT_BROKER;
    if (!connect_bus(r, r->broker ? broker__url(r->broker) : o->broker_url,
                     r->access ? access__user(r->access, -1) : o->username,
                     r->access ? access__password(r->access, -1) : o->password))
        return EXIT_BROKER;
    if (!check_run_id_unused(r))
        return EXIT_INVALID;
    display__note(r->disp, "Run %s of %s: %zu tasks on %s", r->run_id, r->wf->name, r->wf->n_tasks,
                  r->broker ? "a private broker" : o->broker_url);
    publish_start(r);
    launch_all(r);
    return EXIT_OK;
}

int run__main(const struct run_options *o)
{
    struct run r = {0};
    struct wf_diags diags = {0};
    int code = EXIT_INVALID;

    r.o = o;
    r.sigfd = -1;
    if (o->run_id && !workflow__valid_run_id(o->run_id)) {
        log_printf(FB_LOG_ERROR, "invalid run id '%s': expected 1-64 of [A-Za-z0-9_-]", o->run_id);
        goto out;
    }
    r.t0_wall = fb_clock_wall();
    r.t0_mono = fb_clock_mono();
    code = o->resume ? start_resumed(&r, &diags) : start_new(&r, &diags);
    if (code != EXIT_OK || r.unpaused)
        goto out;
    if (o->timeout > 0)
        r.run_deadline = r.t0_mono + o->timeout;
    loop(&r);

    /* A reactive flow ends by being stopped: that is success unless a task
     * ended for good in failure. A one-shot run that was stopped did not finish. */
    code = r.fatal                           ? r.fatal
           : r.reactive                      ? tracker__exit_code(r.tr)
           : r.interrupted > 0               ? EXIT_INTERRUPTED
                                             : tracker__exit_code(r.tr);
    if (!r.broker && o->expiry > 0) {
        collect_vars(&r);
        publish_expiring(&r, (unsigned)o->expiry);
    }
    publish_run_state_expiring(&r, run_state_name(&r, code), code,
                               !r.broker && o->expiry > 0 ? (unsigned)o->expiry : 0);
    if (fb_bus_flush(r.bus, 2.0) != FB_OK && !r.fatal)
        log_printf(FB_LOG_WARN, "the broker did not confirm the final states");
    display__summary(r.disp, run_state_name(&r, code), code, fb_clock_mono() - r.t0_mono);
out:
    if (r.bus) {
        /* Paho keeps the connection until its QoS 1 messages are acknowledged
         * (a refused run's sync probe may not be yet); a disconnect that runs
         * out of time lets the broker publish our Last Will over the state of
         * the run that owns this id. */
        (void)fb_bus_flush(r.bus, 1.0);
        fb_bus_close(r.bus, 1.0);
    }
#ifdef __SANITIZE_ADDRESS__
    /* Leak checking wants every allocation back. */
    fb_bus_free(r.bus);
#else
    /* The process exits right after this function: freeing the closed bus
     * would only add Paho's ~100 ms thread teardown to every run. */
#endif
    /* Nothing this coordinator started may outlive the run: kill any group
     * still alive (adopted processes included). */
    for (size_t i = 0; r.procs && i < r.n_procs; i++) {
        if (r.procs[i].pid && !r.procs[i].reaped) {
            launcher__signal(r.procs[i].pid, SIGKILL);
            if (!r.procs[i].adopted)
                waitpid(r.procs[i].pid, NULL, 0);
        }
        if (r.procs[i].fd >= 0)
            close(r.procs[i].fd);
        free(r.procs[i].line);
        free(r.procs[i].final_json);
    }
    broker__stop(r.broker);
    access__free(r.access);
    remove_run_dir(&r);
    if (r.sigfd >= 0)
        close(r.sigfd);
    display__free(r.disp);
    tracker__free(r.tr);
    graph__free(r.g);
    workflow__free(r.wf);
    wf_diags_free(&diags);
    free(r.procs);
    free(r.order);
    free(r.workflow_json);
    free(r.skipped);
    return code;
}
