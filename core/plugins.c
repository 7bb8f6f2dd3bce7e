/*
 * plugins.c - finding plugin executables (see plugins.h).
 *
 * The directory of the running flowbus binary comes from /proc/self/exe so that
 * a freshly built build/bin/flowbus finds the plugins built beside it without
 * installing anything or setting a path.
 */
#include "plugins.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef FLOWBUS_LIBEXECDIR
#define FLOWBUS_LIBEXECDIR "/usr/local/libexec/flowbus"
#endif

static int plain_name(const char *s)
{
    if (!*s || strlen(s) > 64)
        return 0;
    for (; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-'))
            return 0;
    }
    return 1;
}

/* Fills buf with the directory of the running binary; empty on failure. */
static void self_dir(char *buf, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", buf, len - 1);
    char *slash;

    if (n <= 0) {
        buf[0] = '\0';
        return;
    }
    buf[n] = '\0';
    slash = strrchr(buf, '/');
    if (slash)
        *slash = '\0';
    else
        buf[0] = '\0';
}

static char *try_dir(const char *dir, size_t dirlen, const char *plugin)
{
    char path[PATH_MAX];
    char *resolved = NULL;

    if (dirlen == 0)
        return NULL;
    if (snprintf(path, sizeof path, "%.*s/flowbus-%s", (int)dirlen, dir, plugin) >= (int)sizeof path)
        return NULL;
    if (access(path, X_OK) != 0)
        return NULL;
    resolved = realpath(path, NULL);
    return resolved;
}

char *plugins__lookup(void *ctx, const char *plugin)
{
    const char *env = getenv("FLOWBUS_PLUGIN_PATH");
    char dir[PATH_MAX];
    char *found = NULL;

    (void)ctx;
    if (!plain_name(plugin))
        goto out;
    if (env) {
        const char *p = env;
        while (*p && !found) {
            const char *colon = strchr(p, ':');
            size_t n = colon ? (size_t)(colon - p) : strlen(p);
            found = try_dir(p, n, plugin);
            p += n;
            if (*p == ':')
                p++;
        }
        if (found)
            goto out;
    }
    self_dir(dir, sizeof dir);
    found = try_dir(dir, strlen(dir), plugin);
    if (found)
        goto out;
#ifdef FLOWBUS_LIBEXEC_REL
    /* An installed flowbus: <prefix>/bin/flowbus and <prefix>/libexec/flowbus/. */
    if (strlen(dir) + sizeof FLOWBUS_LIBEXEC_REL + 1 < sizeof dir) {
        strcat(dir, "/" FLOWBUS_LIBEXEC_REL);
        found = try_dir(dir, strlen(dir), plugin);
        if (found)
            goto out;
    }
#endif
    found = try_dir(FLOWBUS_LIBEXECDIR, strlen(FLOWBUS_LIBEXECDIR), plugin);
out:
    return found;
}

/* Appends ", dir" (or "dir" first) to buf unless buf already lists it. */
static void add_dir(char *buf, unsigned long len, const char *dir)
{
    size_t used = strlen(buf), n = strlen(dir);
    const char *p = buf;

    if (n == 0)
        return;
    while ((p = strstr(p, dir)) != NULL) {
        if ((p == buf || p[-1] == ' ' || p[-1] == ':' || p[-1] == '=') &&
            (p[n] == '\0' || p[n] == ',' || p[n] == ':'))
            return;
        p += n;
    }
    snprintf(buf + used, len - used, "%s%s", used ? ", " : "", dir);
}

void plugins__describe_path(char *buf, unsigned long len)
{
    char dir[PATH_MAX], resolved[PATH_MAX];
    const char *env = getenv("FLOWBUS_PLUGIN_PATH");

    buf[0] = '\0';
    /* The order of plugins__lookup. */
    if (env && *env)
        snprintf(buf, len, "FLOWBUS_PLUGIN_PATH=%s", env);
    self_dir(dir, sizeof dir);
    add_dir(buf, len, dir);
#ifdef FLOWBUS_LIBEXEC_REL
    if (strlen(dir) + sizeof FLOWBUS_LIBEXEC_REL + 1 < sizeof dir) {
        strcat(dir, "/" FLOWBUS_LIBEXEC_REL);
        /* Shown only where it exists: a build tree has no libexec/ beside bin/. */
        if (realpath(dir, resolved))
            add_dir(buf, len, resolved);
    }
#endif
    add_dir(buf, len, FLOWBUS_LIBEXECDIR);
}
