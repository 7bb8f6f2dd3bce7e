/*
 * setup.c - what a run needs before its first task starts.
 *
 * Its tables (graph, tracker, the process table with the extra workers of
 * reactive pools, the launch order, the display), its private run directory
 * (where the tasks share their permission cache), the signals the event loop
 * reads from a signalfd, the private broker with the run's users and ACL
 * when no --broker is given, and the coordinator's connection with its Last
 * Will and its subscriptions. run__main gives all of it back at the end.
 */
#define _GNU_SOURCE
#include "internal.h"
#include "access.h"
#include "broker.h"
#include "display.h"
#include "graph.h"
#include "log.h"
#include "tmpdirs.h"
#include "workflow.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define RECONNECT_EXTERNAL 30.0 /* seconds an external broker may be away mid-run */
#define CONNECT_ATTEMPTS 8 /* to an external broker: 0.1+0.2+...+2 s, about 10 s */
#define FRESH_WAIT 5.0     /* seconds the broker has to show that a run id is unused */

static void note_removed(void *ctx, const char *path, long pid)
{
    (void)ctx;
    log_printf(FB_LOG_DEBUG, "removed %s, left by process %ld, which is gone", path, pid);
}

/*
 * Creates the run's private directory, where the tasks share their permission
 * cache (file names are salted hashes, never tokens), and the salt, with its
 * owner record (tmpdirs.h). First the directories of flowbus processes killed
 * before they could remove theirs go (a broker's held the hashed passwords).
 */
static int make_run_dir(struct run *r)
{
    const char *tmp = tmpdirs__root();
    unsigned char rnd[16];

    tmpdirs__sweep(tmp, 0, note_removed, NULL);
    snprintf(r->res.run_dir, sizeof r->res.run_dir, "%s/flowbus-run-XXXXXX", tmp);
    if (!mkdtemp(r->res.run_dir)) {
        log_printf(FB_LOG_ERROR, "cannot create the run directory in %s: %s", tmp,
                   strerror(errno));
        r->res.run_dir[0] = '\0';
        return 0;
    }
    if (!tmpdirs__claim(r->res.run_dir)) {
        log_printf(FB_LOG_ERROR, "cannot write the owner record in %s: %s", r->res.run_dir,
                   strerror(errno));
        return 0;
    }
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        log_printf(FB_LOG_ERROR, "getrandom: %s", strerror(errno));
        return 0;
    }
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(r->res.cache_salt + 2 * i, 3, "%02x", rnd[i]);
    return 1;
}

void setup__remove_run_dir(struct run *r)
{
    DIR *d;
    struct dirent *e;
    char path[512];

    if (!r->res.run_dir[0])
        return;
    d = opendir(r->res.run_dir);
    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", r->res.run_dir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(r->res.run_dir);
    r->res.run_dir[0] = '\0';
}

int setup__tables(struct run *r)
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
    r->window.order = calloc(n + 1, sizeof *r->window.order);
    r->sup.skipped = calloc(r->wf->n_tasks + 1, sizeof *r->sup.skipped);
    if (!r->tr || !r->procs || !r->window.order || !r->sup.skipped)
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
        r->procs[i].out.fd = -1;
    if (!launch__order(r))
        return 0;
    r->disp = display__new(o->json ? DISPLAY_JSON : isatty(1) ? DISPLAY_TTY : DISPLAY_LINES, r->wf,
                           r->g, r->tr, r->run_id, stdout);
    if (r->disp && o->quiet)
        display__quiet(r->disp);
    return r->disp != NULL;
}

int setup__signals(struct run *r)
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
    r->res.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    return r->res.sigfd >= 0;
}

int setup__private_broker(struct run *r)
{
    char err[512] = "", *passwords, *acl;

    r->res.access = access__new(r->wf, r->run_id);
    passwords = r->res.access ? access__password_file(r->res.access) : NULL;
    acl = r->res.access ? access__acl_file(r->res.access) : NULL;
    if (passwords && acl)
        r->res.broker = broker__start(passwords, acl, err, sizeof err);
    else
        snprintf(err, sizeof err, "cannot generate credentials: %s", strerror(errno));
    if (passwords)
        explicit_bzero(passwords, strlen(passwords));
    free(passwords);
    free(acl);
    if (!r->res.broker)
        log_printf(FB_LOG_ERROR, "cannot start the private broker: %s", err);
    return r->res.broker != NULL;
}

/*
 * Connects with the Last Will that marks the run lost, naming this owner, and
 * the coordinator's own client id (lease.c): a client id shared with another
 * coordinator would make each connection throw the other off. A broker that is
 * still starting (a service coming up with flowbus) gets a bounded chance:
 * attempts with a doubling pause, about 10 s in all. A signal during a pause
 * ends the wait.
 */
static int open_bus(struct run *r, const char *url, const char *user, const char *pass)
{
    fb_bus_options bo = {0};
    char will_topic[FB_TOPIC_MAX], will[320];

    if (!fb_topic_format(will_topic, sizeof will_topic, FB_TOPIC_RUN_STATE, r->run_id, NULL))
        return 0;
    snprintf(will, sizeof will,
             "{\"state\":\"%s\",\"at\":%.6f,\"started\":%.6f,\"exit\":null,"
             "\"owner\":\"%s\",\"error\":\"the coordinator's connection was lost\"}",
             fb_run_state_name(FB_RUN_LOST), fb_clock_wall(), r->t0_wall, r->lease.id);
    bo.url = url;
    bo.username = user;
    bo.password = pass;
    bo.client_id = r->lease.client_id;
    bo.ca_file = getenv("FLOWBUS_TLS_CA");
    bo.cert_file = getenv("FLOWBUS_TLS_CERT");
    bo.key_file = getenv("FLOWBUS_TLS_KEY");
    /* The private broker is restarted by this coordinator, so keep trying as
     * long as it takes; an external broker gets 30 s to come back. */
    bo.reconnect_max_s = r->res.broker ? -1 : RECONNECT_EXTERNAL;
    bo.will_topic = will_topic;
    bo.will_payload = will;
    bo.will_retained = 1;
    bo.log = log__sdk;
    return setup__open_bus(r, &bo, &r->bus);
}

int setup__open_bus(struct run *r, const fb_bus_options *bo, fb_bus **bus)
{
    char err[256];
    enum fb_err e;

    for (int attempt = 1;; attempt++) {
        double pause = 0.1 * (1 << (attempt - 1));
        struct pollfd pfd = {.fd = r->res.sigfd, .events = POLLIN};

        e = fb_bus_new(bo, bus, err, sizeof err);
        if (e == FB_OK)
            return 1;
        if (attempt >= CONNECT_ATTEMPTS || e == FB_ERR_INVALID) {
            log_printf(FB_LOG_ERROR, "cannot connect to the broker at %s after %d attempts: %s",
                       bo->url, attempt, err);
            return 0;
        }
        log_printf(FB_LOG_INFO, "broker at %s not reachable (%s); trying again in %.1f s",
                   bo->url, err, pause > 2.0 ? 2.0 : pause);
        if (poll(&pfd, 1, (int)((pause > 2.0 ? 2.0 : pause) * 1000)) > 0) {
            log_printf(FB_LOG_ERROR, "interrupted while waiting for the broker at %s", bo->url);
            return 0;
        }
    }
}

int setup__connect(struct run *r, const char *url, const char *user, const char *pass)
{
    /* Not the workflow topic: our own (300 kB at 1,000 tasks) would come back to us.
     * The task states and the run state are enough to see that a run id is used. */
    static const enum fb_topic_kind kinds[] = {FB_TOPIC_TASK_STATE, FB_TOPIC_TASK_LOG,
                                               FB_TOPIC_CONTROL,    FB_TOPIC_SYNC,
                                               FB_TOPIC_RUN_STATE,  FB_TOPIC_OWNER,
                                               FB_TOPIC_VAR};
    enum { N_KINDS = sizeof kinds / sizeof kinds[0] };
    char filter[N_KINDS][FB_TOPIC_MAX];
    const char *filters[N_KINDS];
    size_t n_filters;
    enum fb_err e;

    if (!open_bus(r, url, user, pass))
        return 0;
    /*
     * A one-shot run follows every variable: which are set decides which
     * tasks can still run. A reactive flow has no dead variables, and
     * following them would make the coordinator receive every event of every
     * task (half the CPU of a pass-through flow, docs/performance.md); it
     * reads their last values once, when it stops (announce__collect_vars).
     * --json prints variable events, so it follows them.
     */
    r->res.follow_vars = !r->reactive || r->o->json;
    if (r->o->resume) {
        /* Resuming reads everything the run left, its workflow first. */
        n_filters = fb_topic_filter(filter[0], sizeof filter[0], FB_TOPIC_ALL, r->run_id, NULL)
                        ? 1
                        : 0;
    } else {
        /* The variables come last: they are left out unless followed. */
        n_filters = r->res.follow_vars ? N_KINDS : N_KINDS - 1;
        for (size_t i = 0; i < n_filters; i++)
            if (!fb_topic_filter(filter[i], sizeof filter[i], kinds[i], r->run_id, NULL))
                n_filters = 0;
    }
    for (size_t i = 0; i < N_KINDS; i++)
        filters[i] = filter[i];
    e = n_filters ? fb_bus_subscribe(r->bus, filters, n_filters, 5.0) : FB_ERR_INVALID;
    if (e != FB_OK) {
        log_printf(FB_LOG_ERROR, "cannot subscribe to %s: %s", filter[0], fb_strerror(e));
        return 0;
    }
    return 1;
}

/* fb_barrier's callback of setup__run_id_unused: a retained message means the id is used. */
static enum fb_err note_retained(void *ctx, fb_msg *m)
{
    int *used = ctx;

    if (m->retained)
        *used = 1;
    fb_msg_free(m);
    return FB_OK;
}

/*
 * A run id names its topics, so it must not be in use: retained messages of an
 * earlier run with the same id would be read as this run's (old variables, an
 * old "stop"). Everything retained under the run's root has arrived once a
 * sync token published after the subscription comes back.
 */
int setup__run_id_unused(struct run *r)
{
    char token[FB_TOPIC_MAX];
    int used = 0;
    enum fb_err e = FB_ERR_INVALID;

    if (fb_barrier_token(token, sizeof token, r->run_id, "fresh"))
        e = fb_barrier(r->bus, token, FRESH_WAIT, note_retained, &used);
    if (e == FB_ERR_TIMEOUT)
        log_printf(FB_LOG_ERROR, "the broker did not answer within 5 s");
    else if (e != FB_OK)
        log_printf(FB_LOG_ERROR, "cannot read the run's topics on the broker: %s",
                   fb_strerror(e));
    else if (used)
        log_printf(FB_LOG_ERROR,
                   "run id '%s' is already used on this broker (its retained topics exist): "
                   "choose another --run-id",
                   r->run_id);
    return e == FB_OK && !used;
}
