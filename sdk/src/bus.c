/*
 * bus.c - fb_bus, a small MQTT v5 client on Eclipse Paho MQTTAsync.
 *
 * Paho runs every callback on its own receive thread, which all clients of the
 * process share. The callbacks here therefore only copy data into the bus
 * under its mutex, signal its condition variable and, for received messages,
 * make the self-pipe readable; every wait happens on the caller's thread (or
 * the bus's reconnect thread) with a deadline. Paho is never called while the
 * bus mutex is held: Paho calls us back with its own mutex held, so taking the
 * two in the other order could deadlock.
 *
 * Paho has no TCP_NODELAY option. The SDK's connect (paho_wake.c) sets it on
 * Paho's sockets before CONNECT; where that is off, after each CONNACK the
 * socket whose peer is the broker is found among the process's descriptors
 * and the option is set there (see set_nodelay).
 *
 * Reconnection (opts->reconnect_max_s != 0) is done here rather than with
 * Paho's automaticReconnect, whose retry interval has a granularity of whole
 * seconds and which cannot re-subscribe or re-send anything for us: Paho
 * persistence is off and every connect is a clean start, so the broker
 * forgets our subscriptions and Paho forgets our unacknowledged publishes. The
 * bus therefore keeps
 *
 *  - every filter it subscribed to, re-subscribed after each reconnect, and
 *  - every QoS 1 publish until its PUBACK (struct pending), re-sent in the
 *    original order after each reconnect, before any newer publish.
 *
 * A thread of the bus (reconnect_main) waits for the loss, retries with a
 * backoff of 50 ms doubling to 2 s, and on success re-subscribes, re-sends and
 * only then lets publishes through again, so that the last value a retained
 * topic gets is the last one the caller published.
 *
 * Paho is not linked but loaded with dlopen by the first bus of each kind
 * (paho_load): libpaho-mqtt3a for tcp:// and mqtt://, the SSL variant
 * libpaho-mqtt3as only for mqtts:// and ssl://. The SSL variant maps libssl
 * and libcrypto into the process (3.7 MB RSS, ~1.5 ms of loading at every
 * start) although tasks on the private broker never use TLS; measured in
 * docs/performance.md. Each variant is loaded RTLD_LOCAL, so the two can
 * coexist in one process with their own threads; a program that links Paho
 * itself (bench/rtt.c) has it in the global scope, and then that copy is used
 * for every bus, so that no second copy runs beside it.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>

#include "internal.h"

/*
 * At most this many QoS 1 publishes wait for their PUBACK at once. Measured:
 * ~36k msg/s bounded like this, 5-7k msg/s unbounded. The broker's Receive
 * Maximum (CONNACK) lowers it: mosquitto announces 20 by default, Paho then
 * holds further publishes back and only retries them when its send thread's
 * one-second wait times out, so exceeding it costs a second per stall.
 */
#define MAX_UNACKED 100u
/*
 * Paho refuses sends (-12) beyond maxBufferedMessages queued commands, even
 * while connected. QoS 1 is bounded above; this leaves room for QoS 0 bursts.
 */
#define MAX_BUFFERED 10000
/* How long fb_bus_publish may block waiting for the unacknowledged count to drop. */
#define PUBLISH_ROOM_TIMEOUT 30.0
#define DEFAULT_PORT "1883"
#define DEFAULT_TLS_PORT "8883"
/* Reconnect backoff: the first retry after this, doubling up to the maximum. */
#define RECONNECT_DELAY_MIN 0.05
#define RECONNECT_DELAY_MAX 2.0
/* Completed subscribe tokens remembered for their waiters (see sub_done). */
#define SUB_RING 16

/*
 * The Paho functions the bus calls, resolved once per variant by paho_load.
 * __typeof__ keeps the exact prototypes of MQTTAsync.h.
 */
struct paho {
    __typeof__(&MQTTAsync_createWithOptions) create;
    __typeof__(&MQTTAsync_setCallbacks) set_callbacks;
    __typeof__(&MQTTAsync_setDisconnected) set_disconnected;
    __typeof__(&MQTTAsync_connect) connect;
    __typeof__(&MQTTAsync_disconnect) disconnect;
    __typeof__(&MQTTAsync_destroy) destroy;
    __typeof__(&MQTTAsync_sendMessage) send;
    __typeof__(&MQTTAsync_subscribeMany) subscribe_many;
    __typeof__(&MQTTAsync_freeMessage) free_message;
    __typeof__(&MQTTAsync_free) free;
    __typeof__(&MQTTProperties_hasProperty) props_has;
    __typeof__(&MQTTProperties_getNumericValue) props_number;
    __typeof__(&MQTTProperties_add) props_add;
    __typeof__(&MQTTProperties_free) props_free;
    __typeof__(&MQTTReasonCode_toString) reason_text;
};

enum { PAHO_PLAIN, PAHO_TLS };
static const char *const paho_sonames[2] = {"libpaho-mqtt3a.so.1", "libpaho-mqtt3as.so.1"};
static struct paho paho_api[2];
static int paho_ready[2];
static char paho_error[2][256];
static pthread_once_t paho_once[2] = {PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT};

static void paho_load(int which)
{
    void *lib;
    const char *why;
    struct paho *api = &paho_api[which];

    /* Paho already in the global scope (the program links it): use that copy. */
    if (dlsym(RTLD_DEFAULT, "MQTTAsync_createWithOptions") != NULL)
        lib = dlopen(NULL, RTLD_NOW);
    else
        lib = dlopen(paho_sonames[which], RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        why = dlerror();
        snprintf(paho_error[which], sizeof paho_error[which], "cannot load %s: %s",
                 paho_sonames[which], why != NULL ? why : "unknown error");
        return;
    }
    /* POSIX leaves object-to-function pointer conversion to dlsym's users; glibc makes it work. */
#define RESOLVE(field, symbol)                                                                     \
    do {                                                                                           \
        void *sym = dlsym(lib, symbol);                                                            \
        if (sym == NULL) {                                                                         \
            snprintf(paho_error[which], sizeof paho_error[which], "%s lacks %s",                   \
                     paho_sonames[which], symbol);                                                 \
            return;                                                                                \
        }                                                                                          \
        memcpy(&api->field, &sym, sizeof sym);                                                     \
    } while (0)
    RESOLVE(create, "MQTTAsync_createWithOptions");
    RESOLVE(set_callbacks, "MQTTAsync_setCallbacks");
    RESOLVE(set_disconnected, "MQTTAsync_setDisconnected");
    RESOLVE(connect, "MQTTAsync_connect");
    RESOLVE(disconnect, "MQTTAsync_disconnect");
    RESOLVE(destroy, "MQTTAsync_destroy");
    RESOLVE(send, "MQTTAsync_sendMessage");
    RESOLVE(subscribe_many, "MQTTAsync_subscribeMany");
    RESOLVE(free_message, "MQTTAsync_freeMessage");
    RESOLVE(free, "MQTTAsync_free");
    RESOLVE(props_has, "MQTTProperties_hasProperty");
    RESOLVE(props_number, "MQTTProperties_getNumericValue");
    RESOLVE(props_add, "MQTTProperties_add");
    RESOLVE(props_free, "MQTTProperties_free");
    RESOLVE(reason_text, "MQTTReasonCode_toString");
#undef RESOLVE
    paho_ready[which] = 1;
}

static void paho_load_plain(void)
{
    paho_load(PAHO_PLAIN);
}

static void paho_load_tls(void)
{
    paho_load(PAHO_TLS);
}

/* The Paho variant for a bus (loaded on first use), or NULL with the reason in errbuf. */
static const struct paho *paho_get(int tls, char *errbuf, size_t errlen)
{
    int which = tls ? PAHO_TLS : PAHO_PLAIN;

    pthread_once(&paho_once[which], tls ? paho_load_tls : paho_load_plain);
    if (!paho_ready[which]) {
        err__set(errbuf, errlen, "MQTT library unavailable: %s", paho_error[which]);
        return NULL;
    }
    return &paho_api[which];
}

/*
 * A queued message. The fb_msg comes first so that the pointer handed to the
 * caller is also the node's address, and fb_msg_free can free the node.
 */
struct msg_node {
    fb_msg msg;
    struct msg_node *next;
};

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
    int acked;            /* acknowledged, or given up on: no longer counted */
    int outstanding;      /* Paho sends whose callback has not come yet */
    unsigned long sent_on; /* link generation of its last send; 0: must be (re)sent */
};

struct fb_bus {
    const struct paho *paho; /* the Paho variant of this bus */
    MQTTAsync client;
    int have_client;
    fb_log_fn log;
    void *log_ctx;
    char url[300]; /* as given, for messages; never holds credentials */
    char host[256];
    char port[8];
    int tls;

    /* What every (re)connect needs; copied from the options. */
    char *username;
    char *password;
    char *will_topic;
    char *will_payload;
    int will_retained;
    int keepalive;
    double connect_timeout;
    char *ca_file;
    char *cert_file;
    char *key_file;
    double reconnect_max_s; /* 0: none; < 0: forever */
    long guardian_pid;      /* > 0: stop reconnecting once our parent is not this pid */

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
    int pipe_rd;
    int pipe_wr;
    pthread_t worker;
    int have_worker;

    /* Everything below is guarded by mu. */
    int pipe_armed; /* one byte sits in the pipe */
    int fd_wanted;  /* fb_bus_fd was called: keep the pipe's level; else never write it */
    unsigned msg_waiters; /* threads waiting in fb_bus_next */
    struct msg_node *head;
    struct msg_node *tail;
    int link_up;      /* Paho has a connection (maybe still re-syncing) */
    int connected;    /* usable: connected and re-synced */
    int reconnecting; /* the worker is trying to get the connection back */
    int lost;         /* final: no more messages will come (lost, refused, closed) */
    int closed;       /* fb_bus_close ran */
    double lost_at;   /* monotonic time the current outage began */
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
    unsigned unacked; /* pending entries not acked */
    unsigned max_unacked; /* MAX_UNACKED or the broker's Receive Maximum */
    unsigned room_waiters;  /* publishers waiting for unacked to drop */
    unsigned flush_waiters; /* fb_bus_flush callers waiting for unacked to reach 0 */
    unsigned publish_failures;
    int disc_done;
};

/* ------------------------------------------------------------------------ */
/* Helpers that run with bus->mu held                                       */
/* ------------------------------------------------------------------------ */

/*
 * Makes the fd readable; a single byte is enough (level-triggered). Nothing
 * is written until someone asked for the fd (fb_bus_fd): a caller that only
 * uses fb_bus_next pays no write and read per message.
 */
static void arm_pipe(fb_bus *bus)
{
    char byte = 1;

    if (bus->pipe_armed || !bus->fd_wanted)
        return;
    /* The pipe is non-blocking and holds at most one byte: this cannot block. */
    if (write(bus->pipe_wr, &byte, 1) == 1)
        bus->pipe_armed = 1;
}

/* The pipe holds the one byte arm_pipe wrote: one read empties it. */
static void drain_pipe(fb_bus *bus)
{
    char buf[16];
    ssize_t n;

    do
        n = read(bus->pipe_rd, buf, sizeof buf);
    while (n < 0 && errno == EINTR);
    bus->pipe_armed = 0;
}

/*
 * Waits on the condition variable until the monotonic deadline (negative:
 * forever). Returns 0 when woken, ETIMEDOUT when the deadline passed.
 */
static int wait_on(fb_bus *bus, pthread_cond_t *cv, double deadline)
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

/* Waits for a state change (bus->cv); see wait_on. */
static int wait_until(fb_bus *bus, double deadline)
{
    return wait_on(bus, &bus->cv, deadline);
}

static double deadline_after(double timeout)
{
    return timeout < 0 ? -1.0 : fb_clock_mono() + timeout;
}

/* Marks the connection gone for good: waiters wake, the fd becomes readable. */
static void mark_lost(fb_bus *bus)
{
    bus->link_up = 0;
    bus->connected = 0;
    bus->reconnecting = 0;
    bus->lost = 1;
    arm_pipe(bus);
    pthread_cond_broadcast(&bus->cv);
    pthread_cond_broadcast(&bus->msg_cv);
    pthread_cond_broadcast(&bus->ack_cv);
}

/*
 * The connection dropped. Without reconnection (or once closed) that is
 * final; otherwise the worker is told to get it back.
 */
static void link_down(fb_bus *bus)
{
    if (bus->lost)
        return;
    if (bus->reconnect_max_s == 0 || bus->closed || !bus->have_worker) {
        mark_lost(bus);
        return;
    }
    if (!bus->reconnecting)
        bus->lost_at = fb_clock_mono();
    bus->link_up = 0;
    bus->connected = 0;
    bus->reconnecting = 1;
    pthread_cond_broadcast(&bus->cv);
}

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

/* 1 if the subscribe with this token completed; *ok tells how. */
static int sub_done(const fb_bus *bus, int token, int *ok)
{
    unsigned i;

    for (i = 0; i < SUB_RING; i++) {
        if (bus->sub_ring[i].token == token && token != 0) {
            *ok = bus->sub_ring[i].ok;
            return 1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Paho callbacks: copy, signal, return. Never block here.                  */
/* ------------------------------------------------------------------------ */

static void on_connect_ok(void *ctx, MQTTAsync_successData5 *resp)
{
    fb_bus *bus = ctx;
    unsigned max_unacked = MAX_UNACKED;
    int receive_max;

    if (resp != NULL &&
        bus->paho->props_has(&resp->properties, MQTTPROPERTY_CODE_RECEIVE_MAXIMUM)) {
        receive_max =
            bus->paho->props_number(&resp->properties, MQTTPROPERTY_CODE_RECEIVE_MAXIMUM);
        if (receive_max > 0 && (unsigned)receive_max < max_unacked)
            max_unacked = (unsigned)receive_max;
    }
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

static void on_connect_fail(void *ctx, MQTTAsync_failureData5 *resp)
{
    fb_bus *bus = ctx;

    pthread_mutex_lock(&bus->mu);
    bus->connect_done = 1;
    bus->connect_ok = 0;
    bus->connect_refused = 0;
    if (resp != NULL && resp->reasonCode != MQTTREASONCODE_SUCCESS) {
        bus->connect_refused = 1;
        snprintf(bus->connect_reason, sizeof bus->connect_reason, "broker refused: %s",
                 bus->paho->reason_text(resp->reasonCode));
    } else if (bus->tls_error[0] != '\0') {
        snprintf(bus->connect_reason, sizeof bus->connect_reason, "TLS handshake failed: %s",
                 bus->tls_error);
    } else if (bus->tls && resp != NULL && resp->message != NULL) {
        /* Paho checks the host name after the handshake and says nothing more precise. */
        snprintf(bus->connect_reason, sizeof bus->connect_reason,
                 "%s (code %d); if the port is up, the broker's certificate may not be for "
                 "host '%.64s'",
                 resp->message, resp->code, bus->host);
    } else if (resp != NULL && resp->message != NULL) {
        snprintf(bus->connect_reason, sizeof bus->connect_reason, "%s (code %d)", resp->message,
                 resp->code);
    } else {
        snprintf(bus->connect_reason, sizeof bus->connect_reason, "connect failed (code %d)",
                 resp != NULL ? resp->code : -1);
    }
    pthread_cond_broadcast(&bus->cv);
    pthread_mutex_unlock(&bus->mu);
}

/*
 * OpenSSL's error queue, as Paho hands it over during a failed handshake.
 * Only the first line is kept: it names the cause (e.g. "certificate verify
 * failed"); the rest repeats it with OpenSSL's internal locations.
 */
static int on_tls_error(const char *str, size_t len, void *ctx)
{
    fb_bus *bus = ctx;
    const char *p = str;
    const char *end = str + len;
    const char *found;
    int fields = 0;

    while (end > str && (end[-1] == '\n' || end[-1] == '\r'))
        end--;
    /*
     * OpenSSL's lines read "pid:error:code:library:function:reason:file:line:";
     * the reason is what a user can act on. Unknown shapes are kept whole.
     */
    found = strstr(str, ":error:");
    if (found != NULL && found < end) {
        p = found + 7;
        while (p < end && fields < 3)
            if (*p++ == ':')
                fields++;
        if (fields == 3) {
            const char *stop = memchr(p, ':', (size_t)(end - p));

            if (stop != NULL)
                end = stop;
        } else {
            p = str;
        }
    }
    pthread_mutex_lock(&bus->mu);
    if (bus->tls_error[0] == '\0')
        snprintf(bus->tls_error, sizeof bus->tls_error, "%.*s", (int)(end - p), p);
    pthread_mutex_unlock(&bus->mu);
    return 0;
}

static void on_connection_lost(void *ctx, char *cause)
{
    fb_bus *bus = ctx;
    int retrying;

    pthread_mutex_lock(&bus->mu);
    link_down(bus);
    retrying = bus->reconnecting;
    pthread_mutex_unlock(&bus->mu);
    log__emit(bus->log, bus->log_ctx, FB_LOG_WARN, "connection to %s lost%s%s%s", bus->url,
              cause != NULL ? ": " : "", cause != NULL ? cause : "",
              retrying ? "; reconnecting" : "");
}

/* The broker sent an MQTT v5 DISCONNECT: the connection is about to close. */
static void on_disconnected(void *ctx, MQTTProperties *props, enum MQTTReasonCodes reason)
{
    fb_bus *bus = ctx;

    (void)props;
    pthread_mutex_lock(&bus->mu);
    /* Another client took our id over: fighting it with reconnects would not end. */
    if (reason == MQTTREASONCODE_SESSION_TAKEN_OVER)
        mark_lost(bus);
    else
        link_down(bus);
    pthread_mutex_unlock(&bus->mu);
    log__emit(bus->log, bus->log_ctx, FB_LOG_WARN, "broker %s disconnected us: %s", bus->url,
              bus->paho->reason_text(reason));
}

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
    fb_bus *bus = ctx;
    struct msg_node *node;
    size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
    size_t plen = m->payloadlen > 0 ? (size_t)m->payloadlen : 0;

    /* One allocation: the node, then the payload, then the topic (see fb_msg_free). */
    node = malloc(sizeof *node + plen + 1 + tlen + 1);
    if (node == NULL)
        return 0; /* Paho keeps the message and offers it again later */
    node->next = NULL;
    node->msg.payload = (char *)(node + 1);
    node->msg.topic = node->msg.payload + plen + 1;
    memcpy(node->msg.topic, topic, tlen);
    node->msg.topic[tlen] = '\0';
    if (plen > 0)
        memcpy(node->msg.payload, m->payload, plen);
    node->msg.payload[plen] = '\0';
    node->msg.len = plen;
    node->msg.retained = m->retained ? 1 : 0;

    pthread_mutex_lock(&bus->mu);
    if (bus->tail != NULL)
        bus->tail->next = node;
    else
        bus->head = node;
    bus->tail = node;
    arm_pipe(bus);
    /* One message satisfies one waiter; nobody waiting: no wake-up at all. */
    if (bus->msg_waiters > 0)
        pthread_cond_signal(&bus->msg_cv);
    pthread_mutex_unlock(&bus->mu);

    bus->paho->free_message(&m);
    bus->paho->free(topic);
    return 1;
}

static void record_sub(fb_bus *bus, int token, int ok)
{
    pthread_mutex_lock(&bus->mu);
    bus->sub_ring[bus->sub_next % SUB_RING].token = token;
    bus->sub_ring[bus->sub_next % SUB_RING].ok = ok;
    bus->sub_next++;
    pthread_cond_broadcast(&bus->cv);
    pthread_mutex_unlock(&bus->mu);
}

static void on_subscribe_ok(void *ctx, MQTTAsync_successData5 *resp)
{
    int ok = 1;
    int i;

    if (resp->alt.sub.reasonCodeCount > 1 && resp->alt.sub.reasonCodes != NULL) {
        for (i = 0; i < resp->alt.sub.reasonCodeCount; i++)
            if (resp->alt.sub.reasonCodes[i] >= MQTTREASONCODE_UNSPECIFIED_ERROR)
                ok = 0;
    } else if (resp->reasonCode >= MQTTREASONCODE_UNSPECIFIED_ERROR) {
        ok = 0;
    }
    record_sub(ctx, resp->token, ok);
}

static void on_subscribe_fail(void *ctx, MQTTAsync_failureData5 *resp)
{
    record_sub(ctx, resp != NULL ? resp->token : -1, 0);
}

static void on_publish_ok(void *ctx, MQTTAsync_successData5 *resp)
{
    struct pending *p = ctx;
    fb_bus *bus = p->bus;

    (void)resp;
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
static void on_publish_fail(void *ctx, MQTTAsync_failureData5 *resp)
{
    struct pending *p = ctx;
    fb_bus *bus = p->bus;
    int refused = resp != NULL && resp->reasonCode >= MQTTREASONCODE_UNSPECIFIED_ERROR;

    pthread_mutex_lock(&bus->mu);
    p->outstanding--;
    if (p->acked) {
        pending_finish(bus, p);
    } else if (refused || bus->reconnect_max_s == 0 || bus->lost) {
        bus->publish_failures++;
        pending_finish(bus, p);
    } else if (p->sent_on == bus->link_gen && bus->link_up) {
        p->sent_on = 0;
        bus->resend_wanted = 1;
        pthread_cond_broadcast(&bus->cv);
    }
    pthread_mutex_unlock(&bus->mu);
}

static void on_disconnect_ok(void *ctx, MQTTAsync_successData5 *resp)
{
    fb_bus *bus = ctx;

    (void)resp;
    pthread_mutex_lock(&bus->mu);
    bus->disc_done = 1;
    mark_lost(bus);
    pthread_mutex_unlock(&bus->mu);
}

static void on_disconnect_fail(void *ctx, MQTTAsync_failureData5 *resp)
{
    fb_bus *bus = ctx;

    (void)resp;
    pthread_mutex_lock(&bus->mu);
    bus->disc_done = 1;
    mark_lost(bus);
    pthread_mutex_unlock(&bus->mu);
}

/* ------------------------------------------------------------------------ */
/* Setup                                                                     */
/* ------------------------------------------------------------------------ */

/*
 * Splits "tcp://host:port", "mqtt://host:port" or, with TLS,
 * "mqtts://host:port" and "ssl://host:port" (IPv6 as "[addr]:port", the port
 * defaulting to 1883, or 8883 with TLS) and builds the URL Paho understands.
 */
static enum fb_err parse_url(fb_bus *bus, const char *url, char *paho_url, size_t paho_len,
                             char *errbuf, size_t errlen)
{
    static const char expected[] = "tcp://, mqtt://, mqtts:// or ssl://";
    const char *sep = strstr(url, "://");
    const char *rest;
    const char *host_end;
    const char *port;
    size_t host_len;
    size_t scheme_len;
    char *end;
    long port_num;

    if (strchr(url, '@') != NULL) {
        /* The URL is not echoed: what precedes '@' could be a password. */
        err__set(errbuf, errlen,
                 "credentials in the broker URL are not supported; use the username and "
                 "password options");
        return FB_ERR_INVALID;
    }
    if (sep == NULL) {
        err__set(errbuf, errlen, "broker URL '%s' has no scheme (expected %s)", url, expected);
        return FB_ERR_INVALID;
    }
    scheme_len = (size_t)(sep - url);
    if ((scheme_len == 3 && strncmp(url, "tcp", 3) == 0) ||
        (scheme_len == 4 && strncmp(url, "mqtt", 4) == 0)) {
        bus->tls = 0;
    } else if ((scheme_len == 5 && strncmp(url, "mqtts", 5) == 0) ||
               (scheme_len == 3 && strncmp(url, "ssl", 3) == 0)) {
        bus->tls = 1;
    } else {
        err__set(errbuf, errlen, "broker URL '%s' has an unsupported scheme '%.*s' (expected %s)",
                 url, (int)scheme_len, url, expected);
        return FB_ERR_INVALID;
    }
    port = bus->tls ? DEFAULT_TLS_PORT : DEFAULT_PORT;
    rest = sep + 3;
    if (*rest == '[') {
        host_end = strchr(rest, ']');
        if (host_end == NULL)
            goto bad;
        rest++;
        host_len = (size_t)(host_end - rest);
        host_end++;
    } else {
        host_end = rest + strcspn(rest, ":/");
        host_len = (size_t)(host_end - rest);
    }
    if (*host_end == ':')
        port = host_end + 1;
    else if (*host_end != '\0')
        goto bad;
    if (host_len == 0 || host_len >= sizeof bus->host)
        goto bad;
    errno = 0;
    port_num = strtol(port, &end, 10);
    if (errno != 0 || end == port || *end != '\0' || port_num < 1 || port_num > 65535)
        goto bad;
    memcpy(bus->host, rest, host_len);
    bus->host[host_len] = '\0';
    snprintf(bus->port, sizeof bus->port, "%ld", port_num);
    if (strchr(bus->host, ':') != NULL)
        snprintf(paho_url, paho_len, "%s://[%s]:%s", bus->tls ? "ssl" : "tcp", bus->host,
                 bus->port);
    else
        snprintf(paho_url, paho_len, "%s://%s:%s", bus->tls ? "ssl" : "tcp", bus->host,
                 bus->port);
    return FB_OK;

bad:
    err__set(errbuf, errlen, "broker URL '%s' is malformed (expected %.*s://host:port)", url,
             (int)scheme_len, url);
    return FB_ERR_INVALID;
}

static int same_address(const struct sockaddr_storage *a, const struct addrinfo *b)
{
    if (a->ss_family != b->ai_family)
        return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)a;
        const struct sockaddr_in *y = (const struct sockaddr_in *)(void *)b->ai_addr;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)(void *)b->ai_addr;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    return 0;
}

/* Sets TCP_NODELAY on fd if it is a TCP socket connected to one of addrs. */
static int nodelay_if_broker(int fd, const struct addrinfo *addrs)
{
    struct sockaddr_storage peer;
    socklen_t len = sizeof peer;
    const struct addrinfo *ai;
    int one = 1;

    if (getpeername(fd, (struct sockaddr *)&peer, &len) != 0)
        return 0;
    for (ai = addrs; ai != NULL; ai = ai->ai_next) {
        if (same_address(&peer, ai))
            return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0;
    }
    return 0;
}

/*
 * Paho exposes no socket and no TCP_NODELAY option, and without it QoS 1
 * round trips stall ~40 ms (Nagle + delayed ACK). The socket is found as the
 * descriptor whose peer is the broker. Other connections of this process to
 * the same broker get the option too, which is harmless.
 */
static void set_nodelay(fb_bus *bus)
{
    struct addrinfo hints;
    struct addrinfo *addrs = NULL;
    DIR *dir = NULL;
    struct dirent *entry;
    int found = 0;
    int fd;

    /* Set already, before CONNECT, by the SDK's connect (paho_wake.c). */
    if (paho_wake__connects() > 0) {
        found = 1;
        goto out;
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (getaddrinfo(bus->host, bus->port, &hints, &addrs) != 0)
        goto out;
    dir = opendir("/proc/self/fd");
    if (dir != NULL) {
        while ((entry = readdir(dir)) != NULL) {
            if (entry->d_name[0] < '0' || entry->d_name[0] > '9')
                continue;
            fd = atoi(entry->d_name);
            if (fd != dirfd(dir))
                found += nodelay_if_broker(fd, addrs);
        }
    } else {
        /* No /proc: probe the low descriptors, where a fresh socket lands. */
        for (fd = 0; fd < 1024; fd++)
            found += nodelay_if_broker(fd, addrs);
    }
out:
    if (dir != NULL)
        closedir(dir);
    if (addrs != NULL)
        freeaddrinfo(addrs);
    if (found == 0)
        log__emit(bus->log, bus->log_ctx, FB_LOG_WARN,
                  "could not find the socket to %s to set TCP_NODELAY", bus->url);
}

static void make_client_id(char *buf, size_t len)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(buf, len, "fb-%ld-%lx", (long)getpid(),
             (unsigned long)ts.tv_nsec ^ ((unsigned long)ts.tv_sec << 20));
}

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
    pthread_condattr_destroy(&attr);
    if (i != 0) {
        pthread_mutex_destroy(&bus->mu);
        goto fail;
    }
    if (pipe(fds) != 0) {
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

/* Tells the worker to end and waits for it. */
static void stop_worker(fb_bus *bus)
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

/* Frees a bus whose sync objects exist (see init_sync). */
static void destroy(fb_bus *bus)
{
    struct msg_node *node;
    size_t i;

    stop_worker(bus);
    /* After this no Paho callback can run, so whatever is pending can go. */
    if (bus->have_client)
        bus->paho->destroy(&bus->client);
    while ((node = bus->head) != NULL) {
        bus->head = node->next;
        fb_msg_free(&node->msg);
    }
    while (bus->pend_head != NULL)
        pending_unlink_free(bus, bus->pend_head);
    for (i = 0; i < bus->n_filters; i++)
        free(bus->filters[i]);
    free(bus->filters);
    free(bus->username);
    free(bus->password);
    free(bus->will_topic);
    free(bus->will_payload);
    free(bus->ca_file);
    free(bus->cert_file);
    free(bus->key_file);
    close(bus->pipe_rd);
    close(bus->pipe_wr);
    pthread_cond_destroy(&bus->ack_cv);
    pthread_cond_destroy(&bus->msg_cv);
    pthread_cond_destroy(&bus->cv);
    pthread_mutex_destroy(&bus->mu);
    free(bus);
}

/* Copies the options every connect needs; returns 0 when out of memory. */
static int keep_options(fb_bus *bus, const fb_bus_options *opts)
{
#define KEEP(field)                                                                                \
    do {                                                                                           \
        if (opts->field != NULL && (bus->field = str__dup(opts->field)) == NULL)                  \
            return 0;                                                                              \
    } while (0)
    KEEP(username);
    KEEP(password);
    KEEP(will_topic);
    KEEP(ca_file);
    KEEP(cert_file);
    KEEP(key_file);
#undef KEEP
    if (opts->will_topic != NULL &&
        (bus->will_payload = str__dup(opts->will_payload != NULL ? opts->will_payload : "")) ==
            NULL)
        return 0;
    bus->will_retained = opts->will_retained ? 1 : 0;
    bus->keepalive = opts->keepalive > 0 ? opts->keepalive : 10;
    bus->connect_timeout = opts->connect_timeout > 0 ? opts->connect_timeout : 5.0;
    bus->reconnect_max_s = opts->reconnect_max_s;
    bus->guardian_pid = opts->guardian_pid;
    return 1;
}

/*
 * One connect attempt, the same every time: clean start, the Last Will (so
 * it is armed again after a reconnect), TLS with verification. Waits for the
 * CONNACK up to the connect timeout. Returns FB_OK, FB_ERR_CONNECT (the
 * reason in bus->connect_reason), FB_ERR_TIMEOUT or FB_ERR_INVALID.
 */
static enum fb_err connect_once(fb_bus *bus)
{
    MQTTAsync_connectOptions conn_opts = MQTTAsync_connectOptions_initializer5;
    MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
    MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
    double deadline = fb_clock_mono() + bus->connect_timeout;
    enum fb_err err = FB_OK;
    int rc;

    conn_opts.keepAliveInterval = bus->keepalive;
    conn_opts.cleanstart = 1;
    conn_opts.connectTimeout = (int)bus->connect_timeout + 1;
    conn_opts.automaticReconnect = 0;
    conn_opts.username = bus->username;
    conn_opts.password = bus->password;
    conn_opts.onSuccess5 = on_connect_ok;
    conn_opts.onFailure5 = on_connect_fail;
    conn_opts.context = bus;
    if (bus->will_topic != NULL) {
        will.topicName = bus->will_topic;
        will.message = bus->will_payload;
        will.retained = bus->will_retained;
        will.qos = 1;
        conn_opts.will = &will;
    }
    if (bus->tls) {
        /*
         * Verification is always on: the chain against ca_file (or the system
         * store) and, after the handshake, the host name or IP address against
         * the certificate (verify = 1).
         */
        ssl.trustStore = bus->ca_file;
        ssl.keyStore = bus->cert_file;
        ssl.privateKey = bus->key_file;
        ssl.enableServerCertAuth = 1;
        ssl.verify = 1;
        ssl.ssl_error_cb = on_tls_error;
        ssl.ssl_error_context = bus;
        conn_opts.ssl = &ssl;
    }

    pthread_mutex_lock(&bus->mu);
    bus->connect_done = 0;
    bus->connect_ok = 0;
    bus->connect_refused = 0;
    bus->connect_reason[0] = '\0';
    bus->tls_error[0] = '\0';
    pthread_mutex_unlock(&bus->mu);

    rc = bus->paho->connect(bus->client, &conn_opts);
    if (rc != MQTTASYNC_SUCCESS) {
        pthread_mutex_lock(&bus->mu);
        snprintf(bus->connect_reason, sizeof bus->connect_reason, "Paho code %d", rc);
        pthread_mutex_unlock(&bus->mu);
        return rc == MQTTASYNC_BAD_UTF8_STRING ? FB_ERR_INVALID : FB_ERR_CONNECT;
    }
    pthread_mutex_lock(&bus->mu);
    while (!bus->connect_done && !bus->closed && wait_until(bus, deadline) != ETIMEDOUT)
        ;
    if (!bus->connect_done)
        err = FB_ERR_TIMEOUT;
    else if (!bus->connect_ok)
        err = FB_ERR_CONNECT;
    pthread_mutex_unlock(&bus->mu);
    return err;
}

/*
 * Starts a subscribe of n filters at QoS 1. Returns FB_OK with the token in
 * *token, FB_ERR_LOST when Paho is disconnected, else FB_ERR_SUBSCRIBE.
 */
static enum fb_err start_subscribe(fb_bus *bus, char *const *filters, size_t n, int *token)
{
    MQTTAsync_responseOptions resp = MQTTAsync_responseOptions_initializer;
    MQTTSubscribe_options *sub_opts = NULL;
    MQTTSubscribe_options init = MQTTSubscribe_options_initializer;
    int *qos = NULL;
    enum fb_err err = FB_OK;
    size_t i;
    int rc;

    qos = malloc(n * sizeof *qos);
    sub_opts = malloc(n * sizeof *sub_opts);
    if (qos == NULL || sub_opts == NULL) {
        err = FB_ERR_NOMEM;
        goto out;
    }
    for (i = 0; i < n; i++) {
        qos[i] = 1;
        sub_opts[i] = init;
    }
    /*
     * A response struct is mandatory: subscribeMany with count > 1 and NULL
     * response options crashes Paho under MQTT v5.
     */
    resp.onSuccess5 = on_subscribe_ok;
    resp.onFailure5 = on_subscribe_fail;
    resp.context = bus;
    if (n > 1) {
        resp.subscribeOptionsCount = (int)n;
        resp.subscribeOptionsList = sub_opts;
    } else {
        resp.subscribeOptions = sub_opts[0];
    }
    rc = bus->paho->subscribe_many(bus->client, (int)n, filters, qos, &resp);
    if (rc != MQTTASYNC_SUCCESS) {
        err = rc == MQTTASYNC_DISCONNECTED ? FB_ERR_LOST : FB_ERR_SUBSCRIBE;
        log__emit(bus->log, bus->log_ctx, FB_LOG_ERROR, "subscribe to %zu filters failed (Paho %d)",
                  n, rc);
        goto out;
    }
    *token = resp.token;
out:
    free(qos);
    free(sub_opts);
    return err;
}

/* Hands one pending publish to Paho. Called without the mutex. */
static int send_pending(fb_bus *bus, struct pending *p)
{
    MQTTAsync_message msg = MQTTAsync_message_initializer;
    MQTTAsync_responseOptions resp = MQTTAsync_responseOptions_initializer;
    MQTTProperty expiry;
    int rc;

    msg.payload = p->payload;
    msg.payloadlen = (int)p->len;
    msg.qos = 1;
    msg.retained = p->retained;
    if (p->expiry_s > 0) {
        memset(&expiry, 0, sizeof expiry);
        expiry.identifier = MQTTPROPERTY_CODE_MESSAGE_EXPIRY_INTERVAL;
        expiry.value.integer4 = p->expiry_s;
        if (bus->paho->props_add(&msg.properties, &expiry) != 0)
            return MQTTASYNC_FAILURE;
    }
    resp.onSuccess5 = on_publish_ok;
    resp.onFailure5 = on_publish_fail;
    resp.context = p;
    (void)bus;
    rc = bus->paho->send(bus->client, p->topic, &msg, &resp);
    bus->paho->props_free(&msg.properties);
    return rc;
}

/*
 * Sends, oldest first, every pending publish not yet sent on the current
 * connection. With make_usable, the bus becomes usable again once none is
 * left, under the same lock, so a caller's newer publish cannot overtake an
 * older one. Returns 0 if the connection dropped meanwhile.
 */
static int resend_pending(fb_bus *bus, int make_usable)
{
    struct pending *p;
    unsigned long gen;
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
        rc = send_pending(bus, p);
        pthread_mutex_lock(&bus->mu);
        if (rc != MQTTASYNC_SUCCESS) {
            p->outstanding--;
            p->sent_on = 0;
            if (rc != MQTTASYNC_DISCONNECTED) {
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
        arm_pipe(bus);
        pthread_cond_broadcast(&bus->cv);
        pthread_cond_broadcast(&bus->ack_cv); /* flushes wait for the end of a reconnect too */
    }
    pthread_mutex_unlock(&bus->mu);
    return 1;
}

/*
 * After a reconnect: TCP_NODELAY on the new socket, every filter subscribed
 * again (the broker forgot them with the clean start; their retained
 * messages come again), then every unacknowledged publish sent again.
 * Returns 1 when the bus is usable again, 0 if the connection dropped.
 */
static int resync(fb_bus *bus)
{
    char **filters = NULL;
    size_t n = 0;
    size_t i;
    double deadline = fb_clock_mono() + bus->connect_timeout;
    int token = 0;
    int ok = 0;
    int done = 0;
    enum fb_err err = FB_OK;

    set_nodelay(bus);
    pthread_mutex_lock(&bus->mu);
    /*
     * Counted before anything is sent again: a flush that sees its messages
     * acknowledged on the new connection must also see that there was one
     * (fb_task ends by publishing again what a restarted broker may have lost).
     */
    bus->reconnects++;
    if (bus->n_filters > 0)
        filters = calloc(bus->n_filters, sizeof *filters);
    for (i = 0; filters != NULL && i < bus->n_filters; i++)
        if ((filters[n] = str__dup(bus->filters[i])) != NULL)
            n++;
    pthread_mutex_unlock(&bus->mu);
    if (n > 0)
        err = start_subscribe(bus, filters, n, &token);
    if (n > 0 && err == FB_OK) {
        pthread_mutex_lock(&bus->mu);
        while (!(done = sub_done(bus, token, &ok)) && bus->link_up && !bus->closed &&
               wait_until(bus, deadline) != ETIMEDOUT)
            ;
        if (!done && !bus->link_up)
            err = FB_ERR_LOST;
        pthread_mutex_unlock(&bus->mu);
        /* The connection is up but the broker did not confirm: go on, the messages matter more. */
        if (!done && err == FB_OK)
            log__emit(bus->log, bus->log_ctx, FB_LOG_ERROR,
                      "no SUBACK from %s after the reconnect", bus->url);
        else if (done && !ok)
            log__emit(bus->log, bus->log_ctx, FB_LOG_ERROR,
                      "the broker refused a subscription after the reconnect");
    }
    for (i = 0; i < n; i++)
        free(filters[i]);
    free(filters);
    if (err == FB_ERR_LOST)
        return 0;
    return resend_pending(bus, 1);
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
    if (getaddrinfo(bus->host, bus->port, &hints, &addrs) != 0)
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
            wait_until(bus, -1);
        if (bus->closed || bus->lost)
            break;
        if (bus->resend_wanted && !bus->reconnecting) {
            bus->resend_wanted = 0;
            pthread_mutex_unlock(&bus->mu);
            resend_pending(bus, 0);
            pthread_mutex_lock(&bus->mu);
            continue;
        }
        bus->resend_wanted = 0;
        began = bus->lost_at;
        snprintf(reason, sizeof reason, "%s",
                 bus->connect_reason[0] != '\0' ? bus->connect_reason : "no answer");
        if ((bus->reconnect_max_s > 0 && fb_clock_mono() - began > bus->reconnect_max_s) ||
            (bus->guardian_pid > 0 && (long)getppid() != bus->guardian_pid)) {
            mark_lost(bus);
            pthread_mutex_unlock(&bus->mu);
            log__emit(bus->log, bus->log_ctx, FB_LOG_ERROR,
                      "gave up reconnecting to %s after %.1f s: %s", bus->url,
                      bus->reconnect_max_s, reason);
            pthread_mutex_lock(&bus->mu);
            break;
        }
        pthread_mutex_unlock(&bus->mu);

        if (!broker_reachable(bus, bus->connect_timeout)) {
            err = FB_ERR_CONNECT;
            pthread_mutex_lock(&bus->mu);
            snprintf(bus->connect_reason, sizeof bus->connect_reason,
                     "the broker's port does not answer");
            pthread_mutex_unlock(&bus->mu);
        } else {
            err = connect_once(bus);
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
                 err == FB_OK ? "dropped again while re-syncing"
                 : bus->connect_reason[0] != '\0' ? bus->connect_reason
                                                   : "no answer");
        if (refused || err == FB_ERR_INVALID) {
            mark_lost(bus);
            pthread_mutex_unlock(&bus->mu);
            log__emit(bus->log, bus->log_ctx, FB_LOG_ERROR, "cannot reconnect to %s: %s",
                      bus->url, reason);
            pthread_mutex_lock(&bus->mu);
            break;
        }
        pthread_mutex_unlock(&bus->mu);
        log__emit(bus->log, bus->log_ctx, FB_LOG_DEBUG,
                  "reconnect to %s failed: %s; next try in %.0f ms", bus->url, reason,
                  delay * 1e3);
        pthread_mutex_lock(&bus->mu);
        until = fb_clock_mono() + delay;
        while (!bus->closed && !bus->lost && wait_until(bus, until) != ETIMEDOUT)
            ;
        delay = delay * 2 > RECONNECT_DELAY_MAX ? RECONNECT_DELAY_MAX : delay * 2;
    }
    pthread_mutex_unlock(&bus->mu);
    return NULL;
}

enum fb_err fb_bus_new(const fb_bus_options *opts, fb_bus **out, char *errbuf, size_t errlen)
{
    MQTTAsync_createOptions create_opts = MQTTAsync_createOptions_initializer5;
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
    err = parse_url(bus, opts->url, paho_url, sizeof paho_url, errbuf, errlen);
    if (err != FB_OK)
        goto out;
    snprintf(bus->url, sizeof bus->url, "%s", opts->url);
    if (!bus->tls && (opts->ca_file != NULL || opts->cert_file != NULL || opts->key_file != NULL)) {
        err__set(errbuf, errlen,
                 "TLS files are given but the broker URL '%s' is not mqtts:// or ssl://", bus->url);
        err = FB_ERR_INVALID;
        goto out;
    }
    if (opts->key_file != NULL && opts->cert_file == NULL) {
        err__set(errbuf, errlen, "a TLS key file needs a certificate file");
        err = FB_ERR_INVALID;
        goto out;
    }
    if (!keep_options(bus, opts)) {
        err__set(errbuf, errlen, "out of memory");
        err = FB_ERR_NOMEM;
        goto out;
    }
    if (opts->client_id != NULL)
        snprintf(client_id, sizeof client_id, "%s", opts->client_id);
    else
        make_client_id(client_id, sizeof client_id);

    bus->paho = paho_get(bus->tls, errbuf, errlen);
    if (bus->paho == NULL) {
        err = FB_ERR_SYSTEM;
        goto out;
    }
    create_opts.maxBufferedMessages = MAX_BUFFERED;
    if (bus->paho->create(&bus->client, paho_url, client_id, MQTTCLIENT_PERSISTENCE_NONE,
                                    NULL, &create_opts) != MQTTASYNC_SUCCESS) {
        err__set(errbuf, errlen, "cannot create an MQTT client for %s", bus->url);
        err = FB_ERR_INVALID;
        goto out;
    }
    bus->have_client = 1;
    bus->paho->set_callbacks(bus->client, bus, on_connection_lost, on_message, NULL);
    bus->paho->set_disconnected(bus->client, bus, on_disconnected);

    err = connect_once(bus);
    if (err == FB_ERR_TIMEOUT)
        err__set(errbuf, errlen, "no answer from the broker at %s within %.1f s", bus->url,
                 bus->connect_timeout);
    else if (err != FB_OK)
        err__set(errbuf, errlen, "cannot connect to %s: %s", bus->url, bus->connect_reason);
    if (err != FB_OK)
        goto out;
    pthread_mutex_lock(&bus->mu);
    bus->connected = 1;
    pthread_mutex_unlock(&bus->mu);

    set_nodelay(bus);
    if (bus->reconnect_max_s != 0) {
        if (pthread_create(&bus->worker, NULL, reconnect_main, bus) != 0) {
            err__set(errbuf, errlen, "cannot start the reconnect thread: %s", strerror(errno));
            err = FB_ERR_SYSTEM;
            goto out;
        }
        pthread_mutex_lock(&bus->mu);
        bus->have_worker = 1;
        pthread_mutex_unlock(&bus->mu);
    }
    log__emit(bus->log, bus->log_ctx, FB_LOG_DEBUG, "connected to %s as %s", bus->url, client_id);
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

/* Remembers filters for re-subscribing after a reconnect (duplicates once). */
static enum fb_err remember_filters(fb_bus *bus, const char *const *filters, size_t n)
{
    enum fb_err err = FB_OK;
    char **bigger;
    size_t i, j;

    pthread_mutex_lock(&bus->mu);
    bigger = realloc(bus->filters, (bus->n_filters + n) * sizeof *bigger);
    if (bigger == NULL) {
        err = FB_ERR_NOMEM;
        goto out;
    }
    bus->filters = bigger;
    for (i = 0; i < n; i++) {
        for (j = 0; j < bus->n_filters; j++)
            if (strcmp(bus->filters[j], filters[i]) == 0)
                break;
        if (j < bus->n_filters)
            continue;
        bus->filters[bus->n_filters] = str__dup(filters[i]);
        if (bus->filters[bus->n_filters] == NULL) {
            err = FB_ERR_NOMEM;
            goto out;
        }
        bus->n_filters++;
    }
out:
    pthread_mutex_unlock(&bus->mu);
    return err;
}

enum fb_err fb_bus_subscribe(fb_bus *bus, const char *const *filters, size_t n, double timeout)
{
    double deadline = deadline_after(timeout);
    enum fb_err err = FB_OK;
    unsigned long gen;
    size_t i;
    int token = 0;
    int ok = 0;

    if (bus == NULL || filters == NULL || n == 0 || n > INT_MAX)
        return FB_ERR_INVALID;
    for (i = 0; i < n; i++)
        if (filters[i] == NULL)
            return FB_ERR_INVALID;
    /* Remembered first: a reconnect from now on subscribes them too. */
    err = remember_filters(bus, filters, n);
    if (err != FB_OK)
        return err;
    for (;;) {
        pthread_mutex_lock(&bus->mu);
        while (!bus->connected && !bus->lost && wait_until(bus, deadline) != ETIMEDOUT)
            ;
        err = bus->lost ? FB_ERR_LOST : bus->connected ? FB_OK : FB_ERR_TIMEOUT;
        gen = bus->link_gen;
        pthread_mutex_unlock(&bus->mu);
        if (err != FB_OK)
            return err;
        /* Paho copies the topics; the cast only drops a const it does not use. */
        err = start_subscribe(bus, (char *const *)filters, n, &token);
        if (err != FB_OK && err != FB_ERR_LOST)
            return err;
        pthread_mutex_lock(&bus->mu);
        if (err == FB_OK)
            while (!sub_done(bus, token, &ok) && !bus->lost && bus->link_gen == gen &&
                   bus->link_up && wait_until(bus, deadline) != ETIMEDOUT)
                ;
        if (err == FB_OK && sub_done(bus, token, &ok))
            err = ok ? FB_OK : FB_ERR_SUBSCRIBE;
        else if (bus->lost)
            err = FB_ERR_LOST;
        else if (bus->link_gen == gen && bus->link_up)
            err = FB_ERR_TIMEOUT;
        else
            err = FB_ERR_LOST; /* dropped meanwhile: see below */
        pthread_mutex_unlock(&bus->mu);
        if (err != FB_ERR_LOST || bus->reconnect_max_s == 0)
            break;
        /*
         * The connection dropped before the SUBACK. The filters were
         * remembered before, so the reconnect subscribes them: waiting for
         * the bus to be usable again is enough.
         */
        pthread_mutex_lock(&bus->mu);
        while (!(bus->connected && bus->link_gen != gen) && !bus->lost &&
               wait_until(bus, deadline) != ETIMEDOUT)
            ;
        err = bus->lost ? FB_ERR_LOST : bus->connected && bus->link_gen != gen ? FB_OK
                                                                                : FB_ERR_TIMEOUT;
        pthread_mutex_unlock(&bus->mu);
        break;
    }
    if (err == FB_ERR_SUBSCRIBE)
        log__emit(bus->log, bus->log_ctx, FB_LOG_ERROR, "the broker refused a subscription");
    return err;
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

static enum fb_err publish_qos0(fb_bus *bus, const char *topic, const void *payload, size_t len,
                                int retained, unsigned expiry_s)
{
    MQTTAsync_message msg = MQTTAsync_message_initializer;
    MQTTAsync_responseOptions resp = MQTTAsync_responseOptions_initializer;
    MQTTProperty expiry;
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
    msg.payload = (void *)payload;
    msg.payloadlen = (int)len;
    msg.qos = 0;
    msg.retained = retained ? 1 : 0;
    if (expiry_s > 0) {
        memset(&expiry, 0, sizeof expiry);
        expiry.identifier = MQTTPROPERTY_CODE_MESSAGE_EXPIRY_INTERVAL;
        expiry.value.integer4 = expiry_s;
        if (bus->paho->props_add(&msg.properties, &expiry) != 0)
            return FB_ERR_NOMEM;
    }
    /*
     * The response struct is passed even for QoS 0: with a NULL one Paho
     * silently drops the message properties (the expiry).
     */
    rc = bus->paho->send(bus->client, topic, &msg, &resp);
    bus->paho->props_free(&msg.properties);
    if (rc == MQTTASYNC_DISCONNECTED && bus->reconnect_max_s != 0)
        return FB_OK;
    if (rc != MQTTASYNC_SUCCESS) {
        log__emit(bus->log, bus->log_ctx, FB_LOG_ERROR, "publish to %s failed (Paho %d)", topic,
                  rc);
        return rc == MQTTASYNC_DISCONNECTED ? FB_ERR_LOST : FB_ERR_PUBLISH;
    }
    return FB_OK;
}

enum fb_err fb_bus_publish(fb_bus *bus, const char *topic, const void *payload, size_t len, int qos,
                           int retained, unsigned expiry_s)
{
    struct pending *p = NULL;
    enum fb_err err = FB_OK;
    double deadline;
    int send_now = 0;
    int rc;

    if (bus == NULL || topic == NULL || (len > 0 && payload == NULL) || qos < 0 || qos > 1 ||
        len > INT_MAX)
        return FB_ERR_INVALID;
    if (qos == 0)
        return publish_qos0(bus, topic, payload, len, retained, expiry_s);

    p = pending_new(bus, topic, payload, len, retained, expiry_s);
    if (p == NULL)
        return FB_ERR_NOMEM;
    pthread_mutex_lock(&bus->mu);
    deadline = fb_clock_mono() + PUBLISH_ROOM_TIMEOUT;
    bus->room_waiters++;
    while (bus->unacked >= bus->max_unacked && !bus->lost &&
           wait_on(bus, &bus->ack_cv, deadline) != ETIMEDOUT)
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

    rc = send_pending(bus, p);
    if (rc == MQTTASYNC_SUCCESS)
        return FB_OK;
    pthread_mutex_lock(&bus->mu);
    p->outstanding--;
    if (rc == MQTTASYNC_DISCONNECTED && bus->reconnect_max_s != 0 && !bus->lost) {
        /* The connection just dropped: the reconnect sends it. */
        p->sent_on = 0;
    } else {
        err = rc == MQTTASYNC_DISCONNECTED ? FB_ERR_LOST : FB_ERR_PUBLISH;
        pending_finish(bus, p);
    }
    pthread_mutex_unlock(&bus->mu);
    if (err != FB_OK)
        log__emit(bus->log, bus->log_ctx, FB_LOG_ERROR, "publish to %s failed (Paho %d)", topic,
                  rc);
    return err;
}

enum fb_err fb_bus_flush(fb_bus *bus, double timeout)
{
    double deadline = deadline_after(timeout);
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
           wait_on(bus, &bus->ack_cv, deadline) != ETIMEDOUT)
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

enum fb_err fb_bus_next(fb_bus *bus, double timeout, fb_msg **out)
{
    double deadline = deadline_after(timeout);
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
        rc = wait_on(bus, &bus->msg_cv, deadline);
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
            arm_pipe(bus);
    }
    pthread_mutex_unlock(&bus->mu);
    return bus->pipe_rd;
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
    MQTTAsync_disconnectOptions opts = MQTTAsync_disconnectOptions_initializer5;
    double deadline;
    enum fb_err err = FB_OK;
    int was_connected;
    int already;
    int rc;

    if (bus == NULL)
        return FB_OK;
    if (timeout < 0)
        timeout = 5.0;
    pthread_mutex_lock(&bus->mu);
    already = bus->closed;
    bus->closed = 1;
    pthread_cond_broadcast(&bus->cv);
    pthread_mutex_unlock(&bus->mu);
    /* The reconnect thread ends first, so it cannot connect again behind our back. */
    stop_worker(bus);
    pthread_mutex_lock(&bus->mu);
    was_connected = !already && bus->link_up && !bus->lost;
    pthread_mutex_unlock(&bus->mu);
    if (!was_connected)
        goto out;

    /*
     * Reason code 0 (normal disconnection) tells the broker to drop the Will.
     * No delay for messages in flight (timeout 0): callers flush first, so
     * every publish of ours is acknowledged already, and what Paho may still
     * count in flight are its own repeats after a reconnect. With a delay,
     * Paho re-checks a pending disconnect only every 3 s (checkTimeouts), past
     * our deadline: the socket closed without DISCONNECT and the broker
     * published the Will ("crashed") for a task that had ended well.
     */
    opts.reasonCode = MQTTREASONCODE_SUCCESS;
    opts.timeout = 0;
    opts.onSuccess5 = on_disconnect_ok;
    opts.onFailure5 = on_disconnect_fail;
    opts.context = bus;
    deadline = fb_clock_mono() + timeout;
    rc = bus->paho->disconnect(bus->client, &opts);
    if (rc != MQTTASYNC_SUCCESS) {
        err = FB_ERR_LOST;
        goto out;
    }
    pthread_mutex_lock(&bus->mu);
    while (!bus->disc_done && wait_until(bus, deadline) != ETIMEDOUT)
        ;
    if (!bus->disc_done)
        err = FB_ERR_TIMEOUT;
    pthread_mutex_unlock(&bus->mu);
out:
    pthread_mutex_lock(&bus->mu);
    mark_lost(bus);
    pthread_mutex_unlock(&bus->mu);
    return err;
}

void fb_bus_free(fb_bus *bus)
{
    if (bus == NULL)
        return;
    fb_bus_close(bus, 1.0);
    destroy(bus);
}

void fb_msg_free(fb_msg *msg)
{
    if (msg == NULL)
        return;
    /* msg is the first member of its queue node, which also holds the topic and payload. */
    free((struct msg_node *)(void *)msg);
}
