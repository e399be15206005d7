"""The webhook endpoint: answers, verification, limits, what reaches the file sink.

Run: python3 -m unittest -v tests/integration/test_endpoint.py
 or: python3 tests/integration/test_endpoint.py
"""

import email.utils
import http.client
import json
import os
import ssl
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hbtest  # noqa: E402
from hbtest import SECRET, BridgeTestCase, check_sink_line, notification, sign  # noqa: E402


def uid(prefix="notif"):
    return "%s_%s" % (prefix, uuid.uuid4().hex)


class SentinelMixin:
    def assert_none_published(self, b, bad_ids=(), bad_bodies=(), conn=None):
        """Nothing refused reached the sink: post a good sentinel after the
        refused requests and wait for it (the sink publishes in journal order),
        then check that none of the refused ones are there."""
        sid = uid("sentinel")
        body = notification(sid)
        self.assertAccepted(b.post_signed(body, conn=conn), "sentinel")
        raw = b.wait_ids([sid], what="sentinel published")
        lines = b.sink_lines()
        found_ids = {e.get("id") for e in raw}
        for i in bad_ids:
            self.assertNotIn(i, found_ids, "a refused request (id %s) was published" % i)
        for bb in bad_bodies:
            if not bb:
                continue
            want = hbtest.expected_payload_bytes(bb)
            for line in lines:
                self.assertNotIn(b'"payload":' + want + b"}", line,
                                 "a refused body was published: %r" % bb[:100])


class EndpointBasics(SentinelMixin, BridgeTestCase):
    """One bridge with the default test config per test."""

    def setUp(self):
        self.b = self.start_bridge()

    def test_head_is_200_with_empty_body(self):
        b = self.b
        conn = b.connection()
        try:
            st, h, body = b.head(conn=conn)
            self.assertEqual(st, 200)
            self.assertEqual(body, b"")
            # the connection is still usable: no stray body bytes were sent
            body = notification(uid())
            self.assertAccepted(b.post_signed(body, conn=conn), "POST after HEAD on one connection")
        finally:
            conn.close()

    def test_answers_carry_date_content_length_and_type_once(self):
        """The route adds the Date and Content-Length headers of an HTTP/1.1
        answer itself (the date formatted once a second per thread, in place
        of evhttp's): each appears once, the date is RFC 1123 and current,
        the length is the body's."""
        b = self.b
        conn = b.connection()
        try:
            answers = [b.post_signed(notification(uid()), conn=conn),
                       b.post(b"{}", "sha1=00", conn=conn), b.head(conn=conn)]
        finally:
            conn.close()
        for (st, h, body), code in zip(answers, (200, 401, 200)):
            self.assertEqual(st, code, body)
            dates = h.get_all("Date") or []
            self.assertEqual(len(dates), 1, "Date headers: %r" % dates)
            when = email.utils.parsedate_to_datetime(dates[0])
            # RFC 1123 exactly: the weekday matches the date, fields padded
            self.assertEqual(email.utils.format_datetime(when, usegmt=True), dates[0])
            self.assertLess(abs(when.timestamp() - time.time()), 120,
                            "Date %r is not now" % dates[0])
            if body:
                self.assertEqual(h.get_all("Content-Length"), [str(len(body))])
                self.assertEqual(h.get_all("Content-Type"), ["application/json"])

    def test_sample_files_published_verbatim(self):
        b = self.b
        samples = hbtest.load_samples()
        self.assertGreaterEqual(len(samples), 7)
        for name, body, sig, secret in samples:
            self.assertEqual(secret, SECRET)
            self.assertEqual(sig, sign(body, secret), "signatures.tsv disagrees for %s" % name)
            self.assertAccepted(b.post(body, sig), name)
        evs = b.wait_events(count=len(samples), what="%d sample events" % len(samples))
        raw = b.events_raw()
        self.assertEqual(len(raw), len(samples),
                         "expected exactly %d events, got %d" % (len(samples), len(raw)))
        self.assertEqual(b.malformed, [])
        for name, body, sig, _ in samples:
            want = json.loads(body)
            matches = [(line, obj) for line, obj in raw if obj.get("payload") == want]
            self.assertEqual(len(matches), 1, "%s: %d sink lines with this payload" %
                             (name, len(matches)))
            line, obj = matches[0]
            with self.subTest(sample=name):
                check_sink_line(self, line, obj, body, name + ":")
                if want.get("topic") == "ping":
                    self.assertIsNone(obj["id"])
        del evs

    def test_401_missing_or_wrong_signature(self):
        b = self.b
        cases = []
        for label, sigf in [
            ("missing", lambda body: None),
            ("wrong secret", lambda body: sign(body, "not_the_secret")),
            ("other body", lambda body: sign(body + b" ", SECRET)),
            ("empty value", lambda body: ""),
            ("sha1= only", lambda body: "sha1="),
            ("no prefix", lambda body: sign(body, SECRET)[5:]),
            ("sha256 prefix", lambda body: "sha256=" + sign(body, SECRET)[5:]),
            ("truncated", lambda body: sign(body, SECRET)[:-2]),
            ("garbage", lambda body: "sha1=" + "zz" * 20),
        ]:
            nid = uid("bad")
            body = notification(nid)
            resp = b.post(body, sigf(body))
            with self.subTest(case=label):
                self.assertRefused(resp, 401, "signature %s:" % label)
            cases.append((nid, body))
        self.assert_none_published(b, [c[0] for c in cases], [c[1] for c in cases])
        # every refusal is logged with its reason, once
        self.assert_refusals_logged(b, 401, len(cases))
        self.assertRegex(b.log_text().lower(), "signature", "no log line gives the reason")

    def test_400_not_an_object_with_string_topic(self):
        b = self.b
        bad = [
            ("invalid json", b'{"type":"notification_event","topic":"contact.created"'),
            ("not json", b"hello world"),
            ("json array", b'[{"type":"notification_event","topic":"contact.created"}]'),
            ("topic missing", b'{"type":"notification_event","id":"notif_x400a"}'),
            ("topic number", b'{"type":"notification_event","topic":42,"id":"notif_x400b"}'),
            ("topic null", b'{"type":"notification_event","topic":null,"id":"notif_x400c"}'),
            ("topic object", b'{"type":"notification_event","topic":{"a":1}}'),
            ("json string", b'"topic"'),
            ("empty body", b""),
        ]
        for label, body in bad:
            resp = b.post(body, sign(body))
            with self.subTest(case=label):
                self.assertRefused(resp, 400, "%s (%r):" % (label, body[:60]))
        self.assert_none_published(b, ["notif_x400a", "notif_x400b", "notif_x400c"],
                                   [x[1] for x in bad])
        self.assert_refusals_logged(b, 400, len(bad))

    def test_400_topic_only_nested(self):
        """'topic' inside a nested object is not the envelope's topic."""
        b = self.b
        body = b'{"type":"notification_event","data":{"topic":"contact.created"},"id":"notif_nest"}'
        self.assertRefused(b.post(body, sign(body)), 400, "nested topic only:")
        self.assert_none_published(b, ["notif_nest"])

    def test_400_trailing_garbage(self):
        b = self.b
        body = b'{"type":"notification_event","topic":"contact.created","id":"notif_trail"} x'
        self.assertRefused(b.post(body, sign(body)), 400, "trailing garbage:")
        self.assert_none_published(b, ["notif_trail"])

    def test_signature_checked_before_parsing(self):
        """A bad body with a wrong signature is a 401 (not 400)."""
        body = b"this is not json"
        self.assertRefused(self.b.post(body, sign(body, "wrong")), 401, "bad body, bad sig:")
        self.assertRefused(self.b.post(body, None), 401, "bad body, no sig:")

    def test_405_other_methods(self):
        b = self.b
        for method in ("GET", "PUT", "DELETE", "PATCH"):
            body = b"" if method in ("GET", "DELETE") else notification(uid())
            headers = {"Content-Length": str(len(body))}
            if body:
                headers["X-Hub-Signature"] = sign(body)
            st, h, data = b.request(method, b.intercom_path, body=body, headers=headers)
            with self.subTest(method=method):
                self.assertEqual(st, 405, "%s %s -> %d %r" % (method, b.intercom_path, st, data))
                allow = h.get("Allow")
                self.assertIsNotNone(allow, "%s: 405 without an Allow header" % method)
                methods = {m.strip().upper() for m in allow.split(",")}
                self.assertIn("POST", methods, "Allow: %r" % allow)
                self.assertIn("HEAD", methods, "Allow: %r" % allow)

    def test_404_other_paths(self):
        b = self.b
        body = notification(uid())
        for method, path in [("POST", "/"), ("POST", "/webhooks"), ("POST", "/webhooks/intercomX"),
                             ("POST", "/webhooks/other"), ("GET", "/"), ("HEAD", "/nope"),
                             ("GET", "/healthz")]:
            headers = {}
            data = None
            if method == "POST":
                data = body
                headers["X-Hub-Signature"] = sign(body)
                headers["Content-Type"] = "application/json"
            st, h, rb = b.request(method, path, body=data, headers=headers)
            with self.subTest(method=method, path=path):
                self.assertEqual(st, 404, "%s %s -> %d %r" % (method, path, st, rb[:200]))

    def test_keep_alive_many_requests_one_connection(self):
        b = self.b
        n = 300
        conn = b.connection()
        ids = []
        last = time.monotonic()
        try:
            for i in range(n):
                nid = "notif_ka_%04d_%s" % (i, uuid.uuid4().hex[:8])
                t = time.monotonic()
                try:
                    st, h, body = b.post_signed(notification(nid, app_id="ws%d" % (i % 3)),
                                                conn=conn)
                except (OSError, http.client.HTTPException) as e:
                    self.fail("request %d on the kept-alive connection failed after %.3f s "
                              "(previous answer %.3f s before): %r\n%s" % (
                                  i, time.monotonic() - t, t - last, e, b.log_tail()))
                last = time.monotonic()
                self.assertEqual(st, 200, "request %d on the kept-alive connection: %d %r" %
                                 (i, st, body))
                ids.append(nid)
            self.assertEqual(conn.connects, 1,
                             "the client had to reconnect %d times: the bridge closed the "
                             "keep-alive connection" % (conn.connects - 1))
        finally:
            conn.close()
        evs = b.wait_ids(ids, timeout=60)
        got = [e["id"] for e in evs if e.get("id") in set(ids)]
        self.assertEqual(len(got), n, "duplicates in the sink: %d lines for %d ids" % (len(got), n))

    def test_chunked_body(self):
        b = self.b
        nid = uid("chunked")
        body = notification(nid, pad=3000)
        st, h, data = b.post_chunked(body, sign(body), chunks=5)
        self.assertEqual(st, 200, "chunked POST -> %d %r" % (st, data))
        self.assertJsonBody(data, "status", "accepted")
        b.wait_ids([nid])
        [(line, obj)] = [(l, o) for l, o in b.events_raw() if o.get("id") == nid]
        check_sink_line(self, line, obj, body, "chunked:")

    def test_chunked_bad_signature_is_401(self):
        b = self.b
        nid = uid("chunkedbad")
        body = notification(nid)
        st, h, data = b.post_chunked(body, sign(body, "wrong"), chunks=3)
        self.assertEqual(st, 401, "chunked POST with a wrong signature -> %d %r" % (st, data))
        self.assert_none_published(b, [nid])

    def test_crlf_in_body_replaced_by_spaces(self):
        b = self.b
        nid = uid("crlf")
        body = (b'{\r\n  "type": "notification_event",\r\n  "topic": "contact.created",\r\n'
                b'  "app_id": "ws_crlf",\n  "id": "' + nid.encode() + b'",\r\n'
                b'  "data": {"item": {"note": "a\\r\\nb \\u00e9 \xc3\xa9"}}\r\n}\r\n')
        self.assertAccepted(b.post_signed(body))
        b.wait_ids([nid])
        [(line, obj)] = [(l, o) for l, o in b.events_raw() if o.get("id") == nid]
        check_sink_line(self, line, obj, body, "CRLF body:")
        self.assertEqual(line.count(b"\n"), 1)

    def test_missing_optional_fields_are_null(self):
        b = self.b
        body = b'{"type":"notification_event","topic":"brand.new.topic"}'
        self.assertAccepted(b.post_signed(body))
        evs = b.wait_events(lambda evs: any(e.get("topic") == "brand.new.topic" for e in evs),
                            what="event with topic brand.new.topic")
        [(line, obj)] = [(l, o) for l, o in b.events_raw() if o.get("topic") == "brand.new.topic"]
        self.assertIsNone(obj["app_id"])
        self.assertIsNone(obj["id"])
        check_sink_line(self, line, obj, body, "minimal body:")
        del evs

    def test_duplicate_id_published_once(self):
        """dedup = on (default): a repeated notification id is answered 200
        and not published again."""
        b = self.b
        nid = uid("dup")
        body = notification(nid)
        self.assertAccepted(b.post_signed(body), "first delivery")
        st, h, data = b.post_signed(body)
        self.assertEqual(st, 200, "retried delivery: %d %r" % (st, data))
        self.assertJsonBody(data, "status", msg="retried delivery:")  # "accepted" or "duplicate"
        self.assert_none_published(b)
        n = sum(1 for e in b.events() if e.get("id") == nid)
        self.assertEqual(n, 1, "id %s published %d times with dedup on" % (nid, n))

    def test_ping_published_every_time(self):
        """A ping's id is null: it must not be deduplicated as an id."""
        b = self.b
        name, body, sig, _ = [s for s in hbtest.load_samples() if s[0] == "ping.json"][0]
        self.assertAccepted(b.post(body, sig), "ping 1")
        self.assertAccepted(b.post(body, sig), "ping 2")
        self.assert_none_published(b)
        n = sum(1 for e in b.events() if e.get("topic") == "ping")
        self.assertEqual(n, 2, "two pings posted, %d published" % n)

    def test_refusal_never_410_or_429(self):
        """Throw a mixed bag at the listener; _finish_bridge asserts that no
        410 / 429 was answered (it checks every status this test saw)."""
        b = self.b
        body = notification(uid())
        b.post(body, None)
        b.post(b"[]", sign(b"[]"))
        b.request("OPTIONS", b.intercom_path)
        b.request("GET", "/favicon.ico")
        b.post(body, sign(body), path="/webhooks/intercom/")
        for s in b.statuses:
            self.assertNotIn(s, (410, 429))


class MultipleSecrets(SentinelMixin, BridgeTestCase):
    OLD = "old_rotated_secret_1"
    OTHER = "a_third_secret_nobody_configured"

    def test_each_configured_secret_is_accepted(self):
        b = self.start_bridge(**{"intercom.secret": "%s,%s" % (self.OLD, SECRET)})
        ids = []
        for secret in (self.OLD, SECRET):
            nid = uid("rot")
            body = notification(nid)
            self.assertAccepted(b.post_signed(body, secret), "signed with %s" % secret[:3])
            ids.append(nid)
        bad = uid("rot_bad")
        body = notification(bad)
        self.assertRefused(b.post_signed(body, self.OTHER), 401, "unconfigured secret:")
        self.assertRefused(b.post_signed(body, "%s,%s" % (self.OLD, SECRET)), 401,
                           "the comma list itself as a secret:")
        b.wait_ids(ids)
        self.assert_none_published(b, [bad])
        for s in (self.OLD,):
            self.assertNotIn(s, b.log_text())


class BodyLimit(SentinelMixin, BridgeTestCase):
    def setUp(self):
        self.b = self.start_bridge(**{"limits.max_body": "1024"})

    def big_body(self, nid, size=2000):
        body = notification(nid)
        body = notification(nid, extra_pad="y" * (size - len(body) - len(',"extra_pad":""')))
        self.assertEqual(len(body), size)
        return body

    def test_413_over_max_body(self):
        b = self.b
        nid = uid("big")
        body = self.big_body(nid)
        st, h, data = b.post(body, sign(body))
        self.assertEqual(st, 413, "2000-byte body with limits.max_body=1024 -> %d %r" % (st, data))
        small_id = uid("small")
        small = notification(small_id)
        self.assertLess(len(small), 1024)
        self.assertAccepted(b.post(small, sign(small)), "small body after a 413")
        self.assert_none_published(b, [nid])
        b.wait_ids([small_id])

    def test_413_answer_is_json(self):
        body = self.big_body(uid("bigjson"))
        st, h, data = self.b.post(body, sign(body))
        self.assertEqual(st, 413)
        self.assertJsonBody(data, "error", msg="413 (Content-Length over the limit):")

    def test_413_is_logged(self):
        body = self.big_body(uid("biglog"))
        self.assertEqual(self.b.post(body, sign(body))[0], 413)
        self.assert_refusals_logged(self.b, 413, 1)

    def test_413_chunked_over_max_body(self):
        b = self.b
        nid = uid("bigchunk")
        body = notification(nid, extra_pad="z" * 3000)
        st, h, data = b.post_chunked(body, sign(body), chunks=6)
        self.assertEqual(st, 413, "chunked %d-byte body with limits.max_body=1024 -> %d %r" %
                         (len(body), st, data))
        self.assert_none_published(b, [nid])
        self.assertJsonBody(data, "error", msg="413 (chunked body over the limit):")
        self.assert_refusals_logged(b, 413, 1)

    def test_exactly_max_body_accepted(self):
        b = self.b
        nid = uid("edge")
        body = notification(nid)
        body = notification(nid, extra_pad="e" * (1024 - len(body) - len(',"extra_pad":""')))
        self.assertEqual(len(body), 1024)
        self.assertAccepted(b.post(body, sign(body)), "body of exactly limits.max_body bytes")
        b.wait_ids([nid])


class ConfigVariants(SentinelMixin, BridgeTestCase):
    def test_custom_intercom_path(self):
        b = self.start_bridge(**{"intercom.path": "/hooks/ic"})
        nid = uid("path")
        body = notification(nid)
        self.assertAccepted(b.post_signed(body, path="/hooks/ic"))
        st, _, data = b.post_signed(notification(uid()), path="/webhooks/intercom")
        self.assertEqual(st, 404, "default path when intercom.path is set: %d %r" % (st, data))
        self.assertEqual(b.head("/hooks/ic")[0], 200)
        b.wait_ids([nid])

    def test_verify_off_accepts_unsigned(self):
        b = self.start_bridge(**{"intercom.verify": "off", "intercom.secret": None})
        nid = uid("unsigned")
        self.assertAccepted(b.post(notification(nid), None), "unsigned with intercom.verify=off")
        self.assertRefused(b.post(b"[1]", None), 400, "bad body with intercom.verify=off:")
        b.wait_ids([nid])

    def _ack_mode(self, ack):
        b = self.start_bridge(ack=ack)
        ids = [uid("ack_" + ack) for _ in range(5)]
        conn = b.connection()
        self.addCleanup(conn.close)
        for nid in ids:
            self.assertAccepted(b.post_signed(notification(nid), conn=conn), "ack = %s" % ack)
            if ack == "published":
                # answered only after the file sink wrote it: already there
                self.assertIn(nid, {e.get("id") for e in b.events()},
                              "ack = published answered 200 before the sink wrote the event")
        b.wait_ids(ids)
        self.assertEqual(b.stop(), 0)

    def test_ack_written(self):
        self._ack_mode("written")

    def test_ack_published(self):
        self._ack_mode("published")

    def test_ack_durable_explicit(self):
        self._ack_mode("durable")

    def test_tls_min_version_1_3(self):
        b = self.start_bridge(**{"tls.min_version": "1.3"})
        ctx = hbtest.client_ssl_context()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        raw = hbtest.socket.create_connection(("127.0.0.1", b.port), timeout=hbtest.scaled(30))
        try:
            with self.assertRaises((ssl.SSLError, OSError), msg="TLS 1.2 handshake accepted with "
                                   "tls.min_version = 1.3"):
                ctx.wrap_socket(raw, server_hostname="localhost").close()
        finally:
            raw.close()
        self.assertAccepted(b.post_signed(notification(uid())), "TLS 1.3 client")

    def test_idle_connection_closed_after_read_timeout(self):
        b = self.start_bridge(**{"limits.read_timeout_ms": "1000"})
        s = b.tls_socket(timeout=30)
        try:
            s.sendall(b"POST " + b.intercom_path.encode() + b" HTTP/1.1\r\nHost: x\r\n")
            # never finish the request: the bridge must close it (bounded wait)
            try:
                data = s.recv(4096)
            except (ssl.SSLError, OSError):
                data = b""
            except TimeoutError:
                self.fail("a client that never finished its request was not closed within "
                          "30 s with limits.read_timeout_ms = 1000")
            self.assertFalse(data.startswith(b"HTTP/1.1 2"), "slow client got %r" % data[:80])
            self.assertNotIn(b" 410 ", data[:20])
            self.assertNotIn(b" 429 ", data[:20])
        finally:
            s.close()
        self.assertAccepted(b.post_signed(notification(uid())), "after closing a slow client")

    def test_second_process_cannot_bind_the_same_port(self):
        """The listener is bound once (no SO_REUSEPORT): a second bridge on
        the same port fails at start-up instead of silently sharing it."""
        b = self.start_bridge()
        other = hbtest.Bridge(start=False)
        self.addCleanup(other.cleanup)
        other.config["listen"] = b.config["listen"]
        other.write_config()
        p = hbtest.subprocess.run([other.bin, "-c", other.config_path], cwd=other.tmpdir,
                                  stdin=hbtest.subprocess.DEVNULL,
                                  stdout=hbtest.subprocess.PIPE, stderr=hbtest.subprocess.STDOUT,
                                  env=other.environment(), timeout=hbtest.scaled(60))
        out = p.stdout.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 1, "second bridge on %s: rc %d\n%s" %
                         (b.config["listen"], p.returncode, out[-2000:]))
        self.assertIn("cannot listen on " + b.config["listen"], out)
        self.assertAccepted(b.post_signed(notification(uid())), "the first bridge still answers")


class DebugLogNoSecret(BridgeTestCase):
    def test_secret_not_logged_at_debug(self):
        b = self.start_bridge(**{"log.level": "debug"})
        body = notification(uid())
        self.assertAccepted(b.post_signed(body))
        b.post(body, sign(body, "wrong"))
        b.post(body, None)
        b.stop()
        self.assertNotIn(SECRET, b.log_text())
        # the HMAC of a request is not a secret, but the secret itself must not be there
        # (checked again for every bridge in _finish_bridge)


if __name__ == "__main__":
    hbtest.main()
