/*
 * sse.h - the event logs and the Server-Sent Events streams of `flowbus ui`.
 *
 * Each run has a log of its events (docs/http-api.md, "the live stream"),
 * and the list of runs has one too (key ""). A log keeps its last events in a
 * ring, each already formatted as an SSE frame with its id; ids of one log
 * are consecutive and start above every id an earlier server process could
 * have given (they start at the server's start time in ms times 1000), so a
 * Last-Event-ID from another process is never taken for one of ours.
 *
 * A stream reads a log from a given id on: the response's content reader
 * copies the frames it has not sent and, when there are none, suspends its
 * connection (MHD_suspend_connection); sse__emit resumes it. An idle stream
 * thus holds no thread. A stream that fell behind the ring ends, and its
 * client, reconnecting with its Last-Event-ID, starts from a snapshot.
 *
 * Thread-safe: one lock guards the hub. Callers that must see a log agree
 * with the run view take the view lock first (internal.h).
 */
#ifndef FLOWBUS_CORE_UI_SSE_H
#define FLOWBUS_CORE_UI_SSE_H

#include <jansson.h>
#include <microhttpd.h>

#define SSE_RUN_EVENTS 4096  /* events kept per run */
#define SSE_LIST_EVENTS 1024 /* events kept for the list of runs */

struct sse_hub;

struct sse_hub *sse__new(void);
void sse__free(struct sse_hub *h);

/* Appends event (with data, stolen) to the log of key, creating it; wakes its streams. */
void sse__emit(struct sse_hub *h, const char *key, const char *event, json_t *data);

/*
 * The ids of the oldest and newest event the log of key holds, and the id
 * before its first event ever (*origin): *first == *origin + 1 while nothing
 * was dropped. Returns 0 when there is no such log.
 */
int sse__range(struct sse_hub *h, const char *key, unsigned long long *origin,
               unsigned long long *first, unsigned long long *last);

/*
 * A response that streams the log of key from the event after `after` on,
 * preceded (if snapshot_event is not NULL) by that event with data
 * snapshot (stolen) and the id `after`. NULL when out of memory, when the
 * server is stopping, or at UI_MAX_STREAMS open streams (*busy = 1).
 */
struct MHD_Response *sse__open(struct sse_hub *h, struct MHD_Connection *conn, const char *key,
                               unsigned long long after, const char *snapshot_event,
                               json_t *snapshot, int *busy);

/* Marks every stream due for a keepalive comment and wakes it (every 15 s). */
void sse__tick(struct sse_hub *h);

/* Forgets the log of key once it has no stream (the run's topics were removed). */
void sse__drop(struct sse_hub *h, const char *key);

/* Ends every stream and waits (up to timeout s) until libmicrohttpd has let them all go. */
void sse__shutdown(struct sse_hub *h, double timeout);

/* How many streams are open. */
size_t sse__count(struct sse_hub *h);

#endif
