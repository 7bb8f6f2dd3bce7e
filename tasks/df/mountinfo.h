/*
 * mountinfo.h - finds the mount that holds a path in the text of
 * /proc/self/mountinfo (proc(5)), and names its volume. Pure functions over
 * text so that they are unit-tested without a real mount table.
 */
#ifndef FLOWBUS_TASKS_MOUNTINFO_H
#define FLOWBUS_TASKS_MOUNTINFO_H

#include <stddef.h>

/* The mount found by mountinfo__lookup. Strings are owned; free with mountinfo__clear. */
struct mountinfo_mount {
    char *mount_point; /* unescaped, e.g. "/home" */
    char *fstype;      /* e.g. "ext4", "overlay" */
    char *source;      /* unescaped mount source, e.g. "/dev/sda1", "overlay" */
    unsigned major, minor;
};

/*
 * Finds the mount whose mount point is the longest prefix (by whole path
 * components) of path, which must be absolute and canonical (realpath). Where
 * several mounts share that mount point, the last one listed wins: it is the
 * one on top. Lines that do not parse are skipped. Octal escapes (\040 for a
 * space, \011, \012, \134) in the mount point and source are decoded.
 * Returns 0 and fills *out (the caller frees it with mountinfo__clear), -1 if
 * no mount matches or path is not absolute, -2 when out of memory.
 */
int mountinfo__lookup(const char *text, size_t len, const char *path, struct mountinfo_mount *out);

/* Frees the strings of m and zeroes it. Accepts a zeroed struct. */
void mountinfo__clear(struct mountinfo_mount *m);

/*
 * Decodes the octal escapes \ooo of a mountinfo field in place. A backslash
 * not followed by three octal digits is kept as it is.
 */
void mountinfo__unescape(char *s);

/*
 * The volume name of a mount source, as the df task reports it: for a device
 * path below /dev/ its last path component ("/dev/sda1" -> "sda1",
 * "/dev/mapper/vg0-root" -> "vg0-root", "/dev/nvme0n1p2" -> "nvme0n1p2");
 * anything else as it is ("overlay", "tmpfs", "server:/export").
 * Returns a pointer into source.
 */
const char *mountinfo__volume_name(const char *source);

#endif
