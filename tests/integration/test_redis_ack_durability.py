"""Regression (issue 9, item 12): a Redis XADD reply is not durable by
itself (the entry is only in the server's memory), so the sink can wait
for more before a record is released from the journal:

  redis.wait_replicas = N   WAIT N after each pipeline: released only once
                            N replicas have the events
  redis.wait_aof = on       WAITAOF 1 0: released only once the server has
                            fsynced them to its AOF (Redis 7.2 and later);
                            on an older server the sink is not ready and
                            says why, it never pretends

Starts private redis-servers (a master, then a replica of it) on free
loopback ports.

Run: python3 tests/integration/test_redis_ack_durability.py
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hbsinks  # noqa: E402
import hbtest  # noqa: E402
from hbsinks import redis_count_ids, sink_pending, sink_published, wait_until  # noqa: E402
from hbtest import BridgeTestCase  # noqa: E402

N = 20


class RedisAckDurability(BridgeTestCase):

    def assert_nothing_released(self, b, why):
        """No record counted as published, all still pending in the
        journal.  The state cannot change by itself (the condition for
        release is absent), so a few seconds of polling is a fair check."""
        released = wait_until(lambda: sink_published(b, "redis") != 0, 5)
        self.assertFalse(released, "%s: %s record(s) released anyway\n%s" %
                         (why, sink_published(b, "redis"), b.log_tail()))
        self.assertEqual(sink_pending(b, "redis"), N,
                         "%s: the journal no longer holds every record" % why)

    def post_unreplicated(self, master, tag):
        """A bridge with redis.wait_replicas = 1 on a master without
        replicas, and N events posted to it: XADDed into the master, but
        unconfirmed.  Returns (bridge, stream prefix, ids)."""
        prefix = hbsinks.unique_prefix()
        b = self.start_bridge(**{"sinks": "redis", "redis.url": master,
                                 "redis.stream": prefix + ":{app_id}:{topic}",
                                 "redis.wait_replicas": 1, "redis.wait_timeout_ms": 300,
                                 "shutdown.grace_ms": 500})
        ids = hbsinks.post_notifications(self, b, tag, N, app_id="wsd")
        # the XADDs themselves go through: the entries are in the master
        self.assertTrue(wait_until(
            lambda: sum(redis_count_ids(master, prefix + ":*").values()) == N, 30),
            "the events did not reach the master\n%s" % b.log_tail())
        hbsinks.wait_not_ready(self, b, "WAIT", "0 of 1", "redis.wait_replicas")
        return b, prefix, ids

    def test_wait_replicas_holds_events_until_a_replica_has_them(self):
        master = hbsinks.redis_server(self, "--repl-diskless-sync-delay", "0")
        b, prefix, ids = self.post_unreplicated(master, "rep")
        self.assert_nothing_released(b, "no replica attached")

        port = master.rsplit(":", 1)[1]
        replica = hbsinks.redis_server(self, "--replicaof", "127.0.0.1", port)
        ok = wait_until(lambda: sink_pending(b, "redis") == 0, 90)
        self.assertTrue(ok, "records not released after a replica attached (pending %s)\n%s" %
                        (sink_pending(b, "redis"), b.log_tail()))
        self.assertEqual(sink_published(b, "redis"), N)
        b.wait_readyz(200, 30)
        want = {i.encode(): 1 for i in ids}
        # waited for again on the same connection, not XADDed again
        self.assertEqual(dict(redis_count_ids(master, prefix + ":*")), want,
                         "each event must be in the master exactly once")
        self.assertEqual(dict(redis_count_ids(replica, prefix + ":*")), want,
                         "the replica must hold every released event")

    def test_unconfirmed_events_survive_a_redis_crash(self):
        """The case the wait exists for: the master answers the XADDs, then
        dies without persistence before any replica has them.  Released on
        the XADD reply, these events would be gone; held, they are sent
        again to the restarted (empty) master and released once its new
        replica has them."""
        port = hbtest.free_port()
        master = hbsinks.redis_server(self, "--repl-diskless-sync-delay", "0", port=port)
        b, prefix, ids = self.post_unreplicated(master, "crash")
        self.assertEqual(sink_pending(b, "redis"), N)
        # no persistence: SHUTDOWN NOSAVE loses the data like a crash does
        with hbsinks.Redis(master) as r:
            try:
                r.cmd("SHUTDOWN", "NOSAVE")
            except (OSError, hbsinks.RedisError):
                pass  # the server closes the connection as it exits
        master = hbsinks.redis_server(self, "--repl-diskless-sync-delay", "0", port=port)
        hbsinks.redis_server(self, "--replicaof", "127.0.0.1", port)
        ok = wait_until(lambda: sink_pending(b, "redis") == 0, 90)
        self.assertTrue(ok, "records not released after the restart (pending %s)\n%s" %
                        (sink_pending(b, "redis"), b.log_tail()))
        self.assertEqual(dict(redis_count_ids(master, prefix + ":*")),
                         {i.encode(): 1 for i in ids},
                         "every event must be in the restarted master exactly once")

    def test_wait_aof(self):
        version = hbsinks.redis_version()
        prefix = hbsinks.unique_prefix()
        conf = {"sinks": "redis", "redis.stream": prefix + ":{app_id}:{topic}",
                "shutdown.grace_ms": 500, "redis.wait_aof": "on", "redis.wait_timeout_ms": 1000}
        if version is not None and version >= (7, 2):
            aof = hbsinks.redis_server(self, "--appendonly", "yes", "--appendfsync", "everysec")
            b = self.start_bridge(**dict(conf, **{"redis.url": aof}))
            ids = hbsinks.post_notifications(self, b, "aof", N, app_id="wsd")
            self.assertTrue(wait_until(lambda: sink_pending(b, "redis") == 0, 60),
                            "not released with appendonly yes\n%s" % b.log_tail())
            self.assertEqual(dict(redis_count_ids(aof, prefix + ":*")),
                             {i.encode(): 1 for i in ids})
        # without an AOF (any version), or without WAITAOF (before 7.2):
        # not ready with the reason, nothing published or released
        url = hbsinks.redis_server(self)
        b = self.start_bridge(wait_ready=False, **dict(conf, **{"redis.url": url}))
        hbsinks.wait_not_ready(self, b, "WAITAOF", "redis.wait_aof", "7.2")
        hbsinks.post_notifications(self, b, "noaof", N, app_id="wsd")
        self.assert_nothing_released(b, "WAITAOF unavailable")
        self.assertEqual(sum(redis_count_ids(url, prefix + ":*").values()), 0,
                         "events published although WAITAOF cannot confirm them")


if __name__ == "__main__":
    unittest.main(verbosity=2)
