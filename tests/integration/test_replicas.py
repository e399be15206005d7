#!/usr/bin/env python3
"""Three replicas behind haproxy, one Kafka, shared dedup (issue 13).

Three bridges, each with its own journal, ports and dedup.store = redis on
one private Redis, publish to the suite's Kafka ($KAFKA_BROKERS). haproxy
(Debian's package) balances round robin in front of them with TLS passing
through (mode tcp), with the configuration of the README's "Behind
haproxy", read from README.md itself so the two cannot drift.

1. One notification sent to each replica directly (Intercom retrying on
   another replica) is published once.
2. N distinct notifications through haproxy from a few client threads, a
   new connection each (so round robin spreads them), an id retried until
   it gets a 200 (as Intercom does); one replica killed with kill -9 midway
   and restarted on its own journal. Every id answered 200 is in Kafka; an
   id is there twice only if a client retried it, or if it was in the killed
   replica's journal when it died (published again after the restart).

Needs $KAFKA_BROKERS, kcat, redis-server and haproxy; without them the test
fails, or skips with HB_ALLOW_SKIP=1.
"""

import collections
import http.client
import json
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
from hbtest import BridgeTestCase, notification, scaled, sign

N = int(os.environ.get("HB_REPLICAS_N", "1000"))
THREADS = 4


def readme_haproxy_config():
    """The ```haproxy block of README.md."""
    with open(os.path.join(hbtest.REPO, "README.md"), encoding="utf-8") as f:
        m = re.search(r"```haproxy\n(.*?)```", f.read(), re.S)
    if not m:
        raise AssertionError("README.md has no ```haproxy block (Scaling out)")
    return m.group(1)


def haproxy_config(listen_port, replicas):
    """The README's configuration with the test's loopback addresses."""
    text = readme_haproxy_config()
    text, n = re.subn(r"(?m)^(\s*bind )\S+$", r"\g<1>127.0.0.1:%d" % listen_port, text)
    if n != 1:
        raise AssertionError("README haproxy block: expected one bind line")
    servers = iter(replicas)

    def server(m):
        b = next(servers)
        return "%s%s 127.0.0.1:%d check port %d" % (m.group(1), m.group(2), b.port,
                                                   b.admin_port)
    text, n = re.subn(r"(?m)^(\s*server )(\S+) \S+ check port \d+$", server, text)
    if n != len(replicas):
        raise AssertionError("README haproxy block: %d server lines for %d replicas" %
                             (n, len(replicas)))
    return text


class Client(threading.Thread):
    """Posts ids from a shared list through haproxy, a new TLS connection
    for each request; an id that gets no 200 is retried (up to `tries`)."""

    def __init__(self, port, work, lock, done, tries=60):
        super().__init__(daemon=True)
        self.port, self.work, self.lock, self.done, self.tries = port, work, lock, done, tries
        self.attempts = collections.defaultdict(list)  # id -> [status or None]

    def post(self, nid):
        body = notification(nid, app_id="ws%d" % (hash(nid) % 7))
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=scaled(30),
                                           context=hbtest.client_ssl_context())
        try:
            conn.request("POST", hbtest.INTERCOM_PATH, body=body, headers={
                "Content-Type": "application/json", "X-Hub-Signature": sign(body)})
            resp = conn.getresponse()
            data = resp.read()
            if resp.status == 200 and json.loads(data).get("status") not in (
                    "accepted", "duplicate"):
                return -1
            return resp.status
        except (OSError, http.client.HTTPException, ValueError):
            return None
        finally:
            conn.close()

    def run(self):
        while True:
            with self.lock:
                if not self.work:
                    return
                nid = self.work.pop()
            for _ in range(self.tries):
                st = self.post(nid)
                self.attempts[nid].append(st)
                if st == 200:
                    break
                time.sleep(0.2)
            with self.lock:
                self.done[0] += 1


class Replicas(BridgeTestCase):

    def setUp(self):
        self.brokers = hbsinks.require_service(self, "KAFKA_BROKERS")
        hbsinks.require_kcat(self)
        self.haproxy_bin = shutil.which("haproxy") or (
            os.path.exists("/usr/sbin/haproxy") and "/usr/sbin/haproxy")
        if not self.haproxy_bin:
            hbsinks.fail_or_skip(self, "haproxy not found: install Debian's haproxy package "
                                 "(scripts/install-deps.sh --test)")
        self.prefix = hbsinks.unique_prefix()
        self.redis_url = hbsinks.redis_server(self)
        self.topic = hbsinks.kafka_topic_name(self.prefix + ".contact.created")

    def start_haproxy(self, replicas):
        tmp = tempfile.mkdtemp(prefix="hbtest-haproxy-")
        self.addCleanup(shutil.rmtree, tmp, True)
        port = hbtest.free_port()
        cfg = os.path.join(tmp, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(haproxy_config(port, replicas))
        p = hbsinks.background(self, [self.haproxy_bin, "-db", "-f", cfg],
                               os.path.join(tmp, "haproxy.log"))

        def up():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                return True
            except OSError:
                return p.poll() is not None
        hbsinks.wait_until(up, 20)
        if p.poll() is not None:
            with open(os.path.join(tmp, "haproxy.log"), "rb") as f:
                self.fail("haproxy exited (%s):\n%s" % (p.returncode, f.read()[-2000:]))
        return port

    def kafka_counts(self, want, timeout=120):
        """{id: messages} of the topic once every id of `want` is there."""
        msgs, missing = hbsinks.kafka_wait_ids(self.brokers, self.topic, want, timeout)
        return collections.Counter(dict(m.headers).get("intercom-notification-id")
                                   for m in msgs), missing

    def journal_ids(self, b):
        """Ids of the records in b's journal (read offline: b is not running)."""
        p = subprocess.run([hbtest.bin_path(), "journal", "cat", "--dir",
                            b.config["journal.dir"]], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=scaled(60))
        self.assertEqual(p.returncode, 0, p.stderr.decode()[-1000:])
        return {json.loads(line).get("id") for line in p.stdout.splitlines() if line.strip()}

    def test_three_replicas_behind_haproxy(self):
        conf = {"sinks": "kafka", "kafka.brokers": self.brokers,
                "kafka.topic": self.prefix + ".{topic}", "dedup.store": "redis",
                "dedup.redis.url": self.redis_url, "shutdown.grace_ms": 2000}
        replicas = [self.start_bridge(**conf) for _ in range(3)]
        port = self.start_haproxy(replicas)
        with hbsinks.Redis(self.redis_url) as r:
            # 1. Intercom retries one notification on each replica in turn;
            # a retry comes seconds later, the claim moments after the 200
            nid = "same-" + self.prefix
            body = notification(nid)
            for i, b in enumerate(replicas):
                st, _, data = b.post_signed(body, timeout=60)
                self.assertEqual(st, 200, data)
                self.assertJsonBody(data, "status", "accepted" if i == 0 else "duplicate",
                                    "replica %d" % i)
                if i == 0:
                    self.assertTrue(hbsinks.wait_until(
                        lambda: r.cmd("EXISTS", "hookbridge:dedup:intercom:" + nid), 30, 0.05),
                        "no claim in Redis\n%s" % b.log_tail())

        # 2. load through haproxy, one replica killed midway
        ids = ["load-%d-%s" % (i, self.prefix) for i in range(N)]
        work, lock, done = list(reversed(ids)), threading.Lock(), [0]
        clients = [Client(port, work, lock, done) for _ in range(THREADS)]
        for c in clients:
            c.start()
        self.assertTrue(hbsinks.wait_until(lambda: done[0] >= N // 3, 120, 0.02),
                        "a third of the load was not answered within 120 s")
        victim = replicas[1]
        victim.kill9()
        in_journal = self.journal_ids(victim)
        victim.restart(new_ports=False)  # its own journal, the ports haproxy knows
        for c in clients:
            c.join(scaled(180))
            self.assertFalse(c.is_alive(), "a client still runs after 180 s")

        attempts = {}
        for c in clients:
            attempts.update(c.attempts)
        acked = {i for i, a in attempts.items() if a and a[-1] == 200}
        retried = {i for i, a in attempts.items() if len(a) > 1}
        self.assertEqual(set(ids) - acked, set(), "ids never answered 200 despite retries")
        counts, missing = self.kafka_counts(acked | {nid})
        self.assertEqual(missing, set(), "answered 200, not in Kafka: %s" % sorted(missing)[:10])
        self.assertEqual(counts[nid], 1, "the notification sent to every replica")
        dups = {i for i, c in counts.items() if c > 1}
        unexplained = dups - retried - in_journal
        self.assertEqual(unexplained, set(), "published twice, neither retried nor in the "
                         "killed replica's journal: %s" % sorted(unexplained)[:10])
        self.assertEqual(set(counts) - set(ids) - {nid}, set(), "ids nobody sent")
        served = [hbtest.metric_sum(b.metrics(), "hookbridge_requests_total", status="200")
                  for b in replicas]
        self.assertTrue(all(n > 0 for n in served[::2]), "round robin: %s" % served)
        print("\nreplicas: %d ids, %d retried, %d in the killed replica's journal, %d published "
              "twice, requests per replica %s" % (len(ids), len(retried), len(in_journal),
                                                  len(dups), served), flush=True)


if __name__ == "__main__":
    unittest.main()
