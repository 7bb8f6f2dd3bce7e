/*
 * test_workflow_bounds.c - unit tests of the loader's bounds on hostile input
 * (core/model/: load_file.c, document.c, load_fields.c, load_tasks.c,
 * load_env.c, diag.c), one per fault of issue 14 that a hostile or clumsy
 * user found:
 *
 * - the workflow file is a regular file (or standard input, "-") of at most
 *   16 MiB, checked before it is read: a FIFO without a writer blocked the
 *   loader forever (this program then hangs, and CTest's timeout fails it),
 *   a device, a directory or a symlink loop had no position;
 * - lists and mappings nest at most 100 levels, refused at the node that
 *   goes deeper (200,000 levels of [[[ took two minutes);
 * - numeric fields are bounded (workers: 20000000 was accepted);
 * - reserved names (AUTH_TOKEN, PATH, LD_*...) and secrets' names are refused
 *   as outputs, and as --set targets or reactive inputs that env: does not
 *   declare;
 * - names with control characters give one clean line, the characters
 *   escaped, a NUL included ("A\0B" was reported as "A").
 *
 * Each test asserts the exact position and the key words of the message. The
 * speed of the loader is measured by bench/ (scripts/bench), not here.
 */
#include "workflow_fixture.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

/* A scratch directory of this test program, removed by cleanup_dir. */
static char scratch[64];

static const char *scratch_path(const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s", scratch, name);
    return buf;
}

/* Removes what the tests made in scratch, by name, then scratch itself. */
static void cleanup_scratch(void)
{
    static const char *const files[] = {"fifo.yaml", "loop-a.yaml", "loop-b.yaml", "null.yaml",
                                        "real.yaml", "link.yaml",   "big.yaml",    "edge.yaml"};
    char path[128];

    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        unlink(scratch_path(files[i], path, sizeof path));
    rmdir(scratch_path("dir.yaml", path, sizeof path));
    if (rmdir(scratch) != 0)
        perror(scratch);
}

static struct workflow *load_path(const char *path, struct wf_diags *d)
{
    struct wf_load_options o = plain_opts();

    memset(d, 0, sizeof *d);
    return workflow__load(path, &o, d);
}

/* Loads path, which must fail with exactly one error, at 1:1, containing text. */
static void check_file_refused(const char *path, const char *text)
{
    struct wf_diags d;
    struct workflow *wf = load_path(path, &d);

    CHECK(wf == NULL);
    CHECK(d.n == 1 && d.n_errors == 1);
    CHECK_ERROR(d, 1, 1, text);
    workflow__free(wf);
    wf_diags_free(&d);
}

/* 1 if no message of d holds a control character (a diagnostic is one line). */
static int messages_clean(const struct wf_diags *d)
{
    for (size_t i = 0; i < d->n; i++)
        for (const unsigned char *p = (const unsigned char *)d->items[i].message; *p; p++)
            if (*p < 0x20 || *p == 0x7F || (p[0] == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F)) {
                fprintf(stderr, "  raw control character 0x%02X in: %s\n", *p, d->items[i].message);
                return 0;
            }
    return 1;
}

/* ------------------------------------------------------------------ the file */

static void test_not_regular_files(void)
{
    char fifo[128], dir[128], loop_a[128], loop_b[128], null_link[128];

    /* Opened with O_NONBLOCK and refused by fstat: without a writer, the
     * FIFO blocked the loader in open() forever. */
    scratch_path("fifo.yaml", fifo, sizeof fifo);
    CHECK(mkfifo(fifo, 0600) == 0);
    check_file_refused(fifo, "not a regular file (a FIFO): a workflow file must be a regular "
                             "file, or - for standard input");

    scratch_path("dir.yaml", dir, sizeof dir);
    CHECK(mkdir(dir, 0700) == 0);
    check_file_refused(dir, "not a regular file (a directory)");

    scratch_path("loop-a.yaml", loop_a, sizeof loop_a);
    scratch_path("loop-b.yaml", loop_b, sizeof loop_b);
    CHECK(symlink(loop_b, loop_a) == 0 && symlink(loop_a, loop_b) == 0);
    check_file_refused(loop_a, "cannot read the workflow file: too many levels of symbolic "
                               "links (a symlink loop?)");

    /* A symlink is followed, and what it leads to is checked: a device is
     * refused before a byte is read (/dev/zero grew to gigabytes; its
     * memory-bounded test is in tests/integration/test_workflow_inputs.py). */
    scratch_path("null.yaml", null_link, sizeof null_link);
    CHECK(symlink("/dev/null", null_link) == 0);
    check_file_refused(null_link, "not a regular file (a character device)");
    check_file_refused("/dev/zero", "not a regular file (a character device)");

    check_file_refused(FIXTURES_DIR "/does-not-exist.yaml",
                       "cannot read the workflow file: No such file or directory");
}

/* A symlink to a good file loads: symlinks are followed, not refused. */
static void test_symlink_to_file_loads(void)
{
    char file[128], link[128];
    struct wf_diags d;
    struct workflow *wf;
    FILE *f;

    scratch_path("real.yaml", file, sizeof file);
    scratch_path("link.yaml", link, sizeof link);
    f = fopen(file, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fputs("workflow:\n  tasks: [{name: A, plugin: start}]\n", f);
    fclose(f);
    CHECK(symlink(file, link) == 0);
    wf = load_path(link, &d);
    CHECK(wf != NULL && d.n == 0);
    workflow__free(wf);
    wf_diags_free(&d);
}

static void test_size_bound(void)
{
    const size_t limit = 16 * 1024 * 1024;
    static const char head[] = "workflow:\n  tasks: [{name: A, plugin: start}]\n#";
    char big[128], edge[128];
    struct wf_diags d;
    struct workflow *wf;
    char *text;
    int fd;

    /* One byte over: refused from its size, before it is read (a sparse file
     * of NULs, which the YAML parser would have refused for its content). */
    scratch_path("big.yaml", big, sizeof big);
    fd = open(big, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && ftruncate(fd, (off_t)limit + 1) == 0);
    if (fd >= 0)
        close(fd);
    check_file_refused(big, "the file is 16777217 bytes, over the limit of 16 MiB (16777216 "
                            "bytes) for a workflow file");

    /* Exactly the limit: a workflow padded with a comment loads, from a file
     * and from a buffer; one byte more is refused from a buffer too. */
    text = malloc(limit);
    CHECK(text != NULL);
    if (!text)
        return;
    memset(text, 'x', limit);
    memcpy(text, head, sizeof head - 1);
    text[limit - 1] = '\n';
    scratch_path("edge.yaml", edge, sizeof edge);
    fd = open(edge, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && write(fd, text, limit) == (ssize_t)limit);
    if (fd >= 0)
        close(fd);
    memset(&d, 0, sizeof d);
    wf = workflow__load_buffer("t.yaml", text, limit, NULL, &d);
    CHECK(wf != NULL && d.n == 0);
    workflow__free(wf);
    wf_diags_free(&d);
    {
        char *more = realloc(text, limit + 1);
        CHECK(more != NULL);
        if (more) {
            text = more;
            text[limit] = '\n';
            wf = workflow__load_buffer("t.yaml", text, limit + 1, NULL, &d);
            CHECK(wf == NULL && d.n == 1);
            CHECK_ERROR(d, 1, 1, "the workflow is 16777217 bytes, over the limit of 16 MiB");
            wf_diags_free(&d);
        }
    }
    free(text);
    wf = load_path(edge, &d);
    CHECK(wf != NULL && d.n == 0);
    if (d.n)
        dump(&d);
    workflow__free(wf);
    wf_diags_free(&d);
    unlink(big);
    unlink(edge);
}

/* "-" reads standard input, which may be a pipe; it gets the name "stdin". */
static void test_stdin(void)
{
    static const char yaml[] = "workflow:\n  tasks: [{name: A, plugin: start}]\n";
    int saved = dup(STDIN_FILENO), p[2];
    struct wf_diags d;
    struct workflow *wf;

    CHECK(saved >= 0 && pipe(p) == 0);
    if (saved < 0)
        return;
    CHECK(write(p[1], yaml, sizeof yaml - 1) == (ssize_t)(sizeof yaml - 1));
    close(p[1]);
    dup2(p[0], STDIN_FILENO);
    close(p[0]);
    wf = load_path("-", &d);
    CHECK(wf != NULL && d.n == 0);
    CHECK(wf && wf->n_tasks == 1);
    CHECK_STR(wf ? wf->name : NULL, "stdin");
    workflow__free(wf);
    wf_diags_free(&d);
    dup2(saved, STDIN_FILENO);
    close(saved);
}

/* ------------------------------------------------------------------ depth */

/* "x: " then n '[' and n ']': levels 2 to n + 1 under the root mapping. */
static char *nested(size_t n)
{
    char *s = malloc(2 * n + 8);

    if (!s)
        return NULL;
    memcpy(s, "x: ", 3);
    memset(s + 3, '[', n);
    memset(s + 3 + n, ']', n);
    memcpy(s + 3 + 2 * n, "\n", 2);
    return s;
}

static void test_depth_bound(void)
{
    struct wf_diags d;
    struct workflow *wf;
    char *s;

    /* 100 levels (the root and 99 lists) compose: the errors are the keys'. */
    s = nested(99);
    wf = s ? load(s, &d) : NULL;
    CHECK(wf == NULL && d.n == 2);
    CHECK_ERROR(d, 1, 1, "unknown key 'x' in the top level");
    CHECK_ERROR(d, 1, 1, "missing 'workflow' key");
    wf_diags_free(&d);
    free(s);

    /* Level 101 is refused where it opens: column 3 + 100. */
    s = nested(100);
    wf = s ? load(s, &d) : NULL;
    CHECK(wf == NULL && d.n == 1);
    CHECK_ERROR(d, 1, 103,
                "lists and mappings are nested deeper than 100 levels here; a workflow needs "
                "far fewer");
    wf_diags_free(&d);
    free(s);

    /* Block style nests too: "- - - x" is one level per dash. */
    {
        char block[512] = "";
        for (int i = 0; i < 101; i++)
            strcat(block, "- ");
        strcat(block, "x\n");
        wf = load(block, &d);
        CHECK(wf == NULL && d.n == 1);
        CHECK_ERROR(d, 1, 201, "nested deeper than 100 levels");
        wf_diags_free(&d);
    }
}

/*
 * 200,000 levels of [[[ (a 400 KB file) took 116 s, quadratic in libyaml's
 * scanner; the bound refuses it at level 101, having read little more. Before
 * the fix this test ran into CTest's timeout; bench/ measures its time.
 */
static void test_depth_200k(void)
{
    const size_t n = 200000;
    char *s = malloc(2 * n + 2);
    struct wf_diags d;
    struct workflow *wf;

    CHECK(s != NULL);
    if (!s)
        return;
    memset(s, '[', n);
    memset(s + n, ']', n);
    memcpy(s + 2 * n, "\n", 2);
    wf = load(s, &d);
    CHECK(wf == NULL && d.n == 1);
    CHECK_ERROR(d, 1, 101, "nested deeper than 100 levels");
    wf_diags_free(&d);
    free(s);
}

/* ------------------------------------------------------------------ numbers */

/* One task with the given execution: mapping (a flow mapping, at column 44). */
static struct workflow *with_execution(const char *execution, struct wf_diags *d)
{
    char yaml[512];

    snprintf(yaml, sizeof yaml,
             "workflow:\n"
             "  mode: reactive\n"
             "  tasks:\n"
             "    - {name: A, plugin: start, execution: {%s}}\n",
             execution);
    return load(yaml, d);
}

static void test_numeric_bounds(void)
{
    struct wf_diags d;
    struct workflow *wf;

    /* The largest of each loads. */
    wf = with_execution("workers: 1024, retries: 1000, queue: 100000, timeout: 2592000, "
                        "retry_delay: 2592000, retry_max_delay: 2592000",
                        &d);
    CHECK(wf != NULL && d.n == 0);
    if (wf) {
        CHECK(wf->tasks[0].workers == 1024);
        CHECK(wf->tasks[0].retries == 1000);
        CHECK(wf->tasks[0].queue == 100000);
    }
    workflow__free(wf);
    wf_diags_free(&d);

    /* workers: 20000000 made `flowbus up` grow to 1.9 GB. */
    wf = with_execution("workers: 20000000", &d);
    CHECK(wf == NULL && d.n == 1);
    CHECK_ERROR(d, 4, 53, "'workers' must be at most 1024, got \"20000000\" (task 'A')");
    wf_diags_free(&d);

    wf = with_execution("retries: 1001", &d);
    CHECK_ERROR(d, 4, 53, "'retries' must be at most 1000, got \"1001\" (task 'A')");
    wf_diags_free(&d);

    wf = with_execution("queue: 100001", &d);
    CHECK_ERROR(d, 4, 51, "'queue' must be at most 100000, got \"100001\" (task 'A')");
    wf_diags_free(&d);
    wf = with_execution("queue: 0", &d);
    CHECK_ERROR(d, 4, 51, "'queue' must be an integer ≥ 1, got \"0\" (task 'A')");
    wf_diags_free(&d);

    wf = with_execution("timeout: 2592000.5", &d);
    CHECK_ERROR(d, 4, 53, "'timeout' must be at most 2592000 seconds (30 days)");
    wf_diags_free(&d);

    wf = with_execution("retry_delay: 1e7", &d);
    CHECK_ERROR(d, 4, 57, "'retry_delay' must be a number of seconds from 0 to 2592000 (30 days)");
    wf_diags_free(&d);

    wf = with_execution("retry_max_delay: 2592001", &d);
    CHECK_ERROR(d, 4, 61, "'retry_max_delay' must be a number of seconds from 0 to 2592000");
    wf_diags_free(&d);

    /* auth: has durations too. */
    wf = load("workflow:\n"
              "  auth: {url: \"http://127.0.0.1:1\", timeout: 2592001, cache_ttl: 1e9}\n"
              "  tasks: [{name: A, plugin: start}]\n",
              &d);
    CHECK(wf == NULL && d.n == 2);
    CHECK_ERROR(d, 2, 46, "'timeout' must be a number of seconds from 0 to 2592000");
    CHECK_ERROR(d, 2, 66, "'cache_ttl' must be a number of seconds from 0 to 2592000");
    wf_diags_free(&d);
}

/* ------------------------------------------------------------------ names */

static void test_reserved_outputs(void)
{
    struct wf_diags d;
    struct workflow *wf = load("workflow:\n"
                               "  env:\n"
                               "    DB_PASS: {value: \"pw\", secret: true}\n"
                               "    PLAIN: \"p\"\n"
                               "  tasks:\n"
                               "    - name: EVIL\n"
                               "      plugin: start\n"
                               "      outputs: [AUTH_TOKEN, LD_PRELOAD, PATH, IFS, BASH_ENV]\n"
                               "    - name: EVIL2\n"
                               "      plugin: start\n"
                               "      outputs: [FLOWBUS_RUN_ID, PYTHONPATH, DB_PASS, PLAIN, OK]\n",
                               &d);

    CHECK(wf == NULL);
    CHECK(d.n_errors == 8);
    CHECK_ERROR(d, 8, 17,
                "task 'EVIL' may not output 'AUTH_TOKEN': that name is the task's Attica token");
    CHECK_ERROR(d, 8, 29,
                "task 'EVIL' may not output 'LD_PRELOAD': that name selects the libraries every "
                "program loads, and a task's outputs become the environment of the tasks that "
                "read them; choose another name");
    CHECK_ERROR(d, 8, 41, "may not output 'PATH': that name chooses which programs a command");
    CHECK_ERROR(d, 8, 47, "may not output 'IFS'");
    CHECK_ERROR(d, 8, 52, "may not output 'BASH_ENV'");
    CHECK_ERROR(d, 11, 17, "may not output 'FLOWBUS_RUN_ID'");
    CHECK_ERROR(d, 11, 33, "may not output 'PYTHONPATH'");
    CHECK_ERROR(d, 11, 45,
                "task 'EVIL2' may not output 'DB_PASS': it is a secret of env:, which only the "
                "workflow gives (and masks)");
    wf_diags_free(&d);
}

/*
 * A secret and a task's params reach the task in its environment, where Linux
 * allows one variable 128 KiB: a longer one is refused at its position
 * instead of failing the task's exec at run time (E2BIG).
 */
static void test_environment_strings_bounded(void)
{
    size_t n = 140000;
    char *big = malloc(n + 1), *yaml = big ? malloc(3 * n + 512) : NULL;
    struct wf_diags d;
    struct workflow *wf;

    CHECK(yaml != NULL);
    if (!yaml)
        goto out;
    memset(big, 'x', n);
    big[n] = 0;
    snprintf(yaml, 3 * n + 512,
             "workflow:\n"
             "  env:\n"
             "    KEY: {value: \"%s\", secret: true}\n"
             "    SMALL: {value: \"%.131000s\", secret: true}\n"
             "  tasks:\n"
             "    - name: S\n"
             "      plugin: start\n"
             "      outputs: [\"TRUE\"]\n"
             "    - name: C\n"
             "      plugin: cmd\n"
             "      inputs: [\"TRUE\", KEY, SMALL]\n"
             "      params: {command: \"echo %s\"}\n",
             big, big, big);
    wf = load(yaml, &d);
    CHECK(wf == NULL);
    CHECK(d.n_errors == 2);
    CHECK_ERROR(d, 3, 5, "the secret 'KEY' is 140000 bytes, over the 131067 a task can get");
    CHECK_ERROR(d, 9, 7, "the params of task 'C' are 140019 bytes as JSON");
    workflow__free(wf);
    wf_diags_free(&d);
out:
    free(big);
    free(yaml);
}

/*
 * In a reactive run an input nobody sets is fed from outside; a reserved one
 * would let whoever publishes it choose a command's LD_PRELOAD, so it must
 * come from env:.
 */
static void test_reserved_reactive_inputs(void)
{
    struct wf_diags d;
    struct workflow *wf = load("workflow:\n"
                               "  mode: reactive\n"
                               "  env: {PATH: \"/usr/bin:/bin\"}\n"
                               "  tasks:\n"
                               "    - {name: A, plugin: start, inputs: [LD_PRELOAD, PATH, IN]}\n",
                               &d);

    CHECK(wf == NULL);
    CHECK(d.n_errors == 1);
    CHECK_ERROR(d, 5, 41,
                "input 'LD_PRELOAD' of task 'A' is a reserved name (it selects the libraries "
                "every program loads) that env: does not declare: only the outside could set "
                "it");
    CHECK_WARNING(d, 5, 59, "input 'IN' of task 'A' is set by no task and not in env");
    wf_diags_free(&d);
}

static void test_reserved_set_targets(void)
{
    struct wf_diags d;
    struct wf_load_options o = plain_opts();
    struct wf_setting set[] = {
        {"LD_PRELOAD", "/tmp/evil.so"}, {"AUTH_TOKEN", "t"}, {"PATH", "/bin"}, {"FINE", "x"}};
    static const char yaml[] = "workflow:\n"
                               "  env: {PATH: \"/usr/bin:/bin\"}\n"
                               "  tasks: [{name: A, plugin: start}]\n";
    struct workflow *wf;

    o.settings = set;
    o.n_settings = 4;
    wf = load_with(yaml, &o, &d);
    CHECK(wf == NULL);
    CHECK(d.n_errors == 2);
    CHECK_ERROR(d, 0, 0,
                "--set LD_PRELOAD: 'LD_PRELOAD' is a reserved name (it selects the libraries "
                "every program loads); --set can change it only when the workflow's env: "
                "declares it");
    CHECK_ERROR(d, 0, 0, "--set AUTH_TOKEN: 'AUTH_TOKEN' is a reserved name");
    wf_diags_free(&d);

    /* PATH is declared by env:, so --set may change it. */
    o.settings = set + 2;
    o.n_settings = 2;
    wf = load_with(yaml, &o, &d);
    CHECK(wf != NULL && d.n == 0);
    workflow__free(wf);
    wf_diags_free(&d);
}

static void test_control_characters(void)
{
    struct wf_diags d;
    struct workflow *wf;
    char *printed = NULL;
    size_t size = 0, lines = 0;
    FILE *out;

    /* A newline in a task name broke the one-line error. */
    wf = load("workflow:\n"
              "  tasks:\n"
              "    - {name: \"A\\nB\", plugin: start}\n"
              "    - {name: \"\\e[31mRED\", plugin: start, depends_on: [\"X\\tY\"]}\n"
              "    - {name: C, plugin: start, outputs: [\"O\\x85K\"]}\n",
              &d);
    CHECK(wf == NULL);
    CHECK(d.n_errors == 4);
    CHECK_ERROR(d, 3, 14, "task name 'A\\nB' is not valid");
    CHECK_ERROR(d, 4, 14, "task name '\\e[31mRED' is not valid");
    CHECK_ERROR(d, 4, 55, "task '\\e[31mRED' depends on unknown task 'X\\tY'");
    CHECK_ERROR(d, 5, 42, "'O\\x85K' in 'outputs' of task 'C' is not a valid variable name");
    CHECK(messages_clean(&d));
    /* Printed, one line each, the file's name escaped too. */
    out = open_memstream(&printed, &size);
    wf_diags_print(&d, "t\n.yaml", out);
    fclose(out);
    for (size_t i = 0; printed && printed[i]; i++)
        lines += printed[i] == '\n';
    CHECK(lines == d.n);
    CHECK_CONTAINS(printed, "t\\n.yaml:3:14: error: task name 'A\\nB' is not valid");
    free(printed);
    wf_diags_free(&d);

    /* "A\0B" was reported as "A": the whole scalar is shown, the NUL escaped. */
    {
        static const char nul[] = "workflow:\n"
                                  "  tasks:\n"
                                  "    - {name: \"A\\0B\", plugin: start, outputs: [\"V\\0W\"]}\n";
        wf = load(nul, &d);
        CHECK(wf == NULL);
        CHECK(d.n_errors == 2);
        CHECK_ERROR(d, 3, 14,
                    "'name' in task '#1' must not contain a NUL character, got \"A\\0B\"");
        CHECK_ERROR(d, 3, 47, "each entry of 'outputs' of task '#1' must be a name, got \"V\\0W\"");
        CHECK(messages_clean(&d));
        wf_diags_free(&d);
    }
    {
        static const char key[] =
            "workflow:\n"
            "  tasks:\n"
            "    - {name: A, plugin: start, params: {\"k\\0x\": 1, \"k\\0x\": 2}}\n";
        wf = load(key, &d);
        CHECK(wf == NULL);
        CHECK_ERROR(d, 3, 52, "duplicate key 'k\\0x' in 'params' of task 'A'");
        wf_diags_free(&d);
    }
}

/* 1 if test is to run: all of them without arguments, else those named. */
static int wanted(int argc, char **argv, const char *test)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], test))
            return 1;
    return argc < 2;
}

#define RUN_IF(test)                                                                               \
    do {                                                                                           \
        if (wanted(argc, argv, #test))                                                             \
            RUN(test);                                                                             \
    } while (0)

/* Arguments name the tests to run (all by default), e.g. to run one alone. */
/* execution.overflow: the three policies load; anything else is refused at its value. */
static void test_overflow_policy(void)
{
    static const char *const names[] = {"block", "drop-oldest", "drop-newest"};
    static const enum wf_overflow policies[] = {WF_OVERFLOW_BLOCK, WF_OVERFLOW_DROP_OLDEST,
                                                WF_OVERFLOW_DROP_NEWEST};
    struct wf_diags d;
    struct workflow *wf;
    char exec[64];

    wf = with_execution("queue: 5", &d);
    CHECK(wf != NULL && d.n == 0 && wf->tasks[0].overflow == WF_OVERFLOW_BLOCK);
    workflow__free(wf);
    wf_diags_free(&d);
    for (size_t i = 0; i < 3; i++) {
        snprintf(exec, sizeof exec, "overflow: %s", names[i]);
        wf = with_execution(exec, &d);
        CHECK(wf != NULL && d.n == 0);
        if (wf) {
            CHECK(wf->tasks[0].overflow == policies[i]);
            CHECK_STR(workflow__overflow_name(wf->tasks[0].overflow), names[i]);
        }
        workflow__free(wf);
        wf_diags_free(&d);
    }
    wf = with_execution("overflow: drop-olde", &d);
    CHECK(wf == NULL && d.n == 1);
    CHECK_ERROR(d, 4, 54,
                "'overflow' must be block, drop-oldest or drop-newest, got \"drop-olde\" "
                "(task 'A'); did you mean 'drop-oldest'?");
    wf_diags_free(&d);
    wf = with_execution("overflow: 3", &d);
    CHECK(wf == NULL && d.n == 1);
    CHECK_ERROR(d, 4, 54, "'overflow' must be block, drop-oldest or drop-newest, got \"3\"");
    wf_diags_free(&d);
    wf = with_execution("overflow: [block]", &d);
    CHECK(wf == NULL && d.n == 1);
    CHECK_ERROR(d, 4, 54, "'overflow' must be block, drop-oldest or drop-newest, got a list");
    wf_diags_free(&d);
    /* The key itself has the did-you-mean of every key. */
    wf = with_execution("overflw: block", &d);
    CHECK(wf == NULL && d.n == 1);
    CHECK_ERROR(d, 4, 44,
                "unknown key 'overflw' in 'execution' of task 'A'; did you mean 'overflow'?");
    wf_diags_free(&d);
}

int main(int argc, char **argv)
{
    snprintf(scratch, sizeof scratch, "/tmp/test_workflow_bounds-XXXXXX");
    if (!mkdtemp(scratch)) {
        perror("mkdtemp");
        return 1;
    }
    RUN_IF(test_not_regular_files);
    RUN_IF(test_symlink_to_file_loads);
    RUN_IF(test_size_bound);
    RUN_IF(test_stdin);
    RUN_IF(test_depth_bound);
    RUN_IF(test_depth_200k);
    RUN_IF(test_numeric_bounds);
    RUN_IF(test_overflow_policy);
    RUN_IF(test_reserved_outputs);
    RUN_IF(test_reserved_reactive_inputs);
    RUN_IF(test_reserved_set_targets);
    RUN_IF(test_environment_strings_bounded);
    RUN_IF(test_control_characters);
    cleanup_scratch();
    return check_summary();
}
