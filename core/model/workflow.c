/*
 * workflow.c - loads a workflow file into struct workflow and checks it.
 *
 * The file is parsed with libyaml's event parser into a compact document of
 * our own (see "the document" below), then walked once to build the model
 * while every key, type and name is checked; the graph module then checks
 * what needs the whole picture (inputs nobody sets, cycles, outputs nobody
 * reads). Every problem becomes a diagnostic with its line and column, and
 * the walk goes on after an error so that one run reports them all.
 *
 * An alias is kept as a second reference to the anchored node, as libyaml's
 * own loader does, so a small file can describe an exponentially large tree
 * (the "billion laughs" bomb) or even a loop. Every node the walk touches is
 * therefore counted against a budget, and the one recursive walk (params) has
 * a depth cap.
 */
#include "workflow.h"
#include "graph.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

/*
 * Nodes visited, aliases expanded, before the file is refused as a bomb. The
 * walk visits each node of the document a few times, so a large file without
 * aliases gets its own size (times VISITS_PER_NODE) on top: only expansion
 * through aliases can exhaust the budget.
 */
#define NODE_BUDGET 1000000
#define VISITS_PER_NODE 4
/* Deepest nesting accepted in params. */
#define MAX_DEPTH 64
/* Longest timeout accepted: about 31 years, far below any overflow downstream. */
#define MAX_TIMEOUT 1e9

/*
 * A node of the document. libyaml's own tree (yaml_parser_load) costs ~150
 * bytes a node in separate allocations (the node, its tag, its value, a
 * 16-entry child stack per collection): ~2 MB for a 1,000-task workflow, the
 * largest thing the coordinator held while loading. Here a node is 24 bytes
 * in one array, scalar values sit end to end in one text buffer, and the
 * children of every collection are one run in one array of node ids.
 */
struct ynode {
    unsigned char type;  /* YAML_SCALAR_NODE, YAML_SEQUENCE_NODE or YAML_MAPPING_NODE */
    unsigned char style; /* scalars: the yaml_scalar_style_t it was written in */
    unsigned char exact; /* scalars: on one line, exactly as wide as its value and quotes */
    struct wf_pos pos;   /* where it starts */
    uint32_t len;        /* scalars: bytes of the value; collections: children (2 per pair) */
    union {
        size_t at;            /* while composing: offset in text or kids */
        const char *value;    /* scalars, once composed: NUL-terminated */
        const uint32_t *kids; /* collections, once composed: key, value, key, value... */
    } u;
};

struct ydoc {
    struct ynode *nodes; /* nodes[0] is the root */
    size_t n, cap;
    char *text;
    size_t text_len, text_cap;
    uint32_t *kids;
    size_t n_kids, cap_kids;
};

struct loader {
    const char *file;
    struct ydoc *doc;
    const struct wf_load_options *opts;
    struct wf_diags *diags;
    struct workflow *wf;
    size_t visited;
    size_t budget;
    int over_budget;
    size_t cap_tasks;
    size_t indexed; /* tasks in wf->task_index */
    size_t cap_vars;
    json_t *var_index; /* env variable name -> index in wf->vars */
};

/* A key of a fixed-schema mapping, once read. */
struct field {
    struct ynode *key;
    struct ynode *value;
};

static const char *const TOP_KEYS[] = {"workflow"};
static const char *const WORKFLOW_KEYS[] = {"name", "description", "version", "env",
                                            "tasks", "auth", "mode"};
enum { WK_NAME, WK_DESCRIPTION, WK_VERSION, WK_ENV, WK_TASKS, WK_AUTH, WK_MODE, WK_COUNT };
static const char *const AUTH_KEYS[] = {"url", "timeout", "cache_ttl", "ca_file"};
enum { AK_URL, AK_TIMEOUT, AK_CACHE_TTL, AK_CA_FILE, AK_COUNT };
static const char *const TASK_KEYS[] = {"name",        "plugin",       "description", "inputs",
                                        "outputs",     "params",       "depends_on",  "execution",
                                        "permissions", "requires_auth"};
enum {
    TK_NAME,
    TK_PLUGIN,
    TK_DESCRIPTION,
    TK_INPUTS,
    TK_OUTPUTS,
    TK_PARAMS,
    TK_DEPENDS_ON,
    TK_EXECUTION,
    TK_PERMISSIONS,
    TK_REQUIRES_AUTH,
    TK_COUNT
};
static const char *const EXECUTION_KEYS[] = {
    "async",      "timeout", "workers", "retries", "retry_delay", "retry_max_delay",
    "depends_on", "trigger", "queue",   "restart"};
enum {
    EK_ASYNC,
    EK_TIMEOUT,
    EK_WORKERS,
    EK_RETRIES,
    EK_RETRY_DELAY,
    EK_RETRY_MAX_DELAY,
    EK_DEPENDS_ON,
    EK_TRIGGER,
    EK_QUEUE,
    EK_RESTART,
    EK_COUNT
};
static const char *const RESTART_POLICIES[] = {"on-failure", "always", "never"};
static const char *const PERMISSION_KEYS[] = {"required"};
static const char *const SECRET_VAR_KEYS[] = {"value", "secret"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------- diagnostics */

static void diag_vadd(struct wf_diags *d, enum wf_severity sev, struct wf_pos pos, const char *fmt,
                      va_list ap) __attribute__((format(printf, 4, 0)));

static void diag_vadd(struct wf_diags *d, enum wf_severity sev, struct wf_pos pos, const char *fmt,
                      va_list ap)
{
    char *msg = NULL;
    va_list copy;
    int len;

    /* An error counts even when there is no memory left to describe it, so
     * that the load still fails. */
    if (sev == WF_ERROR)
        d->n_errors++;
    va_copy(copy, ap);
    len = vsnprintf(NULL, 0, fmt, ap);
    if (len < 0)
        goto out;
    msg = malloc((size_t)len + 1);
    if (!msg)
        goto out;
    vsnprintf(msg, (size_t)len + 1, fmt, copy);
    if ((d->n & (d->n - 1)) == 0 || d->n == 0) {
        size_t cap = d->n ? d->n * 2 : 8;
        struct wf_diag *items = realloc(d->items, cap * sizeof *items);
        if (!items)
            goto out;
        d->items = items;
    }
    d->items[d->n].severity = sev;
    d->items[d->n].pos = pos;
    d->items[d->n].message = msg;
    d->n++;
    msg = NULL;
out:
    va_end(copy);
    free(msg);
}

static void error_at(struct loader *L, struct wf_pos pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void warning_at(struct loader *L, struct wf_pos pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void error_at(struct loader *L, struct wf_pos pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_vadd(L->diags, WF_ERROR, pos, fmt, ap);
    va_end(ap);
}

static void warning_at(struct loader *L, struct wf_pos pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_vadd(L->diags, WF_WARNING, pos, fmt, ap);
    va_end(ap);
}

static int diag_cmp(const void *a, const void *b)
{
    const struct wf_diag *x = *(const struct wf_diag *const *)a;
    const struct wf_diag *y = *(const struct wf_diag *const *)b;

    if (x->pos.line != y->pos.line)
        return x->pos.line < y->pos.line ? -1 : 1;
    if (x->pos.col != y->pos.col)
        return x->pos.col < y->pos.col ? -1 : 1;
    /* Equal positions keep the order they were found in: qsort is not
     * stable, so the pointers (which follow that order) break the tie. */
    return x < y ? -1 : x > y;
}

/* Sorts the diagnostics by position, keeping the discovery order of ties. */
static void diags_sort(struct wf_diags *d)
{
    const struct wf_diag **order = NULL;
    struct wf_diag *sorted = NULL;

    if (d->n < 2)
        goto out;
    order = malloc(d->n * sizeof *order);
    sorted = malloc(d->n * sizeof *sorted);
    if (!order || !sorted)
        goto out;
    for (size_t i = 0; i < d->n; i++)
        order[i] = &d->items[i];
    qsort(order, d->n, sizeof *order, diag_cmp);
    for (size_t i = 0; i < d->n; i++)
        sorted[i] = *order[i];
    memcpy(d->items, sorted, d->n * sizeof *sorted);
out:
    free(order);
    free(sorted);
}

void wf_diags_free(struct wf_diags *diags)
{
    if (!diags)
        return;
    for (size_t i = 0; i < diags->n; i++)
        free(diags->items[i].message);
    free(diags->items);
    diags->items = NULL;
    diags->n = 0;
    diags->n_errors = 0;
}

static void print_diag(FILE *out, const char *file, const struct wf_diag *d)
{
    const char *sev = d->severity == WF_ERROR ? "error" : "warning";

    if (d->pos.line > 0)
        fprintf(out, "%s:%d:%d: %s: %s\n", file, d->pos.line, d->pos.col, sev, d->message);
    else
        fprintf(out, "%s: %s: %s\n", file, sev, d->message);
}

void wf_diags_print(const struct wf_diags *diags, const char *file, void *stream)
{
    FILE *out = stream;
    const struct wf_diag **order = NULL;

    if (!diags || !out || diags->n == 0)
        goto out;
    order = malloc(diags->n * sizeof *order);
    if (!order) {
        /* Without memory to sort, the stored order (which the loader already
         * sorted) will do. */
        for (size_t i = 0; i < diags->n; i++)
            print_diag(out, file, &diags->items[i]);
        goto out;
    }
    for (size_t i = 0; i < diags->n; i++)
        order[i] = &diags->items[i];
    qsort(order, diags->n, sizeof *order, diag_cmp);
    for (size_t i = 0; i < diags->n; i++)
        print_diag(out, file, order[i]);
out:
    free(order);
}

/* ---------------------------------------------------------------- names */

int workflow__valid_run_id(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 64)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_')
            return 0;
    return 1;
}

int workflow__valid_var_name(const char *name)
{
    size_t i;

    if (!name || !(isalpha((unsigned char)name[0]) || name[0] == '_'))
        return 0;
    for (i = 1; name[i]; i++)
        if (!(isalnum((unsigned char)name[i]) || name[i] == '_'))
            return 0;
    return i <= 64;
}

int workflow__valid_task_name(const char *name)
{
    size_t i;

    if (!name || !(isalnum((unsigned char)name[0]) || name[0] == '_'))
        return 0;
    for (i = 1; name[i]; i++)
        if (!(isalnum((unsigned char)name[i]) || name[i] == '_' || name[i] == '-'))
            return 0;
    return i <= 64;
}

#define VAR_NAME_RULE                                                                              \
    "use letters, digits and '_', not starting with a digit, at most 64 characters"
#define TASK_NAME_RULE                                                                             \
    "use letters, digits, '_' and '-', starting with a letter, digit or '_', at most 64 "     \
    "characters"

size_t workflow__distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t row[65];

    if (la > 64 || lb > 64)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best =
                diag + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The closest candidate within distance 2, or NULL. */
static const char *suggest(const char *word, const char *const *candidates, size_t n)
{
    const char *best = NULL;
    size_t best_d = 3;

    size_t len = strlen(word);

    for (size_t i = 0; i < n; i++) {
        size_t other = strlen(candidates[i]), d;
        /* Lengths that differ by more than 2 cannot be within distance 2;
         * skipping them keeps a check against thousands of tasks cheap. */
        if (other > len + 2 || len > other + 2)
            continue;
        d = workflow__distance(word, candidates[i]);
        if (d < best_d) {
            best_d = d;
            best = candidates[i];
        }
    }
    return best;
}

/* ---------------------------------------------------------------- nodes */

static struct wf_pos pos_of(const struct ynode *n)
{
    return n->pos;
}

static struct wf_pos mark_pos(yaml_mark_t m)
{
    struct wf_pos p = {(int)m.line + 1, (int)m.column + 1};
    return p;
}

/* The node with this id, or NULL; not counted against the budget. */
static struct ynode *node_at(const struct ydoc *doc, uint32_t id)
{
    return id < doc->n ? &doc->nodes[id] : NULL;
}

/*
 * Returns the node with this id, counting it against the budget; NULL once the
 * budget is spent (reported once), so that every walk stops.
 */
static struct ynode *visit(struct loader *L, uint32_t id)
{
    struct ynode *n;

    if (L->over_budget)
        return NULL;
    n = node_at(L->doc, id);
    if (!n)
        return NULL;
    if (++L->visited > L->budget) {
        L->over_budget = 1;
        error_at(L, pos_of(n),
                 "the document expands to more than %d nodes through aliases; refusing it "
                 "(a YAML alias bomb?)",
                 NODE_BUDGET);
        return NULL;
    }
    return n;
}

static const char *scalar(const struct ynode *n)
{
    return n && n->type == YAML_SCALAR_NODE ? n->u.value : NULL;
}

static int is_plain(const struct ynode *n)
{
    return n->type == YAML_SCALAR_NODE && n->style == YAML_PLAIN_SCALAR_STYLE;
}

static int is_null(const struct ynode *n)
{
    const char *s = scalar(n);

    return s && is_plain(n) &&
           (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
            !strcmp(s, "NULL"));
}

/* A scalar that is usable as text: not null, no NUL byte inside. */
static const char *text(const struct ynode *n)
{
    const char *s = scalar(n);

    if (!s || is_null(n) || strlen(s) != n->len)
        return NULL;
    return s;
}

/*
 * Text from the file quoted in a message: s itself when it has at most max
 * bytes, else its start and "..." in buf (max + 1 bytes), cut on a UTF-8
 * character boundary, so that a megabyte-long name is still one short line.
 */
#define NAME_CLIP 80
static const char *clip(const char *s, size_t max, char *buf)
{
    size_t keep = max - 3;

    if (strlen(s) <= max)
        return s;
    while (keep > 0 && ((unsigned char)s[keep] & 0xC0) == 0x80)
        keep--;
    memcpy(buf, s, keep);
    memcpy(buf + keep, "...", 4);
    return buf;
}

/* Describes a node for "got ..." in messages. */
static const char *describe(const struct ynode *n, char *buf, size_t size)
{
    const char *s = scalar(n);
    char clipped[41];

    if (!n)
        snprintf(buf, size, "nothing");
    else if (n->type == YAML_SEQUENCE_NODE)
        snprintf(buf, size, "a list");
    else if (n->type == YAML_MAPPING_NODE)
        snprintf(buf, size, "a mapping");
    else if (is_null(n))
        snprintf(buf, size, "an empty value");
    else
        snprintf(buf, size, "\"%s\"", clip(s, 40, clipped));
    return buf;
}

static int parse_bool(const struct ynode *n, int *out)
{
    static const char *const yes[] = {"true", "True", "TRUE"};
    static const char *const no[] = {"false", "False", "FALSE"};
    const char *s = text(n);

    if (!s)
        return 0;
    for (size_t i = 0; i < COUNT(yes); i++) {
        if (!strcmp(s, yes[i])) {
            *out = 1;
            return 1;
        }
        if (!strcmp(s, no[i])) {
            *out = 0;
            return 1;
        }
    }
    return 0;
}

static int parse_number(const struct ynode *n, double *out)
{
    const char *s = text(n);
    char *end;
    double v;

    if (!s || !*s || isspace((unsigned char)*s))
        return 0;
    errno = 0;
    v = strtod(s, &end);
    if (*end || errno || !isfinite(v))
        return 0;
    *out = v;
    return 1;
}

static int parse_int(const struct ynode *n, long *out)
{
    const char *s = text(n);
    char *end;
    long v;

    if (!s || !*s || isspace((unsigned char)*s))
        return 0;
    errno = 0;
    v = strtol(s, &end, 10);
    if (*end || errno || v > INT_MAX || v < INT_MIN)
        return 0;
    *out = v;
    return 1;
}

/*
 * The position of byte off inside a scalar, when it can be known exactly: a
 * one-line ASCII scalar without escapes. Otherwise the scalar's own position.
 */
static struct wf_pos pos_in_scalar(const struct ynode *n, size_t off)
{
    struct wf_pos p = pos_of(n);
    size_t len = n->len;
    size_t quote;

    switch (n->style) {
    case YAML_PLAIN_SCALAR_STYLE:
        quote = 0;
        break;
    case YAML_SINGLE_QUOTED_SCALAR_STYLE:
    case YAML_DOUBLE_QUOTED_SCALAR_STYLE:
        quote = 1;
        break;
    default:
        return p;
    }
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)n->u.value[i] >= 0x80)
            return p;
    if (!n->exact)
        return p;
    p.col += (int)(quote + off);
    return p;
}

/* ---------------------------------------------------------------- mappings */

/*
 * Reads a mapping with a fixed set of keys into fields[] (indexed like keys).
 * Reports keys that are not scalars, unknown keys (with a did-you-mean) and
 * duplicates; where names the mapping in messages ("task 'DF'").
 */
static void read_fields(struct loader *L, struct ynode *map, const char *const *keys, size_t n_keys,
                        const char *where, struct field *fields)
{
    memset(fields, 0, n_keys * sizeof *fields);
    for (size_t pair = 0; pair + 1 < map->len; pair += 2) {
        struct ynode *key = visit(L, map->u.kids[pair]);
        struct ynode *value = visit(L, map->u.kids[pair + 1]);
        const char *name = text(key);
        size_t k;
        char buf[64], clipped[NAME_CLIP + 1];

        if (!key || !value)
            return;
        if (!name) {
            error_at(L, pos_of(key), "keys in %s must be names, got %s", where,
                     describe(key, buf, sizeof buf));
            continue;
        }
        for (k = 0; k < n_keys && strcmp(name, keys[k]); k++)
            ;
        if (k == n_keys) {
            const char *hint = suggest(name, keys, n_keys);
            if (hint) {
                error_at(L, pos_of(key), "unknown key '%s' in %s; did you mean '%s'?",
                         clip(name, NAME_CLIP, clipped), where, hint);
            } else {
                char list[256];
                size_t used = 0;
                list[0] = 0;
                for (size_t i = 0; i < n_keys && used < sizeof list; i++)
                    used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                                             keys[i]);
                error_at(L, pos_of(key), "unknown key '%s' in %s; valid keys: %s%s",
                         clip(name, NAME_CLIP, clipped), where, list,
                         strcmp(name, "<<") ? "" : " (YAML merge keys are not supported)");
            }
            continue;
        }
        if (fields[k].key) {
            error_at(L, pos_of(key), "duplicate key '%s' in %s (first at line %d)", name, where,
                     pos_of(fields[k].key).line);
            continue;
        }
        fields[k].key = key;
        fields[k].value = value;
    }
}

/* Returns the value of a string field, or NULL (reporting a wrong type). */
static const char *string_field(struct loader *L, const struct field *f, const char *where)
{
    const char *s;
    char buf[64];

    if (!f->value)
        return NULL;
    s = text(f->value);
    if (!s)
        error_at(L, pos_of(f->value), "'%s' in %s must be a string, got %s", scalar(f->key), where,
                 describe(f->value, buf, sizeof buf));
    return s;
}

enum name_kind { VAR_NAMES, TASK_NAMES, PERMISSION_NAMES };

static int list_has(const struct wf_list *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->items[i].name, name))
            return 1;
    return 0;
}

static int list_push(struct wf_list *l, const char *name, struct wf_pos pos)
{
    if ((l->n & (l->n - 1)) == 0 || l->n == 0) {
        size_t cap = l->n ? l->n * 2 : 4;
        struct wf_name *items = realloc(l->items, cap * sizeof *items);
        if (!items)
            return 0;
        l->items = items;
    }
    l->items[l->n].name = strdup(name);
    if (!l->items[l->n].name)
        return 0;
    l->items[l->n].pos = pos;
    l->n++;
    return 1;
}

static void list_free(struct wf_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i].name);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

/*
 * Reads a list of names into out (appending). what names the list in
 * messages ("'inputs' of task 'DF'"). Names listed twice are reported, except
 * that quiet_dups merges them silently (depends_on written in both places).
 */
static void read_names(struct loader *L, struct ynode *n, enum name_kind kind, const char *what,
                       int quiet_dups, struct wf_list *out)
{
    static const char *const nouns[] = {"variable names", "task names", "permission names"};
    json_t *seen = NULL;
    char buf[64], clipped[NAME_CLIP + 1];

    if (!n || is_null(n))
        goto out;
    if (n->type != YAML_SEQUENCE_NODE) {
        error_at(L, pos_of(n), "%s must be a list of %s, got %s", what, nouns[kind],
                 describe(n, buf, sizeof buf));
        goto out;
    }
    /* Long lists (a join of thousands of tasks) check duplicates by hash. */
    if (n->len > 32 || out->n > 32)
        seen = json_object();
    for (size_t i = 0; seen && i < out->n; i++)
        json_object_set_new_nocheck(seen, out->items[i].name, json_true());
    for (size_t i = 0; i < n->len; i++) {
        struct ynode *item = visit(L, n->u.kids[i]);
        const char *name = text(item);
        int dup;

        if (!item)
            goto out;
        if (!name || !*name) {
            error_at(L, pos_of(item), "each entry of %s must be a name, got %s", what,
                     describe(item, buf, sizeof buf));
            continue;
        }
        if (kind == VAR_NAMES && !workflow__valid_var_name(name)) {
            error_at(L, pos_of(item), "'%s' in %s is not a valid variable name: %s",
                     clip(name, NAME_CLIP, clipped), what, VAR_NAME_RULE);
            continue;
        }
        dup = seen ? json_object_get(seen, name) != NULL : list_has(out, name);
        if (dup) {
            if (!quiet_dups)
                error_at(L, pos_of(item), "'%s' is listed twice in %s",
                         clip(name, NAME_CLIP, clipped), what);
            continue;
        }
        if (!list_push(out, name, pos_of(item))) {
            error_at(L, pos_of(item), "out of memory");
            goto out;
        }
        if (seen)
            json_object_set_new_nocheck(seen, name, json_true());
    }
out:
    json_decref(seen);
}

/* ---------------------------------------------------------------- params */

/* Resolves a plain scalar the way YAML's core schema does, into JSON. */
static json_t *plain_to_json(const struct ynode *n)
{
    const char *s = n->u.value;
    size_t len = n->len;
    const char *p = s;
    char *end;

    if (is_null(n))
        return json_null();
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
        return json_true();
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
        return json_false();
    if (*p == '-' || *p == '+')
        p++;
    if (isdigit((unsigned char)*p)) {
        /* [-+]?[0-9]+ is an integer; 0x and 0o prefixes are YAML 1.2 too. */
        int base = 10;
        const char *digits = p;
        if (p[0] == '0' && (p[1] == 'x' || p[1] == 'o') && p[2]) {
            base = p[1] == 'x' ? 16 : 8;
            digits = p + 2;
        }
        size_t span = strspn(digits, base == 16  ? "0123456789abcdefABCDEF"
                                     : base == 8 ? "01234567"
                                                 : "0123456789");
        if (digits[span] == 0 && span > 0) {
            errno = 0;
            long long v = strtoll(digits, &end, base);
            if (!errno && !*end)
                return json_integer(*s == '-' ? -v : v);
            if (base == 10) {
                double d = strtod(s, &end);
                return json_real(d);
            }
        }
    }
    if (isdigit((unsigned char)*p) || (*p == '.' && isdigit((unsigned char)p[1]))) {
        /* A float: digits with a dot and/or an exponent, nothing else. */
        size_t i = strspn(p, "0123456789");
        if (p[i] == '.')
            i += 1 + strspn(p + i + 1, "0123456789");
        if (p[i] == 'e' || p[i] == 'E') {
            size_t j = i + 1;
            if (p[j] == '-' || p[j] == '+')
                j++;
            if (isdigit((unsigned char)p[j]))
                i = j + strspn(p + j, "0123456789");
        }
        if (!p[i]) {
            double d = strtod(s, &end);
            if (!*end && isfinite(d))
                return json_real(d);
        }
    }
    return json_stringn(s, len);
}

/*
 * Converts a params node to JSON. Returns NULL after reporting an error (the
 * error is reported once; callers just unwind).
 */
static json_t *node_to_json(struct loader *L, struct ynode *n, int depth, const char *where)
{
    json_t *out = NULL;
    char buf[64], clipped[NAME_CLIP + 1];

    if (depth > MAX_DEPTH) {
        error_at(L, pos_of(n), "%s is nested deeper than %d levels", where, MAX_DEPTH);
        return NULL;
    }
    switch (n->type) {
    case YAML_SCALAR_NODE:
        if (is_plain(n))
            return plain_to_json(n);
        return json_stringn(n->u.value, n->len);
    case YAML_SEQUENCE_NODE:
        out = json_array();
        for (size_t i = 0; out && i < n->len; i++) {
            struct ynode *item = visit(L, n->u.kids[i]);
            json_t *v = item ? node_to_json(L, item, depth + 1, where) : NULL;
            if (!v || json_array_append_new(out, v)) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    case YAML_MAPPING_NODE:
        out = json_object();
        for (size_t i = 0; out && i + 1 < n->len; i += 2) {
            struct ynode *key = visit(L, n->u.kids[i]);
            struct ynode *value = key ? visit(L, n->u.kids[i + 1]) : NULL;
            json_t *v;
            if (!value)
                goto fail;
            if (key->type != YAML_SCALAR_NODE) {
                error_at(L, pos_of(key), "keys in %s must be strings, got %s", where,
                         describe(key, buf, sizeof buf));
                goto fail;
            }
            if (json_object_getn(out, key->u.value, key->len)) {
                error_at(L, pos_of(key), "duplicate key '%s' in %s",
                         clip(scalar(key), NAME_CLIP, clipped), where);
                goto fail;
            }
            v = node_to_json(L, value, depth + 1, where);
            if (!v || json_object_setn_new_nocheck(out, key->u.value, key->len, v))
                goto fail;
        }
        return out;
    default:
        return NULL;
    }
fail:
    json_decref(out);
    return NULL;
}

/* ---------------------------------------------------------------- env */

/*
 * Substitutes {{ENV:X}} in s (the text of node n, env variable var).
 * Returns the malloc'd result, or NULL after reporting an error.
 */
static char *substitute_env(struct loader *L, const struct ynode *n, const char *s, const char *var)
{
    static const char opener[] = "{{ENV:";
    const struct wf_load_options *o = L->opts;
    char *out = NULL;
    size_t len = 0, cap = strlen(s) + 1;
    int failed = 0;
    const char *p = s;

    out = malloc(cap);
    if (!out)
        goto fail;
    for (;;) {
        const char *ref = strstr(p, opener);
        const char *name, *close, *value = NULL;
        size_t chunk, name_len;
        char env_name[65];
        int valid;

        chunk = ref ? (size_t)(ref - p) : strlen(p);
        if (len + chunk + 1 > cap) {
            char *bigger;
            cap = (len + chunk + 1) * 2;
            bigger = realloc(out, cap);
            if (!bigger)
                goto fail;
            out = bigger;
        }
        memcpy(out + len, p, chunk);
        len += chunk;
        out[len] = 0;
        if (!ref)
            break;
        name = ref + sizeof opener - 1;
        close = strstr(name, "}}");
        name_len = close ? (size_t)(close - name) : 0;
        valid = close && name_len > 0 && name_len < sizeof env_name;
        if (valid) {
            memcpy(env_name, name, name_len);
            env_name[name_len] = 0;
            valid = workflow__valid_var_name(env_name);
        }
        if (!valid) {
            error_at(L, pos_in_scalar(n, (size_t)(ref - s)),
                     "malformed environment reference in env '%s': expected {{ENV:NAME}} with a "
                     "variable name and a closing '}}'",
                     var);
            failed = 1;
            p = name;
            continue;
        }
        if (o && o->getenv_fn)
            value = o->getenv_fn(o->getenv_ctx, env_name);
        else
            value = getenv(env_name);
        if (!value) {
            error_at(L, pos_in_scalar(n, (size_t)(ref - s)),
                     "environment variable '%s' is not set (env '%s' uses {{ENV:%s}})", env_name,
                     var, env_name);
            failed = 1;
            value = "";
        }
        chunk = strlen(value);
        if (len + chunk + 1 > cap) {
            char *bigger;
            cap = (len + chunk + 1) * 2;
            bigger = realloc(out, cap);
            if (!bigger)
                goto fail;
            out = bigger;
        }
        memcpy(out + len, value, chunk);
        len += chunk;
        out[len] = 0;
        p = close + 2;
    }
    if (failed)
        goto fail;
    return out;
fail:
    free(out);
    return NULL;
}

static long var_find(struct loader *L, const char *name)
{
    json_t *i = json_object_get(L->var_index, name);
    return i ? (long)json_integer_value(i) : -1;
}

static struct wf_var *var_append(struct loader *L, const char *name)
{
    struct workflow *wf = L->wf;
    struct wf_var *v;

    if (wf->n_vars == L->cap_vars) {
        size_t cap = L->cap_vars ? L->cap_vars * 2 : 8;
        struct wf_var *vars = realloc(wf->vars, cap * sizeof *vars);
        if (!vars)
            return NULL;
        wf->vars = vars;
        L->cap_vars = cap;
    }
    v = &wf->vars[wf->n_vars];
    memset(v, 0, sizeof *v);
    v->name = strdup(name);
    if (!v->name ||
        json_object_set_new_nocheck(L->var_index, name, json_integer((json_int_t)wf->n_vars))) {
        free(v->name);
        return NULL;
    }
    v->secret = !strcmp(name, "AUTH_TOKEN");
    wf->n_vars++;
    return v;
}

static void read_seconds(struct loader *L, struct ynode *n, const char *key, const char *tname,
                         double *out);

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
        error_at(L, pos_of(n), "'auth' must be a mapping like {url: ..., timeout: 3, cache_ttl: 60}, "
                               "got %s",
                 describe(n, buf, sizeof buf));
        return;
    }
    read_fields(L, n, AUTH_KEYS, AK_COUNT, "'auth'", f);
    wf->auth.set = 1;
    wf->auth.cache_ttl = -1; /* unset: the SDK's default; 0 turns the cache off */
    if (f[AK_URL].value && (s = string_field(L, &f[AK_URL], "'auth'")) != NULL) {
        if (strncmp(s, "https://", 8) != 0 && strncmp(s, "http://", 7) != 0)
            error_at(L, pos_of(f[AK_URL].value),
                     "'url' of 'auth' must start with https:// (or http:// for a local "
                     "service), got \"%s\"", s);
        else
            wf->auth.url = strdup(s);
    }
    if (f[AK_CA_FILE].value && (s = string_field(L, &f[AK_CA_FILE], "'auth'")) != NULL)
        wf->auth.ca_file = strdup(s);
    read_seconds(L, f[AK_TIMEOUT].value, "timeout", "auth", &wf->auth.timeout);
    read_seconds(L, f[AK_CACHE_TTL].value, "cache_ttl", "auth", &wf->auth.cache_ttl);
}

static void read_env(struct loader *L, struct ynode *env)
{
    char buf[64], clipped[NAME_CLIP + 1];

    if (is_null(env))
        return;
    if (env->type != YAML_MAPPING_NODE) {
        error_at(L, pos_of(env), "'env' must be a mapping of variable names to values, got %s",
                 describe(env, buf, sizeof buf));
        return;
    }
    for (size_t i = 0; i + 1 < env->len; i += 2) {
        struct ynode *key = visit(L, env->u.kids[i]);
        struct ynode *value = key ? visit(L, env->u.kids[i + 1]) : NULL;
        struct ynode *value_node;
        const char *name = text(key), *raw;
        char *resolved;
        int secret = 0;
        long existing;
        struct wf_var *var;

        if (!value)
            return;
        if (!name || !workflow__valid_var_name(name)) {
            error_at(L, pos_of(key), "'%s' in env is not a valid variable name: %s",
                     name ? clip(name, NAME_CLIP, clipped) : describe(key, buf, sizeof buf),
                     VAR_NAME_RULE);
            continue;
        }
        existing = var_find(L, name);
        if (existing >= 0) {
            error_at(L, pos_of(key), "duplicate key '%s' in env (first at line %d)", name,
                     L->wf->vars[existing].pos.line);
            continue;
        }
        value_node = value;
        if (value->type == YAML_MAPPING_NODE) {
            struct field f[COUNT(SECRET_VAR_KEYS)];
            char where[96];
            struct ynode *first_key = NULL;

            if (value->len > 0)
                first_key = visit(L, value->u.kids[0]);
            if (first_key && first_key->type == YAML_MAPPING_NODE) {
                /* `X: {{ENV:Y}}` unquoted is a YAML flow mapping, not text. */
                error_at(L, pos_of(value),
                         "env '%s' must be a string; put quotes around a value that uses "
                         "{{ENV:...}}",
                         name);
                continue;
            }
            snprintf(where, sizeof where, "env '%s'", name);
            read_fields(L, value, SECRET_VAR_KEYS, COUNT(SECRET_VAR_KEYS), where, f);
            if (f[1].value && !parse_bool(f[1].value, &secret)) {
                error_at(L, pos_of(f[1].value), "'secret' in %s must be true or false, got %s",
                         where, describe(f[1].value, buf, sizeof buf));
            }
            if (!f[0].value) {
                error_at(L, pos_of(value), "%s has no 'value'", where);
                continue;
            }
            value_node = f[0].value;
        }
        raw = text(value_node);
        if (!raw) {
            if (value_node->type == YAML_SCALAR_NODE && !is_null(value_node))
                error_at(L, pos_of(value_node), "env '%s' contains a NUL character", name);
            else
                error_at(L, pos_of(value_node),
                         "env '%s' must be a string, number or boolean (or {value: ..., secret: "
                         "true}), got %s%s",
                         name, describe(value_node, buf, sizeof buf),
                         is_null(value_node) ? "; write \"\" for an empty string" : "");
            continue;
        }
        resolved = substitute_env(L, value_node, raw, name);
        if (!resolved)
            continue;
        var = var_append(L, name);
        if (!var) {
            free(resolved);
            error_at(L, pos_of(key), "out of memory");
            return;
        }
        var->value = resolved;
        var->secret |= secret;
        var->pos = pos_of(key);
    }
}

static void apply_settings(struct loader *L)
{
    const struct wf_load_options *o = L->opts;
    struct wf_pos none = {0, 0};

    for (size_t i = 0; o && i < o->n_settings; i++) {
        const struct wf_setting *s = &o->settings[i];
        struct wf_var *var;
        long existing;
        char *value;

        if (!workflow__valid_var_name(s->name)) {
            char clipped[NAME_CLIP + 1];
            const char *shown = s->name ? clip(s->name, NAME_CLIP, clipped) : "";
            error_at(L, none, "--set %s: '%s' is not a valid variable name: %s", shown, shown,
                     VAR_NAME_RULE);
            continue;
        }
        value = strdup(s->value ? s->value : "");
        if (!value) {
            error_at(L, none, "out of memory");
            return;
        }
        existing = var_find(L, s->name);
        var = existing >= 0 ? &L->wf->vars[existing] : var_append(L, s->name);
        if (!var) {
            free(value);
            error_at(L, none, "out of memory");
            return;
        }
        free(var->value);
        var->value = value;
        var->from_set = 1;
    }
}

/* ---------------------------------------------------------------- tasks */

static void task_free(struct wf_task *t)
{
    free(t->name);
    free(t->plugin);
    free(t->plugin_path);
    free(t->description);
    list_free(&t->inputs);
    list_free(&t->outputs);
    list_free(&t->depends_on);
    list_free(&t->trigger);
    list_free(&t->permissions);
    json_decref(t->params);
}

/* Reads an optional duration in seconds (fractions allowed) into *out. */
static void read_seconds(struct loader *L, struct ynode *n, const char *key, const char *tname,
                         double *out)
{
    char buf[64];
    double d;

    if (!n)
        return;
    if (!parse_number(n, &d) || d < 0 || d > MAX_TIMEOUT)
        error_at(L, pos_of(n), "'%s' must be a number of seconds from 0 to %.0f, got %s (%s)", key,
                 MAX_TIMEOUT, describe(n, buf, sizeof buf), tname);
    else
        *out = d;
}

static void read_execution(struct loader *L, struct ynode *n, struct wf_task *t, const char *tname)
{
    struct field f[EK_COUNT];
    char where[128], what[160], buf[64];
    long v;

    if (is_null(n))
        return;
    snprintf(where, sizeof where, "'execution' of task '%s'", tname);
    if (n->type != YAML_MAPPING_NODE) {
        error_at(L, pos_of(n), "%s must be a mapping, got %s", where, describe(n, buf, sizeof buf));
        return;
    }
    read_fields(L, n, EXECUTION_KEYS, EK_COUNT, where, f);
    if (f[EK_ASYNC].value && !parse_bool(f[EK_ASYNC].value, &t->async))
        error_at(L, pos_of(f[EK_ASYNC].value), "'async' must be true or false, got %s (task '%s')",
                 describe(f[EK_ASYNC].value, buf, sizeof buf), tname);
    if (f[EK_TIMEOUT].value) {
        double d;
        if (!parse_number(f[EK_TIMEOUT].value, &d) || d < 0)
            error_at(L, pos_of(f[EK_TIMEOUT].value),
                     "'timeout' must be a number of seconds ≥ 0, got %s (task '%s')",
                     describe(f[EK_TIMEOUT].value, buf, sizeof buf), tname);
        else if (d > MAX_TIMEOUT)
            error_at(L, pos_of(f[EK_TIMEOUT].value),
                     "'timeout' must be at most %.0f seconds, got %s (task '%s')", MAX_TIMEOUT,
                     describe(f[EK_TIMEOUT].value, buf, sizeof buf), tname);
        else
            t->timeout = d;
    }
    if (f[EK_WORKERS].value) {
        if (!parse_int(f[EK_WORKERS].value, &v) || v < 1)
            error_at(L, pos_of(f[EK_WORKERS].value),
                     "'workers' must be an integer ≥ 1, got %s (task '%s')",
                     describe(f[EK_WORKERS].value, buf, sizeof buf), tname);
        else
            t->workers = (int)v;
    }
    if (f[EK_RETRIES].value) {
        if (!parse_int(f[EK_RETRIES].value, &v) || v < 0)
            error_at(L, pos_of(f[EK_RETRIES].value),
                     "'retries' must be an integer ≥ 0, got %s (task '%s')",
                     describe(f[EK_RETRIES].value, buf, sizeof buf), tname);
        else
            t->retries = (int)v;
    }
    read_seconds(L, f[EK_RETRY_DELAY].value, "retry_delay", tname, &t->retry_delay);
    read_seconds(L, f[EK_RETRY_MAX_DELAY].value, "retry_max_delay", tname, &t->retry_max_delay);
    snprintf(what, sizeof what, "'depends_on' of task '%s'", tname);
    read_names(L, f[EK_DEPENDS_ON].value, TASK_NAMES, what, 1, &t->depends_on);
    snprintf(what, sizeof what, "'trigger' of task '%s'", tname);
    read_names(L, f[EK_TRIGGER].value, VAR_NAMES, what, 0, &t->trigger);
    if (f[EK_QUEUE].value) {
        if (!parse_int(f[EK_QUEUE].value, &v) || v < 1 || v > 1000000)
            error_at(L, pos_of(f[EK_QUEUE].value),
                     "'queue' must be an integer from 1 to 1000000, got %s (task '%s')",
                     describe(f[EK_QUEUE].value, buf, sizeof buf), tname);
        else
            t->queue = (int)v;
    }
    if (f[EK_RESTART].value) {
        const char *s = text(f[EK_RESTART].value);
        size_t i;
        for (i = 0; s && i < COUNT(RESTART_POLICIES); i++)
            if (strcmp(s, RESTART_POLICIES[i]) == 0)
                break;
        if (!s || i == COUNT(RESTART_POLICIES))
            error_at(L, pos_of(f[EK_RESTART].value),
                     "'restart' must be on-failure, always or never, got %s (task '%s')",
                     describe(f[EK_RESTART].value, buf, sizeof buf), tname);
        else
            t->restart = (enum wf_restart)i;
    }
}

static void read_permissions(struct loader *L, struct ynode *n, struct wf_task *t,
                             const char *tname)
{
    struct field f[COUNT(PERMISSION_KEYS)];
    char where[128], what[160], buf[64];

    if (is_null(n))
        return;
    snprintf(where, sizeof where, "'permissions' of task '%s'", tname);
    if (n->type != YAML_MAPPING_NODE) {
        error_at(L, pos_of(n), "%s must be a mapping like {required: [...]}, got %s", where,
                 describe(n, buf, sizeof buf));
        return;
    }
    read_fields(L, n, PERMISSION_KEYS, COUNT(PERMISSION_KEYS), where, f);
    snprintf(what, sizeof what, "'required' of %s", where);
    read_names(L, f[0].value, PERMISSION_NAMES, what, 0, &t->permissions);
}

/* The task's name, if it has a usable one, for messages before it is read. */
static const char *peek_name(struct loader *L, struct ynode *map)
{
    for (size_t i = 0; i + 1 < map->len; i += 2) {
        struct ynode *key = visit(L, map->u.kids[i]);
        const char *k = text(key);
        if (k && !strcmp(k, "name")) {
            const char *v = text(visit(L, map->u.kids[i + 1]));
            return v && *v && strlen(v) <= 64 ? v : NULL;
        }
    }
    return NULL;
}

/* Reads one entry of tasks: into t; number is its 1-based place, for messages. */
static void read_task(struct loader *L, struct ynode *n, size_t number, struct wf_task *t)
{
    struct field f[TK_COUNT];
    char tname[80], where[100], what[160], buf[64], clipped[NAME_CLIP + 1];
    const char *name, *plugin, *s;

    t->pos = pos_of(n);
    t->workers = 1;
    name = peek_name(L, n);
    if (name)
        snprintf(tname, sizeof tname, "%s", name);
    else
        snprintf(tname, sizeof tname, "#%zu", number);
    snprintf(where, sizeof where, "task '%s'", tname);
    read_fields(L, n, TASK_KEYS, TK_COUNT, where, f);

    if (!f[TK_NAME].value) {
        error_at(L, t->pos, "task #%zu has no 'name'", number);
    } else if ((name = string_field(L, &f[TK_NAME], where)) != NULL) {
        t->name_pos = pos_of(f[TK_NAME].value);
        if (!*name)
            error_at(L, t->name_pos, "task #%zu has an empty name", number);
        else if (!workflow__valid_task_name(name))
            error_at(L, t->name_pos, "task name '%s' is not valid: %s",
                     clip(name, NAME_CLIP, clipped), TASK_NAME_RULE);
        /* An invalid name is kept only for later messages about the task,
         * so a huge one is kept short. */
        t->name = strdup(workflow__valid_task_name(name) ? name : clip(name, NAME_CLIP, clipped));
    }
    if (!t->name) {
        t->name = strdup("");
        t->name_pos = t->pos;
    }

    if (!f[TK_PLUGIN].value) {
        error_at(L, t->pos, "task '%s' has no 'plugin'", tname);
    } else if ((plugin = string_field(L, &f[TK_PLUGIN], where)) != NULL) {
        t->plugin_pos = pos_of(f[TK_PLUGIN].value);
        t->plugin = strdup(plugin);
        if (!workflow__valid_task_name(plugin)) {
            error_at(L, t->plugin_pos, "plugin name '%s' of task '%s' is not valid: %s",
                     clip(plugin, NAME_CLIP, clipped), tname, TASK_NAME_RULE);
        } else if (L->opts && L->opts->lookup) {
            t->plugin_path = L->opts->lookup(L->opts->lookup_ctx, plugin);
            if (!t->plugin_path)
                error_at(L, t->plugin_pos,
                         "unknown plugin '%s' in task '%s': no executable flowbus-%s was found",
                         plugin, tname, plugin);
        }
    }
    if (f[TK_DESCRIPTION].value && (s = string_field(L, &f[TK_DESCRIPTION], where)) != NULL)
        t->description = strdup(s);

    snprintf(what, sizeof what, "'inputs' of task '%s'", tname);
    read_names(L, f[TK_INPUTS].value, VAR_NAMES, what, 0, &t->inputs);
    snprintf(what, sizeof what, "'outputs' of task '%s'", tname);
    read_names(L, f[TK_OUTPUTS].value, VAR_NAMES, what, 0, &t->outputs);

    if (f[TK_PARAMS].value && !is_null(f[TK_PARAMS].value)) {
        snprintf(what, sizeof what, "'params' of task '%s'", tname);
        if (f[TK_PARAMS].value->type != YAML_MAPPING_NODE)
            error_at(L, pos_of(f[TK_PARAMS].value), "%s must be a mapping, got %s", what,
                     describe(f[TK_PARAMS].value, buf, sizeof buf));
        else
            t->params = node_to_json(L, f[TK_PARAMS].value, 1, what);
    }
    if (!t->params)
        t->params = json_object();

    snprintf(what, sizeof what, "'depends_on' of task '%s'", tname);
    read_names(L, f[TK_DEPENDS_ON].value, TASK_NAMES, what, 0, &t->depends_on);
    if (f[TK_EXECUTION].value)
        read_execution(L, f[TK_EXECUTION].value, t, tname);
    if (f[TK_PERMISSIONS].value)
        read_permissions(L, f[TK_PERMISSIONS].value, t, tname);
    if (f[TK_REQUIRES_AUTH].value && !parse_bool(f[TK_REQUIRES_AUTH].value, &t->requires_auth))
        error_at(L, pos_of(f[TK_REQUIRES_AUTH].value),
                 "'requires_auth' must be true or false, got %s (task '%s')",
                 describe(f[TK_REQUIRES_AUTH].value, buf, sizeof buf), tname);
}

/*
 * The task name index is an open-addressing hash table of task indices + 1 (0
 * is a free slot), at most half full: 8 bytes a task where a JSON object
 * spent ~100 in three allocations. Returns the slot of name: where its task
 * is, or the free slot where it would go.
 */
static size_t index_slot(const uint32_t *slots, size_t n_slots, const struct wf_task *tasks,
                         const char *name)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    size_t i;

    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 16777619u;
    for (i = h & (n_slots - 1); slots[i]; i = (i + 1) & (n_slots - 1))
        if (strcmp(tasks[slots[i] - 1].name, name) == 0)
            break;
    return i;
}

/* Doubles the task name index (or creates it); 0 when out of memory. */
static int index_grow(struct workflow *wf)
{
    size_t n = wf->index_slots ? wf->index_slots * 2 : 16;
    uint32_t *slots = calloc(n, sizeof *slots);

    if (!slots)
        return 0;
    for (size_t i = 0; i < wf->index_slots; i++)
        if (wf->task_index[i])
            slots[index_slot(slots, n, wf->tasks, wf->tasks[wf->task_index[i] - 1].name)] =
                wf->task_index[i];
    free(wf->task_index);
    wf->task_index = slots;
    wf->index_slots = n;
    return 1;
}

/* Adds the task to the name index, reporting a duplicate name. */
static void index_task(struct loader *L, size_t i)
{
    struct workflow *wf = L->wf;
    const struct wf_task *t = &wf->tasks[i];
    size_t slot;

    if (!*t->name)
        return;
    if (2 * (L->indexed + 1) > wf->index_slots && !index_grow(wf)) {
        error_at(L, t->name_pos, "out of memory");
        return;
    }
    slot = index_slot(wf->task_index, wf->index_slots, wf->tasks, t->name);
    if (wf->task_index[slot]) {
        error_at(L, t->name_pos, "duplicate task name '%s' (first defined at line %d)", t->name,
                 wf->tasks[wf->task_index[slot] - 1].name_pos.line);
        return;
    }
    wf->task_index[slot] = (uint32_t)i + 1;
    L->indexed++;
}

static void read_tasks(struct loader *L, struct ynode *tasks)
{
    struct workflow *wf = L->wf;
    size_t number = 0;
    char buf[64];

    if (tasks->type != YAML_SEQUENCE_NODE) {
        error_at(L, pos_of(tasks), "'tasks' must be a list of tasks, got %s",
                 describe(tasks, buf, sizeof buf));
        return;
    }
    if (tasks->len == 0) {
        error_at(L, pos_of(tasks), "'tasks' is empty: a workflow needs at least one task");
        return;
    }
    for (size_t i = 0; i < tasks->len; i++) {
        struct ynode *n = visit(L, tasks->u.kids[i]);
        struct wf_task *t;

        number++;
        if (!n)
            return;
        if (n->type != YAML_MAPPING_NODE) {
            error_at(L, pos_of(n), "task #%zu must be a mapping with 'name' and 'plugin', got %s",
                     number, describe(n, buf, sizeof buf));
            continue;
        }
        if (wf->n_tasks == L->cap_tasks) {
            size_t cap = L->cap_tasks ? L->cap_tasks * 2 : 8;
            struct wf_task *grown = realloc(wf->tasks, cap * sizeof *grown);
            if (!grown) {
                error_at(L, pos_of(n), "out of memory");
                return;
            }
            wf->tasks = grown;
            L->cap_tasks = cap;
        }
        t = &wf->tasks[wf->n_tasks++];
        memset(t, 0, sizeof *t);
        read_task(L, n, number, t);
        if (!t->name || !t->params) {
            error_at(L, pos_of(n), "out of memory");
            return;
        }
        index_task(L, wf->n_tasks - 1);
    }
    /* The doubling left up to half of the array unused; give it back. */
    if (wf->n_tasks < L->cap_tasks) {
        struct wf_task *fit = realloc(wf->tasks, wf->n_tasks * sizeof *fit);
        if (fit) {
            wf->tasks = fit;
            L->cap_tasks = wf->n_tasks;
        }
    }
}

/* ---------------------------------------------------------------- checks */

/*
 * Initial values travel on the bus like any variable, so they obey the same
 * size limit the tasks apply (FLOWBUS_MAX_VALUE, 256 KiB by default).
 */
static void check_value_sizes(struct loader *L)
{
    const char *env = getenv("FLOWBUS_MAX_VALUE");
    long limit = env ? strtol(env, NULL, 10) : 0;

    if (limit <= 0)
        limit = 256 * 1024;
    for (size_t i = 0; i < L->wf->n_vars; i++) {
        const struct wf_var *v = &L->wf->vars[i];
        size_t len = strlen(v->value);
        if (len > (size_t)limit)
            error_at(L, v->pos,
                     "the value of '%s' is %zu bytes, over the limit of %ld bytes "
                     "(FLOWBUS_MAX_VALUE)",
                     v->name, len, limit);
    }
}

/*
 * trigger must name inputs; the reactive keys mean nothing in a one-shot run,
 * which says so rather than ignoring them silently.
 */
static void check_reactive_keys(struct loader *L)
{
    const struct workflow *wf = L->wf;

    for (size_t i = 0; i < wf->n_tasks; i++) {
        const struct wf_task *t = &wf->tasks[i];
        for (size_t j = 0; j < t->trigger.n; j++) {
            size_t k;
            for (k = 0; k < t->inputs.n; k++)
                if (strcmp(t->trigger.items[j].name, t->inputs.items[k].name) == 0)
                    break;
            if (k == t->inputs.n)
                error_at(L, t->trigger.items[j].pos,
                         "'trigger' of task '%s' names '%s', which is not one of its inputs",
                         t->name, t->trigger.items[j].name);
        }
        if (!wf->reactive && (t->workers > 1 || t->trigger.n || t->queue))
            warning_at(L, t->pos,
                       "task '%s': execution.workers, trigger and queue apply in reactive mode "
                       "only (mode: reactive, or flowbus up); this one-shot run ignores them",
                       t->name);
    }
}

/* A task that needs permissions can only get them with a token, and a token
 * reaches tasks only from the workflow's env: (AUTH_TOKEN) or --set. */
static void check_auth(struct loader *L)
{
    struct workflow *wf = L->wf;

    if (var_find(L, "AUTH_TOKEN") >= 0)
        return;
    for (size_t i = 0; i < wf->n_tasks; i++) {
        const struct wf_task *t = &wf->tasks[i];
        if (t->permissions.n > 0)
            error_at(L, t->permissions.items[0].pos,
                     "task '%s' requires permission '%s' but the workflow never gives it a token: "
                     "add AUTH_TOKEN to env: (e.g. AUTH_TOKEN: \"{{ENV:AUTH_TOKEN}}\")",
                     t->name, t->permissions.items[0].name);
        else if (t->requires_auth)
            error_at(L, t->pos,
                     "task '%s' has requires_auth: true but the workflow never gives it a token: "
                     "add AUTH_TOKEN to env: (e.g. AUTH_TOKEN: \"{{ENV:AUTH_TOKEN}}\")",
                     t->name);
    }
}

static void check_depends(struct loader *L)
{
    struct workflow *wf = L->wf;
    const char **names = NULL;
    char clipped[NAME_CLIP + 1];

    for (size_t i = 0; i < wf->n_tasks; i++) {
        const struct wf_task *t = &wf->tasks[i];
        for (size_t j = 0; j < t->depends_on.n; j++) {
            const struct wf_name *d = &t->depends_on.items[j];
            const char *hint;

            if (!strcmp(d->name, t->name)) {
                error_at(L, d->pos, "task '%s' depends on itself", t->name);
                continue;
            }
            if (workflow__find_task(wf, d->name) >= 0)
                continue;
            /* Only a mistake pays for the list of names. */
            if (!names) {
                names = malloc(wf->n_tasks * sizeof *names);
                for (size_t k = 0; names && k < wf->n_tasks; k++)
                    names[k] = wf->tasks[k].name;
            }
            hint = names ? suggest(d->name, names, wf->n_tasks) : NULL;
            if (hint)
                error_at(L, d->pos, "task '%s' depends on unknown task '%s'; did you mean '%s'?",
                         t->name, d->name, hint);
            else
                error_at(L, d->pos, "task '%s' depends on unknown task '%s'", t->name,
                         clip(d->name, NAME_CLIP, clipped));
        }
    }
    free(names);
}

/*
 * Finds the first $NAME or ${NAME} inside single quotes in a shell command
 * whose NAME is one of inputs, scanning the quoting the way sh does (simply:
 * backslashes, single and double quotes). Returns its offset and sets *which,
 * or returns -1.
 */
static long single_quoted_input(const char *cmd, const struct wf_list *inputs, size_t from,
                                const char **which)
{
    enum { PLAIN, SINGLE, DOUBLE } state = PLAIN;

    for (size_t i = 0; cmd[i]; i++) {
        char c = cmd[i];
        switch (state) {
        case PLAIN:
            if (c == '\\' && cmd[i + 1])
                i++;
            else if (c == '\'')
                state = SINGLE;
            else if (c == '"')
                state = DOUBLE;
            break;
        case DOUBLE:
            if (c == '\\' && cmd[i + 1])
                i++;
            else if (c == '"')
                state = PLAIN;
            break;
        case SINGLE:
            if (c == '\'') {
                state = PLAIN;
            } else if (c == '$' && i >= from) {
                const char *p = cmd + i + 1;
                int braced = *p == '{';
                size_t len;
                if (braced)
                    p++;
                len = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_");
                if (len == 0 || (braced && p[len] != '}'))
                    break;
                for (size_t k = 0; k < inputs->n; k++) {
                    if (strlen(inputs->items[k].name) == len &&
                        !strncmp(inputs->items[k].name, p, len)) {
                        *which = inputs->items[k].name;
                        return (long)i;
                    }
                }
            }
            break;
        }
    }
    return -1;
}

static void check_cmd(struct loader *L, const struct wf_task *t, struct ynode *params_node)
{
    json_t *command = json_object_get(t->params, "command");
    json_t *argv = json_object_get(t->params, "argv");
    struct wf_pos at = params_node ? pos_of(params_node) : t->pos;
    const char *cmd;
    size_t from = 0;

    if (!command == !argv) {
        error_at(L, at,
                 "task '%s' (plugin cmd) needs exactly one of params 'command' (a shell "
                 "command) or 'argv' (a list), %s",
                 t->name, command ? "not both" : "got neither");
        return;
    }
    if (argv) {
        int ok = json_is_array(argv) && json_array_size(argv) > 0;
        for (size_t i = 0; ok && i < json_array_size(argv); i++)
            ok = json_is_string(json_array_get(argv, i));
        if (!ok)
            error_at(L, at, "params 'argv' of task '%s' must be a non-empty list of strings",
                     t->name);
        return;
    }
    cmd = json_string_value(command);
    if (!cmd) {
        error_at(L, at, "params 'command' of task '%s' must be a string", t->name);
        return;
    }
    for (;;) {
        const char *which = NULL;
        long off = single_quoted_input(cmd, &t->inputs, from, &which);
        if (off < 0)
            break;
        warning_at(L, at,
                   "the command of task '%s' uses $%s inside single quotes, where the shell "
                   "does not expand it; use double quotes",
                   t->name, which);
        from = (size_t)off + 1;
    }
}

/* The node of a task's params, for positions in cmd checks. */
static struct ynode *params_node_of(struct loader *L, struct ynode *task)
{
    for (size_t i = 0; i + 1 < task->len; i += 2) {
        const char *k = text(node_at(L->doc, task->u.kids[i]));
        if (k && !strcmp(k, "params"))
            return node_at(L->doc, task->u.kids[i + 1]);
    }
    return NULL;
}

/* Positions of params.command inside each cmd task, for the warnings. */
static void check_cmd_tasks(struct loader *L, struct ynode *tasks)
{
    struct workflow *wf = L->wf;
    size_t ti = 0;

    if (!tasks || tasks->type != YAML_SEQUENCE_NODE)
        return;
    /* Tasks were appended in list order, skipping entries that were not
     * mappings, so walking the list the same way pairs nodes with tasks. */
    for (size_t i = 0; i < tasks->len && ti < wf->n_tasks; i++) {
        struct ynode *n = node_at(L->doc, tasks->u.kids[i]);
        struct ynode *params, *at = NULL;
        const struct wf_task *t;

        if (!n || n->type != YAML_MAPPING_NODE)
            continue;
        t = &wf->tasks[ti++];
        if (!t->plugin || strcmp(t->plugin, "cmd"))
            continue;
        params = params_node_of(L, n);
        at = params;
        if (params && params->type == YAML_MAPPING_NODE) {
            for (size_t k = 0; k + 1 < params->len; k += 2) {
                const char *name = text(node_at(L->doc, params->u.kids[k]));
                if (name && (!strcmp(name, "command") || !strcmp(name, "argv")))
                    at = node_at(L->doc, params->u.kids[k + 1]);
            }
        }
        check_cmd(L, t, at);
    }
}

static void check_graph(struct loader *L)
{
    struct workflow *wf = L->wf;
    struct graph *g = graph__new(wf);
    size_t *cycle = NULL, n_cycle;
    struct wf_pos none = {0, 0};

    if (!g) {
        error_at(L, none, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < wf->n_tasks; i++) {
        const struct wf_task *t = &wf->tasks[i];
        for (size_t j = 0; j < t->inputs.n; j++) {
            long v = graph__var_index(g, t->inputs.items[j].name);
            const size_t *who;
            if (v >= 0 && !graph__var_is_initial(g, (size_t)v) &&
                graph__producers(g, (size_t)v, &who) == 0 && wf->reactive)
                /* A reactive flow is fed from outside too (flowbus set, mqtt). */
                warning_at(L, t->inputs.items[j].pos,
                           "input '%s' of task '%s' is set by no task and not in env: it fires "
                           "only when set from outside (flowbus set, mosquitto_pub)",
                           t->inputs.items[j].name, t->name);
            else if (v >= 0 && !graph__var_is_initial(g, (size_t)v) &&
                     graph__producers(g, (size_t)v, &who) == 0)
                error_at(L, t->inputs.items[j].pos,
                         "input '%s' of task '%s' is never set: no task outputs it and it is not "
                         "in env: or --set",
                         t->inputs.items[j].name, t->name);
        }
        for (size_t j = 0; j < t->outputs.n; j++) {
            long v = graph__var_index(g, t->outputs.items[j].name);
            const size_t *who;
            if (v >= 0 && graph__consumers(g, (size_t)v, &who) == 0)
                warning_at(L, t->outputs.items[j].pos,
                           "output '%s' of task '%s' is never used: no task lists it in its "
                           "inputs",
                           t->outputs.items[j].name, t->name);
        }
    }
    n_cycle = graph__find_cycle(g, &cycle);
    if (n_cycle > 0) {
        /* "A -> B (TRUE) -> A (depends_on)": each arrow says what links the pair. */
        size_t cap = 256, len = 0, at = 0;
        char *msg = malloc(cap);
        for (size_t i = 0; msg && i <= n_cycle; i++) {
            const struct wf_task *t = &wf->tasks[cycle[i % n_cycle]];
            char link[80] = "";
            size_t need;
            if (i > 0) {
                const struct wf_task *prev = &wf->tasks[cycle[i - 1]];
                snprintf(link, sizeof link, " (depends_on)");
                for (size_t k = 0; k < prev->outputs.n; k++)
                    if (list_has(&t->inputs, prev->outputs.items[k].name)) {
                        snprintf(link, sizeof link, " (%s)", prev->outputs.items[k].name);
                        break;
                    }
            }
            need = strlen(t->name) + strlen(link) + 8;
            if (len + need > cap) {
                char *bigger = realloc(msg, cap = (len + need) * 2);
                if (!bigger) {
                    free(msg);
                    msg = NULL;
                    break;
                }
                msg = bigger;
            }
            len += (size_t)sprintf(msg + len, "%s%s%s", i ? " -> " : "", t->name, link);
            if (i < n_cycle && (wf->tasks[cycle[i]].pos.line < wf->tasks[cycle[at]].pos.line))
                at = i;
        }
        error_at(L, wf->tasks[cycle[at]].pos, "dependency cycle: %s",
                 msg ? msg : "(out of memory describing it)");
        free(msg);
    }
out:
    free(cycle);
    graph__free(g);
}

/* ---------------------------------------------------------------- the document */

/*
 * The document is composed from libyaml's events exactly as yaml_parser_load
 * composes its own (the same nodes in the same order, an alias as a second
 * reference to its anchored node, the same errors left in the parser's error
 * fields, which yaml.h documents as public), only into struct ydoc.
 */

/* An anchor (&name) of the document being composed, for its aliases (*name). */
struct anchor {
    uint32_t node;
    yaml_mark_t mark;
};

/* A collection still open: its node, and where its children start in pending. */
struct open_node {
    uint32_t node;
    size_t first;
};

struct composer {
    yaml_parser_t *parser;
    struct ydoc *doc;
    struct open_node *open;
    size_t n_open, cap_open;
    uint32_t *pending; /* children of the open collections, innermost last */
    size_t n_pending, cap_pending;
    json_t *anchor_index; /* anchor name -> index in anchors */
    struct anchor *anchors;
    size_t n_anchors, cap_anchors;
};

/*
 * Room for need (> 0) items of size bytes in items (capacity *cap, doubled as
 * needed). Returns the array, moved or not, or NULL (items untouched) when
 * out of memory.
 */
static void *grow(void *items, size_t *cap, size_t need, size_t size)
{
    size_t n = *cap ? *cap : 16;
    void *bigger;

    if (need <= *cap)
        return items;
    while (n < need) {
        if (n > SIZE_MAX / 2 / size)
            return NULL;
        n *= 2;
    }
    bigger = realloc(items, n * size);
    if (bigger)
        *cap = n;
    return bigger;
}

static void ydoc_free(struct ydoc *doc)
{
    free(doc->nodes);
    free(doc->text);
    free(doc->kids);
    memset(doc, 0, sizeof *doc);
}

/* Records an error the way libyaml's loader does; returns 0 for the caller to return. */
static int compose_error(struct composer *c, enum yaml_error_type_e error, const char *context,
                         yaml_mark_t context_mark, const char *problem, yaml_mark_t problem_mark)
{
    c->parser->error = error;
    if (context) {
        c->parser->context = context;
        c->parser->context_mark = context_mark;
    }
    c->parser->problem = problem;
    c->parser->problem_mark = problem_mark;
    return 0;
}

static int out_of_memory(struct composer *c)
{
    yaml_mark_t none = {0, 0, 0};

    return compose_error(c, YAML_MEMORY_ERROR, NULL, none, NULL, none);
}

static int register_anchor(struct composer *c, const char *name, uint32_t node, yaml_mark_t mark)
{
    json_t *first = json_object_get(c->anchor_index, name);
    struct anchor *grown;

    if (first)
        return compose_error(c, YAML_COMPOSER_ERROR, "found duplicate anchor; first occurrence",
                             c->anchors[json_integer_value(first)].mark, "second occurrence",
                             mark);
    grown = grow(c->anchors, &c->cap_anchors, c->n_anchors + 1, sizeof *c->anchors);
    if (!grown)
        return out_of_memory(c);
    c->anchors = grown;
    if (json_object_set_new_nocheck(c->anchor_index, name,
                                    json_integer((json_int_t)c->n_anchors)))
        return out_of_memory(c);
    c->anchors[c->n_anchors].node = node;
    c->anchors[c->n_anchors].mark = mark;
    c->n_anchors++;
    return 1;
}

/* Adds node to the innermost open collection (the root has none). */
static int add_child(struct composer *c, uint32_t node)
{
    uint32_t *grown;

    if (c->n_open == 0)
        return 1;
    grown = grow(c->pending, &c->cap_pending, c->n_pending + 1, sizeof *c->pending);
    if (!grown)
        return out_of_memory(c);
    c->pending = grown;
    c->pending[c->n_pending++] = node;
    return 1;
}

/* Appends the node that event e (a scalar or a collection's start) begins; *id is its id. */
static int add_node(struct composer *c, const yaml_event_t *e, uint32_t *id)
{
    struct ydoc *d = c->doc;
    struct ynode *n, *nodes;
    const yaml_char_t *anchor;

    if (d->n >= UINT32_MAX - 1)
        return out_of_memory(c);
    nodes = grow(d->nodes, &d->cap, d->n + 1, sizeof *d->nodes);
    if (!nodes)
        return out_of_memory(c);
    d->nodes = nodes;
    n = &d->nodes[d->n];
    memset(n, 0, sizeof *n);
    n->pos = mark_pos(e->start_mark);
    if (e->type == YAML_SCALAR_EVENT) {
        size_t len = e->data.scalar.length;
        yaml_scalar_style_t style = e->data.scalar.style;
        size_t quote = style == YAML_PLAIN_SCALAR_STYLE ? 0 : 1;
        char *text;

        if (len >= UINT32_MAX)
            return out_of_memory(c);
        text = grow(d->text, &d->text_cap, d->text_len + len + 1, 1);
        if (!text)
            return out_of_memory(c);
        d->text = text;
        memcpy(d->text + d->text_len, e->data.scalar.value, len);
        d->text[d->text_len + len] = '\0';
        n->type = YAML_SCALAR_NODE;
        n->style = (unsigned char)style;
        n->len = (uint32_t)len;
        n->u.at = d->text_len;
        /* What pos_in_scalar needs of the end mark, so that it need not be kept. */
        n->exact = (style == YAML_PLAIN_SCALAR_STYLE || style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                    style == YAML_DOUBLE_QUOTED_SCALAR_STYLE) &&
                   e->start_mark.line == e->end_mark.line &&
                   e->end_mark.index - e->start_mark.index == len + 2 * quote;
        d->text_len += len + 1;
        anchor = e->data.scalar.anchor;
    } else if (e->type == YAML_SEQUENCE_START_EVENT) {
        n->type = YAML_SEQUENCE_NODE;
        anchor = e->data.sequence_start.anchor;
    } else {
        n->type = YAML_MAPPING_NODE;
        anchor = e->data.mapping_start.anchor;
    }
    *id = (uint32_t)d->n++;
    return !anchor || register_anchor(c, (const char *)anchor, *id, e->start_mark);
}

/* Opens collection node: its children gather in pending until it ends. */
static int open_collection(struct composer *c, uint32_t node)
{
    struct open_node *grown = grow(c->open, &c->cap_open, c->n_open + 1, sizeof *c->open);

    if (!grown)
        return out_of_memory(c);
    c->open = grown;
    c->open[c->n_open].node = node;
    c->open[c->n_open].first = c->n_pending;
    c->n_open++;
    return 1;
}

/* Ends the innermost open collection: its children move to the document's kids. */
static int close_collection(struct composer *c)
{
    struct ydoc *d = c->doc;
    struct open_node *o;
    size_t count;
    uint32_t *kids;

    if (c->n_open == 0)
        return 1;
    o = &c->open[c->n_open - 1];
    count = c->n_pending - o->first;
    if (count >= UINT32_MAX)
        return out_of_memory(c);
    if (count > 0) {
        kids = grow(d->kids, &d->cap_kids, d->n_kids + count, sizeof *d->kids);
        if (!kids)
            return out_of_memory(c);
        d->kids = kids;
        memcpy(d->kids + d->n_kids, c->pending + o->first, count * sizeof *d->kids);
    }
    d->nodes[o->node].len = (uint32_t)count;
    d->nodes[o->node].u.at = d->n_kids;
    d->n_kids += count;
    c->n_pending = o->first;
    c->n_open--;
    return 1;
}

static int compose_event(struct composer *c, const yaml_event_t *e)
{
    json_t *anchor;
    uint32_t id;

    switch (e->type) {
    case YAML_ALIAS_EVENT:
        anchor = json_object_get(c->anchor_index, (const char *)e->data.alias.anchor);
        if (!anchor)
            return compose_error(c, YAML_COMPOSER_ERROR, NULL, e->start_mark,
                                 "found undefined alias", e->start_mark);
        return add_child(c, c->anchors[json_integer_value(anchor)].node);
    case YAML_SCALAR_EVENT:
        return add_node(c, e, &id) && add_child(c, id);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        return add_node(c, e, &id) && add_child(c, id) && open_collection(c, id);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        return close_collection(c);
    default:
        return 1;
    }
}

/*
 * Arrays grown by doubling are cut to size, and offsets become pointers now
 * that nothing moves any more.
 */
static void finish_document(struct ydoc *d)
{
    void *fit;

    if (d->n < d->cap && (fit = realloc(d->nodes, d->n * sizeof *d->nodes)) != NULL)
        d->nodes = fit;
    if (d->text_len < d->text_cap && (fit = realloc(d->text, d->text_len)) != NULL)
        d->text = fit;
    if (d->n_kids > 0 && d->n_kids < d->cap_kids &&
        (fit = realloc(d->kids, d->n_kids * sizeof *d->kids)) != NULL)
        d->kids = fit;
    d->cap = d->n;
    d->text_cap = d->text_len;
    for (size_t i = 0; i < d->n; i++) {
        struct ynode *n = &d->nodes[i];
        if (n->type == YAML_SCALAR_NODE)
            n->u.value = d->text + n->u.at;
        else
            n->u.kids = d->kids ? d->kids + n->u.at : NULL;
    }
}

/*
 * Composes the next document of the stream into doc, as yaml_parser_load
 * would. doc has no nodes when the stream has no further document. Returns 0
 * on an error, which the parser's error fields describe (doc is then empty).
 */
static int compose(yaml_parser_t *parser, struct ydoc *doc)
{
    struct composer c = {0};
    yaml_event_t e;
    int have_event = 0, ok = 0;

    c.parser = parser;
    c.doc = doc;
    memset(doc, 0, sizeof *doc);
    if (!parser->stream_start_produced) {
        if (!yaml_parser_parse(parser, &e))
            goto out;
        yaml_event_delete(&e); /* STREAM-START */
    }
    if (parser->stream_end_produced) {
        ok = 1;
        goto out;
    }
    if (!yaml_parser_parse(parser, &e))
        goto out;
    have_event = 1;
    if (e.type == YAML_STREAM_END_EVENT) {
        ok = 1;
        goto out;
    }
    /* DOCUMENT-START, then the nodes until DOCUMENT-END. */
    c.anchor_index = json_object();
    if (!c.anchor_index) {
        out_of_memory(&c);
        goto out;
    }
    for (;;) {
        yaml_event_delete(&e);
        have_event = 0;
        if (!yaml_parser_parse(parser, &e))
            goto out;
        have_event = 1;
        if (e.type == YAML_DOCUMENT_END_EVENT)
            break;
        if (!compose_event(&c, &e))
            goto out;
    }
    finish_document(doc);
    ok = 1;
out:
    if (have_event)
        yaml_event_delete(&e);
    free(c.open);
    free(c.pending);
    free(c.anchors);
    json_decref(c.anchor_index);
    if (!ok)
        ydoc_free(doc);
    return ok;
}

/* ---------------------------------------------------------------- loading */

/* The file's base name without its extension, as a default workflow name. */
static char *default_name(const char *file)
{
    const char *base = strrchr(file, '/');
    char *name = strdup(base ? base + 1 : file);
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
        error_at(L, start, "the file is empty: expected a mapping with a 'workflow' key");
        return;
    }
    if (root->type != YAML_MAPPING_NODE) {
        error_at(L, pos_of(root), "expected a mapping with a 'workflow' key at the top, got %s",
                 describe(root, buf, sizeof buf));
        return;
    }
    read_fields(L, root, TOP_KEYS, COUNT(TOP_KEYS), "the top level", top);
    if (!top[0].value) {
        error_at(L, pos_of(root), "missing 'workflow' key at the top of the file");
        return;
    }
    if (top[0].value->type != YAML_MAPPING_NODE) {
        error_at(L, pos_of(top[0].value),
                 "'workflow' must be a mapping with 'name', 'env' and 'tasks', got %s",
                 describe(top[0].value, buf, sizeof buf));
        return;
    }
    read_fields(L, top[0].value, WORKFLOW_KEYS, WK_COUNT, "workflow", f);
    if (f[WK_NAME].value && (s = string_field(L, &f[WK_NAME], "workflow")) != NULL)
        wf->name = strdup(s);
    if (f[WK_DESCRIPTION].value && (s = string_field(L, &f[WK_DESCRIPTION], "workflow")) != NULL)
        wf->description = strdup(s);
    if (f[WK_VERSION].value && (s = string_field(L, &f[WK_VERSION], "workflow")) != NULL)
        wf->version = strdup(s);
    if (f[WK_MODE].value) {
        s = text(f[WK_MODE].value);
        if (s && strcmp(s, "reactive") == 0)
            wf->reactive = 1;
        else if (!s || strcmp(s, "oneshot") != 0)
            error_at(L, pos_of(f[WK_MODE].value), "'mode' must be oneshot or reactive, got %s",
                     describe(f[WK_MODE].value, buf, sizeof buf));
    }
    if (L->opts && L->opts->reactive)
        wf->reactive = 1;
    if (f[WK_ENV].value)
        read_env(L, f[WK_ENV].value);
    if (f[WK_AUTH].value)
        read_auth(L, f[WK_AUTH].value);
    apply_settings(L);
    if (!f[WK_TASKS].value) {
        error_at(L, pos_of(top[0].value), "'workflow' has no 'tasks' list");
        return;
    }
    read_tasks(L, f[WK_TASKS].value);
    if (L->over_budget)
        return;
    check_depends(L);
    check_reactive_keys(L);
    check_value_sizes(L);
    check_auth(L);
    check_cmd_tasks(L, f[WK_TASKS].value);
    check_graph(L);
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
            error_at(L, at, "YAML syntax error: %s", p->problem ? p->problem : "unknown error");
        else if (p->problem && strstr(p->problem, "octet"))
            error_at(L, at, "YAML syntax error: %s (byte 0x%02X); a workflow file must be UTF-8",
                     p->problem, (unsigned)p->problem_value & 0xFF);
        else
            error_at(L, at, "YAML syntax error: %s (U+%04X)",
                     p->problem ? p->problem : "unknown error", (unsigned)p->problem_value);
    } else if (p->error == YAML_MEMORY_ERROR)
        error_at(L, at, "out of memory while parsing YAML");
    else if (p->context)
        error_at(L, at, "YAML syntax error: %s (%s that started at line %d)",
                 p->problem ? p->problem : "error", p->context, (int)p->context_mark.line + 1);
    else
        error_at(L, at, "YAML syntax error: %s", p->problem ? p->problem : "unknown error");
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

    L.file = file;
    L.opts = opts;
    L.diags = diags;
    L.doc = &doc;
    L.var_index = json_object();
    wf = calloc(1, sizeof *wf);
    if (!wf || !L.var_index || !yaml_parser_initialize(&parser)) {
        struct wf_pos none = {0, 0};
        error_at(&L, none, "out of memory");
        goto out;
    }
    have_parser = 1;
    L.wf = wf;
    wf->file = strdup(file);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text_, len);
    if (!compose(&parser, &doc)) {
        syntax_error(&L, &parser, text_, len);
        goto out;
    }
    L.budget = NODE_BUDGET + VISITS_PER_NODE * doc.n;
    /* A second document would be silently ignored; refuse it instead. */
    if (!compose(&parser, &extra))
        syntax_error(&L, &parser, text_, len);
    else if (extra.n > 0)
        error_at(&L, pos_of(&extra.nodes[0]),
                 "a second YAML document in the file: a workflow file holds one document");
    ydoc_free(&extra);
    /* The parser's buffers have done their work: free them before the walk. */
    yaml_parser_delete(&parser);
    have_parser = 0;
    read_document(&L, node_at(&doc, 0));
    if (!wf->name)
        wf->name = default_name(file);
    if (!wf->file || !wf->name) {
        struct wf_pos none = {0, 0};
        error_at(&L, none, "out of memory");
    }
out:
    diags_sort(diags);
    ydoc_free(&doc);
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
    struct loader L = {0};
    struct wf_pos none = {0, 0};
    FILE *f = NULL;
    struct stat st;
    char *buf = NULL;
    size_t len = 0, cap = 0, first = 8192;

    L.diags = diags;
    f = fopen(path, "rb");
    if (!f) {
        error_at(&L, none, "cannot read the workflow file: %s", strerror(errno));
        goto out;
    }
    /* A regular file is read into a buffer of its size, plus the byte that
     * shows its end: growing by doubling held up to twice the file. */
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= 0 &&
        (uintmax_t)st.st_size < SIZE_MAX / 4)
        first = (size_t)st.st_size + 1;
    for (;;) {
        size_t got;
        if (len == cap) {
            size_t want = cap ? cap * 2 : first;
            char *bigger = realloc(buf, want);
            if (!bigger) {
                error_at(&L, none, "out of memory reading the workflow file");
                goto out;
            }
            buf = bigger;
            cap = want;
        }
        got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        error_at(&L, none, "cannot read the workflow file: %s", strerror(errno));
        goto out;
    }
    wf = workflow__load_buffer(path, buf, len, opts, diags);
out:
    if (f)
        fclose(f);
    free(buf);
    return wf;
}

void workflow__free(struct workflow *wf)
{
    if (!wf)
        return;
    for (size_t i = 0; i < wf->n_vars; i++) {
        free(wf->vars[i].name);
        free(wf->vars[i].value);
    }
    free(wf->vars);
    for (size_t i = 0; i < wf->n_tasks; i++)
        task_free(&wf->tasks[i]);
    free(wf->tasks);
    free(wf->task_index);
    free(wf->file);
    free(wf->name);
    free(wf->description);
    free(wf->auth.url);
    free(wf->auth.ca_file);
    free(wf->version);
    free(wf);
}

long workflow__find_task(const struct workflow *wf, const char *name)
{
    uint32_t i;

    if (!wf || !name)
        return -1;
    if (!wf->task_index) {
        /* A workflow built by hand, without the loader's index. */
        for (size_t k = 0; k < wf->n_tasks; k++)
            if (wf->tasks[k].name && !strcmp(wf->tasks[k].name, name))
                return (long)k;
        return -1;
    }
    i = wf->task_index[index_slot(wf->task_index, wf->index_slots, wf->tasks, name)];
    return i ? (long)i - 1 : -1;
}

/* ---------------------------------------------------------------- JSON */

/*
 * The workflow JSON repeats much of itself: thousands of tasks with the same
 * execution settings, empty lists, the same plugin, depends_on naming tasks
 * whose names are already in the document. Jansson values are reference
 * counted, so an equal value is built once and referenced again; at 1,000
 * tasks that is ~2 MB less for the coordinator to hold while it publishes the
 * workflow, and the text json_dumps writes is the same.
 */
struct json_share {
    const struct workflow *wf;
    json_t *empty;                 /* the one empty list */
    json_t **names;                /* task i's name as a JSON string, built on first use */
    const struct wf_task *exec_of; /* the task whose execution object is exec */
    json_t *exec;
    const char *plugin_of; /* the plugin name that plugin holds */
    json_t *plugin;
};

static void share_init(struct json_share *sh, const struct workflow *wf)
{
    memset(sh, 0, sizeof *sh);
    sh->wf = wf;
    sh->empty = json_array();
    sh->names = calloc(wf->n_tasks + 1, sizeof *sh->names);
}

static void share_free(struct json_share *sh)
{
    for (size_t i = 0; sh->names && i < sh->wf->n_tasks; i++)
        json_decref(sh->names[i]);
    free(sh->names);
    json_decref(sh->empty);
    json_decref(sh->exec);
    json_decref(sh->plugin);
}

/* Task i's name as a JSON string: a new reference, or NULL. */
static json_t *share_name(struct json_share *sh, size_t i)
{
    if (!sh->names)
        return json_string(sh->wf->tasks[i].name);
    if (!sh->names[i])
        sh->names[i] = json_string(sh->wf->tasks[i].name);
    return json_incref(sh->names[i]);
}

static json_t *names_json(struct json_share *sh, const struct wf_list *l, int tasks)
{
    json_t *a;

    if (l->n == 0 && sh->empty)
        return json_incref(sh->empty);
    a = json_array();
    for (size_t i = 0; a && i < l->n; i++) {
        long k = tasks ? workflow__find_task(sh->wf, l->items[i].name) : -1;
        json_array_append_new(a, k >= 0 ? share_name(sh, (size_t)k)
                                        : json_string(l->items[i].name));
    }
    return a;
}

static int same_names(const struct wf_list *a, const struct wf_list *b)
{
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->items[i].name, b->items[i].name) != 0)
            return 0;
    return 1;
}

/* 1 if the execution objects of a and b would be equal. */
static int same_execution(const struct wf_task *a, const struct wf_task *b)
{
    return a->timeout == b->timeout && !a->async == !b->async && a->workers == b->workers &&
           a->retries == b->retries && a->retry_delay == b->retry_delay &&
           a->retry_max_delay == b->retry_max_delay && a->queue == b->queue &&
           a->restart == b->restart && same_names(&a->trigger, &b->trigger);
}

static json_t *execution_json(struct json_share *sh, const struct wf_task *t)
{
    json_t *exec;

    if (sh->exec && same_execution(sh->exec_of, t))
        return json_incref(sh->exec);
    exec = json_object();
    if (!exec)
        return NULL;
    json_object_set_new(exec, "timeout", json_real(t->timeout));
    json_object_set_new(exec, "async", json_boolean(t->async));
    json_object_set_new(exec, "workers", json_integer(t->workers));
    json_object_set_new(exec, "retries", json_integer(t->retries));
    json_object_set_new(exec, "retry_delay", json_real(t->retry_delay));
    json_object_set_new(exec, "retry_max_delay", json_real(t->retry_max_delay));
    json_object_set_new(exec, "queue", json_integer(t->queue));
    json_object_set_new(exec, "restart", json_string(RESTART_POLICIES[t->restart]));
    json_object_set_new(exec, "trigger", names_json(sh, &t->trigger, 0));
    json_decref(sh->exec);
    sh->exec = json_incref(exec);
    sh->exec_of = t;
    return exec;
}

static json_t *plugin_json(struct json_share *sh, const char *plugin)
{
    if (!sh->plugin || strcmp(sh->plugin_of, plugin) != 0) {
        json_decref(sh->plugin);
        sh->plugin = json_string(plugin);
        sh->plugin_of = plugin;
    }
    return json_incref(sh->plugin);
}

/* Task i as JSON, or NULL when out of memory. */
static json_t *task_json(struct json_share *sh, size_t i)
{
    const struct wf_task *t = &sh->wf->tasks[i];
    json_t *task = json_object();

    if (!task)
        return NULL;
    json_object_set_new(task, "name", share_name(sh, i));
    json_object_set_new(task, "plugin", plugin_json(sh, t->plugin ? t->plugin : ""));
    if (t->description)
        json_object_set_new(task, "description", json_string(t->description));
    json_object_set_new(task, "inputs", names_json(sh, &t->inputs, 0));
    json_object_set_new(task, "outputs", names_json(sh, &t->outputs, 0));
    json_object_set_new(task, "depends_on", names_json(sh, &t->depends_on, 1));
    /* The workflow's own params, referenced rather than copied: see workflow.h. */
    json_object_set_new(task, "params", t->params ? json_incref(t->params) : json_object());
    json_object_set_new(task, "execution", execution_json(sh, t));
    json_object_set_new(task, "permissions", names_json(sh, &t->permissions, 0));
    json_object_set_new(task, "requires_auth", json_boolean(t->requires_auth));
    return task;
}

/*
 * The root object with every key but "tasks", which is set to tasks (a new
 * reference is taken) in its place; NULL when out of memory.
 */
static json_t *root_json(const struct workflow *wf, json_t *tasks)
{
    json_t *root = json_object(), *env = json_object();

    if (!root || !env)
        goto fail;
    json_object_set_new(root, "name", json_string(wf->name ? wf->name : ""));
    json_object_set_new(root, "file", json_string(wf->file ? wf->file : ""));
    if (wf->description)
        json_object_set_new(root, "description", json_string(wf->description));
    if (wf->version)
        json_object_set_new(root, "version", json_string(wf->version));
    json_object_set_new(root, "mode", json_string(wf->reactive ? "reactive" : "oneshot"));
    if (wf->auth.set) {
        json_t *auth = json_object();
        if (wf->auth.url)
            json_object_set_new(auth, "url", json_string(wf->auth.url));
        json_object_set_new(auth, "timeout", json_real(wf->auth.timeout));
        json_object_set_new(auth, "cache_ttl", json_real(wf->auth.cache_ttl));
        json_object_set_new(root, "auth", auth);
    }
    for (size_t i = 0; i < wf->n_vars; i++) {
        const struct wf_var *v = &wf->vars[i];
        json_object_set_new(env, v->name,
                            json_string(v->secret  ? "<secret>"
                                        : v->value ? v->value
                                                   : ""));
    }
    json_object_set_new(root, "env", env);
    env = NULL;
    if (json_object_set(root, "tasks", tasks))
        goto fail;
    return root;
fail:
    json_decref(root);
    json_decref(env);
    return NULL;
}

json_t *workflow__to_json(const struct workflow *wf)
{
    struct json_share sh;
    json_t *root = NULL, *tasks = NULL;

    if (!wf)
        return NULL;
    share_init(&sh, wf);
    tasks = json_array();
    if (!tasks || !sh.empty)
        goto fail;
    for (size_t i = 0; i < wf->n_tasks; i++)
        if (json_array_append_new(tasks, task_json(&sh, i)))
            goto fail;
    root = root_json(wf, tasks);
fail:
    json_decref(tasks);
    share_free(&sh);
    return root;
}

/* A growing string that json_dump_callback appends to. */
struct text {
    char *s;
    size_t len, cap;
};

static int text_append(const char *buf, size_t size, void *data)
{
    struct text *t = data;

    if (t->len + size + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        char *bigger;
        while (cap < t->len + size + 1)
            cap *= 2;
        bigger = realloc(t->s, cap);
        if (!bigger)
            return -1;
        t->s = bigger;
        t->cap = cap;
    }
    memcpy(t->s + t->len, buf, size);
    t->len += size;
    t->s[t->len] = '\0';
    return 0;
}

/* Appends v as compact JSON; 0 on success. */
static int text_dump(struct text *t, const json_t *v)
{
    return json_dump_callback(v, text_append, t, JSON_COMPACT | JSON_ENCODE_ANY);
}

char *workflow__to_json_text(const struct workflow *wf, json_t *extra)
{
    struct json_share sh;
    struct text out = {0};
    json_t *root = NULL, *placeholder = NULL, *value, *key = NULL;
    const char *name;
    char *fit;
    int failed = 1, first = 1;

    if (!wf)
        return NULL;
    share_init(&sh, wf);
    placeholder = json_array();
    if (!placeholder || !sh.empty)
        goto out;
    root = root_json(wf, placeholder);
    if (!root || (extra && json_object_update(root, extra)))
        goto out;
    /* The members in the order json_dumps writes them; "tasks" one task at a time. */
    if (text_append("{", 1, &out))
        goto out;
    json_object_foreach(root, name, value) {
        key = json_string(name);
        if (!key || (!first && text_append(",", 1, &out)) || text_dump(&out, key) ||
            text_append(":", 1, &out))
            goto out;
        json_decref(key);
        key = NULL;
        first = 0;
        if (value != placeholder) {
            if (text_dump(&out, value))
                goto out;
            continue;
        }
        if (text_append("[", 1, &out))
            goto out;
        for (size_t i = 0; i < wf->n_tasks; i++) {
            json_t *task = task_json(&sh, i);
            int err = !task || (i > 0 && text_append(",", 1, &out)) || text_dump(&out, task);
            json_decref(task);
            if (err)
                goto out;
        }
        if (text_append("]", 1, &out))
            goto out;
    }
    if (text_append("}", 1, &out))
        goto out;
    failed = 0;
out:
    json_decref(key);
    json_decref(root);
    json_decref(placeholder);
    share_free(&sh);
    if (failed) {
        free(out.s);
        out.s = NULL;
    } else if ((fit = realloc(out.s, out.len + 1)) != NULL) {
        /* The doubling left up to half of the buffer unused; give it back. */
        out.s = fit;
    }
    return out.s;
}
