/*
 * emit_source.h - what the emitter takes from a workflow file's text (private
 * to emit.c and emit_source.c): its comments, attached to the key or list item
 * they belong to, its env: entries as written, and its task names.
 *
 * An anchor is named by a task (its index in the file, or -1 outside tasks)
 * and a path inside it written as the emitter writes JSON paths: "" is the
 * task itself (or the `workflow` key), ".params.command", ".env.TIMEOUT",
 * ".inputs[0]". A task's `execution.depends_on` is named ".depends_on", where
 * the canonical layout writes it.
 */
#ifndef FLOWBUS_CORE_MODEL_EMIT_SOURCE_H
#define FLOWBUS_CORE_MODEL_EMIT_SOURCE_H

#include <stddef.h>

struct emit_comment {
    long task;     /* index of the task in the file, -1 outside tasks */
    char *path;    /* the anchor (see above) */
    char *text;    /* comment lines from '#', joined by '\n'; an empty line is a blank line */
    int trailing;  /* 1: at the end of the anchor's first line */
    size_t written; /* emitter, first pass: 1 + length of the longest path written that is
                     * its anchor or a parent of it; 0: none */
    long at_task;  /* emitter: where it is placed (its anchor, or the nearest written parent) */
    char *at_path; /* NULL: dropped with its task or entry */
};

struct emit_env_entry {
    char *name;
    char *raw;  /* the value as written, {{ENV:X}} not substituted */
    int secret; /* written {value: ..., secret: true} */
};

/*
 * A string the file wrote as a folded block (`>` or `>-`): the canonical layout
 * has no rule that would fold a long line where its author did, so an
 * unchanged one is written again with the author's line breaks.
 */
struct emit_folded {
    long task;
    char *path;
    char *value;  /* as the parser read it */
    char *header; /* ">" or ">-" */
    char *body;   /* the content lines, their common indentation removed, each ending in '\n' */
};

struct emit_source {
    char *header; /* the comment lines before the first content line, verbatim; NULL if none */
    char *footer; /* those after the last one */
    struct emit_comment *comments;
    size_t n_comments;
    char **task_names; /* NULL where a task has no plain name */
    size_t n_tasks;
    struct emit_env_entry *env;
    size_t n_env;
    struct emit_folded *folded;
    size_t n_folded;
    int has_name; /* workflow: has a name: key */
};

/*
 * Reads text into src (zeroed by the caller). Returns 1; 0 when the text is
 * not YAML libyaml can parse (src is then empty: nothing is taken from it) or
 * memory ran out. The caller frees src with emit_source__free either way.
 */
int emit_source__scan(const char *text, size_t len, struct emit_source *src);

void emit_source__free(struct emit_source *src);

/* The file's task index whose name is name, or -1. */
long emit_source__task(const struct emit_source *src, const char *name);

/* The folded string at this anchor, or NULL. */
const struct emit_folded *emit_source__folded(const struct emit_source *src, long task,
                                              const char *path);

/* The entry of env: called name, or NULL. */
const struct emit_env_entry *emit_source__env(const struct emit_source *src, const char *name);

#endif
