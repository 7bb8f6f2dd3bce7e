/*
 * output.h - what the command says: its stdout and stderr read as lines
 * while it runs, and the file $FLOWBUS_OUTPUT it wrote (outfile.h) once it
 * has exited. A KEY=VALUE line in the file, or on stdout (kv.h), whose KEY
 * is a declared output records its value (the last such line wins, the
 * file's over stdout's, applied only if the command succeeds); every other
 * line goes to the task's log. When an input's value holds a newline, stdout
 * lines are only log lines: such a value, echoed, would forge a KEY=VALUE
 * line (see main.c for the rules as the user sees them).
 */
#ifndef FLOWBUS_TASKS_CMD_OUTPUT_H
#define FLOWBUS_TASKS_CMD_OUTPUT_H

#include <flowbus/flowbus.h>

#include <stddef.h>

/* One output pipe of the child, split into lines. */
struct stream {
    int fd;     /* -1 once closed */
    int is_out; /* 1 for stdout (KEY=VALUE lines), 0 for stderr */
    char *buf;  /* output__line_max() bytes */
    size_t used;
    int skipping; /* 1 while discarding the rest of a cut line */
};

/* What one run of the command has said so far. */
struct run {
    fb_task *task;
    char **values; /* per declared output index, from stdout; NULL until printed */
    char **file_values; /* the same from $FLOWBUS_OUTPUT, which wins over stdout */
    const char *newline_input; /* an input with a newline: stdout sets nothing (the task's) */
    char **warned; /* undeclared keys already warned about */
    size_t nwarned;
    int failed_mem;  /* 1 if memory ran out recording a value */
    char *too_large; /* the first declared output whose value was over the limit */
    char *has_nul;   /* the first declared output whose value held a NUL byte */
};

/* The variable value limit, as the SDK applies it (FLOWBUS_MAX_VALUE). */
long output__value_limit(void);

/*
 * Lines longer than this are cut: the first output__line_max() bytes are
 * kept and marked. It is the largest value a variable may have
 * (FLOWBUS_MAX_VALUE, 256 KiB by default) plus room for the key, so that an
 * output line over the limit is recognised as such and refused, not silently
 * cut. It is also the size of a stream's buffer.
 */
size_t output__line_max(void);

/*
 * Reads what is available on s and handles its complete lines. Returns 1
 * while the pipe may give more, 0 on end of file or error (then any partial
 * last line has been handled) and -1 if nothing was available right now.
 */
int output__read(struct run *r, struct stream *s);

/*
 * Handles a last line without its newline, on a pipe a grandchild still
 * holds open after the command exited, and empties the buffer.
 */
void output__last_line(struct run *r, struct stream *s);

/*
 * Records the outputs in the len bytes of $FLOWBUS_OUTPUT (outfile.h) into
 * r->file_values, with the same checks as stdout's lines (declared, within
 * the limit, without NUL). Returns 0, or -1 with a one-line reason in err
 * for a malformed file.
 */
int output__read_file(struct run *r, const char *buf, size_t len, char *err, size_t errlen);

/* Frees what r recorded (not r->task). */
void output__clear(struct run *r);

#endif
