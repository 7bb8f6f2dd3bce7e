/*
 * client.c - `flowbus status`, `set`, `logs`, `stop` and `pause` (see client.h).
 *
 * These commands own nothing: everything they show or check comes from the
 * retained topics a run keeps under flowbus/<run-id>/, and everything they do
 * is a publish any MQTT client could make (a variable, or a command on the
 * run's control topic). So they work from any machine that reaches the
 * broker, for runs started anywhere, and need no coordinator to answer them.
 *
 * A command first takes a snapshot: it subscribes, then publishes a token on a
 * topic of its own and waits for it to come back. The broker sends the
 * retained messages of a subscription before it handles our later publish,
 * so once the token is back the snapshot is complete (the barrier of
 * docs/protocol.md, on our own connection). Commands that wait (logs -f, stop,
 * pause) keep the subscription and apply every later message to the same
 * view of the run.
 *
 * The view of a run is a JSON object built from those messages:
 *   {"run_id": ID, "state": <run state JSON>, "workflow": <workflow JSON>,
 *    "tasks": {NAME: <task state JSON>}, "vars": {NAME: VALUE}, "control": <JSON>}
 * Jansson holds it so that a message that deletes a retained topic (an empty
 * payload, as gc publishes) simply removes the key.
 */
#include "client.h"
#include "workflow.h"
#include <flowbus/flowbus.h>
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <flowbus/flowbus.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define EXIT_NOT_CONFIRMED 1
#define EXIT_USAGE 2
#define EXIT_BROKER 4
#define EXIT_INTERRUPTED 130
#define KEEP_WATCHING (-1) /* a watch callback's "not finished yet" */
#define WATCH_TIMEOUT (-2) /* watch(): the deadline passed */

#define ANSWER_WAIT 10.0   /* seconds for the broker to answer a subscribe or the barrier */
#define RECONNECT_MAX 30.0 /* seconds a waiting command tries to get the broker back */
#define STOP_WAIT 30.0     /* default --timeout of stop */
#define PAUSE_WAIT 10.0    /* default --timeout of pause: a coordinator confirms at once */
#define MAX_NAME 64        /* variable names and run ids, docs/protocol.md */

const char client__usage_status[] =
    "Usage: flowbus status [RUN] [--broker URL] [--json]\n"
    "\n"
    "Without RUN: every run on the broker, one line each: run id, workflow, state\n"
    "(running, paused, done, failed, incomplete, stopped, lost), start (local time),\n"
    "duration and its tasks counted by state.\n"
    "With RUN: the run's state and one line per task: state, attempt, activation\n"
    "(reactive runs), duration, exit code and error.\n"
    "\n"
    "Options:\n"
    "  --broker URL  the broker (default: $FLOWBUS_BROKER)\n"
    "  --json        print one JSON object instead of the tables\n"
    "  -h, --help    show this help\n"
    "\n"
    "Exit codes: 0 shown, 2 no such run, 4 broker unavailable.\n";

const char client__usage_set[] =
    "Usage: flowbus set RUN VAR=VALUE [VAR=VALUE...] [--broker URL]\n"
    "\n"
    "Publish variables of the live run RUN (retained, QoS 1, confirmed by the\n"
    "broker): tasks waiting for them start, reactive tasks fire again. VAR must be\n"
    "a variable of the run's workflow and not a secret; an empty VALUE is allowed.\n"
    "Nothing is published unless every VAR=VALUE is accepted.\n"
    "\n"
    "Options:\n"
    "  --broker URL  the run's broker (default: $FLOWBUS_BROKER)\n"
    "  -h, --help    show this help\n"
    "\n"
    "Exit codes: 0 published, 2 no such run or variable, a secret, or a finished run,\n"
    "4 broker unavailable or the publish was refused.\n";

const char client__usage_logs[] =
    "Usage: flowbus logs RUN [-f] [--task TASK] [--broker URL]\n"
    "\n"
    "Log lines are not kept on the broker: without -f this prints the error line of\n"
    "each task that has one. With -f it follows the run: every log line as\n"
    "[TASK] line, and every state change, until the run ends (exit 0) or Ctrl-C.\n"
    "\n"
    "Options:\n"
    "  -f, --follow  follow the run's log lines and states live\n"
    "  --task TASK   only this task's lines and states\n"
    "  --broker URL  the run's broker (default: $FLOWBUS_BROKER)\n"
    "  -h, --help    show this help\n"
    "\n"
    "Exit codes: 0 done or the run ended, 2 no such run or task, 4 broker\n"
    "unavailable, 130 interrupted.\n";

const char client__usage_stop[] =
    "Usage: flowbus stop RUN [--timeout SECONDS] [--broker URL]\n"
    "\n"
    "Ask the run RUN to stop ({\"cmd\":\"stop\"} on its control topic) and wait until\n"
    "its coordinator has stopped every task and published the run's final state.\n"
    "\n"
    "Options:\n"
    "  --timeout SECONDS  how long to wait for the run to end (default 30)\n"
    "  --broker URL       the run's broker (default: $FLOWBUS_BROKER)\n"
    "  -h, --help         show this help\n"
    "\n"
    "Exit codes: 0 the run ended, 1 it did not end in time (or has no coordinator),\n"
    "2 no such run or already finished, 4 broker unavailable, 130 interrupted.\n";

const char client__usage_pause[] =
    "Usage: flowbus pause RUN [--timeout SECONDS] [--broker URL]\n"
    "\n"
    "Ask the run RUN to pause ({\"cmd\":\"pause\"} on its control topic): tasks keep\n"
    "receiving events but start no new activation until `flowbus resume RUN`.\n"
    "Waits until the coordinator confirms (its run state shows \"paused\": true).\n"
    "\n"
    "Options:\n"
    "  --timeout SECONDS  how long to wait for the confirmation (default 10)\n"
    "  --broker URL       the run's broker (default: $FLOWBUS_BROKER)\n"
    "  -h, --help         show this help\n"
    "\n"
    "Exit codes: 0 paused, 1 not confirmed in time (or no coordinator), 2 no such\n"
    "run or already finished, 4 broker unavailable, 130 interrupted.\n";

/* One connection to the broker for one command. */
struct session {
    const struct client_options *o;
    fb_bus *bus;
    int sigfd;      /* signalfd for Ctrl-C while waiting; -1 when the command does not wait */
    char token[96]; /* the barrier topic, ours alone */
    char root[96];  /* flowbus/<run-id>/ (with the slash), when there is a run */
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                              */
/* ------------------------------------------------------------------------ */

static const char *jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* A number field, or -1 when it is absent or null (times and counts are never negative). */
static double jnum(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : -1;
}

static int final_state(const char *s)
{
    return s && (strcmp(s, "done") == 0 || strcmp(s, "failed") == 0 ||
                 strcmp(s, "incomplete") == 0 || strcmp(s, "stopped") == 0);
}

static int terminal_task_state(const char *s)
{
    return s && strcmp(s, "waiting") != 0 && strcmp(s, "running") != 0;
}

static int valid_var_name(const char *s, size_t n)
{
    if (n == 0 || n > MAX_NAME || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_')
            return 0;
    return 1;
}

/* "0.354s", "12.3s", "5m03s", "2h05m", "3d04h": short enough for a table column. */
static void fmt_duration(char *buf, size_t len, double s)
{
    if (s < 0)
        snprintf(buf, len, "-");
    else if (s < 10)
        snprintf(buf, len, "%.3fs", s);
    else if (s < 60)
        snprintf(buf, len, "%.1fs", s);
    else if (s < 3600)
        snprintf(buf, len, "%dm%02ds", (int)s / 60, (int)s % 60);
    else if (s < 86400)
        snprintf(buf, len, "%dh%02dm", (int)s / 3600, (int)s % 3600 / 60);
    else
        snprintf(buf, len, "%dd%02dh", (int)(s / 86400), (int)s % 86400 / 3600);
}

static void fmt_local_time(char *buf, size_t len, double t)
{
    time_t secs = (time_t)t;
    struct tm tm;

    if (t <= 0 || !localtime_r(&secs, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm))
        snprintf(buf, len, "-");
}

/* The candidate (a JSON array of strings) closest to word, or NULL if none is close. */
static const char *closest(const char *word, const json_t *candidates)
{
    size_t i, best = (size_t)-1, limit = strlen(word) <= 4 ? 1 : 2;
    const char *found = NULL;
    json_t *c;

    json_array_foreach(candidates, i, c) {
        size_t d = workflow__distance(word, json_string_value(c));
        if (d < best) {
            best = d;
            found = json_string_value(c);
        }
    }
    return best <= limit ? found : NULL;
}

/* " (did you mean 'X'?)" or " (RUN has: A, B, C)", into buf, for "no such name" errors. */
static void suggest(char *buf, size_t len, const char *word, const json_t *candidates)
{
    const char *near = closest(word, candidates);
    size_t used, i;
    json_t *c;

    if (near) {
        snprintf(buf, len, " (did you mean '%s'?)", near);
        return;
    }
    if (json_array_size(candidates) == 0) {
        snprintf(buf, len, " (it has none)");
        return;
    }
    used = (size_t)snprintf(buf, len, " (it has: ");
    json_array_foreach(candidates, i, c) {
        if (used >= len)
            break;
        if (i == 10) {
            used += (size_t)snprintf(buf + used, len - used, ", ...");
            break;
        }
        used +=
            (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "", json_string_value(c));
    }
    if (used < len)
        snprintf(buf + used, len - used, ")");
}

/* Appends s to the JSON array of strings a unless it is there already. */
static void add_unique(json_t *a, const char *s)
{
    size_t i;
    json_t *c;

    if (!s)
        return;
    json_array_foreach(a, i, c)
        if (strcmp(json_string_value(c), s) == 0)
            return;
    json_array_append_new(a, json_string(s));
}

/* ------------------------------------------------------------------------ */
/* The connection and the snapshot                                          */
/* ------------------------------------------------------------------------ */

/*
 * Connects. A command that waits blocks SIGINT, SIGTERM and SIGHUP first, so
 * that Paho's threads (which inherit the mask) never take them, and reads
 * them from a signalfd in its poll loop instead: Ctrl-C then ends the wait
 * cleanly. Returns 0 or the exit code.
 */
static int session_open(struct session *s, const struct client_options *o, int waits)
{
    fb_bus_options bo = {0};
    unsigned char rnd[4] = {0};
    char err[256];

    s->o = o;
    s->sigfd = -1;
    if (o->run_id) {
        if (!workflow__valid_run_id(o->run_id)) {
            log_printf(FB_LOG_ERROR,
                       "'%s' is not a run id: expected 1 to %d letters, digits, "
                       "'-' or '_'",
                       o->run_id, MAX_NAME);
            return EXIT_USAGE;
        }
        snprintf(s->root, sizeof s->root, "flowbus/%s/", o->run_id);
    }
    if (waits) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        s->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
        if (s->sigfd < 0) {
            log_printf(FB_LOG_ERROR, "signalfd: %s", strerror(errno));
            return EXIT_BROKER;
        }
    }
    bo.url = o->broker_url;
    bo.username = o->username;
    bo.password = o->password;
    bo.ca_file = getenv("FLOWBUS_TLS_CA");
    bo.cert_file = getenv("FLOWBUS_TLS_CERT");
    bo.key_file = getenv("FLOWBUS_TLS_KEY");
    /* A command that follows a run for minutes should ride out a broker
     * restart, as the run's own processes do; a one-shot look should not. */
    bo.reconnect_max_s = waits ? RECONNECT_MAX : 0;
    bo.log = log__sdk;
    if (fb_bus_new(&bo, &s->bus, err, sizeof err) != FB_OK) {
        log_printf(FB_LOG_ERROR, "cannot connect to the broker at %s: %s", o->broker_url, err);
        return EXIT_BROKER;
    }
    /* The barrier topic is outside every run (a run's sync/ topics belong to
     * its coordinator, which acts on them) and unique to this process. */
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        rnd[0] = (unsigned char)fb_clock_mono();
    snprintf(s->token, sizeof s->token, "flowbus/client-%ld-%02x%02x%02x%02x/sync", (long)getpid(),
             rnd[0], rnd[1], rnd[2], rnd[3]);
    return 0;
}

static void session_close(struct session *s)
{
    if (s->bus)
        fb_bus_close(s->bus, 1.0);
    fb_bus_free(s->bus);
    s->bus = NULL;
    if (s->sigfd >= 0)
        close(s->sigfd);
    s->sigfd = -1;
}

struct msgs {
    fb_msg **v;
    size_t n, cap;
};

static void msgs_free(struct msgs *l)
{
    for (size_t i = 0; i < l->n; i++)
        fb_msg_free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

#define MAX_FILTERS 4 /* the most any command subscribes to */

/*
 * Subscribes to filters (under the run's root when relative; at most
 * MAX_FILTERS) and collects every message that arrives until our token comes
 * back, in arrival order: the retained ones are the snapshot, any others were
 * live. Returns 0 or the exit code.
 */
static int collect(struct session *s, const char *const *filters, size_t n, struct msgs *out)
{
    char full[MAX_FILTERS][160];
    const char *all[MAX_FILTERS + 1];
    double deadline;
    int code = EXIT_BROKER;
    enum fb_err e;

    if (n > MAX_FILTERS)
        n = MAX_FILTERS;
    for (size_t i = 0; i < n; i++) {
        snprintf(full[i], sizeof full[i], "%s%s", strncmp(filters[i], "flowbus/", 8) ? s->root : "",
                 filters[i]);
        all[i] = full[i];
    }
    all[n] = s->token;
    e = fb_bus_subscribe(s->bus, all, n + 1, ANSWER_WAIT);
    if (e == FB_OK)
        e = fb_bus_publish(s->bus, s->token, "", 0, 1, 0, 0);
    if (e != FB_OK) {
        log_printf(FB_LOG_ERROR, "the broker at %s did not accept our subscription: %s",
                   s->o->broker_url, fb_strerror(e));
        goto out;
    }
    deadline = fb_clock_mono() + ANSWER_WAIT;
    for (;;) {
        fb_msg *m = NULL, **grown;
        e = fb_bus_next(s->bus, deadline - fb_clock_mono(), &m);
        if (e != FB_OK) {
            log_printf(FB_LOG_ERROR, "the broker at %s did not answer within %g s: %s",
                       s->o->broker_url, ANSWER_WAIT, fb_strerror(e));
            goto out;
        }
        if (strcmp(m->topic, s->token) == 0) {
            fb_msg_free(m);
            break;
        }
        if (out->n == out->cap) {
            /* A broker with many runs holds many retained messages: grow by doubling. */
            size_t cap = out->cap ? out->cap * 2 : 64;
            grown = realloc(out->v, cap * sizeof *grown);
            if (!grown) {
                fb_msg_free(m);
                log_printf(FB_LOG_ERROR, "out of memory");
                goto out;
            }
            out->v = grown;
            out->cap = cap;
        }
        out->v[out->n++] = m;
    }
    code = 0;
out:
    return code;
}

/* ------------------------------------------------------------------------ */
/* The view of runs                                                           */
/* ------------------------------------------------------------------------ */

enum change { CHANGE_NONE, CHANGE_RUN, CHANGE_TASK, CHANGE_LOG, CHANGE_OTHER };

static json_t *view_of(json_t *runs, const char *id)
{
    json_t *v = json_object_get(runs, id);

    if (!v) {
        v = json_pack("{s:s, s:{}, s:{}}", "run_id", id, "tasks", "vars");
        json_object_set_new(runs, id, v);
    }
    return v;
}

/* Sets or (for an empty payload: a deleted retained topic) removes key of obj. */
static void set_or_remove(json_t *obj, const char *key, json_t *value, const fb_msg *m)
{
    if (m->len == 0)
        json_object_del(obj, key);
    else if (value)
        json_object_set_new(obj, key, value);
}

/*
 * Applies one message to the views in runs (an object of run id -> view).
 * Returns what it was; for a task state or log line, the task's name in
 * task (pointing into m).
 */
static enum change apply(json_t *runs, const fb_msg *m, char *task, size_t task_len)
{
    const char *id = m->topic + strlen("flowbus/"), *slash, *rest;
    char run[MAX_NAME + 1];
    json_t *v;

    if (strncmp(m->topic, "flowbus/", 8) != 0 || !(slash = strchr(id, '/')) ||
        (size_t)(slash - id) > MAX_NAME)
        return CHANGE_NONE;
    memcpy(run, id, (size_t)(slash - id));
    run[slash - id] = '\0';
    rest = slash + 1;
    v = view_of(runs, run);
    if (strcmp(rest, "state") == 0 || strcmp(rest, "workflow") == 0 ||
        strcmp(rest, "control") == 0) {
        json_t *o = json_loadb(m->payload, m->len, 0, NULL);
        if (m->len && !json_is_object(o)) {
            json_decref(o); /* not ours to interpret: leave the view as it was */
            return CHANGE_NONE;
        }
        set_or_remove(v, rest, o, m);
        return strcmp(rest, "state") == 0 ? CHANGE_RUN : CHANGE_OTHER;
    }
    if (strncmp(rest, "vars/", 5) == 0) {
        /* One NUL byte is the contract's spelling of the empty string. */
        json_t *val = json_stringn_nocheck(m->payload, m->len == 1 && !m->payload[0] ? 0 : m->len);
        set_or_remove(json_object_get(v, "vars"), rest + 5, val, m);
        return CHANGE_OTHER;
    }
    if (strncmp(rest, "tasks/", 6) == 0) {
        const char *name = rest + 6, *end = strchr(name, '/');
        if (!end || (size_t)(end - name) >= task_len)
            return CHANGE_NONE;
        memcpy(task, name, (size_t)(end - name));
        task[end - name] = '\0';
        if (strcmp(end, "/log") == 0)
            return CHANGE_LOG;
        if (strcmp(end, "/state") == 0) {
            json_t *o = json_loadb(m->payload, m->len, 0, NULL);
            if (m->len && !json_is_object(o)) {
                json_decref(o);
                return CHANGE_NONE;
            }
            set_or_remove(json_object_get(v, "tasks"), task, o, m);
            return CHANGE_TASK;
        }
    }
    return CHANGE_NONE;
}

/* A run is on the broker if its workflow or its state is. */
static int run_exists(const json_t *v)
{
    return v && (json_object_get(v, "workflow") || json_object_get(v, "state"));
}

/* The names of the workflow's tasks in its order, then any other task that reported a state. */
static json_t *task_names(const json_t *v)
{
    json_t *names = json_array(), *t;
    const char *key;
    size_t i;

    json_array_foreach(json_object_get(json_object_get(v, "workflow"), "tasks"), i, t)
        add_unique(names, jstr(t, "name"));
    json_object_foreach(json_object_get(v, "tasks"), key, t)
        add_unique(names, key);
    return names;
}

/* The variables of the run's workflow: env:, every task's inputs and outputs. */
static json_t *var_names(const json_t *v)
{
    json_t *wf = json_object_get(v, "workflow"), *names = json_array(), *t, *x;
    const char *key;
    size_t i, k;

    json_object_foreach(json_object_get(wf, "env"), key, x)
        add_unique(names, key);
    json_array_foreach(json_object_get(wf, "tasks"), i, t) {
        json_array_foreach(json_object_get(t, "inputs"), k, x)
            add_unique(names, json_string_value(x));
        json_array_foreach(json_object_get(t, "outputs"), k, x)
            add_unique(names, json_string_value(x));
    }
    return names;
}

static const char *run_state(const json_t *v)
{
    const char *s = jstr(json_object_get(v, "state"), "state");
    return s ? s : "unknown";
}

static int run_paused(const json_t *v)
{
    return json_is_true(json_object_get(json_object_get(v, "state"), "paused"));
}

static int reactive(const json_t *v)
{
    const char *key;
    json_t *t;
    const char *mode = jstr(json_object_get(v, "state"), "mode");

    if (!mode)
        mode = jstr(json_object_get(v, "workflow"), "mode");
    if (mode)
        return strcmp(mode, "reactive") == 0;
    /* A coordinator that does not say: reactive tasks number their activations. */
    json_object_foreach(json_object_get(v, "tasks"), key, t)
        if (json_object_get(t, "activation"))
            return 1;
    return 0;
}

static double run_started(const json_t *v)
{
    double t = jnum(json_object_get(v, "state"), "started");
    return t > 0 ? t : jnum(json_object_get(v, "workflow"), "started");
}

/* Seconds the run has lasted (to its end when final, to now while it goes on); -1 unknown. */
static double run_duration(const json_t *v)
{
    const json_t *st = json_object_get(v, "state");
    const char *s = jstr(st, "state");
    double started = run_started(v), at = jnum(st, "at");

    if (started <= 0 || !s)
        return -1;
    if (final_state(s))
        return at >= started ? at - started : -1;
    if (strcmp(s, "running") == 0)
        return fb_clock_wall() - started;
    return -1; /* lost: nobody knows when it ended, or if it has */
}

/* Seconds in the task's present state so far, or its run time when it ended; -1 unknown. */
static double task_duration(const json_t *t)
{
    const char *s = jstr(t, "state");
    double at = jnum(t, "at"), started = jnum(t, "started");

    if (!s)
        return -1;
    if (terminal_task_state(s))
        return started > 0 && at >= started ? at - started : -1;
    if (strcmp(s, "running") == 0 && at > 0)
        return fb_clock_wall() - at;
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Tables                                                                      */
/* ------------------------------------------------------------------------ */

/* Prints rows (arrays of strings) with aligned columns; the last column is not padded. */
static void print_table(const json_t *rows, const char *indent)
{
    size_t width[16] = {0}, i, k;
    json_t *row, *cell;

    json_array_foreach(rows, i, row)
        json_array_foreach(row, k, cell)
            if (k < 16 && json_string_length(cell) > width[k])
                width[k] = json_string_length(cell);
    json_array_foreach(rows, i, row) {
        size_t n = json_array_size(row);
        /* Empty cells at the end of a row would only leave trailing blanks. */
        while (n > 1 && json_string_length(json_array_get(row, n - 1)) == 0)
            n--;
        fputs(indent, stdout);
        json_array_foreach(row, k, cell) {
            if (k >= n)
                break;
            if (k + 1 < n)
                printf("%-*s  ", (int)width[k < 16 ? k : 15], json_string_value(cell));
            else
                fputs(json_string_value(cell), stdout);
        }
        fputc('\n', stdout);
    }
}

/* "3 done, 1 running, 2 pending", in a fixed order of states. */
static void task_counts(const json_t *v, json_t *counts, char *buf, size_t len)
{
    static const char *const order[] = {"running", "waiting", "pending", "done",   "failed",
                                        "timeout", "crashed", "skipped", "denied", "stopped"};
    json_t *names = task_names(v), *name, *c;
    const char *key;
    size_t i, used = 0;

    json_array_foreach(names, i, name) {
        const char *s =
            jstr(json_object_get(json_object_get(v, "tasks"), json_string_value(name)), "state");
        s = s ? s : "pending";
        json_object_set_new(counts, s,
                            json_integer(json_integer_value(json_object_get(counts, s)) + 1));
    }
    json_decref(names);
    buf[0] = '\0';
    for (i = 0; i < sizeof order / sizeof order[0] && used < len; i++)
        if ((c = json_object_get(counts, order[i])))
            used += (size_t)snprintf(buf + used, len - used, "%s%lld %s", used ? ", " : "",
                                     (long long)json_integer_value(c), order[i]);
    json_object_foreach(counts, key, c) {
        int known = 0;
        for (i = 0; i < sizeof order / sizeof order[0]; i++)
            known |= strcmp(order[i], key) == 0;
        if (!known && used < len)
            used += (size_t)snprintf(buf + used, len - used, "%s%lld %s", used ? ", " : "",
                                     (long long)json_integer_value(c), key);
    }
    if (!buf[0])
        snprintf(buf, len, "-");
}

static int by_start(const void *a, const void *b)
{
    double x = run_started(*(json_t *const *)a), y = run_started(*(json_t *const *)b);
    return x < y ? -1 : x > y;
}

/* The display name of a run's state: "paused" says more than "running" while it is. */
static const char *shown_state(const json_t *v)
{
    const char *s = run_state(v);
    return strcmp(s, "running") == 0 && run_paused(v) ? "paused" : s;
}

static json_t *num_or_null(double x)
{
    return x >= 0 ? json_real(x) : json_null();
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* What status --json says of a run, without its tasks. */
static json_t *run_json(const json_t *v)
{
    const json_t *st = json_object_get(v, "state"), *wf = json_object_get(v, "workflow");
    json_t *o = json_object(), *x;

    json_object_set_new(o, "run_id", str_or_null(jstr(v, "run_id")));
    json_object_set_new(o, "workflow", str_or_null(jstr(wf, "name")));
    json_object_set_new(o, "state", str_or_null(jstr(st, "state")));
    json_object_set_new(o, "paused", json_boolean(run_paused(v)));
    json_object_set_new(o, "started", num_or_null(run_started(v)));
    json_object_set_new(o, "at", num_or_null(jnum(st, "at")));
    json_object_set_new(o, "duration", num_or_null(run_duration(v)));
    x = json_object_get(st, "exit");
    json_object_set_new(o, "exit", x ? json_incref(x) : json_null());
    if ((x = json_object_get(st, "error")))
        json_object_set(o, "error", x);
    return o;
}

static int status_all(struct session *s)
{
    static const char *const filters[] = {"flowbus/+/state", "flowbus/+/workflow",
                                          "flowbus/+/tasks/+/state"};
    struct msgs got = {0};
    json_t *runs = json_object(), *rows = NULL, *out = NULL, **list = NULL, *v;
    const char *key;
    char task[128], started[32], dur[32], counts[512], name[48];
    size_t n = 0;
    int code = collect(s, filters, 3, &got);

    if (code)
        goto out;
    for (size_t i = 0; i < got.n; i++)
        apply(runs, got.v[i], task, sizeof task);
    list = calloc(json_object_size(runs) + 1, sizeof *list);
    if (!list) {
        log_printf(FB_LOG_ERROR, "out of memory");
        code = EXIT_BROKER;
        goto out;
    }
    json_object_foreach(runs, key, v)
        if (run_exists(v))
            list[n++] = v;
    qsort(list, n, sizeof *list, by_start);
    if (s->o->json) {
        json_t *array = json_array();
        for (size_t i = 0; i < n; i++) {
            json_t *o = run_json(list[i]), *c = json_object();
            task_counts(list[i], c, counts, sizeof counts);
            json_object_set_new(o, "tasks", c);
            json_array_append_new(array, o);
        }
        out = json_pack("{s:s, s:o}", "broker", s->o->broker_url, "runs", array);
        json_dumpf(out, stdout, JSON_COMPACT);
        fputc('\n', stdout);
        goto out;
    }
    if (n == 0) {
        printf("no runs on %s\n", s->o->broker_url);
        goto out;
    }
    rows = json_pack("[[s,s,s,s,s,s]]", "RUN", "WORKFLOW", "STATE", "STARTED", "DURATION", "TASKS");
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_object();
        const char *wf_name = jstr(json_object_get(list[i], "workflow"), "name");
        task_counts(list[i], c, counts, sizeof counts);
        json_decref(c);
        /* Long names would push every other column off the screen. */
        snprintf(name, sizeof name, "%.40s%s", wf_name ? wf_name : "?",
                 wf_name && strlen(wf_name) > 40 ? "..." : "");
        fmt_local_time(started, sizeof started, run_started(list[i]));
        fmt_duration(dur, sizeof dur, run_duration(list[i]));
        json_array_append_new(rows, json_pack("[s,s,s,s,s,s]", jstr(list[i], "run_id"), name,
                                              shown_state(list[i]), started, dur, counts));
    }
    print_table(rows, "");
out:
    free(list);
    json_decref(out);
    json_decref(rows);
    json_decref(runs);
    msgs_free(&got);
    return code;
}

/* The run view of o->run_id, or NULL (after saying so) when the broker has no such run. */
static json_t *find_run(const struct session *s, json_t *runs)
{
    json_t *v = json_object_get(runs, s->o->run_id);

    if (!run_exists(v)) {
        log_printf(FB_LOG_ERROR, "there is no run '%s' on %s (nothing retained under flowbus/%s/)",
                   s->o->run_id, s->o->broker_url, s->o->run_id);
        return NULL;
    }
    return v;
}

/* Subscribes to the run's topics given and applies the snapshot (and live messages) to runs. */
static int snapshot(struct session *s, const char *const *filters, size_t n, json_t *runs)
{
    struct msgs got = {0};
    char task[128];
    int code = collect(s, filters, n, &got);

    for (size_t i = 0; i < got.n; i++)
        apply(runs, got.v[i], task, sizeof task);
    msgs_free(&got);
    return code;
}

/* "12 failed, 3 queued, 1 dropped": a reactive task's last activation. */
static void activation_text(const json_t *t, char *buf, size_t len)
{
    double act = jnum(t, "activation"), queued = jnum(t, "queued"), dropped = jnum(t, "dropped");
    const char *result = jstr(t, "result");
    size_t used;

    if (act < 0) {
        snprintf(buf, len, "-");
        return;
    }
    used = (size_t)snprintf(buf, len, "%.0f%s%s", act, result ? " " : "", result ? result : "");
    if (queued > 0 && used < len)
        used += (size_t)snprintf(buf + used, len - used, ", %.0f queued", queued);
    if (dropped > 0 && used < len)
        snprintf(buf + used, len - used, ", %.0f dropped", dropped);
}

static void exit_text(const json_t *t, char *buf, size_t len)
{
    double code = jnum(t, "exit"), sig = jnum(t, "signal");

    if (sig > 0)
        snprintf(buf, len, "signal %.0f", sig);
    else if (json_is_integer(json_object_get(t, "exit")))
        snprintf(buf, len, "%.0f", code);
    else
        snprintf(buf, len, "-");
}

static int status_one(struct session *s)
{
    static const char *const filters[] = {"state", "workflow", "control", "tasks/+/state"};
    json_t *runs = json_object(), *names = NULL, *rows = NULL, *out = NULL, *v, *name;
    const json_t *st, *wf;
    char started[32], dur[32], counts[512], act[96], code_text[32];
    size_t i;
    int code = snapshot(s, filters, 4, runs), react;

    if (code)
        goto out;
    if (!(v = find_run(s, runs))) {
        code = EXIT_USAGE;
        goto out;
    }
    st = json_object_get(v, "state");
    wf = json_object_get(v, "workflow");
    names = task_names(v);
    react = reactive(v);
    if (s->o->json) {
        json_t *tasks = json_array();
        out = run_json(v);
        json_object_set_new(out, "file", str_or_null(jstr(wf, "path")));
        json_object_set_new(out, "mode", json_string(react ? "reactive" : "oneshot"));
        json_array_foreach(names, i, name) {
            json_t *t = json_object_get(json_object_get(v, "tasks"), json_string_value(name));
            json_t *o = t ? json_deep_copy(t) : json_pack("{s:n}", "state");
            json_object_set(o, "name", name);
            json_object_set_new(o, "duration", num_or_null(task_duration(t)));
            json_array_append_new(tasks, o);
        }
        json_object_set_new(out, "tasks", tasks);
        json_dumpf(out, stdout, JSON_COMPACT);
        fputc('\n', stdout);
        goto out;
    }
    {
        json_t *c = json_object();
        task_counts(v, c, counts, sizeof counts);
        json_decref(c);
    }
    fmt_local_time(started, sizeof started, run_started(v));
    fmt_duration(dur, sizeof dur, run_duration(v));
    printf("Run:       %s\n", s->o->run_id);
    printf("Workflow:  %s%s%s%s\n", jstr(wf, "name") ? jstr(wf, "name") : "?",
           jstr(wf, "path") ? " (" : "", jstr(wf, "path") ? jstr(wf, "path") : "",
           jstr(wf, "path") ? ")" : "");
    printf("State:     %s", shown_state(v));
    if (json_is_integer(json_object_get(st, "exit")))
        printf(" (exit %lld)", (long long)json_integer_value(json_object_get(st, "exit")));
    if (jstr(st, "error"))
        printf(": %s", jstr(st, "error"));
    if (strcmp(run_state(v), "lost") == 0)
        printf("\n           `flowbus resume %s` takes the run over", s->o->run_id);
    printf("\nStarted:   %s\nDuration:  %s\nTasks:     %s\n\n", started, dur, counts);
    rows = react ? json_pack("[[s,s,s,s,s,s,s]]", "TASK", "STATE", "ATTEMPT", "ACTIVATION",
                             "DURATION", "EXIT", "ERROR")
                 : json_pack("[[s,s,s,s,s,s]]", "TASK", "STATE", "ATTEMPT", "DURATION", "EXIT",
                             "ERROR");
    json_array_foreach(names, i, name) {
        json_t *t = json_object_get(json_object_get(v, "tasks"), json_string_value(name)), *row;
        char attempt[24];
        const char *err = jstr(t, "error");
        snprintf(attempt, sizeof attempt, "%.0f", jnum(t, "attempt") > 0 ? jnum(t, "attempt") : 1);
        fmt_duration(dur, sizeof dur, task_duration(t));
        activation_text(t, act, sizeof act);
        exit_text(t, code_text, sizeof code_text);
        row =
            json_pack("[s,s,s]", json_string_value(name),
                      t ? jstr(t, "state") ? jstr(t, "state") : "?" : "pending", t ? attempt : "-");
        if (react)
            json_array_append_new(row, json_string(act));
        json_array_append_new(row, json_string(dur));
        json_array_append_new(row, json_string(code_text));
        json_array_append_new(row, json_string(err ? err : ""));
        json_array_append_new(rows, row);
    }
    print_table(rows, "  ");
out:
    json_decref(out);
    json_decref(rows);
    json_decref(names);
    json_decref(runs);
    return code;
}

/* Checks the URL's scheme before connecting, so a typo is a usage error (2), not "broker down". */
static int check_url(const char *url)
{
    static const char *const schemes[] = {"tcp://", "mqtt://", "mqtts://", "ssl://"};

    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
        if (strncmp(url, schemes[i], strlen(schemes[i])) == 0)
            return 1;
    log_printf(FB_LOG_ERROR,
               "unsupported broker URL '%s': expected tcp://HOST:PORT, "
               "mqtt://HOST:PORT, or mqtts:// or ssl:// for TLS",
               url);
    return 0;
}

int client__status(const struct client_options *o)
{
    struct session s = {0};
    int code = check_url(o->broker_url) ? session_open(&s, o, 0) : EXIT_USAGE;

    if (code == 0)
        code = o->run_id ? status_one(&s) : status_all(&s);
    session_close(&s);
    return code;
}

/* ------------------------------------------------------------------------ */
/* set                                                                         */
/* ------------------------------------------------------------------------ */

/* Checks every VAR=VALUE before anything is published: all or nothing. */
static int check_assignments(const struct client_options *o)
{
    if (o->n_assignments == 0) {
        log_printf(FB_LOG_ERROR, "set needs at least one VAR=VALUE after the run id");
        return 0;
    }
    for (size_t i = 0; i < o->n_assignments; i++) {
        const char *a = o->assignments[i], *eq = strchr(a, '=');
        if (!eq) {
            log_printf(FB_LOG_ERROR, "expected VAR=VALUE, got '%s'", a);
            return 0;
        }
        if (!valid_var_name(a, (size_t)(eq - a))) {
            log_printf(FB_LOG_ERROR,
                       "'%.*s' is not a variable name: expected a letter or '_', "
                       "then letters, digits or '_', at most %d characters",
                       (int)(eq - a), a, MAX_NAME);
            return 0;
        }
    }
    return 1;
}

int client__set(const struct client_options *o)
{
    static const char *const filters[] = {"state", "workflow", "vars/+"};
    struct session s = {0};
    json_t *runs = json_object(), *known = NULL, *v, *env;
    char name[MAX_NAME + 1], topic[192], hint[512];
    int code = EXIT_USAGE, one_shot;

    if (!check_url(o->broker_url) || !check_assignments(o))
        goto out;
    if ((code = session_open(&s, o, 0)) != 0 || (code = snapshot(&s, filters, 3, runs)) != 0)
        goto out;
    code = EXIT_USAGE;
    if (!(v = find_run(&s, runs)))
        goto out;
    if (!json_object_get(v, "workflow")) {
        log_printf(FB_LOG_ERROR, "run '%s' has no retained workflow, so its variables are unknown",
                   o->run_id);
        goto out;
    }
    if (final_state(run_state(v))) {
        log_printf(FB_LOG_ERROR, "run '%s' has finished (%s): no task is left to read a variable",
                   o->run_id, run_state(v));
        goto out;
    }
    known = var_names(v);
    env = json_object_get(json_object_get(v, "workflow"), "env");
    for (size_t i = 0; i < o->n_assignments; i++) {
        const char *a = o->assignments[i], *eq = strchr(a, '=');
        size_t k;
        json_t *c;
        int found = 0;
        snprintf(name, sizeof name, "%.*s", (int)(eq - a), a);
        json_array_foreach(known, k, c)
            found |= strcmp(json_string_value(c), name) == 0;
        if (!found) {
            suggest(hint, sizeof hint, name, known);
            log_printf(FB_LOG_ERROR, "run '%s' has no variable '%s'%s", o->run_id, name, hint);
            goto out;
        }
        /* The workflow JSON replaces secret values by "<secret>"; AUTH_TOKEN is always one. */
        c = json_object_get(env, name);
        if (strcmp(name, "AUTH_TOKEN") == 0 ||
            (json_is_string(c) && strcmp(json_string_value(c), "<secret>") == 0)) {
            log_printf(FB_LOG_ERROR,
                       "'%s' is a secret of run '%s': secrets reach tasks through "
                       "their environment only, never over the bus",
                       name, o->run_id);
            goto out;
        }
    }
    for (size_t i = 0; i < o->n_assignments; i++) {
        const char *a = o->assignments[i], *eq = strchr(a, '=');
        size_t len = strlen(eq + 1);
        enum fb_err e;
        snprintf(topic, sizeof topic, "%svars/%.*s", s.root, (int)(eq - a), a);
        /* A zero-length retained payload would delete the variable: the empty
         * string travels as one NUL byte (docs/protocol.md). */
        e = fb_bus_publish(s.bus, topic, len ? eq + 1 : "", len ? len : 1, 1, 1, 0);
        if (e != FB_OK) {
            log_printf(FB_LOG_ERROR, "cannot publish %s: %s", topic, fb_strerror(e));
            code = EXIT_BROKER;
            goto out;
        }
    }
    if (fb_bus_flush(s.bus, ANSWER_WAIT) != FB_OK) {
        log_printf(FB_LOG_ERROR,
                   "the broker at %s did not confirm the publish (refused, or not "
                   "authorised to write under flowbus/%s/vars/)",
                   o->broker_url, o->run_id);
        code = EXIT_BROKER;
        goto out;
    }
    one_shot = !reactive(v);
    for (size_t i = 0; i < o->n_assignments; i++) {
        const char *a = o->assignments[i], *eq = strchr(a, '=');
        snprintf(name, sizeof name, "%.*s", (int)(eq - a), a);
        printf("run %s: %s set\n", o->run_id, name);
        if (one_shot && json_object_get(json_object_get(v, "vars"), name))
            log_printf(FB_LOG_INFO,
                       "note: %s already had a value; in a one-shot run, tasks that "
                       "already read it do not run again",
                       name);
    }
    code = 0;
out:
    json_decref(known);
    json_decref(runs);
    session_close(&s);
    return code;
}

/* ------------------------------------------------------------------------ */
/* Following a run: logs -f, stop, pause                                      */
/* ------------------------------------------------------------------------ */

/*
 * Called for each message after it was applied to the views: returns
 * KEEP_WATCHING, or the command's exit code to end the watch.
 */
typedef int (*watch_fn)(void *ctx, json_t *runs, const fb_msg *m, enum change c, const char *task);

static int dispatch(json_t *runs, const fb_msg *m, watch_fn cb, void *ctx)
{
    char task[128];
    enum change c = apply(runs, m, task, sizeof task);
    return c == CHANGE_NONE ? KEEP_WATCHING : cb(ctx, runs, m, c, task);
}

/*
 * Applies every message that arrives to runs and hands it to cb, until cb
 * ends the watch, Ctrl-C (EXIT_INTERRUPTED), the monotonic deadline (if > 0;
 * WATCH_TIMEOUT) or the final loss of the broker (EXIT_BROKER).
 */
static int watch(struct session *s, json_t *runs, double deadline, watch_fn cb, void *ctx)
{
    struct pollfd pfd[2] = {{.fd = s->sigfd, .events = POLLIN},
                            {.fd = fb_bus_fd(s->bus), .events = POLLIN}};

    for (;;) {
        int ms = -1;
        if (deadline > 0) {
            double left = deadline - fb_clock_mono();
            if (left <= 0)
                return WATCH_TIMEOUT;
            ms = left > 3600 ? 3600000 : (int)(left * 1000) + 1;
        }
        if (poll(pfd, 2, ms) < 0 && errno != EINTR) {
            log_printf(FB_LOG_ERROR, "poll: %s", strerror(errno));
            return EXIT_BROKER;
        }
        if (pfd[0].revents)
            return EXIT_INTERRUPTED;
        for (;;) {
            fb_msg *m = NULL;
            enum fb_err e = fb_bus_next(s->bus, 0, &m);
            int code;
            if (e == FB_ERR_LOST) {
                log_printf(FB_LOG_ERROR, "lost the connection to the broker at %s",
                           s->o->broker_url);
                return EXIT_BROKER;
            }
            if (e != FB_OK)
                break;
            code = dispatch(runs, m, cb, ctx);
            fb_msg_free(m);
            if (code != KEEP_WATCHING)
                return code;
        }
    }
}

struct follow {
    const struct client_options *o;
    double t0;      /* the run's start: state lines show seconds since */
    int width;      /* of the task column */
    json_t *seen;   /* task -> "state/attempt/activation" last printed */
    char shown[64]; /* the run state last printed */
};

static int selected(const struct follow *f, const char *task)
{
    return !f->o->task || strcmp(f->o->task, task) == 0;
}

/* One line per task state change, as `flowbus run` prints them when piped. */
static void print_state(struct follow *f, const char *task, const json_t *t)
{
    const char *state = jstr(t, "state"), *err = jstr(t, "error");
    double at = jnum(t, "at"), attempt = jnum(t, "attempt"), act = jnum(t, "activation");
    char key[128], dur[32], line[1024];
    size_t used;

    if (!state)
        return;
    snprintf(key, sizeof key, "%s/%.0f/%.0f/%s", state, attempt, act,
             jstr(t, "result") ? jstr(t, "result") : "");
    if (json_string_value(json_object_get(f->seen, task)) &&
        strcmp(json_string_value(json_object_get(f->seen, task)), key) == 0)
        return; /* a repeat: a retained state delivered again after a reconnect */
    json_object_set_new(f->seen, task, json_string(key));
    used = (size_t)snprintf(line, sizeof line, "%8.3fs  %-*s  %-8s", (at > 0 ? at : fb_clock_wall()) - f->t0,
                            f->width, task, state);
    if (attempt > 1 && used < sizeof line)
        used += (size_t)snprintf(line + used, sizeof line - used, "  attempt %.0f", attempt);
    if (act >= 0 && used < sizeof line)
        used += (size_t)snprintf(line + used, sizeof line - used, "  activation %.0f%s%s", act,
                                 jstr(t, "result") ? " " : "",
                                 jstr(t, "result") ? jstr(t, "result") : "");
    if (terminal_task_state(state) && jnum(t, "started") > 0 && used < sizeof line) {
        fmt_duration(dur, sizeof dur, task_duration(t));
        used += (size_t)snprintf(line + used, sizeof line - used, "  %s", dur);
    }
    if (err && (terminal_task_state(state) || jstr(t, "result")) && used < sizeof line)
        used += (size_t)snprintf(line + used, sizeof line - used, "  %s", err);
    used = used < sizeof line ? used : sizeof line - 1;
    while (used > 0 && line[used - 1] == ' ')
        line[--used] = '\0';
    puts(line);
    fflush(stdout);
}

/* Prints the run's state when it changed; returns 0 once it is final. */
static int print_run(struct follow *f, const json_t *v)
{
    const json_t *st = json_object_get(v, "state");
    const char *state = shown_state(v);

    if (!st || strcmp(f->shown, state) == 0)
        return KEEP_WATCHING;
    snprintf(f->shown, sizeof f->shown, "%s", state);
    printf("Run %s: %s", f->o->run_id, state);
    if (json_is_integer(json_object_get(st, "exit")))
        printf(" (exit %lld)", (long long)json_integer_value(json_object_get(st, "exit")));
    if (strcmp(state, "lost") == 0)
        printf(": its coordinator's connection was lost; tasks may carry on, and "
               "`flowbus resume %s` takes the run over",
               f->o->run_id);
    fputc('\n', stdout);
    fflush(stdout);
    return final_state(state) ? 0 : KEEP_WATCHING;
}

static int follow_cb(void *ctx, json_t *runs, const fb_msg *m, enum change c, const char *task)
{
    struct follow *f = ctx;
    json_t *v = json_object_get(runs, f->o->run_id);

    if (!v)
        return KEEP_WATCHING;
    if (c == CHANGE_LOG && selected(f, task) && m->len) {
        printf("[%s] %s\n", task, m->payload);
        fflush(stdout);
    } else if (c == CHANGE_TASK && selected(f, task)) {
        const json_t *t = json_object_get(json_object_get(v, "tasks"), task);
        if (t)
            print_state(f, task, t);
    } else if (c == CHANGE_RUN) {
        return print_run(f, v);
    }
    return KEEP_WATCHING;
}

struct when {
    double at;
    const char *task;
    const json_t *state;
};

static int by_time(const void *a, const void *b)
{
    const struct when *x = a, *y = b;
    return x->at < y->at ? -1 : x->at > y->at;
}

int client__logs(const struct client_options *o)
{
    static const char *const filters[] = {"state", "workflow", "tasks/+/state", "tasks/+/log"};
    struct session s = {0};
    struct msgs got = {0};
    struct follow f = {0};
    json_t *runs = json_object(), *names = NULL, *name, *v;
    struct when *order = NULL;
    const char *wf_name;
    char task[128], hint[512];
    size_t i, n_order = 0;
    int code = EXIT_USAGE, found = 0;

    f.o = o;
    f.seen = json_object();
    if (!check_url(o->broker_url))
        goto out;
    if ((code = session_open(&s, o, o->follow)) != 0 ||
        (code = collect(&s, filters, o->follow ? 4 : 3, &got)) != 0)
        goto out;
    /* The snapshot first; live messages that came with it are printed after it. */
    for (i = 0; i < got.n; i++)
        if (got.v[i]->retained)
            apply(runs, got.v[i], task, sizeof task);
    code = EXIT_USAGE;
    if (!(v = find_run(&s, runs)))
        goto out;
    names = task_names(v);
    json_array_foreach(names, i, name) {
        found |= o->task && strcmp(o->task, json_string_value(name)) == 0;
        if ((int)json_string_length(name) > f.width)
            f.width = (int)json_string_length(name);
    }
    if (o->task && !found) {
        suggest(hint, sizeof hint, o->task, names);
        log_printf(FB_LOG_ERROR, "run '%s' has no task '%s'%s", o->run_id, o->task, hint);
        goto out;
    }
    if (!o->follow) {
        json_array_foreach(names, i, name) {
            const json_t *t = json_object_get(json_object_get(v, "tasks"), json_string_value(name));
            char exit_buf[32];
            if (!selected(&f, json_string_value(name)) || !jstr(t, "error"))
                continue;
            exit_text(t, exit_buf, sizeof exit_buf);
            printf("[%s] %s%s%s%s: %s\n", json_string_value(name), jstr(t, "state"),
                   strcmp(exit_buf, "-") == 0            ? ""
                   : isdigit((unsigned char)exit_buf[0]) ? " (exit "
                                                         : " (",
                   strcmp(exit_buf, "-") ? exit_buf : "", strcmp(exit_buf, "-") ? ")" : "",
                   jstr(t, "error"));
        }
        log_printf(FB_LOG_INFO,
                   "log lines are not kept on the broker; `flowbus logs %s -f` "
                   "follows them live",
                   o->run_id);
        code = 0;
        goto out;
    }
    f.t0 = run_started(v) > 0 ? run_started(v) : fb_clock_wall();
    wf_name = jstr(json_object_get(v, "workflow"), "name");
    printf("Following run %s (%s, %s) on %s\n", o->run_id, wf_name ? wf_name : "?", shown_state(v),
           o->broker_url);
    if (!final_state(run_state(v)))
        snprintf(f.shown, sizeof f.shown, "%s", shown_state(v));
    /* Where each task is now, in the order they got there. */
    order = calloc(json_array_size(names) + 1, sizeof *order);
    if (!order) {
        log_printf(FB_LOG_ERROR, "out of memory");
        code = EXIT_BROKER;
        goto out;
    }
    json_array_foreach(names, i, name) {
        json_t *t = json_object_get(json_object_get(v, "tasks"), json_string_value(name));
        if (t && selected(&f, json_string_value(name)))
            order[n_order++] = (struct when){jnum(t, "at"), json_string_value(name), t};
    }
    qsort(order, n_order, sizeof *order, by_time);
    for (i = 0; i < n_order; i++)
        print_state(&f, order[i].task, order[i].state);
    code = print_run(&f, v);
    for (i = 0; i < got.n && code == KEEP_WATCHING; i++)
        if (!got.v[i]->retained)
            code = dispatch(runs, got.v[i], follow_cb, &f);
    if (code == KEEP_WATCHING)
        code = watch(&s, runs, 0, follow_cb, &f);
out:
    free(order);
    json_decref(names);
    json_decref(f.seen);
    json_decref(runs);
    msgs_free(&got);
    session_close(&s);
    return code;
}

struct request {
    const struct client_options *o;
    int stop; /* 1 stop, 0 pause */
};

static int request_cb(void *ctx, json_t *runs, const fb_msg *m, enum change c, const char *task)
{
    struct request *r = ctx;
    json_t *v = json_object_get(runs, r->o->run_id), *st = json_object_get(v, "state");
    const char *state = jstr(st, "state");

    if (c != CHANGE_RUN || !state)
        return KEEP_WATCHING;
    if (final_state(state)) {
        if (!r->stop) {
            log_printf(FB_LOG_ERROR, "run '%s' ended (%s) before it paused", r->o->run_id, state);
            return EXIT_NOT_CONFIRMED;
        }
        printf("Run %s: %s", r->o->run_id, state);
        if (json_is_integer(json_object_get(st, "exit")))
            printf(" (exit %lld)", (long long)json_integer_value(json_object_get(st, "exit")));
        fputc('\n', stdout);
        return 0;
    }
    if (!r->stop && run_paused(v)) {
        printf("Run %s: paused; `flowbus resume %s` resumes it\n", r->o->run_id, r->o->run_id);
        return 0;
    }
    return KEEP_WATCHING;
}

/* stop and pause: a command on the run's control topic, then the coordinator's confirmation. */
static int request(const struct client_options *o, int stop)
{
    static const char *const filters[] = {"state", "workflow", "control"};
    const char *cmd = stop ? "stop" : "pause";
    struct session s = {0};
    struct request r = {o, stop};
    json_t *runs = json_object(), *v;
    char topic[160], payload[32];
    double wait = o->timeout > 0 ? o->timeout : stop ? STOP_WAIT : PAUSE_WAIT;
    int code = EXIT_USAGE;

    if (!check_url(o->broker_url))
        goto out;
    if ((code = session_open(&s, o, 1)) != 0 || (code = snapshot(&s, filters, 3, runs)) != 0)
        goto out;
    code = EXIT_USAGE;
    if (!(v = find_run(&s, runs)))
        goto out;
    if (final_state(run_state(v))) {
        log_printf(FB_LOG_ERROR, "run '%s' has already finished (%s): nothing to %s", o->run_id,
                   run_state(v), cmd);
        goto out;
    }
    if (!stop && run_paused(v)) {
        printf("Run %s: already paused; `flowbus resume %s` resumes it\n", o->run_id, o->run_id);
        code = 0;
        goto out;
    }
    snprintf(topic, sizeof topic, "%scontrol", s.root);
    snprintf(payload, sizeof payload, "{\"cmd\":\"%s\"}", cmd);
    if (fb_bus_publish(s.bus, topic, payload, strlen(payload), 1, 1, 0) != FB_OK ||
        fb_bus_flush(s.bus, ANSWER_WAIT) != FB_OK) {
        log_printf(FB_LOG_ERROR,
                   "the broker at %s did not confirm the %s request on %s (refused, "
                   "or not authorised)",
                   o->broker_url, cmd, topic);
        code = EXIT_BROKER;
        goto out;
    }
    if (strcmp(run_state(v), "lost") == 0) {
        log_printf(FB_LOG_ERROR,
                   "run '%s' has no coordinator (its state is 'lost'): its tasks were "
                   "asked to %s, but nobody will confirm it; `flowbus resume %s` "
                   "takes the run over",
                   o->run_id, cmd, o->run_id);
        code = EXIT_NOT_CONFIRMED;
        goto out;
    }
    code = watch(&s, runs, fb_clock_mono() + wait, request_cb, &r);
    if (code == WATCH_TIMEOUT) {
        code = EXIT_NOT_CONFIRMED;
        if (stop)
            log_printf(FB_LOG_ERROR,
                       "run '%s' did not stop within %g s: its coordinator has not "
                       "published a final run state (`flowbus status %s` shows "
                       "where it is)",
                       o->run_id, wait, o->run_id);
        else
            log_printf(FB_LOG_ERROR,
                       "run '%s' did not confirm the pause within %g s: its "
                       "coordinator does not seem to support pause (it never "
                       "republished its state with \"paused\": true); the request "
                       "stays on %s until `flowbus resume %s`",
                       o->run_id, wait, topic, o->run_id);
    } else if (code == EXIT_INTERRUPTED) {
        log_printf(FB_LOG_ERROR, "interrupted; the %s request stays on %s", cmd, topic);
    }
out:
    json_decref(runs);
    session_close(&s);
    return code;
}

int client__stop(const struct client_options *o)
{
    return request(o, 1);
}

int client__pause(const struct client_options *o)
{
    return request(o, 0);
}
