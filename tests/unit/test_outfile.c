/*
 * test_outfile.c - unit tests of the cmd task's $FLOWBUS_OUTPUT parser
 * (tasks/cmd/outfile.h): KEY=VALUE lines, KEY<<DELIMITER blocks, and the
 * errors of a malformed file, with their line numbers.
 */
#include "check.h"
#include "outfile.h"

/* What a parse gave: up to 8 pairs, copied. */
struct got {
    size_t n;
    char key[8][64];
    char value[8][256];
    size_t value_len[8];
};

static int collect(void *ctx, const char *key, size_t key_len, const char *value, size_t value_len)
{
    struct got *g = ctx;

    if (g->n == 8 || key_len >= 64 || value_len >= 256)
        return 99;
    memcpy(g->key[g->n], key, key_len);
    g->key[g->n][key_len] = '\0';
    memcpy(g->value[g->n], value, value_len);
    g->value[g->n][value_len] = '\0';
    g->value_len[g->n] = value_len;
    g->n++;
    return 0;
}

static int parse(const char *text, size_t len, struct got *g, struct outfile_error *e)
{
    memset(g, 0, sizeof *g);
    memset(e, 0, sizeof *e);
    return outfile_parse(text, len, collect, g, e);
}

static void test_pairs(void)
{
    const char text[] = "A=1\nB=two words\n\nC=\nD=a=b\r\nE=last without newline";
    struct got g;
    struct outfile_error e;

    CHECK(parse(text, sizeof text - 1, &g, &e) == 0);
    CHECK(g.n == 5);
    CHECK(strcmp(g.key[0], "A") == 0 && strcmp(g.value[0], "1") == 0);
    CHECK(strcmp(g.key[1], "B") == 0 && strcmp(g.value[1], "two words") == 0);
    CHECK(strcmp(g.key[2], "C") == 0 && g.value_len[2] == 0);
    CHECK(strcmp(g.key[3], "D") == 0 && strcmp(g.value[3], "a=b") == 0);
    CHECK(strcmp(g.key[4], "E") == 0 && strcmp(g.value[4], "last without newline") == 0);
}

/* A heredoc holds newlines, and lines that look like KEY=VALUE are its text. */
static void test_heredoc(void)
{
    const char text[] = "M<<EOF\nhi\nSTATUS=approved\nEOF\nSTATUS=rejected\n";
    const char empty[] = "X<<END\nEND\nY<<END\n\nEND\n";
    const char crlf[] = "M<<E\r\none\r\ntwo\r\nE\r\n";
    struct got g;
    struct outfile_error e;

    CHECK(parse(text, sizeof text - 1, &g, &e) == 0);
    CHECK(g.n == 2);
    CHECK(strcmp(g.key[0], "M") == 0 && strcmp(g.value[0], "hi\nSTATUS=approved") == 0);
    CHECK(strcmp(g.key[1], "STATUS") == 0 && strcmp(g.value[1], "rejected") == 0);

    CHECK(parse(empty, sizeof empty - 1, &g, &e) == 0);
    CHECK(g.n == 2 && g.value_len[0] == 0 && g.value_len[1] == 0);

    /* The delimiter line and the value's last line lose their "\r"; inner ones keep it. */
    CHECK(parse(crlf, sizeof crlf - 1, &g, &e) == 0);
    CHECK(g.n == 1 && strcmp(g.value[0], "one\r\ntwo") == 0);
}

/* A NUL byte is passed on (the caller refuses it), never a silent end of the value. */
static void test_nul_passed_on(void)
{
    const char text[] = "A=a\0b\n";
    struct got g;
    struct outfile_error e;

    CHECK(parse(text, sizeof text - 1, &g, &e) == 0);
    CHECK(g.n == 1 && g.value_len[0] == 3);
}

static void test_errors(void)
{
    const char no_end[] = "A=1\nM<<EOF\nnever ended\n";
    const char junk[] = "A=1\n\nnot a pair\n";
    const char leading_space[] = " A=1\n";
    const char no_delim[] = "A<<\nx\n\n";
    const char bad_key[] = "A-B=1\n";
    struct got g;
    struct outfile_error e;

    CHECK(parse(no_end, sizeof no_end - 1, &g, &e) == -1);
    CHECK(e.line == 2 && strstr(e.what, "DELIMITER") != NULL);
    CHECK(parse(junk, sizeof junk - 1, &g, &e) == -1);
    CHECK(e.line == 3 && g.n == 1);
    CHECK(parse(leading_space, sizeof leading_space - 1, &g, &e) == -1 && e.line == 1);
    CHECK(parse(no_delim, sizeof no_delim - 1, &g, &e) == -1 && e.line == 1);
    CHECK(parse(bad_key, sizeof bad_key - 1, &g, &e) == -1 && e.line == 1);
}

/* The callback stops the parse with its own code. */
static void test_stop(void)
{
    char text[9 * 4 + 1] = "";
    struct got g;
    struct outfile_error e;

    for (int i = 0; i < 9; i++)
        strcat(text, "K=v\n");
    CHECK(parse(text, strlen(text), &g, &e) == 99);
    CHECK(g.n == 8);
}

int main(void)
{
    RUN(test_pairs);
    RUN(test_heredoc);
    RUN(test_nul_passed_on);
    RUN(test_errors);
    RUN(test_stop);
    return check_summary();
}
