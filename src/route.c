/* Request handling for the webhook routes. See include/hb/route.h.
 *
 * Order of checks for a POST, cheapest and least revealing first: path
 * (which route), method, journal state, the route's body size, signature
 * (before parsing, so that an unauthenticated client cannot make us parse
 * anything) and replay window, the delivery's fields, room in the journal.
 * Only then is the record prepared (CRC computed here, on the HTTP thread,
 * in parallel) and queued for the writer. The scheme (hb/scheme.h) does the
 * signature and the fields; the Intercom route is the first path compared
 * and its scheme keeps the envelope scanner, so it costs what it did before
 * routes.
 *
 * An accepted request is owned by one pending_t until it is answered; the
 * writer thread hands it back through the loop's queue, never answering
 * on the writer thread itself. */
#include "hb/fmacros.h"

#include "hb/route.h"
#include "hb/conn.h"
#include "hb/scheme.h"
#include "hb/dedup.h"
#include "hb/dedup_shared.h"
#include "hb/event.h"
#include "hb/log.h"
#include "hb/metrics.h"
#include "hb/record.h"
#include "hb/util.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h> /* the request's HTTP version */
#include <event2/keyvalq_struct.h>

#define C "http"
#define PUBLISHED_WAIT_MS 4000 /* below Intercom's 5 s answer deadline */

/* One route: its configuration, its scheme and its key set. */
typedef struct route_ent {
    const hb_route_cfg_t *rc;
    hb_scheme_t *scheme;
    /* the route as records carry it: NULL for the Intercom route, whose
     * records stay byte for byte what they were before routes */
    const char *rec_route;
    size_t rec_route_len;
    /* The key set: swapped under ks_lock on SIGHUP, with ks_gen bumped. A
     * loop reads ks_gen (one atomic load) per request and takes the lock
     * only when it changed, to build its own key context. */
    pthread_mutex_t ks_lock;
    hb_keyset_t *ks; /* NULL when verify = off or the scheme needs no secret */
    atomic_uint ks_gen;
} route_ent_t;

struct hb_route {
    const hb_config_t *cfg;
    route_ent_t *routes; /* cfg->routes' order: the Intercom route first */
    size_t n_routes;
    _Atomic(hb_journal_t *) journal;
    hb_stage_t stage;
    hb_dedup_t *dedup;           /* NULL when dedup = off */
    hb_dedup_shared_t *shared;   /* NULL unless dedup.store = redis */
    hb_route_loop_t *loops[256]; /* registered before the journal is set */
    size_t n_loops;
};

typedef struct pending {
    hb_append_t a; /* first: the journal hands back &a */
    struct pending *next;
    hb_route_loop_t *loop;
    struct evhttp_request *req;
    hb_conn_t *conn; /* held while answering; may outlive the client */
    size_t body_len; /* given back to the body budget when answered */
    uint64_t t0_us;
    uint64_t deadline_ms; /* ack = published */
    uint64_t received_at_ms;
    size_t id_off, id_len; /* dedup key inside a.buf; id_len 0 = none */
    size_t route;          /* index into hb_route_t.routes */
    int repeat;            /* a repeated id waiting for its first record (a.seq) */
    size_t cap;            /* bytes allocated after the struct (a.buf's room) */
} pending_t;

/* A loop keeps the pending_t of answered requests for the next ones: each
 * is a block of over 1 KiB (the record follows the struct). With glibc's
 * malloc every allocation of that size sorts its fast bins first
 * (malloc_consolidate), which evhttp's many small allocations keep
 * filling; with jemalloc, dropping the pool still cost about 2 us per
 * request (bench/compare.sh, medians of 7 rounds, with the sink's block
 * reuse dropped too). Blocks have room for PENDING_ROOM bytes of record,
 * which holds a typical delivery; a larger record gets a block of its own,
 * freed when answered. At most PENDING_POOL blocks are kept, about as many
 * as requests are in flight on one thread under a steady load. */
#define PENDING_ROOM (4096 - 64 - sizeof(pending_t))
#define PENDING_POOL 64

struct hb_route_loop {
    hb_route_t *r;
    struct event_base *base;
    struct event *done_ev, *progress_ev, *tick_ev, *keys_ev;
    pthread_mutex_t lock; /* done queue: writer thread -> this loop */
    pending_t *done_head, *done_tail;
    pending_t *wait_head, *wait_tail; /* ack = published, in seq order */
    pending_t *rep_head, *rep_tail;   /* repeats waiting, in deadline order */
    atomic_size_t pending;
    /* per route: this thread's key context for the key set of ks_gen */
    hb_keyctx_t **kc;
    unsigned *ks_gen;
    hb_dedup_shared_loop_t *shared; /* this thread's connection to the shared store */
    pending_t *pool;                /* answered blocks for reuse, linked by next */
    size_t n_pool;
};

/* A zeroed pending_t with room for `room` bytes of record after it. */
static pending_t *pending_new(hb_route_loop_t *l, size_t room)
{
    size_t cap = room <= PENDING_ROOM ? PENDING_ROOM : room;
    pending_t *p;
    if (cap == PENDING_ROOM && l->pool) {
        p = l->pool;
        l->pool = p->next;
        l->n_pool--;
    } else {
        p = hb_malloc(sizeof(*p) + cap);
    }
    memset(p, 0, sizeof(*p));
    p->cap = cap;
    p->loop = l;
    return p;
}

/* The request of p is done with: its block goes back to the loop's pool. */
static void pending_free(pending_t *p)
{
    hb_route_loop_t *l = p->loop;
    if (p->cap != PENDING_ROOM || l->n_pool >= PENDING_POOL) {
        free(p);
        return;
    }
    p->next = l->pool;
    l->pool = p;
    l->n_pool++;
}

/* Whom an answer goes to: evhttp's request, or a request the gate took
 * directly (hb/conn.h) when req is NULL. */
typedef struct to {
    struct evhttp_request *req;
    hb_conn_t *conn;
} to_t;
#define TO(req, conn) ((to_t){(req), (conn)})

static void peer(to_t to, char *buf, size_t len)
{
    if (!to.req) {
        hb_conn_peer(to.conn, buf, len);
        return;
    }
    char *addr = NULL;
    ev_uint16_t port = 0;
    struct evhttp_connection *conn = evhttp_request_get_connection(to.req);
    if (conn)
        evhttp_connection_get_peer(conn, &addr, &port);
    snprintf(buf, len, "%s:%u", addr ? addr : "?", (unsigned)port);
}

/* "Date: ..." as evhttp writes it (RFC 1123), formatted once a second
 * per thread rather than with gmtime and snprintf for every answer. */
static const char *http_date(void)
{
    static _Thread_local time_t at = -1;
    static _Thread_local char text[80]; /* room for any int the format is given */
    static const char days[][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = time(NULL);
    struct tm tm;
    if (t != at && gmtime_r(&t, &tm)) {
        snprintf(text, sizeof(text), "%s, %02d %s %4d %02d:%02d:%02d GMT", days[tm.tm_wday % 7],
                 tm.tm_mday, months[tm.tm_mon % 12], 1900 + tm.tm_year, tm.tm_hour, tm.tm_min,
                 tm.tm_sec);
        at = t;
    }
    return text;
}

/* v in decimal, its last digit just before end: its first digit. */
static char *decimal(char *end, uint64_t v)
{
    do
        *--end = (char)('0' + v % 10);
    while (v /= 10);
    return end;
}

/* Send the answer queued in req's output buffer. To an HTTP/1.1 request,
 * the Date and Content-Length headers that evhttp would add are added
 * here, in the same order and with the same values, so evhttp finds them
 * and skips its own gmtime and two snprintf calls per answer. When the
 * client is still there, the status line and headers (one evbuffer chain)
 * and the body (another) are joined into one chain before the write:
 * bufferevent_openssl makes one SSL_write, so one TLS record and one
 * write(2), per chain. */
static void send_answer(struct evhttp_request *req, int code, const char *reason)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    if (req->major == 1 && req->minor >= 1) {
        struct evkeyvalq *h = evhttp_request_get_output_headers(req);
        evhttp_add_header(h, "Date", http_date());
        if (evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
            char len[24];
            len[sizeof(len) - 1] = '\0';
            evhttp_add_header(h, "Content-Length",
                              decimal(len + sizeof(len) - 1,
                                      evbuffer_get_length(evhttp_request_get_output_buffer(req))));
        }
    }
    evhttp_send_reply(req, code, reason, NULL);
    struct evbuffer *out = bev ? bufferevent_get_output(bev) : NULL;
    if (out && evbuffer_get_length(out) <= 4096)
        evbuffer_pullup(out, -1);
}

static const char *reason_phrase(int code)
{
    return code == 200   ? "OK"
           : code == 400 ? "Bad Request"
           : code == 401 ? "Unauthorized"
           : code == 403 ? "Forbidden"
           : code == 404 ? "Not Found"
           : code == 405 ? "Method Not Allowed"
           : code == 413 ? "Payload Too Large"
           : code == 431 ? "Request Header Fields Too Large"
           : code == 503 ? "Service Unavailable"
                         : "Error";
}

static char *cat(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}
#define CAT(p, lit) cat((p), (lit), sizeof(lit) - 1)

/* A direct request's answer, byte for byte what evhttp writes for the same
 * answer to an HTTP/1.1 request (send_answer): status line, Content-Type,
 * Retry-After for a 503, Date, Content-Length. */
static void direct_send(hb_conn_t *conn, int code, const char *type, const char *body, size_t n)
{
    const char *reason = reason_phrase(code), *date = http_date();
    size_t rl = strlen(reason), tl = strlen(type), dl = strlen(date);
    /* the fixed text below and the two numbers take under 128 bytes; the
     * types are the schemes' constants, so the heap is never needed today */
    size_t need = 128 + rl + tl + dl;
    char stack[512], num[24], *d;
    char *buf = need <= sizeof(stack) ? stack : hb_malloc(need);
    char *p = CAT(buf, "HTTP/1.1 ");
    d = decimal(num + sizeof(num), (uint64_t)code);
    p = cat(p, d, (size_t)(num + sizeof(num) - d));
    p = CAT(p, " ");
    p = cat(p, reason, rl);
    p = CAT(p, "\r\nContent-Type: ");
    p = cat(p, type, tl);
    if (code == 503)
        p = CAT(p, "\r\nRetry-After: 5");
    p = CAT(p, "\r\nDate: ");
    p = cat(p, date, dl);
    p = CAT(p, "\r\nContent-Length: ");
    d = decimal(num + sizeof(num), n);
    p = cat(p, d, (size_t)(num + sizeof(num) - d));
    p = CAT(p, "\r\n\r\n");
    hb_conn_answer(conn, buf, (size_t)(p - buf), body, n);
    if (buf != stack)
        free(buf);
}

/* Answer with a short JSON body. `field` is "status" or "error"; text
 * holds no '"', '\\' or control character (see json_safe). The body goes
 * straight into the request's own output buffer: nothing is allocated per
 * answer beyond what evhttp allocates anyway. `route` labels the metrics
 * (HB_METRICS_NO_ROUTE: none). */
static void reply(to_t to, size_t route, int code, const char *field, const char *text,
                  uint64_t t0_us)
{
    struct evhttp_request *req = to.req;
    /* {"field":"text"}\n, put together without a printf per answer */
    char body[320];
    size_t n = 0;
    int with_body = field && (!req || evhttp_request_get_command(req) != EVHTTP_REQ_HEAD);
    if (with_body) {
        size_t fl = strlen(field), tl = strlen(text);
        if (fl + tl + 8 <= sizeof(body)) {
            memcpy(body, "{\"", 2);
            memcpy(body + 2, field, fl);
            memcpy(body + 2 + fl, "\":\"", 3);
            memcpy(body + 5 + fl, text, tl);
            memcpy(body + 5 + fl + tl, "\"}\n", 3);
            n = fl + tl + 8;
        }
    }
    if (!req) {
        direct_send(to.conn, code, "application/json", body, n);
    } else {
        struct evkeyvalq *h = evhttp_request_get_output_headers(req);
        if (with_body) {
            evhttp_add_header(h, "Content-Type", "application/json");
            evbuffer_add(evhttp_request_get_output_buffer(req), body, n);
        }
        if (code == 503)
            evhttp_add_header(h, "Retry-After", "5");
        send_answer(req, code, reason_phrase(code));
    }
    hb_metrics_request(route, code, (double)(hb_mono_us() - t0_us) / 1e6);
}

/* A scheme's reason, fit for a JSON string: it may quote what the client
 * sent, so '"', '\\' and control characters become '\''. */
static void json_safe(const char *in, char *out, size_t len)
{
    size_t n = 0;
    for (; *in && n + 1 < len; in++)
        out[n++] = *in == '"' || *in == '\\' || (unsigned char)*in < 0x20 ? '\'' : *in;
    out[n] = '\0';
}

static void refuse(to_t to, size_t route, const hb_route_t *r, int code, const char *error,
                   const char *detail, uint64_t t0_us)
{
    /* a client causes these at will: at most a few lines per status and
     * interval, the rest counted into one "more like this" line */
    const char *reason = code == 400   ? "400"
                         : code == 401 ? "401"
                         : code == 403 ? "403"
                         : code == 404 ? "404"
                         : code == 405 ? "405"
                         : code == 413 ? "413"
                         : code == 503 ? "503"
                                       : "other";
    if (HB_LOG_WARN >= hb_log_level && hb_log_allow(C, reason)) {
        char who[64];
        peer(to, who, sizeof(who));
        hb_warn(C, "%d to %s%s%s: %s%s%s", code, who, route < r->n_routes ? " on route " : "",
                route < r->n_routes ? r->routes[route].rc->name : "", error, detail ? ": " : "",
                detail ? detail : "");
    }
    reply(to, route, code, "error", error, t0_us);
}

static void answer_pending(hb_route_loop_t *l, pending_t *p, int code, const char *field,
                           const char *text)
{
    if (code == 200)
        reply(TO(p->req, p->conn), p->route, code, field, text, p->t0_us);
    else
        refuse(TO(p->req, p->conn), p->route, l->r, code, text, NULL, p->t0_us);
    atomic_fetch_sub(&l->pending, 1);
    if (p->conn) {
        hb_conn_release(p->conn, p->body_len);
        hb_conn_done(p->conn);
    }
    pending_free(p);
}

/* The route name and the provider's id of a pending request, for the
 * shared store, whose keys name the route themselves: the local dedup key
 * of a route other than Intercom's is "route NUL id" (hb_dedup_key). */
static const char *shared_id(const hb_route_t *r, const pending_t *p, const char **id,
                             size_t *id_len)
{
    const route_ent_t *e = &r->routes[p->route];
    *id = (const char *)p->a.buf + p->id_off;
    *id_len = p->id_len;
    if (e->rec_route) {
        *id += e->rec_route_len + 1;
        *id_len -= e->rec_route_len + 1;
    }
    return e->rc->name;
}

/* Writer thread: hand the request back to its own loop. */
static void on_appended(hb_append_t *a)
{
    pending_t *p = (pending_t *)a;
    hb_route_loop_t *l = p->loop;
    p->next = NULL;
    pthread_mutex_lock(&l->lock);
    int was_empty = !l->done_head;
    if (l->done_tail)
        l->done_tail->next = p;
    else
        l->done_head = p;
    l->done_tail = p;
    pthread_mutex_unlock(&l->lock);
    /* One wake-up per batch, not per record: a non-empty queue already has
     * one on its way (on_done empties the queue under the lock after it was
     * activated, so the next push finds it empty and activates again). */
    if (was_empty)
        event_active(l->done_ev, EV_READ, 0);
}

/* Answer the requests of one wait list whose record is published or whose
 * deadline passed. A list in seq order (and so in deadline order too)
 * stops at the first request still waiting; the repeats' list is in
 * deadline order only and is scanned whole (it is short: repeats of ids
 * not yet published). */
static void answer_waiting(hb_route_loop_t *l, pending_t **head, pending_t **tail,
                           uint64_t published, uint64_t now, int in_seq_order)
{
    pending_t **pp = head, *prev = NULL;
    while (*pp) {
        pending_t *p = *pp;
        int done = p->a.seq <= published;
        if (!done && now < p->deadline_ms) {
            if (in_seq_order)
                break;
            prev = p;
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        if (*tail == p)
            *tail = prev;
        if (!done) {
            answer_pending(l, p, 503, NULL, "durable but not yet published to every sink");
        } else if (p->repeat) {
            hb_metrics_duplicate();
            answer_pending(l, p, 200, "status", "duplicate");
        } else {
            answer_pending(l, p, 200, "status", "accepted");
        }
    }
}

static void answer_published(hb_route_loop_t *l)
{
    hb_journal_t *j = atomic_load(&l->r->journal);
    uint64_t published = j ? hb_journal_min_cursor(j) : 0, now = hb_mono_ms();
    answer_waiting(l, &l->wait_head, &l->wait_tail, published, now, 1);
    answer_waiting(l, &l->rep_head, &l->rep_tail, published, now, 0);
}

static void wait_push(pending_t **head, pending_t **tail, pending_t *p)
{
    p->deadline_ms = hb_mono_ms() + PUBLISHED_WAIT_MS;
    p->next = NULL;
    if (*tail)
        (*tail)->next = p;
    else
        *head = p;
    *tail = p;
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hb_route_loop_t *l = arg;
    pthread_mutex_lock(&l->lock);
    pending_t *p = l->done_head;
    l->done_head = l->done_tail = NULL;
    pthread_mutex_unlock(&l->lock);
    hb_journal_t *j = atomic_load(&l->r->journal);
    uint64_t now = hb_mono_us();
    while (p) {
        pending_t *next = p->next;
        p->next = NULL;
        if (j)
            hb_journal_handed_off(j, &p->a, now);
        if (p->a.err) {
            char why[128];
            snprintf(why, sizeof(why), "%s%s",
                     p->a.err == ENOSPC ? "journal full" : "journal write failed: ",
                     p->a.err == ENOSPC ? "" : strerror(p->a.err));
            answer_pending(l, p, 503, NULL, why);
            p = next;
            continue;
        }
        /* durable: from now on a retry of this id is a duplicate (under
         * ack = published, once this record is published) */
        if (p->id_len && l->r->dedup)
            hb_dedup_add(l->r->dedup, (const char *)p->a.buf + p->id_off, p->id_len,
                         p->received_at_ms, p->a.seq);
        if (p->id_len && l->shared) {
            const char *id;
            size_t id_len;
            const char *name = shared_id(l->r, p, &id, &id_len);
            hb_dedup_shared_claim(l->shared, name, id, id_len);
        }
        if (l->r->cfg->ack == HB_ACK_PUBLISHED) {
            wait_push(&l->wait_head, &l->wait_tail, p);
        } else {
            answer_pending(l, p, 200, "status", "accepted");
        }
        p = next;
    }
    if (l->wait_head || l->rep_head)
        answer_published(l);
}

static void on_progress_ev(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    answer_published(arg);
}

static void journal_progress(void *arg)
{
    hb_route_loop_t *l = arg;
    event_active(l->progress_ev, EV_READ, 0);
}

/* This thread's key context for route i, rebuilt when SIGHUP swapped the
 * route's key set. */
static hb_keyctx_t *loop_keyctx(hb_route_loop_t *l, size_t i)
{
    route_ent_t *e = &l->r->routes[i];
    if (l->kc[i] && atomic_load_explicit(&e->ks_gen, memory_order_acquire) == l->ks_gen[i])
        return l->kc[i];
    pthread_mutex_lock(&e->ks_lock);
    hb_keyset_t *ks = hb_keyset_ref(e->ks);
    l->ks_gen[i] = atomic_load(&e->ks_gen);
    pthread_mutex_unlock(&e->ks_lock);
    hb_keyctx_free(l->kc[i]);
    l->kc[i] = hb_scheme_keyctx(e->scheme, ks);
    hb_keyset_unref(ks);
    return l->kc[i];
}

/* ack = published: a repeat of an id whose record is durable but not yet
 * published waits for that record like the original did (200 duplicate
 * once it is published, 503 after the same wait), rather than being
 * journaled and published a second time. */
static void wait_for_first(hb_route_loop_t *l, struct evhttp_request *req, hb_conn_t *conn,
                           uint64_t t0, uint64_t seq, size_t body_len, size_t route)
{
    pending_t *p = pending_new(l, 0);
    p->a.seq = seq;
    p->route = route;
    p->body_len = body_len;
    p->repeat = 1;
    p->req = req;
    p->conn = conn;
    if (conn)
        hb_conn_busy(conn);
    p->t0_us = t0;
    atomic_fetch_add(&l->pending, 1);
    wait_push(&l->rep_head, &l->rep_tail, p);
}

/* dedup.store = redis: the shared store's answer for a request whose id
 * the local set does not know (hb/dedup_shared.h). */
static void on_shared_checked(hb_dedup_shared_verdict_t v, const char *owner, void *arg)
{
    pending_t *p = arg;
    hb_route_loop_t *l = p->loop;
    if (v == HB_DEDUP_SHARED_NEW) {
        hb_journal_append(atomic_load(&l->r->journal), &p->a);
    } else if (v == HB_DEDUP_SHARED_DUPLICATE) {
        char who[64];
        peer(TO(p->req, p->conn), who, sizeof(who));
        hb_info(C,
                "200 to %s: notification %.*s already received by replica %s within "
                "dedup.window; not published again",
                who, (int)p->id_len, (const char *)p->a.buf + p->id_off, owner);
        hb_metrics_duplicate();
        answer_pending(l, p, 200, "status", "duplicate");
    } else { /* the loop is being freed: never answered, as in hb_route_loop_free */
        if (p->conn) {
            hb_conn_release(p->conn, p->body_len);
            hb_conn_done(p->conn);
        }
        pending_free(p);
    }
}

static const char *input_header(void *arg, const char *name)
{
    return evhttp_find_header(arg, name);
}

/* A delivery whose id was seen on this route: 1 when left pending (ack =
 * published, its first record not yet published), 0 when answered. */
static int answer_repeat(hb_route_loop_t *l, struct evhttp_request *req, hb_conn_t *conn,
                         uint64_t t0, size_t ri, const hb_delivery_t *d, uint64_t first_seq,
                         size_t len)
{
    hb_route_t *r = l->r;
    hb_journal_t *j = atomic_load(&r->journal);
    const char *name = r->routes[ri].rc->name;
    char who[64];
    peer(TO(req, conn), who, sizeof(who));
    if (r->cfg->ack == HB_ACK_PUBLISHED && first_seq > hb_journal_min_cursor(j)) {
        hb_info(C,
                "delivery %s from %s on route %s already received, not yet published: waiting "
                "for that record",
                d->id, who, name);
        wait_for_first(l, req, conn, t0, first_seq, len, ri);
        return 1;
    }
    hb_info(C,
            "200 to %s on route %s: delivery %s already received within dedup.window; not "
            "published again",
            who, name, d->id);
    hb_metrics_duplicate();
    reply(TO(req, conn), ri, 200, "status", "duplicate", t0);
    return 0;
}

/* A verified handshake (Slack's url_verification): its reply, nothing
 * journaled or published. */
static void answer_handshake(to_t to, size_t ri, const hb_delivery_t *d, uint64_t t0)
{
    const char *type = d->reply_type ? d->reply_type : "text/plain";
    if (!to.req) {
        direct_send(to.conn, 200, type, d->reply ? d->reply : "", d->reply ? strlen(d->reply) : 0);
    } else {
        evhttp_add_header(evhttp_request_get_output_headers(to.req), "Content-Type", type);
        if (d->reply)
            evbuffer_add(evhttp_request_get_output_buffer(to.req), d->reply, strlen(d->reply));
        send_answer(to.req, 200, "OK");
    }
    hb_metrics_request(ri, 200, (double)(hb_mono_us() - t0) / 1e6);
}

/* Journal the verified delivery d of route ri; 1: pending until durable. */
static int journal_delivery(hb_route_loop_t *l, struct evhttp_request *req, hb_conn_t *conn,
                            uint64_t t0, size_t ri, const hb_delivery_t *d,
                            const unsigned char *body, size_t len, uint64_t now_ms)
{
    hb_route_t *r = l->r;
    const route_ent_t *e = &r->routes[ri];
    hb_journal_t *j = atomic_load(&r->journal);
    uint64_t first_seq = 0;
    char kbuf[256], *kheap = NULL;
    size_t klen = 0;
    const char *key = d->id && r->dedup ? hb_dedup_key(e->rec_route, e->rec_route_len, d->id,
                                                       d->id_len, kbuf, sizeof(kbuf), &kheap, &klen)
                                        : NULL;
    int rc = 0;
    if (key && hb_dedup_seen(r->dedup, key, klen, now_ms, &first_seq)) {
        rc = answer_repeat(l, req, conn, t0, ri, d, first_seq, len);
        goto out;
    }
    /* A failing disk is not refused here: each append finds out for itself
     * (503 if it cannot be made durable), so acceptance resumes by itself
     * as soon as a write succeeds again. */
    if (hb_journal_full(j)) {
        refuse(TO(req, conn), ri, r, 503, "journal full", NULL, t0);
        goto out;
    }
    hb_record_hdr_t hdrs[HB_DELIVERY_MAX_HEADERS];
    for (size_t i = 0; i < d->n_headers; i++)
        hdrs[i] = (hb_record_hdr_t){d->headers[i].name, strlen(d->headers[i].name),
                                    d->headers[i].value, strlen(d->headers[i].value)};
    hb_record_t rec = {
        .received_at_ms = now_ms,
        .delivery_attempts = d->delivery_attempts,
        .created_at = d->created_at,
        .topic = d->topic,
        .topic_len = d->topic_len,
        .app_id = d->source,
        .app_id_len = d->source_len,
        .id = d->id,
        .id_len = d->id_len,
        .body = body,
        .body_len = len,
        .route = e->rec_route,
        .route_len = e->rec_route_len,
        .headers = hdrs,
        .n_headers = d->n_headers,
    };
    if (rec.topic_len > 0xffff || rec.app_id_len > 0xffff || rec.id_len > 0xffff) {
        refuse(TO(req, conn), ri, r, 400, "topic, source or id longer than 65535 bytes", NULL, t0);
        goto out;
    }
    size_t size = hb_record_size(&rec);
    /* the dedup key of another route than Intercom's follows the record */
    size_t extra = key && key != d->id ? klen : 0;
    pending_t *p = pending_new(l, size + extra);
    p->a.buf = (unsigned char *)(p + 1);
    p->a.len = hb_record_prepare(&rec, p->a.buf);
    p->a.stage = r->stage;
    p->a.done = on_appended;
    p->req = req;
    p->conn = conn;
    if (p->conn)
        hb_conn_busy(p->conn);
    p->t0_us = t0;
    p->body_len = len;
    p->route = ri;
    p->received_at_ms = rec.received_at_ms;
    if (key && extra) {
        memcpy(p->a.buf + size, key, klen);
        p->id_off = size;
        p->id_len = klen;
    } else if (key) { /* the id inside the record, as before routes */
        p->id_off = HB_RECORD_HEADER + HB_RECORD_FIXED + rec.topic_len + rec.app_id_len;
        p->id_len = rec.id_len;
    }
    atomic_fetch_add(&l->pending, 1);
    if (p->id_len && l->shared) {
        const char *id;
        size_t id_len;
        const char *name = shared_id(r, p, &id, &id_len);
        if (hb_dedup_shared_check(l->shared, name, id, id_len, on_shared_checked, p) == 0) {
            rc = 1; /* journaled by on_shared_checked unless another replica has it */
            goto out;
        }
    }
    hb_journal_append(j, &p->a);
    rc = 1;
out:
    free(kheap);
    return rc;
}

/* A POST to route ri with its body and headers: 1 when the request is
 * left pending (answered later), 0 when answered. req is NULL for a
 * direct request (hb/conn.h). */
static int handle_post(hb_route_loop_t *l, struct evhttp_request *req, hb_conn_t *conn, uint64_t t0,
                       size_t ri, const unsigned char *body, size_t len, const hb_headers_t *h)
{
    hb_route_t *r = l->r;
    const route_ent_t *e = &r->routes[ri];
    const hb_route_cfg_t *rc = e->rc;
    char why[256], text[256];
    if (!atomic_load(&r->journal)) {
        refuse(TO(req, conn), ri, r, 503, "journal not open yet", NULL, t0);
        return 0;
    }
    if ((int64_t)len > rc->max_body) {
        snprintf(why, sizeof(why), "%zu bytes, limit %" PRId64, len, rc->max_body);
        refuse(TO(req, conn), ri, r, 413, "body too large", why, t0);
        return 0;
    }
    hb_delivery_t d;
    uint64_t now_ms = hb_now_ms(); /* the request's one wall-clock reading */
    hb_scheme_status_t st =
        hb_scheme_read(e->scheme, rc->verify ? loop_keyctx(l, ri) : NULL, rc->verify, h, body, len,
                       (int64_t)(now_ms / 1000), &d, why, sizeof(why));
    int pending = 0;
    switch (st) {
    case HB_SCHEME_UNAUTHORIZED:
        hb_metrics_verify_failure();
        json_safe(why, text, sizeof(text));
        refuse(TO(req, conn), ri, r, 401, text, NULL, t0);
        return 0;
    case HB_SCHEME_BAD_REQUEST:
        json_safe(why, text, sizeof(text));
        refuse(TO(req, conn), ri, r, 400, text, NULL, t0);
        return 0;
    case HB_SCHEME_HANDSHAKE:
        answer_handshake(TO(req, conn), ri, &d, t0);
        break;
    case HB_SCHEME_OK:
        pending = journal_delivery(l, req, conn, t0, ri, &d, body, len, now_ms);
        break;
    }
    hb_delivery_clear(&d);
    return pending;
}

static int handle_evhttp_post(hb_route_loop_t *l, struct evhttp_request *req, hb_conn_t *conn,
                              uint64_t t0, size_t ri)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const unsigned char *body = len ? evbuffer_pullup(in, -1) : (const unsigned char *)"";
    hb_headers_t h = {input_header, evhttp_request_get_input_headers(req)};
    return handle_post(l, req, conn, t0, ri, body, len, &h);
}

static const char *direct_header(void *arg, const char *name)
{
    return hb_conn_req_header(arg, name);
}

int hb_route_direct(void *arg, hb_conn_t *conn, const hb_conn_req_t *rq)
{
    hb_route_loop_t *l = arg;
    uint64_t t0 = hb_mono_us();
    hb_headers_t h = {direct_header, (void *)rq};
    const unsigned char *body = rq->body_len ? rq->body : (const unsigned char *)"";
    int pending = handle_post(l, NULL, conn, t0, rq->route, body, rq->body_len, &h);
    if (!pending)
        hb_conn_release(conn, rq->body_len);
    return pending;
}

/* The route serving path, or -1. The Intercom route is compared first. */
static ssize_t find_route(const hb_route_t *r, const char *path)
{
    for (size_t i = 0; i < r->n_routes; i++)
        if (strcmp(path, r->routes[i].rc->path) == 0)
            return (ssize_t)i;
    return -1;
}

/* A request the gate refused before its body (see hb/conn.h): its
 * stand-in carries "CODE error; detail", and the path of its route. */
static void answer_refusal(hb_route_loop_t *l, struct evhttp_request *req, hb_conn_t *conn,
                           const char *v, uint64_t t0)
{
    hb_conn_linger(conn, req); /* closes after the answer, without losing it */
    char error[160];
    const char *detail = NULL;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    ssize_t ri = path ? find_route(l->r, path) : -1;
    int code = (int)strtol(v, (char **)&v, 10);
    if (code < 400 || code > 599)
        code = 400;
    while (*v == ' ')
        v++;
    size_t n = strcspn(v, ";");
    snprintf(error, sizeof(error), "%.*s", (int)n, v);
    if (v[n] == ';')
        detail = v + n + 1 + (v[n + 1] == ' ');
    refuse(TO(req, conn), ri < 0 ? HB_METRICS_NO_ROUTE : (size_t)ri, l->r, code, error, detail, t0);
}

static int dispatch(hb_route_loop_t *l, struct evhttp_request *req, hb_conn_t *conn, uint64_t t0);

void hb_route_handle(struct evhttp_request *req, void *arg)
{
    hb_route_loop_t *l = arg;
    uint64_t t0 = hb_mono_us();
    hb_conn_t *conn = hb_conn_of(req); /* counts the request: the client is not stalling */
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const char *refusal = evhttp_find_header(in, HB_CONN_REFUSAL_HEADER);
    if (refusal) {
        answer_refusal(l, req, conn, refusal, t0);
        return;
    }
    /* After a chunked body the gate no longer frames the connection's
     * requests (evhttp does): close it after this answer, so nothing
     * pipelined behind it is read. */
    if (evhttp_find_header(in, "Transfer-Encoding"))
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
    size_t body_len = evbuffer_get_length(evhttp_request_get_input_buffer(req));
    /* a pending request gives its body back to the budget when answered */
    if (!dispatch(l, req, conn, t0) && conn)
        hb_conn_release(conn, body_len);
}

/* 1 when the request is left pending (answered later), 0 when answered. */
static int dispatch(hb_route_loop_t *l, struct evhttp_request *req, hb_conn_t *conn, uint64_t t0)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    ssize_t ri = path ? find_route(l->r, path) : -1;
    if (ri < 0) {
        if (HB_LOG_INFO >= hb_log_level && hb_log_allow(C, "404")) {
            char who[64];
            peer(TO(req, conn), who, sizeof(who));
            hb_info(C, "404 to %s: no route at %s", who, path ? path : "(bad uri)");
        }
        static const char notfound[] = "{\"error\":\"not found\"}\n";
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "application/json");
        evbuffer_add(evhttp_request_get_output_buffer(req), notfound, sizeof(notfound) - 1);
        send_answer(req, 404, "Not Found");
        hb_metrics_request(HB_METRICS_NO_ROUTE, 404, -1);
        return 0;
    }
    switch (evhttp_request_get_command(req)) {
    case EVHTTP_REQ_HEAD:
        /* Intercom's URL validation; any route's path answers it alike */
        send_answer(req, 200, "OK");
        hb_metrics_request((size_t)ri, 200, -1);
        return 0;
    case EVHTTP_REQ_POST:
        return handle_evhttp_post(l, req, conn, t0, (size_t)ri);
    default:
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST, HEAD");
        refuse(TO(req, conn), (size_t)ri, l->r, 405, "method not allowed", "use POST", t0);
        return 0;
    }
}

/* Route i's key set from its secrets; *ks NULL when it verifies without
 * one. -1 with the reason in err. */
static int route_keyset(const route_ent_t *e, hb_keyset_t **ks, char *err, size_t errlen)
{
    *ks = NULL;
    if (!e->rc->verify || !e->rc->secret[0])
        return 0;
    *ks = hb_scheme_keyset(e->scheme, e->rc->secret, err, errlen);
    return *ks ? 0 : -1;
}

hb_route_t *hb_route_new(const hb_config_t *cfg, hb_dedup_t *dedup, char *err, size_t errlen)
{
    _Static_assert(HB_CONFIG_MAX_ROUTES <= HB_METRICS_MAX_ROUTES, "a metrics label per route");
    hb_route_t *r = hb_calloc(1, sizeof(*r));
    const char *names[HB_CONFIG_MAX_ROUTES];
    r->cfg = cfg;
    r->dedup = dedup;
    r->stage = cfg->ack == HB_ACK_WRITTEN ? HB_STAGE_WRITTEN : HB_STAGE_DURABLE;
    r->routes = hb_calloc(cfg->n_routes ? cfg->n_routes : 1, sizeof(*r->routes));
    for (size_t i = 0; i < cfg->n_routes && i < HB_CONFIG_MAX_ROUTES; i++) {
        route_ent_t *e = &r->routes[i];
        char why[256];
        e->rc = &cfg->routes[i];
        pthread_mutex_init(&e->ks_lock, NULL);
        r->n_routes++;
        names[i] = e->rc->name;
        if (strcmp(e->rc->name, HB_RECORD_DEFAULT_ROUTE) != 0) {
            e->rec_route = e->rc->name;
            e->rec_route_len = strlen(e->rc->name);
        }
        e->scheme = hb_scheme_new(e->rc, why, sizeof(why));
        if (!e->scheme || route_keyset(e, &e->ks, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "route %s: %s", e->rc->name, why);
            hb_route_free(r);
            return NULL;
        }
    }
    hb_metrics_set_routes(names, r->n_routes);
    return r;
}

void hb_route_free(hb_route_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_routes; i++) {
        hb_keyset_unref(r->routes[i].ks);
        hb_scheme_free(r->routes[i].scheme);
        pthread_mutex_destroy(&r->routes[i].ks_lock);
    }
    free(r->routes);
    free(r);
}

void hb_route_set_dedup_shared(hb_route_t *r, hb_dedup_shared_t *s)
{
    r->shared = s;
}

void hb_route_set_journal(hb_route_t *r, hb_journal_t *j)
{
    if (r->cfg->ack == HB_ACK_PUBLISHED)
        for (size_t i = 0; i < r->n_loops; i++)
            hb_journal_on_published(j, journal_progress, r->loops[i]);
    atomic_store(&r->journal, j);
}

static void on_keys(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hb_route_loop_t *l = arg;
    for (size_t i = 0; i < l->r->n_routes; i++)
        if (l->kc[i])
            loop_keyctx(l, i);
}

ssize_t hb_route_set_secrets(hb_route_t *r, const hb_route_cfg_t *fresh, char *err, size_t errlen)
{
    route_ent_t *e = NULL;
    for (size_t i = 0; i < r->n_routes && !e; i++)
        if (strcmp(r->routes[i].rc->name, fresh->name) == 0)
            e = &r->routes[i];
    if (!e) {
        snprintf(err, errlen, "a new route: it is served after a restart");
        return -1;
    }
    if (!e->rc->verify)
        return 0;
    hb_keyset_t *ks = NULL;
    if (fresh->secret[0] && !(ks = hb_scheme_keyset(e->scheme, fresh->secret, err, errlen)))
        return -1;
    if (!ks && hb_scheme_needs_secret(e->scheme)) {
        snprintf(err, errlen, "no secret");
        return -1;
    }
    size_t n = hb_keyset_count(ks);
    pthread_mutex_lock(&e->ks_lock);
    hb_keyset_t *old = e->ks;
    e->ks = ks;
    atomic_fetch_add_explicit(&e->ks_gen, 1, memory_order_release);
    pthread_mutex_unlock(&e->ks_lock);
    hb_keyset_unref(old);
    /* each loop drops its contexts of the old secrets now, not at its next
     * request: a revoked secret should not linger in an idle thread */
    for (size_t i = 0; i < r->n_loops; i++)
        event_active(r->loops[i]->keys_ev, EV_READ, 0);
    return (ssize_t)n;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hb_route_loop_t *l = arg;
    if (l->wait_head || l->rep_head)
        answer_published(l);
}

hb_route_loop_t *hb_route_loop_new(hb_route_t *r, struct event_base *base)
{
    hb_route_loop_t *l = hb_calloc(1, sizeof(*l));
    l->r = r;
    l->base = base;
    l->kc = hb_calloc(r->n_routes ? r->n_routes : 1, sizeof(*l->kc));
    l->ks_gen = hb_calloc(r->n_routes ? r->n_routes : 1, sizeof(*l->ks_gen));
    pthread_mutex_init(&l->lock, NULL);
    l->done_ev = event_new(base, -1, 0, on_done, l);
    l->progress_ev = event_new(base, -1, 0, on_progress_ev, l);
    /* ack = published: time out waiting requests even when nothing moves */
    l->tick_ev = event_new(base, -1, EV_PERSIST, on_tick, l);
    l->keys_ev = event_new(base, -1, 0, on_keys, l);
    if (!l->done_ev || !l->progress_ev || !l->tick_ev || !l->keys_ev)
        hb_oom("event_new");
    /* ahead of the connections' reads where the base has priorities (an
     * HTTP worker's: see server.c): the answers these two wake-ups queue
     * (written at the same priority, see conn.c's out_cb) end round trips,
     * a read starts one */
    event_priority_set(l->done_ev, 0);
    event_priority_set(l->progress_ev, 0);
    if (r->cfg->ack == HB_ACK_PUBLISHED) {
        struct timeval tv = {0, 250000};
        event_add(l->tick_ev, &tv);
    }
    if (r->n_loops < sizeof(r->loops) / sizeof(r->loops[0]))
        r->loops[r->n_loops++] = l;
    l->shared = hb_dedup_shared_loop_new(r->shared, base);
    return l;
}

void hb_route_loop_free(hb_route_loop_t *l)
{
    if (!l)
        return;
    /* Requests still here were never answered (shutdown past its grace);
     * evhttp has freed their connections, so only our part is released. */
    hb_dedup_shared_loop_free(l->shared); /* its waiting requests are CANCELLED */
    pending_t *lists[] = {l->done_head, l->wait_head, l->rep_head};
    for (pending_t **li = lists; li < lists + 3; li++) {
        for (pending_t *p = *li, *next; p; p = next) {
            next = p->next;
            if (p->conn) {
                hb_conn_release(p->conn, p->body_len);
                hb_conn_done(p->conn);
            }
            free(p);
        }
    }
    for (pending_t *p = l->pool, *next; p; p = next) {
        next = p->next;
        free(p);
    }
    event_free(l->done_ev);
    event_free(l->progress_ev);
    event_free(l->tick_ev);
    event_free(l->keys_ev);
    for (size_t i = 0; i < l->r->n_routes; i++)
        hb_keyctx_free(l->kc[i]);
    free(l->kc);
    free(l->ks_gen);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

size_t hb_route_loop_pending(const hb_route_loop_t *l)
{
    return atomic_load(&((hb_route_loop_t *)l)->pending);
}
