"""Kafka with topic auto-creation off: a missing topic is a clear error in
the log and in /readyz (never a silent drop), the record is retried a few
times and then dead-lettered, and the records behind it are not held up.

Uses a private broker started with KAFKA_AUTO_CREATE=false.

Run: python3 tests/integration/test_kafka_topics.py
"""

import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hbsinks  # noqa: E402
from hbsinks import PrivateService, kafka_wait_ids, wait_until, readyz  # noqa: E402
from hbtest import BridgeTestCase, notification  # noqa: E402


class MissingTopic(BridgeTestCase):
    def test_missing_topic_is_reported_then_dead_lettered(self):
        hbsinks.require_kcat(self)
        os.environ["KAFKA_AUTO_CREATE"] = "false"
        self.addCleanup(os.environ.pop, "KAFKA_AUTO_CREATE", None)
        tmp = tempfile.mkdtemp(prefix="hbtest-ktopics-")
        kafka = PrivateService(self, "kafka", os.path.join(tmp, "kafka"))
        brokers = kafka.start()
        prefix = hbsinks.unique_prefix()
        good, dlq = prefix + ".good", prefix + ".dlq"
        for t in (good, dlq):
            env = dict(os.environ, HB_KAFKA_DIR=kafka.dir)
            subprocess.run([kafka.script, "topics", "--create", "--topic", t,
                            "--partitions", "1"], env=env, check=True,
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=120)

        # {topic} routes "contact.created" to <prefix>.good (exists) and
        # "contact.missing" to a topic that does not exist
        b = self.start_bridge(**{
            "sinks": "kafka",
            "kafka.brokers": brokers,
            "kafka.topic": prefix + ".{topic}",
            "kafka.dead_letter_topic": dlq,
            "kafka.message.timeout.ms": "20000",
            "kafka.topic.metadata.propagation.max.ms": "500",
        })
        st, _, body = b.post_signed(notification("n_missing", topic="missing"))
        self.assertEqual(st, 200, body)

        # /readyz names the problem while the record is being retried
        seen = []

        def says_missing():
            st, text = readyz(b)
            seen.append((st, text))
            return st == 503 and "does not exist" in text
        self.assertTrue(wait_until(says_missing, 60),
                        "/readyz never reported the missing topic; last: %r\n%s" %
                        (seen[-1:], b.log_tail()))
        self.assertTrue(b.wait_log(lambda t: "does not exist" in t, timeout=10), b.log_tail())

        # after a few attempts it goes to the dead-letter topic with the
        # reason, and a later record to an existing topic still arrives
        msgs, missing = kafka_wait_ids(brokers, dlq, {"n_missing"}, timeout=120)
        self.assertFalse(missing, "the record for the missing topic never reached the "
                         "dead-letter topic\n%s" % b.log_tail())
        headers = dict(msgs[0].headers)
        self.assertIn("hookbridge-error", headers)
        st, _, body = b.post_signed(notification("n_good", topic="good"))
        self.assertEqual(st, 200, body)
        _, missing = kafka_wait_ids(brokers, good, {"n_good"}, timeout=60)
        self.assertFalse(missing, "a record behind the dead-lettered one did not arrive\n%s" %
                         b.log_tail())


if __name__ == "__main__":
    unittest.main(verbosity=2)
