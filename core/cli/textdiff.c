/*
 * textdiff.c - the unified diff of textdiff.h. The common first and last
 * lines are set aside, and the middle is compared by the classic dynamic
 * programme of a longest common subsequence: the texts `flowbus fmt` compares
 * are workflow files, and a canonical rewrite changes scattered lines, so
 * the quadratic table stays small; past a bound the middle is replaced whole.
 */
#include "textdiff.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CELLS (4u * 1024 * 1024)
#define CONTEXT 3

struct line {
    const char *s;
    size_t n; /* without the newline */
};

/* Splits text into lines; *nl says whether the last one ended with a newline. */
static struct line *split(const char *t, size_t len, size_t *count)
{
    size_t n = 0, cap = 16;
    struct line *l = malloc(cap * sizeof *l);
    const char *p = t, *end = t + len;

    while (l && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (n == cap) {
            struct line *bigger = realloc(l, (cap *= 2) * sizeof *l);
            if (!bigger) {
                free(l);
                return NULL;
            }
            l = bigger;
        }
        l[n].s = p;
        l[n].n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        n++;
        p = nl ? nl + 1 : end;
    }
    *count = n;
    return l;
}

static int same(const struct line *a, const struct line *b)
{
    return a->n == b->n && memcmp(a->s, b->s, a->n) == 0;
}

/* One line of the edit script: ' ' kept, '-' removed (from a), '+' added (from b). */
struct op {
    char kind;
    size_t a, b; /* indices of the line in a and b (the next ones for an add or remove) */
};

static void print_hunk(FILE *out, const struct op *ops, size_t from, size_t to,
                       const struct line *a, const struct line *b)
{
    size_t na = 0, nb = 0;

    for (size_t i = from; i < to; i++) {
        na += ops[i].kind != '+';
        nb += ops[i].kind != '-';
    }
    fprintf(out, "@@ -%zu,%zu +%zu,%zu @@\n", ops[from].a + (na ? 1 : 0), na,
            ops[from].b + (nb ? 1 : 0), nb);
    for (size_t i = from; i < to; i++) {
        const struct line *l = ops[i].kind == '+' ? &b[ops[i].b] : &a[ops[i].a];
        fputc(ops[i].kind, out);
        fwrite(l->s, 1, l->n, out);
        fputc('\n', out);
    }
}

int textdiff__unified(const char *at, size_t a_len, const char *bt, size_t b_len,
                      const char *from_label, const char *to_label, FILE *out)
{
    size_t na = 0, nb = 0, pre = 0, post = 0, n_ops = 0;
    struct line *a = split(at, a_len, &na), *b = split(bt, b_len, &nb);
    uint32_t *t = NULL;
    struct op *ops = NULL;
    int rc = -1;

    if (!a || !b)
        goto out;
    if (a_len == b_len && memcmp(at, bt, a_len) == 0) {
        rc = 0;
        goto out;
    }
    while (pre < na && pre < nb && same(&a[pre], &b[pre]))
        pre++;
    while (post < na - pre && post < nb - pre && same(&a[na - 1 - post], &b[nb - 1 - post]))
        post++;
    ops = malloc((na + nb + 1) * sizeof *ops);
    if (!ops)
        goto out;
    {
        size_t n = na - pre - post, m = nb - pre - post, i, j;
        const struct line *x = a + pre, *y = b + pre;
        int table = (n + 1) * (m + 1) <= MAX_CELLS;

        if (table && !(t = calloc((n + 1) * (m + 1), sizeof *t)))
            goto out;
        /* t[i][j]: the longest common subsequence of x[i..] and y[j..]. */
        for (i = n; table && i-- > 0;)
            for (j = m; j-- > 0;)
                t[i * (m + 1) + j] = same(&x[i], &y[j])
                                         ? t[(i + 1) * (m + 1) + j + 1] + 1
                                         : t[(i + 1) * (m + 1) + j] > t[i * (m + 1) + j + 1]
                                               ? t[(i + 1) * (m + 1) + j]
                                               : t[i * (m + 1) + j + 1];
        for (size_t k = 0; k < pre; k++)
            ops[n_ops++] = (struct op){' ', k, k};
        i = j = 0;
        while (i < n || j < m) {
            if (table && i < n && j < m && same(&x[i], &y[j])) {
                ops[n_ops++] = (struct op){' ', pre + i, pre + j};
                i++, j++;
            } else if (i < n && (j == m || !table ||
                                 t[(i + 1) * (m + 1) + j] >= t[i * (m + 1) + j + 1])) {
                ops[n_ops++] = (struct op){'-', pre + i, pre + j};
                i++;
            } else {
                ops[n_ops++] = (struct op){'+', pre + i, pre + j};
                j++;
            }
        }
        for (size_t k = 0; k < post; k++)
            ops[n_ops++] = (struct op){' ', na - post + k, nb - post + k};
    }
    fprintf(out, "--- %s\n+++ %s\n", from_label, to_label);
    for (size_t i = 0; i < n_ops;) {
        size_t from, to, last;
        if (ops[i].kind == ' ') {
            i++;
            continue;
        }
        from = i > CONTEXT ? i - CONTEXT : 0;
        /* Extend over changes closer than two contexts apart. */
        last = i;
        for (to = i; to < n_ops; to++) {
            if (ops[to].kind != ' ')
                last = to;
            else if (to - last > 2 * CONTEXT)
                break;
        }
        to = last + CONTEXT + 1 < n_ops ? last + CONTEXT + 1 : n_ops;
        print_hunk(out, ops, from, to, a, b);
        i = to;
    }
    rc = 0;
out:
    free(a);
    free(b);
    free(t);
    free(ops);
    return rc;
}
