"""test_fabric - the multi-host fabric of issue 13, without agents.

Hosts are network namespaces (tests/harness/netns.py): a hub with its
mosquitto, edges with a mosquitto bridged to it by
broker-config/bridge-edge.conf. These tests prove what the agents will stand
on: the namespaces are isolated and always removed; retained state, QoS 1
messages and Last Wills cross the bridge both ways; a 10 s partition loses
nothing and reorders nothing; and a real `flowbus run` on the hub takes an
input published on an edge and hands its decision back there.

Skipped, with the reason, where network namespaces are not permitted.
"""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest

import netns

PY = "/usr/bin/python3"


def alive(pid):
    """True if pid runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(fn, timeout, what):
    """Polls fn() (no event exists for "a namespace has a process") until truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.01)


def setUpModule():
    reason = netns.skip_reason()
    if reason:
        raise unittest.SkipTest(reason)


class Boom(Exception):
    pass


class Isolation(unittest.TestCase):
    def test_hosts_reach_each_other_and_nothing_else(self):
        with netns.Net(["hub", "edge1", "edge2"]) as net:
            hub = net.start_hub("hub")
            for name in ("edge1", "edge2"):
                self.assertIs(net.can_connect(name, hub.host.addr, 1883), True,
                              f"{name} cannot reach the hub's broker")
                routes = net.run(name, ["ip", "route", "show"]).stdout
                self.assertNotIn("default", routes, f"{name} has a default route: {routes}")
                # No route out: connecting to a documentation address fails at
                # once with "network unreachable", nothing leaves the namespace.
                err = net.can_connect(name, "192.0.2.1", 80)
                self.assertIsInstance(err, OSError)
                self.assertEqual(err.errno, 101, err)  # ENETUNREACH
            # Nothing of ours in the root namespace: no address, no interface.
            root = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
            self.assertNotIn(netns.SUBNET + ".", root)
            links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
            self.assertNotIn(net.prefix, links)

    def test_everything_is_removed_even_when_the_body_raises(self):
        with self.assertRaises(Boom):
            with netns.Net(["a", "b"]) as net:
                names = net.namespaces()
                token, directory = net.token, net.dir
                net.spawn("a", ["sleep", "600"])
                # A process that leaves its session and group (as a task does):
                # killing the group alone would miss it.
                net.spawn("b", ["setsid", "-f", "sleep", "601"])
                pids = wait_until(lambda: len(net.pids("a")) == 1 and len(net.pids("b")) == 1
                                  and net.pids("a") + net.pids("b"), 5, "both sleeps running")
                hub = net.start_hub("a")
                pids.append(hub.proc.pid)
                self.assertEqual(sorted(netns.list_namespaces(net.prefix)), sorted(names))
                raise Boom()
        self.assertEqual(netns.list_namespaces(f"{netns.PREFIX}-{token}-"), [])
        left = [p for p in pids if alive(p)]
        self.assertEqual(left, [], "processes outlived their namespaces")
        self.assertFalse(os.path.exists(os.path.join(netns.OWNERS, token)))
        # A failed body keeps its logs for the reader; a clean one does not.
        self.assertTrue(os.path.isdir(directory))
        shutil.rmtree(directory)

    def test_a_net_left_open_is_removed_at_exit(self):
        child = textwrap.dedent("""
            import sys
            sys.path.insert(0, sys.argv[1])
            import netns
            net = netns.Net(["x"])             # never closed: the atexit hook must
            net.spawn("x", ["sleep", "603"])
            print(net.prefix, flush=True)
            sys.exit(3)
        """)
        proc = subprocess.run([PY, "-c", child, os.path.dirname(netns.__file__)],
                              capture_output=True, text=True, timeout=30)
        self.assertEqual(proc.returncode, 3, proc.stderr)
        self.assertEqual(netns.list_namespaces(proc.stdout.strip() + "-"), [])

    def test_a_killed_runs_leftovers_are_swept_and_a_live_run_is_not(self):
        child = textwrap.dedent("""
            import os, signal, sys, time
            sys.path.insert(0, sys.argv[1])
            import netns
            net = netns.Net(["x", "y"])
            net.spawn("x", ["setsid", "-f", "sleep", "602"])
            # Only the detached sleep: setsid's own first process exits once it
            # has forked, and reading it too made the test see a dead pid.
            def sleeps():
                found = []
                for pid in net.pids("x"):
                    try:
                        with open(f"/proc/{pid}/comm") as f:
                            if f.read().strip() == "sleep":
                                found.append(pid)
                    except OSError:
                        pass
                return found
            deadline = time.monotonic() + 5
            while not sleeps() and time.monotonic() < deadline:
                time.sleep(0.01)
            print(net.prefix, *sleeps(), flush=True)
            os.kill(os.getpid(), signal.SIGKILL)   # no atexit, no __exit__
        """)
        with netns.Net(["live"]) as mine:
            proc = subprocess.run([PY, "-c", child, os.path.dirname(netns.__file__)],
                                  capture_output=True, text=True, timeout=30)
            self.assertEqual(proc.returncode, -signal.SIGKILL, proc.stderr)
            prefix, *pids = proc.stdout.split()
            pids = [int(p) for p in pids]
            self.assertTrue(pids and all(alive(p) for p in pids), proc.stdout)
            self.assertEqual(len(netns.list_namespaces(prefix + "-")), 3)  # x, y, switch
            removed = netns.sweep()
            self.assertEqual(sorted(removed), sorted(f"{prefix}-{n}" for n in ("sw", "x", "y")))
            self.assertEqual(netns.list_namespaces(prefix + "-"), [])
            self.assertEqual([p for p in pids if alive(p)], [])
            self.assertEqual(glob.glob(os.path.join(tempfile.gettempdir(), prefix + "-*")), [])
            # The sweep left the live run alone.
            self.assertEqual(sorted(netns.list_namespaces(mine.prefix)), sorted(mine.namespaces()))


class Bridge(unittest.TestCase):
    """An edge broker bridged to the hub by the shipped template."""

    def setUp(self):
        self.net = netns.Net(["hub", "edge1"])
        self.addCleanup(self.net.close)
        self.hub = self.net.start_hub("hub")
        self.edge = self.net.start_edge("edge1", self.hub)
        self.edge.wait_bridge()

    def test_retained_state_and_qos1_cross_both_ways(self):
        net = self.net
        with net.client("hub") as hub_live, net.client("edge1") as edge_live:
            with net.client("edge1", "none") as e:
                e.publish("flowbus/r1/tasks/T/state", b'{"state":"done","exit":0}', retain=True)
                e.publish("flowbus/r1/log/T", b"line", qos=1)
            with net.client("hub", "none") as h:
                h.publish("flowbus/r1/vars/X", b"42", retain=True)
                h.publish("flowbus/r1/control", b'{"cmd":"stop"}', qos=1)
            # Live subscribers on either side get both sides' messages.
            for side, rec in (("hub", hub_live), ("edge", edge_live)):
                got = rec.wait_for(lambda ev: {e.topic for e in ev} >= {
                    "flowbus/r1/tasks/T/state", "flowbus/r1/log/T",
                    "flowbus/r1/vars/X", "flowbus/r1/control"}, 10)
                self.assertTrue(got, f"{side} saw only {rec.events}")
        # A late subscriber on either side finds both retained messages, as
        # retained messages: each broker stored the other's.
        for side in ("hub", "edge1"):
            with net.client(side) as late:
                ev = late.wait_for(lambda ev: len(ev) >= 2 and ev, 10)
                self.assertTrue(ev, f"{side}: late subscriber saw {late.events}")
                self.assertEqual({(e.topic, e.payload, e.retained) for e in late.events},
                                 {("flowbus/r1/tasks/T/state", b'{"state":"done","exit":0}', True),
                                  ("flowbus/r1/vars/X", b"42", True)})

    def test_a_last_will_on_the_edge_reaches_the_hub(self):
        will = {"topic": "flowbus/agents/e1", "payload": b'{"state":"offline"}'}
        with self.net.client("hub", "flowbus/agents/#") as hub:
            script = textwrap.dedent("""
                import os, sys, time
                import paho.mqtt.client as mqtt
                c = mqtt.Client(client_id="will-e1", protocol=mqtt.MQTTv5)
                c.will_set("flowbus/agents/e1", b'{"state":"offline"}', qos=1, retain=True)
                c.connect("127.0.0.1", 1883)
                c.loop_start()
                c.publish("flowbus/agents/e1", b'{"state":"online"}', qos=1, retain=True).wait_for_publish(5)
                print("online", flush=True)
                time.sleep(600)
            """)
            proc = self.net.spawn("edge1", [PY, "-c", script], stdout=subprocess.PIPE)
            self.assertEqual(proc.stdout.readline().strip(), b"online")
            self.assertTrue(hub.wait_for(lambda ev: ev and ev[-1].payload == b'{"state":"online"}', 10))
            proc.kill()
            self.assertTrue(hub.wait_for(lambda ev: ev[-1].payload == will["payload"], 10),
                            f"the Will did not cross the bridge: {hub.events}")
        with self.net.client("hub", "flowbus/agents/#") as late:
            self.assertTrue(late.wait_for(lambda ev: ev and ev[-1].payload == will["payload"]
                                          and ev[-1].retained, 10), late.events)

    def test_message_expiry_holds_on_the_edge_but_not_across_a_311_bridge(self):
        # What docs/distributed.md says: the template's MQTT 3.1.1 bridge does
        # not carry the v5 message expiry, so the hub keeps a retained message
        # that expired on the edge (flowbus's own end-of-run expiry included).
        with self.net.client("edge1", "none") as e:
            e.publish("flowbus/r2/vars/V", b"soon gone", retain=True, expiry=1)
        with self.net.client("hub", "flowbus/r2/#") as h:
            self.assertTrue(h.wait_for(lambda ev: ev, 10))
            self.assertIsNone(h.events[0].expiry)
        # Poll the edge until it forgot the message (expiry is a broker timer).
        def edge_forgot():
            with self.net.client("edge1", "flowbus/r2/#") as late:
                return not late.wait_for(lambda ev: ev, 0.3)
        wait_until(edge_forgot, 10, "the edge dropping its expired message")
        with self.net.client("hub", "flowbus/r2/#") as late:
            self.assertTrue(late.wait_for(lambda ev: ev and ev[0].payload == b"soon gone", 5),
                            "the hub dropped it too: the bridge now carries expiry; "
                            "update docs/distributed.md")


class Partition(unittest.TestCase):
    """The edge<->hub link cut for 10 s while both sides publish."""

    RATE = 20        # messages a second each way
    BEFORE, CUT, AFTER = 2.0, 10.0, 2.0

    def test_a_ten_second_partition_loses_nothing_and_keeps_order(self):
        with netns.Net(["hub", "edge1"]) as net:
            hub = net.start_hub("hub")
            edge = net.start_edge("edge1", hub)
            edge.wait_bridge()
            bridge = net.client("edge1", f"$SYS/broker/connection/{edge.bridge_id}/state")
            up = net.client("hub", "flowbus/p/up")        # edge -> hub
            down = net.client("edge1", "flowbus/p/down")  # hub -> edge
            pub_edge = net.client("edge1", "none")
            pub_hub = net.client("hub", "none")
            total = int(self.RATE * (self.BEFORE + self.CUT + self.AFTER))
            stop = threading.Event()
            errors = []

            def publish(client, topic):
                try:
                    for i in range(total):
                        client.publish(topic, str(i).encode(), qos=1)  # PUBACK from its own broker
                        stop.wait(1.0 / self.RATE)                     # pacing, not synchronising
                except Exception as e:  # reported by the test thread
                    errors.append(e)

            threads = [threading.Thread(target=publish, args=(pub_edge, "flowbus/p/up")),
                       threading.Thread(target=publish, args=(pub_hub, "flowbus/p/down"))]
            t0 = time.monotonic()
            for t in threads:
                t.start()
            self.assertTrue(up.wait_for(lambda ev: len(ev) >= self.RATE * self.BEFORE * 0.8, 10))
            net.cut("edge1")
            t_cut = time.monotonic()
            stop.wait(self.CUT)
            net.heal("edge1")
            t_heal = time.monotonic()
            for t in threads:
                t.join(60)
            self.assertEqual(errors, [])
            report = []
            for name, rec in (("edge->hub", up), ("hub->edge", down)):
                ok = rec.wait_for(lambda ev: len({e.payload for e in ev}) >= total, 60)
                seq = [int(e.payload) for e in rec.events]
                first, seen = [], set()
                for s in seq:
                    if s not in seen:
                        seen.add(s)
                        first.append(s)
                self.assertTrue(ok, f"{name}: lost {sorted(set(range(total)) - seen)}")
                self.assertEqual(first, list(range(total)), f"{name}: out of order")
                # The cut was real: nothing crossed while the link was down
                # (a message in flight at the cut may land just after it).
                during = [e for e in rec.events if t_cut + 0.5 < e.t < t_heal]
                self.assertEqual(during, [], f"{name}: messages crossed a cut link")
                resumed = min(e.t for e in rec.events if e.t >= t_heal) - t_heal
                caught_up = rec.events[-1].t - t_heal
                report.append(f"{name}: {total} sent, {len(seq)} received, "
                              f"{len(seq) - len(seen)} duplicates; first after heal "
                              f"{resumed:.1f} s, all in {caught_up:.1f} s")
            # The bridge's notifications: "1" at every (re)connect; with a cut
            # longer than 1.5 keepalives it dropped the link and came back.
            ups = [round(e.t - t_heal, 1) for e in bridge.events if e.payload == b"1" and e.t > t_cut]
            sys.stderr.write("\n  partition of %.0f s at %.1f s: %s; bridge reconnected %s s after heal\n"
                             % (t_heal - t_cut, t_cut - t0, "; ".join(report), ups))


WORKFLOW = """\
# A sensor on the edge, a decision on the hub, the decision back on the edge.
workflow:
  name: cross-namespace
  tasks:
    - name: SENSOR
      plugin: mqtt-in
      outputs: [TEMP]
      params: {topic: "flowbus/fleet/edge1/temp"}
    - name: DECIDE
      plugin: cmd
      inputs: [TEMP]
      outputs: [ACTION]
      params: {command: 'if [ "$TEMP" -gt 30 ]; then echo ACTION=cool; else echo ACTION=idle; fi'}
    - name: END
      plugin: end
      inputs: [ACTION]
"""


class CrossNamespaceRun(unittest.TestCase):
    def test_a_run_on_the_hub_takes_an_edge_input_through_the_bridge(self):
        flowbus = netns._flowbus()
        with netns.Net(["hub", "edge1"]) as net:
            hub = net.start_hub("hub")
            edge = net.start_edge("edge1", hub)
            edge.wait_bridge()
            wf = os.path.join(net.dir, "cross.yaml")
            with open(wf, "w") as f:
                f.write(WORKFLOW)
            run_id = f"xns-{net.token}"
            env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWBUS_")}
            env.pop("AUTH_TOKEN", None)
            with net.client("edge1", f"flowbus/{run_id}/#") as edge_view:
                run = net.spawn("hub", [flowbus, "run", wf, "--broker", hub.url, "--run-id", run_id,
                                        "--task-identities", "shared", "--timeout", "60"],
                                env=env, label="flowbus-run")
                # The edge sees, through the bridge, the hub's SENSOR listening:
                # mqtt-in logs it once its own subscription is acknowledged
                # (its "waiting" comes earlier, and a reading published then
                # would be lost: it is not retained).
                log = f"flowbus/{run_id}/tasks/SENSOR/log"
                self.assertTrue(edge_view.wait_for(
                    lambda ev: any(e.topic == log and b"listening on" in e.payload for e in ev), 30),
                    f"the edge never saw SENSOR listening: {edge_view.events}")
                net.run("edge1", ["mosquitto_pub", "-h", "127.0.0.1", "-p", "1883", "-q", "1",
                                  "-t", "flowbus/fleet/edge1/temp", "-m", "35"])
                action = f"flowbus/{run_id}/vars/ACTION"
                self.assertTrue(edge_view.wait_for(
                    lambda ev: any(e.topic == action and e.payload == b"cool" for e in ev), 30),
                    f"the decision did not come back to the edge: {edge_view.events}")
                self.assertEqual(run.wait(30), 0, net.log("flowbus-run"))
                # The edge followed the whole run: every task's final state crossed.
                for task in ("SENSOR", "DECIDE", "END"):
                    done = [e.json() for e in edge_view.on_topic(f"flowbus/{run_id}/tasks/{task}/state")
                            if e.payload and e.json().get("state") == "done"]
                    self.assertTrue(done, f"{task} not done on the edge's view")
            status = net.run("hub", [flowbus, "status", run_id, "--broker", hub.url, "--json"],
                             env=env).stdout
            self.assertIn("done", json.dumps(json.loads(status)))


if __name__ == "__main__":
    unittest.main()
