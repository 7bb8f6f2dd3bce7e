/*
 * broker.h - the private mosquitto a run starts when no --broker is given.
 *
 * The broker listens on a free 127.0.0.1 port, refuses anonymous clients (a
 * generated user and password are the only credentials), sets TCP_NODELAY,
 * and lives in a private temporary directory that broker__stop removes.
 */
#ifndef FLOWBUS_CORE_BROKER_H
#define FLOWBUS_CORE_BROKER_H

#include <stddef.h>
#include <sys/types.h>

struct broker;

/*
 * Starts the broker and waits until it accepts connections. Must be called
 * before any Paho client exists in the process (it forks). Returns NULL on
 * failure with a one-line reason in err.
 */
struct broker *broker__start(char *err, size_t errlen);

const char *broker__url(const struct broker *b);
const char *broker__username(const struct broker *b);
const char *broker__password(const struct broker *b);
pid_t broker__pid(const struct broker *b);

/* Records that the caller reaped the broker process (it died on its own). */
void broker__forget(struct broker *b);

/* Stops the broker (SIGTERM, then SIGKILL after a grace period), reaps it, removes its directory. Accepts NULL. */
void broker__stop(struct broker *b);

#endif
