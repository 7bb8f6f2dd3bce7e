/*
 * identity.c - which broker identity each task process of a run on an
 * external broker connects with (docs/security.md "Task identities").
 *
 * On the private broker every task has its own user and ACL (access.c,
 * broker.c). On an external broker the coordinator makes the same through
 * the broker's dynamic security plugin (dynsec.c). FLOWBUS_TASK_IDENTITIES
 * (or --task-identities) chooses what happens when it cannot:
 *   auto    (default) the plugin if this user can drive it; otherwise every
 *           task connects with the coordinator's own credentials, after a
 *           loud warning: then any task can act as any other, and as the
 *           coordinator, so use it only with tasks you trust;
 *   dynsec  the plugin or nothing: the run is refused (exit 4);
 *   shared  the coordinator's credentials, without asking the broker (the
 *           warning is still printed).
 */
#include "internal.h"
#include "access.h"
#include "dynsec.h"
#include "log.h"
#include "mask.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Seconds the plugin has to answer in auto mode. Without the plugin nothing
 * answers, so every run on such a broker waits this long: short, as a
 * plugin answers in milliseconds; a broker far away wants dynsec mode.
 */
#define PROBE_WAIT 0.5
#define REQUIRE_WAIT 10.0 /* ... when it is required */

enum mode { MODE_AUTO, MODE_DYNSEC, MODE_SHARED, MODE_BAD };

static enum mode mode_of(const char *text)
{
    if (!text || !*text || strcmp(text, "auto") == 0)
        return MODE_AUTO;
    if (strcmp(text, "dynsec") == 0)
        return MODE_DYNSEC;
    if (strcmp(text, "shared") == 0)
        return MODE_SHARED;
    return MODE_BAD;
}

static void warn_shared(const struct run *r, const char *why)
{
    log_printf(FB_LOG_WARN,
               "SECURITY: every task of this run connects to %s %s%s%s%s: a task can publish "
               "any other task's outputs and states and act as the coordinator. Give this user "
               "the dynamic security plugin's admin rights for per-task identities, or set "
               "FLOWBUS_TASK_IDENTITIES=dynsec to refuse such runs (docs/security.md)",
               r->o->broker_url, r->o->username ? "as user " : "anonymously",
               r->o->username ? r->o->username : "", why ? " because " : "", why ? why : "");
}

int identity__setup(struct run *r)
{
    const char *setting = r->o->task_identities ? r->o->task_identities
                                                : getenv("FLOWBUS_TASK_IDENTITIES");
    enum mode mode = mode_of(setting);
    char err[512] = "";

    if (r->res.broker || r->res.identities_set)
        return 1;
    r->res.identities_set = 1;
    if (mode == MODE_BAD) {
        log_printf(FB_LOG_ERROR, "FLOWBUS_TASK_IDENTITIES '%s' is not auto, dynsec or shared",
                   setting);
        return 0;
    }
    if (mode == MODE_SHARED) {
        warn_shared(r, "FLOWBUS_TASK_IDENTITIES is shared");
        return 1;
    }
    r->res.dynsec = dynsec__open(r->o->broker_url, r->o->username, r->o->password,
                                 mode == MODE_DYNSEC ? REQUIRE_WAIT : PROBE_WAIT, err, sizeof err);
    if (r->res.dynsec) {
        r->res.access = access__new_dynsec(r->wf, r->run_id);
        if (!r->res.access)
            snprintf(err, sizeof err, "cannot generate credentials: %s", strerror(errno));
        else if (dynsec__create(r->res.dynsec, r->res.access, err, sizeof err))
            return 1;
        /* Half made: what was created goes, and the tasks do not use it. */
        identity__teardown(r);
        r->res.identities_set = 1;
    }
    if (mode == MODE_DYNSEC) {
        log_printf(FB_LOG_ERROR,
                   "refusing the run: no per-task identities on %s (dynamic security plugin: %s) "
                   "and FLOWBUS_TASK_IDENTITIES is dynsec",
                   r->o->broker_url, err);
        return 0;
    }
    {
        char why[600];
        snprintf(why, sizeof why, "the dynamic security plugin is not usable (%s)", err);
        warn_shared(r, why);
    }
    return 1;
}

void identity__teardown(struct run *r)
{
    char err[512] = "";
    size_t removed = 0;

    /*
     * A resumed run that started nothing has no connection to the plugin yet,
     * but the coordinator before it (killed: it could not clean up) left the
     * tasks' identities there: open one to remove them, if the plugin answers.
     */
    if (!r->res.broker && !r->res.identities_set && r->o->resume && r->res.took_over &&
        r->o->broker_url &&
        mode_of(r->o->task_identities ? r->o->task_identities
                                      : getenv("FLOWBUS_TASK_IDENTITIES")) != MODE_SHARED)
        r->res.dynsec = dynsec__open(r->o->broker_url, r->o->username, r->o->password,
                                     PROBE_WAIT, err, sizeof err);

    if (r->res.dynsec && !dynsec__remove_run(r->res.dynsec, r->run_id, &removed, err, sizeof err))
        log_printf(FB_LOG_WARN,
                   "could not remove the run's task clients from the dynamic security plugin "
                   "(%s): `flowbus gc` removes them later",
                   err);
    dynsec__close(r->res.dynsec);
    r->res.dynsec = NULL;
    if (!r->res.broker) {
        access__free(r->res.access);
        r->res.access = NULL;
    }
}
