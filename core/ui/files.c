/*
 * files.c - file access of `flowbus ui`, confined to one directory.
 *
 * The server reads and writes only in the directories it was given, which it
 * keeps open: every access is openat() relative to that descriptor with a
 * plain name (no '/', so no "..", no absolute path) and O_NOFOLLOW, so a
 * symbolic link planted in the directory leads nowhere, and only regular
 * files are read. A name is checked before anything touches the disk.
 *
 * Writes are atomic: the text goes to a temporary file in the same
 * directory, is fsync'd, and then replaces the file with rename() (or, for a
 * new file that must not replace one, link() then unlink of the temporary,
 * which fails if the name exists). A reader sees the old file or the new one,
 * never half of one, and a crash leaves at worst a stray ".NAME.XXXXXX".
 */
#define _GNU_SOURCE /* asprintf, pipe2, POSIX_SPAWN_SETSID, explicit_bzero */
#include "internal.h"
#include "sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

int files__workflow_name(const char *name)
{
    size_t n = name ? strlen(name) : 0;

    if (n == 0 || n > UI_FILE_MAX || name[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return (n > 5 && strcmp(name + n - 5, ".yaml") == 0) ||
           (n > 4 && strcmp(name + n - 4, ".yml") == 0);
}

char *files__read(int dirfd, const char *name, size_t max, size_t *len)
{
    struct stat st;
    char *buf = NULL;
    size_t got = 0;
    int fd = -1, saved;

    if (strchr(name, '/')) {
        errno = EPERM;
        goto fail;
    }
    fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        goto fail;
    if (fstat(fd, &st) != 0)
        goto fail;
    if (!S_ISREG(st.st_mode)) {
        errno = EINVAL;
        goto fail;
    }
    if ((size_t)st.st_size > max) {
        errno = EFBIG;
        goto fail;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf)
        goto fail;
    /* Read to the end, not to st_size: a file may change between the two. */
    for (;;) {
        ssize_t k = read(fd, buf + got, (size_t)st.st_size + 1 - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            goto fail;
        if (k == 0)
            break;
        got += (size_t)k;
        if (got > (size_t)st.st_size) {
            errno = EAGAIN; /* it grew while we read: the caller may try again */
            goto fail;
        }
    }
    buf[got] = '\0';
    close(fd);
    *len = got;
    return buf;
fail:
    saved = errno;
    free(buf);
    if (fd >= 0)
        close(fd);
    errno = saved;
    return NULL;
}

/* Writes all of text to fd. */
static int write_all(int fd, const char *text, size_t len)
{
    while (len > 0) {
        ssize_t k = write(fd, text, len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -1;
        text += k;
        len -= (size_t)k;
    }
    return 0;
}

int files__write(int dirfd, const char *name, const char *text, size_t len, int exclusive,
                 mode_t mode)
{
    char tmp[UI_FILE_MAX + 32];
    unsigned char rnd[6];
    struct stat st;
    int fd = -1, rc = -1, saved, made = 0;

    if (strchr(name, '/')) {
        errno = EPERM;
        return -1;
    }
    /* A file replaced keeps its mode; a symlink or a directory is not replaced. */
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (exclusive) {
            errno = EEXIST;
            return -1;
        }
        if (!S_ISREG(st.st_mode)) {
            errno = S_ISLNK(st.st_mode) ? ELOOP : EINVAL;
            return -1;
        }
        mode = st.st_mode & 07777;
    }
    for (int attempt = 0; attempt < 16 && fd < 0; attempt++) {
        if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
            goto out;
        snprintf(tmp, sizeof tmp, ".%s.%02x%02x%02x%02x%02x%02x", name, rnd[0], rnd[1], rnd[2],
                 rnd[3], rnd[4], rnd[5]);
        fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST)
            goto out;
    }
    if (fd < 0)
        goto out;
    made = 1;
    if (write_all(fd, text, len) != 0 || fchmod(fd, mode) != 0 || fsync(fd) != 0)
        goto out;
    if (close(fd) != 0) {
        fd = -1;
        goto out;
    }
    fd = -1;
    if (exclusive) {
        if (linkat(dirfd, tmp, dirfd, name, 0) != 0)
            goto out;
        unlinkat(dirfd, tmp, 0);
    } else if (renameat(dirfd, tmp, dirfd, name) != 0) {
        goto out;
    }
    made = 0;
    /* The rename is durable once the directory is. */
    fsync(dirfd);
    rc = 0;
out:
    saved = errno;
    if (fd >= 0)
        close(fd);
    if (made)
        unlinkat(dirfd, tmp, 0);
    errno = saved;
    return rc;
}

void files__etag(const char *text, size_t len, char *buf, size_t size)
{
    unsigned char d[SHA256_DIGEST_LEN];
    struct sha256 ctx;
    size_t o = 0;

    sha256__init(&ctx);
    sha256__update(&ctx, text, len);
    sha256__final(&ctx, d);
    if (size < 36) {
        if (size)
            buf[0] = '\0';
        return;
    }
    buf[o++] = '"';
    for (size_t i = 0; i < 16; i++)
        o += (size_t)snprintf(buf + o, size - o, "%02x", d[i]);
    buf[o++] = '"';
    buf[o] = '\0';
}
