/*
 * auth_cache.c - the run's cache of permission sets: entry names, the lock
 * per token, and entries with their time to live.
 *
 * The cache lives in the run's private directory (FLOWBUS_RUN_DIR, mode
 * 0700). Per token there is a lock file and an entry file, both named by a
 * salted SHA-256 of the token (auth_cache__key). A process takes the lock
 * with flock(), reads the entry, and only if there is no valid one asks the
 * service and writes the answer (by rename, so a reader never sees half of
 * it) before it lets go of the lock. So concurrent tasks of a run with one
 * token make one request: the first asks, the others wait for the lock and
 * read its answer. A failed fetch is not written, so the next process in
 * line asks again (auth.c, fb_permissions_fetch, drives this).
 *
 * Everything here is file and flock logic: no network, no parsing beyond the
 * entry's JSON (tests/unit/test_auth_cache.c). An entry that is not exactly
 * what we write (foreign owner, not a regular file, a symlink, damaged JSON,
 * an expiry beyond the TTL) is ignored, never trusted. The cache key's
 * SHA-256 is our own (sha256.c): libcrypto would otherwise be mapped only to
 * hash 100 bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "auth.h"
#include "internal.h"
#include "sha256.h"

/* How often a process waiting for another's request looks at the lock again. */
#define LOCK_POLL_NS 5000000L

int auth_cache__key(const char *salt, const char *url, const char *token, char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[SHA256_DIGEST_LEN];
    struct sha256 ctx;
    unsigned i;

    sha256__init(&ctx);
    sha256__update(&ctx, salt, strlen(salt) + 1);
    sha256__update(&ctx, url, strlen(url) + 1);
    sha256__update(&ctx, token, strlen(token));
    sha256__final(&ctx, md);
    for (i = 0; i < SHA256_DIGEST_LEN; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
    memset(md, 0, sizeof md);
    return 0;
}

/*
 * Opens the cache directory if it is safe to use: a directory owned by us
 * that nobody else can read or write. Returns its fd, or -1 (and logs why).
 */
int auth_cache__open(const struct auth_config *cfg)
{
    struct stat st;
    int fd = open(cfg->cache_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0) {
        log__emit(cfg->log, cfg->log_ctx, FB_LOG_WARN,
                  "permission cache not used: cannot open FLOWBUS_RUN_DIR %s: %s", cfg->cache_dir,
                  strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0 || st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
        log__emit(cfg->log, cfg->log_ctx, FB_LOG_WARN,
                  "permission cache not used: %s must be a directory of this user with mode 0700",
                  cfg->cache_dir);
        close(fd);
        return -1;
    }
    return fd;
}

/*
 * Takes the entry's lock, waiting at most `wait` seconds for a process that
 * holds it (it is asking the service, which takes at most the timeout).
 * flock has no timed wait, so the wait polls with a short sleep. Returns the
 * lock fd, or -1 (no cache: ask on our own).
 */
int auth_cache__lock(const struct auth_config *cfg, int dirfd, const char *key, double wait)
{
    char name[80];
    double deadline = fb_clock_mono() + wait;
    struct timespec pause = {0, LOCK_POLL_NS};
    int fd;

    snprintf(name, sizeof name, "%s.lock", key);
    fd = openat(dirfd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        log__emit(cfg->log, cfg->log_ctx, FB_LOG_WARN,
                  "permission cache not used: cannot create a lock file in %s: %s", cfg->cache_dir,
                  strerror(errno));
        return -1;
    }
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if ((errno != EWOULDBLOCK && errno != EINTR) || fb_clock_mono() >= deadline) {
            log__emit(cfg->log, cfg->log_ctx, FB_LOG_INFO,
                      "permission cache busy for %g s; asking the service directly", wait);
            close(fd);
            return -1;
        }
        nanosleep(&pause, NULL);
    }
    return fd;
}

/* A valid, unexpired entry as a set, or NULL (missing, expired, foreign or damaged). */
fb_permissions *auth_cache__read(const struct auth_config *cfg, int dirfd, const char *key)
{
    char name[80];
    struct stat st;
    json_t *root = NULL;
    json_t *expires;
    fb_permissions *perms = NULL;
    const char *why = NULL;
    double left;
    int fd;

    snprintf(name, sizeof name, "%s.json", key);
    fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        goto out;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
        st.st_size > 2 * AUTH_MAX_BODY)
        goto out;
    /* As the service's answers: a key given twice makes the entry unusable. */
    root = json_loadfd(fd, JSON_REJECT_DUPLICATES, NULL);
    expires = json_object_get(root, "expires");
    if (!json_is_number(expires))
        goto out;
    /* An entry claiming more than the TTL from now is not one we wrote: ignore it. */
    left = json_number_value(expires) - fb_clock_wall();
    if (left <= 0 || left > cfg->cache_ttl + 1)
        goto out;
    if (auth_perms__from_json(json_object_get(root, "permissions"), &perms, &why) != FB_OK)
        perms = NULL;
out:
    if (fd >= 0)
        close(fd);
    json_decref(root);
    return perms;
}

/* Writes an entry (temporary file, then rename). Failures only cost a later request. */
void auth_cache__write(const struct auth_config *cfg, int dirfd, const char *key,
                       const fb_permissions *perms)
{
    char name[80], tmp[100];
    json_t *root = json_object();
    json_t *array = auth_perms__to_json(perms);
    char *text = NULL;
    size_t len, done = 0;
    ssize_t n;
    int fd = -1, ok = 0;

    snprintf(name, sizeof name, "%s.json", key);
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", key, (long)getpid());
    if (root == NULL || array == NULL)
        goto out;
    json_object_set_new(root, "expires", json_real(fb_clock_wall() + cfg->cache_ttl));
    json_object_set(root, "permissions", array);
    text = json_dumps(root, JSON_COMPACT);
    if (text == NULL)
        goto out;
    len = strlen(text);
    fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        goto out;
    while (done < len) {
        n = write(fd, text + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto out;
        done += (size_t)n;
    }
    if (close(fd) != 0) {
        fd = -1;
        goto out;
    }
    fd = -1;
    ok = renameat(dirfd, tmp, dirfd, name) == 0;
out:
    if (fd >= 0)
        close(fd);
    if (!ok) {
        unlinkat(dirfd, tmp, 0);
        log__emit(cfg->log, cfg->log_ctx, FB_LOG_WARN,
                  "permission cache: cannot write an entry in %s", cfg->cache_dir);
    }
    free(text);
    json_decref(array);
    json_decref(root);
}
