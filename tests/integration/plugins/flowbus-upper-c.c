/*
 * flowbus-upper-c - the C implementation of the contract tests' job
 * (tests/integration/test_contract.py): its first input (default TEXT), upper-cased,
 * becomes its first output (default UPPER). It is the README's minimal plugin
 * ("Writing a plugin") with the names taken from the task instead of fixed, so
 * the same workflow runs it, flowbus-shout (shell) and flowbus-upper (Python).
 *
 * Only ASCII letters change, as with shout's tr; a value is otherwise copied
 * byte for byte. It is built for the tests only and never installed.
 */
#include <flowbus/flowbus.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char manifest[] =
    "{\"name\":\"upper-c\",\"description\":\"Upper-cases a text (C, the SDK; a test plugin)\","
    "\"inputs\":[\"TEXT\"],\"outputs\":[\"UPPER\"],\"params\":{}}";

int main(int argc, char **argv)
{
    char err[256];
    fb_task *task;
    const char *in_name, *out_name, *text;
    char *upper;
    size_t i;
    enum fb_err rc;

    if (argc == 2 && strcmp(argv[1], "--describe") == 0) {
        puts(manifest);
        return 0;
    }
    if (fb_task_open(NULL, &task, err, sizeof err) != FB_OK) {
        fprintf(stderr, "flowbus-upper-c: %s\n", err);
        return 1;
    }
    rc = fb_task_wait(task, -1); /* until every input is set */
    if (rc != FB_OK) {
        /* The run told it to stop, or the broker went away. */
        fprintf(stderr, "flowbus-upper-c: %s\n",
                rc == FB_ERR_STOPPED ? "the run asked this task to stop; exiting without acting"
                                     : fb_strerror(rc));
        fb_task_exit(task, rc == FB_ERR_STOPPED ? 0 : 1);
    }
    in_name = fb_task_input_count(task) ? fb_task_input_name(task, 0) : NULL;
    out_name = fb_task_output_count(task) ? fb_task_output_name(task, 0) : NULL;
    text = in_name ? fb_task_input(task, in_name) : "";
    if (!text)
        text = getenv(in_name) ? getenv(in_name) : ""; /* a secret input is in the environment */
    upper = strdup(text);
    if (!upper) {
        fb_task_fail(task, 1, "out of memory");
        fb_task_exit(task, 1);
    }
    for (i = 0; upper[i]; i++)
        upper[i] = (char)toupper((unsigned char)upper[i]);
    if ((out_name && fb_task_set_output(task, out_name, upper) != FB_OK) ||
        fb_task_done(task) != FB_OK) {
        free(upper);
        fb_task_exit(task, 1);
    }
    free(upper);
    fb_task_exit(task, 0); /* disconnects cleanly and exits at once */
}
