/*
 * test_emit.c - unit tests of the canonical emitter (core/model/emit.h):
 * round trips of every shipped and test workflow (load, emit, load: the same
 * model; emit twice: the same text), scalars that must stay strings, numbers
 * that must keep their JSON type, flow and block lists, comments kept, moved
 * or dropped, env: entries and secrets taken from the file's text, the JSON
 * paths of diagnostics, and that an added or removed task changes only the
 * lines of its block.
 */
#include "check.h"
#include "emit.h"
#include "workflow.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SHIPPED_DIR
#define SHIPPED_DIR "workflows"
#endif
#ifndef INTEGRATION_DIR
#define INTEGRATION_DIR "tests/integration/workflows"
#endif

/* The environment of the tests: HOME_DIR is /home/me, every other variable is "". */
static const char *test_env(void *ctx, const char *name)
{
    (void)ctx;
    return strcmp(name, "HOME_DIR") == 0 ? "/home/me" : "";
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, got;

    *len = 0;
    if (!f)
        return NULL;
    do {
        if (*len + 4097 > cap) {
            char *bigger = realloc(buf, cap = (*len + 4097) * 2);
            if (!bigger)
                break;
            buf = bigger;
        }
        got = fread(buf + *len, 1, cap - *len - 1, f);
        *len += got;
        buf[*len] = '\0';
    } while (got > 0);
    fclose(f);
    return buf;
}

static int quiet;

/* The model of text (as fmt loads it), or NULL; printed diagnostics on failure. */
static json_t *model_of(const char *file, const char *text)
{
    struct wf_load_options o = {0};
    struct wf_diags d = {0};
    struct workflow *wf;
    json_t *m = NULL;

    o.getenv_fn = test_env;
    wf = workflow__load_buffer(file, text, strlen(text), &o, &d);
    if (!wf && !quiet)
        wf_diags_print(&d, file, stderr);
    else
        m = workflow__to_json(wf);
    workflow__free(wf);
    wf_diags_free(&d);
    return m;
}

/* emit__workflow_yaml of model, with source (may be NULL); the text or NULL. */
static char *emit(const json_t *model, const char *source, const char *file, struct emit_diags *d)
{
    struct emit_options o = {0};
    struct emit_out out = {0};
    char *text;

    o.source = source;
    o.source_len = source ? strlen(source) : 0;
    o.file = file;
    o.getenv_fn = test_env;
    memset(d, 0, sizeof *d);
    if (emit__workflow_yaml(model, &o, &out, d) != 0)
        return NULL;
    text = out.text;
    out.text = NULL;
    emit__out_free(&out);
    return text;
}

static char *emit_ok(const json_t *model, const char *source, const char *file)
{
    struct emit_diags d;
    char *text = emit(model, source, file, &d);

    for (size_t i = 0; i < d.n; i++)
        fprintf(stderr, "emit: %s: %s\n", d.items[i].path, d.items[i].message);
    emit__diags_free(&d);
    return text;
}

static void roundtrip_file(const char *path)
{
    size_t len;
    char *text = read_file(path, &len), *once = NULL, *twice = NULL;
    json_t *before = NULL, *after = NULL;
    struct wf_diags d = {0};

    CHECK(text != NULL);
    if (!text)
        return;
    before = model_of(path, text);
    CHECK(before != NULL);
    once = emit__format_text(path, text, len, &d);
    wf_diags_free(&d);
    CHECK(once != NULL);
    if (once) {
        after = model_of(path, once);
        CHECK(after != NULL);
        if (!json_equal(before, after)) {
            fprintf(stderr, "%s: the model changed through emit:\n%s\n", path, once);
            CHECK(0);
        }
        twice = emit__format_text(path, once, strlen(once), &d);
        wf_diags_free(&d);
        CHECK(twice != NULL);
        if (twice && strcmp(once, twice) != 0) {
            fprintf(stderr, "%s: not idempotent:\n--- once\n%s--- twice\n%s", path, once, twice);
            CHECK(0);
        }
        /* Every comment line of the file is still there (none of these files removes one). */
        for (const char *p = text; p && *p;) {
            const char *nl = strchr(p, '\n'), *hash = p;
            size_t n = nl ? (size_t)(nl - p) : strlen(p);
            while (hash < p + n && (*hash == ' ' || *hash == '\t'))
                hash++;
            if (hash < p + n && *hash == '#') {
                char *line = strndup(hash, (size_t)(p + n - hash));
                if (!strstr(once, line)) {
                    fprintf(stderr, "%s: comment lost: %s\n", path, line);
                    CHECK(0);
                }
                free(line);
            }
            p = nl ? nl + 1 : NULL;
        }
    }
    json_decref(before);
    json_decref(after);
    free(text);
    free(once);
    free(twice);
}

static int roundtrip_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    CHECK(d != NULL);
    while (d && (e = readdir(d)) != NULL) {
        char path[1024];
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".yaml") != 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        roundtrip_file(path);
        n++;
    }
    if (d)
        closedir(d);
    return n;
}

static void test_roundtrip_every_workflow(void)
{
    CHECK(roundtrip_dir(SHIPPED_DIR) >= 5);
    CHECK(roundtrip_dir(INTEGRATION_DIR) >= 20);
}

/* A one-task model whose params are the given JSON text. */
static json_t *params_model(const char *params_json)
{
    json_error_t err;
    json_t *params = json_loads(params_json, 0, &err);
    json_t *m = json_pack("{s:s, s:[{s:s, s:s, s:o}]}", "name", "edge", "tasks", "name", "T",
                          "plugin", "custom", "params", params);
    return m;
}

static const json_t *params_of(const json_t *model)
{
    return json_object_get(json_array_get(json_object_get(model, "tasks"), 0), "params");
}

static void test_scalars_stay_strings(void)
{
    static const char *const values[] = {
        "yes",
        "no",
        "on",
        "off",
        "y",
        "N",
        "true",
        "TRUE",
        "False",
        "null",
        "Null",
        "~",
        "",
        "1.0",
        "10",
        "-3",
        "+1",
        "0x1f",
        "0o17",
        "1e3",
        ".5",
        ".inf",
        "-.inf",
        ".nan",
        "1_000",
        "12:30",
        "2026-01-01",
        ": x",
        "a: b",
        "a:b",
        "#",
        "a #b",
        "a#b",
        " lead",
        "trail ",
        "two  spaces",
        "-",
        "- a",
        "--",
        "?",
        "? x",
        "|",
        ">",
        "*alias",
        "&anchor",
        "!tag",
        "%dir",
        "@at",
        "`tick",
        "[x]",
        "{x}",
        "a, b",
        "'q'",
        "\"dq\"",
        "it's",
        "back\\slash",
        "tab\there",
        "ctl\x01",
        "del\x7f",
        "é unicode",
        "line\xe2\x80\xa8sep",
        "nel\xc2\x85",
        "bom\xef\xbb\xbf",
        "a\nb",
        "a\nb\n",
        "a\nb\n\n",
        "\nlead newline",
        " a\nb",
        "a\n  \nb",
        "a \nb",
        "a\r\nb",
        "x\n",
        "\n",
        "\n\n",
        "tabs\n\tindented\n",
        "# not a comment\nline\n",
        "<secret>x",
        "{{ENV:X}}",
        "Disk Monitoring Workflow",
        "sensors/room1/temp",
        "/",
        "http://x:1/y",
        "=",
        "a=b",
        "%",
        "e10",
        "E",
        "NaN",
        "inf",
    };
    char *text;
    json_t *m, *params = json_object(), *back;
    const char *key;
    json_t *v;

    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char k[16];
        snprintf(k, sizeof k, "v%zu", i);
        json_object_set_new(params, k, json_string(values[i]));
        /* The same strings as keys. */
        json_object_set_new(params, values[i], json_integer((json_int_t)i));
    }
    json_object_set_new(params, "list", json_pack("[s, s, s, s]", "yes", "1.0", ": x", "#"));
    m = json_pack("{s:s, s:[{s:s, s:s, s:o}]}", "name", "edge", "tasks", "name", "T", "plugin",
                  "custom", "params", params);
    text = emit_ok(m, NULL, "edge.yaml");
    CHECK(text != NULL);
    back = text ? model_of("edge.yaml", text) : NULL;
    CHECK(back != NULL);
    json_object_foreach(params, key, v)
    {
        const json_t *got = json_object_get(params_of(back), key);
        if (!got || !json_equal(got, v)) {
            char *want = json_dumps(v, JSON_ENCODE_ANY), *have = json_dumps(got, JSON_ENCODE_ANY);
            fprintf(stderr, "params[%s]: wrote %s, read %s\n", key, want, have ? have : "nothing");
            free(want);
            free(have);
            CHECK(0);
        }
    }
    /* Our loader reads plain yes, on, y as strings, YAML 1.1 readers as booleans: quoted. */
    {
        static const char *const yaml11[] = {"yes", "no", "on", "off", "y", "N"};
        for (size_t i = 0; i < sizeof yaml11 / sizeof yaml11[0]; i++) {
            char quoted[32];
            snprintf(quoted, sizeof quoted, ": \"%s\"\n", yaml11[i]);
            CHECK_CONTAINS(text, quoted);
        }
    }
    /* Multi-line strings are literal blocks where they can be. */
    CHECK_CONTAINS(text, "|\n");
    CHECK_CONTAINS(text, "# not a comment");
    json_decref(m);
    json_decref(back);
    free(text);
}

static void test_literal_blocks(void)
{
    json_t *m = params_model("{\"one\": \"echo hi\\n\", \"two\": \"a\\nb\", "
                             "\"kept\": \"a\\n\\n\", \"blank\": \"a \\nb\"}");
    char *text = emit_ok(m, NULL, "lit.yaml");
    json_t *back = text ? model_of("lit.yaml", text) : NULL;

    CHECK_CONTAINS(text, "        one: |\n          echo hi\n");
    CHECK_CONTAINS(text, "        two: |-\n          a\n          b\n");
    /* Two final newlines would need |+, a blank at a line's end is one editors strip. */
    CHECK_CONTAINS(text, "        kept: \"a\\n\\n\"\n");
    CHECK_CONTAINS(text, "        blank: \"a \\nb\"\n");
    CHECK(back && json_equal(params_of(back), params_of(m)));
    json_decref(m);
    json_decref(back);
    free(text);
}

/* A key over 1024 characters cannot be implicit in YAML: `? key` (found by fuzz_emit). */
static void test_long_keys(void)
{
    char key[1500];
    json_t *params = json_object(), *m, *back, *item = json_object();
    char *text;

    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = 0;
    json_object_set_new(params, key, json_string("v"));
    json_object_set_new(item, key, json_integer(1));
    json_object_set_new(item, "b", json_integer(2));
    json_object_set_new(params, "list", json_pack("[o]", item));
    m = json_pack("{s:s, s:[{s:s, s:s, s:O}]}", "name", "long", "tasks", "name", "T", "plugin",
                  "custom", "params", params);
    text = emit_ok(m, NULL, "long.yaml");
    back = text ? model_of("long.yaml", text) : NULL;
    CHECK(back && json_equal(params_of(back), params));
    CHECK_CONTAINS(text, "        ? kkkk");
    CHECK_CONTAINS(text, "          - ? kkkk");
    json_decref(back);
    json_decref(m);
    json_decref(params);
    free(text);
}

static void test_numbers_keep_their_type(void)
{
    json_t *m = params_model("{\"real\": 2.0, \"int\": 2, \"small\": 0.1, \"neg\": -0.5, "
                             "\"big\": 1e300, \"huge\": 12345678901234567, \"t\": true, "
                             "\"f\": false, \"z\": null, \"nested\": {\"a\": [1, 2.5, [3.0]]}}");
    char *text = emit_ok(m, NULL, "n.yaml");
    json_t *back = text ? model_of("n.yaml", text) : NULL;

    CHECK(back != NULL);
    CHECK(back && json_equal(params_of(back), params_of(m)));
    CHECK(back && json_is_real(json_object_get(params_of(back), "real")));
    CHECK(back && json_is_integer(json_object_get(params_of(back), "int")));
    CHECK_CONTAINS(text, "real: 2.0");
    json_decref(m);
    json_decref(back);
    free(text);
}

static void test_short_lists_flow_long_lists_block(void)
{
    json_t *m = json_pack("{s:s, s:[{s:s, s:s, s:[s, s, s]}, {s:s, s:s, s:[]}]}", "name", "lists",
                          "tasks", "name", "P", "plugin", "start", "outputs", "A", "B", "C", "name",
                          "J", "plugin", "end", "inputs");
    json_t *long_inputs = json_object_get(json_array_get(json_object_get(m, "tasks"), 1), "inputs");
    json_t *outs = json_object_get(json_array_get(json_object_get(m, "tasks"), 0), "outputs");
    char *text;

    for (int i = 0; i < 30; i++) {
        char name[32];
        snprintf(name, sizeof name, "VARIABLE_%02d", i);
        json_array_append_new(long_inputs, json_string(name));
        json_array_append_new(outs, json_string(name));
    }
    json_array_set_new(long_inputs, 0, json_string("A"));
    text = emit_ok(m, NULL, "lists.yaml");
    CHECK(text != NULL);
    /* 33 names do not fit in 100 columns: one per line. */
    CHECK_CONTAINS(text, "      outputs:\n        - A\n        - B\n");
    CHECK_CONTAINS(text, "      inputs:\n        - A\n        - VARIABLE_01\n");
    free(text);
    /* Three do. */
    json_array_clear(outs);
    {
        json_t *abc = json_pack("[s, s, s]", "A", "B", "C");
        json_array_extend(outs, abc);
        json_decref(abc);
    }
    json_array_clear(long_inputs);
    json_array_append_new(long_inputs, json_string("A"));
    text = emit_ok(m, NULL, "lists.yaml");
    CHECK_CONTAINS(text, "      outputs: [A, B, C]\n");
    CHECK_CONTAINS(text, "      inputs: [A]\n");
    /* No line is wider than EMIT_WIDTH when it can be helped. */
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        CHECK(nl && nl - p <= EMIT_WIDTH);
        p = nl ? nl + 1 : NULL;
    }
    json_decref(m);
    free(text);
}

static const char TEN[] = "workflow:\n"
                          "  name: ten\n"
                          "  tasks:\n"
                          "    - name: T0\n"
                          "      plugin: start\n"
                          "      outputs: [V0]\n";

/* A canonical 10-task chain T0 -> T1 -> ... -> T9. */
static char *ten_tasks(void)
{
    size_t cap = 4096, len = strlen(TEN);
    char *s = malloc(cap);

    memcpy(s, TEN, len + 1);
    for (int i = 1; i < 10; i++)
        len += (size_t)snprintf(s + len, cap - len,
                                "\n    # task %d\n    - name: T%d\n      plugin: cmd\n      "
                                "inputs: [V%d]\n      outputs: [V%d]\n      params: {command: "
                                "echo V%d=1}\n",
                                i, i, i - 1, i, i);
    return s;
}

/* Lines of b that are not in a: b must be a with one run of lines inserted; returns that run. */
static char *inserted_run(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), pre = 0, post = 0;

    if (lb < la)
        return NULL;
    while (pre < la && a[pre] == b[pre])
        pre++;
    while (pre > 0 && a[pre - 1] != '\n')
        pre--;
    while (post < la - pre && a[la - 1 - post] == b[lb - 1 - post])
        post++;
    while (post > 0 && a[la - post] != '\n' && la - post > pre)
        post--;
    if (pre + post < la)
        return NULL; /* something of a changed */
    return strndup(b + pre, lb - la);
}

static void test_added_task_is_one_block(void)
{
    char *source = ten_tasks(), *canon, *edited, *run, *removed;
    json_t *m, *task;

    m = model_of("ten.yaml", source);
    CHECK(m != NULL);
    canon = emit_ok(m, source, "ten.yaml");
    CHECK_STR(canon, source); /* it was written canonical */
    task = json_pack("{s:s, s:s, s:[s], s:[s], s:{s:s}}", "name", "EXTRA", "plugin", "cmd",
                     "inputs", "V4", "outputs", "X", "params", "command", "echo X=1");
    json_array_insert_new(json_object_get(m, "tasks"), 5, task);
    edited = emit_ok(m, source, "ten.yaml");
    run = edited ? inserted_run(source, edited) : NULL;
    CHECK_STR(run, "    - name: EXTRA\n      plugin: cmd\n      inputs: [V4]\n      outputs: [X]\n"
                   "      params: {command: echo X=1}\n\n");
    /* And removing it again gives the file back, comments of the others included. */
    json_array_remove(json_object_get(m, "tasks"), 5);
    removed = emit_ok(m, edited, "ten.yaml");
    CHECK_STR(removed, source);
    /* Renaming T3 (and what names it) changes the lines of the name only: its comment stays. */
    {
        json_t *copy = json_deep_copy(m), *tasks = json_object_get(copy, "tasks");
        char *renamed;
        json_object_set_new(json_array_get(tasks, 3), "name", json_string("THIRD"));
        renamed = emit_ok(copy, source, "ten.yaml");
        CHECK_CONTAINS(renamed, "    # task 3\n    - name: THIRD\n      plugin: cmd\n");
        json_decref(copy);
        free(renamed);
    }
    /* Removing T3: only its block (with its comment) goes. */
    free(removed);
    free(run);
    json_array_remove(json_object_get(m, "tasks"), 3);
    removed = emit_ok(m, source, "ten.yaml");
    run = removed ? inserted_run(removed, source) : NULL;
    CHECK_STR(run, "    # task 3\n    - name: T3\n      plugin: cmd\n      inputs: [V2]\n"
                   "      outputs: [V3]\n      params: {command: echo V3=1}\n\n");
    json_decref(m);
    free(source);
    free(canon);
    free(edited);
    free(run);
    free(removed);
}

static const char COMMENTED[] = "# header line 1\n"
                                "#\n"
                                "# header line 3\n"
                                "\n"
                                "workflow:   # on workflow\n"
                                "  name: \"commented\"\n"
                                "  env:\n"
                                "    # about A\n"
                                "    A: \"1\"   # trailing A\n"
                                "    HOME_DIR: \"{{ENV:HOME_DIR}}\"\n"
                                "    KEY: {value: \"k3y\", secret: true}  # the key\n"
                                "  tasks:\n"
                                "    # about S\n"
                                "    - name: S\n"
                                "      plugin: start\n"
                                "      outputs: [\"TRUE\"]  # what S sets\n"
                                "      execution:\n"
                                "        retries: 0   # no retries: a default, left out\n"
                                "    # about C, line 1\n"
                                "\n"
                                "    # about C, line 2\n"
                                "    - plugin: cmd\n"
                                "      name: C\n"
                                "      inputs: [\"TRUE\", A, KEY, HOME_DIR]\n"
                                "      params:\n"
                                "        # about the command\n"
                                "        command: |   # runs in sh\n"
                                "          # a line of the script, not a comment\n"
                                "          echo \"a # b\"  # still the script\n"
                                "        argv_note: 'x # y'  # a real comment\n"
                                "# footer\n";

static void test_comments_kept(void)
{
    json_t *m = model_of("c.yaml", COMMENTED);
    char *text = m ? emit_ok(m, COMMENTED, "c.yaml") : NULL, *again = NULL;
    json_t *back;

    CHECK(text != NULL);
    if (!text)
        goto out;
    {
        static const char head[] =
            "# header line 1\n#\n# header line 3\nworkflow:  # on workflow\n";
        CHECK(strncmp(text, head, strlen(head)) == 0);
    }
    CHECK_CONTAINS(text, "    # about A\n    A: \"1\"  # trailing A\n");
    CHECK_CONTAINS(text, "    KEY: {value: k3y, secret: true}  # the key\n");
    /* The comment of a key left out moves up to its parent: the task. */
    CHECK_CONTAINS(text, "    # about S\n    # no retries: a default, left out\n    - name: S\n");
    CHECK_CONTAINS(text, "      outputs: [\"TRUE\"]  # what S sets\n");
    CHECK(strstr(text, "retries") == strstr(text, "retries: a default"));
    CHECK_CONTAINS(text, "\n    # about C, line 1\n\n    # about C, line 2\n    - name: C\n");
    /* A block scalar's header line cannot end in a comment: it goes above. */
    CHECK_CONTAINS(text, "        # about the command\n        # runs in sh\n        command: |\n");
    CHECK_CONTAINS(text, "          # a line of the script, not a comment\n");
    CHECK_CONTAINS(text, "echo \"a # b\"  # still the script\n");
    CHECK_CONTAINS(text, "argv_note: \"x # y\"  # a real comment\n");
    CHECK_CONTAINS(text, "\n# footer\n");
    back = model_of("c.yaml", text);
    CHECK(back && json_equal(back, m));
    json_decref(back);
    again = emit_ok(m, text, "c.yaml");
    CHECK_STR(again, text);
    /* A removed task's comments go with it. */
    json_array_remove(json_object_get(m, "tasks"), 0);
    json_object_set_new(json_array_get(json_object_get(m, "tasks"), 0), "inputs",
                        json_pack("[s, s, s]", "A", "KEY", "HOME_DIR"));
    free(again);
    again = emit_ok(m, text, "c.yaml");
    CHECK(again && !strstr(again, "about S") && !strstr(again, "what S sets"));
    CHECK_CONTAINS(again, "# about C, line 2\n");
out:
    json_decref(m);
    free(text);
    free(again);
}

/*
 * The source is a buffer of a length with no NUL after it (as `flowbus fmt`
 * and the fuzzer hand it over): a trailing comment on its last line is copied
 * by its length. The sanitizer pass (strict_string_checks) fails this test if
 * any copy looks past the buffer for a NUL, as strndup did.
 */
static void test_source_without_nul(void)
{
    static const char src[] = "workflow:\n"
                              "  name: n\n"
                              "  tasks:\n"
                              "    - name: S\n"
                              "      plugin: start\n"
                              "      outputs: [\"TRUE\"]  # the last line, no newline";
    size_t len = sizeof src - 1;
    char *buf = malloc(len), *text = NULL;
    struct wf_diags d = {0};

    CHECK(buf != NULL);
    if (!buf)
        goto out;
    memcpy(buf, src, len);
    text = emit__format_text("n.yaml", buf, len, &d);
    CHECK(text != NULL);
    CHECK_CONTAINS(text, "outputs: [\"TRUE\"]  # the last line, no newline\n");
out:
    wf_diags_free(&d);
    free(text);
    free(buf);
}

/* Lines are counted as libyaml counts them: a lone \r, NEL, LS and PS break lines too. */
static void test_line_breaks_as_yaml_counts_them(void)
{
    static const char src[] = "# one\r# two\xc2\x85# three\n"
                              "workflow:\r\n"
                              "  env:\n"
                              "    T: \"1\"  # t\r"
                              "  tasks:\n"
                              "    - {name: S, plugin: start, outputs: [\"TRUE\"]}  # s\n";
    json_t *m = model_of("breaks.yaml", src);
    char *text = m ? emit_ok(m, src, "breaks.yaml") : NULL, *again;

    CHECK_STR(text, "# one\n# two\n# three\nworkflow:\n  env:\n    T: \"1\"  # t\n  tasks:\n"
                    "    - name: S  # s\n      plugin: start\n      outputs: [\"TRUE\"]\n");
    again = text ? emit_ok(m, text, "breaks.yaml") : NULL;
    CHECK_STR(again, text);
    json_decref(m);
    free(text);
    free(again);
    /* A byte order mark is not part of the first line (libyaml drops it). */
    {
        static const char bom[] = "\xEF\xBB\xBF# header\nworkflow:  # w\n  tasks:\n"
                                  "    - {name: S, plugin: start, outputs: [\"TRUE\"]}\n";
        json_t *bm = model_of("bom.yaml", bom);
        char *bt = bm ? emit_ok(bm, bom, "bom.yaml") : NULL;
        CHECK_STR(bt, "# header\nworkflow:  # w\n  tasks:\n    - name: S\n      plugin: start\n"
                      "      outputs: [\"TRUE\"]\n");
        json_decref(bm);
        free(bt);
    }
}

static void test_env_from_source(void)
{
    static const char src[] = "workflow:\n"
                              "  env:\n"
                              "    AUTH_TOKEN: \"{{ENV:HOME_DIR}}\"\n"
                              "    API_KEY: {value: \"k3y-value\", secret: true}\n"
                              "    HOME: \"{{ENV:HOME_DIR}}/x\"\n"
                              "    PLAIN: \"p\"\n"
                              "  tasks:\n"
                              "    - {name: S, plugin: start, outputs: [\"TRUE\"]}\n";
    json_t *m = json_pack("{s:s, s:{s:s, s:s, s:s, s:s, s:s}, s:[{s:s, s:s, s:[s]}]}", "name",
                          "envs", "env", "AUTH_TOKEN", "<secret>", "API_KEY", "<secret>", "HOME",
                          "/home/me/x", "PLAIN", "changed", "NEW", "n", "tasks", "name", "S",
                          "plugin", "start", "outputs", "TRUE");
    struct emit_diags d;
    char *text = emit_ok(m, src, "envs.yaml");

    CHECK(text != NULL);
    CHECK(text && !strstr(text, "<secret>"));
    CHECK_CONTAINS(text, "    AUTH_TOKEN: \"{{ENV:HOME_DIR}}\"\n");
    CHECK_CONTAINS(text, "    API_KEY: {value: k3y-value, secret: true}\n");
    /* Unchanged once resolved: the reference stays; changed: the new value. */
    CHECK_CONTAINS(text, "    HOME: \"{{ENV:HOME_DIR}}/x\"\n");
    CHECK_CONTAINS(text, "    PLAIN: changed\n");
    CHECK_CONTAINS(text, "    NEW: \"n\"\n"); /* n is a YAML 1.1 boolean */
    free(text);
    /* A placeholder the file cannot resolve is an error at its path, never a value. */
    text = emit(m, NULL, "envs.yaml", &d);
    CHECK(text == NULL);
    CHECK(d.n == 2 && !strcmp(d.items[0].path, "env.AUTH_TOKEN") &&
          !strcmp(d.items[1].path, "env.API_KEY"));
    emit__diags_free(&d);
    /* The editor may mark a new secret. */
    json_object_set_new(json_object_get(m, "env"), "AUTH_TOKEN",
                        json_pack("{s:s, s:b}", "value", "{{ENV:TOK}}", "secret", 1));
    json_object_del(json_object_get(m, "env"), "API_KEY");
    text = emit_ok(m, NULL, "envs.yaml");
    CHECK_CONTAINS(text, "    AUTH_TOKEN: {value: \"{{ENV:TOK}}\", secret: true}\n");
    free(text);
    json_decref(m);
}

static void test_defaults_left_out(void)
{
    static const char src[] = "workflow:\n"
                              "  mode: oneshot\n"
                              "  tasks:\n"
                              "    - name: S\n"
                              "      plugin: start\n"
                              "      outputs: [\"TRUE\"]\n"
                              "      inputs: []\n"
                              "      params: {}\n"
                              "      requires_auth: false\n"
                              "      execution: {timeout: 0, retries: 0, workers: 1, "
                              "restart: on-failure, async: false}\n"
                              "    - name: E\n"
                              "      plugin: end\n"
                              "      execution: {depends_on: [S], timeout: 2.50}\n";
    json_t *m = model_of("defaults.yaml", src);
    char *text = m ? emit_ok(m, src, "defaults.yaml") : NULL;

    /* No name: in the file, and the model's is the file's base name: still none. */
    CHECK_STR(text, "workflow:\n"
                    "  tasks:\n"
                    "    - name: S\n"
                    "      plugin: start\n"
                    "      outputs: [\"TRUE\"]\n"
                    "\n"
                    "    - name: E\n"
                    "      plugin: end\n"
                    "      depends_on: [S]\n"
                    "      execution: {timeout: 2.5}\n");
    json_decref(m);
    free(text);
}

/* execution.overflow is written when it is not the default (block), after queue. */
static void test_overflow_written_unless_default(void)
{
    static const char src[] = "workflow:\n"
                              "  mode: reactive\n"
                              "  tasks:\n"
                              "    - name: S\n"
                              "      plugin: mqtt-in\n"
                              "      outputs: [V]\n"
                              "      execution: {overflow: block}\n"
                              "    - name: E\n"
                              "      plugin: mqtt-out\n"
                              "      inputs: [V]\n"
                              "      execution: {overflow: drop-oldest, restart: never, queue: 1}\n";
    json_t *m = model_of("overflow.yaml", src);
    char *text = m ? emit_ok(m, src, "overflow.yaml") : NULL;

    CHECK_STR(text, "workflow:\n"
                    "  mode: reactive\n"
                    "  tasks:\n"
                    "    - name: S\n"
                    "      plugin: mqtt-in\n"
                    "      outputs: [V]\n"
                    "\n"
                    "    - name: E\n"
                    "      plugin: mqtt-out\n"
                    "      inputs: [V]\n"
                    "      execution: {queue: 1, overflow: drop-oldest, restart: never}\n");
    json_decref(m);
    free(text);
}

static void test_shape_errors_have_paths(void)
{
    json_t *m = json_pack("{s:s, s:i, s:[{s:s, s:s, s:[s, i]}, {s:s, s:s}, s:i]}", "name", "bad",
                          "colour", 3, "tasks", "name", "A", "plugin", "cmd", "inputs", "X", 7,
                          "name", "B", "plugin", "cmd", "oops", 1);
    struct emit_diags d;
    char *text = emit(m, NULL, "bad.yaml", &d);
    int seen_colour = 0, seen_input = 0, seen_task = 0;

    CHECK(text == NULL);
    for (size_t i = 0; i < d.n; i++) {
        seen_colour |= !strcmp(d.items[i].path, "colour");
        seen_input |= !strcmp(d.items[i].path, "tasks[0].inputs[1]");
        seen_task |= !strcmp(d.items[i].path, "tasks[2]");
    }
    CHECK(seen_colour && seen_input && seen_task);
    emit__diags_free(&d);
    json_decref(m);
}

static void test_model_to_yaml_maps_loader_errors(void)
{
    json_t *m = json_pack("{s:s, s:[{s:s, s:s, s:[s]}, {s:s, s:s, s:[s]}]}", "name", "loader",
                          "tasks", "name", "S", "plugin", "start", "outputs", "TRUE", "name", "E",
                          "plugin", "end", "inputs", "NOBODY");
    struct emit_options eo = {0};
    char *yaml = NULL;
    json_t *diags = NULL, *d;
    size_t i;
    int found = 0;

    eo.file = "loader.yaml";
    CHECK(emit__model_to_yaml(m, &eo, NULL, &yaml, &diags) == 1);
    CHECK(yaml != NULL);
    json_array_foreach(diags, i, d)
    {
        if (!strcmp(json_string_value(json_object_get(d, "path")), "tasks[1].inputs[0]") &&
            json_integer_value(json_object_get(d, "line")) > 0)
            found = 1;
    }
    CHECK(found);
    free(yaml);
    json_decref(diags);
    /* Fixed, it is valid. */
    json_array_set_new(json_object_get(json_array_get(json_object_get(m, "tasks"), 1), "inputs"), 0,
                       json_string("TRUE"));
    CHECK(emit__model_to_yaml(m, &eo, NULL, &yaml, &diags) == 0);
    CHECK(yaml && json_array_size(diags) == 0);
    free(yaml);
    json_decref(diags);
    json_decref(m);
}

static void test_folded_block_kept(void)
{
    static const char src[] = "workflow:\n"
                              "  name: folded\n"
                              "  tasks:\n"
                              "    - name: S\n"
                              "      plugin: custom\n"
                              "      params:\n"
                              "        cmd: >-\n"
                              "            first part\n"
                              "            && second part\n"
                              "        other: 1\n";
    json_t *m = model_of("folded.yaml", src), *params;
    char *text = m ? emit_ok(m, src, "folded.yaml") : NULL, *again = NULL;

    CHECK_CONTAINS(text, "      params:\n        cmd: >-\n          first part\n"
                         "          && second part\n        other: 1\n");
    again = text ? emit_ok(m, text, "folded.yaml") : NULL;
    CHECK_STR(again, text);
    /* Changed, it is an ordinary string. */
    params = json_object_get(json_array_get(json_object_get(m, "tasks"), 0), "params");
    json_object_set_new(params, "cmd", json_string("first part && third part"));
    free(again);
    again = emit_ok(m, text, "folded.yaml");
    CHECK_CONTAINS(again, "      params: {cmd: \"first part && third part\", other: 1}\n");
    json_decref(m);
    free(text);
    free(again);
    /* libyaml reads a line indented less than the key as a comment after an
     * empty block: that is no folded text to keep (found by fuzz_emit). */
    {
        static const char odd[] = "workflow:\n  tasks:\n    - name: S\n      plugin: custom\n"
                                  "      params:\n        cmd: >-\n     # not text\n";
        json_t *om = model_of("odd.yaml", odd);
        char *ot = om ? emit_ok(om, odd, "odd.yaml") : NULL;
        json_t *back = ot ? model_of("odd.yaml", ot) : NULL;
        CHECK(back && json_equal(back, om));
        CHECK_CONTAINS(ot, "# not text");
        json_decref(om);
        json_decref(back);
        free(ot);
    }
    /* A folded block on the file's last line (found by fuzz_emit: a blank line was added). */
    {
        static const char end[] = "workflow:\n  tasks:\n    - name: S\n      plugin: custom\n"
                                  "      params:\n        cmd: >-\n          a\n          b\n";
        json_t *em = model_of("end.yaml", end);
        char *et = em ? emit_ok(em, end, "end.yaml") : NULL;
        CHECK_STR(et, end);
        json_decref(em);
        free(et);
    }
}

static void test_same_model(void)
{
    static const char src[] = "workflow:\n  name: same\n  tasks:\n"
                              "    - {name: S, plugin: start, outputs: [\"TRUE\"], "
                              "execution: {timeout: 2}}\n";
    json_t *m = model_of("same.yaml", src), *exec;
    struct wf_load_options lo = {0};

    lo.getenv_fn = test_env;
    CHECK(m != NULL);
    CHECK(emit__same_model(m, "same.yaml", src, strlen(src), &lo) == 1);
    /* The browser writes 2.0 as 2: the same model. */
    exec = json_object_get(json_array_get(json_object_get(m, "tasks"), 0), "execution");
    json_object_set_new(exec, "timeout", json_integer(2));
    CHECK(emit__same_model(m, "same.yaml", src, strlen(src), &lo) == 1);
    json_object_set_new(exec, "timeout", json_integer(3));
    CHECK(emit__same_model(m, "same.yaml", src, strlen(src), &lo) == 0);
    json_decref(m);
}

/* A small deterministic generator, so that a failure can be replayed. */
static unsigned long rnd_state = 12345;

static unsigned rnd(unsigned n)
{
    rnd_state = rnd_state * 6364136223846793005UL + 1442695040888963407UL;
    return (unsigned)(rnd_state >> 33) % n;
}

static json_t *random_value(int depth)
{
    static const char *const pieces[] = {
        "a", "Z", " ", "  ", "#",  ":",    "-",    "\n",  "'", "\"", "\\", "\t", "\xc3\xa9",
        "0", "1", ".", "y",  "e",  "{",    "[",    ",",   "&", "*",  "!",  "|",  ">",
        "%", "@", "`", "~",  "\r", "\x01", "null", "yes", "=", "$",  "/"};
    unsigned kind = rnd(depth > 2 ? 5 : 7);
    char buf[128];
    size_t len = 0;

    switch (kind) {
    case 0:
        return json_integer((json_int_t)rnd(2000000) - 1000000);
    case 1:
        return json_real(((double)rnd(2000000) - 1000000) / (1 + rnd(1000)));
    case 2:
        return json_boolean(rnd(2));
    case 5: {
        json_t *a = json_array();
        for (unsigned i = rnd(5); i > 0; i--)
            json_array_append_new(a, random_value(depth + 1));
        return a;
    }
    case 6: {
        json_t *o = json_object();
        for (unsigned i = rnd(5); i > 0; i--) {
            json_t *k = random_value(3);
            if (json_is_string(k))
                json_object_set_new(o, json_string_value(k), random_value(depth + 1));
            json_decref(k);
        }
        return o;
    }
    default:
        for (unsigned i = rnd(8); i > 0; i--) {
            const char *p = pieces[rnd(sizeof pieces / sizeof pieces[0])];
            if (len + strlen(p) < sizeof buf) {
                memcpy(buf + len, p, strlen(p));
                len += strlen(p);
            }
        }
        return json_stringn(buf, len);
    }
}

static void test_random_params_round_trip(void)
{
    for (int round = 0; round < 400; round++) {
        json_t *params = json_object(), *m, *back;
        char *text;
        for (unsigned i = 1 + rnd(6); i > 0; i--) {
            json_t *k = random_value(3);
            if (json_is_string(k))
                json_object_set_new(params, json_string_value(k), random_value(1));
            json_decref(k);
        }
        m = json_pack("{s:s, s:[{s:s, s:s, s:O}]}", "name", "random", "tasks", "name", "T",
                      "plugin", "custom", "params", params);
        text = emit_ok(m, NULL, "random.yaml");
        back = text ? model_of("random.yaml", text) : NULL;
        if (!back || !json_equal(params_of(back), params)) {
            char *want = json_dumps(params, 0);
            fprintf(stderr, "round %d: params %s\nwritten as:\n%s", round, want, text);
            free(want);
            CHECK(0);
        }
        json_decref(back);
        json_decref(m);
        json_decref(params);
        free(text);
    }
}

/*
 * Comments put at random places of a canonical file (lines of their own, ends
 * of lines): when the file still means the same workflow, its canonical text
 * means it too, keeps every comment, and is canonical.
 */
static void test_random_comments(const char *path)
{
    size_t len;
    char *text = read_file(path, &len);
    json_t *model = text ? model_of(path, text) : NULL;
    int tried = 0;

    CHECK(model != NULL);
    for (int round = 0; model && round < 60; round++) {
        struct sbuf_ {
            char *s;
            size_t len;
        } v = {malloc(len * 2 + 4096), 0};
        char tags[8][32];
        int n_tags = 0;
        json_t *vm;
        struct wf_diags d = {0};
        char *once, *twice;

        for (const char *p = text; *p;) {
            const char *nl = strchr(p, '\n');
            size_t n = nl ? (size_t)(nl - p) + 1 : strlen(p);
            unsigned what = rnd(12);
            if (what == 0 && n_tags < 8) {
                n = nl ? (size_t)(nl - p) : n;
                snprintf(tags[n_tags], sizeof tags[0], "# trailing %d.%d", round, n_tags);
                v.len += (size_t)sprintf(v.s + v.len, "%.*s  %s\n", (int)n, p, tags[n_tags]);
                n_tags++;
                p += n + (nl ? 1 : 0);
                continue;
            }
            if (what == 1 && n_tags < 8) {
                snprintf(tags[n_tags], sizeof tags[0], "# own line %d.%d", round, n_tags);
                v.len += (size_t)sprintf(v.s + v.len, "%*s%s\n", (int)rnd(9), "", tags[n_tags]);
                n_tags++;
            }
            memcpy(v.s + v.len, p, n);
            v.len += n;
            v.s[v.len] = 0;
            p += n;
        }
        quiet = 1;
        vm = model_of(path, v.s);
        quiet = 0;
        if (!vm || !json_equal(vm, model)) {
            /* A comment inside a block scalar is text: not this test's case. */
            json_decref(vm);
            free(v.s);
            continue;
        }
        tried++;
        once = emit__format_text(path, v.s, v.len, &d);
        wf_diags_free(&d);
        twice = once ? emit__format_text(path, once, strlen(once), &d) : NULL;
        wf_diags_free(&d);
        CHECK(once && twice && !strcmp(once, twice));
        {
            json_t *back = once ? model_of(path, once) : NULL;
            CHECK(back && json_equal(back, model));
            json_decref(back);
        }
        for (int i = 0; once && i < n_tags; i++)
            if (!strstr(once, tags[i])) {
                fprintf(stderr, "%s: %s lost from:\n%s\ngiving:\n%s", path, tags[i], v.s, once);
                CHECK(0);
            }
        free(once);
        free(twice);
        json_decref(vm);
        free(v.s);
    }
    CHECK(tried > 10);
    json_decref(model);
    free(text);
}

static void test_random_comments_in_shipped_workflows(void)
{
    static const char *const files[] = {"disk-monitor.yaml", "iot-thermostat.yaml",
                                        "parallel-pipeline.yaml", "secured.yaml"};
    DIR *d = opendir(INTEGRATION_DIR);
    struct dirent *e;

    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", SHIPPED_DIR, files[i]);
        test_random_comments(path);
    }
    /* The test workflows are not canonical: comments are kept through the rewrite too. */
    while (d && (e = readdir(d)) != NULL) {
        char path[1024];
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".yaml") != 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", INTEGRATION_DIR, e->d_name);
        test_random_comments(path);
    }
    if (d)
        closedir(d);
}

int main(void)
{
    RUN(test_roundtrip_every_workflow);
    RUN(test_scalars_stay_strings);
    RUN(test_literal_blocks);
    RUN(test_long_keys);
    RUN(test_numbers_keep_their_type);
    RUN(test_short_lists_flow_long_lists_block);
    RUN(test_added_task_is_one_block);
    RUN(test_comments_kept);
    RUN(test_source_without_nul);
    RUN(test_line_breaks_as_yaml_counts_them);
    RUN(test_env_from_source);
    RUN(test_defaults_left_out);
    RUN(test_overflow_written_unless_default);
    RUN(test_shape_errors_have_paths);
    RUN(test_model_to_yaml_maps_loader_errors);
    RUN(test_folded_block_kept);
    RUN(test_same_model);
    RUN(test_random_params_round_trip);
    RUN(test_random_comments_in_shipped_workflows);
    return check_summary();
}
