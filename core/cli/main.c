/*
 * main.c - the flowbus command line: the dispatcher of every command (run,
 * up, resume, validate, graph, the bus clients of commands.h), help, version.
 *
 * Each command parses its own options; every usage error is a one-line
 * message naming what was wrong and exit code 2 (FB_EXIT_INVALID), the same
 * code as an invalid workflow, so scripts can tell "flowbus refused" from "a
 * task failed".
 */
#include "commands.h"
#include "fmt.h"
#include "graph.h"
#include "localruns.h"
#include "log.h"
#include "mask.h"
#include "plugins.h"
#include "session.h"
#include "run.h"
#include "ui_cli.h"
#include "agent_cli.h"
#include "workflow.h"

#include <flowbus/protocol.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

/* One day: long enough to look at a finished run, short enough not to pile up. */
#define DEFAULT_EXPIRY 86400.0

#ifndef FLOWBUS_VERSION
#define FLOWBUS_VERSION "0.0.0"
#endif

static const char usage_main[] =
    "Usage: flowbus COMMAND [OPTIONS]\n"
    "\n"
    "Run workflows of tasks as separate processes talking over MQTT.\n"
    "\n"
    "Commands:\n"
    "  run FILE        run a workflow to completion\n"
    "  up FILE         run a workflow reactively until stopped (tasks fire on every new value)\n"
    "  validate FILE   check a workflow without running it\n"
    "  graph FILE      print the workflow's graph (Mermaid or DOT)\n"
    "  fmt FILE...     print or rewrite workflow files in the canonical layout\n"
    "  resume RUN      lift a pause, or take over a run whose coordinator died\n"
    "  gc              remove leftovers: dead processes' temporary directories, and\n"
    "                  the retained topics of finished runs on a broker\n"
    "  status [RUN]    the runs on a broker, or one run and its tasks\n"
    "  set RUN VAR=V   publish variables of a live run\n"
    "  logs RUN [-f]   a run's error lines, or follow its log and states live\n"
    "  stop RUN        stop a run and wait until it has ended\n"
    "  pause RUN       pause a run (events are held until resume)\n"
    "  ui              serve the browser editor and its HTTP API\n"
    "  agent           run the tasks placed on this host (runs_on:; docs/distributed.md)\n"
    "  agents          the agents on a broker: labels, state, load\n"
    "  help [COMMAND]  show help\n"
    "\n"
    "Options:\n"
    "  -h, --help      show help\n"
    "  -V, --version   show the version\n"
    "\n"
    "Exit codes: 0 success, 1 a task failed, timed out, crashed or was denied,\n"
    "2 invalid workflow or usage, 3 finished but the end task was skipped,\n"
    "4 broker unavailable, 5 (resume) the run has another owner, 130 interrupted.\n";

static const char usage_run[] =
    "Usage: flowbus run FILE [OPTIONS]\n"
    "\n"
    "Run the workflow FILE: start a private broker (unless --broker), launch every\n"
    "task as its own process, follow them on the bus, print a summary.\n"
    "\n"
    "Options:\n"
    "  --broker URL       use this broker (tcp://host:port or mqtt://host:port,\n"
    "                     mqtts:// or ssl:// for TLS);\n"
    "                     default: $FLOWBUS_BROKER, else a private mosquitto\n"
    "  --set VAR=VALUE    set an initial variable (overrides env:); repeatable\n"
    "  --run-id ID        name the run (default: date-time-random)\n"
    "  --timeout SECONDS  stop the run after this long (exit 1)\n"
    "  --json             print machine-readable events, one JSON object a line\n"
    "  --expiry SECONDS   how long the finished run's retained topics stay on an external\n"
    "                     broker (MQTT v5 message expiry; default 86400; 0: for ever)\n"
    "  --task-identities auto|dynsec|shared\n"
    "                     on --broker: a user per task through the broker's dynamic\n"
    "                     security plugin, else the coordinator's own with a warning\n"
    "                     (auto, the default; $FLOWBUS_TASK_IDENTITIES), the plugin or\n"
    "                     refuse the run (dynsec), or the coordinator's own (shared)\n"
    "  -q, --quiet        print only the header, the final summary and flowbus's own\n"
    "                     notes, warnings and errors: no progress, no task log lines\n"
    "                     (with --json: no task, log or var events)\n"
    "  -h, --help         show this help\n"
    "\n"
    "Broker credentials for --broker come from FLOWBUS_USERNAME and FLOWBUS_PASSWORD;\n"
    "TLS files from FLOWBUS_TLS_CA, FLOWBUS_TLS_CERT and FLOWBUS_TLS_KEY.\n";

static const char usage_up[] =
    "Usage: flowbus up FILE [OPTIONS]\n"
    "\n"
    "Run the workflow FILE reactively until it is stopped (Ctrl-C, SIGTERM, flowbus stop\n"
    "RUN): every task stays up and fires again each time one of its trigger inputs is\n"
    "published while all its inputs are set. Same as `mode: reactive` in the file.\n"
    "A crashed or failed task process is started again (execution.restart).\n"
    "Exit 0 when stopped, 1 if a task ended for good in failure, 4 broker trouble.\n"
    "\n"
    "Options: as for flowbus run (--broker, --set, --run-id, --timeout, --json, --expiry, -q).\n";

static const char usage_resume[] =
    "Usage: flowbus resume RUN [--broker URL] [OPTIONS]\n"
    "\n"
    "A paused run whose coordinator is alive (flowbus pause RUN): lift the pause, so\n"
    "the held events are delivered in order; this is all resume does to such a run.\n"
    "A live run of this user on its private broker is found by its id alone.\n"
    "\n"
    "Otherwise RUN, on an external broker, is a run whose coordinator died: take it\n"
    "over. Rebuild its state from the retained topics, adopt the task processes still\n"
    "alive, start the tasks that never started, never run a finished task again, and\n"
    "end with the exit code the run would have had. The workflow file and directory\n"
    "are the ones the run recorded; secrets come again from this environment. Any\n"
    "other run with a live coordinator is refused, and of several resumes of one run\n"
    "exactly one takes it over.\n"
    "\n"
    "Options:\n"
    "  --broker URL       the run's broker (default: $FLOWBUS_BROKER)\n"
    "  --timeout SECONDS  stop the run after this long from now (exit 1)\n"
    "  --json             print machine-readable events\n"
    "  -q, --quiet        as flowbus run's: only the header, the final summary and\n"
    "                     flowbus's own notes, warnings and errors\n"
    "  -h, --help         show this help\n"
    "\n"
    "Exit codes: as flowbus run's; 2 no such run (or not running, or run on another\n"
    "host), 5 the run has another owner: its coordinator is alive, or another resume\n"
    "took it.\n";

static const char usage_validate[] =
    "Usage: flowbus validate FILE [--set VAR=VALUE]...\n"
    "\n"
    "Check FILE: syntax, keys, types, names, plugins, inputs, cycles, dependencies.\n"
    "Errors print as FILE:LINE:COL: error: ... and exit 2; warnings exit 0.\n";

static const char usage_graph[] =
    "Usage: flowbus graph FILE [--format mermaid|dot] [--set VAR=VALUE]...\n"
    "\n"
    "Print the workflow's DAG with variable names on the edges (default: mermaid).\n";

struct settings {
    struct wf_setting *items;
    size_t n;
};

/* Parses VAR=VALUE into settings; the strings point into arg. */
static int add_setting(struct settings *s, char *arg)
{
    char *eq = strchr(arg, '=');
    struct wf_setting *items;

    if (!eq || eq == arg) {
        fprintf(stderr, "flowbus: --set expects VAR=VALUE, got '%s'\n", arg);
        return 0;
    }
    /*
     * A reserved name (fb_name_reserved) is refused by the loader, with the
     * workflow's position, unless env: declares it (workflow__apply_settings):
     * only the loader knows the declarations and the secrets' names.
     */
    items = realloc(s->items, (s->n + 1) * sizeof *items);
    if (!items)
        return 0;
    s->items = items;
    *eq = '\0';
    s->items[s->n].name = arg;
    s->items[s->n].value = eq + 1;
    s->n++;
    return 1;
}

static int parse_seconds(const char *option, const char *text, double *out)
{
    char *end;
    double v = strtod(text, &end);
    if (end == text || *end || v < 0) {
        fprintf(stderr, "flowbus: %s expects a number of seconds >= 0, got '%s'\n", option, text);
        return 0;
    }
    *out = v;
    return 1;
}

/* Checks that exactly one argument (what) remains after the options. */
static const char *one_arg(int argc, char **argv, const char *what, const char *usage)
{
    if (optind != argc - 1) {
        fprintf(stderr, "flowbus: expected one %s\n\n%s", what, usage);
        return NULL;
    }
    return argv[optind];
}

static const char *one_file(int argc, char **argv, const char *usage)
{
    return one_arg(argc, argv, "workflow FILE", usage);
}

enum run_command { CMD_RUN, CMD_RESUME, CMD_UP };

/*
 * `resume RUN` of a paused run whose coordinator is alive lifts the pause on
 * the control topic; control__resume's code, CONTROL_TAKE_OVER when the run
 * needs a new coordinator instead.
 */
static int lift_pause(const char *broker_url, const char *username, const char *password,
                      const char *run_id)
{
    struct client_options co = {0};

    co.broker_url = broker_url;
    co.username = username;
    co.password = password;
    co.run_id = run_id;
    return control__resume(&co);
}

static int cmd_run(int argc, char **argv, enum run_command which)
{
    static const struct option opts[] = {
        {"broker", required_argument, 0, 'b'}, {"set", required_argument, 0, 's'},
        {"run-id", required_argument, 0, 'r'}, {"timeout", required_argument, 0, 't'},
        {"json", no_argument, 0, 'j'},         {"quiet", no_argument, 0, 'q'},
        {"expiry", required_argument, 0, 'e'}, {"help", no_argument, 0, 'h'},
        {"task-identities", required_argument, 0, 'i'},
        {0, 0, 0, 0},
    };
    const char *usage = which == CMD_RESUME ? usage_resume : which == CMD_UP ? usage_up : usage_run;
    int resume = which == CMD_RESUME;
    struct run_options o = {0};
    struct settings s = {0};
    struct localrun local = {0};
    int c, code = FB_EXIT_INVALID, given = 0;

    o.reactive = which == CMD_UP;
    o.expiry = DEFAULT_EXPIRY;

    o.broker_url = getenv("FLOWBUS_BROKER");
    if (o.broker_url && !*o.broker_url)
        o.broker_url = NULL;
    while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
        switch (c) {
        case 'b':
            o.broker_url = optarg;
            given = 1;
            break;
        case 's':
            if (!add_setting(&s, optarg))
                goto out;
            break;
        case 'r':
            if (resume) {
                fprintf(stderr, "flowbus: resume takes no --run-id: name the run as its argument\n");
                goto out;
            }
            o.run_id = optarg;
            break;
        case 't':
            if (!parse_seconds("--timeout", optarg, &o.timeout))
                goto out;
            break;
        case 'e':
            if (!parse_seconds("--expiry", optarg, &o.expiry))
                goto out;
            break;
        case 'j':
            o.json = 1;
            break;
        case 'i':
            if (strcmp(optarg, "auto") != 0 && strcmp(optarg, "dynsec") != 0 &&
                strcmp(optarg, "shared") != 0) {
                fprintf(stderr, "flowbus: --task-identities expects auto, dynsec or shared, got "
                                "'%s'\n", optarg);
                goto out;
            }
            o.task_identities = optarg;
            break;
        case 'q':
            log__set_level(FB_LOG_WARN);
            o.quiet = 1;
            break;
        case 'h':
            fputs(usage, stdout);
            code = FB_EXIT_OK;
            goto out;
        default:
            fprintf(stderr, "\n%s", usage);
            goto out;
        }
    }
    if (resume) {
        /* resume takes a run id where run takes a file, and nothing that would
         * change what the run is. */
        o.resume = 1;
        o.run_id = one_arg(argc, argv, "RUN id", usage_resume);
        if (!o.run_id)
            goto out;
        if (s.n || o.file) {
            fprintf(stderr, "flowbus: resume takes no --set or --run-id: the run keeps its own\n");
            goto out;
        }
        /* A paused live run of this user on its private broker: lift the pause. */
        if (!given && localruns__find(o.run_id, &local)) {
            code = lift_pause(local.broker_url, local.username, local.password, o.run_id);
            if (code == CONTROL_TAKE_OVER) {
                fprintf(stderr, "flowbus: run %s is alive on its private broker (coordinator pid "
                                "%ld) and not paused: nothing to resume\n", o.run_id, local.pid);
                code = FB_EXIT_INVALID;
            }
            goto out;
        }
        if (!o.broker_url) {
            fprintf(stderr, "flowbus: resume needs the run's broker: --broker URL or "
                            "FLOWBUS_BROKER\n");
            goto out;
        }
    } else {
        o.file = one_file(argc, argv, usage);
        if (!o.file)
            goto out;
    }
    if (o.broker_url && !session__check_url(o.broker_url))
        goto out;
    o.username = getenv("FLOWBUS_USERNAME");
    o.password = getenv("FLOWBUS_PASSWORD");
    o.settings = s.items;
    o.n_settings = s.n;
    if (resume) {
        /* A paused run whose coordinator is alive is resumed by lifting the
         * pause, as a client on its control topic would (a control message,
         * not a takeover). Any other run goes to the takeover, which refuses
         * a live owner (core/run/lease.c). */
        code = lift_pause(o.broker_url, o.username, o.password, o.run_id);
        if (code != CONTROL_TAKE_OVER)
            goto out;
    }
    code = run__main(&o);
out:
    localruns__clear(&local);
    free(s.items);
    return code;
}

/* Loads a workflow for validate and graph, printing its diagnostics. */
static struct workflow *load(const char *file, const struct settings *s, int graph,
                             struct wf_diags *diags)
{
    struct wf_load_options lo = {0};
    struct workflow *wf;
    char where[2048];

    plugins__describe_path(where, sizeof where);
    lo.lookup_where = where;
    /* Drawing needs no values: an unset {{ENV:X}} is not an error for graph. */
    lo.unset_env_ok = graph;
    lo.settings = s->items;
    lo.n_settings = s->n;
    lo.lookup = plugins__lookup;
    wf = workflow__load(file, &lo, diags);
    wf_diags_print(diags, file, stderr);
    return wf;
}

static int cmd_validate_or_graph(int argc, char **argv, int graph)
{
    static const struct option opts[] = {
        {"set", required_argument, 0, 's'},
        {"format", required_argument, 0, 'f'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *usage = graph ? usage_graph : usage_validate;
    const char *format = "mermaid", *file;
    struct settings s = {0};
    struct wf_diags diags = {0};
    struct workflow *wf = NULL;
    struct graph *g = NULL;
    int c, code = FB_EXIT_INVALID;

    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            if (!add_setting(&s, optarg))
                goto out;
            break;
        case 'f':
            if (!graph || (strcmp(optarg, "mermaid") != 0 && strcmp(optarg, "dot") != 0)) {
                fprintf(stderr, "flowbus: --format expects mermaid or dot, got '%s'\n", optarg);
                goto out;
            }
            format = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            code = FB_EXIT_OK;
            goto out;
        default:
            fprintf(stderr, "\n%s", usage);
            goto out;
        }
    }
    file = one_file(argc, argv, usage);
    if (!file)
        goto out;
    wf = load(file, &s, graph, &diags);
    if (!wf)
        goto out;
    if (!graph) {
        printf("%s: valid: %zu tasks, %zu warnings\n", file, wf->n_tasks, diags.n - diags.n_errors);
        code = FB_EXIT_OK;
        goto out;
    }
    g = graph__new(wf);
    if (!g) {
        fprintf(stderr, "flowbus: out of memory\n");
        goto out;
    }
    if (strcmp(format, "dot") == 0)
        graph__print_dot(g, stdout);
    else
        graph__print_mermaid(g, stdout);
    code = FB_EXIT_OK;
out:
    graph__free(g);
    workflow__free(wf);
    wf_diags_free(&diags);
    free(s.items);
    return code;
}

static int cmd_gc(int argc, char **argv)
{
    static const struct option opts[] = {
        {"broker", required_argument, 0, 'b'}, {"older-than", required_argument, 0, 'o'},
        {"quiet", no_argument, 0, 'q'},        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    struct gc_options o = {0};
    int c;

    o.broker_url = getenv("FLOWBUS_BROKER");
    while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
        switch (c) {
        case 'b':
            o.broker_url = optarg;
            break;
        case 'o':
            if (!parse_seconds("--older-than", optarg, &o.older_than))
                return FB_EXIT_INVALID;
            break;
        case 'q':
            o.quiet = 1;
            break;
        case 'h':
            fputs(gc__usage, stdout);
            return FB_EXIT_OK;
        default:
            fprintf(stderr, "\n%s", gc__usage);
            return FB_EXIT_INVALID;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "flowbus: gc takes no arguments\n\n%s", gc__usage);
        return FB_EXIT_INVALID;
    }
    /* Without a broker gc removes only the local leftovers (gc.c). */
    if (o.broker_url && !*o.broker_url)
        o.broker_url = NULL;
    o.username = getenv("FLOWBUS_USERNAME");
    o.password = getenv("FLOWBUS_PASSWORD");
    return gc__main(&o);
}

static void print_local_run(const char *run_id, const struct localrun *r, void *ctx)
{
    (void)ctx;
    printf("  %-28s %-28s %ld\n", run_id, r->broker_url, r->pid);
}

/*
 * `flowbus status` without a broker: this user's live runs on private brokers.
 * Returns the exit code.
 */
static int status_local(void)
{
    size_t n;

    printf("  %-28s %-28s %s\n", "RUN", "PRIVATE BROKER", "COORDINATOR PID");
    n = localruns__each(print_local_run, NULL);
    if (n == 0)
        printf("  (no live run on a private broker of this user; with --broker URL or "
               "FLOWBUS_BROKER, status lists the runs on that broker)\n");
    else
        printf("\n`flowbus status RUN` shows one of them.\n");
    return FB_EXIT_OK;
}

/* status, set, logs, stop and pause: small clients of a run on its broker (core/cli/). */
static int cmd_client(const char *cmd, int argc, char **argv)
{
    static const struct option opts[] = {
        {"broker", required_argument, 0, 'b'},  {"json", no_argument, 0, 'j'},
        {"follow", no_argument, 0, 'f'},        {"task", required_argument, 0, 'T'},
        {"timeout", required_argument, 0, 't'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const int status = strcmp(cmd, "status") == 0, set = strcmp(cmd, "set") == 0,
              logs = strcmp(cmd, "logs") == 0, stop = strcmp(cmd, "stop") == 0;
    const char *usage = status ? status__usage
                        : set  ? set__usage
                        : logs ? logs__usage
                        : stop ? control__usage_stop
                               : control__usage_pause;
    struct client_options o = {0};
    struct localrun local = {0};
    int c, args, code, given = 0;

    o.broker_url = getenv("FLOWBUS_BROKER");
    while ((c = getopt_long(argc, argv, logs ? "fh" : "h", opts, NULL)) != -1) {
        /* Each command takes only the options its usage names. */
        if ((c == 'j' && !status) || ((c == 'f' || c == 'T') && !logs) ||
            (c == 't' && (status || set || logs))) {
            for (size_t i = 0; opts[i].name; i++)
                if (opts[i].val == c)
                    fprintf(stderr, "flowbus: %s takes no --%s\n\n%s", cmd, opts[i].name, usage);
            return FB_EXIT_INVALID;
        }
        switch (c) {
        case 'b':
            o.broker_url = optarg;
            given = 1;
            break;
        case 'j':
            o.json = 1;
            break;
        case 'f':
            o.follow = 1;
            break;
        case 'T':
            o.task = optarg;
            break;
        case 't':
            if (!parse_seconds("--timeout", optarg, &o.timeout))
                return FB_EXIT_INVALID;
            break;
        case 'h':
            fputs(usage, stdout);
            return FB_EXIT_OK;
        default:
            fprintf(stderr, "\n%s", usage);
            return FB_EXIT_INVALID;
        }
    }
    args = argc - optind;
    if ((status && args > 1) || (set && args < 2) || (!status && !set && args != 1)) {
        fprintf(stderr, "flowbus: %s expects %s\n\n%s", cmd,
                status ? "at most one RUN id"
                : set  ? "a RUN id and at least one VAR=VALUE"
                       : "one RUN id",
                usage);
        return FB_EXIT_INVALID;
    }
    o.run_id = args > 0 ? argv[optind] : NULL;
    o.username = getenv("FLOWBUS_USERNAME");
    o.password = getenv("FLOWBUS_PASSWORD");
    /* A live run of this user on its private broker, unless --broker says otherwise. */
    if (!given && o.run_id && localruns__find(o.run_id, &local)) {
        o.broker_url = local.broker_url;
        o.username = local.username;
        o.password = local.password;
    }
    if ((!o.broker_url || !*o.broker_url) && status && !o.run_id && !o.json)
        return status_local();
    if (!o.broker_url || !*o.broker_url) {
        fprintf(stderr, "flowbus: %s needs a broker: --broker URL or FLOWBUS_BROKER%s\n", cmd,
                o.run_id ? ", or the id of a live run on a private broker of this user"
                         : "");
        return FB_EXIT_INVALID;
    }
    o.assignments = argv + optind + 1;
    o.n_assignments = set ? (size_t)(args - 1) : 0;
    code = status ? status__main(&o)
           : set  ? set__main(&o)
           : logs ? logs__main(&o)
           : stop ? control__stop(&o)
                  : control__pause(&o);
    localruns__clear(&local);
    return code;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL;

    /*
     * flowbus holds broker passwords and tokens: processes of the same user
     * (the commands its tasks run) must not read them in /proc/<pid>/environ
     * or mem. And whatever it prints or forwards masks them.
     */
    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    mask__add_environment();
    if (!cmd) {
        fputs(usage_main, stderr);
        return FB_EXIT_INVALID;
    }
    if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("flowbus %s\n", FLOWBUS_VERSION);
        return FB_EXIT_OK;
    }
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        const char *topic = strcmp(cmd, "help") == 0 && argc > 2 ? argv[2] : "";
        fputs(strcmp(topic, "run") == 0        ? usage_run
              : strcmp(topic, "validate") == 0 ? usage_validate
              : strcmp(topic, "graph") == 0    ? usage_graph
              : strcmp(topic, "fmt") == 0      ? fmt__usage
              : strcmp(topic, "resume") == 0   ? usage_resume
              : strcmp(topic, "up") == 0       ? usage_up
              : strcmp(topic, "gc") == 0       ? gc__usage
              : strcmp(topic, "status") == 0   ? status__usage
              : strcmp(topic, "set") == 0      ? set__usage
              : strcmp(topic, "logs") == 0     ? logs__usage
              : strcmp(topic, "stop") == 0     ? control__usage_stop
              : strcmp(topic, "pause") == 0    ? control__usage_pause
              : strcmp(topic, "ui") == 0       ? ui__usage
              : strcmp(topic, "agent") == 0    ? agent__usage
              : strcmp(topic, "agents") == 0   ? agents__usage
                                               : usage_main,
              stdout);
        return FB_EXIT_OK;
    }
    /* Options are parsed from the command's own arguments. */
    argc--;
    argv++;
    optind = 1;
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc, argv, CMD_RUN);
    if (strcmp(cmd, "up") == 0)
        return cmd_run(argc, argv, CMD_UP);
    if (strcmp(cmd, "resume") == 0)
        return cmd_run(argc, argv, CMD_RESUME);
    if (strcmp(cmd, "gc") == 0)
        return cmd_gc(argc, argv);
    if (strcmp(cmd, "status") == 0 || strcmp(cmd, "set") == 0 || strcmp(cmd, "logs") == 0 ||
        strcmp(cmd, "stop") == 0 || strcmp(cmd, "pause") == 0)
        return cmd_client(cmd, argc, argv);
    if (strcmp(cmd, "ui") == 0)
        return ui__command(argc, argv);
    if (strcmp(cmd, "agent") == 0)
        return agent__command(argc, argv);
    if (strcmp(cmd, "agents") == 0)
        return agents__command(argc, argv);
    if (strcmp(cmd, "validate") == 0)
        return cmd_validate_or_graph(argc, argv, 0);
    if (strcmp(cmd, "graph") == 0)
        return cmd_validate_or_graph(argc, argv, 1);
    if (strcmp(cmd, "fmt") == 0)
        return fmt__main(argc, argv);
    fprintf(stderr, "flowbus: unknown command '%s'\n\n%s", cmd, usage_main);
    return FB_EXIT_INVALID;
}
