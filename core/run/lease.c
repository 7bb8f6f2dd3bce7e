/*
 * lease.c - one owner per run: the coordinator's lease on its run, and the
 * race of `flowbus resume`s for a run whose coordinator died.
 *
 * A coordinator holds its run by a lease on the bus: its own random owner id,
 * a broker client id made from it (never shared with anyone, so connecting
 * can never take another coordinator's connection over), the retained owner
 * record flowbus/<run>/owner (id, pid, host, since, client id), and the run
 * state whose Last Will says "lost" with that owner id. MQTT gives a
 * connection one Will, and the run state's is the one every reader already
 * knows, so the lease is that pair: the owner record says who, the run state
 * says whether it is alive ("running") or dead ("lost").
 *
 * `flowbus resume` of a lost run races the other resumes through retained
 * claims, on a connection of its own whose Will deletes its claim:
 * subscribe to the run (claims included) first, then publish
 * claims/<claim id>. A broker sends the retained messages of a subscription
 * before any message published after it, and forwards live messages to every
 * subscriber in the one order it processed them; so a resumer that saw no
 * claim at its subscription receives every later claim in that order, and
 * the first claim it receives is the first of all for every such resumer.
 * Whoever saw a claim at its subscription, or a claim before its own, loses.
 * docs/reliability.md ("One owner per run") gives the argument and what it
 * asks of the broker.
 *
 * A coordinator that was cut off from the broker long enough for its Will to
 * fire may find, when it reconnects, that a resume took the run over: it
 * reads the owner record before it publishes anything again, and lets the
 * run go (lease__on_message, loop.c).
 */
#define _GNU_SOURCE
#include "internal.h"
#include "log.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* Seconds a claim outlives its claimant if its Will never fired (a broker
 * restarted while the claimant was connected): the backstop, not the rule. */
#define CLAIM_EXPIRY 60
#define RACE_WAIT 5.0    /* seconds for the broker to hand our own claim back */
#define CLAIM_CONFIRM 5.0

/* Writes 16 random bytes as 32 hex digits into id (33 bytes). 1 on success. */
static int random_id(char id[33])
{
    unsigned char rnd[16];

    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        return 0;
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(id + 2 * i, 3, "%02x", rnd[i]);
    return 1;
}

int lease__init(struct run *r)
{
    struct lease *l = &r->lease;

    if (!random_id(l->id))
        return 0;
    if (gethostname(l->host, sizeof l->host) != 0)
        snprintf(l->host, sizeof l->host, "?");
    l->host[sizeof l->host - 1] = '\0';
    l->since = fb_clock_wall();
    /* The random part first: a broker or the bus may cut a long id, and the
     * run id after it is only there for people reading the broker's log. */
    snprintf(l->client_id, sizeof l->client_id, "fbc-%.16s-%.40s", l->id, r->run_id);
    return 1;
}

void lease__describe(const char *json, size_t len, char *buf, size_t size)
{
    json_t *o = json_loadb(json, len, 0, NULL);
    json_t *pid = json_object_get(o, "pid"), *host = json_object_get(o, "host");
    json_t *since = json_object_get(o, "since");
    char when[32] = "?";

    if (json_is_number(since)) {
        time_t t = (time_t)json_number_value(since);
        struct tm tm;
        if (gmtime_r(&t, &tm))
            strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    snprintf(buf, size, "pid %lld on host %s since %s",
             json_is_integer(pid) ? (long long)json_integer_value(pid) : -1LL,
             json_is_string(host) ? json_string_value(host) : "?", when);
    json_decref(o);
}

/* The owner record (or a claim) of this process as JSON; NULL if out of memory. */
static char *record_json(const struct run *r, const char *id, int with_client)
{
    json_t *o = json_pack("{s:s, s:I, s:s, s:f}", "id", id, "pid", (json_int_t)getpid(), "host",
                          r->lease.host, "since", r->lease.since);
    char *s;

    if (o && with_client)
        json_object_set_new(o, "client", json_string(r->lease.client_id));
    s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

void lease__publish(struct run *r, unsigned expiry)
{
    char tp[FB_TOPIC_MAX], *s = record_json(r, r->lease.id, 1);

    if (!s || !fb_topic_format(tp, sizeof tp, FB_TOPIC_OWNER, r->run_id, NULL) ||
        fb_bus_publish(r->bus, tp, s, strlen(s), 1, 1, expiry) != FB_OK)
        log_printf(FB_LOG_WARN, "cannot publish the run's owner record");
    free(s);
}

/* An owner id: ours are 32 hex digits; a longer one read is cut, never equal to ours. */
#define ID_READ 80

/* The member key (an owner id) of a JSON payload, copied into id; "" if none. */
static void id_of(const char *payload, size_t len, const char *key, char id[ID_READ])
{
    json_t *o = json_loadb(payload, len, 0, NULL);
    json_t *v = json_object_get(o, key);

    snprintf(id, ID_READ, "%s", json_is_string(v) ? json_string_value(v) : "");
    json_decref(o);
}

int lease__on_message(struct run *r, const fb_msg *m)
{
    fb_topic t;
    enum fb_topic_kind kind = fb_topic_parse(m->topic, &t);
    char id[ID_READ];

    if ((kind != FB_TOPIC_OWNER && kind != FB_TOPIC_RUN_STATE) || !fb_topic_is_run(&t, r->run_id))
        return 0;
    if (kind == FB_TOPIC_OWNER) {
        if (m->len == 0)
            return 1;
        id_of(m->payload, m->len, "id", id);
        if (strcmp(id, r->lease.id) != 0 && !r->lease.deposed) {
            char who[320];
            lease__describe(m->payload, m->len, who, sizeof who);
            log_printf(FB_LOG_ERROR,
                       "run %s was taken over by another coordinator (%s): its owner record "
                       "is no longer this one's (this coordinator was probably cut off from "
                       "the broker for longer than its keepalive); leaving the run and its "
                       "tasks to it",
                       r->run_id, who);
            r->lease.deposed = 1;
        }
        return 1;
    }
    /* A run state another coordinator wrote (one that let the run go after
     * overwriting ours): the run's record is ours to keep. */
    id_of(m->payload, m->len, "owner", id);
    if (m->len && id[0] && strcmp(id, r->lease.id) != 0 && !r->lease.deposed &&
        !r->sup.finishing)
        announce__run_state(r, FB_RUN_RUNNING, -1, 0);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The race of the resumes                                                   */
/* ------------------------------------------------------------------------ */

int lease__claim_open(struct run *r, struct claim *c)
{
    const struct run_options *o = r->o;
    fb_bus_options bo = {0};
    char client_id[64], filter[FB_TOPIC_MAX];
    const char *filters[1] = {filter};
    enum fb_err e;

    if (!random_id(c->id) ||
        !fb_topic_format(c->topic, sizeof c->topic, FB_TOPIC_CLAIM, r->run_id, c->id) ||
        !fb_topic_filter(filter, sizeof filter, FB_TOPIC_ALL, r->run_id, NULL)) {
        log_printf(FB_LOG_ERROR, "cannot make a claim for run %s", r->run_id);
        return 0;
    }
    snprintf(client_id, sizeof client_id, "fbr-%.16s-%.40s", c->id, r->run_id);
    bo.url = o->broker_url;
    bo.username = o->username;
    bo.password = o->password;
    bo.client_id = client_id;
    bo.ca_file = getenv("FLOWBUS_TLS_CA");
    bo.cert_file = getenv("FLOWBUS_TLS_CERT");
    bo.key_file = getenv("FLOWBUS_TLS_KEY");
    /* Should this resumer die, its claim goes with it: an empty retained
     * message deletes the topic. */
    bo.will_topic = c->topic;
    bo.will_payload = NULL;
    bo.will_retained = 1;
    bo.log = log__sdk;
    if (!setup__open_bus(r, &bo, &c->bus))
        return 0;
    /* The whole run, claims included, before anything is decided. */
    e = fb_bus_subscribe(c->bus, filters, 1, 5.0);
    if (e != FB_OK) {
        log_printf(FB_LOG_ERROR, "cannot subscribe to %s: %s", filter, fb_strerror(e));
        return 0;
    }
    return 1;
}

/* 1 if m is a claim of run r with a payload (a claim deleted has none). */
static int is_claim(const struct run *r, const fb_msg *m)
{
    fb_topic t;

    return m->len > 0 && fb_topic_parse(m->topic, &t) == FB_TOPIC_CLAIM &&
           fb_topic_is_run(&t, r->run_id);
}

/* Says who won instead of us; returns FB_EXIT_OWNED. */
static int lost_to(const struct run *r, const fb_msg *winner)
{
    char who[320];

    lease__describe(winner->payload, winner->len, who, sizeof who);
    log_printf(FB_LOG_ERROR,
               "run %s is already resumed by another `flowbus resume`: %s; it carries the run "
               "on (`flowbus status %s` shows it)",
               r->run_id, who, r->run_id);
    return FB_EXIT_OWNED;
}

int lease__first_claim(const struct run *r, fb_msg *const *msgs, size_t n)
{
    /*
     * Any claim seen since the subscription was made before ours could be,
     * even one deleted since: a claim is deleted by its claimant's Will, but
     * also by a winner once its run state says "running", and a resumer whose
     * snapshot predates that run state must not take the deletion for a
     * death. Seeing a dead claimant's claim only makes this resume give up;
     * a later one, which does not see it, wins.
     */
    for (size_t i = 0; i < n; i++)
        if (is_claim(r, msgs[i]))
            return (int)i;
    return -1;
}

int lease__race(struct run *r, struct claim *c, fb_msg *const *earlier, size_t n_earlier)
{
    char *mine = NULL;
    double deadline = fb_clock_mono() + RACE_WAIT;
    int first = lease__first_claim(r, earlier, n_earlier), code = FB_EXIT_BROKER;
    fb_msg *m = NULL;

    if (first >= 0) {
        /* A claim came before ours could: we are not first. */
        code = lost_to(r, earlier[first]);
        goto out;
    }
    mine = c ? record_json(r, c->id, 0) : NULL;
    if (!mine || fb_bus_publish(c->bus, c->topic, mine, strlen(mine), 1, 1, CLAIM_EXPIRY) != FB_OK) {
        log_printf(FB_LOG_ERROR, "the broker did not take this resume's claim on %s", c->topic);
        goto out;
    }
    c->published = 1;
    /* The first claim the broker hands us decides: ours, or one it processed before. */
    for (;;) {
        double left = deadline - fb_clock_mono();
        enum fb_err e = fb_bus_next(c->bus, left > 0 ? left : 0, &m);
        if (e != FB_OK) {
            log_printf(FB_LOG_ERROR, "the broker did not hand back this resume's claim within "
                                     "%g s", RACE_WAIT);
            goto out;
        }
        if (is_claim(r, m))
            break;
        fb_msg_free(m);
        m = NULL;
    }
    code = strcmp(m->topic, c->topic) == 0 ? FB_EXIT_OK : lost_to(r, m);
out:
    fb_msg_free(m);
    free(mine);
    return code;
}

void lease__claim_close(struct claim *c)
{
    if (!c->bus)
        return;
    /* Won (the run state says who owns it now) or lost: the claim has done its work. */
    if (c->published && (fb_bus_publish(c->bus, c->topic, "", 0, 1, 1, 0) != FB_OK ||
                         fb_bus_flush(c->bus, CLAIM_CONFIRM) != FB_OK))
        log_printf(FB_LOG_WARN, "could not remove this resume's claim %s; it expires in %d s",
                   c->topic, CLAIM_EXPIRY);
    c->published = 0;
    fb_bus_close(c->bus, 1.0);
    fb_bus_free(c->bus);
    c->bus = NULL;
}
