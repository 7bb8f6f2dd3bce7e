/*
 * child.c - the command's process (see child.h): signal forwarding, spawning,
 * the poll loop over its pipes and its exit, and reaping.
 *
 * Spawning uses posix_spawn, never fork: on the Paho backend Paho's threads
 * are running.
 */

/* posix_spawn_file_actions_addchdir_np and pipe2 are GNU extensions (glibc >= 2.29). */
#define _GNU_SOURCE

#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* The child, for the signal handler; 0 until spawned. */
static volatile sig_atomic_t child_pid;
/* A SIGTERM/SIGINT that arrived before the child existed, to forward once it does. */
static volatile sig_atomic_t pending_signal;

/* 1 when flowbus-cmd leads its process group, as flowbus starts it. */
static volatile sig_atomic_t group_leader;
/* Set once the signal went to the whole group, whose delivery reaches us too. */
static volatile sig_atomic_t forwarded;

/*
 * A shell does not pass SIGTERM on to the command it waits for, so a signal
 * for the task (a killed coordinator's PR_SET_PDEATHSIG, a stop) goes to the
 * whole process group: the shell and everything it started. That includes us;
 * the second delivery is recognised and ignored.
 */
static void forward_signal(int sig)
{
    int saved = errno;

    if (child_pid <= 0)
        pending_signal = sig;
    else if (!group_leader)
        kill((pid_t)child_pid, sig);
    else if (!forwarded) {
        forwarded = 1;
        kill(0, sig);
    }
    errno = saved;
}

void child__catch_signals(struct child_signals *saved)
{
    struct sigaction sa;

    pending_signal = 0;
    forwarded = 0;
    group_leader = getpgrp() == getpid();
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, &saved->term);
    sigaction(SIGINT, &sa, &saved->intr);
}

void child__release_signals(const struct child_signals *saved)
{
    sigaction(SIGTERM, &saved->term, NULL);
    sigaction(SIGINT, &saved->intr, NULL);
}

int child__pending_signal(void)
{
    return (int)pending_signal;
}

int child__spawn(const struct command *c, pid_t *pid, int *out_fd, int *err_fd)
{
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    sigset_t none, defaults;
    int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
    int rc;

    if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
        rc = errno;
        goto out;
    }
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
    /* The command must not inherit our broker connection (Paho does not set
     * close-on-exec): it would keep the socket open after we die and delay
     * our Last Will until the command exits. */
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    if (c->cwd)
        posix_spawn_file_actions_addchdir_np(&actions, c->cwd);

    /*
     * The child starts with no signal blocked and the usual dispositions, even
     * if Paho or our parent ignored SIGPIPE. No POSIX_SPAWN_SETPGROUP: the
     * child stays in our process group, which the coordinator kills as a whole.
     */
    posix_spawnattr_init(&attr);
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGQUIT);
    sigaddset(&defaults, SIGHUP);
    sigaddset(&defaults, SIGCHLD);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    rc = posix_spawnp(pid, c->argv[0], &actions, &attr, c->argv, c->envp);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    if (rc == 0) {
        fcntl(out_pipe[0], F_SETFL, O_NONBLOCK);
        fcntl(err_pipe[0], F_SETFL, O_NONBLOCK);
        *out_fd = out_pipe[0];
        *err_fd = err_pipe[0];
        out_pipe[0] = err_pipe[0] = -1;
        child_pid = *pid;
        if (pending_signal)
            forward_signal(pending_signal);
    }
out:
    if (out_pipe[0] >= 0)
        close(out_pipe[0]);
    if (out_pipe[1] >= 0)
        close(out_pipe[1]);
    if (err_pipe[0] >= 0)
        close(err_pipe[0]);
    if (err_pipe[1] >= 0)
        close(err_pipe[1]);
    return rc;
}

/* Opens a pidfd for pid (Linux >= 5.3) so poll() can see the child exit; -1 if unavailable. */
static int open_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    return -1;
#endif
}

void child__pump(struct run *r, struct stream *streams, pid_t pid)
{
    int pidfd = open_pidfd(pid), exited = 0;
    /*
     * Both modes: the bus's timer (keepalive, reconnect) and its socket are
     * served here while the command runs; in reactive mode the events that
     * come meanwhile are also queued (and bounded) as they arrive.
     */
    int task_fd = fb_task_fd(r->task);
    size_t k;

    /* Without a pidfd the pipes' end stands for the child's (child__wait reaps it). */
    while (streams[0].fd >= 0 || streams[1].fd >= 0 || (pidfd >= 0 && !exited)) {
        struct pollfd pfd[4];
        nfds_t n = 0, j;
        int ready;

        for (k = 0; k < 2; k++)
            if (streams[k].fd >= 0)
                pfd[n++] = (struct pollfd){.fd = streams[k].fd, .events = POLLIN};
        if (pidfd >= 0 && !exited)
            pfd[n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
        if (task_fd >= 0 && !exited)
            pfd[n++] = (struct pollfd){.fd = task_fd, .events = POLLIN};
        ready = poll(pfd, n, exited ? 0 : -1);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready <= 0)
            break; /* the child has exited and the pipes are drained (or poll failed) */
        for (j = 0; j < n; j++) {
            struct stream *s;

            if (!pfd[j].revents)
                continue;
            if (pfd[j].fd == pidfd) {
                exited = 1;
                continue;
            }
            if (pfd[j].fd == task_fd) {
                /* A stop is acted on after the command; a lost broker stops the watching. */
                if (fb_task_poll(r->task) == FB_ERR_LOST)
                    task_fd = -1;
                continue;
            }
            s = pfd[j].fd == streams[0].fd ? &streams[0] : &streams[1];
            if (output__read(r, s) == 0) {
                close(s->fd);
                s->fd = -1;
            }
        }
    }
    /* A last line without its newline, on a pipe a grandchild still holds open. */
    for (k = 0; k < 2; k++)
        output__last_line(r, &streams[k]);
    if (pidfd >= 0)
        close(pidfd);
}

/*
 * child_pid is cleared after the exit but before the reaping, while the pid
 * cannot have been reused, so the signal handler never hits a stranger.
 */
int child__wait(pid_t pid)
{
    siginfo_t si;
    int status;

    while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) < 0)
        if (errno != EINTR)
            break;
    child_pid = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return status;
}
