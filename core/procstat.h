/*
 * procstat.h - what flowbus reads of another process in /proc/<pid>/stat: its
 * state, process group and start time. The start time (clock ticks after
 * boot) tells a live process from a later one that got the same pid, which is
 * how the run's launch records (core/run/adopt.c), the temporary directories'
 * owners (core/tmpdirs.c) and the local runs' records (core/localruns.c) know
 * whether the process they name is still the one that wrote them.
 */
#ifndef FLOWBUS_CORE_PROCSTAT_H
#define FLOWBUS_CORE_PROCSTAT_H

struct procstat {
    char state;               /* 'R', 'S', ... 'Z' (exited, not reaped), 'X' (dead) */
    long pgrp;                /* its process group */
    unsigned long long start; /* its start time, clock ticks after boot */
};

/* Reads pid's /proc/<pid>/stat into *st. 1 on success; 0 if it is gone or unreadable. */
int procstat__read(long pid, struct procstat *st);

/* pid's start time; 0 if it is gone. */
unsigned long long procstat__start_time(long pid);

/* 1 if pid has exited but is not reaped yet ('Z' or 'X'): it will never clean up either. */
int procstat__is_dead(const struct procstat *st);

#endif
