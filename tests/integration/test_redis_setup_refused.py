"""Regression (issue 9, item 2): a Redis setup command that the server
refuses (SELECT of a database that does not exist, AUTH with a wrong
password) must stop the sink from publishing anything on that connection.

Before the fix, the XADDs were pipelined behind SELECT/AUTH and ran
whatever the answer: with redis.url = .../99 on a server with 16 databases
every event went to database 0 and its journal record was released; with a
wrong password for an ACL user on a server whose default user needs none,
the events were written as the default user.  Now a refused setup is an
outage: nothing is published, /readyz says why, the records stay in the
journal, and they arrive once the URL is fixed.

Starts private redis-servers on free loopback ports.

Run: python3 tests/integration/test_redis_setup_refused.py
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hbsinks  # noqa: E402
from hbsinks import redis_count_ids, sink_pending, sink_published, wait_until  # noqa: E402
from hbtest import BridgeTestCase  # noqa: E402

N = 5
ALL_DBS = range(16)  # redis-server's default `databases 16`


class RedisSetupRefused(BridgeTestCase):
    secrets_never_logged = BridgeTestCase.secrets_never_logged + ("wrong-pw", "right-pw")

    def assert_held(self, b, url, prefix, why):
        """Nothing in any database, nothing counted as published, every
        record still pending in the journal.  Polls a few seconds: the
        broken code published within milliseconds of the first try."""
        def leaked():
            return (sum(redis_count_ids(url, prefix + ":*", ALL_DBS).values()) or
                    sink_published(b, "redis") != 0)
        self.assertFalse(wait_until(leaked, 5), "%s: events were published anyway: %r\n%s" %
                         (why, dict(redis_count_ids(url, prefix + ":*", ALL_DBS)), b.log_tail()))
        self.assertEqual(sink_pending(b, "redis"), N,
                         "%s: the journal no longer holds the records" % why)

    def assert_arrive_once(self, b, url, prefix, ids, db):
        ok = wait_until(lambda: sink_pending(b, "redis") == 0, 60)
        self.assertTrue(ok, "backlog not published after the URL was fixed (pending %s)\n%s" %
                        (sink_pending(b, "redis"), b.log_tail()))
        counts = redis_count_ids(url, prefix + ":*", [db])
        self.assertEqual(dict(counts), {i.encode(): 1 for i in ids},
                         "each journaled event must arrive exactly once in database %d" % db)
        elsewhere = redis_count_ids(url, prefix + ":*", [d for d in ALL_DBS if d != db])
        self.assertEqual(sum(elsewhere.values()), 0, "events in another database: %r" %
                         dict(elsewhere))

    def test_unselectable_database_publishes_nothing(self):
        url = hbsinks.redis_server(self)
        prefix = hbsinks.unique_prefix()
        conf = {"sinks": "redis", "redis.url": url + "/99", "shutdown.grace_ms": 500,
                "redis.stream": prefix + ":{app_id}:{topic}"}
        b = self.start_bridge(wait_ready=False, **conf)
        hbsinks.wait_not_ready(self, b, "SELECT", "out of range")
        ids = hbsinks.post_notifications(self, b, "db99", N, app_id="wsr")
        self.assert_held(b, url, prefix, "redis.url with database 99")
        # still refused (retried with backoff, not given up)
        hbsinks.wait_not_ready(self, b, "SELECT", "out of range")
        b.restart(**{"redis.url": url + "/3"})
        self.assert_arrive_once(b, url, prefix, ids, 3)

    def test_wrong_password_publishes_nothing(self):
        """An ACL user with a wrong password on a server whose default
        user needs no password: AUTH fails, the connection stays logged in
        as `default`, and before the fix the XADDs went through as it."""
        url = hbsinks.redis_server(self)
        with hbsinks.Redis(url) as r:
            r.cmd("ACL", "SETUSER", "hbuser", "on", ">right-pw", "~*", "+@all")
        prefix = hbsinks.unique_prefix()
        host = url[len("redis://"):]
        conf = {"sinks": "redis", "redis.url": "redis://hbuser:wrong-pw@%s" % host,
                "shutdown.grace_ms": 500, "redis.stream": prefix + ":{app_id}:{topic}"}
        b = self.start_bridge(wait_ready=False, **conf)
        hbsinks.wait_not_ready(self, b, "AUTH", "WRONGPASS")
        ids = hbsinks.post_notifications(self, b, "pw", N, app_id="wsr")
        self.assert_held(b, url, prefix, "a wrong password")
        b.restart(**{"redis.url": "redis://hbuser:right-pw@%s/0" % host})
        self.assert_arrive_once(b, url, prefix, ids, 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
