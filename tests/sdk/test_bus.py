"""SDK tests of fb_bus, driven through fbtest-bus-check against a private mosquitto."""

import os
import statistics
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
import fbtest  # noqa: E402

CHECK = fbtest.bin_path("fbtest-bus-check")


def check(url, *args, timeout=30):
    return fbtest.run([CHECK, url, *args], timeout=timeout)


class BusTest(fbtest.BrokerTestCase):
    recorder_topic = "check/#"

    def assertOk(self, proc):
        self.assertEqual(proc.returncode, 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        self.assertIn("ok", proc.stdout)

    def test_scheme(self):
        self.assertOk(check(self.broker.url, "scheme"))

    def test_refused(self):
        # A port nobody listens on: the connect is refused quickly.
        self.assertOk(check(f"tcp://127.0.0.1:{fbtest.free_port()}", "refused"))

    def test_roundtrip_1000_qos1(self):
        proc = check(self.broker.url, "roundtrip", "1000")
        self.assertOk(proc)
        sys.stderr.write(proc.stdout)
        # The recorder is another client: it may still be receiving when the check exits.
        self.recorder.wait_for(lambda evs: len([e for e in evs if e.topic == "check/rt/x"]) >= 1000,
                               timeout=10.0)
        self.assertEqual(len(self.recorder.on_topic("check/rt/x")), 1000)

    def test_idle_bus_keeps_its_connection(self):
        # Idle for 2.6 keepalives, polling only fb_bus_fd: its timer drives the pings (the
        # libmosquitto bus has no thread), so the broker never sends its Will.
        self.assertOk(check(self.broker.url, "idle"))
        self.assertTrue(self.recorder.wait_for(
            lambda evs: [e for e in evs if e.topic == "check/idle/after"]), "publish not seen")
        self.assertEqual([e.payload for e in self.recorder.on_topic("check/idle/will")],
                         [], "the Last Will fired: the idle bus was dropped")

    def test_expiry_property_sent(self):
        self.assertOk(check(self.broker.url, "expiry"))
        ev = self.recorder.wait_for(lambda evs: [e for e in evs if e.topic == "check/expiry"])
        self.assertTrue(ev, "expiry message not seen")
        props = ev[0].properties
        self.assertIsNotNone(props)
        self.assertTrue(hasattr(props, "MessageExpiryInterval"), f"no expiry in {props}")
        self.assertLessEqual(props.MessageExpiryInterval, 60)
        self.assertGreater(props.MessageExpiryInterval, 50)

    def test_connection_lost(self):
        proc = fbtest.spawn([CHECK, self.broker.url, "lost"])
        try:
            line = proc.stdout.readline()
            self.assertEqual(line.strip(), "ready", proc.stderr.read() if not line else line)
            self.broker.kill()
            out, err = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
        self.assertEqual(proc.returncode, 0, f"stdout:\n{out}\nstderr:\n{err}")

    def test_connect_timing(self):
        """Measures connect and first QoS 1 round trip over fresh processes (reported, loosely bounded)."""
        rows = []
        for _ in range(20):
            proc = check(self.broker.url, "timing")
            self.assertEqual(proc.returncode, 0, proc.stderr)
            line = [l for l in proc.stdout.splitlines() if l.startswith("connect_ms=")][0]
            rows.append({k: float(v) for k, v in (f.split("=") for f in line.split())})
        connect = sorted(r["connect_ms"] for r in rows)
        ack = sorted(r["qos1_ack_ms"] for r in rows)
        slow = sum(1 for c in connect if c > 50)
        sys.stderr.write(
            f"\nconnect ms: median {statistics.median(connect):.2f}, min {connect[0]:.2f}, "
            f"max {connect[-1]:.2f}, >50ms in {slow}/20; first QoS1 ack ms: median "
            f"{statistics.median(ack):.3f}, max {ack[-1]:.3f}\n")
        # TCP_NODELAY works if a QoS 1 round trip stays far below the 40 ms Nagle stall.
        self.assertLess(statistics.median(ack), 20)


if __name__ == "__main__":
    unittest.main()
