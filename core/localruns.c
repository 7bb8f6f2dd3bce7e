/*
 * localruns.c - the per-user record of live runs on private brokers (see
 * localruns.h).
 *
 * An entry is two files, written to a temporary name and renamed, so a
 * reader never sees half of one: RUN.run ("key=value" lines: broker, pid,
 * started, username, password_file) and RUN.password (the password alone,
 * 0600). The coordinator's pid is checked together with its start time
 * (/proc/PID/stat, field 22), so a pid reused by another process after a
 * coordinator was killed does not make a stale entry look alive.
 */
#define _GNU_SOURCE
#include "localruns.h"
#include "procstat.h"

#include <flowbus/protocol.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* 1 if path is a directory of this user that nobody else may enter. */
static int private_dir(const char *path)
{
    struct stat st;

    if (lstat(path, &st) != 0)
        return 0;
    if (!S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 077) != 0) {
        errno = EACCES;
        return 0;
    }
    return 1;
}

/* Creates path (0700) if it is missing; 1 if it is then a private directory. */
static int make_dir(const char *path, int create)
{
    if (create && mkdir(path, 0700) != 0 && errno != EEXIST)
        return 0;
    return private_dir(path);
}

int localruns__dir(char *buf, size_t len, int create)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR"), *home = getenv("HOME");
    char base[512];
    struct stat st;

    if (xdg && xdg[0] == '/') {
        snprintf(base, sizeof base, "%s", xdg);
    } else if (snprintf(base, sizeof base, "/run/user/%lu", (unsigned long)getuid()) > 0 &&
               stat(base, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == getuid()) {
        /* base is the login session's runtime directory. */
    } else if (home && home[0] == '/') {
        /* No runtime directory (a container, a cron job): the user's cache. */
        snprintf(base, sizeof base, "%s/.cache", home);
        if (create && mkdir(base, 0700) != 0 && errno != EEXIST)
            return 0;
        snprintf(base, sizeof base, "%s/.cache/flowbus", home);
        if (create && mkdir(base, 0700) != 0 && errno != EEXIST)
            return 0;
        if ((size_t)snprintf(buf, len, "%s/runs", base) >= len) {
            errno = ENAMETOOLONG;
            return 0;
        }
        return make_dir(buf, create);
    } else {
        errno = ENOENT;
        return 0;
    }
    if ((size_t)snprintf(buf, len, "%s/flowbus", base) >= len) {
        errno = ENAMETOOLONG;
        return 0;
    }
    return make_dir(buf, create);
}

static int entry_path(char *buf, size_t len, const char *run_id, const char *ext)
{
    char dir[512];

    if (!fb_name_valid(FB_NAME_RUN, run_id, strlen(run_id)) || !localruns__dir(dir, sizeof dir, 0))
        return 0;
    return (size_t)snprintf(buf, len, "%s/%s.%s", dir, run_id, ext) < len;
}

/* Writes text to path through a temporary file and a rename; mode 0600. */
static int write_file(const char *path, const char *text)
{
    char tmp[600];
    size_t len = strlen(text);
    int fd, ok;

    if ((size_t)snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) >= sizeof tmp)
        return 0;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return 0;
    ok = write(fd, text, len) == (ssize_t)len;
    ok = close(fd) == 0 && ok;
    if (ok && rename(tmp, path) == 0)
        return 1;
    unlink(tmp);
    return 0;
}

int localruns__record(const char *run_id, const char *broker_url, const char *username,
                      const char *password, char *password_file, size_t pflen, char *err,
                      size_t errlen)
{
    char dir[512], run_file[600], pw_file[600], text[1400];
    int ok = 0;

    if (!localruns__dir(dir, sizeof dir, 1)) {
        snprintf(err, errlen, "no private runtime directory for this user: %s", strerror(errno));
        goto out;
    }
    snprintf(run_file, sizeof run_file, "%s/%s.run", dir, run_id);
    snprintf(pw_file, sizeof pw_file, "%s/%s.password", dir, run_id);
    if (!write_file(pw_file, password ? password : "")) {
        snprintf(err, errlen, "cannot write %s: %s", pw_file, strerror(errno));
        goto out;
    }
    snprintf(text, sizeof text, "broker=%s\npid=%ld\nstarted=%llu\nusername=%s\npassword_file=%s\n",
             broker_url, (long)getpid(), procstat__start_time((long)getpid()), username ? username : "",
             pw_file);
    if (!write_file(run_file, text)) {
        snprintf(err, errlen, "cannot write %s: %s", run_file, strerror(errno));
        unlink(pw_file);
        goto out;
    }
    if (password_file)
        snprintf(password_file, pflen, "%s", pw_file);
    ok = 1;
out:
    return ok;
}

/* Removes both files of run_id's entry. */
static void remove_entry(const char *run_id)
{
    char path[600];

    if (entry_path(path, sizeof path, run_id, "run"))
        unlink(path);
    if (entry_path(path, sizeof path, run_id, "password"))
        unlink(path);
}

/* Reads at most len-1 bytes of path into buf; 1 on success. */
static int read_file(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return 0;
    n = read(fd, buf, len - 1);
    close(fd);
    if (n < 0)
        return 0;
    buf[n] = '\0';
    return 1;
}

/* The value of "key=" in the lines of text, into out; 1 if found. */
static int field(const char *text, const char *key, char *out, size_t len)
{
    size_t klen = strlen(key);
    const char *p = text;

    while (p && *p) {
        if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
            const char *v = p + klen + 1, *nl = strchr(v, '\n');
            size_t n = nl ? (size_t)(nl - v) : strlen(v);
            if (n >= len)
                return 0;
            memcpy(out, v, n);
            out[n] = '\0';
            return 1;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return 0;
}

void localruns__forget(const char *run_id)
{
    char path[600], text[1400], pid[32];

    /* Only the coordinator that wrote the entry removes it. */
    if (!entry_path(path, sizeof path, run_id, "run") || !read_file(path, text, sizeof text) ||
        !field(text, "pid", pid, sizeof pid) || strtol(pid, NULL, 10) != (long)getpid())
        return;
    remove_entry(run_id);
}

int localruns__find(const char *run_id, struct localrun *out)
{
    char path[600], text[1400], num[32];
    unsigned long long started = 0;
    int found = 0;
    size_t n;

    memset(out, 0, sizeof *out);
    if (!entry_path(path, sizeof path, run_id, "run") || !read_file(path, text, sizeof text))
        goto out;
    if (!field(text, "broker", out->broker_url, sizeof out->broker_url) ||
        !field(text, "pid", num, sizeof num))
        goto stale;
    out->pid = strtol(num, NULL, 10);
    if (field(text, "started", num, sizeof num))
        started = strtoull(num, NULL, 10);
    /* Alive, and the same process: a pid reused since then has another start time. */
    if (out->pid <= 0 || (kill((pid_t)out->pid, 0) != 0 && errno != EPERM) ||
        (started && procstat__start_time(out->pid) != started))
        goto stale;
    field(text, "username", out->username, sizeof out->username);
    if (field(text, "password_file", out->password_file, sizeof out->password_file) &&
        read_file(out->password_file, out->password, sizeof out->password)) {
        n = strlen(out->password);
        while (n > 0 && (out->password[n - 1] == '\n' || out->password[n - 1] == '\r'))
            out->password[--n] = '\0';
    }
    found = 1;
    goto out;
stale:
    remove_entry(run_id);
out:
    if (!found)
        localruns__clear(out);
    return found;
}

size_t localruns__each(void (*fn)(const char *run_id, const struct localrun *r, void *ctx),
                       void *ctx)
{
    char dir[512], run_id[FB_NAME_MAX + 1];
    struct localrun r;
    struct dirent *e;
    size_t n = 0, len;
    DIR *d;

    if (!localruns__dir(dir, sizeof dir, 0) || (d = opendir(dir)) == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        len = strlen(e->d_name);
        if (len <= 4 || len - 4 > FB_NAME_MAX || strcmp(e->d_name + len - 4, ".run") != 0)
            continue;
        memcpy(run_id, e->d_name, len - 4);
        run_id[len - 4] = '\0';
        if (!localruns__find(run_id, &r))
            continue;
        fn(run_id, &r, ctx);
        localruns__clear(&r);
        n++;
    }
    closedir(d);
    return n;
}

void localruns__clear(struct localrun *r)
{
    explicit_bzero(r->password, sizeof r->password);
}
