/*
 * bus_paho_internal.h - struct fb_bus of the Paho backend (-DFLOWBUS_MQTT=paho)
 * and what its files share.
 *
 * On this backend fb_bus (flowbus.h "fb_bus") is implemented by one file per
 * concern; the bus's own bookkeeping knows nothing of Paho:
 *   bus.c           the handle: create, connect, publish, close, free
 *   bus_queue.c     the receive queue and its pollable fd (fb_bus_next, fb_bus_fd)
 *   bus_inflight.c  the QoS 1 publishes awaiting their PUBACK, re-sent in order
 *   bus_subscribe.c the filters subscribed to, re-subscribed after a reconnect
 *   bus_reconnect.c the reconnect thread and its policy (backoff, giving up)
 * and Paho is reached only through two files:
 *   paho_load.c     loading Paho with dlopen (paho_load.h)
 *   bus_paho.c      every Paho call and callback (bus_paho__* below)
 * bus_internal.h holds what both backends share. Only these files include
 * this header.
 *
 * Locking (bus.c says why): the callbacks only copy into the bus under
 * bus->mu and signal; every wait happens on the caller's thread or the
 * reconnect thread, with a deadline; Paho is never called with bus->mu held.
 * Functions below whose name ends in _locked, or that say so, are called with
 * bus->mu held; all others take it themselves.
 */
#ifndef FLOWBUS_BUS_PAHO_INTERNAL_H
#define FLOWBUS_BUS_PAHO_INTERNAL_H

#include <pthread.h>
#include <stddef.h>

#include "bus_internal.h"

/* Completed subscribe tokens remembered for their waiters (bus_subscribe.c). */
#define SUB_RING 16

/* The Paho functions of one variant (paho_load.h); only bus_paho.c looks inside. */
struct paho;

/*
 * A QoS 1 publish the broker has not acknowledged yet. It is the context of
 * every Paho send of it, so it lives until it is acknowledged (or given up)
 * and no Paho callback for it is outstanding; destroy frees what remains
 * after Paho is gone.
 */
struct pending {
    struct pending *prev;
    struct pending *next;
    fb_bus *bus;
    char *topic;
    void *payload;
    size_t len;
    int retained;
    unsigned expiry_s;
    int acked;             /* acknowledged, or given up on: no longer counted */
    int outstanding;       /* Paho sends whose callback has not come yet */
    unsigned long sent_on; /* link generation of its last send; 0: must be (re)sent */
};

struct fb_bus {
    const struct paho *paho; /* the Paho variant of this bus */
    void *client;            /* its MQTTAsync handle (a void * in MQTTAsync.h) */
    int have_client;
    fb_log_fn log;
    void *log_ctx;
    char url[300]; /* as given, for messages; never holds credentials */
    struct bus_addr addr; /* host, port, TLS */

    struct bus_options opt; /* what every (re)connect needs */

    pthread_mutex_t mu;
    /*
     * Three condition variables, so that each event wakes only the threads
     * that wait for it: with one, every PUBACK woke a consumer and every
     * message a publisher waiting for room; and while acknowledgements were
     * signalled on cv, the reconnect worker sleeping on it woke for every
     * PUBACK (7.8k context switches in 20k events of the throughput
     * benchmark's relay).
     */
    pthread_cond_t cv;     /* state changes: connect, SUBACK, loss, close, re-send */
    pthread_cond_t msg_cv; /* a message was queued, or the bus is lost */
    pthread_cond_t ack_cv; /* room for a publish, or all acknowledged (pending_finish) */
    pthread_cond_t rx_cv;  /* broadcast on close; no waiter: this backend has no back-pressure (bus_queue.c) */
    int pipe_rd;
    int pipe_wr;
    pthread_t worker;
    int have_worker;

    /* Everything below is guarded by mu. */
    int pipe_armed;       /* one byte sits in the pipe */
    int fd_wanted;        /* fb_bus_fd was called: keep the pipe's level; else never write it */
    unsigned msg_waiters; /* threads waiting in fb_bus_next */
    struct msg_node *head;
    struct msg_node *tail;
    size_t queued;          /* messages in the queue (unbounded on this backend: bus_queue.c) */
    unsigned room_rx_waiters; /* always 0 here (see rx_cv) */
    int link_up;            /* Paho has a connection (maybe still re-syncing) */
    int connected;          /* usable: connected and re-synced */
    int reconnecting;       /* the worker is trying to get the connection back */
    int lost;               /* final: no more messages will come (lost, refused, closed) */
    int closed;             /* fb_bus_close ran */
    double lost_at;         /* monotonic time the current outage began */
    unsigned long link_gen; /* incremented on every successful connect */
    unsigned reconnects;
    int resend_wanted; /* a send failed while connected: the worker re-sends */
    int connect_done;
    int connect_ok;
    int connect_refused; /* the broker answered with a reason code: do not retry */
    char connect_reason[256];
    char tls_error[160];
    struct {
        int token;
        int ok;
    } sub_ring[SUB_RING];
    unsigned sub_next;
    char **filters; /* every filter subscribed so far, for re-subscribing */
    size_t n_filters;
    struct pending *pend_head;
    struct pending *pend_tail;
    unsigned unacked;       /* pending entries not acked */
    unsigned max_unacked;   /* MAX_UNACKED or the broker's Receive Maximum */
    unsigned room_waiters;  /* publishers waiting for unacked to drop */
    unsigned flush_waiters; /* fb_bus_flush callers waiting for unacked to reach 0 */
    unsigned publish_failures;
    int disc_done;
};

/* ------------------------------------------------------------------------ */
/* bus.c                                                                     */
/* ------------------------------------------------------------------------ */

/*
 * With bus->mu held: waits on cv until the monotonic deadline (negative:
 * forever). Returns 0 when woken, ETIMEDOUT when the deadline passed.
 */
int bus__wait_on(fb_bus *bus, pthread_cond_t *cv, double deadline);

/* With bus->mu held: waits for a state change (bus->cv); see bus__wait_on. */
int bus__wait(fb_bus *bus, double deadline);

/* The monotonic deadline timeout seconds from now; negative (forever) for a negative timeout. */
double bus__deadline(double timeout);

/* With bus->mu held: marks the connection gone for good: waiters wake, the fd becomes readable. */
void bus__mark_lost_locked(fb_bus *bus);

/*
 * One connect attempt, the same every time (bus_paho__connect), waiting for
 * the CONNACK up to the connect timeout. Returns FB_OK, FB_ERR_CONNECT (the
 * reason in bus->connect_reason), FB_ERR_TIMEOUT or FB_ERR_INVALID.
 */
enum fb_err bus__connect_once(fb_bus *bus);

/*
 * From the transport: the connect succeeded; the broker allows max_unacked
 * QoS 1 publishes in flight (MAX_UNACKED if it said nothing lower).
 */
void bus__on_connected(fb_bus *bus, unsigned max_unacked);

/* From the transport: the connect failed; refused: the broker answered with a reason code. */
void bus__on_connect_failed(fb_bus *bus, int refused, const char *reason);

/* From the transport: the disconnect that fb_bus_close started is done (or failed). */
void bus__on_disconnected(fb_bus *bus);

/* ------------------------------------------------------------------------ */
/* bus_queue.c                                                               */
/* ------------------------------------------------------------------------ */

/* With bus->mu held: makes the fd readable (once someone asked for it, fb_bus_fd). */
void bus_queue__arm_locked(fb_bus *bus);

/*
 * From the transport: a message arrived. Copies it into the queue. Returns 1,
 * or 0 when memory ran out (the transport keeps the message and offers it
 * again later).
 */
int bus_queue__on_message(fb_bus *bus, const char *topic, size_t tlen, const void *payload,
                          size_t plen, int retained);

/* Frees every queued message (destroy, once no callback can run). */
void bus_queue__free(fb_bus *bus);

/* ------------------------------------------------------------------------ */
/* bus_inflight.c                                                            */
/* ------------------------------------------------------------------------ */

/* A QoS 1 publish (fb_bus_publish with qos 1, its arguments checked). */
enum fb_err bus_inflight__publish(fb_bus *bus, const char *topic, const void *payload, size_t len,
                                  int retained, unsigned expiry_s);

/*
 * Sends, oldest first, every pending publish not yet sent on the current
 * connection. With make_usable, the bus becomes usable again once none is
 * left, under the same lock, so a caller's newer publish cannot overtake an
 * older one. Returns 0 if the connection dropped meanwhile.
 */
int bus_inflight__resend(fb_bus *bus, int make_usable);

/* From the transport: the broker acknowledged p. */
void bus_inflight__on_acked(struct pending *p);

/* From the transport: a send of p failed; refused: the broker answered with an error reason. */
void bus_inflight__on_failed(struct pending *p, int refused);

/* Frees every pending publish (destroy, once no callback can run). */
void bus_inflight__free(fb_bus *bus);

/* ------------------------------------------------------------------------ */
/* bus_subscribe.c                                                           */
/* ------------------------------------------------------------------------ */

/*
 * After a reconnect: subscribes every remembered filter again and waits for
 * the SUBACK up to the monotonic deadline. Returns FB_ERR_LOST if the
 * connection dropped meanwhile, else FB_OK (a missing or refused SUBACK is
 * logged: the re-sends that follow matter more).
 */
enum fb_err bus_subscribe__again(fb_bus *bus, double deadline);

/* From the transport: the subscribe with token completed; ok: every filter was granted. */
void bus_subscribe__on_done(fb_bus *bus, int token, int ok);

/* Frees the remembered filters (destroy). */
void bus_subscribe__free(fb_bus *bus);

/* ------------------------------------------------------------------------ */
/* bus_reconnect.c                                                           */
/* ------------------------------------------------------------------------ */

/* Starts the reconnect thread (opts->reconnect_max_s != 0). FB_OK or FB_ERR_SYSTEM. */
enum fb_err bus_reconnect__start(fb_bus *bus, char *errbuf, size_t errlen);

/* Tells the reconnect thread to end and waits for it. Nothing if there is none. */
void bus_reconnect__stop(fb_bus *bus);

/*
 * With bus->mu held: the connection dropped. Without reconnection (or once
 * closed) that is final; otherwise the worker is told to get it back.
 */
void bus_reconnect__link_down_locked(fb_bus *bus);

/* From the transport: the connection was lost (cause may be NULL). */
void bus_reconnect__on_lost(fb_bus *bus, const char *cause);

/*
 * From the transport: the broker sent an MQTT v5 DISCONNECT with reason;
 * taken_over: another client took our id over.
 */
void bus_reconnect__on_broker_disconnect(fb_bus *bus, int taken_over, const char *reason);

/* ------------------------------------------------------------------------ */
/* bus_paho.c: the transport                                                 */
/* ------------------------------------------------------------------------ */

/*
 * Loads the Paho variant for bus->tls and creates the client for paho_url
 * with client_id, its callbacks set. FB_OK, FB_ERR_SYSTEM (Paho could not be
 * loaded) or FB_ERR_INVALID, with the reason in errbuf.
 */
enum fb_err bus_paho__create(fb_bus *bus, const char *paho_url, const char *client_id, char *errbuf,
                             size_t errlen);

/* Destroys the client; afterwards no callback of it can run. Nothing if there is none. */
void bus_paho__destroy(fb_bus *bus);

/*
 * Starts a connect: clean start, the Last Will (so it is armed again after a
 * reconnect), TLS with verification. The result comes to bus__on_connected or
 * bus__on_connect_failed. FB_OK, else FB_ERR_INVALID or FB_ERR_CONNECT with
 * the reason in bus->connect_reason.
 */
enum fb_err bus_paho__connect(fb_bus *bus);

/*
 * Starts a subscribe of n filters at QoS 1. Returns FB_OK with the token in
 * *token (the result comes to bus_subscribe__on_done), FB_ERR_LOST when Paho
 * is disconnected, FB_ERR_NOMEM, else FB_ERR_SUBSCRIBE.
 */
enum fb_err bus_paho__subscribe(fb_bus *bus, char *const *filters, size_t n, int *token);

/*
 * Hands one pending publish to Paho (the result comes to
 * bus_inflight__on_acked or bus_inflight__on_failed). Called without the
 * mutex. FB_OK, FB_ERR_LOST (disconnected) or FB_ERR_PUBLISH; *code gets
 * Paho's code, for messages.
 */
enum fb_err bus_paho__send(fb_bus *bus, struct pending *p, int *code);

/* A QoS 0 publish: FB_OK, FB_ERR_LOST (disconnected), FB_ERR_NOMEM or FB_ERR_PUBLISH; see *code. */
enum fb_err bus_paho__send_qos0(fb_bus *bus, const char *topic, const void *payload, size_t len,
                                int retained, unsigned expiry_s, int *code);

/* Starts a clean disconnect (the Will is dropped); the end comes to bus__on_disconnected. */
enum fb_err bus_paho__disconnect(fb_bus *bus);

#endif
