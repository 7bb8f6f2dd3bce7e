"""multihost_place - issue 13's placement figures across namespaced hosts, for bench/driver.py.

Tasks placed with `runs_on:` on `flowbus agent`s in other namespaced hosts
(tests/harness/netns.py), next to the same tasks on the coordinator's host,
in the same invocation. The coordinator and the one broker are on the hub;
each agent is on a host of its own and, like its tasks, talks to the hub's
broker over its veth link and the switch (no bridge: a bridge crossing costs
~20 ms of Nagle, docs/distributed.md, which would hide what placement costs).

  ready -> running   a chain of cmd tasks (`depends_on` the one before).
                     A task is ready when the task it depends on publishes
                     `done`; it runs when it publishes `running`. Both are
                     the `at` of the tasks' own retained states, as a
                     recorder on the hub sees them (docs/protocol.md), so
                     nothing is added to the protocol. A placed task was
                     offered and started at the start of the run (all of a
                     run's processes are, core/run/launch.c) and waits for
                     its dependency on the agent's host: the step is the
                     dependency's `done` crossing to the hub and back, and
                     the task's wake.
  start -> running   the chain's first task, ready when the run starts: the
                     run state's `started` (the coordinator's clock) to the
                     task's `running`. For a placed task this holds the
                     offer, the agent's answer and its start of the process.
  makespan           a 200-task random DAG (bench/graphs.py, seed 42, as the
                     makespan bench) of /bin/true, its tasks assigned round
                     robin to three agents on three hosts by `runs_on`, vs
                     the same DAG on the coordinator's host.

Every host is a namespace of the same kernel, so the tasks' wall clocks are
one clock and timestamps of different hosts compare exactly (real hosts would
need synchronised clocks for the first figure). They also share the same two
CPUs: spreading work over three "hosts" adds no CPU, so the makespan ratio is
what placement costs, not what it could gain. Skipped with the reason where
network namespaces are not permitted; the harness removes every namespace and
process at the end, also on failure.
"""

import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "harness"))
sys.path.insert(0, HERE)

import graphs  # noqa: E402
import netns  # noqa: E402

AGENTS = {"dev1": "h1", "dev2": "h2", "dev3": "h3"}  # host (and agent name) -> its label


def measure(bench, error):
    """Adds the rows to bench (a driver.Bench); error: the driver's BenchError."""
    reason = netns.skip_reason()
    if reason:
        bench.note(f"cross-host placement skipped: {reason}")
        return
    n_chain, n_dag, runs = (20, 60, 1) if bench.smoke else (100, 200, 5)
    with netns.Net(["hub", *AGENTS]) as net:
        hub = net.start_hub("hub", quiet=True)
        with net.client("hub", topic="flowbus/agents/+") as rec:
            for host, label in AGENTS.items():
                net.start_agent(host, host, labels=[label], broker_url=hub.url,
                                flowbus=bench.flowbus, env=bench.env)
            for name in AGENTS:
                topic = f"flowbus/agents/{name}"
                if not rec.wait_for(lambda ev: any(e.topic == topic and e.payload and
                                                   e.json().get("state") == "online"
                                                   for e in ev), 20):
                    raise error(f"agent {name} did not come online:\n{net.log('agent-' + name)}")
        runner = Runner(bench, net, error)

        chain = graphs.chain(n_chain)
        far = {t: AGENTS["dev1"] for t, _ in chain}
        chains = {"local": bench.write("place-chain-local.yaml",
                                       graphs.workflow_yaml(chain, "chain local")),
                  "placed": bench.write("place-chain-placed.yaml",
                                        graphs.workflow_yaml(chain, "chain placed", runs_on=far))}
        steps = {k: [] for k in chains}
        firsts = {k: [] for k in chains}
        for _ in range(runs):
            for kind, wf in chains.items():  # interleaved: drifts of the machine hit both
                _, states, _, run_state = runner.run(wf, kind)
                done = {t: s for t, s in states.items() if s.get("done")}
                for (prev, _), (task, _) in zip(chain, chain[1:]):
                    steps[kind].append(states[task]["running"] - done[prev]["done"])
                firsts[kind].append(states[chain[0][0]]["running"] - run_state["started"])

        dag = graphs.random_dag(n_dag, seed=42)
        labels = list(AGENTS.values())
        spread = {t: labels[i % len(labels)] for i, (t, _) in enumerate(dag)}
        dags = {"local": bench.write("place-dag-local.yaml",
                                     graphs.workflow_yaml(dag, f"dag{n_dag} local")),
                "placed": bench.write("place-dag-placed.yaml",
                                      graphs.workflow_yaml(dag, f"dag{n_dag} placed",
                                                           runs_on=spread))}
        spans = {k: [] for k in dags}
        for _ in range(runs):
            for kind, wf in dags.items():
                span, _, agents, _ = runner.run(wf, f"dag-{kind}")
                if kind == "placed" and set(agents.values()) != set(AGENTS):
                    raise error(f"the spread DAG ran on agents {sorted(set(agents.values()))}")
                spans[kind].append(span)

    bench.raw["multihost_placement"] = dict(steps=steps, firsts=firsts, dag_makespans=spans)
    local, placed = sorted(steps["local"]), sorted(steps["placed"])
    for q, label in ((0.5, "p50"), (0.99, "p99")):
        bench.row(f"placed on another host: ready -> running {label} (dependency done -> task "
                  f"running, {len(placed)} steps of a {n_chain}-task chain)",
                  quantile(placed, q) * 1e3, quantile(local, q) * 1e3, "ms",
                  ref_label=f"same chain on the coordinator's host, {label}")
    bench.row(f"placed on another host: run start -> first task running (offer, agent's start; "
              f"median of {runs})", statistics.median(firsts["placed"]) * 1e3,
              statistics.median(firsts["local"]) * 1e3, "ms",
              ref_label="same task started by the coordinator")
    bench.row(f"{n_dag}-task DAG makespan, round robin over 3 agents on 3 hosts "
              f"(median of {runs})", statistics.median(spans["placed"]),
              statistics.median(spans["local"]), "s",
              ref_label="same DAG on the coordinator's host")


def quantile(xs, q):
    """The q-quantile of sorted xs (nearest rank)."""
    return xs[min(len(xs) - 1, max(0, int(q * len(xs) + 0.999999) - 1))]


class Runner:
    """Runs workflows with `flowbus run` on the hub, recording their states."""

    def __init__(self, bench, net, error):
        self.bench, self.net, self.error = bench, net, error
        self.count = 0

    def run(self, wf, kind):
        """One run of wf; returns (makespan s, {task: {state: at}}, {task: agent that
        started it}, the run's last state)."""
        self.count += 1
        run_id = f"place-{kind}-{os.getpid()}-{self.count}"
        argv = [self.bench.flowbus, "run", wf, "--broker", netns.local_url(), "--run-id", run_id,
                "--task-identities", "shared", "--timeout", "300", "-q"]
        with self.net.client("hub", topic=f"flowbus/{run_id}/#") as rec:
            t0 = time.monotonic()
            try:
                proc = self.net.run("hub", argv, env=self.bench.env, timeout=400, check=False)
            except subprocess.TimeoutExpired:
                raise self.error(f"{run_id} did not end within 400 s")
            span = time.monotonic() - t0
            if proc.returncode != 0:
                raise self.error(f"{run_id} exited {proc.returncode}: {proc.stderr[-1500:]}")
            # Every task's last state was published before the run ended; the
            # run state's `done` comes after them on the coordinator's connection.
            prefix = f"flowbus/{run_id}/"
            if not rec.wait_for(lambda ev: any(e.topic == prefix + "state" and e.payload and
                                               e.json().get("state") == "done" for e in ev), 30):
                raise self.error(f"{run_id}: its `done` run state never reached the recorder")
            states, agents, run_state = {}, {}, None
            for e in rec.events:
                if not e.payload:
                    continue
                if e.topic == prefix + "state":
                    run_state = e.json()
                elif e.topic.endswith("/state"):
                    s = e.json()
                    states.setdefault(e.topic[len(prefix):].split("/")[1], {})[s["state"]] = s["at"]
                elif e.topic.endswith("/placement") and e.json().get("state") == "started":
                    agents[e.topic[len(prefix):].split("/")[1]] = e.json().get("agent")
        # A placed run whose tasks did not all start on the agents measured nothing.
        if (kind.endswith("placed")) != bool(agents) or (agents and len(agents) != len(states)):
            raise self.error(f"{run_id}: {len(agents)} of {len(states)} tasks started by an agent")
        return span, states, agents, run_state
