/*
 * task_reactive.c - reactive mode (FLOWBUS_MODE=reactive, docs/protocol.md
 * "Reactive mode"): the event queue, the activations, and coalescing the
 * states of a flood.
 *
 * A reactive task stays alive across activations. Every publish on a trigger
 * input is an event; task_absorb.c hands events to task_reactive__event,
 * which keeps them in a bounded FIFO, and fb_task_next takes them one at a
 * time, snapshotting the inputs the activation sees. What a full FIFO does is
 * FLOWBUS_OVERFLOW: by default (block) the task stops taking messages from
 * the connection that carries its events until there is room, so they wait
 * in the bus and on the broker, in order, and none is lost (a QoS 1 flow
 * must not shed half of a burst); drop-oldest and drop-newest keep reading
 * and drop, counted, for a task that only wants recent (or first) values.
 * With a worker pool the events come from a second connection holding the
 * $share subscriptions (task_connect.c), because fb_bus cannot tell which
 * subscription a message matched and a worker also needs every value (not
 * just its share) to know the latest.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "task_internal.h"

/*
 * When a busy task's states are coalesced (count_activation). A task
 * reports every activation with its own "running" and "waiting" while it
 * runs at most ACTIVATION_RATE activations per second on average, in bursts
 * of up to ACTIVATION_BURST. A faster task would be limited by its own
 * states (three QoS 1 messages per event instead of one): it reports its
 * backlog at most every STATE_INTERVAL seconds and whenever it runs dry,
 * until its rate has stayed low long enough to regain half the burst.
 */
#define ACTIVATION_BURST 500.0
#define ACTIVATION_RATE 250.0
#define STATE_INTERVAL 0.05

enum fb_err task_reactive__init(fb_task *task, char *errbuf, size_t errlen)
{
    task->act.budget = ACTIVATION_BURST;
    task->act.budget_at = fb_clock_mono();
    task->queue.max = task->env.queue;
    task->queue.events = calloc(task->queue.max, sizeof *task->queue.events);
    if (task->queue.events == NULL) {
        err__set(errbuf, errlen, "out of memory");
        return FB_ERR_NOMEM;
    }
    return FB_OK;
}

void task_reactive__free(fb_task *task)
{
    size_t i;

    for (i = 0; i < task->queue.len; i++)
        free(task->queue.events[(task->queue.head + i) % task->queue.max].value);
    free(task->queue.events);
}

/*
 * Doubles the ring (block mode only): the queue goes past its bound only
 * while the task must read on although it cannot work (task_reactive__may_take),
 * so an event is never dropped. 0 when out of memory.
 */
static int grow(struct task_queue *q)
{
    size_t max = q->max * 2;
    struct event *events = calloc(max, sizeof *events);
    size_t i;

    if (events == NULL)
        return 0;
    for (i = 0; i < q->len; i++)
        events[i] = q->events[(q->head + i) % q->max];
    free(q->events);
    q->events = events;
    q->max = max;
    q->head = 0;
    return 1;
}

/* Counts a dropped event; the first drop of a burst is logged at once. */
static void count_drop(fb_task *task, const char *which)
{
    struct task_queue *q = &task->queue;

    q->dropped++;
    if (q->burst_drops++ == 0)
        fb_task_log(task, "queue full (%zu events): dropping the %s events (%lu dropped so far)",
                    task->env.queue, which, q->dropped);
}

/*
 * Appends an event (taking value). A full queue drops and counts the oldest
 * event or this one (FLOWBUS_OVERFLOW drop-oldest, drop-newest), or grows
 * (block: see grow); the burst's total is logged when the next activation
 * begins, so no drop goes unreported.
 */
static void enqueue(fb_task *task, size_t input, char *value)
{
    struct task_queue *q = &task->queue;
    struct event *slot;

    if (q->len == q->max && task->env.overflow == TASK_OVERFLOW_DROP_NEWEST) {
        free(value);
        count_drop(task, "newest");
        return;
    }
    if (q->len == q->max && task->env.overflow == TASK_OVERFLOW_BLOCK && !grow(q)) {
        log__emit(task->log, task->log_ctx, FB_LOG_ERROR, "out of memory: an event was lost");
        free(value);
        return;
    }
    if (q->len == q->max) {
        struct event *oldest = &q->events[q->head];

        free(oldest->value);
        q->head = (q->head + 1) % q->max;
        q->len--;
        count_drop(task, "oldest");
    }
    slot = &q->events[(q->head + q->len) % q->max];
    slot->input = input;
    slot->value = value;
    q->len++;
}

enum fb_err task_reactive__watch(fb_task *task, char *errbuf, size_t errlen)
{
    struct epoll_event ev;

    if (task->env.overflow != TASK_OVERFLOW_BLOCK || task->env.n_triggers == 0 ||
        task->epoll_fd >= 0)
        return FB_OK;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    task->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (task->epoll_fd < 0 ||
        epoll_ctl(task->epoll_fd, EPOLL_CTL_ADD, fb_bus_fd(task->bus), &ev) != 0) {
        err__set(errbuf, errlen, "epoll: %s", strerror(errno));
        return FB_ERR_SYSTEM;
    }
    return FB_OK;
}

int task_reactive__may_take(const fb_task *task, int from_share)
{
    if (!task->env.reactive || task->act.source || task->env.overflow != TASK_OVERFLOW_BLOCK ||
        task->queue.len < task->env.queue)
        return 1;
    /* A pool's own connection carries the values, control and states, not the events. */
    if (task->events_bus != NULL)
        return !from_share;
    return task->paused || task->stopped || !task_absorb__deps_done(task);
}

/*
 * fb_task_fd is level-triggered: a plugin polling it during an activation
 * (cmd does) would spin while the bus holds messages the task may not take.
 * On libmosquitto the bus is told to hold them (fb_bus_hold): its fd then
 * wakes the plugin only for the connection's own work, which absorb_bus
 * does with fb_bus_serve, so a long activation keeps its keepalive (the
 * process has no other thread). On Paho, whose threads keep the connection,
 * the bus's fd leaves the task's epoll set instead.
 */
void task_reactive__sync_fd(fb_task *task)
{
    struct epoll_event ev;
    fb_bus *bus = task->events_bus != NULL ? task->events_bus : task->bus;
    int held;

    if (task->epoll_fd < 0 || bus == NULL)
        return;
    held = !task_reactive__may_take(task, task->events_bus != NULL);
    if (held == task->queue.fd_held)
        return;
    if (fb_bus_hold(bus, held)) {
        task->queue.fd_held = held;
        return;
    }
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    if (epoll_ctl(task->epoll_fd, held ? EPOLL_CTL_DEL : EPOLL_CTL_ADD, fb_bus_fd(bus), &ev) == 0)
        task->queue.fd_held = held;
}

void task_reactive__event(fb_task *task, struct var *in, const char *value)
{
    size_t index = (size_t)(in - task->inputs);
    char *copy;

    /*
     * A source does not consume events; an event before all inputs are set
     * fires nothing. An event that comes before the depends_on tasks are done
     * is queued all the same and waits for them (fb_task_next): a dependency
     * publishes its outputs before its own state, so the event its output
     * causes always arrives before the "done" that lets it fire.
     */
    if (task->act.source || value == NULL || !task_absorb__inputs_set(task, index))
        return;
    copy = str__dup(value);
    if (copy == NULL) {
        log__emit(task->log, task->log_ctx, FB_LOG_ERROR, "out of memory: event on %s lost",
                  in->name);
        return;
    }
    enqueue(task, index, copy);
}

/*
 * Counts an activation against the budget, which regains ACTIVATION_RATE
 * activations a second up to ACTIVATION_BURST, and decides whether the
 * states of this activation are coalesced. Once the budget ran out the task
 * coalesces until half of it is back: in a flood the budget stays empty, so
 * the task does not flip between the two ways of reporting at every refill.
 */
static void count_activation(fb_task *task)
{
    struct task_activation *act = &task->act;
    double now = fb_clock_mono();

    act->budget += (now - act->budget_at) * ACTIVATION_RATE;
    if (act->budget > ACTIVATION_BURST)
        act->budget = ACTIVATION_BURST;
    act->budget_at = now;
    act->budget -= 1.0;
    if (act->budget < 0)
        act->coalesce = 1;
    else if (act->budget >= ACTIVATION_BURST / 2)
        act->coalesce = 0;
}

/*
 * Publishing the held-back "waiting" gives the broker the task's exact
 * counters again. Called only between
 * activations; a held-back state is always one that ended "done" (a failed
 * activation publishes its own, with exit and error).
 */
enum fb_err task_reactive__catch_up(fb_task *task)
{
    if (!task->state_behind)
        return FB_OK;
    return task_state__publish(task, FB_STATE_WAITING, task->act.ended_at, 1, -1, NULL);
}

/*
 * Publishes the recorded outputs (none if result is FAILED), then the state
 * "waiting" with the activation's result, and forgets the outputs so that
 * the next activation publishes only what it sets. While coalescing, an
 * activation that ended "done" with further events already queued publishes
 * no state: the next activation follows at once, and its heartbeat or the
 * queue running dry (fb_task_next) publishes the counters.
 */
static enum fb_err publish_activation(fb_task *task, enum fb_state result, int exit_code,
                                      const char *error)
{
    enum fb_err err = FB_OK;
    size_t i;

    /* Learn of control messages and queue the events that came meanwhile (for "queued"). */
    err = task_absorb__queued(task);
    for (i = 0; i < task->n_outputs && err == FB_OK && result == FB_STATE_DONE; i++) {
        if (task->outputs[i].value != NULL && task_log__has_secret(task, task->outputs[i].value)) {
            fb_task_log(task, "output %s contains a secret value; no output was published",
                        task->outputs[i].name);
            result = FB_STATE_FAILED;
            exit_code = 1;
            error = "an output contains a secret value";
        }
    }
    for (i = 0; i < task->n_outputs && err == FB_OK && result == FB_STATE_DONE; i++)
        if (task->outputs[i].value != NULL)
            err = task_state__publish_var(task, task->outputs[i].name, task->outputs[i].value);
    /*
     * Outputs reach the broker before the activation's state, and subscribers
     * see them in that order: one client's QoS 1 messages are sent, re-sent
     * after a reconnect and forwarded in order. So an activation does not wait
     * for the broker's acknowledgements (a round trip each); the bus bounds
     * what is unacknowledged, and fb_task_exit waits for all of it.
     */
    for (i = 0; i < task->n_outputs; i++) {
        free(task->outputs[i].value);
        task->outputs[i].value = NULL;
    }
    task->act.result = result;
    task->act.ended_at = fb_clock_wall();
    if (err != FB_OK)
        return err;
    if (task->act.coalesce && !task->act.source && !task->paused && !task->stopped &&
        task->queue.len > 0 && result == FB_STATE_DONE) {
        task->state_behind = 1;
        return FB_OK;
    }
    return task_state__publish(task, FB_STATE_WAITING, task->act.ended_at, 1, exit_code, error);
}

enum fb_err task_reactive__end(fb_task *task, enum fb_state result, int exit_code,
                               const char *error)
{
    task->act.open = 0;
    return publish_activation(task, result, exit_code, error);
}

/* Queues the one start event of a task with no trigger inputs (worker 1 of a pool only). */
static void initial_event(fb_task *task)
{
    if (task->env.n_triggers > 0 || task->act.initial_fired || task->env.worker > 1 ||
        !task_absorb__ready(task, SIZE_MAX))
        return;
    task->act.initial_fired = 1;
    enqueue(task, SIZE_MAX, NULL);
}

/*
 * Waits up to timeout seconds (>= 0) for a message on either connection.
 * With one connection the message is taken and absorbed here: fb_bus_next
 * sleeps on the bus's condition variable, whereas polling fb_bus_fd would
 * make the bus write its pipe for every wake-up from then on (a write, a
 * poll and a read each time the queue ran dry).
 */
static void wait_readable(fb_task *task, double timeout)
{
    struct pollfd pfd[2];
    nfds_t n = 0;
    fb_msg *msg;

    if (task->events_bus == NULL) {
        /* Only called with nothing to work on, when the connection may be read. */
        if (fb_bus_next(task->bus, timeout, &msg) == FB_OK) {
            task_absorb__message(task, msg, 0);
            fb_msg_free(msg);
            task_reactive__sync_fd(task);
        }
        return;
    }
    pfd[n++] = (struct pollfd){.fd = fb_bus_fd(task->bus), .events = POLLIN};
    if (task_reactive__may_take(task, 1))
        pfd[n++] = (struct pollfd){.fd = fb_bus_fd(task->events_bus), .events = POLLIN};
    /* timeout is at most a second (fb_task_next): the milliseconds fit an int. */
    poll(pfd, n, (int)(timeout * 1000.0 + 0.999));
}

/* Takes the oldest event and makes it the current activation's view of the inputs. */
static enum fb_err start_activation(fb_task *task)
{
    struct task_queue *q = &task->queue;
    struct event ev = q->events[q->head];
    size_t i;
    double at;

    q->head = (q->head + 1) % q->max;
    q->len--;
    task_reactive__sync_fd(task);
    if (q->burst_drops > 0) {
        fb_task_log(task, "%lu events dropped while busy (queue limit %zu); %lu in all",
                    q->burst_drops, task->env.queue, q->dropped);
        q->burst_drops = 0;
    }
    for (i = 0; i < task->n_inputs; i++) {
        struct var *in = &task->inputs[i];

        free(in->current);
        in->current = NULL;
        if (in->secret)
            continue;
        if (i == ev.input) {
            in->current = ev.value;
            ev.value = NULL;
        } else if (in->value != NULL && (in->current = str__dup(in->value)) == NULL) {
            free(ev.value);
            return FB_ERR_NOMEM;
        }
    }
    free(ev.value);
    task->act.snapshot = 1;
    task->act.trigger = ev.input;
    task->act.number++;
    task->act.open = 1;
    task->act.result = FB_STATE_PENDING;
    at = fb_clock_wall();
    task->started_at = at;
    /*
     * In a coalesced backlog "running" is the heartbeat: at most one every
     * STATE_INTERVAL, with the activation number and the counters.
     */
    count_activation(task);
    if (task->act.coalesce && fb_clock_mono() - task->state_at < STATE_INTERVAL) {
        task->state_behind = 1;
        return FB_OK;
    }
    return task_state__publish(task, FB_STATE_RUNNING, at, 0, -1, NULL);
}

int fb_task_reactive(const fb_task *task)
{
    return task != NULL && task->env.reactive;
}

enum fb_err fb_task_next(fb_task *task, double timeout)
{
    double deadline = timeout < 0 ? -1.0 : fb_clock_mono() + timeout;
    double left;
    enum fb_err err;

    if (task == NULL || task->finished || !task->env.reactive || task->act.open || task->act.source)
        return FB_ERR_INVALID;
    for (;;) {
        err = task_absorb__queued(task);
        /* The coordinator keeps the last state it saw as the stopped task's record. */
        if (task->stopped) {
            task_reactive__catch_up(task);
            return FB_ERR_STOPPED;
        }
        if (err == FB_OK)
            err = task_state__reassert(task);
        if (err != FB_OK)
            return err;
        initial_event(task);
        if (!task->paused && task->queue.len > 0 && task_absorb__deps_done(task))
            break;
        /*
         * Nothing to do (queue dry, paused, or events waiting for a
         * dependency): the broker gets the exact counters now.
         */
        err = task_reactive__catch_up(task);
        if (err != FB_OK)
            return err;
        if (deadline >= 0 && fb_clock_mono() >= deadline)
            return FB_ERR_TIMEOUT;
        /* At most a second at a time, so a reconnect is noticed even when nothing comes. */
        left = deadline < 0 ? 1.0 : deadline - fb_clock_mono();
        wait_readable(task, left > 1.0 ? 1.0 : left < 0 ? 0 : left);
    }
    return start_activation(task);
}

unsigned long fb_task_activation(const fb_task *task)
{
    return task != NULL ? task->act.number : 0;
}

const char *fb_task_trigger(const fb_task *task)
{
    if (task == NULL || !task->act.snapshot || task->act.trigger >= task->n_inputs)
        return NULL;
    return task->inputs[task->act.trigger].name;
}

int fb_task_paused(const fb_task *task)
{
    return task != NULL && task->paused;
}

enum fb_err fb_task_emit(fb_task *task)
{
    if (task == NULL || task->finished || !task->env.reactive || task->act.open)
        return FB_ERR_INVALID;
    task->act.source = 1;
    task->act.number++;
    task->started_at = fb_clock_wall();
    return publish_activation(task, FB_STATE_DONE, -1, NULL);
}
