/*
 * outfile.h - reads the file a command run by the cmd task writes its
 * outputs to ($FLOWBUS_OUTPUT), in the format GitHub Actions gives
 * $GITHUB_OUTPUT for the same reason: the command's stdout also carries
 * whatever its inputs say, so a value with a newline could forge a
 * KEY=VALUE line there, while this file holds only what the command wrote
 * to it on purpose. A pure function, unit-tested in tests/unit/test_outfile.c.
 *
 * The format, line by line ("\n" ends a line; one "\r" before it is dropped):
 *   KEY=VALUE       KEY is [A-Za-z_][A-Za-z0-9_]* (kv.h); VALUE is the rest
 *                   of the line
 *   KEY<<DELIMITER  the value is every following line up to the first line
 *                   that is exactly DELIMITER, joined with "\n" (a value
 *                   with newlines); DELIMITER is one or more characters
 *   (empty line)    ignored
 * Anything else is an error with its line number: the file is the command's
 * own, so a line that is neither is a mistake to report, not to skip.
 */
#ifndef FLOWBUS_TASKS_CMD_OUTFILE_H
#define FLOWBUS_TASKS_CMD_OUTFILE_H

#include <stddef.h>

/*
 * Called for each KEY=VALUE or heredoc in file order. key and value point
 * into the parsed buffer and are not NUL-terminated; value may contain any
 * byte (NUL included: the caller decides). Returning non-zero stops the
 * parse, and outfile_parse returns that value.
 */
typedef int (*outfile_fn)(void *ctx, const char *key, size_t key_len, const char *value,
                          size_t value_len);

/* Where and why a parse failed. */
struct outfile_error {
    size_t line; /* 1-based */
    const char *what; /* static text */
};

/*
 * Parses len bytes. Returns 0 when every line was good, -1 with *err set on
 * the first bad line (an unterminated heredoc is reported at its KEY<< line),
 * or what fn returned when it stopped the parse.
 */
int outfile_parse(const char *buf, size_t len, outfile_fn fn, void *ctx, struct outfile_error *err);

#endif
