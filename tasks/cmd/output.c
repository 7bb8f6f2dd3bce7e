/*
 * output.c - turns the command's stdout and stderr into lines, and each line
 * into a recorded output value, a warning or a log line (see output.h).
 */
#include "output.h"
#include "kv.h"
#include "outfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

long output__value_limit(void)
{
    const char *v = getenv("FLOWBUS_MAX_VALUE");
    long n = v ? strtol(v, NULL, 10) : 0;
    return n > 0 ? n : 256 * 1024;
}

size_t output__line_max(void)
{
    /* Computed once: the environment does not change while the task runs. */
    static size_t line_max;

    if (line_max == 0)
        line_max = (size_t)output__value_limit() + 4096;
    return line_max;
}

/*
 * A NUL-terminated copy of len bytes. Not strndup: a line that fills the read
 * buffer has no NUL after it, and strndup may look past len for one.
 */
static char *dup_bytes(const char *p, size_t len)
{
    char *s = malloc(len + 1);

    if (s) {
        memcpy(s, p, len);
        s[len] = '\0';
    }
    return s;
}

/* Warns once per key that KEY=VALUE named an undeclared output. */
static void warn_undeclared(struct run *r, const char *key)
{
    char **bigger;
    size_t i;

    for (i = 0; i < r->nwarned; i++)
        if (strcmp(r->warned[i], key) == 0)
            return;
    fb_task_log(r->task, "warning: %s is not a declared output of this task; line ignored", key);
    bigger = realloc(r->warned, (r->nwarned + 1) * sizeof *bigger);
    if (!bigger)
        return; /* it may be warned again: harmless */
    r->warned = bigger;
    r->warned[r->nwarned] = strdup(key);
    if (r->warned[r->nwarned])
        r->nwarned++;
}

/*
 * Records value for the declared output of that name in slots (stdout's or
 * the file's), or notes why not. key and value are len-delimited.
 */
static void record(struct run *r, char **slots, const char *k, size_t key_len, const char *value,
                   size_t value_len, int cut)
{
    char *key = dup_bytes(k, key_len);
    size_t i;

    if (!key) {
        r->failed_mem = 1;
        return;
    }
    for (i = 0; i < fb_task_output_count(r->task); i++)
        if (strcmp(fb_task_output_name(r->task, i), key) == 0)
            break;
    if (i == fb_task_output_count(r->task)) {
        warn_undeclared(r, key);
    } else if (cut || (long)value_len > output__value_limit()) {
        /* Refused below: the task fails rather than publish half a value. */
        if (!r->too_large)
            r->too_large = strdup(key);
    } else if (memchr(value, '\0', value_len)) {
        /* A value is text: cut at the NUL it would be another value, so the task fails. */
        if (!r->has_nul)
            r->has_nul = strdup(key);
    } else {
        char *copy = dup_bytes(value, value_len);

        if (copy) {
            free(slots[i]);
            slots[i] = copy;
        } else {
            r->failed_mem = 1;
        }
    }
    free(key);
}

/* 1 if the key_len bytes at key name a declared output. */
static int is_declared(const struct run *r, const char *key, size_t key_len)
{
    size_t i;

    for (i = 0; i < fb_task_output_count(r->task); i++) {
        const char *name = fb_task_output_name(r->task, i);
        if (strlen(name) == key_len && memcmp(name, key, key_len) == 0)
            return 1;
    }
    return 0;
}

/* Handles one complete line (without "\n"); cut is 1 if it was over-long. */
static void handle_line(struct run *r, const struct stream *s, const char *line, size_t len,
                        int cut)
{
    struct kv_pair kv;

    if (s->is_out && kv_parse_line(line, len, &kv)) {
        /*
         * With a newline in an input, this line may be the input's text rather
         * than the command's word: it is still recorded (main.c refuses to use
         * it unless the file set the output too) and also logged, so the user
         * sees what was refused.
         */
        if (!r->newline_input || is_declared(r, kv.key, kv.key_len))
            record(r, r->values, kv.key, kv.key_len, kv.value, kv.value_len, cut);
        if (!r->newline_input)
            return;
    }
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (cut)
        fb_task_log(r->task, "%.*s [line cut at %zu bytes]", (int)len, line, output__line_max());
    else
        fb_task_log(r->task, "%.*s", (int)len, line);
}

static int record_from_file(void *ctx, const char *key, size_t key_len, const char *value,
                            size_t value_len)
{
    struct run *r = ctx;

    record(r, r->file_values, key, key_len, value, value_len, 0);
    return 0;
}

int output__read_file(struct run *r, const char *buf, size_t len, char *err, size_t errlen)
{
    struct outfile_error e = {0, NULL};

    if (outfile_parse(buf, len, record_from_file, r, &e) != 0) {
        snprintf(err, errlen, "$FLOWBUS_OUTPUT line %zu: %s", e.line, e.what);
        return -1;
    }
    return 0;
}

int output__read(struct run *r, struct stream *s)
{
    size_t line_max = output__line_max();
    ssize_t n = read(s->fd, s->buf + s->used, line_max - s->used);
    size_t start = 0, i;

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return -1;
    if (n <= 0) {
        if (s->used > 0 && !s->skipping)
            handle_line(r, s, s->buf, s->used, 0);
        s->used = 0;
        return 0;
    }
    s->used += (size_t)n;
    for (i = s->used - (size_t)n; i < s->used; i++) {
        if (s->buf[i] != '\n')
            continue;
        if (!s->skipping)
            handle_line(r, s, s->buf + start, i - start, 0);
        s->skipping = 0;
        start = i + 1;
    }
    memmove(s->buf, s->buf + start, s->used - start);
    s->used -= start;
    if (s->used == line_max) {
        /* A full buffer without a newline: handle the cut line, drop the rest of it. */
        if (!s->skipping)
            handle_line(r, s, s->buf, s->used, 1);
        s->skipping = 1;
        s->used = 0;
    }
    return 1;
}

void output__last_line(struct run *r, struct stream *s)
{
    if (s->fd >= 0 && s->used > 0 && !s->skipping)
        handle_line(r, s, s->buf, s->used, 0);
    s->used = 0;
}

void output__clear(struct run *r)
{
    size_t i;

    for (i = 0; r->values && i < fb_task_output_count(r->task); i++)
        free(r->values[i]);
    free(r->values);
    for (i = 0; r->file_values && i < fb_task_output_count(r->task); i++)
        free(r->file_values[i]);
    free(r->file_values);
    for (i = 0; i < r->nwarned; i++)
        free(r->warned[i]);
    free(r->warned);
    free(r->too_large);
    free(r->has_nul);
    memset(r, 0, sizeof *r);
}
