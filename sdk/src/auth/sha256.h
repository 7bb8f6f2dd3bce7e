/*
 * sha256.h - SHA-256 (FIPS 180-4), the one hash the SDK needs: it names the
 * entries of the run's permission cache (auth_cache__key). It lives here
 * rather than in libcrypto so that a task process does not map libcrypto
 * (4.5 MB, ~1 ms of relocation at every start) to hash a few dozen bytes.
 * tests/unit/test_sha256.c checks it against the FIPS 180-2 vectors.
 */
#ifndef FLOWBUS_SHA256_H
#define FLOWBUS_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_LEN 32

struct sha256 {
    uint32_t h[8];
    uint64_t total;      /* bytes hashed so far */
    unsigned char block[64];
    size_t used;         /* bytes waiting in block */
};

void sha256__init(struct sha256 *ctx);
void sha256__update(struct sha256 *ctx, const void *data, size_t len);
/* Writes the digest and wipes the context (it may have held a secret). */
void sha256__final(struct sha256 *ctx, unsigned char digest[SHA256_DIGEST_LEN]);

#endif
