"""netns_core - the network-namespace primitives under netns.py.

Names, the owner records that tell a live run's namespaces from a killed
run's, creating nothing but removing (with every process inside) and
sweeping, and entering a namespace from one thread (setns(2)). netns.py
builds hosts and links on these; see its docstring.
"""

import ctypes
import glob
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

PREFIX = "fbmh"                      # every namespace of this harness starts "fbmh-"
SUBNET = "10.213.0"                  # a private /24 the hosts share (RFC 1918 10/8)
OWNERS = "/run/flowbus-netns"        # one owner file per live Net
MQTT_PORT = 1883                     # free in every namespace: the port space is private
CLONE_NEWNET = 0x40000000
HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.abspath(os.path.join(HERE, "..", ".."))
BRIDGE_TEMPLATE = os.path.join(SOURCE, "broker-config", "bridge-edge.conf")

_libc = ctypes.CDLL(None, use_errno=True)
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


def local_url():
    """The URL of a host's own broker, from inside that host."""
    return f"tcp://127.0.0.1:{MQTT_PORT}"
