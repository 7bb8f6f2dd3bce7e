/*
 * access.h - who may do what on the private broker.
 *
 * For a run on its private broker, the coordinator gives every task its own
 * user name and generated password, and writes an ACL so that a task may read
 * only its inputs, the states of its depends_on tasks, the run's control topic
 * and its own outputs (to honour "first value wins"), and may write only its
 * declared outputs, its own state and its own log. The coordinator's user may
 * read and write everything of the run. A task that publishes anything else is
 * refused by the broker itself.
 */
#ifndef FLOWBUS_CORE_ACCESS_H
#define FLOWBUS_CORE_ACCESS_H

struct workflow;
struct access;

/* Generates credentials for wf's run run_id. NULL on failure (errno set). */
struct access *access__new(const struct workflow *wf, const char *run_id);
void access__free(struct access *a);

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
