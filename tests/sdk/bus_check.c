/*
 * bus_check.c - exercises fb_bus against a broker whose URL test_bus.py gives.
 *
 *   bus_check URL scheme       bad schemes are refused, mqtt:// is accepted
 *   bus_check URL refused      an unreachable broker gives FB_ERR_CONNECT,
 *                              and the password never appears in the message
 *   bus_check URL roundtrip N  N QoS 1 publishes, flush, receive them all via
 *                              poll() on fb_bus_fd, then close
 *   bus_check URL expiry       publishes a retained message with a 60 s expiry
 *   bus_check URL lost         prints "ready", then waits for FB_ERR_LOST
 *   bus_check URL timing       prints connect_ms and first QoS 1 round trip
 *   bus_check URL flush N      with reconnection on: prints "ready", waits for a
 *                              line on stdin, publishes N retained QoS 1 messages
 *                              (check/flush/<i>), prints "published", then
 *                              fb_bus_flush must succeed across a broker restart;
 *                              prints "flushed at=<CLOCK_MONOTONIC s> reconnects=R"
 *   bus_check URL many N       with reconnection on: publishes N QoS 1 messages
 *                              (check/many/<i>); after N/2 it flushes, prints
 *                              "half" and waits for a line on stdin; then it
 *                              publishes the rest and flushes (across a restart)
 *   bus_check URL subscribe    with reconnection on: connects, subscribes to
 *                              check/sub/# (10 s) and waits for one message on
 *                              it; prints "subscribed reconnects=R" and the
 *                              topic and payload ("got check/sub/x value")
 *   bus_check URL tls CA [CERT KEY]  connects over TLS, round trip of 10 messages
 *   bus_check URL tlsfail CA   the connect must fail with FB_ERR_CONNECT; prints
 *                              "message: ..."
 *
 * Prints "ok" and exits 0 on success; prints the failure and exits 1 otherwise.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "flowbus/flowbus.h"

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "bus_check: %s:%d: ", __FILE__, __LINE__);                             \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* SDK diagnostics with CLOCK_MONOTONIC seconds, the clock of Python's time.monotonic(). */
static void log_to_stderr(void *ctx, enum fb_log_level level, const char *msg)
{
    struct timespec ts;

    (void)ctx;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    fprintf(stderr, "bus_check: %.6f sdk[%d]: %s\n",
            (double)ts.tv_sec + (double)ts.tv_nsec / 1e9, (int)level, msg);
}

static fb_bus *open_bus(const char *url)
{
    fb_bus_options opts;
    fb_bus *bus = NULL;
    char errbuf[256];
    enum fb_err err;

    memset(&opts, 0, sizeof opts);
    opts.url = url;
    err = fb_bus_new(&opts, &bus, errbuf, sizeof errbuf);
    CHECK(err == FB_OK, "fb_bus_new(%s): %s: %s", url, fb_strerror(err), errbuf);
    return bus;
}

static fb_bus *open_bus_reconnecting(const char *url)
{
    fb_bus_options opts;
    fb_bus *bus = NULL;
    char errbuf[256];
    enum fb_err err;

    memset(&opts, 0, sizeof opts);
    opts.url = url;
    opts.reconnect_max_s = 30;
    opts.log = log_to_stderr;
    err = fb_bus_new(&opts, &bus, errbuf, sizeof errbuf);
    CHECK(err == FB_OK, "fb_bus_new(%s): %s: %s", url, fb_strerror(err), errbuf);
    return bus;
}

static void wait_stdin_line(void)
{
    char line[64];

    CHECK(fgets(line, sizeof line, stdin) != NULL, "no line on stdin");
}

static int readable(int fd, int timeout_ms)
{
    struct pollfd p = {fd, POLLIN, 0};

    return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

static void check_scheme(const char *url)
{
    fb_bus_options opts;
    fb_bus *bus = NULL;
    char errbuf[256];
    char mqtt_url[300];
    enum fb_err err;

    memset(&opts, 0, sizeof opts);
    opts.url = "http://127.0.0.1:1883";
    err = fb_bus_new(&opts, &bus, errbuf, sizeof errbuf);
    CHECK(err == FB_ERR_INVALID && bus == NULL, "http:// gave %s", fb_strerror(err));
    CHECK(strstr(errbuf, "scheme") != NULL, "unhelpful message: %s", errbuf);
    printf("message: %s\n", errbuf);
    opts.url = "127.0.0.1:1883";
    CHECK(fb_bus_new(&opts, &bus, errbuf, sizeof errbuf) == FB_ERR_INVALID, "no scheme accepted");
    opts.url = "tcp://127.0.0.1:99999";
    CHECK(fb_bus_new(&opts, &bus, errbuf, sizeof errbuf) == FB_ERR_INVALID, "bad port accepted");
    /* TLS files only go with a TLS scheme; a key needs its certificate. */
    opts.url = url;
    opts.ca_file = "/nonexistent/ca.pem";
    err = fb_bus_new(&opts, &bus, errbuf, sizeof errbuf);
    CHECK(err == FB_ERR_INVALID && strstr(errbuf, "mqtts://") != NULL, "ca_file with tcp://: %s",
          errbuf);
    opts.ca_file = NULL;
    opts.url = "mqtts://127.0.0.1:1";
    opts.key_file = "/nonexistent/key.pem";
    CHECK(fb_bus_new(&opts, &bus, errbuf, sizeof errbuf) == FB_ERR_INVALID, "key without cert");
    opts.key_file = NULL;

    /* mqtt:// means tcp:// */
    CHECK(strncmp(url, "tcp://", 6) == 0, "expected a tcp:// URL");
    snprintf(mqtt_url, sizeof mqtt_url, "mqtt://%s", url + 6);
    bus = open_bus(mqtt_url);
    CHECK(fb_bus_connected(bus), "not connected");
    CHECK(fb_bus_close(bus, 2.0) == FB_OK, "close failed");
    CHECK(!fb_bus_connected(bus), "still connected after close");
    CHECK(fb_bus_close(bus, 2.0) == FB_OK, "second close failed");
    fb_bus_free(bus);
    fb_bus_free(NULL);
    CHECK(fb_bus_close(NULL, 1.0) == FB_OK, "close(NULL)");
}

static void check_refused(const char *url)
{
    fb_bus_options opts;
    fb_bus *bus = NULL;
    char errbuf[256];
    enum fb_err err;

    memset(&opts, 0, sizeof opts);
    opts.url = url;
    opts.username = "someone";
    opts.password = "pw-never-shown-4242";
    opts.connect_timeout = 3;
    err = fb_bus_new(&opts, &bus, errbuf, sizeof errbuf);
    CHECK(err == FB_ERR_CONNECT || err == FB_ERR_TIMEOUT, "gave %s", fb_strerror(err));
    CHECK(bus == NULL, "handle returned on failure");
    CHECK(strstr(errbuf, "pw-never-shown") == NULL, "password in message: %s", errbuf);
    printf("message: %s\n", errbuf);
}

static void check_roundtrip(const char *url, int n)
{
    fb_bus *bus = open_bus(url);
    const char *filters[] = {"check/rt/#", "check/other"};
    fb_msg *msg = NULL;
    char payload[64];
    double t0;
    int got = 0;
    int i;

    CHECK(fb_bus_subscribe(bus, filters, 2, 5.0) == FB_OK, "subscribe");
    CHECK(!readable(fb_bus_fd(bus), 0), "fd readable before any message");
    CHECK(fb_bus_next(bus, 0, &msg) == FB_ERR_TIMEOUT && msg == NULL, "next on empty queue");
    t0 = now_ms();
    for (i = 0; i < n; i++) {
        int len = snprintf(payload, sizeof payload, "m%d", i);
        CHECK(fb_bus_publish(bus, "check/rt/x", payload, (size_t)len, 1, 0, 0) == FB_OK,
              "publish %d", i);
    }
    CHECK(fb_bus_flush(bus, 10.0) == FB_OK, "flush");
    printf("published %d QoS 1 messages in %.1f ms\n", n, now_ms() - t0);
    while (got < n) {
        enum fb_err err;

        CHECK(readable(fb_bus_fd(bus), 5000), "fd not readable with %d of %d received", got, n);
        while ((err = fb_bus_next(bus, 0, &msg)) == FB_OK) {
            snprintf(payload, sizeof payload, "m%d", got);
            CHECK(strcmp(msg->topic, "check/rt/x") == 0, "topic %s", msg->topic);
            CHECK(msg->len == strlen(payload) && strcmp(msg->payload, payload) == 0,
                  "message %d is %s", got, msg->payload);
            CHECK(!msg->retained, "live message marked retained");
            fb_msg_free(msg);
            got++;
        }
        CHECK(err == FB_ERR_TIMEOUT, "next: %s", fb_strerror(err));
    }
    CHECK(!readable(fb_bus_fd(bus), 0), "fd readable with an empty queue");
    printf("round trip of %d messages: %.1f ms\n", n, now_ms() - t0);

    /* Binary payloads survive, including a lone NUL byte. */
    CHECK(fb_bus_publish(bus, "check/other", "\0", 1, 0, 0, 0) == FB_OK, "qos0 publish");
    CHECK(fb_bus_next(bus, 5.0, &msg) == FB_OK, "no qos0 message");
    CHECK(msg->len == 1 && msg->payload[0] == '\0', "NUL payload mangled");
    fb_msg_free(msg);

    CHECK(fb_bus_close(bus, 2.0) == FB_OK, "close");
    CHECK(readable(fb_bus_fd(bus), 0), "fd not readable after close");
    CHECK(fb_bus_next(bus, 1.0, &msg) == FB_ERR_LOST, "next after close");
    CHECK(fb_bus_publish(bus, "check/other", "x", 1, 1, 0, 0) == FB_ERR_LOST,
          "publish after close");
    fb_bus_free(bus);
}

static void check_expiry(const char *url)
{
    fb_bus *bus = open_bus(url);

    CHECK(fb_bus_publish(bus, "check/expiry", "soon gone", 9, 1, 1, 60) == FB_OK, "publish");
    CHECK(fb_bus_flush(bus, 5.0) == FB_OK, "flush");
    CHECK(fb_bus_close(bus, 2.0) == FB_OK, "close");
    fb_bus_free(bus);
}

static void check_lost(const char *url)
{
    fb_bus *bus = open_bus(url);
    const char *filter = "check/lost";
    fb_msg *msg = NULL;
    enum fb_err err;

    CHECK(fb_bus_subscribe(bus, &filter, 1, 5.0) == FB_OK, "subscribe");
    printf("ready\n");
    fflush(stdout);
    err = fb_bus_next(bus, 20.0, &msg);
    CHECK(err == FB_ERR_LOST, "next gave %s", fb_strerror(err));
    CHECK(!fb_bus_connected(bus), "still connected");
    CHECK(readable(fb_bus_fd(bus), 0), "fd not readable after loss");
    CHECK(fb_bus_publish(bus, filter, "x", 1, 1, 0, 0) == FB_ERR_LOST, "publish after loss");
    CHECK(fb_bus_flush(bus, 1.0) == FB_OK, "flush with nothing pending");
    fb_bus_free(bus);
}

static void check_timing(const char *url)
{
    double t0 = now_ms();
    fb_bus *bus = open_bus(url);
    double t1 = now_ms();
    const char *filter = "check/timing";
    fb_msg *msg = NULL;
    double t2, t3;

    CHECK(fb_bus_subscribe(bus, &filter, 1, 5.0) == FB_OK, "subscribe");
    t2 = now_ms();
    CHECK(fb_bus_publish(bus, filter, "x", 1, 1, 0, 0) == FB_OK, "publish");
    CHECK(fb_bus_flush(bus, 5.0) == FB_OK, "flush");
    t3 = now_ms();
    CHECK(fb_bus_next(bus, 5.0, &msg) == FB_OK, "own message not received");
    fb_msg_free(msg);
    printf("connect_ms=%.3f subscribe_ms=%.3f qos1_ack_ms=%.3f echo_ms=%.3f\n", t1 - t0, t2 - t1,
           t3 - t2, now_ms() - t2);
    fflush(stdout);
    fb_bus_close(bus, 1.0);
    _exit(0);
}

static void check_flush(const char *url, int n)
{
    fb_bus *bus = open_bus_reconnecting(url);
    char topic[64];
    char payload[64];
    struct timespec ts;
    enum fb_err err;
    int i;

    printf("ready\n");
    fflush(stdout);
    wait_stdin_line();
    for (i = 0; i < n; i++) {
        int len = snprintf(payload, sizeof payload, "value-%d", i);

        snprintf(topic, sizeof topic, "check/flush/%d", i);
        CHECK(fb_bus_publish(bus, topic, payload, (size_t)len, 1, 1, 0) == FB_OK, "publish %d", i);
    }
    printf("published\n");
    fflush(stdout);
    err = fb_bus_flush(bus, 30.0);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    CHECK(err == FB_OK, "flush across the restart: %s", fb_strerror(err));
    CHECK(fb_bus_connected(bus), "not connected after the flush");
    printf("flushed at=%.6f reconnects=%u\n", (double)ts.tv_sec + (double)ts.tv_nsec / 1e9,
           fb_bus_reconnects(bus));
    fflush(stdout);
    err = fb_bus_close(bus, 2.0);
    CHECK(err == FB_OK, "close: %s", fb_strerror(err));
    fb_bus_free(bus);
}

/* The subscribe right after the connect; test_reconnect.py drops the connection under it. */
static void check_subscribe(const char *url)
{
    fb_bus *bus = open_bus_reconnecting(url);
    const char *filter = "check/sub/#";
    fb_msg *msg = NULL;
    enum fb_err err;

    err = fb_bus_subscribe(bus, &filter, 1, 10.0);
    CHECK(err == FB_OK, "subscribe: %s", fb_strerror(err));
    printf("subscribed reconnects=%u\n", fb_bus_reconnects(bus));
    fflush(stdout);
    err = fb_bus_next(bus, 10.0, &msg);
    CHECK(err == FB_OK, "no message on %s: %s", filter, fb_strerror(err));
    printf("got %s %.*s\n", msg->topic, (int)msg->len, (const char *)msg->payload);
    fflush(stdout);
    fb_msg_free(msg);
    err = fb_bus_close(bus, 2.0);
    CHECK(err == FB_OK, "close: %s", fb_strerror(err));
    fb_bus_free(bus);
}

static void check_many(const char *url, int n)
{
    fb_bus *bus = open_bus_reconnecting(url);
    char payload[64];
    double t0 = now_ms();
    enum fb_err err;
    int i;

    for (i = 0; i < n; i++) {
        int len = snprintf(payload, sizeof payload, "%d", i);

        if (i == n / 2) {
            CHECK(fb_bus_flush(bus, 10.0) == FB_OK, "flush of the first half");
            printf("half\n");
            fflush(stdout);
            wait_stdin_line();
        }
        err = fb_bus_publish(bus, "check/many/x", payload, (size_t)len, 1, 0, 0);
        CHECK(err == FB_OK, "publish %d: %s", i, fb_strerror(err));
    }
    err = fb_bus_flush(bus, 30.0);
    CHECK(err == FB_OK, "final flush: %s", fb_strerror(err));
    printf("published %d in %.1f ms, reconnects=%u\n", n, now_ms() - t0, fb_bus_reconnects(bus));
    CHECK(fb_bus_close(bus, 2.0) == FB_OK, "close");
    fb_bus_free(bus);
}

static void check_tls(const char *url, const char *ca, const char *cert, const char *key)
{
    fb_bus_options opts;
    fb_bus *bus = NULL;
    const char *filter = "check/tls";
    fb_msg *msg = NULL;
    char errbuf[256];
    enum fb_err err;
    int i;

    memset(&opts, 0, sizeof opts);
    opts.url = url;
    opts.ca_file = ca;
    opts.cert_file = cert;
    opts.key_file = key;
    err = fb_bus_new(&opts, &bus, errbuf, sizeof errbuf);
    CHECK(err == FB_OK, "fb_bus_new(%s): %s: %s", url, fb_strerror(err), errbuf);
    CHECK(fb_bus_subscribe(bus, &filter, 1, 5.0) == FB_OK, "subscribe");
    for (i = 0; i < 10; i++)
        CHECK(fb_bus_publish(bus, filter, "tls", 3, 1, 0, 0) == FB_OK, "publish");
    CHECK(fb_bus_flush(bus, 5.0) == FB_OK, "flush");
    for (i = 0; i < 10; i++) {
        CHECK(fb_bus_next(bus, 5.0, &msg) == FB_OK, "message %d not received", i);
        CHECK(strcmp(msg->payload, "tls") == 0, "payload %s", msg->payload);
        fb_msg_free(msg);
    }
    CHECK(fb_bus_close(bus, 2.0) == FB_OK, "close");
    fb_bus_free(bus);
}

/*
 * A bus left alone for several keepalives (as by a task whose command runs
 * long) stays connected: its Last Will must not fire, and it publishes at
 * once afterwards without having reconnected.
 */
static void check_idle(const char *url)
{
    fb_bus_options opts;
    fb_bus *bus = NULL;
    char errbuf[256];
    enum fb_err err;

    memset(&opts, 0, sizeof opts);
    opts.url = url;
    opts.keepalive = 5; /* libmosquitto's least */
    opts.will_topic = "check/idle/will";
    opts.will_payload = "dropped";
    opts.reconnect_max_s = 10;
    err = fb_bus_new(&opts, &bus, errbuf, sizeof errbuf);
    CHECK(err == FB_OK, "fb_bus_new: %s: %s", fb_strerror(err), errbuf);
    /*
     * 2.6 keepalives with no call but the ones fb_bus_fd asks for: the broker drops a silent
     * client after 1.5 (its check runs every few seconds: measured, it dropped one at 1.8).
     * The bus has no thread on libmosquitto: its timerfd wakes this poll for the pings.
     */
    {
        double until = fb_clock_mono() + 13.0;
        unsigned wakes = 0;

        while (fb_clock_mono() < until) {
            struct pollfd pfd = {.fd = fb_bus_fd(bus), .events = POLLIN};
            fb_msg *msg = NULL;

            CHECK(pfd.fd >= 0, "fb_bus_fd");
            if (poll(&pfd, 1, (int)((until - fb_clock_mono()) * 1000.0) + 1) > 0) {
                wakes++;
                err = fb_bus_next(bus, 0, &msg);
                CHECK(err == FB_ERR_TIMEOUT, "fb_bus_next while idle: %s", fb_strerror(err));
            }
        }
        /* Not a spin: a few wakes a second at most (each keepalive check, each ping's answer). */
        CHECK(wakes < 200, "fb_bus_fd woke the idle caller %u times in 13 s", wakes);
    }
    CHECK(fb_bus_connected(bus), "not connected after the idle time");
    CHECK(fb_bus_publish(bus, "check/idle/after", "x", 1, 1, 0, 0) == FB_OK, "publish");
    CHECK(fb_bus_flush(bus, 5.0) == FB_OK, "flush");
    CHECK(fb_bus_reconnects(bus) == 0, "reconnected %u times", fb_bus_reconnects(bus));
    CHECK(fb_bus_close(bus, 2.0) == FB_OK, "close");
    fb_bus_free(bus);
}

static void check_tls_fail(const char *url, const char *ca)
{
    fb_bus_options opts;
    fb_bus *bus = NULL;
    char errbuf[256];
    enum fb_err err;

    memset(&opts, 0, sizeof opts);
    opts.url = url;
    opts.ca_file = ca;
    opts.connect_timeout = 3;
    err = fb_bus_new(&opts, &bus, errbuf, sizeof errbuf);
    CHECK(err == FB_ERR_CONNECT, "gave %s: %s", fb_strerror(err), errbuf);
    CHECK(bus == NULL, "handle returned on failure");
    printf("message: %s\n", errbuf);
}

int main(int argc, char **argv)
{
    CHECK(argc >= 3, "usage: bus_check URL scheme|refused|roundtrip N|expiry|idle|lost|timing|flush N|many N|subscribe|tls CA [CERT KEY]|tlsfail CA");
    if (strcmp(argv[2], "scheme") == 0)
        check_scheme(argv[1]);
    else if (strcmp(argv[2], "refused") == 0)
        check_refused(argv[1]);
    else if (strcmp(argv[2], "roundtrip") == 0)
        check_roundtrip(argv[1], argc > 3 ? atoi(argv[3]) : 1000);
    else if (strcmp(argv[2], "expiry") == 0)
        check_expiry(argv[1]);
    else if (strcmp(argv[2], "idle") == 0)
        check_idle(argv[1]);
    else if (strcmp(argv[2], "lost") == 0)
        check_lost(argv[1]);
    else if (strcmp(argv[2], "timing") == 0)
        check_timing(argv[1]);
    else if (strcmp(argv[2], "flush") == 0)
        check_flush(argv[1], argc > 3 ? atoi(argv[3]) : 5);
    else if (strcmp(argv[2], "many") == 0)
        check_many(argv[1], argc > 3 ? atoi(argv[3]) : 1000);
    else if (strcmp(argv[2], "subscribe") == 0)
        check_subscribe(argv[1]);
    else if (strcmp(argv[2], "tls") == 0 && argc > 3)
        check_tls(argv[1], argv[3], argc > 5 ? argv[4] : NULL, argc > 5 ? argv[5] : NULL);
    else if (strcmp(argv[2], "tlsfail") == 0 && argc > 3)
        check_tls_fail(argv[1], argv[3]);
    else
        CHECK(0, "unknown check %s", argv[2]);
    printf("ok\n");
    return 0;
}
