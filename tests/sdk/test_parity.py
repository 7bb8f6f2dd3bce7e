"""One contract, two SDKs: the same reactive-mode tests against a C task and a Python task.

Each test is written once, in ParityCases, and runs twice: CSdk drives the
built-in cmd plugin (C SDK), PySdk drives tests/sdk/pyprobe.py (Python SDK,
run with /usr/bin/python3 and the package the build copied to
<build>/share/flowbus/python). Both tasks put the upper-cased value of their
first input into their output, so the assertions are the same. The
dependency a task waits for is played by the test through the Recorder (its
state is published by hand), so the order of events is the test's to choose.
Each test starts its own mosquitto on a free loopback port; every wait has a
deadline, and the few waits that show that something does NOT happen say so.
"""

import json
import os
import re
import signal
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
import fbtest  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
WAIT = 15  # seconds for one state or one value (generous for a loaded machine)
QUIET = 0.5  # seconds to show that nothing happens


class ParityCases:
    """The tests; a subclass says how to start its SDK's task (command())."""

    def setUp(self):
        super().setUp()
        self.run_id = "parity-%s-%d" % (type(self).__name__.lower(), os.getpid())
        self.procs = []
        self.addCleanup(self.reap)

    def reap(self):
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()

    def start(self, task, inputs, outputs, depends=(), extra=None, spam=0, mode="reactive"):
        cmd, base, params = self.command(inputs[0], spam)
        env = fbtest.task_env(self.broker, self.run_id, task, inputs=inputs, outputs=outputs,
                              depends=depends, params=params, base=base,
                              extra={"FLOWBUS_MODE": mode, **(extra or {})})
        proc = fbtest.spawn(cmd, env)
        self.procs.append(proc)
        self.recorder.wait_for(lambda evs: any(
            e.topic == fbtest.state_topic(self.run_id, task) and e.payload
            and e.json().get("pid") == proc.pid for e in evs), WAIT)
        return proc

    def set_var(self, name, value):
        self.recorder.publish(fbtest.var_topic(self.run_id, name), value, retain=True)

    def dep_state(self, task, state, result, activation):
        self.recorder.publish(fbtest.state_topic(self.run_id, task), json.dumps(
            {"state": state, "attempt": 1, "pid": 1, "at": 0, "started": None, "exit": None,
             "signal": None, "error": None, "activation": activation, "result": result,
             "queued": 0, "dropped": 0}), retain=True)

    def values(self, name):
        return [e.payload.decode() for e in self.recorder.on_topic(fbtest.var_topic(self.run_id, name))]

    def wait_values(self, name, n, timeout=WAIT):
        got = self.recorder.wait_for(lambda _: len(self.values(name)) >= n, timeout)
        self.assertTrue(got, "%s: expected %d values, got %s" % (name, n, self.values(name)))
        return self.values(name)

    def states(self, task):
        return [e.json() for e in self.recorder.on_topic(fbtest.state_topic(self.run_id, task))
                if e.payload]

    def test_depends_on_an_event_waits_for_the_dependency_done(self):
        # The dependency D publishes its output RAW and then ends its
        # activation: the event on RAW comes before D's "done". It must not be
        # lost (before the fix it was: B never fired under `flowbus up`).
        self.start("B", inputs=["RAW"], outputs=["OUT"], depends=["D"])
        self.dep_state("D", "running", None, 1)
        self.set_var("RAW", "a")
        # Real time: the event must wait for D.
        self.assertIsNone(self.recorder.wait_for(lambda _: self.values("OUT"), QUIET))
        self.dep_state("D", "waiting", "done", 1)
        self.assertEqual(self.wait_values("OUT", 1), ["A"])
        # The next activation of D: running (no result yet), output, done.
        self.dep_state("D", "running", None, 2)
        self.set_var("RAW", "b")
        self.assertIsNone(self.recorder.wait_for(lambda _: len(self.values("OUT")) > 1, QUIET))
        self.dep_state("D", "waiting", "done", 2)
        self.assertEqual(self.wait_values("OUT", 2), ["A", "B"])
        # A failed activation of D holds B's events until D next ends done.
        self.dep_state("D", "waiting", "failed", 3)
        self.set_var("RAW", "c")
        self.assertIsNone(self.recorder.wait_for(lambda _: len(self.values("OUT")) > 2, QUIET))
        self.dep_state("D", "waiting", "done", 4)
        self.assertEqual(self.wait_values("OUT", 3), ["A", "B", "C"])
        # The state that ends an activation follows its output: wait for the third.
        done = self.recorder.wait_for(lambda _: [
            s["activation"] for s in self.states("B")
            if s["state"] == "waiting" and s["result"] == "done"] == [1, 2, 3], WAIT)
        self.assertTrue(done, self.states("B"))

    def test_depends_on_done_first_fires_at_once(self):
        # The other order (the dependency was done before the value came) fires at once.
        self.start("B", inputs=["RAW"], outputs=["OUT"], depends=["D"])
        self.dep_state("D", "waiting", "done", 1)
        self.set_var("RAW", "x")
        self.assertEqual(self.wait_values("OUT", 1), ["X"])

    def test_running_state_has_no_result(self):
        self.start("B", inputs=["RAW"], outputs=["OUT"])
        self.set_var("RAW", "a")
        self.wait_values("OUT", 1)
        self.set_var("RAW", "b")
        self.wait_values("OUT", 2)
        got = self.recorder.wait_for(lambda _: len([
            s for s in self.states("B") if s.get("result") == "done"]) >= 2, WAIT)
        self.assertTrue(got)
        running = [s for s in self.states("B") if s["state"] == "running"]
        self.assertEqual([(s["activation"], s["result"]) for s in running], [(1, None), (2, None)])


    def log_lines(self, task):
        return [e.payload.decode() for e in self.recorder.on_topic(
            "flowbus/%s/tasks/%s/log" % (self.run_id, task))]

    def control(self, cmd):
        self.recorder.publish("flowbus/%s/control" % self.run_id, json.dumps({"cmd": cmd}),
                              retain=True)

    def test_log_lines_are_bounded_per_second(self):
        # FB_LOG_LINES_PER_S (2000): past it lines are dropped and counted, and
        # the count is published before the task's final state.
        n = 6000
        proc = self.start("L", inputs=["RAW"], outputs=["OUT"], spam=n, mode="oneshot")
        self.set_var("RAW", "a")
        self.assertTrue(self.recorder.wait_for(
            lambda _: any(s["state"] == "done" for s in self.states("L")), WAIT))
        self.assertEqual(proc.wait(WAIT), 0)
        lines = self.log_lines("L")
        shown = [line for line in lines if line.startswith("line ")]
        notes = [re.fullmatch(r"\[(\d+) lines dropped: more than 2000 lines in a second\]", line)
                 for line in lines if line.startswith("[")]
        self.assertTrue(notes and all(notes), lines[-5:])
        self.assertEqual(len(shown) + sum(int(m.group(1)) for m in notes), n)
        self.assertLessEqual(len(shown), 2000 * len(notes))
        self.assertEqual(shown[:3], ["line 1", "line 2", "line 3"])

    def test_a_full_queue_says_so_at_once_and_at_the_next_activation(self):
        self.control("pause")
        self.start("Q", inputs=["RAW"], outputs=["OUT"], extra={"FLOWBUS_QUEUE": "2"})
        for v in "abcde":
            self.set_var("RAW", v)
        first = "queue full (2 events): dropping the oldest events (1 dropped so far)"
        self.assertTrue(self.recorder.wait_for(lambda _: first in self.log_lines("Q"), WAIT),
                        self.log_lines("Q"))
        self.assertEqual(self.values("OUT"), [])  # paused: nothing ran
        self.control("resume")
        self.assertEqual(self.wait_values("OUT", 2), ["D", "E"])
        self.assertIn("3 events dropped while busy (queue limit 2); 3 in all", self.log_lines("Q"))
        self.assertEqual(sum(line.startswith("queue full") for line in self.log_lines("Q")), 1)


class CSdk(ParityCases, fbtest.BrokerTestCase):
    """The C SDK, through the built-in cmd plugin."""

    def command(self, first_input, spam=0):
        script = 'printf "OUT=%%s\\n" "$(printf %%s "$%s" | tr a-z A-Z)"' % first_input
        if spam:
            script = 'seq 1 %d | sed "s/^/line /"; %s' % (spam, script)
        return [fbtest.bin_path("flowbus-cmd")], None, {"command": script}


class PySdk(ParityCases, fbtest.BrokerTestCase):
    """The Python SDK, through pyprobe.py (mode upper, or spam)."""

    def command(self, first_input, spam=0):
        base = {k: v for k, v in os.environ.items() if k not in ("AUTH_TOKEN", "PYTHONPATH")}
        base["PYTHONPATH"] = os.path.join(fbtest.build_dir(), "share", "flowbus", "python")
        params = {"mode": "spam", "count": spam} if spam else {"mode": "upper"}
        return [PYTHON, os.path.join(HERE, "pyprobe.py")], base, params


if __name__ == "__main__":
    unittest.main()
