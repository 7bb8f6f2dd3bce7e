/*
 * bus_mosq.c - fb_bus on libmosquitto (the default backend): the handle's
 * life, connecting with the Last Will and TLS, subscribe, publish, flush,
 * close, and libmosquitto's callbacks.
 *
 * libmosquitto runs here without a thread of its own (no mosquitto_loop_start):
 * each fb_bus call drives it from the caller's thread (bus_mosq_loop.c), and
 * the callbacks below run inside those calls, so they touch the bus without
 * a lock and never wait. What libmosquitto already does is not done again:
 * it keeps every unacknowledged QoS 1 publish across a reconnect and sends
 * them again in their order before any newer one, honours the broker's
 * Receive Maximum (holding the rest until PUBACKs free a slot) and sends the
 * keepalive pings from mosquitto_loop_misc. The bus counts the QoS 1
 * publishes it handed over (a bit per message id) so that fb_bus_flush and
 * the MAX_UNACKED bound know what is still unacknowledged.
 */
#include <errno.h>
#include <limits.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bus_mosq_internal.h"

/* The system's CA store (Debian: ca-certificates), used when no ca_file is given. */
#define SYSTEM_CA_DIR "/etc/ssl/certs"

/* ------------------------------------------------------------------------ */
/* Callbacks (they run inside mosquitto_loop_read/write, on our thread)      */
/* ------------------------------------------------------------------------ */

static void finish_connect(fb_bus *bus, int ok, int refused, const char *reason)
{
    bus->awaiting_connack = 0;
    bus->connect_done = 1;
    bus->connect_ok = ok;
    bus->connect_refused = refused;
    if (reason != NULL)
        snprintf(bus->connect_reason, sizeof bus->connect_reason, "%s", reason);
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc, int flags,
                       const mosquitto_property *props)
{
    fb_bus *bus = obj;
    char reason[sizeof bus->connect_reason];
    int mid = 0;

    (void)flags;
    (void)props;
    if (rc != 0) {
        snprintf(reason, sizeof reason, "broker refused: %s", mosquitto_reason_string(rc));
        finish_connect(bus, 0, 1, reason);
        return;
    }
    finish_connect(bus, 1, 0, NULL);
    bus->link_up = 1;
    if (!bus->reconnecting) {
        atomic_store((_Atomic int *)&bus->connected, 1);
        return;
    }
    /*
     * A reconnect: the clean start made the broker forget our filters. The
     * SUBSCRIBE is queued now, before libmosquitto re-sends the unacknowledged
     * publishes (right after this callback), so a retained answer to them
     * cannot slip past; the bus is usable again at its SUBACK.
     */
    if (bus->n_filters > 0 &&
        mosquitto_subscribe_multiple(mosq, &mid, (int)bus->n_filters, bus->filters, 1, 0, NULL) ==
            MOSQ_ERR_SUCCESS) {
        bus->resub_mid = mid;
        return;
    }
    if (bus->n_filters > 0)
        log__emit(bus->log, bus->log_ctx, FB_LOG_WARN,
                  "could not subscribe again to %zu filters on %s", bus->n_filters, bus->url);
    bus_mosq__resynced(bus);
}

void bus_mosq__disconnected(fb_bus *bus, int rc)
{
    char reason[sizeof bus->connect_reason];

    bus->disconnects++;
    bus->sock_dead = 1;
    if (bus->awaiting_connack) {
        /* The attempt ended before its CONNACK: TLS refused, wrong port, broker gone. */
        if (bus->tls_error[0] != '\0')
            snprintf(reason, sizeof reason,
                     "TLS handshake failed: %s (the broker's certificate may be from another CA, "
                     "or may not be for host '%.64s')",
                     bus->tls_error, bus->addr.host);
        else if (rc >= 128)
            snprintf(reason, sizeof reason, "broker refused: %s", mosquitto_reason_string(rc));
        else
            snprintf(reason, sizeof reason, "the connection closed before the broker's CONNACK (%s)",
                     mosquitto_strerror(rc));
        finish_connect(bus, 0, rc >= 128, reason);
    }
    bus_mosq__link_down(bus, rc);
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc, const mosquitto_property *props)
{
    (void)mosq;
    (void)props;
    bus_mosq__disconnected(obj, rc);
}

static int is_qos1(const fb_bus *bus, int mid)
{
    return mid >= 0 && mid <= 0xffff && (bus->qos1_mids[mid >> 3] & (1u << (mid & 7))) != 0;
}

static void on_publish(struct mosquitto *mosq, void *obj, int mid, int rc,
                       const mosquitto_property *props)
{
    fb_bus *bus = obj;

    (void)mosq;
    (void)props;
    /* QoS 0 publishes come here too, once written: only ours count. */
    if (!is_qos1(bus, mid))
        return;
    bus->qos1_mids[mid >> 3] &= (uint8_t) ~(1u << (mid & 7));
    if (bus->unacked > 0)
        bus->unacked--;
    if (rc >= 128) {
        bus->publish_failures++;
        log__emit(bus->log, bus->log_ctx, FB_LOG_ERROR, "the broker refused a publish: %s",
                  mosquitto_reason_string(rc));
    }
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
    fb_bus *bus = obj;

    (void)mosq;
    (void)props;
    if (!bus_mosq__queue(bus, msg->topic, msg->payload,
                         msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0, msg->retain ? 1 : 0))
        log__emit(bus->log, bus->log_ctx, FB_LOG_ERROR,
                  "out of memory: a message on %s was dropped", msg->topic);
}

static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int count, const int *granted,
                         const mosquitto_property *props)
{
    fb_bus *bus = obj;
    int ok = 1;
    int i;

    (void)mosq;
    (void)props;
    for (i = 0; i < count; i++)
        if (granted[i] >= 128)
            ok = 0;
    if (mid == bus->resub_mid && bus->resub_mid != 0) {
        bus->resub_mid = 0;
        if (!ok)
            log__emit(bus->log, bus->log_ctx, FB_LOG_WARN,
                      "the broker refused a filter when subscribing again on %s", bus->url);
        bus_mosq__resynced(bus);
    }
    if (mid == bus->sub_mid) {
        bus->sub_done = 1;
        bus->sub_ok = ok;
    }
}

/*
 * libmosquitto reports a failed TLS handshake only in its log ("OpenSSL
 * Error[0]: error:0A000086:SSL routines::certificate verify failed"); the
 * first such line's reason is kept for the connect error. The log callback
 * is set only on TLS buses: without one libmosquitto formats nothing.
 */
static void on_log(struct mosquitto *mosq, void *obj, int level, const char *str)
{
    fb_bus *bus = obj;
    const char *p;
    const char *colon;

    (void)mosq;
    (void)level;
    if (bus->tls_error[0] != '\0' || strstr(str, "OpenSSL Error") == NULL)
        return;
    p = str;
    /* The reason follows the last ':' of "error:code:library:function:reason". */
    while ((colon = strchr(p, ':')) != NULL)
        p = colon + 1;
    snprintf(bus->tls_error, sizeof bus->tls_error, "%s", *p != '\0' ? p : str);
}

void bus_mosq__set_callbacks(fb_bus *bus)
{
    mosquitto_connect_v5_callback_set(bus->mosq, on_connect);
    mosquitto_disconnect_v5_callback_set(bus->mosq, on_disconnect);
    mosquitto_publish_v5_callback_set(bus->mosq, on_publish);
    mosquitto_message_v5_callback_set(bus->mosq, on_message);
    mosquitto_subscribe_v5_callback_set(bus->mosq, on_subscribe);
    if (bus->addr.tls)
        mosquitto_log_callback_set(bus->mosq, on_log);
}

/* ------------------------------------------------------------------------ */
/* Connecting                                                                */
/* ------------------------------------------------------------------------ */

enum fb_err bus_mosq__connect_start(fb_bus *bus, int again)
{
    int one = 1;
    int sock;
    int rc;

    bus->connect_done = 0;
    bus->connect_ok = 0;
    bus->connect_refused = 0;
    bus->connect_reason[0] = '\0';
    bus->tls_error[0] = '\0';
    bus->link_up = 0;
    bus->sock_dead = 0;
    bus->sock_gen++;
    /*
     * The TCP connect blocks (on loopback it is answered at once, refused
     * included); CONNECT, the TLS handshake and the CONNACK then go through
     * the loop with the connect timeout as their deadline.
     */
    errno = 0;
    if (again)
        rc = mosquitto_reconnect(bus->mosq);
    else
        rc = mosquitto_connect_bind_v5(bus->mosq, bus->addr.host, atoi(bus->addr.port),
                                       bus->opt.keepalive, NULL, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        if (bus->tls_error[0] != '\0')
            snprintf(bus->connect_reason, sizeof bus->connect_reason,
                     "TLS handshake failed: %s (the broker's certificate may be from another CA, "
                     "or may not be for host '%.64s')",
                     bus->tls_error, bus->addr.host);
        else if (rc == MOSQ_ERR_ERRNO)
            snprintf(bus->connect_reason, sizeof bus->connect_reason, "%s", strerror(errno));
        else
            snprintf(bus->connect_reason, sizeof bus->connect_reason, "%s",
                     mosquitto_strerror(rc));
        bus->connect_done = 1;
        return FB_ERR_CONNECT;
    }
    sock = mosquitto_socket(bus->mosq);
    /* MOSQ_OPT_TCP_NODELAY set it before CONNECT already; this makes sure. */
    if (sock >= 0)
        setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    bus->awaiting_connack = 1;
    bus->connack_deadline = fb_clock_mono() + bus->opt.connect_timeout;
    return FB_OK;
}

/* ------------------------------------------------------------------------ */
/* Setup                                                                     */
/* ------------------------------------------------------------------------ */

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_rc;

static void lib_init(void)
{
    lib_rc = mosquitto_lib_init();
}

/* Creates bus->mosq for client_id with the options every connect uses. */
static enum fb_err make_client(fb_bus *bus, const char *client_id, char *errbuf, size_t errlen)
{
    size_t wlen;
    int rc;

    bus->mosq = mosquitto_new(client_id, true, bus);
    if (bus->mosq == NULL) {
        err__set(errbuf, errlen, "cannot create the MQTT client: %s", strerror(errno));
        return errno == ENOMEM ? FB_ERR_NOMEM : FB_ERR_INVALID;
    }
    mosquitto_int_option(bus->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_int_option(bus->mosq, MOSQ_OPT_TCP_NODELAY, 1);
    bus_mosq__set_callbacks(bus);
    if (bus->opt.username != NULL &&
        mosquitto_username_pw_set(bus->mosq, bus->opt.username, bus->opt.password) !=
            MOSQ_ERR_SUCCESS) {
        err__set(errbuf, errlen, "the user name is not valid UTF-8");
        return FB_ERR_INVALID;
    }
    if (bus->opt.will_topic != NULL) {
        wlen = strlen(bus->opt.will_payload);
        rc = wlen > INT_MAX ? MOSQ_ERR_PAYLOAD_SIZE
                            : mosquitto_will_set_v5(bus->mosq, bus->opt.will_topic, (int)wlen,
                                                    bus->opt.will_payload, 1,
                                                    bus->opt.will_retained != 0, NULL);
        if (rc != MOSQ_ERR_SUCCESS) {
            err__set(errbuf, errlen, "the Last Will on '%s' is not valid: %s", bus->opt.will_topic,
                     mosquitto_strerror(rc));
            return FB_ERR_INVALID;
        }
    }
    if (bus->addr.tls) {
        /*
         * Verification is always on: the chain against ca_file (or the system
         * store) and the host name or IP address against the certificate
         * (libmosquitto checks it unless told insecure, which we never do).
         */
        if (bus->opt.ca_file == NULL)
            mosquitto_int_option(bus->mosq, MOSQ_OPT_TLS_USE_OS_CERTS, 1);
        rc = mosquitto_tls_set(bus->mosq, bus->opt.ca_file,
                               bus->opt.ca_file == NULL ? SYSTEM_CA_DIR : NULL, bus->opt.cert_file,
                               bus->opt.key_file != NULL ? bus->opt.key_file : bus->opt.cert_file,
                               NULL);
        if (rc == MOSQ_ERR_SUCCESS)
            rc = mosquitto_tls_opts_set(bus->mosq, 1, NULL, NULL);
        if (rc != MOSQ_ERR_SUCCESS) {
            err__set(errbuf, errlen, "cannot use the TLS files: %s", mosquitto_strerror(rc));
            return FB_ERR_INVALID;
        }
    }
    return FB_OK;
}

static void destroy(fb_bus *bus)
{
    size_t i;

    if (bus->mosq != NULL)
        mosquitto_destroy(bus->mosq);
    bus_mosq__free_loop(bus);
    for (i = 0; i < bus->n_filters; i++)
        free(bus->filters[i]);
    free(bus->filters);
    mosquitto_property_free_all(&bus->expiry_props);
    free(bus->qos1_mids);
    bus_options__free(&bus->opt);
    if (bus->have_mu)
        pthread_mutex_destroy(&bus->mu);
    free(bus);
}

enum fb_err fb_bus_new(const fb_bus_options *opts, fb_bus **out, char *errbuf, size_t errlen)
{
    fb_bus *bus = NULL;
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
    pthread_once(&lib_once, lib_init);
    if (lib_rc != MOSQ_ERR_SUCCESS) {
        err__set(errbuf, errlen, "cannot initialise libmosquitto: %s", mosquitto_strerror(lib_rc));
        err = FB_ERR_SYSTEM;
        goto out;
    }
    bus = calloc(1, sizeof *bus);
    if (bus == NULL || (bus->qos1_mids = calloc(65536 / 8, 1)) == NULL) {
        err__set(errbuf, errlen, "out of memory");
        err = FB_ERR_NOMEM;
        goto out;
    }
    if (pthread_mutex_init(&bus->mu, NULL) != 0) {
        err__set(errbuf, errlen, "cannot set up the bus: %s", strerror(errno));
        err = FB_ERR_SYSTEM;
        goto out;
    }
    bus->have_mu = 1;
    bus->log = opts->log;
    bus->log_ctx = opts->log_ctx;
    bus->epoll_fd = bus->timer_fd = bus->event_fd = bus->sock_watched = -1;
    err = bus_addr__check_options(opts, &bus->addr, bus->url, sizeof bus->url, paho_url,
                                  sizeof paho_url, client_id, sizeof client_id, errbuf, errlen);
    if (err != FB_OK)
        goto out;
    if (!bus_options__keep(&bus->opt, opts)) {
        err__set(errbuf, errlen, "out of memory");
        err = FB_ERR_NOMEM;
        goto out;
    }
    /* libmosquitto refuses keepalives under 5 s (MOSQ_ERR_INVAL): raised to that (flowbus.h). */
    if (bus->opt.keepalive < 5)
        bus->opt.keepalive = 5;
    err = make_client(bus, client_id, errbuf, errlen);
    if (err != FB_OK)
        goto out;

    err = bus_mosq__connect_start(bus, 0);
    while (err == FB_OK && !bus->connect_done) {
        if (fb_clock_mono() >= bus->connack_deadline) {
            err = FB_ERR_TIMEOUT;
            break;
        }
        bus_mosq__wait(bus, bus->connack_deadline, 1);
    }
    if (err == FB_OK && !bus->connect_ok)
        err = FB_ERR_CONNECT;
    if (err == FB_ERR_TIMEOUT)
        err__set(errbuf, errlen, "no answer from the broker at %s within %.1f s", bus->url,
                 bus->opt.connect_timeout);
    else if (err != FB_OK)
        err__set(errbuf, errlen, "cannot connect to %s: %s", bus->url, bus->connect_reason);
    if (err != FB_OK)
        goto out;
    bus->started = 1;
    log__emit(bus->log, bus->log_ctx, FB_LOG_DEBUG, "connected to %s", bus->url);
    *out = bus;
    bus = NULL;
out:
    if (bus != NULL)
        destroy(bus);
    return err;
}

/* ------------------------------------------------------------------------ */
/* Operations                                                                */
/* ------------------------------------------------------------------------ */

/* Keeps copies of filters for re-subscribing (not twice the same). */
static enum fb_err remember_filters(fb_bus *bus, const char *const *filters, size_t n)
{
    size_t i, j;
    char **grown;

    for (i = 0; i < n; i++) {
        for (j = 0; j < bus->n_filters; j++)
            if (strcmp(bus->filters[j], filters[i]) == 0)
                break;
        if (j < bus->n_filters)
            continue;
        grown = realloc(bus->filters, (bus->n_filters + 1) * sizeof *grown);
        if (grown == NULL)
            return FB_ERR_NOMEM;
        bus->filters = grown;
        if ((bus->filters[bus->n_filters] = str__dup(filters[i])) == NULL)
            return FB_ERR_NOMEM;
        bus->n_filters++;
    }
    return FB_OK;
}

static enum fb_err subscribe_locked(fb_bus *bus, const char *const *filters, size_t n,
                                    double timeout)
{
    double deadline = bus_mosq__deadline(timeout);
    enum fb_err err = FB_OK;
    size_t i;
    int mid = 0;
    int rc;

    if (bus == NULL || filters == NULL || n == 0 || n > INT_MAX)
        return FB_ERR_INVALID;
    for (i = 0; i < n; i++)
        if (filters[i] == NULL)
            return FB_ERR_INVALID;
    /* Remembered first: a reconnect from now on subscribes them too. */
    err = remember_filters(bus, filters, n);
    if (err != FB_OK)
        return err;
    /* A reconnect in progress subscribes every remembered filter: wait for it. */
    while (!bus->connected && !bus->lost) {
        if (deadline >= 0 && fb_clock_mono() >= deadline)
            return FB_ERR_TIMEOUT;
        bus_mosq__wait(bus, deadline, 1);
    }
    if (bus->lost)
        return FB_ERR_LOST;
    rc = mosquitto_subscribe_multiple(bus->mosq, &mid, (int)n, (char *const *)filters, 1, 0, NULL);
    /*
     * libmosquitto writes the SUBSCRIBE at once; a socket the broker has just
     * closed fails that write (EPIPE, ECONNRESET) or is already gone. That is
     * a dropped connection like one before the SUBACK: the loop below notices
     * it, and the reconnect subscribes the remembered filters.
     */
    if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN && rc != MOSQ_ERR_CONN_LOST &&
        rc != MOSQ_ERR_ERRNO) {
        log__emit(bus->log, bus->log_ctx, FB_LOG_ERROR, "subscribe to %zu filters failed: %s", n,
                  mosquitto_strerror(rc));
        return FB_ERR_SUBSCRIBE;
    }
    /* Its socket already closed without the disconnect callback: nothing would be read. */
    if (rc != MOSQ_ERR_SUCCESS && bus->link_up && mosquitto_socket(bus->mosq) < 0)
        bus_mosq__disconnected(bus, rc);
    bus->sub_mid = mid;
    bus->sub_done = 0;
    while (!bus->sub_done && !bus->lost && bus->link_up) {
        if (deadline >= 0 && fb_clock_mono() >= deadline) {
            err = FB_ERR_TIMEOUT;
            break;
        }
        bus_mosq__wait(bus, deadline, 1);
    }
    if (err == FB_OK && !bus->sub_done) {
        /* The connection dropped first: the reconnect subscribes the filters again. */
        while (!bus->connected && !bus->lost) {
            if (deadline >= 0 && fb_clock_mono() >= deadline) {
                err = FB_ERR_TIMEOUT;
                break;
            }
            bus_mosq__wait(bus, deadline, 1);
        }
        if (err == FB_OK && bus->lost)
            err = FB_ERR_LOST;
    } else if (err == FB_OK && !bus->sub_ok) {
        err = FB_ERR_SUBSCRIBE;
    }
    bus->sub_mid = 0;
    bus_mosq__step(bus, 0);
    return err;
}

enum fb_err fb_bus_subscribe(fb_bus *bus, const char *const *filters, size_t n, double timeout)
{
    enum fb_err err;

    if (bus == NULL)
        return FB_ERR_INVALID;
    pthread_mutex_lock(&bus->mu);
    err = subscribe_locked(bus, filters, n, timeout);
    pthread_mutex_unlock(&bus->mu);
    return err;
}

/* The message-expiry property for expiry_s, kept for the next publish with the same. */
static const mosquitto_property *expiry_props(fb_bus *bus, unsigned expiry_s)
{
    if (expiry_s == 0)
        return NULL;
    if (bus->expiry_props == NULL || bus->expiry_value != expiry_s) {
        mosquitto_property_free_all(&bus->expiry_props);
        if (mosquitto_property_add_int32(&bus->expiry_props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL,
                                         expiry_s) != MOSQ_ERR_SUCCESS)
            return NULL;
        bus->expiry_value = expiry_s;
    }
    return bus->expiry_props;
}

static enum fb_err publish_locked(fb_bus *bus, const char *topic, const void *payload, size_t len,
                                  int qos, int retained, unsigned expiry_s)
{
    double deadline;
    const mosquitto_property *props;
    enum fb_err err = FB_OK;
    int mid = 0;
    int rc;

    if (bus == NULL || topic == NULL || (len > 0 && payload == NULL) || qos < 0 || qos > 1 ||
        len > INT_MAX)
        return FB_ERR_INVALID;
    if (bus->lost)
        return FB_ERR_LOST;
    props = expiry_props(bus, expiry_s);
    if (expiry_s > 0 && props == NULL)
        return FB_ERR_NOMEM;
    if (qos == 0) {
        /* Reconnecting: QoS 0 is not kept (see flowbus.h). */
        if (!bus->connected)
            return FB_OK;
        rc = mosquitto_publish_v5(bus->mosq, NULL, topic, (int)len, payload, 0, retained != 0,
                                  props);
        if (rc == MOSQ_ERR_NOMEM)
            err = FB_ERR_NOMEM;
        else if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN && rc != MOSQ_ERR_CONN_LOST) {
            log__emit(bus->log, bus->log_ctx, FB_LOG_ERROR, "publish to %s failed: %s", topic,
                      mosquitto_strerror(rc));
            err = FB_ERR_PUBLISH;
        }
        goto out;
    }
    /* The bound on unacknowledged messages: drive the loop until a PUBACK makes room. */
    deadline = fb_clock_mono() + PUBLISH_ROOM_TIMEOUT;
    while (bus->unacked >= MAX_UNACKED && !bus->lost) {
        if (fb_clock_mono() >= deadline) {
            err = FB_ERR_TIMEOUT;
            goto out;
        }
        bus_mosq__wait(bus, deadline, 1);
    }
    if (bus->lost) {
        err = FB_ERR_LOST;
        goto out;
    }
    /*
     * While disconnected libmosquitto still queues a QoS 1 message (it says
     * MOSQ_ERR_NO_CONN) and sends it after the reconnect, behind the older ones.
     */
    rc = mosquitto_publish_v5(bus->mosq, &mid, topic, (int)len, payload, 1, retained != 0, props);
    if (rc == MOSQ_ERR_SUCCESS || rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST) {
        if (!is_qos1(bus, mid) && mid > 0 && mid <= 0xffff) {
            bus->qos1_mids[mid >> 3] |= (uint8_t)(1u << (mid & 7));
            bus->unacked++;
        }
    } else if (rc == MOSQ_ERR_NOMEM) {
        err = FB_ERR_NOMEM;
    } else {
        log__emit(bus->log, bus->log_ctx, FB_LOG_ERROR, "publish to %s failed: %s", topic,
                  mosquitto_strerror(rc));
        err = FB_ERR_PUBLISH;
    }
out:
    /* What could not be written at once is written when the socket allows (fb_bus_fd). */
    bus_mosq__step(bus, 0);
    return err;
}

enum fb_err fb_bus_publish(fb_bus *bus, const char *topic, const void *payload, size_t len, int qos,
                           int retained, unsigned expiry_s)
{
    enum fb_err err;

    if (bus == NULL)
        return FB_ERR_INVALID;
    pthread_mutex_lock(&bus->mu);
    err = publish_locked(bus, topic, payload, len, qos, retained, expiry_s);
    pthread_mutex_unlock(&bus->mu);
    return err;
}

static enum fb_err flush_locked(fb_bus *bus, double timeout)
{
    double deadline = bus_mosq__deadline(timeout);
    enum fb_err err = FB_OK;
    int had_unacked;

    if (bus == NULL)
        return FB_ERR_INVALID;
    /*
     * A reconnect in between does not end the wait: libmosquitto re-sends.
     * With something to confirm, the wait also lasts until that reconnect is
     * done (re-subscribed), so that what the caller does next meets a
     * settled connection.
     */
    had_unacked = bus->unacked > 0;
    while ((bus->unacked > 0 || (had_unacked && bus->reconnecting)) && !bus->lost) {
        if (deadline >= 0 && fb_clock_mono() >= deadline)
            break;
        bus_mosq__wait(bus, deadline, 1);
    }
    if (bus->unacked > 0 || (had_unacked && bus->reconnecting))
        err = bus->lost ? FB_ERR_LOST : FB_ERR_TIMEOUT;
    else if (bus->publish_failures > 0)
        err = FB_ERR_PUBLISH;
    bus->publish_failures = 0;
    return err;
}

enum fb_err fb_bus_flush(fb_bus *bus, double timeout)
{
    enum fb_err err;

    if (bus == NULL)
        return FB_ERR_INVALID;
    pthread_mutex_lock(&bus->mu);
    err = flush_locked(bus, timeout);
    pthread_mutex_unlock(&bus->mu);
    return err;
}

int fb_bus_connected(fb_bus *bus)
{
    if (bus == NULL)
        return 0;
    return atomic_load((_Atomic int *)&bus->connected);
}

unsigned fb_bus_reconnects(fb_bus *bus)
{
    if (bus == NULL)
        return 0;
    return atomic_load((_Atomic unsigned *)&bus->reconnects);
}

static enum fb_err close_locked(fb_bus *bus, double timeout)
{
    double deadline;
    enum fb_err err = FB_OK;

    if (bus == NULL)
        return FB_OK;
    if (timeout < 0)
        timeout = 5.0;
    if (bus->closed)
        return FB_OK;
    bus->closed = 1;
    if (!bus->link_up || bus->lost)
        goto out;
    /*
     * A clean DISCONNECT drops the Will. libmosquitto closes the socket once
     * it has written it (the disconnect callback then says rc 0); callers
     * flush first, so nothing of ours is in flight.
     */
    deadline = fb_clock_mono() + timeout;
    bus->closing = 1;
    if (mosquitto_disconnect_v5(bus->mosq, MQTT_RC_NORMAL_DISCONNECTION, NULL) != MOSQ_ERR_SUCCESS)
        goto out;
    bus_mosq__step(bus, 0);
    while (bus->link_up) {
        if (fb_clock_mono() >= deadline) {
            err = FB_ERR_TIMEOUT;
            break;
        }
        bus_mosq__wait(bus, deadline, 1);
    }
out:
    bus_mosq__mark_lost(bus);
    return err;
}

enum fb_err fb_bus_close(fb_bus *bus, double timeout)
{
    enum fb_err err;

    if (bus == NULL)
        return FB_OK;
    pthread_mutex_lock(&bus->mu);
    err = close_locked(bus, timeout);
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
