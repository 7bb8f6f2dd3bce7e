"""Temporary directories a killed flowbus leaves behind (issue 14).

`kill -9` of the coordinator left $TMPDIR/flowbus-run-* and flowbus-broker-*
(with the private broker's hashed password file) behind for good. Now each
directory holds an owner record (pid and start time, core/tmpdirs.h): the
next `flowbus run` removes those whose owner is gone, and so does `flowbus
gc` (with or without a broker); a live owner's directory is never removed.
Every test runs flowbus with TMPDIR set to a directory of its own.
"""

import json
import os
import shutil
import signal
import tempfile
import time
import unittest

import fbrun
import fbtest

SLOW = """workflow:
  name: slow
  tasks:
    - name: "S"
      plugin: "cmd"
      inputs: ["X"]
      params:
        command: 'echo started; exec sleep 60'
  env:
    X: "big"
"""

QUICK = """workflow:
  name: quick
  tasks:
    - name: "Q"
      plugin: "cmd"
      params:
        command: 'true'
"""


def own_start_time():
    with open("/proc/self/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[19]


class Leftovers(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="fbtest-leftovers-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.env = fbrun.clean_env({"TMPDIR": self.dir})

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def leftovers(self):
        return sorted(n for n in os.listdir(self.dir) if n.startswith("flowbus-"))

    def wait_for(self, predicate, timeout=15, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = predicate()
            if got:
                return got
            time.sleep(0.02)  # polling the file system: there is no event to wait on
        self.fail("no %s within %ss; leftovers %s" % (what, timeout, self.leftovers()))

    def kill_a_run(self):
        """Starts a run on its private broker, SIGKILLs it and its tasks mid-command."""
        proc = fbrun.start(["run", self.write("slow.yaml", SLOW), "--json", "--run-id",
                            "killed-%d" % os.getpid()], cwd=self.dir, env=self.env)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        fbrun.read_json_until(proc, lambda e: e.get("line") == "started")
        kinds = {n.rsplit("-", 1)[0] for n in self.leftovers()}
        self.assertEqual(kinds, {"flowbus-run", "flowbus-broker", "flowbus-cmd"})
        for name in self.leftovers():
            with open(os.path.join(self.dir, name, "owner")) as f:
                record = f.read()
            self.assertRegex(record, r"^pid \d+\nstart \d+\n$")
        # Stopped first, so it cannot react to its tasks' deaths; then its tasks
        # (flowbus-cmd and the sleep), then itself: nobody cleans up.
        os.kill(proc.pid, signal.SIGSTOP)
        for pid in fbrun.processes_with_env("FLOWBUS_RUN_ID", "killed-%d" % os.getpid()):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        fbrun.wait_gone(lambda: fbrun.processes_with_env("FLOWBUS_RUN_ID",
                                                         "killed-%d" % os.getpid()))
        fbrun.wait_gone(lambda: fbrun.processes_with_cmdline(self.dir))
        left = self.leftovers()
        self.assertEqual(len(left), 3, left)
        return left

    def test_the_next_run_removes_a_killed_runs_directories(self):
        # Before: they stayed, the broker's hashed passwords with them.
        self.kill_a_run()
        res = fbrun.run(["run", self.write("quick.yaml", QUICK)], cwd=self.dir, env=self.env)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(self.leftovers(), [])

    def test_gc_removes_dead_owners_directories_and_keeps_live_ones(self):
        left = self.kill_a_run()
        live = os.path.join(self.dir, "flowbus-run-live01")
        reused = os.path.join(self.dir, "flowbus-broker-reus01")
        unclaimed = os.path.join(self.dir, "flowbus-cmd-noown1")
        for path in (live, reused, unclaimed):
            os.mkdir(path, 0o700)
            with open(os.path.join(path, "data"), "w") as f:
                f.write("x")
        with open(os.path.join(live, "owner"), "w") as f:
            f.write("pid %d\nstart %s\n" % (os.getpid(), own_start_time()))
        # Our pid, but another start time: the pid was reused, the owner is gone.
        with open(os.path.join(reused, "owner"), "w") as f:
            f.write("pid %d\nstart 1\n" % os.getpid())
        res = fbrun.run(["gc"], cwd=self.dir, env=self.env)
        self.assertEqual(res.returncode, 0, res.stderr)
        for name in left + ["flowbus-broker-reus01"]:
            self.assertIn("removed directory %s" % os.path.join(self.dir, name), res.stdout)
        # A live owner's directory stays, and so does a fresh one without a record.
        self.assertEqual(self.leftovers(), ["flowbus-cmd-noown1", "flowbus-run-live01"])
        # Without a record and unchanged for a day, gc removes it too (never a run's start).
        old = time.time() - 2 * 86400
        os.utime(unclaimed, (old, old))
        res = fbrun.run(["run", self.write("quick.yaml", QUICK)], cwd=self.dir, env=self.env)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(self.leftovers(), ["flowbus-cmd-noown1", "flowbus-run-live01"])
        res = fbrun.run(["gc", "-q"], cwd=self.dir, env=self.env)
        self.assertEqual((res.returncode, res.stdout), (0, ""), res.stderr)
        self.assertEqual(self.leftovers(), ["flowbus-run-live01"])

    def test_gc_never_follows_a_symlink_nor_touches_another_kind_of_entry(self):
        victim = os.path.join(self.dir, "victim")
        os.mkdir(victim)
        with open(os.path.join(victim, "keep"), "w") as f:
            f.write("x")
        os.symlink(victim, os.path.join(self.dir, "flowbus-run-link01"))
        with open(os.path.join(self.dir, "flowbus-run-file01"), "w") as f:
            f.write("pid 1\nstart 1\n")
        res = fbrun.run(["gc"], cwd=self.dir, env=self.env)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertTrue(os.path.exists(os.path.join(victim, "keep")))
        self.assertEqual(self.leftovers(), ["flowbus-run-file01", "flowbus-run-link01"])


if __name__ == "__main__":
    unittest.main()
