/*
 * commands.h - `flowbus status`, `set`, `logs`, `stop`, `pause`, `gc` and the
 * resume of a paused run: small bus clients that look at or poke runs
 * through their retained topics (docs/protocol.md), from any machine that
 * reaches their broker. Each reads the run view (view.h) through a session
 * (session.h).
 *
 * Each function takes the parsed options, talks to the broker and prints its
 * result; it returns the process exit code (enum fb_exit):
 *   FB_EXIT_OK           done (for logs -f: the run ended; for stop: the run
 *                        is stopped)
 *   FB_EXIT_FAILED       stop or pause was sent but not confirmed within the
 *                        timeout, or the run has no coordinator (lost) to
 *                        confirm it
 *   FB_EXIT_INVALID      usage: an unknown run, variable or task, a malformed
 *                        name, a finished run for set, stop and pause, a
 *                        secret for set
 *   FB_EXIT_BROKER       the broker cannot be reached or refused a publish
 *   FB_EXIT_INTERRUPTED  Ctrl-C while following or waiting
 * Errors are one line on stderr, through log_printf.
 */
#ifndef FLOWBUS_CORE_CLI_COMMANDS_H
#define FLOWBUS_CORE_CLI_COMMANDS_H

#include <stddef.h>

struct client_options {
    const char *broker_url;   /* required */
    const char *username;     /* may be NULL */
    const char *password;     /* may be NULL; never printed */
    const char *run_id;       /* required, except for status (NULL: every run) */
    char *const *assignments; /* set: the VAR=VALUE arguments, not modified */
    size_t n_assignments;
    const char *task; /* logs: only this task's lines and states (NULL: all) */
    int follow;       /* logs: -f, follow until the run ends or Ctrl-C */
    int json;         /* status: machine-readable output */
    double timeout;   /* stop, pause: seconds to wait for the coordinator; 0: default */
};

struct gc_options {
    const char *broker_url;
    const char *username; /* may be NULL */
    const char *password; /* may be NULL; never printed */
    double older_than;    /* seconds: only runs that finished at least this long ago */
    int quiet;
};

/* `flowbus status [RUN]`: every run on the broker, or one run and its tasks (status.c). */
int status__main(const struct client_options *o);

/* `flowbus set RUN VAR=VALUE...`: publishes variables of a live run (set.c). */
int set__main(const struct client_options *o);

/* `flowbus logs RUN [-f] [--task T]`: error lines, or the live log and states (logs.c). */
int logs__main(const struct client_options *o);

/* `flowbus stop RUN`: asks the run to stop and waits until its state is final (control.c). */
int control__stop(const struct client_options *o);

/* `flowbus pause RUN`: asks the run to pause and waits for its coordinator to confirm. */
int control__pause(const struct client_options *o);

/*
 * `flowbus resume RUN` of a run that is running and paused (its coordinator
 * is alive): publishes {"cmd":"resume"} and returns FB_EXIT_OK, or the exit
 * code of a refused publish. For any other run, or when the broker cannot be
 * read at once, it says nothing and returns CONTROL_TAKE_OVER: resume then
 * takes the run over (run__main), which tells a lost run from the others.
 */
#define CONTROL_TAKE_OVER (-1)
int control__resume(const struct client_options *o);

/* `flowbus gc`: removes the retained topics of finished runs (gc.c); FB_EXIT_OK or _BROKER. */
int gc__main(const struct gc_options *o);

/* The --help texts, for main.c. */
extern const char status__usage[];
extern const char set__usage[];
extern const char logs__usage[];
extern const char control__usage_stop[];
extern const char control__usage_pause[];
extern const char gc__usage[];

#endif
