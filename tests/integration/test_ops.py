"""Operations: SIGHUP reload (secrets + TLS pair) under load, a bad certificate
on reload, connection and read-timeout limits, JSON logs and log levels, and
the /metrics exposition.

Run: python3 -m unittest -v tests/integration/test_ops.py
 or: python3 tests/integration/test_ops.py

Needs the `openssl` command line (to make fresh self-signed pairs).
Run it against a private copy of the binary if others rebuild build/:
  cp build/hookbridge /tmp/hb-ops && HB_BIN=/tmp/hb-ops python3 tests/integration/test_ops.py
"""

import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hbtest  # noqa: E402
from hbtest import BridgeTestCase, metric_sum, notification, scaled, sign  # noqa: E402

OLD_SECRET = "ops_old_secret_5f1c9a2e7b"
NEW_SECRET = "ops_new_secret_8d3b6e0f4a"
LOG_SECRET = "ops_log_secret_c4e7a1d9b2"


# ---------------------------------------------------------------- helpers

def make_pair(directory, name):
    """A fresh self-signed P-256 pair -> (cert_path, key_path, cert_der)."""
    os.makedirs(directory, exist_ok=True)
    cert = os.path.join(directory, name + ".crt.pem")
    key = os.path.join(directory, name + ".key.pem")
    r = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        timeout=30)
    if r.returncode != 0:
        raise AssertionError("openssl req failed (%d): %s" % (r.returncode, r.stdout[-500:]))
    with open(cert, "r", encoding="ascii") as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return cert, key, der


def fingerprint(der):
    return hashlib.sha256(der).hexdigest()[:16] if der else None


def peer_der(conn):
    """DER of the certificate the server presented on an HTTPSConnection."""
    if conn.sock is None:
        conn.connect()
    return conn.sock.getpeercert(binary_form=True)


def new_conn_der(b, timeout=10):
    s = b.tls_socket(timeout=timeout)
    try:
        return s.getpeercert(binary_form=True)
    finally:
        s.close()


def note(msg):
    sys.stderr.write("(%s) " % msg)


def wait_until(pred, timeout):
    deadline = time.monotonic() + scaled(timeout)
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(0.02)


def read_until_closed(sock, timeout):
    """Read until the peer closes.  -> (closed, seconds, bytes read, how)."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    got = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False, time.monotonic() - t0, got, "still open"
        sock.settimeout(left)
        try:
            data = sock.recv(4096)
        except (socket.timeout, TimeoutError):
            return False, time.monotonic() - t0, got, "still open"
        except (ssl.SSLError, OSError) as e:  # reset, unexpected EOF ...
            return True, time.monotonic() - t0, got, repr(e)
        if not data:
            return True, time.monotonic() - t0, got, "EOF"
        got += data


class Poster(threading.Thread):
    """Posts signed, unique notifications on a keep-alive connection until
    stopped, reconnecting every `reconnect_every` posts.  Signs with `old`
    until it gets a 401 after `reload_evt` is set, then retries that one
    with `new` and keeps using `new`.  Records everything that is not the
    expected answer."""

    def __init__(self, b, tag, old, new, reload_evt, reconnect_every):
        super().__init__(name="poster-" + tag, daemon=True)
        self.b, self.tag, self.old, self.new = b, tag, old, new
        self.reload_evt = reload_evt
        self.reconnect_every = reconnect_every
        self.stop_evt = threading.Event()
        self.switched = False
        self.switches = 0
        self.ok_before = 0
        self.ok_after = 0
        self.failures = []       # (post #, what)
        self.conns = []          # every connection object used
        self.reconnects = 0

    def _conn(self):
        c = self.b.connection(timeout=10)
        self.conns.append(c)
        return c

    def _post(self, conn, body, secret):
        return self.b.post(body, sign(body, secret), conn=conn)

    def run(self):
        conn = self._conn()
        i = 0
        try:
            while not self.stop_evt.is_set():
                if i and i % self.reconnect_every == 0:
                    conn.close()
                    conn = self._conn()
                    self.reconnects += 1
                body = notification("ops_hup_%s_%d_%s" % (self.tag, i, uuid.uuid4().hex[:8]))
                secret = self.new if self.switched else self.old
                try:
                    st, _, data = self._post(conn, body, secret)
                except (OSError, http.client.HTTPException) as e:
                    self.failures.append((i, "no answer (%s secret): %r" % (
                        "new" if self.switched else "old", e)))
                    conn.close()
                    conn = self._conn()
                    i += 1
                    continue
                if st == 401 and not self.switched and self.reload_evt.is_set():
                    self.switched = True
                    self.switches += 1
                    try:
                        st, _, data = self._post(conn, body, self.new)
                    except (OSError, http.client.HTTPException) as e:
                        self.failures.append((i, "no answer to the retry with the new "
                                              "secret: %r" % (e,)))
                        conn.close()
                        conn = self._conn()
                        i += 1
                        continue
                if st == 200:
                    if self.switched:
                        self.ok_after += 1
                    else:
                        self.ok_before += 1
                else:
                    self.failures.append((i, "status %d (%s secret, reload %s): %r" % (
                        st, "new" if self.switched else "old",
                        "signalled" if self.reload_evt.is_set() else "not yet", data[:200])))
                i += 1
        finally:
            conn.close()


# ---------------------------------------------------------------- 1, 2: SIGHUP

class Reload(BridgeTestCase):
    secrets_never_logged = (hbtest.SECRET, OLD_SECRET, NEW_SECRET)

    def setUp(self):
        self.t0 = time.monotonic()

    def tearDown(self):
        sys.stderr.write("[%.1fs] " % (time.monotonic() - self.t0))

    def _start(self, tls_dir):
        cert1, key1, der1 = make_pair(tls_dir, "one")
        b = self.start_bridge(**{"intercom.secret": OLD_SECRET, "tls.cert": cert1,
                                 "tls.key": key1, "workers": "2"})
        return b, der1

    def test_sighup_rotates_secret_and_certificate_under_load(self):
        tls_dir = tempfile.mkdtemp(prefix="hbtest-ops-tls-")
        self.addCleanup(shutil.rmtree, tls_dir, True)
        b, der1 = self._start(tls_dir)
        cert2, key2, der2 = make_pair(tls_dir, "two")
        self.assertNotEqual(der1, der2)

        # a connection opened before the reload, used again after it
        pre = b.connection(timeout=10)
        self.addCleanup(pre.close)
        self.assertAccepted(b.post_signed(notification("ops_pre_" + uuid.uuid4().hex),
                                          OLD_SECRET, conn=pre), "pre-reload connection:")
        self.assertEqual(peer_der(pre), der1, "the bridge does not present tls.cert")

        reload_evt = threading.Event()
        posters = [Poster(b, "a", OLD_SECRET, NEW_SECRET, reload_evt, reconnect_every=25),
                   Poster(b, "b", OLD_SECRET, NEW_SECRET, reload_evt, reconnect_every=7)]

        def stop_posters():
            for p in posters:
                p.stop_evt.set()
            for p in posters:
                p.join(scaled(20))
        self.addCleanup(stop_posters)
        for p in posters:
            p.start()
        self.assertTrue(wait_until(lambda: all(p.ok_before >= 100 or p.failures
                                               for p in posters), 15),
                        "posters did not get going: %s\n%s" % (
                            [(p.ok_before, p.failures[:3]) for p in posters], b.log_tail()))

        # rewrite the config: new secret, new pair; then SIGHUP our bridge
        b.config["intercom.secret"] = NEW_SECRET
        b.config["tls.cert"] = cert2
        b.config["tls.key"] = key2
        b.write_config()
        reload_evt.set()
        b.proc.send_signal(signal.SIGHUP)

        reloaded = b.wait_log(lambda t: re.search(r"(?i)reloaded.*(tls|certificate)", t)
                              and re.search(r"(?i)reloaded.*secret", t), timeout=10)
        self.assertTrue(reloaded, "no reload lines (secrets and TLS) in the log within 10 s "
                        "of SIGHUP\n%s" % b.log_tail())

        self.assertTrue(wait_until(lambda: all((p.switched and p.ok_after >= 100) or
                                               not p.is_alive() for p in posters), 15),
                        "posters did not switch to the new secret within 15 s of SIGHUP: %s\n%s"
                        % ([(p.tag, p.switched, p.ok_after, p.failures[:3]) for p in posters],
                           b.log_tail()))
        stop_posters()
        for p in posters:
            self.assertFalse(p.is_alive(), "poster %s did not stop" % p.tag)
            self.assertEqual(p.failures, [], "poster %s: requests without the expected answer "
                             "around the reload (ok before %d, after %d)\n%s" %
                             (p.tag, p.ok_before, p.ok_after, b.log_tail()))
            self.assertEqual(p.switches, 1, "poster %s never got the 401 that switches it to "
                             "the new secret" % p.tag)
            self.assertGreater(p.reconnects, 0, "poster %s never reconnected" % p.tag)
            # http.client never reconnects by itself in the middle of a request:
            # one connect per connection object means the bridge dropped none
            dropped = [c.connects for c in p.conns if c.connects > 1]
            self.assertEqual(dropped, [], "poster %s: a keep-alive connection was reopened "
                             "(the bridge closed it)" % p.tag)
        self.assertTrue(b.running(), "bridge died\n%s" % b.log_tail())
        note("posters ok before/after reload: %s; reconnects: %s" % (
            [(p.ok_before, p.ok_after) for p in posters], [p.reconnects for p in posters]))

        # secrets after the reload: on fresh connections
        old = b.post_signed(notification("ops_after_old_" + uuid.uuid4().hex), OLD_SECRET)
        self.assertRefused(old, 401, "old secret after the reload:")
        self.assertAccepted(b.post_signed(notification("ops_after_new_" + uuid.uuid4().hex),
                                          NEW_SECRET), "new secret after the reload:")

        # a NEW connection presents the new certificate
        got = new_conn_der(b)
        self.assertEqual(got, der2, "a connection opened after SIGHUP presents %s, expected the "
                         "new certificate %s (old: %s)" % (fingerprint(got), fingerprint(der2),
                                                           fingerprint(der1)))

        # the connection opened before the reload still works (same socket)
        self.assertAccepted(b.post_signed(notification("ops_pre2_" + uuid.uuid4().hex),
                                          NEW_SECRET, conn=pre),
                            "connection opened before the reload, used after it:")
        self.assertEqual(pre.connects, 1, "the pre-reload connection was reopened: the bridge "
                         "dropped it on SIGHUP")
        self.assertEqual(peer_der(pre), der1)
        self.assertEqual(b.stop(), 0, "exit code on SIGTERM\n%s" % b.log_tail())

    def test_sighup_with_garbage_certificate_keeps_the_old_pair(self):
        tls_dir = tempfile.mkdtemp(prefix="hbtest-ops-tls-")
        self.addCleanup(shutil.rmtree, tls_dir, True)
        b, der1 = self._start(tls_dir)
        pre = b.connection(timeout=10)
        self.addCleanup(pre.close)
        self.assertAccepted(b.post_signed(notification("ops_bad_pre_" + uuid.uuid4().hex),
                                          OLD_SECRET, conn=pre))

        # a renewal tool wrote garbage over the configured certificate
        with open(b.config["tls.cert"], "w", encoding="ascii") as f:
            f.write("-----BEGIN CERTIFICATE-----\nthis is not base64 at all !!!\n"
                    "MIIBnotreallyDER==\n-----END CERTIFICATE-----\n")
        n_before = len(b.log_text().splitlines())
        b.proc.send_signal(signal.SIGHUP)

        def cert_error(text):
            for line in text.splitlines()[n_before:]:
                if re.search(r"(?i)\berror\b", line) and re.search(r"(?i)cert", line):
                    return line
            return None
        self.assertTrue(b.wait_log(cert_error, timeout=10),
                        "no error line mentioning the certificate within 10 s of SIGHUP with a "
                        "garbage tls.cert\n%s" % b.log_tail())
        # and no claim that it was reloaded
        after = "\n".join(b.log_text().splitlines()[n_before:])
        self.assertNotRegex(after, r"(?i)reloaded the tls", "the bridge says it reloaded a "
                            "garbage certificate")
        self.assertTrue(b.running(), "bridge died on SIGHUP with a bad certificate\n%s" %
                        b.log_tail())

        # new connections still work and present the old certificate
        for i in range(3):
            c = b.connection(timeout=10)
            try:
                self.assertAccepted(b.post_signed(notification("ops_bad_%d_%s" % (
                    i, uuid.uuid4().hex)), OLD_SECRET, conn=c), "new connection #%d:" % i)
                self.assertEqual(peer_der(c), der1, "a new connection after the failed reload "
                                 "does not present the old certificate")
            finally:
                c.close()
        self.assertAccepted(b.post_signed(notification("ops_bad_pre2_" + uuid.uuid4().hex),
                                          OLD_SECRET, conn=pre), "pre-reload connection:")
        self.assertEqual(pre.connects, 1)
        rc = b.stop()
        self.assertEqual(rc, 0, "exit code on SIGTERM after a failed reload\n%s" % b.log_tail())


# ---------------------------------------------------------------- 3: limits

class Limits(BridgeTestCase):
    def setUp(self):
        self.t0 = time.monotonic()

    def tearDown(self):
        sys.stderr.write("[%.1fs] " % (time.monotonic() - self.t0))

    def _open_served(self, b, n, tag):
        conns = []
        for i in range(n):
            c = b.connection(timeout=5)
            self.addCleanup(c.close)
            try:
                c.connect()
            except OSError as e:
                self.fail("%s connection #%d: TLS handshake failed: %r\n%s" %
                          (tag, i + 1, e, b.log_tail()))
            self.assertAccepted(b.post_signed(notification("ops_lim_%s_%d_%s" % (
                tag, i, uuid.uuid4().hex)), conn=c), "%s connection #%d:" % (tag, i + 1))
            conns.append(c)
        return conns

    def test_max_connections_stops_accepting_at_the_cap(self):
        b = self.start_bridge(**{"limits.max_connections": "4", "workers": "1"})
        # the harness's TCP probe at start may still be counted for a moment
        time.sleep(scaled(0.5))
        conns = self._open_served(b, 4, "cap")

        # a 5th TCP connection gets into the backlog but is not served
        raw = socket.create_connection(("127.0.0.1", b.port), timeout=5)
        fifth = None
        try:
            raw.settimeout(3)
            t = time.monotonic()
            try:
                fifth = hbtest.client_ssl_context().wrap_socket(raw, server_hostname="localhost")
                served = True
            except (socket.timeout, TimeoutError):
                served = False
            except (ssl.SSLError, OSError) as e:
                self.fail("5th connection: expected the handshake to hang (not accepted), got "
                          "%r after %.1fs" % (e, time.monotonic() - t))
            self.assertFalse(served, "a 5th TLS connection completed its handshake while 4 were "
                             "open with limits.max_connections = 4, workers = 1\n%s" %
                             b.log_tail())

            # the 4 existing connections keep working
            for i, c in enumerate(conns):
                self.assertAccepted(b.post_signed(notification("ops_lim_again_%d_%s" % (
                    i, uuid.uuid4().hex)), conn=c), "existing connection #%d at the cap:" % (
                        i + 1))
                self.assertEqual(c.connects, 1)
        finally:
            (fifth or raw).close()
        self.assertTrue(b.wait_log(lambda t: "not accepting" in t, timeout=2),
                        "no log line about the worker reaching the cap\n%s" % b.log_tail())

        # close one: a new connection is served (bounded)
        conns[0].close()
        deadline = time.monotonic() + scaled(15)
        last = None
        while True:
            c = b.connection(timeout=5)
            try:
                resp = b.post_signed(notification("ops_lim_new_" + uuid.uuid4().hex), conn=c)
                self.assertAccepted(resp, "new connection after one closed:")
                break
            except OSError as e:
                last = e
                if time.monotonic() >= deadline:
                    self.fail("no new connection served within 15 s after one of the 4 closed "
                              "(last: %r)\n%s" % (last, b.log_tail()))
            finally:
                c.close()
        for c in conns[1:]:
            self.assertAccepted(b.post_signed(notification("ops_lim_end_" + uuid.uuid4().hex),
                                              conn=c))

    def test_read_timeout_closes_slow_and_idle_clients(self):
        b = self.start_bridge(**{"limits.read_timeout_ms": "1000"})
        bound = scaled(10)

        # half a request, then nothing
        s = b.tls_socket(timeout=5)
        try:
            body = notification("ops_slow_" + uuid.uuid4().hex)
            head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                    "X-Hub-Signature: %s\r\nContent-Length: %d\r\n\r\n" % (
                        b.intercom_path, b.port, sign(body), len(body))).encode()
            s.sendall(head + body[:len(body) // 2])
            closed, secs, got, how = read_until_closed(s, bound)
            self.assertTrue(closed, "a client that sent half a request and then nothing was not "
                            "disconnected within %.0f s (limits.read_timeout_ms = 1000)" % bound)
            self.assertGreaterEqual(secs, 0.5, "closed after %.2fs: before the timeout (%s, %r)"
                                    % (secs, how, got[:200]))
            self.assertNotIn(b" 200 ", got.split(b"\r\n", 1)[0], "half a request got a 200")
            note("half request closed after %.2fs (%s, %d bytes)" % (secs, how, len(got)))
        finally:
            s.close()

        # half of the headers, then nothing
        s = b.tls_socket(timeout=5)
        try:
            s.sendall(("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty" %
                       b.intercom_path).encode())
            closed, secs, got, how = read_until_closed(s, bound)
            self.assertTrue(closed, "a client that sent half the headers was not disconnected "
                            "within %.0f s" % bound)
        finally:
            s.close()

        # an idle keep-alive connection, after one answered request
        c = b.connection(timeout=5)
        try:
            self.assertAccepted(b.post_signed(notification("ops_idle_" + uuid.uuid4().hex),
                                              conn=c))
            self.assertIsNotNone(c.sock, "the bridge closed the connection right after a 200 "
                                 "(no keep-alive)")
            closed, secs, got, how = read_until_closed(c.sock, bound)
            self.assertTrue(closed, "an idle keep-alive connection was not closed within %.0f s "
                            "(limits.read_timeout_ms = 1000)" % bound)
            self.assertGreaterEqual(secs, 0.5, "idle keep-alive connection closed after %.2fs"
                                    % secs)
            self.assertEqual(got, b"", "unexpected bytes on an idle connection: %r" % got[:200])
            note("idle keep-alive closed after %.2fs (%s)" % (secs, how))
        finally:
            c.close()
        self.assertTrue(b.running())
        # and the bridge still serves
        self.assertAccepted(b.post_signed(notification("ops_slow_after_" + uuid.uuid4().hex)))

    def test_trickling_client_is_closed(self):
        """Slowloris proper: a client that sends one header byte every 0.3 s
        is never idle for limits.read_timeout_ms, so an inactivity timeout
        alone keeps it for ever. The bridge closes a connection that
        completes no request within the period."""
        b = self.start_bridge(**{"limits.read_timeout_ms": "1000"})
        s = b.tls_socket(timeout=5)
        head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: %s\r\n" %
                (b.intercom_path, "x" * 200)).encode()
        t0 = time.monotonic()
        closed_after = None
        try:
            for i in range(len(head)):
                try:
                    s.sendall(head[i:i + 1])
                except OSError:
                    closed_after = time.monotonic() - t0
                    break
                s.settimeout(0.3)
                try:
                    if s.recv(4096) == b"":
                        closed_after = time.monotonic() - t0
                        break
                except socket.timeout:
                    pass
                except (OSError, ssl.SSLError):
                    closed_after = time.monotonic() - t0
                    break
                if time.monotonic() - t0 > scaled(15):
                    break
        finally:
            s.close()
        self.assertIsNotNone(closed_after, "a client trickling one byte every 0.3 s was still "
                             "connected after %.0f s (limits.read_timeout_ms = 1000)" % scaled(15))
        note("trickling client closed after %.2fs" % closed_after)
        # a normal client on another connection is unaffected
        self.assertAccepted(b.post_signed(notification("ops_after_trickle_" + uuid.uuid4().hex)))

    def test_read_timeout_closes_silent_tcp_connection(self):
        """A TCP connection that never starts the TLS handshake is an idle
        client too (slowloris): it must not hold a connection slot forever."""
        b = self.start_bridge(**{"limits.read_timeout_ms": "1000"})
        raw = socket.create_connection(("127.0.0.1", b.port), timeout=5)
        try:
            closed, secs, got, how = read_until_closed(raw, scaled(10))
            self.assertTrue(closed, "a TCP connection that sent nothing was not closed within "
                            "10 s (limits.read_timeout_ms = 1000)\n%s" % b.log_tail())
            note("silent TCP closed after %.2fs (%s)" % (secs, how))
        finally:
            raw.close()

    def test_silent_connections_do_not_hold_the_cap(self):
        """At max_connections, connections that never send a byte are closed
        by the read timeout, so a real client gets served again."""
        b = self.start_bridge(**{"limits.max_connections": "2", "workers": "1",
                                 "limits.read_timeout_ms": "1000"})
        time.sleep(scaled(0.5))
        silent = [socket.create_connection(("127.0.0.1", b.port), timeout=5) for _ in range(2)]
        try:
            time.sleep(0.3)
            t = time.monotonic()
            c = b.connection(timeout=scaled(10))
            try:
                try:
                    resp = b.post_signed(notification("ops_silent_" + uuid.uuid4().hex), conn=c)
                except OSError as e:
                    self.fail("2 silent TCP connections held the cap of 2: a real client was not "
                              "served within %.0f s (%r)\n%s" % (scaled(10), e, b.log_tail()))
                self.assertAccepted(resp)
                self.assertLess(time.monotonic() - t, scaled(10))
            finally:
                c.close()
        finally:
            for s in silent:
                s.close()


# ---------------------------------------------------------------- 4: logs

def json_log_lines(tc, b):
    """Every line the bridge wrote (stdout+stderr) parsed as JSON objects."""
    out = []
    for line in b.log_text().splitlines():
        if not line.strip() or line.startswith("=== hbtest"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            tc.fail("log line is not JSON: %r" % line[:300])
        tc.assertIsInstance(obj, dict, "log line is not a JSON object: %r" % line[:300])
        missing = {"time", "level", "component", "msg"} - set(obj)
        tc.assertEqual(missing, set(), "log line lacks %s: %r" % (sorted(missing), line[:300]))
        tc.assertRegex(obj["time"], hbtest.RFC3339_MS_UTC, "log time: %r" % line[:200])
        tc.assertIn(obj["level"], ("debug", "info", "warn", "error"), line[:200])
        tc.assertIsInstance(obj["component"], str)
        tc.assertIsInstance(obj["msg"], str)
        out.append(obj)
    return out


class Logs(BridgeTestCase):
    secrets_never_logged = (hbtest.SECRET, LOG_SECRET)

    def setUp(self):
        self.t0 = time.monotonic()

    def tearDown(self):
        sys.stderr.write("[%.1fs] " % (time.monotonic() - self.t0))

    def _refusal_session(self, b):
        """One refusal of each kind, each on its own connection.
        -> ([(status, client_port)], [response bodies])"""
        bodies = []
        done = []
        big = notification("ops_big_" + uuid.uuid4().hex, pad=3000)
        cases = [
            (401, "POST", b.intercom_path, notification("ops_l401"), "sha1=" + "0" * 40),
            (400, "POST", b.intercom_path, b"this is not json", None),
            (404, "GET", "/no/such/path", None, None),
            (405, "GET", b.intercom_path, None, None),
            (413, "POST", b.intercom_path, big, None),
        ]
        for status, method, path, body, sig in cases:
            c = b.connection(timeout=10)
            try:
                c.connect()
                port = c.sock.getsockname()[1]
                headers = {"Content-Type": "application/json"}
                if body is not None:
                    headers["X-Hub-Signature"] = sig or sign(body, LOG_SECRET)
                st, h, data = b.request(method, path, body=body, headers=headers, conn=c)
                self.assertEqual(st, status, "%s %s -> %d %r" % (method, path, st, data[:200]))
                bodies.append(data)
                done.append((status, port))
            finally:
                c.close()
        return done, bodies

    def test_json_lines_refusals_logged_once_and_no_secret(self):
        b = self.start_bridge(**{"log.format": "json", "intercom.secret": LOG_SECRET,
                                 "limits.max_body": "2048"})
        bodies = []
        st, h, data = b.post_signed(notification("ops_log_ok_" + uuid.uuid4().hex), LOG_SECRET)
        self.assertEqual(st, 200)
        bodies.append(data)
        bodies.append(b.head()[2])
        n0 = len(json_log_lines(self, b))
        done, more = self._refusal_session(b)
        bodies += more

        def named(objs, status, port):
            pat = re.compile(r"\b%d\b" % status)
            return [o for o in objs if pat.search(o["msg"]) and
                    "127.0.0.1:%d" % port in o["msg"]]

        def all_logged(_):
            objs = json_log_lines(self, b)[n0:]
            return all(named(objs, st, port) for st, port in done)
        b.wait_log(all_logged, timeout=10)
        objs = json_log_lines(self, b)
        session = objs[n0:]
        for status, port in done:
            hits = named(session, status, port)
            self.assertEqual(len(hits), 1, "refusal %d to 127.0.0.1:%d: expected exactly one log "
                             "line naming the status and the client address, got %d: %r" %
                             (status, port, len(hits), hits))
            self.assertIn(hits[0]["level"], ("warn", "info"), hits[0])
            # no other line about this refusal (same status, other wording)
            pat = re.compile(r"\b%d\b" % status)
            other = [o for o in session if pat.search(o["msg"]) and o not in hits and
                     ":%d" % port in o["msg"]]
            self.assertEqual(other, [], "refusal %d logged more than once" % status)

        # the secret never leaks: log (checked by the base class too), /metrics, answers
        st, _, metrics = b.admin_get("/metrics")
        self.assertEqual(st, 200)
        for what, blob in [("/metrics", metrics)] + [("response body", x) for x in bodies] + [
                ("/readyz", b.admin_get("/readyz")[2]), ("/healthz", b.admin_get("/healthz")[2])]:
            self.assertNotIn(LOG_SECRET.encode(), blob, "the secret appears in %s" % what)
        self.assertEqual(b.stop(), 0)
        json_log_lines(self, b)  # the shutdown lines are JSON too
        self.assertNotIn(LOG_SECRET, b.log_text())

    def test_level_warn_suppresses_info(self):
        b = self.start_bridge(**{"log.format": "json", "log.level": "warn",
                                 "intercom.secret": LOG_SECRET, "limits.max_body": "2048"})
        nid = "ops_lvl_" + uuid.uuid4().hex
        self.assertEqual(b.post_signed(notification(nid), LOG_SECRET)[0], 200)
        st, _, data = b.post_signed(notification(nid), LOG_SECRET)  # duplicate: info line
        self.assertEqual(st, 200)
        done, _ = self._refusal_session(b)
        port401 = dict(done)[401]
        self.assertTrue(b.wait_log(lambda t: "127.0.0.1:%d" % port401 in t, timeout=10),
                        "the 401 (a warn) was not logged with log.level = warn\n%s" %
                        b.log_tail())
        self.assertEqual(b.stop(), 0)
        objs = json_log_lines(self, b)
        info = [o for o in objs if o["level"] in ("info", "debug")]
        self.assertEqual(info, [], "log.level = warn, but info/debug lines were written")
        self.assertTrue(any(o["level"] == "warn" for o in objs))


# ---------------------------------------------------------------- 5: /metrics

SAMPLE_RE = re.compile(r'^(hookbridge_[a-z_]+)(\{[^}]*\})? (\S+)$')
LABELS_RE = re.compile(r'^\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"'
                       r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*,?)?\}$')


def parse_number(s):
    if s in ("+Inf", "-Inf", "NaN"):
        return float(s.replace("+", ""))
    return float(s)


class Metrics(BridgeTestCase):
    def setUp(self):
        self.t0 = time.monotonic()
        self.b = self.start_bridge()

    def tearDown(self):
        sys.stderr.write("[%.1fs] " % (time.monotonic() - self.t0))

    def _text(self):
        st, h, body = self.b.admin_get("/metrics")
        self.assertEqual(st, 200)
        return body.decode("utf-8")

    def test_exposition_follows_prometheus_conventions(self):
        b = self.b
        b.post_signed(notification("ops_met_" + uuid.uuid4().hex))
        b.post(notification("ops_met_bad"), sign(b"x", "wrong"))
        b.request("GET", "/nope")
        text = self._text()
        types = {}
        samples = []
        for line in text.splitlines():
            if not line.strip():
                continue
            if line.startswith("#"):
                m = re.match(r"^# (HELP|TYPE) (\S+) ?(.*)$", line)
                self.assertIsNotNone(m, "bad comment line: %r" % line)
                if m.group(1) == "TYPE":
                    self.assertIn(m.group(3), ("counter", "gauge", "histogram", "summary",
                                               "untyped"), line)
                    self.assertNotIn(m.group(2), types, "TYPE given twice: %r" % line)
                    types[m.group(2)] = m.group(3)
                continue
            m = SAMPLE_RE.match(line)
            self.assertIsNotNone(m, "sample line does not match ^hookbridge_[a-z_]+({...})? "
                                 "number: %r" % line)
            if m.group(2):
                self.assertRegex(m.group(2), LABELS_RE, "bad label set: %r" % line)
            try:
                v = parse_number(m.group(3))
            except ValueError:
                self.fail("value is not a number: %r" % line)
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
            samples.append((m.group(1), labels, v, line))

        def family(name):
            for suf in ("_bucket", "_sum", "_count"):
                if name.endswith(suf) and types.get(name[:-len(suf)]) == "histogram":
                    return name[:-len(suf)]
            return name
        for name, labels, v, line in samples:
            fam = family(name)
            self.assertIn(fam, types, "sample without a # TYPE line: %r" % line)
            if types[fam] == "counter":
                self.assertTrue(name.endswith("_total"), "counter not ending in _total: %r" % line)
                self.assertGreaterEqual(v, 0, line)
        for fam, t in types.items():
            if t == "counter":
                self.assertTrue(fam.endswith("_total"), "counter %s does not end in _total" % fam)
            if t != "histogram":
                self.assertTrue(any(n == fam for n, _, _, _ in samples),
                                "TYPE %s without samples" % fam)
                continue
            # histogram: per label set (minus le), buckets cumulative, +Inf == _count
            series = {}
            for name, labels, v, line in samples:
                if family(name) != fam:
                    continue
                key = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
                s = series.setdefault(key, {"buckets": [], "sum": None, "count": None})
                if name == fam + "_bucket":
                    self.assertIn("le", labels, line)
                    s["buckets"].append((parse_number(labels["le"]), v))
                elif name == fam + "_sum":
                    s["sum"] = v
                elif name == fam + "_count":
                    s["count"] = v
                else:
                    self.fail("histogram %s has a plain sample: %r" % (fam, line))
            self.assertTrue(series, "histogram %s without samples" % fam)
            for key, s in series.items():
                where = "%s%s" % (fam, dict(key))
                self.assertTrue(s["buckets"], "%s: no _bucket" % where)
                self.assertIsNotNone(s["sum"], "%s: no _sum" % where)
                self.assertIsNotNone(s["count"], "%s: no _count" % where)
                les = [le for le, _ in s["buckets"]]
                self.assertIn(float("inf"), les, "%s: no le=\"+Inf\" bucket" % where)
                self.assertEqual(les, sorted(les), "%s: buckets not in le order" % where)
                counts = [c for _, c in s["buckets"]]
                self.assertEqual(counts, sorted(counts), "%s: buckets not cumulative" % where)
                self.assertEqual(counts[-1], s["count"], "%s: +Inf bucket != _count" % where)
        for fam in ("hookbridge_request_duration_seconds",
                    "hookbridge_sink_publish_duration_seconds"):
            self.assertEqual(types.get(fam), "histogram", "%s is not a histogram" % fam)
        info = [s for s in samples if s[0] == "hookbridge_build_info"]
        self.assertTrue(info, "no hookbridge_build_info")
        self.assertEqual(info[0][2], 1, info[0][3])
        self.assertIn("version", info[0][1], "hookbridge_build_info has no version label")
        self.assertNotIn(hbtest.SECRET, text)

    def _wait_metric(self, name, above, **labels):
        last = [None]

        def pred():
            last[0] = metric_sum(self.b.metrics(), name, **labels)
            return last[0] > above
        wait_until(pred, 10)
        return last[0]

    def test_counters_move(self):
        b = self.b
        m0 = b.metrics()
        dur0 = metric_sum(m0, "hookbridge_request_duration_seconds_count")
        ver0 = metric_sum(m0, "hookbridge_verification_failures_total")
        dup0 = metric_sum(m0, "hookbridge_duplicates_total")

        for i in range(3):
            self.assertAccepted(b.post_signed(notification("ops_cnt_%d_%s" % (
                i, uuid.uuid4().hex))))
        dur1 = self._wait_metric("hookbridge_request_duration_seconds_count", dur0 + 2)
        self.assertGreaterEqual(dur1, dur0 + 3, "hookbridge_request_duration_seconds_count went "
                                "from %s to %s after 3 posts" % (dur0, dur1))

        self.assertRefused(b.post(notification("ops_cnt_bad"), sign(b"other")), 401)
        ver1 = self._wait_metric("hookbridge_verification_failures_total", ver0)
        self.assertEqual(ver1, ver0 + 1, "hookbridge_verification_failures_total went from %s "
                         "to %s after one 401" % (ver0, ver1))

        nid = "ops_cnt_dup_" + uuid.uuid4().hex
        self.assertAccepted(b.post_signed(notification(nid)))
        st, _, data = b.post_signed(notification(nid))
        self.assertEqual(st, 200)
        self.assertJsonBody(data, "status", "duplicate")
        dup1 = self._wait_metric("hookbridge_duplicates_total", dup0)
        self.assertEqual(dup1, dup0 + 1, "hookbridge_duplicates_total went from %s to %s after "
                         "one repeated id" % (dup0, dup1))
        # a 401 is not a duplicate, a duplicate is not a verification failure
        self.assertEqual(metric_sum(b.metrics(), "hookbridge_verification_failures_total"),
                         ver0 + 1)


if __name__ == "__main__":
    hbtest.main()
