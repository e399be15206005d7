"""`hookbridge journal replay` through the running bridge's admin listener (issue 12).

A bridge publishes N events to the file sink; a replay of a sequence range, a
time range or a topic asks the bridge (Authorization: Bearer admin.token) to
publish exactly those records again, marked "replay": true; a wrong or missing
token replays nothing.

Run: python3 -m unittest -v tests/integration/test_replay.py
 or: python3 tests/integration/test_replay.py
"""

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hbsinks  # noqa: E402
import hbtest  # noqa: E402
from hbtest import BridgeTestCase, notification  # noqa: E402

N = 20
TOKEN = "replay-token-4f1c9a7d2b"


def hookbridge(args, env=None, timeout=120):
    full = {k: v for k, v in os.environ.items() if not k.startswith("HOOKBRIDGE_")}
    full.update(env or {})
    p = subprocess.run([hbtest.require_binary()] + list(args), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full,
                       timeout=hbtest.scaled(timeout))
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def admin_request(b, method, path, token=None):
    conn = http.client.HTTPConnection("127.0.0.1", b.admin_port, timeout=hbtest.scaled(10))
    try:
        headers = {"Authorization": "Bearer " + token} if token is not None else {}
        conn.request(method, path, headers=headers)
        r = conn.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        conn.close()


def wait_published(tc, b, sink="file", timeout=60):
    """Until the sink's cursor covers every record (a replay stops at the
    cursor, and the file sink acknowledges after its sync cadence)."""
    deadline = time.monotonic() + hbtest.scaled(timeout)
    while time.monotonic() < deadline:
        samples = b.metrics()
        if hbtest.metric_sum(samples, "hookbridge_sink_pending_records", sink=sink) == 0:
            return
        time.sleep(0.1)
    tc.fail("%s: records still pending after %ss" % (sink, timeout))


def strip_replay(obj):
    return {k: v for k, v in obj.items() if k != "replay"}


class ReplayFile(BridgeTestCase):
    """N events through the file sink, then replays of parts of them."""

    secrets_never_logged = (hbtest.SECRET, TOKEN)

    def setUp(self):
        tmp_token = os.path.join(self.id().replace(".", "_") + ".token")
        self.token_file = os.path.join(os.environ.get("TMPDIR", "/tmp"), tmp_token)
        with open(self.token_file, "w") as f:
            f.write(TOKEN + "\n")  # a Docker secret ends with a newline
        self.addCleanup(os.unlink, self.token_file)
        self.b = self.start_bridge(**{"admin.token": "file:" + self.token_file})
        conn = self.b.connection()
        try:
            for i in range(N):
                topic = "conversation.user.created" if i % 4 == 0 else "contact.created"
                st, _, answer = self.b.post_signed(
                    notification("notif_replay_%03d" % i, topic=topic, pad=i), conn=conn)
                self.assertEqual(st, 200, "post %d: %r" % (i, answer[:200]))
        finally:
            conn.close()
        self.b.wait_events(count=N, timeout=60)
        self.live = [json.loads(l) for l in self.b.sink_lines()]
        self.assertEqual(len(self.live), N)
        self.assertFalse(any("replay" in o for o in self.live), "live lines carry no marker")
        wait_published(self, self.b)

    def replay(self, *args, env=None, want_rc=0):
        rc, out, err = hookbridge(["journal", "replay", "-c", self.b.config_path] + list(args),
                                  env=env)
        self.assertEqual(rc, want_rc, "journal replay %s: %s%s" % (" ".join(args), out, err))
        return out, err

    def replayed_lines(self, count):
        """Wait until the file holds N + count lines; the ones after the live N."""
        self.b.wait_events(count=N + count, timeout=60)
        objs = [json.loads(l) for l in self.b.sink_lines()]
        self.assertEqual(len(objs), N + count, "exactly the replayed records, no more")
        self.assertEqual(objs[:N], self.live, "the live lines are untouched")
        for o in objs[N:]:
            self.assertIs(o.get("replay"), True, "a replayed line is marked: %r" % o)
        return [strip_replay(o) for o in objs[N:]]

    def test_sequence_range(self):
        out, err = self.replay("--sink", "file", "--from", "5", "--to", "9")
        self.assertNotIn("\r", err, "no progress line when stderr is not a terminal")
        self.assertIn("replayed 5 record(s) of records 5..9 to file: 5 published, 0 rejected", out)
        self.assertEqual(self.replayed_lines(5), self.live[4:9],
                         "records 5..9 again, the same fields, in order")
        # the sink's cursor did not move back nor ahead: a restart publishes nothing again
        self.b.stop()
        self.b.start()
        self.b.post_signed(notification("notif_replay_after"))
        self.b.wait_events(count=N + 6, timeout=60)
        objs = [json.loads(l) for l in self.b.sink_lines()]
        self.assertEqual(objs[-1]["id"], "notif_replay_after")
        self.assertNotIn("replay", objs[-1])

    def test_progress_line_on_a_terminal(self):
        import pty
        master, slave = pty.openpty()
        try:
            env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKBRIDGE_")}
            p = subprocess.run([hbtest.require_binary(), "journal", "replay", "-c",
                                self.b.config_path, "--sink", "file", "--from", "2", "--to", "4"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
                               env=env, timeout=hbtest.scaled(120))
            os.close(slave)
            slave = None
            tty = b""
            while True:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                tty += chunk
        finally:
            if slave is not None:
                os.close(slave)
            os.close(master)
        self.assertEqual(p.returncode, 0, tty)
        self.assertRegex(tty.decode(), r"\r100%  3 record\(s\), \d+/s")
        self.assertIn(b"replayed 3 record(s)", p.stdout)
        self.replayed_lines(3)

    def test_time_range_and_topic(self):
        times = [o["received_at"] for o in self.live]
        since, until = times[6], times[14]
        want = [o for o in self.live if since <= o["received_at"] < until
                and o["topic"].startswith("conversation.")]
        self.assertTrue(want, "the range holds conversation events")
        out, _ = self.replay("--sink", "file", "--since", since, "--until", until,
                             "--topic", "conversation.*")
        self.assertIn("replayed %d record(s)" % len(want), out)
        self.assertEqual(self.replayed_lines(len(want)), want)

    def test_dry_run_publishes_nothing(self):
        out, _ = self.replay("--sink", "file", "--topic", "conversation.*", "--dry-run")
        want = sum(1 for o in self.live if o["topic"].startswith("conversation."))
        self.assertIn("dry run: %d record(s) of records 1..%d would be replayed to file" %
                      (want, N), out)
        # a real replay afterwards: only its records follow the live ones
        self.replay("--sink", "file", "--from", str(N))
        self.assertEqual(self.replayed_lines(1), self.live[N - 1:])

    def test_token_required(self):
        # wrong token (the environment overrides the configuration), missing token
        _, err = self.replay("--sink", "file", env={"HOOKBRIDGE_ADMIN_TOKEN": "wrong"},
                             want_rc=1)
        self.assertIn("401", err)
        self.assertIn("wrong bearer token", err)
        st, body = admin_request(self.b, "POST", "/journal/replay?sink=file")
        self.assertEqual(st, 401, body)
        st, body = admin_request(self.b, "POST", "/journal/replay?sink=file", token=TOKEN + "x")
        self.assertEqual(st, 401, body)
        st, body = admin_request(self.b, "GET", "/journal/replay?sink=file", token="")
        self.assertEqual(st, 401, body)
        for path in ("/healthz", "/readyz", "/metrics"):
            self.assertEqual(admin_request(self.b, "GET", path)[0], 200, path)
        # the right one: the status says no replay ran
        st, body = admin_request(self.b, "GET", "/journal/replay?sink=file", token=TOKEN)
        self.assertEqual(st, 200, body)
        self.assertEqual(json.loads(body)["started_ms"], 0, "nothing was replayed")
        self.assertEqual(len(self.b.sink_lines()), N)

    def test_token_rotation_on_sighup(self):
        with open(self.token_file, "w") as f:
            f.write(TOKEN + "-rotated\n")
        self.b.proc.send_signal(signal.SIGHUP)
        self.assertTrue(self.b.wait_log(lambda t: "SIGHUP: reloaded admin.token (set)" in t,
                                        timeout=20), self.b.log_tail())
        st, body = admin_request(self.b, "GET", "/journal/replay?sink=file", token=TOKEN)
        self.assertEqual(st, 401, "the old token no longer works: " + body)
        st, body = admin_request(self.b, "GET", "/journal/replay?sink=file",
                                 token=TOKEN + "-rotated")
        self.assertEqual(st, 200, body)

    def test_nothing_past_the_cursor(self):
        _, err = self.replay("--sink", "file", "--from", str(N + 1), want_rc=1)
        self.assertIn("409", err)
        self.assertIn("nothing to replay", err)
        _, err = self.replay("--sink", "kafka", want_rc=1)
        self.assertIn("404", err)


class ReplayNoToken(BridgeTestCase):
    def test_refused_without_a_configured_token(self):
        b = self.start_bridge()
        b.post_signed(notification("notif_replay_nt"))
        b.wait_events(count=1, timeout=60)
        wait_published(self, b)
        st, body = admin_request(b, "POST", "/journal/replay?sink=file", token="anything")
        self.assertEqual(st, 403, body)
        self.assertIn("admin.token is not set", json.loads(body)["error"])
        rc, out, err = hookbridge(["journal", "replay", "-c", b.config_path, "--sink", "file"])
        self.assertEqual(rc, 1, out + err)
        self.assertIn("403", err)
        self.assertEqual(len(b.sink_lines()), 1, "nothing replayed")


def dead_letter_line(nid, sink, error, second):
    """A line as the sink runner writes it (src/jsonl.c, with sink and error)."""
    body = notification(nid)
    head = json.dumps({"received_at": "2026-11-29T10:00:%02d.000Z" % second, "app_id": "ws1",
                       "topic": "contact.created", "id": nid, "sink": sink, "error": error},
                      separators=(",", ":"))
    return head[:-1].encode() + b',"payload":' + body + b"}\n", body


def kcat_line(nid, second):
    """A line of `kcat -C -J` on the Kafka dead-letter topic."""
    body = notification(nid)
    return (json.dumps({
        "topic": "intercom.dead-letter", "partition": 0, "offset": second, "tstype": "create",
        "ts": 1796032800000, "broker": 1, "key": "ws1", "payload": body.decode(),
        "headers": ["intercom-topic", "contact.created", "intercom-app-id", "ws1",
                    "intercom-notification-id", nid,
                    "hookbridge-received-at", "2026-11-29T10:01:%02d.000Z" % second,
                    "content-type", "application/json",
                    "hookbridge-error", "Broker: Unknown topic or partition"]}) + "\n").encode(), body


class Redrive(BridgeTestCase):
    secrets_never_logged = (hbtest.SECRET, TOKEN)

    def setUp(self):
        self.b = self.start_bridge(**{"admin.token": TOKEN})
        self.env = {"HOOKBRIDGE_ADMIN_TOKEN": TOKEN}

    def redrive(self, *args, want_rc=0, env=None):
        rc, out, err = hookbridge(["dead-letter", "redrive", "-c", self.b.config_path] +
                                  list(args), env=self.env if env is None else env)
        self.assertEqual(rc, want_rc, "dead-letter redrive %s: %s%s" % (" ".join(args), out, err))
        return out, err

    def test_redrive_file_sink_dead_letters(self):
        path = os.path.join(self.b.tmpdir, "dead-letter.file.jsonl")
        pairs = [dead_letter_line("notif_rd_%d" % i, "file", "disk said no", i) for i in range(3)]
        torn = b'{"received_at":"2026-11-29T10:01'
        with open(path, "wb") as f:
            f.write(b"".join(l for l, _ in pairs) + torn)
        # a wrong token journals nothing and keeps every line
        self.redrive(want_rc=1, env={"HOOKBRIDGE_ADMIN_TOKEN": "wrong"})
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"".join(l for l, _ in pairs) + torn + b"\n")
        self.assertEqual(self.b.sink_lines(), [])
        out, err = self.redrive("--sink", "file", want_rc=1)  # the torn line stays
        self.assertIn("3 journaled again, 3 published by every sink", out)
        self.assertIn("line 4 stays: not a JSON line", err)
        lines = self.b.wait_events(count=3, timeout=60) and self.b.sink_lines()
        objs = [json.loads(l) for l in lines]
        self.assertEqual([o["id"] for o in objs], ["notif_rd_0", "notif_rd_1", "notif_rd_2"])
        for o, (_, body) in zip(objs, pairs):
            self.assertEqual(o["payload"], json.loads(body))
            self.assertNotIn("replay", o)
        self.assertEqual(objs[1]["received_at"], "2026-11-29T10:00:01.000Z",
                         "the original received_at is kept")
        with open(path, "rb") as f:
            self.assertEqual(f.read(), torn + b"\n", "published lines removed, the rest kept")
        self.assertFalse(os.path.exists(path + ".redrive"))
        # published once: a second redrive has nothing to publish
        self.redrive("--sink", "file", want_rc=1)
        self.assertEqual(len(self.b.sink_lines()), 3)

    def test_redrive_kcat_dump(self):
        dump = os.path.join(self.b.tmpdir, "dump.jsonl")
        pairs = [kcat_line("notif_kc_%d" % i, i) for i in range(2)]
        with open(dump, "wb") as f:
            f.write(b"".join(l for l, _ in pairs))
        out, _ = self.redrive("--file", dump)
        self.assertIn("2 journaled again, 2 published by every sink", out)
        # each redriven record's hand-off to the admin loop is counted, as
        # its queue wait is: the two histograms count the same records
        m = self.b.metrics()
        self.assertEqual([hbtest.metric_sum(m, "hookbridge_journal_%s_seconds_count" % h)
                          for h in ("queue", "handoff")], [2, 2])
        self.b.wait_events(count=2, timeout=60)
        objs = [json.loads(l) for l in self.b.sink_lines()]
        self.assertEqual([(o["id"], o["received_at"]) for o in objs],
                         [("notif_kc_0", "2026-11-29T10:01:00.000Z"),
                          ("notif_kc_1", "2026-11-29T10:01:01.000Z")])
        self.assertEqual(os.path.getsize(dump), 0, "every line published: the dump is empty")

    def test_redrive_keeps_another_routes_fields(self):
        """A dead letter of a route other than Intercom (whose id, topic and source came
        from the provider's headers, not the body) is journaled again with its route,
        fields and forwarded headers, from a dead-letter file and from a kcat dump."""
        body = b'{"action":"opened","issue":{"number":1}}'
        line = json.dumps({
            "received_at": "2026-11-29T10:02:00.000Z", "route": "github",
            "source": "octo/hello", "topic": "issues.opened", "id": "72d3162e-1",
            "delivery_attempts": 2,
            "headers": {"x-github-event": "issues", "x-github-delivery": "72d3162e-1"},
            "sink": "file", "error": "disk said no"})[:-1].encode() + b',"payload":' + body + b"}\n"
        with open(os.path.join(self.b.tmpdir, "dead-letter.file.jsonl"), "wb") as f:
            f.write(line)
        dump = os.path.join(self.b.tmpdir, "dump.jsonl")
        with open(dump, "wb") as f:
            f.write((json.dumps({
                "topic": "github.dead-letter", "partition": 0, "offset": 1, "key": "octo/hello",
                "payload": body.decode(),
                "headers": ["hookbridge-route", "github", "hookbridge-topic", "issues.opened",
                            "hookbridge-id", "72d3162e-2", "hookbridge-source", "octo/hello",
                            "x-github-event", "issues", "x-github-delivery", "72d3162e-2",
                            "hookbridge-received-at", "2026-11-29T10:02:01.000Z",
                            "content-type", "application/json",
                            "hookbridge-error", "Broker: Unknown topic or partition"]}) +
                     "\n").encode())
        out, _ = self.redrive("--sink", "file")
        self.assertIn("1 journaled again", out)
        out, _ = self.redrive("--file", dump)
        self.assertIn("1 journaled again", out)
        self.b.wait_events(count=2, timeout=60)
        objs = [json.loads(l) for l in self.b.sink_lines()]
        for o, n in zip(objs, ("1", "2")):
            self.assertEqual(o["route"], "github", o)
            self.assertEqual(o["source"], "octo/hello", o)
            self.assertEqual(o["topic"], "issues.opened", o)
            self.assertEqual(o["id"], "72d3162e-" + n, o)
            self.assertEqual(o["headers"], {"x-github-event": "issues",
                                            "x-github-delivery": "72d3162e-" + n}, o)
            self.assertEqual(o["payload"], json.loads(body), o)
        self.assertEqual(objs[0]["delivery_attempts"], 2)
        self.assertEqual(objs[1]["received_at"], "2026-11-29T10:02:01.000Z")


class ReplayKafkaRedis(BridgeTestCase):
    """One bridge publishing to Kafka and Redis (real servers); each replay goes to one
    of them only, and exactly the asked records come again, marked."""

    secrets_never_logged = (hbtest.SECRET, TOKEN)

    def setUp(self):
        self.brokers = hbsinks.require_service(self, "KAFKA_BROKERS")
        self.redis_url = hbsinks.require_service(self, "REDIS_URL")
        hbsinks.require_kcat(self)
        prefix = hbsinks.unique_prefix()
        self.b = self.start_bridge(**{
            "admin.token": TOKEN, "sinks": "kafka,redis", "kafka.brokers": self.brokers,
            "kafka.topic": prefix + ".{topic}", "redis.url": self.redis_url,
            "redis.stream": prefix + ":{app_id}:{topic}"})
        self.topic = hbsinks.kafka_topic_name(prefix + ".contact.created")
        self.stream = hbsinks.redis_key_name(prefix + ":ws1:contact.created")
        self.bodies = []
        for i in range(10):
            body = notification("notif_rkr_%02d" % i, pad=i)
            st, _, answer = self.b.post_signed(body)
            self.assertEqual(st, 200, answer)
            self.bodies.append(body)
        for sink in ("kafka", "redis"):
            wait_published(self, self.b, sink)
        self.redis = hbsinks.Redis(self.redis_url)
        self.addCleanup(self.redis.close)
        self.assertEqual(len(self.redis.xrange_all(self.stream)), 10)

    def replay(self, *args):
        rc, out, err = hookbridge(["journal", "replay", "-c", self.b.config_path] + list(args))
        self.assertEqual(rc, 0, out + err)
        return out

    def test_replay_to_kafka_only(self):
        out = self.replay("--sink", "kafka", "--from", "3", "--to", "6")
        self.assertIn("4 published, 0 rejected", out)
        got = hbsinks.kafka_wait(self.brokers, self.topic, lambda g: len(g[self.topic]) >= 14,
                                 what="10 live + 4 replayed messages")[self.topic]
        self.assertEqual(len(got), 14, "exactly 4 more")
        self.assertEqual([m.value for m in got], self.bodies + self.bodies[2:6])
        for m in got[:10]:
            self.assertNotIn("hookbridge-replay", dict(m.headers))
        for m in got[10:]:
            self.assertEqual(dict(m.headers).get("hookbridge-replay"), "1", m.headers)
        self.assertEqual(len(self.redis.xrange_all(self.stream)), 10, "redis got nothing")

    def test_replay_to_redis_only_by_time(self):
        entries = self.redis.xrange_all(self.stream)

        def field(e, name):
            f = e[1]
            return dict(zip(f[0::2], f[1::2])).get(name)
        times = [field(e, b"received_at").decode() for e in entries]
        since, until = times[2], times[7]
        want = [self.bodies[i] for i, t in enumerate(times) if since <= t < until]
        out = self.replay("--sink", "redis", "--since", since, "--until", until)
        self.assertIn("%d published, 0 rejected" % len(want), out)
        after = self.redis.xrange_all(self.stream)
        self.assertEqual(len(after), 10 + len(want), "exactly the time range again")
        self.assertEqual([field(e, b"payload") for e in after[10:]], want)
        for e in after[10:]:
            self.assertEqual(field(e, b"replay"), b"1")
        for e in after[:10]:
            self.assertIsNone(field(e, b"replay"))
        got = hbsinks.kafka_consume(self.brokers, self.topic)
        self.assertEqual(len(got), 10, "kafka got nothing")


class RedriveRedis(BridgeTestCase):
    """Redis rejects an event for good (its stream key holds a string): dead-lettered; a
    redrive while the cause is there is rejected again and says why; once the key is
    deleted a redrive publishes it once and empties the dead-letter file."""

    secrets_never_logged = (hbtest.SECRET, TOKEN)

    def test_redrive_after_the_cause_is_fixed(self):
        url = hbsinks.require_service(self, "REDIS_URL")
        prefix = hbsinks.unique_prefix()
        b = self.start_bridge(**{"admin.token": TOKEN, "sinks": "redis", "redis.url": url,
                                 "redis.stream": prefix + ":{app_id}:{topic}"})
        stream = hbsinks.redis_key_name(prefix + ":ws1:contact.created")
        redis = hbsinks.Redis(url)
        self.addCleanup(redis.close)
        redis.cmd("SET", stream, "not a stream")
        body = notification("notif_rdr_1")
        self.assertEqual(b.post_signed(body)[0], 200)
        path = os.path.join(b.tmpdir, "dead-letter.redis.jsonl")
        wait_published(self, b, "redis")
        with open(path, "rb") as f:
            first = f.read()
        self.assertIn(b"WRONGTYPE", first)

        def redrive(want_rc):
            rc, out, err = hookbridge(["dead-letter", "redrive", "-c", b.config_path,
                                       "--sink", "redis"])
            self.assertEqual(rc, want_rc, out + err)
            return out
        out = redrive(1)
        self.assertRegex(out, r"rejected again by redis: topic contact.created, "
                              r"id notif_rdr_1: WRONGTYPE")
        with open(path, "rb") as f:
            lines = f.read().splitlines()
        self.assertEqual(len(lines), 1, "the new rejection only, not the old line too")
        redis.cmd("DEL", stream)
        out = redrive(0)
        self.assertIn("1 journaled again, 1 published by every sink", out)
        self.assertNotIn("rejected again", out)
        entries = redis.xrange_all(stream)
        self.assertEqual(len(entries), 1, "published once")
        f = entries[0][1]
        self.assertEqual(dict(zip(f[0::2], f[1::2]))[b"payload"], body)
        self.assertFalse(os.path.exists(path), "no dead letter left")


class ReplayDeletedRange(BridgeTestCase):
    """Without journal.retain published segments go: a replay says which records the
    journal no longer holds and replays what is left, exactly."""

    secrets_never_logged = (hbtest.SECRET, TOKEN)

    def test_replay_names_what_is_gone(self):
        b = self.start_bridge(**{"admin.token": TOKEN, "journal.max_bytes": "65536",
                                 "limits.max_body": "16384", "dedup": "off"})
        conn = b.connection()
        try:
            for i in range(40):
                st, _, answer = b.post_signed(notification("notif_gone_%02d" % i, pad=400),
                                              conn=conn)
                self.assertEqual(st, 200, answer)
        finally:
            conn.close()
        b.wait_events(count=40, timeout=60)
        wait_published(self, b)
        deadline = time.monotonic() + hbtest.scaled(30)
        while hbtest.metric_sum(b.metrics(), "hookbridge_journal_segments") > 2:
            self.assertLess(time.monotonic(), deadline, "published segments are deleted")
            time.sleep(0.1)
        live = b.sink_lines()
        rc, out, err = hookbridge(["journal", "replay", "-c", b.config_path, "--sink", "file"],
                                  env={"HOOKBRIDGE_ADMIN_TOKEN": TOKEN})
        self.assertEqual(rc, 0, out + err)
        m = re.search(r"no longer holds records 1\.\.(\d+) ", err)
        self.assertTrue(m, err)
        gone = int(m.group(1))
        self.assertTrue(0 < gone < 40, err)
        self.assertIn("replayed %d record(s) of records 1..40" % (40 - gone), out)
        b.wait_events(count=40 + 40 - gone, timeout=60)
        again = [strip_replay(json.loads(l)) for l in b.sink_lines()[40:]]
        self.assertEqual(again, [json.loads(l) for l in live[gone:]])


if __name__ == "__main__":
    unittest.main(verbosity=2)
