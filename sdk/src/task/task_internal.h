/*
 * task_internal.h - struct fb_task and what the task's files share.
 *
 * fb_task (flowbus.h "Tasks") is implemented by one file per concern:
 *   task_env.c      the FLOWBUS_* environment, read into struct task_env (pure)
 *   task.c          the core: open, wait, the variable store, done, fail, exit
 *   task_connect.c  connecting and subscribing; a worker pool's events connection
 *   task_absorb.c   applying what arrives (values, dependency states, control)
 *   task_state.c    what the task says: its state JSON, its outputs, re-asserting
 *   task_reactive.c reactive mode: the event queue, activations, coalescing
 *   task_log.c      the log topic (rate-limited) and keeping secrets out of it
 *   task_credentials.c  the broker credentials (inherited pipe) and PR_SET_DUMPABLE
 * Only these files include this header; the rest of the SDK sees fb_task
 * through internal.h.
 */
#ifndef FLOWBUS_TASK_INTERNAL_H
#define FLOWBUS_TASK_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>

#include "flowbus/flowbus.h"
#include "flowbus/protocol.h"
#include "internal.h"
#include "task_env.h"

/* Deadlines for the broker's acknowledgements; generous, as a live broker answers in ms. */
#define SUBSCRIBE_TIMEOUT 10.0
#define FLUSH_TIMEOUT 10.0
#define EXIT_CLOSE_TIMEOUT 1.0

/* One input or output of the variable store. */
struct var {
    const char *name; /* the task_env's */
    char *value;      /* NULL while unset */
    int secret;       /* inputs only: delivered in the environment */
    int taken;        /* outputs only: another producer already set it */
    int published;    /* outputs only: fb_task_done published it */
    int trigger;      /* inputs only, reactive mode: its events fire the task */
    char *current;    /* inputs only, reactive mode: the value the activation sees */
};

struct dep {
    const char *name; /* the task_env's */
    int done;
};

/* A queued event (reactive mode): a publish on trigger input `input`. */
struct event {
    size_t input; /* index into inputs; SIZE_MAX: the start of a task without triggers */
    char *value;  /* the value published (owned); NULL with SIZE_MAX */
};

/* Reactive mode: the events kept while busy, a ring buffer of max events. */
struct task_queue {
    struct event *events;
    size_t max; /* the ring's size: FLOWBUS_QUEUE, doubled when block mode must read on */
    size_t head;
    size_t len;
    unsigned long dropped;     /* events dropped so far (queue full, a drop-* overflow) */
    unsigned long burst_drops; /* dropped since the last activation began */
    int fd_held;               /* the events connection is out of fb_task_fd's epoll set */
};

/* Reactive mode: the activations, and how their states are paced (task_reactive.c). */
struct task_activation {
    int source;        /* fb_task_wait or fb_task_emit was used: events are not queued */
    int open;          /* between fb_task_next and fb_task_done/fb_task_fail */
    int snapshot;      /* inputs[].current holds the last activation's view */
    int initial_fired; /* the one start event of a task without triggers was queued */
    unsigned long number;
    enum fb_state result; /* DONE or FAILED: how the last activation ended; PENDING: none yet */
    size_t trigger;       /* input that fired the activation; SIZE_MAX: none */
    double ended_at;      /* wall time the last activation ended */
    double budget;        /* activations that may still be reported one by one */
    double budget_at;     /* monotonic time the budget was last refilled */
    int coalesce;         /* over budget: the states of a backlog are coalesced */
};

struct fb_task {
    struct task_env env; /* what the environment said; env.reconnect_max may be lowered */
    fb_bus *bus;
    fb_log_fn log;
    void *log_ctx;
    long pid;
    long guardian_pid; /* the coordinator that restarts our broker, or 0 */
    char state_topic[FB_TOPIC_MAX];
    char log_topic[FB_TOPIC_MAX];
    double flush_timeout; /* FLUSH_TIMEOUT plus the reconnect window */

    /* The variable store: the task's view of its inputs, outputs and dependencies. */
    struct var *inputs;
    size_t n_inputs;
    struct var *outputs;
    size_t n_outputs;
    struct dep *deps;
    size_t n_deps;

    double started_at; /* 0 until running */
    int stopped;       /* control said stop */
    int paused;        /* control said pause (and not resume since) */
    int running;
    int finished;
    char *last_state;    /* the last state JSON published, for re-asserting it */
    double state_at;     /* monotonic time the last state was published */
    int state_behind;    /* the state on the broker is older than the task's own */
    unsigned reconnects; /* fb_bus_reconnects when last re-asserted */
    fb_rate log_rate;    /* the log topic's limiter */

    fb_bus *events_bus; /* a worker pool: the $share subscriptions of the triggers */
    int epoll_fd;       /* a worker pool: fb_task_fd, watching both connections */
    struct task_queue queue;
    struct task_activation act;
};

/* task.c */

/* A malloc'd string formatted from fmt; NULL when out of memory. */
char *task__format(const char *fmt, ...) FB_PRINTF(1, 2);
char *task__vformat(const char *fmt, va_list ap) FB_PRINTF(1, 0);

/* The variable of that name among vars, or NULL. */
struct var *task__find_var(const struct var *vars, size_t n, const char *name);

/* task_connect.c: connects (with the Last Will), subscribes, and publishes "waiting". */
enum fb_err task_connect__open(fb_task *task, char *errbuf, size_t errlen);

/* task_absorb.c */

/* Applies one received message to the task's view of the run. */
void task_absorb__message(fb_task *task, const fb_msg *msg, int from_share);

/*
 * Absorbs every message already queued, without waiting: the task's own
 * connection first (so the latest values are known), then the events
 * connection of a worker pool.
 */
enum fb_err task_absorb__queued(fb_task *task);

/*
 * 1 if every input but `except` (SIZE_MAX: none) is set and every
 * dependency is done.
 */
int task_absorb__ready(const fb_task *task, size_t except);

/* 1 if every input but `except` (SIZE_MAX: none) is set. */
int task_absorb__inputs_set(const fb_task *task, size_t except);

/* 1 if every dependency is done (reactive: its latest activation ended done). */
int task_absorb__deps_done(const fb_task *task);

/* task_state.c */

/* Publishes the state JSON of docs/protocol.md (retained); exit_code < 0 means null. */
enum fb_err task_state__publish(fb_task *task, enum fb_state state, double at, int with_started,
                                int exit_code, const char *error);

/* The payload of the task's Last Will: the state "crashed" (malloc'd; NULL: no memory). */
char *task_state__will(const fb_task *task);

/*
 * 1 if a dependency's state JSON counts as done: its state is "done" or, in
 * reactive mode, its last activation ended "done" (a reactive task never
 * reaches the state done).
 */
int task_state__dep_done(const fb_msg *msg, int reactive);

/* Publishes a variable value (fb_value_encode: the empty string travels as one NUL byte). */
enum fb_err task_state__publish_var(fb_task *task, const char *name, const char *value);

/*
 * After a reconnect, publishes again the outputs this task published and its
 * last state. Returns FB_OK if there was nothing to do.
 */
enum fb_err task_state__reassert(fb_task *task);

/* Flushes, and re-asserts (then flushes again) if the bus reconnected meanwhile. */
enum fb_err task_state__flush(fb_task *task);

/* task_reactive.c */

/* Sets up the event queue and the budget of a reactive task. */
enum fb_err task_reactive__init(fb_task *task, char *errbuf, size_t errlen);

/* Frees the events still queued, and the queue. */
void task_reactive__free(fb_task *task);

/*
 * Once connected: with FLOWBUS_OVERFLOW=block, gives a task with triggers an
 * epoll set as fb_task_fd (a pool has one already), so that the events
 * connection can leave it while the queue is full (task_reactive__sync_fd).
 */
enum fb_err task_reactive__watch(fb_task *task, char *errbuf, size_t errlen);

/*
 * 1 if the task may take a message from a connection now (from_share: the
 * events connection of a pool). 0 only with FLOWBUS_OVERFLOW=block and a full
 * queue the task is working through: the messages then wait in the bus and
 * on the broker. A single connection is still read while the queue cannot
 * move (paused, a dependency not done, stopped), because the resume, the
 * dependency's state or the stop come on it behind the events.
 */
int task_reactive__may_take(const fb_task *task, int from_share);

/* Takes the events connection out of fb_task_fd's set while it may not be read, and back. */
void task_reactive__sync_fd(fb_task *task);

/* A publish of value (the caller's) on input in that counts as an event. */
void task_reactive__event(fb_task *task, struct var *in, const char *value);

/* Publishes the "waiting" of the last activation if it was held back. */
enum fb_err task_reactive__catch_up(fb_task *task);

/* Ends the open activation with result (FB_STATE_DONE or FB_STATE_FAILED). */
enum fb_err task_reactive__end(fb_task *task, enum fb_state result, int exit_code,
                               const char *error);

/* task_log.c */

/* Makes the process non-dumpable, so commands it runs cannot read its memory in /proc. */
void task_credentials__protect(void);

/*
 * Reads the credentials pipe FLOWBUS_CREDENTIALS_FD (if set) into
 * env->username and env->password, closes it and removes the variable and
 * FLOWBUS_PASSWORD from the environment. FB_ERR_ENV with a message on a bad
 * descriptor.
 */
enum fb_err task_credentials__read(struct task_env *env, char *errbuf, size_t errlen);

/* Replaces every secret value in text (NUL-terminated, modified in place) by "***". */
void task_log__mask(const fb_task *task, char *text);

/* 1 if value contains one of the task's secret values. */
int task_log__has_secret(const fb_task *task, const char *value);

/* Reports the lines the limiter dropped in the current second, if any (also when the task ends). */
void task_log__report_drops(fb_task *task);

#endif
