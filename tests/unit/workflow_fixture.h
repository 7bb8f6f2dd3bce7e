/*
 * workflow_fixture.h - what the workflow loader's unit tests share: a fake
 * environment for {{ENV:X}} and a fake plugin registry, loading a YAML text
 * given as a C string, and finding a diagnostic by its severity, line, column
 * and words (CHECK_ERROR, CHECK_WARNING), with every diagnostic printed when
 * one is missing. The functions are static inline so that each test program
 * takes only the ones it uses, and nothing is written twice.
 */
#ifndef FLOWBUS_TESTS_WORKFLOW_FIXTURE_H
#define FLOWBUS_TESTS_WORKFLOW_FIXTURE_H

#include "check.h"
#include "workflow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FIXTURES_DIR
#define FIXTURES_DIR "workflows"
#endif

/* The environment the loader sees for {{ENV:X}}: only these two are set. */
static inline const char *fake_getenv(void *ctx, const char *name)
{
    (void)ctx;
    if (!strcmp(name, "AUTH_TOKEN"))
        return "s3cret";
    if (!strcmp(name, "USER_NAME"))
        return "ada";
    return NULL;
}

/* A plugin registry holding the five built-in plugins. */
static inline char *fake_lookup(void *ctx, const char *plugin)
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

static inline struct wf_load_options plain_opts(void)
{
    struct wf_load_options o = {0};
    o.getenv_fn = fake_getenv;
    return o;
}

static inline struct workflow *load_with(const char *yaml, const struct wf_load_options *o,
                                         struct wf_diags *d)
{
    memset(d, 0, sizeof *d);
    return workflow__load_buffer("t.yaml", yaml, strlen(yaml), o, d);
}

static inline struct workflow *load(const char *yaml, struct wf_diags *d)
{
    struct wf_load_options o = plain_opts();
    return load_with(yaml, &o, d);
}

static inline void dump(const struct wf_diags *d)
{
    fprintf(stderr, "  diagnostics (%zu, %zu errors):\n", d->n, d->n_errors);
    for (size_t i = 0; i < d->n; i++)
        fprintf(stderr, "    %d:%d: %s: %s\n", d->items[i].pos.line, d->items[i].pos.col,
                d->items[i].severity == WF_ERROR ? "error" : "warning", d->items[i].message);
}

/* 1 if d holds a diagnostic of this severity at line:col whose message contains text. */
static inline int has(const struct wf_diags *d, enum wf_severity sev, int line, int col,
                      const char *text)
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

#endif
