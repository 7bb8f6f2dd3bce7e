/*
 * advice.h - warnings for valid workflows that likely do not mean what they
 * say (see advice.c). Called by checks.c; they add warnings only.
 */
#ifndef FLOWBUS_CORE_MODEL_ADVICE_H
#define FLOWBUS_CORE_MODEL_ADVICE_H

#include "workflow.h"

/*
 * Warns about each `end` task of a one-shot workflow with other work that
 * takes no inputs, or only a variable that start tasks alone set (TRUE): it
 * finishes before any work.
 */
void advice__end_tasks(const struct workflow *wf, struct wf_diags *diags);

/*
 * Warns, once per input, where the shell command cmd of task t expands one
 * of t's inputs outside any quotes ($X, ${X}); not in an assignment X=$Y nor
 * in $(( )) arithmetic, where the shell does not split. at is the position
 * of the command.
 */
void advice__unquoted_inputs(const struct wf_task *t, const char *cmd, struct wf_pos at,
                             struct wf_diags *diags);

#endif
