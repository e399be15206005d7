"""kill -9 while 8 clients post: every answered 200 must reach the file sink
after a restart on the same data dir.

Run: python3 -m unittest -v tests/integration/test_crash.py
 or: python3 tests/integration/test_crash.py
Env: HB_CRASH_ROUNDS (default 3), HB_CRASH_THREADS (default 8),
     HB_CRASH_SECONDS (posting time before the kill, default 2).
"""

import collections
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hbtest  # noqa: E402
from hbtest import BridgeTestCase, notification, sign  # noqa: E402

ROUNDS = int(os.environ.get("HB_CRASH_ROUNDS", "3"))
THREADS = int(os.environ.get("HB_CRASH_THREADS", "8"))
SECONDS = float(os.environ.get("HB_CRASH_SECONDS", "2"))


class Poster(threading.Thread):
    """Posts unique signed notifications on one keep-alive TLS connection
    until told to stop or until the connection fails."""

    def __init__(self, bridge, round_no, k):
        super().__init__(daemon=True, name="poster-%d-%d" % (round_no, k))
        self.b = bridge
        self.round_no = round_no
        self.k = k
        self.stop_flag = threading.Event()
        self.killed = None  # threading.Event set by the test right before kill -9
        self.sent = []
        self.acked = []
        self.refused = []  # (id, status, body) answered non-200 before the kill
        self.errors_before_kill = []
        self.errors_after_kill = 0

    def run(self):
        conn = self.b.connection(timeout=30)
        n = 0
        try:
            while not self.stop_flag.is_set():
                nid = "notif_r%d_t%d_%06d" % (self.round_no, self.k, n)
                n += 1
                body = notification(nid, app_id="ws%d" % (self.k % 4))
                self.sent.append(nid)
                try:
                    conn.request("POST", self.b.intercom_path, body=body, headers={
                        "Content-Type": "application/json",
                        "X-Hub-Signature": sign(body)})
                    resp = conn.getresponse()
                    data = resp.read()
                except Exception as e:  # connection reset by the kill, mostly
                    if self.killed.is_set():
                        self.errors_after_kill += 1
                    else:
                        self.errors_before_kill.append(repr(e))
                    return
                if resp.status == 200:
                    self.acked.append(nid)
                elif not self.killed.is_set():
                    self.refused.append((nid, resp.status, data[:200]))
                    if len(self.refused) > 20:
                        return
        finally:
            conn.close()


class Crash(BridgeTestCase):
    def test_kill9_loses_no_acknowledged_event(self):
        b = self.start_bridge()
        acked_all = set()
        sent_all = 0
        summaries = []
        for rnd in range(1, ROUNDS + 1):
            killed = threading.Event()
            posters = [Poster(b, rnd, k) for k in range(THREADS)]
            for p in posters:
                p.killed = killed
                p.start()
            # let them post for SECONDS and until at least 50 answers (bounded)
            t0 = time.monotonic()
            deadline = t0 + hbtest.scaled(30)
            while time.monotonic() < deadline:
                n_acked = sum(len(p.acked) for p in posters)
                alive = any(p.is_alive() for p in posters)
                if not alive:
                    break
                if time.monotonic() - t0 >= SECONDS and n_acked >= 50:
                    break
                time.sleep(0.02)
            killed.set()
            b.kill9()  # while the posters are still posting
            for p in posters:
                p.stop_flag.set()
            for p in posters:
                p.join(hbtest.scaled(60))
                self.assertFalse(p.is_alive(), "poster %s hangs after the kill" % p.name)
            errs = [e for p in posters for e in p.errors_before_kill]
            refused = [r for p in posters for r in p.refused]
            self.assertEqual(errs, [], "round %d: client errors before the kill\n%s" %
                             (rnd, b.log_tail()))
            self.assertEqual(refused[:5], [], "round %d: non-200 answers before the kill" % rnd)
            acked = {i for p in posters for i in p.acked}
            sent = sum(len(p.sent) for p in posters)
            self.assertGreater(len(acked), 0, "round %d: nothing was acknowledged before the "
                               "kill\n%s" % (rnd, b.log_tail()))
            acked_all |= acked
            sent_all += sent

            b.restart()  # same data dir, new ports (the old ones may be in TIME_WAIT)
            evs = b.wait_events(lambda evs: acked_all <= {e.get("id") for e in evs},
                                timeout=90, raise_on_timeout=False)
            ids = [e.get("id") for e in evs]
            counts = collections.Counter(ids)
            found = acked_all & set(counts)
            lost = sorted(acked_all - found)
            dups = sum(c - 1 for c in counts.values() if c > 1)
            unacked_published = len(set(counts) - acked_all)
            line = ("crash round %d: sent=%d acknowledged=%d found=%d lost=%d duplicates=%d "
                    "published_unacknowledged=%d malformed_lines=%d after_kill_errors=%d" % (
                        rnd, sent_all, len(acked_all), len(found), len(lost), dups,
                        unacked_published, len(b.malformed),
                        sum(p.errors_after_kill for p in posters)))
            print("\n" + line, flush=True)
            summaries.append(line)
            if lost:
                self.fail("round %d: %d acknowledged events lost, e.g. %s\n%s" % (
                    rnd, len(lost), lost[:10], b.log_tail()))
            # no event that the bridge refused or never saw can appear: every
            # published id is one we sent
            self.assertTrue(all(i and i.startswith("notif_r") for i in counts),
                            "unexpected ids in the sink")

        # the file sink must stay one JSON object per line across kills
        b.events_raw()
        self.assertEqual(b.malformed, [], "file sink lines that are not one JSON object after "
                         "kill -9 (torn write not repaired on restart): %r" %
                         [m[:120] for m in b.malformed[:3]])
        # and the restarted bridge still works
        self.assertAccepted(b.post_signed(notification("notif_after_crash")))
        b.wait_ids(["notif_after_crash"])
        rc = b.stop()
        self.assertEqual(rc, 0, "exit code after SIGTERM\n%s" % b.log_tail())
        print("\n".join(summaries))


class CrashWritten(Crash):
    """The same under `ack = written`: the 200 comes before fdatasync, and
    batches written back to back share one sync, but a crash of the process
    takes nothing from the page cache: every 200 is still found."""

    def start_bridge(self, **kw):
        kw.setdefault("ack", "written")
        return super().start_bridge(**kw)


if __name__ == "__main__":
    hbtest.main()
