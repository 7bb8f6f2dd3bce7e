/*
 * fbbench-thru - QoS 1 event throughput through one pass-through process.
 *
 *   fbbench-thru URL N                 (a pass-through process on fb_bus)
 *   fbbench-thru URL N --flow RUN     (the task RELAY of a reactive flowbus run)
 *   ... --no-direct                    (either, without the reference stream)
 *
 * Without --flow, a pass-through process built on fb_bus (the SDK's client
 * layer, not fb_task) takes every message from an input topic and republishes
 * it, QoS 1, on an output topic. With --flow, the pass-through is a real
 * reactive task, RELAY of run RUN (flowbus up, plugin benchrelay), fed on
 * flowbus/RUN/vars/IN; every event is an activation that publishes OUT. This program publishes N numbered QoS 1
 * messages (fb_bus bounds the unacknowledged ones) and counts them back on
 * the output topic, checking that none is lost or reordered.
 *
 * The reference, in the same invocation: the same N messages straight from
 * publisher to subscriber over the broker, without the pass-through hop.
 * --no-direct leaves it out (direct_eps=0), so that the CPU time of every
 * process over the run (perf stat, /proc) belongs to the pass-through alone.
 *
 * Output: direct_eps=... thru_eps=... lost=... reordered=...
 */
#define _GNU_SOURCE
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "flowbus/flowbus.h"

extern char **environ;

static fb_bus *open_bus(const char *url, const char *const *filters, size_t n)
{
    fb_bus_options o = {0};
    fb_bus *bus = NULL;
    char err[256];

    o.url = url;
    if (fb_bus_new(&o, &bus, err, sizeof err) != FB_OK ||
        fb_bus_subscribe(bus, filters, n, 5.0) != FB_OK) {
        fprintf(stderr, "fbbench-thru: %s\n", bus ? "subscribe failed" : err);
        exit(1);
    }
    return bus;
}

/* The pass-through: in -> out, QoS 1, until killed. */
static int pass(const char *url, const char *in, const char *out, const char *ready)
{
    const char *filters[1] = {in};
    fb_bus *bus = open_bus(url, filters, 1);
    fb_msg *m;

    /* Retained: the main side's subscription may come after it (the connects race). */
    fb_bus_publish(bus, ready, "1", 1, 1, 1, 0);
    while (fb_bus_next(bus, -1, &m) == FB_OK) {
        fb_bus_publish(bus, out, m->payload, m->len, 1, 0, 0);
        fb_msg_free(m);
    }
    return 0;
}

/*
 * Publishes n numbered messages on to and receives them on from (other topics
 * the bus also gets are ignored); returns events/s.
 */
static double stream(fb_bus *bus, const char *to, const char *from, long n, long *lost,
                     long *reordered)
{
    double t0 = bench_mono(), t_last = t0;
    long got = 0, expect = 0, i;
    fb_msg *m;

    *lost = *reordered = 0;
    for (i = 0; i < n; i++) {
        char buf[24];
        int len = snprintf(buf, sizeof buf, "%ld", i);
        if (fb_bus_publish(bus, to, buf, (size_t)len, 1, 0, 0) != FB_OK) {
            fprintf(stderr, "fbbench-thru: publish %ld failed\n", i);
            exit(1);
        }
        /* Take what has arrived so far, so the receive queue stays short. */
        while (fb_bus_next(bus, 0, &m) == FB_OK) {
            long seq = atol(m->payload);
            if (strcmp(m->topic, from) != 0) {
                fb_msg_free(m);
                continue;
            }
            *reordered += seq != expect;
            expect = seq + 1;
            got++;
            t_last = bench_mono();
            fb_msg_free(m);
        }
    }
    while (got < n && fb_bus_next(bus, 5.0, &m) == FB_OK) {
        long seq = atol(m->payload);
        if (strcmp(m->topic, from) != 0) {
            fb_msg_free(m);
            continue;
        }
        *reordered += seq != expect;
        expect = seq + 1;
        got++;
        t_last = bench_mono();
        fb_msg_free(m);
    }
    *lost = n - got;
    return (double)got / (t_last - t0);
}

int main(int argc, char **argv)
{
    char in[96], out[96], ready[96], direct[64];
    const char *filters[3] = {out, ready, direct};
    fb_bus *bus;
    fb_msg *m = NULL;
    long n, lost1 = 0, re1 = 0, lost2, re2;
    double direct_eps = 0, thru_eps;
    int with_direct = 1;
    pid_t child;

    if (argc == 6 && strcmp(argv[1], "--pass") == 0)
        return pass(argv[2], argv[3], argv[4], argv[5]);
    if (argc > 3 && strcmp(argv[argc - 1], "--no-direct") == 0) {
        with_direct = 0;
        argc--;
    }
    if (argc != 3 && !(argc == 5 && strcmp(argv[3], "--flow") == 0)) {
        fprintf(stderr, "usage: fbbench-thru URL N [--flow RUN] [--no-direct]\n");
        return 2;
    }
    n = atol(argv[2]);
    snprintf(direct, sizeof direct, "fbbench/%ld/direct", (long)getpid());
    if (argc == 5) {
        /* The pass-through is the run's RELAY task: ready once it waits. */
        snprintf(in, sizeof in, "flowbus/%.40s/vars/IN", argv[4]);
        snprintf(out, sizeof out, "flowbus/%.40s/vars/OUT", argv[4]);
        snprintf(ready, sizeof ready, "flowbus/%.40s/tasks/RELAY/state", argv[4]);
        child = 0;
        bus = open_bus(argv[1], filters, 3);
        while (fb_bus_next(bus, 10.0, &m) == FB_OK &&
               !(strcmp(m->topic, ready) == 0 && strstr(m->payload, "\"waiting\""))) {
            fb_msg_free(m);
            m = NULL;
        }
        if (m == NULL) {
            fprintf(stderr, "fbbench-thru: the task RELAY did not report waiting\n");
            return 1;
        }
        fb_msg_free(m);
        if (with_direct)
            direct_eps = stream(bus, direct, direct, n, &lost1, &re1);
        thru_eps = stream(bus, in, out, n, &lost2, &re2);
        goto report;
    }
    snprintf(in, sizeof in, "fbbench/%ld/in", (long)getpid());
    snprintf(out, sizeof out, "fbbench/%ld/out", (long)getpid());
    snprintf(ready, sizeof ready, "fbbench/%ld/ready", (long)getpid());
    {
        char *cargv[] = {argv[0], "--pass", argv[1], in, out, ready, NULL};
        /* Spawned before our first Paho client exists: no threads to inherit. */
        if (posix_spawn(&child, "/proc/self/exe", NULL, NULL, cargv, environ) != 0)
            return 1;
    }
    bus = open_bus(argv[1], filters, 3);
    if (fb_bus_next(bus, 10.0, &m) != FB_OK || strcmp(m->topic, ready) != 0) {
        fprintf(stderr, "fbbench-thru: the pass-through did not start\n");
        kill(child, SIGKILL);
        return 1;
    }
    fb_msg_free(m);
    if (with_direct)
        direct_eps = stream(bus, direct, direct, n, &lost1, &re1);
    thru_eps = stream(bus, in, out, n, &lost2, &re2);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
report:
    printf("n=%ld direct_eps=%.0f thru_eps=%.0f direct_lost=%ld thru_lost=%ld reordered=%ld\n", n,
           direct_eps, thru_eps, lost1, lost2, re1 + re2);
    fflush(stdout);
    fb_bus_close(bus, 1.0);
    _exit(lost2 == 0 ? 0 : 3);
}
