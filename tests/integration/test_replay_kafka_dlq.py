"""Redrive from the Kafka dead-letter topic (issue 12): an event whose topic does not
exist goes to kafka.dead_letter_topic; once the topic is created, a `kcat -C -J` dump of
the dead-letter topic given to `hookbridge dead-letter redrive --file` publishes it.
Uses a private broker started with KAFKA_AUTO_CREATE=false (slow: about two minutes).

Run: python3 tests/integration/test_replay_kafka_dlq.py
"""

import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hbsinks  # noqa: E402
import hbtest  # noqa: E402
from hbsinks import PrivateService, kafka_wait_ids  # noqa: E402
from hbtest import BridgeTestCase, notification  # noqa: E402

TOKEN = "replay-dlq-token-8e2f"


class RedriveKafkaDump(BridgeTestCase):
    secrets_never_logged = (hbtest.SECRET, TOKEN)

    def test_redrive_a_kcat_dump_after_the_topic_is_created(self):
        hbsinks.require_kcat(self)
        os.environ["KAFKA_AUTO_CREATE"] = "false"
        self.addCleanup(os.environ.pop, "KAFKA_AUTO_CREATE", None)
        tmp = tempfile.mkdtemp(prefix="hbtest-rdlq-")
        kafka = PrivateService(self, "kafka", os.path.join(tmp, "kafka"))
        brokers = kafka.start()
        prefix = hbsinks.unique_prefix()
        dlq, missing_topic = prefix + ".dlq", prefix + ".missing"

        def create(topic):
            env = dict(os.environ, HB_KAFKA_DIR=kafka.dir)
            subprocess.run([kafka.script, "topics", "--create", "--topic", topic,
                            "--partitions", "1"], env=env, check=True,
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
        create(dlq)
        b = self.start_bridge(**{
            "admin.token": TOKEN, "sinks": "kafka", "kafka.brokers": brokers,
            "kafka.topic": prefix + ".{topic}", "kafka.dead_letter_topic": dlq,
            "kafka.message.timeout.ms": "20000",
            "kafka.topic.metadata.propagation.max.ms": "500"})
        body = notification("n_dlq_1", topic="missing")
        st, _, answer = b.post_signed(body)
        self.assertEqual(st, 200, answer)
        _, left = kafka_wait_ids(brokers, dlq, {"n_dlq_1"}, timeout=120)
        self.assertFalse(left, "never dead-lettered\n%s" % b.log_tail())

        create(missing_topic)  # the cause, fixed
        dump = os.path.join(b.tmpdir, "dump.jsonl")
        with open(dump, "wb") as f:
            subprocess.run(["kcat", "-C", "-b", brokers, "-t", dlq, "-J", "-e", "-q"],
                           stdout=f, check=True, stdin=subprocess.DEVNULL,
                           timeout=hbtest.scaled(60))
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKBRIDGE_")}
        p = subprocess.run([hbtest.require_binary(), "dead-letter", "redrive", "-c",
                            b.config_path, "--file", dump], stdin=subprocess.DEVNULL,
                           capture_output=True, env=env, timeout=hbtest.scaled(300))
        out = p.stdout.decode() + p.stderr.decode()
        self.assertEqual(p.returncode, 0, out)
        self.assertIn("1 journaled again, 1 published by every sink", out)
        msgs, left = kafka_wait_ids(brokers, missing_topic, {"n_dlq_1"}, timeout=60)
        self.assertFalse(left, "the redriven event is not in %s\n%s" % (missing_topic,
                                                                         b.log_tail()))
        self.assertEqual([m.value for m in msgs], [body], "published once, byte for byte")
        self.assertEqual(os.path.getsize(dump), 0, "the published line left the dump")


if __name__ == "__main__":
    unittest.main(verbosity=2)
