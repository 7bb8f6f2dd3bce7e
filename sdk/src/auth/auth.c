/*
 * auth.c - fb_permissions_fetch: a token's permission set from the run's
 * cache or, failing that, from the Attica service (docs/security.md).
 *
 * The options of a fetch come from fb_auth_options and the environment
 * (resolve_config). Then, with a cache directory, the token's entry is locked
 * and read (auth_cache.c); only without a valid entry is the service asked
 * (auth_http.c), and its answer written before the lock is let go, so the
 * tasks of a run with one token make one request per TTL. Everything fails
 * closed: whatever stops us from reading a clear answer is a refusal with a
 * one-line reason that names the case, and no message, log line or file name
 * contains the token. The other files of the permission check are listed in
 * auth.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "internal.h"

/* ------------------------------------------------------------------------ */
/* Options                                                                   */
/* ------------------------------------------------------------------------ */

/* A positive (or, with allow_zero, non-negative) number of seconds from env name. */
static enum fb_err env_seconds(const char *name, double fallback, int allow_zero, double *out,
                               char *errbuf, size_t errlen)
{
    const char *text = getenv(name);
    char *end;
    double v;

    *out = fallback;
    if (text == NULL || *text == '\0')
        return FB_OK;
    errno = 0;
    v = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !(v >= 0) || v > 86400.0 * 365 ||
        (v == 0 && !allow_zero)) {
        err__set(errbuf, errlen, "%s is '%s'; expected a number of seconds%s", name, text,
                 allow_zero ? " >= 0" : " > 0");
        return FB_ERR_INVALID;
    }
    *out = v;
    return FB_OK;
}

static enum fb_err resolve_config(const fb_auth_options *opts, struct auth_config *cfg,
                                  char *errbuf, size_t errlen)
{
    const char *s;
    enum fb_err err;

    memset(cfg, 0, sizeof *cfg);
    s = opts != NULL && opts->url != NULL ? opts->url : getenv("FLOWBUS_ATTICA_URL");
    cfg->url = s != NULL && *s != '\0' ? s : AUTH_DEFAULT_URL;
    if (opts != NULL && opts->timeout > 0) {
        cfg->timeout = opts->timeout;
    } else {
        err = env_seconds("FLOWBUS_ATTICA_TIMEOUT", AUTH_DEFAULT_TIMEOUT, 0, &cfg->timeout, errbuf,
                          errlen);
        if (err != FB_OK)
            return err;
    }
    s = opts != NULL && opts->ca_file != NULL ? opts->ca_file : getenv("FLOWBUS_ATTICA_CA_FILE");
    cfg->ca_file = s != NULL && *s != '\0' ? s : NULL;
    if (opts != NULL && opts->cache_ttl != 0) {
        cfg->cache_ttl = opts->cache_ttl > 0 ? opts->cache_ttl : 0;
    } else {
        err = env_seconds("FLOWBUS_ATTICA_CACHE_TTL", AUTH_DEFAULT_CACHE_TTL, 1, &cfg->cache_ttl,
                          errbuf, errlen);
        if (err != FB_OK)
            return err;
    }
    s = opts != NULL && opts->cache_dir != NULL ? opts->cache_dir : getenv("FLOWBUS_RUN_DIR");
    cfg->cache_dir = s != NULL && *s != '\0' && cfg->cache_ttl > 0 ? s : NULL;
    s = opts != NULL && opts->salt != NULL ? opts->salt : getenv("FLOWBUS_CACHE_SALT");
    cfg->salt = s != NULL && *s != '\0' ? s : cfg->cache_dir;
    if (opts != NULL) {
        cfg->log = opts->log;
        cfg->log_ctx = opts->log_ctx;
    }
    return FB_OK;
}

/* ------------------------------------------------------------------------ */
/* Fetching                                                                  */
/* ------------------------------------------------------------------------ */

enum fb_err fb_permissions_fetch(const fb_auth_options *opts, const char *token,
                                 fb_permissions **out, char *errbuf, size_t errlen)
{
    struct auth_config cfg;
    char key[65];
    int dirfd = -1, lockfd = -1;
    enum fb_err err;

    if (out != NULL)
        *out = NULL;
    if (out == NULL || token == NULL || *token == '\0') {
        err__set(errbuf, errlen, "fb_permissions_fetch: a token and out are required");
        return FB_ERR_INVALID;
    }
    err = resolve_config(opts, &cfg, errbuf, errlen);
    if (err != FB_OK)
        goto out;
    if (cfg.cache_dir != NULL) {
        dirfd = auth_cache__open(&cfg);
        if (dirfd >= 0 && auth_cache__key(cfg.salt, cfg.url, token, key) != 0) {
            log__emit(cfg.log, cfg.log_ctx, FB_LOG_WARN,
                      "permission cache not used: SHA-256 unavailable");
            close(dirfd);
            dirfd = -1;
        }
        if (dirfd >= 0)
            lockfd = auth_cache__lock(&cfg, dirfd, key, cfg.timeout);
        if (lockfd >= 0 && (*out = auth_cache__read(&cfg, dirfd, key)) != NULL) {
            log__emit(cfg.log, cfg.log_ctx, FB_LOG_DEBUG,
                      "permissions read from the run's cache (%zu granted)",
                      fb_permissions_count(*out));
            goto out;
        }
    }
    err = auth_http__request(&cfg, token, out, errbuf, errlen);
    if (err == FB_OK) {
        log__emit(cfg.log, cfg.log_ctx, FB_LOG_DEBUG,
                  "permissions fetched from the service (%zu granted)", fb_permissions_count(*out));
        if (lockfd >= 0)
            auth_cache__write(&cfg, dirfd, key, *out);
    }
out:
    /* Closing the lock file releases the lock: the next process reads our entry. */
    if (lockfd >= 0)
        close(lockfd);
    if (dirfd >= 0)
        close(dirfd);
    return err;
}
