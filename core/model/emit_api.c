/*
 * emit_api.c - what `flowbus fmt` and `flowbus ui` call around the emitter
 * (emit.h): the canonical text of a file's text, a model's text checked by
 * the loader with diagnostics in JSON paths, and whether a model is the one a
 * file already holds (then saving it must not rewrite the file).
 */
#include "emit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * fmt reads {{ENV:X}} as "" whatever the environment holds: the layout must not
 * depend on it, and a secret's value is then never read at all.
 */
static const char *no_env(void *ctx, const char *name)
{
    (void)ctx;
    (void)name;
    return "";
}

char *emit__format_text(const char *file, const char *text, size_t len, struct wf_diags *diags)
{
    struct wf_load_options lo = {0};
    struct emit_options eo = {0};
    struct emit_out out = {0};
    struct emit_diags ed = {0};
    struct workflow *wf;
    json_t *model = NULL;
    char *result = NULL;
    struct wf_pos none = {0, 0};

    lo.getenv_fn = no_env;
    wf = workflow__load_buffer(file, text, len, &lo, diags);
    if (!wf)
        goto out;
    model = workflow__to_json(wf);
    eo.source = text;
    eo.source_len = len;
    eo.file = file;
    eo.getenv_fn = no_env;
    if (!model || emit__workflow_yaml(model, &eo, &out, &ed) != 0) {
        /* The model of a file that loaded has the right shape: only memory can fail. */
        struct wf_diag *items = realloc(diags->items, (diags->n + 1) * sizeof *items);
        if (items) {
            diags->items = items;
            items[diags->n].severity = WF_ERROR;
            items[diags->n].pos = none;
            items[diags->n].message =
                strdup(ed.n ? ed.items[0].message : "out of memory while formatting");
            if (items[diags->n].message) {
                diags->n++;
                diags->n_errors++;
            }
        }
        goto out;
    }
    result = out.text;
    out.text = NULL;
out:
    emit__out_free(&out);
    emit__diags_free(&ed);
    json_decref(model);
    workflow__free(wf);
    return result;
}

static int add_diag(json_t *list, const char *severity, const char *message, const char *path,
                    int line, int col)
{
    json_t *d = json_pack("{s:s, s:s, s:s, s:i, s:i}", "severity", severity, "message", message,
                          "path", path, "line", line, "col", col);

    return d && json_array_append_new(list, d) == 0;
}

int emit__model_to_yaml(const json_t *model, const struct emit_options *eo,
                        const struct wf_load_options *lo, char **yaml, json_t **diags)
{
    struct emit_out out = {0};
    struct emit_diags ed = {0};
    struct wf_diags wd = {0};
    struct workflow *wf = NULL;
    const char *file = eo && eo->file ? eo->file : json_string_value(json_object_get(model, "file"));
    int rc = -1;

    *yaml = NULL;
    *diags = json_array();
    if (!*diags)
        return -1;
    if (emit__workflow_yaml(model, eo, &out, &ed) != 0) {
        for (size_t i = 0; i < ed.n; i++)
            if (!add_diag(*diags, "error", ed.items[i].message, ed.items[i].path, 0, 0))
                goto out;
        rc = ed.n && strcmp(ed.items[0].message, "out of memory") ? 1 : -1;
        goto out;
    }
    wf = workflow__load_buffer(file ? file : "workflow.yaml", out.text, out.len, lo, &wd);
    for (size_t i = 0; i < wd.n; i++) {
        const struct wf_diag *d = &wd.items[i];
        if (!add_diag(*diags, d->severity == WF_ERROR ? "error" : "warning", d->message,
                      emit__path_at(&out, d->pos), d->pos.line, d->pos.col))
            goto out;
    }
    rc = wf ? 0 : 1;
    *yaml = out.text;
    out.text = NULL;
out:
    workflow__free(wf);
    wf_diags_free(&wd);
    emit__out_free(&out);
    emit__diags_free(&ed);
    return rc;
}

/* JSON equality where 2 and 2.0 are the same number (the browser writes 2.0 as 2). */
static int same(const json_t *a, const json_t *b)
{
    const char *key;
    const json_t *v;
    size_t i;

    if (json_is_number(a) && json_is_number(b))
        return json_number_value(a) == json_number_value(b);
    if (json_typeof(a) != json_typeof(b))
        return 0;
    if (json_is_object(a)) {
        if (json_object_size(a) != json_object_size(b))
            return 0;
        json_object_foreach ((json_t *)a, key, v)
            if (!json_object_get(b, key) || !same(v, json_object_get(b, key)))
                return 0;
        return 1;
    }
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b))
            return 0;
        json_array_foreach (a, i, v)
            if (!same(v, json_array_get(b, i)))
                return 0;
        return 1;
    }
    return json_equal(a, b);
}

int emit__same_model(const json_t *model, const char *file, const char *text, size_t len,
                     const struct wf_load_options *lo)
{
    struct wf_diags wd = {0};
    struct workflow *wf = workflow__load_buffer(file, text, len, lo, &wd);
    json_t *have = wf ? workflow__to_json(wf) : NULL, *want = json_deep_copy(model);
    int equal = 0;

    if (have && json_is_object(want)) {
        json_object_del(have, "file");
        json_object_del(want, "file");
        equal = same(have, want);
    }
    json_decref(have);
    json_decref(want);
    workflow__free(wf);
    wf_diags_free(&wd);
    return equal;
}
