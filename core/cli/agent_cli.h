/*
 * agent_cli.h - `flowbus agent` and `flowbus agents` for the dispatcher (main.c), in agent.c.
 */
#ifndef FLOWBUS_CORE_CLI_AGENT_CLI_H
#define FLOWBUS_CORE_CLI_AGENT_CLI_H

/* Parses the options after "agent" and runs the agent; returns the exit code. */
int agent__command(int argc, char **argv);

/* `flowbus agents`: lists the agents' records on the broker; returns the exit code. */
int agents__command(int argc, char **argv);

extern const char agent__usage[];
extern const char agents__usage[];

#endif
