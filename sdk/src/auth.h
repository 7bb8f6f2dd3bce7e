/*
 * auth.h - private pieces of the permission check (auth.c) that are worth
 * naming outside it: the limits of the Attica contract and the name of a
 * token's cache entry. The public API is the "Permissions (Attica)" section
 * of flowbus.h; docs/security.md describes the flow.
 */
#ifndef FLOWBUS_AUTH_H
#define FLOWBUS_AUTH_H

#include <stddef.h>

#include "flowbus/flowbus.h"

#define AUTH_DEFAULT_URL "https://attica.tech/permissions"
#define AUTH_DEFAULT_TIMEOUT 3.0
#define AUTH_DEFAULT_CACHE_TTL 60.0
/* The largest response body accepted; a larger one is cut off and refused. */
#define AUTH_MAX_BODY (1024 * 1024)

/*
 * The cache entry name of a token: the lowercase hex SHA-256 of
 * salt NUL url NUL token (64 characters and a NUL into hex[65]). Salting with
 * the run keeps names of different runs apart; the URL keeps two services'
 * answers for one token apart. The token itself is never written anywhere.
 * Returns 0 (the hash is sha256.c's and cannot fail; the int stays for callers).
 */
int auth__cache_key(const char *salt, const char *url, const char *token, char hex[65]);

#endif
