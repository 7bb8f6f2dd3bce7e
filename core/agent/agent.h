/*
 * agent.h - `flowbus agent` and `flowbus agents`: the task launcher of a host
 * that is not the coordinator's, and the list of the agents on a broker.
 *
 * An agent announces itself as retained state on flowbus/agents/<name>
 * (flowbus/protocol.h) with a Last Will that marks it offline, takes the
 * offers coordinators send to its inbox for the tasks whose `runs_on:` labels
 * it has, and launches them with the coordinator's own launcher
 * (core/run/launcher.c): the same environment, process group, kill on stop.
 * docs/distributed.md says how coordinators choose an agent and what travels.
 */
#ifndef FLOWBUS_CORE_AGENT_H
#define FLOWBUS_CORE_AGENT_H

struct agent_options {
    const char *broker_url;   /* required */
    const char *username;     /* may be NULL: the agent's own broker identity */
    const char *password;     /* may be NULL; never printed, never published */
    const char *name;         /* NULL: the host name, made a valid name */
    const char *labels;       /* comma-separated; may be NULL */
    long max_tasks;           /* 0: no bound */
    const char *plugins_dir;  /* searched before the usual places; may be NULL */
    const char *secrets_file; /* KEY=VALUE lines the agent's tasks may ask for; may be NULL */
};

/* Runs the agent until SIGINT or SIGTERM. Returns an exit code (enum fb_exit). */
int agent__main(const struct agent_options *o);

#endif
