"""fbrun - helpers for the integration tests: running `flowbus` itself.

Tests that look at the bus run flowbus against the test's own broker
(`--broker`, see fbtest.Broker) and read what it published with a Recorder.
Tests of the private broker run flowbus without `--broker` and with TMPDIR
pointing at a directory of the test's own, so every process the run started
can be found afterwards: task processes carry FLOWBUS_RUN_ID in their
environment and the private mosquitto's command line names its directory
under TMPDIR.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import fbtest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.abspath(os.path.join(HERE, "..", ".."))


def flowbus():
    return fbtest.bin_path("flowbus")


def command():
    """flowbus, behind $FLOWBUS_WRAPPER when set (scripts/valgrind sets a valgrind command)."""
    import shlex
    return shlex.split(os.environ.get("FLOWBUS_WRAPPER", "")) + [flowbus()]


def workflow(name):
    """A test workflow of tests/integration/workflows/."""
    return os.path.join(HERE, "workflows", name)


def shipped(name):
    """A workflow shipped in workflows/."""
    return os.path.join(SOURCE, "workflows", name)


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("FLOWBUS_") or k == "FLOWBUS_WRAPPER"}
    env.pop("AUTH_TOKEN", None)
    env.update(extra or {})
    return env


def run(args, cwd=None, env=None, timeout=60):
    """Runs flowbus with args; returns CompletedProcess with text stdout/stderr."""
    proc = subprocess.Popen(command() + list(args), cwd=cwd, env=env or clean_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def start(args, cwd=None, env=None):
    """Starts flowbus in the background (own session, like a shell job)."""
    return subprocess.Popen(command() + list(args), cwd=cwd, env=env or clean_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def read_json_until(proc, predicate, timeout=20):
    """Reads --json events from proc's stdout until predicate(event) holds; returns it.

    It reads the pipe's file descriptor directly (select + os.read), because
    Python's buffered readline can swallow several lines at once and leave
    select() waiting for data that has already arrived. What it consumed is
    kept on proc, and finish() returns it with the rest of the output.
    """
    import select
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    consumed = proc.__dict__.setdefault("fb_consumed", [])
    pending = proc.__dict__.setdefault("fb_pending", [b""])
    while True:
        while b"\n" in pending[0]:
            line, pending[0] = pending[0].split(b"\n", 1)
            text = line.decode()
            consumed.append(text + "\n")
            event = json.loads(text)
            if predicate(event):
                return event
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        pending[0] += chunk
    raise AssertionError("no matching --json event within %ss; saw:\n%s" %
                         (timeout, "".join(consumed)))


def finish(proc, timeout=20):
    """Waits for proc to exit; returns (stdout, stderr), including what read_json_until read."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    before = "".join(proc.__dict__.get("fb_consumed", []))
    rest = proc.__dict__.get("fb_pending", [b""])[0].decode()
    return before + rest + out, err


def processes_with_env(key, value):
    """PIDs of live processes whose environment has key=value."""
    needle = ("%s=%s" % (key, value)).encode()
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % pid, "rb") as f:
                if needle in f.read().split(b"\0"):
                    if not _zombie(pid):
                        found.append(int(pid))
        except OSError:
            pass
    return found


def processes_with_cmdline(fragment):
    """PIDs of live processes whose command line contains fragment."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if fragment.encode() in f.read() and not _zombie(pid):
                    found.append(int(pid))
        except OSError:
            pass
    return found


def _zombie(pid):
    try:
        with open("/proc/%s/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def wait_gone(pids_fn, timeout=5.0):
    """Waits until pids_fn() is empty; returns what is left at the deadline."""
    deadline = time.monotonic() + timeout
    left = pids_fn()
    while left and time.monotonic() < deadline:
        time.sleep(0.02)  # polling /proc: there is no event for "a process died"
        left = pids_fn()
    return left


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not _zombie(str(pid))


class TempDir:
    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="fbit-")

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)
        return False
