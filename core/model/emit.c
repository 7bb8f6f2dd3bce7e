/*
 * emit.c - the canonical layout of a whole workflow (emit__workflow_yaml,
 * emit.h): checks the model JSON's shape, builds each part in its canonical
 * key order with default values left out, takes env: entries and comments
 * from the file's text (emit_source.c), and writes it all with emit_write.c.
 *
 * The layout (docs/workflow-format.md, "Canonical layout"): workflow keys in
 * the order name, description, version, mode, env, auth, tasks; env: one
 * entry a line; one block per task with a blank line between tasks, task keys
 * in the order name, plugin, runs_on, description, inputs, outputs, depends_on,
 * execution, permissions, requires_auth, params (runs_on one label as a
 * scalar, more as a list); a list or mapping in flow
 * style ([A, B]) when its line fits in EMIT_WIDTH columns and it holds no
 * multi-line string and no comment, else in block style; multi-line strings
 * as literal blocks.
 *
 * The text is written twice. The first pass only records which keys and
 * items are written, so that a comment whose key the layout leaves out (a
 * default value) moves up to the nearest parent that is written; the second
 * writes, comments in place.
 */
#include "emit.h"
#include "emit_source.h"
#include "emit_write.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The model, checked and in canonical order: what both passes write. */
struct canon {
    json_t *top;    /* name, description, version, mode, auth: in order */
    json_t *env;    /* name -> string or {value, secret: true}, in the model's order */
    json_t *tasks;  /* canonical task objects */
    long *task_src; /* each task's index in the file, or NO_TASK */
};

/* ---------------------------------------------------------------- diagnostics */

static void diag_add(struct emit_diags *d, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void diag_add(struct emit_diags *d, const char *path, const char *fmt, ...)
{
    struct emit_diag *items = realloc(d->items, (d->n + 1) * sizeof *items);
    char msg[512];
    va_list ap;

    if (!items)
        return;
    d->items = items;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    items[d->n].path = strdup(path);
    items[d->n].message = strdup(msg);
    if (items[d->n].path && items[d->n].message) {
        d->n++;
    } else {
        free(items[d->n].path);
        free(items[d->n].message);
    }
}

void emit__diags_free(struct emit_diags *d)
{
    for (size_t i = 0; d && i < d->n; i++) {
        free(d->items[i].path);
        free(d->items[i].message);
    }
    if (d) {
        free(d->items);
        d->items = NULL;
        d->n = 0;
    }
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* Reports the keys of obj that are not in keys. */
static void known_keys(struct emit_diags *d, const char *where, const json_t *obj,
                       const char *const *keys, size_t n)
{
    const char *key;
    const json_t *v;
    char path[256];

    json_object_foreach((json_t *)obj, key, v)
    {
        size_t i = 0;
        while (i < n && strcmp(keys[i], key) != 0)
            i++;
        if (i < n)
            continue;
        /* A path past 255 bytes is cut: it only locates the message, which names the key. */
        if (snprintf(path, sizeof path, "%s%s%s", where, *where ? "." : "", key) < 0)
            path[0] = '\0';
        diag_add(d, path, "unknown key '%s'", key);
    }
}

/* A list of names: an array of strings. Returns it (borrowed) when it is one with items. */
static const json_t *names(struct emit_diags *d, const char *path, const json_t *v)
{
    size_t i;
    const json_t *item;
    char at[300];

    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_array(v)) {
        diag_add(d, path, "expected an array of names, got %s", type_name(v));
        return NULL;
    }
    json_array_foreach(v, i, item)
    {
        if (!json_is_string(item)) {
            snprintf(at, sizeof at, "%s[%zu]", path, i);
            diag_add(d, at, "expected a name (a string), got %s", type_name(item));
            return NULL;
        }
    }
    return json_array_size(v) ? v : NULL;
}

/* ---------------------------------------------------------------- building */

/* A number as the layout writes it: a real without a fraction as an integer (30, not 30.0). */
static json_t *number(const json_t *v)
{
    double d = json_number_value(v);

    if (json_is_real(v) && d == floor(d) && fabs(d) < 9007199254740992.0)
        return json_integer((json_int_t)d);
    return json_deep_copy(v);
}

/* 1 if v is absent or the default: a number equal to def, false, "", an empty list. */
static int is_default(const json_t *v, double def)
{
    if (!v || json_is_null(v) || json_is_false(v))
        return 1;
    if (json_is_number(v))
        return json_number_value(v) == def;
    if (json_is_array(v))
        return json_array_size(v) == 0;
    return 0;
}

static void set_number(json_t *obj, const char *key, const json_t *v, double def)
{
    if (!is_default(v, def))
        json_object_set_new(obj, key, json_is_number(v) ? number(v) : json_deep_copy(v));
}

static json_t *build_execution(struct emit_diags *d, const char *tpath, const json_t *e,
                               json_t *depends_on)
{
    static const char *const keys[] = {"timeout", "retries", "retry_delay", "retry_max_delay",
                                       "trigger", "queue",   "overflow",    "workers",
                                       "restart", "async",   "depends_on"};
    json_t *out = json_object();
    const json_t *v;
    char path[300];

    if (!out || !e || json_is_null(e))
        return out;
    snprintf(path, sizeof path, "%s.execution", tpath);
    if (!json_is_object(e)) {
        diag_add(d, path, "expected an object, got %s", type_name(e));
        return out;
    }
    known_keys(d, path, e, keys, sizeof keys / sizeof keys[0]);
    set_number(out, "timeout", json_object_get(e, "timeout"), 0);
    set_number(out, "retries", json_object_get(e, "retries"), 0);
    set_number(out, "retry_delay", json_object_get(e, "retry_delay"), 0);
    set_number(out, "retry_max_delay", json_object_get(e, "retry_max_delay"), 0);
    snprintf(path, sizeof path, "%s.execution.trigger", tpath);
    if ((v = names(d, path, json_object_get(e, "trigger"))) != NULL)
        json_object_set_new(out, "trigger", json_deep_copy(v));
    set_number(out, "queue", json_object_get(e, "queue"), 0);
    v = json_object_get(e, "overflow");
    if (v && !json_is_null(v) && !(json_is_string(v) && !strcmp(json_string_value(v), "block")))
        json_object_set_new(out, "overflow", json_deep_copy(v));
    set_number(out, "workers", json_object_get(e, "workers"), 1);
    v = json_object_get(e, "restart");
    if (v && !json_is_null(v) &&
        !(json_is_string(v) && !strcmp(json_string_value(v), "on-failure")))
        json_object_set_new(out, "restart", json_deep_copy(v));
    v = json_object_get(e, "async");
    if (v && !json_is_false(v) && !json_is_null(v))
        json_object_set_new(out, "async", json_deep_copy(v));
    /* execution.depends_on is the task's depends_on, written there. */
    snprintf(path, sizeof path, "%s.execution.depends_on", tpath);
    if ((v = names(d, path, json_object_get(e, "depends_on"))) != NULL) {
        size_t i;
        const json_t *name;
        json_array_foreach(v, i, name)
        {
            size_t k;
            const json_t *have;
            int dup = 0;
            json_array_foreach(depends_on, k, have)
            {
                dup |= json_equal(have, name);
            }
            if (!dup)
                json_array_append(depends_on, (json_t *)name);
        }
    }
    return out;
}

static json_t *build_task(struct emit_diags *d, size_t i, const json_t *t)
{
    static const char *const keys[] = {"name",          "plugin",     "description", "inputs",
                                       "outputs",       "depends_on", "execution",   "permissions",
                                       "requires_auth", "params",     "runs_on"};
    static const char *const lists[] = {"inputs", "outputs"};
    json_t *out = json_object(), *deps = json_array(), *exec;
    const json_t *v;
    char tpath[40], path[300];

    snprintf(tpath, sizeof tpath, "tasks[%zu]", i);
    if (!out || !deps)
        goto out;
    if (!json_is_object(t)) {
        diag_add(d, tpath, "expected a task object with 'name' and 'plugin', got %s", type_name(t));
        goto out;
    }
    known_keys(d, tpath, t, keys, sizeof keys / sizeof keys[0]);
    for (int k = 0; k < 2; k++) {
        const char *key = k ? "plugin" : "name";
        snprintf(path, sizeof path, "%s.%s", tpath, key);
        v = json_object_get(t, key);
        if (!v)
            diag_add(d, tpath, "the task has no '%s' (a string)", key);
        else if (!json_is_string(v))
            diag_add(d, path, "expected a string, got %s", type_name(v));
        else
            json_object_set_new(out, key, json_deep_copy(v));
    }
    /* runs_on: one label reads best as `runs_on: edge`, more as a list. */
    snprintf(path, sizeof path, "%s.runs_on", tpath);
    v = json_object_get(t, "runs_on");
    if (json_is_string(v))
        json_object_set_new(out, "runs_on", json_deep_copy(v));
    else if ((v = names(d, path, v)) != NULL)
        json_object_set_new(out, "runs_on", json_array_size(v) == 1
                                                ? json_deep_copy(json_array_get(v, 0))
                                                : json_deep_copy(v));
    v = json_object_get(t, "description");
    snprintf(path, sizeof path, "%s.description", tpath);
    if (json_is_string(v))
        json_object_set_new(out, "description", json_deep_copy(v));
    else if (v && !json_is_null(v))
        diag_add(d, path, "expected a string, got %s", type_name(v));
    for (size_t k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s.%s", tpath, lists[k]);
        if ((v = names(d, path, json_object_get(t, lists[k]))) != NULL)
            json_object_set_new(out, lists[k], json_deep_copy(v));
    }
    snprintf(path, sizeof path, "%s.depends_on", tpath);
    if ((v = names(d, path, json_object_get(t, "depends_on"))) != NULL)
        json_array_extend(deps, (json_t *)v);
    exec = build_execution(d, tpath, json_object_get(t, "execution"), deps);
    if (json_array_size(deps))
        json_object_set(out, "depends_on", deps);
    if (exec && json_object_size(exec))
        json_object_set(out, "execution", exec);
    json_decref(exec);
    snprintf(path, sizeof path, "%s.permissions", tpath);
    v = json_object_get(t, "permissions");
    /* The model's list is the file's permissions: {required: [...]}; both are read. */
    if (json_is_object(v))
        v = json_object_get(v, "required");
    if ((v = names(d, path, v)) != NULL) {
        json_t *perm = json_object();
        json_object_set_new(perm, "required", json_deep_copy(v));
        json_object_set_new(out, "permissions", perm);
    }
    v = json_object_get(t, "requires_auth");
    if (v && !json_is_false(v) && !json_is_null(v))
        json_object_set_new(out, "requires_auth", json_deep_copy(v));
    v = json_object_get(t, "params");
    snprintf(path, sizeof path, "%s.params", tpath);
    if (json_is_object(v) && json_object_size(v))
        json_object_set_new(out, "params", json_deep_copy(v));
    else if (v && !json_is_null(v) && !json_is_object(v))
        diag_add(d, path, "expected an object, got %s", type_name(v));
out:
    json_decref(deps);
    return out;
}

/* {{ENV:X}} of raw substituted as the loader would; NULL when a reference cannot be. */
static char *resolve(const char *raw, const struct emit_options *o)
{
    struct sbuf b = {0};
    const char *p = raw;

    sbuf__puts(&b, "");
    for (;;) {
        const char *ref = strstr(p, "{{ENV:"), *close, *value;
        char name[65];
        size_t n;

        if (!ref) {
            sbuf__puts(&b, p);
            break;
        }
        sbuf__put(&b, p, (size_t)(ref - p));
        close = strstr(ref + 6, "}}");
        n = close ? (size_t)(close - ref - 6) : 0;
        if (!close || n == 0 || n >= sizeof name)
            goto fail;
        memcpy(name, ref + 6, n);
        name[n] = 0;
        value = o && o->getenv_fn ? o->getenv_fn(o->getenv_ctx, name) : getenv(name);
        if (!value)
            goto fail;
        sbuf__puts(&b, value);
        p = close + 2;
    }
    if (b.failed)
        goto fail;
    return b.s;
fail:
    free(b.s);
    return NULL;
}

/* The entry as the file writes it: the raw text, wrapped when it is a secret. */
static json_t *entry(const char *value, int secret)
{
    json_t *v;

    if (!secret)
        return json_string(value);
    v = json_object();
    json_object_set_new(v, "value", json_string(value));
    json_object_set_new(v, "secret", json_true());
    return v;
}

/*
 * One env: entry. The model holds values resolved and secrets as "<secret>":
 * an entry the model did not change is written as the file has it, and a
 * placeholder never becomes a value.
 */
static json_t *build_env_entry(struct emit_diags *d, const struct emit_source *src,
                               const struct emit_options *o, const char *name, const json_t *v)
{
    const struct emit_env_entry *e = src ? emit_source__env(src, name) : NULL;
    const char *value;
    char path[300];
    int secret;

    snprintf(path, sizeof path, "env.%s", name);
    if (json_is_object(v)) {
        const json_t *s = json_object_get(v, "secret");
        static const char *const keys[] = {"value", "secret"};
        known_keys(d, path, v, keys, 2);
        if (s && !json_is_boolean(s))
            diag_add(d, path, "'secret' must be true or false, got %s", type_name(s));
        secret = json_is_true(s);
        v = json_object_get(v, "value");
    } else {
        secret = e && e->secret;
    }
    if (!json_is_string(v)) {
        diag_add(d, path, "expected a string (or {\"value\": ..., \"secret\": true}), got %s",
                 v ? type_name(v) : "nothing");
        return NULL;
    }
    value = json_string_value(v);
    if (!strcmp(value, "<secret>")) {
        if (!e || !e->raw) {
            diag_add(d, path,
                     "is the placeholder \"<secret>\" and the file has no value for it: give the "
                     "secret's value or {{ENV:NAME}}, or remove the variable");
            return NULL;
        }
        return entry(e->raw, e->secret || secret);
    }
    if (e && e->raw) {
        char *resolved = strcmp(value, e->raw) ? resolve(e->raw, o) : NULL;
        int same = !strcmp(value, e->raw) || (resolved && !strcmp(resolved, value));
        free(resolved);
        if (same)
            return entry(e->raw, e->secret || secret);
    }
    return entry(value, secret);
}

/* The file's base name without its extension: the name a workflow without name: gets. */
static int is_default_name(const char *name, const char *file)
{
    const char *base = file ? strrchr(file, '/') : NULL, *dot;
    size_t n;

    if (!file)
        return 0;
    base = base ? base + 1 : file;
    dot = strrchr(base, '.');
    n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    return strlen(name) == n && !strncmp(name, base, n);
}

/* 1 if a task of the model is called name. */
static int model_has_task(const struct canon *c, const char *name)
{
    size_t i;
    json_t *t;

    json_array_foreach(c->tasks, i, t)
    {
        const char *have = json_string_value(json_object_get(t, "name"));
        if (name && have && !strcmp(have, name))
            return 1;
    }
    return 0;
}

/*
 * A renamed task keeps its comments: a task of the model that no task of the
 * file is called takes the comments of the file's task at the same place,
 * when no task of the model has that one's name (it was renamed, or removed
 * and another put in its place, which cannot be told apart).
 */
static void match_renamed(struct canon *c, const struct emit_source *src)
{
    for (size_t i = 0; i < json_array_size(c->tasks) && i < src->n_tasks; i++) {
        int taken = 0;
        if (c->task_src[i] != NO_TASK || model_has_task(c, src->task_names[i]))
            continue;
        for (size_t k = 0; k < json_array_size(c->tasks); k++)
            taken |= c->task_src[k] == (long)i;
        if (!taken)
            c->task_src[i] = (long)i;
    }
}

static int build(struct canon *c, const json_t *m, const struct emit_source *src,
                 const struct emit_options *o, struct emit_diags *d)
{
    static const char *const keys[] = {"name", "file", "description", "version",
                                       "mode", "auth", "env",         "tasks"};
    static const char *const auth_keys[] = {"url", "timeout", "cache_ttl", "ca_file"};
    const json_t *v, *tasks;
    const char *file = o && o->file ? o->file : json_string_value(json_object_get(m, "file"));
    size_t before = d->n, i;

    c->top = json_object();
    c->env = json_object();
    c->tasks = json_array();
    if (!c->top || !c->env || !c->tasks)
        return 0;
    if (!json_is_object(m)) {
        diag_add(d, "", "expected the workflow model, an object, got %s", type_name(m));
        return 0;
    }
    known_keys(d, "", m, keys, sizeof keys / sizeof keys[0]);
    v = json_object_get(m, "name");
    if (v && !json_is_string(v))
        diag_add(d, "name", "expected a string, got %s", type_name(v));
    else if (v && !(src && !src->has_name && is_default_name(json_string_value(v), file)))
        json_object_set(c->top, "name", (json_t *)v);
    for (int k = 0; k < 2; k++) {
        const char *key = k ? "version" : "description";
        v = json_object_get(m, key);
        if (json_is_string(v))
            json_object_set(c->top, key, (json_t *)v);
        else if (v && !json_is_null(v))
            diag_add(d, key, "expected a string, got %s", type_name(v));
    }
    v = json_object_get(m, "mode");
    if (v && !json_is_null(v) &&
        !(json_is_string(v) &&
          (!strcmp(json_string_value(v), "oneshot") || !strcmp(json_string_value(v), "reactive"))))
        diag_add(d, "mode", "expected \"oneshot\" or \"reactive\", got %s", type_name(v));
    else if (v && json_is_string(v) && !strcmp(json_string_value(v), "reactive"))
        json_object_set(c->top, "mode", (json_t *)v);
    v = json_object_get(m, "env");
    if (v && !json_is_null(v) && !json_is_object(v)) {
        diag_add(d, "env", "expected an object of variables, got %s", type_name(v));
    } else if (v) {
        const char *name;
        const json_t *value;
        json_object_foreach((json_t *)v, name, value)
        {
            json_t *e = build_env_entry(d, src, o, name, value);
            if (e)
                json_object_set_new(c->env, name, e);
        }
    }
    v = json_object_get(m, "auth");
    if (v && !json_is_null(v) && !json_is_object(v)) {
        diag_add(d, "auth", "expected an object, got %s", type_name(v));
    } else if (v) {
        json_t *auth = json_object();
        const json_t *ttl = json_object_get(v, "cache_ttl");
        known_keys(d, "auth", v, auth_keys, sizeof auth_keys / sizeof auth_keys[0]);
        if (json_object_get(v, "url"))
            json_object_set(auth, "url", json_object_get(v, "url"));
        set_number(auth, "timeout", json_object_get(v, "timeout"), 0);
        /* A negative cache_ttl is the SDK's default: what no cache_ttl: means. */
        if (ttl && !(json_is_number(ttl) && json_number_value(ttl) < 0))
            json_object_set_new(auth, "cache_ttl",
                                json_is_number(ttl) ? number(ttl) : json_deep_copy(ttl));
        if (json_object_get(v, "ca_file"))
            json_object_set(auth, "ca_file", json_object_get(v, "ca_file"));
        json_object_set_new(c->top, "auth", auth);
    }
    tasks = json_object_get(m, "tasks");
    if (!json_is_array(tasks)) {
        diag_add(d, "tasks", "expected an array of tasks, got %s",
                 tasks ? type_name(tasks) : "nothing");
        return d->n == before;
    }
    c->task_src = calloc(json_array_size(tasks) + 1, sizeof *c->task_src);
    if (!c->task_src)
        return 0;
    json_array_foreach(tasks, i, v)
    {
        json_t *t = build_task(d, i, v);
        const char *name = json_string_value(json_object_get(t, "name"));
        long s = src ? emit_source__task(src, name) : -1;
        /* A second task of the same name takes no comments: they are the first's. */
        for (size_t k = 0; s >= 0 && k < i; k++)
            if (c->task_src[k] == s)
                s = -1;
        c->task_src[i] = s >= 0 ? s : NO_TASK;
        if (!t || json_array_append_new(c->tasks, t))
            return 0;
    }
    if (src)
        match_renamed(c, src);
    return d->n == before;
}

static void canon_free(struct canon *c)
{
    json_decref(c->top);
    json_decref(c->env);
    json_decref(c->tasks);
    free(c->task_src);
}

/* ---------------------------------------------------------------- writing */

static void write_env(struct writer *w, const json_t *env)
{
    const char *name;
    json_t *value;
    size_t at;

    if (!json_object_size(env))
        return;
    at = emit_write__push_key(&w->path, "env");
    emit_write__anchor(w, 2, 0);
    emit_write__indent(w, 2);
    emit_write__span(w);
    emit_write__put(w, "env:", 4);
    emit_write__newline(w);
    json_object_foreach((json_t *)env, name, value)
    {
        emit_write__field(w, 4, name, value, 1);
    }
    emit_write__pop(&w->path, at);
}

static void write_workflow(struct writer *w, const struct canon *c)
{
    const char *key;
    json_t *v;
    size_t i, at;
    int n = json_array_size(c->tasks) > 0;

    w->task_src = -1;
    w->task_model = -1;
    if (w->src && w->src->header) {
        emit_write__put(w, w->src->header, strlen(w->src->header));
        emit_write__put(w, "\n", 1);
    }
    emit_write__anchor(w, 0, 0);
    emit_write__span(w);
    emit_write__put(w, "workflow:", 9);
    emit_write__newline(w);
    json_object_foreach(c->top, key, v)
    {
        if (strcmp(key, "auth") != 0)
            emit_write__field(w, 2, key, v, 1);
    }
    write_env(w, c->env);
    if ((v = json_object_get(c->top, "auth")) != NULL)
        emit_write__field(w, 2, "auth", v, 1);
    at = emit_write__push_key(&w->path, "tasks");
    emit_write__anchor(w, 2, 0);
    emit_write__indent(w, 2);
    emit_write__span(w);
    emit_write__put(w, n ? "tasks:" : "tasks: []", n ? 6 : 9);
    emit_write__newline(w);
    emit_write__pop(&w->path, at);
    json_array_foreach(c->tasks, i, v)
    {
        w->task_src = c->task_src[i];
        w->task_model = (long)i;
        if (i)
            emit_write__put(w, "\n", 1);
        emit_write__item(w, 4, v, 1, 1);
    }
    w->task_src = -1;
    w->task_model = -1;
    if (w->src && w->src->footer) {
        emit_write__put(w, "\n", 1);
        emit_write__put(w, w->src->footer, strlen(w->src->footer));
        emit_write__put(w, "\n", 1);
    }
}

/* The number of segments of a path (".env.X" has 2). */
static size_t depth(const char *p)
{
    size_t n = 0;
    int quoted = 0;

    for (; *p; p++) {
        if (quoted) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == '"')
                quoted = 0;
            continue;
        }
        if (*p == '"')
            quoted = 1;
        else if (*p == '.' || *p == '[')
            n++;
    }
    return n;
}

/*
 * Where each comment goes, from what the first pass wrote: its own key, else
 * the nearest written parent inside its task (or its env: entry, or its
 * workflow key); none when that is gone too (the task was removed).
 */
static int place_comments(struct emit_source *src)
{
    for (size_t i = 0; i < src->n_comments; i++) {
        struct emit_comment *c = &src->comments[i];
        size_t len = c->written ? c->written - 1 : 0;
        size_t need = c->task >= 0 || !*c->path ? 0 : strncmp(c->path, ".env.", 5) == 0 ? 2 : 1;
        free(c->at_path);
        c->at_path = NULL;
        c->at_task = c->task;
        if (!c->written)
            continue;
        c->at_path = strndup(c->path, len);
        if (!c->at_path)
            return 0;
        if (depth(c->at_path) < need) {
            free(c->at_path);
            c->at_path = NULL;
        }
    }
    return 1;
}

static void writer_free(struct writer *w)
{
    free(w->b.s);
    free(w->path.s);
    free(w->trail.s);
    for (size_t i = 0; i < w->n_spans; i++)
        free(w->spans[i].path);
    free(w->spans);
}

static int run_pass(struct writer *w, struct emit_source *src, const struct canon *c, int pass)
{
    memset(w, 0, sizeof *w);
    w->line = 1;
    w->src = src;
    w->pass = pass;
    emit_write__put(w, "", 0);
    emit_write__pop(&w->path, 0);
    write_workflow(w, c);
    return !w->failed && !w->b.failed && !w->path.failed && !w->trail.failed;
}

int emit__workflow_yaml(const json_t *model, const struct emit_options *opts, struct emit_out *out,
                        struct emit_diags *diags)
{
    struct emit_source source = {0}, *src = NULL;
    struct canon c = {0};
    struct writer w = {0};
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (opts && opts->source && emit_source__scan(opts->source, opts->source_len, &source))
        src = &source;
    if (!build(&c, model, src, opts, diags))
        goto out;
    if (src) {
        if (!run_pass(&w, src, &c, 1) || !place_comments(src))
            goto oom;
        writer_free(&w);
    }
    if (!run_pass(&w, src, &c, 2))
        goto oom;
    out->text = w.b.s;
    out->len = w.b.len;
    out->spans = w.spans;
    out->n_spans = w.n_spans;
    w.b.s = NULL;
    w.spans = NULL;
    w.n_spans = 0;
    rc = 0;
    goto out;
oom:
    diag_add(diags, "", "out of memory");
out:
    writer_free(&w);
    canon_free(&c);
    emit_source__free(&source);
    return rc;
}

void emit__out_free(struct emit_out *out)
{
    if (!out)
        return;
    free(out->text);
    for (size_t i = 0; i < out->n_spans; i++)
        free(out->spans[i].path);
    free(out->spans);
    memset(out, 0, sizeof *out);
}

const char *emit__path_at(const struct emit_out *out, struct wf_pos pos)
{
    size_t lo = 0, hi = out->n_spans;
    int col = pos.col > 0 ? pos.col : 1;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct emit_span *s = &out->spans[mid];
        if (s->line < pos.line || (s->line == pos.line && s->col <= col))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? out->spans[lo - 1].path : "";
}
