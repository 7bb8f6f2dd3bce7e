#!/usr/bin/python3
"""Soak test: many consecutive runs must not leak.

    tests/soak/soak.py [--runs N]        (CTest runs it with --runs 50)

Every run is a real `flowbus run` of a small split/join workflow, alternating
between the test's own long-lived mosquitto (--broker) and flowbus's private
broker. After each run it checks that no process of the run is left and no
temporary directory remains; every 10 runs it removes finished runs with
`flowbus gc` and checks that the broker keeps no retained topic of them. At
the end it compares the first and the last fifth of the runs: the peak
memory of flowbus (with the tasks it reaps) and the broker's open file
descriptors must not grow; the broker's memory is reported. Prints one line
per check and `N passed, M failed`.
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "harness"))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import fbrun  # noqa: E402
import fbtest  # noqa: E402

passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
        print("ok:   " + what)
    else:
        failed += 1
        print("FAIL: " + what)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def retained(broker, prefix="flowbus/#"):
    """Topics with a retained message, read by a fresh subscriber."""
    rec = fbtest.Recorder(broker, prefix)
    # Retained messages arrive right after the SUBACK; a round trip of our own
    # publish marks the end of them.
    rec.publish("soak/sync", b"x")
    rec.close()
    return {e.topic for e in rec.events if e.retained and e.payload}


def peak_of_child(cmd, cwd, env):
    """Runs cmd and returns (exit code, its own peak RSS in KB) via wait4."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stderr.close()
    return proc.returncode, usage.ru_maxrss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1000)
    opts = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="fbsoak-")
    broker = fbtest.Broker()
    try:
        peaks, broker_rss, broker_fds = [], [], []
        bad_runs = leftovers = 0
        for i in range(opts.runs):
            external = i % 2 == 0
            run_id = "soak-%d-%d" % (os.getpid(), i)
            args = [fbrun.flowbus(), "run", fbrun.workflow("split.yaml"), "--run-id", run_id, "-q"]
            if external:
                args += ["--broker", broker.url]
            code, peak = peak_of_child(args, tmp, fbrun.clean_env({"TMPDIR": tmp}))
            if code != 0:
                bad_runs += 1
            peaks.append(peak)
            left = fbrun.wait_gone(lambda: fbrun.processes_with_env("FLOWBUS_RUN_ID", run_id) +
                                   fbrun.processes_with_cmdline(tmp), timeout=5)
            if left or os.listdir(tmp):
                leftovers += 1
            if external:
                broker_rss.append(rss_kb(broker.pid))
                broker_fds.append(fd_count(broker.pid))
            if (i + 1) % 10 == 0:
                res = fbrun.run(["gc", "--broker", broker.url, "-q"])
                if res.returncode != 0:
                    bad_runs += 1
        check(bad_runs == 0, "%d runs, every run and gc exited 0 (%d did not)" %
              (opts.runs, bad_runs))
        check(leftovers == 0, "no process or temporary file left after any run (%d runs left some)"
              % leftovers)
        fbrun.run(["gc", "--broker", broker.url, "-q"])
        left = retained(broker)
        check(not left, "no retained topic of a finished run is left on the broker after gc "
              "(%d left)" % len(left))
        fifth = max(1, len(peaks) // 5)
        first, last = peaks[fifth:2 * fifth] or peaks[:fifth], peaks[-fifth:]
        a, b = sum(first) / len(first), sum(last) / len(last)
        check(b <= a * 1.10 + 512, "peak RSS of flowbus and the processes it waited for stable: %.0f KB early, %.0f KB late" % (a, b))
        f5 = max(1, len(broker_rss) // 5)
        ra, rb = broker_rss[f5:2 * f5] or broker_rss[:f5], broker_rss[-f5:]
        ra, rb = sum(ra) / len(ra), sum(rb) / len(rb)
        # Reported, not asserted: over 1,000 runs mosquitto 2.0.11's RSS grew
        # by ~2.3 MB (~4.6 KB per run on this broker) while every retained
        # topic was removed (checked above); that is the broker's own
        # bookkeeping of topics and clients, not flowbus's state.
        print("info: broker RSS %.0f KB early, %.0f KB late (%+.1f KB per run)" %
              (ra, rb, (rb - ra) / max(1, len(broker_rss) - 2 * f5)))
        # A leak of one descriptor per run would add dozens; a client that is
        # still disconnecting when the count is taken adds one or two.
        check(max(broker_fds[-f5:]) <= max(broker_fds[:2 * f5]) + 2,
              "broker open fds stable: %s early, %s late" % (broker_fds[:2 * f5][-1],
                                                             broker_fds[-1]))
    finally:
        broker.cleanup()
        subprocess.run(["rm", "-rf", tmp])
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
