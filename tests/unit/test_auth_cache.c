/*
 * test_auth_cache.c - unit tests of the run's permission cache
 * (sdk/src/auth/auth_cache.c): entry names (the salted key), a hit, a miss,
 * expiry, damaged and foreign entries, the directory's mode and owner, the
 * per-token lock, and a failed write. The cache is pure file and flock
 * logic, so each test works in a fresh directory of its own under $TMPDIR;
 * no network and no broker. The owner checks need root (to chown to someone
 * else) and are skipped, saying so, without it.
 */
#include "auth.h"
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>
#include <jansson.h>

/* Someone else, for the owner checks (nobody on Debian). */
#define OTHER_UID 65534

static char last_log[512];
static int n_logs;

static void record_log(void *ctx, enum fb_log_level level, const char *msg)
{
    (void)ctx;
    (void)level;
    snprintf(last_log, sizeof last_log, "%s", msg);
    n_logs++;
}

/* A fresh cache directory (mode 0700) and the config that uses it. */
struct fixture {
    char dir[256];
    struct auth_config cfg;
    int dirfd;
    char key[65];
};

static void setup(struct fixture *f, double ttl)
{
    const char *tmp = getenv("TMPDIR");

    snprintf(f->dir, sizeof f->dir, "%s/fbtest-auth-cache-XXXXXX",
             tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
    if (mkdtemp(f->dir) == NULL) {
        perror("mkdtemp");
        exit(2);
    }
    memset(&f->cfg, 0, sizeof f->cfg);
    f->cfg.url = "https://attica.test/p";
    f->cfg.timeout = 1.0;
    f->cfg.cache_dir = f->dir;
    f->cfg.cache_ttl = ttl;
    f->cfg.salt = f->dir;
    f->cfg.log = record_log;
    last_log[0] = '\0';
    n_logs = 0;
    f->dirfd = auth_cache__open(&f->cfg);
    auth_cache__key(f->cfg.salt, f->cfg.url, "tok-123", f->key);
}

static void teardown(struct fixture *f)
{
    DIR *d = opendir(f->dir);
    struct dirent *e;
    char path[600];

    while (d != NULL && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", f->dir, e->d_name);
        if (unlink(path) != 0)
            rmdir(path);
    }
    if (d != NULL)
        closedir(d);
    if (f->dirfd >= 0)
        close(f->dirfd);
    rmdir(f->dir);
}

/* A set of the given names, built the way the service's answer is read. */
static fb_permissions *make_set(const char *json_array)
{
    json_t *value = json_loads(json_array, 0, NULL);
    fb_permissions *perms = NULL;
    const char *why = NULL;

    if (value == NULL || auth_perms__from_json(value, &perms, &why) != FB_OK)
        perms = NULL;
    json_decref(value);
    return perms;
}

/* Writes text as f's entry file, as someone else's process or a damaged disk might. */
static void put_entry(const struct fixture *f, const char *text, size_t len)
{
    char path[600];
    FILE *fp;

    snprintf(path, sizeof path, "%s/%s.json", f->dir, f->key);
    fp = fopen(path, "wb");
    if (fp == NULL || fwrite(text, 1, len, fp) != len) {
        perror(path);
        exit(2);
    }
    fclose(fp);
    chmod(path, 0600);
}

/* An entry that expires `in` seconds from now, granting names (a JSON array). */
static void put_entry_expiring(const struct fixture *f, double in, const char *names)
{
    char text[512];
    int n = snprintf(text, sizeof text, "{\"expires\":%.6f,\"permissions\":%s}",
                     fb_clock_wall() + in, names);

    put_entry(f, text, (size_t)n);
}

static void sleep_s(double s)
{
    struct timespec ts;

    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    nanosleep(&ts, NULL);
}

/* How many files the cache directory holds. */
static int count_files(const struct fixture *f)
{
    DIR *d = opendir(f->dir);
    struct dirent *e;
    int n = 0;

    while (d != NULL && (e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    if (d != NULL)
        closedir(d);
    return n;
}

static void test_key(void)
{
    char a[65], b[65];
    size_t i;

    /* salt NUL url NUL token, hashed: python3 -c "hashlib.sha256(b'run-salt\0...')". */
    CHECK(auth_cache__key("run-salt", "https://attica.test/p", "tok-123", a) == 0);
    CHECK_STR(a, "308dc1b42892d4ac85cc0330b33a3516e6604b2e2005268751dace9a0c81e567");
    CHECK(strlen(a) == 64);
    for (i = 0; i < 64; i++)
        CHECK((a[i] >= '0' && a[i] <= '9') || (a[i] >= 'a' && a[i] <= 'f'));
    auth_cache__key("run-salt", "https://attica.test/p", "tok-123", b);
    CHECK_STR(a, b);
    /* The salt keeps runs apart, the URL services, and the NULs "ab"+"c" from "a"+"bc". */
    auth_cache__key("other-salt", "https://attica.test/p", "tok-123", b);
    CHECK(strcmp(a, b) != 0);
    auth_cache__key("run-salt", "https://other.test/p", "tok-123", b);
    CHECK(strcmp(a, b) != 0);
    auth_cache__key("run-salt", "https://attica.test/p", "tok-124", b);
    CHECK(strcmp(a, b) != 0);
    auth_cache__key("run-salt", "https://attica.test/", "ptok-123", b);
    CHECK(strcmp(a, b) != 0);
    CHECK(strstr(a, "tok") == NULL);
}

static void test_miss(void)
{
    struct fixture f;

    setup(&f, 60);
    CHECK(f.dirfd >= 0);
    CHECK(auth_cache__read(&f.cfg, f.dirfd, f.key) == NULL);
    CHECK(n_logs == 0); /* a miss is ordinary: nothing to warn about */
    teardown(&f);
}

static void test_hit(void)
{
    struct fixture f;
    fb_permissions *perms = make_set("[\"can_write\", \"can_read\"]");
    fb_permissions *back;
    struct stat st;
    char path[600];

    setup(&f, 60);
    CHECK(perms != NULL);
    auth_cache__write(&f.cfg, f.dirfd, f.key, perms);
    CHECK(n_logs == 0);
    back = auth_cache__read(&f.cfg, f.dirfd, f.key);
    CHECK(back != NULL);
    CHECK(fb_permissions_count(back) == 2);
    CHECK_STR(fb_permissions_name(back, 0), "can_read");
    CHECK_STR(fb_permissions_name(back, 1), "can_write");
    CHECK(fb_permissions_has(back, "can_write"));
    /* Only the entry, private, by its key: no temporary file left, no token in a name. */
    snprintf(path, sizeof path, "%s/%s.json", f.dir, f.key);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    CHECK(count_files(&f) == 1);
    /* A second read hits too: reading does not consume the entry. */
    fb_permissions_free(back);
    back = auth_cache__read(&f.cfg, f.dirfd, f.key);
    CHECK(back != NULL && fb_permissions_count(back) == 2);
    fb_permissions_free(back);
    /* An empty set is a valid answer and caches as one. */
    fb_permissions_free(perms);
    perms = make_set("[]");
    auth_cache__write(&f.cfg, f.dirfd, f.key, perms);
    back = auth_cache__read(&f.cfg, f.dirfd, f.key);
    CHECK(back != NULL && fb_permissions_count(back) == 0);
    fb_permissions_free(back);
    fb_permissions_free(perms);
    teardown(&f);
}

static void test_expiry(void)
{
    struct fixture f;
    fb_permissions *perms = make_set("[\"can_read\"]");
    fb_permissions *back;

    /* An entry written with a short TTL is a hit until the TTL passes, then a miss. */
    setup(&f, 0.3);
    auth_cache__write(&f.cfg, f.dirfd, f.key, perms);
    back = auth_cache__read(&f.cfg, f.dirfd, f.key);
    CHECK(back != NULL);
    fb_permissions_free(back);
    sleep_s(0.4);
    CHECK(auth_cache__read(&f.cfg, f.dirfd, f.key) == NULL);
    teardown(&f);

    setup(&f, 60);
    put_entry_expiring(&f, 30, "[\"can_read\"]");
    back = auth_cache__read(&f.cfg, f.dirfd, f.key);
    CHECK(back != NULL && fb_permissions_has(back, "can_read"));
    fb_permissions_free(back);
    put_entry_expiring(&f, -1, "[\"can_read\"]");
    CHECK(auth_cache__read(&f.cfg, f.dirfd, f.key) == NULL);
    /* Claiming more than the TTL (plus a second of slack) from now: not one we wrote. */
    put_entry_expiring(&f, 60 + 30, "[\"can_read\"]");
    CHECK(auth_cache__read(&f.cfg, f.dirfd, f.key) == NULL);
    put_entry_expiring(&f, 60 + 0.5, "[\"can_read\"]");
    back = auth_cache__read(&f.cfg, f.dirfd, f.key);
    CHECK(back != NULL);
    fb_permissions_free(back);
    teardown(&f);
    fb_permissions_free(perms);
}

static void test_corrupt_entry(void)
{
    /* Whole entries, damaged. */
    static const char *const bad[] = {
        "",
        "not json at all",
        "{\"expires\":",
        "[1, 2, 3]",
        "{\"permissions\":[\"can_read\"]}",                          /* no expiry */
        "{\"expires\":\"tomorrow\",\"permissions\":[\"can_read\"]}", /* not a number */
    };
    /* What follows a valid, unexpired "expires", damaged. */
    static const char *const bad_rest[] = {
        "}",                                       /* no permissions */
        "\"permissions\":\"can_read\"}",           /* neither array nor object */
        "\"permissions\":[\"can read\"]}",         /* a blank in a name */
        "\"permissions\":[\"a,b\"]}",              /* a comma in a name */
        "\"permissions\":[7]}",                    /* not a string */
        "\"permissions\":{\"can_read\":\"yes\"}}", /* not a boolean */
        "\"permissions\":[\"can_read\"]",          /* cut off */
    };
    struct fixture f;
    char text[256];
    size_t i;
    int n;
    char path[600];

    setup(&f, 60);
    for (i = 0; i < sizeof bad / sizeof bad[0] + sizeof bad_rest / sizeof bad_rest[0]; i++) {
        if (i < sizeof bad / sizeof bad[0])
            n = snprintf(text, sizeof text, "%s", bad[i]);
        else
            n = snprintf(text, sizeof text, "{\"expires\":%.6f,%s", fb_clock_wall() + 30,
                         bad_rest[i - sizeof bad / sizeof bad[0]]);
        put_entry(&f, text, (size_t)n);
        if (auth_cache__read(&f.cfg, f.dirfd, f.key) != NULL) {
            fprintf(stderr, "accepted a damaged entry: %s\n", text);
            CHECK(0);
        }
    }
    /* Binary garbage, and a file far larger than any entry we write. */
    put_entry(&f, "\x00\xff\xfe{\x01", 5);
    CHECK(auth_cache__read(&f.cfg, f.dirfd, f.key) == NULL);
    snprintf(path, sizeof path, "%s/%s.json", f.dir, f.key);
    put_entry_expiring(&f, 30, "[\"can_read\"]");
    CHECK(truncate(path, 2 * AUTH_MAX_BODY + 1) == 0);
    CHECK(auth_cache__read(&f.cfg, f.dirfd, f.key) == NULL);
    /* A damaged entry is simply replaced by the next write. */
    {
        fb_permissions *perms = make_set("[\"can_read\"]");
        fb_permissions *back;

        auth_cache__write(&f.cfg, f.dirfd, f.key, perms);
        back = auth_cache__read(&f.cfg, f.dirfd, f.key);
        CHECK(back != NULL && fb_permissions_has(back, "can_read"));
        fb_permissions_free(back);
        fb_permissions_free(perms);
    }
    teardown(&f);
}

static void test_entry_not_a_plain_file(void)
{
    struct fixture f;
    char path[600], target[600];

    setup(&f, 60);
    /* A symlink to a valid entry is not followed (O_NOFOLLOW). */
    snprintf(target, sizeof target, "%s/elsewhere.json", f.dir);
    snprintf(path, sizeof path, "%s/%s.json", f.dir, f.key);
    put_entry_expiring(&f, 30, "[\"can_read\"]");
    CHECK(rename(path, target) == 0);
    CHECK(symlink(target, path) == 0);
    CHECK(auth_cache__read(&f.cfg, f.dirfd, f.key) == NULL);
    CHECK(unlink(path) == 0);
    /* A directory in the entry's place. */
    CHECK(mkdir(path, 0700) == 0);
    CHECK(auth_cache__read(&f.cfg, f.dirfd, f.key) == NULL);
    CHECK(rmdir(path) == 0);
    teardown(&f);
}

static void test_directory_mode(void)
{
    struct fixture f;
    int fd;

    setup(&f, 60);
    CHECK(f.dirfd >= 0);
    /* Readable or writable by anyone else: not used, and the log says why. */
    CHECK(chmod(f.dir, 0750) == 0);
    n_logs = 0;
    fd = auth_cache__open(&f.cfg);
    CHECK(fd < 0);
    CHECK(n_logs == 1);
    CHECK_CONTAINS(last_log, "mode 0700");
    CHECK(chmod(f.dir, 0702) == 0);
    CHECK(auth_cache__open(&f.cfg) < 0);
    CHECK(chmod(f.dir, 0700) == 0);
    fd = auth_cache__open(&f.cfg);
    CHECK(fd >= 0);
    if (fd >= 0)
        close(fd);
    teardown(&f);

    /* A missing directory, and a file where the directory should be. */
    setup(&f, 60);
    {
        struct auth_config cfg = f.cfg;
        char path[600];
        FILE *fp;

        cfg.cache_dir = "/nonexistent/flowbus-run";
        n_logs = 0;
        CHECK(auth_cache__open(&cfg) < 0);
        CHECK_CONTAINS(last_log, "cannot open FLOWBUS_RUN_DIR");
        snprintf(path, sizeof path, "%s/plain", f.dir);
        fp = fopen(path, "w");
        if (fp != NULL)
            fclose(fp);
        cfg.cache_dir = path;
        CHECK(auth_cache__open(&cfg) < 0);
    }
    teardown(&f);
}

static void test_owner(void)
{
    struct fixture f;
    fb_permissions *back;
    char path[600];

    if (geteuid() != 0) {
        printf("test_owner: skipped (needs root to give a file to uid %d)\n", OTHER_UID);
        return;
    }
    /* The directory of someone else, mode 0700 or not, is not ours to trust. */
    setup(&f, 60);
    CHECK(chown(f.dir, OTHER_UID, OTHER_UID) == 0);
    CHECK(auth_cache__open(&f.cfg) < 0);
    CHECK_CONTAINS(last_log, "of this user");
    CHECK(chown(f.dir, 0, 0) == 0);
    /* Nor an entry someone else wrote into our directory. */
    put_entry_expiring(&f, 30, "[\"can_read\"]");
    snprintf(path, sizeof path, "%s/%s.json", f.dir, f.key);
    back = auth_cache__read(&f.cfg, f.dirfd, f.key);
    CHECK(back != NULL); /* ours: used */
    fb_permissions_free(back);
    CHECK(chown(path, OTHER_UID, OTHER_UID) == 0);
    CHECK(auth_cache__read(&f.cfg, f.dirfd, f.key) == NULL);
    teardown(&f);
}

static void test_salt(void)
{
    struct fixture f;
    fb_permissions *perms = make_set("[\"can_read\"]");
    fb_permissions *back;
    char other[65];

    /* Another run's salt names another entry: one run never reads another's answer. */
    setup(&f, 60);
    auth_cache__write(&f.cfg, f.dirfd, f.key, perms);
    auth_cache__key("another-run", f.cfg.url, "tok-123", other);
    CHECK(strcmp(other, f.key) != 0);
    CHECK(auth_cache__read(&f.cfg, f.dirfd, other) == NULL);
    auth_cache__key(f.cfg.salt, f.cfg.url, "tok-123", other);
    back = auth_cache__read(&f.cfg, f.dirfd, other);
    CHECK(back != NULL);
    fb_permissions_free(back);
    fb_permissions_free(perms);
    teardown(&f);
}

static void test_lock(void)
{
    struct fixture f;
    struct stat st;
    char path[600];
    double t0, waited;
    int a, b;

    setup(&f, 60);
    a = auth_cache__lock(&f.cfg, f.dirfd, f.key, 1.0);
    CHECK(a >= 0);
    snprintf(path, sizeof path, "%s/%s.lock", f.dir, f.key);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    /*
     * flock belongs to the open file description, so a second open in this
     * process is another holder: it waits its time, then gives up (and the
     * caller asks the service on its own).
     */
    n_logs = 0;
    t0 = fb_clock_mono();
    b = auth_cache__lock(&f.cfg, f.dirfd, f.key, 0.1);
    waited = fb_clock_mono() - t0;
    CHECK(b < 0);
    CHECK(waited >= 0.1 && waited < 2.0);
    CHECK_CONTAINS(last_log, "cache busy");
    /* Another token's lock is another file: not held. */
    b = auth_cache__lock(&f.cfg, f.dirfd, "0000", 0.1);
    CHECK(b >= 0);
    if (b >= 0)
        close(b);
    /* Closing the holder's fd lets go. */
    if (a >= 0)
        close(a);
    b = auth_cache__lock(&f.cfg, f.dirfd, f.key, 0.1);
    CHECK(b >= 0);
    if (b >= 0)
        close(b);
    teardown(&f);
}

static void test_write_fails(void)
{
    struct fixture f;
    fb_permissions *perms = make_set("[\"can_read\"]");
    char path[600];

    /* The entry's name is taken by a directory: the rename fails, nothing is left behind. */
    setup(&f, 60);
    snprintf(path, sizeof path, "%s/%s.json", f.dir, f.key);
    CHECK(mkdir(path, 0700) == 0);
    auth_cache__write(&f.cfg, f.dirfd, f.key, perms);
    CHECK_CONTAINS(last_log, "cannot write an entry");
    CHECK(count_files(&f) == 1);
    CHECK(auth_cache__read(&f.cfg, f.dirfd, f.key) == NULL);
    CHECK(rmdir(path) == 0);
    teardown(&f);
    fb_permissions_free(perms);
}

int main(void)
{
    RUN(test_key);
    RUN(test_miss);
    RUN(test_hit);
    RUN(test_expiry);
    RUN(test_corrupt_entry);
    RUN(test_entry_not_a_plain_file);
    RUN(test_directory_mode);
    RUN(test_owner);
    RUN(test_salt);
    RUN(test_lock);
    RUN(test_write_fails);
    return check_summary();
}
