"""issue 11: routes. Each provider's scheme on its own path, end to end
through the file, Kafka and Redis sinks, beside the Intercom route.

Every delivery is signed here, in Python (hmac, hashlib, base64), the way
the provider documents it, independently of the bridge's C code:

  github    X-Hub-Signature-256: sha256=<hex HMAC-SHA256(body)>
  stripe    Stripe-Signature: t=<ts>,v1=<hex HMAC-SHA256("<ts>.<body>")>
  shopify   X-Shopify-Hmac-SHA256: <base64 HMAC-SHA256(body)>
  slack     X-Slack-Signature: v0=<hex HMAC-SHA256("v0:<ts>:<body>")>
  standard  webhook-signature: v1,<base64 HMAC-SHA256("<id>.<ts>.<body>")>,
            key = base64 of the whsec_ secret
  hmac      as configured here: X-Signature: sha512=<base64 HMAC-SHA512(
            "<ts>.<body>")>, timestamp in X-Timestamp, id in X-Delivery

Kafka and Redis tests need $KAFKA_BROKERS / $REDIS_URL (and kcat), as
test_kafka.py and test_redis.py do: without them they fail, or skip with
HB_ALLOW_SKIP=1.

Run: python3 -m unittest -v tests/integration/test_routes.py
"""

import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hbsinks  # noqa: E402
import hbtest  # noqa: E402
from hbsinks import kafka_topic_name, redis_key_name  # noqa: E402
from hbtest import SECRET, BridgeTestCase, metric_sum, notification, sign  # noqa: E402

GITHUB_SECRET = "gh-route-secret-1"
STRIPE_SECRET = "whsec_stripe_route_secret"
SHOPIFY_SECRET = "shopify-route-secret"
SLACK_SECRET = "slack-route-signing-secret"
STANDARD_KEY = b"standard-webhooks-route-key-32by"
STANDARD_SECRET = "whsec_" + base64.b64encode(STANDARD_KEY).decode()
HMAC_SECRET = "generic-hmac-route-secret"
WRONG = "not-the-configured-secret"


def uid(prefix="r"):
    return "%s%s" % (prefix, uuid.uuid4().hex[:12])


def hex_mac(key, msg, algo=hashlib.sha256):
    return hmac.new(key if isinstance(key, bytes) else key.encode(), msg, algo).hexdigest()


def b64_mac(key, msg, algo=hashlib.sha256):
    return base64.b64encode(
        hmac.new(key if isinstance(key, bytes) else key.encode(), msg, algo).digest()).decode()


def compact(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


# ---------------------------------------------------------------- schemes
#
# Each scheme: the route's configuration, and make(secret, did, ts, tag) ->
# (body, headers, want) where want holds the id, topic and source the bridge
# must route on and the provider headers it must forward. `sig` names the
# signature header (dropped for the "missing header" case); `timestamped`
# says whether the scheme has a replay window.

def make_github(secret, did, ts, tag):
    body = compact({"action": "opened_" + tag, "issue": {"number": 7},
                    "repository": {"full_name": "acme/" + tag}, "sender": {"login": "x"}})
    h = {"X-GitHub-Event": "issues", "X-GitHub-Delivery": did, "X-GitHub-Hook-ID": "4242",
         "X-Hub-Signature-256": "sha256=" + hex_mac(secret, body)}
    want = {"id": did, "topic": "issues.opened_" + tag, "source": "acme/" + tag,
            "headers": {"x-github-event": "issues", "x-github-delivery": did,
                        "x-github-hook-id": "4242"}}
    return body, h, want


def make_stripe(secret, did, ts, tag):
    body = compact({"id": did, "object": "event", "type": "invoice.paid_" + tag,
                    "account": "acct_" + tag, "created": ts,
                    "data": {"object": {"id": "in_1", "amount_paid": 1200}}})
    v1 = hex_mac(secret, b"%d." % ts + body)
    h = {"Stripe-Signature": "t=%d,v1=%s" % (ts, v1)}
    return body, h, {"id": did, "topic": "invoice.paid_" + tag, "source": "acct_" + tag,
                     "headers": {}}


def make_shopify(secret, did, ts, tag):
    body = compact({"id": 820982911946154500, "name": "#9999", "tag": tag})
    shop = tag + ".myshopify.com"
    topic = "orders/create_" + tag
    h = {"X-Shopify-Topic": topic, "X-Shopify-Shop-Domain": shop,
         "X-Shopify-Webhook-Id": did, "X-Shopify-API-Version": "2024-07",
         "X-Shopify-Hmac-SHA256": b64_mac(secret, body)}
    return body, h, {"id": did, "topic": topic, "source": shop,
                     "headers": {"x-shopify-topic": topic, "x-shopify-shop-domain": shop,
                                 "x-shopify-webhook-id": did,
                                 "x-shopify-api-version": "2024-07"}}


def make_slack(secret, did, ts, tag):
    body = compact({"token": "legacy", "team_id": "T" + tag, "api_app_id": "A1",
                    "event": {"type": "app_mention_" + tag, "text": "hi"},
                    "type": "event_callback", "event_id": did, "event_time": ts})
    h = {"X-Slack-Request-Timestamp": str(ts),
         "X-Slack-Signature": "v0=" + hex_mac(secret, b"v0:%d:" % ts + body)}
    return body, h, {"id": did, "topic": "app_mention_" + tag, "source": "T" + tag,
                     "headers": {}}


def standard_sign(secret, did, ts, body):
    key = base64.b64decode(secret[len("whsec_"):]) if secret.startswith("whsec_") else \
        secret.encode()
    return "v1," + b64_mac(key, b"%s.%d." % (did.encode(), ts) + body)


def make_standard(secret, did, ts, tag):
    body = compact({"type": "user.created_" + tag, "tenant": "ten_" + tag,
                    "data": {"id": "u1"}})
    h = {"webhook-id": did, "webhook-timestamp": str(ts),
         "webhook-signature": "v0,bm90IGEgc2lnbmF0dXJl " + standard_sign(secret, did, ts, body)}
    return body, h, {"id": did, "topic": "user.created_" + tag, "source": "ten_" + tag,
                     "headers": {"webhook-id": did, "webhook-timestamp": str(ts)}}


def make_hmac(secret, did, ts, tag):
    body = compact({"event": "build.done_" + tag, "account": "org_" + tag, "n": 1})
    h = {"X-Timestamp": str(ts), "X-Delivery": did,
         "X-Signature": "sha512=" + b64_mac(secret, b"%d." % ts + body, hashlib.sha512)}
    return body, h, {"id": did, "topic": "build.done_" + tag, "source": "org_" + tag,
                     "headers": None}  # which headers hmac forwards is not asserted


SCHEMES = {
    "github": dict(secret=GITHUB_SECRET, sig="X-Hub-Signature-256", timestamped=False,
                   make=make_github,
                   conf={"path": "/webhooks/github", "secret": GITHUB_SECRET}),
    "stripe": dict(secret=STRIPE_SECRET, sig="Stripe-Signature", timestamped=True,
                   make=make_stripe,
                   conf={"path": "/webhooks/stripe", "secret": STRIPE_SECRET}),
    "shopify": dict(secret=SHOPIFY_SECRET, sig="X-Shopify-Hmac-SHA256", timestamped=False,
                    make=make_shopify,
                    conf={"path": "/webhooks/shopify", "secret": SHOPIFY_SECRET}),
    "slack": dict(secret=SLACK_SECRET, sig="X-Slack-Signature", timestamped=True,
                  make=make_slack,
                  conf={"path": "/webhooks/slack", "secret": SLACK_SECRET}),
    "standard": dict(secret=STANDARD_SECRET, sig="webhook-signature", timestamped=True,
                     make=make_standard,
                     conf={"path": "/webhooks/standard", "secret": STANDARD_SECRET,
                           "source": "/tenant"}),
    "generic": dict(secret=HMAC_SECRET, sig="X-Signature", timestamped=True, make=make_hmac,
                    conf={"path": "/webhooks/generic", "scheme": "hmac", "secret": HMAC_SECRET,
                          "header": "X-Signature", "algorithm": "sha512",
                          "encoding": "base64", "prefix": "sha512=",
                          "signed": "{timestamp}.{body}", "timestamp": "header:X-Timestamp",
                          "id": "header:X-Delivery", "topic": "/event",
                          "source": "/account"}),
}


def route_config(**per_route):
    """Bridge config keys for every route of SCHEMES; per_route[name] adds
    or overrides that route's keys."""
    conf = {}
    for name, spec in SCHEMES.items():
        keys = dict(spec["conf"])
        keys.update(per_route.get(name, {}))
        for k, v in keys.items():
            conf["route.%s.%s" % (name, k)] = v
    return conf


class RoutesCase(BridgeTestCase):
    secrets_never_logged = (SECRET, GITHUB_SECRET, STRIPE_SECRET, SHOPIFY_SECRET, SLACK_SECRET,
                            STANDARD_SECRET, HMAC_SECRET)

    def post_route(self, b, route, secret=None, did=None, ts=None, tag=None, mutate=None,
                   target=None):
        """Sign and post one delivery of `route` (to target, the request
        line's target, when given); -> (resp, want, body)."""
        spec = SCHEMES[route]
        did = did or uid("d")
        ts = int(time.time()) if ts is None else ts
        body, h, want = spec["make"](secret or spec["secret"], did, ts, tag or uid("t"))
        if mutate:
            body, h = mutate(body, h)
        h.setdefault("Content-Type", "application/json")
        resp = b.request("POST", target or spec["conf"]["path"], body=body, headers=h)
        return resp, want, body

    def assert_line(self, line, route, want, body):
        """A file-sink line of a route other than Intercom's."""
        obj = json.loads(line)
        what = "route %s, delivery %s:" % (route, want["id"])
        self.assertEqual(obj.get("route"), route, "%s route in %r" % (what, line[:300]))
        self.assertEqual(obj.get("source"), want["source"], what + " source")
        self.assertEqual(obj.get("topic"), want["topic"], what + " topic")
        self.assertEqual(obj.get("id"), want["id"], what + " id")
        self.assertNotIn("app_id", obj, what + " app_id is the Intercom route's name")
        self.assertEqual(obj["payload"], json.loads(body), what + " payload")
        self.assertTrue(line.endswith(b'"payload":' + body + b"}\n"),
                        "%s payload not verbatim: %r" % (what, line[-200:]))
        if want["headers"] is not None:
            self.assertEqual(obj.get("headers"), want["headers"], what + " forwarded headers")


class FileSink(RoutesCase):
    """Every scheme through the file sink, and what must never publish."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="hbtest-routes-")
        cls.b = hbtest.Bridge(cls.tmp, **route_config())

    @classmethod
    def tearDownClass(cls):
        cls.b.cleanup()

    def line_of(self, did):
        for raw, obj in self.b.events_raw():
            if obj.get("id") == did:
                return raw
        return None

    def test_each_scheme_end_to_end(self):
        for route in SCHEMES:
            with self.subTest(route=route):
                resp, want, body = self.post_route(self.b, route)
                self.assertAccepted(resp, route)
                self.b.wait_ids([want["id"]])
                self.assert_line(self.line_of(want["id"]), route, want, body)

    def test_intercom_route_unchanged_beside_the_others(self):
        nid = uid("ic")
        body = notification(nid)
        self.assertAccepted(self.b.post_signed(body))
        self.b.wait_ids([nid])
        raw = self.line_of(nid)
        hbtest.check_sink_line(self, raw, json.loads(raw), body, "intercom route:")

    def test_refusals_publish_nothing(self):
        """wrong secret, missing signature header, one byte of the body
        changed, a timestamp an hour old or an hour ahead: 401, never
        published."""
        def drop(name):
            return lambda body, h: (body, {k: v for k, v in h.items() if k != name})

        def flip(body, h):
            i = body.index(b'"', 2) + 1  # a byte inside the first key
            return body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1:], h

        refused = []
        for route, spec in SCHEMES.items():
            cases = [("wrong secret", dict(secret=WRONG if route != "standard" else
                                           "whsec_" + base64.b64encode(b"x" * 24).decode())),
                     ("missing " + spec["sig"], dict(mutate=drop(spec["sig"]))),
                     ("body changed", dict(mutate=flip))]
            if spec["timestamped"]:
                cases += [("expired", dict(ts=int(time.time()) - 3600)),
                          ("future", dict(ts=int(time.time()) + 3600))]
            for label, kw in cases:
                with self.subTest(route=route, case=label):
                    resp, want, _ = self.post_route(self.b, route, **kw)
                    self.assertRefused(resp, 401, "%s %s:" % (route, label))
                    refused.append(want["id"])
        # a barrier: a good delivery after them all is published, they are not
        resp, want, _ = self.post_route(self.b, "github")
        self.assertAccepted(resp)
        evs = self.b.wait_ids([want["id"]])
        self.assertEqual({e.get("id") for e in evs} & set(refused), set(),
                         "a refused delivery was published")
        log = self.b.log_text()
        self.assertIn("on route stripe", log)
        self.assertRegex(log, r"401 to 127\.0\.0\.1:\d+ on route (stripe|slack|standard|generic)"
                         r": .*(tolerance|timestamp)", "no log line says the timestamp is "
                         "outside the window")

    def test_slack_url_verification_answers_the_challenge(self):
        ts = int(time.time())
        challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" + uid()
        body = compact({"token": "x", "challenge": challenge, "type": "url_verification"})
        h = {"Content-Type": "application/json", "X-Slack-Request-Timestamp": str(ts),
             "X-Slack-Signature": "v0=" + hex_mac(SLACK_SECRET, b"v0:%d:" % ts + body)}
        st, _, data = self.b.request("POST", "/webhooks/slack", body=body, headers=h)
        self.assertEqual(st, 200, data)
        self.assertEqual(json.loads(data), {"challenge": challenge})
        # unsigned, it is refused like any delivery
        del h["X-Slack-Signature"]
        self.assertRefused(self.b.request("POST", "/webhooks/slack", body=body, headers=h), 401)
        resp, want, _ = self.post_route(self.b, "slack")  # barrier
        self.assertAccepted(resp)
        evs = self.b.wait_ids([want["id"]])
        self.assertFalse([e for e in evs if challenge.encode() in json.dumps(e).encode()],
                         "the url_verification was published")

    def test_github_ping_is_answered_and_published(self):
        did = uid("ping")
        body = compact({"zen": "Keep it logically awesome.", "hook_id": 1,
                        "repository": {"full_name": "acme/ping"}})
        h = {"Content-Type": "application/json", "X-GitHub-Event": "ping",
             "X-GitHub-Delivery": did, "X-Hub-Signature-256": "sha256=" + hex_mac(
                 GITHUB_SECRET, body)}
        self.assertAccepted(self.b.request("POST", "/webhooks/github", body=body, headers=h))
        evs = self.b.wait_ids([did])
        ev = [e for e in evs if e.get("id") == did][0]
        self.assertEqual((ev["route"], ev["topic"], ev["source"]), ("github", "ping", "acme/ping"))

    def test_dedup_per_route(self):
        """The same id twice on one route: the second is a duplicate. The
        same id on two routes (and on the Intercom route): each published."""
        did = uid("same")
        resp, want, _ = self.post_route(self.b, "github", did=did)
        self.assertAccepted(resp)
        (st, _, data), _, _ = self.post_route(self.b, "github", did=did)
        self.assertEqual(st, 200, data)
        self.assertEqual(json.loads(data), {"status": "duplicate"})
        resp, _, _ = self.post_route(self.b, "shopify", did=did)
        self.assertAccepted(resp)
        self.assertAccepted(self.b.post_signed(notification(did)))
        evs = self.b.wait_events(lambda e: len([x for x in e if x.get("id") == did]) >= 3)
        routes = sorted(e.get("route", "intercom") for e in evs if e.get("id") == did)
        self.assertEqual(routes, ["github", "intercom", "shopify"])

    def test_head_on_every_route_path(self):
        for route, spec in SCHEMES.items():
            st, _, _ = self.b.head(spec["conf"]["path"])
            self.assertEqual(st, 200, route)
        self.assertEqual(self.b.head()[0], 200, "intercom")

    def test_metrics_label_each_route(self):
        resp, _, _ = self.post_route(self.b, "stripe")
        self.assertAccepted(resp)
        m = self.b.metrics()
        self.assertGreaterEqual(metric_sum(m, "hookbridge_requests_total", route="stripe",
                                           status="200"), 1)
        self.assertGreaterEqual(metric_sum(m, "hookbridge_request_duration_seconds_count",
                                           route="stripe"), 1)
        names = {l.get("route") for n, l, _ in m if n == "hookbridge_requests_total"}
        self.assertTrue(set(SCHEMES) | {"intercom"} <= names, names)


class RouteOptions(RoutesCase):
    """Limits, the allowlist, restarts, SIGHUP and the environment."""

    def test_route_max_body_is_its_own(self):
        b = self.start_bridge(**route_config(shopify={"max_body": "1k"}))
        pad = lambda body, h: (body[:-1] + b',"pad":"' + b"x" * 2000 + b'"}', h)  # noqa: E731
        resp, _, _ = self.post_route(b, "shopify", mutate=pad)
        self.assertRefused(resp, 413, "shopify over its max_body:")
        resp, want, _ = self.post_route(b, "github", mutate=pad)
        self.assertEqual(resp[0], 401, "github: 2k is within limits.max_body; the padded body "
                         "no longer matches its signature")
        nid = uid("big")
        self.assertAccepted(b.post_signed(notification(nid, pad=2000)))
        self.assertRegex(b.log_text(), r"413 to \S+ on route shopify: body too large")
        # the gate's refusal is counted under the route whose path it was for
        self.assertEqual(metric_sum(b.metrics(), "hookbridge_requests_total", route="shopify",
                                    status="413"), 1)

    def test_allow_ips_guards_the_intercom_route_only(self):
        b = self.start_bridge(**{"intercom.allow_ips": "10.0.0.0/8"}, **route_config())
        st, _, body = b.post_signed(notification(uid("ic")))
        self.assertEqual(st, 403, body)
        resp, want, _ = self.post_route(b, "github")
        self.assertAccepted(resp, "github is not behind intercom.allow_ips")
        b.wait_ids([want["id"]])

    def test_gate_and_route_agree_on_absolute_form_and_fragment_targets(self):
        """The head gate (conn.c) and the route module must find the same
        route for a request: evhttp routes 'https://host/webhooks/github'
        and '/webhooks/github#x' to github, so the gate must apply github's
        max_body and allowlist to them, not those of a request of no route
        (limits.max_body, and intercom.allow_ips)."""
        b = self.start_bridge(**{"intercom.allow_ips": "10.0.0.0/8"},
                              **route_config(github={"max_body": "4m"}))
        gh = SCHEMES["github"]["conf"]["path"]

        def pad(body, h):
            body = body[:-1] + b',"pad":"' + b"x" * (2 << 20) + b'"}'
            h["X-Hub-Signature-256"] = "sha256=" + hex_mac(GITHUB_SECRET, body)
            return body, h

        for target in ("https://localhost:%d%s" % (b.port, gh), gh + "#frag",
                       "//localhost" + gh):
            with self.subTest(target=target):
                resp, want, _ = self.post_route(b, "github", target=target)
                self.assertAccepted(resp, "github is not behind intercom.allow_ips")
                b.wait_ids([want["id"]])
                resp, want, _ = self.post_route(b, "github", target=target, mutate=pad)
                self.assertAccepted(resp, "2 MiB is within github's max_body")
                b.wait_ids([want["id"]])
        # and the Intercom route stays behind its allowlist whatever the form
        for target in ("https://localhost:%d%s" % (b.port, b.intercom_path),
                       b.intercom_path + "#frag"):
            st, _, body = b.post_signed(notification(uid("ic")), path=target)
            self.assertEqual(st, 403, "%s: %r" % (target, body))

    def test_deliveries_without_an_id_are_never_duplicates(self):
        """A delivery whose id is empty ("id": "", an empty id header) has
        no id to deduplicate on, on any route, as on the Intercom route:
        the second such delivery of a route is another event, not a
        duplicate answered 200 and dropped (its key was "<route>\\0")."""
        b = self.start_bridge(**route_config())
        for route in ("stripe", "generic", "slack"):
            spec = SCHEMES[route]
            tags = []
            for k in range(2):
                tags.append(uid("noid"))
                body, h, _ = spec["make"](spec["secret"], "", int(time.time()), tags[-1])
                h.setdefault("Content-Type", "application/json")
                resp = b.request("POST", spec["conf"]["path"], body=body, headers=h)
                self.assertAccepted(resp, "%s, delivery %d without an id:" % (route, k + 1))
                self.assertJsonBody(resp[2], "status", "accepted")
            b.wait_events(lambda evs, route=route, tags=tags: all(
                any(t.encode() in json.dumps(e).encode() for e in evs if e.get("route") == route)
                for t in tags))

    def test_dedup_survives_a_restart_per_route(self):
        """The ids rebuilt from the journal (and snapshot) land in each
        record's own route's id space."""
        b = self.start_bridge(**route_config())
        did = uid("restart")
        resp, _, _ = self.post_route(b, "github", did=did)
        self.assertAccepted(resp)
        self.assertAccepted(b.post_signed(notification(did)))
        b.wait_events(lambda e: len([x for x in e if x.get("id") == did]) >= 2)
        b.restart()
        (st, _, data), _, _ = self.post_route(b, "github", did=did)
        self.assertEqual((st, json.loads(data)), (200, {"status": "duplicate"}), "github repeat")
        st, _, data = b.post_signed(notification(did))
        self.assertEqual((st, json.loads(data)), (200, {"status": "duplicate"}), "intercom repeat")
        resp, _, _ = self.post_route(b, "stripe", did=did)
        self.assertAccepted(resp, "the same id on stripe is new")
        b.wait_events(lambda e: len([x for x in e if x.get("id") == did]) >= 3)

    def test_sighup_reloads_a_route_secret(self):
        b = hbtest.Bridge(start=False, **route_config())
        self.addCleanup(self._finish_bridge, b)
        path = os.path.join(b.tmpdir, "github.secret")
        with open(path, "w") as f:
            f.write(GITHUB_SECRET + "\n")
        b.config["route.github.secret"] = "file:" + path
        b.start()
        self.assertAccepted(self.post_route(b, "github")[0])
        with open(path, "w") as f:
            f.write("rotated-github-secret\n")
        b.proc.send_signal(signal.SIGHUP)
        self.assertTrue(b.wait_log(lambda t: "SIGHUP: reloaded 1 github secret(s)" in t),
                        b.log_tail())
        self.assertRefused(self.post_route(b, "github")[0], 401, "old secret after SIGHUP:")
        self.assertAccepted(self.post_route(b, "github", secret="rotated-github-secret")[0])

    def test_environment_defines_a_route(self):
        env = {"HOOKBRIDGE_ROUTE_GH_PATH": "/env/github",
               "HOOKBRIDGE_ROUTE_GH_SCHEME": "github",
               "HOOKBRIDGE_ROUTE_GH_SECRET": GITHUB_SECRET,
               "HOOKBRIDGE_ROUTE_GH_KAFKA_TOPIC": "env.{route}.{topic}"}
        b = self.start_bridge(env=env)
        did = uid("env")
        body, h, want = make_github(GITHUB_SECRET, did, 0, uid("t"))
        h["Content-Type"] = "application/json"
        self.assertAccepted(b.request("POST", "/env/github", body=body, headers=h))
        evs = b.wait_ids([did])
        self.assertEqual([e["route"] for e in evs if e.get("id") == did], ["gh"])

    def test_intercom_path_empty_needs_no_intercom_secret(self):
        b = self.start_bridge(**{"intercom.path": "", "intercom.secret": None},
                              **route_config())
        self.assertEqual(b.post_signed(notification(uid("ic")))[0], 404)
        resp, want, _ = self.post_route(b, "slack")
        self.assertAccepted(resp)
        b.wait_ids([want["id"]])


class CheckConfig(RoutesCase):
    """--check-config names the route in every route error."""

    def check(self, extra, env=None):
        b = hbtest.Bridge(start=False, **route_config())
        self.addCleanup(b.cleanup)
        b.config.update(extra)
        b.write_config()
        e = dict(b.environment())
        e.update(env or {})
        p = subprocess.run([b.bin, "--check-config", "-c", b.config_path], env=e,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        return p.returncode, p.stdout.decode() + p.stderr.decode()

    def test_good_config(self):
        rc, out = self.check({})
        self.assertEqual(rc, 0, out)

    def test_errors_name_the_route(self):
        cases = [
            ({"route.github.colour": "red"}, "route.github", "colour"),
            ({"route.stripe.path": "/webhooks/github"}, "route.stripe.path", "route github"),
            ({"route.shopify.path": "/webhooks/intercom"}, "route.shopify.path", "Intercom"),
            ({"route.acme.path": "/acme", "route.acme.scheme": "acme",
              "route.acme.secret": "x"}, "route.acme.scheme", "acme"),
            ({"route.acme.path": "/acme", "route.acme.secret": "x"}, "route.acme.scheme",
             "required"),
            ({"route.slack.secret": ""}, "route.slack.secret", "required"),
            ({"route.standard.secret": "whsec_%%%"}, "route.standard", "secret"),
            ({"route.generic.algorithm": "md5"}, "route.generic", "md5"),
            ({"route.intercom.path": "/x"}, "route.intercom", "intercom."),
        ]
        for extra, key, word in cases:
            with self.subTest(extra=extra):
                rc, out = self.check(extra)
                self.assertEqual(rc, 1, out)
                self.assertIn(key, out)
                self.assertIn(word, out)
                for s in self.secrets_never_logged:
                    self.assertNotIn(s, out)

    def test_unknown_route_key_in_the_environment(self):
        rc, out = self.check({}, env={"HOOKBRIDGE_ROUTE_GITHUB_COLOUR": "red"})
        self.assertEqual(rc, 1, out)
        self.assertIn("HOOKBRIDGE_ROUTE_GITHUB_COLOUR", out)


class KafkaSink(RoutesCase):
    """Every scheme through Kafka: the topic from the route's template
    (github at the default {route}.{topic}), key = source, hookbridge-*
    and the provider's headers."""

    def setUp(self):
        self.brokers = hbsinks.require_service(self, "KAFKA_BROKERS")
        hbsinks.require_kcat(self)
        self.prefix = hbsinks.unique_prefix()

    def test_each_scheme_to_kafka(self):
        per = {name: {"kafka.topic": self.prefix + ".{route}.{topic}"}
               for name in SCHEMES if name != "github"}
        b = self.start_bridge(**{"sinks": "kafka", "kafka.brokers": self.brokers,
                                 "kafka.topic": self.prefix + ".{topic}"},
                              **route_config(**per))
        sent = {}
        for route in SCHEMES:
            resp, want, body = self.post_route(b, route)
            self.assertAccepted(resp, route)
            tmpl = "%s.%s" % (route, want["topic"]) if route == "github" else \
                "%s.%s.%s" % (self.prefix, route, want["topic"])
            sent[route] = (kafka_topic_name(tmpl), want, body)
        nid = uid("ic")
        ic_body = notification(nid, topic="contact.created")
        self.assertAccepted(b.post_signed(ic_body))
        topics = [t for t, _, _ in sent.values()] + [kafka_topic_name(self.prefix +
                                                                      ".contact.created")]
        got = hbsinks.kafka_wait(self.brokers, topics, lambda g: all(g[t] for t in topics),
                                 timeout=90, what="one message in each route's topic")
        for route, (topic, want, body) in sent.items():
            with self.subTest(route=route):
                msgs = [m for m in got[topic] if dict(m.headers).get("hookbridge-id") ==
                        want["id"]]
                self.assertEqual(len(msgs), 1, "%s: %r" % (topic, got[topic]))
                m = msgs[0]
                h = dict(m.headers)
                self.assertEqual(m.value, body)
                self.assertEqual(m.key, want["source"].encode(), "key = {source}")
                self.assertEqual(h.get("hookbridge-route"), route)
                self.assertEqual(h.get("hookbridge-topic"), want["topic"])
                self.assertEqual(h.get("hookbridge-source"), want["source"])
                for k, v in (want["headers"] or {}).items():
                    self.assertEqual(h.get(k), v, "provider header %s" % k)
                self.assertNotIn("intercom-topic", h)
        ic = got[topics[-1]]
        self.assertTrue([m for m in ic if dict(m.headers).get("intercom-notification-id") == nid])


class RedisSink(RoutesCase):
    """Every scheme through Redis Streams: the stream from the route's
    template (shopify at the default {route}:{source}:{topic}), the route,
    source and provider headers as fields."""

    def setUp(self):
        self.url = hbsinks.require_service(self, "REDIS_URL")
        self.prefix = hbsinks.unique_prefix()
        self.r = hbsinks.Redis(self.url)
        self.addCleanup(self.r.close)

    def test_each_scheme_to_redis(self):
        per = {name: {"redis.stream": self.prefix + ":{route}:{source}:{topic}"}
               for name in SCHEMES if name != "shopify"}
        b = self.start_bridge(**{"sinks": "redis", "redis.url": self.url,
                                 "redis.stream": self.prefix + ":{app_id}:{topic}"},
                              **route_config(**per))
        sent = {}
        for route in SCHEMES:
            tag = uid("t")
            resp, want, body = self.post_route(b, route, tag=tag)
            self.assertAccepted(resp, route)
            key = "%s:%s:%s" % (route, want["source"], want["topic"])
            if route != "shopify":
                key = self.prefix + ":" + key
            sent[route] = (redis_key_name(key), want, body)
        keys = [k for k, _, _ in sent.values()]
        self.addCleanup(lambda: [self.r.cmd("DEL", k) for k in keys])
        self.assertTrue(hbsinks.wait_until(
            lambda: all(self.r.cmd("XLEN", k) >= 1 for k in keys), 60),
            {k: self.r.cmd("XLEN", k) for k in keys})
        for route, (key, want, body) in sent.items():
            with self.subTest(route=route):
                entries = self.r.xrange_all(key)
                self.assertEqual(len(entries), 1)
                f = entries[0][1]
                d = dict(zip(f[0::2], f[1::2]))
                self.assertEqual(d[b"id"], want["id"].encode())
                self.assertEqual(d[b"topic"], want["topic"].encode())
                self.assertEqual(d[b"source"], want["source"].encode())
                self.assertEqual(d[b"route"], route.encode())
                self.assertEqual(d[b"payload"], body)
                for k, v in (want["headers"] or {}).items():
                    self.assertEqual(d.get(k.encode()), v.encode(), "provider header %s" % k)


if __name__ == "__main__":
    hbtest.main()
