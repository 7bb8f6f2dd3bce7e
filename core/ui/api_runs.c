/*
 * api_runs.c - the run routes of `flowbus ui`: the runs on the broker, a
 * run's state, starting a run, stop/pause/resume, setting variables, and the
 * event streams (docs/http-api.md).
 *
 * Everything shown comes from the server's run view (bus.c), the view of
 * `flowbus status`, so a run started in a terminal is seen like one started
 * here. A run started here is an ordinary run: the flowbus binary itself,
 * spawned with an argument vector (never a shell) in a session of its own,
 * on the server's broker; it outlives the browser, and on an external broker
 * it outlives the server. Control commands and variables are the publishes
 * `flowbus stop/pause/resume/set` make, after the same checks.
 */
#define _GNU_SOURCE /* asprintf, pipe2, POSIX_SPAWN_SETSID, explicit_bzero */
#include "bus.h"
#include "internal.h"
#include "log.h"
#include "sse.h"
#include "suggest.h"

#include <flowbus/flowbus.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAX_SETTINGS 256

/* ------------------------------------------------------------------------ */
/* Reading                                                                   */
/* ------------------------------------------------------------------------ */

static enum MHD_Result list_runs(struct request *r)
{
    struct ui *ui = r->ui;
    struct run_view **runs;
    json_t *body, *list;
    size_t n = 0;

    bus__lock(ui->bus);
    runs = view__list(bus__view(ui->bus), &n);
    body = runs ? view__list_json(runs, n, ui->broker_url, fb_clock_wall()) : NULL;
    list = json_object_get(body, "runs");
    for (size_t i = 0; i < n && list; i++)
        json_object_set_new(json_array_get(list, i), "started_here",
                            json_boolean(ui__started_here(ui, runs[i]->run_id)));
    bus__unlock(ui->bus);
    free(runs);
    return http__json(r, MHD_HTTP_OK, body);
}

/* Checks a run id from the URL: 0 if valid, else queues a 400. */
static int bad_run_id(struct request *r, const char *id, enum MHD_Result *res)
{
    if (fb_name_valid(FB_NAME_RUN, id, strlen(id)))
        return 0;
    *res = http__error(r, MHD_HTTP_BAD_REQUEST, NULL, NULL, NULL,
                       "'%s' is not a run id: expected 1 to %d letters, digits, '-' or '_'", id,
                       FB_NAME_MAX);
    return 1;
}

static enum MHD_Result no_run(struct request *r, const char *id)
{
    return http__error(r, MHD_HTTP_NOT_FOUND, NULL, NULL, NULL,
                       "there is no run '%s' on %s (nothing retained under " FB_TOPIC_ROOT "/%s/)",
                       id, r->ui->broker_url, id);
}

/* The run id, on the broker, under the view lock (the caller unlocks); NULL if not there. */
static struct run_view *find_run(struct ui *ui, const char *id)
{
    struct run_view *rv = view__run(bus__view(ui->bus), id);

    return rv && view__exists(rv) ? rv : NULL;
}

static enum MHD_Result get_run(struct request *r, const char *id)
{
    struct ui *ui = r->ui;
    struct run_view *rv;
    json_t *body = NULL;

    bus__lock(ui->bus);
    if ((rv = find_run(ui, id)))
        body = bus__run_json(ui, rv);
    bus__unlock(ui->bus);
    if (!body)
        return no_run(r, id);
    return http__json(r, MHD_HTTP_OK, body);
}

/*
 * Opens the stream of log key for the request, from Last-Event-ID on, or
 * from the start, or after a snapshot when the log no longer holds what
 * comes next (snap builds it; called under the view lock, which the caller
 * holds, so that the snapshot and the log agree).
 */
static enum MHD_Result open_stream(struct request *r, const char *key,
                                   json_t *(*snap)(struct ui *ui, const char *key))
{
    struct ui *ui = r->ui;
    const char *given = http__header(r, "Last-Event-ID");
    unsigned long long origin = 0, first = 0, last = 0, after, have = 0;
    struct MHD_Response *resp;
    int has = 0, busy = 0, known;

    if (!given)
        given = http__arg(r, "last_event_id");
    if (given && *given) {
        char *end;
        have = strtoull(given, &end, 10);
        has = *end == '\0';
    }
    known = sse__range(ui->sse, key, &origin, &first, &last);
    if (!known)
        first = origin + 1, last = origin;
    if (has ? (have + 1 >= first && have <= last) : first == origin + 1) {
        after = has ? have : origin;
        resp = sse__open(ui->sse, r->conn, key, after, NULL, NULL, &busy);
    } else {
        /* What comes next is no longer kept (or the id is not one of ours). */
        resp = sse__open(ui->sse, r->conn, key, last, "snapshot", snap(ui, key), &busy);
    }
    if (!resp)
        return http__error(r, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, NULL, NULL,
                           busy ? "too many open event streams (at most %d)"
                                : "the server is stopping, or out of memory (%d streams max)",
                           UI_MAX_STREAMS);
    r->stream = 1;
    /* A stream is quiet for long stretches: the keepalives tell a dead peer. */
    MHD_set_connection_option(r->conn, MHD_CONNECTION_OPTION_TIMEOUT, 0);
    return http__queue(r, MHD_HTTP_OK, resp);
}

static json_t *run_snapshot(struct ui *ui, const char *key)
{
    struct run_view *rv = find_run(ui, key);

    return rv ? bus__run_json(ui, rv) : json_object();
}

static json_t *list_snapshot(struct ui *ui, const char *key)
{
    size_t n = 0;
    struct run_view **runs = view__list(bus__view(ui->bus), &n);
    json_t *body = runs ? view__list_json(runs, n, ui->broker_url, fb_clock_wall()) : NULL;

    (void)key;
    free(runs);
    return body ? body : json_object();
}

static enum MHD_Result run_events(struct request *r, const char *id)
{
    struct ui *ui = r->ui;
    enum MHD_Result res;

    if (strcmp(r->method, "GET") != 0)
        return api__method_not_allowed(r, "GET");
    bus__lock(ui->bus);
    if (!find_run(ui, id)) {
        bus__unlock(ui->bus);
        return no_run(r, id);
    }
    res = open_stream(r, id, run_snapshot);
    bus__unlock(ui->bus);
    return res;
}

enum MHD_Result api__events(struct request *r)
{
    struct ui *ui = r->ui;
    enum MHD_Result res;

    if (strcmp(r->method, "GET") != 0)
        return api__method_not_allowed(r, "GET");
    bus__lock(ui->bus);
    res = open_stream(r, "", list_snapshot);
    bus__unlock(ui->bus);
    return res;
}

/* ------------------------------------------------------------------------ */
/* Control and variables                                                     */
/* ------------------------------------------------------------------------ */

static enum MHD_Result control(struct request *r, const char *id, enum fb_control cmd)
{
    struct ui *ui = r->ui;
    const char *name = fb_control_name(cmd);
    char topic[FB_TOPIC_MAX], payload[32], state[32] = "";
    struct run_view *rv;
    int final = 0, lost = 0, paused = 0;
    enum fb_err e;
    size_t len;

    bus__lock(ui->bus);
    rv = find_run(ui, id);
    if (rv) {
        final = fb_run_state_is_final(rv->state);
        lost = rv->state == FB_RUN_LOST;
        paused = rv->paused;
        snprintf(state, sizeof state, "%s", view__state_text(rv));
    }
    bus__unlock(ui->bus);
    if (!rv)
        return no_run(r, id);
    if (final)
        return http__error(r, MHD_HTTP_CONFLICT, NULL, NULL, NULL,
                           "run '%s' has already finished (%s): nothing to %s", id, state, name);
    if (lost)
        return http__error(r, MHD_HTTP_CONFLICT, NULL, NULL, NULL,
                           "run '%s' has no coordinator (its state is '%s'): nobody would obey "
                           "the %s; `flowbus resume %s` takes the run over",
                           id, state, name, id);
    if (cmd == FB_CONTROL_RESUME && !paused)
        return http__error(r, MHD_HTTP_CONFLICT, NULL, NULL, NULL,
                           "run '%s' is not paused: nothing to resume", id);
    fb_topic_format(topic, sizeof topic, FB_TOPIC_CONTROL, id, NULL);
    len = fb_control_format(payload, sizeof payload, cmd);
    e = bus__publish(ui->bus, topic, payload, len);
    if (e != FB_OK)
        return http__error(r, MHD_HTTP_BAD_GATEWAY, NULL, NULL, NULL,
                           "the broker at %s did not confirm the %s request on %s: %s",
                           ui->broker_url, name, topic, fb_strerror(e));
    log_printf(FB_LOG_INFO, "ui: %s requested for run %s", name, id);
    return http__json(r, MHD_HTTP_ACCEPTED, json_pack("{s:s, s:s}", "run_id", id, "cmd", name));
}

/* Checks name against the run (a variable of its workflow, not a secret); replies if not. */
static int refuse_var(struct request *r, const struct run_view *rv, const char *name,
                      enum MHD_Result *res)
{
    const struct view_var *v = view__var(rv, name);
    const char **known;
    char hint[512];

    if (v && v->key.wf_pos != VIEW_NOT_IN_WORKFLOW) {
        if (!v->secret)
            return 0;
        *res = http__error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, NULL, NULL, NULL,
                           "'%s' is a secret of run '%s': secrets reach tasks through their "
                           "environment only, never over the bus",
                           name, rv->run_id);
        return 1;
    }
    known = calloc(rv->n_workflow_vars + 1, sizeof *known);
    for (size_t i = 0; known && i < rv->n_workflow_vars; i++)
        known[i] = rv->vars[i].key.name;
    suggest__hint(hint, sizeof hint, name, known, known ? rv->n_workflow_vars : 0);
    free(known);
    *res = http__error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, NULL, NULL, NULL,
                       "run '%s' has no variable '%s'%s", rv->run_id, name, hint);
    return 1;
}

static enum MHD_Result set_vars(struct request *r, const char *id)
{
    struct ui *ui = r->ui;
    json_t *body = NULL, *value, *done = json_array();
    struct run_view *rv;
    const char *name;
    enum MHD_Result res;
    int refused = 0;

    if (!(body = http__body_object(r, &res)))
        goto out;
    if (json_object_size(body) == 0) {
        res = http__error(r, MHD_HTTP_BAD_REQUEST, NULL, NULL, NULL,
                          "expected {\"VAR\": \"value\", ...} with at least one variable");
        goto out;
    }
    json_object_foreach(body, name, value) {
        if (!json_is_string(value) || !fb_name_valid(FB_NAME_VAR, name, strlen(name))) {
            res = http__error(r, MHD_HTTP_BAD_REQUEST, NULL, NULL, NULL,
                              "'%s' must be a variable name (%s) with a string value", name,
                              fb_name_rule(FB_NAME_VAR));
            goto out;
        }
    }
    /* All or nothing, as `flowbus set`: every name is checked before the first publish. */
    bus__lock(ui->bus);
    rv = find_run(ui, id);
    if (!rv) {
        bus__unlock(ui->bus);
        res = no_run(r, id);
        goto out;
    }
    if (!rv->has_workflow || fb_run_state_is_final(rv->state)) {
        res = http__error(r, MHD_HTTP_CONFLICT, NULL, NULL, NULL,
                          rv->has_workflow ? "run '%s' has finished: no task is left to read a "
                                             "variable"
                                           : "run '%s' has no retained workflow, so its "
                                             "variables are unknown",
                          id);
        refused = 1;
    }
    json_object_foreach(body, name, value) {
        if (refused || refuse_var(r, rv, name, &res)) {
            refused = 1;
            break;
        }
    }
    bus__unlock(ui->bus);
    if (refused)
        goto out;
    json_object_foreach(body, name, value) {
        char topic[FB_TOPIC_MAX];
        const char *payload;
        /* The empty value travels as one NUL byte (docs/protocol.md). */
        size_t len = fb_value_encode(json_string_value(value), &payload);
        enum fb_err e;
        fb_topic_format(topic, sizeof topic, FB_TOPIC_VAR, id, name);
        e = bus__publish(ui->bus, topic, payload, len);
        if (e != FB_OK) {
            res = http__error(r, MHD_HTTP_BAD_GATEWAY, NULL, NULL, NULL,
                              "the broker did not confirm %s: %s", topic, fb_strerror(e));
            goto out;
        }
        json_array_append_new(done, json_string(name));
    }
    res = http__json(r, MHD_HTTP_OK, json_pack("{s:s, s:O}", "run_id", id, "set", done));
out:
    json_decref(done);
    json_decref(body);
    return res;
}

/* ------------------------------------------------------------------------ */
/* Starting a run                                                            */
/* ------------------------------------------------------------------------ */

/* A run id from the file name, the time and 16 random bits: "disk-monitor-20261207-123456-4f2a". */
static void new_run_id(const char *file, char *buf, size_t size)
{
    char base[24];
    unsigned char rnd[2] = {0, 0};
    time_t now = time(NULL);
    struct tm tm;
    size_t n = 0;

    for (const char *p = file; *p && *p != '.' && n + 1 < sizeof base; p++)
        base[n++] = fb_name_valid(FB_NAME_RUN, p, 1) ? *p : '-';
    base[n] = '\0';
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        rnd[0] = (unsigned char)getpid();
    localtime_r(&now, &tm);
    snprintf(buf, size, "%s-%04d%02d%02d-%02d%02d%02d-%02x%02x", n ? base : "run",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             rnd[0], rnd[1]);
}

struct child_watch {
    struct ui *ui;
    pid_t pid;
    int status;
    int exited;
};

static int child_exited(void *ctx)
{
    struct child_watch *w = ctx;

    if (!w->exited)
        w->exited = ui__reap(w->ui, w->pid, &w->status);
    return w->exited;
}

/* Spawns `flowbus run|up PATH --broker URL --run-id ID [--set V=X]...` in its own session. */
static pid_t spawn_run(struct ui *ui, const char *verb, const char *path, const char *id,
                       char **sets, size_t n_sets)
{
    char *argv[8 + 2 * MAX_SETTINGS];
    posix_spawnattr_t attr;
    posix_spawn_file_actions_t fa;
    sigset_t none, defaults;
    size_t a = 0;
    pid_t pid = -1;
    int rc;

    argv[a++] = ui->self_exe;
    argv[a++] = (char *)verb;
    argv[a++] = (char *)path;
    argv[a++] = "--broker";
    argv[a++] = ui->broker_url;
    argv[a++] = "--run-id";
    argv[a++] = (char *)id;
    for (size_t i = 0; i < n_sets; i++) {
        argv[a++] = "--set";
        argv[a++] = sets[i];
    }
    argv[a] = NULL;
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_init(&fa);
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGHUP);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGCHLD);
    /* Its own session: a Ctrl-C in the server's terminal, or the browser
     * going away, is not the run's end. The server blocks the signals it
     * reads from a signalfd; the run starts with none blocked. */
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    /* Paho's sockets are not close-on-exec: without this the run would hold
     * the server's broker connections for as long as it lives. */
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    rc = posix_spawn(&pid, ui->self_exe, &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return pid;
}

static enum MHD_Result start_run(struct request *r)
{
    struct ui *ui = r->ui;
    json_t *body = NULL, *file, *set, *mode, *rid, *value;
    struct wf_setting settings[MAX_SETTINGS];
    char *sets[MAX_SETTINGS] = {0};
    size_t n_sets = 0, len;
    struct wf_diags d = {0};
    struct workflow *wf = NULL;
    struct child_watch w = {ui, -1, 0, 0};
    char id[FB_NAME_MAX + 1], path[PATH_MAX + UI_FILE_MAX + 2], location[128];
    const char *name, *verb = "run", *key;
    struct MHD_Response *resp;
    enum MHD_Result res;
    char *text = NULL;
    int taken, visible;

    if (!(body = http__body_object(r, &res)))
        goto out;
    file = json_object_get(body, "file");
    set = json_object_get(body, "set");
    mode = json_object_get(body, "mode");
    rid = json_object_get(body, "run_id");
    if (!json_is_string(file) || (set && !json_is_object(set)) ||
        (mode && !json_is_string(mode)) || (rid && !json_is_string(rid))) {
        res = http__error(r, MHD_HTTP_BAD_REQUEST, NULL, NULL, NULL,
                          "expected {\"file\": \"NAME.yaml\", \"set\": {\"VAR\": \"value\"}, "
                          "\"mode\": \"oneshot\"|\"reactive\", \"run_id\": \"ID\"} (all but file "
                          "optional)");
        goto out;
    }
    name = json_string_value(file);
    if (!files__workflow_name(name)) {
        res = http__error(r, strchr(name, '/') || strstr(name, "..") ? MHD_HTTP_FORBIDDEN
                                                                      : MHD_HTTP_NOT_FOUND,
                          NULL, NULL, NULL, "'%s' is not a file of the workflows directory", name);
        goto out;
    }
    if (mode && strcmp(json_string_value(mode), "oneshot") != 0 &&
        strcmp(json_string_value(mode), "reactive") != 0) {
        res = http__error(r, MHD_HTTP_BAD_REQUEST, NULL, NULL, NULL,
                          "mode must be oneshot or reactive, got '%s'", json_string_value(mode));
        goto out;
    }
    json_object_foreach(set, key, value) {
        if (!json_is_string(value) || n_sets == MAX_SETTINGS ||
            !fb_name_valid(FB_NAME_VAR, key, strlen(key))) {
            res = http__error(r, MHD_HTTP_BAD_REQUEST, NULL, NULL, NULL,
                              "set: '%s' must be a variable name with a string value (at most %d)",
                              key, MAX_SETTINGS);
            goto out;
        }
        if (asprintf(&sets[n_sets], "%s=%s", key, json_string_value(value)) < 0) {
            sets[n_sets] = NULL;
            res = http__error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL, NULL,
                              "out of memory");
            goto out;
        }
        settings[n_sets].name = key;
        settings[n_sets].value = json_string_value(value);
        n_sets++;
    }
    text = files__read(ui->workflows_fd, name, UI_BODY_MAX, &len);
    if (!text) {
        res = http__error(r, errno == ENOENT ? MHD_HTTP_NOT_FOUND : MHD_HTTP_FORBIDDEN, NULL, NULL,
                          NULL, "cannot read workflow '%s': %s", name, strerror(errno));
        goto out;
    }
    /* Loaded as the run will load it, with the server's environment. */
    wf = workflows__load(name, text, len, settings, n_sets, 1, &d);
    if (!wf) {
        res = http__error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, &d, name, NULL,
                          "'%s' is invalid: %zu error%s; nothing was started", name, d.n_errors,
                          d.n_errors == 1 ? "" : "s");
        goto out;
    }
    for (size_t i = 0; i < wf->n_vars; i++)
        if (wf->vars[i].secret && wf->vars[i].from_set) {
            res = http__error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, NULL, NULL, NULL,
                              "'%s' is a secret: it cannot be set from the browser (give it to "
                              "the server's environment and use {{ENV:%s}})",
                              wf->vars[i].name, wf->vars[i].name);
            goto out;
        }
    if (mode && strcmp(json_string_value(mode), "reactive") == 0)
        verb = "up";
    else if (mode && wf->reactive) {
        res = http__error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, NULL, NULL, NULL,
                          "'%s' says mode: reactive; it cannot run one-shot", name);
        goto out;
    }
    if (rid) {
        snprintf(id, sizeof id, "%s", json_string_value(rid));
        if (!fb_name_valid(FB_NAME_RUN, json_string_value(rid), json_string_length(rid))) {
            res = http__error(r, MHD_HTTP_BAD_REQUEST, NULL, NULL, NULL,
                              "run_id: expected 1 to %d letters, digits, '-' or '_'",
                              FB_NAME_MAX);
            goto out;
        }
    } else {
        new_run_id(name, id, sizeof id);
    }
    bus__lock(ui->bus);
    taken = find_run(ui, id) != NULL;
    bus__unlock(ui->bus);
    if (taken) {
        res = http__error(r, MHD_HTTP_CONFLICT, NULL, NULL, NULL,
                          "run id '%s' is already used on this broker", id);
        goto out;
    }
    snprintf(path, sizeof path, "%s/%s", ui->workflows_dir, name);
    w.pid = spawn_run(ui, verb, path, id, sets, n_sets);
    if (w.pid < 0 || !ui__add_child(ui, w.pid, id)) {
        res = http__error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL, NULL,
                          "cannot start %s: %s", ui->self_exe, strerror(errno));
        goto out;
    }
    log_printf(FB_LOG_INFO, "ui: started run %s of %s (pid %ld)", id, name, (long)w.pid);
    visible = bus__wait_run(ui->bus, id, UI_RUN_WAIT, child_exited, &w);
    /* A short run can publish its records and exit before this server's own
     * subscription has delivered them (the broker holds them retained): once
     * the child is gone, give the records a moment to arrive before calling
     * the run lost. */
    if (!visible && w.exited)
        visible = bus__wait_run(ui->bus, id, UI_RUN_LATE_WAIT, NULL, NULL);
    if (!visible) {
        if (w.exited) {
            res = http__error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL, NULL,
                              "the run exited (%s %d) before it reached the broker; the "
                              "server's log has its messages",
                              WIFEXITED(w.status) ? "code" : "signal",
                              WIFEXITED(w.status) ? WEXITSTATUS(w.status) : WTERMSIG(w.status));
            goto out;
        }
        /* Still starting on a slow machine: it is not lost, only not visible yet. */
        res = http__json(r, MHD_HTTP_ACCEPTED, json_pack("{s:s, s:I, s:b}", "run_id", id, "pid",
                                                         (json_int_t)w.pid, "visible", 0));
        goto out;
    }
    resp = http__json_response(
        json_pack("{s:s, s:I, s:b}", "run_id", id, "pid", (json_int_t)w.pid, "visible", 1));
    snprintf(location, sizeof location, "/api/runs/%s", id);
    if (resp)
        MHD_add_response_header(resp, "Location", location);
    res = http__queue(r, MHD_HTTP_CREATED, resp);
out:
    for (size_t i = 0; i < n_sets; i++)
        free(sets[i]);
    free(text);
    workflow__free(wf);
    wf_diags_free(&d);
    json_decref(body);
    return res;
}

enum MHD_Result api__runs(struct request *r, const char *rest)
{
    int get = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
    int post = strcmp(r->method, "POST") == 0;
    char id[FB_NAME_MAX + 2];
    const char *slash, *action;
    enum MHD_Result res;
    size_t n;

    if (!rest || !*rest) {
        if (get)
            return list_runs(r);
        if (post)
            return start_run(r);
        return api__method_not_allowed(r, "GET, POST");
    }
    slash = strchr(rest, '/');
    n = slash ? (size_t)(slash - rest) : strlen(rest);
    if (n >= sizeof id)
        n = sizeof id - 1; /* too long for a run id: refused below */
    memcpy(id, rest, n);
    id[n] = '\0';
    if (bad_run_id(r, id, &res))
        return res;
    action = slash ? slash + 1 : NULL;
    if (!action) {
        if (get)
            return get_run(r, id);
        return api__method_not_allowed(r, "GET");
    }
    if (strcmp(action, "events") == 0)
        return run_events(r, id);
    if (strcmp(action, "stop") == 0 || strcmp(action, "pause") == 0 ||
        strcmp(action, "resume") == 0 || strcmp(action, "set") == 0) {
        if (!post)
            return api__method_not_allowed(r, "POST");
        if (strcmp(action, "set") == 0)
            return set_vars(r, id);
        return control(r, id,
                       strcmp(action, "stop") == 0    ? FB_CONTROL_STOP
                       : strcmp(action, "pause") == 0 ? FB_CONTROL_PAUSE
                                                      : FB_CONTROL_RESUME);
    }
    return http__error(r, MHD_HTTP_NOT_FOUND, NULL, NULL, NULL, "no such route: %s", r->path);
}
