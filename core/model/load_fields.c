/*
 * load_fields.c - the loader's readers of single fields: the node budget that
 * every walk goes through, typed scalars (booleans, numbers, bounded integers
 * and durations), strings, and mappings with a fixed set of keys. Each
 * reports what it found when that is not what was expected, and returns.
 */
#include "diag.h"
#include "suggest.h"
#include "load.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ynode *load__visit(struct loader *L, uint32_t id)
{
    struct ynode *n;

    if (L->over_budget)
        return NULL;
    n = node_at(L->doc, id);
    if (!n)
        return NULL;
    if (++L->visited > L->budget) {
        L->over_budget = 1;
        diag__error(L->diags, pos_of(n),
                    "the document expands to more than %d nodes through aliases; refusing it "
                    "(a YAML alias bomb?)",
                    NODE_BUDGET);
        return NULL;
    }
    return n;
}

/* Describes a node for "got ..." in messages. */
const char *load__describe(const struct ynode *n, char *buf, size_t size)
{
    const char *s = scalar(n);
    char quoted[41];

    if (!n)
        snprintf(buf, size, "nothing");
    else if (n->type == YAML_SEQUENCE_NODE)
        snprintf(buf, size, "a list");
    else if (n->type == YAML_MAPPING_NODE)
        snprintf(buf, size, "a mapping");
    else if (is_null(n))
        snprintf(buf, size, "an empty value");
    else
        snprintf(buf, size, "\"%s\"", diag__quote(s, n->len, 40, quoted));
    return buf;
}

int load__parse_bool(const struct ynode *n, int *out)
{
    static const char *const yes[] = {"true", "True", "TRUE"};
    static const char *const no[] = {"false", "False", "FALSE"};
    const char *s = text(n);

    if (!s)
        return 0;
    for (size_t i = 0; i < COUNT(yes); i++) {
        if (!strcmp(s, yes[i])) {
            *out = 1;
            return 1;
        }
        if (!strcmp(s, no[i])) {
            *out = 0;
            return 1;
        }
    }
    return 0;
}

int load__parse_number(const struct ynode *n, double *out)
{
    const char *s = text(n);
    char *end;
    double v;

    if (!s || !*s || isspace((unsigned char)*s))
        return 0;
    errno = 0;
    v = strtod(s, &end);
    if (*end || errno || !isfinite(v))
        return 0;
    *out = v;
    return 1;
}

int load__parse_int(const struct ynode *n, long *out)
{
    const char *s = text(n);
    char *end;
    long v;

    if (!s || !*s || isspace((unsigned char)*s))
        return 0;
    errno = 0;
    v = strtol(s, &end, 10);
    if (*end || errno || v > INT_MAX || v < INT_MIN)
        return 0;
    *out = v;
    return 1;
}

void load__read_fields(struct loader *L, struct ynode *map, const char *const *keys, size_t n_keys,
                       const char *where, struct field *fields)
{
    memset(fields, 0, n_keys * sizeof *fields);
    for (size_t pair = 0; pair + 1 < map->len; pair += 2) {
        struct ynode *key = load__visit(L, map->u.kids[pair]);
        struct ynode *value = load__visit(L, map->u.kids[pair + 1]);
        const char *name = text(key);
        size_t k;
        char buf[64], clipped[NAME_CLIP + 1];

        if (!key || !value)
            return;
        if (!name) {
            diag__error(L->diags, pos_of(key), "keys in %s must be names, got %s", where,
                        load__describe(key, buf, sizeof buf));
            continue;
        }
        for (k = 0; k < n_keys && strcmp(name, keys[k]); k++)
            ;
        if (k == n_keys) {
            const char *hint = suggest__closest(name, keys, n_keys, 2);
            if (hint) {
                diag__error(L->diags, pos_of(key), "unknown key '%s' in %s; did you mean '%s'?",
                            diag__clip(name, NAME_CLIP, clipped), where, hint);
            } else {
                char list[256];
                size_t used = 0;
                list[0] = 0;
                for (size_t i = 0; i < n_keys && used < sizeof list; i++)
                    used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                                             keys[i]);
                diag__error(L->diags, pos_of(key), "unknown key '%s' in %s; valid keys: %s%s",
                            diag__clip(name, NAME_CLIP, clipped), where, list,
                            strcmp(name, "<<") ? "" : " (YAML merge keys are not supported)");
            }
            continue;
        }
        if (fields[k].key) {
            diag__error(L->diags, pos_of(key), "duplicate key '%s' in %s (first at line %d)", name,
                        where, pos_of(fields[k].key).line);
            continue;
        }
        fields[k].key = key;
        fields[k].value = value;
    }
}

const char *load__string_field(struct loader *L, const struct field *f, const char *where)
{
    const char *s;
    char buf[64];

    if (!f->value)
        return NULL;
    s = text(f->value);
    if (!s && scalar(f->value) && !is_null(f->value))
        diag__error(L->diags, pos_of(f->value),
                    "'%s' in %s must not contain a NUL character, got %s", scalar(f->key), where,
                    load__describe(f->value, buf, sizeof buf));
    else if (!s)
        diag__error(L->diags, pos_of(f->value), "'%s' in %s must be a string, got %s",
                    scalar(f->key), where, load__describe(f->value, buf, sizeof buf));
    return s;
}

void load__read_seconds(struct loader *L, struct ynode *n, const char *key, const char *tname,
                        double *out)
{
    char buf[64];
    double d;

    if (!n)
        return;
    if (!load__parse_number(n, &d) || d < 0 || d > MAX_TIMEOUT)
        diag__error(L->diags, pos_of(n),
                    "'%s' must be a number of seconds from 0 to %.0f (30 days), got %s (%s)", key,
                    MAX_TIMEOUT, load__describe(n, buf, sizeof buf), tname);
    else
        *out = d;
}

void load__read_int(struct loader *L, struct ynode *n, const char *key, const char *tname, int min,
                    int max, int *out)
{
    char buf[64];
    long v;

    if (!n)
        return;
    if (!load__parse_int(n, &v) || v < min)
        diag__error(L->diags, pos_of(n), "'%s' must be an integer ≥ %d, got %s (task '%s')", key,
                    min, load__describe(n, buf, sizeof buf), tname);
    else if (v > max)
        diag__error(L->diags, pos_of(n), "'%s' must be at most %d, got %s (task '%s')", key, max,
                    load__describe(n, buf, sizeof buf), tname);
    else
        *out = (int)v;
}
