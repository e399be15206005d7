/* Request handling for the webhook endpoint. See include/hb/route.h.
 *
 * Order of checks for a POST, cheapest and least revealing first: path,
 * method, journal state, body size, signature (before parsing, so that an
 * unauthenticated client cannot make us parse anything), envelope, room in
 * the journal. Only then is the record prepared (CRC computed here, on the
 * HTTP thread, in parallel) and queued for the writer.
 *
 * An accepted request is owned by one pending_t until it is answered; the
 * writer thread hands it back through the loop's queue, never answering
 * on the writer thread itself. */
#include "hb/fmacros.h"

#include "hb/route.h"
#include "hb/conn.h"
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

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#define C "http"
#define PUBLISHED_WAIT_MS 4000 /* below Intercom's 5 s answer deadline */

struct hb_route {
    const hb_config_t *cfg;
    const hb_verifier_ops_t *verifier;
    /* The key set: swapped under ks_lock on SIGHUP, with ks_gen bumped. A
     * loop reads ks_gen (one atomic load) per request and takes the lock
     * only when it changed, to build its own key context. */
    pthread_mutex_t ks_lock;
    hb_keyset_t *ks;
    atomic_uint ks_gen;
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
    size_t id_off, id_len; /* notification id inside a.buf; id_len 0 = none */
    int repeat;            /* a repeated id waiting for its first record (a.seq) */
} pending_t;

struct hb_route_loop {
    hb_route_t *r;
    struct event_base *base;
    struct event *done_ev, *progress_ev, *tick_ev, *keys_ev;
    pthread_mutex_t lock; /* done queue: writer thread -> this loop */
    pending_t *done_head, *done_tail;
    pending_t *wait_head, *wait_tail; /* ack = published, in seq order */
    pending_t *rep_head, *rep_tail;   /* repeats waiting, in deadline order */
    atomic_size_t pending;
    hb_keyctx_t *kc; /* this thread's HMAC contexts for the key set ks_gen */
    unsigned ks_gen;
    hb_dedup_shared_loop_t *shared; /* this thread's connection to the shared store */
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void peer(struct evhttp_request *req, char *buf, size_t len)
{
    char *addr = NULL;
    ev_uint16_t port = 0;
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    if (conn)
        evhttp_connection_get_peer(conn, &addr, &port);
    snprintf(buf, len, "%s:%u", addr ? addr : "?", (unsigned)port);
}

/* Send the answer queued in req's output buffer. When the client is still
 * there, the status line and headers (one evbuffer chain) and the body
 * (another) are joined into one chain before the write: bufferevent_openssl
 * makes one SSL_write, so one TLS record and one write(2), per chain. */
static void send_answer(struct evhttp_request *req, int code, const char *reason)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    evhttp_send_reply(req, code, reason, NULL);
    struct evbuffer *out = bev ? bufferevent_get_output(bev) : NULL;
    if (out && evbuffer_get_length(out) <= 4096)
        evbuffer_pullup(out, -1);
}

/* Answer with a short JSON body. `field` is "status" or "error". The body
 * goes straight into the request's own output buffer: nothing is allocated
 * per answer beyond what evhttp allocates anyway. */
static void reply(struct evhttp_request *req, int code, const char *field, const char *text,
                  uint64_t t0_us)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    if (evhttp_request_get_command(req) != EVHTTP_REQ_HEAD && field) {
        char body[320];
        int n = snprintf(body, sizeof(body), "{\"%s\":\"%s\"}\n", field, text);
        evhttp_add_header(h, "Content-Type", "application/json");
        evbuffer_add(evhttp_request_get_output_buffer(req), body,
                     n > 0 && (size_t)n < sizeof(body) ? (size_t)n : 0);
    }
    if (code == 503)
        evhttp_add_header(h, "Retry-After", "5");
    const char *reason = code == 200   ? "OK"
                         : code == 400 ? "Bad Request"
                         : code == 401 ? "Unauthorized"
                         : code == 403 ? "Forbidden"
                         : code == 404 ? "Not Found"
                         : code == 405 ? "Method Not Allowed"
                         : code == 413 ? "Payload Too Large"
                         : code == 431 ? "Request Header Fields Too Large"
                         : code == 503 ? "Service Unavailable"
                                       : "Error";
    send_answer(req, code, reason);
    hb_metrics_request(HB_EP_INTERCOM, code, (double)(now_us() - t0_us) / 1e6);
}

static void refuse(struct evhttp_request *req, int code, const char *error, const char *detail,
                   uint64_t t0_us)
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
        peer(req, who, sizeof(who));
        hb_warn(C, "%d to %s: %s%s%s", code, who, error, detail ? ": " : "", detail ? detail : "");
    }
    reply(req, code, "error", error, t0_us);
}

static void answer_pending(hb_route_loop_t *l, pending_t *p, int code, const char *field,
                           const char *text)
{
    if (code == 200)
        reply(p->req, code, field, text, p->t0_us);
    else
        refuse(p->req, code, text, NULL, p->t0_us);
    atomic_fetch_sub(&l->pending, 1);
    if (p->conn) {
        hb_conn_release(p->conn, p->body_len);
        hb_conn_done(p->conn);
    }
    free(p);
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
    while (p) {
        pending_t *next = p->next;
        p->next = NULL;
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
        if (p->id_len && l->shared)
            hb_dedup_shared_claim(l->shared, "intercom", (const char *)p->a.buf + p->id_off,
                                  p->id_len);
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

/* This thread's key context, rebuilt when SIGHUP swapped the key set. */
static hb_keyctx_t *loop_keyctx(hb_route_loop_t *l)
{
    hb_route_t *r = l->r;
    if (l->kc && atomic_load_explicit(&r->ks_gen, memory_order_acquire) == l->ks_gen)
        return l->kc;
    pthread_mutex_lock(&r->ks_lock);
    hb_keyset_t *ks = hb_keyset_ref(r->ks);
    l->ks_gen = atomic_load(&r->ks_gen);
    pthread_mutex_unlock(&r->ks_lock);
    hb_keyctx_free(l->kc);
    l->kc = hb_keyctx_new(r->verifier, ks);
    hb_keyset_unref(ks);
    return l->kc;
}

/* ack = published: a repeat of an id whose record is durable but not yet
 * published waits for that record like the original did (200 duplicate
 * once it is published, 503 after the same wait), rather than being
 * journaled and published a second time. */
static void wait_for_first(hb_route_loop_t *l, struct evhttp_request *req, hb_conn_t *conn,
                           uint64_t t0, uint64_t seq, size_t body_len)
{
    pending_t *p = hb_calloc(1, sizeof(*p));
    p->a.seq = seq;
    p->body_len = body_len;
    p->repeat = 1;
    p->loop = l;
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
        peer(p->req, who, sizeof(who));
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
        free(p);
    }
}

/* 1 when the request is left pending (answered later), 0 when answered. */
static int handle_post(hb_route_loop_t *l, struct evhttp_request *req, hb_conn_t *conn, uint64_t t0)
{
    hb_route_t *r = l->r;
    const hb_config_t *cfg = r->cfg;
    hb_journal_t *j = atomic_load(&r->journal);
    char why[256];
    if (!j) {
        refuse(req, 503, "journal not open yet", NULL, t0);
        return 0;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if ((int64_t)len > cfg->max_body) {
        snprintf(why, sizeof(why), "%zu bytes, limit %" PRId64, len, cfg->max_body);
        refuse(req, 413, "body too large", why, t0);
        return 0;
    }
    const unsigned char *body = len ? evbuffer_pullup(in, -1) : (const unsigned char *)"";
    if (cfg->intercom_verify) {
        const char *sig =
            evhttp_find_header(evhttp_request_get_input_headers(req), r->verifier->header);
        hb_verify_result_t v = r->verifier->verify(loop_keyctx(l), sig, body, len);
        if (v != HB_VERIFY_OK) {
            hb_metrics_verify_failure();
            refuse(req, 401, hb_verify_result_str(v), r->verifier->header, t0);
            return 0;
        }
    }
    hb_envelope_t env;
    if (hb_envelope_parse((const char *)body, len, &env, why, sizeof(why)) < 0) {
        refuse(req, 400, "body is not a JSON object with a string topic", why, t0);
        return 0;
    }
    uint64_t first_seq = 0;
    if (env.id && r->dedup &&
        hb_dedup_seen(r->dedup, env.id, strlen(env.id), hb_now_ms(), &first_seq)) {
        char who[64];
        peer(req, who, sizeof(who));
        if (cfg->ack == HB_ACK_PUBLISHED && first_seq > hb_journal_min_cursor(j)) {
            hb_info(C,
                    "notification %s from %s already received, not yet published: waiting "
                    "for that record",
                    env.id, who);
            hb_envelope_clear(&env);
            wait_for_first(l, req, conn, t0, first_seq, len);
            return 1;
        }
        hb_info(C,
                "200 to %s: notification %s already received within dedup.window; not "
                "published again",
                who, env.id);
        hb_metrics_duplicate();
        hb_envelope_clear(&env);
        reply(req, 200, "status", "duplicate", t0);
        return 0;
    }
    /* A failing disk is not refused here: each append finds out for itself
     * (503 if it cannot be made durable), so acceptance resumes by itself
     * as soon as a write succeeds again. */
    if (hb_journal_full(j)) {
        hb_envelope_clear(&env);
        refuse(req, 503, "journal full", NULL, t0);
        return 0;
    }
    hb_record_t rec = {
        .received_at_ms = hb_now_ms(),
        .delivery_attempts = env.delivery_attempts,
        .created_at = env.created_at,
        .topic = env.topic,
        .topic_len = strlen(env.topic),
        .app_id = env.app_id,
        .app_id_len = env.app_id ? strlen(env.app_id) : 0,
        .id = env.id,
        .id_len = env.id ? strlen(env.id) : 0,
        .body = body,
        .body_len = len,
    };
    if (rec.app_id_len > 0xffff || rec.id_len > 0xffff) {
        hb_envelope_clear(&env);
        refuse(req, 400, "app_id or id longer than 65535 bytes", NULL, t0);
        return 0;
    }
    size_t size = hb_record_size(&rec);
    pending_t *p = hb_malloc(sizeof(*p) + size);
    memset(p, 0, sizeof(*p));
    p->a.buf = (unsigned char *)(p + 1);
    p->a.len = hb_record_prepare(&rec, p->a.buf);
    p->a.stage = r->stage;
    p->a.done = on_appended;
    p->loop = l;
    p->req = req;
    p->conn = conn;
    if (p->conn)
        hb_conn_busy(p->conn);
    p->t0_us = t0;
    p->body_len = len;
    p->received_at_ms = rec.received_at_ms;
    if (rec.id) {
        p->id_off = HB_RECORD_HEADER + HB_RECORD_FIXED + rec.topic_len + rec.app_id_len;
        p->id_len = rec.id_len;
    }
    hb_envelope_clear(&env);
    atomic_fetch_add(&l->pending, 1);
    if (p->id_len && l->shared &&
        hb_dedup_shared_check(l->shared, "intercom", (const char *)p->a.buf + p->id_off, p->id_len,
                              on_shared_checked, p) == 0)
        return 1; /* journaled by on_shared_checked unless another replica has it */
    hb_journal_append(j, &p->a);
    return 1;
}

/* A request the gate refused before its body (see hb/conn.h): its
 * stand-in carries "CODE error; detail". */
static void answer_refusal(struct evhttp_request *req, const char *v, uint64_t t0)
{
    char error[160];
    const char *detail = NULL;
    int code = (int)strtol(v, (char **)&v, 10);
    if (code < 400 || code > 599)
        code = 400;
    while (*v == ' ')
        v++;
    size_t n = strcspn(v, ";");
    snprintf(error, sizeof(error), "%.*s", (int)n, v);
    if (v[n] == ';')
        detail = v + n + 1 + (v[n + 1] == ' ');
    refuse(req, code, error, detail, t0);
}

static int dispatch(hb_route_loop_t *l, struct evhttp_request *req, hb_conn_t *conn, uint64_t t0);

void hb_route_handle(struct evhttp_request *req, void *arg)
{
    hb_route_loop_t *l = arg;
    uint64_t t0 = now_us();
    hb_conn_t *conn = hb_conn_of(req); /* counts the request: the client is not stalling */
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const char *refusal = evhttp_find_header(in, HB_CONN_REFUSAL_HEADER);
    if (refusal) {
        answer_refusal(req, refusal, t0); /* the stand-in asked to close */
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
    const hb_config_t *cfg = l->r->cfg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path || strcmp(path, cfg->intercom_path) != 0) {
        if (HB_LOG_INFO >= hb_log_level && hb_log_allow(C, "404")) {
            char who[64];
            peer(req, who, sizeof(who));
            hb_info(C, "404 to %s: no endpoint at %s", who, path ? path : "(bad uri)");
        }
        static const char notfound[] = "{\"error\":\"not found\"}\n";
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "application/json");
        evbuffer_add(evhttp_request_get_output_buffer(req), notfound, sizeof(notfound) - 1);
        send_answer(req, 404, "Not Found");
        hb_metrics_request(HB_EP_OTHER, 404, -1);
        return 0;
    }
    switch (evhttp_request_get_command(req)) {
    case EVHTTP_REQ_HEAD:
        /* Intercom's URL validation */
        send_answer(req, 200, "OK");
        hb_metrics_request(HB_EP_INTERCOM, 200, -1);
        return 0;
    case EVHTTP_REQ_POST:
        return handle_post(l, req, conn, t0);
    default:
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST, HEAD");
        refuse(req, 405, "method not allowed", "use POST", t0);
        return 0;
    }
}

hb_route_t *hb_route_new(const hb_config_t *cfg, hb_keyset_t *ks, hb_dedup_t *dedup)
{
    hb_route_t *r = hb_calloc(1, sizeof(*r));
    r->cfg = cfg;
    r->dedup = dedup;
    r->verifier = &hb_verifier_intercom;
    r->ks = ks;
    r->stage = cfg->ack == HB_ACK_WRITTEN ? HB_STAGE_WRITTEN : HB_STAGE_DURABLE;
    pthread_mutex_init(&r->ks_lock, NULL);
    return r;
}

void hb_route_free(hb_route_t *r)
{
    if (!r)
        return;
    hb_keyset_unref(r->ks);
    pthread_mutex_destroy(&r->ks_lock);
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
    loop_keyctx(arg);
}

void hb_route_set_keyset(hb_route_t *r, hb_keyset_t *ks)
{
    pthread_mutex_lock(&r->ks_lock);
    hb_keyset_t *old = r->ks;
    r->ks = ks;
    atomic_fetch_add_explicit(&r->ks_gen, 1, memory_order_release);
    pthread_mutex_unlock(&r->ks_lock);
    hb_keyset_unref(old);
    /* each loop drops its contexts of the old secrets now, not at its next
     * request: a revoked secret should not linger in an idle thread */
    for (size_t i = 0; i < r->n_loops; i++)
        event_active(r->loops[i]->keys_ev, EV_READ, 0);
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
    pthread_mutex_init(&l->lock, NULL);
    l->done_ev = event_new(base, -1, 0, on_done, l);
    l->progress_ev = event_new(base, -1, 0, on_progress_ev, l);
    /* ack = published: time out waiting requests even when nothing moves */
    l->tick_ev = event_new(base, -1, EV_PERSIST, on_tick, l);
    l->keys_ev = event_new(base, -1, 0, on_keys, l);
    if (!l->done_ev || !l->progress_ev || !l->tick_ev || !l->keys_ev)
        hb_oom("event_new");
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
    event_free(l->done_ev);
    event_free(l->progress_ev);
    event_free(l->tick_ev);
    event_free(l->keys_ev);
    hb_keyctx_free(l->kc);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

size_t hb_route_loop_pending(const hb_route_loop_t *l)
{
    return atomic_load(&((hb_route_loop_t *)l)->pending);
}
