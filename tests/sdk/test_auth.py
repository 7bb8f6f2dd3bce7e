"""Permission tests: the SDK's Attica client and the plugins' checks.

Each test starts its own mosquitto (fbtest.BrokerTestCase) and, where it
needs one, its own stand-in Attica service (tests/fixtures/attica_server.py)
on a free loopback port, and stops both by PID. Task processes are started
the way flowbus starts them (fbtest.task_env) plus the variables the
coordinator sets for permissions (docs/security.md).

Every test that ends a task "denied" checks that the state's error names the
case, that the process exited 77 (FB_EXIT_DENIED) without acting, and that the token appears
nowhere: not on flowbus/#, not on stdout/stderr, not in the cache directory.

Use /usr/bin/python3 (Debian's python3-paho-mqtt).
"""

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import fbtest

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "..", "fixtures", "attica_server.py")
EXIT_DENIED = 77  # FB_EXIT_DENIED, flowbus/protocol.h (sysexits EX_NOPERM)


class Attica:
    """The stand-in service on a free port, configured by a dict; stopped by PID."""

    def __init__(self, config, tls=None, host="127.0.0.1"):
        self.host = host
        self.dir = tempfile.mkdtemp(prefix="fbtest-attica-")
        path = os.path.join(self.dir, "config.json")
        with open(path, "w") as f:
            json.dump(config, f)
        cmd = [sys.executable, SERVER, "--config", path, "--host", host]
        self.scheme = "http"
        if tls is not None:
            cmd += ["--tls-cert", tls[0], "--tls-key", tls[1]]
            self.scheme = "https"
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 10)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError("the stand-in did not start: %r %s" % (line, self.proc.stderr.read()))
        self.port = int(line.split()[1])

    @property
    def url(self):
        return "%s://%s:%d/permissions" % (self.scheme, self.host, self.port)

    def stats(self):
        # Straight to the socket: the stats come from the same server, never through a proxy.
        import http.client
        if self.scheme == "https":
            import ssl
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=5,
                                               context=ssl._create_unverified_context())
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
        try:
            conn.request("GET", "/stats")
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def requests(self, token):
        return self.stats()["requests"].get(token, 0)

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class AuthTestCase(fbtest.BrokerTestCase):
    """A broker, a recorder, a private run directory, and helpers to run tasks."""

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="fbtest-auth-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.run_dir = os.path.join(self.tmp, "run")
        os.mkdir(self.run_dir, 0o700)
        self.run_id = "auth-%d-%s" % (os.getpid(), self._testMethodName[-40:].replace("_", "-"))
        self.tokens = []  # every token a test used, for the leak checks
        self.outputs = []  # stdout and stderr of every process

    def attica(self, config, tls=None, host="127.0.0.1"):
        server = Attica(config, tls, host)
        self.addCleanup(server.stop)
        return server

    def env(self, task, token=None, url=None, run_dir=True, extra=None, outputs=()):
        extra = dict(extra or {})
        if token is not None:
            extra["AUTH_TOKEN"] = token
            if token:
                self.tokens.append(token)
        if url is not None:
            extra["FLOWBUS_ATTICA_URL"] = url
        if run_dir:
            extra["FLOWBUS_RUN_DIR"] = self.run_dir
        base = {k: v for k, v in os.environ.items() if k != "AUTH_TOKEN"}
        return fbtest.task_env(self.broker, self.run_id, task, outputs=outputs, extra=extra,
                               base=base)

    def run_task(self, argv, env, timeout=20):
        proc = fbtest.run(argv, env, timeout=timeout)
        self.outputs += [proc.stdout, proc.stderr]
        return proc

    def check(self, names, task="T", **kw):
        """Runs fbtest-auth-check as a task requiring names."""
        return self.run_task([fbtest.bin_path("fbtest-auth-check"), "task"] + list(names),
                             self.env(task, **kw))

    def fetch(self, names=(), **kw):
        """Runs fbtest-auth-check fetch; returns its JSON line."""
        proc = self.run_task([fbtest.bin_path("fbtest-auth-check"), "fetch"] + list(names),
                             self.env("F", **kw))
        return json.loads(proc.stdout.splitlines()[0])

    def assert_done(self, proc, task="T"):
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.recorder.wait_state(self.run_id, task, "done")

    def assert_denied(self, proc, *fragments, task="T", acted_marker="acted"):
        """The task ended "denied" naming the case, exited 77 and did not act."""
        _, state = self.recorder.wait_state(self.run_id, task, "denied")
        self.assertEqual(proc.returncode, EXIT_DENIED, proc.stderr)
        self.assertEqual(state["exit"], EXIT_DENIED)
        for fragment in fragments:
            self.assertIn(fragment, state["error"])
        self.assertNotIn("\n", state["error"])
        if acted_marker:
            self.assertNotIn(acted_marker, proc.stdout)
        self.assertNotIn("done", self.recorder.states(self.run_id, task))
        return state["error"]

    def tearDown(self):
        self.assert_no_token_leaks()
        super().tearDown()

    def assert_no_token_leaks(self):
        """No token on flowbus/#, in any output, or in the cache directory (names or contents)."""
        if not self.tokens:
            return
        with self.recorder.cond:
            events = list(self.recorder.events)
        for token in set(self.tokens):
            raw = token.encode()
            for e in events:
                self.assertNotIn(raw, e.topic.encode(), "token in a topic")
                self.assertNotIn(raw, e.payload, "token on %s" % e.topic)
            for text in self.outputs:
                self.assertNotIn(token, text, "token in a process's output")
            for root, _, files in os.walk(self.run_dir):
                for name in files:
                    self.assertNotIn(token, name, "token in a cache file name")
                    with open(os.path.join(root, name), "rb") as f:
                        self.assertNotIn(raw, f.read(), "token in cache file %s" % name)


class FetchAndRequire(AuthTestCase):
    """The contract: forms, refusals and the reason of each."""

    def test_allowed_object_form(self):
        a = self.attica({"tokens": {"tok-obj-1": {"permissions": {"can_view_system": True,
                                                                    "can_execute_commands": False}}}})
        out = self.fetch(["can_view_system", "can_execute_commands"], token="tok-obj-1", url=a.url)
        self.assertEqual(out["granted"], ["can_view_system"])
        self.assertEqual(out["has"], {"can_view_system": True, "can_execute_commands": False})
        proc = self.check(["can_view_system"], token="tok-obj-1", url=a.url)
        self.assert_done(proc)
        self.assertIn("acted", proc.stdout)

    def test_allowed_array_form(self):
        a = self.attica({"tokens": {"tok-arr-1": {"permissions": ["can_read", "can_view", "can_download"]}}})
        out = self.fetch(["can_view", "can_write"], token="tok-arr-1", url=a.url)
        self.assertEqual(out["granted"], ["can_download", "can_read", "can_view"])
        self.assertEqual(out["has"], {"can_view": True, "can_write": False})
        self.assert_done(self.check(["can_read", "can_download"], token="tok-arr-1", url=a.url))

    def test_denied_missing_permission(self):
        a = self.attica({"tokens": {"tok-deny-1": {"permissions": {"can_view_system": True,
                                                                     "can_execute_commands": False}}}})
        proc = self.check(["can_view_system", "can_execute_commands"], token="tok-deny-1", url=a.url)
        error = self.assert_denied(proc, "missing permission can_execute_commands")
        self.assertNotIn("can_view_system", error)
        self.assertIn("denied: missing permission", proc.stderr)  # the SDK's log callback

    def test_denied_names_every_missing_permission(self):
        a = self.attica({"tokens": {"tok-deny-2": {"permissions": ["can_a"]}}})
        proc = self.check(["can_a", "can_b"], token="tok-deny-2", url=a.url,
                          extra={"FLOWBUS_PERMISSIONS_REQUIRED": " can_c , can_b,can_ab"})
        self.assert_denied(proc, "missing permissions can_b, can_c, can_ab")

    def test_workflow_required_list_is_read_like_every_list(self):
        # names__split: blanks and empty items skipped, a repeat (also of a plugin's name) once.
        a = self.attica({"tokens": {"tok-wf-2": {"permissions": ["can_a"]}}})
        proc = self.check(["can_b"], token="tok-wf-2", url=a.url,
                          extra={"FLOWBUS_PERMISSIONS_REQUIRED": ",can_z,, can_a ,can_z,\tcan_b ,"})
        error = self.assert_denied(proc, "missing permissions can_b, can_z")
        self.assertEqual(error.count("can_z"), 1, error)

    def test_workflow_required_malformed_name_is_refused(self):
        a = self.attica({"tokens": {"tok-wf-3": {"permissions": ["can_a"]}}})
        proc = self.check([], token="tok-wf-3", url=a.url,
                          extra={"FLOWBUS_PERMISSIONS_REQUIRED": "can_a, can b"})
        self.assert_denied(proc, "a required permission name is malformed")

    def test_workflow_required_adds_to_the_plugins(self):
        a = self.attica({"tokens": {"tok-wf-1": {"permissions": ["can_a"]}}})
        proc = self.check([], token="tok-wf-1", url=a.url,
                          extra={"FLOWBUS_PERMISSIONS_REQUIRED": "can_a,can_z"})
        self.assert_denied(proc, "missing permission can_z")

    def test_token_missing_with_requires_auth(self):
        a = self.attica({"tokens": {}})
        proc = self.check([], url=a.url, extra={"FLOWBUS_REQUIRES_AUTH": "1"})
        self.assert_denied(proc, "no AUTH_TOKEN", "requires_auth")
        self.assertEqual(a.stats()["total"], 0)

    def test_token_empty_counts_as_missing(self):
        proc = self.check([], token="", extra={"FLOWBUS_REQUIRES_AUTH": "1"})
        self.assert_denied(proc, "no AUTH_TOKEN")

    def test_token_missing_with_workflow_required(self):
        proc = self.check([], extra={"FLOWBUS_PERMISSIONS_REQUIRED": "can_view_system"})
        self.assert_denied(proc, "no AUTH_TOKEN", "can_view_system")

    def test_no_token_no_requirement_means_auth_not_in_use(self):
        a = self.attica({"tokens": {}})
        proc = self.check(["can_view_system"], url=a.url)
        self.assert_done(proc)
        self.assertEqual(a.stats()["total"], 0)

    def test_unknown_token(self):
        a = self.attica({"tokens": {}})
        self.assert_denied(self.check([], token="tok-unknown-1", url=a.url), "HTTP status 401")

    def test_service_down(self):
        url = "http://127.0.0.1:%d/permissions" % fbtest.free_port()
        self.assert_denied(self.check(["can_x"], token="tok-down-1", url=url),
                           "permission service unreachable")

    def test_libcurl_missing_fails_closed(self):
        # libcurl is loaded with dlopen on the first request (docs/performance.md);
        # FLOWBUS_LIBCURL names the library, here one that does not exist.
        a = self.attica({"tokens": {"tok-nocurl-1": {"permissions": ["can_x"]}}})
        self.assert_denied(self.check(["can_x"], token="tok-nocurl-1", url=a.url,
                                      extra={"FLOWBUS_LIBCURL": "libflowbus-no-such-curl.so.4"}),
                           "permission service unavailable: cannot load libcurl")
        self.assertEqual(a.requests("tok-nocurl-1"), 0)

    def test_no_token_loads_no_libcurl(self):
        # A task without a token never maps libcurl.
        proc = self.run_task([fbtest.bin_path("fbtest-auth-check"), "maps"], self.env("F"))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("libflowbus", proc.stdout)
        self.assertNotIn("libcurl", proc.stdout)

    def test_slow_past_the_timeout(self):
        a = self.attica({"tokens": {"tok-slow-1": {"permissions": ["can_x"], "delay": 5}}})
        t0 = time.monotonic()
        proc = self.check(["can_x"], token="tok-slow-1", url=a.url,
                          extra={"FLOWBUS_ATTICA_TIMEOUT": "0.5"})
        self.assert_denied(proc, "timed out after 0.5 s")
        self.assertLess(time.monotonic() - t0, 4.0)

    def test_slow_within_the_timeout(self):
        a = self.attica({"tokens": {"tok-slow-2": {"permissions": ["can_x"], "delay": 0.3}}})
        self.assert_done(self.check(["can_x"], token="tok-slow-2", url=a.url,
                                    extra={"FLOWBUS_ATTICA_TIMEOUT": "3"}))

    def test_status_500(self):
        a = self.attica({"fail": "status", "status": 500})
        self.assert_denied(self.check(["can_x"], token="tok-500-1", url=a.url), "HTTP status 500")

    def test_malformed_json(self):
        # The stand-in's malformed body contains the token: the reason must not quote it.
        a = self.attica({"fail": "malformed"})
        self.assert_denied(self.check(["can_x"], token="tok-malformed-secret-1", url=a.url),
                           "malformed response", "not JSON")

    def test_permissions_of_the_wrong_type(self):
        a = self.attica({"fail": "wrongtype"})
        self.assert_denied(self.check(["can_x"], token="tok-type-1", url=a.url),
                           "malformed response", "neither an object nor an array")

    def test_object_with_non_boolean_values(self):
        a = self.attica({"tokens": {"tok-type-2": {"permissions": {"can_x": "yes"}}}})
        self.assert_denied(self.check(["can_x"], token="tok-type-2", url=a.url),
                           "malformed response", "not true or false")

    def test_duplicate_key_is_denied_not_last_wins(self):
        # jansson alone keeps the last of two equal keys: this was granted (issue 14).
        body = '{"permissions": {"can_execute_commands": false, "can_execute_commands": true}}'
        a = self.attica({"tokens": {"tok-dup-1": {"fail": "raw", "body": body}}})
        self.assert_denied(self.check(["can_execute_commands"], token="tok-dup-1", url=a.url),
                           "malformed response", "a key appears twice")

    def test_duplicate_top_level_key_is_denied(self):
        body = '{"permissions": ["can_x"], "permissions": ["can_x"]}'
        a = self.attica({"tokens": {"tok-dup-2": {"fail": "raw", "body": body}}})
        self.assert_denied(self.check(["can_x"], token="tok-dup-2", url=a.url),
                           "malformed response", "a key appears twice")

    def test_connection_closed_without_answer(self):
        a = self.attica({"fail": "close"})
        self.assert_denied(self.check(["can_x"], token="tok-close-1", url=a.url),
                           "closed the connection")

    def test_huge_response_denied_quickly_with_bounded_memory(self):
        a = self.attica({"fail": "huge"})
        a2 = self.attica({"tokens": {"tok-small-2": {"permissions": ["can_x"]}}})
        baseline = self.fetch(token="tok-small-2", url=a2.url, run_dir=False)
        self.assertEqual(baseline["granted"], ["can_x"])
        huge = self.fetch(token="tok-huge-1", url=a.url, run_dir=False)
        self.assertEqual(huge["rc"], "permission denied")
        self.assertIn("too large", huge["error"])
        self.assertLess(huge["ms"], 2000)
        # A 10 MB body held in memory would add >= 10 MB to the peak.
        self.assertLess(huge["maxrss_kb"] - baseline["maxrss_kb"], 6 * 1024, (huge, baseline))
        proc = self.check(["can_x"], token="tok-huge-2", url=a.url)
        self.assert_denied(proc, "response too large")

    def test_huge_response_with_content_length(self):
        a = self.attica({"fail": "huge_length"})
        out = self.fetch(token="tok-huge-3", url=a.url, run_dir=False)
        self.assertIn("too large", out["error"])
        self.assertLess(out["ms"], 2000)

    def test_plain_http_to_a_non_loopback_host_is_refused(self):
        t0 = time.monotonic()
        proc = self.check(["can_x"], token="tok-plain-1", url="http://192.0.2.1/permissions")
        self.assert_denied(proc, "refusing plain http:// to 192.0.2.1")
        self.assertLess(time.monotonic() - t0, 3.0)  # refused before any connection attempt
        out = self.fetch(token="tok-plain-2", url="http://attica.tech/permissions")
        self.assertIn("refusing plain http://", out["error"])

    def test_other_schemes_are_refused(self):
        out = self.fetch(token="tok-scheme-1", url="file:///etc/passwd")
        self.assertIn("scheme file://", out["error"])

    def test_require_after_denial_cannot_report_done(self):
        # auth_check exits 9 if fb_task_done still worked after a denial.
        proc = self.check([], extra={"FLOWBUS_REQUIRES_AUTH": "1", "AUTH_CHECK_FREE": "1"})
        self.assert_denied(proc, "no AUTH_TOKEN")


class Cache(AuthTestCase):
    """The run-wide cache: one request per token per TTL, shared by every process."""

    def spawn_tasks(self, tokens, url, run_dir=True):
        procs = []
        for i, token in enumerate(tokens):
            env = self.env("T%d" % i, token=token, url=url, run_dir=run_dir)
            procs.append(fbtest.spawn([fbtest.bin_path("fbtest-auth-check"), "task", "can_x"], env))
        for i, p in enumerate(procs):
            out, err = p.communicate(timeout=30)
            self.outputs += [out, err]
            self.assertEqual(p.returncode, 0, err)
            self.recorder.wait_state(self.run_id, "T%d" % i, "done")

    def test_ten_tasks_one_token_one_request(self):
        a = self.attica({"tokens": {"tok-cache-1": {"permissions": ["can_x"], "delay": 0.2}}})
        self.spawn_tasks(["tok-cache-1"] * 10, a.url)
        self.assertEqual(a.requests("tok-cache-1"), 1)
        files = sorted(os.listdir(self.run_dir))
        self.assertEqual(len(files), 2, files)  # <sha256>.json and <sha256>.lock
        for name in files:
            self.assertRegex(name, r"^[0-9a-f]{64}\.(json|lock)$")
            mode = os.stat(os.path.join(self.run_dir, name)).st_mode & 0o777
            self.assertEqual(mode, 0o600, name)

    def test_different_tokens_one_request_each(self):
        a = self.attica({"tokens": {t: {"permissions": ["can_x"]}
                                    for t in ("tok-c-a", "tok-c-b", "tok-c-c")}})
        self.spawn_tasks(["tok-c-a", "tok-c-b", "tok-c-c"] * 3, a.url)
        self.assertEqual(a.stats()["requests"], {"tok-c-a": 1, "tok-c-b": 1, "tok-c-c": 1})

    def test_without_a_run_dir_every_task_asks(self):
        a = self.attica({"tokens": {"tok-nocache-1": {"permissions": ["can_x"]}}})
        self.spawn_tasks(["tok-nocache-1"] * 3, a.url, run_dir=False)
        self.assertEqual(a.requests("tok-nocache-1"), 3)

    def test_failed_fetches_are_not_cached(self):
        a = self.attica({"tokens": {"tok-retry-1": {"permissions": ["can_x"], "fail": "status",
                                                    "status": 503, "fail_first": 1}}})
        self.assert_denied(self.check(["can_x"], task="T1", token="tok-retry-1", url=a.url),
                           "HTTP status 503", task="T1")
        self.assert_done(self.check(["can_x"], task="T2", token="tok-retry-1", url=a.url), task="T2")
        self.assert_done(self.check(["can_x"], task="T3", token="tok-retry-1", url=a.url), task="T3")
        self.assertEqual(a.requests("tok-retry-1"), 2)

    def test_entries_expire_after_the_ttl(self):
        a = self.attica({"tokens": {"tok-ttl-1": {"permissions": ["can_x"]}}})
        extra = {"FLOWBUS_ATTICA_CACHE_TTL": "0.3"}
        self.assert_done(self.check(["can_x"], task="T1", token="tok-ttl-1", url=a.url, extra=extra),
                         task="T1")
        self.assert_done(self.check(["can_x"], task="T2", token="tok-ttl-1", url=a.url, extra=extra),
                         task="T2")
        self.assertEqual(a.requests("tok-ttl-1"), 1)
        time.sleep(0.4)  # let the entry expire
        self.assert_done(self.check(["can_x"], task="T3", token="tok-ttl-1", url=a.url, extra=extra),
                         task="T3")
        self.assertEqual(a.requests("tok-ttl-1"), 2)

    def test_a_shared_or_foreign_directory_is_not_used(self):
        os.chmod(self.run_dir, 0o755)
        a = self.attica({"tokens": {"tok-perm-1": {"permissions": ["can_x"]}}})
        for i in range(2):
            proc = self.check(["can_x"], task="T%d" % i, token="tok-perm-1", url=a.url)
            self.assert_done(proc, task="T%d" % i)
            self.assertIn("mode 0700", proc.stderr)
        self.assertEqual(os.listdir(self.run_dir), [])
        self.assertEqual(a.requests("tok-perm-1"), 2)


class Plugins(AuthTestCase):
    """The built-in plugins and flowbus-upper enforce the same check."""

    def test_df_allowed(self):
        a = self.attica({"tokens": {"tok-df-1": {"permissions": {"can_view_system": True}}}})
        proc = self.run_task([fbtest.bin_path("flowbus-df")],
                             self.env("DF", token="tok-df-1", url=a.url, outputs=("FREE_SPACE",)))
        self.assert_done(proc, task="DF")

    def test_df_denied(self):
        a = self.attica({"tokens": {"tok-df-2": {"permissions": ["can_execute_commands"]}}})
        proc = self.run_task([fbtest.bin_path("flowbus-df")],
                             self.env("DF", token="tok-df-2", url=a.url, outputs=("FREE_SPACE",)))
        self.assert_denied(proc, "missing permission can_view_system", task="DF", acted_marker=None)
        self.assertEqual(self.recorder.on_topic(fbtest.var_topic(self.run_id, "FREE_SPACE")), [])

    def test_cmd_denied_never_runs_the_command(self):
        a = self.attica({"tokens": {"tok-cmd-1": {"permissions": {"can_view_system": True,
                                                                    "can_execute_commands": False}}}})
        marker = os.path.join(self.tmp, "ran")
        env = self.env("CMD", token="tok-cmd-1", url=a.url,
                       extra={"FLOWBUS_PARAMS": json.dumps({"command": "touch '%s'" % marker})})
        proc = self.run_task([fbtest.bin_path("flowbus-cmd")], env)
        self.assert_denied(proc, "missing permission can_execute_commands", task="CMD",
                           acted_marker=None)
        self.assertFalse(os.path.exists(marker))

    def test_cmd_allowed(self):
        a = self.attica({"tokens": {"tok-cmd-2": {"permissions": ["can_execute_commands"]}}})
        marker = os.path.join(self.tmp, "ran")
        env = self.env("CMD", token="tok-cmd-2", url=a.url,
                       extra={"FLOWBUS_PARAMS": json.dumps({"command": "touch '%s'" % marker})})
        self.assert_done(self.run_task([fbtest.bin_path("flowbus-cmd")], env), task="CMD")
        self.assertTrue(os.path.exists(marker))

    def test_touched_honours_requires_auth(self):
        env = self.env("TOUCHED", extra={"FLOWBUS_REQUIRES_AUTH": "1",
                                         "FLOWBUS_PARAMS": json.dumps({"file": "x", "timeout": 0.1})})
        proc = self.run_task([fbtest.bin_path("flowbus-touched")], env)
        self.assert_denied(proc, "no AUTH_TOKEN", task="TOUCHED", acted_marker=None)

    def test_manifests_declare_permissions(self):
        for plugin, expected in (("df", ["can_view_system"]), ("cmd", ["can_execute_commands"]),
                                 ("touched", []), ("upper", [])):
            out = subprocess.run([fbtest.bin_path("flowbus-" + plugin), "--describe"],
                                 capture_output=True, text=True, check=True).stdout
            self.assertEqual(json.loads(out)["permissions"], expected, plugin)

    def upper(self, task, **kw):
        return self.run_task([fbtest.bin_path("flowbus-upper")],
                             self.env(task, outputs=("UPPER",), **kw))

    def test_upper_python_allowed_and_denied(self):
        a = self.attica({"tokens": {"tok-py-1": {"permissions": ["can_shout"]},
                                    "tok-py-2": {"permissions": {"can_shout": False}}}})
        extra = {"FLOWBUS_PERMISSIONS_REQUIRED": "can_shout"}
        self.assert_done(self.upper("U1", token="tok-py-1", url=a.url, extra=extra), task="U1")
        proc = self.upper("U2", token="tok-py-2", url=a.url, extra=extra)
        self.assert_denied(proc, "missing permission can_shout", task="U2", acted_marker=None)
        self.assertEqual(self.recorder.on_topic(fbtest.var_topic(self.run_id, "UPPER"))[0].payload,
                         b"\x00")  # only U1's (empty) output

    def test_upper_python_refusals_name_the_case(self):
        down = "http://127.0.0.1:%d/permissions" % fbtest.free_port()
        slow = self.attica({"tokens": {"tok-py-s": {"permissions": ["a"], "delay": 5}}})
        bad = self.attica({"fail": "malformed"})
        huge = self.attica({"fail": "huge"})
        err = self.attica({"fail": "status", "status": 500})
        cases = [
            ("P1", {"token": "tok-py-d", "url": down}, "permission service unreachable"),
            ("P2", {"token": "tok-py-s", "url": slow.url, "extra": {"FLOWBUS_ATTICA_TIMEOUT": "0.5"}},
             "timed out after 0.5 s"),
            ("P3", {"token": "tok-py-m-secret", "url": bad.url}, "malformed response"),
            ("P4", {"token": "tok-py-h", "url": huge.url}, "response too large"),
            ("P5", {"token": "tok-py-e", "url": err.url}, "HTTP status 500"),
            ("P6", {"token": "tok-py-p", "url": "http://192.0.2.1/p"}, "refusing plain http://"),
            ("P7", {"extra": {"FLOWBUS_REQUIRES_AUTH": "1"}}, "no AUTH_TOKEN"),
        ]
        for task, kw, fragment in cases:
            self.assert_denied(self.upper(task, **kw), fragment, task=task, acted_marker=None)

    def test_python_and_c_share_the_cache(self):
        a = self.attica({"tokens": {"tok-share-1": {"permissions": ["can_x"]}}})
        self.assert_done(self.check(["can_x"], task="C1", token="tok-share-1", url=a.url), task="C1")
        self.assert_done(self.upper("U1", token="tok-share-1", url=a.url), task="U1")
        self.assertEqual(a.requests("tok-share-1"), 1)
        # And the other way round, with a fresh directory.
        shutil.rmtree(self.run_dir)
        os.mkdir(self.run_dir, 0o700)
        self.assert_done(self.upper("U2", token="tok-share-1", url=a.url), task="U2")
        self.assert_done(self.check(["can_x"], task="C2", token="tok-share-1", url=a.url), task="C2")
        self.assertEqual(a.requests("tok-share-1"), 2)


@unittest.skipUnless(shutil.which("openssl"), "needs the openssl command")
class Tls(AuthTestCase):
    """https to the stand-in with a CA made by the test: verified, never skipped."""

    def make_certs(self):
        d = os.path.join(self.tmp, "pki")
        os.mkdir(d)

        def openssl(*args):
            subprocess.run(["openssl"] + list(args), cwd=d, check=True, capture_output=True)

        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
                "ca.pem", "-days", "2", "-subj", "/CN=flowbus test CA")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
                "server.csr", "-subj", "/CN=127.0.0.1")
        with open(os.path.join(d, "ext.cnf"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
        return [os.path.join(d, n) for n in ("ca.pem", "server.pem", "server.key")]

    def test_https_verified_with_a_custom_ca(self):
        ca, cert, key = self.make_certs()
        a = self.attica({"tokens": {"tok-tls-1": {"permissions": ["can_x"]}}}, tls=(cert, key))
        # Without the CA the certificate cannot be verified: denied, never accepted anyway.
        proc = self.check(["can_x"], task="T1", token="tok-tls-1", url=a.url, run_dir=False)
        self.assert_denied(proc, "TLS", task="T1")
        proc = self.upper_task("U1", token="tok-tls-1", url=a.url, run_dir=False)
        self.assert_denied(proc, "TLS", task="U1", acted_marker=None)
        extra = {"FLOWBUS_ATTICA_CA_FILE": ca}
        self.assert_done(self.check(["can_x"], task="T2", token="tok-tls-1", url=a.url,
                                    run_dir=False, extra=extra), task="T2")
        self.assert_done(self.upper_task("U2", token="tok-tls-1", url=a.url, run_dir=False,
                                         extra=extra), task="U2")

    def test_https_host_name_is_verified(self):
        ca, cert, key = self.make_certs()
        # The certificate names 127.0.0.1 and localhost, not 127.0.0.2 (still loopback).
        a = self.attica({"tokens": {"tok-tls-2": {"permissions": ["can_x"]}}}, tls=(cert, key),
                        host="127.0.0.2")
        proc = self.check(["can_x"], token="tok-tls-2", url=a.url, run_dir=False,
                          extra={"FLOWBUS_ATTICA_CA_FILE": ca})
        self.assert_denied(proc, "TLS")

    def upper_task(self, task, **kw):
        return self.run_task([fbtest.bin_path("flowbus-upper")], self.env(task, outputs=("UPPER",), **kw))


if __name__ == "__main__":
    unittest.main()
