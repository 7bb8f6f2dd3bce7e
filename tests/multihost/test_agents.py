"""test_agents - issue 13's faults with `flowbus agent` on namespaced hosts.

Written against the agent's specified interface, so they run as soon as it
exists (and are skipped, "needs flowbus agent", until then):
  - `flowbus agent --broker URL --name NAME --labels a,b` on each host;
  - its retained announcement on flowbus/agents/<name>, JSON with "state"
    "online", and a Last Will that makes it "offline";
  - `runs_on: [LABEL]` on a task places it on an agent with that label;
  - `flowbus status RUN --json` names each task's agent.
The faults are issue 13's: host loss (kill -9 of an agent's host), a 10 s
partition of a bridged edge, an agent restart and a stale announcement,
Ctrl-C of the coordinator.
Which host really ran a task is read from the kernel, not from flowbus: the
task processes carry FLOWBUS_RUN_ID and FLOWBUS_TASK in their environment,
and each process belongs to exactly one namespace (netns.Net.pids).
"""

import json
import os
import signal
import subprocess
import time
import unittest

import netns


def flowbus():
    return netns._flowbus()


def agent_skip_reason():
    reason = netns.skip_reason()
    if reason:
        return reason
    try:
        proc = subprocess.run([flowbus(), "agent", "--help"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"needs flowbus agent ({e})"
    return None if proc.returncode == 0 else "needs flowbus agent (`flowbus agent --help` failed)"


def clean_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWBUS_")}
    env.pop("AUTH_TOKEN", None)
    return env


def task_processes(net, host, run_id, task=None):
    """PIDs in host's namespace of the run's task processes (of one task if named)."""
    env = {"FLOWBUS_RUN_ID": run_id}
    if task is not None:
        env["FLOWBUS_TASK"] = task
    return net.processes_with_env(host, **env)


def wait_until(fn, timeout, what):
    """Polls fn() (the kernel has no event for "a process started") until truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.02)


def states(rec, run_id, task):
    return [e.json() for e in rec.on_topic(f"flowbus/{run_id}/tasks/{task}/state") if e.payload]


class AgentTestCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        reason = agent_skip_reason()
        if reason:
            raise unittest.SkipTest(reason)

    def make_net(self, hosts):
        net = netns.Net(hosts)
        self.addCleanup(net.close)
        self.net = net
        return net

    def workflow(self, text):
        path = os.path.join(self.net.dir, "wf.yaml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def wait_online(self, rec, *names, timeout=20):
        for name in names:
            topic = f"flowbus/agents/{name}"
            ok = rec.wait_for(lambda ev: any(e.topic == topic and e.payload and
                                             e.json().get("state") == "online" for e in ev), timeout)
            self.assertTrue(ok, f"agent {name} never announced itself online:\n"
                                f"{self.net.log('agent-' + name)}")

    def start_run(self, hub, wf, run_id):
        return self.net.spawn("hub", [flowbus(), "run", wf, "--broker", hub.url, "--run-id", run_id,
                                      "--task-identities", "shared", "--timeout", "120"],
                              env=clean_env(), label="flowbus-run")

    def status(self, hub, run_id):
        out = self.net.run("hub", [flowbus(), "status", run_id, "--broker", hub.url, "--json"],
                           env=clean_env()).stdout
        return {t["name"]: t for t in json.loads(out)["tasks"]}


HOST_LOSS = """\
workflow:
  name: host loss
  tasks:
    - name: START
      plugin: start
      outputs: [GO]
    - name: FIRST
      plugin: cmd
      runs_on: [dev]
      inputs: [GO]
      outputs: [A]
      params: {command: 'echo A=first'}
    - name: SLOW
      plugin: cmd
      runs_on: [dev]
      inputs: [A]
      outputs: [B]
      params:
        command: |
          if [ "$FLOWBUS_ATTEMPT" = 1 ]; then sleep 600; fi
          echo B=survived
      execution: {retries: 1, retry_delay: 0.1}
    - name: END
      plugin: end
      inputs: [B]
"""


class HostLoss(AgentTestCase):
    def test_kill_9_of_an_agent_host_moves_its_task_and_reruns_nothing_finished(self):
        net = self.make_net(["hub", "dev1", "dev2"])
        hub = net.start_hub("hub")
        rec = net.client("hub")
        # One broker for all hosts: the agents connect to the hub's.
        for host in ("dev1", "dev2"):
            net.start_agent(host, f"a-{host}", ["dev"], broker_url=hub.url)
        self.wait_online(rec, "a-dev1", "a-dev2")
        run_id = f"loss-{net.token}"
        run = self.start_run(hub, self.workflow(HOST_LOSS), run_id)
        # SLOW's process starts at once and waits for A: the host dies only once
        # SLOW says it runs (FIRST is done then). Killing on the process alone
        # could take FIRST with it, mid-run, on the same agent: a crash with no
        # retries, exit 1 by design (what made this test fail ~2 runs in 100).
        self.assertTrue(rec.wait_for(lambda ev: any(
            s.get("state") == "running" and s.get("attempt") == 1
            for s in states(rec, run_id, "SLOW")) and "done" in [
            s.get("state") for s in states(rec, run_id, "FIRST")], 30),
            f"SLOW never ran after FIRST: {states(rec, run_id, 'SLOW')}\n"
            f"{states(rec, run_id, 'FIRST')}\n{net.log('flowbus-run')}")
        victim = wait_until(lambda: next((h for h in ("dev1", "dev2")
                                          if task_processes(net, h, run_id, "SLOW")), None),
                            30, "SLOW running on an agent")
        other = "dev2" if victim == "dev1" else "dev1"
        # The host dies: every process in its namespace at once.
        t_kill = time.monotonic()
        self.assertTrue(net.kill_host(victim))
        # SIGKILL reaches the host's processes one by one: if the agent goes first, the
        # kernel's SIGTERM to its task (PR_SET_PDEATHSIG) reaches cmd, which may report
        # "failed" (its command killed by signal 15) before it dies; else a Will says
        # "crashed". Either ends attempt 1.
        crashed = rec.wait_for(lambda ev: next(
            (e for e in ev if e.topic == f"flowbus/{run_id}/tasks/SLOW/state" and e.payload
             and e.json().get("state") in ("crashed", "failed")
             and e.json().get("attempt") == 1), None), 10)
        self.assertTrue(crashed, f"SLOW's attempt 1 never ended: {states(rec, run_id, 'SLOW')}")
        self.assertLess(crashed.t - t_kill, 2.0, "the crash took more than 2 s to show")
        offline = rec.wait_for(lambda ev: any(
            e.topic == f"flowbus/agents/a-{victim}" and e.payload and
            e.json().get("state") == "offline" for e in ev), 10)
        self.assertTrue(offline, "the dead agent's Will never marked it offline")
        self.assertEqual(run.wait(60), 0, "%s\nSLOW: %s\nplacement: %s" % (
            net.log("flowbus-run"), states(rec, run_id, "SLOW"),
            [e.payload for e in rec.on_topic(f"flowbus/{run_id}/tasks/SLOW/placement")]))
        # Attempt 2 ran on the surviving host; FIRST, finished before, never again.
        slow = states(rec, run_id, "SLOW")
        self.assertIn(("done", 2), [(s.get("state"), s.get("attempt")) for s in slow])
        first = states(rec, run_id, "FIRST")
        self.assertEqual({s.get("attempt") for s in first}, {1}, first)
        tasks = self.status(hub, run_id)
        self.assertEqual(tasks["SLOW"]["state"], "done")
        self.assertIn(f"a-{other}", json.dumps(tasks["SLOW"]),
                      f"status does not name the agent that ran SLOW: {tasks['SLOW']}")


PARTITION = """\
workflow:
  name: partition
  tasks:
    - name: START
      plugin: start
      outputs: [GO]
    - name: EDGE
      plugin: cmd
      runs_on: [edge]
      inputs: [GO]
      outputs: [READING]
      params:
        command: |
          while [ ! -e "$GATE" ]; do sleep 0.05; done
          echo READING=42
    - name: HUB
      plugin: cmd
      inputs: [READING]
      outputs: [SEEN]
      params: {command: 'echo SEEN=$READING'}
    - name: END
      plugin: end
      inputs: [SEEN]
"""


class Partition(AgentTestCase):
    def test_a_bridged_edge_keeps_running_through_a_ten_second_partition(self):
        net = self.make_net(["hub", "edge1"])
        hub = net.start_hub("hub")
        edge = net.start_edge("edge1", hub)
        edge.wait_bridge()
        rec = net.client("hub")
        gate = os.path.join(net.dir, "gate")
        env = clean_env()
        env["GATE"] = gate  # the agent's environment reaches its tasks
        # The edge agent talks to its own broker; the bridge carries the rest.
        net.start_agent("edge1", "a-edge1", ["edge"], env=env)
        self.wait_online(rec, "a-edge1")
        run_id = f"part-{net.token}"
        wf = self.workflow(PARTITION.replace('"$GATE"', f'"{gate}"'))
        run = self.start_run(hub, wf, run_id)
        self.assertTrue(rec.wait_for(lambda ev: any(s.get("state") == "running"
                                                    for s in states(rec, run_id, "EDGE")), 30),
                        f"EDGE never ran: {net.log('flowbus-run')}")
        self.assertTrue(task_processes(net, "edge1", run_id, "EDGE"), "EDGE is not on the edge")
        with net.client("edge1", f"flowbus/{run_id}/#") as edge_view:
            net.cut("edge1")
            t_cut = time.monotonic()
            with open(gate, "w"):
                pass  # the edge task finishes while cut off
            done_on_edge = edge_view.wait_for(lambda ev: any(
                e.topic == f"flowbus/{run_id}/vars/READING" for e in ev), 8)
            self.assertTrue(done_on_edge, "the edge task stopped working during the partition")
            self.assertFalse(rec.on_topic(f"flowbus/{run_id}/vars/READING"),
                             "the hub saw the output through a cut link")
            left = 10.0 - (time.monotonic() - t_cut)
            if left > 0:
                time.sleep(left)  # the partition lasts 10 s in all: a duration, not a wait for an event
            net.heal("edge1")
        self.assertEqual(run.wait(60), 0, net.log("flowbus-run"))
        self.assertEqual([e.payload for e in rec.on_topic(f"flowbus/{run_id}/vars/SEEN")
                          if e.payload][:1], [b"42"])
        edge_states = states(rec, run_id, "EDGE")
        self.assertEqual({s.get("attempt") for s in edge_states}, {1}, edge_states)
        self.assertNotIn("crashed", [s.get("state") for s in edge_states])


CTRL_C = """\
workflow:
  name: ctrl-c
  tasks:
    - name: START
      plugin: start
      outputs: [GO]
    - name: ON1
      plugin: cmd
      runs_on: [one]
      inputs: [GO]
      outputs: [X]
      params: {command: 'sleep 600; echo X=1'}
    - name: ON2
      plugin: cmd
      runs_on: [two]
      inputs: [GO]
      outputs: [Y]
      params: {command: 'sleep 600; echo Y=1'}
    - name: END
      plugin: end
      inputs: [X, Y]
"""


class CtrlC(AgentTestCase):
    def test_ctrl_c_of_the_coordinator_leaves_no_task_on_any_host(self):
        net = self.make_net(["hub", "h1", "h2"])
        hub = net.start_hub("hub")
        rec = net.client("hub")
        agents = {"h1": net.start_agent("h1", "a-h1", ["one"], broker_url=hub.url),
                  "h2": net.start_agent("h2", "a-h2", ["two"], broker_url=hub.url)}
        self.wait_online(rec, "a-h1", "a-h2")
        run_id = f"intr-{net.token}"
        run = self.start_run(hub, self.workflow(CTRL_C), run_id)
        wait_until(lambda: task_processes(net, "h1", run_id, "ON1") and
                   task_processes(net, "h2", run_id, "ON2"), 30, "both remote tasks running")
        os.kill(run.pid, signal.SIGINT)  # `ip netns exec` exec'd: the pid is flowbus's
        self.assertEqual(run.wait(30), 130, net.log("flowbus-run"))
        for host in ("hub", "h1", "h2"):
            wait_until(lambda: not task_processes(net, host, run_id), 10,
                       f"no task process of the run left on {host}")
        for host, agent in agents.items():
            self.assertIsNone(agent.poll(), f"the agent on {host} died with the run")


ONE_TASK = """\
workflow:
  name: agent restart
  tasks:
    - name: START
      plugin: start
      outputs: [GO]
    - name: WORK
      plugin: cmd
      runs_on: [dev]
      inputs: [GO]
      outputs: [OUT]
      params:
        command: |
          if [ "$HANG" = yes ]; then sleep 600; fi
          echo OUT=done
    - name: END
      plugin: end
      inputs: [OUT]
"""


class AgentRestart(AgentTestCase):
    def test_a_restarted_agent_adopts_nothing_and_takes_new_work(self):
        net = self.make_net(["hub", "dev1"])
        hub = net.start_hub("hub")
        rec = net.client("hub")
        net.start_agent("dev1", "a-dev1", ["dev"], broker_url=hub.url)
        self.wait_online(rec, "a-dev1")
        old = f"old-{net.token}"
        wf = self.workflow(ONE_TASK.replace('"$HANG"', "yes"))
        run = self.start_run(hub, wf, old)
        wait_until(lambda: task_processes(net, "dev1", old, "WORK"), 30, "WORK running on dev1")
        self.assertTrue(net.kill_host("dev1"))
        self.assertEqual(run.wait(60), 1, net.log("flowbus-run"))  # crashed, no retries
        # The same agent comes back: it announces itself again and adopts nothing.
        n_before = len(rec.on_topic("flowbus/agents/a-dev1"))
        net.spawn("dev1", [flowbus(), "agent", "--broker", hub.url, "--name", "a-dev1",
                           "--labels", "dev"], env=clean_env(), label="agent-a-dev1-again")
        self.assertTrue(rec.wait_for(lambda ev: any(
            e.json().get("state") == "online"
            for e in rec.on_topic("flowbus/agents/a-dev1")[n_before:] if e.payload), 20),
            "the restarted agent did not announce itself")
        new = f"new-{net.token}"
        run = self.start_run(hub, self.workflow(ONE_TASK.replace('"$HANG"', "no")), new)
        self.assertEqual(run.wait(60), 0, net.log("flowbus-run"))
        self.assertEqual(task_processes(net, "dev1", old), [], "an old run's task came back")
        self.assertEqual({s.get("attempt") for s in states(rec, old, "WORK")}, {1})

    def test_a_stale_online_state_does_not_block_placement(self):
        net = self.make_net(["hub", "dev2"])
        hub = net.start_hub("hub")
        rec = net.client("hub")
        # An announcement left behind by an agent that is gone (its Will lost,
        # say, with a broker restarted from an old database): online, with the
        # label and the plugin, and nobody behind it.
        ghost = {"name": "ghost", "state": "online", "labels": ["dev"], "host": "nowhere",
                 "plugins": ["cmd", "start", "end"], "running": 0, "capacity": 4,
                 "version": "0"}
        rec.publish("flowbus/agents/ghost", json.dumps(ghost).encode(), retain=True)
        net.start_agent("dev2", "a-dev2", ["dev"], broker_url=hub.url)
        self.wait_online(rec, "a-dev2")
        run_id = f"stale-{net.token}"
        run = self.start_run(hub, self.workflow(ONE_TASK.replace('"$HANG"', "no")), run_id)
        self.assertEqual(run.wait(60), 0, net.log("flowbus-run"))
        self.assertIn("a-dev2", json.dumps(self.status(hub, run_id)["WORK"]))


if __name__ == "__main__":
    unittest.main()
