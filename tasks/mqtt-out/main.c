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
#include "plugin_cli.h"

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
        "\"broker\":{\"type\":\"string\",\"default\":null,\"description\":\"another broker's URL "
        "(default: the run's broker)\"},"
        "\"username\":{\"type\":\"string\",\"default\":null,\"description\":\"user name on "
        "another broker\"},"
        "\"password_env\":{\"type\":\"string\",\"default\":null,\"description\":\"environment "
        "variable holding that user's password\"},"
        "\"ca_file\":{\"type\":\"string\",\"default\":null,\"description\":\"CA file for "
        "another broker over TLS\"}},"
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
static int act(fb_task *task, const struct target *t)
{
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

int main(int argc, char **argv)
{
    struct target t = {0};
    const char *retain;
    char err[1024] = "";
    fb_task *task;
    int code;

    plugin_cli__args(&info, argc, argv);
    task = plugin_cli__open();
    t.topic = fb_task_param(task, "topic");
    t.input = fb_task_param(task, "input");
    if (t.input == NULL)
        t.input = fb_task_input_name(task, 0);
    retain = fb_task_param(task, "retain");
    t.qos = mqtt_link__qos(task, 1);
    t.retain = retain != NULL && strcmp(retain, "true") == 0;
    if (t.topic == NULL || *t.topic == '\0' || strpbrk(t.topic, "+#") != NULL) {
        fb_task_fail(task, 1, "the param 'topic' must be a topic name (no wildcards)");
        fb_task_exit(task, 1);
    }
    if (t.input == NULL || fb_task_input_name(task, 0) == NULL) {
        fb_task_fail(task, 1, "declare an input to publish (e.g. VALUE)");
        fb_task_exit(task, 1);
    }
    if (t.qos < 0 || (retain != NULL && strcmp(retain, "true") != 0 &&
                      strcmp(retain, "false") != 0)) {
        fb_task_fail(task, 1, "params: 'qos' must be 0 or 1 and 'retain' true or false");
        fb_task_exit(task, 1);
    }
    t.link = mqtt_link__open(task, err, sizeof err);
    if (t.link == NULL) {
        fb_task_fail(task, 1, "%s", err);
        fb_task_exit(task, 1);
    }
    if (!fb_task_reactive(task)) {
        plugin_cli__wait(task);
        code = act(task, &t);
        fb_bus_close(t.link, 1.0);
        fb_task_exit(task, code);
    }
    for (;;) {
        plugin_cli__next(task);
        act(task, &t);
    }
}
