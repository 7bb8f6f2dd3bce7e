/*
 * launcher.h - starting task processes and stopping their process groups.
 *
 * Each task runs in a process group of its own, so a timeout, a skip or Ctrl-C
 * can stop the task together with everything it started (a shell, its
 * children). Processes are started with posix_spawn because the coordinator
 * runs Paho threads, which make fork() unsafe.
 */
#ifndef FLOWBUS_CORE_LAUNCHER_H
#define FLOWBUS_CORE_LAUNCHER_H

#include <sys/types.h>

struct workflow;
struct wf_task;
struct access;

/* What every task of a run shares in its environment. */
struct launch_context {
    const char *broker_url;
    const char *username; /* may be NULL */
    const char *password; /* may be NULL */
    const struct access *access; /* per-task credentials (private broker, dynsec), or NULL */
    int refused;                 /* no identity may be given: every start fails (EACCES) */
    int die_with_parent;         /* tasks end when the coordinator dies (private broker) */
    const char *run_dir;         /* the run's private directory (permission cache), or NULL */
    const char *cache_salt;      /* per-run salt for the permission cache's file names */
    const char *run_id;
    const struct workflow *wf;
};

/*
 * Starts attempt number attempt (1, 2, ...) of the task with index t (worker
 * number worker of its pool in reactive mode, else 1). Its stdout and stderr go to a new pipe whose
 * read end (non-blocking, close-on-exec) is returned in *out_fd. Returns the
 * pid (which is also the process group id), or -1 with errno set.
 */
pid_t launcher__spawn(const struct launch_context *ctx, size_t t, int worker, int attempt,
                      int *out_fd);

/* Sends sig to the task's whole process group. */
void launcher__signal(pid_t pgid, int sig);

#endif
