"""How the listener drives its sockets (src/conn.c, "Fewer epoll_ctl calls
per request"): each TLS connection keeps read interest on its socket between
requests and writes an answer in the loop pass that makes it. These tests
hold it to what that must never break: a client that pipelines or closes
while its request is being answered, and descriptors reused by new
connections as old ones close.

Run: python3 -m unittest -v tests/integration/test_conn_io.py
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
from hbtest import BridgeTestCase, client_ssl_context, notification, scaled, sign  # noqa: E402


def uid(prefix="io"):
    return "%s_%s" % (prefix, uuid.uuid4().hex)


def signed_post(path, body, extra=()):
    lines = ["POST %s HTTP/1.1" % path, "Host: 127.0.0.1", "Content-Type: application/json",
             "X-Hub-Signature: %s" % sign(body), "Content-Length: %d" % len(body)]
    lines.extend(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def take_answers(data, codes):
    """Move the status codes of the whole answers at the start of data to
    codes; returns the rest of data."""
    while True:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return data
        head = data[:end].decode("latin-1").split("\r\n")
        length = 0
        for line in head[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == "content-length":
                length = int(v.strip())
        if len(data) < end + 4 + length:
            return data
        codes.append(int(head[0].split()[1]))
        data = data[end + 4 + length:]


def read_answers(s, n, timeout=30.0):
    """The status codes of the first n answers on s (bounded wait)."""
    s.settimeout(scaled(timeout))
    data, codes = b"", []
    while len(codes) < n:
        chunk = s.recv(65536)
        if not chunk:
            break
        data = take_answers(data + chunk, codes)
    return codes


class RecordClient:
    """A TLS client over a memory BIO, so that the test decides which TLS
    records travel together in one TCP send: tls(data) returns the records
    for data (one per call) without sending them."""

    def __init__(self, port, rcvbuf=None):
        if rcvbuf is None:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=scaled(30))
        else:
            # before connect(2): the window scale is chosen from it
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(scaled(30))
            self.sock.connect(("127.0.0.1", port))
        self.inc, self.outg = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = client_ssl_context().wrap_bio(self.inc, self.outg, server_hostname="localhost")

    def handshake(self, hold_last=False):
        """Run the handshake; with hold_last, the client's last flight
        (its Finished) is returned instead of sent."""
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
        last = self.outg.read()
        if not hold_last:
            self.sock.sendall(last)
            return b""
        return last

    def tls(self, data):
        self.obj.write(data)
        return self.outg.read()

    def _flush(self):
        pending = self.outg.read()
        if pending:
            self.sock.sendall(pending)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.inc.write(chunk)

    def answers(self, n):
        """The status codes of the next n answers."""
        data, codes = b"", []
        while len(codes) < n:
            try:
                data += self.obj.read(65536)
            except ssl.SSLWantReadError:
                self._fill()
                continue
            except ssl.SSLZeroReturnError:
                break
            data = take_answers(data, codes)
        return codes

    def close_notify(self):
        """The client's close_notify alert (the end of its sending), as
        records to send."""
        try:
            self.obj.unwrap()
        except ssl.SSLWantReadError:
            pass  # it waits for the server's alert: ours is written
        return self.outg.read()

    def close(self):
        self.sock.close()


def cpu_seconds(pid):
    """utime + stime of every thread of pid, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ConnIoTest(BridgeTestCase):

    def test_clients_that_half_close_while_answers_wait_get_them_and_do_not_spin_the_loop(self):
        """The connection's own read event must step aside when the socket
        is readable (here: at its end) while evhttp is not reading: a
        level-triggered event left there fires on every loop pass."""
        port = hbtest.free_port()
        b = self.start_bridge(wait_ready=False, **{
            "ack": "published", "sinks": "redis",
            "redis.url": "redis://127.0.0.1:%d" % port, "file.path": None})
        socks = []
        for _ in range(10):
            s = b.tls_socket(timeout=30)
            self.addCleanup(s.close)
            # a first request, answered, so that the connection holds its
            # read event; then one that waits (no sink can publish) and the
            # end of the client's sending behind it
            s.sendall(b"HEAD %s HTTP/1.1\r\nHost: x\r\n\r\n" % b.intercom_path.encode())
            s.settimeout(scaled(30))
            self.assertIn(b"HTTP/1.1 200", s.recv(65536))
            s.sendall(signed_post(b.intercom_path, notification(uid("halfclose"))))
            socks.append(s)
        for s in socks:
            s.shutdown(socket.SHUT_WR)
        # they wait PUBLISHED_WAIT_MS (4 s) for a sink: measure the bridge's
        # CPU meanwhile; a spinning loop takes a whole core
        c0, t0 = cpu_seconds(b.proc.pid), time.monotonic()
        time.sleep(2.5)
        used, wall = cpu_seconds(b.proc.pid) - c0, time.monotonic() - t0
        self.assertLess(used, 0.4 * wall,
                        "the bridge used %.2f s of CPU in %.2f s with 10 requests waiting: "
                        "a busy loop\n%s" % (used, wall, b.log_tail()))
        # each client gets its 503 or, as before this test, only the end of
        # the connection (a TLS end without close_notify ends it): never a
        # connection left hanging
        for s in socks:
            self.assertIn(read_answers(s, 1), ([], [503]))
        self.assertTrue(b.running(), b.log_tail())

    def test_pipelined_requests_behind_a_waiting_one_on_many_connections(self):
        """A request read while the one before it is being answered (its
        connection's read event steps aside meanwhile) is answered too."""
        b = self.start_bridge()
        conns, ids = [], []
        for _ in range(8):
            s = b.tls_socket(timeout=30)
            self.addCleanup(s.close)
            conns.append(s)
        for rnd in range(5):
            for s in conns:
                a, c = uid("pipe_a"), uid("pipe_b")
                ids += [a, c]
                s.sendall(signed_post(b.intercom_path, notification(a)))
                time.sleep(0.001)  # most of the time the second comes while the first waits
                s.sendall(signed_post(b.intercom_path, notification(c)))
            for s in conns:
                self.assertEqual(read_answers(s, 2), [200, 200], "round %d" % rnd)
        b.wait_ids(ids)

    def test_descriptors_reused_by_new_connections_are_watched(self):
        """Connections close and new ones get their descriptors, on the
        same loop, while others stay open: each must be answered (a read
        event left on a closed descriptor would hide the new socket from
        epoll, and its client would wait for ever)."""
        b = self.start_bridge(workers=1)
        keep = [b.tls_socket(timeout=30) for _ in range(4)]
        for s in keep:
            self.addCleanup(s.close)
        ids, errors = [], []

        def churn(k):
            try:
                for i in range(40):
                    nid = uid("churn%d_%d" % (k, i))
                    s = b.tls_socket(timeout=30)
                    try:
                        s.sendall(signed_post(b.intercom_path, notification(nid)))
                        codes = read_answers(s, 1)
                        if codes != [200]:
                            errors.append("%s: %r" % (nid, codes))
                        ids.append(nid)
                    finally:
                        s.close()
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

        threads = [threading.Thread(target=churn, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for i, s in enumerate(keep * 10):
            nid = uid("keep%d" % i)
            ids.append(nid)
            s.sendall(signed_post(b.intercom_path, notification(nid)))
            self.assertEqual(read_answers(s, 1), [200])
        for t in threads:
            t.join(scaled(300))
        self.assertEqual(errors, [])
        b.wait_ids(ids)

    def test_records_that_arrive_together_are_all_read(self):
        """With OpenSSL's read-ahead one read(2) takes every TLS record the
        socket holds: a record left in OpenSSL's buffer must still be read
        at once, since the socket will not become readable for it."""
        b = self.start_bridge()
        ids = [uid("together") for _ in range(5)]
        c = RecordClient(b.port)
        self.addCleanup(c.close)
        # the client's Finished and the first request in one send
        post = signed_post(b.intercom_path, notification(ids[0]))
        c.sock.sendall(c.handshake(hold_last=True) + c.tls(post))
        self.assertEqual(c.answers(1), [200], "Finished and a request in one segment")
        # a head and its body as two records in one send
        post = signed_post(b.intercom_path, notification(ids[1]))
        split = post.index(b"\r\n\r\n") + 4
        c.sock.sendall(c.tls(post[:split]) + c.tls(post[split:]))
        self.assertEqual(c.answers(1), [200], "a head and its body as two records")
        # a request cut into many small records, then two pipelined
        # requests of one record each, all in one send
        post = signed_post(b.intercom_path, notification(ids[2]))
        pieces = b"".join(c.tls(post[i:i + 100]) for i in range(0, len(post), 100))
        c.sock.sendall(pieces + c.tls(signed_post(b.intercom_path, notification(ids[3]))) +
                       c.tls(signed_post(b.intercom_path, notification(ids[4]))))
        self.assertEqual(c.answers(3), [200, 200, 200], "many records, three requests")
        b.wait_ids(ids)

    def test_request_then_close_notify_on_a_kept_alive_connection_is_answered(self):
        """A client that ends its sending with close_notify right behind a
        request (both records in one segment) still gets the answer, as it
        does on its connection's first request: the alert, read ahead into
        OpenSSL's buffer, must not be read while evhttp has a whole request
        to answer (its end of the connection would make evhttp drop the
        request and close without an answer)."""
        b = self.start_bridge()
        ids = []
        for i in range(5):
            c = RecordClient(b.port)
            self.addCleanup(c.close)
            c.handshake()
            ids.append(uid("notify_first"))
            c.sock.sendall(c.tls(signed_post(b.intercom_path, notification(ids[-1]))))
            self.assertEqual(c.answers(1), [200], "round %d: the first request" % i)
            ids.append(uid("notify_last"))
            c.sock.sendall(c.tls(signed_post(b.intercom_path, notification(ids[-1]))) +
                           c.close_notify())
            try:
                codes = c.answers(1)
            except ConnectionError:
                codes = "closed without an answer"
            self.assertEqual(codes, [200], "round %d: the request before close_notify" % i)
        b.wait_ids(ids)


if __name__ == "__main__":
    hbtest.main()
