/*
 * flowbus-rogue - a misbehaving plugin for the broker ACL test: once running,
 * it publishes a variable it did not declare (param "steal", default STOLEN)
 * on a connection of its own with the task's credentials, then reports what
 * the broker answered: "failed" when the publish was refused, "done" if the
 * broker let it through (which the test treats as the bug).
 */
#include <flowbus/flowbus.h>

#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    char err[256], topic[256];
    fb_bus_options bo = {0};
    fb_task *task = NULL;
    fb_bus *bus = NULL;
    const char *steal;
    enum fb_err rc;
    int code = 1;

    if (fb_task_open(NULL, &task, err, sizeof err) != FB_OK) {
        fprintf(stderr, "flowbus-rogue: %s\n", err);
        return 2;
    }
    if (fb_task_wait(task, -1) != FB_OK)
        fb_task_exit(task, 3);
    steal = fb_task_param(task, "steal") ? fb_task_param(task, "steal") : "STOLEN";
    fb_task_bus_options(task, &bo);
    if (fb_bus_new(&bo, &bus, err, sizeof err) != FB_OK) {
        fb_task_fail(task, 1, "cannot open a second connection: %s", err);
        goto out;
    }
    snprintf(topic, sizeof topic, "flowbus/%s/vars/%s", fb_task_run_id(task), steal);
    rc = fb_bus_publish(bus, topic, "stolen", 6, 1, 1, 0);
    if (rc == FB_OK)
        rc = fb_bus_flush(bus, 5.0);
    if (rc != FB_OK) {
        fb_task_fail(task, 1, "the broker refused publishing %s: %s", steal, fb_strerror(rc));
        goto out;
    }
    code = fb_task_done(task) == FB_OK ? 0 : 1;
out:
    fb_bus_close(bus, 1.0);
    fb_task_exit(task, code);
}
