/*
 * document.c - composes a workflow file's YAML into struct ydoc (document.h).
 *
 * The document is composed from libyaml's events exactly as yaml_parser_load
 * composes its own (the same nodes in the same order, an alias as a second
 * reference to its anchored node, the same errors left in the parser's error
 * fields, which yaml.h documents as public), only into struct ydoc.
 *
 * Composing stops at the first collection deeper than DOCUMENT_MAX_DEPTH. The
 * bound is not only against a silly tree: libyaml's scanner walks its stack
 * of possible simple keys, one entry per open flow collection, for every
 * token it fetches (yaml_parser_stale_simple_keys and the loop of
 * yaml_parser_fetch_more_tokens, as perf shows), so N levels of `[[[...` cost
 * N^2/2 steps: 200,000 levels took two minutes. The scanner reads at most a
 * simple key's 1024 characters ahead of the events, so refusing the event at
 * level 101 stops it after a few thousand steps, and below the bound each
 * token costs at most a bounded number of steps: loading is linear.
 */
#include "document.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

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

void document__free(struct ydoc *doc)
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
                             c->anchors[json_integer_value(first)].mark, "second occurrence", mark);
    grown = grow(c->anchors, &c->cap_anchors, c->n_anchors + 1, sizeof *c->anchors);
    if (!grown)
        return out_of_memory(c);
    c->anchors = grown;
    if (json_object_set_new_nocheck(c->anchor_index, name, json_integer((json_int_t)c->n_anchors)))
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

const char document__too_deep[] = "lists and mappings nested too deep";

/*
 * Opens collection node, which event e starts: its children gather in pending
 * until it ends.
 */
static int open_collection(struct composer *c, uint32_t node, const yaml_event_t *e)
{
    struct open_node *grown;

    /* The root is level 1, so n_open collections are open above this one. */
    if (c->n_open >= DOCUMENT_MAX_DEPTH)
        return compose_error(c, YAML_COMPOSER_ERROR, NULL, e->start_mark, document__too_deep,
                             e->start_mark);
    grown = grow(c->open, &c->cap_open, c->n_open + 1, sizeof *c->open);
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
        return add_node(c, e, &id) && add_child(c, id) && open_collection(c, id, e);
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

int document__compose(yaml_parser_t *parser, struct ydoc *doc)
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
        document__free(doc);
    return ok;
}
