"""`hookbridge --health`: the container HEALTHCHECK (issue 13, defect 2).

The check reads the same configuration and HOOKBRIDGE_* overrides as the
server, so it follows admin.listen wherever it is moved; it exits 0 only
when /healthz answers 200.

Run: python3 -m unittest -v tests/integration/test_health.py
"""

import http.server
import os
import subprocess
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hbtest  # noqa: E402
from hbtest import BridgeTestCase  # noqa: E402


def health(b, env_extra=None, config_path=None):
    env = b.environment()
    env.update(env_extra or {})
    p = subprocess.run([b.bin, "--health", "-c", config_path or b.config_path],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=env, timeout=hbtest.scaled(30))
    return p.returncode, p.stderr.decode("utf-8", "replace")


class Health(BridgeTestCase):
    def test_healthy_on_configured_admin_port(self):
        b = self.start_bridge()
        rc, err = health(b)
        self.assertEqual(rc, 0, "--health against a running bridge: %s" % err)

    def test_healthcheck_follows_admin_listen_override(self):
        """The regression: a HEALTHCHECK on a fixed port stays unhealthy
        once HOOKBRIDGE_ADMIN_LISTEN moves the admin endpoint."""
        port = hbtest.free_port()
        moved = "127.0.0.1:%d" % port
        b = hbtest.Bridge(start=False, env={"HOOKBRIDGE_ADMIN_LISTEN": moved})
        self.addCleanup(self._finish_bridge, b)
        b.admin_port = port  # where the harness waits for /healthz
        b.start()
        rc, err = health(b)  # b.environment() carries the override
        self.assertEqual(rc, 0, "--health with admin.listen moved to %s: %s" % (moved, err))
        # without the override the check probes the file's port, where nothing listens
        env = {k: v for k, v in b.environment().items() if k != "HOOKBRIDGE_ADMIN_LISTEN"}
        p = subprocess.run([b.bin, "--health", "-c", b.config_path], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=hbtest.scaled(30))
        self.assertEqual(p.returncode, 1, "--health ignored HOOKBRIDGE_ADMIN_LISTEN?")

    def test_wildcard_admin_listen_is_probed_on_loopback(self):
        b = hbtest.Bridge(start=False)
        self.addCleanup(self._finish_bridge, b)
        b.config["admin.listen"] = "0.0.0.0:%d" % b.admin_port
        b.start()
        rc, err = health(b)
        self.assertEqual(rc, 0, "--health with admin.listen on 0.0.0.0: %s" % err)

    def test_unhealthy_when_nothing_listens(self):
        b = hbtest.Bridge(start=False)
        self.addCleanup(b.cleanup)
        b.write_config()
        rc, err = health(b)
        self.assertEqual(rc, 1, "--health with no bridge running must fail")
        self.assertIn("cannot connect", err)

    def test_unhealthy_when_healthz_is_not_200(self):
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(503)
                self.end_headers()

            def log_message(self, *a):
                pass

        srv = http.server.HTTPServer(("127.0.0.1", 0), H)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)
        b = hbtest.Bridge(start=False)
        self.addCleanup(b.cleanup)
        b.config["admin.listen"] = "127.0.0.1:%d" % srv.server_port
        b.write_config()
        rc, err = health(b)
        self.assertEqual(rc, 1, "--health must fail when /healthz answers 503")
        self.assertIn("503", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
