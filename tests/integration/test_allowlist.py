"""intercom.allow_ips: a source outside the list gets 403 from its head
alone (no byte of its body is read) with one log line, nothing is
published; the list may be Intercom's published JSON ranges; SIGHUP
rereads it, and a bad list keeps the old one (or fails --check-config).

The bridge listens on 127.0.0.1, so "allowed" means a list holding it.

Run: python3 -m unittest -v tests/integration/test_allowlist.py
"""

import http.client
import json
import os
import signal
import subprocess
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hbtest  # noqa: E402
from hbtest import BridgeTestCase, notification  # noqa: E402
from test_http_edges import parse_responses, read_until_closed  # noqa: E402

SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "intercom-ip-ranges.sample.json")


def uid(prefix="allow"):
    return "%s_%s" % (prefix, uuid.uuid4().hex)


def ranges_file(tmpdir, with_loopback):
    """The sample of Intercom's ranges, with 127.0.0.1 as INTERCOM-OUTBOUND
    or (without) as another service's range, which must not count."""
    with open(SAMPLE) as f:
        doc = json.load(f)
    doc["prefixes"].append({"ip_prefix": "127.0.0.1/32", "region": "test",
                            "service": "INTERCOM-OUTBOUND" if with_loopback else "AMAZON"})
    path = os.path.join(tmpdir, "ranges-%s.json" % uuid.uuid4().hex[:6])
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


class Allowlist(BridgeTestCase):

    def assert_forbidden(self, b):
        """A head announcing a body, and no body: 403 at once, closed."""
        s = b.tls_socket(timeout=20)
        try:
            s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" %
                       b.intercom_path).encode())
            resps = parse_responses(read_until_closed(s, 20))
        finally:
            s.close()
        self.assertEqual(len(resps), 1, resps)
        st, h, body = resps[0]
        self.assertEqual(st, 403, body)
        self.assertJsonBody(body, "error")
        self.assertEqual(h.get("connection", "").lower(), "close")

    def start_with_ranges_file(self):
        """A bridge whose intercom.allow_ips is a file of Intercom's ranges
        listing 127.0.0.1 -> (bridge, the file's path, to rewrite)."""
        b = hbtest.Bridge(start=False)
        self.addCleanup(self._finish_bridge, b)
        path = os.path.join(b.tmpdir, "ranges.json")
        os.replace(ranges_file(b.tmpdir, True), path)
        b.config["intercom.allow_ips"] = "file:" + path
        b.start()
        return b, path

    def test_source_outside_the_list_gets_403_before_its_body(self):
        b = self.start_bridge(**{"intercom.allow_ips": "10.0.0.0/8, 2001:db8::/32"})
        self.assert_forbidden(b)
        nid = uid("outside")
        st, _, body = b.post_signed(notification(nid))
        self.assertEqual(st, 403, body)
        self.assert_refusals_logged(b, 403, 2)
        # nothing published: the file sink has no line at all
        self.assertEqual(b.events(), [])

    def test_source_in_the_list_is_served(self):
        b = self.start_bridge(**{"intercom.allow_ips": "192.0.2.0/24,127.0.0.0/8"})
        nid = uid("inside")
        self.assertAccepted(b.post_signed(notification(nid)))
        b.wait_ids([nid])

    def test_intercom_json_ranges_and_sighup_refresh(self):
        b, path = self.start_with_ranges_file()
        self.assertTrue(b.wait_log(lambda t: "intercom.allow_ips: 5 block(s)" in t),
                        "4 INTERCOM-OUTBOUND ranges of the sample + 127.0.0.1\n" + b.log_tail())
        nid = uid("json")
        self.assertAccepted(b.post_signed(notification(nid)), "listed in the JSON")
        # the operator's refreshed file no longer lists us: SIGHUP applies it
        os.replace(ranges_file(b.tmpdir, False), path)
        b.proc.send_signal(signal.SIGHUP)
        self.assertTrue(b.wait_log(lambda t: "SIGHUP: intercom.allow_ips: 4 block(s)" in t),
                        b.log_tail())
        self.assert_forbidden(b)
        # a broken file on SIGHUP keeps the list in force and says why
        with open(path, "w") as f:
            f.write('{"prefixes": [')
        b.proc.send_signal(signal.SIGHUP)
        self.assertTrue(b.wait_log(lambda t: any(
            "not reloaded" in line and "intercom.allow_ips" in line
            for line in t.splitlines())), b.log_tail())
        self.assert_forbidden(b)
        self.assertTrue(b.running())
        b.wait_ids([nid])

    def test_sighup_judges_open_keep_alive_connections_again(self):
        """Regression: the verdict was kept per connection, so a keep-alive
        connection opened while its source was listed went on being served
        after a SIGHUP had taken the source off the list."""
        b, path = self.start_with_ranges_file()
        conn = http.client.HTTPSConnection("127.0.0.1", b.port, timeout=hbtest.scaled(20),
                                           context=hbtest.client_ssl_context())
        self.addCleanup(conn.close)

        def post(nid):
            body = notification(nid)
            conn.request("POST", b.intercom_path, body=body,
                         headers={"Content-Type": "application/json",
                                  "X-Hub-Signature": hbtest.sign(body)})
            sent_on = conn.sock
            resp = conn.getresponse()
            return resp.status, resp.read(), sent_on

        nid = uid("before")
        st, body, sock = post(nid)
        self.assertEqual(st, 200, body)
        self.assertIs(conn.sock, sock, "the bridge closed a keep-alive connection after a 200")
        os.replace(ranges_file(b.tmpdir, False), path)
        b.proc.send_signal(signal.SIGHUP)
        self.assertTrue(b.wait_log(lambda t: "SIGHUP: intercom.allow_ips: 4 block(s)" in t),
                        b.log_tail())
        st, body, sent_on = post(uid("after"))
        self.assertIs(sent_on, sock, "the second request did not reuse the connection")
        self.assertEqual(st, 403, "an open connection from a source no longer listed was "
                         "served after SIGHUP: %r" % body)
        b.wait_ids([nid])

    def test_bad_lists_fail_check_config(self):
        b = hbtest.Bridge(start=False)
        self.addCleanup(b.cleanup)
        for bad in ("10.0.0.1/8", "not-an-address", "file:/nonexistent/ranges.json", " , "):
            b.config["intercom.allow_ips"] = bad
            b.write_config()
            r = subprocess.run([b.bin, "--check-config", "-c", b.config_path],
                               capture_output=True, text=True, timeout=hbtest.scaled(30))
            self.assertNotEqual(r.returncode, 0, "%r passed --check-config" % bad)
            self.assertIn("intercom.allow_ips", r.stderr + r.stdout)


if __name__ == "__main__":
    hbtest.main()
