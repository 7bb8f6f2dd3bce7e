"""fbtest - the test harness shared by flowbus's Python tests.

Every test that needs MQTT starts its own mosquitto on a free loopback port
with its own config and log file, and stops it by PID. Nothing here sleeps to
synchronise: waits are on a threading.Condition with a deadline, so a test is
as fast as the system under test and fails with a clear message when a
deadline passes.

    import fbtest

    class MyTest(fbtest.BrokerTestCase):          # self.broker, self.recorder
        def test_x(self):
            env = fbtest.task_env(self.broker, "run1", "T", outputs=["OUT"])
            fbtest.run([fbtest.bin_path("flowbus-probe")], env, timeout=10)
            self.recorder.wait_state("run1", "T", "done")

Use /usr/bin/python3 (Debian's python3-paho-mqtt 1.6.1).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

__all__ = [
    "Broker", "Recorder", "BrokerTestCase", "free_port", "build_dir", "bin_path",
    "run", "spawn", "task_env", "state_topic", "var_topic", "make_tls_files",
]


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_dir():
    """The CMake binary dir: $FLOWBUS_BUILD_DIR (CTest sets it), else /work/main/build."""
    return os.environ.get("FLOWBUS_BUILD_DIR") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "build")


def mqtt_backend():
    """The SDK's MQTT client library in this build: "mosquitto" or "paho" (CMake's FLOWBUS_MQTT)."""
    try:
        with open(os.path.join(build_dir(), "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith("FLOWBUS_MQTT:"):
                    return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return "mosquitto"


def bin_path(name):
    """Path of an executable the build put in <build>/bin."""
    return os.path.join(build_dir(), "bin", name)


def _mosquitto():
    return shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class Broker:
    """A private mosquitto: free port, own config and log, stopped by PID.

    extra_conf is appended to the generated mosquitto.conf (e.g. a
    password_file line). With persistent=True the broker saves its state in
    its directory after every change (autosave_on_changes, interval 1), so
    retained messages survive a kill(); restart() starts it again on the same
    port and config. Use as a context manager or call stop().
    """

    def __init__(self, extra_conf="", start_timeout=5.0, persistent=False, extra_ports=()):
        self.port = free_port()
        self.extra_ports = tuple(extra_ports)  # further listeners in extra_conf to wait for
        self.dir = tempfile.mkdtemp(prefix="fbtest-broker-")
        if os.geteuid() == 0:
            # mosquitto started as root drops to its own user: let it write its log and
            # persistence file here (without this the log stays empty: "Permission denied").
            os.chmod(self.dir, 0o777)
        self.conf_path = os.path.join(self.dir, "mosquitto.conf")
        self.log_path = os.path.join(self.dir, "mosquitto.log")
        self.persistent = persistent
        if persistent:
            persistence = ("persistence true\n"
                           f"persistence_location {self.dir}/\n"
                           "autosave_on_changes true\n"
                           "autosave_interval 1\n")
        else:
            persistence = "persistence false\n"
        with open(self.conf_path, "w") as f:
            f.write(
                f"listener {self.port} 127.0.0.1\n"
                "allow_anonymous true\n"
                "set_tcp_nodelay true\n"
                # A test subscriber on a loaded machine must not lose QoS 1
                # messages to mosquitto's default queue bound of 1000.
                "max_queued_messages 100000\n"
                + persistence +
                f"log_dest file {self.log_path}\n"
                "log_type all\n"
                "log_timestamp_format %H:%M:%S\n"
                + extra_conf + "\n")
        self._start(start_timeout)

    def _start(self, start_timeout):
        self._stderr = open(os.path.join(self.dir, "stderr.log"), "a")
        self.proc = subprocess.Popen([_mosquitto(), "-c", self.conf_path],
                                     stdout=self._stderr, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self._wait_ready(start_timeout)

    def restart(self, start_timeout=5.0):
        """Starts the broker again (same port, config and persistence file) after stop() or kill().

        Returns time.monotonic() at the moment it listens again.
        """
        if self.proc.poll() is None:
            raise RuntimeError("restart() of a broker that is still running")
        self._stderr.close()
        self._start(start_timeout)
        return time.monotonic()

    def pause(self):
        """Freezes the broker (SIGSTOP): connections stay open, nothing is answered."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def _wait_ready(self, timeout):
        # Readiness is polled (there is no event to wait on), with a deadline.
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                for extra in self.extra_ports:
                    socket.create_connection(("127.0.0.1", extra), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"mosquitto did not listen within {timeout}s:\n{self.log()}")
                time.sleep(0.002)

    @property
    def url(self):
        return f"tcp://127.0.0.1:{self.port}"

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        """The broker's log (and anything it wrote to stderr)."""
        text = ""
        for path in (os.path.join(self.dir, "stderr.log"), self.log_path):
            try:
                with open(path, errors="replace") as f:
                    text += f.read()
            except OSError:
                pass
        return text

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        """Stops the broker by PID (SIGTERM, then SIGKILL after timeout)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            if sig != signal.SIGKILL:
                os.kill(self.proc.pid, signal.SIGCONT)  # a paused broker cannot act on SIGTERM
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._stderr.close()

    def kill(self):
        """Kills the broker with SIGKILL (clients see the connection drop)."""
        self.stop(signal.SIGKILL)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            sys.stderr.write(f"--- mosquitto log ({self.log_path}) ---\n{self.log()}\n")
        self.cleanup()
        return False


def make_tls_files(directory, client=True):
    """Creates a throw-away CA, a server certificate and optionally a client one with openssl.

    The server certificate is for CN 127.0.0.1 with SANs IP:127.0.0.1 and
    DNS:localhost. Returns a dict of paths: ca, ca_key, server_cert,
    server_key and, with client=True, client_cert and client_key. Also
    other_ca: a second CA that signed nothing here (a "wrong CA"), and
    badname_cert/badname_key: signed by the CA for another host name only.
    """
    def openssl(*args):
        proc = subprocess.run(["openssl", *args], cwd=directory, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"openssl {' '.join(args)} failed:\n{proc.stderr}")

    paths = {}
    for name in ("ca", "other_ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-keyout", f"{name}.key", "-out", f"{name}.pem", "-subj", f"/CN=fbtest {name}")
        paths[name] = os.path.join(directory, f"{name}.pem")
    paths["ca_key"] = os.path.join(directory, "ca.key")
    ext = os.path.join(directory, "server.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "extendedKeyUsage=serverAuth\n")
    badext = os.path.join(directory, "badname.ext")
    with open(badext, "w") as f:
        f.write("subjectAltName=DNS:not-this-host.invalid\n"
                "extendedKeyUsage=serverAuth\n")
    names = [("server", "/CN=127.0.0.1", ext), ("badname", "/CN=not-this-host.invalid", badext)]
    if client:
        cext = os.path.join(directory, "client.ext")
        with open(cext, "w") as f:
            f.write("extendedKeyUsage=clientAuth\n")
        names.append(("client", "/CN=fbtest-client", cext))
    for name, subj, extfile in names:
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
                "-out", f"{name}.csr", "-subj", subj)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", extfile)
        paths[f"{name}_cert"] = os.path.join(directory, f"{name}.pem")
        paths[f"{name}_key"] = os.path.join(directory, f"{name}.key")
    return paths


def state_topic(run_id, task):
    return f"flowbus/{run_id}/tasks/{task}/state"


def var_topic(run_id, name):
    return f"flowbus/{run_id}/vars/{name}"


class Event:
    """One recorded message."""

    __slots__ = ("t", "topic", "payload", "retained", "properties")

    def __init__(self, t, topic, payload, retained, properties):
        self.t = t                    # time.monotonic() at arrival
        self.topic = topic
        self.payload = payload        # bytes
        self.retained = retained      # bool
        self.properties = properties  # paho Properties or None

    def json(self):
        return json.loads(self.payload.decode())

    @property
    def expiring(self):
        """True for a message with an MQTT v5 message expiry: flowbus sends the
        retained topics of a finished run once more that way, so that they
        expire on a long-lived broker. They repeat what was already said."""
        return self.properties is not None and hasattr(self.properties, "MessageExpiryInterval")

    def __repr__(self):
        return f"Event({self.topic!r}, {self.payload[:80]!r}, retained={self.retained})"


class Recorder:
    """An MQTT v5 client that records every message on `topic` (default flowbus/#).

    The constructor returns once the subscription is acknowledged, so retained
    messages present at that moment are recorded first. Thread-safe.
    """

    def __init__(self, broker_or_port, topic="flowbus/#", timeout=5.0, session_expiry=None):
        """session_expiry (seconds): keep a session on the broker while disconnected, so
        messages published meanwhile are delivered on reconnect (paho reconnects by itself)."""
        port = broker_or_port.port if isinstance(broker_or_port, Broker) else int(broker_or_port)
        self.events = []
        self.cond = threading.Condition()
        self._subscribed = False
        self.subscriptions = 0  # SUBACKs so far: one more after each reconnect
        self._topic = topic
        self.client = mqtt.Client(client_id=f"fbtest-rec-{os.getpid()}-{id(self):x}",
                                  protocol=mqtt.MQTTv5)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        props = None
        if session_expiry is not None:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = session_expiry
        self.client.connect("127.0.0.1", port, keepalive=30, properties=props)
        # Both sides need TCP_NODELAY, or QoS 1 exchanges stall ~40 ms.
        self.client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client.loop_start()
        if not self.wait_for(lambda _: self._subscribed, timeout):
            self.close()
            raise RuntimeError("recorder: no SUBACK from the broker")

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        client.subscribe(self._topic, qos=1)

    def _on_subscribe(self, client, userdata, mid, granted, properties=None):
        with self.cond:
            self._subscribed = True
            self.subscriptions += 1
            self.cond.notify_all()

    def _on_message(self, client, userdata, msg):
        props = getattr(msg, "properties", None)
        with self.cond:
            self.events.append(Event(time.monotonic(), msg.topic, bytes(msg.payload),
                                     bool(msg.retain), props))
            self.cond.notify_all()

    def wait_for(self, predicate, timeout=5.0):
        """Waits until predicate(events) is truthy; returns its value, or None at the deadline.

        predicate gets a snapshot list of Events and is re-evaluated on every arrival.
        """
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                value = predicate(list(self.events))
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def on_topic(self, topic, include_expiring=False):
        """Events on exactly this topic, in arrival order, without the end-of-run
        re-publication of retained topics (see Event.expiring) unless asked."""
        with self.cond:
            return [e for e in self.events
                    if e.topic == topic and (include_expiring or not e.expiring)]

    def states(self, run_id, task):
        """The "state" values the task reported so far, in order."""
        return [e.json().get("state") for e in self.on_topic(state_topic(run_id, task))
                if e.payload]

    def wait_state(self, run_id, task, state, timeout=5.0):
        """Waits for a state message with this state; returns (Event, parsed JSON)."""
        topic = state_topic(run_id, task)

        def find(events):
            for e in events:
                if e.topic == topic and e.payload and e.json().get("state") == state:
                    return e
            return None

        event = self.wait_for(find, timeout)
        if event is None:
            raise AssertionError(f"{task}: no state {state!r} within {timeout}s; "
                                 f"saw {self.states(run_id, task)}")
        return event, event.json()

    def publish(self, topic, payload, retain=False, qos=1, expiry=None, timeout=5.0):
        """Publishes and waits until the broker has acknowledged (QoS 1)."""
        props = None
        if expiry is not None:
            props = Properties(PacketTypes.PUBLISH)
            props.MessageExpiryInterval = expiry
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise AssertionError(f"publish to {topic} not acknowledged within {timeout}s")

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def task_env(broker, run_id, task, inputs=(), outputs=(), depends=(), secrets=(),
             params=None, extra=None, base=None):
    """The environment flowbus gives a task process (docs/protocol.md), as a dict."""
    env = dict(os.environ if base is None else base)
    for key in [k for k in env if k.startswith("FLOWBUS_") and k != "FLOWBUS_BUILD_DIR"]:
        del env[key]
    env.update({
        "FLOWBUS_BROKER": broker.url if isinstance(broker, Broker) else str(broker),
        "FLOWBUS_RUN_ID": run_id,
        "FLOWBUS_TOPIC_ROOT": f"flowbus/{run_id}",
        "FLOWBUS_TASK": task,
        "FLOWBUS_PLUGIN": "probe",
        "FLOWBUS_INPUTS": ",".join(inputs),
        "FLOWBUS_OUTPUTS": ",".join(outputs),
        "FLOWBUS_DEPENDS": ",".join(depends),
        "FLOWBUS_SECRETS": ",".join(secrets),
        "FLOWBUS_PARAMS": json.dumps(params or {}),
        "FLOWBUS_TIMEOUT": "0",
        "FLOWBUS_ATTEMPT": "1",
    })
    env.update(extra or {})
    return env


def run(cmd, env=None, timeout=10.0, input=None):
    """Runs cmd in its own process group; returns CompletedProcess (text output).

    On timeout the whole group is killed and subprocess.TimeoutExpired is raised.
    """
    proc = spawn(cmd, env, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def spawn(cmd, env=None, stdin=subprocess.DEVNULL):
    """Starts cmd in its own process group with captured text stdout/stderr."""
    return subprocess.Popen(cmd, env=env, stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


class BrokerTestCase(unittest.TestCase):
    """A TestCase with a fresh broker (self.broker) and recorder (self.recorder) per test.

    When a test fails, the broker's log is printed to stderr.
    """

    recorder_topic = "flowbus/#"

    def setUp(self):
        self.broker = Broker()
        self.addCleanup(self.broker.cleanup)
        self.recorder = Recorder(self.broker, self.recorder_topic)
        self.addCleanup(self.recorder.close)

    def run(self, result=None):
        result = result if result is not None else self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        self._broker_log = None
        super().run(result)
        if len(result.failures) + len(result.errors) > before and self._broker_log:
            sys.stderr.write(f"\n--- mosquitto log for {self.id()} ---\n{self._broker_log}\n")
        return result

    def doCleanups(self):
        # Keep the log before the cleanup removes the broker's directory.
        broker = getattr(self, "broker", None)
        if broker is not None:
            self._broker_log = broker.log()
        return super().doCleanups()
