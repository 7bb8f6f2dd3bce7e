/*
 * loop.c - the run's event loop.
 *
 * One poll on the caller's thread over the signalfd (child exits, Ctrl-C,
 * SIGTERM, SIGHUP), the bus and every task's output pipe, woken for the
 * earliest timer (supervisor__next_wakeup). Each turn it dispatches what
 * arrived: a signal to the supervisor, a bus message through the tracker to
 * the display and the supervisor (a task's state, a control command, a sync
 * token), output to output.c; then it acts on the timers that are due and
 * lets the launch window start more processes. It ends once every task is
 * final, every process is gone and a last sync token has come back (every
 * message of the run has been seen).
 */
#define _GNU_SOURCE
#include "internal.h"
#include "dynsec.h"
#include "mask.h"
#include "display.h"
#include "log.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define MSGS_PER_TURN 4096 /* bus messages handled before looking at other fds */

/*
 * The run's control topic: anyone may ask to stop, pause or resume it
 * (flowbus stop/pause/resume, mosquitto_pub). The coordinator's own
 * {"cmd":"stop"} comes back here too and changes nothing then.
 */
static void on_control(struct run *r, const fb_msg *m)
{
    enum fb_control cmd = fb_control_parse(m->payload, m->len);

    if (cmd == FB_CONTROL_STOP) {
        if (!r->sup.interrupted)
            supervisor__interrupt(r, SIGTERM, "stopped by a stop request on the control topic");
    } else if (cmd == FB_CONTROL_PAUSE || cmd == FB_CONTROL_RESUME) {
        int paused = cmd == FB_CONTROL_PAUSE;
        if (paused != r->record.paused) {
            r->record.paused = paused;
            display__note(r->disp, "flowbus: run %s", paused ? "paused" : "resumed");
            announce__run_state(r, FB_RUN_RUNNING, -1, 0);
        }
    } else {
        log_printf(FB_LOG_WARN, "ignored a control message that is not a known command: %.*s",
                   m->len > 80 ? 80 : (int)m->len, m->payload);
    }
}

/* A sync token came back: the last one of the run, or a process's probe. */
static void on_sync(struct run *r, const char *label)
{
    if (strcmp(label, "final") == 0) {
        r->sup.final_synced = 1;
    } else if (label[0] == 'p') {
        size_t i = strtoul(label + 1, NULL, 10);
        if (i < r->n_procs && timer_set(r->procs[i].timer.sync_at))
            supervisor__resolve_exit(r, i);
    }
}

static void handle_message(struct run *r, fb_msg *m)
{
    size_t idx = 0;
    const char *text = NULL;
    enum tracker_event ev;

    if (lease__on_message(r, m) || placement__on_message(r, m) || placement__stray_state(r, m))
        return;
    ev = tracker__on_message(r->tr, m->topic, m->payload, m->len, &idx, &text);
    switch (ev) {
    case TRACK_TASK:
        display__task(r->disp, idx);
        supervisor__on_task_state(r, idx);
        break;
    case TRACK_CONTROL:
        on_control(r, m);
        break;
    case TRACK_STALE:
        announce__task_state(r, idx);
        break;
    case TRACK_VAR:
        display__var(r->disp, idx);
        break;
    case TRACK_LOG:
        display__log(r->disp, idx, text);
        break;
    case TRACK_SYNC:
        on_sync(r, text);
        break;
    default:
        break;
    }
}

/* fb_barrier's callback of still_ours: every message is handled as the loop would. */
static enum fb_err handle_barrier_message(void *ctx, fb_msg *m)
{
    handle_message(ctx, m);
    fb_msg_free(m);
    return FB_OK;
}

/*
 * After a reconnect, before publishing anything again: the connection may
 * have been gone long enough for the broker to fire our Will and for a
 * `flowbus resume` to take the run over. The owner record comes back with
 * the subscriptions, before a token published after them; one not ours
 * deposes this coordinator (lease__on_message). 1 if the run is still ours.
 */
static int still_ours(struct run *r)
{
    char token[FB_TOPIC_MAX];

    if (fb_barrier_token(token, sizeof token, r->run_id, "owner") &&
        fb_barrier(r->bus, token, SYNC_WAIT, handle_barrier_message, r) != FB_OK)
        log_printf(FB_LOG_WARN, "could not read the run's owner record back after reconnecting");
    return !r->lease.deposed;
}

static void drain_bus(struct run *r)
{
    unsigned reconnects = fb_bus_reconnects(r->bus);

    if (reconnects != r->res.reconnects) {
        r->res.reconnects = reconnects;
        if (!still_ours(r))
            return;
        display__note(r->disp,
                      "flowbus: reconnected to the broker; publishing the run's state again");
        announce__again(r);
        supervisor__probe_again(r);
    }
    for (int i = 0; i < MSGS_PER_TURN && !r->lease.deposed; i++) {
        fb_msg *m = NULL;
        enum fb_err e = fb_bus_next(r->bus, 0, &m);
        if (e == FB_ERR_LOST) {
            if (!r->sup.fatal) {
                r->sup.fatal = FB_EXIT_BROKER;
                supervisor__interrupt(r, SIGTERM, "lost the connection to the broker");
            }
            return;
        }
        if (e != FB_OK)
            return;
        /* Before the tracker, the display and --json see it: no secret of the run is shown. */
        m->len = mask__apply(m->payload, m->len);
        handle_message(r, m);
        fb_msg_free(m);
    }
}

static void handle_signals(struct run *r)
{
    struct signalfd_siginfo si;

    while (read(r->res.sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGCHLD)
            supervisor__reap(r);
        else if (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM || si.ssi_signo == SIGHUP) {
            char text[64];
            snprintf(text, sizeof text, "interrupted by %s", sigabbrev_np((int)si.ssi_signo));
            supervisor__interrupt(r, (int)si.ssi_signo, text);
        }
    }
}

/*
 * 1 once the run may end: every task is final (or the flow is over), every
 * process is gone, and the last sync token came back or ran out. Until then
 * it moves the run towards its end.
 */
static int run_over(struct run *r)
{
    /* A reactive flow has no dead variables: anything may be set later. */
    if (!r->reactive)
        supervisor__propagate(r);
    if (!r->sup.finishing && supervisor__over(r))
        supervisor__finish(r);
    if (r->sup.finishing && supervisor__all_reaped(r)) {
        if (r->sup.final_synced ||
            (timer_set(r->sup.final_sync_at) && fb_clock_mono() >= r->sup.final_sync_at))
            return 1;
        if (!timer_set(r->sup.final_sync_at)) {
            char token[FB_TOPIC_MAX];
            if (fb_barrier_token(token, sizeof token, r->run_id, "final"))
                fb_bus_publish(r->bus, token, "", 0, 1, 0, 0);
            r->sup.final_sync_at = fb_clock_mono() + SYNC_WAIT;
        }
    }
    return 0;
}

/* Milliseconds poll may sleep: up to the next timer, at most 1 s. */
static int poll_timeout(const struct run *r)
{
    double next = supervisor__next_wakeup(r);
    int timeout_ms = 1000;

    if (timer_set(next)) {
        double d = (next - fb_clock_mono()) * 1000.0 + 1;
        timeout_ms = d < 0 ? 0 : d > 1000 ? 1000 : (int)d;
    }
    /* A process slow to start gives up its place in the launch window in time. */
    if (launch__waiting(r) && timeout_ms > 100)
        timeout_ms = 100;
    if (display__next_ms(r->disp) >= 0 && display__next_ms(r->disp) < timeout_ms)
        timeout_ms = display__next_ms(r->disp);
    return timeout_ms;
}

void loop__run(struct run *r)
{
    size_t n = r->n_procs;
    struct pollfd *fds = calloc(n + 2, sizeof *fds);
    size_t *owner = calloc(n + 2, sizeof *owner);

    if (!fds || !owner) {
        log_printf(FB_LOG_ERROR, "out of memory");
        r->sup.fatal = FB_EXIT_BROKER;
        goto out;
    }
    /* A deposed coordinator stops at once: the run and its processes are another's. */
    while (!r->lease.deposed && !run_over(r)) {
        nfds_t nfds = 0;

        display__refresh(r->disp, 0);
        fds[nfds].fd = r->res.sigfd;
        fds[nfds++].events = POLLIN;
        fds[nfds].fd = fb_bus_fd(r->bus);
        fds[nfds++].events = POLLIN;
        for (size_t i = 0; i < n; i++) {
            if (r->procs[i].out.fd >= 0) {
                owner[nfds] = i;
                fds[nfds].fd = r->procs[i].out.fd;
                fds[nfds++].events = POLLIN;
            }
        }
        if (poll(fds, nfds, poll_timeout(r)) < 0 && errno != EINTR) {
            log_printf(FB_LOG_ERROR, "poll: %s", strerror(errno));
            r->sup.fatal = FB_EXIT_BROKER;
            break;
        }
        if (fds[0].revents)
            handle_signals(r);
        if (fds[1].revents)
            drain_bus(r);
        for (nfds_t k = 2; k < nfds; k++)
            if (fds[k].revents && r->procs[owner[k]].out.fd >= 0)
                output__read(r, owner[k]);
        supervisor__check_timers(r);
        launch__more(r);
        dynsec__serve(r->res.dynsec);
    }
out:
    free(fds);
    free(owner);
}
