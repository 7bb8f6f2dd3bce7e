"""Values on their way into and out of tasks (issue 14, "Bounded, regular inputs").

What the adversarial pass broke, each as a test that failed before the fix:
a value with a newline forged a KEY=VALUE line in a downstream cmd's output;
a value over 128 KiB failed at exec with "Argument list too long" although
256 KiB is documented; a value published from outside over the limit, or
with a NUL byte, was taken (cut at the NUL); an output named LD_PRELOAD went
on the bus and into a downstream command's environment; `--set` and
`flowbus set` accepted reserved names.

The runs use the test's own mosquitto (`--broker`) or run task processes
directly with the environment flowbus gives them (fbtest.task_env), so a
case the workflow loader refuses (a declared LD_PRELOAD output) is still
checked at run time.
"""

import json
import os
import shutil
import tempfile
import unittest

import fbrun
import fbtest


def events(stdout):
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def var_values(evs, name):
    return [e["value"] for e in evs if e["event"] == "var" and e["name"] == name]


def logs(evs, task):
    return [e["line"] for e in evs if e["event"] == "log" and e.get("task") == task]


class ValuesTestCase(fbtest.BrokerTestCase):
    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="fbtest-values-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        # The run's own directories (and cmd's per-run ones) land here, to be checked.
        self.env = fbrun.clean_env({"TMPDIR": self.dir})

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def run_flow(self, path, *args, code=None):
        res = fbrun.run(["run", path, "--json", "--broker", self.broker.url] + list(args),
                        cwd=self.dir, env=self.env)
        if code is not None:
            self.assertEqual(res.returncode, code, res.stderr + res.stdout[-2000:])
        return res, events(res.stdout)

    def leftovers(self):
        return [n for n in os.listdir(self.dir) if n.startswith("flowbus-")]


INJECTION = """workflow:
  name: injection
  env:
    META: "plain"
  tasks:
    - name: "A"
      plugin: "cmd"
      inputs: ["META"]
      outputs: ["STATUS", "ECHOED"]
      params:
        command: 'echo STATUS=rejected; echo "ECHOED=$META"'
"""


class NewlineInjection(ValuesTestCase):
    def test_a_newline_in_an_input_cannot_forge_an_output_line(self):
        # The reproduction of issue 14: this ended STATUS=approved.
        path = self.write("inj.yaml", INJECTION)
        res, evs = self.run_flow(path, "--set", "META=hi\nSTATUS=approved", code=1)
        self.assertNotIn("approved", var_values(evs, "STATUS"))
        self.assertEqual(var_values(evs, "STATUS"), [])
        final = evs[-1]
        self.assertEqual(final["tasks"]["A"]["state"], "failed")
        error = final["tasks"]["A"]["error"]
        self.assertIn("input META holds a newline", error)
        self.assertIn("$FLOWBUS_OUTPUT", error)
        # The refused lines are shown, as log lines.
        self.assertIn("STATUS=approved", logs(evs, "A"))
        self.assertEqual(self.leftovers(), [])

    def test_without_a_newline_stdout_still_sets_outputs(self):
        path = self.write("inj.yaml", INJECTION)
        _, evs = self.run_flow(path, code=0)
        self.assertEqual(var_values(evs, "STATUS"), ["rejected"])
        self.assertEqual(var_values(evs, "ECHOED"), ["plain"])

    def test_the_output_file_carries_values_with_newlines_and_cannot_be_forged(self):
        path = self.write("file.yaml", """workflow:
  name: outfile
  env:
    META: "plain"
  tasks:
    - name: "A"
      plugin: "cmd"
      inputs: ["META"]
      outputs: ["STATUS", "ECHOED"]
      params:
        command: |
          echo "STATUS=rejected" >> "$FLOWBUS_OUTPUT"
          { echo "ECHOED<<END_OF_VALUE"; printf '%s\\n' "$META"; echo "END_OF_VALUE"; } >> "$FLOWBUS_OUTPUT"
          echo "ECHOED=$META"
    - name: "B"
      plugin: "cmd"
      inputs: ["ECHOED"]
      outputs: ["SAME"]
      params:
        command: |
          printf 'hi\\nSTATUS=approved' > "$FLOWBUS_INPUTS_DIR/../expected"
          cmp "$FLOWBUS_INPUTS_DIR/ECHOED" "$FLOWBUS_INPUTS_DIR/../expected"
          [ "$ECHOED" = "$(cat "$FLOWBUS_INPUTS_DIR/../expected")" ] && echo SAME=yes >> "$FLOWBUS_OUTPUT"
""")
        _, evs = self.run_flow(path, "--set", "META=hi\nSTATUS=approved", code=0)
        self.assertEqual(var_values(evs, "STATUS"), ["rejected"])
        self.assertEqual(var_values(evs, "ECHOED"), ["hi\nSTATUS=approved"])
        self.assertEqual(var_values(evs, "SAME"), ["yes"])

    def test_a_malformed_output_file_fails_the_task_with_its_line(self):
        path = self.write("bad.yaml", """workflow:
  name: badfile
  tasks:
    - name: "A"
      plugin: "cmd"
      outputs: ["X"]
      params:
        command: 'printf "X=1\\nthis is not a pair\\n" >> "$FLOWBUS_OUTPUT"'
""")
        _, evs = self.run_flow(path, code=1)
        self.assertEqual(var_values(evs, "X"), [])
        self.assertIn("$FLOWBUS_OUTPUT line 2: expected KEY=VALUE", evs[-1]["tasks"]["A"]["error"])

    def test_an_output_file_replaced_by_a_symlink_is_not_followed(self):
        path = self.write("link.yaml", """workflow:
  name: link
  tasks:
    - name: "A"
      plugin: "cmd"
      outputs: ["X"]
      params:
        command: 'rm "$FLOWBUS_OUTPUT"; ln -s /dev/zero "$FLOWBUS_OUTPUT"'
""")
        _, evs = self.run_flow(path, code=1)
        self.assertIn("symbolic link", evs[-1]["tasks"]["A"]["error"])

    def test_a_value_with_a_nul_byte_fails_the_task_rather_than_being_cut(self):
        # Before, the stdout line was dropped with a warning and the task was done without X.
        path = self.write("nul.yaml", """workflow:
  name: nul
  tasks:
    - name: "A"
      plugin: "cmd"
      outputs: ["X"]
      params:
        command: 'printf "X=a\\000b\\n"'
    - name: "B"
      plugin: "cmd"
      outputs: ["Y"]
      params:
        command: 'printf "Y=a\\000b\\n" >> "$FLOWBUS_OUTPUT"'
""")
        _, evs = self.run_flow(path, code=1)
        for task, name in (("A", "X"), ("B", "Y")):
            self.assertEqual(var_values(evs, name), [])
            self.assertEqual(evs[-1]["tasks"][task]["state"], "failed")
            self.assertIn("the value of %s contains a NUL byte" % name,
                          evs[-1]["tasks"][task]["error"])


class LargeValues(ValuesTestCase):
    def test_a_value_of_250_kib_reaches_the_command(self):
        # Before: "cannot run '/bin/sh': Argument list too long" (MAX_ARG_STRLEN is 128 KiB).
        path = self.write("big.yaml", """workflow:
  name: big
  tasks:
    - name: "A"
      plugin: "cmd"
      outputs: ["BIG"]
      params:
        command: 'printf "BIG="; head -c 250000 /dev/zero | tr "\\000" y; echo'
    - name: "B"
      plugin: "cmd"
      inputs: ["BIG"]
      outputs: ["LEN", "IN_ENV"]
      params:
        command: 'echo "LEN=$(wc -c < "$FLOWBUS_INPUTS_DIR/BIG")"; echo "IN_ENV=${BIG+yes}"'
""")
        _, evs = self.run_flow(path, code=0)
        self.assertEqual(var_values(evs, "LEN"), ["250000"])
        self.assertEqual(var_values(evs, "IN_ENV"), [""])
        self.assertTrue([line for line in logs(evs, "B") if "input BIG (250000 bytes) is left "
                         "out of the command's environment" in line], logs(evs, "B"))

    def test_inputs_too_large_together_for_exec_are_left_out_largest_first(self):
        # 24 inputs of 100 KB: each fits in the environment, all together (2.4 MB) do not.
        names = ["V%02d" % i for i in range(24)]
        producer = "".join('printf "%s="; head -c 100000 /dev/zero | tr "\\000" v; echo; '
                           % n for n in names)
        path = self.write("many.yaml", """workflow:
  name: many
  tasks:
    - name: "A"
      plugin: "cmd"
      outputs: [%s]
      params:
        command: '%s'
    - name: "B"
      plugin: "cmd"
      inputs: [%s]
      outputs: ["FILES"]
      params:
        command: 'echo "FILES=$(cat "$FLOWBUS_INPUTS_DIR"/V* | wc -c)"'
""" % (", ".join(names), producer, ", ".join(names)))
        _, evs = self.run_flow(path, code=0)
        self.assertEqual(var_values(evs, "FILES"), [str(24 * 100000)])
        left_out = [line for line in logs(evs, "B") if "over what exec takes" in line]
        self.assertTrue(left_out, logs(evs, "B"))


class FromOutside(ValuesTestCase):
    """Values published on the bus by someone else: held to the limit, text only."""

    def start_task(self, extra=None):
        env = fbtest.task_env(self.broker, self.run_id(), "T", inputs=["X"], outputs=["LEN"],
                              params={"command": 'printf "LEN=%s\\n" "${#X}"'},
                              extra=dict({"FLOWBUS_MAX_VALUE": "1000"}, **(extra or {})))
        proc = fbtest.spawn([fbtest.bin_path("flowbus-cmd")], env)
        self.addCleanup(self.reap, proc)
        self.recorder.wait_state(self.run_id(), "T", "waiting", timeout=10)
        return proc

    def reap(self, proc):
        if proc.poll() is None:
            proc.kill()
        proc.communicate()

    def run_id(self):
        return "values-%d-%s" % (os.getpid(), self._testMethodName[-24:].replace("_", "-"))

    def log_lines(self):
        topic = "flowbus/%s/tasks/T/log" % self.run_id()
        return [e.payload.decode("utf-8", "replace") for e in self.recorder.on_topic(topic)]

    def wait_log(self, fragment):
        got = self.recorder.wait_for(
            lambda evs: any(fragment in line for line in self.log_lines()) or None, 10)
        self.assertTrue(got, "no log line with %r: %s" % (fragment, self.log_lines()))

    def test_a_value_over_the_limit_from_outside_is_refused_then_a_good_one_taken(self):
        proc = self.start_task()
        topic = fbtest.var_topic(self.run_id(), "X")
        self.recorder.publish(topic, b"y" * 1001, retain=True)
        self.wait_log("value of X refused: 1001 bytes, over the limit of 1000")
        self.recorder.publish(topic, b"y" * 1000, retain=True)
        _, state = self.recorder.wait_state(self.run_id(), "T", "done", timeout=10)
        self.assertEqual(proc.wait(10), 0)
        values = [e.payload for e in self.recorder.on_topic(fbtest.var_topic(self.run_id(),
                                                                             "LEN"))]
        self.assertEqual(values, [b"1000"])

    def test_a_value_with_a_nul_byte_from_outside_is_refused_not_cut(self):
        proc = self.start_task()
        topic = fbtest.var_topic(self.run_id(), "X")
        self.recorder.publish(topic, b"a\x00bcd", retain=True)
        self.wait_log("value of X refused: it contains a NUL byte")
        self.recorder.publish(topic, b"abc", retain=True)
        self.recorder.wait_state(self.run_id(), "T", "done", timeout=10)
        self.assertEqual(proc.wait(10), 0)
        values = [e.payload for e in self.recorder.on_topic(fbtest.var_topic(self.run_id(),
                                                                             "LEN"))]
        self.assertEqual(values, [b"3"])  # before: 1, the value cut at its NUL

    def test_the_empty_value_still_travels_as_one_nul_byte(self):
        proc = self.start_task()
        self.recorder.publish(fbtest.var_topic(self.run_id(), "X"), b"\x00", retain=True)
        self.recorder.wait_state(self.run_id(), "T", "done", timeout=10)
        self.assertEqual(proc.wait(10), 0)
        values = [e.payload for e in self.recorder.on_topic(fbtest.var_topic(self.run_id(),
                                                                             "LEN"))]
        self.assertEqual(values, [b"0"])


class ReactiveFromOutside(ValuesTestCase):
    """The issue's case: values published into a running reactive flow (`flowbus up`)."""

    def test_oversize_and_nul_values_fire_no_activation(self):
        import signal
        rid = "values-up-%d" % os.getpid()
        proc = fbrun.start(["up", fbrun.workflow("reactive-echo.yaml"), "--broker",
                            self.broker.url, "--run-id", rid], cwd=self.dir, env=self.env)
        self.addCleanup(lambda: proc.poll() is None and os.killpg(proc.pid, signal.SIGKILL))
        for task in ("ECHO", "SINK"):
            self.recorder.wait_state(rid, task, "waiting", timeout=15)
        x, log = fbtest.var_topic(rid, "X"), "flowbus/%s/tasks/ECHO/log" % rid
        lines = lambda: [e.payload.decode("utf-8", "replace") for e in self.recorder.on_topic(log)]
        self.recorder.publish(x, b"y" * 300000, retain=True)
        self.recorder.publish(x, b"a\x00b", retain=True)
        self.recorder.publish(x, b"small", retain=True)
        got = self.recorder.wait_for(lambda ev: self.recorder.on_topic(fbtest.var_topic(rid, "Y"))
                                     or None, timeout=15)
        self.assertTrue(got)
        # Only the good value fired ECHO: the two others were refused, each with a warning.
        self.assertEqual([e.payload for e in self.recorder.on_topic(fbtest.var_topic(rid, "Y"))],
                         [b"got-small"])
        self.assertTrue([l for l in lines() if "value of X refused: 300000 bytes, over the "
                         "limit of 262144" in l], lines())
        self.assertTrue([l for l in lines() if "value of X refused: it contains a NUL byte"
                         in l], lines())
        self.recorder.publish("flowbus/%s/control" % rid, b'{"cmd":"stop"}', retain=True)
        out, err = fbrun.finish(proc, timeout=20)
        self.assertEqual(proc.returncode, 0, out + err)
        states = [e.json() for e in self.recorder.on_topic(fbtest.state_topic(rid, "ECHO"))]
        self.assertEqual(max(s.get("activation", 0) for s in states), 1)


class SecretInputs(ValuesTestCase):
    def test_a_secret_input_is_in_the_environment_only_never_on_disk(self):
        path = self.write("secret.yaml", """workflow:
  name: secret
  env:
    PLAIN: "visible"
    PASS: {value: "s3cret-value-9", secret: true}
  tasks:
    - name: "A"
      plugin: "cmd"
      inputs: ["PLAIN", "PASS"]
      outputs: ["FILES", "HAS"]
      params:
        command: |
          echo "FILES=$(ls "$FLOWBUS_INPUTS_DIR" | tr '\\n' ' ')" >> "$FLOWBUS_OUTPUT"
          [ "$PASS" = "s3cret-value-9" ] && echo "HAS=yes" >> "$FLOWBUS_OUTPUT"
          grep -rl "s3cret-value-9" "$FLOWBUS_INPUTS_DIR/.." && exit 9 || true
""")
        _, evs = self.run_flow(path, code=0)
        self.assertEqual(var_values(evs, "FILES"), ["PLAIN "])
        self.assertEqual(var_values(evs, "HAS"), ["yes"])


class ReservedNames(ValuesTestCase):
    """LD_PRELOAD, PATH, AUTH_TOKEN... never become a task's environment from a value."""

    def run_id(self):
        return "reserved-%d-%s" % (os.getpid(), self._testMethodName[-24:].replace("_", "-"))

    def test_a_reserved_input_never_reaches_the_command_environment(self):
        # Before: SEEN=/tmp/evil.so, and the loader of every program the command ran loaded it.
        rid = self.run_id()
        self.recorder.publish(fbtest.var_topic(rid, "LD_PRELOAD"), b"/nonexistent/evil.so",
                              retain=True)
        self.recorder.publish(fbtest.var_topic(rid, "PATH"), b"/nonexistent", retain=True)
        env = fbtest.task_env(self.broker, rid, "T", inputs=["LD_PRELOAD", "PATH"],
                              outputs=["SEEN", "FILE"],
                              params={"command": 'echo "SEEN=${LD_PRELOAD-unset}:$PATH"; '
                                                 'echo "FILE=$(cat "$FLOWBUS_INPUTS_DIR/PATH")"'})
        proc = fbtest.run([fbtest.bin_path("flowbus-cmd")], env, timeout=20)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        # The exit does not order the recorder's deliveries; done follows the outputs.
        self.recorder.wait_state(rid, "T", "done", timeout=10)
        seen = [e.payload.decode() for e in self.recorder.on_topic(fbtest.var_topic(rid, "SEEN"))]
        self.assertEqual(len(seen), 1)
        self.assertEqual(seen[0], "unset:" + os.environ["PATH"])
        files = [e.payload for e in self.recorder.on_topic(fbtest.var_topic(rid, "FILE"))]
        self.assertEqual(files, [b"/nonexistent"])
        lines = [e.payload.decode() for e in
                 self.recorder.on_topic("flowbus/%s/tasks/T/log" % rid)]
        self.assertTrue([l for l in lines if "input LD_PRELOAD is not put in the command's "
                         "environment: the name is reserved" in l], lines)

    def test_a_reserved_output_is_never_published(self):
        # A cmd task declared (past the loader) to output LD_PRELOAD and printing it.
        rid = self.run_id()
        env = fbtest.task_env(self.broker, rid, "EVIL", outputs=["LD_PRELOAD", "AUTH_TOKEN"],
                              params={"command": "echo LD_PRELOAD=/tmp/evil.so; "
                                                 "echo AUTH_TOKEN=forged-token"})
        proc = fbtest.run([fbtest.bin_path("flowbus-cmd")], env, timeout=20)
        self.assertEqual(proc.returncode, 1, proc.stderr)
        _, state = self.recorder.wait_state(rid, "EVIL", "failed", timeout=10)
        self.assertIn("reserved name", state["error"])
        for name in ("LD_PRELOAD", "AUTH_TOKEN"):
            self.assertEqual(self.recorder.on_topic(fbtest.var_topic(rid, name)), [])

    def test_set_of_a_reserved_name_is_refused_with_exit_2(self):
        path = self.write("inj.yaml", INJECTION)
        for name in ("LD_PRELOAD", "PATH", "AUTH_TOKEN", "FLOWBUS_BROKER", "BASH_ENV"):
            res = fbrun.run(["run", path, "--broker", self.broker.url, "--set", name + "=x"],
                            cwd=self.dir, env=self.env)
            self.assertEqual(res.returncode, 2, res.stderr)
            self.assertIn("--set %s: '%s' is a reserved name" % (name, name), res.stderr)
            res = fbrun.run(["set", "some-run", name + "=x", "--broker", self.broker.url],
                            cwd=self.dir, env=self.env)
            self.assertEqual(res.returncode, 2, res.stderr)
            self.assertIn("'%s' is reserved" % name, res.stderr)
        self.assertEqual(self.recorder.on_topic(fbtest.var_topic("some-run", "PATH")), [])

    def test_flowbus_set_of_a_value_over_the_limit_is_refused_before_publishing(self):
        env = dict(self.env, FLOWBUS_MAX_VALUE="10")
        res = fbrun.run(["set", "some-run", "X=0123456789a", "--broker", self.broker.url],
                        cwd=self.dir, env=env)
        self.assertEqual(res.returncode, 2, res.stderr)
        self.assertIn("the value of X is 11 bytes, over the limit of 10 bytes", res.stderr)
        self.assertEqual(self.recorder.on_topic(fbtest.var_topic("some-run", "X")), [])


if __name__ == "__main__":
    unittest.main()
