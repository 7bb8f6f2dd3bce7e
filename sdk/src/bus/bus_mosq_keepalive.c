/*
 * bus_mosq_keepalive.c - keeps a libmosquitto bus alive while its caller
 * does not drive it.
 *
 * The bus works only inside its own calls (bus_mosq_loop.c). A program that
 * holds a bus but does not call into it or poll fb_bus_fd for longer than
 * 1.5 keepalives - a one-shot task waiting 20 s for its command, a server
 * whose publishing connection is idle - would be dropped by the broker, which
 * then sends the bus's Last Will: the coordinator reads "crashed" and kills a
 * healthy task (measured: a `cmd` task running `sleep 22` was killed at 18 s).
 * So one thread per process, started with the first bus, wakes once a second
 * and takes a step (ping, PINGRESP, whatever else is due) for every bus whose
 * keepalive check is overdue and whose lock is free. It never waits for a
 * bus's lock: a bus that is locked is being driven by its caller. A bus that
 * is driven never has its check overdue, so on the message path this thread
 * does nothing and no message is handed between threads.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "bus_mosq_internal.h"

/* How often the thread looks; a bus's check falls due every 0.25-2 s (bus_mosq_loop.c). */
#define KEEPALIVE_TICK_NS 1000000000L

static pthread_mutex_t watch_mu = PTHREAD_MUTEX_INITIALIZER;
static fb_bus *watched;
static int thread_started;

static void *keepalive_main(void *arg)
{
    struct timespec tick = {KEEPALIVE_TICK_NS / 1000000000L, KEEPALIVE_TICK_NS % 1000000000L};
    fb_bus *bus;
    double now;

    (void)arg;
    for (;;) {
        while (nanosleep(&tick, NULL) != 0 && errno == EINTR)
            ;
        pthread_mutex_lock(&watch_mu);
        now = fb_clock_mono();
        for (bus = watched; bus != NULL; bus = bus->watch_next) {
            if (pthread_mutex_trylock(&bus->mu) != 0)
                continue;
            if (bus_mosq__keepalive_due(bus, now))
                bus_mosq__step(bus, 0);
            pthread_mutex_unlock(&bus->mu);
        }
        pthread_mutex_unlock(&watch_mu);
    }
    return NULL;
}

/* Starts the thread with every signal blocked, so the program's signals go to its own threads. */
static void start_thread(fb_bus *bus)
{
    pthread_attr_t attr;
    pthread_t thread;
    sigset_t all, old;
    int rc;

    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* It needs little stack: one step of libmosquitto. */
    pthread_attr_setstacksize(&attr, 256 * 1024);
    rc = pthread_create(&thread, &attr, keepalive_main, NULL);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0)
        thread_started = 1;
    else
        log__emit(bus->log, bus->log_ctx, FB_LOG_WARN,
                  "cannot start the keepalive thread (%s): an idle bus may be dropped by the "
                  "broker",
                  strerror(rc));
}

void bus_mosq__watch(fb_bus *bus)
{
    pthread_mutex_lock(&watch_mu);
    if (!thread_started)
        start_thread(bus);
    bus->watch_next = watched;
    watched = bus;
    pthread_mutex_unlock(&watch_mu);
}

void bus_mosq__unwatch(fb_bus *bus)
{
    fb_bus **p;

    pthread_mutex_lock(&watch_mu);
    for (p = &watched; *p != NULL; p = &(*p)->watch_next) {
        if (*p == bus) {
            *p = bus->watch_next;
            break;
        }
    }
    pthread_mutex_unlock(&watch_mu);
}
