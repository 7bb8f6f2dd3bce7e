/*
 * logs.c - `flowbus logs RUN [-f] [--task TASK]`: a run's error lines, or its
 * live log and states (see commands.h).
 *
 * Log lines are not retained (a broker would keep only the last one), so
 * without -f this shows what the retained states say went wrong: each task's
 * error. With -f it prints where each task is now, in the order they got
 * there, and then follows the run: every log line and every state change as
 * `flowbus run` prints them when piped, until the run's state is final.
 */
#include "commands.h"
#include "format.h"
#include "log.h"
#include "session.h"
#include "suggest.h"
#include "view.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char logs__usage[] =
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

struct follow {
    const struct client_options *o;
    double t0;      /* the run's start: state lines show seconds since */
    int width;      /* of the task column */
    json_t *seen;   /* task -> "state/attempt/activation/result" last printed */
    char shown[64]; /* the run state last printed */
};

static int selected(const struct follow *f, const char *task)
{
    return !f->o->task || strcmp(f->o->task, task) == 0;
}

/* A member of the report as a number, or -1 when it is absent (as the line key writes it). */
static double number(const struct task_report *r, unsigned bit, double value)
{
    return r->has & bit ? value : -1;
}

/* One line per task state change, as `flowbus run` prints them when piped. */
static void print_state(struct follow *f, const struct view_task *t)
{
    const struct task_report *r = &t->report;
    const char *task = t->key.name, *state = fb_state_name(r->info.state), *err = r->info.error;
    const char *result = r->has & TM_RESULT ? r->info.result : NULL;
    double at = number(r, TM_AT, r->info.at), attempt = number(r, TM_ATTEMPT, r->info.attempt);
    double act = number(r, TM_ACTIVATION, (double)r->info.activation);
    char key[128], dur[32], line[1024];
    size_t used;

    if (!t->reported)
        return;
    snprintf(key, sizeof key, "%s/%.0f/%.0f/%s", state, attempt, act, result ? result : "");
    if (json_string_value(json_object_get(f->seen, task)) &&
        strcmp(json_string_value(json_object_get(f->seen, task)), key) == 0)
        return; /* a repeat: a retained state delivered again after a reconnect */
    json_object_set_new(f->seen, task, json_string(key));
    used = (size_t)snprintf(line, sizeof line, "%8.3fs  %-*s  %-8s",
                            (at > 0 ? at : fb_clock_wall()) - f->t0, f->width, task, state);
    if (attempt > 1 && used < sizeof line)
        used += (size_t)snprintf(line + used, sizeof line - used, "  attempt %.0f", attempt);
    if (act >= 0 && used < sizeof line)
        used += (size_t)snprintf(line + used, sizeof line - used, "  activation %.0f%s%s", act,
                                 result ? " " : "", result ? result : "");
    if (fb_state_is_final(r->info.state) && r->has & TM_STARTED && r->info.started > 0 &&
        used < sizeof line) {
        format__duration(dur, sizeof dur, view__task_duration(t, fb_clock_wall()));
        used += (size_t)snprintf(line + used, sizeof line - used, "  %s", dur);
    }
    if (err && (fb_state_is_final(r->info.state) || result) && used < sizeof line)
        used += (size_t)snprintf(line + used, sizeof line - used, "  %s", err);
    used = used < sizeof line ? used : sizeof line - 1;
    while (used > 0 && line[used - 1] == ' ')
        line[--used] = '\0';
    puts(line);
    fflush(stdout);
}

/* Prints the run's state when it changed; returns 0 once it is final. */
static int print_run(struct follow *f, const struct run_view *rv)
{
    const char *state = view__shown_state(rv);

    if (!rv->has_record || strcmp(f->shown, state) == 0)
        return SESSION_KEEP_WATCHING;
    snprintf(f->shown, sizeof f->shown, "%s", state);
    printf("Run %s: %s", f->o->run_id, state);
    if (rv->has_exit)
        printf(" (exit %d)", rv->exit_code);
    if (rv->state == FB_RUN_LOST)
        printf(": its coordinator's connection was lost; tasks may carry on, and "
               "`flowbus resume %s` takes the run over",
               f->o->run_id);
    fputc('\n', stdout);
    fflush(stdout);
    return fb_run_state_is_final(rv->state) ? FB_EXIT_OK : SESSION_KEEP_WATCHING;
}

static int follow_cb(void *ctx, struct view *vw, const fb_msg *m, enum view_change c,
                     const struct view_event *ev)
{
    struct follow *f = ctx;
    const struct run_view *rv = ev->run;

    (void)vw;
    if (!rv || strcmp(rv->run_id, f->o->run_id) != 0)
        return SESSION_KEEP_WATCHING;
    if (c == VIEW_LOG && selected(f, ev->task) && m->len) {
        printf("[%s] %s\n", ev->task, m->payload);
        fflush(stdout);
    } else if (c == VIEW_TASK && selected(f, ev->task)) {
        const struct view_task *t = view__task(rv, ev->task);
        if (t && t->reported)
            print_state(f, t);
    } else if (c == VIEW_RUN) {
        return print_run(f, rv);
    }
    return SESSION_KEEP_WATCHING;
}

struct when {
    double at;
    const struct view_task *task;
};

static int by_time(const void *a, const void *b)
{
    const struct when *x = a, *y = b;
    return x->at < y->at ? -1 : x->at > y->at;
}

/* Without -f: the error line of each task that has one. */
static void print_errors(const struct follow *f, const struct run_view *rv)
{
    for (size_t i = 0; i < rv->n_tasks; i++) {
        const struct view_task *t = &rv->tasks[i];
        char exit_buf[32];
        if (!selected(f, t->key.name) || !t->reported || !t->report.info.error)
            continue;
        format__exit(t, exit_buf, sizeof exit_buf);
        printf("[%s] %s%s%s%s: %s\n", t->key.name, fb_state_name(t->report.info.state),
               strcmp(exit_buf, "-") == 0            ? ""
               : isdigit((unsigned char)exit_buf[0]) ? " (exit "
                                                     : " (",
               strcmp(exit_buf, "-") ? exit_buf : "", strcmp(exit_buf, "-") ? ")" : "",
               t->report.info.error);
    }
    log_printf(FB_LOG_INFO,
               "log lines are not kept on the broker; `flowbus logs %s -f` "
               "follows them live",
               f->o->run_id);
}

/* Whether the run has task o->task; says so, with a hint, when it has not. */
static int has_task(const struct client_options *o, const struct run_view *rv)
{
    const char **names = calloc(rv->n_tasks + 1, sizeof *names);
    char hint[512];

    if (view__task(rv, o->task)) {
        free(names);
        return 1;
    }
    for (size_t i = 0; names && i < rv->n_tasks; i++)
        names[i] = rv->tasks[i].key.name;
    suggest__hint(hint, sizeof hint, o->task, names, names ? rv->n_tasks : 0);
    log_printf(FB_LOG_ERROR, "run '%s' has no task '%s'%s", o->run_id, o->task, hint);
    free(names);
    return 0;
}

/* With -f: where each task is now, in the order they got there, then the run live. */
static int follow_run(struct session *s, struct view *vw, struct run_view *rv, struct follow *f,
                      const struct session_msgs *live)
{
    struct when *order = calloc(rv->n_tasks + 1, sizeof *order);
    size_t n_order = 0;
    int code;

    if (!order) {
        log_printf(FB_LOG_ERROR, "out of memory");
        return FB_EXIT_BROKER;
    }
    f->t0 = view__started(rv) > 0 ? view__started(rv) : fb_clock_wall();
    printf("Following run %s (%s, %s) on %s\n", f->o->run_id, rv->workflow ? rv->workflow : "?",
           view__shown_state(rv), f->o->broker_url);
    if (!fb_run_state_is_final(rv->state))
        snprintf(f->shown, sizeof f->shown, "%s", view__shown_state(rv));
    for (size_t i = 0; i < rv->n_tasks; i++) {
        const struct view_task *t = &rv->tasks[i];
        if (t->reported && selected(f, t->key.name))
            order[n_order++] = (struct when){t->report.has & TM_AT ? t->report.info.at : -1, t};
    }
    qsort(order, n_order, sizeof *order, by_time);
    for (size_t i = 0; i < n_order; i++)
        print_state(f, order[i].task);
    free(order);
    /* The live messages that came with the snapshot, then the run as it goes. */
    code = print_run(f, rv);
    for (size_t i = 0; i < live->n && code == SESSION_KEEP_WATCHING; i++)
        code = session__dispatch(vw, live->v[i], follow_cb, f);
    if (code == SESSION_KEEP_WATCHING)
        code = session__watch(s, vw, 0, follow_cb, f);
    return code;
}

int logs__main(const struct client_options *o)
{
    static const enum fb_topic_kind kinds[] = {FB_TOPIC_RUN_STATE, FB_TOPIC_WORKFLOW,
                                               FB_TOPIC_TASK_STATE, FB_TOPIC_TASK_LOG};
    const struct session_broker b = {o->broker_url, o->username, o->password};
    struct session s = {0};
    struct session_msgs live = {0};
    struct follow f = {0};
    struct view *vw = view__new();
    struct run_view *rv;
    int code = FB_EXIT_INVALID;

    f.o = o;
    f.seen = json_object();
    if (!vw || !f.seen) {
        log_printf(FB_LOG_ERROR, "out of memory");
        code = FB_EXIT_BROKER;
        goto out;
    }
    if (!session__check_url(o->broker_url))
        goto out;
    if ((code = session__open(&s, &b, o->run_id, "client", o->follow)) != FB_EXIT_OK ||
        (code = session__snapshot(&s, kinds, o->follow ? 4 : 3, vw, session__keep, &live)) !=
            FB_EXIT_OK)
        goto out;
    code = FB_EXIT_INVALID;
    if (!(rv = session__find_run(&s, vw)))
        goto out;
    for (size_t i = 0; i < rv->n_tasks; i++)
        if ((int)strlen(rv->tasks[i].key.name) > f.width)
            f.width = (int)strlen(rv->tasks[i].key.name);
    if (o->task && !has_task(o, rv))
        goto out;
    if (!o->follow) {
        print_errors(&f, rv);
        code = FB_EXIT_OK;
        goto out;
    }
    code = follow_run(&s, vw, rv, &f, &live);
out:
    json_decref(f.seen);
    session__msgs_free(&live);
    view__free(vw);
    session__close(&s);
    return code;
}
