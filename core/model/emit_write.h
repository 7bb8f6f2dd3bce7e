/*
 * emit_write.h - the canonical emitter's line writer (private to core/model's
 * emit*.c files; emit_write.c): lines with their indentation and comments,
 * the JSON path of what is being written, and any JSON value as a YAML key:
 * value entry, in flow style when it fits and block style otherwise.
 */
#ifndef FLOWBUS_CORE_MODEL_EMIT_WRITE_H
#define FLOWBUS_CORE_MODEL_EMIT_WRITE_H

#include "emit.h"
#include "emit_source.h"
#include "emit_text.h"

#include <jansson.h>
#include <stddef.h>

/* A task outside the file, which no comment can belong to. */
#define NO_TASK (-3)

struct writer {
    struct sbuf b;
    struct sbuf path;  /* the anchor path inside the current task, or the workflow */
    struct sbuf trail; /* the end-of-line comments of the current line */
    int line;          /* 1-based line of the end of b */
    size_t line_start; /* offset in b where it starts */
    struct emit_source *src;
    int pass;        /* 1: record written anchors; 2: write comments and spans */
    long task_src;   /* the current task's index in the file, -1 outside tasks, NO_TASK */
    long task_model; /* its index in the model, -1 outside tasks */
    struct emit_span *spans;
    size_t n_spans, cap_spans;
    int failed;
};

/* Appends a key (or index) segment to a path; returns the length emit_write__pop restores. */
size_t emit_write__push_key(struct sbuf *path, const char *key);
size_t emit_write__push_index(struct sbuf *path, size_t i);
void emit_write__pop(struct sbuf *path, size_t at);

/* 1 if parent is path itself or one of its parents (at a segment boundary). */
int emit_write__is_parent(const char *parent, const char *path);

void emit_write__put(struct writer *w, const char *s, size_t n);
void emit_write__indent(struct writer *w, int n);
/* Ends the line, with the end-of-line comments queued for it. */
void emit_write__newline(struct writer *w);

/* The value at the current path starts here (comments' first pass; the span map). */
void emit_write__span(struct writer *w);

/*
 * At the start of a line that writes the current path at column ind: writes
 * its leading comments and queues its trailing one (as_leading: writes that
 * one above too, for a line that cannot carry one).
 */
void emit_write__anchor(struct writer *w, int ind, int as_leading);

/* `key: v` at column ind, the key pushed on the current path. real_dot: see emit_text.h. */
void emit_write__field(struct writer *w, int ind, const char *key, const json_t *v, int real_dot);

/* `- v` at column ind, the current path being the item's; block: never in flow style. */
void emit_write__item(struct writer *w, int ind, const json_t *v, int real_dot, int block);

#endif
