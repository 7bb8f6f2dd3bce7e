/*
 * format.c - times, durations, exit details and tables for the clients (see format.h).
 */
#include "format.h"

#include <stdio.h>
#include <time.h>

void format__duration(char *buf, size_t len, double s)
{
    /* Whole minutes, hours and days: the casts truncate a positive number on purpose. */
    if (s < 0)
        snprintf(buf, len, "-");
    else if (s < 10)
        snprintf(buf, len, "%.3fs", s);
    else if (s < 60)
        snprintf(buf, len, "%.1fs", s);
    else if (s < 3600)
        snprintf(buf, len, "%dm%02ds", (int)s / 60, (int)s % 60);
    else if (s < 86400)
        snprintf(buf, len, "%dh%02dm", (int)s / 3600, (int)s % 3600 / 60);
    else
        snprintf(buf, len, "%dd%02dh", (int)(s / 86400), (int)s % 86400 / 3600);
}

void format__local_time(char *buf, size_t len, double t)
{
    time_t secs = (time_t)t;
    struct tm tm;

    if (t <= 0 || !localtime_r(&secs, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm))
        snprintf(buf, len, "-");
}

void format__exit(const struct view_task *t, char *buf, size_t len)
{
    const struct task_report *r = &t->report;

    if (t->reported && r->has & TM_SIGNAL && r->info.signal > 0)
        snprintf(buf, len, "signal %d", r->info.signal);
    else if (t->reported && r->has & TM_EXIT)
        snprintf(buf, len, "%d", r->info.exit_code);
    else
        snprintf(buf, len, "-");
}

void format__activation(const struct view_task *t, char *buf, size_t len)
{
    const struct task_report *r = &t->report;
    const char *result = r->has & TM_RESULT ? r->info.result : NULL;
    size_t used;

    if (!t->reported || !(r->has & TM_ACTIVATION)) {
        snprintf(buf, len, "-");
        return;
    }
    used = (size_t)snprintf(buf, len, "%lu%s%s", r->info.activation, result ? " " : "",
                            result ? result : "");
    if (r->has & TM_QUEUED && r->info.queued > 0 && used < len)
        used += (size_t)snprintf(buf + used, len - used, ", %ld queued", r->info.queued);
    if (r->has & TM_DROPPED && r->info.dropped > 0 && used < len)
        snprintf(buf + used, len - used, ", %ld dropped", r->info.dropped);
}

void format__table(const json_t *rows, const char *indent)
{
    size_t width[16] = {0}, i, k;
    json_t *row, *cell;

    json_array_foreach(rows, i, row)
        json_array_foreach(row, k, cell) if (k < 16 && json_string_length(cell) > width[k])
            width[k] = json_string_length(cell);
    json_array_foreach(rows, i, row)
    {
        size_t n = json_array_size(row);
        /* Empty cells at the end of a row would only leave trailing blanks. */
        while (n > 1 && json_string_length(json_array_get(row, n - 1)) == 0)
            n--;
        fputs(indent, stdout);
        json_array_foreach(row, k, cell)
        {
            if (k >= n)
                break;
            if (k + 1 < n)
                printf("%-*s  ", (int)width[k < 16 ? k : 15], json_string_value(cell));
            else
                fputs(json_string_value(cell), stdout);
        }
        fputc('\n', stdout);
    }
}
