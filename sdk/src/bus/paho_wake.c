/*
 * paho_wake.c - takes the fixed sleeps out of Paho MQTTAsync's receive thread.
 *
 * Debian's Paho C 1.3.12 loses time in three places that no option or order
 * of calls reaches (docs/performance.md, measured with strace):
 *
 *  1. A new connection waits for a 10 ms poll of the read set to run out: the
 *     receive thread's first cycle polls for input with a 10 ms timeout, the
 *     broker sends nothing before CONNECT, and only after that poll does Paho
 *     notice that the TCP connect finished and send CONNECT.
 *  2. After every poll that finds nothing to do, and whenever its socket set
 *     is empty, the receive thread sleeps 100 ms (MQTTAsync_cycle calls
 *     MQTTAsync_sleep(100), which is usleep). A task whose input arrives in
 *     that window waits for the sleep to end; a connect whose socket appears
 *     just after the thread found the set empty waits 100 ms.
 *  3. A socket that a second client of the process opens is only polled once
 *     the receive thread's current one-second poll returns.
 *
 * The SDK library defines poll, usleep, connect and writev. Paho is loaded
 * with dlopen after the program and its libraries, so its references to these
 * functions bind to ours (the program's global scope is searched first); every
 * call from a thread that is not one of Paho's goes straight to the C
 * library's function, found with dlsym(RTLD_NEXT). Paho names its threads
 * ("MQTTAsync_rcv", "MQTTAsync_send"), which is how its calls are told apart.
 * For Paho's threads:
 *
 *  - connect records a socket as connecting (and sets TCP_NODELAY on it before
 *    any byte is sent, which spares bus_addr.c its search for the socket), then
 *    wakes the receive thread;
 *  - while a socket it polls is connecting, the receive thread's input poll
 *    waits at most 200 us instead of 10 ms, so Paho sees the finished TCP
 *    connect at once; the socket stops counting as connecting when Paho
 *    writes to it (CONNECT), when it becomes readable or fails, or after
 *    100 ms;
 *  - the input poll also watches an eventfd that connect writes, so a new
 *    socket is picked up at once (3);
 *  - the 100 ms usleep after a poll that waited its whole timeout is skipped,
 *    since the poll already waited (2); a usleep with nothing polled (an
 *    empty socket set) waits on the eventfd, so it ends when a connect starts.
 *
 * Nothing here changes what Paho does, only when its receive thread wakes.
 * FLOWBUS_PAHO_WAKE=0 in the environment turns all of it off (for measuring
 * and as an escape hatch); if Paho's threads cannot be recognised, its calls
 * simply take the C library's path.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

/* How long a connecting socket's input poll may wait, and how long a socket counts as connecting. */
#define CONNECTING_POLL_NS 200000L
#define CONNECTING_MAX_NS 100000000LL
/* Sockets connecting at once: one per client connecting at the same moment. */
#define MAX_CONNECTING 16
/* Input polls up to this many sockets use a stack array. */
#define STACK_FDS 32

typedef int (*poll_fn)(struct pollfd *, nfds_t, int);
typedef int (*usleep_fn)(useconds_t);
typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);
typedef ssize_t (*writev_fn)(int, const struct iovec *, int);

static poll_fn real_poll;
static usleep_fn real_usleep;
static connect_fn real_connect;
static writev_fn real_writev;
static int enabled;
static int wake_fd = -1;
static unsigned long paho_connects; /* atomic: connects of Paho's threads seen here */

enum role { ROLE_UNKNOWN, ROLE_OTHER, ROLE_RECEIVE, ROLE_SEND };
static _Thread_local enum role thread_role = ROLE_UNKNOWN;
/* Set when the receive thread's last input poll waited its whole timeout or was woken by us. */
static _Thread_local int skip_next_sleep;

static pthread_mutex_t connecting_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    int fd;
    long long since_ns;
} connecting[MAX_CONNECTING];
/* Written under connecting_mu; read without it (atomically) only as a hint: 0 is the common case. */
static int n_connecting;

static long long now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/*
 * Resolved when the library is loaded, before any thread exists, so that the
 * wrappers need no lock. If a function cannot be found, the C library's own
 * is reached through its __ alias where glibc has one.
 */
__attribute__((constructor)) static void paho_wake_init(void)
{
    const char *env = getenv("FLOWBUS_PAHO_WAKE");

    real_poll = (poll_fn)dlsym(RTLD_NEXT, "poll");
    real_usleep = (usleep_fn)dlsym(RTLD_NEXT, "usleep");
    real_connect = (connect_fn)dlsym(RTLD_NEXT, "connect");
    real_writev = (writev_fn)dlsym(RTLD_NEXT, "writev");
    if (real_poll == NULL || real_usleep == NULL || real_connect == NULL || real_writev == NULL)
        goto out;
    if (env != NULL && strcmp(env, "0") == 0)
        goto out;
    wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd < 0)
        goto out;
    enabled = 1;
out:
    return;
}

/* Which thread this is, from the name Paho gives its threads; asked once per thread. */
static enum role role(void)
{
    char name[17] = {0};

    if (thread_role != ROLE_UNKNOWN)
        return thread_role;
    thread_role = ROLE_OTHER;
    if (enabled && prctl(PR_GET_NAME, name, 0, 0, 0) == 0) {
        if (strcmp(name, "MQTTAsync_rcv") == 0)
            thread_role = ROLE_RECEIVE;
        else if (strcmp(name, "MQTTAsync_send") == 0)
            thread_role = ROLE_SEND;
    }
    return thread_role;
}

static void wake_receiver(void)
{
    uint64_t one = 1;
    ssize_t n = write(wake_fd, &one, sizeof one);

    (void)n; /* A full counter (never in practice) still leaves the eventfd readable. */
}

static void drain_wake(void)
{
    uint64_t count;
    ssize_t n = read(wake_fd, &count, sizeof count);

    (void)n;
}

static void connecting_add(int fd)
{
    int i, slot = -1;
    long long now = now_ns();

    pthread_mutex_lock(&connecting_mu);
    for (i = 0; i < n_connecting; i++)
        if (connecting[i].fd == fd || now - connecting[i].since_ns > CONNECTING_MAX_NS)
            slot = i;
    if (slot < 0 && n_connecting < MAX_CONNECTING) {
        slot = n_connecting;
        __atomic_store_n(&n_connecting, n_connecting + 1, __ATOMIC_RELAXED);
    }
    if (slot >= 0) {
        connecting[slot].fd = fd;
        connecting[slot].since_ns = now;
    }
    pthread_mutex_unlock(&connecting_mu);
}

/* Forgets fd, and every entry past its time; the caller holds connecting_mu. */
static void connecting_forget_locked(int fd)
{
    int i = 0;
    long long now = now_ns();

    while (i < n_connecting) {
        if (connecting[i].fd == fd || now - connecting[i].since_ns > CONNECTING_MAX_NS) {
            connecting[i] = connecting[n_connecting - 1];
            __atomic_store_n(&n_connecting, n_connecting - 1, __ATOMIC_RELAXED);
        } else
            i++;
    }
}

static int is_connecting_locked(int fd)
{
    int i;

    for (i = 0; i < n_connecting; i++)
        if (connecting[i].fd == fd)
            return 1;
    return 0;
}

/*
 * The receive thread's input poll (timeout != 0): the wake eventfd is added to
 * the set, and the timeout shortened while one of its sockets is connecting.
 */
static int receive_poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
    struct pollfd stack_set[STACK_FDS + 1];
    struct pollfd *set = stack_set;
    struct timespec ts, *tsp = NULL;
    nfds_t i;
    int rc, any_connecting = 0, woken = 0, ready = 0;

    if (nfds + 1 > STACK_FDS + 1) {
        set = malloc((nfds + 1) * sizeof *set);
        if (set == NULL) {
            rc = real_poll(fds, nfds, timeout);
            goto out;
        }
    }
    skip_next_sleep = 0;
    memcpy(set, fds, nfds * sizeof *set);
    set[nfds].fd = wake_fd;
    set[nfds].events = POLLIN;
    set[nfds].revents = 0;

    if (__atomic_load_n(&n_connecting, __ATOMIC_RELAXED) > 0) {
        pthread_mutex_lock(&connecting_mu);
        connecting_forget_locked(-1);
        for (i = 0; i < nfds && !any_connecting; i++)
            any_connecting = is_connecting_locked(fds[i].fd);
        pthread_mutex_unlock(&connecting_mu);
    }
    if (timeout >= 0) {
        ts.tv_sec = timeout / 1000;
        ts.tv_nsec = (long)(timeout % 1000) * 1000000L;
        tsp = &ts;
    }
    if (any_connecting && (tsp == NULL || ts.tv_sec > 0 || ts.tv_nsec > CONNECTING_POLL_NS)) {
        ts.tv_sec = 0;
        ts.tv_nsec = CONNECTING_POLL_NS;
        tsp = &ts;
    }
    rc = ppoll(set, nfds + 1, tsp, NULL);
    if (rc < 0) {
        /* A signal (SIGCHLD in the coordinator) is no reason for Paho's 100 ms sleep either. */
        skip_next_sleep = errno == EINTR;
        goto out;
    }
    for (i = 0; i < nfds; i++) {
        fds[i].revents = set[i].revents;
        if (set[i].revents != 0)
            ready++;
    }
    if (set[nfds].revents != 0) {
        drain_wake();
        woken = 1;
    }
    if (any_connecting && ready > 0) {
        pthread_mutex_lock(&connecting_mu);
        for (i = 0; i < nfds; i++)
            if (set[i].revents & (POLLIN | POLLERR | POLLHUP | POLLNVAL))
                connecting_forget_locked(set[i].fd);
        pthread_mutex_unlock(&connecting_mu);
    }
    /* Paho sleeps 100 ms after a poll that found nothing; this one has already waited. */
    if (ready == 0 || woken)
        skip_next_sleep = 1;
    rc = ready;
out:
    if (set != stack_set) {
        int saved = errno; /* Paho reads errno after a failed poll. */
        free(set);
        errno = saved;
    }
    return rc;
}

unsigned long paho_wake__connects(void)
{
    return __atomic_load_n(&paho_connects, __ATOMIC_RELAXED);
}

EXPORT int poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
    if (role() != ROLE_RECEIVE || timeout == 0)
        return real_poll(fds, nfds, timeout);
    return receive_poll(fds, nfds, timeout);
}

EXPORT int usleep(useconds_t usec)
{
    struct pollfd wake;
    struct timespec ts;
    int rc = 0;

    if (role() != ROLE_RECEIVE) {
        rc = real_usleep(usec);
        goto out;
    }
    if (skip_next_sleep) {
        skip_next_sleep = 0;
        goto out;
    }
    /* Nothing was polled (no socket yet): sleep until a connect starts, or for usec. */
    wake.fd = wake_fd;
    wake.events = POLLIN;
    wake.revents = 0;
    ts.tv_sec = usec / 1000000;
    ts.tv_nsec = (long)(usec % 1000000) * 1000L;
    if (ppoll(&wake, 1, &ts, NULL) > 0)
        drain_wake();
out:
    return rc;
}

EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    int rc, saved, one = 1;
    enum role r = role();

    if (r == ROLE_OTHER)
        return real_connect(fd, addr, len);
    /* Paho has no TCP_NODELAY option; set before CONNECT, it also spares its first packets Nagle. */
    if (addr != NULL && (addr->sa_family == AF_INET || addr->sa_family == AF_INET6))
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    connecting_add(fd);
    __atomic_add_fetch(&paho_connects, 1, __ATOMIC_RELAXED);
    rc = real_connect(fd, addr, len);
    saved = errno;
    wake_receiver();
    errno = saved;
    return rc;
}

EXPORT ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
    if (__atomic_load_n(&n_connecting, __ATOMIC_RELAXED) > 0 && role() != ROLE_OTHER) {
        /* Paho's first write on a connecting socket is CONNECT: the TCP connect is done. */
        pthread_mutex_lock(&connecting_mu);
        connecting_forget_locked(fd);
        pthread_mutex_unlock(&connecting_mu);
    }
    return real_writev(fd, iov, iovcnt);
}
