/*
 * diag.c - the diagnostics of a workflow file: collecting them, sorting them
 * into file order, printing them as "FILE:LINE:COL: error: message", and the
 * hints messages use (names clipped to one short line, control characters
 * shown escaped).
 *
 * A diagnostic is one line on a terminal: no message may carry a raw control
 * character, or a task name with a newline in it would break the line and an
 * escape sequence in one would reach the user's terminal. Every message is
 * therefore escaped as it is added (diag_vadd), whatever its format put in
 * it; a NUL cannot be seen there, so text quoted from the file that may hold
 * one goes through diag__quote with its length.
 */
#include "diag.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void diag_vadd(struct wf_diags *d, enum wf_severity sev, struct wf_pos pos, const char *fmt,
                      va_list ap) __attribute__((format(printf, 4, 0)));

/*
 * Bytes the character at s (len bytes left) takes in the message and, when it
 * must be escaped, its escape in esc (at least 5 bytes); 0 there otherwise.
 * Escapes are written as in a YAML double-quoted string: \0 \t \n \r \e, else
 * \xNN, which is also how YAML writes the C1 controls U+0080-U+009F.
 */
static size_t escape_char(const unsigned char *s, size_t len, char *esc)
{
    unsigned c = s[0];

    esc[0] = 0;
    if (c == 0xC2 && len > 1 && s[1] >= 0x80 && s[1] <= 0x9F) {
        snprintf(esc, 5, "\\x%02X", s[1]);
        return 2;
    }
    if (c >= 0x20 && c != 0x7F)
        return 1;
    switch (c) {
    case 0:
        memcpy(esc, "\\0", 3);
        break;
    case '\t':
        memcpy(esc, "\\t", 3);
        break;
    case '\n':
        memcpy(esc, "\\n", 3);
        break;
    case '\r':
        memcpy(esc, "\\r", 3);
        break;
    case 0x1B:
        memcpy(esc, "\\e", 3);
        break;
    default:
        snprintf(esc, 5, "\\x%02X", c);
    }
    return 1;
}

/* msg with every control character escaped, malloc'd; msg itself when it has none. */
static char *escape_message(char *msg)
{
    size_t len = strlen(msg), need = 0;
    char esc[5], *out, *o;

    for (size_t i = 0; i < len;) {
        size_t step = escape_char((const unsigned char *)msg + i, len - i, esc);
        need += esc[0] ? strlen(esc) : step;
        i += step;
    }
    if (need == len)
        return msg;
    out = malloc(need + 1);
    if (!out)
        return msg; /* out of memory: the raw message rather than none */
    o = out;
    for (size_t i = 0; i < len;) {
        size_t step = escape_char((const unsigned char *)msg + i, len - i, esc);
        size_t n = esc[0] ? strlen(esc) : step;
        memcpy(o, esc[0] ? esc : msg + i, n);
        o += n;
        i += step;
    }
    *o = 0;
    free(msg);
    return out;
}

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
    msg = escape_message(msg);
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

void diag__error(struct wf_diags *d, struct wf_pos pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_vadd(d, WF_ERROR, pos, fmt, ap);
    va_end(ap);
}

void diag__warning(struct wf_diags *d, struct wf_pos pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_vadd(d, WF_WARNING, pos, fmt, ap);
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

void diag__sort(struct wf_diags *d)
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

/* file is the path as given, escaped like the messages: a diagnostic is one line. */
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
    char *shown = NULL;

    if (!diags || !out || diags->n == 0)
        goto out;
    shown = strdup(file ? file : "");
    if (shown)
        shown = escape_message(shown);
    if (shown)
        file = shown;
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
    free(shown);
}

/* ---------------------------------------------------------------- hints */

/*
 * The next unit of s (len bytes left) for diag__quote: its escape in esc, or
 * a whole UTF-8 character (its continuation bytes with it). Returns the bytes
 * it takes in s; *out_len is what it takes in the message.
 */
static size_t quote_unit(const char *s, size_t len, char *esc, size_t *out_len)
{
    size_t step = escape_char((const unsigned char *)s, len, esc);

    if (esc[0]) {
        *out_len = strlen(esc);
        return step;
    }
    while (step < len && ((unsigned char)s[step] & 0xC0) == 0x80)
        step++;
    *out_len = step;
    return step;
}

const char *diag__quote(const char *s, size_t len, size_t max, char *buf)
{
    size_t total = 0, used = 0, n;
    size_t room;
    char esc[5];

    for (size_t i = 0; i < len; i += quote_unit(s + i, len - i, esc, &n), total += n)
        ;
    /* When it does not all fit, room is left for the "..." that ends it. */
    room = total <= max ? max : max - 3;
    for (size_t i = 0; i < len;) {
        size_t step = quote_unit(s + i, len - i, esc, &n);
        if (used + n > room)
            break;
        memcpy(buf + used, esc[0] ? esc : s + i, n);
        used += n;
        i += step;
    }
    if (total > max)
        memcpy(buf + used, "...", 4);
    else
        buf[used] = 0;
    return buf;
}

const char *diag__clip(const char *s, size_t max, char *buf)
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
