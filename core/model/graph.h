/*
 * graph.h - the dependency graph of a workflow and the analyses on it.
 *
 * Tasks are linked through variables (a task producing X feeds every task
 * consuming X) and through depends_on. The graph answers who produces and who
 * consumes a variable, finds cycles for validation, propagates skips at run
 * time (a variable is dead when every task that can produce it has finished
 * without producing it), and prints the DAG as Mermaid or DOT. It is pure: no
 * I/O but the printers, no globals, so it is unit-tested directly.
 */
#ifndef FLOWBUS_CORE_GRAPH_H
#define FLOWBUS_CORE_GRAPH_H

#include <stdio.h>
#include <stddef.h>

struct workflow;
struct graph;

/* Builds the graph of wf (which must outlive it). NULL on out of memory. */
struct graph *graph__new(const struct workflow *wf);
void graph__free(struct graph *g);

/* Variables: every name that is an env/--set variable, an input or an output. */
size_t graph__var_count(const struct graph *g);
const char *graph__var_name(const struct graph *g, size_t var);
long graph__var_index(const struct graph *g, const char *name); /* -1 if unknown */
int graph__var_is_initial(const struct graph *g, size_t var);   /* set by env:/--set */

/* Producer and consumer task indices of a variable. */
size_t graph__producers(const struct graph *g, size_t var, const size_t **tasks);
size_t graph__consumers(const struct graph *g, size_t var, const size_t **tasks);

/*
 * Looks for a cycle through inputs/outputs and depends_on. Returns 0 when the
 * graph is acyclic. Otherwise returns the cycle's length and sets *cycle to a
 * malloc'd array of task indices in order (the caller frees it): each task
 * feeds the next (an output it consumes, or a depends_on), the last feeds the
 * first. Iterative and linear in the size of the workflow.
 */
size_t graph__find_cycle(const struct graph *g, size_t **cycle);

/* What the run knows about a task, for skip propagation. */
enum graph_task_state {
    GT_PENDING = 0, /* waiting or running */
    GT_DONE,        /* finished successfully */
    GT_FAILED,      /* finished unsuccessfully: failed, timeout, crashed, denied */
    GT_SKIPPED,     /* will never run */
};

/*
 * Marks every task that can never run as GT_SKIPPED, transitively: a pending
 * task is skipped when one of its inputs is dead (not set, and every producer
 * is finished) or one of its depends_on tasks finished other than done.
 * var_set[v] is non-zero for variables that have a value. For each task newly
 * skipped, reasons[t] receives a malloc'd one-line reason naming the input or
 * dependency (e.g. "input TRUE can never be set: its producer TOUCHED finished
 * without producing it"); reasons may be NULL. Returns how many tasks were
 * newly skipped.
 */
size_t graph__propagate(const struct graph *g, const unsigned char *var_set,
                        enum graph_task_state *states, char **reasons);

/* Prints the DAG with variable names on the edges. */
void graph__print_mermaid(const struct graph *g, FILE *out);
void graph__print_dot(const struct graph *g, FILE *out);

#endif
