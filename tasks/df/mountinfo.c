/*
 * mountinfo.c - parses /proc/self/mountinfo text to find the mount holding a
 * path. Each line reads (proc(5)):
 *
 *   36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
 *   id parent maj:min root mount-point options [optional fields...] - fstype source super-options
 *
 * The optional fields are variable in number and end at a lone "-".
 */
#include "mountinfo.h"

#include <stdlib.h>
#include <string.h>

#define MAX_FIELDS 64

void mountinfo__unescape(char *s)
{
    char *out = s;

    while (*s) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
            s[3] >= '0' && s[3] <= '7') {
            *out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 4;
        } else {
            *out++ = *s++;
        }
    }
    *out = '\0';
}

/* Splits line (modified in place) at spaces into fields; returns their number. */
static size_t split_fields(char *line, char **fields, size_t max)
{
    size_t n = 0;
    char *p = line;

    while (*p && n < max) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        fields[n++] = p;
        while (*p && *p != ' ')
            p++;
        if (*p)
            *p++ = '\0';
    }
    return n;
}

/*
 * Returns the length of mount point mp if it covers path (path equals it or
 * continues it with a '/'), else -1. "/" covers every absolute path.
 */
static long covers(const char *mp, const char *path)
{
    size_t n = strlen(mp);

    if (strcmp(mp, "/") == 0)
        return 1;
    if (strncmp(mp, path, n) != 0)
        return -1;
    if (path[n] != '\0' && path[n] != '/')
        return -1;
    return (long)n;
}

void mountinfo__clear(struct mountinfo_mount *m)
{
    free(m->mount_point);
    free(m->fstype);
    free(m->source);
    memset(m, 0, sizeof *m);
}

int mountinfo__lookup(const char *text, size_t len, const char *path, struct mountinfo_mount *out)
{
    char *copy = NULL, *line, *next;
    long best_len = -1;
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (!path || path[0] != '/')
        goto out;
    copy = malloc(len + 1);
    if (!copy) {
        rc = -2;
        goto out;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';

    for (line = copy; line && *line; line = next) {
        char *fields[MAX_FIELDS];
        size_t n, i, dash = 0;
        unsigned major, minor;
        long match;
        char *mp, *fstype, *source, *tail;
        char *nl = strchr(line, '\n');

        next = nl ? nl + 1 : NULL;
        if (nl)
            *nl = '\0';
        n = split_fields(line, fields, MAX_FIELDS);
        if (n < 7)
            continue;
        for (i = 6; i < n; i++) {
            if (strcmp(fields[i], "-") == 0) {
                dash = i;
                break;
            }
        }
        /* After the separator come fstype and source (super-options may be absent). */
        if (dash == 0 || dash + 2 >= n)
            continue;
        major = (unsigned)strtoul(fields[2], &tail, 10);
        if (*tail != ':')
            continue;
        minor = (unsigned)strtoul(tail + 1, &tail, 10);
        if (*tail != '\0')
            continue;
        mp = fields[4];
        mountinfo__unescape(mp);
        match = covers(mp, path);
        /* ">=": of mounts on the same point, the later one is on top. */
        if (match < 0 || match < best_len)
            continue;
        fstype = fields[dash + 1];
        source = fields[dash + 2];
        mountinfo__unescape(fstype);
        mountinfo__unescape(source);

        mountinfo__clear(out);
        out->mount_point = strdup(mp);
        out->fstype = strdup(fstype);
        out->source = strdup(source);
        out->major = major;
        out->minor = minor;
        if (!out->mount_point || !out->fstype || !out->source) {
            mountinfo__clear(out);
            rc = -2;
            goto out;
        }
        best_len = match;
        rc = 0;
    }
out:
    free(copy);
    return rc;
}

const char *mountinfo__volume_name(const char *source)
{
    const char *slash;

    if (strncmp(source, "/dev/", 5) != 0)
        return source;
    slash = strrchr(source, '/');
    /* "/dev/" alone has no component to report: keep the source as it is. */
    return slash[1] ? slash + 1 : source;
}
