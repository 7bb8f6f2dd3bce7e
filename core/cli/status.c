/*
 * status.c - `flowbus status [RUN] [--json]`: the runs on a broker, or one
 * run and its tasks (see commands.h).
 *
 * Without RUN it reads the records, workflows and task states of every run
 * (flowbus/+/...) and prints one line a run; with RUN, that run's topics and
 * one line a task. Both are one snapshot of the run view (view.h) taken
 * behind the barrier, so what they print is what the broker held at that
 * moment; --json prints the view's JSON (view_json.c) instead of the tables.
 */
#include "commands.h"
#include "format.h"
#include "log.h"
#include "session.h"
#include "view.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char status__usage[] =
    "Usage: flowbus status [RUN] [--broker URL] [--json]\n"
    "\n"
    "Without RUN: every run on the broker, one line each: run id, workflow, state\n"
    "(running, paused, done, failed, incomplete, stopped, lost), start (local time),\n"
    "duration and its tasks counted by state.\n"
    "With RUN: the run's state and one line per task: state, attempt, activation\n"
    "(reactive runs), duration, exit code and error.\n"
    "Without a broker: this user's live runs on private brokers (flowbus run or up\n"
    "without --broker); RUN alone then finds such a run, as set, logs, stop and pause do.\n"
    "\n"
    "Options:\n"
    "  --broker URL  the broker (default: $FLOWBUS_BROKER)\n"
    "  --json        print one JSON object instead of the tables\n"
    "  -h, --help    show this help\n"
    "\n"
    "Exit codes: 0 shown, 2 no such run, 4 broker unavailable.\n";

/* "3 done, 1 running, 2 pending", in a fixed order of states. */
static void task_counts(const struct run_view *rv, char *buf, size_t len)
{
    static const enum fb_state order[] = {
        FB_STATE_RUNNING, FB_STATE_WAITING, FB_STATE_PENDING, FB_STATE_DONE,   FB_STATE_FAILED,
        FB_STATE_TIMEOUT, FB_STATE_CRASHED, FB_STATE_SKIPPED, FB_STATE_DENIED, FB_STATE_STOPPED,
    };
    size_t counts[FB_STATE_COUNT], used = 0;
    enum fb_state seen[FB_STATE_COUNT];

    /* Every state a view holds is one of these: it keeps no state it does not know. */
    view__count_states(rv, counts, seen);
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof order / sizeof order[0] && used < len; i++)
        if (counts[order[i]])
            used += (size_t)snprintf(buf + used, len - used, "%s%zu %s", used ? ", " : "",
                                     counts[order[i]], fb_state_name(order[i]));
    if (!buf[0])
        snprintf(buf, len, "-");
}

static int print_json(json_t *out)
{
    if (!out) {
        log_printf(FB_LOG_ERROR, "out of memory");
        return FB_EXIT_BROKER;
    }
    json_dumpf(out, stdout, JSON_COMPACT);
    fputc('\n', stdout);
    json_decref(out);
    return FB_EXIT_OK;
}

static int status_all(struct session *s, const struct client_options *o)
{
    static const enum fb_topic_kind kinds[] = {FB_TOPIC_RUN_STATE, FB_TOPIC_WORKFLOW,
                                               FB_TOPIC_TASK_STATE};
    struct view *vw = view__new();
    struct run_view **list = NULL;
    json_t *rows = NULL;
    char started[32], dur[32], counts[512], name[48];
    double now;
    size_t n = 0;
    int code = FB_EXIT_BROKER;

    if (!vw || (code = session__snapshot(s, kinds, 3, vw, NULL, NULL)) != FB_EXIT_OK)
        goto out;
    list = view__list(vw, &n);
    if (!list) {
        log_printf(FB_LOG_ERROR, "out of memory");
        code = FB_EXIT_BROKER;
        goto out;
    }
    now = fb_clock_wall();
    if (o->json) {
        code = print_json(view__list_json(list, n, o->broker_url, now));
        goto out;
    }
    if (n == 0) {
        printf("no runs on %s\n", o->broker_url);
        goto out;
    }
    rows = json_pack("[[s,s,s,s,s,s]]", "RUN", "WORKFLOW", "STATE", "STARTED", "DURATION", "TASKS");
    for (size_t i = 0; i < n; i++) {
        const char *wf_name = list[i]->workflow;
        task_counts(list[i], counts, sizeof counts);
        /* Long names would push every other column off the screen. */
        snprintf(name, sizeof name, "%.40s%s", wf_name ? wf_name : "?",
                 wf_name && strlen(wf_name) > 40 ? "..." : "");
        format__local_time(started, sizeof started, view__started(list[i]));
        format__duration(dur, sizeof dur, view__duration(list[i], now));
        json_array_append_new(rows, json_pack("[s,s,s,s,s,s]", list[i]->run_id, name,
                                              view__shown_state(list[i]), started, dur, counts));
    }
    format__table(rows, "");
out:
    free(list);
    json_decref(rows);
    view__free(vw);
    return code;
}

/* One row of the task table. */
static json_t *task_row(const struct view_task *t, int reactive, double now)
{
    const struct task_report *r = &t->report;
    char attempt[24], dur[32], act[96], code_text[32];
    json_t *row;

    snprintf(attempt, sizeof attempt, "%d",
             r->has & TM_ATTEMPT && r->info.attempt > 0 ? r->info.attempt : 1);
    format__duration(dur, sizeof dur, view__task_duration(t, now));
    format__activation(t, act, sizeof act);
    format__exit(t, code_text, sizeof code_text);
    row = json_pack("[s,s,s]", t->key.name,
                    t->reported ? fb_state_name(r->info.state) : fb_state_name(FB_STATE_PENDING),
                    t->reported ? attempt : "-");
    if (reactive)
        json_array_append_new(row, json_string(act));
    json_array_append_new(row, json_string(dur));
    json_array_append_new(row, json_string(code_text));
    json_array_append_new(row, json_string(r->info.error ? r->info.error : ""));
    return row;
}

static int status_one(struct session *s, const struct client_options *o)
{
    static const enum fb_topic_kind kinds[] = {FB_TOPIC_RUN_STATE, FB_TOPIC_WORKFLOW,
                                               FB_TOPIC_CONTROL,   FB_TOPIC_TASK_STATE,
                                               FB_TOPIC_OWNER,     FB_TOPIC_TASK_PLACEMENT};
    struct view *vw = view__new();
    struct run_view *rv;
    json_t *rows = NULL;
    char started[32], dur[32], counts[512];
    double now;
    int code = FB_EXIT_BROKER, reactive;

    if (!vw || (code = session__snapshot(s, kinds, 6, vw, NULL, NULL)) != FB_EXIT_OK)
        goto out;
    if (!(rv = session__find_run(s, vw))) {
        code = FB_EXIT_INVALID;
        goto out;
    }
    now = fb_clock_wall();
    if (o->json) {
        code = print_json(view__run_json(rv, now));
        goto out;
    }
    reactive = view__reactive(rv);
    task_counts(rv, counts, sizeof counts);
    format__local_time(started, sizeof started, view__started(rv));
    format__duration(dur, sizeof dur, view__duration(rv, now));
    printf("Run:       %s\n", o->run_id);
    printf("Workflow:  %s%s%s%s\n", rv->workflow ? rv->workflow : "?", rv->path ? " (" : "",
           rv->path ? rv->path : "", rv->path ? ")" : "");
    printf("State:     %s", view__shown_state(rv));
    if (rv->has_exit)
        printf(" (exit %d)", rv->exit_code);
    if (rv->error)
        printf(": %s", rv->error);
    if (rv->state == FB_RUN_LOST)
        printf("\n           `flowbus resume %s` takes the run over", o->run_id);
    printf("\nStarted:   %s\nDuration:  %s\nTasks:     %s\n\n", started, dur, counts);
    rows = reactive ? json_pack("[[s,s,s,s,s,s,s]]", "TASK", "STATE", "ATTEMPT", "ACTIVATION",
                                "DURATION", "EXIT", "ERROR")
                    : json_pack("[[s,s,s,s,s,s]]", "TASK", "STATE", "ATTEMPT", "DURATION", "EXIT",
                                "ERROR");
    for (size_t i = 0; i < rv->n_tasks; i++)
        json_array_append_new(rows, task_row(&rv->tasks[i], reactive, now));
    /* A run with tasks placed on agents says where each ran (docs/distributed.md). */
    if (rv->placements && json_object_size(rv->placements)) {
        size_t i;
        json_t *row;
        json_array_foreach(rows, i, row)
        {
            const char *agent = NULL, *host = NULL;
            char where[320];
            if (i == 0) {
                json_array_insert_new(row, 2, json_string("HOST"));
                continue;
            }
            host = view__task_host(rv, rv->tasks[i - 1].key.name, &agent);
            if (agent)
                snprintf(where, sizeof where, "%s (agent %s)", host ? host : "?", agent);
            else
                snprintf(where, sizeof where, "%s", host ? host : "-");
            json_array_insert_new(row, 2, json_string(where));
        }
    }
    format__table(rows, "  ");
out:
    json_decref(rows);
    view__free(vw);
    return code;
}

int status__main(const struct client_options *o)
{
    const struct session_broker b = {o->broker_url, o->username, o->password};
    struct session s = {0};
    int code = session__check_url(o->broker_url) ? session__open(&s, &b, o->run_id, "client", 0)
                                                 : FB_EXIT_INVALID;

    if (code == FB_EXIT_OK)
        code = o->run_id ? status_one(&s, o) : status_all(&s, o);
    session__close(&s);
    return code;
}
