"""Secrets stay off the bus and out of logs; the private broker's ACL holds.

The redaction tests subscribe to flowbus/# for the whole run and search
everything captured, plus everything flowbus printed, plus every process's
command line while the run is going on.
"""

import json
import os
import subprocess
import threading
import time
import unittest

import fbrun
import fbtest

TOKEN = "tok-7f3a9c1e5b2d4680"
PASSWORD = "pw-0a1b2c3d4e5f6789"


def rid(name):
    return "%s-%d" % (name, os.getpid())


class CmdlineWatcher(threading.Thread):
    """Scans every process's command line for secrets until stopped."""

    def __init__(self, needles):
        super().__init__(daemon=True)
        self.needles = [n.encode() for n in needles]
        self.hits = []
        self.scans = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    with open("/proc/%s/cmdline" % pid, "rb") as f:
                        cmd = f.read()
                except OSError:
                    continue
                if any(n in cmd for n in self.needles):
                    self.hits.append(cmd)
            self.scans += 1
            self.stop.wait(0.005)


class Attica:
    """The stand-in Attica service (tests/fixtures/attica_server.py) on a free loopback port."""

    def __init__(self, tokens):
        self.dir = fbrun.TempDir()
        port_file = os.path.join(self.dir.__enter__(), "port")
        # Tokens go in a file: on the command line `ps` would show them.
        config = os.path.join(self.dir.path, "config.json")
        with open(config, "w") as f:
            json.dump({"tokens": {t: {"permissions": p} for t, p in tokens.items()}}, f)
        self.proc = subprocess.Popen(["/usr/bin/python3", os.path.join(fbrun.SOURCE, "tests",
                                                                      "fixtures", "attica_server.py"),
                                      "--port-file", port_file, "--config", config],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not os.path.exists(port_file) or not open(port_file).read().strip():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the stand-in Attica service did not start")
            time.sleep(0.01)  # polling a file: the service has no other signal
        self.url = "http://127.0.0.1:%s/permissions" % open(port_file).read().strip()

    def stats(self):
        import urllib.request
        with urllib.request.urlopen(self.url.replace("/permissions", "/stats")) as r:
            return json.loads(r.read())

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        self.dir.__exit__()


class TestSecrets(fbtest.BrokerTestCase):
    def test_secrets_never_reach_the_bus_logs_or_command_lines(self):
        run_id = rid("secrets")
        attica = Attica({TOKEN: ["can_execute_commands"]})
        self.addCleanup(attica.stop)
        env = fbrun.clean_env({"FLOWBUS_TEST_TOKEN": TOKEN, "FLOWBUS_TEST_DB_PASSWORD": PASSWORD,
                               "FLOWBUS_ATTICA_URL": attica.url})
        watcher = CmdlineWatcher([TOKEN, PASSWORD])
        watcher.start()
        try:
            with fbrun.TempDir() as cwd:
                res = fbrun.run(["run", fbrun.workflow("secrets.yaml"), "--broker", self.broker.url,
                                 "--run-id", run_id, "--json"], cwd=cwd, env=env)
        finally:
            watcher.stop.set()
            watcher.join()
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.recorder.wait_state(run_id, "END", "done")
        # The task did get both secrets.
        lengths = self.recorder.on_topic(fbtest.var_topic(run_id, "LENGTHS"))
        self.assertEqual(lengths[0].payload.decode(), "%d,%d" % (len(TOKEN), len(PASSWORD)))
        # Nothing anywhere on the bus, in flowbus's output, or on a command line.
        for e in self.recorder.events:
            for secret in (TOKEN, PASSWORD):
                self.assertNotIn(secret.encode(), e.payload, e.topic)
                self.assertNotIn(secret, e.topic)
        for secret in (TOKEN, PASSWORD):
            self.assertNotIn(secret, res.stdout)
            self.assertNotIn(secret, res.stderr)
        self.assertFalse(watcher.hits)
        self.assertGreater(watcher.scans, 0)
        # The lines that printed them were forwarded, masked.
        logs = [e.payload.decode() for e in
                self.recorder.on_topic("flowbus/%s/tasks/USE/log" % run_id)]
        self.assertIn("token is *** and password is ***", logs)
        self.assertIn("leak to stderr: ***", logs)
        # Neither secret is a bus variable; the workflow topic marks them.
        self.assertFalse(self.recorder.on_topic(fbtest.var_topic(run_id, "AUTH_TOKEN")))
        self.assertFalse(self.recorder.on_topic(fbtest.var_topic(run_id, "DB_PASSWORD")))
        wf = self.recorder.on_topic("flowbus/%s/workflow" % run_id)[0].json()
        self.assertEqual(wf["env"]["AUTH_TOKEN"], "<secret>")
        self.assertEqual(wf["env"]["DB_PASSWORD"], "<secret>")
        self.assertEqual(wf["env"]["GREETING"], "hello")
        # The permission check was made once, with the token, outside the bus.
        self.assertEqual(attica.stats()["total"], 1)


class TestPrivateBrokerAcl(unittest.TestCase):
    def test_an_undeclared_variable_is_refused_by_the_broker(self):
        env = fbrun.clean_env({"FLOWBUS_PLUGIN_PATH": os.path.join(fbtest.build_dir(), "tests",
                                                                   "integration", "plugins")})
        with fbrun.TempDir() as cwd:
            env["TMPDIR"] = cwd
            res = fbrun.run(["run", fbrun.workflow("rogue.yaml"), "--json"], cwd=cwd, env=env)
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        events = [json.loads(line) for line in res.stdout.splitlines()]
        final = events[-1]["tasks"]
        self.assertEqual(final["ROGUE"]["state"], "failed")
        self.assertIn("refused publishing STOLEN", final["ROGUE"]["error"])
        self.assertEqual(final["END"]["state"], "skipped")
        # The coordinator reads every topic of the run: STOLEN never appeared.
        self.assertFalse([e for e in events if e["event"] == "var" and e["name"] == "STOLEN"])

    def test_anonymous_clients_are_refused(self):
        """The private broker refuses a client without credentials."""
        import paho.mqtt.client as mqtt
        import re
        with fbrun.TempDir() as cwd:
            env = fbrun.clean_env({"TMPDIR": cwd})
            proc = fbrun.start(["run", fbrun.workflow("sleeper.yaml"), "--json"], cwd=cwd, env=env)
            try:
                fbrun.read_json_until(proc, lambda e: e.get("task") == "SLEEPER" and
                                      e.get("state") == "running")
                port = None
                for pid in fbrun.processes_with_cmdline(cwd):
                    with open("/proc/%d/cmdline" % pid, "rb") as f:
                        conf = f.read().split(b"\0")[-2].decode()
                    with open(conf) as f:
                        port = int(re.search(r"listener (\d+)", f.read()).group(1))
                self.assertIsNotNone(port)
                client = mqtt.Client(protocol=mqtt.MQTTv5)
                result = {}
                done = threading.Event()

                def on_connect(c, u, flags, rc, props=None):
                    result["rc"] = rc
                    done.set()
                client.on_connect = on_connect
                client.connect("127.0.0.1", port)
                client.loop_start()
                self.assertTrue(done.wait(5))
                client.loop_stop()
                self.assertNotEqual(result["rc"], 0)
            finally:
                proc.terminate()
                fbrun.finish(proc)


class TestTls(unittest.TestCase):
    """A run over TLS: the coordinator and every task verify the broker's certificate."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = fbrun.TempDir()
        cls.dir = cls.tmp.__enter__()
        cls.files = fbtest.make_tls_files(cls.dir)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.__exit__()

    def secure_broker(self):
        """mosquitto with broker-config/secure.conf, its paths pointed at test files."""
        f = self.files
        port = fbtest.free_port()
        with open(os.path.join(fbrun.SOURCE, "broker-config", "secure.conf")) as src:
            conf = src.read()
        pwfile = os.path.join(self.dir, "passwd")
        with open(pwfile, "w") as out:
            out.write("coordinator:%s\n" % PASSWORD)
        subprocess.run(["mosquitto_passwd", "-U", pwfile], check=True)
        acl = os.path.join(self.dir, "acl")
        with open(os.path.join(fbrun.SOURCE, "broker-config", "acl.example")) as src, \
                open(acl, "w") as out:
            out.write(src.read())
        os.chmod(self.dir, 0o755)
        for path in (pwfile, acl):
            os.chmod(path, 0o644)
        for old, new in (("listener 8883", "listener %d 127.0.0.1" % port),
                         ("/etc/flowbus/tls/ca.pem", f["ca"]),
                         ("/etc/flowbus/tls/broker.pem", f["server_cert"]),
                         ("/etc/flowbus/tls/broker.key", f["server_key"]),
                         ("/etc/flowbus/passwd", pwfile), ("/etc/flowbus/acl", acl),
                         ("persistence_location /var/lib/mosquitto/",
                          "persistence_location %s/" % self.dir)):
            self.assertIn(old, conf)
            conf = conf.replace(old, new)
        path = os.path.join(self.dir, "secure-test.conf")
        with open(path, "w") as out:
            out.write(conf + "\nuser root\n")
        proc = subprocess.Popen(["/usr/sbin/mosquitto", "-c", path], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: (proc.terminate(), proc.wait()))
        deadline = time.monotonic() + 10
        while True:  # waiting for the listener: there is no event for it
            import socket
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    self.fail("the broker with secure.conf did not start: %s" %
                              proc.stderr.read())
                time.sleep(0.01)
        return port

    def test_a_run_over_tls_with_secure_conf(self):
        port = self.secure_broker()
        env = fbrun.clean_env({"FLOWBUS_USERNAME": "coordinator", "FLOWBUS_PASSWORD": PASSWORD,
                               "FLOWBUS_TLS_CA": self.files["ca"]})
        with fbrun.TempDir() as cwd:
            res = fbrun.run(["run", fbrun.workflow("builtins.yaml"), "--broker",
                             "mqtts://localhost:%d" % port, "--json"], cwd=cwd, env=env)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        final = json.loads(res.stdout.splitlines()[-1])
        self.assertTrue(all(t["state"] == "done" for t in final["tasks"].values()), final)

    def test_tls_refuses_a_broker_it_cannot_verify(self):
        port = self.secure_broker()
        env = fbrun.clean_env({"FLOWBUS_USERNAME": "coordinator", "FLOWBUS_PASSWORD": PASSWORD,
                               "FLOWBUS_TLS_CA": self.files["other_ca"]})
        with fbrun.TempDir() as cwd:
            res = fbrun.run(["run", fbrun.workflow("split.yaml"), "--broker",
                             "mqtts://localhost:%d" % port], cwd=cwd, env=env, timeout=60)
        self.assertEqual(res.returncode, 4, res.stderr)
        self.assertIn("certificate verify failed", res.stderr)
        # Plain TCP to a TLS-only broker, and a wrong password, fail clearly too.
        env["FLOWBUS_TLS_CA"] = self.files["ca"]
        env["FLOWBUS_PASSWORD"] = "wrong"
        res = fbrun.run(["run", fbrun.workflow("split.yaml"), "--broker",
                         "mqtts://localhost:%d" % port], env=env, timeout=60)
        self.assertEqual(res.returncode, 4, res.stderr)
        self.assertNotIn("wrong", res.stderr)


if __name__ == "__main__":
    unittest.main()
