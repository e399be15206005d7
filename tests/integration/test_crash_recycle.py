"""test_crash.py's kill -9 rounds, while segments are recycled: with a small
journal the bridge rotates segments several times a second, and the keeper
turns each published segment into the next spare (src/journal.c,
spare_recycle) instead of zero-filling a new one. Kills then land at any
step of that and in segments whose tail holds an earlier life's records:
every answered 200 must still reach the file sink after each restart, and
no restart may refuse the journal.

Run: python3 -m unittest -v tests/integration/test_crash_recycle.py
Env: as test_crash.py (HB_CRASH_ROUNDS, HB_CRASH_THREADS, HB_CRASH_SECONDS).
"""

import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import test_crash  # noqa: E402

RECYCLED = 0x31594352  # HB_JOURNAL_RECYCLED, the header mark's batch_crc


def recycled_files(jdir):
    """How many segment files (and the spare) start with a header mark that
    says recycled."""
    n = 0
    for name in os.listdir(jdir):
        if not (name.endswith(".seg") or name == "spare"):
            continue
        try:
            with open(os.path.join(jdir, name), "rb") as f:
                b = f.read(56)
        except OSError:
            continue
        n += len(b) == 56 and b[:4] == b"HBC1" and struct.unpack_from("<I", b, 48)[0] == RECYCLED
    return n


class CrashRecycle(test_crash.Crash):
    """Runs test_crash's test with the bridge below."""

    def start_bridge(self, **kw):
        # a 16 MiB journal: segments of 2 MiB, about a thousand deliveries
        # each; dedup off, so that no snapshot holds published segments back
        kw.update({"journal.max_bytes": "16m", "limits.max_body": "64k", "dedup": "off"})
        b = super().start_bridge(**kw)
        self.recycled_seen = 0
        kill9 = b.kill9

        def counting_kill9():
            self.recycled_seen += recycled_files(b.config["journal.dir"])
            return kill9()

        b.kill9 = counting_kill9
        return b

    def test_kill9_loses_no_acknowledged_event(self):
        super().test_kill9_loses_no_acknowledged_event()
        self.assertGreater(self.recycled_seen, 0,
                           "no segment had been recycled at any kill: the test tested nothing new")


if __name__ == "__main__":
    test_crash.hbtest.main()
