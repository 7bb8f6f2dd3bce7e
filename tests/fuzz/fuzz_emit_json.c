/*
 * fuzz_emit_json.c - libFuzzer target of the emitter's model JSON input
 * (emit__model_to_yaml, what `flowbus ui` calls with the browser's JSON).
 *
 * The input is JSON. Whatever its shape, the emitter must not crash; when it
 * writes a text that is a valid workflow, that text must be canonical: the
 * text of its own model, with itself as source. Any difference aborts.
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct emit_options eo = {0};
    struct wf_load_options lo = {0};
    struct wf_diags diags = {0};
    json_error_t err;
    json_t *model = json_loadb((const char *)data, size, JSON_DECODE_ANY, &err), *list = NULL;
    char *yaml = NULL, *again = NULL;

    if (!model)
        return 0;
    eo.file = "fuzz.yaml";
    eo.getenv_fn = no_env;
    lo.getenv_fn = no_env;
    if (emit__model_to_yaml(model, &eo, &lo, &yaml, &list) == 0) {
        again = emit__format_text("fuzz.yaml", yaml, strlen(yaml), &diags);
        if (!again || strcmp(again, yaml) != 0) {
            fprintf(stderr, "fuzz_emit_json: the text is not canonical:\n--- written\n%s--- again\n%s",
                    yaml, again ? again : "(null)\n");
            abort();
        }
    }
    wf_diags_free(&diags);
    free(yaml);
    free(again);
    json_decref(list);
    json_decref(model);
    return 0;
}
