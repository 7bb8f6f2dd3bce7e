/*
 * test_workflow_checks.c - unit tests of the checks that need the whole
 * workflow (core/model/checks.c, on the graph of graph.c): inputs nobody
 * sets, cycles through variables and through depends_on, depends_on naming
 * unknown tasks or the task itself, outputs nobody reads and $VARs a shell
 * would not expand (warnings, which do not fail the load), the params of cmd
 * tasks, and a 10,000-task chain (its load time printed), then the same
 * chain closed into a ring of one cycle.
 *
 * Each diagnostic is asserted with its exact line and column and the key
 * words of its message. The YAML texts are written line by line so that
 * positions can be counted.
 */
#include "workflow_fixture.h"

#include <time.h>

/* ------------------------------------------------------------------ the graph */

static void test_input_never_set(void)
{
    static const char yaml[] = "workflow:\n"
                               "  env: {A: \"1\"}\n"
                               "  tasks:\n"
                               "    - name: X\n"
                               "      plugin: x\n"
                               "      inputs: [A, FOO, BAR]\n";
    struct wf_diags d;
    struct wf_load_options o = plain_opts();
    struct wf_setting set[] = {{"BAR", "2"}};
    struct workflow *wf;

    wf = load(yaml, &d);
    CHECK(wf == NULL);
    CHECK(d.n_errors == 2);
    CHECK_ERROR(d, 6, 19,
                "input 'FOO' of task 'X' is never set: no task outputs it and it is "
                "not in env: or --set");
    CHECK_ERROR(d, 6, 24, "input 'BAR' of task 'X' is never set");
    wf_diags_free(&d);

    o.settings = set;
    o.n_settings = 1;
    wf = load_with(yaml, &o, &d);
    CHECK(wf == NULL);
    CHECK(d.n_errors == 1);
    CHECK_ERROR(d, 6, 19, "input 'FOO' of task 'X' is never set");
    wf_diags_free(&d);
}

static void test_cycle_through_variables(void)
{
    struct wf_diags d;
    struct workflow *wf = load("workflow:\n"
                               "  tasks:\n"
                               "    - name: A\n"
                               "      plugin: x\n"
                               "      inputs: [C_OUT]\n"
                               "      outputs: [A_OUT]\n"
                               "    - name: B\n"
                               "      plugin: x\n"
                               "      inputs: [A_OUT]\n"
                               "      outputs: [B_OUT]\n"
                               "    - name: C\n"
                               "      plugin: x\n"
                               "      inputs: [B_OUT]\n"
                               "      outputs: [C_OUT]\n",
                               &d);
    CHECK(wf == NULL);
    CHECK(d.n_errors == 1);
    CHECK_ERROR(d, 3, 7, "dependency cycle: A -> B (A_OUT) -> C (B_OUT) -> A (C_OUT)");
    wf_diags_free(&d);

    /* A task consuming its own output is a cycle of one. */
    wf = load("workflow:\n"
              "  tasks:\n"
              "    - name: LOOP\n"
              "      plugin: x\n"
              "      inputs: [X]\n"
              "      outputs: [X]\n",
              &d);
    CHECK(wf == NULL);
    CHECK_ERROR(d, 3, 7, "dependency cycle: LOOP -> LOOP (X)");
    wf_diags_free(&d);
}

static void test_cycle_through_depends_on(void)
{
    struct wf_diags d;
    struct workflow *wf = load("workflow:\n"                           /* 1 */
                               "  tasks:\n"                            /* 2 */
                               "    - name: START\n"                   /* 3 */
                               "      plugin: start\n"                 /* 4 */
                               "      outputs: [TRUE]\n"               /* 5 */
                               "    - name: P\n"                       /* 6 */
                               "      plugin: x\n"                     /* 7 */
                               "      inputs: [TRUE]\n"                /* 8 */
                               "      depends_on: [Q]\n"               /* 9 */
                               "    - name: Q\n"                       /* 10 */
                               "      plugin: x\n"                     /* 11 */
                               "      execution: {depends_on: [P]}\n", /* 12 */
                               &d);
    CHECK(wf == NULL);
    CHECK(d.n_errors == 1);
    CHECK_ERROR(d, 6, 7, "dependency cycle: P -> Q (depends_on) -> P (depends_on)");
    wf_diags_free(&d);
}

static void test_depends_on_errors(void)
{
    struct wf_diags d;
    struct workflow *wf = load("workflow:\n"                          /* 1 */
                               "  tasks:\n"                           /* 2 */
                               "    - name: START\n"                  /* 3 */
                               "      plugin: start\n"                /* 4 */
                               "    - name: P\n"                      /* 5 */
                               "      plugin: x\n"                    /* 6 */
                               "      depends_on: [STRAT, ZZZZZZ]\n"  /* 7 */
                               "    - name: Q\n"                      /* 8 */
                               "      plugin: x\n"                    /* 9 */
                               "      depends_on: [START, Q]\n"       /* 10 */
                               "      execution: {depends_on: [Q]}\n" /* 11 */
                               "    - name: R\n"                      /* 12 */
                               "      plugin: x\n"                    /* 13 */
                               "      depends_on: [START, START]\n",  /* 14 */
                               &d);
    CHECK(wf == NULL);
    CHECK_ERROR(d, 7, 20, "task 'P' depends on unknown task 'STRAT'; did you mean 'START'?");
    CHECK_ERROR(d, 7, 27, "task 'P' depends on unknown task 'ZZZZZZ'");
    for (size_t i = 0; i < d.n; i++)
        CHECK(!strstr(d.items[i].message, "ZZZZZZ'; did you mean"));
    CHECK_ERROR(d, 10, 27, "task 'Q' depends on itself");
    CHECK_ERROR(d, 14, 27, "'START' is listed twice in 'depends_on' of task 'R'");
    /* A self-dependency is reported once, not again as a cycle. */
    for (size_t i = 0; i < d.n; i++)
        CHECK(!strstr(d.items[i].message, "cycle"));
    wf_diags_free(&d);
}

/* ------------------------------------------------------------------ warnings and cmd */

static void test_warnings(void)
{
    struct wf_diags d;
    struct workflow *wf =
        load("workflow:\n"                                          /* 1 */
             "  tasks:\n"                                           /* 2 */
             "    - name: START\n"                                  /* 3 */
             "      plugin: start\n"                                /* 4 */
             "      outputs: [TRUE, SPARE]\n"                       /* 5 */
             "    - name: CMD\n"                                    /* 6 */
             "      plugin: cmd\n"                                  /* 7 */
             "      inputs: [TRUE]\n"                               /* 8 */
             "      params:\n"                                      /* 9 */
             "        command: echo '$TRUE is ${TRUE}' \"$TRUE\"\n" /* 10 */
             "    - name: OK\n"                                     /* 11 */
             "      plugin: cmd\n"                                  /* 12 */
             "      inputs: [TRUE]\n"                               /* 13 */
             "      params:\n"                                      /* 14 */
             "        command: \"echo \\\"$TRUE\\\" 'cost $5 $OTHER' \\\\'$TRUE\"\n",
             &d);
    CHECK(wf != NULL);
    CHECK(d.n_errors == 0);
    CHECK(d.n == 4); /* and OK's bare $TRUE after \' (test_workflow_advice.c) */
    CHECK_WARNING(d, 5, 23,
                  "output 'SPARE' of task 'START' is never used: no task lists it in "
                  "its inputs");
    CHECK_WARNING(d, 10, 18,
                  "the command of task 'CMD' uses $TRUE inside single quotes, where "
                  "the shell does not expand it");
    for (size_t i = 0; i < d.n; i++)
        CHECK(!strstr(d.items[i].message, "task 'OK'") ||
              strstr(d.items[i].message, "without double quotes"));
    workflow__free(wf);
    wf_diags_free(&d);
}

static void test_cmd_params(void)
{
    struct wf_diags d;
    struct workflow *wf = load("workflow:\n"                                           /* 1 */
                               "  env: {TRUE: \"1\"}\n"                                /* 2 */
                               "  tasks:\n"                                            /* 3 */
                               "    - name: C1\n"                                      /* 4 */
                               "      plugin: cmd\n"                                   /* 5 */
                               "      inputs: [TRUE]\n"                                /* 6 */
                               "    - name: C2\n"                                      /* 7 */
                               "      plugin: cmd\n"                                   /* 8 */
                               "      params: {command: \"true\", argv: [\"true\"]}\n" /* 9 */
                               "    - name: C3\n"                                      /* 10 */
                               "      plugin: cmd\n"                                   /* 11 */
                               "      params: {argv: \"true\"}\n"                      /* 12 */
                               "    - name: C4\n"                                      /* 13 */
                               "      plugin: cmd\n"                                   /* 14 */
                               "      params: {argv: [ls, -l]}\n",                     /* 15 */
                               &d);
    CHECK(wf == NULL);
    CHECK(d.n_errors == 3);
    CHECK_ERROR(d, 4, 7, "task 'C1' (plugin cmd) needs exactly one of params 'command'");
    CHECK_ERROR(d, 4, 7, "got neither");
    CHECK_ERROR(d, 9, 39, "task 'C2' (plugin cmd) needs exactly one of params");
    CHECK_ERROR(d, 9, 39, "not both");
    CHECK_ERROR(d, 12, 22, "params 'argv' of task 'C3' must be a non-empty list of strings");
    wf_diags_free(&d);
}

/* ------------------------------------------------------------------ scale */

static char *chain_yaml(size_t n, int close_loop)
{
    size_t cap = n * 128 + 256, len = 0;
    char *s = malloc(cap);

    if (!s)
        return NULL;
    len += (size_t)snprintf(s + len, cap - len,
                            "workflow:\n  name: chain\n  env: {V0: \"go\"}\n"
                            "  tasks:\n");
    for (size_t i = 1; i <= n; i++)
        len += (size_t)snprintf(s + len, cap - len,
                                "    - name: T%zu\n      plugin: cmd\n      inputs: [V%zu]\n"
                                "      outputs: [V%zu]\n      params: {argv: [\"true\"]}\n",
                                i, close_loop && i == 1 ? n : i - 1, i);
    return s;
}

static void test_ten_thousand_tasks(void)
{
    struct wf_diags d;
    char *yaml = chain_yaml(10000, 0);
    struct timespec a, b;
    struct workflow *wf;
    double secs;

    CHECK(yaml != NULL);
    if (!yaml)
        return;
    clock_gettime(CLOCK_MONOTONIC, &a);
    wf = load(yaml, &d);
    clock_gettime(CLOCK_MONOTONIC, &b);
    secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    printf("10,000-task chain loaded and validated in %.3f s\n", secs);
    CHECK(wf != NULL);
    CHECK(d.n_errors == 0);
    CHECK(d.n == 1); /* the last output is never used */
    CHECK(wf && wf->n_tasks == 10000);
    CHECK(wf && workflow__find_task(wf, "T9999") == 9998);
    workflow__free(wf);
    wf_diags_free(&d);
    free(yaml);

    /* A big file without aliases is not mistaken for an alias bomb. */
    yaml = chain_yaml(100000, 0);
    wf = yaml ? load(yaml, &d) : NULL;
    CHECK(wf != NULL);
    CHECK(d.n_errors == 0);
    workflow__free(wf);
    wf_diags_free(&d);
    free(yaml);

    /* The same chain closed into a ring: one cycle through all 10,000 tasks. */
    yaml = chain_yaml(10000, 1);
    wf = yaml ? load(yaml, &d) : NULL;
    CHECK(wf == NULL);
    CHECK(d.n_errors == 1);
    CHECK_ERROR(d, 5, 7, "dependency cycle: T1 -> T2 (V1) -> T3 (V2)");
    CHECK(d.n >= 1 && strstr(d.items[0].message, "T10000 (V9999) -> T1 (V10000)"));
    wf_diags_free(&d);
    free(yaml);
}

int main(void)
{
    RUN(test_input_never_set);
    RUN(test_cycle_through_variables);
    RUN(test_cycle_through_depends_on);
    RUN(test_depends_on_errors);
    RUN(test_warnings);
    RUN(test_cmd_params);
    RUN(test_ten_thousand_tasks);
    return check_summary();
}
