"""Log lines a hostile client cannot turn against the operator (issue 10).

Refusal lines are limited per reason with a "more like this" summary, and
bytes quoted from a client are escaped in text and JSON logs alike.

Run: python3 -m unittest -v tests/integration/test_log_hygiene.py
"""

import json
import os
import re
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hbtest  # noqa: E402
from hbtest import BridgeTestCase, notification  # noqa: E402

EVIL_PATH = b"/no\x1b[2J\x1b]0;owned\x07\xff\xfe\xc3(/x"
EVIL_ESCAPED = "/no\\x1b[2J\\x1b]0;owned\\x07\\xff\\xfe\\xc3(/x"


def raw_get(b, path):
    """One request with these exact path bytes -> the status line."""
    s = b.tls_socket()
    try:
        s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.split(b"\r\n", 1)[0]
    finally:
        s.close()


def bridge_lines(text):
    return [ln for ln in text.splitlines() if ln and not ln.startswith("=== hbtest")]


class RefusalFlood(BridgeTestCase):
    N = 3000

    def test_3000_unsigned_posts_give_bounded_lines_and_a_summary(self):
        b = self.start_bridge()
        body = notification("notif_flood")
        statuses = []

        def client(n):
            conn = b.connection()
            try:
                for _ in range(n):
                    st, _, _ = b.post(body, None, conn=conn)
                    statuses.append(st)
            finally:
                conn.close()
        threads = [threading.Thread(target=client, args=(self.N // 4,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(statuses, [401] * self.N)

        line_re = re.compile(r"\] 401 to ")
        more_re = re.compile(r"\] (\d+) more like this \(401\) in the last \d+s")

        def tally(text):
            lines = [ln for ln in bridge_lines(text) if line_re.search(ln)]
            more = sum(int(m.group(1)) for m in more_re.finditer(text))
            return len(lines), more
        # every refusal is either a line or counted in a summary: wait for
        # the summary of the last interval (10 s) to account for all of them
        ok = b.wait_log(lambda t: sum(tally(t)) == self.N, timeout=40)
        lines, more = tally(b.log_text())
        self.assertTrue(ok, "lines %d + summarised %d != %d refusals\n%s" %
                        (lines, more, self.N, b.log_tail()))
        self.assertGreater(more, 0, "no 'more like this' summary")
        # 20 lines per 10 s window: the flood took far less than a minute
        # on any machine that runs this suite, so a few windows at most
        self.assertLessEqual(lines, 200, "refusal lines are not limited")
        self.assertLess(len(bridge_lines(b.log_text())), 300, b.log_tail())


class EscapedPaths(BridgeTestCase):

    def test_404_path_with_esc_and_invalid_utf8_escaped_in_text_log(self):
        b = self.start_bridge()
        status = raw_get(b, EVIL_PATH)
        self.assertIn(status.split(b" ")[1], (b"404", b"400"), status)
        ok = b.wait_log(lambda t: EVIL_ESCAPED in t, timeout=10)
        raw = open(b.log_path, "rb").read()
        self.assertTrue(ok, "escaped path not in the log\n%s" % b.log_tail())
        for byte in (b"\x1b", b"\x07", b"\xff", b"\xfe"):
            self.assertNotIn(byte, raw, "a raw %r byte reached the log" % byte)

    def test_404_path_with_esc_and_invalid_utf8_is_valid_json(self):
        b = self.start_bridge(**{"log.format": "json"})
        status = raw_get(b, EVIL_PATH)
        self.assertIn(status.split(b" ")[1], (b"404", b"400"), status)
        self.assertTrue(b.wait_log(lambda t: "owned" in t, timeout=10), b.log_tail())
        raw = open(b.log_path, "rb").read()
        msgs = []
        for ln in raw.split(b"\n"):
            if not ln or ln.startswith(b"=== hbtest"):
                continue
            ln.decode("ascii")  # escaped: plain ASCII, hence valid UTF-8
            obj = json.loads(ln)
            self.assertIsInstance(obj, dict)
            self.assertNotEqual(obj, {}, "a blanked log line")
            msgs.append(obj.get("msg", ""))
        self.assertTrue(any(EVIL_ESCAPED in m for m in msgs), msgs)


if __name__ == "__main__":
    hbtest.main()
