/*
 * http.c - how `flowbus ui` answers: JSON and text replies with the headers
 * every answer carries, the one error body of docs/http-api.md
 * ({"error", "status", "diagnostics"}), request bodies as JSON, and the
 * access log line.
 *
 * Every answer says no-store (an API answer is a snapshot, and a workflow's
 * text must never sit in a shared cache), nosniff, and refuses framing, so
 * that another site can neither read the API nor overlay the editor.
 */
#define _GNU_SOURCE /* asprintf, pipe2, POSIX_SPAWN_SETSID, explicit_bzero */
#include "internal.h"
#include "log.h"

#include <flowbus/flowbus.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char json_ctype[] = "application/json; charset=utf-8";

enum MHD_Result http__queue(struct request *r, unsigned status, struct MHD_Response *resp)
{
    enum MHD_Result ret;

    if (!resp) {
        /* Out of memory: the bare status is still an answer. */
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        if (!resp)
            return MHD_NO;
    }
    if (!MHD_get_response_header(resp, "Cache-Control"))
        MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    r->status = status;
    ret = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

struct MHD_Response *http__json_response(json_t *body)
{
    struct MHD_Response *resp = NULL;
    char *text;

    if (!body)
        return NULL;
    text = json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(body);
    if (!text)
        return NULL;
    resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return NULL;
    }
    MHD_add_response_header(resp, "Content-Type", json_ctype);
    return resp;
}

enum MHD_Result http__json(struct request *r, unsigned status, json_t *body)
{
    return http__queue(r, status, http__json_response(body));
}

enum MHD_Result http__text(struct request *r, unsigned status, const char *ctype, const char *text,
                           size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);

    if (resp)
        MHD_add_response_header(resp, "Content-Type", ctype);
    return http__queue(r, status, resp);
}

json_t *http__diags_json(const struct wf_diags *d, const char *file)
{
    json_t *list = json_array();

    for (size_t i = 0; list && d && i < d->n; i++) {
        const struct wf_diag *g = &d->items[i];
        json_array_append_new(list, json_pack("{s:s, s:i, s:i, s:s, s:s}", "file", file, "line",
                                              g->pos.line, "col", g->pos.col, "severity",
                                              g->severity == WF_ERROR ? "error" : "warning",
                                              "message", g->message ? g->message : ""));
    }
    return list;
}

enum MHD_Result http__error(struct request *r, unsigned status, const struct wf_diags *d,
                            const char *file, json_t *extra, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    json_t *body;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    body = json_pack("{s:s, s:i, s:o}", "error", msg, "status", (int)status, "diagnostics",
                     http__diags_json(d, file ? file : ""));
    if (body && extra)
        json_object_update(body, extra);
    json_decref(extra);
    return http__json(r, status, body);
}

const char *http__header(const struct request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *http__arg(const struct request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

json_t *http__body_object(struct request *r, enum MHD_Result *res)
{
    const char *ctype = http__header(r, "Content-Type");
    json_error_t e;
    json_t *v;

    if (!ctype || strncasecmp(ctype, "application/json", 16) != 0 ||
        (ctype[16] && ctype[16] != ';' && ctype[16] != ' ')) {
        *res = http__error(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, NULL, NULL, NULL,
                           "the body must be JSON with Content-Type: application/json, got %s",
                           ctype ? ctype : "no Content-Type");
        return NULL;
    }
    v = json_loadb(r->body ? r->body : "", r->len, JSON_REJECT_DUPLICATES, &e);
    if (!v) {
        *res = http__error(r, MHD_HTTP_BAD_REQUEST, NULL, NULL, NULL,
                           "the body is not valid JSON: line %d, column %d: %s", e.line, e.column,
                           e.text);
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        *res = http__error(r, MHD_HTTP_BAD_REQUEST, NULL, NULL, NULL,
                           "the body must be a JSON object");
        return NULL;
    }
    return v;
}

/* The length of the UTF-8 sequence at s (at most n bytes), or 0 if it is not valid. */
static size_t utf8_char(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned cp;

    if (s[0] < 0x80)
        return s[0] ? 1 : 0; /* a NUL is valid UTF-8, but jansson strings stop there: replace */
    if ((s[0] & 0xE0) == 0xC0)
        len = 2, cp = s[0] & 0x1Fu;
    else if ((s[0] & 0xF0) == 0xE0)
        len = 3, cp = s[0] & 0x0Fu;
    else if ((s[0] & 0xF8) == 0xF0)
        len = 4, cp = s[0] & 0x07u;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    /* Overlong forms, surrogates and values past U+10FFFF are not UTF-8. */
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
        return 0;
    return len;
}

json_t *http__string_lossy(const char *s, size_t len, int *lossy)
{
    const unsigned char *p = (const unsigned char *)s;
    char *out;
    size_t o = 0;
    json_t *v;

    *lossy = 0;
    out = malloc(len * 3 + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_char(p + i, len - i);
        if (k == 0) {
            memcpy(out + o, "\xEF\xBF\xBD", 3); /* U+FFFD */
            o += 3;
            i++;
            *lossy = 1;
        } else {
            memcpy(out + o, p + i, k);
            o += k;
            i += k;
        }
    }
    out[o] = '\0';
    v = json_stringn(out, o);
    free(out);
    return v;
}

void http__log_access(const struct request *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char addr[64] = "?", path[256];
    size_t n = 0;

    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, addr,
                      sizeof addr);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, addr,
                      sizeof addr);
    }
    /* The path only: MHD keeps the query string (where a token may be) apart.
     * It is decoded, so a %0A in it would forge a log line: bytes that are
     * not printable ASCII are written as '?'. */
    for (const char *p = r->path ? r->path : ""; *p && n + 1 < sizeof path; p++)
        path[n++] = (*p >= 0x20 && *p < 0x7F) ? *p : '?';
    path[n] = '\0';
    log_printf(FB_LOG_INFO, "ui: %s \"%s %s\" %u%s %.1f ms", addr, r->method, path, r->status,
               r->stream ? " stream" : "", (fb_clock_mono() - r->t0) * 1000.0);
}
