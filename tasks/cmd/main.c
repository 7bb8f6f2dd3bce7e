/*
 * flowbus-cmd - runs a command and turns its KEY=VALUE output lines into the
 * task's outputs.
 *
 * Params:
 *   command  a string run by /bin/sh -c, or
 *   argv     a list of strings exec'd directly (no shell; argv[0] is looked
 *            up in flowbus-cmd's own PATH)
 *   env      optional mapping of extra environment variables; values are
 *            strings, numbers or booleans, passed as text
 *   cwd      optional working directory (default: the task's, i.e. flowbus's)
 *
 * Input values reach the command only as environment variables NAME=value;
 * they are never pasted into the command text, so a value like
 * "$(touch pwned)" stays inert data. Precedence: inherited environment, then
 * the env param, then inputs. FLOWBUS_PASSWORD is removed: the command has no
 * business with the broker's credentials.
 *
 * The child runs with stdin from /dev/null and its stdout and stderr on pipes
 * read with poll(). A stdout line KEY=VALUE (kv.h) whose KEY is a declared
 * output sets it (the last such line wins); a KEY that is not declared gets a
 * warning, once per key. Every other stdout line and every stderr line is
 * published on the task's log topic with fb_task_log and NOT echoed to our
 * own stderr: the coordinator forwards our stderr to that same topic, so an
 * echo would log each line twice. Lines over 64 KiB are cut and marked.
 *
 * Outputs are recorded only if the command exits 0; otherwise the task fails
 * with "command exited with code N" and exits N, or "command killed by signal
 * N" and exits 128+N, publishing none of them. SIGTERM and SIGINT received by
 * flowbus-cmd are forwarded to the child, which stays in our process group
 * so that the coordinator's kill of the group reaches it too.
 *
 * Spawning uses posix_spawn, never fork: Paho's threads are running.
 *
 * Reactive mode (FLOWBUS_MODE=reactive): the params and the permission are
 * checked once (a bad param fails the task), then each activation runs the
 * command with the activation's inputs, plus FLOWBUS_ACTIVATION (its number)
 * and FLOWBUS_TRIGGER (the input that fired it) in the environment; its
 * KEY=VALUE lines are the activation's outputs. A failing command fails the
 * activation, not the task. A stop is acted on once the running command has
 * ended; a SIGTERM/SIGINT during the command still goes to it, and the task
 * exits with 128+N after reporting the activation.
 */

/* posix_spawn_file_actions_addchdir_np and pipe2 are GNU extensions (glibc >= 2.29). */
#define _GNU_SOURCE

#include "kv.h"
#include "plugin_cli.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/*
 * Lines longer than this are cut: the first line_max bytes are kept and
 * marked. It is the largest value a variable may have (FLOWBUS_MAX_VALUE,
 * 256 KiB by default) plus room for the key, so that an output line over the
 * limit is recognised as such and refused, not silently cut.
 */
static size_t line_max = 256 * 1024 + 4096;

/* The variable value limit, as the SDK applies it (FLOWBUS_MAX_VALUE). */
static long value_limit(void)
{
    const char *v = getenv("FLOWBUS_MAX_VALUE");
    long n = v ? strtol(v, NULL, 10) : 0;
    return n > 0 ? n : 256 * 1024;
}

static const struct plugin_info info = {
    .name = "cmd",
    .manifest =
        "{\"name\":\"cmd\",\"description\":\"Runs a command; its KEY=VALUE stdout lines set "
        "outputs\",\"inputs\":[],\"outputs\":[],\"params\":{"
        "\"command\":{\"type\":\"string\",\"default\":null,\"description\":\"run by /bin/sh -c; "
        "inputs are environment variables\"},"
        "\"argv\":{\"type\":\"array\",\"default\":null,\"description\":\"program and arguments, "
        "exec'd without a shell (instead of command)\"},"
        "\"env\":{\"type\":\"object\",\"default\":{},\"description\":\"extra environment "
        "variables\"},"
        "\"cwd\":{\"type\":\"string\",\"default\":null,\"description\":\"working directory of "
        "the command\"}},\"permissions\":[\"can_execute_commands\"]}",
    .usage = "Runs the param \"command\" with /bin/sh -c (or \"argv\" without a shell), with\n"
             "the inputs as environment variables. Stdout lines KEY=VALUE set declared\n"
             "outputs; other lines go to the task's log. Fails with the command's exit code.\n",
};

/* When auth is in use (docs/security.md), running a command needs this. */
static const char *const required[] = {"can_execute_commands"};

/* The child, for the signal handler; 0 until spawned. */
static volatile sig_atomic_t child_pid;
/* A SIGTERM/SIGINT that arrived before the child existed, to forward once it does. */
static volatile sig_atomic_t pending_signal;

/* 1 when flowbus-cmd leads its process group, as flowbus starts it. */
static volatile sig_atomic_t group_leader;
/* Set once the signal went to the whole group, whose delivery reaches us too. */
static volatile sig_atomic_t forwarded;

/*
 * A shell does not pass SIGTERM on to the command it waits for, so a signal
 * for the task (a killed coordinator's PR_SET_PDEATHSIG, a stop) goes to the
 * whole process group: the shell and everything it started. That includes us;
 * the second delivery is recognised and ignored.
 */
static void forward_signal(int sig)
{
    int saved = errno;

    if (child_pid <= 0)
        pending_signal = sig;
    else if (!group_leader)
        kill((pid_t)child_pid, sig);
    else if (!forwarded) {
        forwarded = 1;
        kill(0, sig);
    }
    errno = saved;
}

/* ------------------------------------------------------------------------ */
/* The command: argv, environment, working directory, from the params         */
/* ------------------------------------------------------------------------ */

/* What to run. Every string is owned. */
struct command {
    char **argv; /* NULL-terminated */
    char **envp; /* NULL-terminated */
    size_t envc;
    char *cwd; /* NULL: inherit */
};

static void command_clear(struct command *c)
{
    size_t i;

    for (i = 0; c->argv && c->argv[i]; i++)
        free(c->argv[i]);
    free(c->argv);
    for (i = 0; i < c->envc; i++)
        free(c->envp[i]);
    free(c->envp);
    free(c->cwd);
    memset(c, 0, sizeof *c);
}

/* Sets name=value in c->envp, replacing an entry of the same name. Returns 0 or -1 (memory). */
static int env_set(struct command *c, const char *name, const char *value)
{
    size_t n = strlen(name), i;
    char *entry = malloc(n + strlen(value) + 2), **bigger;

    if (!entry)
        return -1;
    sprintf(entry, "%s=%s", name, value);
    for (i = 0; i < c->envc; i++) {
        if (strncmp(c->envp[i], name, n) == 0 && c->envp[i][n] == '=') {
            free(c->envp[i]);
            c->envp[i] = entry;
            return 0;
        }
    }
    bigger = realloc(c->envp, (c->envc + 2) * sizeof *bigger);
    if (!bigger) {
        free(entry);
        return -1;
    }
    c->envp = bigger;
    c->envp[c->envc++] = entry;
    c->envp[c->envc] = NULL;
    return 0;
}

/* Copies our environment without the broker password. Returns 0 or -1 (memory). */
static int env_inherit(struct command *c)
{
    size_t n = 0, i;

    while (environ && environ[n])
        n++;
    c->envp = calloc(n + 1, sizeof *c->envp);
    if (!c->envp)
        return -1;
    for (i = 0; i < n; i++) {
        if (strncmp(environ[i], "FLOWBUS_PASSWORD=", 17) == 0)
            continue;
        c->envp[c->envc] = strdup(environ[i]);
        if (!c->envp[c->envc])
            return -1;
        c->envc++;
    }
    return 0;
}

/* A JSON string's text, or NULL if it is not a string or holds a NUL byte. */
static const char *json_text(const json_t *v)
{
    const char *s = json_string_value(v);

    return s && strlen(s) == json_string_length(v) ? s : NULL;
}

/* Returns 1 if name can be an environment variable name: non-empty, no '='. */
static int valid_env_name(const char *name)
{
    return *name && !strchr(name, '=');
}

/*
 * Builds c from the task's params and inputs. Returns 0, or -1 with a
 * one-line reason in err.
 */
static int command_from_params(fb_task *task, struct command *c, char *err, size_t errlen)
{
    json_t *params, *command, *args, *env, *cwd, *v;
    json_error_t jerr;
    const char *key;
    size_t i;
    int rc = -1;

    params = json_loads(fb_task_params_json(task), 0, &jerr);
    if (!json_is_object(params)) {
        snprintf(err, errlen, "the task's params are not a JSON object: %s", jerr.text);
        goto out;
    }
    json_object_foreach(params, key, v)
    {
        if (strcmp(key, "command") != 0 && strcmp(key, "argv") != 0 && strcmp(key, "env") != 0 &&
            strcmp(key, "cwd") != 0)
            fb_task_log(task, "warning: unknown param '%s' ignored (known: %s)", key,
                        "command, argv, env, cwd");
    }
    command = json_object_get(params, "command");
    args = json_object_get(params, "argv");
    env = json_object_get(params, "env");
    cwd = json_object_get(params, "cwd");

    if (command && args) {
        snprintf(err, errlen, "params 'command' and 'argv' are both set; give one of them");
        goto out;
    }
    if (command) {
        if (!json_text(command) || !*json_text(command)) {
            snprintf(err, errlen, "param 'command' must be a non-empty string");
            goto out;
        }
        c->argv = calloc(4, sizeof *c->argv);
        if (!c->argv)
            goto nomem;
        c->argv[0] = strdup("/bin/sh");
        c->argv[1] = strdup("-c");
        c->argv[2] = strdup(json_text(command));
        if (!c->argv[0] || !c->argv[1] || !c->argv[2])
            goto nomem;
    } else if (args) {
        if (!json_is_array(args) || json_array_size(args) == 0) {
            snprintf(err, errlen, "param 'argv' must be a non-empty list of strings");
            goto out;
        }
        c->argv = calloc(json_array_size(args) + 1, sizeof *c->argv);
        if (!c->argv)
            goto nomem;
        json_array_foreach(args, i, v)
        {
            if (!json_text(v)) {
                snprintf(err, errlen, "param 'argv' item %zu must be a string (without NUL)", i);
                goto out;
            }
            c->argv[i] = strdup(json_text(v));
            if (!c->argv[i])
                goto nomem;
        }
        if (!*c->argv[0]) {
            snprintf(err, errlen, "param 'argv' item 0 (the program) is empty");
            goto out;
        }
    } else {
        snprintf(err, errlen, "param 'command' (a shell command) or 'argv' (a list) is required");
        goto out;
    }

    if (env_inherit(c) != 0)
        goto nomem;
    if (env && !json_is_object(env)) {
        snprintf(err, errlen, "param 'env' must be a mapping of variable names to values");
        goto out;
    }
    json_object_foreach(env, key, v)
    {
        char number[64];
        const char *text = NULL;

        if (json_is_string(v))
            text = json_text(v);
        else if (json_is_integer(v))
            snprintf(number, sizeof number, "%" JSON_INTEGER_FORMAT, json_integer_value(v)),
                text = number;
        else if (json_is_real(v))
            snprintf(number, sizeof number, "%.17g", json_real_value(v)), text = number;
        else if (json_is_boolean(v))
            text = json_is_true(v) ? "true" : "false";
        if (!valid_env_name(key) || !text) {
            snprintf(err, errlen,
                     "param 'env': '%s' must be a variable name with a string, number or "
                     "boolean value",
                     key);
            goto out;
        }
        if (env_set(c, key, text) != 0)
            goto nomem;
    }
    /* Inputs last: they are the task's declared interface and win over env. */
    for (i = 0; i < fb_task_input_count(task); i++) {
        const char *name = fb_task_input_name(task, i);
        const char *value = fb_task_input(task, name);

        /* A NULL value is a secret input: it is already in our environment. */
        if (value && env_set(c, name, value) != 0)
            goto nomem;
    }

    if (cwd) {
        struct stat st;

        if (!json_text(cwd) || !*json_text(cwd)) {
            snprintf(err, errlen, "param 'cwd' must be a non-empty string");
            goto out;
        }
        if (stat(json_text(cwd), &st) != 0) {
            snprintf(err, errlen, "param 'cwd' is '%s': %s", json_text(cwd), strerror(errno));
            goto out;
        }
        if (!S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "param 'cwd' is '%s': not a directory", json_text(cwd));
            goto out;
        }
        c->cwd = strdup(json_text(cwd));
        if (!c->cwd)
            goto nomem;
    }
    rc = 0;
    goto out;
nomem:
    snprintf(err, errlen, "out of memory");
out:
    json_decref(params);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Running it                                                                 */
/* ------------------------------------------------------------------------ */

/*
 * Starts c with stdout and stderr on new pipes (read ends returned
 * non-blocking in *out_fd, *err_fd). Returns 0 or an errno value.
 */
static int spawn_command(const struct command *c, pid_t *pid, int *out_fd, int *err_fd)
{
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    sigset_t none, defaults;
    int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
    int rc;

    if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
        rc = errno;
        goto out;
    }
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
    /* The command must not inherit our broker connection (Paho does not set
     * close-on-exec): it would keep the socket open after we die and delay
     * our Last Will until the command exits. */
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    if (c->cwd)
        posix_spawn_file_actions_addchdir_np(&actions, c->cwd);

    /*
     * The child starts with no signal blocked and the usual dispositions, even
     * if Paho or our parent ignored SIGPIPE. No POSIX_SPAWN_SETPGROUP: the
     * child stays in our process group, which the coordinator kills as a whole.
     */
    posix_spawnattr_init(&attr);
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGQUIT);
    sigaddset(&defaults, SIGHUP);
    sigaddset(&defaults, SIGCHLD);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    rc = posix_spawnp(pid, c->argv[0], &actions, &attr, c->argv, c->envp);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    if (rc == 0) {
        fcntl(out_pipe[0], F_SETFL, O_NONBLOCK);
        fcntl(err_pipe[0], F_SETFL, O_NONBLOCK);
        *out_fd = out_pipe[0];
        *err_fd = err_pipe[0];
        out_pipe[0] = err_pipe[0] = -1;
    }
out:
    if (out_pipe[0] >= 0)
        close(out_pipe[0]);
    if (out_pipe[1] >= 0)
        close(out_pipe[1]);
    if (err_pipe[0] >= 0)
        close(err_pipe[0]);
    if (err_pipe[1] >= 0)
        close(err_pipe[1]);
    return rc;
}

/* One output pipe of the child, split into lines. */
struct stream {
    int fd;     /* -1 once closed */
    int is_out; /* 1 for stdout (KEY=VALUE lines), 0 for stderr */
    char *buf;  /* line_max bytes */
    size_t used;
    int skipping; /* 1 while discarding the rest of a cut line */
};

/* What the command has said so far. */
struct run {
    fb_task *task;
    char **values; /* per declared output index; NULL until printed */
    char **warned; /* undeclared keys already warned about */
    size_t nwarned;
    int failed_mem; /* 1 if memory ran out recording a value */
    char *too_large; /* the first declared output whose value was over the limit */
};

/*
 * A NUL-terminated copy of len bytes. Not strndup: a line that fills the read
 * buffer has no NUL after it, and strndup may look past len for one.
 */
static char *dup_bytes(const char *p, size_t len)
{
    char *s = malloc(len + 1);

    if (s) {
        memcpy(s, p, len);
        s[len] = '\0';
    }
    return s;
}

/* Warns once per key that KEY=VALUE named an undeclared output. */
static void warn_undeclared(struct run *r, const char *key)
{
    char **bigger;
    size_t i;

    for (i = 0; i < r->nwarned; i++)
        if (strcmp(r->warned[i], key) == 0)
            return;
    fb_task_log(r->task, "warning: %s is not a declared output of this task; line ignored", key);
    bigger = realloc(r->warned, (r->nwarned + 1) * sizeof *bigger);
    if (!bigger)
        return; /* it may be warned again: harmless */
    r->warned = bigger;
    r->warned[r->nwarned] = strdup(key);
    if (r->warned[r->nwarned])
        r->nwarned++;
}

/* Handles one complete line (without "\n"); cut is 1 if it was over-long. */
static void handle_line(struct run *r, const struct stream *s, const char *line, size_t len,
                        int cut)
{
    struct kv_pair kv;
    size_t i;

    if (s->is_out && kv_parse_line(line, len, &kv)) {
        char *key = dup_bytes(kv.key, kv.key_len);

        if (!key) {
            r->failed_mem = 1;
            return;
        }
        for (i = 0; i < fb_task_output_count(r->task); i++)
            if (strcmp(fb_task_output_name(r->task, i), key) == 0)
                break;
        if (i == fb_task_output_count(r->task)) {
            warn_undeclared(r, key);
        } else if (cut || (long)kv.value_len > value_limit()) {
            /* Refused below: the task fails rather than publish half a value. */
            if (!r->too_large)
                r->too_large = strdup(key);
        } else if (memchr(kv.value, '\0', kv.value_len)) {
            fb_task_log(r->task, "warning: the value of %s contains a NUL byte; line ignored", key);
        } else {
            char *value = dup_bytes(kv.value, kv.value_len);

            if (value) {
                free(r->values[i]);
                r->values[i] = value;
            } else {
                r->failed_mem = 1;
            }
        }
        free(key);
        return;
    }
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (cut)
        fb_task_log(r->task, "%.*s [line cut at %zu bytes]", (int)len, line, line_max);
    else
        fb_task_log(r->task, "%.*s", (int)len, line);
}

/*
 * Reads what is available on s and handles its complete lines. Returns 1
 * while the pipe may give more, 0 on end of file or error (then any partial
 * last line has been handled) and -1 if nothing was available right now.
 */
static int read_stream(struct run *r, struct stream *s)
{
    ssize_t n = read(s->fd, s->buf + s->used, line_max - s->used);
    size_t start = 0, i;

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return -1;
    if (n <= 0) {
        if (s->used > 0 && !s->skipping)
            handle_line(r, s, s->buf, s->used, 0);
        s->used = 0;
        return 0;
    }
    s->used += (size_t)n;
    for (i = s->used - (size_t)n; i < s->used; i++) {
        if (s->buf[i] != '\n')
            continue;
        if (!s->skipping)
            handle_line(r, s, s->buf + start, i - start, 0);
        s->skipping = 0;
        start = i + 1;
    }
    memmove(s->buf, s->buf + start, s->used - start);
    s->used -= start;
    if (s->used == line_max) {
        /* A full buffer without a newline: handle the cut line, drop the rest of it. */
        if (!s->skipping)
            handle_line(r, s, s->buf, s->used, 1);
        s->skipping = 1;
        s->used = 0;
    }
    return 1;
}

/* Opens a pidfd for pid (Linux >= 5.3) so poll() can see the child exit; -1 if unavailable. */
static int open_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    return -1;
#endif
}

/*
 * Reads both streams until they end. Once the child has exited (seen on the
 * pidfd) only what is already in the pipes is read: a background grandchild
 * holding them open does not keep the task alive.
 */
static void pump(struct run *r, struct stream *streams, pid_t pid)
{
    int pidfd = open_pidfd(pid), exited = 0;
    /* Reactive mode: events that come meanwhile are queued (and bounded) as they arrive. */
    int task_fd = fb_task_reactive(r->task) ? fb_task_fd(r->task) : -1;
    size_t k;

    while (streams[0].fd >= 0 || streams[1].fd >= 0) {
        struct pollfd pfd[4];
        nfds_t n = 0, j;
        int ready;

        for (k = 0; k < 2; k++)
            if (streams[k].fd >= 0)
                pfd[n++] = (struct pollfd){.fd = streams[k].fd, .events = POLLIN};
        if (pidfd >= 0 && !exited)
            pfd[n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
        if (task_fd >= 0 && !exited)
            pfd[n++] = (struct pollfd){.fd = task_fd, .events = POLLIN};
        ready = poll(pfd, n, exited ? 0 : -1);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready <= 0)
            break; /* the child has exited and the pipes are drained (or poll failed) */
        for (j = 0; j < n; j++) {
            struct stream *s;

            if (!pfd[j].revents)
                continue;
            if (pfd[j].fd == pidfd) {
                exited = 1;
                continue;
            }
            if (pfd[j].fd == task_fd) {
                /* A stop is acted on after the command; a lost broker stops the watching. */
                if (fb_task_poll(r->task) == FB_ERR_LOST)
                    task_fd = -1;
                continue;
            }
            s = pfd[j].fd == streams[0].fd ? &streams[0] : &streams[1];
            if (read_stream(r, s) == 0) {
                close(s->fd);
                s->fd = -1;
            }
        }
    }
    /* A last line without its newline, on a pipe a grandchild still holds open. */
    for (k = 0; k < 2; k++) {
        if (streams[k].fd >= 0 && streams[k].used > 0 && !streams[k].skipping)
            handle_line(r, &streams[k], streams[k].buf, streams[k].used, 0);
        streams[k].used = 0;
    }
    if (pidfd >= 0)
        close(pidfd);
}

/*
 * Waits for the child and reaps it, retrying on EINTR. Returns the status or
 * -1. child_pid is cleared after the exit but before the reaping, while the
 * pid cannot have been reused, so the signal handler never hits a stranger.
 */
static int wait_child(pid_t pid)
{
    siginfo_t si;
    int status;

    while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) < 0)
        if (errno != EINTR)
            break;
    child_pid = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return status;
}

/* Sets FLOWBUS_ACTIVATION and FLOWBUS_TRIGGER for the command (reactive mode). */
static int env_activation(fb_task *task, struct command *c)
{
    char number[32];

    snprintf(number, sizeof number, "%lu", fb_task_activation(task));
    if (env_set(c, "FLOWBUS_ACTIVATION", number) != 0)
        return -1;
    return env_set(c, "FLOWBUS_TRIGGER", fb_task_trigger(task) ? fb_task_trigger(task) : "");
}

/*
 * One run of the command with the current inputs: the whole one-shot task,
 * or one activation in reactive mode. Reports through fb_task_done or
 * fb_task_fail and returns the exit code the process should end with in
 * one-shot mode (0 after done).
 */
static int act(fb_task *task)
{
    struct command cmd = {0};
    struct run run = {0};
    struct stream streams[2] = {{.fd = -1, .is_out = 1}, {.fd = -1, .is_out = 0}};
    struct sigaction sa, old_term, old_int;
    char err[1024] = "";
    pid_t pid;
    size_t i;
    int code = 1, rc, status;

    run.task = task;
    pending_signal = 0;
    forwarded = 0;
    if (command_from_params(run.task, &cmd, err, sizeof err) != 0) {
        fb_task_fail(run.task, 1, "%s", err);
        goto out;
    }
    if (fb_task_reactive(task) && env_activation(task, &cmd) != 0) {
        fb_task_fail(run.task, 1, "out of memory");
        goto out;
    }
    run.values = calloc(fb_task_output_count(run.task) + 1, sizeof *run.values);
    streams[0].buf = malloc(line_max);
    streams[1].buf = malloc(line_max);
    if (!run.values || !streams[0].buf || !streams[1].buf) {
        fb_task_fail(run.task, 1, "out of memory");
        goto out;
    }

    /*
     * Until now SIGTERM and SIGINT kill us as usual (while waiting for inputs
     * that is what the coordinator wants). From here they go to the child; one
     * that arrives before the child exists is remembered and means "do not run".
     * The old dispositions come back after the command (reactive mode waits
     * again).
     */
    group_leader = getpgrp() == getpid();
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGINT, &sa, &old_int);
    if (pending_signal) {
        code = 128 + pending_signal;
        fb_task_fail(run.task, code, "stopped by signal %d before the command ran",
                     (int)pending_signal);
        goto restore;
    }
    rc = spawn_command(&cmd, &pid, &streams[0].fd, &streams[1].fd);
    if (rc != 0) {
        code = rc == ENOENT ? 127 : 126;
        fb_task_fail(run.task, code, "cannot run '%s'%s%s: %s", cmd.argv[0], cmd.cwd ? " in " : "",
                     cmd.cwd ? cmd.cwd : "", strerror(rc));
        goto restore;
    }
    child_pid = pid;
    if (pending_signal)
        forward_signal(pending_signal);

    pump(&run, streams, pid);
    status = wait_child(pid);
    if (status < 0) {
        fb_task_fail(run.task, 1, "cannot wait for the command: %s", strerror(errno));
        goto restore;
    }
    if (WIFSIGNALED(status)) {
        code = 128 + WTERMSIG(status);
        fb_task_fail(run.task, code, "command killed by signal %d", WTERMSIG(status));
        goto restore;
    }
    if (WEXITSTATUS(status) != 0) {
        code = WEXITSTATUS(status);
        fb_task_fail(run.task, code, "command exited with code %d", code);
        goto restore;
    }
    if (run.failed_mem) {
        fb_task_fail(run.task, 1, "out of memory while reading the command's output");
        goto restore;
    }
    if (run.too_large) {
        fb_task_fail(run.task, 1,
                     "the value of %s is over the limit of %ld bytes (FLOWBUS_MAX_VALUE); no "
                     "output was published",
                     run.too_large, value_limit());
        goto restore;
    }
    for (i = 0; i < fb_task_output_count(run.task); i++) {
        const char *name = fb_task_output_name(run.task, i);
        enum fb_err set;

        if (!run.values[i]) {
            fb_task_log(run.task, "warning: no usable %s=... line from the command; %s is not set",
                        name, name);
            continue;
        }
        set = fb_task_set_output(run.task, name, run.values[i]);
        if (set != FB_OK) {
            fb_task_fail(run.task, 1, "cannot set output %s: %s", name, fb_strerror(set));
            goto restore;
        }
    }
    if (fb_task_done(run.task) != FB_OK) {
        log_printf(FB_LOG_ERROR, "cannot report done");
        goto restore;
    }
    code = 0;
restore:
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGINT, &old_int, NULL);
out:
    for (i = 0; i < 2; i++) {
        if (streams[i].fd >= 0)
            close(streams[i].fd);
        free(streams[i].buf);
    }
    for (i = 0; run.values && i < fb_task_output_count(run.task); i++)
        free(run.values[i]);
    free(run.values);
    for (i = 0; i < run.nwarned; i++)
        free(run.warned[i]);
    free(run.warned);
    free(run.too_large);
    command_clear(&cmd);
    return code;
}

int main(int argc, char **argv)
{
    struct command check = {0};
    char err[1024] = "";
    fb_task *task;

    plugin_cli__args(&info, argc, argv);
    line_max = (size_t)value_limit() + 4096;
    task = plugin_cli__open();
    if (!fb_task_reactive(task)) {
        plugin_cli__wait(task);
        plugin_cli__require(task, required, sizeof required / sizeof *required);
        fb_task_exit(task, act(task));
    }
    /*
     * Reactive mode: the permission check and the params are the same for
     * every activation, so they are checked once; a bad param fails the task
     * (not an activation) before any event is taken.
     */
    plugin_cli__require(task, required, sizeof required / sizeof *required);
    if (command_from_params(task, &check, err, sizeof err) != 0) {
        fb_task_fail(task, 1, "%s", err);
        fb_task_exit(task, 1);
    }
    command_clear(&check);
    for (;;) {
        plugin_cli__next(task);
        act(task);
        /* A SIGTERM or SIGINT that came during the command ends the task after it. */
        if (pending_signal)
            fb_task_exit(task, 128 + pending_signal);
    }
}
