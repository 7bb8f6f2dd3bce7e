/*
 * test_sha256.c - unit tests of the SDK's SHA-256 (sdk/src/auth/sha256.c), which
 * names the permission cache's entries. The vectors are those of FIPS 180-2
 * (appendix B) and NIST's short-message examples; the split-update tests
 * check that feeding the same bytes in any pieces (across the 55/56/64-byte
 * padding boundaries) gives the same digest.
 */
#include "check.h"
#include "sha256.h"

#include <stdlib.h>
#include <string.h>

static void hex_digest(const void *data, size_t len, char out[65])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[SHA256_DIGEST_LEN];
    struct sha256 ctx;
    size_t i;

    sha256__init(&ctx);
    sha256__update(&ctx, data, len);
    sha256__final(&ctx, md);
    for (i = 0; i < SHA256_DIGEST_LEN; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 15];
    }
    out[64] = '\0';
}

static void test_fips_vectors(void)
{
    char hex[65];

    hex_digest("", 0, hex);
    CHECK_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    hex_digest("abc", 3, hex);
    CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    hex_digest("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, hex);
    CHECK_STR(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    hex_digest("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklm"
               "nopqrlmnopqrsmnopqrstnopqrstu",
               112, hex);
    CHECK_STR(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

static void test_million_a(void)
{
    unsigned char md[SHA256_DIGEST_LEN];
    char chunk[1000];
    struct sha256 ctx;
    int i;
    static const unsigned char want[SHA256_DIGEST_LEN] = {
        0xcd, 0xc7, 0x6e, 0x5c, 0x99, 0x14, 0xfb, 0x92, 0x81, 0xa1, 0xc7,
        0xe2, 0x84, 0xd7, 0x3e, 0x67, 0xf1, 0x80, 0x9a, 0x48, 0xa4, 0x97,
        0x20, 0x0e, 0x04, 0x6d, 0x39, 0xcc, 0xc7, 0x11, 0x2c, 0xd0};

    memset(chunk, 'a', sizeof chunk);
    sha256__init(&ctx);
    for (i = 0; i < 1000; i++)
        sha256__update(&ctx, chunk, sizeof chunk);
    sha256__final(&ctx, md);
    CHECK(memcmp(md, want, sizeof want) == 0);
}

/* Every length around the padding boundaries, whole and split at every point. */
static void test_split_updates(void)
{
    unsigned char data[200], whole[SHA256_DIGEST_LEN], parts[SHA256_DIGEST_LEN];
    struct sha256 ctx;
    size_t len, cut;
    int same = 1;

    for (len = 0; len < sizeof data; len++)
        data[len] = (unsigned char)(len * 7 + 3);
    for (len = 0; len <= 130; len++) {
        sha256__init(&ctx);
        sha256__update(&ctx, data, len);
        sha256__final(&ctx, whole);
        for (cut = 0; cut <= len; cut++) {
            sha256__init(&ctx);
            sha256__update(&ctx, data, cut);
            sha256__update(&ctx, data + cut, 0);
            sha256__update(&ctx, data + cut, len - cut);
            sha256__final(&ctx, parts);
            if (memcmp(whole, parts, sizeof whole) != 0)
                same = 0;
        }
    }
    CHECK(same);
}

/* Lengths 55, 56, 63 and 64 take the one- and two-block padding paths. */
static void test_padding_boundaries(void)
{
    char msg[65], hex[65];

    memset(msg, 'a', sizeof msg);
    hex_digest(msg, 55, hex);
    CHECK_STR(hex, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
    hex_digest(msg, 56, hex);
    CHECK_STR(hex, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
    hex_digest(msg, 63, hex);
    CHECK_STR(hex, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34");
    hex_digest(msg, 64, hex);
    CHECK_STR(hex, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

int main(void)
{
    RUN(test_fips_vectors);
    RUN(test_million_a);
    RUN(test_split_updates);
    RUN(test_padding_boundaries);
    return check_summary();
}
