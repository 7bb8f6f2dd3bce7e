/*
 * static.c - the editor's built files (ui/dist, installed under
 * share/flowbus/ui), served by `flowbus ui` from its static directory.
 *
 * Paths are confined like workflow files: each segment is a plain name
 * (letters, digits, '.', '_', '-', not starting with '.'), opened with
 * openat and O_NOFOLLOW from the directory, so neither ".." nor a symlink
 * leads out of it. A path without a file answers index.html, so the
 * editor's own routes survive a reload. Without a built editor, "/"
 * answers a page that says how to build it.
 */
#define _GNU_SOURCE /* asprintf, pipe2, POSIX_SPAWN_SETSID, explicit_bzero */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATIC_MAX (32 * 1024 * 1024)

static const char not_built[] =
    "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>flowbus ui</title></head>\n"
    "<body style=\"font-family: sans-serif; max-width: 40em; margin: 3em auto\">\n"
    "<h1>flowbus ui</h1>\n"
    "<p>The server is running, but the browser editor is not built.</p>\n"
    "<p>Build it with <code>scripts/setup</code> (which installs Node.js and npm from apt when\n"
    "they are missing), or by hand: <code>cd ui &amp;&amp; npm ci &amp;&amp; npm run build</code>;\n"
    "then restart <code>flowbus ui</code>, or point <code>--static</code> at the built\n"
    "directory.</p>\n"
    "<p>The JSON API works without it: <a href=\"/api/workflows\">/api/workflows</a>,\n"
    "<a href=\"/api/runs\">/api/runs</a> (docs/http-api.md).</p>\n"
    "</body></html>\n";

static const char *content_type(const char *name)
{
    static const char *const types[][2] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json; charset=utf-8"},
        {".map", "application/json; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".woff2", "font/woff2"},
        {".woff", "font/woff"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(name, '.');

    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i][0]) == 0)
            return types[i][1];
    return "application/octet-stream";
}

static int plain_segment(const char *s, size_t n)
{
    if (n == 0 || n > 255 || s[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '@' || c == '+'))
            return 0;
    }
    return 1;
}

/* Opens path (below the static directory) segment by segment; -1 with errno. */
static int open_beneath(int dirfd, const char *path, struct stat *st)
{
    char seg[256];
    int fd = dup(dirfd), next;

    while (fd >= 0 && *path) {
        size_t n = strcspn(path, "/");
        if (!plain_segment(path, n)) {
            close(fd);
            errno = EPERM;
            return -1;
        }
        memcpy(seg, path, n);
        seg[n] = '\0';
        path += n;
        while (*path == '/')
            path++;
        next = openat(fd, seg, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (*path ? O_DIRECTORY : 0));
        close(fd);
        fd = next;
    }
    if (fd >= 0 && (fstat(fd, st) != 0 || !S_ISREG(st->st_mode))) {
        close(fd);
        errno = EISDIR;
        return -1;
    }
    return fd;
}

enum MHD_Result static__serve(struct request *r)
{
    struct ui *ui = r->ui;
    const char *path = r->path, *name;
    struct MHD_Response *resp;
    struct stat st;
    int fd = -1, index = 0;

    if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0)
        return api__method_not_allowed(r, "GET");
    while (*path == '/')
        path++;
    if (ui->static_fd < 0) {
        if (*path)
            return http__error(r, MHD_HTTP_NOT_FOUND, NULL, NULL, NULL,
                               "the editor is not built; GET / says how to build it");
        return http__text(r, MHD_HTTP_OK, "text/html; charset=utf-8", not_built,
                          sizeof not_built - 1);
    }
    if (*path)
        fd = open_beneath(ui->static_fd, path, &st);
    if (fd < 0 && *path && errno == EPERM)
        return http__error(r, MHD_HTTP_FORBIDDEN, NULL, NULL, NULL, "not a file of the editor");
    if (fd < 0) {
        /* The editor's own routes: its index.html answers them. A missing
         * asset (a file name with an extension) is a plain 404. */
        name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        if (strchr(name, '.'))
            return http__error(r, MHD_HTTP_NOT_FOUND, NULL, NULL, NULL, "no such file: %s",
                               r->path);
        fd = open_beneath(ui->static_fd, "index.html", &st);
        index = 1;
        path = "index.html";
        if (fd < 0)
            return http__text(r, MHD_HTTP_OK, "text/html; charset=utf-8", not_built,
                              sizeof not_built - 1);
    }
    if (st.st_size > STATIC_MAX) {
        close(fd);
        return http__error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL, NULL, "file too large");
    }
    resp = MHD_create_response_from_fd((size_t)st.st_size, fd);
    if (!resp) {
        close(fd);
        return http__queue(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL);
    }
    index = index || strcmp(path, "index.html") == 0;
    MHD_add_response_header(resp, "Content-Type", content_type(path));
    /* Hashed assets never change under one name; index.html names the current ones. */
    MHD_add_response_header(resp, "Cache-Control",
                            !index && strncmp(path, "assets/", 7) == 0
                                ? "public, max-age=31536000, immutable"
                                : "no-cache");
    if (index)
        MHD_add_response_header(resp, "Content-Security-Policy",
                                "default-src 'self'; img-src 'self' data:; style-src 'self' "
                                "'unsafe-inline'; worker-src 'self' blob:; frame-ancestors 'none'");
    return http__queue(r, MHD_HTTP_OK, resp);
}
