/*
 * sse.c - event logs and Server-Sent Events streams (see sse.h).
 *
 * A stream's content reader runs in one of libmicrohttpd's pool threads. It
 * fills MHD's buffer with whole frames while they fit (a frame that does not
 * fit is copied to the stream and sent in parts, so the ring may drop it
 * meanwhile), and when it has nothing to send it suspends the connection and
 * returns 0, which MHD documents as the one proper way for a reader to wait
 * in internal-polling mode. Suspending and resuming happen under the hub's
 * lock, with the stream's `suspended` flag saying which state it is in, so
 * a resume is never lost nor doubled.
 */
#define _GNU_SOURCE /* asprintf, pipe2, POSIX_SPAWN_SETSID, explicit_bzero */
#include "sse.h"
#include "internal.h"

#include <flowbus/flowbus.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char retry_frame[] = "retry: 2000\n\n";
static const char keepalive_frame[] = ": keepalive\n\n";

struct frame {
    char *text;
    size_t len;
};

struct sse_stream;

struct sse_log {
    char *key;
    struct frame *ring;
    size_t cap;
    unsigned long long first, last; /* ids held: first..last; empty when last < first */
    struct sse_stream *streams;
    int dropped; /* forget it once its last stream ends */
    struct sse_log *next;
};

struct sse_stream {
    struct sse_hub *hub;
    struct sse_log *log;
    struct MHD_Connection *conn;
    unsigned long long next; /* the id of the next frame to send */
    char *pending;           /* a frame (or the prefix) being sent in parts */
    size_t pending_len, pending_off;
    int suspended, keepalive_due;
    struct sse_stream *next_in_log;
};

struct sse_hub {
    pthread_mutex_t lock;
    pthread_cond_t gone; /* a stream was freed */
    struct sse_log *logs;
    size_t n_streams;
    unsigned long long base; /* every log's ids start at base + 1 */
    int stopping;
};

struct sse_hub *sse__new(void)
{
    struct sse_hub *h = calloc(1, sizeof *h);
    struct timespec ts;

    if (!h)
        return NULL;
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->gone, NULL);
    clock_gettime(CLOCK_REALTIME, &ts);
    h->base = ((unsigned long long)ts.tv_sec * 1000ULL + (unsigned long long)ts.tv_nsec / 1000000ULL) *
              1000ULL;
    return h;
}

static void log_free(struct sse_log *l)
{
    if (!l)
        return;
    for (unsigned long long id = l->first; id <= l->last && l->cap; id++)
        free(l->ring[id % l->cap].text);
    free(l->ring);
    free(l->key);
    free(l);
}

void sse__free(struct sse_hub *h)
{
    if (!h)
        return;
    while (h->logs) {
        struct sse_log *l = h->logs;
        h->logs = l->next;
        log_free(l);
    }
    pthread_cond_destroy(&h->gone);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

static struct sse_log *find_log(struct sse_hub *h, const char *key)
{
    for (struct sse_log *l = h->logs; l; l = l->next)
        if (strcmp(l->key, key) == 0)
            return l;
    return NULL;
}

static struct sse_log *get_log(struct sse_hub *h, const char *key)
{
    struct sse_log *l = find_log(h, key);

    if (l)
        return l;
    l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->key = strdup(key);
    l->cap = key[0] ? SSE_RUN_EVENTS : SSE_LIST_EVENTS;
    l->ring = calloc(l->cap, sizeof *l->ring);
    if (!l->key || !l->ring) {
        log_free(l);
        return NULL;
    }
    l->first = h->base + 1;
    l->last = h->base;
    l->next = h->logs;
    h->logs = l;
    return l;
}

/* Resumes a suspended stream (under the hub's lock). */
static void wake(struct sse_stream *s)
{
    if (s->suspended) {
        s->suspended = 0;
        MHD_resume_connection(s->conn);
    }
}

void sse__emit(struct sse_hub *h, const char *key, const char *event, json_t *data)
{
    char *json = data ? json_dumps(data, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    struct sse_log *l;
    struct frame f = {0};
    int n;

    json_decref(data);
    if (!json)
        return;
    pthread_mutex_lock(&h->lock);
    l = get_log(h, key);
    if (!l)
        goto out;
    /* JSON_COMPACT text has no newline, so one data: line carries it. */
    n = asprintf(&f.text, "id: %llu\nevent: %s\ndata: %s\n\n", l->last + 1, event, json);
    if (n < 0) {
        f.text = NULL;
        goto out;
    }
    f.len = (size_t)n;
    l->last++;
    if (l->last - l->first + 1 > l->cap) {
        free(l->ring[l->first % l->cap].text);
        l->ring[l->first % l->cap].text = NULL;
        l->first++;
    }
    l->ring[l->last % l->cap] = f;
    for (struct sse_stream *s = l->streams; s; s = s->next_in_log)
        wake(s);
out:
    pthread_mutex_unlock(&h->lock);
    free(json);
}

int sse__range(struct sse_hub *h, const char *key, unsigned long long *origin,
               unsigned long long *first, unsigned long long *last)
{
    struct sse_log *l;
    int found = 0;

    pthread_mutex_lock(&h->lock);
    l = find_log(h, key);
    *origin = h->base;
    if (l) {
        *first = l->first;
        *last = l->last;
        found = 1;
    }
    pthread_mutex_unlock(&h->lock);
    return found;
}

/* Sets the stream's pending text (copied). 0 when out of memory. */
static int set_pending(struct sse_stream *s, const char *text, size_t len)
{
    char *copy = malloc(len);

    if (!copy)
        return 0;
    memcpy(copy, text, len);
    free(s->pending);
    s->pending = copy;
    s->pending_len = len;
    s->pending_off = 0;
    return 1;
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct sse_stream *s = cls;
    struct sse_hub *h = s->hub;
    size_t written = 0;
    ssize_t ret;

    (void)pos;
    pthread_mutex_lock(&h->lock);
    while (written < max) {
        struct sse_log *l = s->log;
        const struct frame *f;
        if (s->pending) {
            size_t k = s->pending_len - s->pending_off;
            if (k > max - written)
                k = max - written;
            memcpy(buf + written, s->pending + s->pending_off, k);
            written += k;
            s->pending_off += k;
            if (s->pending_off == s->pending_len) {
                free(s->pending);
                s->pending = NULL;
            }
            continue;
        }
        if (h->stopping)
            break;
        if (s->next > l->last) {
            if (!s->keepalive_due)
                break;
            s->keepalive_due = 0;
            if (!set_pending(s, keepalive_frame, sizeof keepalive_frame - 1))
                break;
            continue;
        }
        if (s->next < l->first)
            break; /* fell behind the ring: end, and let the client resume with a snapshot */
        f = &l->ring[s->next % l->cap];
        if (f->len <= max - written) {
            memcpy(buf + written, f->text, f->len);
            written += f->len;
        } else if (!set_pending(s, f->text, f->len)) {
            break;
        }
        s->next++;
    }
    if (written > 0) {
        ret = (ssize_t)written;
    } else if (h->stopping || s->next < s->log->first) {
        ret = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        s->suspended = 1;
        MHD_suspend_connection(s->conn);
        ret = 0;
    }
    pthread_mutex_unlock(&h->lock);
    return ret;
}

static void forget_log(struct sse_hub *h, struct sse_log *l)
{
    for (struct sse_log **p = &h->logs; *p; p = &(*p)->next)
        if (*p == l) {
            *p = l->next;
            log_free(l);
            return;
        }
}

static void stream_free(void *cls)
{
    struct sse_stream *s = cls;
    struct sse_hub *h = s->hub;

    pthread_mutex_lock(&h->lock);
    for (struct sse_stream **p = &s->log->streams; *p; p = &(*p)->next_in_log)
        if (*p == s) {
            *p = s->next_in_log;
            break;
        }
    if (s->log->dropped && !s->log->streams)
        forget_log(h, s->log);
    h->n_streams--;
    pthread_cond_broadcast(&h->gone);
    pthread_mutex_unlock(&h->lock);
    free(s->pending);
    free(s);
}

struct MHD_Response *sse__open(struct sse_hub *h, struct MHD_Connection *conn, const char *key,
                               unsigned long long after, const char *snapshot_event,
                               json_t *snapshot, int *busy)
{
    struct sse_stream *s = NULL;
    struct MHD_Response *resp = NULL;
    char *json = NULL, *prefix = NULL;
    int n;

    *busy = 0;
    if (snapshot_event) {
        json = json_dumps(snapshot, JSON_COMPACT | JSON_ENSURE_ASCII);
        if (!json)
            goto out;
        n = asprintf(&prefix, "%sid: %llu\nevent: %s\ndata: %s\n\n", retry_frame, after,
                     snapshot_event, json);
    } else {
        n = asprintf(&prefix, "%s", retry_frame);
    }
    if (n < 0) {
        prefix = NULL;
        goto out;
    }
    s = calloc(1, sizeof *s);
    if (!s)
        goto out;
    pthread_mutex_lock(&h->lock);
    if (h->stopping || h->n_streams >= UI_MAX_STREAMS) {
        *busy = !h->stopping;
        pthread_mutex_unlock(&h->lock);
        goto out;
    }
    s->log = get_log(h, key);
    if (!s->log) {
        pthread_mutex_unlock(&h->lock);
        goto out;
    }
    s->hub = h;
    s->conn = conn;
    s->next = after + 1;
    s->pending = prefix;
    s->pending_len = (size_t)n;
    prefix = NULL;
    s->next_in_log = s->log->streams;
    s->log->streams = s;
    s->log->dropped = 0;
    h->n_streams++;
    pthread_mutex_unlock(&h->lock);
    resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, reader, s, stream_free);
    if (!resp) {
        stream_free(s);
        s = NULL;
        goto out;
    }
    s = NULL;
    MHD_add_response_header(resp, "Content-Type", "text/event-stream; charset=utf-8");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    /* A reverse proxy must not hold the stream back (nginx buffers by default). */
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
out:
    if (s) {
        free(s->pending);
        free(s);
    }
    free(prefix);
    free(json);
    json_decref(snapshot);
    return resp;
}

void sse__tick(struct sse_hub *h)
{
    pthread_mutex_lock(&h->lock);
    for (struct sse_log *l = h->logs; l; l = l->next)
        for (struct sse_stream *s = l->streams; s; s = s->next_in_log) {
            s->keepalive_due = 1;
            wake(s);
        }
    pthread_mutex_unlock(&h->lock);
}

void sse__drop(struct sse_hub *h, const char *key)
{
    struct sse_log *l;

    pthread_mutex_lock(&h->lock);
    l = find_log(h, key);
    if (l && !l->streams)
        forget_log(h, l);
    else if (l)
        l->dropped = 1;
    pthread_mutex_unlock(&h->lock);
}

void sse__shutdown(struct sse_hub *h, double timeout)
{
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)timeout;
    pthread_mutex_lock(&h->lock);
    h->stopping = 1;
    for (struct sse_log *l = h->logs; l; l = l->next)
        for (struct sse_stream *s = l->streams; s; s = s->next_in_log)
            wake(s);
    while (h->n_streams > 0)
        if (pthread_cond_timedwait(&h->gone, &h->lock, &until) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&h->lock);
}

size_t sse__count(struct sse_hub *h)
{
    size_t n;

    pthread_mutex_lock(&h->lock);
    n = h->n_streams;
    pthread_mutex_unlock(&h->lock);
    return n;
}
