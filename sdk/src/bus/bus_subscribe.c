/*
 * bus_subscribe.c - the bus's subscriptions: fb_bus_subscribe, the SUBACKs
 * its callers wait for, and every filter again after a reconnect.
 *
 * Every connect is a clean start, so the broker forgets our subscriptions
 * with the connection. The bus therefore keeps every filter it subscribed
 * to and subscribes them again after each reconnect (bus_subscribe__again,
 * from the reconnect thread), before anything is re-sent; their retained
 * messages come again.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bus_paho_internal.h"

/*
 * With bus->mu held: 1 if the subscribe with this token completed; *ok tells
 * how: 1 confirmed, 0 refused by the broker, -1 failed without an answer
 * (the connection dropped under it).
 */
static int sub_done(const fb_bus *bus, int token, int *ok)
{
    unsigned i;

    for (i = 0; i < SUB_RING; i++) {
        if (bus->sub_ring[i].token == token && token != 0) {
            *ok = bus->sub_ring[i].ok;
            return 1;
        }
    }
    return 0;
}

void bus_subscribe__on_done(fb_bus *bus, int token, int ok)
{
    pthread_mutex_lock(&bus->mu);
    bus->sub_ring[bus->sub_next % SUB_RING].token = token;
    bus->sub_ring[bus->sub_next % SUB_RING].ok = ok;
    bus->sub_next++;
    pthread_cond_broadcast(&bus->cv);
    pthread_mutex_unlock(&bus->mu);
}

enum fb_err bus_subscribe__again(fb_bus *bus, double deadline)
{
    char **filters = NULL;
    size_t n = 0;
    size_t i;
    int token = 0;
    int ok = 0;
    int done = 0;
    enum fb_err err = FB_OK;

    pthread_mutex_lock(&bus->mu);
    if (bus->n_filters > 0)
        filters = calloc(bus->n_filters, sizeof *filters);
    for (i = 0; filters != NULL && i < bus->n_filters; i++)
        if ((filters[n] = str__dup(bus->filters[i])) != NULL)
            n++;
    pthread_mutex_unlock(&bus->mu);
    if (n > 0)
        err = bus_paho__subscribe(bus, filters, n, &token);
    if (n > 0 && err == FB_OK) {
        pthread_mutex_lock(&bus->mu);
        while (!(done = sub_done(bus, token, &ok)) && bus->link_up && !bus->closed &&
               bus__wait(bus, deadline) != ETIMEDOUT)
            ;
        if (!done && !bus->link_up)
            err = FB_ERR_LOST;
        pthread_mutex_unlock(&bus->mu);
        /* The connection is up but the broker did not confirm: go on, the messages matter more. */
        if (!done && err == FB_OK)
            log__emit(bus->log, bus->log_ctx, FB_LOG_ERROR, "no SUBACK from %s after the reconnect",
                      bus->url);
        else if (done && ok == 0)
            log__emit(bus->log, bus->log_ctx, FB_LOG_ERROR,
                      "the broker refused a subscription after the reconnect");
    }
    for (i = 0; i < n; i++)
        free(filters[i]);
    free(filters);
    return err == FB_ERR_LOST ? FB_ERR_LOST : FB_OK;
}

void bus_subscribe__free(fb_bus *bus)
{
    size_t i;

    for (i = 0; i < bus->n_filters; i++)
        free(bus->filters[i]);
    free(bus->filters);
    bus->filters = NULL;
    bus->n_filters = 0;
}

/* Remembers filters for re-subscribing after a reconnect (duplicates once). */
static enum fb_err remember_filters(fb_bus *bus, const char *const *filters, size_t n)
{
    enum fb_err err = FB_OK;
    char **bigger;
    size_t i, j;

    pthread_mutex_lock(&bus->mu);
    bigger = realloc(bus->filters, (bus->n_filters + n) * sizeof *bigger);
    if (bigger == NULL) {
        err = FB_ERR_NOMEM;
        goto out;
    }
    bus->filters = bigger;
    for (i = 0; i < n; i++) {
        for (j = 0; j < bus->n_filters; j++)
            if (strcmp(bus->filters[j], filters[i]) == 0)
                break;
        if (j < bus->n_filters)
            continue;
        bus->filters[bus->n_filters] = str__dup(filters[i]);
        if (bus->filters[bus->n_filters] == NULL) {
            err = FB_ERR_NOMEM;
            goto out;
        }
        bus->n_filters++;
    }
out:
    pthread_mutex_unlock(&bus->mu);
    return err;
}

enum fb_err fb_bus_subscribe(fb_bus *bus, const char *const *filters, size_t n, double timeout)
{
    double deadline = bus__deadline(timeout);
    enum fb_err err = FB_OK;
    unsigned long gen;
    size_t i;
    int token = 0;
    int ok = 0;

    if (bus == NULL || filters == NULL || n == 0 || n > INT_MAX)
        return FB_ERR_INVALID;
    for (i = 0; i < n; i++)
        if (filters[i] == NULL)
            return FB_ERR_INVALID;
    /* Remembered first: a reconnect from now on subscribes them too. */
    err = remember_filters(bus, filters, n);
    if (err != FB_OK)
        return err;
    for (;;) {
        pthread_mutex_lock(&bus->mu);
        while (!bus->connected && !bus->lost && bus__wait(bus, deadline) != ETIMEDOUT)
            ;
        err = bus->lost ? FB_ERR_LOST : bus->connected ? FB_OK : FB_ERR_TIMEOUT;
        gen = bus->link_gen;
        pthread_mutex_unlock(&bus->mu);
        if (err != FB_OK)
            return err;
        /* Paho copies the topics; the cast only drops a const it does not use. */
        err = bus_paho__subscribe(bus, (char *const *)filters, n, &token);
        if (err != FB_OK && err != FB_ERR_LOST)
            return err;
        pthread_mutex_lock(&bus->mu);
        if (err == FB_OK)
            while (!sub_done(bus, token, &ok) && !bus->lost && bus->link_gen == gen &&
                   bus->link_up && bus__wait(bus, deadline) != ETIMEDOUT)
                ;
        if (err == FB_OK && sub_done(bus, token, &ok) && ok >= 0)
            err = ok ? FB_OK : FB_ERR_SUBSCRIBE;
        else if (err == FB_OK && sub_done(bus, token, &ok))
            err = FB_ERR_LOST; /* no answer: the link dropped, see below */
        else if (bus->lost)
            err = FB_ERR_LOST;
        else if (bus->link_gen == gen && bus->link_up)
            err = FB_ERR_TIMEOUT;
        else
            err = FB_ERR_LOST; /* dropped meanwhile: see below */
        pthread_mutex_unlock(&bus->mu);
        if (err != FB_ERR_LOST || bus->opt.reconnect_max_s == 0)
            break;
        /*
         * The connection dropped before the SUBACK. The filters were
         * remembered before, so the reconnect subscribes them: waiting for
         * the bus to be usable again is enough.
         */
        pthread_mutex_lock(&bus->mu);
        while (!(bus->connected && bus->link_gen != gen) && !bus->lost &&
               bus__wait(bus, deadline) != ETIMEDOUT)
            ;
        err = bus->lost                                ? FB_ERR_LOST
              : bus->connected && bus->link_gen != gen ? FB_OK
                                                       : FB_ERR_TIMEOUT;
        pthread_mutex_unlock(&bus->mu);
        break;
    }
    if (err == FB_ERR_SUBSCRIBE)
        log__emit(bus->log, bus->log_ctx, FB_LOG_ERROR, "the broker refused a subscription");
    return err;
}
