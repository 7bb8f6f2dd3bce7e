/*
 * fuzz_emit.c - libFuzzer target of the canonical emitter (core/model/emit.h).
 *
 * The input is a workflow file. When it loads (as `flowbus fmt` loads it:
 * any plugin, {{ENV:X}} as ""), its canonical text must load to the same
 * model and be its own canonical text; any difference aborts, so the fuzzer
 * reports it like a crash.
 */
#include "emit.h"
#include "workflow.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *no_env(void *ctx, const char *name)
{
    (void)ctx;
    (void)name;
    return "";
}

static json_t *model_of(const char *text, size_t len)
{
    struct wf_load_options opts = {0};
    struct wf_diags diags = {0};
    struct workflow *wf;
    json_t *m = NULL;

    opts.getenv_fn = no_env;
    wf = workflow__load_buffer("fuzz.yaml", text, len, &opts, &diags);
    if (wf)
        m = workflow__to_json(wf);
    workflow__free(wf);
    wf_diags_free(&diags);
    return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wf_diags diags = {0};
    char *once = emit__format_text("fuzz.yaml", (const char *)data, size, &diags), *twice = NULL;
    json_t *before = NULL, *after = NULL;

    wf_diags_free(&diags);
    if (!once)
        return 0;
    before = model_of((const char *)data, size);
    after = model_of(once, strlen(once));
    if (!before || !after || !json_equal(before, after)) {
        fprintf(stderr, "fuzz_emit: the canonical text has another model:\n%s", once);
        abort();
    }
    twice = emit__format_text("fuzz.yaml", once, strlen(once), &diags);
    wf_diags_free(&diags);
    if (!twice || strcmp(once, twice) != 0) {
        fprintf(stderr, "fuzz_emit: not idempotent:\n--- once\n%s--- twice\n%s", once,
                twice ? twice : "(null)\n");
        abort();
    }
    free(once);
    free(twice);
    json_decref(before);
    json_decref(after);
    return 0;
}
