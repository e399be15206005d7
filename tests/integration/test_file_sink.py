"""The file sink's output leaves the page cache once a sync covers it.

Run: python3 -m unittest -v tests/integration/test_file_sink.py
 or: python3 tests/integration/test_file_sink.py
"""

import ctypes
import ctypes.util
import mmap
import os
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hbtest  # noqa: E402
from hbtest import BridgeTestCase, metric_sum, notification  # noqa: E402

PAGE = mmap.PAGESIZE

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
MAP_FAILED = ctypes.c_void_p(-1).value


def resident_pages(path):
    """One flag per page of the file: is it in the page cache (mincore(2))?
    Mapping a file without touching it reads nothing in."""
    size = os.path.getsize(path)
    pages = (size + PAGE - 1) // PAGE
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, MAP_FAILED):
            raise OSError(ctypes.get_errno(), "mmap of %s failed" % path)
        try:
            vec = ctypes.create_string_buffer(pages)
            if _libc.mincore(addr, size, vec) != 0:
                raise OSError(ctypes.get_errno(), "mincore of %s failed" % path)
            return [b & 1 for b in vec.raw[:pages]]
        finally:
            _libc.munmap(addr, size)
    finally:
        os.close(fd)


def fs_type(path):
    return subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True,
                          text=True, check=True).stdout.strip()


class DropBehind(BridgeTestCase):
    def test_synced_output_is_not_kept_in_the_page_cache(self):
        b = self.start_bridge()
        if fs_type(b.tmpdir) in ("tmpfs", "ramfs"):
            self.skipTest("%s is on %s: its pages are the data, they cannot be dropped" %
                          (b.tmpdir, fs_type(b.tmpdir)))
        n = 40  # 1.5 KB each: about 15 pages of output
        ids = ["notif_drop_%d_%s" % (i, uuid.uuid4().hex) for i in range(n)]
        for nid in ids:
            self.assertAccepted(b.post_signed(notification(nid, pad=1200)))
        # the sink acknowledges a line only after the sync that covers it, and
        # drops the synced pages before that: pending 0 means all were dropped
        deadline = time.monotonic() + hbtest.scaled(15)
        while True:
            pending = metric_sum(b.metrics(), "hookbridge_sink_pending_records", sink="file")
            if pending == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(pending, 0, "the file sink still has %s records pending" % pending)
        size = os.path.getsize(b.file_path)
        self.assertGreater(size, 8 * PAGE, "the output is smaller than expected")
        resident = resident_pages(b.file_path)
        # every whole page is synced and dropped; the last, partial one stays
        whole = size // PAGE
        kept = [i for i in range(whole) if resident[i]]
        self.assertEqual(kept, [], "%d of the %d whole pages of the synced output are still "
                         "in the page cache" % (len(kept), whole))
        # dropping the cache lost nothing: every line reads back from the disk
        b.wait_ids(ids)
        self.assertEqual(len(b.events()), n)


if __name__ == "__main__":
    hbtest.main()
