"""`flowbus fmt`: the canonical layout of workflow files (core/model/emit.h).

The layout itself is unit-tested in tests/unit/test_emit.c; these tests check
the command: what it prints, --check's exit codes and file list, that --write
rewrites only files that change and does it atomically (a new inode renamed
over the old, the mode kept, a symlink kept), that --diff is a diff that turns
the file into its canonical text, the errors of an invalid or missing file,
that every shipped workflow is already canonical, and that an independent
YAML 1.1 reader (PyYAML, when installed) reads the canonical text as the same
values as the original.
"""

import glob
import json
import os
import re
import stat
import subprocess
import tempfile
import unittest

import fbrun

HERE = os.path.dirname(os.path.abspath(__file__))

LOOSE = """\
# a header comment
workflow:
  name: "loose"
  tasks:
    - name: "START"
      plugin: "start"
      outputs: ["TRUE"]   # the trigger
      execution: {retries: 0}

    # the end
    - plugin: "end"
      name: "END"
      inputs: ["TRUE"]
"""

CANONICAL = """\
# a header comment
workflow:
  name: loose
  tasks:
    - name: START
      plugin: start
      outputs: ["TRUE"]  # the trigger

    # the end
    - name: END
      plugin: end
      inputs: ["TRUE"]
"""


def fmt(*args):
    return subprocess.run([fbrun.flowbus(), "fmt", *args], capture_output=True, text=True,
                          timeout=30)


def apply_unified(old, diff):
    """The text a unified diff turns old into (checks every context and removed line)."""
    lines = old.splitlines()
    out, at = [], 0
    body = diff.splitlines()
    assert body[0].startswith("--- ") and body[1].startswith("+++ "), diff
    i = 2
    while i < len(body):
        m = re.match(r"^@@ -(\d+),(\d+) \+(\d+),(\d+) @@$", body[i])
        assert m, body[i]
        start, count = int(m.group(1)), int(m.group(2))
        start = start - 1 if count else start
        out.extend(lines[at:start])
        at = start
        i += 1
        while i < len(body) and not body[i].startswith("@@"):
            kind, text = body[i][0], body[i][1:]
            if kind in " -":
                assert lines[at] == text, (lines[at], text)
                at += 1
            if kind in " +":
                out.append(text)
            i += 1
    out.extend(lines[at:])
    return "\n".join(out) + "\n"


class FmtTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, name, text, mode=0o644):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def test_prints_the_canonical_text_and_leaves_the_file(self):
        path = self.write("loose.yaml", LOOSE)
        res = fmt(path)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(res.stdout, CANONICAL)
        with open(path) as f:
            self.assertEqual(f.read(), LOOSE)

    def test_check_lists_the_files_to_reformat(self):
        loose = self.write("loose.yaml", LOOSE)
        canon = self.write("canon.yaml", CANONICAL)
        res = fmt("--check", canon)
        self.assertEqual((res.returncode, res.stdout), (0, ""), res.stderr)
        res = fmt("--check", canon, loose)
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertEqual(res.stdout, loose + "\n")

    def test_write_rewrites_only_what_changes_atomically(self):
        loose = self.write("loose.yaml", LOOSE, 0o640)
        canon = self.write("canon.yaml", CANONICAL)
        link = os.path.join(self.dir, "link.yaml")
        os.symlink("loose.yaml", link)
        before_canon = os.stat(canon)
        before_loose = os.stat(loose)
        res = fmt("--write", link, canon)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("link.yaml: reformatted", res.stderr)
        self.assertNotIn("canon.yaml", res.stderr)
        # The canonical file was not touched at all.
        after = os.stat(canon)
        self.assertEqual((after.st_ino, after.st_mtime_ns), (before_canon.st_ino, before_canon.st_mtime_ns))
        # The other was replaced by a new file, through the link, its mode kept.
        self.assertTrue(os.path.islink(link))
        after = os.stat(loose)
        self.assertNotEqual(after.st_ino, before_loose.st_ino)
        self.assertEqual(stat.S_IMODE(after.st_mode), 0o640)
        with open(loose) as f:
            self.assertEqual(f.read(), CANONICAL)
        self.assertEqual(os.listdir(self.dir).__len__(), 3, os.listdir(self.dir))
        res = subprocess.run([fbrun.flowbus(), "validate", loose], capture_output=True, text=True)
        self.assertEqual(res.returncode, 0, res.stderr)
        # Again: nothing to do.
        res = fmt("--check", "--write", loose)
        self.assertEqual((res.returncode, res.stdout, res.stderr), (0, "", ""))

    def test_diff_turns_the_file_into_its_canonical_text(self):
        path = self.write("loose.yaml", LOOSE)
        res = fmt("--diff", path)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertTrue(res.stdout.startswith("--- %s\n+++ %s (canonical)\n" % (path, path)))
        self.assertEqual(apply_unified(LOOSE, res.stdout), CANONICAL)
        res = fmt("--diff", "--check", path)
        self.assertEqual(res.returncode, 1)
        res = fmt("--diff", self.write("canon.yaml", CANONICAL))
        self.assertEqual((res.returncode, res.stdout), (0, ""))

    def test_errors(self):
        bad = self.write("bad.yaml", "workflow:\n  tasks:\n    - name: A\n      plugn: start\n")
        res = fmt(bad)
        self.assertEqual(res.returncode, 2)
        self.assertRegex(res.stderr, r"bad\.yaml:4:7: error: unknown key 'plugn'")
        self.assertEqual(res.stdout, "")
        res = fmt("--write", bad)
        self.assertEqual(res.returncode, 2)
        with open(bad) as f:
            self.assertIn("plugn", f.read())
        res = fmt(os.path.join(self.dir, "missing.yaml"))
        self.assertEqual(res.returncode, 2)
        self.assertIn("missing.yaml: cannot read", res.stderr)
        res = fmt()
        self.assertEqual(res.returncode, 2)
        res = fmt("--nope", bad)
        self.assertEqual(res.returncode, 2)

    def test_every_shipped_workflow_is_canonical(self):
        files = sorted(glob.glob(os.path.join(fbrun.SOURCE, "workflows", "*.yaml")))
        self.assertGreaterEqual(len(files), 5)
        res = fmt("--check", *files)
        self.assertEqual((res.returncode, res.stdout), (0, ""), res.stderr)

    @unittest.skipUnless(__import__("importlib").util.find_spec("yaml"), "PyYAML is not installed")
    def test_a_yaml_1_1_reader_reads_the_same_values(self):
        import yaml
        values = ["yes", "no", "on", "off", "y", "N", "~", "null", "", "1.0", "10", "0x1f",
                  "1_000", "12:30", "2026-01-01", ".inf", ": x", "#", "a #b", " lead",
                  "trail ", "-", "? q", "*a", "&a", "!t", "%d", "@", "`", "'q'", '"d"',
                  "back\\slash", "tab\there", "é", "a\nb\n", "a\nb", "=", "<<"]
        params = {"v%d" % i: v for i, v in enumerate(values)}
        params.update({v: i for i, v in enumerate(values) if v})
        params["nums"] = [1, 2.5, -3, 1e300, True, False, None]
        # JSON is YAML: the original reads the same in any reader.
        text = ("workflow:\n  tasks:\n    - name: T\n      plugin: custom\n      params: %s\n"
                % json.dumps(params))
        path = self.write("edge.yaml", text)
        res = fmt(path)
        self.assertEqual(res.returncode, 0, res.stderr)
        got = yaml.safe_load(res.stdout)["workflow"]["tasks"][0]["params"]
        self.assertEqual(got, params)


if __name__ == "__main__":
    unittest.main()
