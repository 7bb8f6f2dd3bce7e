/*
 * plugin_cli.h - what every built-in task executable does the same way: its
 * command line (--describe, --help, --version), its stderr log, and opening
 * and waiting for its task on the bus with the exit codes the tasks share.
 *
 * Exit codes shared by the built-in tasks: 0 done (or told to stop while
 * waiting), 1 the action failed, 2 usage error or the task could not be
 * opened, 3 the wait for inputs ended with an error (broker lost, ...),
 * 77 (FB_EXIT_DENIED, flowbus/protocol.h) the permission check refused the task.
 *
 * plugin_main.h builds the built-ins' one main() on these steps.
 */
#ifndef FLOWBUS_TASKS_PLUGIN_CLI_H
#define FLOWBUS_TASKS_PLUGIN_CLI_H

#include <flowbus/flowbus.h>

/* The exit codes of the steps below, besides 0 and FB_EXIT_DENIED (see above). */
enum plugin_exit {
    PLUGIN_EXIT_USAGE = 2, /* a usage error, or the task could not be opened */
    PLUGIN_EXIT_LOST = 3,  /* waiting for or following the run failed (broker lost, ...) */
};

/* Describes one plugin executable for plugin_cli__args. */
struct plugin_info {
    const char *name;     /* plugin name without the "flowbus-" prefix */
    const char *manifest; /* the --describe JSON object, one line */
    const char *usage;    /* --help text after the "usage:" line */
};

/*
 * Writes one line "flowbus-<name>: <level>: message" to stderr; the coordinator
 * forwards task stderr lines to the task's log topic. Thread-safe (one fprintf).
 */
void log_printf(enum fb_log_level level, const char *fmt, ...) FB_PRINTF(2, 3);

/*
 * Handles the command line. Returns only when the task should run: for
 * --describe, --help and --version it prints and exits 0, for anything else
 * unknown it prints the usage to stderr and exits 2.
 */
void plugin_cli__args(const struct plugin_info *info, int argc, char **argv);

/*
 * Opens the task from the environment. Returns it; does not return if
 * opening failed (exit 2, the reason on stderr).
 */
fb_task *plugin_cli__open(void);

/*
 * Waits (without a deadline) until the task's inputs and dependencies are
 * ready. Returns the running task. Does not return if the run stopped the
 * task (exit 0) or if the wait failed otherwise (exit 3); the reason goes to
 * stderr.
 */
fb_task *plugin_cli__wait(fb_task *task);

/*
 * The permission check before the task acts (fb_task_require with the
 * plugin's own required names, which its --describe manifest lists too).
 * Returns if the task may act. Otherwise the SDK has published the state
 * FB_STATE_DENIED with the reason (and logged it to stderr); this exits with
 * FB_EXIT_DENIED.
 */
void plugin_cli__require(fb_task *task, const char *const *names, size_t n);

/*
 * Reactive mode: waits for the next activation (fb_task_next). Returns when
 * there is one. Does not return if the run stopped the task (exit 0) or the
 * wait failed (exit 3).
 */
void plugin_cli__next(fb_task *task);

/*
 * Reactive mode: processes what is waiting on the task's connection
 * (fb_task_poll). Does not return if the run stopped the task (exit 0) or
 * the broker is gone for good (exit 3).
 */
void plugin_cli__poll(fb_task *task);

/*
 * Reactive mode, for a source that has nothing more to emit: follows the
 * control topic until the run stops the task (exit 0) or the broker is gone
 * (exit 3). Never returns.
 */
FB_NORETURN void plugin_cli__idle(fb_task *task);

#endif
