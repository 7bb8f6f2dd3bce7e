/*
 * run.h - `flowbus run`: one execution of a workflow.
 *
 * The run starts (or joins) a broker, publishes the workflow, its run state and
 * initial variables, launches every task process at once, and then follows the
 * run in one event loop on the caller's thread: bus messages, task output
 * pipes, child exits and signals (through a signalfd) and timers.
 */
#ifndef FLOWBUS_CORE_RUN_H
#define FLOWBUS_CORE_RUN_H

#include <stddef.h>

struct wf_setting;

struct run_options {
    const char *file;
    const char *broker_url; /* NULL: start a private broker */
    const char *username;   /* for an external broker; may be NULL */
    const char *password;   /* for an external broker; may be NULL; never printed */
    const char *run_id;     /* NULL: generated */
    double timeout;         /* seconds for the whole run; 0 = none */
    int json;
    int resume; /* adopt the run run_id on broker_url (flowbus resume) */
    int reactive; /* flowbus up: reactive mode whatever the file says */
    double expiry; /* seconds the retained topics of the finished run stay; 0: for ever */
    const struct wf_setting *settings;
    size_t n_settings;
};

/* Exit codes shared by every command. */
enum {
    EXIT_OK = 0,
    EXIT_TASK_FAILED = 1,
    EXIT_INVALID = 2,
    EXIT_END_SKIPPED = 3,
    EXIT_BROKER = 4,
    EXIT_INTERRUPTED = 130,
};

/* Runs the workflow and returns the process exit code. */
int run__main(const struct run_options *o);

#endif
