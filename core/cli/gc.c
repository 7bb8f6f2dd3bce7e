/*
 * gc.c - `flowbus gc`: removes the retained topics of finished runs from a
 * long-lived broker.
 *
 * A run leaves its variables, task states, workflow and run state retained
 * under flowbus/<run-id>/, so that `resume` and observers can read it later.
 * On a broker that serves runs for months this would pile up, so gc deletes
 * (publishes an empty retained message on) every retained topic of each run
 * whose run state is final and older than --older-than. Runs still going on,
 * and runs whose coordinator was lost, are left alone.
 *
 * It reads the run records into a run view, through the same session and
 * barrier as the other clients; then, run by run, it collects the topics the
 * broker retains under the run and deletes them.
 *
 * First, on this machine, it removes the temporary directories of flowbus
 * processes that were killed before they could (tmpdirs.h): a run's
 * directory, a private broker's with its hashed passwords, a cmd task's with
 * its input values. A directory whose owner record names a live process is
 * never touched. Without a broker, that is all it does.
 */
#include "commands.h"
#include "log.h"
#include "session.h"
#include "tmpdirs.h"
#include "view.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char gc__usage[] =
    "Usage: flowbus gc [--broker URL] [--older-than SECONDS] [-q]\n"
    "\n"
    "Remove the temporary directories ($TMPDIR/flowbus-run-*, flowbus-broker-*,\n"
    "flowbus-cmd-*) of flowbus processes that are gone (a live owner's are kept;\n"
    "those without an owner record, from older versions, once a day old). Then,\n"
    "with a broker, remove the retained topics (variables, states, workflow) of\n"
    "every finished run from it. Runs still going on, and runs whose coordinator\n"
    "was lost (they can be resumed), are left alone.\n"
    "\n"
    "Options:\n"
    "  --broker URL          the broker (default: $FLOWBUS_BROKER)\n"
    "  --older-than SECONDS  only runs that finished at least this long ago (default 0)\n"
    "  -q, --quiet           print nothing but errors\n"
    "  -h, --help            show this help\n";

/* A message that arrives with a snapshot but is not retained is news, not the broker's record. */
static enum fb_err drop_live(void *ctx, fb_msg *m)
{
    (void)ctx;
    fb_msg_free(m);
    return FB_OK;
}

static void report_removed(void *ctx, const char *path, long pid)
{
    const struct gc_options *o = ctx;

    if (o->quiet)
        return;
    if (pid > 0)
        printf("removed directory %s (its owner, process %ld, is gone)\n", path, pid);
    else
        printf("removed directory %s (no owner record, unchanged for a day)\n", path);
}

/* Deletes the retained topics of run rv (the snapshot in got); returns how many. */
static size_t delete_run(const struct session *s, const struct run_view *rv,
                         const struct session_msgs *got)
{
    size_t n = 0;

    /* The run state goes last, so that an interrupted gc can be run again. */
    for (int last = 0; last <= 1; last++)
        for (size_t k = 0; k < got->n; k++) {
            const fb_msg *m = got->v[k];
            fb_topic t;
            int is_record = fb_topic_parse(m->topic, &t) == FB_TOPIC_RUN_STATE &&
                            fb_topic_is_run(&t, rv->run_id);
            if (!m->retained || m->len == 0 || is_record != last)
                continue;
            fb_bus_publish(s->bus, m->topic, "", 0, 1, 1, 0);
            n++;
        }
    return n;
}

int gc__main(const struct gc_options *o)
{
    static const enum fb_topic_kind records[] = {FB_TOPIC_RUN_STATE};
    static const enum fb_topic_kind everything[] = {FB_TOPIC_ALL};
    const struct session_broker b = {o->broker_url, o->username, o->password};
    struct session every = {0};
    struct view *vw = view__new();
    double before = fb_clock_wall() - o->older_than;
    size_t removed = 0, finished = 0, running = 0, dirs;
    int code = FB_EXIT_BROKER;

    dirs = tmpdirs__sweep(tmpdirs__root(), 1, report_removed, (void *)o);
    if (!o->quiet)
        printf("%zu temporary directories of processes that are gone removed from %s%s\n", dirs,
               tmpdirs__root(), o->broker_url ? "" : " (no broker given: nothing else to do)");
    if (!o->broker_url) {
        code = FB_EXIT_OK;
        goto out;
    }
    if (!vw) {
        log_printf(FB_LOG_ERROR, "out of memory");
        goto out;
    }
    if ((code = session__open(&every, &b, NULL, "gc", 0)) != FB_EXIT_OK ||
        (code = session__snapshot(&every, records, 1, vw, drop_live, NULL)) != FB_EXIT_OK)
        goto out;
    for (size_t i = 0; i < view__count(vw); i++) {
        const struct run_view *rv = view__nth(vw, i);
        struct session_msgs got = {0};
        size_t n;
        if (!rv->state_name)
            continue;
        if (!fb_run_state_is_final(rv->state)) {
            running++;
            continue;
        }
        if (rv->at < 0 || rv->at > before)
            continue;
        /* The run's topics, on the same connection: for this collect the
         * session is about that run. */
        every.run_id = rv->run_id;
        code = session__collect(&every, everything, 1, &got);
        every.run_id = NULL;
        if (code != FB_EXIT_OK) {
            session__msgs_free(&got);
            goto out;
        }
        n = delete_run(&every, rv, &got);
        session__msgs_free(&got);
        finished++;
        removed += n;
        if (!o->quiet)
            printf("removed run %s (%zu retained topics)\n", rv->run_id, n);
        if (fb_bus_flush(every.bus, SESSION_ANSWER_WAIT) != FB_OK) {
            log_printf(FB_LOG_ERROR, "the broker did not confirm the deletions");
            code = FB_EXIT_BROKER;
            goto out;
        }
    }
    if (!o->quiet)
        printf("%zu finished runs removed (%zu retained topics); %zu runs not finished left "
               "alone\n",
               finished, removed, running);
    code = FB_EXIT_OK;
out:
    view__free(vw);
    session__close(&every);
    return code;
}
