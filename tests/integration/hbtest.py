"""Black-box test harness for hookbridge (Python 3 standard library only).

A Bridge is one hookbridge process with its own temporary directory, its own
loopback ports and its own config file.  Everything that waits is bounded and
fails with a message that includes the tail of the bridge's log.

Environment:
  HB_BIN            path of the binary (default: <repo>/build/hookbridge)
  HB_TESTDATA       test data directory (default: <repo>/../shared/testdata)
  HB_TIMEOUT_SCALE  multiply every timeout (default 1; try 3 on a slow box)
  HB_KEEP_TMP=1     keep the temporary directories of passing tests
"""

import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

SECRET = "test_intercom_client_secret"
INTERCOM_PATH = "/webhooks/intercom"
RFC3339_MS_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")

TIMEOUT_SCALE = float(os.environ.get("HB_TIMEOUT_SCALE", "1") or "1")


def scaled(seconds):
    return seconds * TIMEOUT_SCALE


def bin_path():
    return os.environ.get("HB_BIN") or os.path.join(REPO, "build", "hookbridge")


def testdata_dir():
    return os.environ.get("HB_TESTDATA") or os.path.normpath(
        os.path.join(REPO, "..", "shared", "testdata"))


def require_binary(testcase=None):
    """Fail (not skip: a missing binary must not look like a pass)."""
    p = bin_path()
    if not (os.path.isfile(p) and os.access(p, os.X_OK)):
        msg = ("hookbridge binary not found or not executable at %r; build it "
               "(build/hookbridge) or set HB_BIN" % p)
        if testcase is not None:
            testcase.fail(msg)
        raise AssertionError(msg)
    return p


# ---------------------------------------------------------------- helpers

def sign(body, secret=SECRET):
    """X-Hub-Signature value: 'sha1=' + lowercase hex HMAC-SHA1(secret, body)."""
    if isinstance(secret, str):
        secret = secret.encode()
    return "sha1=" + hmac.new(secret, body, hashlib.sha1).hexdigest()


def load_samples():
    """[(name, raw_body_bytes, signature, secret)] from intercom/signatures.tsv.

    Bodies are read as bytes and never re-encoded."""
    d = os.path.join(testdata_dir(), "intercom")
    tsv = os.path.join(d, "signatures.tsv")
    if not os.path.isfile(tsv):
        raise AssertionError("test data not found: %s (set HB_TESTDATA)" % tsv)
    out = []
    with open(tsv, "r", encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            name, secret, sig = line.split("\t")
            with open(os.path.join(d, name), "rb") as bf:
                out.append((name, bf.read(), sig, secret))
    return out


def notification(nid, topic="contact.created", app_id="ws1", pad=0, **extra):
    """A unique, compact Intercom-shaped notification body (bytes)."""
    ev = {
        "type": "notification_event",
        "app_id": app_id,
        "data": {"type": "notification_event_data",
                 "item": {"type": "contact", "id": "c_" + nid,
                          "email": "user@example.com"}},
        "links": {},
        "id": nid,
        "topic": topic,
        "delivery_status": "pending",
        "delivery_attempts": 1,
        "delivered_at": 0,
        "first_sent_at": 1768114000,
        "created_at": 1768114000,
        "self": None,
    }
    if pad:
        ev["data"]["item"]["pad"] = "x" * pad
    ev.update(extra)
    return json.dumps(ev, separators=(",", ":")).encode()


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def client_ssl_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class CountingHTTPSConnection(http.client.HTTPSConnection):
    """HTTPSConnection that counts how many TCP+TLS connections it opened
    (http.client silently reconnects when the server closed the socket)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.connects = 0

    def connect(self):
        super().connect()
        self.connects += 1


def expected_payload_bytes(raw_body):
    """The bytes the file sink must embed: each raw CR / LF byte -> one space."""
    return raw_body.replace(b"\r", b" ").replace(b"\n", b" ")


def check_sink_line(tc, raw_line, obj, raw_body, msg=""):
    """Assert one file-sink line carries raw_body per the contract."""
    body_obj = json.loads(raw_body)
    tc.assertTrue(raw_line.endswith(b"}\n"), "%s line does not end with '}\\n': %r" %
                  (msg, raw_line[-80:]))
    tc.assertEqual(set(obj.keys()), {"received_at", "app_id", "topic", "id", "payload"},
                   "%s unexpected keys in sink line" % msg)
    tc.assertEqual(obj["payload"], body_obj, "%s payload JSON value changed" % msg)
    want = b'"payload":' + expected_payload_bytes(raw_body) + b"}\n"
    tc.assertTrue(raw_line.endswith(want),
                  "%s payload bytes not verbatim (CR/LF->space only).\n"
                  "expected line to end with: %r\nline end:                  %r" %
                  (msg, want[-200:], raw_line[-(min(len(raw_line), len(want)) or 1):][-200:]))
    tc.assertEqual(obj["topic"], body_obj.get("topic"), "%s topic" % msg)
    tc.assertEqual(obj["app_id"], body_obj.get("app_id"), "%s app_id" % msg)
    tc.assertEqual(obj["id"], body_obj.get("id"), "%s id" % msg)
    tc.assertIsInstance(obj["received_at"], str, msg)
    tc.assertRegex(obj["received_at"], RFC3339_MS_UTC, "%s received_at" % msg)


def parse_metrics(text):
    """Prometheus text -> list of (name, {label: value}, float value)."""
    out = []
    lab_re = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
    line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)(\s+\S+)?$')
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = line_re.match(line)
        if not m:
            raise AssertionError("unparsable metrics line: %r" % line)
        labels = dict(lab_re.findall(m.group(2) or ""))
        v = m.group(3)
        value = float("inf") if v == "+Inf" else float("-inf") if v == "-Inf" else float(v)
        out.append((m.group(1), labels, value))
    return out


def metric_sum(samples, name, **labels):
    return sum(v for n, l, v in samples
               if n == name and all(l.get(k) == str(val) for k, val in labels.items()))


# ---------------------------------------------------------------- the bridge

class BridgeDied(AssertionError):
    pass


class Bridge:
    """One hookbridge process.

    Bridge(tmpdir, **config_overrides): config keys with dots are passed as
    Bridge(tmp, **{"limits.max_body": 1024}); a value of None removes a
    default key.  env={...} adds environment variables (HOOKBRIDGE_* from the
    caller's environment are removed).  start=False does not start it;
    wait_ready=False only waits for /healthz (not /readyz)."""

    def __init__(self, tmpdir=None, env=None, start=True, wait_ready=True,
                 start_timeout=20.0, **config_overrides):
        self.bin = require_binary()
        self.tmpdir = tmpdir or tempfile.mkdtemp(prefix="hbtest-")
        self.config_path = os.path.join(self.tmpdir, "hookbridge.conf")
        self.log_path = os.path.join(self.tmpdir, "bridge.log")
        self.extra_env = dict(env or {})
        self.wait_ready = wait_ready
        self.start_timeout = start_timeout
        self.proc = None
        self.starts = 0
        self.statuses = []  # every HTTP status seen on the listener
        self.malformed = []  # sink lines that were not one JSON object
        self.config = {
            "data.dir": self.tmpdir,
            "journal.dir": os.path.join(self.tmpdir, "journal"),
            "file.path": os.path.join(self.tmpdir, "events.jsonl"),
            "intercom.secret": SECRET,
            "workers": "2",
            "sinks": "file",
            "log.level": "info",
        }
        self._apply(config_overrides)
        self._pick_ports()
        if start:
            self.start()

    # -- config / process

    def _apply(self, overrides):
        for k, v in overrides.items():
            if v is None:
                self.config.pop(k, None)
            else:
                self.config[k] = str(v)

    def _pick_ports(self):
        self.port = free_port()
        self.admin_port = free_port()
        while self.admin_port == self.port:
            self.admin_port = free_port()
        self.config["listen"] = "127.0.0.1:%d" % self.port
        self.config["admin.listen"] = "127.0.0.1:%d" % self.admin_port

    @property
    def intercom_path(self):
        return self.config.get("intercom.path", INTERCOM_PATH)

    @property
    def file_path(self):
        return self.config.get("file.path")

    def write_config(self):
        lines = ["# written by tests/integration/hbtest.py"]
        for k, v in self.config.items():
            lines.append("%s = %s" % (k, v))
        with open(self.config_path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")

    def environment(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKBRIDGE_")}
        env.update(self.extra_env)
        return env

    def start(self):
        if self.proc is not None and self.proc.poll() is None:
            raise AssertionError("bridge already running")
        self.write_config()
        self.starts += 1
        with open(self.log_path, "ab") as logf:
            logf.write(("\n=== hbtest: start #%d ===\n" % self.starts).encode())
            logf.flush()
            self.proc = subprocess.Popen(
                [self.bin, "-c", self.config_path],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                cwd=self.tmpdir, env=self.environment(), start_new_session=True)
        self.wait_healthy(self.start_timeout)
        if self.wait_ready:
            self.wait_readyz(200, self.start_timeout)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _check_alive(self, what):
        if self.proc is not None and self.proc.poll() is not None:
            raise BridgeDied("bridge exited with code %s while %s\n%s" %
                             (self.proc.returncode, what, self.log_tail()))

    def wait_healthy(self, timeout=20.0):
        deadline = time.monotonic() + scaled(timeout)
        last = None
        while time.monotonic() < deadline:
            self._check_alive("waiting for /healthz")
            try:
                st, _, _ = self.admin_get("/healthz", timeout=2)
                if st == 200:
                    break
                last = "status %d" % st
            except (OSError, http.client.HTTPException) as e:
                last = repr(e)
            time.sleep(0.05)
        else:
            raise AssertionError("bridge /healthz not 200 within %.0fs (last: %s)\n%s" %
                                 (scaled(timeout), last, self.log_tail()))
        # and the HTTPS listener accepts TCP connections
        while time.monotonic() < deadline:
            self._check_alive("waiting for the HTTPS listener")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
                return
            except OSError as e:
                last = repr(e)
            time.sleep(0.05)
        raise AssertionError("HTTPS listener 127.0.0.1:%d not accepting within %.0fs (%s)\n%s" %
                             (self.port, scaled(timeout), last, self.log_tail()))

    def wait_readyz(self, want=200, timeout=20.0):
        deadline = time.monotonic() + scaled(timeout)
        last = None
        while time.monotonic() < deadline:
            self._check_alive("waiting for /readyz")
            try:
                st, _, body = self.admin_get("/readyz", timeout=2)
                last = (st, body[:200])
                if st == want:
                    return body
            except (OSError, http.client.HTTPException) as e:
                last = repr(e)
            time.sleep(0.05)
        raise AssertionError("/readyz not %d within %.0fs (last: %r)\n%s" %
                             (want, scaled(timeout), last, self.log_tail()))

    def stop(self, timeout=30.0):
        """SIGTERM, wait (bounded), return the exit code.  kill -9 on timeout
        and raise."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(scaled(timeout))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError("bridge did not exit within %.0fs of SIGTERM; killed\n%s" %
                                     (scaled(timeout), self.log_tail()))
        return self.proc.returncode

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
        return self.proc.returncode if self.proc else None

    def restart(self, new_ports=True, **config_overrides):
        """Stop (SIGTERM) if running, then start on the same data dir."""
        if self.running():
            self.stop()
        self._apply(config_overrides)
        if new_ports:
            self._pick_ports()
        return self.start()

    def cleanup(self, keep_tmp=False):
        try:
            if self.running():
                try:
                    self.stop(timeout=30)
                except AssertionError:
                    pass
        finally:
            if not keep_tmp and not os.environ.get("HB_KEEP_TMP"):
                shutil.rmtree(self.tmpdir, ignore_errors=True)

    # -- log

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=40):
        lines = self.log_text().splitlines()
        return "---- bridge log (last %d lines of %s) ----\n%s\n---- end ----" % (
            min(n, len(lines)), self.log_path, "\n".join(lines[-n:]))

    def wait_log(self, predicate, timeout=10.0):
        """Poll the log until predicate(text) is true; return the result."""
        deadline = time.monotonic() + scaled(timeout)
        while True:
            text = self.log_text()
            if predicate(text):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    # -- HTTPS listener

    def connection(self, timeout=30.0):
        return CountingHTTPSConnection("127.0.0.1", self.port, timeout=scaled(timeout),
                                       context=client_ssl_context())

    def request(self, method, path, body=None, headers=None, conn=None, timeout=30.0):
        """One request -> (status, headers (HTTPMessage), body bytes)."""
        own = conn is None
        if own:
            conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            resp = conn.getresponse()
            data = resp.read()
            self.statuses.append(resp.status)
            return resp.status, resp.headers, data
        except (OSError, http.client.HTTPException):
            self._check_alive("answering %s %s" % (method, path))
            raise
        finally:
            if own:
                conn.close()

    def post(self, body, signature=None, headers=None, conn=None, path=None, timeout=30.0):
        h = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "intercom-parrot-service-client/1.0",
        }
        if signature is not None:
            h["X-Hub-Signature"] = signature
        h.update(headers or {})
        return self.request("POST", path or self.intercom_path, body=body, headers=h,
                            conn=conn, timeout=timeout)

    def post_signed(self, body, secret=SECRET, **kw):
        return self.post(body, sign(body, secret), **kw)

    def head(self, path=None, conn=None):
        return self.request("HEAD", path or self.intercom_path, conn=conn)

    def tls_socket(self, timeout=30.0):
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=scaled(timeout))
        return client_ssl_context().wrap_socket(raw, server_hostname="localhost")

    def post_chunked(self, body, signature, chunks=4, path=None, extra_headers=None):
        """Send body with Transfer-Encoding: chunked, by hand, in several
        chunks (one sendall each) -> (status, headers, body)."""
        s = self.tls_socket()
        try:
            head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                    "Content-Type: application/json\r\n"
                    "User-Agent: intercom-parrot-service-client/1.0\r\n"
                    "Transfer-Encoding: chunked\r\n" % (path or self.intercom_path, self.port))
            if signature is not None:
                head += "X-Hub-Signature: %s\r\n" % signature
            for k, v in (extra_headers or {}).items():
                head += "%s: %s\r\n" % (k, v)
            head += "\r\n"
            send_error = None
            try:
                s.sendall(head.encode())
                n = max(1, len(body) // chunks + 1)
                for i in range(0, len(body), n):
                    piece = body[i:i + n]
                    s.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
                s.sendall(b"0\r\n\r\n")
            except OSError as e:
                # the server may answer early (e.g. 413) and close while we
                # are still sending: read the answer it sent, if any
                send_error = e
            resp = http.client.HTTPResponse(s, method="POST")
            try:
                resp.begin()
                data = resp.read()
            except (OSError, http.client.HTTPException) as e:
                if send_error is not None:
                    raise OSError("chunked POST: sending failed (%r) and no answer could be "
                                  "read (%r)" % (send_error, e)) from e
                raise
            self.statuses.append(resp.status)
            return resp.status, resp.headers, data
        finally:
            s.close()

    # -- admin listener (plain HTTP)

    def admin_get(self, path, timeout=10.0):
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=scaled(timeout))
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            conn.close()

    def metrics(self):
        st, h, body = self.admin_get("/metrics")
        if st != 200:
            raise AssertionError("/metrics answered %d: %r" % (st, body[:300]))
        return parse_metrics(body.decode("utf-8"))

    # -- file sink

    def sink_lines(self, path=None):
        """Complete lines (bytes, with their b'\\n') of the file sink.  A last
        line without a newline is still being written and is left out."""
        p = path or self.file_path
        try:
            with open(p, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        lines = data.split(b"\n")
        return [l + b"\n" for l in lines[:-1]]

    def events_raw(self, path=None):
        """[(raw_line, obj)].  A line that is not one JSON object (e.g. a torn
        write followed by the next line) is recorded in self.malformed, and the
        last complete record in it, if any, is still returned."""
        out = []
        malformed = []
        for line in self.sink_lines(path):
            try:
                obj = json.loads(line)
                if not isinstance(obj, dict):
                    raise ValueError("not an object")
                out.append((line, obj))
                continue
            except ValueError:
                malformed.append(line)
            k = line.rfind(b'{"received_at"')
            if k > 0:
                try:
                    obj = json.loads(line[k:])
                    if isinstance(obj, dict):
                        out.append((line[k:], obj))
                except ValueError:
                    pass
        self.malformed = malformed
        return out

    def events(self, path=None):
        return [o for _, o in self.events_raw(path)]

    def wait_events(self, predicate=None, count=None, timeout=30.0, path=None,
                    raise_on_timeout=True, what=None):
        """Poll the file sink until predicate(events) is true (or there are at
        least `count` events).  Returns the events.  Bounded."""
        if predicate is None:
            if count is None:
                raise ValueError("predicate or count")
            predicate = lambda evs: len(evs) >= count  # noqa: E731
        elif isinstance(predicate, int):
            count, predicate = predicate, (lambda evs: len(evs) >= count)
        deadline = time.monotonic() + scaled(timeout)
        while True:
            evs = self.events(path)
            if predicate(evs):
                return evs
            if time.monotonic() >= deadline:
                if raise_on_timeout:
                    raise AssertionError(
                        "file sink %s: condition %s not met within %.0fs (%d events, %d malformed "
                        "lines; bridge %s)\n%s" %
                        (path or self.file_path, what or (count and "count>=%d" % count) or
                         "predicate", scaled(timeout), len(evs), len(self.malformed),
                         "running" if self.running() else "exited (%s)" % (
                             self.proc.returncode if self.proc else None),
                         self.log_tail()))
                return evs
            time.sleep(0.05)

    def wait_ids(self, ids, timeout=30.0, what=None, **kw):
        ids = set(ids)
        if what is None:
            what = "all of %d ids present" % len(ids)

        def pred(evs):
            self.missing_ids = ids - {e.get("id") for e in evs}
            return not self.missing_ids
        try:
            return self.wait_events(pred, timeout=timeout, what=what, **kw)
        except AssertionError as e:
            raise AssertionError("%s\nmissing ids (%d): %s" % (
                e, len(self.missing_ids), sorted(self.missing_ids)[:10])) from None


# ---------------------------------------------------------------- test base

class BridgeTestCase(unittest.TestCase):
    """Base class: start_bridge() registers a cleanup that stops the bridge
    (even on failure), then checks that no 410/429 was ever answered and that
    no configured secret appears in the bridge log."""

    secrets_never_logged = (SECRET,)

    @classmethod
    def setUpClass(cls):
        require_binary()

    def start_bridge(self, **kw):
        tmp = tempfile.mkdtemp(prefix="hbtest-%s-" % self._testMethodName[:30])
        b = Bridge(tmp, start=False, **kw)
        self.addCleanup(self._finish_bridge, b)
        b.start()
        return b

    def _finish_bridge(self, b):
        failed = self._outcome_failed()
        b.cleanup(keep_tmp=True)
        try:
            bad = [s for s in b.statuses if s in (410, 429)]
            self.assertEqual(bad, [], "the bridge answered 410/429, which the contract forbids")
            text = b.log_text()
            # under the sanitizer build (scripts/test.sh), a report in the
            # bridge's stderr fails the test even if the answers were right
            for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
                self.assertNotIn(marker, text, "sanitizer report in the bridge log %s" %
                                 b.log_path)
            for s in set(self.secrets_never_logged) | self._config_secrets(b):
                self.assertNotIn(s, text, "a secret value appears in the bridge log %s" %
                                 b.log_path)
        except AssertionError:
            failed = True
            raise
        finally:
            if failed:
                print("\n[hbtest] keeping %s (log: %s)" % (b.tmpdir, b.log_path))
            elif not os.environ.get("HB_KEEP_TMP"):
                shutil.rmtree(b.tmpdir, ignore_errors=True)

    @staticmethod
    def _config_secrets(b):
        v = b.config.get("intercom.secret", "")
        if v.startswith("file:"):
            return set()
        return {s for s in v.split(",") if len(s.strip()) >= 6}

    def _outcome_failed(self):
        outcome = getattr(self, "_outcome", None)
        if outcome is None:
            return False
        res = getattr(outcome, "result", None)
        if res is None:
            return not getattr(outcome, "success", True)
        for lst in (getattr(res, "failures", []), getattr(res, "errors", [])):
            for t, _ in lst:
                if t is self:
                    return True
        return not getattr(outcome, "success", True)

    # -- assertions shared by the files

    def assert_refusals_logged(self, b, status, n):
        """The bridge log has exactly n lines naming `status` (each refusal
        logged once, with its reason).  Polls (bounded); if the lines only
        show up after exit, says so (buffered logging)."""
        pat = re.compile(r"\b%d\b" % status)

        def count(text):
            return sum(1 for line in text.splitlines()
                       if pat.search(line) and not line.startswith("=== hbtest"))
        if b.wait_log(lambda t: count(t) >= n, timeout=10):
            got = count(b.log_text())
            self.assertEqual(got, n, "%d refusals with status %d, but %d log lines name %d "
                             "(each refusal is logged once)\n%s" %
                             (n, status, got, status, b.log_tail()))
            return
        running = b.running()
        rc = b.stop() if running else b.proc.returncode
        self.fail("%d refusals with status %d, but only %d log lines name it within 10 s "
                  "(%d after the bridge exited, rc=%s)\n%s" % (
                      n, status, count(b.log_text()) if running else -1, count(b.log_text()),
                      rc, b.log_tail()))

    def assertJsonBody(self, body, key=None, value=None, msg=""):
        try:
            obj = json.loads(body)
        except ValueError:
            self.fail("%s answer body is not JSON: %r" % (msg, body[:200]))
        self.assertIsInstance(obj, dict, "%s answer body is not a JSON object: %r" % (msg, body))
        if key is not None:
            self.assertIn(key, obj, "%s answer body lacks %r: %r" % (msg, key, body))
            if value is not None:
                self.assertEqual(obj[key], value, "%s answer body: %r" % (msg, body))
        return obj

    def assertAccepted(self, resp, msg=""):
        st, h, body = resp
        self.assertEqual(st, 200, "%s expected 200, got %d %r" % (msg, st, body[:300]))
        self.assertJsonBody(body, "status", "accepted", msg)

    def assertRefused(self, resp, status, msg=""):
        st, h, body = resp
        self.assertEqual(st, status, "%s expected %d, got %d %r" % (msg, status, st, body[:300]))
        self.assertJsonBody(body, "error", None, msg)


def main():
    unittest.main(verbosity=2)
