"""A task process is one thread on libmosquitto, and stays on the bus while it waits (issue 12).

The SDK drives libmosquitto from the task's own poll: a built-in that waits in
its own code (cmd for its command, touched for its file) serves the broker
socket from that same poll, through fb_task_fd. So the process has exactly
one thread (/proc/<pid>/task), and a command that runs longer than the
keepalive does not get the task dropped by the broker: its Last Will (the
state "crashed") never fires. The Paho backend keeps Paho's threads; there
only the keepalive half applies.

Each task process is started directly with a task's environment
(fbtest.task_env), so the test knows its pid; every wait is on an event with
a deadline.
"""

import json
import os
import time
import unittest

import fbtest

CMD = fbtest.bin_path("flowbus-cmd")
# libmosquitto's least; FLOWBUS_KEEPALIVE is read by fb_task_open.
KEEPALIVE = 5


def rid(name):
    return "%s-%d" % (name, os.getpid())


def threads_of(pid):
    return len(os.listdir("/proc/%d/task" % pid))


class OneThreadTest(fbtest.BrokerTestCase):

    def start_cmd(self, run_id, command, extra=None, inputs=()):
        env = fbtest.task_env(self.broker, run_id, "T", inputs=inputs, outputs=(),
                              params={"command": command}, extra=extra)
        env["FLOWBUS_PLUGIN"] = "cmd"
        proc = fbtest.spawn([CMD], env)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        return proc

    def states(self, run_id):
        return self.recorder.states(run_id, "T")

    @unittest.skipUnless(fbtest.mqtt_backend() == "mosquitto", "Paho runs threads of its own")
    def test_a_oneshot_cmd_is_one_thread_while_its_command_runs(self):
        run_id = rid("one")
        proc = self.start_cmd(run_id, "sleep 2")
        self.recorder.wait_state(run_id, "T", "running", 5)
        counts = set()
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                counts.add(threads_of(proc.pid))
            except FileNotFoundError:
                break
            time.sleep(0.05)
        out, err = proc.communicate(timeout=10)
        self.assertEqual(proc.returncode, 0, err)
        self.assertEqual(counts, {1}, "threads seen in the task process while `sleep 2` ran")
        self.assertEqual(self.states(run_id)[-1], "done")

    @unittest.skipUnless(fbtest.mqtt_backend() == "mosquitto", "Paho runs threads of its own")
    def test_a_reactive_cmd_is_one_thread_idle_and_in_an_activation(self):
        run_id = rid("react")
        proc = self.start_cmd(run_id, "sleep 1", inputs=("X",),
                              extra={"FLOWBUS_MODE": "reactive"})
        self.recorder.wait_state(run_id, "T", "waiting", 5)
        idle = threads_of(proc.pid)
        self.recorder.publish(fbtest.var_topic(run_id, "X"), "1", retain=True)
        self.recorder.wait_state(run_id, "T", "running", 5)
        busy = threads_of(proc.pid)
        self.assertEqual((idle, busy), (1, 1), "threads (idle, inside an activation)")
        self.recorder.publish("flowbus/%s/control" % run_id, json.dumps({"cmd": "stop"}),
                              retain=True)
        proc.communicate(timeout=10)

    def test_a_command_longer_than_the_keepalive_keeps_the_task_on_the_bus(self):
        # 2.4 keepalives with nothing to say: the broker drops a silent client after 1.5.
        run_id = rid("long")
        proc = self.start_cmd(run_id, "sleep %d" % (KEEPALIVE * 12 // 5),
                              extra={"FLOWBUS_KEEPALIVE": str(KEEPALIVE)})
        out, err = proc.communicate(timeout=KEEPALIVE * 4)
        self.assertEqual(proc.returncode, 0, err)
        self.recorder.wait_state(run_id, "T", "done", 5)
        self.assertNotIn("crashed", self.states(run_id), "the Last Will fired")
        self.assertNotIn("exceeded keep alive", self.broker.log())

    def test_a_bad_keepalive_is_refused(self):
        proc = self.start_cmd(rid("bad"), "true", extra={"FLOWBUS_KEEPALIVE": "2"})
        out, err = proc.communicate(timeout=10)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("FLOWBUS_KEEPALIVE", err)


if __name__ == "__main__":
    unittest.main()
