/*
 * run.c - `flowbus run`: one execution of a workflow (see run.h), from its
 * start to its exit code.
 *
 * A new run loads its file, sets up (setup.c), starts or joins a broker,
 * makes sure its run id is unused, announces itself (announce.c) and lets
 * the launch window start its processes (launch.c); `flowbus resume` takes
 * over an existing run instead (resume.c). Then the event loop (loop.c)
 * follows the run until it is over, and run__main publishes how it ended,
 * decides the exit code and gives back everything the run acquired: no
 * process it started may outlive it. internal.h lists the files of the run
 * and what each one owns.
 */
#include "internal.h"
#include "access.h"
#include "broker.h"
#include "display.h"
#include "graph.h"
#include "localruns.h"
#include "log.h"
#include "plugins.h"
#include "workflow.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

/*
 * The header of a run on its private broker: the broker's URL, and where the
 * password is that lets `flowbus status/set/stop/logs RUN` in another
 * terminal reach it (localruns.h). Without that record the run still goes on.
 */
static void note_private_broker(struct run *r)
{
    char pwfile[512], err[600];
    const char *url = broker__url(r->res.broker);

    if (!localruns__record(r->run_id, url, access__user(r->res.access, -1),
                           access__password(r->res.access, -1), pwfile, sizeof pwfile, err,
                           sizeof err)) {
        display__note(r->disp, "Run %s of %s: %zu tasks on a private broker at %s", r->run_id,
                      r->wf->name, r->wf->n_tasks, url);
        log_printf(FB_LOG_WARN, "other terminals cannot reach this run by its id: %s", err);
        return;
    }
    r->res.recorded = 1;
    display__note(r->disp, "Run %s of %s: %zu tasks on a private broker at %s", r->run_id,
                  r->wf->name, r->wf->n_tasks, url);
    display__note(r->disp, "  user %s, password in %s; from another terminal: flowbus status %s",
                  access__user(r->res.access, -1), pwfile, r->run_id);
}

/* A new run: load the file, start or join the broker, publish, launch. */
static int start_new(struct run *r, struct wf_diags *diags)
{
    const struct run_options *o = r->o;
    struct wf_load_options lo = {0};
    char where[2048];

    plugins__describe_path(where, sizeof where);
    lo.lookup_where = where;
    lo.settings = o->settings;
    lo.n_settings = o->n_settings;
    lo.lookup = plugins__lookup;
    lo.reactive = o->reactive;
    r->wf = workflow__load(o->file, &lo, diags);
    wf_diags_print(diags, o->file, stderr);
    if (!r->wf)
        return FB_EXIT_INVALID;
    if (o->run_id)
        snprintf(r->run_id, sizeof r->run_id, "%s", o->run_id);
    else
        generate_run_id(r->run_id, sizeof r->run_id);
    if (!lease__init(r) || !setup__tables(r) || !setup__signals(r)) {
        log_printf(FB_LOG_ERROR, "cannot set up the run: %s", strerror(errno ? errno : ENOMEM));
        return FB_EXIT_BROKER;
    }
    if (!placement__check(r))
        return FB_EXIT_INVALID;
    if (!o->broker_url && !setup__private_broker(r))
        return FB_EXIT_BROKER;
    if (!setup__connect(r, r->res.broker ? broker__url(r->res.broker) : o->broker_url,
                        r->res.access ? access__user(r->res.access, -1) : o->username,
                        r->res.access ? access__password(r->res.access, -1) : o->password))
        return FB_EXIT_BROKER;
    if (!setup__run_id_unused(r))
        return FB_EXIT_INVALID;
    /* After that check, which reads any retained message as the run id's. */
    if (!placement__subscribe(r))
        return FB_EXIT_BROKER;
    if (!identity__setup(r))
        return FB_EXIT_BROKER;
    if (r->res.broker)
        note_private_broker(r);
    else
        display__note(r->disp, "Run %s of %s: %zu tasks on %s", r->run_id, r->wf->name,
                      r->wf->n_tasks, o->broker_url);
    announce__start(r);
    launch__all(r);
    return FB_EXIT_OK;
}

/* The run state a run that ended with exit code code has. */
static enum fb_run_state end_state(const struct run *r, int code)
{
    if (r->sup.interrupted > 0 || (r->reactive && code == FB_EXIT_OK))
        return FB_RUN_STOPPED;
    switch (code) {
    case FB_EXIT_OK:
        return FB_RUN_DONE;
    case FB_EXIT_END_SKIPPED:
        return FB_RUN_INCOMPLETE;
    default:
        return FB_RUN_FAILED;
    }
}

/* The loop is over: decide the exit code, publish the end of the run. */
static int finish(struct run *r)
{
    const struct run_options *o = r->o;
    /* An external broker's retained topics of the run expire (a private broker goes with it). */
    int expiring = !r->res.broker && o->expiry > 0;
    unsigned expiry = expiring ? (unsigned)o->expiry : 0;
    /* A reactive flow ends by being stopped: that is success unless a task
     * ended for good in failure. A one-shot run that was stopped did not finish. */
    int code = r->sup.fatal             ? r->sup.fatal
               : r->reactive            ? tracker__exit_code(r->tr)
               : r->sup.interrupted > 0 ? FB_EXIT_INTERRUPTED
                                        : tracker__exit_code(r->tr);

    announce__forget_intents(r);
    if (expiring) {
        announce__collect_vars(r);
        announce__expiring(r, expiry);
    } else if (!r->res.follow_vars && !r->sup.fatal) {
        /* A reactive flow on its private broker: the summary's LAST OUTPUTS. */
        announce__collect_vars(r);
    }
    announce__run_state(r, end_state(r, code), code, expiry);
    if (fb_bus_flush(r->bus, 2.0) != FB_OK && !r->sup.fatal)
        log_printf(FB_LOG_WARN, "the broker did not confirm the final states");
    display__summary(r->disp, fb_run_state_name(end_state(r, code)), code,
                     fb_clock_mono() - r->t0_mono);
    return code;
}

/* Gives back everything the run acquired. */
static void teardown(struct run *r, struct wf_diags *diags)
{
    if (r->bus) {
        /* Paho keeps the connection until its QoS 1 messages are acknowledged
         * (a refused run's sync probe may not be yet); a disconnect that runs
         * out of time lets the broker publish our Last Will over the state of
         * the run that owns this id. */
        (void)fb_bus_flush(r->bus, 1.0);
        fb_bus_close(r->bus, 1.0);
    }
#ifdef __SANITIZE_ADDRESS__
    /* Leak checking wants every allocation back. */
    fb_bus_free(r->bus);
#else
    /* The process exits right after this function: freeing the closed bus
     * would only add Paho's ~100 ms thread teardown to every run. */
#endif
    /* Nothing this coordinator started may outlive the run: kill any group
     * still alive (adopted processes included), unless the run was taken over:
     * its processes are the new owner's now. */
    for (size_t i = 0; r->procs && i < r->n_procs; i++) {
        struct proc *p = &r->procs[i];
        if (p->remote.on && proc_alive(p) && !r->lease.deposed && r->bus) {
            /* Its pid is another host's: only its agent can kill it. */
            placement__signal(r, i, SIGKILL);
        } else if (p->process.pid && !p->process.reaped && !r->lease.deposed) {
            launcher__signal(p->process.pid, SIGKILL);
            if (!p->process.adopted)
                waitpid(p->process.pid, NULL, 0);
        }
        output__free(p);
        free(p->retry.final_json);
    }
    placement__free(r);
    /* Every process is gone: the identities they had go too. */
    identity__teardown(r);
    if (r->res.recorded)
        localruns__forget(r->run_id);
    broker__stop(r->res.broker);
    access__free(r->res.access);
    setup__remove_run_dir(r);
    if (r->res.sigfd >= 0)
        close(r->res.sigfd);
    display__free(r->disp);
    tracker__free(r->tr);
    graph__free(r->g);
    workflow__free(r->wf);
    wf_diags_free(diags);
    free(r->procs);
    free(r->window.order);
    free(r->record.workflow_json);
    free(r->sup.skipped);
}

int run__main(const struct run_options *o)
{
    struct run r = {0};
    struct wf_diags diags = {0};
    int code = FB_EXIT_INVALID, lifted = 0;

    r.o = o;
    r.res.sigfd = -1;
    if (o->run_id && !fb_name_valid(FB_NAME_RUN, o->run_id, strlen(o->run_id))) {
        log_printf(FB_LOG_ERROR, "invalid run id '%s': %s", o->run_id, fb_name_rule(FB_NAME_RUN));
        goto out;
    }
    r.t0_wall = fb_clock_wall();
    r.t0_mono = fb_clock_mono();
    code = o->resume ? resume__start(&r, &diags, &lifted) : start_new(&r, &diags);
    if (code != FB_EXIT_OK || lifted)
        goto out;
    if (o->timeout > 0)
        r.sup.run_deadline = r.t0_mono + o->timeout;
    loop__run(&r);
    /* Taken over: the new owner publishes how the run ends. */
    code = r.lease.deposed ? FB_EXIT_OWNED : finish(&r);
out:
    teardown(&r, &diags);
    return code;
}
