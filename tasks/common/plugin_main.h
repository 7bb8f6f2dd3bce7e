/*
 * plugin_main.h - the one main() of the built-in task executables: the
 * command line, opening the task, waiting for its inputs, the permission
 * check, and then one action (one-shot mode) or one action per activation
 * (reactive mode), with the exit codes of plugin_cli.h. A plugin describes
 * itself in a struct plugin and calls plugin_main__run.
 *
 * The order, which the built-ins rely on:
 *   one-shot:  args, open, prepare, wait, require, act, finish, exit
 *   reactive:  args, open, prepare, require, ready, then for each activation
 *              next and act, until the run stops the task
 *   source:    args, open, prepare, wait, require, act, finish, exit
 * A source (start, every, mqtt-in, touched) emits on its own rather than per
 * activation: it uses the skeleton up to the wait and the permission check,
 * and its act is called once in both modes and runs its own loop in reactive
 * mode (usually ending the process from inside, on stop or failure). The
 * others (cmd, df, end, mqtt-out) use all of it.
 *
 * prepare comes before the wait so that a bad param fails the task at once
 * instead of after its inputs arrived, and so that a source can start
 * watching before it reports running.
 */
#ifndef FLOWBUS_TASKS_PLUGIN_MAIN_H
#define FLOWBUS_TASKS_PLUGIN_MAIN_H

#include "plugin_cli.h"

/* One built-in task executable. Only info and act are required. */
struct plugin {
    const struct plugin_info *info; /* --describe and --help */

    /*
     * 1 to check permissions (plugin_cli__require) before the task acts,
     * with the names required[0..n_required), which the manifest lists too;
     * n_required may be 0 (the workflow's own requirements still apply). 0
     * for a plugin that never calls fb_task_require.
     */
    int check_permissions;
    const char *const *required;
    size_t n_required;

    /* 1 for a source (see above). */
    int source;

    /*
     * Optional: after the task is opened, before the wait (or the first
     * activation): reads the params and prepares. Returns 0, or the exit
     * code after failing the task (fb_task_fail).
     */
    int (*prepare)(fb_task *task, void *ctx);

    /*
     * Optional, reactive mode only: after the permission check, before the
     * first activation, for what is the same for every activation. Returns 0,
     * or the exit code after failing the task.
     */
    int (*ready)(fb_task *task, void *ctx);

    /*
     * What the task does: one activation, on the current inputs (the whole
     * task in one-shot mode). Reports through fb_task_done or fb_task_fail and
     * returns the exit code for one-shot mode (0 after done); in reactive mode
     * a failed activation fails only itself and the return value is not used.
     * It may end the process itself (fb_task_exit).
     */
    int (*act)(fb_task *task, void *ctx);

    /*
     * Optional: releases what prepare made, before every exit the skeleton
     * makes itself after prepare (a failed prepare or ready, or act returned
     * in one-shot mode or for a source). Not called where plugin_cli ends the
     * process (stop, lost broker, denied).
     */
    void (*finish)(fb_task *task, void *ctx);

    /*
     * Optional: a descriptor of the plugin's own that must be served while
     * the skeleton waits for the inputs or the next activation (mqtt-out's
     * second connection: on libmosquitto a bus has no thread, and one left
     * alone for 1.5 keepalives is dropped by its broker), or -1; serve is
     * called each time it is readable. The wait then polls it together with
     * fb_task_fd, in the task's one thread.
     */
    int (*watch_fd)(void *ctx);
    void (*serve)(fb_task *task, void *ctx);

    void *ctx; /* passed to the callbacks */
};

/* Runs the plugin and ends the process; see above for the order. */
FB_NORETURN void plugin_main__run(const struct plugin *plugin, int argc, char **argv);

#endif
