/*
 * internal.h - what the files of `flowbus ui` (core/ui/) share.
 *
 * The server is split by concern: ui.c sets it up and tears it down (dirs,
 * token, broker, bus, daemon, the runs it started); server.c is the
 * libmicrohttpd daemon, its security checks and the routing; http.c the
 * replies (one error body for every error) and the access log; files.c the
 * file access confined to a directory; api_*.c the routes of
 * docs/http-api.md; static.c the editor's files; bus.c the one MQTT client
 * and its run view; sse.c the event logs and the streams.
 *
 * Locking: the bus thread feeds the run view under ui_bus's view lock, and
 * appends events to the SSE logs while it holds it, so a route that reads the
 * view and a log under the same lock sees them agree. The SSE hub has its
 * own lock, always taken after the view lock, never before.
 */
#ifndef FLOWBUS_CORE_UI_INTERNAL_H
#define FLOWBUS_CORE_UI_INTERNAL_H

#include <jansson.h>
#include <limits.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/types.h>

#include <flowbus/protocol.h>

#include "ui.h"
#include "workflow.h"

#define UI_BODY_MAX (1024 * 1024) /* bytes of a request body; more is 413 */
#define UI_DROP_MAX (16 * 1024 * 1024) /* bytes of a too large chunked body read before a cut */
#define UI_FILE_MAX 128           /* bytes of a workflow file name */
#define UI_MAX_STREAMS 64         /* open event streams; more is 503 */
#define UI_RUN_WAIT 10.0          /* seconds POST /api/runs waits for the run's record */
#define UI_RUN_LATE_WAIT 3.0      /* ... and, once the run has exited, for its records still in flight */

struct broker;
struct ui_bus;
struct sse_hub;
struct plugin_cache;

/* A run this server started: its coordinator's process. */
struct ui_child {
    pid_t pid;
    char run_id[FB_NAME_MAX + 1];
    int exited; /* reaped */
    int status; /* waitpid status, once exited */
};

struct ui {
    const struct ui_options *o;

    /* The directories, resolved, and open for openat. static_fd is -1 without an editor. */
    char workflows_dir[PATH_MAX], plugins_dir[PATH_MAX], static_dir[PATH_MAX];
    int workflows_fd, plugins_fd, static_fd;
    char self_exe[PATH_MAX]; /* the flowbus binary, for the runs it starts */

    /* Security: the token and what a Host header may name. */
    int token_required;
    char token[80];
    char cookie_name[48]; /* flowbus_ui_token_PORT */
    char listen_host[256]; /* as given, without brackets */
    unsigned port;         /* the bound port */
    int loopback, wildcard;
    char hostname[256];

    /* The broker: private (broker != NULL) or external. */
    struct broker *broker;
    char broker_url[256];
    const char *username, *password; /* NULL for none; private: ours */
    char private_user[32], private_pass[80];
    char env_dir[PATH_MAX], env_file[PATH_MAX + 16]; /* broker.env for the CLI; empty if none */

    struct ui_bus *bus;
    struct sse_hub *sse;
    struct plugin_cache *plugins;
    int has_cc; /* a C compiler was found for C plugin skeletons */
    char cc[PATH_MAX];

    pthread_mutex_t children_lock;
    struct ui_child *children;
    size_t n_children, cap_children;

    struct MHD_Daemon *daemon;
    _Atomic int stopping; /* set by the main thread, read by the handlers */
};

/* One HTTP request while it is handled (MHD's per-connection context). */
struct request {
    struct ui *ui;
    struct MHD_Connection *conn;
    const char *method;
    const char *path; /* the URL's path (MHD keeps the query string apart) */
    char *body;       /* NUL-terminated; NULL when there was none */
    size_t len, cap;
    int too_large;
    size_t dropped; /* bytes of a too large body read and dropped */
    double t0;
    unsigned status; /* for the access log */
    size_t bytes;
    int stream; /* the answer is an event stream */
};

/* ------------------------------------------------------------------------ */
/* http.c: replies                                                           */
/* ------------------------------------------------------------------------ */

/* Queues resp with status (adding the headers every answer has), destroys it. */
enum MHD_Result http__queue(struct request *r, unsigned status, struct MHD_Response *resp);

/* A JSON response of body (stolen); NULL when out of memory. */
struct MHD_Response *http__json_response(json_t *body);

/* Replies body (stolen) as JSON with status. */
enum MHD_Result http__json(struct request *r, unsigned status, json_t *body);

/* Replies text (copied) with status and content type. */
enum MHD_Result http__text(struct request *r, unsigned status, const char *ctype, const char *text,
                           size_t len);

/*
 * Replies the error body {"error", "status", "diagnostics"} with status: the
 * message from fmt, the diagnostics of d (may be NULL) as of file, and the
 * members of extra (may be NULL; stolen).
 */
enum MHD_Result http__error(struct request *r, unsigned status, const struct wf_diags *d,
                            const char *file, json_t *extra, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* The diagnostics of d as the JSON list of docs/http-api.md (new reference). */
json_t *http__diags_json(const struct wf_diags *d, const char *file);

/*
 * The body as a JSON object. NULL when it is not one: the 400 (or 415) is
 * then already queued in *res.
 */
json_t *http__body_object(struct request *r, enum MHD_Result *res);

/* A request header or a query argument, or NULL. */
const char *http__header(const struct request *r, const char *name);
const char *http__arg(const struct request *r, const char *name);

/* A JSON string of len bytes, with bytes that are not UTF-8 replaced by U+FFFD (*lossy = 1). */
json_t *http__string_lossy(const char *s, size_t len, int *lossy);

/* Logs the access line of a finished request (MHD's completion callback). */
void http__log_access(const struct request *r);

/* ------------------------------------------------------------------------ */
/* files.c: confinement                                                      */
/* ------------------------------------------------------------------------ */

/* 1 if name is a workflow file name of docs/http-api.md (checked before any file access). */
int files__workflow_name(const char *name);

/*
 * Reads the regular file name in dirfd (no symlink followed) into a malloc'd
 * NUL-terminated buffer of *len bytes, at most max. Returns NULL with errno:
 * ENOENT, ELOOP (a symlink), EINVAL (not a regular file), EFBIG, ...
 */
char *files__read(int dirfd, const char *name, size_t max, size_t *len);

/*
 * Writes text to name in dirfd atomically (temp file, fsync, rename). With
 * exclusive, fails with EEXIST rather than replace a file. mode is used for a
 * new file (an existing file keeps its own). Returns 0, or -1 with errno.
 */
int files__write(int dirfd, const char *name, const char *text, size_t len, int exclusive,
                 mode_t mode);

/* The ETag of content: a quoted hex SHA-256 prefix, into buf (at least 40 bytes). */
void files__etag(const char *text, size_t len, char *buf, size_t size);

/* ------------------------------------------------------------------------ */
/* workflows: loading as the editor sees a file (api_workflows.c)            */
/* ------------------------------------------------------------------------ */

/*
 * Loads text as `flowbus validate` does, but keeps {{ENV:X}} as written
 * (when X is set; an unset X is the loader's error) so that the model never
 * holds an environment's value. NULL when it has errors (all in diags).
 */
struct workflow *workflows__load(const char *file, const char *text, size_t len,
                                 const struct wf_setting *settings, size_t n_settings,
                                 int resolve_env, struct wf_diags *diags);

/* ------------------------------------------------------------------------ */
/* Routes                                                                    */
/* ------------------------------------------------------------------------ */

enum MHD_Result api__info(struct request *r);
enum MHD_Result api__workflows(struct request *r, const char *rest);
enum MHD_Result api__validate(struct request *r);
enum MHD_Result api__format(struct request *r);
enum MHD_Result api__graph(struct request *r, const char *rest);
enum MHD_Result api__plugins(struct request *r, const char *rest);
enum MHD_Result api__runs(struct request *r, const char *rest);
enum MHD_Result api__events(struct request *r);
enum MHD_Result static__serve(struct request *r);

/* Replies 405 with the Allow header for the methods allowed (e.g. "GET, PUT"). */
enum MHD_Result api__method_not_allowed(struct request *r, const char *allowed);

/* The plugin cache of api_plugins.c. */
struct plugin_cache *plugins__cache_new(void);
void plugins__cache_free(struct plugin_cache *c);

/* ------------------------------------------------------------------------ */
/* ui.c: the runs this server started                                        */
/* ------------------------------------------------------------------------ */

/* Remembers a started run's coordinator process. 0 when out of memory. */
int ui__add_child(struct ui *ui, pid_t pid, const char *run_id);

/* 1 if run_id was started by this server. */
int ui__started_here(struct ui *ui, const char *run_id);

/* Reaps the children that exited; returns whether pid (if > 0) has, and its status. */
int ui__reap(struct ui *ui, pid_t pid, int *status);

/* ------------------------------------------------------------------------ */
/* server.c                                                                  */
/* ------------------------------------------------------------------------ */

/* Starts the daemon on ui->o->listen; fills ui->port. 0 with a reason in err. */
int server__start(struct ui *ui, char *err, size_t errlen);
void server__stop(struct ui *ui);

#endif
