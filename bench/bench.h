/*
 * bench.h - clocks and percentiles shared by the benchmark programs.
 *
 * Everything is static inline so that each program stays one file and the
 * header adds no link-time dependency. Wall time (CLOCK_REALTIME) is used
 * where two processes compare timestamps; monotonic time everywhere else.
 */
#ifndef FLOWBUS_BENCH_H
#define FLOWBUS_BENCH_H

#include <stdlib.h>
#include <time.h>

static inline double bench_wall(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline double bench_mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void bench_sleep(double seconds)
{
    struct timespec ts;

    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* The q-quantile (0..1) of v[0..n), nearest rank; sorts v in place. 0 if n is 0. */
static inline double bench_quantile(double *v, size_t n, double q)
{
    size_t rank;

    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, bench_cmp_double);
    rank = (size_t)(q * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return v[rank - 1];
}

#endif
