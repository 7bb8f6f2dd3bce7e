/*
 * flowbus-touched - waits until a file is created, written, moved into place
 * or has its timestamps changed, with inotify on its parent directory (no
 * polling). The window opens when the task starts running (after its inputs
 * arrive), so an earlier touch does not count.
 *
 * Params: "file" (required; relative paths are relative to the working
 * directory, which is flowbus's), "timeout" (seconds, fractions allowed).
 * The timeout is taken from the input TIMEOUT when the task declares it,
 * else from the param, else there is none; 0 also means none, as
 * FLOWBUS_TIMEOUT does. On a touch every declared output (default TRUE) is
 * set to "1"; on timeout the task logs it and ends done with no outputs, so
 * tasks that consume its outputs are skipped.
 *
 * The coordinator stops the task by killing its process group; there is no
 * stop to watch for once it runs.
 *
 * Reactive mode: a source. Once its inputs are set it emits its outputs on
 * every touch, for as long as the run goes on (stop on the control topic
 * ends it with exit 0). The inotify events of one touch (create, write,
 * close, attributes) within "debounce" seconds (param, default 0.05) of the
 * first make one emission. TIMEOUT (input or param) is ignored: a reactive
 * watch never ends on its own. Touches while the run is paused are held and
 * make one emission on resume.
 */
/* ppoll(2), for a wait with a nanosecond deadline, is a GNU extension. */
#define _GNU_SOURCE

#include "plugin_main.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WATCH_MASK (IN_CREATE | IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB | IN_MOVED_TO)

static const struct plugin_info info = {
    .name = "touched",
    .manifest =
        "{\"name\":\"touched\",\"description\":\"Waits until a file is created, written or "
        "touched\",\"inputs\":[\"TIMEOUT\"],\"outputs\":[\"TRUE\"],\"params\":{"
        "\"file\":{\"type\":\"string\",\"default\":null,\"required\":true,"
        "\"description\":\"the file to watch, relative to the working directory\"},"
        "\"timeout\":{\"type\":\"number\",\"default\":null,\"description\":\"seconds to wait "
        "when there is no TIMEOUT input; none or 0 waits until the file is touched (ignored "
        "in reactive mode)\"},"
        "\"debounce\":{\"type\":\"number\",\"default\":0.05,\"description\":\"reactive "
        "mode: seconds within which the events of one touch make one emission\"}},"
        "\"permissions\":[]}",
    .usage = "Sets its outputs (usually TRUE) to \"1\" when the param \"file\" is created,\n"
             "written or has its timestamps changed; ends with no outputs after TIMEOUT\n"
             "seconds (input TIMEOUT, else param \"timeout\"; none or 0 waits forever).\n",
};

/* The outcome of watch_file. */
enum watch_result { WATCH_TOUCHED, WATCH_TIMEOUT, WATCH_ERROR };

/* Parses a timeout in seconds; returns 0 and *out (0 for none), -1 if malformed. */
static int parse_timeout(const char *text, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(text, &end);
    while (*end == ' ')
        end++;
    if (end == text || *end != '\0' || errno != 0 || !isfinite(v) || v < 0)
        return -1;
    *out = v;
    return 0;
}

/*
 * After an inotify queue overflow events may have been lost: count the file
 * as touched if its status changed since the watch began (ctime moves on
 * create, write and attribute changes).
 */
static int changed_since(const char *file, const struct timespec *since)
{
    struct stat st;

    if (stat(file, &st) != 0)
        return 0;
    return st.st_ctim.tv_sec > since->tv_sec ||
           (st.st_ctim.tv_sec == since->tv_sec && st.st_ctim.tv_nsec >= since->tv_nsec);
}

/*
 * Waits on the inotify fd (already watching dir) for an event on name, up to
 * timeout seconds (0: forever). On WATCH_ERROR, err holds the reason. The
 * task's bus is served from the same poll (the process has no other thread:
 * a long watch must still answer the broker's keepalive). As in cmd, a stop
 * is left to the coordinator (it ends the process group) and a lost broker
 * only ends the serving: fb_task_done reports it.
 */
static enum watch_result wait_events(fb_task *task, int fd, const char *file, const char *dir,
                                     const char *name, double timeout,
                                     const struct timespec *since, char *err, size_t errlen)
{
    /* Aligned as inotify(7) asks; room for many events with names. */
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    double deadline = fb_clock_mono() + timeout;
    int task_fd = fb_task_fd(task);

    for (;;) {
        struct pollfd pfd[2] = {{.fd = fd, .events = POLLIN}, {.fd = task_fd, .events = POLLIN}};
        struct timespec left, *leftp = NULL;
        ssize_t n;
        char *p;
        int ready;

        if (timeout > 0) {
            double rest = deadline - fb_clock_mono();

            if (rest <= 0)
                return WATCH_TIMEOUT;
            left.tv_sec = (time_t)rest;
            left.tv_nsec = (long)((rest - (double)left.tv_sec) * 1e9);
            leftp = &left;
        }
        ready = ppoll(pfd, 2, leftp, NULL);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready < 0) {
            snprintf(err, errlen, "poll on inotify failed: %s", strerror(errno));
            return WATCH_ERROR;
        }
        if ((pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) && fb_task_poll(task) == FB_ERR_LOST)
            task_fd = -1;
        if (!(pfd[0].revents & POLLIN))
            continue; /* the deadline check above decides */
        n = read(fd, buf, sizeof buf);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0) {
            snprintf(err, errlen, "reading inotify events failed: %s",
                     n < 0 ? strerror(errno) : "end of file");
            return WATCH_ERROR;
        }
        for (p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)(void *)p;

            if (ev->mask & IN_Q_OVERFLOW) {
                if (changed_since(file, since))
                    return WATCH_TOUCHED;
            } else if (ev->mask & IN_IGNORED) {
                snprintf(err, errlen, "directory '%s' was removed or unmounted while watching",
                         dir);
                return WATCH_ERROR;
            } else if ((ev->mask & WATCH_MASK) && ev->len > 0 && strcmp(ev->name, name) == 0) {
                return WATCH_TOUCHED;
            }
            p += sizeof *ev + ev->len;
        }
    }
}

/*
 * Reads the pending inotify events (fd is readable); returns 1 if one of
 * them is about name, 0 if none, -1 on error (reason in err).
 */
static int read_matches(int fd, const char *file, const char *dir, const char *name,
                        const struct timespec *since, char *err, size_t errlen)
{
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n = read(fd, buf, sizeof buf);
    int hit = 0;
    char *p;

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    if (n <= 0) {
        snprintf(err, errlen, "reading inotify events failed: %s",
                 n < 0 ? strerror(errno) : "end of file");
        return -1;
    }
    for (p = buf; p < buf + n;) {
        const struct inotify_event *ev = (const struct inotify_event *)(void *)p;

        if (ev->mask & IN_Q_OVERFLOW) {
            hit |= changed_since(file, since);
        } else if (ev->mask & IN_IGNORED) {
            snprintf(err, errlen, "directory '%s' was removed or unmounted while watching", dir);
            return -1;
        } else if ((ev->mask & WATCH_MASK) && ev->len > 0 && strcmp(ev->name, name) == 0) {
            hit = 1;
        }
        p += sizeof *ev + ev->len;
    }
    return hit;
}

/* Records "1" for every declared output; returns FB_OK or the first error. */
static enum fb_err set_outputs(fb_task *task);

/*
 * Reactive mode: emits on every touch until the run stops the task. Never
 * returns; exits 1 if the watch breaks.
 */
static FB_NORETURN void watch_reactive(fb_task *task, int fd, const char *file, const char *dir,
                                       const char *name)
{
    double debounce = 0.05, due = -1; /* due: when the pending touch is emitted; < 0: none */
    const char *text = fb_task_param(task, "debounce");
    struct timespec since;
    char err[512] = "";
    int pending = 0;

    if (text && parse_timeout(text, &debounce) != 0) {
        fb_task_fail(task, 1, "param 'debounce' is '%s'; expected a number of seconds >= 0", text);
        fb_task_exit(task, 1);
    }
    fb_task_log(task, "watching %s (reactive: every touch emits)", file);
    for (;;) {
        struct pollfd pfd[2] = {{.fd = fd, .events = POLLIN},
                                {.fd = fb_task_fd(task), .events = POLLIN}};
        double wait = pending && !fb_task_paused(task) ? due - fb_clock_mono() : 1.0;
        int ready;

        if (pending && !fb_task_paused(task) && wait <= 0) {
            enum fb_err rc = set_outputs(task);

            if (rc == FB_OK)
                rc = fb_task_emit(task);
            if (rc != FB_OK) {
                log_printf(FB_LOG_ERROR, "cannot emit: %s", fb_strerror(rc));
                fb_task_exit(task, 1);
            }
            pending = 0;
            continue;
        }
        clock_gettime(CLOCK_REALTIME, &since);
        ready = poll(pfd, 2, (int)(wait * 1000.0 + 0.999));
        if (ready < 0 && errno != EINTR) {
            fb_task_fail(task, 1, "poll failed: %s", strerror(errno));
            fb_task_exit(task, 1);
        }
        if (ready > 0 && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)))
            plugin_cli__poll(task);
        if (ready > 0 && (pfd[0].revents & POLLIN)) {
            int hit = read_matches(fd, file, dir, name, &since, err, sizeof err);

            if (hit < 0) {
                fb_task_fail(task, 1, "%s", err);
                fb_task_exit(task, 1);
            }
            if (hit && !pending) {
                pending = 1;
                due = fb_clock_mono() + debounce;
            }
        }
        /* A touch held while paused is due as soon as the run resumes. */
        if (pending && fb_task_paused(task) && due > fb_clock_mono())
            due = fb_clock_mono();
    }
}

/* Records "1" for every declared output; returns FB_OK or the first error. */
static enum fb_err set_outputs(fb_task *task)
{
    enum fb_err rc = FB_OK;
    size_t i;

    for (i = 0; i < fb_task_output_count(task) && rc == FB_OK; i++)
        rc = fb_task_set_output(task, fb_task_output_name(task, i), "1");
    return rc;
}

/* The watch, set up before the wait. */
struct watch {
    const char *file;      /* the param */
    char *dir;             /* the directory watched */
    const char *name;      /* the name matched in it */
    int fd;                /* the inotify instance; -1 until made */
    struct timespec since; /* when the watch began */
};

/* Reads the param 'file' and starts watching its directory. */
static int prepare(fb_task *task, void *ctx)
{
    struct watch *w = ctx;
    const char *file;
    char *slash;

    w->file = file = fb_task_param(task, "file");
    if (!file || !*file) {
        fb_task_fail(task, 1, "the param 'file' is required (the file to watch)");
        return 1;
    }
    /* Split file into the directory to watch and the name to match. */
    w->dir = strdup(file);
    if (!w->dir) {
        fb_task_fail(task, 1, "out of memory");
        return 1;
    }
    slash = strrchr(w->dir, '/');
    if (!slash) {
        w->name = file;
        free(w->dir);
        w->dir = strdup(".");
    } else {
        w->name = file + (slash - w->dir) + 1;
        if (slash == w->dir)
            slash[1] = '\0'; /* "/x" is watched in "/" */
        else
            *slash = '\0';
    }
    if (!w->dir || !*w->name || strcmp(w->name, ".") == 0 || strcmp(w->name, "..") == 0) {
        fb_task_fail(task, 1, "the param 'file' is '%s'; expected a path naming a file", file);
        return 1;
    }

    w->fd = inotify_init1(IN_CLOEXEC);
    if (w->fd < 0) {
        fb_task_fail(task, 1, "cannot start inotify: %s", strerror(errno));
        return 1;
    }
    if (inotify_add_watch(w->fd, w->dir, WATCH_MASK | IN_ONLYDIR) < 0) {
        fb_task_fail(task, 1, "cannot watch the directory '%s' of '%s': %s", w->dir, file,
                     strerror(errno));
        return 1;
    }
    /* The watch starts before the wait: a touch between the task reporting
     * FB_STATE_RUNNING and a watch set up afterwards would otherwise be lost. A touch
     * while the task still waits for its inputs therefore counts too. */
    clock_gettime(CLOCK_REALTIME, &w->since);
    return 0;
}

/* Once the task runs: waits for the touch (one-shot mode) or emits on every touch. */
static int act(fb_task *task, void *ctx)
{
    const struct watch *w = ctx;
    const char *file = w->file, *timeout_text = NULL, *timeout_from = "";
    char err[512] = "";
    double timeout = 0;
    enum watch_result result;

    if (fb_task_reactive(task))
        watch_reactive(task, w->fd, file, w->dir, w->name);

    /* After the wait every declared input is set, so NULL means "not an input". */
    if ((timeout_text = fb_task_input(task, "TIMEOUT")) != NULL) {
        timeout_from = "input TIMEOUT";
    } else if (fb_task_param(task, "timeout")) {
        timeout_text = fb_task_param(task, "timeout");
        timeout_from = "param 'timeout'";
    }
    if (timeout_text && parse_timeout(timeout_text, &timeout) != 0) {
        fb_task_fail(task, 1, "%s is '%s'; expected a number of seconds >= 0", timeout_from,
                     timeout_text);
        return 1;
    }

    if (timeout > 0)
        fb_task_log(task, "watching %s for %g s", file, timeout);
    else
        fb_task_log(task, "watching %s (no timeout)", file);

    result = wait_events(task, w->fd, file, w->dir, w->name, timeout, &w->since, err, sizeof err);
    if (result == WATCH_ERROR) {
        fb_task_fail(task, 1, "%s", err);
        return 1;
    }
    if (result == WATCH_TOUCHED) {
        enum fb_err rc = set_outputs(task);

        if (rc != FB_OK) {
            fb_task_fail(task, 1, "cannot set outputs: %s", fb_strerror(rc));
            return 1;
        }
        fb_task_log(task, "%s was touched", file);
    } else {
        fb_task_log(task, "no change to %s within %g s", file, timeout);
    }
    if (fb_task_done(task) != FB_OK) {
        log_printf(FB_LOG_ERROR, "cannot report done");
        return 1;
    }
    return 0;
}

/* Ends the watch, on every exit the skeleton makes after prepare. */
static void finish(fb_task *task, void *ctx)
{
    struct watch *w = ctx;

    (void)task;
    if (w->fd >= 0)
        close(w->fd);
    free(w->dir);
}

int main(int argc, char **argv)
{
    static struct watch watch = {.fd = -1};
    /* No permission of its own; the workflow's (and requires_auth) still apply. */
    static const struct plugin plugin = {.info = &info,
                                         .check_permissions = 1,
                                         .source = 1,
                                         .prepare = prepare,
                                         .act = act,
                                         .finish = finish,
                                         .ctx = &watch};

    plugin_main__run(&plugin, argc, argv);
}
