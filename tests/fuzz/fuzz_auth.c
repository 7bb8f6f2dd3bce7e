/*
 * fuzz_auth.c - libFuzzer target of the Attica permissions response parser.
 *
 * The input is the body of a 2xx answer of the permission service. The
 * parser (auth_perms__parse_answer and auth_perms__from_json in
 * sdk/src/auth/auth_perms.c) is linked from an instrumented static copy of the
 * SDK (tests/fuzz/CMakeLists.txt). Beyond "no crash",
 * it checks that a set read from an answer is sorted and unique, and that it
 * survives the trip through the cache's JSON form unchanged.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_set(const fb_permissions *perms)
{
    json_t *cached = auth_perms__to_json(perms);
    fb_permissions *again = NULL;
    const char *why = NULL;

    for (size_t i = 0; i < fb_permissions_count(perms); i++) {
        const char *name = fb_permissions_name(perms, i);
        if (!name || !fb_permissions_has(perms, name))
            abort();
        if (i > 0 && strcmp(fb_permissions_name(perms, i - 1), name) >= 0)
            abort();
    }
    if (cached && auth_perms__from_json(cached, &again, &why) == FB_OK) {
        if (fb_permissions_count(again) != fb_permissions_count(perms))
            abort();
        for (size_t i = 0; i < fb_permissions_count(perms); i++)
            if (strcmp(fb_permissions_name(again, i), fb_permissions_name(perms, i)) != 0)
                abort();
    } else if (cached) {
        abort(); /* a set we accepted must read back from the cache */
    }
    fb_permissions_free(again);
    json_decref(cached);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body;
    fb_permissions *perms = NULL;
    char err[256];

    if (size > AUTH_MAX_BODY)
        return 0;
    /* A copy of exactly size bytes, as curl's write callback collects it. */
    body = malloc(size ? size : 1);
    if (!body)
        return 0;
    memcpy(body, data, size);
    if (auth_perms__parse_answer(body, size, "attica.test", &perms, err, sizeof err) == FB_OK) {
        if (!perms)
            abort();
        check_set(perms);
    } else if (perms) {
        abort(); /* a refusal hands out no set */
    }
    fb_permissions_free(perms);
    free(body);
    return 0;
}
