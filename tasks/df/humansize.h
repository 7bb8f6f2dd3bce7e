/*
 * humansize.h - byte counts in the style of GNU `df -h`: powers of 1024 with
 * the suffixes K, M, G, T, P, E; one decimal below 10 and none from 10 up;
 * always rounded up, because that is what df prints and users compare the two.
 */
#ifndef FLOWBUS_TASKS_HUMANSIZE_H
#define FLOWBUS_TASKS_HUMANSIZE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Writes bytes as df -h would print it ("0", "1000", "1.0K", "3.4G", "12G",
 * "512M") into buf (at most len bytes, NUL-terminated; 8 bytes always suffice).
 * Returns buf.
 */
char *humansize__format(uint64_t bytes, char *buf, size_t len);

#endif
