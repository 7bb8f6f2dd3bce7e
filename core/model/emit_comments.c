/*
 * emit_comments.c - the comments of a workflow file's text, attached to the
 * key or list item they belong to (emit_source.h says what the emitter does
 * with them).
 *
 * libyaml's parser drops comments, so they are found in the text itself: a
 * '#' at the start of a line or after a space is a comment unless it lies
 * inside a scalar, and the scalars' extents come from the parser's events
 * (emit_source.c records them), so a '#' inside a quoted string or a literal
 * block is never taken for one. A comment is attached by line: the comment
 * lines just above a content line lead the first key or item starting on it,
 * a comment after content on a line trails that line's first key or item.
 */
#include "emit_scan.h"
#include "emit_source.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* 1 if (line, col) is inside a scalar: the extents are in text order and do not overlap. */
static int in_scalar(const struct scan *S, size_t line, size_t col)
{
    size_t lo = 0, hi = S->n_extents;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct extent *x = &S->extents[mid];
        if (x->l1 < line || (x->l1 == line && x->c1 <= col))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return 0;
    {
        const struct extent *x = &S->extents[lo - 1];
        return line < x->l2 || (line == x->l2 && col < x->c2);
    }
}

/* A growing string of comment lines. */
struct lines {
    char *s;
    size_t len;
};

static int lines_add(struct lines *l, const char *p, size_t n)
{
    char *bigger = realloc(l->s, l->len + n + 2);

    if (!bigger)
        return 0;
    l->s = bigger;
    if (l->len)
        l->s[l->len++] = '\n';
    memcpy(l->s + l->len, p, n);
    l->len += n;
    l->s[l->len] = 0;
    return 1;
}

/*
 * A NUL-terminated copy of the n bytes at p. Not strndup: the source text is
 * a buffer of a length, with no NUL after it (the loader's buffer, a fuzz
 * input), and strndup may look past n for one (ASan's strict_string_checks
 * reports that as an overflow, as the fuzz pass of CI did).
 */
static char *copy_bytes(const char *p, size_t n)
{
    char *t = malloc(n + 1);

    if (t) {
        memcpy(t, p, n);
        t[n] = 0;
    }
    return t;
}

static int add_comment(struct scan *S, const struct anchor *a, char *text, int trailing)
{
    struct emit_source *src = S->src;
    struct emit_comment *c;
    size_t cap = src->n_comments;

    c = realloc(src->comments, (cap + 1) * sizeof *c);
    if (!c)
        return 0;
    src->comments = c;
    c = &c[src->n_comments];
    memset(c, 0, sizeof *c);
    c->task = a->task;
    c->path = strdup(a->path);
    c->text = text;
    c->trailing = trailing;
    if (!c->path)
        return 0;
    src->n_comments++;
    return 1;
}

/* Finds the comments line by line and attaches them to the anchors (see the top). */
int emit_comments__attach(struct scan *S)
{
    struct lines pending = {0}, header = {0};
    size_t line, next = 0, header_blanks = 0;
    int seen_content = 0, blank_before = 0, ok = 0;

    for (line = 0; line < S->n_lines; line++) {
        size_t n, col = 0, comment = SIZE_MAX, first = SIZE_MAX;
        const char *p = emit_scan__line_at(S, line, &n);
        int content = 0;

        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)p[i];
            if ((c & 0xC0) == 0x80)
                continue;
            if (c == '#' && (i == 0 || p[i - 1] == ' ' || p[i - 1] == '\t') &&
                !in_scalar(S, line, col)) {
                comment = i;
                break;
            }
            if (c != ' ' && c != '\t') {
                content = 1;
                if (first == SIZE_MAX)
                    first = i;
            }
            col++;
        }
        /* A line inside a multi-line scalar is content even when blank. */
        if (!content && comment == SIZE_MAX && in_scalar(S, line, 0))
            content = 1;
        while (next < S->n_anchors && S->anchors[next].line < line)
            next++;
        if (!content && comment == SIZE_MAX) {
            if (!seen_content && header.len)
                header_blanks++;
            blank_before = pending.len > 0;
        } else if (!content) {
            if (!seen_content) {
                for (; header_blanks > 0; header_blanks--)
                    if (!lines_add(&header, "", 0))
                        goto out;
                if (!lines_add(&header, p + comment, n - comment))
                    goto out;
            } else {
                if ((blank_before && !lines_add(&pending, "", 0)) ||
                    !lines_add(&pending, p + comment, n - comment))
                    goto out;
            }
            blank_before = 0;
        } else {
            const struct anchor *a = next < S->n_anchors ? &S->anchors[next] : NULL;
            const struct anchor *here = a && a->line == line ? a : NULL;
            seen_content = 1;
            blank_before = 0;
            if (pending.len && a) {
                if (!add_comment(S, a, pending.s, 0))
                    goto out;
                pending.s = NULL;
                pending.len = 0;
            }
            if (comment != SIZE_MAX) {
                const struct anchor *owner = here ? here : next > 0 ? &S->anchors[next - 1] : NULL;
                char *t = copy_bytes(p + comment, n - comment);
                if (!t || (owner && !add_comment(S, owner, t, 1))) {
                    free(t);
                    goto out;
                }
                if (!owner)
                    free(t);
            }
        }
    }
    S->src->header = header.s;
    header.s = NULL;
    S->src->footer = pending.s;
    pending.s = NULL;
    ok = 1;
out:
    free(pending.s);
    free(header.s);
    return ok;
}

/*
 * Orders the comments by task (a counting sort, stable: by line within a
 * task), so that writing a task looks at its own comments only.
 */
int emit_comments__index(struct emit_source *src)
{
    size_t slots = src->n_tasks + 2;

    src->by_task = malloc((src->n_comments + 1) * sizeof *src->by_task);
    src->task_start = calloc(slots + 1, sizeof *src->task_start);
    if (!src->by_task || !src->task_start)
        return 0;
    for (size_t i = 0; i < src->n_comments; i++) {
        long t = src->comments[i].task;
        /* A task past the last named one has no name the emitter can match. */
        if (t >= (long)src->n_tasks)
            t = (long)src->n_tasks;
        src->task_start[(size_t)(t + 1) + 1]++;
    }
    for (size_t s = 1; s <= slots; s++)
        src->task_start[s] += src->task_start[s - 1];
    {
        size_t *fill = calloc(slots, sizeof *fill);
        if (!fill)
            return 0;
        for (size_t i = 0; i < src->n_comments; i++) {
            long t = src->comments[i].task;
            size_t slot = (size_t)((t >= (long)src->n_tasks ? (long)src->n_tasks : t) + 1);
            src->by_task[src->task_start[slot] + fill[slot]++] = i;
        }
        free(fill);
    }
    return 1;
}

const size_t *emit_source__comments(const struct emit_source *src, long task, size_t *n)
{
    size_t slot;

    *n = 0;
    if (!src || !src->by_task || task < -1 || task >= (long)src->n_tasks)
        return NULL;
    slot = (size_t)(task + 1);
    *n = src->task_start[slot + 1] - src->task_start[slot];
    return src->by_task + src->task_start[slot];
}
