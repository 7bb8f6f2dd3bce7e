/*
 * format.h - how the command-line clients write times, durations, exit
 * details and tables, so that status and logs agree on every column.
 */
#ifndef FLOWBUS_CORE_CLI_FORMAT_H
#define FLOWBUS_CORE_CLI_FORMAT_H

#include <stddef.h>

#include <jansson.h>

#include "view.h"

/* "0.354s", "12.3s", "5m03s", "2h05m", "3d04h", or "-" for a negative s. */
void format__duration(char *buf, size_t len, double s);

/* "2026-01-31 12:00:00" in local time, or "-" for t <= 0. */
void format__local_time(char *buf, size_t len, double t);

/* A task's exit: "signal 9", "3", or "-" when its last state says neither. */
void format__exit(const struct view_task *t, char *buf, size_t len);

/* "12 failed, 3 queued, 1 dropped": a reactive task's last activation, or "-". */
void format__activation(const struct view_task *t, char *buf, size_t len);

/* Prints rows (JSON arrays of strings) with aligned columns; the last column is not padded. */
void format__table(const json_t *rows, const char *indent);

#endif
