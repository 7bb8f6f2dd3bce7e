/*
 * access.c - per-task credentials and the broker ACL (see access.h).
 *
 * Passwords are 32 hex characters from getrandom(). On the private broker
 * user names are "flowbus" for the coordinator and "task-<name>" for a task;
 * task names cannot contain ':' (the password file's separator) or MQTT
 * wildcards, so both files can be written without escaping. On an external
 * broker (dynsec.c) a user name must be unique on the broker among every
 * run it serves, and tell which run it belongs to: "flowbus.<run>.<task>.<tag>",
 * where '.' is in neither name and tag is random per coordinator, so a
 * coordinator that resumes a run never meets the users of the one before.
 */
#include "access.h"
#include "workflow.h"

#include <flowbus/protocol.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct access {
    const struct workflow *wf;
    char *run_id;
    size_t n; /* users: [0] is the coordinator, [1 + t] task t */
    char (*user)[ACCESS_USER_MAX];
    char (*password)[33];
};

static int random_hex(char *out, size_t bytes)
{
    unsigned char rnd[16];

    if (bytes > sizeof rnd || getrandom(rnd, bytes, 0) != (ssize_t)bytes)
        return 0;
    for (size_t i = 0; i < bytes; i++)
        snprintf(out + 2 * i, 3, "%02x", rnd[i]);
    return 1;
}

/* The users of the private broker (dynsec 0) or of an external one's plugin (dynsec 1). */
static struct access *make(const struct workflow *wf, const char *run_id, int dynsec)
{
    struct access *a = calloc(1, sizeof *a);
    char tag[9];

    if (!a)
        return NULL;
    a->wf = wf;
    a->n = wf->n_tasks + 1;
    a->run_id = strdup(run_id);
    a->user = calloc(a->n, sizeof *a->user);
    a->password = calloc(a->n, sizeof *a->password);
    if (!a->run_id || !a->user || !a->password || !random_hex(tag, 4))
        goto fail;
    /* On an external broker the coordinator is whoever the operator says: no user of ours. */
    snprintf(a->user[0], sizeof a->user[0], "%s", dynsec ? "" : "flowbus");
    for (size_t i = 1; i < a->n; i++) {
        if (dynsec)
            snprintf(a->user[i], sizeof a->user[i], "%s%s.%s", ACCESS_DYNSEC_PREFIX, run_id,
                     wf->tasks[i - 1].name);
        else
            snprintf(a->user[i], sizeof a->user[i], "task-%s", wf->tasks[i - 1].name);
        if (dynsec)
            snprintf(a->user[i] + strlen(a->user[i]), sizeof a->user[i] - strlen(a->user[i]),
                     ".%s", tag);
    }
    for (size_t i = 0; i < a->n; i++)
        if (!random_hex(a->password[i], 16))
            goto fail;
    return a;
fail:
    access__free(a);
    if (!errno)
        errno = ENOMEM;
    return NULL;
}

struct access *access__new(const struct workflow *wf, const char *run_id)
{
    return make(wf, run_id, 0);
}

struct access *access__new_dynsec(const struct workflow *wf, const char *run_id)
{
    return make(wf, run_id, 1);
}

const char *access__run_id(const struct access *a)
{
    return a->run_id;
}

size_t access__n_tasks(const struct access *a)
{
    return a->n - 1;
}

void access__free(struct access *a)
{
    if (!a)
        return;
    if (a->password)
        explicit_bzero(a->password, a->n * sizeof *a->password);
    free(a->password);
    free(a->user);
    free(a->run_id);
    free(a);
}

const char *access__user(const struct access *a, long t)
{
    return a->user[t < 0 ? 0 : (size_t)t + 1];
}

const char *access__password(const struct access *a, long t)
{
    return a->password[t < 0 ? 0 : (size_t)t + 1];
}

/* A growable text buffer; on allocation failure it stays failed. */
struct text {
    char *s;
    size_t len, cap;
    int failed;
};

static void add(struct text *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add(struct text *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->failed)
        return;
    for (;;) {
        size_t room = b->cap - b->len;
        va_start(ap, fmt);
        n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if (b->s && (size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        {
            size_t cap = (b->cap + (size_t)n + 1) * 2;
            char *grown = realloc(b->s, cap);
            if (!grown) {
                b->failed = 1;
                return;
            }
            b->s = grown;
            b->cap = cap;
        }
    }
}

static char *finish(struct text *b)
{
    if (b->failed) {
        free(b->s);
        return NULL;
    }
    return b->s;
}

char *access__password_file(const struct access *a)
{
    struct text b = {0};

    for (size_t i = 0; i < a->n; i++)
        add(&b, "%s:%s\n", a->user[i], a->password[i]);
    return finish(&b);
}

/*
 * mqtt-in and mqtt-out bridge the run's broker to topics outside the run
 * (devices that know nothing of flowbus). On the run's own broker they get
 * exactly the topic of their params: read for mqtt-in, write for mqtt-out.
 */
static int bridge_rights(const struct wf_task *task, access_right_fn fn, void *ctx)
{
    const char *topic = json_string_value(json_object_get(task->params, "topic"));
    int elsewhere = json_object_get(task->params, "broker") != NULL;

    if (!topic || elsewhere || strchr(topic, '\n'))
        return 1;
    if (strcmp(task->plugin, "mqtt-in") == 0)
        return fn(ctx, ACCESS_READ, topic);
    if (strcmp(task->plugin, "mqtt-out") == 0)
        return fn(ctx, ACCESS_WRITE, topic);
    return 1;
}

/*
 * Calls fn for the topic of kind (see protocol.h). The names come from a
 * validated workflow, so the topic always builds; if it did not, the whole
 * list fails rather than grant less or more.
 */
static int topic_right(access_right_fn fn, void *ctx, enum access_right right,
                       enum fb_topic_kind kind, const char *run, const char *name)
{
    char topic[FB_TOPIC_MAX];
    size_t len = fb_topic_format(topic, sizeof topic, kind, run, name);

    return len != 0 && fn(ctx, right, topic);
}

int access__rights(const struct access *a, size_t t, access_right_fn fn, void *ctx)
{
    const struct wf_task *task = &a->wf->tasks[t];
    const char *run = a->run_id;
    int ok = 1;

    for (size_t i = 0; ok && i < task->inputs.n; i++)
        ok = topic_right(fn, ctx, ACCESS_READ, FB_TOPIC_VAR, run, task->inputs.items[i].name);
    /* Read too: a one-shot task watches its outputs for "first value wins". */
    for (size_t i = 0; ok && i < task->outputs.n; i++)
        ok = topic_right(fn, ctx, ACCESS_READWRITE, FB_TOPIC_VAR, run, task->outputs.items[i].name);
    for (size_t i = 0; ok && i < task->depends_on.n; i++)
        ok = topic_right(fn, ctx, ACCESS_READ, FB_TOPIC_TASK_STATE, run,
                         task->depends_on.items[i].name);
    if (ok)
        ok = topic_right(fn, ctx, ACCESS_READ, FB_TOPIC_CONTROL, run, NULL);
    if (ok)
        ok = bridge_rights(task, fn, ctx);
    if (ok)
        ok = topic_right(fn, ctx, ACCESS_WRITE, FB_TOPIC_TASK_STATE, run, task->name);
    if (ok)
        ok = topic_right(fn, ctx, ACCESS_WRITE, FB_TOPIC_TASK_LOG, run, task->name);
    return ok;
}

/* access__rights's callback for the ACL file: one "topic <rights> <topic>" line. */
static int acl_line(void *ctx, enum access_right right, const char *topic)
{
    static const char *const words[] = {"read", "write", "readwrite"};

    add(ctx, "topic %s %s\n", words[right], topic);
    return 1;
}

char *access__acl_file(const struct access *a)
{
    const char *run = a->run_id;
    char all[FB_TOPIC_MAX];
    struct text b = {0};

    add(&b, "# Generated by flowbus for run %s; removed when the run ends.\n\n", run);
    add(&b, "user %s\n", a->user[0]);
    if (fb_topic_filter(all, sizeof all, FB_TOPIC_ALL, run, NULL) == 0)
        b.failed = 1;
    else
        add(&b, "topic readwrite %s\n", all);
    /* The barrier tokens of `flowbus status/set/stop RUN` from another
     * terminal, which connect as this user (core/localruns.h). */
    add(&b, "topic readwrite flowbus/+/sync\n");
    add(&b, "\n");
    for (size_t t = 0; t < a->wf->n_tasks; t++) {
        add(&b, "user %s\n", a->user[t + 1]);
        if (!access__rights(a, t, acl_line, &b))
            b.failed = 1;
        add(&b, "\n");
    }
    return finish(&b);
}
