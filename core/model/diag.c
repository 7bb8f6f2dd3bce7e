/*
 * diag.c - the diagnostics of a workflow file: collecting them, sorting them
 * into file order, printing them as "FILE:LINE:COL: error: message", and the
 * hints messages use (a did-you-mean, names clipped to one short line).
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

    if (!diags || !out || diags->n == 0)
        goto out;
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
}

/* ---------------------------------------------------------------- hints */

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
