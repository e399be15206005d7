"""redis.url with a user, a password and a database number: the sink
authenticates, selects the database, never logs the password, and a wrong
password is reported in /readyz with Redis's own reason.

Starts its own redis-server with requirepass on a free loopback port.

Run: python3 tests/integration/test_redis_auth.py
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hbsinks  # noqa: E402
from hbsinks import Redis, wait_until  # noqa: E402
from hbtest import BridgeTestCase, notification  # noqa: E402

PASSWORD = "s3cret-redis-pw"


class RedisAuth(BridgeTestCase):
    secrets_never_logged = BridgeTestCase.secrets_never_logged + (PASSWORD,)

    def start_redis(self):
        url = hbsinks.redis_server(self, "--requirepass", PASSWORD, password=PASSWORD)
        return url.replace("redis://", "redis://default:%s@" % PASSWORD)

    def test_auth_and_database(self):
        url = self.start_redis()
        prefix = hbsinks.unique_prefix()
        b = self.start_bridge(**{"sinks": "redis", "redis.url": url + "/3",
                                 "redis.stream": prefix + ":{app_id}:{topic}"})
        st, _, body = b.post_signed(notification("n_auth_1", app_id="wsa"))
        self.assertEqual(st, 200, body)
        with Redis(url) as r:
            r.cmd("AUTH", "default", PASSWORD)
            r.cmd("SELECT", "3")
            ok = wait_until(lambda: r.cmd("XLEN", prefix + ":wsa:contact.created") == 1, 30)
            self.assertTrue(ok, "the event is not in database 3\n%s" % b.log_tail())
            r.cmd("SELECT", "0")
            self.assertEqual(r.cmd("EXISTS", prefix + ":wsa:contact.created"), 0,
                             "the event went to database 0, not the one in redis.url")

    def test_wrong_password_is_reported(self):
        url = self.start_redis()
        bad = url.replace(PASSWORD, "not-the-password")
        b = self.start_bridge(wait_ready=False, **{"sinks": "redis", "redis.url": bad})
        text = hbsinks.wait_not_ready(self, b, "AUTH")
        self.assertNotIn("not-the-password", text)

if __name__ == "__main__":
    unittest.main(verbosity=2)
