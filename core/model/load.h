/*
 * load.h - what the loader's files share: its state, the node budget and the
 * readers of typed fields (load_fields.c), and the readers of the parts of a
 * workflow (load_env.c, load_tasks.c) that load.c calls in order.
 *
 * Every reader reports what is wrong with the node it reads and returns, so
 * that the walk goes on after an error and one run reports them all.
 */
#ifndef FLOWBUS_CORE_MODEL_LOAD_H
#define FLOWBUS_CORE_MODEL_LOAD_H

#include "document.h"
#include "workflow.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Nodes visited, aliases expanded, before the file is refused as a bomb. The
 * walk visits each node of the document a few times, so a large file without
 * aliases gets its own size (times VISITS_PER_NODE) on top: only expansion
 * through aliases can exhaust the budget.
 */
#define NODE_BUDGET 1000000
#define VISITS_PER_NODE 4
/*
 * The largest workflow file read (load_file.c): 16 MiB, over 100 times the
 * largest real workflow (a 1,000-task file is about 100 KB).
 */
#define WF_MAX_FILE_SIZE (16 * 1024 * 1024)

/*
 * The bounds of the numeric fields, far above what a real workflow uses and
 * below what would exhaust the machine (20,000,000 workers made `flowbus up`
 * grow to 1.9 GB): docs/workflow-format.md lists them.
 */
#define MAX_TIMEOUT (30.0 * 24 * 3600) /* timeout, retry delays, auth timeout: 30 days */
#define MAX_WORKERS WF_MAX_WORKERS
#define MAX_RETRIES 1000
#define MAX_QUEUE WF_MAX_QUEUE

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/*
 * The name rules (workflow__valid_var_name, workflow__valid_task_name) as the
 * loader's messages have always said them. The variable rule is word for word
 * fb_name_rule(FB_NAME_VAR); the task rule says what fb_name_rule(FB_NAME_TASK)
 * says in other words, and messages do not change.
 */
#define VAR_NAME_RULE                                                                              \
    "use letters, digits and '_', not starting with a digit, at most 64 characters"
#define TASK_NAME_RULE                                                                             \
    "use letters, digits, '_' and '-', starting with a letter, digit or '_', at most 64 "          \
    "characters"

struct loader {
    struct ydoc *doc;
    const struct wf_load_options *opts;
    struct wf_diags *diags;
    struct workflow *wf;
    size_t visited;
    size_t budget;
    int over_budget;
    size_t cap_tasks;
    size_t cap_vars;
    json_t *var_index; /* env variable name -> index in wf->vars */
};

/* A key of a fixed-schema mapping, once read. */
struct field {
    struct ynode *key;
    struct ynode *value;
};

/*
 * Returns the node with this id, counting it against the budget; NULL once the
 * budget is spent (reported once), so that every walk stops.
 */
struct ynode *load__visit(struct loader *L, uint32_t id);

/* Describes a node for "got ..." in messages, into buf. */
const char *load__describe(const struct ynode *n, char *buf, size_t size);

/* A scalar as a boolean, a finite number or an int; 0 (out untouched) when it is not one. */
int load__parse_bool(const struct ynode *n, int *out);
int load__parse_number(const struct ynode *n, double *out);
int load__parse_int(const struct ynode *n, long *out);

/*
 * Reads a mapping with a fixed set of keys into fields[] (indexed like keys).
 * Reports keys that are not scalars, unknown keys (with a did-you-mean) and
 * duplicates; where names the mapping in messages ("task 'DF'").
 */
void load__read_fields(struct loader *L, struct ynode *map, const char *const *keys, size_t n_keys,
                       const char *where, struct field *fields);

/* Returns the value of a string field, or NULL (reporting a wrong type). */
const char *load__string_field(struct loader *L, const struct field *f, const char *where);

/*
 * Reads an optional duration in seconds (fractions allowed), 0 to MAX_TIMEOUT,
 * into *out; tname says whose it is in messages ("task 'A'", "auth").
 */
void load__read_seconds(struct loader *L, struct ynode *n, const char *key, const char *tname,
                        double *out);

/*
 * Reads the workflow file at path ("-": standard input) into *buf (malloc'd,
 * the caller frees it) and *len: a regular file (standard input may be a
 * pipe) of at most WF_MAX_FILE_SIZE bytes. Returns 0 after reporting why not,
 * at 1:1 (load_file.c).
 */
int load__read_file(const char *path, struct wf_diags *diags, char **buf, size_t *len);

/*
 * Reads an optional integer field from min to max into *out; what is not an
 * integer ≥ min, or is over max, is reported at n.
 */
void load__read_int(struct loader *L, struct ynode *n, const char *key, const char *tname, int min,
                    int max, int *out);

/* The workflow's `env:` mapping, into wf->vars (load_env.c). */
void load__read_env(struct loader *L, struct ynode *env);

/* The `--set` values of the options, over or after those of env: (load_env.c). */
void load__apply_settings(struct loader *L);

/* The workflow's `tasks:` list, into wf->tasks and the name index (load_tasks.c). */
void load__read_tasks(struct loader *L, struct ynode *tasks);

#endif
