"""Exact acknowledgement (issue 9): regression tests named after the defects
that a code review found in start-up and in the wiring of sinks to cursors.

Run: python3 -m unittest -v tests/integration/test_exactness.py
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hbtest  # noqa: E402
from hbtest import BridgeTestCase, notification  # noqa: E402


class Exactness(BridgeTestCase):
    def test_ack_published_with_64_workers_does_not_abort(self):
        """Item 1: `ack = published` aborted at start-up with 16 or more workers
        ("out of memory (journal progress callbacks)"): each HTTP loop and
        each sink took one of 16 slots. Every ack mode with 64 workers must
        start and answer."""
        for ack in ("durable", "written", "published"):
            with self.subTest(ack=ack):
                b = self.start_bridge(**{"workers": "64", "ack": ack})
                st, _, body = b.post_signed(notification("notif_w64_%s" % ack))
                self.assertEqual(st, 200, "ack=%s, 64 workers: %d %r\n%s" %
                                 (ack, st, body[:200], b.log_tail()))
                b.wait_events(count=1, timeout=20)
                self.assertNotIn("aborting", b.log_text())
                b.stop()

    def test_sink_cursor_names_follow_the_sinks(self):
        """Item 11: the order of started sinks and of journal cursor names were
        written in two places; if they disagreed, one sink acknowledged
        another's cursor. With Redis unreachable and the file sink working,
        only the file sink's cursor may move."""
        b = self.start_bridge(wait_ready=False, **{
            "sinks": "redis,file",
            "redis.url": "redis://127.0.0.1:%d" % hbtest.free_port(),
        })
        for i in range(3):
            st, _, body = b.post_signed(notification("notif_cur_%d" % i))
            self.assertEqual(st, 200, "%d %r" % (st, body[:200]))
        b.wait_events(count=3, timeout=20)
        cursors = os.path.join(b.config["journal.dir"], "cursors")
        deadline = time.monotonic() + hbtest.scaled(10)
        text = ""
        while time.monotonic() < deadline:
            with open(cursors) as f:
                text = f.read()
            if "file 3\n" in text:
                break
            time.sleep(0.1)
        self.assertIn("file 3\n", text, "the file sink's cursor is not at 3:\n%s" % text)
        self.assertIn("redis 0\n", text, "the unreachable Redis sink's cursor moved:\n%s" % text)


if __name__ == "__main__":
    hbtest.main()
