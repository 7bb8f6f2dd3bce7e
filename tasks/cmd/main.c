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
 * Input values reach the command only as data, never pasted into the
 * command text, so a value like "$(touch pwned)" stays inert: each input is
 * the file $FLOWBUS_INPUTS_DIR/NAME (any value up to the value limit, whole)
 * and the environment variable NAME when it fits there (Linux holds at most
 * 128 KiB per variable) and its name is not reserved (fb_name_reserved:
 * LD_PRELOAD, PATH, ...); an input left out of the environment is said on
 * the task's log. Precedence in the environment: inherited, then the env
 * param, then inputs. FLOWBUS_PASSWORD, FLOWBUS_CREDENTIALS_FD and (unless
 * it is an input) AUTH_TOKEN are removed, and no descriptor above 2 is
 * inherited: the command has no business with the task's credentials
 * (docs/protocol.md "Credentials"). The directory is private to this
 * run of the command and removed after it (workdir.h).
 *
 * The command sets outputs by writing KEY=VALUE lines, or KEY<<DELIMITER
 * blocks for values with newlines, to the file $FLOWBUS_OUTPUT (outfile.h).
 * For compatibility a stdout line KEY=VALUE (kv.h) whose KEY is a declared
 * output sets it too (the file wins; the last line wins), but only while no
 * input holds a newline: otherwise `echo "$INPUT"` could print a forged
 * KEY=VALUE line, indistinguishable from the command's own, so such a line
 * fails the task with a reason naming the file (unless the file set that
 * output). A value with a NUL byte, or over the value limit, fails the task.
 *
 * The child runs with stdin from /dev/null and its stdout and stderr on pipes
 * read with poll(). A KEY that is not declared gets a warning, once per key.
 * Every other stdout line and every stderr line is
 * published on the task's log topic with fb_task_log and NOT echoed to our
 * own stderr: the coordinator forwards our stderr to that same topic, so an
 * echo would log each line twice. Lines longer than the value limit plus
 * 4 KiB are cut and marked.
 *
 * Outputs are recorded only if the command exits 0; otherwise the task fails
 * with "command exited with code N" and exits N, or "command killed by signal
 * N" and exits 128+N, publishing none of them. SIGTERM and SIGINT received by
 * flowbus-cmd are forwarded to the child, which stays in our process group
 * so that the coordinator's kill of the group reaches it too.
 *
 * Reactive mode (FLOWBUS_MODE=reactive): the params and the permission are
 * checked once (a bad param fails the task), then each activation runs the
 * command with the activation's inputs, plus FLOWBUS_ACTIVATION (its number)
 * and FLOWBUS_TRIGGER (the input that fired it) in the environment; its
 * KEY=VALUE lines are the activation's outputs. A failing command fails the
 * activation, not the task. A stop is acted on once the running command has
 * ended; a SIGTERM/SIGINT during the command still goes to it, and the task
 * exits with 128+N after reporting the activation.
 *
 * This file is the action, what one run of the command does; params.c reads
 * the params into the command, child.c runs its process and output.c reads
 * what it says.
 */
#include "child.h"
#include "output.h"
#include "params.h"
#include "plugin_main.h"
#include "workdir.h"

#include <flowbus/protocol.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const struct plugin_info info = {
    .name = "cmd",
    .manifest =
        "{\"name\":\"cmd\",\"description\":\"Runs a command; the KEY=VALUE lines it writes to "
        "$FLOWBUS_OUTPUT (or prints) set outputs\",\"inputs\":[],\"outputs\":[],\"params\":{"
        "\"command\":{\"type\":\"string\",\"default\":null,\"description\":\"run by /bin/sh -c; "
        "inputs are environment variables and files in $FLOWBUS_INPUTS_DIR\"},"
        "\"argv\":{\"type\":\"array\",\"default\":null,\"description\":\"program and arguments, "
        "exec'd without a shell (instead of command)\"},"
        "\"env\":{\"type\":\"object\",\"default\":{},\"description\":\"extra environment "
        "variables\"},"
        "\"cwd\":{\"type\":\"string\",\"default\":null,\"description\":\"working directory of "
        "the command\"}},\"permissions\":[\"can_execute_commands\"]}",
    .usage = "Runs the param \"command\" with /bin/sh -c (or \"argv\" without a shell), with\n"
             "the inputs as environment variables and as files in $FLOWBUS_INPUTS_DIR.\n"
             "KEY=VALUE lines (or KEY<<DELIMITER blocks) written to the file $FLOWBUS_OUTPUT\n"
             "set declared outputs; so do stdout lines KEY=VALUE while no input holds a\n"
             "newline. Other lines go to the task's log. Fails with the command's exit code.\n",
};

/* When auth is in use (docs/security.md), running a command needs this. */
static const char *const required[] = {"can_execute_commands"};

/* Sets FLOWBUS_ACTIVATION and FLOWBUS_TRIGGER for the command (reactive mode). */
static int env_activation(fb_task *task, struct command *c)
{
    char number[32];

    snprintf(number, sizeof number, "%lu", fb_task_activation(task));
    if (params__setenv(c, "FLOWBUS_ACTIVATION", number) != 0)
        return -1;
    return params__setenv(c, "FLOWBUS_TRIGGER", fb_task_trigger(task) ? fb_task_trigger(task) : "");
}

/*
 * Reads $FLOWBUS_OUTPUT after the command exited 0. Its size is bounded: each
 * declared output may be set several times (the last wins), but not without
 * end. Returns 0, or fails the task and returns -1.
 */
static int read_output_file(struct run *r, const struct workdir *dir)
{
    size_t max = 16 * ((size_t)output__value_limit() + 4096), len;
    char err[512], *buf;
    int rc;

    if (workdir__read_output(dir, max, &buf, &len, err, sizeof err) != 0) {
        fb_task_fail(r->task, 1, "%s; no output was published", err);
        return -1;
    }
    rc = output__read_file(r, buf, len, err, sizeof err);
    free(buf);
    if (rc != 0)
        fb_task_fail(r->task, 1, "%s; no output was published", err);
    return rc;
}

/*
 * Sets each declared output from the file, or else from stdout, and says
 * which were not set. A stdout value is refused while an input holds a
 * newline: echoing that input could have printed the line.
 * Returns 0, or fails the task and returns -1.
 */
static int set_outputs(struct run *r)
{
    size_t i;

    for (i = 0; i < fb_task_output_count(r->task); i++) {
        const char *name = fb_task_output_name(r->task, i), *why;
        const char *value = r->file_values[i] ? r->file_values[i] : r->values[i];
        enum fb_err set;

        if (!r->file_values[i] && r->values[i] && r->newline_input) {
            fb_task_fail(r->task, 1,
                         "a stdout line %s=... cannot set output %s: input %s holds a newline, "
                         "so the line may be that input's text; write outputs to the file "
                         "$FLOWBUS_OUTPUT instead; no output was published",
                         name, name, r->newline_input);
            return -1;
        }
        if (!value) {
            /* In a reactive flow an activation that sets no output is the idiom
             * for "nothing to report" (workflows/iot-thermostat.yaml). */
            if (!fb_task_reactive(r->task))
                fb_task_log(r->task,
                            "warning: no usable %s=... line from the command (in "
                            "$FLOWBUS_OUTPUT or on stdout); %s is not set",
                            name, name);
            continue;
        }
        if ((why = fb_name_reserved(name)) != NULL) {
            fb_task_fail(r->task, 1,
                         "%s is a reserved name (it %s) and cannot be an output; no output was "
                         "published",
                         name, why);
            return -1;
        }
        set = fb_task_set_output(r->task, name, value);
        if (set != FB_OK) {
            fb_task_fail(r->task, 1, "cannot set output %s: %s", name, fb_strerror(set));
            return -1;
        }
    }
    return 0;
}

/*
 * One run of the command with the current inputs: the whole one-shot task,
 * or one activation in reactive mode. Reports through fb_task_done or
 * fb_task_fail and returns the exit code the process should end with in
 * one-shot mode (0 after done).
 */
static int act(fb_task *task, void *ctx)
{
    struct command cmd = {0};
    struct run run = {0};
    struct workdir dir = {{0}, {0}, {0}};
    struct stream streams[2] = {{.fd = -1, .is_out = 1}, {.fd = -1, .is_out = 0}};
    struct child_signals saved;
    char err[1024] = "";
    pid_t pid;
    size_t i;
    int code = 1, rc, status;

    (void)ctx;
    run.task = task;
    if (params__read(run.task, &cmd, err, sizeof err) != 0) {
        fb_task_fail(run.task, 1, "%s", err);
        goto out;
    }
    if (workdir__create(&dir, err, sizeof err) != 0 ||
        params__add_inputs(task, &cmd, &dir, err, sizeof err) != 0) {
        fb_task_fail(run.task, 1, "%s", err);
        goto out;
    }
    if (fb_task_reactive(task) && env_activation(task, &cmd) != 0) {
        fb_task_fail(run.task, 1, "out of memory");
        goto out;
    }
    run.newline_input = cmd.newline_input;
    run.values = calloc(fb_task_output_count(run.task) + 1, sizeof *run.values);
    run.file_values = calloc(fb_task_output_count(run.task) + 1, sizeof *run.file_values);
    streams[0].buf = malloc(output__line_max());
    streams[1].buf = malloc(output__line_max());
    if (!run.values || !run.file_values || !streams[0].buf || !streams[1].buf) {
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
    child__catch_signals(&saved);
    if (child__pending_signal()) {
        code = 128 + child__pending_signal();
        fb_task_fail(run.task, code, "stopped by signal %d before the command ran",
                     child__pending_signal());
        goto restore;
    }
    rc = child__spawn(&cmd, &pid, &streams[0].fd, &streams[1].fd);
    if (rc != 0) {
        code = rc == ENOENT ? 127 : 126;
        fb_task_fail(run.task, code, "cannot run '%s'%s%s: %s", cmd.argv[0], cmd.cwd ? " in " : "",
                     cmd.cwd ? cmd.cwd : "", strerror(rc));
        goto restore;
    }
    child__pump(&run, streams, pid);
    status = child__wait(pid);
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
    if (read_output_file(&run, &dir) != 0)
        goto restore;
    if (run.failed_mem) {
        fb_task_fail(run.task, 1, "out of memory while reading the command's output");
        goto restore;
    }
    if (run.too_large) {
        fb_task_fail(run.task, 1,
                     "the value of %s is over the limit of %ld bytes (FLOWBUS_MAX_VALUE); no "
                     "output was published",
                     run.too_large, output__value_limit());
        goto restore;
    }
    if (run.has_nul) {
        fb_task_fail(run.task, 1,
                     "the value of %s contains a NUL byte (a value is text); no output was "
                     "published",
                     run.has_nul);
        goto restore;
    }
    if (set_outputs(&run) != 0)
        goto restore;
    if (fb_task_done(run.task) != FB_OK) {
        log_printf(FB_LOG_ERROR, "cannot report done");
        goto restore;
    }
    code = 0;
restore:
    /* One-shot: the task is ending. A signal from now on goes to what the command may have
     * left in our group and no further, so that the SDK closes our connection cleanly (a
     * Last Will after the final state would overwrite it). */
    if (fb_task_reactive(task))
        child__release_signals(&saved);
out:
    for (i = 0; i < 2; i++) {
        if (streams[i].fd >= 0)
            close(streams[i].fd);
        free(streams[i].buf);
    }
    output__clear(&run);
    params__clear(&cmd);
    workdir__remove(&dir);
    return code;
}

/*
 * Reactive mode: the params are the same for every activation, so they are
 * checked once (after the permission check); a bad param fails the task, not
 * an activation, before any event is taken.
 */
static int check_params(fb_task *task, void *ctx)
{
    struct command check = {0};
    char err[1024] = "";
    int code = 0;

    (void)ctx;
    if (params__read(task, &check, err, sizeof err) != 0) {
        fb_task_fail(task, 1, "%s", err);
        code = 1;
    }
    params__clear(&check);
    return code;
}

/* One activation; a SIGTERM or SIGINT that came during the command ends the task after it. */
static int activate(fb_task *task, void *ctx)
{
    int code = act(task, ctx);

    if (fb_task_reactive(task) && child__pending_signal())
        fb_task_exit(task, 128 + child__pending_signal());
    return code;
}

int main(int argc, char **argv)
{
    static const struct plugin plugin = {
        .info = &info,
        .check_permissions = 1,
        .required = required,
        .n_required = sizeof required / sizeof *required,
        .ready = check_params,
        .act = activate,
    };

    plugin_main__run(&plugin, argc, argv);
}
