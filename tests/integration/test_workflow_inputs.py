"""Bounded, regular workflow inputs through the flowbus command (issue 14, faults 5 and 7).

The loader's unit tests (tests/unit/test_workflow_bounds.c) check each bound
on the model; these check what a user sees from the command, where the faults
were found: `flowbus validate` of a symlink to /dev/zero grew to 1.76 GB in
6 s (here it runs under a memory limit and must answer at once with a
positioned error), a FIFO without a writer blocked forever (here a deadline
fails it), standard input ("-") is read with the same bound, and
`flowbus up` of `workers: 20000000` grew to 1.9 GB instead of refusing the
file. None of them needs a broker: every case is refused before one is
started.
"""

import os
import resource
import subprocess
import tempfile
import unittest

import fbrun
import fbtest

# A flowbus that reads /dev/zero into memory fails this limit within a
# second; one that refuses it before reading needs a few MB.
MEMORY_LIMIT = 256 * 1024 * 1024
DEADLINE = 10.0


def sanitized():
    """True when the build under test is sanitized (ASan reserves terabytes of
    address space, so it cannot run under an address-space limit)."""
    try:
        with open(os.path.join(fbtest.build_dir(), "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith("FLOWBUS_SANITIZE:") and line.split("=", 1)[1].strip():
                    return True
    except OSError:
        pass
    return False


def limited():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def flowbus(args, stdin=subprocess.DEVNULL, input=None):
    """Runs flowbus args under the memory limit (when the build allows one) and
    the deadline; returns (exit code, stderr lines)."""
    limit = not sanitized() and not os.environ.get("FLOWBUS_WRAPPER")
    proc = subprocess.Popen(fbrun.command() + list(args), env=fbrun.clean_env(),
                            stdin=subprocess.PIPE if input is not None else stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, preexec_fn=limited if limit else None)
    try:
        _, err = proc.communicate(input, timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError("flowbus %s gave no answer within %g s (a hang?)"
                             % (" ".join(args), DEADLINE))
    return proc.returncode, err.decode("utf-8", "replace").splitlines()


class InputsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="fbtest-inputs-")
        self.addCleanup(self.cleanup)

    def cleanup(self):
        for name in os.listdir(self.dir):
            path = os.path.join(self.dir, name)
            if os.path.isdir(path) and not os.path.islink(path):
                os.rmdir(path)
            else:
                os.unlink(path)
        os.rmdir(self.dir)

    def path(self, name):
        return os.path.join(self.dir, name)

    def assert_refused(self, args, expected, **kw):
        code, lines = flowbus(args, **kw)
        self.assertEqual(code, 2, lines)
        errors = [l for l in lines if ": error: " in l]
        self.assertEqual(errors[:1], [expected], lines)

    def test_symlink_to_dev_zero_is_refused_before_reading(self):
        link = self.path("zero.yaml")
        os.symlink("/dev/zero", link)
        self.assert_refused(["validate", link], link + ":1:1: error: not a regular file (a "
                            "character device): a workflow file must be a regular file, or - "
                            "for standard input")

    def test_fifo_without_writer_does_not_block(self):
        fifo = self.path("fifo.yaml")
        os.mkfifo(fifo)
        for cmd in ("validate", "run"):
            with self.subTest(cmd=cmd):
                self.assert_refused([cmd, fifo], fifo + ":1:1: error: not a regular file (a "
                                    "FIFO): a workflow file must be a regular file, or - for "
                                    "standard input")

    def test_directory_and_symlink_loop_are_positioned(self):
        d = self.path("dir.yaml")
        os.mkdir(d)
        self.assert_refused(["validate", d], d + ":1:1: error: not a regular file (a directory): "
                            "a workflow file must be a regular file, or - for standard input")
        a, b = self.path("a.yaml"), self.path("b.yaml")
        os.symlink(b, a)
        os.symlink(a, b)
        self.assert_refused(["validate", a], a + ":1:1: error: cannot read the workflow file: too "
                            "many levels of symbolic links (a symlink loop?)")

    def test_stdin(self):
        code, lines = flowbus(["validate", "-"], input=b"workflow:\n  tasks:\n"
                              b"    - {name: A, plugin: start, outputs: [V]}\n"
                              b"    - {name: B, plugin: end, inputs: [V]}\n")
        self.assertEqual(code, 0, lines)
        # An endless standard input is cut at the bound, under the memory limit.
        with open("/dev/zero", "rb") as zero:
            self.assert_refused(["validate", "-"], "-:1:1: error: standard input holds more "
                                "than 16 MiB (16777216 bytes), the largest workflow file "
                                "accepted", stdin=zero)

    def test_up_refuses_huge_workers(self):
        wf = self.path("workers.yaml")
        with open(wf, "w") as f:
            f.write("workflow:\n  tasks:\n"
                    "    - {name: A, plugin: start, execution: {workers: 20000000}}\n")
        self.assert_refused(["up", wf], wf + ":3:53: error: 'workers' must be at most 1024, got "
                            "\"20000000\" (task 'A')")

    def test_run_refuses_reserved_set(self):
        wf = self.path("set.yaml")
        with open(wf, "w") as f:
            f.write("workflow:\n  tasks: [{name: A, plugin: start}]\n")
        self.assert_refused(["run", wf, "--set", "LD_PRELOAD=/tmp/evil.so"],
                            wf + ": error: --set LD_PRELOAD: 'LD_PRELOAD' is a reserved name (it "
                            "selects the libraries every program loads); --set can change it "
                            "only when the workflow's env: declares it")


if __name__ == "__main__":
    unittest.main()
