"""`hookbridge journal verify|ls|cat` on the journal a real bridge wrote (issue 12).

The commands run after the bridge stopped, on its directory or a copy, and
must never change a byte of it.

Run: python3 -m unittest -v tests/integration/test_journal_cli.py
 or: python3 tests/integration/test_journal_cli.py
"""

import calendar
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hbtest  # noqa: E402
from hbtest import BridgeTestCase, notification  # noqa: E402

N = 30


def journal(args, timeout=60):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKBRIDGE_")}
    p = subprocess.run([hbtest.require_binary(), "journal"] + list(args),
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=env, timeout=hbtest.scaled(timeout))
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def post_all(tc, b, prefix, n, pad=400):
    conn = b.connection()
    try:
        for i in range(n):
            st, _, answer = b.post_signed(notification("%s_%03d" % (prefix, i), pad=pad),
                                          conn=conn)
            tc.assertEqual(st, 200, "post %d: %r" % (i, answer[:200]))
    finally:
        conn.close()


def snapshot(d):
    """Every file under d: name -> (size, mtime_ns, sha256)."""
    out = {}
    for root, _, files in os.walk(d):
        for name in files:
            p = os.path.join(root, name)
            st = os.stat(p)
            with open(p, "rb") as f:
                out[os.path.relpath(p, d)] = (st.st_size, st.st_mtime_ns,
                                              hashlib.sha256(f.read()).hexdigest())
    return out


def received_ms(obj):
    """RFC 3339 with milliseconds (the file sink's received_at) -> Unix ms."""
    s = obj["received_at"]
    whole, frac = s[:-1].split(".")
    t = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return t * 1000 + int(frac)


class JournalCat(BridgeTestCase):
    """One bridge writes N records with the file sink working; then cat, ls and
    verify read its journal."""

    @classmethod
    def setUpClass(cls):
        hbtest.require_binary()

    def setUp(self):
        b = self.start_bridge()
        self.bodies = []
        conn = b.connection()
        try:
            for i in range(N):
                topic = "conversation.user.created" if i % 3 == 0 else "contact.created"
                body = notification("notif_jcli_%03d" % i, topic=topic,
                                    app_id="ws2" if i % 2 else "ws1", pad=i)
                st, _, answer = b.post_signed(body, conn=conn)
                self.assertEqual(st, 200, "post %d: %r" % (i, answer[:200]))
                self.bodies.append(body)
        finally:
            conn.close()
        b.wait_events(count=N, timeout=60)
        b.stop()
        self.b = b
        self.dir = b.config["journal.dir"]
        self.before = snapshot(self.dir)
        self.sink = b.sink_lines()
        self.assertEqual(len(self.sink), N, "file sink lines")

    def tearDown(self):
        self.assertEqual(snapshot(self.dir), self.before,
                         "a journal command changed the journal directory")

    def cat(self, *args):
        rc, out, err = journal(["cat", "-c", self.b.config_path] + list(args))
        self.assertEqual(rc, 0, "journal cat %s: %s" % (" ".join(args), err))
        return [l + b"\n" for l in out.split(b"\n")[:-1]]

    def test_cat_is_the_file_sink(self):
        self.assertEqual(self.cat(), self.sink,
                         "journal cat prints exactly the file sink's lines, in order")
        rc, out, err = journal(["cat", "--dir", self.dir])
        self.assertEqual((rc, out), (0, b"".join(self.sink)), "--dir gives the same: %s" % err)

    def test_cat_raw(self):
        self.assertEqual(self.cat("--format", "raw"), [b + b"\n" for b in self.bodies])

    def test_cat_sequence_range(self):
        # records 1..N in the order they were answered, one per connection turn
        self.assertEqual(self.cat("--from", "5", "--to", "9"), self.sink[4:9])
        self.assertEqual(self.cat("--from", str(N - 1)), self.sink[N - 2:])
        self.assertEqual(self.cat("--from", str(N + 1)), [])

    def test_cat_filters(self):
        objs = [json.loads(l) for l in self.sink]
        want = [l for l, o in zip(self.sink, objs) if o["topic"].startswith("conversation.")]
        self.assertEqual(self.cat("--topic", "conversation.*"), want)
        want = [l for l, o in zip(self.sink, objs) if o["app_id"] == "ws2"]
        self.assertEqual(self.cat("--source", "ws2"), want)
        want = [l for l, o in zip(self.sink, objs)
                if o["app_id"] == "ws1" and o["topic"] == "contact.created"]
        self.assertEqual(self.cat("--source", "ws1", "--topic", "contact.created"), want)

    def test_cat_time_range(self):
        objs = [json.loads(l) for l in self.sink]
        since, until = objs[N // 3]["received_at"], objs[2 * N // 3]["received_at"]
        lo, hi = received_ms(objs[N // 3]), received_ms(objs[2 * N // 3])
        want = [l for l, o in zip(self.sink, objs) if lo <= received_ms(o) < hi]
        self.assertTrue(want, "some records in [%s, %s)" % (since, until))
        self.assertEqual(self.cat("--since", since, "--until", until), want)
        self.assertEqual(self.cat("--since", "1d"), self.sink, "everything is younger than 1d")
        self.assertEqual(self.cat("--until", "2000-01-01"), [])

    def test_ls(self):
        rc, out, err = journal(["ls", "-c", self.b.config_path])
        text = out.decode()
        self.assertEqual(rc, 0, err)
        # the bridge moves to a preallocated segment once one is ready, so
        # the records may span two segment files
        segs = sorted(f for f in os.listdir(self.dir) if f.endswith(".seg"))
        ranges = re.findall(r"^(\d{20}\.seg)\s+(\d+)\.\.(\d+)\s", text, re.M)
        self.assertEqual([r[0] for r in ranges], segs, "one line per segment file:\n" + text)
        self.assertEqual(ranges[0][1], "1")
        self.assertEqual(ranges[-1][2], str(N))
        for prev, cur in zip(ranges, ranges[1:]):
            self.assertEqual(int(cur[1]), int(prev[2]) + 1, "contiguous ranges:\n" + text)
        self.assertRegex(text, r"total: %d segment\(s\), %d record\(s\)" % (len(segs), N))
        self.assertEqual(len(re.findall(r"\spublished\n", text)), len(segs),
                         "every segment published:\n" + text)
        self.assertRegex(text, r"\nfile\s+%d\s+0\n" % N, "the file sink's cursor, nothing pending")

    def test_verify_sound(self):
        rc, out, err = journal(["verify", "-c", self.b.config_path])
        self.assertEqual(rc, 0, "%s %s" % (out, err))
        self.assertRegex(out.decode(), r"sound: \d+ segment\(s\), %d record\(s\), 1\.\.%d\n" %
                         (N, N))

    def test_usage_errors(self):
        self.assertEqual(journal(["frobnicate", "--dir", self.dir])[0], 2)
        self.assertEqual(journal(["ls", "--dir", self.dir, "--from", "3"])[0], 2,
                         "range options are cat's")
        self.assertEqual(journal(["cat", "--dir", self.dir, "--from", "x"])[0], 2)
        self.assertEqual(journal(["cat", "--dir", self.dir, "--since", "yesterday"])[0], 2)


class JournalVerify(BridgeTestCase):
    """Several segments that no sink has published (the file sink cannot
    open its file), copied, then damaged."""

    def test_pending_segments_and_a_bad_byte(self):
        tmp = tempfile.mkdtemp(prefix="hbtest-jverify-")
        blocker = os.path.join(tmp, "blocker")
        with open(blocker, "w") as f:
            f.write("a regular file, not a directory\n")
        b = hbtest.Bridge(tmp, start=False, wait_ready=False, **{
            "file.path": os.path.join(blocker, "events.jsonl"),
            "journal.max_bytes": "65536",  # 8 KiB segments
            "limits.max_body": "16384",  # a journal must hold one largest delivery
            "shutdown.grace_ms": "500",
        })
        self.addCleanup(self._finish_bridge, b)
        b.start()
        post_all(self, b, "notif_jv", 40)
        b.stop()
        copy = os.path.join(tmp, "journal-copy")
        shutil.copytree(b.config["journal.dir"], copy)

        rc, out, err = journal(["ls", "--dir", copy])
        self.assertEqual(rc, 0, err)
        segs = re.findall(r"^(\d{20}\.seg)\s", out.decode(), re.M)
        self.assertGreaterEqual(len(segs), 3, "several segments:\n%s" % out.decode())
        self.assertRegex(out.decode(), r"\nfile\s+0\s+40\n", "40 records pending for file")
        self.assertNotIn("published", out.decode(), "no segment is published")

        # a bad byte in the body of a record in the middle segment
        victim = os.path.join(copy, segs[len(segs) // 2])
        size = os.path.getsize(victim)
        pos = size // 2
        with open(victim, "r+b") as f:
            f.seek(pos)
            byte = f.read(1)
            f.seek(pos)
            f.write(bytes([byte[0] ^ 0x10]))
        before = snapshot(copy)
        rc, out, err = journal(["verify", "--dir", copy])
        text = out.decode()
        self.assertEqual(rc, 1, "verify exits 1 on damage: %s %s" % (text, err))
        m = re.search(r"^(\S+): DAMAGED at offset (\d+): ", text, re.M)
        self.assertIsNotNone(m, "a DAMAGED line: %s" % text)
        self.assertEqual(m.group(1), victim, "names the damaged segment")
        self.assertLessEqual(int(m.group(2)), pos, "at or before the bad byte")
        self.assertGreater(int(m.group(2)), 0)
        self.assertEqual(text.count("DAMAGED"), 1, "only that segment:\n%s" % text)
        self.assertEqual(snapshot(copy), before, "verify changed nothing")

        # cat still prints what is sound, and says what it skipped
        rc, out, err = journal(["cat", "--dir", copy])
        self.assertEqual(rc, 0, err)
        self.assertIn(os.path.basename(victim), err)
        self.assertTrue(0 < len(out.split(b"\n")) - 1 < 40, "some records, not all")

        # repair: only with --cut-at, never past the damage
        first_bad = int(re.search(r"records from (\d+) on", text).group(1))
        self.assertEqual(journal(["repair", "--dir", copy])[0], 2, "repair needs --cut-at")
        rc, _, err = journal(["repair", "--dir", copy, "--cut-at", str(first_bad + 5)])
        self.assertEqual(rc, 1, "a cut past the damage is refused")
        self.assertIn("at most %d" % first_bad, err)
        self.assertEqual(snapshot(copy), before, "refusals changed nothing")
        rc, out, err = journal(["repair", "--dir", copy, "--cut-at", str(first_bad)])
        self.assertEqual(rc, 0, "repair: %s %s" % (out, err))
        self.assertIn(b"records up to %d kept" % (first_bad - 1), out)
        removed = [d for d in os.listdir(copy) if d.startswith("removed-")]
        self.assertEqual(len(removed), 1, "one directory of what was cut")
        aside = os.listdir(os.path.join(copy, removed[0]))
        later = [sg for sg in segs if sg > os.path.basename(victim)]
        self.assertEqual(sorted(a for a in aside if a.endswith(".seg")), later,
                         "every later segment moved aside, none deleted")
        self.assertTrue(any(".cut-at-" in a for a in aside), "the cut bytes kept: %s" % aside)
        rc, out, err = journal(["verify", "--dir", copy])
        self.assertEqual(rc, 0, "sound after repair: %s %s" % (out, err))
        self.assertIn(b"record(s), 1..%d\n" % (first_bad - 1), out)

        # a bridge starts on the repaired journal, publishes what is left
        # and goes on after it
        b2 = hbtest.Bridge(tempfile.mkdtemp(prefix="hbtest-jrepaired-"), start=False,
                           **{"journal.dir": copy})
        self.addCleanup(self._finish_bridge, b2)
        b2.start()
        post_all(self, b2, "notif_after", 3)
        ids = ["notif_jv_%03d" % i for i in range(first_bad - 1)] + \
            ["notif_after_%03d" % i for i in range(3)]
        evs = b2.wait_events(count=len(ids), timeout=60)
        self.assertEqual([e["id"] for e in evs], ids)

    def test_not_a_journal(self):
        tmp = tempfile.mkdtemp(prefix="hbtest-jnot-")
        self.addCleanup(shutil.rmtree, tmp, True)
        with open(os.path.join(tmp, "notes.txt"), "w") as f:
            f.write("hello\n")
        for cmd in ("verify", "ls", "cat"):
            rc, out, err = journal([cmd, "--dir", tmp])
            self.assertEqual(rc, 1, cmd)
            self.assertIn("not a journal", err, cmd)
        self.assertEqual(os.listdir(tmp), ["notes.txt"], "nothing created")
        missing = os.path.join(tmp, "missing")
        rc, out, err = journal(["ls", "--dir", missing])
        self.assertEqual(rc, 1)
        self.assertIn("missing", err)
        self.assertFalse(os.path.exists(missing), "a missing directory is not created")


class JournalRetain(BridgeTestCase):
    """journal.retain keeps published segments: /metrics shows the span, and
    journal cat still prints every event after the sink published them."""

    def test_retained_segments_are_readable(self):
        b = self.start_bridge(**{
            "journal.max_bytes": "65536",  # 8 KiB segments
            "limits.max_body": "16384",  # a journal must hold one largest delivery
            "journal.retain": "1h",
            "dedup": "off",  # the dedup snapshot holds segments on its own
        })
        post_all(self, b, "notif_jr", 40)
        evs = b.wait_events(count=40, timeout=60)
        deadline = time.monotonic() + hbtest.scaled(30)
        while True:
            m = b.metrics()
            kept = hbtest.metric_sum(m, "hookbridge_journal_retained_bytes")
            segs = hbtest.metric_sum(m, "hookbridge_journal_segments")
            pending = hbtest.metric_sum(m, "hookbridge_sink_pending_records")
            if (kept > 0 and pending == 0) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertGreater(kept, 0, "published segments retained")
        self.assertGreaterEqual(segs, 3, "several segments kept")
        oldest = hbtest.metric_sum(m, "hookbridge_journal_retained_oldest_timestamp_seconds")
        self.assertEqual(round(oldest * 1000), received_ms(evs[0]),
                         "the span starts at the first event's received_at")
        b.stop()
        rc, out, err = journal(["cat", "-c", b.config_path])
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, b"".join(b.sink_lines()),
                         "every published event is still in the journal")


def dead_letter_line(i, sink, error):
    """A line as the sink runner writes it (src/jsonl.c, with sink and error)."""
    body = notification("notif_dl_%s_%03d" % (sink, i))
    head = json.dumps({"received_at": "2026-11-29T10:00:%02d.000Z" % i, "app_id": "ws1",
                       "topic": "contact.created", "id": "notif_dl_%s_%03d" % (sink, i),
                       "sink": sink, "error": error}, separators=(",", ":"))
    return head[:-1].encode() + b',"payload":' + body + b"}\n", body


class DeadLetter(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="hbtest-deadletter-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.lines, self.bodies = {}, {}
        for sink, errors in (("redis", ["WRONGTYPE Operation against a key", "ERR too big",
                                        "WRONGTYPE Operation against a key"]),
                             ("kafka", ["Broker: Message size too large"])):
            pairs = [dead_letter_line(i, sink, e) for i, e in enumerate(errors)]
            self.lines[sink] = [l for l, _ in pairs]
            self.bodies[sink] = [b for _, b in pairs]
            with open(os.path.join(self.tmp, "dead-letter.%s.jsonl" % sink), "wb") as f:
                f.write(b"".join(self.lines[sink]))
        with open(os.path.join(self.tmp, "dead-letter.kafka.jsonl"), "ab") as f:
            f.write(b'{"received_at":"2026-11-29T10:01')  # a torn last line
        self.before = snapshot(self.tmp)

    def tearDown(self):
        self.assertEqual(snapshot(self.tmp), self.before, "dead-letter changed a file")

    def dl(self, *args):
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKBRIDGE_")}
        p = subprocess.run([hbtest.require_binary(), "dead-letter"] + list(args),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=env, timeout=hbtest.scaled(30))
        return p.returncode, p.stdout, p.stderr.decode()

    def test_ls(self):
        rc, out, err = self.dl("ls", "--data-dir", self.tmp)
        text = out.decode()
        self.assertEqual(rc, 0, err)
        self.assertRegex(text, r"\nkafka\s+1\s+2026-11-29T10:00:00.000Z\s+"
                               r"2026-11-29T10:00:00.000Z\s+\S+dead-letter.kafka.jsonl\n")
        self.assertRegex(text, r"\s1\s+\(unreadable lines\)\n")
        self.assertRegex(text, r"\nredis\s+3\s+2026-11-29T10:00:00.000Z\s+"
                               r"2026-11-29T10:00:02.000Z\s")
        self.assertRegex(text, r"\s2\s+WRONGTYPE Operation against a key\n")
        self.assertRegex(text, r"\s1\s+ERR too big\n")
        rc, out, _ = self.dl("ls", "--data-dir", self.tmp, "--sink", "redis")
        self.assertNotIn(b"kafka", out)

    def test_cat(self):
        rc, out, err = self.dl("cat", "--data-dir", self.tmp, "--sink", "redis")
        self.assertEqual((rc, out), (0, b"".join(self.lines["redis"])), err)
        rc, out, err = self.dl("cat", "--data-dir", self.tmp, "--format", "raw")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, b"".join(b + b"\n" for b in self.bodies["kafka"] +
                                       self.bodies["redis"]), "payloads, kafka's file first")
        self.assertIn("1 unreadable line(s)", err)

    def test_data_dir_from_config(self):
        conf = os.path.join(self.tmp, "c.conf")
        with open(conf, "w") as f:
            f.write("data.dir = %s\nsinks = kafka\n" % self.tmp)  # no brokers: not checked
        self.before = snapshot(self.tmp)
        rc, out, err = self.dl("cat", "-c", conf, "--sink", "kafka")
        self.assertEqual((rc, out), (0, b"".join(self.lines["kafka"])), err)

    def test_nothing_there(self):
        empty = os.path.join(self.tmp, "empty")
        os.mkdir(empty)
        self.before = snapshot(self.tmp)
        rc, out, err = self.dl("ls", "--data-dir", empty)
        self.assertEqual(rc, 0)
        self.assertIn("no dead letters", err)
        self.assertEqual(self.dl("ls", "--data-dir", os.path.join(self.tmp, "missing"))[0], 1)
        # redrive (tests/integration/test_replay.py) has nothing to send, and asks no bridge
        rc, out, err = self.dl("redrive", "--data-dir", empty)
        self.assertEqual(rc, 0, err)
        self.assertIn("no dead letters", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
