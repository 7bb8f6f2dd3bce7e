/*
 * agent.c - `flowbus agent` (its options; the agent itself is core/agent/)
 * and `flowbus agents`, which lists the agents' retained records on a
 * broker: name, state, labels, load, host, plugins (docs/distributed.md).
 */
#define _GNU_SOURCE
#include "agent_cli.h"
#include "agent.h"
#include "format.h"
#include "log.h"
#include "session.h"

#include <flowbus/protocol.h>

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char agent__usage[] =
    "Usage: flowbus agent --broker URL [--name NAME] [--labels a,b] [--max-tasks N]\n"
    "                     [--plugins DIR] [--secrets FILE]\n"
    "\n"
    "Run the tasks that coordinators place on this host (a task's `runs_on:` labels\n"
    "must all be among this agent's). The agent announces itself as retained state on\n"
    "flowbus/agents/NAME, with a Last Will that marks it offline, and launches each\n"
    "task it is given as the coordinator launches local ones. SIGINT or SIGTERM stops\n"
    "its tasks, marks it offline and exits 0. docs/distributed.md has the whole story.\n"
    "\n"
    "Options:\n"
    "  --broker URL     the broker the coordinators use (or FLOWBUS_BROKER); the agent's\n"
    "                   own credentials come from FLOWBUS_USERNAME and FLOWBUS_PASSWORD\n"
    "  --name NAME      the agent's name (default: the host name)\n"
    "  --labels a,b     the labels this agent offers to `runs_on:`\n"
    "  --max-tasks N    at most N tasks at once (default: no bound); more are refused\n"
    "  --plugins DIR    look for flowbus-NAME plugins in DIR first\n"
    "  --secrets FILE   NAME=VALUE lines (mode 0600): the secrets this agent's tasks may\n"
    "                   ask for, besides its environment; none ever travels on the bus\n"
    "  -h, --help\n";

const char agents__usage[] =
    "Usage: flowbus agents [--broker URL] [--json]\n"
    "\n"
    "List the agents known to the broker (their retained records): name, state,\n"
    "labels, running tasks and capacity, host, plugins.\n"
    "\n"
    "Options:\n"
    "  --broker URL   the broker (or FLOWBUS_BROKER)\n"
    "  --json         one JSON object: {\"broker\": URL, \"agents\": [records...]}\n"
    "  -h, --help\n";

/* A positive integer option; 0 (said) for anything else. */
static int parse_count(const char *option, const char *text, long *out)
{
    char *end;
    long v = strtol(text, &end, 10);

    if (!*text || *end || v < 1 || v > 100000) {
        fprintf(stderr, "flowbus: %s expects a number of tasks from 1 to 100000, got '%s'\n",
                option, text);
        return 0;
    }
    *out = v;
    return 1;
}

int agent__command(int argc, char **argv)
{
    static const struct option opts[] = {
        {"broker", required_argument, 0, 'b'},  {"name", required_argument, 0, 'n'},
        {"labels", required_argument, 0, 'l'},  {"max-tasks", required_argument, 0, 'm'},
        {"plugins", required_argument, 0, 'p'}, {"secrets", required_argument, 0, 's'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0},
    };
    struct agent_options o = {0};
    int c;

    o.broker_url = getenv("FLOWBUS_BROKER");
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'b':
            o.broker_url = optarg;
            break;
        case 'n':
            o.name = optarg;
            break;
        case 'l':
            o.labels = optarg;
            break;
        case 'm':
            if (!parse_count("--max-tasks", optarg, &o.max_tasks))
                return FB_EXIT_INVALID;
            break;
        case 'p':
            o.plugins_dir = optarg;
            break;
        case 's':
            o.secrets_file = optarg;
            break;
        case 'h':
            fputs(agent__usage, stdout);
            return FB_EXIT_OK;
        default:
            fprintf(stderr, "\n%s", agent__usage);
            return FB_EXIT_INVALID;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "flowbus: agent takes no arguments\n\n%s", agent__usage);
        return FB_EXIT_INVALID;
    }
    if (!o.broker_url || !*o.broker_url) {
        fprintf(stderr, "flowbus: agent needs a broker: --broker URL or FLOWBUS_BROKER\n");
        return FB_EXIT_INVALID;
    }
    if (!session__check_url(o.broker_url))
        return FB_EXIT_INVALID;
    o.username = getenv("FLOWBUS_USERNAME");
    o.password = getenv("FLOWBUS_PASSWORD");
    return agent__main(&o);
}

/* "a,b" of a JSON array of strings, into buf. */
static void join(const json_t *a, char *buf, size_t size)
{
    size_t i, used = 0;
    const json_t *v;

    buf[0] = '\0';
    json_array_foreach(a, i, v)
    {
        int n = snprintf(buf + used, size - used, "%s%s", i ? "," : "",
                         json_string_value(v) ? json_string_value(v) : "?");
        if (n < 0 || (size_t)n >= size - used)
            break;
        used += (size_t)n;
    }
    if (!buf[0])
        snprintf(buf, size, "-");
}

static int print_agents(json_t *agents, const char *broker, int as_json)
{
    json_t *rows;
    size_t i;
    json_t *rec;

    if (as_json) {
        json_t *out = json_pack("{s:s,s:O}", "broker", broker, "agents", agents);
        char *text = json_dumps(out, JSON_INDENT(2));
        if (text)
            puts(text);
        free(text);
        json_decref(out);
        return FB_EXIT_OK;
    }
    if (json_array_size(agents) == 0) {
        printf("no agent on %s (none has a record under " FB_TOPIC_ROOT "/" FB_AGENTS_LEVEL
               "/)\n",
               broker);
        return FB_EXIT_OK;
    }
    rows = json_array();
    json_array_append_new(rows, json_pack("[s,s,s,s,s,s]", "AGENT", "STATE", "LABELS", "LOAD",
                                          "HOST", "PLUGINS"));
    json_array_foreach(agents, i, rec)
    {
        char labels[512], plugins[1024], load[64];
        long cap = (long)json_integer_value(json_object_get(rec, "capacity"));
        const char *state = json_string_value(json_object_get(rec, "state"));
        join(json_object_get(rec, "labels"), labels, sizeof labels);
        join(json_object_get(rec, "plugins"), plugins, sizeof plugins);
        if (cap > 0)
            snprintf(load, sizeof load, "%lld/%ld",
                     (long long)json_integer_value(json_object_get(rec, "running")), cap);
        else
            snprintf(load, sizeof load, "%lld",
                     (long long)json_integer_value(json_object_get(rec, "running")));
        json_array_append_new(
            rows, json_pack("[s,s,s,s,s,s]", json_string_value(json_object_get(rec, "name")),
                            state ? state : "?", labels, load,
                            json_string_value(json_object_get(rec, "host"))
                                ? json_string_value(json_object_get(rec, "host"))
                                : "?",
                            plugins));
    }
    format__table(rows, "");
    json_decref(rows);
    return FB_EXIT_OK;
}

static int by_name(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;

    return strcmp(json_string_value(json_object_get(x, "name")),
                  json_string_value(json_object_get(y, "name")));
}

int agents__command(int argc, char **argv)
{
    static const struct option opts[] = {
        {"broker", required_argument, 0, 'b'},
        {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    static const enum fb_topic_kind kinds[] = {FB_TOPIC_AGENT};
    struct session_broker b = {0};
    struct session s = {0};
    struct session_msgs msgs = {0};
    json_t *agents = json_array(), **sorted = NULL;
    int c, as_json = 0, code;

    b.url = getenv("FLOWBUS_BROKER");
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'b':
            b.url = optarg;
            break;
        case 'j':
            as_json = 1;
            break;
        case 'h':
            fputs(agents__usage, stdout);
            code = FB_EXIT_OK;
            goto out;
        default:
            fprintf(stderr, "\n%s", agents__usage);
            code = FB_EXIT_INVALID;
            goto out;
        }
    }
    if (optind != argc || !b.url || !*b.url) {
        fprintf(stderr, "flowbus: agents %s\n\n%s",
                optind != argc ? "takes no arguments" : "needs --broker URL or FLOWBUS_BROKER",
                agents__usage);
        code = FB_EXIT_INVALID;
        goto out;
    }
    if (!session__check_url(b.url)) {
        code = FB_EXIT_INVALID;
        goto out;
    }
    b.username = getenv("FLOWBUS_USERNAME");
    b.password = getenv("FLOWBUS_PASSWORD");
    code = session__open(&s, &b, NULL, "agents", 0);
    if (code == FB_EXIT_OK)
        code = session__collect(&s, kinds, 1, &msgs);
    if (code != FB_EXIT_OK)
        goto out;
    sorted = calloc(msgs.n + 1, sizeof *sorted);
    for (size_t i = 0; sorted && i < msgs.n; i++) {
        json_t *rec = json_loadb(msgs.v[i]->payload, msgs.v[i]->len, 0, NULL);
        size_t n = json_array_size(agents);
        if (!json_is_object(rec) || !json_is_string(json_object_get(rec, "name"))) {
            json_decref(rec);
            continue;
        }
        sorted[n] = rec;
        json_array_append_new(agents, rec);
    }
    if (sorted) {
        size_t n = json_array_size(agents);
        json_t *in_order = json_array();
        qsort(sorted, n, sizeof *sorted, by_name);
        for (size_t i = 0; i < n; i++)
            json_array_append(in_order, sorted[i]);
        json_decref(agents);
        agents = in_order;
    }
    code = print_agents(agents, b.url, as_json);
out:
    session__close(&s);
    session__msgs_free(&msgs);
    free(sorted);
    json_decref(agents);
    return code;
}
