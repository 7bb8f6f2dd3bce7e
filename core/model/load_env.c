/*
 * load_env.c - the workflow's initial variables: `env:` (plain values, or
 * {value: ..., secret: true}), the {{ENV:X}} references in them, and the
 * `--set` values of the command line, which override them (a reserved name,
 * fb_name_reserved, only when env: declares it).
 */
#include "diag.h"
#include "load.h"

#include <flowbus/protocol.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const SECRET_VAR_KEYS[] = {"value", "secret"};

/*
 * The position of byte off inside a scalar, when it can be known exactly: a
 * one-line ASCII scalar without escapes. Otherwise the scalar's own position.
 */
static struct wf_pos pos_in_scalar(const struct ynode *n, size_t off)
{
    struct wf_pos p = pos_of(n);
    size_t len = n->len;
    size_t quote;

    switch (n->style) {
    case YAML_PLAIN_SCALAR_STYLE:
        quote = 0;
        break;
    case YAML_SINGLE_QUOTED_SCALAR_STYLE:
    case YAML_DOUBLE_QUOTED_SCALAR_STYLE:
        quote = 1;
        break;
    default:
        return p;
    }
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)n->u.value[i] >= 0x80)
            return p;
    if (!n->exact)
        return p;
    p.col += (int)(quote + off);
    return p;
}

/*
 * Substitutes {{ENV:X}} in s (the text of node n, env variable var).
 * Returns the malloc'd result, or NULL after reporting an error.
 */
static char *substitute_env(struct loader *L, const struct ynode *n, const char *s, const char *var)
{
    static const char opener[] = "{{ENV:";
    const struct wf_load_options *o = L->opts;
    char *out = NULL;
    size_t len = 0, cap = strlen(s) + 1;
    int failed = 0;
    const char *p = s;

    out = malloc(cap);
    if (!out)
        goto fail;
    for (;;) {
        const char *ref = strstr(p, opener);
        const char *name, *close, *value = NULL;
        size_t chunk, name_len;
        char env_name[65];
        int valid;

        chunk = ref ? (size_t)(ref - p) : strlen(p);
        if (len + chunk + 1 > cap) {
            char *bigger;
            cap = (len + chunk + 1) * 2;
            bigger = realloc(out, cap);
            if (!bigger)
                goto fail;
            out = bigger;
        }
        memcpy(out + len, p, chunk);
        len += chunk;
        out[len] = 0;
        if (!ref)
            break;
        name = ref + sizeof opener - 1;
        close = strstr(name, "}}");
        name_len = close ? (size_t)(close - name) : 0;
        valid = close && name_len > 0 && name_len < sizeof env_name;
        if (valid) {
            memcpy(env_name, name, name_len);
            env_name[name_len] = 0;
            valid = workflow__valid_var_name(env_name);
        }
        if (!valid) {
            diag__error(L->diags, pos_in_scalar(n, (size_t)(ref - s)),
                        "malformed environment reference in env '%s': expected {{ENV:NAME}} with a "
                        "variable name and a closing '}}'",
                        var);
            failed = 1;
            p = name;
            continue;
        }
        if (o && o->getenv_fn)
            value = o->getenv_fn(o->getenv_ctx, env_name);
        else
            value = getenv(env_name);
        if (!value && !(o && o->unset_env_ok)) {
            /*
             * The error fails the load; the variable is still defined (with
             * the reference left empty), so that no later check blames its
             * absence (no token for AUTH_TOKEN, an input never set).
             */
            if (o && o->unset_env_warns)
                diag__warning(L->diags, pos_in_scalar(n, (size_t)(ref - s)),
                              "environment variable '%s' is not set (env '%s' uses {{ENV:%s}}): "
                              "a run of this file fails until it is set",
                              env_name, var, env_name);
            else
                diag__error(L->diags, pos_in_scalar(n, (size_t)(ref - s)),
                            "environment variable '%s' is not set (env '%s' uses {{ENV:%s}})",
                            env_name, var, env_name);
        }
        if (!value)
            value = "";
        chunk = strlen(value);
        if (len + chunk + 1 > cap) {
            char *bigger;
            cap = (len + chunk + 1) * 2;
            bigger = realloc(out, cap);
            if (!bigger)
                goto fail;
            out = bigger;
        }
        memcpy(out + len, value, chunk);
        len += chunk;
        out[len] = 0;
        p = close + 2;
    }
    if (failed)
        goto fail;
    return out;
fail:
    free(out);
    return NULL;
}

static long var_find(struct loader *L, const char *name)
{
    json_t *i = json_object_get(L->var_index, name);
    return i ? (long)json_integer_value(i) : -1;
}

static struct wf_var *var_append(struct loader *L, const char *name)
{
    struct workflow *wf = L->wf;
    struct wf_var *v;

    if (wf->n_vars == L->cap_vars) {
        size_t cap = L->cap_vars ? L->cap_vars * 2 : 8;
        struct wf_var *vars = realloc(wf->vars, cap * sizeof *vars);
        if (!vars)
            return NULL;
        wf->vars = vars;
        L->cap_vars = cap;
    }
    v = &wf->vars[wf->n_vars];
    memset(v, 0, sizeof *v);
    v->name = strdup(name);
    if (!v->name ||
        json_object_set_new_nocheck(L->var_index, name, json_integer((json_int_t)wf->n_vars))) {
        free(v->name);
        return NULL;
    }
    v->secret = !strcmp(name, "AUTH_TOKEN");
    wf->n_vars++;
    return v;
}

void load__read_env(struct loader *L, struct ynode *env)
{
    char buf[64], clipped[NAME_CLIP + 1];

    if (is_null(env))
        return;
    if (env->type != YAML_MAPPING_NODE) {
        diag__error(L->diags, pos_of(env),
                    "'env' must be a mapping of variable names to values, got %s",
                    load__describe(env, buf, sizeof buf));
        return;
    }
    for (size_t i = 0; i + 1 < env->len; i += 2) {
        struct ynode *key = load__visit(L, env->u.kids[i]);
        struct ynode *value = key ? load__visit(L, env->u.kids[i + 1]) : NULL;
        struct ynode *value_node;
        const char *name = text(key), *raw;
        char *resolved;
        int secret = 0;
        long existing;
        struct wf_var *var;

        if (!value)
            return;
        if (!name || !workflow__valid_var_name(name)) {
            diag__error(L->diags, pos_of(key), "'%s' in env is not a valid variable name: %s",
                        name ? diag__clip(name, NAME_CLIP, clipped)
                             : load__describe(key, buf, sizeof buf),
                        VAR_NAME_RULE);
            continue;
        }
        existing = var_find(L, name);
        if (existing >= 0) {
            diag__error(L->diags, pos_of(key), "duplicate key '%s' in env (first at line %d)", name,
                        L->wf->vars[existing].pos.line);
            continue;
        }
        value_node = value;
        if (value->type == YAML_MAPPING_NODE) {
            struct field f[COUNT(SECRET_VAR_KEYS)];
            char where[96];
            struct ynode *first_key = NULL;

            if (value->len > 0)
                first_key = load__visit(L, value->u.kids[0]);
            if (first_key && first_key->type == YAML_MAPPING_NODE) {
                /* `X: {{ENV:Y}}` unquoted is a YAML flow mapping, not text. */
                diag__error(L->diags, pos_of(value),
                            "env '%s' must be a string; put quotes around a value that uses "
                            "{{ENV:...}}",
                            name);
                continue;
            }
            snprintf(where, sizeof where, "env '%s'", name);
            load__read_fields(L, value, SECRET_VAR_KEYS, COUNT(SECRET_VAR_KEYS), where, f);
            if (f[1].value && !load__parse_bool(f[1].value, &secret)) {
                diag__error(L->diags, pos_of(f[1].value),
                            "'secret' in %s must be true or false, got %s", where,
                            load__describe(f[1].value, buf, sizeof buf));
            }
            if (!f[0].value) {
                diag__error(L->diags, pos_of(value), "%s has no 'value'", where);
                continue;
            }
            value_node = f[0].value;
        }
        raw = text(value_node);
        if (!raw) {
            if (value_node->type == YAML_SCALAR_NODE && !is_null(value_node))
                diag__error(L->diags, pos_of(value_node), "env '%s' contains a NUL character",
                            name);
            else
                diag__error(L->diags, pos_of(value_node),
                            "env '%s' must be a string, number or boolean (or {value: ..., secret: "
                            "true}), got %s%s",
                            name, load__describe(value_node, buf, sizeof buf),
                            is_null(value_node) ? "; write \"\" for an empty string" : "");
            continue;
        }
        resolved = substitute_env(L, value_node, raw, name);
        if (!resolved)
            continue;
        var = var_append(L, name);
        if (!var) {
            free(resolved);
            diag__error(L->diags, pos_of(key), "out of memory");
            return;
        }
        var->value = resolved;
        var->secret |= secret;
        var->pos = pos_of(key);
    }
}

void load__apply_settings(struct loader *L)
{
    const struct wf_load_options *o = L->opts;
    struct wf_pos none = {0, 0};

    for (size_t i = 0; o && i < o->n_settings; i++) {
        const struct wf_setting *s = &o->settings[i];
        struct wf_var *var;
        long existing;
        char *value;

        if (!workflow__valid_var_name(s->name)) {
            char clipped[NAME_CLIP + 1];
            const char *shown = s->name ? diag__clip(s->name, NAME_CLIP, clipped) : "";
            diag__error(L->diags, none, "--set %s: '%s' is not a valid variable name: %s", shown,
                        shown, VAR_NAME_RULE);
            continue;
        }
        existing = var_find(L, s->name);
        /* A reserved name (PATH, LD_PRELOAD, AUTH_TOKEN...) reaches every
         * command's environment: only the workflow's author declares it, in
         * env:, and --set may then change its value. */
        if (existing < 0 && fb_name_reserved(s->name)) {
            diag__error(L->diags, none,
                        "--set %s: '%s' is a reserved name (it %s); --set can change it only "
                        "when the workflow's env: declares it",
                        s->name, s->name, fb_name_reserved(s->name));
            continue;
        }
        value = strdup(s->value ? s->value : "");
        if (!value) {
            diag__error(L->diags, none, "out of memory");
            return;
        }
        var = existing >= 0 ? &L->wf->vars[existing] : var_append(L, s->name);
        if (!var) {
            free(value);
            diag__error(L->diags, none, "out of memory");
            return;
        }
        free(var->value);
        var->value = value;
        var->from_set = 1;
    }
}
