/*
 * emit.h - writes a workflow model back as YAML text in one canonical layout
 * (docs/workflow-format.md, "Canonical layout"): what `flowbus fmt` prints and
 * what `flowbus ui` saves, so that a file edited in the browser stays a file a
 * person would have written and a git diff of an edit stays local.
 *
 * The input is the model as JSON, in the shape workflow__to_json writes (the
 * editor sends that shape back), plus, optionally, the file's current text.
 * The text gives what the JSON cannot carry: the comments (the file's leading
 * block, each task's and each key's leading lines, end-of-line comments), the
 * `env:` entries as written ({{ENV:X}} references, secrets: the JSON holds the
 * resolved values and "<secret>" placeholders) and whether `name:` was given.
 * A "<secret>" placeholder is never written as a value: the entry is taken from
 * the text, and without one it is an error.
 *
 * The emitter checks the JSON's shape (types, known keys) and reports with a
 * JSON path ("tasks[3].inputs[0]"); what the loader checks (names, plugins,
 * cycles...) it leaves to the loader, which emit__model_to_yaml runs on the
 * text, mapping each line:col back to the JSON path that wrote it.
 *
 * Nothing here keeps state: every function is safe to call from several
 * threads at once on different arguments.
 */
#ifndef FLOWBUS_CORE_MODEL_EMIT_H
#define FLOWBUS_CORE_MODEL_EMIT_H

#include "workflow.h"

#include <jansson.h>
#include <stddef.h>

/* Lines longer than this turn a list or mapping from flow [a, b] to block style. */
#define EMIT_WIDTH 100

struct emit_options {
    const char *source;   /* the file's current text, or NULL for a new file */
    size_t source_len;
    const char *file;     /* its name: the default `name:` is its base name (NULL: model's "file") */
    /* Resolves {{ENV:X}} to recognise an env: value the model did not change
     * (the JSON holds it resolved); as wf_load_options; NULL: getenv. */
    const char *(*getenv_fn)(void *ctx, const char *name);
    void *getenv_ctx;
};

/* A problem with the model JSON: path is a JSON path such as "tasks[3].inputs[0]" or "env.X". */
struct emit_diag {
    char *path;
    char *message;
};

struct emit_diags {
    struct emit_diag *items;
    size_t n;
};

/* Where the text written for one JSON value starts (1-based line and column). */
struct emit_span {
    int line, col;
    char *path;
};

struct emit_out {
    char *text; /* NUL-terminated */
    size_t len;
    struct emit_span *spans; /* in text order */
    size_t n_spans;
};

/*
 * Writes model as canonical YAML into *out (caller frees with emit__out_free).
 * Returns 0; or -1 when the model's shape is wrong (every problem is appended
 * to diags, which the caller zeroes and frees with emit__diags_free) or memory
 * ran out (a diag with an empty path says so). out is empty after a failure.
 */
int emit__workflow_yaml(const json_t *model, const struct emit_options *opts,
                        struct emit_out *out, struct emit_diags *diags);

void emit__out_free(struct emit_out *out);
void emit__diags_free(struct emit_diags *diags);

/* The JSON path of the value written at pos of out->text ("" when before any), never NULL. */
const char *emit__path_at(const struct emit_out *out, struct wf_pos pos);

/*
 * The canonical text of a workflow file's text: loads it (any plugin accepted,
 * every {{ENV:X}} read as "", no --set), and emits its model with the text as
 * source. Returns the malloc'd text, or NULL when the file does not load (the
 * loader's diagnostics are in diags, as workflow__load_buffer gives them).
 * The text is canonical when the result equals it byte for byte.
 */
char *emit__format_text(const char *file, const char *text, size_t len, struct wf_diags *diags);

/*
 * What `POST /api/format` and `PUT /api/workflows/{file}` call: model to
 * canonical text, then loaded by workflow__load_buffer with lo (the checks of
 * `flowbus validate`; lo may be NULL). Returns 0 when the text is a valid
 * workflow, 1 when it is not, -1 when out of memory. *yaml is the text (caller
 * frees) whenever the model's shape allowed writing it, else NULL. *diags is
 * always set (caller decrefs): a JSON array of objects
 *   {"severity": "error"|"warning", "message": "...", "path": "tasks[3].inputs[0]",
 *    "line": 12, "col": 9}
 * where path is in the model JSON and line/col are in *yaml (0 when the
 * problem is in the model's shape, before any text existed).
 */
int emit__model_to_yaml(const json_t *model, const struct emit_options *eo,
                        const struct wf_load_options *lo, char **yaml, json_t **diags);

/*
 * 1 when model is the model of text (loaded with lo; the key "file" and the
 * difference between 2 and 2.0 aside): saving it would change nothing, so the
 * file is left as it is, even when it is not in the canonical layout. 0 when
 * they differ or text does not load.
 */
int emit__same_model(const json_t *model, const char *file, const char *text, size_t len,
                     const struct wf_load_options *lo);

#endif
