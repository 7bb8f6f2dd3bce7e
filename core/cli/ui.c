/*
 * ui.c - the command line of `flowbus ui`: its options and usage, handed to
 * the server in core/ui/ (ui.h, docs/http-api.md).
 */
#include "ui.h"
#include "session.h"
#include "ui_cli.h"

#include <flowbus/protocol.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char ui__usage[] =
    "Usage: flowbus ui [--listen ADDR:PORT] [--workflows DIR] [--plugins DIR]\n"
    "                  [--broker URL] [--static DIR] [--no-token] [--allow-origin URL]\n"
    "\n"
    "Serve the browser editor and its HTTP API (docs/http-api.md): build, link and\n"
    "create tasks, run workflows and watch them live. Prints the URL to open, with\n"
    "its token, once. Ctrl-C stops it (and, on its private broker, the runs it\n"
    "started).\n"
    "\n"
    "Options:\n"
    "  --listen ADDR:PORT  where to listen (default 127.0.0.1:8080; port 0: a free one);\n"
    "                      any address but a loopback one requires the token\n"
    "  --workflows DIR     the workflow files to edit and run (default: workflows)\n"
    "  --plugins DIR       where \"New plugin\" writes plugins; first on the plugin path\n"
    "                      (default: the first of $FLOWBUS_PLUGIN_PATH, else plugins)\n"
    "  --broker URL        use this broker (default: $FLOWBUS_BROKER, else a private\n"
    "                      mosquitto for the server's lifetime)\n"
    "  --static DIR        the built editor (default: the installed one)\n"
    "  --no-token          no token (loopback addresses only: for development)\n"
    "  --allow-origin URL  also accept this Origin (a development server, e.g.\n"
    "                      http://localhost:5173, proxying /api to this one)\n"
    "  -q, --quiet         no access log, only warnings and errors\n"
    "  -h, --help          show this help\n"
    "\n"
    "The token is $FLOWBUS_UI_TOKEN (16 characters or more), else a generated one.\n"
    "Broker credentials come from FLOWBUS_USERNAME and FLOWBUS_PASSWORD.\n";

int ui__command(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, 0, 'l'}, {"workflows", required_argument, 0, 'w'},
        {"plugins", required_argument, 0, 'p'}, {"broker", required_argument, 0, 'b'},
        {"static", required_argument, 0, 's'}, {"no-token", no_argument, 0, 'n'},
        {"quiet", no_argument, 0, 'q'},        {"help", no_argument, 0, 'h'},
        {"allow-origin", required_argument, 0, 'o'},
        {0, 0, 0, 0},
    };
    struct ui_options o = {0};
    int c;

    o.broker_url = getenv("FLOWBUS_BROKER");
    if (o.broker_url && !*o.broker_url)
        o.broker_url = NULL;
    while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            o.listen = optarg;
            break;
        case 'w':
            o.workflows = optarg;
            break;
        case 'p':
            o.plugins = optarg;
            break;
        case 'b':
            o.broker_url = optarg;
            break;
        case 's':
            o.static_dir = optarg;
            break;
        case 'n':
            o.no_token = 1;
            break;
        case 'o':
            if (strncmp(optarg, "http://", 7) != 0 && strncmp(optarg, "https://", 8) != 0) {
                fprintf(stderr, "flowbus: --allow-origin expects http://HOST:PORT, got '%s'\n",
                        optarg);
                return FB_EXIT_INVALID;
            }
            o.allow_origin = optarg;
            break;
        case 'q':
            log__set_level(FB_LOG_WARN);
            break;
        case 'h':
            fputs(ui__usage, stdout);
            return FB_EXIT_OK;
        default:
            fprintf(stderr, "\n%s", ui__usage);
            return FB_EXIT_INVALID;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "flowbus: ui takes no arguments\n\n%s", ui__usage);
        return FB_EXIT_INVALID;
    }
    if (o.broker_url && !session__check_url(o.broker_url))
        return FB_EXIT_INVALID;
    o.username = getenv("FLOWBUS_USERNAME");
    o.password = getenv("FLOWBUS_PASSWORD");
    return ui__main(&o);
}
