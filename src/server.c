/* The HTTPS listener and its worker threads. See include/hb/server.h.
 *
 * One socket is bound once (a second process on the same port fails at
 * start-up instead of silently sharing it, as SO_REUSEPORT would allow);
 * every worker registers its own evconnlistener on a dup of it and accepts
 * from it. TLS is terminated by bufferevent_openssl inside evhttp through
 * the bufferevent callback. */
#include "hb/fmacros.h"

#include "hb/server.h"
#include "hb/allowlist.h"
#include "hb/conn.h"
#include "hb/journal.h"
#include "hb/log.h"
#include "hb/metrics.h"
#include "hb/record.h"
#include "hb/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#define C "server"

typedef struct worker {
    struct hb_server *srv;
    int id;
    pthread_t thread;
    struct event_base *base;
    struct evhttp *http;
    struct evconnlistener *lev;
    hb_route_loop_t *loop;
    struct event *stop_ev, *drain_ev;
    struct event *share_ev; /* accepting again after yielding to the others */
    uint64_t deadline_ms;
    atomic_int conns; /* written by this worker, read by the others */
    int limit, accepting, stopping, yielding;
} worker_t;

struct hb_server {
    const hb_config_t *cfg;
    hb_tls_t *tls;
    hb_route_t *route;
    hb_edge_t *edge;
    int fd;
    size_t n;
    worker_t *workers;
    int started;
};

int hb_parse_listen(const char *spec, struct sockaddr_storage *ss, int *sslen)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec)
        return -1;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535 || end == colon + 1)
        return -1;
    size_t hl = (size_t)(colon - spec);
    if (spec[0] == '[' && hl >= 2 && spec[hl - 1] == ']') {
        spec++;
        hl -= 2;
    }
    if (hl >= sizeof(host))
        return -1;
    memcpy(host, spec, hl);
    host[hl] = '\0';
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *sslen = sizeof(*v4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *sslen = sizeof(*v6);
        return 0;
    }
    return -1; /* numeric only: no DNS at start-up or on a loop */
}

static void accept_again(worker_t *w)
{
    if (!w->accepting && !w->stopping && !w->yielding && atomic_load(&w->conns) < w->limit) {
        evconnlistener_enable(w->lev);
        w->accepting = 1;
    }
}

/* A connection closed (its SSL was freed): below the worker's share of
 * limits.max_connections again, accept again (see make_tls_bev). */
static void on_conn_closed(void *arg)
{
    worker_t *w = arg;
    int was_full = atomic_fetch_sub(&w->conns, 1) >= w->limit;
    accept_again(w);
    if (was_full && w->accepting)
        hb_info(C, "worker %d: below limits.max_connections again, accepting", w->id);
}

static void on_share(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker_t *w = arg;
    w->yielding = 0;
    accept_again(w);
}

/* Spreading connections over the workers. They all watch the one
 * listening socket, and the first to wake accepts everything queued: a
 * client that opens its connections at once (a load balancer, a load
 * test) would have them all on one worker, and one core. So a worker
 * that holds more than one connection above the least loaded other
 * worker stops accepting for a moment (HB_SERVER_SHARE_MS), which lets
 * the others, woken by the same readiness, take the next ones. One
 * listening socket (not one per worker with SO_REUSEPORT) keeps a
 * second process from binding the same port. */
#define HB_SERVER_SHARE_MS 2
static int ahead_of_others(const worker_t *w)
{
    const hb_server_t *s = w->srv;
    int mine = atomic_load(&w->conns), least = mine;
    for (size_t i = 0; i < s->n; i++) {
        const worker_t *o = &s->workers[i];
        int n = atomic_load(&((worker_t *)o)->conns);
        if (o != w && n < least)
            least = n;
    }
    return mine > least + 1;
}

static struct bufferevent *make_tls_bev(struct event_base *base, void *arg)
{
    worker_t *w = arg;
    /* Never return NULL: evhttp 2.1 then serves the connection on a plain
     * bufferevent, as cleartext HTTP past the gate and the allowlist
     * (found in review). Both calls fail only when memory is exhausted. */
    SSL *ssl = hb_tls_new_ssl(w->srv->tls);
    if (!ssl)
        hb_oom("SSL_new");
    /* The connection cap: at its share of limits.max_connections a worker
     * stops accepting (the kernel backlog holds newcomers, as in nginx) and
     * accepts again once one closes. */
    hb_conn_t *c = hb_conn_new(w->srv->edge, ssl, w->srv->cfg->read_timeout_ms, on_conn_closed, w);
    hb_conn_set_direct(c, hb_route_direct, w->loop);
    int conns = atomic_fetch_add(&w->conns, 1) + 1;
    hb_metrics_accepted(w->id);
    if (conns >= w->limit && w->accepting) {
        evconnlistener_disable(w->lev);
        w->accepting = 0;
        hb_warn(C,
                "worker %d: %d connections (limits.max_connections per worker): not "
                "accepting more until one closes",
                w->id, conns);
    } else if (w->accepting && w->srv->n > 1 && ahead_of_others(w)) {
        evconnlistener_disable(w->lev); /* also ends libevent's accept loop */
        w->accepting = 0;
        w->yielding = 1;
        struct timeval tv = hb_ms_timeval(HB_SERVER_SHARE_MS);
        event_add(w->share_ev, &tv);
    }
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!bev)
        hb_oom("bufferevent_openssl_socket_new");
    /* clients that close without close_notify are normal for HTTP/1.1 */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    hb_conn_start(c, bev);
    return bev;
}

static void on_drain(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker_t *w = arg;
    size_t left = hb_route_loop_pending(w->loop);
    if (left == 0 || hb_mono_ms() >= w->deadline_ms) {
        if (left)
            hb_warn(C,
                    "worker %d: stopping with %zu request(s) unanswered after the grace "
                    "period (they are not acknowledged)",
                    w->id, left);
        event_base_loopexit(w->base, NULL);
    }
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker_t *w = arg;
    w->stopping = 1;
    if (w->lev)
        evconnlistener_disable(w->lev);
    struct timeval tv = {0, 10000};
    event_add(w->drain_ev, &tv);
    on_drain(-1, 0, w);
}

/* How long an HTTP loop may go on gathering appends before it wakes an
 * idle journal writer (see worker_main): about one fdatasync here (180-220
 * µs at 32 connections), about as long as a burst of a dozen requests takes
 * to come back and be read; and few enough records that a loop reading many
 * requests per pass hands them over within a pass or two. Measured at 32
 * connections: 100 µs left bursts split (0.06 syncs per request), 200-1000
 * µs did not (0.05, against 0.08 without gathering). */
#define CHAIN_MAX_PASSES 16
#define CHAIN_MAX_APPENDS 64
#define CHAIN_MAX_US 200

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    char name[16];
    snprintf(name, sizeof(name), "hb-http-%d", w->id);
    hb_thread_name(name);
    /* One loop pass at a time, so that the journal writer is woken once
     * per pass with every append of the pass (hb_journal_hold), and more
     * than one pass while requests keep coming: the answers of one batch
     * leave together and their clients' next requests come back one by
     * one, each in a pass of its own. Woken at the first, an idle writer
     * would sync it alone and the rest of the burst would wait for that
     * sync before their own (at 32 connections, 13 % of batches held one
     * record). So after a pass that appended, the loop looks again without
     * blocking, and wakes the writer only once a pass appends nothing (or
     * at a cap): the burst goes in one batch, with no timer (a timed wait
     * for more cost more than the sync it saved, bench/README.md session
     * 8). A busy writer takes the queue when done either way. */
    hb_journal_hold(1);
    unsigned passes = 0;
    uint64_t chain_start = 0;
    do {
        unsigned before = hb_journal_held();
        int rc = event_base_loop(w->base, passes ? EVLOOP_ONCE | EVLOOP_NONBLOCK : EVLOOP_ONCE);
        unsigned after = hb_journal_held();
        if (rc == 0 && after > before && after < CHAIN_MAX_APPENDS && passes < CHAIN_MAX_PASSES) {
            uint64_t now = hb_mono_us();
            if (!passes)
                chain_start = now;
            if (now - chain_start < CHAIN_MAX_US) {
                passes++;
                continue;
            }
        }
        passes = 0;
        hb_journal_release_held();
        if (rc != 0)
            break; /* error, or no events left */
    } while (!event_base_got_exit(w->base) && !event_base_got_break(w->base));
    hb_journal_release_held();
    hb_journal_hold(0);
    return NULL;
}

/* What a chunked body may grow to before evhttp stops it: the route
 * answers 413 itself up to there. */
static int64_t chunked_hold(const hb_config_t *cfg)
{
    int64_t m = hb_config_max_body(cfg);
    return m + (m > 65536 ? m : 65536);
}

/* limits.max_inflight_bytes, or sized to the machine: min(256 MiB, RAM/8),
 * and never so small that a chunked body of the largest size cannot fit. */
static int64_t inflight_budget(const hb_config_t *cfg)
{
    if (cfg->max_inflight_bytes > 0)
        return cfg->max_inflight_bytes;
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    int64_t b = (int64_t)256 << 20;
    if (pages > 0 && psize > 0 && (int64_t)pages * psize / 8 < b)
        b = (int64_t)pages * psize / 8;
    int64_t floor = 2 * chunked_hold(cfg);
    return b > floor ? b : floor;
}

static int worker_init(hb_server_t *s, worker_t *w, char *err, size_t errlen)
{
    const hb_config_t *cfg = s->cfg;
    w->srv = s;
    /* epoll's change list: evhttp and bufferevent switch a connection's
     * read and write interest on and off several times per request; with
     * the change list only the net change of each loop pass reaches the
     * kernel, not one epoll_ctl per switch. Its caveat (an fd and a dup of
     * it in the same base) does not arise: each base holds its own dup of
     * the listener and otherwise only accepted sockets. */
    struct event_config *ec = event_config_new();
    if (!ec)
        hb_oom("event_config_new");
    event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    w->base = event_base_new_with_config(ec);
    event_config_free(ec);
    /* Two priorities: the journal's completions (route.c) and the writes of
     * the answers they queue (conn.c, out_cb) run at 0, ahead of the reads
     * that became active in the same loop pass (1, libevent's default with
     * two), so that a batch's answers leave before the pass reads and
     * parses more requests. */
    if (w->base)
        event_base_priority_init(w->base, 2);
    w->http = w->base ? evhttp_new(w->base) : NULL;
    if (!w->http)
        hb_oom("evhttp_new");
    w->loop = hb_route_loop_new(s->route, w->base);
    evhttp_set_gencb(w->http, hb_route_handle, w->loop);
    evhttp_set_bevcb(w->http, make_tls_bev, w);
    /* The gate (conn.c) refuses a Content-Length over limits.max_body and
     * a head over HB_CONN_HEAD_MAX before evhttp reads them; evhttp's own
     * limits sit above, as the backstop for chunked bodies (what they
     * refuse gets libevent's built-in page, which 2.1 gives no hook to
     * change or log; 2.2's evhttp_set_errorcb would). */
    evhttp_set_max_body_size(w->http, (ev_ssize_t)chunked_hold(cfg));
    evhttp_set_max_headers_size(w->http, 2 * HB_CONN_HEAD_MAX);
    struct timeval tv = hb_ms_timeval(cfg->read_timeout_ms);
    evhttp_set_timeout_tv(w->http, &tv);
    evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH |
                                            EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT);
    evhttp_set_default_content_type(w->http, "application/json");
    int fd = dup(s->fd);
    if (fd < 0) {
        snprintf(err, errlen, "dup: %s", strerror(errno));
        return -1;
    }
    evutil_make_socket_nonblocking(fd);
    w->lev = evconnlistener_new(w->base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                -1, fd);
    if (!w->lev) {
        close(fd);
        snprintf(err, errlen, "evconnlistener_new failed");
        return -1;
    }
    if (!evhttp_bind_listener(w->http, w->lev)) {
        snprintf(err, errlen, "evhttp_bind_listener failed");
        return -1;
    }
    w->stop_ev = event_new(w->base, -1, 0, on_stop, w);
    w->drain_ev = event_new(w->base, -1, EV_PERSIST, on_drain, w);
    w->share_ev = evtimer_new(w->base, on_share, w);
    if (!w->stop_ev || !w->drain_ev || !w->share_ev)
        hb_oom("event_new");
    return 0;
}

hb_server_t *hb_server_new(const hb_config_t *cfg, hb_tls_t *tls, hb_route_t *route, char *err,
                           size_t errlen)
{
    struct sockaddr_storage ss;
    int sslen, one = 1;
    if (hb_parse_listen(cfg->listen, &ss, &sslen) < 0) {
        snprintf(err, errlen, "listen: '%s' is not a numeric address:port", cfg->listen);
        return NULL;
    }
    char why[512];
    hb_allowlist_t *al = hb_allowlist_load(cfg->intercom_allow_ips, why, sizeof(why));
    if (!al && why[0]) {
        snprintf(err, errlen, "intercom.allow_ips: %s", why);
        return NULL;
    }
    hb_server_t *s = hb_calloc(1, sizeof(*s));
    s->edge = hb_edge_new(cfg->max_body, chunked_hold(cfg), inflight_budget(cfg), al);
    hb_edge_path_t paths[HB_CONFIG_MAX_ROUTES];
    for (size_t i = 0; i < cfg->n_routes && i < HB_CONFIG_MAX_ROUTES; i++)
        paths[i] = (hb_edge_path_t){cfg->routes[i].path, cfg->routes[i].max_body,
                                    !strcmp(cfg->routes[i].name, HB_RECORD_DEFAULT_ROUTE)};
    hb_edge_set_paths(s->edge, paths, cfg->n_routes);
    if (al)
        hb_info(C, "intercom.allow_ips: %zu block(s); other sources are refused",
                hb_allowlist_count(al));
    s->cfg = cfg;
    s->tls = tls;
    s->route = route;
    s->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    /* TCP_NODELAY is inherited by accepted sockets: without it Nagle holds
     * the last TLS record of an answer until the client's delayed ACK
     * (40 ms), which would dwarf the cost of the fdatasync */
    if (s->fd < 0 || setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
        bind(s->fd, (struct sockaddr *)&ss, (socklen_t)sslen) < 0 || listen(s->fd, 1024) < 0) {
        snprintf(err, errlen, "listen: cannot listen on %s: %s", cfg->listen, strerror(errno));
        hb_server_free(s);
        return NULL;
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    s->n = cfg->workers > 0 ? (size_t)cfg->workers : (size_t)(ncpu > 0 ? ncpu : 1);
    s->workers = hb_calloc(s->n, sizeof(worker_t));
    hb_metrics_set_workers(s->n);
    for (size_t i = 0; i < s->n; i++) {
        s->workers[i].id = (int)i;
        s->workers[i].accepting = 1;
        s->workers[i].limit = (int)((cfg->max_connections + (int64_t)s->n - 1) / (int64_t)s->n);
        if (worker_init(s, &s->workers[i], err, errlen) < 0) {
            hb_server_free(s);
            return NULL;
        }
    }
    return s;
}

int hb_server_start(hb_server_t *s, char *err, size_t errlen)
{
    for (size_t i = 0; i < s->n; i++) {
        if (pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]) != 0) {
            snprintf(err, errlen, "cannot start HTTP worker thread");
            return -1;
        }
        s->started++;
    }
    hb_info(C, "listening on https://%s with %zu worker thread(s)", s->cfg->listen, s->n);
    return 0;
}

void hb_server_stop(hb_server_t *s, uint64_t grace_ms)
{
    if (!s)
        return;
    uint64_t deadline = hb_mono_ms() + grace_ms;
    for (int i = 0; i < s->started; i++) {
        s->workers[i].deadline_ms = deadline;
        event_active(s->workers[i].stop_ev, EV_READ, 0);
    }
    for (int i = 0; i < s->started; i++)
        pthread_join(s->workers[i].thread, NULL);
    s->started = 0;
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
}

void hb_server_set_allowlist(hb_server_t *s, hb_allowlist_t *al)
{
    hb_edge_set_allowlist(s->edge, al);
}

void hb_server_free(hb_server_t *s)
{
    if (!s)
        return;
    hb_server_stop(s, 0);
    for (size_t i = 0; s->workers && i < s->n; i++) {
        worker_t *w = &s->workers[i];
        w->stopping = 1;
        if (w->http)
            evhttp_free(w->http); /* frees the bound listener too */
        else if (w->lev)
            evconnlistener_free(w->lev);
        if (w->stop_ev)
            event_free(w->stop_ev);
        if (w->drain_ev)
            event_free(w->drain_ev);
        if (w->share_ev)
            event_free(w->share_ev);
        hb_route_loop_free(w->loop);
        /* A connection whose end (or other event) was reported in the
         * loop's last pass still has a deferred callback queued, which
         * holds a reference to its bufferevent: evhttp_free could not
         * free it, and event_base_free would drop the callback and the
         * connection with it. One more pass, with only connections left
         * in the loop, runs those callbacks, and the connections go. */
        if (w->base)
            for (int pass = 0; pass < 2; pass++)
                event_base_loop(w->base, EVLOOP_NONBLOCK);
        if (w->base)
            event_base_free(w->base);
    }
    free(s->workers);
    if (s->fd >= 0)
        close(s->fd);
    hb_edge_free(s->edge);
    free(s);
}
