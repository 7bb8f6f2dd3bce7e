"""A QoS 1 flow loses nothing under a flood (issue 12), and dropping is a choice.

A new user's first reactive flow: `mqtt-in` -> `mqtt-out`, messages published
in a burst with `mosquitto_pub -l`. With the old default (a full queue of 100
dropped its oldest events) 70 of a burst of 200 were lost, and of 20,000 about
half. By default a full queue now holds the connection back (execution.overflow:
block): the messages wait upstream and every one arrives, in order. The drop
policies (drop-oldest, drop-newest) keep exactly what they say and count what
they drop in the task's state.

Every wait has a deadline on a count of messages; nothing sleeps to synchronise.
FLOWBUS_FLOOD_CMD_COUNT sets how many messages the test through a cmd task sends
(default 2,000: a cmd activation forks a shell, ~3 ms each here; 20,000 of them
take over a minute, so the full count is bench/'s and tests/soak's business).
"""

import os
import shutil
import signal
import subprocess
import threading
import time
import unittest

import paho.mqtt.client as mqtt

import fbrun
import fbtest

RELAY_COUNT = 20000
CMD_COUNT = int(os.environ.get("FLOWBUS_FLOOD_CMD_COUNT", "2000"))


def rid(name):
    return "%s-%d" % (name, os.getpid())


class Collector:
    """A QoS 1 subscriber that keeps the payloads of one topic, in arrival order.

    The constructor returns once the broker acknowledged the subscription, so
    nothing published after it is missed. (fbtest.Recorder re-evaluates its
    predicate over every event on each arrival: too slow for 20,000.)
    """

    def __init__(self, broker, topic):
        self.payloads = []
        self.cond = threading.Condition()
        self.subscribed = False
        self.client = mqtt.Client(client_id="flood-collector-%d-%x" % (os.getpid(), id(self)),
                                  protocol=mqtt.MQTTv311)
        self.client.on_connect = lambda c, u, f, rc: c.subscribe(topic, qos=1)
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port, keepalive=30)
        self.client.loop_start()
        with self.cond:
            if not self.cond.wait_for(lambda: self.subscribed, 10):
                raise RuntimeError("collector: no SUBACK")

    def _on_subscribe(self, client, userdata, mid, granted):
        with self.cond:
            self.subscribed = True
            self.cond.notify_all()

    def _on_message(self, client, userdata, msg):
        with self.cond:
            self.payloads.append(msg.payload.decode())
            if len(self.payloads) % 100 == 0:
                self.cond.notify_all()

    def wait_count(self, n, timeout):
        """The payloads once n arrived, or what arrived by the deadline."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.payloads) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(min(left, 0.2))  # notified every 100 messages
            return list(self.payloads)

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


RELAY = """workflow:
  name: relay
  mode: reactive
  tasks:
    - name: IN
      plugin: mqtt-in
      outputs: [VALUE]
      params: {topic: flood/in, qos: 1}
%(middle)s    - name: OUT
      plugin: mqtt-out
      inputs: [%(out_input)s]
      params: {topic: flood/out, qos: 1}
"""

CMD = """    - name: MID
      plugin: cmd
      inputs: [VALUE]
      outputs: [RELAYED]
      params: {command: 'echo "RELAYED=$VALUE"'}
"""


class FloodTestCase(fbtest.BrokerTestCase):
    recorder_topic = "flowbus/+/tasks/#"  # states and logs, not the variables: 20,000 of them

    def up(self, text, run_id, cwd):
        path = os.path.join(cwd, "flow.yaml")
        with open(path, "w") as f:
            f.write(text)
        proc = fbrun.start(["up", path, "--broker", self.broker.url, "--run-id", run_id], cwd=cwd)
        self.addCleanup(self.kill, proc)
        return proc

    def kill(self, proc):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()

    def stop(self, proc, run_id):
        self.recorder.publish("flowbus/%s/control" % run_id, b'{"cmd":"stop"}', retain=True)
        return fbrun.finish(proc, timeout=30)

    def wait_ready(self, run_id, *tasks):
        for task in tasks:
            self.recorder.wait_state(run_id, task, "waiting", timeout=20)

    def last_state(self, run_id, task, predicate, timeout=20):
        topic = fbtest.state_topic(run_id, task)
        # Not Recorder.wait_for: it copies every event recorded at each arrival, and
        # behind a flood of ~100,000 messages that falls quadratically behind. The
        # task's own states are read every 50 ms until the deadline instead.
        deadline = time.monotonic() + timeout
        found = None
        while found is None and time.monotonic() < deadline:
            found = next((e.json() for e in reversed(self.recorder.on_topic(topic))
                          if predicate(e.json())), None)
            if found is None:
                time.sleep(0.05)
        self.assertTrue(found, "%s: no state of %s matching within %ss; the last: %s" % (
            run_id, task, timeout, [e.payload[:200] for e in self.recorder.on_topic(topic)][-2:]))
        return found

    def burst(self, n):
        """Publishes 1..n on flood/in at QoS 1 in one burst, as `mosquitto_pub -l` does."""
        pub = subprocess.run(
            ["mosquitto_pub", "-p", str(self.broker.port), "-t", "flood/in", "-q", "1", "-l"],
            input="".join("%d\n" % i for i in range(1, n + 1)), text=True,
            capture_output=True, timeout=120)
        self.assertEqual(pub.returncode, 0, pub.stderr)

    def relay(self, run_id, n, middle="", out_input="VALUE", tasks=("IN", "OUT"), timeout=120):
        """Runs the relay, floods it with n messages; returns what reached flood/out."""
        out = Collector(self.broker, "flood/out")
        self.addCleanup(out.close)
        with fbrun.TempDir() as cwd:
            proc = self.up(RELAY % {"middle": middle, "out_input": out_input}, run_id, cwd)
            self.wait_ready(run_id, *tasks)
            self.wait_listening(run_id)
            self.burst(n)
            got = out.wait_count(n, timeout)
            self.assertEqual(len(got), n, "%d of %d arrived; the last: %s" % (
                len(got), n, got[-3:]))
            self.assertEqual(got, [str(i) for i in range(1, n + 1)], "out of order")
            for task in tasks[1:]:
                state = self.last_state(run_id, task, lambda s: s.get("activation") == n
                                        and s.get("state") == "waiting")
                self.assertEqual(state.get("dropped"), 0, state)
            _, err = self.stop(proc, run_id)
        self.assertEqual(proc.returncode, 0, err)
        self.assertNotIn("are being dropped", self.broker.log())
        return got

    def wait_listening(self, run_id):
        """Until mqtt-in's subscription is acknowledged: it says so on its log, after "waiting"."""
        topic = "flowbus/%s/tasks/IN/log" % run_id
        self.assertTrue(self.recorder.wait_for(lambda ev: any(
            e.topic == topic and b"listening on flood/in" in e.payload for e in ev), 20),
            "mqtt-in did not report its subscription")


@unittest.skipUnless(shutil.which("mosquitto_pub"), "mosquitto_pub (mosquitto-clients) is needed")
class TestNothingLost(FloodTestCase):
    def test_a_burst_of_200_with_mosquitto_pub_l_arrives_whole(self):
        # The reproduction: 70 of these were dropped by the old default.
        self.relay(rid("burst200"), 200)

    def test_20000_qos1_messages_through_mqtt_in_and_out_complete_and_in_order(self):
        self.relay(rid("relay20k"), RELAY_COUNT, timeout=240)

    def test_the_same_through_a_cmd_task_in_between(self):
        self.relay(rid("cmdflood"), CMD_COUNT, middle=CMD, out_input="RELAYED",
                   tasks=("IN", "MID", "OUT"), timeout=max(120, CMD_COUNT / 20))


DROP = """workflow:
  name: drops
  mode: reactive
  tasks:
    - name: ECHO
      plugin: cmd
      inputs: [X]
      outputs: [Y]
      execution: {queue: 3%(overflow)s}
      params: {command: 'echo "Y=got-$X"'}
"""


class TestOverflowPolicies(FloodTestCase):
    recorder_topic = "flowbus/#"

    def flood_while_paused(self, run_id, overflow, n=10):
        """Pauses the flow, publishes 1..n on X, resumes; returns the Y values and ECHO's state.

        The values and the resume go out on one connection, so ECHO reads all
        n events (its queue holds 3) before it learns of the resume.
        """
        with fbrun.TempDir() as cwd:
            proc = self.up(DROP % {"overflow": ", overflow: " + overflow if overflow else ""}, run_id,
                           cwd)
            self.wait_ready(run_id, "ECHO")
            control = "flowbus/%s/control" % run_id
            self.recorder.publish(control, b'{"cmd":"pause"}', retain=True)
            self.recorder.wait_for(lambda ev: any(
                e.topic == "flowbus/%s/state" % run_id and e.json().get("paused")
                for e in ev), timeout=10)
            for i in range(1, n + 1):
                self.recorder.publish(fbtest.var_topic(run_id, "X"), str(i).encode(), retain=True)
            self.recorder.publish(control, b'{"cmd":"resume"}', retain=True)
            kept = n if overflow in (None, "block") else 3
            state = self.last_state(run_id, "ECHO", lambda s: s.get("activation") == kept
                                    and s.get("state") == "waiting" and s.get("queued") == 0)
            values = [e.payload.decode() for e in
                      self.recorder.on_topic(fbtest.var_topic(run_id, "Y"))]
            logs = [e.payload.decode() for e in
                    self.recorder.on_topic("flowbus/%s/tasks/ECHO/log" % run_id)]
            self.stop(proc, run_id)
        self.assertEqual(proc.returncode, 0)
        return values, state, logs

    def test_drop_oldest_keeps_the_latest_events_and_counts_the_rest(self):
        values, state, logs = self.flood_while_paused(rid("oldest"), "drop-oldest")
        self.assertEqual(values, ["got-8", "got-9", "got-10"])
        self.assertEqual(state["dropped"], 7, state)
        self.assertTrue(any("dropping the oldest events" in line for line in logs), logs)
        self.assertTrue(any("7 events dropped while busy (queue limit 3); 7 in all" in line
                            for line in logs), logs)

    def test_drop_newest_keeps_the_earliest_events_and_counts_the_rest(self):
        values, state, logs = self.flood_while_paused(rid("newest"), "drop-newest")
        self.assertEqual(values, ["got-1", "got-2", "got-3"])
        self.assertEqual(state["dropped"], 7, state)
        self.assertTrue(any("dropping the newest events" in line for line in logs), logs)

    def test_block_while_paused_keeps_every_event(self):
        # Paused, the task must read on (the resume comes behind the events), so
        # its queue goes past the bound rather than lose anything.
        values, state, _ = self.flood_while_paused(rid("blockpause"), None)
        self.assertEqual(values, ["got-%d" % i for i in range(1, 11)])
        self.assertEqual(state["dropped"], 0, state)


class TestHeldTaskIdles(FloodTestCase):
    recorder_topic = "flowbus/#"

    def test_a_cmd_task_held_by_its_full_queue_does_not_spin(self):
        # cmd polls fb_task_fd while its command runs. A held connection still
        # has messages waiting, so if fb_task_fd stayed readable the poll would
        # return at once, again and again, for the whole activation: 6
        # activations of 0.5 s would burn ~3 s of CPU instead of a few ms.
        # The bound below (0.5 s) is far from both (measured: 0.00-0.01 s, and 1.56 s
        # with the fd left in the set).
        run_id = rid("nospin")
        with fbrun.TempDir() as cwd:
            proc = self.up(DROP.replace("queue: 3", "queue: 1").replace(
                'echo "Y=got-$X"', 'sleep 0.5; echo "Y=got-$X"') % {"overflow": ""}, run_id, cwd)
            _, waiting = self.recorder.wait_state(run_id, "ECHO", "waiting", timeout=20)
            for i in range(1, 7):
                self.recorder.publish(fbtest.var_topic(run_id, "X"), str(i).encode(), retain=True)
            self.recorder.wait_for(lambda ev: len(self.recorder.on_topic(
                fbtest.var_topic(run_id, "Y"))) >= 6, 30)
            with open("/proc/%d/stat" % waiting["pid"]) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            values = [e.payload.decode() for e in
                      self.recorder.on_topic(fbtest.var_topic(run_id, "Y"))]
            self.stop(proc, run_id)
        self.assertEqual(values, ["got-%d" % i for i in range(1, 7)])
        self.assertLess(cpu, 0.5, "flowbus-cmd used %.2f s of CPU in 6 activations of 0.5 s" % cpu)


class TestBackPressure(fbtest.BrokerTestCase):
    """A blocked reactive task holds its socket: the broker, not the task, keeps the flood.

    The task's command waits on a gate file in its first activation; N QoS 1
    messages of 8 KB (N * 8 KB far above what the task may hold: its queue,
    FLOWBUS_QUEUE=10, plus the bus's own bound of 1,000 messages) are then
    published and acknowledged by the broker. The task process's resident
    memory must stay far below the flood's size while the broker has it all;
    once the gate opens every message comes out, in order, each once. (On
    the Paho backend, whose receive queue is unbounded, only the order.)
    """

    N = 3000
    PAD = 8000

    def rss_kb(self, pid):
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def test_a_full_queue_stops_reading_and_the_broker_holds_the_rest(self):
        run_id = "bp-%d" % os.getpid()
        with fbrun.TempDir() as cwd:
            gate = os.path.join(cwd, "gate")
            env = fbtest.task_env(self.broker, run_id, "T", inputs=("X",), outputs=("Y",),
                                  params={"command": 'while [ ! -e %s ]; do sleep 0.02; done; '
                                                     'echo "Y=${X%%%%:*}"' % gate},
                                  extra={"FLOWBUS_MODE": "reactive", "FLOWBUS_QUEUE": "10",
                                         "FLOWBUS_OVERFLOW": "block"})
            env["FLOWBUS_PLUGIN"] = "cmd"
            proc = fbtest.spawn([fbtest.bin_path("flowbus-cmd")], env)
            self.addCleanup(lambda: proc.poll() is None and proc.kill())
            self.recorder.wait_state(run_id, "T", "waiting", 10)
            base = self.rss_kb(proc.pid)
            out = Collector(self.broker, fbtest.var_topic(run_id, "Y"))
            self.addCleanup(out.client.disconnect)
            pub = mqtt.Client(client_id="bp-pub-%d" % os.getpid(), protocol=mqtt.MQTTv311)
            pub.max_inflight_messages_set(100)
            pub.connect("127.0.0.1", self.broker.port, keepalive=30)
            pub.loop_start()
            self.addCleanup(pub.loop_stop)
            pad = "x" * self.PAD
            infos = [pub.publish(fbtest.var_topic(run_id, "X"), "%d:%s" % (i, pad), qos=1)
                     for i in range(self.N)]
            deadline = time.monotonic() + 60
            peak = base
            for info in infos:
                while not info.is_published() and time.monotonic() < deadline:
                    peak = max(peak, self.rss_kb(proc.pid))
                    time.sleep(0.01)
            self.assertTrue(all(i.is_published() for i in infos),
                            "the broker did not take the whole flood")
            # The broker has all of it; the task's share is what it read before it held back.
            for _ in range(20):
                peak = max(peak, self.rss_kb(proc.pid))
                time.sleep(0.01)
            flood_kb = self.N * self.PAD // 1024
            grown = peak - base
            # Paho's receive queue is unbounded (sdk/src/bus/bus_internal.h): its threads read
            # on, so there the flood lands in the process and only the order below is checked.
            # Under ASan a process's RSS says nothing of what it holds (freed memory
            # stays in the quarantine), so the sanitizer pass checks the order only.
            if fbtest.mqtt_backend() == "mosquitto" and not os.environ.get("ASAN_OPTIONS"):
                self.assertLess(grown, flood_kb // 2,
                                "the task grew by %d KB while holding a flood of %d KB"
                                % (grown, flood_kb))
            self.assertEqual(len(out.payloads), 0, "an event went through the closed gate")
            open(gate, "w").close()
            got = out.wait_count(self.N, 120)
            self.recorder.publish("flowbus/%s/control" % run_id, b'{"cmd":"stop"}',
                                  retain=True)
            proc.communicate(timeout=20)
        self.assertEqual(got, [str(i) for i in range(self.N)],
                         "%d of %d arrived" % (len(got), self.N))
        sys_log = self.broker.log()
        self.assertNotIn("dropped", sys_log.lower().replace("dropped 0", ""))


class TestOverflowValidation(unittest.TestCase):
    def test_a_bad_overflow_value_is_a_positioned_error(self):
        with fbrun.TempDir() as cwd:
            path = os.path.join(cwd, "bad.yaml")
            with open(path, "w") as f:
                f.write(DROP % {"overflow": ", overflow: drop-olest"})
            r = fbrun.run(["validate", path], cwd=cwd)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("%s:9:39: error: 'overflow' must be block, drop-oldest or drop-newest, "
                      "got \"drop-olest\" (task 'ECHO'); did you mean 'drop-oldest'?" % path,
                      r.stderr)


if __name__ == "__main__":
    unittest.main()
