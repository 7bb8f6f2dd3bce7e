/*
 * bus.c - fb_bus, a small MQTT v5 client: the handle's life (create,
 * connect, close, free) and publishing.
 *
 * The bus is split by concern (bus_internal.h lists the files): this file
 * holds the handle, its lock and condition variables, the first connect and
 * fb_bus_publish, and hands the rest to the queue (bus_queue.c), the QoS 1
 * publishes in flight (bus_inflight.c), the subscriptions (bus_subscribe.c)
 * and the reconnect thread (bus_reconnect.c). The MQTT library, Eclipse Paho
 * MQTTAsync, is reached only through bus_paho.c, which paho_load.c loads with
 * dlopen.
 *
 * Paho runs every callback on its own receive thread, which all clients of the
 * process share. The callbacks therefore only copy data into the bus under its
 * mutex, signal its condition variable and, for received messages, make the
 * self-pipe readable; every wait happens on the caller's thread (or the bus's
 * reconnect thread) with a deadline. Paho is never called while the bus mutex
 * is held: Paho calls us back with its own mutex held, so taking the two in
 * the other order could deadlock.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bus_paho_internal.h"

/* ------------------------------------------------------------------------ */
/* Waiting and the bus's state                                               */
/* ------------------------------------------------------------------------ */

/*
 * Waits on the condition variable until the monotonic deadline (negative:
 * forever). Returns 0 when woken, ETIMEDOUT when the deadline passed.
 */
int bus__wait_on(fb_bus *bus, pthread_cond_t *cv, double deadline)
{
    struct timespec ts;
    double whole;

    if (deadline < 0)
        return pthread_cond_wait(cv, &bus->mu);
    if (fb_clock_mono() >= deadline)
        return ETIMEDOUT;
    whole = (double)(long long)deadline;
    ts.tv_sec = (time_t)whole;
    ts.tv_nsec = (long)((deadline - whole) * 1e9);
    return pthread_cond_timedwait(cv, &bus->mu, &ts);
}

/* Waits for a state change (bus->cv); see bus__wait_on. */
int bus__wait(fb_bus *bus, double deadline)
{
    return bus__wait_on(bus, &bus->cv, deadline);
}

double bus__deadline(double timeout)
{
    return timeout < 0 ? -1.0 : fb_clock_mono() + timeout;
}

/* Marks the connection gone for good: waiters wake, the fd becomes readable. */
void bus__mark_lost_locked(fb_bus *bus)
{
    bus->link_up = 0;
    bus->connected = 0;
    bus->reconnecting = 0;
    bus->lost = 1;
    bus_queue__arm_locked(bus);
    pthread_cond_broadcast(&bus->cv);
    pthread_cond_broadcast(&bus->msg_cv);
    pthread_cond_broadcast(&bus->ack_cv);
    pthread_cond_broadcast(&bus->rx_cv);
}

/* ------------------------------------------------------------------------ */
/* Connecting                                                                */
/* ------------------------------------------------------------------------ */

void bus__on_connected(fb_bus *bus, unsigned max_unacked)
{
    pthread_mutex_lock(&bus->mu);
    bus->max_unacked = max_unacked;
    pthread_cond_broadcast(&bus->ack_cv);
    bus->connect_done = 1;
    bus->connect_ok = 1;
    bus->link_up = 1;
    bus->link_gen++;
    pthread_cond_broadcast(&bus->cv);
    pthread_mutex_unlock(&bus->mu);
}

void bus__on_connect_failed(fb_bus *bus, int refused, const char *reason)
{
    pthread_mutex_lock(&bus->mu);
    bus->connect_done = 1;
    bus->connect_ok = 0;
    bus->connect_refused = refused;
    snprintf(bus->connect_reason, sizeof bus->connect_reason, "%s", reason);
    pthread_cond_broadcast(&bus->cv);
    pthread_mutex_unlock(&bus->mu);
}

enum fb_err bus__connect_once(fb_bus *bus)
{
    double deadline = fb_clock_mono() + bus->opt.connect_timeout;
    enum fb_err err = FB_OK;

    pthread_mutex_lock(&bus->mu);
    bus->connect_done = 0;
    bus->connect_ok = 0;
    bus->connect_refused = 0;
    bus->connect_reason[0] = '\0';
    bus->tls_error[0] = '\0';
    pthread_mutex_unlock(&bus->mu);

    err = bus_paho__connect(bus);
    if (err != FB_OK)
        return err;
    pthread_mutex_lock(&bus->mu);
    while (!bus->connect_done && !bus->closed && bus__wait(bus, deadline) != ETIMEDOUT)
        ;
    if (!bus->connect_done)
        err = FB_ERR_TIMEOUT;
    else if (!bus->connect_ok)
        err = FB_ERR_CONNECT;
    pthread_mutex_unlock(&bus->mu);
    return err;
}

/* ------------------------------------------------------------------------ */
/* Setup                                                                     */
/* ------------------------------------------------------------------------ */

static enum fb_err init_sync(fb_bus *bus, char *errbuf, size_t errlen)
{
    pthread_condattr_t attr;
    int fds[2];
    int i;

    bus->pipe_rd = bus->pipe_wr = -1;
    if (pthread_mutex_init(&bus->mu, NULL) != 0)
        goto fail;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    i = pthread_cond_init(&bus->cv, &attr);
    if (i == 0 && (i = pthread_cond_init(&bus->msg_cv, &attr)) != 0)
        pthread_cond_destroy(&bus->cv);
    if (i == 0 && (i = pthread_cond_init(&bus->ack_cv, &attr)) != 0) {
        pthread_cond_destroy(&bus->msg_cv);
        pthread_cond_destroy(&bus->cv);
    }
    if (i == 0 && (i = pthread_cond_init(&bus->rx_cv, &attr)) != 0) {
        pthread_cond_destroy(&bus->ack_cv);
        pthread_cond_destroy(&bus->msg_cv);
        pthread_cond_destroy(&bus->cv);
    }
    pthread_condattr_destroy(&attr);
    if (i != 0) {
        pthread_mutex_destroy(&bus->mu);
        goto fail;
    }
    if (pipe(fds) != 0) {
        pthread_cond_destroy(&bus->rx_cv);
        pthread_cond_destroy(&bus->ack_cv);
        pthread_cond_destroy(&bus->msg_cv);
        pthread_cond_destroy(&bus->cv);
        pthread_mutex_destroy(&bus->mu);
        goto fail;
    }
    for (i = 0; i < 2; i++) {
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
        fcntl(fds[i], F_SETFD, FD_CLOEXEC);
    }
    bus->pipe_rd = fds[0];
    bus->pipe_wr = fds[1];
    return FB_OK;
fail:
    err__set(errbuf, errlen, "cannot set up the bus: %s", strerror(errno));
    return FB_ERR_SYSTEM;
}

/* Frees a bus whose sync objects exist (see init_sync). */
static void destroy(fb_bus *bus)
{
    bus_reconnect__stop(bus);
    /* After this no Paho callback can run, so whatever is pending can go. */
    bus_paho__destroy(bus);
    bus_queue__free(bus);
    bus_inflight__free(bus);
    bus_subscribe__free(bus);
    bus_options__free(&bus->opt);
    close(bus->pipe_rd);
    close(bus->pipe_wr);
    pthread_cond_destroy(&bus->rx_cv);
    pthread_cond_destroy(&bus->ack_cv);
    pthread_cond_destroy(&bus->msg_cv);
    pthread_cond_destroy(&bus->cv);
    pthread_mutex_destroy(&bus->mu);
    free(bus);
}

enum fb_err fb_bus_new(const fb_bus_options *opts, fb_bus **out, char *errbuf, size_t errlen)
{
    fb_bus *bus = NULL;
    int have_sync = 0;
    enum fb_err err = FB_OK;
    char paho_url[300];
    char client_id[64];

    if (out != NULL)
        *out = NULL;
    if (opts == NULL || out == NULL || opts->url == NULL) {
        err__set(errbuf, errlen, "fb_bus_new: options, url and out are required");
        err = FB_ERR_INVALID;
        goto out;
    }
    bus = calloc(1, sizeof *bus);
    if (bus == NULL) {
        err__set(errbuf, errlen, "out of memory");
        err = FB_ERR_NOMEM;
        goto out;
    }
    bus->log = opts->log;
    bus->log_ctx = opts->log_ctx;
    err = init_sync(bus, errbuf, errlen);
    if (err != FB_OK)
        goto out;
    have_sync = 1;
    err = bus_addr__check_options(opts, &bus->addr, bus->url, sizeof bus->url, paho_url,
                                  sizeof paho_url, client_id, sizeof client_id, errbuf, errlen);
    if (err != FB_OK)
        goto out;
    if (!bus_options__keep(&bus->opt, opts)) {
        err__set(errbuf, errlen, "out of memory");
        err = FB_ERR_NOMEM;
        goto out;
    }

    err = bus_paho__create(bus, paho_url, client_id, errbuf, errlen);
    if (err != FB_OK)
        goto out;

    err = bus__connect_once(bus);
    if (err == FB_ERR_TIMEOUT)
        err__set(errbuf, errlen, "no answer from the broker at %s within %.1f s", bus->url,
                 bus->opt.connect_timeout);
    else if (err != FB_OK)
        err__set(errbuf, errlen, "cannot connect to %s: %s", bus->url, bus->connect_reason);
    if (err != FB_OK)
        goto out;
    pthread_mutex_lock(&bus->mu);
    /* Unless it dropped already: then the worker started below reconnects. */
    if (!bus->reconnecting && !bus->lost)
        bus->connected = 1;
    pthread_mutex_unlock(&bus->mu);

    bus_addr__set_nodelay(&bus->addr, bus->url, bus->log, bus->log_ctx);
    if (bus->opt.reconnect_max_s != 0) {
        err = bus_reconnect__start(bus, errbuf, errlen);
        if (err != FB_OK)
            goto out;
    }
    log__emit(bus->log, bus->log_ctx, FB_LOG_DEBUG, "connected to %s", bus->url);
    *out = bus;
    bus = NULL;
out:
    if (bus != NULL) {
        if (have_sync)
            destroy(bus);
        else
            free(bus);
    }
    return err;
}

/* ------------------------------------------------------------------------ */
/* Operations                                                                */
/* ------------------------------------------------------------------------ */

static enum fb_err publish_qos0(fb_bus *bus, const char *topic, const void *payload, size_t len,
                                int retained, unsigned expiry_s)
{
    enum fb_err err = FB_OK;
    int rc;

    pthread_mutex_lock(&bus->mu);
    if (bus->lost)
        err = FB_ERR_LOST;
    else if (!bus->connected)
        err = FB_ERR_TIMEOUT; /* reconnecting: QoS 0 is not kept (see flowbus.h) */
    pthread_mutex_unlock(&bus->mu);
    if (err == FB_ERR_TIMEOUT)
        return FB_OK;
    if (err != FB_OK)
        return err;
    err = bus_paho__send_qos0(bus, topic, payload, len, retained, expiry_s, &rc);
    if (err == FB_ERR_NOMEM)
        return err;
    if (err == FB_ERR_LOST && bus->opt.reconnect_max_s != 0)
        return FB_OK;
    if (err != FB_OK)
        log__emit(bus->log, bus->log_ctx, FB_LOG_ERROR, "publish to %s failed (Paho %d)", topic,
                  rc);
    return err;
}

enum fb_err fb_bus_publish(fb_bus *bus, const char *topic, const void *payload, size_t len, int qos,
                           int retained, unsigned expiry_s)
{
    if (bus == NULL || topic == NULL || (len > 0 && payload == NULL) || qos < 0 || qos > 1 ||
        len > INT_MAX)
        return FB_ERR_INVALID;
    if (qos == 0)
        return publish_qos0(bus, topic, payload, len, retained, expiry_s);
    return bus_inflight__publish(bus, topic, payload, len, retained, expiry_s);
}

int fb_bus_connected(fb_bus *bus)
{
    int connected;

    if (bus == NULL)
        return 0;
    pthread_mutex_lock(&bus->mu);
    connected = bus->connected && !bus->lost;
    pthread_mutex_unlock(&bus->mu);
    return connected;
}

unsigned fb_bus_reconnects(fb_bus *bus)
{
    unsigned n;

    if (bus == NULL)
        return 0;
    pthread_mutex_lock(&bus->mu);
    n = bus->reconnects;
    pthread_mutex_unlock(&bus->mu);
    return n;
}

enum fb_err fb_bus_close(fb_bus *bus, double timeout)
{
    double deadline;
    enum fb_err err = FB_OK;
    int was_connected;
    int already;

    if (bus == NULL)
        return FB_OK;
    if (timeout < 0)
        timeout = 5.0;
    pthread_mutex_lock(&bus->mu);
    already = bus->closed;
    bus->closed = 1;
    pthread_cond_broadcast(&bus->cv);
    pthread_cond_broadcast(&bus->rx_cv);
    pthread_mutex_unlock(&bus->mu);
    /* The reconnect thread ends first, so it cannot connect again behind our back. */
    bus_reconnect__stop(bus);
    pthread_mutex_lock(&bus->mu);
    was_connected = !already && bus->link_up && !bus->lost;
    pthread_mutex_unlock(&bus->mu);
    if (!was_connected)
        goto out;

    /*
     * A clean disconnect drops the Will, with no delay for messages in flight:
     * callers flush first (bus_paho__disconnect says why a delay would harm).
     */
    deadline = fb_clock_mono() + timeout;
    err = bus_paho__disconnect(bus);
    if (err != FB_OK)
        goto out;
    pthread_mutex_lock(&bus->mu);
    while (!bus->disc_done && bus__wait(bus, deadline) != ETIMEDOUT)
        ;
    if (!bus->disc_done)
        err = FB_ERR_TIMEOUT;
    pthread_mutex_unlock(&bus->mu);
out:
    pthread_mutex_lock(&bus->mu);
    bus__mark_lost_locked(bus);
    pthread_mutex_unlock(&bus->mu);
    return err;
}

void bus__on_disconnected(fb_bus *bus)
{
    pthread_mutex_lock(&bus->mu);
    bus->disc_done = 1;
    bus__mark_lost_locked(bus);
    pthread_mutex_unlock(&bus->mu);
}

void fb_bus_free(fb_bus *bus)
{
    if (bus == NULL)
        return;
    fb_bus_close(bus, 1.0);
    destroy(bus);
}
