/*
 * auth.h - what the files of the permission check share. The public API is
 * the "Permissions (Attica)" section of flowbus.h; docs/security.md
 * describes the flow. One file per concern:
 *   auth.c          fb_permissions_fetch: the options, then the cache or the service
 *   auth_require.c  fb_task_require, the check a task makes before it acts
 *   auth_perms.c    permission sets, and reading them from JSON (the service's
 *                   answer, the cache's entries)
 *   auth_cache.c    the run's cache: entry names, the per-token lock, entries
 *                   with their TTL (pure file and flock logic)
 *   auth_http.c     asking the service over HTTP(S), libcurl loaded with dlopen
 */
#ifndef FLOWBUS_AUTH_H
#define FLOWBUS_AUTH_H

#include <stddef.h>

#include <jansson.h>

#include "flowbus/flowbus.h"

#define AUTH_DEFAULT_URL "https://attica.tech/permissions"
#define AUTH_DEFAULT_TIMEOUT 3.0
#define AUTH_DEFAULT_CACHE_TTL 60.0
/* The largest response body accepted; a larger one is cut off and refused. */
#define AUTH_MAX_BODY (1024 * 1024)
/* Longest permission name we accept, from the service or the environment. */
#define AUTH_NAME_MAX 128

/* The options of one fetch, with the environment and defaults applied (auth.c). */
struct auth_config {
    const char *url;
    double timeout;
    const char *ca_file;
    const char *cache_dir; /* NULL: no cache */
    double cache_ttl;
    const char *salt;
    fb_log_fn log;
    void *log_ctx;
};

/* ------------------------------------------------------------------------ */
/* auth_perms.c                                                              */
/* ------------------------------------------------------------------------ */

/* A permission name: printable ASCII without blanks or commas, 1-AUTH_NAME_MAX bytes. */
int auth_perms__valid_name(const char *s, size_t len);

/*
 * Builds a set from the "permissions" value of an answer: an object of
 * booleans (true grants) or an array of names. Returns FB_OK, FB_ERR_NOMEM,
 * or FB_ERR_DENIED with *why saying what is wrong (no response text in it:
 * the service might echo the token).
 */
enum fb_err auth_perms__from_json(json_t *value, fb_permissions **out, const char **why);

/* The set as the JSON array the cache stores. NULL when memory ran out. */
json_t *auth_perms__to_json(const fb_permissions *perms);

/*
 * Parses the len bytes at data, a 2xx answer of the service at host (for
 * messages), into a set. FB_OK, FB_ERR_DENIED ("malformed response ..." in
 * errbuf) or FB_ERR_NOMEM.
 */
enum fb_err auth_perms__parse_answer(const char *data, size_t len, const char *host,
                                     fb_permissions **out, char *errbuf, size_t errlen);

/* ------------------------------------------------------------------------ */
/* auth_cache.c                                                              */
/* ------------------------------------------------------------------------ */

/*
 * The cache entry name of a token: the lowercase hex SHA-256 of
 * salt NUL url NUL token (64 characters and a NUL into hex[65]). Salting with
 * the run keeps names of different runs apart; the URL keeps two services'
 * answers for one token apart. The token itself is never written anywhere.
 * Returns 0 (the hash is sha256.c's and cannot fail; the int stays for callers).
 */
int auth_cache__key(const char *salt, const char *url, const char *token, char hex[65]);

/*
 * Opens cfg->cache_dir if it is safe to use: a directory owned by us that
 * nobody else can read or write. Returns its fd, or -1 (and logs why).
 */
int auth_cache__open(const struct auth_config *cfg);

/*
 * Takes the lock of entry key in the directory dirfd, waiting at most `wait`
 * seconds for a process that holds it. Returns the lock fd (closing it lets
 * go), or -1: no cache, ask on our own.
 */
int auth_cache__lock(const struct auth_config *cfg, int dirfd, const char *key, double wait);

/* A valid, unexpired entry key as a set, or NULL (missing, expired, foreign or damaged). */
fb_permissions *auth_cache__read(const struct auth_config *cfg, int dirfd, const char *key);

/*
 * Writes perms as entry key, valid for cfg->cache_ttl seconds (temporary
 * file, then rename). Failures are logged and only cost a later request.
 */
void auth_cache__write(const struct auth_config *cfg, int dirfd, const char *key,
                       const fb_permissions *perms);

/* ------------------------------------------------------------------------ */
/* auth_http.c                                                               */
/* ------------------------------------------------------------------------ */

/*
 * Asks the service at cfg->url for token's set. Returns FB_OK with *out,
 * FB_ERR_DENIED (reason in errbuf) or FB_ERR_NOMEM.
 */
enum fb_err auth_http__request(const struct auth_config *cfg, const char *token,
                               fb_permissions **out, char *errbuf, size_t errlen);

#endif
