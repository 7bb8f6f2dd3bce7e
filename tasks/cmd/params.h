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
};

/*
 * Builds c (zeroed by the caller) from the task's params and inputs: the
 * environment is ours without FLOWBUS_PASSWORD, then the env param, then the
 * inputs. Unknown params get a warning on the task's log. Returns 0, or -1
 * with a one-line reason in err; c must be cleared with params__clear either
 * way.
 */
int params__read(fb_task *task, struct command *c, char *err, size_t errlen);

/* Sets name=value in c->envp, replacing an entry of the same name. Returns 0 or -1 (memory). */
int params__setenv(struct command *c, const char *name, const char *value);

/* Frees what c holds and zeroes it. */
void params__clear(struct command *c);

#endif
