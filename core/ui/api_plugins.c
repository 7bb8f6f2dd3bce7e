/*
 * api_plugins.c - GET /api/plugins (the palette) and POST /api/plugins (the
 * "New plugin" form) of `flowbus ui` (docs/http-api.md).
 *
 * The palette lists what a run can launch: every flowbus-NAME executable on
 * the plugin path in the order plugins__lookup searches it (the plugins
 * directory first, since ui.c put it first on FLOWBUS_PLUGIN_PATH), the first
 * of a name winning, each described by its own --describe. A describe is a
 * process start, so its answer is cached by path, size and modification time;
 * a plugin that hangs is killed after DESCRIBE_WAIT.
 *
 * A new plugin is written from one of the templates in core/ui/skeletons/
 * (embedded at build time), each a complete plugin in the style docs/
 * teaches: shell after tasks/examples/flowbus-shout, Python on the Python SDK,
 * C on the C SDK, built at once when a compiler and the SDK are found.
 */
#define _GNU_SOURCE /* asprintf, pipe2, POSIX_SPAWN_SETSID, explicit_bzero */
#include "internal.h"
#include "log.h"
#include "plugins.h"
#include "ui_skeletons.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#ifndef FLOWBUS_LIBEXECDIR
#define FLOWBUS_LIBEXECDIR "/usr/local/libexec/flowbus"
#endif

#define DESCRIBE_WAIT 5.0       /* seconds a --describe may take */
#define DESCRIBE_MAX (256 * 1024) /* bytes of a manifest */
#define BUILD_WAIT 60.0         /* seconds a C skeleton's build may take */
#define OUTPUT_MAX (64 * 1024)

struct plugin_cache {
    pthread_mutex_t lock;
    json_t *by_path; /* path -> {"size", "mtime", "manifest"} */
};

struct plugin_cache *plugins__cache_new(void)
{
    struct plugin_cache *c = calloc(1, sizeof *c);

    if (!c)
        return NULL;
    pthread_mutex_init(&c->lock, NULL);
    c->by_path = json_object();
    if (!c->by_path) {
        plugins__cache_free(c);
        return NULL;
    }
    return c;
}

void plugins__cache_free(struct plugin_cache *c)
{
    if (!c)
        return;
    json_decref(c->by_path);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/*
 * Runs argv with stdin and (unless keep_stderr) stderr on /dev/null, and
 * returns what it wrote on stdout (and stderr, with merge), up to
 * OUTPUT_MAX bytes, within wait seconds; NULL when it could not start. The
 * exit status goes to *status (-1 when it was killed at the deadline).
 */
static char *run_capture(char *const argv[], double wait, int merge, int *status)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none;
    char *out = malloc(OUTPUT_MAX + 1);
    size_t len = 0;
    int pipefd[2] = {-1, -1}, st = 0;
    double until = fb_clock_mono() + wait;
    pid_t pid = -1;

    *status = -1;
    if (!out || pipe2(pipefd, O_CLOEXEC) != 0) {
        free(out);
        return NULL;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    if (merge)
        posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
    else
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3); /* none of the server's descriptors */
    /* Its own process group, so that a hung one is killed with its children. */
    sigemptyset(&none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setsigmask(&attr, &none);
    if (posix_spawn(&pid, argv[0], &fa, &attr, argv, environ) != 0)
        pid = -1;
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(pipefd[1]);
    if (pid < 0) {
        close(pipefd[0]);
        free(out);
        return NULL;
    }
    for (;;) {
        struct pollfd p = {.fd = pipefd[0], .events = POLLIN};
        double left = until - fb_clock_mono();
        ssize_t k;
        if (left <= 0) {
            kill(-pid, SIGKILL);
            break;
        }
        if (poll(&p, 1, (int)(left * 1000) + 1) <= 0)
            continue;
        k = read(pipefd[0], out + len, len < OUTPUT_MAX ? OUTPUT_MAX - len : 1);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        if (len < OUTPUT_MAX)
            len += (size_t)k; /* past the cap, the rest is read and dropped */
    }
    close(pipefd[0]);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    *status = fb_clock_mono() >= until ? -1 : st;
    out[len] = '\0';
    return out;
}

/* Categories for the built-in plugins, whose manifests have none. */
static const char *default_category(const char *name)
{
    static const char *const table[][2] = {
        {"start", "flow"},      {"end", "flow"},        {"every", "triggers"},
        {"touched", "triggers"}, {"mqtt-in", "triggers"}, {"mqtt-out", "messaging"},
        {"df", "system"},       {"cmd", "system"},
    };

    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i][0], name) == 0)
            return table[i][1];
    return "other";
}

/* The manifest of one plugin, from the cache or its --describe, filled with defaults. */
static json_t *describe(struct ui *ui, const char *name, const char *path, int builtin)
{
    struct plugin_cache *c = ui->plugins;
    char *argv[] = {(char *)path, "--describe", NULL};
    struct stat st;
    json_t *entry, *m = NULL, *o;
    char *text;
    int status;

    if (stat(path, &st) != 0)
        return NULL;
    pthread_mutex_lock(&c->lock);
    entry = json_object_get(c->by_path, path);
    if (entry && json_integer_value(json_object_get(entry, "size")) == (json_int_t)st.st_size &&
        json_integer_value(json_object_get(entry, "mtime")) == (json_int_t)st.st_mtim.tv_sec &&
        json_integer_value(json_object_get(entry, "mtime_ns")) == (json_int_t)st.st_mtim.tv_nsec)
        m = json_deep_copy(json_object_get(entry, "manifest"));
    pthread_mutex_unlock(&c->lock);
    if (m)
        return m;
    o = NULL;
    text = run_capture(argv, DESCRIBE_WAIT, 0, &status);
    if (text && status == 0)
        o = json_loads(text, JSON_DISABLE_EOF_CHECK, NULL);
    if (json_is_object(o)) {
        m = o;
        json_object_set_new(m, "name", json_string(name));
        if (!json_is_string(json_object_get(m, "description")))
            json_object_set_new(m, "description", json_string(""));
        if (!json_is_string(json_object_get(m, "category")))
            json_object_set_new(m, "category", json_string(default_category(name)));
        if (!json_is_array(json_object_get(m, "inputs")))
            json_object_set_new(m, "inputs", json_array());
        if (!json_is_array(json_object_get(m, "outputs")))
            json_object_set_new(m, "outputs", json_array());
        if (!json_is_object(json_object_get(m, "params")))
            json_object_set_new(m, "params", json_object());
        if (!json_is_boolean(json_object_get(m, "requires_auth")))
            json_object_set_new(m, "requires_auth", json_false());
        if (!json_is_array(json_object_get(m, "permissions")))
            json_object_set_new(m, "permissions", json_array());
    } else {
        json_decref(o);
        m = json_pack("{s:s, s:s}", "name", name, "error",
                      !text        ? "cannot be started"
                      : status < 0 ? "--describe did not answer within 5 s"
                      : status     ? "--describe failed"
                                   : "--describe printed no JSON object");
    }
    free(text);
    json_object_set_new(m, "path", json_string(path));
    json_object_set_new(m, "builtin", json_boolean(builtin));
    pthread_mutex_lock(&c->lock);
    json_object_set_new(c->by_path, path,
                        json_pack("{s:I, s:I, s:I, s:O}", "size", (json_int_t)st.st_size, "mtime",
                                  (json_int_t)st.st_mtim.tv_sec, "mtime_ns",
                                  (json_int_t)st.st_mtim.tv_nsec, "manifest", m));
    pthread_mutex_unlock(&c->lock);
    return m;
}

/* 1 if name (after "flowbus-") is a plugin name as plugins__lookup accepts it. */
static int plugin_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 64)
        return 0;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

/* Adds every plugin of dir that no earlier directory had to list (names seen in seen). */
static void scan_dir(struct ui *ui, const char *dir, int builtin, json_t *seen, json_t *list)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    if (!d)
        return;
    while ((e = readdir(d))) {
        const char *name = e->d_name + 8;
        char path[PATH_MAX];
        struct stat st;
        json_t *m;
        if (strncmp(e->d_name, "flowbus-", 8) != 0 || !plugin_name(name) ||
            json_object_get(seen, name))
            continue;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path ||
            stat(path, &st) != 0 || !S_ISREG(st.st_mode) || access(path, X_OK) != 0)
            continue;
        m = describe(ui, name, path, builtin);
        if (!m)
            continue;
        json_object_set_new(seen, name, json_true());
        /* A test or benchmark program of a build tree says so: not for the palette. */
        if (json_is_true(json_object_get(m, "internal"))) {
            json_decref(m);
            continue;
        }
        json_array_append_new(list, m);
    }
    closedir(d);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "name")),
                  json_string_value(json_object_get(*(json_t *const *)b, "name")));
}

static enum MHD_Result list_plugins(struct request *r)
{
    struct ui *ui = r->ui;
    const char *env = getenv("FLOWBUS_PLUGIN_PATH");
    json_t *seen = json_object(), *list = json_array(), *sorted = json_array();
    char self[PATH_MAX], dir[PATH_MAX + 64], *slash;
    json_t **items;
    size_t n;

    /* The order of plugins__lookup: FLOWBUS_PLUGIN_PATH, next to flowbus, libexec. */
    for (const char *p = env; p && *p;) {
        size_t k = strcspn(p, ":");
        snprintf(dir, sizeof dir, "%.*s", (int)k, p);
        if (k)
            scan_dir(ui, dir, 0, seen, list);
        p += k + (p[k] == ':');
    }
    snprintf(self, sizeof self, "%s", ui->self_exe);
    if ((slash = strrchr(self, '/')))
        *slash = '\0';
    scan_dir(ui, self, 1, seen, list);
#ifdef FLOWBUS_LIBEXEC_REL
    snprintf(dir, sizeof dir, "%s/%s", self, FLOWBUS_LIBEXEC_REL);
    scan_dir(ui, dir, 1, seen, list);
#endif
    scan_dir(ui, FLOWBUS_LIBEXECDIR, 1, seen, list);
    n = json_array_size(list);
    items = calloc(n + 1, sizeof *items);
    for (size_t i = 0; items && i < n; i++)
        items[i] = json_array_get(list, i);
    if (items) {
        qsort(items, n, sizeof *items, by_name);
        for (size_t i = 0; i < n; i++)
            json_array_append(sorted, items[i]);
    }
    free(items);
    json_decref(seen);
    json_decref(list);
    return http__json(r, MHD_HTTP_OK, json_pack("{s:o}", "plugins", sorted));
}

/* ------------------------------------------------------------------------ */
/* The "New plugin" form                                                     */
/* ------------------------------------------------------------------------ */

/* Text for a template: replaces each @KEY@ of tmpl by its value in vars. Malloc'd. */
static char *fill(const char *tmpl, json_t *vars)
{
    size_t cap = strlen(tmpl) * 2 + 1024, len = 0;
    char *out = malloc(cap);

    for (const char *p = tmpl; out && *p;) {
        const char *end = p[0] == '@' ? strchr(p + 1, '@') : NULL;
        const char *v = NULL;
        size_t k;
        if (end) {
            char key[32];
            snprintf(key, sizeof key, "%.*s", (int)(end - p - 1), p + 1);
            v = (size_t)(end - p - 1) < sizeof key ? json_string_value(json_object_get(vars, key))
                                                   : NULL;
        }
        k = v ? strlen(v) : 1;
        if (len + k + 1 > cap) {
            char *grown = realloc(out, cap = (len + k + 1) * 2);
            if (!grown) {
                free(out);
                return NULL;
            }
            out = grown;
        }
        memcpy(out + len, v ? v : p, k);
        len += k;
        p = v ? end + 1 : p + 1;
    }
    if (out)
        out[len] = '\0';
    return out;
}

/* s in single quotes for sh: ' becomes '\'' (the manifest is one line of JSON). */
static char *sh_quoted_body(const char *s)
{
    size_t n = 0;
    char *out, *o;

    for (const char *p = s; *p; p++)
        n += *p == '\'' ? 4 : 1;
    out = o = malloc(n + 1);
    for (const char *p = s; out && *p; p++) {
        if (*p == '\'') {
            memcpy(o, "'\\''", 4);
            o += 4;
        } else {
            *o++ = *p;
        }
    }
    if (out)
        *o = '\0';
    return out;
}

/* s as the body of a C string literal: printable ASCII as is, the rest in octal. */
static char *c_literal_body(const char *s)
{
    char *out = malloc(strlen(s) * 4 + 1), *o = out;

    for (const unsigned char *p = (const unsigned char *)s; out && *p; p++) {
        if (*p >= 0x20 && *p < 0x7F && *p != '"' && *p != '\\' && *p != '?')
            *o++ = (char)*p;
        else
            o += sprintf(o, "\\%03o", *p);
    }
    if (out)
        *o = '\0';
    return out;
}

/* One line for a comment: control characters and "*\/" removed. */
static char *comment_text(const char *s)
{
    char *out = strdup(s);

    for (char *p = out; out && *p; p++)
        if ((unsigned char)*p < 0x20 || (p[0] == '*' && p[1] == '/'))
            *p = ' ';
    return out;
}

/* Checks a list of variable names; 0 with a message in err. */
static int check_names(json_t *list, const char *what, char *err, size_t errlen)
{
    size_t i;
    json_t *v;

    if (!list)
        return 1;
    if (!json_is_array(list)) {
        snprintf(err, errlen, "%s must be a list of variable names", what);
        return 0;
    }
    json_array_foreach(list, i, v) {
        if (!json_is_string(v) ||
            !fb_name_valid(FB_NAME_VAR, json_string_value(v), json_string_length(v))) {
            snprintf(err, errlen, "%s[%zu] is not a variable name: %s", what, i,
                     fb_name_rule(FB_NAME_VAR));
            return 0;
        }
    }
    return 1;
}

/* The manifest of the form, checked; NULL with a message in err. */
static json_t *form_manifest(json_t *body, char *err, size_t errlen)
{
    json_t *name = json_object_get(body, "name"), *desc = json_object_get(body, "description");
    json_t *cat = json_object_get(body, "category"), *in = json_object_get(body, "inputs");
    json_t *out = json_object_get(body, "outputs"), *params = json_object_get(body, "params");
    const char *key;
    json_t *spec;

    if (!json_is_string(name) || !plugin_name(json_string_value(name)) ||
        strspn(json_string_value(name), "abcdefghijklmnopqrstuvwxyz0123456789_-") !=
            json_string_length(name)) {
        snprintf(err, errlen, "name must be 1 to 64 lower-case letters, digits, '_' or '-'");
        return NULL;
    }
    if ((desc && !json_is_string(desc)) || (cat && !json_is_string(cat))) {
        snprintf(err, errlen, "description and category must be strings");
        return NULL;
    }
    for (const char *p = desc ? json_string_value(desc) : ""; *p; p++)
        if ((unsigned char)*p < 0x20) {
            snprintf(err, errlen, "description must be one line without control characters");
            return NULL;
        }
    if (!check_names(in, "inputs", err, errlen) || !check_names(out, "outputs", err, errlen))
        return NULL;
    if (params && !json_is_object(params)) {
        snprintf(err, errlen, "params must be {\"NAME\": {\"type\", \"default\", "
                 "\"description\"}}");
        return NULL;
    }
    json_object_foreach(params, key, spec) {
        json_t *type = json_object_get(spec, "type");
        if (!json_is_object(spec) || !fb_name_valid(FB_NAME_TASK, key, strlen(key)) ||
            (type && !json_is_string(type))) {
            snprintf(err, errlen, "param '%s' must be {\"type\": \"string\", \"default\": ..., "
                     "\"description\": \"...\"} with a name of letters, digits, '_' or '-'", key);
            return NULL;
        }
    }
    return json_pack("{s:O, s:s, s:s, s:o, s:o, s:o, s:[]}", "name", name, "description",
                     desc ? json_string_value(desc) : "", "category",
                     cat && json_string_length(cat) ? json_string_value(cat) : "custom",
                     "inputs", in ? json_deep_copy(in) : json_array(), "outputs",
                     out ? json_deep_copy(out) : json_array(), "params",
                     params ? json_deep_copy(params) : json_object(), "permissions");
}

/* Where the C SDK is: the build tree's, else the installed one. 0 if neither. */
static int find_sdk(char *inc, size_t isize, char *lib, size_t lsize)
{
#if defined(FLOWBUS_SDK_SOURCE_INCLUDE) && defined(FLOWBUS_SDK_BUILD_LIBDIR)
    snprintf(inc, isize, "%s", FLOWBUS_SDK_SOURCE_INCLUDE);
    snprintf(lib, lsize, "%s", FLOWBUS_SDK_BUILD_LIBDIR);
    if (access(FLOWBUS_SDK_SOURCE_INCLUDE "/flowbus/flowbus.h", R_OK) == 0 &&
        access(FLOWBUS_SDK_BUILD_LIBDIR "/libflowbus.so", R_OK) == 0)
        return 1;
#endif
#if defined(FLOWBUS_SDK_INCLUDEDIR) && defined(FLOWBUS_SDK_LIBDIR)
    snprintf(inc, isize, "%s", FLOWBUS_SDK_INCLUDEDIR);
    snprintf(lib, lsize, "%s", FLOWBUS_SDK_LIBDIR);
    if (access(FLOWBUS_SDK_INCLUDEDIR "/flowbus/flowbus.h", R_OK) == 0 &&
        access(FLOWBUS_SDK_LIBDIR "/libflowbus.so", R_OK) == 0)
        return 1;
#endif
    (void)inc, (void)isize, (void)lib, (void)lsize;
    return 0;
}

/* The Python SDK's places relative to the flowbus binary, as Python string literals. */
static char *python_paths(struct ui *ui)
{
    char self[PATH_MAX], *slash, *text = NULL;
    json_t *a, *b;
    char *sa, *sb;

    snprintf(self, sizeof self, "%s", ui->self_exe);
    if ((slash = strrchr(self, '/')))
        *slash = '\0';
    a = json_sprintf("%s/../share/flowbus/python", self);
    b = json_sprintf("%s/../../share/flowbus/python", self);
    sa = json_dumps(a, JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
    sb = json_dumps(b, JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
    if (sa && sb && asprintf(&text, "%s, %s", sa, sb) < 0)
        text = NULL;
    free(sa);
    free(sb);
    json_decref(a);
    json_decref(b);
    return text;
}

static enum MHD_Result create_plugin(struct request *r)
{
    struct ui *ui = r->ui;
    json_t *body = NULL, *m = NULL, *vars = NULL, *lang, *files = json_array();
    char err[256], file[96], src[96], path[PATH_MAX + 96], inc[PATH_MAX], lib[PATH_MAX];
    char *manifest = NULL, *quoted = NULL, *text = NULL, *comment = NULL, *pypath = NULL;
    char *build_cmd = NULL, *build_out = NULL, *found = NULL;
    const char *language, *name;
    enum MHD_Result res;
    int is_c, built = 0, status;
    struct stat st;

    if (!(body = http__body_object(r, &res)))
        goto out;
    lang = json_object_get(body, "language");
    language = json_is_string(lang) ? json_string_value(lang) : "";
    if (strcmp(language, "shell") != 0 && strcmp(language, "python") != 0 &&
        strcmp(language, "c") != 0) {
        res = http__error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, NULL, NULL, NULL,
                          "language must be shell, python or c");
        goto out;
    }
    if (!(m = form_manifest(body, err, sizeof err))) {
        res = http__error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, NULL, NULL, NULL, "%s", err);
        goto out;
    }
    name = json_string_value(json_object_get(m, "name"));
    is_c = strcmp(language, "c") == 0;
    snprintf(file, sizeof file, "flowbus-%s", name);
    snprintf(src, sizeof src, "flowbus-%s.c", name);
    found = plugins__lookup(NULL, name);
    if (fstatat(ui->plugins_fd, file, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
        (is_c && fstatat(ui->plugins_fd, src, &st, AT_SYMLINK_NOFOLLOW) == 0) || found) {
        res = http__error(r, MHD_HTTP_CONFLICT, NULL, NULL, NULL,
                          "a plugin '%s' exists already (on the plugin path or in %s)", name,
                          ui->plugins_dir);
        goto out;
    }
    manifest = json_dumps(m, JSON_COMPACT | (is_c ? 0 : JSON_ENSURE_ASCII));
    comment = comment_text(json_string_value(json_object_get(m, "description")));
    if (!manifest || !comment)
        goto oom;
    vars = json_pack("{s:s, s:s, s:s, s:s}", "NAME", name, "DESCRIPTION_C",
                     *comment ? comment : "a flowbus plugin", "DESCRIPTION_SH",
                     *comment ? comment : "a flowbus plugin", "DESCRIPTION_PY", comment);
    if (strcmp(language, "shell") == 0) {
        char *d = sh_quoted_body(comment);
        quoted = sh_quoted_body(manifest);
        if (!d || !quoted) {
            free(d);
            goto oom;
        }
        json_object_set_new(vars, "MANIFEST_SH", json_string(quoted));
        json_object_set_new(vars, "DESCRIPTION_SH", json_string(*d ? d : "a flowbus plugin"));
        free(d);
        text = fill((const char *)skeleton_sh, vars);
    } else if (strcmp(language, "python") == 0) {
        json_t *s = json_string(manifest);
        quoted = json_dumps(s, JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
        json_decref(s);
        pypath = python_paths(ui);
        if (!quoted || !pypath)
            goto oom;
        json_object_set_new(vars, "MANIFEST_PY", json_string(quoted));
        json_object_set_new(vars, "PYTHONPATHS", json_string(pypath));
        text = fill((const char *)skeleton_py, vars);
    } else {
        quoted = c_literal_body(manifest);
        if (!quoted)
            goto oom;
        json_object_set_new(vars, "MANIFEST_C", json_string(quoted));
        text = fill((const char *)skeleton_c, vars);
    }
    if (!text)
        goto oom;
    if (files__write(ui->plugins_fd, is_c ? src : file, text, strlen(text), 1,
                     is_c ? 0644 : 0755) != 0) {
        res = http__error(r, errno == EEXIST ? MHD_HTTP_CONFLICT : MHD_HTTP_INTERNAL_SERVER_ERROR,
                          NULL, NULL, NULL, "cannot write %s/%s: %s", ui->plugins_dir,
                          is_c ? src : file, strerror(errno));
        goto out;
    }
    json_array_append_new(files, json_string(is_c ? src : file));
    if (is_c) {
        int sdk = find_sdk(inc, sizeof inc, lib, sizeof lib);
        if (asprintf(&build_cmd,
                     "cc %s/%s -o %s/%s $(pkg-config --cflags --libs flowbus)", ui->plugins_dir,
                     src, ui->plugins_dir, file) < 0)
            build_cmd = NULL;
        if (ui->has_cc && sdk) {
            char ipath[PATH_MAX + 4], lpath[PATH_MAX + 4], rpath[PATH_MAX + 16],
                srcpath[PATH_MAX + 96];
            char sanitize[128] = "-O2";
            char *argv[] = {ui->cc, "-O2", "-o", path, srcpath, ipath, lpath, rpath,
                            "-lflowbus", sanitize, NULL};
            snprintf(path, sizeof path, "%s/%s", ui->plugins_dir, file);
            snprintf(srcpath, sizeof srcpath, "%s/%s", ui->plugins_dir, src);
            snprintf(ipath, sizeof ipath, "-I%s", inc);
            snprintf(lpath, sizeof lpath, "-L%s", lib);
            snprintf(rpath, sizeof rpath, "-Wl,-rpath,%s", lib);
#ifdef FLOWBUS_SKELETON_SANITIZE
            if (FLOWBUS_SKELETON_SANITIZE[0])
                snprintf(sanitize, sizeof sanitize, "-fsanitize=%s", FLOWBUS_SKELETON_SANITIZE);
#endif
            build_out = run_capture(argv, BUILD_WAIT, 1, &status);
            built = build_out && status == 0;
            if (built)
                json_array_append_new(files, json_string(file));
            else
                log_printf(FB_LOG_WARN, "ui: building %s failed: %s", srcpath,
                           build_out ? build_out : "cc did not start");
        }
    }
    log_printf(FB_LOG_INFO, "ui: wrote the %s plugin %s/%s", language, ui->plugins_dir,
               is_c ? src : file);
    snprintf(path, sizeof path, "%s/%s", ui->plugins_dir, file);
    {
        json_t *described = (!is_c || built) ? describe(ui, name, path, 0) : NULL;
        res = http__json(r, MHD_HTTP_CREATED,
                         json_pack("{s:s, s:s, s:s, s:O, s:b, s:s?, s:s?, s:o}", "name", name,
                                   "language", language, "path", path, "files", files, "built",
                                   !is_c || built, "build_command",
                                   is_c && !built ? build_cmd : NULL, "build_error",
                                   is_c && !built && build_out ? build_out : NULL, "plugin",
                                   described ? described : json_null()));
    }
    goto out;
oom:
    res = http__error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL, NULL, "out of memory");
out:
    free(found);
    free(build_cmd);
    free(build_out);
    free(pypath);
    free(text);
    free(quoted);
    free(comment);
    free(manifest);
    json_decref(vars);
    json_decref(files);
    json_decref(m);
    json_decref(body);
    return res;
}

enum MHD_Result api__plugins(struct request *r, const char *rest)
{
    if (rest && *rest)
        return http__error(r, MHD_HTTP_NOT_FOUND, NULL, NULL, NULL, "no such route: %s", r->path);
    if (strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0)
        return list_plugins(r);
    if (strcmp(r->method, "POST") == 0)
        return create_plugin(r);
    return api__method_not_allowed(r, "GET, POST");
}
