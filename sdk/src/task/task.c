/*
 * task.c - fb_task, the plugin side of the bus contract (docs/protocol.md):
 * its core.
 *
 * A task reads its description from the FLOWBUS_* environment (task_env.c),
 * connects with a Last Will that marks it "crashed" and subscribes to what it
 * waits for (task_connect.c), and then reports waiting, running and done or
 * failed on its retained state topic (task_state.c). Everything it receives
 * is interpreted on the caller's thread (task_absorb.c), in fb_task_wait and
 * before fb_task_done decides which outputs to publish. This file holds the
 * one-shot flow (open, wait, done, fail, exit) and the variable store the
 * plugin reads its inputs from and writes its outputs to; reactive mode's
 * activations are task_reactive.c, the log topic task_log.c.
 *
 * A variable already holding a value is never overwritten ("first value
 * wins"): fb_task_done skips an output another producer set first.
 *
 * A one-shot task that has begun to publish its end holds SIGTERM and SIGINT
 * until its connection is closed (hold_signals): killed between its final
 * state and its DISCONNECT, its Last Will ("crashed") would come after that
 * state and overwrite it on the broker, and with no coordinator to publish
 * the record again (its own died: the PR_SET_PDEATHSIG that sent the signal)
 * a finished task would read as crashed. The signal is only noted (Paho's
 * threads share the disposition), and raised again by fb_task_free.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "task_internal.h"

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

char *task__vformat(const char *fmt, va_list ap)
{
    va_list copy;
    char *buf;
    int n;

    va_copy(copy, ap);
    n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0)
        return NULL;
    buf = malloc((size_t)n + 1);
    if (buf != NULL)
        vsnprintf(buf, (size_t)n + 1, fmt, ap);
    return buf;
}

char *task__format(const char *fmt, ...)
{
    va_list ap;
    char *buf;

    va_start(ap, fmt);
    buf = task__vformat(fmt, ap);
    va_end(ap);
    return buf;
}

struct var *task__find_var(const struct var *vars, size_t n, const char *name)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (strcmp(vars[i].name, name) == 0)
            return (struct var *)&vars[i];
    return NULL;
}

static void free_vars(struct var *vars, size_t n)
{
    size_t i;

    for (i = 0; vars != NULL && i < n; i++) {
        free(vars[i].value);
        free(vars[i].current);
    }
    free(vars);
}

/*
 * The variable store and the topics, from the environment. The names stay
 * the task_env's; a secret input's value is copied, as an input's value is
 * replaced when a message sets it.
 */
static enum fb_err build_store(fb_task *task, char *errbuf, size_t errlen)
{
    const struct task_env *env = &task->env;
    size_t i;

    task->inputs = calloc(env->n_inputs + 1, sizeof *task->inputs);
    task->outputs = calloc(env->n_outputs + 1, sizeof *task->outputs);
    task->deps = calloc(env->n_deps + 1, sizeof *task->deps);
    if (!task->inputs || !task->outputs || !task->deps)
        goto nomem;
    for (i = 0; i < env->n_inputs; i++) {
        struct var *v = &task->inputs[task->n_inputs++];

        v->name = env->inputs[i].name;
        v->secret = env->inputs[i].secret;
        v->trigger = env->inputs[i].trigger;
        if (env->inputs[i].value != NULL && (v->value = str__dup(env->inputs[i].value)) == NULL)
            goto nomem;
    }
    for (i = 0; i < env->n_outputs; i++)
        task->outputs[task->n_outputs++].name = env->outputs[i];
    for (i = 0; i < env->n_deps; i++)
        task->deps[task->n_deps++].name = env->deps[i];
    /* The run id and the task's name are valid names: the topics fit. */
    if (fb_topic_format(task->state_topic, sizeof task->state_topic, FB_TOPIC_TASK_STATE,
                        env->run_id, env->name) == 0 ||
        fb_topic_format(task->log_topic, sizeof task->log_topic, FB_TOPIC_TASK_LOG, env->run_id,
                        env->name) == 0) {
        err__set(errbuf, errlen, "the topics of task %s cannot be built", env->name);
        return FB_ERR_ENV;
    }
    return FB_OK;
nomem:
    err__set(errbuf, errlen, "out of memory");
    return FB_ERR_NOMEM;
}

/* ------------------------------------------------------------------------ */
/* Opening and waiting                                                       */
/* ------------------------------------------------------------------------ */

enum fb_err fb_task_open(const fb_task_options *opts, fb_task **out, char *errbuf, size_t errlen)
{
    fb_task *task = NULL;
    long parent = 0;
    int has_parent;
    long guardian = 0;
    enum fb_err err = FB_OK;

    if (out != NULL)
        *out = NULL;
    if (out == NULL) {
        err__set(errbuf, errlen, "fb_task_open: out is required");
        return FB_ERR_INVALID;
    }
    /* Before any secret is read: nothing of this process may show in /proc to its children. */
    task_credentials__protect();
    /*
     * If the coordinator that started us dies (even by SIGKILL), the kernel
     * sends SIGTERM, so a task never outlives its run. The parent check
     * ensures the variable was meant for this process and not inherited.
     */
    has_parent = task_env__parent_pid(&parent);
    if (has_parent && parent == (long)getppid()) {
        guardian = parent;
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        /* A coordinator that died just before the prctl sends nothing: act as if it had. */
        if (parent != (long)getppid())
            raise(SIGTERM);
        has_parent = 0;
    }

    task = calloc(1, sizeof *task);
    if (task == NULL) {
        err__set(errbuf, errlen, "out of memory");
        err = FB_ERR_NOMEM;
        goto out;
    }
    task->epoll_fd = -1;
    task->act.trigger = SIZE_MAX;
    if (opts != NULL) {
        task->log = opts->log;
        task->log_ctx = opts->log_ctx;
    }
    task->pid = (long)getpid();
    task->guardian_pid = guardian;
    err = task_env__read(&task->env, errbuf, errlen);
    if (err == FB_OK)
        err = task_credentials__read(&task->env, errbuf, errlen);
    if (err != FB_OK)
        goto out;
    task->flush_timeout = FLUSH_TIMEOUT + task->env.reconnect_max;
    if (has_parent) {
        /*
         * Started by a coordinator that is already gone (or the variable was
         * inherited): nothing would stop a reconnecting task, so the loss of
         * the broker stays final, as without reconnection.
         */
        task->env.reconnect_max = 0;
        task->flush_timeout = FLUSH_TIMEOUT;
    }
    err = build_store(task, errbuf, errlen);
    if (err == FB_OK && task->env.reactive)
        err = task_reactive__init(task, errbuf, errlen);
    if (err == FB_OK)
        err = task_connect__open(task, errbuf, errlen);
    if (err == FB_OK && task->env.reactive)
        err = task_reactive__watch(task, errbuf, errlen);
    if (err != FB_OK)
        goto out;
    *out = task;
    task = NULL;
out:
    fb_task_free(task);
    return err;
}

enum fb_err fb_task_wait(fb_task *task, double timeout)
{
    double deadline = timeout < 0 ? -1.0 : fb_clock_mono() + timeout;
    double left;
    double at;
    fb_msg *msg;
    enum fb_err err;

    if (task == NULL || task->finished)
        return FB_ERR_INVALID;
    if (task->running)
        return FB_OK;
    /* In reactive mode only a source waits this way, and a source consumes no events. */
    if (task->env.reactive)
        task->act.source = 1;
    for (;;) {
        err = task_absorb__queued(task);
        if (task->stopped)
            return FB_ERR_STOPPED;
        if (err == FB_OK)
            err = task_state__reassert(
                task); /* "waiting" again, in case a restarted broker lost it */
        if (err != FB_OK)
            return err;
        if (task_absorb__ready(task, SIZE_MAX))
            break;
        if (deadline >= 0 && fb_clock_mono() >= deadline)
            return FB_ERR_TIMEOUT;
        /* At most a second at a time, so a reconnect is noticed even when nothing comes. */
        left = deadline < 0 ? 1.0 : deadline - fb_clock_mono();
        err = fb_bus_next(task->bus, left > 1.0 ? 1.0 : left, &msg);
        if (err == FB_OK) {
            task_absorb__message(task, msg, 0);
            fb_msg_free(msg);
        } else if (err != FB_ERR_TIMEOUT) {
            return err;
        }
    }
    at = fb_clock_wall();
    task->started_at = at;
    task->running = 1;
    /* A reactive source stays "waiting" between the activations fb_task_emit reports. */
    if (task->env.reactive)
        return FB_OK;
    return task_state__publish(task, FB_STATE_RUNNING, at, 0, -1, NULL);
}

int fb_task_fd(const fb_task *task)
{
    if (task == NULL)
        return -1;
    return task->epoll_fd >= 0 ? task->epoll_fd : fb_bus_fd(task->bus);
}

enum fb_err fb_task_poll(fb_task *task)
{
    enum fb_err err;

    if (task == NULL || task->finished)
        return FB_ERR_INVALID;
    err = task_absorb__queued(task);
    if (task->stopped)
        return FB_ERR_STOPPED;
    if (err == FB_OK)
        err = task_state__reassert(task);
    return err;
}

/* ------------------------------------------------------------------------ */
/* The variable store and the description                                    */
/* ------------------------------------------------------------------------ */

const char *fb_task_name(const fb_task *task)
{
    return task != NULL ? task->env.name : NULL;
}

const char *fb_task_run_id(const fb_task *task)
{
    return task != NULL ? task->env.run_id : NULL;
}

size_t fb_task_input_count(const fb_task *task)
{
    return task != NULL ? task->n_inputs : 0;
}

const char *fb_task_input_name(const fb_task *task, size_t i)
{
    return task != NULL && i < task->n_inputs ? task->inputs[i].name : NULL;
}

size_t fb_task_output_count(const fb_task *task)
{
    return task != NULL ? task->n_outputs : 0;
}

const char *fb_task_output_name(const fb_task *task, size_t i)
{
    return task != NULL && i < task->n_outputs ? task->outputs[i].name : NULL;
}

int fb_task_has_output(const fb_task *task, const char *name)
{
    return task != NULL && name != NULL &&
           task__find_var(task->outputs, task->n_outputs, name) != NULL;
}

const char *fb_task_input(const fb_task *task, const char *name)
{
    const struct var *v;

    if (task == NULL || name == NULL)
        return NULL;
    v = task__find_var(task->inputs, task->n_inputs, name);
    if (v != NULL && task->env.reactive && task->act.snapshot && !v->secret)
        return v->current;
    return v != NULL ? v->value : NULL;
}

const char *fb_task_param(const fb_task *task, const char *name)
{
    size_t i;

    if (task == NULL || name == NULL)
        return NULL;
    for (i = 0; i < task->env.n_params; i++)
        if (strcmp(task->env.param_names[i], name) == 0)
            return task->env.param_texts[i];
    return NULL;
}

const char *fb_task_params_json(const fb_task *task)
{
    return task != NULL && task->env.params_json != NULL ? task->env.params_json : "{}";
}

enum fb_err fb_task_set_output(fb_task *task, const char *name, const char *value)
{
    struct var *v;
    const char *why;
    char *copy;

    if (task == NULL || name == NULL || value == NULL)
        return FB_ERR_INVALID;
    v = task__find_var(task->outputs, task->n_outputs, name);
    if (v == NULL)
        return FB_ERR_NOT_FOUND;
    /*
     * A downstream task would get it in its environment (a library to load, a
     * PATH to search, a token to act with): refused here whatever the
     * workflow declared, as the loader refuses to declare it.
     */
    if ((why = fb_name_reserved(name)) != NULL) {
        fb_task_log(task, "output %s refused: the name is reserved (it %s)", name, why);
        return FB_ERR_INVALID;
    }
    if (strlen(value) > task->env.max_value)
        return FB_ERR_TOO_LARGE;
    copy = str__dup(value);
    if (copy == NULL)
        return FB_ERR_NOMEM;
    free(v->value);
    v->value = copy;
    return FB_OK;
}

/* ------------------------------------------------------------------------ */
/* Ending                                                                    */
/* ------------------------------------------------------------------------ */

/* A SIGTERM or SIGINT that came while the task was ending (hold_signals). */
static volatile sig_atomic_t held_signal;
static int holding;
static struct sigaction held_term, held_int;

static void note_signal(int sig)
{
    held_signal = sig;
}

/* From the first publish of a one-shot task's end to its exit, a signal waits for the close. */
static void hold_signals(const fb_task *task)
{
    struct sigaction sa;

    if (task->env.reactive || holding)
        return;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = note_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, &held_term);
    sigaction(SIGINT, &sa, &held_int);
    holding = 1;
}

/* The connection is closed: the dispositions come back, and a held signal is delivered. */
static void release_signals(void)
{
    int sig = (int)held_signal;

    if (!holding)
        return;
    holding = 0;
    held_signal = 0;
    sigaction(SIGTERM, &held_term, NULL);
    sigaction(SIGINT, &held_int, NULL);
    if (sig)
        raise(sig);
}

enum fb_err fb_task_done(fb_task *task)
{
    enum fb_err err;
    size_t i;

    if (task == NULL || task->finished)
        return FB_ERR_INVALID;
    task_log__report_drops(task);
    if (task->env.reactive)
        return task->act.open ? task_reactive__end(task, FB_STATE_DONE, -1, NULL) : FB_ERR_INVALID;
    /* Learn about values other producers set while we worked. */
    err = task_absorb__queued(task);
    if (err != FB_OK)
        return err;
    /* Secrets never travel as variables: refuse before publishing anything. */
    for (i = 0; i < task->n_outputs; i++) {
        if (task->outputs[i].value != NULL && task_log__has_secret(task, task->outputs[i].value)) {
            fb_task_log(task, "output %s contains a secret value; no output was published",
                        task->outputs[i].name);
            return FB_ERR_INVALID;
        }
    }
    hold_signals(task);
    for (i = 0; i < task->n_outputs; i++) {
        struct var *v = &task->outputs[i];

        if (v->value == NULL) {
            fb_task_log(task, "output %s was not set", v->name);
            continue;
        }
        if (v->taken) {
            fb_task_log(task,
                        "output %s already has a value from another producer; not overwritten",
                        v->name);
            continue;
        }
        err = task_state__publish_var(task, v->name, v->value);
        if (err != FB_OK)
            return err;
        v->published = 1;
    }
    /* Outputs must be on the broker before anyone can see "done". */
    err = task_state__flush(task);
    if (err != FB_OK)
        return err;
    err = task_state__publish(task, FB_STATE_DONE, fb_clock_wall(), 1, 0, NULL);
    if (err == FB_OK)
        err = task_state__flush(task);
    if (err == FB_OK)
        task->finished = 1;
    return err;
}

enum fb_err fb_task_fail(fb_task *task, int exit_code, const char *fmt, ...)
{
    va_list ap;
    char *error = NULL;
    const char *why;
    char *p;
    enum fb_err err;

    if (task == NULL || task->finished)
        return FB_ERR_INVALID;
    if (fmt != NULL) {
        va_start(ap, fmt);
        error = task__vformat(fmt, ap);
        va_end(ap);
    }
    if (error != NULL)
        task_log__mask(task, error);
    /* The error field is one line. */
    for (p = error; p != NULL && *p != '\0'; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    /* Without a message the error says what happened: "failed". */
    why = error != NULL ? error : fb_state_name(FB_STATE_FAILED);
    /* A failed activation does not end a reactive task; failing outside one does. */
    if (task->env.reactive && task->act.open)
        err = task_reactive__end(task, FB_STATE_FAILED, exit_code < 0 ? 1 : exit_code, why);
    else
        err = task__finish(task, FB_STATE_FAILED, exit_code < 0 ? 1 : exit_code, why);
    free(error);
    return err;
}

enum fb_err task__finish(fb_task *task, enum fb_state state, int exit_code, const char *error)
{
    enum fb_err err;

    if (task == NULL || task->finished)
        return FB_ERR_INVALID;
    /* Finished even if unconfirmed: a task that tried to end must not report done afterwards. */
    task->finished = 1;
    hold_signals(task);
    task_log__report_drops(task);
    err = task_state__publish(task, state, fb_clock_wall(), 1, exit_code, error);
    if (err == FB_OK)
        err = fb_bus_flush(task->bus, task->flush_timeout);
    /*
     * A broker restarted while we waited may have lost what it acknowledged
     * but had not saved yet (the outputs, say): the bus re-sent only what was
     * unacknowledged, so the outputs and this final state go out again, and
     * are confirmed in turn. A few rounds, in case it restarts again.
     */
    for (int round = 0;
         err == FB_OK && round < 3 && fb_bus_reconnects(task->bus) != task->reconnects; round++) {
        err = task_state__reassert(task);
        if (err == FB_OK)
            err = fb_bus_flush(task->bus, task->flush_timeout);
    }
    return err;
}

enum fb_err task__end(fb_task *task, const char *state, int exit_code, const char *error)
{
    enum fb_state s;

    if (!fb_state_parse(state, &s) || !fb_state_is_final(s))
        return FB_ERR_INVALID;
    return task__finish(task, s, exit_code, error);
}

fb_log_fn task__log_fn(const fb_task *task, void **ctx)
{
    *ctx = task->log_ctx;
    return task->log;
}

void fb_task_exit(fb_task *task, int code)
{
    fflush(NULL);
    if (task != NULL && task->events_bus != NULL)
        fb_bus_close(task->events_bus, EXIT_CLOSE_TIMEOUT);
    if (task != NULL) {
        /* A state held back in a flood goes first, so the task's last word is exact. */
        if (task->env.reactive && !task->finished && !task->act.open)
            task_reactive__catch_up(task);
        /* A reactive task does not wait for acknowledgements per activation. */
        fb_bus_flush(task->bus, EXIT_CLOSE_TIMEOUT);
        fb_bus_close(task->bus, EXIT_CLOSE_TIMEOUT);
    }
    /* Skips MQTTAsync_destroy, which waits for Paho's threads in 100 ms sleeps. */
    _exit(code);
}

void fb_task_free(fb_task *task)
{
    if (task == NULL)
        return;
    fb_bus_free(task->events_bus);
    fb_bus_free(task->bus);
    if (task->epoll_fd >= 0)
        close(task->epoll_fd);
    task_reactive__free(task);
    free_vars(task->inputs, task->n_inputs);
    free_vars(task->outputs, task->n_outputs);
    free(task->deps);
    free(task->last_state);
    task_env__free(&task->env);
    free(task);
    release_signals();
}
