/*
 * check.h - the smallest test runner that does the job, shared by every C
 * test: CHECK records a failure with its file and line and lets the test go
 * on, RUN runs one test function and counts it as passed or failed, and
 * check_summary prints "N passed, M failed" and gives the exit code. One
 * header, no framework, so that a unit test is a plain C program CTest runs.
 *
 * A test may call its functions through RUN (each function is one count) or
 * call them directly (each check is one count); either way a failed check
 * fails the program. A check outside RUN (in main, say) counts on its own,
 * so it is never lost.
 */
#ifndef FLOWBUS_TESTS_CHECK_H
#define FLOWBUS_TESTS_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_passed, check_failed, check_current_failed, check_in_run;

/* Inside RUN a failed check marks the running function failed (RUN counts
 * it); outside RUN the check is counted itself. */
static inline void check_record(int ok)
{
    if (check_in_run) {
        if (!ok)
            check_current_failed = 1;
    } else if (ok) {
        check_passed++;
    } else {
        check_failed++;
    }
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        int check_ok_ = (cond) ? 1 : 0;                                                            \
        if (!check_ok_)                                                                            \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
        check_record(check_ok_);                                                                   \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *check_a_ = (a), *check_b_ = (b);                                               \
        int check_ok_ = check_a_ && check_b_ && strcmp(check_a_, check_b_) == 0;                   \
        if (!check_ok_)                                                                            \
            fprintf(stderr, "%s:%d: check failed: %s == %s (\"%s\" vs \"%s\")\n", __FILE__,        \
                    __LINE__, #a, #b, check_a_ ? check_a_ : "(null)",                              \
                    check_b_ ? check_b_ : "(null)");                                               \
        check_record(check_ok_);                                                                   \
    } while (0)

#define CHECK_CONTAINS(hay, needle)                                                                \
    do {                                                                                           \
        const char *check_h_ = (hay), *check_n_ = (needle);                                        \
        int check_ok_ = check_h_ && strstr(check_h_, check_n_) != NULL;                            \
        if (!check_ok_)                                                                            \
            fprintf(stderr, "%s:%d: check failed: \"%s\" should contain \"%s\"\n", __FILE__,       \
                    __LINE__, check_h_ ? check_h_ : "(null)", check_n_);                           \
        check_record(check_ok_);                                                                   \
    } while (0)

#define RUN(test)                                                                                  \
    do {                                                                                           \
        check_current_failed = 0;                                                                  \
        check_in_run = 1;                                                                          \
        test();                                                                                    \
        check_in_run = 0;                                                                          \
        if (check_current_failed) {                                                                \
            fprintf(stderr, "FAIL %s\n", #test);                                                   \
            check_failed++;                                                                        \
        } else {                                                                                   \
            check_passed++;                                                                        \
        }                                                                                          \
    } while (0)

static inline int check_summary(void)
{
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
