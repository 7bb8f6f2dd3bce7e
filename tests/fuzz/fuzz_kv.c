/*
 * fuzz_kv.c - libFuzzer target of the cmd task's KEY=VALUE line parser.
 *
 * The input is one line of command output. Beyond "no crash", it checks the
 * parser's contract (kv.h): a pair's key and value lie inside the line, the
 * key matches [A-Za-z_][A-Za-z0-9_]* and starts the line, "=" follows it,
 * and the value runs to the end of the line less one final "\n" and one "\r".
 */
#include "kv.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int key_char(char c, int first)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
           (!first && c >= '0' && c <= '9');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes, so ASan sees any read past the line. */
    char *line = malloc(size ? size : 1);
    struct kv_pair kv;

    if (!line)
        return 0;
    memcpy(line, data, size);
    if (kv_parse_line(line, size, &kv)) {
        const char *end = line + size;
        if (kv.key != line || kv.key_len == 0 || kv.key + kv.key_len >= end ||
            kv.key[kv.key_len] != '=' || kv.value != kv.key + kv.key_len + 1 ||
            kv.value + kv.value_len > end)
            abort();
        for (size_t i = 0; i < kv.key_len; i++)
            if (!key_char(kv.key[i], i == 0))
                abort();
        if (end > line && end[-1] == '\n')
            end--;
        if (end > line && end[-1] == '\r')
            end--;
        if (kv.value + kv.value_len != end)
            abort();
    }
    free(line);
    return 0;
}
