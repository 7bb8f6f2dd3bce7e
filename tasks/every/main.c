/*
 * flowbus-every - a timer: emits TICK (a counter from 1) and NOW (local
 * ISO-8601 time with milliseconds and UTC offset), each only if the workflow
 * declares it, on a schedule:
 *   interval  "500ms", "5s", "1m", "2h" or a number of seconds: ticks at
 *             start + k * interval on the monotonic clock, so they do not
 *             drift; a tick that could not happen in time (the machine was
 *             busy or suspended) is skipped and logged, never bunched up
 *   cron      five standard fields ("*\/5 * * * *"), in local time
 * Exactly one of them is required.
 *
 * One-shot mode: waits one interval (or until the next cron time), sets
 * TICK=1 and NOW, and reports done. Reactive mode: a source that emits on
 * every tick until the run stops it. While the run is paused, ticks are
 * skipped (a timer that delivered a burst of stale ticks on resume would
 * help nobody); TICK counts the ticks emitted.
 */
#define _GNU_SOURCE

#include "plugin_main.h"
#include "schedule.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static const struct plugin_info info = {
    .name = "every",
    .manifest =
        "{\"name\":\"every\",\"description\":\"Emits TICK and NOW on an interval or a cron "
        "schedule\",\"inputs\":[],\"outputs\":[\"TICK\",\"NOW\"],\"params\":{"
        "\"interval\":{\"type\":\"string\",\"default\":null,\"description\":\"500ms, 5s, 1m, 2h "
        "or a number of seconds\"},"
        "\"cron\":{\"type\":\"string\",\"default\":null,\"description\":\"five cron fields in "
        "local time, e.g. */5 * * * * (instead of interval)\"}},\"permissions\":[]}",
    .usage = "Emits TICK (a counter from 1) and NOW (ISO-8601 local time) every param\n"
             "\"interval\" (500ms, 5s, 1m, 2h, or seconds) or on the param \"cron\" schedule\n"
             "(5 fields, local time). One-shot mode: once, after one interval.\n",
};

#define NS_PER_S INT64_C(1000000000)

struct schedule {
    int is_cron;
    int64_t interval_ns;
    int64_t base_ns; /* monotonic start; tick k is due at base + k * interval */
    int64_t k;
    struct cron cron;
};

/*
 * The time on clock in nanoseconds, the unit of the timerfd's absolute
 * deadlines (fb_clock_mono's seconds in a double would round them).
 */
static int64_t now_ns(clockid_t clock)
{
    struct timespec ts;

    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

/* Arms fd for the next tick after now (counting skipped interval ticks in *skipped). */
static int arm_next(int fd, struct schedule *s, unsigned long *skipped)
{
    struct itimerspec its;
    int64_t due;

    memset(&its, 0, sizeof its);
    *skipped = 0;
    if (s->is_cron) {
        time_t next = schedule__cron_next(&s->cron, time(NULL));

        if (next == (time_t)-1)
            return -1;
        its.it_value.tv_sec = next;
        return timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL);
    }
    s->k++;
    due = s->base_ns + s->k * s->interval_ns;
    if (due <= now_ns(CLOCK_MONOTONIC)) {
        int64_t k = (now_ns(CLOCK_MONOTONIC) - s->base_ns) / s->interval_ns + 1;

        *skipped = (unsigned long)(k - s->k);
        s->k = k;
        due = s->base_ns + s->k * s->interval_ns;
    }
    its.it_value.tv_sec = (time_t)(due / NS_PER_S);
    its.it_value.tv_nsec = (long)(due % NS_PER_S);
    return timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* Records the declared outputs for tick number n; returns FB_OK or the first error. */
static enum fb_err set_tick(fb_task *task, unsigned long n)
{
    struct timespec now;
    char text[32], stamp[40];
    enum fb_err rc = FB_OK;

    clock_gettime(CLOCK_REALTIME, &now);
    snprintf(text, sizeof text, "%lu", n);
    if (fb_task_has_output(task, "TICK"))
        rc = fb_task_set_output(task, "TICK", text);
    if (rc == FB_OK && fb_task_has_output(task, "NOW") &&
        schedule__iso8601(&now, stamp, sizeof stamp) == 0)
        rc = fb_task_set_output(task, "NOW", stamp);
    return rc;
}

/* The timer, from the params. */
struct timer {
    struct schedule s;
    const char *cron; /* the param, for messages; NULL for an interval */
    int fd;           /* the timerfd */
};

/* Reads and checks the params and creates the timer, before the wait. */
static int prepare(fb_task *task, void *ctx)
{
    struct timer *t = ctx;
    const char *interval;
    char err[512] = "";
    double seconds = 0;

    interval = fb_task_param(task, "interval");
    t->cron = fb_task_param(task, "cron");
    if ((interval == NULL) == (t->cron == NULL)) {
        fb_task_fail(task, 1, "give exactly one of the params 'interval' (e.g. 5s) and 'cron'");
        return 1;
    }
    if (interval && schedule__parse_interval(interval, &seconds, err, sizeof err) != 0) {
        fb_task_fail(task, 1, "param %s", err);
        return 1;
    }
    if (t->cron && schedule__parse_cron(t->cron, &t->s.cron, err, sizeof err) != 0) {
        fb_task_fail(task, 1, "param %s", err);
        return 1;
    }
    t->s.is_cron = t->cron != NULL;
    t->s.interval_ns = (int64_t)(seconds * 1e9 + 0.5);
    t->fd = timerfd_create(t->s.is_cron ? CLOCK_REALTIME : CLOCK_MONOTONIC, TFD_CLOEXEC);
    if (t->fd < 0) {
        fb_task_fail(task, 1, "timerfd_create: %s", strerror(errno));
        return 1;
    }
    return 0;
}

/*
 * Once the task runs: ticks, once (one-shot mode) or until the run stops
 * the task.
 */
static int act(fb_task *task, void *ctx)
{
    struct timer *t = ctx;
    struct schedule *s = &t->s;
    unsigned long ticks = 0, skipped = 0;
    int fd = t->fd;

    s->base_ns = now_ns(CLOCK_MONOTONIC);
    if (arm_next(fd, s, &skipped) != 0) {
        fb_task_fail(task, 1, "the cron schedule '%s' never fires (checked 5 years ahead)",
                     t->cron);
        return 1;
    }
    for (;;) {
        struct pollfd pfd[2] = {{.fd = fd, .events = POLLIN},
                                {.fd = fb_task_fd(task), .events = POLLIN}};
        uint64_t expirations;
        enum fb_err rc;

        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            fb_task_fail(task, 1, "poll: %s", strerror(errno));
            return 1;
        }
        if (pfd[1].revents)
            plugin_cli__poll(task); /* exits 0 on stop */
        if (!(pfd[0].revents & POLLIN) || read(fd, &expirations, sizeof expirations) < 0)
            continue;
        if (!fb_task_paused(task)) {
            rc = set_tick(task, ++ticks);
            if (rc == FB_OK && !fb_task_reactive(task)) {
                rc = fb_task_done(task);
                return rc == FB_OK ? 0 : 1;
            }
            if (rc == FB_OK)
                rc = fb_task_emit(task);
            if (rc != FB_OK) {
                log_printf(FB_LOG_ERROR, "cannot emit tick %lu: %s", ticks, fb_strerror(rc));
                return 1;
            }
        }
        if (arm_next(fd, s, &skipped) != 0) {
            fb_task_log(task, "the cron schedule has no further time (checked 5 years ahead)");
            plugin_cli__idle(task);
        }
        if (skipped > 0)
            fb_task_log(task, "%lu ticks skipped: the previous tick came too late", skipped);
    }
}

int main(int argc, char **argv)
{
    static struct timer timer = {.fd = -1};
    static const struct plugin plugin = {
        .info = &info, .source = 1, .prepare = prepare, .act = act, .ctx = &timer};

    plugin_main__run(&plugin, argc, argv);
}
