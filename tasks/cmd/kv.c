/*
 * kv.c - the KEY=VALUE line parser of the cmd task (see kv.h).
 */
#include "kv.h"

static int is_key_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int is_key_char(char c)
{
    return is_key_start(c) || (c >= '0' && c <= '9');
}

int kv_parse_line(const char *line, size_t len, struct kv_pair *out)
{
    size_t i = 0;

    if (len > 0 && line[len - 1] == '\n')
        len--;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len == 0 || !is_key_start(line[0]))
        return 0;
    while (i < len && is_key_char(line[i]))
        i++;
    if (i == len || line[i] != '=')
        return 0;
    out->key = line;
    out->key_len = i;
    out->value = line + i + 1;
    out->value_len = len - i - 1;
    return 1;
}
