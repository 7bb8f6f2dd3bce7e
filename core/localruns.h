/*
 * localruns.h - the live runs of this user on private brokers, so that
 * `flowbus set/status/stop/pause/logs/resume RUN` from another terminal can
 * reach a run that `flowbus run` or `flowbus up` started without --broker.
 *
 * A private broker listens on a port chosen at start and accepts only the
 * run's generated users, so nothing outside the coordinator knows how to
 * reach it. The coordinator records each such run in a per-user runtime
 * directory (localruns__dir: $XDG_RUNTIME_DIR/flowbus, else
 * /run/user/UID/flowbus, else ~/.cache/flowbus/runs; 0700, owned by the
 * user): RUN.run holds the broker URL, the coordinator's pid and its
 * process start time, and the user name; RUN.password (0600) the password.
 * The files go when the run ends; an entry whose coordinator is gone (it
 * was killed) is stale: lookups ignore and remove it.
 *
 * Not thread-safe (one caller thread, as the whole coordinator).
 */
#ifndef FLOWBUS_CORE_LOCALRUNS_H
#define FLOWBUS_CORE_LOCALRUNS_H

#include <stddef.h>

/* What a live local run's entry says. The password is wiped by localruns__clear. */
struct localrun {
    char broker_url[128];
    char username[128];
    char password[256];
    char password_file[512];
    long pid;
};

/*
 * Fills buf with the runtime directory, creating it (0700) when create is
 * set. Returns 1, or 0 (errno set) when there is none or it is not the
 * user's own private directory.
 */
int localruns__dir(char *buf, size_t len, int create);

/*
 * Records the run run_id of this process (pid, start time) on broker_url
 * with the given credentials. Returns 1, or 0 with a one-line reason in err;
 * on success password_file (if not NULL) holds the password file's path.
 */
int localruns__record(const char *run_id, const char *broker_url, const char *username,
                      const char *password, char *password_file, size_t pflen, char *err,
                      size_t errlen);

/* Removes run_id's entry, if this process recorded it. */
void localruns__forget(const char *run_id);

/*
 * Finds the live local run run_id. Returns 1 and fills out, or 0 when there
 * is no entry or it is stale (then it is removed).
 */
int localruns__find(const char *run_id, struct localrun *out);

/*
 * Calls fn(run_id, r, ctx) for each live local run, in no particular order
 * (stale entries are removed on the way; r's password is wiped after each
 * call). Returns how many there were.
 */
size_t localruns__each(void (*fn)(const char *run_id, const struct localrun *r, void *ctx),
                       void *ctx);

/* Wipes the password of r. */
void localruns__clear(struct localrun *r);

#endif
