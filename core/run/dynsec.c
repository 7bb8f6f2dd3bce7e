/*
 * dynsec.c - per-task identities on an external Mosquitto, through its
 * dynamic security plugin (see dynsec.h).
 *
 * The plugin is driven by MQTT: a JSON {"commands": [...]} published on
 * $CONTROL/dynamic-security/v1 is answered on .../v1/response with one
 * {"command", "error"?, "data"?, "correlationData"} per command. The
 * coordinator talks to it on a connection of its own (so the answers never
 * mix with the run's messages), one request at a time, each command tagged
 * with a random correlation so an answer to someone else's request is not
 * taken for ours.
 *
 * Every task gets a role holding exactly its rights (access__rights), and a
 * client of the same name with a generated password and that role. The
 * role ends with denials of everything at the lowest priority, so the
 * task's rights do not depend on the broker's default ACL access.
 */
#include "dynsec.h"
#include "access.h"
#include "log.h"
#include "mask.h"

#include <flowbus/flowbus.h>
#include <flowbus/protocol.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define CONTROL_TOPIC "$CONTROL/dynamic-security/v1"
#define RESPONSE_TOPIC "$CONTROL/dynamic-security/v1/response"
#define ANSWER_WAIT 10.0 /* seconds the plugin has to answer a request (it saves to disk first) */

struct dynsec {
    fb_bus *bus;
    char tag[17]; /* random, in every correlation of this connection */
    unsigned long serial;
    double served_at; /* the last dynsec__serve that called into the bus */
};

void dynsec__serve(struct dynsec *d)
{
    double now = fb_clock_mono();
    fb_msg *m = NULL;

    if (!d || now - d->served_at < 0.5)
        return;
    d->served_at = now;
    while (fb_bus_next(d->bus, 0, &m) == FB_OK) {
        fb_msg_free(m);
        m = NULL;
    }
}

/* Sends commands and waits for an answer to each; returns them (a JSON array) or NULL. */
static json_t *request(struct dynsec *d, json_t *commands, double wait, char *err, size_t errlen)
{
    json_t *body = json_object(), *answers = json_array();
    size_t n = json_array_size(commands), got = 0, i;
    double deadline = fb_clock_mono() + wait;
    char *text = NULL, corr[64];
    unsigned long first = d->serial + 1;
    json_t *cmd;

    if (!body || !answers) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    json_array_foreach(commands, i, cmd)
    {
        snprintf(corr, sizeof corr, "%s-%lu", d->tag, ++d->serial);
        json_object_set_new(cmd, "correlationData", json_string(corr));
        json_array_append_new(answers, json_null());
    }
    json_object_set(body, "commands", commands);
    text = json_dumps(body, JSON_COMPACT);
    if (!text || fb_bus_publish(d->bus, CONTROL_TOPIC, text, strlen(text), 1, 0, 0) != FB_OK) {
        snprintf(err, errlen, "cannot publish on %s", CONTROL_TOPIC);
        goto fail;
    }
    while (got < n) {
        double left = deadline - fb_clock_mono();
        fb_msg *m = NULL;
        json_t *doc, *resp;

        if (left <= 0 || fb_bus_next(d->bus, left, &m) != FB_OK) {
            snprintf(err, errlen, "no answer from the dynamic security plugin within %.1f s",
                     wait);
            goto fail;
        }
        doc = json_loadb(m->payload, m->len, 0, NULL);
        fb_msg_free(m);
        json_array_foreach(json_object_get(doc, "responses"), i, resp)
        {
            const char *c = json_string_value(json_object_get(resp, "correlationData"));
            size_t len = strlen(d->tag);
            unsigned long k;
            char *end;

            if (!c || strncmp(c, d->tag, len) != 0 || c[len] != '-')
                continue;
            k = strtoul(c + len + 1, &end, 10);
            if (*end || k < first || k - first >= n ||
                !json_is_null(json_array_get(answers, k - first)))
                continue;
            json_array_set(answers, k - first, resp);
            got++;
        }
        json_decref(doc);
    }
    free(text);
    json_decref(body);
    return answers;
fail:
    free(text);
    json_decref(body);
    json_decref(answers);
    return NULL;
}

/* The first answer with an error, as "command: error"; 0 if none (errors in ok are fine). */
static int failed(const json_t *answers, const char *ok, char *err, size_t errlen)
{
    size_t i;
    json_t *a;

    json_array_foreach(answers, i, a)
    {
        const char *e = json_string_value(json_object_get(a, "error"));
        if (e && (!ok || !strstr(e, ok))) {
            snprintf(err, errlen, "%s: %s",
                     json_string_value(json_object_get(a, "command")) ?: "command", e);
            return 1;
        }
    }
    return 0;
}

static json_t *command(const char *name)
{
    json_t *c = json_object();

    json_object_set_new(c, "command", json_string(name));
    return c;
}

struct dynsec *dynsec__open(const char *url, const char *user, const char *pass, double wait,
                            int adaptive,
                            char *err, size_t errlen)
{
    struct dynsec *d = calloc(1, sizeof *d);
    const char *filters[] = {RESPONSE_TOPIC};
    fb_bus_options bo = {0};
    char client_id[FB_CLIENT_ID_MAX + 1], why[256];
    unsigned char rnd[8];
    json_t *probe = json_array(), *answers = NULL;
    double t0;
    enum fb_err e;

    if (!d || !probe || getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd ||
        fb_client_id(client_id, sizeof client_id, "flowbus-dynsec") != FB_OK) {
        snprintf(err, errlen, "cannot set up: %s", strerror(errno ? errno : ENOMEM));
        goto fail;
    }
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(d->tag + 2 * i, 3, "%02x", rnd[i]);
    bo.url = url;
    bo.username = user;
    bo.password = pass;
    bo.client_id = client_id;
    bo.ca_file = getenv("FLOWBUS_TLS_CA");
    bo.cert_file = getenv("FLOWBUS_TLS_CERT");
    bo.key_file = getenv("FLOWBUS_TLS_KEY");
    bo.reconnect_max_s = 30;
    bo.log = log__sdk;
    e = fb_bus_new(&bo, &d->bus, why, sizeof why);
    if (e != FB_OK) {
        snprintf(err, errlen, "cannot connect: %s", why);
        goto fail;
    }
    /* A user without the plugin's admin rights is refused this subscription at once. */
    t0 = fb_clock_mono();
    e = fb_bus_subscribe(d->bus, filters, 1, wait);
    if (e != FB_OK) {
        snprintf(err, errlen, "cannot subscribe to %s (%s): this user has no admin rights on "
                              "the dynamic security plugin", RESPONSE_TOPIC, fb_strerror(e));
        goto fail;
    }
    if (adaptive) {
        double rtt = fb_clock_mono() - t0, bound = 20 * rtt;
        wait = bound < 0.05 ? (wait < 0.05 ? wait : 0.05) : bound < wait ? bound : wait;
    }
    json_array_append_new(probe, command("getDefaultACLAccess"));
    answers = request(d, probe, wait, err, errlen);
    if (!answers || failed(answers, NULL, err, errlen))
        goto fail;
    json_decref(answers);
    json_decref(probe);
    return d;
fail:
    json_decref(answers);
    json_decref(probe);
    dynsec__close(d);
    return NULL;
}

static void add_acl(json_t *acls, const char *type, const char *topic, int allow, int priority)
{
    json_t *acl = json_object();

    json_object_set_new(acl, "acltype", json_string(type));
    json_object_set_new(acl, "topic", json_string(topic));
    json_object_set_new(acl, "allow", json_boolean(allow));
    json_object_set_new(acl, "priority", json_integer(priority));
    json_array_append_new(acls, acl);
}

/* access__rights's callback: a right as the plugin's ACL entries. */
static int role_acl(void *ctx, enum access_right right, const char *topic)
{
    json_t *acls = ctx;
    char shared[FB_TOPIC_MAX + 16];

    if (right != ACCESS_WRITE) {
        add_acl(acls, "subscribeLiteral", topic, 1, 10);
        add_acl(acls, "publishClientReceive", topic, 1, 10);
        /* A worker pool takes its trigger inputs through a shared subscription. */
        snprintf(shared, sizeof shared, "$share/+/%s", topic);
        add_acl(acls, "subscribePattern", shared, 1, 10);
    }
    if (right != ACCESS_READ)
        add_acl(acls, "publishClientSend", topic, 1, 10);
    return 1;
}

int dynsec__create(struct dynsec *d, const struct access *a, char *err, size_t errlen)
{
    json_t *cmds = json_array(), *answers = NULL;
    int ok = 0;

    for (size_t t = 0; cmds && t < access__n_tasks(a); t++) {
        const char *user = access__user(a, (long)t);
        json_t *role = command("createRole"), *client = command("createClient");
        json_t *acls = json_array(), *roles = json_array(), *ref = json_object();

        if (!access__rights(a, t, role_acl, acls)) {
            snprintf(err, errlen, "cannot list the rights of task %zu", t);
            json_decref(role);
            json_decref(client);
            json_decref(acls);
            json_decref(roles);
            json_decref(ref);
            goto out;
        }
        /* Whatever the broker's defaults, nothing else. */
        add_acl(acls, "publishClientSend", "#", 0, 0);
        add_acl(acls, "publishClientReceive", "#", 0, 0);
        add_acl(acls, "subscribePattern", "#", 0, 0);
        json_object_set_new(role, "rolename", json_string(user));
        json_object_set_new(role, "acls", acls);
        json_object_set_new(ref, "rolename", json_string(user));
        json_array_append_new(roles, ref);
        json_object_set_new(client, "username", json_string(user));
        json_object_set_new(client, "password", json_string(access__password(a, (long)t)));
        json_object_set_new(client, "roles", roles);
        json_array_append_new(cmds, role);
        json_array_append_new(cmds, client);
        mask__add(access__password(a, (long)t));
    }
    answers = cmds ? request(d, cmds, ANSWER_WAIT, err, errlen) : NULL;
    ok = answers && !failed(answers, NULL, err, errlen);
out:
    json_decref(answers);
    json_decref(cmds);
    return ok;
}

/* Which names go: those of one run (prefix), or of the runs gone says. */
struct selection {
    const char *prefix; /* "flowbus.<run>." or NULL */
    dynsec_gone_fn gone;
    void *ctx;
};

static int selected(const struct selection *sel, const char *name)
{
    size_t len = strlen(ACCESS_DYNSEC_PREFIX);
    char run[FB_NAME_MAX + 1];
    const char *dot;

    if (sel->prefix)
        return strncmp(name, sel->prefix, strlen(sel->prefix)) == 0;
    if (strncmp(name, ACCESS_DYNSEC_PREFIX, len) != 0 || !(dot = strchr(name + len, '.')) ||
        (size_t)(dot - name - (long)len) > FB_NAME_MAX)
        return 0;
    snprintf(run, sizeof run, "%.*s", (int)(dot - name - (long)len), name + len);
    return sel->gone(sel->ctx, run);
}

/* The names in answer's data.<key> that sel takes, as delete commands in cmds. */
static size_t collect(const json_t *answer, const char *key, const struct selection *sel,
                      json_t *cmds, const char *del, const char *field)
{
    size_t i, n = 0;
    json_t *name;

    json_array_foreach(json_object_get(json_object_get(answer, "data"), key), i, name)
    {
        const char *s = json_string_value(name);
        json_t *c;

        if (!s || !selected(sel, s))
            continue;
        c = command(del);
        json_object_set_new(c, field, json_string(s));
        json_array_append_new(cmds, c);
        n++;
    }
    return n;
}

static int remove_selected(struct dynsec *d, const struct selection *sel, size_t *removed,
                           char *err, size_t errlen)
{
    json_t *list = json_array(), *answers = NULL, *cmds = json_array(), *done = NULL;
    int ok = 0;

    *removed = 0;
    for (int k = 0; list && k < 2; k++) {
        json_t *c = command(k ? "listRoles" : "listClients");
        json_object_set_new(c, "count", json_integer(-1));
        json_object_set_new(c, "offset", json_integer(0));
        json_array_append_new(list, c);
    }
    answers = list && cmds ? request(d, list, ANSWER_WAIT, err, errlen) : NULL;
    if (!answers || failed(answers, NULL, err, errlen))
        goto out;
    /* Clients first: a role still held by a client cannot go. */
    *removed = collect(json_array_get(answers, 0), "clients", sel, cmds, "deleteClient",
                       "username");
    collect(json_array_get(answers, 1), "roles", sel, cmds, "deleteRole", "rolename");
    if (json_array_size(cmds) == 0) {
        ok = 1;
        goto out;
    }
    done = request(d, cmds, ANSWER_WAIT, err, errlen);
    /* Another coordinator of the run may have removed some already. */
    ok = done && !failed(done, "not found", err, errlen);
out:
    json_decref(done);
    json_decref(answers);
    json_decref(cmds);
    json_decref(list);
    return ok;
}

int dynsec__remove_run(struct dynsec *d, const char *run_id, size_t *removed, char *err,
                       size_t errlen)
{
    char prefix[ACCESS_USER_MAX];
    struct selection sel = {prefix, NULL, NULL};

    snprintf(prefix, sizeof prefix, "%s%s.", ACCESS_DYNSEC_PREFIX, run_id);
    return remove_selected(d, &sel, removed, err, errlen);
}

int dynsec__remove_gone(struct dynsec *d, dynsec_gone_fn gone, void *ctx, size_t *removed,
                        char *err, size_t errlen)
{
    struct selection sel = {NULL, gone, ctx};

    return remove_selected(d, &sel, removed, err, errlen);
}

void dynsec__close(struct dynsec *d)
{
    if (!d)
        return;
    if (d->bus) {
        (void)fb_bus_close(d->bus, 1.0);
        fb_bus_free(d->bus);
    }
    free(d);
}
