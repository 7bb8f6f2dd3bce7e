/*
 * protocol.c - the bus contract in code (see flowbus/protocol.h).
 *
 * Every topic string, state name, control command, the empty-value encoding
 * and the name rules of flowbus are spelled here and nowhere else. The
 * functions are pure apart from fb_barrier (which uses the bus) and
 * fb_barrier_token (which reads the pid and random bytes).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <jansson.h>

#include "internal.h"
#include "flowbus/protocol.h"

/* The level names under flowbus/<run>/, and the state names, as they travel. */
#define L_STATE "state"
#define L_WORKFLOW "workflow"
#define L_CONTROL "control"
#define L_VARS "vars"
#define L_TASKS "tasks"
#define L_LOG "log"
#define L_SYNC "sync"
#define L_OWNER "owner"
#define L_CLAIMS "claims"
#define L_LAUNCH "launch"
#define L_PLACEMENT "placement"
#define L_INBOX "inbox"

static const char *const state_names[FB_STATE_COUNT] = {
    [FB_STATE_PENDING] = "pending", [FB_STATE_WAITING] = "waiting",
    [FB_STATE_RUNNING] = "running", [FB_STATE_DONE] = "done",
    [FB_STATE_FAILED] = "failed",   [FB_STATE_TIMEOUT] = "timeout",
    [FB_STATE_CRASHED] = "crashed", [FB_STATE_SKIPPED] = "skipped",
    [FB_STATE_DENIED] = "denied",   [FB_STATE_STOPPED] = "stopped",
};

static const char *const run_state_names[] = {
    [FB_RUN_UNKNOWN] = "?",          [FB_RUN_RUNNING] = "running", [FB_RUN_DONE] = "done",
    [FB_RUN_FAILED] = "failed",      [FB_RUN_INCOMPLETE] = "incomplete",
    [FB_RUN_STOPPED] = "stopped",    [FB_RUN_LOST] = "lost",
};

static const char *const control_names[] = {
    [FB_CONTROL_NONE] = NULL,
    [FB_CONTROL_PAUSE] = "pause",
    [FB_CONTROL_RESUME] = "resume",
    [FB_CONTROL_STOP] = "stop",
};

/* ---------------------------------------------------------------- topics */

/* 1 if s may be one topic level: not NULL, not empty, no '/', '+', '#' or NUL inside. */
static int level_ok(const char *s)
{
    return s != NULL && *s != '\0' && strpbrk(s, "/+#") == NULL;
}

/* The level for a NULL part of a filter. */
static const char *part(const char *s, int filter)
{
    return s == NULL && filter ? "+" : s;
}

/* snprintf into buf; 0 when it did not fit or failed. */
static size_t put(char *buf, size_t size, int n)
{
    if (n < 0 || (size_t)n >= size) {
        if (size > 0)
            buf[0] = '\0';
        return 0;
    }
    return (size_t)n;
}

static size_t format_topic(char *buf, size_t size, enum fb_topic_kind kind, const char *run,
                           const char *name, int filter)
{
    const char *r = part(run, filter), *n = part(name, filter);
    const char *root = FB_TOPIC_ROOT;
    int len = -1;

    if (buf == NULL || size == 0)
        return 0;
    buf[0] = '\0';
    /* The agents' topics are outside every run: run plays no part in them. */
    if (kind == FB_TOPIC_AGENT || kind == FB_TOPIC_AGENT_INBOX) {
        if (level_ok(n) || (filter && name == NULL))
            len = snprintf(buf, size, "%s/" FB_AGENTS_LEVEL "/%s%s", root, n,
                           kind == FB_TOPIC_AGENT_INBOX ? "/" L_INBOX : "");
        return put(buf, size, len);
    }
    if (!(level_ok(r) || (filter && run == NULL)))
        return 0;
    switch (kind) {
    case FB_TOPIC_RUN_STATE:
        len = snprintf(buf, size, "%s/%s/" L_STATE, root, r);
        break;
    case FB_TOPIC_WORKFLOW:
        len = snprintf(buf, size, "%s/%s/" L_WORKFLOW, root, r);
        break;
    case FB_TOPIC_CONTROL:
        len = snprintf(buf, size, "%s/%s/" L_CONTROL, root, r);
        break;
    case FB_TOPIC_ALL:
        if (filter)
            len = snprintf(buf, size, "%s/%s/#", root, r);
        break;
    case FB_TOPIC_OWNER:
        len = snprintf(buf, size, "%s/%s/" L_OWNER, root, r);
        break;
    case FB_TOPIC_VAR:
    case FB_TOPIC_TASK_STATE:
    case FB_TOPIC_TASK_LOG:
    case FB_TOPIC_TASK_LAUNCH:
    case FB_TOPIC_TASK_PLACEMENT:
    case FB_TOPIC_SYNC:
    case FB_TOPIC_CLAIM:
        if (!(level_ok(n) || (filter && name == NULL)))
            break;
        if (kind == FB_TOPIC_VAR)
            len = snprintf(buf, size, "%s/%s/" L_VARS "/%s", root, r, n);
        else if (kind == FB_TOPIC_TASK_STATE)
            len = snprintf(buf, size, "%s/%s/" L_TASKS "/%s/" L_STATE, root, r, n);
        else if (kind == FB_TOPIC_TASK_LOG)
            len = snprintf(buf, size, "%s/%s/" L_TASKS "/%s/" L_LOG, root, r, n);
        else if (kind == FB_TOPIC_TASK_LAUNCH)
            len = snprintf(buf, size, "%s/%s/" L_TASKS "/%s/" L_LAUNCH, root, r, n);
        else if (kind == FB_TOPIC_TASK_PLACEMENT)
            len = snprintf(buf, size, "%s/%s/" L_TASKS "/%s/" L_PLACEMENT, root, r, n);
        else if (kind == FB_TOPIC_CLAIM)
            len = snprintf(buf, size, "%s/%s/" L_CLAIMS "/%s", root, r, n);
        else
            len = snprintf(buf, size, "%s/%s/" L_SYNC "/%s", root, r, n);
        break;
    case FB_TOPIC_AGENT:
    case FB_TOPIC_AGENT_INBOX:
    case FB_TOPIC_NONE:
        break;
    }
    return put(buf, size, len);
}

size_t fb_topic_format(char *buf, size_t size, enum fb_topic_kind kind, const char *run,
                       const char *name)
{
    return format_topic(buf, size, kind, run, name, 0);
}

size_t fb_topic_filter(char *buf, size_t size, enum fb_topic_kind kind, const char *run,
                       const char *name)
{
    return format_topic(buf, size, kind, run, name, 1);
}

size_t fb_topic_share(char *buf, size_t size, const char *run, const char *task, const char *var)
{
    if (buf == NULL || size == 0)
        return 0;
    buf[0] = '\0';
    if (!level_ok(run) || !level_ok(task) || !level_ok(var))
        return 0;
    return put(buf, size,
               snprintf(buf, size, "$share/%s.%s/" FB_TOPIC_ROOT "/%s/" L_VARS "/%s", run, task,
                        run, var));
}

/* 1 if the level at s (up to the next '/' or the end) is exactly word; *next after it. */
static int level_is(const char *s, const char *word, const char **next)
{
    size_t n = strlen(word);

    if (strncmp(s, word, n) != 0 || (s[n] != '/' && s[n] != '\0'))
        return 0;
    *next = s + n;
    return 1;
}

/* The length of the level at s; 0 if it is empty. */
static size_t level_len(const char *s)
{
    return strcspn(s, "/");
}

enum fb_topic_kind fb_topic_parse(const char *topic, fb_topic *out)
{
    fb_topic t = {FB_TOPIC_NONE, NULL, 0, NULL, 0};
    const char *p, *rest;
    size_t n;

    if (topic == NULL || !level_is(topic, FB_TOPIC_ROOT, &p) || *p != '/')
        goto out;
    t.run = p + 1;
    t.run_len = level_len(t.run);
    if (t.run_len == 0 || t.run[t.run_len] != '/')
        goto out;
    rest = t.run + t.run_len + 1;
    if (t.run_len == strlen(FB_AGENTS_LEVEL) && memcmp(t.run, FB_AGENTS_LEVEL, t.run_len) == 0) {
        /* flowbus/agents/<name> and flowbus/agents/<name>/inbox: no run's topics. */
        n = level_len(rest);
        if (n == 0 || (rest[n] != '\0' && strcmp(rest + n, "/" L_INBOX) != 0))
            goto out;
        t.kind = rest[n] ? FB_TOPIC_AGENT_INBOX : FB_TOPIC_AGENT;
        t.name = rest;
        t.name_len = n;
        t.run = NULL;
        t.run_len = 0;
        goto out;
    }
    if (strcmp(rest, L_STATE) == 0) {
        t.kind = FB_TOPIC_RUN_STATE;
    } else if (strcmp(rest, L_WORKFLOW) == 0) {
        t.kind = FB_TOPIC_WORKFLOW;
    } else if (strcmp(rest, L_CONTROL) == 0) {
        t.kind = FB_TOPIC_CONTROL;
    } else if (strcmp(rest, L_OWNER) == 0) {
        t.kind = FB_TOPIC_OWNER;
    } else if (level_is(rest, L_VARS, &p) || level_is(rest, L_SYNC, &p) ||
               level_is(rest, L_CLAIMS, &p)) {
        if (*p != '/' || (n = level_len(p + 1)) == 0 || p[1 + n] != '\0')
            goto out;
        t.kind = rest[0] == 'v' ? FB_TOPIC_VAR : rest[0] == 's' ? FB_TOPIC_SYNC : FB_TOPIC_CLAIM;
        t.name = p + 1;
        t.name_len = n;
    } else if (level_is(rest, L_TASKS, &p)) {
        if (*p != '/' || (n = level_len(p + 1)) == 0 || p[1 + n] != '/')
            goto out;
        if (strcmp(p + 2 + n, L_STATE) == 0)
            t.kind = FB_TOPIC_TASK_STATE;
        else if (strcmp(p + 2 + n, L_LOG) == 0)
            t.kind = FB_TOPIC_TASK_LOG;
        else if (strcmp(p + 2 + n, L_LAUNCH) == 0)
            t.kind = FB_TOPIC_TASK_LAUNCH;
        else if (strcmp(p + 2 + n, L_PLACEMENT) == 0)
            t.kind = FB_TOPIC_TASK_PLACEMENT;
        else
            goto out;
        t.name = p + 1;
        t.name_len = n;
    }
out:
    if (t.kind == FB_TOPIC_NONE)
        t.run = NULL, t.run_len = 0, t.name = NULL, t.name_len = 0;
    if (out != NULL)
        *out = t;
    return t.kind;
}

int fb_topic_is_run(const fb_topic *t, const char *run)
{
    return t != NULL && t->run != NULL && run != NULL && strlen(run) == t->run_len &&
           memcmp(t->run, run, t->run_len) == 0;
}

int fb_topic_is_name(const fb_topic *t, const char *name)
{
    return t != NULL && t->name != NULL && name != NULL && strlen(name) == t->name_len &&
           memcmp(t->name, name, t->name_len) == 0;
}

/* ---------------------------------------------------------------- states */

const char *fb_state_name(enum fb_state state)
{
    return (unsigned)state < FB_STATE_COUNT ? state_names[state] : "?";
}

int fb_state_parse(const char *text, enum fb_state *out)
{
    unsigned i;

    for (i = FB_STATE_WAITING; text != NULL && i < FB_STATE_COUNT; i++)
        if (strcmp(text, state_names[i]) == 0) {
            if (out != NULL)
                *out = (enum fb_state)i;
            return 1;
        }
    return 0;
}

int fb_state_is_final(enum fb_state state)
{
    return state >= FB_STATE_DONE && (unsigned)state < FB_STATE_COUNT;
}

const char *fb_run_state_name(enum fb_run_state state)
{
    return (unsigned)state < sizeof run_state_names / sizeof run_state_names[0]
               ? run_state_names[state]
               : "?";
}

enum fb_run_state fb_run_state_parse(const char *text)
{
    unsigned i;

    for (i = FB_RUN_RUNNING; text != NULL && i < sizeof run_state_names / sizeof run_state_names[0];
         i++)
        if (strcmp(text, run_state_names[i]) == 0)
            return (enum fb_run_state)i;
    return FB_RUN_UNKNOWN;
}

int fb_run_state_is_final(enum fb_run_state state)
{
    return state >= FB_RUN_DONE && state <= FB_RUN_STOPPED;
}

/* --------------------------------------------------------------- control */

const char *fb_control_name(enum fb_control cmd)
{
    return (unsigned)cmd < sizeof control_names / sizeof control_names[0] ? control_names[cmd]
                                                                          : NULL;
}

enum fb_control fb_control_parse(const char *payload, size_t len)
{
    enum fb_control cmd = FB_CONTROL_NONE;
    json_t *root = NULL;
    const char *name;
    unsigned i;

    if (payload == NULL || len == 0)
        goto out;
    root = json_loadb(payload, len, 0, NULL);
    name = json_string_value(json_object_get(root, "cmd"));
    for (i = FB_CONTROL_PAUSE; name != NULL && i <= FB_CONTROL_STOP; i++)
        if (strcmp(name, control_names[i]) == 0)
            cmd = (enum fb_control)i;
out:
    json_decref(root);
    return cmd;
}

size_t fb_control_format(char *buf, size_t size, enum fb_control cmd)
{
    const char *name = fb_control_name(cmd);

    if (buf == NULL || size == 0)
        return 0;
    buf[0] = '\0';
    if (name == NULL)
        return 0;
    return put(buf, size, snprintf(buf, size, "{\"cmd\":\"%s\"}", name));
}

/* ---------------------------------------------------------------- values */

size_t fb_value_encode(const char *value, const char **payload)
{
    size_t len = value != NULL ? strlen(value) : 0;

    /* "" as a string literal is one NUL byte: exactly the encoding of the empty value. */
    *payload = len > 0 ? value : "";
    return len > 0 ? len : 1;
}

const char *fb_value_decode(const char *payload, size_t len)
{
    if (payload == NULL || len == 0)
        return NULL;
    if (len == 1 && payload[0] == '\0')
        return "";
    return payload;
}

/* ----------------------------------------------------------------- names */

int fb_name_valid(enum fb_name_kind kind, const char *s, size_t len)
{
    size_t i;

    if (s == NULL || len == 0 || len > FB_NAME_MAX)
        return 0;
    /* flowbus/agents/ holds the agents' records: a run of that id would share its topics. */
    if (kind == FB_NAME_RUN && len == strlen(FB_AGENTS_LEVEL) && memcmp(s, FB_AGENTS_LEVEL, len) == 0)
        return 0;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        int ok = isalnum(c) || c == '_';

        if (kind == FB_NAME_VAR && i == 0)
            ok = isalpha(c) || c == '_';
        else if (kind == FB_NAME_TASK && i > 0)
            ok = ok || c == '-';
        else if (kind == FB_NAME_RUN)
            ok = ok || c == '-';
        /* isalnum is locale-dependent; names are ASCII whatever the locale. */
        if (!ok || c >= 0x80)
            return 0;
    }
    return 1;
}

const char *fb_name_rule(enum fb_name_kind kind)
{
    switch (kind) {
    case FB_NAME_VAR:
        return "use letters, digits and '_', not starting with a digit, at most 64 characters";
    case FB_NAME_TASK:
        return "use letters, digits, '_' and '-', not starting with '-', at most 64 characters";
    case FB_NAME_RUN:
        return "use letters, digits, '_' and '-', 1 to 64 characters";
    }
    return "?";
}

/* The reserved names: exact names, then prefixes (a trailing '*'). */
static const struct {
    const char *name;
    const char *why;
} reserved[] = {
    {"AUTH_TOKEN", "is the task's Attica token, given only by the workflow's env"},
    {"PATH", "chooses which programs a command runs"},
    {"IFS", "changes how the shell splits words"},
    {"ENV", "names a file every POSIX shell runs at start"},
    {"BASH_ENV", "names a file bash runs at start"},
    {"SHELLOPTS", "sets options of every bash started"},
    {"BASHOPTS", "sets options of every bash started"},
    {"PS4", "is expanded (and can run commands) by a tracing shell"},
    {"PROMPT_COMMAND", "is run by an interactive bash"},
    {"CDPATH", "changes where cd goes"},
    {"GLOBIGNORE", "changes what the shell's globs match"},
    {"HOME", "changes which start-up files programs read"},
    {"SHELL", "chooses the shell programs start"},
    {"TMPDIR", "chooses where programs write temporary files"},
    {"GCONV_PATH", "selects code that glibc loads"},
    {"PERL5OPT", "passes options to every perl"},
    {"PERL5LIB", "selects the modules perl loads"},
    {"RUBYOPT", "passes options to every ruby"},
    {"RUBYLIB", "selects the modules ruby loads"},
    {"NODE_OPTIONS", "passes options to every node"},
    {"NODE_PATH", "selects the modules node loads"},
    {"LD_*", "selects the libraries every program loads"},
    {"DYLD_*", "selects the libraries every program loads"},
    {"PYTHON*", "changes what every python runs and loads"},
    {"FLOWBUS_*", "is flowbus's own contract with the task"},
};

const char *fb_name_reserved(const char *name)
{
    size_t i;

    if (name == NULL)
        return NULL;
    for (i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
        const char *r = reserved[i].name;
        size_t n = strlen(r);

        if (r[n - 1] == '*' ? strncmp(name, r, n - 1) == 0 : strcmp(name, r) == 0)
            return reserved[i].why;
    }
    return NULL;
}

/* ------------------------------------------------------------- log rate */

int fb_rate_allow(fb_rate *rate, unsigned long limit, double now, unsigned long *dropped_before)
{
    if (dropped_before != NULL)
        *dropped_before = 0;
    if (now - rate->window >= 1.0) {
        if (dropped_before != NULL)
            *dropped_before = rate->dropped;
        rate->window = now;
        rate->lines = 0;
        rate->dropped = 0;
    }
    if (rate->lines >= limit) {
        rate->dropped++;
        return 0;
    }
    rate->lines++;
    return 1;
}

/* --------------------------------------------------------------- barrier */

size_t fb_barrier_token(char *buf, size_t size, const char *run, const char *label)
{
    unsigned char rnd[4] = {0, 0, 0, 0};

    if (run != NULL)
        return fb_topic_format(buf, size, FB_TOPIC_SYNC, run, label);
    if (buf == NULL || size == 0)
        return 0;
    buf[0] = '\0';
    if (!level_ok(label))
        return 0;
    /* Unguessable enough that two clients of one pid namespace never share it. */
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        rnd[0] = (unsigned char)((unsigned long)(fb_clock_mono() * 1e9) & 0xffu);
    return put(buf, size,
               snprintf(buf, size, FB_TOPIC_ROOT "/%s-%ld-%02x%02x%02x%02x/" L_SYNC, label,
                        (long)getpid(), rnd[0], rnd[1], rnd[2], rnd[3]));
}

enum fb_err fb_barrier(fb_bus *bus, const char *token, double timeout, fb_barrier_fn each,
                       void *ctx)
{
    double deadline = fb_clock_mono() + timeout;
    enum fb_err err;

    if (bus == NULL || token == NULL)
        return FB_ERR_INVALID;
    err = fb_bus_publish(bus, token, "", 0, 1, 0, 0);
    while (err == FB_OK) {
        fb_msg *m = NULL;
        double left = deadline - fb_clock_mono();

        if (left <= 0) {
            err = FB_ERR_TIMEOUT;
            break;
        }
        err = fb_bus_next(bus, left, &m);
        if (err != FB_OK)
            break;
        if (strcmp(m->topic, token) == 0) {
            fb_msg_free(m);
            break;
        }
        if (each != NULL)
            err = each(ctx, m);
        else
            fb_msg_free(m);
    }
    return err;
}
