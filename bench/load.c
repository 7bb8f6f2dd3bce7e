/*
 * load.c - fbbench-load: times the workflow loader (core/model/) in process,
 * without flowbus's start-up, on the files given.
 *
 *     fbbench-load RUNS FILE...
 *
 * Each file is loaded RUNS times with workflow__load, the coordinator's own
 * path from the file to the checked model (reading, YAML, the walk, the
 * checks); the median is printed as one line "f0_s=... f0_errors=N f0_bytes=B
 * f1_s=...", in the order of the files, for bench/driver.py. A file may well
 * be refused: the time of refusing a hostile file (200,000 levels of `[[[`)
 * is the figure of interest there, with errors saying it was refused.
 */
#include "bench.h"
#include "workflow.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

int main(int argc, char **argv)
{
    long runs = argc > 1 ? strtol(argv[1], NULL, 10) : 0;
    double *times = NULL;
    int code = 1;

    if (argc < 3 || runs < 1 || runs > 1000) {
        fprintf(stderr, "usage: fbbench-load RUNS FILE...\n");
        goto out;
    }
    times = calloc((size_t)runs, sizeof *times);
    if (!times)
        goto out;
    for (int f = 2; f < argc; f++) {
        size_t errors = 0;
        struct stat st;

        for (long r = 0; r < runs; r++) {
            struct wf_diags d = {0};
            double t0 = bench_mono();
            struct workflow *wf = workflow__load(argv[f], NULL, &d);

            times[r] = bench_mono() - t0;
            errors = d.n_errors;
            workflow__free(wf);
            wf_diags_free(&d);
        }
        qsort(times, (size_t)runs, sizeof *times, bench_cmp_double);
        printf("%sf%d_s=%.6f f%d_errors=%zu f%d_bytes=%lld", f > 2 ? " " : "", f - 2,
               times[runs / 2], f - 2, errors, f - 2,
               stat(argv[f], &st) == 0 ? (long long)st.st_size : -1LL);
    }
    printf("\n");
    code = 0;
out:
    free(times);
    return code;
}
