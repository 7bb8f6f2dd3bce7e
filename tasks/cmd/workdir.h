/*
 * workdir.h - the private directory of one run of the command (one
 * activation in reactive mode), which carries values both ways without the
 * limits and the ambiguity of the environment and of stdout:
 *
 *   <dir>/inputs/NAME  each input's value, whole, as a file (FLOWBUS_INPUTS_DIR)
 *   <dir>/output       where the command writes its outputs (FLOWBUS_OUTPUT,
 *                      the format of outfile.h)
 *   <dir>/owner        the owner record: our pid and its start time, so that
 *                      `flowbus gc` removes a directory left by a killed task
 *                      and never one whose task is alive
 *
 * The directory is $TMPDIR/flowbus-cmd-XXXXXX (or /tmp), mode 0700, its files
 * 0600, made afresh for each run of the command and removed after it.
 * Secret inputs are not written: they reach the command in its environment
 * only, so that a secret never lands on disk.
 */
#ifndef FLOWBUS_TASKS_CMD_WORKDIR_H
#define FLOWBUS_TASKS_CMD_WORKDIR_H

#include <stddef.h>

struct workdir {
    char path[256];    /* empty until created */
    char inputs[300];  /* path/inputs */
    char output[300];  /* path/output */
};

/* Creates the directory, its inputs/ and an empty output file. Returns 0, or -1 with err. */
int workdir__create(struct workdir *w, char *err, size_t errlen);

/* Writes value (len bytes) as inputs/name. Returns 0, or -1 with err. */
int workdir__write_input(const struct workdir *w, const char *name, const char *value, size_t len,
                         char *err, size_t errlen);

/*
 * Reads the output file into a malloc'd *buf (*len bytes, NUL-terminated for
 * convenience) if it is a regular file of at most max bytes. The command may
 * have replaced it: a symlink, a FIFO or a device is refused, never followed
 * nor read. Returns 0, or -1 with err.
 */
int workdir__read_output(const struct workdir *w, size_t max, char **buf, size_t *len, char *err,
                         size_t errlen);

/* Removes the directory and whatever the command left in it; no-op if never created. */
void workdir__remove(struct workdir *w);

#endif
