"""uiserver - a running `flowbus ui` for the tests of tests/ui/, and an HTTP client for it.

    with UiServer(workflows_dir, broker=broker) as ui:     # broker: an fbtest.Broker or None
        status, headers, body = ui.request("GET", "/api/workflows")
        for event in ui.events("/api/runs/ID/events"):      # SSE, parsed
            ...

The server listens on 127.0.0.1 on a port the kernel picks (--listen
127.0.0.1:0); the test reads the port from the line the server prints when
it is ready, with a deadline. It is stopped by PID (SIGINT, as Ctrl-C), and
its stderr (the access log) is kept for the tests that read it.
"""

import http.client
import json
import os
import re
import signal
import subprocess
import threading
import time

import fbtest

TOKEN = "test-token-0123456789abcdef"


class UiServer:
    def __init__(self, workflows, broker=None, plugins=None, token=TOKEN, extra_args=(),
                 env=None, listen="127.0.0.1:0", start_timeout=10.0):
        self.token = token
        cmd = [fbtest.bin_path("flowbus"), "ui", "--listen", listen, "--workflows", workflows]
        if plugins:
            cmd += ["--plugins", plugins]
        if broker is not None:
            cmd += ["--broker", broker.url]
        cmd += list(extra_args)
        full_env = dict(os.environ if env is None else env)
        for key in [k for k in full_env if k.startswith("FLOWBUS_") and k != "FLOWBUS_BUILD_DIR"]:
            del full_env[key]
        if token:
            full_env["FLOWBUS_UI_TOKEN"] = token
        self.lines = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(cmd, env=full_env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        line = self.wait_line(r"listening on [^ ]*:(\d+);", start_timeout)
        if line is None:
            self.stop()
            raise RuntimeError("flowbus ui did not start:\n" + self.stderr())
        self.port = int(re.search(r"listening on [^ ]*:(\d+);", line).group(1))
        url = self.wait_line(r"^flowbus ui: http://", 1.0)
        self.url_line = url or ""
        broker_line = self.wait_line(r"^flowbus ui: broker ", 1.0) or ""
        m = re.search(r"broker (tcp://[0-9.:]+)", broker_line)
        self.broker_url = m.group(1) if m else None
        m = re.search(r"\. (/\S+/broker\.env)", broker_line)
        self.env_file = m.group(1) if m else None

    def _read(self):
        for line in self.proc.stderr:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)  # EOF
            self.cond.notify_all()

    def wait_line(self, pattern, timeout):
        """The first stderr line matching pattern, waiting up to timeout s; None if none came."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    if line is not None and rx.search(line):
                        return line
                if None in self.lines:
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def stderr(self):
        with self.cond:
            return "\n".join(line for line in self.lines if line is not None)

    # ------------------------------------------------------------------ HTTP

    def connection(self, timeout=15.0):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, token=True, raw=False,
                timeout=15.0):
        """One request; returns (status, headers dict (lower-case names), body).

        body: a dict/list is sent as JSON; bytes/str as they are. The body
        returned is parsed JSON when the answer is JSON, unless raw.
        """
        h = {"Host": f"127.0.0.1:{self.port}"}
        if token and self.token:
            h["Authorization"] = f"Bearer {self.token}"
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        conn = self.connection(timeout)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for k, v in h.items():
                conn.putheader(k, v)
            data = body.encode() if isinstance(body, str) else body
            if data is not None and "Content-Length" not in h and \
                    "Transfer-Encoding" not in h:
                conn.putheader("Content-Length", str(len(data)))
            conn.endheaders()
            if data is not None:
                conn.send(data)
            resp = conn.getresponse()
            payload = resp.read()
            headers_out = {k.lower(): v for k, v in resp.getheaders()}
            if not raw and headers_out.get("content-type", "").startswith("application/json"):
                payload = json.loads(payload)
            return resp.status, headers_out, payload
        finally:
            conn.close()

    def events(self, path, last_event_id=None, timeout=20.0, headers=None):
        """Yields the events of an SSE stream as dicts {id, event, data}; stops at the deadline.

        The generator's close() closes the connection.
        """
        h = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if last_event_id is not None:
            h["Last-Event-ID"] = str(last_event_id)
        h.update(headers or {})
        conn = self.connection(timeout)
        try:
            conn.request("GET", path, headers=h)
            resp = conn.getresponse()
            if resp.status != 200:
                raise AssertionError(f"GET {path}: {resp.status} {resp.read()!r}")
            if not resp.getheader("Content-Type", "").startswith("text/event-stream"):
                raise AssertionError(f"GET {path}: not an event stream")
            deadline = time.monotonic() + timeout
            event = {}
            while time.monotonic() < deadline:
                line = resp.readline()
                if not line:
                    return
                line = line.decode().rstrip("\n")
                if line == "":
                    if "event" in event or "data" in event:
                        if "data" in event:
                            event["data"] = json.loads(event["data"])
                        yield event
                    event = {}
                elif line.startswith(":"):
                    continue
                else:
                    key, _, value = line.partition(": ")
                    if key == "id":
                        event["id"] = int(value)
                    elif key in ("event", "data", "retry"):
                        event[key] = value
        finally:
            conn.close()

    # -------------------------------------------------------------- stopping

    def stop(self, sig=signal.SIGINT, timeout=30.0):
        """Stops the server by PID; returns its exit code."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._reader.join(5)
        if self.proc.stderr:
            self.proc.stderr.close()
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        code = self.stop()
        text = self.stderr()
        # A clean Ctrl-C exits 0; a sanitizer report (a leak at exit, UB) fails the test.
        bad = code != 0 or "Sanitizer" in text or "runtime error:" in text
        if exc_type is not None or bad:
            import sys
            sys.stderr.write(f"--- flowbus ui stderr (exit {code}) ---\n{text}\n")
        if bad and exc_type is None:
            raise AssertionError(f"flowbus ui exited {code} or reported a sanitizer error")
        return False


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def validate_cli(path):
    """`flowbus validate PATH`: (exit code, stderr lines)."""
    p = fbtest.run([fbtest.bin_path("flowbus"), "validate", path], timeout=20)
    return p.returncode, [line for line in p.stderr.splitlines() if line.strip()]
