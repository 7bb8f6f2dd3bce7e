"""docs/protocol.md is enough to write a plugin: its bash example, run as written.

The block after "<!-- example: flowbus-concat -->" in docs/protocol.md is
extracted at test time into a plugin directory of the test's own, so the
document and this test cannot drift apart. The plugin runs, on nothing but
bash and the mosquitto clients, in a split and a join under the real
flowbus with its private broker: one-shot (values, the empty value, a value
with a space, depends_on), reactive (flowbus up, then flowbus set from
"another terminal", and a stop), and skipped (it must leave when told). Every
wait is on flowbus's own --json output with a deadline.
"""

import json
import os
import re
import signal
import stat
import subprocess
import unittest

import fbrun

DOC = os.path.join(fbrun.SOURCE, "docs", "protocol.md")

SPLIT_JOIN = """\
workflow:
  name: split-join
  env: {X: "x y", EMPTY: ""}
  tasks:
    - name: START
      plugin: start
      outputs: [TRUE]
    - name: LEFT
      plugin: concat
      inputs: [TRUE, X]
      outputs: [L]
    - name: RIGHT
      plugin: concat
      inputs: [X, EMPTY]
      outputs: [R]
    - name: JOIN
      plugin: concat
      inputs: [L, R]
      outputs: [LR]
      depends_on: [LEFT, RIGHT]
    - name: END
      plugin: end
      inputs: [LR]
"""

SKIP = """\
workflow:
  name: skipped
  tasks:
    - name: START
      plugin: start
      outputs: [TRUE]
    - name: NOTHING
      plugin: cmd
      inputs: [TRUE]
      outputs: [NEVER]
      params: {command: 'sleep 0.5'}
    - name: WAITER
      plugin: concat
      inputs: [NEVER]
      outputs: [OUT]
"""


def extract_example(name):
    """The fenced block that follows '<!-- example: NAME -->' in docs/protocol.md."""
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"<!-- example: %s -->\n```[a-z]*\n(.*?)\n```\n" % re.escape(name), text, re.S)
    if not m:
        raise AssertionError("docs/protocol.md has no block marked <!-- example: %s -->" % name)
    return m.group(1) + "\n"


def events(out):
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def var_values(evs, name):
    return [e["value"] for e in evs if e.get("event") == "var" and e.get("name") == name]


class ProtocolExample(unittest.TestCase):
    def setUp(self):
        self.tmp = fbrun.TempDir()
        self.dir = self.tmp.__enter__()
        self.addCleanup(self.tmp.__exit__)
        plugins = os.path.join(self.dir, "plugins")
        os.mkdir(plugins)
        self.plugin = os.path.join(plugins, "flowbus-concat")
        with open(self.plugin, "w") as f:
            f.write(extract_example("flowbus-concat"))
        os.chmod(self.plugin, stat.S_IRWXU)
        runtime = os.path.join(self.dir, "runtime")
        os.mkdir(runtime, 0o700)
        self.env = fbrun.clean_env({"FLOWBUS_PLUGIN_PATH": plugins, "TMPDIR": self.dir,
                                    "XDG_RUNTIME_DIR": runtime})
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

    def assert_nothing_left(self, run_id):
        left = fbrun.processes_with_env("FLOWBUS_RUN_ID", run_id)
        self.assertEqual(left, [], "processes of run %s still alive" % run_id)

    def test_describe(self):
        out = subprocess.run([self.plugin, "--describe"], capture_output=True, text=True,
                             env=self.env, timeout=10)
        self.assertEqual(out.returncode, 0, out.stderr)
        manifest = json.loads(out.stdout)
        self.assertEqual(manifest["name"], "concat")
        self.assertEqual((manifest["inputs"], manifest["outputs"]), (["A", "B"], ["AB"]))

    def test_split_and_join_one_shot(self):
        path = self.write("split-join.yaml", SPLIT_JOIN)
        res = fbrun.run(["run", path, "--json", "--run-id", "doc-oneshot"], cwd=self.dir,
                        env=self.env, timeout=60)
        self.assertEqual(res.returncode, 0, res.stderr + res.stdout[-2000:])
        evs = events(res.stdout)
        self.assertEqual(var_values(evs, "L"), ["1+x y"])
        self.assertEqual(var_values(evs, "R"), ["x y+"])  # the empty value, as ""
        self.assertEqual(var_values(evs, "LR"), ["1+x y+x y+"])
        final = evs[-1]
        self.assertEqual(final["event"], "run")
        self.assertEqual({t: v["state"] for t, v in final["tasks"].items()},
                         {"START": "done", "LEFT": "done", "RIGHT": "done", "JOIN": "done",
                          "END": "done"})
        self.assert_nothing_left("doc-oneshot")

    def test_split_and_join_reactive(self):
        path = self.write("split-join.yaml", SPLIT_JOIN)
        proc = fbrun.start(["up", path, "--json", "--run-id", "doc-reactive"], cwd=self.dir,
                           env=self.env)
        self.procs.append(proc)
        fbrun.read_json_until(proc, lambda e: e.get("event") == "var" and e["name"] == "LR")
        res = fbrun.run(["set", "doc-reactive", "X=z"], cwd=self.dir, env=self.env)
        self.assertEqual(res.returncode, 0, res.stderr)
        # JOIN fires on each event of L and R once both producers' latest activations
        # are done (docs/protocol.md, "Joins": nothing pairs them), so it may see the
        # new R with the old L first; its last activation has both new values.
        fbrun.read_json_until(proc, lambda e: e.get("event") == "var" and e["name"] == "LR"
                              and e["value"] == "1+z+z+")
        published = len(var_values(events("".join(proc.fb_consumed)), "LR"))
        fbrun.read_json_until(proc, lambda e: e.get("event") == "task" and e["task"] == "JOIN"
                              and e.get("result") == "done" and e["activation"] == published)
        res = fbrun.run(["stop", "doc-reactive"], cwd=self.dir, env=self.env)
        self.assertEqual(res.returncode, 0, res.stderr)
        out, err = fbrun.finish(proc)
        self.assertEqual(proc.returncode, 0, err)
        evs = events(out)
        self.assertEqual(var_values(evs, "L"), ["1+x y", "1+z"])
        lr = var_values(evs, "LR")
        self.assertEqual((lr[0], lr[-1]), ("1+x y+x y+", "1+z+z+"))
        self.assertIn(lr[1:-1], ([], ["1+x y+z+"], ["1+z+x y+"]))
        self.assertEqual(evs[-1]["state"], "stopped")
        # The activations the plugin reported, with their numbers, and never a crash.
        joins = [e for e in evs if e.get("event") == "task" and e["task"] == "JOIN"]
        self.assertNotIn("crashed", [e["state"] for e in joins])
        # One activation per LR published, numbered from 1.
        self.assertEqual(max(e["activation"] for e in joins if e.get("result") == "done"), len(lr))
        self.assert_nothing_left("doc-reactive")

    def test_a_skipped_plugin_leaves(self):
        path = self.write("skip.yaml", SKIP)
        res = fbrun.run(["run", path, "--json", "--run-id", "doc-skip"], cwd=self.dir,
                        env=self.env, timeout=60)
        self.assertEqual(res.returncode, 0, res.stderr)
        final = events(res.stdout)[-1]
        self.assertEqual(final["tasks"]["WAITER"]["state"], "skipped")
        self.assertIn("NEVER", final["tasks"]["WAITER"]["error"])
        self.assert_nothing_left("doc-skip")


if __name__ == "__main__":
    unittest.main()
