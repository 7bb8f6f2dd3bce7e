/*
 * task_env.c - reads a task's FLOWBUS_* environment into struct task_env
 * (see task_env.h for what each variable means and its bounds).
 *
 * Each reader takes one group of variables, in the order of the struct, and
 * stops at the first wrong value with a message that names the variable,
 * quotes what it holds and says what was expected: the message is what a
 * plugin prints when it was started by hand or by a coordinator of another
 * version. Names are checked with fb_name_valid (flowbus/protocol.h), the
 * same rule the workflow loader applies.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "task_env.h"

/* The name rules, in the shape names__split takes. */
static int var_name(const char *s, size_t len)
{
    return fb_name_valid(FB_NAME_VAR, s, len);
}

static int task_name(const char *s, size_t len)
{
    return fb_name_valid(FB_NAME_TASK, s, len);
}

static struct task_env_input *find_input(const struct task_env *env, const char *name)
{
    size_t i;

    for (i = 0; i < env->n_inputs; i++)
        if (strcmp(env->inputs[i].name, name) == 0)
            return &env->inputs[i];
    return NULL;
}

/* Splits the list in variable env_name; the message names the variable. */
static enum fb_err split_names(const char *env_name, names__valid_fn valid, char ***out,
                               size_t *count, char *errbuf, size_t errlen)
{
    char why[512];
    enum fb_err err = names__split(getenv(env_name), valid, out, count, why, sizeof why);

    if (err == FB_ERR_INVALID) {
        err__set(errbuf, errlen, "%s: %s", env_name, why);
        err = FB_ERR_ENV;
    } else if (err != FB_OK) {
        err__set(errbuf, errlen, "%s", why);
    }
    return err;
}

static enum fb_err required_env(const char *name, const char **value, char *errbuf, size_t errlen)
{
    *value = getenv(name);
    if (*value == NULL || **value == '\0') {
        err__set(errbuf, errlen, "%s is not set (this program is meant to be started by flowbus)",
                 name);
        return FB_ERR_ENV;
    }
    return FB_OK;
}

static enum fb_err read_ids(struct task_env *env, char *errbuf, size_t errlen)
{
    const char *run_id;
    const char *name;
    enum fb_err err;

    err = required_env("FLOWBUS_RUN_ID", &run_id, errbuf, errlen);
    if (err == FB_OK)
        err = required_env("FLOWBUS_TASK", &name, errbuf, errlen);
    if (err != FB_OK)
        return err;
    if (!fb_name_valid(FB_NAME_RUN, run_id, strlen(run_id))) {
        err__set(errbuf, errlen, "FLOWBUS_RUN_ID '%s' is malformed (%s)", run_id,
                 fb_name_rule(FB_NAME_RUN));
        return FB_ERR_ENV;
    }
    if (!fb_name_valid(FB_NAME_TASK, name, strlen(name))) {
        err__set(errbuf, errlen, "FLOWBUS_TASK '%s' is malformed (%s)", name,
                 fb_name_rule(FB_NAME_TASK));
        return FB_ERR_ENV;
    }
    env->run_id = str__dup(run_id);
    env->name = str__dup(name);
    if (env->run_id == NULL || env->name == NULL) {
        err__set(errbuf, errlen, "out of memory");
        return FB_ERR_NOMEM;
    }
    return FB_OK;
}

/* 1 if text is a whole number in [min, max] (into *out), else 0. */
static int whole_number(const char *text, long long min, long long max, long long *out)
{
    char *end;
    long long value;

    errno = 0;
    value = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0' || value < min || value > max)
        return 0;
    *out = value;
    return 1;
}

/* 1 if text is a number of seconds in [0, max] (into *out), else 0; NaN is not. */
static int seconds(const char *text, double max, double *out)
{
    char *end;
    double value;

    errno = 0;
    value = strtod(text, &end);
    if (errno != 0 || *end != '\0' || !(value >= 0 && value <= max))
        return 0;
    *out = value;
    return 1;
}

/* The variable's value, or NULL if it is unset or empty (then the default stands). */
static const char *set_env(const char *name)
{
    const char *text = getenv(name);

    return text != NULL && *text != '\0' ? text : NULL;
}

static enum fb_err read_numbers(struct task_env *env, char *errbuf, size_t errlen)
{
    const char *text;
    long long value = 0;

    env->attempt = 1;
    if ((text = set_env("FLOWBUS_ATTEMPT")) != NULL) {
        if (!whole_number(text, 1, INT_MAX, &value)) {
            err__set(errbuf, errlen, "FLOWBUS_ATTEMPT '%s' is not a positive integer", text);
            return FB_ERR_ENV;
        }
        env->attempt = (long)value;
    }
    env->max_value = TASK_ENV_MAX_VALUE;
    if ((text = set_env("FLOWBUS_MAX_VALUE")) != NULL) {
        if (!whole_number(text, 1, INT_MAX, &value)) {
            err__set(errbuf, errlen, "FLOWBUS_MAX_VALUE '%s' is not a positive number of bytes",
                     text);
            return FB_ERR_ENV;
        }
        env->max_value = (size_t)value;
    }
    env->reconnect_max = TASK_ENV_RECONNECT_MAX;
    if ((text = set_env("FLOWBUS_RECONNECT_MAX")) != NULL &&
        !seconds(text, 86400, &env->reconnect_max)) {
        err__set(errbuf, errlen,
                 "FLOWBUS_RECONNECT_MAX '%s' is not a number of seconds (0 to 86400)", text);
        return FB_ERR_ENV;
    }
    env->keepalive = 0;
    if ((text = set_env("FLOWBUS_KEEPALIVE")) != NULL) {
        if (!whole_number(text, 5, 3600, &value)) {
            err__set(errbuf, errlen, "FLOWBUS_KEEPALIVE '%s' is not a number of seconds (5 to 3600)",
                     text);
            return FB_ERR_ENV;
        }
        env->keepalive = (int)value;
    }
    if ((text = set_env("FLOWBUS_EXPIRY")) != NULL) {
        if (!whole_number(text, 0, UINT32_MAX, &value)) {
            err__set(errbuf, errlen, "FLOWBUS_EXPIRY '%s' is not a number of seconds (0: none)",
                     text);
            return FB_ERR_ENV;
        }
        env->expiry = (unsigned)value;
    }
    /* The coordinator enforces the timeout; it is only validated here. */
    env->timeout = -1;
    if ((text = set_env("FLOWBUS_TIMEOUT")) != NULL && !seconds(text, HUGE_VAL, &env->timeout)) {
        err__set(errbuf, errlen, "FLOWBUS_TIMEOUT '%s' is not a number of seconds", text);
        return FB_ERR_ENV;
    }
    return FB_OK;
}

static enum fb_err read_vars(struct task_env *env, char *errbuf, size_t errlen)
{
    char **inputs = NULL, **secrets = NULL;
    size_t n_in = 0, n_sec = 0;
    size_t i;
    enum fb_err err;

    err = split_names("FLOWBUS_INPUTS", var_name, &inputs, &n_in, errbuf, errlen);
    if (err == FB_OK)
        err = split_names("FLOWBUS_OUTPUTS", var_name, &env->outputs, &env->n_outputs, errbuf,
                          errlen);
    if (err == FB_OK)
        err = split_names("FLOWBUS_SECRETS", var_name, &secrets, &n_sec, errbuf, errlen);
    if (err == FB_OK)
        err = split_names("FLOWBUS_DEPENDS", task_name, &env->deps, &env->n_deps, errbuf, errlen);
    if (err != FB_OK)
        goto out;

    /* A secret that is not listed among the inputs is still an input. */
    env->inputs = calloc(n_in + n_sec + 1, sizeof *env->inputs);
    if (env->inputs == NULL)
        goto nomem;
    for (i = 0; i < n_in; i++) {
        env->inputs[env->n_inputs++].name = inputs[i];
        inputs[i] = NULL;
    }
    for (i = 0; i < n_sec; i++) {
        struct task_env_input *in = find_input(env, secrets[i]);
        const char *value = getenv(secrets[i]);

        if (in == NULL) {
            in = &env->inputs[env->n_inputs++];
            in->name = secrets[i];
            secrets[i] = NULL;
        }
        in->secret = 1;
        if (value == NULL) {
            err__set(errbuf, errlen,
                     "secret input %s is listed in FLOWBUS_SECRETS but not set in the environment",
                     in->name);
            err = FB_ERR_ENV;
            goto out;
        }
        in->value = str__dup(value);
        if (in->value == NULL)
            goto nomem;
    }
    goto out;
nomem:
    err__set(errbuf, errlen, "out of memory");
    err = FB_ERR_NOMEM;
out:
    names__free(inputs, n_in);
    names__free(secrets, n_sec);
    return err;
}

/* A whole number from the environment in [min, max], or def when unset or empty. */
static enum fb_err env_long(const char *name, long def, long min, long max, long *out, char *errbuf,
                            size_t errlen)
{
    const char *text = set_env(name);
    long long value = def;

    if (text != NULL && !whole_number(text, min, max, &value)) {
        err__set(errbuf, errlen, "%s '%s' is not a whole number from %ld to %ld", name, text, min,
                 max);
        return FB_ERR_ENV;
    }
    /* In [min, max], both longs. */
    *out = (long)value;
    return FB_OK;
}

/* FLOWBUS_OVERFLOW: block (also when unset or empty), drop-oldest or drop-newest. */
static enum fb_err read_overflow(struct task_env *env, char *errbuf, size_t errlen)
{
    const char *v = getenv("FLOWBUS_OVERFLOW");

    if (v == NULL || *v == '\0' || strcmp(v, "block") == 0)
        env->overflow = TASK_OVERFLOW_BLOCK;
    else if (strcmp(v, "drop-oldest") == 0)
        env->overflow = TASK_OVERFLOW_DROP_OLDEST;
    else if (strcmp(v, "drop-newest") == 0)
        env->overflow = TASK_OVERFLOW_DROP_NEWEST;
    else {
        err__set(errbuf, errlen,
                 "FLOWBUS_OVERFLOW '%.64s' is not 'block', 'drop-oldest' or 'drop-newest'", v);
        return FB_ERR_ENV;
    }
    return FB_OK;
}

/* FLOWBUS_MODE and, in reactive mode, the queue, the worker pool and the triggers. */
static enum fb_err read_mode(struct task_env *env, char *errbuf, size_t errlen)
{
    const char *mode = getenv("FLOWBUS_MODE");
    char **triggers = NULL;
    size_t n_trig = 0;
    size_t i;
    long queue = TASK_ENV_QUEUE;
    enum fb_err err;

    if (mode == NULL || *mode == '\0' || strcmp(mode, "oneshot") == 0)
        return FB_OK;
    if (strcmp(mode, "reactive") != 0) {
        err__set(errbuf, errlen, "FLOWBUS_MODE '%s' is not 'oneshot' or 'reactive'", mode);
        return FB_ERR_ENV;
    }
    env->reactive = 1;
    err = env_long("FLOWBUS_QUEUE", TASK_ENV_QUEUE, 1, TASK_ENV_MAX_QUEUE, &queue, errbuf, errlen);
    if (err == FB_OK)
        err = read_overflow(env, errbuf, errlen);
    if (err == FB_OK)
        err =
            env_long("FLOWBUS_WORKERS", 1, 1, TASK_ENV_MAX_WORKERS, &env->workers, errbuf, errlen);
    if (err == FB_OK)
        err = env_long("FLOWBUS_WORKER", 1, 1, env->workers, &env->worker, errbuf, errlen);
    if (err == FB_OK)
        err = split_names("FLOWBUS_TRIGGERS", var_name, &triggers, &n_trig, errbuf, errlen);
    if (err != FB_OK)
        goto out;
    /* env_long kept it in [1, TASK_ENV_MAX_QUEUE]. */
    env->queue = (size_t)queue;
    for (i = 0; i < n_trig; i++) {
        struct task_env_input *in = find_input(env, triggers[i]);

        if (in == NULL || in->secret) {
            err__set(errbuf, errlen, "FLOWBUS_TRIGGERS: %s is not %s", triggers[i],
                     in == NULL ? "one of the task's inputs"
                                : "allowed: a secret input cannot "
                                  "trigger (it is not on the bus)");
            err = FB_ERR_ENV;
            goto out;
        }
        in->trigger = 1;
    }
    /* Without FLOWBUS_TRIGGERS every input on the bus is a trigger. */
    for (i = 0; i < env->n_inputs; i++) {
        if (n_trig == 0 && !env->inputs[i].secret)
            env->inputs[i].trigger = 1;
        env->n_triggers += env->inputs[i].trigger != 0;
    }
out:
    names__free(triggers, n_trig);
    return err;
}

/* The text of a scalar param, as fb_task_param returns it; NULL for others. */
static char *param_text(json_t *value)
{
    switch (json_typeof(value)) {
    case JSON_STRING:
        return str__dup(json_string_value(value));
    case JSON_INTEGER:
    case JSON_REAL:
        return json_dumps(value, JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
    case JSON_TRUE:
        return str__dup("true");
    case JSON_FALSE:
        return str__dup("false");
    default:
        return NULL;
    }
}

static enum fb_err read_params(struct task_env *env, char *errbuf, size_t errlen)
{
    const char *text = getenv("FLOWBUS_PARAMS");
    json_error_t jerr;
    const char *key;
    json_t *value;
    size_t n;

    if (text == NULL || *text == '\0')
        text = "{}";
    env->params = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (env->params == NULL) {
        err__set(errbuf, errlen, "FLOWBUS_PARAMS: line %d, column %d: %s", jerr.line, jerr.column,
                 jerr.text);
        return FB_ERR_ENV;
    }
    if (!json_is_object(env->params)) {
        err__set(errbuf, errlen, "FLOWBUS_PARAMS is not a JSON object");
        return FB_ERR_ENV;
    }
    env->params_json = json_dumps(env->params, JSON_COMPACT | JSON_REAL_PRECISION(17));
    n = json_object_size(env->params);
    env->param_names = calloc(n + 1, sizeof *env->param_names);
    env->param_texts = calloc(n + 1, sizeof *env->param_texts);
    if (!env->params_json || !env->param_names || !env->param_texts)
        goto nomem;
    json_object_foreach(env->params, key, value)
    {
        char *t = param_text(value);

        if (t == NULL)
            continue;
        env->param_names[env->n_params] = str__dup(key);
        env->param_texts[env->n_params] = t;
        if (env->param_names[env->n_params++] == NULL)
            goto nomem;
    }
    return FB_OK;
nomem:
    err__set(errbuf, errlen, "out of memory");
    return FB_ERR_NOMEM;
}

/*
 * A copy of the variable's value into *out, NULL if it is unset (or empty,
 * with nonempty). Returns 0, or -1 if the copy failed.
 */
static int copy_env(const char *name, int nonempty, char **out)
{
    const char *value = getenv(name);

    *out = NULL;
    if (value == NULL || (nonempty && *value == '\0'))
        return 0;
    *out = str__dup(value);
    return *out != NULL ? 0 : -1;
}

/* The broker's URL and the credentials the task connects with (bus.c checks the URL). */
static enum fb_err read_broker(struct task_env *env, char *errbuf, size_t errlen)
{
    const char *url;
    enum fb_err err = required_env("FLOWBUS_BROKER", &url, errbuf, errlen);

    if (err != FB_OK)
        return err;
    if (copy_env("FLOWBUS_BROKER", 1, &env->broker) != 0 ||
        copy_env("FLOWBUS_USERNAME", 0, &env->username) != 0 ||
        copy_env("FLOWBUS_PASSWORD", 0, &env->password) != 0 ||
        copy_env("FLOWBUS_TLS_CA", 1, &env->tls_ca) != 0 ||
        copy_env("FLOWBUS_TLS_CERT", 1, &env->tls_cert) != 0 ||
        copy_env("FLOWBUS_TLS_KEY", 1, &env->tls_key) != 0) {
        err__set(errbuf, errlen, "out of memory");
        return FB_ERR_NOMEM;
    }
    return FB_OK;
}

enum fb_err task_env__read(struct task_env *env, char *errbuf, size_t errlen)
{
    enum fb_err err;

    memset(env, 0, sizeof *env);
    err = read_ids(env, errbuf, errlen);
    if (err == FB_OK)
        err = read_numbers(env, errbuf, errlen);
    if (err == FB_OK)
        err = read_vars(env, errbuf, errlen);
    if (err == FB_OK)
        err = read_mode(env, errbuf, errlen);
    if (err == FB_OK)
        err = read_params(env, errbuf, errlen);
    if (err == FB_OK)
        err = read_broker(env, errbuf, errlen);
    return err;
}

void task_env__free(struct task_env *env)
{
    size_t i;

    if (env == NULL)
        return;
    for (i = 0; i < env->n_inputs; i++) {
        free(env->inputs[i].name);
        free(env->inputs[i].value);
    }
    free(env->inputs);
    names__free(env->outputs, env->n_outputs);
    names__free(env->deps, env->n_deps);
    for (i = 0; i < env->n_params; i++) {
        free(env->param_names[i]);
        free(env->param_texts[i]);
    }
    free(env->param_names);
    free(env->param_texts);
    free(env->params_json);
    json_decref(env->params);
    free(env->run_id);
    free(env->name);
    free(env->broker);
    free(env->username);
    if (env->password != NULL)
        explicit_bzero(env->password, strlen(env->password));
    free(env->password);
    free(env->tls_ca);
    free(env->tls_cert);
    free(env->tls_key);
    memset(env, 0, sizeof *env);
}

int task_env__parent_pid(long *pid)
{
    const char *text = getenv("FLOWBUS_PARENT_PID");

    *pid = text != NULL ? atol(text) : 0;
    return text != NULL;
}
