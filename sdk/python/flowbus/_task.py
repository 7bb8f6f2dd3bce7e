"""The task process: the state protocol that runs a plugin class (_plugin.py).

A plugin is a subclass of Task with class attributes that describe it and an
execute(self, inputs) that returns its outputs; run(cls) does the rest of
docs/protocol.md: the command line (_cli.py), the connection with its Last
Will (_bus.py), the states waiting/running/done/failed/denied, depends_on,
the control topic's stop, pause and resume, the permission check
(_permissions.py), one-shot and reactive activations, and keeping secrets off
the bus.

Threads: paho's network thread only records what arrives (_absorb, under
Engine.cond); the plugin's thread makes every decision, publishes and runs
execute(). Waits are on the condition with a deadline.
"""

import collections
import json
import os
import signal
import sys
import time

from . import _credentials, _permissions
from ._bus import Bus
from ._env import Env
from ._errors import (EXIT_DENIED, EXIT_FAILED, EXIT_LOST, EXIT_OK, EXIT_SETUP, Denied, Failed,
                      Lost, SetupError)
from ._plugin import read_params

MIN_SECRET = 4  # shorter values are not masked (docs/security.md, "Secrets")
MAX_ERROR = 1000  # characters of a state's error
LOG_LINES_PER_S = 2000  # FB_LOG_LINES_PER_S of flowbus/protocol.h: the log topic's bound
# Floods (docs/protocol.md, "Floods"), as the C SDK's task_reactive.c: every
# activation has its own states while they come at most ACTIVATION_RATE a
# second on average, in bursts of ACTIVATION_BURST; faster, the states are
# coalesced (a heartbeat every STATE_INTERVAL) until half the burst is back.
ACTIVATION_BURST = 500.0
ACTIVATION_RATE = 250.0
STATE_INTERVAL = 0.05
# Back-pressure (FLOWBUS_OVERFLOW=block) holds paho's network thread, which also
# sends the keepalive pings: past this many seconds of a full queue one event is
# let through over the bound, so the thread runs its loop once and the broker
# (1.5 x the 10 s keepalive) never takes the task for dead.
HOLD_SLICE = 5.0


def encode(value):
    """Bus encoding: UTF-8 text; the empty string is one NUL byte (docs/protocol.md)."""
    return value.encode("utf-8") if value else b"\x00"


def decode(payload):
    """None for a zero-length payload (a deleted retained value), "" for one NUL byte."""
    if not payload:
        return None
    if payload == b"\x00":
        return ""
    return payload.decode("utf-8", errors="replace")


def as_text(value):
    """An output value as text: str as it is, booleans as true/false, numbers, else JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8")
    return json.dumps(value, separators=(",", ":"))


class Engine:
    """One task process: its view of the run and everything it publishes."""

    def __init__(self, env, plugin, stderr_name):
        self.env = env
        self.plugin = plugin
        self.name = stderr_name
        self.values = {}  # input name -> latest value (None: not set)
        self.taken = set()  # outputs another producer already set (one-shot)
        self.deps = {d: False for d in env.depends}
        self.stopped = False
        self.paused = False
        self.queue = collections.deque()  # (input name or None, value)
        self.dropped = 0
        self.burst_drops = 0
        self.closing = False  # close() began: a held connection lets go
        self.initial_fired = False
        self.activation = 0
        self.result = None
        self.started = None
        self.warned = set()
        # The log topic's rate bound, as fb_rate in the C SDK: a window of one
        # second, the lines in it, the lines dropped past the bound.
        self.log_window = -1.0
        self.log_lines = 0
        self.log_dropped = 0
        self.budget = ACTIVATION_BURST
        self.budget_at = time.monotonic()
        self.coalesce = False
        self.state_at = 0.0  # time.monotonic() of the last state published
        self.state_behind = False  # a "running" or "waiting" was held back (coalescing)
        # What a restarted broker may have lost, published again after a reconnect (reassert).
        self.last_state = None  # the payload of the last state published
        self.published = {}  # one-shot outputs published: topic -> payload
        self.reconnects_seen = 0
        secrets = list(env.secret_values.values()) + [os.environ.get("AUTH_TOKEN") or "",
                                                      env.password or ""]
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = sorted({s for s in secrets if len(s) >= MIN_SECRET}, key=len, reverse=True)
        self.prefix = env.topic("vars/")
        filters = [env.topic("vars/" + i) for i in env.inputs if i not in env.secrets]
        if not env.reactive:  # outputs are watched for "first value wins" (one-shot only)
            filters += [env.topic("vars/" + o) for o in env.outputs]
        filters += [env.topic("tasks/%s/state" % d) for d in env.depends]
        filters.append(env.topic("control"))
        self.bus = Bus(env, filters, self._absorb)
        self.cond = self.bus.cond
        self.events_bus = None
        if env.reactive and env.workers > 1 and env.triggers:
            # A pool shares the trigger events through $share subscriptions on a
            # second connection without a Will (docs/protocol.md, "Reactive mode").
            group = "$share/%s.%s/" % (env.run_id, env.task)
            self.events_bus = Bus(env, [group + env.topic("vars/" + t) for t in env.triggers],
                                  self._absorb_share, will=False, cond=self.cond)

    # ---------------------------------------------------------------- logging

    def mask(self, text):
        for s in self.secrets:
            text = text.replace(s, "***")
        return text

    def stderr(self, level, message):
        """One line on stderr; the coordinator forwards it to the task's log topic."""
        sys.stderr.write("flowbus-%s: %s: %s\n" % (self.name, level, self.mask(message)))
        sys.stderr.flush()

    def log(self, message):
        """One message per line on the log topic, at most LOG_LINES_PER_S a second.

        Past the bound lines are dropped and counted; the count is published
        when the next second begins (before that second's first line) or when
        the activation or the task ends (report_drops), as the C SDK does.
        """
        for line in message.splitlines():
            if not line:
                continue
            now = time.monotonic()
            if now - self.log_window >= 1.0:
                self.report_drops()
                self.log_window, self.log_lines = now, 0
            if self.log_lines >= LOG_LINES_PER_S:
                self.log_dropped += 1
                continue
            self.log_lines += 1
            self.bus.publish(self.env.log_topic, self.mask(line).encode("utf-8"), retain=False,
                             wait=False)

    def report_drops(self):
        if self.log_dropped:
            self.bus.publish(self.env.log_topic, ("[%d lines dropped: more than %d lines in a "
                                                  "second]" % (self.log_dropped, LOG_LINES_PER_S)
                                                  ).encode(), retain=False, wait=False)
            self.log_dropped = 0

    # ------------------------------------------------------- what arrives (paho's thread)

    def _absorb(self, topic, payload, retained):
        env = self.env
        if topic == env.topic("control"):
            try:
                cmd = json.loads(payload.decode("utf-8")).get("cmd")
            except (ValueError, AttributeError, UnicodeDecodeError):
                return
            if cmd == "stop":
                self.stopped = True
            elif cmd == "pause":
                self.paused = True
            elif cmd == "resume":
                self.paused = False
        elif topic.startswith(self.prefix):
            name = topic[len(self.prefix):]
            if name in env.outputs and not env.reactive:
                if payload:
                    self.taken.add(name)
                else:
                    self.taken.discard(name)
            if name in env.inputs and name not in env.secrets and self._acceptable(name, payload):
                value = decode(payload)
                if env.reactive:
                    self._reactive_value(name, value, retained)
                else:
                    self.values[name] = value
        elif topic.startswith(env.topic("tasks/")) and topic.endswith("/state"):
            dep = topic[len(env.topic("tasks/")):-len("/state")]
            if dep in self.deps:
                try:
                    st = json.loads(payload.decode("utf-8"))
                except (ValueError, UnicodeDecodeError):
                    st = None
                st = st if isinstance(st, dict) else {}
                # A reactive dependency counts once an activation of it ended done.
                self.deps[dep] = st.get("state") == "done" or (
                    env.reactive and st.get("result") == "done")

    def _acceptable(self, name, payload):
        """False (with a warning on the log) for a value over the limit or with a NUL byte.

        As the C SDK: a value published from outside is held to the limit a task's
        output is, and a value is text; the input keeps what it had.
        """
        if len(payload) > self.env.max_value:
            self.log("warning: value of %s refused: %d bytes, over the limit of %d "
                     "(FLOWBUS_MAX_VALUE)" % (name, len(payload), self.env.max_value))
            return False
        if len(payload) > 1 and b"\x00" in payload:
            self.log("warning: value of %s refused: it contains a NUL byte (a value is text)"
                     % name)
            return False
        return True

    def _reactive_value(self, name, value, retained):
        """An input's value in reactive mode: the latest value, and maybe an event.

        Alone, a live message is an event, and a retained one if its value
        differs from the one known (the start, or a value published while the
        connection was down). In a pool only worker 1 takes retained values as
        events; the live ones come through the shared subscription.
        """
        known = self.values.get(name)
        if self.env.workers > 1:
            is_event = retained and self.env.worker == 1 and value != known
        else:
            is_event = not retained or value != known
        self.values[name] = value
        if is_event:
            self._event(name, value)

    def _absorb_share(self, topic, payload, retained):
        name = topic[len(self.prefix):] if topic.startswith(self.prefix) else None
        if not retained and name in self.env.triggers and self._acceptable(name, payload):
            self._event(name, decode(payload), from_share=True)

    def _inputs_set(self, except_input=None):
        return all(self.values.get(i) is not None for i in self.env.inputs
                   if i not in self.env.secrets and i != except_input)

    def _ready(self, except_input=None):
        return self._inputs_set(except_input) and all(self.deps.values())

    def _event(self, name, value, from_share=False):
        """Queues an event; one before all inputs are set fires nothing.

        A full queue does what FLOWBUS_OVERFLOW says, as in the C SDK: block
        (the default) holds this connection's paho thread until the task made
        room (_hold), so paho reads no more from the socket and the messages
        wait on the broker; drop-oldest and drop-newest drop one event and
        count it. An event that comes before the depends_on tasks are done is
        queued all the same and waits for them (reactive()): a dependency
        publishes its outputs before its own state, so the event its output
        causes arrives before the "done" that lets it fire.
        """
        if value is None or name not in self.env.triggers or not self._inputs_set(name):
            return
        overflow = self.env.overflow
        if len(self.queue) >= self.env.queue and overflow == "block":
            self._hold(from_share)
        elif len(self.queue) >= self.env.queue:
            if overflow == "drop-newest":
                self._count_drop("newest")
                return
            self.queue.popleft()
            self._count_drop("oldest")
        self.queue.append((name, value))

    def _hold(self, from_share):
        """Waits (cond held, on paho's thread) until the queue has room; see HOLD_SLICE.

        A single connection is not held while the queue cannot move (paused, a
        dependency not done): the resume or the dependency's state come on it
        behind the events, so the queue then goes past its bound instead. A
        pool's own connection carries no live events; its events connection is
        always held.
        """
        deadline = time.monotonic() + HOLD_SLICE
        while len(self.queue) >= self.env.queue and not self.stopped and not self.closing and (
                from_share or (self.events_bus is None and not self.paused
                               and all(self.deps.values()))):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.cond.wait(left)

    def _count_drop(self, which):
        self.dropped += 1
        self.burst_drops += 1
        if self.burst_drops == 1:
            # The first drop of a burst is said at once (paho's thread may
            # publish without waiting), the burst's total when the next
            # activation begins, as in the C SDK.
            self.bus.publish(self.env.log_topic, (
                "queue full (%d events): dropping the %s events (%d dropped so far)"
                % (self.env.queue, which, self.dropped)).encode(), retain=False, wait=False)

    # ---------------------------------------------------------------- publishing

    def state(self, state, exit_code=None, error=None, with_started=False, wait=True):
        body = {"state": state, "attempt": self.env.attempt, "pid": os.getpid(),
                "at": round(time.time(), 6),
                "started": round(self.started, 6) if with_started and self.started else None,
                "exit": exit_code, "signal": None,
                "error": self.mask(error)[:MAX_ERROR] if error is not None else None}
        if self.env.reactive:
            with self.cond:
                body.update({"activation": self.activation, "result": self.result,
                             "queued": len(self.queue), "dropped": self.dropped})
            if self.env.workers > 1:
                body["worker"] = self.env.worker
        payload = json.dumps(body).encode()
        with self.cond:
            self.last_state = payload
        if not self.env.reactive and state in FINAL_STATES:
            _hold_termination()
        self.bus.publish(self.env.state_topic, payload, wait=wait)
        self.state_at = time.monotonic()
        self.state_behind = False

    def count_activation(self):
        """Counts an activation against the budget and decides whether its states are coalesced.

        The budget regains ACTIVATION_RATE a second up to ACTIVATION_BURST;
        once it ran out the task coalesces until half of it is back, so a
        flood does not flip between the two ways of reporting at each refill.
        """
        now = time.monotonic()
        self.budget = min(ACTIVATION_BURST, self.budget + (now - self.budget_at) * ACTIVATION_RATE)
        self.budget_at = now
        self.budget -= 1.0
        if self.budget < 0:
            self.coalesce = True
        elif self.budget >= ACTIVATION_BURST / 2:
            self.coalesce = False

    def catch_up(self):
        """Publishes the held-back "waiting" (the exact counters), if any; between activations only."""
        if self.state_behind:
            self.state("waiting", with_started=True, wait=False)

    def outputs_of(self, result):
        """The plugin's result as {name: text}, checked; raises Failed."""
        if result is None:
            result = {}
        if not isinstance(result, dict):
            raise Failed("execute() returned %s, expected a dict of outputs" % type(result).__name__)
        outputs = {}
        for name, value in result.items():
            if name not in self.env.outputs:
                if name not in self.warned:
                    self.warned.add(name)
                    self.stderr("warning", "output %s is not declared for this task; not published"
                                % name)
                continue
            if value is None:
                continue
            text = as_text(value)
            if any(s in text for s in self.secrets):
                self.stderr("error", "output %s contains a secret value; no output was published"
                            % name)
                raise Failed("an output contains a secret value")
            outputs[name] = text
        return outputs

    def inputs_now(self, trigger=None, value=None):
        with self.cond:
            inputs = {i: self.values.get(i) for i in self.env.inputs if i not in self.env.secrets}
        inputs.update(self.env.secret_values)
        if trigger is not None:
            inputs[trigger] = value
        return inputs

    def reassert(self):
        """After a reconnect, publishes again the last state and the one-shot outputs.

        A broker restarted without saving (no persistence, or killed between
        its acknowledgement and its save) has lost them; the C SDK does the
        same (task_state__reassert). In reactive mode a publish is an event
        downstream, so outputs are not sent twice there; the state is. Returns
        True if anything was published. Call with or without cond held.
        """
        with self.cond:
            now = self.bus.reconnects
            if now == self.reconnects_seen:
                return False
            self.reconnects_seen = now
            again = [] if self.env.reactive else list(self.published.items())
            if self.last_state is not None:
                again.append((self.env.state_topic, self.last_state))
        for topic, payload in again:
            self.bus.publish(topic, payload, wait=False)
        return bool(again)

    def close(self):
        with self.cond:
            self.closing = True
            self.cond.notify_all()
        if self.events_bus is not None:
            self.events_bus.close()
        self.bus.close()

    # ---------------------------------------------------------------- the steps

    def wait_until(self, predicate):
        """Waits until predicate(), a stop, or the broker lost for good. Returns "ok", "stop" or "lost"."""
        with self.cond:
            while True:
                if self.stopped:
                    return "stop"
                if self.bus.lost():
                    return "lost"
                if predicate():
                    return "ok"
                self.reassert()  # "waiting" again, in case a restarted broker lost it
                left = self.bus.lost_deadline()
                self.cond.wait(1.0 if left is None else min(1.0, left + 0.001))

    def require(self):
        """The permission check; on refusal publishes "denied" and returns EXIT_DENIED, else None."""
        names = list(self.plugin.REQUIRED_PERMISSIONS)
        environ = os.environ
        if self.plugin.REQUIRES_AUTH and environ.get("FLOWBUS_REQUIRES_AUTH", "") not in ("1", "true", "yes"):
            environ = dict(environ, FLOWBUS_REQUIRES_AUTH="1")
        try:
            _permissions.check(names, lambda line: self.stderr("warning", line.split(": ", 1)[-1]),
                               environ)
            return None
        except Denied as e:
            reason = str(e).replace("\n", " ")
        self.stderr("warning", "denied: " + reason)
        self.state("denied", EXIT_DENIED, reason, with_started=True)
        return EXIT_DENIED

    def act(self, inputs):
        """Runs execute(); returns (outputs, None, None) or (None, exit code, error)."""
        try:
            return self.outputs_of(self.plugin.execute(inputs)), None, None
        except Failed as e:
            return None, e.exit_code or EXIT_FAILED, str(e).replace("\n", " ") or "failed"
        except Exception as e:  # any failure of the work is reported; the process goes on
            text = str(e).replace("\n", " ")
            return None, EXIT_FAILED, "%s: %s" % (type(e).__name__, text) if text else type(e).__name__

    def oneshot(self):
        got = self.wait_until(self._ready)
        if got == "stop":
            self.stderr("info", "the run asked this task to stop; exiting without acting")
            return EXIT_OK
        if got == "lost":
            self.stderr("error", "lost the connection to the broker while waiting")
            return EXIT_LOST
        self.started = time.time()
        self.state("running")
        denied = self.require()
        if denied is not None:
            return denied
        self.plugin.activation = 1
        outputs, code, error = self.act(self.inputs_now())
        self.report_drops()
        if outputs is None:
            self.stderr("error", error)
            self.state("failed", code, error, with_started=True)
            return code
        for name, text in outputs.items():
            with self.cond:
                taken = name in self.taken
            if taken:
                self.log("%s is already set by another task; not overwritten" % name)
                continue
            topic, payload = self.env.topic("vars/" + name), encode(text)
            with self.cond:
                self.published[topic] = payload
            self.bus.publish(topic, payload)
        self.state("done", 0, with_started=True)
        return EXIT_OK

    def _initial_event(self):
        """The one start event of a task with no trigger inputs (worker 1 of a pool only)."""
        if not self.env.triggers and not self.initial_fired and self.env.worker == 1 and self._ready():
            self.initial_fired = True
            self.queue.append((None, None))

    def reactive(self):
        denied = self.require()
        if denied is not None:
            return denied
        while True:
            with self.cond:
                busy = not self.paused and self.queue and all(self.deps.values())
            if not busy:
                self.catch_up()  # nothing to do at once: the broker gets the exact counters now
            got = self.wait_until(lambda: self._initial_event() or (
                not self.paused and self.queue and all(self.deps.values())))
            if got == "stop":
                # The coordinator keeps the last state it saw as the stopped task's record.
                self.catch_up()
                self.stderr("info", "the run asked this task to stop")
                return EXIT_OK
            if got == "lost":
                self.stderr("error", "lost the connection to the broker")
                return EXIT_LOST
            with self.cond:
                trigger, value = self.queue.popleft()
                self.cond.notify_all()  # a connection held by a full queue may read again
                burst, self.burst_drops = self.burst_drops, 0
                self.activation += 1
                self.result = None  # "running" carries no result, as in the C SDK
            if burst:
                self.log("%d events dropped while busy (queue limit %d); %d in all"
                         % (burst, self.env.queue, self.dropped))
            self.started = time.time()
            self.plugin.activation = self.activation
            self.plugin.trigger = trigger
            self.count_activation()
            # In a coalesced backlog "running" is the heartbeat, at most every STATE_INTERVAL.
            if self.coalesce and time.monotonic() - self.state_at < STATE_INTERVAL:
                self.state_behind = True
            else:
                self.state("running", wait=False)
            outputs, code, error = self.act(self.inputs_now(trigger, value))
            self.report_drops()
            if outputs is None:
                self.stderr("error", "activation %d failed: %s" % (self.activation, error))
                self.result = "failed"
                self.state("waiting", code, error, with_started=True, wait=False)
                continue
            # Outputs before the activation's state, on the same connection: the
            # broker has them first (no wait for each acknowledgement).
            for name, text in outputs.items():
                self.bus.publish(self.env.topic("vars/" + name), encode(text), wait=False)
            self.result = "done"
            with self.cond:
                more = bool(self.queue) and not self.paused and not self.stopped
            if self.coalesce and more:
                self.state_behind = True  # the next activation follows at once
            else:
                self.state("waiting", with_started=True, wait=False)

    def main(self):
        """Runs the task; returns the exit code."""
        self.bus.open()
        if self.events_bus is not None:
            self.events_bus.open()
        try:
            self.state("waiting")
            try:
                self.plugin.params = read_params(type(self.plugin), self.env.params)
            except Failed as e:
                self.stderr("error", str(e))
                self.state("failed", e.exit_code, str(e))
                return e.exit_code
            code = self.reactive() if self.env.reactive else self.oneshot()
            self.flush()
            return code
        except Lost as e:
            self.stderr("error", str(e))
            return EXIT_LOST
        finally:
            self.close()

    def flush(self):
        """Waits until every QoS 1 message sent without waiting is acknowledged."""
        ok = self.bus.flush()
        # A broker restarted while we waited may have lost what it acknowledged
        # but had not saved (the outputs, the final state): they go out again
        # and are confirmed in turn; a few rounds, in case it restarts again.
        for _ in range(3):
            if not ok or not self.reassert():
                break
            ok = self.bus.flush()
        if not ok:
            self.stderr("warning", "the broker did not acknowledge every message before the exit")


FINAL_STATES = ("done", "failed", "timeout", "crashed", "skipped", "denied", "stopped")


def _hold_termination():
    """A one-shot task publishing its end is let finish it: SIGTERM and SIGINT no longer kill it.

    Killed between its final state and its disconnect, its Last Will would
    overwrite that state, with no coordinator to put it back when the one
    that died is what sent the signal (PR_SET_PDEATHSIG). The process exits
    right after (run's os._exit), so the signal is only dropped. As the C SDK.
    """
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            signal.signal(sig, lambda *_: None)
        except ValueError:  # not the main thread: nothing to hold
            pass


def _parent_watch(env):
    """With the private broker, ends the task when the coordinator dies (as PR_SET_PDEATHSIG in C)."""
    if not env.parent_pid:
        return
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != env.parent_pid:
        raise SetupError("the coordinator (pid %d) is gone" % env.parent_pid)


def run(cls, argv=None):
    """Runs the plugin class cls as a flowbus task process and exits with its code."""
    from ._cli import handle_args
    argv = sys.argv if argv is None else argv
    name = cls.plugin_name()
    handle_args(cls, argv)  # exits for --describe, --help, --version and usage errors
    # Ctrl-C ends the process like SIGTERM does (a signal, not a traceback).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        # Before any secret is read: the commands the plugin runs cannot read it in /proc.
        _credentials.protect()
        env = Env()
        _parent_watch(env)
        plugin = cls()
        plugin.task, plugin.run_id, plugin.reactive = env.task, env.run_id, env.reactive
        plugin.activation, plugin.trigger, plugin.params = 0, None, {}
        plugin.input_names, plugin.output_names = list(env.inputs), list(env.outputs)
        engine = Engine(env, plugin, name)
        plugin._engine = engine
        code = engine.main()
    except SetupError as e:
        sys.stderr.write("flowbus-%s: error: cannot open the task: %s\n" % (name, e))
        code = EXIT_SETUP
    sys.stdout.flush()
    sys.stderr.flush()
    # No interpreter teardown: paho's thread is stopped, nothing is left to run.
    os._exit(code)
