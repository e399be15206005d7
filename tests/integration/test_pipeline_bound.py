"""A client that pipelines requests on one keep-alive TLS connection and
never reads the answers must not make the bridge hold what it sends
(src/conn.c, "Backpressure"): the connection stops being read while it has
too much input the gate has not judged or too many answers the client has
not taken, the bridge's memory stays bounded, other clients are served
meanwhile, the stuck connection is closed by the timeouts, and every
request answered 200 is in the sink.

Run: python3 -m unittest -v tests/integration/test_pipeline_bound.py
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
from test_conn_io import RecordClient, take_answers  # noqa: E402
from test_http_edges import rss_kb, sanitized_binary  # noqa: E402

MAX_BODY = 512 * 1024
BUDGET = 4 * 1024 * 1024  # limits.max_inflight_bytes
# What the bridge may grow by while one client pipelines: the body budget,
# the per-connection bound (a few hundred KiB) and a fixed allowance for
# the allocator, the journal's batches and the sink (as
# test_http_edges.py's budget test allows).
RSS_GROWTH_MB = BUDGET / (1024 * 1024) + 24


def uid(prefix="pipe"):
    return "%s_%s" % (prefix, uuid.uuid4().hex)


def signed_post(path, body, extra=""):
    return ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "X-Hub-Signature: %s\r\nContent-Length: %d\r\n%s\r\n" %
            (path, sign(body), len(body), extra)).encode() + body


class PipelineBound(BridgeTestCase):

    def pipeline_without_reading(self, b, requests, make_body, extra=""):
        """One client sends `requests` signed POSTs (bodies from
        make_body(id)) pipelined on one connection, and reads nothing until the bridge closes the connection. Meanwhile
        the bridge's RSS is sampled and other clients post. Returns (peak
        RSS growth in MB, bytes sent, ids sent, answer codes)."""
        for _ in range(3):
            self.assertAccepted(b.post_signed(notification(uid("warm"))), "warm-up")
        rss0 = rss_kb(b.proc.pid)
        ok0 = self.answered_200(b)
        # a small receive buffer: the answers the client leaves unread
        # fill the socket after a hundred or so, not tens of thousands
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.settimeout(scaled(120))
        raw.connect(("127.0.0.1", b.port))
        s = hbtest.client_ssl_context().wrap_socket(raw, server_hostname="localhost")
        self.addCleanup(s.close)
        state = {"sent": 0, "ids": [], "error": None, "done": False}

        def sender():
            try:
                for _ in range(requests):
                    nid = uid()
                    raw = signed_post(b.intercom_path, make_body(nid), extra)
                    s.sendall(raw)
                    state["ids"].append(nid)
                    state["sent"] += len(raw)
            except (OSError, ssl.SSLError) as e:
                state["error"] = e  # the bridge closed the connection
            finally:
                state["done"] = True

        t = threading.Thread(target=sender, daemon=True)
        t.start()
        peak, others = rss0, []
        deadline = time.monotonic() + scaled(300)
        next_post = time.monotonic()
        while not state["done"] and time.monotonic() < deadline:
            peak = max(peak, rss_kb(b.proc.pid))
            if time.monotonic() >= next_post:
                # another client, on its own connection, is served meanwhile
                nid = uid("other")
                self.assertAccepted(b.post_signed(notification(nid), timeout=60),
                                    "another client while one pipelines")
                others.append(nid)
                next_post = time.monotonic() + 0.5
            time.sleep(0.02)
        self.assertTrue(state["done"], "the pipelining client neither sent everything nor was "
                        "closed within %.0f s\n%s" % (scaled(300), b.log_tail()))
        t.join(scaled(10))
        # the stuck connection is closed by the bridge (its read or write
        # timeout, or the slow-client deadline) once it has stalled: read
        # what was answered until then
        s.settimeout(scaled(60))
        data, closed = b"", False
        end = time.monotonic() + scaled(60)
        while time.monotonic() < end:
            peak = max(peak, rss_kb(b.proc.pid))
            try:
                chunk = s.recv(1 << 20)
            except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
                closed = True
                break
            except (socket.timeout, TimeoutError):
                break
            if not chunk:
                closed = True
                break
            data += chunk
        self.assertTrue(closed, "the bridge did not close the connection of a client that "
                        "never reads\n%s" % b.log_tail())
        codes = []
        take_answers(data, codes)
        grown = (peak - rss0) / 1024.0
        print("\n[pipeline] sent %.1f MiB in %d requests (%s); RSS %.1f MB -> peak %.1f MB "
              "(+%.1f MB); %d answers read, %d of them 200; %d other clients served" %
              (state["sent"] / 1048576.0, len(state["ids"]),
               "closed while sending" if state["error"] else "all sent",
               rss0 / 1024.0, peak / 1024.0, grown, len(codes), codes.count(200), len(others)))
        self.assertGreater(len(others), 0, "no other client was served meanwhile")
        self.assertEqual(set(codes), {200} if codes else set(), "answers the client read")
        # Nothing answered 200 is lost. The client cannot read every answer
        # the bridge wrote (the close resets the connection), so the bridge
        # counts them: every request answered 200 on the stuck connection
        # is in the sink, and those in the sink are the first ones sent
        # (one connection's requests are journaled in order).
        answered = self.answered_200(b) - ok0 - len(others)
        self.assertGreaterEqual(answered, len(codes))
        mine = set(state["ids"])
        evs = b.wait_events(lambda evs: sum(e.get("id") in mine for e in evs) >= answered,
                            timeout=60, what="%d requests answered 200" % answered)
        got = [e["id"] for e in evs if e.get("id") in mine]
        self.assertEqual(got, state["ids"][:len(got)],
                         "the sink does not hold the first requests sent, in order")
        b.wait_ids(others, timeout=60)
        self.assertTrue(b.running(), b.log_tail())
        return grown, state["sent"], state["ids"], codes

    @staticmethod
    def answered_200(b):
        return int(hbtest.metric_sum(b.metrics(), "hookbridge_requests_total", status=200))

    def assert_bounded(self, grown, sent):
        if sanitized_binary():
            return
        self.assertLess(grown, RSS_GROWTH_MB,
                        "the bridge's RSS grew by %.1f MB while one client pipelined %.1f MiB "
                        "without reading (bound %.0f MB)" % (grown, sent / 1048576.0,
                                                             RSS_GROWTH_MB))

    def test_large_pipelined_bodies_from_a_client_that_never_reads_are_bounded(self):
        """Small requests first, under ack = written (answered without
        waiting for a sync), whose answers fill the socket, then bodies
        close to limits.max_body, 96 MiB of them."""
        b = self.start_bridge(**{"limits.max_body": MAX_BODY,
                                 "limits.max_inflight_bytes": BUDGET,
                                 "limits.read_timeout_ms": 2000,
                                 "ack": "written"})
        small, pad, n = 40000, MAX_BODY - 1024, [0]

        def body(nid):
            n[0] += 1
            return notification(nid, pad=200 if n[0] <= small else pad)
        grown, sent, ids, codes = self.pipeline_without_reading(
            b, small + (96 << 20) // pad, body)
        self.assert_bounded(grown, sent)

    def test_small_pipelined_requests_whose_answers_pile_up_are_bounded(self):
        """Many small requests under ack = written (answered without waiting
        for a sync): their answers fill the socket's buffers, and what the
        client sends behind them must not pile up in the bridge."""
        b = self.start_bridge(**{"limits.max_body": MAX_BODY,
                                 "limits.max_inflight_bytes": BUDGET,
                                 "limits.read_timeout_ms": 2000,
                                 "ack": "written"})
        grown, sent, ids, codes = self.pipeline_without_reading(
            b, 400000, lambda nid: notification(nid, pad=200))
        self.assert_bounded(grown, sent)

    def test_small_pipelined_requests_read_by_evhttp_are_bounded(self):
        """The same through evhttp (a Connection header keeps the gate from
        taking the requests directly): evhttp reads on while it writes an
        answer, and what it has not taken waits in the input buffer."""
        b = self.start_bridge(**{"limits.max_body": MAX_BODY,
                                 "limits.max_inflight_bytes": BUDGET,
                                 "limits.read_timeout_ms": 2000,
                                 "ack": "written"})
        grown, sent, ids, codes = self.pipeline_without_reading(
            b, 400000, lambda nid: notification(nid, pad=200), "Connection: keep-alive\r\n")
        self.assert_bounded(grown, sent)

    def test_a_client_that_reads_late_gets_every_answer(self):
        """Once a stalled connection's client reads, the connection reads
        again, and every request is answered, in order: small ones (the
        direct way) until their answers fill the socket, then bodies close
        to limits.max_body (which evhttp reads as they arrive) and small
        ones again, some behind a Connection header (evhttp's way)."""
        b = self.start_bridge(**{"limits.max_body": MAX_BODY,
                                 "limits.max_inflight_bytes": BUDGET,
                                 "limits.read_timeout_ms": 30000, "ack": "written"})
        small = 45000
        ids = [uid("late") for _ in range(small + 20 + 100)]

        def request(i):
            pad = MAX_BODY - 1024 if small <= i < small + 20 else 200
            extra = "Connection: keep-alive\r\n" if i % 7 == 0 else ""
            return signed_post(b.intercom_path, notification(ids[i], pad=pad), extra)

        # TLS over memory BIOs on a non-blocking socket, in one thread: the
        # test alone decides when it reads. It sends until the bridge stops
        # reading (no progress for a second) or everything is sent, then
        # reads the answers while it sends the rest.
        # A receive buffer of a few KiB while the client does not read, set
        # before connecting (the window scale stays 0): unread answers soon
        # fill the socket and the bridge stops reading. With 256 KiB the
        # kernel's buffers took the answers and the bridge never stopped
        # reading here (a connection that never reads again passed). Once
        # the client reads, 256 KiB: with a window of a few KiB, loopback
        # TCP takes a whole delayed-ACK wait per window, and the answers
        # would drain slower than the timeout.
        c = RecordClient(b.port, rcvbuf=4096)
        self.addCleanup(c.close)
        c.handshake()
        c.sock.setblocking(False)
        wire, nxt, data, codes = b"", 0, b"", []
        reading, stalled_for, last_progress = False, 0.0, time.monotonic()
        deadline = time.monotonic() + scaled(300)
        while len(codes) < len(ids) and time.monotonic() < deadline:
            progress = False
            while True:
                if len(wire) < (1 << 16) and nxt < len(ids):
                    wire, nxt = wire + c.tls(request(nxt)), nxt + 1
                if not wire:
                    break
                try:
                    n = c.sock.send(wire)
                except BlockingIOError:
                    break
                wire, progress = wire[n:], True
            while reading:
                try:
                    chunk = c.sock.recv(1 << 20)
                except BlockingIOError:
                    break
                self.assertTrue(chunk, "the bridge closed the connection after %d answers\n%s"
                                % (len(codes), b.log_tail()))
                c.inc.write(chunk)
                while True:
                    try:
                        data += c.obj.read(1 << 20)
                    except ssl.SSLWantReadError:
                        break
                data, progress = take_answers(data, codes), True
            now = time.monotonic()
            if progress:
                last_progress = now
            elif not reading and (now - last_progress > 1.0 or (nxt == len(ids) and not wire)):
                stalled_for, reading = now - last_progress, True
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
            select.select([c.sock] if reading else [], [c.sock] if wire else [], [], 0.05)
        print("\n[pipeline] %d requests sent before the client read (it waited %.1f s), "
              "%d answers" % (nxt, stalled_for, len(codes)))
        self.assertEqual(len(codes), len(ids), "answers missing")
        self.assertEqual(set(codes), {200})
        b.wait_ids(ids, timeout=120)


if __name__ == "__main__":
    hbtest.main()
