/*
 * broker.h - the private mosquitto a run starts when no --broker is given.
 *
 * The broker listens on a free 127.0.0.1 port, refuses anonymous clients (the
 * run's generated users are the only credentials, each limited by an ACL),
 * sets TCP_NODELAY,
 * and lives in a private temporary directory that broker__stop removes.
 */
#ifndef FLOWBUS_CORE_BROKER_H
#define FLOWBUS_CORE_BROKER_H

#include <stddef.h>
#include <sys/types.h>

struct broker;

/*
 * Starts the broker and waits until it accepts connections. passwords holds
 * "user:password" lines in plain text (they are hashed on disk before the
 * broker reads them), acl the text of its acl_file (see access.h). Must be
 * called before any Paho client exists in the process (it forks). Returns
 * NULL on failure with a one-line reason in err.
 */
struct broker *broker__start(const char *passwords, const char *acl, char *err, size_t errlen);

const char *broker__url(const struct broker *b);
pid_t broker__pid(const struct broker *b);

/*
 * Starts the broker again on the same port with the same configuration and
 * persistence file, after it died. Uses fork, so only safe where no other
 * thread can be inside malloc: the coordinator calls it from its main loop
 * while Paho's threads only wait on sockets; the child execs at once.
 * Returns 0 with a reason in err on failure.
 */
int broker__restart(struct broker *b, char *err, size_t errlen);

/* Records that the caller reaped the broker process (it died on its own). */
void broker__forget(struct broker *b);

/* Stops the broker (SIGTERM, then SIGKILL after a grace period), reaps it, removes its directory. Accepts NULL. */
void broker__stop(struct broker *b);

#endif
