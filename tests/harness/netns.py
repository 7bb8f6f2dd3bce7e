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

When namespaces are not permitted (not root, no CAP_NET_ADMIN, a container
without them), skip_reason() says why and Net() raises unittest.SkipTest.
"""

import atexit
import ctypes
import glob
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

__all__ = ["Net", "NsBroker", "NsClient", "skip_reason", "sweep", "list_namespaces",
           "PREFIX", "SUBNET", "BRIDGE_TEMPLATE"]

PREFIX = "fbmh"                      # every namespace of this harness starts "fbmh-"
SUBNET = "10.213.0"                  # a private /24 the hosts share (RFC 1918 10/8)
OWNERS = "/run/flowbus-netns"        # one owner file per live Net
MQTT_PORT = 1883                     # free in every namespace: the port space is private
CLONE_NEWNET = 0x40000000
HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.abspath(os.path.join(HERE, "..", ".."))
BRIDGE_TEMPLATE = os.path.join(SOURCE, "broker-config", "bridge-edge.conf")

_libc = ctypes.CDLL(None, use_errno=True)
_live = set()          # Nets not yet closed, for the atexit hook
_skip = None           # cached skip_reason()


def _ip(*args, check=True, timeout=10):
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def skip_reason():
    """None if this process may create network namespaces, else why not (one line).

    Tried for real: a probe namespace is added and deleted, which needs root
    or CAP_NET_ADMIN plus CAP_SYS_ADMIN and a writable /run/netns.
    """
    global _skip
    if _skip is None:
        if shutil.which("ip") is None:
            _skip = "the ip command (iproute2) is not installed"
        elif not os.path.exists("/proc/self/ns/net"):
            _skip = "this kernel has no network namespaces"
        else:
            name = f"{PREFIX}-probe-{os.getpid()}"
            proc = _ip("netns", "add", name, check=False)
            if proc.returncode != 0:
                why = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"
                _skip = (f"ip netns is not permitted here (uid {os.geteuid()}): "
                         f"`ip netns add` said: {why}")
            else:
                _ip("netns", "del", name, check=False)
                _skip = ""
    return _skip or None


def list_namespaces(prefix=PREFIX + "-"):
    """Names of the network namespaces whose name starts with prefix."""
    proc = _ip("netns", "list", check=False)
    names = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]
    return [n for n in names if n.startswith(prefix)]


def namespace_pids(ns):
    """PIDs of every process in namespace ns (empty once it is gone)."""
    proc = _ip("netns", "pids", ns, check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def _starttime(pid):
    """The start time of pid in clock ticks (field 22 of /proc/PID/stat), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _owner_alive(token):
    try:
        with open(os.path.join(OWNERS, token)) as f:
            pid, start = f.read().split()
    except (OSError, ValueError):
        return False
    return _starttime(int(pid)) == start


def _remove_namespace(ns):
    """Kills every process in ns (SIGKILL), then deletes it. Safe to repeat."""
    for _ in range(50):
        pids = namespace_pids(ns)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # A killed process leaves the namespace once it is reaped; our own
        # children are reaped by their Popen, others by init.
        time.sleep(0.02)
    _ip("netns", "del", ns, check=False)


def sweep(prefix=PREFIX):
    """Removes the namespaces (and their processes) of runs whose owner is dead.

    Returns the names removed. Namespaces of a live owner, including this
    process's own Nets, are left alone.
    """
    removed = []
    pattern = re.compile(rf"^{re.escape(prefix)}-([0-9a-f]+)-")
    for ns in list_namespaces(prefix + "-"):
        m = pattern.match(ns)
        if m is None or _owner_alive(m.group(1)):
            continue
        _remove_namespace(ns)
        removed.append(ns)
    for token in {pattern.match(n).group(1) for n in removed}:
        try:
            os.unlink(os.path.join(OWNERS, token))
        except OSError:
            pass
        # The killed run's directory (brokers' databases and logs) goes too.
        for path in glob.glob(os.path.join(tempfile.gettempdir(), f"{prefix}-{token}-*")):
            shutil.rmtree(path, ignore_errors=True)
    return removed


def _in_netns(ns, fn, *args):
    """Runs fn(*args) on a new thread that entered namespace ns; returns its result."""
    box = {}

    def body():
        try:
            enter_netns(ns)
            box["value"] = fn(*args)
        except BaseException as e:  # handed to the caller's thread
            box["error"] = e

    t = threading.Thread(target=body, daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def enter_netns(ns):
    """Moves the calling thread (only) into network namespace ns."""
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({ns}): {os.strerror(err)}")
    finally:
        os.close(fd)


def _atexit():
    for net in list(_live):
        net.close()


atexit.register(_atexit)


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
        pids = self.pids(host)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pids

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


def local_url():
    return f"tcp://127.0.0.1:{MQTT_PORT}"


def _common_conf(directory, name):
    return (f"persistence true\npersistence_location {directory}/{name}-db/\n"
            "autosave_on_changes true\nautosave_interval 1\n"
            f"log_dest file {directory}/{name}-mosquitto.log\n"
            "log_type all\nlog_timestamp_format %H:%M:%S\n")


def hub_conf(directory, name, extra="", quiet=False):
    """The hub's config: the tuning of broker-config/mosquitto.conf, on every address."""
    os.makedirs(f"{directory}/{name}-db", mode=0o777, exist_ok=True)
    os.chmod(f"{directory}/{name}-db", 0o777)
    path = os.path.join(directory, f"{name}-mosquitto.conf")
    common = (f"persistence false\nlog_dest file {directory}/{name}-mosquitto.log\n"
              "log_type error\nlog_type warning\n") if quiet else _common_conf(directory, name)
    with open(path, "w") as f:
        f.write(f"listener {MQTT_PORT} 0.0.0.0\nallow_anonymous true\nset_tcp_nodelay true\n"
                "max_queued_messages 100000\n" + common + extra + "\n")
    return path


def set_directive(text, key, value):
    """text with the first active `key ...` line replaced by `key value` (which must exist)."""
    pattern = re.compile(rf"^{re.escape(key)}(\s.*)?$", re.M)
    if not pattern.search(text):
        raise ValueError(f"{BRIDGE_TEMPLATE} has no `{key}` line")
    return pattern.sub(lambda _: f"{key} {value}", text, count=1)


def edge_conf(directory, name, hub_addr, extra_topics=(), protocol=None, extra="", quiet=False):
    """An edge broker's config made from broker-config/bridge-edge.conf.

    Only what is specific to this host is replaced: the listener (all
    addresses of the namespace, so a test client may be on the switch too),
    where it keeps its database and log, the hub's address and the bridge's
    names. Every bridge setting (topics, cleansession, queues, keepalive,
    restart) is the template's, so the tests prove the shipped file.
    """
    with open(BRIDGE_TEMPLATE) as f:
        text = f.read()
    os.makedirs(f"{directory}/{name}-db", mode=0o777, exist_ok=True)
    os.chmod(f"{directory}/{name}-db", 0o777)
    text = set_directive(text, "listener", f"{MQTT_PORT} 0.0.0.0")
    text = set_directive(text, "persistence_location", f"{directory}/{name}-db/")
    text = set_directive(text, "log_dest", f"file {directory}/{name}-mosquitto.log")
    text = set_directive(text, "connection", f"flowbus-hub-{name}")
    text = set_directive(text, "address", f"{hub_addr}:{MQTT_PORT}")
    text = set_directive(text, "remote_clientid", f"flowbus-bridge-{name}")
    text = set_directive(text, "local_clientid", f"flowbus-bridge-{name}.local")
    if protocol:
        text = set_directive(text, "bridge_protocol_version", protocol)
    # Debug detail in the test log; the template logs notices and above.
    if not quiet:
        text = text.replace(
            "\nconnection ", "\nlog_type all\nlog_timestamp_format %H:%M:%S\n\nconnection ", 1)
    for pattern in extra_topics:
        text += f"topic {pattern} both 1\n"
    path = os.path.join(directory, f"{name}-mosquitto.conf")
    with open(path, "w") as f:
        f.write(text + extra + "\n")
    return path


class NsBroker:
    """A mosquitto in a host's namespace, on port 1883 of every address there."""

    def __init__(self, net, host, conf_path, bridge_id=None, start_timeout=5.0):
        self.net = net
        self.host = host
        self.conf_path = conf_path
        self.bridge_id = bridge_id       # remote client id of its bridge, if an edge
        self.log_path = os.path.join(net.dir, f"{host.name}-mosquitto.log")
        self.proc = None
        self.start(start_timeout)

    @property
    def url(self):
        """The broker's URL from another host."""
        return f"tcp://{self.host.addr}:{MQTT_PORT}"

    local_url = property(lambda self: local_url())

    def start(self, start_timeout=5.0):
        """(Re)starts mosquitto and waits until it listens (polled, with a deadline)."""
        stderr = open(os.path.join(self.net.dir, f"{self.host.name}-mosquitto.stderr"), "ab")
        try:
            self.proc = subprocess.Popen(self.net._argv(self.host, [_mosquitto(), "-c", self.conf_path]),
                                         stdout=stderr, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        finally:
            stderr.close()
        deadline = time.monotonic() + start_timeout
        while self.net.can_connect(self.host, "127.0.0.1", MQTT_PORT, 0.2) is not True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mosquitto in {self.host.name} did not start:\n{self.log()}")
            time.sleep(0.005)

    def wait_bridge(self, state="1", timeout=20.0):
        """Waits for the bridge's own notification ($SYS/broker/connection/<id>/state)."""
        if not self.bridge_id:
            raise RuntimeError("wait_bridge() on a broker without a bridge")
        topic = f"$SYS/broker/connection/{self.bridge_id}/state"
        with NsClient(self.net, self.host, topic) as c:
            # The notification is retained: its latest value arrives first.
            if not c.wait_for(lambda ev: ev and ev[-1].payload.decode() == state, timeout):
                raise AssertionError(f"bridge of {self.host.name} not {state} within {timeout}s; "
                                     f"saw {[e.payload for e in c.events]}")

    def log(self):
        text = ""
        for path in (os.path.join(self.net.dir, f"{self.host.name}-mosquitto.stderr"), self.log_path):
            try:
                with open(path, errors="replace") as f:
                    text += f.read()
            except OSError:
                pass
        return text

    def stop(self, sig=signal.SIGTERM):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def kill(self):
        self.stop(signal.SIGKILL)


def _mosquitto():
    return shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class Event:
    __slots__ = ("t", "topic", "payload", "retained", "properties")

    def __init__(self, t, topic, payload, retained, properties):
        self.t, self.topic, self.payload = t, topic, payload
        self.retained, self.properties = retained, properties

    def json(self):
        return json.loads(self.payload.decode())

    @property
    def expiry(self):
        """The MQTT v5 message expiry interval it arrived with, or None."""
        return getattr(self.properties, "MessageExpiryInterval", None) if self.properties else None

    def __repr__(self):
        return f"Event({self.topic!r}, {self.payload[:60]!r}, retained={self.retained})"


class NsClient:
    """An MQTT v5 client of a namespace's broker, recording one topic filter.

    Its network thread lives in the namespace (setns), so its socket, and
    every reconnect's, is made there. The constructor returns once the
    subscription is acknowledged: retained messages present then come first.
    Thread-safe; use as a context manager or close().
    """

    def __init__(self, net, host, topic="flowbus/#", addr="127.0.0.1", port=MQTT_PORT,
                 timeout=10.0, will=None, client_id=None, qos=1):
        self.events = []
        self.cond = threading.Condition()
        self.subscriptions = 0
        self._topic = topic
        self._qos = qos
        self._stop = False
        self.client = mqtt.Client(client_id=client_id or f"fbmh-{os.getpid()}-{id(self):x}",
                                  protocol=mqtt.MQTTv5)
        if will:
            self.client.will_set(will["topic"], will["payload"], qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self._error = None
        self._thread = threading.Thread(target=self._loop, args=(host.ns, addr, port), daemon=True)
        self._thread.start()
        if not self.wait_for(lambda _: self.subscriptions > 0 or self._error, timeout) or self._error:
            self.close()
            raise RuntimeError(f"client in {host.name}: no SUBACK from {addr}:{port} "
                               f"({self._error or 'timeout'})")

    def _loop(self, ns, addr, port):
        try:
            enter_netns(ns)
            self.client.connect(addr, port, keepalive=10)
        except OSError as e:
            with self.cond:
                self._error = e
                self.cond.notify_all()
            return
        while not self._stop:
            rc = self.client.loop(0.1)
            if rc != mqtt.MQTT_ERR_SUCCESS and not self._stop:
                time.sleep(0.1)
                try:
                    self.client.reconnect()
                except OSError:
                    pass

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        try:
            client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass
        client.subscribe(self._topic, qos=self._qos)

    def _on_subscribe(self, client, userdata, mid, granted, properties=None):
        with self.cond:
            self.subscriptions += 1
            self.cond.notify_all()

    def _on_message(self, client, userdata, msg):
        with self.cond:
            self.events.append(Event(time.monotonic(), msg.topic, bytes(msg.payload),
                                     bool(msg.retain), getattr(msg, "properties", None)))
            self.cond.notify_all()

    def wait_for(self, predicate, timeout=10.0):
        """Waits until predicate(events) is truthy; returns it, or None at the deadline."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                value = predicate(list(self.events))
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(min(left, 0.5))

    def on_topic(self, topic):
        with self.cond:
            return [e for e in self.events if e.topic == topic]

    def publish(self, topic, payload, retain=False, qos=1, expiry=None, timeout=10.0):
        """Publishes and, at QoS 1, waits for the broker's PUBACK."""
        props = None
        if expiry is not None:
            props = Properties(PacketTypes.PUBLISH)
            props.MessageExpiryInterval = expiry
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if qos > 0:
            info.wait_for_publish(timeout)
            if not info.is_published():
                raise AssertionError(f"publish to {topic} not acknowledged within {timeout}s")

    def close(self):
        if self._stop:
            return
        self._stop = True
        try:
            self.client.disconnect()
        except Exception:  # already gone: nothing to close
            pass
        self._thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
