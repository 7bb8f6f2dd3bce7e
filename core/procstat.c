/*
 * procstat.c - reads /proc/<pid>/stat (procstat.h says who needs it and why).
 * One reader, because the line is easy to misparse: the command name (field
 * 2) may hold spaces and ')', so the fields are counted after its last ')'.
 */
#include "procstat.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int procstat__read(long pid, struct procstat *st)
{
    char path[64], buf[1024], *close_paren;
    ssize_t n;
    int fd, ok = 0;

    memset(st, 0, sizeof *st);
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        goto out;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        goto out;
    buf[n] = '\0';
    /* pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt
     * majflt cmajflt utime stime cutime cstime priority nice num_threads
     * itrealvalue starttime: the start time is the 22nd field. */
    close_paren = strrchr(buf, ')');
    ok = close_paren &&
         sscanf(close_paren + 1,
                " %c %*d %ld %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
                &st->state, &st->pgrp, &st->start) == 3;
out:
    return ok;
}

unsigned long long procstat__start_time(long pid)
{
    struct procstat st;

    return procstat__read(pid, &st) ? st.start : 0;
}

int procstat__is_dead(const struct procstat *st)
{
    return st->state == 'Z' || st->state == 'X';
}
