/*
 * emit_source.c - reads what the canonical emitter keeps from a workflow
 * file's text (emit_source.h): comments, env: entries as written, task names,
 * folded strings. This file runs libyaml's parser over the text and records
 * where every key and list item starts (its anchors) and every scalar's
 * extent; emit_comments.c then finds the comments and attaches them.
 */
#include "emit_scan.h"
#include "emit_source.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

static void *grow(void *p, size_t *cap, size_t n, size_t size)
{
    void *bigger;
    size_t want;

    if (n < *cap)
        return p;
    want = *cap ? *cap * 2 : 16;
    bigger = realloc(p, want * size);
    if (bigger)
        *cap = want;
    return bigger;
}

/* A key as a path segment: ".key" when it is a plain word, else ["key"] with JSON escapes. */
static char *join_key(const char *base, const char *key, size_t len)
{
    int word = len > 0;
    char *out;
    size_t n = strlen(base), at;

    for (size_t i = 0; i < len && word; i++) {
        unsigned char c = (unsigned char)key[i];
        word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-';
    }
    out = malloc(n + len * 6 + 8);
    if (!out)
        return NULL;
    memcpy(out, base, n);
    at = n;
    if (word) {
        out[at++] = '.';
        memcpy(out + at, key, len);
        at += len;
    } else {
        out[at++] = '[';
        out[at++] = '"';
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)key[i];
            if (c == '"' || c == '\\') {
                out[at++] = '\\';
                out[at++] = (char)c;
            } else if (c < 0x20) {
                at += (size_t)sprintf(out + at, "\\u%04x", c);
            } else {
                out[at++] = (char)c;
            }
        }
        out[at++] = '"';
        out[at++] = ']';
    }
    out[at] = 0;
    return out;
}

static char *join_index(const char *base, size_t i)
{
    size_t n = strlen(base);
    char *out = malloc(n + 24);

    if (out)
        snprintf(out, n + 24, "%s[%zu]", base, i);
    return out;
}

/*
 * A path of the document (".workflow.tasks[2].params") as an anchor: the task
 * it is in and the path inside it; -2 when it is outside `workflow`.
 */
static long split_path(const char *path, const char **rest)
{
    static const char top[] = ".workflow";
    static const char tasks[] = ".workflow.tasks[";
    char *end;
    long task;

    if (strncmp(path, top, sizeof top - 1) != 0 ||
        (path[sizeof top - 1] && path[sizeof top - 1] != '.' && path[sizeof top - 1] != '['))
        return -2;
    if (strncmp(path, tasks, sizeof tasks - 1) != 0) {
        *rest = path + sizeof top - 1;
        return -1;
    }
    task = strtol(path + sizeof tasks - 1, &end, 10);
    if (*end != ']')
        return -2;
    *rest = end + 1;
    return task;
}

static void add_anchor(struct scan *S, yaml_mark_t at, const char *path)
{
    const char *rest = "";
    long task = split_path(path, &rest);
    struct anchor *a;
    static const char exec_deps[] = ".execution.depends_on";

    if (task == -2)
        return;
    if (!(S->anchors = grow(S->anchors, &S->cap_anchors, S->n_anchors, sizeof *S->anchors))) {
        S->failed = 1;
        return;
    }
    a = &S->anchors[S->n_anchors];
    a->line = at.line;
    a->col = at.column;
    a->task = task;
    /* The canonical layout writes execution.depends_on as the task's depends_on. */
    if (task >= 0 && strncmp(rest, exec_deps, sizeof exec_deps - 1) == 0) {
        size_t n = strlen(rest + 10) + 1;
        a->path = malloc(n);
        if (a->path)
            memcpy(a->path, rest + 10, n);
    } else {
        a->path = strdup(rest);
    }
    if (!a->path) {
        S->failed = 1;
        return;
    }
    S->n_anchors++;
}

/* What a scalar's value says about the file: a task's name, an env entry, name:. */
static void note_scalar(struct scan *S, const char *path, const char *value, size_t len, int plain)
{
    struct emit_source *src = S->src;
    const char *rest = "";
    long task = split_path(path, &rest);

    if (task >= 0 && strcmp(rest, ".name") == 0) {
        if ((size_t)task >= src->n_tasks) {
            char **names = realloc(src->task_names, ((size_t)task + 1) * sizeof *names);
            if (!names) {
                S->failed = 1;
                return;
            }
            for (size_t i = src->n_tasks; i <= (size_t)task; i++)
                names[i] = NULL;
            src->task_names = names;
            src->n_tasks = (size_t)task + 1;
        }
        if (!src->task_names[task] && strlen(value) == len)
            src->task_names[task] = strdup(value);
        return;
    }
    if (task != -1 || strncmp(rest, ".env.", 5) != 0)
        return;
    {
        const char *name = rest + 5, *dot = strchr(name, '.');
        size_t name_len = dot ? (size_t)(dot - name) : strlen(name);
        struct emit_env_entry *e = NULL;
        size_t cap = src->n_env;

        if (dot && strcmp(dot, ".value") != 0 && strcmp(dot, ".secret") != 0)
            return;
        for (size_t i = 0; i < src->n_env; i++)
            if (strlen(src->env[i].name) == name_len && !strncmp(src->env[i].name, name, name_len))
                e = &src->env[i];
        if (!e) {
            struct emit_env_entry *env = realloc(src->env, (cap + 1) * sizeof *env);
            if (!env) {
                S->failed = 1;
                return;
            }
            src->env = env;
            e = &env[src->n_env++];
            memset(e, 0, sizeof *e);
            e->name = strndup(name, name_len);
            if (!e->name)
                S->failed = 1;
        }
        if (dot && strcmp(dot, ".secret") == 0) {
            e->secret = plain && (!strcmp(value, "true") || !strcmp(value, "True") ||
                                  !strcmp(value, "TRUE"));
        } else if (!e->raw && strlen(value) == len) {
            e->raw = strdup(value);
            if (!e->raw)
                S->failed = 1;
        }
    }
}

/* The text of line i, without its line break. */
const char *emit_scan__line_at(const struct scan *S, size_t i, size_t *n)
{
    *n = S->ends[i] - S->lines[i];
    return S->text + S->lines[i];
}

/*
 * The length of the line break at t[i], or 0: libyaml's breaks, so that lines
 * are counted as its marks count them (\r\n, \r, \n, NEL, LS, PS).
 */
static size_t line_break(const char *t, size_t len, size_t i)
{
    const unsigned char *u = (const unsigned char *)t + i;

    if (u[0] == '\r')
        return i + 1 < len && u[1] == '\n' ? 2 : 1;
    if (u[0] == '\n')
        return 1;
    if (u[0] == 0xC2 && i + 1 < len && u[1] == 0x85)
        return 2;
    if (u[0] == 0xE2 && i + 2 < len && u[1] == 0x80 && (u[2] == 0xA8 || u[2] == 0xA9))
        return 3;
    return 0;
}

/* Splits the text into lines (S->lines, S->ends); 0 when out of memory. */
int emit_scan__split_lines(struct scan *S)
{
    size_t cap = 64, start = 0;

    /* libyaml's reader consumes a byte order mark before its first mark. */
    if (S->len >= 3 && !memcmp(S->text, "\xEF\xBB\xBF", 3))
        start = 3;

    S->lines = malloc(cap * sizeof *S->lines);
    S->ends = malloc(cap * sizeof *S->ends);
    if (!S->lines || !S->ends)
        return 0;
    for (size_t i = start; i <= S->len;) {
        size_t b = i < S->len ? line_break(S->text, S->len, i) : 0;
        if (i < S->len && !b) {
            i++;
            continue;
        }
        /* No empty line after a final break. */
        if (i == S->len && start == S->len && S->n_lines > 0)
            break;
        if (S->n_lines == cap) {
            size_t *l = realloc(S->lines, 2 * cap * sizeof *l), *e;
            if (l)
                S->lines = l;
            e = l ? realloc(S->ends, 2 * cap * sizeof *e) : NULL;
            if (!e)
                return 0;
            S->ends = e;
            cap *= 2;
        }
        S->lines[S->n_lines] = start;
        S->ends[S->n_lines++] = i;
        if (i == S->len)
            break;
        i += b;
        start = i;
    }
    return 1;
}

/*
 * 1 if header and body, written under a key as the emitter writes them, read
 * back as value: the check that what is kept is the string the file meant
 * (libyaml is lenient with an under-indented first line, for one); and none
 * of its lines ends in a blank.
 */
static int folded_reproduces(const char *header, const char *body, const char *value, size_t len)
{
    size_t n = strlen(body), at = 0;
    char *doc = malloc(2 * n + 16);
    yaml_parser_t parser;
    yaml_event_t ev;
    int same = 0, done = 0, scalars = 0;

    if (!doc)
        return 0;
    at += (size_t)sprintf(doc, "k: %s\n", header);
    for (const char *p = body; *p;) {
        const char *nl = strchr(p, '\n');
        /* A blank at a line's end is one an editor strips: not kept. */
        if (nl > p && (nl[-1] == ' ' || nl[-1] == '\t')) {
            free(doc);
            return 0;
        }
        if (nl > p) {
            memcpy(doc + at, "  ", 2);
            at += 2;
        }
        memcpy(doc + at, p, (size_t)(nl - p) + 1);
        at += (size_t)(nl - p) + 1;
        p = nl + 1;
    }
    if (!yaml_parser_initialize(&parser)) {
        free(doc);
        return 0;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)doc, at);
    while (!done && yaml_parser_parse(&parser, &ev)) {
        done = ev.type == YAML_STREAM_END_EVENT;
        if (ev.type == YAML_SCALAR_EVENT && ++scalars == 2)
            same = ev.data.scalar.length == len && !memcmp(ev.data.scalar.value, value, len);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    free(doc);
    return done && same;
}

/* Keeps a folded block's lines (struct emit_folded); a form it cannot keep is not kept. */
static void note_folded(struct scan *S, const char *path, const yaml_event_t *ev)
{
    struct emit_source *src = S->src;
    struct emit_folded *f;
    const char *rest = "", *p;
    long task = split_path(path, &rest);
    size_t l1 = ev->start_mark.line, l2 = ev->end_mark.line, n, indent = 0, last = l1;
    char *body = NULL;
    size_t body_len = 0;
    char header[4] = {0};

    if (task == -2 || l1 >= S->n_lines ||
        strlen((const char *)ev->data.scalar.value) != ev->data.scalar.length)
        return;
    p = emit_scan__line_at(S, l1, &n);
    for (size_t i = 0, col = 0; i < n; i++)
        if (((unsigned char)p[i] & 0xC0) != 0x80 && col++ == ev->start_mark.column) {
            size_t k = 0;
            while (i + k < n && k < 3 && p[i + k] != ' ' && p[i + k] != '\r')
                k++;
            memcpy(header, p + i, k);
            /* Only a header without an indentation digit, then maybe a comment. */
            while (i + k < n && (p[i + k] == ' ' || p[i + k] == '\t' || p[i + k] == '\r'))
                k++;
            if (i + k < n && p[i + k] != '#')
                return;
            break;
        }
    if (strcmp(header, ">") != 0 && strcmp(header, ">-") != 0)
        return;
    /* The content: from the next line to the last non-blank one before the end mark. */
    for (size_t i = l1 + 1; i < S->n_lines && i <= l2; i++) {
        size_t k = 0;
        p = emit_scan__line_at(S, i, &n);
        while (k < n && p[k] == ' ')
            k++;
        if (k == n || (k + 1 == n && p[k] == '\r'))
            continue;
        if (!indent)
            indent = k;
        if (k < indent)
            break;
        last = i;
    }
    if (!indent)
        return;
    for (size_t i = l1 + 1; i <= last; i++) {
        const char *line = emit_scan__line_at(S, i, &n);
        char *bigger;
        if (n && line[n - 1] == '\r')
            n--;
        /* A blank line may be shorter than the indentation. */
        line = n > indent ? line + indent : line + n;
        n = n > indent ? n - indent : 0;
        bigger = realloc(body, body_len + n + 2);
        if (!bigger) {
            free(body);
            S->failed = 1;
            return;
        }
        body = bigger;
        memcpy(body + body_len, line, n);
        body_len += n;
        body[body_len++] = '\n';
        body[body_len] = 0;
    }
    if (!body || !folded_reproduces(header, body, (const char *)ev->data.scalar.value,
                                    ev->data.scalar.length)) {
        free(body);
        return;
    }
    f = realloc(src->folded, (src->n_folded + 1) * sizeof *f);
    if (!f) {
        free(body);
        S->failed = 1;
        return;
    }
    src->folded = f;
    f = &f[src->n_folded++];
    f->task = task;
    f->path = strdup(rest);
    f->value = strdup((const char *)ev->data.scalar.value);
    f->header = strdup(header);
    f->body = body;
    if (!f->path || !f->value || !f->header || !f->body)
        S->failed = 1;
}

/* The path of the node that starts now, registering it as an anchor when it is a key or item. */
static char *node_path(struct scan *S, yaml_mark_t at, const yaml_event_t *ev, int *is_key)
{
    struct frame *f = S->depth ? &S->stack[S->depth - 1] : NULL;
    char *path;

    *is_key = 0;
    if (!f)
        return strdup("");
    if (!f->is_map) {
        path = join_index(f->path, f->index++);
        if (path)
            add_anchor(S, at, path);
        return path;
    }
    if (!f->expect_key)
        return f->pending ? strdup(f->pending) : strdup("?");
    *is_key = 1;
    free(f->pending);
    f->pending =
        ev->type == YAML_SCALAR_EVENT
            ? join_key(f->path, (const char *)ev->data.scalar.value, ev->data.scalar.length)
            : strdup("[?]");
    if (f->pending)
        add_anchor(S, at, f->pending);
    return f->pending ? strdup(f->pending) : NULL;
}

/* A node has ended: in a mapping, a key is followed by its value and a value by a key. */
static void node_done(struct scan *S)
{
    if (S->depth && S->stack[S->depth - 1].is_map)
        S->stack[S->depth - 1].expect_key = !S->stack[S->depth - 1].expect_key;
}

static void on_event(struct scan *S, const yaml_event_t *ev)
{
    char *path;
    int is_key;

    switch (ev->type) {
    case YAML_SCALAR_EVENT:
    case YAML_ALIAS_EVENT:
        path = node_path(S, ev->start_mark, ev, &is_key);
        if (!path) {
            S->failed = 1;
            return;
        }
        if (ev->type == YAML_SCALAR_EVENT) {
            struct extent *x;
            if (!is_key)
                note_scalar(S, path, (const char *)ev->data.scalar.value, ev->data.scalar.length,
                            ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE);
            if (!is_key && ev->data.scalar.style == YAML_FOLDED_SCALAR_STYLE)
                note_folded(S, path, ev);
            else if (!strcmp(path, ".workflow.name"))
                S->src->has_name = 1;
            S->extents = grow(S->extents, &S->cap_extents, S->n_extents, sizeof *S->extents);
            if (!S->extents) {
                S->failed = 1;
                free(path);
                return;
            }
            x = &S->extents[S->n_extents++];
            x->l1 = ev->start_mark.line;
            x->c1 = ev->start_mark.column;
            /* A block scalar's text starts on the line after its header,
             * which may end in a comment. */
            if (ev->data.scalar.style == YAML_LITERAL_SCALAR_STYLE ||
                ev->data.scalar.style == YAML_FOLDED_SCALAR_STYLE) {
                x->l1++;
                x->c1 = 0;
            }
            x->l2 = ev->end_mark.line;
            x->c2 = ev->end_mark.column;
        }
        free(path);
        node_done(S);
        break;
    case YAML_MAPPING_START_EVENT:
    case YAML_SEQUENCE_START_EVENT:
        path = node_path(S, ev->start_mark, ev, &is_key);
        S->stack = grow(S->stack, &S->cap_stack, S->depth, sizeof *S->stack);
        if (!path || !S->stack) {
            free(path);
            S->failed = 1;
            return;
        }
        memset(&S->stack[S->depth], 0, sizeof S->stack[S->depth]);
        S->stack[S->depth].is_map = ev->type == YAML_MAPPING_START_EVENT;
        S->stack[S->depth].expect_key = 1;
        S->stack[S->depth].path = path;
        S->depth++;
        break;
    case YAML_MAPPING_END_EVENT:
    case YAML_SEQUENCE_END_EVENT:
        if (S->depth) {
            S->depth--;
            free(S->stack[S->depth].path);
            free(S->stack[S->depth].pending);
        }
        node_done(S);
        break;
    default:
        break;
    }
}

int emit_source__scan(const char *text, size_t len, struct emit_source *src)
{
    struct scan S = {0};
    yaml_parser_t parser;
    yaml_event_t ev;
    int have_parser = 0, ok = 0, done = 0;

    S.src = src;
    S.text = text;
    S.len = len;
    if (!emit_scan__split_lines(&S))
        goto out;
    if (!yaml_parser_initialize(&parser))
        goto out;
    have_parser = 1;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    while (!done && !S.failed) {
        if (!yaml_parser_parse(&parser, &ev))
            goto out;
        done = ev.type == YAML_STREAM_END_EVENT;
        on_event(&S, &ev);
        yaml_event_delete(&ev);
    }
    if (S.failed || !emit_comments__attach(&S) || !emit_comments__index(src))
        goto out;
    ok = 1;
out:
    if (have_parser)
        yaml_parser_delete(&parser);
    for (size_t i = 0; i < S.n_anchors; i++)
        free(S.anchors[i].path);
    free(S.anchors);
    free(S.extents);
    free(S.lines);
    free(S.ends);
    for (size_t i = 0; i < S.depth; i++) {
        free(S.stack[i].path);
        free(S.stack[i].pending);
    }
    free(S.stack);
    if (!ok) {
        emit_source__free(src);
        memset(src, 0, sizeof *src);
    }
    return ok;
}

void emit_source__free(struct emit_source *src)
{
    if (!src)
        return;
    free(src->header);
    free(src->footer);
    for (size_t i = 0; i < src->n_comments; i++) {
        free(src->comments[i].path);
        free(src->comments[i].text);
        free(src->comments[i].at_path);
    }
    free(src->comments);
    free(src->by_task);
    free(src->task_start);
    for (size_t i = 0; i < src->n_tasks; i++)
        free(src->task_names[i]);
    free(src->task_names);
    for (size_t i = 0; i < src->n_env; i++) {
        free(src->env[i].name);
        free(src->env[i].raw);
    }
    free(src->env);
    for (size_t i = 0; i < src->n_folded; i++) {
        free(src->folded[i].path);
        free(src->folded[i].value);
        free(src->folded[i].header);
        free(src->folded[i].body);
    }
    free(src->folded);
}

const struct emit_folded *emit_source__folded(const struct emit_source *src, long task,
                                              const char *path)
{
    for (size_t i = 0; src && i < src->n_folded; i++)
        if (src->folded[i].task == task && !strcmp(src->folded[i].path, path))
            return &src->folded[i];
    return NULL;
}

long emit_source__task(const struct emit_source *src, const char *name)
{
    for (size_t i = 0; name && i < src->n_tasks; i++)
        if (src->task_names[i] && !strcmp(src->task_names[i], name))
            return (long)i;
    return -1;
}

const struct emit_env_entry *emit_source__env(const struct emit_source *src, const char *name)
{
    for (size_t i = 0; i < src->n_env; i++)
        if (!strcmp(src->env[i].name, name))
            return &src->env[i];
    return NULL;
}
