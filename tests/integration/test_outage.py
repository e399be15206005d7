"""Sink outages (DESIGN.md section 3): an answered 200 is never lost, not by
a Redis or Kafka outage, even one longer than librdkafka's
message.timeout.ms.  Slow-ish (each test well under 3 minutes); meant for the
`slow` label.

Each test starts its OWN private server (tests/services/*.sh with its own
state dir under the test's temp dir), never touching the shared ones, and
always stops it in a cleanup.  Needs redis-server / java + the cached Kafka
jars (the scripts install them as root); if a private server cannot be
started the test fails (skips with HB_ALLOW_SKIP=1).

Timeline of each test: post unique notifications from several keep-alive
connections; stop the server (KEEP_DATA=1: same port and data); posting
continues and is answered 200 from the journal; /readyz turns 503 naming the
sink; start the server again; /readyz 200; post a little more; stop posting;
then (bounded wait) every acknowledged id must be in the sink.  A summary
line gives sent, acked, delivered, missing and duplicates.

Run: python3 tests/integration/test_outage.py
 or: python3 -m unittest -v tests/integration/test_outage.py
Env: HB_OUTAGE_THREADS (default 4), HB_OUTAGE_SECONDS (Kafka outage, default
     15; Redis outage is a third of it, at least 4).
"""

import collections
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hbsinks  # noqa: E402
import hbtest  # noqa: E402
from hbtest import BridgeTestCase, notification, scaled  # noqa: E402

THREADS = int(os.environ.get("HB_OUTAGE_THREADS", "4"))
KAFKA_OUTAGE_S = float(os.environ.get("HB_OUTAGE_SECONDS", "15"))
REDIS_OUTAGE_S = max(4.0, KAFKA_OUTAGE_S / 3)
PAUSE = 0.01  # between requests per connection: pacing, not correctness


class OutageCase(BridgeTestCase):

    def setUp(self):
        self.prefix = hbsinks.unique_prefix()
        self.svc_tmp = tempfile.mkdtemp(prefix="hbtest-svc-%s-" % self._testMethodName[:20])
        self.addCleanup(self._rm_svc_tmp)
        self.notes = []

    def _rm_svc_tmp(self):
        if not self._outcome_failed() and not os.environ.get("HB_KEEP_TMP"):
            shutil.rmtree(self.svc_tmp, ignore_errors=True)
        else:
            print("\n[outage] keeping service dir %s" % self.svc_tmp)

    def note(self, msg):
        line = "[outage %s +%.1fs] %s" % (self._testMethodName, time.monotonic() - self.t_start,
                                          msg)
        self.notes.append(line)
        print(line, flush=True)

    # -- the common timeline

    def start_posters(self, b, tag):
        def make(k, n):
            nid = "notif_%s_%s_t%d_%06d" % (tag, self.prefix, k, n)
            ws = "wsout%d" % (k % 3)
            return nid, ws, notification(nid, app_id=ws)
        posters = [hbsinks.Poster(b, k, make, pause=PAUSE) for k in range(THREADS)]
        self.addCleanup(lambda: [p.stop() for p in posters])
        for p in posters:
            p.start()
        return posters

    @staticmethod
    def acked_count(posters):
        return sum(1 for p in posters for r in list(p.recs) if r.status == 200)

    def wait_acks(self, b, posters, at_least, timeout, what):
        ok = hbsinks.wait_until(lambda: self.acked_count(posters) >= at_least, timeout)
        if not ok:
            self.fail("%s: only %d acknowledged (want >= %d) within %.0fs; non-200: %r; "
                      "errors: %r\n%s" % (what, self.acked_count(posters), at_least,
                                          scaled(timeout),
                                          [x for p in posters for x in p.bad][:5],
                                          [e for p in posters for e in p.errors][:5],
                                          b.log_tail()))

    def wait_readyz(self, b, want, must_contain, timeout, what):
        last = [None]

        def probe():
            st, body = hbsinks.readyz(b)
            last[0] = (st, body[:300])
            return st == want and (must_contain is None or must_contain in body)
        t0 = time.monotonic()
        if not hbsinks.wait_until(probe, timeout, interval=0.2):
            self.fail("%s: /readyz not %d%s within %.0fs; last: %r\n%s" % (
                what, want, " naming %r" % must_contain if must_contain else "",
                scaled(timeout), last[0], b.log_tail()))
        self.note("/readyz %d after %.1fs: %r (published so far: %s)" % (
            want, time.monotonic() - t0, last[0][1][:120], {
                s: hbsinks.sink_published(b, s) for s in b.config["sinks"].split(",")}))
        return last[0]

    def outage_timeline(self, svc, b, sink, outage_s, ready_word):
        posters = self.start_posters(b, sink[0])
        self.wait_acks(b, posters, 150, 60, "before the outage")
        # the sink works before the outage (so both paths are exercised)
        if not hbsinks.wait_until(lambda: hbsinks.sink_published(b, sink) >= 100, 60):
            self.fail("%s sink published only %s within 60s before any outage\n%s" %
                      (sink, hbsinks.sink_published(b, sink), b.log_tail()))
        self.note("acked %d before the outage; stopping %s (KEEP_DATA=1)" %
                  (self.acked_count(posters), sink))
        svc.stop(keep_data=True)
        t_down = time.monotonic()
        acked_at_down = self.acked_count(posters)
        self.note("%s stopped" % sink)
        self.wait_readyz(b, 503, ready_word, 45, "%s down" % sink)
        # keep it down for outage_s while posting goes on (the journal answers)
        self.wait_acks(b, posters, acked_at_down + 100, 60, "during the outage")
        left = outage_s - (time.monotonic() - t_down)
        if left > 0:
            # the outage length is the scenario, not a wait for a result
            time.sleep(left)
        acked_in_outage = self.acked_count(posters) - acked_at_down
        self.note("outage %.1fs, %d acked during it; starting %s again" %
                  (time.monotonic() - t_down, acked_in_outage, sink))
        addr = svc.start()
        self.note("%s back on %s" % (sink, addr))
        self.wait_readyz(b, 200, None, 120, "%s back" % sink)
        acked_at_up = self.acked_count(posters)
        self.wait_acks(b, posters, acked_at_up + 150, 60, "after the outage")
        for p in posters:
            p.stop()
        hbsinks.join_posters(posters, 60)
        recs = hbsinks.all_recs(posters)
        self.note("posting stopped: %d acked, %s published" % (
            self.acked_count(posters), hbsinks.sink_published(b, sink)))
        return recs, acked_in_outage

    def summarize(self, b, sink, recs, counts, missing, acked_in_outage):
        acked = {r.nid for r in recs if r.status == 200}
        not_ok = collections.Counter(r.status for r in recs if r.status != 200)
        delivered = {k for k in counts if k in acked}
        dups = sum(1 for k, c in counts.items() if c > 1)
        extra = sum(1 for k in counts if k not in acked)
        line = ("[outage %s] SUMMARY sent=%d acked=%d acked_during_outage=%d delivered=%d "
                "missing=%d duplicates=%d unacked_but_delivered=%d non_200=%s" % (
                    sink, len(recs), len(acked), acked_in_outage, len(delivered), len(missing),
                    dups, extra, dict(not_ok)))
        print("\n" + line, flush=True)
        self.assertEqual(len(missing), 0, "%s\n%d acknowledged ids never reached %s, e.g. %s\n%s"
                         % (line, len(missing), sink, sorted(missing)[:8], b.log_tail(60)))
        self.assertGreater(acked_in_outage, 0, "nothing was acknowledged while %s was down" %
                           sink)
        # the journal had room all along: every request should have been a 200
        self.assertEqual(dict(not_ok), {}, "%s\nrequests not answered 200: %r; errors: %r" %
                         (line, [x for x in b.statuses if x != 200][:10], not_ok))

    # -- tests

    def test_redis_restart_loses_nothing(self):
        self.t_start = time.monotonic()
        svc = hbsinks.PrivateService(self, "redis", os.path.join(self.svc_tmp, "redis"))
        url = svc.start()
        self.note("private redis %s" % url)
        b = self.start_bridge(**{"sinks": "redis", "redis.url": url, "redis.maxlen": 0,
                                 "redis.stream": self.prefix + ":{app_id}:{topic}"})
        recs, in_outage = self.outage_timeline(svc, b, "redis", REDIS_OUTAGE_S, "sink redis")
        acked = {r.nid for r in recs if r.status == 200}
        t0 = time.monotonic()
        counts, missing = hbsinks.redis_wait_ids(url, self.prefix + ":*", acked, timeout=120)
        self.note("backlog drained in %.1fs (missing %d)" % (time.monotonic() - t0, len(missing)))
        counts = {k.decode(): v for k, v in counts.items() if k is not None}
        self.summarize(b, "redis", recs, counts, {m.decode() for m in missing}, in_outage)

    def test_kafka_outage_longer_than_message_timeout(self):
        self.t_start = time.monotonic()
        hbsinks.require_kcat(self)
        svc = hbsinks.PrivateService(self, "kafka", os.path.join(self.svc_tmp, "kafka"))
        brokers = svc.start()
        self.note("private kafka %s" % brokers)
        b = self.start_bridge(**{"sinks": "kafka", "kafka.brokers": brokers,
                                 "kafka.topic": self.prefix + ".{topic}",
                                 "kafka.message.timeout.ms": 5000}, start_timeout=60)
        topic = hbsinks.kafka_topic_name(self.prefix + ".contact.created")
        recs, in_outage = self.outage_timeline(svc, b, "kafka", KAFKA_OUTAGE_S, "sink kafka")
        acked = {r.nid for r in recs if r.status == 200}
        t0 = time.monotonic()
        msgs, missing = hbsinks.kafka_wait_ids(brokers, topic, acked, timeout=150)
        self.note("backlog drained in %.1fs (missing %d)" % (time.monotonic() - t0, len(missing)))
        counts = collections.Counter(dict(m.headers).get("intercom-notification-id")
                                     for m in msgs)
        counts.pop(None, None)
        timeouts = sum(1 for line in b.log_text().splitlines() if "timed out" in line.lower())
        self.note("bridge log lines mentioning 'timed out': %d" % timeouts)
        self.summarize(b, "kafka", recs, counts, missing, in_outage)
        # every message of a workspace in one partition, even after the retries
        by_ws = collections.defaultdict(set)
        for m in msgs:
            by_ws[m.key].add(m.partition)
        self.assertTrue(all(len(p) == 1 for p in by_ws.values()),
                        "a workspace spread over partitions: %r" % dict(by_ws))


if __name__ == "__main__":
    hbtest.main()
