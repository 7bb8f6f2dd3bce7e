/*
 * bus.c - the MQTT client of `flowbus ui` (see bus.h).
 *
 * The follower subscribes to flowbus/+/# and feeds every message to the run
 * view, as `flowbus status` and `logs -f` do, and each change becomes an
 * event of the run's SSE log and, when the run's line in the list changes,
 * of the list's log. Retained messages are fed the same way, so a run that
 * was on the broker before the server started has a log that begins with
 * its state at that moment. bus__start waits for the barrier of
 * flowbus/protocol.h, so the first GET /api/runs already lists every run.
 *
 * Secrets: the view never holds the value of a variable the run's workflow
 * marks secret (view.h); the events say "***" for it.
 */
#define _GNU_SOURCE /* asprintf, pipe2, POSIX_SPAWN_SETSID, explicit_bzero */
#include "bus.h"
#include "internal.h"
#include "log.h"
#include "sse.h"

#include <flowbus/flowbus.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define KEEPALIVE_EVERY 15.0 /* seconds between keepalive comments on the streams */
#define ANSWER_WAIT 10.0     /* seconds for the broker to answer */

struct ui_bus {
    struct ui *ui;
    fb_bus *follow, *pub;
    pthread_mutex_t view_lock;
    pthread_cond_t changed; /* the view changed (bus__wait_run) */
    pthread_mutex_t pub_lock;
    struct view *view;
    json_t *flags; /* run id -> FLAG_* bits */
    json_t *last;  /* run id -> {task or variable topic -> the last event's text} */
    json_t *models; /* run id -> its workflow topic's JSON (secrets already masked) */
    pthread_t thread;
    int thread_started;
    int wake_fd; /* eventfd: tells the thread to stop */
    char token[FB_TOPIC_MAX];
};

enum { FLAG_EXISTS = 1, FLAG_ENDED = 2, FLAG_GONE = 4 };

void bus__lock(struct ui_bus *b)
{
    pthread_mutex_lock(&b->view_lock);
}

void bus__unlock(struct ui_bus *b)
{
    pthread_mutex_unlock(&b->view_lock);
}

struct view *bus__view(struct ui_bus *b)
{
    return b->view;
}

/* ------------------------------------------------------------------------ */
/* The JSON of a run                                                         */
/* ------------------------------------------------------------------------ */

static json_t *var_json(const struct view_var *v)
{
    json_t *o = json_object();
    int lossy = 0;

    json_object_set_new(o, "name", json_string(v->key.name));
    if (v->secret)
        json_object_set_new(o, "value", json_string("***"));
    else if (!v->value)
        json_object_set_new(o, "value", json_null());
    else
        json_object_set_new(o, "value", http__string_lossy(v->value, v->value_len, &lossy));
    json_object_set_new(o, "secret", json_boolean(v->secret));
    if (lossy)
        json_object_set_new(o, "lossy", json_true());
    return o;
}

json_t *bus__run_json(struct ui *ui, const struct run_view *rv)
{
    json_t *o = view__run_json(rv, fb_clock_wall()), *vars = json_array();

    for (size_t i = 0; vars && i < rv->n_vars; i++)
        json_array_append_new(vars, var_json(&rv->vars[i]));
    json_object_set_new(o, "vars", vars);
    json_object_set_new(o, "started_here", json_boolean(ui__started_here(ui, rv->run_id)));
    /* What a browser draws a run with that it did not start, even once the
     * stream's workflow event has left the ring. */
    json_object_set(o, "model", json_object_get(ui->bus->models, rv->run_id)
                                    ? json_object_get(ui->bus->models, rv->run_id)
                                    : json_null());
    return o;
}

json_t *bus__list_entry(struct ui *ui, struct run_view *rv)
{
    json_t *list = view__list_json(&rv, 1, ui->broker_url, fb_clock_wall());
    json_t *entry = json_incref(json_array_get(json_object_get(list, "runs"), 0));

    json_decref(list);
    if (entry)
        json_object_set_new(entry, "started_here",
                            json_boolean(ui__started_here(ui, rv->run_id)));
    return entry;
}

/* The run's line of the record: status --json's, without its tasks. */
static json_t *run_summary(const struct run_view *rv)
{
    json_t *o = view__run_json(rv, fb_clock_wall());

    json_object_del(o, "tasks");
    return o;
}

/* ------------------------------------------------------------------------ */
/* Changes to events                                                         */
/* ------------------------------------------------------------------------ */

static int get_flags(struct ui_bus *b, const char *id)
{
    return (int)json_integer_value(json_object_get(b->flags, id));
}

static void set_flags(struct ui_bus *b, const char *id, int f)
{
    json_object_set_new(b->flags, id, json_integer(f));
}

/*
 * 1 if this event repeats the last one of the same topic word for word. A
 * coordinator publishes its retained topics again at the end of a run (with
 * an expiry, docs/reliability.md), and a reconnect delivers them again: a
 * task state message repeated exactly is not a change. A variable published
 * again with the same value is an event in a reactive run (every publish
 * fires), so only one-shot runs drop those.
 */
static int repeated(struct ui_bus *b, const char *id, const char *topic, json_t *data)
{
    json_t *seen = json_object_get(b->last, id);
    char *text = json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS);
    const char *before;
    int same;

    if (!text)
        return 0;
    if (!seen) {
        seen = json_object();
        json_object_set_new(b->last, id, seen);
    }
    before = json_string_value(json_object_get(seen, topic));
    same = before && strcmp(before, text) == 0;
    if (!same)
        json_object_set_new(seen, topic, json_string(text));
    free(text);
    return same;
}

static void list_event(struct ui_bus *b, struct run_view *rv)
{
    json_t *entry = bus__list_entry(b->ui, rv);

    if (entry)
        sse__emit(b->ui->sse, "", "run", entry);
}

/* The events of one change of the view (under the view lock). */
static void emit_change(struct ui_bus *b, const fb_msg *m, enum view_change c,
                        const struct view_event *ev)
{
    struct sse_hub *h = b->ui->sse;
    struct run_view *rv = ev->run;
    const char *id = rv->run_id;
    int flags = get_flags(b, id), exists = view__exists(rv);
    fb_topic t;

    /* The rest of a removal (flowbus gc deletes topic after topic) is not news. */
    if ((flags & FLAG_GONE) && !exists)
        return;
    switch (c) {
    case VIEW_RUN:
        if (rv->has_record)
            sse__emit(h, id, "run", run_summary(rv));
        if (rv->has_record && fb_run_state_is_final(rv->state) && !(flags & FLAG_ENDED)) {
            sse__emit(h, id, "end",
                      json_pack("{s:s?, s:o, s:s?}", "state", rv->state_name, "exit",
                                rv->has_exit ? json_integer(rv->exit_code) : json_null(),
                                "error", rv->error));
            flags |= FLAG_ENDED;
        } else if (rv->has_record && !fb_run_state_is_final(rv->state)) {
            flags &= ~FLAG_ENDED; /* resumed (flowbus resume): it may end again */
        }
        if (exists)
            list_event(b, rv);
        break;
    case VIEW_TASK: {
        const struct view_task *task = view__task(rv, ev->task);
        json_t *o = task ? view__task_json(task) : json_pack("{s:n}", "state");
        json_object_set_new(o, "task", json_string(ev->task));
        if (repeated(b, id, m->topic, o)) {
            json_decref(o);
            break;
        }
        sse__emit(h, id, "task", o);
        if (exists)
            list_event(b, rv);
        break;
    }
    case VIEW_LOG: {
        int lossy = 0;
        json_t *line = http__string_lossy(ev->line, strlen(ev->line), &lossy);
        sse__emit(h, id, "log", json_pack("{s:s, s:o}", "task", ev->task, "line", line));
        break;
    }
    case VIEW_OTHER:
        fb_topic_parse(m->topic, &t);
        if (t.kind == FB_TOPIC_VAR) {
            char name[FB_NAME_MAX + 1];
            const struct view_var *v;
            snprintf(name, sizeof name, "%.*s", (int)t.name_len, t.name);
            v = view__var(rv, name);
            if (v) {
                json_t *o = var_json(v);
                if (!view__reactive(rv) && repeated(b, id, m->topic, o))
                    json_decref(o);
                else
                    sse__emit(h, id, "var", o);
            }
        } else if (t.kind == FB_TOPIC_CONTROL) {
            const char *cmd = fb_control_name(rv->control);
            sse__emit(h, id, "control", json_pack("{s:s?}", "cmd", cmd));
        } else if (t.kind == FB_TOPIC_WORKFLOW) {
            /* As the coordinator published it: secrets are already "<secret>". */
            json_t *wf = m->len ? json_loadb(m->payload, m->len, 0, NULL) : NULL;
            if (wf)
                json_object_set(b->models, id, wf);
            else
                json_object_del(b->models, id);
            sse__emit(h, id, "workflow", wf ? wf : json_null());
            if (exists)
                list_event(b, rv);
        }
        break;
    default:
        break;
    }
    if (exists) {
        flags = (flags | FLAG_EXISTS) & ~FLAG_GONE;
    } else if (flags & FLAG_EXISTS) {
        /* Its retained topics were removed (flowbus gc). */
        sse__emit(h, id, "gone", json_pack("{s:s}", "run_id", id));
        sse__emit(h, "", "gone", json_pack("{s:s}", "run_id", id));
        sse__drop(h, id); /* freed once its last stream has read the gone */
        flags = FLAG_GONE;
        json_object_del(b->last, id);
        json_object_del(b->models, id);
    }
    set_flags(b, id, flags);
}

/* Feeds one message and emits its events; takes and frees m. */
static enum fb_err feed(void *ctx, fb_msg *m)
{
    struct ui_bus *b = ctx;
    struct view_event ev;
    enum view_change c;

    pthread_mutex_lock(&b->view_lock);
    c = view__feed(b->view, m->topic, m->payload, m->len, &ev);
    if (c != VIEW_NONE && ev.run)
        emit_change(b, m, c, &ev);
    if (c != VIEW_NONE)
        pthread_cond_broadcast(&b->changed);
    pthread_mutex_unlock(&b->view_lock);
    fb_msg_free(m);
    return FB_OK;
}

static void *follow_thread(void *arg)
{
    struct ui_bus *b = arg;
    /*
     * The publishing connection is served here too: on libmosquitto a bus has
     * no thread, and one nobody calls into for 1.5 keepalives is dropped.
     */
    struct pollfd pfd[3] = {{.fd = b->wake_fd, .events = POLLIN},
                            {.fd = fb_bus_fd(b->follow), .events = POLLIN},
                            {.fd = -1, .events = POLLIN}};
    double next_tick = fb_clock_mono() + KEEPALIVE_EVERY;
    int lost_said = 0;

    pthread_mutex_lock(&b->pub_lock);
    pfd[2].fd = fb_bus_fd(b->pub);
    pthread_mutex_unlock(&b->pub_lock);

    for (;;) {
        double left = next_tick - fb_clock_mono();
        int ms = left <= 0 ? 0 : (int)(left * 1000) + 1;
        if (poll(pfd, 3, ms) < 0 && errno != EINTR)
            break;
        if (pfd[0].revents)
            break;
        if (pfd[2].revents) {
            fb_msg *m = NULL;

            pthread_mutex_lock(&b->pub_lock);
            /* It subscribes to nothing: a call only does the connection's own work. */
            if (fb_bus_next(b->pub, 0, &m) == FB_ERR_LOST)
                pfd[2].fd = -1;
            fb_msg_free(m);
            pthread_mutex_unlock(&b->pub_lock);
        }
        if (fb_clock_mono() >= next_tick) {
            sse__tick(b->ui->sse);
            next_tick = fb_clock_mono() + KEEPALIVE_EVERY;
        }
        for (;;) {
            fb_msg *m = NULL;
            enum fb_err e = fb_bus_next(b->follow, 0, &m);
            if (e == FB_ERR_LOST) {
                if (!lost_said)
                    log_printf(FB_LOG_ERROR, "ui: lost the broker at %s for good; the run view "
                               "no longer changes", b->ui->broker_url);
                lost_said = 1;
                pfd[1].fd = -1;
                break;
            }
            if (e != FB_OK)
                break;
            feed(b, m);
        }
    }
    return NULL;
}

static fb_bus *connect_bus(struct ui *ui, const char *role, char *err, size_t errlen)
{
    fb_bus_options bo = {0};
    char cid[64], why[256];
    fb_bus *bus = NULL;

    snprintf(cid, sizeof cid, "flowbus-ui-%s-%ld", role, (long)getpid());
    bo.url = ui->broker_url;
    bo.username = ui->username;
    bo.password = ui->password;
    bo.client_id = cid;
    bo.ca_file = getenv("FLOWBUS_TLS_CA");
    bo.cert_file = getenv("FLOWBUS_TLS_CERT");
    bo.key_file = getenv("FLOWBUS_TLS_KEY");
    bo.reconnect_max_s = -1; /* a server rides out broker restarts for as long as it lives */
    bo.log = log__sdk;
    if (fb_bus_new(&bo, &bus, why, sizeof why) != FB_OK) {
        snprintf(err, errlen, "cannot connect to the broker at %s: %s", ui->broker_url, why);
        return NULL;
    }
    return bus;
}

struct ui_bus *bus__start(struct ui *ui, char *err, size_t errlen)
{
    struct ui_bus *b = calloc(1, sizeof *b);
    char filter[FB_TOPIC_MAX];
    const char *filters[2];
    enum fb_err e;

    if (!b) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    b->ui = ui;
    b->wake_fd = -1;
    pthread_mutex_init(&b->view_lock, NULL);
    pthread_mutex_init(&b->pub_lock, NULL);
    pthread_cond_init(&b->changed, NULL);
    b->view = view__new();
    b->flags = json_object();
    b->last = json_object();
    b->models = json_object();
    b->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (!b->view || !b->flags || !b->last || !b->models || b->wake_fd < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (!(b->follow = connect_bus(ui, "follow", err, errlen)) ||
        !(b->pub = connect_bus(ui, "pub", err, errlen)))
        goto fail;
    fb_topic_filter(filter, sizeof filter, FB_TOPIC_ALL, NULL, NULL);
    fb_barrier_token(b->token, sizeof b->token, NULL, "ui");
    filters[0] = filter;
    filters[1] = b->token;
    e = fb_bus_subscribe(b->follow, filters, 2, ANSWER_WAIT);
    if (e == FB_OK)
        e = fb_barrier(b->follow, b->token, ANSWER_WAIT, feed, b);
    if (e != FB_OK) {
        snprintf(err, errlen, "the broker at %s did not answer our subscription: %s",
                 ui->broker_url, fb_strerror(e));
        goto fail;
    }
    if (pthread_create(&b->thread, NULL, follow_thread, b) != 0) {
        snprintf(err, errlen, "cannot start a thread: %s", strerror(errno));
        goto fail;
    }
    b->thread_started = 1;
    return b;
fail:
    bus__stop(b);
    return NULL;
}

void bus__stop(struct ui_bus *b)
{
    uint64_t one = 1;

    if (!b)
        return;
    if (b->thread_started) {
        if (write(b->wake_fd, &one, sizeof one) < 0)
            log_printf(FB_LOG_WARN, "ui: cannot wake the bus thread: %s", strerror(errno));
        pthread_join(b->thread, NULL);
    }
    if (b->follow)
        fb_bus_close(b->follow, 1.0);
    if (b->pub)
        fb_bus_close(b->pub, 1.0);
    fb_bus_free(b->follow);
    fb_bus_free(b->pub);
    if (b->wake_fd >= 0)
        close(b->wake_fd);
    view__free(b->view);
    json_decref(b->flags);
    json_decref(b->last);
    json_decref(b->models);
    pthread_cond_destroy(&b->changed);
    pthread_mutex_destroy(&b->pub_lock);
    pthread_mutex_destroy(&b->view_lock);
    free(b);
}

enum fb_err bus__publish(struct ui_bus *b, const char *topic, const char *payload, size_t len)
{
    enum fb_err e;

    pthread_mutex_lock(&b->pub_lock);
    e = fb_bus_publish(b->pub, topic, payload, len, 1, 1, 0);
    if (e == FB_OK)
        e = fb_bus_flush(b->pub, ANSWER_WAIT);
    pthread_mutex_unlock(&b->pub_lock);
    return e;
}

int bus__wait_run(struct ui_bus *b, const char *run_id, double timeout, int (*stop)(void *),
                  void *ctx)
{
    double until = fb_clock_mono() + timeout;
    int found = 0;

    pthread_mutex_lock(&b->view_lock);
    for (;;) {
        struct run_view *rv = view__run(b->view, run_id);
        struct timespec ts;
        double left = until - fb_clock_mono();
        if (rv && view__exists(rv) && rv->has_record) {
            found = 1;
            break;
        }
        if (left <= 0 || (stop && stop(ctx)))
            break;
        /* Wake at least every 100 ms to ask stop(), which watches a child process. */
        if (left > 0.1)
            left = 0.1;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += (time_t)left;
        ts.tv_nsec += (long)((left - (double)(time_t)left) * 1e9);
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&b->changed, &b->view_lock, &ts);
    }
    pthread_mutex_unlock(&b->view_lock);
    return found;
}
