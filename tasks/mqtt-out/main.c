/*
 * flowbus-mqtt-out - publishes a variable to any MQTT topic: on each
 * activation (once in one-shot mode) the value of the input named by the
 * param "input" (default: the task's first input) goes to the param "topic",
 * with "retain" (default false) and "qos" (0 or 1, default 1; QoS 1 is
 * confirmed by the broker before the activation is done). The broker is the
 * run's own (with the task's credentials) unless the param "broker" names
 * another (see mqtt_link.h). The value is sent as it is: the empty string is
 * a zero-length payload (which, retained, clears the topic's retained
 * message, as MQTT defines).
 */
#include "mqtt_link.h"
#include "plugin_main.h"

#include <stdio.h>
#include <string.h>

static const struct plugin_info info = {
    .name = "mqtt-out",
    .manifest =
        "{\"name\":\"mqtt-out\",\"description\":\"Publishes an input variable to an MQTT "
        "topic\",\"inputs\":[\"VALUE\"],\"outputs\":[],\"params\":{"
        "\"topic\":{\"type\":\"string\",\"default\":null,\"required\":true,\"description\":"
        "\"the topic to publish to\"},"
        "\"input\":{\"type\":\"string\",\"default\":null,\"description\":\"the input to publish "
        "(default: the first)\"},"
        "\"retain\":{\"type\":\"boolean\",\"default\":false,\"description\":\"publish retained\"},"
        "\"qos\":{\"type\":\"integer\",\"default\":1,\"description\":\"0 or 1\"},"
        MQTT_LINK_PARAMS "},"
        "\"permissions\":[]}",
    .usage = "Publishes its input (param \"input\", default the first) to the param \"topic\"\n"
             "on each activation, with params \"retain\" and \"qos\", on the run's broker or\n"
             "the param \"broker\".\n",
};

struct target {
    fb_bus *link;
    const char *topic;
    const char *input;
    int qos;
    int retain;
};

/* Publishes the input once and reports the activation (or the task) done or failed. */
static int act(fb_task *task, void *ctx)
{
    const struct target *t = ctx;
    const char *value = fb_task_input(task, t->input);
    enum fb_err rc;

    if (value == NULL) {
        fb_task_fail(task, 1, "input %s has no value", t->input);
        return 1;
    }
    rc = fb_bus_publish(t->link, t->topic, value, strlen(value), t->qos, t->retain, 0);
    if (rc == FB_OK && t->qos == 1)
        rc = fb_bus_flush(t->link, 10.0);
    if (rc != FB_OK) {
        fb_task_fail(task, 1, "publish to %s failed: %s", t->topic, fb_strerror(rc));
        return 1;
    }
    if (fb_task_done(task) != FB_OK) {
        log_printf(FB_LOG_ERROR, "cannot report done");
        return 1;
    }
    return 0;
}

/* Reads and checks the params, then connects (before the wait, so a bad broker fails at once). */
static int prepare(fb_task *task, void *ctx)
{
    struct target *t = ctx;
    const char *retain;
    char err[1024] = "";

    t->topic = fb_task_param(task, "topic");
    t->input = fb_task_param(task, "input");
    if (t->input == NULL)
        t->input = fb_task_input_name(task, 0);
    retain = fb_task_param(task, "retain");
    t->qos = mqtt_link__qos(task, 1);
    t->retain = retain != NULL && strcmp(retain, "true") == 0;
    if (t->topic == NULL || *t->topic == '\0' || strpbrk(t->topic, "+#") != NULL) {
        fb_task_fail(task, 1, "the param 'topic' must be a topic name (no wildcards)");
        return 1;
    }
    if (t->input == NULL || fb_task_input_name(task, 0) == NULL) {
        fb_task_fail(task, 1, "declare an input to publish (e.g. VALUE)");
        return 1;
    }
    if (t->qos < 0 ||
        (retain != NULL && strcmp(retain, "true") != 0 && strcmp(retain, "false") != 0)) {
        fb_task_fail(task, 1, "params: 'qos' must be 0 or 1 and 'retain' true or false");
        return 1;
    }
    t->link = mqtt_link__open(task, err, sizeof err);
    if (t->link == NULL) {
        fb_task_fail(task, 1, "%s", err);
        return 1;
    }
    return 0;
}

/* The link's descriptor, served while the task waits (plugin_main.h). */
static int link_fd(void *ctx)
{
    const struct target *t = ctx;

    return t->link ? fb_bus_fd(t->link) : -1;
}

/* Does the link's own work (keepalive, acknowledgements); it subscribes to nothing. */
static void serve_link(fb_task *task, void *ctx)
{
    const struct target *t = ctx;
    fb_msg *msg = NULL;

    (void)task;
    while (fb_bus_next(t->link, 0, &msg) == FB_OK)
        fb_msg_free(msg);
}

/* One-shot mode: disconnects cleanly once the value is published. */
static void finish(fb_task *task, void *ctx)
{
    const struct target *t = ctx;

    (void)task;
    if (t->link)
        fb_bus_close(t->link, 1.0);
}

int main(int argc, char **argv)
{
    static struct target target;
    static const struct plugin plugin = {
        .info = &info, .prepare = prepare, .act = act, .finish = finish,
        .watch_fd = link_fd, .serve = serve_link, .ctx = &target};

    plugin_main__run(&plugin, argc, argv);
}
