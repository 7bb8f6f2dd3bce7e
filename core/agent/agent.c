/*
 * agent.c - `flowbus agent`: the life of an agent (see agent.h).
 *
 * The agent connects with a Last Will that writes its record offline
 * (retained), publishes its record online with its labels, the plugins it
 * has, its load and capacity, and then runs one poll loop over the signalfd
 * (child exits, SIGINT, SIGTERM), the bus (its inbox: offers and signals from
 * coordinators) and the output pipes of its tasks. Every change of its load
 * is published again, so a coordinator choosing an agent reads it from the
 * broker. On SIGINT or SIGTERM it stops its tasks' process groups (SIGTERM,
 * SIGKILL after AGENT_KILL_GRACE), reports each exit, writes its record
 * offline and exits 0. A restarted agent is a new instance: it knows none of
 * the tasks of the one before and takes nothing over.
 */
#define _GNU_SOURCE
#include "internal.h"
#include "log.h"
#include "mask.h"
#include "workflow.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef FLOWBUS_VERSION
#define FLOWBUS_VERSION "0"
#endif

/* The host name made a valid agent name: anything but [A-Za-z0-9_-] becomes '-'. */
static void default_name(char *buf, size_t size)
{
    char host[256] = "agent";

    if (gethostname(host, sizeof host) != 0 || !host[0])
        snprintf(host, sizeof host, "agent");
    host[sizeof host - 1] = '\0';
    snprintf(buf, size, "%s", host);
    for (char *p = buf; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-'))
            *p = '-';
    if (buf[0] == '-')
        buf[0] = '_';
}

/* --labels a,b,c into a JSON array; 0 (said) for a label that is not valid. */
static int parse_labels(struct agent *a, const char *text)
{
    char *copy = text ? strdup(text) : NULL, *save = NULL;
    int ok = 1;

    a->labels = json_array();
    if (!a->labels || (text && !copy))
        ok = 0;
    for (char *l = copy ? strtok_r(copy, ",", &save) : NULL; ok && l;
         l = strtok_r(NULL, ",", &save)) {
        if (!workflow__valid_task_name(l)) {
            log_printf(FB_LOG_ERROR,
                       "--labels: '%s' is not a valid label: use letters, digits, '_' and '-', "
                       "not starting with '-', at most 64 characters",
                       l);
            ok = 0;
        } else {
            json_array_append_new(a->labels, json_string(l));
        }
    }
    free(copy);
    return ok;
}

/*
 * --secrets FILE: KEY=VALUE lines (blank lines and # comments skipped), the
 * values the agent's tasks may ask for by name besides its environment. The
 * file must not be readable by others: it holds secrets. 0 (said) on error.
 */
static int load_secrets(struct agent *a, const char *path)
{
    char line[8192];
    struct stat st;
    FILE *f;
    int n = 0, ok = 1;

    a->secrets = json_object();
    if (!path)
        return a->secrets != NULL;
    f = fopen(path, "re");
    if (!f) {
        log_printf(FB_LOG_ERROR, "--secrets %s: %s", path, strerror(errno));
        return 0;
    }
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077)) {
        log_printf(FB_LOG_ERROR,
                   "--secrets %s: the file is readable or writable by others (mode %03o); "
                   "expected 0600 or 0400 (chmod 600 %s)",
                   path, (unsigned)(st.st_mode & 0777), path);
        ok = 0;
    }
    while (ok && fgets(line, sizeof line, f)) {
        char *eq, *end = line + strcspn(line, "\r\n");
        n++;
        *end = '\0';
        if (!line[0] || line[0] == '#')
            continue;
        eq = strchr(line, '=');
        if (!eq || eq == line) {
            log_printf(FB_LOG_ERROR, "%s:%d:1: expected NAME=VALUE, got a line without '='",
                       path, n);
            ok = 0;
            break;
        }
        *eq = '\0';
        if (!workflow__valid_var_name(line)) {
            log_printf(FB_LOG_ERROR, "%s:%d:1: '%s' is not a variable name", path, n, line);
            ok = 0;
            break;
        }
        mask__add(eq + 1);
        json_object_set_new(a->secrets, line, json_string(eq + 1));
    }
    explicit_bzero(line, sizeof line);
    fclose(f);
    return ok;
}

/* Adds the flowbus-NAME executables of dir to the plugin list. */
static void scan_plugins(struct agent *a, const char *dir, size_t len)
{
    char path[PATH_MAX];
    DIR *d;
    struct dirent *e;

    if (len == 0 || len >= sizeof path)
        return;
    snprintf(path, sizeof path, "%.*s", (int)len, dir);
    d = opendir(path);
    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        char exe[PATH_MAX];
        const char *name = e->d_name + 8;
        int seen = 0;
        size_t i;
        json_t *v;
        if (strncmp(e->d_name, "flowbus-", 8) != 0 || !workflow__valid_task_name(name))
            continue;
        if (snprintf(exe, sizeof exe, "%s/%s", path, e->d_name) >= (int)sizeof exe ||
            access(exe, X_OK) != 0)
            continue;
        json_array_foreach(a->plugins, i, v) seen |= strcmp(json_string_value(v), name) == 0;
        if (!seen)
            json_array_append_new(a->plugins, json_string(name));
    }
    closedir(d);
}

static int by_text(const void *a, const void *b)
{
    return strcmp(json_string_value(*(json_t *const *)a), json_string_value(*(json_t *const *)b));
}

/* The plugin list in name order, so that records (and `flowbus agents`) read the same each time. */
static void sort_plugins(struct agent *a)
{
    size_t n = json_array_size(a->plugins);
    json_t **v = calloc(n + 1, sizeof *v), *sorted = json_array();

    for (size_t i = 0; v && i < n; i++)
        v[i] = json_array_get(a->plugins, i);
    if (v && sorted) {
        qsort(v, n, sizeof *v, by_text);
        for (size_t i = 0; i < n; i++)
            json_array_append(sorted, v[i]);
        json_decref(a->plugins);
        a->plugins = sorted;
        sorted = NULL;
    }
    json_decref(sorted);
    free(v);
}

/*
 * The plugin directories: --plugins DIR first (put at the head of
 * FLOWBUS_PLUGIN_PATH, which the launcher passes on and plugins__lookup
 * reads), then FLOWBUS_PLUGIN_PATH's, then the directory of this flowbus.
 */
static int find_plugins(struct agent *a)
{
    const char *env = getenv("FLOWBUS_PLUGIN_PATH");
    char self[PATH_MAX];
    ssize_t n;

    a->plugins = json_array();
    if (!a->plugins)
        return 0;
    if (a->o->plugins_dir) {
        size_t len = strlen(a->o->plugins_dir) + (env ? strlen(env) + 1 : 0) + 1;
        char *path = malloc(len);
        if (!path)
            return 0;
        snprintf(path, len, "%s%s%s", a->o->plugins_dir, env && *env ? ":" : "",
                 env ? env : "");
        setenv("FLOWBUS_PLUGIN_PATH", path, 1);
        free(path);
        env = getenv("FLOWBUS_PLUGIN_PATH");
    }
    for (const char *p = env; p && *p;) {
        size_t len = strcspn(p, ":");
        scan_plugins(a, p, len);
        p += len + (p[len] == ':');
    }
    n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        char *slash;
        self[n] = '\0';
        slash = strrchr(self, '/');
        if (slash)
            scan_plugins(a, self, (size_t)(slash - self));
    }
    sort_plugins(a);
    return 1;
}

/* The record's JSON, online or offline (the Will's), as a malloc'd string. */
static char *record_text(struct agent *a, int online)
{
    json_t *rec = json_object(), *tasks = json_array();
    char *text;

    json_object_set_new(rec, "name", json_string(a->name));
    json_object_set_new(rec, "instance", json_string(a->instance));
    json_object_set_new(rec, "state", json_string(online ? FB_AGENT_ONLINE : FB_AGENT_OFFLINE));
    json_object_set_new(rec, "host", json_string(a->host));
    json_object_set_new(rec, "pid", json_integer(getpid()));
    json_object_set_new(rec, "labels", json_incref(a->labels));
    json_object_set_new(rec, "plugins", json_incref(a->plugins));
    json_object_set_new(rec, "running", json_integer((json_int_t)(online ? a->n_tasks : 0)));
    json_object_set_new(rec, "capacity", json_integer(a->o->max_tasks));
    json_object_set_new(rec, "version", json_string(FLOWBUS_VERSION));
    json_object_set_new(rec, "since", json_real(a->since));
    for (size_t k = 0; online && k < a->n_tasks; k++) {
        const struct agent_task *t = &a->tasks[k];
        json_array_append_new(tasks, json_pack("{s:s,s:s,s:i,s:i,s:s}", "run", t->run, "task",
                                               t->task, "attempt", t->attempt, "pid",
                                               (int)t->pid, "offer", t->offer));
    }
    json_object_set_new(rec, "tasks", tasks);
    if (!online)
        json_object_set_new(rec, "at", json_real(fb_clock_wall()));
    text = json_dumps(rec, JSON_COMPACT);
    json_decref(rec);
    return text;
}

void agent__publish_record(struct agent *a)
{
    char *text = record_text(a, !a->stopping);

    if (text)
        fb_bus_publish(a->bus, a->topic, text, strlen(text), 1, 1, 0);
    free(text);
}

static int setup(struct agent *a)
{
    unsigned char rnd[16];
    fb_bus_options bo = {0};
    char err[256], client[FB_CLIENT_ID_MAX + 1], prefix[48];
    const char *filters[1];
    char *will = NULL;
    sigset_t set;
    int ok = 0;

    if (a->o->name)
        snprintf(a->name, sizeof a->name, "%s", a->o->name);
    else
        default_name(a->name, sizeof a->name);
    if (!workflow__valid_task_name(a->name)) {
        log_printf(FB_LOG_ERROR,
                   "--name '%s' is not a valid agent name: use letters, digits, '_' and '-', "
                   "not starting with '-', at most 64 characters",
                   a->o->name ? a->o->name : a->name);
        goto out;
    }
    if (gethostname(a->host, sizeof a->host) != 0)
        snprintf(a->host, sizeof a->host, "?");
    a->host[sizeof a->host - 1] = '\0';
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        goto out;
    for (size_t i = 0; i < sizeof rnd; i++)
        sprintf(a->instance + 2 * i, "%02x", rnd[i]);
    if (!parse_labels(a, a->o->labels) || !load_secrets(a, a->o->secrets_file) ||
        !find_plugins(a))
        goto out;
    mask__add(a->o->password);
    if (!fb_topic_format(a->topic, sizeof a->topic, FB_TOPIC_AGENT, NULL, a->name) ||
        !fb_topic_format(a->inbox, sizeof a->inbox, FB_TOPIC_AGENT_INBOX, NULL, a->name))
        goto out;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    /* A task's output pipe may close under the agent's writes: EPIPE, not death. */
    signal(SIGPIPE, SIG_IGN);
    a->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (a->sigfd < 0) {
        log_printf(FB_LOG_ERROR, "signalfd: %s", strerror(errno));
        goto out;
    }
    a->since = fb_clock_wall();
    will = record_text(a, 0);
    snprintf(prefix, sizeof prefix, "agent-%.32s", a->name);
    if (!will || fb_client_id(client, sizeof client, prefix) != FB_OK)
        goto out;
    bo.url = a->o->broker_url;
    bo.username = a->o->username;
    bo.password = a->o->password;
    bo.client_id = client;
    bo.will_topic = a->topic;
    bo.will_payload = will;
    bo.will_retained = 1;
    bo.reconnect_max_s = -1; /* an agent rides out any broker outage */
    bo.ca_file = getenv("FLOWBUS_TLS_CA");
    bo.cert_file = getenv("FLOWBUS_TLS_CERT");
    bo.key_file = getenv("FLOWBUS_TLS_KEY");
    bo.log = log__sdk;
    if (fb_bus_new(&bo, &a->bus, err, sizeof err) != FB_OK) {
        log_printf(FB_LOG_ERROR, "cannot connect to the broker at %s: %s", bo.url, err);
        goto out;
    }
    filters[0] = a->inbox;
    if (fb_bus_subscribe(a->bus, filters, 1, 5.0) != FB_OK) {
        log_printf(FB_LOG_ERROR, "cannot subscribe to %s", a->inbox);
        goto out;
    }
    agent__publish_record(a);
    if (fb_bus_flush(a->bus, 5.0) != FB_OK) {
        log_printf(FB_LOG_ERROR, "the broker did not confirm the agent's record");
        goto out;
    }
    ok = 1;
out:
    free(will);
    return ok;
}

/* Task k's process was reaped with status: its exit goes to the coordinator, and it is forgotten. */
static void reaped(struct agent *a, size_t k, int status)
{
    struct agent_task *t = &a->tasks[k];

    if (t->fd >= 0) {
        agent_output__read(a, k);
        if (t->fd >= 0)
            close(t->fd);
    }
    /* Whatever the task left behind in its group goes with it, as on the coordinator's host. */
    kill(-t->pid, SIGKILL);
    agent_offer__answer(a, t->run, t->task, t->attempt, t->offer, "exited", NULL, t->pid,
                        status);
    output_lines__free(&t->out);
    a->tasks[k] = a->tasks[--a->n_tasks];
    agent__publish_record(a);
}

static void reap(struct agent *a)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            break;
        for (size_t k = 0; k < a->n_tasks; k++) {
            if (a->tasks[k].pid == pid) {
                reaped(a, k, status);
                break;
            }
        }
    }
}

/* 1 when a stop signal came. */
static int read_signals(struct agent *a)
{
    struct signalfd_siginfo si;
    int stop = 0;

    while (read(a->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGCHLD)
            reap(a);
        else
            stop = 1;
    }
    return stop;
}

static void drain_bus(struct agent *a)
{
    unsigned reconnects = fb_bus_reconnects(a->bus);

    /* A broker that restarted without its retained messages must learn of us again. */
    if (reconnects != a->reconnects) {
        a->reconnects = reconnects;
        agent__publish_record(a);
    }
    for (int i = 0; i < 1024; i++) {
        fb_msg *m = NULL;
        if (fb_bus_next(a->bus, 0, &m) != FB_OK)
            return;
        agent_offer__handle(a, m);
        fb_msg_free(m);
    }
}

/* Stops every task: SIGTERM to each group, SIGKILL to those still there after the grace. */
static void stop_tasks(struct agent *a)
{
    double kill_at = fb_clock_mono() + AGENT_KILL_GRACE;
    int killed = 0;

    for (size_t k = 0; k < a->n_tasks; k++)
        kill(-a->tasks[k].pid, SIGTERM);
    while (a->n_tasks > 0) {
        struct pollfd pfd = {a->sigfd, POLLIN, 0};
        double left = (killed ? kill_at + AGENT_KILL_GRACE : kill_at) - fb_clock_mono();
        if (left <= 0 && !killed) {
            for (size_t k = 0; k < a->n_tasks; k++)
                kill(-a->tasks[k].pid, SIGKILL);
            killed = 1;
            continue;
        }
        if (left <= 0)
            break;
        if (poll(&pfd, 1, (int)(left * 1000) + 1) > 0)
            read_signals(a);
        reap(a);
    }
}

static void loop(struct agent *a)
{
    struct pollfd *fds = NULL;
    size_t *owner = NULL, cap = 0;

    while (!a->stopping) {
        nfds_t n = 0;
        if (cap < a->n_tasks + 2) {
            size_t want = a->n_tasks + 16;
            struct pollfd *f = realloc(fds, want * sizeof *f);
            size_t *o = f ? realloc(owner, want * sizeof *o) : NULL;
            if (f)
                fds = f;
            if (!o)
                break;
            owner = o;
            cap = want;
        }
        fds[n].fd = a->sigfd;
        fds[n++].events = POLLIN;
        fds[n].fd = fb_bus_fd(a->bus);
        fds[n++].events = POLLIN;
        for (size_t k = 0; k < a->n_tasks; k++) {
            if (a->tasks[k].fd >= 0) {
                owner[n] = k;
                fds[n].fd = a->tasks[k].fd;
                fds[n++].events = POLLIN;
            }
        }
        if (poll(fds, n, 1000) < 0 && errno != EINTR) {
            log_printf(FB_LOG_ERROR, "poll: %s", strerror(errno));
            break;
        }
        /* Output first: a task that printed and exited has its last lines sent before its exit. */
        for (nfds_t k = 2; k < n; k++)
            if (fds[k].revents && owner[k] < a->n_tasks && a->tasks[owner[k]].fd == fds[k].fd)
                agent_output__read(a, owner[k]);
        if (fds[0].revents && read_signals(a))
            a->stopping = 1;
        if (fds[1].revents && !a->stopping)
            drain_bus(a);
    }
    free(fds);
    free(owner);
}

int agent__main(const struct agent_options *o)
{
    struct agent a;
    int code = FB_EXIT_BROKER;

    memset(&a, 0, sizeof a);
    a.o = o;
    a.sigfd = -1;
    if (!setup(&a)) {
        code = a.bus ? FB_EXIT_BROKER : FB_EXIT_INVALID;
        goto out;
    }
    log_printf(FB_LOG_INFO, "flowbus agent %s on %s: labels %s, %zu plugins, capacity %ld",
               a.name, a.host, o->labels && *o->labels ? o->labels : "(none)",
               json_array_size(a.plugins), o->max_tasks);
    loop(&a);
    a.stopping = 1;
    stop_tasks(&a);
    /* Its record goes offline before it leaves: coordinators stop offering at once. */
    agent__publish_record(&a);
    fb_bus_flush(a.bus, 2.0);
    code = FB_EXIT_OK;
out:
    if (a.bus)
        fb_bus_close(a.bus, 1.0);
    fb_bus_free(a.bus);
    if (a.sigfd >= 0)
        close(a.sigfd);
    json_decref(a.labels);
    json_decref(a.plugins);
    json_decref(a.secrets);
    free(a.tasks);
    return code;
}
