/*
 * test_workflow_load.c - unit tests of loading a workflow into its model
 * (core/model/: load.c, load_fields.c, load_env.c, load_tasks.c, workflow.c,
 * json.c): the seed workflow read field by field from a string and from a
 * file, params converted to JSON the way YAML's core schema reads scalars,
 * durations, the rules for variable and task names, env: with its {{ENV:X}}
 * references and secrets, --set overriding env:, the name taken from the file
 * when the workflow has none, and the model as JSON with secrets hidden.
 * The YAML texts are written line by line so that positions can be counted.
 */
#include "workflow_fixture.h"

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

/* ------------------------------------------------------------------ fields */

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
    /* AUTH_TOKEN is a reserved name: --set changes it because env: declares it. */
    wf = load_with("workflow:\n"
                   "  env: {TIMEOUT: \"10\", KEEP: \"k\", AUTH_TOKEN: \"{{ENV:AUTH_TOKEN}}\"}\n"
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
        CHECK_STR(var(wf, "AUTH_TOKEN")->value, "t");
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

int main(void)
{
    RUN(test_seed_loads);
    RUN(test_seed_file_loads);
    RUN(test_params_to_json);
    RUN(test_fractional_and_large_timeout);
    RUN(test_valid_name_rules);
    RUN(test_env_references);
    RUN(test_set_overrides_env);
    RUN(test_default_name_and_version);
    return check_summary();
}
