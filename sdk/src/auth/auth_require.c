/*
 * auth_require.c - fb_task_require, the permission check a task makes after
 * fb_task_wait and before it acts (flowbus.h, docs/security.md).
 *
 * It reads the task's token (AUTH_TOKEN) and what the workflow requires
 * (FLOWBUS_REQUIRES_AUTH, FLOWBUS_PERMISSIONS_REQUIRED), fetches the token's
 * set (fb_permissions_fetch, auth.c) and checks every name the plugin and
 * the workflow require. A refusal is final for the task: it publishes the
 * terminal state FB_STATE_DENIED with exit FB_EXIT_DENIED and a one-line
 * reason that names what is missing, never the token.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "flowbus/protocol.h"
#include "internal.h"

static int env_true(const char *name)
{
    const char *v = getenv(name);

    return v != NULL && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0);
}

/* Whether the ", "-separated list in buf holds exactly name. */
static int list_has(const char *buf, const char *name)
{
    size_t len = strlen(name);
    const char *p;

    for (p = buf; (p = strstr(p, name)) != NULL; p += len)
        if ((p == buf || p[-1] == ' ') && (p[len] == '\0' || p[len] == ','))
            return 1;
    return 0;
}

/* Appends name to the "missing" list in buf (", "-separated). */
static void append_name(char *buf, size_t len, const char *name)
{
    size_t used = strlen(buf);

    if (used < len)
        snprintf(buf + used, len - used, "%s%s", used > 0 ? ", " : "", name);
}

/* Appends name to missing (counting it) unless perms grants it or it is listed already. */
static void check_name(const fb_permissions *perms, const char *name, char *missing, size_t len,
                       size_t *count)
{
    if (!fb_permissions_has(perms, name) && !list_has(missing, name)) {
        append_name(missing, len, name);
        (*count)++;
    }
}

/*
 * Checks names (n of them) and the comma-separated list text (the workflow's,
 * read by names__split like every list of the task's environment) against
 * perms; appends the missing ones to missing. Returns FB_OK, FB_ERR_INVALID
 * if a name is malformed, or FB_ERR_NOMEM.
 */
static enum fb_err check_names(const fb_permissions *perms, const char *const *names, size_t n,
                               const char *text, char *missing, size_t len, size_t *count)
{
    char **listed = NULL;
    size_t n_listed = 0;
    enum fb_err err;
    size_t i;

    for (i = 0; names != NULL && i < n; i++)
        if (names[i] == NULL || !auth_perms__valid_name(names[i], strlen(names[i])))
            return FB_ERR_INVALID;
    err = names__split(text, auth_perms__valid_name, &listed, &n_listed, NULL, 0);
    if (err != FB_OK)
        return err;
    for (i = 0; names != NULL && i < n; i++)
        check_name(perms, names[i], missing, len, count);
    for (i = 0; i < n_listed; i++)
        check_name(perms, listed[i], missing, len, count);
    names__free(listed, n_listed);
    return FB_OK;
}

/* Whether a comma-separated list has at least one non-blank item. */
static int list_nonempty(const char *text)
{
    for (; text != NULL && *text != '\0'; text++)
        if (*text != ',' && *text != ' ' && *text != '\t')
            return 1;
    return 0;
}

enum fb_err fb_task_require(fb_task *task, const char *const *names, size_t n)
{
    const char *token = getenv("AUTH_TOKEN");
    const char *required = getenv("FLOWBUS_PERMISSIONS_REQUIRED");
    fb_auth_options opts;
    fb_permissions *perms = NULL;
    char reason[512] = "";
    char missing[384] = "";
    size_t n_missing = 0;
    void *log_ctx = NULL;
    fb_log_fn log;
    enum fb_err err;

    if (task == NULL)
        return FB_ERR_INVALID;
    log = task__log_fn(task, &log_ctx);
    if (token != NULL && *token == '\0')
        token = NULL;
    if (token == NULL) {
        if (env_true("FLOWBUS_REQUIRES_AUTH"))
            snprintf(reason, sizeof reason,
                     "no AUTH_TOKEN: this task requires authentication (requires_auth) and has no "
                     "token");
        else if (list_nonempty(required))
            snprintf(
                reason, sizeof reason,
                "no AUTH_TOKEN: the workflow requires permissions of this task (%.200s) and it "
                "has no token",
                required);
        else
            return FB_OK; /* auth is not in use */
        goto deny;
    }
    memset(&opts, 0, sizeof opts);
    opts.log = log;
    opts.log_ctx = log_ctx;
    err = fb_permissions_fetch(&opts, token, &perms, reason, sizeof reason);
    if (err != FB_OK) {
        if (err == FB_ERR_NOMEM)
            snprintf(reason, sizeof reason, "out of memory during the permission check");
        goto deny;
    }
    err = check_names(perms, names, n, required, missing, sizeof missing, &n_missing);
    if (err == FB_ERR_NOMEM) {
        snprintf(reason, sizeof reason, "out of memory during the permission check");
        goto deny;
    }
    if (err != FB_OK) {
        snprintf(reason, sizeof reason,
                 "a required permission name is malformed (in FLOWBUS_PERMISSIONS_REQUIRED or the "
                 "plugin)");
        goto deny;
    }
    fb_permissions_free(perms);
    perms = NULL;
    if (n_missing == 0) {
        log__emit(log, log_ctx, FB_LOG_DEBUG, "permission check passed");
        return FB_OK;
    }
    snprintf(reason, sizeof reason, "missing permission%s %s", n_missing > 1 ? "s" : "", missing);
deny:
    fb_permissions_free(perms);
    log__emit(log, log_ctx, FB_LOG_WARN, "denied: %s", reason);
    err = task__finish(task, FB_STATE_DENIED, FB_EXIT_DENIED, reason);
    if (err == FB_ERR_INVALID)
        return FB_ERR_INVALID; /* already finished: nothing was published */
    if (err != FB_OK)
        log__emit(log, log_ctx, FB_LOG_ERROR, "cannot publish the state '%s': %s",
                  fb_state_name(FB_STATE_DENIED), fb_strerror(err));
    return FB_ERR_DENIED;
}
