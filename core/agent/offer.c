/*
 * offer.c - what arrives in an agent's inbox: offers of tasks and signals to them.
 *
 * An offer (docs/distributed.md, "Placement") names the run, the task, its
 * attempt and everything its environment needs except what the agent holds
 * itself: the broker URL and credentials are the agent's, and secrets
 * travel only by name; their values come from the agent's --secrets file or
 * its environment. The agent answers on the task's placement topic: refused
 * (it is full, lacks the plugin, or the offer was for an instance before it),
 * failed (a secret it does not hold, or the process could not be started:
 * the task fails with that reason), started (with the pid), and later
 * exited. The task is built as a one-task workflow and started by the
 * coordinator's own launcher (core/run/launcher.c), so its environment,
 * process group and credentials pipe are exactly a local task's.
 */
#define _GNU_SOURCE
#include "internal.h"
#include "launcher.h"
#include "log.h"
#include "plugins.h"
#include "workflow.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

void agent_offer__answer(struct agent *a, const char *run, const char *task, int attempt,
                         const char *offer, const char *state, const char *reason, pid_t pid,
                         int status)
{
    char topic[FB_TOPIC_MAX], *text;
    json_t *ans = json_pack("{s:s,s:s,s:s,s:s,s:i,s:s,s:f}", "state", state, "agent", a->name,
                            "instance", a->instance, "host", a->host, "attempt", attempt,
                            "offer", offer ? offer : "", "at", fb_clock_wall());

    if (!ans || !fb_topic_format(topic, sizeof topic, FB_TOPIC_TASK_PLACEMENT, run, task))
        goto out;
    if (reason)
        json_object_set_new(ans, "reason", json_string(reason));
    if (pid > 0)
        json_object_set_new(ans, "pid", json_integer(pid));
    if (strcmp(state, "exited") == 0) {
        if (WIFEXITED(status))
            json_object_set_new(ans, "exit", json_integer(WEXITSTATUS(status)));
        else if (WIFSIGNALED(status))
            json_object_set_new(ans, "signal", json_integer(WTERMSIG(status)));
    }
    text = json_dumps(ans, JSON_COMPACT);
    if (text)
        fb_bus_publish(a->bus, topic, text, strlen(text), 1, 1, 0);
    free(text);
out:
    json_decref(ans);
}

/* A JSON array of names of kind into l; 0 for anything else. */
static int names_of(const json_t *v, enum fb_name_kind kind, struct wf_list *l)
{
    size_t i;
    const json_t *item;

    if (!v)
        return 1;
    if (!json_is_array(v))
        return 0;
    json_array_foreach(v, i, item)
    {
        const char *s = json_string_value(item);
        struct wf_pos none = {0, 0};
        if (!s || !fb_name_valid(kind, s, strlen(s)) || !workflow__list_push(l, s, none))
            return 0;
    }
    return 1;
}

/* The value of secret name the agent holds (its --secrets file, then its environment), or NULL. */
static const char *held_secret(const struct agent *a, const char *name)
{
    const char *v = json_string_value(json_object_get(a->secrets, name));

    return v ? v : getenv(name);
}

static void free_list(struct wf_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i].name);
    free(l->items);
}

/* What the offer's "auth" says (never a token: the token is a secret the agent holds). */
static void read_auth(const json_t *o, struct wf_auth *auth)
{
    const json_t *j = json_object_get(o, "auth");

    if (!json_is_object(j))
        return;
    auth->set = 1;
    auth->url = json_string_value(json_object_get(j, "url"))
                    ? strdup(json_string_value(json_object_get(j, "url")))
                    : NULL;
    auth->timeout = json_number_value(json_object_get(j, "timeout"));
    auth->cache_ttl = json_is_number(json_object_get(j, "cache_ttl"))
                          ? json_number_value(json_object_get(j, "cache_ttl"))
                          : -1;
    auth->ca_file = json_string_value(json_object_get(j, "ca_file"))
                        ? strdup(json_string_value(json_object_get(j, "ca_file")))
                        : NULL;
}

/*
 * What the offer's "reactive" part says (absent in a one-shot run): the mode,
 * the task's triggers, queue bound and overflow, its worker number in its
 * pool, all as the coordinator's launcher gives them to a local task.
 */
static int read_reactive(const json_t *j, struct workflow *wf, struct wf_task *task, int *worker)
{
    const char *overflow;
    json_int_t w, n, q;

    if (!j)
        return 1;
    w = json_integer_value(json_object_get(j, "worker"));
    n = json_integer_value(json_object_get(j, "workers"));
    q = json_integer_value(json_object_get(j, "queue"));
    overflow = json_string_value(json_object_get(j, "overflow"));
    if (!json_is_object(j) || w < 1 || n < w || n > WF_MAX_WORKERS || q < 0 || q > WF_MAX_QUEUE ||
        !overflow || !workflow__overflow_parse(overflow, &task->overflow) ||
        !names_of(json_object_get(j, "trigger"), FB_NAME_VAR, &task->trigger))
        return 0;
    wf->reactive = 1;
    task->workers = (int)n;
    task->queue = (int)q;
    *worker = (int)w;
    return 1;
}

/* Starts the task of offer o (already checked); answers started or failed. */
static void launch(struct agent *a, const json_t *o, const char *run, const char *tname,
                   int attempt, const char *offer, char *plugin_path)
{
    struct workflow wf;
    struct wf_task task;
    struct launch_context lc;
    const json_t *secrets = json_object_get(o, "secrets"), *item;
    char reason[512];
    struct agent_task *t;
    size_t i;
    int fd = -1, worker = 1;
    pid_t pid;

    memset(&wf, 0, sizeof wf);
    memset(&task, 0, sizeof task);
    memset(&lc, 0, sizeof lc);
    wf.tasks = &task;
    wf.n_tasks = 1;
    task.name = (char *)tname;
    task.plugin = (char *)json_string_value(json_object_get(o, "plugin"));
    task.plugin_path = plugin_path;
    task.params = json_object_get(o, "params");
    task.timeout = json_number_value(json_object_get(o, "timeout"));
    task.workers = 1;
    task.requires_auth = json_is_true(json_object_get(o, "requires_auth"));
    read_auth(o, &wf.auth);
    if (!read_reactive(json_object_get(o, "reactive"), &wf, &task, &worker)) {
        agent_offer__answer(a, run, tname, attempt, offer, "refused",
                            "malformed offer (its reactive part)", 0, 0);
        goto out;
    }
    if (!names_of(json_object_get(o, "inputs"), FB_NAME_VAR, &task.inputs) ||
        !names_of(json_object_get(o, "outputs"), FB_NAME_VAR, &task.outputs) ||
        !names_of(json_object_get(o, "depends_on"), FB_NAME_TASK, &task.depends_on) ||
        !names_of(json_object_get(o, "permissions"), FB_NAME_TASK, &task.permissions) ||
        !json_is_object(task.params) || (secrets && !json_is_array(secrets))) {
        agent_offer__answer(a, run, tname, attempt, offer, "refused", "malformed offer", 0, 0);
        goto out;
    }
    wf.vars = calloc(json_array_size(secrets) + 1, sizeof *wf.vars);
    if (!wf.vars)
        goto out;
    json_array_foreach(secrets, i, item)
    {
        const char *name = json_string_value(item);
        const char *value = name && workflow__valid_var_name(name) ? held_secret(a, name) : NULL;
        if (!value) {
            snprintf(reason, sizeof reason,
                     "agent %s does not hold the secret %s: give it in the agent's environment "
                     "or in its --secrets file",
                     a->name, name && workflow__valid_var_name(name) ? name : "(malformed)");
            agent_offer__answer(a, run, tname, attempt, offer, "failed", reason, 0, 0);
            goto out;
        }
        wf.vars[wf.n_vars].name = (char *)name;
        wf.vars[wf.n_vars].value = (char *)value;
        wf.vars[wf.n_vars++].secret = 1;
    }
    if (a->n_tasks == a->cap_tasks) {
        size_t cap = a->cap_tasks ? a->cap_tasks * 2 : 8;
        struct agent_task *grown = realloc(a->tasks, cap * sizeof *grown);
        if (!grown)
            goto out;
        a->tasks = grown;
        a->cap_tasks = cap;
    }
    lc.broker_url = a->o->broker_url;
    lc.username = a->o->username;
    lc.password = a->o->password;
    /* An orphan of the agent gives up on its broker rather than linger (the SDK's guardian). */
    lc.die_with_parent = 1;
    lc.run_id = run;
    lc.wf = &wf;
    pid = launcher__spawn(&lc, 0, worker, attempt, &fd);
    if (pid < 0) {
        snprintf(reason, sizeof reason, "agent %s cannot start %s: %s", a->name, plugin_path,
                 strerror(errno));
        agent_offer__answer(a, run, tname, attempt, offer, "failed", reason, 0, 0);
        goto out;
    }
    t = &a->tasks[a->n_tasks++];
    memset(t, 0, sizeof *t);
    snprintf(t->run, sizeof t->run, "%s", run);
    snprintf(t->task, sizeof t->task, "%s", tname);
    snprintf(t->offer, sizeof t->offer, "%s", offer);
    t->attempt = attempt;
    t->pid = pid;
    t->fd = fd;
    agent_offer__answer(a, run, tname, attempt, offer, "started", NULL, pid, 0);
    agent__publish_record(a);
out:
    free_list(&task.inputs);
    free_list(&task.outputs);
    free_list(&task.depends_on);
    free_list(&task.permissions);
    free_list(&task.trigger);
    free(wf.auth.url);
    free(wf.auth.ca_file);
    free(wf.vars);
}

static void on_offer(struct agent *a, const json_t *o)
{
    const char *run = json_string_value(json_object_get(o, "run"));
    const char *tname = json_string_value(json_object_get(o, "task"));
    const char *plugin = json_string_value(json_object_get(o, "plugin"));
    const char *offer = json_string_value(json_object_get(o, "offer"));
    const char *instance = json_string_value(json_object_get(o, "instance"));
    int attempt = (int)json_integer_value(json_object_get(o, "attempt"));
    char reason[256], *path = NULL;

    if (!run || !fb_name_valid(FB_NAME_RUN, run, strlen(run)) || !tname ||
        !fb_name_valid(FB_NAME_TASK, tname, strlen(tname)) || !offer || attempt < 1) {
        log_printf(FB_LOG_WARN, "ignored an offer without a valid run, task, offer id or attempt");
        return;
    }
    if (instance && strcmp(instance, a->instance) != 0) {
        /* Meant for the agent of this name before a restart: it is not ours to take. */
        agent_offer__answer(a, run, tname, attempt, offer, "refused",
                            "the offer was for an earlier instance of this agent", 0, 0);
        return;
    }
    if (a->o->max_tasks > 0 && (long)a->n_tasks >= a->o->max_tasks) {
        snprintf(reason, sizeof reason, "agent %s is full (%zu of %ld tasks)", a->name,
                 a->n_tasks, a->o->max_tasks);
        agent_offer__answer(a, run, tname, attempt, offer, "refused", reason, 0, 0);
        return;
    }
    if (!plugin || !(path = plugins__lookup(NULL, plugin))) {
        snprintf(reason, sizeof reason, "agent %s has no plugin '%s'", a->name,
                 plugin ? plugin : "(none)");
        agent_offer__answer(a, run, tname, attempt, offer, "refused", reason, 0, 0);
        return;
    }
    launch(a, o, run, tname, attempt, offer, path);
    free(path);
}

/* A coordinator's signal to a task it placed here (a timeout, a stop, the escalation). */
static void on_signal(struct agent *a, const json_t *o)
{
    const char *run = json_string_value(json_object_get(o, "run"));
    const char *tname = json_string_value(json_object_get(o, "task"));
    int attempt = (int)json_integer_value(json_object_get(o, "attempt"));
    int sig = (int)json_integer_value(json_object_get(o, "signal"));
    const char *offer = json_string_value(json_object_get(o, "offer"));

    if (!run || !tname || (sig != SIGTERM && sig != SIGKILL && sig != SIGINT))
        return;
    /* A task this instance does not know (one of an agent before a restart) is not touched.
     * The offer tells apart the workers of one reactive pool placed here. */
    for (size_t k = 0; k < a->n_tasks; k++) {
        const struct agent_task *t = &a->tasks[k];
        if (!strcmp(t->run, run) && !strcmp(t->task, tname) && t->attempt == attempt &&
            (!offer || !strcmp(t->offer, offer)))
            kill(-t->pid, sig);
    }
}

void agent_offer__handle(struct agent *a, const fb_msg *m)
{
    json_t *o = json_loadb(m->payload, m->len, 0, NULL);
    const char *cmd = json_string_value(json_object_get(o, "cmd"));

    if (!cmd)
        log_printf(FB_LOG_WARN, "ignored an inbox message that is not a command");
    else if (strcmp(cmd, "offer") == 0)
        on_offer(a, o);
    else if (strcmp(cmd, "signal") == 0)
        on_signal(a, o);
    json_decref(o);
}
