/*
 * test_workflow.c - unit tests of the workflow loader (core/model/: load*.c, checks.c, diag.c).
 *
 * Each error and warning the loader knows is provoked here from a small YAML
 * text, and the test asserts its exact line and column and the key words of
 * its message, and that the load fails on errors and succeeds on warnings.
 * The YAML texts are written line by line so that positions can be counted.
 */
#include "check.h"
#include "graph.h"
#include "workflow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef FIXTURES_DIR
#define FIXTURES_DIR "workflows"
#endif

/* The environment the loader sees for {{ENV:X}}: only these two are set. */
static const char *fake_getenv(void *ctx, const char *name)
{
    (void)ctx;
    if (!strcmp(name, "AUTH_TOKEN"))
        return "s3cret";
    if (!strcmp(name, "USER_NAME"))
        return "ada";
    return NULL;
}

/* A plugin registry holding the five built-in plugins. */
static char *fake_lookup(void *ctx, const char *plugin)
{
    static const char *const known[] = {"start", "end", "df", "touched", "cmd"};
    char path[128];

    (void)ctx;
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (!strcmp(plugin, known[i])) {
            snprintf(path, sizeof path, "/fake/flowbus-%s", plugin);
            return strdup(path);
        }
    return NULL;
}

static struct wf_load_options plain_opts(void)
{
    struct wf_load_options o = {0};
    o.getenv_fn = fake_getenv;
    return o;
}

static struct workflow *load_with(const char *yaml, const struct wf_load_options *o,
                                  struct wf_diags *d)
{
    memset(d, 0, sizeof *d);
    return workflow__load_buffer("t.yaml", yaml, strlen(yaml), o, d);
}

static struct workflow *load(const char *yaml, struct wf_diags *d)
{
    struct wf_load_options o = plain_opts();
    return load_with(yaml, &o, d);
}

static void dump(const struct wf_diags *d)
{
    fprintf(stderr, "  diagnostics (%zu, %zu errors):\n", d->n, d->n_errors);
    for (size_t i = 0; i < d->n; i++)
        fprintf(stderr, "    %d:%d: %s: %s\n", d->items[i].pos.line, d->items[i].pos.col,
                d->items[i].severity == WF_ERROR ? "error" : "warning", d->items[i].message);
}

/* 1 if d holds a diagnostic of this severity at line:col whose message contains text. */
static int has(const struct wf_diags *d, enum wf_severity sev, int line, int col, const char *text)
{
    for (size_t i = 0; i < d->n; i++) {
        const struct wf_diag *x = &d->items[i];
        if (x->severity == sev && x->pos.line == line && x->pos.col == col &&
            strstr(x->message, text))
            return 1;
    }
    fprintf(stderr, "  missing %s at %d:%d containing \"%s\"\n",
            sev == WF_ERROR ? "error" : "warning", line, col, text);
    dump(d);
    return 0;
}

#define CHECK_ERROR(d, line, col, text) CHECK(has(&(d), WF_ERROR, line, col, text))
#define CHECK_WARNING(d, line, col, text) CHECK(has(&(d), WF_WARNING, line, col, text))

/* ------------------------------------------------------------------ the seed */

static const char SEED[] =
    "workflow:\n"                                                            /* 1 */
    "  name: \"Disk Monitoring Workflow\"\n"                                 /* 2 */
    "  env:\n"                                                               /* 3 */
    "    TIMEOUT: \"10\"\n"                                                  /* 4 */
    "    AUTH_TOKEN: \"{{ENV:AUTH_TOKEN}}\"\n"                               /* 5 */
    "    GREETING: \"hello {{ENV:USER_NAME}}!\"\n"                           /* 6 */
    "    API_KEY: {value: \"k-{{ENV:USER_NAME}}\", secret: true}\n"          /* 7 */
    "    RATE: 2.5\n"                                                        /* 8 */
    "  tasks:\n"                                                             /* 9 */
    "    - name: \"START\"\n"                                                /* 10 */
    "      plugin: \"start\"\n"                                              /* 11 */
    "      outputs: [\"TRUE\"]\n"                                            /* 12 */
    "    - name: \"DF\"\n"                                                   /* 13 */
    "      plugin: \"df\"\n"                                                 /* 14 */
    "      inputs: [\"TRUE\"]\n"                                             /* 15 */
    "      outputs: [\"MAIN_VOLUME\", \"FREE_SPACE\"]\n"                     /* 16 */
    "      params: {path: \"/\"}\n"                                          /* 17 */
    "      depends_on: [\"START\"]\n"                                        /* 18 */
    "      execution: {timeout: 30, depends_on: [\"START\", \"TOUCHED\"]}\n" /* 19 */
    "      permissions: {required: [\"can_view_system\"]}\n"                 /* 20 */
    "    - name: TOUCHED\n"                                                  /* 21 */
    "      plugin: touched\n"                                                /* 22 */
    "      inputs: [TRUE, TIMEOUT]\n"                                        /* 23 */
    "      params: {file: semaphore.txt}\n"                                  /* 24 */
    "    - name: CMD\n"                                                      /* 25 */
    "      plugin: cmd\n"                                                    /* 26 */
    "      inputs: [FREE_SPACE, MAIN_VOLUME, AUTH_TOKEN, API_KEY, GREETING, RATE]\n"
    "      params: {command: \"echo \\\"$FREE_SPACE\\\" > report.txt\"}\n"    /* 28 */
    "      execution: {timeout: 2.5, async: false, workers: 1, retries: 0}\n" /* 29 */
    "      requires_auth: true\n";                                            /* 30 */

static const struct wf_var *var(const struct workflow *wf, const char *name)
{
    for (size_t i = 0; i < wf->n_vars; i++)
        if (!strcmp(wf->vars[i].name, name))
            return &wf->vars[i];
    return NULL;
}

static void test_seed_loads(void)
{
    struct wf_diags d;
    struct wf_load_options o = plain_opts();
    struct workflow *wf;
    const struct wf_task *df, *cmd;
    json_t *expected, *js;

    o.lookup = fake_lookup;
    wf = load_with(SEED, &o, &d);
    CHECK(wf != NULL);
    CHECK(d.n == 0);
    if (d.n)
        dump(&d);
    if (!wf)
        goto out;
    CHECK_STR(wf->name, "Disk Monitoring Workflow");
    CHECK_STR(wf->file, "t.yaml");
    CHECK(wf->n_vars == 5);
    CHECK(wf->n_tasks == 4);
    CHECK_STR(var(wf, "TIMEOUT")->value, "10");
    CHECK(!var(wf, "TIMEOUT")->secret);
    CHECK(var(wf, "TIMEOUT")->pos.line == 4 && var(wf, "TIMEOUT")->pos.col == 5);
    CHECK_STR(var(wf, "AUTH_TOKEN")->value, "s3cret");
    CHECK(var(wf, "AUTH_TOKEN")->secret);
    CHECK_STR(var(wf, "GREETING")->value, "hello ada!");
    CHECK(!var(wf, "GREETING")->secret);
    CHECK_STR(var(wf, "API_KEY")->value, "k-ada");
    CHECK(var(wf, "API_KEY")->secret);
    CHECK_STR(var(wf, "RATE")->value, "2.5");

    df = &wf->tasks[1];
    CHECK_STR(df->name, "DF");
    CHECK(df->pos.line == 13 && df->pos.col == 7);
    CHECK(df->name_pos.line == 13 && df->name_pos.col == 13);
    CHECK_STR(df->plugin, "df");
    CHECK_STR(df->plugin_path, "/fake/flowbus-df");
    CHECK(df->plugin_pos.line == 14 && df->plugin_pos.col == 15);
    CHECK(df->timeout == 30.0);
    CHECK(df->workers == 1 && df->retries == 0 && !df->async && !df->requires_auth);
    CHECK(df->inputs.n == 1 && !strcmp(df->inputs.items[0].name, "TRUE"));
    CHECK(df->inputs.items[0].pos.line == 15 && df->inputs.items[0].pos.col == 16);
    CHECK(df->outputs.n == 2 && !strcmp(df->outputs.items[1].name, "FREE_SPACE"));
    /* depends_on from the task and from execution merge, without repeats. */
    CHECK(df->depends_on.n == 2);
    CHECK(df->depends_on.n == 2 && !strcmp(df->depends_on.items[0].name, "START") &&
          !strcmp(df->depends_on.items[1].name, "TOUCHED"));
    CHECK(df->permissions.n == 1 && !strcmp(df->permissions.items[0].name, "can_view_system"));
    expected = json_loads("{\"path\": \"/\"}", 0, NULL);
    CHECK(json_equal(df->params, expected));
    json_decref(expected);

    cmd = &wf->tasks[3];
    CHECK(cmd->timeout == 2.5);
    CHECK(cmd->requires_auth == 1);
    CHECK_STR(json_string_value(json_object_get(cmd->params, "command")),
              "echo \"$FREE_SPACE\" > report.txt");
    CHECK(json_is_object(wf->tasks[0].params) && json_object_size(wf->tasks[0].params) == 0);

    CHECK(workflow__find_task(wf, "CMD") == 3);
    CHECK(workflow__find_task(wf, "START") == 0);
    CHECK(workflow__find_task(wf, "NOPE") == -1);

    js = workflow__to_json(wf);
    CHECK(js != NULL);
    CHECK_STR(json_string_value(json_object_get(js, "name")), "Disk Monitoring Workflow");
    CHECK_STR(json_string_value(json_object_get(js, "file")), "t.yaml");
    CHECK_STR(json_string_value(json_object_get(json_object_get(js, "env"), "AUTH_TOKEN")),
              "<secret>");
    CHECK_STR(json_string_value(json_object_get(json_object_get(js, "env"), "API_KEY")),
              "<secret>");
    CHECK_STR(json_string_value(json_object_get(json_object_get(js, "env"), "TIMEOUT")), "10");
    {
        json_t *t1 = json_array_get(json_object_get(js, "tasks"), 1);
        json_t *ex = json_object_get(t1, "execution");
        CHECK_STR(json_string_value(json_object_get(t1, "name")), "DF");
        CHECK_STR(json_string_value(json_object_get(t1, "plugin")), "df");
        CHECK(json_number_value(json_object_get(ex, "timeout")) == 30.0);
        CHECK(json_integer_value(json_object_get(ex, "workers")) == 1);
        CHECK(json_integer_value(json_object_get(ex, "retries")) == 0);
        CHECK(json_is_false(json_object_get(ex, "async")));
        CHECK(json_array_size(json_object_get(t1, "depends_on")) == 2);
        CHECK(json_array_size(json_object_get(t1, "inputs")) == 1);
        CHECK(json_array_size(json_object_get(t1, "outputs")) == 2);
        CHECK_STR(json_string_value(json_array_get(json_object_get(t1, "permissions"), 0)),
                  "can_view_system");
        CHECK_STR(json_string_value(json_object_get(json_object_get(t1, "params"), "path")), "/");
        CHECK(json_is_false(json_object_get(t1, "requires_auth")));
    }
    {
        /* The secret value must appear nowhere in the published JSON. */
        char *text = json_dumps(js, JSON_COMPACT);
        CHECK(text && !strstr(text, "s3cret") && !strstr(text, "k-ada"));
        free(text);
    }
    json_decref(js);
out:
    workflow__free(wf);
    wf_diags_free(&d);
}

static void test_seed_file_loads(void)
{
    struct wf_diags d = {0};
    struct wf_load_options o = plain_opts();
    struct workflow *wf;

    o.lookup = fake_lookup;
    wf = workflow__load(FIXTURES_DIR "/disk-monitor.yaml", &o, &d);
    CHECK(wf != NULL);
    CHECK(d.n_errors == 0);
    if (d.n_errors)
        dump(&d);
    if (wf) {
        CHECK_STR(wf->name, "Disk Monitoring Workflow");
        CHECK(wf->n_tasks == 5);
        CHECK(workflow__find_task(wf, "TOUCHED") >= 0);
        CHECK(wf->tasks[workflow__find_task(wf, "DF")].timeout == 30.0);
    }
    workflow__free(wf);
    wf_diags_free(&d);
}

static void test_params_to_json(void)
{
    static const char yaml[] = "workflow:\n"
                               "  tasks:\n"
                               "    - name: T\n"
                               "      plugin: x\n"
                               "      params:\n"
                               "        i: 42\n"
                               "        neg: -7\n"
                               "        f: 1.5\n"
                               "        e: 1e3\n"
                               "        hex: 0x10\n"
                               "        t: true\n"
                               "        f2: False\n"
                               "        quoted_true: \"true\"\n"
                               "        quoted_num: '42'\n"
                               "        nothing: null\n"
                               "        tilde: ~\n"
                               "        empty:\n"
                               "        ver: 1.2.3\n"
                               "        word: hello\n"
                               "        yes_word: yes\n"
                               "        list: [1, \"two\", three, [4]]\n"
                               "        map: {a: {b: [true]}}\n"
                               "        block:\n"
                               "          - x: 1\n"
                               "          - y\n";
    static const char expected_json[] =
        "{\"i\": 42, \"neg\": -7, \"f\": 1.5, \"e\": 1000.0, \"hex\": 16, \"t\": true,"
        " \"f2\": false, \"quoted_true\": \"true\", \"quoted_num\": \"42\", \"nothing\": null,"
        " \"tilde\": null, \"empty\": null, \"ver\": \"1.2.3\", \"word\": \"hello\","
        " \"yes_word\": \"yes\", \"list\": [1, \"two\", \"three\", [4]],"
        " \"map\": {\"a\": {\"b\": [true]}}, \"block\": [{\"x\": 1}, \"y\"]}";
    struct wf_diags d;
    struct workflow *wf = load(yaml, &d);
    json_t *expected = json_loads(expected_json, 0, NULL);

    CHECK(expected != NULL);
    CHECK(wf != NULL);
    if (wf) {
        CHECK(json_equal(wf->tasks[0].params, expected));
        if (!json_equal(wf->tasks[0].params, expected)) {
            char *got = json_dumps(wf->tasks[0].params, JSON_COMPACT);
            fprintf(stderr, "  got %s\n", got);
            free(got);
        }
    }
    json_decref(expected);
    workflow__free(wf);
    wf_diags_free(&d);
}

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

static void test_fractional_and_large_timeout(void)
{
    struct wf_diags d;
    struct workflow *wf = load("workflow:\n"
                               "  tasks:\n"
                               "    - name: A\n"
                               "      plugin: x\n"
                               "      execution: {timeout: \"0.25\"}\n",
                               &d);
    CHECK(wf && wf->tasks[0].timeout == 0.25);
    workflow__free(wf);
    wf_diags_free(&d);

    wf = load("workflow:\n"
              "  tasks:\n"
              "    - name: A\n"
              "      plugin: x\n"
              "      execution: {timeout: 1e300}\n",
              &d);
    CHECK(wf == NULL);
    CHECK_ERROR(d, 5, 28, "'timeout' must be at most");
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

static void test_valid_name_rules(void)
{
    CHECK(workflow__valid_var_name("A"));
    CHECK(workflow__valid_var_name("_x9"));
    CHECK(!workflow__valid_var_name(""));
    CHECK(!workflow__valid_var_name("9A"));
    CHECK(!workflow__valid_var_name("A-B"));
    CHECK(!workflow__valid_var_name("A/B"));
    CHECK(!workflow__valid_var_name("A+"));
    CHECK(!workflow__valid_var_name(NULL));
    {
        char name[70];
        memset(name, 'A', 64);
        name[64] = 0;
        CHECK(workflow__valid_var_name(name));
        CHECK(workflow__valid_task_name(name));
        name[64] = 'A';
        name[65] = 0;
        CHECK(!workflow__valid_var_name(name));
        CHECK(!workflow__valid_task_name(name));
    }
    CHECK(workflow__valid_task_name("DF"));
    CHECK(workflow__valid_task_name("9-step_two_b"));
    CHECK(!workflow__valid_task_name("step.two"));
    CHECK(workflow__valid_task_name("_x"));
    CHECK(!workflow__valid_task_name("-x"));
    CHECK(!workflow__valid_task_name(".x"));
    CHECK(!workflow__valid_task_name("a b"));
    CHECK(!workflow__valid_task_name("a/b"));
    CHECK(!workflow__valid_task_name("a+b"));
    CHECK(!workflow__valid_task_name(""));
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

/* ------------------------------------------------------------------ env */

static void test_env_references(void)
{
    struct wf_diags d;
    struct workflow *wf = load("workflow:\n"                          /* 1 */
                               "  env:\n"                             /* 2 */
                               "    A: \"x{{ENV:MISSING}}y\"\n"       /* 3 */
                               "    B: \"{{ENV:AUTH_TOKEN\"\n"        /* 4 */
                               "    C: {{ENV:AUTH_TOKEN}}\n"          /* 5 */
                               "    D: \"{{ENV:}}\"\n"                /* 6 */
                               "    E: plain {{ENV:MISSING}}\n"       /* 7 */
                               "    F: \"{{ENV:AUTH_TOKEN}}\"\n"      /* 8 */
                               "    G: \"{{ENV:bad-name}}\"\n"        /* 9 */
                               "    H:\n"                             /* 10 */
                               "    I: [a]\n"                         /* 11 */
                               "    J: {secret: true}\n"              /* 12 */
                               "    K: {value: x, secret: perhaps}\n" /* 13 */
                               "  tasks:\n"                           /* 14 */
                               "    - name: T\n"                      /* 15 */
                               "      plugin: x\n"                    /* 16 */
                               "      inputs: [F]\n",                 /* 17 */
                               &d);
    CHECK(wf == NULL);
    CHECK_ERROR(d, 3, 10,
                "environment variable 'MISSING' is not set (env 'A' uses "
                "{{ENV:MISSING}})");
    CHECK_ERROR(d, 4, 9, "malformed environment reference in env 'B'");
    CHECK_ERROR(d, 5, 8, "put quotes around a value that uses {{ENV:...}}");
    CHECK_ERROR(d, 6, 9, "malformed environment reference in env 'D'");
    CHECK_ERROR(d, 7, 14, "environment variable 'MISSING' is not set");
    CHECK_ERROR(d, 9, 9, "malformed environment reference in env 'G'");
    CHECK_ERROR(d, 10, 7, "env 'H' must be a string, number or boolean");
    CHECK_ERROR(d, 11, 8, "env 'I' must be a string, number or boolean");
    CHECK_ERROR(d, 12, 8, "env 'J' has no 'value'");
    CHECK_ERROR(d, 13, 27, "'secret' in env 'K' must be true or false");
    CHECK(d.n_errors == 10);
    wf_diags_free(&d);
}

static void test_set_overrides_env(void)
{
    struct wf_diags d;
    struct wf_load_options o = plain_opts();
    struct wf_setting set[] = {{"TIMEOUT", "20"}, {"NEW", "x"}, {"AUTH_TOKEN", "t"}};
    struct workflow *wf;

    o.settings = set;
    o.n_settings = 3;
    wf = load_with("workflow:\n"
                   "  env: {TIMEOUT: \"10\", KEEP: \"k\"}\n"
                   "  tasks:\n"
                   "    - name: T\n"
                   "      plugin: x\n"
                   "      inputs: [TIMEOUT, NEW, KEEP, AUTH_TOKEN]\n",
                   &o, &d);
    CHECK(wf != NULL);
    CHECK(d.n == 0);
    if (wf) {
        CHECK(wf->n_vars == 4);
        CHECK_STR(var(wf, "TIMEOUT")->value, "20");
        CHECK(var(wf, "TIMEOUT")->from_set);
        CHECK_STR(var(wf, "KEEP")->value, "k");
        CHECK(!var(wf, "KEEP")->from_set);
        CHECK_STR(var(wf, "NEW")->value, "x");
        CHECK(var(wf, "NEW")->from_set);
        CHECK(var(wf, "AUTH_TOKEN")->secret);
    }
    workflow__free(wf);
    wf_diags_free(&d);
}

static void test_default_name_and_version(void)
{
    static const char yaml[] = "workflow:\n"
                               "  version: 2\n"
                               "  description: Checks things\n"
                               "  tasks:\n"
                               "    - {name: A, plugin: x, description: \"the only one\"}\n";
    struct wf_diags d = {0};
    struct workflow *wf = workflow__load_buffer("flows/my-flow.yaml", yaml, strlen(yaml), NULL, &d);
    json_t *js;

    CHECK(wf != NULL);
    if (!wf)
        return;
    CHECK_STR(wf->name, "my-flow");
    CHECK_STR(wf->version, "2");
    CHECK_STR(wf->description, "Checks things");
    CHECK_STR(wf->tasks[0].description, "the only one");
    js = workflow__to_json(wf);
    CHECK_STR(json_string_value(json_object_get(js, "name")), "my-flow");
    CHECK_STR(json_string_value(json_object_get(js, "version")), "2");
    CHECK(json_object_size(json_object_get(js, "env")) == 0);
    json_decref(js);
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
    for (int i = 0; i < 100; i++)
        yaml[len++] = '[';
    for (int i = 0; i < 100; i++)
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
    CHECK(d.n == 3);
    CHECK_WARNING(d, 5, 23,
                  "output 'SPARE' of task 'START' is never used: no task lists it in "
                  "its inputs");
    CHECK_WARNING(d, 10, 18,
                  "the command of task 'CMD' uses $TRUE inside single quotes, where "
                  "the shell does not expand it");
    for (size_t i = 0; i < d.n; i++)
        CHECK(!strstr(d.items[i].message, "task 'OK'"));
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
    CHECK_ERROR(d, 0, 0, "cannot read the workflow file: No such file or directory");
    out = open_memstream(&text, &size);
    wf_diags_print(&d, "does-not-exist.yaml", out);
    fclose(out);
    CHECK_STR(text, "does-not-exist.yaml: error: cannot read the workflow file: No such file or "
                    "directory\n");
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
    RUN(test_seed_loads);
    RUN(test_seed_file_loads);
    RUN(test_params_to_json);
    RUN(test_yaml_syntax_error);
    RUN(test_bad_bytes_have_positions);
    RUN(test_huge_names_are_clipped);
    RUN(test_top_level_shape);
    RUN(test_unknown_keys);
    RUN(test_wrong_types);
    RUN(test_fractional_and_large_timeout);
    RUN(test_bad_names);
    RUN(test_valid_name_rules);
    RUN(test_unknown_plugin);
    RUN(test_input_never_set);
    RUN(test_cycle_through_variables);
    RUN(test_cycle_through_depends_on);
    RUN(test_depends_on_errors);
    RUN(test_env_references);
    RUN(test_set_overrides_env);
    RUN(test_default_name_and_version);
    RUN(test_alias_bomb);
    RUN(test_recursive_alias_and_depth);
    RUN(test_duplicate_keys);
    RUN(test_warnings);
    RUN(test_cmd_params);
    RUN(test_all_errors_sorted);
    RUN(test_print_format);
    RUN(test_file_errors);
    RUN(test_ten_thousand_tasks);
    return check_summary();
}
