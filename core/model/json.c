/*
 * json.c - a loaded workflow as JSON (workflow__to_json, workflow__to_json_text):
 * what the coordinator publishes on the run's `workflow` topic, secrets
 * replaced by "<secret>", built with equal values shared and written one task
 * at a time so that a workflow of thousands of tasks stays small in memory.
 */
#include "workflow.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/*
 * The workflow JSON repeats much of itself: thousands of tasks with the same
 * execution settings, empty lists, the same plugin, depends_on naming tasks
 * whose names are already in the document. Jansson values are reference
 * counted, so an equal value is built once and referenced again; at 1,000
 * tasks that is ~2 MB less for the coordinator to hold while it publishes the
 * workflow, and the text json_dumps writes is the same.
 */
struct json_share {
    const struct workflow *wf;
    json_t *empty;                 /* the one empty list */
    json_t **names;                /* task i's name as a JSON string, built on first use */
    const struct wf_task *exec_of; /* the task whose execution object is exec */
    json_t *exec;
    const char *plugin_of; /* the plugin name that plugin holds */
    json_t *plugin;
};

static void share_init(struct json_share *sh, const struct workflow *wf)
{
    memset(sh, 0, sizeof *sh);
    sh->wf = wf;
    sh->empty = json_array();
    sh->names = calloc(wf->n_tasks + 1, sizeof *sh->names);
}

static void share_free(struct json_share *sh)
{
    for (size_t i = 0; sh->names && i < sh->wf->n_tasks; i++)
        json_decref(sh->names[i]);
    free(sh->names);
    json_decref(sh->empty);
    json_decref(sh->exec);
    json_decref(sh->plugin);
}

/* Task i's name as a JSON string: a new reference, or NULL. */
static json_t *share_name(struct json_share *sh, size_t i)
{
    if (!sh->names)
        return json_string(sh->wf->tasks[i].name);
    if (!sh->names[i])
        sh->names[i] = json_string(sh->wf->tasks[i].name);
    return json_incref(sh->names[i]);
}

static json_t *names_json(struct json_share *sh, const struct wf_list *l, int tasks)
{
    json_t *a;

    if (l->n == 0 && sh->empty)
        return json_incref(sh->empty);
    a = json_array();
    for (size_t i = 0; a && i < l->n; i++) {
        long k = tasks ? workflow__find_task(sh->wf, l->items[i].name) : -1;
        json_array_append_new(a,
                              k >= 0 ? share_name(sh, (size_t)k) : json_string(l->items[i].name));
    }
    return a;
}

static int same_names(const struct wf_list *a, const struct wf_list *b)
{
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->items[i].name, b->items[i].name) != 0)
            return 0;
    return 1;
}

/* 1 if the execution objects of a and b would be equal. */
static int same_execution(const struct wf_task *a, const struct wf_task *b)
{
    return a->timeout == b->timeout && !a->async == !b->async && a->workers == b->workers &&
           a->retries == b->retries && a->retry_delay == b->retry_delay &&
           a->retry_max_delay == b->retry_max_delay && a->queue == b->queue &&
           a->restart == b->restart && a->overflow == b->overflow &&
           same_names(&a->trigger, &b->trigger);
}

static json_t *execution_json(struct json_share *sh, const struct wf_task *t)
{
    json_t *exec;

    if (sh->exec && same_execution(sh->exec_of, t))
        return json_incref(sh->exec);
    exec = json_object();
    if (!exec)
        return NULL;
    json_object_set_new(exec, "timeout", json_real(t->timeout));
    json_object_set_new(exec, "async", json_boolean(t->async));
    json_object_set_new(exec, "workers", json_integer(t->workers));
    json_object_set_new(exec, "retries", json_integer(t->retries));
    json_object_set_new(exec, "retry_delay", json_real(t->retry_delay));
    json_object_set_new(exec, "retry_max_delay", json_real(t->retry_max_delay));
    json_object_set_new(exec, "queue", json_integer(t->queue));
    json_object_set_new(exec, "restart", json_string(workflow__restart_name(t->restart)));
    json_object_set_new(exec, "overflow", json_string(workflow__overflow_name(t->overflow)));
    json_object_set_new(exec, "trigger", names_json(sh, &t->trigger, 0));
    json_decref(sh->exec);
    sh->exec = json_incref(exec);
    sh->exec_of = t;
    return exec;
}

static json_t *plugin_json(struct json_share *sh, const char *plugin)
{
    if (!sh->plugin || strcmp(sh->plugin_of, plugin) != 0) {
        json_decref(sh->plugin);
        sh->plugin = json_string(plugin);
        sh->plugin_of = plugin;
    }
    return json_incref(sh->plugin);
}

/* Task i as JSON, or NULL when out of memory. */
static json_t *task_json(struct json_share *sh, size_t i)
{
    const struct wf_task *t = &sh->wf->tasks[i];
    json_t *task = json_object();

    if (!task)
        return NULL;
    json_object_set_new(task, "name", share_name(sh, i));
    json_object_set_new(task, "plugin", plugin_json(sh, t->plugin ? t->plugin : ""));
    if (t->description)
        json_object_set_new(task, "description", json_string(t->description));
    json_object_set_new(task, "inputs", names_json(sh, &t->inputs, 0));
    json_object_set_new(task, "outputs", names_json(sh, &t->outputs, 0));
    json_object_set_new(task, "depends_on", names_json(sh, &t->depends_on, 1));
    /* The workflow's own params, referenced rather than copied: see workflow.h. */
    json_object_set_new(task, "params", t->params ? json_incref(t->params) : json_object());
    json_object_set_new(task, "execution", execution_json(sh, t));
    json_object_set_new(task, "permissions", names_json(sh, &t->permissions, 0));
    json_object_set_new(task, "requires_auth", json_boolean(t->requires_auth));
    /* Only when given: a local task's JSON stays as it was before agents existed. */
    if (t->runs_on.n)
        json_object_set_new(task, "runs_on", names_json(sh, &t->runs_on, 0));
    return task;
}

/*
 * The root object with every key but "tasks", which is set to tasks (a new
 * reference is taken) in its place; NULL when out of memory.
 */
static json_t *root_json(const struct workflow *wf, json_t *tasks)
{
    json_t *root = json_object(), *env = json_object();

    if (!root || !env)
        goto fail;
    json_object_set_new(root, "name", json_string(wf->name ? wf->name : ""));
    json_object_set_new(root, "file", json_string(wf->file ? wf->file : ""));
    if (wf->description)
        json_object_set_new(root, "description", json_string(wf->description));
    if (wf->version)
        json_object_set_new(root, "version", json_string(wf->version));
    json_object_set_new(root, "mode", json_string(wf->reactive ? "reactive" : "oneshot"));
    if (wf->auth.set) {
        json_t *auth = json_object();
        if (wf->auth.url)
            json_object_set_new(auth, "url", json_string(wf->auth.url));
        json_object_set_new(auth, "timeout", json_real(wf->auth.timeout));
        json_object_set_new(auth, "cache_ttl", json_real(wf->auth.cache_ttl));
        if (wf->auth.ca_file)
            json_object_set_new(auth, "ca_file", json_string(wf->auth.ca_file));
        json_object_set_new(root, "auth", auth);
    }
    for (size_t i = 0; i < wf->n_vars; i++) {
        const struct wf_var *v = &wf->vars[i];
        json_object_set_new(env, v->name,
                            json_string(v->secret  ? "<secret>"
                                        : v->value ? v->value
                                                   : ""));
    }
    json_object_set_new(root, "env", env);
    env = NULL;
    if (json_object_set(root, "tasks", tasks))
        goto fail;
    return root;
fail:
    json_decref(root);
    json_decref(env);
    return NULL;
}

json_t *workflow__to_json(const struct workflow *wf)
{
    struct json_share sh;
    json_t *root = NULL, *tasks = NULL;

    if (!wf)
        return NULL;
    share_init(&sh, wf);
    tasks = json_array();
    if (!tasks || !sh.empty)
        goto fail;
    for (size_t i = 0; i < wf->n_tasks; i++)
        if (json_array_append_new(tasks, task_json(&sh, i)))
            goto fail;
    root = root_json(wf, tasks);
fail:
    json_decref(tasks);
    share_free(&sh);
    return root;
}

/* A growing string that json_dump_callback appends to. */
struct text {
    char *s;
    size_t len, cap;
};

static int text_append(const char *buf, size_t size, void *data)
{
    struct text *t = data;

    if (t->len + size + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        char *bigger;
        while (cap < t->len + size + 1)
            cap *= 2;
        bigger = realloc(t->s, cap);
        if (!bigger)
            return -1;
        t->s = bigger;
        t->cap = cap;
    }
    memcpy(t->s + t->len, buf, size);
    t->len += size;
    t->s[t->len] = '\0';
    return 0;
}

/* Appends v as compact JSON; 0 on success. */
static int text_dump(struct text *t, const json_t *v)
{
    return json_dump_callback(v, text_append, t, JSON_COMPACT | JSON_ENCODE_ANY);
}

char *workflow__to_json_text(const struct workflow *wf, json_t *extra)
{
    struct json_share sh;
    struct text out = {0};
    json_t *root = NULL, *placeholder = NULL, *value, *key = NULL;
    const char *name;
    char *fit;
    int failed = 1, first = 1;

    if (!wf)
        return NULL;
    share_init(&sh, wf);
    placeholder = json_array();
    if (!placeholder || !sh.empty)
        goto out;
    root = root_json(wf, placeholder);
    if (!root || (extra && json_object_update(root, extra)))
        goto out;
    /* The members in the order json_dumps writes them; "tasks" one task at a time. */
    if (text_append("{", 1, &out))
        goto out;
    json_object_foreach(root, name, value)
    {
        key = json_string(name);
        if (!key || (!first && text_append(",", 1, &out)) || text_dump(&out, key) ||
            text_append(":", 1, &out))
            goto out;
        json_decref(key);
        key = NULL;
        first = 0;
        if (value != placeholder) {
            if (text_dump(&out, value))
                goto out;
            continue;
        }
        if (text_append("[", 1, &out))
            goto out;
        for (size_t i = 0; i < wf->n_tasks; i++) {
            json_t *task = task_json(&sh, i);
            int err = !task || (i > 0 && text_append(",", 1, &out)) || text_dump(&out, task);
            json_decref(task);
            if (err)
                goto out;
        }
        if (text_append("]", 1, &out))
            goto out;
    }
    if (text_append("}", 1, &out))
        goto out;
    failed = 0;
out:
    json_decref(key);
    json_decref(root);
    json_decref(placeholder);
    share_free(&sh);
    if (failed) {
        free(out.s);
        out.s = NULL;
    } else if ((fit = realloc(out.s, out.len + 1)) != NULL) {
        /* The doubling left up to half of the buffer unused; give it back. */
        out.s = fit;
    }
    return out.s;
}
