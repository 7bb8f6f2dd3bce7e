"""driver - runs every flowbus benchmark and prints one table (see scripts/bench).

    /usr/bin/python3 bench/driver.py BUILD_DIR [--paho PAHO_BUILD_DIR] [--smoke] [--json FILE]

Each figure is printed beside a reference measured in the same invocation
(raw broker round trip, `make -j2` of the same graph, a no-op process...), as
a ratio, with the issue's target. Machine-dependent figures are medians over
repeated runs: other work on a 2-core machine makes single runs swing by
+-30 %. The benchmarks measure; they never fail on a figure. The driver exits
non-zero only when a benchmark itself is broken (a program fails, a run does
not finish, events are lost).

With --paho, the figures of Bench.BOTH are measured again on a build whose
SDK uses Paho (-DFLOWBUS_MQTT=paho), and a second table shows both backends
side by side.
"""

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "harness"))
sys.path.insert(0, HERE)

import fbtest  # noqa: E402  (Recorder, free_port)
import graphs  # noqa: E402
import mqtt_relay  # noqa: E402
import multihost  # noqa: E402  (issue 13's cross-host hops)
import multihost_place  # noqa: E402  (issue 13's cross-host placement)
import ui_rss  # noqa: E402


class BenchError(Exception):
    """A benchmark is broken (not: a figure is bad)."""


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------

class Broker:
    """A mosquitto for the benchmarks: the private broker's tuning (TCP_NODELAY,
    100 in-flight, deep queues), no persistence, only errors logged, stopped by PID."""

    def __init__(self, workdir):
        self.port = fbtest.free_port()
        self.dir = tempfile.mkdtemp(prefix="broker-", dir=workdir)
        conf = os.path.join(self.dir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                    "set_tcp_nodelay true\npersistence false\nmax_queued_messages 100000\n"
                    "max_inflight_messages 100\n"
                    f"log_dest file {self.dir}/mosquitto.log\nlog_type error\nlog_type warning\n")
        self.proc = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + 5
        while True:
            try:
                import socket
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise BenchError("mosquitto did not start")
                time.sleep(0.005)

    @property
    def url(self):
        return f"tcp://127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def mem(pid):
    """(RSS, PSS) in kB from /proc/<pid>/smaps_rollup."""
    rss = pss = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    return rss, pss


def hwm(pid):
    """VmHWM (peak RSS) in kB, or 0 once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def timed(cmd, env=None, cwd=None, timeout=300, peak=False):
    """Runs cmd; returns (wall seconds, peak RSS kB of that process if asked).

    The peak is VmHWM polled every 5 ms by a thread, so the wall time is not
    quantised by the polling; VmHWM only grows, so the last read is the peak."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    top = [0]

    def poll():
        while proc.returncode is None:
            top[0] = max(top[0], hwm(proc.pid))
            time.sleep(0.005)

    thread = threading.Thread(target=poll, daemon=True) if peak else None
    if thread:
        thread.start()
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise BenchError(f"{cmd[0]} did not finish within {timeout}s")
    wall = time.monotonic() - t0
    if thread:
        thread.join()
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(cmd[:3])} exited {proc.returncode}: {err.decode()[-2000:]}")
    return wall, top[0]


def kv(line):
    """Parses 'a=1 b=2.5 c=x' into a dict (numbers as floats)."""
    out = {}
    for item in line.split():
        k, _, v = item.partition("=")
        try:
            out[k] = float(v)
        except ValueError:
            out[k] = v
    return out


def tool(bench, name, *args, timeout=300, env=None):
    path = os.path.join(bench.bin, name)
    for attempt in (1, 2):
        proc = subprocess.run([path, *map(str, args)], capture_output=True, text=True,
                              timeout=timeout, env=env)
        if proc.returncode == 0:
            return kv(proc.stdout.strip().splitlines()[-1])
        # One retry: a starved 2-core machine can push a single exchange past
        # a program's deadline. A second failure is a broken benchmark.
        bench.note(f"{name} failed (attempt {attempt}): {proc.stderr.strip()[-300:]}")
    raise BenchError(f"{name} {' '.join(map(str, args))} failed twice")


# --------------------------------------------------------------------------
# The suite
# --------------------------------------------------------------------------

class Bench:
    def __init__(self, build, smoke):
        self.build = os.path.abspath(build)
        self.bin = os.path.join(self.build, "bin")
        self.flowbus = os.path.join(self.bin, "flowbus")
        self.smoke = smoke
        self.work = tempfile.mkdtemp(prefix="fbbench-")
        self.rows = []
        self.notes = []
        self.raw = {}
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWBUS_")}
        self.env["FLOWBUS_PLUGIN_PATH"] = self.bin

    def note(self, text):
        self.notes.append(text)
        print(f"  .. {text}", file=sys.stderr, flush=True)

    def row(self, figure, value, ref, unit, target=None, met=None, ratio=None, ref_label=""):
        if ratio is None and isinstance(value, (int, float)) and isinstance(ref, (int, float)) and ref:
            ratio = value / ref
        self.rows.append(dict(figure=figure, value=value, ref=ref, unit=unit, ratio=ratio,
                              target=target or "", met=met, ref_label=ref_label))

    def path(self, name):
        return os.path.join(self.work, name)

    def write(self, name, text):
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text)
        return p

    # -- 1. hop latency ------------------------------------------------------

    def rtt(self, broker):
        n = 500 if self.smoke else 5000
        # The reference is a raw libmosquitto hop (one thread, the echo sends
        # from its message callback): the floor of the SDK's default backend.
        # Raw Paho beside it, for the Paho backend.
        raw = tool(self, "fbbench-rtt", "mosq", broker.url, n, 1)
        paho = tool(self, "fbbench-rtt", "paho", broker.url, n, 1)
        sdk = tool(self, "fbbench-rtt", "sdk", broker.url, n, 1)
        # The same exchange starting from idle processes (20 ms of sleep
        # before each ping), as a hop in a chain of waiting task processes does.
        idle = tool(self, "fbbench-rtt", "mosq", broker.url, 100 if self.smoke else 300, 1, 20)
        self.raw["rtt_raw"] = raw
        self.raw["rtt_paho"] = paho
        self.raw["rtt_sdk"] = sdk
        self.raw["rtt_raw_idle"] = idle
        return raw, paho, sdk, idle

    def hop_chain_run(self, broker, n, out, measure_memory=False):
        """One gated chain of n probes; returns (hops in s, memory dict or None)."""
        gate = self.path(f"gate-{os.getpid()}-{len(self.notes)}-{time.monotonic_ns()}")
        wf = self.write(f"hop-{n}.yaml", graphs.hop_chain_yaml(n, gate))
        run_id = f"hop-{os.getpid()}-{time.monotonic_ns() % 10**9}"
        rec = fbtest.Recorder(broker.port, f"flowbus/{run_id}/tasks/+/state")
        env = dict(self.env, FBBENCH_OUT=out)
        if os.path.exists(out):
            os.unlink(out)
        proc = subprocess.Popen([self.flowbus, "run", wf, "--broker", broker.url,
                                 "--run-id", run_id], env=env, cwd=self.work,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        memory = None
        try:
            def all_waiting(events):
                seen = {}
                for e in events:
                    if e.payload:
                        seen[e.topic.split("/")[-2]] = e.json()
                ok = (seen.get("GATE", {}).get("state") == "running" and
                      sum(1 for t, s in seen.items() if t != "GATE" and s["state"] == "waiting") == n)
                return seen if ok else None

            seen = rec.wait_for(all_waiting, timeout=60)
            if seen is None:
                raise BenchError("hop chain: the probes did not all reach 'waiting'")
            if measure_memory:
                time.sleep(0.2)  # let the allocators settle after start-up
                tasks = [mem(s["pid"]) for t, s in seen.items() if t != "GATE"]
                gate_mem = mem(seen["GATE"]["pid"])
                coord = mem(proc.pid)
                brk = mem(broker.proc.pid)
                memory = dict(task_rss=statistics.median(r for r, _ in tasks),
                              task_pss=statistics.median(p for _, p in tasks),
                              coord_rss=coord[0], coord_pss=coord[1],
                              broker_rss=brk[0], broker_pss=brk[1],
                              total_pss=sum(p for _, p in tasks) + gate_mem[1] + coord[1] + brk[1],
                              total_rss=sum(r for r, _ in tasks) + gate_mem[0] + coord[0] + brk[0])
            with open(gate, "w"):
                pass
            try:
                _, err = proc.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                raise BenchError("hop chain: the run did not end")
            if proc.returncode != 0:
                raise BenchError(f"hop chain run exited {proc.returncode}: {err.decode()[-1500:]}")
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            rec.close()
        hops = []
        with open(out) as f:
            for line in f:
                d = kv(line)
                if isinstance(d.get("hop"), float):
                    hops.append(d["hop"])
        if len(hops) != n - 1:
            raise BenchError(f"hop chain: {len(hops)} hops reported, expected {n - 1}")
        return hops, memory

    def hop_latency(self, broker):
        raw, paho, sdk, idle = self.rtt(broker)
        n, runs = (30, 1) if self.smoke else (201, 5)
        hops = []
        for _ in range(runs):
            h, _ = self.hop_chain_run(broker, n, self.path("hop.txt"))
            hops += h
        hops.sort()
        q = lambda p: hops[min(len(hops) - 1, max(0, int(p * len(hops) + 0.999999) - 1))]
        p50, p99 = q(0.5) * 1e3, q(0.99) * 1e3
        ref50, ref99 = raw["hop_p50_us"] / 1e3, raw["hop_p99_us"] / 1e3
        self.raw["hops"] = dict(n=len(hops), p50_ms=p50, p99_ms=p99, max_ms=hops[-1] * 1e3)
        self.row(f"hop latency p50, fb_task chain ({len(hops)} hops)", p50, ref50, "ms",
                 "<= 0.2 ms and <= 1.5 x raw", p50 <= 0.2 and p50 <= 1.5 * ref50,
                 ref_label="raw libmosquitto hop (RTT/2)")
        self.row("hop latency p99", p99, ref99, "ms", "<= 1 ms", p99 <= 1.0,
                 ref_label="raw libmosquitto hop p99")
        self.row("SDK fb_bus hop p50 (RTT/2, retained QoS 1)", sdk["hop_p50_us"] / 1e3, ref50,
                 "ms", ref_label="raw libmosquitto hop")
        self.row("raw Paho hop p50 (RTT/2)", paho["hop_p50_us"] / 1e3, ref50, "ms",
                 ref_label="raw libmosquitto hop")
        self.row("hop p50 vs a raw libmosquitto hop from idle processes", p50,
                 idle["hop_p50_us"] / 1e3, "ms", ref_label="raw hop, 20 ms idle before each ping")
        self.row("hop p99 vs a raw libmosquitto hop from idle processes", p99,
                 idle["hop_p99_us"] / 1e3, "ms", ref_label="raw hop p99, idle")
        over5 = sum(1 for h in hops if h > 0.005)
        self.row("hops over 5 ms, fb_task chain", 100.0 * over5 / len(hops), None, "%",
                 ref_label=f"{over5} of {len(hops)}")

    # -- 2, 3, 7. makespans --------------------------------------------------

    def make_time(self, graph, name, argv=None):
        d = self.path(f"make-{name}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "Makefile"), "w") as f:
            f.write(graphs.makefile(graph, argv))
        return timed(["make", "-s", "-j2", "-C", d])[0]

    def flowbus_time(self, wf, broker=None, peak=False):
        cmd = [self.flowbus, "run", wf] + (["--broker", broker.url] if broker else [])
        return timed(cmd, env=self.env, cwd=self.work, timeout=600, peak=peak)

    def compare(self, graph, name, runs, broker, argv=None):
        """Medians of flowbus (on broker) and make -j2 over `runs` interleaved runs."""
        wf = self.write(f"{name}.yaml", graphs.workflow_yaml(graph, name, argv))
        fb, mk, peaks = [], [], []
        for _ in range(runs):
            t, p = self.flowbus_time(wf, broker, peak=True)
            fb.append(t)
            peaks.append(p)
            mk.append(self.make_time(graph, name, argv))
        self.raw[f"makespan_{name}"] = dict(flowbus=fb, make=mk, peak_kb=peaks,
                                            edges=graphs.edges(graph),
                                            critical_path=graphs.critical_path(graph))
        return statistics.median(fb), statistics.median(mk), max(peaks)

    def makespans(self, broker):
        n, runs = (50, 2) if self.smoke else (200, 5)
        for label, graph in (("chain", graphs.chain(n)), ("dag", graphs.random_dag(n, seed=42))):
            fb, mk, _ = self.compare(graph, f"{label}{n}", runs, broker)
            extra = (f", {graphs.edges(graph)} edges, critical path {graphs.critical_path(graph)}"
                     if label == "dag" else "")
            self.row(f"{n}-task {label} makespan{extra}", fb, mk, "s", "<= 2 x make -j2",
                     fb <= 2 * mk, ref_label="make -j2, same graph of true")
        # What the private broker adds to every run: 1 no-op task, both ways.
        one = self.write("one.yaml", graphs.workflow_yaml(graphs.chain(1), "one"))
        priv = statistics.median(self.flowbus_time(one)[0] for _ in range(runs))
        ext = statistics.median(self.flowbus_time(one, broker)[0] for _ in range(runs))
        self.row("1-task run, private broker (fixed cost of a run)", priv, ext, "s",
                 ref_label="same run with --broker")

    def fan(self, broker):
        graph, argv = graphs.fan(3, 1)
        runs = 1 if self.smoke else 3
        wf = self.write("fan.yaml", graphs.workflow_yaml(graph, "fan", argv))
        t = statistics.median(self.flowbus_time(wf, broker)[0] for _ in range(runs))
        mk = statistics.median(self.make_time(graph, "fan", argv) for _ in range(runs))
        self.raw["fan"] = dict(flowbus=t, make=mk)
        self.row("fan-out/fan-in: FORK -> 3 x sleep 1 -> JOIN", t, 1.0,
                 "s", "~1 s ideal", None, ref_label="1 s ideal")

    def scale(self):
        sizes = (10, 100) if self.smoke else (10, 100, 1000)
        runs = {10: 3, 100: 3, 1000: 1} if not self.smoke else {10: 2, 100: 1}
        times = {}
        for n in sizes:
            broker = Broker(self.work)  # fresh: no retained topics of earlier runs
            try:
                fb, mk, peak = self.compare(graphs.random_dag(n, seed=n), f"scale{n}", runs[n],
                                            broker)
            finally:
                broker.stop()
            times[n] = fb
            self.row(f"scale: {n}-task DAG makespan", fb, mk, "s",
                     ref_label="make -j2, same graph")
            self.row(f"scale: coordinator peak RSS at {n} tasks", peak / 1024, None, "MB",
                     "<= 10 MB at 1000" if n == 1000 else "",
                     peak / 1024 <= 10 if n == 1000 else None)
        # Near linear: the cost of one more task (the slope) should not grow with n.
        slopes = [(times[b] - times[a]) / (b - a) for a, b in zip(sizes, sizes[1:])]
        for (a, b), slope in zip(zip(sizes, sizes[1:]), slopes):
            self.row(f"scale: marginal cost per task, {a} -> {b} tasks", slope * 1e3, None, "ms")
        if len(slopes) > 1:
            growth = slopes[-1] / slopes[-2]
            self.row("scale: growth of the marginal cost (last / previous)", growth, 1.0, "x",
                     "near linear (~1x)", growth <= 1.5, ref_label="linear")

    # -- 4. per-task overhead -------------------------------------------------

    def overhead(self, broker):
        n_seq, n_burst = (30, 50) if self.smoke else (200, 200)
        probe = os.path.join(self.bin, "flowbus-benchprobe")
        seq = tool(self, "fbbench-spawn", broker.url, probe, n_seq, "seq", self.path("seq.txt"))
        burst = tool(self, "fbbench-spawn", broker.url, probe, n_burst, "burst",
                     self.path("burst.txt"))
        self.raw["overhead_seq"] = seq
        self.raw["overhead_burst"] = burst
        # The reference is /bin/true started the same way: one at a time, or all at once
        # (where every process waits its turn for the two cores, as the probes do).
        for label, d, n, how in (("one at a time", seq, n_seq, "one at a time"),
                                 (f"{n_burst} at once", burst, n_burst, f"{n_burst} at once")):
            seq = label == "one at a time"
            self.row(f"per-task overhead p50, {label} (spawn -> subscribed)", d["total_p50_ms"],
                     d["ref_true_p50_ms"], "ms", "p50 <= 1.5 ms" if seq else "",
                     d["total_p50_ms"] <= 1.5 if seq else None,
                     ref_label=f"spawn -> exit of /bin/true, {how}")
            self.row(f"per-task overhead p90, {label}", d["total_p90_ms"], d["ref_true_p90_ms"],
                     "ms", ref_label="/bin/true p90")
            self.row(f"per-task overhead max, {label} ({int(d['over50ms'])}/{n} > 50 ms)",
                     d["total_max_ms"], d["ref_true_max_ms"], "ms", "none > 50 ms",
                     d["over50ms"] == 0, ref_label="/bin/true max")

    # -- 4b. a task's CPU for its whole life on the bus ------------------------

    def task_cpu(self, broker):
        """The user+sys CPU of one whole one-shot task process (exec, connect,
        subscribe, the retained input, "waiting"/"running", the output and
        "done" confirmed, exit), from wait4's rusage of the child, against
        /bin/true spawned and reaped the same way, interleaved in the same run."""
        n = 30 if self.smoke else 200
        probe = os.path.join(self.bin, "flowbus-benchprobe")
        run_id = f"cpu-{os.getpid()}"
        rec = fbtest.Recorder(broker.port, f"flowbus/{run_id}/vars/#")
        try:
            rec.publish(f"flowbus/{run_id}/vars/X", "1", retain=True)
        finally:
            rec.close()
        out = self.path("cpu.txt")
        env = fbtest.task_env(broker.url, run_id, "T", inputs=("X",), outputs=("Y",),
                              base=self.env, extra={"FBBENCH_OUT": out})

        def cpu_of(argv, environ):
            pid = os.posix_spawn(argv[0], argv, environ)
            _, status, ru = os.wait4(pid, 0)
            if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
                raise BenchError(f"{argv[0]} exited with status {status}")
            return (ru.ru_utime + ru.ru_stime) * 1e3

        linked_bin = os.path.join(self.bin, "fbbench-linked")
        task, true, linked = [], [], []
        for _ in range(n):
            task.append(cpu_of([probe], env))
            true.append(cpu_of(["/bin/true"], self.env))
            linked.append(cpu_of([linked_bin], self.env))
        self.raw["task_cpu_ms"] = task
        self.raw["true_cpu_ms"] = true
        self.raw["linked_cpu_ms"] = linked
        t50, r50 = statistics.median(task), statistics.median(true)
        l50 = statistics.median(linked)
        t90 = sorted(task)[int(0.9 * (n - 1))]
        r90 = sorted(true)[int(0.9 * (n - 1))]
        self.row(f"task CPU, whole one-shot life beyond exec (p50 of {n}, user+sys)",
                 t50 - r50, r50, "ms", "<= 0.5 ms beyond exec", t50 - r50 <= 0.5,
                 ref_label="user+sys of /bin/true, spawned and reaped the same way")
        self.row("task CPU, whole one-shot life (p50)", t50, r50, "ms",
                 ref_label="/bin/true p50")
        self.row("task CPU, whole one-shot life (p90)", t90, r90, "ms",
                 ref_label="/bin/true p90")
        # The split: loading the libraries a plugin links (libflowbus, the MQTT
        # library and, for libmosquitto, libssl and libcrypto) and the rest.
        self.row("  of which loading the SDK's libraries (empty program linked as a plugin)",
                 l50 - r50, r50, "ms", ref_label="/bin/true p50")
        self.row("  of which the task's life on the bus (beyond the linked empty program)",
                 t50 - l50, l50, "ms", ref_label="fbbench-linked p50")

    # -- 5. memory -----------------------------------------------------------

    def memory(self):
        broker = Broker(self.work)  # fresh, so its memory is this run's alone
        try:
            _, m = self.hop_chain_run(broker, 19, self.path("mem.txt"), measure_memory=True)
        finally:
            broker.stop()
        ref = subprocess.Popen(["sleep", "30"])
        time.sleep(0.1)
        ref_rss, ref_pss = mem(ref.pid)
        ref.kill()
        ref.wait()
        self.raw["memory"] = dict(m, ref_rss=ref_rss, ref_pss=ref_pss)
        mb = lambda kb: kb / 1024
        self.row("task process RSS (idle, waiting; median of 19)", mb(m["task_rss"]), mb(ref_rss),
                 "MB", "<= 2 MB", mb(m["task_rss"]) <= 2.0, ref_label="idle `sleep` process")
        self.row("task process PSS", mb(m["task_pss"]), mb(ref_pss), "MB", "<= 0.4 MB",
                 mb(m["task_pss"]) <= 0.4, ref_label="idle `sleep` PSS")
        self.row("coordinator RSS / PSS, 20-task run", f"{mb(m['coord_rss']):.2f} / "
                 f"{mb(m['coord_pss']):.2f}", None, "MB")
        self.row("whole 20-task run PSS (coordinator+broker+tasks)", mb(m["total_pss"]), None,
                 "MB", ref_label=f"RSS sum {mb(m['total_rss']):.1f} MB")

    # -- 6. reactive throughput -----------------------------------------------

    def throughput(self, broker):
        n = 5000 if self.smoke else 50000
        runs = 1 if self.smoke else 3
        res = [tool(self, "fbbench-thru", broker.url, n) for _ in range(runs)]
        if any(r["thru_lost"] or r["direct_lost"] or r["reordered"] for r in res):
            raise BenchError(f"throughput: events lost or reordered: {res}")
        thru = statistics.median(r["thru_eps"] for r in res)
        direct = statistics.median(r["direct_eps"] for r in res)
        self.raw["throughput"] = res
        flow = [self.flow_throughput(broker, n) for _ in range(runs)]
        self.raw["throughput_flow"] = flow
        eps = statistics.median(r["thru_eps"] for r in flow)
        ref = statistics.median(r["direct_eps"] for r in flow)
        self.row("reactive throughput, QoS 1, 0 lost (flowbus up, one pass-through task)", eps,
                 ref, "ev/s", ">= 25000", eps >= 25000, ref_label="direct stream, no hop")
        self.row("  fb_bus pass-through process (no fb_task), QoS 1, 0 lost", thru, direct,
                 "ev/s", ref_label="direct fb_bus stream, no hop")

    def flow_throughput(self, broker, n):
        """n events through RELAY, a reactive task of a real `flowbus up` run."""
        # A new run id each time: a used one is refused (its retained topics exist).
        self.flows = getattr(self, "flows", 0) + 1
        run_id = "benchflow-%d-%d" % (os.getpid(), self.flows)
        wf = self.path("relay-%s.yaml" % run_id)
        with open(wf, "w") as f:
            f.write("workflow:\n  name: relay\n  mode: reactive\n  tasks:\n"
                    "    - name: RELAY\n      plugin: benchrelay\n      inputs: [IN]\n"
                    "      outputs: [OUT]\n      execution: {queue: %d}\n" % (n + 100))
        up = subprocess.Popen([self.flowbus, "up", wf, "--broker", broker.url, "--run-id", run_id,
                               "-q", "--expiry", "60"], env=self.env, cwd=self.work,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            r = tool(self, "fbbench-thru", broker.url, n, "--flow", run_id)
        finally:
            up.terminate()
            try:
                up.wait(20)
            except subprocess.TimeoutExpired:
                up.kill()
                up.wait()
        if r["thru_lost"] or r["reordered"]:
            raise BenchError(f"reactive throughput: events lost or reordered: {r}")
        return r

    # -- 8. touched ----------------------------------------------------------

    def touched(self, broker):
        n = 10 if self.smoke else 100
        d = self.path("touch")
        os.makedirs(d, exist_ok=True)
        r = tool(self, "fbbench-touch", broker.url, os.path.join(self.bin, "flowbus-touched"), n, d)
        raw = self.raw["rtt_raw"]
        self.raw["touched"] = r
        self.row(f"touched reaction p50 (touch -> TRUE at a subscriber, n={n})", r["p50_ms"],
                 raw["hop_p50_us"] / 1e3, "ms", "<= 2 ms", r["p50_ms"] <= 2,
                 ref_label="raw libmosquitto hop")
        self.row("touched reaction p99", r["p99_ms"], raw["hop_p99_us"] / 1e3, "ms",
                 ref_label="raw libmosquitto hop p99")

    # -- 9. the loader (issue 14) --------------------------------------------

    def loader(self):
        """The workflow loader on hostile and on plain files of the same size.

        200,000 levels of [[[ (400 KB) took 116 s, quadratic in libyaml's
        scanner; the depth bound (100 levels) refuses it at level 101. The
        reference is a flat file of the same size, a workflow whose tasks'
        params hold lists of 200,000 numbers in all, loaded in the same invocation;
        lists 60 deep repeated to the same size show what nesting within the
        bound costs per byte, and a flat file ten times larger that the cost
        is linear in the size."""
        runs = 3 if self.smoke else 11
        levels = 200000
        deep = "[" * levels + "]" * levels + "\n"
        # A task's params reach it in its environment, bounded to 128 KiB of
        # JSON (workflow-format.md): the plain files spread their lists over
        # tasks of ~60 KB of params each.
        def spread(item, size):
            task = "    - name: A%d\n      plugin: start\n      params: {x: [%s]}\n"
            per = max(1, 60000 // (len(item) + 1))
            out, i = ["workflow:\n  tasks:\n"], 0
            total = len(out[0])
            while total < size:
                left = max(1, (size - total - len(task % (i, ""))) // (len(item) + 1))
                chunk = task % (i, ",".join([item] * min(per, left)))
                out.append(chunk)
                total += len(chunk)
                i += 1
            return "".join(out)

        def flat(size):
            return spread("0", size)

        nested = spread("[" * 59 + "]" * 59, len(deep))
        files = [self.write("load-deep200k.yaml", deep),
                 self.write("load-flat.yaml", flat(len(deep))),
                 self.write("load-nested60.yaml", nested),
                 self.write("load-flat10x.yaml", flat(10 * len(deep)))]
        r = tool(self, "fbbench-load", runs, *files)
        self.raw["loader"] = r
        if not r["f0_errors"] or r["f1_errors"] or r["f2_errors"] or r["f3_errors"]:
            raise BenchError(f"loader: the deep file must be refused, the others load: {r}")
        kb = lambda i: r[f"f{i}_bytes"] / 1024
        self.row(f"loader: {levels:,} levels of [[[ ({kb(0):.0f} KB), refused at level 101",
                 r["f0_s"] * 1e3, r["f1_s"] * 1e3, "ms", "< 1 s", r["f0_s"] < 1.0,
                 ref_label=f"flat file of {kb(1):.0f} KB, loaded")
        self.row(f"loader: lists 60 deep, {kb(2):.0f} KB (within the bounds), loaded",
                 r["f2_s"] * 1e3, r["f1_s"] * 1e3, "ms",
                 ref_label=f"flat file of {kb(1):.0f} KB")
        self.row(f"loader: flat file of {kb(3):.0f} KB (10x), loaded", r["f3_s"] * 1e3,
                 r["f1_s"] * 1e3, "ms", "linear (~10x)",
                 r["f3_s"] <= 15 * r["f1_s"], ref_label=f"flat file of {kb(1):.0f} KB")
    # -- 10. flowbus ui ------------------------------------------------------

    def ui_memory(self, broker):
        n = 10
        r = ui_rss.measure(self.flowbus, broker.url, self.work, streams=n, env=self.env)
        self.raw["ui_rss"] = r
        self.row(f"flowbus ui RSS, idle, {n} open event streams", r["rss_kb"] / 1024,
                 r["idle_rss_kb"] / 1024, "MB", "< 15 MB", r["rss_kb"] < 15 * 1024,
                 ref_label="same server, no stream")
        self.row(f"flowbus ui PSS, idle, {n} open event streams", r["pss_kb"] / 1024,
                 r["idle_pss_kb"] / 1024, "MB", ref_label="no stream")

    # -- 11, 13. across namespaced hosts (bench/multihost.py, multihost_place.py)

    def cross_host(self):
        multihost.measure(self, BenchError)
        multihost_place.measure(self, BenchError)

    # -- all -----------------------------------------------------------------

    def placement(self, broker):
        """Tasks placed on an agent (runs_on, docs/distributed.md) next to the same
        tasks on the coordinator's host, in the same invocation: a chain of n cmd
        tasks, each waiting for the one before. The step is from a producer's
        running to its consumer's running (both stamped by the tasks, on this
        host's clock): the producer's work (echo), its output's hop through the
        broker, the consumer's wake. The offer, the agent's start and its answer
        happen before that, while the task waits for its input, as a local
        task's start does; the makespan shows what they add."""
        n, runs = (20, 1) if self.smoke else (100, 3)

        def chain(name, placed):
            lines = ["workflow:", f"  name: {name}", "  tasks:"]
            for i in range(n):
                lines += [f"    - name: T{i:03d}", "      plugin: cmd"]
                if placed:
                    lines.append("      runs_on: bench")
                if i:
                    lines.append(f"      inputs: [V{i - 1:03d}]")
                lines += [f"      outputs: [V{i:03d}]", f"      params: {{argv: [echo, V{i:03d}=1]}}"]
            return self.write(f"{name}.yaml", "\n".join(lines) + "\n")

        agent = subprocess.Popen([self.flowbus, "agent", "--broker", broker.url, "--name",
                                  "bench1", "--labels", "bench"], env=self.env, cwd=self.work,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
        try:
            # The agent is up once its record is on the broker.
            deadline = time.monotonic() + 10
            while True:
                ls = subprocess.run([self.flowbus, "agents", "--broker", broker.url, "--json"],
                                    env=self.env, capture_output=True, text=True, timeout=30)
                if any(a.get("state") == "online" for a in json.loads(ls.stdout or "{}")
                       .get("agents", [])):
                    break
                if time.monotonic() > deadline:
                    raise BenchError("the bench agent did not come online")
                time.sleep(0.05)  # polling the broker through the CLI: no event to wait on
            figures = {}
            for placed in (False, True):
                name = "placed" if placed else "local"
                wf = chain(f"chain-{name}", placed)
                spans, gaps = [], []
                for k in range(runs):
                    run_id = f"bench-{name}-{k}-{os.getpid()}"
                    cmd = [self.flowbus, "run", wf, "--broker", broker.url, "--run-id", run_id,
                           "-q"]
                    t, _ = timed(cmd, env=self.env, cwd=self.work, timeout=600)
                    spans.append(t)
                    st = subprocess.run([self.flowbus, "status", run_id, "--broker", broker.url,
                                         "--json"], env=self.env, capture_output=True, text=True,
                                        timeout=30)
                    tasks = json.loads(st.stdout)["tasks"]
                    for a, b in zip(tasks, tasks[1:]):
                        if a.get("started") and b.get("started"):
                            gaps.append(b["started"] - a["started"])
                gaps.sort()
                figures[name] = (statistics.median(spans), gaps[len(gaps) // 2],
                                 gaps[min(len(gaps) - 1, int(len(gaps) * 0.99))])
                self.raw[f"placement_{name}"] = dict(makespan=spans, gaps=gaps)
            (ls_, l50, l99), (ps, p50, p99) = figures["local"], figures["placed"]
            self.row(f"{n}-task chain makespan, every task on an agent (same host)", ps, ls_, "s",
                     ref_label="same chain on the coordinator's host")
            self.row("placed chain: a task running -> the next running, p50", p50 * 1e3, l50 * 1e3,
                     "ms", ref_label="local tasks, same chain")
            self.row("placed chain: a task running -> the next running, p99", p99 * 1e3, l99 * 1e3,
                     "ms", ref_label="local tasks, same chain")
        finally:
            agent.terminate()
            try:
                agent.wait(10)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()

    # The figures measured on both MQTT backends (scripts/bench's Paho pass).
    BOTH = ("hop latency", "makespans", "per-task overhead", "task cpu", "throughput", "memory")

    def run(self, only=None):
        steps = [("hop latency", lambda b: self.hop_latency(b)),
                 ("touched reaction", lambda b: self.touched(b)),
                 ("makespans", lambda b: self.makespans(b)),
                 ("fan-out/fan-in", lambda b: self.fan(b)),
                 ("per-task overhead", lambda b: self.overhead(b)),
                 ("task cpu", lambda b: self.task_cpu(b)),
                 ("throughput", lambda b: self.throughput(b)),
                 ("mqtt relay flood", lambda b: mqtt_relay.measure(self, b)),
                 ("flowbus ui memory", lambda b: self.ui_memory(b)),
                 ("placement", lambda b: self.placement(b)),
                 ("memory", None), ("scale", None), ("loader", None),
                 ("cross_host", None)]
        for name, fn in steps:
            if only is not None and name not in only:
                continue
            t0 = time.monotonic()
            print(f"bench: {name}...", file=sys.stderr, flush=True)
            if fn is None:
                getattr(self, name)()
            else:
                broker = Broker(self.work)
                try:
                    fn(broker)
                finally:
                    broker.stop()
            print(f"bench: {name} took {time.monotonic() - t0:.1f}s", file=sys.stderr, flush=True)

    def table(self):
        def fmt(v):
            if v is None:
                return "-"
            if isinstance(v, str):
                return v
            if abs(v) >= 1000:
                return f"{v:,.0f}"
            if abs(v) >= 10:
                return f"{v:.1f}"
            return f"{v:.3f}"

        head = ("figure", "flowbus", "reference (same invocation)", "ratio", "target", "met?")
        lines = []
        for r in self.rows:
            ref = fmt(r["ref"]) + (f" {r['unit']}" if r["ref"] is not None else "")
            if r["ref_label"]:
                ref = (ref + " " if r["ref"] is not None else "") + f"({r['ref_label']})"
            met = "-" if r["met"] is None else ("yes" if r["met"] else "NO")
            ratio = f"{r['ratio']:.2f}x" if isinstance(r["ratio"], float) else "-"
            lines.append((r["figure"], f"{fmt(r['value'])} {r['unit']}", ref, ratio,
                          r["target"], met))
        return "| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n" + "".join(
            "| " + " | ".join(l) + " |\n" for l in lines)


def fmt_value(v, unit):
    if v is None:
        return "-"
    if isinstance(v, str):
        return f"{v} {unit}"
    if abs(v) >= 1000:
        return f"{v:,.0f} {unit}"
    if abs(v) >= 10:
        return f"{v:.1f} {unit}"
    return f"{v:.3f} {unit}"


def side_by_side(default, paho):
    """The figures both backends measured, one row each: libmosquitto (the
    default), Paho, the default run's reference and the target."""
    theirs = {r["figure"]: r for r in paho.rows}
    head = ("figure", "libmosquitto (default)", "Paho", "reference (libmosquitto run)", "target",
            "met? (default / Paho)")
    lines = []
    for r in default.rows:
        p = theirs.get(r["figure"])
        if p is None:
            continue
        ref = fmt_value(r["ref"], r["unit"]) if r["ref"] is not None else ""
        if r["ref_label"]:
            ref = (ref + " " if ref else "") + f"({r['ref_label']})"
        met = lambda x: "-" if x["met"] is None else ("yes" if x["met"] else "NO")
        lines.append((r["figure"], fmt_value(r["value"], r["unit"]), fmt_value(p["value"], p["unit"]),
                      ref, r["target"], f"{met(r)} / {met(p)}"))
    return "| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n" + "".join(
        "| " + " | ".join(l) + " |\n" for l in lines)


def run_bench(bench, only=None):
    code = 0
    try:
        bench.run(only)
    except BenchError as e:
        print(f"bench: BROKEN BENCHMARK: {e}", file=sys.stderr)
        code = 1
    finally:
        shutil.rmtree(bench.work, ignore_errors=True)
    return code


def main():
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    smoke = "--smoke" in args
    json_out = args[args.index("--json") + 1] if "--json" in args else None
    paho_build = args[args.index("--paho") + 1] if "--paho" in args else None
    bench = Bench(args[0], smoke)
    code = run_bench(bench)
    print(bench.table(), end="")
    for n in bench.notes:
        print(f"note: {n}")
    paho = None
    if paho_build:
        print("bench: the same figures with the SDK on Paho (-DFLOWBUS_MQTT=paho)...",
              file=sys.stderr, flush=True)
        paho = Bench(paho_build, smoke)
        code |= run_bench(paho, Bench.BOTH)
        print("\nBoth MQTT backends, side by side:\n")
        print(side_by_side(bench, paho), end="")
        for n in paho.notes:
            print(f"note (Paho): {n}")
    if json_out:
        with open(json_out, "w") as f:
            out = dict(smoke=smoke, rows=bench.rows, raw=bench.raw, notes=bench.notes)
            if paho is not None:
                out["paho"] = dict(rows=paho.rows, raw=paho.raw, notes=paho.notes)
            json.dump(out, f, indent=1, default=str)
    return code


if __name__ == "__main__":
    sys.exit(main())
