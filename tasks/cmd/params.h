/*
 * params.h - the cmd task's params (command or argv, env, cwd) and its
 * inputs, read and checked into what to run: an argv, an environment and a
 * working directory. See main.c for what each param means.
 */
#ifndef FLOWBUS_TASKS_CMD_PARAMS_H
#define FLOWBUS_TASKS_CMD_PARAMS_H

#include <flowbus/flowbus.h>

#include <stddef.h>

/* What to run. Every string is owned. */
struct command {
    char **argv; /* NULL-terminated */
    char **envp; /* NULL-terminated */
    size_t envc;
    char *cwd; /* NULL: inherit */
    const char *newline_input; /* the first input whose value has a newline (the task's), or NULL */
};

struct workdir;

/*
 * Builds c (zeroed by the caller) from the task's params: the environment is
 * ours without FLOWBUS_PASSWORD, then the env param. Unknown params get a warning on the task's log. Returns 0, or -1
 * with a one-line reason in err; c must be cleared with params__clear either
 * way.
 */
int params__read(fb_task *task, struct command *c, char *err, size_t errlen);

/*
 * Adds the task's current inputs to c: each as the file inputs/NAME of w,
 * and as the environment variable NAME unless the name is reserved or the
 * value does not fit in the environment (a warning on the task's log says
 * so); then FLOWBUS_INPUTS_DIR and FLOWBUS_OUTPUT. Notes in c->newline_input
 * the first input (secret ones included) whose value holds a newline.
 * Returns 0, or -1 with a one-line reason in err.
 */
int params__add_inputs(fb_task *task, struct command *c, const struct workdir *w, char *err,
                       size_t errlen);

/* Sets name=value in c->envp, replacing an entry of the same name. Returns 0 or -1 (memory). */
int params__setenv(struct command *c, const char *name, const char *value);

/* Frees what c holds and zeroes it. */
void params__clear(struct command *c);

#endif
