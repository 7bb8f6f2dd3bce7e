/*
 * task_connect.c - a task's connections to the broker.
 *
 * The task's own connection carries a Last Will that marks it "crashed",
 * subscribes to what the task waits for (its inputs, its outputs for "first
 * value wins", its dependencies' states, the run's control), and is ready
 * once "waiting" is confirmed. A worker pool has a second connection for the
 * $share subscriptions of the trigger inputs (see task_reactive.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "task_internal.h"

/* A malloc'd topic (or filter) of the task's run; NULL when out of memory. */
static char *topic_dup(enum fb_topic_kind kind, const char *run, const char *name)
{
    char buf[FB_TOPIC_MAX];

    /* The names were validated when the task was opened: every topic fits. */
    if (fb_topic_format(buf, sizeof buf, kind, run, name) == 0)
        return NULL;
    return str__dup(buf);
}

/*
 * A worker pool's second connection: the $share subscriptions of the trigger
 * inputs (group "<run-id>.<task>"), through which the broker gives each event
 * to one worker. Same broker and credentials; no Last Will (the task's own
 * connection has it). fb_task_fd is an epoll set over both connections.
 */
static enum fb_err connect_events(fb_task *task, fb_bus_options *opts, char *client_id,
                                  size_t id_len, char *errbuf, size_t errlen)
{
    const char **filters = calloc(task->env.n_triggers + 1, sizeof *filters);
    struct epoll_event ev;
    size_t n = 0;
    size_t i;
    enum fb_err err = FB_OK;

    if (filters == NULL) {
        err__set(errbuf, errlen, "out of memory");
        return FB_ERR_NOMEM;
    }
    {
        char prefix[FB_TOPIC_MAX];

        snprintf(prefix, sizeof prefix, "fb-%s-%s-events", task->env.run_id, task->env.name);
        if (fb_client_id(client_id, id_len, prefix) != FB_OK) {
            err__set(errbuf, errlen, "getrandom: %s", strerror(errno));
            err = FB_ERR_SYSTEM;
            goto out;
        }
    }
    opts->client_id = client_id;
    opts->will_topic = NULL;
    opts->will_payload = NULL;
    opts->will_retained = 0;
    err = fb_bus_new(opts, &task->events_bus, errbuf, errlen);
    if (err != FB_OK)
        goto out;
    for (i = 0; i < task->n_inputs; i++) {
        char buf[FB_TOPIC_MAX];

        if (!task->inputs[i].trigger)
            continue;
        filters[n] = fb_topic_share(buf, sizeof buf, task->env.run_id, task->env.name,
                                    task->inputs[i].name) > 0
                         ? str__dup(buf)
                         : NULL;
        if (filters[n++] == NULL) {
            err__set(errbuf, errlen, "out of memory");
            err = FB_ERR_NOMEM;
            goto out;
        }
    }
    err = fb_bus_subscribe(task->events_bus, filters, n, SUBSCRIBE_TIMEOUT);
    if (err != FB_OK) {
        err__set(errbuf, errlen, "cannot subscribe to the shared events: %s", fb_strerror(err));
        goto out;
    }
    task->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    if (task->epoll_fd < 0 ||
        epoll_ctl(task->epoll_fd, EPOLL_CTL_ADD, fb_bus_fd(task->bus), &ev) != 0 ||
        epoll_ctl(task->epoll_fd, EPOLL_CTL_ADD, fb_bus_fd(task->events_bus), &ev) != 0) {
        err__set(errbuf, errlen, "epoll: %s", strerror(errno));
        err = FB_ERR_SYSTEM;
    }
out:
    for (i = 0; i < n; i++)
        free((char *)filters[i]);
    free(filters);
    return err;
}

/*
 * The broker may be restarting just as the task starts (the coordinator
 * restarts a private broker that died): the first connect gets the same
 * window as a reconnect, with the same doubling pause, while the
 * coordinator that restarts it lives.
 */
static enum fb_err connect_bus(fb_task *task, const fb_bus_options *opts, char *errbuf,
                               size_t errlen)
{
    enum fb_err err = fb_bus_new(opts, &task->bus, errbuf, errlen);
    double reconnect_max = task->env.reconnect_max;
    double deadline = fb_clock_mono() + reconnect_max, pause = 0.05;

    /* Only a coordinator that runs the broker itself restarts it: an
     * external broker that refuses or is unreachable is reported at once. */
    while (err == FB_ERR_CONNECT && reconnect_max != 0 && task->guardian_pid > 0 &&
           (reconnect_max < 0 || fb_clock_mono() + pause < deadline) &&
           (long)getppid() == task->guardian_pid) {
        /* pause is at most 2 s: its whole seconds and nanoseconds fit their fields. */
        struct timespec ts = {(time_t)pause, (long)((pause - (double)(time_t)pause) * 1e9)};
        nanosleep(&ts, NULL);
        pause = pause < 1.0 ? pause * 2 : 2.0;
        err = fb_bus_new(opts, &task->bus, errbuf, errlen);
    }
    return err;
}

enum fb_err task_connect__open(fb_task *task, char *errbuf, size_t errlen)
{
    const struct task_env *env = &task->env;
    fb_bus_options bus_opts;
    const char **filters = NULL;
    char *will = task_state__will(task);
    char client_id[160];
    size_t n = 0;
    size_t i;
    enum fb_err err = FB_OK;

    filters = calloc(task->n_inputs + task->n_outputs + task->n_deps + 1, sizeof *filters);
    if (will == NULL || filters == NULL) {
        err__set(errbuf, errlen, "out of memory");
        err = FB_ERR_NOMEM;
        goto out;
    }
    {
        /* The names only help a reader of the broker's log; the random end makes it unguessable. */
        char prefix[FB_TOPIC_MAX];

        snprintf(prefix, sizeof prefix, "fb-%s-%s", env->run_id, env->name);
        if (fb_client_id(client_id, FB_CLIENT_ID_MAX + 1, prefix) != FB_OK) {
            err__set(errbuf, errlen, "getrandom: %s", strerror(errno));
            err = FB_ERR_SYSTEM;
            goto out;
        }
    }
    memset(&bus_opts, 0, sizeof bus_opts);
    bus_opts.url = env->broker;
    bus_opts.username = env->username;
    bus_opts.password = env->password;
    bus_opts.client_id = client_id;
    bus_opts.will_topic = task->state_topic;
    bus_opts.will_payload = will;
    bus_opts.will_retained = 1;
    bus_opts.log = task->log;
    bus_opts.log_ctx = task->log_ctx;
    /*
     * A task survives a broker restart: the bus re-subscribes (the retained
     * inputs and states come again, which absorb takes as they are) and
     * re-sends the unconfirmed outputs and states in order. Whatever the task
     * was doing goes on; nothing here runs its action again.
     */
    bus_opts.reconnect_max_s = env->reconnect_max;
    bus_opts.keepalive = env->keepalive;
    /* A task whose coordinator died (and a plugin may outlive the SIGTERM,
     * as cmd does to stop its command) gives up on the broker at once. */
    bus_opts.guardian_pid = task->guardian_pid;
    bus_opts.ca_file = env->tls_ca;
    bus_opts.cert_file = env->tls_cert;
    bus_opts.key_file = env->tls_key;
    err = connect_bus(task, &bus_opts, errbuf, errlen);
    if (err != FB_OK)
        goto out;

    for (i = 0; i < task->n_inputs; i++)
        if (!task->inputs[i].secret)
            filters[n++] = topic_dup(FB_TOPIC_VAR, env->run_id, task->inputs[i].name);
    /* Outputs are watched for "first value wins", which reactive mode does not have. */
    for (i = 0; i < task->n_outputs && !env->reactive; i++)
        filters[n++] = topic_dup(FB_TOPIC_VAR, env->run_id, task->outputs[i].name);
    for (i = 0; i < task->n_deps; i++)
        filters[n++] = topic_dup(FB_TOPIC_TASK_STATE, env->run_id, task->deps[i].name);
    filters[n++] = topic_dup(FB_TOPIC_CONTROL, env->run_id, NULL);
    for (i = 0; i < n; i++) {
        if (filters[i] == NULL) {
            err__set(errbuf, errlen, "out of memory");
            err = FB_ERR_NOMEM;
            goto out;
        }
    }
    err = fb_bus_subscribe(task->bus, filters, n, SUBSCRIBE_TIMEOUT);
    if (err != FB_OK) {
        err__set(errbuf, errlen, "cannot subscribe to the task's topics: %s", fb_strerror(err));
        goto out;
    }
    /*
     * The SUBACK comes before the retained messages of the new subscriptions.
     * The broker queues all of them while handling the SUBSCRIBE, before it
     * reads our next packet, so once the PUBACK of "waiting" is back every
     * retained input, output and state is in our queue. fb_task_wait and the
     * first-value-wins check in fb_task_done rely on that.
     */
    /*
     * A pool's events connection subscribes before "waiting", so that state
     * means "ready for events". Its events are absorbed after the retained
     * values of the task's own connection (task_absorb__queued), so they
     * find them.
     */
    if (env->reactive && env->workers > 1 && env->n_triggers > 0) {
        err = connect_events(task, &bus_opts, client_id, FB_CLIENT_ID_MAX + 1, errbuf, errlen);
        if (err != FB_OK)
            goto out;
    }
    err = task_state__publish(task, FB_STATE_WAITING, fb_clock_wall(), 0, -1, NULL);
    if (err == FB_OK)
        err = fb_bus_flush(task->bus, task->flush_timeout);
    if (err != FB_OK)
        err__set(errbuf, errlen, "cannot publish the state '%s': %s",
                 fb_state_name(FB_STATE_WAITING), fb_strerror(err));
out:
    if (filters != NULL)
        for (i = 0; i < n; i++)
            free((char *)filters[i]);
    free(filters);
    free(will);
    return err;
}
