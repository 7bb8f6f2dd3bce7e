/*
 * ui_cli.h - `flowbus ui` for the dispatcher (main.c): its command and usage (ui.c).
 */
#ifndef FLOWBUS_CORE_CLI_UI_CLI_H
#define FLOWBUS_CORE_CLI_UI_CLI_H

#include "log.h"

/* Parses the options after "ui" and serves; returns the exit code. */
int ui__command(int argc, char **argv);

extern const char ui__usage[];

#endif
