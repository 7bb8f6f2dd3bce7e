/*
 * humansize.c - formats byte counts like GNU df -h (gnulib human.c with
 * human_autoscale | human_base_1024 | human_ceiling): a number below 1024 is
 * printed exactly with no suffix; otherwise it is scaled by 1024 until below
 * 1024 and rounded UP, to one decimal when the scaled value is below 10, to a
 * whole number otherwise. Rounding can carry into the next step: 9.95K shows
 * as "10K" and 1023.5K as "1.0M".
 */
#include "humansize.h"

#include <stdio.h>

char *humansize__format(uint64_t bytes, char *buf, size_t len)
{
    static const char suffixes[] = "KMGTPE";
    uint64_t unit = 1024, q, r;
    unsigned exp = 0;

    if (bytes < 1024) {
        snprintf(buf, len, "%llu", (unsigned long long)bytes);
        return buf;
    }
    /* Find the largest power of 1024 (up to E = 2^60) not above bytes. */
    while (exp < 5 && bytes / unit >= 1024) {
        unit *= 1024;
        exp++;
    }
    q = bytes / unit;
    r = bytes % unit;
    if (q < 10) {
        /* Tenths, rounded up. r < unit <= 2^60, so r * 10 + unit cannot overflow. */
        uint64_t tenths = q * 10 + (r * 10 + unit - 1) / unit;

        if (tenths < 100) {
            snprintf(buf, len, "%u.%u%c", (unsigned)(tenths / 10), (unsigned)(tenths % 10),
                     suffixes[exp]);
            return buf;
        }
        snprintf(buf, len, "10%c", suffixes[exp]);
        return buf;
    }
    q += r != 0;
    if (q >= 1024 && exp < 5) {
        snprintf(buf, len, "1.0%c", suffixes[exp + 1]);
        return buf;
    }
    snprintf(buf, len, "%llu%c", (unsigned long long)q, suffixes[exp]);
    return buf;
}
