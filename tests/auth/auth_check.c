/*
 * auth_check.c - a test program for the permission API, driven by
 * test_auth.py.
 *
 *   fbtest-auth-check fetch NAME...
 *       fb_permissions_fetch with the options from the environment and the
 *       token from AUTH_TOKEN (never from argv: ps would show it). Prints one
 *       JSON line: {"rc": "...", "error": "...", "granted": [...],
 *       "has": {NAME: bool}, "maxrss_kb": N, "ms": T}. Exit 0 when fetched,
 *       1 when refused, 2 on a usage error.
 *   fbtest-auth-check task NAME...
 *       A task on the SDK: opens, waits, calls fb_task_require with NAMEs;
 *       if allowed prints "acted" on stdout and reports done (exit 0); if
 *       denied exits FB_EXIT_DENIED without acting.
 *   fbtest-auth-check maps
 *       A task that opens, calls fb_task_require without names and prints
 *       /proc/self/maps (which libraries the process has loaded by then),
 *       then reports done.
 *
 * SDK log messages go to stderr, so the tests can check that none of them
 * holds the token.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <jansson.h>

#include "flowbus/flowbus.h"
#include "flowbus/protocol.h"

static const char *const level_names[] = {"debug", "info", "warning", "error"};

static void log_stderr(void *ctx, enum fb_log_level level, const char *msg)
{
    (void)ctx;
    fprintf(stderr, "auth-check: %s: %s\n", level_names[level], msg);
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int do_fetch(int argc, char **argv)
{
    fb_auth_options opts;
    fb_permissions *perms = NULL;
    char err[512] = "";
    json_t *line = json_object(), *granted = json_array(), *has = json_object();
    struct rusage ru;
    double t0 = now_ms();
    enum fb_err rc;
    char *text;
    size_t i;
    int a;

    memset(&opts, 0, sizeof opts);
    opts.log = log_stderr;
    rc = fb_permissions_fetch(&opts, getenv("AUTH_TOKEN"), &perms, err, sizeof err);
    json_object_set_new(line, "ms", json_real(now_ms() - t0));
    json_object_set_new(line, "rc", json_string(fb_strerror(rc)));
    json_object_set_new(line, "error", json_string(err));
    for (i = 0; i < fb_permissions_count(perms); i++)
        json_array_append_new(granted, json_string(fb_permissions_name(perms, i)));
    for (a = 2; a < argc; a++)
        json_object_set_new(has, argv[a], json_boolean(fb_permissions_has(perms, argv[a])));
    json_object_set_new(line, "granted", granted);
    json_object_set_new(line, "has", has);
    getrusage(RUSAGE_SELF, &ru);
    json_object_set_new(line, "maxrss_kb", json_integer(ru.ru_maxrss));
    text = json_dumps(line, JSON_COMPACT);
    printf("%s\n", text);
    free(text);
    json_decref(line);
    fb_permissions_free(perms);
    return rc == FB_OK ? 0 : 1;
}

static int do_task(int argc, char **argv)
{
    fb_task_options opts = {.log = log_stderr, .log_ctx = NULL};
    fb_task *task = NULL;
    char err[512] = "";
    enum fb_err rc;

    rc = fb_task_open(&opts, &task, err, sizeof err);
    if (rc != FB_OK) {
        fprintf(stderr, "auth-check: cannot open the task: %s\n", err);
        return 2;
    }
    rc = fb_task_wait(task, 10);
    if (rc != FB_OK) {
        fprintf(stderr, "auth-check: wait: %s\n", fb_strerror(rc));
        fb_task_exit(task, 3);
    }
    rc = fb_task_require(task, (const char *const *)argv + 2, (size_t)(argc - 2));
    if (rc != FB_OK) {
        /* The task is finished: done must be refused now. */
        if (fb_task_done(task) != FB_ERR_INVALID)
            fb_task_exit(task, 9);
        if (getenv("AUTH_CHECK_FREE") != NULL) {
            fb_task_free(task);
            return FB_EXIT_DENIED;
        }
        fb_task_exit(task, FB_EXIT_DENIED);
    }
    printf("acted\n");
    fflush(stdout);
    rc = fb_task_done(task);
    if (getenv("AUTH_CHECK_FREE") != NULL) {
        fb_task_free(task);
        return rc == FB_OK ? 0 : 6;
    }
    fb_task_exit(task, rc == FB_OK ? 0 : 6);
}

static int do_maps(void)
{
    fb_task_options opts = {log_stderr, NULL};
    fb_task *task = NULL;
    char err[256], buf[4096];
    size_t n;
    FILE *maps;

    if (fb_task_open(&opts, &task, err, sizeof err) != FB_OK) {
        fprintf(stderr, "auth-check: %s\n", err);
        return 2;
    }
    if (fb_task_require(task, NULL, 0) != FB_OK)
        fb_task_exit(task, FB_EXIT_DENIED);
    maps = fopen("/proc/self/maps", "r");
    while (maps != NULL && (n = fread(buf, 1, sizeof buf, maps)) > 0)
        fwrite(buf, 1, n, stdout);
    if (maps != NULL)
        fclose(maps);
    fflush(stdout);
    fb_task_exit(task, fb_task_done(task) == FB_OK ? 0 : 6);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "fetch") == 0)
        return do_fetch(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "task") == 0)
        return do_task(argc, argv);
    if (argc == 2 && strcmp(argv[1], "maps") == 0)
        return do_maps();
    fprintf(stderr, "usage: fbtest-auth-check fetch|task [NAME...] | maps\n");
    return 2;
}
