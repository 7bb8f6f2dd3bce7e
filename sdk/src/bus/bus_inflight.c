/*
 * bus_inflight.c - the bus's QoS 1 publishes in flight: kept until their
 * PUBACK, bounded, and re-sent in order after a reconnect.
 *
 * Paho persistence is off and every connect is a clean start, so Paho
 * forgets our unacknowledged publishes when a connection drops. The bus
 * therefore keeps every QoS 1 publish (struct pending) until its PUBACK, and
 * the reconnect re-sends them in the original order, before any newer
 * publish, so that the last value a retained topic gets is the last one the
 * caller published. The same list bounds how many are in flight at once
 * (MAX_UNACKED, or the broker's Receive Maximum) and is what fb_bus_flush
 * waits for.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bus_paho_internal.h"

static void pending_unlink_free(fb_bus *bus, struct pending *p)
{
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        bus->pend_head = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    else
        bus->pend_tail = p->prev;
    free(p); /* the topic and payload live in the same block (pending_new) */
}

/*
 * Marks p finished (acknowledged or given up) and frees it once Paho is done
 * with it. Waiters are woken only when what they wait for is there: a
 * flusher once nothing is unacknowledged, a publisher waiting for room once
 * half the window is free, so that a publisher held by the window wakes once
 * per half window rather than once per PUBACK.
 */
static void pending_finish(fb_bus *bus, struct pending *p)
{
    if (!p->acked) {
        p->acked = 1;
        if (bus->unacked > 0)
            bus->unacked--;
    }
    if (p->outstanding == 0)
        pending_unlink_free(bus, p);
    if ((bus->flush_waiters > 0 && bus->unacked == 0) ||
        (bus->room_waiters > 0 && bus->unacked <= bus->max_unacked / 2))
        pthread_cond_broadcast(&bus->ack_cv);
}

static struct pending *pending_new(fb_bus *bus, const char *topic, const void *payload, size_t len,
                                   int retained, unsigned expiry_s)
{
    size_t tlen = strlen(topic);
    /* One allocation: the entry, then the payload, then the topic. */
    struct pending *p = malloc(sizeof *p + len + tlen + 1);

    if (p == NULL)
        return NULL;
    memset(p, 0, sizeof *p);
    p->bus = bus;
    p->payload = p + 1;
    p->topic = (char *)p->payload + len;
    memcpy(p->topic, topic, tlen + 1);
    if (len > 0)
        memcpy(p->payload, payload, len);
    p->len = len;
    p->retained = retained ? 1 : 0;
    p->expiry_s = expiry_s;
    return p;
}

enum fb_err bus_inflight__publish(fb_bus *bus, const char *topic, const void *payload, size_t len,
                                  int retained, unsigned expiry_s)
{
    struct pending *p = NULL;
    enum fb_err err = FB_OK;
    double deadline;
    int send_now = 0;
    int rc;

    p = pending_new(bus, topic, payload, len, retained, expiry_s);
    if (p == NULL)
        return FB_ERR_NOMEM;
    pthread_mutex_lock(&bus->mu);
    deadline = fb_clock_mono() + PUBLISH_ROOM_TIMEOUT;
    bus->room_waiters++;
    while (bus->unacked >= bus->max_unacked && !bus->lost &&
           bus__wait_on(bus, &bus->ack_cv, deadline) != ETIMEDOUT)
        ;
    bus->room_waiters--;
    if (bus->lost) {
        err = FB_ERR_LOST;
    } else if (bus->unacked >= bus->max_unacked) {
        err = FB_ERR_TIMEOUT;
    } else {
        /* Appended in order; while reconnecting the worker sends it after the older ones. */
        p->prev = bus->pend_tail;
        if (bus->pend_tail != NULL)
            bus->pend_tail->next = p;
        else
            bus->pend_head = p;
        bus->pend_tail = p;
        bus->unacked++;
        if (bus->connected) {
            p->sent_on = bus->link_gen;
            p->outstanding = 1;
            send_now = 1;
        }
    }
    pthread_mutex_unlock(&bus->mu);
    if (err != FB_OK) {
        free(p);
        return err;
    }
    if (!send_now)
        return FB_OK;

    err = bus_paho__send(bus, p, &rc);
    if (err == FB_OK)
        return FB_OK;
    pthread_mutex_lock(&bus->mu);
    p->outstanding--;
    if (err == FB_ERR_LOST && bus->opt.reconnect_max_s != 0 && !bus->lost) {
        /* The connection just dropped: the reconnect sends it. */
        p->sent_on = 0;
        err = FB_OK;
    } else {
        pending_finish(bus, p);
    }
    pthread_mutex_unlock(&bus->mu);
    if (err != FB_OK)
        log__emit(bus->log, bus->log_ctx, FB_LOG_ERROR, "publish to %s failed (Paho %d)", topic,
                  rc);
    return err;
}

int bus_inflight__resend(fb_bus *bus, int make_usable)
{
    struct pending *p;
    unsigned long gen;
    enum fb_err err;
    int rc;

    pthread_mutex_lock(&bus->mu);
    for (;;) {
        if (!bus->link_up || bus->closed || bus->lost) {
            pthread_mutex_unlock(&bus->mu);
            return 0;
        }
        gen = bus->link_gen;
        for (p = bus->pend_head; p != NULL; p = p->next)
            if (!p->acked && p->sent_on != gen)
                break;
        if (p == NULL)
            break;
        p->sent_on = gen;
        p->outstanding++;
        pthread_mutex_unlock(&bus->mu);
        err = bus_paho__send(bus, p, &rc);
        pthread_mutex_lock(&bus->mu);
        if (err != FB_OK) {
            p->outstanding--;
            p->sent_on = 0;
            if (err != FB_ERR_LOST) {
                log__emit(bus->log, bus->log_ctx, FB_LOG_ERROR, "re-send to %s failed (Paho %d)",
                          p->topic, rc);
                bus->publish_failures++;
                pending_finish(bus, p);
            }
        }
    }
    if (make_usable) {
        bus->connected = 1;
        bus->reconnecting = 0;
        bus_queue__arm_locked(bus);
        pthread_cond_broadcast(&bus->cv);
        pthread_cond_broadcast(&bus->ack_cv); /* flushes wait for the end of a reconnect too */
    }
    pthread_mutex_unlock(&bus->mu);
    return 1;
}

void bus_inflight__on_acked(struct pending *p)
{
    fb_bus *bus = p->bus;

    pthread_mutex_lock(&bus->mu);
    p->outstanding--;
    pending_finish(bus, p);
    pthread_mutex_unlock(&bus->mu);
}

/*
 * A send failed. A PUBACK with an error reason (e.g. not authorized) is the
 * broker's answer: re-sending would get the same one. Anything else is the
 * connection's fault: with reconnection on, the message is sent again on the
 * next connection (or now, by the worker, if the connection is still up).
 */
void bus_inflight__on_failed(struct pending *p, int refused)
{
    fb_bus *bus = p->bus;

    pthread_mutex_lock(&bus->mu);
    p->outstanding--;
    if (p->acked) {
        pending_finish(bus, p);
    } else if (refused || bus->opt.reconnect_max_s == 0 || bus->lost) {
        bus->publish_failures++;
        pending_finish(bus, p);
    } else if (p->sent_on == bus->link_gen && bus->link_up) {
        p->sent_on = 0;
        bus->resend_wanted = 1;
        pthread_cond_broadcast(&bus->cv);
    }
    pthread_mutex_unlock(&bus->mu);
}

void bus_inflight__free(fb_bus *bus)
{
    while (bus->pend_head != NULL)
        pending_unlink_free(bus, bus->pend_head);
}

enum fb_err fb_bus_flush(fb_bus *bus, double timeout)
{
    double deadline = bus__deadline(timeout);
    enum fb_err err = FB_OK;
    int had_unacked;

    if (bus == NULL)
        return FB_ERR_INVALID;
    pthread_mutex_lock(&bus->mu);
    /*
     * A reconnect in between does not end the wait: the worker re-sends. With
     * something to confirm, the wait also lasts until that reconnect is done
     * (re-subscribed, everything re-sent), so that what the caller does next
     * (fb_bus_close, say) meets a settled connection.
     */
    had_unacked = bus->unacked > 0;
    bus->flush_waiters++;
    while ((bus->unacked > 0 || (had_unacked && bus->reconnecting)) && !bus->lost &&
           bus__wait_on(bus, &bus->ack_cv, deadline) != ETIMEDOUT)
        ;
    bus->flush_waiters--;
    if (bus->unacked > 0)
        err = bus->lost ? FB_ERR_LOST : FB_ERR_TIMEOUT;
    else if (bus->publish_failures > 0)
        err = FB_ERR_PUBLISH;
    bus->publish_failures = 0;
    pthread_mutex_unlock(&bus->mu);
    return err;
}
