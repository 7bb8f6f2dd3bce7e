"""One owner per run: `flowbus resume` never takes a run from a live
coordinator, two resumes of a dead one elect exactly one winner, and no task
ever runs twice (docs/reliability.md, "One owner per run").

Every test drives the real coordinator against a real mosquitto. Whether a
task ran twice is read from the tasks' own records: each task's command
appends its name to runs.log in the run's directory, so a second execution is
a second line, whoever started it.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

import fbrun
import fbtest

EXIT_OWNED = 5  # enum fb_exit's FB_EXIT_OWNED (docs/workflow-format.md)
ROUNDS = int(os.environ.get("FLOWBUS_OWNERSHIP_ROUNDS", "50"))
N_TASKS = 30
LANES = 4  # double-resume rounds run at the same time


def rid(name):
    return "%s-%d" % (name, os.getpid())


def chain_workflow(path):
    """START -> A -> B (slow) -> C -> D -> END, each counting its runs."""
    steps = [("A", "TRUE", "VA", ""), ("B", "VA", "VB", "sleep 1.2; "),
             ("C", "VB", "VC", ""), ("D", "VC", "VD", "")]
    lines = ["workflow:", "  name: chain", "  tasks:",
             "    - {name: START, plugin: start, outputs: [TRUE]}"]
    for name, inp, out, extra in steps:
        lines += ["    - name: %s" % name, "      plugin: cmd", "      inputs: [%s]" % inp,
                  "      outputs: [%s]" % out,
                  "      params: {command: 'echo %s >> runs.log; %secho %s=1'}" % (name, extra, out)]
    lines.append("    - {name: END, plugin: end, inputs: [VD]}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def parallel_workflow(path, n=N_TASKS):
    """GATE (holds the run until the test creates gate.txt, so that the run
    outlives its resumers' race), n tiny tasks, and END joining them all."""
    lines = ["workflow:", "  name: parallel", "  tasks:",
             "    - name: GATE", "      plugin: cmd", "      outputs: [GO]",
             "      execution: {timeout: 60}",
             "      params: {command: 'while [ ! -e gate.txt ]; do sleep 0.01; done; echo GO=1'}"]
    # Every other task takes a moment, so that some are still running when
    # the coordinator dies and finish while the winner reads the run.
    for i in range(1, n + 1):
        lines += ["    - name: T%02d" % i, "      plugin: cmd", "      outputs: [V%02d]" % i,
                  "      params: {command: 'echo T%02d >> runs.log; %secho V%02d=1'}" %
                  (i, "sleep 0.1; " if i % 2 else "", i)]
    lines += ["    - name: END", "      plugin: end",
              "      inputs: [GO, %s]" % ", ".join("V%02d" % i for i in range(1, n + 1))]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def runs(cwd):
    """How many times each task's command ran, from the tasks' own records."""
    counts = {}
    try:
        with open(os.path.join(cwd, "runs.log")) as f:
            for name in f.read().split():
                counts[name] = counts.get(name, 0) + 1
    except FileNotFoundError:
        pass
    return counts


def wait_exits(procs, count, timeout):
    """Waits until count of procs have exited; returns those, in the order seen."""
    deadline = time.monotonic() + timeout
    done = []
    while len(done) < count and time.monotonic() < deadline:
        done += [p for p in procs if p not in done and p.poll() is not None]
        # A child's exit has no event a test can wait on together with another's.
        time.sleep(0.01)
    return done


class OwnershipTestCase(fbtest.BrokerTestCase):
    def setUp(self):
        super().setUp()
        self.tmp = fbrun.TempDir()
        self.cwd = self.tmp.__enter__()
        self.addCleanup(self.tmp.__exit__)
        self.run_ids = []
        self.addCleanup(self.kill_leftovers)

    def kill_leftovers(self):
        for run_id in self.run_ids:
            for pid in fbrun.processes_with_env("FLOWBUS_RUN_ID", run_id):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass

    def env(self):
        return fbrun.clean_env({"FLOWBUS_LAUNCH_WINDOW": "1"})

    def wait_lost(self, run_id, timeout=10, recorder=None):
        topic = "flowbus/%s/state" % run_id
        self.assertTrue((recorder or self.recorder).wait_for(lambda ev: any(
            e.topic == topic and e.payload and e.json()["state"] == "lost" for e in ev),
            timeout), "the run never became lost")

    def task_events(self, run_id):
        prefix = "flowbus/%s/tasks/" % run_id
        return [e for e in self.recorder.events if e.topic.startswith(prefix) and
                e.topic.endswith("/state") and e.payload]


class LiveOwner(OwnershipTestCase):
    def test_resume_of_a_live_run_is_refused_and_the_run_finishes(self):
        run_id = rid("live")
        self.run_ids.append(run_id)
        path = os.path.join(self.cwd, "chain.yaml")
        chain_workflow(path)
        proc = fbrun.start(["run", path, "--broker", self.broker.url, "--run-id", run_id],
                           cwd=self.cwd, env=self.env())
        try:
            self.recorder.wait_state(run_id, "B", "running", timeout=15)
            res = fbrun.run(["resume", run_id, "--broker", self.broker.url], cwd="/",
                            env=self.env(), timeout=30)
            out, err = fbrun.finish(proc, timeout=30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
        self.assertEqual(res.returncode, EXIT_OWNED, res.stdout + res.stderr)
        self.assertRegex(res.stderr, r"run %s is owned by a live coordinator: pid %d on host "
                         r"%s since \S+" % (run_id, proc.pid, socket.gethostname()))
        self.assertNotIn("Resumed", res.stdout)
        # The original run was not disturbed: it ends as a clean run, every task once.
        self.assertEqual(proc.returncode, 0, out + err)
        self.assertNotIn("reconnect", err)
        self.assertEqual(runs(self.cwd), {"A": 1, "B": 1, "C": 1, "D": 1})

    def test_the_coordinator_holds_a_unique_owner_record(self):
        run_id = rid("record")
        self.run_ids.append(run_id)
        path = os.path.join(self.cwd, "chain.yaml")
        chain_workflow(path)
        proc = fbrun.start(["run", path, "--broker", self.broker.url, "--run-id", run_id],
                           cwd=self.cwd, env=self.env())
        try:
            self.recorder.wait_state(run_id, "B", "running", timeout=15)
            # The record is retained: a reader that comes later finds it.
            with fbtest.Recorder(self.broker, "flowbus/%s/owner" % run_id) as fresh:
                kept = fresh.wait_for(lambda ev: [e for e in ev if e.retained and e.payload], 5)
            self.assertEqual(len(kept or []), 1, "no retained owner record")
            rec = kept[0].json()
            self.assertEqual(rec["pid"], proc.pid)
            self.assertEqual(rec["host"], socket.gethostname())
            self.assertRegex(rec["id"], r"^[0-9a-f]{32}$")
            # Its client id is its own, made from its random id: never the one
            # another coordinator of the run would use.
            self.assertIn(rec["id"][:16], rec["client"])
            self.assertNotEqual(rec["client"], "flowbus-coordinator-%s" % run_id)
            # The run state names the owner; so does the Will that marks it dead.
            states = [e.json() for e in self.recorder.on_topic("flowbus/%s/state" % run_id)
                      if e.payload]
            self.assertEqual(states[-1]["state"], "running")
            self.assertEqual(states[-1]["owner"], rec["id"])
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate()
            self.wait_lost(run_id)
            lost = [e.json() for e in self.recorder.on_topic("flowbus/%s/state" % run_id)
                    if e.payload][-1]
            self.assertEqual((lost["state"], lost["owner"]), ("lost", rec["id"]))
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()

    def test_a_coordinator_whose_run_was_taken_over_lets_it_go(self):
        # What a coordinator cut off from the broker finds when it comes back
        # after a resume took its run: another owner record. It must stop at
        # once, publish nothing more and leave the processes to the new owner.
        run_id = rid("deposed")
        self.run_ids.append(run_id)
        path = os.path.join(self.cwd, "chain.yaml")
        chain_workflow(path)
        proc = fbrun.start(["run", path, "--broker", self.broker.url, "--run-id", run_id],
                           cwd=self.cwd, env=self.env())
        try:
            _, running = self.recorder.wait_state(run_id, "B", "running", timeout=15)
            before = len(self.recorder.events)
            self.recorder.publish("flowbus/%s/owner" % run_id, json.dumps(
                {"id": "0" * 32, "pid": 1, "host": "elsewhere", "since": time.time(),
                 "client": "fbc-0000000000000000"}), retain=True)
            out, err = fbrun.finish(proc, timeout=10)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
        self.assertEqual(proc.returncode, EXIT_OWNED, out + err)
        self.assertIn("was taken over by another coordinator (pid 1 on host elsewhere", err)
        self.assertTrue(fbrun.alive(running["pid"]), "B's process was killed")
        mine = [e for e in self.recorder.events[before:] if e.topic in (
            "flowbus/%s/state" % run_id, "flowbus/%s/owner" % run_id) and
            b"0" * 32 not in e.payload]
        self.assertFalse(mine, "the deposed coordinator published %s" % mine)


class DoubleResume(OwnershipTestCase):
    # Each round records its own run; the test-wide recorder would only spend
    # the CPU the rounds need on every message of every round.
    recorder_topic = "flowbus/-/#"
    def kill_at(self, proc, run_id, point, recorder):
        """kill -9 of the coordinator after `point` task states reached the bus."""
        ok = recorder.wait_for(lambda ev: len([
            e for e in ev if e.topic.startswith("flowbus/%s/tasks/" % run_id) and
            e.topic.endswith("/state")]) >= point and any(
            e.topic == "flowbus/%s/workflow" % run_id for e in ev), 20)
        self.assertTrue(ok, "the run never reached point %d" % point)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()

    def one_round(self, n, point, n_resumers):
        run_id = rid("double%d" % n)
        self.run_ids.append(run_id)
        cwd = os.path.join(self.cwd, "r%d" % n)
        os.mkdir(cwd)
        path = os.path.join(cwd, "parallel.yaml")
        parallel_workflow(path)
        # A recorder of this round's run alone: the rounds' lanes do not wade
        # through each other's messages.
        with fbtest.Recorder(self.broker, "flowbus/%s/#" % run_id) as recorder:
            proc = fbrun.start(["run", path, "--broker", self.broker.url, "--run-id", run_id],
                               cwd=cwd, env=self.env())
            self.kill_at(proc, run_id, point, recorder)
            self.wait_lost(run_id, recorder=recorder)
        resumers = [fbrun.start(["resume", run_id, "--broker", self.broker.url], cwd="/",
                                env=self.env()) for _ in range(n_resumers)]
        what = "round %d (kill at %d, %d resumers)" % (n, point, n_resumers)
        try:
            losers = wait_exits(resumers, n_resumers - 1, 20)
            self.assertEqual(len(losers), n_resumers - 1, "%s: no resumer gave up" % what)
            winner = [p for p in resumers if p not in losers][0]
            for loser in losers:
                lout, lerr = fbrun.finish(loser)
                self.assertEqual(loser.returncode, EXIT_OWNED, "%s: %s%s" % (what, lout, lerr))
                self.assertRegex(lerr, r"run %s is (already resumed by|owned by a live "
                                 r"coordinator:) .*pid %d on host %s" %
                                 (run_id, winner.pid, socket.gethostname()))
            open(os.path.join(cwd, "gate.txt"), "w").close()
            wout, werr = fbrun.finish(winner, timeout=30)
        finally:
            for p in resumers:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.communicate()
        self.assertEqual(winner.returncode, 0, "%s: %s%s" % (what, wout, werr))
        counts = runs(cwd)
        twice = {k: v for k, v in counts.items() if v != 1}
        self.assertFalse(twice, "%s: ran twice: %s" % (what, twice))
        self.assertEqual(len(counts), N_TASKS, "%s: %s" % (what, counts))

    def test_fifty_double_resumes_elect_one_winner_and_run_nothing_twice(self):
        # Kill points spread over the whole run: before any task reported, while
        # the first ones start, in the middle, near the end. The rounds are
        # independent runs (own run id and directory) on the one broker, a few
        # at a time: most of a round is waiting for processes, not CPU.
        failures = []

        def lane(k):
            for n in range(k, ROUNDS, LANES):
                try:
                    # Every fifth round three resumes race instead of two.
                    self.one_round(n, (n * 37) % (3 * N_TASKS), 3 if n % 5 == 4 else 2)
                except Exception as e:  # reported below, with every other lane's
                    failures.append(e)
                    return

        threads = [threading.Thread(target=lane, args=(k,)) for k in range(LANES)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failures:
            raise failures[0]


class DeadClaimant(OwnershipTestCase):
    """A claim held by a live claimant blocks a resume; its claimant's death frees it."""

    CLAIMANT = r"""
import json, os, socket, sys, time
import paho.mqtt.client as mqtt
port, run_id, claim_id = int(sys.argv[1]), sys.argv[2], sys.argv[3]
topic = "flowbus/%s/claims/%s" % (run_id, claim_id)
c = mqtt.Client(client_id="fake-claimant-" + claim_id, protocol=mqtt.MQTTv5)
c.will_set(topic, b"", qos=1, retain=True)
c.connect("127.0.0.1", port)
c.loop_start()
info = c.publish(topic, json.dumps({"id": claim_id, "pid": os.getpid(),
                 "host": socket.gethostname(), "since": time.time()}), qos=1, retain=True)
info.wait_for_publish(5)
print("claimed", flush=True)
time.sleep(60)
"""

    def killed_run(self, run_id, cwd):
        path = os.path.join(cwd, "parallel.yaml")
        parallel_workflow(path, n=4)
        proc = fbrun.start(["run", path, "--broker", self.broker.url, "--run-id", run_id],
                           cwd=cwd, env=self.env())
        self.recorder.wait_state(run_id, "GATE", "waiting", timeout=15)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        self.wait_lost(run_id)

    def test_a_dead_claimant_does_not_block_a_later_resume(self):
        run_id = rid("claim")
        self.run_ids.append(run_id)
        self.killed_run(run_id, self.cwd)
        claimant = subprocess.Popen([sys.executable, "-c", self.CLAIMANT, str(self.broker.port),
                                     run_id, "f" * 32], stdout=subprocess.PIPE, text=True,
                                    start_new_session=True)
        try:
            self.assertEqual(claimant.stdout.readline().strip(), "claimed")
            res = fbrun.run(["resume", run_id, "--broker", self.broker.url], cwd="/",
                            env=self.env(), timeout=30)
            self.assertEqual(res.returncode, EXIT_OWNED, res.stdout + res.stderr)
            self.assertRegex(res.stderr, r"run %s is already resumed by .*pid %d on host" %
                             (run_id, claimant.pid))
        finally:
            os.kill(claimant.pid, signal.SIGKILL)
            claimant.communicate()
        # Its Last Will deleted its claim: a resume now wins.
        self.recorder.wait_for(lambda ev: any(
            e.topic == "flowbus/%s/claims/%s" % (run_id, "f" * 32) and not e.payload
            for e in ev), 10)
        open(os.path.join(self.cwd, "gate.txt"), "w").close()
        res = fbrun.run(["resume", run_id, "--broker", self.broker.url], cwd="/",
                        env=self.env(), timeout=30)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertEqual(runs(self.cwd), {"T01": 1, "T02": 1, "T03": 1, "T04": 1})

    def test_a_resumer_killed_mid_claim_does_not_block_a_later_resume(self):
        run_id = rid("midclaim")
        self.run_ids.append(run_id)
        self.killed_run(run_id, self.cwd)
        first = fbrun.start(["resume", run_id, "--broker", self.broker.url], cwd="/",
                            env=self.env())
        # Killed as soon as its claim is on the broker: mid-claim, or just after it won.
        got = self.recorder.wait_for(lambda ev: any(
            e.topic.startswith("flowbus/%s/claims/" % run_id) and e.payload for e in ev), 15)
        os.kill(first.pid, signal.SIGKILL)
        first.communicate()
        self.assertTrue(got, "the first resumer never claimed the run")
        self.wait_lost_again(run_id)
        open(os.path.join(self.cwd, "gate.txt"), "w").close()
        res = fbrun.run(["resume", run_id, "--broker", self.broker.url], cwd="/",
                        env=self.env(), timeout=30)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertEqual(runs(self.cwd), {"T01": 1, "T02": 1, "T03": 1, "T04": 1})

    def wait_lost_again(self, run_id):
        """The killed resumer's claim is gone (its Will) and the run is lost, not running."""
        prefix = "flowbus/%s/claims/" % run_id

        def settled(ev):
            claims = {}
            state = None
            for e in ev:
                if e.topic.startswith(prefix):
                    claims[e.topic] = e.payload
                elif e.topic == "flowbus/%s/state" % run_id and e.payload:
                    state = e.json()["state"]
            return state == "lost" and not any(claims.values())
        self.assertTrue(self.recorder.wait_for(settled, 10), "the killed resumer left a claim")


if __name__ == "__main__":
    unittest.main()
