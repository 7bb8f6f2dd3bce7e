/*
 * protocol.h - the bus contract of flowbus, in one place.
 *
 * docs/protocol.md describes the contract in prose; this header is its one
 * definition in code. The SDK, the coordinator, its command-line clients and
 * the built-in plugins build and read topics, state names, values and names
 * only through these functions, so the contract cannot drift between them.
 * A plugin in another language follows docs/protocol.md, which quotes the
 * same rules.
 *
 * The topics of a run, all under flowbus/<run-id>/:
 *   state                 the run's record (retained JSON)
 *   workflow              the loaded workflow (retained JSON)
 *   control               {"cmd":"pause"|"resume"|"stop"} (retained)
 *   vars/<VAR>            a variable's value (retained; see the value encoding)
 *   tasks/<TASK>/state    a task's state (retained JSON; see enum fb_state)
 *   tasks/<TASK>/log      a task's log lines (not retained)
 *   sync/<TOKEN>          barrier tokens of the run's coordinator (never retained)
 *   owner                 the coordinator that holds the run (retained JSON: its id, pid,
 *                         host, since, client id); see docs/reliability.md
 *   claims/<ID>           a `flowbus resume` bidding for a lost run (retained JSON; its
 *                         Last Will deletes it)
 *   tasks/<TASK>/launch   the coordinator's intent to start the task's process, written
 *                         and confirmed before the process starts (retained JSON)
 *   tasks/<TASK>/placement  where an agent runs the task (`runs_on:`): the agent's answer to
 *                         an offer, then the process's pid and its exit (retained JSON)
 * The agents (`flowbus agent`, docs/distributed.md), outside every run:
 *   flowbus/agents/<NAME>        an agent's record: name, labels, host, plugins, running,
 *                                capacity, version, state online|offline (retained JSON;
 *                                its Last Will writes it offline)
 *   flowbus/agents/<NAME>/inbox  offers and signals from coordinators to the agent (JSON,
 *                                not retained); "agents" is therefore no valid run id
 * A client that needs a barrier outside every run uses
 * flowbus/<label>-<pid>-<random>/sync (fb_barrier_token).
 *
 * Everything here is pure (no I/O) except fb_barrier, and thread-safe.
 */
#ifndef FLOWBUS_PROTOCOL_H
#define FLOWBUS_PROTOCOL_H

#include <stddef.h>

#include "flowbus/flowbus.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The first level of every flowbus topic. */
#define FB_TOPIC_ROOT "flowbus"

/* Enough for any topic built from valid names (run, task and variable names are <= 64). */
#define FB_TOPIC_MAX 256

/* ------------------------------------------------------------------------ */
/* Topics                                                                    */
/* ------------------------------------------------------------------------ */

/* What a topic of a run is. */
enum fb_topic_kind {
    FB_TOPIC_NONE = 0,   /* not a topic of a run (or malformed) */
    FB_TOPIC_RUN_STATE,  /* flowbus/<run>/state */
    FB_TOPIC_WORKFLOW,   /* flowbus/<run>/workflow */
    FB_TOPIC_CONTROL,    /* flowbus/<run>/control */
    FB_TOPIC_VAR,        /* flowbus/<run>/vars/<name> */
    FB_TOPIC_TASK_STATE, /* flowbus/<run>/tasks/<name>/state */
    FB_TOPIC_TASK_LOG,   /* flowbus/<run>/tasks/<name>/log */
    FB_TOPIC_SYNC,       /* flowbus/<run>/sync/<name> */
    FB_TOPIC_ALL,        /* filters only: flowbus/<run>/# */
    FB_TOPIC_OWNER,       /* flowbus/<run>/owner */
    FB_TOPIC_CLAIM,       /* flowbus/<run>/claims/<id> */
    FB_TOPIC_TASK_LAUNCH, /* flowbus/<run>/tasks/<name>/launch */
    FB_TOPIC_TASK_PLACEMENT, /* flowbus/<run>/tasks/<name>/placement */
    FB_TOPIC_AGENT,          /* flowbus/agents/<name>: run is ignored (NULL when parsed) */
    FB_TOPIC_AGENT_INBOX,    /* flowbus/agents/<name>/inbox: run is ignored */
};

/* The level under flowbus/ that holds the agents; never a run id (fb_name_valid). */
#define FB_AGENTS_LEVEL "agents"

/* The states of an agent's record, as they travel ("state" member). */
#define FB_AGENT_ONLINE "online"
#define FB_AGENT_OFFLINE "offline"

/*
 * Writes the topic of kind for run into buf (size bytes, NUL-terminated).
 * name is the variable, task, token or claim id for VAR, TASK_STATE, TASK_LOG,
 * TASK_LAUNCH, TASK_PLACEMENT, SYNC and CLAIM, the agent's name for AGENT and
 * AGENT_INBOX (whose run is ignored), and is ignored for the others. As a filter (fb_topic_filter) a NULL run or
 * name stands for the single-level wildcard "+".
 * Returns the length written, or 0 if buf is too small, kind is FB_TOPIC_NONE
 * (or FB_TOPIC_ALL, which is only a filter), or run or a needed name is NULL
 * or contains a wildcard or '/' (topics are built from validated names; this
 * refuses what would make another topic).
 */
FB_API size_t fb_topic_format(char *buf, size_t size, enum fb_topic_kind kind, const char *run,
                              const char *name);

/* The same as a subscription filter: NULL run or name is "+"; FB_TOPIC_ALL is flowbus/<run>/#. */
FB_API size_t fb_topic_filter(char *buf, size_t size, enum fb_topic_kind kind, const char *run,
                              const char *name);

/*
 * The shared subscription through which the workers of a pool share the
 * events of one trigger input: $share/<run>.<task>/flowbus/<run>/vars/<var>.
 * Returns the length, or 0 as fb_topic_format.
 */
FB_API size_t fb_topic_share(char *buf, size_t size, const char *run, const char *task,
                             const char *var);

/* A parsed topic: pointers into the parsed string, with lengths (not NUL-terminated). */
typedef struct fb_topic {
    enum fb_topic_kind kind;
    const char *run;
    size_t run_len;
    const char *name; /* VAR, TASK_*, SYNC, CLAIM, AGENT*: the name; else NULL */
    size_t name_len;
} fb_topic;

/*
 * Parses topic. Returns its kind (also in out->kind; out may be NULL) and
 * FB_TOPIC_NONE for anything that is not exactly one of the run topics above
 * (another root, an extra level, an empty name). The run and name are not
 * validated beyond being non-empty and free of '/'.
 */
FB_API enum fb_topic_kind fb_topic_parse(const char *topic, fb_topic *out);

/* 1 if parsed topic t belongs to run (compared whole), else 0. */
FB_API int fb_topic_is_run(const fb_topic *t, const char *run);

/* 1 if parsed topic t's name equals name (compared whole), else 0. */
FB_API int fb_topic_is_name(const fb_topic *t, const char *name);

/* ------------------------------------------------------------------------ */
/* Task states                                                               */
/* ------------------------------------------------------------------------ */

/*
 * The states of a task, in the order of a task's life: a later non-final
 * state never goes back to an earlier one within an attempt. PENDING is what
 * a reader shows before anything was reported; it never travels on the bus.
 */
enum fb_state {
    FB_STATE_PENDING = 0,
    FB_STATE_WAITING, /* connected, waiting for inputs (reactive: between activations) */
    FB_STATE_RUNNING, /* acting */
    FB_STATE_DONE,    /* final: outputs published */
    FB_STATE_FAILED,  /* final: the action failed */
    FB_STATE_TIMEOUT, /* final: the coordinator killed it at its deadline */
    FB_STATE_CRASHED, /* final: it died without reporting (its Last Will) */
    FB_STATE_SKIPPED, /* final: it can never run (an input will never be set) */
    FB_STATE_DENIED,  /* final: the permission check refused it; it did not act */
    FB_STATE_STOPPED, /* final, reactive: the run was stopped while it was up */
};
#define FB_STATE_COUNT 10

/* The state's name as it travels ("waiting", ...); "?" for a value out of range. */
FB_API const char *fb_state_name(enum fb_state state);

/*
 * Parses a state name that travels on the bus (not "pending"). Returns 1 and
 * sets *out, or 0 for anything else (NULL included).
 */
FB_API int fb_state_parse(const char *text, enum fb_state *out);

/* 1 for the final states (done and after), else 0. */
FB_API int fb_state_is_final(enum fb_state state);

/* ------------------------------------------------------------------------ */
/* Run states (flowbus/<run>/state, "state")                                 */
/* ------------------------------------------------------------------------ */

enum fb_run_state {
    FB_RUN_UNKNOWN = 0, /* no record, or a name this version does not know */
    FB_RUN_RUNNING,
    FB_RUN_DONE,       /* final: every task done */
    FB_RUN_FAILED,     /* final: a task failed, or the run could not go on */
    FB_RUN_INCOMPLETE, /* final: the end task was skipped */
    FB_RUN_STOPPED,    /* final: stopped (Ctrl-C, flowbus stop, a reactive run's end) */
    FB_RUN_LOST,       /* not final: the coordinator's Last Will; `flowbus resume` takes it over */
};

/* The run state's name as it travels; "?" for UNKNOWN or out of range. */
FB_API const char *fb_run_state_name(enum fb_run_state state);

/* Parses a run state name; FB_RUN_UNKNOWN for anything else (NULL included). */
FB_API enum fb_run_state fb_run_state_parse(const char *text);

/* 1 for the final run states, else 0. */
FB_API int fb_run_state_is_final(enum fb_run_state state);

/* ------------------------------------------------------------------------ */
/* Control (flowbus/<run>/control)                                           */
/* ------------------------------------------------------------------------ */

enum fb_control { FB_CONTROL_NONE = 0, FB_CONTROL_PAUSE, FB_CONTROL_RESUME, FB_CONTROL_STOP };

/* The command's name ("pause", "resume", "stop"); NULL for NONE or out of range. */
FB_API const char *fb_control_name(enum fb_control cmd);

/*
 * Reads a control payload ({"cmd":"pause"} and so on; other members are
 * ignored). FB_CONTROL_NONE for an empty payload (the retained command was
 * removed), malformed JSON or an unknown command.
 */
FB_API enum fb_control fb_control_parse(const char *payload, size_t len);

/*
 * Writes the control payload of cmd into buf. Returns its length, or 0 if buf
 * is too small or cmd is NONE.
 */
FB_API size_t fb_control_format(char *buf, size_t size, enum fb_control cmd);

/* ------------------------------------------------------------------------ */
/* Values (flowbus/<run>/vars/<VAR>)                                         */
/* ------------------------------------------------------------------------ */

/*
 * A zero-length retained payload deletes a retained topic, so the empty
 * string travels as a single NUL byte. Every other value travels as its
 * bytes, without a terminating NUL.
 *
 * fb_value_encode: sets *payload to what to publish for value and returns its
 * length (1 for ""). *payload points into value or to static storage.
 */
FB_API size_t fb_value_encode(const char *value, const char **payload);

/*
 * fb_value_decode: the value a received payload carries: NULL for a
 * zero-length payload (the variable was removed), "" for the single NUL
 * byte, else payload itself (fb_msg payloads are NUL-terminated).
 */
FB_API const char *fb_value_decode(const char *payload, size_t len);

/* ------------------------------------------------------------------------ */
/* Names                                                                     */
/* ------------------------------------------------------------------------ */

#define FB_NAME_MAX 64

enum fb_name_kind {
    FB_NAME_VAR,  /* [A-Za-z_][A-Za-z0-9_]*: it is also an environment variable's name */
    FB_NAME_TASK, /* [A-Za-z0-9_][A-Za-z0-9_-]* */
    FB_NAME_RUN,  /* [A-Za-z0-9_-]+, but not "agents" (FB_AGENTS_LEVEL) */
};

/* 1 if the len bytes at s are a valid name of kind (at most FB_NAME_MAX), else 0. */
FB_API int fb_name_valid(enum fb_name_kind kind, const char *s, size_t len);

/* The rule of kind in words, for error messages ("use letters, digits and ..."). Static. */
FB_API const char *fb_name_rule(enum fb_name_kind kind);

/*
 * Variable names a task may not output and `--set` may not target unless the
 * workflow declares them for that purpose: a value under such a name would
 * reach a downstream command's environment and change what it runs or whom it
 * acts as (AUTH_TOKEN, PATH, IFS, ENV, BASH_ENV, LD_*, FLOWBUS_*, interpreter
 * hooks like PYTHONPATH or NODE_OPTIONS). Returns a static phrase saying why
 * ("selects the libraries every program loads"), or NULL when name is not
 * reserved. The check is on the whole name and is case-sensitive, as the
 * environment is. Names a workflow makes secret are reserved too, but only the
 * loader knows them.
 */
FB_API const char *fb_name_reserved(const char *name);

/* ------------------------------------------------------------------------ */
/* The barrier                                                               */
/* ------------------------------------------------------------------------ */

/*
 * A broker delivers the messages of one connection in order, and the
 * retained messages of a subscription before the acknowledgement of any
 * message published after it. So once a client that subscribed to some
 * filters and to a token topic of its own sees the token it published come
 * back, every retained message of those filters has arrived: the snapshot is
 * complete. This is how the coordinator, `flowbus status` and `flowbus gc`
 * read the bus without guessing with sleeps.
 */

/*
 * Writes a barrier token topic into buf: with run, flowbus/<run>/sync/<label>
 * (the run's coordinator's own tokens); with run NULL, a topic outside every
 * run, unique to this process: flowbus/<label>-<pid>-<8 random hex>/sync.
 * Returns the length, or 0 as fb_topic_format.
 */
FB_API size_t fb_barrier_token(char *buf, size_t size, const char *run, const char *label);

/*
 * Called by fb_barrier for each message that arrives before the token, in
 * arrival order. It owns msg (free it with fb_msg_free or keep it). Returning
 * anything but FB_OK ends the barrier with that code.
 */
typedef enum fb_err (*fb_barrier_fn)(void *ctx, fb_msg *msg);

/*
 * Publishes an empty QoS 1 message on token (which bus must have subscribed
 * to) and takes messages until it comes back, up to timeout seconds. Every
 * other message goes to each (NULL: they are freed). Returns FB_OK once the
 * token is back, FB_ERR_TIMEOUT, FB_ERR_LOST, what publishing returned, or
 * what each returned.
 */
FB_API enum fb_err fb_barrier(fb_bus *bus, const char *token, double timeout, fb_barrier_fn each,
                              void *ctx);

/* ------------------------------------------------------------------------ */
/* The log topic's rate bound                                                */
/* ------------------------------------------------------------------------ */

/*
 * A task that floods its output must not flood the bus, the broker's queues
 * or the coordinator: at most FB_LOG_LINES_PER_S lines a second go on one
 * task's log topic, whoever publishes them (the SDK's fb_task_log, the
 * coordinator forwarding a process's output); more are dropped and counted,
 * and the count is reported once that second is over.
 */
#define FB_LOG_LINES_PER_S 2000

/* One limiter's state. Zero-initialise it. */
typedef struct fb_rate {
    double window; /* monotonic start of the current second */
    unsigned long lines;
    unsigned long dropped;
} fb_rate;

/*
 * Returns 1 if one more line may go at monotonic time now, else 0 (and counts
 * it dropped). When a new second begins, *dropped_before (if not NULL) gets
 * how many lines the limiter dropped in the second before (0 for none), for
 * the caller to report; otherwise it is set to 0.
 */
FB_API int fb_rate_allow(fb_rate *rate, unsigned long limit, double now,
                         unsigned long *dropped_before);

/* ------------------------------------------------------------------------ */
/* Exit codes                                                                */
/* ------------------------------------------------------------------------ */

/*
 * The exit codes of flowbus (the coordinator and every command), one set,
 * documented in the README and docs/workflow-format.md.
 */
enum fb_exit {
    FB_EXIT_OK = 0,
    FB_EXIT_FAILED = 1,      /* a task failed, timed out, crashed or was denied */
    FB_EXIT_INVALID = 2,     /* a usage error or an invalid workflow; nothing ran */
    FB_EXIT_END_SKIPPED = 3, /* the run ended but its end task was skipped */
    FB_EXIT_BROKER = 4,      /* the broker (or the run's own resources) could not be had */
    FB_EXIT_OWNED = 5,       /* resume: the run has another owner (a live coordinator, or
                                the resume that won the race for it); nothing was done */
    FB_EXIT_INTERRUPTED = 130, /* Ctrl-C or SIGTERM (128 + SIGINT) */
};

/*
 * The exit status of a plugin whose task the permission check refused
 * (fb_task_require). It is sysexits' EX_NOPERM, apart from every code of
 * enum fb_exit, so a task's status never reads as one of the coordinator's.
 */
#define FB_EXIT_DENIED 77

#ifdef __cplusplus
}
#endif
#endif
