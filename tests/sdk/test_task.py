"""SDK tests of fb_task: the probe plugin against a private mosquitto.

Each test sets up the bus (retained inputs, dependency states), runs
flowbus-probe with a FLOWBUS_* environment and checks what the recorder saw.
"""

import json
import os
import signal
import statistics
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
import fbtest  # noqa: E402

PROBE = fbtest.bin_path("flowbus-probe")
RUN = "sdkrun-1"


class TaskTest(fbtest.BrokerTestCase):

    def env(self, task, **kw):
        return fbtest.task_env(self.broker, RUN, task, **kw)

    def set_var(self, name, value):
        self.recorder.publish(fbtest.var_topic(RUN, name), value, retain=True)

    def set_state(self, task, state):
        self.recorder.publish(fbtest.state_topic(RUN, task), json.dumps({"state": state}),
                              retain=True)

    def run_probe(self, env, timeout=15):
        return fbtest.run([PROBE], env, timeout=timeout)

    def assertExit(self, proc, code):
        self.assertEqual(proc.returncode, code,
                         f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")

    def inputs_line(self, proc):
        for line in proc.stdout.splitlines():
            obj = json.loads(line)
            if obj.get("event") == "inputs":
                return obj["values"]
        self.fail(f"no inputs line in {proc.stdout!r}")

    def test_waiting_running_done_with_outputs(self):
        self.set_var("A", "alpha")
        self.set_var("B", "beta")
        proc = self.run_probe(self.env("T1", inputs=["A", "B"], outputs=["X", "Y"],
                                       params={"value_X": "ex"},
                                       extra={"FLOWBUS_ATTEMPT": "2", "PROBE_FREE": "1"}))
        self.assertExit(proc, 0)
        self.assertEqual(self.inputs_line(proc), {"A": "alpha", "B": "beta"})
        _, done = self.recorder.wait_state(RUN, "T1", "done")
        self.assertEqual(self.recorder.states(RUN, "T1"), ["waiting", "running", "done"])
        events = self.recorder.on_topic(fbtest.state_topic(RUN, "T1"))
        waiting, running = events[0].json(), events[1].json()
        self.assertEqual(set(done), {"state", "attempt", "pid", "at", "started", "exit",
                                     "signal", "error"})
        for st in (waiting, running, done):
            self.assertEqual(st["attempt"], 2)
            self.assertIsInstance(st["pid"], int)
            self.assertIsInstance(st["at"], float)
            self.assertIsNone(st["signal"])
        self.assertIsNone(waiting["started"])
        self.assertLessEqual(waiting["at"], running["at"])
        self.assertLessEqual(running["at"], done["at"])
        self.assertEqual(done["started"], running["at"])
        self.assertEqual(done["exit"], 0)
        self.assertIsNone(done["error"])
        # Outputs are retained and arrive before "done".
        x = self.recorder.on_topic(fbtest.var_topic(RUN, "X"))
        y = self.recorder.on_topic(fbtest.var_topic(RUN, "Y"))
        self.assertEqual([e.payload for e in x], [b"ex"])
        self.assertEqual([e.payload for e in y], [b"T1.Y"])
        done_ev = events[2]
        self.assertLess(x[0].t, done_ev.t)
        self.assertLess(y[0].t, done_ev.t)
        # Retained: a late subscriber gets them.
        with fbtest.Recorder(self.broker, f"flowbus/{RUN}/vars/#") as late:
            got = late.wait_for(lambda evs: len(evs) >= 4 and evs)
            self.assertTrue(got)
            self.assertTrue(all(e.retained for e in got))
        # The log topic got the probe's line.
        logs = self.recorder.on_topic(f"flowbus/{RUN}/tasks/T1/log")
        self.assertIn(b"probe T1 acting", [e.payload for e in logs])

    def test_fail_publishes_no_outputs(self):
        proc = self.run_probe(self.env("F", outputs=["X"], params={"action": "fail", "exit": 9}))
        self.assertExit(proc, 9)
        _, failed = self.recorder.wait_state(RUN, "F", "failed")
        self.assertEqual(failed["exit"], 9)
        self.assertEqual(failed["error"], "failing on purpose (as asked)")
        self.assertIsInstance(failed["started"], float)
        self.assertEqual(self.recorder.states(RUN, "F"), ["waiting", "running", "failed"])
        self.assertEqual(self.recorder.on_topic(fbtest.var_topic(RUN, "X")), [])

    def test_last_will_on_kill(self):
        proc = fbtest.spawn([PROBE], self.env("K", inputs=["NEVER"]))
        try:
            _, waiting = self.recorder.wait_state(RUN, "K", "waiting")
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=5)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        _, crashed = self.recorder.wait_state(RUN, "K", "crashed", timeout=5)
        self.assertEqual(crashed["pid"], proc.pid)
        self.assertEqual(crashed["attempt"], 1)
        self.assertEqual(crashed["error"], "connection lost")
        self.assertIsNone(crashed["exit"])
        self.assertLessEqual(crashed["at"], waiting["at"])
        # A clean exit sends no Will: see test_stop_via_control.

    def test_depends_on_waits_for_done(self):
        proc = fbtest.spawn([PROBE], self.env("D", depends=["UP"]))
        try:
            self.recorder.wait_state(RUN, "D", "waiting")
            self.set_state("UP", "running")
            # A deadline, not a sleep: running must not appear while UP is not done.
            self.assertIsNone(self.recorder.wait_for(
                lambda _: "running" in self.recorder.states(RUN, "D"), 0.3))
            self.set_state("UP", "failed")
            self.assertIsNone(self.recorder.wait_for(
                lambda _: "running" in self.recorder.states(RUN, "D"), 0.3))
            self.set_state("UP", "done")
            self.recorder.wait_state(RUN, "D", "done")
            out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        self.assertEqual(proc.returncode, 0, err)

    def test_stop_via_control(self):
        proc = fbtest.spawn([PROBE], self.env("S", inputs=["NEVER"]))
        try:
            self.recorder.wait_state(RUN, "S", "waiting")
            self.recorder.publish(f"flowbus/{RUN}/control", '{"cmd":"stop"}', retain=True)
            out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        self.assertEqual(proc.returncode, 0, err)
        self.assertIn('"stopped"', out)
        # Give a Will the chance to show up (it must not): wait on the topic with a deadline.
        self.assertIsNone(self.recorder.wait_for(
            lambda _: "crashed" in self.recorder.states(RUN, "S"), 0.3))
        self.assertEqual(self.recorder.states(RUN, "S"), ["waiting"])

    def test_secret_never_published(self):
        secret = "hunter2-very-secret"
        self.set_var("PLAIN", "p")
        env = self.env("SEC", inputs=["PLAIN", "TOKEN"], secrets=["TOKEN"], outputs=["OUT"],
                       extra={"TOKEN": secret})
        proc = self.run_probe(env)
        self.assertExit(proc, 0)
        self.assertEqual(self.inputs_line(proc), {"PLAIN": "p", "TOKEN": {"secret_len": len(secret)}})
        self.recorder.wait_state(RUN, "SEC", "done")
        for e in self.recorder.events:
            self.assertNotIn(secret.encode(), e.payload, e.topic)
            self.assertNotIn("TOKEN", e.topic)
        self.assertNotIn(secret, self.broker.log())

    def test_secret_missing_from_environment(self):
        proc = self.run_probe(self.env("SEC2", inputs=["TOKEN"], secrets=["TOKEN"]))
        self.assertExit(proc, 2)
        self.assertIn("TOKEN", proc.stderr)

    def test_empty_value_round_trip(self):
        self.set_var("IN", b"\x00")
        proc = self.run_probe(self.env("E", inputs=["IN"], outputs=["OUT"], params={"echo": "IN"}))
        self.assertExit(proc, 0)
        self.assertEqual(self.inputs_line(proc), {"IN": ""})
        self.recorder.wait_state(RUN, "E", "done")
        self.assertEqual([e.payload for e in self.recorder.on_topic(fbtest.var_topic(RUN, "OUT"))],
                         [b"\x00"])

    def test_existing_output_not_overwritten(self):
        self.set_var("OUT", "first")
        proc = self.run_probe(self.env("W", outputs=["OUT", "OTHER"], params={"value_OUT": "second"}))
        self.assertExit(proc, 0)
        self.recorder.wait_state(RUN, "W", "done")
        self.assertEqual([e.payload for e in self.recorder.on_topic(fbtest.var_topic(RUN, "OUT"))],
                         [b"first"])
        self.assertEqual([e.payload for e in self.recorder.on_topic(fbtest.var_topic(RUN, "OTHER"))],
                         [b"W.OTHER"])
        logs = [e.payload.decode() for e in self.recorder.on_topic(f"flowbus/{RUN}/tasks/W/log")]
        self.assertTrue(any("OUT" in l and "not overwritten" in l for l in logs), logs)

    def test_missing_env_variable(self):
        env = self.env("M", outputs=["X"])
        del env["FLOWBUS_BROKER"]
        proc = self.run_probe(env)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("FLOWBUS_BROKER", proc.stderr)
        env = self.env("M", outputs=["X"], extra={"FLOWBUS_PARAMS": "[1,2]"})
        proc = self.run_probe(env)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("FLOWBUS_PARAMS", proc.stderr)
        env = self.env("M", inputs=["not a name"])
        proc = self.run_probe(env)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("FLOWBUS_INPUTS", proc.stderr)
        self.assertEqual(self.recorder.events, [])

    def test_value_over_limit_refused(self):
        env = self.env("L", outputs=["BIG"], params={"oversize": 17},
                       extra={"FLOWBUS_MAX_VALUE": "16"})
        proc = self.run_probe(env)
        self.assertExit(proc, 7)
        _, failed = self.recorder.wait_state(RUN, "L", "failed")
        self.assertIn("value too large", failed["error"])
        self.assertEqual(self.recorder.on_topic(fbtest.var_topic(RUN, "BIG")), [])
        # Exactly at the limit is fine.
        env = self.env("L2", outputs=["BIG"], params={"oversize": 16},
                       extra={"FLOWBUS_MAX_VALUE": "16"})
        self.assertExit(self.run_probe(env), 0)

    def test_wrong_broker_gives_connect_error(self):
        env = self.env("C")
        env["FLOWBUS_BROKER"] = f"tcp://127.0.0.1:{fbtest.free_port()}"
        env["FLOWBUS_PASSWORD"] = "pw-must-not-show"
        env["FLOWBUS_USERNAME"] = "u"
        proc = self.run_probe(env)
        self.assertExit(proc, 2)
        self.assertIn("cannot connect", proc.stderr)
        self.assertNotIn("pw-must-not-show", proc.stderr)
        env["FLOWBUS_BROKER"] = "ws://127.0.0.1:1"
        proc = self.run_probe(env)
        self.assertExit(proc, 2)
        self.assertIn("scheme", proc.stderr)

    def test_params_as_text(self):
        # The probe's value_<OUT> params go through fb_task_param: numbers and booleans too.
        proc = self.run_probe(self.env("P", outputs=["N", "B", "R"],
                                       params={"value_N": 42, "value_B": True, "value_R": 1.5,
                                               "nested": {"a": 1}}))
        self.assertExit(proc, 0)
        self.recorder.wait_state(RUN, "P", "done")
        got = {n: [e.payload for e in self.recorder.on_topic(fbtest.var_topic(RUN, n))]
               for n in ("N", "B", "R")}
        self.assertEqual(got, {"N": [b"42"], "B": [b"true"], "R": [b"1.5"]})

    def test_startup_latency(self):
        """Process start to "done" for a task with 3 retained inputs and 1 output (reported)."""
        for name in ("I1", "I2", "I3"):
            self.set_var(name, name.lower())
        totals, opens = [], []
        for i in range(15):
            env = self.env(f"LAT{i}", inputs=["I1", "I2", "I3"], outputs=[f"O{i}"],
                           extra={"PROBE_TIMING": "1"})
            proc = self.run_probe(env)
            self.assertExit(proc, 0)
            line = [l for l in proc.stderr.splitlines() if l.startswith("timing")][0]
            fields = dict(f.split("=") for f in line.split()[1:])
            totals.append(float(fields["total_ms"]))
            opens.append(float(fields["open_ms"]))
        sys.stderr.write(f"\nprobe open ms: median {statistics.median(opens):.2f}, max "
                         f"{max(opens):.2f}; open-to-done ms: median "
                         f"{statistics.median(totals):.2f}, max {max(totals):.2f}\n")
        self.assertLess(statistics.median(totals), 200)


if __name__ == "__main__":
    unittest.main()
