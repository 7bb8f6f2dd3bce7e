/*
 * flowbus-end - the task a workflow ends with. It waits for its inputs (by
 * default TRUE), logs each of them and reports done: reaching it is what "the
 * workflow completed" means. Secret inputs (FLOWBUS_SECRETS) are logged as
 * "<secret>", never by value. In reactive mode it does so for each activation,
 * prefixed with the activation number and the input that fired it.
 */
#include "plugin_main.h"

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

/*
 * Logs the inputs and reports done (the task, or one activation). A done
 * that cannot be reported ends the task with 1 in reactive mode too: the end
 * of a workflow that cannot say it was reached has nothing left to do.
 */
static int act(fb_task *task, void *ctx)
{
    int reactive = fb_task_reactive(task);
    enum fb_err rc;

    (void)ctx;
    if (reactive)
        fb_task_log(task, "activation %lu (%s)", fb_task_activation(task),
                    fb_task_trigger(task) ? fb_task_trigger(task) : "start");
    log_inputs(task);
    rc = fb_task_done(task);
    if (rc != FB_OK) {
        if (reactive)
            log_printf(FB_LOG_ERROR, "cannot report the activation: %s", fb_strerror(rc));
        else
            log_printf(FB_LOG_ERROR, "cannot report done: %s", fb_strerror(rc));
        fb_task_exit(task, 1);
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct plugin plugin = {.info = &info, .act = act};

    plugin_main__run(&plugin, argc, argv);
}
