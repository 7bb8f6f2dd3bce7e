"""The task's one connection to the broker, on Debian's python3-paho-mqtt (1.6).

MQTT 3.1.1, as tasks/examples/flowbus-upper always spoke: paho 1.6 speaks v5
too, but its on_publish hands over no PUBACK reason code, so a v5 refusal
("not authorized") could not be reported anyway, and 3.1.1 keeps the Python
plugins on the protocol every broker speaks. Only FLOWBUS_EXPIRY needs v5
(message expiry is a v5 property): with it set, the connection is MQTT v5 and
every retained publish carries the expiry, as the C SDK's do; the Will carries
none. Clean session, a client id unique to the process (fb-<run>-<task>- and
64 random bits, like the C SDK's), keepalive 10 s.

Every successful connect after the first counts as a reconnect
(self.reconnects), so the task can publish again what a restarted broker may
have lost (Engine.reassert), as the C SDK does with fb_bus_reconnects.

The Last Will marks the task "crashed"; TCP_NODELAY is set on the socket
(Nagle plus delayed ACKs cost ~40 ms per QoS 1 round trip). Paho runs its
network loop on its own thread (loop_start): its callbacks only hand
messages and connection events over to the caller's thread through a
condition variable, and never block.
"""

import json
import os
import socket
import threading
import time

from ._errors import Lost, SetupError

ACK_TIMEOUT = 10.0  # seconds for the broker's acknowledgement of one publish
CONNECT_TIMEOUT = 10.0


class Bus:
    """One paho client with the task's Will; messages go to on_message(topic, payload, retained).

    on_message runs on paho's thread with self.cond held: it must only record.
    """

    def __init__(self, env, filters, on_message, will=True, cond=None):
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise SetupError("python3-paho-mqtt is not installed for this interpreter; run the "
                             "plugin with /usr/bin/python3 (docs/python-sdk.md)")
        self.env = env
        self.filters = list(filters)
        self.on_message = on_message
        # A second connection (a worker pool's shared subscriptions) shares the first one's condition.
        self.cond = cond if cond is not None else threading.Condition()
        self.connected = False
        self.subscribed = False
        self.refused = None  # the CONNACK code of a refused connection
        self.down_since = None  # time.monotonic() when the connection was lost
        self.closing = False
        self.disconnected = False
        self.acked = {}  # message id -> time.monotonic() of its acknowledgement
        self.pending = []  # (info, sent_at) of messages published without waiting
        host, port, tls = env.hostport()
        self.host, self.port = host, port
        # Whoever connects with this id kicks us off (and fires our Will): it ends with 64
        # random bits, as fb_client_id's do, so nobody can guess it from the names or the pid.
        prefix = "fb-%s-%s%s" % (env.run_id, env.task, "" if will else "-events")
        client_id = "%s-%s" % (prefix[:46], os.urandom(8).hex())
        self.v5 = env.expiry > 0
        self.expiry_props = None
        if self.v5:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties
            self.expiry_props = Properties(PacketTypes.PUBLISH)
            self.expiry_props.MessageExpiryInterval = env.expiry
            # v5 has clean start (connect()) in place of clean session.
            self.client = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
        else:
            self.client = mqtt.Client(client_id=client_id, clean_session=True,
                                      protocol=mqtt.MQTTv311)
        self.connects = 0  # successful connects so far
        if tls:
            # Verification always on (tls_set's default): against FLOWBUS_TLS_CA,
            # else the system's CA store.
            self.client.tls_set(ca_certs=env.tls_ca, certfile=env.tls_cert, keyfile=env.tls_key)
        if env.username:
            self.client.username_pw_set(env.username, env.password)
        if will:
            # The Last Will: the task's state "crashed", retained, QoS 1.
            body = {"state": "crashed", "attempt": env.attempt, "pid": os.getpid(),
                    "at": round(time.time(), 6), "exit": None, "error": "connection lost"}
            if env.reactive and env.workers > 1:
                body["worker"] = env.worker
            self.client.will_set(env.state_topic, json.dumps(body), qos=1, retain=True)
        self.client.reconnect_delay_set(min_delay=0.05, max_delay=2)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_socket_open = self._on_socket_open

    # Callbacks run on paho's thread: record and notify, never block.
    @staticmethod
    def _on_socket_open(client, userdata, sock):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass  # not a TCP socket (or a TLS wrapper without it): only slower

    # v5 callbacks get a reason code object and properties more: *_ takes them.
    def _on_connect(self, client, userdata, flags, rc, *_):
        rc = rc.value if hasattr(rc, "value") else int(rc)
        with self.cond:
            if rc != 0:
                self.refused = rc
                self.cond.notify_all()
                return
            self.connected = True
            self.connects += 1
            self.down_since = None
            self.cond.notify_all()
        # After a reconnect the retained values come again: the caller takes them as they are.
        client.subscribe([(f, 1) for f in self.filters])

    def _on_subscribe(self, client, userdata, mid, granted_qos, *_):
        with self.cond:
            self.subscribed = True
            self.cond.notify_all()

    def _on_message(self, client, userdata, msg):
        with self.cond:
            self.on_message(msg.topic, bytes(msg.payload), bool(msg.retain))
            self.cond.notify_all()

    def _on_publish(self, client, userdata, mid):
        now = time.monotonic()
        with self.cond:
            self.acked[mid] = now
            if len(self.acked) > 4096:  # ids are reused after 65535 messages: forget old ones
                self.acked = {m: t for m, t in self.acked.items() if now - t < 60}
            self.cond.notify_all()

    def _on_disconnect(self, client, userdata, rc, *_):
        with self.cond:
            self.connected = False
            if self.closing:
                self.disconnected = True
            elif self.down_since is None:
                self.down_since = time.monotonic()
            self.cond.notify_all()

    def open(self):
        """Connects and subscribes; returns once the SUBACK is in. Raises SetupError."""
        try:
            if self.v5:
                self.client.connect(self.host, self.port, keepalive=10, clean_start=True)
            else:
                self.client.connect(self.host, self.port, keepalive=10)
        except (OSError, ValueError) as e:
            raise SetupError("cannot connect to the broker at %s:%d: %s" % (self.host, self.port, e))
        self.client.loop_start()
        with self.cond:
            self.cond.wait_for(lambda: self.subscribed or self.refused is not None, CONNECT_TIMEOUT)
            ok = self.subscribed
            refused = self.refused
        if not ok:
            self.client.loop_stop()
            if refused is not None:
                raise SetupError("the broker at %s:%d refused the connection (CONNACK %d: %s)" % (
                    self.host, self.port, refused, _connack_text(refused)))
            raise SetupError("the broker at %s:%d did not accept the connection or subscription "
                             "within %g s" % (self.host, self.port, CONNECT_TIMEOUT))

    @property
    def reconnects(self):
        """Successful connects after the first. Call with cond held."""
        return max(0, self.connects - 1)

    def lost(self):
        """True once the connection has been down longer than FLOWBUS_RECONNECT_MAX. Call with cond held."""
        return self.down_since is not None and \
            time.monotonic() - self.down_since >= self.env.reconnect_max

    def lost_deadline(self):
        """Seconds until lost() turns true (None while connected). Call with cond held."""
        if self.down_since is None:
            return None
        return max(0.0, self.down_since + self.env.reconnect_max - time.monotonic())

    def publish(self, topic, payload, retain=True, wait=True):
        """QoS 1; with wait, returns once the broker acknowledged it (raises Lost otherwise).

        Without wait the message is queued in order: paho sends one client's
        QoS 1 messages in order and re-sends the unacknowledged ones after a
        reconnect, so the broker gets them before anything published later.
        """
        sent_at = time.monotonic()
        if retain and self.expiry_props is not None:
            info = self.client.publish(topic, payload, qos=1, retain=True,
                                       properties=self.expiry_props)
        else:
            info = self.client.publish(topic, payload, qos=1, retain=retain)
        if not wait:
            with self.cond:
                if len(self.pending) >= 1024:  # a long-lived reactive task: forget the confirmed ones
                    self.pending = [(i, t) for i, t in self.pending if not self._acked(i, t)]
                self.pending.append((info, sent_at))
            return info
        # The acknowledgements are recorded by _on_publish: paho's own
        # wait_for_publish gives up on a message queued while disconnected,
        # which paho still sends after the reconnect.
        deadline = time.monotonic() + max(ACK_TIMEOUT, self.env.reconnect_max)
        with self.cond:
            if not self.cond.wait_for(lambda: self._acked(info, sent_at),
                                      max(0.0, deadline - time.monotonic())):
                raise Lost("the broker did not acknowledge a message on %s" % topic)
        return info

    def _acked(self, info, sent_at):
        # An entry older than this publish is of an earlier message with the same id.
        return info.is_published() or self.acked.get(info.mid, -1.0) >= sent_at

    def flush(self, timeout=ACK_TIMEOUT):
        """Waits until every message published without waiting is acknowledged; False at the deadline."""
        with self.cond:
            ok = self.cond.wait_for(lambda: all(self._acked(i, t) for i, t in self.pending), timeout)
            self.pending = [(i, t) for i, t in self.pending if not self._acked(i, t)]
        return ok

    def close(self):
        """Disconnects cleanly (the broker drops the Will) and stops paho's thread."""
        with self.cond:
            self.closing = True
            connected = self.connected
        if connected:
            self.client.disconnect()
            # Paho's thread writes the DISCONNECT: stopping it first could leave
            # the packet unsent, and the broker would publish the Will.
            with self.cond:
                self.cond.wait_for(lambda: self.disconnected, 2.0)
        self.client.loop_stop()


def _connack_text(rc):
    # 1-5: MQTT 3.1.1's CONNACK codes; 128 and up: v5's reason codes (FLOWBUS_EXPIRY).
    return {1: "unacceptable protocol version", 2: "client id rejected", 3: "server unavailable",
            4: "bad user name or password", 5: "not authorised", 128: "unspecified error",
            132: "unsupported protocol version", 133: "client id rejected",
            134: "bad user name or password", 135: "not authorised", 136: "server unavailable",
            138: "banned"}.get(rc, "refused")
