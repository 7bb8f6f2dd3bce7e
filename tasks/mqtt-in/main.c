/*
 * flowbus-mqtt-in - brings messages of any MQTT topic into the flow: each
 * message on the param "topic" (a filter: "sensors/+/temp") becomes the value
 * of the task's first declared output other than TOPIC (by default VALUE),
 * and its topic the value of TOPIC if that is declared. The broker is the
 * run's own (with the task's credentials) unless the param "broker" names
 * another (see mqtt_link.h for username, password_env, ca_file). The
 * subscription is at QoS 1 (qos 0 is accepted: the broker then sends at the
 * publisher's QoS, at most 1). Retained messages present when it subscribes
 * count as messages. A payload holding a NUL byte is not text: it is logged
 * and skipped.
 *
 * One-shot mode: the first message, then done. Reactive mode: a source that
 * emits every message until the run stops it; while the run is paused,
 * messages wait on the connection and come in order on resume.
 */
#include "mqtt_link.h"
#include "plugin_main.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

static const struct plugin_info info = {
    .name = "mqtt-in",
    .manifest = "{\"name\":\"mqtt-in\",\"description\":\"Emits each message of an MQTT topic as a "
                "variable\",\"inputs\":[],\"outputs\":[\"VALUE\",\"TOPIC\"],\"params\":{"
                "\"topic\":{\"type\":\"string\",\"default\":null,\"required\":true,\"description\":"
                "\"a topic or filter, e.g. sensors/+/temp\"}," MQTT_LINK_PARAMS ","
                "\"qos\":{\"type\":\"integer\",\"default\":1,\"description\":\"0 or 1\"}},"
                "\"permissions\":[]}",
    .usage = "Emits each message on the param \"topic\" (a filter) as its first declared\n"
             "output (usually VALUE) and its topic as TOPIC, from the run's broker or the\n"
             "param \"broker\". One-shot mode: the first message only.\n",
};

/* The output that receives the payload: the first declared one other than TOPIC. */
static const char *value_output(fb_task *task)
{
    size_t i;

    for (i = 0; i < fb_task_output_count(task); i++)
        if (strcmp(fb_task_output_name(task, i), "TOPIC") != 0)
            return fb_task_output_name(task, i);
    return NULL;
}

/* What to listen to, from the params. */
struct source {
    const char *topic; /* the filter */
    const char *out;   /* the output for the payload */
};

/* Reads and checks the params before the wait. */
static int prepare(fb_task *task, void *ctx)
{
    struct source *src = ctx;

    src->topic = fb_task_param(task, "topic");
    src->out = value_output(task);
    if (src->topic == NULL || *src->topic == '\0') {
        fb_task_fail(task, 1, "the param 'topic' is required (a topic or filter)");
        return 1;
    }
    if (src->out == NULL) {
        fb_task_fail(task, 1, "declare an output for the message (e.g. VALUE)");
        return 1;
    }
    if (mqtt_link__qos(task, 1) < 0) {
        fb_task_fail(task, 1, "param 'qos' is '%s'; expected 0 or 1", fb_task_param(task, "qos"));
        return 1;
    }
    return 0;
}

/*
 * Once the task runs: connects, subscribes and turns messages into outputs,
 * the first only (one-shot mode) or each of them until the run stops the task.
 */
static int act(fb_task *task, void *ctx)
{
    const struct source *src = ctx;
    const char *topic = src->topic, *out = src->out;
    char err[1024] = "";
    fb_bus *link;
    enum fb_err rc;
    /* held: the link is held for a pause; serve: and its fd stays in the poll (libmosquitto). */
    int held = 0, serve = 0;

    link = mqtt_link__open(task, err, sizeof err);
    if (link == NULL) {
        fb_task_fail(task, 1, "%s", err);
        return 1;
    }
    rc = fb_bus_subscribe(link, &topic, 1, 10.0);
    if (rc != FB_OK) {
        fb_task_fail(task, 1, "cannot subscribe to '%s': %s", topic, fb_strerror(rc));
        return 1;
    }
    fb_task_log(task, "listening on %s", topic);
    for (;;) {
        /*
         * While paused no message is taken: they wait, in order, in the bus
         * and upstream. The link is held, not left alone: on libmosquitto it
         * has no thread, and its keepalive is served from this poll
         * (fb_bus_serve); on Paho (fb_bus_hold says 0) its fd leaves the poll.
         */
        int paused = fb_task_paused(task);
        struct pollfd pfd[2] = {{.fd = fb_task_fd(task), .events = POLLIN},
                                {.fd = fb_bus_fd(link), .events = POLLIN}};
        nfds_t n;
        fb_msg *msg;

        if (paused != held) {
            serve = paused && fb_bus_hold(link, 1);
            if (!paused)
                fb_bus_hold(link, 0);
            held = paused;
        }
        n = paused && !serve ? 1 : 2;
        if (poll(pfd, n, 1000) < 0 && errno != EINTR) {
            fb_task_fail(task, 1, "poll: %s", strerror(errno));
            return 1;
        }
        if (serve && pfd[1].revents && fb_bus_serve(link) == FB_ERR_LOST) {
            fb_task_fail(task, 1, "the connection for '%s' is gone", topic);
            return 1;
        }
        plugin_cli__poll(task);
        if (fb_task_paused(task))
            continue;
        rc = fb_bus_next(link, 0, &msg);
        if (rc == FB_ERR_TIMEOUT)
            continue;
        if (rc != FB_OK) {
            fb_task_fail(task, 1, "the connection for '%s' is gone: %s", topic, fb_strerror(rc));
            return 1;
        }
        if (strlen(msg->payload) != msg->len) {
            fb_task_log(task, "message on %s skipped: its payload is not text (NUL byte)",
                        msg->topic);
            fb_msg_free(msg);
            continue;
        }
        rc = fb_task_set_output(task, out, msg->payload);
        if (rc == FB_OK && fb_task_has_output(task, "TOPIC"))
            rc = fb_task_set_output(task, "TOPIC", msg->topic);
        fb_msg_free(msg);
        if (rc == FB_ERR_TOO_LARGE) {
            fb_task_log(task, "message skipped: larger than the value limit");
            continue;
        }
        if (rc == FB_OK && !fb_task_reactive(task)) {
            rc = fb_task_done(task);
            fb_bus_close(link, 1.0);
            return rc == FB_OK ? 0 : 1;
        }
        if (rc == FB_OK)
            rc = fb_task_emit(task);
        if (rc != FB_OK) {
            log_printf(FB_LOG_ERROR, "cannot emit the message: %s", fb_strerror(rc));
            return 1;
        }
    }
}

int main(int argc, char **argv)
{
    static struct source source;
    static const struct plugin plugin = {
        .info = &info, .source = 1, .prepare = prepare, .act = act, .ctx = &source};

    plugin_main__run(&plugin, argc, argv);
}
