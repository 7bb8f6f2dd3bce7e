/*
 * flowbus-benchprobe - the benchmark plugin: an fb_task that records when
 * each step of its life happened and publishes its outputs as timestamps.
 *
 * Timeline (CLOCK_REALTIME, shared by every process on the machine):
 *   main  first line of main(), after exec and dynamic loading
 *   conn  the SDK's "connected to" debug log: CONNACK received, TCP_NODELAY set
 *   open  fb_task_open returned: subscribed, "waiting" published and acknowledged
 *   run   fb_task_wait returned: every input is set, "running" is queued; this
 *         is where a task's action starts
 *   pub   just before fb_task_done publishes the outputs
 * Every output is set to the text of pub, so a dependent probe computes one
 * hop as its own run minus the value of its input (both clocks are the same
 * kernel clock). An input that is not a timestamp (e.g. "1") gives no hop.
 *
 * With FBBENCH_OUT=<file> in the environment one line per process is appended
 * there (a single write with O_APPEND, so concurrent probes do not interleave):
 *   task=<name> pid=<pid> main=<t> conn=<t> open=<t> run=<t> pub=<t> hop=<s|->
 * otherwise the line goes to stdout. With FBBENCH_HOLD=1 the probe stops after
 * fb_task_open and sleeps until killed (to measure an idle task's memory).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "flowbus/flowbus.h"

static double t_conn;

/* Called on Paho's thread as well as ours; it only stores one double, once. */
static void on_sdk_log(void *ctx, enum fb_log_level level, const char *msg)
{
    (void)ctx;
    (void)level;
    if (t_conn == 0 && strncmp(msg, "connected to ", 13) == 0)
        t_conn = bench_wall();
}

static void report(const char *line)
{
    const char *path = getenv("FBBENCH_OUT");
    int fd;

    if (path == NULL || *path == '\0') {
        fputs(line, stdout);
        fflush(stdout);
        return;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    if (write(fd, line, strlen(line)) < 0)
        perror("flowbus-benchprobe: write");
    close(fd);
}

int main(int argc, char **argv)
{
    double t_main = bench_wall(), t_open, t_run, t_pub, hop = -1;
    fb_task_options opts = {on_sdk_log, NULL};
    fb_task *task = NULL;
    char err[256], value[64], line[512];
    enum fb_err rc;
    size_t i;

    /* Internal: the editor's palette leaves this benchmark program out. */
    if (argc == 2 && strcmp(argv[1], "--describe") == 0) {
        puts("{\"name\":\"benchprobe\",\"description\":\"The benchmarks' probe task "
             "(bench/probe.c)\",\"inputs\":[],\"outputs\":[],\"params\":{},\"internal\":true}");
        return 0;
    }
    rc = fb_task_open(&opts, &task, err, sizeof err);
    if (rc != FB_OK) {
        fprintf(stderr, "flowbus-benchprobe: %s\n", err);
        fb_task_exit(NULL, 2);
    }
    t_open = bench_wall();
    if (getenv("FBBENCH_HOLD") != NULL)
        for (;;)
            pause();
    rc = fb_task_wait(task, -1);
    t_run = bench_wall();
    if (rc != FB_OK)
        fb_task_exit(task, rc == FB_ERR_STOPPED ? 0 : 3);
    for (i = 0; i < fb_task_input_count(task); i++) {
        const char *v = fb_task_input(task, fb_task_input_name(task, i));
        double sent = v != NULL ? atof(v) : 0;

        if (sent > 1e9)
            hop = t_run - sent;
    }
    t_pub = bench_wall();
    snprintf(value, sizeof value, "%.6f", t_pub);
    for (i = 0; i < fb_task_output_count(task); i++)
        fb_task_set_output(task, fb_task_output_name(task, i), value);
    rc = fb_task_done(task);
    if (hop >= 0)
        snprintf(value, sizeof value, "%.6f", hop);
    else
        snprintf(value, sizeof value, "-");
    snprintf(line, sizeof line,
             "task=%s pid=%ld main=%.6f conn=%.6f open=%.6f run=%.6f pub=%.6f hop=%s\n",
             fb_task_name(task), (long)getpid(), t_main, t_conn, t_open, t_run, t_pub, value);
    report(line);
    fb_task_exit(task, rc == FB_OK ? 0 : 6);
}
