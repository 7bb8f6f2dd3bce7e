/*
 * kv.h - recognises the KEY=VALUE lines by which a command run by the cmd
 * task sets outputs. A pure function, unit-tested in tests/unit/test_kv.c.
 */
#ifndef FLOWBUS_TASKS_KV_H
#define FLOWBUS_TASKS_KV_H

#include <stddef.h>

/* A KEY=VALUE line split into its parts; both point into the parsed line. */
struct kv_pair {
    const char *key;
    size_t key_len;
    const char *value; /* not NUL-terminated; may contain any byte but the newline */
    size_t value_len;
};

/*
 * Parses one line of output (len bytes, without or with its final "\n").
 * A KEY=VALUE line is a KEY matching [A-Za-z_][A-Za-z0-9_]* at the very start
 * (no leading spaces), then "=", then the value: the rest of the line, with
 * one trailing "\r" removed (CRLF output). The value may be empty and may
 * contain further "=". "export KEY=V" is not special (it is not a pair).
 * The key's length is not limited here; the caller compares it with the
 * declared outputs.
 * Returns 1 and fills *out for a KEY=VALUE line, 0 for any other line.
 */
int kv_parse_line(const char *line, size_t len, struct kv_pair *out);

#endif
