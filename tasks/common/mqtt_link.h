/*
 * mqtt_link.h - the extra MQTT connection of the mqtt-in and mqtt-out tasks,
 * to the run's own broker or to another one, from the task's params.
 */
#ifndef FLOWBUS_TASKS_MQTT_LINK_H
#define FLOWBUS_TASKS_MQTT_LINK_H

#include <flowbus/flowbus.h>

/*
 * Opens the connection the params describe:
 *   broker        URL (tcp://, mqtt://, mqtts://, ssl://); absent: the run's
 *                 broker (FLOWBUS_BROKER) with the task's credentials and TLS
 *                 files (FLOWBUS_USERNAME, FLOWBUS_PASSWORD, FLOWBUS_TLS_*)
 *   username      for another broker (absent: anonymous)
 *   password_env  the name of an environment variable holding its password;
 *                 a password is never a param ("password" is refused)
 *   ca_file       for another broker over TLS: the CA file (absent: the system's)
 * The connection reconnects for FLOWBUS_RECONNECT_MAX seconds (default 30)
 * after a loss. Returns the bus, or NULL with a one-line reason in err.
 */
fb_bus *mqtt_link__open(fb_task *task, char *err, size_t errlen);

/*
 * The params above as members of a --describe manifest's "params" object
 * (without a comma before or after), for mqtt-in and mqtt-out to describe
 * them alike.
 */
#define MQTT_LINK_PARAMS                                                                           \
    "\"broker\":{\"type\":\"string\",\"default\":null,\"description\":\"another broker's URL "     \
    "(default: the run's broker)\"},"                                                              \
    "\"username\":{\"type\":\"string\",\"default\":null,\"description\":\"user name on "           \
    "another broker\"},"                                                                           \
    "\"password_env\":{\"type\":\"string\",\"default\":null,\"description\":\"environment "        \
    "variable holding that user's password\"},"                                                    \
    "\"ca_file\":{\"type\":\"string\",\"default\":null,\"description\":\"CA file for "             \
    "another broker over TLS\"}"

/* Parses a qos param (absent: def); returns 0 or 1, or -1 if it is not 0 or 1. */
int mqtt_link__qos(fb_task *task, int def);

#endif
