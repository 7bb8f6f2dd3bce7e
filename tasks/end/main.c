/*
 * flowbus-end - the task a workflow ends with. It waits for its inputs (by
 * default TRUE), logs each of them and reports done: reaching it is what "the
 * workflow completed" means. Secret inputs (FLOWBUS_SECRETS) are logged as
 * "<secret>", never by value. In reactive mode it does so for each activation,
 * prefixed with the activation number and the input that fired it.
 */
#include "plugin_cli.h"

#include <stdlib.h>
#include <string.h>

static const struct plugin_info info = {
    .name = "end",
    .manifest = "{\"name\":\"end\",\"description\":\"Ends a workflow: consumes and logs its "
                "inputs\",\"inputs\":[\"TRUE\"],\"outputs\":[],\"params\":{}}",
    .usage = "Waits for its inputs (FLOWBUS_INPUTS, usually TRUE), logs them and reports done.\n",
};

/* Returns 1 if name is listed in the comma-separated FLOWBUS_SECRETS. */
static int is_secret(const char *name)
{
    const char *list = getenv("FLOWBUS_SECRETS");
    size_t n = strlen(name);

    while (list && *list) {
        const char *comma = strchr(list, ',');
        size_t len = comma ? (size_t)(comma - list) : strlen(list);

        if (len == n && strncmp(list, name, n) == 0)
            return 1;
        list = comma ? comma + 1 : NULL;
    }
    return 0;
}

/* Logs every input (secrets by name only): reaching end is what the run produced. */
static void log_inputs(fb_task *task)
{
    for (size_t i = 0; i < fb_task_input_count(task); i++) {
        const char *name = fb_task_input_name(task, i);
        const char *value = fb_task_input(task, name);

        if (is_secret(name))
            fb_task_log(task, "%s=<secret>", name);
        else
            fb_task_log(task, "%s=%s", name, value ? value : "");
    }
}

int main(int argc, char **argv)
{
    fb_task *task;
    enum fb_err rc;

    plugin_cli__args(&info, argc, argv);
    task = plugin_cli__open();
    if (fb_task_reactive(task)) {
        for (;;) {
            plugin_cli__next(task);
            fb_task_log(task, "activation %lu (%s)", fb_task_activation(task),
                        fb_task_trigger(task) ? fb_task_trigger(task) : "start");
            log_inputs(task);
            rc = fb_task_done(task);
            if (rc != FB_OK) {
                log_printf(FB_LOG_ERROR, "cannot report the activation: %s", fb_strerror(rc));
                fb_task_exit(task, 1);
            }
        }
    }
    plugin_cli__wait(task);
    log_inputs(task);
    rc = fb_task_done(task);
    if (rc != FB_OK) {
        log_printf(FB_LOG_ERROR, "cannot report done: %s", fb_strerror(rc));
        fb_task_exit(task, 1);
    }
    fb_task_exit(task, 0);
}
