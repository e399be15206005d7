"""Helpers for the sink integration tests (Kafka, Redis Streams, outages).

Python 3 standard library only; Kafka is read with kcat, Redis with a tiny
RESP client over a raw socket (byte exact, no redis-py needed).

  require_service(tc, "KAFKA_BROKERS")   the shared server's address from the
                                          environment; FAILS when missing,
                                          skips instead when HB_ALLOW_SKIP=1
  unique_prefix()                        "t<random hex>" for topic/stream names
  kafka_consume(brokers, topic)          every message of a topic (list of Msg)
  kafka_wait(...)                        poll kafka_consume until a predicate
  Redis(url)                             RESP client: cmd(), xrange_all(), ...
  PrivateService(tc, "redis"|"kafka")    a private server for outage tests,
                                          always stopped by a cleanup
  redis_server(tc, *args)                a throwaway redis-server with extra
                                          options (requirepass, replicaof ...)
  redis_count_ids(url, pattern, dbs)     {id: entries} over streams and dbs
  sink_pending(bridge, sink)             records journaled, not yet released
  wait_not_ready(tc, bridge, *words)     /readyz 503 naming every word
  post_notifications(tc, bridge, tag, n) n signed posts answered 200; the ids
  Poster                                 a thread posting on one keep-alive
                                          connection, recording send/answer
                                          times per notification

Nothing here sleeps for correctness: every wait polls with a deadline.
"""

import collections
import os
import queue
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import uuid
from urllib.parse import urlparse

import hbtest
from hbtest import scaled, sign

HERE = os.path.dirname(os.path.abspath(__file__))
SERVICES = os.path.join(os.path.dirname(HERE), "services")


# ------------------------------------------------------------ environment

def allow_skip():
    return os.environ.get("HB_ALLOW_SKIP") == "1"


def fail_or_skip(tc, msg):
    if allow_skip():
        raise unittest.SkipTest(msg + " (skipped: HB_ALLOW_SKIP=1)")
    tc.fail(msg + " (set HB_ALLOW_SKIP=1 to skip instead of failing)")


def require_service(tc, var):
    """The value of $REDIS_URL / $KAFKA_BROKERS, or fail (skip with
    HB_ALLOW_SKIP=1).  scripts/test.sh exports both."""
    v = os.environ.get(var, "").strip()
    if not v:
        fail_or_skip(tc, "%s is not set: this test needs a real server. Start one with "
                     "tests/services/%s.sh start and export %s (scripts/test.sh does this)" %
                     (var, "kafka" if var.startswith("KAFKA") else "redis", var))
    return v


def require_kcat(tc):
    if shutil.which("kcat") is None:
        fail_or_skip(tc, "kcat not found: install the Debian package kcat")


def unique_prefix():
    return "t" + uuid.uuid4().hex[:12]


def kafka_topic_name(s):
    """The bridge's sanitising of Kafka topic names."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", s)


def redis_key_name(s):
    """The bridge's sanitising of Redis keys: control chars, space, DEL -> _."""
    b = s.encode() if isinstance(s, str) else s
    return bytes(c if (0x20 < c < 0x7f or c >= 0x80) else 0x5f for c in b)


# ------------------------------------------------------------ Kafka (kcat)

Msg = collections.namedtuple("Msg", "topic partition offset key value headers ts")
# key: bytes or None; value: bytes; headers: list of (name, value) str pairs

_KCAT_FMT = "@@M %t %p %o %K %S %T\\n%k\\n%s\\n%h\\n"


class KcatError(Exception):
    pass


def _parse_kcat(data):
    out = []
    pos = 0
    n = len(data)
    while pos < n:
        if not data.startswith(b"@@M ", pos):
            raise KcatError("unexpected kcat output at byte %d: %r" % (pos, data[pos:pos + 80]))
        eol = data.index(b"\n", pos)
        f = data[pos + 4:eol].split(b" ")
        topic, part, off, klen, vlen, ts = (f[0].decode(), int(f[1]), int(f[2]), int(f[3]),
                                            int(f[4]), int(f[5]))
        pos = eol + 1
        if klen >= 0:
            key = data[pos:pos + klen]
            pos += klen
        else:
            key = None
            pos = data.index(b"\n", pos)  # kcat may print nothing or "NULL"
        if data[pos:pos + 1] != b"\n":
            raise KcatError("kcat output: key not followed by newline at %d" % pos)
        pos += 1
        value = data[pos:pos + max(vlen, 0)]
        pos += max(vlen, 0)
        if data[pos:pos + 1] != b"\n":
            raise KcatError("kcat output: value not followed by newline at %d" % pos)
        pos += 1
        eol = data.index(b"\n", pos)
        hline = data[pos:eol].decode("utf-8", "replace")
        pos = eol + 1
        headers = []
        if hline:
            for item in hline.split(","):
                k, _, v = item.partition("=")
                headers.append((k, v))
        out.append(Msg(topic, part, off, key, value, headers, ts))
    return out


def kafka_consume(brokers, topic, timeout=60.0):
    """All messages currently in `topic` (every partition, from the
    beginning), or [] if the topic does not exist (yet).  Raises KcatError
    on other failures."""
    cmd = ["kcat", "-b", brokers, "-C", "-t", topic, "-o", "beginning", "-e", "-q",
           "-m", "15", "-X", "fetch.wait.max.ms=20", "-f", _KCAT_FMT]
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=scaled(timeout))
    except subprocess.TimeoutExpired:
        raise KcatError("kcat did not finish within %.0fs: %s" % (scaled(timeout), cmd))
    err = p.stderr.decode("utf-8", "replace")
    if p.returncode != 0:
        if "Unknown topic or partition" in err or "Leader not available" in err:
            return []
        raise KcatError("kcat exit %d: %s" % (p.returncode, err.strip()[-500:]))
    return _parse_kcat(p.stdout)


def kafka_wait(brokers, topics, predicate, timeout=60.0, what="condition"):
    """Poll until predicate({topic: [Msg]}) is true; returns the dict.
    On timeout raises AssertionError describing what was seen."""
    if isinstance(topics, str):
        topics = [topics]
    deadline = time.monotonic() + scaled(timeout)
    last_err = None
    while True:
        got = {}
        try:
            for t in topics:
                got[t] = kafka_consume(brokers, t)
            last_err = None
            if predicate(got):
                return got
        except KcatError as e:
            last_err = e
        if time.monotonic() >= deadline:
            raise AssertionError("Kafka %s: %s not met within %.0fs; messages per topic: %s%s" % (
                brokers, what, scaled(timeout), {t: len(v) for t, v in got.items()},
                "; last kcat error: %s" % last_err if last_err else ""))
        time.sleep(0.3)


def kafka_wait_ids(brokers, topic, ids, timeout=60.0):
    """Poll until every notification id in `ids` is in `topic` (by the
    intercom-notification-id header).  Returns (messages, missing set);
    does not raise on timeout: the caller reports and asserts."""
    ids = set(ids)
    deadline = time.monotonic() + scaled(timeout)
    msgs, missing = [], set(ids)
    while True:
        try:
            msgs = kafka_consume(brokers, topic)
            seen = {dict(m.headers).get("intercom-notification-id") for m in msgs}
            missing = ids - seen
            if not missing:
                return msgs, missing
        except KcatError:
            pass
        if time.monotonic() >= deadline:
            return msgs, missing
        time.sleep(0.5)


# ------------------------------------------------------------ Redis (RESP)

class RedisError(Exception):
    pass


class Redis:
    """Minimal blocking RESP2 client.  Replies: bytes, int, list, None;
    an error reply raises RedisError."""

    def __init__(self, url, timeout=30.0):
        u = urlparse(url)
        if u.scheme != "redis":
            raise ValueError("not a redis:// URL: %r" % url)
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or 6379
        self.db = int(u.path.strip("/") or 0) if u.path.strip("/") else 0
        self.timeout = scaled(timeout)
        self.sock = None
        self.buf = b""
        self.pos = 0

    def connect(self):
        self.close()
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self.buf = b""
        self.pos = 0
        if self.db:
            self.cmd("SELECT", self.db)

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    @staticmethod
    def _enc(a):
        if isinstance(a, bytes):
            return a
        return str(a).encode()

    def cmd(self, *args):
        if self.sock is None:
            self.connect()
        parts = [b"*%d\r\n" % len(args)]
        for a in args:
            a = self._enc(a)
            parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
        try:
            self.sock.sendall(b"".join(parts))
            return self._reply()
        except (OSError, RedisError, ValueError) as e:
            if not isinstance(e, RedisError):
                self.close()
            raise

    # self.buf[self.pos:] is unread; consumed bytes are dropped only when
    # more is read (slicing per element would be quadratic on big replies)
    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise OSError("Redis closed the connection")
        if self.pos:
            self.buf = self.buf[self.pos:]
            self.pos = 0
        self.buf += chunk

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n", self.pos)
            if i >= 0:
                line, self.pos = self.buf[self.pos:i], i + 2
                return line
            self._fill()

    def _exact(self, n):
        while len(self.buf) - self.pos < n + 2:
            self._fill()
        data = self.buf[self.pos:self.pos + n]
        self.pos += n + 2
        return data

    def _reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest
        if t == b"-":
            raise RedisError(rest.decode("utf-8", "replace"))
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RedisError("bad RESP type byte %r" % line[:40])

    def scan_keys(self, pattern):
        keys, cursor = set(), b"0"
        while True:
            cursor, batch = self.cmd("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
            keys.update(batch)
            if cursor == b"0":
                return sorted(keys)

    def xrange_all(self, key, page=2000):
        """[(entry_id bytes, [field, value, ...] bytes)] of the whole stream."""
        out, start = [], b"-"
        while True:
            batch = self.cmd("XRANGE", key, start, "+", "COUNT", page)
            out.extend((e[0], e[1]) for e in batch)
            if len(batch) < page:
                return out
            start = b"(" + batch[-1][0]


def redis_wait_ids(url, pattern, ids, timeout=60.0):
    """Poll until every id is the `id` field of an entry in the streams
    matching `pattern`.  Returns ({id: count}, missing set); no raise."""
    ids = {i.encode() if isinstance(i, str) else i for i in ids}
    deadline = time.monotonic() + scaled(timeout)
    counts, missing = collections.Counter(), set(ids)
    r = Redis(url)
    try:
        while True:
            try:
                counts = collections.Counter()
                for k in r.scan_keys(pattern):
                    for _, fields in r.xrange_all(k):
                        d = dict(zip(fields[0::2], fields[1::2]))
                        counts[d.get(b"id")] += 1
                missing = ids - set(counts)
                if not missing:
                    return counts, missing
            except (OSError, RedisError):
                r.close()
            if time.monotonic() >= deadline:
                return counts, missing
            time.sleep(0.5)
    finally:
        r.close()


# ------------------------------------------------------------ private servers

def background(tc, argv, log_path):
    """Start argv with its output in log_path; a cleanup on tc terminates it
    (kills it after 10 s).  Returns the Popen."""
    log = open(log_path, "wb")
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    def stop():
        p.terminate()
        try:
            p.wait(scaled(10))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
        log.close()
    tc.addCleanup(stop)
    return p


def redis_server(tc, *args, password=None, port=None):
    """A throwaway redis-server in the foreground on a loopback port (a
    free one unless `port` is given), with extra command-line options
    `args` (e.g. "--requirepass", "pw" or "--replicaof", "127.0.0.1",
    "6379").  It is terminated by a cleanup on `tc`.  Returns
    redis://127.0.0.1:PORT once it answers PING (AUTHing with `password`
    first when given)."""
    exe = shutil.which("redis-server")
    if not exe:
        fail_or_skip(tc, "redis-server is not installed (Debian package redis-server)")
    tmp = tempfile.mkdtemp(prefix="hbtest-redis-")
    port = port or hbtest.free_port()
    tc.addCleanup(shutil.rmtree, tmp, True)  # runs after the server's stop
    p = background(tc, [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "no", "--dir", tmp] + [str(a) for a in args],
                   os.path.join(tmp, "redis.log"))
    url = "redis://127.0.0.1:%d" % port

    def up():
        try:
            with Redis(url, timeout=5) as r:
                if password:
                    r.cmd("AUTH", password)
                return r.cmd("PING") == b"PONG"
        except (OSError, RedisError):
            return p.poll() is not None  # exited: stop polling, report below
    if not wait_until(up, 20) or p.poll() is not None:
        with open(os.path.join(tmp, "redis.log"), "rb") as f:
            tail = f.read()[-2000:].decode("utf-8", "replace")
        tc.fail("private redis-server on port %d did not start:\n%s" % (port, tail))
    return url


def redis_version():
    """(major, minor) of the installed redis-server, or None."""
    exe = shutil.which("redis-server")
    if not exe:
        return None
    out = subprocess.run([exe, "--version"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL).stdout.decode()
    m = re.search(r"v=(\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else None


def redis_count_ids(url, pattern, dbs=(0,)):
    """{id: entries} over every stream matching `pattern` in each database
    of `dbs` (a Counter, so a missing id counts 0)."""
    counts = collections.Counter()
    with Redis(url) as r:
        for db in dbs:
            r.cmd("SELECT", db)
            for k in r.scan_keys(pattern):
                for _, fields in r.xrange_all(k):
                    counts[dict(zip(fields[0::2], fields[1::2])).get(b"id")] += 1
    return counts


def sink_pending(bridge, sink):
    """hookbridge_sink_pending_records{sink}: journaled, not yet released."""
    try:
        return hbtest.metric_sum(bridge.metrics(), "hookbridge_sink_pending_records", sink=sink)
    except (OSError, AssertionError):
        return -1


class PrivateService:
    """A private Redis or Kafka started by tests/services/<kind>.sh with its
    own state dir.  A cleanup stopping it (and deleting its state) is
    registered on the test case as soon as start() is first called."""

    VAR = {"redis": "REDIS_URL", "kafka": "KAFKA_BROKERS"}
    DIRVAR = {"redis": "HB_REDIS_DIR", "kafka": "HB_KAFKA_DIR"}

    def __init__(self, tc, kind, state_dir):
        self.tc = tc
        self.kind = kind
        self.dir = state_dir
        self.script = os.path.join(SERVICES, kind + ".sh")
        self.address = None
        self._cleanup_registered = False

    def _run(self, action, keep_data=False, timeout=240.0):
        env = dict(os.environ)
        env[self.DIRVAR[self.kind]] = self.dir
        env["KEEP_DATA"] = "1" if keep_data else "0"
        try:
            p = subprocess.run([self.script, action], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                               timeout=scaled(timeout))
        except subprocess.TimeoutExpired:
            raise AssertionError("%s %s did not finish within %.0fs" %
                                 (self.script, action, scaled(timeout)))
        return p.returncode, p.stdout.decode("utf-8", "replace"), \
            p.stderr.decode("utf-8", "replace")

    def start(self):
        if not self._cleanup_registered:
            self.tc.addCleanup(self.destroy)
            self._cleanup_registered = True
        rc, out, err = self._run("start")
        m = re.search(r"^%s=(\S+)$" % self.VAR[self.kind], out, re.M)
        if rc != 0 or not m:
            msg = "could not start a private %s (%s start, rc=%d):\n%s" % (
                self.kind, self.script, rc, err[-3000:])
            if self.address is None:  # never ran: missing java/redis-server etc.
                fail_or_skip(self.tc, msg)
            raise AssertionError(msg)
        if self.address is not None and m.group(1) != self.address:
            raise AssertionError("private %s came back on %s, not %s" %
                                 (self.kind, m.group(1), self.address))
        self.address = m.group(1)
        return self.address

    def stop(self, keep_data=True):
        rc, out, err = self._run("stop", keep_data=keep_data)
        if rc != 0:
            raise AssertionError("%s stop failed (rc=%d): %s" % (self.script, rc, err[-2000:]))

    def running(self):
        rc, _, _ = self._run("status", timeout=30)
        return rc == 0

    def log_tail(self, n=30):
        name = "broker.log" if self.kind == "kafka" else "redis.log"
        try:
            with open(os.path.join(self.dir, name), "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return "(no log)"

    def destroy(self):
        # keep the server's log next to the state dir (which stop deletes)
        name = "broker.log" if self.kind == "kafka" else "redis.log"
        try:
            shutil.copyfile(os.path.join(self.dir, name), self.dir + "-" + name)
        except OSError:
            pass
        try:
            self._run("stop", keep_data=False)
        except AssertionError:
            pass


# ------------------------------------------------------------ posting

Rec = collections.namedtuple("Rec", "nid ws t_sent t_answered status")


class Poster(threading.Thread):
    """Posts signed notifications on one keep-alive TLS connection.

    source: a queue.Queue of (nid, ws, body) (the thread ends when it is
    empty), or a callable make(k, n) -> (nid, ws, body) for an endless
    stream until stop() is called.  Every request is recorded as
    Rec(nid, ws, t_sent, t_answered, status) with time.monotonic() times;
    status None = transport error (not acknowledged; the connection is
    reopened).  pause: seconds between requests (pacing only)."""

    def __init__(self, bridge, k, source, pause=0.0):
        super().__init__(daemon=True, name="poster-%d" % k)
        self.b = bridge
        self.k = k
        self.source = source
        self.pause = pause
        self.stop_flag = threading.Event()
        self.recs = []
        self.errors = []
        self.bad = []  # (nid, status, body) for non-200 answers

    def stop(self):
        self.stop_flag.set()

    def _next(self, n):
        if callable(self.source):
            return self.source(self.k, n)
        try:
            return self.source.get_nowait()
        except queue.Empty:
            return None

    def run(self):
        conn = None
        n = 0
        try:
            while not self.stop_flag.is_set():
                item = self._next(n)
                n += 1
                if item is None:
                    break
                nid, ws, body = item
                if conn is None:
                    conn = self.b.connection(timeout=30)
                t0 = time.monotonic()
                try:
                    conn.request("POST", self.b.intercom_path, body=body, headers={
                        "Content-Type": "application/json",
                        "User-Agent": "intercom-parrot-service-client/1.0",
                        "X-Hub-Signature": sign(body)})
                    resp = conn.getresponse()
                    data = resp.read()
                    t1 = time.monotonic()
                    self.recs.append(Rec(nid, ws, t0, t1, resp.status))
                    self.b.statuses.append(resp.status)
                    if resp.status != 200:
                        self.bad.append((nid, resp.status, data[:200]))
                except Exception as e:  # noqa: BLE001 - recorded, connection reopened
                    self.recs.append(Rec(nid, ws, t0, time.monotonic(), None))
                    self.errors.append(repr(e))
                    try:
                        conn.close()
                    except Exception:  # noqa: BLE001
                        pass
                    conn = None
                    self.stop_flag.wait(0.05)
                if self.pause:
                    self.stop_flag.wait(self.pause)
        finally:
            if conn is not None:
                conn.close()


def run_posters(posters, timeout):
    for p in posters:
        p.start()
    join_posters(posters, timeout)


def join_posters(posters, timeout):
    deadline = time.monotonic() + scaled(timeout)
    for p in posters:
        p.join(max(0.1, deadline - time.monotonic()))
    alive = [p.name for p in posters if p.is_alive()]
    if alive:
        for p in posters:
            p.stop()
        raise AssertionError("posters still running after %.0fs: %s" % (scaled(timeout), alive))


def all_recs(posters):
    return [r for p in posters for r in p.recs]


def wait_until(pred, timeout, interval=0.1):
    """Poll pred() until truthy (returned) or timeout (returns the last
    value)."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def readyz(bridge):
    try:
        st, _, body = bridge.admin_get("/readyz", timeout=5)
        return st, body.decode("utf-8", "replace")
    except OSError as e:
        return None, repr(e)


def wait_not_ready(tc, bridge, *words, timeout=30):
    """Poll /readyz until it answers 503 with every one of `words` in its
    body; fail the test with the last answer otherwise.  Returns the body."""
    seen = []

    def reported():
        st, text = readyz(bridge)
        seen.append((st, text))
        return st == 503 and all(w in text for w in words)
    tc.assertTrue(wait_until(reported, timeout), "/readyz does not report %r: last %r\n%s" %
                  (words, seen[-1:], bridge.log_tail()))
    return seen[-1][1]


def post_notifications(tc, bridge, tag, n, app_id="ws1"):
    """Post n signed notifications with ids n_<tag>_<i>, each answered 200;
    returns the ids."""
    ids = ["n_%s_%d" % (tag, i) for i in range(n)]
    for nid in ids:
        st, _, body = bridge.post_signed(hbtest.notification(nid, app_id=app_id))
        tc.assertEqual(st, 200, body)
    return ids


def sink_published(bridge, sink):
    try:
        return hbtest.metric_sum(bridge.metrics(), "hookbridge_sink_published_total", sink=sink)
    except (OSError, AssertionError):
        return -1
