"""The security of `flowbus ui` (docs/http-api.md, "Security"), each point a test.

The token (required, generated and printed once, kept in a cookie, never
handed to a run, never in the access log), --no-token only on loopback,
the Host check (DNS rebinding), the Origin check (CSRF), file access
confined to the workflows directory (no '..', no absolute path, no symlink),
bodies over 1 MiB refused, secrets and AUTH_TOKEN never sent to the browser
or the event stream, and a clean Ctrl-C on the private broker that leaves
no process behind.
"""

import json
import os
import re
import shutil
import signal
import socket
import stat
import tempfile
import time
import unittest

import fbtest
from uiserver import TOKEN, UiServer, write

SPLIT = """workflow:
  name: "tiny"
  tasks:
    - name: "START"
      plugin: "start"
      outputs: ["TRUE"]
    - name: "END"
      plugin: "end"
      inputs: ["TRUE"]
"""

LEAK = """workflow:
  name: "leak check"
  tasks:
    - name: "START"
      plugin: "start"
      outputs: ["TRUE"]
    - name: "ENV"
      plugin: "cmd"
      inputs: ["TRUE"]
      outputs: ["HAS"]
      params: {command: 'echo HAS="${FLOWBUS_UI_TOKEN:-none}"'}
    - name: "END"
      plugin: "end"
      inputs: ["HAS"]
"""

SECRETS = """workflow:
  name: "secrets"
  env:
    PASSWORD: {value: "{{ENV:UI_TEST_SECRET}}", secret: true}
    PLAIN: "{{ENV:UI_TEST_PLAIN}}"
  tasks:
    - name: "START"
      plugin: "start"
      outputs: ["TRUE"]
    - name: "USE"
      plugin: "cmd"
      inputs: ["TRUE", "PASSWORD"]
      outputs: ["OK"]
      params: {command: 'test "$PASSWORD" = "$UI_TEST_SECRET" && echo OK=1'}
    - name: "END"
      plugin: "end"
      inputs: ["OK"]
"""

AUTH = """workflow:
  name: "auth"
  env:
    AUTH_TOKEN: "{{ENV:AUTH_TOKEN}}"
  tasks:
    - name: "START"
      plugin: "start"
      outputs: ["TRUE"]
    - name: "END"
      plugin: "end"
      inputs: ["TRUE"]
"""

REACTIVE = """workflow:
  name: "ticker"
  mode: reactive
  tasks:
    - name: "TICK"
      plugin: "every"
      outputs: ["TICK", "NOW"]
      params: {interval: "200ms"}
    - name: "ECHO"
      plugin: "cmd"
      inputs: ["TICK"]
      outputs: ["SEEN"]
      params: {command: 'echo SEEN=1'}
"""


class SecurityTestCase(fbtest.BrokerTestCase):
    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="fbtest-uisec-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.wf = os.path.join(self.dir, "workflows")
        os.mkdir(self.wf)
        write(os.path.join(self.wf, "tiny.yaml"), SPLIT)
        write(os.path.join(self.wf, "leak.yaml"), LEAK)
        write(os.path.join(self.wf, "secrets.yaml"), SECRETS)
        write(os.path.join(self.wf, "auth.yaml"), AUTH)
        write(os.path.join(self.wf, "ticker.yaml"), REACTIVE)

    def server(self, **kw):
        ui = UiServer(self.wf, **kw)
        self.addCleanup(ui.__exit__, None, None, None)
        return ui

    def wait_run(self, ui, run_id, states=("done", "failed", "stopped"), timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            status, _, body = ui.request("GET", "/api/runs/" + run_id)
            if status == 200 and body["state"] in states:
                return body
            self.assertLess(time.monotonic(), deadline, f"run {run_id}: {body}")
            self.recorder.wait_for(lambda ev, n=len(self.recorder.events): len(ev) > n, 0.5)


class TestToken(SecurityTestCase):
    def test_api_needs_the_token(self):
        ui = self.server(broker=self.broker)
        status, _, body = ui.request("GET", "/api/workflows", token=False)
        self.assertEqual(status, 401)
        self.assertTrue(body["token_required"])
        status, _, _ = ui.request("GET", "/api/workflows", token=False,
                                  headers={"Authorization": "Bearer wrong-token-wrong-token"})
        self.assertEqual(status, 401)
        status, _, _ = ui.request("POST", "/api/runs", {"file": "tiny.yaml"}, token=False)
        self.assertEqual(status, 401)
        self.assertEqual(ui.request("GET", "/api/workflows")[0], 200)
        self.assertEqual(ui.request("GET", f"/api/workflows?token={TOKEN}", token=False)[0], 200)
        # The editor's page holds no data: no token needed.
        self.assertEqual(ui.request("GET", "/", token=False, raw=True)[0], 200)

    def test_token_url_sets_a_cookie_and_leaves_the_address(self):
        ui = self.server(broker=self.broker)
        status, headers, _ = ui.request("GET", f"/?token={TOKEN}", token=False, raw=True)
        self.assertEqual(status, 302)
        self.assertEqual(headers["location"], "/")
        cookie = headers["set-cookie"]
        self.assertIn(f"flowbus_ui_token_{ui.port}={TOKEN}", cookie)
        self.assertIn("HttpOnly", cookie)
        self.assertIn("SameSite=Strict", cookie)
        status, _, _ = ui.request("GET", "/api/runs", token=False,
                                  headers={"Cookie": f"flowbus_ui_token_{ui.port}={TOKEN}"})
        self.assertEqual(status, 200)
        status, _, _ = ui.request("GET", "/api/runs", token=False,
                                  headers={"Cookie": f"flowbus_ui_token_{ui.port}=nope"})
        self.assertEqual(status, 401)

    def test_generated_token_is_printed_once_and_never_reaches_a_run_or_the_log(self):
        ui = self.server(broker=self.broker, token=None)
        m = re.search(r"\?token=([0-9a-f]{32})$", ui.url_line)
        self.assertIsNotNone(m, ui.url_line)
        ui.token = m.group(1)
        status, _, body = ui.request("POST", "/api/runs", {"file": "leak.yaml"},
                                     headers={"X-Probe": ui.token})
        self.assertEqual(status, 201, body)
        run = self.wait_run(ui, body["run_id"])
        self.assertEqual({v["name"]: v["value"] for v in run["vars"]}["HAS"], "none")
        ui.request("GET", f"/api/info?token={ui.token}", token=False)
        ui.stop()
        self.assertEqual(ui.stderr().count(ui.token), 1, ui.stderr())  # the URL line only
        self.assertRegex(ui.stderr(), r'"GET /api/info" 200')

    def test_default_address_is_loopback(self):
        # Port 8080 may be taken on a shared machine: either it listens there,
        # or it says it could not; both name the default address.
        proc = fbtest.spawn([fbtest.bin_path("flowbus"), "ui", "--workflows", self.wf,
                             "--broker", self.broker.url],
                            env=dict(os.environ, FLOWBUS_UI_TOKEN=TOKEN))
        try:
            line = ""
            for line in proc.stderr:
                if "listening on" in line or "cannot listen" in line:
                    break
            self.assertRegex(line, r"(listening on|cannot listen on) 127\.0\.0\.1:8080\b")
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGINT)
            proc.communicate(timeout=30)

    def test_no_token_is_refused_off_loopback(self):
        p = fbtest.run([fbtest.bin_path("flowbus"), "ui", "--listen", "0.0.0.0:0", "--no-token",
                        "--workflows", self.wf, "--broker", self.broker.url], timeout=20)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--no-token is refused", p.stderr)

    def test_any_address_requires_the_token(self):
        ui = self.server(broker=self.broker, listen="0.0.0.0:0")
        self.assertEqual(ui.request("GET", "/api/info", token=False)[0], 401)
        self.assertEqual(ui.request("GET", "/api/info")[0], 200)

    def test_no_token_on_loopback(self):
        ui = self.server(broker=self.broker, token=None, extra_args=["--no-token"])
        self.assertNotIn("token=", ui.url_line)
        status, _, body = ui.request("GET", "/api/info", token=False)
        self.assertEqual(status, 200)
        self.assertFalse(body["token_required"])
        # Origin and Host still apply.
        status, _, _ = ui.request("POST", "/api/validate", {"yaml": SPLIT}, token=False,
                                  headers={"Origin": "http://evil.example"})
        self.assertEqual(status, 403)


class TestHostAndOrigin(SecurityTestCase):
    def test_host_must_name_this_server(self):
        ui = self.server(broker=self.broker)
        for host in ("evil.example", f"evil.example:{ui.port}", f"127.0.0.1:{ui.port + 1}",
                     "127.0.0.1"):
            status, _, _ = ui.request("GET", "/api/info", headers={"Host": host})
            self.assertEqual(status, 403, host)
            status, _, _ = ui.request("GET", "/", headers={"Host": host}, raw=True)
            self.assertEqual(status, 403, host)
        for host in (f"localhost:{ui.port}", f"127.0.0.1:{ui.port}", f"LOCALHOST:{ui.port}"):
            self.assertEqual(ui.request("GET", "/api/info", headers={"Host": host})[0], 200, host)

    def test_origin_must_be_our_own(self):
        ui = self.server(broker=self.broker)
        own = f"http://127.0.0.1:{ui.port}"
        for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                        {"Origin": f"http://localhost:{ui.port}"},  # not the Host it sent
                        {"Origin": f"https://127.0.0.1:{ui.port}"},
                        {"Origin": own, "Sec-Fetch-Site": "cross-site"}):
            status, _, body = ui.request("POST", "/api/validate", {"yaml": SPLIT},
                                         headers=headers)
            self.assertEqual(status, 403, (headers, body))
        status, headers, _ = ui.request("POST", "/api/validate", {"yaml": SPLIT},
                                        headers={"Origin": own, "Sec-Fetch-Site": "same-origin"})
        self.assertEqual(status, 200)
        self.assertNotIn("access-control-allow-origin", headers)
        # A cross-site stop is refused before the run is even looked up.
        status, _, _ = ui.request("POST", "/api/runs/any/stop",
                                  headers={"Origin": "http://evil.example"})
        self.assertEqual(status, 403)


    def test_allow_origin_adds_one_origin(self):
        ui = self.server(broker=self.broker,
                         extra_args=["--allow-origin", "http://localhost:5173"])
        status, _, _ = ui.request("POST", "/api/validate", {"yaml": SPLIT},
                                  headers={"Origin": "http://localhost:5173"})
        self.assertEqual(status, 200)
        status, _, _ = ui.request("POST", "/api/validate", {"yaml": SPLIT},
                                  headers={"Origin": "http://localhost:5174"})
        self.assertEqual(status, 403)


class TestConfinement(SecurityTestCase):
    def test_traversal_and_absolute_paths(self):
        outside = os.path.join(self.dir, "outside.yaml")
        write(outside, SPLIT)
        ui = self.server(broker=self.broker)
        for path in ("/api/workflows/..%2Foutside.yaml", "/api/workflows/%2E%2E%2Foutside.yaml",
                     "/api/workflows/..%2F..%2F..%2Fetc%2Fpasswd",
                     "/api/workflows/%2Fetc%2Fpasswd", "/api/graph/..%2Foutside.yaml",
                     "/api/workflows/.hidden.yaml"):
            status, _, body = ui.request("GET", path)
            self.assertIn(status, (403, 404), path)
            self.assertNotIn("yaml", body if isinstance(body, dict) else {}, path)
        status, _, _ = ui.request("PUT", "/api/workflows/..%2Foutside.yaml", {"yaml": SPLIT})
        self.assertEqual(status, 403)
        status, _, _ = ui.request("POST", "/api/workflows", {"file": "/tmp/x.yaml", "yaml": SPLIT})
        self.assertEqual(status, 403)
        status, _, _ = ui.request("POST", "/api/runs", {"file": "../outside.yaml"})
        self.assertEqual(status, 403)

    def test_symlinks_lead_nowhere(self):
        outside = os.path.join(self.dir, "outside.yaml")
        write(outside, SPLIT)
        os.symlink(outside, os.path.join(self.wf, "link.yaml"))
        ui = self.server(broker=self.broker)
        status, _, body = ui.request("GET", "/api/workflows/link.yaml")
        self.assertEqual(status, 403, body)
        status, _, _ = ui.request("PUT", "/api/workflows/link.yaml",
                                  {"yaml": SPLIT.replace("tiny", "overwritten")})
        self.assertEqual(status, 403)
        with open(outside) as f:
            self.assertEqual(f.read(), SPLIT)
        self.assertTrue(os.path.islink(os.path.join(self.wf, "link.yaml")))
        status, _, _ = ui.request("POST", "/api/workflows", {"file": "link.yaml", "yaml": SPLIT})
        self.assertEqual(status, 409)
        self.assertEqual(ui.request("GET", "/api/graph/link.yaml")[0], 403)
        self.assertEqual(ui.request("POST", "/api/runs", {"file": "link.yaml"})[0], 403)
        _, _, listed = ui.request("GET", "/api/workflows")
        self.assertNotIn("link.yaml", [w["file"] for w in listed["workflows"]])

    def test_static_files_are_confined(self):
        static = os.path.join(self.dir, "static")
        os.mkdir(static)
        write(os.path.join(static, "index.html"), "<p>editor</p>")
        os.symlink(os.path.join(self.dir, "workflows", "tiny.yaml"),
                   os.path.join(static, "leak.txt"))
        ui = self.server(broker=self.broker, extra_args=["--static", static])
        status, headers, body = ui.request("GET", "/", token=False, raw=True)
        self.assertEqual((status, body), (200, b"<p>editor</p>"))
        self.assertIn("frame-ancestors 'none'", headers["content-security-policy"])
        status, _, body = ui.request("GET", "/some/editor/route", token=False, raw=True)
        self.assertEqual((status, body), (200, b"<p>editor</p>"))
        for path in ("/leak.txt", "/..%2Fworkflows%2Ftiny.yaml", "/%2E%2E/workflows/tiny.yaml"):
            status, _, body = ui.request("GET", path, token=False, raw=True)
            self.assertIn(status, (403, 404), path)
            self.assertNotIn(b"workflow:", body, path)

    def test_bodies_over_one_mebibyte_are_refused(self):
        ui = self.server(broker=self.broker)
        # Refused from its Content-Length, before the body is sent at all.
        for method, path in (("POST", "/api/validate"), ("PUT", "/api/workflows/tiny.yaml")):
            conn = ui.connection()
            try:
                conn.putrequest(method, path, skip_host=True)
                conn.putheader("Host", f"127.0.0.1:{ui.port}")
                conn.putheader("Authorization", f"Bearer {TOKEN}")
                conn.putheader("Content-Type", "application/json")
                conn.putheader("Content-Length", str(1024 * 1024 + 1))
                conn.endheaders()
                resp = conn.getresponse()
                self.assertEqual(resp.status, 413, path)
                self.assertIn(b"larger than", resp.read())
            finally:
                conn.close()
        with open(os.path.join(self.wf, "tiny.yaml")) as f:
            self.assertEqual(f.read(), SPLIT)
        # Chunked, without a Content-Length: refused once it passes the limit.
        conn = ui.connection()
        try:
            conn.putrequest("POST", "/api/validate", skip_host=True)
            conn.putheader("Host", f"127.0.0.1:{ui.port}")
            conn.putheader("Authorization", f"Bearer {TOKEN}")
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            chunk = b"#" * 65536
            for _ in range(20):
                conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            conn.send(b"0\r\n\r\n")
            self.assertEqual(conn.getresponse().status, 413)
        finally:
            conn.close()
        # Just under the limit is read.
        ok = json.dumps({"yaml": SPLIT + "#" * (1024 * 1024 - 200)})
        self.assertEqual(ui.request("POST", "/api/validate", ok,
                                    headers={"Content-Type": "application/json"})[0], 200)


class TestLimits(SecurityTestCase):
    def test_at_most_64_event_streams(self):
        ui = self.server(broker=self.broker)
        conns = []
        try:
            for _ in range(64):
                c = ui.connection()
                c.request("GET", "/api/events", headers={"Authorization": f"Bearer {TOKEN}"})
                r = c.getresponse()
                self.assertEqual(r.status, 200)
                r.read1(1)
                conns.append(c)
            status, _, body = ui.request("GET", "/api/events")
            self.assertEqual(status, 503, body)
            self.assertIn("too many", body["error"])
            self.assertEqual(ui.request("GET", "/api/info")[2]["streams"], 64)
        finally:
            for c in conns:
                c.close()


class TestSecrets(SecurityTestCase):
    SECRET = "s3cr3t-xyz"
    PLAIN = "plain-env-value-42"
    AUTH = "auth-tok-123456"

    def test_secrets_and_auth_token_never_reach_the_browser(self):
        env = dict(os.environ, UI_TEST_SECRET=self.SECRET, UI_TEST_PLAIN=self.PLAIN,
                   AUTH_TOKEN=self.AUTH)
        ui = self.server(broker=self.broker, env=env)
        seen = []
        for path in ("/api/workflows", "/api/workflows/secrets.yaml", "/api/workflows/auth.yaml"):
            status, _, body = ui.request("GET", path)
            self.assertEqual(status, 200)
            seen.append(json.dumps(body))
        _, _, model = ui.request("GET", "/api/workflows/secrets.yaml")
        self.assertEqual(model["model"]["env"]["PASSWORD"], "<secret>")
        # The environment's value is not resolved for the browser: the reference stays.
        self.assertEqual(model["model"]["env"]["PLAIN"], "{{ENV:UI_TEST_PLAIN}}")
        _, _, body = ui.request("POST", "/api/validate", {"yaml": AUTH})
        seen.append(json.dumps(body))
        # What the editor reads never holds an environment's value; a run
        # publishes its plain (not secret) variables, so PLAIN is only checked here.
        for text in seen:
            self.assertNotIn(self.PLAIN, text)
        # A secret is not settable from the browser.
        status, _, _ = ui.request("POST", "/api/runs", {"file": "secrets.yaml",
                                                        "set": {"PASSWORD": "x"}})
        self.assertEqual(status, 422)
        status, _, body = ui.request("POST", "/api/runs", {"file": "secrets.yaml"})
        self.assertEqual(status, 201, body)
        run_id = body["run_id"]
        events = []
        stream = ui.events(f"/api/runs/{run_id}/events", timeout=30)
        for e in stream:
            events.append(e)
            if e["event"] == "end":
                break
        stream.close()
        self.assertEqual(events[-1]["data"]["state"], "done")  # the task got the secret
        self.assertIn({"name": "PASSWORD", "value": "***", "secret": True},
                      ui.request("GET", f"/api/runs/{run_id}")[2]["vars"])
        seen.append(json.dumps(events))
        seen.append(json.dumps(ui.request("GET", f"/api/runs/{run_id}")[2]))
        seen.append(json.dumps(ui.request("GET", "/api/runs")[2]))
        status, _, _ = ui.request("POST", f"/api/runs/{run_id}/set", {"PASSWORD": "x"})
        self.assertIn(status, (409, 422))
        ui.stop()
        seen.append(ui.stderr())
        for text in seen:
            for value in (self.SECRET, self.AUTH):
                self.assertNotIn(value, text)


class TestPrivateBroker(SecurityTestCase):
    def test_ctrl_c_stops_its_runs_and_its_broker(self):
        ui = self.server()  # no --broker: the private one
        self.assertIsNotNone(ui.broker_url, ui.stderr())
        self.assertIsNotNone(ui.env_file, ui.stderr())
        self.assertEqual(stat.S_IMODE(os.stat(ui.env_file).st_mode), 0o600)
        status, _, body = ui.request("POST", "/api/runs", {"file": "ticker.yaml",
                                                           "mode": "reactive"})
        self.assertEqual(status, 201, body)
        run_pid = body["pid"]
        # The terminal sees the run with the printed credentials.
        env = dict(os.environ)
        with open(ui.env_file) as f:
            for line in f:
                m = re.match(r"export (\w+)='([^']*)'", line)
                if m:
                    env[m.group(1)] = m.group(2)
        cli = fbtest.run([fbtest.bin_path("flowbus"), "status", "--json"], env=env)
        self.assertEqual(cli.returncode, 0, cli.stderr)
        self.assertIn(body["run_id"], [r["run_id"] for r in json.loads(cli.stdout)["runs"]])
        port = int(ui.broker_url.rsplit(":", 1)[1])
        env_file = ui.env_file
        started = time.monotonic()
        self.assertEqual(ui.stop(signal.SIGINT), 0, ui.stderr())
        self.assertLess(time.monotonic() - started, 20)
        with self.assertRaises(ProcessLookupError):
            os.kill(run_pid, 0)
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        self.assertFalse(os.path.exists(env_file))
        self.assertIn("stopping the 1 run", ui.stderr())


if __name__ == "__main__":
    unittest.main()
