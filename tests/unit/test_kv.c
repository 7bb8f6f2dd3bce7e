/*
 * test_kv.c - unit tests of the cmd task's KEY=VALUE line parser (kv.h).
 */
#include "check.h"
#include "kv.h"

/* Parses a NUL-terminated line; returns what kv_parse_line returns. */
static int parse(const char *line, struct kv_pair *kv)
{
    memset(kv, 0, sizeof *kv);
    return kv_parse_line(line, strlen(line), kv);
}

/* Checks that line is a pair with exactly this key and value. */
static void expect_pair(const char *line, const char *key, const char *value)
{
    struct kv_pair kv;
    int ok = parse(line, &kv);

    CHECK(ok == 1);
    if (!ok)
        return;
    CHECK(kv.key == line);
    CHECK(kv.key_len == strlen(key) && memcmp(kv.key, key, kv.key_len) == 0);
    CHECK(kv.value_len == strlen(value) && memcmp(kv.value, value, kv.value_len) == 0);
    if (kv.value_len != strlen(value) || memcmp(kv.value, value, kv.value_len) != 0)
        fprintf(stderr, "  line \"%s\": value \"%.*s\", want \"%s\"\n", line, (int)kv.value_len,
                kv.value, value);
}

static void expect_not_pair(const char *line)
{
    struct kv_pair kv;

    CHECK(parse(line, &kv) == 0);
}

static void test_pairs(void)
{
    expect_pair("A=1", "A", "1");
    expect_pair("FREE_SPACE=12G", "FREE_SPACE", "12G");
    expect_pair("_=x", "_", "x");
    expect_pair("_x9=", "_x9", "");
    expect_pair("a_b_C_9=hello world", "a_b_C_9", "hello world");
    expect_pair("K=a=b=c", "K", "a=b=c");
    expect_pair("K==", "K", "=");
    expect_pair("K= leading and trailing spaces kept ", "K", " leading and trailing spaces kept ");
    expect_pair("K=\t", "K", "\t");
    expect_pair("K=$(touch pwned); `x`", "K", "$(touch pwned); `x`");
    expect_pair("K='quoted'", "K", "'quoted'");
    expect_pair("K=\"quoted\"", "K", "\"quoted\"");
    expect_pair("K=caf\xc3\xa9", "K", "caf\xc3\xa9");
}

static void test_line_endings(void)
{
    expect_pair("K=v\n", "K", "v");
    expect_pair("K=v\r\n", "K", "v");
    expect_pair("K=v\r", "K", "v");
    expect_pair("K=\r", "K", "");
    /* Only one trailing \r goes; an inner \r is data. */
    expect_pair("K=v\r\r", "K", "v\r");
    expect_pair("K=a\rb", "K", "a\rb");
}

static void test_not_pairs(void)
{
    expect_not_pair("");
    expect_not_pair("\n");
    expect_not_pair("\r\n");
    expect_not_pair("hello");
    expect_not_pair("=value");
    expect_not_pair(" K=v");
    expect_not_pair("\tK=v");
    expect_not_pair("K =v");
    expect_not_pair("1K=v");
    expect_not_pair("9=v");
    expect_not_pair("K-1=v");
    expect_not_pair("K.x=v");
    expect_not_pair("export K=v");
    expect_not_pair("K");
    expect_not_pair("KEY\n");
    expect_not_pair("K\r=v");
    expect_not_pair("caf\xc3\xa9=v");
    expect_not_pair("$K=v");
}

static void test_lengths(void)
{
    struct kv_pair kv;
    const char buf[] = "AB=cd|junk after the given length";
    const char nul[] = {'K', '=', 'a', '\0', 'b'};

    /* Only len bytes are looked at; the line need not be NUL-terminated. */
    CHECK(kv_parse_line(buf, 5, &kv) == 1);
    CHECK(kv.key_len == 2 && kv.value_len == 2 && memcmp(kv.value, "cd", 2) == 0);
    CHECK(kv_parse_line(buf, 2, &kv) == 0);
    CHECK(kv_parse_line(buf, 3, &kv) == 1 && kv.value_len == 0);
    CHECK(kv_parse_line(buf, 0, &kv) == 0);
    /* A NUL byte in the value is reported as part of it; the caller decides. */
    CHECK(kv_parse_line(nul, sizeof nul, &kv) == 1 && kv.value_len == 3);
}

static void test_long_key(void)
{
    static char line[70000];

    memset(line, 'K', 65000);
    strcpy(line + 65000, "=v");
    {
        struct kv_pair kv;

        CHECK(parse(line, &kv) == 1);
        CHECK(kv.key_len == 65000 && kv.value_len == 1);
    }
}

int main(void)
{
    test_pairs();
    test_line_endings();
    test_not_pairs();
    test_lengths();
    test_long_key();
    return check_summary();
}
