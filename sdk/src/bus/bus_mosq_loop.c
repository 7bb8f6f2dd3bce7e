/*
 * bus_mosq_loop.c - drives libmosquitto from the caller's thread: one step
 * (read, write, keepalive, deadlines, reconnect), waiting for the socket with
 * a deadline, the receive queue with its back-pressure, fb_bus_next and
 * fb_bus_fd.
 *
 * Every fb_bus call that waits does so in bus_mosq__wait: one poll() on the
 * broker socket up to the earliest of its own deadline and the loop's (the
 * next keepalive check, the CONNACK deadline, the next reconnect attempt),
 * then a step. A caller with its own poll() loop polls fb_bus_fd instead: an
 * epoll set of the socket, a timerfd armed at the loop's next deadline and
 * an eventfd readable while messages are queued (or the bus is lost, or it
 * has just reconnected); when it is readable the caller calls
 * fb_bus_next(bus, 0, ...), which takes the step. The set is kept current
 * after every call: the socket is re-added after a reconnect, watched for
 * writing while libmosquitto has bytes to send, and not watched for reading
 * while the queue is at its bound.
 *
 * Back-pressure: once RECV_QUEUE_MAX messages are queued, the step stops
 * calling mosquitto_loop_read (it keeps writing, for PUBACKs and pings), so
 * the kernel's socket buffer fills, TCP stops the broker, and the broker
 * keeps the rest in its queue for us. This holds while the caller is idle
 * or takes messages (fb_bus_next, polling fb_bus_fd). A call that waits for
 * the broker's answer (flush, publish waiting for room, subscribe, close)
 * reads on past the bound: the answer comes on the same stream behind the
 * messages, and not reading would wait for it forever.
 */
#include <errno.h>
#include <math.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "bus_mosq_internal.h"

double bus_mosq__deadline(double timeout)
{
    return timeout < 0 ? -1.0 : fb_clock_mono() + timeout;
}

/* The socket the loop may use, or -1 (none, or it failed and awaits the next connect). */
static int live_socket(const fb_bus *bus)
{
    return bus->sock_dead ? -1 : mosquitto_socket(bus->mosq);
}

/* How often the loop calls mosquitto_loop_misc (keepalive) while idle. */
static double misc_interval(const fb_bus *bus)
{
    double s = bus->opt.keepalive / 5.0;

    return s < 0.25 ? 0.25 : s > 2.0 ? 2.0 : s;
}

/* The earliest deadline of the loop itself; 0: none. */
static double next_due(const fb_bus *bus)
{
    double due = 0;

    if (bus->lost)
        return 0;
    if (live_socket(bus) >= 0)
        due = bus->misc_at;
    if (bus->awaiting_connack && (due == 0 || bus->connack_deadline < due))
        due = bus->connack_deadline;
    if (bus->reconnecting && !bus->link_up && !bus->awaiting_connack &&
        (due == 0 || bus->retry_at < due))
        due = bus->retry_at;
    return due;
}

/* ------------------------------------------------------------------------ */
/* fb_bus_fd's descriptors                                                   */
/* ------------------------------------------------------------------------ */

static void set_event(fb_bus *bus, int on)
{
    uint64_t count = 1;

    if (!bus->fd_wanted || on == bus->event_armed)
        return;
    if (on) {
        if (write(bus->event_fd, &count, sizeof count) == (ssize_t)sizeof count)
            bus->event_armed = 1;
    } else if (read(bus->event_fd, &count, sizeof count) == (ssize_t)sizeof count ||
               errno == EAGAIN) {
        bus->event_armed = 0;
    }
}

/* Brings the epoll set, the timerfd and the eventfd up to date. */
static void sync_fds(fb_bus *bus)
{
    struct epoll_event ev;
    struct itimerspec its;
    int sock;
    uint32_t mask = 0;
    double due;

    if (!bus->fd_wanted)
        return;
    sock = live_socket(bus);
    if (sock >= 0) {
        if (bus->queued < RECV_QUEUE_MAX)
            mask |= EPOLLIN;
        if (mosquitto_want_write(bus->mosq))
            mask |= EPOLLOUT;
    }
    /*
     * A new connection may reuse the old socket's number (the kernel dropped
     * the old one from the set when it was closed), hence the generation.
     */
    if (sock != bus->sock_watched || bus->sock_gen != bus->watched_gen) {
        if (bus->sock_watched >= 0)
            epoll_ctl(bus->epoll_fd, EPOLL_CTL_DEL, bus->sock_watched, NULL);
        bus->sock_watched = -1;
        if (sock >= 0) {
            memset(&ev, 0, sizeof ev);
            ev.events = mask;
            ev.data.fd = sock;
            if (epoll_ctl(bus->epoll_fd, EPOLL_CTL_ADD, sock, &ev) == 0 ||
                (errno == EEXIST && epoll_ctl(bus->epoll_fd, EPOLL_CTL_MOD, sock, &ev) == 0)) {
                bus->sock_watched = sock;
                bus->sock_mask = mask;
                bus->watched_gen = bus->sock_gen;
            }
        }
    } else if (sock >= 0 && mask != bus->sock_mask) {
        memset(&ev, 0, sizeof ev);
        ev.events = mask;
        ev.data.fd = sock;
        if (epoll_ctl(bus->epoll_fd, EPOLL_CTL_MOD, sock, &ev) == 0)
            bus->sock_mask = mask;
    }
    due = next_due(bus);
    if (due != bus->timer_at) {
        memset(&its, 0, sizeof its);
        if (due > 0) {
            double whole = floor(due);

            its.it_value.tv_sec = (time_t)whole;
            its.it_value.tv_nsec = (long)((due - whole) * 1e9);
            if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
                its.it_value.tv_nsec = 1;
        }
        if (timerfd_settime(bus->timer_fd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
            bus->timer_at = due;
    }
    set_event(bus, (bus->head != NULL && !bus->held) || bus->lost || bus->notify);
}

static int fd_locked(fb_bus *bus)
{
    struct epoll_event ev;

    if (bus->fd_wanted)
        return bus->epoll_fd;
    bus->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    bus->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    bus->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (bus->epoll_fd < 0 || bus->timer_fd < 0 || bus->event_fd < 0)
        goto fail;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.fd = bus->timer_fd;
    if (epoll_ctl(bus->epoll_fd, EPOLL_CTL_ADD, bus->timer_fd, &ev) != 0)
        goto fail;
    ev.data.fd = bus->event_fd;
    if (epoll_ctl(bus->epoll_fd, EPOLL_CTL_ADD, bus->event_fd, &ev) != 0)
        goto fail;
    bus->fd_wanted = 1;
    bus->timer_at = 0;
    sync_fds(bus);
    return bus->epoll_fd;
fail:
    log__emit(bus->log, bus->log_ctx, FB_LOG_ERROR, "cannot make the bus's descriptor: %s",
              strerror(errno));
    bus_mosq__free_loop_fds(bus);
    return -1;
}

int fb_bus_fd(fb_bus *bus)
{
    int fd;

    if (bus == NULL)
        return -1;
    pthread_mutex_lock(&bus->mu);
    fd = fd_locked(bus);
    pthread_mutex_unlock(&bus->mu);
    return fd;
}

/* ------------------------------------------------------------------------ */
/* The connection's life                                                     */
/* ------------------------------------------------------------------------ */

void bus_mosq__mark_lost(fb_bus *bus)
{
    bus->link_up = 0;
    bus->awaiting_connack = 0;
    atomic_store((_Atomic int *)&bus->connected, 0);
    bus->reconnecting = 0;
    bus->lost = 1;
    sync_fds(bus);
}

void bus_mosq__resynced(fb_bus *bus)
{
    double began = bus->lost_at;

    bus->reconnecting = 0;
    bus->retry_delay = RECONNECT_DELAY_MIN;
    atomic_store((_Atomic int *)&bus->connected, 1);
    atomic_fetch_add((_Atomic unsigned *)&bus->reconnects, 1u);
    /* fb_bus_fd turns readable once, so that a poll() loop sees fb_bus_reconnects change. */
    bus->notify = 1;
    log__emit(bus->log, bus->log_ctx, FB_LOG_INFO, "reconnected to %s after %.3f s", bus->url,
              fb_clock_mono() - began);
}

/* Schedules the next reconnect attempt with the backoff. */
static void schedule_retry(fb_bus *bus, const char *why)
{
    double now = fb_clock_mono();

    bus->retry_at = now + bus->retry_delay;
    log__emit(bus->log, bus->log_ctx, FB_LOG_DEBUG, "reconnect to %s failed: %s; next try in %.0f ms",
              bus->url, why, bus->retry_delay * 1e3);
    bus->retry_delay =
        bus->retry_delay * 2 > RECONNECT_DELAY_MAX ? RECONNECT_DELAY_MAX : bus->retry_delay * 2;
}

void bus_mosq__link_down(fb_bus *bus, int rc)
{
    int was_up = bus->link_up;
    const char *cause = rc >= 128 ? mosquitto_reason_string(rc) : mosquitto_strerror(rc);

    bus->link_up = 0;
    bus->resub_mid = 0;
    atomic_store((_Atomic int *)&bus->connected, 0);
    /*
     * fb_bus_new reports a failed first connect itself. A first connect whose
     * CONNACK came (connect_ok) is a connection like any other, even when its
     * drop is read in the same step as the CONNACK (a broker killed just
     * after it answered): fb_bus_new then returns a bus that is reconnecting,
     * or lost. Ignored, that drop left a bus neither connected nor
     * reconnecting, and the task's first subscribe timed out.
     */
    if (bus->lost || (!bus->started && !bus->connect_ok))
        return;
    if (bus->closing || bus->closed) {
        bus_mosq__mark_lost(bus);
        return;
    }
    if (rc == MQTT_RC_SESSION_TAKEN_OVER) {
        /* Another client took our id over: fighting it with reconnects would not end. */
        log__emit(bus->log, bus->log_ctx, FB_LOG_WARN, "broker %s disconnected us: %s", bus->url,
                  cause);
        bus_mosq__mark_lost(bus);
        return;
    }
    if (bus->opt.reconnect_max_s == 0) {
        log__emit(bus->log, bus->log_ctx, FB_LOG_WARN, "connection to %s lost: %s", bus->url,
                  cause);
        bus_mosq__mark_lost(bus);
        return;
    }
    if (bus->reconnecting && bus->connect_refused) {
        log__emit(bus->log, bus->log_ctx, FB_LOG_ERROR, "cannot reconnect to %s: %s", bus->url,
                  bus->connect_reason);
        bus_mosq__mark_lost(bus);
        return;
    }
    if (!bus->reconnecting) {
        bus->reconnecting = 1;
        bus->lost_at = fb_clock_mono();
        bus->retry_delay = RECONNECT_DELAY_MIN;
        log__emit(bus->log, bus->log_ctx, FB_LOG_WARN, "connection to %s lost; reconnecting (%s)",
                  bus->url, was_up ? cause : "while connecting");
        bus->retry_at = bus->lost_at + bus->retry_delay;
        bus->retry_delay *= 2;
        return;
    }
    schedule_retry(bus, bus->connect_reason[0] != '\0' ? bus->connect_reason : cause);
}

/* A reconnect attempt, its time having come; unless giving up is due. */
static void try_reconnect(fb_bus *bus, double now)
{
    if ((bus->opt.reconnect_max_s > 0 && now - bus->lost_at > bus->opt.reconnect_max_s) ||
        (bus->opt.guardian_pid > 0 && (long)getppid() != bus->opt.guardian_pid)) {
        log__emit(bus->log, bus->log_ctx, FB_LOG_ERROR,
                  "gave up reconnecting to %s after %.1f s: %s", bus->url, now - bus->lost_at,
                  bus->connect_reason[0] != '\0' ? bus->connect_reason : "no answer");
        bus_mosq__mark_lost(bus);
        return;
    }
    if (bus_mosq__connect_start(bus, 1) != FB_OK)
        schedule_retry(bus, bus->connect_reason);
}

/* ------------------------------------------------------------------------ */
/* The step and the wait                                                     */
/* ------------------------------------------------------------------------ */

void bus_mosq__step(fb_bus *bus, int must_read)
{
    double now = fb_clock_mono();
    uint64_t expirations;
    unsigned long seen = bus->disconnects;
    int rc = MOSQ_ERR_SUCCESS;
    unsigned i;

    if (bus->fd_wanted && bus->timer_at > 0 && now >= bus->timer_at) {
        if (read(bus->timer_fd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
            expirations = 0;
        bus->timer_at = -1; /* disarmed by the read: sync_fds arms it again */
    }
    /*
     * Read until the socket is drained (libmosquitto leaves EAGAIN in errno),
     * or the queue holds its bound. Each call reads at least one packet.
     */
    for (i = 0; i < RECV_QUEUE_MAX && (must_read || bus->queued < RECV_QUEUE_MAX) &&
                live_socket(bus) >= 0;
         i++) {
        errno = 0;
        rc = mosquitto_loop_read(bus->mosq, 1);
        if (rc != MOSQ_ERR_SUCCESS)
            break;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            break;
    }
    if (rc == MOSQ_ERR_SUCCESS && live_socket(bus) >= 0 && mosquitto_want_write(bus->mosq))
        rc = mosquitto_loop_write(bus->mosq, 1);
    /*
     * Mostly libmosquitto closed the socket and told on_disconnect; a failed
     * TLS handshake it only logs (mosquitto_loop_read's want_connect path).
     */
    if (rc != MOSQ_ERR_SUCCESS && bus->disconnects == seen)
        bus_mosq__disconnected(bus, rc);
    if (live_socket(bus) >= 0 && now >= bus->misc_at) {
        mosquitto_loop_misc(bus->mosq);
        bus->misc_at = now + misc_interval(bus);
    }
    if (bus->awaiting_connack && now >= bus->connack_deadline && bus->started) {
        /* No CONNACK in time: this attempt failed; the next one closes its socket. */
        bus->awaiting_connack = 0;
        bus->connect_done = 1;
        snprintf(bus->connect_reason, sizeof bus->connect_reason, "no CONNACK within %.1f s",
                 bus->opt.connect_timeout);
        if (bus->reconnecting)
            schedule_retry(bus, bus->connect_reason);
    }
    if (bus->reconnecting && !bus->link_up && !bus->awaiting_connack && now >= bus->retry_at)
        try_reconnect(bus, now);
    sync_fds(bus);
}

void bus_mosq__wait(fb_bus *bus, double deadline, int must_read)
{
    struct pollfd pfd;
    double now = fb_clock_mono();
    double wake = deadline;
    double due = next_due(bus);
    double ms;
    int sock = live_socket(bus);
    nfds_t n = 0;

    if (due > 0 && (wake < 0 || due < wake))
        wake = due;
    if (wake < 0)
        wake = now + 1.0;
    ms = ceil((wake - now) * 1e3);
    if (ms < 0)
        ms = 0;
    if (sock >= 0) {
        pfd.fd = sock;
        pfd.events = 0;
        pfd.revents = 0;
        if (must_read || bus->queued < RECV_QUEUE_MAX)
            pfd.events |= POLLIN;
        if (mosquitto_want_write(bus->mosq))
            pfd.events |= POLLOUT;
        n = 1;
    }
    if (poll(n > 0 ? &pfd : NULL, n, (int)ms) < 0 && errno != EINTR)
        ms = 0;
    bus_mosq__step(bus, must_read);
}

/* ------------------------------------------------------------------------ */
/* The receive queue                                                         */
/* ------------------------------------------------------------------------ */

int bus_mosq__queue(fb_bus *bus, const char *topic, const void *payload, size_t plen, int retained)
{
    struct msg_node *node = bus_msg__new(topic, strlen(topic), payload, plen, retained);

    if (node == NULL)
        return 0;
    if (bus->tail != NULL)
        bus->tail->next = node;
    else
        bus->head = node;
    bus->tail = node;
    bus->queued++;
    /* Inside fb_bus_next the descriptor is settled once on the way out. */
    if (!bus->in_next && !bus->held)
        set_event(bus, 1);
    return 1;
}

static enum fb_err next_locked(fb_bus *bus, double timeout, fb_msg **out)
{
    double deadline = bus_mosq__deadline(timeout);
    struct msg_node *node;
    enum fb_err err;

    bus->in_next = 1;
    for (;;) {
        if (bus->head == NULL && !bus->lost)
            bus_mosq__step(bus, 0);
        node = bus->head;
        if (node != NULL) {
            bus->head = node->next;
            if (bus->head == NULL)
                bus->tail = NULL;
            node->next = NULL;
            bus->queued--;
            *out = &node->msg;
            err = FB_OK;
            break;
        }
        if (bus->lost) {
            err = FB_ERR_LOST;
            break;
        }
        if (timeout == 0 || (deadline >= 0 && fb_clock_mono() >= deadline)) {
            err = FB_ERR_TIMEOUT;
            break;
        }
        bus_mosq__wait(bus, deadline, 0);
    }
    bus->in_next = 0;
    if (bus->head == NULL)
        bus->notify = 0;
    sync_fds(bus);
    return err;
}

enum fb_err fb_bus_next(fb_bus *bus, double timeout, fb_msg **out)
{
    enum fb_err err;

    if (out != NULL)
        *out = NULL;
    if (bus == NULL || out == NULL)
        return FB_ERR_INVALID;
    pthread_mutex_lock(&bus->mu);
    err = next_locked(bus, timeout, out);
    pthread_mutex_unlock(&bus->mu);
    return err;
}

int fb_bus_hold(fb_bus *bus, int held)
{
    if (bus == NULL)
        return 0;
    pthread_mutex_lock(&bus->mu);
    bus->held = held;
    sync_fds(bus);
    pthread_mutex_unlock(&bus->mu);
    return 1;
}

/*
 * While held the step still reads, into the bus's own queue up to its bound
 * (then TCP and the broker hold the rest): a PINGRESP comes behind the
 * messages on the same stream, and libmosquitto closes a connection whose
 * ping goes unanswered for a keepalive. A hold that outlasts a keepalive
 * with the bus's queue full therefore ends in a reconnect.
 */
enum fb_err fb_bus_serve(fb_bus *bus)
{
    enum fb_err err;

    if (bus == NULL)
        return FB_ERR_INVALID;
    pthread_mutex_lock(&bus->mu);
    if (!bus->lost)
        bus_mosq__step(bus, 0);
    bus->notify = 0;
    sync_fds(bus);
    err = bus->lost ? FB_ERR_LOST : FB_OK;
    pthread_mutex_unlock(&bus->mu);
    return err;
}

void bus_mosq__free_loop_fds(fb_bus *bus)
{
    if (bus->epoll_fd >= 0)
        close(bus->epoll_fd);
    if (bus->timer_fd >= 0)
        close(bus->timer_fd);
    if (bus->event_fd >= 0)
        close(bus->event_fd);
    bus->epoll_fd = bus->timer_fd = bus->event_fd = -1;
    bus->fd_wanted = 0;
}

void bus_mosq__free_loop(fb_bus *bus)
{
    struct msg_node *node;

    while ((node = bus->head) != NULL) {
        bus->head = node->next;
        fb_msg_free(&node->msg);
    }
    bus->tail = NULL;
    bus->queued = 0;
    bus_mosq__free_loop_fds(bus);
}
