/* Connections on the HTTPS listener. See include/hb/conn.h.
 *
 * The gate sits on the connection's input evbuffer as a callback, which
 * libevent runs synchronously when the bufferevent adds what it read, and
 * so before evhttp's read callback sees the buffer. New bytes that are not
 * part of a body already let through are moved aside into `hold` at once;
 * once hold has a whole head, the head is checked and either put back for
 * evhttp, with as much of its body as has arrived, or replaced by the
 * refusal stand-in. evhttp therefore never parses a line the gate has not
 * judged, and both agree on where each request ends: the gate lets through
 * only Content-Length framing it has checked to be unambiguous (a chunked
 * request ends the gate's work on the connection; the route closes the
 * connection after answering it, so nothing pipelined behind it is read).
 *
 * The slow-client deadline: evhttp's own timeout only fires when a client
 * sends nothing for limits.read_timeout_ms, so a client trickling a byte at
 * a time (slowloris) would hold its connection for ever. Here a connection
 * that completes no request within each period, while none of its requests
 * is being answered, is shut down.
 *
 * Fewer epoll_ctl calls per request (TLS connections). evhttp 2.1 turns a
 * connection's read interest off when a request has been read and on again
 * once its answer is written, and bufferevent_openssl writes an answer only
 * when epoll next reports the socket writable: three epoll_ctl calls (DEL,
 * ADD of EPOLLOUT, MOD back to EPOLLIN) and one more loop pass per request,
 * even with the change list (server.c), since answers come passes after the
 * request. Two things remove them:
 *   - write at once: when an answer starts in the output buffer, the
 *     bufferevent's write event is made active, so the answer is written in
 *     the same loop pass; the change list then cancels the add and the
 *     delete of EPOLLOUT against each other;
 *   - keep read interest: the connection holds its own persistent EV_READ
 *     event on the socket from its first request on, so evhttp's switching
 *     of the bufferevent's read event never changes what epoll watches.
 *     It must never hold a socket that nobody reads: when it fires while
 *     the bufferevent is not reading (a client that pipelines, or closes,
 *     while its request is being answered), it steps aside until the next
 *     read, and it leaves the socket before anything else can reuse the
 *     descriptor (the SSL is freed right after the socket is closed).
 *
 * One read(2) per request (TLS connections). Without OpenSSL's read-ahead
 * every TLS record costs two reads (its 5-byte header, then the rest).
 * libevent 2.1 does not support read-ahead: it asks SSL_pending, which does
 * not count records read ahead but not yet decrypted, so such a record
 * would wait for the socket to become readable again, perhaps for ever.
 * Here, each time the gate sees decrypted bytes arrive in the middle of a
 * request, a connection with bytes left in OpenSSL's buffer
 * (SSL_has_pending) has its bufferevent's read event made active again,
 * so that they are read in the same loop pass. Bytes that end a request
 * are not followed so: evhttp stops reading to answer it, and reads again
 * once the answer is written, so a connection whose answer has just gone
 * out with bytes still in OpenSSL's buffer looks again in the next loop
 * pass (a zero timer), by when evhttp reads again. Read-ahead starts
 * after the first request's bytes: bytes read ahead with the handshake's
 * last record would be left in the buffer with no read to follow.
 *
 * Backpressure. A client may pipeline requests on a keep-alive connection
 * and never read the answers. Each connection answers one request at a
 * time (a direct answer blocks the gate until it is written, evhttp reads
 * the next request only once its answer is out), so its answers never
 * pile up; what piles up is its input. While an answer cannot be written,
 * the bufferevent kept reading: evhttp leaves reading on while it writes
 * an answer (to see a close), hb_conn_answer turns it on, and the gate
 * moved every new byte into hold, or into the input buffer for evhttp,
 * outside limits.max_inflight_bytes: 85 MiB sent that way took the bridge
 * from 12 MB to 370 MB of RSS (one evbuffer chain of 4 KiB per TLS record
 * of ~700 bytes), until the write timeout closed the connection. Turning
 * reading off does not hold: evhttp and hb_conn_answer turn it on again,
 * each time, and enabling it behind evhttp's back while it waits for a
 * route (its read callback still set) would abort. So the connection's
 * reading is *suspended* (libevent's own suspension, which enabling does
 * not undo and which evhttp never sees) once the bytes waiting in hold,
 * the input buffer and the output buffer are over HB_CONN_WAITING_MAX, and
 * resumed once they are below half of it. Bodies let through count in
 * limits.max_inflight_bytes instead (evhttp reads a body only once it has
 * all of it: it may lie in the input buffer whole). The socket then fills, the
 * client's sends block, the kernel's buffers are the only ones that grow,
 * and a client that never reads is closed by the write timeout
 * (limits.read_timeout_ms, evhttp's, also set on the bufferevent's writes)
 * or the slow-client deadline. The bound leaves room for a whole head
 * (HB_CONN_HEAD_MAX) behind the bytes being answered, so a connection that
 * is not stuck never stalls: the gate judges every head once it is whole,
 * and hands a body to evhttp as it arrives.
 *
 * All of this looks into struct bufferevent (event2/bufferevent_struct.h,
 * stable within libevent 2.1, which this code is built for), and suspends
 * reading with libevent 2.1's bufferevent_suspend_read_ (exported by
 * libevent_core, declared in its internal bufferevent-internal.h). */
#include "hb/fmacros.h"

#include "hb/conn.h"
#include "hb/log.h"
#include "hb/util.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netdb.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>
#include <event2/http.h>

#define C "server"

/* libevent 2.1's read suspension (see "Backpressure" above), with a flag
 * of its own that nothing else sets on an accepted TLS connection:
 * BEV_SUSPEND_LOOKUP, used only while bufferevent_socket_connect_hostname
 * resolves a name. */
void bufferevent_suspend_read_(struct bufferevent *bufev, ev_uint16_t what);
void bufferevent_unsuspend_read_(struct bufferevent *bufev, ev_uint16_t what);
#define CONN_SUSPEND_WAITING 0x08

struct hb_edge {
    int64_t max_body, chunked_hold, budget;
    hb_edge_path_t *paths; /* the routes' own limits (hb_edge_set_paths) */
    size_t n_paths;
    atomic_int_fast64_t inflight;
    pthread_mutex_t al_lock; /* held only to match or swap */
    hb_allowlist_t *al;
    /* bumped by every swap: a connection's verdict is for one list, and a
     * keep-alive connection is judged again once the list has changed */
    atomic_uint al_gen;
};

typedef enum {
    G_HEAD,  /* reading a head into hold */
    G_BODY,  /* letting body_left more bytes through */
    G_PASS,  /* after a chunked head: evhttp frames the rest */
    G_DRAIN, /* refused: every later byte is dropped */
} gate_state_t;

struct hb_conn {
    hb_edge_t *edge;
    struct bufferevent *bev; /* NULL until started and once the connection is gone */
    struct evbuffer *in;     /* bev's input, watched by the gate */
    struct evbuffer *out;    /* bev's output (TLS only), watched to write at once */
    SSL *ssl;                /* NULL for a plain connection */
    struct event *keep_read; /* read interest held across requests (TLS only) */
    struct event *recheck;   /* bytes left in OpenSSL's buffer: look again */
    int keep_parked;         /* keep_read stepped aside until the next read */
    struct evbuffer *hold;   /* bytes read but not yet judged */
    struct evbuffer *front;  /* scratch for moving bytes aside */
    gate_state_t state;
    int64_t body_left;
    int64_t held; /* budget reserved by this connection's requests */
    size_t scan;  /* hold: start of the first line not yet scanned */
    unsigned lines;
    int peer_checked, peer_ok, rewriting;
    unsigned peer_gen; /* edge->al_gen the verdict peer_ok was made for */
    struct event *deadline;
    int64_t timeout_ms;
    unsigned requests, seen; /* requests read in full; value at the last tick */
    int busy;                /* requests being answered */
    int lingering;           /* refused and answered: draining until the client closes */
    /* direct requests (hb/conn.h) */
    hb_conn_direct_fn direct; /* NULL: every request goes to evhttp */
    void *direct_arg;
    int owed;        /* heads handed to evhttp and not answered yet */
    int direct_busy; /* a direct request waits for its answer */
    int keep_spare;  /* keep_read's next firing is the direct request's own */
    int writing;     /* a direct answer is in the output: our write callback */
    /* evhttp's callbacks, while a direct answer is being written */
    bufferevent_data_cb evhttp_readcb, evhttp_writecb;
    bufferevent_event_cb evhttp_eventcb;
    void *evhttp_cbarg;
    struct event *resume;           /* hold has bytes to judge once a direct answer is out */
    int stalled;                    /* reading suspended: too many bytes wait (Backpressure) */
    unsigned answers, answers_seen; /* answers started; value at the last tick */
    int refs;
    void (*closed)(void *arg);
    void *closed_arg;
};

static int conn_ex_index = -1;
static pthread_once_t conn_ex_once = PTHREAD_ONCE_INIT;

/* ---- the body budget ---- */

hb_edge_t *hb_edge_new(int64_t max_body, int64_t chunked_hold, int64_t budget, hb_allowlist_t *al)
{
    hb_edge_t *e = hb_calloc(1, sizeof(*e));
    e->max_body = max_body;
    e->chunked_hold = chunked_hold;
    e->budget = budget;
    atomic_init(&e->inflight, 0);
    atomic_init(&e->al_gen, 0);
    pthread_mutex_init(&e->al_lock, NULL);
    e->al = al;
    return e;
}

void hb_edge_set_allowlist(hb_edge_t *e, hb_allowlist_t *al)
{
    pthread_mutex_lock(&e->al_lock);
    hb_allowlist_t *old = e->al;
    e->al = al;
    pthread_mutex_unlock(&e->al_lock);
    atomic_fetch_add(&e->al_gen, 1);
    hb_allowlist_free(old);
}

void hb_edge_set_paths(hb_edge_t *e, const hb_edge_path_t *paths, size_t n)
{
    free(e->paths);
    e->paths = hb_calloc(n ? n : 1, sizeof(*paths));
    memcpy(e->paths, paths, n * sizeof(*paths));
    e->n_paths = n;
}

int64_t hb_edge_inflight(const hb_edge_t *e)
{
    return atomic_load(&((hb_edge_t *)e)->inflight);
}

void hb_edge_free(hb_edge_t *e)
{
    if (!e)
        return;
    hb_allowlist_free(e->al);
    pthread_mutex_destroy(&e->al_lock);
    free(e->paths);
    free(e);
}

static int edge_reserve(hb_edge_t *e, int64_t n)
{
    int64_t limit = n > HB_EDGE_SMALL_BODY ? e->budget - e->budget / 4 : e->budget;
    int64_t before = atomic_fetch_add(&e->inflight, n);
    if (before + n > limit) {
        atomic_fetch_sub(&e->inflight, n);
        return -1;
    }
    return 0;
}

/* 1 if the peer of fd may connect; a peer we cannot name is refused. */
static int edge_allows(hb_edge_t *e, evutil_socket_t fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int ok = 1;
    pthread_mutex_lock(&e->al_lock);
    if (e->al)
        ok = fd >= 0 && getpeername(fd, (struct sockaddr *)&ss, &sl) == 0 &&
             hb_allowlist_match(e->al, (struct sockaddr *)&ss);
    pthread_mutex_unlock(&e->al_lock);
    return ok;
}

/* ---- the head check ---- */

typedef struct {
    int code; /* 0 = let through */
    const char *error;
    char detail[96];
    int64_t body; /* Content-Length, 0 without one */
    int chunked;
    const hb_edge_path_t *route; /* the request's route, NULL when none is known */
    int64_t max_body;            /* its limit */
} verdict_t;

static int refuse_head(verdict_t *v, int code, const char *error)
{
    v->code = code;
    v->error = error;
    return -1;
}

static int is_tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* One header line (without its line end); -1 with v filled to refuse. */
static int check_header(const char *l, size_t n, verdict_t *v, int *seen_cl, int *seen_te)
{
    if (l[0] == ' ' || l[0] == '\t')
        return refuse_head(v, 400, "folded header line");
    const char *colon = memchr(l, ':', n);
    if (!colon || colon == l)
        return refuse_head(v, 400, "malformed header line");
    size_t nl = (size_t)(colon - l);
    for (size_t i = 0; i < nl; i++)
        if (!is_tchar((unsigned char)l[i]))
            return refuse_head(v, 400, "malformed header name");
    const char *val = colon + 1, *end = l + n;
    while (val < end && (*val == ' ' || *val == '\t'))
        val++;
    while (end > val && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t vl = (size_t)(end - val);
    if (nl == sizeof(HB_CONN_REFUSAL_HEADER) - 1 && !strncasecmp(l, HB_CONN_REFUSAL_HEADER, nl))
        return refuse_head(v, 400, "reserved header " HB_CONN_REFUSAL_HEADER);
    if (nl == 14 && !strncasecmp(l, "Content-Length", 14)) {
        if ((*seen_cl)++)
            return refuse_head(v, 400, "several Content-Length headers");
        if (vl == 0 || vl > 18)
            return refuse_head(v, 400, "bad Content-Length");
        int64_t cl = 0;
        for (size_t i = 0; i < vl; i++) {
            if (val[i] < '0' || val[i] > '9')
                return refuse_head(v, 400, "bad Content-Length");
            cl = cl * 10 + (val[i] - '0');
        }
        v->body = cl;
        if (cl > v->max_body) {
            snprintf(v->detail, sizeof(v->detail), "Content-Length %" PRId64 ", limit %" PRId64, cl,
                     v->max_body);
            return refuse_head(v, 413, "body too large");
        }
    } else if (nl == 17 && !strncasecmp(l, "Transfer-Encoding", 17)) {
        if ((*seen_te)++)
            return refuse_head(v, 400, "several Transfer-Encoding headers");
        if (vl != 7 || strncasecmp(val, "chunked", 7) != 0)
            return refuse_head(v, 400, "Transfer-Encoding other than chunked");
        v->chunked = 1;
    }
    return 0;
}

static void match_route(const hb_edge_t *e, const char *p, size_t pl, verdict_t *v)
{
    for (size_t i = 0; i < e->n_paths; i++) {
        if (strlen(e->paths[i].path) == pl && memcmp(e->paths[i].path, p, pl) == 0) {
            v->route = &e->paths[i];
            v->max_body = e->paths[i].max_body;
            return;
        }
    }
}

/* The route of the request line l[0..n): its target's path matched exactly
 * against the routes' paths, as the route module matches the path evhttp
 * parses. The path must be the one evhttp finds, or the gate would apply
 * one route's max_body and allowlist and the route module serve another:
 * a target "/p" ends at '?' or '#'; any other form (absolute-form
 * "https://host/p", "//host/p") is parsed as evhttp parses it. An unknown
 * path has no route: limits.max_body and the allowlist apply to it. */
static void find_route(const hb_edge_t *e, const char *l, size_t n, verdict_t *v)
{
    const char *t = memchr(l, ' ', n), *end;
    v->max_body = e->max_body;
    if (!t)
        return;
    t++;
    end = memchr(t, ' ', n - (size_t)(t - l));
    end = end ? end : l + n;
    size_t tl = (size_t)(end - t);
    if (tl > 0 && t[0] == '/' && (tl == 1 || t[1] != '/')) {
        size_t pl = 0;
        while (pl < tl && t[pl] != '?' && t[pl] != '#')
            pl++;
        match_route(e, t, pl, v);
        return;
    }
    char *target = hb_malloc(tl + 1);
    memcpy(target, t, tl);
    target[tl] = '\0';
    struct evhttp_uri *uri = evhttp_uri_parse_with_flags(target, EVHTTP_URI_NONCONFORMANT);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (path)
        match_route(e, path, strlen(path), v);
    if (uri)
        evhttp_uri_free(uri);
    free(target);
}

/* 1 when evhttp 2.1 reads no body for the method of the request line
 * l[0..n), HEAD or TRACE, whatever Content-Length says: it reads the bytes
 * after the head as the next request. */
static int method_bodyless(const char *l, size_t n)
{
    return (n > 5 && !memcmp(l, "HEAD ", 5)) || (n > 6 && !memcmp(l, "TRACE ", 6));
}

/* The head h[0..len) ends with its empty line. 0 to let it through, -1
 * with v filled to refuse. Line ends are "\n" with an optional "\r", as
 * evhttp reads them. */
static int check_head(const char *h, size_t len, const hb_edge_t *e, verdict_t *v)
{
    int seen_cl = 0, seen_te = 0, bodyless = 0;
    memset(v, 0, sizeof(*v));
    for (size_t pos = 0, no = 0; pos < len; no++) {
        const char *nl = memchr(h + pos, '\n', len - pos);
        size_t n = (size_t)(nl - (h + pos)); /* the head ends with "\n": nl is found */
        if (n && h[pos + n - 1] == '\r')
            n--;
        if (n == 0) {
            if (no == 0)
                return refuse_head(v, 400, "empty request line");
            break;
        }
        if (no == 0) {
            find_route(e, h + pos, n, v);
            bodyless = method_bodyless(h + pos, n);
        }
        if (no > 0 && check_header(h + pos, n, v, &seen_cl, &seen_te) < 0)
            return -1;
        pos = (size_t)(nl - h) + 1;
    }
    if (seen_cl && seen_te)
        return refuse_head(v, 400, "both Content-Length and Transfer-Encoding");
    /* Frame it as evhttp does: what follows is the next head, judged as
     * one. Let through as a body, it reached evhttp unjudged, as a request
     * the gate had not counted (owed), and a direct request could then be
     * answered while evhttp's was still waiting. */
    if (bodyless)
        v->body = 0;
    return 0;
}

/* ---- the gate ---- */

/* Hand evhttp the stand-in for a refused request and drop the rest. */
static void gate_refuse(hb_conn_t *c, const verdict_t *v)
{
    evbuffer_drain(c->hold, evbuffer_get_length(c->hold));
    c->owed++;
    /* the stand-in asks for the route's path, so its answer is counted
     * and logged under that route */
    evbuffer_add_printf(
        c->in, "GET %s HTTP/1.1\r\nHost: -\r\n" HB_CONN_REFUSAL_HEADER ": %d %s%s%s\r\n\r\n",
        v->route ? v->route->path : "/", v->code, v->error, v->detail[0] ? "; " : "", v->detail);
    c->state = G_DRAIN;
}

/* Let through up to body_left bytes of hold. */
static void gate_body(hb_conn_t *c)
{
    size_t n = evbuffer_get_length(c->hold);
    if ((int64_t)n > c->body_left)
        n = (size_t)c->body_left;
    evbuffer_remove_buffer(c->hold, c->in, n);
    c->body_left -= (int64_t)n;
    if (c->body_left == 0)
        c->state = G_HEAD;
}

/* Scan h[*scan..avail) for the empty line that ends a head, counting the
 * lines in *lines: the head's length, 0 when it has not ended yet, -1 when
 * it has more than HB_CONN_HEAD_LINES lines. */
static ssize_t head_end(const char *h, size_t avail, size_t *scan, unsigned *lines)
{
    while (*scan < avail) {
        const char *nl = memchr(h + *scan, '\n', avail - *scan);
        if (!nl)
            return 0;
        size_t start = *scan;
        *scan = (size_t)(nl - h) + 1;
        size_t n = *scan - start - 1;
        if (n && h[start + n - 1] == '\r')
            n--;
        if (n == 0)
            return (ssize_t)*scan;
        if (++*lines > HB_CONN_HEAD_LINES)
            return -1;
    }
    return 0;
}

/* Judge the whole head h[0..end): 0 to let it through, -1 with v filled
 * to refuse. */
static int judge_head(hb_conn_t *c, const char *h, size_t end, verdict_t *v)
{
    int bad = check_head(h, end, c->edge, v) < 0;
    /* intercom.allow_ips guards the Intercom route (and any path no
     * route has), not the other providers on the same listener */
    unsigned gen = atomic_load_explicit(&c->edge->al_gen, memory_order_relaxed);
    if ((!v->route || v->route->allowlisted) && (!c->peer_checked || c->peer_gen != gen)) {
        /* a swap between the load and the match leaves an older gen with
         * the newer verdict: the next request judges it again */
        c->peer_checked = 1;
        c->peer_gen = gen;
        c->peer_ok = edge_allows(c->edge, bufferevent_getfd(c->bev));
    }
    if ((!v->route || v->route->allowlisted) && !c->peer_ok) {
        const hb_edge_path_t *route = v->route;
        memset(v, 0, sizeof(*v));
        v->route = route;
        return refuse_head(v, 403, "source address not in intercom.allow_ips");
    }
    return bad || v->code ? -1 : 0;
}

/* Reserve the body of a head let through from the budget; -1 with v
 * filled to refuse. */
static int reserve_body(hb_conn_t *c, verdict_t *v)
{
    int64_t want = v->chunked ? c->edge->chunked_hold : v->body;
    if (want > 0 && edge_reserve(c->edge, want) < 0) {
        snprintf(v->detail, sizeof(v->detail), "%" PRId64 " bytes wanted", want);
        return refuse_head(v, 503, "request bodies in memory at limits.max_inflight_bytes");
    }
    c->held += want;
    return 0;
}

/* ---- direct requests (hb/conn.h) ---- */

static int name_is(const char *l, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(l, name, n) == 0;
}

/* 1 when p[0..n) has no NUL and no CR: evhttp reads each line as a C
 * string (a NUL ends it) and refuses a header value with a CR not
 * followed by a space, so a line with either is left to it. */
static int plain_line(const char *p, size_t n)
{
    return !memchr(p, '\0', n) && !memchr(p, '\r', n);
}

/* Fill r's headers from the judged head h[0..end) (copied into scratch,
 * which has room for HB_CONN_HEAD_MAX bytes), if the request may be taken
 * directly: "POST <origin-form target> HTTP/1.1", with no header that asks
 * for more than a Content-Length framed request and answer (Connection,
 * Expect, Transfer-Encoding, Upgrade). 0 to leave it to evhttp. The head
 * must read as evhttp reads it: the target has no space (evhttp's runs to
 * the line's last space, find_route's to the next one: "POST /p x
 * HTTP/1.1" is a 404 to evhttp), and a header value starts after the
 * spaces that follow the colon, not after a tab (evhttp skips spaces
 * only); a line evhttp would read differently is left to it. */
static int direct_head(const char *h, size_t end, hb_conn_req_t *r, char *scratch)
{
    const char *nl = memchr(h, '\n', end);
    size_t n = (size_t)(nl - h);
    if (n && h[n - 1] == '\r')
        n--;
    static const char tail[] = " HTTP/1.1";
    if (n < 5 + 1 + sizeof(tail) - 1 || memcmp(h, "POST /", 6) != 0 ||
        memcmp(h + n - (sizeof(tail) - 1), tail, sizeof(tail) - 1) != 0)
        return 0;
    size_t tlen = n - 5 - (sizeof(tail) - 1); /* the target, h + 5 */
    if (memchr(h + 5, ' ', tlen) || !plain_line(h, n))
        return 0;
    memcpy(scratch, h, end);
    r->n_headers = 0;
    for (size_t pos = (size_t)(nl - h) + 1; pos < end;) {
        char *l = scratch + pos, *e = memchr(l, '\n', end - pos);
        pos = (size_t)(e - scratch) + 1;
        if (e > l && e[-1] == '\r')
            e--;
        if (e == l)
            break; /* the empty line */
        /* the gate checked the line: a token, ':', a value */
        char *colon = memchr(l, ':', (size_t)(e - l)), *v = colon + 1;
        size_t nlen = (size_t)(colon - l);
        if (name_is(l, nlen, "Connection") || name_is(l, nlen, "Expect") ||
            name_is(l, nlen, "Transfer-Encoding") || name_is(l, nlen, "Upgrade") ||
            !plain_line(l, (size_t)(e - l)))
            return 0;
        while (v < e && *v == ' ')
            v++;
        while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        *colon = '\0';
        *e = '\0';
        r->headers[r->n_headers].name = l;
        r->headers[r->n_headers].value = v;
        r->n_headers++;
    }
    return 1;
}

const char *hb_conn_req_header(const hb_conn_req_t *r, const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

static void conn_counted(hb_conn_t *c);
static void on_resume(evutil_socket_t fd, short what, void *arg);

/* Heads wait in hold while a direct request is answered and while its
 * answer is written (see hb/conn.h), and while evhttp has a request of
 * ours it has not answered: evhttp is given one request at a time. With
 * several heads in its input, evhttp schedules a read of its own once an
 * answer is out (read_more), and a read of the socket before that one ran
 * leaves the bufferevent's deferred read callback pending behind it: that
 * callback then finds evhttp answering the next request, and libevent
 * exits ("evhttp_read_cb: illegal connection state"). A client that
 * pipelines and reads late made that happen within seconds once reading
 * stops and resumes (Backpressure). Held back, the heads are judged once
 * the answer is written (evhttp_answered), and may be taken directly. */
static int gate_blocked(const hb_conn_t *c)
{
    return c->direct_busy || c->writing || c->owed > 0;
}

/* Take the judged request h[0..end) with its whole body (v->body bytes
 * after the head) directly, if it qualifies: 1 when taken (answered or
 * pending), 0 to hand it to evhttp. Its body is reserved already. */
static int gate_direct(hb_conn_t *c, const char *h, size_t end, const verdict_t *v)
{
    if (!c->direct || !v->route || v->chunked || gate_blocked(c))
        return 0;
    hb_conn_req_t r;
    char scratch[HB_CONN_HEAD_MAX];
    if (!direct_head(h, end, &r, scratch))
        return 0;
    r.route = (size_t)(v->route - c->edge->paths);
    r.body = (const unsigned char *)h + end;
    r.body_len = (size_t)v->body;
    conn_counted(c);
    c->direct_busy = 1;
    if (!c->direct(c->direct_arg, c, &r)) {
        c->direct_busy = 0; /* answered */
    } else if (c->direct_busy && c->bev) {
        /* nothing more is read until it is answered, as evhttp does; see
         * on_keep_read for why the socket stays in epoll */
        c->keep_spare = 1;
        bufferevent_disable(c->bev, EV_READ);
    }
    return 1;
}

/* Judge what hold has: whole heads, with the bodies that follow them. */
static void gate_run(hb_conn_t *c)
{
    while (evbuffer_get_length(c->hold) > 0) {
        if (c->state == G_DRAIN) {
            evbuffer_drain(c->hold, evbuffer_get_length(c->hold));
            return;
        }
        if (c->state == G_PASS) {
            evbuffer_add_buffer(c->in, c->hold);
            return;
        }
        if (c->state == G_BODY) {
            gate_body(c);
            continue;
        }
        if (gate_blocked(c))
            return; /* on_resume judges it */
        verdict_t v;
        size_t len = evbuffer_get_length(c->hold);
        size_t avail = len < HB_CONN_HEAD_MAX ? len : HB_CONN_HEAD_MAX;
        const char *h = (const char *)evbuffer_pullup(c->hold, (ev_ssize_t)avail);
        ssize_t end = head_end(h, avail, &c->scan, &c->lines);
        if (end < 0) {
            memset(&v, 0, sizeof(v));
            snprintf(v.detail, sizeof(v.detail), "more than %d lines", HB_CONN_HEAD_LINES);
            refuse_head(&v, 431, "request header fields too large");
            gate_refuse(c, &v);
            continue;
        }
        if (!end) {
            if (len >= HB_CONN_HEAD_MAX) {
                memset(&v, 0, sizeof(v));
                snprintf(v.detail, sizeof(v.detail), "head over %d bytes", HB_CONN_HEAD_MAX);
                refuse_head(&v, 431, "request header fields too large");
                gate_refuse(c, &v);
                continue;
            }
            return; /* wait for the rest of the head */
        }
        c->scan = 0;
        c->lines = 0;
        if (judge_head(c, h, (size_t)end, &v) < 0 || reserve_body(c, &v) < 0) {
            gate_refuse(c, &v);
            continue;
        }
        if (!v.chunked && (int64_t)(len - (size_t)end) >= v.body) {
            h = (const char *)evbuffer_pullup(c->hold, (ev_ssize_t)end + v.body);
            if (gate_direct(c, h, (size_t)end, &v)) {
                evbuffer_drain(c->hold, (size_t)end + (size_t)v.body);
                continue;
            }
        }
        c->owed++;
        evbuffer_remove_buffer(c->hold, c->in, (size_t)end);
        if (v.chunked) {
            c->state = G_PASS;
        } else if (v.body > 0) {
            c->state = G_BODY;
            c->body_left = v.body;
        }
    }
}

/* The common case, judged where it lies: buf holds only new bytes, a whole
 * head and no more than its body, so nothing in it is left to judge after
 * this head and no byte needs moving through hold. 1 when done (let
 * through, or refused), 0 to take the general way. */
static int gate_in_place(hb_conn_t *c, struct evbuffer *buf)
{
    if (gate_blocked(c))
        return 0;
    size_t len = evbuffer_get_length(buf);
    size_t avail = len < HB_CONN_HEAD_MAX ? len : HB_CONN_HEAD_MAX, scan = 0;
    unsigned lines = 0;
    const char *h = (const char *)evbuffer_pullup(buf, (ev_ssize_t)avail);
    ssize_t end = h ? head_end(h, avail, &scan, &lines) : 0;
    if (end <= 0)
        return 0;
    verdict_t v;
    int refused = judge_head(c, h, (size_t)end, &v) < 0;
    /* what follows the head must be its body only (a chunked body is
     * framed by evhttp: the general way hands it over) */
    if (!refused && (v.chunked || (int64_t)(len - (size_t)end) > v.body))
        return 0;
    if (refused || reserve_body(c, &v) < 0) {
        c->rewriting = 1;
        evbuffer_drain(buf, len);
        gate_refuse(c, &v);
        c->rewriting = 0;
        return 1;
    }
    /* h has only the first HB_CONN_HEAD_MAX bytes in one piece: the
     * direct way reads the body through it too */
    if ((int64_t)(len - (size_t)end) == v.body &&
        (len <= avail || (h = (const char *)evbuffer_pullup(buf, (ev_ssize_t)len))) &&
        gate_direct(c, h, (size_t)end, &v)) {
        c->rewriting = 1;
        evbuffer_drain(buf, len);
        c->rewriting = 0;
        return 1;
    }
    c->owed++;
    c->body_left = v.body - (int64_t)(len - (size_t)end);
    c->state = c->body_left > 0 ? G_BODY : G_HEAD;
    return 1;
}

static void keep_read_arm(hb_conn_t *c);
static void read_ahead(hb_conn_t *c);
static void conn_flow(hb_conn_t *c);

static void gate_take(hb_conn_t *c, struct evbuffer *buf, size_t n_added);

static void gate_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    hb_conn_t *c = arg;
    if (c->rewriting || !c->bev)
        return;
    if (info->n_added == 0) {
        if (c->stalled)
            conn_flow(c); /* evhttp took bytes it waited with */
        return;
    }
    if (c->keep_parked)
        keep_read_arm(c); /* the bufferevent reads again */
    gate_take(c, buf, info->n_added);
    conn_flow(c);
    if (c->ssl && c->out && c->bev)
        read_ahead(c);
}

/* Judge the n_added bytes just added to buf (the connection's input). */
static void gate_take(hb_conn_t *c, struct evbuffer *buf, size_t n_added)
{
    if (c->state == G_PASS)
        return;
    if (c->state == G_BODY && c->body_left >= (int64_t)n_added &&
        evbuffer_get_length(c->hold) == 0) {
        c->body_left -= (int64_t)n_added; /* the common case: body bytes, let through */
        if (c->body_left == 0)
            c->state = G_HEAD;
        return;
    }
    if (c->state == G_HEAD && evbuffer_get_length(c->hold) == 0 &&
        evbuffer_get_length(buf) == n_added && gate_in_place(c, buf))
        return;
    c->rewriting = 1;
    /* Move the new bytes aside: what evhttp may already see stays in front
     * (with what is left of a body being let through), the rest goes to
     * the end of hold. */
    size_t keep = evbuffer_get_length(buf) - n_added;
    if (c->state == G_BODY && evbuffer_get_length(c->hold) == 0) {
        keep += (size_t)c->body_left;
        c->body_left = 0;
        c->state = G_HEAD;
    }
    evbuffer_remove_buffer(buf, c->front, keep);
    size_t n = evbuffer_get_length(buf);
    if (n <= 4096) {
        /* Moved, each read would keep its own chain of 4 KiB or more in
         * hold, whatever the size of the client's TLS records: copied,
         * what hold counts (Backpressure) is what it costs. One copy: a
         * read's bytes are one chain, so the pullup moves nothing. */
        evbuffer_add(c->hold, evbuffer_pullup(buf, (ev_ssize_t)n), n);
        evbuffer_drain(buf, n);
    } else {
        evbuffer_add_buffer(c->hold, buf);
    }
    evbuffer_add_buffer(buf, c->front);
    gate_run(c);
    c->rewriting = 0;
}

/* ---- epoll interest (see the top of the file) ---- */

static void keep_read_arm(hb_conn_t *c)
{
    c->keep_parked = 0;
    event_add(c->keep_read, NULL);
}

/* The socket is readable. While the bufferevent's own read event is
 * pending it reads the bytes; otherwise nobody would, and a level-triggered
 * event would fire on every loop pass: step aside. */
static void on_keep_read(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hb_conn_t *c = arg;
    /* A direct request stops the bufferevent's reading from within its
     * read, which the readiness that made it read activated for this event
     * too: that firing says nothing new, and stepping aside for it would
     * cost two epoll_ctl calls per request. A second one means the client
     * sent more while it waits. */
    if (c->keep_spare && c->direct_busy) {
        c->keep_spare = 0;
        return;
    }
    if (!c->bev || !event_pending(&c->bev->ev_read, EV_READ, NULL)) {
        event_del(c->keep_read);
        c->keep_parked = 1;
    }
}

/* From the connection's first request on (its socket is known by then). */
static void keep_read_start(hb_conn_t *c)
{
    if (c->keep_read || !c->out)
        return;
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    if (fd < 0)
        return;
    c->keep_read =
        event_new(bufferevent_get_base(c->bev), fd, EV_READ | EV_PERSIST, on_keep_read, c);
    if (!c->keep_read)
        hb_oom("event_new");
    keep_read_arm(c);
}

/* Read what OpenSSL holds if the bufferevent is reading. */
static void read_pending(hb_conn_t *c)
{
    if (c->bev && c->ssl && !c->stalled && SSL_has_pending(c->ssl) &&
        (bufferevent_get_enabled(c->bev) & EV_READ))
        event_active(&c->bev->ev_read, EV_READ, 1);
}

/* Stop reading while too much waits, read again once half of it has gone
 * (see "Backpressure" at the top of the file). Called wherever what waits
 * changes: bytes read or taken by evhttp (gate_cb), judged (on_resume),
 * answers queued or written (out_cb, hb_conn_answer). Resuming looks at
 * what OpenSSL holds as well (records read ahead, or the rest of one the
 * suspension cut short, would not make the socket readable again), but in
 * the next loop pass, not at once: on_resume has just scheduled evhttp's
 * read callback for the heads it handed over, and a read run before it
 * could let evhttp take a request and start answering it, when that
 * callback would find it answering (libevent exits on that). */
static void conn_flow(hb_conn_t *c)
{
    if (!c->bev)
        return;
    /* Bodies the gate let through are in the body budget (c->held), and
     * evhttp takes a body from the input buffer only once all of it is
     * there: they are not counted twice. */
    size_t in = evbuffer_get_length(c->in), bodies = c->held > 0 ? (size_t)c->held : 0;
    size_t waiting = evbuffer_get_length(c->hold) + (in > bodies ? in - bodies : 0) +
                     (c->out ? evbuffer_get_length(c->out) : 0);
    if (!c->stalled && waiting > HB_CONN_WAITING_MAX) {
        c->stalled = 1;
        bufferevent_suspend_read_(c->bev, CONN_SUSPEND_WAITING);
    } else if (c->stalled && waiting <= HB_CONN_WAITING_MAX / 2) {
        c->stalled = 0;
        bufferevent_unsuspend_read_(c->bev, CONN_SUSPEND_WAITING);
        if (c->recheck) {
            static const struct timeval now = {0, 0};
            evtimer_add(c->recheck, &now);
        }
    }
}

static void on_recheck(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    read_pending(arg);
}

/* Decrypted bytes arrived and the gate has judged them (see the top of
 * the file). Not when they end a request: evhttp stops reading to answer
 * it, and what OpenSSL holds is read once the answer is out (out_cb). Read
 * now, it could be the client's close_notify, whose end of the connection
 * makes evhttp drop the request unanswered. (A refused connection, whose
 * bytes are dropped, is drained as before.) */
static void read_ahead(hb_conn_t *c)
{
    if (!SSL_get_read_ahead(c->ssl)) {
        SSL_set_read_ahead(c->ssl, 1);
        c->recheck = evtimer_new(bufferevent_get_base(c->bev), on_recheck, c);
        if (!c->recheck)
            hb_oom("evtimer_new");
    } else if (c->state != G_HEAD || evbuffer_get_length(c->hold) > 0) {
        read_pending(c);
    }
}

/* An answer starts in the output buffer: write it in this loop pass rather
 * than after epoll reports the socket writable. evhttp enables writing
 * right after queueing the answer, before the activated event runs; an
 * event that finds writing disabled does nothing and deletes itself. */
static void out_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    hb_conn_t *c = arg;
    if (!c->bev)
        return;
    if (info->n_deleted && c->stalled)
        conn_flow(c); /* the client took answers */
    if (info->n_added && info->orig_size == 0) {
        c->answers++; /* progress, for the slow-client deadline */
        /* with the route loop's completions (server.c's two priorities):
         * the answer leaves in their queue, not behind the pass's reads.
         * Set each time: evhttp's bufferevent_setfd reassigns the event,
         * and a failure (the event already active) only keeps priority 1. */
        event_priority_set(&c->bev->ev_write, 0);
        event_active(&c->bev->ev_write, EV_WRITE, 1);
    } else if (info->n_deleted && evbuffer_get_length(buf) == 0 && c->recheck &&
               SSL_has_pending(c->ssl)) {
        static const struct timeval now = {0, 0};
        evtimer_add(c->recheck, &now); /* an answer went out: evhttp reads again */
    }
}

/* ---- the connection ---- */

static void conn_unref(hb_conn_t *c)
{
    if (--c->refs > 0)
        return;
    if (c->keep_read)
        event_free(c->keep_read);
    if (c->recheck)
        event_free(c->recheck);
    if (c->deadline)
        event_free(c->deadline);
    if (c->resume)
        event_free(c->resume);
    if (c->hold)
        evbuffer_free(c->hold);
    if (c->front)
        evbuffer_free(c->front);
    free(c);
}

static void arm_deadline(hb_conn_t *c)
{
    struct timeval tv = hb_ms_timeval(c->timeout_ms);
    event_add(c->deadline, &tv);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hb_conn_t *c = arg;
    if (!c->bev)
        return;
    /* An answer that started since the last tick counts as progress: one
     * queued in this loop pass, its request done (busy back to 0) before
     * its write event has run, would otherwise be shut down unwritten. It
     * gets a whole period to be written; a client that takes none of it
     * in that time is slow, and the write timeout would close it too. */
    if (!c->lingering && (c->busy || c->requests != c->seen || c->answers != c->answers_seen)) {
        c->seen = c->requests;
        c->answers_seen = c->answers;
        arm_deadline(c);
        return;
    }
    evutil_socket_t sfd = bufferevent_getfd(c->bev);
    if (sfd >= 0) {
        if (!c->lingering)
            hb_info(C,
                    "closing a connection that completed no request in %lld ms (slow or idle "
                    "client)",
                    (long long)c->timeout_ms);
        shutdown(sfd, SHUT_RDWR); /* evhttp sees the end and frees it */
    }
}

/* The refusal is written (evhttp's completion callback, before it decides
 * whether to close). Closing now could lose it: close(2) on a socket with
 * unread bytes (the body the client is still sending) makes the kernel
 * send a reset, which drops whatever of the answer it had not sent yet,
 * and the client, still writing, may see the reset before it reads the
 * answer. So, as nginx's lingering close does: our side is shut (the
 * answer and a FIN go out), the connection stays open with the gate
 * dropping every byte, and it closes when the client does or after
 * HB_CONN_LINGER_MS. evhttp keeps a connection whose request and answer
 * carry no "Connection: close"; the answer carried one, for the client,
 * and it is taken off once written. */
static void linger_start(struct evhttp_request *req, void *arg)
{
    hb_conn_t *c = arg;
    c->owed--;
    evhttp_remove_header(evhttp_request_get_output_headers(req), "Connection");
    if (!c->bev)
        return;
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    if (fd >= 0)
        shutdown(fd, SHUT_WR);
    c->lingering = 1;
    int64_t ms = c->timeout_ms < HB_CONN_LINGER_MS ? c->timeout_ms : HB_CONN_LINGER_MS;
    struct timeval tv = hb_ms_timeval(ms);
    event_add(c->deadline, &tv);
}

void hb_conn_linger(hb_conn_t *c, struct evhttp_request *req)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
    if (c && c->bev && c->deadline)
        evhttp_request_set_on_complete_cb(req, linger_start, c);
}

void hb_conn_closed(hb_conn_t *c)
{
    if (!c)
        return;
    c->bev = NULL; /* the input buffer went with it: the gate is not called again */
    c->ssl = NULL;
    /* The socket was closed just before (be_openssl_destruct): leave it
     * before the loop can accept a connection on the same descriptor. */
    if (c->keep_read)
        event_del(c->keep_read);
    if (c->recheck)
        event_del(c->recheck);
    if (c->deadline)
        event_del(c->deadline);
    if (c->resume)
        event_del(c->resume);
    atomic_fetch_sub(&c->edge->inflight, c->held);
    c->held = 0;
    void (*closed)(void *) = c->closed;
    void *arg = c->closed_arg;
    conn_unref(c);
    if (closed)
        closed(arg);
}

static void conn_freed(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    hb_conn_closed(ptr);
}

static void conn_ex_init(void)
{
    conn_ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, conn_freed);
}

hb_conn_t *hb_conn_new(hb_edge_t *edge, SSL *ssl, int64_t read_timeout_ms,
                       void (*closed)(void *arg), void *arg)
{
    pthread_once(&conn_ex_once, conn_ex_init);
    hb_conn_t *c = hb_calloc(1, sizeof(*c));
    c->edge = edge;
    c->timeout_ms = read_timeout_ms;
    c->refs = 1;
    c->closed = closed;
    c->closed_arg = arg;
    c->hold = evbuffer_new();
    c->front = evbuffer_new();
    if (!c->hold || !c->front)
        hb_oom("evbuffer_new");
    c->ssl = ssl;
    if (ssl)
        SSL_set_ex_data(ssl, conn_ex_index, c);
    return c;
}

void hb_conn_start(hb_conn_t *c, struct bufferevent *bev)
{
    c->bev = bev;
    c->in = bufferevent_get_input(bev);
    if (!evbuffer_add_cb(c->in, gate_cb, c))
        hb_oom("evbuffer_add_cb");
    if (bufferevent_openssl_get_ssl(bev)) {
        c->out = bufferevent_get_output(bev);
        if (!evbuffer_add_cb(c->out, out_cb, c))
            hb_oom("evbuffer_add_cb");
    }
    c->deadline = evtimer_new(bufferevent_get_base(bev), on_deadline, c);
    c->resume = evtimer_new(bufferevent_get_base(bev), on_resume, c);
    if (!c->deadline || !c->resume)
        hb_oom("evtimer_new");
    arm_deadline(c);
}

/* A request read in full (the client is not stalling). */
static void conn_counted(hb_conn_t *c)
{
    c->requests++;
    if (c->bev)
        keep_read_start(c);
}

static hb_conn_t *conn_of_bev(struct bufferevent *bev)
{
    SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
    return ssl ? SSL_get_ex_data(ssl, conn_ex_index) : NULL;
}

static void schedule_resume(hb_conn_t *c);

/* evhttp wrote the answer to a head the gate handed it: the heads that
 * waited behind it are judged (evhttp reads again by then). */
static void evhttp_answered(struct evhttp_request *req, void *arg)
{
    (void)req;
    hb_conn_t *c = arg;
    c->owed--;
    schedule_resume(c);
}

hb_conn_t *hb_conn_of(struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    hb_conn_t *c = conn_of_bev(evcon ? evhttp_connection_get_bufferevent(evcon) : NULL);
    if (c) {
        conn_counted(c);
        evhttp_request_set_on_complete_cb(req, evhttp_answered, c);
    }
    return c;
}

void hb_conn_set_direct(hb_conn_t *c, hb_conn_direct_fn fn, void *arg)
{
    c->direct = fn;
    c->direct_arg = arg;
}

static void schedule_resume(hb_conn_t *c)
{
    static const struct timeval now = {0, 0};
    if (c->bev && c->resume && evbuffer_get_length(c->hold) > 0)
        evtimer_add(c->resume, &now);
}

/* Heads that waited in hold: judge them now. Bytes handed to evhttp here
 * were not added by a read, so its read callback is run for them. */
static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hb_conn_t *c = arg;
    if (!c->bev || gate_blocked(c) || evbuffer_get_length(c->hold) == 0)
        return;
    size_t before = evbuffer_get_length(c->in);
    c->rewriting = 1;
    gate_run(c);
    c->rewriting = 0;
    if (c->bev && evbuffer_get_length(c->in) > before)
        bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
    conn_flow(c);
}

/* The direct answers are written: the bufferevent is evhttp's again, as
 * evhttp left it waiting for a request (writing disabled). */
static void direct_written(struct bufferevent *bev, void *arg)
{
    hb_conn_t *c = arg;
    bufferevent_setcb(bev, c->evhttp_readcb, c->evhttp_writecb, c->evhttp_eventcb, c->evhttp_cbarg);
    bufferevent_disable(bev, EV_WRITE);
    c->writing = 0;
    schedule_resume(c);
}

static void direct_read(struct bufferevent *bev, void *arg)
{
    hb_conn_t *c = arg;
    if (c->evhttp_readcb)
        c->evhttp_readcb(bev, c->evhttp_cbarg);
}

static void direct_event(struct bufferevent *bev, short what, void *arg)
{
    hb_conn_t *c = arg;
    if (c->evhttp_eventcb)
        c->evhttp_eventcb(bev, what, c->evhttp_cbarg);
}

/* evhttp, waiting for the connection's next request, has left its write
 * callback set to finish its last answer: that callback must not run for
 * ours, so until ours is out the bufferevent calls direct_written, and
 * evhttp's other two callbacks through direct_read and direct_event. */
void hb_conn_answer(hb_conn_t *c, const char *head, size_t head_len, const void *body,
                    size_t body_len)
{
    c->direct_busy = 0;
    c->keep_spare = 0;
    if (!c->bev)
        return;
    if (!c->writing) {
        bufferevent_getcb(c->bev, &c->evhttp_readcb, &c->evhttp_writecb, &c->evhttp_eventcb,
                          &c->evhttp_cbarg);
        bufferevent_setcb(c->bev, direct_read, direct_written, direct_event, c);
        c->writing = 1;
    }
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add(out, head, head_len);
    if (body_len)
        evbuffer_add(out, body, body_len);
    bufferevent_enable(c->bev, EV_WRITE | EV_READ);
    conn_flow(c);
    schedule_resume(c);
}

void hb_conn_peer(const hb_conn_t *c, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[NI_MAXHOST] = "?", port[NI_MAXSERV] = "0";
    evutil_socket_t fd = c->bev ? bufferevent_getfd(c->bev) : -1;
    if (fd >= 0 && getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
        getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port, sizeof(port),
                    NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(buf, len, "%s:%s", host, port);
}

void hb_conn_busy(hb_conn_t *c)
{
    c->busy++;
    c->refs++;
}

void hb_conn_done(hb_conn_t *c)
{
    c->busy--;
    conn_unref(c);
}

void hb_conn_release(hb_conn_t *c, size_t body_len)
{
    int64_t n = (int64_t)body_len < c->held ? (int64_t)body_len : c->held;
    c->held -= n;
    atomic_fetch_sub(&c->edge->inflight, n);
}
