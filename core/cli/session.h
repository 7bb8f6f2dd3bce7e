/*
 * session.h - one connection to a broker for one command-line client
 * (`flowbus status`, `set`, `logs`, `stop`, `pause`, `gc`).
 *
 * A session connects, takes snapshots with the barrier of flowbus/protocol.h
 * on a token topic of its own, and (for the commands that wait) follows the
 * bus until a callback, Ctrl-C or a deadline ends the wait. Every error is
 * said once on stderr (log_printf) and comes back as the command's exit
 * code (enum fb_exit), so a command only passes it on.
 */
#ifndef FLOWBUS_CORE_CLI_SESSION_H
#define FLOWBUS_CORE_CLI_SESSION_H

#include <stddef.h>

#include <flowbus/protocol.h>

#include "view.h"

#define SESSION_ANSWER_WAIT 10.0 /* seconds for the broker to answer a subscribe or the barrier */

/* Where to connect, and as whom. */
struct session_broker {
    const char *url;      /* required */
    const char *username; /* may be NULL */
    const char *password; /* may be NULL; never printed */
};

struct session {
    int quiet; /* set before session__open: say nothing of a failure, only return it */
    const struct session_broker *broker;
    const char *run_id; /* the run the command is about; NULL for every run */
    fb_bus *bus;
    int sigfd; /* signalfd for Ctrl-C while waiting; -1 when the command does not wait */
    char token[FB_TOPIC_MAX]; /* the barrier topic, ours alone */
};

/* Messages in arrival order (session__collect). */
struct session_msgs {
    fb_msg **v;
    size_t n, cap;
};
void session__msgs_free(struct session_msgs *l);

/*
 * Checks the URL's scheme before connecting, so that a typo is a usage error
 * (FB_EXIT_INVALID), not "broker down". Returns 1 if it is usable; else says
 * so and returns 0.
 */
int session__check_url(const char *url);

/*
 * Connects for the run run_id (NULL: every run; else checked as a run id).
 * label names the barrier token (fb_barrier_token). A command that waits
 * blocks SIGINT, SIGTERM and SIGHUP first, so that Paho's threads (which
 * inherit the mask) never take them, and reads them from a signalfd in its
 * poll loop instead: Ctrl-C then ends the wait cleanly; it also rides out a
 * broker restart. Returns FB_EXIT_OK or the exit code; session__close either way
 * (also on a zeroed session that was never opened).
 */
int session__open(struct session *s, const struct session_broker *b, const char *run_id,
                  const char *label, int waits);
void session__close(struct session *s);

/*
 * Subscribes to the topics of the kinds given (of the session's run, or of
 * every run: fb_topic_filter with a NULL name) and to the token, and collects
 * every message that arrives until the token comes back, in arrival order:
 * the retained ones are the snapshot, any others were live. Returns FB_EXIT_OK or the
 * exit code.
 */
int session__collect(struct session *s, const enum fb_topic_kind *kinds, size_t n,
                     struct session_msgs *out);

/*
 * The same, fed to vw as it arrives (view__read): with live set, the
 * messages that are not retained go to live instead (which owns them), for a
 * command that shows the snapshot before what happened since. Returns FB_EXIT_OK or
 * the exit code.
 */
int session__snapshot(struct session *s, const enum fb_topic_kind *kinds, size_t n, struct view *vw,
                      fb_barrier_fn live, void *ctx);

/* An fb_barrier_fn that appends each message to the struct session_msgs at ctx. */
enum fb_err session__keep(void *ctx, fb_msg *m);

/* The view of the session's run, or NULL (after saying so) when the broker has no such run. */
struct run_view *session__find_run(const struct session *s, const struct view *vw);

#define SESSION_KEEP_WATCHING (-1) /* a watch callback's "not finished yet" */
#define SESSION_TIMEOUT (-2)       /* session__watch: the deadline passed */

/*
 * Called for each message after it was fed to the view, unless it was
 * VIEW_NONE: returns SESSION_KEEP_WATCHING, or the command's exit code to
 * end the watch.
 */
typedef int (*session_watch_fn)(void *ctx, struct view *vw, const fb_msg *m, enum view_change c,
                                const struct view_event *ev);

/* Feeds m to vw and hands it to cb; returns cb's answer (SESSION_KEEP_WATCHING if none). */
int session__dispatch(struct view *vw, const fb_msg *m, session_watch_fn cb, void *ctx);

/*
 * Feeds every message that arrives to vw and hands it to cb, until cb ends
 * the watch, Ctrl-C (FB_EXIT_INTERRUPTED), the monotonic deadline (if > 0;
 * SESSION_TIMEOUT) or the final loss of the broker (FB_EXIT_BROKER).
 */
int session__watch(struct session *s, struct view *vw, double deadline, session_watch_fn cb,
                   void *ctx);

#endif
