/*
 * flowbus-df - free space of the filesystem holding a path (param "path",
 * default "/"), from statvfs(3); no shelling out. Outputs, each set only if
 * the workflow declares it:
 *   MAIN_VOLUME  the volume behind the path, from /proc/self/mountinfo: the
 *                last component of a /dev source ("sda1", "vda", "nvme0n1p2",
 *                "vg0-root" for /dev/mapper/vg0-root), or the source as it is
 *                where it is not a device ("overlay", "tmpfs")
 *   FREE_SPACE   the space available to unprivileged users, like df -h ("12G")
 *   FREE_BYTES   the same in bytes (f_bavail * f_frsize)
 * In reactive mode it measures again on every activation (e.g. each TICK of
 * an `every` task); a failed measurement fails that activation only.
 */
#include "humansize.h"
#include "mountinfo.h"
#include "plugin_main.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

static const struct plugin_info info = {
    .name = "df",
    .manifest = "{\"name\":\"df\",\"description\":\"Free space of the filesystem holding a path\","
                "\"inputs\":[\"TRUE\"],\"outputs\":[\"MAIN_VOLUME\",\"FREE_SPACE\",\"FREE_BYTES\"],"
                "\"params\":{\"path\":{\"type\":\"string\",\"default\":\"/\","
                "\"description\":\"a path on the filesystem\"}},"
                "\"permissions\":[\"can_view_system\"]}",
    .usage = "Outputs MAIN_VOLUME (e.g. sda1), FREE_SPACE (like df -h) and FREE_BYTES\n"
             "for the filesystem holding the param \"path\" (default \"/\").\n",
};

/* When auth is in use (docs/security.md), reading the system's state needs this. */
static const char *const required[] = {"can_view_system"};

/*
 * Reads a whole file whose size stat cannot tell (a /proc file) into a
 * malloc'd buffer. Returns 0 with *out and *len set, or -1 with errno set.
 */
static int read_all(const char *file, char **out, size_t *len)
{
    size_t cap = 16384, used = 0;
    char *buf = malloc(cap), *bigger;
    int fd = -1, rc = -1, saved;
    ssize_t n;

    if (!buf)
        goto out;
    fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        goto out;
    for (;;) {
        if (used == cap) {
            bigger = realloc(buf, cap * 2);
            if (!bigger)
                goto out;
            buf = bigger;
            cap *= 2;
        }
        n = read(fd, buf + used, cap - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto out;
        if (n == 0)
            break;
        used += (size_t)n;
    }
    *out = buf;
    *len = used;
    buf = NULL;
    rc = 0;
out:
    saved = errno;
    free(buf);
    if (fd >= 0)
        close(fd);
    errno = saved;
    return rc;
}

/* Records output name = value if it is declared; returns 0, or -1 after failing the task. */
static int set_declared(fb_task *task, const char *name, const char *value)
{
    enum fb_err rc;

    if (!fb_task_has_output(task, name))
        return 0;
    rc = fb_task_set_output(task, name, value);
    if (rc == FB_OK)
        return 0;
    fb_task_fail(task, 1, "cannot set output %s: %s", name, fb_strerror(rc));
    return -1;
}

/* Measures once and reports done or failed; returns the one-shot exit code. */
static int act(fb_task *task, void *ctx)
{
    struct mountinfo_mount mount = {0};
    struct statvfs vfs;
    char resolved[PATH_MAX], size_text[16], bytes_text[32];
    char *table = NULL;
    size_t table_len = 0;
    const char *path;
    uint64_t avail;
    int code = 1;

    (void)ctx;
    path = fb_task_param(task, "path");
    if (!path || !*path)
        path = "/";
    if (!realpath(path, resolved)) {
        fb_task_fail(task, 1, "cannot resolve path '%s': %s", path, strerror(errno));
        goto out;
    }
    if (statvfs(resolved, &vfs) != 0) {
        fb_task_fail(task, 1, "cannot read the filesystem of '%s': %s", resolved, strerror(errno));
        goto out;
    }
    avail = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
    humansize__format(avail, size_text, sizeof size_text);
    snprintf(bytes_text, sizeof bytes_text, "%" PRIu64, avail);

    if (fb_task_has_output(task, "MAIN_VOLUME")) {
        int found;

        if (read_all("/proc/self/mountinfo", &table, &table_len) != 0) {
            fb_task_fail(task, 1, "cannot read /proc/self/mountinfo: %s", strerror(errno));
            goto out;
        }
        found = mountinfo__lookup(table, table_len, resolved, &mount);
        if (found != 0) {
            fb_task_fail(task, 1, "no mount holding '%s' in /proc/self/mountinfo", resolved);
            goto out;
        }
        if (set_declared(task, "MAIN_VOLUME", mountinfo__volume_name(mount.source)) != 0)
            goto out;
        fb_task_log(task, "%s is on %s (%s, mounted on %s): %s available", resolved, mount.source,
                    mount.fstype, mount.mount_point, size_text);
    } else {
        fb_task_log(task, "%s: %s available", resolved, size_text);
    }
    if (set_declared(task, "FREE_SPACE", size_text) != 0 ||
        set_declared(task, "FREE_BYTES", bytes_text) != 0)
        goto out;
    if (fb_task_done(task) != FB_OK) {
        log_printf(FB_LOG_ERROR, "cannot report done");
        goto out;
    }
    code = 0;
out:
    mountinfo__clear(&mount);
    free(table);
    return code;
}

int main(int argc, char **argv)
{
    static const struct plugin plugin = {
        .info = &info,
        .check_permissions = 1,
        .required = required,
        .n_required = sizeof required / sizeof *required,
        .act = act,
    };

    plugin_main__run(&plugin, argc, argv);
}
