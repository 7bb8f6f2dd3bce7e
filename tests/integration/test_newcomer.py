"""A newcomer's first day (issue 15): the rough edges of the command line.

`flowbus run -q`, unknown options, a reactive flow on its private broker
poked by run id from "another terminal" (another process, with the same
XDG_RUNTIME_DIR), a stale entry of a killed coordinator, `depends_on` in a
reactive flow under `flowbus up`, and the summary of a flow stopped with
Ctrl-C. Every run uses flowbus's private broker (started by flowbus on a free
port) or none; every wait is on flowbus's own output with a deadline.
"""

import fcntl
import json
import os
import pty
import re
import select
import signal
import stat
import struct
import subprocess
import termios
import time
import unittest

import fbrun
import fbtest

SMALL = """\
workflow:
  name: small
  tasks:
    - name: START
      plugin: start
      outputs: [TRUE]
    - name: SAY
      plugin: cmd
      inputs: [TRUE]
      outputs: [SAID]
      params: {command: 'echo "a log line"; echo SAID=1'}
    - name: END
      plugin: end
      inputs: [SAID]
"""

ECHO = """\
workflow:
  name: echo
  mode: reactive
  env:
    X: "first"
  tasks:
    - name: UP
      plugin: cmd
      inputs: [X]
      outputs: [Y]
      params: {command: 'printf "Y=%s\\n" "$(printf %s "$X" | tr a-z A-Z)"'}
"""

# The seed's "Parallel Data Pipeline": BACKUP consumes EXTRACT's output and
# depends_on it; LOAD joins. Under `flowbus up` BACKUP and LOAD never fired.
PIPELINE = """\
workflow:
  name: pipeline
  tasks:
    - name: START
      plugin: start
      outputs: [TRUE]
    - name: EXTRACT
      plugin: cmd
      inputs: [TRUE]
      outputs: [RAW]
      params: {command: 'echo RAW=raw'}
    - name: TRANSFORM
      plugin: cmd
      inputs: [RAW]
      outputs: [SUMS]
      params: {command: 'echo "SUMS=$RAW-sums"'}
    - name: BACKUP
      plugin: cmd
      inputs: [RAW]
      outputs: [BACKED]
      depends_on: [EXTRACT]
      params: {command: 'echo "BACKED=$RAW-backup"'}
    - name: LOAD
      plugin: cmd
      inputs: [SUMS, BACKED]
      outputs: [REPORT]
      depends_on: [BACKUP]
      params: {command: 'echo "REPORT=$SUMS+$BACKED"'}
"""


def read_lines_until(proc, pattern, timeout=20):
    """Reads proc's stdout (text lines) until a line matches pattern; returns (match, lines)."""
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    seen = proc.__dict__.setdefault("nc_lines", [])
    pending = proc.__dict__.setdefault("nc_pending", [b""])
    while True:
        while b"\n" in pending[0]:
            line, pending[0] = pending[0].split(b"\n", 1)
            seen.append(line.decode())
            m = re.search(pattern, seen[-1])
            if m:
                return m, seen
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        pending[0] += chunk
    raise AssertionError("no line matching %r within %ss; saw:\n%s" % (pattern, timeout,
                                                                     "\n".join(seen)))


class Newcomer(unittest.TestCase):
    def setUp(self):
        self.tmp = fbrun.TempDir()
        self.dir = self.tmp.__enter__()
        self.addCleanup(self.tmp.__exit__)
        self.runtime = os.path.join(self.dir, "runtime")
        os.mkdir(self.runtime, 0o700)
        self.env = fbrun.clean_env({"XDG_RUNTIME_DIR": self.runtime, "TMPDIR": self.dir})
        self.procs = []
        self.addCleanup(self.reap)

    def reap(self):
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            p.communicate()

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def flowbus(self, *args, timeout=30):
        return fbrun.run(list(args), cwd=self.dir, env=self.env, timeout=timeout)

    def start(self, *args):
        proc = fbrun.start(list(args), cwd=self.dir, env=self.env)
        self.procs.append(proc)
        return proc

    # ------------------------------------------------------------ run -q

    def test_quiet_prints_the_header_and_the_summary_only(self):
        path = self.write("small.yaml", SMALL)
        loud = self.flowbus("run", path)
        quiet = self.flowbus("run", path, "-q")
        self.assertEqual((loud.returncode, quiet.returncode), (0, 0), quiet.stderr)
        self.assertIn("[SAY] a log line", loud.stdout)
        self.assertRegex(loud.stdout, r"(?m)^ +[0-9.]+s  SAY +running")
        self.assertNotIn("a log line", quiet.stdout)
        self.assertNotRegex(quiet.stdout, r"(?m)^ +[0-9.]+s  ")
        lines = [line for line in quiet.stdout.splitlines() if line.strip()]
        self.assertRegex(lines[0], r"^Run \S+ of small: 3 tasks on a private broker at tcp://")
        self.assertRegex(quiet.stdout, r"(?m)^Run \S+: done in [0-9.]+ s \(exit 0\)$")
        self.assertRegex(quiet.stdout, r"(?m)^  SAY +done +[0-9.]+s  SAID=1$")
        # The header (2 lines), the summary's title and column heads, one line per task.
        self.assertEqual(len(lines), 2 + 2 + 3, quiet.stdout)
        # --json -q: the notes and the final run object, no task, log or var events.
        js = self.flowbus("run", path, "-q", "--json")
        events = [json.loads(line)["event"] for line in js.stdout.splitlines()]
        self.assertEqual(set(events), {"note", "run"}, js.stdout)
        self.assertEqual(events[-1], "run")

    def test_unknown_options_are_refused(self):
        path = self.write("small.yaml", SMALL)
        for cmd in ("run", "up"):
            res = self.flowbus(cmd, path, "--bogus")
            self.assertEqual(res.returncode, 2, res.stdout)
            self.assertIn("unrecognized option '--bogus'", res.stderr)
            self.assertIn("Usage: flowbus %s FILE" % cmd, res.stderr)
            self.assertEqual(res.stdout, "")

    # --------------------------------------- a private run poked by its id

    def test_up_on_a_private_broker_is_reachable_by_run_id(self):
        path = self.write("echo.yaml", ECHO)
        proc = self.start("up", path, "--run-id", "poke-me")
        m, _ = read_lines_until(proc, r"^Run poke-me of echo: 1 tasks on a private broker at "
                                      r"(tcp://127\.0\.0\.1:\d+)$")
        url = m.group(1)
        m, _ = read_lines_until(proc, r"^  user (\S+), password in (\S+); from another terminal: "
                                      r"flowbus status poke-me$")
        pwfile = m.group(2)
        self.assertEqual(pwfile, os.path.join(self.runtime, "flowbus", "poke-me.password"))
        st = os.stat(pwfile)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(pwfile)).st_mode), 0o700)
        with open(os.path.join(self.runtime, "flowbus", "poke-me.run")) as f:
            self.assertIn("broker=%s\n" % url, f.read())
        read_lines_until(proc, r"^ +[0-9.]+s  UP +done +#1")
        # "Another terminal": no --broker, no FLOWBUS_BROKER, the same user's runtime directory.
        listing = self.flowbus("status")
        self.assertEqual(listing.returncode, 0, listing.stderr)
        self.assertRegex(listing.stdout, r"(?m)^  poke-me +%s +%d$" % (re.escape(url), proc.pid))
        status = self.flowbus("status", "poke-me")
        self.assertEqual(status.returncode, 0, status.stderr)
        self.assertRegex(status.stdout, r"(?m)^State: +running$")
        res = self.flowbus("set", "poke-me", "X=second")
        self.assertEqual(res.returncode, 0, res.stderr)
        read_lines_until(proc, r"^ +[0-9.]+s  UP +done +#2")
        res = self.flowbus("stop", "poke-me")
        self.assertEqual(res.returncode, 0, res.stderr)
        out, err = fbrun.finish(proc)
        self.assertEqual(proc.returncode, 0, err)
        # The summary has the flow's last outputs, read back before the broker went.
        self.assertRegex("\n".join(proc.nc_lines) + "\n" + proc.nc_pending[0].decode() + out, r"(?m)^  UP +stopped +2  Y=SECOND$")
        self.assertEqual(os.listdir(os.path.join(self.runtime, "flowbus")), [])
        self.assertIn("no live run on a private broker", self.flowbus("status").stdout)
        # The run is over: its id reaches nothing any more.
        res = self.flowbus("status", "poke-me")
        self.assertEqual(res.returncode, 2)
        self.assertIn("the id of a live run on a private broker of this user", res.stderr)

    def test_a_stale_entry_is_ignored_and_removed(self):
        gone = subprocess.Popen(["true"])
        gone.wait()
        d = os.path.join(self.runtime, "flowbus")
        os.mkdir(d, 0o700)
        with open(os.path.join(d, "dead-run.run"), "w") as f:
            f.write("broker=tcp://127.0.0.1:1\npid=%d\nstarted=1\nusername=flowbus\n"
                    "password_file=%s/dead-run.password\n" % (gone.pid, d))
        with open(os.path.join(d, "dead-run.password"), "w") as f:
            f.write("secret")
        res = self.flowbus("status", "dead-run")
        self.assertEqual(res.returncode, 2, res.stdout)
        self.assertIn("needs a broker", res.stderr)
        self.assertEqual(os.listdir(d), [])

    def test_an_unusable_runtime_directory_does_not_stop_the_run(self):
        os.chmod(self.runtime, 0o755)  # not private: nothing is recorded there
        os.mkdir(os.path.join(self.runtime, "flowbus"), 0o755)
        res = self.flowbus("run", self.write("small.yaml", SMALL))
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("other terminals cannot reach this run by its id", res.stderr)
        self.assertEqual(os.listdir(os.path.join(self.runtime, "flowbus")), [])

    # ------------------------------------------------ depends_on under up

    def test_depends_on_in_a_reactive_flow_fires_after_the_dependency(self):
        path = self.write("pipeline.yaml", PIPELINE)
        proc = self.start("up", path, "--json")
        fbrun.read_json_until(proc, lambda e: e.get("event") == "task" and e["task"] == "LOAD"
                              and e.get("result") == "done")
        proc.send_signal(signal.SIGINT)
        out, err = fbrun.finish(proc)
        reports = [e["value"] for e in map(json.loads, out.splitlines())
                   if e.get("event") == "var" and e.get("name") == "REPORT"]
        self.assertEqual(reports, ["raw-sums+raw-backup"])
        self.assertEqual(proc.returncode, 0, err)
        run = json.loads(out.splitlines()[-1])
        self.assertEqual(run["state"], "stopped")
        # Each task fired exactly once: EXTRACT once, so BACKUP and LOAD once.
        acts = {}
        for line in out.splitlines():
            e = json.loads(line)
            if e.get("event") == "task" and e.get("result") == "done":
                acts[e["task"]] = max(acts.get(e["task"], 0), e["activation"])
        self.assertEqual(acts, {"START": 1, "EXTRACT": 1, "TRANSFORM": 1, "BACKUP": 1, "LOAD": 1})

    def test_ctrl_c_summary_shows_the_last_outputs(self):
        path = self.write("pipeline.yaml", PIPELINE)
        proc = self.start("up", path)
        read_lines_until(proc, r"^ +[0-9.]+s  LOAD +done +#1")
        proc.send_signal(signal.SIGINT)
        out, err = fbrun.finish(proc)
        self.assertEqual(proc.returncode, 0, err)
        self.assertRegex(out, r"(?m)^  EXTRACT +stopped +1  RAW=raw$")
        self.assertRegex(out, r"(?m)^  LOAD +stopped +1  REPORT=raw-sums\+raw-backup$")

    # ------------------------------------------------- the live table

    def test_live_table_lines_fit_the_terminal(self):
        # A skip reason naming a long variable is far wider than 70 columns;
        # SLOW keeps the run (and its live table) going after the skip.
        long_var = "V" + "_LONG" * 12
        path = self.write("wide.yaml", """\
workflow:
  name: wide
  tasks:
    - name: START
      plugin: start
      outputs: [TRUE]
    - name: MAKER
      plugin: cmd
      inputs: [TRUE]
      outputs: [%s]
      params: {command: 'sleep 0.3; echo nothing'}
    - name: USER
      plugin: cmd
      inputs: [%s]
      params: {command: 'echo "$%s"'}
    - name: SLOW
      plugin: cmd
      inputs: [TRUE]
      params: {command: 'sleep 1.5'}
""" % (long_var, long_var, long_var))
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 70, 0, 0))
        proc = subprocess.Popen(fbrun.command() + ["run", path], cwd=self.dir, env=self.env,
                                stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE,
                                start_new_session=True)
        os.close(slave)
        out = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 1)[0]:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the other side is closed
                break
            if not chunk:
                break
            out += chunk
        os.close(master)
        proc.wait(timeout=20)
        self.assertEqual(proc.returncode, 0, proc.stderr.read())
        text = out.decode("utf-8", "replace").replace("\r", "")
        # The table's lines are the ones with a state's colour; each fits in 69 columns.
        table = [line for line in re.split(r"\n|\x1b\[\d*A\x1b\[J", text) if "\x1b[0m" in line]
        self.assertTrue(any("USER" in line and "skipped" in line for line in table), text)
        for line in table:
            shown = re.sub(r"\x1b\[[0-9;]*m", "", line)
            self.assertLessEqual(len(shown), 69, repr(shown))
        self.assertTrue(any(line.endswith("\u2026") for line in table if "USER" in line), table)

    # ---------------------------------------------- a reactive cmd's silence

    def test_a_reactive_activation_that_sets_nothing_logs_nothing(self):
        path = self.write("quiet-cmd.yaml", """\
workflow:
  name: thermostat
  mode: reactive
  env:
    TEMP: "20"
  tasks:
    - name: DECIDE
      plugin: cmd
      inputs: [TEMP]
      outputs: [ALERT]
      params:
        env: {THRESHOLD: "28"}
        command: 'test "$TEMP" -gt "$THRESHOLD" && echo "ALERT=hot" || true'
""")
        proc = self.start("up", path, "--json")
        fbrun.read_json_until(proc, lambda e: e.get("event") == "task" and e["task"] == "DECIDE"
                              and e.get("result") == "done")
        proc.send_signal(signal.SIGINT)
        out, err = fbrun.finish(proc)
        logs = [e["line"] for e in map(json.loads, out.splitlines()) if e.get("event") == "log"]
        self.assertEqual([line for line in logs if "no usable" in line], [], logs)


if __name__ == "__main__":
    unittest.main()
