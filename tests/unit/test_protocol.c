/*
 * test_protocol.c - the bus contract (flowbus/protocol.h): topics built and
 * parsed back, what the parser refuses, state and run-state names, control
 * payloads, the empty-value encoding, the name rules and the barrier token.
 * It links libflowbus as a plugin does; fb_barrier itself needs a broker and
 * is exercised by every SDK and integration test through its callers.
 */
#include <flowbus/protocol.h>

#include <stdio.h>
#include <string.h>

#include "check.h"

static void test_format_each_kind(void)
{
    char b[FB_TOPIC_MAX];

    CHECK(fb_topic_format(b, sizeof b, FB_TOPIC_RUN_STATE, "r1", NULL) == strlen("flowbus/r1/state"));
    CHECK_STR(b, "flowbus/r1/state");
    fb_topic_format(b, sizeof b, FB_TOPIC_WORKFLOW, "r1", NULL);
    CHECK_STR(b, "flowbus/r1/workflow");
    fb_topic_format(b, sizeof b, FB_TOPIC_CONTROL, "r1", NULL);
    CHECK_STR(b, "flowbus/r1/control");
    fb_topic_format(b, sizeof b, FB_TOPIC_VAR, "r1", "X_1");
    CHECK_STR(b, "flowbus/r1/vars/X_1");
    fb_topic_format(b, sizeof b, FB_TOPIC_TASK_STATE, "r1", "t-a");
    CHECK_STR(b, "flowbus/r1/tasks/t-a/state");
    fb_topic_format(b, sizeof b, FB_TOPIC_TASK_LOG, "r1", "t-a");
    CHECK_STR(b, "flowbus/r1/tasks/t-a/log");
    fb_topic_format(b, sizeof b, FB_TOPIC_SYNC, "r1", "p3");
    CHECK_STR(b, "flowbus/r1/sync/p3");
    fb_topic_share(b, sizeof b, "r1", "t", "X");
    CHECK_STR(b, "$share/r1.t/flowbus/r1/vars/X");
}

static void test_format_refuses(void)
{
    char b[FB_TOPIC_MAX], small[10];

    /* Parts that would make another topic, and missing parts. */
    CHECK(fb_topic_format(b, sizeof b, FB_TOPIC_VAR, "r1", "a/b") == 0);
    CHECK(fb_topic_format(b, sizeof b, FB_TOPIC_VAR, "r1", "+") == 0);
    CHECK(fb_topic_format(b, sizeof b, FB_TOPIC_VAR, "r#", "X") == 0);
    CHECK(fb_topic_format(b, sizeof b, FB_TOPIC_VAR, "r1", NULL) == 0);
    CHECK(fb_topic_format(b, sizeof b, FB_TOPIC_VAR, "r1", "") == 0);
    CHECK(fb_topic_format(b, sizeof b, FB_TOPIC_RUN_STATE, NULL, NULL) == 0);
    CHECK(fb_topic_format(b, sizeof b, FB_TOPIC_ALL, "r1", NULL) == 0);
    CHECK(fb_topic_format(b, sizeof b, FB_TOPIC_NONE, "r1", NULL) == 0);
    /* Too small: nothing half-written. */
    CHECK(fb_topic_format(small, sizeof small, FB_TOPIC_RUN_STATE, "r1", NULL) == 0);
    CHECK_STR(small, "");
}

static void test_filters(void)
{
    char b[FB_TOPIC_MAX];

    fb_topic_filter(b, sizeof b, FB_TOPIC_RUN_STATE, NULL, NULL);
    CHECK_STR(b, "flowbus/+/state");
    fb_topic_filter(b, sizeof b, FB_TOPIC_TASK_STATE, NULL, NULL);
    CHECK_STR(b, "flowbus/+/tasks/+/state");
    fb_topic_filter(b, sizeof b, FB_TOPIC_VAR, "r1", NULL);
    CHECK_STR(b, "flowbus/r1/vars/+");
    fb_topic_filter(b, sizeof b, FB_TOPIC_SYNC, "r1", NULL);
    CHECK_STR(b, "flowbus/r1/sync/+");
    fb_topic_filter(b, sizeof b, FB_TOPIC_ALL, "r1", NULL);
    CHECK_STR(b, "flowbus/r1/#");
    fb_topic_filter(b, sizeof b, FB_TOPIC_ALL, NULL, NULL);
    CHECK_STR(b, "flowbus/+/#");
}

static void test_parse_round_trip(void)
{
    static const enum fb_topic_kind kinds[] = {FB_TOPIC_RUN_STATE, FB_TOPIC_WORKFLOW,
                                               FB_TOPIC_CONTROL,   FB_TOPIC_VAR,
                                               FB_TOPIC_TASK_STATE, FB_TOPIC_TASK_LOG,
                                               FB_TOPIC_SYNC,       FB_TOPIC_OWNER,
                                               FB_TOPIC_CLAIM,      FB_TOPIC_TASK_LAUNCH};
    char b[FB_TOPIC_MAX];
    fb_topic t;

    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        CHECK(fb_topic_format(b, sizeof b, kinds[i], "run-7", "Name_1") > 0);
        CHECK(fb_topic_parse(b, &t) == kinds[i]);
        CHECK(t.kind == kinds[i]);
        CHECK(fb_topic_is_run(&t, "run-7"));
        CHECK(!fb_topic_is_run(&t, "run-"));
        CHECK(!fb_topic_is_run(&t, "run-77"));
        if (kinds[i] == FB_TOPIC_VAR || kinds[i] == FB_TOPIC_TASK_STATE ||
            kinds[i] == FB_TOPIC_TASK_LOG || kinds[i] == FB_TOPIC_SYNC ||
            kinds[i] == FB_TOPIC_CLAIM || kinds[i] == FB_TOPIC_TASK_LAUNCH) {
            CHECK(fb_topic_is_name(&t, "Name_1"));
            CHECK(!fb_topic_is_name(&t, "Name_"));
        } else {
            CHECK(t.name == NULL);
        }
    }
    CHECK(fb_topic_parse("flowbus/r/vars/X", NULL) == FB_TOPIC_VAR);
    fb_topic_format(b, sizeof b, FB_TOPIC_OWNER, "r1", NULL);
    CHECK_STR(b, "flowbus/r1/owner");
    fb_topic_format(b, sizeof b, FB_TOPIC_CLAIM, "r1", "c0ffee");
    CHECK_STR(b, "flowbus/r1/claims/c0ffee");
    fb_topic_filter(b, sizeof b, FB_TOPIC_CLAIM, "r1", NULL);
    CHECK_STR(b, "flowbus/r1/claims/+");
    fb_topic_format(b, sizeof b, FB_TOPIC_TASK_LAUNCH, "r1", "T");
    CHECK_STR(b, "flowbus/r1/tasks/T/launch");
    CHECK(fb_topic_parse("flowbus/r1/claims", NULL) == FB_TOPIC_NONE);
    CHECK(fb_topic_parse("flowbus/r1/claims/a/b", NULL) == FB_TOPIC_NONE);
    CHECK(fb_topic_parse("flowbus/r1/owner/x", NULL) == FB_TOPIC_NONE);
}

static void test_parse_refuses(void)
{
    static const char *const bad[] = {
        "",
        "flowbus",
        "flowbus/",
        "flowbus/r",
        "flowbus/r/",
        "flowbus//state",
        "flowbusx/r/state",
        "other/r/state",
        "flowbus/r/state/x",
        "flowbus/r/vars",
        "flowbus/r/vars/",
        "flowbus/r/vars/X/Y",
        "flowbus/r/tasks/t",
        "flowbus/r/tasks/t/",
        "flowbus/r/tasks//state",
        "flowbus/r/tasks/t/other",
        "flowbus/r/tasks/t/state/x",
        "flowbus/r/sync",
        "flowbus/r/statex",
        "flowbus/r/varsX/a",
        "$share/r.t/flowbus/r/vars/X",
    };
    fb_topic t;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (fb_topic_parse(bad[i], &t) != FB_TOPIC_NONE)
            fprintf(stderr, "parsed but should not: '%s'\n", bad[i]);
        CHECK(fb_topic_parse(bad[i], &t) == FB_TOPIC_NONE);
        CHECK(t.run == NULL && t.name == NULL);
    }
    CHECK(fb_topic_parse(NULL, &t) == FB_TOPIC_NONE);
}

static void test_states(void)
{
    enum fb_state s;

    CHECK_STR(fb_state_name(FB_STATE_PENDING), "pending");
    CHECK_STR(fb_state_name(FB_STATE_WAITING), "waiting");
    CHECK_STR(fb_state_name(FB_STATE_STOPPED), "stopped");
    CHECK_STR(fb_state_name((enum fb_state)99), "?");
    for (int i = FB_STATE_WAITING; i < FB_STATE_COUNT; i++) {
        CHECK(fb_state_parse(fb_state_name((enum fb_state)i), &s));
        CHECK((int)s == i);
    }
    /* "pending" never travels: a reader must not take it from the bus. */
    CHECK(!fb_state_parse("pending", &s));
    CHECK(!fb_state_parse("Done", &s));
    CHECK(!fb_state_parse(NULL, &s));
    CHECK(!fb_state_is_final(FB_STATE_PENDING));
    CHECK(!fb_state_is_final(FB_STATE_WAITING));
    CHECK(!fb_state_is_final(FB_STATE_RUNNING));
    for (int i = FB_STATE_DONE; i < FB_STATE_COUNT; i++)
        CHECK(fb_state_is_final((enum fb_state)i));
    CHECK(!fb_state_is_final((enum fb_state)FB_STATE_COUNT));
}

static void test_run_states(void)
{
    CHECK(fb_run_state_parse("running") == FB_RUN_RUNNING);
    CHECK(fb_run_state_parse("incomplete") == FB_RUN_INCOMPLETE);
    CHECK(fb_run_state_parse("?") == FB_RUN_UNKNOWN);
    CHECK(fb_run_state_parse("waiting") == FB_RUN_UNKNOWN);
    CHECK(fb_run_state_parse(NULL) == FB_RUN_UNKNOWN);
    CHECK_STR(fb_run_state_name(FB_RUN_STOPPED), "stopped");
    /* The coordinator's Last Will: known, and not final (the run can be resumed). */
    CHECK(fb_run_state_parse("lost") == FB_RUN_LOST);
    CHECK_STR(fb_run_state_name(FB_RUN_LOST), "lost");
    CHECK(!fb_run_state_is_final(FB_RUN_LOST));
    CHECK(!fb_run_state_is_final(FB_RUN_RUNNING));
    CHECK(!fb_run_state_is_final(FB_RUN_UNKNOWN));
    CHECK(fb_run_state_is_final(FB_RUN_DONE) && fb_run_state_is_final(FB_RUN_FAILED) &&
          fb_run_state_is_final(FB_RUN_INCOMPLETE) && fb_run_state_is_final(FB_RUN_STOPPED));
}

static void test_control(void)
{
    char b[64];

    CHECK(fb_control_format(b, sizeof b, FB_CONTROL_PAUSE) == strlen("{\"cmd\":\"pause\"}"));
    CHECK_STR(b, "{\"cmd\":\"pause\"}");
    CHECK(fb_control_parse(b, strlen(b)) == FB_CONTROL_PAUSE);
    CHECK(fb_control_format(b, sizeof b, FB_CONTROL_NONE) == 0);
    CHECK(fb_control_format(b, 5, FB_CONTROL_STOP) == 0);
    CHECK(fb_control_parse("{\"cmd\":\"stop\",\"by\":\"cli\"}", 25) == FB_CONTROL_STOP);
    CHECK(fb_control_parse("{\"cmd\":\"resume\"}", 16) == FB_CONTROL_RESUME);
    CHECK(fb_control_parse("", 0) == FB_CONTROL_NONE);
    CHECK(fb_control_parse("{\"cmd\":\"halt\"}", 14) == FB_CONTROL_NONE);
    CHECK(fb_control_parse("{\"cmd\":1}", 9) == FB_CONTROL_NONE);
    CHECK(fb_control_parse("stop", 4) == FB_CONTROL_NONE);
}

static void test_values(void)
{
    const char *p = NULL;

    CHECK(fb_value_encode("abc", &p) == 3);
    CHECK_STR(p, "abc");
    /* The empty string is one NUL byte on the bus. */
    CHECK(fb_value_encode("", &p) == 1);
    CHECK(p[0] == '\0');
    CHECK_STR(fb_value_decode("", 1), "");
    CHECK(fb_value_decode("", 0) == NULL);
    CHECK(fb_value_decode(NULL, 0) == NULL);
    CHECK_STR(fb_value_decode("x", 1), "x");
}

static void test_names(void)
{
    char long_name[FB_NAME_MAX + 2];

    CHECK(fb_name_valid(FB_NAME_VAR, "_X1", 3));
    CHECK(!fb_name_valid(FB_NAME_VAR, "1X", 2));
    CHECK(!fb_name_valid(FB_NAME_VAR, "A-B", 3));
    CHECK(!fb_name_valid(FB_NAME_VAR, "", 0));
    CHECK(fb_name_valid(FB_NAME_TASK, "1st-task_", 9));
    CHECK(!fb_name_valid(FB_NAME_TASK, "-task", 5));
    CHECK(!fb_name_valid(FB_NAME_TASK, "a b", 3));
    CHECK(fb_name_valid(FB_NAME_RUN, "-run-1_", 7));
    CHECK(!fb_name_valid(FB_NAME_RUN, "run/1", 5));
    CHECK(!fb_name_valid(FB_NAME_RUN, "run+", 4));
    /* Length counts, not a NUL: "AB" is valid at 2 and "A\nB" at 3 is not. */
    CHECK(fb_name_valid(FB_NAME_VAR, "ABC", 2));
    CHECK(!fb_name_valid(FB_NAME_VAR, "A\nB", 3));
    CHECK(!fb_name_valid(FB_NAME_VAR, "A\0B", 3));
    CHECK(!fb_name_valid(FB_NAME_VAR, "\xc3\xa9", 2));
    memset(long_name, 'a', sizeof long_name);
    CHECK(fb_name_valid(FB_NAME_VAR, long_name, FB_NAME_MAX));
    CHECK(!fb_name_valid(FB_NAME_VAR, long_name, FB_NAME_MAX + 1));
    CHECK_CONTAINS(fb_name_rule(FB_NAME_VAR), "not starting with a digit");
    CHECK_CONTAINS(fb_name_rule(FB_NAME_TASK), "'-'");
}

static void test_reserved_names(void)
{
    CHECK(fb_name_reserved("AUTH_TOKEN") != NULL);
    CHECK(fb_name_reserved("PATH") != NULL);
    CHECK(fb_name_reserved("LD_PRELOAD") != NULL);
    CHECK(fb_name_reserved("LD_") != NULL);
    CHECK(fb_name_reserved("FLOWBUS_PASSWORD") != NULL);
    CHECK(fb_name_reserved("PYTHONPATH") != NULL);
    CHECK(fb_name_reserved("BASH_ENV") != NULL);
    /* Whole names, case-sensitive: these are ordinary variables. */
    CHECK(fb_name_reserved("PATHS") == NULL);
    CHECK(fb_name_reserved("path") == NULL);
    CHECK(fb_name_reserved("MY_PATH") == NULL);
    CHECK(fb_name_reserved("ENVIRONMENT") == NULL);
    CHECK(fb_name_reserved("OLD_PRELOAD") == NULL);
    CHECK(fb_name_reserved(NULL) == NULL);
}

static void test_barrier_token(void)
{
    char a[FB_TOPIC_MAX], b[FB_TOPIC_MAX];
    fb_topic t;

    CHECK(fb_barrier_token(a, sizeof a, "r1", "vars") > 0);
    CHECK_STR(a, "flowbus/r1/sync/vars");
    CHECK(fb_barrier_token(a, sizeof a, NULL, "client") > 0);
    CHECK(fb_barrier_token(b, sizeof b, NULL, "client") > 0);
    CHECK(strncmp(a, "flowbus/client-", 15) == 0);
    CHECK(strcmp(a + strlen(a) - 5, "/sync") == 0);
    /* Random per call, and never a topic of a run's. */
    CHECK(strcmp(a, b) != 0);
    CHECK(fb_topic_parse(a, &t) == FB_TOPIC_NONE);
    CHECK(fb_barrier_token(a, sizeof a, NULL, "a/b") == 0);
    CHECK(fb_barrier(NULL, "x", 1.0, NULL, NULL) == FB_ERR_INVALID);
}

static void test_rate(void)
{
    fb_rate r = {0, 0, 0};
    unsigned long dropped = 99;

    /* Three lines a second: the fourth and fifth are dropped, reported when the next second begins. */
    CHECK(fb_rate_allow(&r, 3, 100.0, &dropped) && dropped == 0);
    CHECK(fb_rate_allow(&r, 3, 100.1, &dropped) && dropped == 0);
    CHECK(fb_rate_allow(&r, 3, 100.2, &dropped));
    CHECK(!fb_rate_allow(&r, 3, 100.3, &dropped) && dropped == 0);
    CHECK(!fb_rate_allow(&r, 3, 100.9, NULL));
    CHECK(fb_rate_allow(&r, 3, 101.0, &dropped) && dropped == 2);
    CHECK(fb_rate_allow(&r, 3, 102.5, &dropped) && dropped == 0);
}

/* The agents' topics (docs/distributed.md) and a task's placement answer. */
static void test_agent_topics(void)
{
    char b[FB_TOPIC_MAX];
    fb_topic t;

    CHECK(fb_topic_format(b, sizeof b, FB_TOPIC_AGENT, NULL, "dev1") == strlen("flowbus/agents/dev1"));
    CHECK_STR(b, "flowbus/agents/dev1");
    fb_topic_format(b, sizeof b, FB_TOPIC_AGENT_INBOX, "ignored", "dev1");
    CHECK_STR(b, "flowbus/agents/dev1/inbox");
    fb_topic_filter(b, sizeof b, FB_TOPIC_AGENT, NULL, NULL);
    CHECK_STR(b, "flowbus/agents/+");
    CHECK(fb_topic_format(b, sizeof b, FB_TOPIC_AGENT, NULL, "a/b") == 0);
    CHECK(fb_topic_format(b, sizeof b, FB_TOPIC_AGENT, NULL, NULL) == 0);
    fb_topic_format(b, sizeof b, FB_TOPIC_TASK_PLACEMENT, "r1", "READ");
    CHECK_STR(b, "flowbus/r1/tasks/READ/placement");

    CHECK(fb_topic_parse("flowbus/agents/dev1", &t) == FB_TOPIC_AGENT);
    CHECK(t.run == NULL && fb_topic_is_name(&t, "dev1"));
    CHECK(fb_topic_parse("flowbus/agents/dev1/inbox", &t) == FB_TOPIC_AGENT_INBOX);
    CHECK(fb_topic_is_name(&t, "dev1"));
    CHECK(fb_topic_parse("flowbus/r1/tasks/READ/placement", &t) == FB_TOPIC_TASK_PLACEMENT);
    CHECK(fb_topic_is_run(&t, "r1") && fb_topic_is_name(&t, "READ"));
    /* Under agents/ nothing is a run's topic, even what would read as one. */
    CHECK(fb_topic_parse("flowbus/agents/state", &t) == FB_TOPIC_AGENT);
    CHECK(fb_topic_parse("flowbus/agents/vars/X", NULL) == FB_TOPIC_NONE);
    CHECK(fb_topic_parse("flowbus/agents/dev1/inbox/x", NULL) == FB_TOPIC_NONE);
    CHECK(fb_topic_parse("flowbus/agents/", NULL) == FB_TOPIC_NONE);
    /* So "agents" is no run id. */
    CHECK(!fb_name_valid(FB_NAME_RUN, "agents", 6));
    CHECK(fb_name_valid(FB_NAME_RUN, "agents2", 7));
    CHECK(fb_name_valid(FB_NAME_TASK, "agents", 6));
}

static void test_exit_codes(void)
{
    /* A plugin's denied status is apart from every code of the coordinator. */
    static const int codes[] = {FB_EXIT_OK,          FB_EXIT_FAILED, FB_EXIT_INVALID,
                                FB_EXIT_END_SKIPPED, FB_EXIT_BROKER, FB_EXIT_INTERRUPTED};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        CHECK(codes[i] != FB_EXIT_DENIED);
}

int main(void)
{
    RUN(test_format_each_kind);
    RUN(test_format_refuses);
    RUN(test_filters);
    RUN(test_parse_round_trip);
    RUN(test_parse_refuses);
    RUN(test_states);
    RUN(test_run_states);
    RUN(test_control);
    RUN(test_values);
    RUN(test_names);
    RUN(test_reserved_names);
    RUN(test_barrier_token);
    RUN(test_rate);
    RUN(test_exit_codes);
    RUN(test_agent_topics);
    return check_summary();
}
