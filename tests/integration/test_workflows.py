"""The workflows shipped in workflows/ run as a new user would run them.

They run with the private broker (no --broker), exactly like `scripts/run`,
in a scratch working directory, and are checked for their exit code, the
files they promise to write and the summary they print.
"""

import json
import os
import pathlib
import unittest

import fbrun


class TestShippedWorkflows(unittest.TestCase):
    def setUp(self):
        self.tmp = fbrun.TempDir()
        self.dir = self.tmp.__enter__()
        self.addCleanup(self.tmp.__exit__)
        self.env = fbrun.clean_env({"TMPDIR": self.dir})

    def assertOk(self, res, code=0):
        self.assertEqual(res.returncode, code, "stdout:\n%s\nstderr:\n%s" % (res.stdout, res.stderr))

    def test_all_validate_without_warnings(self):
        for name in sorted(os.listdir(os.path.join(fbrun.SOURCE, "workflows"))):
            if name.endswith(".yaml"):
                res = fbrun.run(["validate", fbrun.shipped(name)],
                                env=fbrun.clean_env({"AUTH_TOKEN": "any-token"}))
                self.assertOk(res)
                self.assertEqual(res.stderr, "", name)

    def test_disk_monitor(self):
        # TIMEOUT shortened so TOUCHED gives up quickly; nobody touches semaphore.txt.
        res = fbrun.run(["run", fbrun.shipped("disk-monitor.yaml"), "--set", "TIMEOUT=0.3"],
                        cwd=self.dir, env=self.env)
        self.assertOk(res)
        report = pathlib.Path(self.dir, "disk-report.txt").read_text()
        self.assertRegex(report, r"^\S+ has [0-9.]+[KMGTPE]? free\n$")
        self.assertRegex(res.stdout, r"NOTIFY\s+skipped\s+-\s+input SEMAPHORE_TOUCHED can never be set")
        self.assertRegex(res.stdout, r"END\s+done")

    def test_disk_monitor_with_the_semaphore_touched(self):
        proc = fbrun.start(["run", fbrun.shipped("disk-monitor.yaml"), "--json"], cwd=self.dir,
                           env=self.env)
        try:
            fbrun.read_json_until(proc, lambda e: e.get("task") == "TOUCHED" and
                                  e.get("state") == "running")
            pathlib.Path(self.dir, "semaphore.txt").touch()
            out, err = fbrun.finish(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        self.assertEqual(proc.returncode, 0, err)
        alerts = pathlib.Path(self.dir, "disk-alerts.log").read_text()
        self.assertIn("semaphore.txt touched", alerts)

    def test_parallel_pipeline(self):
        res = fbrun.run(["run", fbrun.shipped("parallel-pipeline.yaml"), "--json"], cwd=self.dir,
                        env=self.env)
        self.assertOk(res)
        events = [json.loads(line) for line in res.stdout.splitlines()]
        final = events[-1]
        self.assertEqual(final["state"], "done")
        self.assertTrue(all(t["state"] == "done" for t in final["tasks"].values()))
        report = [e["value"] for e in events if e["event"] == "var" and e["name"] == "REPORT"][0]
        text = pathlib.Path(report).read_text()
        self.assertIn("total: %d" % sum(range(1, 20001)), text)
        self.assertIn("(20000 rows)", text)
        # TRANSFORM and BACKUP ran side by side.
        runs = {e["task"]: e for e in events if e["event"] == "task" and e["state"] == "done"}
        t, b = runs["TRANSFORM"], runs["BACKUP"]
        self.assertLess(max(t["started"], b["started"]), min(t["at"], b["at"]))

    def test_touch_trigger(self):
        proc = fbrun.start(["run", fbrun.shipped("touch-trigger.yaml"), "--json"], cwd=self.dir,
                           env=self.env)
        try:
            fbrun.read_json_until(proc, lambda e: e.get("task") == "WATCH" and
                                  e.get("state") == "running")
            pathlib.Path("/tmp/flowbus-go").touch()
            out, err = fbrun.finish(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        self.assertEqual(proc.returncode, 0, err)
        self.assertIn("/tmp/flowbus-go was touched", out)


if __name__ == "__main__":
    unittest.main()
