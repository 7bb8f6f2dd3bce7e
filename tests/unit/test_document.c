/*
 * test_document.c - unit tests of how the loader composes the YAML document
 * (core/model/document.c).
 *
 * The loader builds its own compact tree from libyaml's events instead of
 * keeping libyaml's document, and it must behave exactly as it did on
 * libyaml's: the same errors at the same positions for anchors, aliases and
 * extra documents, the same model from aliased nodes, the same columns inside
 * quoted scalars. Each expected message here is the one the loader printed
 * when it still used yaml_parser_load.
 */
#include "check.h"
#include "workflow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *no_env(void *ctx, const char *name)
{
    (void)ctx;
    (void)name;
    return NULL;
}

static struct workflow *load(const char *yaml, size_t len, struct wf_diags *d)
{
    struct wf_load_options o = {0};

    o.getenv_fn = no_env;
    memset(d, 0, sizeof *d);
    return workflow__load_buffer("t.yaml", yaml, len, &o, d);
}

/* The diagnostics as "LINE:COL: message" lines, for exact comparisons. */
static char *render(const struct wf_diags *d)
{
    char *out = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&out, &size);

    if (!f)
        return NULL;
    for (size_t i = 0; i < d->n; i++)
        fprintf(f, "%d:%d: %s\n", d->items[i].pos.line, d->items[i].pos.col, d->items[i].message);
    fclose(f);
    return out;
}

/* Loads yaml, which must fail with exactly the diagnostics in expected. */
static void check_fails(const char *yaml, size_t len, const char *expected)
{
    struct wf_diags d;
    struct workflow *wf = load(yaml, len, &d);
    char *got = render(&d);

    CHECK(wf == NULL);
    CHECK_STR(got, expected);
    free(got);
    workflow__free(wf);
    wf_diags_free(&d);
}

#define FAILS(yaml, expected) check_fails(yaml, sizeof yaml - 1, expected)

static void test_anchor_errors(void)
{
    FAILS("workflow:\n"
          "  name: &n x\n"
          "  description: &n y\n"
          "  tasks: []\n",
          "3:16: YAML syntax error: second occurrence (found duplicate anchor; first occurrence "
          "that started at line 2)\n");
    FAILS("workflow:\n"
          "  tasks:\n"
          "    - {name: A, plugin: *p}\n",
          "3:25: YAML syntax error: found undefined alias\n");
    /* An anchor of a node is known inside that node: the alias makes a loop. */
    FAILS("a: &a\n"
          "  b: *a\n",
          "1:1: unknown key 'a' in the top level; valid keys: workflow\n"
          "1:1: missing 'workflow' key at the top of the file\n");
}

static void test_aliases_are_shared_nodes(void)
{
    static const char yaml[] = "workflow:\n"
                               "  tasks:\n"
                               "    - name: A\n"
                               "      plugin: start\n"
                               "      outputs: [X]\n"
                               "      execution: &ex {timeout: 5, retries: 2}\n"
                               "    - name: B\n"
                               "      plugin: end\n"
                               "      inputs: [X]\n"
                               "      execution: *ex\n";
    struct wf_diags d;
    struct workflow *wf = load(yaml, sizeof yaml - 1, &d);

    CHECK(wf != NULL);
    CHECK(d.n == 0);
    if (wf) {
        CHECK(wf->tasks[1].timeout == 5.0 && wf->tasks[1].retries == 2);
        CHECK(wf->tasks[1].pos.line == 7 && wf->tasks[1].pos.col == 7);
        CHECK(wf->tasks[1].inputs.items[0].pos.line == 9 &&
              wf->tasks[1].inputs.items[0].pos.col == 16);
    }
    workflow__free(wf);
    wf_diags_free(&d);

    /* The same task twice through an alias: both copies are read, at the anchor's place. */
    FAILS("workflow:\n"
          "  tasks:\n"
          "    - &t {name: A, plugin: start, outputs: [X]}\n"
          "    - *t\n",
          "3:17: duplicate task name 'A' (first defined at line 3)\n"
          "3:45: output 'X' of task 'A' is never used: no task lists it in its inputs\n"
          "3:45: output 'X' of task 'A' is never used: no task lists it in its inputs\n");
}

static void test_documents(void)
{
    FAILS("", "1:1: the file is empty: expected a mapping with a 'workflow' key\n");
    FAILS("# only a comment\n",
          "1:1: the file is empty: expected a mapping with a 'workflow' key\n");
    FAILS("---\n",
          "2:1: expected a mapping with a 'workflow' key at the top, got an empty value\n");
    FAILS("workflow: {tasks: [{name: A, plugin: start}]}\n"
          "---\n"
          "a: [\n",
          "4:1: YAML syntax error: did not find expected node content (while parsing a flow node "
          "that started at line 4)\n");
    FAILS("workflow: {tasks: [{name: A, plugin: start}]}\n"
          "--- *nope\n",
          "2:5: YAML syntax error: found undefined alias\n");
    FAILS("workflow: {tasks: [{name: A, plugin: start}]}\n"
          "--- \n"
          "...\n",
          "3:1: a second YAML document in the file: a workflow file holds one document\n");
}

static void test_accepted_shapes(void)
{
    static const char yaml[] = "%YAML 1.1\n"
                               "---\n"
                               "workflow: {tasks: [{name: A, plugin: start, inputs: [], "
                               "outputs: [], params: {k: !!str 5, j: !custom x, e: {}, l: []}}]}\n"
                               "...\n";
    struct wf_diags d;
    struct workflow *wf = load(yaml, sizeof yaml - 1, &d);
    char *params = wf ? json_dumps(wf->tasks[0].params, JSON_COMPACT) : NULL;

    CHECK(wf != NULL);
    CHECK(d.n == 0);
    /* Tags were never looked at: a plain 5 is a number whatever its tag says. */
    CHECK_STR(params, "{\"k\":5,\"j\":\"x\",\"e\":{},\"l\":[]}");
    CHECK(wf && wf->tasks[0].pos.line == 3 && wf->tasks[0].pos.col == 20);
    free(params);
    workflow__free(wf);
    wf_diags_free(&d);
}

static void test_positions_inside_scalars(void)
{
    /* Exact columns where the scalar is one line of ASCII without escapes;
     * the scalar's own position otherwise. */
    FAILS("workflow:\n"
          "  env:\n"
          "    A: \"ab {{ENV:NOPE}}\"\n"
          "    B: 'x {{ENV:NOPE}}'\n"
          "    C: x {{ENV:NOPE}}\n"
          "    D: \"multi\n"
          "      {{ENV:NOPE}}\"\n"
          "    E: \"\\u00e9 {{ENV:NOPE}}\"\n"
          "    F: |\n"
          "      {{ENV:NOPE}}\n"
          "  tasks: [{name: A, plugin: start}]\n",
          "3:12: environment variable 'NOPE' is not set (env 'A' uses {{ENV:NOPE}})\n"
          "4:11: environment variable 'NOPE' is not set (env 'B' uses {{ENV:NOPE}})\n"
          "5:10: environment variable 'NOPE' is not set (env 'C' uses {{ENV:NOPE}})\n"
          "6:8: environment variable 'NOPE' is not set (env 'D' uses {{ENV:NOPE}})\n"
          "8:8: environment variable 'NOPE' is not set (env 'E' uses {{ENV:NOPE}})\n"
          "9:8: environment variable 'NOPE' is not set (env 'F' uses {{ENV:NOPE}})\n");
    /* A NUL inside a quoted scalar: not usable as text, and quoted whole, the
     * NUL escaped (it was quoted up to the NUL, "a"). */
    FAILS("workflow:\n"
          "  name: \"a\\0b\"\n"
          "  tasks: [{name: A, plugin: start}]\n",
          "2:9: 'name' in workflow must not contain a NUL character, got \"a\\0b\"\n");
}

/* A big document of many small nodes still loads, with the right positions at its end. */
static void test_many_nodes(void)
{
    size_t n = 20000, cap = 64 * n, len = 0;
    char *yaml = malloc(cap);
    struct wf_diags d;
    struct workflow *wf;

    CHECK(yaml != NULL);
    if (!yaml)
        return;
    len += (size_t)snprintf(yaml + len, cap - len, "workflow:\n  tasks:\n");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(yaml + len, cap - len,
                                "    - {name: T%zu, plugin: cmd, params: {argv: [x%zu]}}\n", i, i);
    wf = load(yaml, len, &d);
    CHECK(wf != NULL);
    CHECK(d.n == 0);
    CHECK(wf && wf->n_tasks == n);
    CHECK(wf && wf->tasks[n - 1].name_pos.line == (int)n + 2 &&
          wf->tasks[n - 1].name_pos.col == 14);
    CHECK(wf && strcmp(json_string_value(json_array_get(
                           json_object_get(wf->tasks[n - 1].params, "argv"), 0)),
                       "x19999") == 0);
    workflow__free(wf);
    wf_diags_free(&d);
    free(yaml);
}

int main(void)
{
    RUN(test_anchor_errors);
    RUN(test_aliases_are_shared_nodes);
    RUN(test_documents);
    RUN(test_accepted_shapes);
    RUN(test_positions_inside_scalars);
    RUN(test_many_nodes);
    return check_summary();
}
