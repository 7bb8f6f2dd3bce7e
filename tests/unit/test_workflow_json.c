/*
 * test_workflow_json.c - unit tests of the workflow's JSON (core/model/json.c,
 * workflow__to_json and workflow__to_json_text).
 *
 * workflow__to_json shares equal values between tasks, and
 * workflow__to_json_text writes the text one task at a time; neither may
 * change a byte of what is published. The fixture workflows/rich.json holds
 * the text the unshared tree gave for workflows/rich.yaml; the streamed text
 * is compared with json_dumps of the tree, for that file and for a generated
 * 1,000-task graph.
 */
#include "check.h"
#include "workflow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FIXTURES_DIR
#define FIXTURES_DIR "workflows"
#endif

static const char *fixed_env(void *ctx, const char *name)
{
    (void)ctx;
    return strcmp(name, "AUTH_TOKEN") == 0 ? "s3cret-token" : NULL;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0, got;

    if (!f)
        return NULL;
    do {
        if (len + 4096 > cap) {
            char *bigger = realloc(buf, cap = (len + 4096) * 2);
            if (!bigger)
                break;
            buf = bigger;
        }
        got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        buf[len] = '\0';
    } while (got > 0);
    fclose(f);
    return buf;
}

static struct workflow *load(const char *file, const char *yaml, struct wf_diags *d)
{
    static const struct wf_setting settings[] = {{"SET_BY_CLI", "1"}};
    struct wf_load_options o = {0};

    o.getenv_fn = fixed_env;
    o.settings = settings;
    o.n_settings = 1;
    memset(d, 0, sizeof *d);
    return workflow__load_buffer(file, yaml, strlen(yaml), &o, d);
}

/* workflow__to_json_text(wf, extra) must equal json_dumps of the tree with extra set on it. */
static void check_text(const struct workflow *wf, json_t *extra)
{
    json_t *tree = workflow__to_json(wf);
    char *want, *got = workflow__to_json_text(wf, extra);

    if (extra)
        json_object_update(tree, extra);
    want = json_dumps(tree, JSON_COMPACT);
    CHECK(want != NULL && got != NULL);
    CHECK(want && got && strcmp(want, got) == 0);
    if (want && got && strcmp(want, got) != 0)
        fprintf(stderr, "want %.300s\n got %.300s\n", want, got);
    free(want);
    free(got);
    json_decref(tree);
}

static void test_tree_text_unchanged(void)
{
    char *yaml = read_file(FIXTURES_DIR "/rich.yaml");
    char *expected = read_file(FIXTURES_DIR "/rich.json");
    struct wf_diags d;
    struct workflow *wf = yaml ? load("rich.yaml", yaml, &d) : NULL;
    json_t *tree = wf ? workflow__to_json(wf) : NULL;
    char *text = tree ? json_dumps(tree, JSON_COMPACT) : NULL;

    CHECK(yaml != NULL && expected != NULL);
    CHECK(wf != NULL);
    if (expected)
        expected[strcspn(expected, "\n")] = '\0';
    CHECK_STR(text, expected);
    /* The root is the caller's: what is added to it shows in no later tree. */
    if (tree) {
        json_object_set_new(tree, "run_id", json_string("r1"));
        json_decref(tree);
        tree = workflow__to_json(wf);
        free(text);
        text = json_dumps(tree, JSON_COMPACT);
        CHECK_STR(text, expected);
    }
    free(text);
    json_decref(tree);
    workflow__free(wf);
    if (yaml)
        wf_diags_free(&d);
    free(yaml);
    free(expected);
}

static void test_text_equals_dump(void)
{
    char *yaml = read_file(FIXTURES_DIR "/rich.yaml");
    struct wf_diags d;
    struct workflow *wf = yaml ? load("rich.yaml", yaml, &d) : NULL;
    json_t *extra = json_pack("{s:s, s:s, s:s, s:f}", "run_id", "20250101-000000-abcdef", "path",
                              "/abs/rich.yaml", "cwd", "/abs", "started", 1700000000.25);
    json_t *replacing = json_pack("{s:s, s:[]}", "name", "renamed", "tasks");

    CHECK(wf != NULL);
    if (wf) {
        check_text(wf, NULL);
        check_text(wf, extra);
        /* Keys of the workflow given again keep their place, as json_object_update does. */
        check_text(wf, replacing);
    }
    json_decref(extra);
    json_decref(replacing);
    workflow__free(wf);
    if (yaml)
        wf_diags_free(&d);
    free(yaml);
}

/* A DAG of n tasks: each depends on the one before it and, often, on a random earlier one. */
static char *dag_yaml(size_t n)
{
    size_t cap = 160 * n + 64, len = 0;
    char *yaml = malloc(cap);
    unsigned seed = 1000;

    if (!yaml)
        return NULL;
    len += (size_t)snprintf(yaml + len, cap - len, "workflow:\n  name: \"dag\"\n  tasks:\n");
    for (size_t i = 0; i < n; i++) {
        len += (size_t)snprintf(yaml + len, cap - len,
                                "    - name: \"N%zu\"\n      plugin: \"cmd\"\n"
                                "      params: {argv: [\"/bin/true\"]}\n",
                                i);
        seed = seed * 1103515245u + 12345u;
        if (i >= 2 && (seed >> 16) % 3 != 0)
            len += (size_t)snprintf(yaml + len, cap - len,
                                    "      depends_on: [\"N%zu\", \"N%zu\"]\n", i - 1,
                                    (size_t)(seed >> 8) % (i - 1));
        else if (i >= 1)
            len += (size_t)snprintf(yaml + len, cap - len, "      depends_on: [\"N%zu\"]\n", i - 1);
    }
    return yaml;
}

static void test_large_graph(void)
{
    char *yaml = dag_yaml(1000);
    struct wf_diags d;
    struct workflow *wf = yaml ? load("dag.yaml", yaml, &d) : NULL;
    json_t *extra = json_pack("{s:s}", "run_id", "r");

    CHECK(wf != NULL);
    if (wf) {
        json_t *tree = workflow__to_json(wf);
        json_t *last = json_array_get(json_object_get(tree, "tasks"), 999);
        CHECK_STR(json_string_value(json_object_get(last, "name")), "N999");
        CHECK(json_array_size(json_object_get(last, "depends_on")) >= 1);
        json_decref(tree);
        check_text(wf, extra);
    }
    json_decref(extra);
    workflow__free(wf);
    if (yaml)
        wf_diags_free(&d);
    free(yaml);
}

/* A workflow built by hand, without the loader's index or params, has JSON too. */
static void test_hand_built(void)
{
    struct wf_task tasks[2];
    struct wf_name dep = {"A", {0, 0}};
    struct workflow wf;
    json_t *tree;
    char *text;

    memset(tasks, 0, sizeof tasks);
    memset(&wf, 0, sizeof wf);
    tasks[0].name = "A";
    tasks[0].plugin = "start";
    tasks[0].workers = 1;
    tasks[1].name = "B";
    tasks[1].plugin = "end";
    tasks[1].workers = 1;
    tasks[1].timeout = 2;
    tasks[1].depends_on.items = &dep;
    tasks[1].depends_on.n = 1;
    wf.name = "hand";
    wf.tasks = tasks;
    wf.n_tasks = 2;
    tree = workflow__to_json(&wf);
    text = json_dumps(tree, JSON_COMPACT);
    CHECK_STR(text,
              "{\"name\":\"hand\",\"file\":\"\",\"mode\":\"oneshot\",\"env\":{},\"tasks\":["
              "{\"name\":\"A\",\"plugin\":\"start\",\"inputs\":[],\"outputs\":[],"
              "\"depends_on\":[],\"params\":{},\"execution\":{\"timeout\":0.0,\"async\":false,"
              "\"workers\":1,\"retries\":0,\"retry_delay\":0.0,\"retry_max_delay\":0.0,"
              "\"queue\":0,\"restart\":\"on-failure\",\"overflow\":\"block\",\"trigger\":[]},\"permissions\":[],"
              "\"requires_auth\":false},"
              "{\"name\":\"B\",\"plugin\":\"end\",\"inputs\":[],\"outputs\":[],"
              "\"depends_on\":[\"A\"],\"params\":{},\"execution\":{\"timeout\":2.0,"
              "\"async\":false,\"workers\":1,\"retries\":0,\"retry_delay\":0.0,"
              "\"retry_max_delay\":0.0,\"queue\":0,\"restart\":\"on-failure\",\"overflow\":\"block\",\"trigger\":[]},"
              "\"permissions\":[],\"requires_auth\":false}]}");
    check_text(&wf, NULL);
    free(text);
    json_decref(tree);
}

int main(void)
{
    RUN(test_tree_text_unchanged);
    RUN(test_text_equals_dump);
    RUN(test_large_graph);
    RUN(test_hand_built);
    return check_summary();
}
