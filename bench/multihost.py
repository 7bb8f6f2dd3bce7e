"""multihost - issue 13's cross-host hop latency, for bench/driver.py.

One broker round trip (fbbench-rtt: ping, echo, pong; one hop is RTT/2) on
namespaced hosts (tests/harness/netns.py), all in the same invocation, so
each figure has its same-host reference beside it:

  one host        pinger, echo and broker in the hub's namespace (loopback)
  one broker      pinger on dev1, echo on dev2, broker on the hub: each hop
                  crosses two veth links and the switch
  one bridge      pinger on dev1's edge broker, echo on the hub's broker:
                  each hop goes client -> edge mosquitto -> bridge -> hub
                  mosquitto -> client (broker-config/bridge-edge.conf)
  two bridges     pinger on dev1's edge broker, echo on dev2's: edge ->
                  hub -> edge, the path between two devices of a fleet

Raw Paho (the floor a client library allows) and the SDK's fb_bus (what a
task pays). Skipped with the reason where network namespaces are not
permitted (not root, no CAP_NET_ADMIN).
"""

import ctypes
import os
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "harness"))

import netns  # noqa: E402


def measure(bench, error):
    """Adds the rows to bench (a driver.Bench); error: the driver's BenchError."""
    reason = netns.skip_reason()
    if reason:
        bench.note(f"cross-host hops skipped: {reason}")
        return
    # A bridge crossing costs ~20 ms (the bridge's own socket to the hub has
    # no TCP_NODELAY: docs/distributed.md), so bridged cases get fewer pings.
    n_direct, n_bridged = (100, 30) if bench.smoke else (2000, 300)
    rtt = os.path.join(bench.bin, "fbbench-rtt")
    shipped = {"FLOWBUS_PAHO_WAKE": "0"}  # raw Paho as Debian ships it (see driver.rtt)
    with netns.Net(["hub", "dev1", "dev2"]) as net:
        hub = net.start_hub("hub", quiet=True)
        edges = {h: net.start_edge(h, hub, extra_topics=["fbbench/#"], quiet=True)
                 for h in ("dev1", "dev2")}
        for e in edges.values():
            e.wait_bridge()

        def hop(mode, n, pinger, url, echo_ns=None, echo_url=None):
            env = dict(os.environ, **(shipped if mode == "paho" else {}))
            if echo_ns:
                env["FBBENCH_ECHO_NETNS"] = net.host(echo_ns).ns
            if echo_url:
                env["FBBENCH_ECHO_URL"] = echo_url
            for attempt in (1, 2):
                proc = net.run(pinger, [rtt, mode, url, n, 1], env=env, timeout=300, check=False)
                if proc.returncode == 0:
                    return kv(proc.stdout.strip().splitlines()[-1])
                bench.note(f"fbbench-rtt {mode} on {pinger} failed (attempt {attempt}): "
                           f"{proc.stderr.strip()[-300:]}")
            raise error(f"cross-host fbbench-rtt {mode} from {pinger} to {url} failed twice")

        local = netns.local_url()
        cases = [("one host (loopback, same namespace)", n_direct, "hub", local, None, None),
                 ("across hosts, one broker", n_direct, "dev1", hub.url, "dev2", None),
                 ("across hosts, through one bridge", n_bridged, "dev1", local, "hub", local),
                 ("across hosts, edge to edge (two bridges)", n_bridged, "dev1", local, "dev2", local)]
        # Smoke mode proves the path works: raw Paho only.
        modes = [("paho", "raw Paho")] + ([] if bench.smoke else [("sdk", "SDK fb_bus")])
        results = {mode: [(name, hop(mode, *args)) for name, *args in cases] for mode, _ in modes}
        # The diagnosis of the bridge's cost, last: the option stays on the
        # sockets, so every row above is measured without it. The same paths
        # once the edge brokers' own sockets to the hub have TCP_NODELAY.
        if all([bridge_nodelay(e.proc.pid) for e in edges.values()]):
            results["paho"].append(("through one bridge, TCP_NODELAY forced on the bridge socket",
                                    hop("paho", n_bridged, "dev1", local, "hub", local)))
            results["paho"].append(("edge to edge, TCP_NODELAY forced on both bridge sockets",
                                    hop("paho", n_bridged, "dev1", local, "dev2", local)))
        else:
            bench.note("could not reach the bridges' sockets (pidfd_getfd): no TCP_NODELAY diagnosis")
        for mode, label in modes:
            bench.raw[f"multihost_rtt_{mode}"] = dict(results[mode])
            ref = results[mode][0][1]
            for name, r in results[mode][1:]:
                for q in ("p50", "p99"):
                    bench.row(f"{label} hop {q}, {name} (n={r['n']:.0f})", r[f"hop_{q}_us"] / 1e3,
                              ref[f"hop_{q}_us"] / 1e3, "ms",
                              ref_label=f"same hop on one host, {q}")


def bridge_nodelay(pid, port=netns.MQTT_PORT):
    """Sets TCP_NODELAY on broker pid's outgoing sockets to port; True if any was found.

    mosquitto 2.0's set_tcp_nodelay covers the sockets it accepts, not the
    one its bridge opens to the hub (getsockopt on the live socket says 0).
    The socket is borrowed with pidfd_getfd(2) (Linux 5.6+, root); the option
    belongs to the socket, so it holds for mosquitto's descriptor too. Until
    the bridge reconnects: a new socket has it off again.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = libc.syscall(SYS_PIDFD_OPEN, pid, 0)
    if pidfd < 0:
        return False
    found = False
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if not os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                    continue
            except OSError:
                continue
            copy = libc.syscall(SYS_PIDFD_GETFD, pidfd, int(fd), 0)
            if copy < 0:
                continue
            s = socket.socket(fileno=copy)
            try:
                if s.type == socket.SOCK_STREAM and s.getpeername()[1] == port:
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    found = True
            except OSError:
                pass
            finally:
                s.close()
    finally:
        os.close(pidfd)
    return found


SYS_PIDFD_OPEN, SYS_PIDFD_GETFD = 434, 438  # the same on x86-64 and arm64


def kv(line):
    out = {}
    for item in line.split():
        k, _, v = item.partition("=")
        try:
            out[k] = float(v)
        except ValueError:
            out[k] = v
    return out
