/*
 * output.c - turns the command's stdout and stderr into lines, and each line
 * into a recorded output value, a warning or a log line (see output.h).
 */
#include "output.h"
#include "kv.h"

#include <errno.h>
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

/* Handles one complete line (without "\n"); cut is 1 if it was over-long. */
static void handle_line(struct run *r, const struct stream *s, const char *line, size_t len,
                        int cut)
{
    struct kv_pair kv;
    size_t i;

    if (s->is_out && kv_parse_line(line, len, &kv)) {
        char *key = dup_bytes(kv.key, kv.key_len);

        if (!key) {
            r->failed_mem = 1;
            return;
        }
        for (i = 0; i < fb_task_output_count(r->task); i++)
            if (strcmp(fb_task_output_name(r->task, i), key) == 0)
                break;
        if (i == fb_task_output_count(r->task)) {
            warn_undeclared(r, key);
        } else if (cut || (long)kv.value_len > output__value_limit()) {
            /* Refused below: the task fails rather than publish half a value. */
            if (!r->too_large)
                r->too_large = strdup(key);
        } else if (memchr(kv.value, '\0', kv.value_len)) {
            fb_task_log(r->task, "warning: the value of %s contains a NUL byte; line ignored", key);
        } else {
            char *value = dup_bytes(kv.value, kv.value_len);

            if (value) {
                free(r->values[i]);
                r->values[i] = value;
            } else {
                r->failed_mem = 1;
            }
        }
        free(key);
        return;
    }
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (cut)
        fb_task_log(r->task, "%.*s [line cut at %zu bytes]", (int)len, line, output__line_max());
    else
        fb_task_log(r->task, "%.*s", (int)len, line);
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
    for (i = 0; i < r->nwarned; i++)
        free(r->warned[i]);
    free(r->warned);
    free(r->too_large);
    memset(r, 0, sizeof *r);
}
