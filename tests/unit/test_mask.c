/*
 * test_mask.c - the coordinator's one list of secrets (core/mask.c) and the
 * client ids nobody can guess (fb_client_id): every secret masked wherever
 * it is in a line, the longest first, short values left alone, text only
 * shortened; client ids that end with 64 random bits whatever the prefix.
 */
#include "mask.h"

#include <flowbus/flowbus.h>

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "check.h"

static void test_masks_every_occurrence(void)
{
    char line[128] = "pw=s3cret-pass and again s3cret-pass.";

    mask__clear();
    CHECK(mask__add("s3cret-pass"));
    CHECK(mask__apply(line, strlen(line)) == strlen("pw=*** and again ***."));
    CHECK_STR(line, "pw=*** and again ***.");
}

static void test_longest_first_and_short_values(void)
{
    char line[128] = "token-abc-longer token-abc abc";

    mask__clear();
    mask__add("token-abc");
    mask__add("token-abc-longer");
    mask__add("abc"); /* under MASK_MIN: not a secret worth masking */
    mask__add(NULL);
    mask__string(line);
    CHECK_STR(line, "*** *** abc");
}

/* A task that logs JSON writes a secret escaped: that form is masked too. */
static void test_json_forms(void)
{
    char line[256] = "{\"pw\": \"q\\\"uo\\\\te\"} {\"k\": \"caf\\u00e9-key\"} caf\xc3\xa9-key";

    mask__clear();
    CHECK(mask__add("q\"uo\\te"));
    CHECK(mask__add("caf\xc3\xa9-key"));
    mask__string(line);
    CHECK_STR(line, "{\"pw\": \"***\"} {\"k\": \"***\"} ***");
}

static void test_bytes_not_strings(void)
{
    /* A payload is bytes with a length: a NUL before the secret does not hide it. */
    char payload[32] = {'a', '\0', 'h', 'u', 'n', 't', 'e', 'r', '2', 'z'};
    size_t len;

    mask__clear();
    mask__add("hunter2");
    len = mask__apply(payload, 10);
    CHECK(len == 6);
    CHECK(memcmp(payload, "a\0***z", 6) == 0);
    CHECK(payload[len] == '\0');
    mask__clear();
    len = mask__apply(payload, len);
    CHECK(len == 6); /* forgotten: nothing is masked any more */
}

static int hex_tail(const char *id)
{
    size_t n = strlen(id);

    if (n < FB_CLIENT_ID_SUFFIX || id[n - FB_CLIENT_ID_SUFFIX] != '-')
        return 0;
    for (size_t i = n - FB_CLIENT_ID_SUFFIX + 1; i < n; i++)
        if (!isxdigit((unsigned char)id[i]) || isupper((unsigned char)id[i]))
            return 0;
    return 1;
}

static void test_client_ids(void)
{
    char a[FB_CLIENT_ID_MAX + 1], b[FB_CLIENT_ID_MAX + 1], small[FB_CLIENT_ID_SUFFIX];
    char long_prefix[200];

    CHECK(fb_client_id(a, sizeof a, "fb-run-TASK") == FB_OK);
    CHECK(strncmp(a, "fb-run-TASK-", 12) == 0 && strlen(a) == 11 + FB_CLIENT_ID_SUFFIX);
    CHECK(hex_tail(a));
    CHECK(fb_client_id(b, sizeof b, "fb-run-TASK") == FB_OK);
    CHECK(strcmp(a, b) != 0);
    /* A long prefix is cut; the random part always stays. */
    memset(long_prefix, 'x', sizeof long_prefix - 1);
    long_prefix[sizeof long_prefix - 1] = '\0';
    CHECK(fb_client_id(a, sizeof a, long_prefix) == FB_OK);
    CHECK(strlen(a) == FB_CLIENT_ID_MAX && hex_tail(a));
    CHECK(fb_client_id(a, sizeof a, NULL) == FB_OK && strncmp(a, "fb-", 3) == 0 && hex_tail(a));
    CHECK(fb_client_id(small, sizeof small, "p") == FB_ERR_INVALID);
    CHECK(fb_client_id(NULL, 64, "p") == FB_ERR_INVALID);
}

int main(void)
{
    RUN(test_masks_every_occurrence);
    RUN(test_longest_first_and_short_values);
    RUN(test_bytes_not_strings);
    RUN(test_json_forms);
    RUN(test_client_ids);
    mask__clear();
    return check_summary();
}
