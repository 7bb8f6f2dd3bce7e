/*
 * bus_reconnect.c - getting a lost connection back: the reconnect thread and
 * its policy.
 *
 * Reconnection (opts->reconnect_max_s != 0) is done here rather than with
 * Paho's automaticReconnect, whose retry interval has a granularity of whole
 * seconds and which cannot re-subscribe or re-send anything for us: Paho
 * persistence is off and every connect is a clean start, so the broker
 * forgets our subscriptions and Paho forgets our unacknowledged publishes.
 * The bus therefore keeps
 *
 *  - every filter it subscribed to, re-subscribed after each reconnect
 *    (bus_subscribe.c), and
 *  - every QoS 1 publish until its PUBACK (struct pending), re-sent in the
 *    original order after each reconnect, before any newer publish
 *    (bus_inflight.c).
 *
 * A thread of the bus (reconnect_main) waits for the loss, retries with a
 * backoff of 50 ms doubling to 2 s, and on success re-subscribes, re-sends and
 * only then lets publishes through again, so that the last value a retained
 * topic gets is the last one the caller published. It gives up once
 * reconnect_max_s has passed since the loss, when the broker refuses us with
 * a reason code, or when the process that looks after the broker is no longer
 * our parent (guardian_pid).
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bus_paho_internal.h"

void bus_reconnect__link_down_locked(fb_bus *bus)
{
    if (bus->lost)
        return;
    /*
     * Before the worker runs, a drop after the first CONNACK (connect_ok) is
     * a connection lost like any later one: fb_bus_new starts the worker,
     * which finds reconnecting set. Marked lost instead, the bus of a task
     * whose broker died just after it answered could never subscribe.
     */
    if (bus->opt.reconnect_max_s == 0 || bus->closed || (!bus->have_worker && !bus->connect_ok)) {
        bus__mark_lost_locked(bus);
        return;
    }
    if (!bus->reconnecting)
        bus->lost_at = fb_clock_mono();
    bus->link_up = 0;
    bus->connected = 0;
    bus->reconnecting = 1;
    pthread_cond_broadcast(&bus->cv);
}

void bus_reconnect__on_lost(fb_bus *bus, const char *cause)
{
    int retrying;

    pthread_mutex_lock(&bus->mu);
    bus_reconnect__link_down_locked(bus);
    retrying = bus->reconnecting;
    pthread_mutex_unlock(&bus->mu);
    log__emit(bus->log, bus->log_ctx, FB_LOG_WARN, "connection to %s lost%s%s%s", bus->url,
              cause != NULL ? ": " : "", cause != NULL ? cause : "",
              retrying ? "; reconnecting" : "");
}

void bus_reconnect__on_broker_disconnect(fb_bus *bus, int taken_over, const char *reason)
{
    pthread_mutex_lock(&bus->mu);
    /* Another client took our id over: fighting it with reconnects would not end. */
    if (taken_over)
        bus__mark_lost_locked(bus);
    else
        bus_reconnect__link_down_locked(bus);
    pthread_mutex_unlock(&bus->mu);
    log__emit(bus->log, bus->log_ctx, FB_LOG_WARN, "broker %s disconnected us: %s", bus->url,
              reason);
}

/*
 * After a reconnect: TCP_NODELAY on the new socket, every filter subscribed
 * again (the broker forgot them with the clean start; their retained
 * messages come again), then every unacknowledged publish sent again.
 * Returns 1 when the bus is usable again, 0 if the connection dropped.
 */
static int resync(fb_bus *bus)
{
    double deadline = fb_clock_mono() + bus->opt.connect_timeout;

    bus_addr__set_nodelay(&bus->addr, bus->url, bus->log, bus->log_ctx);
    pthread_mutex_lock(&bus->mu);
    /*
     * Counted before anything is sent again: a flush that sees its messages
     * acknowledged on the new connection must also see that there was one
     * (fb_task ends by publishing again what a restarted broker may have lost).
     */
    bus->reconnects++;
    pthread_mutex_unlock(&bus->mu);
    if (bus_subscribe__again(bus, deadline) == FB_ERR_LOST)
        return 0;
    return bus_inflight__resend(bus, 1);
}

/*
 * 1 if a TCP connection to the broker's address can be opened within
 * timeout seconds. The reconnect thread asks this before handing a connect
 * to Paho: while the broker is down a probe costs a refused SYN, whereas a
 * failed Paho connect is noticed only at the next turn of Paho's receive
 * thread (100 ms to 1 s), which delays the attempt that would succeed.
 */
static int broker_reachable(fb_bus *bus, double timeout)
{
    struct addrinfo hints;
    struct addrinfo *addrs = NULL;
    struct addrinfo *ai;
    struct pollfd pfd;
    socklen_t len;
    int reachable = 0;
    int soerr;
    int fd;

    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (getaddrinfo(bus->addr.host, bus->addr.port, &hints, &addrs) != 0)
        return 1; /* let Paho try and report what is wrong */
    for (ai = addrs; ai != NULL && !reachable; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            reachable = 1;
        } else if (errno == EINPROGRESS) {
            pfd.fd = fd;
            pfd.events = POLLOUT;
            pfd.revents = 0;
            len = sizeof soerr;
            if (poll(&pfd, 1, (int)(timeout * 1000)) == 1 &&
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr == 0)
                reachable = 1;
        }
        close(fd);
    }
    freeaddrinfo(addrs);
    return reachable;
}

/*
 * The reconnect thread. It sleeps until the connection drops, then retries
 * with backoff until it is back (and re-synced), reconnect_max_s passes (the
 * bus is then lost for good), or the bus is closed.
 */
static void *reconnect_main(void *arg)
{
    fb_bus *bus = arg;
    double delay = RECONNECT_DELAY_MIN;
    double began;
    double until;
    char reason[sizeof bus->connect_reason];
    enum fb_err err;
    int refused;

    pthread_mutex_lock(&bus->mu);
    for (;;) {
        while (!bus->closed && !bus->lost && !bus->reconnecting && !bus->resend_wanted)
            bus__wait(bus, -1);
        if (bus->closed || bus->lost)
            break;
        if (bus->resend_wanted && !bus->reconnecting) {
            bus->resend_wanted = 0;
            pthread_mutex_unlock(&bus->mu);
            bus_inflight__resend(bus, 0);
            pthread_mutex_lock(&bus->mu);
            continue;
        }
        bus->resend_wanted = 0;
        began = bus->lost_at;
        snprintf(reason, sizeof reason, "%s",
                 bus->connect_reason[0] != '\0' ? bus->connect_reason : "no answer");
        if ((bus->opt.reconnect_max_s > 0 && fb_clock_mono() - began > bus->opt.reconnect_max_s) ||
            (bus->opt.guardian_pid > 0 && (long)getppid() != bus->opt.guardian_pid)) {
            bus__mark_lost_locked(bus);
            pthread_mutex_unlock(&bus->mu);
            log__emit(bus->log, bus->log_ctx, FB_LOG_ERROR,
                      "gave up reconnecting to %s after %.1f s: %s", bus->url,
                      bus->opt.reconnect_max_s, reason);
            pthread_mutex_lock(&bus->mu);
            break;
        }
        pthread_mutex_unlock(&bus->mu);

        if (!broker_reachable(bus, bus->opt.connect_timeout)) {
            err = FB_ERR_CONNECT;
            pthread_mutex_lock(&bus->mu);
            snprintf(bus->connect_reason, sizeof bus->connect_reason,
                     "the broker's port does not answer");
            pthread_mutex_unlock(&bus->mu);
        } else {
            err = bus__connect_once(bus);
        }
        if (err == FB_OK && resync(bus)) {
            log__emit(bus->log, bus->log_ctx, FB_LOG_INFO, "reconnected to %s after %.3f s",
                      bus->url, fb_clock_mono() - began);
            delay = RECONNECT_DELAY_MIN;
            pthread_mutex_lock(&bus->mu);
            continue;
        }
        pthread_mutex_lock(&bus->mu);
        refused = err == FB_ERR_CONNECT && bus->connect_refused;
        snprintf(reason, sizeof reason, "%s",
                 err == FB_OK                     ? "dropped again while re-syncing"
                 : bus->connect_reason[0] != '\0' ? bus->connect_reason
                                                  : "no answer");
        if (refused || err == FB_ERR_INVALID) {
            bus__mark_lost_locked(bus);
            pthread_mutex_unlock(&bus->mu);
            log__emit(bus->log, bus->log_ctx, FB_LOG_ERROR, "cannot reconnect to %s: %s", bus->url,
                      reason);
            pthread_mutex_lock(&bus->mu);
            break;
        }
        pthread_mutex_unlock(&bus->mu);
        log__emit(bus->log, bus->log_ctx, FB_LOG_DEBUG,
                  "reconnect to %s failed: %s; next try in %.0f ms", bus->url, reason, delay * 1e3);
        pthread_mutex_lock(&bus->mu);
        until = fb_clock_mono() + delay;
        while (!bus->closed && !bus->lost && bus__wait(bus, until) != ETIMEDOUT)
            ;
        delay = delay * 2 > RECONNECT_DELAY_MAX ? RECONNECT_DELAY_MAX : delay * 2;
    }
    pthread_mutex_unlock(&bus->mu);
    return NULL;
}

enum fb_err bus_reconnect__start(fb_bus *bus, char *errbuf, size_t errlen)
{
    if (pthread_create(&bus->worker, NULL, reconnect_main, bus) != 0) {
        err__set(errbuf, errlen, "cannot start the reconnect thread: %s", strerror(errno));
        return FB_ERR_SYSTEM;
    }
    pthread_mutex_lock(&bus->mu);
    bus->have_worker = 1;
    pthread_mutex_unlock(&bus->mu);
    return FB_OK;
}

/* Tells the worker to end and waits for it. */
void bus_reconnect__stop(fb_bus *bus)
{
    if (!bus->have_worker)
        return;
    pthread_mutex_lock(&bus->mu);
    bus->closed = 1;
    pthread_cond_broadcast(&bus->cv);
    pthread_mutex_unlock(&bus->mu);
    pthread_join(bus->worker, NULL);
    bus->have_worker = 0;
}
