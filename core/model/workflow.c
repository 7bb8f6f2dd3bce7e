/*
 * workflow.c - the model of a loaded workflow (workflow.h): the rules for its
 * names, its lists of names, the task name index behind workflow__find_task,
 * the restart and overflow policies, and freeing it. Reading a file into it is load.c's.
 */
#include "workflow.h"

#include <flowbus/protocol.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

/* ---------------------------------------------------------------- names */

/* The rules themselves are the bus contract's (protocol.h): a name becomes a topic level. */

int workflow__valid_run_id(const char *s)
{
    return s && fb_name_valid(FB_NAME_RUN, s, strlen(s));
}

int workflow__valid_var_name(const char *name)
{
    return name && fb_name_valid(FB_NAME_VAR, name, strlen(name));
}

int workflow__valid_task_name(const char *name)
{
    return name && fb_name_valid(FB_NAME_TASK, name, strlen(name));
}

/* ---------------------------------------------------------------- lists */

int workflow__list_has(const struct wf_list *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->items[i].name, name))
            return 1;
    return 0;
}

int workflow__list_push(struct wf_list *l, const char *name, struct wf_pos pos)
{
    if ((l->n & (l->n - 1)) == 0 || l->n == 0) {
        size_t cap = l->n ? l->n * 2 : 4;
        struct wf_name *items = realloc(l->items, cap * sizeof *items);
        if (!items)
            return 0;
        l->items = items;
    }
    l->items[l->n].name = strdup(name);
    if (!l->items[l->n].name)
        return 0;
    l->items[l->n].pos = pos;
    l->n++;
    return 1;
}

static void list_free(struct wf_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i].name);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

/* ---------------------------------------------------------------- the task index */

/*
 * The task name index is an open-addressing hash table of task indices + 1 (0
 * is a free slot), at most half full: 8 bytes a task where a JSON object
 * spent ~100 in three allocations. Returns the slot of name: where its task
 * is, or the free slot where it would go.
 */
static size_t index_slot(const uint32_t *slots, size_t n_slots, const struct wf_task *tasks,
                         const char *name)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    size_t i;

    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 16777619u;
    for (i = h & (n_slots - 1); slots[i]; i = (i + 1) & (n_slots - 1))
        if (strcmp(tasks[slots[i] - 1].name, name) == 0)
            break;
    return i;
}

/* Doubles the task name index (or creates it); 0 when out of memory. */
static int index_grow(struct workflow *wf)
{
    size_t n = wf->index_slots ? wf->index_slots * 2 : 16;
    uint32_t *slots = calloc(n, sizeof *slots);

    if (!slots)
        return 0;
    for (size_t i = 0; i < wf->index_slots; i++)
        if (wf->task_index[i])
            slots[index_slot(slots, n, wf->tasks, wf->tasks[wf->task_index[i] - 1].name)] =
                wf->task_index[i];
    free(wf->task_index);
    wf->task_index = slots;
    wf->index_slots = n;
    return 1;
}

long workflow__index_task(struct workflow *wf, size_t i)
{
    const struct wf_task *t = &wf->tasks[i];
    size_t slot;

    if (2 * (wf->index_used + 1) > wf->index_slots && !index_grow(wf))
        return -1;
    slot = index_slot(wf->task_index, wf->index_slots, wf->tasks, t->name);
    if (wf->task_index[slot])
        return (long)wf->task_index[slot] - 1;
    wf->task_index[slot] = (uint32_t)i + 1;
    wf->index_used++;
    return (long)i;
}

long workflow__find_task(const struct workflow *wf, const char *name)
{
    uint32_t i;

    if (!wf || !name)
        return -1;
    if (!wf->task_index) {
        /* A workflow built by hand, without the loader's index. */
        for (size_t k = 0; k < wf->n_tasks; k++)
            if (wf->tasks[k].name && !strcmp(wf->tasks[k].name, name))
                return (long)k;
        return -1;
    }
    i = wf->task_index[index_slot(wf->task_index, wf->index_slots, wf->tasks, name)];
    return i ? (long)i - 1 : -1;
}

/* ---------------------------------------------------------------- restart policies */

static const char *const RESTART_POLICIES[] = {"on-failure", "always", "never"};

const char *workflow__restart_name(enum wf_restart r)
{
    size_t i = (size_t)r;

    return i < sizeof RESTART_POLICIES / sizeof *RESTART_POLICIES ? RESTART_POLICIES[i] : NULL;
}

int workflow__restart_parse(const char *s, enum wf_restart *out)
{
    for (size_t i = 0; s && i < sizeof RESTART_POLICIES / sizeof *RESTART_POLICIES; i++)
        if (strcmp(s, RESTART_POLICIES[i]) == 0) {
            *out = (enum wf_restart)i;
            return 1;
        }
    return 0;
}

/* ---------------------------------------------------------------- overflow policies */

const char *const WORKFLOW_OVERFLOW_NAMES[3] = {"block", "drop-oldest", "drop-newest"};

const char *workflow__overflow_name(enum wf_overflow o)
{
    size_t i = (size_t)o;

    return i < 3 ? WORKFLOW_OVERFLOW_NAMES[i] : NULL;
}

int workflow__overflow_parse(const char *s, enum wf_overflow *out)
{
    for (size_t i = 0; s && i < 3; i++)
        if (strcmp(s, WORKFLOW_OVERFLOW_NAMES[i]) == 0) {
            *out = (enum wf_overflow)i;
            return 1;
        }
    return 0;
}

/* ---------------------------------------------------------------- free */

static void task_free(struct wf_task *t)
{
    free(t->name);
    free(t->plugin);
    free(t->plugin_path);
    free(t->description);
    list_free(&t->inputs);
    list_free(&t->outputs);
    list_free(&t->depends_on);
    list_free(&t->trigger);
    list_free(&t->permissions);
    list_free(&t->runs_on);
    json_decref(t->params);
}

void workflow__free(struct workflow *wf)
{
    if (!wf)
        return;
    for (size_t i = 0; i < wf->n_vars; i++) {
        free(wf->vars[i].name);
        free(wf->vars[i].value);
    }
    free(wf->vars);
    for (size_t i = 0; i < wf->n_tasks; i++)
        task_free(&wf->tasks[i]);
    free(wf->tasks);
    free(wf->task_index);
    free(wf->file);
    free(wf->name);
    free(wf->description);
    free(wf->auth.url);
    free(wf->auth.ca_file);
    free(wf->version);
    free(wf);
}
