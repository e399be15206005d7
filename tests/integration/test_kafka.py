"""Kafka sink against a real broker: what a message looks like (DESIGN.md
section 2), several sinks at once, and ack = published.

Needs $KAFKA_BROKERS (and $REDIS_URL for the three-sink test) and kcat;
without them the tests fail, or skip with HB_ALLOW_SKIP=1.

Run: python3 tests/integration/test_kafka.py
 or: python3 -m unittest -v tests/integration/test_kafka.py
"""

import datetime
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hbsinks  # noqa: E402
import hbtest  # noqa: E402
from hbsinks import kafka_topic_name, redis_key_name  # noqa: E402
from hbtest import RFC3339_MS_UTC, BridgeTestCase, notification  # noqa: E402


def parse_rfc3339_ms(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


class KafkaSinkCase(BridgeTestCase):

    def setUp(self):
        self.brokers = hbsinks.require_service(self, "KAFKA_BROKERS")
        hbsinks.require_kcat(self)
        self.prefix = hbsinks.unique_prefix()

    def kafka_conf(self, **kw):
        conf = {"sinks": "kafka", "kafka.brokers": self.brokers,
                "kafka.topic": self.prefix + ".{topic}"}
        conf.update(kw)
        return conf

    def expected_topic(self, topic):
        return kafka_topic_name(self.prefix + "." + topic)

    def check_message(self, m, body, t0, t1, what):
        """m carries body per the contract."""
        ev = json.loads(body)
        app_id, nid, topic = ev.get("app_id"), ev.get("id"), ev["topic"]
        self.assertEqual(m.value, body, "%s: value is not the posted body byte for byte" % what)
        self.assertEqual(m.key, (app_id or "_").encode(), "%s: key" % what)
        names = [k for k, _ in m.headers]
        self.assertEqual(len(names), len(set(names)), "%s: repeated header in %r" %
                         (what, m.headers))
        h = dict(m.headers)
        self.assertEqual(h.get("intercom-topic"), topic, "%s: intercom-topic (%r)" %
                         (what, m.headers))
        if app_id:
            self.assertEqual(h.get("intercom-app-id"), app_id, "%s: intercom-app-id (%r)" %
                             (what, m.headers))
        else:
            self.assertIn(h.get("intercom-app-id", ""), ("", "_"),
                          "%s: intercom-app-id for a missing app_id (%r)" % (what, m.headers))
        if nid is not None:
            self.assertEqual(h.get("intercom-notification-id"), nid,
                             "%s: intercom-notification-id (%r)" % (what, m.headers))
        else:
            self.assertIn(h.get("intercom-notification-id", ""), ("",),
                          "%s: intercom-notification-id for id null (%r)" % (what, m.headers))
        if ev.get("delivery_attempts") is not None:
            self.assertEqual(h.get("intercom-delivery-attempts"),
                             str(ev["delivery_attempts"]),
                             "%s: intercom-delivery-attempts (%r)" % (what, m.headers))
        else:
            self.assertNotIn("intercom-delivery-attempts", h,
                             "%s: intercom-delivery-attempts without delivery_attempts" % what)
        self.assertEqual(h.get("content-type"), "application/json", "%s: content-type" % what)
        ra = h.get("hookbridge-received-at")
        self.assertIsNotNone(ra, "%s: no hookbridge-received-at header (%r)" % (what, m.headers))
        self.assertRegex(ra, RFC3339_MS_UTC, "%s: hookbridge-received-at" % what)
        # same clock as ours: between just before the post and just after the 200
        self.assertTrue(t0 - 2.0 <= parse_rfc3339_ms(ra) <= t1 + 2.0,
                        "%s: hookbridge-received-at %s is not the time of the post "
                        "(%.3f..%.3f)" % (what, ra, t0, t1))

    def post_samples(self, b):
        """Post every sample with its signature from signatures.tsv; ->
        [(name, body, t_before, t_after)]."""
        out = []
        for name, body, sig, secret in hbtest.load_samples():
            self.assertEqual(secret, hbtest.SECRET)
            t0 = time.time()
            self.assertAccepted(b.post(body, sig), name)
            out.append((name, body, t0, time.time()))
        return out

    def check_kafka_samples(self, posted):
        by_topic = {}
        for item in posted:
            by_topic.setdefault(self.expected_topic(json.loads(item[1])["topic"]), []).append(item)
        got = hbsinks.kafka_wait(
            self.brokers, list(by_topic),
            lambda g: all(len(g[t]) >= len(v) for t, v in by_topic.items()),
            timeout=60, what="every sample published")
        for t, items in by_topic.items():
            msgs = got[t]
            self.assertEqual(len(msgs), len(items), "topic %s: %d messages, want %d" %
                             (t, len(msgs), len(items)))
            for name, body, t0, t1 in items:
                same = [m for m in msgs if m.value == body]
                if len(same) != 1:
                    self.fail("topic %s: %d messages carry the body of %s byte for byte "
                              "(want 1); values there: %r" %
                              (t, len(same), name, [m.value[:120] for m in msgs]))
                self.check_message(same[0], body, t0, t1, "%s -> %s" % (name, t))
        return got

    # ---------------------------------------------------------------- tests

    def test_samples_published_to_kafka(self):
        b = self.start_bridge(**self.kafka_conf())
        posted = self.post_samples(b)
        self.check_kafka_samples(posted)
        # and the metric agrees (bounded poll: the counter follows the report)
        n = hbsinks.wait_until(lambda: hbsinks.sink_published(b, "kafka") >= len(posted), 30)
        self.assertTrue(n, "hookbridge_sink_published_total{sink=\"kafka\"} < %d: %s" %
                        (len(posted), hbsinks.sink_published(b, "kafka")))
        # The producer's own settings are not reported as a problem: librdkafka
        # calls enable.gapless.guarantee experimental, and we set it on purpose.
        warned = [line for line in b.log_text().splitlines()
                  if "gapless" in line and (" warn " in line or " error " in line)]
        self.assertEqual(warned, [], "a warning at every start about our own setting")

    def test_topic_sanitised_and_missing_app_id(self):
        b = self.start_bridge(**self.kafka_conf())
        bodies = [
            # topic with characters a Kafka topic cannot hold
            notification("notif_san_1", topic="odd topic/with:chars+", app_id="wsA"),
            # app_id missing -> key "_"
            json.dumps({"type": "notification_event", "topic": "contact.created",
                        "id": "notif_san_2", "data": {"item": {"type": "contact"}}}).encode(),
            # app_id null -> key "_"; no delivery_attempts
            json.dumps({"type": "notification_event", "topic": "contact.created",
                        "app_id": None, "id": "notif_san_3"}).encode(),
        ]
        posted = []
        for body in bodies:
            t0 = time.time()
            self.assertAccepted(b.post_signed(body), body[:80])
            posted.append(("custom", body, t0, time.time()))
        self.assertEqual(self.expected_topic(json.loads(bodies[0])["topic"]),
                         self.prefix + ".odd_topic_with_chars_")
        self.check_kafka_samples(posted)

    def test_kafka_redis_and_file_sinks_together(self):
        redis_url = hbsinks.require_service(self, "REDIS_URL")
        b = self.start_bridge(**self.kafka_conf(**{
            "sinks": "kafka,redis,file", "redis.url": redis_url,
            "redis.stream": self.prefix + ":{app_id}:{topic}"}))
        posted = self.post_samples(b)
        # file
        b.wait_events(count=len(posted), timeout=30)
        raw = b.events_raw()
        self.assertEqual(len(raw), len(posted), "file sink: %d lines for %d posts" %
                         (len(raw), len(posted)))
        for name, body, _, _ in posted:
            want = json.loads(body)
            line = [(l, o) for l, o in raw if o["payload"] == want]
            self.assertEqual(len(line), 1, "file sink: %s appears %d times" % (name, len(line)))
            hbtest.check_sink_line(self, line[0][0], line[0][1], body, "file sink %s:" % name)
        # kafka
        self.check_kafka_samples(posted)
        # redis
        r = hbsinks.Redis(redis_url)
        self.addCleanup(r.close)
        want = {}
        for name, body, _, _ in posted:
            ev = json.loads(body)
            key = redis_key_name("%s:%s:%s" % (self.prefix, ev.get("app_id") or "_", ev["topic"]))
            want.setdefault(key, []).append(body)

        def redis_done():
            return all(r.cmd("XLEN", k) >= len(v) for k, v in want.items())
        self.assertTrue(hbsinks.wait_until(redis_done, 30),
                        "Redis: not every stream filled within 30s: %s" %
                        {k: r.cmd("XLEN", k) for k in want})
        for k, bodies in want.items():
            entries = r.xrange_all(k)
            self.assertEqual(sorted(dict(zip(f[0::2], f[1::2]))[b"payload"] for _, f in entries),
                             sorted(bodies), "Redis stream %r payloads" % k)
        # every sink counted every event
        for sink in ("kafka", "redis", "file"):
            self.assertTrue(hbsinks.wait_until(
                lambda: hbsinks.sink_published(b, sink) >= len(posted), 30),
                "hookbridge_sink_published_total{sink=%r} = %s, want %d" %
                (sink, hbsinks.sink_published(b, sink), len(posted)))

    def test_ack_published_means_in_kafka(self):
        """ack = published: the 200 comes only after the broker acknowledged
        the record, so one read right after the answer must find it (no
        polling here on purpose)."""
        b = self.start_bridge(**self.kafka_conf(ack="published"))
        topic = self.expected_topic("contact.created")
        # first post creates the topic; later ones go to an existing topic
        for i in range(8):
            nid = "notif_ackpub_%d_%s" % (i, self.prefix)
            body = notification(nid, app_id="ws%d" % (i % 3))
            self.assertAccepted(b.post_signed(body, timeout=60), nid)
            published = hbsinks.sink_published(b, "kafka")
            self.assertGreaterEqual(published, i + 1,
                                    "answered 200 for post %d but the kafka sink has published "
                                    "only %s" % (i + 1, published))
            msgs = hbsinks.kafka_consume(self.brokers, topic)
            ids = [dict(m.headers).get("intercom-notification-id") for m in msgs]
            self.assertIn(nid, ids, "ack = published answered 200 but %s is not in Kafka "
                          "topic %s (read right after the answer; %d messages there)\n%s" %
                          (nid, topic, len(msgs), b.log_tail()))
            self.assertEqual(ids.count(nid), 1, "%s published %d times" % (nid, ids.count(nid)))
            m = msgs[ids.index(nid)]
            self.assertEqual(m.value, body)
            self.assertEqual(m.key, ("ws%d" % (i % 3)).encode())


if __name__ == "__main__":
    hbtest.main()
