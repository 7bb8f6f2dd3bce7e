"""ui_rss - the memory of an idle `flowbus ui` with open event streams (issue 11's figure).

    from ui_rss import measure
    r = measure(flowbus, broker_url, workdir, streams=10)

Starts `flowbus ui` on the given broker with a small workflows directory,
runs one workflow through it so that the run view and an event log hold
something, then measures the server's RSS and PSS (/proc/PID/smaps_rollup)
with no stream open, and again with `streams` event streams open on that
run (each has read its first bytes, and /api/info counts them). The ratio
of the two is what a stream costs. It is a figure for bench/, never a
pass/fail test.
"""

import http.client
import json
import os
import re
import signal
import subprocess
import time

TOKEN = "bench-token-0123456789abcdef"

WORKFLOW = """workflow:
  name: "rss"
  tasks:
    - {name: "START", plugin: "start", outputs: ["TRUE"]}
    - {name: "A", plugin: "cmd", inputs: ["TRUE"], outputs: ["X"], params: {command: "echo X=1"}}
    - {name: "END", plugin: "end", inputs: ["X"]}
"""


def _mem(pid):
    rss = pss = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    return rss, pss


def _request(port, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        if body is not None:
            body = json.dumps(body)
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


def _wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"ui_rss: {what} within {timeout}s")
        time.sleep(0.02)  # polling an HTTP answer: there is no event to wait on


def measure(flowbus, broker_url, workdir, streams=10, env=None):
    wf = os.path.join(workdir, "ui-rss-workflows")
    os.makedirs(wf, exist_ok=True)
    with open(os.path.join(wf, "rss.yaml"), "w") as f:
        f.write(WORKFLOW)
    full_env = dict(os.environ if env is None else env, FLOWBUS_UI_TOKEN=TOKEN)
    proc = subprocess.Popen([flowbus, "ui", "--listen", "127.0.0.1:0", "--workflows", wf,
                             "--plugins", os.path.join(workdir, "ui-rss-plugins"), "--broker",
                             broker_url, "-q"], env=full_env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    conns = []
    try:
        port = None
        for line in proc.stderr:
            m = re.search(r"listening on [^ ]*:(\d+);", line)
            if m:
                port = int(m.group(1))
                break
        if port is None:
            raise RuntimeError("ui_rss: flowbus ui did not start")
        status, body = _request(port, "POST", "/api/runs", {"file": "rss.yaml"})
        if status not in (201, 202):
            raise RuntimeError(f"ui_rss: POST /api/runs: {status} {body}")
        run_id = body["run_id"]
        _wait(lambda: _request(port, "GET", f"/api/runs/{run_id}")[1].get("state") == "done",
              30, "the run did not end")
        idle = _mem(proc.pid)
        for _ in range(streams):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            c.request("GET", f"/api/runs/{run_id}/events",
                      headers={"Authorization": f"Bearer {TOKEN}"})
            r = c.getresponse()
            r.read1(1)
            conns.append((c, r))
        _wait(lambda: _request(port, "GET", "/api/info")[1]["streams"] == streams, 10,
              f"{streams} streams were not open")
        time.sleep(0.2)  # let the streams settle into their suspended state
        loaded = _mem(proc.pid)
        return dict(streams=streams, idle_rss_kb=idle[0], idle_pss_kb=idle[1],
                    rss_kb=loaded[0], pss_kb=loaded[1])
    finally:
        for c, _ in conns:
            c.close()
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        proc.stderr.close()
