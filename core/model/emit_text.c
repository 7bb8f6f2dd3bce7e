/*
 * emit_text.c - one YAML scalar as the canonical layout writes it
 * (emit_text.h).
 *
 * A string stays plain only when every YAML reader reads it back as the same
 * string: a conservative set of characters (letters, digits, _ . / - = + $ ( )
 * and single inner spaces), starting with a letter, '_' or '/', and none of the
 * words YAML 1.1 or 1.2 read as booleans or null (yes, on, n, null...). So
 * `10`, `1.0`, `yes`, `on`, `null`, `: x`, `#`, leading spaces and the like
 * are quoted. Quotes are double unless the string holds '"' or '\' and no
 * character that needs an escape; then single quotes, which need none.
 */
#include "emit_text.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void sbuf__put(struct sbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        char *bigger;
        while (cap < b->len + n + 1)
            cap *= 2;
        bigger = realloc(b->s, cap);
        if (!bigger) {
            b->failed = 1;
            return;
        }
        b->s = bigger;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void sbuf__puts(struct sbuf *b, const char *s)
{
    sbuf__put(b, s, strlen(s));
}

/*
 * The code point at s[*i] (advancing *i), or -1 for a byte that does not
 * start one; JSON strings are valid UTF-8, so this is a formality.
 */
static long next_char(const char *s, size_t len, size_t *i)
{
    unsigned char c = (unsigned char)s[*i];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    long cp;

    if (n == 0 || *i + n > len) {
        (*i)++;
        return -1;
    }
    cp = n == 1 ? c : n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
    for (size_t k = 1; k < n; k++)
        cp = (cp << 6) | ((unsigned char)s[*i + k] & 0x3F);
    *i += n;
    return cp;
}

/* 1 if c can stand in a quoted or block scalar without an escape. */
static int printable(long c)
{
    if (c < 0)
        return 0;
    if (c < 0x20 || c == 0x7F)
        return 0;
    if (c >= 0x80 && c <= 0x9F) /* C1 controls, NEL among them: YAML 1.1 reads NEL as a break */
        return 0;
    if (c == 0x2028 || c == 0x2029 || c == 0xFEFF || c == 0xFFFE || c == 0xFFFF)
        return 0;
    return 1;
}

int emit_text__plain_ok(const char *s, size_t len)
{
    static const char *const words[] = {"y",    "n",     "yes",  "no", "on", "off",
                                        "true", "false", "null", "~"};
    unsigned char c;

    if (len == 0)
        return 0;
    c = (unsigned char)s[0];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '/'))
        return 0;
    if (s[len - 1] == ' ')
        return 0;
    for (size_t i = 0; i < len; i++) {
        c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '_' || c == '.' || c == '/' || c == '-' || c == '=' || c == '+' || c == '$' ||
            c == '(' || c == ')')
            continue;
        if (c == ' ' && s[i + 1] != ' ')
            continue;
        return 0;
    }
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strlen(words[i]) == len && strncasecmp(words[i], s, len) == 0)
            return 0;
    return 1;
}

int emit_text__literal_ok(const char *s, size_t len)
{
    size_t i = 0, line_start = 0, trailing = 0;
    int only_blank = 1;

    /* A first line that starts with a blank would need an indentation indicator. */
    if (len == 0 || s[0] == ' ' || s[0] == '\t' || s[0] == '\n')
        return 0;
    while (i < len) {
        size_t at = i;
        long c = next_char(s, len, &i);
        if (c == '\n') {
            /* A line of blanks only reads back as an empty line or as
             * indentation; a blank at the end of a line is one an editor
             * strips, changing the value. */
            if (at > line_start && (only_blank || s[at - 1] == ' ' || s[at - 1] == '\t'))
                return 0;
            line_start = i;
            only_blank = 1;
            continue;
        }
        if (c != '\t' && !printable(c))
            return 0;
        if (c != ' ' && c != '\t')
            only_blank = 0;
    }
    if (len > line_start && (only_blank || s[len - 1] == ' ' || s[len - 1] == '\t'))
        return 0;
    /* Two or more final newlines would need `|+`, which would also keep the
     * blank line between tasks: such a string is written double-quoted. */
    while (trailing < len && s[len - 1 - trailing] == '\n')
        trailing++;
    return trailing <= 1 && memchr(s, '\n', len - trailing) != NULL;
}

static void put_double(struct sbuf *b, const char *s, size_t len)
{
    size_t i = 0;
    char esc[24];

    sbuf__put(b, "\"", 1);
    while (i < len) {
        size_t at = i;
        long c = next_char(s, len, &i);
        switch (c) {
        case '"':
            sbuf__put(b, "\\\"", 2);
            continue;
        case '\\':
            sbuf__put(b, "\\\\", 2);
            continue;
        case '\n':
            sbuf__put(b, "\\n", 2);
            continue;
        case '\t':
            sbuf__put(b, "\\t", 2);
            continue;
        case '\r':
            sbuf__put(b, "\\r", 2);
            continue;
        case 0:
            sbuf__put(b, "\\0", 2);
            continue;
        default:
            break;
        }
        if (printable(c)) {
            sbuf__put(b, s + at, i - at);
        } else {
            if (c < 0)
                c = 0xFFFD;
            if (c <= 0xFF)
                snprintf(esc, sizeof esc, "\\x%02X", (unsigned)c);
            else
                snprintf(esc, sizeof esc, "\\u%04lX", c);
            sbuf__puts(b, esc);
        }
    }
    sbuf__put(b, "\"", 1);
}

void emit_text__string(struct sbuf *b, const char *s, size_t len)
{
    int single = 0, all_printable = 1;
    size_t i = 0;

    if (emit_text__plain_ok(s, len)) {
        sbuf__put(b, s, len);
        return;
    }
    while (i < len) {
        long c = next_char(s, len, &i);
        if (!printable(c))
            all_printable = 0;
        if (c == '"' || c == '\\')
            single = 1;
    }
    if (!single || !all_printable) {
        put_double(b, s, len);
        return;
    }
    sbuf__put(b, "'", 1);
    for (i = 0; i < len; i++) {
        if (s[i] == '\'')
            sbuf__put(b, "'", 1);
        sbuf__put(b, s + i, 1);
    }
    sbuf__put(b, "'", 1);
}

/* The shortest text strtod reads back as d. */
static void real_text(char *buf, size_t size, double d, int real_dot)
{
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, size, "%.*g", p, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    /* YAML 1.1 reads a float only with a dot in it: 1.0e+300, not 1e+300. */
    if (strchr(buf, 'e') && !strchr(buf, '.')) {
        char *e = strchr(buf, 'e');
        memmove(e + 2, e, strlen(e) + 1);
        memcpy(e, ".0", 2);
    } else if (real_dot && !strpbrk(buf, ".n")) {
        strncat(buf, ".0", size - strlen(buf) - 1);
    }
}

void emit_text__scalar(struct sbuf *b, const json_t *v, int real_dot)
{
    char buf[64];

    switch (json_typeof(v)) {
    case JSON_STRING:
        emit_text__string(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        sbuf__puts(b, buf);
        break;
    case JSON_REAL:
        real_text(buf, sizeof buf, json_real_value(v), real_dot);
        sbuf__puts(b, buf);
        break;
    case JSON_TRUE:
        sbuf__puts(b, "true");
        break;
    case JSON_FALSE:
        sbuf__puts(b, "false");
        break;
    default:
        sbuf__puts(b, "null");
        break;
    }
}
