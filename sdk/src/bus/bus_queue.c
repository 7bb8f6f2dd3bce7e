/*
 * bus_queue.c - the bus's receive queue and its pollable descriptor.
 *
 * Received messages wait in a FIFO of struct msg_node (one allocation per
 * message: the node, the payload, the topic) until fb_bus_next takes them.
 * fb_bus_fd hands out the read end of a non-blocking self-pipe that is
 * readable while anything is queued or the connection is gone for good, so
 * that a caller can poll the bus beside its own descriptors.
 *
 * No back-pressure on this backend: Paho's receive thread is shared by every
 * client of the process and also carries the PUBACKs, so holding it in the
 * message callback while the queue is full stalled the same bus's publishes
 * (measured: fbbench-thru's pass-through at 50,000 messages stopped, and with
 * the wait lifted while PUBACKs were awaited it lost messages). The queue is
 * unbounded here, as before; the libmosquitto backend stops reading instead.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus_paho_internal.h"


/*
 * Makes the fd readable; a single byte is enough (level-triggered). Nothing
 * is written until someone asked for the fd (fb_bus_fd): a caller that only
 * uses fb_bus_next pays no write and read per message.
 */
void bus_queue__arm_locked(fb_bus *bus)
{
    char byte = 1;

    if (bus->pipe_armed || !bus->fd_wanted)
        return;
    /* The pipe is non-blocking and holds at most one byte: this cannot block. */
    if (write(bus->pipe_wr, &byte, 1) == 1)
        bus->pipe_armed = 1;
}

/* The pipe holds the one byte bus_queue__arm_locked wrote: one read empties it. */
static void drain_pipe(fb_bus *bus)
{
    char buf[16];
    ssize_t n;

    do
        n = read(bus->pipe_rd, buf, sizeof buf);
    while (n < 0 && errno == EINTR);
    bus->pipe_armed = 0;
}

int bus_queue__on_message(fb_bus *bus, const char *topic, size_t tlen, const void *payload,
                          size_t plen, int retained)
{
    struct msg_node *node;

    node = bus_msg__new(topic, tlen, payload, plen, retained);
    if (node == NULL)
        return 0;

    pthread_mutex_lock(&bus->mu);
    bus->queued++;
    if (bus->tail != NULL)
        bus->tail->next = node;
    else
        bus->head = node;
    bus->tail = node;
    bus_queue__arm_locked(bus);
    /* One message satisfies one waiter; nobody waiting: no wake-up at all. */
    if (bus->msg_waiters > 0)
        pthread_cond_signal(&bus->msg_cv);
    pthread_mutex_unlock(&bus->mu);
    return 1;
}

void bus_queue__free(fb_bus *bus)
{
    struct msg_node *node;

    while ((node = bus->head) != NULL) {
        bus->head = node->next;
        fb_msg_free(&node->msg);
    }
    bus->tail = NULL;
    bus->queued = 0;
}

enum fb_err fb_bus_next(fb_bus *bus, double timeout, fb_msg **out)
{
    double deadline = bus__deadline(timeout);
    struct msg_node *node;
    enum fb_err err = FB_OK;

    if (out != NULL)
        *out = NULL;
    if (bus == NULL || out == NULL)
        return FB_ERR_INVALID;
    pthread_mutex_lock(&bus->mu);
    while (bus->head == NULL && !bus->lost) {
        int rc;

        if (timeout == 0) {
            err = FB_ERR_TIMEOUT;
            break;
        }
        bus->msg_waiters++;
        rc = bus__wait_on(bus, &bus->msg_cv, deadline);
        bus->msg_waiters--;
        if (rc == ETIMEDOUT && bus->head == NULL) {
            err = FB_ERR_TIMEOUT;
            break;
        }
    }
    node = bus->head;
    if (node != NULL) {
        bus->head = node->next;
        if (bus->head == NULL)
            bus->tail = NULL;
        node->next = NULL;
        *out = &node->msg;
        err = FB_OK;
        bus->queued--;
        if (bus->room_rx_waiters > 0 && bus->queued < RECV_QUEUE_MAX)
            pthread_cond_signal(&bus->rx_cv);
    } else if (err == FB_OK) {
        err = FB_ERR_LOST;
    }
    /* Keep the fd readable while anything is queued or the connection is gone. */
    if (bus->head == NULL && !bus->lost && bus->pipe_armed)
        drain_pipe(bus);
    pthread_mutex_unlock(&bus->mu);
    return err;
}

int fb_bus_fd(fb_bus *bus)
{
    if (bus == NULL)
        return -1;
    pthread_mutex_lock(&bus->mu);
    if (!bus->fd_wanted) {
        /* From now on the pipe follows the queue; bring it up to date once. */
        bus->fd_wanted = 1;
        if (bus->head != NULL || bus->lost)
            bus_queue__arm_locked(bus);
    }
    pthread_mutex_unlock(&bus->mu);
    return bus->pipe_rd;
}

/* Paho's threads serve the connection: a caller that holds it leaves fb_bus_fd out of its poll. */
int fb_bus_hold(fb_bus *bus, int held)
{
    (void)bus;
    (void)held;
    return 0;
}

enum fb_err fb_bus_serve(fb_bus *bus)
{
    return bus == NULL ? FB_ERR_INVALID : FB_OK;
}
