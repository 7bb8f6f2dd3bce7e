/*
 * load_tasks.c - reads the workflow's `tasks:` list: each task's name and
 * plugin (looked up through the options), inputs and outputs (no reserved
 * name nor secret's name among the outputs), params (converted to JSON the
 * way YAML's core schema reads scalars), depends_on, execution (its numbers
 * bounded) and permissions; each task goes into the name index as it is read.
 */
#include "diag.h"
#include "load.h"
#include "suggest.h"

#include <flowbus/protocol.h>

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deepest nesting accepted in params. */
#define MAX_DEPTH 64

static const char *const TASK_KEYS[] = {"name",        "plugin",       "description", "inputs",
                                        "outputs",     "params",       "depends_on",  "execution",
                                        "permissions", "requires_auth", "runs_on"};
enum {
    TK_NAME,
    TK_PLUGIN,
    TK_DESCRIPTION,
    TK_INPUTS,
    TK_OUTPUTS,
    TK_PARAMS,
    TK_DEPENDS_ON,
    TK_EXECUTION,
    TK_PERMISSIONS,
    TK_REQUIRES_AUTH,
    TK_RUNS_ON,
    TK_COUNT
};
static const char *const EXECUTION_KEYS[] = {
    "async",           "timeout",    "workers", "retries", "retry_delay",
    "retry_max_delay", "depends_on", "trigger", "queue",   "restart",
    "overflow"};
enum {
    EK_ASYNC,
    EK_TIMEOUT,
    EK_WORKERS,
    EK_RETRIES,
    EK_RETRY_DELAY,
    EK_RETRY_MAX_DELAY,
    EK_DEPENDS_ON,
    EK_TRIGGER,
    EK_QUEUE,
    EK_RESTART,
    EK_OVERFLOW,
    EK_COUNT
};
static const char *const PERMISSION_KEYS[] = {"required"};

enum name_kind { VAR_NAMES, TASK_NAMES, PERMISSION_NAMES };

/*
 * Reads a list of names into out (appending). what names the list in
 * messages ("'inputs' of task 'DF'"). Names listed twice are reported, except
 * that quiet_dups merges them silently (depends_on written in both places).
 */
static void read_names(struct loader *L, struct ynode *n, enum name_kind kind, const char *what,
                       int quiet_dups, struct wf_list *out)
{
    static const char *const nouns[] = {"variable names", "task names", "permission names"};
    json_t *seen = NULL;
    char buf[64], clipped[NAME_CLIP + 1];

    if (!n || is_null(n))
        goto out;
    if (n->type != YAML_SEQUENCE_NODE) {
        diag__error(L->diags, pos_of(n), "%s must be a list of %s, got %s", what, nouns[kind],
                    load__describe(n, buf, sizeof buf));
        goto out;
    }
    /* Long lists (a join of thousands of tasks) check duplicates by hash. */
    if (n->len > 32 || out->n > 32)
        seen = json_object();
    for (size_t i = 0; seen && i < out->n; i++)
        json_object_set_new_nocheck(seen, out->items[i].name, json_true());
    for (size_t i = 0; i < n->len; i++) {
        struct ynode *item = load__visit(L, n->u.kids[i]);
        const char *name = text(item);
        int dup;

        if (!item)
            goto out;
        if (!name || !*name) {
            diag__error(L->diags, pos_of(item), "each entry of %s must be a name, got %s", what,
                        load__describe(item, buf, sizeof buf));
            continue;
        }
        if (kind == VAR_NAMES && !workflow__valid_var_name(name)) {
            diag__error(L->diags, pos_of(item), "'%s' in %s is not a valid variable name: %s",
                        diag__clip(name, NAME_CLIP, clipped), what, VAR_NAME_RULE);
            continue;
        }
        dup = seen ? json_object_get(seen, name) != NULL : workflow__list_has(out, name);
        if (dup) {
            if (!quiet_dups)
                diag__error(L->diags, pos_of(item), "'%s' is listed twice in %s",
                            diag__clip(name, NAME_CLIP, clipped), what);
            continue;
        }
        if (!workflow__list_push(out, name, pos_of(item))) {
            diag__error(L->diags, pos_of(item), "out of memory");
            goto out;
        }
        if (seen)
            json_object_set_new_nocheck(seen, name, json_true());
    }
out:
    json_decref(seen);
}

/* Resolves a plain scalar the way YAML's core schema does, into JSON. */
static json_t *plain_to_json(const struct ynode *n)
{
    const char *s = n->u.value;
    size_t len = n->len;
    const char *p = s;
    char *end;

    if (is_null(n))
        return json_null();
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
        return json_true();
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
        return json_false();
    if (*p == '-' || *p == '+')
        p++;
    if (isdigit((unsigned char)*p)) {
        /* [-+]?[0-9]+ is an integer; 0x and 0o prefixes are YAML 1.2 too. */
        int base = 10;
        const char *digits = p;
        if (p[0] == '0' && (p[1] == 'x' || p[1] == 'o') && p[2]) {
            base = p[1] == 'x' ? 16 : 8;
            digits = p + 2;
        }
        size_t span = strspn(digits, base == 16  ? "0123456789abcdefABCDEF"
                                     : base == 8 ? "01234567"
                                                 : "0123456789");
        if (digits[span] == 0 && span > 0) {
            errno = 0;
            long long v = strtoll(digits, &end, base);
            if (!errno && !*end)
                return json_integer(*s == '-' ? -v : v);
            if (base == 10) {
                double d = strtod(s, &end);
                return json_real(d);
            }
        }
    }
    if (isdigit((unsigned char)*p) || (*p == '.' && isdigit((unsigned char)p[1]))) {
        /* A float: digits with a dot and/or an exponent, nothing else. */
        size_t i = strspn(p, "0123456789");
        if (p[i] == '.')
            i += 1 + strspn(p + i + 1, "0123456789");
        if (p[i] == 'e' || p[i] == 'E') {
            size_t j = i + 1;
            if (p[j] == '-' || p[j] == '+')
                j++;
            if (isdigit((unsigned char)p[j]))
                i = j + strspn(p + j, "0123456789");
        }
        if (!p[i]) {
            double d = strtod(s, &end);
            if (!*end && isfinite(d))
                return json_real(d);
        }
    }
    return json_stringn(s, len);
}

/*
 * Converts a params node to JSON. Returns NULL after reporting an error (the
 * error is reported once; callers just unwind).
 */
static json_t *node_to_json(struct loader *L, struct ynode *n, int depth, const char *where)
{
    json_t *out = NULL;
    char buf[64], clipped[NAME_CLIP + 1];

    if (depth > MAX_DEPTH) {
        diag__error(L->diags, pos_of(n), "%s is nested deeper than %d levels", where, MAX_DEPTH);
        return NULL;
    }
    switch (n->type) {
    case YAML_SCALAR_NODE:
        if (is_plain(n))
            return plain_to_json(n);
        return json_stringn(n->u.value, n->len);
    case YAML_SEQUENCE_NODE:
        out = json_array();
        for (size_t i = 0; out && i < n->len; i++) {
            struct ynode *item = load__visit(L, n->u.kids[i]);
            json_t *v = item ? node_to_json(L, item, depth + 1, where) : NULL;
            if (!v || json_array_append_new(out, v)) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    case YAML_MAPPING_NODE:
        out = json_object();
        for (size_t i = 0; out && i + 1 < n->len; i += 2) {
            struct ynode *key = load__visit(L, n->u.kids[i]);
            struct ynode *value = key ? load__visit(L, n->u.kids[i + 1]) : NULL;
            json_t *v;
            if (!value)
                goto fail;
            if (key->type != YAML_SCALAR_NODE) {
                diag__error(L->diags, pos_of(key), "keys in %s must be strings, got %s", where,
                            load__describe(key, buf, sizeof buf));
                goto fail;
            }
            if (json_object_getn(out, key->u.value, key->len)) {
                diag__error(L->diags, pos_of(key), "duplicate key '%s' in %s",
                            diag__quote(key->u.value, key->len, NAME_CLIP, clipped), where);
                goto fail;
            }
            v = node_to_json(L, value, depth + 1, where);
            if (!v || json_object_setn_new_nocheck(out, key->u.value, key->len, v))
                goto fail;
        }
        return out;
    default:
        return NULL;
    }
fail:
    json_decref(out);
    return NULL;
}

static void read_execution(struct loader *L, struct ynode *n, struct wf_task *t, const char *tname)
{
    struct field f[EK_COUNT];
    char where[128], what[160], buf[64];

    if (is_null(n))
        return;
    snprintf(where, sizeof where, "'execution' of task '%s'", tname);
    if (n->type != YAML_MAPPING_NODE) {
        diag__error(L->diags, pos_of(n), "%s must be a mapping, got %s", where,
                    load__describe(n, buf, sizeof buf));
        return;
    }
    load__read_fields(L, n, EXECUTION_KEYS, EK_COUNT, where, f);
    if (f[EK_ASYNC].value && !load__parse_bool(f[EK_ASYNC].value, &t->async))
        diag__error(L->diags, pos_of(f[EK_ASYNC].value),
                    "'async' must be true or false, got %s (task '%s')",
                    load__describe(f[EK_ASYNC].value, buf, sizeof buf), tname);
    if (f[EK_TIMEOUT].value) {
        double d;
        if (!load__parse_number(f[EK_TIMEOUT].value, &d) || d < 0)
            diag__error(L->diags, pos_of(f[EK_TIMEOUT].value),
                        "'timeout' must be a number of seconds ≥ 0, got %s (task '%s')",
                        load__describe(f[EK_TIMEOUT].value, buf, sizeof buf), tname);
        else if (d > MAX_TIMEOUT)
            diag__error(L->diags, pos_of(f[EK_TIMEOUT].value),
                        "'timeout' must be at most %.0f seconds (30 days), got %s (task '%s')",
                        MAX_TIMEOUT, load__describe(f[EK_TIMEOUT].value, buf, sizeof buf), tname);
        else
            t->timeout = d;
    }
    load__read_int(L, f[EK_WORKERS].value, "workers", tname, 1, MAX_WORKERS, &t->workers);
    load__read_int(L, f[EK_RETRIES].value, "retries", tname, 0, MAX_RETRIES, &t->retries);
    snprintf(what, sizeof what, "task '%s'", tname);
    load__read_seconds(L, f[EK_RETRY_DELAY].value, "retry_delay", what, &t->retry_delay);
    load__read_seconds(L, f[EK_RETRY_MAX_DELAY].value, "retry_max_delay", what,
                       &t->retry_max_delay);
    snprintf(what, sizeof what, "'depends_on' of task '%s'", tname);
    read_names(L, f[EK_DEPENDS_ON].value, TASK_NAMES, what, 1, &t->depends_on);
    snprintf(what, sizeof what, "'trigger' of task '%s'", tname);
    read_names(L, f[EK_TRIGGER].value, VAR_NAMES, what, 0, &t->trigger);
    load__read_int(L, f[EK_QUEUE].value, "queue", tname, 1, MAX_QUEUE, &t->queue);
    if (f[EK_RESTART].value) {
        if (!workflow__restart_parse(text(f[EK_RESTART].value), &t->restart))
            diag__error(L->diags, pos_of(f[EK_RESTART].value),
                        "'restart' must be on-failure, always or never, got %s (task '%s')",
                        load__describe(f[EK_RESTART].value, buf, sizeof buf), tname);
    }
    if (f[EK_OVERFLOW].value &&
        !workflow__overflow_parse(text(f[EK_OVERFLOW].value), &t->overflow)) {
        const char *hint =
            text(f[EK_OVERFLOW].value)
                ? suggest__closest(text(f[EK_OVERFLOW].value), WORKFLOW_OVERFLOW_NAMES, 3, 3)
                : NULL;
        char more[64] = "";

        if (hint)
            snprintf(more, sizeof more, "; did you mean '%s'?", hint);
        diag__error(L->diags, pos_of(f[EK_OVERFLOW].value),
                    "'overflow' must be block, drop-oldest or drop-newest, got %s (task '%s')%s",
                    load__describe(f[EK_OVERFLOW].value, buf, sizeof buf), tname, more);
    }
}

static void read_permissions(struct loader *L, struct ynode *n, struct wf_task *t,
                             const char *tname)
{
    struct field f[COUNT(PERMISSION_KEYS)];
    char where[128], what[160], buf[64];

    if (is_null(n))
        return;
    snprintf(where, sizeof where, "'permissions' of task '%s'", tname);
    if (n->type != YAML_MAPPING_NODE) {
        diag__error(L->diags, pos_of(n), "%s must be a mapping like {required: [...]}, got %s",
                    where, load__describe(n, buf, sizeof buf));
        return;
    }
    load__read_fields(L, n, PERMISSION_KEYS, COUNT(PERMISSION_KEYS), where, f);
    snprintf(what, sizeof what, "'required' of %s", where);
    read_names(L, f[0].value, PERMISSION_NAMES, what, 0, &t->permissions);
}

/* 1 if the workflow's env: makes name a secret. */
static int is_secret(const struct loader *L, const char *name)
{
    json_t *i = json_object_get(L->var_index, name);

    return i && L->wf->vars[json_integer_value(i)].secret;
}

/*
 * A task's outputs become variables on the bus and the environment of every
 * task that reads them, so an output named PATH or LD_PRELOAD chooses what a
 * downstream command runs or loads, and one named AUTH_TOKEN, or after a
 * secret of env:, would replace that secret with a value that is neither
 * given by the workflow nor masked. Nothing in a workflow makes such an
 * output allowed: a value like that is the workflow author's to give, in
 * env:.
 */
static void check_outputs(struct loader *L, const struct wf_task *t, const char *tname)
{
    for (size_t i = 0; i < t->outputs.n; i++) {
        const struct wf_name *o = &t->outputs.items[i];
        const char *why = fb_name_reserved(o->name);

        if (why)
            diag__error(L->diags, o->pos,
                        "task '%s' may not output '%s': that name %s, and a task's outputs "
                        "become the environment of the tasks that read them; choose another "
                        "name",
                        tname, o->name, why);
        else if (is_secret(L, o->name))
            diag__error(L->diags, o->pos,
                        "task '%s' may not output '%s': it is a secret of env:, which only the "
                        "workflow gives (and masks); choose another name",
                        tname, o->name);
    }
}

/*
 * runs_on: one label or a list of labels, each an agent label (the task-name
 * rule: it travels in the agents' records and on the command line of
 * `flowbus agent --labels`), none twice.
 */
static void read_runs_on(struct loader *L, struct ynode *n, struct wf_task *t, const char *tname)
{
    char buf[64], clipped[NAME_CLIP + 1];
    size_t count = 1;

    if (is_null(n)) {
        diag__error(L->diags, pos_of(n),
                    "'runs_on' of task '%s' is empty: expected a label or a list of labels "
                    "(or leave the key out to run the task on the coordinator's host)",
                    tname);
        return;
    }
    if (n->type == YAML_SEQUENCE_NODE)
        count = n->len;
    else if (n->type != YAML_SCALAR_NODE) {
        diag__error(L->diags, pos_of(n),
                    "'runs_on' of task '%s' must be a label or a list of labels, got %s", tname,
                    load__describe(n, buf, sizeof buf));
        return;
    }
    if (count == 0)
        diag__error(L->diags, pos_of(n),
                    "'runs_on' of task '%s' is an empty list: expected at least one label", tname);
    for (size_t i = 0; i < count; i++) {
        struct ynode *item = n->type == YAML_SEQUENCE_NODE ? load__visit(L, n->u.kids[i]) : n;
        const char *label = text(item);

        if (!item)
            return;
        if (!label || !*label) {
            diag__error(L->diags, pos_of(item),
                        "each entry of 'runs_on' of task '%s' must be a label, got %s", tname,
                        load__describe(item, buf, sizeof buf));
        } else if (!workflow__valid_task_name(label)) {
            diag__error(L->diags, pos_of(item), "label '%s' in 'runs_on' of task '%s' is not valid: %s",
                        diag__clip(label, NAME_CLIP, clipped), tname, TASK_NAME_RULE);
        } else if (workflow__list_has(&t->runs_on, label)) {
            diag__error(L->diags, pos_of(item), "label '%s' is listed twice in 'runs_on' of task '%s'",
                        label, tname);
        } else if (!workflow__list_push(&t->runs_on, label, pos_of(item))) {
            diag__error(L->diags, pos_of(item), "out of memory");
            return;
        }
    }
}

/* The task's name, if it has a usable one, for messages before it is read. */
static const char *peek_name(struct loader *L, struct ynode *map)
{
    for (size_t i = 0; i + 1 < map->len; i += 2) {
        struct ynode *key = load__visit(L, map->u.kids[i]);
        const char *k = text(key);
        if (k && !strcmp(k, "name")) {
            const char *v = text(load__visit(L, map->u.kids[i + 1]));
            return v && *v && strlen(v) <= 64 ? v : NULL;
        }
    }
    return NULL;
}

/* Reads one entry of tasks: into t; number is its 1-based place, for messages. */
static void read_task(struct loader *L, struct ynode *n, size_t number, struct wf_task *t)
{
    struct field f[TK_COUNT];
    char tname[80], where[100], what[160], buf[64], clipped[NAME_CLIP + 1];
    const char *name, *plugin, *s;

    t->pos = pos_of(n);
    t->workers = 1;
    name = peek_name(L, n);
    if (name)
        snprintf(tname, sizeof tname, "%s", name);
    else
        snprintf(tname, sizeof tname, "#%zu", number);
    snprintf(where, sizeof where, "task '%s'", tname);
    load__read_fields(L, n, TASK_KEYS, TK_COUNT, where, f);

    if (!f[TK_NAME].value) {
        diag__error(L->diags, t->pos, "task #%zu has no 'name'", number);
    } else if ((name = load__string_field(L, &f[TK_NAME], where)) != NULL) {
        t->name_pos = pos_of(f[TK_NAME].value);
        if (!*name)
            diag__error(L->diags, t->name_pos, "task #%zu has an empty name", number);
        else if (!workflow__valid_task_name(name))
            diag__error(L->diags, t->name_pos, "task name '%s' is not valid: %s",
                        diag__clip(name, NAME_CLIP, clipped), TASK_NAME_RULE);
        /* An invalid name is kept only for later messages about the task,
         * so a huge one is kept short. */
        t->name =
            strdup(workflow__valid_task_name(name) ? name : diag__clip(name, NAME_CLIP, clipped));
    }
    if (!t->name) {
        t->name = strdup("");
        t->name_pos = t->pos;
    }

    /* Before the plugin: a task placed on an agent needs its plugin there, not here. */
    if (f[TK_RUNS_ON].value)
        read_runs_on(L, f[TK_RUNS_ON].value, t, tname);
    if (!f[TK_PLUGIN].value) {
        diag__error(L->diags, t->pos, "task '%s' has no 'plugin'", tname);
    } else if ((plugin = load__string_field(L, &f[TK_PLUGIN], where)) != NULL) {
        t->plugin_pos = pos_of(f[TK_PLUGIN].value);
        t->plugin = strdup(plugin);
        if (!workflow__valid_task_name(plugin)) {
            diag__error(L->diags, t->plugin_pos, "plugin name '%s' of task '%s' is not valid: %s",
                        diag__clip(plugin, NAME_CLIP, clipped), tname, TASK_NAME_RULE);
        } else if (L->opts && L->opts->lookup) {
            t->plugin_path = L->opts->lookup(L->opts->lookup_ctx, plugin);
            /* The agent that takes the task looks its plugin up (and refuses without it). */
            if (!t->plugin_path && t->runs_on.n == 0)
                diag__error(L->diags, t->plugin_pos,
                            "unknown plugin '%s' in task '%s': no executable flowbus-%s was found%s%s%s",
                            plugin, tname, plugin, L->opts->lookup_where ? " in " : "",
                            L->opts->lookup_where ? L->opts->lookup_where : "",
                            L->opts->lookup_where ? " (in this order)" : "");
        }
    }
    if (f[TK_DESCRIPTION].value && (s = load__string_field(L, &f[TK_DESCRIPTION], where)) != NULL)
        t->description = strdup(s);

    snprintf(what, sizeof what, "'inputs' of task '%s'", tname);
    read_names(L, f[TK_INPUTS].value, VAR_NAMES, what, 0, &t->inputs);
    snprintf(what, sizeof what, "'outputs' of task '%s'", tname);
    read_names(L, f[TK_OUTPUTS].value, VAR_NAMES, what, 0, &t->outputs);
    check_outputs(L, t, tname);

    if (f[TK_PARAMS].value && !is_null(f[TK_PARAMS].value)) {
        snprintf(what, sizeof what, "'params' of task '%s'", tname);
        if (f[TK_PARAMS].value->type != YAML_MAPPING_NODE)
            diag__error(L->diags, pos_of(f[TK_PARAMS].value), "%s must be a mapping, got %s", what,
                        load__describe(f[TK_PARAMS].value, buf, sizeof buf));
        else
            t->params = node_to_json(L, f[TK_PARAMS].value, 1, what);
    }
    if (!t->params)
        t->params = json_object();

    snprintf(what, sizeof what, "'depends_on' of task '%s'", tname);
    read_names(L, f[TK_DEPENDS_ON].value, TASK_NAMES, what, 0, &t->depends_on);
    if (f[TK_EXECUTION].value)
        read_execution(L, f[TK_EXECUTION].value, t, tname);
    if (f[TK_PERMISSIONS].value)
        read_permissions(L, f[TK_PERMISSIONS].value, t, tname);
    if (f[TK_REQUIRES_AUTH].value &&
        !load__parse_bool(f[TK_REQUIRES_AUTH].value, &t->requires_auth))
        diag__error(L->diags, pos_of(f[TK_REQUIRES_AUTH].value),
                    "'requires_auth' must be true or false, got %s (task '%s')",
                    load__describe(f[TK_REQUIRES_AUTH].value, buf, sizeof buf), tname);
}

/* Adds the task to the name index, reporting a duplicate name. */
static void index_task(struct loader *L, size_t i)
{
    struct workflow *wf = L->wf;
    const struct wf_task *t = &wf->tasks[i];
    long first;

    if (!*t->name)
        return;
    first = workflow__index_task(wf, i);
    if (first < 0)
        diag__error(L->diags, t->name_pos, "out of memory");
    else if ((size_t)first != i)
        diag__error(L->diags, t->name_pos, "duplicate task name '%s' (first defined at line %d)",
                    t->name, wf->tasks[first].name_pos.line);
}

void load__read_tasks(struct loader *L, struct ynode *tasks)
{
    struct workflow *wf = L->wf;
    size_t number = 0;
    char buf[64];

    if (tasks->type != YAML_SEQUENCE_NODE) {
        diag__error(L->diags, pos_of(tasks), "'tasks' must be a list of tasks, got %s",
                    load__describe(tasks, buf, sizeof buf));
        return;
    }
    if (tasks->len == 0) {
        diag__error(L->diags, pos_of(tasks),
                    "'tasks' is empty: a workflow needs at least one task");
        return;
    }
    for (size_t i = 0; i < tasks->len; i++) {
        struct ynode *n = load__visit(L, tasks->u.kids[i]);
        struct wf_task *t;

        number++;
        if (!n)
            return;
        if (n->type != YAML_MAPPING_NODE) {
            diag__error(L->diags, pos_of(n),
                        "task #%zu must be a mapping with 'name' and 'plugin', got %s", number,
                        load__describe(n, buf, sizeof buf));
            continue;
        }
        if (wf->n_tasks == L->cap_tasks) {
            size_t cap = L->cap_tasks ? L->cap_tasks * 2 : 8;
            struct wf_task *grown = realloc(wf->tasks, cap * sizeof *grown);
            if (!grown) {
                diag__error(L->diags, pos_of(n), "out of memory");
                return;
            }
            wf->tasks = grown;
            L->cap_tasks = cap;
        }
        t = &wf->tasks[wf->n_tasks++];
        memset(t, 0, sizeof *t);
        read_task(L, n, number, t);
        if (!t->name || !t->params) {
            diag__error(L->diags, pos_of(n), "out of memory");
            return;
        }
        index_task(L, wf->n_tasks - 1);
    }
    /* The doubling left up to half of the array unused; give it back. */
    if (wf->n_tasks < L->cap_tasks) {
        struct wf_task *fit = realloc(wf->tasks, wf->n_tasks * sizeof *fit);
        if (fit) {
            wf->tasks = fit;
            L->cap_tasks = wf->n_tasks;
        }
    }
}
