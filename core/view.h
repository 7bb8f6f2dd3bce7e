/*
 * view.h - one typed view of the runs on a broker, read from their retained topics.
 *
 * A run keeps its record on the bus, retained under flowbus/<run-id>/
 * (docs/protocol.md, flowbus/protocol.h): its run state, its workflow, each
 * task's state, its variables and its control command. A view is built from
 * those messages alone, so whoever reaches the broker can build one, for runs
 * started anywhere: `flowbus status`, `logs`, `stop`, `pause`, `set` and `gc`
 * do, and the HTTP server and the multi-host agent are to.
 *
 * A view is not a tracker (tracker.h). The tracker decides a run's course (a
 * final state is final, attempts only go forward); a view shows what the
 * broker holds: each topic's last message replaces what was there, and an
 * empty one (a retained topic deleted, as gc does) removes it. Both read a
 * task's state JSON with the one parser, tracker__parse_report, and a view
 * keeps its result (struct task_report) whole, so that it can write the
 * message back as it came (view__task_json).
 *
 * Ownership: a view owns everything in it, and every pointer it hands out
 * (runs, tasks, variables, strings) stays valid until the next view__feed or
 * view__free of the same view; copy what you keep longer. Callers read the
 * structs below and never write them. Secrets: the value of a variable the
 * workflow marks secret is never held (struct view_var). A view is not
 * thread-safe: one thread feeds it and reads it.
 *
 * Everything here is pure (no I/O) except view__read (view_read.c), which
 * reads a snapshot from a bus with the barrier of flowbus/protocol.h.
 */
#ifndef FLOWBUS_CORE_VIEW_H
#define FLOWBUS_CORE_VIEW_H

#include <stddef.h>

#include <flowbus/protocol.h>
#include <jansson.h>

#include "tracker.h"

/* Task names up to this size (with the NUL) are followed; longer ones are ignored. */
#define VIEW_NAME_SIZE 128

/* What a run's record or its workflow says of its mode. */
enum view_mode {
    VIEW_MODE_UNSAID = 0, /* no "mode" */
    VIEW_MODE_ONESHOT,    /* a "mode" other than reactive */
    VIEW_MODE_REACTIVE,
};

/* The name and the place of a task or variable in a run's list. */
struct view_key {
    char *name;
    size_t wf_pos;     /* its place in the workflow; VIEW_NOT_IN_WORKFLOW if not there */
    unsigned long seq; /* when it appeared on the bus, for those outside the workflow */
};
#define VIEW_NOT_IN_WORKFLOW ((size_t)-1)

struct view_task {
    struct view_key key;
    int reported;              /* a state is retained for it; else report is empty */
    struct task_report report; /* its last state message, as written */
};

struct view_var {
    struct view_key key;
    int secret;  /* the workflow marks it secret: its value is never held */
    char *value; /* NULL while not set; NUL-terminated, value_len bytes (may hold NULs) */
    size_t value_len;
};

struct run_view {
    char *run_id;

    /* flowbus/<run>/state, the run's record. Times are Unix seconds, -1 unknown. */
    int has_record;
    char *state_name;        /* its "state" as written; NULL if it has none */
    enum fb_run_state state; /* FB_RUN_UNKNOWN for none or a name this version does not know */
    double at;               /* when the record was written (the end, once final) */
    double started;          /* the record's start; view__started falls back on the workflow's */
    int paused;
    enum view_mode mode;
    int has_exit;
    int exit_code;
    char *error; /* NULL if none */

    /* flowbus/<run>/workflow, as the coordinator published it (secrets masked). */
    int has_workflow;
    char *workflow; /* its name; NULL if none */
    char *path;     /* the file it was loaded from; NULL if not said */
    enum view_mode workflow_mode;
    double workflow_started;

    /*
     * The tasks: the workflow's, in its order (tasks[0 .. n_workflow_tasks)),
     * then those that reported a state without being in the workflow, in the
     * order they appeared. Likewise the variables: the workflow's env:, then
     * every task's inputs and outputs (vars[0 .. n_workflow_vars)), then
     * variables set on the bus that the workflow does not name.
     */
    struct view_task *tasks;
    size_t n_tasks, n_workflow_tasks;
    struct view_var *vars;
    size_t n_vars, n_workflow_vars;

    enum fb_control control; /* the retained command; FB_CONTROL_NONE if none */

    /* Where tasks run: the owner record's host, and each placed task's agent answer. */
    char *owner_host;   /* flowbus/<run>/owner's "host"; NULL if none */
    json_t *placements; /* task name -> its last tasks/<T>/placement answer; NULL if none */

    unsigned long seq; /* internal: the view's counter for view_key.seq */
};

/* What a message was, for view__feed. */
enum view_change {
    VIEW_NONE = 0, /* not a run's topic, malformed, or nothing to keep */
    VIEW_RUN,      /* the run's record changed (or was removed) */
    VIEW_TASK,     /* a task's state changed (or was removed): event->task */
    VIEW_LOG,      /* a log line of event->task: event->line */
    VIEW_OTHER,    /* the workflow, a variable or the control command changed */
};

struct view_event {
    struct run_view *run;      /* the run the message is about; NULL for VIEW_NONE */
    char task[VIEW_NAME_SIZE]; /* VIEW_TASK, VIEW_LOG: the task's name */
    const char *line;          /* VIEW_LOG: the line, pointing into the payload */
};

struct view;

/* An empty view; NULL when out of memory. */
struct view *view__new(void);
void view__free(struct view *vw);

/*
 * Feeds one message (payload NUL-terminated, as fb_msg payloads are; len
 * bytes). Returns what it was, and fills *event (may be NULL). A message
 * outside flowbus/<run>/ or one the contract does not define is VIEW_NONE and
 * changes nothing; so does a malformed record, which leaves the view as it
 * was rather than guess.
 */
enum view_change view__feed(struct view *vw, const char *topic, const char *payload, size_t len,
                            struct view_event *event);

/* The run run_id if it is on the broker (its record or its workflow is), else NULL. */
struct run_view *view__run(const struct view *vw, const char *run_id);

/* The runs the view heard of, on the broker or not, in the order it first heard of them. */
size_t view__count(const struct view *vw);
struct run_view *view__nth(const struct view *vw, size_t i);

/*
 * The runs on the broker, by start (the oldest first), in a new array of
 * *n pointers that the caller frees with free(); NULL when out of memory.
 */
struct run_view **view__list(const struct view *vw, size_t *n);

/* 1 if the run is on the broker: its record or its workflow is retained. */
int view__exists(const struct run_view *rv);

/* The run's state name as written, or "unknown" when it has none. */
const char *view__state_text(const struct run_view *rv);

/* The state to show: "paused" says more than "running" while it is. */
const char *view__shown_state(const struct run_view *rv);

/* 1 if the run is reactive: its record says so, else its workflow, else its tasks count
 * activations. */
int view__reactive(const struct run_view *rv);

/* When the run started (its record's, else its workflow's), or -1. */
double view__started(const struct run_view *rv);

/* Seconds the run has lasted: to its end once final, to now while it runs; -1 unknown. */
double view__duration(const struct run_view *rv, double now);

/* The task or variable called name, or NULL. */
const struct view_task *view__task(const struct run_view *rv, const char *name);
const struct view_var *view__var(const struct run_view *rv, const char *name);

/*
 * Where task name runs or ran: the host of the agent that took it (*agent its
 * name), else the coordinator's host (*agent NULL); NULL when unknown.
 */
const char *view__task_host(const struct run_view *rv, const char *name, const char **agent);

/* Seconds in a running task's state so far, or a final task's run time; -1 unknown. */
double view__task_duration(const struct view_task *t, double now);

/*
 * Counts the tasks by state (a task without a state is FB_STATE_PENDING):
 * counts[s] for each state s, and the states met in the run's task order,
 * each once, into seen. Returns how many states were met.
 */
size_t view__count_states(const struct run_view *rv, size_t counts[FB_STATE_COUNT],
                          enum fb_state seen[FB_STATE_COUNT]);

/* ------------------------------------------------------------------------ */
/* JSON (view_json.c): what `flowbus status --json` prints                   */
/* ------------------------------------------------------------------------ */

/* A task's last state message as it was written, or {"state":null} (new reference). */
json_t *view__task_json(const struct view_task *t);

/* `flowbus status RUN --json`: the run, its file and mode, and every task. */
json_t *view__run_json(const struct run_view *rv, double now);

/* `flowbus status --json`: {"broker": broker, "runs": [...]} with the tasks counted by state. */
json_t *view__list_json(struct run_view *const *runs, size_t n, const char *broker, double now);

/* ------------------------------------------------------------------------ */
/* Reading a snapshot (view_read.c)                                          */
/* ------------------------------------------------------------------------ */

/*
 * Reads into vw what bus's subscriptions hold: bus must be subscribed to the
 * filters wanted and to token (fb_barrier_token). Runs fb_barrier(bus, token,
 * timeout): every message that arrives before the token comes back is fed to
 * vw, except that with live set, a message that is not retained (a live one
 * that came meanwhile) goes to live instead, which owns it, for a caller that
 * shows the snapshot first and then what happened since. Returns fb_barrier's
 * code (FB_OK once the snapshot is complete).
 */
enum fb_err view__read(struct view *vw, fb_bus *bus, const char *token, double timeout,
                       fb_barrier_fn live, void *ctx);

#endif
