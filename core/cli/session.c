/*
 * session.c - one connection to a broker for one command-line client (see session.h).
 *
 * The clients own nothing: everything they show or check comes from the
 * retained topics a run keeps under flowbus/<run-id>/, and everything they do
 * is a publish any MQTT client could make. So they work from any machine that
 * reaches the broker, for runs started anywhere, and need no coordinator to
 * answer them.
 *
 * A command first takes a snapshot: it subscribes, then publishes a token on a
 * topic of its own and waits for it to come back (fb_barrier). The broker
 * sends the retained messages of a subscription before it handles our later
 * publish, so once the token is back the snapshot is complete. Commands that
 * wait (logs -f, stop, pause) keep the subscription and feed every later
 * message to the same view of the run.
 */
#include "session.h"
#include "mask.h"
#include "log.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define RECONNECT_MAX 30.0 /* seconds a waiting command tries to get the broker back */
#define MAX_FILTERS 6      /* the most any command subscribes to (status RUN) */

/* Says what went wrong, unless the session is quiet (its caller has another way). */
__attribute__((format(printf, 2, 3))) static void say(const struct session *s, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    if (s->quiet)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_printf(FB_LOG_ERROR, "%s", msg);
}

void session__msgs_free(struct session_msgs *l)
{
    for (size_t i = 0; i < l->n; i++)
        fb_msg_free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

int session__check_url(const char *url)
{
    static const char *const schemes[] = {"tcp://", "mqtt://", "mqtts://", "ssl://"};

    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
        if (strncmp(url, schemes[i], strlen(schemes[i])) == 0)
            return 1;
    log_printf(FB_LOG_ERROR,
               "unsupported broker URL '%s': expected tcp://HOST:PORT, "
               "mqtt://HOST:PORT, or mqtts:// or ssl:// for TLS",
               url);
    return 0;
}

int session__open(struct session *s, const struct session_broker *b, const char *run_id,
                  const char *label, int waits)
{
    fb_bus_options bo = {0};
    char err[256];

    s->broker = b;
    s->run_id = run_id;
    s->sigfd = -1;
    if (run_id && !fb_name_valid(FB_NAME_RUN, run_id, strlen(run_id))) {
        log_printf(FB_LOG_ERROR,
                   "'%s' is not a run id: expected 1 to %d letters, digits, "
                   "'-' or '_'",
                   run_id, FB_NAME_MAX);
        return FB_EXIT_INVALID;
    }
    if (waits) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        s->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
        if (s->sigfd < 0) {
            log_printf(FB_LOG_ERROR, "signalfd: %s", strerror(errno));
            return FB_EXIT_BROKER;
        }
    }
    bo.url = b->url;
    bo.username = b->username;
    bo.password = b->password;
    bo.ca_file = getenv("FLOWBUS_TLS_CA");
    bo.cert_file = getenv("FLOWBUS_TLS_CERT");
    bo.key_file = getenv("FLOWBUS_TLS_KEY");
    /* A command that follows a run for minutes should ride out a broker
     * restart, as the run's own processes do; a one-shot look should not. */
    bo.reconnect_max_s = waits ? RECONNECT_MAX : 0;
    bo.log = s->quiet ? NULL : log__sdk;
    if (fb_bus_new(&bo, &s->bus, err, sizeof err) != FB_OK) {
        say(s, "cannot connect to the broker at %s: %s", b->url, err);
        return FB_EXIT_BROKER;
    }
    /* The barrier topic is outside every run (a run's sync/ topics belong to
     * its coordinator, which acts on them) and unique to this process. */
    if (fb_barrier_token(s->token, sizeof s->token, NULL, label) == 0) {
        say(s, "cannot make a barrier token from '%s'", label);
        return FB_EXIT_BROKER;
    }
    return FB_EXIT_OK;
}

void session__close(struct session *s)
{
    /* A session never opened (a command that stopped at its arguments) is
     * all zeros: its sigfd of 0 is stdin, not ours to close. */
    if (!s->broker)
        return;
    if (s->bus)
        fb_bus_close(s->bus, 1.0);
    fb_bus_free(s->bus);
    s->bus = NULL;
    if (s->sigfd >= 0)
        close(s->sigfd);
    s->sigfd = -1;
}

/* Subscribes to the filters of kinds (of the session's run, or of every run) and the token. */
static int subscribe(struct session *s, const enum fb_topic_kind *kinds, size_t n)
{
    char full[MAX_FILTERS][FB_TOPIC_MAX];
    const char *all[MAX_FILTERS + 1];
    enum fb_err e;

    if (n > MAX_FILTERS)
        n = MAX_FILTERS;
    for (size_t i = 0; i < n; i++) {
        fb_topic_filter(full[i], sizeof full[i], kinds[i], s->run_id, NULL);
        all[i] = full[i];
    }
    all[n] = s->token;
    e = fb_bus_subscribe(s->bus, all, n + 1, SESSION_ANSWER_WAIT);
    if (e != FB_OK) {
        say(s, "the broker at %s did not accept our subscription: %s", s->broker->url,
            fb_strerror(e));
        return FB_EXIT_BROKER;
    }
    return FB_EXIT_OK;
}

/* The barrier's outcome as the command's exit code. */
static int barrier_code(const struct session *s, enum fb_err e)
{
    if (e == FB_OK)
        return FB_EXIT_OK;
    if (e == FB_ERR_NOMEM)
        say(s, "out of memory");
    else
        say(s, "the broker at %s did not answer within %g s: %s", s->broker->url,
            SESSION_ANSWER_WAIT, fb_strerror(e));
    return FB_EXIT_BROKER;
}

enum fb_err session__keep(void *ctx, fb_msg *m)
{
    struct session_msgs *out = ctx;

    if (out->n == out->cap) {
        /* A broker with many runs holds many retained messages: grow by doubling. */
        size_t cap = out->cap ? out->cap * 2 : 64;
        fb_msg **grown = realloc(out->v, cap * sizeof *grown);
        if (!grown) {
            fb_msg_free(m);
            return FB_ERR_NOMEM;
        }
        out->v = grown;
        out->cap = cap;
    }
    out->v[out->n++] = m;
    return FB_OK;
}

int session__collect(struct session *s, const enum fb_topic_kind *kinds, size_t n,
                     struct session_msgs *out)
{
    int code = subscribe(s, kinds, n);

    if (code != FB_EXIT_OK)
        return code;
    return barrier_code(s, fb_barrier(s->bus, s->token, SESSION_ANSWER_WAIT, session__keep, out));
}

int session__snapshot(struct session *s, const enum fb_topic_kind *kinds, size_t n, struct view *vw,
                      fb_barrier_fn live, void *ctx)
{
    int code = subscribe(s, kinds, n);

    if (code != FB_EXIT_OK)
        return code;
    return barrier_code(s, view__read(vw, s->bus, s->token, SESSION_ANSWER_WAIT, live, ctx));
}

struct run_view *session__find_run(const struct session *s, const struct view *vw)
{
    struct run_view *rv = view__run(vw, s->run_id);

    if (!rv)
        log_printf(FB_LOG_ERROR,
                   "there is no run '%s' on %s (nothing retained under " FB_TOPIC_ROOT "/%s/)",
                   s->run_id, s->broker->url, s->run_id);
    return rv;
}

int session__dispatch(struct view *vw, const fb_msg *m, session_watch_fn cb, void *ctx)
{
    struct view_event ev;
    enum view_change c = view__feed(vw, m->topic, m->payload, m->len, &ev);

    return c == VIEW_NONE ? SESSION_KEEP_WATCHING : cb(ctx, vw, m, c, &ev);
}

int session__watch(struct session *s, struct view *vw, double deadline, session_watch_fn cb,
                   void *ctx)
{
    struct pollfd pfd[2] = {{.fd = s->sigfd, .events = POLLIN},
                            {.fd = fb_bus_fd(s->bus), .events = POLLIN}};

    for (;;) {
        int ms = -1;
        if (deadline > 0) {
            double left = deadline - fb_clock_mono();
            if (left <= 0)
                return SESSION_TIMEOUT;
            /* Whole milliseconds, rounded up so that the wait never ends early. */
            ms = left > 3600 ? 3600000 : (int)(left * 1000) + 1;
        }
        if (poll(pfd, 2, ms) < 0 && errno != EINTR) {
            log_printf(FB_LOG_ERROR, "poll: %s", strerror(errno));
            return FB_EXIT_BROKER;
        }
        if (pfd[0].revents)
            return FB_EXIT_INTERRUPTED;
        for (;;) {
            fb_msg *m = NULL;
            enum fb_err e = fb_bus_next(s->bus, 0, &m);
            int code;
            if (e == FB_ERR_LOST) {
                log_printf(FB_LOG_ERROR, "lost the connection to the broker at %s", s->broker->url);
                return FB_EXIT_BROKER;
            }
            if (e != FB_OK)
                break;
            /* What a client shows of a run holds no secret this process knows (mask.h). */
            m->len = mask__apply(m->payload, m->len);
            code = session__dispatch(vw, m, cb, ctx);
            fb_msg_free(m);
            if (code != SESSION_KEEP_WATCHING)
                return code;
        }
    }
}
