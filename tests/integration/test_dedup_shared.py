#!/usr/bin/env python3
"""Dedup shared by replicas: dedup.store = redis (issue 13).

Two bridges with their own journals, ports and file sinks share one Redis.
An id made durable by A is claimed in Redis (SET NX PX dedup.window), so its
retry on B is answered 200 duplicate and only A publishes it. With Redis
gone, both still answer 200 and publish (the local set alone decides: at
least once across replicas), the fallback is counted, and once Redis is
back the replicas share again without a restart. A Redis that answers
nothing (paused) is not waited for beyond dedup.redis.timeout_ms, and a
connection whose replies stay overdue is replaced.

Needs redis-server (private servers, started and stopped by the test).
"""

import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import hbsinks
import hbtest
from hbtest import BridgeTestCase, notification, scaled

PASSWORD = "dedup-shared-redis-pw"


def back(log):
    """The log says a worker's connection to the shared store works again."""
    return re.search(r"shared dedup store at \S+ is back", log) is not None


def metric(b, name, **labels):
    return hbtest.metric_sum(b.metrics(), name, **labels)


class DedupShared(BridgeTestCase):

    def start_pair(self, url, prefix, **extra):
        cfg = {"dedup.store": "redis", "dedup.redis.url": url,
               "dedup.redis.prefix": prefix, "shutdown.grace_ms": 1000}
        cfg.update(extra)
        return self.start_bridge(**cfg), self.start_bridge(**cfg)

    def post(self, b, body, want_status, what):
        st, _, data = b.post_signed(body, timeout=60)
        self.assertEqual(st, 200, "%s: %d %r\n%s" % (what, st, data, b.log_tail()))
        self.assertJsonBody(data, "status", want_status, what)

    def wait_claim(self, r, key, b, timeout=30.0):
        """The value of `key` once a claim put it there (claims follow the
        answer by moments: they are sent without waiting)."""
        v = hbsinks.wait_until(lambda: r.cmd("GET", key), timeout, 0.05)
        self.assertIsNotNone(v, "no claim %r in Redis within %.0fs\n%s" %
                             (key, scaled(timeout), b.log_tail()))
        return v

    def ids_in(self, b):
        return [e.get("id") for e in b.events()]

    def test_retry_on_another_replica_is_a_duplicate(self):
        # AUTH and SELECT on the way: a password and database 3
        plain = hbsinks.redis_server(self, "--requirepass", PASSWORD, password=PASSWORD)
        url = plain.replace("redis://", "redis://:%s@" % PASSWORD) + "/3"
        prefix = "hb:%s:" % hbsinks.unique_prefix()
        a, b = self.start_pair(url, prefix)
        r = hbsinks.Redis(plain)
        self.addCleanup(r.close)
        r.cmd("AUTH", PASSWORD)
        r.cmd("SELECT", 3)

        nid = "n-" + prefix
        body = notification(nid)
        self.post(a, body, "accepted", "first delivery, to A")
        key = prefix + "intercom:" + nid
        owner = self.wait_claim(r, key, a).decode()
        self.assertIn("127.0.0.1:%d" % a.port, owner, "the claim names the replica")
        pttl = r.cmd("PTTL", key)
        self.assertTrue(0 < pttl <= 24 * 3600 * 1000, "claim expires with dedup.window: %d" % pttl)

        self.post(b, body, "duplicate", "Intercom's retry, to B")
        self.assertTrue(b.wait_log(lambda t: ("notification %s already received by replica %s"
                                              % (nid, owner)) in t, 10),
                        "B logs the shared duplicate with the replica\n%s" % b.log_tail())
        self.assertEqual(metric(b, "hookbridge_dedup_shared_hits_total"), 1)
        self.assertEqual(metric(b, "hookbridge_duplicates_total"), 1)
        # the local set stays the fast path: A answers its own retry itself
        checks_a = metric(a, "hookbridge_dedup_shared_checks_total")
        self.post(a, body, "duplicate", "retry, to A")
        self.assertEqual(metric(a, "hookbridge_dedup_shared_checks_total"), checks_a)

        # B publishes what it accepts, and never the duplicate
        other = "o-" + prefix
        self.post(b, notification(other), "accepted", "another id, to B")
        b.wait_ids([other])
        a.wait_ids([nid])
        self.assertNotIn(nid, self.ids_in(b), "B published the duplicate")
        self.assertEqual(self.ids_in(a).count(nid), 1)
        # the claim's reply may come after the event reached the file sink
        self.assertTrue(hbsinks.wait_until(
            lambda: metric(b, "hookbridge_dedup_shared_claims_total", result="claimed") == 1, 30),
            "B's claim of its own id\n%s" % b.log_tail())

        # the same id on another route is another notification
        same = "s-" + prefix
        r.cmd("SET", prefix + "github:" + same, "elsewhere")
        self.post(a, notification(same), "accepted", "id claimed on another route only")
        self.assertEqual(metric(a, "hookbridge_dedup_shared_unavailable_total", op="check"), 0)
        for br in (a, b):
            self.assertNotIn(PASSWORD, br.log_text(), "the Redis password reached the log")

    def test_redis_down_falls_back_to_local_and_recovers(self):
        tmp = tempfile.mkdtemp(prefix="hbtest-svc-")
        self.addCleanup(shutil.rmtree, tmp, True)
        redis = hbsinks.PrivateService(self, "redis", os.path.join(tmp, "redis"))
        url = redis.start()
        prefix = "hb:%s:" % hbsinks.unique_prefix()
        a, b = self.start_pair(url, prefix)
        r = hbsinks.Redis(url)
        self.addCleanup(r.close)

        redis.stop(keep_data=True)  # the port has nothing listening now
        for br in (a, b):  # both workers saw their connection go (no race with the posts)
            self.assertTrue(br.wait_log(
                lambda t: t.count("deduplicating with the local set alone") >= 2, 30),
                br.log_tail())
        ids = ["down-%d-%s" % (i, prefix) for i in range(5)]
        for nid in ids:
            self.post(a, notification(nid), "accepted", "Redis down, to A")
        # at least once across replicas: B cannot know, so it publishes too
        self.post(b, notification(ids[0]), "accepted", "Redis down, retry to B")
        a.wait_ids(ids)
        b.wait_ids(ids[:1])
        self.assertGreaterEqual(metric(a, "hookbridge_dedup_shared_unavailable_total",
                                       op="check"), len(ids))
        self.assertGreaterEqual(metric(a, "hookbridge_dedup_shared_unavailable_total",
                                       op="claim"), len(ids))
        a.wait_readyz(200)  # the shared store is not a condition for accepting

        redis.start()
        # reconnected with backoff, without a restart: a new id on A is
        # claimed again, and its retry on B is a duplicate
        key = None
        deadline = time.monotonic() + scaled(60)
        n = 0
        while time.monotonic() < deadline:
            nid = "up-%d-%s" % (n, prefix)
            n += 1
            self.post(a, notification(nid), "accepted", "Redis back, to A")
            if hbsinks.wait_until(lambda: r.cmd("GET", prefix + "intercom:" + nid), 1, 0.05):
                key = nid
                break
        self.assertIsNotNone(key, "no claim reached Redis within 60 s of its return\n%s" %
                             a.log_tail())
        # B's workers reconnect on their own backoff (up to 5 s): its retry is
        # only checked against Redis once each of its connections is back
        self.assertTrue(b.wait_log(
            lambda t: len(re.findall(r"shared dedup store at \S+ is back", t)) >=
            t.count("deduplicating with the local set alone"), 30), b.log_tail())
        self.post(b, notification(key), "duplicate", "Redis back, retry to B")
        self.assertTrue(a.wait_log(back, 10), a.log_tail())
        r.close()

    def test_late_redis_is_not_waited_for(self):
        """Redis that answers nothing (CLIENT PAUSE): each check gives up after
        dedup.redis.timeout_ms and the delivery is accepted; a connection
        whose replies stay overdue is dropped and made again. The URL names
        the host (localhost): resolved on the loop, without blocking it."""
        url = hbsinks.redis_server(self)
        prefix = "hb:%s:" % hbsinks.unique_prefix()
        a = self.start_bridge(**{"dedup.store": "redis", "shutdown.grace_ms": 1000,
                                 "dedup.redis.url": url.replace("127.0.0.1", "localhost"),
                                 "dedup.redis.prefix": prefix, "workers": 1})
        r = hbsinks.Redis(url)
        self.addCleanup(r.close)
        first = "first-" + prefix
        self.post(a, notification(first), "accepted", "Redis up")
        self.wait_claim(r, prefix + "intercom:" + first, a)

        r.cmd("CLIENT", "PAUSE", int(scaled(8000)), "ALL")
        n = 0
        deadline = time.monotonic() + scaled(60)
        # keep delivering until the worker gave up on its connection
        while time.monotonic() < deadline:
            self.post(a, notification("paused-%d-%s" % (n, prefix)), "accepted", "Redis paused")
            n += 1
            if "dropping the connection" in a.log_text():
                break
            time.sleep(0.3)
        self.assertIn("dropping the connection", a.log_text(), a.log_tail())
        self.assertTrue(a.wait_log(lambda t: "(dedup.redis.timeout_ms)" in t, 10), a.log_tail())
        self.assertGreaterEqual(metric(a, "hookbridge_dedup_shared_unavailable_total",
                                       op="check"), 2)
        a.wait_ids([first] + ["paused-%d-%s" % (i, prefix) for i in range(n)])

        # after the pause, checks and claims work again on a new connection
        self.assertTrue(a.wait_log(back, 60), a.log_tail())
        self.post(a, notification(first), "duplicate", "the local set still answers first")
        later = "later-" + prefix
        self.post(a, notification(later), "accepted", "after the pause")
        self.wait_claim(r, prefix + "intercom:" + later, a)

    def test_claim_race_is_counted(self):
        """Two replicas accept one id at the same moment: both checks miss,
        both publish (at least once), and the second claim finds the key
        taken, which is counted, not an error. CLIENT PAUSE WRITE holds the
        claims (SET) while the checks (GET) still run."""
        url = hbsinks.redis_server(self)
        prefix = "hb:%s:" % hbsinks.unique_prefix()
        a, b = self.start_pair(url, prefix)
        r = hbsinks.Redis(url)
        self.addCleanup(r.close)
        nid = "race-" + prefix
        r.cmd("CLIENT", "PAUSE", int(scaled(3000)), "WRITE")
        self.post(a, notification(nid), "accepted", "to A, claim held")
        self.post(b, notification(nid), "accepted", "to B, A's claim not made yet")

        def claims(result):
            return sum(metric(x, "hookbridge_dedup_shared_claims_total", result=result)
                       for x in (a, b))
        self.assertTrue(hbsinks.wait_until(lambda: claims("claimed") + claims("taken") == 2, 30),
                        "both claims answered after the pause\n%s" % b.log_tail())
        self.assertEqual((claims("claimed"), claims("taken")), (1, 1))
        self.assertIsNotNone(r.cmd("GET", prefix + "intercom:" + nid))
        a.wait_ids([nid])
        b.wait_ids([nid])
        self.assertEqual(metric(a, "hookbridge_dedup_shared_unavailable_total", op="claim") +
                         metric(b, "hookbridge_dedup_shared_unavailable_total", op="claim"), 0)

    def test_sigterm_while_a_check_waits(self):
        """A delivery waiting for Redis's answer when the grace period ends is
        released, never answered, and the bridge exits 0 (under the sanitizer
        build: without a leak or a use after free)."""
        url = hbsinks.redis_server(self)
        prefix = "hb:%s:" % hbsinks.unique_prefix()
        a = self.start_bridge(**{"dedup.store": "redis", "dedup.redis.url": url,
                                 "dedup.redis.prefix": prefix, "dedup.redis.timeout_ms": 60000,
                                 "shutdown.grace_ms": 0, "workers": 1})
        first = "first-" + prefix
        r = hbsinks.Redis(url)
        self.addCleanup(r.close)
        self.post(a, notification(first), "accepted", "Redis up")  # connected
        r.cmd("CLIENT", "PAUSE", int(scaled(20000)), "ALL")
        out = []
        t = threading.Thread(target=lambda: out.append(self.try_post(a, "waiting-" + prefix)))
        t.start()
        self.assertTrue(hbsinks.wait_until(
            lambda: metric(a, "hookbridge_dedup_shared_checks_total") >= 2, 30),
            "the second check was never asked")
        self.assertEqual(a.stop(), 0, a.log_tail())
        t.join(scaled(30))
        self.assertEqual(out, [None], "the waiting delivery got no answer")
        self.assertNotIn("waiting-" + prefix, self.ids_in(a))

    def fake_server(self, on_accept):
        """A loopback port whose connections are given to on_accept (a
        stand-in for a broken Redis or proxy); returns the port."""
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(64)
        self.addCleanup(srv.close)

        def serve():
            while True:
                try:
                    c, _ = srv.accept()
                except OSError:
                    return
                on_accept(c)
        threading.Thread(target=serve, daemon=True).start()
        return srv.getsockname()[1]

    def test_reconnect_storm_when_closed_on_connect(self):
        """Regression: a server that accepts and closes at once (haproxy with
        no Redis behind it, or Redis at maxclients) was taken for a working
        store as soon as TCP connected: the backoff was reset on every
        connection, so each worker reconnected every 100 ms forever and
        logged "lost" and "is back" each time. A connection counts as
        working once Redis answered on it (PING)."""
        accepted = []
        url = "redis://127.0.0.1:%d" % self.fake_server(lambda c: (accepted.append(c), c.close()))
        a = self.start_bridge(**{"dedup.store": "redis", "dedup.redis.url": url,
                                 "dedup.redis.prefix": "hb:storm:", "workers": 1})
        self.assertTrue(hbsinks.wait_until(lambda: len(accepted) >= 6, 60),
                        "the worker stopped reconnecting (%d)\n%s" % (len(accepted), a.log_tail()))
        self.post(a, notification("storm-1"), "accepted", "no shared store: the local set")
        log = a.log_text()
        self.assertFalse(back(log), "a connection closed unanswered was taken as working\n%s"
                         % a.log_tail())
        self.assertEqual(log.count("deduplicating with the local set alone"), 1,
                         "one outage, logged once\n%s" % a.log_tail())

    def test_setup_never_answered_is_retried(self):
        """Regression: a server that accepts and then answers nothing (a
        half-open connection, a hung proxy) while AUTH is outstanding left
        the worker on that connection for good: not ready, so no check was
        sent and no timer ran to drop it. Now an unanswered setup is dropped
        like an overdue reply, and connecting starts again."""
        held = []  # read nothing, answer nothing, close nothing
        self.addCleanup(lambda: [c.close() for c in held])
        url = "redis://:%s@127.0.0.1:%d" % (PASSWORD, self.fake_server(held.append))
        a = self.start_bridge(**{"dedup.store": "redis", "dedup.redis.url": url,
                                 "dedup.redis.prefix": "hb:silent:", "workers": 1})
        self.post(a, notification("silent-1"), "accepted", "setup unanswered: the local set")
        self.assertTrue(hbsinks.wait_until(lambda: len(held) >= 2, 60),
                        "the unanswered connection was never replaced\n%s" % a.log_tail())
        self.post(a, notification("silent-2"), "accepted", "still the local set")
        self.assertNotIn(PASSWORD, a.log_text(), "the Redis password reached the log")

    @staticmethod
    def try_post(b, nid):
        try:
            return b.post_signed(notification(nid), timeout=60)[0]
        except (OSError, hbtest.http.client.HTTPException, hbtest.BridgeDied):
            # BridgeDied: the client saw the connection close after the
            # bridge had exited (the exit is what the test asks for)
            return None


class DedupSharedConfig(unittest.TestCase):

    def check(self, env):
        e = {k: v for k, v in os.environ.items() if not k.startswith("HOOKBRIDGE_")}
        e.update({"HOOKBRIDGE_INTERCOM_SECRET": "x"}, **env)
        p = subprocess.run([hbtest.require_binary(), "--check-config"], env=e,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        return p.returncode, p.stdout.decode()

    def test_store_redis_needs_a_url(self):
        rc, out = self.check({"HOOKBRIDGE_DEDUP_STORE": "redis"})
        self.assertEqual(rc, 1, out)
        self.assertIn("dedup.redis.url", out)
        # redis.url is the default
        rc, out = self.check({"HOOKBRIDGE_DEDUP_STORE": "redis",
                              "HOOKBRIDGE_REDIS_URL": "redis://127.0.0.1:1"})
        self.assertEqual(rc, 0, out)
        rc, out = self.check({"HOOKBRIDGE_DEDUP_STORE": "redis", "HOOKBRIDGE_DEDUP": "off",
                              "HOOKBRIDGE_DEDUP_REDIS_URL": "redis://127.0.0.1:1"})
        self.assertEqual(rc, 1, out)
        self.assertIn("dedup = on", out)
        rc, out = self.check({"HOOKBRIDGE_DEDUP_STORE": "memcached"})
        self.assertEqual(rc, 1, out)
        self.assertIn("dedup.store", out)


if __name__ == "__main__":
    unittest.main()
