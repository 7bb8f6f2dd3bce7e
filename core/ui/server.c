/*
 * server.c - the libmicrohttpd daemon of `flowbus ui`: requests, their
 * bodies and limits, the security checks every request passes, and the
 * routing to the handlers of docs/http-api.md.
 *
 * libmicrohttpd parses HTTP; this file never does. The daemon runs a small
 * pool of threads, each with its own epoll loop (MHD_USE_AUTO picks epoll on
 * Linux), and allows suspend/resume, which the event streams use so that an
 * idle stream holds no thread.
 *
 * The checks, in order, before any handler runs:
 *   1. Host must name this server (listen address, localhost names), so a
 *      page whose DNS name was rebound to 127.0.0.1 is refused (403);
 *   2. under /api/, an Origin header must be this server's own origin and
 *      Sec-Fetch-Site must not be cross-site (CSRF; 403);
 *   3. under /api/, the token (Bearer, cookie or ?token=) must match (401).
 * Bodies are refused past UI_BODY_MAX, from Content-Length before reading or
 * while reading a chunked one (413).
 */
#define _GNU_SOURCE /* asprintf, pipe2, POSIX_SPAWN_SETSID, explicit_bzero */
#include "internal.h"
#include "log.h"

#include <flowbus/flowbus.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define POOL_THREADS 4
#define CONNECTION_LIMIT 256
#define CONNECTION_TIMEOUT 60 /* seconds without traffic, for anything but a stream */

/* ------------------------------------------------------------------------ */
/* Security                                                                  */
/* ------------------------------------------------------------------------ */

/* Constant-time comparison of a presented token with ours. */
static int token_equal(const char *given, size_t len, const char *ours)
{
    size_t n = strlen(ours);
    unsigned char diff = len != n;

    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(ours[i] ^ (i < len ? given[i] : 0));
    return diff == 0;
}

/* The value of cookie name in the Cookie headers, or NULL. */
static const char *cookie_value(const struct request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, name);
}

/* 1 if the request carries our token (or none is required). */
static int token_ok(const struct request *r)
{
    const struct ui *ui = r->ui;
    const char *auth = http__header(r, "Authorization"), *v;

    if (!ui->token_required)
        return 1;
    if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
        v = auth + 7;
        while (*v == ' ')
            v++;
        if (token_equal(v, strlen(v), ui->token))
            return 1;
    }
    v = cookie_value(r, ui->cookie_name);
    if (v && token_equal(v, strlen(v), ui->token))
        return 1;
    v = http__arg(r, "token");
    return v && token_equal(v, strlen(v), ui->token);
}

/*
 * Splits a Host header (name[:port], [v6]:port) into its lower-cased name and
 * port (0 when absent). Returns 0 when it is malformed.
 */
static int split_host(const char *host, char *name, size_t size, unsigned *port)
{
    const char *end, *colon;
    size_t n;

    *port = 0;
    if (host[0] == '[') {
        end = strchr(host, ']');
        if (!end)
            return 0;
        host++;
        colon = end[1] == ':' ? end + 1 : NULL;
        if (end[1] && !colon)
            return 0;
    } else {
        colon = strrchr(host, ':');
        end = colon ? colon : host + strlen(host);
    }
    n = (size_t)(end - host);
    if (n == 0 || n >= size)
        return 0;
    for (size_t i = 0; i < n; i++)
        name[i] = (char)tolower((unsigned char)host[i]);
    name[n] = '\0';
    if (colon) {
        char *stop;
        unsigned long p = strtoul(colon + 1, &stop, 10);
        if (*stop || stop == colon + 1 || p == 0 || p > 65535)
            return 0;
        *port = (unsigned)p;
    }
    return 1;
}

/* 1 if the Host header names this server (DNS rebinding). */
static int host_ok(const struct request *r)
{
    static const char *const local[] = {"localhost", "127.0.0.1", "::1"};
    const struct ui *ui = r->ui;
    const char *host = http__header(r, "Host");
    char name[256];
    unsigned port;

    if (!host || !split_host(host, name, sizeof name, &port))
        return 0;
    if (ui->wildcard)
        return 1; /* any name reaches a wildcard address: the token guards it */
    if ((port ? port : 80) != ui->port)
        return 0;
    for (size_t i = 0; i < sizeof local / sizeof local[0]; i++)
        if (strcmp(name, local[i]) == 0)
            return 1;
    if (strcasecmp(name, ui->listen_host) == 0)
        return 1;
    return !ui->loopback && ui->hostname[0] && strcasecmp(name, ui->hostname) == 0;
}

/* 1 if Origin (when present) is this server's origin, and the fetch is not cross-site (CSRF). */
static int origin_ok(const struct request *r)
{
    const char *origin = http__header(r, "Origin"), *host = http__header(r, "Host");
    const char *site = http__header(r, "Sec-Fetch-Site");

    if (site && strcasecmp(site, "cross-site") == 0)
        return 0;
    if (!origin)
        return 1;
    if (r->ui->o->allow_origin && strcasecmp(origin, r->ui->o->allow_origin) == 0)
        return 1;
    if (!host || strncasecmp(origin, "http://", 7) != 0)
        return 0;
    return strcasecmp(origin + 7, host) == 0;
}

/* ------------------------------------------------------------------------ */
/* Routing                                                                   */
/* ------------------------------------------------------------------------ */

enum MHD_Result api__method_not_allowed(struct request *r, const char *allowed)
{
    json_t *extra = json_pack("{s:s}", "allowed", allowed);
    struct MHD_Response *resp;
    char msg[160];
    json_t *body;

    snprintf(msg, sizeof msg, "%s is not allowed on %s; allowed: %s", r->method, r->path, allowed);
    body = json_pack("{s:s, s:i, s:[]}", "error", msg, "status", MHD_HTTP_METHOD_NOT_ALLOWED,
                     "diagnostics");
    if (body && extra)
        json_object_update(body, extra);
    json_decref(extra);
    resp = http__json_response(body);
    if (resp)
        MHD_add_response_header(resp, "Allow", allowed);
    return http__queue(r, MHD_HTTP_METHOD_NOT_ALLOWED, resp);
}

/* path after "/api/": route to its handler. */
static enum MHD_Result route_api(struct request *r, const char *p)
{
    size_t n;

#define IS(word) (n = strlen(word), strncmp(p, word, n) == 0 && (p[n] == '\0' || p[n] == '/'))
    if (IS("info") && !p[n])
        return api__info(r);
    if (IS("plugins"))
        return api__plugins(r, p[n] ? p + n + 1 : NULL);
    if (IS("workflows"))
        return api__workflows(r, p[n] ? p + n + 1 : NULL);
    if (IS("validate") && !p[n])
        return api__validate(r);
    if (IS("format") && !p[n])
        return api__format(r);
    if (IS("graph") && p[n])
        return api__graph(r, p + n + 1);
    if (IS("runs"))
        return api__runs(r, p[n] ? p + n + 1 : NULL);
    if (IS("events") && !p[n])
        return api__events(r);
#undef IS
    return http__error(r, MHD_HTTP_NOT_FOUND, NULL, NULL, NULL, "no such route: %s", r->path);
}

/* A page opened with ?token=: keep the token in a cookie, and take it out of the address. */
static enum MHD_Result token_redirect(struct request *r)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    char cookie[256];

    if (!resp)
        return MHD_NO;
    snprintf(cookie, sizeof cookie, "%s=%s; HttpOnly; SameSite=Strict; Path=/",
             r->ui->cookie_name, r->ui->token);
    MHD_add_response_header(resp, "Set-Cookie", cookie);
    MHD_add_response_header(resp, "Location", r->path);
    return http__queue(r, MHD_HTTP_FOUND, resp);
}

static enum MHD_Result handle(struct request *r)
{
    int api = strncmp(r->path, "/api/", 5) == 0 || strcmp(r->path, "/api") == 0;

    if (!host_ok(r))
        return http__error(r, MHD_HTTP_FORBIDDEN, NULL, NULL, NULL,
                           "the Host header does not name this server (expected localhost or "
                           "the listen address, with port %u)",
                           r->ui->port);
    if (!api) {
        if (http__arg(r, "token") && r->ui->token_required && token_ok(r) &&
            (strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0))
            return token_redirect(r);
        return static__serve(r);
    }
    if (!origin_ok(r))
        return http__error(r, MHD_HTTP_FORBIDDEN, NULL, NULL, NULL,
                           "cross-origin request refused: Origin must be this server's own");
    if (!token_ok(r)) {
        json_t *extra = json_pack("{s:b}", "token_required", 1);
        return http__error(r, MHD_HTTP_UNAUTHORIZED, NULL, NULL, extra,
                           "missing or wrong token: open the URL flowbus ui printed (with "
                           "?token=...), or send Authorization: Bearer TOKEN");
    }
    if (r->ui->stopping)
        return http__error(r, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, NULL, NULL,
                           "the server is shutting down");
    return route_api(r, r->path[4] == '/' ? r->path + 5 : r->path + 4);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    struct request *r = *con_cls;
    const char *cl;

    (void)version;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        r->ui = cls;
        r->conn = conn;
        r->method = method;
        r->path = url;
        r->t0 = fb_clock_mono();
        *con_cls = r;
        cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > UI_BODY_MAX) {
            r->too_large = 1;
            return http__error(r, MHD_HTTP_CONTENT_TOO_LARGE, NULL, NULL, NULL,
                               "the body is larger than %d bytes", UI_BODY_MAX);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        size_t k = *upload_size;
        *upload_size = 0;
        if (r->too_large || r->len + k > UI_BODY_MAX) {
            /* Read and dropped, so that the 413 reaches a client that is still
             * sending (closing on unread data would reset the connection and
             * lose the answer); past UI_DROP_MAX the connection is cut. */
            r->too_large = 1;
            r->dropped += k;
            if (r->dropped > UI_DROP_MAX)
                return MHD_NO;
            free(r->body);
            r->body = NULL;
            r->len = r->cap = 0;
            return MHD_YES;
        }
        if (r->len + k + 1 > r->cap) {
            size_t cap = r->cap ? r->cap : 4096;
            char *grown;
            while (cap < r->len + k + 1)
                cap *= 2;
            grown = realloc(r->body, cap);
            if (!grown)
                return MHD_NO;
            r->body = grown;
            r->cap = cap;
        }
        memcpy(r->body + r->len, upload, k);
        r->len += k;
        r->body[r->len] = '\0';
        return MHD_YES;
    }
    if (r->too_large)
        return http__error(r, MHD_HTTP_CONTENT_TOO_LARGE, NULL, NULL, NULL,
                           "the body is larger than %d bytes", UI_BODY_MAX);
    return handle(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode why)
{
    struct request *r = *con_cls;

    (void)cls;
    (void)conn;
    (void)why;
    if (!r)
        return;
    http__log_access(r);
    free(r->body);
    free(r);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    size_t n;

    (void)cls;
    vsnprintf(msg, sizeof msg, fmt, ap);
    n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_printf(FB_LOG_WARN, "ui: libmicrohttpd: %s", msg);
}

/* Splits "ADDR:PORT" ("[V6]:PORT") into its parts. */
static int split_listen(const char *text, char *host, size_t size, char *port, size_t psize)
{
    const char *colon;
    size_t n;

    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (!end || end[1] != ':')
            return 0;
        n = (size_t)(end - text - 1);
        if (n >= size)
            return 0;
        memcpy(host, text + 1, n);
        host[n] = '\0';
        colon = end + 1;
    } else {
        colon = strrchr(text, ':');
        if (!colon)
            return 0;
        n = (size_t)(colon - text);
        if (n == 0 || n >= size)
            return 0;
        memcpy(host, text, n);
        host[n] = '\0';
    }
    if (strlen(colon + 1) == 0 || strlen(colon + 1) >= psize ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1))
        return 0;
    snprintf(port, psize, "%s", colon + 1);
    return 1;
}

int server__start(struct ui *ui, char *err, size_t errlen)
{
    const char *addr = ui->o->listen ? ui->o->listen : "127.0.0.1:8080";
    struct addrinfo hints = {0}, *ai = NULL;
    char port[8];
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    const union MHD_DaemonInfo *info;
    int rc = 0, gai;

    if (!split_listen(addr, ui->listen_host, sizeof ui->listen_host, port, sizeof port)) {
        snprintf(err, errlen, "--listen '%s': expected ADDRESS:PORT, e.g. 127.0.0.1:8080 or "
                 "[::1]:8080", addr);
        goto out;
    }
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    gai = getaddrinfo(ui->listen_host, port, &hints, &ai);
    if (gai != 0 || !ai) {
        snprintf(err, errlen, "--listen '%s': %s", addr, gai_strerror(gai));
        goto out;
    }
    if (ai->ai_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)ai->ai_addr;
        uint32_t a = ntohl(sin->sin_addr.s_addr);
        ui->loopback = (a >> 24) == 127;
        ui->wildcard = a == INADDR_ANY;
    } else if (ai->ai_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)ai->ai_addr;
        ui->loopback = IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
        ui->wildcard = IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr);
        flags |= MHD_USE_IPv6;
    } else {
        snprintf(err, errlen, "--listen '%s': not an IPv4 or IPv6 address", addr);
        goto out;
    }
    if (ui->o->no_token && !ui->loopback) {
        snprintf(err, errlen, "--no-token is refused on %s: any address but a loopback one "
                 "requires the token", addr);
        goto out;
    }
    ui->token_required = !ui->o->no_token;
    ui->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, ui, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, ui,
        MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)POOL_THREADS, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, ui, MHD_OPTION_END);
    if (!ui->daemon) {
        snprintf(err, errlen, "cannot listen on %s: %s", addr,
                 errno ? strerror(errno) : "libmicrohttpd refused the options");
        goto out;
    }
    info = MHD_get_daemon_info(ui->daemon, MHD_DAEMON_INFO_BIND_PORT);
    ui->port = info ? info->port : 0;
    /* Cookies are not kept apart by port: two servers on one host need two names. */
    snprintf(ui->cookie_name, sizeof ui->cookie_name, "flowbus_ui_token_%u", ui->port);
    rc = 1;
out:
    if (ai)
        freeaddrinfo(ai);
    return rc;
}

void server__stop(struct ui *ui)
{
    if (ui->daemon)
        MHD_stop_daemon(ui->daemon);
    ui->daemon = NULL;
}
