/*
 * flowbus-benchrelay - a reactive pass-through task, for the reactive
 * throughput benchmark: every activation copies its first input to its first
 * output (QoS 1, confirmed before the activation ends), as fast as the SDK
 * allows. Not a built-in: it only exists in build trees with benchmarks.
 */
#include <stdio.h>
#include <string.h>

#include "flowbus/flowbus.h"

int main(int argc, char **argv)
{
    char err[256];
    fb_task *task = NULL;
    enum fb_err rc;

    /* Internal: the editor's palette leaves this benchmark program out. */
    if (argc == 2 && strcmp(argv[1], "--describe") == 0) {
        puts("{\"name\":\"benchrelay\",\"description\":\"The throughput benchmark's "
             "pass-through task (bench/relay.c)\",\"inputs\":[\"IN\"],\"outputs\":[\"OUT\"],"
             "\"params\":{},\"internal\":true}");
        return 0;
    }

    if (fb_task_open(NULL, &task, err, sizeof err) != FB_OK) {
        fprintf(stderr, "flowbus-benchrelay: %s\n", err);
        return 2;
    }
    if (!fb_task_reactive(task) || fb_task_input_count(task) < 1 ||
        fb_task_output_count(task) < 1) {
        fb_task_fail(task, 2, "flowbus-benchrelay runs reactively, with one input and one output");
        fb_task_exit(task, 2);
    }
    while ((rc = fb_task_next(task, -1)) == FB_OK) {
        const char *value = fb_task_input(task, fb_task_input_name(task, 0));
        if (fb_task_set_output(task, fb_task_output_name(task, 0), value ? value : "") != FB_OK ||
            fb_task_done(task) != FB_OK)
            fb_task_exit(task, 1);
    }
    fb_task_exit(task, rc == FB_ERR_STOPPED ? 0 : 1);
}
