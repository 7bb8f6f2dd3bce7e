"""Integration tests of `flowbus run` against a real mosquitto.

Each test runs the real coordinator, real task processes and a real broker.
Tests that inspect the bus use the test's own broker (`--broker`) and record
everything under flowbus/# from before the run starts.
"""

import json
import os
import signal
import time
import unittest

import fbrun
import fbtest


class _Rid(dict):
    """Run ids unique to this test process, so concurrent test runs never share topics."""

    def __missing__(self, key):
        return "%s-%d" % (key, os.getpid())


RID = _Rid()


class RunTestCase(fbtest.BrokerTestCase):
    def run_wf(self, name, run_id, *args, cwd=None, timeout=60):
        res = fbrun.run([ "run", fbrun.workflow(name), "--broker", self.broker.url,
                          "--run-id", run_id] + list(args), cwd=cwd, timeout=timeout)
        self.last = res
        self.settle(run_id)
        return res

    def settle(self, run_id):
        """Waits until the recorder has the run's final run state: the
        coordinator publishes it last, so everything else has arrived too."""
        topic = "flowbus/%s/state" % run_id
        self.recorder.wait_for(lambda ev: any(
            e.topic == topic and e.payload and e.json().get("state") != "running"
            for e in ev), timeout=10)

    def final(self, run_id, task):
        """The last state JSON the recorder saw for a task."""
        events = self.recorder.on_topic(fbtest.state_topic(run_id, task))
        self.assertTrue(events, "no state for %s" % task)
        return events[-1].json()

    def first_state(self, run_id, task, state):
        for e in self.recorder.on_topic(fbtest.state_topic(run_id, task)):
            if e.json()["state"] == state:
                return e.json()
        self.fail("%s never reported %s; saw %s" % (task, state, self.recorder.states(run_id, task)))

    def var(self, run_id, name):
        events = self.recorder.on_topic(fbtest.var_topic(run_id, name))
        return events[0].payload.decode() if events else None

    def assertExit(self, res, code):
        self.assertEqual(res.returncode, code,
                         "exit %d, expected %d\nstdout:\n%s\nstderr:\n%s" %
                         (res.returncode, code, res.stdout, res.stderr))


class TestSemantics(RunTestCase):
    def test_split_branches_overlap_and_join_waits(self):
        with fbrun.TempDir() as cwd:
            res = self.run_wf("split.yaml", RID["split1"], cwd=cwd)
        self.assertExit(res, 0)
        # The recorder may still be receiving the last messages: wait for the run state.
        self.recorder.wait_for(lambda ev: any(e.topic == "flowbus/%s/state" % RID["split1"] and
                                              json.loads(e.payload)["state"] == "done" for e in ev))
        a, b = self.final(RID["split1"], "A"), self.final(RID["split1"], "B")
        self.assertEqual((a["state"], b["state"]), ("done", "done"))
        # Running intervals, from the tasks' own timestamps, must overlap.
        self.assertLess(max(a["started"], b["started"]), min(a["at"], b["at"]),
                        "A %s..%s and B %s..%s did not overlap" %
                        (a["started"], a["at"], b["started"], b["at"]))
        # JOIN started only after both of its inputs were on the bus: the broker
        # handles messages in order, so the recorder saw both values first.
        order = [e.topic for e in self.recorder.events]
        root = "flowbus/%s/" % RID["split1"]
        running = [i for i, e in enumerate(self.recorder.events)
                   if e.topic == root + "tasks/JOIN/state" and e.json()["state"] == "running"][0]
        self.assertLess(order.index(root + "vars/A_OUT"), running)
        self.assertLess(order.index(root + "vars/B_OUT"), running)
        self.assertEqual(self.var(RID["split1"], "JOINED"), "a+b")
        self.assertEqual(self.final(RID["split1"], "END")["state"], "done")

    def test_failing_command_exits_1_and_skips_dependents(self):
        with fbrun.TempDir() as cwd:
            res = self.run_wf("fail.yaml", RID["fail1"], cwd=cwd)
        self.assertExit(res, 1)
        bad = self.final(RID["fail1"], "BAD")
        self.assertEqual(bad["state"], "failed")
        self.assertEqual(bad["exit"], 3)
        after = self.final(RID["fail1"], "AFTER")
        self.assertEqual(after["state"], "skipped")
        self.assertIn("X", after["error"])
        self.assertIn("BAD", after["error"])
        self.assertEqual(self.final(RID["fail1"], "END")["state"], "skipped")
        # A failed task publishes none of its outputs, even those printed before failing.
        self.assertIsNone(self.var(RID["fail1"], "X"))
        logs = [e.payload.decode() for e in self.recorder.on_topic("flowbus/%s/tasks/BAD/log" % RID["fail1"])]
        self.assertTrue(any("about to fail" in line for line in logs), logs)
        self.assertIn("AFTER", res.stdout)
        self.assertIn("skipped", res.stdout)

    def test_task_timeout_kills_the_process_group(self):
        with fbrun.TempDir() as cwd:
            res = self.run_wf("timeout.yaml", RID["timeout1"], cwd=cwd)
            self.assertExit(res, 1)
            slow = self.final(RID["timeout1"], "SLOW")
            self.assertEqual(slow["state"], "timeout")
            self.assertIn("0.5", slow["error"])
            self.assertLess(slow["at"] - slow["started"], 5.0)
            with open(os.path.join(cwd, "grandchild.pid")) as f:
                grandchild = int(f.read())
        left = fbrun.wait_gone(lambda: [grandchild] if fbrun.alive(grandchild) else [])
        self.assertFalse(left, "the timed-out task's child survived")
        self.assertEqual(self.final(RID["timeout1"], "END")["state"], "skipped")

    def test_touched_timeout_skips_downstream_exit_3(self):
        with fbrun.TempDir() as cwd:
            res = self.run_wf("touched-timeout.yaml", RID["tt1"], cwd=cwd)
        self.assertExit(res, 3)
        self.assertEqual(self.final(RID["tt1"], "TOUCH")["state"], "done")
        nxt = self.final(RID["tt1"], "NEXT")
        self.assertEqual(nxt["state"], "skipped")
        self.assertIn("TRUE", nxt["error"])
        self.assertIn("TOUCH", nxt["error"])
        end = self.final(RID["tt1"], "END")
        self.assertEqual(end["state"], "skipped")
        self.assertIn("NEXT_OUT", end["error"])
        self.assertIsNone(self.var(RID["tt1"], "TRUE"))

    def test_touched_fires_when_the_file_is_touched(self):
        with fbrun.TempDir() as cwd:
            proc = fbrun.start(["run", fbrun.workflow("touched.yaml"), "--broker", self.broker.url,
                                "--run-id", RID["touch1"]], cwd=cwd)
            try:
                self.recorder.wait_state(RID["touch1"], "TOUCH", "running", timeout=10)
                with open(os.path.join(cwd, "go.txt"), "w") as f:
                    f.write("go\n")
                out, err = proc.communicate(timeout=20)
                self.settle(RID["touch1"])
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.communicate()
        self.assertEqual(proc.returncode, 0, out + err)
        self.assertEqual(self.var(RID["touch1"], "TRUE"), "1")
        self.assertEqual(self.final(RID["touch1"], "END")["state"], "done")

    def test_kill_9_of_a_running_task_gives_crashed(self):
        with fbrun.TempDir() as cwd:
            proc = fbrun.start(["run", fbrun.workflow("sleeper.yaml"), "--broker", self.broker.url,
                                "--run-id", RID["crash1"]], cwd=cwd)
            try:
                _, running = self.recorder.wait_state(RID["crash1"], "SLEEPER", "running", timeout=10)
                os.kill(running["pid"], signal.SIGKILL)
                out, err = proc.communicate(timeout=20)
                self.settle(RID["crash1"])
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.communicate()
        self.assertEqual(proc.returncode, 1, out + err)
        sleeper = self.final(RID["crash1"], "SLEEPER")
        self.assertEqual(sleeper["state"], "crashed")
        self.assertEqual(sleeper["signal"], 9)
        self.assertEqual(self.final(RID["crash1"], "END")["state"], "skipped")
        # Its `sleep 60` child went with it.
        self.assertFalse(fbrun.wait_gone(lambda: fbrun.processes_with_env("FLOWBUS_RUN_ID", RID["crash1"])))

    def test_values_are_never_pasted_into_shell_text(self):
        with fbrun.TempDir() as cwd:
            res = self.run_wf("inject.yaml", RID["inject1"], cwd=cwd)
            self.assertExit(res, 0)
            self.assertEqual(sorted(os.listdir(cwd)), [])
        evil = "$(touch pwned); touch pwned2"
        self.assertEqual(self.var(RID["inject1"], "COPY"), evil)
        self.assertEqual(self.var(RID["inject1"], "LEN"), str(len(evil)))

    def test_set_overrides_env_and_json_events(self):
        with fbrun.TempDir() as cwd:
            res = self.run_wf("inject.yaml", RID["json1"], "--json", "--set", "EVIL=harmless", cwd=cwd)
        self.assertExit(res, 0)
        events = [json.loads(line) for line in res.stdout.splitlines()]
        kinds = {e["event"] for e in events}
        self.assertTrue({"task", "var", "run"} <= kinds, kinds)
        self.assertEqual(events[-1]["event"], "run")
        self.assertEqual(events[-1]["exit"], 0)
        self.assertEqual(events[-1]["tasks"]["END"]["state"], "done")
        copies = [e["value"] for e in events if e["event"] == "var" and e["name"] == "COPY"]
        self.assertEqual(copies, ["harmless"])
        # The run's state, workflow and every task's last state are retained.
        self.assertEqual(self.var(RID["json1"], "EVIL"), "harmless")
        wf = self.recorder.on_topic("flowbus/%s/workflow" % RID["json1"])[0].json()
        self.assertEqual([t["name"] for t in wf["tasks"]], ["ECHO", "ARGV", "END"])

    def test_a_used_run_id_is_refused(self):
        with fbrun.TempDir() as cwd:
            res = self.run_wf("split.yaml", RID["reuse"], cwd=cwd)
            self.assertExit(res, 0)
            # Everything the first run published has arrived once a marker
            # published now comes back (the broker keeps the order).
            marker = "flowbus/%s/test-marker" % RID["reuse"]
            self.recorder.publish(marker, b"x")
            self.recorder.wait_for(lambda ev: any(e.topic == marker for e in ev))
            before = len(self.recorder.events)
            res = self.run_wf("split.yaml", RID["reuse"], cwd=cwd)
        self.assertExit(res, 2)
        self.assertIn("already used", res.stderr)
        # The refused run published nothing but its own sync probe.
        later = [e.topic for e in self.recorder.events[before:]]
        self.assertTrue(all("/sync/" in t for t in later), later)

    def test_builtins_shell_and_python_plugins_and_depends_on(self):
        with fbrun.TempDir() as cwd:
            res = self.run_wf("builtins.yaml", RID["bi1"], cwd=cwd)
        self.assertExit(res, 0)
        self.assertEqual(self.var(RID["bi1"], "SHOUT"), "HELLO BUS!")
        self.assertEqual(self.var(RID["bi1"], "UPPER"), "HELLO BUS")
        self.assertRegex(self.var(RID["bi1"], "FREE_BYTES"), r"^[0-9]+$")
        self.assertRegex(self.var(RID["bi1"], "FREE_SPACE"), r"^[0-9.]+[KMGTPE]?$")
        self.assertTrue(self.var(RID["bi1"], "MAIN_VOLUME"))
        st = os.statvfs("/")
        free = st.f_bavail * st.f_frsize
        self.assertLess(abs(int(self.var(RID["bi1"], "FREE_BYTES")) - free), 512 * 1024 * 1024)
        # depends_on: SHOUT waited for START, UPPER for SHOUT.
        self.assertGreaterEqual(self.first_state(RID["bi1"], "SHOUT", "running")["at"],
                                self.final(RID["bi1"], "START")["at"] - 1e-3)
        self.assertGreaterEqual(self.first_state(RID["bi1"], "UPPER", "running")["at"],
                                self.final(RID["bi1"], "SHOUT")["at"] - 1e-3)


class TestLaunchWindow(RunTestCase):
    """Task processes start in graph order, a few at a time (core/run/launch.c launch__more)."""

    STAMP = """#!/bin/sh
# Records when this task's process started (wall clock), then becomes flowbus-cmd.
printf '%s %s\\n' "$FLOWBUS_TASK" "$(date +%s.%N)" >> "$STAMP_FILE"
[ "$FLOWBUS_TASK" = SLOW ] && sleep 2
exec "$STAMP_CMD" "$@"
"""

    def test_one_at_a_time_and_a_slow_starter_holds_nobody(self):
        with fbrun.TempDir() as d:
            plugin = os.path.join(d, "flowbus-stamp")
            with open(plugin, "w") as f:
                f.write(self.STAMP)
            os.chmod(plugin, 0o755)
            stamps = os.path.join(d, "stamps")
            env = fbrun.clean_env({"FLOWBUS_PLUGIN_PATH": d, "FLOWBUS_LAUNCH_WINDOW": "1",
                                   "STAMP_FILE": stamps,
                                   "STAMP_CMD": fbtest.bin_path("flowbus-cmd")})
            rid = RID["window"]
            res = fbrun.run(["run", fbrun.workflow("launch-window.yaml"), "--broker",
                             self.broker.url, "--run-id", rid], cwd=d, env=env)
            self.assertExit(res, 0)
            self.settle(rid)
            with open(stamps) as f:
                started = {name: float(t) for name, t in (line.split() for line in f)}
        waiting = {t: self.first_state(rid, t, "waiting")["at"] for t in ("SLOW", "A", "B", "C")}
        # Graph order (all at depth 0: file order), one process at a time.
        self.assertEqual(sorted(started, key=started.get), ["SLOW", "A", "B", "C"])
        # A waited for SLOW's place in the window to lapse (1 s from SLOW's launch, which its
        # stamp follows by a process start), not for SLOW to connect (2 s).
        self.assertGreaterEqual(started["A"] - started["SLOW"], 0.5)
        self.assertLess(waiting["A"], waiting["SLOW"])
        # B and C each started only once the one before had reported.
        self.assertGreaterEqual(started["B"], waiting["A"])
        self.assertGreaterEqual(started["C"], waiting["B"])

    def test_a_bad_window_is_named_and_the_default_used(self):
        with fbrun.TempDir() as d:
            env = fbrun.clean_env({"FLOWBUS_LAUNCH_WINDOW": "-3"})
            res = fbrun.run(["run", fbrun.workflow("split.yaml"), "--broker", self.broker.url,
                             "--run-id", RID["badwindow"]], cwd=d, env=env)
        self.assertExit(res, 0)
        self.assertIn("FLOWBUS_LAUNCH_WINDOW '-3' is not a number of processes", res.stderr)


class TestPrivateBroker(unittest.TestCase):
    """Runs without --broker: flowbus starts and stops its own mosquitto."""

    def setUp(self):
        self.tmp = fbrun.TempDir()
        self.dir = self.tmp.__enter__()
        self.addCleanup(self.tmp.__exit__)
        self.env = fbrun.clean_env({"TMPDIR": self.dir})

    def leftovers(self, run_id):
        return (fbrun.processes_with_env("FLOWBUS_RUN_ID", run_id) +
                fbrun.processes_with_cmdline(self.dir))

    def test_a_run_leaves_no_process_and_no_file(self):
        res = fbrun.run(["run", fbrun.workflow("split.yaml"), "--run-id", RID["priv1"]], cwd=self.dir,
                        env=self.env)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertIn("Run " + RID["priv1"], res.stdout)
        self.assertFalse(fbrun.wait_gone(lambda: self.leftovers(RID["priv1"])))
        self.assertEqual(os.listdir(self.dir), [], "the private broker's directory was left")

    def test_sigint_stops_everything(self):
        proc = fbrun.start(["run", fbrun.workflow("sleeper.yaml"), "--run-id", RID["sigint1"], "--json"],
                           cwd=self.dir, env=self.env)
        try:
            fbrun.read_json_until(proc, lambda e: e.get("event") == "task" and
                                  e.get("task") == "SLEEPER" and e.get("state") == "running")
            self.assertTrue(fbrun.processes_with_cmdline(self.dir), "no private broker seen")
            # What a terminal does on Ctrl-C: SIGINT to the foreground process group.
            os.killpg(proc.pid, signal.SIGINT)
            out, err = fbrun.finish(proc, timeout=15)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
        self.assertEqual(proc.returncode, 130, err)
        last = json.loads(out.splitlines()[-1])
        self.assertEqual(last["state"], "stopped")
        self.assertEqual(last["tasks"]["SLEEPER"]["state"], "failed")
        self.assertEqual(last["tasks"]["END"]["state"], "skipped")
        self.assertFalse(fbrun.wait_gone(lambda: self.leftovers(RID["sigint1"])),
                         "processes survived Ctrl-C")

    def test_run_timeout(self):
        res = fbrun.run(["run", fbrun.workflow("sleeper.yaml"), "--run-id", RID["rt1"], "--timeout",
                         "0.5"], cwd=self.dir, env=self.env)
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertIn("run timed out after 0.5 s", res.stdout + res.stderr)
        self.assertFalse(fbrun.wait_gone(lambda: self.leftovers(RID["rt1"])))


if __name__ == "__main__":
    unittest.main()
