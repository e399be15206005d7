"""kill -9 while segments are recycled: with small segments the journal
rotates several times a second, and the keeper turns each published segment
into the next spare (src/journal.c, spare_recycle) instead of zero-filling a
new one. Kills land at any step of that (rename out, header, truncate, sync,
rename to spare) and in segments whose tail holds an earlier life's records:
every answered 200 must still reach the file sink after a restart, and every
restart must accept the journal (no refusal as damaged).

Run: python3 -m unittest -v tests/integration/test_crash_recycle.py
Env: HB_CRASH_ROUNDS (default 4), HB_CRASH_THREADS (default 8),
     HB_CRASH_SECONDS (posting time before each kill, default 2).
"""

import collections
import os
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hbtest  # noqa: E402
from hbtest import BridgeTestCase, notification  # noqa: E402
from test_crash import Poster  # noqa: E402

ROUNDS = int(os.environ.get("HB_CRASH_ROUNDS", "4"))
THREADS = int(os.environ.get("HB_CRASH_THREADS", "8"))
SECONDS = float(os.environ.get("HB_CRASH_SECONDS", "2"))
RECYCLED = 0x31594352  # HB_JOURNAL_RECYCLED, the header mark's batch_crc


def recycled_header(path):
    """Whether the file starts with a header mark that says recycled."""
    try:
        with open(path, "rb") as f:
            b = f.read(56)
    except OSError:
        return False
    return len(b) == 56 and b[:4] == b"HBC1" and struct.unpack_from("<I", b, 48)[0] == RECYCLED


class CrashRecycle(BridgeTestCase):
    def test_kill9_while_segments_are_recycled_loses_nothing(self):
        # a 16 MiB journal: segments of 2 MiB, a few hundred deliveries each;
        # dedup off, so that no snapshot holds published segments back
        b = self.start_bridge(**{"journal.max_bytes": "16m", "limits.max_body": "64k",
                                 "dedup": "off"})
        jdir = b.config["journal.dir"]
        acked_all, recycled_seen = set(), 0
        for rnd in range(1, ROUNDS + 1):
            killed = threading.Event()
            posters = [Poster(b, rnd, k) for k in range(THREADS)]
            for p in posters:
                p.killed = killed
                p.start()
            t0 = time.monotonic()
            deadline = t0 + hbtest.scaled(30)
            while time.monotonic() < deadline:
                if not any(p.is_alive() for p in posters):
                    break
                if (time.monotonic() - t0 >= SECONDS and
                        sum(len(p.acked) for p in posters) >= 500):
                    break
                time.sleep(0.02)
            names = os.listdir(jdir)
            recycled_seen += sum(recycled_header(os.path.join(jdir, n)) for n in names
                                 if n.endswith(".seg") or n == "spare")
            killed.set()
            b.kill9()
            for p in posters:
                p.stop_flag.set()
            for p in posters:
                p.join(hbtest.scaled(60))
                self.assertFalse(p.is_alive(), "poster %s hangs after the kill" % p.name)
            errs = [e for p in posters for e in p.errors_before_kill]
            self.assertEqual(errs, [], "round %d: client errors before the kill\n%s" %
                             (rnd, b.log_tail()))
            refused = [r for p in posters for r in p.refused]
            self.assertEqual(refused[:5], [], "round %d: non-200 answers before the kill" % rnd)
            acked = {i for p in posters for i in p.acked}
            self.assertGreater(len(acked), 0, "round %d: nothing acknowledged\n%s" %
                               (rnd, b.log_tail()))
            acked_all |= acked

            b.restart()  # refused as damaged would fail here
            evs = b.wait_events(lambda evs: acked_all <= {e.get("id") for e in evs},
                                timeout=90, raise_on_timeout=False)
            counts = collections.Counter(e.get("id") for e in evs)
            lost = sorted(acked_all - set(counts))
            print("\ncrash-recycle round %d: acknowledged=%d lost=%d recycled files seen=%d" %
                  (rnd, len(acked_all), len(lost), recycled_seen), flush=True)
            if lost:
                self.fail("round %d: %d acknowledged events lost, e.g. %s\n%s" %
                          (rnd, len(lost), lost[:10], b.log_tail()))
        self.assertGreater(recycled_seen, 0, "no segment was recycled: the test did not test it")
        self.assertNotIn("damaged", b.log_text())
        b.events_raw()
        self.assertEqual(b.malformed, [], "file sink lines that are not one JSON object")
        self.assertAccepted(b.post_signed(notification("notif_after_recycle_crash")))
        b.wait_ids(["notif_after_recycle_crash"])
        self.assertEqual(b.stop(), 0, b.log_tail())


if __name__ == "__main__":
    hbtest.main()
