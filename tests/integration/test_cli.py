"""The flowbus command line: validate, graph, help, version, usage errors.

Every validation error of the loader is unit-tested in tests/unit; these tests
check what a user sees from the command: the FILE:LINE:COL format on stderr,
the exit codes, and that nothing runs when the workflow is invalid.
"""

import os
import re
import unittest

import fbrun
import fbtest

DIAG = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<sev>error|warning): (?P<msg>.+)$")


def write(dirname, name, text):
    path = os.path.join(dirname, name)
    with open(path, "w") as f:
        f.write(text)
    return path


GOOD = """\
workflow:
  name: good
  tasks:
    - name: START
      plugin: start
      outputs: [TRUE]
    - name: END
      plugin: end
      inputs: [TRUE]
"""

BAD = """\
workflow:
  name: bad
  tasks:
    - name: START
      plugin: start
      outputs: [TRUE]
      inptus: [X]
    - name: B
      plugin: nosuch
      inputs: [NOPE]
    - name: START
      plugin: end
      inputs: [TRUE]
"""

WARN = """\
workflow:
  name: warnings
  env:
    WHO: world
  tasks:
    - name: SAY
      plugin: cmd
      inputs: [WHO]
      outputs: [SAID, UNUSED]
      params: {command: "echo 'hello $WHO'; echo SAID=1"}
    - name: END
      plugin: end
      inputs: [SAID]
"""


class TestCli(unittest.TestCase):
    def setUp(self):
        self.tmp = fbrun.TempDir()
        self.dir = self.tmp.__enter__()
        self.addCleanup(self.tmp.__exit__)

    def diags(self, stderr):
        found = [DIAG.match(line) for line in stderr.splitlines()]
        return [m.groupdict() for m in found if m]

    def test_validate_ok(self):
        path = write(self.dir, "good.yaml", GOOD)
        res = fbrun.run(["validate", path])
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("valid: 2 tasks", res.stdout)
        self.assertEqual(res.stderr, "")

    def test_validate_reports_every_error_with_position(self):
        path = write(self.dir, "bad.yaml", BAD)
        res = fbrun.run(["validate", path])
        self.assertEqual(res.returncode, 2)
        diags = self.diags(res.stderr)
        self.assertEqual(len(diags), len(res.stderr.splitlines()), res.stderr)
        where = {(int(d["line"]), int(d["col"])): d["msg"] for d in diags}
        self.assertIn("did you mean 'inputs'", where[(7, 7)])
        self.assertIn("unknown plugin 'nosuch'", where[(9, 15)])
        self.assertIn("'NOPE'", where[(10, 16)])
        self.assertIn("duplicate task name 'START'", where[(11, 13)])
        self.assertTrue(all(d["file"] == path and d["sev"] == "error" for d in diags))
        # Sorted by position.
        positions = [(int(d["line"]), int(d["col"])) for d in diags]
        self.assertEqual(positions, sorted(positions))

    def test_run_of_an_invalid_workflow_runs_nothing(self):
        path = write(self.dir, "bad.yaml", BAD)
        # No broker is reachable here: exit 2 proves validation happens first.
        res = fbrun.run(["run", path, "--broker", "tcp://127.0.0.1:1"], cwd=self.dir)
        self.assertEqual(res.returncode, 2)
        self.assertTrue(self.diags(res.stderr))
        self.assertEqual(res.stdout, "")

    def test_warnings_exit_0(self):
        path = write(self.dir, "warn.yaml", WARN)
        res = fbrun.run(["validate", path])
        self.assertEqual(res.returncode, 0, res.stderr)
        diags = self.diags(res.stderr)
        self.assertEqual({d["sev"] for d in diags}, {"warning"}, res.stderr)
        text = " ".join(d["msg"] for d in diags)
        self.assertIn("UNUSED", text)
        self.assertIn("single quotes", text)

    def test_unset_env_reference(self):
        path = write(self.dir, "env.yaml", GOOD.replace(
            "  tasks:", '  env:\n    TOKEN: "{{ENV:FLOWBUS_TEST_SURELY_UNSET}}"\n  tasks:'))
        res = fbrun.run(["validate", path])
        self.assertEqual(res.returncode, 2)
        d = self.diags(res.stderr)[0]
        self.assertEqual(int(d["line"]), 4)
        self.assertIn("FLOWBUS_TEST_SURELY_UNSET", d["msg"])
        env = fbrun.clean_env({"FLOWBUS_TEST_SURELY_UNSET_X": "1"})
        env["FLOWBUS_TEST_SURELY_UNSET"] = "set now"
        res = fbrun.run(["validate", path], env=env)
        self.assertEqual(res.returncode, 0, res.stderr)

    def test_set_provides_a_missing_input(self):
        path = write(self.dir, "needs.yaml", GOOD.replace("inputs: [TRUE]", "inputs: [TRUE, NAME]"))
        self.assertEqual(fbrun.run(["validate", path]).returncode, 2)
        res = fbrun.run(["validate", path, "--set", "NAME=x"])
        self.assertEqual(res.returncode, 0, res.stderr)
        res = fbrun.run(["validate", path, "--set", "1BAD=x"])
        self.assertEqual(res.returncode, 2)
        res = fbrun.run(["validate", path, "--set", "novalue"])
        self.assertEqual(res.returncode, 2)
        self.assertIn("VAR=VALUE", res.stderr)

    def test_missing_file_and_yaml_syntax(self):
        res = fbrun.run(["validate", os.path.join(self.dir, "nope.yaml")])
        self.assertEqual(res.returncode, 2)
        self.assertIn("nope.yaml:1:1: error: cannot read", res.stderr)
        path = write(self.dir, "syntax.yaml", "workflow:\n  name: [unclosed\n  tasks: []\n")
        res = fbrun.run(["validate", path])
        self.assertEqual(res.returncode, 2)
        self.assertTrue(self.diags(res.stderr), res.stderr)

    def test_graph_mermaid_and_dot(self):
        path = fbrun.shipped("parallel-pipeline.yaml")
        res = fbrun.run(["graph", path])
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertTrue(res.stdout.startswith("flowchart"))
        self.assertIn('|"RAW_CSV"|', res.stdout)
        res = fbrun.run(["graph", path, "--format", "dot"])
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertTrue(res.stdout.startswith("digraph"))
        self.assertIn('[label="SUMS_CSV"]', res.stdout)
        res = fbrun.run(["graph", path, "--format", "svg"])
        self.assertEqual(res.returncode, 2)
        self.assertIn("mermaid or dot", res.stderr)

    def test_help_and_version(self):
        res = fbrun.run(["--version"])
        self.assertEqual(res.returncode, 0)
        self.assertRegex(res.stdout, r"^flowbus \d+\.\d+\.\d+\n$")
        for args in (["--help"], ["help"], ["run", "--help"], ["validate", "--help"],
                     ["graph", "--help"], ["help", "run"]):
            res = fbrun.run(args)
            self.assertEqual(res.returncode, 0, args)
            self.assertIn("Usage: flowbus", res.stdout, args)

    def test_usage_errors_exit_2(self):
        for args in ([], ["frob"], ["run"], ["run", "a.yaml", "b.yaml"], ["run", "--bogus", "x"],
                     ["run", "x.yaml", "--timeout", "soon"],
                     ["run", "x.yaml", "--broker", "http://example"]):
            res = fbrun.run(args)
            self.assertEqual(res.returncode, 2, (args, res.stderr))
            self.assertTrue(res.stderr.strip(), args)

    def test_invalid_run_id(self):
        path = write(self.dir, "good.yaml", GOOD)
        res = fbrun.run(["run", path, "--run-id", "a/b#", "--broker", "tcp://127.0.0.1:1"])
        self.assertEqual(res.returncode, 2)
        self.assertIn("invalid run id", res.stderr)

    def test_unreachable_broker_exits_4(self):
        path = write(self.dir, "good.yaml", GOOD)
        port = fbtest.free_port()  # nothing listens there
        res = fbrun.run(["run", path, "--broker", "tcp://127.0.0.1:%d" % port], cwd=self.dir,
                        timeout=30)
        self.assertEqual(res.returncode, 4, res.stdout + res.stderr)
        self.assertIn("cannot connect to the broker", res.stderr)
        self.assertFalse(fbrun.processes_with_cmdline(path))


class TestPluginPath(unittest.TestCase):
    def test_plugin_path_is_searched_first(self):
        with fbrun.TempDir() as d:
            plugin = os.path.join(d, "flowbus-hello")
            with open(plugin, "w") as f:
                f.write("#!/bin/sh\nexit 0\n")
            os.chmod(plugin, 0o755)
            path = write(d, "wf.yaml", GOOD.replace("plugin: end", "plugin: hello"))
            self.assertEqual(fbrun.run(["validate", path]).returncode, 2)
            env = fbrun.clean_env({"FLOWBUS_PLUGIN_PATH": "/nonexistent:" + d})
            res = fbrun.run(["validate", path], env=env)
            self.assertEqual(res.returncode, 0, res.stderr)
            # A plugin that exits 0 without speaking MQTT still counts as done.
            res = fbrun.run(["run", path], env=env, cwd=d)
            self.assertEqual(res.returncode, 0, res.stdout + res.stderr)


if __name__ == "__main__":
    unittest.main()
