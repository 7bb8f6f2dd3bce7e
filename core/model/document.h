/*
 * document.h - the compact YAML document the loader walks (see document.c).
 *
 * A workflow file is parsed with libyaml's event parser into a tree of our
 * own, struct ydoc, instead of libyaml's document. An alias is kept as a
 * second reference to the anchored node, as libyaml's own loader does, so a
 * small file can describe an exponentially large tree (the "billion laughs"
 * bomb) or even a loop: whoever walks the tree counts what it visits (the
 * loader does, see load.h).
 *
 * Collections nest at most DOCUMENT_MAX_DEPTH deep: composing stops at the
 * first node deeper than that (see document.c for why the bound is also what
 * keeps libyaml linear).
 *
 * The small readers below are inline because the loader calls them for every
 * node it touches; they only look at one node.
 */
#ifndef FLOWBUS_CORE_MODEL_DOCUMENT_H
#define FLOWBUS_CORE_MODEL_DOCUMENT_H

#include "workflow.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <yaml.h>

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

/*
 * Deepest nesting of lists and mappings in a workflow file, the root being
 * level 1. A workflow uses 5 levels down to a task's params, whose own
 * bound is 64 (load_tasks.c); 100 leaves room for both and is far below what
 * makes libyaml slow.
 */
#define DOCUMENT_MAX_DEPTH 100

/*
 * The problem document__compose leaves in the parser's error fields (a
 * YAML_COMPOSER_ERROR, at the collection that opens level
 * DOCUMENT_MAX_DEPTH + 1) when the document nests too deep; compare the
 * pointer to tell it from libyaml's own problems.
 */
extern const char document__too_deep[];

/*
 * Composes the next document of the stream into doc, as yaml_parser_load
 * would. doc has no nodes when the stream has no further document. Returns 0
 * on an error, which the parser's error fields describe (doc is then empty).
 * The caller frees doc with document__free either way.
 */
int document__compose(yaml_parser_t *parser, struct ydoc *doc);

/* Frees what doc holds and empties it (doc itself is the caller's). */
void document__free(struct ydoc *doc);

static inline struct wf_pos pos_of(const struct ynode *n)
{
    return n->pos;
}

static inline struct wf_pos mark_pos(yaml_mark_t m)
{
    struct wf_pos p = {(int)m.line + 1, (int)m.column + 1};
    return p;
}

/* The node with this id, or NULL; not counted against the loader's budget. */
static inline struct ynode *node_at(const struct ydoc *doc, uint32_t id)
{
    return id < doc->n ? &doc->nodes[id] : NULL;
}

static inline const char *scalar(const struct ynode *n)
{
    return n && n->type == YAML_SCALAR_NODE ? n->u.value : NULL;
}

static inline int is_plain(const struct ynode *n)
{
    return n->type == YAML_SCALAR_NODE && n->style == YAML_PLAIN_SCALAR_STYLE;
}

static inline int is_null(const struct ynode *n)
{
    const char *s = scalar(n);

    return s && is_plain(n) &&
           (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
            !strcmp(s, "NULL"));
}

/* A scalar that is usable as text: not null, no NUL byte inside. */
static inline const char *text(const struct ynode *n)
{
    const char *s = scalar(n);

    if (!s || is_null(n) || strlen(s) != n->len)
        return NULL;
    return s;
}

#endif
