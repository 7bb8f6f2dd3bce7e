/*
 * fmt.h - `flowbus fmt` (fmt.c): workflow files in the canonical layout.
 */
#ifndef FLOWBUS_CORE_CLI_FMT_H
#define FLOWBUS_CORE_CLI_FMT_H

/* Runs `flowbus fmt` on its own arguments (argv[0] is "fmt"); returns the exit code. */
int fmt__main(int argc, char **argv);

extern const char fmt__usage[];

#endif
