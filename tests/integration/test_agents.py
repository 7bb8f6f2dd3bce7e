"""Tasks across hosts, on one host: `flowbus agent` processes with different
labels take the tasks whose `runs_on:` they match (docs/distributed.md).

Every test starts its own mosquitto, several agents as separate processes and
the real coordinator, and reads what happened from the bus (a Recorder on
flowbus/#: the agents' records, the placement answers, the task states).
Whether a task ran twice is read from the tasks' own records (each appends
its name to a file), whoever started it; whether a process was left over is
read from /proc (every task process carries FLOWBUS_RUN_ID).
"""

import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import unittest

import fbrun
import fbtest


def rid(name):
    return "%s-%d" % (name, os.getpid())


class AgentTestCase(fbtest.BrokerTestCase):
    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="fbtest-agents-")
        self.agents = {}

    def tearDown(self):
        for proc in list(self.agents.values()):
            self.stop_agent(proc)

    def agent_topic(self, name):
        return "flowbus/agents/%s" % name

    def start_agent(self, name, labels, extra=(), env=None):
        """Starts `flowbus agent` and waits for its online record."""
        before = len(self.recorder.on_topic(self.agent_topic(name)))
        proc = fbrun.start(["agent", "--broker", self.broker.url, "--name", name,
                            "--labels", labels] + list(extra), cwd=self.dir,
                           env=fbrun.clean_env(env))
        self.agents[name] = proc

        def online(events):
            mine = [e for e in events if e.topic == self.agent_topic(name) and e.payload]
            return len(mine) > before and mine[-1].json().get("state") == "online"

        if not self.recorder.wait_for(online, 10):
            out, err = fbrun.finish(proc, 2)
            self.fail("agent %s never came online: %s %s" % (name, out, err))
        return proc

    def stop_agent(self, proc, sig=signal.SIGTERM):
        if proc.poll() is None:
            proc.send_signal(sig)
        out, err = fbrun.finish(proc, 10)
        for k, v in list(self.agents.items()):
            if v is proc:
                del self.agents[k]
        return proc.returncode, out, err

    def workflow(self, text):
        path = os.path.join(self.dir, "wf.yaml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def placements(self, run_id, task):
        return [e.json() for e in self.recorder.on_topic(
            "flowbus/%s/tasks/%s/placement" % (run_id, task)) if e.payload]

    def started_on(self, run_id, task):
        return [p["agent"] for p in self.placements(run_id, task) if p["state"] == "started"]

    def run_flow(self, path, run_id, timeout=30, extra=()):
        return fbrun.run(["run", path, "--broker", self.broker.url, "--run-id", run_id, "-q"]
                         + list(extra), cwd=self.dir, timeout=timeout)

    def wait_file(self, path, timeout=10):
        deadline = time.monotonic() + timeout
        while not os.path.exists(path):
            self.assertLess(time.monotonic(), deadline, "%s never appeared" % path)
            time.sleep(0.02)  # polling the file system: there is no event to wait on

    def assert_no_task_left(self, run_id):
        left = fbrun.wait_gone(lambda: fbrun.processes_with_env("FLOWBUS_RUN_ID", run_id), 5)
        self.assertEqual(left, [], "task processes of %s left behind" % run_id)


SPLIT_JOIN = """workflow:
  name: split-join
  tasks:
    - name: READ
      plugin: cmd
      runs_on: [device, room1]
      outputs: [V]
      params: {command: 'echo READ >> runs.log; echo V=21'}
    - name: DOUBLE
      plugin: cmd
      runs_on: hub
      inputs: [V]
      outputs: [D]
      params: {command: 'echo DOUBLE >> runs.log; echo D=$(( V * 2 ))'}
    - name: SHOW
      plugin: cmd
      runs_on: [device, room2]
      inputs: [V]
      outputs: [S]
      params: {command: 'echo SHOW >> runs.log; echo S="seen $V"'}
    - name: JOIN
      plugin: cmd
      inputs: [D, S]
      params: {command: 'echo JOIN >> runs.log; echo "$D / $S"'}
"""


class TestPlacement(AgentTestCase):
    def test_labels_split_and_join_across_agents(self):
        self.start_agent("dev1", "device,room1")
        self.start_agent("dev2", "device,room2")
        self.start_agent("hub", "hub")
        run_id = rid("split")
        res = self.run_flow(self.workflow(SPLIT_JOIN), run_id)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertEqual(self.started_on(run_id, "READ"), ["dev1"])
        self.assertEqual(self.started_on(run_id, "DOUBLE"), ["hub"])
        self.assertEqual(self.started_on(run_id, "SHOW"), ["dev2"])
        self.assertEqual(self.placements(run_id, "JOIN"), [])
        with open(os.path.join(self.dir, "runs.log")) as f:
            self.assertEqual(sorted(f.read().split()), ["DOUBLE", "JOIN", "READ", "SHOW"])
        # status shows each task's host and agent; a local task has the coordinator's host.
        st = fbrun.run(["status", run_id, "--broker", self.broker.url, "--json"])
        self.assertEqual(st.returncode, 0, st.stderr)
        tasks = {t["name"]: t for t in json.loads(st.stdout)["tasks"]}
        self.assertEqual(tasks["READ"]["agent"], "dev1")
        self.assertEqual(tasks["SHOW"]["agent"], "dev2")
        self.assertNotIn("agent", tasks["JOIN"])
        self.assertEqual(tasks["JOIN"]["host"], os.uname().nodename)
        text = fbrun.run(["status", run_id, "--broker", self.broker.url])
        self.assertIn("(agent hub)", text.stdout)
        # flowbus agents lists the three, with their labels and load.
        ls = fbrun.run(["agents", "--broker", self.broker.url, "--json"])
        self.assertEqual(ls.returncode, 0, ls.stderr)
        agents = {a["name"]: a for a in json.loads(ls.stdout)["agents"]}
        self.assertEqual(sorted(agents), ["dev1", "dev2", "hub"])
        self.assertEqual(agents["dev1"]["labels"], ["device", "room1"])
        self.assertEqual(agents["hub"]["state"], "online")
        self.assertEqual(agents["hub"]["running"], 0)
        table = fbrun.run(["agents", "--broker", self.broker.url])
        self.assertIn("device,room2", table.stdout)

    def test_refusal_goes_to_the_next_agent(self):
        """a1 lacks the plugin (and is chosen first: same load, name order), b1 has it."""
        plugins = os.path.join(self.dir, "plugins")
        os.mkdir(plugins)
        os.symlink(fbtest.bin_path("flowbus-cmd"), os.path.join(plugins, "flowbus-special"))
        self.start_agent("a1", "x")
        self.start_agent("b1", "x", ["--plugins", plugins])
        run_id = rid("refuse")
        path = self.workflow("""workflow:
  name: refuse
  tasks:
    - name: T
      plugin: special
      runs_on: x
      params: {command: 'echo ran'}
""")
        res = self.run_flow(path, run_id)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        answers = [(p["agent"], p["state"]) for p in self.placements(run_id, "T")]
        self.assertEqual(answers[:2], [("a1", "refused"), ("b1", "started")])
        refusal = self.placements(run_id, "T")[0]
        self.assertIn("has no plugin 'special'", refusal["reason"])
        self.assertIn("agent a1 refused it", res.stdout + res.stderr)

    def test_a_late_start_of_an_abandoned_offer_is_killed(self):
        """l1 (chosen first: same load, name order) is frozen past the 2 s an offer waits;
        the attempt goes to l2; woken, l1 starts its stale offer, which must not run."""
        self.start_agent("l1", "x")
        self.start_agent("l2", "x")
        run_id = rid("late")
        gate = os.path.join(self.dir, "gate")
        path = self.workflow("""workflow:
  name: late
  tasks:
    - name: T
      plugin: cmd
      runs_on: x
      params: {command: 'sleep 0.5; echo T >> runs.log; while [ ! -e %s ]; do sleep 0.05; done'}
""" % gate)
        late = self.agents["l1"]
        os.kill(late.pid, signal.SIGSTOP)
        try:
            proc = fbrun.start(["run", path, "--broker", self.broker.url, "--run-id", run_id],
                               cwd=self.dir)
            self.assertTrue(self.recorder.wait_for(lambda ev: "l2" in self.started_on(run_id, "T"),
                                                   15), self.placements(run_id, "T"))
        finally:
            os.kill(late.pid, signal.SIGCONT)
        # l1 reads the offer it was sent, starts it, and is told to kill it at once.
        self.assertTrue(self.recorder.wait_for(lambda ev: any(
            p["agent"] == "l1" and p["state"] == "exited" and p.get("signal") == signal.SIGKILL
            for p in self.placements(run_id, "T")), 10), self.placements(run_id, "T"))
        with open(gate, "w"):
            pass
        out, err = fbrun.finish(proc, 30)
        self.assertEqual(proc.returncode, 0, out + err)
        self.assertIn("started an offer that is no longer this attempt's", out + err)
        with open(os.path.join(self.dir, "runs.log")) as f:
            self.assertEqual(f.read().split(), ["T"])
        self.assert_no_task_left(run_id)

    def test_full_agent_refuses_and_the_other_takes_it(self):
        self.start_agent("f1", "w", ["--max-tasks", "1"])
        self.start_agent("f2", "w", ["--max-tasks", "1"])
        run_id = rid("full")
        path = self.workflow("""workflow:
  name: full
  tasks:
    - name: A
      plugin: cmd
      runs_on: w
      params: {command: 'sleep 0.5'}
    - name: B
      plugin: cmd
      runs_on: w
      params: {command: 'sleep 0.5'}
""")
        res = self.run_flow(path, run_id)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertEqual(sorted(self.started_on(run_id, "A") + self.started_on(run_id, "B")),
                         ["f1", "f2"])


class TestWaiting(AgentTestCase):
    def test_waits_for_an_agent_then_runs(self):
        run_id = rid("late")
        path = self.workflow("""workflow:
  name: late
  tasks:
    - name: T
      plugin: cmd
      runs_on: [late, arm64]
      outputs: [OUT]
      params: {command: 'echo OUT=1'}
""")
        proc = fbrun.start(["run", path, "--broker", self.broker.url, "--run-id", run_id, "-q"],
                           cwd=self.dir)
        _, state = self.recorder.wait_state(run_id, "T", "waiting", 10)
        self.assertEqual(state["error"], "no agent with labels late,arm64")
        # An agent with only one of the labels does not take it.
        self.start_agent("half", "late")
        self.start_agent("whole", "arm64,late")
        out, err = fbrun.finish(proc, 20)
        self.assertEqual(proc.returncode, 0, out + err)
        self.assertEqual(self.started_on(run_id, "T"), ["whole"])

    def test_no_agent_times_out(self):
        run_id = rid("nowhere")
        path = self.workflow("""workflow:
  name: nowhere
  tasks:
    - name: T
      plugin: cmd
      runs_on: nowhere
      execution: {timeout: 1}
      params: {command: 'true'}
""")
        res = self.run_flow(path, run_id)
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        _, state = self.recorder.wait_state(run_id, "T", "timeout", 5)
        self.assertIn("no agent with labels nowhere", state["error"])
        # The run's --timeout bounds the wait too.
        run_id = rid("nowhere2")
        path = self.workflow("""workflow:
  name: nowhere2
  tasks:
    - name: T
      plugin: cmd
      runs_on: nowhere
      params: {command: 'true'}
""")
        res = self.run_flow(path, run_id, extra=["--timeout", "1"])
        self.assertNotEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertIn("run timed out", res.stdout + res.stderr)

    def test_a_waiting_task_whose_input_dies_is_skipped(self):
        run_id = rid("skipwait")
        path = self.workflow("""workflow:
  name: skipwait
  tasks:
    - name: GATE
      plugin: cmd
      outputs: [GO]
      params: {command: 'sleep 0.3; exit 1'}
    - name: T
      plugin: cmd
      runs_on: nowhere
      inputs: [GO]
      params: {command: 'true'}
""")
        proc = fbrun.start(["run", path, "--broker", self.broker.url, "--run-id", run_id, "-q"],
                           cwd=self.dir)
        self.recorder.wait_state(run_id, "T", "waiting", 10)
        _, state = self.recorder.wait_state(run_id, "T", "skipped", 10)
        self.assertIn("GO", state["error"])
        # An agent with the label coming now changes nothing: the task is decided.
        self.start_agent("late", "nowhere")
        out, err = fbrun.finish(proc, 20)
        self.assertEqual(proc.returncode, 1, out + err)
        self.assertEqual(self.placements(run_id, "T"), [])

    def test_runs_on_needs_an_external_broker(self):
        path = self.workflow("""workflow:
  name: private
  tasks:
    - name: T
      plugin: cmd
      runs_on: edge
      params: {command: 'true'}
""")
        res = fbrun.run(["run", path], cwd=self.dir)
        self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
        self.assertIn("wf.yaml:6:16: task 'T' has runs_on, but the run has a private broker",
                      res.stderr)


class TestFaults(AgentTestCase):
    def test_kill9_agent_crashes_its_task_and_retries_elsewhere(self):
        self.start_agent("k1", "w")
        self.start_agent("k2", "w")
        run_id = rid("kill9")
        marker = os.path.join(self.dir, "first-attempt")
        path = self.workflow("""workflow:
  name: kill9
  tasks:
    - name: PRE
      plugin: cmd
      runs_on: w
      outputs: [GO]
      params: {command: 'echo PRE >> runs.log; echo GO=1'}
    - name: SLOW
      plugin: cmd
      runs_on: w
      inputs: [GO]
      outputs: [OUT]
      execution: {retries: 2, retry_delay: 0.1}
      params: {command: 'echo SLOW >> runs.log; if [ -e %s ]; then echo OUT=2; else touch %s; sleep 60; fi'}
    - name: END
      plugin: end
      inputs: [OUT]
""" % (marker, marker))
        proc = fbrun.start(["run", path, "--broker", self.broker.url, "--run-id", run_id, "-q"],
                           cwd=self.dir)
        self.recorder.wait_state(run_id, "SLOW", "running", 15)
        self.wait_file(marker)
        first = [p for p in self.placements(run_id, "SLOW") if p["state"] == "started"][0]
        victim = first["agent"]
        # The host goes: the agent and its task processes die at once.
        agent = self.agents[victim]
        killed_at = time.monotonic()
        os.kill(agent.pid, signal.SIGKILL)
        os.killpg(first["pid"], signal.SIGKILL)
        # SIGKILL reaches the group's processes one by one: cmd may see its
        # command die first and report "failed" before it dies itself; else
        # its Will (or the agent's) says "crashed". Either ends attempt 1.
        ended = self.recorder.wait_for(lambda ev: next(
            (e for e in ev if e.topic == fbtest.state_topic(run_id, "SLOW") and e.payload
             and e.json().get("attempt") == 1
             and e.json().get("state") in ("crashed", "failed")), None), 5)
        self.assertTrue(ended, "attempt 1 of SLOW did not end: %s"
                        % self.recorder.states(run_id, "SLOW"))
        self.assertLess(time.monotonic() - killed_at, 2.0)
        fbrun.finish(agent, 5)
        del self.agents[victim]
        out, err = fbrun.finish(proc, 30)
        self.assertEqual(proc.returncode, 0, out + err)
        other = "k2" if victim == "k1" else "k1"
        self.assertEqual(self.started_on(run_id, "SLOW"), [victim, other])
        with open(os.path.join(self.dir, "runs.log")) as f:
            self.assertEqual(f.read().split(), ["PRE", "SLOW", "SLOW"])
        # The Will wrote the dead agent offline.
        last = self.recorder.on_topic(self.agent_topic(victim))[-1].json()
        self.assertEqual(last["state"], "offline")
        self.assert_no_task_left(run_id)

    def test_kill9_of_the_agent_alone_leaves_no_orphan_and_runs_nothing_twice(self):
        # Only the agent dies (not its host): its task and the task's command
        # must go with it, or the orphan could finish too while the coordinator,
        # on the agent's Will, retries the task elsewhere: a task run twice.
        self.start_agent("o1", "w")
        self.start_agent("o2", "w")
        run_id = rid("orphan")
        marker = os.path.join(self.dir, "first-attempt")
        path = self.workflow("""workflow:
  name: orphan
  tasks:
    - name: SLOW
      plugin: cmd
      runs_on: w
      outputs: [OUT]
      execution: {retries: 1, retry_delay: 0.1}
      params: {command: 'echo SLOW >> runs.log; if [ -e %s ]; then echo OUT=2; else touch %s; sleep 4; echo ORPHAN >> runs.log; echo OUT=1; fi'}
    - name: END
      plugin: end
      inputs: [OUT]
""" % (marker, marker))
        proc = fbrun.start(["run", path, "--broker", self.broker.url, "--run-id", run_id, "-q"],
                           cwd=self.dir)
        self.recorder.wait_state(run_id, "SLOW", "running", 15)
        self.wait_file(marker)
        first = [p for p in self.placements(run_id, "SLOW") if p["state"] == "started"][0]
        victim = first["agent"]
        attempt1 = set(fbrun.processes_with_env("FLOWBUS_RUN_ID", run_id))
        self.assertGreaterEqual(len(attempt1), 2, "the plugin and its command are not both up")
        agent = self.agents.pop(victim)
        os.kill(agent.pid, signal.SIGKILL)
        fbrun.finish(agent, 5)
        # Within 2 s nothing of attempt 1 is left: not the plugin, not its shell, not the sleep.
        left = fbrun.wait_gone(lambda: sorted(
            set(fbrun.processes_with_env("FLOWBUS_RUN_ID", run_id)) &
            set(fbrun.processes_with_env("FLOWBUS_ATTEMPT", "1"))), 2)
        self.assertEqual(left, [], "attempt 1's processes outlived their agent")
        out, err = fbrun.finish(proc, 30)
        self.assertEqual(proc.returncode, 0, out + err)
        other = "o2" if victim == "o1" else "o1"
        self.assertEqual(self.started_on(run_id, "SLOW"), [victim, other])
        done = {e.json().get("attempt") for e in self.recorder.on_topic(
            fbtest.state_topic(run_id, "SLOW")) if e.payload and e.json().get("state") == "done"}
        self.assertEqual(done, {2})
        self.assert_no_task_left(run_id)
        with open(os.path.join(self.dir, "runs.log")) as f:
            self.assertEqual(f.read().split(), ["SLOW", "SLOW"])

    WILL_ORDER = """workflow:
  name: will-order
  tasks:
    - name: SLOW
      plugin: cmd
      runs_on: w
      outputs: [OUT]
      execution: {retries: 1, retry_delay: 0.1}
      params: {command: 'echo SLOW-$FLOWBUS_ATTEMPT >> runs.log; if [ "$FLOWBUS_ATTEMPT" = 1 ]; then sleep 60; else while [ ! -e gate ]; do sleep 0.05; done; fi; echo OUT=$FLOWBUS_ATTEMPT'}
    - name: END
      plugin: end
      inputs: [OUT]
"""

    def lose_in_order(self, name, task_will_first):
        """A host loss with the agent's Will and the task's own Will made to arrive in one order.

        SIGSTOP holds a process's Will back (its connection stays open) while
        the other one's fires; then the held one is killed too.
        """
        self.start_agent(name + "a", "w")
        self.start_agent(name + "b", "w")
        run_id = rid(name)
        proc = fbrun.start(["run", self.workflow(self.WILL_ORDER), "--broker", self.broker.url,
                            "--run-id", run_id, "-q"], cwd=self.dir)
        self.recorder.wait_state(run_id, "SLOW", "running", 15)
        log = os.path.join(self.dir, "runs.log")
        deadline = time.monotonic() + 10
        while not (os.path.exists(log) and "SLOW-1" in open(log).read()):
            self.assertLess(time.monotonic(), deadline, "SLOW's command never ran")
            time.sleep(0.02)  # polling the file system: there is no event to wait on
        first = [p for p in self.placements(run_id, "SLOW") if p["state"] == "started"][0]
        agent = self.agents.pop(first["agent"])
        topic = fbtest.state_topic(run_id, "SLOW")
        will = lambda ev: any(e.topic == topic and e.payload and e.json().get("attempt") == 1
                              and e.json().get("state") == "crashed" for e in ev)
        offline = lambda ev: any(e.topic == self.agent_topic(first["agent"]) and e.payload and
                                 e.json().get("state") == "offline" for e in ev)
        if task_will_first:
            # The agent is frozen (it cannot report the exit); the task dies: its Will first.
            os.kill(agent.pid, signal.SIGSTOP)
            os.killpg(first["pid"], signal.SIGKILL)
            self.assertTrue(self.recorder.wait_for(will, 5), "the task's Will never came")
            self.assertFalse(offline(self.recorder.on_topic(self.agent_topic(first["agent"]))))
            os.kill(agent.pid, signal.SIGKILL)
        else:
            # A partition: the agent's keepalive runs out first. Agent and task are frozen
            # (killing the agent would orphan the task's group, which the kernel wakes up),
            # and the agent's Will is published as the broker would publish it.
            os.kill(agent.pid, signal.SIGSTOP)
            os.killpg(first["pid"], signal.SIGSTOP)
            record = self.recorder.on_topic(self.agent_topic(first["agent"]))[-1].json()
            record["state"] = "offline"
            self.recorder.publish(self.agent_topic(first["agent"]), json.dumps(record).encode(),
                                  retain=True)
            # The coordinator decides attempt 1 crashed and starts attempt 2; then the
            # task's own Will comes, late, while attempt 2 runs: it must change nothing.
            self.assertTrue(self.recorder.wait_for(lambda ev: any(
                e.topic == topic and e.payload and e.json().get("attempt") == 2 and
                e.json().get("state") == "running" for e in ev), 15),
                "attempt 2 never ran: %s" % self.recorder.states(run_id, "SLOW"))
            crashes = lambda: len([e for e in self.recorder.on_topic(topic) if e.payload and
                                   e.json().get("state") == "crashed"])
            before = crashes()
            os.killpg(first["pid"], signal.SIGKILL)
            self.assertTrue(self.recorder.wait_for(lambda ev: crashes() > before, 5),
                            "the task's Will never came")
            os.kill(agent.pid, signal.SIGKILL)
        with open(os.path.join(self.dir, "gate"), "w"):
            pass
        fbrun.finish(agent, 5)
        out, err = fbrun.finish(proc, 30)
        self.assertEqual(proc.returncode, 0, out + err)
        states = [(e.json().get("state"), e.json().get("attempt"))
                  for e in self.recorder.on_topic(topic) if e.payload]
        self.assertEqual(states[-1], ("done", 2), states)
        self.assertEqual(self.recorder.on_topic(topic)[-1].json().get("state"), "done")
        with open(os.path.join(self.dir, "runs.log")) as f:
            self.assertEqual(f.read().split(), ["SLOW-1", "SLOW-2"])
        self.assert_no_task_left(run_id)

    def test_host_loss_with_the_tasks_will_before_the_agents(self):
        self.lose_in_order("order1", task_will_first=True)

    def test_host_loss_with_the_agents_will_before_the_tasks(self):
        self.lose_in_order("order2", task_will_first=False)

    def test_a_will_of_an_earlier_attempt_after_the_retry_finished_is_written_over(self):
        # As the partition case above, but attempt 1's Will comes once attempt 2 is done
        # (HOLD keeps the run open): the retained state must not stay "crashed".
        self.start_agent("wa", "w")
        self.start_agent("wb", "w")
        run_id = rid("latewill")
        hold = os.path.join(self.dir, "hold")
        wf = self.WILL_ORDER + """    - name: HOLD
      plugin: cmd
      params: {command: 'while [ ! -e %s ]; do sleep 0.05; done'}
""" % hold
        proc = fbrun.start(["run", self.workflow(wf), "--broker", self.broker.url,
                            "--run-id", run_id, "-q", "--expiry", "0"], cwd=self.dir)
        self.recorder.wait_state(run_id, "SLOW", "running", 15)
        first = [p for p in self.placements(run_id, "SLOW") if p["state"] == "started"][0]
        agent = self.agents.pop(first["agent"])
        topic = fbtest.state_topic(run_id, "SLOW")
        os.kill(agent.pid, signal.SIGSTOP)
        os.killpg(first["pid"], signal.SIGSTOP)
        record = self.recorder.on_topic(self.agent_topic(first["agent"]))[-1].json()
        record["state"] = "offline"
        self.recorder.publish(self.agent_topic(first["agent"]), json.dumps(record).encode(),
                              retain=True)
        with open(os.path.join(self.dir, "gate"), "w"):
            pass
        self.assertTrue(self.recorder.wait_for(lambda ev: any(
            e.topic == topic and e.payload and e.json().get("attempt") == 2 and
            e.json().get("state") == "done" for e in ev), 15),
            "attempt 2 never finished: %s" % self.recorder.states(run_id, "SLOW"))
        n = len(self.recorder.on_topic(topic))
        os.killpg(first["pid"], signal.SIGKILL)
        os.kill(agent.pid, signal.SIGKILL)
        fbrun.finish(agent, 5)
        # The Will, then the coordinator's record of attempt 2 over it.
        self.assertTrue(self.recorder.wait_for(lambda ev: [
            (e.json().get("state"), e.json().get("attempt"))
            for e in self.recorder.on_topic(topic)[n:] if e.payload][-1:] == [("done", 2)] and any(
            e.json().get("state") == "crashed" for e in self.recorder.on_topic(topic)[n:]
            if e.payload), 5),
            [e.payload for e in self.recorder.on_topic(topic)[n:]])
        with open(hold, "w"):
            pass
        out, err = fbrun.finish(proc, 30)
        self.assertEqual(proc.returncode, 0, out + err)
        res = fbrun.run(["status", run_id, "--broker", self.broker.url, "--json"], timeout=20)
        slow = [t for t in json.loads(res.stdout)["tasks"] if t["name"] == "SLOW"][0]
        self.assertEqual(slow["state"], "done", slow)

    def test_restarted_agent_adopts_nothing_and_takes_new_work(self):
        self.start_agent("r1", "w")
        run_id = rid("restart")
        marker = os.path.join(self.dir, "again")
        path = self.workflow("""workflow:
  name: restart
  tasks:
    - name: LONG
      plugin: cmd
      runs_on: w
      execution: {retries: 1, retry_delay: 0.1}
      params: {command: 'echo LONG >> runs.log; [ -e %s ] || { touch %s; sleep 60; }'}
""" % (marker, marker))
        proc = fbrun.start(["run", path, "--broker", self.broker.url, "--run-id", run_id, "-q"],
                           cwd=self.dir)
        self.recorder.wait_state(run_id, "LONG", "running", 15)
        self.wait_file(marker)
        first = self.placements(run_id, "LONG")[-1]
        os.kill(self.agents["r1"].pid, signal.SIGKILL)
        fbrun.finish(self.agents.pop("r1"), 5)
        os.killpg(first["pid"], signal.SIGKILL)
        # The same name comes back as a new instance: the old attempt is not its own.
        self.start_agent("r1", "w")
        out, err = fbrun.finish(proc, 30)
        self.assertEqual(proc.returncode, 0, out + err)
        started = [p for p in self.placements(run_id, "LONG") if p["state"] == "started"]
        self.assertEqual(len(started), 2)
        self.assertNotEqual(started[0]["instance"], started[1]["instance"])
        self.assert_no_task_left(run_id)

    def test_stop_and_ctrl_c_reach_remote_tasks(self):
        self.start_agent("s1", "w")
        for how in ("stop", "sigint"):
            run_id = rid("stop-" + how)
            path = self.workflow("""workflow:
  name: stopme
  tasks:
    - name: SLEEP
      plugin: cmd
      runs_on: w
      params: {command: 'sleep 60'}
""")
            proc = fbrun.start(["run", path, "--broker", self.broker.url, "--run-id", run_id,
                                "-q"], cwd=self.dir)
            self.recorder.wait_state(run_id, "SLEEP", "running", 15)
            self.assertTrue(fbrun.processes_with_env("FLOWBUS_RUN_ID", run_id))
            if how == "stop":
                res = fbrun.run(["stop", run_id, "--broker", self.broker.url], timeout=20)
                self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
            else:
                os.kill(proc.pid, signal.SIGINT)
            out, err = fbrun.finish(proc, 20)
            self.assertNotEqual(proc.returncode, 0, out + err)
            self.assert_no_task_left(run_id)
            # The agent publishes "exited" after it has reaped the process, so the
            # record may reach the recorder after the process is gone: wait for it.
            self.recorder.wait_for(lambda _e, r=run_id: any(
                p["state"] == "exited" for p in self.placements(r, "SLEEP")), 10)
            exited = [p for p in self.placements(run_id, "SLEEP") if p["state"] == "exited"]
            self.assertEqual(len(exited), 1, self.placements(run_id, "SLEEP"))
        # The agent lives on, and SIGTERM stops it cleanly: offline, exit 0.
        code, out, err = self.stop_agent(self.agents["s1"])
        self.assertEqual(code, 0, out + err)
        # Its last publish was confirmed before it exited; the broker forwards it to us after.
        self.assertTrue(self.recorder.wait_for(lambda ev: self.recorder.on_topic(
            self.agent_topic("s1"))[-1].json()["state"] == "offline", 5),
            self.recorder.on_topic(self.agent_topic("s1"))[-1].json())

    def test_agent_sigterm_kills_its_tasks(self):
        self.start_agent("t1", "w")
        run_id = rid("agentterm")
        path = self.workflow("""workflow:
  name: agentterm
  tasks:
    - name: SLEEP
      plugin: cmd
      runs_on: w
      params: {command: 'sleep 60'}
""")
        proc = fbrun.start(["run", path, "--broker", self.broker.url, "--run-id", run_id, "-q"],
                           cwd=self.dir)
        self.recorder.wait_state(run_id, "SLEEP", "running", 15)
        code, out, err = self.stop_agent(self.agents["t1"])
        self.assertEqual(code, 0, out + err)
        self.assert_no_task_left(run_id)
        out, err = fbrun.finish(proc, 20)
        self.assertEqual(proc.returncode, 1, out + err)


REACTIVE = """workflow:
  name: placed-reactive
  mode: reactive
  tasks:
    - name: DOUBLE
      plugin: cmd
      runs_on: edge
      inputs: [X]
      outputs: [Y]
      params: {command: 'echo Y=$(( X * 2 ))'}
      execution: {workers: 2, restart: always, retry_delay: 0.1}
"""


class TestReactive(AgentTestCase):
    """A reactive flow's placed pool: one worker per agent, each reacting; a lost
    agent's worker starts again on the other; a stop leaves nothing behind."""

    def set(self, run_id, name, value):
        self.recorder.publish(fbtest.var_topic(run_id, name), value.encode(), retain=True)

    def wait_y(self, run_id, value):
        topic = fbtest.var_topic(run_id, "Y")
        got = self.recorder.wait_for(lambda ev: any(
            e.topic == topic and e.payload == value.encode() for e in ev), 20)
        self.assertTrue(got, "Y never became %s: %s" % (value, [
            e.payload for e in self.recorder.on_topic(topic)]))

    def wait_listening(self, run_id, pids):
        """Waits for the waiting state of each worker process in pids: its own, not
        the coordinator's "waiting for an agent", so the worker has subscribed."""
        topic = "flowbus/%s/tasks/DOUBLE/state" % run_id

        def heard(ev):
            said = {e.json().get("pid") for e in ev if e.topic == topic and e.payload and
                    e.json().get("state") == "waiting"}
            return pids <= said
        self.assertTrue(self.recorder.wait_for(heard, 20), "workers %s never waited" % pids)

    def started(self, run_id):
        return [p for p in self.placements(run_id, "DOUBLE") if p["state"] == "started"]

    def test_a_placed_pool_reacts_moves_when_its_agent_is_lost_and_stops(self):
        self.start_agent("r1", "edge")
        self.start_agent("r2", "edge")
        run_id = rid("reactive")
        proc = fbrun.start(["up", self.workflow(REACTIVE), "--broker", self.broker.url,
                            "--run-id", run_id, "-q"], cwd=self.dir)
        self.addCleanup(lambda: proc.poll() is None and os.killpg(proc.pid, signal.SIGKILL))
        # The least-loaded choice puts one worker on each agent.
        self.assertTrue(self.recorder.wait_for(lambda _e: len(self.started(run_id)) == 2, 20),
                        self.placements(run_id, "DOUBLE"))
        self.assertEqual(sorted(p["agent"] for p in self.started(run_id)), ["r1", "r2"])
        self.wait_listening(run_id, {p["pid"] for p in self.started(run_id)})
        for x in (1, 2, 3):
            self.set(run_id, "X", str(x))
            self.wait_y(run_id, str(2 * x))
        # r1's host is lost: the agent and its task process die at once.
        victim = next(p for p in self.started(run_id) if p["agent"] == "r1")
        os.kill(self.agents["r1"].pid, signal.SIGKILL)
        os.killpg(victim["pid"], signal.SIGKILL)
        self.stop_agent(self.agents["r1"])
        # Its worker is started again, on the agent that is left.
        self.assertTrue(self.recorder.wait_for(lambda _e: len(self.started(run_id)) == 3, 20),
                        self.placements(run_id, "DOUBLE"))
        self.assertEqual(self.started(run_id)[-1]["agent"], "r2")
        self.wait_listening(run_id, {self.started(run_id)[-1]["pid"]})
        self.set(run_id, "X", "21")
        self.wait_y(run_id, "42")
        res = fbrun.run(["stop", run_id, "--broker", self.broker.url], timeout=20)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        out, err = fbrun.finish(proc, 20)
        self.assertIsNotNone(proc.returncode, out + err)
        self.assert_no_task_left(run_id)


    def test_the_shipped_edge_watch_flow(self):
        self.start_agent("dev1", "device,sensor")
        self.start_agent("dev2", "device,actuator")
        run_id = rid("edge-watch")
        proc = fbrun.start(["up", fbrun.shipped("edge-watch.yaml"), "--broker", self.broker.url,
                            "--run-id", run_id, "-q"], cwd=self.dir)
        self.addCleanup(lambda: proc.poll() is None and os.killpg(proc.pid, signal.SIGKILL))
        # A reading reaches the hub's decision and the actuators act on it.
        action = fbtest.var_topic(run_id, "ACTION")
        self.assertTrue(self.recorder.wait_for(lambda ev: any(
            e.topic == action and e.payload in (b"cool", b"idle") for e in ev), 20),
            [(e.topic, e.payload) for e in self.recorder.events if "/vars/" in e.topic or
             "/placement" in e.topic])
        self.assertTrue(self.recorder.wait_for(lambda ev: any(
            e.topic == "flowbus/%s/tasks/ACT/state" % run_id and e.payload and
            e.json().get("result") == "done" for e in ev), 20))
        hosts = {p["agent"] for t in ("CLOCK", "READ", "ACT") for p in self.placements(run_id, t)
                 if p["state"] == "started"}
        self.assertEqual(hosts, {"dev1", "dev2"})
        os.kill(proc.pid, signal.SIGINT)
        out, err = fbrun.finish(proc, 20)
        self.assertIsNotNone(proc.returncode, out + err)
RESUME_PLACED = """workflow:
  name: resume-placed
  tasks:
    - name: QUICK
      plugin: cmd
      runs_on: w
      outputs: [Q]
      params: {command: 'echo QUICK >> runs.log; echo Q=1'}
    - name: GATED
      plugin: cmd
      runs_on: w
      inputs: [Q]
      outputs: [G]
      execution: {retries: 1, retry_delay: 0.1}
      params: {command: 'echo GATED-$FLOWBUS_ATTEMPT >> runs.log; while [ ! -e %s ]; do sleep 0.05; done; echo G=2'}
    - name: AFTER
      plugin: cmd
      runs_on: w
      inputs: [G]
      outputs: [A]
      execution: {retries: 1, retry_delay: 0.1}
      params: {command: 'echo AFTER >> runs.log; echo A=3'}
    - name: END
      plugin: end
      inputs: [A]
"""


class TestResume(AgentTestCase):
    """`flowbus resume` of a run whose coordinator died while a placed task ran."""

    def start_and_lose(self, run_id, gate):
        """Runs RESUME_PLACED until GATED runs on its agent, then kill -9 of the coordinator."""
        path = self.workflow(RESUME_PLACED % gate)
        proc = fbrun.start(["run", path, "--broker", self.broker.url, "--run-id", run_id, "-q"],
                           cwd=self.dir)
        self.recorder.wait_state(run_id, "GATED", "running", 15)
        # "running" comes before cmd starts its command: its first line says it runs.
        deadline = time.monotonic() + 10
        while "GATED-1" not in (self.runs() if os.path.exists(self.log_path()) else []):
            self.assertLess(time.monotonic(), deadline, "GATED's command never ran")
            time.sleep(0.02)  # polling the file system: there is no event to wait on
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        self.assertTrue(self.recorder.wait_for(lambda ev: any(
            e.topic == "flowbus/%s/state" % run_id and e.payload and
            e.json().get("state") == "lost" for e in ev), 10), "the run never went lost")

    def log_path(self):
        return os.path.join(self.dir, "runs.log")

    def runs(self):
        with open(self.log_path()) as f:
            return f.read().split()

    def test_resume_adopts_a_placed_task_on_its_live_agent(self):
        self.start_agent("v1", "w")
        run_id = rid("resume-placed")
        gate = os.path.join(self.dir, "gate")
        self.start_and_lose(run_id, gate)
        # The placed task lives on through its coordinator's death (an external broker's rule).
        self.assertTrue(fbrun.processes_with_env("FLOWBUS_RUN_ID", run_id))
        topic = "flowbus/%s/state" % run_id
        before = len(self.recorder.on_topic(topic))
        resume = fbrun.start(["resume", run_id, "--broker", self.broker.url], cwd="/")
        # The gate opens once the resumed coordinator owns the run: GATED ends under it.
        self.assertTrue(self.recorder.wait_for(lambda ev: any(
            e.payload and e.json().get("state") == "running"
            for e in self.recorder.on_topic(topic)[before:]), 15), "the resume never took the run")
        with open(gate, "w"):
            pass
        out, err = fbrun.finish(resume, 30)
        self.assertEqual(resume.returncode, 0, out + err)
        # QUICK finished; GATED, AFTER (waiting on its agent for G) and END (local) adopted.
        self.assertIn("1 finished, 3 adopted, 0 lost, 0 started", out)
        self.assertEqual(self.runs(), ["QUICK", "GATED-1", "AFTER"])
        self.assertEqual(len([p for p in self.placements(run_id, "GATED")
                              if p["state"] == "started"]), 1)
        self.recorder.wait_state(run_id, "END", "done")
        self.assert_no_task_left(run_id)

    def test_resume_retries_a_placed_task_whose_agent_died_meanwhile(self):
        self.start_agent("x1", "w")
        run_id = rid("resume-lost")
        gate = os.path.join(self.dir, "gate")
        self.start_and_lose(run_id, gate)
        # Its agent dies too (its tasks with it; END, the coordinator's own, lives on),
        # and another agent comes.
        self.stop_agent(self.agents["x1"], signal.SIGKILL)
        placed = lambda: sorted(set(fbrun.processes_with_env("FLOWBUS_RUN_ID", run_id)) -
                                set(fbrun.processes_with_env("FLOWBUS_TASK", "END")))
        self.assertEqual(fbrun.wait_gone(placed, 5), [])
        self.start_agent("x2", "w")
        with open(gate, "w"):
            pass
        res = fbrun.run(["resume", run_id, "--broker", self.broker.url], cwd="/", timeout=30)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        # QUICK finished: never again, and still done (killed after its done, it closed
        # cleanly: no Will over it). GATED's attempt 1 ended with its agent (cmd reports
        # the SIGTERM its command got), AFTER's (waiting for G) crashed: their retries
        # run on x2.
        self.assertEqual(self.runs(), ["QUICK", "GATED-1", "GATED-2", "AFTER"])
        self.assertEqual(self.started_on(run_id, "GATED"), ["x1", "x2"])
        self.assertEqual(self.started_on(run_id, "AFTER"), ["x1", "x2"])
        self.assertEqual(self.started_on(run_id, "QUICK"), ["x1"])
        self.assertEqual(self.recorder.states(run_id, "QUICK")[-1], "done")
        self.recorder.wait_state(run_id, "END", "done")
        self.assert_no_task_left(run_id)

    def test_resume_takes_a_placed_task_of_an_agent_gone_offline_for_crashed(self):
        # A hung or cut-off host: its agent and tasks say nothing (frozen here),
        # and the broker fires the agent's Will (published here as it would).
        # The task's own state is still "running": resume must not adopt it.
        self.start_agent("z1", "w")
        run_id = rid("resume-offline")
        gate = os.path.join(self.dir, "gate")
        self.start_and_lose(run_id, gate)
        agent = self.agents["z1"]
        frozen = [p["pid"] for t in ("GATED", "AFTER") for p in self.placements(run_id, t)
                  if p["state"] == "started"]
        os.kill(agent.pid, signal.SIGSTOP)
        for pid in frozen:
            os.killpg(pid, signal.SIGSTOP)
        try:
            record = self.recorder.on_topic(self.agent_topic("z1"))[-1].json()
            record["state"] = "offline"
            self.recorder.publish(self.agent_topic("z1"), json.dumps(record).encode(), retain=True)
            self.start_agent("z2", "w")
            with open(gate, "w"):
                pass
            res = fbrun.run(["resume", run_id, "--broker", self.broker.url], cwd="/", timeout=30)
            self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
            self.assertIn("1 finished, 1 adopted, 2 lost, 0 started", res.stdout)
        finally:
            for pid in frozen:
                os.killpg(pid, signal.SIGKILL)
            self.stop_agent(agent, signal.SIGKILL)
        crashed = [e.json() for e in self.recorder.on_topic(fbtest.state_topic(run_id, "GATED"))
                   if e.payload and e.json().get("state") == "crashed"]
        self.assertTrue(crashed and crashed[0]["attempt"] == 1, crashed)
        self.assertIn("agent z1", crashed[0]["error"])
        self.assertIn("went offline while the run had no coordinator", crashed[0]["error"])
        self.assertEqual(self.runs(), ["QUICK", "GATED-1", "GATED-2", "AFTER"])
        self.assertEqual(self.started_on(run_id, "GATED"), ["z1", "z2"])
        self.recorder.wait_state(run_id, "END", "done")

    def test_resume_does_not_rerun_a_placed_task_that_finished_meanwhile(self):
        self.start_agent("y1", "w")
        run_id = rid("resume-done")
        gate = os.path.join(self.dir, "gate")
        self.start_and_lose(run_id, gate)
        with open(gate, "w"):
            pass
        # GATED ends while the run has no coordinator; AFTER is started on the resume.
        self.recorder.wait_state(run_id, "GATED", "done", 15)
        res = fbrun.run(["resume", run_id, "--broker", self.broker.url], cwd="/", timeout=30)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertEqual(self.runs(), ["QUICK", "GATED-1", "AFTER"])
        self.assertEqual(len([p for p in self.placements(run_id, "GATED")
                              if p["state"] == "started"]), 1)
        self.assert_no_task_left(run_id)


class TestSecrets(AgentTestCase):
    SECRET = "s3cr3t-Agent-Value-91"

    def test_secrets_come_from_the_agent_never_the_bus(self):
        secrets = os.path.join(self.dir, "agent.secrets")
        with open(secrets, "w") as f:
            f.write("# the agent's own\nAPI_KEY=%s\n" % self.SECRET)
        os.chmod(secrets, stat.S_IRUSR | stat.S_IWUSR)
        self.start_agent("sec1", "vault", ["--secrets", secrets])
        self.start_agent("nosec", "bare")
        run_id = rid("secrets")
        path = self.workflow("""workflow:
  name: secrets
  env:
    API_KEY: {value: "{{ENV:FLOWBUS_TEST_API_KEY}}", secret: true}
    OTHER: {value: "{{ENV:FLOWBUS_TEST_API_KEY}}", secret: true}
  tasks:
    - name: USE
      plugin: cmd
      runs_on: vault
      inputs: [API_KEY]
      outputs: [LEN]
      params:
        command: |
          echo "the key is $API_KEY"
          echo "LEN=${#API_KEY}"
    - name: LACK
      plugin: cmd
      runs_on: bare
      inputs: [OTHER]
      params: {command: 'echo "$OTHER"'}
""")
        # The coordinator's own value differs: the agent's is the one the task gets.
        env = fbrun.clean_env({"FLOWBUS_TEST_API_KEY": "coordinator-side-value-77"})
        res = fbrun.run(["run", path, "--broker", self.broker.url, "--run-id", run_id, "-q"],
                        cwd=self.dir, env=env, timeout=30)
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.recorder.wait_state(run_id, "USE", "done", 5)
        self.assertEqual(self.recorder.on_topic(fbtest.var_topic(run_id, "LEN"))[-1].payload,
                         str(len(self.SECRET)).encode())
        _, lack = self.recorder.wait_state(run_id, "LACK", "failed", 5)
        self.assertIn("agent nosec does not hold the secret OTHER", lack["error"])
        for e in self.recorder.events:
            for value in (self.SECRET, "coordinator-side-value-77"):
                self.assertNotIn(value.encode(), e.payload, "secret on %s" % e.topic)

    def test_secrets_file_readable_by_others_is_refused(self):
        secrets = os.path.join(self.dir, "open.secrets")
        with open(secrets, "w") as f:
            f.write("API_KEY=x\n")
        os.chmod(secrets, 0o644)
        res = fbrun.run(["agent", "--broker", self.broker.url, "--secrets", secrets],
                        timeout=10)
        self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
        self.assertIn("readable or writable by others", res.stderr)


class TestAcl(AgentTestCase):
    """broker-config/acl.example as it is: each agent its own user, confined to its
    record, its inbox and the runs' topics its tasks use; the test's recorder reads
    as an anonymous client (a general rule put before the example's users)."""

    def setUp(self):
        self.pwdir = tempfile.mkdtemp(prefix="fbtest-acl-")
        self.addCleanup(shutil.rmtree, self.pwdir, ignore_errors=True)
        os.chmod(self.pwdir, 0o755)
        self.passwords = {u: "pw-%s-%d" % (u, os.getpid()) for u in ("coordinator", "dev1", "dev2")}
        pwfile = os.path.join(self.pwdir, "passwd")
        with open(pwfile, "w") as f:
            f.write("".join("%s:%s\n" % kv for kv in self.passwords.items()))
        subprocess.run(["mosquitto_passwd", "-U", pwfile], check=True, timeout=10)
        acl = os.path.join(self.pwdir, "acl")
        with open(os.path.join(fbrun.SOURCE, "broker-config", "acl.example")) as f:
            example = f.read()
        with open(acl, "w") as f:
            f.write("topic read flowbus/#\n" + example)
        for path in (pwfile, acl):
            os.chmod(path, 0o600)
            if os.getuid() == 0:
                try:
                    user = pwd.getpwnam("mosquitto")
                    os.chown(path, user.pw_uid, user.pw_gid)
                except KeyError:
                    pass
        self.broker_conf = "password_file %s\nacl_file %s\n" % (pwfile, acl)
        super().setUp()

    def env_of(self, user):
        return {"FLOWBUS_USERNAME": user, "FLOWBUS_PASSWORD": self.passwords[user]}

    def test_agents_confined_by_the_example_acl(self):
        self.broker.stop()
        self.broker = fbtest.Broker(extra_conf=self.broker_conf)
        self.addCleanup(self.broker.cleanup)
        self.recorder.close()
        self.recorder = fbtest.Recorder(self.broker)
        self.addCleanup(self.recorder.close)
        self.start_agent("dev1", "device,room1", env=self.env_of("dev1"))
        self.start_agent("dev2", "hub,device,room2", env=self.env_of("dev2"))
        run_id = rid("acl")
        res = fbrun.run(["run", self.workflow(SPLIT_JOIN), "--broker", self.broker.url,
                         "--run-id", run_id, "-q"], cwd=self.dir,
                        env=fbrun.clean_env(dict(self.env_of("coordinator"),
                                                 FLOWBUS_TASK_IDENTITIES="shared")),
                        timeout=30)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertEqual(self.started_on(run_id, "READ"), ["dev1"])
        # dev2 may not write dev1's record nor read dev1's inbox.
        env = fbrun.clean_env()
        forged = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.broker.port),
                                 "-u", "dev2", "-P", self.passwords["dev2"], "-q", "1", "-r",
                                 "-t", "flowbus/agents/dev1", "-m", "{}"],
                                capture_output=True, timeout=10, env=env)
        # A publish dev2 may make, after the forged one: once it is here, the other was handled.
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.broker.port),
                        "-u", "dev2", "-P", self.passwords["dev2"], "-q", "1",
                        "-t", "flowbus/%s/vars/ACL_CHECK" % run_id, "-m", "1"],
                       check=True, capture_output=True, timeout=10, env=env)
        self.assertTrue(self.recorder.wait_for(lambda events: any(
            e.topic == "flowbus/%s/vars/ACL_CHECK" % run_id for e in events), 5))
        last = self.recorder.on_topic("flowbus/agents/dev1")[-1]
        self.assertEqual(last.json()["name"], "dev1", forged)
        self.assertEqual(last.json()["state"], "online")


class TestAgentCli(AgentTestCase):
    def test_usage_errors(self):
        for args, text in ((["agent"], "needs a broker"),
                           (["agent", "--broker", self.broker.url, "--labels", "a,b c"],
                            "is not a valid label"),
                           (["agent", "--broker", self.broker.url, "--max-tasks", "0"],
                            "--max-tasks expects"),
                           (["agent", "--broker", self.broker.url, "--name", "-x"],
                            "is not a valid agent name"),
                           (["agents", "extra"], "takes no arguments")):
            res = fbrun.run(args, timeout=10)
            self.assertEqual(res.returncode, 2, (args, res.stdout, res.stderr))
            self.assertIn(text, res.stderr, args)

    def test_no_agents(self):
        res = fbrun.run(["agents", "--broker", self.broker.url])
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("no agent on", res.stdout)


if __name__ == "__main__":
    unittest.main()
