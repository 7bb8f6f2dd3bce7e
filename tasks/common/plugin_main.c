/*
 * plugin_main.c - the shared main() of the built-in task executables (see
 * plugin_main.h).
 */
#include "plugin_main.h"

#include <errno.h>
#include <poll.h>
#include <string.h>

/* Ends the process with code, after the plugin released what it prepared. */
static FB_NORETURN void finish(const struct plugin *p, fb_task *task, int code)
{
    if (p->finish)
        p->finish(task, p->ctx);
    fb_task_exit(task, code);
}

/*
 * Waits for the inputs (one-shot, or a source) or the next activation as
 * plugin_cli__wait and plugin_cli__next do, serving the plugin's own
 * descriptor meanwhile: the SDK's calls are made with a zero timeout when
 * fb_task_fd is readable (and at least every second, as their own waits do).
 */
static void wait_serving(const struct plugin *p, fb_task *task, int next)
{
    for (;;) {
        struct pollfd pfd[2] = {{.fd = fb_task_fd(task), .events = POLLIN},
                                {.fd = p->watch_fd(p->ctx), .events = POLLIN}};
        enum fb_err rc = next ? fb_task_next(task, 0) : fb_task_wait(task, 0);

        if (rc != FB_ERR_TIMEOUT) {
            if (rc == FB_ERR_STOPPED)
                fb_task_exit(task, 0);
            if (rc != FB_OK) {
                log_printf(FB_LOG_ERROR, "%s failed: %s",
                           next ? "waiting for the next activation" : "waiting for inputs",
                           fb_strerror(rc));
                fb_task_exit(task, PLUGIN_EXIT_LOST);
            }
            return;
        }
        if (poll(pfd, 2, 1000) < 0 && errno != EINTR) {
            log_printf(FB_LOG_ERROR, "poll failed: %s", strerror(errno));
            fb_task_exit(task, PLUGIN_EXIT_LOST);
        }
        if (pfd[1].revents)
            p->serve(task, p->ctx);
    }
}

void plugin_main__run(const struct plugin *p, int argc, char **argv)
{
    fb_task *task;
    int code;

    plugin_cli__args(p->info, argc, argv);
    task = plugin_cli__open();
    if (p->prepare && (code = p->prepare(task, p->ctx)) != 0)
        finish(p, task, code);
    if (p->source || !fb_task_reactive(task)) {
        if (p->watch_fd)
            wait_serving(p, task, 0);
        else
            plugin_cli__wait(task);
        if (p->check_permissions)
            plugin_cli__require(task, p->required, p->n_required);
        finish(p, task, p->act(task, p->ctx));
    }
    /*
     * Reactive mode: the permission check and whatever ready checks are the
     * same for every activation, so they are done once; a refusal or a bad
     * param ends the task (not an activation) before any event is taken.
     */
    if (p->check_permissions)
        plugin_cli__require(task, p->required, p->n_required);
    if (p->ready && (code = p->ready(task, p->ctx)) != 0)
        finish(p, task, code);
    for (;;) {
        if (p->watch_fd)
            wait_serving(p, task, 1);
        else
            plugin_cli__next(task);
        p->act(task, p->ctx);
    }
}
