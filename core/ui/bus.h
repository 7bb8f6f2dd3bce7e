/*
 * bus.h - the one MQTT client of `flowbus ui`.
 *
 * It follows flowbus/# on the broker with the run view of core/view.h (the
 * one `flowbus status` reads), so that the browser sees every run on the
 * broker, started here or from a terminal, and it turns each change of the
 * view into events of the SSE logs (sse.h). A second connection publishes
 * control commands and variables, since a bus handle serves one thread at a
 * time and the follower's thread waits on its own.
 */
#ifndef FLOWBUS_CORE_UI_BUS_H
#define FLOWBUS_CORE_UI_BUS_H

#include <flowbus/protocol.h>
#include <pthread.h>
#include <stddef.h>

#include "view.h"

struct ui;
struct ui_bus;

/*
 * Connects both clients to ui's broker, subscribes, reads the retained
 * snapshot into the view and starts the follower's thread. NULL with a
 * reason in err.
 */
struct ui_bus *bus__start(struct ui *ui, char *err, size_t errlen);

/* Stops the thread and disconnects. Accepts NULL. */
void bus__stop(struct ui_bus *b);

/* The view and its lock: hold the lock while reading the view. */
void bus__lock(struct ui_bus *b);
void bus__unlock(struct ui_bus *b);
struct view *bus__view(struct ui_bus *b);

/*
 * Publishes payload on topic, retained, QoS 1, and waits for the broker's
 * acknowledgement. Thread-safe. Returns FB_OK or the error.
 */
enum fb_err bus__publish(struct ui_bus *b, const char *topic, const char *payload, size_t len);

/*
 * Waits, up to timeout seconds, until the run run_id is on the broker (its
 * record or workflow retained) or stop(ctx) says to give up. Returns 1 if
 * it is.
 */
int bus__wait_run(struct ui_bus *b, const char *run_id, double timeout, int (*stop)(void *),
                  void *ctx);

/* The JSON of a run for GET /api/runs/{id} and snapshots: status --json, plus its variables. */
json_t *bus__run_json(struct ui *ui, const struct run_view *rv);

/* The entry of a run in GET /api/runs and the list's events. */
json_t *bus__list_entry(struct ui *ui, struct run_view *rv);

#endif
