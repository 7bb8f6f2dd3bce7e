/*
 * bus_paho.c - the bus's transport on Eclipse Paho MQTTAsync: every call into
 * Paho, and every Paho callback.
 *
 * The callbacks translate what Paho hands over (success and failure data,
 * reason codes, its message struct) into the bus's own entry points
 * (bus__on_connected, bus_queue__on_message, bus_inflight__on_acked, ...),
 * which copy, signal and return; nothing here blocks in a callback. The
 * calls (bus_paho__connect, __subscribe, __send, ...) build Paho's option
 * structs and report in enum fb_err, so the rest of the bus never sees a
 * Paho type or code (bus_internal.h). Paho itself is loaded by paho_load.c.
 *
 * Reconnection is the bus's (bus_reconnect.c), not Paho's automaticReconnect,
 * whose retry interval has a granularity of whole seconds and which cannot
 * re-subscribe or re-send anything for us: Paho persistence is off and every
 * connect is a clean start.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus_paho_internal.h"
#include "paho_load.h"

/*
 * Paho refuses sends (-12) beyond maxBufferedMessages queued commands, even
 * while connected. QoS 1 is bounded above; this leaves room for QoS 0 bursts.
 */
#define MAX_BUFFERED 10000

/* ------------------------------------------------------------------------ */
/* Paho callbacks: translate, hand over, return. Never block here.          */
/* ------------------------------------------------------------------------ */

static void on_connect_ok(void *ctx, MQTTAsync_successData5 *resp)
{
    fb_bus *bus = ctx;
    unsigned max_unacked = MAX_UNACKED;
    int receive_max;

    if (resp != NULL &&
        bus->paho->props_has(&resp->properties, MQTTPROPERTY_CODE_RECEIVE_MAXIMUM)) {
        receive_max = bus->paho->props_number(&resp->properties, MQTTPROPERTY_CODE_RECEIVE_MAXIMUM);
        if (receive_max > 0 && (unsigned)receive_max < max_unacked)
            max_unacked = (unsigned)receive_max;
    }
    bus__on_connected(bus, max_unacked);
}

static void on_connect_fail(void *ctx, MQTTAsync_failureData5 *resp)
{
    fb_bus *bus = ctx;
    char reason[sizeof bus->connect_reason];
    char tls_error[sizeof bus->tls_error];
    int refused = 0;

    /* What on_tls_error kept of this attempt's handshake (connect_once cleared it before). */
    pthread_mutex_lock(&bus->mu);
    memcpy(tls_error, bus->tls_error, sizeof tls_error);
    pthread_mutex_unlock(&bus->mu);
    if (resp != NULL && resp->reasonCode != MQTTREASONCODE_SUCCESS) {
        refused = 1;
        snprintf(reason, sizeof reason, "broker refused: %s",
                 bus->paho->reason_text(resp->reasonCode));
    } else if (tls_error[0] != '\0') {
        snprintf(reason, sizeof reason, "TLS handshake failed: %s", tls_error);
    } else if (bus->addr.tls && resp != NULL && resp->message != NULL) {
        /* Paho checks the host name after the handshake and says nothing more precise. */
        snprintf(reason, sizeof reason,
                 "%s (code %d); if the port is up, the broker's certificate may not be for "
                 "host '%.64s'",
                 resp->message, resp->code, bus->addr.host);
    } else if (resp != NULL && resp->message != NULL) {
        snprintf(reason, sizeof reason, "%s (code %d)", resp->message, resp->code);
    } else {
        snprintf(reason, sizeof reason, "connect failed (code %d)", resp != NULL ? resp->code : -1);
    }
    bus__on_connect_failed(bus, refused, reason);
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
    bus_reconnect__on_lost(ctx, cause);
}

/* The broker sent an MQTT v5 DISCONNECT: the connection is about to close. */
static void on_disconnected(void *ctx, MQTTProperties *props, enum MQTTReasonCodes reason)
{
    fb_bus *bus = ctx;

    (void)props;
    bus_reconnect__on_broker_disconnect(bus, reason == MQTTREASONCODE_SESSION_TAKEN_OVER,
                                        bus->paho->reason_text(reason));
}

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
    fb_bus *bus = ctx;
    size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
    size_t plen = m->payloadlen > 0 ? (size_t)m->payloadlen : 0;

    if (!bus_queue__on_message(bus, topic, tlen, m->payload, plen, m->retained ? 1 : 0))
        return 0; /* Paho keeps the message and offers it again later */
    bus->paho->free_message(&m);
    bus->paho->free(topic);
    return 1;
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
    bus_subscribe__on_done(ctx, resp->token, ok);
}

/*
 * A refusal by the broker carries its SUBACK reason code (>= 0x80). Paho also
 * fails every subscribe still pending when the connection drops, with no
 * reason code, and it can do so before the bus has seen the loss: that is
 * "no answer" (-1), which fb_bus_subscribe waits out through the reconnect,
 * not a refusal.
 */
static void on_subscribe_fail(void *ctx, MQTTAsync_failureData5 *resp)
{
    int refused = resp != NULL && resp->reasonCode >= MQTTREASONCODE_UNSPECIFIED_ERROR;

    bus_subscribe__on_done(ctx, resp != NULL ? resp->token : -1, refused ? 0 : -1);
}

static void on_publish_ok(void *ctx, MQTTAsync_successData5 *resp)
{
    (void)resp;
    bus_inflight__on_acked(ctx);
}

/* A PUBACK with an error reason (e.g. not authorized) is the broker's answer, not a lost send. */
static void on_publish_fail(void *ctx, MQTTAsync_failureData5 *resp)
{
    bus_inflight__on_failed(ctx,
                            resp != NULL && resp->reasonCode >= MQTTREASONCODE_UNSPECIFIED_ERROR);
}

static void on_disconnect_ok(void *ctx, MQTTAsync_successData5 *resp)
{
    (void)resp;
    bus__on_disconnected(ctx);
}

static void on_disconnect_fail(void *ctx, MQTTAsync_failureData5 *resp)
{
    (void)resp;
    bus__on_disconnected(ctx);
}

/* ------------------------------------------------------------------------ */
/* Calls                                                                     */
/* ------------------------------------------------------------------------ */

enum fb_err bus_paho__create(fb_bus *bus, const char *paho_url, const char *client_id, char *errbuf,
                             size_t errlen)
{
    MQTTAsync_createOptions create_opts = MQTTAsync_createOptions_initializer5;

    bus->paho = paho_load__get(bus->addr.tls, errbuf, errlen);
    if (bus->paho == NULL)
        return FB_ERR_SYSTEM;
    create_opts.maxBufferedMessages = MAX_BUFFERED;
    if (bus->paho->create(&bus->client, paho_url, client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL,
                          &create_opts) != MQTTASYNC_SUCCESS) {
        err__set(errbuf, errlen, "cannot create an MQTT client for %s", bus->url);
        return FB_ERR_INVALID;
    }
    bus->have_client = 1;
    bus->paho->set_callbacks(bus->client, bus, on_connection_lost, on_message, NULL);
    bus->paho->set_disconnected(bus->client, bus, on_disconnected);
    return FB_OK;
}

void bus_paho__destroy(fb_bus *bus)
{
    if (bus->have_client)
        bus->paho->destroy(&bus->client);
    bus->have_client = 0;
}

enum fb_err bus_paho__connect(fb_bus *bus)
{
    MQTTAsync_connectOptions conn_opts = MQTTAsync_connectOptions_initializer5;
    MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
    MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
    int rc;

    conn_opts.keepAliveInterval = bus->opt.keepalive;
    conn_opts.cleanstart = 1;
    conn_opts.connectTimeout = (int)bus->opt.connect_timeout + 1;
    conn_opts.automaticReconnect = 0;
    conn_opts.username = bus->opt.username;
    conn_opts.password = bus->opt.password;
    conn_opts.onSuccess5 = on_connect_ok;
    conn_opts.onFailure5 = on_connect_fail;
    conn_opts.context = bus;
    if (bus->opt.will_topic != NULL) {
        will.topicName = bus->opt.will_topic;
        will.message = bus->opt.will_payload;
        will.retained = bus->opt.will_retained;
        will.qos = 1;
        conn_opts.will = &will;
    }
    if (bus->addr.tls) {
        /*
         * Verification is always on: the chain against ca_file (or the system
         * store) and, after the handshake, the host name or IP address against
         * the certificate (verify = 1).
         */
        ssl.trustStore = bus->opt.ca_file;
        ssl.keyStore = bus->opt.cert_file;
        ssl.privateKey = bus->opt.key_file;
        ssl.enableServerCertAuth = 1;
        ssl.verify = 1;
        ssl.ssl_error_cb = on_tls_error;
        ssl.ssl_error_context = bus;
        conn_opts.ssl = &ssl;
    }
    rc = bus->paho->connect(bus->client, &conn_opts);
    if (rc == MQTTASYNC_SUCCESS)
        return FB_OK;
    pthread_mutex_lock(&bus->mu);
    snprintf(bus->connect_reason, sizeof bus->connect_reason, "Paho code %d", rc);
    pthread_mutex_unlock(&bus->mu);
    return rc == MQTTASYNC_BAD_UTF8_STRING ? FB_ERR_INVALID : FB_ERR_CONNECT;
}

enum fb_err bus_paho__subscribe(fb_bus *bus, char *const *filters, size_t n, int *token)
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
    /* fb_bus_subscribe refuses n > INT_MAX, and re-subscribing sends what it accepted. */
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

/* Paho's code for a send: DISCONNECTED is a lost connection, anything else a failed publish. */
static enum fb_err send_result(int rc)
{
    if (rc == MQTTASYNC_SUCCESS)
        return FB_OK;
    return rc == MQTTASYNC_DISCONNECTED ? FB_ERR_LOST : FB_ERR_PUBLISH;
}

enum fb_err bus_paho__send(fb_bus *bus, struct pending *p, int *code)
{
    MQTTAsync_message msg = MQTTAsync_message_initializer;
    MQTTAsync_responseOptions resp = MQTTAsync_responseOptions_initializer;
    MQTTProperty expiry;
    int rc;

    msg.payload = p->payload;
    /* fb_bus_publish refuses a payload over INT_MAX bytes. */
    msg.payloadlen = (int)p->len;
    msg.qos = 1;
    msg.retained = p->retained;
    if (p->expiry_s > 0) {
        memset(&expiry, 0, sizeof expiry);
        expiry.identifier = MQTTPROPERTY_CODE_MESSAGE_EXPIRY_INTERVAL;
        expiry.value.integer4 = p->expiry_s;
        if (bus->paho->props_add(&msg.properties, &expiry) != 0) {
            *code = MQTTASYNC_FAILURE;
            return FB_ERR_PUBLISH;
        }
    }
    resp.onSuccess5 = on_publish_ok;
    resp.onFailure5 = on_publish_fail;
    resp.context = p;
    rc = bus->paho->send(bus->client, p->topic, &msg, &resp);
    bus->paho->props_free(&msg.properties);
    *code = rc;
    return send_result(rc);
}

enum fb_err bus_paho__send_qos0(fb_bus *bus, const char *topic, const void *payload, size_t len,
                                int retained, unsigned expiry_s, int *code)
{
    MQTTAsync_message msg = MQTTAsync_message_initializer;
    MQTTAsync_responseOptions resp = MQTTAsync_responseOptions_initializer;
    MQTTProperty expiry;
    int rc;

    /* Paho only reads the payload; the cast drops a const its struct does not have. */
    msg.payload = (void *)payload;
    msg.payloadlen = (int)len; /* fb_bus_publish refuses len > INT_MAX */
    msg.qos = 0;
    msg.retained = retained ? 1 : 0;
    if (expiry_s > 0) {
        memset(&expiry, 0, sizeof expiry);
        expiry.identifier = MQTTPROPERTY_CODE_MESSAGE_EXPIRY_INTERVAL;
        expiry.value.integer4 = expiry_s;
        if (bus->paho->props_add(&msg.properties, &expiry) != 0) {
            *code = MQTTASYNC_FAILURE;
            return FB_ERR_NOMEM;
        }
    }
    /*
     * The response struct is passed even for QoS 0: with a NULL one Paho
     * silently drops the message properties (the expiry).
     */
    rc = bus->paho->send(bus->client, topic, &msg, &resp);
    bus->paho->props_free(&msg.properties);
    *code = rc;
    return send_result(rc);
}

enum fb_err bus_paho__disconnect(fb_bus *bus)
{
    MQTTAsync_disconnectOptions opts = MQTTAsync_disconnectOptions_initializer5;

    /*
     * Reason code 0 (normal disconnection) tells the broker to drop the Will.
     * No delay for messages in flight (timeout 0): callers flush first, so
     * every publish of ours is acknowledged already, and what Paho may still
     * count in flight are its own repeats after a reconnect. With a delay,
     * Paho re-checks a pending disconnect only every 3 s (checkTimeouts), past
     * our deadline: the socket closed without DISCONNECT and the broker
     * published the Will (FB_STATE_CRASHED) for a task that had ended well.
     */
    opts.reasonCode = MQTTREASONCODE_SUCCESS;
    opts.timeout = 0;
    opts.onSuccess5 = on_disconnect_ok;
    opts.onFailure5 = on_disconnect_fail;
    opts.context = bus;
    return bus->paho->disconnect(bus->client, &opts) == MQTTASYNC_SUCCESS ? FB_OK : FB_ERR_LOST;
}
