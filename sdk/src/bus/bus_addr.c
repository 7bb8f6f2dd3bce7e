/*
 * bus_addr.c - the broker's address: the broker URL a bus is given, the
 * checks and copies of the other options both backends' fb_bus_new make
 * alike, and TCP_NODELAY on the socket to the broker.
 *
 * Paho has no TCP_NODELAY option and exposes no socket: after each CONNACK
 * the socket whose peer is the broker is found among the process's
 * descriptors and the option is set there (bus_addr__set_nodelay). The
 * libmosquitto backend sets it on mosquitto_socket() itself.
 */
#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "bus_internal.h"

/*
 * Splits "tcp://host:port", "mqtt://host:port" or, with TLS,
 * "mqtts://host:port" and "ssl://host:port" (IPv6 as "[addr]:port", the port
 * defaulting to 1883, or 8883 with TLS) and builds the URL Paho understands.
 */
enum fb_err bus_addr__parse_url(struct bus_addr *bus, const char *url, char *paho_url,
                                size_t paho_len, char *errbuf, size_t errlen)
{
    static const char expected[] = "tcp://, mqtt://, mqtts:// or ssl://";
    const char *sep = strstr(url, "://");
    const char *rest;
    const char *host_end;
    const char *port;
    size_t host_len;
    size_t scheme_len;
    char *end;
    long port_num;

    if (strchr(url, '@') != NULL) {
        /* The URL is not echoed: what precedes '@' could be a password. */
        err__set(errbuf, errlen,
                 "credentials in the broker URL are not supported; use the username and "
                 "password options");
        return FB_ERR_INVALID;
    }
    if (sep == NULL) {
        err__set(errbuf, errlen, "broker URL '%s' has no scheme (expected %s)", url, expected);
        return FB_ERR_INVALID;
    }
    scheme_len = (size_t)(sep - url);
    if ((scheme_len == 3 && strncmp(url, "tcp", 3) == 0) ||
        (scheme_len == 4 && strncmp(url, "mqtt", 4) == 0)) {
        bus->tls = 0;
    } else if ((scheme_len == 5 && strncmp(url, "mqtts", 5) == 0) ||
               (scheme_len == 3 && strncmp(url, "ssl", 3) == 0)) {
        bus->tls = 1;
    } else {
        err__set(errbuf, errlen, "broker URL '%s' has an unsupported scheme '%.*s' (expected %s)",
                 url, (int)scheme_len, url, expected);
        return FB_ERR_INVALID;
    }
    port = bus->tls ? DEFAULT_TLS_PORT : DEFAULT_PORT;
    rest = sep + 3;
    if (*rest == '[') {
        host_end = strchr(rest, ']');
        if (host_end == NULL)
            goto bad;
        rest++;
        host_len = (size_t)(host_end - rest);
        host_end++;
    } else {
        host_end = rest + strcspn(rest, ":/");
        host_len = (size_t)(host_end - rest);
    }
    if (*host_end == ':')
        port = host_end + 1;
    else if (*host_end != '\0')
        goto bad;
    if (host_len == 0 || host_len >= sizeof bus->host)
        goto bad;
    errno = 0;
    port_num = strtol(port, &end, 10);
    if (errno != 0 || end == port || *end != '\0' || port_num < 1 || port_num > 65535)
        goto bad;
    memcpy(bus->host, rest, host_len);
    bus->host[host_len] = '\0';
    snprintf(bus->port, sizeof bus->port, "%ld", port_num);
    if (strchr(bus->host, ':') != NULL)
        snprintf(paho_url, paho_len, "%s://[%s]:%s", bus->tls ? "ssl" : "tcp", bus->host,
                 bus->port);
    else
        snprintf(paho_url, paho_len, "%s://%s:%s", bus->tls ? "ssl" : "tcp", bus->host, bus->port);
    return FB_OK;

bad:
    err__set(errbuf, errlen, "broker URL '%s' is malformed (expected %.*s://host:port)", url,
             (int)scheme_len, url);
    return FB_ERR_INVALID;
}

enum fb_err bus_addr__check_options(const fb_bus_options *opts, struct bus_addr *addr, char *url,
                                    size_t url_len, char *paho_url, size_t paho_len,
                                    char *client_id, size_t id_len, char *errbuf, size_t errlen)
{
    enum fb_err err = bus_addr__parse_url(addr, opts->url, paho_url, paho_len, errbuf, errlen);

    if (err != FB_OK)
        goto out;
    snprintf(url, url_len, "%s", opts->url);
    if (!addr->tls &&
        (opts->ca_file != NULL || opts->cert_file != NULL || opts->key_file != NULL)) {
        err__set(errbuf, errlen,
                 "TLS files are given but the broker URL '%s' is not mqtts:// or ssl://", url);
        err = FB_ERR_INVALID;
        goto out;
    }
    if (opts->key_file != NULL && opts->cert_file == NULL) {
        err__set(errbuf, errlen, "a TLS key file needs a certificate file");
        err = FB_ERR_INVALID;
        goto out;
    }
    if (opts->client_id != NULL) {
        snprintf(client_id, id_len, "%s", opts->client_id);
    } else if (fb_client_id(client_id, id_len, "fb") != FB_OK) {
        err__set(errbuf, errlen, "getrandom: %s", strerror(errno));
        err = FB_ERR_SYSTEM;
    }
out:
    return err;
}

int bus_options__keep(struct bus_options *o, const fb_bus_options *opts)
{
#define KEEP(field)                                                                                \
    do {                                                                                           \
        if (opts->field != NULL && (o->field = str__dup(opts->field)) == NULL)                     \
            return 0;                                                                              \
    } while (0)
    KEEP(username);
    KEEP(password);
    KEEP(will_topic);
    KEEP(ca_file);
    KEEP(cert_file);
    KEEP(key_file);
#undef KEEP
    if (opts->will_topic != NULL &&
        (o->will_payload = str__dup(opts->will_payload != NULL ? opts->will_payload : "")) == NULL)
        return 0;
    o->will_retained = opts->will_retained ? 1 : 0;
    o->keepalive = opts->keepalive > 0 ? opts->keepalive : 10;
    o->connect_timeout = opts->connect_timeout > 0 ? opts->connect_timeout : 5.0;
    o->reconnect_max_s = opts->reconnect_max_s;
    o->guardian_pid = opts->guardian_pid;
    return 1;
}

void bus_options__free(struct bus_options *o)
{
    free(o->username);
    if (o->password != NULL)
        explicit_bzero(o->password, strlen(o->password));
    free(o->password);
    free(o->will_topic);
    free(o->will_payload);
    free(o->ca_file);
    free(o->cert_file);
    free(o->key_file);
}

static int same_address(const struct sockaddr_storage *a, const struct addrinfo *b)
{
    if (a->ss_family != b->ai_family)
        return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)a;
        const struct sockaddr_in *y = (const struct sockaddr_in *)(void *)b->ai_addr;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)(void *)b->ai_addr;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    return 0;
}

/* Sets TCP_NODELAY on fd if it is a TCP socket connected to one of addrs. */
static int nodelay_if_broker(int fd, const struct addrinfo *addrs)
{
    struct sockaddr_storage peer;
    socklen_t len = sizeof peer;
    const struct addrinfo *ai;
    int one = 1;

    if (getpeername(fd, (struct sockaddr *)&peer, &len) != 0)
        return 0;
    for (ai = addrs; ai != NULL; ai = ai->ai_next) {
        if (same_address(&peer, ai))
            return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0;
    }
    return 0;
}

/*
 * Paho exposes no socket and no TCP_NODELAY option, and without it QoS 1
 * round trips stall ~40 ms (Nagle + delayed ACK). The socket is found as the
 * descriptor whose peer is the broker. Other connections of this process to
 * the same broker get the option too, which is harmless.
 */
void bus_addr__set_nodelay(const struct bus_addr *addr, const char *url, fb_log_fn log,
                           void *log_ctx)
{
    struct addrinfo hints;
    struct addrinfo *addrs = NULL;
    DIR *dir = NULL;
    struct dirent *entry;
    int found = 0;
    int fd;

    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (getaddrinfo(addr->host, addr->port, &hints, &addrs) != 0)
        goto out;
    dir = opendir("/proc/self/fd");
    if (dir != NULL) {
        while ((entry = readdir(dir)) != NULL) {
            if (entry->d_name[0] < '0' || entry->d_name[0] > '9')
                continue;
            fd = atoi(entry->d_name);
            if (fd != dirfd(dir))
                found += nodelay_if_broker(fd, addrs);
        }
    } else {
        /* No /proc: probe the low descriptors, where a fresh socket lands. */
        for (fd = 0; fd < 1024; fd++)
            found += nodelay_if_broker(fd, addrs);
    }
out:
    if (dir != NULL)
        closedir(dir);
    if (addrs != NULL)
        freeaddrinfo(addrs);
    if (found == 0)
        log__emit(log, log_ctx, FB_LOG_WARN, "could not find the socket to %s to set TCP_NODELAY",
                  url);
}
