/*
 * fbbench-rtt - the broker round trip between two processes, the reference
 * for hop latency.
 *
 *   fbbench-rtt paho|mosq|sdk URL N [QOS [GAP_MS]]
 *
 * The program starts a copy of itself as an echo process (posix_spawn, before
 * any Paho thread exists), then sends N pings one after the other; the echo
 * republishes each one and the time until it is back is one round trip: two
 * broker hops and two cross-process wake-ups. One hop is reported as RTT/2,
 * the method of ../shared/notes/mqtt-facts.md.
 *
 *   paho  raw Paho MQTTAsync v5, TCP_NODELAY on the socket, the echo sends from
 *         inside Paho's message callback: the floor a client library allows.
 *   mosq  raw libmosquitto v5, one thread driving mosquitto_loop, TCP_NODELAY,
 *         the echo sends from inside its message callback: the floor of
 *         the SDK's default backend.
 *   sdk   fb_bus on both sides, retained publishes, the echo a loop of
 *         fb_bus_next + fb_bus_publish on its main thread: what a task pays.
 *
 * With GAP_MS both processes sleep that long before each ping, so every
 * exchange starts from idle threads, as a hop in a chain of waiting tasks
 * does; without it the two processes stay hot.
 *
 * Across hosts (bench/multihost.py): FBBENCH_ECHO_URL gives the echo another
 * broker (the far side of a bridge) and FBBENCH_ECHO_NETNS a network namespace
 * (/run/netns/NAME) that the echo enters with setns(2) before it opens any
 * socket, so the two sides of each hop are on different namespaced hosts.
 *
 * Output (one line): mode=... qos=... n=... rtt_p50_us=... rtt_p99_us=...
 * hop_p50_us=... hop_p99_us=... hop_max_us=...
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <MQTTAsync.h>
#include <mosquitto.h>

#include "bench.h"
#include "flowbus/flowbus.h"

#define WARMUP 50
#define WAIT_S 5.0

extern char **environ;

static char ping_topic[64], pong_topic[64];
static int qos = 1;
static double gap; /* seconds of idleness before each ping (argument 5) */

/* ------------------------------------------------------------------------ */
/* Raw Paho                                                                  */
/* ------------------------------------------------------------------------ */

struct paho_side {
    MQTTAsync c;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int connected;
    int subscribed;
    long last_seq; /* main: sequence number of the last pong */
    int echo;      /* 1: republish every ping on the pong topic */
};

static void paho_on_connect(void *ctx, MQTTAsync_successData5 *r)
{
    struct paho_side *s = ctx;

    (void)r;
    pthread_mutex_lock(&s->mu);
    s->connected = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void paho_on_fail(void *ctx, MQTTAsync_failureData5 *r)
{
    (void)ctx;
    fprintf(stderr, "fbbench-rtt: paho failure %d\n", r ? r->code : -1);
    exit(1);
}

static void paho_on_sub(void *ctx, MQTTAsync_successData5 *r)
{
    struct paho_side *s = ctx;

    (void)r;
    pthread_mutex_lock(&s->mu);
    s->subscribed = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static int paho_on_msg(void *ctx, char *topic, int tlen, MQTTAsync_message *m)
{
    struct paho_side *s = ctx;

    (void)tlen;
    if (s->echo) {
        MQTTAsync_message out = MQTTAsync_message_initializer;
        MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;

        out.payload = m->payload;
        out.payloadlen = m->payloadlen;
        out.qos = qos;
        MQTTAsync_sendMessage(s->c, pong_topic, &out, &ro);
    } else {
        char buf[32];
        int n = m->payloadlen < 31 ? m->payloadlen : 31;

        memcpy(buf, m->payload, (size_t)n);
        buf[n] = '\0';
        pthread_mutex_lock(&s->mu);
        s->last_seq = atol(buf);
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    MQTTAsync_freeMessage(&m);
    MQTTAsync_free(topic);
    return 1;
}

/* Paho has no TCP_NODELAY option: set it on every socket whose peer is port. */
static void paho_nodelay(int port)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int one = 1;

    while (d != NULL && (e = readdir(d)) != NULL) {
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        int fd = atoi(e->d_name);

        if (e->d_name[0] >= '0' && e->d_name[0] <= '9' &&
            getpeername(fd, (struct sockaddr *)&peer, &len) == 0 && peer.sin_family == AF_INET &&
            ntohs(peer.sin_port) == port)
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (d != NULL)
        closedir(d);
}

static void paho_wait(struct paho_side *s, int *flag)
{
    double deadline = bench_mono() + WAIT_S;

    pthread_mutex_lock(&s->mu);
    while (!*flag && bench_mono() < deadline) {
        pthread_mutex_unlock(&s->mu);
        bench_sleep(0.0005);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    if (!*flag) {
        fprintf(stderr, "fbbench-rtt: paho setup timed out\n");
        exit(1);
    }
}

static void paho_open(struct paho_side *s, const char *url, const char *sub)
{
    MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer5;
    MQTTAsync_connectOptions cn = MQTTAsync_connectOptions_initializer5;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    const char *colon = strrchr(url, ':');
    char id[64];

    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    snprintf(id, sizeof id, "fbbench-rtt-%ld-%d", (long)getpid(), s->echo);
    if (MQTTAsync_createWithOptions(&s->c, url, id, MQTTCLIENT_PERSISTENCE_NONE, NULL, &co) != 0)
        exit(1);
    MQTTAsync_setCallbacks(s->c, s, NULL, paho_on_msg, NULL);
    cn.cleanstart = 1;
    cn.keepAliveInterval = 30;
    cn.onSuccess5 = paho_on_connect;
    cn.onFailure5 = paho_on_fail;
    cn.context = s;
    if (MQTTAsync_connect(s->c, &cn) != 0)
        exit(1);
    paho_wait(s, &s->connected);
    paho_nodelay(colon ? atoi(colon + 1) : 1883);
    ro.onSuccess5 = paho_on_sub;
    ro.onFailure5 = paho_on_fail;
    ro.context = s;
    MQTTAsync_subscribe(s->c, sub, qos, &ro);
    paho_wait(s, &s->subscribed);
}

static int paho_echo(const char *url)
{
    struct paho_side s = {0};

    s.echo = 1;
    paho_open(&s, url, ping_topic);
    /* Tell the main side we listen, then let Paho's thread do the work. */
    {
        MQTTAsync_message out = MQTTAsync_message_initializer;
        MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;

        out.payload = "-1";
        out.payloadlen = 2;
        out.qos = qos;
        /*
         * Retained: the main side may subscribe after this is sent (the two
         * connects race, and Paho's take 10 or 110 ms), and must still see it.
         */
        out.retained = 1;
        MQTTAsync_sendMessage(s.c, pong_topic, &out, &ro);
    }
    for (;;)
        pause();
    return 0; /* not reached: the main side kills the echo */
}

static int paho_main(const char *url, long n, double *rtt)
{
    struct paho_side s = {0};
    long i;

    s.last_seq = -2;
    paho_open(&s, url, pong_topic);
    /* The echo says "-1" once it listens; pings sent before would be lost. */
    {
        double deadline = bench_mono() + 2 * WAIT_S;
        long seen = -2;
        while (seen != -1 && bench_mono() < deadline) {
            bench_sleep(0.001);
            pthread_mutex_lock(&s.mu);
            seen = s.last_seq;
            pthread_mutex_unlock(&s.mu);
        }
        if (seen != -1)
            return 1;
    }
    for (i = -WARMUP; i < n; i++) {
        MQTTAsync_message out = MQTTAsync_message_initializer;
        MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
        char buf[32];
        double t0, deadline;
        long want = i + WARMUP;

        snprintf(buf, sizeof buf, "%ld", want);
        if (gap > 0)
            bench_sleep(gap);
        out.payload = buf;
        out.payloadlen = (int)strlen(buf);
        out.qos = qos;
        t0 = bench_mono();
        deadline = t0 + WAIT_S;
        if (MQTTAsync_sendMessage(s.c, ping_topic, &out, &ro) != 0)
            return 1;
        pthread_mutex_lock(&s.mu);
        while (s.last_seq != want && bench_mono() < deadline) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&s.cv, &s.mu, &ts);
        }
        pthread_mutex_unlock(&s.mu);
        if (s.last_seq != want)
            return 1;
        if (i >= 0)
            rtt[i] = bench_mono() - t0;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Raw libmosquitto                                                          */
/* ------------------------------------------------------------------------ */

struct mosq_side {
    struct mosquitto *m;
    int echo;
    int subscribed;
    long last_seq;
};

static void mosq_on_sub(struct mosquitto *m, void *ctx, int mid, int n, const int *granted)
{
    (void)m;
    (void)mid;
    (void)n;
    (void)granted;
    ((struct mosq_side *)ctx)->subscribed = 1;
}

static void mosq_on_msg(struct mosquitto *m, void *ctx, const struct mosquitto_message *msg)
{
    struct mosq_side *s = ctx;
    char buf[32];
    int len = msg->payloadlen < 31 ? msg->payloadlen : 31;

    memcpy(buf, msg->payload, (size_t)len);
    buf[len] = '\0';
    if (s->echo)
        mosquitto_publish(m, NULL, pong_topic, msg->payloadlen, msg->payload, qos, true);
    else
        s->last_seq = atol(buf);
}

static void mosq_open(struct mosq_side *s, const char *url, const char *sub)
{
    const char *hostport = strstr(url, "://");
    char host[128];
    int port = 1883;
    const char *colon;
    double deadline = bench_mono() + WAIT_S;

    hostport = hostport ? hostport + 3 : url;
    colon = strrchr(hostport, ':');
    snprintf(host, sizeof host, "%.*s", (int)(colon ? colon - hostport : (long)strlen(hostport)),
             hostport);
    if (colon)
        port = atoi(colon + 1);
    mosquitto_lib_init();
    s->m = mosquitto_new(NULL, true, s);
    if (s->m == NULL)
        exit(1);
    mosquitto_int_option(s->m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_int_option(s->m, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_subscribe_callback_set(s->m, mosq_on_sub);
    mosquitto_message_callback_set(s->m, mosq_on_msg);
    if (mosquitto_connect(s->m, host, port, 10) != MOSQ_ERR_SUCCESS ||
        mosquitto_subscribe(s->m, NULL, sub, qos) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "fbbench-rtt: mosq: cannot connect to %s\n", url);
        exit(1);
    }
    while (!s->subscribed && bench_mono() < deadline)
        mosquitto_loop(s->m, 100, 1);
    if (!s->subscribed)
        exit(1);
}

static int mosq_echo(const char *url)
{
    struct mosq_side s = {0};

    s.echo = 1;
    mosq_open(&s, url, ping_topic);
    /* Retained, so that a main side subscribing later still sees it (see paho_echo). */
    mosquitto_publish(s.m, NULL, pong_topic, 2, "-1", qos, true);
    for (;;)
        if (mosquitto_loop(s.m, 1000, 1) != MOSQ_ERR_SUCCESS)
            return 1;
}

static int mosq_main(const char *url, long n, double *rtt)
{
    struct mosq_side s = {0};
    double deadline = bench_mono() + 2 * WAIT_S;
    long i;

    s.last_seq = -2;
    mosq_open(&s, url, pong_topic);
    while (s.last_seq != -1 && bench_mono() < deadline)
        mosquitto_loop(s.m, 100, 1);
    if (s.last_seq != -1)
        return 1;
    for (i = -WARMUP; i < n; i++) {
        char buf[32];
        long want = i + WARMUP;
        double t0;

        snprintf(buf, sizeof buf, "%ld", want);
        if (gap > 0)
            bench_sleep(gap);
        t0 = bench_mono();
        deadline = t0 + WAIT_S;
        if (mosquitto_publish(s.m, NULL, ping_topic, (int)strlen(buf), buf, qos, true) !=
            MOSQ_ERR_SUCCESS)
            return 1;
        while (s.last_seq != want && bench_mono() < deadline)
            if (mosquitto_loop(s.m, 1000, 1) != MOSQ_ERR_SUCCESS)
                return 1;
        if (s.last_seq != want)
            return 1;
        if (i >= 0)
            rtt[i] = bench_mono() - t0;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The SDK's fb_bus                                                          */
/* ------------------------------------------------------------------------ */

static fb_bus *sdk_open(const char *url, const char *sub)
{
    fb_bus_options o = {0};
    fb_bus *bus = NULL;
    char err[256];

    o.url = url;
    if (fb_bus_new(&o, &bus, err, sizeof err) != FB_OK ||
        fb_bus_subscribe(bus, &sub, 1, WAIT_S) != FB_OK) {
        fprintf(stderr, "fbbench-rtt: sdk: %s\n", bus ? "subscribe failed" : err);
        exit(1);
    }
    return bus;
}

static int sdk_echo(const char *url)
{
    fb_bus *bus = sdk_open(url, ping_topic);
    fb_msg *m;

    /* Retained, so that a main side subscribing later still sees it (see paho_echo). */
    fb_bus_publish(bus, pong_topic, "-1", 2, qos, 1, 0);
    while (fb_bus_next(bus, -1, &m) == FB_OK) {
        fb_bus_publish(bus, pong_topic, m->payload, m->len, qos, 1, 0);
        fb_msg_free(m);
    }
    return 0;
}

static int sdk_main(const char *url, long n, double *rtt)
{
    fb_bus *bus = sdk_open(url, pong_topic);
    fb_msg *ready = NULL;
    long i;

    /* The echo says "-1" once it listens; pings sent before would be lost. */
    if (fb_bus_next(bus, 2 * WAIT_S, &ready) != FB_OK || atol(ready->payload) != -1)
        return 1;
    fb_msg_free(ready);

    for (i = -WARMUP; i < n; i++) {
        char buf[32];
        long want = i + WARMUP;
        double t0;
        fb_msg *m = NULL;
        int got = 0;

        snprintf(buf, sizeof buf, "%ld", want);
        if (gap > 0)
            bench_sleep(gap);
        t0 = bench_mono();
        if (fb_bus_publish(bus, ping_topic, buf, strlen(buf), qos, 1, 0) != FB_OK)
            return 1;
        while (!got && fb_bus_next(bus, WAIT_S, &m) == FB_OK) {
            got = atol(m->payload) == want;
            fb_msg_free(m);
        }
        if (!got)
            return 1;
        if (i >= 0)
            rtt[i] = bench_mono() - t0;
    }
    return 0;
}

/* Moves this process (single-threaded yet) into the network namespace ns. */
static int enter_netns(const char *ns)
{
    char path[256];
    int fd, rc = -1;

    snprintf(path, sizeof path, "/run/netns/%s", ns);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0)
        perror(path);
    else
        rc = 0;
    if (fd >= 0)
        close(fd);
    return rc;
}

int main(int argc, char **argv)
{
    int echo = argc > 1 && strcmp(argv[1], "--echo") == 0;
    char **a = argv + echo;
    int n_args = argc - echo;
    const char *mode, *url;
    long n;
    double *rtt;
    pid_t child;
    int rc;

    if (n_args < 4) {
        fprintf(stderr, "usage: fbbench-rtt paho|mosq|sdk URL N [QOS [GAP_MS]]\n");
        return 2;
    }
    mode = a[1];
    url = a[2];
    n = atol(a[3]);
    qos = n_args > 4 ? atoi(a[4]) : 1;
    gap = n_args > 5 ? atof(a[5]) / 1e3 : 0;
    snprintf(ping_topic, sizeof ping_topic, "fbbench/%ld/ping",
             (long)(echo ? getppid() : getpid()));
    snprintf(pong_topic, sizeof pong_topic, "fbbench/%ld/pong",
             (long)(echo ? getppid() : getpid()));
    if (echo) {
        const char *ns = getenv("FBBENCH_ECHO_NETNS");
        const char *echo_url = getenv("FBBENCH_ECHO_URL");

        if (ns != NULL && *ns != '\0' && enter_netns(ns) != 0)
            return 1;
        if (echo_url != NULL && *echo_url != '\0')
            url = echo_url;
        return strcmp(mode, "paho") == 0   ? paho_echo(url)
               : strcmp(mode, "mosq") == 0 ? mosq_echo(url)
                                           : sdk_echo(url);
    }

    rtt = calloc((size_t)n, sizeof *rtt);
    {
        char *cargv[] = {argv[0], "--echo", argv[1], argv[2], argv[3], argc > 4 ? argv[4] : "1",
                         NULL};
        if (rtt == NULL || posix_spawn(&child, "/proc/self/exe", NULL, NULL, cargv, environ) != 0)
            return 1;
    }
    rc = strcmp(mode, "paho") == 0   ? paho_main(url, n, rtt)
         : strcmp(mode, "mosq") == 0 ? mosq_main(url, n, rtt)
                                     : sdk_main(url, n, rtt);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    if (rc != 0) {
        fprintf(stderr, "fbbench-rtt: %s: a ping was not answered\n", mode);
        return 1;
    }
    {
        double p50 = bench_quantile(rtt, (size_t)n, 0.50) * 1e6;
        double p99 = bench_quantile(rtt, (size_t)n, 0.99) * 1e6;
        double max = bench_quantile(rtt, (size_t)n, 1.0) * 1e6;
        long i, slow = 0;

        /* Round trips over 10 ms (hops over 5 ms): the tail that is not the network. */
        for (i = 0; i < n; i++)
            slow += rtt[i] > 0.010;
        printf("mode=%s qos=%d gap_ms=%g n=%ld rtt_p50_us=%.1f rtt_p99_us=%.1f hop_p50_us=%.1f "
               "hop_p99_us=%.1f hop_max_us=%.1f hops_over_5ms=%ld\n",
               mode, qos, gap * 1e3, n, p50, p99, p50 / 2, p99 / 2, max / 2, slow);
    }
    free(rtt);
    return 0;
}
