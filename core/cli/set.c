/*
 * set.c - `flowbus set RUN VAR=VALUE...`: publishes variables of a live run
 * (see commands.h).
 *
 * All or nothing: every assignment is checked against the run's workflow (a
 * variable it names, not a secret) before the first is published, and the
 * broker must confirm them all. A variable is published as a task would
 * publish it: retained, QoS 1, the empty value in the contract's encoding.
 */
#include "commands.h"
#include "log.h"
#include "session.h"
#include "suggest.h"
#include "view.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char set__usage[] =
    "Usage: flowbus set RUN VAR=VALUE [VAR=VALUE...] [--broker URL]\n"
    "\n"
    "Publish variables of the live run RUN (retained, QoS 1, confirmed by the\n"
    "broker): tasks waiting for them start, reactive tasks fire again. VAR must be\n"
    "a variable of the run's workflow, not a secret and not a reserved name\n"
    "(PATH, LD_*, AUTH_TOKEN, FLOWBUS_*, ...); an empty VALUE is allowed; a VALUE is\n"
    "at most 256 KiB ($FLOWBUS_MAX_VALUE).\n"
    "Nothing is published unless every VAR=VALUE is accepted.\n"
    "\n"
    "Options:\n"
    "  --broker URL  the run's broker (default: $FLOWBUS_BROKER)\n"
    "  -h, --help    show this help\n"
    "\n"
    "Exit codes: 0 published, 2 no such run or variable, a secret, a reserved name,\n"
    "a value over the limit, or a finished run,\n"
    "4 broker unavailable or the publish was refused.\n";

/* Checks every VAR=VALUE before anything is published: all or nothing. */
static int check_assignments(const struct client_options *o)
{
    const char *env = getenv("FLOWBUS_MAX_VALUE"), *why;
    long parsed = env ? strtol(env, NULL, 10) : 0;
    /* The tasks' limit, as the coordinator hands it to them (docs/workflow-format.md). */
    size_t limit = parsed > 0 ? (size_t)parsed : 256 * 1024;
    char name[FB_NAME_MAX + 1];

    if (o->n_assignments == 0) {
        log_printf(FB_LOG_ERROR, "set needs at least one VAR=VALUE after the run id");
        return 0;
    }
    for (size_t i = 0; i < o->n_assignments; i++) {
        const char *a = o->assignments[i], *eq = strchr(a, '=');
        if (!eq) {
            log_printf(FB_LOG_ERROR, "expected VAR=VALUE, got '%s'", a);
            return 0;
        }
        if (!fb_name_valid(FB_NAME_VAR, a, (size_t)(eq - a))) {
            log_printf(FB_LOG_ERROR,
                       "'%.*s' is not a variable name: expected a letter or '_', "
                       "then letters, digits or '_', at most %d characters",
                       (int)(eq - a), a, FB_NAME_MAX);
            return 0;
        }
        snprintf(name, sizeof name, "%.*s", (int)(eq - a), a);
        if ((why = fb_name_reserved(name)) != NULL) {
            log_printf(FB_LOG_ERROR,
                       "'%s' is reserved (it %s): no task takes it from the bus, so it is not "
                       "published",
                       name, why);
            return 0;
        }
        /* The tasks refuse a value over their limit: say so here rather than publish it. */
        if (strlen(eq + 1) > limit) {
            log_printf(FB_LOG_ERROR,
                       "the value of %s is %zu bytes, over the limit of %zu bytes "
                       "(FLOWBUS_MAX_VALUE)",
                       name, strlen(eq + 1), limit);
            return 0;
        }
    }
    return 1;
}

/* The variable of assignment a, checked against the run: known and not a secret. */
static int check_var(const struct client_options *o, const struct run_view *rv, const char *name)
{
    const struct view_var *v = view__var(rv, name);
    const char **known;
    char hint[512];

    if (v && v->key.wf_pos != VIEW_NOT_IN_WORKFLOW) {
        if (!v->secret)
            return 1;
        log_printf(FB_LOG_ERROR,
                   "'%s' is a secret of run '%s': secrets reach tasks through "
                   "their environment only, never over the bus",
                   name, o->run_id);
        return 0;
    }
    known = calloc(rv->n_workflow_vars + 1, sizeof *known);
    for (size_t i = 0; known && i < rv->n_workflow_vars; i++)
        known[i] = rv->vars[i].key.name;
    suggest__hint(hint, sizeof hint, name, known, known ? rv->n_workflow_vars : 0);
    log_printf(FB_LOG_ERROR, "run '%s' has no variable '%s'%s", o->run_id, name, hint);
    free(known);
    return 0;
}

/* Publishes every assignment and waits for the broker to confirm them. */
static int publish(const struct session *s, const struct client_options *o)
{
    char topic[FB_TOPIC_MAX], name[FB_NAME_MAX + 1];

    for (size_t i = 0; i < o->n_assignments; i++) {
        const char *a = o->assignments[i], *eq = strchr(a, '='), *payload;
        /* The empty value travels as one NUL byte: a zero-length retained
         * payload would delete the variable (docs/protocol.md). */
        size_t len = fb_value_encode(eq + 1, &payload);
        enum fb_err e;
        snprintf(name, sizeof name, "%.*s", (int)(eq - a), a);
        fb_topic_format(topic, sizeof topic, FB_TOPIC_VAR, o->run_id, name);
        e = fb_bus_publish(s->bus, topic, payload, len, 1, 1, 0);
        if (e != FB_OK) {
            log_printf(FB_LOG_ERROR, "cannot publish %s: %s", topic, fb_strerror(e));
            return FB_EXIT_BROKER;
        }
    }
    if (fb_bus_flush(s->bus, SESSION_ANSWER_WAIT) != FB_OK) {
        /* Where it may not write: the run's variables, flowbus/<run>/vars/. */
        fb_topic_format(topic, sizeof topic, FB_TOPIC_VAR, o->run_id, "_");
        topic[strlen(topic) - 1] = '\0';
        log_printf(FB_LOG_ERROR,
                   "the broker at %s did not confirm the publish (refused, or not "
                   "authorised to write under %s)",
                   o->broker_url, topic);
        return FB_EXIT_BROKER;
    }
    return FB_EXIT_OK;
}

int set__main(const struct client_options *o)
{
    static const enum fb_topic_kind kinds[] = {FB_TOPIC_RUN_STATE, FB_TOPIC_WORKFLOW, FB_TOPIC_VAR};
    const struct session_broker b = {o->broker_url, o->username, o->password};
    struct session s = {0};
    struct view *vw = view__new();
    struct run_view *rv;
    char name[FB_NAME_MAX + 1];
    int code = FB_EXIT_INVALID, one_shot;

    if (!vw) {
        log_printf(FB_LOG_ERROR, "out of memory");
        code = FB_EXIT_BROKER;
        goto out;
    }
    if (!session__check_url(o->broker_url) || !check_assignments(o))
        goto out;
    if ((code = session__open(&s, &b, o->run_id, "client", 0)) != FB_EXIT_OK ||
        (code = session__snapshot(&s, kinds, 3, vw, NULL, NULL)) != FB_EXIT_OK)
        goto out;
    code = FB_EXIT_INVALID;
    if (!(rv = session__find_run(&s, vw)))
        goto out;
    if (!rv->has_workflow) {
        log_printf(FB_LOG_ERROR, "run '%s' has no retained workflow, so its variables are unknown",
                   o->run_id);
        goto out;
    }
    if (fb_run_state_is_final(rv->state)) {
        log_printf(FB_LOG_ERROR, "run '%s' has finished (%s): no task is left to read a variable",
                   o->run_id, view__state_text(rv));
        goto out;
    }
    for (size_t i = 0; i < o->n_assignments; i++) {
        const char *a = o->assignments[i], *eq = strchr(a, '=');
        snprintf(name, sizeof name, "%.*s", (int)(eq - a), a);
        if (!check_var(o, rv, name))
            goto out;
    }
    if ((code = publish(&s, o)) != FB_EXIT_OK)
        goto out;
    one_shot = !view__reactive(rv);
    for (size_t i = 0; i < o->n_assignments; i++) {
        const char *a = o->assignments[i], *eq = strchr(a, '=');
        const struct view_var *v;
        snprintf(name, sizeof name, "%.*s", (int)(eq - a), a);
        printf("run %s: %s set\n", o->run_id, name);
        v = view__var(rv, name);
        if (one_shot && v && v->value)
            log_printf(FB_LOG_INFO,
                       "note: %s already had a value; in a one-shot run, tasks that "
                       "already read it do not run again",
                       name);
    }
out:
    view__free(vw);
    session__close(&s);
    return code;
}
