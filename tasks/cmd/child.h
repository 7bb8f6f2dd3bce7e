/*
 * child.h - the command's process: spawning it with posix_spawn (stdin from
 * /dev/null, stdout and stderr on pipes, in our process group), passing
 * SIGTERM and SIGINT on to it, reading its pipes until it has exited, and
 * reaping it.
 */
#ifndef FLOWBUS_TASKS_CMD_CHILD_H
#define FLOWBUS_TASKS_CMD_CHILD_H

#include "output.h"
#include "params.h"

#include <signal.h>
#include <sys/types.h>

/* The SIGTERM and SIGINT dispositions to put back after the command. */
struct child_signals {
    struct sigaction term;
    struct sigaction intr;
};

/*
 * From here SIGTERM and SIGINT go to the child, once it exists; one that
 * arrives before is remembered (child__pending_signal) and means "do not
 * run". Forgets the signal of an earlier run. The old dispositions are saved
 * in *saved for child__release_signals.
 */
void child__catch_signals(struct child_signals *saved);

/* Puts back the dispositions child__catch_signals saved. */
void child__release_signals(const struct child_signals *saved);

/* The SIGTERM or SIGINT remembered since child__catch_signals, or 0. */
int child__pending_signal(void);

/*
 * Starts c with stdout and stderr on new pipes (read ends returned
 * non-blocking in *out_fd, *err_fd). Once it runs, a remembered signal is
 * passed on to it. Returns 0 or an errno value.
 */
int child__spawn(const struct command *c, pid_t *pid, int *out_fd, int *err_fd);

/*
 * Reads both streams until they end and the child has exited, handing their
 * lines to r. Once the child has exited (seen on a pidfd) only what is
 * already in the pipes is read: a background grandchild holding them open
 * does not keep the task alive. Meanwhile the task's bus is served from the
 * same poll (fb_task_fd): the task process has no other thread, and a
 * command that runs longer than the keepalive must not get the task dropped
 * by the broker (its Last Will would say "crashed"). In reactive mode the
 * events that come meanwhile are taken in (and queued by the SDK).
 */
void child__pump(struct run *r, struct stream *streams, pid_t pid);

/*
 * Waits for the child and reaps it, retrying on EINTR. Returns the status or
 * -1 (errno set).
 */
int child__wait(pid_t pid);

#endif
