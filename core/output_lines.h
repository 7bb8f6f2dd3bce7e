/*
 * output_lines.h - what a task process prints, cut into lines for its log
 * topic, on the coordinator's host (run/output.c) and on an agent's
 * (agent/output.c) alike.
 *
 * Bytes are fed as they come out of the task's pipe; each '\n' ends a line.
 * A line longer than the caller's bound is cut there and marked " [line
 * cut]"; past FB_LOG_LINES_PER_S lines a second the rest are dropped and
 * counted, and the count is reported once the second is over (the same
 * bound the SDK's fb_task_log keeps); every secret of this process's mask
 * (mask.h) is replaced before a line is handed on, so a task that prints its
 * token does not publish it. Where a line goes is the caller's: a callback
 * gets each finished line and each note. Not thread-safe: one assembler per
 * task process, used from one thread.
 */
#ifndef FLOWBUS_CORE_OUTPUT_LINES_H
#define FLOWBUS_CORE_OUTPUT_LINES_H

#include <stddef.h>

#include <flowbus/flowbus.h>
#include <flowbus/protocol.h>

/* One task's line being assembled. All zero is an empty one. */
struct output_lines {
    char *line; /* allocated on the first byte; grows up to the line bound */
    size_t len, cap;
    int cut;      /* the current line was too long (or memory ran out) */
    fb_rate rate; /* the log topic's rate bound (FB_LOG_LINES_PER_S) */
};

/* Gets a finished line (or a note of flowbus's own): len bytes, NUL-terminated. */
typedef void (*output_lines_fn)(void *ctx, const char *text, size_t len);

/*
 * Appends n bytes of output; each line they finish goes to emit. Lines are
 * kept up to max bytes, the rest of a longer one is cut.
 */
void output_lines__feed(struct output_lines *o, const char *buf, size_t n, size_t max,
                        output_lines_fn emit, void *ctx);

/* Hands on the line under way, if any (the pipe was closed with no '\n' at the end). */
void output_lines__flush(struct output_lines *o, output_lines_fn emit, void *ctx);

/* Forgets the line under way (a new attempt of the task); keeps the buffer. */
void output_lines__clear(struct output_lines *o);

/* Frees the buffer; o is empty afterwards. */
void output_lines__free(struct output_lines *o);

#endif
