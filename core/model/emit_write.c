/*
 * emit.c - the canonical layout writer (emit__workflow_yaml, emit.h): the
 * model JSON, checked for shape, written as YAML with the comments and env:
 * entries of the file's text (emit_source.c) and every scalar as emit_text.c
 * writes it.
 *
 * The layout is docs/workflow-format.md's "Canonical layout": workflow keys in
 * the order name, description, version, mode, env, auth, tasks; one block per
 * task, a blank line between tasks, task keys in the order name, plugin,
 * description, inputs, outputs, depends_on, execution, permissions,
 * requires_auth, params; default values left out; a list or mapping in flow
 * style ([A, B]) when its line fits in EMIT_WIDTH columns, holds no multi-line
 * string and no comment, else in block style; multi-line strings as literal
 * blocks.
 *
 * The text is written twice. The first pass only records which anchors
 * (keys, items) are written, so that a comment whose key the layout leaves
 * out (a default value) moves up to the nearest key that is written; the
 * second pass writes, comments in place.
 */
#include "emit_write.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- paths */

/* Appends a key segment to the path; returns the length to restore. */
size_t emit_write__push_key(struct sbuf *p, const char *key)
{
    size_t at = p->len, n = strlen(key);
    int word = n > 0;

    for (size_t i = 0; i < n && word; i++) {
        unsigned char c = (unsigned char)key[i];
        word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-';
    }
    if (word) {
        sbuf__put(p, ".", 1);
        sbuf__put(p, key, n);
        return at;
    }
    /* The same escapes as emit_source.c's join_key, so that the paths meet. */
    sbuf__put(p, "[\"", 2);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)key[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            sbuf__put(p, "\\", 1);
            sbuf__put(p, key + i, 1);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            sbuf__puts(p, esc);
        } else {
            sbuf__put(p, key + i, 1);
        }
    }
    sbuf__put(p, "\"]", 2);
    return at;
}

size_t emit_write__push_index(struct sbuf *p, size_t i)
{
    size_t at = p->len;
    char buf[32];

    snprintf(buf, sizeof buf, "[%zu]", i);
    sbuf__puts(p, buf);
    return at;
}

void emit_write__pop(struct sbuf *p, size_t at)
{
    p->len = at;
    if (p->s)
        p->s[at] = 0;
}

static const char *path_of(const struct writer *w)
{
    return w->path.s ? w->path.s : "";
}

/* 1 if parent is path itself or one of its parents (at a segment boundary). */
int emit_write__is_parent(const char *parent, const char *path)
{
    size_t n = strlen(parent);

    return strncmp(parent, path, n) == 0 && (!path[n] || path[n] == '.' || path[n] == '[');
}

/* ---------------------------------------------------------------- output */

void emit_write__put(struct writer *w, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\n') {
            w->line++;
            w->line_start = w->b.len + i + 1;
        }
    sbuf__put(&w->b, s, n);
}

void emit_write__indent(struct writer *w, int n)
{
    static const char spaces[] = "                                ";

    while (n > 0) {
        int k = n < 32 ? n : 32;
        emit_write__put(w, spaces, (size_t)k);
        n -= k;
    }
}

/* Ends the line, with its end-of-line comments. */
void emit_write__newline(struct writer *w)
{
    if (w->trail.len) {
        emit_write__put(w, "  ", 2);
        emit_write__put(w, w->trail.s, w->trail.len);
        emit_write__pop(&w->trail, 0);
    }
    emit_write__put(w, "\n", 1);
}

static size_t column(const struct writer *w)
{
    size_t col = 0;

    for (size_t i = w->line_start; i < w->b.len; i++)
        if (((unsigned char)w->b.s[i] & 0xC0) != 0x80)
            col++;
    return col;
}

/*
 * Records that the value at the current path starts here: in the first pass
 * for the comments, in the second for the line:col to JSON path map.
 */
void emit_write__span(struct writer *w)
{
    struct sbuf json = {0};
    const char *p = path_of(w);
    struct emit_span *s;

    if (w->pass == 1) {
        for (size_t i = 0; w->src && i < w->src->n_comments; i++) {
            struct emit_comment *c = &w->src->comments[i];
            if (c->task == w->task_src && emit_write__is_parent(p, c->path) && strlen(p) + 1 > c->written)
                c->written = strlen(p) + 1;
        }
        return;
    }
    if (w->n_spans == w->cap_spans) {
        size_t cap = w->cap_spans ? w->cap_spans * 2 : 64;
        s = realloc(w->spans, cap * sizeof *s);
        if (!s) {
            w->failed = 1;
            return;
        }
        w->spans = s;
        w->cap_spans = cap;
    }
    /* The JSON path: a task's index in the model; the YAML-only levels dropped. */
    if (w->task_model >= 0) {
        char buf[40];
        snprintf(buf, sizeof buf, "tasks[%ld]", w->task_model);
        sbuf__puts(&json, buf);
    }
    if (w->task_model >= 0 && emit_write__is_parent(".permissions.required", p)) {
        sbuf__puts(&json, ".permissions");
        sbuf__puts(&json, p + 21);
    } else if (w->task_model < 0 && strncmp(p, ".env.", 5) == 0 && strlen(p) > 11 &&
               !strcmp(p + strlen(p) - 6, ".value")) {
        sbuf__put(&json, p + 1, strlen(p) - 7);
    } else {
        sbuf__puts(&json, w->task_model < 0 && *p == '.' ? p + 1 : p);
    }
    if (json.failed) {
        w->failed = 1;
        free(json.s);
        return;
    }
    s = &w->spans[w->n_spans++];
    s->line = w->line;
    s->col = (int)column(w) + 1;
    s->path = json.s ? json.s : strdup("");
}

/* The placed comments of the current path: leading ones (trailing == 0) or the trailing one. */
static void each_comment(struct writer *w, int trailing, int ind)
{
    const char *p = path_of(w);

    for (size_t i = 0; w->pass == 2 && w->src && i < w->src->n_comments; i++) {
        struct emit_comment *c = &w->src->comments[i];
        int moved;
        if (!c->at_path || c->at_task != w->task_src || strcmp(c->at_path, p) != 0)
            continue;
        moved = strcmp(c->at_path, c->path) != 0;
        /* A trailing comment whose key is gone, or that cannot trail its line
         * (ind < 0: a literal block's header), leads it instead. */
        if (trailing) {
            if (c->trailing && !moved && ind >= 0) {
                if (w->trail.len)
                    sbuf__put(&w->trail, " ", 1);
                sbuf__puts(&w->trail, c->text);
            }
            continue;
        }
        if (c->trailing && !moved && ind >= 0)
            continue;
        for (const char *line = c->text; line;) {
            const char *nl = strchr(line, '\n');
            size_t n = nl ? (size_t)(nl - line) : strlen(line);
            if (n) {
                emit_write__indent(w, ind < 0 ? -ind - 1 : ind);
                emit_write__put(w, line, n);
            }
            emit_write__put(w, "\n", 1);
            line = nl ? nl + 1 : NULL;
        }
    }
}

/*
 * At the start of a line that will write the current path at column ind:
 * its leading comments, and its trailing one queued for the line's end.
 * as_leading: the line cannot carry a trailing comment (a literal block's header).
 */
void emit_write__anchor(struct writer *w, int ind, int as_leading)
{
    each_comment(w, 0, as_leading ? -ind - 1 : ind);
    each_comment(w, 1, as_leading ? -1 : ind);
}

/* 1 if a comment is placed strictly inside the current path: it must be written in block style. */
static int comments_inside(const struct writer *w)
{
    const char *p = path_of(w);
    size_t n = strlen(p);

    for (size_t i = 0; w->pass == 2 && w->src && i < w->src->n_comments; i++) {
        const struct emit_comment *c = &w->src->comments[i];
        if (c->at_path && c->at_task == w->task_src && emit_write__is_parent(p, c->at_path) && c->at_path[n])
            return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- values */

static int multiline(const json_t *v)
{
    return json_is_string(v) && memchr(json_string_value(v), '\n', json_string_length(v));
}

/* The file's folded block for the current path, when v is still its value. */
static const struct emit_folded *folded(const struct writer *w, const json_t *v)
{
    const struct emit_folded *f;

    if (!json_is_string(v) || !w->src)
        return NULL;
    f = emit_source__folded(w->src, w->task_src, w->path.s ? w->path.s : "");
    return f && strlen(f->value) == json_string_length(v) && !strcmp(f->value, json_string_value(v))
               ? f
               : NULL;
}

static int literal(const json_t *v)
{
    return multiline(v) && emit_text__literal_ok(json_string_value(v), json_string_length(v));
}

/* 1 if v is written as a block scalar, whose header line cannot end in a comment. */
static int block_scalar(const struct writer *w, const json_t *v)
{
    return literal(v) || folded(w, v) != NULL;
}

/* The width of v in flow style, or -1 when it cannot be written so (a multi-line string). */
/*
 * The width of v in flow style, or -1 when it cannot be written so: it holds
 * a multi-line string or a folded block kept from the file (the current path
 * is v's; it is walked along).
 */
static long flow_width(struct writer *w, const json_t *v, int real_dot, long limit)
{
    struct sbuf b = {0};
    long n = 0;
    const char *key;
    const json_t *item;
    size_t i, at;

    if (json_is_object(v)) {
        n = 2;
        json_object_foreach ((json_t *)v, key, item) {
            long k;
            emit_write__pop(&b, 0);
            emit_text__string(&b, key, strlen(key));
            at = emit_write__push_key(&w->path, key);
            k = flow_width(w, item, real_dot, limit);
            emit_write__pop(&w->path, at);
            if (k < 0 || b.failed)
                n = -1;
            if (n < 0 || (n += (long)b.len + 2 + k + (n > 2 ? 2 : 0)) > limit)
                break;
        }
    } else if (json_is_array(v)) {
        n = 2;
        json_array_foreach (v, i, item) {
            long k;
            at = emit_write__push_index(&w->path, i);
            k = flow_width(w, item, real_dot, limit);
            emit_write__pop(&w->path, at);
            if (k < 0)
                n = -1;
            if (n < 0 || (n += k + (i ? 2 : 0)) > limit)
                break;
        }
    } else if (multiline(v) || folded(w, v)) {
        n = -1;
    } else {
        emit_text__scalar(&b, v, real_dot);
        n = b.failed ? -1 : (long)b.len;
    }
    free(b.s);
    return n;
}

static void write_scalar(struct writer *w, const json_t *v, int real_dot)
{
    struct sbuf b = {0};

    emit_text__scalar(&b, v, real_dot);
    if (b.failed)
        w->failed = 1;
    else
        emit_write__put(w, b.s, b.len);
    free(b.s);
}

static void write_key(struct writer *w, const char *key)
{
    struct sbuf b = {0};

    emit_text__string(&b, key, strlen(key));
    if (b.failed)
        w->failed = 1;
    else
        emit_write__put(w, b.s, b.len);
    free(b.s);
}

static void write_flow(struct writer *w, const json_t *v, int real_dot)
{
    const char *key;
    const json_t *item;
    size_t i, at;
    int first = 1;

    emit_write__span(w);
    if (json_is_object(v)) {
        emit_write__put(w, "{", 1);
        json_object_foreach ((json_t *)v, key, item) {
            at = emit_write__push_key(&w->path, key);
            if (!first)
                emit_write__put(w, ", ", 2);
            first = 0;
            emit_write__span(w);
            write_key(w, key);
            emit_write__put(w, ": ", 2);
            write_flow(w, item, real_dot);
            emit_write__pop(&w->path, at);
        }
        emit_write__put(w, "}", 1);
    } else if (json_is_array(v)) {
        emit_write__put(w, "[", 1);
        json_array_foreach (v, i, item) {
            at = emit_write__push_index(&w->path, i);
            if (i)
                emit_write__put(w, ", ", 2);
            write_flow(w, item, real_dot);
            emit_write__pop(&w->path, at);
        }
        emit_write__put(w, "]", 1);
    } else {
        write_scalar(w, v, real_dot);
    }
}

static void write_block(struct writer *w, const json_t *v, int ind, int real_dot);

/* A literal block: the header on the current line, the lines at ind. */
static void write_literal(struct writer *w, const json_t *v, int ind)
{
    const char *s = json_string_value(v), *end = s + json_string_length(v);

    emit_write__put(w, end[-1] == '\n' ? "|" : "|-", end[-1] == '\n' ? 1 : 2);
    emit_write__newline(w);
    if (end[-1] == '\n')
        end--;
    while (s <= end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t n = nl ? (size_t)(nl - s) : (size_t)(end - s);
        if (n) {
            emit_write__indent(w, ind);
            emit_write__put(w, s, n);
        }
        emit_write__put(w, "\n", 1);
        s += n + 1;
    }
}

/*
 * Writes v after "key:" or "-" on the current line (at column col, the
 * children's block indentation being ind), ending the line.
 */
static void write_after(struct writer *w, const json_t *v, int ind, int real_dot)
{
    int collection = (json_is_object(v) && json_object_size(v) > 0) ||
                     (json_is_array(v) && json_array_size(v) > 0);

    const struct emit_folded *f = folded(w, v);

    if (f) {
        emit_write__put(w, " ", 1);
        emit_write__span(w);
        emit_write__put(w, f->header, strlen(f->header));
        emit_write__newline(w);
        for (const char *p = f->body; *p;) {
            const char *nl = strchr(p, '\n');
            if (nl > p)
                emit_write__indent(w, ind);
            emit_write__put(w, p, (size_t)(nl - p) + 1);
            p = nl + 1;
        }
        return;
    }
    if (literal(v)) {
        emit_write__put(w, " ", 1);
        emit_write__span(w);
        write_literal(w, v, ind);
        return;
    }
    if (collection) {
        long room = EMIT_WIDTH - (long)column(w) - 1;
        long width = comments_inside(w) ? -1 : flow_width(w, v, real_dot, room);
        if (width >= 0 && width <= room) {
            emit_write__put(w, " ", 1);
            write_flow(w, v, real_dot);
            emit_write__newline(w);
            return;
        }
        emit_write__span(w);
        emit_write__newline(w);
        write_block(w, v, ind, real_dot);
        return;
    }
    emit_write__put(w, " ", 1);
    emit_write__span(w);
    write_scalar(w, v, real_dot);
    emit_write__newline(w);
}

/* `key: value` on a new line at ind; the key's path is pushed by the caller. */
static void write_entry(struct writer *w, int ind, const char *key, const json_t *v, int real_dot)
{
    emit_write__anchor(w, ind, block_scalar(w, v));
    emit_write__indent(w, ind);
    emit_write__span(w);
    write_key(w, key);
    emit_write__put(w, ":", 1);
    write_after(w, v, ind + 2, real_dot);
}

/* `- value` on a new line at ind; the item's path is pushed by the caller. */
void emit_write__item(struct writer *w, int ind, const json_t *v, int real_dot, int block)
{
    emit_write__anchor(w, ind, block_scalar(w, v));
    if (json_is_object(v) && json_object_size(v) > 0) {
        long room = EMIT_WIDTH - ind - 2;
        long width = block || comments_inside(w) ? -1 : flow_width(w, v, real_dot, room);
        if ( width < 0 || width > room) {
            /* A block mapping: its first key on the dash's line, so its
             * comments come before that line. */
            void *iter = json_object_iter((json_t *)v);
            const char *key = json_object_iter_key(iter);
            size_t at = emit_write__push_key(&w->path, key);
            int lit = block_scalar(w, json_object_iter_value(iter));
            emit_write__anchor(w, ind, lit);
            emit_write__pop(&w->path, at);
            emit_write__indent(w, ind);
            emit_write__span(w);
            emit_write__put(w, "- ", 2);
            at = emit_write__push_key(&w->path, key);
            emit_write__span(w);
            write_key(w, key);
            emit_write__put(w, ":", 1);
            write_after(w, json_object_iter_value(iter), ind + 4, real_dot);
            emit_write__pop(&w->path, at);
            for (iter = json_object_iter_next((json_t *)v, iter); iter;
                 iter = json_object_iter_next((json_t *)v, iter)) {
                key = json_object_iter_key(iter);
                at = emit_write__push_key(&w->path, key);
                write_entry(w, ind + 2, key, json_object_iter_value(iter), real_dot);
                emit_write__pop(&w->path, at);
            }
            return;
        }
    }
    emit_write__indent(w, ind);
    emit_write__span(w);
    emit_write__put(w, "-", 1);
    write_after(w, v, ind + 2, real_dot);
}

static void write_block(struct writer *w, const json_t *v, int ind, int real_dot)
{
    const char *key;
    const json_t *item;
    size_t i, at;

    if (json_is_object(v)) {
        json_object_foreach ((json_t *)v, key, item) {
            at = emit_write__push_key(&w->path, key);
            write_entry(w, ind, key, item, real_dot);
            emit_write__pop(&w->path, at);
        }
    } else {
        json_array_foreach (v, i, item) {
            at = emit_write__push_index(&w->path, i);
            emit_write__item(w, ind, item, real_dot, 0);
            emit_write__pop(&w->path, at);
        }
    }
}

/* Writes `key: v` at ind under the current path (a workflow or task key). */
void emit_write__field(struct writer *w, int ind, const char *key, const json_t *v, int real_dot)
{
    size_t at = emit_write__push_key(&w->path, key);

    write_entry(w, ind, key, v, real_dot);
    emit_write__pop(&w->path, at);
}

