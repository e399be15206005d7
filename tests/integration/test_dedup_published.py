#!/usr/bin/env python3
"""Dedup under `ack = published` (issue 9, item 4).

The defect: an id was remembered as soon as its record was durable, so when
the sink was down the first delivery was answered 503 after the 4 s wait
(not published) and Intercom's retry got `200 {"status":"duplicate"}` while
nothing had been published. Under `ack = published` a repeat is a duplicate
only once its record is published; until then it waits for that record like
the original did (and is not journaled a second time). The same holds after
a restart: ids rebuilt from the journal carry their record's sequence number.

Needs redis-server (a private one per test, stopped and started by the test).
"""

import os
import shutil
import tempfile
import time

import hbsinks
import hbtest
from hbtest import BridgeTestCase, notification, scaled


class DedupAckPublished(BridgeTestCase):

    def setUp(self):
        self.prefix = hbsinks.unique_prefix()
        self.svc_tmp = tempfile.mkdtemp(prefix="hbtest-svc-%s-" % self._testMethodName[:20])
        self.addCleanup(shutil.rmtree, self.svc_tmp, True)
        self.redis = hbsinks.PrivateService(self, "redis", os.path.join(self.svc_tmp, "redis"))
        self.url = self.redis.start()

    def start(self, ack="published"):
        return self.start_bridge(**{"sinks": "redis", "redis.url": self.url, "ack": ack,
                                    "redis.maxlen": 0, "shutdown.grace_ms": 1000,
                                    "redis.stream": self.prefix + ":{id}"})

    def published(self, nid):
        """How many times nid is in Redis (its own stream)."""
        with hbsinks.Redis(self.url) as r:
            return r.cmd("XLEN", "%s:%s" % (self.prefix, nid))

    def wait_published(self, b, nid, timeout=60.0):
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            try:
                if self.published(nid) >= 1:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.fail("%s not published to Redis within %.0fs\n%s" % (nid, scaled(timeout),
                                                                  b.log_tail()))

    def post(self, b, body, want, status=None, what=""):
        st, _, data = b.post_signed(body, timeout=60)
        self.assertEqual(st, want, "%s: expected %d, got %d %r\n%s" % (what, want, st, data,
                                                                      b.log_tail()))
        if status is not None:
            self.assertJsonBody(data, "status", status, what)
        return data

    def first_delivery_while_redis_is_down(self, tag, ack="published"):
        """A bridge, Redis stopped, one delivery of a new id -> (bridge, id, body)."""
        b = self.start(ack)
        nid = tag + "-" + self.prefix
        body = notification(nid)
        self.redis.stop(keep_data=True)
        b.wait_readyz(503)
        if ack == "published":
            self.post(b, body, 503, what="first delivery, Redis down")
        else:
            self.post(b, body, 200, "accepted", what="first delivery, Redis down")
        return b, nid, body

    def test_ack_published_repeat_is_not_a_duplicate_before_publication(self):
        b, nid, body = self.first_delivery_while_redis_is_down("n")
        # the defect: this retry was answered 200 duplicate, nothing published
        self.post(b, body, 503, what="retry while Redis is still down")

        self.redis.start()
        self.wait_published(b, nid)
        self.post(b, body, 200, "duplicate", what="retry once the first record is published")
        # the retries were not journaled again: published once, even after
        # the sink has had time to drain anything else
        other = "o-" + self.prefix
        self.post(b, notification(other), 200, "accepted", what="a later delivery")
        self.wait_published(b, other)
        self.assertEqual(self.published(nid), 1, "id published %d times" % self.published(nid))

    def test_ack_published_repeat_after_restart_is_not_a_duplicate_before_publication(self):
        b, nid, body = self.first_delivery_while_redis_is_down("r")
        self.assertEqual(b.stop(), 0, "bridge exit code")
        # the id comes back from the journal (and the snapshot), unpublished
        b.wait_ready = False
        b.start()
        self.post(b, body, 503, what="retry after a restart while Redis is still down")

        self.redis.start()
        self.wait_published(b, nid)
        self.post(b, body, 200, "duplicate", what="retry after a restart, once published")
        self.assertEqual(self.published(nid), 1, "id published %d times" % self.published(nid))

    def test_ack_durable_repeat_is_a_duplicate_at_once(self):
        """Under ack = durable a 200 means durable, so a repeat of a durable
        id is a duplicate even while the sink is down."""
        b, nid, body = self.first_delivery_while_redis_is_down("d", ack="durable")
        self.post(b, body, 200, "duplicate", what="retry, Redis down")
        self.redis.start()
        self.wait_published(b, nid)
        self.assertEqual(self.published(nid), 1)


if __name__ == "__main__":
    hbtest.main()
