/*
 * workflow.h - the in-memory model of a workflow file and its loader.
 *
 * workflow__load reads a YAML workflow with libyaml, checks every key, type and
 * name, resolves {{ENV:X}} references and `--set` values, checks the graph
 * (producers, cycles, depends_on) and reports every problem it finds as a
 * diagnostic with the file, line and column. A workflow that loaded without
 * errors is complete and consistent: the launcher and tracker trust it.
 *
 * This header is what the rest of core uses; the files of core/model/ each
 * do one part of it: workflow.c the model itself (lookups, free, the name
 * rules), diag.c the diagnostics, document.c the YAML document, load*.c the
 * loader, checks.c the checks on the whole workflow (the one user of graph.h)
 * and json.c the JSON of a loaded workflow.
 */
#ifndef FLOWBUS_CORE_WORKFLOW_H
#define FLOWBUS_CORE_WORKFLOW_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

/* When a reactive task's process is started again after it ended. */
enum wf_restart { WF_RESTART_ON_FAILURE = 0, WF_RESTART_ALWAYS, WF_RESTART_NEVER };
/* Reactive: what a task's full event queue does (FLOWBUS_OVERFLOW, docs/reliability.md). */
/* Bounds of a reactive pool and its queue (load.h has the rest; an agent checks an offer by them). */
#define WF_MAX_WORKERS 1024
#define WF_MAX_QUEUE 100000

enum wf_overflow { WF_OVERFLOW_BLOCK = 0, WF_OVERFLOW_DROP_OLDEST, WF_OVERFLOW_DROP_NEWEST };

/* A position in the workflow file, 1-based; 0 when unknown. */
struct wf_pos {
    int line;
    int col;
};

/* A name with the place it was written. */
struct wf_name {
    char *name;
    struct wf_pos pos;
};

struct wf_list {
    struct wf_name *items;
    size_t n;
};

/* An initial variable from `env:` or `--set`. */
struct wf_var {
    char *name;
    char *value;  /* resolved: {{ENV:X}} already substituted */
    int secret;   /* AUTH_TOKEN and `secret: true`: never on the bus */
    int from_set; /* given with --set (overrides env:) */
    struct wf_pos pos;
};

struct wf_task {
    char *name;
    struct wf_pos pos;      /* position of the task's mapping */
    struct wf_pos name_pos; /* position of the name value */
    char *plugin;
    struct wf_pos plugin_pos;
    char *description; /* NULL when not given */
    char *plugin_path; /* resolved executable, absolute */
    struct wf_list inputs;
    struct wf_list outputs;
    struct wf_list depends_on;  /* from the task or from execution.depends_on */
    json_t *params;             /* a JSON object, never NULL */
    double timeout;             /* seconds; 0 = none */
    int async;                  /* accepted; behaviour in a later release */
    int workers;                /* accepted; 1 unless set (later release) */
    int retries;                /* attempts after the first; 0 unless set */
    double retry_delay;         /* seconds before the first retry (doubling after); 0: 1 s */
    double retry_max_delay;     /* cap on the delay between retries; 0: 60 s */
    struct wf_list trigger;     /* reactive: inputs whose events fire the task; empty: all */
    int queue;                  /* reactive: events kept while busy; 0: the default (100) */
    enum wf_restart restart;    /* reactive: when a process that ended is started again */
    enum wf_overflow overflow;  /* reactive: block (default), drop-oldest or drop-newest */
    struct wf_list permissions; /* permissions.required (later release) */
    int requires_auth;          /* accepted (later release) */
    struct wf_list runs_on;     /* agent labels, all required (docs/distributed.md); empty: local */
};

/* Where tasks get their permissions (the workflow's `auth:`); zero when absent. */
struct wf_auth {
    int set;
    char *url;        /* NULL: the SDK's default */
    double timeout;   /* seconds; 0: the SDK's default */
    double cache_ttl; /* seconds; 0: no cache; negative (or no auth:): the SDK default */
    char *ca_file;    /* NULL: the system's CA bundle */
};

struct workflow {
    struct wf_auth auth;
    int reactive;      /* `mode: reactive` (or run by `flowbus up`) */
    char *file;        /* as given on the command line */
    char *name;        /* `name:`, else the file's base name without extension */
    char *description; /* NULL when not given */
    char *version;     /* NULL when not given */
    struct wf_var *vars;
    size_t n_vars;
    struct wf_task *tasks;
    size_t n_tasks;
    uint32_t *task_index; /* private: a hash table of task indices, for workflow__find_task */
    size_t index_slots;   /* private: its size, a power of two */
    size_t index_used;    /* private: the tasks in it */
};

enum wf_severity { WF_ERROR, WF_WARNING };

struct wf_diag {
    enum wf_severity severity;
    struct wf_pos pos;
    char *message; /* "what is wrong, what was expected" */
};

struct wf_diags {
    struct wf_diag *items;
    size_t n;
    size_t n_errors;
};

/* A `--set VAR=VALUE` given on the command line. */
struct wf_setting {
    const char *name;
    const char *value;
};

/*
 * Answers whether a plugin exists; returns a malloc'd absolute path to its
 * executable, or NULL. The loader uses it to report unknown plugins and fills
 * wf_task.plugin_path with the result.
 */
typedef char *(*wf_plugin_lookup_fn)(void *ctx, const char *plugin);

struct wf_load_options {
    const struct wf_setting *settings; /* --set values */
    size_t n_settings;
    wf_plugin_lookup_fn lookup; /* NULL: every plugin is accepted, plugin_path stays NULL */
    void *lookup_ctx;
    /* Environment lookup for {{ENV:X}}; NULL means getenv. */
    const char *(*getenv_fn)(void *ctx, const char *name);
    void *getenv_ctx;
    int reactive; /* run in reactive mode whatever the file's `mode:` says (flowbus up) */
    int unset_env_ok; /* an unset {{ENV:X}} reads as "" without an error (flowbus graph) */
    /*
     * An unset {{ENV:X}} is a warning, not an error (flowbus ui's editor: a
     * file is edited and drawn without the values its runs will need).
     */
    int unset_env_warns;
    const char *lookup_where; /* where lookup searched, for the unknown-plugin error; may be NULL */
};

/*
 * Loads and checks path. Returns the workflow, or NULL when there was any
 * error; every error and warning is appended to diags (which the caller
 * initialises to zero and frees with wf_diags_free). The returned workflow is
 * owned by the caller (workflow__free).
 */
struct workflow *workflow__load(const char *path, const struct wf_load_options *opts,
                                struct wf_diags *diags);

/* Same, from a buffer; file is the name used in messages. */
struct workflow *workflow__load_buffer(const char *file, const char *text, size_t len,
                                       const struct wf_load_options *opts, struct wf_diags *diags);

void workflow__free(struct workflow *wf);
void wf_diags_free(struct wf_diags *diags);

/*
 * Prints every diagnostic as "FILE:LINE:COL: error: message" (or warning) to
 * stream, in file order.
 */
void wf_diags_print(const struct wf_diags *diags, const char *file, void *stream);

/* Index of the task called name, or -1. O(1): the loader keeps a name index. */
long workflow__find_task(const struct workflow *wf, const char *name);

/*
 * Adds task i of wf (whose name is set and not empty) to the name index that
 * workflow__find_task uses. Returns i; or, when a task already has that name,
 * that task's index (task i is then not added); or -1 when out of memory.
 */
long workflow__index_task(struct workflow *wf, size_t i);

/* 1 if the list holds name. */
int workflow__list_has(const struct wf_list *l, const char *name);

/* Appends a copy of name, written at pos, to l; 0 when out of memory. */
int workflow__list_push(struct wf_list *l, const char *name, struct wf_pos pos);

/*
 * The name of a restart policy as a workflow file writes it ("on-failure",
 * "always", "never"); NULL for a value outside the enum.
 */
const char *workflow__restart_name(enum wf_restart r);

/* Sets *out to the policy called s and returns 1; 0 when s (or NULL) names none. */
int workflow__restart_parse(const char *s, enum wf_restart *out);

/* The overflow policies, as a workflow file writes them ("block", ...), in enum order. */
extern const char *const WORKFLOW_OVERFLOW_NAMES[3];

/* The name of an overflow policy ("block", "drop-oldest", "drop-newest"); NULL if out of range. */
const char *workflow__overflow_name(enum wf_overflow o);

/* Parses an overflow policy's name into *out; 1 on success, 0 if s is none of them. */
int workflow__overflow_parse(const char *s, enum wf_overflow *out);

/*
 * The resolved workflow as JSON, for the `workflow` topic: secrets are replaced
 * by "<secret>". Caller owns the result (json_decref). The root object is the
 * caller's to extend, but the values below it are shared where they are equal
 * (between tasks, and each task's params with wf itself): read them, or
 * json_deep_copy one before changing it.
 */
json_t *workflow__to_json(const struct workflow *wf);

/*
 * The same text as json_dumps(root, JSON_COMPACT) where root is
 * workflow__to_json(wf) with extra's members set on it (json_object_update;
 * extra may be NULL and is left as it was), written one task at a time so
 * that the workflow never exists as a whole JSON tree: for thousands of tasks
 * the tree and the dump buffer are megabytes more than the text. Returns a
 * malloc'd string (caller frees), or NULL when out of memory.
 */
char *workflow__to_json_text(const struct workflow *wf, json_t *extra);

/*
 * 1 if name is a valid variable name: [A-Za-z_][A-Za-z0-9_]*, 1-64 chars (it
 * becomes an environment variable and an MQTT topic level). These name rules
 * are protocol.h's fb_name_valid; NULL is never valid.
 */
int workflow__valid_var_name(const char *name);


/* 1 if s is a valid run id: [A-Za-z0-9_-], 1-64 chars (it is an MQTT topic level). */
int workflow__valid_run_id(const char *s);

/* 1 if name is a valid task name: [A-Za-z0-9_][A-Za-z0-9_-]*, 1-64 chars. */
int workflow__valid_task_name(const char *name);

#endif
