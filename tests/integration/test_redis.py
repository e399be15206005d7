"""Redis Streams sink against a real Redis: the XADD entry (DESIGN.md
section 2), key templates, and MAXLEN ~ trimming.

Needs $REDIS_URL; without it the tests fail, or skip with HB_ALLOW_SKIP=1.

Run: python3 tests/integration/test_redis.py
 or: python3 -m unittest -v tests/integration/test_redis.py
"""

import datetime
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hbsinks  # noqa: E402
import hbtest  # noqa: E402
from hbsinks import redis_key_name  # noqa: E402
from hbtest import RFC3339_MS_UTC, BridgeTestCase, notification  # noqa: E402

FIELDS = [b"id", b"topic", b"app_id", b"received_at", b"payload"]


def parse_rfc3339_ms(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


class RedisSinkCase(BridgeTestCase):

    def setUp(self):
        self.url = hbsinks.require_service(self, "REDIS_URL")
        self.prefix = hbsinks.unique_prefix()
        self.r = hbsinks.Redis(self.url)
        self.addCleanup(self.r.close)
        self.addCleanup(self.delete_keys)

    def delete_keys(self):
        # our streams only (unique prefix); the shared server stays clean
        try:
            for k in self.r.scan_keys(self.prefix + "*"):
                self.r.cmd("DEL", k)
        except (OSError, hbsinks.RedisError):
            pass

    def redis_conf(self, **kw):
        conf = {"sinks": "redis", "redis.url": self.url,
                "redis.stream": self.prefix + ":{app_id}:{topic}"}
        conf.update(kw)
        return conf

    def stream_key(self, ev):
        return redis_key_name("%s:%s:%s" % (self.prefix, ev.get("app_id") or "_", ev["topic"]))

    def wait_lengths(self, want, timeout=30):
        """want: {key: n}; poll XLEN until every stream has >= n entries."""
        def done():
            return all(self.r.cmd("XLEN", k) >= n for k, n in want.items())
        if not hbsinks.wait_until(done, timeout):
            self.fail("Redis streams not filled within %.0fs: want %r, have %r" % (
                hbtest.scaled(timeout), want, {k: self.r.cmd("XLEN", k) for k in want}))

    def check_entry(self, entry_id, fields, body, t0, t1, what):
        ev = json.loads(body)
        self.assertRegex(entry_id.decode(), r"^\d+-\d+$", what)
        self.assertEqual(fields[0::2], FIELDS, "%s: field names/order %r" % (what, fields[0::2]))
        d = dict(zip(fields[0::2], fields[1::2]))
        self.assertEqual(d[b"payload"], body, "%s: payload is not the posted body byte for byte"
                         % what)
        self.assertEqual(d[b"id"], (ev.get("id") or "").encode(), "%s: id" % what)
        self.assertEqual(d[b"topic"], ev["topic"].encode(), "%s: topic" % what)
        self.assertEqual(d[b"app_id"], (ev.get("app_id") or "").encode(), "%s: app_id" % what)
        ra = d[b"received_at"].decode()
        self.assertRegex(ra, RFC3339_MS_UTC, "%s: received_at" % what)
        self.assertTrue(t0 - 2.0 <= parse_rfc3339_ms(ra) <= t1 + 2.0,
                        "%s: received_at %s is not the time of the post" % (what, ra))
        # the stream entry id is Redis's own time (ms) of the XADD
        self.assertGreaterEqual(int(entry_id.split(b"-")[0]) / 1000.0, t0 - 2.0, what)

    def check_posted(self, posted):
        want = {}
        for item in posted:
            want.setdefault(self.stream_key(json.loads(item[1])), []).append(item)
        self.wait_lengths({k: len(v) for k, v in want.items()})
        for k, items in want.items():
            entries = self.r.xrange_all(k)
            self.assertEqual(len(entries), len(items), "stream %r: %d entries, want %d" %
                             (k, len(entries), len(items)))
            for name, body, t0, t1 in items:
                same = [(i, f) for i, f in entries
                        if dict(zip(f[0::2], f[1::2])).get(b"payload") == body]
                self.assertEqual(len(same), 1, "stream %r: %d entries carry %s byte for byte "
                                 "(want 1)" % (k, len(same), name))
                self.check_entry(same[0][0], same[0][1], body, t0, t1, "%s -> %r" % (name, k))

    # ---------------------------------------------------------------- tests

    def test_samples_published_to_redis(self):
        b = self.start_bridge(**self.redis_conf())
        posted = []
        for name, body, sig, secret in hbtest.load_samples():
            self.assertEqual(secret, hbtest.SECRET)
            t0 = time.time()
            self.assertAccepted(b.post(body, sig), name)
            posted.append((name, body, t0, time.time()))
        self.check_posted(posted)
        # exactly the streams we expect under our prefix
        self.assertEqual(sorted(self.r.scan_keys(self.prefix + "*")),
                         sorted({self.stream_key(json.loads(p[1])) for p in posted}))
        self.assertTrue(hbsinks.wait_until(
            lambda: hbsinks.sink_published(b, "redis") >= len(posted), 30),
            "hookbridge_sink_published_total{sink=\"redis\"} = %s, want %d" %
            (hbsinks.sink_published(b, "redis"), len(posted)))

    def test_key_template_and_missing_fields(self):
        b = self.start_bridge(**self.redis_conf(**{
            "redis.stream": self.prefix + ":{workspace}:{topic}:{id}"}))
        bodies = [
            notification("notif_k1", topic="odd topic\twith space", app_id="wsA"),
            json.dumps({"type": "notification_event", "topic": "contact.created",
                        "id": "notif_k2"}).encode(),
            json.dumps({"type": "notification_event", "topic": "contact.created",
                        "app_id": None, "id": None}).encode(),
        ]
        posted = []
        for body in bodies:
            t0 = time.time()
            self.assertAccepted(b.post_signed(body), body[:80])
            posted.append(("custom", body, t0, time.time()))
        keys = [(self.prefix + ":wsA:odd_topic_with_space:notif_k1").encode(),
                (self.prefix + ":_:contact.created:notif_k2").encode(),
                (self.prefix + ":_:contact.created:_").encode()]
        self.wait_lengths({k: 1 for k in keys})
        for k, (name, body, t0, t1) in zip(keys, posted):
            entries = self.r.xrange_all(k)
            self.assertEqual(len(entries), 1, "stream %r" % k)
            self.check_entry(entries[0][0], entries[0][1], body, t0, t1, "stream %r" % k)

    def test_maxlen_trims_approximately(self):
        """MAXLEN ~ n removes whole stream nodes only, so after each XADD the
        length is in [n, n + entries per node).  A node holds at most
        stream-node-max-entries entries (100 by default) and at most
        stream-node-max-bytes bytes, so n + stream-node-max-entries is a
        reliable upper bound."""
        maxlen, total = 50, 1000
        b = self.start_bridge(**self.redis_conf(**{"redis.maxlen": maxlen}))
        node_entries = int(self.r.cmd("CONFIG", "GET", "stream-node-max-entries")[1])
        key = redis_key_name("%s:ws1:contact.created" % self.prefix)
        ids = ["notif_ml_%05d" % i for i in range(total)]
        conn = b.connection()
        self.addCleanup(conn.close)
        for nid in ids:
            self.assertAccepted(b.post_signed(notification(nid), conn=conn), nid)
        self.assertTrue(hbsinks.wait_until(
            lambda: hbsinks.sink_published(b, "redis") >= total, 60),
            "not all %d published to Redis within 60s: %s" %
            (total, hbsinks.sink_published(b, "redis")))
        n = self.r.cmd("XLEN", key)
        print("\n[redis maxlen] maxlen=%d posted=%d stream length=%d node-max-entries=%d" %
              (maxlen, total, n, node_entries))
        self.assertGreaterEqual(n, maxlen, "trimmed below MAXLEN ~ %d: %d" % (maxlen, n))
        self.assertLessEqual(n, maxlen + node_entries,
                             "not trimmed: length %d after %d XADDs with MAXLEN ~ %d" %
                             (n, total, maxlen))
        # what is kept is the newest: the last `maxlen` ids are all there
        kept = [dict(zip(f[0::2], f[1::2]))[b"id"].decode() for _, f in self.r.xrange_all(key)]
        self.assertEqual(len(kept), len(set(kept)), "duplicate ids in the stream")
        self.assertEqual(set(ids[-maxlen:]) - set(kept), set(),
                         "the newest %d entries must survive the trim" % maxlen)

    def test_maxlen_zero_keeps_everything(self):
        total = 300
        b = self.start_bridge(**self.redis_conf(**{"redis.maxlen": 0}))
        key = redis_key_name("%s:ws1:contact.created" % self.prefix)
        conn = b.connection()
        self.addCleanup(conn.close)
        for i in range(total):
            self.assertAccepted(b.post_signed(notification("notif_m0_%05d" % i), conn=conn))
        self.wait_lengths({key: total}, timeout=60)
        self.assertTrue(hbsinks.wait_until(
            lambda: hbsinks.sink_published(b, "redis") >= total, 30))
        self.assertEqual(self.r.cmd("XLEN", key), total, "redis.maxlen = 0 must not trim")


if __name__ == "__main__":
    hbtest.main()
