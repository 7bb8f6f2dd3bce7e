/*
 * api_workflows.c - the workflow routes of `flowbus ui`: list, read, save,
 * create, validate, format, graph (docs/http-api.md).
 *
 * A workflow is checked by the loader of `flowbus validate` (workflow__load,
 * with the plugin lookup of a run), so the editor's diagnostics are the
 * command line's, with the same file:line:col. One difference, on purpose:
 * {{ENV:X}} is kept as written in the model instead of being replaced by the
 * server's environment, so no environment value (a token, a password)
 * reaches the browser; an X that is not set is still the loader's error.
 *
 * Saving is conservative: the text is loaded first (422 if it has errors),
 * If-Match must name the file on disk (409 if it changed since the editor
 * read it), a text identical to the file does not touch it, and the write is
 * atomic (files.c).
 */
#define _GNU_SOURCE /* asprintf, pipe2, POSIX_SPAWN_SETSID, explicit_bzero */
#include "internal.h"
#include "emit.h"
#include "graph.h"
#include "log.h"
#include "plugins.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_LABEL "workflow.yaml"

struct env_keep {
    char buf[80];
};

/* {{ENV:X}} stays {{ENV:X}} when X is set; NULL (the loader's error) when not. */
static const char *keep_reference(void *ctx, const char *name)
{
    struct env_keep *k = ctx;

    if (!getenv(name))
        return NULL;
    snprintf(k->buf, sizeof k->buf, "{{ENV:%s}}", name);
    return k->buf;
}

struct workflow *workflows__load(const char *file, const char *text, size_t len,
                                 const struct wf_setting *settings, size_t n_settings,
                                 int resolve_env, struct wf_diags *diags)
{
    struct wf_load_options lo = {0};
    struct env_keep keep;

    lo.settings = settings;
    lo.n_settings = n_settings;
    lo.lookup = plugins__lookup;
    if (!resolve_env) {
        lo.getenv_fn = keep_reference;
        lo.getenv_ctx = &keep;
        /* Editing needs no values: a variable unset here only fails a run (a warning). */
        lo.unset_env_warns = 1;
    }
    return workflow__load_buffer(file, text, len, &lo, diags);
}

/*
 * Checks a file name from a URL or a body: 0 if it is a workflow file name;
 * else replies (403 for a name that tries to leave the directory, else
 * not_found_status) and returns 1.
 */
static int refuse_name(struct request *r, const char *name, unsigned not_found_status,
                       enum MHD_Result *res)
{
    if (files__workflow_name(name))
        return 0;
    if (!name || !*name || name[0] == '.' || name[0] == '/' || strchr(name, '/') ||
        strchr(name, '\\') || strstr(name, ".."))
        *res = http__error(r, MHD_HTTP_FORBIDDEN, NULL, NULL, NULL,
                           "'%s' is outside the workflows directory: a file name has no '/', "
                           "no '..' and does not start with '.'",
                           name ? name : "");
    else
        *res = http__error(r, not_found_status, NULL, NULL, NULL,
                           "'%s' is not a workflow file name: expected letters, digits, '.', "
                           "'_' or '-', ending in .yaml or .yml, at most %d bytes",
                           name, UI_FILE_MAX);
    return 1;
}

/* Replies the error of a failed read of name. */
static enum MHD_Result read_error(struct request *r, const char *name, int err)
{
    if (err == ENOENT)
        return http__error(r, MHD_HTTP_NOT_FOUND, NULL, NULL, NULL,
                           "no workflow file '%s' in the workflows directory", name);
    if (err == ELOOP || err == EINVAL || err == EPERM)
        return http__error(r, MHD_HTTP_FORBIDDEN, NULL, NULL, NULL,
                           "'%s' is a symbolic link or not a regular file: not served", name);
    if (err == EFBIG)
        return http__error(r, MHD_HTTP_CONTENT_TOO_LARGE, NULL, NULL, NULL,
                           "'%s' is larger than %d bytes", name, UI_BODY_MAX);
    return http__error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL, NULL, "cannot read '%s': %s",
                       name, strerror(err));
}

/* The model JSON of a loaded workflow (the coordinator's, secrets masked). */
static json_t *model_json(const struct workflow *wf)
{
    return wf ? workflow__to_json(wf) : json_null();
}

/* The "yaml" member of a body: a string, else a 400 is queued. */
static const char *body_yaml(struct request *r, json_t *body, size_t *len, enum MHD_Result *res)
{
    json_t *y = json_object_get(body, "yaml");

    if (!json_is_string(y)) {
        *res = http__error(r, MHD_HTTP_BAD_REQUEST, NULL, NULL, NULL,
                           "expected {\"yaml\": \"...\"}: the member yaml must be a string");
        return NULL;
    }
    *len = json_string_length(y);
    return json_string_value(y);
}

/* ------------------------------------------------------------------------ */

/* One entry of GET /api/workflows. */
static json_t *list_entry(struct ui *ui, const char *name)
{
    struct wf_diags d = {0};
    struct workflow *wf = NULL;
    struct stat st;
    size_t len;
    char etag[48];
    char *text = files__read(ui->workflows_fd, name, UI_BODY_MAX, &len);
    json_t *o = NULL;

    if (!text || fstatat(ui->workflows_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        goto out;
    wf = workflows__load(name, text, len, NULL, 0, 0, &d);
    files__etag(text, len, etag, sizeof etag);
    o = json_pack("{s:s, s:s, s:s, s:I, s:b, s:I, s:I, s:I, s:f, s:s}", "file", name, "name",
                  wf ? wf->name : name, "mode", wf && wf->reactive ? "reactive" : "oneshot",
                  "tasks", (json_int_t)(wf ? wf->n_tasks : 0), "valid", wf != NULL, "errors",
                  (json_int_t)d.n_errors, "warnings", (json_int_t)(d.n - d.n_errors), "size",
                  (json_int_t)st.st_size,
                  "mtime", (double)st.st_mtim.tv_sec + (double)st.st_mtim.tv_nsec / 1e9, "etag",
                  etag);
out:
    workflow__free(wf);
    wf_diags_free(&d);
    free(text);
    return o;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static enum MHD_Result list_workflows(struct request *r)
{
    struct ui *ui = r->ui;
    int fd = openat(ui->workflows_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    char **names = NULL;
    size_t n = 0, cap = 0;
    json_t *list = json_array();
    struct dirent *e;
    enum MHD_Result res;

    if (!dir) {
        if (fd >= 0)
            close(fd);
        json_decref(list);
        return http__error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL, NULL,
                           "cannot list the workflows directory: %s", strerror(errno));
    }
    while ((e = readdir(dir))) {
        if (!files__workflow_name(e->d_name))
            continue;
        if (n == cap) {
            char **grown = realloc(names, (cap = cap ? cap * 2 : 32) * sizeof *names);
            if (!grown)
                break;
            names = grown;
        }
        if (!(names[n] = strdup(e->d_name)))
            break;
        n++;
    }
    closedir(dir);
    if (n)
        qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        json_t *o = list_entry(ui, names[i]); /* NULL for a symlink or a file that went away */
        if (o)
            json_array_append_new(list, o);
        free(names[i]);
    }
    free(names);
    res = http__json(r, MHD_HTTP_OK, json_pack("{s:o}", "workflows", list));
    return res;
}

static enum MHD_Result get_workflow(struct request *r, const char *name)
{
    struct ui *ui = r->ui;
    struct wf_diags d = {0};
    struct workflow *wf = NULL;
    struct MHD_Response *resp;
    const char *inm = http__header(r, "If-None-Match");
    enum MHD_Result res;
    char etag[48];
    size_t len;
    char *text;

    if (refuse_name(r, name, MHD_HTTP_NOT_FOUND, &res))
        return res;
    text = files__read(ui->workflows_fd, name, UI_BODY_MAX, &len);
    if (!text)
        return read_error(r, name, errno);
    files__etag(text, len, etag, sizeof etag);
    if (inm && strcmp(inm, etag) == 0) {
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        if (resp)
            MHD_add_response_header(resp, "ETag", etag);
        res = http__queue(r, MHD_HTTP_NOT_MODIFIED, resp);
        goto out;
    }
    wf = workflows__load(name, text, len, NULL, 0, 0, &d);
    resp = http__json_response(json_pack("{s:s, s:s, s:s%, s:b, s:o, s:o}", "file", name, "etag",
                                         etag, "yaml", text, len, "valid", wf != NULL, "model",
                                         model_json(wf), "diagnostics",
                                         http__diags_json(&d, name)));
    if (resp)
        MHD_add_response_header(resp, "ETag", etag);
    res = http__queue(r, MHD_HTTP_OK, resp);
out:
    workflow__free(wf);
    wf_diags_free(&d);
    free(text);
    return res;
}

/* The answer of a save: the file, its new tag, whether it was written, its warnings. */
static struct MHD_Response *saved(const char *name, const char *etag, int written,
                                  const struct wf_diags *d)
{
    struct MHD_Response *resp =
        http__json_response(json_pack("{s:s, s:s, s:b, s:o}", "file", name, "etag", etag,
                                      "written", written, "diagnostics", http__diags_json(d, name)));

    if (resp)
        MHD_add_response_header(resp, "ETag", etag);
    return resp;
}

static enum MHD_Result put_workflow(struct request *r, const char *name)
{
    struct ui *ui = r->ui;
    struct wf_diags d = {0};
    struct workflow *wf = NULL;
    const char *if_match = http__header(r, "If-Match"), *yaml;
    json_t *body = NULL;
    enum MHD_Result res;
    char old_tag[48], new_tag[48];
    size_t old_len, len;
    char *old = NULL;

    if (refuse_name(r, name, MHD_HTTP_NOT_FOUND, &res))
        return res;
    if (!(body = http__body_object(r, &res)) || !(yaml = body_yaml(r, body, &len, &res)))
        goto out;
    old = files__read(ui->workflows_fd, name, UI_BODY_MAX, &old_len);
    if (!old) {
        res = errno == ENOENT ? http__error(r, MHD_HTTP_NOT_FOUND, NULL, NULL, NULL,
                                            "no workflow file '%s': create it with POST "
                                            "/api/workflows",
                                            name)
                              : read_error(r, name, errno);
        goto out;
    }
    wf = workflows__load(name, yaml, len, NULL, 0, 0, &d);
    if (!wf) {
        res = http__error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, &d, name, NULL,
                          "'%s' is invalid: %zu error%s; the file was not written", name,
                          d.n_errors, d.n_errors == 1 ? "" : "s");
        goto out;
    }
    files__etag(old, old_len, old_tag, sizeof old_tag);
    if (if_match && strcmp(if_match, "*") != 0 && strcmp(if_match, old_tag) != 0) {
        res = http__error(r, MHD_HTTP_CONFLICT, NULL, NULL, json_pack("{s:s}", "etag", old_tag),
                          "'%s' changed on disk since it was read (If-Match %s, the file is "
                          "%s): read it again and merge",
                          name, if_match, old_tag);
        goto out;
    }
    if (old_len == len && memcmp(old, yaml, len) == 0) {
        res = http__queue(r, MHD_HTTP_OK, saved(name, old_tag, 0, &d));
        goto out;
    }
    if (files__write(ui->workflows_fd, name, yaml, len, 0, 0644) != 0) {
        res = http__error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL, NULL,
                          "cannot write '%s': %s", name, strerror(errno));
        goto out;
    }
    files__etag(yaml, len, new_tag, sizeof new_tag);
    log_printf(FB_LOG_INFO, "ui: saved %s/%s", ui->workflows_dir, name);
    res = http__queue(r, MHD_HTTP_OK, saved(name, new_tag, 1, &d));
out:
    workflow__free(wf);
    wf_diags_free(&d);
    free(old);
    json_decref(body);
    return res;
}

static enum MHD_Result post_workflow(struct request *r)
{
    struct ui *ui = r->ui;
    struct wf_diags d = {0};
    struct workflow *wf = NULL;
    json_t *body = NULL, *file;
    struct MHD_Response *resp;
    const char *name, *yaml;
    char *generated = NULL, location[UI_FILE_MAX + 32], tag[48], base[UI_FILE_MAX + 1];
    enum MHD_Result res;
    size_t len;

    if (!(body = http__body_object(r, &res)))
        goto out;
    file = json_object_get(body, "file");
    if (!json_is_string(file)) {
        res = http__error(r, MHD_HTTP_BAD_REQUEST, NULL, NULL, NULL,
                          "expected {\"file\": \"NAME.yaml\", \"yaml\": \"...\"}");
        goto out;
    }
    name = json_string_value(file);
    if (refuse_name(r, name, MHD_HTTP_BAD_REQUEST, &res))
        goto out;
    if (json_object_get(body, "yaml")) {
        if (!(yaml = body_yaml(r, body, &len, &res)))
            goto out;
    } else {
        /* A small valid workflow named after the file, for "New workflow". */
        snprintf(base, sizeof base, "%s", name);
        *strrchr(base, '.') = '\0';
        if (asprintf(&generated,
                     "workflow:\n  name: \"%s\"\n  tasks:\n    - name: \"START\"\n"
                     "      plugin: \"start\"\n      outputs: [\"TRUE\"]\n"
                     "    - name: \"END\"\n      plugin: \"end\"\n      inputs: [\"TRUE\"]\n",
                     base) < 0) {
            generated = NULL;
            res = http__error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL, NULL,
                              "out of memory");
            goto out;
        }
        yaml = generated;
        len = strlen(generated);
    }
    wf = workflows__load(name, yaml, len, NULL, 0, 0, &d);
    if (!wf) {
        res = http__error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, &d, name, NULL,
                          "'%s' is invalid: %zu error%s; the file was not created", name,
                          d.n_errors, d.n_errors == 1 ? "" : "s");
        goto out;
    }
    if (files__write(ui->workflows_fd, name, yaml, len, 1, 0644) != 0) {
        if (errno == EEXIST)
            res = http__error(r, MHD_HTTP_CONFLICT, NULL, NULL, NULL,
                              "'%s' exists: save it with PUT /api/workflows/%s", name, name);
        else
            res = http__error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL, NULL,
                              "cannot create '%s': %s", name, strerror(errno));
        goto out;
    }
    log_printf(FB_LOG_INFO, "ui: created %s/%s", ui->workflows_dir, name);
    files__etag(yaml, len, tag, sizeof tag);
    resp = saved(name, tag, 1, &d);
    snprintf(location, sizeof location, "/api/workflows/%s", name);
    if (resp)
        MHD_add_response_header(resp, "Location", location);
    res = http__queue(r, MHD_HTTP_CREATED, resp);
out:
    free(generated);
    workflow__free(wf);
    wf_diags_free(&d);
    json_decref(body);
    return res;
}

enum MHD_Result api__workflows(struct request *r, const char *rest)
{
    int get = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;

    if (!rest || !*rest) {
        if (get)
            return list_workflows(r);
        if (strcmp(r->method, "POST") == 0)
            return post_workflow(r);
        return api__method_not_allowed(r, "GET, POST");
    }
    if (get)
        return get_workflow(r, rest);
    if (strcmp(r->method, "PUT") == 0)
        return put_workflow(r, rest);
    return api__method_not_allowed(r, "GET, PUT");
}

enum MHD_Result api__validate(struct request *r)
{
    struct wf_diags d = {0};
    struct workflow *wf = NULL;
    json_t *body = NULL, *file;
    const char *yaml, *label = DEFAULT_LABEL;
    enum MHD_Result res;
    size_t len;

    if (strcmp(r->method, "POST") != 0)
        return api__method_not_allowed(r, "POST");
    if (!(body = http__body_object(r, &res)) || !(yaml = body_yaml(r, body, &len, &res)))
        goto out;
    file = json_object_get(body, "file");
    if (json_is_string(file) && json_string_length(file) > 0 && json_string_length(file) <= 256)
        label = json_string_value(file);
    wf = workflows__load(label, yaml, len, NULL, 0, 0, &d);
    res = http__json(r, MHD_HTTP_OK,
                     json_pack("{s:b, s:o, s:o}", "valid", wf != NULL, "model", model_json(wf),
                               "diagnostics", http__diags_json(&d, label)));
out:
    workflow__free(wf);
    wf_diags_free(&d);
    json_decref(body);
    return res;
}

/* emit's diagnostics ({severity, message, path, line, col}) with the file, as ours. */
static json_t *format_diags(json_t *diags, const char *file)
{
    size_t i;
    json_t *d;

    json_array_foreach(diags, i, d)
        json_object_set_new(d, "file", json_string(file));
    return diags;
}

enum MHD_Result api__format(struct request *r)
{
    struct ui *ui = r->ui;
    struct emit_options eo = {0};
    struct wf_load_options lo = {0};
    struct env_keep keep;
    json_t *body = NULL, *model, *file, *diags = NULL;
    const char *name = NULL, *label = DEFAULT_LABEL;
    char *text = NULL, *yaml = NULL;
    enum MHD_Result res;
    size_t len = 0;
    int rc;

    if (strcmp(r->method, "POST") != 0)
        return api__method_not_allowed(r, "POST");
    if (!(body = http__body_object(r, &res)))
        goto out;
    model = json_object_get(body, "model");
    file = json_object_get(body, "file");
    if (!json_is_object(model) || (file && !json_is_string(file))) {
        res = http__error(r, MHD_HTTP_BAD_REQUEST, NULL, NULL, NULL,
                          "expected {\"model\": {...}, \"file\": \"NAME.yaml\"} (file optional)");
        goto out;
    }
    if (file) {
        name = label = json_string_value(file);
        if (refuse_name(r, name, MHD_HTTP_BAD_REQUEST, &res))
            goto out;
        /* The file's text gives the comments, secrets and {{ENV:X}} the model cannot carry. */
        text = files__read(ui->workflows_fd, name, UI_BODY_MAX, &len);
        if (!text && errno != ENOENT) {
            res = read_error(r, name, errno);
            goto out;
        }
    }
    lo.lookup = plugins__lookup;
    lo.getenv_fn = keep_reference;
    lo.getenv_ctx = &keep;
    if (text && emit__same_model(model, name, text, len, &lo)) {
        /* Nothing changed: the file as it is, even if not in the canonical layout. */
        res = http__json(r, MHD_HTTP_OK, json_pack("{s:s%, s:b, s:b, s:[]}", "yaml", text, len,
                                                   "valid", 1, "unchanged", 1, "diagnostics"));
        goto out;
    }
    eo.source = text;
    eo.source_len = len;
    eo.file = name;
    eo.getenv_fn = keep_reference;
    eo.getenv_ctx = &keep;
    rc = emit__model_to_yaml(model, &eo, &lo, &yaml, &diags);
    if (rc < 0) {
        res = http__error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL, NULL, "out of memory");
        goto out;
    }
    if (!yaml) {
        res = http__error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, NULL, NULL,
                          json_pack("{s:o}", "diagnostics", format_diags(diags, label)),
                          "the model cannot be written as a workflow: see the diagnostics' "
                          "paths");
        diags = NULL;
        goto out;
    }
    res = http__json(r, MHD_HTTP_OK,
                     json_pack("{s:s, s:b, s:b, s:o}", "yaml", yaml, "valid", rc == 0,
                               "unchanged", 0, "diagnostics", format_diags(diags, label)));
    diags = NULL;
out:
    json_decref(diags);
    free(yaml);
    free(text);
    json_decref(body);
    return res;
}

enum MHD_Result api__graph(struct request *r, const char *name)
{
    struct ui *ui = r->ui;
    const char *format = http__arg(r, "format");
    struct wf_diags d = {0};
    struct workflow *wf = NULL;
    struct graph *g = NULL;
    char *text = NULL, *out = NULL;
    size_t len, out_len = 0;
    enum MHD_Result res;
    FILE *mem;

    if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0)
        return api__method_not_allowed(r, "GET");
    if (!format)
        format = "mermaid";
    if (strcmp(format, "mermaid") != 0 && strcmp(format, "dot") != 0)
        return http__error(r, MHD_HTTP_BAD_REQUEST, NULL, NULL, NULL,
                           "format must be mermaid or dot, got '%s'", format);
    if (refuse_name(r, name, MHD_HTTP_NOT_FOUND, &res))
        return res;
    text = files__read(ui->workflows_fd, name, UI_BODY_MAX, &len);
    if (!text)
        return read_error(r, name, errno);
    wf = workflows__load(name, text, len, NULL, 0, 0, &d);
    if (!wf) {
        res = http__error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, &d, name, NULL,
                          "'%s' is invalid: %zu error%s", name, d.n_errors,
                          d.n_errors == 1 ? "" : "s");
        goto out;
    }
    g = graph__new(wf);
    mem = g ? open_memstream(&out, &out_len) : NULL;
    if (!mem) {
        res = http__error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL, NULL, "out of memory");
        goto out;
    }
    if (strcmp(format, "dot") == 0)
        graph__print_dot(g, mem);
    else
        graph__print_mermaid(g, mem);
    fclose(mem);
    res = http__text(r, MHD_HTTP_OK, "text/plain; charset=utf-8", out, out_len);
out:
    free(out);
    graph__free(g);
    workflow__free(wf);
    wf_diags_free(&d);
    free(text);
    return res;
}
