/*
 * flowbus-start - the task a workflow begins with. It has no inputs and sets
 * each of its declared outputs (by default TRUE) to "1". In reactive mode it
 * emits them once (one activation) and then stays until the run stops it.
 */
#include "plugin_main.h"

static const struct plugin_info info = {
    .name = "start",
    .manifest = "{\"name\":\"start\",\"description\":\"Starts a workflow: sets each declared "
                "output to 1\",\"inputs\":[],\"outputs\":[\"TRUE\"],\"params\":{}}",
    .usage = "Sets each declared output (FLOWBUS_OUTPUTS, usually TRUE) to \"1\".\n",
};

/* A source: sets the outputs once; reactive mode emits them and idles until stopped. */
static int act(fb_task *task, void *ctx)
{
    enum fb_err rc = FB_OK;
    size_t i;

    (void)ctx;
    for (i = 0; i < fb_task_output_count(task) && rc == FB_OK; i++)
        rc = fb_task_set_output(task, fb_task_output_name(task, i), "1");
    if (rc != FB_OK) {
        fb_task_fail(task, 1, "cannot set output %s: %s", fb_task_output_name(task, i - 1),
                     fb_strerror(rc));
        return 1;
    }
    if (fb_task_reactive(task)) {
        rc = fb_task_emit(task);
        if (rc != FB_OK) {
            log_printf(FB_LOG_ERROR, "cannot emit the outputs: %s", fb_strerror(rc));
            return 1;
        }
        plugin_cli__idle(task);
    }
    rc = fb_task_done(task);
    if (rc != FB_OK) {
        log_printf(FB_LOG_ERROR, "cannot report done: %s", fb_strerror(rc));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct plugin plugin = {.info = &info, .source = 1, .act = act};

    plugin_main__run(&plugin, argc, argv);
}
