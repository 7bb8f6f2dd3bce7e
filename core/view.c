/*
 * view.c - the typed view of the runs on a broker (see view.h): messages in,
 * runs, tasks and variables out.
 *
 * Each retained topic of a run maps to one place in its struct run_view: the
 * record (state), the workflow, a task's report (tasks/<T>/state), a
 * variable's value (vars/<V>) and the control command. A message replaces
 * what its topic said before; an empty payload (a deleted retained topic)
 * removes it; a malformed one is left out, so that a stranger's message never
 * makes the view guess.
 *
 * The lists keep the order a reader expects: the workflow's tasks and
 * variables in its order, then the others as they appeared. Entries outside
 * the workflow are kept only while the bus holds something for them.
 */
#include "view.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* The workflow JSON's stand-in for a secret's value (model/json.c). */
#define SECRET_MASK "<secret>"
/* The permission token is a secret whatever the workflow says (docs/security.md). */
#define AUTH_TOKEN_VAR "AUTH_TOKEN"

struct view {
    struct run_view **runs;
    size_t n, cap;
    size_t last; /* where the last run was found: a run's messages tend to come together */
};

/* ------------------------------------------------------------------------ */
/* Lists of named entries                                                    */
/* ------------------------------------------------------------------------ */

/*
 * The task and variable lists share their handling: both element types
 * start with a struct view_key, so a list is a byte array of elements of
 * one size, found by name and kept sorted (the workflow's entries by their
 * place, then the others by their arrival).
 */
struct list {
    void **items; /* &rv->tasks or &rv->vars */
    size_t *n;
    size_t size; /* of one element */
};

static struct view_key *key_at(const struct list *l, size_t i)
{
    return (struct view_key *)((char *)*l->items + i * l->size);
}

static long list_find(const struct list *l, const char *name)
{
    for (size_t i = 0; i < *l->n; i++)
        if (strcmp(key_at(l, i)->name, name) == 0)
            return (long)i;
    return -1;
}

/* Appends a zeroed entry called name; NULL when out of memory. */
static struct view_key *list_add(const struct list *l, const char *name)
{
    char *grown = realloc(*l->items, (*l->n + 1) * l->size);
    struct view_key *k;

    if (!grown)
        return NULL;
    *l->items = grown;
    k = (struct view_key *)(grown + *l->n * l->size);
    memset(k, 0, l->size);
    k->name = strdup(name);
    if (!k->name)
        return NULL;
    k->wf_pos = VIEW_NOT_IN_WORKFLOW;
    (*l->n)++;
    return k;
}

/* Removes entry i (its contents already freed by the caller). */
static void list_remove(const struct list *l, size_t i)
{
    char *base = *l->items;

    memmove(base + i * l->size, base + (i + 1) * l->size, (*l->n - i - 1) * l->size);
    (*l->n)--;
}

/* Moves entry i to the end: an entry outside the workflow that appeared again. */
static void list_to_end(const struct list *l, size_t i, void *scratch)
{
    char *base = *l->items;

    memcpy(scratch, base + i * l->size, l->size);
    list_remove(l, i);
    memcpy(base + *l->n * l->size, scratch, l->size);
    (*l->n)++;
}

static int by_place(const void *a, const void *b)
{
    const struct view_key *x = a, *y = b;

    if (x->wf_pos != y->wf_pos)
        return x->wf_pos < y->wf_pos ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void list_sort(const struct list *l)
{
    if (*l->n > 1)
        qsort(*l->items, *l->n, l->size, by_place);
}

/* ------------------------------------------------------------------------ */
/* Runs                                                                      */
/* ------------------------------------------------------------------------ */

static struct list task_list(struct run_view *rv)
{
    return (struct list){(void **)&rv->tasks, &rv->n_tasks, sizeof *rv->tasks};
}

static struct list var_list(struct run_view *rv)
{
    return (struct list){(void **)&rv->vars, &rv->n_vars, sizeof *rv->vars};
}

static void task_clear(struct view_task *t)
{
    tracker__report_clear(&t->report);
    t->reported = 0;
}

static void var_clear(struct view_var *v)
{
    free(v->value);
    v->value = NULL;
    v->value_len = 0;
}

static void record_clear(struct run_view *rv)
{
    free(rv->state_name);
    free(rv->error);
    rv->has_record = 0;
    rv->state_name = rv->error = NULL;
    rv->state = FB_RUN_UNKNOWN;
    rv->at = rv->started = -1;
    rv->paused = 0;
    rv->mode = VIEW_MODE_UNSAID;
    rv->has_exit = rv->exit_code = 0;
}

/* Forgets the workflow: its entries go, unless the bus holds something for them. */
static void workflow_clear(struct run_view *rv)
{
    struct list tl = task_list(rv), vl = var_list(rv);

    free(rv->workflow);
    free(rv->path);
    rv->has_workflow = 0;
    rv->workflow = rv->path = NULL;
    rv->workflow_mode = VIEW_MODE_UNSAID;
    rv->workflow_started = -1;
    for (size_t i = rv->n_tasks; i-- > 0;) {
        rv->tasks[i].key.wf_pos = VIEW_NOT_IN_WORKFLOW;
        if (!rv->tasks[i].reported) {
            free(rv->tasks[i].key.name);
            list_remove(&tl, i);
        }
    }
    for (size_t i = rv->n_vars; i-- > 0;) {
        rv->vars[i].key.wf_pos = VIEW_NOT_IN_WORKFLOW;
        rv->vars[i].secret = 0;
        if (!rv->vars[i].value) {
            free(rv->vars[i].key.name);
            list_remove(&vl, i);
        }
    }
    rv->n_workflow_tasks = rv->n_workflow_vars = 0;
    list_sort(&tl);
    list_sort(&vl);
}

static void run_free(struct run_view *rv)
{
    if (!rv)
        return;
    free(rv->owner_host);
    json_decref(rv->placements);
    record_clear(rv);
    workflow_clear(rv);
    for (size_t i = 0; i < rv->n_tasks; i++) {
        task_clear(&rv->tasks[i]);
        free(rv->tasks[i].key.name);
    }
    for (size_t i = 0; i < rv->n_vars; i++) {
        var_clear(&rv->vars[i]);
        free(rv->vars[i].key.name);
    }
    free(rv->tasks);
    free(rv->vars);
    free(rv->run_id);
    free(rv);
}

struct view *view__new(void)
{
    return calloc(1, sizeof(struct view));
}

void view__free(struct view *vw)
{
    if (!vw)
        return;
    for (size_t i = 0; i < vw->n; i++)
        run_free(vw->runs[i]);
    free(vw->runs);
    free(vw);
}

static struct run_view *find_run(const struct view *vw, const char *id, size_t len, size_t *at)
{
    for (size_t k = 0; k < vw->n; k++) {
        size_t i = (vw->last + k) % vw->n;
        const char *rid = vw->runs[i]->run_id;
        if (strncmp(rid, id, len) == 0 && rid[len] == '\0') {
            *at = i;
            return vw->runs[i];
        }
    }
    return NULL;
}

/* The run called id (len bytes), made when new; NULL when out of memory. */
static struct run_view *run_of(struct view *vw, const char *id, size_t len)
{
    struct run_view *rv = find_run(vw, id, len, &vw->last);

    if (rv)
        return rv;
    if (vw->n == vw->cap) {
        size_t cap = vw->cap ? vw->cap * 2 : 16;
        struct run_view **grown = realloc(vw->runs, cap * sizeof *grown);
        if (!grown)
            return NULL;
        vw->runs = grown;
        vw->cap = cap;
    }
    rv = calloc(1, sizeof *rv);
    if (!rv || !(rv->run_id = strndup(id, len))) {
        free(rv);
        return NULL;
    }
    record_clear(rv);
    rv->workflow_started = -1;
    vw->last = vw->n;
    vw->runs[vw->n++] = rv;
    return rv;
}

/* ------------------------------------------------------------------------ */
/* Messages                                                                  */
/* ------------------------------------------------------------------------ */

/* A member that is a number, else -1 (times and counts are never negative). */
static double number_or_unknown(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : -1;
}

static char *string_or_null(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? strdup(s) : NULL;
}

static enum view_mode mode_of(const json_t *o)
{
    const char *mode = json_string_value(json_object_get(o, "mode"));

    if (!mode)
        return VIEW_MODE_UNSAID;
    return strcmp(mode, "reactive") == 0 ? VIEW_MODE_REACTIVE : VIEW_MODE_ONESHOT;
}

/* Loads a record's JSON: an object, or NULL (after which the message is left out). */
static json_t *load_object(const char *payload, size_t len)
{
    json_t *o = json_loadb(payload, len, 0, NULL);

    if (!json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static enum view_change on_record(struct run_view *rv, const char *payload, size_t len)
{
    json_t *o, *exit;

    if (len == 0) {
        record_clear(rv);
        return VIEW_RUN;
    }
    if (!(o = load_object(payload, len)))
        return VIEW_NONE;
    record_clear(rv);
    rv->has_record = 1;
    rv->state_name = string_or_null(o, "state");
    rv->state = fb_run_state_parse(rv->state_name);
    rv->at = number_or_unknown(o, "at");
    rv->started = number_or_unknown(o, "started");
    rv->paused = json_is_true(json_object_get(o, "paused"));
    rv->mode = mode_of(o);
    exit = json_object_get(o, "exit");
    if (json_is_integer(exit)) {
        rv->has_exit = 1;
        /* Exit codes are 0..255; a record with more is not ours, and is clamped. */
        rv->exit_code = json_integer_value(exit) > INT_MAX   ? INT_MAX
                        : json_integer_value(exit) < INT_MIN ? INT_MIN
                                                             : (int)json_integer_value(exit);
    }
    rv->error = string_or_null(o, "error");
    json_decref(o);
    return VIEW_RUN;
}

/* Makes name an entry of the workflow at place pos (unless it is one already). */
static struct view_key *workflow_entry(struct list *l, const char *name, size_t *pos)
{
    long i = list_find(l, name);
    struct view_key *k = i >= 0 ? key_at(l, (size_t)i) : list_add(l, name);

    if (k && k->wf_pos == VIEW_NOT_IN_WORKFLOW)
        k->wf_pos = (*pos)++;
    return k;
}

/* The variable name of the workflow at *pos; marks it secret when the workflow does. */
static void workflow_var(struct run_view *rv, const char *name, int secret, size_t *pos)
{
    struct list l = var_list(rv);
    /* The entry's key is its first member: the key is the entry. */
    struct view_var *v = name ? (struct view_var *)workflow_entry(&l, name, pos) : NULL;

    if (!v)
        return;
    if (secret || strcmp(name, AUTH_TOKEN_VAR) == 0) {
        v->secret = 1;
        var_clear(v); /* a value seen before the workflow said it is a secret */
    }
}

static enum view_change on_workflow(struct run_view *rv, const char *payload, size_t len)
{
    struct list tl = task_list(rv), vl = var_list(rv);
    size_t i, k, n_tasks = 0, n_vars = 0;
    const char *key;
    json_t *o, *t, *x;

    if (len == 0) {
        workflow_clear(rv);
        return VIEW_OTHER;
    }
    if (!(o = load_object(payload, len)))
        return VIEW_NONE;
    workflow_clear(rv);
    rv->has_workflow = 1;
    rv->workflow = string_or_null(o, "name");
    rv->path = string_or_null(o, "path");
    rv->workflow_mode = mode_of(o);
    rv->workflow_started = number_or_unknown(o, "started");
    json_array_foreach(json_object_get(o, "tasks"), i, t)
    {
        const char *name = json_string_value(json_object_get(t, "name"));
        if (name)
            workflow_entry(&tl, name, &n_tasks);
    }
    /* The variables: env: (secrets masked), then every task's inputs and outputs. */
    json_object_foreach(json_object_get(o, "env"), key, x) workflow_var(
        rv, key, json_is_string(x) && strcmp(json_string_value(x), SECRET_MASK) == 0, &n_vars);
    json_array_foreach(json_object_get(o, "tasks"), i, t)
    {
        json_array_foreach(json_object_get(t, "inputs"), k, x)
            workflow_var(rv, json_string_value(x), 0, &n_vars);
        json_array_foreach(json_object_get(t, "outputs"), k, x)
            workflow_var(rv, json_string_value(x), 0, &n_vars);
    }
    rv->n_workflow_tasks = n_tasks;
    rv->n_workflow_vars = n_vars;
    list_sort(&tl);
    list_sort(&vl);
    json_decref(o);
    return VIEW_OTHER;
}

static enum view_change on_task(struct run_view *rv, const char *name, const char *payload,
                                size_t len)
{
    struct list l = task_list(rv);
    struct task_report report;
    struct view_task *t, scratch;
    long i = list_find(&l, name);

    if (len == 0) {
        if (i < 0)
            return VIEW_TASK;
        t = &rv->tasks[i];
        task_clear(t);
        if (t->key.wf_pos == VIEW_NOT_IN_WORKFLOW) {
            free(t->key.name);
            list_remove(&l, (size_t)i);
        }
        return VIEW_TASK;
    }
    if (!tracker__parse_report(payload, len, &report))
        return VIEW_NONE;
    if (i < 0 && !list_add(&l, name)) {
        tracker__report_clear(&report);
        return VIEW_NONE;
    }
    if (i < 0)
        i = (long)rv->n_tasks - 1;
    t = &rv->tasks[i];
    if (!t->reported) {
        /* It appears (again): those outside the workflow go last, as they came. */
        t->key.seq = ++rv->seq;
        if (t->key.wf_pos == VIEW_NOT_IN_WORKFLOW && (size_t)i + 1 < rv->n_tasks) {
            list_to_end(&l, (size_t)i, &scratch);
            t = &rv->tasks[rv->n_tasks - 1];
        }
    }
    task_clear(t);
    t->report = report;
    t->reported = 1;
    return VIEW_TASK;
}

static enum view_change on_var(struct run_view *rv, const char *name, const char *payload,
                               size_t len)
{
    struct list l = var_list(rv);
    const char *value = fb_value_decode(payload, len);
    struct view_var *v, scratch;
    long i = list_find(&l, name);

    if (!value) {
        if (i < 0)
            return VIEW_OTHER;
        v = &rv->vars[i];
        var_clear(v);
        if (v->key.wf_pos == VIEW_NOT_IN_WORKFLOW) {
            free(v->key.name);
            list_remove(&l, (size_t)i);
        }
        return VIEW_OTHER;
    }
    /* A secret never travels on the bus; if one did, the view does not keep it. */
    if ((i >= 0 && rv->vars[i].secret) || strcmp(name, AUTH_TOKEN_VAR) == 0)
        return VIEW_NONE;
    if (i < 0 && !list_add(&l, name))
        return VIEW_NONE;
    if (i < 0)
        i = (long)rv->n_vars - 1;
    v = &rv->vars[i];
    if (!v->value) {
        v->key.seq = ++rv->seq;
        if (v->key.wf_pos == VIEW_NOT_IN_WORKFLOW && (size_t)i + 1 < rv->n_vars) {
            list_to_end(&l, (size_t)i, &scratch);
            v = &rv->vars[rv->n_vars - 1];
        }
    }
    var_clear(v);
    v->value_len = value == payload ? len : 0;
    v->value = malloc(v->value_len + 1);
    if (!v->value)
        return VIEW_NONE;
    memcpy(v->value, value, v->value_len);
    v->value[v->value_len] = '\0';
    return VIEW_OTHER;
}

/* The owner record: only its host is kept, for the tasks that run on the coordinator's. */
static enum view_change on_owner(struct run_view *rv, const char *payload, size_t len)
{
    json_t *o = len ? json_loadb(payload, len, 0, NULL) : NULL;
    const char *host = json_string_value(json_object_get(o, "host"));

    free(rv->owner_host);
    rv->owner_host = host ? strdup(host) : NULL;
    json_decref(o);
    return VIEW_OTHER;
}

/* An agent's answer for a placed task (docs/distributed.md): its agent and host. */
static enum view_change on_placement(struct run_view *rv, const char *name, const char *payload,
                                     size_t len)
{
    json_t *o = len ? json_loadb(payload, len, 0, NULL) : NULL;

    if (!rv->placements)
        rv->placements = json_object();
    if (!rv->placements) {
        json_decref(o);
        return VIEW_NONE;
    }
    if (json_is_string(json_object_get(o, "agent")))
        json_object_set_new(rv->placements, name, o);
    else {
        json_object_del(rv->placements, name);
        json_decref(o);
    }
    return VIEW_OTHER;
}

const char *view__task_host(const struct run_view *rv, const char *name, const char **agent)
{
    const json_t *p = rv->placements ? json_object_get(rv->placements, name) : NULL;
    const char *state = json_string_value(json_object_get(p, "state"));

    *agent = NULL;
    /* A refusal says where it did not go: the task is not there. */
    if (p && state && strcmp(state, "refused") != 0) {
        *agent = json_string_value(json_object_get(p, "agent"));
        return json_string_value(json_object_get(p, "host"));
    }
    return rv->owner_host;
}

static enum view_change on_control(struct run_view *rv, const char *payload, size_t len)
{
    enum fb_control cmd = fb_control_parse(payload, len);

    if (len > 0 && cmd == FB_CONTROL_NONE)
        return VIEW_NONE;
    rv->control = cmd;
    return VIEW_OTHER;
}

enum view_change view__feed(struct view *vw, const char *topic, const char *payload, size_t len,
                            struct view_event *event)
{
    struct view_event ignored;
    enum view_change c = VIEW_NONE;
    struct run_view *rv;
    fb_topic t;

    if (!event)
        event = &ignored;
    event->run = NULL;
    event->task[0] = '\0';
    event->line = NULL;
    if (fb_topic_parse(topic, &t) == FB_TOPIC_NONE || t.kind == FB_TOPIC_SYNC ||
        t.kind == FB_TOPIC_AGENT || t.kind == FB_TOPIC_AGENT_INBOX || t.run_len > FB_NAME_MAX)
        return VIEW_NONE;
    if (t.name && t.name_len >= sizeof event->task)
        return VIEW_NONE;
    if (t.name) {
        memcpy(event->task, t.name, t.name_len);
        event->task[t.name_len] = '\0';
    }
    if (!(rv = run_of(vw, t.run, t.run_len)))
        return VIEW_NONE;
    switch (t.kind) {
    case FB_TOPIC_RUN_STATE:
        c = on_record(rv, payload, len);
        break;
    case FB_TOPIC_WORKFLOW:
        c = on_workflow(rv, payload, len);
        break;
    case FB_TOPIC_CONTROL:
        c = on_control(rv, payload, len);
        break;
    case FB_TOPIC_VAR:
        c = on_var(rv, event->task, payload, len);
        event->task[0] = '\0';
        break;
    case FB_TOPIC_TASK_STATE:
        c = on_task(rv, event->task, payload, len);
        break;
    case FB_TOPIC_TASK_LOG:
        event->line = payload;
        c = VIEW_LOG;
        break;
    case FB_TOPIC_OWNER:
        c = on_owner(rv, payload, len);
        break;
    case FB_TOPIC_TASK_PLACEMENT:
        c = on_placement(rv, event->task, payload, len);
        event->task[0] = '\0';
        break;
    default:
        break;
    }
    if (c != VIEW_NONE)
        event->run = rv;
    return c;
}

/* ------------------------------------------------------------------------ */
/* Reading a run                                                             */
/* ------------------------------------------------------------------------ */

int view__exists(const struct run_view *rv)
{
    return rv && (rv->has_record || rv->has_workflow);
}

struct run_view *view__run(const struct view *vw, const char *run_id)
{
    size_t at;
    struct run_view *rv = find_run(vw, run_id, strlen(run_id), &at);

    return view__exists(rv) ? rv : NULL;
}

size_t view__count(const struct view *vw)
{
    return vw->n;
}

struct run_view *view__nth(const struct view *vw, size_t i)
{
    return i < vw->n ? vw->runs[i] : NULL;
}

static int by_start(const void *a, const void *b)
{
    double x = view__started(*(struct run_view *const *)a);
    double y = view__started(*(struct run_view *const *)b);
    return x < y ? -1 : x > y;
}

struct run_view **view__list(const struct view *vw, size_t *n)
{
    struct run_view **list = calloc(vw->n + 1, sizeof *list);

    *n = 0;
    if (!list)
        return NULL;
    for (size_t i = 0; i < vw->n; i++)
        if (view__exists(vw->runs[i]))
            list[(*n)++] = vw->runs[i];
    if (*n > 1)
        qsort(list, *n, sizeof *list, by_start);
    return list;
}

/* "unknown" and "paused" are words for people, not states on the bus: a run
 * without a record has no state, and a paused run is running. */
const char *view__state_text(const struct run_view *rv)
{
    return rv->state_name ? rv->state_name : "unknown";
}

const char *view__shown_state(const struct run_view *rv)
{
    return rv->state == FB_RUN_RUNNING && rv->paused ? "paused" : view__state_text(rv);
}

int view__reactive(const struct run_view *rv)
{
    enum view_mode mode = rv->mode != VIEW_MODE_UNSAID ? rv->mode : rv->workflow_mode;

    if (mode != VIEW_MODE_UNSAID)
        return mode == VIEW_MODE_REACTIVE;
    /* A coordinator that does not say: reactive tasks number their activations. */
    for (size_t i = 0; i < rv->n_tasks; i++)
        if (rv->tasks[i].reported &&
            (rv->tasks[i].report.has | rv->tasks[i].report.null) & TM_ACTIVATION)
            return 1;
    return 0;
}

double view__started(const struct run_view *rv)
{
    return rv->started > 0 ? rv->started : rv->workflow_started;
}

double view__duration(const struct run_view *rv, double now)
{
    double started = view__started(rv);

    if (started <= 0 || !rv->state_name)
        return -1;
    if (fb_run_state_is_final(rv->state))
        return rv->at >= started ? rv->at - started : -1;
    if (rv->state == FB_RUN_RUNNING)
        return now - started;
    return -1; /* lost: nobody knows when it ended, or if it has */
}

const struct view_task *view__task(const struct run_view *rv, const char *name)
{
    for (size_t i = 0; i < rv->n_tasks; i++)
        if (strcmp(rv->tasks[i].key.name, name) == 0)
            return &rv->tasks[i];
    return NULL;
}

const struct view_var *view__var(const struct run_view *rv, const char *name)
{
    for (size_t i = 0; i < rv->n_vars; i++)
        if (strcmp(rv->vars[i].key.name, name) == 0)
            return &rv->vars[i];
    return NULL;
}

double view__task_duration(const struct view_task *t, double now)
{
    const struct task_report *r = t ? &t->report : NULL;
    double at, started;

    if (!t || !t->reported)
        return -1;
    at = r->has & TM_AT ? r->info.at : -1;
    started = r->has & TM_STARTED ? r->info.started : -1;
    if (fb_state_is_final(r->info.state))
        return started > 0 && at >= started ? at - started : -1;
    if (r->info.state == FB_STATE_RUNNING && at > 0)
        return now - at;
    return -1;
}

size_t view__count_states(const struct run_view *rv, size_t counts[FB_STATE_COUNT],
                          enum fb_state seen[FB_STATE_COUNT])
{
    size_t n = 0;

    memset(counts, 0, FB_STATE_COUNT * sizeof *counts);
    for (size_t i = 0; i < rv->n_tasks; i++) {
        const struct view_task *t = &rv->tasks[i];
        enum fb_state s = t->reported ? t->report.info.state : FB_STATE_PENDING;
        if (counts[s]++ == 0)
            seen[n++] = s;
    }
    return n;
}
