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
import socket
import ssl
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hbtest  # noqa: E402
from hbtest import BridgeTestCase, notification, scaled, sign  # noqa: E402
from test_conn_io import take_answers  # noqa: E402
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
        s = b.tls_socket(timeout=120)
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
        # answers come in request order: the first ones answered 200 are
        # for the first ids sent, and each must be in the sink
        ok = [nid for nid, code in zip(state["ids"], codes) if code == 200]
        b.wait_ids(ok + others, timeout=60)
        self.assertTrue(b.running(), b.log_tail())
        return grown, state["sent"], state["ids"], codes

    def assert_bounded(self, grown, sent):
        if sanitized_binary():
            return
        self.assertLess(grown, RSS_GROWTH_MB,
                        "the bridge's RSS grew by %.1f MB while one client pipelined %.1f MiB "
                        "without reading (bound %.0f MB)" % (grown, sent / 1048576.0,
                                                             RSS_GROWTH_MB))

    def test_large_pipelined_bodies_from_a_client_that_never_reads_are_bounded(self):
        """Bodies close to limits.max_body, 96 MiB in all."""
        b = self.start_bridge(**{"limits.max_body": MAX_BODY,
                                 "limits.max_inflight_bytes": BUDGET,
                                 "limits.read_timeout_ms": 2000})
        pad = MAX_BODY - 1024
        grown, sent, ids, codes = self.pipeline_without_reading(
            b, (96 << 20) // pad, lambda nid: notification(nid, pad=pad))
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


if __name__ == "__main__":
    hbtest.main()
