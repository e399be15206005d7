"""HTTP edge cases on the public listener, spoken on raw TLS sockets: each
gets a defined answer (or a closed connection), never a crash, a hang or a
publish.  See the gate in include/hb/conn.h.

Run: python3 -m unittest -v tests/integration/test_http_edges.py
"""

import os
import select
import socket
import ssl
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hbtest  # noqa: E402
from hbtest import BridgeTestCase, notification, scaled, sign  # noqa: E402

HEAD_MAX = 16384  # HB_CONN_HEAD_MAX
HEAD_LINES = 128  # HB_CONN_HEAD_LINES


def uid(prefix="edge"):
    return "%s_%s" % (prefix, uuid.uuid4().hex)


def signed_post(path, body, version="1.1", extra=(), content_length=True):
    """The bytes of one signed POST; extra: header lines (str) added."""
    lines = ["POST %s HTTP/%s" % (path, version), "Host: 127.0.0.1",
             "Content-Type: application/json", "X-Hub-Signature: %s" % sign(body)]
    if content_length:
        lines.append("Content-Length: %d" % len(body))
    lines.extend(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def read_until_closed(s, timeout=30.0):
    """Everything the server sends until it closes (bounded)."""
    s.settimeout(scaled(timeout))
    data = b""
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            break
        except (socket.timeout, TimeoutError):
            raise AssertionError("the server neither answered nor closed within %.0f s; "
                                 "got %r" % (scaled(timeout), data[:200]))
        if not chunk:
            break
        data += chunk
    return data


def read_until_closed_after(tc, b, raw, timeout=30.0):
    """Send raw on a new TLS connection; everything until the server closes."""
    s = b.tls_socket(timeout=timeout)
    try:
        s.sendall(raw)
        return read_until_closed(s, timeout)
    finally:
        s.close()


def parse_responses(data):
    """[(status, {lower-case header: value}, body)] from raw response bytes."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            raise AssertionError("truncated response head: %r" % data[:200])
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        # no Content-Length (an HTTP/1.0 answer): the body runs to the close
        n = int(headers.get("content-length", len(rest)))
        out.append((status, headers, rest[:n]))
        data = rest[n:]
    return out


def answer_lines(b, raw, timeout=30.0):
    """Send raw on a new TLS connection: the lines of the one answer (up
    to its JSON body's end, or the close), its Date line as b"Date"."""
    s = b.tls_socket()
    try:
        s.sendall(raw)
        s.settimeout(scaled(timeout))
        data = b""
        while b"\r\n\r\n" not in data or not data.endswith(b"}\n"):
            try:
                chunk = s.recv(65536)
            except (ssl.SSLError, ConnectionResetError):
                break
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    return [ln if not ln.startswith(b"Date: ") else b"Date" for ln in data.split(b"\r\n")]


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def sanitized_binary():
    """ASan keeps freed memory in quarantine: RSS says nothing there."""
    with open(hbtest.bin_path(), "rb") as f:
        data = f.read()
    # gcc links libasan dynamically: the binary holds its symbols' names
    return b"__asan_init" in data or b"AddressSanitizer" in data


class HttpEdges(BridgeTestCase):

    def exchange(self, b, raw, timeout=30.0):
        """Send raw on a new TLS connection, read until the server closes."""
        s = b.tls_socket(timeout=timeout)
        try:
            try:
                s.sendall(raw)
            except (ssl.SSLEOFError, ssl.SSLZeroReturnError, BrokenPipeError,
                    ConnectionResetError):
                # a refusal from the head alone may close the connection
                # while the rest is still being sent: its answer was sent
                # first and is read below
                pass
            return parse_responses(read_until_closed(s, timeout))
        finally:
            s.close()

    def assert_json_refusal(self, resp, status, msg=""):
        st, h, body = resp
        self.assertEqual(st, status, "%s: expected %d, got %d %r" % (msg, status, st, body))
        self.assertEqual(h.get("content-type"), "application/json", msg)
        self.assertJsonBody(body, "error", None, msg)
        self.assertEqual(h.get("connection", "").lower(), "close", "%s: not closed" % msg)

    def assert_refused_or_reset(self, resps, status, msg):
        """A head far over the limit is refused while the client may still
        be sending it; the close can then reach the client as a TCP reset
        that discards the answer in its receive buffer. Either the JSON
        refusal or a closed connection without an answer is defined."""
        self.assertLessEqual(len(resps), 1, "%s: %r" % (msg, resps))
        if resps:
            self.assert_json_refusal(resps[0], status, msg)

    def assert_not_published(self, b, ids):
        """Post a sentinel and wait for it (the sink publishes in journal
        order): none of ids came before it."""
        sid = uid("sentinel")
        self.assertAccepted(b.post_signed(notification(sid)), "sentinel")
        evs = b.wait_ids([sid], what="sentinel published")
        got = {e.get("id") for e in evs}
        for i in ids:
            self.assertNotIn(i, got, "refused request %s was published" % i)

    # -- framing that a proxy and the bridge could read differently

    def test_several_content_length_headers_are_400_and_not_published(self):
        b = self.start_bridge()
        p = b.intercom_path
        ids = []
        for extra_cl in (5, 0):  # different values, then the same value twice
            nid = uid("twocl")
            ids.append(nid)
            body = notification(nid)
            raw = signed_post(p, body, extra=["Content-Length: %d" % (len(body) + extra_cl)])
            resps = self.exchange(b, raw)
            self.assertEqual(len(resps), 1, resps)
            self.assert_json_refusal(resps[0], 400, "two Content-Length headers")
        self.assert_refusals_logged(b, 400, 2)
        self.assert_not_published(b, ids)

    def test_content_length_with_transfer_encoding_is_400_and_not_published(self):
        b = self.start_bridge()
        nid = uid("clte")
        body = notification(nid)
        chunked = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
        head = ("POST %s HTTP/1.1\r\nHost: x\r\nX-Hub-Signature: %s\r\n"
                "Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" %
                (b.intercom_path, sign(body), len(chunked))).encode()
        resps = self.exchange(b, head + chunked)
        self.assertEqual(len(resps), 1, resps)
        self.assert_json_refusal(resps[0], 400, "Content-Length and Transfer-Encoding")
        self.assert_not_published(b, [nid])

    def test_malformed_framing_headers_are_400(self):
        b = self.start_bridge()
        body = notification(uid("bad"))
        for extra, what in ((["Content-Length : 5"], "space before the colon"),
                            (["Transfer-Encoding: gzip"], "a coding other than chunked"),
                            (["X-A: 1", " folded"], "a folded line"),
                            (["X-Hookbridge-Refusal: 200 ok"], "the reserved header")):
            raw = signed_post(b.intercom_path, body, extra=extra)
            resps = self.exchange(b, raw)
            self.assertEqual(len(resps), 1, "%s: %r" % (what, resps))
            self.assert_json_refusal(resps[0], 400, what)
        for bad in ("12abc", "-1", "", "99999999999999999999"):
            raw = ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %s\r\n\r\n" %
                   (b.intercom_path, bad)).encode()
            resps = self.exchange(b, raw)
            self.assertEqual(len(resps), 1, "Content-Length %r: %r" % (bad, resps))
            self.assert_json_refusal(resps[0], 400, "Content-Length %r" % bad)

    # -- sizes, checked from the head before any body byte

    def test_content_length_over_max_body_is_413_before_the_body(self):
        """Regression (issue 10): Content-Length 1500000 with max_body 1 MiB
        and no body sent got no answer at all."""
        b = self.start_bridge(**{"limits.max_body": "1m"})
        raw = ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 1500000\r\n\r\n" %
               b.intercom_path).encode()
        resps = self.exchange(b, raw, timeout=20)
        self.assertEqual(len(resps), 1, resps)
        self.assert_json_refusal(resps[0], 413, "Content-Length over the limit")
        self.assert_refusals_logged(b, 413, 1)

    def test_huge_body_gets_our_json_413_not_libevents_page(self):
        """Regression (issue 10): 50 MB was cut by libevent's HTML 413.

        The client keeps sending the body it announced, as a real one
        does, and must still read the 413: the bridge answers, then drains
        what follows (lingering close) rather than closing on unread bytes,
        which makes the kernel reset the connection and can drop the
        answer. One thread does the sending and the reading: an SSL object
        is not safe to use from two threads at once, and a client that did
        so failed this test now and then with a connection that never got
        as far as its request head."""
        b = self.start_bridge(**{"limits.max_body": "1m"})
        s = b.tls_socket(timeout=30)
        total = 50 << 20
        try:
            s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" %
                       (b.intercom_path, total)).encode())
            chunk = b"x" * 65536
            sent = 0
            while sent < total:
                readable, _, _ = select.select([s], [], [], 0)
                if readable or s.pending():
                    break  # the answer is here: read it while still sending
                s.sendall(chunk)
                sent += len(chunk)
            data = read_until_closed(s, 30)
        finally:
            s.close()
        resps = parse_responses(data)
        self.assertEqual(len(resps), 1, data[:300])
        self.assert_json_refusal(resps[0], 413, "50 MB body")
        self.assertLess(sent, total, "the answer came only after the whole body was sent")
        self.assertTrue(b.running())

    def test_refused_connection_closes_when_the_client_does_or_after_lingering(self):
        """After a refusal the bridge keeps reading what the client still
        sends (no reset, which could drop the answer);
        a client that then goes silent without closing is closed after
        the lingering period (5 s), not kept for ever."""
        b = self.start_bridge(**{"limits.max_body": "1k"})
        s = b.tls_socket(timeout=30)
        try:
            s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" %
                       b.intercom_path).encode() + b"y" * 20000)
            t0 = time.monotonic()
            data = b""
            while b"\r\n\r\n" not in data or len(data) < data.index(b"\r\n\r\n") + 4 + int(
                    data.split(b"Content-Length: ")[1].split(b"\r\n")[0]):
                chunk = s.recv(65536)
                self.assertTrue(chunk, "closed before the whole answer: %r" % data[:300])
                data += chunk
            resps = parse_responses(data)
            self.assertEqual([r[0] for r in resps], [413], data[:300])
            s.sendall(b"z" * 20000)  # still read and dropped: no reset
            time.sleep(0.2)
            s.sendall(b"z" * 20000)
            # the client stays silent: the bridge closes within the period
            s.settimeout(scaled(30))
            deadline = time.monotonic() + scaled(30)
            gone = False
            while time.monotonic() < deadline:
                try:
                    s.sendall(b"z" * 1024)
                except (OSError, ssl.SSLError):
                    gone = True
                    break
                time.sleep(0.2)
            self.assertTrue(gone, "the refused connection was kept open")
            self.assertGreater(time.monotonic() - t0, 2.0, "closed without lingering")
        finally:
            s.close()
        self.assertTrue(b.running())

    def test_stop_while_refused_connections_linger(self):
        """The bridge stops cleanly (exit 0, and under the sanitizer build
        no report) while refused connections linger: an HTTP/1.1 one, an
        HTTP/1.0 one, and one with requests pipelined behind its refused
        one, each answered 413 and still draining when SIGTERM comes."""
        b = self.start_bridge(**{"limits.max_body": "1k"})

        def big(version):
            return ("POST %s HTTP/%s\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" %
                    (b.intercom_path, version)).encode() + b"y" * 3000
        body = notification(uid("linger"))
        sends = [big("1.1"), big("1.0"),
                 big("1.1") + signed_post(b.intercom_path, body) * 2]
        socks = []
        try:
            for data in sends:
                s = b.tls_socket(timeout=30)
                socks.append(s)
                s.sendall(data)
            for s in socks:
                got = b""
                while b"\r\n\r\n" not in got or not got.endswith(b"}\n"):
                    chunk = s.recv(65536)
                    self.assertTrue(chunk, "closed before the answer: %r" % got[:300])
                    got += chunk
                self.assertEqual([r[0] for r in parse_responses(got)], [413], got[:300])
                s.sendall(b"z" * 1000)  # lingering: read and dropped
            self.assertEqual(b.stop(), 0, b.log_tail())
        finally:
            for s in socks:
                s.close()

    def test_header_block_at_the_limit_and_one_byte_over(self):
        b = self.start_bridge()
        nid = uid("limit")
        body = notification(nid)
        close = "Connection: close"
        base = signed_post(b.intercom_path, body, extra=[close, "X-Pad: "])
        pad = HEAD_MAX - (base.index(b"\r\n\r\n") + 4)
        raw = signed_post(b.intercom_path, body, extra=[close, "X-Pad: " + "p" * pad])
        self.assertEqual(raw.index(b"\r\n\r\n") + 4, HEAD_MAX)
        resps = self.exchange(b, raw)
        self.assertEqual([r[0] for r in resps], [200], "head of exactly %d bytes" % HEAD_MAX)
        over = signed_post(b.intercom_path, notification(uid("over")),
                           extra=[close, "X-Pad: " + "p" * (pad + 1)])
        # same body length (the ids are the same length), so one byte over
        self.assertEqual(over.index(b"\r\n\r\n") + 4, HEAD_MAX + 1)
        resps = self.exchange(b, over)
        self.assertEqual(len(resps), 1, resps)
        self.assert_json_refusal(resps[0], 431, "head one byte over")
        b.wait_ids([nid])

    def test_thousands_of_headers_are_431(self):
        b = self.start_bridge()
        body = notification(uid("many"))
        few = ["X-%d: 1" % i for i in range(HEAD_LINES + 1)]  # small, but too many lines
        many = ["X-%d: 1" % i for i in range(5000)]            # too many and too large
        for extra, what in ((few, "%d header lines" % len(few)), (many, "5000 headers")):
            resps = self.exchange(b, signed_post(b.intercom_path, body, extra=extra))
            self.assert_refused_or_reset(resps, 431, what)
        self.assertAccepted(b.post_signed(notification(uid())), "after the refusals")

    def test_request_line_of_64k_is_431(self):
        b = self.start_bridge()
        raw = ("GET /%s HTTP/1.1\r\nHost: x\r\n\r\n" % ("a" * 65536)).encode()
        resps = self.exchange(b, raw)
        self.assert_refused_or_reset(resps, 431, "64 KB request line")

    # -- the body budget

    def test_slow_large_bodies_stay_within_the_budget_and_small_deliveries_pass(self):
        """limits.max_inflight_bytes: 60 clients each announce a body of
        1,000,000 bytes and send 900 KB of it slowly, never finishing.
        Large bodies may take 3/4 of the 8 MiB budget: 6 of them are held,
        the others get 503 + Retry-After from their head alone (no 429),
        the bridge's RSS grows by less than the budget plus a fixed
        overhead, and signed small deliveries still get 200 meanwhile."""
        b = self.start_bridge(**{"limits.max_body": "1m", "limits.max_inflight_bytes": "8m",
                                 "limits.read_timeout_ms": "120000"})
        self.assertAccepted(b.post_signed(notification(uid("warm"))), "warm-up")
        rss0 = rss_kb(b.proc.pid)
        n, cl, sent = 60, 1000000, 900 * 1024
        answers, held, socks = {}, [], []
        lock = threading.Lock()
        stop = threading.Event()
        head = ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" %
                (b.intercom_path, cl)).encode()

        def client(k):
            s = b.tls_socket(timeout=60)
            with lock:
                socks.append(s)
            s.sendall(head)
            try:
                data = read_until_closed(s, 3)  # a refused head is answered and closed
                with lock:
                    answers[k] = data
                return
            except AssertionError:
                pass  # no answer: held, send the body slowly
            try:
                for i in range(0, sent, 65536):
                    s.sendall(b"x" * min(65536, sent - i))
                    time.sleep(0.01)
                try:
                    data = read_until_closed(s, 1)  # a late refusal, on a slow machine
                    with lock:
                        answers[k] = data
                    return
                except AssertionError:
                    pass
                with lock:
                    held.append(k)
                stop.wait(scaled(120))
            except OSError as e:
                with lock:
                    answers[k] = repr(e).encode()

        threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(n)]
        for t in threads:
            t.start()
        try:
            deadline = time.monotonic() + scaled(120)
            while time.monotonic() < deadline:
                with lock:
                    if len(answers) + len(held) == n:
                        break
                time.sleep(0.1)
            with lock:
                self.assertEqual(len(answers) + len(held), n,
                                 "not every slow client was either held or refused")
                self.assertEqual(len(held), 6, "held: %d, refused: %d" % (len(held),
                                                                          len(answers)))
                for k, data in answers.items():
                    resps = parse_responses(data)
                    self.assertEqual(len(resps), 1, data[:200])
                    self.assert_json_refusal(resps[0], 503, "client %d" % k)
                    self.assertIn("retry-after", resps[0][1])
            rss1 = rss_kb(b.proc.pid)
            ids = [uid("small") for _ in range(10)]
            for i in ids:
                self.assertAccepted(b.post_signed(notification(i)), "small delivery meanwhile")
            b.wait_ids(ids)
            print("\n[edges] RSS %.1f MB -> %.1f MB with %d slow clients, 6 held" %
                  (rss0 / 1024.0, rss1 / 1024.0, n))
            if not sanitized_binary():
                grown_mb = (rss1 - rss0) / 1024.0
                self.assertLess(grown_mb, 8 + 24, "RSS grew by %.1f MB with an 8 MiB budget "
                                "and %d slow clients" % (grown_mb, n))
        finally:
            stop.set()
            with lock:
                for s in socks:
                    try:
                        s.close()
                    except OSError:
                        pass
            for t in threads:
                t.join(scaled(10))
        # the held bodies are given back when their connections close
        self.assertAccepted(b.post_signed(notification(uid("after"))), "after the clients left")

    def test_budget_is_given_back_per_request_on_a_keep_alive_connection(self):
        """Each answered request gives its body back at once, not when its
        connection closes: 10 bodies of 600 KB in a row on one connection,
        with 3 MiB of the 4 MiB budget open to large bodies, all get 200."""
        b = self.start_bridge(**{"limits.max_body": "1m", "limits.max_inflight_bytes": "4m"})
        conn = b.connection()
        self.addCleanup(conn.close)
        ids = [uid("keepalive") for _ in range(10)]
        for i in ids:
            self.assertAccepted(b.post_signed(notification(i, pad=600 * 1024), conn=conn),
                                "large body %s on one connection" % i)
        self.assertEqual(conn.connects, 1, "the connection was not kept alive")
        b.wait_ids(ids)

    # -- connections

    def test_pipelined_requests_are_answered_in_order(self):
        b = self.start_bridge()
        ids = [uid("pipe") for _ in range(3)]
        raw = b"".join(signed_post(b.intercom_path, notification(i),
                                   extra=["Connection: close"] if k == 2 else [])
                       for k, i in enumerate(ids))
        resps = self.exchange(b, raw)
        self.assertEqual([r[0] for r in resps], [200, 200, 200], resps)
        b.wait_ids(ids)

    def test_heads_and_posts_pipelined_in_any_order_are_answered_in_order(self):
        """The gate takes a plain POST itself (hb/conn.h, direct requests)
        and leaves a HEAD to evhttp: on one connection, each waits for the
        answer before it, whichever way either is read."""
        b = self.start_bridge()
        ids = [uid("mixed") for _ in range(3)]
        head = ("HEAD %s HTTP/1.1\r\nHost: x\r\n\r\n" % b.intercom_path).encode()
        raw = (head + signed_post(b.intercom_path, notification(ids[0])) +
               signed_post(b.intercom_path, notification(ids[1])) + head + head +
               signed_post(b.intercom_path, notification(ids[2]), extra=["Connection: close"]))
        kinds = ["head", "post", "post", "head", "head", "post"]
        data = read_until_closed_after(self, b, raw)
        got = []
        for kind in kinds:
            top, sep, rest = data.partition(b"\r\n\r\n")
            self.assertTrue(sep, "answers missing after %r: %r" % (got, data[:300]))
            lines = top.decode("latin-1").split("\r\n")
            h = dict((k.strip().lower(), v.strip())
                     for k, _, v in (ln.partition(":") for ln in lines[1:]))
            n = 0 if kind == "head" else int(h["content-length"])
            body, data = rest[:n], rest[n:]
            got.append((kind, int(lines[0].split()[1])))
            if kind == "post":
                self.assertJsonBody(body, "status", "accepted", "answer %d" % len(got))
        self.assertEqual(got, [(k, 200) for k in kinds])
        self.assertEqual(data, b"", "more answers than requests")
        b.wait_ids(ids)

    def test_answers_are_the_same_bytes_whichever_way_the_request_is_read(self):
        """A request with a Connection header goes through evhttp; the same
        without one is read by the gate itself: the answers (200, 401, 400)
        differ in nothing but the Date."""
        b = self.start_bridge()

        body = notification(uid("same"))
        forged = body.replace(b"}", b" }", 1)
        cases = [("accepted", body, []),
                 ("bad signature", forged, ["X-Hub-Signature: sha1=" + "0" * 40]),
                 ("not JSON", b"[1]", [])]
        for what, payload, extra in cases:
            def raw(conn_header, k):
                p = payload if what != "accepted" else notification(uid("same%d" % k))
                lines = ["POST %s HTTP/1.1" % b.intercom_path, "Host: x",
                         "Content-Length: %d" % len(p)]
                lines += extra or ["X-Hub-Signature: %s" % sign(p)]
                lines += conn_header
                return ("\r\n".join(lines) + "\r\n\r\n").encode() + p
            direct = answer_lines(b, raw([], 0))
            via_evhttp = answer_lines(b, raw(["Connection: keep-alive"], 1))
            self.assertEqual(direct, via_evhttp, what)
            self.assertIn(b"Date", direct, what)

    def test_direct_requests_read_odd_heads_as_evhttp_reads_them(self):
        """The gate's own reading of a POST (hb/conn.h, direct requests)
        must find what evhttp finds in the same head, or a request evhttp
        refuses (or reads another way) is accepted when read directly: a
        header value after a tab keeps the tab in evhttp (only spaces are
        skipped: 401), its target runs to the line's last space (404), a
        NUL ends its line and a stray CR in a value is refused (400). Each
        head is sent both ways (with a Connection header evhttp reads it):
        the answers must match."""
        b = self.start_bridge()
        path = b.intercom_path
        cases = [("signature after a tab", "POST %s HTTP/1.1" % path, "X-Hub-Signature:\t%s", []),
                 ("two spaces before the version", "POST %s  HTTP/1.1" % path,
                  "X-Hub-Signature: %s", []),
                 ("a space in the target", "POST %s x HTTP/1.1" % path, "X-Hub-Signature: %s", []),
                 ("a NUL in the target", "POST %s?\0 HTTP/1.1" % path, "X-Hub-Signature: %s", []),
                 ("a CR inside a header value", "POST %s HTTP/1.1" % path, "X-Hub-Signature: %s",
                  ["X-Note: a\rb"])]
        for k, (what, line, sig, extra) in enumerate(cases):
            def raw(conn_header, way):
                p = notification(uid("odd%d%s" % (k, way)))
                lines = [line, "Host: x", "Content-Length: %d" % len(p), sig % sign(p)]
                lines += extra + conn_header
                return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + p
            direct = answer_lines(b, raw([], "d"))
            via_evhttp = answer_lines(b, raw(["Connection: keep-alive"], "e"))
            self.assertEqual(direct, via_evhttp, what)
        self.assertTrue(b.running(), b.log_tail())

    def test_content_length_on_a_head_frames_no_body_as_evhttp_reads_none(self):
        """evhttp 2.1 reads no body for a HEAD (nor a TRACE), whatever its
        Content-Length says, and reads the bytes after the head as the next
        request. The gate took them for a body: evhttp then read a request
        the gate had not counted, and the gate answered the next one
        directly (hb/conn.h) while evhttp's was still waiting for the
        journal, so answers could come out of order, the connection stall
        (evhttp's answer took the bufferevent back from the direct one) or
        the bridge exit (evhttp's read callback run while it answers)."""
        b = self.start_bridge()
        s = b.tls_socket()
        self.addCleanup(s.close)
        ids = [uid("after_head") for _ in range(3)]
        posts = [signed_post(b.intercom_path, notification(i)) for i in ids]
        s.sendall(("HEAD %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" %
                   (b.intercom_path, len(posts[0]))).encode())
        s.settimeout(scaled(30))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            self.assertTrue(chunk, "closed before the HEAD's answer")
            data += chunk
        self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data)
        s.sendall(posts[0] + posts[1])
        s.sendall(posts[2])
        codes = []
        data = data.partition(b"\r\n\r\n")[2]
        deadline = time.monotonic() + scaled(30)
        while len(codes) < 3 and time.monotonic() < deadline:
            try:
                resps = parse_responses(data)
            except AssertionError:  # an answer not whole yet
                resps = None
            if resps is not None:
                codes = [r[0] for r in resps]
                if len(codes) >= 3:
                    break
            try:
                chunk = s.recv(65536)
            except (socket.timeout, TimeoutError, ssl.SSLError, ConnectionResetError):
                break
            if not chunk:
                break
            data += chunk
        self.assertEqual(codes, [200, 200, 200], "%r\n%s" % (data[:400], b.log_tail()))
        b.wait_ids(ids)
        self.assertTrue(b.running(), b.log_tail())

    def test_pipelined_refusal_closes_and_what_follows_is_not_read(self):
        b = self.start_bridge()
        good, bad, after = uid("first"), uid("smuggle"), uid("after")
        bad_body = notification(bad)
        raw = (signed_post(b.intercom_path, notification(good)) +
               signed_post(b.intercom_path, bad_body,
                           extra=["Content-Length: %d" % (len(bad_body) - 3)]) +
               signed_post(b.intercom_path, notification(after)))
        resps = self.exchange(b, raw)
        self.assertEqual([r[0] for r in resps], [200, 400], resps)
        b.wait_ids([good])
        self.assert_not_published(b, [bad, after])

    def test_chunked_request_closes_the_connection_after_its_answer(self):
        b = self.start_bridge()
        first, second = uid("chunked"), uid("behind")
        body = notification(first)
        head = ("POST %s HTTP/1.1\r\nHost: x\r\nX-Hub-Signature: %s\r\n"
                "Transfer-Encoding: chunked\r\n\r\n" % (b.intercom_path, sign(body))).encode()
        raw = (head + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n" +
               signed_post(b.intercom_path, notification(second)))
        resps = self.exchange(b, raw)
        self.assertEqual([r[0] for r in resps], [200], resps)
        self.assertEqual(resps[0][1].get("connection", "").lower(), "close")
        b.wait_ids([first])
        self.assert_not_published(b, [second])

    def test_http10_without_keep_alive_is_answered_and_closed(self):
        b = self.start_bridge()
        nid = uid("http10")
        resps = self.exchange(b, signed_post(b.intercom_path, notification(nid),
                                             version="1.0"))
        self.assertEqual([r[0] for r in resps], [200], resps)
        b.wait_ids([nid])

    def test_client_that_closes_while_its_request_waits_for_the_journal(self):
        """ack = published with a sink that cannot publish: requests wait
        (then 503); clients that leave meanwhile must not crash the bridge
        or leave it stuck."""
        port = hbtest.free_port()
        b = self.start_bridge(wait_ready=False, **{
            "ack": "published", "sinks": "redis",
            "redis.url": "redis://127.0.0.1:%d" % port, "file.path": None})
        for _ in range(20):
            s = b.tls_socket(timeout=10)
            s.sendall(signed_post(b.intercom_path, notification(uid("gone"))))
            time.sleep(0.02)
            s.close()
        # the waits end (503 to clients that are gone) and the bridge still answers
        self.assertTrue(b.wait_log(lambda t: t.count("durable but not yet published") >= 20,
                                   timeout=60),
                        "the 20 waiting requests were not all answered\n" + b.log_tail())
        self.assertTrue(b.running(), b.log_tail())
        st, _, _ = b.head()
        self.assertEqual(st, 200)


if __name__ == "__main__":
    hbtest.main()
