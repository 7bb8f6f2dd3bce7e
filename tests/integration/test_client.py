"""Integration tests of `flowbus status`, `set`, `logs`, `stop` and `pause`.

Each test starts its own mosquitto, runs the real coordinator against it in
the background (`flowbus run --broker URL --run-id ID`) and pokes the run with
the client commands, as a user on another terminal would. What the commands
say is checked against what the recorder saw on the bus.
"""

import json
import os
import select
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


def read_until(proc, predicate, timeout=20):
    """Reads proc's stdout line by line until predicate(line) holds; returns the lines read.

    It reads the file descriptor directly (select + os.read) so that a line
    that has arrived is never stuck in Python's buffer; what it read is kept
    on proc and finish_text() returns it with the rest of the output.
    """
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    lines = proc.__dict__.setdefault("fb_lines", [])
    pending = proc.__dict__.setdefault("fb_pending", [b""])
    while True:
        while b"\n" in pending[0]:
            line, pending[0] = pending[0].split(b"\n", 1)
            lines.append(line.decode())
            if predicate(lines[-1]):
                return lines
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        pending[0] += chunk
    raise AssertionError("no matching line within %ss; saw:\n%s" % (timeout, "\n".join(lines)))


def finish_text(proc, timeout=20):
    """Waits for proc; returns (stdout, stderr) including what read_until consumed."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except Exception:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError("%s did not exit within %ss:\n%s\n%s" % (proc.args, timeout, out, err))
    before = "".join(l + "\n" for l in proc.__dict__.get("fb_lines", []))
    return before + proc.__dict__.get("fb_pending", [b""])[0].decode() + out, err


class ClientTestCase(fbtest.BrokerTestCase):
    def setUp(self):
        super().setUp()
        self.tmp = fbrun.TempDir()
        self.cwd = self.tmp.__enter__()
        self.addCleanup(self.tmp.__exit__)

    def client(self, *args, env=None, timeout=60):
        """Runs `flowbus ARGS --broker URL`; returns the CompletedProcess."""
        return fbrun.run(list(args) + ["--broker", self.broker.url], env=env, timeout=timeout)

    def start_run(self, name, run_id):
        """Starts `flowbus run` of a client-*.yaml in the background; killed at cleanup."""
        proc = fbrun.start(["run", fbrun.workflow(name), "--broker", self.broker.url,
                            "--run-id", run_id], cwd=self.cwd)

        def stop():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            # A coordinator killed with -9 leaves its task processes: end them by pid.
            for pid in fbrun.processes_with_env("FLOWBUS_RUN_ID", run_id):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
        self.addCleanup(stop)
        return proc

    def run_to_end(self, name, run_id):
        res = fbrun.run(["run", fbrun.workflow(name), "--broker", self.broker.url,
                         "--run-id", run_id], cwd=self.cwd)
        self.wait_run_state(run_id, lambda s: s["state"] != "running")
        return res

    def run_state(self, run_id):
        events = [e for e in self.recorder.on_topic("flowbus/%s/state" % run_id) if e.payload]
        return events[-1].json() if events else None

    def wait_run_state(self, run_id, predicate, timeout=20):
        topic = "flowbus/%s/state" % run_id

        def find(events):
            states = [e.json() for e in events if e.topic == topic and e.payload]
            return states and predicate(states[-1])

        self.assertTrue(self.recorder.wait_for(find, timeout),
                        "run %s: no matching run state within %ss; last %s" %
                        (run_id, timeout, self.run_state(run_id)))
        return self.run_state(run_id)

    def published(self, topic):
        return [e.payload for e in self.recorder.on_topic(topic)]

    def assertExit(self, res, code):
        self.assertEqual(res.returncode, code,
                         "exit %d, expected %d\nstdout:\n%s\nstderr:\n%s" %
                         (res.returncode, code, res.stdout, res.stderr))

    def assertOneErrorLine(self, res, *fragments):
        lines = res.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, "expected one error line, got:\n" + res.stderr)
        for fragment in fragments:
            self.assertIn(fragment, lines[0])

    def fake_run(self, run_id, state):
        """Publishes the retained topics of a run that has no live coordinator."""
        wf = {"name": "fake", "env": {}, "tasks": [{"name": "T", "inputs": [], "outputs": []}]}
        self.recorder.publish("flowbus/%s/workflow" % run_id, json.dumps(wf), retain=True)
        self.recorder.publish("flowbus/%s/state" % run_id,
                              json.dumps({"state": state, "at": time.time(),
                                          "started": time.time(), "exit": None, "tasks": 1}),
                              retain=True)


class TestStatus(ClientTestCase):
    def test_status_lists_finished_running_and_failed_runs(self):
        self.assertExit(self.run_to_end("client-quick.yaml", RID["st-done"]), 0)
        self.assertExit(self.run_to_end("client-fail.yaml", RID["st-failed"]), 1)
        self.start_run("client-slow.yaml", RID["st-running"])
        self.recorder.wait_state(RID["st-running"], "SLEEPER", "running", timeout=15)
        # END starts beside SLEEPER, but its first state may come after SLEEPER's.
        self.recorder.wait_state(RID["st-running"], "END", "waiting", timeout=15)

        res = self.client("status")
        self.assertExit(res, 0)
        rows = {line.split()[0]: line for line in res.stdout.splitlines()[1:]}
        self.assertEqual(res.stdout.split()[:6],
                         ["RUN", "WORKFLOW", "STATE", "STARTED", "DURATION", "TASKS"])
        self.assertIn("client: quick", rows[RID["st-done"]])
        self.assertRegex(rows[RID["st-done"]], r"\bdone\b.*\b3 done$")
        self.assertRegex(rows[RID["st-failed"]], r"\bfailed\b.*1 done, 1 failed, 2 skipped$")
        self.assertRegex(rows[RID["st-running"]], r"\brunning\b.*1 running, 1 waiting, 1 done$")
        # Oldest first, the way they were started.
        order = [line.split()[0] for line in res.stdout.splitlines()[1:]]
        self.assertEqual(order, [RID["st-done"], RID["st-failed"], RID["st-running"]])

        # The same for machines, with FLOWBUS_BROKER instead of --broker.
        res = fbrun.run(["status", "--json"], env=fbrun.clean_env({"FLOWBUS_BROKER": self.broker.url}))
        self.assertExit(res, 0)
        runs = {r["run_id"]: r for r in json.loads(res.stdout)["runs"]}
        self.assertEqual(set(runs), {RID["st-done"], RID["st-failed"], RID["st-running"]})
        self.assertEqual((runs[RID["st-done"]]["state"], runs[RID["st-done"]]["exit"]), ("done", 0))
        self.assertEqual(runs[RID["st-failed"]]["tasks"], {"done": 1, "failed": 1, "skipped": 2})
        self.assertEqual(runs[RID["st-failed"]]["exit"], 1)
        self.assertEqual(runs[RID["st-running"]]["state"], "running")
        self.assertEqual(runs[RID["st-running"]]["tasks"], {"done": 1, "running": 1, "waiting": 1})
        self.assertEqual(runs[RID["st-running"]]["workflow"], "client: slow")
        self.assertGreater(runs[RID["st-running"]]["duration"], 0)

    def test_status_of_one_run_as_text_and_json(self):
        self.assertExit(self.run_to_end("client-fail.yaml", RID["one"]), 1)
        res = self.client("status", RID["one"])
        self.assertExit(res, 0)
        self.assertIn("State:     failed (exit 1)", res.stdout)
        self.assertIn("Workflow:  client: failing (%s)" % fbrun.workflow("client-fail.yaml"),
                      res.stdout)
        table = res.stdout.split("\n\n", 1)[1].splitlines()
        self.assertEqual(table[0].split(), ["TASK", "STATE", "ATTEMPT", "DURATION", "EXIT", "ERROR"])
        self.assertEqual([line.split()[0] for line in table[1:]], ["START", "BAD", "AFTER", "END"])
        self.assertRegex(table[2], r"BAD\s+failed\s+1\s+\d+\.\d+s\s+3\s+command exited with code 3$")
        self.assertRegex(table[3], r"AFTER\s+skipped\s+1\s+-\s+-\s+input X can never be set")

        res = self.client("status", RID["one"], "--json")
        self.assertExit(res, 0)
        run = json.loads(res.stdout)
        self.assertEqual((run["run_id"], run["state"], run["exit"], run["paused"]),
                         (RID["one"], "failed", 1, False))
        self.assertEqual(run["workflow"], "client: failing")
        self.assertEqual(run["mode"], "oneshot")
        self.assertEqual([t["name"] for t in run["tasks"]], ["START", "BAD", "AFTER", "END"])
        bad = run["tasks"][1]
        self.assertEqual((bad["state"], bad["attempt"], bad["exit"]), ("failed", 1, 3))
        self.assertEqual(bad["error"], "command exited with code 3")
        self.assertGreaterEqual(bad["duration"], 0)
        self.assertEqual(run["tasks"][3]["state"], "skipped")

    def test_unknown_run_bad_id_and_unreachable_broker(self):
        res = self.client("status", "no-such-run")
        self.assertExit(res, 2)
        self.assertOneErrorLine(res, "there is no run 'no-such-run'")
        res = self.client("status", "a/#")
        self.assertExit(res, 2)
        self.assertOneErrorLine(res, "'a/#' is not a run id")
        res = self.client("status")
        self.assertExit(res, 0)
        self.assertIn("no runs on " + self.broker.url, res.stdout)
        dead = "tcp://127.0.0.1:%d" % fbtest.free_port()
        res = fbrun.run(["status", "--broker", dead])
        self.assertExit(res, 4)
        self.assertOneErrorLine(res, "cannot connect to the broker at " + dead)
        res = fbrun.run(["status", "--broker", "http://127.0.0.1:1"])
        self.assertExit(res, 2)
        self.assertOneErrorLine(res, "unsupported broker URL")


class TestSet(ClientTestCase):
    def test_set_starts_the_task_waiting_for_it(self):
        proc = self.start_run("client-set.yaml", RID["set1"])
        self.recorder.wait_state(RID["set1"], "USE", "waiting", timeout=15)
        res = self.client("set", RID["set1"], "GO=it works")
        self.assertExit(res, 0)
        self.assertIn("GO set", res.stdout)
        out, err = fbrun.finish(proc)
        self.assertEqual(proc.returncode, 0, out + err)
        self.assertEqual(self.published(fbtest.var_topic(RID["set1"], "GO"))[0], b"it works")
        self.assertEqual(self.published(fbtest.var_topic(RID["set1"], "SAID"))[0],
                         b"hello:[it works]")
        # A finished run has nobody left to read a variable.
        res = self.client("set", RID["set1"], "GO=late")
        self.assertExit(res, 2)
        self.assertOneErrorLine(res, "has finished (done)")

    def test_an_empty_value_travels_as_one_nul_byte(self):
        proc = self.start_run("client-set.yaml", RID["set-empty"])
        self.recorder.wait_state(RID["set-empty"], "USE", "waiting", timeout=15)
        self.assertExit(self.client("set", RID["set-empty"], "GO="), 0)
        out, err = fbrun.finish(proc)
        self.assertEqual(proc.returncode, 0, out + err)
        self.assertEqual(self.published(fbtest.var_topic(RID["set-empty"], "GO"))[0], b"\0")
        self.assertEqual(self.published(fbtest.var_topic(RID["set-empty"], "SAID"))[0],
                         b"hello:[]")

    def test_set_refuses_unknown_variables_secrets_and_bad_names(self):
        rid = RID["set-refuse"]
        proc = self.start_run("client-set.yaml", rid)
        self.recorder.wait_state(rid, "USE", "waiting", timeout=15)
        cases = [
            (["GOO=1"], "run '%s' has no variable 'GOO' (did you mean 'GO'?)" % rid),
            (["go=1"], "did you mean 'GO'?"),
            (["SECRET_KEY=stolen"], "'SECRET_KEY' is a secret of run '%s'" % rid),
            (["1X=1"], "'1X' is not a variable name"),
            (["GO"], "expected VAR=VALUE, got 'GO'"),
            # All or nothing: GO is fine, but nothing is published because of GOO.
            (["GO=1", "GOO=2"], "no variable 'GOO'"),
        ]
        for args, message in cases:
            res = self.client("set", rid, *args)
            self.assertExit(res, 2)
            self.assertOneErrorLine(res, message)
        res = self.client("set", "no-such-run", "GO=1")
        self.assertExit(res, 2)
        self.assertOneErrorLine(res, "there is no run 'no-such-run'")
        res = self.client("set", rid)
        self.assertExit(res, 2)
        for name in ("GO", "GOO", "go", "SECRET_KEY"):
            self.assertEqual(self.published(fbtest.var_topic(rid, name)), [], name)
        self.assertEqual(self.recorder.states(rid, "USE"), ["waiting"])
        # Let the run end.
        self.assertExit(self.client("set", rid, "GO=x"), 0)
        fbrun.finish(proc)
        self.assertEqual(proc.returncode, 0)


class TestLogs(ClientTestCase):
    def test_logs_follow_a_run_to_its_end(self):
        rid = RID["logs1"]
        run = self.start_run("client-logs.yaml", rid)
        self.recorder.wait_state(rid, "TALK", "running", timeout=15)
        follow = fbrun.start(["logs", rid, "-f", "--broker", self.broker.url])
        only_end = fbrun.start(["logs", rid, "--follow", "--task", "END", "--broker",
                                self.broker.url])
        self.addCleanup(lambda: [os.killpg(p.pid, signal.SIGKILL) for p in (follow, only_end)
                                 if p.poll() is None])
        read_until(follow, lambda l: l.startswith("Following run %s" % rid))
        read_until(only_end, lambda l: l.startswith("Following run %s" % rid))
        # TALK speaks once both followers are listening.
        open(os.path.join(self.cwd, "go"), "w").close()
        out, err = finish_text(follow)
        self.assertEqual(follow.returncode, 0, out + err)
        lines = out.splitlines()
        self.assertIn("Following run %s (client: logs, running) on %s" % (rid, self.broker.url),
                      lines[0])
        self.assertIn("[TALK] line one", lines)
        self.assertIn("[TALK] line two", lines)
        self.assertLess(lines.index("[TALK] line one"), lines.index("[TALK] line two"))
        self.assertTrue(any(l.split()[1:3] == ["TALK", "done"] for l in lines if l[:1] == " "),
                        out)
        self.assertEqual(lines[-1], "Run %s: done (exit 0)" % rid)
        self.assertEqual(err, "")

        out, err = finish_text(only_end)
        self.assertEqual(only_end.returncode, 0, out + err)
        self.assertNotIn("[TALK]", out)
        self.assertNotIn(" TALK ", out)
        self.assertIn("[END] SAID=1", out.splitlines())
        self.assertEqual(out.splitlines()[-1], "Run %s: done (exit 0)" % rid)
        fbrun.finish(run)
        self.assertEqual(run.returncode, 0)

        # Following a run that has ended shows where it ended and exits at once.
        res = self.client("logs", rid, "-f")
        self.assertExit(res, 0)
        self.assertEqual(res.stdout.splitlines()[-1], "Run %s: done (exit 0)" % rid)

    def test_logs_without_follow_prints_the_error_lines(self):
        rid = RID["logs-fail"]
        self.assertExit(self.run_to_end("client-fail.yaml", rid), 1)
        res = self.client("logs", rid)
        self.assertExit(res, 0)
        self.assertEqual(res.stdout.splitlines(), [
            "[BAD] failed (exit 3): command exited with code 3",
            "[AFTER] skipped: input X can never be set: its producer BAD failed",
            "[END] skipped: input Y can never be set: its producer AFTER was skipped",
        ])
        self.assertIn("`flowbus logs %s -f` follows them live" % rid, res.stderr)
        res = self.client("logs", rid, "--task", "BAD")
        self.assertEqual(res.stdout.splitlines(),
                         ["[BAD] failed (exit 3): command exited with code 3"])
        res = self.client("logs", rid, "--task", "BADD")
        self.assertExit(res, 2)
        self.assertOneErrorLine(res, "run '%s' has no task 'BADD' (did you mean 'BAD'?)" % rid)
        res = self.client("logs", "no-such-run", "-f")
        self.assertExit(res, 2)
        self.assertOneErrorLine(res, "there is no run 'no-such-run'")


class TestStopAndPause(ClientTestCase):
    def test_stop_ends_a_running_run_and_leaves_no_process(self):
        rid = RID["stop1"]
        run = self.start_run("client-slow.yaml", rid)
        self.recorder.wait_state(rid, "SLEEPER", "running", timeout=15)
        res = self.client("stop", rid)
        self.assertExit(res, 0)
        self.assertIn("Run %s: stopped" % rid, res.stdout)
        # The recorder gets the final state a moment after the client did.
        self.wait_run_state(rid, lambda s: s["state"] == "stopped", timeout=5)
        self.assertEqual(self.published("flowbus/%s/control" % rid)[0], b'{"cmd":"stop"}')
        out, err = fbrun.finish(run)
        self.assertIsNotNone(run.returncode, "the coordinator is still running")
        self.assertFalse(fbrun.wait_gone(lambda: fbrun.processes_with_env("FLOWBUS_RUN_ID", rid)),
                         "task processes survived the stop")
        # Stopping it again: it has finished.
        res = self.client("stop", rid)
        self.assertExit(res, 2)
        self.assertOneErrorLine(res, "has already finished (stopped)")

    def test_pause_is_confirmed_by_the_coordinator(self):
        rid = RID["pause1"]
        self.start_run("client-slow.yaml", rid)
        self.recorder.wait_state(rid, "SLEEPER", "running", timeout=15)
        res = self.client("pause", rid)
        self.assertExit(res, 0)
        self.assertIn("Run %s: paused" % rid, res.stdout)
        self.assertEqual(self.published("flowbus/%s/control" % rid)[0], b'{"cmd":"pause"}')
        state = self.wait_run_state(rid, lambda s: s.get("paused"), timeout=5)
        self.assertEqual(state["state"], "running")
        res = self.client("status", rid)
        self.assertIn("State:     paused", res.stdout)
        res = self.client("pause", rid)
        self.assertExit(res, 0)
        self.assertIn("already paused", res.stdout)
        self.assertExit(self.client("stop", rid), 0)

    def test_resume_lifts_the_pause_of_a_live_run(self):
        # The coordinator is alive: resume lifts the pause as a client; it never
        # connects as the coordinator (which would take the live one's place).
        rid = RID["unpause"]
        self.start_run("client-slow.yaml", rid)
        self.recorder.wait_state(rid, "SLEEPER", "running", timeout=15)
        self.assertExit(self.client("pause", rid), 0)
        res = fbrun.run(["resume", rid, "--broker", self.broker.url])
        self.assertExit(res, 0)
        self.assertEqual(res.stdout, "run %s resumed\n" % rid)
        self.assertEqual(self.published("flowbus/%s/control" % rid),
                         [b'{"cmd":"pause"}', b'{"cmd":"resume"}'])
        state = self.wait_run_state(rid, lambda s: not s.get("paused"), timeout=5)
        self.assertEqual(state["state"], "running")
        states = [e.json()["state"] for e in self.recorder.on_topic("flowbus/%s/state" % rid)
                  if e.payload]
        self.assertNotIn("lost", states)
        self.assertExit(self.client("stop", rid), 0)

    def test_requests_to_runs_that_cannot_confirm(self):
        # A run whose coordinator does not answer: the client says so after --timeout.
        self.fake_run(RID["mute"], "running")
        started = time.monotonic()
        res = self.client("stop", RID["mute"], "--timeout", "0.5")
        self.assertExit(res, 1)
        self.assertOneErrorLine(res, "did not stop within 0.5 s")
        res = self.client("pause", RID["mute"], "--timeout", "0.5")
        self.assertExit(res, 1)
        self.assertOneErrorLine(res, "did not confirm the pause within 0.5 s",
                                "does not seem to support pause")
        self.assertLess(time.monotonic() - started, 10)
        self.assertEqual(self.published("flowbus/%s/control" % RID["mute"]),
                         [b'{"cmd":"stop"}', b'{"cmd":"pause"}'])
        # A lost run has no coordinator at all: no point waiting.
        self.fake_run(RID["lost"], "lost")
        res = self.client("stop", RID["lost"])
        self.assertExit(res, 1)
        self.assertOneErrorLine(res, "has no coordinator", "flowbus resume %s" % RID["lost"])
        # Finished and unknown runs are refused.
        self.fake_run(RID["ended"], "done")
        for cmd in ("stop", "pause"):
            res = self.client(cmd, RID["ended"])
            self.assertExit(res, 2)
            self.assertOneErrorLine(res, "has already finished (done)")
            res = self.client(cmd, "no-such-run")
            self.assertExit(res, 2)
            self.assertOneErrorLine(res, "there is no run 'no-such-run'")


class TestUsage(unittest.TestCase):
    def test_help_and_usage_errors(self):
        for cmd in ("status", "set", "logs", "stop", "pause"):
            res = fbrun.run([cmd, "--help"])
            self.assertEqual(res.returncode, 0, res.stderr)
            self.assertTrue(res.stdout.startswith("Usage: flowbus " + cmd), res.stdout)
            res = fbrun.run(["help", cmd])
            self.assertTrue(res.stdout.startswith("Usage: flowbus " + cmd), res.stdout)
        env = fbrun.clean_env()
        cases = [
            # Without a broker, plain `status` lists the user's private runs
            # (test_newcomer.py); --json has no such listing.
            (["status", "--json"], "status needs a broker"),
            (["set", "RUN", "--json", "--broker", "tcp://x:1"], "set takes no --json"),
            (["status", "--timeout", "3", "--broker", "tcp://x:1"], "status takes no --timeout"),
            (["stop", "--follow", "R", "--broker", "tcp://x:1"], "stop takes no --follow"),
            (["stop", "--broker", "tcp://x:1"], "stop expects one RUN id"),
            (["set", "R", "--broker", "tcp://x:1"], "set expects a RUN id and at least one"),
            (["stop", "R", "--timeout", "soon", "--broker", "tcp://x:1"], "--timeout expects"),
        ]
        for args, message in cases:
            res = fbrun.run(args, env=env)
            self.assertEqual(res.returncode, 2, "%s: %s" % (args, res.stderr))
            self.assertIn(message, res.stderr.splitlines()[0])


if __name__ == "__main__":
    unittest.main()
