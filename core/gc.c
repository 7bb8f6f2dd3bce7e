/*
 * gc.c - `flowbus gc`: removes the retained topics of finished runs from a
 * long-lived broker.
 *
 * A run leaves its variables, task states, workflow and run state retained
 * under flowbus/<run-id>/, so that `resume` and observers can read it later.
 * On a broker that serves runs for months this would pile up, so gc deletes
 * (publishes an empty retained message on) every retained topic of each run
 * whose run state is final and older than --older-than. Runs still going on,
 * and runs whose coordinator was lost, are left alone.
 */
#include "gc.h"
#include <flowbus/flowbus.h>
#include "log.h"

#include <flowbus/flowbus.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

struct names {
    char **v;
    size_t n;
};

static int add_name(struct names *l, const char *s)
{
    char **v = realloc(l->v, (l->n + 1) * sizeof *v);
    if (!v)
        return 0;
    l->v = v;
    l->v[l->n] = strdup(s);
    return l->v[l->n++] != NULL;
}

static void free_names(struct names *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

/*
 * Subscribes to filter and collects the topics of the retained messages under
 * it: all of them have arrived when a sync token published afterwards comes
 * back. If each is not NULL, every retained message is also passed to it.
 */
static int collect(fb_bus *bus, const char *filter, const char *token, struct names *topics,
                   void (*each)(void *ctx, const fb_msg *m), void *ctx)
{
    const char *filters[2] = {filter, token};
    double deadline = fb_clock_mono() + 10.0;
    int ok = 0;

    if (fb_bus_subscribe(bus, filters, 2, 5.0) != FB_OK)
        return 0;
    if (fb_bus_publish(bus, token, "", 0, 1, 0, 0) != FB_OK)
        return 0;
    while (fb_clock_mono() < deadline) {
        fb_msg *m = NULL;
        if (fb_bus_next(bus, deadline - fb_clock_mono(), &m) != FB_OK)
            break;
        if (strcmp(m->topic, token) == 0) {
            fb_msg_free(m);
            ok = 1;
            break;
        }
        if (m->retained && m->len > 0) {
            if (topics && !add_name(topics, m->topic)) {
                fb_msg_free(m);
                break;
            }
            if (each)
                each(ctx, m);
        }
        fb_msg_free(m);
    }
    return ok;
}

struct finished {
    struct names runs;
    double before; /* only runs whose final state is older than this */
    size_t running;
};

static int final_state(const char *s)
{
    return strcmp(s, "done") == 0 || strcmp(s, "failed") == 0 || strcmp(s, "incomplete") == 0 ||
           strcmp(s, "stopped") == 0;
}

/* Called for each retained flowbus/<run>/state: remembers finished runs. */
static void note_run(void *ctx, const fb_msg *m)
{
    struct finished *f = ctx;
    json_t *o = json_loadb(m->payload, m->len, 0, NULL);
    const char *state = json_string_value(json_object_get(o, "state"));
    json_t *at = json_object_get(o, "at");
    const char *run = m->topic + strlen("flowbus/");
    const char *slash = strchr(run, '/');
    char name[128];

    if (slash && (size_t)(slash - run) < sizeof name && state) {
        memcpy(name, run, (size_t)(slash - run));
        name[slash - run] = '\0';
        if (final_state(state) && json_is_number(at) && json_number_value(at) <= f->before)
            add_name(&f->runs, name);
        else if (!final_state(state))
            f->running++;
    }
    json_decref(o);
}

int gc__main(const struct gc_options *o)
{
    fb_bus_options bo = {0};
    fb_bus *bus = NULL;
    struct finished f = {0};
    char err[256], token[128], filter[160];
    size_t removed = 0;
    int code = 4;

    bo.url = o->broker_url;
    bo.username = o->username;
    bo.password = o->password;
    bo.log = log__sdk;
    if (fb_bus_new(&bo, &bus, err, sizeof err) != FB_OK) {
        log_printf(FB_LOG_ERROR, "cannot connect to the broker at %s: %s", o->broker_url, err);
        goto out;
    }
    f.before = fb_clock_wall() - o->older_than;
    snprintf(token, sizeof token, "flowbus/gc-%ld/sync", (long)getpid());
    if (!collect(bus, "flowbus/+/state", token, NULL, note_run, &f)) {
        log_printf(FB_LOG_ERROR, "the broker did not answer");
        goto out;
    }
    for (size_t i = 0; i < f.runs.n; i++) {
        struct names topics = {0};
        snprintf(filter, sizeof filter, "flowbus/%s/#", f.runs.v[i]);
        if (!collect(bus, filter, token, &topics, NULL, NULL)) {
            free_names(&topics);
            log_printf(FB_LOG_ERROR, "the broker did not answer");
            goto out;
        }
        /* The run state goes last, so an interrupted gc can be run again. */
        for (size_t k = 0; k < topics.n; k++) {
            size_t len = strlen(topics.v[k]);
            if (len < 6 || strcmp(topics.v[k] + len - 6, "/state") != 0 ||
                strchr(topics.v[k] + strlen("flowbus/") + strlen(f.runs.v[i]) + 1, '/'))
                fb_bus_publish(bus, topics.v[k], "", 0, 1, 1, 0);
        }
        for (size_t k = 0; k < topics.n; k++) {
            size_t len = strlen(topics.v[k]);
            if (len >= 6 && strcmp(topics.v[k] + len - 6, "/state") == 0 &&
                !strchr(topics.v[k] + strlen("flowbus/") + strlen(f.runs.v[i]) + 1, '/'))
                fb_bus_publish(bus, topics.v[k], "", 0, 1, 1, 0);
        }
        removed += topics.n;
        if (!o->quiet)
            printf("removed run %s (%zu retained topics)\n", f.runs.v[i], topics.n);
        free_names(&topics);
        if (fb_bus_flush(bus, 10.0) != FB_OK) {
            log_printf(FB_LOG_ERROR, "the broker did not confirm the deletions");
            goto out;
        }
    }
    if (!o->quiet)
        printf("%zu finished runs removed (%zu retained topics); %zu runs not finished left "
               "alone\n",
               f.runs.n, removed, f.running);
    code = 0;
out:
    free_names(&f.runs);
    if (bus)
        fb_bus_close(bus, 1.0);
    fb_bus_free(bus);
    return code;
}
