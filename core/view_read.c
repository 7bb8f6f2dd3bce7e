/*
 * view_read.c - reading a run view's snapshot from a bus (see view.h).
 *
 * The one part of the view that does I/O, kept apart so that view.c stays
 * pure. It is the barrier of flowbus/protocol.h with a view behind it: once
 * the token comes back, every retained message of the subscriptions has been
 * fed, and the view is the broker's state of the runs.
 */
#include "view.h"
#include "mask.h"

struct reading {
    struct view *vw;
    fb_barrier_fn live;
    void *ctx;
};

static enum fb_err take(void *ctx, fb_msg *m)
{
    struct reading *r = ctx;

    if (r->live && !m->retained)
        return r->live(r->ctx, m);
    /* What a client shows of a run holds no secret this process knows (mask.h). */
    m->len = mask__apply(m->payload, m->len);
    view__feed(r->vw, m->topic, m->payload, m->len, NULL);
    fb_msg_free(m);
    return FB_OK;
}

enum fb_err view__read(struct view *vw, fb_bus *bus, const char *token, double timeout,
                       fb_barrier_fn live, void *ctx)
{
    struct reading r = {vw, live, ctx};

    return fb_barrier(bus, token, timeout, take, &r);
}
