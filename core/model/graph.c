/*
 * graph.c - the dependency graph of a workflow (see graph.h).
 *
 * Every relation is stored once, as compressed adjacency arrays (an offsets
 * array of n+1 entries and one flat array of indices), so that building and
 * walking the graph is linear in the size of the workflow: a 10,000-task file
 * is checked in milliseconds. Variables are looked up by name through a
 * jansson object used as a hash table.
 *
 * For cycle search the variables are nodes too (task -> output variable ->
 * consuming task), which keeps the search linear even when one variable has
 * many producers and many consumers.
 */
#include "graph.h"
#include "workflow.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Adjacency lists: the items of node i are at[off[i]] .. at[off[i+1]-1]. */
struct adj {
    size_t *off;
    size_t *at;
};

struct graph {
    const struct workflow *wf;
    size_t n_tasks;
    size_t n_vars;
    const char **var_names; /* borrowed from wf */
    unsigned char *initial; /* per variable: set by env:/--set */
    json_t *var_index;      /* name -> variable index */
    struct adj inputs;      /* task -> variables it consumes */
    struct adj outputs;     /* task -> variables it produces */
    struct adj producers;   /* variable -> tasks */
    struct adj consumers;   /* variable -> tasks */
    struct adj deps;        /* task -> tasks it depends_on (known, not itself) */
    struct adj dependents;  /* task -> tasks that depend_on it */
};

static void adj_free(struct adj *a)
{
    free(a->off);
    free(a->at);
}

void graph__free(struct graph *g)
{
    if (!g)
        return;
    free(g->var_names);
    free(g->initial);
    json_decref(g->var_index);
    adj_free(&g->inputs);
    adj_free(&g->outputs);
    adj_free(&g->producers);
    adj_free(&g->consumers);
    adj_free(&g->deps);
    adj_free(&g->dependents);
    free(g);
}

/* Adds name as a variable if it is new. Returns 0 on out of memory. */
static int add_var(struct graph *g, const char *name, size_t *cap)
{
    if (json_object_get(g->var_index, name))
        return 1;
    if (g->n_vars == *cap) {
        size_t n = *cap ? *cap * 2 : 16;
        const char **names = realloc(g->var_names, n * sizeof *names);
        unsigned char *initial = realloc(g->initial, n);
        if (names)
            g->var_names = names;
        if (initial)
            g->initial = initial;
        if (!names || !initial)
            return 0;
        *cap = n;
    }
    if (json_object_set_new_nocheck(g->var_index, name, json_integer((json_int_t)g->n_vars)))
        return 0;
    g->var_names[g->n_vars] = name;
    g->initial[g->n_vars] = 0;
    g->n_vars++;
    return 1;
}

/*
 * Builds task -> variable lists from the workflow's input or output names,
 * dropping names a task lists twice.
 */
static int build_var_lists(struct graph *g, int outputs, struct adj *a, size_t *stamp)
{
    const struct workflow *wf = g->wf;
    size_t total = 0, k = 0;

    for (size_t t = 0; t < g->n_tasks; t++)
        total += outputs ? wf->tasks[t].outputs.n : wf->tasks[t].inputs.n;
    a->off = malloc((g->n_tasks + 1) * sizeof *a->off);
    a->at = malloc((total ? total : 1) * sizeof *a->at);
    if (!a->off || !a->at)
        return 0;
    for (size_t v = 0; v < g->n_vars; v++)
        stamp[v] = 0;
    for (size_t t = 0; t < g->n_tasks; t++) {
        const struct wf_list *l = outputs ? &wf->tasks[t].outputs : &wf->tasks[t].inputs;
        a->off[t] = k;
        for (size_t i = 0; i < l->n; i++) {
            size_t v = (size_t)graph__var_index(g, l->items[i].name);
            if (stamp[v] == t + 1)
                continue;
            stamp[v] = t + 1;
            a->at[k++] = v;
        }
    }
    a->off[g->n_tasks] = k;
    return 1;
}

/* Inverts an adjacency (n_from nodes pointing into n_to nodes). */
static int invert(const struct adj *a, size_t n_from, size_t n_to, struct adj *out)
{
    size_t total = a->off[n_from];
    size_t *fill = NULL;
    int ok = 0;

    out->off = calloc(n_to + 1, sizeof *out->off);
    out->at = malloc((total ? total : 1) * sizeof *out->at);
    fill = malloc((n_to + 1) * sizeof *fill);
    if (!out->off || !out->at || !fill)
        goto out;
    for (size_t i = 0; i < total; i++)
        out->off[a->at[i] + 1]++;
    for (size_t j = 0; j < n_to; j++)
        out->off[j + 1] += out->off[j];
    memcpy(fill, out->off, (n_to + 1) * sizeof *fill);
    /* Walking sources in order keeps each list sorted by source index. */
    for (size_t i = 0; i < n_from; i++)
        for (size_t k = a->off[i]; k < a->off[i + 1]; k++)
            out->at[fill[a->at[k]]++] = i;
    ok = 1;
out:
    free(fill);
    return ok;
}

static int build_deps(struct graph *g, size_t *stamp)
{
    const struct workflow *wf = g->wf;
    struct adj *a = &g->deps;
    size_t total = 0, k = 0;

    for (size_t t = 0; t < g->n_tasks; t++)
        total += wf->tasks[t].depends_on.n;
    a->off = malloc((g->n_tasks + 1) * sizeof *a->off);
    a->at = malloc((total ? total : 1) * sizeof *a->at);
    if (!a->off || !a->at)
        return 0;
    for (size_t t = 0; t < g->n_tasks; t++)
        stamp[t] = 0;
    for (size_t t = 0; t < g->n_tasks; t++) {
        const struct wf_list *l = &wf->tasks[t].depends_on;
        a->off[t] = k;
        for (size_t i = 0; i < l->n; i++) {
            long d = workflow__find_task(wf, l->items[i].name);
            /* Unknown names and self-dependencies are the loader's to report;
             * the graph leaves them out. */
            if (d < 0 || (size_t)d == t || stamp[d] == t + 1)
                continue;
            stamp[d] = t + 1;
            a->at[k++] = (size_t)d;
        }
    }
    a->off[g->n_tasks] = k;
    return 1;
}

struct graph *graph__new(const struct workflow *wf)
{
    struct graph *g = calloc(1, sizeof *g);
    size_t cap = 0, *stamp = NULL;

    if (!g)
        goto fail;
    g->wf = wf;
    g->n_tasks = wf->n_tasks;
    g->var_index = json_object();
    if (!g->var_index)
        goto fail;
    for (size_t i = 0; i < wf->n_vars; i++) {
        if (!add_var(g, wf->vars[i].name, &cap))
            goto fail;
        g->initial[graph__var_index(g, wf->vars[i].name)] = 1;
    }
    for (size_t t = 0; t < wf->n_tasks; t++) {
        for (size_t i = 0; i < wf->tasks[t].inputs.n; i++)
            if (!add_var(g, wf->tasks[t].inputs.items[i].name, &cap))
                goto fail;
        for (size_t i = 0; i < wf->tasks[t].outputs.n; i++)
            if (!add_var(g, wf->tasks[t].outputs.items[i].name, &cap))
                goto fail;
    }
    stamp = malloc(((g->n_vars > g->n_tasks ? g->n_vars : g->n_tasks) + 1) * sizeof *stamp);
    if (!stamp || !build_var_lists(g, 0, &g->inputs, stamp) ||
        !build_var_lists(g, 1, &g->outputs, stamp) ||
        !invert(&g->outputs, g->n_tasks, g->n_vars, &g->producers) ||
        !invert(&g->inputs, g->n_tasks, g->n_vars, &g->consumers) || !build_deps(g, stamp) ||
        !invert(&g->deps, g->n_tasks, g->n_tasks, &g->dependents))
        goto fail;
    free(stamp);
    return g;
fail:
    free(stamp);
    graph__free(g);
    return NULL;
}

size_t graph__var_count(const struct graph *g)
{
    return g->n_vars;
}

const char *graph__var_name(const struct graph *g, size_t var)
{
    return var < g->n_vars ? g->var_names[var] : NULL;
}

long graph__var_index(const struct graph *g, const char *name)
{
    json_t *i = name ? json_object_get(g->var_index, name) : NULL;
    return i ? (long)json_integer_value(i) : -1;
}

int graph__var_is_initial(const struct graph *g, size_t var)
{
    return var < g->n_vars && g->initial[var];
}

static size_t list(const struct adj *a, size_t i, const size_t **items)
{
    *items = a->at + a->off[i];
    return a->off[i + 1] - a->off[i];
}

size_t graph__producers(const struct graph *g, size_t var, const size_t **tasks)
{
    if (var >= g->n_vars) {
        *tasks = NULL;
        return 0;
    }
    return list(&g->producers, var, tasks);
}

size_t graph__consumers(const struct graph *g, size_t var, const size_t **tasks)
{
    if (var >= g->n_vars) {
        *tasks = NULL;
        return 0;
    }
    return list(&g->consumers, var, tasks);
}

/* ---------------------------------------------------------------- cycles */

/*
 * Successors in the search graph: nodes 0..n_tasks-1 are tasks, the rest are
 * variables. A task leads to its outputs and its dependents; a variable leads
 * to its consumers.
 */
static size_t succ_count(const struct graph *g, size_t node)
{
    if (node < g->n_tasks)
        return g->outputs.off[node + 1] - g->outputs.off[node] + g->dependents.off[node + 1] -
               g->dependents.off[node];
    node -= g->n_tasks;
    return g->consumers.off[node + 1] - g->consumers.off[node];
}

static size_t succ_at(const struct graph *g, size_t node, size_t k)
{
    if (node < g->n_tasks) {
        size_t n_out = g->outputs.off[node + 1] - g->outputs.off[node];
        if (k < n_out)
            return g->n_tasks + g->outputs.at[g->outputs.off[node] + k];
        return g->dependents.at[g->dependents.off[node] + k - n_out];
    }
    node -= g->n_tasks;
    return g->consumers.at[g->consumers.off[node] + k];
}

size_t graph__find_cycle(const struct graph *g, size_t **cycle)
{
    enum { WHITE, GREY, BLACK };
    size_t n = g->n_tasks + g->n_vars;
    unsigned char *colour = calloc(n ? n : 1, 1);
    size_t *stack = malloc((n ? n : 1) * sizeof *stack);
    size_t *next = malloc((n ? n : 1) * sizeof *next);   /* per stack frame */
    size_t *depth = malloc((n ? n : 1) * sizeof *depth); /* stack position of a grey node */
    size_t found = 0;

    *cycle = NULL;
    if (!colour || !stack || !next || !depth)
        goto out;
    /* Depth-first search with an explicit stack: a chain of 10,000 tasks
     * would overflow the C stack if this recursed. */
    for (size_t root = 0; root < g->n_tasks && !found; root++) {
        size_t sp = 0;
        if (colour[root] != WHITE)
            continue;
        colour[root] = GREY;
        depth[root] = 0;
        stack[sp] = root;
        next[sp++] = 0;
        while (sp > 0 && !found) {
            size_t u = stack[sp - 1];
            size_t w;
            if (next[sp - 1] == succ_count(g, u)) {
                colour[u] = BLACK;
                sp--;
                continue;
            }
            w = succ_at(g, u, next[sp - 1]++);
            if (colour[w] == WHITE) {
                colour[w] = GREY;
                depth[w] = sp;
                stack[sp] = w;
                next[sp++] = 0;
            } else if (colour[w] == GREY) {
                /* stack[depth[w]] .. stack[sp-1] is the cycle; keep its tasks. */
                size_t *c = malloc((sp - depth[w]) * sizeof *c);
                if (!c)
                    goto out;
                for (size_t i = depth[w]; i < sp; i++)
                    if (stack[i] < g->n_tasks)
                        c[found++] = stack[i];
                *cycle = c;
            }
        }
    }
out:
    free(colour);
    free(stack);
    free(next);
    free(depth);
    return found;
}

/* ---------------------------------------------------------------- propagation */

static int finished(enum graph_task_state s)
{
    return s == GT_DONE || s == GT_FAILED || s == GT_SKIPPED;
}

static int is_dead(const struct graph *g, size_t v, const unsigned char *var_set,
                   const enum graph_task_state *states)
{
    const size_t *who;
    size_t n;

    if ((var_set && var_set[v]) || g->initial[v])
        return 0;
    n = graph__producers(g, v, &who);
    for (size_t i = 0; i < n; i++)
        if (!finished(states[who[i]]))
            return 0;
    return 1;
}

static char *format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *format(const char *fmt, ...)
{
    va_list ap, copy;
    char *s = NULL;
    int len;

    va_start(ap, fmt);
    va_copy(copy, ap);
    len = vsnprintf(NULL, 0, fmt, ap);
    if (len >= 0 && (s = malloc((size_t)len + 1)) != NULL)
        vsnprintf(s, (size_t)len + 1, fmt, copy);
    va_end(copy);
    va_end(ap);
    return s;
}

/*
 * How a finished task ended, as the verb of a reason's sentence. These are
 * words, not the state names of the bus (protocol.h): GT_FAILED stands for
 * failed, timeout, crashed and denied alike.
 */
static const char *outcome(enum graph_task_state s)
{
    return s == GT_FAILED    ? "failed"
           : s == GT_SKIPPED ? "was skipped"
                             : "finished without producing it";
}

/* Why variable v, an input, can never be set (all its producers are finished). */
static char *dead_reason(const struct graph *g, size_t v, const enum graph_task_state *states)
{
    const size_t *who;
    size_t n = graph__producers(g, v, &who);
    const char *name = g->var_names[v];
    char detail[512];
    size_t used = 0;

    if (n == 0)
        return format("input %s can never be set: no task produces it", name);
    if (n == 1) {
        const char *p = g->wf->tasks[who[0]].name;
        if (states[who[0]] == GT_DONE)
            return format("input %s can never be set: %s finished without producing it", name, p);
        return format("input %s can never be set: its producer %s %s", name, p,
                      outcome(states[who[0]]));
    }
    detail[0] = 0;
    for (size_t i = 0; i < n && i < 4; i++)
        used += (size_t)snprintf(detail + used, sizeof detail - used, "%s%s %s", i ? ", " : "",
                                 g->wf->tasks[who[i]].name, outcome(states[who[i]]));
    if (n > 4 && used < sizeof detail)
        snprintf(detail + used, sizeof detail - used, ", and %zu more", n - 4);
    return format("input %s can never be set: none of its producers set it (%s)", name, detail);
}

size_t graph__propagate(const struct graph *g, const unsigned char *var_set,
                        enum graph_task_state *states, char **reasons)
{
    size_t n = g->n_tasks, head = 0, count = 0, skipped = 0;
    size_t *queue = malloc((n ? n : 1) * sizeof *queue);
    unsigned char *queued = calloc(n ? n : 1, 1);

    if (!queue || !queued)
        goto out;
    /* A worklist: every pending task is looked at once, then again only when
     * one of its producers or dependencies becomes skipped. The queue is a
     * ring; a task is never in it twice, so n slots suffice. */
    for (size_t t = 0; t < n; t++)
        if (states[t] == GT_PENDING) {
            queue[(head + count++) % n] = t;
            queued[t] = 1;
        }
    while (count > 0) {
        size_t t = queue[head];
        char *reason = NULL;
        int skip = 0;
        const size_t *items;
        size_t m;

        head = (head + 1) % n;
        count--;
        queued[t] = 0;
        if (states[t] != GT_PENDING)
            continue;
        m = list(&g->inputs, t, &items);
        for (size_t i = 0; i < m && !skip; i++)
            if (is_dead(g, items[i], var_set, states)) {
                skip = 1;
                if (reasons)
                    reason = dead_reason(g, items[i], states);
            }
        m = list(&g->deps, t, &items);
        for (size_t i = 0; i < m && !skip; i++)
            if (states[items[i]] == GT_FAILED || states[items[i]] == GT_SKIPPED) {
                skip = 1;
                if (reasons)
                    reason = format("depends on %s, which %s", g->wf->tasks[items[i]].name,
                                    outcome(states[items[i]]));
            }
        if (!skip)
            continue;
        states[t] = GT_SKIPPED;
        skipped++;
        if (reasons)
            reasons[t] = reason;
        /* Wake the tasks this one could have unblocked: consumers of its
         * outputs and its dependents. */
        m = list(&g->outputs, t, &items);
        for (size_t i = 0; i < m; i++) {
            const size_t *cons;
            size_t c = list(&g->consumers, items[i], &cons);
            for (size_t k = 0; k < c; k++)
                if (states[cons[k]] == GT_PENDING && !queued[cons[k]]) {
                    queue[(head + count++) % n] = cons[k];
                    queued[cons[k]] = 1;
                }
        }
        m = list(&g->dependents, t, &items);
        for (size_t i = 0; i < m; i++)
            if (states[items[i]] == GT_PENDING && !queued[items[i]]) {
                queue[(head + count++) % n] = items[i];
                queued[items[i]] = 1;
            }
    }
out:
    free(queue);
    free(queued);
    return skipped;
}

/* ---------------------------------------------------------------- printers */

/* One edge of the printed DAG; label lists every variable between the pair. */
struct edge {
    size_t from; /* a task index, or n_tasks for the env node */
    size_t to;
    size_t var;
};

static int edge_cmp(const void *a, const void *b)
{
    const struct edge *x = a, *y = b;

    if (x->to != y->to)
        return x->to < y->to ? -1 : 1;
    if (x->from != y->from)
        return x->from < y->from ? -1 : 1;
    return x->var < y->var ? -1 : x->var > y->var;
}

/*
 * Collects the data edges (producer -> consumer per variable, and env ->
 * consumer for initial variables), sorted so that edges between the same pair
 * are adjacent. Returns the count, or 0 with *edges NULL.
 */
static size_t data_edges(const struct graph *g, struct edge **edges)
{
    size_t n = 0, cap = 0;
    struct edge *e = NULL;

    for (size_t t = 0; t < g->n_tasks; t++) {
        const size_t *in;
        size_t m = list(&g->inputs, t, &in);
        for (size_t i = 0; i < m; i++) {
            const size_t *prod;
            size_t np = list(&g->producers, in[i], &prod);
            for (size_t k = 0; k <= np; k++) {
                if (k == np && !g->initial[in[i]])
                    break;
                if (n == cap) {
                    struct edge *bigger = realloc(e, (cap = cap ? cap * 2 : 64) * sizeof *e);
                    if (!bigger) {
                        free(e);
                        *edges = NULL;
                        return 0;
                    }
                    e = bigger;
                }
                e[n].from = k < np ? prod[k] : g->n_tasks;
                e[n].to = t;
                e[n].var = in[i];
                n++;
            }
        }
    }
    if (n)
        qsort(e, n, sizeof *e, edge_cmp);
    *edges = e;
    return n;
}

static int has_initial_consumer(const struct graph *g)
{
    for (size_t v = 0; v < g->n_vars; v++)
        if (g->initial[v] && g->consumers.off[v + 1] > g->consumers.off[v])
            return 1;
    return 0;
}

void graph__print_mermaid(const struct graph *g, FILE *out)
{
    struct edge *e = NULL;
    size_t n = data_edges(g, &e);

    fprintf(out, "flowchart LR\n");
    if (has_initial_consumer(g))
        fprintf(out, "    env([\"env\"])\n");
    /* Node ids are t<index>: task names may contain '.' or '-' or be a
     * Mermaid keyword such as "end"; the name is the label. */
    for (size_t t = 0; t < g->n_tasks; t++)
        fprintf(out, "    t%zu[\"%s\"]\n", t, g->wf->tasks[t].name);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        if (e[i].from == g->n_tasks)
            fprintf(out, "    env -->|\"");
        else
            fprintf(out, "    t%zu -->|\"", e[i].from);
        for (; j < n && e[j].from == e[i].from && e[j].to == e[i].to; j++)
            fprintf(out, "%s%s", j > i ? ", " : "", g->var_names[e[j].var]);
        fprintf(out, "\"| t%zu\n", e[i].to);
        i = j;
    }
    for (size_t t = 0; t < g->n_tasks; t++)
        for (size_t k = g->deps.off[t]; k < g->deps.off[t + 1]; k++)
            fprintf(out, "    t%zu -.->|\"depends_on\"| t%zu\n", g->deps.at[k], t);
    free(e);
}

/* Writes s as the inside of a DOT double-quoted string. */
static void dot_string(FILE *out, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', out);
        if (*s == '\n')
            fputs("\\n", out);
        else
            fputc(*s, out);
    }
}

void graph__print_dot(const struct graph *g, FILE *out)
{
    struct edge *e = NULL;
    size_t n = data_edges(g, &e);

    fprintf(out, "digraph \"");
    dot_string(out, g->wf->name ? g->wf->name : "workflow");
    fprintf(out, "\" {\n    rankdir=LR;\n    node [shape=box];\n");
    if (has_initial_consumer(g))
        fprintf(out, "    env [shape=ellipse, label=\"env\"];\n");
    for (size_t t = 0; t < g->n_tasks; t++) {
        fprintf(out, "    t%zu [label=\"", t);
        dot_string(out, g->wf->tasks[t].name);
        fprintf(out, "\"];\n");
    }
    for (size_t i = 0; i < n;) {
        size_t j = i;
        if (e[i].from == g->n_tasks)
            fprintf(out, "    env -> t%zu [label=\"", e[i].to);
        else
            fprintf(out, "    t%zu -> t%zu [label=\"", e[i].from, e[i].to);
        for (; j < n && e[j].from == e[i].from && e[j].to == e[i].to; j++)
            fprintf(out, "%s%s", j > i ? ", " : "", g->var_names[e[j].var]);
        fprintf(out, "\"];\n");
        i = j;
    }
    for (size_t t = 0; t < g->n_tasks; t++)
        for (size_t k = g->deps.off[t]; k < g->deps.off[t + 1]; k++)
            fprintf(out, "    t%zu -> t%zu [style=dashed, label=\"depends_on\"];\n", g->deps.at[k],
                    t);
    fprintf(out, "}\n");
    free(e);
}
