/*
 * clock.c - the coordinator's monotonic and wall clocks (see clock.h).
 */
#include "clock.h"

#include <sys/time.h>
#include <time.h>

double clock__mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double clock__wall(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}
