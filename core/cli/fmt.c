/*
 * fmt.c - `flowbus fmt FILE... [--check] [--write] [--diff]`: the canonical
 * layout of workflow files (core/model/emit.h), as gofmt, black and prettier
 * do it for code. Without options it prints the canonical text; --check lists
 * the files that are not canonical and exits 1; --write rewrites those (and
 * only those) atomically, through a temporary file renamed over the original;
 * --diff prints what would change as a unified diff.
 */
#include "emit.h"
#include "fmt.h"
#include "textdiff.h"
#include "workflow.h"

#include <flowbus/protocol.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char fmt__usage[] =
    "Usage: flowbus fmt FILE... [--check] [--write] [--diff]\n"
    "\n"
    "Print each workflow FILE in the canonical layout (docs/workflow-format.md,\n"
    "\"Canonical layout\"): keys in the reference order, one block per task, default\n"
    "values left out, short lists in flow style. Comments before the file, before each\n"
    "task or key and at the end of a line are kept.\n"
    "\n"
    "Options:\n"
    "  --check   print the names of the files that are not canonical; exit 1 if any\n"
    "  --write   rewrite the files that are not canonical (atomically); others are left alone\n"
    "  --diff    print what would change, as a unified diff\n"
    "  -h, --help\n"
    "\n"
    "Exit codes: 0 done (or every file canonical), 1 --check found a file to reformat,\n"
    "2 a file is not a valid workflow, cannot be read or written, or a usage error.\n";

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, got;

    *len = 0;
    if (!f)
        return NULL;
    do {
        if (*len + 4096 + 1 > cap) {
            char *bigger = realloc(buf, cap = (*len + 4096 + 1) * 2);
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
        }
        got = fread(buf + *len, 1, cap - *len - 1, f);
        *len += got;
        buf[*len] = 0;
    } while (got > 0);
    if (buf && ferror(f)) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

/*
 * Replaces path's contents with text: a temporary file in the same directory
 * (of the symlink's target, so the link stays a link), with path's mode,
 * synced, then renamed over it. A crash leaves the old file or the new one.
 */
static int write_atomic(const char *path, const char *text, size_t len)
{
    char target[PATH_MAX], tmp[PATH_MAX + 32] = "";
    const char *slash;
    struct stat st;
    int fd = -1, ok = 0;
    size_t done = 0;

    if (!realpath(path, target) || stat(target, &st) != 0)
        goto fail;
    slash = strrchr(target, '/');
    snprintf(tmp, sizeof tmp, "%.*s/.%s.fmt-XXXXXX", (int)(slash - target), target, slash + 1);
    fd = mkstemp(tmp);
    if (fd < 0)
        goto fail;
    while (done < len) {
        ssize_t n = write(fd, text + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto fail;
        done += (size_t)n;
    }
    if (fchmod(fd, st.st_mode & 07777) != 0 || fsync(fd) != 0)
        goto fail;
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, target) != 0)
        goto fail;
    ok = 1;
fail:
    if (!ok) {
        fprintf(stderr, "flowbus: %s: cannot write: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        if (tmp[0])
            unlink(tmp);
    }
    return ok;
}

/* One file; returns 0 canonical (or written), 1 not canonical, 2 an error. */
static int fmt_one(const char *file, int check, int write, int diff)
{
    struct wf_diags diags = {0};
    size_t len;
    char *text = read_all(file, &len), *canon = NULL;
    int code = FB_EXIT_INVALID, changed;

    if (!text) {
        fprintf(stderr, "flowbus: %s: cannot read: %s\n", file, strerror(errno));
        goto out;
    }
    canon = emit__format_text(file, text, len, &diags);
    if (!canon) {
        wf_diags_print(&diags, file, stderr);
        goto out;
    }
    changed = strlen(canon) != len || memcmp(canon, text, len) != 0;
    code = FB_EXIT_OK;
    if (!check && !write && !diff) {
        fputs(canon, stdout);
        goto out;
    }
    if (!changed)
        goto out;
    if (diff) {
        char to[PATH_MAX + 16];
        snprintf(to, sizeof to, "%s (canonical)", file);
        if (textdiff__unified(text, len, canon, strlen(canon), file, to, stdout) != 0) {
            fprintf(stderr, "flowbus: out of memory\n");
            code = FB_EXIT_INVALID;
            goto out;
        }
    }
    if (check && !diff)
        printf("%s\n", file);
    if (write) {
        if (!write_atomic(file, canon, strlen(canon))) {
            code = FB_EXIT_INVALID;
            goto out;
        }
        fprintf(stderr, "flowbus: %s: reformatted\n", file);
    }
    if (check)
        code = FB_EXIT_FAILED;
out:
    wf_diags_free(&diags);
    free(text);
    free(canon);
    return code;
}

int fmt__main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"check", no_argument, 0, 'c'},
        {"write", no_argument, 0, 'w'},
        {"diff", no_argument, 0, 'd'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int check = 0, write = 0, diff = 0, c, code = FB_EXIT_OK;

    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            check = 1;
            break;
        case 'w':
            write = 1;
            break;
        case 'd':
            diff = 1;
            break;
        case 'h':
            fputs(fmt__usage, stdout);
            return FB_EXIT_OK;
        default:
            fprintf(stderr, "\n%s", fmt__usage);
            return FB_EXIT_INVALID;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "flowbus: fmt needs at least one workflow FILE\n\n%s", fmt__usage);
        return FB_EXIT_INVALID;
    }
    for (int i = optind; i < argc; i++) {
        int one = fmt_one(argv[i], check, write, diff);
        /* An error outranks a file to reformat. */
        if (one == FB_EXIT_INVALID || (one == FB_EXIT_FAILED && code == FB_EXIT_OK))
            code = one;
    }
    return code;
}
