/*
 * ui.c - `flowbus ui`: setting the server up, serving until Ctrl-C or
 * SIGTERM, and tearing it down without leaving a process behind
 * (docs/http-api.md).
 *
 * Order matters. Signals are blocked first and read from a signalfd by the
 * main thread, so that no thread of libmicrohttpd or Paho ever takes them
 * (they inherit the mask). The private broker is started next, before any
 * Paho client exists, because it forks (core/run/broker.h). The token is
 * read, and FLOWBUS_UI_TOKEN removed from the environment, before any run is
 * started, so a task never sees it. At the end: streams are ended, the
 * daemon stopped; on the private broker the runs this server started are
 * stopped as `flowbus stop` would (their control topic), then signalled if
 * they linger, and only then is the broker stopped; on an external broker
 * they go on.
 */
#define _GNU_SOURCE /* asprintf, pipe2, POSIX_SPAWN_SETSID, explicit_bzero */
#include "broker.h"
#include "bus.h"
#include "internal.h"
#include "log.h"
#include "sse.h"

#include <flowbus/flowbus.h>

#include <errno.h>
#include <fcntl.h>
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
#define FLOWBUS_VERSION "0.0.0"
#endif
#ifndef FLOWBUS_UI_DIR
#define FLOWBUS_UI_DIR "/usr/local/share/flowbus/ui"
#endif

#define STOP_GRACE 10.0 /* seconds the runs get to obey a stop at shutdown */
#define TOKEN_MIN 16

/* ------------------------------------------------------------------------ */
/* The runs this server started                                              */
/* ------------------------------------------------------------------------ */

int ui__add_child(struct ui *ui, pid_t pid, const char *run_id)
{
    int ok = 0;

    pthread_mutex_lock(&ui->children_lock);
    if (ui->n_children == ui->cap_children) {
        size_t cap = ui->cap_children ? ui->cap_children * 2 : 16;
        struct ui_child *grown = realloc(ui->children, cap * sizeof *grown);
        if (!grown)
            goto out;
        ui->children = grown;
        ui->cap_children = cap;
    }
    memset(&ui->children[ui->n_children], 0, sizeof ui->children[0]);
    ui->children[ui->n_children].pid = pid;
    snprintf(ui->children[ui->n_children].run_id, sizeof ui->children[0].run_id, "%s", run_id);
    ui->n_children++;
    ok = 1;
out:
    pthread_mutex_unlock(&ui->children_lock);
    return ok;
}

int ui__started_here(struct ui *ui, const char *run_id)
{
    int found = 0;

    pthread_mutex_lock(&ui->children_lock);
    for (size_t i = 0; i < ui->n_children && !found; i++)
        found = strcmp(ui->children[i].run_id, run_id) == 0;
    pthread_mutex_unlock(&ui->children_lock);
    return found;
}

int ui__reap(struct ui *ui, pid_t pid, int *status)
{
    int answer = 0;

    pthread_mutex_lock(&ui->children_lock);
    for (size_t i = 0; i < ui->n_children; i++) {
        struct ui_child *c = &ui->children[i];
        if (!c->exited) {
            int st;
            pid_t got;
            do
                got = waitpid(c->pid, &st, WNOHANG);
            while (got < 0 && errno == EINTR);
            if (got == c->pid || (got < 0 && errno == ECHILD)) {
                c->exited = 1;
                c->status = got == c->pid ? st : 0;
            }
        }
        if (c->pid == pid && c->exited) {
            answer = 1;
            if (status)
                *status = c->status;
        }
    }
    pthread_mutex_unlock(&ui->children_lock);
    return answer;
}

/* Number of started runs still alive. */
static size_t alive(struct ui *ui)
{
    size_t n = 0;

    ui__reap(ui, 0, NULL);
    pthread_mutex_lock(&ui->children_lock);
    for (size_t i = 0; i < ui->n_children; i++)
        n += !ui->children[i].exited;
    pthread_mutex_unlock(&ui->children_lock);
    return n;
}

/* Signals every started run's process group (it leads its own session). */
static void signal_children(struct ui *ui, int sig)
{
    pthread_mutex_lock(&ui->children_lock);
    for (size_t i = 0; i < ui->n_children; i++)
        if (!ui->children[i].exited)
            kill(-ui->children[i].pid, sig);
    pthread_mutex_unlock(&ui->children_lock);
}

/* Waits until no started run is alive, or the deadline; 1 if none is. */
static int wait_children(struct ui *ui, double seconds)
{
    double until = fb_clock_mono() + seconds;

    while (alive(ui) > 0) {
        if (fb_clock_mono() >= until)
            return 0;
        poll(NULL, 0, 50);
    }
    return 1;
}

/* On the private broker, the runs die with it: stop them first, as `flowbus stop` does. */
static void stop_children(struct ui *ui)
{
    size_t n = alive(ui);

    if (n == 0)
        return;
    log_printf(FB_LOG_INFO, "ui: stopping the %zu run%s started here (the private broker ends "
               "with the server)", n, n == 1 ? "" : "s");
    pthread_mutex_lock(&ui->children_lock);
    for (size_t i = 0; i < ui->n_children; i++) {
        char topic[FB_TOPIC_MAX], payload[32];
        size_t len;
        if (ui->children[i].exited)
            continue;
        fb_topic_format(topic, sizeof topic, FB_TOPIC_CONTROL, ui->children[i].run_id, NULL);
        len = fb_control_format(payload, sizeof payload, FB_CONTROL_STOP);
        bus__publish(ui->bus, topic, payload, len);
    }
    pthread_mutex_unlock(&ui->children_lock);
    if (wait_children(ui, STOP_GRACE))
        return;
    signal_children(ui, SIGTERM);
    if (wait_children(ui, 3.0))
        return;
    signal_children(ui, SIGKILL);
    wait_children(ui, 2.0);
}

/* ------------------------------------------------------------------------ */
/* GET /api/info                                                             */
/* ------------------------------------------------------------------------ */

enum MHD_Result api__info(struct request *r)
{
    struct ui *ui = r->ui;

    if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0)
        return api__method_not_allowed(r, "GET");
    return http__json(
        r, MHD_HTTP_OK,
        json_pack("{s:s, s:s, s:b, s:s, s:s, s:b, s:s?, s:b, s:i}", "version", FLOWBUS_VERSION,
                  "broker", ui->broker_url, "private_broker", ui->broker != NULL, "workflows_dir",
                  ui->workflows_dir, "plugins_dir", ui->plugins_dir, "format_available", 1,
                  "c_compiler", ui->has_cc ? ui->cc : NULL, "token_required", ui->token_required,
                  "streams", (int)sse__count(ui->sse)));
}

/* ------------------------------------------------------------------------ */
/* Setting up                                                                */
/* ------------------------------------------------------------------------ */

/* Resolves dir (which must exist) into out and opens it. 0 with a reason in err. */
static int open_dir(const char *option, const char *dir, char *out, int *fd, char *err,
                    size_t errlen)
{
    if (!realpath(dir, out)) {
        snprintf(err, errlen, "%s '%s': %s", option, dir, strerror(errno));
        return 0;
    }
    *fd = open(out, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (*fd < 0) {
        snprintf(err, errlen, "%s '%s': %s", option, dir, strerror(errno));
        return 0;
    }
    return 1;
}

/* The plugins directory: --plugins, else the first of FLOWBUS_PLUGIN_PATH, else ./plugins. */
static int setup_plugins_dir(struct ui *ui, char *err, size_t errlen)
{
    const char *path = getenv("FLOWBUS_PLUGIN_PATH");
    char first[PATH_MAX] = "plugins", *joined = NULL;
    const char *dir = ui->o->plugins;
    int ok = 0;

    if (!dir && path && *path) {
        size_t n = strcspn(path, ":");
        snprintf(first, sizeof first, "%.*s", (int)n, path);
    }
    if (!dir)
        dir = first;
    /* It may not exist yet: POST /api/plugins creates it. */
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "--plugins '%s': %s", dir, strerror(errno));
        goto out;
    }
    if (!open_dir("--plugins", dir, ui->plugins_dir, &ui->plugins_fd, err, errlen))
        goto out;
    /* First on the path of the server's lookups and of every run it starts,
     * so a plugin made in the browser is found at once. */
    if (asprintf(&joined, "%s%s%s", ui->plugins_dir, path && *path ? ":" : "",
                 path ? path : "") < 0) {
        joined = NULL;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    setenv("FLOWBUS_PLUGIN_PATH", joined, 1);
    ok = 1;
out:
    free(joined);
    return ok;
}

/* The editor's built files: --static, else next to an installed binary, else the source tree's. */
static void setup_static_dir(struct ui *ui)
{
    char self[PATH_MAX], candidate[PATH_MAX + 64], *slash;
    const char *tries[4] = {NULL, NULL, FLOWBUS_UI_DIR, NULL};
    size_t n = 0;

    ui->static_fd = -1;
    if (ui->o->static_dir) {
        tries[0] = ui->o->static_dir;
        n = 1;
    } else {
        snprintf(self, sizeof self, "%s", ui->self_exe);
        slash = strrchr(self, '/');
        if (slash)
            *slash = '\0';
        snprintf(candidate, sizeof candidate, "%s/../share/flowbus/ui", self);
        tries[1] = candidate;
#ifdef FLOWBUS_UI_SOURCE_DIST
        tries[3] = FLOWBUS_UI_SOURCE_DIST;
#endif
        n = 4;
    }
    for (size_t i = 0; i < n; i++) {
        char resolved[PATH_MAX];
        int fd;
        if (!tries[i] || !realpath(tries[i], resolved))
            continue;
        fd = open(resolved, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            continue;
        if (faccessat(fd, "index.html", R_OK, 0) == 0 || ui->o->static_dir) {
            snprintf(ui->static_dir, sizeof ui->static_dir, "%s", resolved);
            ui->static_fd = fd;
            return;
        }
        close(fd);
    }
}

/* The token: FLOWBUS_UI_TOKEN, else 32 random hex digits. It leaves the environment. */
static int setup_token(struct ui *ui, char *err, size_t errlen)
{
    const char *env = getenv("FLOWBUS_UI_TOKEN");
    unsigned char rnd[16];

    if (env && *env) {
        if (strlen(env) < TOKEN_MIN || strlen(env) >= sizeof ui->token ||
            strspn(env, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~") !=
                strlen(env)) {
            snprintf(err, errlen, "FLOWBUS_UI_TOKEN must be %d to %zu characters of letters, "
                     "digits, '-', '_', '.' or '~'", TOKEN_MIN, sizeof ui->token - 1);
            return 0;
        }
        snprintf(ui->token, sizeof ui->token, "%s", env);
    } else {
        if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
            snprintf(err, errlen, "getrandom: %s", strerror(errno));
            return 0;
        }
        for (size_t i = 0; i < sizeof rnd; i++)
            snprintf(ui->token + 2 * i, 3, "%02x", rnd[i]);
    }
    unsetenv("FLOWBUS_UI_TOKEN");
    return 1;
}

/* Writes broker.env (FLOWBUS_BROKER, _USERNAME, _PASSWORD) for a terminal's `flowbus status`. */
static void write_env_file(struct ui *ui)
{
    const char *tmp = getenv("TMPDIR");
    FILE *f;
    int fd;

    if (!tmp || !*tmp || strlen(tmp) > 200)
        tmp = "/tmp";
    snprintf(ui->env_dir, sizeof ui->env_dir, "%s/flowbus-ui-XXXXXX", tmp);
    if (!mkdtemp(ui->env_dir)) {
        ui->env_dir[0] = '\0';
        return;
    }
    snprintf(ui->env_file, sizeof ui->env_file, "%s/broker.env", ui->env_dir);
    fd = open(ui->env_file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        ui->env_file[0] = '\0';
        return;
    }
    /* Generated values: letters, digits and URL characters only, so no quoting issue. */
    fprintf(f, "export FLOWBUS_BROKER='%s'\nexport FLOWBUS_USERNAME='%s'\n"
               "export FLOWBUS_PASSWORD='%s'\n",
            ui->broker_url, ui->private_user, ui->private_pass);
    fclose(f);
}

static int start_private_broker(struct ui *ui, char *err, size_t errlen)
{
    unsigned char rnd[24];
    char *passwords = NULL, *acl = NULL;
    int ok = 0;

    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        snprintf(err, errlen, "getrandom: %s", strerror(errno));
        goto out;
    }
    snprintf(ui->private_user, sizeof ui->private_user, "flowbus-ui");
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(ui->private_pass + 2 * i, 3, "%02x", rnd[i]);
    if (asprintf(&passwords, "%s:%s\n", ui->private_user, ui->private_pass) < 0 ||
        asprintf(&acl, "# Generated by flowbus ui; removed when it stops.\nuser %s\n"
                       "topic readwrite #\n", ui->private_user) < 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    ui->broker = broker__start(passwords, acl, err, errlen);
    if (!ui->broker)
        goto out;
    snprintf(ui->broker_url, sizeof ui->broker_url, "%s", broker__url(ui->broker));
    ui->username = ui->private_user;
    ui->password = ui->private_pass;
    /* The runs started here connect as this user (they inherit the environment). */
    setenv("FLOWBUS_USERNAME", ui->private_user, 1);
    setenv("FLOWBUS_PASSWORD", ui->private_pass, 1);
    write_env_file(ui);
    ok = 1;
out:
    if (passwords)
        explicit_bzero(passwords, strlen(passwords));
    free(passwords);
    free(acl);
    return ok;
}

/* Finds a C compiler for the C plugin skeletons. */
static void find_cc(struct ui *ui)
{
    static const char *const ccs[] = {"/usr/bin/cc", "/usr/bin/gcc", "/usr/bin/clang"};

    for (size_t i = 0; i < sizeof ccs / sizeof ccs[0]; i++)
        if (access(ccs[i], X_OK) == 0) {
            snprintf(ui->cc, sizeof ui->cc, "%s", ccs[i]);
            ui->has_cc = 1;
            return;
        }
}

/* Blocks the signals the main thread reads, before any thread exists. */
static int block_signals(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    return signalfd(-1, &set, SFD_CLOEXEC);
}

int ui__main(const struct ui_options *o)
{
    struct ui ui;
    char err[512];
    ssize_t n;
    int sigfd, code = FB_EXIT_INVALID;

    memset(&ui, 0, sizeof ui);
    ui.o = o;
    ui.workflows_fd = ui.plugins_fd = ui.static_fd = -1;
    pthread_mutex_init(&ui.children_lock, NULL);
    sigfd = block_signals();
    if (sigfd < 0) {
        log_printf(FB_LOG_ERROR, "signalfd: %s", strerror(errno));
        goto out;
    }
    n = readlink("/proc/self/exe", ui.self_exe, sizeof ui.self_exe - 1);
    if (n <= 0) {
        log_printf(FB_LOG_ERROR, "cannot find the flowbus binary: %s", strerror(errno));
        goto out;
    }
    ui.self_exe[n] = '\0';
    if (!open_dir("--workflows", o->workflows ? o->workflows : "workflows", ui.workflows_dir,
                  &ui.workflows_fd, err, sizeof err) ||
        !setup_plugins_dir(&ui, err, sizeof err) || !setup_token(&ui, err, sizeof err)) {
        log_printf(FB_LOG_ERROR, "%s", err);
        goto out;
    }
    setup_static_dir(&ui);
    find_cc(&ui);
    gethostname(ui.hostname, sizeof ui.hostname - 1);
    ui.sse = sse__new();
    ui.plugins = plugins__cache_new();
    if (!ui.sse || !ui.plugins) {
        log_printf(FB_LOG_ERROR, "out of memory");
        goto out;
    }
    code = FB_EXIT_BROKER;
    if (o->broker_url) {
        snprintf(ui.broker_url, sizeof ui.broker_url, "%s", o->broker_url);
        ui.username = o->username;
        ui.password = o->password;
    } else if (!start_private_broker(&ui, err, sizeof err)) {
        log_printf(FB_LOG_ERROR, "cannot start the private broker: %s", err);
        goto out;
    }
    ui.bus = bus__start(&ui, err, sizeof err);
    if (!ui.bus) {
        log_printf(FB_LOG_ERROR, "%s", err);
        goto out;
    }
    code = FB_EXIT_INVALID;
    if (!server__start(&ui, err, sizeof err)) {
        log_printf(FB_LOG_ERROR, "%s", err);
        goto out;
    }
    code = FB_EXIT_OK;
    {
        const char *h = ui.wildcard ? "127.0.0.1" : ui.listen_host;
        int v6 = strchr(h, ':') != NULL;
        /* The one place the token is ever written, as Jupyter does. */
        fprintf(stderr, "flowbus ui: http://%s%s%s:%u/%s%s\n", v6 ? "[" : "", h, v6 ? "]" : "",
                ui.port, ui.token_required ? "?token=" : "", ui.token_required ? ui.token : "");
        fprintf(stderr, "flowbus ui: listening on %s:%u; workflows %s; plugins %s; editor %s\n",
                ui.listen_host, ui.port, ui.workflows_dir, ui.plugins_dir,
                ui.static_fd >= 0 ? ui.static_dir : "not built (GET / says how to build it)");
        if (ui.broker && ui.env_file[0])
            fprintf(stderr, "flowbus ui: broker %s; for the CLI: . %s && flowbus status\n",
                    ui.broker_url, ui.env_file);
        else
            fprintf(stderr, "flowbus ui: broker %s\n", ui.broker_url);
        fflush(stderr);
    }
    for (;;) {
        struct pollfd pfd = {.fd = sigfd, .events = POLLIN};
        int k = poll(&pfd, 1, 1000);
        if (k < 0 && errno != EINTR)
            break;
        if (k > 0) {
            struct signalfd_siginfo si;
            if (read(sigfd, &si, sizeof si) == (ssize_t)sizeof si)
                log_printf(FB_LOG_INFO, "ui: %s: shutting down",
                           si.ssi_signo == SIGINT ? "interrupted" : "terminated");
            break;
        }
        ui__reap(&ui, 0, NULL); /* no zombie waits for the next request */
    }
out:
    ui.stopping = 1;
    if (ui.sse)
        sse__shutdown(ui.sse, 2.0);
    server__stop(&ui);
    if (ui.broker && ui.bus)
        stop_children(&ui);
    bus__stop(ui.bus);
    broker__stop(ui.broker);
    if (ui.env_file[0])
        unlink(ui.env_file);
    if (ui.env_dir[0])
        rmdir(ui.env_dir);
    plugins__cache_free(ui.plugins);
    sse__free(ui.sse);
    if (ui.workflows_fd >= 0)
        close(ui.workflows_fd);
    if (ui.plugins_fd >= 0)
        close(ui.plugins_fd);
    if (ui.static_fd >= 0)
        close(ui.static_fd);
    free(ui.children);
    pthread_mutex_destroy(&ui.children_lock);
    if (sigfd >= 0)
        close(sigfd);
    explicit_bzero(ui.token, sizeof ui.token);
    explicit_bzero(ui.private_pass, sizeof ui.private_pass);
    return code;
}
