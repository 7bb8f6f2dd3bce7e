/*
 * display.h - what `flowbus run` shows while a run goes on and when it ends.
 *
 * Three renderings of the same events: on a terminal, a live table of tasks
 * with log lines scrolling above it; when piped, one plain line per state
 * change or log line; with --json, one JSON object per line for machines.
 */
#ifndef FLOWBUS_CORE_DISPLAY_H
#define FLOWBUS_CORE_DISPLAY_H

#include <stdio.h>

struct workflow;
struct graph;
struct tracker;

enum display_mode { DISPLAY_TTY, DISPLAY_LINES, DISPLAY_JSON };

struct display;

struct display *display__new(enum display_mode mode, const struct workflow *wf,
                             const struct graph *g, const struct tracker *tr, const char *run_id,
                             FILE *out);
void display__free(struct display *d);

/*
 * `-q`: from now on d shows only run-level notes (the header, a stop, a broker
 * restart) and the final summary; no live table, state lines, task log lines
 * or variable events. Warnings and errors of flowbus itself go to stderr as
 * always.
 */
void display__quiet(struct display *d);

/* A run-level line (broker started, run started...). */
void display__note(struct display *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Task t changed state (as the tracker now says). */
void display__task(struct display *d, size_t t);
/* A log line of task t. */
void display__log(struct display *d, size_t t, const char *line);
/* Variable v got its value. */
void display__var(struct display *d, size_t v);
/* Redraws the terminal table if something changed (rate-limited). */
void display__refresh(struct display *d, int force);
/* Milliseconds until the display wants a refresh, or -1 if it never does. */
int display__next_ms(const struct display *d);
/* The final summary; state is the run state name, code the exit code. */
void display__summary(struct display *d, const char *state, int code, double seconds);

#endif
