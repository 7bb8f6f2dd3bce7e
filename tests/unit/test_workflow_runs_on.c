/*
 * test_workflow_runs_on.c - unit tests of a task's `runs_on:` (the agent
 * labels it needs, docs/distributed.md) through the loader (load_tasks.c),
 * the workflow JSON (json.c) and the canonical writer (emit.c): one label or
 * a list, each error at its line and column, a placed task's plugin looked
 * up on its agent rather than here, and the field surviving JSON and fmt.
 */
#include "workflow_fixture.h"
#include "emit.h"

static void test_scalar_and_list(void)
{
    struct wf_diags d;
    struct workflow *wf = load("workflow:\n"
                               "  tasks:\n"
                               "    - name: A\n"
                               "      plugin: start\n"
                               "      runs_on: edge\n"
                               "    - name: B\n"
                               "      plugin: end\n"
                               "      runs_on: [edge, arm64]\n"
                               "    - name: C\n"
                               "      plugin: end\n",
                               &d);
    CHECK(wf != NULL);
    if (wf) {
        CHECK(wf->tasks[0].runs_on.n == 1);
        CHECK(wf->tasks[0].runs_on.n == 1 && !strcmp(wf->tasks[0].runs_on.items[0].name, "edge"));
        CHECK(wf->tasks[1].runs_on.n == 2);
        CHECK(wf->tasks[1].runs_on.n == 2 && !strcmp(wf->tasks[1].runs_on.items[1].name, "arm64"));
        CHECK(wf->tasks[1].runs_on.n == 2 && wf->tasks[1].runs_on.items[1].pos.line == 8 &&
              wf->tasks[1].runs_on.items[1].pos.col == 23);
        CHECK(wf->tasks[2].runs_on.n == 0);
    }
    workflow__free(wf);
    wf_diags_free(&d);
}

static void test_errors_positioned(void)
{
    struct wf_diags d;
    struct workflow *wf = load("workflow:\n"
                               "  tasks:\n"
                               "    - name: A\n"
                               "      plugin: start\n"
                               "      runs_on: [edge, \"bad label\", edge]\n"
                               "    - name: B\n"
                               "      plugin: start\n"
                               "      runs_on: {x: 1}\n"
                               "    - name: C\n"
                               "      plugin: start\n"
                               "      runs_on: []\n"
                               "    - name: D\n"
                               "      plugin: start\n"
                               "      runs_on:\n"
                               "    - name: E\n"
                               "      plugin: start\n"
                               "      runs_on: [[a]]\n",
                               &d);
    CHECK(wf == NULL);
    CHECK(d.n_errors == 6);
    CHECK_ERROR(d, 5, 23, "label 'bad label' in 'runs_on' of task 'A' is not valid");
    CHECK_ERROR(d, 5, 36, "label 'edge' is listed twice in 'runs_on' of task 'A'");
    CHECK_ERROR(d, 8, 16, "'runs_on' of task 'B' must be a label or a list of labels, got a mapping");
    CHECK_ERROR(d, 11, 16, "'runs_on' of task 'C' is an empty list");
    CHECK_ERROR(d, 14, 15, "'runs_on' of task 'D' is empty");
    CHECK_ERROR(d, 17, 17, "each entry of 'runs_on' of task 'E' must be a label");
    wf_diags_free(&d);
}

/* A placed task's plugin is its agent's to have: no unknown-plugin error here. */
static void test_plugin_looked_up_on_the_agent(void)
{
    static const char yaml[] = "workflow:\n"
                               "  tasks:\n"
                               "    - name: A\n"
                               "      plugin: sensor-read\n"
                               "      runs_on: device\n"
                               "    - name: B\n"
                               "      plugin: sensor-read\n";
    struct wf_diags d;
    struct wf_load_options o = plain_opts();
    struct workflow *wf;

    o.lookup = fake_lookup;
    wf = load_with(yaml, &o, &d);
    CHECK(wf == NULL);
    CHECK(d.n_errors == 1);
    CHECK_ERROR(d, 7, 15, "unknown plugin 'sensor-read' in task 'B'");
    wf_diags_free(&d);
}

static void test_reactive_flows_place_tasks_too(void)
{
    struct wf_diags d;
    struct workflow *wf = load("workflow:\n"
                               "  mode: reactive\n"
                               "  tasks:\n"
                               "    - name: A\n"
                               "      plugin: start\n"
                               "      runs_on: [edge]\n"
                               "      execution: {workers: 2}\n",
                               &d);
    CHECK(wf != NULL);
    CHECK(d.n_errors == 0);
    CHECK(wf && wf->tasks[0].runs_on.n == 1 && wf->tasks[0].workers == 2);
    workflow__free(wf);
    wf_diags_free(&d);
}

static void test_json_and_emit(void)
{
    static const char yaml[] = "workflow:\n"
                               "  name: placed\n"
                               "  tasks:\n"
                               "    - name: A\n"
                               "      plugin: start\n"
                               "      outputs: [X]\n"
                               "      runs_on: [edge]\n"
                               "    - name: B\n"
                               "      plugin: end\n"
                               "      inputs: [X]\n"
                               "      runs_on: [edge, arm64]\n";
    struct wf_diags d;
    struct workflow *wf = load(yaml, &d);
    json_t *j = wf ? workflow__to_json(wf) : NULL;
    json_t *tasks = json_object_get(j, "tasks");
    char *text;

    CHECK(j != NULL);
    CHECK(json_array_size(json_object_get(json_array_get(tasks, 0), "runs_on")) == 1);
    CHECK(json_array_size(json_object_get(json_array_get(tasks, 1), "runs_on")) == 2);
    json_decref(j);
    workflow__free(wf);
    wf_diags_free(&d);

    text = emit__format_text("t.yaml", yaml, sizeof yaml - 1, &d);
    CHECK(text != NULL);
    if (text) {
        CHECK(strstr(text, "      plugin: start\n      runs_on: edge\n") != NULL);
        CHECK(strstr(text, "      runs_on: [edge, arm64]\n") != NULL);
    }
    free(text);
    wf_diags_free(&d);
}

int main(void)
{
    RUN(test_scalar_and_list);
    RUN(test_errors_positioned);
    RUN(test_plugin_looked_up_on_the_agent);
    RUN(test_reactive_flows_place_tasks_too);
    RUN(test_json_and_emit);
    return check_summary();
}
