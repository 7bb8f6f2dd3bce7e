/*
 * emit_text.h - how the emitter writes one YAML scalar (private to core/model's
 * emit*.c files): when a string may stay plain, when it is quoted and how,
 * when it becomes a literal block, and numbers that read back as the same
 * JSON value.
 */
#ifndef FLOWBUS_CORE_MODEL_EMIT_TEXT_H
#define FLOWBUS_CORE_MODEL_EMIT_TEXT_H

#include <jansson.h>
#include <stddef.h>

/* A growing NUL-terminated string; failed is set once memory runs out. */
struct sbuf {
    char *s;
    size_t len, cap;
    int failed;
};

void sbuf__put(struct sbuf *b, const char *s, size_t n);
void sbuf__puts(struct sbuf *b, const char *s);

/* 1 if s may be written as a YAML plain scalar and read back as this string by any YAML reader. */
int emit_text__plain_ok(const char *s, size_t len);

/* 1 if s (which holds a newline) may be written as a literal block `|` or `|-`. */
int emit_text__literal_ok(const char *s, size_t len);

/* Appends s as a one-line scalar: plain when it can be, else single or double quoted. */
void emit_text__string(struct sbuf *b, const char *s, size_t len);

/*
 * Appends a scalar JSON value (string, number, true, false, null) on one line.
 * real_dot: write a real that has no fraction as "2.0", so that it reads back
 * as a real (params keep JSON's types); otherwise "2".
 */
void emit_text__scalar(struct sbuf *b, const json_t *v, int real_dot);

#endif
