"""Per-workspace order in Kafka (DESIGN.md section 3): events of one
workspace reach Kafka in the order they were acknowledged.

3000 notifications for three workspaces, interleaved, are posted from
several keep-alive connections at once.  For every request the send and
answer times are recorded.  Then, per workspace: every message is in one
partition, and whenever A was answered 200 before B was sent, A's offset is
lower than B's.  And no acknowledged id is missing.

Needs $KAFKA_BROKERS and kcat; without them the test fails, or skips with
HB_ALLOW_SKIP=1.

Run: python3 tests/integration/test_order.py
 or: python3 -m unittest -v tests/integration/test_order.py
Env: HB_ORDER_COUNT (default 3000), HB_ORDER_THREADS (default 6).
"""

import bisect
import collections
import os
import queue
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hbsinks  # noqa: E402
import hbtest  # noqa: E402
from hbtest import BridgeTestCase, notification  # noqa: E402

COUNT = int(os.environ.get("HB_ORDER_COUNT", "3000"))
THREADS = int(os.environ.get("HB_ORDER_THREADS", "6"))
WORKSPACES = ("wsorder_a", "wsorder_b", "wsorder_c")


def order_violations(recs, offset_of):
    """recs: [Rec] of one workspace, all acknowledged; offset_of: {nid: offset}.
    Returns [(A, B)] with A answered before B was sent but offset(A) >=
    offset(B).  O(n log n): B in order of send time, against the largest
    offset among everything answered before B was sent."""
    by_answer = sorted(recs, key=lambda r: r.t_answered)
    answered_times = [r.t_answered for r in by_answer]
    # prefix maximum of offsets in answer order, with the rec that holds it
    pmax = []
    best = None
    for r in by_answer:
        if best is None or offset_of[r.nid] > offset_of[best.nid]:
            best = r
        pmax.append(best)
    bad = []
    for b in recs:
        i = bisect.bisect_left(answered_times, b.t_sent)  # answered strictly before sent
        if i == 0:
            continue
        a = pmax[i - 1]
        if offset_of[a.nid] >= offset_of[b.nid]:
            bad.append((a, b))
    return bad


class OrderCase(BridgeTestCase):

    def setUp(self):
        self.brokers = hbsinks.require_service(self, "KAFKA_BROKERS")
        hbsinks.require_kcat(self)
        self.prefix = hbsinks.unique_prefix()

    def test_per_workspace_order_in_kafka(self):
        b = self.start_bridge(**{"sinks": "kafka", "kafka.brokers": self.brokers,
                                 "kafka.topic": self.prefix + ".{topic}"})
        topic = hbsinks.kafka_topic_name(self.prefix + ".contact.created")
        q = queue.Queue()
        for i in range(COUNT):
            ws = WORKSPACES[i % len(WORKSPACES)]
            nid = "notif_order_%s_%05d" % (self.prefix, i)
            q.put((nid, ws, notification(nid, app_id=ws)))
        posters = [hbsinks.Poster(b, k, q) for k in range(THREADS)]
        self.addCleanup(lambda: [p.stop() for p in posters])
        t0 = time.monotonic()
        hbsinks.run_posters(posters, timeout=300)
        post_s = time.monotonic() - t0
        recs = hbsinks.all_recs(posters)
        acked = [r for r in recs if r.status == 200]
        errors = [e for p in posters for e in p.errors]
        bad = [x for p in posters for x in p.bad]
        self.assertEqual(len(recs), COUNT)
        # a healthy bridge with room in its journal takes everything
        self.assertEqual(len(acked), COUNT, "only %d of %d answered 200; non-200: %r; "
                         "transport errors: %r\n%s" % (len(acked), COUNT, bad[:5], errors[:5],
                                                       b.log_tail()))

        t1 = time.monotonic()
        msgs, missing = hbsinks.kafka_wait_ids(self.brokers, topic, {r.nid for r in acked},
                                               timeout=180)
        consume_s = time.monotonic() - t1
        by_id = collections.defaultdict(list)
        for m in msgs:
            by_id[dict(m.headers).get("intercom-notification-id")].append(m)
        dups = {k: v for k, v in by_id.items() if len(v) > 1}
        print("\n[order] posted=%d acked=%d in %.1fs over %d connections; kafka messages=%d "
              "missing=%d duplicates=%d (consumed in %.1fs)" %
              (COUNT, len(acked), post_s, THREADS, len(msgs), len(missing), len(dups),
               consume_s))
        self.assertEqual(missing, set(), "%d acknowledged ids never reached Kafka topic %s "
                         "(e.g. %s)\n%s" % (len(missing), topic, sorted(missing)[:5],
                                            b.log_tail()))
        # without any fault the idempotent producer adds no duplicates
        self.assertEqual(dups, {}, "duplicates in Kafka without any fault: %s" %
                         {k: [(m.partition, m.offset) for m in v]
                          for k, v in list(dups.items())[:5]})

        rec_ws = {r.nid: r.ws for r in acked}
        for ws in WORKSPACES:
            ws_msgs = [m for m in msgs
                       if rec_ws.get(dict(m.headers).get("intercom-notification-id")) == ws]
            parts = collections.Counter(m.partition for m in ws_msgs)
            self.assertEqual(len(parts), 1, "workspace %s spread over partitions %r" %
                             (ws, dict(parts)))
            self.assertTrue(all(m.key == ws.encode() for m in ws_msgs),
                            "workspace %s: a message with another key" % ws)
            offset_of = {dict(m.headers)["intercom-notification-id"]: m.offset
                         for m in ws_msgs}
            ws_recs = [r for r in acked if r.ws == ws]
            viol = order_violations(ws_recs, offset_of)
            self.assertEqual(viol, [], "workspace %s: %d notifications answered 200 before "
                             "another was sent have a higher offset; first: %s" % (
                                 ws, len(viol), [
                                     ("%s answered %.6f offset %d" % (a.nid, a.t_answered,
                                                                      offset_of[a.nid]),
                                      "%s sent %.6f offset %d" % (x.nid, x.t_sent,
                                                                  offset_of[x.nid]))
                                     for a, x in viol[:3]]))


class OrderCheckSelfTest(unittest.TestCase):
    """The checker itself, on made-up data (no bridge, no broker)."""

    def test_checker(self):
        R = hbsinks.Rec
        recs = [R("a", "w", 0.0, 1.0, 200), R("b", "w", 2.0, 3.0, 200),
                R("c", "w", 2.5, 4.0, 200)]
        self.assertEqual(order_violations(recs, {"a": 0, "b": 1, "c": 2}), [])
        # b and c overlap in time: either order is fine
        self.assertEqual(order_violations(recs, {"a": 0, "b": 2, "c": 1}), [])
        # a was answered before b and c were sent: it must come first
        v = order_violations(recs, {"a": 2, "b": 0, "c": 1})
        self.assertEqual(sorted(x.nid for _, x in v), ["b", "c"])


if __name__ == "__main__":
    hbtest.main()
