/*
 * probe.c - a test plugin built on the SDK, driven by its params.
 *
 * The SDK tests (test_task.py) start it with a FLOWBUS_* environment and check
 * what appears on the bus. Params:
 *   action        "done" (default) or "fail"
 *   value_<OUT>   the value to set for output OUT (default "<task>.<OUT>")
 *   echo          an input name: every output gets that input's value
 *   oversize      a byte count: the first output gets that many 'x' first
 *   exit          the exit code for action "fail" (default 3)
 *   wait_timeout  seconds for fb_task_wait (default: forever)
 * After fb_task_wait it prints one JSON line on stdout with the inputs it got
 * (secrets only as their length). With PROBE_TIMING=1 in the environment it
 * prints "timing open_ms=... wait_ms=... total_ms=..." on stderr. With PROBE_FREE=1
 * it ends with fb_task_free and return instead of fb_task_exit.
 * With PROBE_ACTIVATIONS=FILE it appends one line to FILE each time its action
 * starts (after fb_task_wait), so a test can count executions. With
 * PROBE_GATE=1 it prints {"event":"gate"} once its outputs are set, waits for a
 * line on stdin, prints {"event":"finishing"} and only then reports done.
 *
 * In reactive mode (FLOWBUS_MODE=reactive) it is a pass-through as fast as
 * the SDK allows: every activation sets each output to the value of input
 * "echo" (default: the first input) and ends done, or fails with exit 5 and
 * the error "asked to fail on <value>" when that value equals param
 * "fail_on". It exits 0 when the run says stop.
 *
 * Exit codes: 0 done or stopped, 2 open failed, 4 wait timed out, 5
 * connection lost, 6 done/fail not confirmed, 7 value refused, 9 no line for
 * PROBE_GATE, else "exit".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "flowbus/flowbus.h"

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void print_inputs(fb_task *task)
{
    const char *secrets = getenv("FLOWBUS_SECRETS");
    json_t *values = json_object();
    json_t *line;
    char *text;
    size_t i;

    for (i = 0; i < fb_task_input_count(task); i++) {
        const char *name = fb_task_input_name(task, i);
        const char *value = fb_task_input(task, name);
        int secret = secrets != NULL && strstr(secrets, name) != NULL;

        if (secret)
            json_object_set_new(values, name, json_pack("{s:i}", "secret_len", (int)strlen(value)));
        else
            json_object_set_new(values, name, json_string(value));
    }
    line = json_pack("{s:s,s:o}", "event", "inputs", "values", values);
    text = json_dumps(line, JSON_COMPACT | JSON_SORT_KEYS);
    printf("%s\n", text);
    free(text);
    json_decref(line);
}

static void log_to_stderr(void *ctx, enum fb_log_level level, const char *msg)
{
    (void)ctx;
    fprintf(stderr, "probe: sdk[%d]: %s\n", (int)level, msg);
}

/* Reactive mode: the pass-through described above; never returns. */
static void run_reactive(fb_task *task)
{
    const char *echo = fb_task_param(task, "echo");
    const char *fail_on = fb_task_param(task, "fail_on");
    enum fb_err err;
    size_t i;

    if (echo == NULL)
        echo = fb_task_input_name(task, 0);
    while ((err = fb_task_next(task, -1)) == FB_OK) {
        const char *value = echo != NULL ? fb_task_input(task, echo) : NULL;

        if (value == NULL)
            value = "";
        if (fail_on != NULL && strcmp(value, fail_on) == 0) {
            err = fb_task_fail(task, 5, "asked to fail on %s", value);
        } else {
            for (i = 0; i < fb_task_output_count(task); i++)
                if (fb_task_set_output(task, fb_task_output_name(task, i), value) != FB_OK)
                    fb_task_exit(task, 7);
            err = fb_task_done(task);
        }
        if (err != FB_OK) {
            fprintf(stderr, "probe: ending an activation: %s\n", fb_strerror(err));
            fb_task_exit(task, 6);
        }
    }
    if (err != FB_ERR_STOPPED)
        fprintf(stderr, "probe: next: %s\n", fb_strerror(err));
    fb_task_exit(task, err == FB_ERR_STOPPED ? 0 : 5);
}

/* The manifest: internal, so the editor's palette leaves this test program out. */
static const char manifest[] =
    "{\"name\":\"probe\",\"description\":\"The SDK tests' probe task (tests/sdk/probe.c)\","
    "\"inputs\":[],\"outputs\":[],\"params\":{},\"internal\":true}";

int main(int argc, char **argv)
{
    fb_task_options opts = {log_to_stderr, NULL};
    fb_task *task = NULL;
    char errbuf[512];
    const char *action;
    const char *p;
    double t0 = now_ms(), t_open, t_wait;
    double wait_timeout = -1;
    enum fb_err err;
    size_t i;
    int code = 0;

    if (argc == 2 && strcmp(argv[1], "--describe") == 0) {
        puts(manifest);
        return 0;
    }
    err = fb_task_open(&opts, &task, errbuf, sizeof errbuf);
    if (err != FB_OK) {
        fprintf(stderr, "probe: %s (%s)\n", errbuf, fb_strerror(err));
        return 2;
    }
    t_open = now_ms();
    if (fb_task_reactive(task))
        run_reactive(task);
    p = fb_task_param(task, "wait_timeout");
    if (p != NULL)
        wait_timeout = atof(p);
    err = fb_task_wait(task, wait_timeout);
    t_wait = now_ms();
    if (err == FB_ERR_STOPPED) {
        printf("{\"event\":\"stopped\"}\n");
        fb_task_exit(task, 0);
    }
    if (err != FB_OK) {
        fprintf(stderr, "probe: wait: %s\n", fb_strerror(err));
        fb_task_exit(task, err == FB_ERR_TIMEOUT ? 4 : 5);
    }
    p = getenv("PROBE_ACTIVATIONS");
    if (p != NULL) {
        FILE *f = fopen(p, "a");

        if (f != NULL) {
            fprintf(f, "%s %ld\n", fb_task_name(task), (long)getpid());
            fclose(f);
        }
    }
    print_inputs(task);

    p = fb_task_param(task, "oversize");
    if (p != NULL && fb_task_output_count(task) > 0) {
        size_t n = (size_t)atol(p);
        char *big = malloc(n + 1);

        memset(big, 'x', n);
        big[n] = '\0';
        err = fb_task_set_output(task, fb_task_output_name(task, 0), big);
        free(big);
        if (err != FB_OK) {
            fb_task_fail(task, 7, "output %s: %zu bytes refused: %s", fb_task_output_name(task, 0),
                         n, fb_strerror(err));
            fb_task_exit(task, 7);
        }
    }
    for (i = 0; i < fb_task_output_count(task); i++) {
        const char *name = fb_task_output_name(task, i);
        char key[128];
        char fallback[160];
        const char *value;

        snprintf(key, sizeof key, "value_%s", name);
        value = fb_task_param(task, key);
        if (value == NULL && (p = fb_task_param(task, "echo")) != NULL)
            value = fb_task_input(task, p);
        if (value == NULL) {
            snprintf(fallback, sizeof fallback, "%s.%s", fb_task_name(task), name);
            value = fallback;
        }
        if (fb_task_set_output(task, name, value) != FB_OK)
            fb_task_exit(task, 7);
    }
    if (fb_task_set_output(task, "NOT_DECLARED_ANYWHERE", "x") != FB_ERR_NOT_FOUND)
        fb_task_exit(task, 8);
    fb_task_log(task, "probe %s acting", fb_task_name(task));

    if (getenv("PROBE_GATE") != NULL) {
        char line[64];

        printf("{\"event\":\"gate\"}\n");
        fflush(stdout);
        if (fgets(line, sizeof line, stdin) == NULL)
            fb_task_exit(task, 9);
        printf("{\"event\":\"finishing\"}\n");
        fflush(stdout);
    }
    action = fb_task_param(task, "action");
    if (action != NULL && strcmp(action, "fail") == 0) {
        p = fb_task_param(task, "exit");
        code = p != NULL ? atoi(p) : 3;
        if (fb_task_fail(task, code, "failing on purpose\n(as asked)") != FB_OK)
            code = 6;
    } else if (fb_task_done(task) != FB_OK) {
        code = 6;
    }
    if (getenv("PROBE_TIMING") != NULL)
        fprintf(stderr, "timing open_ms=%.3f wait_ms=%.3f total_ms=%.3f\n", t_open - t0,
                t_wait - t_open, now_ms() - t0);
    /* PROBE_FREE takes the slow, complete teardown, so LeakSanitizer can check it. */
    if (getenv("PROBE_FREE") != NULL) {
        fb_task_free(task);
        return code;
    }
    fb_task_exit(task, code);
}
