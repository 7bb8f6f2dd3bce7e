"""SDK tests of the Python SDK (sdk/python/flowbus/, docs/python-sdk.md).

The task programs are pyprobe.py (a plugin whose behaviour the param "mode"
picks) and pybackup.py (the class of issue 15, as written there), run with
/usr/bin/python3 and the package the build copied to
<build>/share/flowbus/python. Each test starts its own mosquitto
(fbtest.BrokerTestCase) and, for permissions, the stand-in Attica service
(test_auth.Attica), both on free loopback ports and stopped by PID. A
Recorder on flowbus/# sees everything; the tests wait on it (or on the
process) with deadlines, never with bare sleeps.
"""

import json
import os
import shutil
import signal
import sys
import tempfile
import unittest

import fbtest
from test_auth import Attica

HERE = os.path.dirname(os.path.abspath(__file__))
PROBE = os.path.join(HERE, "pyprobe.py")
BACKUP = os.path.join(HERE, "pybackup.py")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
EXIT_DENIED = 77
WAIT = 15  # seconds for one state or one process (generous for a loaded machine)


def package_dir():
    return os.path.join(fbtest.build_dir(), "share", "flowbus", "python")


class PySdkTestCase(fbtest.BrokerTestCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(os.path.isfile(os.path.join(package_dir(), "flowbus", "__init__.py")),
                        "the build did not copy the package to %s" % package_dir())
        self.tmp = tempfile.mkdtemp(prefix="fbtest-pysdk-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.run_id = "py-%d-%s" % (os.getpid(), self._testMethodName[-40:].replace("_", "-"))
        self.procs = []
        self.addCleanup(self.kill_all)

    def kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            p.communicate()

    def env(self, task, inputs=("TEXT",), outputs=("OUT",), params=None, extra=None, **kw):
        base = {k: v for k, v in os.environ.items() if k not in ("AUTH_TOKEN", "PYTHONPATH")}
        base["PYTHONPATH"] = package_dir()
        return fbtest.task_env(self.broker, self.run_id, task, inputs=inputs, outputs=outputs,
                               params=params, extra=extra, base=base, **kw)

    def spawn(self, env, program=PROBE):
        proc = fbtest.spawn([PYTHON, program], env)
        self.procs.append(proc)
        return proc

    def finish(self, proc):
        out, err = proc.communicate(timeout=WAIT)
        return proc.returncode, out, err

    def set_var(self, name, value):
        self.recorder.publish(fbtest.var_topic(self.run_id, name),
                              value.encode() if value else b"\x00", retain=True)

    def states(self, task):
        return [e.json() for e in self.recorder.on_topic(fbtest.state_topic(self.run_id, task))
                if e.payload]

    def var_payloads(self, name):
        return [e.payload for e in self.recorder.on_topic(fbtest.var_topic(self.run_id, name))]

    def retained(self, topic):
        with fbtest.Recorder(self.broker, topic) as late:
            got = late.wait_for(lambda ev: ev, WAIT)
        self.assertTrue(got, "nothing retained on %s" % topic)
        self.assertTrue(got[0].retained)
        return got[0].payload


class Describe(PySdkTestCase):
    def test_describe_has_the_shape_of_the_c_builtins(self):
        env = self.env("T")
        res = fbtest.run([PYTHON, PROBE, "--describe"], env)
        self.assertEqual(res.returncode, 0, res.stderr)
        m = json.loads(res.stdout)
        c = json.loads(fbtest.run([fbtest.bin_path("flowbus-cmd"), "--describe"], env).stdout)
        self.assertLessEqual(set(c), set(m), "keys of the C manifest missing: %s" % m)
        self.assertEqual(m["name"], "pyprobe")
        self.assertEqual(m["description"], "A test plugin on the Python SDK")
        self.assertEqual((m["inputs"], m["outputs"]), (["TEXT"], ["OUT"]))
        self.assertEqual(m["params"], {
            "mode": {"type": "string", "default": "upper", "description": "what to do"},
            "count": {"type": "integer", "default": 3, "description": ""}})
        self.assertEqual(m["permissions"], ["can_probe"])
        self.assertEqual(m["category"], "test")
        self.assertEqual(res.stdout.count("\n"), 1)
        b = json.loads(fbtest.run([PYTHON, BACKUP, "--describe"], env).stdout)
        self.assertEqual(b["name"], "backup")  # no NAME, not named flowbus-*: the class name
        self.assertEqual(b["permissions"], ["can_backup", "can_read_storage"])
        self.assertIs(b["requires_auth"], True)

    def test_help_version_and_usage(self):
        env = self.env("T")
        res = fbtest.run([PYTHON, PROBE, "--help"], env)
        self.assertEqual(res.returncode, 0)
        self.assertIn("usage: flowbus-pyprobe [--describe | --help | --version]", res.stdout)
        self.assertIn("param mode", res.stdout)
        res = fbtest.run([PYTHON, PROBE, "--version"], env)
        self.assertEqual((res.returncode, res.stdout.split()[0]), (0, "flowbus-pyprobe"))
        res = fbtest.run([PYTHON, PROBE, "--bogus"], env)
        self.assertEqual(res.returncode, 2)
        self.assertIn("usage:", res.stderr)

    def test_no_environment_exits_2(self):
        env = {k: v for k, v in self.env("T").items() if k != "FLOWBUS_TASK"}
        res = fbtest.run([PYTHON, PROBE], env)
        self.assertEqual(res.returncode, 2)
        self.assertIn("FLOWBUS_TASK is not set", res.stderr)


class OneShot(PySdkTestCase):
    def test_done_outputs_retained_and_confirmed_before_done(self):
        self.set_var("TEXT", "hello sdk")
        code, out, err = self.finish(self.spawn(self.env("T", outputs=("OUT", "OUT2"))))
        self.assertEqual(code, 0, err)
        self.recorder.wait_state(self.run_id, "T", "done", WAIT)
        states = self.states("T")
        self.assertEqual([s["state"] for s in states], ["waiting", "running", "done"])
        for s in states:
            self.assertEqual((s["attempt"], s["signal"], s["error"]), (1, None, None))
            self.assertIsInstance(s["pid"], int)
        self.assertEqual([s["exit"] for s in states], [None, None, 0])
        self.assertLessEqual(states[2]["started"], states[2]["at"])
        events = list(self.recorder.events)
        done_at = next(i for i, e in enumerate(events)
                       if e.topic == fbtest.state_topic(self.run_id, "T") and e.json()["state"] == "done")
        for name in ("OUT", "OUT2"):
            self.assertEqual(self.var_payloads(name), [b"HELLO SDK"])
            at = next(i for i, e in enumerate(events) if e.topic == fbtest.var_topic(self.run_id, name))
            self.assertLess(at, done_at, "%s arrived after done" % name)
            self.assertEqual(self.retained(fbtest.var_topic(self.run_id, name)), b"HELLO SDK")
        self.assertEqual(json.loads(self.retained(fbtest.state_topic(self.run_id, "T")))["state"],
                         "done")

    def test_an_output_already_set_is_not_overwritten(self):
        self.set_var("TEXT", "x")
        self.set_var("OUT", "first")
        code, _, err = self.finish(self.spawn(self.env("T")))
        self.assertEqual(code, 0, err)
        self.assertEqual(self.retained(fbtest.var_topic(self.run_id, "OUT")), b"first")

    def test_a_value_over_the_limit_or_with_a_nul_is_refused_not_taken(self):
        # As the C SDK (tests/integration/test_values.py FromOutside): before, both were taken.
        proc = self.spawn(self.env("T", extra={"FLOWBUS_MAX_VALUE": "100"}))
        self.recorder.wait_state(self.run_id, "T", "waiting", WAIT)
        topic = fbtest.var_topic(self.run_id, "TEXT")
        log = "flowbus/%s/tasks/T/log" % self.run_id
        self.recorder.publish(topic, b"y" * 101, retain=True)
        self.recorder.publish(topic, b"a\x00b", retain=True)
        lines = lambda: [e.payload.decode() for e in self.recorder.on_topic(log)]
        self.assertTrue(self.recorder.wait_for(lambda ev: len(lines()) >= 2 or None, WAIT),
                        lines())
        self.assertIn("warning: value of TEXT refused: 101 bytes, over the limit of 100 "
                      "(FLOWBUS_MAX_VALUE)", lines())
        self.assertIn("warning: value of TEXT refused: it contains a NUL byte (a value is text)",
                      lines())
        self.set_var("TEXT", "ok")
        code, _, err = self.finish(proc)
        self.assertEqual(code, 0, err)
        # The exit does not order the recorder's deliveries; done follows the outputs.
        self.recorder.wait_state(self.run_id, "T", "done", WAIT)
        self.assertEqual(self.var_payloads("OUT"), [b"OK"])

    def test_an_exception_is_failed_with_its_message(self):
        self.set_var("TEXT", "abc")
        code, _, err = self.finish(self.spawn(self.env("T", params={"mode": "fail"})))
        self.assertEqual(code, 1)
        _, st = self.recorder.wait_state(self.run_id, "T", "failed", WAIT)
        self.assertEqual(st["exit"], 1)
        self.assertIn("boom: abc", st["error"])
        self.assertIn("boom: abc", err)
        self.assertEqual(self.var_payloads("OUT"), [])

    def test_failed_picks_the_exit_code(self):
        self.set_var("TEXT", "abc")
        code, _, _ = self.finish(self.spawn(self.env("T", params={"mode": "failcode"})))
        self.assertEqual(code, 5)
        _, st = self.recorder.wait_state(self.run_id, "T", "failed", WAIT)
        self.assertEqual((st["exit"], st["error"]), (5, "chosen"))

    def test_a_param_of_the_wrong_type_fails_before_the_wait(self):
        code, _, _ = self.finish(self.spawn(self.env("T", params={"count": "three"})))
        self.assertEqual(code, 1)
        _, st = self.recorder.wait_state(self.run_id, "T", "failed", WAIT)
        self.assertIn("param count", st["error"])
        self.assertNotIn("running", [s["state"] for s in self.states("T")])

    def test_kill_9_leaves_the_last_will(self):
        proc = self.spawn(self.env("T"))  # TEXT is never set: it waits
        _, waiting = self.recorder.wait_state(self.run_id, "T", "waiting", WAIT)
        self.assertEqual(waiting["pid"], proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        _, crashed = self.recorder.wait_state(self.run_id, "T", "crashed", WAIT)
        self.assertEqual((crashed["pid"], crashed["attempt"], crashed["error"]),
                         (proc.pid, 1, "connection lost"))

    def test_control_stop_while_waiting_exits_0_without_a_state(self):
        proc = self.spawn(self.env("T"))
        self.recorder.wait_state(self.run_id, "T", "waiting", WAIT)
        self.recorder.publish("flowbus/%s/control" % self.run_id, b'{"cmd":"stop"}', retain=True)
        code, _, err = self.finish(proc)
        self.assertEqual(code, 0)
        self.assertIn("stop", err)
        self.assertEqual([s["state"] for s in self.states("T")], ["waiting"])
        # A clean disconnect: the broker dropped the Will.
        self.assertEqual(json.loads(self.retained(fbtest.state_topic(self.run_id, "T")))["state"],
                         "waiting")

    def test_depends_on_waits_for_done(self):
        self.set_var("TEXT", "dep")
        proc = self.spawn(self.env("T", depends=("GATE",)))
        self.recorder.wait_state(self.run_id, "T", "waiting", WAIT)
        gate = fbtest.state_topic(self.run_id, "GATE")
        self.recorder.publish(gate, json.dumps({"state": "running"}).encode(), retain=True)
        # The SDK has seen "running" once a later message on the same connection is back.
        self.recorder.publish(gate, json.dumps({"state": "failed"}).encode(), retain=True)
        self.assertIsNone(proc.poll())
        self.assertEqual([s["state"] for s in self.states("T")], ["waiting"])
        self.recorder.publish(gate, json.dumps({"state": "done"}).encode(), retain=True)
        code, _, err = self.finish(proc)
        self.assertEqual(code, 0, err)
        # The process's exit does not order the recorder's deliveries: wait for "done".
        self.recorder.wait_state(self.run_id, "T", "done", WAIT)
        self.assertEqual([s["state"] for s in self.states("T")], ["waiting", "running", "done"])


class Secrets(PySdkTestCase):
    SECRET = "sekrit-pw-4711"
    TOKEN = "tok-py-sdk-secret-0815"

    def test_secrets_never_on_the_bus_and_masked_in_logs(self):
        env = self.env("T", inputs=("TEXT", "PASSWORD"), secrets=("PASSWORD",),
                       params={"mode": "leak"},
                       extra={"PASSWORD": self.SECRET, "AUTH_TOKEN": self.TOKEN})
        self.set_var("TEXT", "x")
        # Auth is in use (a token), so the check runs: the stand-in grants can_probe.
        a = Attica({"tokens": {self.TOKEN: {"permissions": ["can_probe"]}}})
        self.addCleanup(a.stop)
        env["FLOWBUS_ATTICA_URL"] = a.url
        code, out, err = self.finish(self.spawn(env))
        self.assertEqual(code, 1, err)
        _, st = self.recorder.wait_state(self.run_id, "T", "failed", WAIT)
        self.assertIn("failing with ***", st["error"])
        logs = [e.payload.decode() for e in self.recorder.on_topic(
            "flowbus/%s/tasks/T/log" % self.run_id)]
        self.assertIn("the secret is ***", logs)
        sdk_lines = [l for l in err.splitlines() if l.startswith("flowbus-pyprobe:")]
        self.assertTrue(sdk_lines)
        for line in sdk_lines:  # the SDK's own stderr lines are masked too
            self.assertNotIn(self.SECRET, line)
            self.assertNotIn(self.TOKEN, line)
        for e in self.recorder.events:
            for secret in (self.SECRET, self.TOKEN):
                self.assertNotIn(secret.encode(), e.payload, "secret on %s" % e.topic)
                self.assertNotIn(secret, e.topic)

    def test_an_output_holding_a_secret_is_refused(self):
        env = self.env("T", inputs=("TEXT", "PASSWORD"), secrets=("PASSWORD",),
                       params={"mode": "secretout"}, extra={"PASSWORD": self.SECRET})
        self.set_var("TEXT", "x")
        code, _, _ = self.finish(self.spawn(env))
        self.assertEqual(code, 1)
        _, st = self.recorder.wait_state(self.run_id, "T", "failed", WAIT)
        self.assertIn("secret", st["error"])
        self.assertEqual(self.var_payloads("OUT"), [])
        for e in self.recorder.events:
            self.assertNotIn(self.SECRET.encode(), e.payload)


class Permissions(PySdkTestCase):
    def setUp(self):
        super().setUp()
        self.run_dir = os.path.join(self.tmp, "run")
        os.mkdir(self.run_dir, 0o700)
        self.attica = Attica({"tokens": {
            "tok-backup-all": {"permissions": {"can_backup": True, "can_read_storage": True}},
            "tok-backup-half": {"permissions": ["can_backup"]}}})
        self.addCleanup(self.attica.stop)

    def backup(self, task, token=None):
        extra = {"FLOWBUS_ATTICA_URL": self.attica.url, "FLOWBUS_RUN_DIR": self.run_dir}
        if token:
            extra["AUTH_TOKEN"] = token
        return self.spawn(self.env(task, inputs=(), outputs=("BACKUP_STATUS",), extra=extra),
                          BACKUP)

    def test_requires_auth_without_a_token_is_denied(self):
        code, _, err = self.finish(self.backup("B"))
        self.assertEqual(code, EXIT_DENIED, err)
        _, st = self.recorder.wait_state(self.run_id, "B", "denied", WAIT)
        self.assertEqual(st["exit"], EXIT_DENIED)
        self.assertIn("no AUTH_TOKEN", st["error"])
        self.assertEqual(self.var_payloads("BACKUP_STATUS"), [])
        self.assertEqual(self.attica.stats()["total"], 0)

    def test_a_missing_permission_is_denied(self):
        code, _, err = self.finish(self.backup("B", "tok-backup-half"))
        self.assertEqual(code, EXIT_DENIED, err)
        _, st = self.recorder.wait_state(self.run_id, "B", "denied", WAIT)
        self.assertEqual(st["error"], "missing permission can_read_storage")
        self.assertEqual(self.var_payloads("BACKUP_STATUS"), [])

    def test_allowed_and_two_tasks_share_one_request(self):
        # One after the other: two producers of one output that finish at the
        # same moment may both publish (docs/protocol.md admits that race),
        # while the second of two in a row sees the first's retained value.
        for i in range(2):
            code, _, err = self.finish(self.backup("B%d" % i, "tok-backup-all"))
            self.assertEqual(code, 0, err)
            self.recorder.wait_state(self.run_id, "B%d" % i, "done", WAIT)
        self.assertEqual(self.var_payloads("BACKUP_STATUS"), [b"success"])  # set once
        self.assertEqual(self.attica.requests("tok-backup-all"), 1)
        files = sorted(os.listdir(self.run_dir))
        self.assertEqual(len(files), 2, files)
        # A C task of the same run reads the same entry: still one request.
        env = self.env("C", inputs=(), outputs=(), extra={
            "FLOWBUS_ATTICA_URL": self.attica.url, "FLOWBUS_RUN_DIR": self.run_dir,
            "AUTH_TOKEN": "tok-backup-all"})
        res = fbtest.run([fbtest.bin_path("fbtest-auth-check"), "task", "can_read_storage"], env,
                         timeout=WAIT)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(self.attica.requests("tok-backup-all"), 1)


class Reactive(PySdkTestCase):
    def reactive_env(self, task="R", extra=None, **kw):
        return self.env(task, extra=dict({"FLOWBUS_MODE": "reactive"}, **(extra or {})), **kw)

    def waiting_after(self, task, activation):
        def seen(events):
            for e in events:
                if e.topic == fbtest.state_topic(self.run_id, task) and e.payload:
                    st = e.json()
                    if st["state"] == "waiting" and st.get("activation") == activation:
                        return st
            return None
        st = self.recorder.wait_for(seen, WAIT)
        self.assertIsNotNone(st, "no waiting after activation %d: %s" % (
            activation, self.states(task)))
        return st

    def test_activations_pause_resume_and_stop(self):
        proc = self.spawn(self.reactive_env())
        _, first = self.recorder.wait_state(self.run_id, "R", "waiting", WAIT)
        self.assertEqual((first["activation"], first["result"], first["queued"], first["dropped"]),
                         (0, None, 0, 0))
        self.set_var("TEXT", "one")
        st = self.waiting_after("R", 1)
        self.assertEqual((st["result"], st["exit"]), ("done", None))
        self.assertIsNotNone(st["started"])
        self.set_var("TEXT", "fail")
        st = self.waiting_after("R", 2)
        self.assertEqual(st["result"], "failed")
        self.assertIn("boom: fail", st["error"])
        self.assertEqual(st["exit"], 1)
        # The same value again is an event too.
        self.set_var("TEXT", "one")
        self.waiting_after("R", 3)
        self.assertEqual(self.var_payloads("OUT"), [b"ONE", b"ONE"])
        self.assertIsNone(proc.poll(), "a failed activation ended the task")
        # Outputs come before the activation's waiting state.
        events = list(self.recorder.events)
        out_at = [i for i, e in enumerate(events) if e.topic == fbtest.var_topic(self.run_id, "OUT")]
        w3 = next(i for i, e in enumerate(events) if e.topic == fbtest.state_topic(self.run_id, "R")
                  and e.json()["state"] == "waiting" and e.json()["activation"] == 3)
        self.assertLess(out_at[-1], w3)

        control = "flowbus/%s/control" % self.run_id
        self.recorder.publish(control, b'{"cmd":"pause"}', retain=True)
        self.set_var("TEXT", "paused")
        # The broker forwards the pause before the event (one publisher, in
        # order): the event waits in the queue until the resume.
        n_states = len(self.states("R"))
        self.recorder.publish(control, b'{"cmd":"resume"}', retain=True)
        st = self.waiting_after("R", 4)
        self.assertEqual(st["result"], "done")
        self.assertEqual(self.var_payloads("OUT")[-1], b"PAUSED")
        self.assertEqual([s["state"] for s in self.states("R")[n_states:]], ["running", "waiting"])
        logs = [e.payload.decode() for e in self.recorder.on_topic("flowbus/%s/tasks/R/log" % self.run_id)]
        self.assertIn("activation 1 trigger TEXT", logs)

        before = len(self.states("R"))
        self.recorder.publish(control, b'{"cmd":"stop"}', retain=True)
        code, _, err = self.finish(proc)
        self.assertEqual(code, 0, err)
        self.assertEqual(len(self.states("R")), before, "a stopped task published a state")

    def test_a_retained_value_at_start_fires_once(self):
        self.set_var("TEXT", "early")
        proc = self.spawn(self.reactive_env())
        self.waiting_after("R", 1)
        self.assertEqual(self.var_payloads("OUT"), [b"EARLY"])
        self.recorder.publish("flowbus/%s/control" % self.run_id, b'{"cmd":"stop"}', retain=True)
        self.assertEqual(self.finish(proc)[0], 0)

    def test_depends_on_in_reactive_mode_counts_an_activation_that_ended_done(self):
        proc = self.spawn(self.reactive_env(depends=("UP",)))
        self.recorder.wait_state(self.run_id, "R", "waiting", WAIT)
        # The dependency has not been done yet: the event waits for it
        # (docs/workflow-format.md, "depends_on in a reactive flow").
        self.set_var("TEXT", "before")
        up = fbtest.state_topic(self.run_id, "UP")
        self.recorder.publish(up, json.dumps({"state": "waiting", "result": "done",
                                              "activation": 1}).encode(), retain=True)
        st = self.waiting_after("R", 1)
        self.assertEqual(st["result"], "done")
        self.set_var("TEXT", "after")
        st = self.waiting_after("R", 2)
        self.assertEqual(st["result"], "done")
        self.assertEqual(self.var_payloads("OUT"), [b"BEFORE", b"AFTER"])
        self.recorder.publish("flowbus/%s/control" % self.run_id, b'{"cmd":"stop"}', retain=True)
        self.assertEqual(self.finish(proc)[0], 0)

    def test_a_worker_pool_shares_the_events(self):
        procs = [self.spawn(self.reactive_env(extra={"FLOWBUS_WORKERS": "2", "FLOWBUS_WORKER": str(w)}))
                 for w in (1, 2)]
        topic = fbtest.state_topic(self.run_id, "R")
        self.assertTrue(self.recorder.wait_for(lambda ev: len(
            [e for e in ev if e.topic == topic and e.json()["state"] == "waiting"]) >= 2, WAIT))
        for i in range(10):
            self.set_var("TEXT", "v%d" % i)
        out = fbtest.var_topic(self.run_id, "OUT")
        self.assertTrue(self.recorder.wait_for(
            lambda ev: len([e for e in ev if e.topic == out]) >= 10, WAIT), self.var_payloads("OUT"))
        # Each event handled by exactly one worker.
        self.assertEqual(sorted(self.var_payloads("OUT")), [("V%d" % i).encode() for i in range(10)])
        # The states follow their outputs: wait for both workers' last ones.
        def activations(events):
            last = {}
            for e in events:
                if e.topic == topic and e.payload and e.json()["state"] == "waiting":
                    last[e.json()["worker"]] = e.json()["activation"]
            return sum(last.values()) == 10 and last
        self.assertTrue(self.recorder.wait_for(activations, WAIT), self.states("R"))
        self.recorder.publish("flowbus/%s/control" % self.run_id, b'{"cmd":"stop"}', retain=True)
        for p in procs:
            self.assertEqual(self.finish(p)[0], 0)

    def test_denied_before_the_first_activation(self):
        proc = self.spawn(self.reactive_env(extra={"FLOWBUS_REQUIRES_AUTH": "1"}))
        code, _, _ = self.finish(proc)
        self.assertEqual(code, EXIT_DENIED)
        _, st = self.recorder.wait_state(self.run_id, "R", "denied", WAIT)
        self.assertIn("no AUTH_TOKEN", st["error"])


if __name__ == "__main__":
    unittest.main()
