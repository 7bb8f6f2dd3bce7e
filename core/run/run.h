/*
 * run.h - `flowbus run`: one execution of a workflow.
 *
 * The run starts (or joins) a broker, publishes the workflow, its run state and
 * initial variables, launches the task processes (in graph order, a few at a
 * time), and then follows the
 * run in one event loop on the caller's thread: bus messages, task output
 * pipes, child exits and signals (through a signalfd) and timers. Its files
 * are in core/run/; internal.h says which owns what.
 */
#ifndef FLOWBUS_CORE_RUN_H
#define FLOWBUS_CORE_RUN_H

#include <stddef.h>

#include <flowbus/protocol.h>

struct wf_setting;

struct run_options {
    const char *file;
    const char *broker_url; /* NULL: start a private broker */
    const char *username;   /* for an external broker; may be NULL */
    const char *password;   /* for an external broker; may be NULL; never printed */
    const char *run_id;     /* NULL: generated */
    const char *task_identities; /* external broker: auto, dynsec or shared; NULL: the
                                    environment's FLOWBUS_TASK_IDENTITIES (core/run/identity.c) */
    double timeout;         /* seconds for the whole run; 0 = none */
    int json;
    int quiet;  /* -q: the header, notes, warnings and the summary only (display__quiet) */
    int resume; /* adopt the run run_id on broker_url (flowbus resume) */
    int reactive; /* flowbus up: reactive mode whatever the file says */
    double expiry; /* seconds the retained topics of the finished run stay; 0: for ever */
    const struct wf_setting *settings;
    size_t n_settings;
};

/* Runs the workflow and returns the process exit code (an enum fb_exit). */
int run__main(const struct run_options *o);

#endif
