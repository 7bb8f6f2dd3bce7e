/*
 * auth_http.c - asking the Attica service for a token's permission set, over
 * HTTPS (plain http:// only to this machine), with libcurl.
 *
 * Everything here fails closed: whatever stops us from reading a clear
 * answer of the service (a refused connection, a timeout, a TLS failure, a
 * non-2xx status, a body over 1 MiB) is a refusal with a one-line reason that
 * names the case; the body of a 2xx answer is read by auth_perms.c. The token
 * is only ever put into the request body; no message or log line contains it.
 *
 * libcurl is not linked: it drags ~30 libraries (gnutls, krb5, ldap, ssh2...)
 * into every task process, +3 ms per start and ~2.5 MB RSS, although most
 * tasks never ask the service. It is loaded with dlopen the first time a
 * request is made (curl_load; FLOWBUS_LIBCURL names another soname), its
 * functions resolved once into `curl`. The types and constants still come
 * from <curl/curl.h> at compile time; the soname's major version (4) is the
 * ABI they describe.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <dlfcn.h>
#include <jansson.h>

#include "auth.h"
#include "internal.h"

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
static int curl_loaded; /* every function resolved */
static CURLcode curl_init_result = CURLE_FAILED_INIT;
static char curl_load_error[200]; /* why loading failed, for the reason */

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

/* Asks the service. Returns FB_OK with *out, FB_ERR_DENIED (reason in errbuf) or FB_ERR_NOMEM. */
enum fb_err auth_http__request(const struct auth_config *cfg, const char *token,
                               fb_permissions **out, char *errbuf, size_t errlen)
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
    err = auth_perms__parse_answer(b.data, b.len, host, out, errbuf, errlen);
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
