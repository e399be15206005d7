"""Journal full: 503 with Retry-After (never 429), /readyz 503, and the backlog
is published once the sink works again.

The file sink is broken on purpose: file.path's parent is a regular file, so
the sink cannot open it and keeps retrying while the journal fills up.

Run: python3 -m unittest -v tests/integration/test_journal_full.py
 or: python3 tests/integration/test_journal_full.py
"""

import email.utils
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hbtest  # noqa: E402
from hbtest import BridgeTestCase, notification  # noqa: E402

MAX_POSTS = 2000


class JournalFull(BridgeTestCase):
    def test_503_retry_after_then_backlog_published(self):
        tmp = tempfile.mkdtemp(prefix="hbtest-jfull-")
        blocker = os.path.join(tmp, "blocker")
        with open(blocker, "w") as f:
            f.write("a regular file, not a directory\n")
        broken = os.path.join(blocker, "events.jsonl")
        b = hbtest.Bridge(tmp, start=False, wait_ready=False, **{
            "file.path": broken,
            "journal.max_bytes": "65536",
            "limits.max_body": "16k",  # a journal must hold one body of max size
            "shutdown.grace_ms": "1000",
        })
        self.addCleanup(self._finish_bridge, b)
        b.start()

        # the sink cannot write: not ready (bounded wait; it may take a try or two)
        b.wait_readyz(503, timeout=20)

        acked = []
        first_503 = None
        conn = b.connection()
        try:
            for i in range(MAX_POSTS):
                nid = "notif_full_%05d" % i
                st, h, body = b.post_signed(notification(nid, pad=400), conn=conn)
                if st == 200:
                    acked.append(nid)
                    continue
                self.assertNotEqual(st, 429, "journal full must be 503, never 429")
                self.assertEqual(st, 503, "post %d: expected 200 or 503, got %d %r" %
                                 (i, st, body[:200]))
                first_503 = (i, h, body)
                break
        finally:
            conn.close()
        self.assertIsNotNone(first_503, "no 503 after %d posts of ~600 bytes with "
                             "journal.max_bytes = 65536 and a sink that cannot write\n%s" %
                             (MAX_POSTS, b.log_tail()))
        i, h, body = first_503
        self.assertGreater(len(acked), 0, "503 from the first post on: the journal never "
                           "accepted anything\n%s" % b.log_tail())
        retry_after = h.get("Retry-After")
        self.assertIsNotNone(retry_after, "503 without a Retry-After header")
        ra = retry_after.strip()
        self.assertTrue(ra.isdigit() or email.utils.parsedate(ra) is not None,
                        "Retry-After is neither delta-seconds nor an HTTP date: %r" % ra)
        self.assertJsonBody(body, "error")

        # still full: the next one is 503 too, and /readyz says not ready
        st, h2, body2 = b.post_signed(notification("notif_full_again", pad=400))
        self.assertEqual(st, 503, "post after the first 503: %d %r" % (st, body2[:200]))
        self.assertIsNotNone(h2.get("Retry-After"))
        st, _, rbody = b.admin_get("/readyz")
        self.assertEqual(st, 503, "/readyz while the journal is full: %d %r" % (st, rbody))
        self.assertTrue(rbody.strip(), "/readyz 503 without a reason in the body")
        st, _, _ = b.admin_get("/healthz")
        self.assertEqual(st, 200, "/healthz while the journal is full")
        # HEAD (URL validation) still answers 200
        self.assertEqual(b.head()[0], 200)

        # stop: exit 0 even though the sink never flushed
        rc = b.stop(timeout=30)
        self.assertEqual(rc, 0, "exit code after SIGTERM with a stuck sink\n%s" % b.log_tail())

        # fix the sink: everything acknowledged comes out of the journal
        good = os.path.join(tmp, "events.jsonl")
        b.wait_ready = True
        b.restart(**{"file.path": good})
        evs = b.wait_ids(acked, timeout=60)
        found = {e.get("id") for e in evs}
        self.assertNotIn("notif_full_again", found, "a 503-refused event was published")
        self.assertTrue(first_503 and "notif_full_%05d" % first_503[0] not in found,
                        "the event refused with 503 was published")
        for line, obj in b.events_raw():
            if obj.get("id") == acked[0]:
                hbtest.check_sink_line(self, line, obj, notification(acked[0], pad=400))
                break
        # and room again once the journal has reclaimed the published records
        # (segment deletion may lag the sink by a moment: wait for /readyz)
        b.wait_readyz(200, timeout=30)
        after = notification("notif_full_after", pad=400)
        deadline = time.monotonic() + hbtest.scaled(30)
        answers = []
        while True:
            st, h, body = b.post_signed(after)
            answers.append(st)
            if st == 200 or time.monotonic() > deadline:
                break
            self.assertEqual(st, 503, "while draining: %d %r" % (st, body[:200]))
            self.assertIsNotNone(h.get("Retry-After"), "503 without Retry-After while draining")
            time.sleep(0.1)
        self.assertEqual(answers[-1], 200, "no 200 within 30 s after the sink drained the "
                         "journal (answers %s)\n%s" % (answers[:20], b.log_tail()))
        if len(answers) > 1:
            print("\nNOTE: /readyz said 200 but the next %d POST(s) got 503 'journal full' "
                  "(readiness and admission disagree for a moment)" % (len(answers) - 1))
        b.wait_ids(["notif_full_after"])


if __name__ == "__main__":
    hbtest.main()
