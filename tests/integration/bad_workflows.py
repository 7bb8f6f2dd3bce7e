#!/usr/bin/python3
"""Runs `flowbus validate` on every bad workflow and checks how it fails.

The cases are the corpus in --cases (default tests/fixtures/bad-workflows).
Each case is NAME.expected, holding the exact first error line, with {DIR}
standing for the directory of the input file, {BIN} for the directory of the
flowbus under test and {LIBEXEC} for its installed plugin directory (where it
looks for plugins); the input is the file NAME.*
next to it or, for inputs too large to commit, NAME.yaml written by the
corpus's gen.py into --gen-dir. A case passes when flowbus exits with code 2
within the time limit, without a signal or a sanitizer report, and the first
error line on stderr is exactly the expected one. Prints "N passed, M failed"
last; exits 1 if anything failed.

    bad_workflows.py --flowbus build/bin/flowbus [--cases DIR] [--gen-dir DIR]
                     [--timeout S] [NAME...]
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = os.path.join(HERE, "..", "fixtures", "bad-workflows")

# env-unset.yaml refers to this variable: it must not be set.
UNSET_VAR = "FLOWBUS_TEST_SURELY_UNSET"
# The plugins the cases name, which flowbus finds next to itself: without them
# every case would fail on "unknown plugin" instead of its own error.
PLUGINS = ("start", "end", "cmd", "shout")
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "WARNING: MemorySanitizer", "SUMMARY: UndefinedBehaviorSanitizer")


def find_input(cases, name, gen_dir):
    for entry in sorted(os.listdir(cases)):
        stem, ext = os.path.splitext(entry)
        if stem == name and ext not in (".expected", ".py", ".txt"):
            return os.path.join(cases, entry)
    candidate = os.path.join(gen_dir, name + ".yaml")
    # lexists: a symlink loop is an input too.
    return candidate if os.path.lexists(candidate) else None


def check(flowbus, name, path, expected_line, timeout, env):
    """Returns None when the case passes, else the reason it failed."""
    expected = expected_line.replace("{DIR}", os.path.dirname(path))
    try:
        proc = subprocess.run([flowbus, "validate", path], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return "no answer within %g s (a hang?)" % timeout
    err = proc.stderr.decode("utf-8", "replace")
    if proc.returncode < 0:
        return "killed by signal %s" % signal.Signals(-proc.returncode).name
    for mark in SANITIZER_MARKS:
        if mark in err:
            return "sanitizer report:\n" + err[-4000:]
    if proc.returncode != 2:
        return "exit code %d, expected 2; stderr:\n%s" % (proc.returncode, err[:2000])
    errors = [line for line in err.splitlines() if ": error: " in line]
    if not errors:
        return "no error line; stderr:\n" + err[:2000]
    if errors[0] != expected:
        return "first error line differs:\n  expected: %s\n  got:      %s" % (
            expected[:500], errors[0][:500])
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--flowbus", required=True, help="the flowbus executable to test")
    ap.add_argument("--cases", default=CASES, help="the corpus: NAME.expected and their inputs "
                    "(default: tests/fixtures/bad-workflows)")
    ap.add_argument("--gen-dir", help="where to write the generated inputs "
                    "(default: a temporary directory, removed afterwards)")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per file (default 10)")
    ap.add_argument("--libexec", default="/usr/local/libexec/flowbus",
                    help="the plugin directory flowbus was built to install into")
    ap.add_argument("names", nargs="*", help="run only these cases")
    args = ap.parse_args()

    flowbus = os.path.abspath(args.flowbus)
    cases = os.path.abspath(args.cases)
    # The generator of the large inputs lives with the corpus it completes.
    sys.path.insert(0, cases)
    import gen  # noqa: E402
    missing = [p for p in PLUGINS
               if not os.access(os.path.join(os.path.dirname(flowbus), "flowbus-" + p), os.X_OK)]
    if not os.access(flowbus, os.X_OK) or missing:
        print("FAIL: %s or its plugins %s are not built" % (flowbus, ", ".join(missing) or "-"))
        print("0 passed, 1 failed")
        return 1
    tmp = None
    gen_dir = args.gen_dir
    if not gen_dir:
        tmp = gen_dir = tempfile.mkdtemp(prefix="flowbus-bad-")
    gen_dir = os.path.abspath(gen_dir)
    gen.write_all(gen_dir)

    env = dict(os.environ)
    env.pop(UNSET_VAR, None)
    env.pop("FLOWBUS_PLUGIN_PATH", None)  # the search path is part of an expected line
    names = sorted(e[:-len(".expected")] for e in os.listdir(cases) if e.endswith(".expected"))
    if args.names:
        names = [n for n in names if n in args.names]
    passed = failed = 0
    try:
        for name in names:
            with open(os.path.join(cases, name + ".expected"), encoding="utf-8") as f:
                expected = f.read().rstrip("\n").replace(
                    "{BIN}", os.path.dirname(os.path.realpath(flowbus))).replace(
                    "{LIBEXEC}", args.libexec)
            path = find_input(cases, name, gen_dir)
            why = ("no input file %s.* here nor in %s" % (name, gen_dir) if path is None
                   else check(flowbus, name, path, expected, args.timeout, env))
            if why is None:
                passed += 1
                print("ok   %s" % name)
            else:
                failed += 1
                print("FAIL %s: %s" % (name, why))
            sys.stdout.flush()
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or not names else 0


if __name__ == "__main__":
    sys.exit(main())
