/*
 * launcher.c - starting task processes (see launcher.h).
 *
 * A task's environment is the coordinator's, minus anything that would leak
 * flowbus's own secrets or confuse the task (inherited FLOWBUS_* variables and
 * AUTH_TOKEN), plus the FLOWBUS_* variables of docs/protocol.md. Secret
 * variables reach only the tasks that take them as inputs (AUTH_TOKEN also the
 * tasks that require permissions), and only through the environment.
 *
 * The broker password is never in the environment, which every process of
 * the same user can read in /proc/<pid>/environ for the task's whole life.
 * It goes through a pipe the task inherits as descriptor CREDENTIALS_FD
 * (FLOWBUS_CREDENTIALS_FD names it), filled and closed for writing before
 * the task starts, in mosquitto_pub's options-file format; the task reads it
 * once and closes it (docs/protocol.md "Credentials").
 */
#define _GNU_SOURCE
#include "launcher.h"
#include "access.h"
#include "workflow.h"

#include <flowbus/protocol.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

/* The descriptor number a task finds its credentials on. */
#define CREDENTIALS_FD 3
#define CREDENTIALS_FD_TEXT "3"

struct strvec {
    char **v;
    size_t n, cap;
};

static int push(struct strvec *sv, char *s)
{
    if (!s)
        return 0;
    if (sv->n + 2 > sv->cap) {
        size_t cap = sv->cap ? sv->cap * 2 : 64;
        char **v = realloc(sv->v, cap * sizeof *v);
        if (!v) {
            free(s);
            return 0;
        }
        sv->v = v;
        sv->cap = cap;
    }
    sv->v[sv->n++] = s;
    sv->v[sv->n] = NULL;
    return 1;
}

static char *kv(const char *key, const char *value)
{
    size_t len = strlen(key) + strlen(value) + 2;
    char *s = malloc(len);
    if (s)
        snprintf(s, len, "%s=%s", key, value);
    return s;
}

/* Joins names with commas into a malloc'd "KEY=a,b,c". */
static char *join(const char *key, const struct wf_list *l)
{
    size_t len = strlen(key) + 2;
    char *s, *p;

    for (size_t i = 0; i < l->n; i++)
        len += strlen(l->items[i].name) + 1;
    s = malloc(len);
    if (!s)
        return NULL;
    p = s + sprintf(s, "%s=", key);
    for (size_t i = 0; i < l->n; i++)
        p += sprintf(p, "%s%s", i ? "," : "", l->items[i].name);
    return s;
}

/*
 * A pipe holding task t's credentials as mosquitto_pub options ("-u USER",
 * "-P PASSWORD"), closed for writing: its read end (close-on-exec, above
 * CREDENTIALS_FD so that the dup2 of posix_spawn always clears the flag) in
 * *out, or -1 when the task connects without credentials. 0 on failure.
 */
static int credentials_pipe(const struct launch_context *ctx, long t, int *out)
{
    const char *user = ctx->access ? access__user(ctx->access, t) : ctx->username;
    const char *pass = ctx->access ? access__password(ctx->access, t) : ctx->password;
    char text[1024];
    int fds[2] = {-1, -1}, rd = -1, n, ok = 0;

    *out = -1;
    if (!user && !pass)
        return 1;
    /* One option a line: a newline in either would start another option. */
    if ((user && strchr(user, '\n')) || (pass && strchr(pass, '\n'))) {
        errno = EINVAL;
        return 0;
    }
    n = snprintf(text, sizeof text, "%s%s%s%s%s", user ? "-u " : "", user ? user : "",
                 user ? "\n" : "", pass ? "-P " : "", pass ? pass : "");
    /* A pipe takes 64 KiB before a write blocks: the text always fits. */
    if (n < 0 || (size_t)n + 2 > sizeof text || pipe2(fds, O_CLOEXEC) != 0)
        goto out;
    if (pass)
        text[n++] = '\n';
    rd = fcntl(fds[0], F_DUPFD_CLOEXEC, CREDENTIALS_FD + 1);
    if (rd < 0 || write(fds[1], text, (size_t)n) != n)
        goto out;
    *out = rd;
    rd = -1;
    ok = 1;
out:
    explicit_bzero(text, sizeof text);
    if (rd >= 0)
        close(rd);
    for (int i = 0; i < 2; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    return ok;
}

/* Settings of the coordinator's environment that its tasks share. */
static const char *const shared_vars[] = {"FLOWBUS_TLS_CA", "FLOWBUS_TLS_CERT", "FLOWBUS_TLS_KEY",
                                       "FLOWBUS_MAX_VALUE"};

static int inherited(const char *entry)
{
    if (strncmp(entry, "FLOWBUS_", 8) == 0 && strncmp(entry, "FLOWBUS_PLUGIN_PATH=", 20) != 0)
        return 0;
    if (strncmp(entry, "AUTH_TOKEN=", 11) == 0)
        return 0;
    return 1;
}

static int lists(const struct wf_list *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->items[i].name, name) == 0)
            return 1;
    return 0;
}

static void free_vec(struct strvec *sv)
{
    for (size_t i = 0; i < sv->n; i++)
        free(sv->v[i]);
    free(sv->v);
}

/* The coordinator's own environment overrides the workflow's `auth:`. */
static const char *auth_setting(const char *env_name, const char *from_workflow)
{
    const char *v = getenv(env_name);
    return v && *v ? v : from_workflow;
}

/*
 * What the SDK's permission check needs (docs/security.md): where Attica is,
 * how long to wait, how long to cache, which names the workflow requires,
 * and the run directory the tasks share their cache in.
 */
static int add_auth_env(const struct launch_context *ctx, const struct wf_task *task,
                        struct strvec *env)
{
    const struct wf_auth *auth = &ctx->wf->auth;
    char num[32];
    const char *v;

    if (task->requires_auth && !push(env, strdup("FLOWBUS_REQUIRES_AUTH=1")))
        return 0;
    if (task->permissions.n > 0 && !push(env, join("FLOWBUS_PERMISSIONS_REQUIRED", &task->permissions)))
        return 0;
    if ((v = auth_setting("FLOWBUS_ATTICA_URL", auth->url)) != NULL &&
        !push(env, kv("FLOWBUS_ATTICA_URL", v)))
        return 0;
    snprintf(num, sizeof num, "%g", auth->timeout);
    if ((v = auth_setting("FLOWBUS_ATTICA_TIMEOUT", auth->timeout > 0 ? num : NULL)) != NULL &&
        !push(env, kv("FLOWBUS_ATTICA_TIMEOUT", v)))
        return 0;
    snprintf(num, sizeof num, "%g", auth->cache_ttl);
    if ((v = auth_setting("FLOWBUS_ATTICA_CACHE_TTL", auth->set && auth->cache_ttl >= 0 ? num : NULL)) != NULL &&
        !push(env, kv("FLOWBUS_ATTICA_CACHE_TTL", v)))
        return 0;
    if ((v = auth_setting("FLOWBUS_ATTICA_CA_FILE", auth->ca_file)) != NULL &&
        !push(env, kv("FLOWBUS_ATTICA_CA_FILE", v)))
        return 0;
    if (ctx->run_dir && (!push(env, kv("FLOWBUS_RUN_DIR", ctx->run_dir)) ||
                         !push(env, kv("FLOWBUS_CACHE_SALT", ctx->cache_salt))))
        return 0;
    return 1;
}

/* What a reactive task needs: its mode, triggers, queue bound and overflow, place in its pool. */
static int add_reactive_env(const struct launch_context *ctx, const struct wf_task *task,
                            int worker, struct strvec *env)
{
    char num[32];

    if (!ctx->wf->reactive)
        return 1;
    if (!push(env, strdup("FLOWBUS_MODE=reactive")))
        return 0;
    if (task->trigger.n && !push(env, join("FLOWBUS_TRIGGERS", &task->trigger)))
        return 0;
    snprintf(num, sizeof num, "%d", task->queue > 0 ? task->queue : 100);
    if (!push(env, kv("FLOWBUS_QUEUE", num)))
        return 0;
    if (!push(env, kv("FLOWBUS_OVERFLOW", workflow__overflow_name(task->overflow))))
        return 0;
    snprintf(num, sizeof num, "%d", worker);
    if (!push(env, kv("FLOWBUS_WORKER", num)))
        return 0;
    snprintf(num, sizeof num, "%d", task->workers > 1 ? task->workers : 1);
    return push(env, kv("FLOWBUS_WORKERS", num));
}

static int build_env(const struct launch_context *ctx, const struct wf_task *task, int worker,
                     int attempt, struct strvec *env)
{
    const struct workflow *wf = ctx->wf;
    char buf[64], root[FB_TOPIC_MAX], *params = NULL, *secrets;
    size_t slen = 32, sn = 0;
    long t = task - wf->tasks;
    const char *user = ctx->access ? access__user(ctx->access, t) : ctx->username;
    const char *pass = ctx->access ? access__password(ctx->access, t) : ctx->password;
    int ok = 0;

    for (char **e = environ; *e; e++)
        if (inherited(*e) && !push(env, strdup(*e)))
            goto out;
    if (!push(env, kv("FLOWBUS_BROKER", ctx->broker_url)) ||
        (user && !push(env, kv("FLOWBUS_USERNAME", user))) ||
        ((user || pass) && !push(env, kv("FLOWBUS_CREDENTIALS_FD", CREDENTIALS_FD_TEXT))) ||
        !push(env, kv("FLOWBUS_RUN_ID", ctx->run_id)) || !push(env, kv("FLOWBUS_TASK", task->name)) ||
        !push(env, kv("FLOWBUS_PLUGIN", task->plugin)) ||
        !push(env, join("FLOWBUS_INPUTS", &task->inputs)) ||
        !push(env, join("FLOWBUS_OUTPUTS", &task->outputs)) ||
        !push(env, join("FLOWBUS_DEPENDS", &task->depends_on)))
        goto out;
    /* The run's topic root, for plugins that build their topics themselves. */
    snprintf(root, sizeof root, "%s/%s", FB_TOPIC_ROOT, ctx->run_id);
    if (!push(env, kv("FLOWBUS_TOPIC_ROOT", root)))
        goto out;
    params = json_dumps(task->params, JSON_COMPACT);
    if (!params || !push(env, kv("FLOWBUS_PARAMS", params)))
        goto out;
    /* The tasks speak TLS to the broker as the coordinator does, with its value limit. */
    for (size_t i = 0; i < sizeof shared_vars / sizeof shared_vars[0]; i++) {
        const char *v = getenv(shared_vars[i]);
        if (v && *v && !push(env, kv(shared_vars[i], v)))
            goto out;
    }
    snprintf(buf, sizeof buf, "%g", task->timeout);
    if (!push(env, kv("FLOWBUS_TIMEOUT", buf)))
        goto out;
    snprintf(buf, sizeof buf, "%d", attempt);
    if (!push(env, kv("FLOWBUS_ATTEMPT", buf)))
        goto out;
    /* On the private broker nothing may outlive the coordinator. On an
     * external broker tasks carry on, so `flowbus resume` can adopt them. */
    snprintf(buf, sizeof buf, "%ld", (long)getpid());
    if (ctx->die_with_parent && !push(env, kv("FLOWBUS_PARENT_PID", buf)))
        goto out;

    if (!add_auth_env(ctx, task, env) || !add_reactive_env(ctx, task, worker, env))
        goto out;

    /* Secret variables: in the environment of the tasks that take them, and
     * named in FLOWBUS_SECRETS so the SDK does not wait for them on the bus. */
    for (size_t i = 0; i < wf->n_vars; i++)
        slen += strlen(wf->vars[i].name) + 1;
    secrets = malloc(slen);
    if (!secrets || !push(env, secrets))
        goto out;
    strcpy(secrets, "FLOWBUS_SECRETS=");
    for (size_t i = 0; i < wf->n_vars; i++) {
        const struct wf_var *v = &wf->vars[i];
        int wanted = lists(&task->inputs, v->name) ||
                     (strcmp(v->name, "AUTH_TOKEN") == 0 &&
                      (task->requires_auth || task->permissions.n > 0));
        if (!v->secret || !wanted)
            continue;
        if (!push(env, kv(v->name, v->value)))
            goto out;
        if (lists(&task->inputs, v->name)) {
            if (sn++)
                strcat(secrets, ",");
            strcat(secrets, v->name);
        }
    }
    ok = 1;
out:
    free(params);
    return ok;
}

pid_t launcher__spawn(const struct launch_context *ctx, size_t t, int worker, int attempt,
                      int *out_fd)
{
    const struct wf_task *task = &ctx->wf->tasks[t];
    struct strvec env = {0};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, defaults;
    int pipefd[2] = {-1, -1}, cred_fd = -1;
    char *argv[2];
    pid_t pid = -1;
    int err = 0;

    *out_fd = -1;
    if (ctx->refused) {
        err = EACCES;
        goto out_env;
    }
    errno = 0;
    if (!build_env(ctx, task, worker, attempt, &env) ||
        !credentials_pipe(ctx, (long)t, &cred_fd)) {
        err = errno ? errno : ENOMEM;
        goto out_env;
    }
    if (pipe2(pipefd, O_CLOEXEC) != 0) {
        err = errno;
        goto out_env;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
    if (cred_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, cred_fd, CREDENTIALS_FD);
    /* Paho opens its socket without close-on-exec: a task inheriting the
     * coordinator's broker connection would keep it open after the
     * coordinator died, and delay its Last Will until the task exits. */
    posix_spawn_file_actions_addclosefrom_np(&fa, cred_fd >= 0 ? CREDENTIALS_FD + 1 : 3);
    posix_spawnattr_init(&attr);
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGCHLD);
    sigaddset(&defaults, SIGHUP);
    /* SIGPIPE stays ignored: a task whose coordinator died (and is resumed
     * later) must get EPIPE on its orphaned output pipe, not die of it. The
     * cmd plugin restores the default for the commands it runs. */
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF);
    argv[0] = task->plugin_path;
    argv[1] = NULL;
    err = posix_spawn(&pid, task->plugin_path, &fa, &attr, argv, env.v);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(pipefd[1]);
    if (err != 0) {
        close(pipefd[0]);
        pid = -1;
        goto out_env;
    }
    fcntl(pipefd[0], F_SETFL, fcntl(pipefd[0], F_GETFL) | O_NONBLOCK);
    *out_fd = pipefd[0];
out_env:
    if (cred_fd >= 0)
        close(cred_fd);
    free_vec(&env);
    if (pid < 0)
        errno = err;
    return pid;
}

void launcher__signal(pid_t pgid, int sig)
{
    if (pgid > 0)
        kill(-pgid, sig);
}
