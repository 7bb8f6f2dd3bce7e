/*
 * ui.h - `flowbus ui`: the HTTP server of the browser editor (docs/http-api.md).
 *
 * core/cli/ui.c parses the command line into ui_options and calls ui__main,
 * which serves until Ctrl-C or SIGTERM and returns the process exit code.
 */
#ifndef FLOWBUS_CORE_UI_UI_H
#define FLOWBUS_CORE_UI_UI_H

struct ui_options {
    const char *listen;     /* "ADDR:PORT"; NULL: 127.0.0.1:8080 */
    const char *workflows;  /* NULL: "workflows" */
    const char *plugins;    /* NULL: first of FLOWBUS_PLUGIN_PATH, else "plugins" */
    const char *broker_url; /* NULL: a private broker */
    const char *username;   /* for broker_url; may be NULL; never printed */
    const char *password;
    const char *static_dir; /* NULL: the installed editor */
    int no_token;           /* --no-token (loopback only) */
    const char *allow_origin; /* --allow-origin: one more Origin accepted (a dev server) */
};

/*
 * Runs the server. Returns FB_EXIT_OK after a clean shutdown,
 * FB_EXIT_INVALID for bad options (an address, a directory),
 * FB_EXIT_BROKER when the broker cannot be started or reached.
 */
int ui__main(const struct ui_options *o);

#endif
