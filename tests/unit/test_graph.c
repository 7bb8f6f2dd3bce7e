/*
 * test_graph.c - unit tests of the dependency graph (core/model/graph.c).
 *
 * Workflows are built here by hand from one-line task specs rather than
 * loaded, so that a test can also hold what the loader would refuse (a
 * cycle). The scenarios follow the run-time questions the coordinator asks:
 * who produces and consumes what, is there a cycle, and which tasks can never
 * run once some have failed, timed out or finished without their outputs.
 */
#include "check.h"
#include "graph.h"
#include "workflow.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static void add_names(struct wf_list *l, const char *csv)
{
    char *copy = strdup(csv), *save = NULL;

    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        l->items = realloc(l->items, (l->n + 1) * sizeof *l->items);
        l->items[l->n].name = strdup(tok);
        l->items[l->n].pos.line = 0;
        l->items[l->n].pos.col = 0;
        l->n++;
    }
    free(copy);
}

/*
 * Builds a workflow from specs "NAME|INPUTS|OUTPUTS|DEPENDS" (comma-separated
 * lists, possibly empty); env is a comma-separated list of initial variables.
 * It has no name index, so workflow__find_task takes its linear path.
 */
static struct workflow *build(const char *env, const char *const *specs, size_t n)
{
    struct workflow *wf = calloc(1, sizeof *wf);

    wf->name = strdup("test");
    wf->file = strdup("test.yaml");
    if (env && *env) {
        struct wf_list l = {0};
        add_names(&l, env);
        wf->vars = calloc(l.n, sizeof *wf->vars);
        for (size_t i = 0; i < l.n; i++) {
            wf->vars[i].name = l.items[i].name;
            wf->vars[i].value = strdup("1");
        }
        wf->n_vars = l.n;
        free(l.items);
    }
    wf->tasks = calloc(n, sizeof *wf->tasks);
    wf->n_tasks = n;
    for (size_t i = 0; i < n; i++) {
        char *spec = strdup(specs[i]);
        char *fields[4] = {"", "", "", ""};
        char *p = spec;
        for (int f = 0; f < 4 && p; f++) {
            char *bar = strchr(p, '|');
            fields[f] = p;
            if (bar)
                *bar = 0;
            p = bar ? bar + 1 : NULL;
        }
        wf->tasks[i].name = strdup(fields[0]);
        wf->tasks[i].plugin = strdup("x");
        wf->tasks[i].params = json_object();
        wf->tasks[i].workers = 1;
        add_names(&wf->tasks[i].inputs, fields[1]);
        add_names(&wf->tasks[i].outputs, fields[2]);
        add_names(&wf->tasks[i].depends_on, fields[3]);
        free(spec);
    }
    return wf;
}

#define BUILD(env, ...)                                                                            \
    build(env, (const char *const[]){__VA_ARGS__},                                                 \
          sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

static long task(const struct workflow *wf, const char *name)
{
    return workflow__find_task(wf, name);
}

/* A variable-set array with exactly the named variables set. */
static unsigned char *set_vars(const struct graph *g, const char *csv)
{
    unsigned char *set = calloc(graph__var_count(g) + 1, 1);
    struct wf_list l = {0};

    add_names(&l, csv);
    for (size_t i = 0; i < l.n; i++) {
        long v = graph__var_index(g, l.items[i].name);
        if (v >= 0)
            set[v] = 1;
        free(l.items[i].name);
    }
    free(l.items);
    return set;
}

static void free_reasons(char **reasons, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(reasons[i]);
    free(reasons);
}

/* ------------------------------------------------------------------ structure */

static void test_producers_consumers(void)
{
    struct workflow *wf =
        BUILD("TIMEOUT", "START||TRUE|", "DF|TRUE|MAIN_VOLUME,FREE_SPACE|START",
              "TOUCHED|TRUE,TIMEOUT|TRUE|", "CMD|FREE_SPACE,TRUE|REPORT|", "END|REPORT||");
    struct graph *g = graph__new(wf);
    const size_t *who;
    long v;

    CHECK(g != NULL);
    CHECK(graph__var_count(g) == 5);
    /* env variables come first, then in order of appearance. */
    CHECK_STR(graph__var_name(g, 0), "TIMEOUT");
    CHECK_STR(graph__var_name(g, 1), "TRUE");
    CHECK(graph__var_name(g, 99) == NULL);
    CHECK(graph__var_index(g, "NOPE") == -1);

    v = graph__var_index(g, "TIMEOUT");
    CHECK(v == 0);
    CHECK(graph__var_is_initial(g, (size_t)v));
    CHECK(graph__producers(g, (size_t)v, &who) == 0);
    CHECK(graph__consumers(g, (size_t)v, &who) == 1 && who[0] == (size_t)task(wf, "TOUCHED"));

    v = graph__var_index(g, "TRUE");
    CHECK(!graph__var_is_initial(g, (size_t)v));
    CHECK(graph__producers(g, (size_t)v, &who) == 2);
    CHECK(who[0] == (size_t)task(wf, "START") && who[1] == (size_t)task(wf, "TOUCHED"));
    CHECK(graph__consumers(g, (size_t)v, &who) == 3);
    CHECK(who[0] == 1 && who[1] == 2 && who[2] == 3);

    v = graph__var_index(g, "REPORT");
    CHECK(graph__producers(g, (size_t)v, &who) == 1 && who[0] == 3);
    CHECK(graph__consumers(g, (size_t)v, &who) == 1 && who[0] == 4);
    v = graph__var_index(g, "MAIN_VOLUME");
    CHECK(graph__consumers(g, (size_t)v, &who) == 0);
    graph__free(g);
    workflow__free(wf);
}

static void test_duplicates_are_merged(void)
{
    /* The loader rejects these, but the graph must stay sane on them. */
    struct workflow *wf = BUILD("", "A||X,X|", "B|X,X||A,A,B,UNKNOWN");
    struct graph *g = graph__new(wf);
    const size_t *who;
    size_t *cycle = NULL;

    CHECK(graph__producers(g, (size_t)graph__var_index(g, "X"), &who) == 1);
    CHECK(graph__consumers(g, (size_t)graph__var_index(g, "X"), &who) == 1);
    CHECK(graph__find_cycle(g, &cycle) == 0);
    free(cycle);
    graph__free(g);
    workflow__free(wf);
}

/* ------------------------------------------------------------------ cycles */

static void test_no_cycle_in_dag(void)
{
    struct workflow *wf =
        BUILD("", "START||TRUE|", "A|TRUE|AX|", "B|TRUE|BX|START", "JOIN|AX,BX|J|A", "END|J||");
    struct graph *g = graph__new(wf);
    size_t *cycle = (size_t *)1;

    CHECK(graph__find_cycle(g, &cycle) == 0);
    CHECK(cycle == NULL);
    graph__free(g);
    workflow__free(wf);
}

/* 1 if cycle (of n) is names, up to rotation. */
static int cycle_is(const struct workflow *wf, const size_t *cycle, size_t n,
                    const char *const *names, size_t m)
{
    if (n != m)
        return 0;
    for (size_t start = 0; start < n; start++) {
        size_t k = 0;
        while (k < n && !strcmp(wf->tasks[cycle[(start + k) % n]].name, names[k]))
            k++;
        if (k == n)
            return 1;
    }
    return 0;
}

static void test_cycles_found(void)
{
    static const char *const abc[] = {"A", "B", "C"};
    static const char *const pq[] = {"P", "Q"};
    struct workflow *wf;
    struct graph *g;
    size_t *cycle = NULL, n;

    /* Through variables, with an entry task outside the cycle. */
    wf = BUILD("", "S||GO|", "A|GO,CX|AX|", "B|AX|BX|", "C|BX|CX|", "D|CX||");
    g = graph__new(wf);
    n = graph__find_cycle(g, &cycle);
    CHECK(n == 3);
    CHECK(cycle_is(wf, cycle, n, abc, 3));
    free(cycle);
    graph__free(g);
    workflow__free(wf);

    /* Through depends_on only: P waits for Q, Q waits for P. */
    wf = BUILD("", "P|||Q", "Q|||P");
    g = graph__new(wf);
    n = graph__find_cycle(g, &cycle);
    CHECK(n == 2);
    CHECK(cycle_is(wf, cycle, n, pq, 2));
    free(cycle);
    graph__free(g);
    workflow__free(wf);

    /* Mixed: A feeds B through a variable, B must finish before C, C feeds A. */
    wf = BUILD("", "A|CX|AX|", "B|AX||", "C||CX|B");
    g = graph__new(wf);
    n = graph__find_cycle(g, &cycle);
    CHECK(n == 3);
    CHECK(cycle_is(wf, cycle, n, abc, 3));
    free(cycle);
    graph__free(g);
    workflow__free(wf);
}

static struct workflow *chain(size_t n, int ring)
{
    struct workflow *wf = calloc(1, sizeof *wf);
    char buf[32];

    wf->name = strdup("chain");
    wf->tasks = calloc(n, sizeof *wf->tasks);
    wf->n_tasks = n;
    wf->vars = calloc(1, sizeof *wf->vars);
    wf->vars[0].name = strdup("V0");
    wf->vars[0].value = strdup("1");
    wf->n_vars = 1;
    for (size_t i = 0; i < n; i++) {
        snprintf(buf, sizeof buf, "T%zu", i + 1);
        wf->tasks[i].name = strdup(buf);
        wf->tasks[i].params = json_object();
        snprintf(buf, sizeof buf, "V%zu", ring && i == 0 ? n : i);
        add_names(&wf->tasks[i].inputs, buf);
        snprintf(buf, sizeof buf, "V%zu", i + 1);
        add_names(&wf->tasks[i].outputs, buf);
    }
    return wf;
}

static void test_long_chain_and_ring(void)
{
    struct workflow *wf = chain(10000, 0);
    struct graph *g = graph__new(wf);
    size_t *cycle = NULL, n;
    clock_t start = clock();

    CHECK(graph__find_cycle(g, &cycle) == 0);
    free(cycle);
    graph__free(g);
    workflow__free(wf);

    wf = chain(10000, 1);
    g = graph__new(wf);
    n = graph__find_cycle(g, &cycle);
    CHECK(n == 10000);
    CHECK(n == 10000 && cycle[0] == 0 && cycle[9999] == 9999);
    free(cycle);
    graph__free(g);
    workflow__free(wf);
    printf("10,000-task chain and ring searched in %.3f s\n",
           (double)(clock() - start) / CLOCKS_PER_SEC);
}

/* ------------------------------------------------------------------ propagation */

static void test_touched_timeout_skips_chain(void)
{
    /* START -> TOUCHED -> DF -> CMD -> END; TOUCHED times out. */
    struct workflow *wf = BUILD("TIMEOUT", "START||TRUE|", "TOUCHED|TRUE,TIMEOUT|FILE_TOUCHED|",
                                "DF|FILE_TOUCHED|FREE_SPACE|", "CMD|FREE_SPACE|REPORT|",
                                "END|REPORT||", "OTHER|TRUE||");
    struct graph *g = graph__new(wf);
    enum graph_task_state st[6] = {GT_DONE,    GT_FAILED,  GT_PENDING,
                                   GT_PENDING, GT_PENDING, GT_PENDING};
    char **reasons = calloc(6, sizeof *reasons);
    unsigned char *set = set_vars(g, "TRUE,TIMEOUT");

    CHECK(graph__propagate(g, set, st, reasons) == 3);
    CHECK(st[2] == GT_SKIPPED && st[3] == GT_SKIPPED && st[4] == GT_SKIPPED);
    CHECK(st[5] == GT_PENDING);
    CHECK(reasons[0] == NULL && reasons[1] == NULL && reasons[5] == NULL);
    CHECK_STR(reasons[2], "input FILE_TOUCHED can never be set: its producer TOUCHED failed");
    CHECK_STR(reasons[3], "input FREE_SPACE can never be set: its producer DF was skipped");
    CHECK_STR(reasons[4], "input REPORT can never be set: its producer CMD was skipped");
    /* A second pass finds nothing new. */
    CHECK(graph__propagate(g, set, st, NULL) == 0);
    free_reasons(reasons, 6);
    free(set);
    graph__free(g);
    workflow__free(wf);
}

static void test_done_without_output(void)
{
    /* TOUCHED finished (no file was touched in time) without producing TRUE. */
    struct workflow *wf = BUILD("", "TOUCHED||TRUE|", "DF|TRUE|X|", "END|X||");
    struct graph *g = graph__new(wf);
    enum graph_task_state st[3] = {GT_DONE, GT_PENDING, GT_PENDING};
    char **reasons = calloc(3, sizeof *reasons);
    unsigned char *set = set_vars(g, "");

    CHECK(graph__propagate(g, set, st, reasons) == 2);
    CHECK_STR(reasons[1], "input TRUE can never be set: TOUCHED finished without producing it");
    CHECK_STR(reasons[2], "input X can never be set: its producer DF was skipped");
    free_reasons(reasons, 3);
    free(set);
    graph__free(g);
    workflow__free(wf);
}

static void test_pending_producer_keeps_alive(void)
{
    /* Nothing is dead while its producer may still run. */
    struct workflow *wf = BUILD("", "START||TRUE|", "A|TRUE|AX|", "B|AX||");
    struct graph *g = graph__new(wf);
    enum graph_task_state st[3] = {GT_PENDING, GT_PENDING, GT_PENDING};
    unsigned char *set = set_vars(g, "");

    CHECK(graph__propagate(g, set, st, NULL) == 0);
    st[0] = GT_DONE;
    free(set);
    set = set_vars(g, "TRUE");
    CHECK(graph__propagate(g, set, st, NULL) == 0);
    CHECK(st[1] == GT_PENDING && st[2] == GT_PENDING);
    free(set);
    graph__free(g);
    workflow__free(wf);
}

static void test_failure_skips_dependents(void)
{
    /* CMD fails: its consumers and the tasks that depend_on it are skipped,
     * and so on transitively; an unrelated branch is not. */
    struct workflow *wf = BUILD("", "START||TRUE|", "CMD|TRUE|OUT|", "USE|OUT|U|",
                                "AFTER|TRUE|AF|CMD", "LATER|AF||", "SIDE|TRUE||", "NEXT|||AFTER");
    struct graph *g = graph__new(wf);
    enum graph_task_state st[7] = {GT_DONE,    GT_FAILED,  GT_PENDING, GT_PENDING,
                                   GT_PENDING, GT_PENDING, GT_PENDING};
    char **reasons = calloc(7, sizeof *reasons);
    unsigned char *set = set_vars(g, "TRUE");

    CHECK(graph__propagate(g, set, st, reasons) == 4);
    CHECK(st[2] == GT_SKIPPED && st[3] == GT_SKIPPED && st[4] == GT_SKIPPED);
    CHECK(st[5] == GT_PENDING && st[6] == GT_SKIPPED);
    CHECK_STR(reasons[2], "input OUT can never be set: its producer CMD failed");
    CHECK_STR(reasons[3], "depends on CMD, which failed");
    CHECK_STR(reasons[4], "input AF can never be set: its producer AFTER was skipped");
    CHECK_STR(reasons[6], "depends on AFTER, which was skipped");
    free_reasons(reasons, 7);
    free(set);
    graph__free(g);
    workflow__free(wf);
}

static void test_join_with_one_dead_input(void)
{
    struct workflow *wf =
        BUILD("", "START||TRUE|", "A|TRUE|AX|", "B|TRUE|BX|", "JOIN|AX,BX|J|", "END|J||");
    struct graph *g = graph__new(wf);
    enum graph_task_state st[5] = {GT_DONE, GT_DONE, GT_PENDING, GT_PENDING, GT_PENDING};
    char **reasons = calloc(5, sizeof *reasons);
    unsigned char *set = set_vars(g, "TRUE,AX");

    /* B still running: the join waits. */
    CHECK(graph__propagate(g, set, st, reasons) == 0);
    CHECK(st[3] == GT_PENDING);
    /* B failed: the join can never run, and neither can END. */
    st[2] = GT_FAILED;
    CHECK(graph__propagate(g, set, st, reasons) == 2);
    CHECK(st[3] == GT_SKIPPED && st[4] == GT_SKIPPED);
    CHECK_STR(reasons[3], "input BX can never be set: its producer B failed");
    CHECK_STR(reasons[4], "input J can never be set: its producer JOIN was skipped");
    free_reasons(reasons, 5);
    free(set);
    graph__free(g);
    workflow__free(wf);
}

static void test_depends_on_skipped(void)
{
    struct workflow *wf = BUILD("GO", "A|GO||", "B|GO||A", "C|GO||B");
    struct graph *g = graph__new(wf);
    enum graph_task_state st[3] = {GT_SKIPPED, GT_PENDING, GT_PENDING};
    char **reasons = calloc(3, sizeof *reasons);
    unsigned char *set = set_vars(g, "");

    /* GO is an env variable: never dead even before it is published. */
    CHECK(graph__propagate(g, set, st, reasons) == 2);
    CHECK_STR(reasons[1], "depends on A, which was skipped");
    CHECK_STR(reasons[2], "depends on B, which was skipped");

    /* A depends_on task that is done lets the task run. */
    st[0] = GT_DONE;
    st[1] = GT_PENDING;
    st[2] = GT_PENDING;
    free(reasons[1]);
    free(reasons[2]);
    reasons[1] = reasons[2] = NULL;
    CHECK(graph__propagate(g, set, st, reasons) == 0);
    free_reasons(reasons, 3);
    free(set);
    graph__free(g);
    workflow__free(wf);
}

static void test_two_producers(void)
{
    /* X has two producers: one failed, the other is still pending. */
    struct workflow *wf = BUILD("", "P1||X|", "P2||X|", "USE|X||");
    struct graph *g = graph__new(wf);
    enum graph_task_state st[3] = {GT_FAILED, GT_PENDING, GT_PENDING};
    char **reasons = calloc(3, sizeof *reasons);
    unsigned char *set = set_vars(g, "");

    CHECK(graph__propagate(g, set, st, reasons) == 0);
    CHECK(st[2] == GT_PENDING);
    /* The other one finishes without producing X: now X is dead. */
    st[1] = GT_DONE;
    CHECK(graph__propagate(g, set, st, reasons) == 1);
    CHECK_STR(reasons[2], "input X can never be set: none of its producers set it (P1 failed, "
                          "P2 finished without producing it)");
    /* But if the first value did arrive, nothing is dead. */
    st[2] = GT_PENDING;
    free(set);
    set = set_vars(g, "X");
    CHECK(graph__propagate(g, set, st, NULL) == 0);
    free_reasons(reasons, 3);
    free(set);
    graph__free(g);
    workflow__free(wf);
}

static void test_propagate_long_chain(void)
{
    /* T1 fails: the 9,999 tasks after it are skipped, in one call. */
    struct workflow *wf = chain(10000, 0);
    struct graph *g = graph__new(wf);
    enum graph_task_state *st = calloc(10000, sizeof *st);
    unsigned char *set = set_vars(g, "");
    clock_t start = clock();

    st[0] = GT_FAILED;
    CHECK(graph__propagate(g, set, st, NULL) == 9999);
    CHECK(st[9999] == GT_SKIPPED);
    printf("skips propagated along a 10,000-task chain in %.3f s\n",
           (double)(clock() - start) / CLOCKS_PER_SEC);
    free(st);
    free(set);
    graph__free(g);
    workflow__free(wf);
}

/* ------------------------------------------------------------------ printers */

static char *print(const struct graph *g, int dot)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);

    if (dot)
        graph__print_dot(g, out);
    else
        graph__print_mermaid(g, out);
    fclose(out);
    return text;
}

static void test_printers(void)
{
    struct workflow *wf =
        BUILD("TIMEOUT", "START||TRUE|", "TOUCHED|TRUE,TIMEOUT|TRUE|",
              "DF|TRUE|MAIN_VOLUME,FREE_SPACE|START", "CMD|MAIN_VOLUME,FREE_SPACE||");
    struct graph *g = graph__new(wf);
    char *mermaid = print(g, 0), *dot = print(g, 1);

    CHECK_CONTAINS(mermaid, "flowchart LR\n");
    CHECK_CONTAINS(mermaid, "    env([\"env\"])\n");
    CHECK_CONTAINS(mermaid, "    t0[\"START\"]\n");
    CHECK_CONTAINS(mermaid, "    t3[\"CMD\"]\n");
    CHECK_CONTAINS(mermaid, "    t0 -->|\"TRUE\"| t1\n");
    CHECK_CONTAINS(mermaid, "    t0 -->|\"TRUE\"| t2\n");
    CHECK_CONTAINS(mermaid, "    t1 -->|\"TRUE\"| t2\n");
    CHECK_CONTAINS(mermaid, "    env -->|\"TIMEOUT\"| t1\n");
    /* Two variables between the same pair make one edge with both names. */
    CHECK_CONTAINS(mermaid, "    t2 -->|\"MAIN_VOLUME, FREE_SPACE\"| t3\n");
    CHECK_CONTAINS(mermaid, "    t0 -.->|\"depends_on\"| t2\n");

    CHECK_CONTAINS(dot, "digraph \"test\" {\n");
    CHECK_CONTAINS(dot, "    env [shape=ellipse, label=\"env\"];\n");
    CHECK_CONTAINS(dot, "    t2 [label=\"DF\"];\n");
    CHECK_CONTAINS(dot, "    t0 -> t1 [label=\"TRUE\"];\n");
    CHECK_CONTAINS(dot, "    env -> t1 [label=\"TIMEOUT\"];\n");
    CHECK_CONTAINS(dot, "    t2 -> t3 [label=\"MAIN_VOLUME, FREE_SPACE\"];\n");
    CHECK_CONTAINS(dot, "    t0 -> t2 [style=dashed, label=\"depends_on\"];\n");
    CHECK(dot && dot[strlen(dot) - 2] == '}');
    free(mermaid);
    free(dot);
    graph__free(g);
    workflow__free(wf);

    /* No env node when no initial variable is consumed. */
    wf = BUILD("UNUSED", "A||X|", "B|X||");
    g = graph__new(wf);
    mermaid = print(g, 0);
    dot = print(g, 1);
    CHECK(mermaid && !strstr(mermaid, "env"));
    CHECK(dot && !strstr(dot, "env"));
    free(mermaid);
    free(dot);
    graph__free(g);
    workflow__free(wf);
}

/* The graph of a loaded workflow file agrees with the loader. */
static void test_loaded_workflow(void)
{
    static const char yaml[] = "workflow:\n"
                               "  env: {TIMEOUT: \"5\"}\n"
                               "  tasks:\n"
                               "    - {name: START, plugin: start, outputs: [TRUE]}\n"
                               "    - {name: W, plugin: touched, inputs: [TRUE, TIMEOUT]}\n"
                               "    - {name: Z, plugin: end, depends_on: [W]}\n";
    struct wf_diags d = {0};
    struct workflow *wf = workflow__load_buffer("t.yaml", yaml, strlen(yaml), NULL, &d);
    struct graph *g = wf ? graph__new(wf) : NULL;
    char *mermaid = g ? print(g, 0) : NULL;

    CHECK(wf != NULL && g != NULL);
    CHECK(g && graph__var_is_initial(g, (size_t)graph__var_index(g, "TIMEOUT")));
    CHECK_CONTAINS(mermaid, "t1 -.->|\"depends_on\"| t2");
    free(mermaid);
    graph__free(g);
    workflow__free(wf);
    wf_diags_free(&d);
}

int main(void)
{
    RUN(test_producers_consumers);
    RUN(test_duplicates_are_merged);
    RUN(test_no_cycle_in_dag);
    RUN(test_cycles_found);
    RUN(test_long_chain_and_ring);
    RUN(test_touched_timeout_skips_chain);
    RUN(test_done_without_output);
    RUN(test_pending_producer_keeps_alive);
    RUN(test_failure_skips_dependents);
    RUN(test_join_with_one_dead_input);
    RUN(test_depends_on_skipped);
    RUN(test_two_producers);
    RUN(test_propagate_long_chain);
    RUN(test_printers);
    RUN(test_loaded_workflow);
    return check_summary();
}
