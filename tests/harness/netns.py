"""netns - "hosts" as Linux network namespaces, for flowbus's multi-host tests.

A Net builds N hosts, each a network namespace with one veth link ("eth0",
10.213.0.<i+1>/24) to a switch namespace holding a Linux bridge. The hosts
see each other and nothing else: no default route, no NAT, nothing in the
root namespace (both ends of every veth are created directly inside the
namespaces, so no interface name can collide with the machine's or with a
concurrent run's). Inside a namespace the port space is private too, so every
broker listens on the standard 1883.

    import netns

    with netns.Net(["hub", "edge1", "edge2"]) as net:   # skips if not permitted
        hub = net.start_hub("hub")
        edge = net.start_edge("edge1", hub)              # broker-config/bridge-edge.conf
        edge.wait_bridge()                              # the bridge's own "1" notification
        with net.client("hub") as rec:                  # an MQTT v5 client in the hub
            net.run("edge1", ["mosquitto_pub", "-t", "flowbus/x", "-m", "1", "-q", "1"])
            rec.wait_for(lambda ev: ev)
        net.cut("edge1"); ...; net.heal("edge1")

Cleanup is guaranteed three ways: the context manager (also when the body
raises), an atexit hook (a test that forgets the with), and a sweep, run by
every new Net, of namespaces left by an earlier run that was killed (SIGKILL
from a CTest timeout runs no Python code). Every namespace carries the name
prefix "fbmh-<token>-" and the token's owner file under /run/flowbus-netns
records the owning process (pid and start time), so a sweep removes only the
namespaces of dead owners and never those of a concurrent live run. Removing a
namespace first kills every process in it (`ip netns pids`), whatever process
group it moved to, so no broker, agent or task outlives the run.

Processes started in a host run under `ip netns exec`, in their own session,
with their output in a log file of the Net's directory (printed by
dump_logs() when a test fails). An in-process MQTT client (NsClient) reaches a
namespace's broker by creating its socket on a thread that entered the
namespace with setns(2): a socket stays in the namespace it was made in.

The namespace primitives (names, owners, sweep, setns) are in netns_core.py,
the brokers' configs, NsBroker and NsClient in netns_mqtt.py.

When namespaces are not permitted (not root, no CAP_NET_ADMIN, a container
without them), skip_reason() says why and Net() raises unittest.SkipTest.
"""

import atexit
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import tempfile
import unittest

from netns_core import (BRIDGE_TEMPLATE, MQTT_PORT, OWNERS, PREFIX, SOURCE, SUBNET,
                        _in_netns, _ip, _remove_namespace, _starttime, list_namespaces,
                        local_url, namespace_pids, skip_reason, sweep)
from netns_mqtt import NsBroker, NsClient, edge_conf, hub_conf

__all__ = ["Net", "NsBroker", "NsClient", "skip_reason", "sweep", "list_namespaces",
           "namespace_pids", "local_url", "PREFIX", "SUBNET", "OWNERS", "MQTT_PORT",
           "BRIDGE_TEMPLATE"]

_live = set()          # Nets not yet closed, for the atexit hook


def _atexit():
    for net in list(_live):
        net.close()


atexit.register(_atexit)


def _alive(pid):
    """True while pid exists and is not a zombie (a killed child waiting for its reaper)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False

class Host:
    """One namespaced host: its name, namespace, address and switch-side port."""

    def __init__(self, net, name, index):
        self.net = net
        self.name = name
        self.index = index
        self.ns = f"{net.prefix}-{name}"
        self.addr = f"{SUBNET}.{index + 1}"
        self.port_name = f"p{index}"   # its veth's peer in the switch namespace

    def __repr__(self):
        return f"Host({self.name}, {self.addr})"


class Net:
    """N hosts as network namespaces on one switch; see the module's docstring.

    hosts: names (letters, digits, '-'; at most 20 characters). The first one
    is, by convention, the hub. Raises unittest.SkipTest when namespaces are
    not permitted here.
    """

    def __init__(self, hosts=("hub", "edge1", "edge2"), keep_dir_on_failure=True):
        reason = skip_reason()
        if reason:
            raise unittest.SkipTest(reason)
        sweep()
        self.token = secrets.token_hex(4)
        self.prefix = f"{PREFIX}-{self.token}"
        self.dir = tempfile.mkdtemp(prefix=f"{self.prefix}-")
        os.chmod(self.dir, 0o777)  # brokers started as root drop to the mosquitto user
        self.hosts = {}
        self.procs = []            # (label, Popen, log path)
        self.brokers = []
        self.clients = []
        self.closed = False
        self.keep_dir_on_failure = keep_dir_on_failure
        os.makedirs(OWNERS, exist_ok=True)
        # The owner file exists before any namespace does, so that a concurrent
        # sweep never takes a half-built Net for a dead one.
        with open(os.path.join(OWNERS, self.token), "w") as f:
            f.write(f"{os.getpid()} {_starttime(os.getpid())}\n")
        _live.add(self)
        try:
            self.switch = f"{self.prefix}-sw"
            _ip("netns", "add", self.switch)
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "br0", "up")
            for i, name in enumerate(hosts):
                if not re.fullmatch(r"[A-Za-z0-9-]{1,20}", name) or name == "sw":
                    raise ValueError(f"bad host name {name!r}")
                host = Host(self, name, i)
                _ip("netns", "add", host.ns)
                _ip("-n", host.ns, "link", "set", "lo", "up")
                _ip("link", "add", "eth0", "netns", host.ns, "type", "veth",
                    "peer", "name", host.port_name, "netns", self.switch)
                _ip("-n", self.switch, "link", "set", host.port_name, "master", "br0")
                _ip("-n", self.switch, "link", "set", host.port_name, "up")
                _ip("-n", host.ns, "addr", "add", f"{host.addr}/24", "dev", "eth0")
                _ip("-n", host.ns, "link", "set", "eth0", "up")
                self.hosts[name] = host
        except BaseException:
            self.close()
            raise

    # -- hosts ----------------------------------------------------------------

    def host(self, name):
        return name if isinstance(name, Host) else self.hosts[name]

    def addr(self, name):
        return self.host(name).addr

    def namespaces(self):
        """Every namespace this Net made (the switch's included)."""
        return [self.switch] + [h.ns for h in self.hosts.values()]

    # -- processes ------------------------------------------------------------

    def _argv(self, host, argv):
        return ["ip", "netns", "exec", self.host(host).ns, *map(str, argv)]

    def spawn(self, host, argv, env=None, label=None, stdin=subprocess.DEVNULL,
              stdout=None, cwd=None):
        """Starts argv in host's namespace, in its own session; returns the Popen.

        Its stdout and stderr go to a log file (read with log(label)) unless
        stdout=subprocess.PIPE is given (then stderr still goes to the log).
        The process is killed, with its whole group, at close() at the latest.
        """
        label = label or f"{self.host(host).name}-{os.path.basename(str(argv[0]))}-{len(self.procs)}"
        path = os.path.join(self.dir, f"{label}.log")
        log = open(path, "ab")
        try:
            proc = subprocess.Popen(self._argv(host, argv), env=env, cwd=cwd, stdin=stdin,
                                    stdout=log if stdout is None else stdout,
                                    stderr=log, start_new_session=True)
        finally:
            log.close()
        self.procs.append((label, proc, path))
        return proc

    def run(self, host, argv, env=None, timeout=30, input=None, check=True):
        """Runs argv in host's namespace to its end; returns CompletedProcess (text).

        On timeout its process group is killed and TimeoutExpired raised.
        """
        proc = subprocess.Popen(self._argv(host, argv), env=env, text=True,
                                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
        result = subprocess.CompletedProcess(argv, proc.returncode, out, err)
        if check and proc.returncode != 0:
            raise AssertionError(f"{argv[0]} in {self.host(host).name} exited {proc.returncode}:\n"
                                 f"{out}\n{err}")
        return result

    def pids(self, host):
        """Every process now in host's namespace."""
        return namespace_pids(self.host(host).ns)

    def kill_host(self, host):
        """A host loss: SIGKILL to every process in host's namespace at once; returns their pids.

        Its namespace and link stay, so a new agent can be started there
        (an agent restart); cut() as well for a host that vanishes from the
        network too.
        """
        # A snapshot of the namespace's pids misses a child forked after it (a
        # task's command starting), which would outlive the "host": kill
        # again until none is left, as a power cut would have taken them all.
        killed = []
        deadline = time.monotonic() + 10
        while True:
            pids = [p for p in self.pids(host) if p not in killed or _alive(p)]
            if not pids or time.monotonic() > deadline:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                if pid not in killed:
                    killed.append(pid)
            time.sleep(0.01)  # the kernel reaps asynchronously: look again
        return killed

    def processes_with_env(self, host, **env):
        """Live (not zombie) PIDs in host's namespace whose environment has every KEY=VALUE.

        Task processes carry FLOWBUS_RUN_ID and FLOWBUS_TASK, so this finds
        where a task really runs, from the kernel rather than from flowbus.
        """
        wanted = {f"{k}={v}".encode() for k, v in env.items()}
        found = []
        for pid in self.pids(host):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        continue
                with open(f"/proc/{pid}/environ", "rb") as f:
                    if wanted <= set(f.read().split(b"\0")):
                        found.append(pid)
            except OSError:
                continue
        return found

    def log(self, label):
        for lab, _, path in self.procs:
            if lab == label:
                with open(path, errors="replace") as f:
                    return f.read()
        raise KeyError(label)

    def dump_logs(self, out=sys.stderr):
        """Writes every process's and broker's log to out (for a failing test)."""
        for label, proc, path in self.procs:
            try:
                with open(path, errors="replace") as f:
                    text = f.read()
            except OSError:
                text = "(no log)"
            out.write(f"--- {label} (exit {proc.poll()}) ---\n{text[-6000:]}\n")
        for b in self.brokers:
            out.write(f"--- broker {b.host.name} ---\n{b.log()[-6000:]}\n")

    def in_netns(self, host, fn, *args):
        """Calls fn(*args) on a thread inside host's namespace; returns its result."""
        return _in_netns(self.host(host).ns, fn, *args)

    def can_connect(self, host, addr, port, timeout=1.0):
        """True if a TCP connect from host to addr:port succeeds; the OSError if not."""
        def attempt():
            try:
                socket.create_connection((addr, port), timeout=timeout).close()
                return True
            except OSError as e:
                return e
        return self.in_netns(host, attempt)

    # -- links ----------------------------------------------------------------

    def cut(self, host):
        """Cuts host's link: its switch port goes down (the host sees NO-CARRIER).

        Packets either way are dropped; established TCP connections are not
        reset, they time out (keepalive) or resume after heal(), as over a
        real broken link.
        """
        _ip("-n", self.switch, "link", "set", self.host(host).port_name, "down")

    def heal(self, host):
        """Restores host's link (the opposite of cut())."""
        _ip("-n", self.switch, "link", "set", self.host(host).port_name, "up")

    # -- brokers and clients --------------------------------------------------

    def start_hub(self, host, extra_conf="", quiet=False):
        """A mosquitto in host listening on 0.0.0.0:1883 (reachable by every host).

        It saves its state after every change and logs everything, for the
        tests; quiet=True (the benchmarks): no persistence, errors only, since
        a database save per QoS 1 message costs milliseconds a hop.
        """
        broker = NsBroker(self, self.host(host),
                          hub_conf(self.dir, self.host(host).name, extra_conf, quiet))
        self.brokers.append(broker)
        return broker

    def start_edge(self, host, hub, extra_topics=(), protocol=None, extra_conf="", quiet=False):
        """A mosquitto in host bridged to hub (an NsBroker) with bridge-edge.conf.

        extra_topics: further `topic` patterns to bridge both ways (the
        benchmarks bridge their own), protocol: a bridge_protocol_version to
        use instead of the template's, quiet: the template's log levels (else
        everything is logged, for a failing test's reader).
        """
        h = self.host(host)
        conf = edge_conf(self.dir, h.name, hub.host.addr, extra_topics, protocol, extra_conf, quiet)
        broker = NsBroker(self, h, conf, bridge_id=f"flowbus-bridge-{h.name}")
        self.brokers.append(broker)
        return broker

    def client(self, host, topic="flowbus/#", **kwargs):
        """An NsClient in host on its broker (127.0.0.1:1883), recording topic."""
        c = NsClient(self, self.host(host), topic, **kwargs)
        self.clients.append(c)
        return c

    # -- agents (issue 13: `flowbus agent`, built on another branch) -------------

    def start_agent(self, host, name, labels=(), broker_url=None, flowbus=None, max_tasks=None,
                    plugins=None, secrets_file=None, env=None):
        """Starts `flowbus agent --broker URL --name NAME --labels a,b` in host.

        broker_url defaults to host's own broker (tcp://127.0.0.1:1883): an
        edge agent talks to its edge broker, whose bridge carries its
        announcements to the hub. env: its environment (default: this
        process's without FLOWBUS_* and AUTH_TOKEN, as a fresh shell would
        have). Returns the Popen (log label agent-NAME).
        """
        if env is None:
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith("FLOWBUS_") and k != "AUTH_TOKEN"}
        argv = [flowbus or _flowbus(), "agent", "--broker", broker_url or local_url(),
                "--name", name]
        if labels:
            argv += ["--labels", ",".join(labels)]
        if max_tasks is not None:
            argv += ["--max-tasks", str(max_tasks)]
        if plugins:
            argv += ["--plugins", plugins]
        if secrets_file:
            argv += ["--secrets", secrets_file]
        return self.spawn(host, argv, env=env, label=f"agent-{name}")

    # -- cleanup --------------------------------------------------------------

    def close(self, failed=False):
        """Stops every client, process and broker, removes every namespace. Idempotent."""
        if self.closed:
            return
        self.closed = True
        for c in self.clients:
            c.close()
        for _, proc, _ in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for _, proc, _ in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        for b in self.brokers:
            b.stop()
        for ns in reversed(self.namespaces() if hasattr(self, "switch") else []):
            _remove_namespace(ns)
        try:
            os.unlink(os.path.join(OWNERS, self.token))
        except OSError:
            pass
        _live.discard(self)
        if not (failed and self.keep_dir_on_failure):
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and not issubclass(exc_type, unittest.SkipTest):
            self.dump_logs()
            sys.stderr.write(f"(logs kept in {self.dir})\n")
        self.close(failed=exc_type is not None)
        return False


def _flowbus():
    build = os.environ.get("FLOWBUS_BUILD_DIR") or os.path.join(SOURCE, "build")
    return os.path.join(build, "bin", "flowbus")
