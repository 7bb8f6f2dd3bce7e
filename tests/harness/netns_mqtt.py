"""netns_mqtt - the brokers and MQTT clients of netns.py's namespaced hosts.

A hub's mosquitto config (the tuning of broker-config/mosquitto.conf), an
edge's made from broker-config/bridge-edge.conf, NsBroker (a mosquitto in a
namespace, on port 1883 there) and NsClient (an in-process MQTT v5 client
whose network thread lives in a namespace). Created through netns.Net.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from netns_core import BRIDGE_TEMPLATE, MQTT_PORT, enter_netns, local_url

def _common_conf(directory, name):
    return (f"persistence true\npersistence_location {directory}/{name}-db/\n"
            "autosave_on_changes true\nautosave_interval 1\n"
            f"log_dest file {directory}/{name}-mosquitto.log\n"
            "log_type all\nlog_timestamp_format %H:%M:%S\n")


def hub_conf(directory, name, extra="", quiet=False):
    """The hub's config: the tuning of broker-config/mosquitto.conf, on every address."""
    os.makedirs(f"{directory}/{name}-db", mode=0o777, exist_ok=True)
    os.chmod(f"{directory}/{name}-db", 0o777)
    path = os.path.join(directory, f"{name}-mosquitto.conf")
    common = (f"persistence false\nlog_dest file {directory}/{name}-mosquitto.log\n"
              "log_type error\nlog_type warning\n") if quiet else _common_conf(directory, name)
    with open(path, "w") as f:
        f.write(f"listener {MQTT_PORT} 0.0.0.0\nallow_anonymous true\nset_tcp_nodelay true\n"
                "max_queued_messages 100000\n" + common + extra + "\n")
    return path


def set_directive(text, key, value):
    """text with the first active `key ...` line replaced by `key value` (which must exist)."""
    pattern = re.compile(rf"^{re.escape(key)}(\s.*)?$", re.M)
    if not pattern.search(text):
        raise ValueError(f"{BRIDGE_TEMPLATE} has no `{key}` line")
    return pattern.sub(lambda _: f"{key} {value}", text, count=1)


def edge_conf(directory, name, hub_addr, extra_topics=(), protocol=None, extra="", quiet=False):
    """An edge broker's config made from broker-config/bridge-edge.conf.

    Only what is specific to this host is replaced: the listener (all
    addresses of the namespace, so a test client may be on the switch too),
    where it keeps its database and log, the hub's address and the bridge's
    names. Every bridge setting (topics, cleansession, queues, keepalive,
    restart) is the template's, so the tests prove the shipped file.
    """
    with open(BRIDGE_TEMPLATE) as f:
        text = f.read()
    os.makedirs(f"{directory}/{name}-db", mode=0o777, exist_ok=True)
    os.chmod(f"{directory}/{name}-db", 0o777)
    text = set_directive(text, "listener", f"{MQTT_PORT} 0.0.0.0")
    text = set_directive(text, "persistence_location", f"{directory}/{name}-db/")
    text = set_directive(text, "log_dest", f"file {directory}/{name}-mosquitto.log")
    text = set_directive(text, "connection", f"flowbus-hub-{name}")
    text = set_directive(text, "address", f"{hub_addr}:{MQTT_PORT}")
    text = set_directive(text, "remote_clientid", f"flowbus-bridge-{name}")
    text = set_directive(text, "local_clientid", f"flowbus-bridge-{name}.local")
    if protocol:
        text = set_directive(text, "bridge_protocol_version", protocol)
    # Debug detail in the test log; the template logs notices and above.
    if not quiet:
        text = text.replace(
            "\nconnection ", "\nlog_type all\nlog_timestamp_format %H:%M:%S\n\nconnection ", 1)
    for pattern in extra_topics:
        text += f"topic {pattern} both 1\n"
    path = os.path.join(directory, f"{name}-mosquitto.conf")
    with open(path, "w") as f:
        f.write(text + extra + "\n")
    return path


class NsBroker:
    """A mosquitto in a host's namespace, on port 1883 of every address there."""

    def __init__(self, net, host, conf_path, bridge_id=None, start_timeout=5.0):
        self.net = net
        self.host = host
        self.conf_path = conf_path
        self.bridge_id = bridge_id       # remote client id of its bridge, if an edge
        self.log_path = os.path.join(net.dir, f"{host.name}-mosquitto.log")
        self.proc = None
        self.start(start_timeout)

    @property
    def url(self):
        """The broker's URL from another host."""
        return f"tcp://{self.host.addr}:{MQTT_PORT}"

    local_url = property(lambda self: local_url())

    def start(self, start_timeout=5.0):
        """(Re)starts mosquitto and waits until it listens (polled, with a deadline)."""
        stderr = open(os.path.join(self.net.dir, f"{self.host.name}-mosquitto.stderr"), "ab")
        try:
            self.proc = subprocess.Popen(self.net._argv(self.host, [_mosquitto(), "-c", self.conf_path]),
                                         stdout=stderr, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        finally:
            stderr.close()
        deadline = time.monotonic() + start_timeout
        while self.net.can_connect(self.host, "127.0.0.1", MQTT_PORT, 0.2) is not True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mosquitto in {self.host.name} did not start:\n{self.log()}")
            time.sleep(0.005)

    def wait_bridge(self, state="1", timeout=20.0):
        """Waits for the bridge's own notification ($SYS/broker/connection/<id>/state)."""
        if not self.bridge_id:
            raise RuntimeError("wait_bridge() on a broker without a bridge")
        topic = f"$SYS/broker/connection/{self.bridge_id}/state"
        with NsClient(self.net, self.host, topic) as c:
            # The notification is retained: its latest value arrives first.
            if not c.wait_for(lambda ev: ev and ev[-1].payload.decode() == state, timeout):
                raise AssertionError(f"bridge of {self.host.name} not {state} within {timeout}s; "
                                     f"saw {[e.payload for e in c.events]}")

    def log(self):
        text = ""
        for path in (os.path.join(self.net.dir, f"{self.host.name}-mosquitto.stderr"), self.log_path):
            try:
                with open(path, errors="replace") as f:
                    text += f.read()
            except OSError:
                pass
        return text

    def stop(self, sig=signal.SIGTERM):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def kill(self):
        self.stop(signal.SIGKILL)


def _mosquitto():
    return shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class Event:
    __slots__ = ("t", "topic", "payload", "retained", "properties")

    def __init__(self, t, topic, payload, retained, properties):
        self.t, self.topic, self.payload = t, topic, payload
        self.retained, self.properties = retained, properties

    def json(self):
        return json.loads(self.payload.decode())

    @property
    def expiry(self):
        """The MQTT v5 message expiry interval it arrived with, or None."""
        return getattr(self.properties, "MessageExpiryInterval", None) if self.properties else None

    def __repr__(self):
        return f"Event({self.topic!r}, {self.payload[:60]!r}, retained={self.retained})"


class NsClient:
    """An MQTT v5 client of a namespace's broker, recording one topic filter.

    Its network thread lives in the namespace (setns), so its socket, and
    every reconnect's, is made there. The constructor returns once the
    subscription is acknowledged: retained messages present then come first.
    Thread-safe; use as a context manager or close().
    """

    def __init__(self, net, host, topic="flowbus/#", addr="127.0.0.1", port=MQTT_PORT,
                 timeout=10.0, will=None, client_id=None, qos=1):
        self.events = []
        self.cond = threading.Condition()
        self.subscriptions = 0
        self._topic = topic
        self._qos = qos
        self._stop = False
        self.client = mqtt.Client(client_id=client_id or f"fbmh-{os.getpid()}-{id(self):x}",
                                  protocol=mqtt.MQTTv5)
        if will:
            self.client.will_set(will["topic"], will["payload"], qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self._error = None
        self._thread = threading.Thread(target=self._loop, args=(host.ns, addr, port), daemon=True)
        self._thread.start()
        if not self.wait_for(lambda _: self.subscriptions > 0 or self._error, timeout) or self._error:
            self.close()
            raise RuntimeError(f"client in {host.name}: no SUBACK from {addr}:{port} "
                               f"({self._error or 'timeout'})")

    def _loop(self, ns, addr, port):
        try:
            enter_netns(ns)
            self.client.connect(addr, port, keepalive=10)
        except OSError as e:
            with self.cond:
                self._error = e
                self.cond.notify_all()
            return
        while not self._stop:
            rc = self.client.loop(0.1)
            if rc != mqtt.MQTT_ERR_SUCCESS and not self._stop:
                time.sleep(0.1)
                try:
                    self.client.reconnect()
                except OSError:
                    pass

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        try:
            client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass
        client.subscribe(self._topic, qos=self._qos)

    def _on_subscribe(self, client, userdata, mid, granted, properties=None):
        with self.cond:
            self.subscriptions += 1
            self.cond.notify_all()

    def _on_message(self, client, userdata, msg):
        with self.cond:
            self.events.append(Event(time.monotonic(), msg.topic, bytes(msg.payload),
                                     bool(msg.retain), getattr(msg, "properties", None)))
            self.cond.notify_all()

    def wait_for(self, predicate, timeout=10.0):
        """Waits until predicate(events) is truthy; returns it, or None at the deadline."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                value = predicate(list(self.events))
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(min(left, 0.5))

    def on_topic(self, topic):
        with self.cond:
            return [e for e in self.events if e.topic == topic]

    def publish(self, topic, payload, retain=False, qos=1, expiry=None, timeout=10.0):
        """Publishes and, at QoS 1, waits for the broker's PUBACK."""
        props = None
        if expiry is not None:
            props = Properties(PacketTypes.PUBLISH)
            props.MessageExpiryInterval = expiry
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if qos > 0:
            info.wait_for_publish(timeout)
            if not info.is_published():
                raise AssertionError(f"publish to {topic} not acknowledged within {timeout}s")

    def close(self):
        if self._stop:
            return
        self._stop = True
        try:
            self.client.disconnect()
        except Exception:  # already gone: nothing to close
            pass
        self._thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
