/*
 * fuzz_workflow.c - libFuzzer target of the workflow loader.
 *
 * The input is a workflow file. It goes through workflow__load_buffer with a
 * --set value and a fixed environment (so {{ENV:X}} resolves the same on
 * every machine); a workflow that loads is then turned into JSON, its
 * graph printed both ways, as the CLI does, and skips propagated from task
 * states and set variables taken from the input's bytes, as a run does.
 */
#include "graph.h"
#include "workflow.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *fixed_env(void *ctx, const char *name)
{
    (void)ctx;
    if (strcmp(name, "HOME") == 0)
        return "/home/fuzz";
    if (strcmp(name, "EMPTY") == 0)
        return "";
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Propagates skips from states and set variables drawn from data. */
static void propagate(const struct graph *g, size_t n_tasks, const uint8_t *data, size_t size)
{
    size_t n_vars = graph__var_count(g);
    enum graph_task_state *states = calloc(n_tasks + 1, sizeof *states);
    unsigned char *var_set = calloc(n_vars + 1, 1);
    char **reasons = calloc(n_tasks + 1, sizeof *reasons);

    if (states && var_set && reasons) {
        for (size_t t = 0; t < n_tasks; t++)
            states[t] = size ? (enum graph_task_state)(data[t % size] % 4) : GT_PENDING;
        for (size_t v = 0; v < n_vars; v++)
            var_set[v] = graph__var_is_initial(g, v) || (size && (data[(v * 7) % size] & 0x10));
        graph__propagate(g, var_set, states, reasons);
        for (size_t t = 0; t < n_tasks; t++)
            free(reasons[t]);
    }
    free(states);
    free(var_set);
    free(reasons);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *devnull;
    static const struct wf_setting settings[] = {{"SET_BY_CLI", "1"}};
    struct wf_load_options opts = {0};
    struct wf_diags diags = {0};
    struct workflow *wf;

    if (!devnull)
        devnull = fopen("/dev/null", "w");
    opts.settings = settings;
    opts.n_settings = 1;
    opts.getenv_fn = fixed_env;
    wf = workflow__load_buffer("fuzz.yaml", (const char *)data, size, &opts, &diags);
    wf_diags_print(&diags, "fuzz.yaml", devnull);
    if (wf) {
        json_t *j = workflow__to_json(wf);
        struct graph *g = graph__new(wf);
        if (g) {
            graph__print_mermaid(g, devnull);
            graph__print_dot(g, devnull);
            propagate(g, wf->n_tasks, data, size);
        }
        graph__free(g);
        json_decref(j);
    }
    workflow__free(wf);
    wf_diags_free(&diags);
    return 0;
}
