/*
 * clock.h - the two clocks of the coordinator.
 *
 * Deadlines and durations use the monotonic clock, which never jumps; what
 * goes on the bus (state timestamps) and what people read uses the wall clock,
 * as Unix time in seconds with a microsecond fraction.
 */
#ifndef FLOWBUS_CORE_CLOCK_H
#define FLOWBUS_CORE_CLOCK_H

/* Seconds on CLOCK_MONOTONIC. Thread-safe. */
double clock__mono(void);

/* Unix time in seconds, microsecond resolution. Thread-safe. */
double clock__wall(void);

#endif
