/*
 * plugin_main.c - the shared main() of the built-in task executables (see
 * plugin_main.h).
 */
#include "plugin_main.h"

/* Ends the process with code, after the plugin released what it prepared. */
static FB_NORETURN void finish(const struct plugin *p, fb_task *task, int code)
{
    if (p->finish)
        p->finish(task, p->ctx);
    fb_task_exit(task, code);
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
        plugin_cli__next(task);
        p->act(task, p->ctx);
    }
}
