/*
 * tmpdirs.c - owner records in flowbus's temporary directories, and the sweep
 * that removes the directories of dead owners (see tmpdirs.h).
 */
#define _GNU_SOURCE
#include "tmpdirs.h"
#include "procstat.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const prefixes[] = {"flowbus-run-", "flowbus-broker-", "flowbus-cmd-"};

const char *tmpdirs__root(void)
{
    const char *tmp = getenv("TMPDIR");

    /* The callers' paths have room for 200 bytes of root. */
    return tmp && *tmp && strlen(tmp) <= 200 ? tmp : "/tmp";
}

int tmpdirs__claim(const char *dir)
{
    char path[640], record[96];
    int fd, ok;
    size_t len;

    snprintf(path, sizeof path, "%s/owner", dir);
    len = (size_t)snprintf(record, sizeof record, "pid %ld\nstart %llu\n", (long)getpid(),
                           procstat__start_time((long)getpid()));
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return 0;
    ok = write(fd, record, len) == (ssize_t)len;
    if (close(fd) != 0)
        ok = 0;
    return ok;
}

int tmpdirs__owner_alive(const char *dir)
{
    char path[640], buf[128];
    long pid = 0;
    unsigned long long start = 0, now = 0;
    ssize_t n;
    struct procstat st;
    int fd;

    snprintf(path, sizeof path, "%s/owner", dir);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return -1;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    if (sscanf(buf, "pid %ld\nstart %llu", &pid, &start) != 2 || pid <= 0)
        return -1;
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
        return 0;
    /* A zombie (an init that does not reap, in a container) never cleans up either. */
    if (procstat__read(pid, &st)) {
        if (procstat__is_dead(&st))
            return 0;
        now = st.start;
    }
    /* No /proc to compare with: the process exists, so keep its directory. */
    if (now == 0 || start == 0)
        return 1;
    return now == start;
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

/* The pid an owner record names, for the report; 0 if none. */
static long record_pid(const char *dir)
{
    char path[640];
    long pid = 0;
    FILE *f;

    snprintf(path, sizeof path, "%s/owner", dir);
    f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "pid %ld", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    return pid;
}

size_t tmpdirs__sweep(const char *root, int unclaimed_too, tmpdirs_fn each, void *ctx)
{
    DIR *d = opendir(root);
    struct dirent *e;
    size_t removed = 0;
    time_t now = time(NULL);

    while (d && (e = readdir(d)) != NULL) {
        char path[512];
        struct stat st;
        int ours = 0, alive;
        long pid;

        for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
            if (strncmp(e->d_name, prefixes[i], strlen(prefixes[i])) == 0)
                ours = 1;
        if (!ours || (size_t)snprintf(path, sizeof path, "%s/%s", root, e->d_name) >= sizeof path)
            continue;
        /* Only real directories of this user: never another user's, never through a symlink. */
        if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
            continue;
        alive = tmpdirs__owner_alive(path);
        if (alive == 1 || (alive < 0 && (!unclaimed_too || now - st.st_mtime < TMPDIRS_UNCLAIMED_AGE)))
            continue;
        pid = record_pid(path);
        /* FTW_PHYS: a symlink inside is removed, never followed; FTW_MOUNT: stay on this fs. */
        nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
        if (lstat(path, &st) == 0)
            continue; /* not all of it could go: not counted */
        removed++;
        if (each)
            each(ctx, path, pid);
    }
    if (d)
        closedir(d);
    return removed;
}
