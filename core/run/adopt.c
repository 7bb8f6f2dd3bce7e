/*
 * adopt.c - which processes of a run live on this host, for `flowbus resume`
 * to adopt, and the launch records that say which were meant to start.
 *
 * A task process survives its coordinator on an external broker; a resume
 * adopts it instead of starting the task again. The processes are found by
 * their environment (FLOWBUS_RUN_ID and FLOWBUS_TASK) in /proc, and the scan
 * is made BEFORE the resume reads the run's retained topics: a process alive
 * at the scan either still lives when the snapshot is read, or it exited
 * after publishing its final state (the SDK waits for the broker to confirm
 * it), which the snapshot then holds. Scanning after the snapshot would miss
 * a process that finished in between and start its task a second time.
 *
 * A scan cannot see a process its coordinator had started but that had not
 * yet exec'd when the coordinator died (its environment is still the
 * coordinator's), nor one whose environment it may not read (a non-dumpable
 * process). So each start has a launch record (tasks/<T>/launch, see
 * launch.c): one before the spawn, confirmed by the broker, and one after it
 * naming the process by pid and start time (pid reuse cannot fool that). A
 * named process still alive is adopted; a record of an attempt that reported
 * nothing, names no process and has none in the scan gets INTENT_GRACE to
 * show up before its task is taken for never started. The winner of the race
 * does this before it reads the run again, and decides from that read.
 */
#define _GNU_SOURCE
#include "internal.h"
#include "log.h"
#include "procstat.h"

#include <dirent.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define INTENT_GRACE 1.0  /* seconds a started process has to show its environment */
#define INTENT_RESCAN 10  /* milliseconds between scans meanwhile */

/* Reads /proc/<pid>/environ; 1 if it is run_id's task process, with its task name in task. */
static int read_env(long pid, const char *run_id, char *task, size_t size)
{
    char path[64], want_run[128], buf[65536];
    FILE *f;
    size_t n;
    int run_ok = 0;

    task[0] = '\0';
    snprintf(path, sizeof path, "/proc/%ld/environ", pid);
    snprintf(want_run, sizeof want_run, "FLOWBUS_RUN_ID=%s", run_id);
    f = fopen(path, "r");
    if (!f)
        return 0;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    for (size_t i = 0; i < n; i += strlen(buf + i) + 1) {
        run_ok |= strcmp(buf + i, want_run) == 0;
        if (strncmp(buf + i, "FLOWBUS_TASK=", 13) == 0)
            snprintf(task, size, "%s", buf + i + 13);
    }
    return run_ok && task[0];
}

/* 1 if pid leads its process group: a task process does (a command it runs may not). */
static int leads_group(long pid)
{
    struct procstat st;

    return procstat__read(pid, &st) && !procstat__is_dead(&st) && st.pgrp == pid;
}

unsigned long long adopt__start_time(pid_t pid)
{
    struct procstat st;

    /* A zombie is gone: its start time must not match a launch record. */
    return procstat__read((long)pid, &st) && !procstat__is_dead(&st) ? st.start : 0;
}

static int known(const struct seen *s, long pid)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].pid == (pid_t)pid)
            return 1;
    return 0;
}

void adopt__scan(const char *run_id, struct seen *s)
{
    DIR *d = opendir("/proc");
    struct dirent *e;

    while (d && (e = readdir(d)) != NULL) {
        char *end, task[FB_NAME_MAX + 1];
        long pid = strtol(e->d_name, &end, 10);
        struct seen_proc *grown;

        if (*end || pid <= 0 || pid == (long)getpid() || known(s, pid) ||
            !read_env(pid, run_id, task, sizeof task))
            continue;
        grown = realloc(s->v, (s->n + 1) * sizeof *s->v);
        if (!grown)
            break;
        s->v = grown;
        s->v[s->n].pid = (pid_t)pid;
        s->v[s->n].leader = leads_group(pid);
        snprintf(s->v[s->n].task, sizeof s->v[s->n].task, "%s", task);
        s->n++;
    }
    if (d)
        closedir(d);
}

pid_t adopt__pid(const struct seen *s, const char *task, long hint)
{
    pid_t any = 0, leader = 0;

    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->v[i].task, task) != 0)
            continue;
        if (hint > 0 && s->v[i].pid == (pid_t)hint)
            return s->v[i].pid;
        if (s->v[i].leader && !leader)
            leader = s->v[i].pid;
        if (!any)
            any = s->v[i].pid;
    }
    return leader ? leader : any;
}

void adopt__free(struct seen *s)
{
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

/*
 * The "attempt" of a state or launch record (1 if it has none); 0 for no JSON
 * object. *started (may be NULL): the record names its process.
 */
static long attempt_of(const fb_msg *m, int *started)
{
    json_t *o = json_loadb(m->payload, m->len, 0, NULL);
    json_t *a = json_object_get(o, "attempt");
    long v = json_is_object(o) ? (json_is_integer(a) ? (long)json_integer_value(a) : 1) : 0;

    if (started)
        *started = json_object_get(o, "process") != NULL;
    json_decref(o);
    return v;
}

/* 1 if msgs hold a state of task (topic name) of at least attempt. */
static int reported(const struct run *r, fb_msg *const *msgs, size_t n, const fb_topic *task,
                    long attempt)
{
    for (size_t i = 0; i < n; i++) {
        fb_topic t;
        if (fb_topic_parse(msgs[i]->topic, &t) == FB_TOPIC_TASK_STATE &&
            fb_topic_is_run(&t, r->run_id) && t.name_len == task->name_len &&
            memcmp(t.name, task->name, t.name_len) == 0 && msgs[i]->len &&
            attempt_of(msgs[i], NULL) >= attempt)
            return 1;
    }
    return 0;
}

/* How many launch records in msgs are unanswered: no state of their attempt, no process. */
static size_t unanswered(const struct run *r, fb_msg *const *msgs, size_t n,
                         const struct seen *s, char *first, size_t size)
{
    size_t count = 0;

    for (size_t i = 0; i < n; i++) {
        fb_topic t;
        char task[FB_NAME_MAX + 1];
        long attempt;
        int started;
        if (fb_topic_parse(msgs[i]->topic, &t) != FB_TOPIC_TASK_LAUNCH ||
            !fb_topic_is_run(&t, r->run_id) || !msgs[i]->len || t.name_len > FB_NAME_MAX)
            continue;
        memcpy(task, t.name, t.name_len);
        task[t.name_len] = '\0';
        attempt = attempt_of(msgs[i], &started);
        /* A start that completed names its process: found above, or gone. */
        if (attempt <= 0 || started || reported(r, msgs, n, &t, attempt) ||
            adopt__pid(s, task, 0))
            continue;
        if (!count++)
            snprintf(first, size, "%s", task);
    }
    return count;
}

/*
 * The processes that launch records name (pid and start time, written after
 * each start) and that still live: found even when their environment cannot
 * be read (a non-dumpable process of another user's, or one that changed it).
 */
static void add_recorded(const struct run *r, fb_msg *const *msgs, size_t n, struct seen *s)
{
    for (size_t i = 0; i < n; i++) {
        fb_topic t;
        json_t *o, *proc;
        json_int_t pid, start;
        struct seen_proc *grown;

        if (fb_topic_parse(msgs[i]->topic, &t) != FB_TOPIC_TASK_LAUNCH ||
            !fb_topic_is_run(&t, r->run_id) || !msgs[i]->len || t.name_len > FB_NAME_MAX)
            continue;
        o = json_loadb(msgs[i]->payload, msgs[i]->len, 0, NULL);
        proc = json_object_get(o, "process");
        pid = json_integer_value(json_object_get(proc, "pid"));
        start = json_integer_value(json_object_get(proc, "start"));
        json_decref(o);
        if (pid <= 0 || start <= 0 || known(s, (long)pid) ||
            adopt__start_time((pid_t)pid) != (unsigned long long)start)
            continue;
        grown = realloc(s->v, (s->n + 1) * sizeof *s->v);
        if (!grown)
            return;
        s->v = grown;
        s->v[s->n].pid = (pid_t)pid;
        s->v[s->n].leader = 1; /* the coordinator started it in a group of its own */
        memcpy(s->v[s->n].task, t.name, t.name_len);
        s->v[s->n].task[t.name_len] = '\0';
        s->n++;
    }
}

void adopt__settle_intents(struct run *r, fb_msg *const *msgs, size_t n, struct seen *s)
{
    double deadline = fb_clock_mono() + INTENT_GRACE;
    char first[FB_NAME_MAX + 1] = "";
    size_t left;
    struct pollfd pfd = {.fd = r->res.sigfd, .events = POLLIN};

    add_recorded(r, msgs, n, s);
    left = unanswered(r, msgs, n, s, first, sizeof first);
    /* Nothing to wait for is the rule: a started process shows its
     * environment within microseconds of its start. */
    while (left && fb_clock_mono() < deadline) {
        /* A signal (Ctrl-C) ends the wait; the event loop handles it. */
        if (poll(&pfd, 1, INTENT_RESCAN) > 0)
            break;
        adopt__scan(r->run_id, s);
        left = unanswered(r, msgs, n, s, first, sizeof first);
    }
    if (left)
        log_printf(FB_LOG_INFO,
                   "%zu task(s) (%s first) were being started when the coordinator died and "
                   "never started; they start now",
                   left, first);
}
