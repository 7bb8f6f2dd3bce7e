/*
 * emit_scan.h - the scan of a workflow file's text that emit_source.c runs and
 * emit_comments.c reads (private to those two files): the text's lines, the
 * anchors (where each key and list item starts, with its path) and the
 * scalars' extents, both in text order.
 */
#ifndef FLOWBUS_CORE_MODEL_EMIT_SCAN_H
#define FLOWBUS_CORE_MODEL_EMIT_SCAN_H

#include <stddef.h>

struct emit_source;

/* Where a key or list item starts (0-based line and column in characters). */
struct anchor {
    size_t line, col;
    long task;
    char *path;
};

/* The extent of a scalar in the text, from its start mark to its end mark. */
struct extent {
    size_t l1, c1, l2, c2;
};

struct frame {
    int is_map;
    int expect_key;
    size_t index;
    char *path;    /* the collection's own path */
    char *pending; /* a mapping's current key path */
};

struct scan {
    struct emit_source *src;
    const char *text;
    size_t len;
    size_t *lines; /* offset of each line's start */
    size_t *ends;  /* and of its end, before its line break */
    size_t n_lines;
    struct anchor *anchors;
    size_t n_anchors, cap_anchors;
    struct extent *extents;
    size_t n_extents, cap_extents;
    struct frame *stack;
    size_t depth, cap_stack;
    int failed;
};

/* The text of line i, without its line break; its length in *n. */
const char *emit_scan__line_at(const struct scan *S, size_t i, size_t *n);

/* Splits the text into lines (S->lines, S->ends) as libyaml counts them; 0 when out of memory. */
int emit_scan__split_lines(struct scan *S);

/* emit_comments.c: finds the comments line by line and attaches them to the anchors (0: no memory).
 */
int emit_comments__attach(struct scan *S);

/* emit_comments.c: orders src's comments by task for emit_source__comments; 0: no memory. */
int emit_comments__index(struct emit_source *src);

#endif
