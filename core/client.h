/*
 * client.h - `flowbus status`, `set`, `logs`, `stop` and `pause`: small bus
 * clients that look at or poke a run through its retained topics under
 * flowbus/<run-id>/ (docs/protocol.md), from any machine that reaches its
 * broker.
 *
 * Each function takes the parsed options, talks to the broker and prints its
 * result; it returns the process exit code:
 *   0  done (for logs -f: the run ended; for stop: the run is stopped)
 *   1  stop or pause was sent but not confirmed within the timeout, or the
 *      run has no coordinator (lost) to confirm it
 *   2  usage: an unknown run, variable or task, a malformed name, a
 *      finished run for set, stop and pause, a secret for set
 *   4  the broker cannot be reached or refused a publish
 *   130 interrupted (Ctrl-C while following or waiting)
 * Errors are one line on stderr, through log_printf.
 */
#ifndef FLOWBUS_CORE_CLIENT_H
#define FLOWBUS_CORE_CLIENT_H

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

/* `flowbus status [RUN]`: every run on the broker, or one run and its tasks. */
int client__status(const struct client_options *o);

/* `flowbus set RUN VAR=VALUE...`: publishes variables of a live run. */
int client__set(const struct client_options *o);

/* `flowbus logs RUN [-f] [--task T]`: error lines, or the live log and states. */
int client__logs(const struct client_options *o);

/* `flowbus stop RUN`: asks the run to stop and waits until its state is final. */
int client__stop(const struct client_options *o);

/* `flowbus pause RUN`: asks the run to pause and waits for its coordinator to confirm. */
int client__pause(const struct client_options *o);

/* The --help texts, for main.c. */
extern const char client__usage_status[];
extern const char client__usage_set[];
extern const char client__usage_logs[];
extern const char client__usage_stop[];
extern const char client__usage_pause[];

#endif
