/*
 * advice.c - warnings of `flowbus validate` for workflows that are valid but
 * do not do what their author most likely meant (issue 15): an `end` task
 * that is reached before any work, and a task input expanded by the shell
 * without double quotes. They never fail a load; checks.c calls them.
 *
 * Both come from the seed's own example, which newcomers copy: its END took
 * only TRUE (so "the workflow completed" was reported as soon as START ran)
 * and its commands used $VAR bare (so a value with a space or a '*' became
 * several words or a list of files).
 */
#include "advice.h"
#include "diag.h"

#include <string.h>

/* 1 if task t runs the plugin name. */
static int is_plugin(const struct wf_task *t, const char *name)
{
    return t->plugin && strcmp(t->plugin, name) == 0;
}

/* 1 if every task that outputs var runs the plugin start, and at least one does. */
static int only_start_sets(const struct workflow *wf, const char *var)
{
    int any = 0;

    for (size_t i = 0; i < wf->n_tasks; i++) {
        const struct wf_task *t = &wf->tasks[i];
        if (!workflow__list_has(&t->outputs, var))
            continue;
        if (!is_plugin(t, "start"))
            return 0;
        any = 1;
    }
    return any;
}

void advice__end_tasks(const struct workflow *wf, struct wf_diags *diags)
{
    size_t workers = 0;

    /* Only a workflow with work besides start and end can end too early. */
    for (size_t i = 0; i < wf->n_tasks; i++)
        if (!is_plugin(&wf->tasks[i], "start") && !is_plugin(&wf->tasks[i], "end"))
            workers++;
    if (workers == 0 || wf->reactive)
        return;
    for (size_t i = 0; i < wf->n_tasks; i++) {
        const struct wf_task *t = &wf->tasks[i];
        if (!is_plugin(t, "end") || t->depends_on.n > 0)
            continue;
        if (t->inputs.n == 0)
            diag__warning(diags, t->pos,
                          "end task '%s' has no inputs, so it finishes as soon as the run "
                          "starts, before any work; list the outputs of the last tasks as "
                          "its inputs",
                          t->name);
        else if (t->inputs.n == 1 && only_start_sets(wf, t->inputs.items[0].name))
            diag__warning(diags, t->inputs.items[0].pos,
                          "end task '%s' takes only %s, which a start task sets at once: it "
                          "finishes before any work, and the run counts as completed even if "
                          "the work is skipped; list the outputs of the last tasks as its "
                          "inputs",
                          t->name, t->inputs.items[0].name);
    }
}

/* The input of t named by the len bytes at p, or NULL. */
static const char *input_named(const struct wf_task *t, const char *p, size_t len)
{
    for (size_t k = 0; k < t->inputs.n; k++)
        if (strlen(t->inputs.items[k].name) == len && !strncmp(t->inputs.items[k].name, p, len))
            return t->inputs.items[k].name;
    return NULL;
}

/* 1 if the word that ends just before cmd[i] is an assignment "NAME=" (no splitting there). */
static int after_assignment(const char *cmd, size_t i)
{
    size_t j = i;

    if (j == 0 || cmd[j - 1] != '=')
        return 0;
    j--;
    while (j > 0 && (cmd[j - 1] == '_' || (cmd[j - 1] >= 'A' && cmd[j - 1] <= 'Z') ||
                     (cmd[j - 1] >= 'a' && cmd[j - 1] <= 'z') ||
                     (cmd[j - 1] >= '0' && cmd[j - 1] <= '9')))
        j--;
    return j < i - 1 && (j == 0 || cmd[j - 1] == ' ' || cmd[j - 1] == '\t' ||
                         cmd[j - 1] == '\n' || cmd[j - 1] == ';');
}

/*
 * The quoting contexts of sh, simply: a command substitution $( ) or `$((`
 * opens a new context even inside double quotes, and its ')' closes it.
 */
enum quoting { PLAIN, SINGLE, DOUBLE, SUBST, ARITH };
#define MAX_NESTING 16

void advice__unquoted_inputs(const struct wf_task *t, const char *cmd, struct wf_pos at,
                             struct wf_diags *diags)
{
    enum quoting stack[MAX_NESTING] = {PLAIN};
    size_t depth = 0;
    const char *warned[8];
    size_t n_warned = 0;

    for (size_t i = 0; cmd[i]; i++) {
        enum quoting state = stack[depth];
        char c = cmd[i];
        const char *p, *name;
        size_t len;
        int braced, seen = 0;

        if (state == SINGLE) {
            if (c == '\'')
                depth--;
            continue;
        }
        if (c == '\\' && cmd[i + 1]) {
            i++;
            continue;
        }
        if (c == '$' && cmd[i + 1] == '(' && depth + 1 < MAX_NESTING) {
            /* $(( )) is arithmetic: names there are numbers, never split. */
            int arith = cmd[i + 2] == '(';
            stack[++depth] = arith ? ARITH : SUBST;
            i += arith ? 2 : 1;
            continue;
        }
        if ((state == SUBST && c == ')') || (state == ARITH && c == ')' && cmd[i + 1] == ')')) {
            i += state == ARITH;
            depth--;
            continue;
        }
        if (state == DOUBLE) {
            if (c == '"')
                depth--;
            continue;
        }
        if ((c == '\'' || c == '"') && state != ARITH && depth + 1 < MAX_NESTING) {
            stack[++depth] = c == '\'' ? SINGLE : DOUBLE;
            continue;
        }
        if (c != '$' || state == ARITH || after_assignment(cmd, i))
            continue;
        p = cmd + i + 1;
        braced = *p == '{';
        if (braced)
            p++;
        len = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_");
        name = len ? input_named(t, p, len) : NULL;
        if (!name || (braced && p[len] != '}' && p[len] != ':' && p[len] != '-' &&
                      p[len] != '%' && p[len] != '#'))
            continue;
        for (size_t k = 0; k < n_warned; k++)
            seen |= warned[k] == name;
        if (seen)
            continue;
        if (n_warned < sizeof warned / sizeof *warned)
            warned[n_warned++] = name;
        diag__warning(diags, at,
                      "the command of task '%s' uses $%s without double quotes: the shell "
                      "splits its value into words and expands '*' in it; write \"$%s\"",
                      t->name, name, name);
    }
}
