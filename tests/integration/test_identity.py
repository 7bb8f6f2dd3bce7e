"""Per-task broker identities on an external Mosquitto, and no secret anywhere in sight.

Each test starts its own mosquitto with the dynamic security plugin loaded
(its dynamic-security.json written by `mosquitto_ctrl dynsec init` into the
broker's temporary directory). The coordinator's user is the plugin's admin,
with read and write on flowbus/# added, as docs/security.md says to set it up.

- EVIL, a cmd task, runs a command that hunts for credentials where a command
  running as the same user can look: its parent's (the task process's) and
  the coordinator's /proc/<pid>/environ, mem and fd/, and its own environment.
  It then tries to publish VICTIM's output with whatever it found (and
  anonymously). It finds nothing, and VICTIM's output is VICTIM's. That run
  is started as the user nobody (setpriv): the tests run as root, and
  CAP_SYS_PTRACE reads any process's memory whatever it does (the threat is a
  command of the same ordinary user, docs/security.md).
- A task's client id cannot be derived from the run, the task and the pid: a
  connection under those ids (with the coordinator's own credentials, which
  the attacker cannot have either) does not kick the task off.
- Everything on flowbus/#, everything flowbus printed (console and --json) and
  `flowbus logs` hold no secret: the broker password, AUTH_TOKEN, a
  `secret: true` value.
- The run's dynsec clients and roles exist while it runs and are gone after,
  also after a coordinator killed with SIGKILL (resume, then gc).
- The same EVIL finds nothing on the private broker either; the shell and
  Python plugins and a worker pool's shared subscriptions work with their
  own identities.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import paho.mqtt.client as mqtt

import fbrun
import fbtest

DYNSEC = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"
ADMIN = "coordinator"
ADMIN_PASSWORD = "adm-" + os.urandom(12).hex()
TOKEN = "tok-" + os.urandom(12).hex()
SECRET = "sec-" + os.urandom(12).hex()

# The command of EVIL: every place a same-user command can look for credentials.
EVIL = r'''
import os, re, sys, time
import paho.mqtt.client as mqtt

# The test follows the run with `flowbus logs -f` before EVIL prints.
deadline = time.monotonic() + 30
while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
    time.sleep(0.05)
found = []     # texts that may hold credentials
tried = []     # what each attempt came to
def grab(path):
    # Non-blocking: a descriptor may be a pipe nobody writes to.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            data = os.read(fd, 1 << 20)
        finally:
            os.close(fd)
        found.append(data.decode("utf-8", "replace"))
        tried.append("read %s: %d bytes" % (path, len(data)))
    except OSError as e:
        tried.append("read %s: %s" % (path, e.strerror))

task = os.getppid()
coordinator = int(open("/proc/%d/stat" % task).read().rsplit(")", 1)[1].split()[1])
for pid in (task, coordinator):
    grab("/proc/%d/environ" % pid)
    grab("/proc/%d/cmdline" % pid)
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            grab("/proc/%d/fd/%s" % (pid, fd))
    except OSError as e:
        tried.append("list /proc/%d/fd: %s" % (pid, e.strerror))
    try:
        maps = open("/proc/%d/maps" % pid).read().splitlines()
        with open("/proc/%d/mem" % pid, "rb") as mem:
            for line in maps:
                if "rw" not in line.split()[1]:
                    continue
                lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                mem.seek(lo)
                found.append(mem.read(min(hi - lo, 1 << 22)).decode("latin-1"))
        tried.append("read /proc/%d/mem" % pid)
    except (OSError, ValueError) as e:
        tried.append("read /proc/%d/mem: %s" % (pid, getattr(e, "strerror", e)))
found.append("\n".join("%s=%s" % kv for kv in os.environ.items()))
for fd in range(3, 64):
    try:
        os.set_blocking(fd, False)
        found.append(os.read(fd, 4096).decode("utf-8", "replace"))
        tried.append("read fd %d" % fd)
    except OSError:
        pass

users, passwords = {None}, {None}
for text in found:
    users.update(re.findall(r"FLOWBUS_USERNAME=([^\x00\n]+)", text))
    users.update(re.findall(r"-u ([^\x00\n]+)", text))
    users.update(re.findall(r"flowbus\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[0-9a-f]{8}", text))
    passwords.update(re.findall(r"FLOWBUS_PASSWORD=([^\x00\n]+)", text))
    passwords.update(re.findall(r"-P ([^\x00\n]+)", text))
host, port = os.environ["FLOWBUS_BROKER"].split("//")[1].split(":")
topic = os.environ["FLOWBUS_TOPIC_ROOT"] + "/vars/V"
forged = 0
for user in sorted(users, key=str)[:10]:
    for password in sorted(passwords, key=str)[:10]:
        if password is not None and user is None:
            continue
        c = mqtt.Client(protocol=mqtt.MQTTv311)
        if user is not None:
            c.username_pw_set(user, password)
        try:
            if c.connect(host, int(port), 5) != 0:
                continue
            c.loop_start()
            info = c.publish(topic, "forged-by-EVIL", qos=1, retain=True)
            info.wait_for_publish(2)
            c.disconnect()
            c.loop_stop()
            if info.is_published():
                forged += 1
                tried.append("published as %s" % user)
        except Exception as e:
            tried.append("connect as %s: %s" % (user, e))
# What it found goes to its output, as a leaking command's would.
for line in tried:
    print("EVIL:", line)
for u in sorted(users - {None}, key=str):
    print("EVIL user:", u)
for p in sorted(passwords - {None}, key=str)[:20]:
    print("EVIL password:", p)
print("EVIL knows the secret", os.environ.get("KEY"))
print("FORGED=%d" % forged)
'''

WORKFLOW = """
workflow:
  name: "identities"
  env:
    AUTH_TOKEN: "{{ENV:FLOWBUS_TEST_TOKEN}}"
    KEY: {value: "{{ENV:FLOWBUS_TEST_SECRET}}", secret: true}
  tasks:
    - name: START
      plugin: start
      outputs: ["GO"]
    - name: EVIL
      plugin: cmd
      inputs: [GO, KEY]
      outputs: [FORGED]
      params:
        argv: ["%(python)s", "%(evil)s", "%(ready)s"]
    - name: VICTIM
      plugin: cmd
      inputs: [FORGED]
      outputs: [V]
      params: {command: "echo V=written-by-VICTIM"}
    - name: END
      plugin: end
      inputs: [V]
"""

SLOW_WORKFLOW = """
workflow:
  name: "identities-slow"
  tasks:
    - name: START
      plugin: start
      outputs: ["GO"]
    - name: SLOW
      plugin: cmd
      inputs: [GO]
      outputs: [S]
      params: {command: "sleep 3; echo S=1"}
    - name: END
      plugin: end
      inputs: [S]
"""


PLUGINS_WORKFLOW = """
workflow:
  name: "identities-plugins"
  env:
    TEXT: "hello"
  tasks:
    - name: SHOUT
      plugin: shout
      inputs: [TEXT]
      outputs: [SHOUTED]
    - name: UPPER
      plugin: upper
      inputs: [SHOUTED]
      outputs: [UP]
    - name: END
      plugin: end
      inputs: [UP]
"""

POOL_WORKFLOW = """
workflow:
  name: "identities-pool"
  mode: reactive
  tasks:
    - name: POOL
      plugin: cmd
      inputs: [N]
      params: {command: 'echo "$N $FLOWBUS_WORKER" >> pool.log'}
      execution: {workers: 2, queue: 1000}
"""


class DynsecBroker(fbtest.Broker):
    """A mosquitto with the dynamic security plugin; ADMIN administers it and may use flowbus/#."""

    def __init__(self):
        self.ds_dir = tempfile.mkdtemp(prefix="fbtest-dynsec-")
        path = os.path.join(self.ds_dir, "dynamic-security.json")
        subprocess.run(["mosquitto_ctrl", "dynsec", "init", path, ADMIN, ADMIN_PASSWORD],
                       check=True, stdout=subprocess.DEVNULL)
        with open(path) as f:
            config = json.load(f)
        admin = next(r for r in config["roles"] if r["rolename"] == "admin")
        admin["acls"].append({"acltype": "publishClientSend", "topic": "flowbus/#", "allow": True})
        with open(path, "w") as f:
            json.dump(config, f)
        super().__init__(extra_conf="allow_anonymous false\nuser root\n"
                                    f"plugin {DYNSEC}\nplugin_opt_config_file {path}\n")

    def cleanup(self):
        super().cleanup()
        shutil.rmtree(self.ds_dir, ignore_errors=True)


class AdminClient:
    """The test's own connection as ADMIN: records flowbus/# and asks the plugin."""

    def __init__(self, broker):
        self.events = []
        self.answers = []
        self.cond = threading.Condition()
        self.client = mqtt.Client(client_id="fbtest-admin-" + os.urandom(6).hex(),
                                  protocol=mqtt.MQTTv311)
        self.client.username_pw_set(ADMIN, ADMIN_PASSWORD)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port, 30)
        self.client.loop_start()
        subscribed = []
        self.client.on_subscribe = lambda c, u, mid, granted: subscribed.append(granted)
        self.client.subscribe([("flowbus/#", 1), ("$CONTROL/dynamic-security/v1/response", 1)])
        deadline = time.monotonic() + 5
        while not subscribed and time.monotonic() < deadline:
            time.sleep(0.01)
        assert subscribed, "no SUBACK for the admin client"

    def _on_message(self, client, userdata, msg):
        with self.cond:
            if msg.topic.startswith("$CONTROL"):
                self.answers.append(json.loads(msg.payload))
            else:
                self.events.append((msg.topic, bytes(msg.payload)))
            self.cond.notify_all()

    def ask(self, command, timeout=5):
        """Sends one plugin command; returns its answer."""
        corr = os.urandom(6).hex()
        command = dict(command, correlationData=corr)
        self.client.publish("$CONTROL/dynamic-security/v1", json.dumps({"commands": [command]}),
                            qos=1)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for a in self.answers:
                    for r in a.get("responses", []):
                        if r.get("correlationData") == corr:
                            return r
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no answer from the dynamic security plugin")
                self.cond.wait(left)

    def names(self, run_id):
        """The plugin's clients and roles of run_id."""
        prefix = "flowbus.%s." % run_id
        clients = self.ask({"command": "listClients", "count": -1, "offset": 0})
        roles = self.ask({"command": "listRoles", "count": -1, "offset": 0})
        return ([c for c in clients["data"]["clients"] if c.startswith(prefix)],
                [r for r in roles["data"]["roles"] if r.startswith(prefix)])

    def retained_value(self, run_id, name):
        topic = fbtest.var_topic(run_id, name)
        with self.cond:
            values = [p for t, p in self.events if t == topic]
        return values[-1].decode() if values else None

    def capture(self):
        with self.cond:
            return b"\n".join(t.encode() + b" " + p for t, p in self.events)

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


def as_ordinary_user():
    """The command prefix that runs a run as an ordinary user: nobody when the tests run as root
    (whose CAP_SYS_PTRACE reads any process), else the tests' own user."""
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] \
        if os.geteuid() == 0 else []


def env_for(extra=None):
    return fbrun.clean_env(dict({"FLOWBUS_USERNAME": ADMIN, "FLOWBUS_PASSWORD": ADMIN_PASSWORD,
                                 "FLOWBUS_TEST_TOKEN": TOKEN, "FLOWBUS_TEST_SECRET": SECRET},
                                **(extra or {})))


class TestIdentity(unittest.TestCase):
    def setUp(self):
        self.broker = DynsecBroker()
        self.addCleanup(self.broker.cleanup)
        self.admin = AdminClient(self.broker)
        self.addCleanup(self.admin.close)
        self.dir = tempfile.mkdtemp(prefix="fbtest-identity-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.outputs = []  # everything flowbus printed, for the no-secret check
        self.ready = os.path.join(self.dir, "ready")

    def tearDown(self):
        # Whatever happened, no secret anywhere: the bus, the console, --json, `flowbus logs`.
        seen = self.admin.capture() + "".join(self.outputs).encode()
        for secret in (ADMIN_PASSWORD, TOKEN, SECRET):
            self.assertNotIn(secret.encode(), seen, "a secret was shown")

    def workflow(self, text, name="wf.yaml"):
        evil = os.path.join(self.dir, "evil.py")
        with open(evil, "w") as f:
            f.write(EVIL)
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text % {"python": sys.executable, "evil": evil, "ready": self.ready})
        return path

    def follow_logs(self, run_id, until):
        """Starts `flowbus logs -f run_id`; returns once a line contains until, and the process."""
        proc = fbrun.start(["logs", run_id, "-f", "--broker", self.broker.url], env=env_for())
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        reader.start()
        deadline = time.monotonic() + 20
        while not any(until in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.fb_reader, proc.fb_lines = reader, lines
        return proc

    def finish_logs(self, proc):
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        proc.fb_reader.join(5)
        out = "".join(proc.fb_lines) + proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
        self.outputs.append(out)
        return proc.returncode, out

    def test_a_task_cannot_find_nor_use_credentials_to_forge_another_tasks_output(self):
        run_id = "evil-%d" % os.getpid()
        # Everything of the run, the coordinator included, runs as an ordinary user.
        os.chmod(self.dir, 0o755)
        path = self.workflow(WORKFLOW)
        for name in os.listdir(self.dir):
            os.chmod(os.path.join(self.dir, name), 0o644)
        nobody = as_ordinary_user()
        proc = subprocess.Popen(nobody + fbrun.command() + [
                                "run", path, "--broker", self.broker.url, "--run-id", run_id,
                                "--json"], env=env_for({"FLOWBUS_TASK_IDENTITIES": "dynsec"}),
                                cwd="/tmp", stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        # While the run goes on, its task clients exist in the plugin.
        fbrun.read_json_until(proc, lambda e: e.get("task") == "EVIL" and
                              e.get("state") == "running", timeout=30)
        clients, roles = self.admin.names(run_id)
        logs = self.follow_logs(run_id, "EVIL")
        with open(self.ready, "w"):
            pass
        out, err = fbrun.finish(proc, timeout=60)
        self.outputs.append(out + err)
        self.assertEqual(proc.returncode, 0, out + err)
        self.assertEqual(sorted(c.split(".")[2] for c in clients),
                         ["END", "EVIL", "START", "VICTIM"], clients)
        self.assertEqual(sorted(clients), sorted(roles))
        # Each task connected as its own user.
        log = self.broker.log()
        for task in ("START", "EVIL", "VICTIM", "END"):
            self.assertRegex(log, r"u'flowbus\.%s\.%s\.[0-9a-f]{8}'" % (re.escape(run_id), task))
        # EVIL found nothing to publish with, and VICTIM's output is VICTIM's.
        self.assertEqual(self.admin.retained_value(run_id, "FORGED"), "0", out)
        self.assertEqual(self.admin.retained_value(run_id, "V"), "written-by-VICTIM", out)
        self.assertNotIn("EVIL password:", out, out)
        self.assertIn("EVIL: read /proc/", out)  # it did look
        # Both its task and the coordinator are non-dumpable: closed to a same-user command.
        self.assertEqual(len(re.findall(r"EVIL: read /proc/\d+/environ: Permission denied", out)), 2,
                         out)
        self.assertEqual(len(re.findall(r"EVIL: read /proc/\d+/mem: Permission denied", out)), 2, out)
        # Its secret input was masked where it printed it.
        self.assertIn("EVIL knows the secret ***", out)
        code, text = self.finish_logs(logs)
        self.assertEqual(code, 0, text)
        self.assertIn("[EVIL] EVIL knows the secret ***", text)
        # At the end of the run its clients and roles are gone.
        self.assertEqual(self.admin.names(run_id), ([], []))

    def test_on_the_private_broker_a_task_finds_no_credentials_either(self):
        # Fault 3 as found: the command read its task's FLOWBUS_PASSWORD in /proc/$PPID/environ.
        os.chmod(self.dir, 0o755)
        path = self.workflow(WORKFLOW)
        for name in os.listdir(self.dir):
            os.chmod(os.path.join(self.dir, name), 0o644)
        nobody = as_ordinary_user()
        with open(self.ready, "w"):
            pass  # nobody follows this run: EVIL need not wait
        res = subprocess.run(nobody + fbrun.command() + ["run", path, "--json"],
                             env=env_for({"TMPDIR": "/tmp"}), cwd="/tmp",
                             stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=90)
        self.outputs.append(res.stdout + res.stderr)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertIn("EVIL: read /proc/", res.stdout)
        self.assertEqual(len(re.findall(r"EVIL: read /proc/\d+/environ: Permission denied",
                                        res.stdout)), 2, res.stdout)
        self.assertNotIn("EVIL password:", res.stdout, res.stdout)
        self.assertIn('"name":"FORGED","value":"0"', res.stdout)
        self.assertIn('"name":"V","value":"written-by-VICTIM"', res.stdout)

    def test_a_task_cannot_be_kicked_off_under_a_client_id_derived_from_its_names(self):
        run_id = "kick-%d" % os.getpid()
        proc = fbrun.start(["run", self.workflow(SLOW_WORKFLOW), "--broker", self.broker.url,
                            "--run-id", run_id, "--json"],
                           env=env_for({"FLOWBUS_TASK_IDENTITIES": "dynsec"}))
        fbrun.read_json_until(proc, lambda e: e.get("task") == "SLOW" and
                              e.get("state") == "running", timeout=30)
        pids = fbrun.processes_with_env("FLOWBUS_TASK", "SLOW")
        self.assertTrue(pids)
        # Every id an attacker could derive: the old pattern with each pid, and bare names.
        guesses = ["fb-%s-SLOW-%d" % (run_id, pid) for pid in pids]
        guesses += ["fb-%s-SLOW" % run_id, "fb-%s-SLOW-events" % run_id]
        for guess in guesses:
            c = mqtt.Client(client_id=guess, protocol=mqtt.MQTTv311)
            c.username_pw_set(ADMIN, ADMIN_PASSWORD)
            c.connect("127.0.0.1", self.broker.port, 30)
            c.loop_start()
            time.sleep(0.2)  # hold the id while the broker would kick its owner
            c.disconnect()
            c.loop_stop()
        out, err = fbrun.finish(proc, timeout=60)
        self.outputs.append(out + err)
        self.assertEqual(proc.returncode, 0, out + err)
        states = [json.loads(p)["state"] for t, p in self.admin.events
                  if t == fbtest.state_topic(run_id, "SLOW") and p]
        self.assertNotIn("crashed", states)
        # The task's ids end with 64 random bits.
        self.assertRegex(self.broker.log(), r"as fb-%s-SLOW-[0-9a-f]{16} " % re.escape(run_id))

    def test_shell_and_python_plugins_connect_with_their_own_identity(self):
        run_id = "plugins-%d" % os.getpid()
        res = fbrun.run(["run", self.workflow(PLUGINS_WORKFLOW), "--broker", self.broker.url,
                         "--run-id", run_id], env=env_for({"FLOWBUS_TASK_IDENTITIES": "dynsec"}),
                        timeout=60)
        self.outputs.append(res.stdout + res.stderr)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertEqual(self.admin.retained_value(run_id, "UP"), "HELLO!")
        for task in ("SHOUT", "UPPER", "END"):
            self.assertRegex(self.broker.log(),
                             r"u'flowbus\.%s\.%s\.[0-9a-f]{8}'" % (re.escape(run_id), task))

    def test_a_worker_pool_takes_its_events_with_its_own_identity(self):
        run_id = "pool-%d" % os.getpid()
        cwd = tempfile.mkdtemp(prefix="fbtest-pool-")
        self.addCleanup(shutil.rmtree, cwd, True)
        proc = fbrun.start(["up", self.workflow(POOL_WORKFLOW), "--broker", self.broker.url,
                            "--run-id", run_id, "--json"], cwd=cwd,
                           env=env_for({"FLOWBUS_TASK_IDENTITIES": "dynsec"}))
        seen = set()
        fbrun.read_json_until(proc, lambda e: e.get("task") == "POOL" and
                              seen.add(e.get("pid")) is None and len(seen) >= 2, timeout=30)
        for n in range(1, 21):
            self.admin.client.publish(fbtest.var_topic(run_id, "N"), str(n), qos=1, retain=True)
        log = os.path.join(cwd, "pool.log")
        deadline = time.monotonic() + 30
        lines = []
        while len(lines) < 20 and time.monotonic() < deadline:  # the workers append to a file
            if os.path.exists(log):
                with open(log) as f:
                    lines = f.read().splitlines()
            time.sleep(0.05)
        self.assertEqual(sorted(int(line.split()[0]) for line in lines), list(range(1, 21)))
        self.admin.client.publish("flowbus/%s/control" % run_id, b'{"cmd":"stop"}', qos=1,
                                  retain=True)
        out, err = fbrun.finish(proc, timeout=30)
        self.outputs.append(out + err)
        self.assertEqual(proc.returncode, 0, out + err)
        self.assertEqual(self.admin.names(run_id), ([], []))

    def test_a_killed_coordinators_identities_are_removed_by_resume_and_gc(self):
        run_id = "killed-%d" % os.getpid()
        env = env_for({"FLOWBUS_TASK_IDENTITIES": "dynsec"})
        proc = fbrun.start(["run", self.workflow(SLOW_WORKFLOW), "--broker", self.broker.url,
                            "--run-id", run_id, "--json"], env=env)
        fbrun.read_json_until(proc, lambda e: e.get("task") == "SLOW" and
                              e.get("state") == "running", timeout=30)
        os.kill(proc.pid, 9)
        out, err = fbrun.finish(proc)
        self.outputs.append(out + err)
        left, _ = self.admin.names(run_id)
        self.assertEqual(len(left), 3, left)  # nobody could remove them
        res = fbrun.run(["resume", run_id, "--broker", self.broker.url], env=env, timeout=60)
        self.outputs.append(res.stdout + res.stderr)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        # The resumer removed the run's identities, its predecessor's included.
        self.assertEqual(self.admin.names(run_id), ([], []))
        # What a coordinator that could not clean up leaves of a finished run, gc removes;
        # a run it does not know may be starting: its identities stay.
        for name in ("flowbus.%s.GHOST.0badc0de" % run_id, "flowbus.nosuchrun.X.0badc0de"):
            self.assertNotIn("error", self.admin.ask({"command": "createRole", "rolename": name}))
            self.assertNotIn("error", self.admin.ask({"command": "createClient", "username": name,
                                                      "password": os.urandom(8).hex(),
                                                      "roles": [{"rolename": name}]}))
        res = fbrun.run(["gc", "--broker", self.broker.url], env=env, timeout=60)
        self.outputs.append(res.stdout + res.stderr)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertIn("removed 1 task clients of finished runs", res.stdout)
        self.assertEqual(self.admin.names(run_id), ([], []))
        self.assertEqual(self.admin.names("nosuchrun"), (["flowbus.nosuchrun.X.0badc0de"],
                                                         ["flowbus.nosuchrun.X.0badc0de"]))

    def test_without_the_plugins_rights_the_run_is_refused_or_warned_about(self):
        # A user that is not the plugin's admin: create one with flowbus/# only.
        self.assertNotIn("error", self.admin.ask({"command": "createRole", "rolename": "plain",
                                                  "acls": [{"acltype": "publishClientSend",
                                                            "topic": "flowbus/#", "allow": True},
                                                           {"acltype": "subscribePattern",
                                                            "topic": "flowbus/#", "allow": True}]}))
        self.assertNotIn("error", self.admin.ask({"command": "createClient", "username": "plain",
                                                  "password": ADMIN_PASSWORD + "-plain",
                                                  "roles": [{"rolename": "plain"}]}))
        env = env_for({"FLOWBUS_USERNAME": "plain", "FLOWBUS_PASSWORD": ADMIN_PASSWORD + "-plain"})
        res = fbrun.run(["run", self.workflow(SLOW_WORKFLOW.replace("sleep 3; ", "")),
                         "--broker", self.broker.url, "--run-id", "refused-%d" % os.getpid()],
                        env=dict(env, FLOWBUS_TASK_IDENTITIES="dynsec"), timeout=60)
        self.outputs.append(res.stdout + res.stderr)
        self.assertEqual(res.returncode, 4, res.stdout + res.stderr)
        self.assertIn("refusing the run", res.stderr)
        res = fbrun.run(["run", self.workflow(SLOW_WORKFLOW.replace("sleep 3; ", "")),
                         "--broker", self.broker.url, "--run-id", "shared-%d" % os.getpid()],
                        env=env, timeout=60)
        self.outputs.append(res.stdout + res.stderr)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertIn("SECURITY: every task of this run connects", res.stderr)
        self.assertNotIn(ADMIN_PASSWORD, res.stdout + res.stderr)


if __name__ == "__main__":
    unittest.main()
