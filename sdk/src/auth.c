/*
 * auth.c - permissions from the Attica service: fb_permissions_fetch, the
 * run-wide cache of permission sets, and fb_task_require, the check a task
 * makes before it acts (docs/security.md).
 *
 * Everything here fails closed: whatever stops us from reading a clear
 * answer of the service (a refused connection, a timeout, a TLS failure, a
 * non-2xx status, a body that is not the expected JSON, a body over 1 MiB)
 * is a refusal with a one-line reason that names the case. The token is
 * only ever put into the request body; no message, log line or file name
 * contains it.
 *
 * The cache lives in the run's private directory (FLOWBUS_RUN_DIR, mode
 * 0700). Per token there is a lock file and an entry file, both named by a
 * salted SHA-256 of the token (auth__cache_key). A process takes the lock
 * with flock(), reads the entry, and only if there is no valid one asks the
 * service and writes the answer (by rename, so a reader never sees half of
 * it) before it lets go of the lock. So concurrent tasks of a run with one
 * token make one request: the first asks, the others wait for the lock and
 * read its answer. A failed fetch is not written, so the next process in
 * line asks again.
 *
 * libcurl is not linked: it drags ~30 libraries (gnutls, krb5, ldap, ssh2...)
 * into every task process, +3 ms per start and ~2.5 MB RSS, although most
 * tasks never ask the service. It is loaded with dlopen the first time a
 * request is made (curl_load; FLOWBUS_LIBCURL names another soname), its
 * functions resolved once into `curl`. The types and constants still come
 * from <curl/curl.h> at compile time; the soname's major version (4) is the
 * ABI they describe. The cache key's SHA-256 is our own (sha256.c) for the
 * same reason: libcrypto would otherwise be mapped only to hash 100 bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <dlfcn.h>
#include <jansson.h>

#include "auth.h"
#include "internal.h"
#include "flowbus/protocol.h"
#include "sha256.h"

/* Longest permission name we accept, from the service or the environment. */
#define NAME_MAX_LEN 128
/* How often a process waiting for another's request looks at the lock again. */
#define LOCK_POLL_NS 5000000L

struct fb_permissions {
    char **names; /* sorted, unique */
    size_t n;
};

/* The options of one fetch, with the environment and defaults applied. */
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
/* Permission sets                                                           */
/* ------------------------------------------------------------------------ */

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A permission name: printable ASCII without blanks or commas, 1-128 bytes. */
static int valid_name(const char *s, size_t len)
{
    size_t i;

    if (len == 0 || len > NAME_MAX_LEN)
        return 0;
    for (i = 0; i < len; i++)
        if (s[i] <= ' ' || s[i] > '~' || s[i] == ',')
            return 0;
    return 1;
}

/*
 * Builds a set from the "permissions" value of an answer: an object of
 * booleans (true grants) or an array of names. Returns FB_OK, FB_ERR_NOMEM,
 * or FB_ERR_DENIED with *why saying what is wrong (no response text in it:
 * the service might echo the token).
 */
static enum fb_err perms_from_json(json_t *value, fb_permissions **out, const char **why)
{
    fb_permissions *perms = calloc(1, sizeof *perms);
    size_t cap = json_is_object(value) ? json_object_size(value) : json_array_size(value);
    enum fb_err err = FB_OK;
    const char *key;
    json_t *item;
    size_t i, kept;

    *out = NULL;
    if (perms == NULL || (perms->names = calloc(cap + 1, sizeof *perms->names)) == NULL) {
        err = FB_ERR_NOMEM;
        goto out;
    }
    if (json_is_object(value)) {
        json_object_foreach(value, key, item)
        {
            if (!json_is_boolean(item)) {
                *why = "a value in the \"permissions\" object is not true or false";
                err = FB_ERR_DENIED;
                goto out;
            }
            if (!valid_name(key, strlen(key))) {
                *why = "a permission name is empty, too long or has blanks or control characters";
                err = FB_ERR_DENIED;
                goto out;
            }
            if (json_is_true(item) && (perms->names[perms->n++] = str__dup(key)) == NULL) {
                err = FB_ERR_NOMEM;
                goto out;
            }
        }
    } else if (json_is_array(value)) {
        json_array_foreach(value, i, item)
        {
            const char *name = json_string_value(item);

            if (name == NULL) {
                *why = "an item of the \"permissions\" array is not a string";
                err = FB_ERR_DENIED;
                goto out;
            }
            if (!valid_name(name, json_string_length(item)) ||
                strlen(name) != json_string_length(item)) {
                *why = "a permission name is empty, too long or has blanks or control characters";
                err = FB_ERR_DENIED;
                goto out;
            }
            if ((perms->names[perms->n++] = str__dup(name)) == NULL) {
                err = FB_ERR_NOMEM;
                goto out;
            }
        }
    } else {
        *why = "\"permissions\" is neither an object nor an array";
        err = FB_ERR_DENIED;
        goto out;
    }
    qsort(perms->names, perms->n, sizeof *perms->names, compare_names);
    for (i = 0, kept = 0; i < perms->n; i++) {
        if (kept > 0 && strcmp(perms->names[kept - 1], perms->names[i]) == 0)
            free(perms->names[i]);
        else
            perms->names[kept++] = perms->names[i];
    }
    perms->n = kept;
    *out = perms;
    perms = NULL;
out:
    fb_permissions_free(perms);
    return err;
}

/* The set as the JSON array the cache stores. NULL when memory ran out. */
static json_t *perms_to_json(const fb_permissions *perms)
{
    json_t *array = json_array();
    size_t i;

    for (i = 0; array != NULL && i < perms->n; i++) {
        if (json_array_append_new(array, json_string(perms->names[i])) != 0) {
            json_decref(array);
            array = NULL;
        }
    }
    return array;
}

int fb_permissions_has(const fb_permissions *perms, const char *name)
{
    if (perms == NULL || name == NULL)
        return 0;
    return bsearch(&name, perms->names, perms->n, sizeof *perms->names, compare_names) != NULL;
}

size_t fb_permissions_count(const fb_permissions *perms)
{
    return perms != NULL ? perms->n : 0;
}

const char *fb_permissions_name(const fb_permissions *perms, size_t i)
{
    return perms != NULL && i < perms->n ? perms->names[i] : NULL;
}

void fb_permissions_free(fb_permissions *perms)
{
    size_t i;

    if (perms == NULL)
        return;
    for (i = 0; i < perms->n; i++)
        free(perms->names[i]);
    free(perms->names);
    free(perms);
}

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
/* The request                                                               */
/* ------------------------------------------------------------------------ */

/* The soname loaded unless FLOWBUS_LIBCURL names another one. */
#define LIBCURL_SONAME "libcurl.so.4"

/*
 * The libcurl functions we call, resolved once by curl_load. The variadic
 * ones (setopt, getinfo) lose curl's compile-time type checks through a
 * pointer; every call passes the type the option documents (long, char *,
 * curl_off_t, a pointer), as before.
 */
static struct {
    CURLcode (*global_init)(long flags);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *curl, CURLoption option, ...);
    CURLcode (*easy_perform)(CURL *curl);
    CURLcode (*easy_getinfo)(CURL *curl, CURLINFO info, ...);
    void (*easy_cleanup)(CURL *curl);
    const char *(*easy_strerror)(CURLcode code);
    struct curl_slist *(*slist_append)(struct curl_slist *list, const char *s);
    void (*slist_free_all)(struct curl_slist *list);
    CURLU *(*url)(void);
    CURLUcode (*url_set)(CURLU *u, CURLUPart what, const char *part, unsigned int flags);
    CURLUcode (*url_get)(const CURLU *u, CURLUPart what, char **part, unsigned int flags);
    void (*url_cleanup)(CURLU *u);
    void (*free)(void *p);
} curl;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_loaded;              /* every function resolved */
static CURLcode curl_init_result = CURLE_FAILED_INIT;
static char curl_load_error[200];    /* why loading failed, for the reason */

/*
 * Loads libcurl and runs its global init, exactly once per process (the
 * init is not thread-safe in every build). The handle is never closed:
 * libcurl's global state lives as long as the process.
 */
static void curl_load(void)
{
    const char *soname = getenv("FLOWBUS_LIBCURL");
    const char *why = NULL;
    void *lib;

    if (soname == NULL || *soname == '\0')
        soname = LIBCURL_SONAME;
    lib = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        why = dlerror();
        snprintf(curl_load_error, sizeof curl_load_error, "%s", why != NULL ? why : soname);
        return;
    }
    /* POSIX leaves object-to-function pointer casts to dlsym's users; glibc makes them work. */
#define RESOLVE(field, symbol)                                                                     \
    do {                                                                                           \
        void *sym = dlsym(lib, symbol);                                                            \
        if (sym == NULL) {                                                                         \
            snprintf(curl_load_error, sizeof curl_load_error, "%s lacks %s", soname, symbol);      \
            return;                                                                                \
        }                                                                                          \
        memcpy(&curl.field, &sym, sizeof sym);                                                     \
    } while (0)
    RESOLVE(global_init, "curl_global_init");
    RESOLVE(easy_init, "curl_easy_init");
    RESOLVE(easy_setopt, "curl_easy_setopt");
    RESOLVE(easy_perform, "curl_easy_perform");
    RESOLVE(easy_getinfo, "curl_easy_getinfo");
    RESOLVE(easy_cleanup, "curl_easy_cleanup");
    RESOLVE(easy_strerror, "curl_easy_strerror");
    RESOLVE(slist_append, "curl_slist_append");
    RESOLVE(slist_free_all, "curl_slist_free_all");
    RESOLVE(url, "curl_url");
    RESOLVE(url_set, "curl_url_set");
    RESOLVE(url_get, "curl_url_get");
    RESOLVE(url_cleanup, "curl_url_cleanup");
    RESOLVE(free, "curl_free");
#undef RESOLVE
    curl_loaded = 1;
    curl_init_result = curl.global_init(CURL_GLOBAL_DEFAULT);
}

/* The response body, cut off past AUTH_MAX_BODY. */
struct body {
    char *data;
    size_t len;
    size_t cap;
    int too_large;
};

static size_t write_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct body *b = userdata;
    size_t n = size * nmemb;
    char *bigger;
    size_t cap;

    /* Returning less than n makes curl abort the transfer at once. */
    if (n > AUTH_MAX_BODY - b->len) {
        b->too_large = 1;
        return 0;
    }
    if (b->len + n + 1 > b->cap) {
        cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        bigger = realloc(b->data, cap);
        if (bigger == NULL)
            return 0;
        b->data = bigger;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static int is_loopback(const char *host)
{
    return strcmp(host, "127.0.0.1") == 0 || strcmp(host, "localhost") == 0 ||
           strcmp(host, "[::1]") == 0 || strcmp(host, "::1") == 0;
}

/*
 * Checks the URL: https anywhere, http only to this machine (the stand-in
 * service). Writes the host (for messages, without any user:password@) into
 * host. Returns FB_OK, or FB_ERR_DENIED with the reason in errbuf.
 */
static enum fb_err check_url(const char *url, char *host, size_t hostlen, int *loopback,
                             char *errbuf, size_t errlen)
{
    CURLU *u = curl.url();
    char *scheme = NULL, *h = NULL, *port = NULL;
    enum fb_err err = FB_ERR_DENIED;

    if (u == NULL) {
        err = FB_ERR_NOMEM;
        goto out;
    }
    if (curl.url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl.url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
        err__set(errbuf, errlen,
                 "the permission service URL is malformed (expected https://host/path)");
        goto out;
    }
    if (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0) {
        err__set(errbuf, errlen,
                 "the permission service URL has the scheme %s:// (expected https://)", scheme);
        goto out;
    }
    if (curl.url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK) {
        err__set(errbuf, errlen,
                 "the permission service URL has no host (expected https://host/path)");
        goto out;
    }
    /* The port only when the URL names one; the host never with user:password@. */
    if (curl.url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK)
        snprintf(host, hostlen, "%s:%s", h, port);
    else
        snprintf(host, hostlen, "%s", h);
    *loopback = is_loopback(h);
    if (strcmp(scheme, "http") == 0 && !*loopback) {
        err__set(errbuf, errlen,
                 "refusing plain http:// to %s: the token would travel unencrypted (use https://; "
                 "http:// is only for 127.0.0.1, localhost or ::1)",
                 host);
        goto out;
    }
    err = FB_OK;
out:
    curl.free(scheme);
    curl.free(h);
    curl.free(port);
    curl.url_cleanup(u);
    return err;
}

/* The one-line reason for a failed transfer. */
static void transfer_error(CURLcode rc, const struct body *b, const char *host, double timeout,
                           const char *detail, char *errbuf, size_t errlen)
{
    if (detail == NULL || *detail == '\0')
        detail = curl.easy_strerror(rc);
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        err__set(errbuf, errlen, "permission service at %s timed out after %g s", host, timeout);
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        err__set(errbuf, errlen, "permission service unreachable at %s: %s", host, detail);
        break;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
        err__set(errbuf, errlen,
                 "permission service at %s closed the connection without a complete answer: %s",
                 host, detail);
        break;
    case CURLE_FILESIZE_EXCEEDED:
        err__set(errbuf, errlen,
                 "response too large from the permission service at %s (over %d bytes)", host,
                 AUTH_MAX_BODY);
        break;
    case CURLE_WRITE_ERROR:
        if (b->too_large)
            err__set(errbuf, errlen,
                     "response too large from the permission service at %s (over %d bytes)", host,
                     AUTH_MAX_BODY);
        else
            err__set(errbuf, errlen, "out of memory reading the permission service's answer");
        break;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
        err__set(errbuf, errlen, "TLS with the permission service at %s failed: %s", host, detail);
        break;
    default:
        err__set(errbuf, errlen, "request to the permission service at %s failed: %s", host,
                 detail);
        break;
    }
}

/* Parses a 2xx answer into a set. */
static enum fb_err parse_answer(const struct body *b, const char *host, fb_permissions **out,
                                char *errbuf, size_t errlen)
{
    json_error_t jerr;
    json_t *root = NULL;
    json_t *value;
    const char *why = NULL;
    enum fb_err err = FB_ERR_DENIED;

    root = json_loadb(b->data != NULL ? b->data : "", b->len, 0, &jerr);
    if (root == NULL) {
        /* jerr.text quotes the body, which might echo the token: only the position is safe. */
        err__set(errbuf, errlen,
                 "malformed response from the permission service at %s: not JSON (line %d, "
                 "column %d)",
                 host, jerr.line, jerr.column);
        goto out;
    }
    value = json_object_get(root, "permissions");
    if (!json_is_object(root) || value == NULL) {
        err__set(errbuf, errlen,
                 "malformed response from the permission service at %s: no \"permissions\" key "
                 "in a JSON object",
                 host);
        goto out;
    }
    err = perms_from_json(value, out, &why);
    if (err == FB_ERR_DENIED)
        err__set(errbuf, errlen, "malformed response from the permission service at %s: %s", host,
                 why);
    else if (err == FB_ERR_NOMEM)
        err__set(errbuf, errlen, "out of memory");
out:
    json_decref(root);
    return err;
}

/* Asks the service. Returns FB_OK with *out, FB_ERR_DENIED (reason in errbuf) or FB_ERR_NOMEM. */
static enum fb_err request(const struct auth_config *cfg, const char *token, fb_permissions **out,
                           char *errbuf, size_t errlen)
{
    char host[256] = "";
    char detail[CURL_ERROR_SIZE] = "";
    struct body b = {0};
    struct curl_slist *headers = NULL;
    json_t *req = NULL;
    char *payload = NULL;
    CURL *handle = NULL;
    CURLcode rc;
    long status = 0;
    int loopback = 0;
    enum fb_err err;

    *out = NULL;
    pthread_once(&curl_once, curl_load);
    if (!curl_loaded) {
        err__set(errbuf, errlen, "permission service unavailable: cannot load libcurl (%s)",
                 curl_load_error);
        return FB_ERR_DENIED;
    }
    if (curl_init_result != CURLE_OK) {
        err__set(errbuf, errlen, "permission service unavailable: cannot initialise libcurl: %s",
                 curl.easy_strerror(curl_init_result));
        return FB_ERR_DENIED;
    }
    err = check_url(cfg->url, host, sizeof host, &loopback, errbuf, errlen);
    if (err != FB_OK)
        goto out;
    /* jansson escapes the token properly; printf into JSON would not. */
    req = json_pack("{s:s}", "auth_token", token);
    payload = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL;
    handle = curl.easy_init();
    headers = curl.slist_append(NULL, "Content-Type: application/json");
    if (headers != NULL)
        headers = curl.slist_append(headers, "Accept: application/json");
    if (payload == NULL || handle == NULL || headers == NULL) {
        err__set(errbuf, errlen, "out of memory");
        err = FB_ERR_NOMEM;
        goto out;
    }
    curl.easy_setopt(handle, CURLOPT_URL, cfg->url);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl.easy_setopt(handle, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    curl.easy_setopt(handle, CURLOPT_POST, 1L);
    curl.easy_setopt(handle, CURLOPT_POSTFIELDS, payload);
    curl.easy_setopt(handle, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
    curl.easy_setopt(handle, CURLOPT_HTTPHEADER, headers);
    curl.easy_setopt(handle, CURLOPT_WRITEFUNCTION, write_body);
    curl.easy_setopt(handle, CURLOPT_WRITEDATA, &b);
    /* Refused early when the server announces the size, else by write_body. */
    curl.easy_setopt(handle, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)AUTH_MAX_BODY);
    curl.easy_setopt(handle, CURLOPT_TIMEOUT_MS, (long)(cfg->timeout * 1000.0));
    curl.easy_setopt(handle, CURLOPT_CONNECTTIMEOUT_MS, (long)(cfg->timeout * 1000.0));
    curl.easy_setopt(handle, CURLOPT_ERRORBUFFER, detail);
    /* Signals are not ours to use in a library with Paho's threads running. */
    curl.easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);
    curl.easy_setopt(handle, CURLOPT_FOLLOWLOCATION, 0L);
    /* Always on, stated anyway so nobody reads the default as negotiable. */
    curl.easy_setopt(handle, CURLOPT_SSL_VERIFYPEER, 1L);
    curl.easy_setopt(handle, CURLOPT_SSL_VERIFYHOST, 2L);
    if (cfg->ca_file != NULL)
        curl.easy_setopt(handle, CURLOPT_CAINFO, cfg->ca_file);
    /* The local stand-in is never reached through a proxy, which would see the token in clear. */
    if (loopback)
        curl.easy_setopt(handle, CURLOPT_NOPROXY, "*");

    rc = curl.easy_perform(handle);
    if (rc != CURLE_OK) {
        transfer_error(rc, &b, host, cfg->timeout, detail, errbuf, errlen);
        err = FB_ERR_DENIED;
        goto out;
    }
    curl.easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299) {
        err__set(errbuf, errlen, "permission service at %s answered HTTP status %ld", host, status);
        err = FB_ERR_DENIED;
        goto out;
    }
    err = parse_answer(&b, host, out, errbuf, errlen);
out:
    if (payload != NULL) {
        /* The request body holds the token: do not leave it in freed memory. */
        memset(payload, 0, strlen(payload));
        free(payload);
    }
    json_decref(req);
    if (headers != NULL)
        curl.slist_free_all(headers);
    if (handle != NULL)
        curl.easy_cleanup(handle);
    free(b.data);
    return err;
}

/* ------------------------------------------------------------------------ */
/* The run's cache                                                           */
/* ------------------------------------------------------------------------ */

int auth__cache_key(const char *salt, const char *url, const char *token, char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[SHA256_DIGEST_LEN];
    struct sha256 ctx;
    unsigned i;

    sha256__init(&ctx);
    sha256__update(&ctx, salt, strlen(salt) + 1);
    sha256__update(&ctx, url, strlen(url) + 1);
    sha256__update(&ctx, token, strlen(token));
    sha256__final(&ctx, md);
    for (i = 0; i < SHA256_DIGEST_LEN; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
    memset(md, 0, sizeof md);
    return 0;
}

/*
 * Opens the cache directory if it is safe to use: a directory owned by us
 * that nobody else can read or write. Returns its fd, or -1 (and logs why).
 */
static int open_cache_dir(const struct auth_config *cfg)
{
    struct stat st;
    int fd = open(cfg->cache_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0) {
        log__emit(cfg->log, cfg->log_ctx, FB_LOG_WARN,
                  "permission cache not used: cannot open FLOWBUS_RUN_DIR %s: %s", cfg->cache_dir,
                  strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0 || st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
        log__emit(cfg->log, cfg->log_ctx, FB_LOG_WARN,
                  "permission cache not used: %s must be a directory of this user with mode 0700",
                  cfg->cache_dir);
        close(fd);
        return -1;
    }
    return fd;
}

/*
 * Takes the entry's lock, waiting at most `wait` seconds for a process that
 * holds it (it is asking the service, which takes at most the timeout).
 * flock has no timed wait, so the wait polls with a short sleep. Returns the
 * lock fd, or -1 (no cache: ask on our own).
 */
static int take_lock(const struct auth_config *cfg, int dirfd, const char *key, double wait)
{
    char name[80];
    double deadline = fb_clock_mono() + wait;
    struct timespec pause = {0, LOCK_POLL_NS};
    int fd;

    snprintf(name, sizeof name, "%s.lock", key);
    fd = openat(dirfd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        log__emit(cfg->log, cfg->log_ctx, FB_LOG_WARN,
                  "permission cache not used: cannot create a lock file in %s: %s", cfg->cache_dir,
                  strerror(errno));
        return -1;
    }
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if ((errno != EWOULDBLOCK && errno != EINTR) || fb_clock_mono() >= deadline) {
            log__emit(cfg->log, cfg->log_ctx, FB_LOG_INFO,
                      "permission cache busy for %g s; asking the service directly", wait);
            close(fd);
            return -1;
        }
        nanosleep(&pause, NULL);
    }
    return fd;
}

/* A valid, unexpired entry as a set, or NULL (missing, expired, foreign or damaged). */
static fb_permissions *read_entry(const struct auth_config *cfg, int dirfd, const char *key)
{
    char name[80];
    struct stat st;
    json_t *root = NULL;
    json_t *expires;
    fb_permissions *perms = NULL;
    const char *why = NULL;
    double left;
    int fd;

    snprintf(name, sizeof name, "%s.json", key);
    fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        goto out;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
        st.st_size > 2 * AUTH_MAX_BODY)
        goto out;
    root = json_loadfd(fd, 0, NULL);
    expires = json_object_get(root, "expires");
    if (!json_is_number(expires))
        goto out;
    /* An entry claiming more than the TTL from now is not one we wrote: ignore it. */
    left = json_number_value(expires) - fb_clock_wall();
    if (left <= 0 || left > cfg->cache_ttl + 1)
        goto out;
    if (perms_from_json(json_object_get(root, "permissions"), &perms, &why) != FB_OK)
        perms = NULL;
out:
    if (fd >= 0)
        close(fd);
    json_decref(root);
    return perms;
}

/* Writes an entry (temporary file, then rename). Failures only cost a later request. */
static void write_entry(const struct auth_config *cfg, int dirfd, const char *key,
                        const fb_permissions *perms)
{
    char name[80], tmp[100];
    json_t *root = json_object();
    json_t *array = perms_to_json(perms);
    char *text = NULL;
    size_t len, done = 0;
    ssize_t n;
    int fd = -1, ok = 0;

    snprintf(name, sizeof name, "%s.json", key);
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", key, (long)getpid());
    if (root == NULL || array == NULL)
        goto out;
    json_object_set_new(root, "expires", json_real(fb_clock_wall() + cfg->cache_ttl));
    json_object_set(root, "permissions", array);
    text = json_dumps(root, JSON_COMPACT);
    if (text == NULL)
        goto out;
    len = strlen(text);
    fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        goto out;
    while (done < len) {
        n = write(fd, text + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto out;
        done += (size_t)n;
    }
    if (close(fd) != 0) {
        fd = -1;
        goto out;
    }
    fd = -1;
    ok = renameat(dirfd, tmp, dirfd, name) == 0;
out:
    if (fd >= 0)
        close(fd);
    if (!ok) {
        unlinkat(dirfd, tmp, 0);
        log__emit(cfg->log, cfg->log_ctx, FB_LOG_WARN,
                  "permission cache: cannot write an entry in %s", cfg->cache_dir);
    }
    free(text);
    json_decref(array);
    json_decref(root);
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
        dirfd = open_cache_dir(&cfg);
        if (dirfd >= 0 && auth__cache_key(cfg.salt, cfg.url, token, key) != 0) {
            log__emit(cfg.log, cfg.log_ctx, FB_LOG_WARN,
                      "permission cache not used: SHA-256 unavailable");
            close(dirfd);
            dirfd = -1;
        }
        if (dirfd >= 0)
            lockfd = take_lock(&cfg, dirfd, key, cfg.timeout);
        if (lockfd >= 0 && (*out = read_entry(&cfg, dirfd, key)) != NULL) {
            log__emit(cfg.log, cfg.log_ctx, FB_LOG_DEBUG,
                      "permissions read from the run's cache (%zu granted)", (*out)->n);
            goto out;
        }
    }
    err = request(&cfg, token, out, errbuf, errlen);
    if (err == FB_OK) {
        log__emit(cfg.log, cfg.log_ctx, FB_LOG_DEBUG,
                  "permissions fetched from the service (%zu granted)", (*out)->n);
        if (lockfd >= 0)
            write_entry(&cfg, dirfd, key, *out);
    }
out:
    /* Closing the lock file releases the lock: the next process reads our entry. */
    if (lockfd >= 0)
        close(lockfd);
    if (dirfd >= 0)
        close(dirfd);
    return err;
}

/* ------------------------------------------------------------------------ */
/* The task's check                                                          */
/* ------------------------------------------------------------------------ */

static int env_true(const char *name)
{
    const char *v = getenv(name);

    return v != NULL && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0);
}

/* Whether the ", "-separated list in buf holds exactly name. */
static int list_has(const char *buf, const char *name)
{
    size_t len = strlen(name);
    const char *p;

    for (p = buf; (p = strstr(p, name)) != NULL; p += len)
        if ((p == buf || p[-1] == ' ') && (p[len] == '\0' || p[len] == ','))
            return 1;
    return 0;
}

/* Appends name to the "missing" list in buf (", "-separated). */
static void append_name(char *buf, size_t len, const char *name)
{
    size_t used = strlen(buf);

    if (used < len)
        snprintf(buf + used, len - used, "%s%s", used > 0 ? ", " : "", name);
}

/*
 * Checks names (n of them, or a comma-separated list in text when names is
 * NULL) against perms; appends the missing ones to missing. Returns 0, or
 * -1 if text holds a malformed name.
 */
static int check_names(const fb_permissions *perms, const char *const *names, size_t n,
                       const char *text, char *missing, size_t len, size_t *count)
{
    const char *p, *start, *end;
    char name[NAME_MAX_LEN + 1];
    size_t i;

    for (i = 0; names != NULL && i < n; i++) {
        if (names[i] == NULL || !valid_name(names[i], strlen(names[i])))
            return -1;
        if (!fb_permissions_has(perms, names[i]) && !list_has(missing, names[i])) {
            append_name(missing, len, names[i]);
            (*count)++;
        }
    }
    for (p = text; p != NULL && *p != '\0';) {
        while (*p == ' ' || *p == '\t')
            p++;
        start = p;
        while (*p != '\0' && *p != ',')
            p++;
        end = p;
        if (*p == ',')
            p++;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if (end == start)
            continue;
        if (!valid_name(start, (size_t)(end - start)))
            return -1;
        memcpy(name, start, (size_t)(end - start));
        name[end - start] = '\0';
        if (!fb_permissions_has(perms, name) && !list_has(missing, name)) {
            append_name(missing, len, name);
            (*count)++;
        }
    }
    return 0;
}

/* Whether a comma-separated list has at least one non-blank item. */
static int list_nonempty(const char *text)
{
    for (; text != NULL && *text != '\0'; text++)
        if (*text != ',' && *text != ' ' && *text != '\t')
            return 1;
    return 0;
}

enum fb_err fb_task_require(fb_task *task, const char *const *names, size_t n)
{
    const char *token = getenv("AUTH_TOKEN");
    const char *required = getenv("FLOWBUS_PERMISSIONS_REQUIRED");
    fb_auth_options opts;
    fb_permissions *perms = NULL;
    char reason[512] = "";
    char missing[384] = "";
    size_t n_missing = 0;
    void *log_ctx = NULL;
    fb_log_fn log;
    enum fb_err err;

    if (task == NULL)
        return FB_ERR_INVALID;
    log = task__log_fn(task, &log_ctx);
    if (token != NULL && *token == '\0')
        token = NULL;
    if (token == NULL) {
        if (env_true("FLOWBUS_REQUIRES_AUTH"))
            snprintf(reason, sizeof reason,
                     "no AUTH_TOKEN: this task requires authentication (requires_auth) and has no "
                     "token");
        else if (list_nonempty(required))
            snprintf(
                reason, sizeof reason,
                "no AUTH_TOKEN: the workflow requires permissions of this task (%.200s) and it "
                "has no token",
                required);
        else
            return FB_OK; /* auth is not in use */
        goto deny;
    }
    memset(&opts, 0, sizeof opts);
    opts.log = log;
    opts.log_ctx = log_ctx;
    err = fb_permissions_fetch(&opts, token, &perms, reason, sizeof reason);
    if (err != FB_OK) {
        if (err == FB_ERR_NOMEM)
            snprintf(reason, sizeof reason, "out of memory during the permission check");
        goto deny;
    }
    if (check_names(perms, names, n, required, missing, sizeof missing, &n_missing) != 0) {
        snprintf(reason, sizeof reason,
                 "a required permission name is malformed (in FLOWBUS_PERMISSIONS_REQUIRED or the "
                 "plugin)");
        goto deny;
    }
    fb_permissions_free(perms);
    perms = NULL;
    if (n_missing == 0) {
        log__emit(log, log_ctx, FB_LOG_DEBUG, "permission check passed");
        return FB_OK;
    }
    snprintf(reason, sizeof reason, "missing permission%s %s", n_missing > 1 ? "s" : "", missing);
deny:
    fb_permissions_free(perms);
    log__emit(log, log_ctx, FB_LOG_WARN, "denied: %s", reason);
    err = task__end(task, "denied", FB_EXIT_DENIED, reason);
    if (err == FB_ERR_INVALID)
        return FB_ERR_INVALID; /* already finished: nothing was published */
    if (err != FB_OK)
        log__emit(log, log_ctx, FB_LOG_ERROR, "cannot publish the state 'denied': %s",
                  fb_strerror(err));
    return FB_ERR_DENIED;
}
