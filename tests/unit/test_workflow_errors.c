/*
 * test_workflow_errors.c - unit tests of the loader's diagnostics for a file
 * of the wrong shape (core/model/: diag.c, document.c, load*.c): YAML syntax
 * errors, bad bytes, the top level, unknown keys with their did-you-mean,
 * wrong types, bad and duplicate names, unknown plugins, duplicate keys,
 * hostile YAML (alias bombs, loops, deep nesting), huge names clipped in
 * messages, and how diagnostics are sorted and printed, files included.
 *
 * Each error is provoked here from a small YAML text, and the test asserts its
 * exact line and column and the key words of its message, and that the load
 * fails (or, at a limit's edge, that it still succeeds). The YAML texts are
 * written line by line so that positions can be counted.
 */
#include "workflow_fixture.h"

#include <time.h>

/* ------------------------------------------------------------------ structure */

static void test_yaml_syntax_error(void)
{
    struct wf_diags d;
    struct workflow *wf = load("workflow:\n"
                               "  tasks:\n"
                               "    - name: [unclosed\n"
                               "      plugin: x\n",
                               &d);
    CHECK(wf == NULL);
    CHECK(d.n == 1);
    CHECK_ERROR(d, 4, 13, "YAML syntax error: did not find expected ',' or ']'");
    CHECK_ERROR(d, 4, 13, "flow sequence that started at line 3");
    wf_diags_free(&d);

    wf = load("workflow:\n  name: a: b\n", &d);
    CHECK(wf == NULL);
    CHECK_ERROR(d, 2, 10, "mapping values are not allowed");
    wf_diags_free(&d);
}

/* libyaml's reader gives only a byte offset for bad bytes: the loader turns it
 * into the line and column of the byte (found by fuzzing; was always 1:1). */
static void test_bad_bytes_have_positions(void)
{
    struct wf_diags d;
    const char bad_utf8[] = "workflow:\n  name: \"caf\xc3\"\n";
    const char nul[] = "workflow:\n  name: x\0y\n";
    struct workflow *wf;

    memset(&d, 0, sizeof d);
    wf = workflow__load_buffer("t.yaml", bad_utf8, sizeof bad_utf8 - 1, NULL, &d);
    CHECK(wf == NULL);
    CHECK_ERROR(d, 2, 14,
                "invalid trailing UTF-8 octet (byte 0x22); a workflow file must be UTF-8");
    wf_diags_free(&d);

    wf = workflow__load_buffer("t.yaml", nul, sizeof nul - 1, NULL, &d);
    CHECK(wf == NULL);
    CHECK_ERROR(d, 2, 10, "control characters are not allowed (U+0000)");
    wf_diags_free(&d);
}

/* A huge invalid name is quoted short, cut on a character boundary, in every
 * message that names it (a 1 MB name made a 1 MB message). */
static void test_huge_names_are_clipped(void)
{
    struct wf_diags d;
    size_t big = 100000;
    const char *head = "workflow:\n  tasks:\n    - {name: ";
    const char *mid = ", plugin: start, depends_on: [";
    char *yaml = malloc(strlen(head) + big + strlen(mid) + big + 16);
    struct workflow *wf;
    size_t n = 0;

    if (!yaml)
        return;
    n += (size_t)sprintf(yaml, "%s", head);
    memcpy(yaml + n, "\xc3\xa9", 2); /* a two-byte character first, to cut around */
    n += 2;
    memset(yaml + n, 'N', big);
    n += big;
    n += (size_t)sprintf(yaml + n, "%s", mid);
    memset(yaml + n, 'D', big);
    n += big;
    sprintf(yaml + n, "]}\n");
    wf = load(yaml, &d);
    CHECK(wf == NULL);
    for (size_t i = 0; i < d.n; i++)
        CHECK(strlen(d.items[i].message) < 400);
    CHECK_ERROR(d, 3, 14, "task name '\xc3\xa9NNNNNNNN");
    CHECK_ERROR(d, 3, 14, "NNN...' is not valid");
    CHECK_ERROR(d, 3, 100045, "depends on unknown task 'DDDDDDDD");
    CHECK_ERROR(d, 3, 100045, "DDD...'");
    wf_diags_free(&d);
    free(yaml);
}

static void test_top_level_shape(void)
{
    struct wf_diags d;
    struct workflow *wf;

    wf = load("- a\n- b\n", &d);
    CHECK(wf == NULL);
    CHECK_ERROR(d, 1, 1, "expected a mapping with a 'workflow' key at the top, got a list");
    wf_diags_free(&d);

    wf = load("", &d);
    CHECK(wf == NULL);
    CHECK_ERROR(d, 1, 1, "the file is empty");
    wf_diags_free(&d);

    wf = load("name: x\n", &d);
    CHECK(wf == NULL);
    CHECK_ERROR(d, 1, 1, "unknown key 'name' in the top level");
    CHECK_ERROR(d, 1, 1, "missing 'workflow' key");
    wf_diags_free(&d);

    wf = load("workflow: 3\n", &d);
    CHECK(wf == NULL);
    CHECK_ERROR(d, 1, 11, "'workflow' must be a mapping");
    wf_diags_free(&d);

    wf = load("workflow:\n  name: x\n", &d);
    CHECK(wf == NULL);
    CHECK_ERROR(d, 2, 3, "'workflow' has no 'tasks' list");
    wf_diags_free(&d);

    wf = load("workflow:\n  tasks: {a: 1}\n", &d);
    CHECK(wf == NULL);
    CHECK_ERROR(d, 2, 10, "'tasks' must be a list of tasks, got a mapping");
    wf_diags_free(&d);

    wf = load("workflow:\n  tasks: []\n", &d);
    CHECK(wf == NULL);
    CHECK_ERROR(d, 2, 10, "'tasks' is empty");
    wf_diags_free(&d);

    wf = load("workflow:\n  tasks:\n    - just a string\n", &d);
    CHECK(wf == NULL);
    CHECK_ERROR(d, 3, 7, "task #1 must be a mapping");
    wf_diags_free(&d);

    wf = load("workflow:\n  tasks:\n    - {name: A, plugin: x}\n---\nworkflow: {}\n", &d);
    CHECK(wf == NULL);
    CHECK_ERROR(d, 5, 1, "a second YAML document");
    wf_diags_free(&d);
}

static void test_unknown_keys(void)
{
    struct wf_diags d;
    struct workflow *wf = load("workflow:\n"                          /* 1 */
                               "  nmae: x\n"                          /* 2 */
                               "  tasks:\n"                           /* 3 */
                               "    - name: DF\n"                     /* 4 */
                               "      plugin: df\n"                   /* 5 */
                               "      inptus: [TRUE]\n"               /* 6 */
                               "      frobnicate: 1\n"                /* 7 */
                               "      execution: {timout: 3}\n"       /* 8 */
                               "      permissions: {requried: [a]}\n" /* 9 */
                               "      <<: {x: 1}\n"                   /* 10 */
                               "    - nme: B\n"                       /* 11 */
                               "      plugin: x\n",                   /* 12 */
                               &d);
    CHECK(wf == NULL);
    CHECK_ERROR(d, 2, 3, "unknown key 'nmae' in workflow; did you mean 'name'?");
    CHECK_ERROR(d, 6, 7, "unknown key 'inptus' in task 'DF'; did you mean 'inputs'?");
    CHECK_ERROR(d, 7, 7,
                "unknown key 'frobnicate' in task 'DF'; valid keys: name, plugin, "
                "description, inputs, outputs, params, depends_on, execution, "
                "permissions, requires_auth");
    CHECK_ERROR(d, 8, 19,
                "unknown key 'timout' in 'execution' of task 'DF'; did you mean "
                "'timeout'?");
    CHECK_ERROR(d, 9, 21,
                "unknown key 'requried' in 'permissions' of task 'DF'; did you mean "
                "'required'?");
    CHECK_ERROR(d, 10, 7, "merge keys are not supported");
    CHECK_ERROR(d, 11, 7, "unknown key 'nme' in task '#2'; did you mean 'name'?");
    CHECK_ERROR(d, 11, 7, "task #2 has no 'name'");
    wf_diags_free(&d);
}

static void test_wrong_types(void)
{
    struct wf_diags d;
    struct workflow *wf =
        load("workflow:\n"                                                              /* 1 */
             "  tasks:\n"                                                               /* 2 */
             "    - name: A\n"                                                          /* 3 */
             "      plugin: x\n"                                                        /* 4 */
             "      inputs: TRUE\n"                                                     /* 5 */
             "      outputs: [{a: 1}]\n"                                                /* 6 */
             "      params: [1, 2]\n"                                                   /* 7 */
             "      execution: {timeout: abc, workers: 0, retries: -1, async: maybe}\n" /* 8 */
             "      requires_auth: \"sometimes\"\n"                                     /* 9 */
             "    - name: B\n"                                                          /* 10 */
             "      plugin: x\n"                                                        /* 11 */
             "      execution: {timeout: -1, workers: 2.5}\n"                           /* 12 */
             "    - name: C\n"                                                          /* 13 */
             "      plugin: [x]\n"                                                      /* 14 */
             "      execution: 5\n"                                                     /* 15 */
             "      permissions: [a]\n"                                                 /* 16 */
             "    - name: D\n"                                                          /* 17 */
             "      plugin: x\n"                                                        /* 18 */
             "      depends_on: A\n"                                                    /* 19 */
             "      permissions: {required: [[x]]}\n",                                  /* 20 */
             &d);
    CHECK(wf == NULL);
    CHECK_ERROR(d, 5, 15, "'inputs' of task 'A' must be a list of variable names, got \"TRUE\"");
    CHECK_ERROR(d, 6, 17, "each entry of 'outputs' of task 'A' must be a name, got a mapping");
    CHECK_ERROR(d, 7, 15, "'params' of task 'A' must be a mapping, got a list");
    CHECK_ERROR(d, 8, 28, "'timeout' must be a number of seconds ≥ 0, got \"abc\"");
    CHECK_ERROR(d, 8, 42, "'workers' must be an integer ≥ 1, got \"0\"");
    CHECK_ERROR(d, 8, 54, "'retries' must be an integer ≥ 0, got \"-1\"");
    CHECK_ERROR(d, 8, 65, "'async' must be true or false, got \"maybe\"");
    CHECK_ERROR(d, 9, 22, "'requires_auth' must be true or false, got \"sometimes\"");
    CHECK_ERROR(d, 12, 28, "'timeout' must be a number of seconds ≥ 0, got \"-1\" (task 'B')");
    CHECK_ERROR(d, 12, 41, "'workers' must be an integer ≥ 1, got \"2.5\"");
    CHECK_ERROR(d, 14, 15, "'plugin' in task 'C' must be a string, got a list");
    CHECK_ERROR(d, 15, 18, "'execution' of task 'C' must be a mapping, got \"5\"");
    CHECK_ERROR(d, 16, 20, "'permissions' of task 'C' must be a mapping");
    CHECK_ERROR(d, 19, 19, "'depends_on' of task 'D' must be a list of task names, got \"A\"");
    CHECK_ERROR(d, 20, 32, "each entry of 'required' of 'permissions' of task 'D' must be a name");
    wf_diags_free(&d);
}

/* ------------------------------------------------------------------ names */

static void test_bad_names(void)
{
    struct wf_diags d;
    struct wf_load_options o = plain_opts();
    struct wf_setting set[] = {{"BAD-SET", "1"}};
    struct workflow *wf;

    o.settings = set;
    o.n_settings = 1;
    wf =
        load_with("workflow:\n"                      /* 1 */
                  "  env:\n"                         /* 2 */
                  "    BAD-VAR: x\n"                 /* 3 */
                  "    GOOD: y\n"                    /* 4 */
                  "  tasks:\n"                       /* 5 */
                  "    - name: \"\"\n"               /* 6 */
                  "      plugin: x\n"                /* 7 */
                  "    - name: \"has space\"\n"      /* 8 */
                  "      plugin: x\n"                /* 9 */
                  "    - name: A\n"                  /* 10 */
                  "      plugin: x\n"                /* 11 */
                  "      inputs: [GOOD, 9LIVES]\n"   /* 12 */
                  "      outputs: [OUT.X]\n"         /* 13 */
                  "    - name: A\n"                  /* 14 */
                  "      plugin: x\n"                /* 15 */
                  "    - plugin: x\n"                /* 16 */
                  "    - name: B\n"                  /* 17 */
                  "      plugin: \"../../bin/sh\"\n" /* 18 */
                  "    - name: C\n"                  /* 19 */
                  "    - name: a-very-long-name-that-goes-on-and-on-and-on-for-more-than-64-chars\n"
                  "      plugin: x\n", /* 21 */
                  &o, &d);
    CHECK(wf == NULL);
    CHECK_ERROR(d, 3, 5, "'BAD-VAR' in env is not a valid variable name");
    CHECK_ERROR(d, 6, 13, "task #1 has an empty name");
    CHECK_ERROR(d, 8, 13, "task name 'has space' is not valid");
    CHECK_ERROR(d, 12, 22, "'9LIVES' in 'inputs' of task 'A' is not a valid variable name");
    CHECK_ERROR(d, 13, 17, "'OUT.X' in 'outputs' of task 'A' is not a valid variable name");
    CHECK_ERROR(d, 14, 13, "duplicate task name 'A' (first defined at line 10)");
    CHECK_ERROR(d, 16, 7, "task #5 has no 'name'");
    CHECK_ERROR(d, 18, 15, "plugin name '../../bin/sh' of task 'B' is not valid");
    CHECK_ERROR(d, 19, 7, "task 'C' has no 'plugin'");
    CHECK_ERROR(d, 20, 13, "task name 'a-very-long-name");
    CHECK_ERROR(d, 0, 0, "--set BAD-SET: 'BAD-SET' is not a valid variable name");
    wf_diags_free(&d);
}

static void test_unknown_plugin(void)
{
    static const char yaml[] = "workflow:\n"
                               "  tasks:\n"
                               "    - name: A\n"
                               "      plugin: dff\n"
                               "    - name: B\n"
                               "      plugin: df\n";
    struct wf_diags d;
    struct wf_load_options o = plain_opts();
    struct workflow *wf;

    o.lookup = fake_lookup;
    wf = load_with(yaml, &o, &d);
    CHECK(wf == NULL);
    CHECK(d.n_errors == 1);
    CHECK_ERROR(d, 4, 15, "unknown plugin 'dff' in task 'A'");
    wf_diags_free(&d);

    /* Without a lookup every plugin is accepted and no path is filled in. */
    wf = load(yaml, &d);
    CHECK(wf != NULL);
    CHECK(wf && wf->tasks[0].plugin_path == NULL);
    workflow__free(wf);
    wf_diags_free(&d);
}

/* ------------------------------------------------------------------ hostile YAML */

static void test_alias_bomb(void)
{
    static const char yaml[] = "workflow:\n"
                               "  tasks:\n"
                               "    - name: T\n"
                               "      plugin: x\n"
                               "      params:\n"
                               "        a: &a [1,1,1,1,1,1,1,1,1,1]\n"
                               "        b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                               "        c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
                               "        d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                               "        e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
                               "        f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
                               "        g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
                               "        h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
                               "        i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
    struct wf_diags d;
    clock_t start = clock();
    struct workflow *wf = load(yaml, &d);
    double secs = (double)(clock() - start) / CLOCKS_PER_SEC;

    CHECK(wf == NULL);
    CHECK(d.n_errors == 1);
    CHECK(d.n == 1 && strstr(d.items[0].message, "more than 1000000 nodes through aliases"));
    if (d.n != 1)
        dump(&d);
    printf("alias bomb refused in %.3f s\n", secs);
    wf_diags_free(&d);
}

static void test_recursive_alias_and_depth(void)
{
    struct wf_diags d;
    struct workflow *wf;
    char yaml[4096];
    size_t len;

    /* libyaml accepts an alias to the node being defined: a loop. */
    wf = load("workflow:\n"
              "  tasks:\n"
              "    - name: T\n"
              "      plugin: x\n"
              "      params: &p {self: *p}\n",
              &d);
    CHECK(wf == NULL);
    CHECK(d.n_errors == 1);
    CHECK(d.n == 1 &&
          strstr(d.items[0].message, "'params' of task 'T' is nested deeper than 64 levels"));
    wf_diags_free(&d);

    len =
        (size_t)snprintf(yaml, sizeof yaml,
                         "workflow:\n  tasks:\n    - name: T\n      plugin: x\n      params: {a: ");
    /* 90 levels in params: within the document's bound of 100, over params' 64. */
    for (int i = 0; i < 90; i++)
        yaml[len++] = '[';
    for (int i = 0; i < 90; i++)
        yaml[len++] = ']';
    snprintf(yaml + len, sizeof yaml - len, "}\n");
    wf = load(yaml, &d);
    CHECK(wf == NULL);
    CHECK(d.n == 1 && strstr(d.items[0].message, "nested deeper than 64 levels"));
    wf_diags_free(&d);

    /* 60 levels is fine. */
    len =
        (size_t)snprintf(yaml, sizeof yaml,
                         "workflow:\n  tasks:\n    - name: T\n      plugin: x\n      params: {a: ");
    for (int i = 0; i < 60; i++)
        yaml[len++] = '[';
    for (int i = 0; i < 60; i++)
        yaml[len++] = ']';
    snprintf(yaml + len, sizeof yaml - len, "}\n");
    wf = load(yaml, &d);
    CHECK(wf != NULL);
    workflow__free(wf);
    wf_diags_free(&d);
}

static void test_duplicate_keys(void)
{
    struct wf_diags d;
    struct workflow *wf = load("workflow:\n"                  /* 1 */
                               "  env:\n"                     /* 2 */
                               "    A: \"1\"\n"               /* 3 */
                               "    A: \"2\"\n"               /* 4 */
                               "  tasks:\n"                   /* 5 */
                               "    - name: T\n"              /* 6 */
                               "      plugin: x\n"            /* 7 */
                               "      inputs: [A, A]\n"       /* 8 */
                               "      plugin: y\n"            /* 9 */
                               "      params: {k: 1, k: 2}\n" /* 10 */
                               "  tasks: []\n",               /* 11 */
                               &d);
    CHECK(wf == NULL);
    CHECK_ERROR(d, 4, 5, "duplicate key 'A' in env (first at line 3)");
    CHECK_ERROR(d, 8, 19, "'A' is listed twice in 'inputs' of task 'T'");
    CHECK_ERROR(d, 9, 7, "duplicate key 'plugin' in task 'T' (first at line 7)");
    CHECK_ERROR(d, 10, 22, "duplicate key 'k' in 'params' of task 'T'");
    CHECK_ERROR(d, 11, 3, "duplicate key 'tasks' in workflow (first at line 5)");
    wf_diags_free(&d);
}

/* ------------------------------------------------------------------ reporting */

static void test_all_errors_sorted(void)
{
    struct wf_diags d;
    struct workflow *wf = load("workflow:\n"                     /* 1 */
                               "  tasks:\n"                      /* 2 */
                               "    - name: A\n"                 /* 3 */
                               "      plugin: x\n"               /* 4 */
                               "      inputs: [NOPE]\n"          /* 5 */
                               "    - name: B\n"                 /* 6 */
                               "      plugin: x\n"               /* 7 */
                               "      execution: {timeout: x}\n" /* 8 */
                               "  nam: y\n",                     /* 9 */
                               &d);
    CHECK(wf == NULL);
    CHECK(d.n_errors == 3);
    CHECK(d.n == 3);
    for (size_t i = 1; i < d.n; i++)
        CHECK(d.items[i - 1].pos.line < d.items[i].pos.line);
    CHECK_ERROR(d, 5, 16, "input 'NOPE'");
    CHECK_ERROR(d, 8, 28, "'timeout'");
    CHECK_ERROR(d, 9, 3, "unknown key 'nam' in workflow; did you mean 'name'?");
    wf_diags_free(&d);
}

static void test_print_format(void)
{
    struct wf_diags d;
    struct workflow *wf = load("workflow:\n"
                               "  tasks:\n"
                               "    - name: A\n"
                               "      plugin: x\n"
                               "      outputs: [UNUSED]\n"
                               "      execution: {retries: x}\n",
                               &d);
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);

    CHECK(wf == NULL);
    wf_diags_print(&d, "flows/a.yaml", out);
    fclose(out);
    CHECK_STR(text, "flows/a.yaml:5:17: warning: output 'UNUSED' of task 'A' is never used: no "
                    "task lists it in its inputs\n"
                    "flows/a.yaml:6:28: error: 'retries' must be an integer ≥ 0, got \"x\" "
                    "(task 'A')\n");
    free(text);
    wf_diags_free(&d);
}

static void test_file_errors(void)
{
    struct wf_diags d = {0};
    struct wf_load_options o = plain_opts();
    struct workflow *wf = workflow__load(FIXTURES_DIR "/does-not-exist.yaml", &o, &d);
    char *text = NULL;
    size_t size = 0;
    FILE *out;

    CHECK(wf == NULL);
    CHECK(d.n == 1 && d.n_errors == 1);
    /* At 1:1, as every error about the file itself, so that it reads FILE:LINE:COL. */
    CHECK_ERROR(d, 1, 1, "cannot read the workflow file: No such file or directory");
    out = open_memstream(&text, &size);
    wf_diags_print(&d, "does-not-exist.yaml", out);
    fclose(out);
    CHECK_STR(text, "does-not-exist.yaml:1:1: error: cannot read the workflow file: No such file "
                    "or directory\n");
    free(text);
    wf_diags_free(&d);

    wf = workflow__load(FIXTURES_DIR "/many-errors.yaml", &o, &d);
    CHECK(wf == NULL);
    CHECK(d.n_errors == 4);
    CHECK_ERROR(d, 5, 7, "unknown key 'inptus' in task 'DF'; did you mean 'inputs'?");
    CHECK_ERROR(d, 7, 28, "'timeout' must be a number of seconds ≥ 0, got \"soon\"");
    CHECK_ERROR(d, 8, 13, "duplicate task name 'DF' (first defined at line 3)");
    CHECK_ERROR(d, 10, 16, "input 'NEVER' of task 'DF' is never set");
    wf_diags_free(&d);

    wf = workflow__load(FIXTURES_DIR "/syntax-error.yaml", &o, &d);
    CHECK(wf == NULL);
    CHECK(d.n == 1 && strstr(d.items[0].message, "YAML syntax error"));
    CHECK(d.n == 1 && d.items[0].pos.line == 5);
    wf_diags_free(&d);
}

int main(void)
{
    RUN(test_yaml_syntax_error);
    RUN(test_bad_bytes_have_positions);
    RUN(test_huge_names_are_clipped);
    RUN(test_top_level_shape);
    RUN(test_unknown_keys);
    RUN(test_wrong_types);
    RUN(test_bad_names);
    RUN(test_unknown_plugin);
    RUN(test_alias_bomb);
    RUN(test_recursive_alias_and_depth);
    RUN(test_duplicate_keys);
    RUN(test_all_errors_sorted);
    RUN(test_print_format);
    RUN(test_file_errors);
    return check_summary();
}
