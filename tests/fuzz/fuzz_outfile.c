/*
 * fuzz_outfile.c - libFuzzer target of the cmd task's $FLOWBUS_OUTPUT parser
 * (tasks/cmd/outfile.h).
 *
 * The input is a whole output file. Beyond "no crash", it checks the
 * parser's contract: every key and value it reports lies inside the file,
 * the key matches [A-Za-z_][A-Za-z0-9_]* and starts a line, an error names a
 * line that exists, and a successful parse reports pairs in file order.
 */
#include "outfile.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct bounds {
    const char *start, *end, *last;
};

static int key_char(char c, int first)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
           (!first && c >= '0' && c <= '9');
}

static int check(void *ctx, const char *key, size_t key_len, const char *value, size_t value_len)
{
    struct bounds *b = ctx;

    if (key < b->start || key_len == 0 || key + key_len > b->end || value < b->start ||
        value + value_len > b->end || key <= b->last)
        abort();
    if (key != b->start && key[-1] != '\n')
        abort();
    for (size_t i = 0; i < key_len; i++)
        if (!key_char(key[i], i == 0))
            abort();
    b->last = key;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes, so ASan sees any read past the file. */
    char *file = malloc(size ? size : 1);
    struct bounds b;
    struct outfile_error e = {0, NULL};
    size_t lines = 1;

    if (!file)
        return 0;
    memcpy(file, data, size);
    b.start = file;
    b.end = file + size;
    b.last = file - 1;
    for (size_t i = 0; i < size; i++)
        lines += file[i] == '\n';
    if (outfile_parse(file, size, check, &b, &e) == -1 && (e.line == 0 || e.line > lines || !e.what))
        abort();
    free(file);
    return 0;
}
