/*
 * display.c - rendering a run for people and machines (see display.h).
 *
 * On a terminal the task table is redrawn in place: the cursor moves up over
 * the last table, log lines that arrived since are printed, then the table
 * again, at most every 50 ms so a busy run does not flood the terminal.
 * Times shown are relative to the start of the run.
 */
#include "display.h"
#include <flowbus/flowbus.h>
#include "graph.h"
#include "tracker.h"
#include "workflow.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <time.h>

struct display {
    enum display_mode mode;
    const struct workflow *wf;
    const struct graph *g;
    const struct tracker *tr;
    const char *run_id;
    FILE *out;
    double t0;
    int width; /* of the task name column */
    int drawn; /* table lines on screen (tty) */
    int dirty;
    double last_draw;
    int quiet; /* display__quiet */
};

static const char *color(enum fb_state s)
{
    switch (s) {
    case FB_STATE_RUNNING:
        return "\033[36m";
    case FB_STATE_DONE:
        return "\033[32m";
    case FB_STATE_SKIPPED:
        return "\033[33m";
    case FB_STATE_WAITING:
    case FB_STATE_PENDING:
        return "\033[2m";
    default:
        return "\033[31m";
    }
}

struct display *display__new(enum display_mode mode, const struct workflow *wf,
                             const struct graph *g, const struct tracker *tr, const char *run_id,
                             FILE *out)
{
    struct display *d = calloc(1, sizeof *d);

    if (!d)
        return NULL;
    d->mode = mode;
    d->wf = wf;
    d->g = g;
    d->tr = tr;
    d->run_id = run_id;
    d->out = out;
    d->t0 = fb_clock_wall();
    d->width = 4;
    for (size_t t = 0; t < wf->n_tasks; t++)
        if ((int)strlen(wf->tasks[t].name) > d->width)
            d->width = (int)strlen(wf->tasks[t].name);
    if (d->width > 32)
        d->width = 32;
    return d;
}

void display__free(struct display *d)
{
    free(d);
}

void display__quiet(struct display *d)
{
    d->quiet = 1;
}

static void erase_table(struct display *d)
{
    if (d->mode == DISPLAY_TTY && d->drawn > 0) {
        fprintf(d->out, "\033[%dA\033[J", d->drawn);
        d->drawn = 0;
    }
}

static void emit_json(struct display *d, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    if (s) {
        fprintf(d->out, "%s\n", s);
        free(s);
    }
    json_decref(o);
    fflush(d->out);
}

void display__note(struct display *d, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (d->mode == DISPLAY_JSON) {
        emit_json(d, json_pack("{s:s, s:s, s:f}", "event", "note", "text", buf, "at", fb_clock_wall()));
        return;
    }
    erase_table(d);
    fprintf(d->out, "%s\n", buf);
    d->dirty = 1;
    fflush(d->out);
}

static void duration(char *buf, size_t len, const struct task_info *ti)
{
    double end = ti->ended > 0 ? ti->ended : fb_clock_wall();
    if (ti->started <= 0)
        snprintf(buf, len, "-");
    else if (end - ti->started < 10)
        snprintf(buf, len, "%.3fs", end - ti->started);
    else
        snprintf(buf, len, "%.1fs", end - ti->started);
}

void display__task(struct display *d, size_t t)
{
    const struct task_info *ti = tracker__task(d->tr, t);
    const char *name = d->wf->tasks[t].name;
    char dur[32];

    if (d->quiet)
        return;
    if (d->mode == DISPLAY_JSON) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:f, s:i}", "event", "task", "task", name, "state",
                              fb_state_name(ti->state), "at", ti->at, "attempt",
                              ti->attempt > 0 ? ti->attempt : 1);
        if (ti->pid > 0)
            json_object_set_new(o, "pid", json_integer(ti->pid));
        if (ti->started > 0)
            json_object_set_new(o, "started", json_real(ti->started));
        if (ti->has_exit)
            json_object_set_new(o, "exit", json_integer(ti->exit_code));
        if (ti->signal)
            json_object_set_new(o, "signal", json_integer(ti->signal));
        if (ti->error)
            json_object_set_new(o, "error", json_string(ti->error));
        if (d->wf->reactive) {
            json_object_set_new(o, "activation", json_integer((json_int_t)ti->activation));
            if (ti->result[0])
                json_object_set_new(o, "result", json_string(ti->result));
            if (ti->dropped)
                json_object_set_new(o, "dropped", json_integer(ti->dropped));
        }
        emit_json(d, o);
        return;
    }
    if (d->mode == DISPLAY_TTY) {
        d->dirty = 1;
        return;
    }
    duration(dur, sizeof dur, ti);
    if (d->wf->reactive && !fb_state_is_final(ti->state)) {
        /* An activation started, or ended (back to waiting with its result). */
        if (ti->state == FB_STATE_RUNNING)
            fprintf(d->out, "%8.3fs  %-*s  %s  #%lu\n", fb_clock_wall() - d->t0, d->width, name,
                    fb_state_name(FB_STATE_RUNNING), ti->activation);
        else if (ti->result[0])
            fprintf(d->out, "%8.3fs  %-*s  %-8s #%lu  %s%s%s%s\n", fb_clock_wall() - d->t0, d->width,
                    name, ti->result, ti->activation, dur, ti->error ? "  " : "",
                    ti->error ? ti->error : "", ti->dropped ? "  (events dropped)" : "");
        else if (ti->activation == 0)
            fprintf(d->out, "%8.3fs  %-*s  %s\n", fb_clock_wall() - d->t0, d->width, name,
                    fb_state_name(FB_STATE_WAITING));
        else
            fprintf(d->out, "%8.3fs  %-*s  emitted  #%lu\n", fb_clock_wall() - d->t0, d->width, name,
                    ti->activation);
        fflush(d->out);
        return;
    }
    fprintf(d->out, "%8.3fs  %-*s  %-8s", fb_clock_wall() - d->t0, d->width, name,
            fb_state_name(ti->state));
    if (ti->attempt > 1)
        fprintf(d->out, "  attempt %d", ti->attempt);
    if (fb_state_is_final(ti->state) && ti->started > 0)
        fprintf(d->out, "  %s", dur);
    if (ti->error && fb_state_is_final(ti->state))
        fprintf(d->out, "  %s", ti->error);
    fputc('\n', d->out);
    fflush(d->out);
}

void display__log(struct display *d, size_t t, const char *line)
{
    if (d->quiet)
        return;
    if (d->mode == DISPLAY_JSON) {
        emit_json(d, json_pack("{s:s, s:s, s:s, s:f}", "event", "log", "task",
                               d->wf->tasks[t].name, "line", line, "at", fb_clock_wall()));
        return;
    }
    erase_table(d);
    fprintf(d->out, "[%s] %s\n", d->wf->tasks[t].name, line);
    d->dirty = 1;
    if (d->mode != DISPLAY_TTY)
        fflush(d->out);
}

void display__var(struct display *d, size_t v)
{
    if (d->mode != DISPLAY_JSON || d->quiet)
        return;
    emit_json(d, json_pack("{s:s, s:s, s:s, s:f}", "event", "var", "name", graph__var_name(d->g, v),
                           "value", tracker__var_value(d->tr, v), "at", fb_clock_wall()));
}

int display__next_ms(const struct display *d)
{
    if (d->mode != DISPLAY_TTY || d->quiet)
        return -1;
    /* Redraw soon when something changed, and every 200 ms so the durations of
     * running tasks keep counting. */
    return d->dirty ? 50 : 200;
}

/* The terminal's width in columns (80 when it cannot be known). */
static int terminal_columns(FILE *out)
{
    struct winsize ws;

    if (ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 80;
}

/* How many bytes of s fit in cols columns, cut at a UTF-8 character boundary. */
static int fitting_bytes(const char *s, int cols)
{
    int n = 0, shown = 0;

    while (s[n] && shown < cols) {
        n++;
        while (((unsigned char)s[n] & 0xC0) == 0x80)
            n++;
        shown++;
    }
    return n;
}

void display__refresh(struct display *d, int force)
{
    double now = fb_clock_wall();
    char dur[32];
    /*
     * A table line that wraps would break the redraw, which moves the cursor
     * up by one line per task: every line is cut to the terminal's width
     * (name, state and duration take d->width + 22 columns, "  " before the
     * reason, and one column spare for terminals that wrap at the margin).
     */
    int room = terminal_columns(d->out) - (d->width + 22) - 3;

    if (d->mode != DISPLAY_TTY || d->quiet || (!force && now - d->last_draw < (d->dirty ? 0.05 : 0.2)))
        return;
    erase_table(d);
    for (size_t t = 0; t < d->wf->n_tasks; t++) {
        const struct task_info *ti = tracker__task(d->tr, t);
        duration(dur, sizeof dur, ti);
        if (d->wf->reactive)
            snprintf(dur, sizeof dur, "#%lu", ti->activation);
        fprintf(d->out, "  %-*.*s  %s%-8s\033[0m  %8s", d->width, d->width,
                d->wf->tasks[t].name, color(ti->state), fb_state_name(ti->state), dur);
        if (ti->error && fb_state_is_final(ti->state) && room > 0) {
            int n = fitting_bytes(ti->error, room);
            if (ti->error[n] && n > 0)
                fprintf(d->out, "  %.*s\u2026", fitting_bytes(ti->error, room - 1), ti->error);
            else
                fprintf(d->out, "  %s", ti->error);
        }
        fputc('\n', d->out);
        d->drawn++;
    }
    fflush(d->out);
    d->dirty = 0;
    d->last_draw = now;
}

/* The outputs a task declared that have a value, as "A=1 B=x", cut to fit. */
static void outputs_text(struct display *d, size_t t, char *buf, size_t len)
{
    const struct wf_task *task = &d->wf->tasks[t];
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < task->outputs.n && used + 1 < len; i++) {
        long v = graph__var_index(d->g, task->outputs.items[i].name);
        const char *val = v >= 0 ? tracker__var_value(d->tr, (size_t)v) : NULL;
        int n;
        if (!val)
            continue;
        n = snprintf(buf + used, len - used, "%s%s=%.*s%s", used ? " " : "",
                     task->outputs.items[i].name, 40, val, strlen(val) > 40 ? "..." : "");
        if (n < 0)
            break;
        used += (size_t)n;
    }
    if (used >= len)
        strcpy(buf + len - 4, "...");
}

void display__summary(struct display *d, const char *state, int code, double seconds)
{
    char dur[32], outs[256];

    if (d->mode == DISPLAY_JSON) {
        json_t *tasks = json_object();
        for (size_t t = 0; t < d->wf->n_tasks; t++) {
            const struct task_info *ti = tracker__task(d->tr, t);
            json_t *o = json_pack("{s:s}", "state", fb_state_name(ti->state));
            if (ti->started > 0 && ti->ended > 0)
                json_object_set_new(o, "duration", json_real(ti->ended - ti->started));
            if (ti->error)
                json_object_set_new(o, "error", json_string(ti->error));
            json_object_set_new(tasks, d->wf->tasks[t].name, o);
        }
        emit_json(d, json_pack("{s:s, s:s, s:s, s:i, s:f, s:o}", "event", "run", "run_id",
                               d->run_id, "state", state, "exit", code, "seconds", seconds,
                               "tasks", tasks));
        return;
    }
    /* The summary replaces the live table. */
    erase_table(d);
    fprintf(d->out, "\nRun %s: %s in %.3f s (exit %d)\n", d->run_id, state, seconds, code);
    if (d->wf->reactive)
        fprintf(d->out, "  %-*s  %-8s  %11s  %s\n", d->width, "TASK", "STATE", "ACTIVATIONS",
                "LAST OUTPUTS / REASON");
    else
        fprintf(d->out, "  %-*s  %-8s  %9s  %s\n", d->width, "TASK", "STATE", "DURATION",
                "OUTPUTS / REASON");
    for (size_t t = 0; t < d->wf->n_tasks; t++) {
        const struct task_info *ti = tracker__task(d->tr, t);
        duration(dur, sizeof dur, ti);
        outputs_text(d, t, outs, sizeof outs);
        if (d->wf->reactive) {
            char count[32];
            snprintf(count, sizeof count, "%lu", ti->activation);
            fprintf(d->out, "  %-*s  %-8s  %11s  %s\n", d->width, d->wf->tasks[t].name,
                    fb_state_name(ti->state), count,
                    ti->error && ti->state != FB_STATE_STOPPED ? ti->error : outs);
            continue;
        }
        fprintf(d->out, "  %-*s  %-8s  %9s  %s\n", d->width, d->wf->tasks[t].name,
                fb_state_name(ti->state), dur,
                ti->state == FB_STATE_DONE ? (outs[0] ? outs : "") : (ti->error ? ti->error : ""));
    }
    fflush(d->out);
}
