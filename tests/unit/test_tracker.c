/*
 * test_tracker.c - unit tests of the run tracker: how bus messages become task
 * states and variable values, which states are final, skip propagation with
 * reasons, and the run's exit code.
 */
#include "check.h"
#include "graph.h"
#include "tracker.h"
#include "workflow.h"

#include <stdlib.h>
#include <string.h>

static const char FLOW[] = "workflow:\n"
                           "  name: t\n"
                           "  env: {GREETING: hi}\n"
                           "  tasks:\n"
                           "    - {name: START, plugin: start, outputs: [TRUE]}\n"
                           "    - {name: WORK, plugin: cmd, inputs: [TRUE, GREETING], outputs: [OUT],"
                           " params: {command: 'echo OUT=1'}}\n"
                           "    - {name: NEXT, plugin: cmd, inputs: [OUT], outputs: [FINAL],"
                           " params: {command: 'echo FINAL=1'}}\n"
                           "    - {name: END, plugin: end, inputs: [FINAL]}\n";

struct fixture {
    struct wf_diags diags;
    struct workflow *wf;
    struct graph *g;
    struct tracker *tr;
};

static void setup(struct fixture *f)
{
    memset(f, 0, sizeof *f);
    f->wf = workflow__load_buffer("t.yaml", FLOW, strlen(FLOW), NULL, &f->diags);
    f->g = f->wf ? graph__new(f->wf) : NULL;
    f->tr = f->g ? tracker__new(f->wf, f->g, "r1") : NULL;
    CHECK(f->tr != NULL);
}

static void teardown(struct fixture *f)
{
    tracker__free(f->tr);
    graph__free(f->g);
    workflow__free(f->wf);
    wf_diags_free(&f->diags);
}

static enum tracker_event feed(struct fixture *f, const char *topic, const char *payload,
                               size_t *idx)
{
    const char *text = NULL;
    size_t dummy;
    return tracker__on_message(f->tr, topic, payload, strlen(payload), idx ? idx : &dummy, &text);
}

static void test_states_from_the_bus(void)
{
    struct fixture f;
    size_t idx = 99;

    setup(&f);
    CHECK(feed(&f, "flowbus/r1/tasks/WORK/state",
               "{\"state\":\"waiting\",\"attempt\":1,\"pid\":42,\"at\":10.5}", &idx) == TRACK_TASK);
    CHECK(idx == 1);
    CHECK(tracker__task(f.tr, 1)->state == FB_STATE_WAITING);
    CHECK(tracker__task(f.tr, 1)->pid == 42);
    CHECK(feed(&f, "flowbus/r1/tasks/WORK/state", "{\"state\":\"running\",\"at\":11.0}", NULL) ==
          TRACK_TASK);
    CHECK(tracker__task(f.tr, 1)->started == 11.0);
    /* A late "waiting" never undoes "running". */
    CHECK(feed(&f, "flowbus/r1/tasks/WORK/state", "{\"state\":\"waiting\",\"at\":11.1}", NULL) ==
          TRACK_NONE);
    CHECK(tracker__task(f.tr, 1)->state == FB_STATE_RUNNING);
    CHECK(feed(&f, "flowbus/r1/tasks/WORK/state",
               "{\"state\":\"failed\",\"at\":12.0,\"exit\":3,\"error\":\"boom\"}", NULL) == TRACK_TASK);
    CHECK(tracker__task(f.tr, 1)->state == FB_STATE_FAILED);
    CHECK(tracker__task(f.tr, 1)->exit_code == 3);
    CHECK_STR(tracker__task(f.tr, 1)->error, "boom");
    CHECK(tracker__task(f.tr, 1)->ended == 12.0);
    /* Terminal is final: a Last Will arriving afterwards changes nothing, and
     * asks for the record to be published again (TRACK_STALE). */
    CHECK(feed(&f, "flowbus/r1/tasks/WORK/state", "{\"state\":\"crashed\",\"at\":12.5}", NULL) ==
          TRACK_STALE);
    /* A non-final state after the end is plain history. */
    CHECK(feed(&f, "flowbus/r1/tasks/WORK/state", "{\"state\":\"running\",\"at\":12.6}", NULL) ==
          TRACK_NONE);
    CHECK(tracker__task(f.tr, 1)->state == FB_STATE_FAILED);
    teardown(&f);
}

static void test_states_of_an_earlier_attempt(void)
{
    struct fixture f;

    setup(&f);
    tracker__retry(f.tr, 1, 2, 20.0, "attempt 1 crashed");
    /* Attempt 1's Will while attempt 2 waits or runs: history, nothing to answer. */
    CHECK(feed(&f, "flowbus/r1/tasks/WORK/state",
               "{\"state\":\"crashed\",\"attempt\":1,\"at\":20.1}", NULL) == TRACK_NONE);
    CHECK(tracker__task(f.tr, 1)->state == FB_STATE_WAITING);
    CHECK(feed(&f, "flowbus/r1/tasks/WORK/state",
               "{\"state\":\"done\",\"attempt\":2,\"at\":21.0}", NULL) == TRACK_TASK);
    /* The same Will once attempt 2 is done has become the retained state: the
     * record is asked for again (TRACK_STALE), and stays attempt 2's. */
    CHECK(feed(&f, "flowbus/r1/tasks/WORK/state",
               "{\"state\":\"crashed\",\"attempt\":1,\"at\":21.5}", NULL) == TRACK_STALE);
    CHECK(feed(&f, "flowbus/r1/tasks/WORK/state",
               "{\"state\":\"running\",\"attempt\":1,\"at\":21.6}", NULL) == TRACK_NONE);
    CHECK(tracker__task(f.tr, 1)->state == FB_STATE_DONE);
    CHECK(tracker__task(f.tr, 1)->attempt == 2);
    teardown(&f);
}

static void test_malformed_and_foreign_messages_are_ignored(void)
{
    struct fixture f;

    setup(&f);
    CHECK(feed(&f, "flowbus/r2/tasks/WORK/state", "{\"state\":\"done\"}", NULL) == TRACK_NONE);
    CHECK(feed(&f, "flowbus/r1/tasks/NOPE/state", "{\"state\":\"done\"}", NULL) == TRACK_NONE);
    CHECK(feed(&f, "flowbus/r1/tasks/WORK/state", "not json", NULL) == TRACK_NONE);
    CHECK(feed(&f, "flowbus/r1/tasks/WORK/state", "{\"state\":\"dancing\"}", NULL) == TRACK_NONE);
    CHECK(feed(&f, "flowbus/r1/tasks/WORK/state", "[1,2]", NULL) == TRACK_NONE);
    CHECK(feed(&f, "flowbus/r1/vars/UNKNOWN", "x", NULL) == TRACK_NONE);
    CHECK(feed(&f, "flowbus/r1/tasks/WORK", "x", NULL) == TRACK_NONE);
    CHECK(tracker__task(f.tr, 1)->state == FB_STATE_PENDING);
    teardown(&f);
}

static void test_first_value_wins_and_empty_value(void)
{
    struct fixture f;
    size_t idx = 99;
    long out;

    setup(&f);
    out = graph__var_index(f.g, "OUT");
    CHECK(out >= 0);
    CHECK(feed(&f, "flowbus/r1/vars/OUT", "first", &idx) == TRACK_VAR);
    CHECK(idx == (size_t)out);
    CHECK(feed(&f, "flowbus/r1/vars/OUT", "second", NULL) == TRACK_NONE);
    CHECK_STR(tracker__var_value(f.tr, (size_t)out), "first");
    /* One NUL byte is the empty string. */
    CHECK(tracker__on_message(f.tr, "flowbus/r1/vars/FINAL", "\0", 1, &idx, &(const char *){0}) ==
          TRACK_VAR);
    CHECK_STR(tracker__var_value(f.tr, (size_t)graph__var_index(f.g, "FINAL")), "");
    teardown(&f);
}

static void test_skip_propagation_and_exit_code(void)
{
    struct fixture f;
    size_t skipped[4];
    size_t n;

    setup(&f);
    tracker__mark_var(f.tr, (size_t)graph__var_index(f.g, "GREETING"), "hi");
    feed(&f, "flowbus/r1/vars/TRUE", "1", NULL);
    feed(&f, "flowbus/r1/tasks/START/state", "{\"state\":\"done\",\"at\":1}", NULL);
    CHECK(tracker__propagate(f.tr, 2.0, skipped) == 0);
    feed(&f, "flowbus/r1/tasks/WORK/state", "{\"state\":\"failed\",\"at\":3,\"exit\":1}", NULL);
    n = tracker__propagate(f.tr, 4.0, skipped);
    CHECK(n == 2);
    CHECK(tracker__task(f.tr, 2)->state == FB_STATE_SKIPPED);
    CHECK(tracker__task(f.tr, 3)->state == FB_STATE_SKIPPED);
    CHECK_CONTAINS(tracker__task(f.tr, 2)->error, "OUT");
    CHECK_CONTAINS(tracker__task(f.tr, 2)->error, "WORK");
    CHECK_CONTAINS(tracker__task(f.tr, 3)->error, "FINAL");
    CHECK(tracker__finished(f.tr));
    CHECK(tracker__exit_code(f.tr) == 1);
    teardown(&f);
}

static void test_end_skipped_without_failure_is_exit_3(void)
{
    struct fixture f;
    size_t skipped[4];

    setup(&f);
    tracker__mark_var(f.tr, (size_t)graph__var_index(f.g, "GREETING"), "hi");
    feed(&f, "flowbus/r1/vars/TRUE", "1", NULL);
    feed(&f, "flowbus/r1/tasks/START/state", "{\"state\":\"done\",\"at\":1}", NULL);
    /* WORK finishes without producing OUT. */
    feed(&f, "flowbus/r1/tasks/WORK/state", "{\"state\":\"done\",\"at\":2}", NULL);
    CHECK(tracker__propagate(f.tr, 3.0, skipped) == 2);
    CHECK_CONTAINS(tracker__task(f.tr, 2)->error, "finished without producing it");
    CHECK(tracker__exit_code(f.tr) == 3);
    teardown(&f);
}

static void test_coordinator_states_and_json(void)
{
    struct fixture f;
    char *json;

    setup(&f);
    feed(&f, "flowbus/r1/tasks/WORK/state", "{\"state\":\"running\",\"at\":5,\"pid\":7}", NULL);
    CHECK(tracker__set(f.tr, 1, FB_STATE_TIMEOUT, 6.5, -1, 0, "timed out after 1.5 s") == 1);
    /* The Last Will of the killed process cannot overwrite the coordinator's decision. */
    CHECK(tracker__set(f.tr, 1, FB_STATE_CRASHED, 6.6, -1, 9, NULL) == 0);
    json = tracker__state_json(f.tr, 1);
    CHECK_CONTAINS(json, "\"state\":\"timeout\"");
    CHECK_CONTAINS(json, "\"pid\":7");
    CHECK_CONTAINS(json, "\"started\":5");
    CHECK_CONTAINS(json, "\"error\":\"timed out after 1.5 s\"");
    CHECK_CONTAINS(json, "\"exit\":null");
    free(json);
    CHECK(!tracker__finished(f.tr));
    CHECK(tracker__exit_code(f.tr) == 1);
    teardown(&f);
}

/* The one parser of a task's state JSON, which the run view shares. */
static void test_report_parsing(void)
{
    struct task_report r;
    const char *full = "{\"state\":\"running\",\"attempt\":2,\"pid\":42,\"at\":10.5,\"started\":null,"
                       "\"exit\":null,\"signal\":null,\"error\":null,\"activation\":3,"
                       "\"result\":\"done\",\"queued\":4,\"dropped\":1,\"worker\":2}";

    CHECK(tracker__parse_report(full, strlen(full), &r) == 1);
    CHECK(r.info.state == FB_STATE_RUNNING);
    CHECK(r.info.attempt == 2 && r.info.pid == 42 && r.info.at == 10.5);
    CHECK(r.info.activation == 3 && r.info.queued == 4 && r.info.dropped == 1 && r.worker == 2);
    CHECK_STR(r.info.result, "done");
    CHECK(r.has == (TM_STATE | TM_ATTEMPT | TM_PID | TM_AT | TM_ACTIVATION | TM_RESULT |
                    TM_QUEUED | TM_DROPPED | TM_WORKER));
    CHECK(r.null == (TM_STARTED | TM_EXIT | TM_SIGNAL | TM_ERROR));
    CHECK(r.whole == 0 && r.info.ended == 0 && r.info.error == NULL);
    tracker__report_clear(&r);

    /* A Last Will: fewer members; a final state's end is its time; integers stay integers. */
    CHECK(tracker__parse_report("{\"state\":\"crashed\",\"at\":7,\"exit\":3,\"signal\":9,"
                                "\"error\":\"connection lost\"}",
                                strlen("{\"state\":\"crashed\",\"at\":7,\"exit\":3,\"signal\":9,"
                                       "\"error\":\"connection lost\"}"),
                                &r) == 1);
    CHECK(r.info.state == FB_STATE_CRASHED && r.info.ended == 7.0 && r.whole == TM_AT);
    CHECK(r.info.has_exit && r.info.exit_code == 3 && r.info.signal == 9);
    CHECK_STR(r.info.error, "connection lost");
    CHECK(!(r.has & TM_ATTEMPT) && !(r.null & TM_ATTEMPT));
    tracker__report_clear(&r);

    /* A member of the wrong type counts as absent; an absurd integer is clamped. */
    CHECK(tracker__parse_report("{\"state\":\"done\",\"attempt\":\"2\",\"exit\":99999999999}",
                                strlen("{\"state\":\"done\",\"attempt\":\"2\",\"exit\":99999999999}"),
                                &r) == 1);
    CHECK(!(r.has & TM_ATTEMPT) && r.info.attempt == 0 && r.info.exit_code == 2147483647);
    tracker__report_clear(&r);

    /* Not a state: nothing, and the report is empty. */
    CHECK(tracker__parse_report("{\"state\":\"pending\"}", 19, &r) == 0 && r.has == 0);
    CHECK(tracker__parse_report("{\"state\":\"dancing\"}", 19, &r) == 0);
    CHECK(tracker__parse_report("[1]", 3, &r) == 0);
    CHECK(tracker__parse_report("", 0, &r) == 0);
    tracker__report_clear(&r);
}

int main(void)
{
    RUN(test_states_from_the_bus);
    RUN(test_states_of_an_earlier_attempt);
    RUN(test_malformed_and_foreign_messages_are_ignored);
    RUN(test_first_value_wins_and_empty_value);
    RUN(test_skip_propagation_and_exit_code);
    RUN(test_end_skipped_without_failure_is_exit_3);
    RUN(test_coordinator_states_and_json);
    RUN(test_report_parsing);
    return check_summary();
}
