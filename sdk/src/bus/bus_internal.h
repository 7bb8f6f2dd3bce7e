/*
 * bus_internal.h - the layout of fb_bus and what its two MQTT backends share.
 *
 * fb_bus (flowbus.h "fb_bus") has two implementations, chosen at build time
 * with -DFLOWBUS_MQTT=mosquitto|paho (the top CMakeLists.txt). The transport
 * interface between the SDK and its MQTT client is the fb_bus contract in
 * flowbus.h itself (connect with a Last Will, subscribe, publish QoS 0/1 with
 * retain and message expiry, flush, next/fd, reconnect with re-subscribe and
 * in-order re-send, close): sdk/src/task, core/ and tasks/ use nothing else.
 * The two backends implement it whole, because their concurrency differs at
 * the root and a shared front half would have to assume one of them:
 *
 *   mosquitto (default) - bus_mosq.c and bus_mosq_loop.c, bus_mosq_internal.h.
 *       libmosquitto with no thread of its own: the bus's calls drive it
 *       (mosquitto_loop_read/write/misc) from the caller's thread, and
 *       fb_bus_fd is an epoll descriptor over the broker socket, a timerfd
 *       for keepalive and reconnect deadlines and an eventfd for queued
 *       messages, so a caller's poll() loop drives it too. A task process
 *       has one thread.
 *   paho - bus.c, bus_queue.c, bus_inflight.c, bus_subscribe.c,
 *       bus_reconnect.c, bus_paho.c, paho_load.c, bus_paho_internal.h.
 *       Paho MQTTAsync's threads, with a mutex and condition variables
 *       between them and the caller, and a reconnect thread.
 *
 * What both share lives here and in bus_addr.c (the broker URL, the checks
 * and copies of fb_bus_options, TCP_NODELAY) and bus_msg.c (received
 * messages). No type or code of either library crosses flowbus.h.
 */
#ifndef FLOWBUS_BUS_INTERNAL_H
#define FLOWBUS_BUS_INTERNAL_H

#include <stddef.h>

#include "flowbus/flowbus.h"
#include "internal.h"

/*
 * At most this many QoS 1 publishes wait for their PUBACK at once. Measured:
 * ~36k msg/s bounded like this, 5-7k msg/s unbounded (Paho). The broker's
 * Receive Maximum (CONNACK) lowers what is actually in flight: mosquitto
 * announces 20 by default; Paho then holds further publishes back and only
 * retries them when its send thread's one-second wait times out, so there
 * exceeding it costs a second per stall; libmosquitto queues them and sends
 * each as a PUBACK frees a slot.
 */
#define MAX_UNACKED 100u
/* How long fb_bus_publish may block waiting for the unacknowledged count to drop. */
#define PUBLISH_ROOM_TIMEOUT 30.0
/*
 * Back-pressure (libmosquitto backend; Paho's queue is unbounded, bus_queue.c):
 * once this many received messages wait in the bus's queue
 * (the caller stopped taking them with fb_bus_next), the bus stops reading
 * its socket, so the broker keeps the rest (TCP flow control, then its own
 * queue: max_queued_messages) instead of the task's memory or a drop. The
 * task's own queue (sdk/src/task, execution.overflow) decides when to stop.
 */
#define RECV_QUEUE_MAX 1000u
#define DEFAULT_PORT "1883"
#define DEFAULT_TLS_PORT "8883"
/* Reconnect backoff: the first retry after this, doubling up to the maximum. */
#define RECONNECT_DELAY_MIN 0.05
#define RECONNECT_DELAY_MAX 2.0

/*
 * A queued message. The fb_msg comes first so that the pointer handed to the
 * caller is also the node's address, and fb_msg_free can free the node.
 */
struct msg_node {
    fb_msg msg;
    struct msg_node *next;
};

/* The broker's address, from the URL (bus_addr__parse_url). */
struct bus_addr {
    char host[256];
    char port[8];
    int tls;
};

/* What every (re)connect needs, copied from fb_bus_options (bus_options__keep). */
struct bus_options {
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
};

/* ------------------------------------------------------------------------ */
/* bus_addr.c                                                                */
/* ------------------------------------------------------------------------ */

/*
 * The checks of fb_bus_new's options that do not depend on the backend (opts
 * itself is checked by the caller): parses opts->url into addr and paho_url
 * (bus_addr__parse_url), copies it as given into url, refuses TLS files with
 * a URL without TLS and a key without a certificate, and writes the client
 * id (opts->client_id, else a random "fb-..." one) into client_id. Returns
 * FB_OK, else FB_ERR_INVALID or FB_ERR_SYSTEM (getrandom) with the reason in
 * errbuf.
 */
enum fb_err bus_addr__check_options(const fb_bus_options *opts, struct bus_addr *addr, char *url,
                                    size_t url_len, char *paho_url, size_t paho_len,
                                    char *client_id, size_t id_len, char *errbuf, size_t errlen);

/*
 * Copies what every connect needs from opts into o (keepalive 10 s and a
 * connect timeout of 5 s where opts gives none). Returns 0 when memory ran
 * out; bus_options__free frees what was copied either way.
 */
int bus_options__keep(struct bus_options *o, const fb_bus_options *opts);

/* Frees o's strings (the password zeroed first); o itself is the caller's. */
void bus_options__free(struct bus_options *o);

/*
 * Splits the broker URL into addr and writes the URL Paho understands into
 * paho_url. Returns FB_OK, or FB_ERR_INVALID with the reason in errbuf.
 */
enum fb_err bus_addr__parse_url(struct bus_addr *addr, const char *url, char *paho_url,
                                size_t paho_len, char *errbuf, size_t errlen);

/*
 * Paho backend: makes sure the socket to addr has TCP_NODELAY (after each
 * CONNACK), by finding it among the process's descriptors; url and log are
 * for the warning when it cannot be found.
 */
void bus_addr__set_nodelay(const struct bus_addr *addr, const char *url, fb_log_fn log,
                           void *log_ctx);

/* ------------------------------------------------------------------------ */
/* bus_msg.c                                                                 */
/* ------------------------------------------------------------------------ */

/*
 * A received message as a queue node (one allocation: the node, the payload
 * and the topic, both NUL-terminated), or NULL when memory ran out.
 */
struct msg_node *bus_msg__new(const char *topic, size_t tlen, const void *payload, size_t plen,
                              int retained);

#endif
