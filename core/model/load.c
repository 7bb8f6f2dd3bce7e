/*
 * load.c - loads a workflow file into struct workflow and checks it
 * (workflow__load, workflow__load_buffer).
 *
 * The file is parsed with libyaml's event parser into a compact document of
 * our own (document.c), then walked once to build the model while every key,
 * type and name is checked: the top level here, env: and --set in
 * load_env.c, tasks: in load_tasks.c, all with the readers of load_fields.c.
 * checks.c then checks what needs the whole picture (inputs nobody sets,
 * cycles, outputs nobody reads). Every problem becomes a diagnostic with its
 * line and column, and the walk goes on after an error so that one run
 * reports them all.
 *
 * An alias is kept as a second reference to the anchored node, as libyaml's
 * own loader does, so a small file can describe an exponentially large tree
 * (the "billion laughs" bomb) or even a loop. Every node the walk touches is
 * therefore counted against a budget (load__visit), and the one recursive
 * walk (params) has a depth cap.
 */
#include "checks.h"
#include "diag.h"
#include "document.h"
#include "load.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

static const char *const TOP_KEYS[] = {"workflow"};
static const char *const WORKFLOW_KEYS[] = {"name",  "description", "version", "env",
                                            "tasks", "auth",        "mode"};
enum { WK_NAME, WK_DESCRIPTION, WK_VERSION, WK_ENV, WK_TASKS, WK_AUTH, WK_MODE, WK_COUNT };
static const char *const AUTH_KEYS[] = {"url", "timeout", "cache_ttl", "ca_file"};
enum { AK_URL, AK_TIMEOUT, AK_CACHE_TTL, AK_CA_FILE, AK_COUNT };

/* The workflow's `auth:` mapping: where tasks get their permissions (Attica). */
static void read_auth(struct loader *L, struct ynode *n)
{
    struct workflow *wf = L->wf;
    struct field f[AK_COUNT];
    const char *s;
    char buf[64];

    if (is_null(n))
        return;
    if (n->type != YAML_MAPPING_NODE) {
        diag__error(L->diags, pos_of(n),
                    "'auth' must be a mapping like {url: ..., timeout: 3, cache_ttl: 60}, "
                    "got %s",
                    load__describe(n, buf, sizeof buf));
        return;
    }
    load__read_fields(L, n, AUTH_KEYS, AK_COUNT, "'auth'", f);
    wf->auth.set = 1;
    wf->auth.cache_ttl = -1; /* unset: the SDK's default; 0 turns the cache off */
    if (f[AK_URL].value && (s = load__string_field(L, &f[AK_URL], "'auth'")) != NULL) {
        if (strncmp(s, "https://", 8) != 0 && strncmp(s, "http://", 7) != 0)
            diag__error(L->diags, pos_of(f[AK_URL].value),
                        "'url' of 'auth' must start with https:// (or http:// for a local "
                        "service), got \"%s\"",
                        s);
        else
            wf->auth.url = strdup(s);
    }
    if (f[AK_CA_FILE].value && (s = load__string_field(L, &f[AK_CA_FILE], "'auth'")) != NULL)
        wf->auth.ca_file = strdup(s);
    load__read_seconds(L, f[AK_TIMEOUT].value, "timeout", "auth", &wf->auth.timeout);
    load__read_seconds(L, f[AK_CACHE_TTL].value, "cache_ttl", "auth", &wf->auth.cache_ttl);
}

/*
 * The file's base name without its extension, as a default workflow name;
 * "stdin" for standard input ("-").
 */
static char *default_name(const char *file)
{
    const char *base = strrchr(file, '/');
    char *name = strdup(!strcmp(file, "-") ? "stdin" : base ? base + 1 : file);
    char *dot = name ? strrchr(name, '.') : NULL;

    if (dot && dot != name)
        *dot = 0;
    return name;
}

static void read_document(struct loader *L, struct ynode *root)
{
    struct workflow *wf = L->wf;
    struct field top[1], f[WK_COUNT];
    char buf[64];
    const char *s;

    if (!root) {
        struct wf_pos start = {1, 1};
        diag__error(L->diags, start, "the file is empty: expected a mapping with a 'workflow' key");
        return;
    }
    if (root->type != YAML_MAPPING_NODE) {
        diag__error(L->diags, pos_of(root),
                    "expected a mapping with a 'workflow' key at the top, got %s",
                    load__describe(root, buf, sizeof buf));
        return;
    }
    load__read_fields(L, root, TOP_KEYS, COUNT(TOP_KEYS), "the top level", top);
    if (!top[0].value) {
        diag__error(L->diags, pos_of(root), "missing 'workflow' key at the top of the file");
        return;
    }
    if (top[0].value->type != YAML_MAPPING_NODE) {
        diag__error(L->diags, pos_of(top[0].value),
                    "'workflow' must be a mapping with 'name', 'env' and 'tasks', got %s",
                    load__describe(top[0].value, buf, sizeof buf));
        return;
    }
    load__read_fields(L, top[0].value, WORKFLOW_KEYS, WK_COUNT, "workflow", f);
    if (f[WK_NAME].value && (s = load__string_field(L, &f[WK_NAME], "workflow")) != NULL)
        wf->name = strdup(s);
    if (f[WK_DESCRIPTION].value &&
        (s = load__string_field(L, &f[WK_DESCRIPTION], "workflow")) != NULL)
        wf->description = strdup(s);
    if (f[WK_VERSION].value && (s = load__string_field(L, &f[WK_VERSION], "workflow")) != NULL)
        wf->version = strdup(s);
    if (f[WK_MODE].value) {
        s = text(f[WK_MODE].value);
        if (s && strcmp(s, "reactive") == 0)
            wf->reactive = 1;
        else if (!s || strcmp(s, "oneshot") != 0)
            diag__error(L->diags, pos_of(f[WK_MODE].value),
                        "'mode' must be oneshot or reactive, got %s",
                        load__describe(f[WK_MODE].value, buf, sizeof buf));
    }
    if (L->opts && L->opts->reactive)
        wf->reactive = 1;
    if (f[WK_ENV].value)
        load__read_env(L, f[WK_ENV].value);
    if (f[WK_AUTH].value)
        read_auth(L, f[WK_AUTH].value);
    load__apply_settings(L);
    if (!f[WK_TASKS].value) {
        diag__error(L->diags, pos_of(top[0].value), "'workflow' has no 'tasks' list");
        return;
    }
    load__read_tasks(L, f[WK_TASKS].value);
    if (L->over_budget)
        return;
    checks__run(wf, L->doc, f[WK_TASKS].value, L->diags);
}

/*
 * The line and column of byte offset off in a UTF-8 text, counting columns in
 * characters as libyaml does. libyaml's reader (bad UTF-8, control
 * characters) reports only a byte offset, not a mark.
 */
static struct wf_pos offset_pos(const char *text_, size_t len, size_t off)
{
    struct wf_pos p = {1, 1};

    for (size_t i = 0; i < off && i < len; i++) {
        if (text_[i] == '\n') {
            p.line++;
            p.col = 1;
        } else if (((unsigned char)text_[i] & 0xC0) != 0x80) {
            p.col++;
        }
    }
    return p;
}

static void syntax_error(struct loader *L, const yaml_parser_t *p, const char *text_, size_t len)
{
    struct wf_pos at = mark_pos(p->problem_mark);

    if (p->error == YAML_READER_ERROR) {
        /* Line and column only make sense in UTF-8 (the common case); in
         * UTF-16 the error is still named, at the start of the file. */
        if (p->encoding == YAML_UTF8_ENCODING)
            at = offset_pos(text_, len, p->problem_offset);
        else
            at.line = at.col = 1;
        if (p->problem_value < 0)
            diag__error(L->diags, at, "YAML syntax error: %s",
                        p->problem ? p->problem : "unknown error");
        else if (p->problem && strstr(p->problem, "octet"))
            diag__error(L->diags, at,
                        "YAML syntax error: %s (byte 0x%02X); a workflow file must be UTF-8",
                        p->problem, (unsigned)p->problem_value & 0xFF);
        else
            diag__error(L->diags, at, "YAML syntax error: %s (U+%04X)",
                        p->problem ? p->problem : "unknown error", (unsigned)p->problem_value);
    } else if (p->problem == document__too_deep)
        diag__error(L->diags, at,
                    "lists and mappings are nested deeper than %d levels here; a workflow needs "
                    "far fewer (refusing the file)",
                    DOCUMENT_MAX_DEPTH);
    else if (p->error == YAML_MEMORY_ERROR)
        diag__error(L->diags, at, "out of memory while parsing YAML");
    else if (p->context)
        diag__error(L->diags, at, "YAML syntax error: %s (%s that started at line %d)",
                    p->problem ? p->problem : "error", p->context, (int)p->context_mark.line + 1);
    else
        diag__error(L->diags, at, "YAML syntax error: %s",
                    p->problem ? p->problem : "unknown error");
}

struct workflow *workflow__load_buffer(const char *file, const char *text_, size_t len,
                                       const struct wf_load_options *opts, struct wf_diags *diags)
{
    struct loader L = {0};
    yaml_parser_t parser;
    struct ydoc doc = {0}, extra = {0};
    int have_parser = 0;
    struct workflow *wf = NULL;
    size_t errors_before = diags->n_errors;

    L.opts = opts;
    L.diags = diags;
    L.doc = &doc;
    L.var_index = json_object();
    wf = calloc(1, sizeof *wf);
    if (!wf || !L.var_index || !yaml_parser_initialize(&parser)) {
        struct wf_pos none = {0, 0};
        diag__error(L.diags, none, "out of memory");
        goto out;
    }
    have_parser = 1;
    L.wf = wf;
    wf->file = strdup(file);
    /* The same bound as a file's (load_file.c), for whoever hands a buffer in. */
    if (len > WF_MAX_FILE_SIZE) {
        struct wf_pos start = {1, 1};
        diag__error(L.diags, start,
                    "the workflow is %zu bytes, over the limit of %d MiB (%d bytes) for a "
                    "workflow file",
                    len, WF_MAX_FILE_SIZE >> 20, WF_MAX_FILE_SIZE);
        goto out;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text_, len);
    if (!document__compose(&parser, &doc)) {
        syntax_error(&L, &parser, text_, len);
        goto out;
    }
    L.budget = NODE_BUDGET + VISITS_PER_NODE * doc.n;
    /* A second document would be silently ignored; refuse it instead. */
    if (!document__compose(&parser, &extra))
        syntax_error(&L, &parser, text_, len);
    else if (extra.n > 0)
        diag__error(L.diags, pos_of(&extra.nodes[0]),
                    "a second YAML document in the file: a workflow file holds one document");
    document__free(&extra);
    /* The parser's buffers have done their work: free them before the walk. */
    yaml_parser_delete(&parser);
    have_parser = 0;
    read_document(&L, node_at(&doc, 0));
    if (!wf->name)
        wf->name = default_name(file);
    if (!wf->file || !wf->name) {
        struct wf_pos none = {0, 0};
        diag__error(L.diags, none, "out of memory");
    }
out:
    diag__sort(diags);
    document__free(&doc);
    if (have_parser)
        yaml_parser_delete(&parser);
    json_decref(L.var_index);
    if (diags->n_errors > errors_before) {
        workflow__free(wf);
        wf = NULL;
    }
    return wf;
}

struct workflow *workflow__load(const char *path, const struct wf_load_options *opts,
                                struct wf_diags *diags)
{
    struct workflow *wf = NULL;
    char *buf = NULL;
    size_t len = 0;

    if (load__read_file(path, diags, &buf, &len))
        wf = workflow__load_buffer(path, buf, len, opts, diags);
    free(buf);
    return wf;
}
