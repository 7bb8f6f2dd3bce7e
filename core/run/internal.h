/*
 * internal.h - one run of the coordinator, as the files of core/run/ share it.
 *
 * struct run is one execution of a workflow: what was loaded (the workflow,
 * its graph, the tracker, the display), the bus, the process table, and one
 * group of members for each concern that owns them. struct proc is one task
 * process, with a group for each of its parts. Each file of core/run/ is one
 * concern, and its functions here are named after it (module__verb):
 *
 *   run.c        run__main: a run from its start to its exit code, and its teardown
 *   setup.c      what a run needs before it starts: its tables, signals, run
 *                directory, private broker and connection (setup__*)
 *   resume.c     `flowbus resume`: a run rebuilt from its retained topics (resume__*)
 *   adopt.c      the run's live processes on this host, and the launch records
 *                a resume reads (adopt__*)
 *   lease.c      one owner per run: the coordinator's owner record and client id,
 *                and the race of resumes for a lost run (lease__*)
 *   loop.c       the event loop: signals, bus messages, output pipes, timers (loop__*)
 *   supervise.c  the processes: kill escalation, reaping, exits, retries,
 *                restarts, stopping the run, and every timer (supervisor__*)
 *   announce.c   what the coordinator publishes: run and task states, the
 *                workflow record, variables, control (announce__*)
 *   output.c     a task's output lines: cut, rate-limited, redacted, forwarded (output__*)
 *   launch.c     the launch window: which process starts when, in graph order (launch__*)
 *   launcher.c   spawning one task process in its own process group (launcher.h)
 *   place.c      tasks with `runs_on:`: choosing an agent, offers, answers, remote
 *                signals and exits, agents lost, their takeover by a resume (placement__*)
 *   access.c     the tasks' users and rights, the private broker's ACL (access.h)
 *   identity.c   which identity tasks get on an external broker (identity__*)
 *   dynsec.c     the dynamic security plugin of an external Mosquitto (dynsec.h)
 *   broker.c     the private mosquitto (broker.h)
 *
 * The coordinator decides as little as it can and derives the rest from the
 * bus: tasks report their own states; the tracker keeps what was reported;
 * the coordinator only authors what a task cannot say for itself (a timeout,
 * a skip, a crash with its signal, the outcome of a process that exited
 * without reporting). It writes those after the process is reaped, so a Last
 * Will fired by the kill can never overwrite them on the broker.
 *
 * Everything runs on the caller's thread, in the event loop; nothing here is
 * thread-safe, and nothing needs to be.
 */
#ifndef FLOWBUS_CORE_RUN_INTERNAL_H
#define FLOWBUS_CORE_RUN_INTERNAL_H

#include <stddef.h>
#include <sys/types.h>

#include <flowbus/flowbus.h>
#include <flowbus/protocol.h>
#include <jansson.h>

#include "launcher.h"
#include "output_lines.h"
#include "run.h"
#include "tracker.h"

struct workflow;
struct wf_diags;
struct graph;
struct display;
struct broker;
struct access;

#define KILL_GRACE 2.0 /* seconds between SIGTERM and SIGKILL */
#define SYNC_WAIT 1.0  /* seconds to wait for a sync token */
#define MAX_LAUNCH_WINDOW 64


/* ------------------------------------------------------------------------ */
/* A task process                                                            */
/* ------------------------------------------------------------------------ */

/* Why the coordinator is stopping a process. */
enum kill_reason { KILL_NONE, KILL_TIMEOUT, KILL_SKIP, KILL_STOP };

/* The operating system's side of a process. */
struct proc_process {
    pid_t pid;   /* also the process group id; 0 if never started */
    int reaped;
    int status;  /* as waitpid reported it */
    int adopted; /* started by an earlier coordinator: not our child, watched by pid */
    enum kill_reason kill;
    double up_since; /* monotonic time it was started */
};

/* 1 if a timer (a monotonic time; 0 = none, as every timer below) is set. */
static inline int timer_set(double at)
{
    return at != 0.0;
}

/* Monotonic times at which the supervisor acts on a process; 0 = none. */
struct proc_timers {
    double deadline;   /* the execution timeout */
    double sigterm_at; /* SIGTERM to a task told to stop that did not obey */
    double term_at;    /* escalate to SIGKILL */
    double sync_at;    /* deadline of a pending sync probe */
    double retry_at;   /* start the next attempt (or the restart) */
    double probe_at;   /* check that an adopted process still lives */
    double place_at;   /* placed task: an offer's answer is due, or a remote kill's exit */
    double wait_until; /* placed task: the end of its wait for an agent (execution.timeout) */
};

/* A task of `runs_on:` (place.c): its attempt's way to an agent and back. */
enum remote_phase {
    REMOTE_NONE = 0, /* not placed (a local task, or the attempt is over) */
    REMOTE_WAITING,  /* no agent can take it now: offered again when an agent changes */
    REMOTE_OFFERED,  /* offered to agent, no answer yet */
    REMOTE_STARTED,  /* the agent started it: process.pid is the pid on the agent's host */
};

struct proc_remote {
    int on; /* this attempt is placed on an agent (its process is not our child) */
    enum remote_phase phase;
    char agent[FB_NAME_MAX + 1];
    char instance[40];
    char offer[48];
    json_t *refused; /* agents that refused this attempt: name -> {"reason", "full"} */
    int killed;      /* a SIGKILL went to the agent: its exit is awaited until place_at */
    char lost[512];  /* why its agent lost it (gone offline, restarted): its crash's reason */
};

/* Another attempt of a one-shot task, or a restart of a reactive one. */
struct proc_retry {
    int pending;      /* another attempt is decided; it starts once this process is reaped */
    double delay;     /* seconds from the reap to the next start */
    int restarts;     /* reactive: consecutive restarts, for the backoff */
    char *final_json; /* this attempt's final state, authored here, published at reap */
};

/* What the process writes on its stdout and stderr, assembled into lines. */
struct proc_output {
    int fd; /* stdout+stderr pipe; -1 once closed */
    struct output_lines lines;
};

struct proc {
    size_t task; /* index of its task; procs[t] is the first (or only) process of task t */
    int worker;  /* 1..workers (reactive pools), else 1 */
    int attempt; /* 1 for the first attempt */
    struct proc_process process;
    struct proc_timers timer;
    struct proc_retry retry;
    struct proc_output out;
    struct proc_remote remote;
};

/* 1 while process p may still run: our child not reaped, or an offer not answered. */
static inline int proc_alive(const struct proc *p)
{
    return (p->process.pid && !p->process.reaped) || p->remote.phase == REMOTE_OFFERED;
}

/* ------------------------------------------------------------------------ */
/* The run                                                                   */
/* ------------------------------------------------------------------------ */

/* What setup.c acquires and run__main gives back. */
struct resources {
    struct broker *broker; /* the private broker; NULL on an external one */
    struct access *access; /* the tasks' users: the private broker's, or the dynsec plugin's */
    struct dynsec *dynsec; /* the plugin's admin connection (external broker), or NULL */
    int identities_set;    /* identity__setup ran */
    int took_over;         /* launch__context ran: this coordinator owns the run's processes */
    int sigfd;             /* SIGCHLD, SIGINT, SIGTERM, SIGHUP; -1 if none */
    char run_dir[256];     /* private (0700) directory of the run: the permission cache */
    char cache_salt[40];
    int follow_vars;     /* subscribed to the variables (not a reactive flow without --json) */
    unsigned reconnects; /* fb_bus_reconnects() when last looked at */
    int recorded;        /* the run is in the user's local runs (localruns.h) */
};

/* The launch window (launch.c): processes started but not yet heard from. */
struct window {
    struct launch_context lc; /* what every task's environment shares */
    size_t *order; /* process indices in the order to start them */
    size_t next;   /* index into order of the next process to start */
    size_t starting[MAX_LAUNCH_WINDOW];
    size_t n_starting;
    size_t size; /* how many may be starting at once; SIZE_MAX: no bound; 0: none (resume) */
    int intents; /* a launch record goes before each start (a one-shot run, external broker) */
};

/* How the run as a whole is going (supervise.c). */
struct supervisor {
    size_t *skipped;     /* room for the tasks one propagation skips */
    double run_deadline; /* monotonic end of --timeout; 0 = none */
    int finishing;       /* every task is final (or the flow is over): processes are let go */
    int interrupted;     /* the signal that stopped the run, or -1 for the run timeout */
    int final_synced;    /* the last sync token came back: every message was seen */
    double final_sync_at; /* monotonic deadline of that token; 0 = not sent */
    int fatal;            /* an exit code forced by an infrastructure failure */
};

/* The run's record on the bus, kept to publish it again (announce.c). */
struct record {
    char *workflow_json; /* as last published on the workflow topic */
    char path[4096];     /* the workflow file, absolute, and the directory of the run */
    char cwd[4096];
    int paused; /* the run state's "paused", as the control topic set it */
};

/* The coordinator's lease on its run (lease.c). */
struct lease {
    char id[33];        /* its owner id: 16 random bytes in hex, never reused */
    char client_id[64]; /* its own broker client id, made from the owner id */
    char host[256];
    double since;    /* wall time it took the run */
    int deposed;     /* another coordinator holds the run now: this one lets it go */
};

/* The agents the run may place tasks on (place.c). */
struct placement {
    int used;          /* a task has runs_on: the agents' records are followed */
    json_t *agents;    /* name -> the agent's last record */
    unsigned counter;  /* offers sent, for their ids */
};

struct run {
    const struct run_options *o;
    char run_id[72];
    int reactive;
    double t0_wall, t0_mono; /* when the run started (resume: the wall time it first started) */
    struct workflow *wf;
    struct graph *g;
    struct tracker *tr;
    struct display *disp;
    fb_bus *bus;
    struct proc *procs;
    size_t n_procs; /* n_tasks, plus the extra workers of reactive pools */
    struct resources res;
    struct window window;
    struct supervisor sup;
    struct record record;
    struct lease lease;
    struct placement place;
};

/* ------------------------------------------------------------------------ */
/* setup.c                                                                   */
/* ------------------------------------------------------------------------ */

/* Creates the run directory, graph, tracker, process table, launch order and display for r->wf. */
int setup__tables(struct run *r);

/* Blocks the signals the loop reads and opens r->res.sigfd. 1 on success. */
int setup__signals(struct run *r);

/* Starts the private broker with the run's users and ACL. 1 on success (reason logged). */
int setup__private_broker(struct run *r);

/* Connects to the broker and subscribes to the run's topics. 1 on success (reason logged). */
int setup__connect(struct run *r, const char *url, const char *user, const char *pass);

/*
 * Connects *bus with bo, giving a broker that is still starting about 10 s of
 * attempts (a signal ends the wait). 1 on success (reason logged).
 */
int setup__open_bus(struct run *r, const fb_bus_options *bo, fb_bus **bus);

/* 1 if no retained topic of the run id exists on the broker (reason logged). */
int setup__run_id_unused(struct run *r);

/* Removes the run directory and the files the tasks left in it (one level). */
void setup__remove_run_dir(struct run *r);

/* ------------------------------------------------------------------------ */
/* identity.c                                                                */
/* ------------------------------------------------------------------------ */

/*
 * On an external broker: per-task identities through the dynamic security
 * plugin, or the coordinator's own with a warning (FLOWBUS_TASK_IDENTITIES).
 * 0 if the run must be refused (reason logged). Does nothing a second time.
 */
int identity__setup(struct run *r);

/* Removes the run's task clients and roles from the plugin (all processes are gone). */
void identity__teardown(struct run *r);

/* ------------------------------------------------------------------------ */
/* resume.c                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * `flowbus resume`: takes over run o->run_id. Returns an exit code; on
 * FB_EXIT_OK, *lifted is 1 if the run's coordinator was alive and resuming
 * only lifted its pause (there is nothing else to do).
 */
int resume__start(struct run *r, struct wf_diags *diags, int *lifted);

/* ------------------------------------------------------------------------ */
/* lease.c                                                                   */
/* ------------------------------------------------------------------------ */

/* A `flowbus resume`'s bid for a lost run: its own connection, whose Will deletes the claim. */
struct claim {
    fb_bus *bus;
    char id[33];
    char topic[FB_TOPIC_MAX]; /* flowbus/<run>/claims/<id> */
    int published;            /* our claim is on the broker: remove it when done */
};

/* Makes this coordinator's owner id, client id, host and time. 1 on success. */
int lease__init(struct run *r);

/* Publishes the owner record (retained; expiry 0: for ever). */
void lease__publish(struct run *r, unsigned expiry);

/* "pid P on host H since T" of an owner record or claim payload, into buf. */
void lease__describe(const char *json, size_t len, char *buf, size_t size);

/*
 * A message of the event loop: an owner record not ours means the run was
 * taken over (r->lease.deposed); a run state not ours is written over with
 * ours. Returns 1 if the message is an owner record (nothing else to do).
 */
int lease__on_message(struct run *r, const fb_msg *m);

/* Connects the claim's own bus and subscribes to the whole run. 1 on success (reason logged). */
int lease__claim_open(struct run *r, struct claim *c);

/* The index of the first claim among msgs (in arrival order, deleted since or not), or -1. */
int lease__first_claim(const struct run *r, fb_msg *const *msgs, size_t n);

/*
 * Races for the run (c NULL: only says who won, if earlier holds a claim): earlier are the messages the claim's bus received since
 * its subscription. Returns FB_EXIT_OK if this resume won, FB_EXIT_OWNED if
 * another did (said on stderr), FB_EXIT_BROKER if the broker failed.
 */
int lease__race(struct run *r, struct claim *c, fb_msg *const *earlier, size_t n_earlier);

/* Removes the claim if it was published, and closes its bus. Accepts a claim never opened. */
void lease__claim_close(struct claim *c);

/* ------------------------------------------------------------------------ */
/* adopt.c                                                                   */
/* ------------------------------------------------------------------------ */

/* A live process of the run on this host, found by its environment. */
struct seen_proc {
    pid_t pid;
    int leader; /* it leads its process group, as a task process does */
    char task[FB_NAME_MAX + 1];
};

struct seen {
    struct seen_proc *v;
    size_t n;
};

/* Adds the run's live processes that s does not hold yet (read from /proc). */
void adopt__scan(const char *run_id, struct seen *s);

/* The process of task in s: pid hint if it is one, else its group leader, else any; 0 if none. */
pid_t adopt__pid(const struct seen *s, const char *task, long hint);

void adopt__free(struct seen *s);

/* The start time of process pid (clock ticks after boot, /proc/<pid>/stat); 0 if gone. */
unsigned long long adopt__start_time(pid_t pid);

/*
 * Launch records in msgs (the run's retained topics) of attempts that reported
 * nothing and have no process in s: waits up to a second, scanning again,
 * for their processes to show up (added to s).
 */
void adopt__settle_intents(struct run *r, fb_msg *const *msgs, size_t n, struct seen *s);

/* ------------------------------------------------------------------------ */
/* loop.c                                                                    */
/* ------------------------------------------------------------------------ */

/* The event loop: runs until every task is finished and every process is gone. */
void loop__run(struct run *r);

/* ------------------------------------------------------------------------ */
/* supervise.c                                                               */
/* ------------------------------------------------------------------------ */

/* Sends SIGTERM to process i's group for why and arranges the SIGKILL escalation. */
void supervisor__stop_proc(struct run *r, size_t i, enum kill_reason why);

/* Marks newly dead tasks skipped and stops their processes. */
void supervisor__propagate(struct run *r);

/* Task t reached a final state: a failure with attempts left becomes a retry. */
void supervisor__on_final(struct run *r, size_t t);

/* Task t reported a state: its process's deadline starts or ends. */
void supervisor__on_task_state(struct run *r, size_t t);

/* Reaps every child that exited (SIGCHLD). */
void supervisor__reap(struct run *r);

/* The sync probe of process i came back (or ran out): decides its task's state. */
void supervisor__resolve_exit(struct run *r, size_t i);

/* Publishes process i's sync probe (again) and arms its deadline. */
void supervisor__probe(struct run *r, size_t i);

/* Publishes every pending sync probe again (after a reconnect). */
void supervisor__probe_again(struct run *r);

/* Stops the run early: Ctrl-C, SIGTERM, the run timeout (why -1), a stop request, a lost broker. */
void supervisor__interrupt(struct run *r, int why, const char *text);

/* 1 once the run has nothing left to do: every task final (one-shot), no process (reactive). */
int supervisor__over(const struct run *r);

/* Every process is let go: each still alive gets KILL_GRACE to end before SIGKILL. */
void supervisor__finish(struct run *r);

/* 1 when every process has been reaped and no sync probe is pending. */
int supervisor__all_reaped(const struct run *r);

/* Acts on every timer that is due (deadlines, escalations, probes, retries, the run timeout). */
void supervisor__check_timers(struct run *r);

/* The earliest monotonic time at which a timer of the run is due; 0 if none is set. */
double supervisor__next_wakeup(const struct run *r);

/* ------------------------------------------------------------------------ */
/* announce.c                                                                */
/* ------------------------------------------------------------------------ */

/* Publishes text on topic t (QoS 1); a failure is logged. */
void announce__text(struct run *r, const char *t, const char *text, int retained);

/* Publishes task t's state as the tracker has it (retained). */
void announce__task_state(struct run *r, size_t t);

/* Publishes json as task t's state (retained): an attempt's final state, kept for its reap. */
void announce__task_json(struct run *r, size_t t, const char *json);

/* Publishes the run state (retained); code < 0: no exit code yet. expiry 0: for ever. */
void announce__run_state(struct run *r, enum fb_run_state state, int code, unsigned expiry);

/*
 * Publishes the launch record of process i's attempt (retained). pid 0: before
 * the start, and waits for the broker to confirm it, so that a resume can tell
 * a start that was under way when this coordinator died; pid > 0: after it,
 * naming the process (adopt.c).
 */
void announce__intent(struct run *r, size_t i, int attempt, pid_t pid);

/* Deletes the launch records of a run that is over. */
void announce__forget_intents(struct run *r);

/* Publishes {"cmd":"stop"} on the run's control topic (retained). */
void announce__stop(struct run *r);

/* Publishes the workflow record, the run state and the initial variables of a new run. */
void announce__start(struct run *r);

/* After a reconnect: publishes again what only the coordinator knows. */
void announce__again(struct run *r);

/* Reads the flow's variables back if it did not follow them (for announce__expiring). */
void announce__collect_vars(struct run *r);

/* Publishes the finished run's retained topics again with an MQTT message expiry. */
void announce__expiring(struct run *r, unsigned expiry);

/* Sends sig to process i's group: on this host, or through its agent (place.c). */
void supervisor__signal(struct run *r, size_t i, int sig);

/* Process i, placed on an agent, is gone with status (waitpid's encoding), as if reaped. */
void supervisor__remote_exit(struct run *r, size_t i, int status);

/* ------------------------------------------------------------------------ */
/* place.c                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * Refuses (with a message, 0) a run whose placed tasks could not be reached:
 * runs_on needs an external broker (--broker); checks.c refuses it in reactive flows.
 */
int placement__check(struct run *r);

/* Follows the agents' records and the run's placement answers (if a task has runs_on). */
int placement__subscribe(struct run *r);

/* 1 if task t is placed on agents (runs_on). */
int placement__remote(const struct run *r, size_t t);

/* Offers process i's attempt to the least loaded live agent with its labels, or waits. */
void placement__offer(struct run *r, size_t i);

/* An agent's record or a placement answer: 1 if m was one (it is handled). */
int placement__on_message(struct run *r, const fb_msg *m);

/*
 * 1 if m is a state of a placed task's current attempt from a process that is
 * not the attempt's (a stray: a late start of an abandoned offer), to be
 * ignored; a final one is answered with the attempt's own record.
 */
int placement__stray_state(struct run *r, const fb_msg *m);

/* Sends sig to process i's task through its agent. */
void placement__signal(struct run *r, size_t i, int sig);

/* Process i's placement timers (place_at, wait_until) that are due. */
void placement__check_timers(struct run *r, size_t i, double now);

/* Frees what placement holds. */
void placement__free(struct run *r);

/* Resume: the agents' records among msgs (the run's retained topics) are the run's view of them. */
void placement__remember(struct run *r, fb_msg *const *msgs, size_t n);

/* What a resume made of placed task t. */
enum placement_resumed {
    PLACEMENT_OFFER,   /* nothing of the attempt runs: offer it (launch__start) */
    PLACEMENT_ADOPTED, /* started on an agent that is still there, or its exit is being decided */
    PLACEMENT_LOST,    /* its agent went away meanwhile: crashed, its retries apply */
};

/*
 * Resume: takes over placed task t's attempt from the last placement answer
 * among msgs and the agents' records (placement__remember first).
 */
enum placement_resumed placement__resume(struct run *r, size_t t, int attempt,
                                         fb_msg *const *msgs, size_t n);

/* ------------------------------------------------------------------------ */
/* output.c                                                                  */
/* ------------------------------------------------------------------------ */

/* Reads what process i wrote and publishes it on its task's log topic, line by line. */
void output__read(struct run *r, size_t i);

/* Publishes a note on the log topic of process i's task (not subject to the rate bound). */
void output__note(struct run *r, size_t i, const char *text);

/* Forgets a partial line (a new process starts). */
void output__reset(struct proc *p);

/* Closes the pipe and frees the line buffer. */
void output__free(struct proc *p);

/* ------------------------------------------------------------------------ */
/* launch.c                                                                  */
/* ------------------------------------------------------------------------ */

/* Fills the launch context every task's environment shares. */
void launch__context(struct run *r);

/* Computes the order to start processes in (by depth in the graph). 1 on success. */
int launch__order(struct run *r);

/* Sizes the launch window and starts the first processes. */
void launch__all(struct run *r);

/* 1 if the run may start a process now (see launch.c: not while its ownership is in doubt). */
int launch__may_start(const struct run *r);

/* Starts processes while the window has room. */
void launch__more(struct run *r);

/* Starts process i: attempt number attempt of its task, or a restart. */
void launch__start(struct run *r, size_t i, int attempt);

/* Process i has been heard from (or is gone): it gives up its place in the window. */
void launch__started(struct run *r, size_t i);

/* 1 while a process holds a place in the window and others wait for one. */
int launch__waiting(const struct run *r);

#endif
