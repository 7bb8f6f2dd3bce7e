/*
 * mqtt_link.c - the extra MQTT connection of mqtt-in and mqtt-out (see
 * mqtt_link.h).
 */
#include "mqtt_link.h"
#include "plugin_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void link_log(void *ctx, enum fb_log_level level, const char *msg)
{
    (void)ctx;
    if (level >= FB_LOG_WARN)
        log_printf(level, "link: %s", msg);
}

int mqtt_link__qos(fb_task *task, int def)
{
    const char *q = fb_task_param(task, "qos");

    if (q == NULL)
        return def;
    if (strcmp(q, "0") == 0 || strcmp(q, "1") == 0)
        return q[0] - '0';
    return -1;
}

fb_bus *mqtt_link__open(fb_task *task, char *err, size_t errlen)
{
    fb_bus_options opts;
    fb_bus *bus = NULL;
    const char *broker = fb_task_param(task, "broker");
    const char *password_env = fb_task_param(task, "password_env");
    const char *reconnect = getenv("FLOWBUS_RECONNECT_MAX");
    char client_id[FB_CLIENT_ID_MAX + 1], prefix[200];
    char why[512] = "";

    if (fb_task_param(task, "password") != NULL) {
        snprintf(err, errlen, "param 'password' refused: a password is never a param; put it in "
                              "an environment variable and name it in 'password_env'");
        return NULL;
    }
    memset(&opts, 0, sizeof opts);
    snprintf(prefix, sizeof prefix, "fb-%s-%s-link", fb_task_run_id(task), fb_task_name(task));
    if (fb_client_id(client_id, sizeof client_id, prefix) != FB_OK) {
        snprintf(err, errlen, "cannot make a client id");
        return NULL;
    }
    opts.client_id = client_id;
    opts.log = link_log;
    opts.reconnect_max_s = reconnect && *reconnect ? atof(reconnect) : 30.0;
    if (broker == NULL || *broker == '\0') {
        /* The run's own broker, as the task itself: its identity, its rights. */
        fb_task_bus_options(task, &opts);
    } else {
        opts.url = broker;
        opts.username = fb_task_param(task, "username");
        opts.ca_file = fb_task_param(task, "ca_file");
        if (password_env != NULL) {
            opts.password = getenv(password_env);
            if (opts.password == NULL) {
                snprintf(err, errlen, "param 'password_env' names %s, which is not set",
                         password_env);
                return NULL;
            }
        }
    }
    if (fb_bus_new(&opts, &bus, why, sizeof why) != FB_OK) {
        snprintf(err, errlen, "cannot connect to %s: %s", opts.url ? opts.url : "(no broker)",
                 why);
        return NULL;
    }
    return bus;
}
