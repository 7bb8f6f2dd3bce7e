/*
 * test_task_env.c - the task environment (sdk/src/task/task_env.c): every
 * FLOWBUS_* variable a task reads, its default, its bounds and the message
 * that names it when it is wrong; and the comma-list splitter every list
 * goes through (sdk/src/names.c).
 *
 * task_env.c is pure, so it is compiled into this program with names.c and
 * err.c (their internal helpers are hidden in libflowbus); the name rules
 * come from libflowbus (fb_name_valid). Each test starts from an empty
 * environment (clearenv) with just the variables it is about.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "internal.h"
#include "task_env.h"

static struct task_env env;
static char err[512];

/* An empty environment with what every task gets: a run, a name and a broker. */
static void base(void)
{
    task_env__free(&env);
    clearenv();
    setenv("FLOWBUS_RUN_ID", "r-1", 1);
    setenv("FLOWBUS_TASK", "T1", 1);
    setenv("FLOWBUS_BROKER", "tcp://127.0.0.1:1883", 1);
}

/* Reads the environment; err holds the message (or "" on success). */
static enum fb_err read_env(void)
{
    err[0] = '\0';
    task_env__free(&env);
    return task_env__read(&env, err, sizeof err);
}

/* name=value makes the read fail with FB_ERR_ENV and exactly message. */
#define CHECK_REFUSED(name, value, message)                                                        \
    do {                                                                                           \
        setenv((name), (value), 1);                                                                \
        CHECK(read_env() == FB_ERR_ENV);                                                           \
        CHECK_STR(err, (message));                                                                 \
    } while (0)

/* name=value is accepted. */
#define CHECK_ACCEPTED(name, value)                                                                \
    do {                                                                                           \
        setenv((name), (value), 1);                                                                \
        CHECK(read_env() == FB_OK);                                                                \
        CHECK_STR(err, "");                                                                        \
    } while (0)

static void test_defaults(void)
{
    base();
    CHECK(read_env() == FB_OK);
    CHECK_STR(env.run_id, "r-1");
    CHECK_STR(env.name, "T1");
    CHECK(env.attempt == 1);
    CHECK(env.max_value == 262144);
    CHECK(env.max_value == TASK_ENV_MAX_VALUE);
    CHECK(env.reconnect_max == 30.0);
    CHECK(env.expiry == 0);
    CHECK(env.timeout == -1);
    CHECK(env.n_inputs == 0 && env.n_outputs == 0 && env.n_deps == 0);
    CHECK(env.reactive == 0);
    CHECK(env.queue == 0 && env.workers == 0 && env.worker == 0 && env.n_triggers == 0);
    CHECK_STR(env.params_json, "{}");
    CHECK(env.n_params == 0);
    CHECK_STR(env.broker, "tcp://127.0.0.1:1883");
    CHECK(env.username == NULL && env.password == NULL);
    CHECK(env.tls_ca == NULL && env.tls_cert == NULL && env.tls_key == NULL);
}

static void test_required(void)
{
    base();
    unsetenv("FLOWBUS_RUN_ID");
    CHECK(read_env() == FB_ERR_ENV);
    CHECK_STR(err, "FLOWBUS_RUN_ID is not set (this program is meant to be started by flowbus)");
    CHECK_REFUSED("FLOWBUS_RUN_ID", "",
                  "FLOWBUS_RUN_ID is not set (this program is meant to be started by flowbus)");
    base();
    unsetenv("FLOWBUS_TASK");
    CHECK(read_env() == FB_ERR_ENV);
    CHECK_STR(err, "FLOWBUS_TASK is not set (this program is meant to be started by flowbus)");
    base();
    unsetenv("FLOWBUS_BROKER");
    CHECK(read_env() == FB_ERR_ENV);
    CHECK_STR(err, "FLOWBUS_BROKER is not set (this program is meant to be started by flowbus)");
    CHECK_REFUSED("FLOWBUS_BROKER", "",
                  "FLOWBUS_BROKER is not set (this program is meant to be started by flowbus)");
}

static void test_run_id(void)
{
    char long_id[66];

    base();
    CHECK_ACCEPTED("FLOWBUS_RUN_ID", "-leading-dash_is-fine-0");
    CHECK_REFUSED("FLOWBUS_RUN_ID", "a/b",
                  "FLOWBUS_RUN_ID 'a/b' is malformed (use letters, digits, '_' and '-', 1 to 64 "
                  "characters)");
    CHECK_REFUSED("FLOWBUS_RUN_ID", "a+b",
                  "FLOWBUS_RUN_ID 'a+b' is malformed (use letters, digits, '_' and '-', 1 to 64 "
                  "characters)");
    memset(long_id, 'r', 64);
    long_id[64] = '\0';
    CHECK_ACCEPTED("FLOWBUS_RUN_ID", long_id);
    long_id[64] = 'r';
    long_id[65] = '\0';
    setenv("FLOWBUS_RUN_ID", long_id, 1);
    CHECK(read_env() == FB_ERR_ENV);
    CHECK_CONTAINS(err, "is malformed (use letters, digits, '_' and '-', 1 to 64 characters)");
}

static void test_task_name(void)
{
    base();
    CHECK_ACCEPTED("FLOWBUS_TASK", "t-1_X");
    CHECK_REFUSED("FLOWBUS_TASK", "-t",
                  "FLOWBUS_TASK '-t' is malformed (use letters, digits, '_' and '-', not starting "
                  "with '-', at most 64 characters)");
    CHECK_REFUSED("FLOWBUS_TASK", "a b",
                  "FLOWBUS_TASK 'a b' is malformed (use letters, digits, '_' and '-', not starting "
                  "with '-', at most 64 characters)");
    /* The run id is checked first. */
    setenv("FLOWBUS_RUN_ID", "x/y", 1);
    CHECK(read_env() == FB_ERR_ENV);
    CHECK_CONTAINS(err, "FLOWBUS_RUN_ID 'x/y'");
}

static void test_attempt(void)
{
    base();
    CHECK_ACCEPTED("FLOWBUS_ATTEMPT", "3");
    CHECK(env.attempt == 3);
    CHECK_ACCEPTED("FLOWBUS_ATTEMPT", "2147483647");
    CHECK(env.attempt == INT_MAX);
    CHECK_ACCEPTED("FLOWBUS_ATTEMPT", "");
    CHECK(env.attempt == 1);
    CHECK_REFUSED("FLOWBUS_ATTEMPT", "0", "FLOWBUS_ATTEMPT '0' is not a positive integer");
    CHECK_REFUSED("FLOWBUS_ATTEMPT", "-2", "FLOWBUS_ATTEMPT '-2' is not a positive integer");
    CHECK_REFUSED("FLOWBUS_ATTEMPT", "1.5", "FLOWBUS_ATTEMPT '1.5' is not a positive integer");
    CHECK_REFUSED("FLOWBUS_ATTEMPT", "x", "FLOWBUS_ATTEMPT 'x' is not a positive integer");
    CHECK_REFUSED("FLOWBUS_ATTEMPT", "2147483648",
                  "FLOWBUS_ATTEMPT '2147483648' is not a positive integer");
    CHECK_REFUSED("FLOWBUS_ATTEMPT", "99999999999999999999",
                  "FLOWBUS_ATTEMPT '99999999999999999999' is not a positive integer");
}

static void test_max_value(void)
{
    base();
    CHECK_ACCEPTED("FLOWBUS_MAX_VALUE", "1");
    CHECK(env.max_value == 1);
    CHECK_ACCEPTED("FLOWBUS_MAX_VALUE", "2147483647");
    CHECK(env.max_value == (size_t)INT_MAX);
    CHECK_REFUSED("FLOWBUS_MAX_VALUE", "0",
                  "FLOWBUS_MAX_VALUE '0' is not a positive number of bytes");
    CHECK_REFUSED("FLOWBUS_MAX_VALUE", "2147483648",
                  "FLOWBUS_MAX_VALUE '2147483648' is not a positive number of bytes");
    CHECK_REFUSED("FLOWBUS_MAX_VALUE", "1k",
                  "FLOWBUS_MAX_VALUE '1k' is not a positive number of bytes");
}

static void test_reconnect_max(void)
{
    base();
    CHECK_ACCEPTED("FLOWBUS_RECONNECT_MAX", "0");
    CHECK(env.reconnect_max == 0);
    CHECK_ACCEPTED("FLOWBUS_RECONNECT_MAX", "1.5");
    CHECK(env.reconnect_max == 1.5);
    CHECK_ACCEPTED("FLOWBUS_RECONNECT_MAX", "86400");
    CHECK(env.reconnect_max == 86400);
    CHECK_REFUSED("FLOWBUS_RECONNECT_MAX", "86400.5",
                  "FLOWBUS_RECONNECT_MAX '86400.5' is not a number of seconds (0 to 86400)");
    CHECK_REFUSED("FLOWBUS_RECONNECT_MAX", "-1",
                  "FLOWBUS_RECONNECT_MAX '-1' is not a number of seconds (0 to 86400)");
    CHECK_REFUSED("FLOWBUS_RECONNECT_MAX", "nan",
                  "FLOWBUS_RECONNECT_MAX 'nan' is not a number of seconds (0 to 86400)");
    CHECK_REFUSED("FLOWBUS_RECONNECT_MAX", "5s",
                  "FLOWBUS_RECONNECT_MAX '5s' is not a number of seconds (0 to 86400)");
}

static void test_expiry(void)
{
    base();
    CHECK_ACCEPTED("FLOWBUS_EXPIRY", "0");
    CHECK(env.expiry == 0);
    CHECK_ACCEPTED("FLOWBUS_EXPIRY", "4294967295");
    CHECK(env.expiry == UINT32_MAX);
    CHECK_REFUSED("FLOWBUS_EXPIRY", "4294967296",
                  "FLOWBUS_EXPIRY '4294967296' is not a number of seconds (0: none)");
    CHECK_REFUSED("FLOWBUS_EXPIRY", "-1",
                  "FLOWBUS_EXPIRY '-1' is not a number of seconds (0: none)");
    CHECK_REFUSED("FLOWBUS_EXPIRY", "1.5",
                  "FLOWBUS_EXPIRY '1.5' is not a number of seconds (0: none)");
}

static void test_timeout(void)
{
    base();
    CHECK_ACCEPTED("FLOWBUS_TIMEOUT", "0");
    CHECK(env.timeout == 0);
    CHECK_ACCEPTED("FLOWBUS_TIMEOUT", "2.5");
    CHECK(env.timeout == 2.5);
    CHECK_REFUSED("FLOWBUS_TIMEOUT", "-1", "FLOWBUS_TIMEOUT '-1' is not a number of seconds");
    CHECK_REFUSED("FLOWBUS_TIMEOUT", "soon", "FLOWBUS_TIMEOUT 'soon' is not a number of seconds");
    CHECK_REFUSED("FLOWBUS_TIMEOUT", "nan", "FLOWBUS_TIMEOUT 'nan' is not a number of seconds");
}

static void test_lists(void)
{
    base();
    setenv("FLOWBUS_INPUTS", " A , B,,A ,\tC\t", 1);
    setenv("FLOWBUS_OUTPUTS", "X,Y_2", 1);
    setenv("FLOWBUS_DEPENDS", "t-1, T2,t-1", 1);
    CHECK(read_env() == FB_OK);
    CHECK(env.n_inputs == 3);
    if (env.n_inputs == 3) {
        CHECK_STR(env.inputs[0].name, "A");
        CHECK_STR(env.inputs[1].name, "B");
        CHECK_STR(env.inputs[2].name, "C");
        CHECK(!env.inputs[0].secret && env.inputs[0].value == NULL && !env.inputs[0].trigger);
    }
    CHECK(env.n_outputs == 2);
    if (env.n_outputs == 2) {
        CHECK_STR(env.outputs[0], "X");
        CHECK_STR(env.outputs[1], "Y_2");
    }
    CHECK(env.n_deps == 2);
    if (env.n_deps == 2) {
        CHECK_STR(env.deps[0], "t-1");
        CHECK_STR(env.deps[1], "T2");
    }
    CHECK_ACCEPTED("FLOWBUS_INPUTS", " , ,");
    CHECK(env.n_inputs == 0);
    CHECK_REFUSED("FLOWBUS_INPUTS", "A,1B", "FLOWBUS_INPUTS: '1B' is not a valid name");
    CHECK_REFUSED("FLOWBUS_INPUTS", "A B", "FLOWBUS_INPUTS: 'A B' is not a valid name");
    unsetenv("FLOWBUS_INPUTS");
    CHECK_REFUSED("FLOWBUS_OUTPUTS", "X-Y", "FLOWBUS_OUTPUTS: 'X-Y' is not a valid name");
    unsetenv("FLOWBUS_OUTPUTS");
    CHECK_REFUSED("FLOWBUS_SECRETS", "a.b", "FLOWBUS_SECRETS: 'a.b' is not a valid name");
    unsetenv("FLOWBUS_SECRETS");
    CHECK_REFUSED("FLOWBUS_DEPENDS", "a.b", "FLOWBUS_DEPENDS: 'a.b' is not a valid name");
    CHECK_REFUSED("FLOWBUS_DEPENDS", "-t", "FLOWBUS_DEPENDS: '-t' is not a valid name");
}

static void test_name_length(void)
{
    char name[66];

    base();
    memset(name, 'V', 64);
    name[64] = '\0';
    CHECK_ACCEPTED("FLOWBUS_INPUTS", name);
    CHECK(env.n_inputs == 1);
    name[64] = 'V';
    name[65] = '\0';
    setenv("FLOWBUS_INPUTS", name, 1);
    CHECK(read_env() == FB_ERR_ENV);
    CHECK_CONTAINS(err, "FLOWBUS_INPUTS: 'VVVV");
    CHECK_CONTAINS(err, "' is not a valid name");
}

static void test_secrets(void)
{
    base();
    setenv("FLOWBUS_INPUTS", "A,KEY", 1);
    setenv("FLOWBUS_SECRETS", "KEY,TOKEN", 1);
    setenv("KEY", "k-value", 1);
    setenv("TOKEN", "", 1);
    CHECK(read_env() == FB_OK);
    /* A secret already among the inputs stays in its place; another is added at the end. */
    CHECK(env.n_inputs == 3);
    if (env.n_inputs == 3) {
        CHECK_STR(env.inputs[0].name, "A");
        CHECK(!env.inputs[0].secret && env.inputs[0].value == NULL);
        CHECK_STR(env.inputs[1].name, "KEY");
        CHECK(env.inputs[1].secret);
        CHECK_STR(env.inputs[1].value, "k-value");
        CHECK_STR(env.inputs[2].name, "TOKEN");
        CHECK(env.inputs[2].secret);
        CHECK_STR(env.inputs[2].value, "");
    }
    unsetenv("TOKEN");
    CHECK(read_env() == FB_ERR_ENV);
    CHECK_STR(err,
              "secret input TOKEN is listed in FLOWBUS_SECRETS but not set in the environment");
}

static void test_mode(void)
{
    base();
    CHECK_ACCEPTED("FLOWBUS_MODE", "");
    CHECK(!env.reactive);
    CHECK_ACCEPTED("FLOWBUS_MODE", "oneshot");
    CHECK(!env.reactive);
    /* The reactive settings are not read in one-shot mode. */
    setenv("FLOWBUS_QUEUE", "lots", 1);
    setenv("FLOWBUS_TRIGGERS", "NOT_AN_INPUT", 1);
    CHECK_ACCEPTED("FLOWBUS_MODE", "oneshot");
    CHECK(env.queue == 0 && env.workers == 0 && env.worker == 0);
    unsetenv("FLOWBUS_QUEUE");
    unsetenv("FLOWBUS_TRIGGERS");
    CHECK_REFUSED("FLOWBUS_MODE", "Reactive",
                  "FLOWBUS_MODE 'Reactive' is not 'oneshot' or 'reactive'");
    CHECK_ACCEPTED("FLOWBUS_MODE", "reactive");
    CHECK(env.reactive);
    CHECK(env.queue == 100 && env.queue == TASK_ENV_QUEUE);
    CHECK(env.workers == 1 && env.worker == 1);
    CHECK(env.n_triggers == 0);
}

static void test_queue_and_workers(void)
{
    base();
    setenv("FLOWBUS_MODE", "reactive", 1);
    CHECK_ACCEPTED("FLOWBUS_QUEUE", "1");
    CHECK(env.queue == 1);
    CHECK_ACCEPTED("FLOWBUS_QUEUE", "1000000");
    CHECK(env.queue == TASK_ENV_MAX_QUEUE);
    CHECK_REFUSED("FLOWBUS_QUEUE", "1000001",
                  "FLOWBUS_QUEUE '1000001' is not a whole number from 1 to 1000000");
    CHECK_REFUSED("FLOWBUS_QUEUE", "0",
                  "FLOWBUS_QUEUE '0' is not a whole number from 1 to 1000000");
    CHECK_REFUSED("FLOWBUS_QUEUE", "1e3",
                  "FLOWBUS_QUEUE '1e3' is not a whole number from 1 to 1000000");
    unsetenv("FLOWBUS_QUEUE");
    /* A full queue blocks unless the task chose to drop (FLOWBUS_OVERFLOW). */
    CHECK(read_env() == FB_OK && env.overflow == TASK_OVERFLOW_BLOCK);
    CHECK_ACCEPTED("FLOWBUS_OVERFLOW", "");
    CHECK(env.overflow == TASK_OVERFLOW_BLOCK);
    CHECK_ACCEPTED("FLOWBUS_OVERFLOW", "drop-oldest");
    CHECK(env.overflow == TASK_OVERFLOW_DROP_OLDEST);
    CHECK_ACCEPTED("FLOWBUS_OVERFLOW", "drop-newest");
    CHECK(env.overflow == TASK_OVERFLOW_DROP_NEWEST);
    CHECK_ACCEPTED("FLOWBUS_OVERFLOW", "block");
    CHECK(env.overflow == TASK_OVERFLOW_BLOCK);
    CHECK_REFUSED("FLOWBUS_OVERFLOW", "drop",
                  "FLOWBUS_OVERFLOW 'drop' is not 'block', 'drop-oldest' or 'drop-newest'");
    unsetenv("FLOWBUS_OVERFLOW");
    CHECK_ACCEPTED("FLOWBUS_WORKERS", "1024");
    CHECK(env.workers == TASK_ENV_MAX_WORKERS && env.worker == 1);
    CHECK_REFUSED("FLOWBUS_WORKERS", "1025",
                  "FLOWBUS_WORKERS '1025' is not a whole number from 1 to 1024");
    CHECK_REFUSED("FLOWBUS_WORKERS", "0",
                  "FLOWBUS_WORKERS '0' is not a whole number from 1 to 1024");
    setenv("FLOWBUS_WORKERS", "3", 1);
    CHECK_ACCEPTED("FLOWBUS_WORKER", "3");
    CHECK(env.workers == 3 && env.worker == 3);
    CHECK_REFUSED("FLOWBUS_WORKER", "4", "FLOWBUS_WORKER '4' is not a whole number from 1 to 3");
    CHECK_REFUSED("FLOWBUS_WORKER", "0", "FLOWBUS_WORKER '0' is not a whole number from 1 to 3");
    /* Without FLOWBUS_WORKERS the pool is one worker. */
    unsetenv("FLOWBUS_WORKERS");
    CHECK_REFUSED("FLOWBUS_WORKER", "2", "FLOWBUS_WORKER '2' is not a whole number from 1 to 1");
}

static void test_triggers(void)
{
    base();
    setenv("FLOWBUS_MODE", "reactive", 1);
    setenv("FLOWBUS_INPUTS", "A,B", 1);
    setenv("FLOWBUS_SECRETS", "KEY", 1);
    setenv("KEY", "k-value", 1);
    /* Without FLOWBUS_TRIGGERS every input on the bus triggers, not the secret one. */
    CHECK(read_env() == FB_OK);
    CHECK(env.n_inputs == 3 && env.n_triggers == 2);
    if (env.n_inputs == 3)
        CHECK(env.inputs[0].trigger && env.inputs[1].trigger && !env.inputs[2].trigger);
    CHECK_ACCEPTED("FLOWBUS_TRIGGERS", "B");
    CHECK(env.n_triggers == 1);
    if (env.n_inputs == 3)
        CHECK(!env.inputs[0].trigger && env.inputs[1].trigger && !env.inputs[2].trigger);
    CHECK_REFUSED("FLOWBUS_TRIGGERS", "B,Z", "FLOWBUS_TRIGGERS: Z is not one of the task's inputs");
    CHECK_REFUSED("FLOWBUS_TRIGGERS", "KEY",
                  "FLOWBUS_TRIGGERS: KEY is not allowed: a secret input cannot trigger (it is "
                  "not on the bus)");
    CHECK_REFUSED("FLOWBUS_TRIGGERS", "1", "FLOWBUS_TRIGGERS: '1' is not a valid name");
}

static void test_params(void)
{
    base();
    CHECK_ACCEPTED("FLOWBUS_PARAMS", "");
    CHECK_STR(env.params_json, "{}");
    CHECK_ACCEPTED("FLOWBUS_PARAMS", "{\"s\": \"x\", \"n\": 3, \"r\": 1.5, \"t\": true, "
                                     "\"f\": false, \"o\": {\"a\": 1}, \"l\": [1], \"z\": null}");
    CHECK_STR(env.params_json,
              "{\"s\":\"x\",\"n\":3,\"r\":1.5,\"t\":true,\"f\":false,\"o\":{\"a\":1},\"l\":[1],"
              "\"z\":null}");
    /* Only the scalars have a text; objects, arrays and null are in params_json only. */
    CHECK(env.n_params == 5);
    if (env.n_params == 5) {
        CHECK_STR(env.param_names[0], "s");
        CHECK_STR(env.param_texts[0], "x");
        CHECK_STR(env.param_names[1], "n");
        CHECK_STR(env.param_texts[1], "3");
        CHECK_STR(env.param_names[2], "r");
        CHECK_STR(env.param_texts[2], "1.5");
        CHECK_STR(env.param_names[3], "t");
        CHECK_STR(env.param_texts[3], "true");
        CHECK_STR(env.param_names[4], "f");
        CHECK_STR(env.param_texts[4], "false");
    }
    CHECK(json_is_object(env.params));
    setenv("FLOWBUS_PARAMS", "{\"a\":", 1);
    CHECK(read_env() == FB_ERR_ENV);
    CHECK_CONTAINS(err, "FLOWBUS_PARAMS: line 1, column ");
    setenv("FLOWBUS_PARAMS", "{\"a\":1,\"a\":2}", 1);
    CHECK(read_env() == FB_ERR_ENV);
    CHECK_CONTAINS(err, "FLOWBUS_PARAMS: line 1, column ");
    CHECK_CONTAINS(err, "duplicate");
    CHECK_REFUSED("FLOWBUS_PARAMS", "[1,2]", "FLOWBUS_PARAMS is not a JSON object");
}

static void test_connection(void)
{
    base();
    setenv("FLOWBUS_USERNAME", "", 1);
    setenv("FLOWBUS_PASSWORD", "pw", 1);
    setenv("FLOWBUS_TLS_CA", "", 1);
    setenv("FLOWBUS_TLS_CERT", "/c.pem", 1);
    setenv("FLOWBUS_TLS_KEY", "/k.pem", 1);
    CHECK(read_env() == FB_OK);
    /* An empty user name is passed on; an empty TLS path means none. */
    CHECK_STR(env.username, "");
    CHECK_STR(env.password, "pw");
    CHECK(env.tls_ca == NULL);
    CHECK_STR(env.tls_cert, "/c.pem");
    CHECK_STR(env.tls_key, "/k.pem");
}

static void test_first_error_wins(void)
{
    base();
    setenv("FLOWBUS_INPUTS", "1", 1);
    setenv("FLOWBUS_ATTEMPT", "0", 1);
    setenv("FLOWBUS_PARAMS", "[]", 1);
    unsetenv("FLOWBUS_BROKER");
    CHECK(read_env() == FB_ERR_ENV);
    CHECK_STR(err, "FLOWBUS_ATTEMPT '0' is not a positive integer");
    unsetenv("FLOWBUS_ATTEMPT");
    CHECK(read_env() == FB_ERR_ENV);
    CHECK_STR(err, "FLOWBUS_INPUTS: '1' is not a valid name");
    unsetenv("FLOWBUS_INPUTS");
    CHECK(read_env() == FB_ERR_ENV);
    CHECK_STR(err, "FLOWBUS_PARAMS is not a JSON object");
    unsetenv("FLOWBUS_PARAMS");
    CHECK(read_env() == FB_ERR_ENV);
    CHECK_CONTAINS(err, "FLOWBUS_BROKER is not set");
    /* What was read before the error is freed by task_env__free, which zeroes env. */
    task_env__free(&env);
    CHECK(env.run_id == NULL && env.n_inputs == 0);
    task_env__free(&env);
}

static void test_parent_pid(void)
{
    long pid = -5;

    base();
    CHECK(task_env__parent_pid(&pid) == 0 && pid == 0);
    setenv("FLOWBUS_PARENT_PID", "4100", 1);
    CHECK(task_env__parent_pid(&pid) == 1 && pid == 4100);
    /* Set but not a number: set all the same (the task is then treated as orphaned). */
    setenv("FLOWBUS_PARENT_PID", "x", 1);
    CHECK(task_env__parent_pid(&pid) == 1 && pid == 0);
}

static int any_name(const char *s, size_t len)
{
    return len > 0 && s[0] != '!';
}

static void test_split(void)
{
    char **names = (char **)1;
    size_t n = 99;
    char why[64];

    CHECK(names__split(NULL, any_name, &names, &n, why, sizeof why) == FB_OK);
    CHECK(names == NULL && n == 0);
    CHECK(names__split(" ,\t, ", any_name, &names, &n, why, sizeof why) == FB_OK);
    CHECK(names == NULL && n == 0);
    CHECK(names__split("a b, c,a b,,d ", any_name, &names, &n, why, sizeof why) == FB_OK);
    CHECK(n == 3);
    if (n == 3) {
        CHECK_STR(names[0], "a b");
        CHECK_STR(names[1], "c");
        CHECK_STR(names[2], "d");
    }
    names__free(names, n);
    CHECK(names__split("a, !b ,c", any_name, &names, &n, why, sizeof why) == FB_ERR_INVALID);
    CHECK(names == NULL && n == 0);
    CHECK_STR(why, "'!b' is not a valid name");
    /* The message is optional. */
    CHECK(names__split("!", any_name, &names, &n, NULL, 0) == FB_ERR_INVALID);
    names__free(NULL, 0);
}

int main(void)
{
    RUN(test_defaults);
    RUN(test_required);
    RUN(test_run_id);
    RUN(test_task_name);
    RUN(test_attempt);
    RUN(test_max_value);
    RUN(test_reconnect_max);
    RUN(test_expiry);
    RUN(test_timeout);
    RUN(test_lists);
    RUN(test_name_length);
    RUN(test_secrets);
    RUN(test_mode);
    RUN(test_queue_and_workers);
    RUN(test_triggers);
    RUN(test_params);
    RUN(test_connection);
    RUN(test_first_error_wins);
    RUN(test_parent_pid);
    RUN(test_split);
    task_env__free(&env);
    return check_summary();
}
