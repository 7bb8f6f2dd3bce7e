/*
 * access.h - who may do what on the run's broker.
 *
 * For a run on its private broker, the coordinator gives every task its own
 * user name and generated password, and writes an ACL so that a task may read
 * only its inputs, the states of its depends_on tasks, the run's control topic
 * and its own outputs (to honour "first value wins"), and may write only its
 * declared outputs, its own state and its own log. The coordinator's user may
 * read and write everything of the run. A task that publishes anything else is
 * refused by the broker itself.
 *
 * On an external Mosquitto with the dynamic security plugin the same rights
 * become one role per task and a client with a generated password
 * (dynsec.c); access__rights lists them for both.
 */
#ifndef FLOWBUS_CORE_ACCESS_H
#define FLOWBUS_CORE_ACCESS_H

#include <stddef.h>

struct workflow;
struct access;

/* Longest user name: "flowbus.", a run id, '.', a task name, '.', 8 hex digits. */
#define ACCESS_USER_MAX 160
/* What every user name of a run on an external broker starts with (then "<run>."). */
#define ACCESS_DYNSEC_PREFIX "flowbus."

/* Generates credentials for wf's run run_id. NULL on failure (errno set). */
struct access *access__new(const struct workflow *wf, const char *run_id);
/* The same for an external broker's dynamic security plugin (user names unique there). */
struct access *access__new_dynsec(const struct workflow *wf, const char *run_id);
void access__free(struct access *a);

const char *access__run_id(const struct access *a);
size_t access__n_tasks(const struct access *a);

/* What a user may do on a topic. */
enum access_right { ACCESS_READ, ACCESS_WRITE, ACCESS_READWRITE };

/* Called once per topic a task may use; returns 0 to fail the whole list. */
typedef int (*access_right_fn)(void *ctx, enum access_right right, const char *topic);

/*
 * Calls fn for every topic task t may use, and nothing else: read its
 * inputs, the states of its depends_on tasks and the run's control topic;
 * read and write its outputs; write its own state and log; an mqtt-in or
 * mqtt-out bridge also its params' topic on the run's broker. Returns 0 if
 * fn did or a topic could not be built.
 */
int access__rights(const struct access *a, size_t t, access_right_fn fn, void *ctx);

/* The coordinator's user (t < 0) or task t's user, and its password. */
const char *access__user(const struct access *a, long t);
const char *access__password(const struct access *a, long t);

/*
 * The plain-text password file ("user:password" lines, to be hashed with
 * mosquitto_passwd -U) and the ACL file text. Malloc'd; the caller frees
 * them (and should wipe the password text).
 */
char *access__password_file(const struct access *a);
char *access__acl_file(const struct access *a);

#endif
