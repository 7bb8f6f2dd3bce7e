/*
 * task_env.h - a task's description as the coordinator hands it over: the
 * FLOWBUS_* environment (docs/protocol.md "Task environment" and "Reactive
 * mode"), read into a plain struct.
 *
 * Reading it is pure: the environment in, the struct or a one-line error
 * naming the variable out; no bus, no process state. So every variable, its
 * default, its bounds and its error message are unit-tested on their own
 * (tests/unit/test_task_env.c). fb_task_open (task.c) builds the task from
 * the struct and keeps it for the task's life.
 */
#ifndef FLOWBUS_TASK_ENV_H
#define FLOWBUS_TASK_ENV_H

#include <stddef.h>

#include <jansson.h>

#include "flowbus/flowbus.h"

/* FLOWBUS_MAX_VALUE when unset: the largest value a task may publish, in bytes. */
#define TASK_ENV_MAX_VALUE 262144
/*
 * FLOWBUS_RECONNECT_MAX when unset: how long a task keeps trying to get its
 * broker back after losing it (0 turns reconnection off). Long enough for a
 * broker restart.
 */
#define TASK_ENV_RECONNECT_MAX 30.0
/* Reactive mode: events kept while busy (FLOWBUS_QUEUE), and the bounds of the settings. */
#define TASK_ENV_QUEUE 100
#define TASK_ENV_MAX_QUEUE 1000000
#define TASK_ENV_MAX_WORKERS 1024

/*
 * Reactive mode: what a full event queue does (FLOWBUS_OVERFLOW). BLOCK, the
 * default, stops taking messages from the connection that carries the
 * events until there is room, so they wait upstream (in the bus, then the
 * broker) and none is lost; the two others keep the task reading and drop
 * one event per event past the bound, counted ("dropped" in the state).
 */
enum task_overflow {
    TASK_OVERFLOW_BLOCK,       /* "block" */
    TASK_OVERFLOW_DROP_OLDEST, /* "drop-oldest": the queue keeps the latest events */
    TASK_OVERFLOW_DROP_NEWEST  /* "drop-newest": the queue keeps the earliest events */
};

/* One input: FLOWBUS_INPUTS, then the secrets FLOWBUS_SECRETS adds. */
struct task_env_input {
    char *name;
    int secret;  /* in FLOWBUS_SECRETS: delivered in the environment, never on the bus */
    char *value; /* a secret's value, from the variable of its name; NULL for the others */
    int trigger; /* reactive mode: its events fire the task (FLOWBUS_TRIGGERS) */
};

struct task_env {
    char *run_id;         /* FLOWBUS_RUN_ID, required, a valid run id */
    char *name;           /* FLOWBUS_TASK, required, a valid task name */
    long attempt;         /* FLOWBUS_ATTEMPT, 1 to INT_MAX; 1 when unset */
    size_t max_value;     /* FLOWBUS_MAX_VALUE, 1 to INT_MAX bytes; TASK_ENV_MAX_VALUE */
    double reconnect_max; /* FLOWBUS_RECONNECT_MAX, 0 to 86400 s; TASK_ENV_RECONNECT_MAX */
    int keepalive;        /* FLOWBUS_KEEPALIVE, 5 to 3600 s; 0 when unset (fb_bus's default, 10) */
    unsigned expiry;      /* FLOWBUS_EXPIRY: retained messages' expiry, s; 0: none (default) */
    double timeout;       /* FLOWBUS_TIMEOUT, >= 0 s; -1 when unset. Only validated: the
                             coordinator enforces it */

    /* The inputs, the secret ones included; every list holds each name once. */
    struct task_env_input *inputs;
    size_t n_inputs;
    char **outputs; /* FLOWBUS_OUTPUTS */
    size_t n_outputs;
    char **deps; /* FLOWBUS_DEPENDS: task names */
    size_t n_deps;

    /* FLOWBUS_MODE=reactive. Only then are the fields after it read; they stay 0 otherwise. */
    int reactive;
    size_t queue;      /* FLOWBUS_QUEUE, 1 to TASK_ENV_MAX_QUEUE; TASK_ENV_QUEUE */
    enum task_overflow overflow; /* FLOWBUS_OVERFLOW; TASK_OVERFLOW_BLOCK when unset */
    long workers;      /* FLOWBUS_WORKERS, 1 to TASK_ENV_MAX_WORKERS; 1 */
    long worker;       /* FLOWBUS_WORKER, 1 to workers; 1 */
    size_t n_triggers; /* inputs with trigger set: FLOWBUS_TRIGGERS, or every input on the bus */

    /* FLOWBUS_PARAMS, a JSON object ("{}" when unset). */
    json_t *params;
    char *params_json;  /* params, compact */
    char **param_names; /* the scalar params (strings, numbers, booleans) ... */
    char **param_texts; /* ... and their texts, as fb_task_param returns them */
    size_t n_params;

    /* The connection. FLOWBUS_BROKER is required; the others are NULL when unset. */
    char *broker;
    char *username; /* FLOWBUS_USERNAME (may be empty); the credentials pipe overrides it */
    char *password; /* FLOWBUS_PASSWORD (by hand; may be empty), or from the credentials pipe
                       (task_credentials.c) */
    char *tls_ca;   /* FLOWBUS_TLS_CA, FLOWBUS_TLS_CERT, FLOWBUS_TLS_KEY: NULL when empty too */
    char *tls_cert;
    char *tls_key;
};

/*
 * Reads the environment into env (which it zeroes first). The variables are
 * read in the order of the fields above, and the first wrong one is
 * reported: FB_ERR_ENV with a message naming it, what it holds and what was
 * expected in errbuf, or FB_ERR_NOMEM. On an error env holds what was read
 * so far: task_env__free it either way.
 */
enum fb_err task_env__read(struct task_env *env, char *errbuf, size_t errlen);

/* Frees what env holds and zeroes it. */
void task_env__free(struct task_env *env);

/*
 * FLOWBUS_PARENT_PID, as atol reads it, into *pid: 1 if it is set, else 0
 * (and *pid is 0). fb_task_open compares it with getppid before anything
 * else, so it is apart from task_env__read.
 */
int task_env__parent_pid(long *pid);

#endif
