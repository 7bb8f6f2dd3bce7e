"""Faults a run survives: retries with backoff, crashes and timeouts retried,
and a broker that cannot be reached at start.

Every test drives the real coordinator against a real mosquitto and reads the
task states the run left on the bus.
"""

import json
import os
import signal
import subprocess
import time
import unittest

import fbrun
import fbtest


def rid(name):
    return "%s-%d" % (name, os.getpid())


class RetryTests(fbtest.BrokerTestCase):
    def run_wf(self, name, run_id, cwd, timeout=60):
        return fbrun.run(["run", fbrun.workflow(name), "--broker", self.broker.url, "--run-id",
                          run_id, "--json"], cwd=cwd, timeout=timeout)

    def states(self, run_id, task):
        return [e.json() for e in self.recorder.on_topic(fbtest.state_topic(run_id, task))]

    def values(self, run_id, name):
        return [e.payload.decode() for e in self.recorder.on_topic(fbtest.var_topic(run_id, name))]

    def test_flaky_task_succeeds_and_only_its_good_value_is_published(self):
        run_id = rid("flaky")
        with fbrun.TempDir() as cwd:
            res = self.run_wf("retry-flaky.yaml", run_id, cwd)
            self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
            with open(os.path.join(cwd, "attempts")) as f:
                self.assertEqual(f.read().strip(), "3")
        self.recorder.wait_state(run_id, "END", "done")
        # FLAKY and END publish on their own connections: the recorder may see
        # END's "done" before FLAKY's, so it waits for FLAKY's too.
        self.recorder.wait_state(run_id, "FLAKY", "done")
        self.assertEqual(self.values(run_id, "RESULT"), ["ok-on-3"])
        states = self.states(run_id, "FLAKY")
        failed = [s for s in states if s["state"] == "failed"]
        self.assertEqual([s["attempt"] for s in failed], [1, 2])
        done = [s for s in states if s["state"] == "done"]
        self.assertEqual(done[-1]["attempt"], 3)
        self.assertEqual(states[-1]["state"], "done")
        # Backoff: 0.2 s before attempt 2, 0.4 s before attempt 3 (from the states' own clocks).
        running = {s["attempt"]: s["at"] for s in states if s["state"] == "running"}
        ended = {s["attempt"]: s["at"] for s in failed}
        self.assertGreaterEqual(running[2] - ended[1], 0.2 - 0.01)
        self.assertGreaterEqual(running[3] - ended[2], 0.4 - 0.01)

    def test_retries_exhausted_fail_the_run(self):
        run_id = rid("exhausted")
        with fbrun.TempDir() as cwd:
            res = self.run_wf("retry-exhausted.yaml", run_id, cwd)
            self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
            with open(os.path.join(cwd, "attempts")) as f:
                self.assertEqual(len(f.read().split()), 3)
        self.recorder.wait_state(run_id, "END", "skipped")
        final = self.states(run_id, "ALWAYS")[-1]
        self.assertEqual((final["state"], final["attempt"], final["exit"]), ("failed", 3, 7))
        # The delay is capped by retry_max_delay.
        states = self.states(run_id, "ALWAYS")
        running = {s["attempt"]: s["at"] for s in states if s["state"] == "running"}
        ended = {s["attempt"]: s["at"] for s in states if s["state"] == "failed"}
        self.assertGreaterEqual(running[3] - ended[2], 0.08 - 0.01)

    def test_a_crashed_attempt_is_retried(self):
        run_id = rid("crashretry")
        with fbrun.TempDir() as cwd:
            proc = fbrun.start(["run", fbrun.workflow("retry-crash.yaml"), "--broker",
                                self.broker.url, "--run-id", run_id], cwd=cwd)
            try:
                _, running = self.recorder.wait_state(run_id, "VICTIM", "running", timeout=15)
                os.kill(running["pid"], signal.SIGKILL)
                out, err = fbrun.finish(proc, timeout=20)
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.communicate()
        self.assertEqual(proc.returncode, 0, out + err)
        # The run's end does not order the recorder's copy of VICTIM's states
        # (another connection): wait for its final one before reading them.
        self.recorder.wait_state(run_id, "VICTIM", "done")
        states = self.states(run_id, "VICTIM")
        crashed = [s for s in states if s["state"] == "crashed"]
        self.assertTrue(crashed and crashed[0]["attempt"] == 1, states)
        self.assertEqual((states[-1]["state"], states[-1]["attempt"]), ("done", 2))
        self.assertEqual(self.values(run_id, "SURVIVED"), ["yes"])

    def test_a_timed_out_attempt_is_retried(self):
        run_id = rid("timeoutretry")
        with fbrun.TempDir() as cwd:
            res = self.run_wf("retry-timeout.yaml", run_id, cwd)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        states = self.states(run_id, "SLOW")
        timeouts = [s for s in states if s["state"] == "timeout"]
        self.assertEqual([s["attempt"] for s in timeouts], [1])
        self.assertEqual((states[-1]["state"], states[-1]["attempt"]), ("done", 2))


class CoordinatorCrash(fbtest.BrokerTestCase):
    def count(self, cwd, name):
        with open(os.path.join(cwd, name)) as f:
            return len(f.read().split())

    def test_resume_adopts_running_tasks_and_never_reruns_finished_ones(self):
        run_id = rid("resume")
        with fbrun.TempDir() as cwd:
            proc = fbrun.start(["run", fbrun.workflow("resume.yaml"), "--broker", self.broker.url,
                                "--run-id", run_id], cwd=cwd)
            self.recorder.wait_state(run_id, "SLOW", "running", timeout=15)
            # Three processes to adopt: AFTER and END must be up too (a kill between END's
            # launch record and its spawn leaves it to be started, not adopted).
            self.recorder.wait_state(run_id, "AFTER", "waiting", timeout=15)
            self.recorder.wait_state(run_id, "END", "waiting", timeout=15)
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate()
            # The coordinator's Last Will marks the run lost; the tasks carry on.
            self.recorder.wait_for(lambda ev: any(
                e.topic == "flowbus/%s/state" % run_id and e.json()["state"] == "lost"
                for e in ev), timeout=10)
            self.assertTrue(fbrun.processes_with_env("FLOWBUS_RUN_ID", run_id))
            # resume works from anywhere: it goes back to the run's directory.
            res = fbrun.run(["resume", run_id, "--broker", self.broker.url], cwd="/")
            self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
            self.assertIn("2 finished, 3 adopted", res.stdout)
            for name in ("quick.count", "slow.count", "after.count"):
                self.assertEqual(self.count(cwd, name), 1, name)
        self.recorder.wait_state(run_id, "END", "done")
        self.assertFalse(fbrun.wait_gone(lambda: fbrun.processes_with_env("FLOWBUS_RUN_ID", run_id)))

    def test_resume_starts_what_never_started(self):
        run_id = rid("resume2")
        with fbrun.TempDir() as cwd:
            proc = fbrun.start(["run", fbrun.workflow("resume.yaml"), "--broker", self.broker.url,
                                "--run-id", run_id], cwd=cwd)
            self.recorder.wait_state(run_id, "SLOW", "running", timeout=15)
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate()
            # AFTER's process dies while nobody watches; resume must start it again.
            _, waiting = self.recorder.wait_state(run_id, "AFTER", "waiting")
            os.kill(waiting["pid"], signal.SIGKILL)
            self.recorder.wait_state(run_id, "AFTER", "crashed")
            res = fbrun.run(["resume", run_id, "--broker", self.broker.url], cwd="/")
            self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        # A Last Will made AFTER crashed before the resume: that is final.
        self.recorder.wait_state(run_id, "END", "skipped")

    def test_resume_refuses_unknown_and_finished_runs(self):
        res = fbrun.run(["resume", rid("nosuchrun"), "--broker", self.broker.url])
        self.assertEqual(res.returncode, 2)
        self.assertIn("there is no run", res.stderr)
        run_id = rid("finished")
        with fbrun.TempDir() as cwd:
            self.assertEqual(fbrun.run(["run", fbrun.workflow("split.yaml"), "--broker",
                                        self.broker.url, "--run-id", run_id], cwd=cwd).returncode, 0)
        res = fbrun.run(["resume", run_id, "--broker", self.broker.url])
        self.assertEqual(res.returncode, 2)
        self.assertIn("not running", res.stderr)

    def test_killed_coordinator_with_private_broker_leaves_nothing(self):
        with fbrun.TempDir() as cwd:
            env = fbrun.clean_env({"TMPDIR": cwd})
            run_id = rid("orphans")
            proc = fbrun.start(["run", fbrun.workflow("sleeper.yaml"), "--run-id", run_id, "--json"],
                               cwd=cwd, env=env)
            fbrun.read_json_until(proc, lambda e: e.get("task") == "SLEEPER" and
                                  e.get("state") == "running")
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate()
            left = fbrun.wait_gone(lambda: fbrun.processes_with_env("FLOWBUS_RUN_ID", run_id) +
                                   fbrun.processes_with_cmdline(cwd), timeout=10)
            self.assertFalse(left, "processes outlived the killed coordinator")


class BrokerRestart(unittest.TestCase):
    """kill -9 of the private broker mid-run: flowbus restarts it, everyone reconnects."""

    def test_private_broker_killed_mid_run(self):
        with fbrun.TempDir() as cwd:
            env = fbrun.clean_env({"TMPDIR": cwd})
            proc = fbrun.start(["run", fbrun.workflow("resume.yaml"), "--run-id", rid("bkill"),
                                "--json"], cwd=cwd, env=env)
            try:
                fbrun.read_json_until(proc, lambda e: e.get("task") == "SLOW" and
                                      e.get("state") == "running")
                brokers = []
                for p in fbrun.processes_with_cmdline(cwd):
                    with open("/proc/%d/cmdline" % p, "rb") as f:
                        if b"mosquitto" in f.read():
                            brokers.append(p)
                self.assertEqual(len(brokers), 1)
                # SLOW is running and AFTER waiting while the broker dies.
                os.kill(brokers[0], signal.SIGKILL)
                out, err = fbrun.finish(proc, timeout=60)
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.communicate()
            self.assertEqual(proc.returncode, 0, out + err)
            final = json.loads(out.splitlines()[-1])
            self.assertEqual({t: v["state"] for t, v in final["tasks"].items()},
                             {t: "done" for t in ("START", "QUICK", "SLOW", "AFTER", "END")})
            self.assertIn("restarting it", out)
            # Every task ran its action exactly once.
            for name in ("quick.count", "slow.count", "after.count"):
                with open(os.path.join(cwd, name)) as f:
                    self.assertEqual(len(f.read().split()), 1, name)
            values = {e["name"]: e["value"] for e in map(json.loads, out.splitlines())
                      if e["event"] == "var"}
            self.assertEqual((values["Q"], values["S"], values["A"]), ("1", "2", "3"))
            self.assertFalse(fbrun.wait_gone(lambda: fbrun.processes_with_cmdline(cwd)))


class ResourceFaults(unittest.TestCase):
    def setUp(self):
        self.tmp = fbrun.TempDir()
        self.dir = self.tmp.__enter__()
        self.addCleanup(self.tmp.__exit__)
        self.env = fbrun.clean_env({"TMPDIR": self.dir})

    def test_an_output_flood_is_bounded(self):
        proc = subprocess.Popen([fbrun.flowbus(), "run", fbrun.workflow("flood.yaml"), "--json"],
                                cwd=self.dir, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate(timeout=300)
        # The coordinator's own peak memory (it reaps its tasks, so wait4 of it
        # covers them too): far below the 40 MB that went through.
        self.assertEqual(proc.returncode, 0, err)
        events = [json.loads(line) for line in out.splitlines()]
        logs = [e["line"] for e in events if e["event"] == "log"]
        self.assertTrue(any("lines dropped" in line for line in logs), logs[-5:])
        self.assertLess(len(logs), 100000)
        self.assertEqual(events[-1]["tasks"]["END"]["state"], "done")

    def test_peak_memory_during_a_flood(self):
        pid = os.fork()
        if pid == 0:  # a child that only runs flowbus, so wait4 measures that tree alone
            os.chdir(self.dir)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            os.execve(fbrun.flowbus(), ["flowbus", "run", fbrun.workflow("flood.yaml"), "-q"],
                      self.env)
        _, status, usage = os.wait4(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        # AddressSanitizer's shadow memory and quarantine inflate every process.
        bound = 256 if os.environ.get("ASAN_OPTIONS") else 64
        self.assertLess(usage.ru_maxrss, bound * 1024, "peak RSS %d KB" % usage.ru_maxrss)

    def test_an_overlong_line_is_cut_and_marked(self):
        path = os.path.join(self.dir, "long.yaml")
        with open(path, "w") as f:
            f.write("workflow:\n  name: long\n  tasks:\n    - name: LONG\n      plugin: cmd\n"
                    "      params: {command: 'head -c 400000 /dev/zero | tr \"\\\\0\" y; echo'}\n")
        res = fbrun.run(["run", path, "--json"], cwd=self.dir, env=self.env)
        self.assertEqual(res.returncode, 0, res.stderr)
        logs = [e["line"] for e in map(json.loads, res.stdout.splitlines()) if e["event"] == "log"]
        cut = [line for line in logs if "[line cut at" in line]
        self.assertEqual(len(cut), 1, logs)
        self.assertLess(len(cut[0]), 300 * 1024)

    def test_a_value_over_the_limit_is_refused(self):
        res = fbrun.run(["run", fbrun.workflow("too-large.yaml"), "--json"], cwd=self.dir,
                        env=self.env)
        self.assertEqual(res.returncode, 1, res.stderr)
        final = json.loads(res.stdout.splitlines()[-1])
        self.assertIn("over the limit of 262144 bytes", final["tasks"]["BIG"]["error"])
        self.assertFalse([e for e in map(json.loads, res.stdout.splitlines())
                          if e["event"] == "var" and e["name"] == "HUGE"])
        # The same value given as an initial variable is refused before anything runs.
        path = os.path.join(self.dir, "big-env.yaml")
        with open(path, "w") as f:
            f.write("workflow:\n  name: x\n  env:\n    X: \"%s\"\n  tasks:\n"
                    "    - {name: END, plugin: end, inputs: [X]}\n" % ("y" * 300000))
        res = fbrun.run(["run", path], cwd=self.dir, env=self.env)
        self.assertEqual(res.returncode, 2)
        self.assertRegex(res.stderr, r"big-env.yaml:4:5: error: the value of 'X' is 300000 bytes")
        # The limit is configurable.
        env = dict(self.env, FLOWBUS_MAX_VALUE="400000")
        self.assertEqual(fbrun.run(["validate", path], env=env).returncode, 0)

    def test_an_unusable_run_directory_is_a_clear_error(self):
        not_a_dir = os.path.join(self.dir, "file")
        open(not_a_dir, "w").close()
        env = dict(self.env, TMPDIR=not_a_dir)
        res = fbrun.run(["run", fbrun.workflow("split.yaml")], cwd=self.dir, env=env)
        self.assertEqual(res.returncode, 4, res.stderr)
        self.assertIn("cannot create the run directory in %s: Not a directory" % not_a_dir,
                      res.stderr)
        self.assertEqual(sorted(os.listdir(self.dir)), ["file"])
        self.assertFalse(fbrun.processes_with_cmdline(self.dir))


class UnreachableBroker(unittest.TestCase):
    def test_bounded_retry_then_exit_4(self):
        port = fbtest.free_port()  # nothing listens there
        with fbrun.TempDir() as cwd:
            start = time.monotonic()
            res = fbrun.run(["run", fbrun.workflow("split.yaml"), "--broker",
                             "tcp://127.0.0.1:%d" % port, "--run-id", rid("unreach")], cwd=cwd,
                            timeout=60)
            took = time.monotonic() - start
            self.assertEqual(os.listdir(cwd), [])
        self.assertEqual(res.returncode, 4, res.stderr)
        self.assertIn("cannot connect to the broker", res.stderr)
        self.assertIn("attempts", res.stderr)
        self.assertLess(took, 30)
        self.assertFalse(fbrun.processes_with_env("FLOWBUS_RUN_ID", rid("unreach")))

    def test_broker_that_comes_up_late_is_used(self):
        port = fbtest.free_port()
        with fbrun.TempDir() as cwd:
            conf = os.path.join(cwd, "late.conf")
            with open(conf, "w") as f:
                f.write("listener %d 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n" % port)
            proc = fbrun.start(["run", fbrun.workflow("split.yaml"), "--broker",
                                "tcp://127.0.0.1:%d" % port, "--run-id", rid("late")], cwd=cwd)
            broker = None
            try:
                time.sleep(0.5)  # the point of the test: the broker really is late
                self.assertIsNone(proc.poll(), "flowbus gave up at once")
                broker = subprocess.Popen(["/usr/sbin/mosquitto", "-c", conf],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                out, err = fbrun.finish(proc, timeout=30)
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.communicate()
                if broker:
                    broker.terminate()
                    broker.wait()
        self.assertEqual(proc.returncode, 0, out + err)


if __name__ == "__main__":
    unittest.main()
