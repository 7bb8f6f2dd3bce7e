"""The built-in relay under a flood (issue 12): mqtt-in -> mqtt-out vs a direct stream.

N QoS 1 messages (20,000; 2,000 in smoke mode) are published in one burst with
`mosquitto_pub -l` and counted by a `mosquitto_sub` on the other side, twice
on the same broker in the same invocation:

- direct: mosquitto_pub -> topic -> mosquitto_sub (the reference: the broker
  and the two clients alone);
- relay: mosquitto_pub -> bench/in -> mqtt-in -> vars/VALUE -> mqtt-out ->
  bench/out -> mosquitto_sub, a reactive flow run by `flowbus up`;
- the same with a `cmd` task in between (a shell per message: the 20,000
  through cmd that CI's test_flood leaves to here, ~1 minute).

The figure is the time from the start of mosquitto_pub to the N-th message at
the subscriber; the row gives the ratio, the messages lost and whether they
came in order. Lost or reordered messages are reported in the row (met: NO),
never hidden.
"""

import os
import subprocess
import threading
import time

READY = "relay-bench-ready"


class Subscriber:
    """mosquitto_sub on one topic, its lines read on a thread with their arrival times.

    Subscribed once a priming message published on the topic came back (the
    client has no other way to say so); the priming lines are not counted.
    """

    def __init__(self, port, topic):
        self.lines = []
        self.done_at = None
        self.cond = threading.Condition()
        self.target = None
        self.proc = subprocess.Popen(["mosquitto_sub", "-p", str(port), "-t", topic, "-q", "1"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, bufsize=1, start_new_session=True)
        self.ready = False
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 10
        while not self.ready:
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("mosquitto_sub did not subscribe within 10 s")
            subprocess.run(["mosquitto_pub", "-p", str(port), "-t", topic, "-q", "1", "-m", READY],
                           check=True, timeout=10)
            with self.cond:
                self.cond.wait_for(lambda: self.ready, 0.1)

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            with self.cond:
                if line == READY:
                    self.ready = True
                else:
                    self.lines.append(line)
                    if self.target is not None and len(self.lines) >= self.target:
                        self.done_at = time.monotonic()
                self.cond.notify_all()

    def wait(self, n, timeout):
        """Seconds-since-epoch (monotonic) of the n-th line, or None at the deadline."""
        with self.cond:
            self.target = n
            if len(self.lines) >= n and self.done_at is None:
                self.done_at = time.monotonic()
            self.cond.wait_for(lambda: self.done_at is not None, timeout)
            return self.done_at

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


def stream(port, in_topic, sub, n, timeout):
    """Publishes 1..n on in_topic in one burst; returns (seconds to the n-th, lines)."""
    payload = "".join("%d\n" % i for i in range(1, n + 1))
    t0 = time.monotonic()
    subprocess.run(["mosquitto_pub", "-p", str(port), "-t", in_topic, "-q", "1", "-l"],
                   input=payload, text=True, check=True, timeout=timeout)
    done = sub.wait(n, timeout)
    # Whatever is late or extra shows in the count; give stragglers no extra time.
    lines = list(sub.lines)
    return (done - t0) if done is not None else None, lines


def check(lines, n):
    """(lost, in order) of what arrived against 1..n."""
    expected = [str(i) for i in range(1, n + 1)]
    lost = n - len(set(lines) & set(expected))
    return lost, lines[:n] == expected and len(lines) == n


MQTT_IN = ("    - name: IN\n      plugin: mqtt-in\n      outputs: [VALUE]\n"
           "      params: {topic: bench/in, qos: 1}\n")
CMD = ("    - name: MID\n      plugin: cmd\n      inputs: [VALUE]\n      outputs: [RELAYED]\n"
       "      params: {command: 'echo \"RELAYED=$VALUE\"'}\n")
MQTT_OUT = ("    - name: OUT\n      plugin: mqtt-out\n      inputs: [%s]\n"
            "      params: {topic: bench/out, qos: 1}\n")


def flow(bench, broker, n, timeout, with_cmd):
    """n messages through a `flowbus up` relay; returns (seconds to the n-th, lines)."""
    import fbtest  # the driver put tests/harness on sys.path
    bench.relays = getattr(bench, "relays", 0) + 1
    run_id = "benchmqtt-%d-%d" % (os.getpid(), bench.relays)
    wf = bench.write("mqtt-relay-%d.yaml" % bench.relays,
                     "workflow:\n  name: mqtt relay\n  mode: reactive\n  tasks:\n" + MQTT_IN
                     + (CMD if with_cmd else "") + MQTT_OUT % ("RELAYED" if with_cmd else "VALUE"))
    # Subscribed before the flow starts: mqtt-in's log line is not retained.
    rec = fbtest.Recorder(broker.port, "flowbus/%s/tasks/IN/log" % run_id)
    up = subprocess.Popen([bench.flowbus, "up", wf, "--broker", broker.url, "--run-id", run_id,
                           "-q", "--expiry", "60"], env=bench.env, cwd=bench.work,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          start_new_session=True)
    sub = None
    try:
        sub = Subscriber(broker.port, "bench/out")
        if not rec.wait_for(lambda ev: any(b"listening on" in e.payload for e in ev), 30):
            raise RuntimeError("mqtt-in did not report its subscription within 30 s")
        return stream(broker.port, "bench/in", sub, n, timeout)
    finally:
        rec.close()
        if sub is not None:
            sub.stop()
        up.terminate()
        try:
            up.wait(20)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()


def measure(bench, broker):
    n = 2000 if bench.smoke else 20000
    timeout = 120 if bench.smoke else 300
    # The reference: the broker and the same two clients, no hop.
    sub = Subscriber(broker.port, "bench/direct")
    try:
        direct, lines = stream(broker.port, "bench/direct", sub, n, timeout)
    finally:
        sub.stop()
    d_lost, d_order = check(lines, n)
    if direct is None or d_lost:
        bench.note(f"mqtt relay: the direct stream itself lost {d_lost} of {n}")
    raw = bench.raw["mqtt_relay"] = dict(n=n, direct_s=direct, direct_lost=d_lost,
                                         direct_in_order=d_order)
    for with_cmd in (False, True):
        secs, lines = flow(bench, broker, n, timeout, with_cmd)
        lost, in_order = check(lines, n)
        key = "cmd" if with_cmd else "relay"
        raw.update({key + "_s": secs, key + "_lost": lost, key + "_in_order": in_order})
        ratio = secs / direct if secs is not None and direct else None
        path = "mqtt-in -> cmd -> mqtt-out" if with_cmd else "mqtt-in -> mqtt-out relay"
        ok = lost == 0 and in_order
        bench.row(f"{path}, {n:,} QoS 1 msgs: {lost} lost, "
                  f"{'in order' if in_order else 'OUT OF ORDER'}",
                  secs if secs is not None else "timeout", direct, "s",
                  "0 lost, in order" if with_cmd else "<= 3x, 0 lost, in order",
                  ok if with_cmd else (ok and ratio is not None and ratio <= 3), ratio=ratio,
                  ref_label="mosquitto_pub -> mosquitto_sub, same broker")
