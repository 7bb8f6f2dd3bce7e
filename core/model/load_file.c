/*
 * load_file.c - reads a workflow file into memory for the loader, within
 * bounds (load__read_file).
 *
 * A workflow file is something a person wrote: a regular file of at most
 * WF_MAX_FILE_SIZE bytes, or standard input when its name is "-". Anything
 * else is refused before a byte is read, with an error at 1:1 that says what
 * the path is: reading a symlink to /dev/zero grew to gigabytes, a FIFO
 * without a writer blocked forever, and a directory or a symlink loop gave an
 * error without a position. The path is opened with O_NONBLOCK, so that
 * opening a FIFO cannot block, following symlinks (a workflow may well be a
 * link to a file elsewhere), and the opened descriptor, not the path, is
 * checked with fstat, so that nothing can be swapped in between the check
 * and the read. The read itself stops one byte past the bound, so a file
 * that grows while it is read, or a standard input that never ends, costs at
 * most the bound.
 */
#include "diag.h"
#include "load.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Every error about the file itself is at its start, so that it reads FILE:1:1 like the rest. */
static const struct wf_pos file_start = {1, 1};

/* What a path that is not a regular file is, for "not a regular file (a FIFO)". */
static const char *file_kind(mode_t mode)
{
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    if (S_ISSOCK(mode))
        return "a socket";
    return "not a file";
}

static void open_error(struct wf_diags *diags, int err)
{
    if (err == ELOOP)
        diag__error(diags, file_start,
                    "cannot read the workflow file: too many levels of symbolic links (a symlink "
                    "loop?)");
    else if (err == ENXIO)
        /* What open(2) says of a socket or a FIFO's other side. */
        diag__error(diags, file_start,
                    "not a regular file (a socket or a device without a driver): a workflow "
                    "file must be a regular file, or - for standard input");
    else
        diag__error(diags, file_start, "cannot read the workflow file: %s", strerror(err));
}

/*
 * Reads fd to its end into *buf (malloc'd, *len bytes), at most
 * WF_MAX_FILE_SIZE bytes; hint is the expected size. Returns 0 after
 * reporting an error.
 */
static int read_bounded(int fd, size_t hint, int is_stdin, struct wf_diags *diags, char **buf,
                        size_t *len)
{
    size_t cap = hint + 1, n = 0;
    char *data = NULL;
    int ok = 0;

    if (cap < 8192)
        cap = 8192;
    if (cap > (size_t)WF_MAX_FILE_SIZE + 1)
        cap = (size_t)WF_MAX_FILE_SIZE + 1;
    data = malloc(cap);
    if (!data) {
        diag__error(diags, file_start, "out of memory reading the workflow file");
        goto out;
    }
    for (;;) {
        ssize_t got;

        if (n == cap) {
            size_t want = cap * 2;
            char *bigger;

            if (want > (size_t)WF_MAX_FILE_SIZE + 1)
                want = (size_t)WF_MAX_FILE_SIZE + 1;
            if (want == cap) {
                /* One byte past the bound was read: the file is too large. */
                diag__error(diags, file_start,
                            "%s holds more than %d MiB (%d bytes), the largest workflow file "
                            "accepted",
                            is_stdin ? "standard input" : "the file (it grew while it was read)",
                            WF_MAX_FILE_SIZE >> 20, WF_MAX_FILE_SIZE);
                goto out;
            }
            bigger = realloc(data, want);
            if (!bigger) {
                diag__error(diags, file_start, "out of memory reading the workflow file");
                goto out;
            }
            data = bigger;
            cap = want;
        }
        got = read(fd, data + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* A standard input left non-blocking by whoever started us. */
            struct pollfd p = {fd, POLLIN, 0};
            (void)poll(&p, 1, -1);
            continue;
        }
        if (got < 0) {
            diag__error(diags, file_start, "cannot read the workflow file: %s", strerror(errno));
            goto out;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    *buf = data;
    *len = n;
    data = NULL;
    ok = 1;
out:
    free(data);
    return ok;
}

int load__read_file(const char *path, struct wf_diags *diags, char **buf, size_t *len)
{
    int is_stdin = strcmp(path, "-") == 0;
    int fd = -1, flags, ok = 0;
    struct stat st;

    *buf = NULL;
    *len = 0;
    if (is_stdin) {
        fd = STDIN_FILENO;
    } else {
        fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0) {
            open_error(diags, errno);
            goto out;
        }
    }
    if (fstat(fd, &st) != 0) {
        diag__error(diags, file_start, "cannot read the workflow file: %s", strerror(errno));
        goto out;
    }
    /* Standard input may be a pipe (that is its point) but not a directory. */
    if (is_stdin ? S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
        diag__error(diags, file_start,
                    "not a regular file (%s): a workflow file must be a regular file, or - for "
                    "standard input",
                    file_kind(st.st_mode));
        goto out;
    }
    if (S_ISREG(st.st_mode) && st.st_size > WF_MAX_FILE_SIZE) {
        diag__error(diags, file_start,
                    "the file is %jd bytes, over the limit of %d MiB (%d bytes) for a workflow "
                    "file",
                    (intmax_t)st.st_size, WF_MAX_FILE_SIZE >> 20, WF_MAX_FILE_SIZE);
        goto out;
    }
    /* A regular file reads the same either way; blocking reads are simpler. */
    if (!is_stdin && (flags = fcntl(fd, F_GETFL)) >= 0)
        (void)fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    ok = read_bounded(fd, S_ISREG(st.st_mode) ? (size_t)st.st_size : 0, is_stdin, diags, buf, len);
out:
    if (fd >= 0 && !is_stdin)
        close(fd);
    return ok;
}
