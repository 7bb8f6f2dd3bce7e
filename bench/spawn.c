/*
 * fbbench-spawn - per-task overhead: how long a task process takes from its
 * spawn until it is connected and subscribed.
 *
 *   fbbench-spawn URL PROBE N seq|burst OUTFILE
 *
 * Starts N flowbus-benchprobe processes (PROBE) the way the coordinator's
 * launcher does (posix_spawn, its own process group, the FLOWBUS_* environment
 * of docs/protocol.md, no inputs), recording the wall time just before each
 * posix_spawn. "seq" waits for each process before starting the next (the
 * cost of one task on an idle machine); "burst" starts all N at once, as
 * `flowbus run` does, so they compete for the two cores. The probes append
 * their timeline to OUTFILE (see probe.c); this program joins it with the
 * spawn times and prints, in milliseconds:
 *   spawn->main  exec and dynamic loading
 *   main->conn   MQTT connect (CONNACK) and TCP_NODELAY
 *   conn->open   subscribe (SUBACK), publish "waiting" and its PUBACK
 *   spawn->open  the per-task overhead
 * as p50/p90/max, plus the reference: posix_spawn + waitpid of /bin/true,
 * sequential, measured in the same invocation.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

extern char **environ;

struct slot {
    pid_t pid;
    double spawn, main, conn, open;
};

static char **task_env(const char *url, const char *run_id, long i, const char *out)
{
    size_t n = 0, k = 0;
    char **env;

    while (environ[n] != NULL)
        n++;
    env = calloc(n + 16, sizeof *env);
    if (env == NULL)
        exit(1);
    for (size_t j = 0; j < n; j++)
        if (strncmp(environ[j], "FLOWBUS_", 8) != 0 && strncmp(environ[j], "FBBENCH_", 8) != 0)
            env[k++] = environ[j];
#define PUSH(...)                                                                                  \
    do {                                                                                           \
        if (asprintf(&env[k++], __VA_ARGS__) < 0)                                                  \
            exit(1);                                                                               \
    } while (0)
    PUSH("FLOWBUS_BROKER=%s", url);
    PUSH("FLOWBUS_RUN_ID=%s", run_id);
    PUSH("FLOWBUS_TOPIC_ROOT=flowbus/%s", run_id);
    PUSH("FLOWBUS_TASK=T%ld", i);
    PUSH("FLOWBUS_PLUGIN=benchprobe");
    PUSH("FLOWBUS_INPUTS=");
    PUSH("FLOWBUS_OUTPUTS=OUT%ld", i);
    PUSH("FLOWBUS_DEPENDS=");
    PUSH("FLOWBUS_SECRETS=");
    PUSH("FLOWBUS_PARAMS={}");
    PUSH("FLOWBUS_TIMEOUT=0");
    PUSH("FLOWBUS_ATTEMPT=1");
    PUSH("FBBENCH_OUT=%s", out);
#undef PUSH
    env[k] = NULL;
    return env;
}

static pid_t start(const char *prog, char **env)
{
    posix_spawnattr_t attr;
    char *argv[] = {(char *)prog, NULL};
    pid_t pid;
    int rc;

    posix_spawnattr_init(&attr);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    rc = posix_spawn(&pid, prog, NULL, &attr, argv, env);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        fprintf(stderr, "fbbench-spawn: %s: %s\n", prog, strerror(rc));
        exit(1);
    }
    return pid;
}

static void reap(pid_t pid)
{
    int status;

    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "fbbench-spawn: probe %ld ended with status 0x%x\n", (long)pid, status);
        exit(1);
    }
}

static void print_stat(const char *name, double *v, size_t n)
{
    printf(" %s_p50_ms=%.3f %s_p90_ms=%.3f %s_max_ms=%.3f", name,
           bench_quantile(v, n, 0.5) * 1e3, name, bench_quantile(v, n, 0.9) * 1e3, name,
           bench_quantile(v, n, 1.0) * 1e3);
}

int main(int argc, char **argv)
{
    const char *url, *prog, *mode, *out;
    struct slot *s;
    long n, i, found = 0;
    char run_id[64], line[512];
    double *a, *b, *c, *d, *ref;
    FILE *f;

    if (argc != 6) {
        fprintf(stderr, "usage: fbbench-spawn URL PROBE N seq|burst OUTFILE\n");
        return 2;
    }
    url = argv[1];
    prog = argv[2];
    n = atol(argv[3]);
    mode = argv[4];
    out = argv[5];
    s = calloc((size_t)n, sizeof *s);
    a = calloc((size_t)n, sizeof *a);
    b = calloc((size_t)n, sizeof *b);
    c = calloc((size_t)n, sizeof *c);
    d = calloc((size_t)n, sizeof *d);
    ref = calloc((size_t)n, sizeof *ref);
    if (!s || !a || !b || !c || !d || !ref || n < 1)
        return 1;
    snprintf(run_id, sizeof run_id, "spawn-%s-%ld", mode, (long)getpid());
    unlink(out);

    /*
     * The reference: spawn -> exit of a no-op program, in the same mode: one
     * at a time, or all n at once (then each waits its turn for the CPU as
     * the probes do, which is what a burst costs on this machine).
     */
    if (strcmp(mode, "seq") == 0) {
        for (i = 0; i < n; i++) {
            char *targv[] = {"true", NULL};
            double t0 = bench_mono();
            pid_t pid;

            if (posix_spawn(&pid, "/bin/true", NULL, NULL, targv, environ) != 0)
                return 1;
            reap(pid);
            ref[i] = bench_mono() - t0;
        }
    } else {
        pid_t *pids = calloc((size_t)n, sizeof *pids);
        double *t0 = calloc((size_t)n, sizeof *t0);
        long left = n;

        if (!pids || !t0)
            return 1;
        for (i = 0; i < n; i++) {
            char *targv[] = {"true", NULL};
            t0[i] = bench_mono();
            if (posix_spawn(&pids[i], "/bin/true", NULL, NULL, targv, environ) != 0)
                return 1;
        }
        while (left > 0) {
            int status;
            pid_t pid = waitpid(-1, &status, 0);
            if (pid < 0) {
                if (errno == EINTR)
                    continue;
                return 1;
            }
            for (i = 0; i < n; i++)
                if (pids[i] == pid)
                    ref[i] = bench_mono() - t0[i];
            left--;
        }
        free(pids);
        free(t0);
    }

    for (i = 0; i < n; i++) {
        char **env = task_env(url, run_id, i, out);

        s[i].spawn = bench_wall();
        s[i].pid = start(prog, env);
        if (strcmp(mode, "seq") == 0)
            reap(s[i].pid);
    }
    if (strcmp(mode, "seq") != 0)
        for (i = 0; i < n; i++)
            reap(s[i].pid);

    f = fopen(out, "r");
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        long t;
        double m, cn, op;

        if (sscanf(line, "task=T%ld pid=%*d main=%lf conn=%lf open=%lf", &t, &m, &cn, &op) == 4 &&
            t >= 0 && t < n) {
            s[t].main = m;
            s[t].conn = cn;
            s[t].open = op;
            found++;
        }
    }
    if (f != NULL)
        fclose(f);
    if (found != n) {
        fprintf(stderr, "fbbench-spawn: %ld of %ld probes reported\n", found, n);
        return 1;
    }
    for (i = 0; i < n; i++) {
        a[i] = s[i].main - s[i].spawn;
        b[i] = s[i].conn - s[i].main;
        c[i] = s[i].open - s[i].conn;
        d[i] = s[i].open - s[i].spawn;
    }
    printf("mode=%s n=%ld", mode, n);
    print_stat("spawn_main", a, (size_t)n);
    print_stat("main_conn", b, (size_t)n);
    print_stat("conn_open", c, (size_t)n);
    print_stat("total", d, (size_t)n);
    print_stat("ref_true", ref, (size_t)n);
    {
        long over50 = 0, over100 = 0;
        for (i = 0; i < n; i++) {
            over50 += d[i] > 0.050;
            over100 += d[i] > 0.100;
        }
        printf(" over50ms=%ld over100ms=%ld\n", over50, over100);
    }
    return 0;
}
