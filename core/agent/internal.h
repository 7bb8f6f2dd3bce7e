/*
 * internal.h - the agent's state, as the files of core/agent/ share it.
 *
 *   agent.c    the agent's life: its options, record, connection, event loop, shutdown
 *   offer.c    an offer from a coordinator: checked, answered, launched; signals
 *   output.c   what a task prints, forwarded to its log topic (masked, rate-bound)
 *
 * Everything runs on one thread, in the event loop of agent.c.
 */
#ifndef FLOWBUS_CORE_AGENT_INTERNAL_H
#define FLOWBUS_CORE_AGENT_INTERNAL_H

#include <stddef.h>
#include <sys/types.h>

#include <flowbus/flowbus.h>
#include <flowbus/protocol.h>
#include <jansson.h>

#include "agent.h"
#include "output_lines.h"

#define AGENT_KILL_GRACE 2.0 /* seconds between SIGTERM and SIGKILL when the agent stops */
#define AGENT_LINE_MAX 4096  /* longer output lines are cut and marked */

/* One task process the agent started. */
struct agent_task {
    char run[FB_NAME_MAX + 1];
    char task[FB_NAME_MAX + 1];
    int attempt;
    char offer[40];
    pid_t pid; /* its process group too */
    int fd;    /* its stdout+stderr; -1 once closed */
    struct output_lines out;
};

struct agent {
    const struct agent_options *o;
    char name[FB_NAME_MAX + 1];
    char instance[33]; /* random per start: a restarted agent is another instance */
    char host[256];
    json_t *labels;  /* array of strings */
    json_t *plugins; /* array of the plugin names found */
    json_t *secrets; /* name -> value from --secrets FILE; never published */
    char topic[FB_TOPIC_MAX];
    char inbox[FB_TOPIC_MAX];
    double since;
    fb_bus *bus;
    int sigfd;
    struct agent_task *tasks;
    size_t n_tasks, cap_tasks;
    int stopping;
    unsigned reconnects; /* fb_bus_reconnects() when last looked at */
};

/* agent.c: publishes the agent's record (online, with its load) again. */
void agent__publish_record(struct agent *a);

/* offer.c: one message of the inbox. */
void agent_offer__handle(struct agent *a, const fb_msg *m);

/* offer.c: publishes a placement answer for run/task on its placement topic (retained). */
void agent_offer__answer(struct agent *a, const char *run, const char *task, int attempt,
                   const char *offer, const char *state, const char *reason, pid_t pid,
                   int status);

/* output.c: reads what task k wrote and publishes its lines. */
void agent_output__read(struct agent *a, size_t k);

#endif
