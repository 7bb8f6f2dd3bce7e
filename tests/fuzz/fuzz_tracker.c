/*
 * fuzz_tracker.c - libFuzzer target of the tracker's bus message handling.
 *
 * A fixed small workflow is loaded once; each input is a sequence of bus
 * messages for a fresh tracker of run "r1", separated by a 0xFF byte, each
 * message being "TOPIC\nPAYLOAD". A topic starting with "~" stands for
 * "flowbus/r1/" so that the fuzzer reaches the run's own topics quickly.
 * Payloads are NUL-terminated copies, as the SDK delivers them (fb_msg), with
 * len excluding the NUL. After the messages the target propagates skips and
 * reads every state back, as the coordinator does after each message.
 */
#include "graph.h"
#include "tracker.h"
#include "workflow.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char FLOW[] =
    "workflow:\n"
    "  name: fuzz\n"
    "  env: {GREETING: hi}\n"
    "  tasks:\n"
    "    - {name: START, plugin: start, outputs: [TRUE]}\n"
    "    - {name: WORK, plugin: cmd, inputs: [TRUE, GREETING], outputs: [OUT],"
    " params: {command: 'echo OUT=1'}}\n"
    "    - {name: SIDE, plugin: cmd, inputs: [TRUE], outputs: [MAYBE],"
    " params: {command: 'true'}}\n"
    "    - {name: NEXT, plugin: cmd, inputs: [OUT, MAYBE], outputs: [FINAL],"
    " depends_on: [SIDE], params: {command: 'echo FINAL=1'}}\n"
    "    - {name: END, plugin: end, inputs: [FINAL]}\n";

static struct workflow *wf;
static struct graph *g;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Feeds one "TOPIC\nPAYLOAD" message. */
static void feed(struct tracker *tr, const uint8_t *msg, size_t len)
{
    const uint8_t *nl = memchr(msg, '\n', len);
    size_t topic_len = nl ? (size_t)(nl - msg) : len;
    size_t payload_len = nl ? len - topic_len - 1 : 0;
    int root = topic_len > 0 && msg[0] == '~';
    char *topic = malloc(topic_len + sizeof "flowbus/r1/");
    char *payload = malloc(payload_len + 1);
    size_t index = 0;
    const char *text = NULL;

    if (!topic || !payload)
        goto out;
    /* Topics are C strings on the bus: an MQTT topic cannot hold a NUL. */
    strcpy(topic, root ? "flowbus/r1/" : "");
    strncat(topic, (const char *)msg + root, topic_len - (size_t)root);
    if (nl)
        memcpy(payload, nl + 1, payload_len);
    payload[payload_len] = '\0';
    tracker__on_message(tr, topic, payload, payload_len, &index, &text);
out:
    free(topic);
    free(payload);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tracker *tr;
    size_t *skipped;

    if (!wf) {
        struct wf_diags diags = {0};
        wf = workflow__load_buffer("fuzz.yaml", FLOW, strlen(FLOW), NULL, &diags);
        wf_diags_free(&diags);
        g = wf ? graph__new(wf) : NULL;
        if (!g)
            abort();
    }
    tr = tracker__new(wf, g, "r1");
    skipped = calloc(wf->n_tasks, sizeof *skipped);
    if (!tr || !skipped)
        abort();
    while (size > 0) {
        const uint8_t *sep = memchr(data, 0xFF, size);
        size_t len = sep ? (size_t)(sep - data) : size;
        feed(tr, data, len);
        data += len + (sep ? 1 : 0);
        size -= len + (sep ? 1 : 0);
    }
    tracker__propagate(tr, 1.0, skipped);
    for (size_t t = 0; t < wf->n_tasks; t++)
        free(tracker__state_json(tr, t));
    for (size_t v = 0; v < graph__var_count(g); v++)
        (void)tracker__var_value(tr, v);
    (void)tracker__finished(tr);
    (void)tracker__exit_code(tr);
    free(skipped);
    tracker__free(tr);
    return 0;
}
