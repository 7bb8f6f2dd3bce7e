/*
 * tmpdirs.h - the temporary directories flowbus processes make under $TMPDIR
 * (or /tmp), and removing those whose owner is gone.
 *
 * A run's private directory (flowbus-run-*: the permission cache), its
 * private broker's (flowbus-broker-*: the hashed passwords, the ACL, the
 * broker's store) and a cmd task's per-command directory (flowbus-cmd-*:
 * input values, the output file) are removed by their owner when it ends.
 * An owner killed with SIGKILL cannot: so each directory holds an owner
 * record, the file "owner" with two lines
 *     pid <PID>
 *     start <START>
 * where START is the process's start time in clock ticks since boot (field
 * 22 of /proc/<PID>/stat). The pid and the start time together name one
 * process: a pid reused since by another process does not keep a dead
 * owner's directory, and a live owner's directory is never removed. The next
 * `flowbus run`/`up`/`resume` and `flowbus gc` sweep them.
 */
#ifndef FLOWBUS_CORE_TMPDIRS_H
#define FLOWBUS_CORE_TMPDIRS_H

#include <stddef.h>

/*
 * A directory without an owner record (made by a flowbus before owner
 * records, or by an owner killed between making it and writing the record)
 * unchanged for this long (seconds) is a leftover too, for `flowbus gc` only:
 * the sweep at a run's start leaves it, as it cannot tell a live owner of an
 * older version from a dead one.
 */
#define TMPDIRS_UNCLAIMED_AGE 86400

/* The directory flowbus makes its temporary directories in: $TMPDIR if usable, else /tmp. */
const char *tmpdirs__root(void);

/* Writes dir/owner naming this process. Returns 1, or 0 with errno set. */
int tmpdirs__claim(const char *dir);

/*
 * 1 if the owner record of dir names a process that is alive (or cannot be
 * checked: kept to be safe), 0 if it is gone; -1 if dir has no readable
 * record.
 */
int tmpdirs__owner_alive(const char *dir);

/* Called for each directory removed, with its path and the pid its record named (0: none). */
typedef void (*tmpdirs_fn)(void *ctx, const char *path, long pid);

/*
 * Removes every flowbus-run-*, flowbus-broker-* and flowbus-cmd-* directory
 * under root that belongs to this user, is a real directory (not a symlink),
 * and whose owner is gone; with unclaimed_too, also those without a record
 * unchanged for TMPDIRS_UNCLAIMED_AGE. Returns how many were removed.
 */
size_t tmpdirs__sweep(const char *root, int unclaimed_too, tmpdirs_fn each, void *ctx);

#endif
