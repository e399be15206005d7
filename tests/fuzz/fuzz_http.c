/* libFuzzer driver: the HTTP request path as a whole. The input is what a
 * client sends on one connection; it goes through the real code: the gate
 * (conn.c), evhttp's parser and the route (route.c) with its journal (in a
 * temp dir), over a loopback TCP connection without TLS. The connection's
 * bytes are written, the sending side is shut, and the loop runs until the
 * server has closed the connection and answered everything it accepted.
 *
 * intercom.verify is off (a fuzzer cannot sign), so inputs reach the
 * envelope scanner, dedup and the journal (most POSTs by the gate's direct
 * way, the rest through evhttp); the journal is acknowledged
 * after each input so that its segments are reclaimed.
 *
 * Per input: a fresh evhttp bound to a dup of one listening socket, freed
 * at the end together with the connections it made (a plain connection has
 * no SSL to say when it is gone, so the driver closes its hb_conn itself). */
#include "hb/fmacros.h"

#include "hb/config.h"
#include "hb/conn.h"
#include "hb/dedup.h"
#include "hb/journal.h"
#include "hb/log.h"
#include "hb/route.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct {
    hb_config_t cfg;
    struct event_base *base;
    hb_edge_t *edge;
    hb_route_t *route;
    hb_route_loop_t *loop;
    hb_journal_t *journal;
    hb_dedup_t *dedup;
    int lfd;
    struct sockaddr_in addr;
    hb_conn_t *conns[64];
    size_t n_conns;
} F;

static void die(const char *what)
{
    fprintf(stderr, "fuzz_http: %s: %s\n", what, strerror(errno));
    abort();
}

static void set(const char *k, const char *v)
{
    char err[256];
    if (hb_config_set(&F.cfg, k, v, "fuzz", err, sizeof(err)) < 0) {
        fprintf(stderr, "fuzz_http: %s\n", err);
        abort();
    }
}

static struct bufferevent *make_bev(struct event_base *base, void *arg)
{
    (void)arg;
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!bev)
        die("bufferevent_socket_new");
    hb_conn_t *c = hb_conn_new(F.edge, NULL, F.cfg.read_timeout_ms, NULL, NULL);
    hb_conn_set_direct(c, hb_route_direct, F.loop);
    hb_conn_start(c, bev);
    if (F.n_conns == sizeof(F.conns) / sizeof(F.conns[0]))
        abort(); /* one connection per input */
    F.conns[F.n_conns++] = c;
    return bev;
}

static void setup(void)
{
    static char dir[] = "/tmp/hb-fuzz-http.XXXXXX";
    if (!mkdtemp(dir))
        die("mkdtemp");
    hb_log_set_level(HB_LOG_ERROR); /* refusals are expected: keep the output short */
    hb_config_init(&F.cfg);
    set("intercom.verify", "off");
    set("ack", "written");
    set("limits.max_body", "4096");
    set("journal.dir", dir);
    set("journal.max_bytes", "16m");
    char err[256];
    if (hb_config_finish(&F.cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "fuzz_http: %s\n", err);
        abort();
    }
    F.base = event_base_new();
    /* a budget of two bodies: pipelined ones reach the 503 (a plain
     * connection gives its bodies back only when it closes) */
    F.edge = hb_edge_new(F.cfg.max_body, 2 * F.cfg.max_body + 65536, 2 * F.cfg.max_body, NULL);
    F.dedup = hb_dedup_new(60000, 1000);
    F.route = hb_route_new(&F.cfg, F.dedup, err, sizeof(err));
    if (!F.route) {
        fprintf(stderr, "fuzz_http: %s\n", err);
        abort();
    }
    F.loop = hb_route_loop_new(F.route, F.base);
    const char *names[] = {"fuzz"};
    hb_journal_opts_t o = {.dir = dir, .max_bytes = 16 << 20, .sinks = names, .n_sinks = 1};
    F.journal = hb_journal_open(&o, err, sizeof(err));
    if (!F.journal) {
        fprintf(stderr, "fuzz_http: journal: %s\n", err);
        abort();
    }
    hb_route_set_journal(F.route, F.journal);
    F.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    F.addr.sin_family = AF_INET;
    F.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof(F.addr);
    if (F.lfd < 0 || bind(F.lfd, (struct sockaddr *)&F.addr, sizeof(F.addr)) < 0 ||
        listen(F.lfd, 16) < 0 || getsockname(F.lfd, (struct sockaddr *)&F.addr, &sl) < 0)
        die("listen");
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!F.base)
        setup();
    struct evhttp *http = evhttp_new(F.base);
    evhttp_set_gencb(http, hb_route_handle, F.loop);
    evhttp_set_bevcb(http, make_bev, NULL);
    evhttp_set_max_body_size(http, 2 * F.cfg.max_body + 65536);
    evhttp_set_max_headers_size(http, 2 * HB_CONN_HEAD_MAX);
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                         EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
    struct timeval tv = {2, 0};
    evhttp_set_timeout_tv(http, &tv);
    int lfd = dup(F.lfd);
    evutil_make_socket_nonblocking(lfd);
    struct evconnlistener *lev =
        evconnlistener_new(F.base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE, -1, lfd);
    if (!lev || !evhttp_bind_listener(http, lev))
        die("evhttp_bind_listener");

    int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (cfd < 0 || connect(cfd, (struct sockaddr *)&F.addr, sizeof(F.addr)) < 0)
        die("connect");
    fcntl(cfd, F_SETFL, O_NONBLOCK);
    size_t off = 0;
    int eof = 0, shut = 0;
    uint64_t deadline = mono_ms() + 10000;
    char sink[65536];
    /* Write the input as the server reads it, read what it answers, until
     * it closes and has answered everything it took. */
    while (mono_ms() < deadline) {
        if (off < size) {
            ssize_t n = send(cfd, data + off, size - off, MSG_NOSIGNAL);
            if (n > 0)
                off += (size_t)n;
            else if (n < 0 && errno != EAGAIN)
                off = size; /* the server closed early (a refusal) */
        }
        if (off == size && !shut) {
            shutdown(cfd, SHUT_WR);
            shut = 1;
        }
        event_base_loop(F.base, EVLOOP_NONBLOCK | EVLOOP_ONCE);
        for (;;) {
            ssize_t n = recv(cfd, sink, sizeof(sink), 0);
            if (n > 0)
                continue;
            if (n == 0 || (errno != EAGAIN && errno != EINTR))
                eof = 1;
            break;
        }
        if (eof && hb_route_loop_pending(F.loop) == 0)
            break;
        if (hb_route_loop_pending(F.loop) > 0)
            poll(NULL, 0, 1); /* the journal's writer thread */
    }
    if (!eof || hb_route_loop_pending(F.loop) != 0) {
        fprintf(stderr, "fuzz_http: the server neither closed nor answered within 10 s\n");
        abort();
    }
    close(cfd);
    evhttp_free(http); /* the listener and any connection left */
    for (size_t i = 0; i < F.n_conns; i++)
        hb_conn_closed(F.conns[i]);
    F.n_conns = 0;
    if (hb_edge_inflight(F.edge) != 0) {
        fprintf(stderr, "fuzz_http: %lld body bytes still counted after the connection\n",
                (long long)hb_edge_inflight(F.edge));
        abort();
    }
    hb_journal_ack(F.journal, 0, hb_journal_durable_seq(F.journal));
    return 0;
}
