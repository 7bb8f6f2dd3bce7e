/*
 * checks.h - the checks that need the whole workflow (see checks.c).
 */
#ifndef FLOWBUS_CORE_MODEL_CHECKS_H
#define FLOWBUS_CORE_MODEL_CHECKS_H

#include "document.h"
#include "workflow.h"

/*
 * Checks wf, whose every task has been read, as a whole: depends_on names,
 * the reactive keys, value sizes, tokens for permissions, cmd params, and the
 * graph (inputs nobody sets, outputs nobody reads, cycles). Every problem is
 * added to diags. doc and tasks (the `tasks:` node, or NULL) are the document
 * wf was read from, for the positions inside cmd params.
 */
void checks__run(const struct workflow *wf, const struct ydoc *doc, const struct ynode *tasks,
                 struct wf_diags *diags);

#endif
