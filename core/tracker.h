/*
 * tracker.h - the state of a run, derived from what is on the bus.
 *
 * The tracker reads the run's topics (variables, task states, logs) and keeps
 * what the run knows: each task's state with its timestamps and exit details,
 * and each variable's first value. It decides nothing on its own about
 * processes; the coordinator tells it the states it authors (timeouts, skips,
 * states a dead process could not report). Because it only consumes bus
 * messages, a coordinator that restarts can rebuild it from retained topics.
 * It does no I/O, so it is unit-tested directly.
 */
#ifndef FLOWBUS_CORE_TRACKER_H
#define FLOWBUS_CORE_TRACKER_H

#include <stddef.h>

#include <flowbus/protocol.h>

struct workflow;
struct graph;

struct task_info {
    enum fb_state state;
    double at;      /* Unix time of the last state change */
    double started; /* Unix time it entered running; 0 if never */
    double ended;   /* Unix time it reached a terminal state; 0 if not yet */
    long pid;
    int attempt;
    int has_exit;
    int exit_code;
    int signal; /* 0 if none */
    char *error;
    /* Reactive mode: the current or last activation and how it went. */
    unsigned long activation;
    char result[8]; /* "done", "failed" or "" */
    long queued;
    long dropped;
};

/*
 * The members of a task's state JSON (docs/protocol.md), one bit each, in
 * the order the contract writes them.
 */
enum task_member {
    TM_STATE = 1u << 0,
    TM_ATTEMPT = 1u << 1,
    TM_PID = 1u << 2,
    TM_AT = 1u << 3,
    TM_STARTED = 1u << 4,
    TM_EXIT = 1u << 5,
    TM_SIGNAL = 1u << 6,
    TM_ERROR = 1u << 7,
    TM_ACTIVATION = 1u << 8,
    TM_RESULT = 1u << 9,
    TM_QUEUED = 1u << 10,
    TM_DROPPED = 1u << 11,
    TM_WORKER = 1u << 12, /* a pool's worker, reactive */
};
#define TM_COUNT 13

/*
 * One task state message as it was written: what tracker__parse_report
 * makes of the JSON, for the tracker (which decides what the message changes)
 * and for the run view (core/view.h, which shows the last message retained).
 * info holds the members' values as written; a member that is absent, null
 * or not of its type is 0, NULL or "" there. info.ended is info.at for a
 * final state, else 0. Integers beyond an int's range are clamped to it.
 */
struct task_report {
    struct task_info info; /* info.error is owned (tracker__report_clear) */
    long worker;           /* TM_WORKER */
    unsigned has;          /* TM_* members present with a value of their type */
    unsigned null;         /* TM_* members present as null */
    unsigned whole;        /* TM_AT, TM_STARTED: written as integers, not reals */
};

/*
 * Parses a task state JSON. Returns 1 and fills *r, or 0 (and *r is empty)
 * for anything but an object whose "state" is a state name that travels on
 * the bus (fb_state_parse). Either way, free with tracker__report_clear.
 */
int tracker__parse_report(const char *payload, size_t len, struct task_report *r);
void tracker__report_clear(struct task_report *r);

/* What tracker__on_message found in one message. */
enum tracker_event {
    TRACK_NONE = 0,
    TRACK_TASK, /* a task's state changed: index in *task */
    TRACK_VAR,  /* a variable got its value: index in *var */
    TRACK_LOG,  /* a log line for *task: text in *text (owned by the caller's buffer) */
    TRACK_SYNC, /* a sync token: text in *text */
    TRACK_CONTROL, /* a message on the run's control topic: text in *text */
    TRACK_STALE, /* task *index's final state was contradicted or repeated with fewer
                    details (a late Last Will): the retained record needs the tracker's again */
};

struct tracker;

/*
 * Reactive mode: tasks go from waiting to running and back for every
 * activation, variables take every new value, and a task's end is decided by
 * the coordinator (which sees its processes exit), not by the bus: a crashed
 * worker of a pool says nothing about the others.
 */
void tracker__set_reactive(struct tracker *tr);

/* Creates a tracker for wf's run run_id (wf and g must outlive it). */
struct tracker *tracker__new(const struct workflow *wf, const struct graph *g, const char *run_id);
void tracker__free(struct tracker *tr);

/*
 * Feeds one message. Returns what it was; *index receives the task or variable
 * index, *text the log line or sync token (pointing into payload, valid while
 * payload is). Messages outside the run's topics and malformed states are
 * ignored (TRACK_NONE).
 */
enum tracker_event tracker__on_message(struct tracker *tr, const char *topic, const char *payload,
                                       size_t len, size_t *index, const char **text);

/*
 * Records a state the coordinator authors (timeout, skipped, crashed with the
 * signal, failed or done decided from an exit status). exit_code < 0 means
 * none. Returns 1 if the state changed.
 */
int tracker__set(struct tracker *tr, size_t t, enum fb_state state, double at, int exit_code,
                 int signal, const char *error);

/*
 * Starts another attempt of task t: its state goes back to waiting with the
 * given attempt number, and states of earlier attempts arriving later are
 * ignored. note (may be NULL) becomes its error text, e.g. why it is retried.
 */
void tracker__retry(struct tracker *tr, size_t t, int attempt, double at, const char *note);

/*
 * Marks every pending task that can never run as skipped (see
 * graph__propagate), with its reason. Fills skipped (capacity n_tasks) with
 * the indices of newly skipped tasks and returns how many.
 */
size_t tracker__propagate(struct tracker *tr, double at, size_t *skipped);

const struct task_info *tracker__task(const struct tracker *tr, size_t t);
int tracker__var_set(const struct tracker *tr, size_t var);
const char *tracker__var_value(const struct tracker *tr, size_t var); /* NULL if not set */
void tracker__mark_var(struct tracker *tr, size_t var, const char *value); /* initial vars */

/* 1 when every task is in a terminal state. */
int tracker__finished(const struct tracker *tr);

/* The run's exit code per the README: FB_EXIT_OK, FB_EXIT_FAILED or FB_EXIT_END_SKIPPED. */
int tracker__exit_code(const struct tracker *tr);

/* The state JSON of a task as the contract spells it; caller frees. */
char *tracker__state_json(const struct tracker *tr, size_t t);

#endif
