"""Reactive flows through the coordinator: `flowbus up` against a real mosquitto.

Events are published the way a device or a user would: retained QoS 1
messages on flowbus/<run>/vars/<NAME> (what `flowbus set` and
`mosquitto_pub -r` do). Every wait has a deadline.
"""

import json
import os
import signal
import subprocess
import time
import unittest

import fbrun
import fbtest


def rid(name):
    return "%s-%d" % (name, os.getpid())


class ReactiveTestCase(fbtest.BrokerTestCase):
    def up(self, workflow, run_id, cwd, *args):
        proc = fbrun.start(["up", fbrun.workflow(workflow), "--broker", self.broker.url,
                            "--run-id", run_id] + list(args), cwd=cwd)
        self.addCleanup(self.kill, proc)
        return proc

    def kill(self, proc):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()

    def set(self, run_id, name, value):
        self.recorder.publish(fbtest.var_topic(run_id, name), value.encode(), retain=True)

    def values(self, run_id, name):
        return [e.payload.decode() for e in self.recorder.on_topic(fbtest.var_topic(run_id, name))]

    def wait_values(self, run_id, name, n, timeout=15):
        got = self.recorder.wait_for(lambda ev: len(self.values(run_id, name)) >= n or None,
                                     timeout)
        self.assertTrue(got, "%s: %d values within %ss, expected %d: %s" %
                        (name, len(self.values(run_id, name)), timeout, n,
                         self.values(run_id, name)))
        return self.values(run_id, name)

    def wait_ready(self, run_id, *tasks):
        for task in tasks:
            self.recorder.wait_state(run_id, task, "waiting", timeout=15)

    def stop(self, proc, run_id):
        self.recorder.publish("flowbus/%s/control" % run_id, b'{"cmd":"stop"}', retain=True)
        out, err = fbrun.finish(proc, timeout=20)
        return out, err


class TestReactive(ReactiveTestCase):
    def test_one_activation_per_published_value_in_order(self):
        run_id = rid("echo")
        with fbrun.TempDir() as cwd:
            proc = self.up("reactive-echo.yaml", run_id, cwd)
            self.wait_ready(run_id, "ECHO", "SINK")
            for v in ("1", "2", "2"):  # the same value twice is still two events
                # Counted before the set: a value that arrives at once must not raise the bar.
                seen = len(self.values(run_id, "Y"))
                self.set(run_id, "X", v)
                self.wait_values(run_id, "Y", seen + 1)
            self.assertEqual(self.values(run_id, "Y"), ["got-1", "got-2", "got-2"])
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # SINK writes its file once per activation
                if os.path.exists(os.path.join(cwd, "sink.log")) and \
                        len(open(os.path.join(cwd, "sink.log")).read().splitlines()) == 3:
                    break
                time.sleep(0.02)
            with open(os.path.join(cwd, "sink.log")) as f:
                self.assertEqual(f.read().splitlines(), ["1 got-1", "2 got-2", "3 got-2"])
            def ends(events):
                found = [e.json() for e in events if e.topic == fbtest.state_topic(run_id, "ECHO")
                         and e.json().get("result") == "done"]
                return found if len(found) >= 3 else None
            done = self.recorder.wait_for(ends, timeout=10)
            self.assertEqual([s["activation"] for s in done or []], [1, 2, 3])
            out, err = self.stop(proc, run_id)
        self.assertEqual(proc.returncode, 0, out + err)
        self.assertFalse(fbrun.wait_gone(lambda: fbrun.processes_with_env("FLOWBUS_RUN_ID",
                                                                          run_id)))

    def test_join_refires_with_the_latest_of_both_and_trigger_limits(self):
        run_id = rid("join")
        with fbrun.TempDir() as cwd:
            proc = self.up("reactive-join.yaml", run_id, cwd)
            self.wait_ready(run_id, "BOTH", "ONLY_A")
            self.set(run_id, "A", "a1")
            self.set(run_id, "B", "b1")
            self.wait_values(run_id, "AB", 1)
            self.set(run_id, "B", "b2")
            self.wait_values(run_id, "AB", 2)
            self.set(run_id, "A", "a2")
            self.wait_values(run_id, "AB", 3)
            self.wait_values(run_id, "A_ONLY", 1)
            self.assertEqual(self.values(run_id, "AB"), ["a1+b1", "a1+b2", "a2+b2"])
            # ONLY_A fired on A's events (the first while B was unset did nothing),
            # never on B's: the last value it saw is a2 with the latest B.
            self.assertEqual(self.values(run_id, "A_ONLY")[-1], "a2+b2")
            self.assertNotIn("a1+b2", self.values(run_id, "A_ONLY"))
            self.stop(proc, run_id)
        self.assertEqual(proc.returncode, 0)

    def test_a_killed_task_is_restarted_and_handles_later_events(self):
        run_id = rid("restart")
        with fbrun.TempDir() as cwd:
            proc = self.up("reactive-echo.yaml", run_id, cwd)
            _, waiting = self.recorder.wait_state(run_id, "ECHO", "waiting", timeout=15)
            self.set(run_id, "X", "before")
            self.wait_values(run_id, "Y", 1)
            os.kill(waiting["pid"], signal.SIGKILL)
            # At least once: the new process fires again on the value retained
            # when it comes back, then on the new one.
            # A new process of ECHO reports for duty.
            self.recorder.wait_for(lambda ev: any(
                e.topic == fbtest.state_topic(run_id, "ECHO") and
                e.json().get("pid") not in (None, waiting["pid"]) for e in ev), timeout=15)
            self.wait_values(run_id, "Y", 2)
            self.set(run_id, "X", "after")
            values = self.wait_values(run_id, "Y", 3)
            self.assertEqual(values, ["got-before", "got-before", "got-after"])
            out, err = self.stop(proc, run_id)
        self.assertIn("restart 1", out)
        self.assertEqual(proc.returncode, 0, out + err)

    def test_three_workers_share_300_events_each_handled_once(self):
        run_id = rid("pool")
        with fbrun.TempDir() as cwd:
            proc = self.up("reactive-pool.yaml", run_id, cwd)
            # All three workers report before the events start.
            self.recorder.wait_for(lambda ev: len({
                e.json().get("pid") for e in ev
                if e.topic == fbtest.state_topic(run_id, "POOL")}) >= 3, timeout=15)
            for n in range(1, 301):
                self.set(run_id, "N", str(n))
            log = os.path.join(cwd, "pool.log")
            deadline = time.monotonic() + 60
            lines = []
            while time.monotonic() < deadline:  # the workers append to a file
                lines = open(log).read().splitlines() if os.path.exists(log) else []
                if len(lines) >= 300:
                    break
                time.sleep(0.05)
            numbers = [int(line.split()[0]) for line in lines]
            workers = {line.split()[1] for line in lines}
            self.assertEqual(sorted(numbers), list(range(1, 301)), "lost or doubled events")
            self.assertGreaterEqual(len(workers), 2, "one worker did all the work: %s" % workers)
            self.stop(proc, run_id)
        self.assertEqual(proc.returncode, 0)

    def test_pause_holds_events_and_resume_delivers_them(self):
        run_id = rid("pause")
        with fbrun.TempDir() as cwd:
            proc = self.up("reactive-echo.yaml", run_id, cwd)
            self.wait_ready(run_id, "ECHO", "SINK")
            control = "flowbus/%s/control" % run_id
            self.recorder.publish(control, b'{"cmd":"pause"}', retain=True)
            self.recorder.wait_for(lambda ev: any(
                e.topic == "flowbus/%s/state" % run_id and e.json().get("paused")
                for e in ev), timeout=10)
            self.set(run_id, "X", "p1")
            self.set(run_id, "X", "p2")
            # Nothing may run while paused: give it time to misbehave.
            time.sleep(0.5)
            self.assertEqual(self.values(run_id, "Y"), [])
            self.recorder.publish(control, b'{"cmd":"resume"}', retain=True)
            self.assertEqual(self.wait_values(run_id, "Y", 2), ["got-p1", "got-p2"])
            self.stop(proc, run_id)
        self.assertEqual(proc.returncode, 0)

    def test_sigterm_stops_the_flow_cleanly(self):
        run_id = rid("sigterm")
        with fbrun.TempDir() as cwd:
            proc = self.up("reactive-echo.yaml", run_id, cwd, "--json")
            self.wait_ready(run_id, "ECHO", "SINK")
            os.kill(proc.pid, signal.SIGTERM)
            out, err = fbrun.finish(proc)
        self.assertEqual(proc.returncode, 0, err)
        final = json.loads(out.splitlines()[-1])
        self.assertEqual(final["state"], "stopped")
        self.assertFalse(fbrun.wait_gone(lambda: fbrun.processes_with_env("FLOWBUS_RUN_ID",
                                                                          run_id)))


class TestExpiry(ReactiveTestCase):
    def test_a_stopped_flows_variables_get_the_runs_expiry(self):
        # The coordinator of a reactive flow does not follow its variables while it runs;
        # it reads their last values back when it stops and publishes them with the expiry.
        run_id = rid("rexpiry")
        with fbrun.TempDir() as cwd:
            proc = self.up("reactive-echo.yaml", run_id, cwd, "--expiry", "4")
            self.wait_ready(run_id, "ECHO", "SINK")
            self.set(run_id, "X", "1")  # retained for ever, as a user would set it
            self.assertEqual(self.wait_values(run_id, "Y", 1), ["got-1"])
            out, err = self.stop(proc, run_id)
        self.assertEqual(proc.returncode, 0, out + err)

        def retained_vars():
            with fbtest.Recorder(self.broker, "flowbus/%s/vars/#" % run_id) as fresh:
                fresh.publish("flowbus/%s/vars-probe" % run_id, b"x")
                fresh.wait_for(lambda ev: any(e.topic.endswith("vars-probe") for e in ev))
                return {e.topic.rsplit("/", 1)[1]: e for e in fresh.events if e.retained}

        now = retained_vars()
        self.assertEqual(sorted(now), ["X", "Y"])
        self.assertEqual(now["Y"].payload, b"got-1")
        for name, e in now.items():
            self.assertTrue(e.expiring, "%s kept no expiry" % name)
            self.assertLessEqual(e.properties.MessageExpiryInterval, 4)
        deadline = time.monotonic() + 15
        while now and time.monotonic() < deadline:
            time.sleep(0.5)  # polling the broker: expiry raises no event
            now = retained_vars()
        self.assertEqual(now, {})

    def test_a_finished_runs_retained_state_expires(self):
        run_id = rid("expiry")
        with fbrun.TempDir() as cwd:
            res = fbrun.run(["run", fbrun.workflow("split.yaml"), "--broker", self.broker.url,
                             "--run-id", run_id, "--expiry", "4"], cwd=cwd)
        self.assertEqual(res.returncode, 0, res.stderr)
        prefix = "flowbus/%s/#" % run_id

        def retained_now():
            with fbtest.Recorder(self.broker, prefix) as fresh:
                fresh.publish("flowbus/%s/probe" % run_id, b"x")
                return [e.topic for e in fresh.events if e.retained]

        self.assertTrue(retained_now(), "nothing retained at all")
        # The broker drops retained messages once their expiry passed: look
        # again with fresh subscribers until they are gone (deadline 15 s).
        deadline = time.monotonic() + 15
        left = retained_now()
        while left and time.monotonic() < deadline:
            time.sleep(0.5)  # polling the broker: expiry raises no event
            left = retained_now()
        self.assertEqual(left, [])


class TestThermostat(fbtest.BrokerTestCase):
    recorder_topic = "#"

    def test_hot_readings_raise_alerts_within_milliseconds(self):
        run_id = rid("iot")
        with fbrun.TempDir() as cwd:
            proc = fbrun.start(["up", fbrun.shipped("iot-thermostat.yaml"), "--broker",
                                self.broker.url, "--run-id", run_id], cwd=cwd)
            self.addCleanup(lambda: proc.poll() is None and os.killpg(proc.pid, signal.SIGKILL))
            for task in ("SENSOR", "DECIDE", "NOTIFY"):
                self.recorder.wait_state(run_id, task, "waiting", timeout=15)
            # mqtt-in subscribes to the device topic after it reports waiting;
            # it says when it listens (messages before that are not retained).
            sensor_log = "flowbus/%s/tasks/SENSOR/log" % run_id
            self.assertTrue(self.recorder.wait_for(lambda ev: any(
                e.topic == sensor_log and b"listening on" in e.payload for e in ev), timeout=15))
            sim = subprocess.run([os.path.join(fbrun.SOURCE, "scripts", "simulate-sensor"),
                                  "--broker", self.broker.url, "--count", "20", "--interval",
                                  "0.05"], capture_output=True, text=True, timeout=60)
            self.assertEqual(sim.returncode, 0, sim.stderr)
            # The simulator has sent them; the recorder may still be receiving them.
            readings = self.recorder.wait_for(
                lambda ev: [e for e in ev if e.topic == "sensors/room1/temp"]
                if len([e for e in ev if e.topic == "sensors/room1/temp"]) >= 20 else None,
                timeout=15)
            self.assertTrue(readings, "the recorder did not get the 20 readings")
            hot = [e for e in readings if float(e.payload) > 28]
            self.assertEqual(len(hot), 2)
            alerts = self.recorder.wait_for(lambda ev: [e for e in ev if e.topic == "alerts/room1"]
                                            if len([e for e in ev if e.topic == "alerts/room1"])
                                            >= 2 else None, timeout=15)
            if not alerts:
                os.kill(proc.pid, signal.SIGTERM)
                out, err = fbrun.finish(proc)
                self.fail("no alerts on alerts/room1\n" + out + err)
            for reading, alert in zip(hot, alerts):
                self.assertIn(reading.payload.decode(), alert.payload.decode())
                latency = (alert.t - reading.t) * 1000
                print("hot reading -> alert: %.1f ms" % latency)
                self.assertLess(latency, 5000)
            self.recorder.publish("flowbus/%s/control" % run_id, b'{"cmd":"stop"}', retain=True)
            out, err = fbrun.finish(proc)
        self.assertEqual(proc.returncode, 0, out + err)


if __name__ == "__main__":
    unittest.main()
