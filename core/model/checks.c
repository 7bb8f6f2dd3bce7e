/*
 * checks.c - the checks that need the whole workflow, run once every task has
 * been read: depends_on naming known tasks (not the task itself), trigger
 * naming inputs and the reactive keys in a one-shot run, the size of initial
 * values, a token for tasks that need permissions, the params of cmd tasks,
 * and, on the graph (graph.h), inputs nobody sets (in a reactive run, only a
 * reserved name among them is an error), outputs nobody reads and cycles. It
 * is the one file of the model that uses the graph.
 */
#include "checks.h"
#include "advice.h"
#include "diag.h"
#include "suggest.h"
#include "graph.h"

#include <flowbus/protocol.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/*
 * Initial values travel on the bus like any variable, so they obey the same
 * size limit the tasks apply (FLOWBUS_MAX_VALUE, 256 KiB by default).
 */
static void check_value_sizes(const struct workflow *wf, struct wf_diags *diags)
{
    const char *env = getenv("FLOWBUS_MAX_VALUE");
    long limit = env ? strtol(env, NULL, 10) : 0;

    if (limit <= 0)
        limit = 256 * 1024;
    for (size_t i = 0; i < wf->n_vars; i++) {
        const struct wf_var *v = &wf->vars[i];
        size_t len = strlen(v->value);
        if (len > (size_t)limit)
            diag__error(diags, v->pos,
                        "the value of '%s' is %zu bytes, over the limit of %ld bytes "
                        "(FLOWBUS_MAX_VALUE)",
                        v->name, len, limit);
    }
}

/*
 * Linux allows one environment string (NAME=value and its NUL) at most
 * MAX_ARG_STRLEN, 32 pages: 131072 bytes. A secret and a task's params reach
 * the task in its environment, so a longer one would fail the task's exec
 * with E2BIG at run time; it is refused here, where the file says it.
 */
#define ENV_STRING_MAX 131072u

static void check_env_sizes(const struct workflow *wf, struct wf_diags *diags)
{
    for (size_t i = 0; i < wf->n_vars; i++) {
        const struct wf_var *v = &wf->vars[i];
        size_t len = strlen(v->value), room = ENV_STRING_MAX - strlen(v->name) - 2;
        if (v->secret && len > room)
            diag__error(diags, v->pos,
                        "the secret '%s' is %zu bytes, over the %zu a task can get: a secret "
                        "reaches its task in the environment, where Linux allows 128 KiB per "
                        "variable; pass a file path instead",
                        v->name, len, room);
    }
    for (size_t i = 0; i < wf->n_tasks; i++) {
        const struct wf_task *t = &wf->tasks[i];
        size_t room = ENV_STRING_MAX - sizeof "FLOWBUS_PARAMS=";
        size_t len = json_dumpb(t->params, NULL, 0, JSON_COMPACT);
        if (len > room)
            diag__error(diags, t->pos,
                        "the params of task '%s' are %zu bytes as JSON, over the %zu a task can "
                        "get: they reach the task in its environment (FLOWBUS_PARAMS), where "
                        "Linux allows 128 KiB per variable; put the text in a file the task reads",
                        t->name, len, room);
    }
}

/*
 * trigger must name inputs; the reactive keys mean nothing in a one-shot run,
 * which says so rather than ignoring them silently.
 */
static void check_reactive_keys(const struct workflow *wf, struct wf_diags *diags)
{
    for (size_t i = 0; i < wf->n_tasks; i++) {
        const struct wf_task *t = &wf->tasks[i];
        for (size_t j = 0; j < t->trigger.n; j++) {
            size_t k;
            for (k = 0; k < t->inputs.n; k++)
                if (strcmp(t->trigger.items[j].name, t->inputs.items[k].name) == 0)
                    break;
            if (k == t->inputs.n)
                diag__error(diags, t->trigger.items[j].pos,
                            "'trigger' of task '%s' names '%s', which is not one of its inputs",
                            t->name, t->trigger.items[j].name);
        }
        if (!wf->reactive && (t->workers > 1 || t->trigger.n || t->queue || t->overflow))
            diag__warning(diags, t->pos,
                          "task '%s': execution.workers, trigger, queue and overflow apply in "
                          "reactive mode "
                          "only (mode: reactive, or flowbus up); this one-shot run ignores them",
                          t->name);
    }
}

/* A task that needs permissions can only get them with a token, and a token
 * reaches tasks only from the workflow's env: (AUTH_TOKEN) or --set. */
static void check_auth(const struct workflow *wf, struct wf_diags *diags)
{
    for (size_t i = 0; i < wf->n_vars; i++)
        if (!strcmp(wf->vars[i].name, "AUTH_TOKEN"))
            return;
    for (size_t i = 0; i < wf->n_tasks; i++) {
        const struct wf_task *t = &wf->tasks[i];
        if (t->permissions.n > 0)
            diag__error(
                diags, t->permissions.items[0].pos,
                "task '%s' requires permission '%s' but the workflow never gives it a token: "
                "add AUTH_TOKEN to env: (e.g. AUTH_TOKEN: \"{{ENV:AUTH_TOKEN}}\")",
                t->name, t->permissions.items[0].name);
        else if (t->requires_auth)
            diag__error(
                diags, t->pos,
                "task '%s' has requires_auth: true but the workflow never gives it a token: "
                "add AUTH_TOKEN to env: (e.g. AUTH_TOKEN: \"{{ENV:AUTH_TOKEN}}\")",
                t->name);
    }
}

static void check_depends(const struct workflow *wf, struct wf_diags *diags)
{
    const char **names = NULL;
    char clipped[NAME_CLIP + 1];

    for (size_t i = 0; i < wf->n_tasks; i++) {
        const struct wf_task *t = &wf->tasks[i];
        for (size_t j = 0; j < t->depends_on.n; j++) {
            const struct wf_name *d = &t->depends_on.items[j];
            const char *hint;

            if (!strcmp(d->name, t->name)) {
                diag__error(diags, d->pos, "task '%s' depends on itself", t->name);
                continue;
            }
            if (workflow__find_task(wf, d->name) >= 0)
                continue;
            /* Only a mistake pays for the list of names. */
            if (!names) {
                names = malloc(wf->n_tasks * sizeof *names);
                for (size_t k = 0; names && k < wf->n_tasks; k++)
                    names[k] = wf->tasks[k].name;
            }
            hint = names ? suggest__closest(d->name, names, wf->n_tasks, 2) : NULL;
            if (hint)
                diag__error(diags, d->pos,
                            "task '%s' depends on unknown task '%s'; did you mean '%s'?", t->name,
                            d->name, hint);
            else
                diag__error(diags, d->pos, "task '%s' depends on unknown task '%s'", t->name,
                            diag__clip(d->name, NAME_CLIP, clipped));
        }
    }
    free(names);
}

/*
 * Finds the first $NAME or ${NAME} inside single quotes in a shell command
 * whose NAME is one of inputs, scanning the quoting the way sh does (simply:
 * backslashes, single and double quotes). Returns its offset and sets *which,
 * or returns -1.
 */
static long single_quoted_input(const char *cmd, const struct wf_list *inputs, size_t from,
                                const char **which)
{
    enum { PLAIN, SINGLE, DOUBLE } state = PLAIN;

    for (size_t i = 0; cmd[i]; i++) {
        char c = cmd[i];
        switch (state) {
        case PLAIN:
            if (c == '\\' && cmd[i + 1])
                i++;
            else if (c == '\'')
                state = SINGLE;
            else if (c == '"')
                state = DOUBLE;
            break;
        case DOUBLE:
            if (c == '\\' && cmd[i + 1])
                i++;
            else if (c == '"')
                state = PLAIN;
            break;
        case SINGLE:
            if (c == '\'') {
                state = PLAIN;
            } else if (c == '$' && i >= from) {
                const char *p = cmd + i + 1;
                int braced = *p == '{';
                size_t len;
                if (braced)
                    p++;
                len = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_");
                if (len == 0 || (braced && p[len] != '}'))
                    break;
                for (size_t k = 0; k < inputs->n; k++) {
                    if (strlen(inputs->items[k].name) == len &&
                        !strncmp(inputs->items[k].name, p, len)) {
                        *which = inputs->items[k].name;
                        return (long)i;
                    }
                }
            }
            break;
        }
    }
    return -1;
}

static void check_cmd(struct wf_diags *diags, const struct wf_task *t,
                      const struct ynode *params_node)
{
    json_t *command = json_object_get(t->params, "command");
    json_t *argv = json_object_get(t->params, "argv");
    struct wf_pos at = params_node ? pos_of(params_node) : t->pos;
    const char *cmd;
    size_t from = 0;

    if (!command == !argv) {
        diag__error(diags, at,
                    "task '%s' (plugin cmd) needs exactly one of params 'command' (a shell "
                    "command) or 'argv' (a list), %s",
                    t->name, command ? "not both" : "got neither");
        return;
    }
    if (argv) {
        int ok = json_is_array(argv) && json_array_size(argv) > 0;
        for (size_t i = 0; ok && i < json_array_size(argv); i++)
            ok = json_is_string(json_array_get(argv, i));
        if (!ok)
            diag__error(diags, at, "params 'argv' of task '%s' must be a non-empty list of strings",
                        t->name);
        return;
    }
    cmd = json_string_value(command);
    if (!cmd) {
        diag__error(diags, at, "params 'command' of task '%s' must be a string", t->name);
        return;
    }
    for (;;) {
        const char *which = NULL;
        long off = single_quoted_input(cmd, &t->inputs, from, &which);
        if (off < 0)
            break;
        diag__warning(diags, at,
                      "the command of task '%s' uses $%s inside single quotes, where the shell "
                      "does not expand it; use double quotes",
                      t->name, which);
        from = (size_t)off + 1;
    }
    advice__unquoted_inputs(t, cmd, at, diags);
}

/* The node of a task's params, for positions in cmd checks. */
static const struct ynode *params_node_of(const struct ydoc *doc, const struct ynode *task)
{
    for (size_t i = 0; i + 1 < task->len; i += 2) {
        const char *k = text(node_at(doc, task->u.kids[i]));
        if (k && !strcmp(k, "params"))
            return node_at(doc, task->u.kids[i + 1]);
    }
    return NULL;
}

/* Positions of params.command inside each cmd task, for the warnings. */
static void check_cmd_tasks(const struct workflow *wf, const struct ydoc *doc,
                            const struct ynode *tasks, struct wf_diags *diags)
{
    size_t ti = 0;

    if (!tasks || tasks->type != YAML_SEQUENCE_NODE)
        return;
    /* Tasks were appended in list order, skipping entries that were not
     * mappings, so walking the list the same way pairs nodes with tasks. */
    for (size_t i = 0; i < tasks->len && ti < wf->n_tasks; i++) {
        const struct ynode *n = node_at(doc, tasks->u.kids[i]);
        const struct ynode *params, *at = NULL;
        const struct wf_task *t;

        if (!n || n->type != YAML_MAPPING_NODE)
            continue;
        t = &wf->tasks[ti++];
        if (!t->plugin || strcmp(t->plugin, "cmd"))
            continue;
        params = params_node_of(doc, n);
        at = params;
        if (params && params->type == YAML_MAPPING_NODE) {
            for (size_t k = 0; k + 1 < params->len; k += 2) {
                const char *name = text(node_at(doc, params->u.kids[k]));
                if (name && (!strcmp(name, "command") || !strcmp(name, "argv")))
                    at = node_at(doc, params->u.kids[k + 1]);
            }
        }
        check_cmd(diags, t, at);
    }
}

static void check_graph(const struct workflow *wf, struct wf_diags *diags)
{
    struct graph *g = graph__new(wf);
    size_t *cycle = NULL, n_cycle;
    struct wf_pos none = {0, 0};

    if (!g) {
        diag__error(diags, none, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < wf->n_tasks; i++) {
        const struct wf_task *t = &wf->tasks[i];
        for (size_t j = 0; j < t->inputs.n; j++) {
            long v = graph__var_index(g, t->inputs.items[j].name);
            const size_t *who;
            const char *why = fb_name_reserved(t->inputs.items[j].name);
            if (v >= 0 && !graph__var_is_initial(g, (size_t)v) &&
                graph__producers(g, (size_t)v, &who) == 0 && wf->reactive && why)
                /* No task may output a reserved name, so only the outside
                 * would feed it: the workflow must give it itself. */
                diag__error(diags, t->inputs.items[j].pos,
                            "input '%s' of task '%s' is a reserved name (it %s) that env: does "
                            "not declare: only the outside could set it (flowbus set, "
                            "mosquitto_pub); declare it in env: or choose another name",
                            t->inputs.items[j].name, t->name, why);
            else if (v >= 0 && !graph__var_is_initial(g, (size_t)v) &&
                     graph__producers(g, (size_t)v, &who) == 0 && wf->reactive)
                /* A reactive flow is fed from outside too (flowbus set, mqtt). */
                diag__warning(diags, t->inputs.items[j].pos,
                              "input '%s' of task '%s' is set by no task and not in env: it fires "
                              "only when set from outside (flowbus set, mosquitto_pub)",
                              t->inputs.items[j].name, t->name);
            else if (v >= 0 && !graph__var_is_initial(g, (size_t)v) &&
                     graph__producers(g, (size_t)v, &who) == 0)
                diag__error(
                    diags, t->inputs.items[j].pos,
                    "input '%s' of task '%s' is never set: no task outputs it and it is not "
                    "in env: or --set",
                    t->inputs.items[j].name, t->name);
        }
        for (size_t j = 0; j < t->outputs.n; j++) {
            long v = graph__var_index(g, t->outputs.items[j].name);
            const size_t *who;
            if (v >= 0 && graph__consumers(g, (size_t)v, &who) == 0)
                diag__warning(diags, t->outputs.items[j].pos,
                              "output '%s' of task '%s' is never used: no task lists it in its "
                              "inputs",
                              t->outputs.items[j].name, t->name);
        }
    }
    n_cycle = graph__find_cycle(g, &cycle);
    if (n_cycle > 0) {
        /* "A -> B (TRUE) -> A (depends_on)": each arrow says what links the pair. */
        size_t cap = 256, len = 0, at = 0;
        char *msg = malloc(cap);
        for (size_t i = 0; msg && i <= n_cycle; i++) {
            const struct wf_task *t = &wf->tasks[cycle[i % n_cycle]];
            char link[80] = "";
            size_t need;
            if (i > 0) {
                const struct wf_task *prev = &wf->tasks[cycle[i - 1]];
                snprintf(link, sizeof link, " (depends_on)");
                for (size_t k = 0; k < prev->outputs.n; k++)
                    if (workflow__list_has(&t->inputs, prev->outputs.items[k].name)) {
                        snprintf(link, sizeof link, " (%s)", prev->outputs.items[k].name);
                        break;
                    }
            }
            need = strlen(t->name) + strlen(link) + 8;
            if (len + need > cap) {
                char *bigger = realloc(msg, cap = (len + need) * 2);
                if (!bigger) {
                    free(msg);
                    msg = NULL;
                    break;
                }
                msg = bigger;
            }
            len += (size_t)sprintf(msg + len, "%s%s%s", i ? " -> " : "", t->name, link);
            if (i < n_cycle && (wf->tasks[cycle[i]].pos.line < wf->tasks[cycle[at]].pos.line))
                at = i;
        }
        diag__error(diags, wf->tasks[cycle[at]].pos, "dependency cycle: %s",
                    msg ? msg : "(out of memory describing it)");
        free(msg);
    }
out:
    free(cycle);
    graph__free(g);
}

void checks__run(const struct workflow *wf, const struct ydoc *doc, const struct ynode *tasks,
                 struct wf_diags *diags)
{
    check_depends(wf, diags);
    check_reactive_keys(wf, diags);
    check_value_sizes(wf, diags);
    check_env_sizes(wf, diags);
    check_auth(wf, diags);
    check_cmd_tasks(wf, doc, tasks, diags);
    check_graph(wf, diags);
    /* Advice about the shape of the flow is for a flow that is otherwise valid. */
    if (diags->n_errors == 0)
        advice__end_tasks(wf, diags);
}
