/*
 * control.c - `flowbus stop RUN` and `flowbus pause RUN`: a command on the
 * run's control topic, then its coordinator's confirmation (see commands.h);
 * and `flowbus resume RUN` of a paused run, which lifts the pause.
 *
 * The command is retained, so that a task that (re)connects later still
 * learns it; the confirmation is the run's record: a final state for stop,
 * "paused": true for pause. A run whose coordinator is lost has nobody to
 * confirm, which is said at once rather than after the timeout.
 */
#include "commands.h"
#include "log.h"
#include "session.h"
#include "view.h"

#include <stdio.h>
#include <string.h>

#define STOP_WAIT 30.0  /* default --timeout of stop */
#define PAUSE_WAIT 10.0 /* default --timeout of pause: a coordinator confirms at once */
#define RESUME_WAIT 5.0 /* seconds for the broker to confirm the resume request */

const char control__usage_stop[] =
    "Usage: flowbus stop RUN [--timeout SECONDS] [--broker URL]\n"
    "\n"
    "Ask the run RUN to stop ({\"cmd\":\"stop\"} on its control topic) and wait until\n"
    "its coordinator has stopped every task and published the run's final state.\n"
    "\n"
    "Options:\n"
    "  --timeout SECONDS  how long to wait for the run to end (default 30)\n"
    "  --broker URL       the run's broker (default: $FLOWBUS_BROKER)\n"
    "  -h, --help         show this help\n"
    "\n"
    "Exit codes: 0 the run ended, 1 it did not end in time (or has no coordinator),\n"
    "2 no such run or already finished, 4 broker unavailable, 130 interrupted.\n";

const char control__usage_pause[] =
    "Usage: flowbus pause RUN [--timeout SECONDS] [--broker URL]\n"
    "\n"
    "Ask the run RUN to pause ({\"cmd\":\"pause\"} on its control topic): tasks keep\n"
    "receiving events but start no new activation until `flowbus resume RUN`.\n"
    "Waits until the coordinator confirms (its run state shows \"paused\": true).\n"
    "\n"
    "Options:\n"
    "  --timeout SECONDS  how long to wait for the confirmation (default 10)\n"
    "  --broker URL       the run's broker (default: $FLOWBUS_BROKER)\n"
    "  -h, --help         show this help\n"
    "\n"
    "Exit codes: 0 paused, 1 not confirmed in time (or no coordinator), 2 no such\n"
    "run or already finished, 4 broker unavailable, 130 interrupted.\n";

struct request {
    const struct client_options *o;
    enum fb_control cmd; /* FB_CONTROL_STOP or FB_CONTROL_PAUSE */
};

/* FB_EXIT_FAILED is also the code of a request nobody confirmed. */
static int request_cb(void *ctx, struct view *vw, const fb_msg *m, enum view_change c,
                      const struct view_event *ev)
{
    struct request *r = ctx;
    const struct run_view *rv = view__run(vw, r->o->run_id);

    (void)m;
    (void)ev;
    if (c != VIEW_RUN || !rv || !rv->state_name)
        return SESSION_KEEP_WATCHING;
    if (fb_run_state_is_final(rv->state)) {
        if (r->cmd != FB_CONTROL_STOP) {
            log_printf(FB_LOG_ERROR, "run '%s' ended (%s) before it paused", r->o->run_id,
                       rv->state_name);
            return FB_EXIT_FAILED;
        }
        printf("Run %s: %s", r->o->run_id, rv->state_name);
        if (rv->has_exit)
            printf(" (exit %d)", rv->exit_code);
        fputc('\n', stdout);
        return FB_EXIT_OK;
    }
    if (r->cmd != FB_CONTROL_STOP && rv->paused) {
        printf("Run %s: paused; `flowbus resume %s` resumes it\n", r->o->run_id, r->o->run_id);
        return FB_EXIT_OK;
    }
    return SESSION_KEEP_WATCHING;
}

/* Says why the wait ended without the confirmation. */
static void explain(const struct client_options *o, enum fb_control cmd, int code, double wait,
                    const char *topic)
{
    const char *name = fb_control_name(cmd);

    if (code == SESSION_TIMEOUT && cmd == FB_CONTROL_STOP)
        log_printf(FB_LOG_ERROR,
                   "run '%s' did not stop within %g s: its coordinator has not "
                   "published a final run state (`flowbus status %s` shows "
                   "where it is)",
                   o->run_id, wait, o->run_id);
    else if (code == SESSION_TIMEOUT)
        log_printf(FB_LOG_ERROR,
                   "run '%s' did not confirm the pause within %g s: its "
                   "coordinator does not seem to support pause (it never "
                   "republished its state with \"paused\": true); the request "
                   "stays on %s until `flowbus resume %s`",
                   o->run_id, wait, topic, o->run_id);
    else if (code == FB_EXIT_INTERRUPTED)
        log_printf(FB_LOG_ERROR, "interrupted; the %s request stays on %s", name, topic);
}

static int request(const struct client_options *o, enum fb_control cmd)
{
    static const enum fb_topic_kind kinds[] = {FB_TOPIC_RUN_STATE, FB_TOPIC_WORKFLOW,
                                               FB_TOPIC_CONTROL};
    const struct session_broker b = {o->broker_url, o->username, o->password};
    const char *name = fb_control_name(cmd);
    struct session s = {0};
    struct request r = {o, cmd};
    struct view *vw = view__new();
    struct run_view *rv;
    char topic[FB_TOPIC_MAX], payload[32];
    double wait = o->timeout > 0 ? o->timeout : cmd == FB_CONTROL_STOP ? STOP_WAIT : PAUSE_WAIT;
    size_t len;
    int code = FB_EXIT_INVALID;

    if (!vw) {
        log_printf(FB_LOG_ERROR, "out of memory");
        code = FB_EXIT_BROKER;
        goto out;
    }
    if (!session__check_url(o->broker_url))
        goto out;
    if ((code = session__open(&s, &b, o->run_id, "client", 1)) != FB_EXIT_OK ||
        (code = session__snapshot(&s, kinds, 3, vw, NULL, NULL)) != FB_EXIT_OK)
        goto out;
    code = FB_EXIT_INVALID;
    if (!(rv = session__find_run(&s, vw)))
        goto out;
    if (fb_run_state_is_final(rv->state)) {
        log_printf(FB_LOG_ERROR, "run '%s' has already finished (%s): nothing to %s", o->run_id,
                   view__state_text(rv), name);
        goto out;
    }
    if (cmd != FB_CONTROL_STOP && rv->paused) {
        printf("Run %s: already paused; `flowbus resume %s` resumes it\n", o->run_id, o->run_id);
        code = FB_EXIT_OK;
        goto out;
    }
    fb_topic_format(topic, sizeof topic, FB_TOPIC_CONTROL, o->run_id, NULL);
    len = fb_control_format(payload, sizeof payload, cmd);
    if (fb_bus_publish(s.bus, topic, payload, len, 1, 1, 0) != FB_OK ||
        fb_bus_flush(s.bus, SESSION_ANSWER_WAIT) != FB_OK) {
        log_printf(FB_LOG_ERROR,
                   "the broker at %s did not confirm the %s request on %s (refused, "
                   "or not authorised)",
                   o->broker_url, name, topic);
        code = FB_EXIT_BROKER;
        goto out;
    }
    if (rv->state == FB_RUN_LOST) {
        log_printf(FB_LOG_ERROR,
                   "run '%s' has no coordinator (its state is '%s'): its tasks were "
                   "asked to %s, but nobody will confirm it; `flowbus resume %s` "
                   "takes the run over",
                   o->run_id, rv->state_name, name, o->run_id);
        code = FB_EXIT_FAILED;
        goto out;
    }
    code = session__watch(&s, vw, fb_clock_mono() + wait, request_cb, &r);
    explain(o, cmd, code, wait, topic);
    if (code == SESSION_TIMEOUT)
        code = FB_EXIT_FAILED;
out:
    view__free(vw);
    session__close(&s);
    return code;
}

int control__stop(const struct client_options *o)
{
    return request(o, FB_CONTROL_STOP);
}

int control__pause(const struct client_options *o)
{
    return request(o, FB_CONTROL_PAUSE);
}

int control__resume(const struct client_options *o)
{
    static const enum fb_topic_kind kinds[] = {FB_TOPIC_RUN_STATE, FB_TOPIC_WORKFLOW};
    const struct session_broker b = {o->broker_url, o->username, o->password};
    struct session s = {.quiet = 1};
    struct view *vw = view__new();
    struct run_view *rv;
    char topic[FB_TOPIC_MAX], payload[32];
    size_t len;
    int code = CONTROL_TAKE_OVER;

    /* Any doubt (no broker yet, no such run, not paused) is the takeover's to
     * settle: it waits for a broker that is starting and says what it found. */
    if (!vw || session__open(&s, &b, o->run_id, "client", 0) != FB_EXIT_OK ||
        session__snapshot(&s, kinds, 2, vw, NULL, NULL) != FB_EXIT_OK)
        goto out;
    rv = view__run(vw, o->run_id);
    if (!rv || !rv->has_workflow || rv->state != FB_RUN_RUNNING || !rv->paused)
        goto out;
    /* Its coordinator is alive: resuming means lifting the pause. */
    fb_topic_format(topic, sizeof topic, FB_TOPIC_CONTROL, o->run_id, NULL);
    len = fb_control_format(payload, sizeof payload, FB_CONTROL_RESUME);
    if (fb_bus_publish(s.bus, topic, payload, len, 1, 1, 0) != FB_OK ||
        fb_bus_flush(s.bus, RESUME_WAIT) != FB_OK) {
        log_printf(FB_LOG_ERROR, "the broker did not take the resume request");
        code = FB_EXIT_BROKER;
        goto out;
    }
    printf("run %s resumed\n", o->run_id);
    code = FB_EXIT_OK;
out:
    view__free(vw);
    session__close(&s);
    return code;
}
