/*
 * test_workflow_advice.c - unit tests of what `flowbus validate` tells a
 * newcomer (issue 15): the warnings of core/model/advice.c (an `end` task
 * reached before any work; an input the shell expands without double
 * quotes, and the places where that is harmless), and an unset {{ENV:X}}
 * reported once, as itself, not as a missing token or an input never set;
 * with unset_env_ok (flowbus graph) it is no error at all.
 *
 * Each diagnostic is asserted with its exact line and column. The YAML texts
 * are written line by line so that positions can be counted.
 */
#include "workflow_fixture.h"

static size_t count_containing(const struct wf_diags *d, const char *text)
{
    size_t n = 0;

    for (size_t i = 0; i < d->n; i++)
        n += strstr(d->items[i].message, text) != NULL;
    return n;
}

static void test_end_reached_before_any_work(void)
{
    struct wf_diags d;
    struct workflow *wf = load("workflow:\n"               /* 1 */
                               "  tasks:\n"                /* 2 */
                               "    - name: START\n"       /* 3 */
                               "      plugin: start\n"     /* 4 */
                               "      outputs: [TRUE]\n"   /* 5 */
                               "    - name: WORK\n"        /* 6 */
                               "      plugin: cmd\n"       /* 7 */
                               "      inputs: [TRUE]\n"    /* 8 */
                               "      params: {command: 'echo hi'}\n"
                               "    - name: END\n"         /* 10 */
                               "      plugin: end\n"       /* 11 */
                               "      inputs: [TRUE]\n"    /* 12 */
                               "    - name: END2\n"        /* 13 */
                               "      plugin: end\n",      /* 14 */
                               &d);
    CHECK(wf != NULL);
    CHECK(d.n_errors == 0);
    CHECK_WARNING(d, 12, 16,
                  "end task 'END' takes only TRUE, which a start task sets at once: it finishes "
                  "before any work");
    CHECK_WARNING(d, 13, 7, "end task 'END2' has no inputs, so it finishes as soon as the run");
    workflow__free(wf);
    wf_diags_free(&d);

    /* The end of real work, a start/end-only workflow, or a depends_on: no warning. */
    wf = load("workflow:\n"
              "  tasks:\n"
              "    - name: START\n"
              "      plugin: start\n"
              "      outputs: [TRUE]\n"
              "    - name: WORK\n"
              "      plugin: cmd\n"
              "      inputs: [TRUE]\n"
              "      outputs: [DONE]\n"
              "      params: {command: 'echo DONE=1'}\n"
              "    - name: END\n"
              "      plugin: end\n"
              "      inputs: [DONE]\n"
              "    - name: END2\n"
              "      plugin: end\n"
              "      inputs: [TRUE]\n"
              "      depends_on: [WORK]\n",
              &d);
    CHECK(wf != NULL);
    CHECK(count_containing(&d, "end task") == 0);
    workflow__free(wf);
    wf_diags_free(&d);
    wf = load("workflow:\n"
              "  tasks:\n"
              "    - name: START\n"
              "      plugin: start\n"
              "      outputs: [TRUE]\n"
              "    - name: END\n"
              "      plugin: end\n"
              "      inputs: [TRUE]\n",
              &d);
    CHECK(wf != NULL);
    CHECK(d.n == 0);
    workflow__free(wf);
    wf_diags_free(&d);
}

static void test_unquoted_inputs(void)
{
    struct wf_diags d;
    struct workflow *wf =
        load("workflow:\n"                                                        /* 1 */
             "  env: {A: x, B: y, C: z}\n"                                       /* 2 */
             "  tasks:\n"                                                        /* 3 */
             "    - name: BARE\n"                                                /* 4 */
             "      plugin: cmd\n"                                               /* 5 */
             "      inputs: [A, B, C]\n"                                         /* 6 */
             "      params:\n"                                                   /* 7 */
             "        command: 'echo $A ${B} $A; cp $OTHER .'\n",                /* 8 */
             &d);
    CHECK(wf != NULL);
    CHECK(d.n_errors == 0);
    CHECK_WARNING(d, 8, 18,
                  "the command of task 'BARE' uses $A without double quotes: the shell splits "
                  "its value into words and expands '*' in it; write \"$A\"");
    CHECK_WARNING(d, 8, 18, "uses $B without double quotes");
    CHECK(count_containing(&d, "$A without") == 1); /* once per input */
    CHECK(count_containing(&d, "$C") == 0);
    CHECK(count_containing(&d, "$OTHER") == 0); /* not an input */
    workflow__free(wf);
    wf_diags_free(&d);

    /* Quoted, assigned, arithmetic, inside "$( )" with its own quotes, escaped: no warning. */
    wf = load("workflow:\n"
              "  env: {A: x, N: \"1\"}\n"
              "  tasks:\n"
              "    - name: QUOTED\n"
              "      plugin: cmd\n"
              "      inputs: [A, N]\n"
              "      params:\n"
              "        command: |\n"
              "          out=$A\n"
              "          echo \"$A ${A%/*} $(wc -c < \"$A\")\" \\$A '$N is literal'\n"
              "          echo $((N + 1)) $(( $N * 2 ))\n",
              &d);
    CHECK(wf != NULL);
    CHECK(count_containing(&d, "without double quotes") == 0);
    /* The single-quote warning is the other check's, and still there. */
    CHECK(count_containing(&d, "inside single quotes") == 1);
    workflow__free(wf);
    wf_diags_free(&d);

    /* Bare inside a command substitution that is itself quoted: still split. */
    wf = load("workflow:\n"
              "  env: {A: x}\n"
              "  tasks:\n"
              "    - name: SUB\n"
              "      plugin: cmd\n"
              "      inputs: [A]\n"
              "      params: {command: 'echo \"$(cat $A)\"'}\n",
              &d);
    CHECK(wf != NULL);
    CHECK_WARNING(d, 7, 25, "the command of task 'SUB' uses $A without double quotes");
    workflow__free(wf);
    wf_diags_free(&d);
}

static const char *no_env(void *ctx, const char *name)
{
    (void)ctx;
    (void)name;
    return NULL;
}

static void test_unset_env_reported_once(void)
{
    static const char yaml[] = "workflow:\n"                                      /* 1 */
                               "  env:\n"                                         /* 2 */
                               "    AUTH_TOKEN: \"{{ENV:AUTH_TOKEN}}\"\n"         /* 3 */
                               "    WHO: \"{{ENV:WHO}}\"\n"                       /* 4 */
                               "  tasks:\n"                                       /* 5 */
                               "    - name: T\n"                                  /* 6 */
                               "      plugin: cmd\n"                              /* 7 */
                               "      inputs: [WHO]\n"                            /* 8 */
                               "      requires_auth: true\n"                      /* 9 */
                               "      permissions: {required: [can_x]}\n"         /* 10 */
                               "      params: {command: 'echo \"$WHO\"'}\n";     /* 11 */
    struct wf_load_options o = plain_opts();
    struct wf_diags d;
    struct workflow *wf;

    o.getenv_fn = no_env;
    wf = load_with(yaml, &o, &d);
    CHECK(wf == NULL);
    CHECK(d.n_errors == 2);
    CHECK_ERROR(d, 3, 18,
                "environment variable 'AUTH_TOKEN' is not set (env 'AUTH_TOKEN' uses "
                "{{ENV:AUTH_TOKEN}})");
    CHECK_ERROR(d, 4, 11, "environment variable 'WHO' is not set");
    CHECK(count_containing(&d, "never gives it a token") == 0);
    CHECK(count_containing(&d, "is never set") == 0);
    wf_diags_free(&d);

    /* flowbus graph: drawing needs no values. */
    o.unset_env_ok = 1;
    wf = load_with(yaml, &o, &d);
    CHECK(wf != NULL);
    CHECK(d.n_errors == 0);
    workflow__free(wf);
    wf_diags_free(&d);
}

int main(void)
{
    RUN(test_end_reached_before_any_work);
    RUN(test_unquoted_inputs);
    RUN(test_unset_env_reported_once);
    return check_summary();
}
