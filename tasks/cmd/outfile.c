/*
 * outfile.c - the parser of the cmd task's output file (see outfile.h).
 */
#include "outfile.h"

#include <string.h>

static int is_key_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int is_key_char(char c)
{
    return is_key_start(c) || (c >= '0' && c <= '9');
}

/* The line at buf[*pos]: its start and length without "\n" nor one "\r" before it. */
static int next_line(const char *buf, size_t len, size_t *pos, const char **line, size_t *line_len)
{
    const char *nl;
    size_t n;

    if (*pos >= len)
        return 0;
    *line = buf + *pos;
    nl = memchr(*line, '\n', len - *pos);
    n = nl ? (size_t)(nl - *line) : len - *pos;
    *pos += n + (nl ? 1 : 0);
    if (n > 0 && (*line)[n - 1] == '\r')
        n--;
    *line_len = n;
    return 1;
}

int outfile_parse(const char *buf, size_t len, outfile_fn fn, void *ctx, struct outfile_error *err)
{
    size_t pos = 0, number = 0;
    const char *line;
    size_t line_len;

    while (next_line(buf, len, &pos, &line, &line_len)) {
        size_t k = 0;
        int rc;

        number++;
        if (line_len == 0)
            continue;
        if (!is_key_start(line[0])) {
            err->line = number;
            err->what = "expected KEY=VALUE or KEY<<DELIMITER, with KEY a letter or '_' then "
                        "letters, digits or '_'";
            return -1;
        }
        while (k < line_len && is_key_char(line[k]))
            k++;
        if (k < line_len && line[k] == '=') {
            rc = fn(ctx, line, k, line + k + 1, line_len - k - 1);
        } else if (k + 2 < line_len && line[k] == '<' && line[k + 1] == '<') {
            const char *delim = line + k + 2, *body = buf + pos, *end = NULL, *inner;
            size_t delim_len = line_len - k - 2, start = number, inner_len;

            /* The value runs up to the "\n" before the delimiter line. */
            while (next_line(buf, len, &pos, &inner, &inner_len)) {
                number++;
                if (inner_len == delim_len && memcmp(inner, delim, delim_len) == 0) {
                    end = inner;
                    break;
                }
            }
            if (!end) {
                err->line = start;
                err->what = "the value started by KEY<<DELIMITER has no line DELIMITER to end it";
                return -1;
            }
            /* Without the "\n" (and a "\r" before it) that ends the last line of the value. */
            inner_len = end > body ? (size_t)(end - body) - 1 : 0;
            if (inner_len > 0 && body[inner_len - 1] == '\r')
                inner_len--;
            rc = fn(ctx, line, k, body, inner_len);
        } else {
            err->line = number;
            err->what = "expected KEY=VALUE or KEY<<DELIMITER (a non-empty delimiter)";
            return -1;
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}
