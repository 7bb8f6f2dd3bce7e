"""SDK tests of TLS: a throw-away CA made by the test, mosquitto with TLS listeners.

Listeners of the one broker: plain (for the Recorder), TLS, and TLS that requires
a client certificate. Tasks (the probe) and fb_bus (bus_check) connect with
mqtts:// or ssl:// URLs; verification is always on.
"""

import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
import fbtest  # noqa: E402

CHECK = fbtest.bin_path("fbtest-bus-check")
PROBE = fbtest.bin_path("flowbus-probe")
RUN = "sdktls-1"


class TlsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="fbtest-tls-")
        cls.files = fbtest.make_tls_files(cls.tmp)
        # mosquitto drops root privileges: it must be able to read the (test-only) keys.
        os.chmod(cls.tmp, 0o755)
        for name in os.listdir(cls.tmp):
            os.chmod(os.path.join(cls.tmp, name), 0o644)
        cls.tls_port = fbtest.free_port()
        cls.mtls_port = fbtest.free_port()
        cls.badname_port = fbtest.free_port()
        f = cls.files
        conf = (f"listener {cls.tls_port} 127.0.0.1\n"
                f"cafile {f['ca']}\ncertfile {f['server_cert']}\nkeyfile {f['server_key']}\n"
                f"listener {cls.mtls_port} 127.0.0.1\n"
                f"cafile {f['ca']}\ncertfile {f['server_cert']}\nkeyfile {f['server_key']}\n"
                "require_certificate true\n"
                f"listener {cls.badname_port} 127.0.0.1\n"
                f"cafile {f['ca']}\ncertfile {f['badname_cert']}\nkeyfile {f['badname_key']}\n")
        cls.broker = fbtest.Broker(conf, extra_ports=(cls.tls_port, cls.mtls_port,
                                                      cls.badname_port))

    @classmethod
    def tearDownClass(cls):
        cls.broker.cleanup()

    def setUp(self):
        self.recorder = fbtest.Recorder(self.broker)
        self.addCleanup(self.recorder.close)

    def run_probe(self, task, url, **tls):
        env = fbtest.task_env(url, RUN, task, outputs=["OUT"], params={"value_OUT": "secure"},
                              extra={k: v for k, v in tls.items() if v is not None})
        return fbtest.run([PROBE], env, timeout=20)

    def assertDone(self, proc, task):
        self.assertEqual(proc.returncode, 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        self.recorder.wait_state(RUN, task, "done")
        self.assertEqual([e.payload for e in self.recorder.on_topic(fbtest.var_topic(RUN, "OUT"))
                          if e.payload][-1:], [b"secure"])

    def test_task_over_tls(self):
        proc = self.run_probe("T1", f"mqtts://127.0.0.1:{self.tls_port}",
                              FLOWBUS_TLS_CA=self.files["ca"])
        self.assertDone(proc, "T1")

    def test_ssl_scheme_and_host_name(self):
        # ssl:// is the same; the certificate's DNS name "localhost" matches too.
        proc = self.run_probe("T2", f"ssl://localhost:{self.tls_port}",
                              FLOWBUS_TLS_CA=self.files["ca"])
        self.assertDone(proc, "T2")

    def test_wrong_ca_is_a_clear_error(self):
        proc = self.run_probe("T3", f"mqtts://127.0.0.1:{self.tls_port}",
                              FLOWBUS_TLS_CA=self.files["other_ca"])
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn("cannot connect", proc.stderr)
        self.assertIn("certificate verify failed", proc.stderr)
        self.assertEqual(self.recorder.states(RUN, "T3"), [])

    def test_host_name_is_checked(self):
        # A certificate from the right CA, but for another host: refused.
        proc = self.run_probe("T8", f"mqtts://127.0.0.1:{self.badname_port}",
                              FLOWBUS_TLS_CA=self.files["ca"])
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn("may not be for host '127.0.0.1'", proc.stderr)
        sys.stderr.write(f"\nhost name mismatch: {proc.stderr.strip().splitlines()[-1]}\n")

    def test_no_ca_means_system_store_which_rejects_the_test_ca(self):
        proc = self.run_probe("T4", f"mqtts://127.0.0.1:{self.tls_port}")
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn("certificate verify failed", proc.stderr)

    def test_plain_client_on_tls_port_fails_cleanly(self):
        proc = self.run_probe("T5", f"tcp://127.0.0.1:{self.tls_port}")
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn("cannot connect", proc.stderr)

    def test_client_certificate_required(self):
        url = f"mqtts://127.0.0.1:{self.mtls_port}"
        proc = self.run_probe("T6", url, FLOWBUS_TLS_CA=self.files["ca"])
        self.assertNotEqual(proc.returncode, 0, "connected without a client certificate")
        self.assertIn("cannot connect", proc.stderr)
        proc = self.run_probe("T7", url, FLOWBUS_TLS_CA=self.files["ca"],
                              FLOWBUS_TLS_CERT=self.files["client_cert"],
                              FLOWBUS_TLS_KEY=self.files["client_key"])
        self.assertDone(proc, "T7")

    def test_bus_round_trip_and_refusal(self):
        url = f"mqtts://127.0.0.1:{self.mtls_port}"
        proc = fbtest.run([CHECK, url, "tls", self.files["ca"], self.files["client_cert"],
                           self.files["client_key"]], timeout=20)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        proc = fbtest.run([CHECK, f"mqtts://127.0.0.1:{self.tls_port}", "tlsfail",
                           self.files["other_ca"]], timeout=20)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        sys.stderr.write(f"\nwrong CA: {proc.stdout.splitlines()[0]}\n")


if __name__ == "__main__":
    unittest.main()
