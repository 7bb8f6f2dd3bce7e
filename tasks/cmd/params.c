/*
 * params.c - reads and checks the cmd task's params into the command to run
 * (see params.h): the argv from "command" or "argv", the environment from
 * ours, "env" and the inputs, and the working directory from "cwd".
 *
 * An input reaches the command in two ways: always as the file
 * $FLOWBUS_INPUTS_DIR/NAME (workdir.h), which holds any value up to the value
 * limit, and as the environment variable NAME when it may be one. Linux
 * limits one environment string to MAX_ARG_STRLEN (128 KiB, "NAME=value"
 * and its NUL) and all of argv and the environment together to a quarter of
 * the stack limit, below the 256 KiB a value may have; an input that does
 * not fit is left out of the environment with a warning on the task's log,
 * so the exec never fails with "Argument list too long". A reserved name
 * (fb_name_reserved: LD_PRELOAD, PATH, AUTH_TOKEN, ...) is never set from an
 * input, whatever the workflow or a publisher on the bus says.
 */
#include "params.h"
#include "workdir.h"

#include <flowbus/protocol.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

void params__clear(struct command *c)
{
    size_t i;

    for (i = 0; c->argv && c->argv[i]; i++)
        free(c->argv[i]);
    free(c->argv);
    for (i = 0; i < c->envc; i++)
        free(c->envp[i]);
    free(c->envp);
    free(c->cwd);
    memset(c, 0, sizeof *c);
}

/* Sets name=value in c->envp, replacing an entry of the same name. Returns 0 or -1 (memory). */
int params__setenv(struct command *c, const char *name, const char *value)
{
    size_t n = strlen(name), i;
    char *entry = malloc(n + strlen(value) + 2), **bigger;

    if (!entry)
        return -1;
    sprintf(entry, "%s=%s", name, value);
    for (i = 0; i < c->envc; i++) {
        if (strncmp(c->envp[i], name, n) == 0 && c->envp[i][n] == '=') {
            free(c->envp[i]);
            c->envp[i] = entry;
            return 0;
        }
    }
    bigger = realloc(c->envp, (c->envc + 2) * sizeof *bigger);
    if (!bigger) {
        free(entry);
        return -1;
    }
    c->envp = bigger;
    c->envp[c->envc++] = entry;
    c->envp[c->envc] = NULL;
    return 0;
}

/* Copies our environment without the broker password. Returns 0 or -1 (memory). */
static int env_inherit(struct command *c)
{
    size_t n = 0, i;

    while (environ && environ[n])
        n++;
    c->envp = calloc(n + 1, sizeof *c->envp);
    if (!c->envp)
        return -1;
    for (i = 0; i < n; i++) {
        if (strncmp(environ[i], "FLOWBUS_PASSWORD=", 17) == 0)
            continue;
        c->envp[c->envc] = strdup(environ[i]);
        if (!c->envp[c->envc])
            return -1;
        c->envc++;
    }
    return 0;
}

/* A JSON string's text, or NULL if it is not a string or holds a NUL byte. */
static const char *json_text(const json_t *v)
{
    const char *s = json_string_value(v);

    return s && strlen(s) == json_string_length(v) ? s : NULL;
}

/* Returns 1 if name can be an environment variable name: non-empty, no '='. */
static int valid_env_name(const char *name)
{
    return *name && !strchr(name, '=');
}

/*
 * Builds c from the task's params and inputs. Returns 0, or -1 with a
 * one-line reason in err.
 */
int params__read(fb_task *task, struct command *c, char *err, size_t errlen)
{
    json_t *params, *command, *args, *env, *cwd, *v;
    json_error_t jerr;
    const char *key;
    size_t i;
    int rc = -1;

    params = json_loads(fb_task_params_json(task), 0, &jerr);
    if (!json_is_object(params)) {
        snprintf(err, errlen, "the task's params are not a JSON object: %s", jerr.text);
        goto out;
    }
    json_object_foreach(params, key, v)
    {
        if (strcmp(key, "command") != 0 && strcmp(key, "argv") != 0 && strcmp(key, "env") != 0 &&
            strcmp(key, "cwd") != 0)
            fb_task_log(task, "warning: unknown param '%s' ignored (known: %s)", key,
                        "command, argv, env, cwd");
    }
    command = json_object_get(params, "command");
    args = json_object_get(params, "argv");
    env = json_object_get(params, "env");
    cwd = json_object_get(params, "cwd");

    if (command && args) {
        snprintf(err, errlen, "params 'command' and 'argv' are both set; give one of them");
        goto out;
    }
    if (command) {
        if (!json_text(command) || !*json_text(command)) {
            snprintf(err, errlen, "param 'command' must be a non-empty string");
            goto out;
        }
        c->argv = calloc(4, sizeof *c->argv);
        if (!c->argv)
            goto nomem;
        c->argv[0] = strdup("/bin/sh");
        c->argv[1] = strdup("-c");
        c->argv[2] = strdup(json_text(command));
        if (!c->argv[0] || !c->argv[1] || !c->argv[2])
            goto nomem;
    } else if (args) {
        if (!json_is_array(args) || json_array_size(args) == 0) {
            snprintf(err, errlen, "param 'argv' must be a non-empty list of strings");
            goto out;
        }
        c->argv = calloc(json_array_size(args) + 1, sizeof *c->argv);
        if (!c->argv)
            goto nomem;
        json_array_foreach(args, i, v)
        {
            if (!json_text(v)) {
                snprintf(err, errlen, "param 'argv' item %zu must be a string (without NUL)", i);
                goto out;
            }
            c->argv[i] = strdup(json_text(v));
            if (!c->argv[i])
                goto nomem;
        }
        if (!*c->argv[0]) {
            snprintf(err, errlen, "param 'argv' item 0 (the program) is empty");
            goto out;
        }
    } else {
        snprintf(err, errlen, "param 'command' (a shell command) or 'argv' (a list) is required");
        goto out;
    }

    if (env_inherit(c) != 0)
        goto nomem;
    if (env && !json_is_object(env)) {
        snprintf(err, errlen, "param 'env' must be a mapping of variable names to values");
        goto out;
    }
    json_object_foreach(env, key, v)
    {
        char number[64];
        const char *text = NULL;

        if (json_is_string(v))
            text = json_text(v);
        else if (json_is_integer(v))
            snprintf(number, sizeof number, "%" JSON_INTEGER_FORMAT, json_integer_value(v)),
                text = number;
        else if (json_is_real(v))
            snprintf(number, sizeof number, "%.17g", json_real_value(v)), text = number;
        else if (json_is_boolean(v))
            text = json_is_true(v) ? "true" : "false";
        if (!valid_env_name(key) || !text) {
            snprintf(err, errlen,
                     "param 'env': '%s' must be a variable name with a string, number or "
                     "boolean value",
                     key);
            goto out;
        }
        if (params__setenv(c, key, text) != 0)
            goto nomem;
    }
    if (cwd) {
        struct stat st;

        if (!json_text(cwd) || !*json_text(cwd)) {
            snprintf(err, errlen, "param 'cwd' must be a non-empty string");
            goto out;
        }
        if (stat(json_text(cwd), &st) != 0) {
            snprintf(err, errlen, "param 'cwd' is '%s': %s", json_text(cwd), strerror(errno));
            goto out;
        }
        if (!S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "param 'cwd' is '%s': not a directory", json_text(cwd));
            goto out;
        }
        c->cwd = strdup(json_text(cwd));
        if (!c->cwd)
            goto nomem;
    }
    rc = 0;
    goto out;
nomem:
    snprintf(err, errlen, "out of memory");
out:
    json_decref(params);
    return rc;
}

/* Linux's MAX_ARG_STRLEN: the most bytes one environment string may have, its NUL included. */
#define ENV_STRING_MAX (32 * 4096)

/* Removes name from c->envp if it is there. */
static void unsetenv_entry(struct command *c, const char *name)
{
    size_t n = strlen(name), i;

    for (i = 0; i < c->envc; i++) {
        if (strncmp(c->envp[i], name, n) == 0 && c->envp[i][n] == '=') {
            free(c->envp[i]);
            memmove(&c->envp[i], &c->envp[i + 1], (c->envc - i) * sizeof *c->envp);
            c->envc--;
            return;
        }
    }
}

/*
 * 1 if name is a secret input: listed in FLOWBUS_SECRETS (docs/protocol.md),
 * the inputs the coordinator put in our environment rather than on the bus.
 */
static int is_secret(const char *name)
{
    const char *list = getenv("FLOWBUS_SECRETS"), *p = list;
    size_t n = strlen(name);

    while (p && *p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);

        if (len == n && strncmp(p, name, n) == 0)
            return 1;
        p = comma ? comma + 1 : NULL;
    }
    return 0;
}

/* What exec counts for argv and the environment: each string, its NUL and its pointer. */
static size_t exec_size(const struct command *c)
{
    size_t total = 0, i;

    for (i = 0; c->argv && c->argv[i]; i++)
        total += strlen(c->argv[i]) + 1 + sizeof(char *);
    for (i = 0; i < c->envc; i++)
        total += strlen(c->envp[i]) + 1 + sizeof(char *);
    return total;
}

/* The input's value in c's environment, or NULL if it is not there. */
static const char *env_value(const struct command *c, const char *name)
{
    size_t n = strlen(name), i;

    for (i = 0; i < c->envc; i++)
        if (strncmp(c->envp[i], name, n) == 0 && c->envp[i][n] == '=')
            return c->envp[i] + n + 1;
    return NULL;
}

/*
 * While argv and the environment are over what exec takes, leaves the largest
 * input out of the environment (its file stays).
 */
static void fit_exec_limit(fb_task *task, struct command *c)
{
    long arg_max = sysconf(_SC_ARG_MAX);
    /* Headroom for what the command's own children add (a shell exports a few variables). */
    size_t budget = arg_max > 65536 ? (size_t)arg_max - 16384 : 49152;

    while (exec_size(c) > budget) {
        const char *largest = NULL;
        size_t largest_len = 0, i;

        for (i = 0; i < fb_task_input_count(task); i++) {
            const char *name = fb_task_input_name(task, i), *v;

            /* A secret is in the environment only: it stays, whatever its size. */
            if (!fb_task_input(task, name) || is_secret(name) || !(v = env_value(c, name)))
                continue;
            if (!largest || strlen(v) > largest_len)
                largest = name, largest_len = strlen(v);
        }
        if (!largest)
            return; /* only the inherited environment is left: exec will say */
        fb_task_log(task,
                    "warning: input %s (%zu bytes) is left out of the command's environment: "
                    "with it, the environment is over what exec takes (%ld bytes); read it from "
                    "$FLOWBUS_INPUTS_DIR/%s",
                    largest, largest_len, arg_max, largest);
        unsetenv_entry(c, largest);
    }
}

int params__add_inputs(fb_task *task, struct command *c, const struct workdir *w, char *err,
                       size_t errlen)
{
    size_t i;

    for (i = 0; i < fb_task_input_count(task); i++) {
        const char *name = fb_task_input_name(task, i);
        const char *value = fb_task_input(task, name), *why;

        if (value && !c->newline_input && strchr(value, '\n'))
            c->newline_input = name;
        /* A secret input is already in our environment (inherited), and stays off disk. */
        if (!value || is_secret(name))
            continue;
        if (workdir__write_input(w, name, value, strlen(value), err, errlen) != 0)
            return -1;
        if ((why = fb_name_reserved(name)) != NULL) {
            fb_task_log(task,
                        "warning: input %s is not put in the command's environment: the name is "
                        "reserved (it %s); read it from $FLOWBUS_INPUTS_DIR/%s",
                        name, why, name);
            continue;
        }
        if (strlen(name) + strlen(value) + 2 > ENV_STRING_MAX) {
            fb_task_log(task,
                        "warning: input %s (%zu bytes) is left out of the command's environment, "
                        "which holds at most %d bytes per variable; read it from "
                        "$FLOWBUS_INPUTS_DIR/%s",
                        name, strlen(value), ENV_STRING_MAX - 1, name);
            continue;
        }
        /* Inputs last: they are the task's declared interface and win over env. */
        if (params__setenv(c, name, value) != 0)
            goto nomem;
    }
    if (params__setenv(c, "FLOWBUS_INPUTS_DIR", w->inputs) != 0 ||
        params__setenv(c, "FLOWBUS_OUTPUT", w->output) != 0)
        goto nomem;
    fit_exec_limit(task, c);
    return 0;
nomem:
    snprintf(err, errlen, "out of memory");
    return -1;
}
