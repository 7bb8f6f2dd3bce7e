/*
 * access.c - per-task credentials and the broker ACL (see access.h).
 *
 * Passwords are 32 hex characters from getrandom(). User names are "flowbus"
 * for the coordinator and "task-<name>" for a task; task names cannot contain
 * ':' (the password file's separator) or MQTT wildcards, so both files can be
 * written without escaping.
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
    char (*user)[80];
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

struct access *access__new(const struct workflow *wf, const char *run_id)
{
    struct access *a = calloc(1, sizeof *a);

    if (!a)
        return NULL;
    a->wf = wf;
    a->n = wf->n_tasks + 1;
    a->run_id = strdup(run_id);
    a->user = calloc(a->n, sizeof *a->user);
    a->password = calloc(a->n, sizeof *a->password);
    if (!a->run_id || !a->user || !a->password)
        goto fail;
    snprintf(a->user[0], sizeof a->user[0], "flowbus");
    for (size_t i = 1; i < a->n; i++)
        snprintf(a->user[i], sizeof a->user[i], "task-%s", wf->tasks[i - 1].name);
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
static void add_bridge_rights(struct text *b, const struct wf_task *task)
{
    const char *topic = json_string_value(json_object_get(task->params, "topic"));
    int elsewhere = json_object_get(task->params, "broker") != NULL;

    if (!topic || elsewhere || strchr(topic, '\n'))
        return;
    if (strcmp(task->plugin, "mqtt-in") == 0)
        add(b, "topic read %s\n", topic);
    else if (strcmp(task->plugin, "mqtt-out") == 0)
        add(b, "topic write %s\n", topic);
}

/*
 * Adds the ACL line "topic <rights> <topic>" for the topic of kind (see
 * protocol.h). The names come from a validated workflow, so the topic always
 * builds; if it did not, the whole file fails rather than grant less or more.
 */
static void add_topic(struct text *b, const char *rights, enum fb_topic_kind kind, const char *run,
                      const char *name)
{
    char topic[FB_TOPIC_MAX];
    size_t len = kind == FB_TOPIC_ALL ? fb_topic_filter(topic, sizeof topic, kind, run, NULL)
                                      : fb_topic_format(topic, sizeof topic, kind, run, name);

    if (len == 0)
        b->failed = 1;
    else
        add(b, "topic %s %s\n", rights, topic);
}

char *access__acl_file(const struct access *a)
{
    const char *run = a->run_id;
    struct text b = {0};

    add(&b, "# Generated by flowbus for run %s; removed when the run ends.\n\n", run);
    add(&b, "user %s\n", a->user[0]);
    add_topic(&b, "readwrite", FB_TOPIC_ALL, run, NULL);
    /* The barrier tokens of `flowbus status/set/stop RUN` from another
     * terminal, which connect as this user (core/localruns.h). */
    add(&b, "topic readwrite flowbus/+/sync\n");
    add(&b, "\n");
    for (size_t t = 0; t < a->wf->n_tasks; t++) {
        const struct wf_task *task = &a->wf->tasks[t];
        add(&b, "user %s\n", a->user[t + 1]);
        for (size_t i = 0; i < task->inputs.n; i++)
            add_topic(&b, "read", FB_TOPIC_VAR, run, task->inputs.items[i].name);
        for (size_t i = 0; i < task->outputs.n; i++)
            add_topic(&b, "readwrite", FB_TOPIC_VAR, run, task->outputs.items[i].name);
        for (size_t i = 0; i < task->depends_on.n; i++)
            add_topic(&b, "read", FB_TOPIC_TASK_STATE, run, task->depends_on.items[i].name);
        add_topic(&b, "read", FB_TOPIC_CONTROL, run, NULL);
        add_bridge_rights(&b, task);
        add_topic(&b, "write", FB_TOPIC_TASK_STATE, run, task->name);
        add_topic(&b, "write", FB_TOPIC_TASK_LOG, run, task->name);
        add(&b, "\n");
    }
    return finish(&b);
}
