/*
 * fbbench-touch - the `touched` reaction: touch of a file -> TRUE on the bus.
 *
 *   fbbench-touch URL TOUCHED_PLUGIN N DIR
 *
 * For each of N rounds, subscribes (fb_bus) to a fresh run's topics, starts
 * flowbus-touched with the FLOWBUS_* environment (output TRUE, param file =
 * DIR/f<i>), waits for its "running" state, then 20 ms more so the plugin has
 * its inotify watch in place (it opens the window after publishing
 * "running"), creates the file (open O_CREAT, as touch does) and takes the
 * time until vars/TRUE arrives at this subscriber. The plugin is one-shot, so
 * every round is a new process; its start-up is not part of the figure.
 *
 * Output: n=... p50_ms=... p99_ms=... max_ms=...
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "flowbus/flowbus.h"

extern char **environ;

static char **task_env(const char *url, const char *run_id, const char *file)
{
    size_t n = 0, k = 0;
    char **env;

    while (environ[n] != NULL)
        n++;
    env = calloc(n + 16, sizeof *env);
    if (env == NULL)
        exit(1);
    for (size_t j = 0; j < n; j++)
        if (strncmp(environ[j], "FLOWBUS_", 8) != 0)
            env[k++] = environ[j];
#define PUSH(...)                                                                                  \
    do {                                                                                           \
        if (asprintf(&env[k++], __VA_ARGS__) < 0)                                                  \
            exit(1);                                                                               \
    } while (0)
    PUSH("FLOWBUS_BROKER=%s", url);
    PUSH("FLOWBUS_RUN_ID=%s", run_id);
    PUSH("FLOWBUS_TOPIC_ROOT=flowbus/%s", run_id);
    PUSH("FLOWBUS_TASK=TOUCHED");
    PUSH("FLOWBUS_PLUGIN=touched");
    PUSH("FLOWBUS_INPUTS=");
    PUSH("FLOWBUS_OUTPUTS=TRUE");
    PUSH("FLOWBUS_DEPENDS=");
    PUSH("FLOWBUS_SECRETS=");
    PUSH("FLOWBUS_PARAMS={\"file\":\"%s\",\"timeout\":20}", file);
    PUSH("FLOWBUS_TIMEOUT=0");
    PUSH("FLOWBUS_ATTEMPT=1");
#undef PUSH
    env[k] = NULL;
    return env;
}

/* Waits for a message on topic whose payload contains needle (NULL: any). */
static int wait_for(fb_bus *bus, const char *topic, const char *needle, double timeout)
{
    double deadline = bench_mono() + timeout;
    fb_msg *m;

    while (bench_mono() < deadline &&
           fb_bus_next(bus, deadline - bench_mono(), &m) == FB_OK) {
        int hit = strcmp(m->topic, topic) == 0 && m->len > 0 &&
                  (needle == NULL || strstr(m->payload, needle) != NULL);
        fb_msg_free(m);
        if (hit)
            return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    fb_bus_options o = {0};
    fb_bus *bus = NULL;
    const char *url, *prog, *dir;
    char err[256];
    long n, i;
    double *v;

    if (argc != 5) {
        fprintf(stderr, "usage: fbbench-touch URL TOUCHED_PLUGIN N DIR\n");
        return 2;
    }
    url = argv[1];
    prog = argv[2];
    n = atol(argv[3]);
    dir = argv[4];
    v = calloc((size_t)(n > 0 ? n : 1), sizeof *v);
    o.url = url;
    if (v == NULL || fb_bus_new(&o, &bus, err, sizeof err) != FB_OK) {
        fprintf(stderr, "fbbench-touch: %s\n", err);
        return 1;
    }
    for (i = 0; i < n; i++) {
        char run_id[64], file[512], filter[128], state[160], var[160];
        const char *filters[1] = {filter};
        char *argv2[] = {(char *)prog, NULL};
        char **env;
        pid_t pid;
        double t0;
        int fd, status;

        snprintf(run_id, sizeof run_id, "touch-%ld-%ld", (long)getpid(), i);
        snprintf(file, sizeof file, "%s/f%ld", dir, i);
        snprintf(filter, sizeof filter, "flowbus/%s/#", run_id);
        snprintf(state, sizeof state, "flowbus/%s/tasks/TOUCHED/state", run_id);
        snprintf(var, sizeof var, "flowbus/%s/vars/TRUE", run_id);
        unlink(file);
        if (fb_bus_subscribe(bus, filters, 1, 5.0) != FB_OK)
            return 1;
        env = task_env(url, run_id, file);
        if (posix_spawn(&pid, prog, NULL, NULL, argv2, env) != 0)
            return 1;
        if (!wait_for(bus, state, "\"running\"", 10.0)) {
            fprintf(stderr, "fbbench-touch: round %ld: no running state\n", i);
            kill(pid, SIGKILL);
            return 1;
        }
        bench_sleep(0.020);
        t0 = bench_mono();
        fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            return 1;
        close(fd);
        if (!wait_for(bus, var, NULL, 10.0)) {
            fprintf(stderr, "fbbench-touch: round %ld: TRUE never came\n", i);
            kill(pid, SIGKILL);
            return 1;
        }
        v[i] = bench_mono() - t0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        unlink(file);
        for (size_t k = 0; env[k] != NULL; k++)
            if (strncmp(env[k], "FLOWBUS_", 8) == 0)
                free(env[k]);
        free(env);
    }
    printf("n=%ld p50_ms=%.3f p99_ms=%.3f max_ms=%.3f\n", n, bench_quantile(v, (size_t)n, 0.5) * 1e3,
           bench_quantile(v, (size_t)n, 0.99) * 1e3, bench_quantile(v, (size_t)n, 1.0) * 1e3);
    fflush(stdout);
    fb_bus_close(bus, 1.0);
    _exit(0);
}
