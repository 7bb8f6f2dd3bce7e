/*
 * test_view.c - unit tests of the run view (core/view.h) and the command
 * line's did-you-mean (core/suggest.h): how retained messages become runs,
 * tasks and variables, in which order, what a deleted topic removes, that a
 * secret's value is never held, and that a task's JSON is written back
 * exactly as its message came (what `flowbus status --json` printed when the
 * view was an untyped JSON object).
 */
#include "check.h"
#include "suggest.h"
#include "view.h"

#include <stdlib.h>
#include <string.h>

static const char WORKFLOW[] =
    "{\"name\":\"w\",\"path\":\"/tmp/w.yaml\",\"mode\":\"oneshot\",\"started\":100.5,"
    "\"env\":{\"GREETING\":\"hi\",\"KEY\":\"<secret>\",\"AUTH_TOKEN\":\"<secret>\"},"
    "\"tasks\":[{\"name\":\"START\",\"inputs\":[],\"outputs\":[\"TRUE\"]},"
    "{\"name\":\"WORK\",\"inputs\":[\"TRUE\",\"KEY\"],\"outputs\":[\"OUT\"]},"
    "{\"name\":\"END\",\"inputs\":[\"OUT\"],\"outputs\":[]}]}";

static enum view_change feed(struct view *vw, const char *topic, const char *payload,
                             struct view_event *ev)
{
    return view__feed(vw, topic, payload, strlen(payload), ev);
}

static const char *task_name(const struct run_view *rv, size_t i)
{
    return i < rv->n_tasks ? rv->tasks[i].key.name : "(none)";
}

static void test_runs_exist_by_record_or_workflow(void)
{
    struct view *vw = view__new();
    struct run_view *rv;

    CHECK(vw != NULL);
    /* A task's state alone does not make a run the broker has. */
    CHECK(feed(vw, "flowbus/r1/tasks/A/state", "{\"state\":\"running\"}", NULL) == VIEW_TASK);
    CHECK(view__run(vw, "r1") == NULL);
    CHECK(view__count(vw) == 1);
    CHECK(
        feed(vw, "flowbus/r1/state",
             "{\"state\":\"running\",\"at\":5,\"started\":1,\"paused\":true,\"mode\":\"reactive\"}",
             NULL) == VIEW_RUN);
    rv = view__run(vw, "r1");
    CHECK(rv != NULL);
    CHECK(rv->state == FB_RUN_RUNNING && rv->paused && view__reactive(rv));
    CHECK_STR(view__shown_state(rv), "paused");
    CHECK(view__duration(rv, 11.0) == 10.0);
    /* The coordinator's Last Will. */
    CHECK(feed(vw, "flowbus/r1/state",
               "{\"state\":\"lost\",\"at\":7,\"started\":1,\"exit\":null,\"error\":\"gone\"}",
               NULL) == VIEW_RUN);
    CHECK(rv->state == FB_RUN_LOST && !rv->paused && !rv->has_exit);
    CHECK_STR(view__shown_state(rv), "lost");
    CHECK_STR(rv->error, "gone");
    CHECK(view__duration(rv, 11.0) == -1);
    /* A deleted record: the run is gone unless its workflow is there. */
    CHECK(view__feed(vw, "flowbus/r1/state", "", 0, NULL) == VIEW_RUN);
    CHECK(view__run(vw, "r1") == NULL);
    CHECK_STR(view__state_text(rv), "unknown");
    view__free(vw);
}

static void test_task_order_workflow_first(void)
{
    struct view *vw = view__new();
    struct run_view *rv;
    struct view_event ev;

    /* States before the workflow, as a broker may send them. */
    CHECK(feed(vw, "flowbus/r/tasks/EXTRA/state", "{\"state\":\"done\",\"at\":3}", &ev) ==
          VIEW_TASK);
    CHECK_STR(ev.task, "EXTRA");
    CHECK(feed(vw, "flowbus/r/tasks/END/state", "{\"state\":\"waiting\"}", NULL) == VIEW_TASK);
    CHECK(feed(vw, "flowbus/r/workflow", WORKFLOW, NULL) == VIEW_OTHER);
    rv = view__run(vw, "r");
    CHECK(rv != NULL && rv->n_tasks == 4 && rv->n_workflow_tasks == 3);
    CHECK_STR(task_name(rv, 0), "START");
    CHECK_STR(task_name(rv, 1), "WORK");
    CHECK_STR(task_name(rv, 2), "END");
    CHECK_STR(task_name(rv, 3), "EXTRA");
    CHECK(!rv->tasks[0].reported && rv->tasks[2].reported);
    CHECK_STR(rv->workflow, "w");
    CHECK_STR(rv->path, "/tmp/w.yaml");
    CHECK(view__started(rv) == 100.5 && !view__reactive(rv));
    /* A task outside the workflow that goes and comes back comes last. */
    CHECK(feed(vw, "flowbus/r/tasks/OTHER/state", "{\"state\":\"running\"}", NULL) == VIEW_TASK);
    CHECK(view__feed(vw, "flowbus/r/tasks/EXTRA/state", "", 0, NULL) == VIEW_TASK);
    CHECK(rv->n_tasks == 4);
    CHECK_STR(task_name(rv, 3), "OTHER");
    CHECK(feed(vw, "flowbus/r/tasks/EXTRA/state", "{\"state\":\"failed\"}", NULL) == VIEW_TASK);
    CHECK_STR(task_name(rv, 4), "EXTRA");
    /* A workflow task whose state is deleted stays, without a state. */
    CHECK(view__feed(vw, "flowbus/r/tasks/END/state", "", 0, NULL) == VIEW_TASK);
    CHECK(rv->n_tasks == 5 && !rv->tasks[2].reported);
    /* Without the workflow, only the tasks that reported remain, as they came. */
    CHECK(view__feed(vw, "flowbus/r/workflow", "", 0, NULL) == VIEW_OTHER);
    CHECK(rv->n_tasks == 2 && rv->n_workflow_tasks == 0);
    CHECK_STR(task_name(rv, 0), "OTHER");
    CHECK_STR(task_name(rv, 1), "EXTRA");
    view__free(vw);
}

static void test_variables_and_secrets(void)
{
    struct view *vw = view__new();
    struct run_view *rv;
    const struct view_var *v;

    /* A secret's value seen before the workflow is dropped once it says so. */
    CHECK(feed(vw, "flowbus/r/vars/KEY", "leaked", NULL) == VIEW_OTHER);
    CHECK(feed(vw, "flowbus/r/vars/AUTH_TOKEN", "tok", NULL) == VIEW_NONE);
    CHECK(feed(vw, "flowbus/r/workflow", WORKFLOW, NULL) == VIEW_OTHER);
    rv = view__run(vw, "r");
    CHECK(rv->n_workflow_vars == 5);
    CHECK_STR(rv->vars[0].key.name, "GREETING");
    CHECK_STR(rv->vars[1].key.name, "KEY");
    CHECK_STR(rv->vars[2].key.name, "AUTH_TOKEN");
    CHECK_STR(rv->vars[3].key.name, "TRUE");
    CHECK_STR(rv->vars[4].key.name, "OUT");
    v = view__var(rv, "KEY");
    CHECK(v && v->secret && v->value == NULL);
    CHECK(view__var(rv, "AUTH_TOKEN")->secret);
    CHECK(feed(vw, "flowbus/r/vars/KEY", "again", NULL) == VIEW_NONE);
    CHECK(view__var(rv, "KEY")->value == NULL);
    /* Values: the empty one is one NUL byte; a deleted one is unset. */
    CHECK(view__feed(vw, "flowbus/r/vars/OUT", "\0", 1, NULL) == VIEW_OTHER);
    v = view__var(rv, "OUT");
    CHECK(v->value && v->value[0] == '\0' && v->value_len == 0);
    CHECK(view__feed(vw, "flowbus/r/vars/TRUE", "a\0b", 3, NULL) == VIEW_OTHER);
    CHECK(view__var(rv, "TRUE")->value_len == 3);
    CHECK(view__feed(vw, "flowbus/r/vars/TRUE", "", 0, NULL) == VIEW_OTHER);
    CHECK(view__var(rv, "TRUE")->value == NULL);
    /* A variable the workflow does not name is kept while it is set. */
    CHECK(feed(vw, "flowbus/r/vars/STRAY", "1", NULL) == VIEW_OTHER);
    CHECK(rv->n_vars == 6 && view__var(rv, "STRAY")->key.wf_pos == VIEW_NOT_IN_WORKFLOW);
    CHECK(view__feed(vw, "flowbus/r/vars/STRAY", "", 0, NULL) == VIEW_OTHER);
    CHECK(rv->n_vars == 5 && view__var(rv, "STRAY") == NULL);
    view__free(vw);
}

static void test_malformed_and_foreign_messages(void)
{
    struct view *vw = view__new();
    struct run_view *rv;

    CHECK(feed(vw, "flowbus/r/state", "{\"state\":\"done\",\"at\":2,\"exit\":0}", NULL) ==
          VIEW_RUN);
    rv = view__run(vw, "r");
    /* Not an object: the record stays as it was, rather than guessed at. */
    CHECK(feed(vw, "flowbus/r/state", "[1]", NULL) == VIEW_NONE);
    CHECK(rv->state == FB_RUN_DONE && rv->has_exit && rv->exit_code == 0);
    CHECK(feed(vw, "flowbus/r/workflow", "nope", NULL) == VIEW_NONE);
    CHECK(feed(vw, "flowbus/r/tasks/A/state", "{\"state\":\"dancing\"}", NULL) == VIEW_NONE);
    CHECK(feed(vw, "flowbus/r/tasks/A/state", "{}", NULL) == VIEW_NONE);
    CHECK(rv->n_tasks == 0);
    CHECK(feed(vw, "flowbus/r/control", "{\"cmd\":\"dance\"}", NULL) == VIEW_NONE);
    CHECK(feed(vw, "flowbus/r/control", "{\"cmd\":\"pause\"}", NULL) == VIEW_OTHER);
    CHECK(rv->control == FB_CONTROL_PAUSE);
    CHECK(feed(vw, "flowbus/r/sync/x", "", NULL) == VIEW_NONE);
    CHECK(feed(vw, "other/r/state", "{\"state\":\"done\"}", NULL) == VIEW_NONE);
    CHECK(feed(vw, "flowbus/r/tasks/A/state/x", "{\"state\":\"done\"}", NULL) == VIEW_NONE);
    CHECK(feed(vw, "flowbus/client-1-abcd/sync", "", NULL) == VIEW_NONE);
    CHECK(view__count(vw) == 1);
    view__free(vw);
}

/* A task's JSON is its message re-dumped: what the untyped view printed. */
static void check_round_trip(const char *payload)
{
    struct view *vw = view__new();
    json_t *parsed = json_loads(payload, 0, NULL), *typed;
    char *want = json_dumps(parsed, JSON_COMPACT), *got;

    feed(vw, "flowbus/r/tasks/T/state", payload, NULL);
    CHECK(view__nth(vw, 0) != NULL && view__nth(vw, 0)->n_tasks == 1);
    typed = view__task_json(view__task(view__nth(vw, 0), "T"));
    got = json_dumps(typed, JSON_COMPACT);
    CHECK_STR(got, want);
    free(want);
    free(got);
    json_decref(parsed);
    json_decref(typed);
    view__free(vw);
}

static void test_task_json_is_the_message(void)
{
    /* The SDK's (one-shot, reactive, a pool's worker), its Last Wills, the
     * coordinator's, the example plugins' (Python, shell). */
    check_round_trip("{\"state\":\"running\",\"attempt\":1,\"pid\":4242,\"at\":1718000000.123456,"
                     "\"started\":1718000000.123456,\"exit\":null,\"signal\":null,\"error\":null}");
    check_round_trip("{\"state\":\"waiting\",\"attempt\":1,\"pid\":7,\"at\":1718000001.5,"
                     "\"started\":null,\"exit\":null,\"signal\":null,\"error\":null,"
                     "\"activation\":3,\"result\":\"failed\",\"queued\":2,\"dropped\":0,"
                     "\"worker\":1}");
    check_round_trip("{\"state\":\"waiting\",\"attempt\":1,\"pid\":7,\"at\":1718000001.5,"
                     "\"started\":null,\"exit\":null,\"signal\":null,\"error\":null,"
                     "\"activation\":0,\"result\":null,\"queued\":0,\"dropped\":0}");
    check_round_trip("{\"state\":\"crashed\",\"attempt\":2,\"pid\":99,\"at\":1718000002.000001,"
                     "\"exit\":null,\"error\":\"connection lost\"}");
    check_round_trip("{\"state\":\"crashed\",\"attempt\":1,\"pid\":99,\"at\":1718000002.25,"
                     "\"exit\":null,\"error\":\"connection lost\",\"worker\":2}");
    check_round_trip("{\"state\":\"timeout\",\"attempt\":1,\"pid\":null,\"at\":1718000003.0,"
                     "\"started\":1718000002.5,\"exit\":null,\"signal\":9,"
                     "\"error\":\"timed out after 0.5 s\",\"activation\":1,\"result\":\"done\"}");
    check_round_trip("{\"state\":\"done\",\"attempt\":1,\"pid\":5,\"at\":1718000004,"
                     "\"started\":1718000003,\"exit\":0,\"signal\":null,\"error\":null}");
    check_round_trip("{\"state\":\"crashed\",\"attempt\":1,\"pid\":5,\"at\":1718000005,"
                     "\"error\":\"connection lost\"}");
}

static void test_status_json_and_counts(void)
{
    struct view *vw = view__new();
    struct run_view *rv, **list;
    size_t counts[FB_STATE_COUNT], n;
    enum fb_state seen[FB_STATE_COUNT];
    json_t *j;
    char *s;

    feed(vw, "flowbus/b/state", "{\"state\":\"done\",\"at\":30,\"started\":20,\"exit\":0}", NULL);
    feed(vw, "flowbus/a/workflow", WORKFLOW, NULL);
    feed(vw, "flowbus/a/state", "{\"state\":\"failed\",\"at\":110.5,\"started\":100.5,\"exit\":1}",
         NULL);
    feed(vw, "flowbus/a/tasks/WORK/state",
         "{\"state\":\"failed\",\"attempt\":1,\"pid\":3,\"at\":105,\"started\":101,\"exit\":2,"
         "\"signal\":null,\"error\":\"boom\"}",
         NULL);
    feed(vw, "flowbus/a/tasks/START/state", "{\"state\":\"done\",\"at\":101}", NULL);
    rv = view__run(vw, "a");
    CHECK(view__count_states(rv, counts, seen) == 3);
    CHECK(seen[0] == FB_STATE_DONE && seen[1] == FB_STATE_FAILED && seen[2] == FB_STATE_PENDING);
    CHECK(counts[FB_STATE_PENDING] == 1 && counts[FB_STATE_DONE] == 1);
    CHECK(view__task_duration(view__task(rv, "WORK"), 1e9) == 4.0);
    CHECK(view__task_duration(view__task(rv, "END"), 1e9) == -1);
    j = view__run_json(rv, 1e9);
    s = json_dumps(j, JSON_COMPACT);
    CHECK_STR(s, "{\"run_id\":\"a\",\"workflow\":\"w\",\"state\":\"failed\",\"paused\":false,"
                 "\"started\":100.5,\"at\":110.5,\"duration\":10.0,\"exit\":1,"
                 "\"file\":\"/tmp/w.yaml\",\"mode\":\"oneshot\",\"tasks\":["
                 "{\"state\":\"done\",\"at\":101,\"name\":\"START\",\"duration\":null},"
                 "{\"state\":\"failed\",\"attempt\":1,\"pid\":3,\"at\":105,\"started\":101,"
                 "\"exit\":2,\"signal\":null,\"error\":\"boom\",\"name\":\"WORK\","
                 "\"duration\":4.0},"
                 "{\"state\":null,\"name\":\"END\",\"duration\":null}]}");
    free(s);
    json_decref(j);
    /* The list: the runs on the broker, the oldest first. */
    list = view__list(vw, &n);
    CHECK(n == 2 && list && strcmp(list[0]->run_id, "b") == 0);
    j = view__list_json(list, n, "tcp://h:1", 1e9);
    s = json_dumps(j, JSON_COMPACT);
    CHECK_STR(s, "{\"broker\":\"tcp://h:1\",\"runs\":["
                 "{\"run_id\":\"b\",\"workflow\":null,\"state\":\"done\",\"paused\":false,"
                 "\"started\":20.0,\"at\":30.0,\"duration\":10.0,\"exit\":0,\"file\":null,"
                 "\"mode\":\"oneshot\",\"tasks\":{}},"
                 "{\"run_id\":\"a\",\"workflow\":\"w\",\"state\":\"failed\",\"paused\":false,"
                 "\"started\":100.5,\"at\":110.5,\"duration\":10.0,\"exit\":1,"
                 "\"file\":\"/tmp/w.yaml\",\"mode\":\"oneshot\","
                 "\"tasks\":{\"done\":1,\"failed\":1,\"pending\":1}}]}");
    free(s);
    json_decref(j);
    free(list);
    view__free(vw);
}

/* Where tasks run: an agent's answer for a placed task, else the owner record's host. */
static void test_task_hosts(void)
{
    struct view *vw = view__new();
    struct run_view *rv;
    const char *agent = "x";
    json_t *j;

    feed(vw, "flowbus/r1/workflow", WORKFLOW, NULL);
    feed(vw, "flowbus/r1/owner", "{\"id\":\"o\",\"host\":\"hub\"}", NULL);
    CHECK(feed(vw, "flowbus/r1/tasks/START/placement",
               "{\"state\":\"started\",\"agent\":\"dev1\",\"host\":\"box1\"}",
               NULL) == VIEW_OTHER);
    feed(vw, "flowbus/r1/tasks/WORK/placement",
         "{\"state\":\"refused\",\"agent\":\"dev2\",\"host\":\"box2\"}", NULL);
    /* The agents' records are no run's: they make no run appear. */
    CHECK(feed(vw, "flowbus/agents/dev1", "{\"state\":\"online\"}", NULL) == VIEW_NONE);
    CHECK(view__run(vw, "agents") == NULL);
    rv = view__run(vw, "r1");
    CHECK(rv != NULL);
    if (!rv)
        goto out;
    CHECK_STR(view__task_host(rv, "START", &agent), "box1");
    CHECK_STR(agent, "dev1");
    /* A refusal says where the task did not go. */
    CHECK_STR(view__task_host(rv, "WORK", &agent), "hub");
    CHECK(agent == NULL);
    j = view__run_json(rv, 0);
    CHECK_STR(json_string_value(json_object_get(json_array_get(json_object_get(j, "tasks"), 0),
                                                "agent")),
              "dev1");
    json_decref(j);
out:
    view__free(vw);
}

static void test_suggest(void)
{
    static const char *const names[] = {"START", "WORK", "END", "GREETING"};
    char buf[256];

    CHECK_STR(suggest__closest("GREETNG", names, 4, 2), "GREETING");
    CHECK_STR(suggest__closest("work", names, 4, 1), "WORK");
    CHECK(suggest__closest("QQQQQQ", names, 4, 2) == NULL);
    suggest__hint(buf, sizeof buf, "ENDD", names, 4);
    CHECK_STR(buf, " (did you mean 'END'?)");
    /* A short word gets one edit only. */
    suggest__hint(buf, sizeof buf, "EX", names, 4);
    CHECK_STR(buf, " (it has: START, WORK, END, GREETING)");
    suggest__hint(buf, sizeof buf, "X", names, 0);
    CHECK_STR(buf, " (it has none)");
}

int main(void)
{
    RUN(test_runs_exist_by_record_or_workflow);
    RUN(test_task_order_workflow_first);
    RUN(test_variables_and_secrets);
    RUN(test_malformed_and_foreign_messages);
    RUN(test_task_json_is_the_message);
    RUN(test_status_json_and_counts);
    RUN(test_suggest);
    RUN(test_task_hosts);
    return check_summary();
}
