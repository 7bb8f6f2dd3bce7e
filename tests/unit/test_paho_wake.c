/*
 * test_paho_wake.c - checks sdk/src/bus/paho_wake.c, the SDK's poll, usleep,
 * connect and writev, which shorten Paho's fixed sleeps. The program links
 * libflowbus like any task, so its calls reach those functions the way Paho's
 * do; threads named "MQTTAsync_rcv" and "MQTTAsync_send" stand in for Paho's.
 *
 * What is checked is when a call returns, against deadlines far apart: a call
 * the SDK must end early is given 10 s and must return within 5 s; a call it
 * must leave alone must last at least its full time. No figure is timed.
 * Run with --disabled (and FLOWBUS_PAHO_WAKE=0), it checks that the switch
 * turns everything off.
 */
#define _GNU_SOURCE
#include "check.h"

#include <flowbus/flowbus.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A listening loopback socket that never accepts: connects to it finish, nothing is ever sent. */
static int listener(struct sockaddr_in *addr)
{
    socklen_t len = sizeof *addr;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)addr, sizeof *addr) != 0 || listen(fd, 8) != 0 ||
        getsockname(fd, (struct sockaddr *)addr, &len) != 0)
        abort();
    return fd;
}

/* What a helper thread does, under the name it is given. */
struct job {
    const char *name;
    void (*fn)(struct job *);
    struct sockaddr_in addr;
    int fd;          /* in/out: a socket or pipe end */
    int timeout_ms;  /* for polls */
    unsigned usec;   /* for usleep */
    int rc;
    double took;     /* seconds the call lasted */
    double delay;    /* seconds to wait before acting */
};

static void *job_main(void *arg)
{
    struct job *job = arg;

    pthread_setname_np(pthread_self(), job->name);
    if (job->delay > 0) {
        struct timespec ts = {0, (long)(job->delay * 1e9)};
        nanosleep(&ts, NULL);
    }
    job->fn(job);
    return NULL;
}

static void run_jobs(struct job *a, struct job *b)
{
    pthread_t ta, tb;

    pthread_create(&ta, NULL, job_main, a);
    if (b != NULL)
        pthread_create(&tb, NULL, job_main, b);
    pthread_join(ta, NULL);
    if (b != NULL)
        pthread_join(tb, NULL);
}

static void do_poll(struct job *job)
{
    struct pollfd p = {job->fd, POLLIN, 0};
    double t0 = now_s();

    job->rc = poll(&p, 1, job->timeout_ms);
    job->took = now_s() - t0;
}

static void do_usleep(struct job *job)
{
    double t0 = now_s();

    job->rc = usleep(job->usec);
    job->took = now_s() - t0;
}

/* A poll that times out, then Paho's 100 ms usleep (here 10 s), in one thread. */
static void do_poll_then_usleep(struct job *job)
{
    struct pollfd p = {job->fd, POLLIN, 0};
    double t0;

    job->rc = poll(&p, 1, job->timeout_ms);
    t0 = now_s();
    usleep(job->usec);
    job->took = now_s() - t0;
}

static void do_connect(struct job *job)
{
    job->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    job->rc = connect(job->fd, (struct sockaddr *)&job->addr, sizeof job->addr);
    if (job->rc != 0 && errno == EINPROGRESS)
        job->rc = 0;
}

static void do_writev(struct job *job)
{
    struct iovec iov = {"x", 1};

    job->rc = (int)writev(job->fd, &iov, 1);
}

/* Calls from threads that are not Paho's keep their whole time. */
static void test_other_threads_untouched(void)
{
    int p[2];
    struct pollfd pfd;
    double t0;

    CHECK(pipe(p) == 0);
    pfd.fd = p[0];
    pfd.events = POLLIN;
    t0 = now_s();
    CHECK(poll(&pfd, 1, 50) == 0);
    CHECK(now_s() - t0 >= 0.049);
    t0 = now_s();
    CHECK(usleep(50000) == 0);
    CHECK(now_s() - t0 >= 0.049);
    close(p[0]);
    close(p[1]);
}

/* After a poll that waited its whole timeout, Paho's sleep is skipped; the next one is not. */
static void test_sleep_after_timeout_skipped(void)
{
    int p[2];
    struct job rcv = {.name = "MQTTAsync_rcv", .fn = do_poll_then_usleep, .timeout_ms = 20,
                      .usec = 10000000};
    struct job again = {.name = "MQTTAsync_rcv", .fn = do_usleep, .usec = 200000};

    CHECK(pipe(p) == 0);
    rcv.fd = p[0];
    run_jobs(&rcv, NULL);
    CHECK(rcv.rc == 0);
    CHECK(rcv.took < 5.0);
    /* With nothing polled and no connect, a receive-thread sleep lasts its time. */
    run_jobs(&again, NULL);
    CHECK(again.took >= 0.199);
    close(p[0]);
    close(p[1]);
}

/* A connect from Paho's send thread ends the receive thread's sleep and its long poll. */
static void test_connect_wakes_receiver(void)
{
    struct sockaddr_in addr;
    int lfd = listener(&addr), p[2];
    struct job sleeper = {.name = "MQTTAsync_rcv", .fn = do_usleep, .usec = 10000000};
    struct job poller = {.name = "MQTTAsync_rcv", .fn = do_poll, .timeout_ms = 10000};
    struct job sender = {.name = "MQTTAsync_send", .fn = do_connect, .delay = 0.1};

    sender.addr = addr;
    run_jobs(&sleeper, &sender);
    CHECK(sender.rc == 0);
    CHECK(sleeper.took < 5.0);
    close(sender.fd);

    CHECK(pipe(p) == 0);
    poller.fd = p[0];
    sender.fd = -1;
    run_jobs(&poller, &sender);
    CHECK(sender.rc == 0);
    CHECK(poller.rc == 0); /* woken, with nothing to read */
    CHECK(poller.took < 5.0);
    close(sender.fd);
    close(p[0]);
    close(p[1]);
    close(lfd);
}

/* While a socket is connecting its input poll is short; after the first write it is not. */
static void test_connecting_socket(void)
{
    struct sockaddr_in addr;
    int lfd = listener(&addr);
    struct job sender = {.name = "MQTTAsync_send", .fn = do_connect};
    struct job poller = {.name = "MQTTAsync_rcv", .fn = do_poll, .timeout_ms = 10000};
    struct job writer = {.name = "MQTTAsync_send", .fn = do_writev};

    sender.addr = addr;
    run_jobs(&sender, NULL);
    CHECK(sender.rc == 0);
    poller.fd = sender.fd;
    run_jobs(&poller, NULL);
    CHECK(poller.rc == 0);
    CHECK(poller.took < 5.0);

    writer.fd = sender.fd;
    run_jobs(&writer, NULL);
    CHECK(writer.rc == 1);
    poller.timeout_ms = 300;
    run_jobs(&poller, NULL);
    CHECK(poller.rc == 0);
    CHECK(poller.took >= 0.299);
    close(sender.fd);
    close(lfd);
}

/* FLOWBUS_PAHO_WAKE=0: Paho's threads get the C library's calls, sleeps included. */
static void test_disabled(void)
{
    struct sockaddr_in addr;
    int lfd = listener(&addr), p[2];
    struct job rcv = {.name = "MQTTAsync_rcv", .fn = do_poll_then_usleep, .timeout_ms = 20,
                      .usec = 200000};
    struct job sleeper = {.name = "MQTTAsync_rcv", .fn = do_usleep, .usec = 300000};
    struct job sender = {.name = "MQTTAsync_send", .fn = do_connect, .delay = 0.05};

    CHECK(pipe(p) == 0);
    rcv.fd = p[0];
    run_jobs(&rcv, NULL);
    CHECK(rcv.took >= 0.199);
    sender.addr = addr;
    run_jobs(&sleeper, &sender);
    CHECK(sleeper.took >= 0.299);
    close(sender.fd);
    close(p[0]);
    close(p[1]);
    close(lfd);
}

int main(int argc, char **argv)
{
    /* Linked like a task: the SDK is loaded, and with it the functions under test. */
    CHECK_STR(fb_strerror(FB_OK), fb_strerror(FB_OK));
    if (argc > 1 && strcmp(argv[1], "--disabled") == 0) {
        RUN(test_disabled);
    } else {
        RUN(test_other_threads_untouched);
        RUN(test_sleep_after_timeout_skipped);
        RUN(test_connect_wakes_receiver);
        RUN(test_connecting_socket);
    }
    return check_summary();
}
