/*
 * workdir.c - the private directory of one run of the command (see workdir.h).
 */
#define _GNU_SOURCE /* O_NOFOLLOW, nftw's FTW_ACTIONRETVAL-free use with FTW_PHYS */

#include "workdir.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * The start time of this process in clock ticks since boot (field 22 of
 * /proc/self/stat), which with the pid names a process uniquely: a pid alone
 * may have been reused by the time `flowbus gc` looks. 0 if unknown.
 */
static unsigned long long own_start_time(void)
{
    char buf[1024], *p;
    unsigned long long start = 0;
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    int field;

    if (f)
        fclose(f);
    buf[n] = '\0';
    /* The command name (field 2) may hold spaces and ')': count from the last ')'. */
    p = strrchr(buf, ')');
    for (field = 2; p && field < 22; field++)
        p = strchr(p + 1, ' ');
    if (p)
        start = strtoull(p + 1, NULL, 10);
    return start;
}

/* Writes text to path (a new file, mode 0600). Returns 0 or an errno value. */
static int write_file(const char *path, const char *text, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    int rc = 0;

    if (fd < 0)
        return errno;
    while (len > 0) {
        ssize_t n = write(fd, text, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = errno;
            break;
        }
        text += n;
        len -= (size_t)n;
    }
    if (close(fd) != 0 && rc == 0)
        rc = errno;
    return rc;
}

int workdir__create(struct workdir *w, char *err, size_t errlen)
{
    const char *tmp = getenv("TMPDIR");
    char owner[300], record[96];
    int rc;

    memset(w, 0, sizeof *w);
    if (!tmp || !*tmp || strlen(tmp) > sizeof w->path - 24)
        tmp = "/tmp";
    snprintf(w->path, sizeof w->path, "%s/flowbus-cmd-XXXXXX", tmp);
    if (!mkdtemp(w->path)) {
        snprintf(err, errlen, "cannot create the command's directory in %s: %s", tmp,
                 strerror(errno));
        w->path[0] = '\0';
        return -1;
    }
    snprintf(owner, sizeof owner, "%s/owner", w->path);
    snprintf(record, sizeof record, "pid %ld\nstart %llu\n", (long)getpid(), own_start_time());
    snprintf(w->inputs, sizeof w->inputs, "%s/inputs", w->path);
    snprintf(w->output, sizeof w->output, "%s/output", w->path);
    if ((rc = write_file(owner, record, strlen(record))) != 0 ||
        (rc = mkdir(w->inputs, 0700) != 0 ? errno : 0) != 0 ||
        (rc = write_file(w->output, "", 0)) != 0) {
        snprintf(err, errlen, "cannot prepare the command's directory %s: %s", w->path,
                 strerror(rc));
        return -1;
    }
    return 0;
}

int workdir__write_input(const struct workdir *w, const char *name, const char *value, size_t len,
                         char *err, size_t errlen)
{
    char path[400];
    int rc;

    snprintf(path, sizeof path, "%s/%s", w->inputs, name);
    rc = write_file(path, value, len);
    if (rc != 0)
        snprintf(err, errlen, "cannot write input %s to %s: %s", name, path, strerror(rc));
    return rc != 0 ? -1 : 0;
}

int workdir__read_output(const struct workdir *w, size_t max, char **buf, size_t *len, char *err,
                         size_t errlen)
{
    struct stat st;
    size_t used = 0;
    int fd = open(w->output, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK), rc = -1;

    *buf = NULL;
    *len = 0;
    if (fd < 0) {
        snprintf(err, errlen, "cannot open $FLOWBUS_OUTPUT (%s): %s", w->output,
                 errno == ELOOP ? "it was replaced by a symbolic link" : strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "$FLOWBUS_OUTPUT (%s) is not a regular file any more", w->output);
        goto out;
    }
    if ((unsigned long long)st.st_size > max) {
        snprintf(err, errlen, "$FLOWBUS_OUTPUT holds %lld bytes, over the bound of %zu",
                 (long long)st.st_size, max);
        goto out;
    }
    *buf = malloc((size_t)st.st_size + 1);
    if (!*buf) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    /* Read up to the size seen; a file still growing (a background writer) is cut there. */
    while (used < (size_t)st.st_size) {
        ssize_t n = read(fd, *buf + used, (size_t)st.st_size - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "cannot read $FLOWBUS_OUTPUT: %s", strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        used += (size_t)n;
    }
    (*buf)[used] = '\0';
    *len = used;
    rc = 0;
out:
    if (rc != 0) {
        free(*buf);
        *buf = NULL;
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (type == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

void workdir__remove(struct workdir *w)
{
    if (!w->path[0])
        return;
    /* FTW_PHYS: a symlink the command left is removed, never followed. */
    nftw(w->path, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
    w->path[0] = '\0';
}
