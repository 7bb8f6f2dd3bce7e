/*
 * task.c - fb_task, the plugin side of the bus contract (docs/protocol.md).
 *
 * A task reads its description from the FLOWBUS_* environment, connects with a
 * Last Will that marks it "crashed", subscribes to what it waits for, and then
 * reports waiting, running and done or failed on its retained state topic.
 * Everything it receives is interpreted on the caller's thread (absorb), in
 * fb_task_wait and before fb_task_done decides which outputs to publish.
 *
 * Two encodings of the contract live here and nowhere else: the empty string
 * travels as a single NUL byte (a zero-length retained payload would delete
 * the variable), and a variable already holding a value is never overwritten
 * ("first value wins").
 *
 * Reactive mode (FLOWBUS_MODE=reactive, docs/protocol.md "Reactive mode")
 * keeps the process alive across activations. Every publish on a trigger
 * input is an event; absorb turns events into entries of a bounded FIFO
 * (oldest dropped and counted), and fb_task_next takes them one at a time,
 * snapshotting the inputs the activation sees. With a worker pool the
 * events come from a second connection holding the $share subscriptions,
 * because fb_bus cannot tell which subscription a message matched and a
 * worker also needs every value (not just its share) to know the latest.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "internal.h"

#define DEFAULT_MAX_VALUE 262144
#define NAME_MAX_LEN 64
/* Deadlines for the broker's acknowledgements; generous, as a live broker answers in ms. */
#define SUBSCRIBE_TIMEOUT 10.0
#define FLUSH_TIMEOUT 10.0
#define EXIT_CLOSE_TIMEOUT 1.0
/*
 * How long a task keeps trying to get its broker back after losing it
 * (FLOWBUS_RECONNECT_MAX overrides it; 0 turns reconnection off). Long enough
 * for a broker restart; the flushes wait this much longer than FLUSH_TIMEOUT.
 */
#define DEFAULT_RECONNECT_MAX 30.0
/* Reactive mode: events kept while busy (FLOWBUS_QUEUE), and the bounds of the settings. */
#define DEFAULT_QUEUE 100
#define MAX_QUEUE 1000000
#define MAX_WORKERS 1024
/*
 * Reactive mode: when a busy task's states are coalesced (count_activation).
 * A task reports every activation with its own "running" and "waiting"
 * while it runs at most ACTIVATION_RATE activations per second on average,
 * in bursts of up to ACTIVATION_BURST. A faster task would be limited by its
 * own states (three QoS 1 messages per event instead of one): it reports its
 * backlog at most every STATE_INTERVAL seconds and whenever it runs dry,
 * until its rate has stayed low long enough to regain half the burst.
 */
#define ACTIVATION_BURST 500.0
#define ACTIVATION_RATE 250.0
#define STATE_INTERVAL 0.05

struct var {
    char *name;
    char *value; /* NULL while unset */
    int secret;  /* inputs only: delivered in the environment */
    int taken;   /* outputs only: another producer already set it */
    int published; /* outputs only: fb_task_done published it */
    int trigger;   /* inputs only, reactive mode: its events fire the task */
    char *current; /* inputs only, reactive mode: the value the activation sees */
};

/* A queued event (reactive mode): a publish on trigger input `input`. */
struct event {
    size_t input; /* index into inputs; SIZE_MAX: the start of a task without triggers */
    char *value;  /* the value published (owned); NULL with SIZE_MAX */
};

struct dep {
    char *name;
    int done;
};

struct fb_task {
    fb_bus *bus;
    double log_window;         /* monotonic start of the current log-rate second */
    unsigned log_lines;        /* lines published in it */
    unsigned long log_dropped; /* lines dropped in it */
    long guardian_pid; /* the coordinator that restarts our broker, or 0 */
    fb_log_fn log;
    void *log_ctx;
    char *run_id;
    char *name;
    char *root; /* "flowbus/<run-id>" */
    char *state_topic;
    char *log_topic;
    struct var *inputs;
    size_t n_inputs;
    struct var *outputs;
    size_t n_outputs;
    struct dep *deps;
    size_t n_deps;
    json_t *params;
    char *params_json;
    char **param_names;
    char **param_texts;
    size_t n_params;
    long attempt;
    size_t max_value;
    long pid;
    double reconnect_max; /* seconds; 0: no reconnection */
    double flush_timeout; /* FLUSH_TIMEOUT plus the reconnect window */
    double started_at;    /* 0 until running */
    int stopped;
    int running;
    int finished;
    char *last_state;      /* the last state JSON published, for re-asserting it */
    unsigned reconnects;   /* fb_bus_reconnects when last re-asserted */
    unsigned expiry;       /* FLOWBUS_EXPIRY: message expiry of retained publishes; 0: none */

    /* Reactive mode only. */
    int reactive;
    int source;        /* fb_task_wait or fb_task_emit was used: events are not queued */
    int paused;        /* control said pause (and not resume since) */
    int in_activation; /* between fb_task_next and fb_task_done/fb_task_fail */
    int snapshot;      /* inputs[].current holds the last activation's view */
    int initial_fired; /* the one start event of a task without triggers was queued */
    size_t n_triggers;
    unsigned long activation;
    const char *result; /* "done", "failed" or NULL: how the last activation ended */
    size_t trigger;     /* input that fired the activation; SIZE_MAX: none */
    long worker;
    long workers;
    struct event *queue; /* ring buffer of queue_max events */
    size_t queue_max;
    size_t q_head;
    size_t q_len;
    unsigned long dropped;     /* events dropped so far (queue full) */
    unsigned long burst_drops; /* dropped since the last activation began */
    fb_bus *events_bus;        /* workers > 1: the $share subscriptions of the triggers */
    int epoll_fd;              /* workers > 1: fb_task_fd, watching both connections */
    double ended_at;           /* wall time the last activation ended */
    double budget;             /* activations that may still be reported one by one */
    double budget_at;          /* monotonic time the budget was last refilled */
    double state_at;           /* monotonic time the last state was published */
    int coalesce;              /* over budget: the states of a backlog are coalesced */
    int state_behind;          /* the state on the broker is older than the task's own */
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

/* A malloc'd string formatted from fmt and ap; NULL when out of memory. */
static char *vfmt_alloc(const char *fmt, va_list ap) FB_PRINTF(1, 0);

static char *vfmt_alloc(const char *fmt, va_list ap)
{
    va_list copy;
    char *buf;
    int n;

    va_copy(copy, ap);
    n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0)
        return NULL;
    buf = malloc((size_t)n + 1);
    if (buf != NULL)
        vsnprintf(buf, (size_t)n + 1, fmt, ap);
    return buf;
}

static char *fmt_alloc(const char *fmt, ...) FB_PRINTF(1, 2);

static char *fmt_alloc(const char *fmt, ...)
{
    va_list ap;
    char *buf;

    va_start(ap, fmt);
    buf = vfmt_alloc(fmt, ap);
    va_end(ap);
    return buf;
}

/* A variable name: [A-Za-z_][A-Za-z0-9_]*, at most 64 characters. */
static int valid_var_name(const char *s, size_t len)
{
    size_t i;

    if (len == 0 || len > NAME_MAX_LEN || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return 0;
    for (i = 1; i < len; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
            return 0;
    return 1;
}

/* A run id or task name: [A-Za-z0-9_-], 1-64 characters (safe inside a topic). */
static int valid_id(const char *s, size_t len)
{
    size_t i;

    if (len == 0 || len > NAME_MAX_LEN)
        return 0;
    for (i = 0; i < len; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '-'))
            return 0;
    return 1;
}

static struct var *find_var(const struct var *vars, size_t n, const char *name)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (strcmp(vars[i].name, name) == 0)
            return (struct var *)&vars[i];
    return NULL;
}

static void free_vars(struct var *vars, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        free(vars[i].name);
        free(vars[i].value);
        free(vars[i].current);
    }
    free(vars);
}

/*
 * Splits a comma-separated list into names (blanks around items ignored,
 * empty items skipped, duplicates dropped). Each name is checked with valid.
 */
static enum fb_err split_names(const char *env_name, int (*valid)(const char *, size_t),
                               char ***out, size_t *count, char *errbuf, size_t errlen)
{
    const char *text = getenv(env_name);
    char **names = NULL;
    size_t n = 0;
    size_t cap = 0;
    size_t i;
    enum fb_err err = FB_OK;
    const char *p;

    *out = NULL;
    *count = 0;
    for (p = text != NULL ? text : ""; *p != '\0';) {
        const char *start;
        const char *end;
        size_t len;
        int dup = 0;

        while (*p == ' ' || *p == '\t')
            p++;
        start = p;
        while (*p != '\0' && *p != ',')
            p++;
        end = p;
        if (*p == ',')
            p++;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        len = (size_t)(end - start);
        if (len == 0)
            continue;
        if (!valid(start, len)) {
            err__set(errbuf, errlen, "%s: '%.*s' is not a valid name", env_name, (int)len, start);
            err = FB_ERR_ENV;
            goto out;
        }
        for (i = 0; i < n; i++)
            if (strlen(names[i]) == len && strncmp(names[i], start, len) == 0)
                dup = 1;
        if (dup)
            continue;
        if (n == cap) {
            char **bigger;

            cap = cap ? cap * 2 : 8;
            bigger = realloc(names, cap * sizeof *names);
            if (bigger == NULL)
                goto nomem;
            names = bigger;
        }
        names[n] = malloc(len + 1);
        if (names[n] == NULL)
            goto nomem;
        memcpy(names[n], start, len);
        names[n][len] = '\0';
        n++;
    }
    *out = names;
    *count = n;
    names = NULL;
    n = 0;
    goto out;
nomem:
    err__set(errbuf, errlen, "out of memory");
    err = FB_ERR_NOMEM;
out:
    for (i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return err;
}

static void free_names(char **names, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* The variable's value, or NULL if it is unset or empty. */
static const char *nonempty_env(const char *name)
{
    const char *value = getenv(name);

    return value != NULL && *value != '\0' ? value : NULL;
}

static enum fb_err required_env(const char *name, const char **value, char *errbuf, size_t errlen)
{
    *value = getenv(name);
    if (*value == NULL || **value == '\0') {
        err__set(errbuf, errlen, "%s is not set (this program is meant to be started by flowbus)",
                 name);
        return FB_ERR_ENV;
    }
    return FB_OK;
}

/* ------------------------------------------------------------------------ */
/* Reading the environment                                                   */
/* ------------------------------------------------------------------------ */

static enum fb_err read_ids(fb_task *task, char *errbuf, size_t errlen)
{
    const char *run_id;
    const char *name;
    enum fb_err err;

    err = required_env("FLOWBUS_RUN_ID", &run_id, errbuf, errlen);
    if (err == FB_OK)
        err = required_env("FLOWBUS_TASK", &name, errbuf, errlen);
    if (err != FB_OK)
        return err;
    if (!valid_id(run_id, strlen(run_id))) {
        err__set(errbuf, errlen, "FLOWBUS_RUN_ID '%s' is malformed (expected [A-Za-z0-9_-], 1-64)",
                 run_id);
        return FB_ERR_ENV;
    }
    if (!valid_id(name, strlen(name))) {
        err__set(errbuf, errlen, "FLOWBUS_TASK '%s' is malformed (expected [A-Za-z0-9_-], 1-64)",
                 name);
        return FB_ERR_ENV;
    }
    task->run_id = str__dup(run_id);
    task->name = str__dup(name);
    task->root = fmt_alloc("flowbus/%s", run_id);
    task->state_topic = fmt_alloc("flowbus/%s/tasks/%s/state", run_id, name);
    task->log_topic = fmt_alloc("flowbus/%s/tasks/%s/log", run_id, name);
    if (!task->run_id || !task->name || !task->root || !task->state_topic || !task->log_topic) {
        err__set(errbuf, errlen, "out of memory");
        return FB_ERR_NOMEM;
    }
    return FB_OK;
}

static enum fb_err read_numbers(fb_task *task, char *errbuf, size_t errlen)
{
    const char *text;
    char *end;
    long long value;
    double seconds;

    task->attempt = 1;
    text = getenv("FLOWBUS_ATTEMPT");
    if (text != NULL && *text != '\0') {
        errno = 0;
        value = strtoll(text, &end, 10);
        if (errno != 0 || *end != '\0' || value < 1 || value > INT_MAX) {
            err__set(errbuf, errlen, "FLOWBUS_ATTEMPT '%s' is not a positive integer", text);
            return FB_ERR_ENV;
        }
        task->attempt = (long)value;
    }
    task->max_value = DEFAULT_MAX_VALUE;
    text = getenv("FLOWBUS_MAX_VALUE");
    if (text != NULL && *text != '\0') {
        errno = 0;
        value = strtoll(text, &end, 10);
        if (errno != 0 || *end != '\0' || value < 1 || value > INT_MAX) {
            err__set(errbuf, errlen, "FLOWBUS_MAX_VALUE '%s' is not a positive number of bytes",
                     text);
            return FB_ERR_ENV;
        }
        task->max_value = (size_t)value;
    }
    task->reconnect_max = DEFAULT_RECONNECT_MAX;
    text = getenv("FLOWBUS_RECONNECT_MAX");
    if (text != NULL && *text != '\0') {
        errno = 0;
        seconds = strtod(text, &end);
        if (errno != 0 || *end != '\0' || !(seconds >= 0 && seconds <= 86400)) {
            err__set(errbuf, errlen,
                     "FLOWBUS_RECONNECT_MAX '%s' is not a number of seconds (0 to 86400)", text);
            return FB_ERR_ENV;
        }
        task->reconnect_max = seconds;
    }
    task->flush_timeout = FLUSH_TIMEOUT + task->reconnect_max;
    text = getenv("FLOWBUS_EXPIRY");
    if (text != NULL && *text != '\0') {
        errno = 0;
        value = strtoll(text, &end, 10);
        if (errno != 0 || *end != '\0' || value < 0 || value > (long long)UINT32_MAX) {
            err__set(errbuf, errlen, "FLOWBUS_EXPIRY '%s' is not a number of seconds (0: none)",
                     text);
            return FB_ERR_ENV;
        }
        task->expiry = (unsigned)value;
    }
    /* The coordinator enforces the timeout; it is only validated here. */
    text = getenv("FLOWBUS_TIMEOUT");
    if (text != NULL && *text != '\0') {
        errno = 0;
        seconds = strtod(text, &end);
        if (errno != 0 || *end != '\0' || !(seconds >= 0)) {
            err__set(errbuf, errlen, "FLOWBUS_TIMEOUT '%s' is not a number of seconds", text);
            return FB_ERR_ENV;
        }
    }
    return FB_OK;
}

static enum fb_err read_vars(fb_task *task, char *errbuf, size_t errlen)
{
    char **inputs = NULL, **outputs = NULL, **secrets = NULL, **deps = NULL;
    size_t n_in = 0, n_out = 0, n_sec = 0, n_dep = 0;
    size_t i;
    enum fb_err err;

    err = split_names("FLOWBUS_INPUTS", valid_var_name, &inputs, &n_in, errbuf, errlen);
    if (err == FB_OK)
        err = split_names("FLOWBUS_OUTPUTS", valid_var_name, &outputs, &n_out, errbuf, errlen);
    if (err == FB_OK)
        err = split_names("FLOWBUS_SECRETS", valid_var_name, &secrets, &n_sec, errbuf, errlen);
    if (err == FB_OK)
        err = split_names("FLOWBUS_DEPENDS", valid_id, &deps, &n_dep, errbuf, errlen);
    if (err != FB_OK)
        goto out;

    /* A secret that is not listed among the inputs is still an input. */
    task->inputs = calloc(n_in + n_sec + 1, sizeof *task->inputs);
    task->outputs = calloc(n_out + 1, sizeof *task->outputs);
    task->deps = calloc(n_dep + 1, sizeof *task->deps);
    if (!task->inputs || !task->outputs || !task->deps)
        goto nomem;
    for (i = 0; i < n_in; i++) {
        task->inputs[task->n_inputs++].name = inputs[i];
        inputs[i] = NULL;
    }
    for (i = 0; i < n_sec; i++) {
        struct var *v = find_var(task->inputs, task->n_inputs, secrets[i]);
        const char *value = getenv(secrets[i]);

        if (v == NULL) {
            v = &task->inputs[task->n_inputs++];
            v->name = secrets[i];
            secrets[i] = NULL;
        }
        v->secret = 1;
        if (value == NULL) {
            err__set(errbuf, errlen,
                     "secret input %s is listed in FLOWBUS_SECRETS but not set in the environment",
                     v->name);
            err = FB_ERR_ENV;
            goto out;
        }
        v->value = str__dup(value);
        if (v->value == NULL)
            goto nomem;
    }
    for (i = 0; i < n_out; i++) {
        task->outputs[task->n_outputs++].name = outputs[i];
        outputs[i] = NULL;
    }
    for (i = 0; i < n_dep; i++) {
        task->deps[task->n_deps++].name = deps[i];
        deps[i] = NULL;
    }
    goto out;
nomem:
    err__set(errbuf, errlen, "out of memory");
    err = FB_ERR_NOMEM;
out:
    free_names(inputs, n_in);
    free_names(outputs, n_out);
    free_names(secrets, n_sec);
    free_names(deps, n_dep);
    return err;
}

/* A whole number from the environment in [min, max], or def when unset or empty. */
static enum fb_err env_long(const char *name, long def, long min, long max, long *out,
                            char *errbuf, size_t errlen)
{
    const char *text = getenv(name);
    char *end;
    long long value;

    *out = def;
    if (text == NULL || *text == '\0')
        return FB_OK;
    errno = 0;
    value = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0' || value < min || value > max) {
        err__set(errbuf, errlen, "%s '%s' is not a whole number from %ld to %ld", name, text, min,
                 max);
        return FB_ERR_ENV;
    }
    *out = (long)value;
    return FB_OK;
}

/* FLOWBUS_MODE and, in reactive mode, the triggers, the queue and the worker pool. */
static enum fb_err read_mode(fb_task *task, char *errbuf, size_t errlen)
{
    const char *mode = getenv("FLOWBUS_MODE");
    char **triggers = NULL;
    size_t n_trig = 0;
    size_t i;
    long queue = DEFAULT_QUEUE;
    enum fb_err err;

    task->trigger = SIZE_MAX;
    task->epoll_fd = -1;
    if (mode == NULL || *mode == '\0' || strcmp(mode, "oneshot") == 0)
        return FB_OK;
    if (strcmp(mode, "reactive") != 0) {
        err__set(errbuf, errlen, "FLOWBUS_MODE '%s' is not 'oneshot' or 'reactive'", mode);
        return FB_ERR_ENV;
    }
    task->reactive = 1;
    err = env_long("FLOWBUS_QUEUE", DEFAULT_QUEUE, 1, MAX_QUEUE, &queue, errbuf, errlen);
    if (err == FB_OK)
        err = env_long("FLOWBUS_WORKERS", 1, 1, MAX_WORKERS, &task->workers, errbuf, errlen);
    if (err == FB_OK)
        err = env_long("FLOWBUS_WORKER", 1, 1, task->workers, &task->worker, errbuf, errlen);
    if (err == FB_OK)
        err = split_names("FLOWBUS_TRIGGERS", valid_var_name, &triggers, &n_trig, errbuf, errlen);
    if (err != FB_OK)
        goto out;
    task->budget = ACTIVATION_BURST;
    task->budget_at = fb_clock_mono();
    task->queue_max = (size_t)queue;
    task->queue = calloc(task->queue_max, sizeof *task->queue);
    if (task->queue == NULL) {
        err__set(errbuf, errlen, "out of memory");
        err = FB_ERR_NOMEM;
        goto out;
    }
    for (i = 0; i < n_trig; i++) {
        struct var *v = find_var(task->inputs, task->n_inputs, triggers[i]);

        if (v == NULL || v->secret) {
            err__set(errbuf, errlen, "FLOWBUS_TRIGGERS: %s is not %s", triggers[i],
                     v == NULL ? "one of the task's inputs" : "allowed: a secret input cannot "
                                                              "trigger (it is not on the bus)");
            err = FB_ERR_ENV;
            goto out;
        }
        v->trigger = 1;
    }
    /* Without FLOWBUS_TRIGGERS every input on the bus is a trigger. */
    for (i = 0; i < task->n_inputs; i++) {
        if (n_trig == 0 && !task->inputs[i].secret)
            task->inputs[i].trigger = 1;
        task->n_triggers += task->inputs[i].trigger != 0;
    }
out:
    free_names(triggers, n_trig);
    return err;
}

/* The text of a scalar param, as fb_task_param returns it; NULL for others. */
static char *param_text(json_t *value)
{
    switch (json_typeof(value)) {
    case JSON_STRING:
        return str__dup(json_string_value(value));
    case JSON_INTEGER:
    case JSON_REAL:
        return json_dumps(value, JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
    case JSON_TRUE:
        return str__dup("true");
    case JSON_FALSE:
        return str__dup("false");
    default:
        return NULL;
    }
}

static enum fb_err read_params(fb_task *task, char *errbuf, size_t errlen)
{
    const char *text = getenv("FLOWBUS_PARAMS");
    json_error_t jerr;
    const char *key;
    json_t *value;
    size_t n;

    if (text == NULL || *text == '\0')
        text = "{}";
    task->params = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (task->params == NULL) {
        err__set(errbuf, errlen, "FLOWBUS_PARAMS: line %d, column %d: %s", jerr.line, jerr.column,
                 jerr.text);
        return FB_ERR_ENV;
    }
    if (!json_is_object(task->params)) {
        err__set(errbuf, errlen, "FLOWBUS_PARAMS is not a JSON object");
        return FB_ERR_ENV;
    }
    task->params_json = json_dumps(task->params, JSON_COMPACT | JSON_REAL_PRECISION(17));
    n = json_object_size(task->params);
    task->param_names = calloc(n + 1, sizeof *task->param_names);
    task->param_texts = calloc(n + 1, sizeof *task->param_texts);
    if (!task->params_json || !task->param_names || !task->param_texts)
        goto nomem;
    json_object_foreach(task->params, key, value)
    {
        char *t = param_text(value);

        if (t == NULL)
            continue;
        task->param_names[task->n_params] = str__dup(key);
        task->param_texts[task->n_params] = t;
        if (task->param_names[task->n_params++] == NULL)
            goto nomem;
    }
    return FB_OK;
nomem:
    err__set(errbuf, errlen, "out of memory");
    return FB_ERR_NOMEM;
}

/* ------------------------------------------------------------------------ */
/* Talking on the bus                                                        */
/* ------------------------------------------------------------------------ */

/* The state JSON of docs/protocol.md; exit_code < 0 means null. */
static char *state_json(const fb_task *task, const char *state, double at, int with_started,
                        int exit_code, const char *error)
{
    json_t *obj = json_object();
    char *text = NULL;

    if (obj == NULL)
        return NULL;
    json_object_set_new(obj, "state", json_string(state));
    json_object_set_new(obj, "attempt", json_integer(task->attempt));
    json_object_set_new(obj, "pid", json_integer(task->pid));
    json_object_set_new(obj, "at", json_real(at));
    if (with_started)
        json_object_set_new(obj, "started",
                            task->started_at > 0 ? json_real(task->started_at) : json_null());
    else
        json_object_set_new(obj, "started", json_null());
    json_object_set_new(obj, "exit", exit_code >= 0 ? json_integer(exit_code) : json_null());
    json_object_set_new(obj, "signal", json_null());
    json_object_set_new(obj, "error", error != NULL ? json_string(error) : json_null());
    if (task->reactive) {
        json_object_set_new(obj, "activation", json_integer((json_int_t)task->activation));
        json_object_set_new(obj, "result",
                            task->result != NULL ? json_string(task->result) : json_null());
        json_object_set_new(obj, "queued", json_integer((json_int_t)task->q_len));
        json_object_set_new(obj, "dropped", json_integer((json_int_t)task->dropped));
        if (task->workers > 1)
            json_object_set_new(obj, "worker", json_integer(task->worker));
    }
    /* 16 significant digits: Unix seconds with exactly the microseconds. */
    text = json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(16));
    json_decref(obj);
    return text;
}

static enum fb_err publish_state(fb_task *task, const char *state, double at, int with_started,
                                 int exit_code, const char *error)
{
    char *text = state_json(task, state, at, with_started, exit_code, error);
    enum fb_err err;

    if (text == NULL)
        return FB_ERR_NOMEM;
    err = fb_bus_publish(task->bus, task->state_topic, text, strlen(text), 1, 1, task->expiry);
    free(task->last_state);
    task->last_state = text;
    task->state_at = fb_clock_mono();
    task->state_behind = 0;
    return err;
}

/* Publishes a variable value; the empty string travels as one NUL byte. */
static enum fb_err publish_var(fb_task *task, const char *name, const char *value)
{
    char *topic = fmt_alloc("%s/vars/%s", task->root, name);
    size_t len = strlen(value);
    enum fb_err err;

    if (topic == NULL)
        return FB_ERR_NOMEM;
    if (len == 0)
        err = fb_bus_publish(task->bus, topic, "", 1, 1, 1, task->expiry);
    else
        err = fb_bus_publish(task->bus, topic, value, len, 1, 1, task->expiry);
    free(topic);
    return err;
}

/*
 * After a reconnect, publishes again the outputs this task published and its
 * last state (same values, retained). The bus already re-sent what the broker
 * had not acknowledged; this covers what a restarted broker acknowledged but
 * had not saved yet. Returns FB_OK if there was nothing to do.
 */
static enum fb_err reassert(fb_task *task)
{
    unsigned now = fb_bus_reconnects(task->bus);
    enum fb_err err = FB_OK;
    size_t i;

    if (now == task->reconnects)
        return FB_OK;
    task->reconnects = now;
    /* In reactive mode a publish is an event downstream: outputs are not sent twice on purpose. */
    for (i = 0; i < task->n_outputs && err == FB_OK && !task->reactive; i++)
        if (task->outputs[i].published)
            err = publish_var(task, task->outputs[i].name, task->outputs[i].value);
    if (err == FB_OK && task->last_state != NULL)
        err = fb_bus_publish(task->bus, task->state_topic, task->last_state,
                             strlen(task->last_state), 1, 1, task->expiry);
    return err;
}

/* Flushes, and re-asserts (then flushes again) if the bus reconnected meanwhile. */
static enum fb_err flush_reasserting(fb_task *task)
{
    enum fb_err err = fb_bus_flush(task->bus, task->flush_timeout);
    int rounds;

    for (rounds = 0; err == FB_OK && rounds < 5 && fb_bus_reconnects(task->bus) != task->reconnects;
         rounds++) {
        err = reassert(task);
        if (err == FB_OK)
            err = fb_bus_flush(task->bus, task->flush_timeout);
    }
    return err;
}

/* 1 if a state JSON payload says its last activation ended "done" (reactive mode). */
static int result_done(const fb_msg *msg)
{
    json_t *root = json_loadb(msg->payload, msg->len, 0, NULL);
    const char *result = json_string_value(json_object_get(root, "result"));
    int done = result != NULL && strcmp(result, "done") == 0;

    json_decref(root);
    return done;
}

/* The state named in a state JSON payload, into buf ("" if unreadable). */
static void state_of(const fb_msg *msg, char *buf, size_t len)
{
    json_t *root = json_loadb(msg->payload, msg->len, 0, NULL);
    const char *state = json_string_value(json_object_get(root, "state"));

    snprintf(buf, len, "%s", state != NULL ? state : "");
    json_decref(root);
}

/* ------------------------------------------------------------------------ */
/* Reactive mode: the event queue                                            */
/* ------------------------------------------------------------------------ */

/* A variable's value as received: NULL for a deletion (zero bytes), "" for one NUL byte. */
static char *decode_value(const fb_msg *msg, int *nomem)
{
    char *value = NULL;

    if (msg->len == 1 && msg->payload[0] == '\0')
        value = str__dup("");
    else if (msg->len > 0)
        value = str__dup(msg->payload);
    *nomem = msg->len > 0 && value == NULL;
    return value;
}

static int same_value(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

/*
 * 1 if an event on input `trigger` may fire now: every other input and every
 * dependency is set (the trigger's own value comes with the event). In
 * reactive mode a dependency counts as done once its state is "done" or its
 * last activation ended "done" (a reactive task never reaches the state done).
 */
static int ready_except(const fb_task *task, size_t trigger)
{
    size_t i;

    for (i = 0; i < task->n_inputs; i++)
        if (i != trigger && task->inputs[i].value == NULL)
            return 0;
    for (i = 0; i < task->n_deps; i++)
        if (!task->deps[i].done)
            return 0;
    return 1;
}

/*
 * Appends an event (taking value). When the queue is full the oldest event is
 * dropped and counted; the first drop of a burst is logged at once, and the
 * burst's total when the next activation begins, so no drop goes unreported.
 */
static void enqueue(fb_task *task, size_t input, char *value)
{
    struct event *slot;

    if (task->q_len == task->queue_max) {
        struct event *oldest = &task->queue[task->q_head];

        free(oldest->value);
        task->q_head = (task->q_head + 1) % task->queue_max;
        task->q_len--;
        task->dropped++;
        if (task->burst_drops++ == 0)
            fb_task_log(task,
                        "queue full (%zu events): dropping the oldest events (%lu dropped so far)",
                        task->queue_max, task->dropped);
    }
    slot = &task->queue[(task->q_head + task->q_len) % task->queue_max];
    slot->input = input;
    slot->value = value;
    task->q_len++;
}

/* A publish on input `in` (value owned by the caller) that counts as an event. */
static void on_event(fb_task *task, struct var *in, const char *value)
{
    size_t index = (size_t)(in - task->inputs);
    char *copy;

    /* A source does not consume events; an event before all inputs are set fires nothing. */
    if (task->source || value == NULL || !ready_except(task, index))
        return;
    copy = str__dup(value);
    if (copy == NULL) {
        log__emit(task->log, task->log_ctx, FB_LOG_ERROR, "out of memory: event on %s lost",
                  in->name);
        return;
    }
    enqueue(task, index, copy);
}

/*
 * A message on vars/<input> in reactive mode. On the task's own connection
 * it updates the input's latest value, and is an event if the input is a
 * trigger and: with a single worker, it is live, or retained with a value
 * other than the one known (the value present at subscribe, or one published
 * while the connection was down); in a pool, only worker 1 takes retained
 * values as events (the start of the flow), the live ones come to the pool
 * through the shared subscriptions. On the events connection (from_share)
 * every live message is an event; retained ones are ignored, as MQTT v5 says
 * a shared subscription gets none (mosquitto 2.0 sends them anyway).
 */
static void absorb_reactive_var(fb_task *task, struct var *in, const fb_msg *msg, int from_share)
{
    int nomem;
    int is_event;
    char *value = decode_value(msg, &nomem);

    if (nomem) {
        log__emit(task->log, task->log_ctx, FB_LOG_ERROR, "out of memory: value of %s lost",
                  in->name);
        return;
    }
    if (from_share) {
        if (!msg->retained && in->trigger)
            on_event(task, in, value);
        free(value);
        return;
    }
    if (task->workers > 1)
        is_event = msg->retained && task->worker == 1 && !same_value(in->value, value);
    else
        is_event = !msg->retained || !same_value(in->value, value);
    free(in->value);
    in->value = value;
    if (is_event && in->trigger)
        on_event(task, in, value);
}

/* Applies one received message to the task's view of the run. */
static void absorb(fb_task *task, const fb_msg *msg, int from_share)
{
    size_t root_len = strlen(task->root);
    const char *rel;
    char state[32];
    size_t i;

    if (strncmp(msg->topic, task->root, root_len) != 0 || msg->topic[root_len] != '/')
        return;
    rel = msg->topic + root_len + 1;
    if (strncmp(rel, "vars/", 5) == 0) {
        const char *name = rel + 5;
        struct var *in = find_var(task->inputs, task->n_inputs, name);
        struct var *out = find_var(task->outputs, task->n_outputs, name);

        if (in != NULL && !in->secret && task->reactive) {
            absorb_reactive_var(task, in, msg, from_share);
        } else if (in != NULL && !in->secret) {
            free(in->value);
            in->value = NULL;
            /* Zero bytes: the retained value was deleted. One NUL byte: "". */
            if (msg->len == 1 && msg->payload[0] == '\0')
                in->value = str__dup("");
            else if (msg->len > 0)
                in->value = str__dup(msg->payload);
        }
        if (out != NULL)
            out->taken = msg->len > 0;
    } else if (strncmp(rel, "tasks/", 6) == 0) {
        const char *name = rel + 6;
        const char *slash = strchr(name, '/');

        if (slash == NULL || strcmp(slash, "/state") != 0)
            return;
        for (i = 0; i < task->n_deps; i++) {
            if (strlen(task->deps[i].name) == (size_t)(slash - name) &&
                strncmp(task->deps[i].name, name, (size_t)(slash - name)) == 0) {
                /* Other terminal states leave the task waiting: the coordinator decides skips. */
                state_of(msg, state, sizeof state);
                task->deps[i].done = strcmp(state, "done") == 0 ||
                                     (task->reactive && result_done(msg));
            }
        }
    } else if (strcmp(rel, "control") == 0) {
        json_t *root = json_loadb(msg->payload, msg->len, 0, NULL);
        const char *cmd = json_string_value(json_object_get(root, "cmd"));

        if (cmd != NULL && strcmp(cmd, "stop") == 0)
            task->stopped = 1;
        else if (cmd != NULL && strcmp(cmd, "pause") == 0)
            task->paused = 1;
        else if (cmd != NULL && strcmp(cmd, "resume") == 0)
            task->paused = 0;
        json_decref(root);
    }
}

/* Absorbs every message already queued on one connection, without waiting. */
static enum fb_err absorb_bus(fb_task *task, fb_bus *bus, int from_share)
{
    fb_msg *msg;
    enum fb_err err;

    while ((err = fb_bus_next(bus, 0, &msg)) == FB_OK) {
        absorb(task, msg, from_share);
        fb_msg_free(msg);
    }
    return err == FB_ERR_TIMEOUT ? FB_OK : err;
}

/*
 * Absorbs every message already queued, without waiting: the task's own
 * connection first (so the latest values are known), then the events
 * connection of a worker pool.
 */
static enum fb_err absorb_queued(fb_task *task)
{
    enum fb_err err = absorb_bus(task, task->bus, 0);

    if (err == FB_OK && task->events_bus != NULL)
        err = absorb_bus(task, task->events_bus, 1);
    return err;
}

static int ready(const fb_task *task)
{
    size_t i;

    for (i = 0; i < task->n_inputs; i++)
        if (task->inputs[i].value == NULL)
            return 0;
    for (i = 0; i < task->n_deps; i++)
        if (!task->deps[i].done)
            return 0;
    return 1;
}

/*
 * A worker pool's second connection: the $share subscriptions of the trigger
 * inputs (group "<run-id>.<task>"), through which the broker gives each event
 * to one worker. Same broker and credentials; no Last Will (the task's own
 * connection has it). fb_task_fd is an epoll set over both connections.
 */
static enum fb_err connect_events(fb_task *task, fb_bus_options *opts, char *client_id,
                                  size_t id_len, char *errbuf, size_t errlen)
{
    const char **filters = calloc(task->n_triggers + 1, sizeof *filters);
    struct epoll_event ev;
    size_t n = 0;
    size_t i;
    enum fb_err err = FB_OK;

    if (filters == NULL) {
        err__set(errbuf, errlen, "out of memory");
        return FB_ERR_NOMEM;
    }
    snprintf(client_id, id_len, "fb-%s-%s-%ld-events", task->run_id, task->name, task->pid);
    opts->client_id = client_id;
    opts->will_topic = NULL;
    opts->will_payload = NULL;
    opts->will_retained = 0;
    err = fb_bus_new(opts, &task->events_bus, errbuf, errlen);
    if (err != FB_OK)
        goto out;
    for (i = 0; i < task->n_inputs; i++) {
        if (!task->inputs[i].trigger)
            continue;
        filters[n] = fmt_alloc("$share/%s.%s/%s/vars/%s", task->run_id, task->name, task->root,
                               task->inputs[i].name);
        if (filters[n++] == NULL) {
            err__set(errbuf, errlen, "out of memory");
            err = FB_ERR_NOMEM;
            goto out;
        }
    }
    err = fb_bus_subscribe(task->events_bus, filters, n, SUBSCRIBE_TIMEOUT);
    if (err != FB_OK) {
        err__set(errbuf, errlen, "cannot subscribe to the shared events: %s", fb_strerror(err));
        goto out;
    }
    task->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    if (task->epoll_fd < 0 ||
        epoll_ctl(task->epoll_fd, EPOLL_CTL_ADD, fb_bus_fd(task->bus), &ev) != 0 ||
        epoll_ctl(task->epoll_fd, EPOLL_CTL_ADD, fb_bus_fd(task->events_bus), &ev) != 0) {
        err__set(errbuf, errlen, "epoll: %s", strerror(errno));
        err = FB_ERR_SYSTEM;
    }
out:
    for (i = 0; i < n; i++)
        free((char *)filters[i]);
    free(filters);
    return err;
}

static enum fb_err connect_and_subscribe(fb_task *task, char *errbuf, size_t errlen)
{
    fb_bus_options bus_opts;
    const char *url;
    const char **filters = NULL;
    char *will = NULL;
    char client_id[160];
    size_t n = 0;
    size_t i;
    enum fb_err err;

    err = required_env("FLOWBUS_BROKER", &url, errbuf, errlen);
    if (err != FB_OK)
        goto out;
    if (task->reactive && task->workers > 1)
        will = fmt_alloc("{\"state\":\"crashed\",\"attempt\":%ld,\"pid\":%ld,\"at\":%.6f,"
                         "\"exit\":null,\"error\":\"connection lost\",\"worker\":%ld}",
                         task->attempt, task->pid, fb_clock_wall(), task->worker);
    else
        will = fmt_alloc("{\"state\":\"crashed\",\"attempt\":%ld,\"pid\":%ld,\"at\":%.6f,"
                         "\"exit\":null,\"error\":\"connection lost\"}",
                         task->attempt, task->pid, fb_clock_wall());
    filters = calloc(task->n_inputs + task->n_outputs + task->n_deps + 1, sizeof *filters);
    if (will == NULL || filters == NULL) {
        err__set(errbuf, errlen, "out of memory");
        err = FB_ERR_NOMEM;
        goto out;
    }
    snprintf(client_id, sizeof client_id, "fb-%s-%s-%ld", task->run_id, task->name, task->pid);
    memset(&bus_opts, 0, sizeof bus_opts);
    bus_opts.url = url;
    bus_opts.username = getenv("FLOWBUS_USERNAME");
    bus_opts.password = getenv("FLOWBUS_PASSWORD");
    bus_opts.client_id = client_id;
    bus_opts.will_topic = task->state_topic;
    bus_opts.will_payload = will;
    bus_opts.will_retained = 1;
    bus_opts.log = task->log;
    bus_opts.log_ctx = task->log_ctx;
    /*
     * A task survives a broker restart: the bus re-subscribes (the retained
     * inputs and states come again, which absorb takes as they are) and
     * re-sends the unconfirmed outputs and states in order. Whatever the task
     * was doing goes on; nothing here runs its action again.
     */
    bus_opts.reconnect_max_s = task->reconnect_max;
    /* A task whose coordinator died (and a plugin may outlive the SIGTERM,
     * as cmd does to stop its command) gives up on the broker at once. */
    bus_opts.guardian_pid = task->guardian_pid;
    bus_opts.ca_file = nonempty_env("FLOWBUS_TLS_CA");
    bus_opts.cert_file = nonempty_env("FLOWBUS_TLS_CERT");
    bus_opts.key_file = nonempty_env("FLOWBUS_TLS_KEY");
    err = fb_bus_new(&bus_opts, &task->bus, errbuf, errlen);
    /*
     * The broker may be restarting just as the task starts (the coordinator
     * restarts a private broker that died): the first connect gets the same
     * window as a reconnect, with the same doubling pause, while the
     * coordinator that restarts it lives.
     */
    {
        double deadline = fb_clock_mono() + task->reconnect_max, pause = 0.05;
        /* Only a coordinator that runs the broker itself restarts it: an
         * external broker that refuses or is unreachable is reported at once. */
        while (err == FB_ERR_CONNECT && task->reconnect_max != 0 && task->guardian_pid > 0 &&
               (task->reconnect_max < 0 || fb_clock_mono() + pause < deadline) &&
               (long)getppid() == task->guardian_pid) {
            struct timespec ts = {(time_t)pause, (long)((pause - (double)(time_t)pause) * 1e9)};
            nanosleep(&ts, NULL);
            pause = pause < 1.0 ? pause * 2 : 2.0;
            err = fb_bus_new(&bus_opts, &task->bus, errbuf, errlen);
        }
    }
    if (err != FB_OK)
        goto out;

    for (i = 0; i < task->n_inputs; i++)
        if (!task->inputs[i].secret)
            filters[n++] = fmt_alloc("%s/vars/%s", task->root, task->inputs[i].name);
    /* Outputs are watched for "first value wins", which reactive mode does not have. */
    for (i = 0; i < task->n_outputs && !task->reactive; i++)
        filters[n++] = fmt_alloc("%s/vars/%s", task->root, task->outputs[i].name);
    for (i = 0; i < task->n_deps; i++)
        filters[n++] = fmt_alloc("%s/tasks/%s/state", task->root, task->deps[i].name);
    filters[n++] = fmt_alloc("%s/control", task->root);
    for (i = 0; i < n; i++) {
        if (filters[i] == NULL) {
            err__set(errbuf, errlen, "out of memory");
            err = FB_ERR_NOMEM;
            goto out;
        }
    }
    err = fb_bus_subscribe(task->bus, filters, n, SUBSCRIBE_TIMEOUT);
    if (err != FB_OK) {
        err__set(errbuf, errlen, "cannot subscribe to the task's topics: %s", fb_strerror(err));
        goto out;
    }
    /*
     * The SUBACK comes before the retained messages of the new subscriptions.
     * The broker queues all of them while handling the SUBSCRIBE, before it
     * reads our next packet, so once the PUBACK of "waiting" is back every
     * retained input, output and state is in our queue. fb_task_wait and the
     * first-value-wins check in fb_task_done rely on that.
     */
    /*
     * A pool's events connection subscribes before "waiting", so that state
     * means "ready for events". Its events are absorbed after the retained
     * values of the task's own connection (absorb_queued), so they find them.
     */
    if (task->reactive && task->workers > 1 && task->n_triggers > 0) {
        err = connect_events(task, &bus_opts, client_id, sizeof client_id, errbuf, errlen);
        if (err != FB_OK)
            goto out;
    }
    err = publish_state(task, "waiting", fb_clock_wall(), 0, -1, NULL);
    if (err == FB_OK)
        err = fb_bus_flush(task->bus, task->flush_timeout);
    if (err != FB_OK)
        err__set(errbuf, errlen, "cannot publish the state 'waiting': %s", fb_strerror(err));
out:
    if (filters != NULL)
        for (i = 0; i < n; i++)
            free((char *)filters[i]);
    free(filters);
    free(will);
    return err;
}

/* ------------------------------------------------------------------------ */
/* Public API                                                                */
/* ------------------------------------------------------------------------ */

enum fb_err fb_task_open(const fb_task_options *opts, fb_task **out, char *errbuf, size_t errlen)
{
    fb_task *task = NULL;
    const char *parent;
    long guardian = 0;
    enum fb_err err = FB_OK;

    if (out != NULL)
        *out = NULL;
    if (out == NULL) {
        err__set(errbuf, errlen, "fb_task_open: out is required");
        return FB_ERR_INVALID;
    }
    /*
     * If the coordinator that started us dies (even by SIGKILL), the kernel
     * sends SIGTERM, so a task never outlives its run. The parent check
     * ensures the variable was meant for this process and not inherited.
     */
    parent = getenv("FLOWBUS_PARENT_PID");
    if (parent != NULL && atol(parent) == (long)getppid()) {
        guardian = atol(parent);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        /* A coordinator that died just before the prctl sends nothing: act as if it had. */
        if (atol(parent) != (long)getppid())
            raise(SIGTERM);
        parent = NULL;
    }

    task = calloc(1, sizeof *task);
    if (task == NULL) {
        err__set(errbuf, errlen, "out of memory");
        err = FB_ERR_NOMEM;
        goto out;
    }
    task->epoll_fd = -1;
    task->trigger = SIZE_MAX;
    if (opts != NULL) {
        task->log = opts->log;
        task->log_ctx = opts->log_ctx;
    }
    task->pid = (long)getpid();
    task->guardian_pid = guardian;
    err = read_ids(task, errbuf, errlen);
    if (err == FB_OK)
        err = read_numbers(task, errbuf, errlen);
    if (err == FB_OK && parent != NULL) {
        /*
         * Started by a coordinator that is already gone (or the variable was
         * inherited): nothing would stop a reconnecting task, so the loss of
         * the broker stays final, as without reconnection.
         */
        task->reconnect_max = 0;
        task->flush_timeout = FLUSH_TIMEOUT;
    }
    if (err == FB_OK)
        err = read_vars(task, errbuf, errlen);
    if (err == FB_OK)
        err = read_mode(task, errbuf, errlen);
    if (err == FB_OK)
        err = read_params(task, errbuf, errlen);
    if (err == FB_OK)
        err = connect_and_subscribe(task, errbuf, errlen);
    if (err != FB_OK)
        goto out;
    *out = task;
    task = NULL;
out:
    fb_task_free(task);
    return err;
}

enum fb_err fb_task_wait(fb_task *task, double timeout)
{
    double deadline = timeout < 0 ? -1.0 : fb_clock_mono() + timeout;
    double left;
    double at;
    fb_msg *msg;
    enum fb_err err;

    if (task == NULL || task->finished)
        return FB_ERR_INVALID;
    if (task->running)
        return FB_OK;
    /* In reactive mode only a source waits this way, and a source consumes no events. */
    if (task->reactive)
        task->source = 1;
    for (;;) {
        err = absorb_queued(task);
        if (task->stopped)
            return FB_ERR_STOPPED;
        if (err == FB_OK)
            err = reassert(task); /* "waiting" again, in case a restarted broker lost it */
        if (err != FB_OK)
            return err;
        if (ready(task))
            break;
        if (deadline >= 0 && fb_clock_mono() >= deadline)
            return FB_ERR_TIMEOUT;
        /* At most a second at a time, so a reconnect is noticed even when nothing comes. */
        left = deadline < 0 ? 1.0 : deadline - fb_clock_mono();
        err = fb_bus_next(task->bus, left > 1.0 ? 1.0 : left, &msg);
        if (err == FB_OK) {
            absorb(task, msg, 0);
            fb_msg_free(msg);
        } else if (err != FB_ERR_TIMEOUT) {
            return err;
        }
    }
    at = fb_clock_wall();
    task->started_at = at;
    task->running = 1;
    /* A reactive source stays "waiting" between the activations fb_task_emit reports. */
    if (task->reactive)
        return FB_OK;
    return publish_state(task, "running", at, 0, -1, NULL);
}

const char *fb_task_name(const fb_task *task)
{
    return task != NULL ? task->name : NULL;
}

const char *fb_task_run_id(const fb_task *task)
{
    return task != NULL ? task->run_id : NULL;
}

size_t fb_task_input_count(const fb_task *task)
{
    return task != NULL ? task->n_inputs : 0;
}

const char *fb_task_input_name(const fb_task *task, size_t i)
{
    return task != NULL && i < task->n_inputs ? task->inputs[i].name : NULL;
}

size_t fb_task_output_count(const fb_task *task)
{
    return task != NULL ? task->n_outputs : 0;
}

const char *fb_task_output_name(const fb_task *task, size_t i)
{
    return task != NULL && i < task->n_outputs ? task->outputs[i].name : NULL;
}

int fb_task_has_output(const fb_task *task, const char *name)
{
    return task != NULL && name != NULL && find_var(task->outputs, task->n_outputs, name) != NULL;
}

const char *fb_task_input(const fb_task *task, const char *name)
{
    const struct var *v;

    if (task == NULL || name == NULL)
        return NULL;
    v = find_var(task->inputs, task->n_inputs, name);
    if (v != NULL && task->reactive && task->snapshot && !v->secret)
        return v->current;
    return v != NULL ? v->value : NULL;
}

const char *fb_task_param(const fb_task *task, const char *name)
{
    size_t i;

    if (task == NULL || name == NULL)
        return NULL;
    for (i = 0; i < task->n_params; i++)
        if (strcmp(task->param_names[i], name) == 0)
            return task->param_texts[i];
    return NULL;
}

const char *fb_task_params_json(const fb_task *task)
{
    return task != NULL && task->params_json != NULL ? task->params_json : "{}";
}

enum fb_err fb_task_set_output(fb_task *task, const char *name, const char *value)
{
    struct var *v;
    char *copy;

    if (task == NULL || name == NULL || value == NULL)
        return FB_ERR_INVALID;
    v = find_var(task->outputs, task->n_outputs, name);
    if (v == NULL)
        return FB_ERR_NOT_FOUND;
    if (strlen(value) > task->max_value)
        return FB_ERR_TOO_LARGE;
    copy = str__dup(value);
    if (copy == NULL)
        return FB_ERR_NOMEM;
    free(v->value);
    v->value = copy;
    return FB_OK;
}

/* Lines a task may publish on its log topic per second; more are counted and dropped. */
#define LOG_LINES_PER_S 2000

/*
 * Secret i of the task (0 <= i <= n_inputs): its secret inputs, then
 * AUTH_TOKEN. NULL when that slot holds no secret. Values shorter than 4
 * characters do not count (masking them would mangle ordinary text and
 * protect nothing).
 */
static const char *secret_at(const fb_task *task, size_t i)
{
    const char *v = i < task->n_inputs ? (task->inputs[i].secret ? task->inputs[i].value : NULL)
                                       : getenv("AUTH_TOKEN");
    return v != NULL && strlen(v) >= 4 ? v : NULL;
}

/* Replaces every secret value in text (NUL-terminated, modified in place) by "***". */
static void mask_secrets(const fb_task *task, char *text)
{
    for (size_t i = 0; i <= task->n_inputs; i++) {
        const char *secret = secret_at(task, i);
        size_t len = secret ? strlen(secret) : 0;
        char *hit;

        while (secret != NULL && (hit = strstr(text, secret)) != NULL) {
            memcpy(hit, "***", 3);
            memmove(hit + 3, hit + len, strlen(hit + len) + 1);
        }
    }
}

/* 1 if value contains one of the task's secret values. */
static int has_secret(const fb_task *task, const char *value)
{
    for (size_t i = 0; i <= task->n_inputs; i++) {
        const char *secret = secret_at(task, i);
        if (secret != NULL && strstr(value, secret) != NULL)
            return 1;
    }
    return 0;
}

/*
 * A task that logs in a loop must not flood the bus, the broker and the
 * coordinator: past LOG_LINES_PER_S in a second, lines are dropped, and the
 * count is published when the next second begins.
 */
/* Reports the lines dropped in the current second, if any (also when the task ends). */
static void report_log_drops(fb_task *task)
{
    char note[128];

    if (task->log_dropped == 0)
        return;
    snprintf(note, sizeof note, "[%lu lines dropped: more than %d lines in a second]",
             task->log_dropped, LOG_LINES_PER_S);
    fb_bus_publish(task->bus, task->log_topic, note, strlen(note), 1, 0, 0);
    task->log_dropped = 0;
}

static int log_allowed(fb_task *task)
{
    double now = fb_clock_mono();

    if (now - task->log_window >= 1.0) {
        report_log_drops(task);
        task->log_window = now;
        task->log_lines = 0;
        task->log_dropped = 0;
    }
    if (task->log_lines >= LOG_LINES_PER_S) {
        task->log_dropped++;
        return 0;
    }
    task->log_lines++;
    return 1;
}

void fb_task_log(fb_task *task, const char *fmt, ...)
{
    va_list ap;
    char *text;
    char *line;
    char *next;

    if (task == NULL || fmt == NULL || task->bus == NULL)
        return;
    va_start(ap, fmt);
    text = vfmt_alloc(fmt, ap);
    va_end(ap);
    if (text == NULL)
        return;
    /* The log topic carries one line per message. */
    for (line = text; line != NULL; line = next) {
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        if (*line == '\0' || !log_allowed(task))
            continue;
        mask_secrets(task, line);
        fb_bus_publish(task->bus, task->log_topic, line, strlen(line), 1, 0, 0);
    }
    free(text);
}

/* ------------------------------------------------------------------------ */
/* Reactive mode                                                             */
/* ------------------------------------------------------------------------ */

/*
 * Counts an activation against the budget, which regains ACTIVATION_RATE
 * activations a second up to ACTIVATION_BURST, and decides whether the
 * states of this activation are coalesced. Once the budget ran out the task
 * coalesces until half of it is back: in a flood the budget stays empty, so
 * the task does not flip between the two ways of reporting at every refill.
 */
static void count_activation(fb_task *task)
{
    double now = fb_clock_mono();

    task->budget += (now - task->budget_at) * ACTIVATION_RATE;
    if (task->budget > ACTIVATION_BURST)
        task->budget = ACTIVATION_BURST;
    task->budget_at = now;
    task->budget -= 1.0;
    if (task->budget < 0)
        task->coalesce = 1;
    else if (task->budget >= ACTIVATION_BURST / 2)
        task->coalesce = 0;
}

/*
 * Publishes the "waiting" of the last activation if it was held back: the
 * broker then has the task's exact counters again. Called only between
 * activations; a held-back state is always one that ended "done" (a failed
 * activation publishes its own, with exit and error).
 */
static enum fb_err catch_up_state(fb_task *task)
{
    if (!task->state_behind)
        return FB_OK;
    return publish_state(task, "waiting", task->ended_at, 1, -1, NULL);
}

/*
 * Publishes the recorded outputs (none if result is "failed"), then the
 * state "waiting" with the activation's result, and forgets the outputs so
 * that the next activation publishes only what it sets. While coalescing,
 * an activation that ended "done" with further events already queued
 * publishes no state: the next activation follows at once, and its
 * heartbeat or the queue running dry (fb_task_next) publishes the counters.
 */
static enum fb_err publish_activation(fb_task *task, const char *result, int exit_code,
                                      const char *error)
{
    enum fb_err err = FB_OK;
    size_t i;

    /* Learn of control messages and queue the events that came meanwhile (for "queued"). */
    err = absorb_queued(task);
    for (i = 0; i < task->n_outputs && err == FB_OK && strcmp(result, "done") == 0; i++) {
        if (task->outputs[i].value != NULL && has_secret(task, task->outputs[i].value)) {
            fb_task_log(task, "output %s contains a secret value; no output was published",
                        task->outputs[i].name);
            result = "failed";
            exit_code = 1;
            error = "an output contains a secret value";
        }
    }
    for (i = 0; i < task->n_outputs && err == FB_OK && strcmp(result, "done") == 0; i++)
        if (task->outputs[i].value != NULL)
            err = publish_var(task, task->outputs[i].name, task->outputs[i].value);
    /*
     * Outputs reach the broker before the activation's state, and subscribers
     * see them in that order: one client's QoS 1 messages are sent, re-sent
     * after a reconnect and forwarded in order. So an activation does not wait
     * for the broker's acknowledgements (a round trip each); the bus bounds
     * what is unacknowledged, and fb_task_exit waits for all of it.
     */
    for (i = 0; i < task->n_outputs; i++) {
        free(task->outputs[i].value);
        task->outputs[i].value = NULL;
    }
    task->result = result;
    task->ended_at = fb_clock_wall();
    if (err != FB_OK)
        return err;
    if (task->coalesce && !task->source && !task->paused && !task->stopped && task->q_len > 0 &&
        strcmp(result, "done") == 0) {
        task->state_behind = 1;
        return FB_OK;
    }
    return publish_state(task, "waiting", task->ended_at, 1, exit_code, error);
}

static enum fb_err end_activation(fb_task *task, const char *result, int exit_code,
                                  const char *error)
{
    task->in_activation = 0;
    return publish_activation(task, result, exit_code, error);
}

/* Queues the one start event of a task with no trigger inputs (worker 1 of a pool only). */
static void initial_event(fb_task *task)
{
    if (task->n_triggers > 0 || task->initial_fired || task->worker > 1 ||
        !ready_except(task, SIZE_MAX))
        return;
    task->initial_fired = 1;
    enqueue(task, SIZE_MAX, NULL);
}

/*
 * Waits up to timeout seconds (>= 0) for a message on either connection.
 * With one connection the message is taken and absorbed here: fb_bus_next
 * sleeps on the bus's condition variable, whereas polling fb_bus_fd would
 * make the bus write its pipe for every wake-up from then on (a write, a
 * poll and a read each time the queue ran dry).
 */
static void wait_readable(fb_task *task, double timeout)
{
    struct pollfd pfd[2];
    nfds_t n = 0;
    fb_msg *msg;

    if (task->events_bus == NULL) {
        if (fb_bus_next(task->bus, timeout, &msg) == FB_OK) {
            absorb(task, msg, 0);
            fb_msg_free(msg);
        }
        return;
    }
    pfd[n++] = (struct pollfd){.fd = fb_bus_fd(task->bus), .events = POLLIN};
    pfd[n++] = (struct pollfd){.fd = fb_bus_fd(task->events_bus), .events = POLLIN};
    poll(pfd, n, (int)(timeout * 1000.0 + 0.999));
}

/* Takes the oldest event and makes it the current activation's view of the inputs. */
static enum fb_err start_activation(fb_task *task)
{
    struct event ev = task->queue[task->q_head];
    size_t i;
    double at;

    task->q_head = (task->q_head + 1) % task->queue_max;
    task->q_len--;
    if (task->burst_drops > 0) {
        fb_task_log(task, "%lu events dropped while busy (queue limit %zu); %lu in all",
                    task->burst_drops, task->queue_max, task->dropped);
        task->burst_drops = 0;
    }
    for (i = 0; i < task->n_inputs; i++) {
        struct var *in = &task->inputs[i];

        free(in->current);
        in->current = NULL;
        if (in->secret)
            continue;
        if (i == ev.input) {
            in->current = ev.value;
            ev.value = NULL;
        } else if (in->value != NULL && (in->current = str__dup(in->value)) == NULL) {
            free(ev.value);
            return FB_ERR_NOMEM;
        }
    }
    free(ev.value);
    task->snapshot = 1;
    task->trigger = ev.input;
    task->activation++;
    task->in_activation = 1;
    task->result = NULL;
    at = fb_clock_wall();
    task->started_at = at;
    /*
     * In a coalesced backlog "running" is the heartbeat: at most one every
     * STATE_INTERVAL, with the activation number and the counters.
     */
    count_activation(task);
    if (task->coalesce && fb_clock_mono() - task->state_at < STATE_INTERVAL) {
        task->state_behind = 1;
        return FB_OK;
    }
    return publish_state(task, "running", at, 0, -1, NULL);
}

int fb_task_reactive(const fb_task *task)
{
    return task != NULL && task->reactive;
}

enum fb_err fb_task_next(fb_task *task, double timeout)
{
    double deadline = timeout < 0 ? -1.0 : fb_clock_mono() + timeout;
    double left;
    enum fb_err err;

    if (task == NULL || task->finished || !task->reactive || task->in_activation || task->source)
        return FB_ERR_INVALID;
    for (;;) {
        err = absorb_queued(task);
        /* The coordinator keeps the last state it saw as the stopped task's record. */
        if (task->stopped) {
            catch_up_state(task);
            return FB_ERR_STOPPED;
        }
        if (err == FB_OK)
            err = reassert(task);
        if (err != FB_OK)
            return err;
        initial_event(task);
        if (!task->paused && task->q_len > 0)
            break;
        /* Nothing to do (queue dry, or paused): the broker gets the exact counters now. */
        err = catch_up_state(task);
        if (err != FB_OK)
            return err;
        if (deadline >= 0 && fb_clock_mono() >= deadline)
            return FB_ERR_TIMEOUT;
        /* At most a second at a time, so a reconnect is noticed even when nothing comes. */
        left = deadline < 0 ? 1.0 : deadline - fb_clock_mono();
        wait_readable(task, left > 1.0 ? 1.0 : left < 0 ? 0 : left);
    }
    return start_activation(task);
}

unsigned long fb_task_activation(const fb_task *task)
{
    return task != NULL ? task->activation : 0;
}

const char *fb_task_trigger(const fb_task *task)
{
    if (task == NULL || !task->snapshot || task->trigger >= task->n_inputs)
        return NULL;
    return task->inputs[task->trigger].name;
}

int fb_task_paused(const fb_task *task)
{
    return task != NULL && task->paused;
}

int fb_task_fd(const fb_task *task)
{
    if (task == NULL)
        return -1;
    return task->epoll_fd >= 0 ? task->epoll_fd : fb_bus_fd(task->bus);
}

enum fb_err fb_task_poll(fb_task *task)
{
    enum fb_err err;

    if (task == NULL || task->finished)
        return FB_ERR_INVALID;
    err = absorb_queued(task);
    if (task->stopped)
        return FB_ERR_STOPPED;
    if (err == FB_OK)
        err = reassert(task);
    return err;
}

enum fb_err fb_task_emit(fb_task *task)
{
    if (task == NULL || task->finished || !task->reactive || task->in_activation)
        return FB_ERR_INVALID;
    task->source = 1;
    task->activation++;
    task->started_at = fb_clock_wall();
    return publish_activation(task, "done", -1, NULL);
}

enum fb_err fb_task_done(fb_task *task)
{
    enum fb_err err;
    size_t i;

    if (task == NULL || task->finished)
        return FB_ERR_INVALID;
    report_log_drops(task);
    if (task->reactive)
        return task->in_activation ? end_activation(task, "done", -1, NULL) : FB_ERR_INVALID;
    /* Learn about values other producers set while we worked. */
    err = absorb_queued(task);
    if (err != FB_OK)
        return err;
    /* Secrets never travel as variables: refuse before publishing anything. */
    for (i = 0; i < task->n_outputs; i++) {
        if (task->outputs[i].value != NULL && has_secret(task, task->outputs[i].value)) {
            fb_task_log(task, "output %s contains a secret value; no output was published",
                        task->outputs[i].name);
            return FB_ERR_INVALID;
        }
    }
    for (i = 0; i < task->n_outputs; i++) {
        struct var *v = &task->outputs[i];

        if (v->value == NULL) {
            fb_task_log(task, "output %s was not set", v->name);
            continue;
        }
        if (v->taken) {
            fb_task_log(task,
                        "output %s already has a value from another producer; not overwritten",
                        v->name);
            continue;
        }
        err = publish_var(task, v->name, v->value);
        if (err != FB_OK)
            return err;
        v->published = 1;
    }
    /* Outputs must be on the broker before anyone can see "done". */
    err = flush_reasserting(task);
    if (err != FB_OK)
        return err;
    err = publish_state(task, "done", fb_clock_wall(), 1, 0, NULL);
    if (err == FB_OK)
        err = flush_reasserting(task);
    if (err == FB_OK)
        task->finished = 1;
    return err;
}

enum fb_err fb_task_fail(fb_task *task, int exit_code, const char *fmt, ...)
{
    va_list ap;
    char *error = NULL;
    char *p;
    enum fb_err err;

    if (task == NULL || task->finished)
        return FB_ERR_INVALID;
    if (fmt != NULL) {
        va_start(ap, fmt);
        error = vfmt_alloc(fmt, ap);
        va_end(ap);
    }
    if (error != NULL)
        mask_secrets(task, error);
    /* The error field is one line. */
    for (p = error; p != NULL && *p != '\0'; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    /* A failed activation does not end a reactive task; failing outside one does. */
    if (task->reactive && task->in_activation)
        err = end_activation(task, "failed", exit_code < 0 ? 1 : exit_code,
                             error != NULL ? error : "failed");
    else
        err = task__end(task, "failed", exit_code < 0 ? 1 : exit_code,
                        error != NULL ? error : "failed");
    free(error);
    return err;
}

enum fb_err task__end(fb_task *task, const char *state, int exit_code, const char *error)
{
    enum fb_err err;

    if (task == NULL || task->finished)
        return FB_ERR_INVALID;
    /* Finished even if unconfirmed: a task that tried to end must not report done afterwards. */
    task->finished = 1;
    report_log_drops(task);
    err = publish_state(task, state, fb_clock_wall(), 1, exit_code, error);
    if (err == FB_OK)
        err = fb_bus_flush(task->bus, task->flush_timeout);
    /*
     * A broker restarted while we waited may have lost what it acknowledged
     * but had not saved yet (the outputs, say): the bus re-sent only what was
     * unacknowledged, so the outputs and this final state go out again, and
     * are confirmed in turn. A few rounds, in case it restarts again.
     */
    for (int round = 0; err == FB_OK && round < 3 &&
                        fb_bus_reconnects(task->bus) != task->reconnects;
         round++) {
        err = reassert(task);
        if (err == FB_OK)
            err = fb_bus_flush(task->bus, task->flush_timeout);
    }
    return err;
}

fb_log_fn task__log_fn(const fb_task *task, void **ctx)
{
    *ctx = task->log_ctx;
    return task->log;
}

void fb_task_exit(fb_task *task, int code)
{
    fflush(NULL);
    if (task != NULL && task->events_bus != NULL)
        fb_bus_close(task->events_bus, EXIT_CLOSE_TIMEOUT);
    if (task != NULL) {
        /* A state held back in a flood goes first, so the task's last word is exact. */
        if (task->reactive && !task->finished && !task->in_activation)
            catch_up_state(task);
        /* A reactive task does not wait for acknowledgements per activation. */
        fb_bus_flush(task->bus, EXIT_CLOSE_TIMEOUT);
        fb_bus_close(task->bus, EXIT_CLOSE_TIMEOUT);
    }
    /* Skips MQTTAsync_destroy, which waits for Paho's threads in 100 ms sleeps. */
    _exit(code);
}

void fb_task_free(fb_task *task)
{
    size_t i;

    if (task == NULL)
        return;
    fb_bus_free(task->events_bus);
    fb_bus_free(task->bus);
    if (task->epoll_fd >= 0)
        close(task->epoll_fd);
    for (i = 0; i < task->q_len; i++)
        free(task->queue[(task->q_head + i) % task->queue_max].value);
    free(task->queue);
    free_vars(task->inputs, task->n_inputs);
    free_vars(task->outputs, task->n_outputs);
    for (i = 0; i < task->n_deps; i++)
        free(task->deps[i].name);
    free(task->deps);
    for (i = 0; i < task->n_params; i++) {
        free(task->param_names[i]);
        free(task->param_texts[i]);
    }
    free(task->param_names);
    free(task->param_texts);
    free(task->params_json);
    json_decref(task->params);
    free(task->run_id);
    free(task->name);
    free(task->root);
    free(task->state_topic);
    free(task->log_topic);
    free(task->last_state);
    free(task);
}
