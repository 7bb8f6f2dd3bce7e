/*
 * bus.c - fb_bus, a small MQTT v5 client on Eclipse Paho MQTTAsync.
 *
 * Paho runs every callback on its own receive thread, which all clients of the
 * process share. The callbacks here therefore only copy data into the bus
 * under its mutex, signal its condition variable and, for received messages,
 * make the self-pipe readable; every wait happens on the caller's thread with
 * a deadline. Paho is never called while the bus mutex is held: Paho calls us
 * back with its own mutex held, so taking the two in the other order could
 * deadlock.
 *
 * Paho has no TCP_NODELAY option, so after the CONNACK the socket whose peer
 * is the broker is found among the process's descriptors and the option is
 * set there (see set_nodelay).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

/*
 * A queued message. The fb_msg comes first so that the pointer handed to the
 * caller is also the node's address, and fb_msg_free can free the node.
 */
struct msg_node {
    fb_msg msg;
    struct msg_node *next;
};

struct fb_bus {
    MQTTAsync client;
    int have_client;
    fb_log_fn log;
    void *log_ctx;
    char url[300]; /* as given, for messages; never holds credentials */
    char host[256];
    char port[8];

    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pipe_rd;
    int pipe_wr;

    /* Everything below is guarded by mu. */
    int pipe_armed; /* one byte sits in the pipe */
    struct msg_node *head;
    struct msg_node *tail;
    int connected;
    int lost;   /* no more messages will come: lost, refused or closed */
    int closed; /* fb_bus_close ran */
    int connect_done;
    int connect_ok;
    char connect_reason[160];
    int sub_token; /* token of the last completed subscribe */
    int sub_ok;
    unsigned unacked;
    unsigned max_unacked; /* MAX_UNACKED or the broker's Receive Maximum */
    unsigned publish_failures;
    int disc_done;
};

/* ------------------------------------------------------------------------ */
/* Helpers that run with bus->mu held                                       */
/* ------------------------------------------------------------------------ */

/* Makes the fd readable; a single byte is enough (level-triggered). */
static void arm_pipe(fb_bus *bus)
{
    char byte = 1;

    if (bus->pipe_armed)
        return;
    /* The pipe is non-blocking and holds at most one byte: this cannot block. */
    if (write(bus->pipe_wr, &byte, 1) == 1)
        bus->pipe_armed = 1;
}

static void drain_pipe(fb_bus *bus)
{
    char buf[16];

    while (read(bus->pipe_rd, buf, sizeof buf) > 0)
        ;
    bus->pipe_armed = 0;
}

/*
 * Waits on the condition variable until the monotonic deadline (negative:
 * forever). Returns 0 when woken, ETIMEDOUT when the deadline passed.
 */
static int wait_until(fb_bus *bus, double deadline)
{
    struct timespec ts;
    double whole;

    if (deadline < 0)
        return pthread_cond_wait(&bus->cv, &bus->mu);
    if (clock__mono() >= deadline)
        return ETIMEDOUT;
    whole = (double)(long long)deadline;
    ts.tv_sec = (time_t)whole;
    ts.tv_nsec = (long)((deadline - whole) * 1e9);
    return pthread_cond_timedwait(&bus->cv, &bus->mu, &ts);
}

static double deadline_after(double timeout)
{
    return timeout < 0 ? -1.0 : clock__mono() + timeout;
}

/* Marks the connection gone: waiters wake, the fd becomes readable. */
static void mark_lost(fb_bus *bus)
{
    bus->connected = 0;
    bus->lost = 1;
    arm_pipe(bus);
    pthread_cond_broadcast(&bus->cv);
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
        MQTTProperties_hasProperty(&resp->properties, MQTTPROPERTY_CODE_RECEIVE_MAXIMUM)) {
        receive_max =
            MQTTProperties_getNumericValue(&resp->properties, MQTTPROPERTY_CODE_RECEIVE_MAXIMUM);
        if (receive_max > 0 && (unsigned)receive_max < max_unacked)
            max_unacked = (unsigned)receive_max;
    }
    pthread_mutex_lock(&bus->mu);
    bus->max_unacked = max_unacked;
    bus->connect_done = 1;
    bus->connect_ok = 1;
    bus->connected = 1;
    pthread_cond_broadcast(&bus->cv);
    pthread_mutex_unlock(&bus->mu);
}

static void on_connect_fail(void *ctx, MQTTAsync_failureData5 *resp)
{
    fb_bus *bus = ctx;

    pthread_mutex_lock(&bus->mu);
    bus->connect_done = 1;
    bus->connect_ok = 0;
    if (resp != NULL && resp->reasonCode != MQTTREASONCODE_SUCCESS)
        snprintf(bus->connect_reason, sizeof bus->connect_reason, "broker refused: %s",
                 MQTTReasonCode_toString(resp->reasonCode));
    else if (resp != NULL && resp->message != NULL)
        snprintf(bus->connect_reason, sizeof bus->connect_reason, "%s (code %d)", resp->message,
                 resp->code);
    else
        snprintf(bus->connect_reason, sizeof bus->connect_reason, "connect failed (code %d)",
                 resp != NULL ? resp->code : -1);
    pthread_cond_broadcast(&bus->cv);
    pthread_mutex_unlock(&bus->mu);
}

static void on_connection_lost(void *ctx, char *cause)
{
    fb_bus *bus = ctx;

    pthread_mutex_lock(&bus->mu);
    mark_lost(bus);
    pthread_mutex_unlock(&bus->mu);
    log__emit(bus->log, bus->log_ctx, FB_LOG_WARN, "connection to %s lost%s%s", bus->url,
              cause != NULL ? ": " : "", cause != NULL ? cause : "");
}

/* The broker sent an MQTT v5 DISCONNECT: the connection is about to close. */
static void on_disconnected(void *ctx, MQTTProperties *props, enum MQTTReasonCodes reason)
{
    fb_bus *bus = ctx;

    (void)props;
    pthread_mutex_lock(&bus->mu);
    mark_lost(bus);
    pthread_mutex_unlock(&bus->mu);
    log__emit(bus->log, bus->log_ctx, FB_LOG_WARN, "broker %s disconnected us: %s", bus->url,
              MQTTReasonCode_toString(reason));
}

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
    fb_bus *bus = ctx;
    struct msg_node *node = NULL;
    size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
    size_t plen = m->payloadlen > 0 ? (size_t)m->payloadlen : 0;

    node = calloc(1, sizeof *node);
    if (node == NULL)
        goto fail;
    node->msg.topic = malloc(tlen + 1);
    node->msg.payload = malloc(plen + 1);
    if (node->msg.topic == NULL || node->msg.payload == NULL)
        goto fail;
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
    pthread_cond_broadcast(&bus->cv);
    pthread_mutex_unlock(&bus->mu);

    MQTTAsync_freeMessage(&m);
    MQTTAsync_free(topic);
    return 1;

fail:
    /* Returning 0 makes Paho keep the message and offer it again later. */
    if (node != NULL) {
        free(node->msg.topic);
        free(node->msg.payload);
        free(node);
    }
    return 0;
}

static void on_subscribe_ok(void *ctx, MQTTAsync_successData5 *resp)
{
    fb_bus *bus = ctx;
    int ok = 1;
    int i;

    if (resp->alt.sub.reasonCodeCount > 1 && resp->alt.sub.reasonCodes != NULL) {
        for (i = 0; i < resp->alt.sub.reasonCodeCount; i++)
            if (resp->alt.sub.reasonCodes[i] >= MQTTREASONCODE_UNSPECIFIED_ERROR)
                ok = 0;
    } else if (resp->reasonCode >= MQTTREASONCODE_UNSPECIFIED_ERROR) {
        ok = 0;
    }
    pthread_mutex_lock(&bus->mu);
    bus->sub_token = resp->token;
    bus->sub_ok = ok;
    pthread_cond_broadcast(&bus->cv);
    pthread_mutex_unlock(&bus->mu);
}

static void on_subscribe_fail(void *ctx, MQTTAsync_failureData5 *resp)
{
    fb_bus *bus = ctx;

    pthread_mutex_lock(&bus->mu);
    bus->sub_token = resp != NULL ? resp->token : -1;
    bus->sub_ok = 0;
    pthread_cond_broadcast(&bus->cv);
    pthread_mutex_unlock(&bus->mu);
}

static void on_publish_ok(void *ctx, MQTTAsync_successData5 *resp)
{
    fb_bus *bus = ctx;

    (void)resp;
    pthread_mutex_lock(&bus->mu);
    if (bus->unacked > 0)
        bus->unacked--;
    pthread_cond_broadcast(&bus->cv);
    pthread_mutex_unlock(&bus->mu);
}

static void on_publish_fail(void *ctx, MQTTAsync_failureData5 *resp)
{
    fb_bus *bus = ctx;

    (void)resp;
    pthread_mutex_lock(&bus->mu);
    if (bus->unacked > 0)
        bus->unacked--;
    bus->publish_failures++;
    pthread_cond_broadcast(&bus->cv);
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
 * Splits "tcp://host:port" or "mqtt://host:port" (IPv6 as "[addr]:port", the
 * port defaulting to 1883) and builds the URL Paho understands.
 */
static enum fb_err parse_url(fb_bus *bus, const char *url, char *paho_url, size_t paho_len,
                             char *errbuf, size_t errlen)
{
    const char *sep = strstr(url, "://");
    const char *rest;
    const char *host_end;
    const char *port = DEFAULT_PORT;
    size_t host_len;
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
        err__set(errbuf, errlen, "broker URL '%s' has no scheme (expected tcp:// or mqtt://)", url);
        return FB_ERR_INVALID;
    }
    if (!((sep - url == 3 && strncmp(url, "tcp", 3) == 0) ||
          (sep - url == 4 && strncmp(url, "mqtt", 4) == 0))) {
        err__set(errbuf, errlen,
                 "broker URL '%s' has an unsupported scheme '%.*s' (expected tcp:// or mqtt://)",
                 url, (int)(sep - url), url);
        return FB_ERR_INVALID;
    }
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
        snprintf(paho_url, paho_len, "tcp://[%s]:%s", bus->host, bus->port);
    else
        snprintf(paho_url, paho_len, "tcp://%s:%s", bus->host, bus->port);
    return FB_OK;

bad:
    err__set(errbuf, errlen, "broker URL '%s' is malformed (expected tcp://host:port)", url);
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
    pthread_condattr_destroy(&attr);
    if (i != 0) {
        pthread_mutex_destroy(&bus->mu);
        goto fail;
    }
    if (pipe(fds) != 0) {
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
    struct msg_node *node;

    if (bus->have_client)
        MQTTAsync_destroy(&bus->client);
    while ((node = bus->head) != NULL) {
        bus->head = node->next;
        fb_msg_free(&node->msg);
    }
    close(bus->pipe_rd);
    close(bus->pipe_wr);
    pthread_cond_destroy(&bus->cv);
    pthread_mutex_destroy(&bus->mu);
    free(bus);
}

enum fb_err fb_bus_new(const fb_bus_options *opts, fb_bus **out, char *errbuf, size_t errlen)
{
    MQTTAsync_createOptions create_opts = MQTTAsync_createOptions_initializer5;
    MQTTAsync_connectOptions conn_opts = MQTTAsync_connectOptions_initializer5;
    MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
    fb_bus *bus = NULL;
    int have_sync = 0;
    enum fb_err err = FB_OK;
    char paho_url[300];
    char client_id[64];
    double timeout;
    double deadline;
    int rc;

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
    if (opts->client_id != NULL)
        snprintf(client_id, sizeof client_id, "%s", opts->client_id);
    else
        make_client_id(client_id, sizeof client_id);

    create_opts.maxBufferedMessages = MAX_BUFFERED;
    rc = MQTTAsync_createWithOptions(&bus->client, paho_url, client_id, MQTTCLIENT_PERSISTENCE_NONE,
                                     NULL, &create_opts);
    if (rc != MQTTASYNC_SUCCESS) {
        err__set(errbuf, errlen, "cannot create an MQTT client for %s (Paho code %d)", bus->url,
                 rc);
        err = FB_ERR_INVALID;
        goto out;
    }
    bus->have_client = 1;
    MQTTAsync_setCallbacks(bus->client, bus, on_connection_lost, on_message, NULL);
    MQTTAsync_setDisconnected(bus->client, bus, on_disconnected);

    timeout = opts->connect_timeout > 0 ? opts->connect_timeout : 5.0;
    conn_opts.keepAliveInterval = opts->keepalive > 0 ? opts->keepalive : 10;
    conn_opts.cleanstart = 1;
    conn_opts.connectTimeout = (int)timeout + 1;
    conn_opts.automaticReconnect = 0;
    conn_opts.username = opts->username;
    conn_opts.password = opts->password;
    conn_opts.onSuccess5 = on_connect_ok;
    conn_opts.onFailure5 = on_connect_fail;
    conn_opts.context = bus;
    if (opts->will_topic != NULL) {
        will.topicName = opts->will_topic;
        will.message = opts->will_payload != NULL ? opts->will_payload : "";
        will.retained = opts->will_retained ? 1 : 0;
        will.qos = 1;
        conn_opts.will = &will;
    }

    deadline = clock__mono() + timeout;
    rc = MQTTAsync_connect(bus->client, &conn_opts);
    if (rc != MQTTASYNC_SUCCESS) {
        err__set(errbuf, errlen, "cannot connect to %s (Paho code %d)", bus->url, rc);
        err = rc == MQTTASYNC_BAD_UTF8_STRING ? FB_ERR_INVALID : FB_ERR_CONNECT;
        goto out;
    }
    pthread_mutex_lock(&bus->mu);
    while (!bus->connect_done && wait_until(bus, deadline) != ETIMEDOUT)
        ;
    if (!bus->connect_done) {
        err__set(errbuf, errlen, "no answer from the broker at %s within %.1f s", bus->url,
                 timeout);
        err = FB_ERR_TIMEOUT;
    } else if (!bus->connect_ok) {
        err__set(errbuf, errlen, "cannot connect to %s: %s", bus->url, bus->connect_reason);
        err = FB_ERR_CONNECT;
    }
    pthread_mutex_unlock(&bus->mu);
    if (err != FB_OK)
        goto out;

    set_nodelay(bus);
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

enum fb_err fb_bus_subscribe(fb_bus *bus, const char *const *filters, size_t n, double timeout)
{
    MQTTAsync_responseOptions resp = MQTTAsync_responseOptions_initializer;
    MQTTSubscribe_options *sub_opts = NULL;
    MQTTSubscribe_options init = MQTTSubscribe_options_initializer;
    int *qos = NULL;
    enum fb_err err = FB_OK;
    double deadline = deadline_after(timeout);
    size_t i;
    int rc;

    if (bus == NULL || filters == NULL || n == 0 || n > INT_MAX)
        return FB_ERR_INVALID;
    qos = malloc(n * sizeof *qos);
    sub_opts = malloc(n * sizeof *sub_opts);
    if (qos == NULL || sub_opts == NULL) {
        err = FB_ERR_NOMEM;
        goto out;
    }
    for (i = 0; i < n; i++) {
        if (filters[i] == NULL) {
            err = FB_ERR_INVALID;
            goto out;
        }
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
    /* Paho copies the topics; the cast only drops a const it does not use. */
    rc = MQTTAsync_subscribeMany(bus->client, (int)n, (char *const *)filters, qos, &resp);
    if (rc != MQTTASYNC_SUCCESS) {
        err = rc == MQTTASYNC_DISCONNECTED ? FB_ERR_LOST : FB_ERR_SUBSCRIBE;
        log__emit(bus->log, bus->log_ctx, FB_LOG_ERROR, "subscribe to %zu filters failed (Paho %d)",
                  n, rc);
        goto out;
    }
    pthread_mutex_lock(&bus->mu);
    while (bus->sub_token != resp.token && !bus->lost && wait_until(bus, deadline) != ETIMEDOUT)
        ;
    if (bus->sub_token == resp.token)
        err = bus->sub_ok ? FB_OK : FB_ERR_SUBSCRIBE;
    else
        err = bus->lost ? FB_ERR_LOST : FB_ERR_TIMEOUT;
    pthread_mutex_unlock(&bus->mu);
    if (err == FB_ERR_SUBSCRIBE)
        log__emit(bus->log, bus->log_ctx, FB_LOG_ERROR, "the broker refused a subscription");
out:
    free(qos);
    free(sub_opts);
    return err;
}

enum fb_err fb_bus_publish(fb_bus *bus, const char *topic, const void *payload, size_t len, int qos,
                           int retained, unsigned expiry_s)
{
    MQTTAsync_message msg = MQTTAsync_message_initializer;
    MQTTAsync_responseOptions resp = MQTTAsync_responseOptions_initializer;
    MQTTProperty expiry;
    enum fb_err err = FB_OK;
    double deadline;
    int counted = 0;
    int rc;

    if (bus == NULL || topic == NULL || (len > 0 && payload == NULL) || qos < 0 || qos > 1 ||
        len > INT_MAX)
        return FB_ERR_INVALID;

    pthread_mutex_lock(&bus->mu);
    if (qos == 1) {
        deadline = clock__mono() + PUBLISH_ROOM_TIMEOUT;
        while (bus->unacked >= bus->max_unacked && !bus->lost &&
               wait_until(bus, deadline) != ETIMEDOUT)
            ;
        if (!bus->lost && bus->unacked < bus->max_unacked) {
            bus->unacked++;
            counted = 1;
        }
    }
    if (bus->lost)
        err = FB_ERR_LOST;
    else if (qos == 1 && !counted)
        err = FB_ERR_TIMEOUT;
    pthread_mutex_unlock(&bus->mu);
    if (err != FB_OK)
        goto out;

    msg.payload = (void *)payload;
    msg.payloadlen = (int)len;
    msg.qos = qos;
    msg.retained = retained ? 1 : 0;
    if (expiry_s > 0) {
        memset(&expiry, 0, sizeof expiry);
        expiry.identifier = MQTTPROPERTY_CODE_MESSAGE_EXPIRY_INTERVAL;
        expiry.value.integer4 = expiry_s;
        if (MQTTProperties_add(&msg.properties, &expiry) != 0) {
            err = FB_ERR_NOMEM;
            goto out;
        }
    }
    /*
     * The response struct is passed even for QoS 0: with a NULL one Paho
     * silently drops the message properties (the expiry).
     */
    if (qos == 1) {
        resp.onSuccess5 = on_publish_ok;
        resp.onFailure5 = on_publish_fail;
        resp.context = bus;
    }
    rc = MQTTAsync_sendMessage(bus->client, topic, &msg, &resp);
    MQTTProperties_free(&msg.properties);
    if (rc != MQTTASYNC_SUCCESS) {
        err = rc == MQTTASYNC_DISCONNECTED ? FB_ERR_LOST : FB_ERR_PUBLISH;
        log__emit(bus->log, bus->log_ctx, FB_LOG_ERROR, "publish to %s failed (Paho %d)", topic,
                  rc);
        goto out;
    }
    counted = 0; /* the callbacks own the count now */
out:
    if (counted) {
        pthread_mutex_lock(&bus->mu);
        bus->unacked--;
        pthread_cond_broadcast(&bus->cv);
        pthread_mutex_unlock(&bus->mu);
    }
    return err;
}

enum fb_err fb_bus_flush(fb_bus *bus, double timeout)
{
    double deadline = deadline_after(timeout);
    enum fb_err err = FB_OK;

    if (bus == NULL)
        return FB_ERR_INVALID;
    pthread_mutex_lock(&bus->mu);
    while (bus->unacked > 0 && !bus->lost && wait_until(bus, deadline) != ETIMEDOUT)
        ;
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
        if (timeout == 0 || wait_until(bus, deadline) == ETIMEDOUT) {
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
    return bus != NULL ? bus->pipe_rd : -1;
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

enum fb_err fb_bus_close(fb_bus *bus, double timeout)
{
    MQTTAsync_disconnectOptions opts = MQTTAsync_disconnectOptions_initializer5;
    double deadline;
    enum fb_err err = FB_OK;
    int was_connected;
    int rc;

    if (bus == NULL)
        return FB_OK;
    if (timeout < 0)
        timeout = 5.0;
    pthread_mutex_lock(&bus->mu);
    was_connected = !bus->closed && bus->connected && !bus->lost;
    bus->closed = 1;
    pthread_mutex_unlock(&bus->mu);
    if (!was_connected)
        goto out;

    /*
     * Reason code 0 (normal disconnection) tells the broker to drop the Will.
     * Paho may keep the socket open for most of the timeout so that QoS 1
     * messages still in flight complete; callers flush first anyway.
     */
    opts.reasonCode = MQTTREASONCODE_SUCCESS;
    opts.timeout = (int)(timeout * 800);
    opts.onSuccess5 = on_disconnect_ok;
    opts.onFailure5 = on_disconnect_fail;
    opts.context = bus;
    deadline = clock__mono() + timeout;
    rc = MQTTAsync_disconnect(bus->client, &opts);
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
    free(msg->topic);
    free(msg->payload);
    /* msg is the first member of its queue node (see struct msg_node). */
    free((struct msg_node *)(void *)msg);
}
