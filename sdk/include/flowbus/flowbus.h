/*
 * flowbus.h - the public API of the flowbus SDK.
 *
 * The SDK is the one library of flowbus. It has two layers:
 *
 *  - fb_bus: a small MQTT v5 client (libmosquitto underneath, or Eclipse Paho
 *    MQTTAsync in a -DFLOWBUS_MQTT=paho build) that connects with TCP_NODELAY,
 *    publishes with confirmation, subscribes and hands received messages to the
 *    caller's thread through a queue with a pollable fd. The coordinator and
 *    long-lived plugins use it directly. On libmosquitto the bus has no thread
 *    (and the SDK starts none): it works inside its own calls and when the
 *    caller, having polled fb_bus_fd, calls fb_bus_next (or fb_bus_serve);
 *    so a program that keeps a bus open polls its fd whenever it waits, or
 *    calls into it at least every keepalive, or the broker drops the
 *    connection after 1.5 keepalives and sends its Last Will. A task's bus
 *    is fb_task_fd's, below.
 *  - fb_task: the plugin side of the bus contract (docs/protocol.md). A plugin
 *    opens its task from the environment, waits for its inputs, reads inputs and
 *    params, sets outputs, reports done or failed, and exits.
 *
 * The SDK never prints. It reports through an optional log callback. MQTT library, curl
 * and jansson codes never cross this API: every call returns an enum fb_err and,
 * where useful, a message in a caller-provided buffer.
 *
 * Thread-safety: unless a function says otherwise, a handle may be used by one
 * thread at a time. fb_strerror and fb_version are thread-safe.
 */
#ifndef FLOWBUS_FLOWBUS_H
#define FLOWBUS_FLOWBUS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define FB_API __attribute__((visibility("default")))
#define FB_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define FB_NORETURN __attribute__((noreturn))
#else
#define FB_API
#define FB_PRINTF(f, a)
#define FB_NORETURN
#endif

/* Errors. 0 is success; every other value has a text from fb_strerror. */
enum fb_err {
    FB_OK = 0,
    FB_ERR_INVALID,   /* a bad argument or a malformed value */
    FB_ERR_NOMEM,     /* out of memory */
    FB_ERR_ENV,       /* a FLOWBUS_* environment variable is missing or malformed */
    FB_ERR_CONNECT,   /* the broker refused or could not be reached */
    FB_ERR_TIMEOUT,   /* a deadline passed */
    FB_ERR_PUBLISH,   /* a publish was refused or not confirmed */
    FB_ERR_SUBSCRIBE, /* a subscription was refused */
    FB_ERR_STOPPED,   /* the run asked this task to stop (control topic) */
    FB_ERR_NOT_FOUND, /* no such input, output or param */
    FB_ERR_TOO_LARGE, /* a value exceeds the configured limit */
    FB_ERR_LOST,      /* the connection to the broker was lost */
    FB_ERR_SYSTEM,    /* an operating-system call failed (see errno in the message) */
    FB_ERR_DENIED,    /* a permission check refused the task (see Permissions below) */
};

/* Returns a static, human-readable text for err. Never NULL. Thread-safe. */
FB_API const char *fb_strerror(enum fb_err err);

/* Returns the SDK version as "MAJOR.MINOR.PATCH". Static storage. Thread-safe. */
FB_API const char *fb_version(void);

/*
 * The clocks of flowbus. Deadlines and durations use the monotonic clock,
 * which never jumps; what goes on the bus (state timestamps) and what people
 * read uses the wall clock. Both are in seconds; the wall clock is Unix time
 * rounded to whole microseconds, so JSON shows at most six decimals.
 * Thread-safe.
 */
FB_API double fb_clock_mono(void);
FB_API double fb_clock_wall(void);

/* Log levels, in increasing severity. */
enum fb_log_level { FB_LOG_DEBUG = 0, FB_LOG_INFO, FB_LOG_WARN, FB_LOG_ERROR };

/*
 * A log callback. It may be called from the MQTT library's thread (Paho
 * backend) as well as the caller's, so it must be thread-safe and must not block. msg is valid only during the call.
 */
typedef void (*fb_log_fn)(void *ctx, enum fb_log_level level, const char *msg);

/* ------------------------------------------------------------------------ */
/* fb_bus: an MQTT v5 client                                                 */
/* ------------------------------------------------------------------------ */

typedef struct fb_bus fb_bus;

/*
 * Options for fb_bus_new. Zero-initialise, then fill what you need.
 * fb_bus_new copies every string it keeps (url, username, password,
 * will_topic, will_payload, ca_file, cert_file, key_file) and uses client_id
 * only during the call, so none of them needs to outlive it; log and log_ctx
 * are kept as given, and log_ctx must stay valid until fb_bus_free.
 */
typedef struct fb_bus_options {
    /*
     * "tcp://host:port" or "mqtt://host:port" (port 1883 if omitted), or with
     * TLS "mqtts://host:port" or "ssl://host:port" (port 8883 if omitted);
     * required. IPv6 addresses as "[addr]:port".
     */
    const char *url;
    const char *username;  /* NULL for none */
    const char *password;  /* NULL for none; never logged */
    const char *client_id; /* NULL: an unguessable one (fb_client_id); at most 63 bytes are used */
    /* Last Will: published by the broker if the connection dies uncleanly. */
    const char *will_topic;   /* NULL for none */
    const char *will_payload; /* NULL: empty; ignored without will_topic */
    int will_retained;
    int keepalive;          /* seconds; 0 means 10; on libmosquitto at least 5 */
    double connect_timeout; /* seconds; 0 means 5 (each attempt, reconnects too) */
    fb_log_fn log;          /* NULL: silent */
    void *log_ctx;
    /*
     * Reconnection after the connection is lost (it never applies to the
     * first connect, which fb_bus_new reports). 0 (the default): none, the
     * loss is final and reported as FB_ERR_LOST. > 0: the bus retries for up
     * to this many seconds from the loss, with a backoff of 50 ms doubling to
     * 2 s, before the loss becomes final. < 0: retries forever (until
     * fb_bus_close). A broker that refuses the connect with a reason code
     * (e.g. bad credentials) ends the retries at once. See fb_bus_reconnects
     * for what a reconnect preserves.
     */
    double reconnect_max_s;
    /*
     * TLS (mqtts:// and ssl:// only; giving them with another scheme is an
     * error). The broker's certificate is always verified, against ca_file
     * (PEM) or the system's CA store if NULL, and must match the URL's host
     * name or IP address; there is no way to turn verification off.
     * cert_file and key_file (PEM) are the client certificate and its key for
     * brokers that require one; key_file may be NULL if cert_file holds both.
     */
    const char *ca_file;
    const char *cert_file;
    const char *key_file;
    /*
     * If > 0: the pid of the process that looks after this one's broker (a
     * coordinator with its private broker). Reconnecting stops as soon as
     * this process's parent is another one: an orphan has nobody to restart
     * its broker, so it should give up at once rather than linger.
     */
    long guardian_pid;
} fb_bus_options;

/* The length of the random part fb_client_id appends: '-' and 16 hex digits. */
#define FB_CLIENT_ID_SUFFIX 17
/* The longest client id fb_bus_new uses (opts->client_id is cut there). */
#define FB_CLIENT_ID_MAX 63

/*
 * Writes into buf (len bytes, at least FB_CLIENT_ID_SUFFIX + 1) an MQTT
 * client id that cannot be guessed: prefix (NULL or "": "fb"), cut so the
 * whole fits, then '-' and 64 random bits from getrandom in hex. Whoever
 * connects with another client's id kicks it off the broker (and fires its
 * Last Will), so ids must never be derived from names or pids alone.
 * Returns FB_OK, FB_ERR_INVALID (len too small) or FB_ERR_SYSTEM (errno
 * set). Thread-safe.
 */
FB_API enum fb_err fb_client_id(char *buf, size_t len, const char *prefix);

/* A received message. Owned by the caller after fb_bus_next; free with fb_msg_free. */
typedef struct fb_msg {
    char *topic;   /* NUL-terminated */
    char *payload; /* NUL-terminated for convenience; len excludes the NUL */
    size_t len;
    int retained; /* 1 if delivered from the broker's retained store */
} fb_msg;

/*
 * Connects to the broker and returns a handle in *out. Blocks until connected
 * or opts->connect_timeout passes (the first connect is never retried).
 * TCP_NODELAY is set on the socket. With opts->reconnect_max_s != 0 the bus
 * reconnects when the connection drops (see fb_bus_reconnects): on Paho a
 * thread of the bus does it; on libmosquitto the bus's own calls and
 * fb_bus_fd's timer do, so a caller that waits should poll fb_bus_fd.
 * On failure *out is NULL and, if errbuf is not NULL, a one-line reason is
 * written there (never containing the password; for TLS, the handshake's
 * reason such as "certificate verify failed").
 */
FB_API enum fb_err fb_bus_new(const fb_bus_options *opts, fb_bus **out, char *errbuf,
                              size_t errlen);

/*
 * Subscribes to n topic filters at QoS 1 and waits (up to timeout seconds) for
 * the broker's acknowledgement. Retained messages on them are queued afterwards
 * like any other message. They may still be arriving when this returns: to be
 * sure all of them are queued, publish any QoS 1 message and fb_bus_flush it
 * (the broker sends the retained messages before that PUBACK).
 * The filters are remembered and subscribed again after every reconnect.
 * While a reconnect is in progress this waits for it (within timeout).
 */
FB_API enum fb_err fb_bus_subscribe(fb_bus *bus, const char *const *filters, size_t n,
                                    double timeout);

/*
 * Queues a publish and returns without waiting. QoS 0 or 1. For QoS 1 the
 * broker's acknowledgement is awaited by fb_bus_flush. The number of
 * unacknowledged QoS 1 messages is bounded internally (callers block briefly
 * when it is reached) so bursts neither fail nor grow without bound.
 * If expiry_s > 0 the message carries an MQTT v5 message-expiry interval.
 * The bus keeps a copy of each QoS 1 message until its acknowledgement: after
 * a reconnect the unacknowledged ones are sent again, oldest first and before
 * any newer one, so the broker may see a message twice but a retained topic
 * ends with the last value published. While a reconnect is in progress QoS 1
 * messages wait for it (this returns FB_OK; once the bound is reached it
 * blocks up to 30 s and then returns FB_ERR_TIMEOUT) and QoS 0 messages are
 * dropped (FB_OK: QoS 0 promises nothing).
 */
FB_API enum fb_err fb_bus_publish(fb_bus *bus, const char *topic, const void *payload, size_t len,
                                  int qos, int retained, unsigned expiry_s);

/*
 * Waits until every QoS 1 message published so far is acknowledged, up to
 * timeout seconds (negative: forever). A reconnect does not end the wait: the
 * messages are re-sent on the new connection. Returns FB_ERR_TIMEOUT at the
 * deadline, FB_ERR_LOST once the loss is final, FB_ERR_PUBLISH if the broker
 * refused one of them.
 */
FB_API enum fb_err fb_bus_flush(fb_bus *bus, double timeout);

/*
 * Takes the next received message, waiting up to timeout seconds (0: do not
 * wait; negative: wait forever). Returns FB_ERR_TIMEOUT when none came and
 * FB_ERR_LOST when the connection is gone for good and the queue is empty (a
 * reconnect in progress is not "gone": this keeps waiting).
 */
FB_API enum fb_err fb_bus_next(fb_bus *bus, double timeout, fb_msg **out);

/*
 * A file descriptor that is readable while messages are queued (or the
 * connection was lost), for use with poll(); then call fb_bus_next(bus, 0, ...)
 * until it returns FB_ERR_TIMEOUT. On libmosquitto it is also readable when
 * the bus has work of its own (the socket, keepalive, a reconnect), which that
 * fb_bus_next call does: it may then return FB_ERR_TIMEOUT at once. Owned by
 * the bus; do not read it.
 */
FB_API int fb_bus_fd(fb_bus *bus);

/*
 * Back-pressure that keeps the connection alive. fb_bus_hold(bus, 1) says
 * the caller takes no message for now (a full queue, a pause): on
 * libmosquitto fb_bus_fd then stops being readable for queued messages and
 * stays readable for the bus's own work (the keepalive timer, writes, a
 * reconnect, and the socket while the bus's queue is under its bound of
 * 1,000 messages, beyond which TCP and the broker keep the rest); when it
 * is readable call fb_bus_serve, which does that work without taking a
 * message and returns FB_ERR_LOST once the loss is final, else FB_OK.
 * fb_bus_hold(bus, 0) ends the hold. A hold that outlasts a keepalive with
 * the bus's queue full ends in a reconnect: the broker's answer to the ping
 * is behind the messages. Returns 1 where this is supported (libmosquitto);
 * 0 on Paho, whose threads keep the connection alive: leave fb_bus_fd out of
 * the poll while holding there.
 */
FB_API int fb_bus_hold(fb_bus *bus, int held);
FB_API enum fb_err fb_bus_serve(fb_bus *bus);

/* Returns 1 while connected (0 while a reconnect is in progress). Thread-safe. */
FB_API int fb_bus_connected(fb_bus *bus);

/*
 * Returns how many times the bus reconnected after a loss (0 without
 * reconnection). Thread-safe. When it changes, the bus has already subscribed
 * every filter again and re-sent every unacknowledged QoS 1 message, and fb_bus_fd
 * has been made readable so a poll() loop notices. What a reconnect does not
 * preserve, and a caller that keeps state must re-sync: messages published by
 * others while the connection was down are lost unless retained; retained
 * messages of the subscribed topics are delivered again (retained = 1), after
 * any message queued before the loss; the broker may have lost what it had
 * not saved if it was restarted.
 */
FB_API unsigned fb_bus_reconnects(fb_bus *bus);

/*
 * Disconnects cleanly (the Last Will is not sent) and waits up to timeout
 * seconds for the broker to see it. The handle stays allocated; it can only be
 * passed to fb_bus_free afterwards. Use this before _exit() to skip Paho's slow
 * teardown.
 */
FB_API enum fb_err fb_bus_close(fb_bus *bus, double timeout);

/* Disconnects if needed and frees everything. Accepts NULL. Can take ~100 ms on Paho. */
FB_API void fb_bus_free(fb_bus *bus);

/* Frees a message. Accepts NULL. */
FB_API void fb_msg_free(fb_msg *msg);

/* ------------------------------------------------------------------------ */
/* fb_task: the plugin side of the bus contract                               */
/* ------------------------------------------------------------------------ */

typedef struct fb_task fb_task;

typedef struct fb_task_options {
    fb_log_fn log; /* SDK diagnostics (not the task's log topic); NULL: silent */
    void *log_ctx;
} fb_task_options;

/*
 * Opens the task described by the FLOWBUS_* environment (docs/protocol.md):
 * connects with a Last Will that marks the task "crashed", subscribes to its
 * inputs, its depends_on tasks' states and the run's control topic, and
 * publishes the state "waiting". opts may be NULL. On failure *out is NULL and
 * errbuf (if not NULL) holds a one-line reason.
 *
 * TLS: with an mqtts:// or ssl:// FLOWBUS_BROKER, FLOWBUS_TLS_CA,
 * FLOWBUS_TLS_CERT and FLOWBUS_TLS_KEY name the CA file and the client
 * certificate and key (see fb_bus_options).
 * FLOWBUS_KEEPALIVE (seconds, 5 to 3600; default 10) is the connection's
 * MQTT keepalive (see fb_task_fd for what it asks of a plugin).
 * Reconnection is on: if the connection to the broker is lost the task keeps
 * trying for FLOWBUS_RECONNECT_MAX seconds (default 30; 0 turns it off), then
 * the calls below report FB_ERR_LOST. A broker restart is transparent: a
 * waiting task gets its inputs once the broker is back (retained), and
 * outputs and states not yet confirmed are sent again; the task's action is
 * never run again by the SDK.
 */
FB_API enum fb_err fb_task_open(const fb_task_options *opts, fb_task **out, char *errbuf,
                                size_t errlen);

/*
 * Waits until every input is set and every depends_on task is done, then
 * publishes the state "running". timeout is in seconds; negative waits
 * forever. Returns FB_ERR_STOPPED if the run told the task to stop,
 * FB_ERR_TIMEOUT on the deadline, FB_ERR_LOST if the broker went away.
 */
FB_API enum fb_err fb_task_wait(fb_task *task, double timeout);

/*
 * Fills the connection fields of *opts (url, username, password, ca_file,
 * cert_file, key_file) with the task's own, for a plugin that needs a
 * second connection to the run's broker (mqtt-in, mqtt-out); the other
 * fields are left as they are. The strings are owned by the task and valid
 * until fb_task_free. The task's credentials come from the coordinator on
 * a descriptor that fb_task_open has read and closed (docs/protocol.md
 * "Credentials"): this is the only way to reach them afterwards, and a
 * plugin must never pass them to a command it runs.
 */
FB_API void fb_task_bus_options(const fb_task *task, fb_bus_options *opts);

/* The task's name and run id. Owned by the task. */
FB_API const char *fb_task_name(const fb_task *task);
FB_API const char *fb_task_run_id(const fb_task *task);

/* Declared inputs and outputs, by index. Owned by the task. */
FB_API size_t fb_task_input_count(const fb_task *task);
FB_API const char *fb_task_input_name(const fb_task *task, size_t i);
FB_API size_t fb_task_output_count(const fb_task *task);
FB_API const char *fb_task_output_name(const fb_task *task, size_t i);
FB_API int fb_task_has_output(const fb_task *task, const char *name);

/* The value of input name, or NULL if it is not a declared input or not set yet. Owned by the task. */
FB_API const char *fb_task_input(const fb_task *task, const char *name);

/*
 * The param name as text: strings as they are, numbers and booleans in their
 * JSON spelling, NULL if absent or not a scalar. Owned by the task.
 */
FB_API const char *fb_task_param(const fb_task *task, const char *name);

/* All params as a JSON object text ("{}" when none). Owned by the task. */
FB_API const char *fb_task_params_json(const fb_task *task);

/*
 * Records an output value (copied). It is published only by fb_task_done, so a
 * task that fails publishes none of its outputs. Returns FB_ERR_NOT_FOUND if
 * name is not a declared output, FB_ERR_TOO_LARGE past the value limit, and
 * FB_ERR_INVALID for a reserved name (fb_name_reserved: LD_PRELOAD, PATH,
 * AUTH_TOKEN, ...), which never goes on the bus, declared or not (the task's
 * log says why).
 */
FB_API enum fb_err fb_task_set_output(fb_task *task, const char *name, const char *value);

/* Publishes one line on the task's log topic (not retained). */
FB_API void fb_task_log(fb_task *task, const char *fmt, ...) FB_PRINTF(2, 3);

/*
 * Publishes the recorded outputs (retained, QoS 1), waits for the broker to
 * confirm them, then publishes and confirms the state "done".
 * In reactive mode it ends the current activation instead: outputs, then
 * "waiting" with "result":"done"; the task goes on (see fb_task_next).
 */
FB_API enum fb_err fb_task_done(fb_task *task);

/*
 * Publishes and confirms the state "failed" with the given exit code and a
 * one-line error. Recorded outputs are discarded.
 * In reactive mode, inside an activation, it ends only that activation:
 * "waiting" with "result":"failed", "exit" and "error"; the task goes on.
 * Outside an activation it ends the task as in one-shot mode.
 */
FB_API enum fb_err fb_task_fail(fb_task *task, int exit_code, const char *fmt, ...)
    FB_PRINTF(3, 4);

/*
 * Disconnects cleanly and ends the process with code, without the MQTT
 * library's teardown (Paho's is slow). Never returns. task may be NULL (then it only exits).
 */
FB_API FB_NORETURN void fb_task_exit(fb_task *task, int code);

/* Disconnects and frees the task. Accepts NULL. Slower than fb_task_exit. */
FB_API void fb_task_free(fb_task *task);

/* ------------------------------------------------------------------------ */
/* fb_task in reactive mode (docs/protocol.md, "Reactive mode")               */
/* ------------------------------------------------------------------------ */

/*
 * With FLOWBUS_MODE=reactive the task process stays up and acts once per
 * *activation*. fb_task_open reads, besides the one-shot environment:
 *   FLOWBUS_MODE      "oneshot" (default when absent or empty) or "reactive"
 *   FLOWBUS_TRIGGERS  comma-separated inputs whose events fire the task
 *                     (default: every input on the bus; secret inputs never fire)
 *   FLOWBUS_QUEUE     events kept while busy or paused, 1 to 1000000 (default 100)
 *   FLOWBUS_OVERFLOW  what a full queue does: "block" (default when absent or
 *                     empty), "drop-oldest" or "drop-newest" (see Queue below)
 *   FLOWBUS_WORKERS   pool size, 1 to 1024 (default 1); FLOWBUS_WORKER this
 *                     worker's number, 1 to FLOWBUS_WORKERS (default 1)
 *   FLOWBUS_EXPIRY    (both modes) seconds: every retained publish of the task
 *                     (variables, states) carries this MQTT v5 message expiry;
 *                     0 or absent: none. The Last Will carries none.
 *
 * Events. Every publish on a trigger input is an event, even with the same
 * value. An event counts if, when it arrives, every other input is set;
 * otherwise it only updates the input's value. A counted event fires the
 * task once every depends_on task's latest activation has ended "done" (its
 * state "waiting" with "result":"done", or the state "done"): until then it
 * waits in the queue. A dependency publishes its outputs before that state,
 * so an event its own output causes fires right after the dependency's
 * activation that produced it. The retained value found at subscribe counts as one event, so a
 * task whose inputs are all set at start fires once. After a reconnect, a
 * retained trigger value counts as an event only if it differs from the one
 * known (it was published while the connection was down). A task with no
 * trigger input (no inputs, or only secrets) fires once, when its
 * depends_on tasks are done.
 *
 * Queue. Events are kept in a FIFO in the process until an activation takes
 * them, up to FLOWBUS_QUEUE. When it is full, FLOWBUS_OVERFLOW decides:
 * "block" (the default) takes no more messages from the connection that
 * carries the events until there is room, so they wait upstream and none is
 * lost (while the run is paused or a dependency is not done a single
 * connection is read on, and the queue grows past the bound: the resume or
 * the state come behind the events); "drop-oldest" and "drop-newest" drop
 * one event, counted ("dropped" in the state); the first drop of a burst is
 * logged on the task's log topic at once, and the burst's total when the
 * next activation begins. While the events connection is held, fb_task_fd
 * does not report it readable. Events are
 * taken from the connection whenever the task calls into the SDK (fb_task_next,
 * fb_task_done, fb_task_fail, fb_task_poll): a plugin with a long activation
 * should call fb_task_poll when fb_task_fd is readable, so the bound applies
 * during the activation too.
 *
 * What an activation sees (fb_task_input): for the input that fired it, the
 * value of ITS event, even if newer events are queued behind it; for every
 * other input, the latest value known when the activation began. The view
 * stays fixed until the next activation.
 *
 * Workers (FLOWBUS_WORKERS > 1). Each worker opens a second connection that
 * subscribes to the trigger inputs through
 * $share/<run-id>.<task>/flowbus/<run-id>/vars/<X>, so each live event goes
 * to exactly one worker; the task's own connection subscribes to every input
 * normally, for the latest values. MQTT v5 gives shared subscriptions no
 * retained messages (mosquitto 2.0 sends them anyway; they are ignored), so
 * only worker 1 takes the retained values present at start as events: a
 * pool whose inputs are set at start fires once, on worker 1. Every worker
 * publishes on the task's one state topic, with its number in "worker" (also
 * in its Last Will).
 *
 * States. The state JSON gains "activation" (running or last ended),
 * "result" ("done", "failed" or null before the first activation ends),
 * "queued", "dropped" and, in a pool, "worker". fb_task_next publishes
 * "running"; fb_task_done, fb_task_fail and fb_task_emit publish "waiting"
 * with the result ("started" is when that activation began; "exit" and
 * "error" are set for a failed one). In a flood (more than 250 activations
 * a second on average, bursts of 500 allowed) fb_task_next and fb_task_done
 * coalesce them: no "waiting" while further events are queued, "running" at
 * most every 50 ms, every failure still reported, and "waiting" with the
 * exact counters once the queue runs dry, the run pauses or stops
 * (docs/protocol.md, "Floods").
 *
 * Outputs. "First value wins" does not apply: each activation publishes the
 * outputs it set (retained, QoS 1, on the connection before its state; not
 * waited for), and every
 * publish is an event downstream. Recorded outputs are forgotten after each
 * activation. After a reconnect outputs are not published again (that would
 * be a new event); the bus still re-sends any it had not seen confirmed.
 *
 * Control (retained, on the run's control topic): {"cmd":"pause"} holds
 * activations (events keep queuing); {"cmd":"resume"}
 * releases them in order; {"cmd":"stop"} makes fb_task_next and fb_task_poll
 * return FB_ERR_STOPPED: the plugin should then fb_task_exit(task, 0) without
 * publishing a state.
 *
 * Sources (tasks that publish on their own: a timer, a file watch, another
 * broker) do not call fb_task_next: they optionally fb_task_wait for their
 * inputs (in reactive mode that publishes no "running" and marks the task a
 * source, so input events are not queued), then loop on their own fds plus
 * fb_task_fd, calling fb_task_poll when it is readable, honouring
 * fb_task_paused, and fb_task_emit for each value they produce.
 */

/* 1 if the task runs in reactive mode (FLOWBUS_MODE=reactive), else 0. */
FB_API int fb_task_reactive(const fb_task *task);

/*
 * Reactive mode: waits for the next activation (see above), up to timeout
 * seconds (negative: forever), then publishes "running" with the activation
 * number and returns FB_OK; fb_task_input, fb_task_trigger and
 * fb_task_activation then describe it. End the activation with fb_task_done
 * or fb_task_fail before calling this again. While paused it does not return
 * an activation (only FB_ERR_TIMEOUT or FB_ERR_STOPPED). Returns
 * FB_ERR_STOPPED when the run says stop, FB_ERR_TIMEOUT at the deadline,
 * FB_ERR_LOST when the broker is gone for good, FB_ERR_INVALID in one-shot
 * mode, inside an activation or for a source.
 */
FB_API enum fb_err fb_task_next(fb_task *task, double timeout);

/* The number of the current (or last) activation, from 1; 0 before the first. */
FB_API unsigned long fb_task_activation(const fb_task *task);

/*
 * The name of the input whose event fired the current (or last) activation;
 * NULL before the first, for the start of a task without triggers, and for
 * sources. Owned by the task.
 */
FB_API const char *fb_task_trigger(const fb_task *task);

/* 1 while the run is paused (control said pause, not resume since), else 0. */
FB_API int fb_task_paused(const fb_task *task);

/*
 * A file descriptor (owned by the task: do not read or close it) that is
 * readable while messages for the task wait to be processed (values,
 * events, control) or the connection was lost; for poll() in a plugin's
 * own loop. After it becomes readable, call fb_task_poll. Level-triggered.
 * -1 for a NULL task.
 *
 * Both modes: the task process has no thread but its own on libmosquitto,
 * so a plugin that waits in its own code (for a command, a file, a timer)
 * polls this fd beside its own and calls fb_task_poll when it is readable:
 * it is also readable when the connection has work of its own (the
 * keepalive ping, a reconnect), and a task left alone for 1.5 keepalives
 * (FLOWBUS_KEEPALIVE, default 10 s) is dropped by the broker, whose Last
 * Will then says "crashed". The built-ins all do (tasks/cmd/child.c).
 */
FB_API int fb_task_fd(const fb_task *task);

/*
 * Processes every waiting message without blocking: values, events (queued),
 * pause/resume. Returns FB_ERR_STOPPED once the run said stop, FB_ERR_LOST
 * if the broker is gone for good, else FB_OK. Usable in both modes, also
 * during an activation (its view of the inputs does not change).
 */
FB_API enum fb_err fb_task_poll(fb_task *task);

/*
 * Reactive mode, for sources: publishes the recorded outputs now (retained,
 * QoS 1, confirmed), counts an activation and publishes "waiting" with
 * "activation" and "result":"done" (confirmed); then forgets the outputs.
 * Not to be called inside an fb_task_next activation. Returns FB_ERR_INVALID
 * in one-shot mode (use fb_task_done there), else what the broker said. An
 * output holding a secret value is refused: nothing is published and the
 * activation is reported "failed".
 */
FB_API enum fb_err fb_task_emit(fb_task *task);

/* ------------------------------------------------------------------------ */
/* Permissions (Attica)                                                       */
/* ------------------------------------------------------------------------ */

/*
 * A task that has an AUTH_TOKEN asks the Attica service for its permission
 * set before it acts, and the plugin enforces it (docs/security.md).
 *
 * The contract: POST <url> with the JSON body {"auth_token":"<token>"}; the
 * service answers 200 with {"permissions": ...}, either an object of booleans
 * ({"can_view_system": true, "can_execute_commands": false}: the names whose
 * value is true are granted) or an array of granted names (["can_read"]).
 *
 * Everything fails closed: no usable answer means no permissions. A
 * non-2xx status, a body that is not that JSON (or holds a non-boolean value,
 * a non-string name), a body over 1 MiB (the transfer is cut as soon as it
 * passes the limit), a timeout, an unreachable service, a TLS failure, or a
 * plain http:// URL to a host other than 127.0.0.1, localhost or ::1 are all
 * refusals. TLS peer and host verification are always on; only the CA bundle
 * can be changed. Redirects are not followed.
 *
 * The token never appears in an error text, a log message or a file: the
 * cache (below) names its files by a salted SHA-256 of the token.
 *
 * Environment (each also an fb_auth_options field, which wins when set):
 *   FLOWBUS_ATTICA_URL        the service URL; default https://attica.tech/permissions
 *   FLOWBUS_ATTICA_TIMEOUT    seconds for the whole request; default 3
 *   FLOWBUS_ATTICA_CA_FILE    a PEM CA bundle to verify the service with;
 *                             default the system's store
 *   FLOWBUS_ATTICA_CACHE_TTL  seconds a fetched set stays valid; default 60;
 *                             0 turns the cache off
 *   FLOWBUS_RUN_DIR           the run's private directory (mode 0700, owned by
 *                             the user) holding the cache; unset: no cache
 *   FLOWBUS_CACHE_SALT        salt for the cache file names; default the
 *                             run directory's path
 *
 * The cache is shared by every process of a run: a run of 10 tasks with one
 * token makes one request per TTL. Processes serialise on an flock() per
 * token, so exactly one of them asks while the others wait for its answer
 * (at most the timeout, after which they ask on their own). Failed fetches
 * are never cached.
 */
typedef struct fb_permissions fb_permissions;

/* Options for fb_permissions_fetch. Zero-initialise; zero/NULL fields come from the environment. */
typedef struct fb_auth_options {
    const char *url;       /* NULL: FLOWBUS_ATTICA_URL, else the default above */
    double timeout;        /* seconds, > 0; 0: FLOWBUS_ATTICA_TIMEOUT, else 3 */
    const char *ca_file;   /* NULL: FLOWBUS_ATTICA_CA_FILE, else the system's CA store */
    const char *cache_dir; /* NULL: FLOWBUS_RUN_DIR; "": no cache */
    double cache_ttl;      /* seconds; 0: FLOWBUS_ATTICA_CACHE_TTL, else 60; < 0: no cache */
    const char *salt;      /* NULL: FLOWBUS_CACHE_SALT, else the cache directory's path */
    fb_log_fn log;         /* NULL: silent; never receives the token */
    void *log_ctx;
} fb_auth_options;

/*
 * Obtains the permission set of token: from the run's cache when a valid
 * entry is there, else from the service (and then caches it). opts may be
 * NULL (everything from the environment). Blocks for at most about twice the
 * timeout (waiting for another process's request, then its own).
 *
 * Returns FB_OK with a new set in *out (free it with fb_permissions_free);
 * FB_ERR_DENIED when no set could be obtained, with a one-line reason in
 * errbuf naming the case: "permission service unreachable", "... timed out",
 * "... answered HTTP status N", "malformed response ...", "response too
 * large ...", "refusing plain http:// ...", "TLS ..."; FB_ERR_INVALID for a
 * NULL or empty token or a malformed option; FB_ERR_NOMEM. On failure *out
 * is NULL. Thread-safe (each call uses its own connection).
 */
FB_API enum fb_err fb_permissions_fetch(const fb_auth_options *opts, const char *token,
                                        fb_permissions **out, char *errbuf, size_t errlen);

/* Returns 1 if the set grants name, else 0 (also for NULL arguments). */
FB_API int fb_permissions_has(const fb_permissions *perms, const char *name);

/* The number of granted names, and the i-th of them (sorted; owned by the set). */
FB_API size_t fb_permissions_count(const fb_permissions *perms);
FB_API const char *fb_permissions_name(const fb_permissions *perms, size_t i);

/* Frees a set. Accepts NULL. */
FB_API void fb_permissions_free(fb_permissions *perms);

/*
 * The permission check of a task, to call after fb_task_wait and before the
 * task acts. It reads, from the task's environment:
 *   AUTH_TOKEN                    the token (empty counts as none)
 *   FLOWBUS_PERMISSIONS_REQUIRED  the workflow's extra required names, comma-separated
 *   FLOWBUS_REQUIRES_AUTH         "1" (or "true"): a token is mandatory
 * and the FLOWBUS_ATTICA_* and cache variables above.
 *
 * - No token, FLOWBUS_REQUIRES_AUTH not set and no workflow-required names:
 *   auth is not in use; returns FB_OK without asking anyone (the plugin's
 *   own names alone do not make a token mandatory).
 * - No token but one is needed: denied ("no AUTH_TOKEN ...").
 * - A token: the set is fetched (or read from the cache) even when nothing is
 *   required, so an invalid token is refused; then each of names[0..n) and
 *   each workflow-required name must be granted ("missing permission can_x").
 *
 * On refusal it publishes and confirms the terminal state "denied" with exit
 * FB_EXIT_DENIED (flowbus/protocol.h) and the one-line reason as "error", reports the reason to
 * the task's log callback (FB_LOG_WARN), marks the task finished (so
 * fb_task_done can no longer publish outputs), and returns FB_ERR_DENIED.
 * Every internal failure (memory, a broken environment value) is a refusal
 * too. The caller must then not act: exit with FB_EXIT_DENIED.
 * Returns FB_ERR_INVALID for a NULL or already finished task.
 */
FB_API enum fb_err fb_task_require(fb_task *task, const char *const *names, size_t n);

#ifdef __cplusplus
}
#endif
#endif
