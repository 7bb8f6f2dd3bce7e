/*
 * gc.h - `flowbus gc`: removes the retained topics of finished runs.
 */
#ifndef FLOWBUS_CORE_GC_H
#define FLOWBUS_CORE_GC_H

struct gc_options {
    const char *broker_url;
    const char *username; /* may be NULL */
    const char *password; /* may be NULL; never printed */
    double older_than;    /* seconds: only runs that finished at least this long ago */
    int quiet;
};

/* Returns the exit code: 0, or 4 when the broker cannot be used. */
int gc__main(const struct gc_options *o);

#endif
