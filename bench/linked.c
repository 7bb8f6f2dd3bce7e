/*
 * fbbench-linked - does nothing, linked exactly as a task plugin is (with
 * libflowbus and, through it, the MQTT library of the build and what that
 * loads: on libmosquitto libssl and libcrypto). The driver's task CPU figure
 * uses it to split a task's CPU into loading those libraries and the task's
 * life on the bus (bench/driver.py, task_cpu).
 */
#include <stdio.h>

#include "flowbus/flowbus.h"

int main(void)
{
    /* A call into the SDK, so the link keeps it (and every library it needs). */
    return fb_version()[0] == '\0';
}
