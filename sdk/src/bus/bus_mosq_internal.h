/*
 * bus_mosq_internal.h - struct fb_bus of the libmosquitto backend (the
 * default, -DFLOWBUS_MQTT=mosquitto) and what its two files share:
 *   bus_mosq.c       the handle, the options, connect, subscribe, publish,
 *                    flush, close, and libmosquitto's callbacks
 *   bus_mosq_loop.c  driving libmosquitto from the caller's thread: one step
 *                    (read, write, keepalive, reconnect), waiting with a
 *                    deadline, the receive queue, fb_bus_next and fb_bus_fd
 *
 * The backend has no thread. libmosquitto runs only inside the bus's own
 * calls, on the caller's thread, and its callbacks run inside those calls;
 * the work of every message is done there, with no handover between threads.
 * A program that holds a bus and waits in its own code polls fb_bus_fd (a
 * task: fb_task_fd) and calls fb_bus_next when it is readable: its timerfd
 * falls due for the keepalive ping and the reconnect attempts. Each call
 * holds bus->mu, so a program whose threads share a bus (one at a time, as
 * flowbus.h asks) cannot corrupt it by mistake; uncontended it costs two
 * atomic operations per call. fb_bus_connected and fb_bus_reconnects read
 * their field atomically, without the lock.
 */
#ifndef FLOWBUS_BUS_MOSQ_INTERNAL_H
#define FLOWBUS_BUS_MOSQ_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "bus_internal.h"

struct mosquitto;
struct mqtt5__property;

struct fb_bus {
    /* Held by every fb_bus call for its whole length (waits included). */
    pthread_mutex_t mu;
    int have_mu;
    struct mosquitto *mosq;
    fb_log_fn log;
    void *log_ctx;
    char url[300]; /* as given, for messages; never holds credentials */
    struct bus_addr addr;

    struct bus_options opt; /* what every (re)connect needs */

    /*
     * fb_bus_fd: an epoll set holding the broker socket (readable, and
     * writable while libmosquitto has bytes to send), a timerfd at the next
     * deadline of the loop (keepalive, reconnect, CONNACK) and an eventfd
     * that is readable while messages are queued or the bus is lost. Made on
     * the first fb_bus_fd call; until then none of it costs a system call.
     */
    int fd_wanted;
    int epoll_fd;
    int timer_fd;
    int event_fd;
    int event_armed;   /* the eventfd holds a count */
    int sock_watched;  /* the socket in the epoll set, or -1 */
    uint32_t sock_mask; /* the events it is watched for */
    double timer_at;   /* what the timerfd is armed for; 0: disarmed */
    unsigned sock_gen;     /* incremented for each new connection's socket */
    unsigned watched_gen;  /* the generation of sock_watched */
    int notify;        /* just reconnected: the eventfd stays readable until fb_bus_next */
    int in_next;       /* inside fb_bus_next: it settles the eventfd on the way out */
    int held;          /* fb_bus_hold: queued messages do not make fb_bus_fd readable */
    double misc_at;    /* next mosquitto_loop_misc (keepalive) */

    /* The receive queue (bounded by RECV_QUEUE_MAX: back-pressure). */
    struct msg_node *head;
    struct msg_node *tail;
    size_t queued;

    /* The connection. */
    int started;        /* fb_bus_new succeeded: a loss from now on is handled by the loop */
    int sock_dead;      /* the current socket failed: no I/O on it until the next connect */
    unsigned long disconnects; /* bus_mosq__disconnected calls, to see whether one happened */
    int link_up;        /* CONNACK received on the current socket */
    int connected;      /* usable: link up and re-subscribed (read atomically) */
    unsigned reconnects; /* read atomically */
    int awaiting_connack;
    double connack_deadline;
    int connect_done;    /* the current attempt ended (CONNACK or failure) */
    int connect_ok;
    int connect_refused; /* the broker answered with a reason code: do not retry */
    char connect_reason[448];
    char tls_error[160];
    int lost;     /* final: no more messages will come (lost, refused, closed) */
    int closed;   /* fb_bus_close ran */
    int closing;  /* fb_bus_close's DISCONNECT is on its way */
    int reconnecting;
    double lost_at;  /* monotonic time the current outage began */
    double retry_at; /* next reconnect attempt */
    double retry_delay;
    int resub_mid;   /* the re-subscribe after a reconnect, until its SUBACK */

    /* Subscriptions, for re-subscribing after a reconnect. */
    char **filters;
    size_t n_filters;
    int sub_mid;  /* the subscribe fb_bus_subscribe waits for */
    int sub_done;
    int sub_ok;

    /* QoS 1 publishes: libmosquitto keeps them and re-sends them in order. */
    unsigned unacked;
    unsigned publish_failures;
    uint8_t *qos1_mids; /* a bit per message id: a QoS 1 publish awaiting its PUBACK */
    struct mqtt5__property *expiry_props; /* message expiry of expiry_value, reused */
    unsigned expiry_value;
};

/* ------------------------------------------------------------------------ */
/* bus_mosq.c                                                                */
/* ------------------------------------------------------------------------ */

/*
 * Starts one connect attempt (TCP connect and CONNECT; TLS continues in the
 * loop). The result comes to bus->connect_done/connect_ok within the
 * connect timeout. FB_OK when started, else FB_ERR_CONNECT with the reason
 * in bus->connect_reason.
 */
enum fb_err bus_mosq__connect_start(fb_bus *bus, int again);

/*
 * The connection ended with rc (a MOSQ_ERR_* or, from the broker, an MQTT
 * reason code >= 128): from the disconnect callback, or from the loop when
 * libmosquitto failed without calling it (a failed TLS handshake).
 */
void bus_mosq__disconnected(fb_bus *bus, int rc);

/* Sets the libmosquitto callbacks of bus->mosq. */
void bus_mosq__set_callbacks(fb_bus *bus);

/* ------------------------------------------------------------------------ */
/* bus_mosq_loop.c                                                           */
/* ------------------------------------------------------------------------ */

/*
 * Does whatever is due without waiting: reads what the socket holds (unless
 * the queue is at its bound and must_read is 0: a caller waiting for an
 * acknowledgement must read past it), writes what libmosquitto has queued, keepalive,
 * the CONNACK deadline, a reconnect attempt when its time has come; then
 * brings fb_bus_fd's descriptors up to date.
 */
void bus_mosq__step(fb_bus *bus, int must_read);

/*
 * Waits until the socket has something for us, or the monotonic deadline
 * (negative: no deadline; at most the next deadline of the loop itself), then
 * takes a step.
 */
void bus_mosq__wait(fb_bus *bus, double deadline, int must_read);

/* The connection dropped (from the disconnect callback): final, or reconnecting. */
void bus_mosq__link_down(fb_bus *bus, int rc);

/* The bus is gone for good: waiters end, fb_bus_fd becomes readable. */
void bus_mosq__mark_lost(fb_bus *bus);

/* The re-subscribe after a reconnect is done (or not needed): the bus is usable again. */
void bus_mosq__resynced(fb_bus *bus);

/* From the message callback: queues a copy. 0 when memory ran out (the message is dropped). */
int bus_mosq__queue(fb_bus *bus, const char *topic, const void *payload, size_t plen,
                    int retained);

/* Frees the queue and fb_bus_fd's descriptors (fb_bus_free). */
void bus_mosq__free_loop(fb_bus *bus);

/* Closes fb_bus_fd's descriptors. */
void bus_mosq__free_loop_fds(fb_bus *bus);

/* The monotonic deadline timeout seconds from now; negative (forever) for a negative timeout. */
double bus_mosq__deadline(double timeout);

#endif
