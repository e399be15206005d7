"""Disk full (ENOSPC) under the journal: a delivery whose record cannot be
made durable is answered 503, never 200; nothing answered 200 is lost; and
acceptance resumes by itself once the disk has room again.

The journal lives on a tiny tmpfs (needs root to mount, as CI has; skipped
otherwise) while the file sink writes elsewhere but is blocked, so the
journal grows until the disk, not journal.max_bytes, says no.

Run: python3 tests/integration/test_disk_full.py
"""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hbtest  # noqa: E402
from hbtest import BridgeTestCase, notification  # noqa: E402


def mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", path],
                       capture_output=True, text=True)
    return r.returncode == 0


class DiskFull(BridgeTestCase):
    def test_enospc_is_503_and_nothing_acknowledged_is_lost(self):
        tmp = tempfile.mkdtemp(prefix="hbtest-enospc-")
        jdir = os.path.join(tmp, "journal-fs")
        if not mount_tmpfs(jdir, "256k"):
            if os.environ.get("CI") and os.geteuid() == 0:
                self.fail("cannot mount a tmpfs as root")
            raise unittest.SkipTest("mounting a tmpfs needs root")
        self.addCleanup(lambda: subprocess.run(["umount", "-l", jdir]))
        blocker = os.path.join(tmp, "blocker")
        with open(blocker, "w") as f:
            f.write("a regular file: the sink cannot create its output under it\n")
        b = hbtest.Bridge(tmp, start=False, wait_ready=False, **{
            "journal.dir": os.path.join(jdir, "journal"),
            "journal.max_bytes": "1g",   # the disk is the limit here
            "file.path": os.path.join(blocker, "events.jsonl"),
            "shutdown.grace_ms": "500",
            "dedup": "off",
        })
        self.addCleanup(self._finish_bridge, b)
        b.start()

        acked, refused = [], []
        conn = b.connection()
        try:
            for i in range(3000):
                nid = "notif_enospc_%05d" % i
                st, h, body = b.post_signed(notification(nid, pad=900), conn=conn)
                if st == 200:
                    acked.append(nid)
                    continue
                self.assertEqual(st, 503, "post %d: expected 200 or 503, got %d %r" %
                                 (i, st, body[:200]))
                self.assertIsNotNone(h.get("Retry-After"), "503 without Retry-After")
                refused.append(nid)
                if len(refused) >= 5:
                    break
        finally:
            conn.close()
        self.assertTrue(refused, "the disk never filled up after %d posts\n%s" %
                        (len(acked), b.log_tail()))
        self.assertGreater(len(acked), 50, "too few accepted before the disk filled")
        # the log thread writes the line, maybe a moment after the answer
        self.assertTrue(b.wait_log(lambda t: "No space left on device" in t, timeout=10),
                        "the journal's write failure is not logged with its reason")

        # Give the disk room again (and the sink a place to write): the same
        # running bridge accepts again without a restart.
        subprocess.run(["mount", "-o", "remount,size=64m", jdir], check=True)
        st, _, body = b.post_signed(notification("notif_enospc_after", pad=900))
        self.assertEqual(st, 200, "after the disk has room again: %d %r" % (st, body[:200]))
        acked.append("notif_enospc_after")

        # Restart with a working sink: every acknowledged id is published,
        # none of the refused ones is.
        b.stop()
        os.remove(blocker)
        os.makedirs(blocker)
        b.start()
        evs = b.wait_ids(acked, timeout=60)
        published = {e.get("id") for e in evs}
        self.assertFalse(set(refused) & published,
                         "deliveries answered 503 were published: %s" %
                         sorted(set(refused) & published)[:5])
        print("\n[disk_full] accepted=%d refused=%d published=%d lost=0" %
              (len(acked), len(refused), len(published)))


if __name__ == "__main__":
    unittest.main(verbosity=2)
