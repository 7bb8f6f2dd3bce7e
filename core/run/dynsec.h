/*
 * dynsec.h - per-task broker identities on an external Mosquitto through
 * its dynamic security plugin (mosquitto_dynamic_security.so).
 *
 * The coordinator's user must hold the plugin's admin rights (publish on
 * $CONTROL/dynamic-security/v1, subscribe to its response topic) besides
 * read and write on flowbus/#; docs/security.md shows how to set that up.
 * For each task it creates a role with exactly the task's rights
 * (access.h) and a client with a generated password holding that role, all
 * named "flowbus.<run>.<task>.<tag>", and removes every client and role of
 * the run at its end (also those a killed coordinator of the same run left:
 * the prefix is the run's).
 */
#ifndef FLOWBUS_CORE_DYNSEC_H
#define FLOWBUS_CORE_DYNSEC_H

#include <stddef.h>

struct access;
struct dynsec;

/*
 * Connects to url as user (its own connection and client id) and checks
 * that the plugin answers this user within wait seconds. NULL with a
 * one-line reason in err when it does not (no plugin, no admin rights).
 * With adaptive set, wait is only a ceiling: the plugin answers in the
 * broker's own loop, one round trip after the request, so the answer is
 * awaited for 20 round trips of the subscribe (at least 50 ms): a broker
 * without the plugin then costs a run tens of milliseconds, not wait.
 */
struct dynsec *dynsec__open(const char *url, const char *user, const char *pass, double wait, int adaptive,
                            char *err, size_t errlen);

/* Creates every task's role and client of a (access__new_dynsec). 0 with a reason on failure. */
int dynsec__create(struct dynsec *d, const struct access *a, char *err, size_t errlen);

/* Deletes every client and role of run run_id; *removed counts the clients. 0 on failure. */
int dynsec__remove_run(struct dynsec *d, const char *run_id, size_t *removed, char *err,
                       size_t errlen);

/*
 * Does the connection's own work (its keepalive ping) without waiting, at
 * most every half second however often it is called; answers nobody awaits
 * are dropped. The coordinator's loop calls it (NULL is fine): on
 * libmosquitto a bus has no thread, and this one is idle for the whole run
 * between the create and the removal.
 */
void dynsec__serve(struct dynsec *d);

/* Says whether the clients and roles of run_id go (1) or stay (0). */
typedef int (*dynsec_gone_fn)(void *ctx, const char *run_id);

/*
 * Deletes the clients and roles of every run of flowbus on the broker for
 * which gone says so (`flowbus gc`); *removed counts the clients. 0 on failure.
 */
int dynsec__remove_gone(struct dynsec *d, dynsec_gone_fn gone, void *ctx, size_t *removed,
                        char *err, size_t errlen);

/* Closes the connection. Accepts NULL. */
void dynsec__close(struct dynsec *d);

#endif
