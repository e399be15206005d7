"""Command line, config file, environment overrides, secrets from files.

Run: python3 -m unittest -v tests/integration/test_cli.py
 or: python3 tests/integration/test_cli.py
"""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hbtest  # noqa: E402
from hbtest import SECRET, BridgeTestCase, notification, sign  # noqa: E402


def run(args, env_extra=None, timeout=20):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKBRIDGE_")}
    env.update(env_extra or {})
    try:
        p = subprocess.run([hbtest.require_binary()] + list(args), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                           timeout=hbtest.scaled(timeout))
    except subprocess.TimeoutExpired as e:
        raise AssertionError("hookbridge %s did not exit within %.0fs (stdout %r, stderr %r)" % (
            " ".join(args), hbtest.scaled(timeout), e.stdout, e.stderr))
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


class CheckConfig(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        hbtest.require_binary()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="hbtest-cli-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def good_config(self):
        return {
            "listen": "127.0.0.1:%d" % hbtest.free_port(),
            "admin.listen": "127.0.0.1:%d" % hbtest.free_port(),
            "data.dir": self.tmp,
            "journal.dir": os.path.join(self.tmp, "journal"),
            "file.path": os.path.join(self.tmp, "events.jsonl"),
            "intercom.secret": SECRET,
            "workers": "2",
            "sinks": "file",
            "log.level": "info",
        }

    def write(self, cfg, extra_lines=()):
        path = os.path.join(self.tmp, "c-%s.conf" % uuid.uuid4().hex[:6])
        with open(path, "w") as f:
            f.write("# hookbridge test config\n\n")
            for k, v in cfg.items():
                f.write("%s = %s\n" % (k, v))
            for line in extra_lines:
                f.write(line + "\n")
        return path

    def check(self, path, env=None):
        return run(["--check-config", "-c", path], env)

    def test_version(self):
        rc, out, err = run(["--version"])
        self.assertEqual(rc, 0, "--version exit code (stderr %r)" % err)
        text = out + err
        self.assertRegex(text, r"\d+\.\d+", "--version prints no version: %r" % text)

    def test_help_lists_keys(self):
        rc, out, err = run(["--help"])
        self.assertEqual(rc, 0, "--help exit code (stderr %r)" % err)
        text = out + err
        for key in ("listen", "admin.listen", "intercom.secret", "intercom.path", "sinks",
                    "file.path", "journal.dir", "journal.max_bytes", "limits.max_body", "ack",
                    "shutdown.grace_ms", "workers", "log.level"):
            self.assertIn(key, text, "--help does not mention %r" % key)

    def test_good_config_exits_0(self):
        rc, out, err = self.check(self.write(self.good_config()))
        self.assertEqual(rc, 0, "--check-config on a good file: rc %d, stderr %r" % (rc, err))

    def test_good_config_with_comments_and_spacing(self):
        cfg = self.good_config()
        path = os.path.join(self.tmp, "spaced.conf")
        with open(path, "w") as f:
            f.write("# leading comment\n\n   # indented comment\n")
            for k, v in cfg.items():
                f.write("%s=%s\n" % (k, v) if k == "workers" else "  %s   =   %s  \n" % (k, v))
            f.write("ack = durable\nlimits.max_body = 2048\n")
        rc, out, err = self.check(path)
        self.assertEqual(rc, 0, "comments/spacing: rc %d, stderr %r" % (rc, err))

    def test_unknown_key(self):
        rc, out, err = self.check(self.write(self.good_config(), ["no.such.key = 1"]))
        self.assertEqual(rc, 1, "unknown key: rc %d (stderr %r)" % (rc, err))
        self.assertIn("no.such.key", err, "stderr does not name the unknown key: %r" % err)

    def test_bad_values(self):
        cases = [
            ("ack", "sometimes"),
            ("limits.max_body", "abc"),
            ("journal.max_bytes", "lots"),
            ("sinks", "carrier-pigeon"),
            ("log.level", "loud"),
            ("tls.min_version", "1.0"),
            ("intercom.verify", "maybe"),
            ("workers", "two"),
        ]
        for key, value in cases:
            cfg = self.good_config()
            cfg[key] = value
            rc, out, err = self.check(self.write(cfg))
            with self.subTest(key=key, value=value):
                self.assertEqual(rc, 1, "%s = %s: rc %d (stderr %r)" % (key, value, rc, err))
                self.assertIn(key, err, "%s = %s: stderr does not name the key: %r" %
                              (key, value, err))

    def test_kafka_properties_judged_by_librdkafka(self):
        """kafka.* properties pass through to librdkafka: --check-config asks it,
        as the bridge would at start, instead of saying OK and failing later."""
        base = self.good_config()
        base.update({"sinks": "kafka", "kafka.brokers": "127.0.0.1:9"})
        for line, key in (("kafka.linger.ms = banana", "kafka.linger.ms"),
                          ("kafka.no.such.property = 1", "kafka.no.such.property"),
                          ("kafka.compression.type = carrier-pigeon", "kafka.compression.type")):
            rc, out, err = self.check(self.write(base, [line]))
            with self.subTest(line=line):
                self.assertEqual(rc, 1, "%s: rc %d (stderr %r)" % (line, rc, err))
                self.assertIn(key, err, "%s: stderr does not name the key: %r" % (line, err))
                self.assertIn("librdkafka", err, "%s: stderr does not say who refused: %r" %
                              (line, err))
        rc, out, err = self.check(self.write(base, ["kafka.linger.ms = 20",
                                                    "kafka.compression.type = zstd"]))
        self.assertEqual(rc, 0, "good kafka.* properties: rc %d (stderr %r)" % (rc, err))
        # A guarantee the bridge keeps whatever the file says: allowed, and said.
        rc, out, err = self.check(self.write(base, ["kafka.acks = 1"]))
        self.assertEqual(rc, 0, "kafka.acks = 1: rc %d (stderr %r)" % (rc, err))
        self.assertIn("kafka.acks = 1 ignored", err)
        # Without the Kafka sink, its properties configure nothing and are not judged.
        off = dict(base, sinks="file")
        rc, out, err = self.check(self.write(off, ["kafka.linger.ms = banana"]))
        self.assertEqual(rc, 0, "kafka.* with sinks = file: rc %d (stderr %r)" % (rc, err))

    def test_kafka_properties_judged_together_by_librdkafka(self):
        """Regression: --check-config asked librdkafka about each kafka.* property
        alone and said OK to combinations it refuses only when the producer is
        made, so the bridge then failed at start."""
        base = self.good_config()
        base.update({"sinks": "kafka", "kafka.brokers": "127.0.0.1:9"})
        line = "kafka.max.in.flight.requests.per.connection = 10"  # with idempotence
        rc, out, err = self.check(self.write(base, [line]))
        self.assertEqual(rc, 1, "%s: rc %d (stderr %r)" % (line, rc, err))
        self.assertIn("max.in.flight", err, "stderr does not name the property: %r" % err)
        self.assertIn("librdkafka", err, "stderr does not say who refused: %r" % err)
        line = "kafka.max.in.flight.requests.per.connection = 5"
        rc, out, err = self.check(self.write(base, [line]))
        self.assertEqual(rc, 0, "%s: rc %d (stderr %r)" % (line, rc, err))
        self.assertEqual(err, "", "librdkafka's own log lines in --check-config's answer")

    def test_misleading_values_fail_check_config(self):
        """issue 10: values that parse but configure nothing (or less than
        meant) fail --check-config naming the key, without quoting a secret."""
        cases = [
            ({"intercom.secret": ","}, "intercom.secret"),
            ({"intercom.secret": SECRET + ", "}, "intercom.secret"),
            ({"limits.max_body": "1m", "journal.max_bytes": "1m"}, "journal.max_bytes"),
            ({"sinks": "file,,file"}, "sinks"),
            ({"limits.max_body": "0"}, "limits.max_body"),
            ({"listen": "127.0.0.1:0"}, "listen"),
            ({"dedup.window": "0"}, "dedup.window"),
            ({"tls.ciphers": "NO-SUCH-CIPHER"}, "tls.ciphers"),
            ({"tls.ciphersuites": "TLS_NO_SUCH_SUITE"}, "tls.ciphersuites"),
        ]
        for over, key in cases:
            cfg = self.good_config()
            cfg.update(over)
            rc, out, err = self.check(self.write(cfg))
            with self.subTest(**{k.replace(".", "_"): v for k, v in over.items()}):
                self.assertEqual(rc, 1, "%r: rc %d (stderr %r)" % (over, rc, err))
                self.assertIn(key, err, "%r: stderr does not name %s: %r" % (over, key, err))
                self.assertNotIn(SECRET, err + out, "a secret in the error")

    def test_tls_cipher_keys_accepted_when_openssl_accepts_them(self):
        cfg = self.good_config()
        cfg["tls.ciphers"] = "ECDHE+AESGCM"
        cfg["tls.ciphersuites"] = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384"
        rc, out, err = self.check(self.write(cfg))
        self.assertEqual(rc, 0, "rc %d, stderr %r" % (rc, err))

    def test_missing_secret_with_verify_on(self):
        cfg = self.good_config()
        del cfg["intercom.secret"]
        rc, out, err = self.check(self.write(cfg))
        self.assertEqual(rc, 1, "no intercom.secret: rc %d (stderr %r)" % (rc, err))
        self.assertIn("intercom.secret", err)

    def test_verify_off_needs_no_secret(self):
        cfg = self.good_config()
        del cfg["intercom.secret"]
        cfg["intercom.verify"] = "off"
        rc, out, err = self.check(self.write(cfg))
        self.assertEqual(rc, 0, "intercom.verify = off without a secret: rc %d (stderr %r)" %
                         (rc, err))

    def test_bad_value_from_environment(self):
        rc, out, err = self.check(self.write(self.good_config()),
                                  {"HOOKBRIDGE_ACK": "sometimes"})
        self.assertEqual(rc, 1, "HOOKBRIDGE_ACK=sometimes: rc %d (stderr %r)" % (rc, err))
        self.assertIn("ack", err.lower(), "stderr names neither ack nor HOOKBRIDGE_ACK: %r" % err)

    def test_missing_config_file(self):
        rc, out, err = self.check(os.path.join(self.tmp, "does-not-exist.conf"))
        self.assertNotEqual(rc, 0, "a missing config file must fail")
        self.assertTrue(err.strip(), "no message on stderr for a missing config file")

    def test_secret_not_echoed_on_error(self):
        cfg = self.good_config()
        cfg["ack"] = "sometimes"
        rc, out, err = self.check(self.write(cfg))
        self.assertEqual(rc, 1)
        self.assertNotIn(SECRET, out + err)


class EnvAndSecretFile(BridgeTestCase):
    def test_env_overrides_file(self):
        b = self.start_bridge(env={"HOOKBRIDGE_LIMITS_MAX_BODY": "1024"},
                              **{"limits.max_body": "1048576"})
        nid = "notif_env_%s" % uuid.uuid4().hex
        body = notification(nid)
        body = notification(nid, extra_pad="y" * (2000 - len(body) - len(',"extra_pad":""')))
        self.assertEqual(len(body), 2000)
        st, h, data = b.post(body, sign(body))
        self.assertEqual(st, 413, "HOOKBRIDGE_LIMITS_MAX_BODY=1024 over file's 1048576: 2000 "
                         "bytes -> %d %r" % (st, data))
        small = notification("notif_env_small_%s" % uuid.uuid4().hex)
        self.assertAccepted(b.post(small, sign(small)))

    def _secret_file_case(self, content):
        secret = "s3cret_from_file_%s" % uuid.uuid4().hex[:8]
        tmp = tempfile.mkdtemp(prefix="hbtest-secretfile-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "intercom_secret")
        with open(path, "w") as f:
            f.write(content % secret)
        self.secrets_never_logged = (SECRET, secret)
        b = self.start_bridge(**{"intercom.secret": "file:" + path})
        nid = "notif_sf_%s" % uuid.uuid4().hex
        body = notification(nid)
        self.assertAccepted(b.post(body, sign(body, secret)), "signed with the file's secret")
        self.assertRefused(b.post(body, sign(body, SECRET)), 401,
                           "signed with a secret that is not configured:")
        self.assertRefused(b.post(body, sign(body, "file:" + path)), 401,
                           "signed with the literal 'file:...' string:")
        b.wait_ids([nid])

    def test_secret_from_file(self):
        self._secret_file_case("%s")

    def test_secret_from_file_trailing_newline(self):
        """Docker secrets made with `echo ... | docker secret create` end with
        a newline; the secret is the first line."""
        self._secret_file_case("%s\n")


if __name__ == "__main__":
    hbtest.main()
