"""SDK tests of reactive mode (docs/protocol.md, "Reactive mode").

The built-in plugins run as reactive tasks against a private mosquitto,
driven directly with a FLOWBUS_* environment (FLOWBUS_MODE=reactive): no
coordinator. Every wait is Recorder.wait_for with a deadline; the few places
that need real time to pass (to show that something does NOT happen, or
to let a timer tick) say so.
"""

import json
import os
import signal
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
import fbtest  # noqa: E402

RUN = "react-1"


def plugin(name):
    return fbtest.bin_path(f"flowbus-{name}")


class ReactiveTest(fbtest.BrokerTestCase):

    def setUp(self):
        super().setUp()
        self.procs = []
        self.addCleanup(self.reap)

    def reap(self):
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()

    def start(self, name, task, inputs=(), outputs=(), params=None, extra=None, wait=True):
        env = fbtest.task_env(self.broker, RUN, task, inputs=inputs, outputs=outputs,
                              params=params,
                              extra={"FLOWBUS_MODE": "reactive", **(extra or {})})
        env["FLOWBUS_PLUGIN"] = name
        proc = fbtest.spawn([plugin(name)], env)
        self.procs.append(proc)
        if wait:
            self.recorder.wait_for(lambda evs: any(
                e.topic == fbtest.state_topic(RUN, task) and e.payload
                and e.json().get("pid") == proc.pid for e in evs), 10)
        return proc

    def set_var(self, name, value):
        self.recorder.publish(fbtest.var_topic(RUN, name), value, retain=True)

    def control(self, cmd):
        self.recorder.publish(f"flowbus/{RUN}/control", json.dumps({"cmd": cmd}), retain=True)

    def values(self, name):
        return [e.payload.decode() for e in self.recorder.on_topic(fbtest.var_topic(RUN, name))]

    def wait_values(self, name, n, timeout=10):
        got = self.recorder.wait_for(lambda _: len(self.values(name)) >= n and self.values(name),
                                     timeout)
        self.assertIsNotNone(got, f"{name}: wanted {n} values, saw {self.values(name)}")
        return got

    def task_states(self, task):
        return [e.json() for e in self.recorder.on_topic(fbtest.state_topic(RUN, task))
                if e.payload]

    def activations_done(self, task):
        return [s for s in self.task_states(task) if s["state"] == "waiting" and s.get("result")]

    def stop_and_check(self, proc, task):
        self.control("stop")
        out, err = proc.communicate(timeout=10)
        self.assertEqual(proc.returncode, 0, err)
        return err

    # -------------------------------------------------------------------

    def test_fires_once_per_publish_in_order(self):
        proc = self.start("cmd", "C", inputs=["X"], outputs=["Y"],
                          params={"command": 'echo "Y=$X-$FLOWBUS_ACTIVATION-$FLOWBUS_TRIGGER"'})
        for v in ("a", "b", "a"):  # the same value again is an event too
            self.set_var("X", v)
        self.assertEqual(self.wait_values("Y", 3), ["a-1-X", "b-2-X", "a-3-X"])
        done = self.recorder.wait_for(lambda _: len(self.activations_done("C")) >= 3
                                      and self.activations_done("C"))
        self.assertEqual([s["activation"] for s in done], [1, 2, 3])
        self.assertTrue(all(s["result"] == "done" and s["dropped"] == 0 for s in done))
        running = [s for s in self.task_states("C") if s["state"] == "running"]
        self.assertEqual([s["activation"] for s in running], [1, 2, 3])
        first = self.task_states("C")[0]
        self.assertEqual((first["state"], first["activation"], first["result"]),
                         ("waiting", 0, None))
        self.assertNotIn("worker", first)
        # Each output is on the broker before the state that ends its activation.
        ys = self.recorder.on_topic(fbtest.var_topic(RUN, "Y"))
        ends = [e for e in self.recorder.on_topic(fbtest.state_topic(RUN, "C"))
                if e.json().get("result")]
        for y, end in zip(ys, ends):
            self.assertLess(y.t, end.t)
        self.stop_and_check(proc, "C")
        # Stopped: no state after the stop, and no Will.
        self.assertIsNone(self.recorder.wait_for(
            lambda _: any(s["state"] == "crashed" for s in self.task_states("C")), 0.3))
        self.assertEqual(self.task_states("C")[-1]["activation"], 3)

    def test_failed_activation_does_not_end_the_task(self):
        proc = self.start("cmd", "F", inputs=["X"], outputs=["Y"],
                          params={"command": 'test "$X" != bad || exit 7; echo "Y=$X"'})
        for v in ("ok1", "bad", "ok2"):
            self.set_var("X", v)
        self.assertEqual(self.wait_values("Y", 2), ["ok1", "ok2"])
        done = self.recorder.wait_for(lambda _: len(self.activations_done("F")) >= 3
                                      and self.activations_done("F"))
        self.assertEqual([s["result"] for s in done], ["done", "failed", "done"])
        self.assertEqual(done[1]["exit"], 7)
        self.assertEqual(done[1]["error"], "command exited with code 7")
        self.assertIsNone(proc.poll())
        self.stop_and_check(proc, "F")

    def test_retained_inputs_fire_once_and_either_input_refires(self):
        self.set_var("A", "1")
        self.set_var("B", "1")
        proc = self.start("cmd", "J", inputs=["A", "B"], outputs=["OUT"],
                          params={"command": 'echo "OUT=$A,$B"'}, wait=False)
        self.assertEqual(self.wait_values("OUT", 1), ["1,1"])
        self.set_var("A", "2")
        self.assertEqual(self.wait_values("OUT", 2), ["1,1", "2,1"])
        self.set_var("B", "3")
        self.assertEqual(self.wait_values("OUT", 3), ["1,1", "2,1", "2,3"])
        self.stop_and_check(proc, "J")
        self.assertEqual(len(self.values("OUT")), 3)

    def test_not_all_inputs_set_fires_nothing(self):
        proc = self.start("cmd", "N", inputs=["A", "B"], outputs=["OUT"],
                          params={"command": 'echo "OUT=$A,$B"'})
        self.set_var("A", "1")
        self.set_var("A", "2")
        self.set_var("B", "x")
        # Only the event that found all inputs set fires.
        self.assertEqual(self.wait_values("OUT", 1), ["2,x"])
        self.stop_and_check(proc, "N")
        self.assertEqual(self.values("OUT"), ["2,x"])

    def test_triggers_limit_refiring(self):
        proc = self.start("cmd", "T", inputs=["A", "B"], outputs=["OUT"],
                          params={"command": 'echo "OUT=$A,$B,$FLOWBUS_TRIGGER"'},
                          extra={"FLOWBUS_TRIGGERS": "A"})
        self.set_var("B", "b1")
        self.set_var("A", "a1")
        self.assertEqual(self.wait_values("OUT", 1), ["a1,b1,A"])
        self.set_var("B", "b2")
        # B is not a trigger: nothing may fire. Real time must pass to show that.
        self.assertIsNone(self.recorder.wait_for(lambda _: len(self.values("OUT")) > 1, 0.5))
        self.set_var("A", "a2")
        self.assertEqual(self.wait_values("OUT", 2), ["a1,b1,A", "a2,b2,A"])
        self.stop_and_check(proc, "T")

    def test_touched_fires_on_each_touch(self):
        d = tempfile.mkdtemp(prefix="fbtest-touched-")
        self.addCleanup(lambda: __import__("shutil").rmtree(d, ignore_errors=True))
        path = os.path.join(d, "flag")
        proc = self.start("touched", "W", outputs=["TRUE"], params={"file": path, "timeout": 1})
        self.recorder.wait_for(lambda evs: any(b"watching" in e.payload for e in evs
                                               if e.topic.endswith("/W/log")), 5)
        for n in range(1, 5):
            with open(path, "a") as f:
                f.write("x\n")
            self.recorder.wait_for(lambda _: len(self.activations_done("W")) >= n, 5)
        done = self.activations_done("W")
        self.assertEqual([s["activation"] for s in done], [1, 2, 3, 4])
        # The param timeout (1 s) is ignored in reactive mode: still running.
        self.assertIsNone(proc.poll())
        self.stop_and_check(proc, "W")

    def test_every_ticks_without_drift(self):
        proc = self.start("every", "E", outputs=["TICK", "NOW"], params={"interval": "100ms"})
        # A timer needs real time: 10 ticks of 100 ms, with a generous deadline.
        ticks = self.wait_values("TICK", 10, timeout=5)
        self.stop_and_check(proc, "E")
        ticks = self.values("TICK")
        self.assertEqual(ticks, [str(i) for i in range(1, len(ticks) + 1)])
        times = [e.t for e in self.recorder.on_topic(fbtest.var_topic(RUN, "TICK"))]
        gaps = [b - a for a, b in zip(times, times[1:])]
        self.assertTrue(all(0.05 < g < 0.2 for g in gaps), gaps)
        # No drift: the n-th tick is n-1 intervals after the first, within 30 ms.
        self.assertAlmostEqual(times[9] - times[0], 0.9, delta=0.03)
        now = self.values("NOW")
        self.assertEqual(len(now), len(ticks))
        self.assertRegex(now[0], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")

    def test_every_oneshot_emits_once(self):
        env = fbtest.task_env(self.broker, RUN, "E1", outputs=["TICK"],
                              params={"interval": "50ms"})
        proc = fbtest.run([plugin("every")], env, timeout=10)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.recorder.wait_state(RUN, "E1", "done")
        self.assertEqual(self.values("TICK"), ["1"])

    def test_mqtt_in_brings_messages_in(self):
        proc = self.start("mqtt-in", "IN", outputs=["TEMP", "TOPIC"],
                          params={"topic": "sensors/+/temp"})
        self.recorder.wait_for(lambda evs: any(b"listening" in e.payload for e in evs
                                               if e.topic.endswith("/IN/log")), 5)
        self.recorder.publish("sensors/room1/temp", "21.5")
        self.recorder.publish("sensors/room2/temp", "19")
        self.recorder.publish("sensors/room2/humidity", "40")  # not matched
        self.assertEqual(self.wait_values("TEMP", 2), ["21.5", "19"])
        self.assertEqual(self.wait_values("TOPIC", 2),
                         ["sensors/room1/temp", "sensors/room2/temp"])
        self.stop_and_check(proc, "IN")
        self.assertEqual(len(self.values("TEMP")), 2)
        self.assertEqual([s["activation"] for s in self.activations_done("IN")], [1, 2])

    def test_mqtt_out_publishes_each_value(self):
        with fbtest.Recorder(self.broker, "alerts/#") as alerts:
            proc = self.start("mqtt-out", "OUT", inputs=["ALERT"],
                              params={"topic": "alerts/room1", "retain": True})
            for v in ("hot 31", "hot 32", "hot 32"):
                self.set_var("ALERT", v)
            got = alerts.wait_for(lambda evs: len(evs) >= 3 and evs, 10)
            self.assertIsNotNone(got)
            self.assertEqual([e.payload for e in got], [b"hot 31", b"hot 32", b"hot 32"])
            self.assertTrue(all(e.topic == "alerts/room1" for e in got))
            self.stop_and_check(proc, "OUT")
        with fbtest.Recorder(self.broker, "alerts/#") as late:  # retain: true
            got = late.wait_for(lambda evs: evs, 5)
            self.assertEqual([(e.payload, e.retained) for e in got], [(b"hot 32", True)])

    def test_three_workers_share_300_events(self):
        d = tempfile.mkdtemp(prefix="fbtest-workers-")
        self.addCleanup(lambda: __import__("shutil").rmtree(d, ignore_errors=True))
        log = os.path.join(d, "handled")
        procs = [self.start("cmd", "P", inputs=["X"],
                            params={"command": f'echo "$X $FLOWBUS_WORKER" >> {log}'},
                            extra={"FLOWBUS_WORKERS": "3", "FLOWBUS_WORKER": str(w)})
                 for w in (1, 2, 3)]
        for i in range(300):
            self.set_var("X", f"e{i}")
        done = self.recorder.wait_for(lambda _: len(self.activations_done("P")) >= 300
                                      and self.activations_done("P"), 60)
        self.assertIsNotNone(done, f"{len(self.activations_done('P'))} activations")
        with open(log) as f:
            lines = f.read().split("\n")[:-1]
        handled = [line.split()[0] for line in lines]
        self.assertEqual(len(handled), 300)
        self.assertEqual(sorted(handled), sorted(f"e{i}" for i in range(300)))
        per_worker = {w: sum(1 for line in lines if line.split()[1] == str(w)) for w in (1, 2, 3)}
        self.assertTrue(all(n > 0 for n in per_worker.values()), per_worker)
        self.assertEqual({s["worker"] for s in done}, {1, 2, 3})
        self.control("stop")
        for proc in procs:
            proc.communicate(timeout=10)
            self.assertEqual(proc.returncode, 0)

    def test_worker_pool_fires_once_on_retained_start(self):
        self.set_var("X", "start")
        d = tempfile.mkdtemp(prefix="fbtest-workers-")
        self.addCleanup(lambda: __import__("shutil").rmtree(d, ignore_errors=True))
        log = os.path.join(d, "handled")
        for w in (1, 2):
            self.start("cmd", "Q", inputs=["X"],
                       params={"command": f'echo "$X $FLOWBUS_WORKER" >> {log}'},
                       extra={"FLOWBUS_WORKERS": "2", "FLOWBUS_WORKER": str(w)})
        self.recorder.wait_for(lambda _: self.activations_done("Q"), 10)
        # Only worker 1 takes the retained value; real time must pass to show worker 2 does not.
        self.assertIsNone(self.recorder.wait_for(
            lambda _: len(self.activations_done("Q")) > 1, 0.5))
        with open(log) as f:
            self.assertEqual(f.read(), "start 1\n")

    def test_queue_bound_drops_the_oldest(self):
        proc = self.start("cmd", "S", inputs=["X"], outputs=["Y"],
                          params={"command": 'sleep 0.4; echo "Y=$X"'},
                          extra={"FLOWBUS_QUEUE": "5", "FLOWBUS_OVERFLOW": "drop-oldest"})
        self.set_var("X", "v0")
        self.recorder.wait_for(lambda _: any(s["state"] == "running"
                                             for s in self.task_states("S")), 5)
        for i in range(1, 21):
            self.set_var("X", f"e{i}")
        expected = ["v0"] + [f"e{i}" for i in range(16, 21)]
        self.assertEqual(self.wait_values("Y", 6, timeout=15), expected)
        done = self.recorder.wait_for(lambda _: len(self.activations_done("S")) >= 6
                                      and self.activations_done("S"), 10)
        self.assertEqual(done[-1]["dropped"], 15)
        self.assertEqual(done[-1]["queued"], 0)
        logs = [e.payload.decode() for e in self.recorder.on_topic(f"flowbus/{RUN}/tasks/S/log")]
        self.assertTrue(any("queue full (5 events)" in line for line in logs), logs)
        self.assertTrue(any("15 events dropped" in line for line in logs), logs)
        # Real time for a seventh activation that must not come.
        self.assertIsNone(self.recorder.wait_for(lambda _: len(self.values("Y")) > 6, 0.5))
        self.stop_and_check(proc, "S")

    def test_flood_coalesces_states_and_ends_exact(self):
        # A backlog worked through as fast as the SDK allows: past the first
        # 500 activations the task reports at most a state every 50 ms (and
        # every failure), then its exact counters once the queue runs dry.
        n = 2000
        topic = fbtest.var_topic(RUN, "X")
        state = fbtest.state_topic(RUN, "R")
        proc = self.start("probe", "R", inputs=["X"], outputs=["Y"],
                          params={"fail_on": "e1500"}, extra={"FLOWBUS_QUEUE": "5000"})
        self.control("pause")
        last = None
        for i in range(n):
            last = self.recorder.client.publish(topic, f"e{i}", qos=1, retain=True)
        last.wait_for_publish(30)
        self.control("resume")

        def settled(events):
            # The newest state of R, found from the end (the list is long).
            for e in reversed(events):
                if e.topic == state and e.payload:
                    s = e.json()
                    return s if s["activation"] == n and s["state"] == "waiting" else None
            return None

        final = self.recorder.wait_for(settled, 60)
        self.assertIsNotNone(final, f"last state: {self.task_states('R')[-1:]}")
        self.assertEqual((final["result"], final["queued"], final["dropped"]), ("done", 0, 0))
        self.assertEqual(self.values("Y"), [f"e{i}" for i in range(n) if i != 1500])
        states = [s for s in self.task_states("R") if s["activation"] > 0]
        self.assertEqual([s["activation"] for s in states],
                         sorted(s["activation"] for s in states))
        # Two states per activation without coalescing; about 500 activations' worth with it.
        self.assertLess(len(states), n, f"{len(states)} states for {n} activations")
        self.assertEqual([s["activation"] for s in states[:4]], [1, 1, 2, 2])
        failed = [s for s in states if s.get("result") == "failed"]
        self.assertEqual([(s["activation"], s["exit"], s["error"]) for s in failed],
                         [(1501, 5, "asked to fail on e1500")])
        self.stop_and_check(proc, "R")
        self.assertEqual(self.task_states("R")[-1], final)

    def test_pause_holds_and_resume_delivers(self):
        proc = self.start("cmd", "PR", inputs=["X"], outputs=["Y"],
                          params={"command": 'echo "Y=$X"'})
        self.control("pause")
        for v in ("p1", "p2", "p3"):
            self.set_var("X", v)
        # Paused: nothing may run. Real time must pass to show that.
        self.assertIsNone(self.recorder.wait_for(
            lambda _: any(s["state"] == "running" for s in self.task_states("PR")), 0.5))
        self.assertEqual(self.values("Y"), [])
        self.control("resume")
        self.assertEqual(self.wait_values("Y", 3), ["p1", "p2", "p3"])
        self.stop_and_check(proc, "PR")

    def test_stop_ends_with_exit_0_and_no_state(self):
        proc = self.start("cmd", "ST", inputs=["X"], params={"command": "true"})
        before = len(self.task_states("ST"))
        self.control("stop")
        out, err = proc.communicate(timeout=10)
        self.assertEqual(proc.returncode, 0, err)
        self.assertIsNone(self.recorder.wait_for(
            lambda _: len(self.task_states("ST")) > before, 0.3))
        self.assertEqual([s["state"] for s in self.task_states("ST")], ["waiting"])

    def test_expiry_on_retained_publishes(self):
        def on(topic):
            # Read events directly: the harness may hide messages that carry an expiry.
            return [e for e in list(self.recorder.events) if e.topic == topic]

        self.set_var("X", "v")
        proc = self.start("cmd", "EX", inputs=["X"], outputs=["Y"],
                          params={"command": 'echo "Y=$X"'},
                          extra={"FLOWBUS_EXPIRY": "3600"}, wait=False)
        y = self.recorder.wait_for(lambda _: on(fbtest.var_topic(RUN, "Y")), 10)
        self.assertIsNotNone(y)
        self.assertGreater(getattr(y[0].properties, "MessageExpiryInterval", 0), 3500)
        states = on(fbtest.state_topic(RUN, "EX"))
        self.assertTrue(states)
        self.assertTrue(all(getattr(e.properties, "MessageExpiryInterval", 0) > 3500
                            for e in states))
        self.stop_and_check(proc, "EX")

    def test_start_and_end(self):
        start = self.start("start", "BEGIN", outputs=["TRUE"], wait=False)
        end = self.start("end", "END", inputs=["TRUE"], wait=False)
        self.wait_values("TRUE", 1)
        self.recorder.wait_for(lambda _: self.activations_done("END"), 10)
        self.set_var("TRUE", "1")
        self.recorder.wait_for(lambda _: len(self.activations_done("END")) >= 2, 10)
        logs = [e.payload.decode() for e in self.recorder.on_topic(f"flowbus/{RUN}/tasks/END/log")]
        self.assertIn("activation 2 (TRUE)", logs)
        self.control("stop")
        for proc in (start, end):
            proc.communicate(timeout=10)
            self.assertEqual(proc.returncode, 0)
        self.assertEqual(self.values("TRUE"), ["1", "1"])


if __name__ == "__main__":
    unittest.main()
