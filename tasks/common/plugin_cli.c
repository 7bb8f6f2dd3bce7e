/*
 * plugin_cli.c - the command line, stderr log and open/wait steps shared by
 * the built-in task executables (see plugin_cli.h).
 */
#include "plugin_cli.h"

#include <flowbus/protocol.h>

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Set by plugin_cli__args so that log lines name the executable. */
static const char *plugin_name = "task";

void log_printf(enum fb_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warning", "error"};
    char line[4096];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    /* One fprintf per line so lines from SDK threads never interleave mid-line. */
    fprintf(stderr, "flowbus-%s: %s: %s\n", plugin_name, (unsigned)level < 4 ? names[level] : "log",
            line);
}

/* The SDK's diagnostics go to the same stderr log; debug chatter is dropped. */
static void sdk_log(void *ctx, enum fb_log_level level, const char *msg)
{
    (void)ctx;
    if (level >= FB_LOG_WARN)
        log_printf(level, "%s", msg);
}

void plugin_cli__args(const struct plugin_info *info, int argc, char **argv)
{
    plugin_name = info->name;
    if (argc < 2)
        return;
    if (argc == 2 && strcmp(argv[1], "--describe") == 0) {
        printf("%s\n", info->manifest);
    } else if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: flowbus-%s [--describe | --help | --version]\n%s", info->name, info->usage);
    } else if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("flowbus-%s %s\n", info->name, fb_version());
    } else {
        fprintf(stderr,
                "usage: flowbus-%s [--describe | --help | --version]\n"
                "flowbus-%s is started by flowbus with its task in FLOWBUS_* variables.\n",
                info->name, info->name);
        fflush(stdout);
        fb_task_exit(NULL, PLUGIN_EXIT_USAGE);
    }
    fflush(stdout);
    fb_task_exit(NULL, 0);
}

fb_task *plugin_cli__open(void)
{
    fb_task_options opts = {.log = sdk_log, .log_ctx = NULL};
    fb_task *task = NULL;
    char err[512] = "";
    enum fb_err rc;

    rc = fb_task_open(&opts, &task, err, sizeof err);
    if (rc != FB_OK) {
        log_printf(FB_LOG_ERROR, "cannot open the task: %s", err[0] ? err : fb_strerror(rc));
        fb_task_exit(NULL, PLUGIN_EXIT_USAGE);
    }
    return task;
}

fb_task *plugin_cli__wait(fb_task *task)
{
    enum fb_err rc = fb_task_wait(task, -1);

    if (rc == FB_ERR_STOPPED)
        fb_task_exit(task, 0);
    if (rc != FB_OK) {
        log_printf(FB_LOG_ERROR, "waiting for inputs failed: %s", fb_strerror(rc));
        fb_task_exit(task, PLUGIN_EXIT_LOST);
    }
    return task;
}

void plugin_cli__require(fb_task *task, const char *const *names, size_t n)
{
    /* Every answer but FB_OK means "do not act"; the reason is in the state and on stderr. */
    if (fb_task_require(task, names, n) != FB_OK)
        fb_task_exit(task, FB_EXIT_DENIED);
}

void plugin_cli__next(fb_task *task)
{
    enum fb_err rc = fb_task_next(task, -1);

    if (rc == FB_ERR_STOPPED)
        fb_task_exit(task, 0);
    if (rc != FB_OK) {
        log_printf(FB_LOG_ERROR, "waiting for the next activation failed: %s", fb_strerror(rc));
        fb_task_exit(task, PLUGIN_EXIT_LOST);
    }
}

void plugin_cli__poll(fb_task *task)
{
    enum fb_err rc = fb_task_poll(task);

    if (rc == FB_ERR_STOPPED)
        fb_task_exit(task, 0);
    if (rc != FB_OK) {
        log_printf(FB_LOG_ERROR, "following the run failed: %s", fb_strerror(rc));
        fb_task_exit(task, PLUGIN_EXIT_LOST);
    }
}

void plugin_cli__idle(fb_task *task)
{
    for (;;) {
        struct pollfd pfd = {.fd = fb_task_fd(task), .events = POLLIN};

        if (poll(&pfd, 1, 1000) < 0 && errno != EINTR) {
            log_printf(FB_LOG_ERROR, "poll failed: %s", strerror(errno));
            fb_task_exit(task, PLUGIN_EXIT_LOST);
        }
        plugin_cli__poll(task);
    }
}
