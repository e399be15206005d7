/* One accepted HTTPS connection, as the listener and the request handler
 * both see it: the gate that reads each request head before evhttp does,
 * the slow-client deadline and the count of requests being answered
 * asynchronously.
 *
 * The gate. evhttp 2.1 reads a whole request body before our callback runs
 * and gives no hook between the head and the body, so the checks that must
 * come first are made here, on the bytes as they arrive: the connection's
 * input buffer is watched, and evhttp only ever sees a request head once the
 * gate has read all of it and let it through. A head is refused when
 *   - it is for the Intercom route (or a path of no route) and its source
 *     is outside intercom.allow_ips (403),
 *   - it is larger than HB_CONN_HEAD_MAX bytes or has more than
 *     HB_CONN_HEAD_LINES lines (431),
 *   - its framing is ambiguous: several Content-Length headers, both
 *     Content-Length and Transfer-Encoding, a Transfer-Encoding other than
 *     chunked, a folded or malformed header line (400: the raw material of
 *     request smuggling behind a proxy),
 *   - its Content-Length is over its route's max_body (413; a path of no
 *     route: limits.max_body),
 *   - its body would not fit in limits.max_inflight_bytes (503).
 * A refused head never reaches evhttp: the gate hands it a stand-in request
 * that carries HB_CONN_REFUSAL_HEADER (which no client may send), and drops
 * every later byte of the connection, so the route answers it in order,
 * with its JSON body and its one log line, and the connection closes after
 * a lingering drain (hb_conn_linger); no byte of the refused body is kept.
 *
 * The body budget (hb_edge_t, shared by every connection of the listener):
 * a head's Content-Length is reserved from it before its body is read, and
 * released when the route is done with the request (hb_conn_release) or
 * when the connection closes. Bodies over HB_EDGE_SMALL_BODY may use only
 * three quarters of it, so that many large bodies sent slowly cannot starve
 * ordinary small deliveries.
 *
 * Direct requests. The common delivery, an HTTP/1.1 POST to a route's
 * path framed by Content-Length, with no Connection, Expect or
 * Transfer-Encoding header, whose body arrived with its head, on a
 * connection where evhttp has no request of its own in progress, is not
 * handed to evhttp at all: the gate passes it to the connection's direct
 * handler (hb_conn_set_direct) and writes the handler's answer itself
 * (hb_conn_answer). evhttp's request object, header lists and answer
 * formatting cost about a fifth of the HTTP thread per request; every
 * other request (HEAD, refusals, chunked bodies, bodies still arriving)
 * takes the evhttp way as before. Answers stay in request order: while a
 * direct request waits for its answer, the connection reads nothing more,
 * and while any answer is being made or written, the heads pipelined
 * behind it wait in the gate; evhttp is handed one request at a time.
 *
 * Ownership: the connection's SSL object holds one reference (released
 * when OpenSSL frees the SSL, which evhttp does when the connection closes:
 * an ex_data free callback is the only close hook evhttp 2.1 offers), and
 * each request being answered holds another, so an answer that arrives
 * after the client left never touches freed memory. A connection without
 * SSL (the fuzz target) is closed by its owner with hb_conn_closed.
 * Everything runs on the worker thread that accepted the connection, except
 * the hb_edge_t functions, which any thread may call. */
#ifndef HB_CONN_H
#define HB_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "hb/allowlist.h"

struct bufferevent;
struct evhttp_request;

#define HB_CONN_HEAD_MAX 16384 /* request line + headers + the empty line */
#define HB_CONN_HEAD_LINES 128
#define HB_CONN_REFUSAL_HEADER "X-Hookbridge-Refusal" /* "CODE error; detail" */
#define HB_EDGE_SMALL_BODY 65536
#define HB_CONN_LINGER_MS 5000 /* a refused connection drains at most this long */
/* Bytes a connection may have waiting (read but not yet judged or taken by
 * evhttp, answers not yet written) before it stops reading its socket until
 * the client takes its answers (src/conn.c, "Backpressure"). */
#define HB_CONN_WAITING_MAX (4 * HB_CONN_HEAD_MAX)

typedef struct hb_edge hb_edge_t;
typedef struct hb_conn hb_conn_t;

/* max_body: larger Content-Length is refused; chunked_hold: what a chunked
 * body may grow to (evhttp's own limit), reserved for it; budget: bytes of
 * bodies held at once; al: the allowlist or NULL (takes ownership). */
hb_edge_t *hb_edge_new(int64_t max_body, int64_t chunked_hold, int64_t budget, hb_allowlist_t *al);
/* The routes' paths as the gate matches them (exact, before any '?'):
 * each with its body limit, and whether intercom.allow_ips applies. */
typedef struct hb_edge_path {
    const char *path; /* must outlive the edge */
    int64_t max_body;
    int allowlisted;
} hb_edge_path_t;
/* Set once, before the first connection (the array is copied). */
void hb_edge_set_paths(hb_edge_t *e, const hb_edge_path_t *paths, size_t n);
/* Swap the allowlist (takes ownership; NULL = every source); new
 * connections are checked against the new one. Any thread. */
void hb_edge_set_allowlist(hb_edge_t *e, hb_allowlist_t *al);
/* Body bytes reserved right now, all connections together. */
int64_t hb_edge_inflight(const hb_edge_t *e);
void hb_edge_free(hb_edge_t *e); /* after every connection is gone */

/* Hang a new connection on ssl (before the bufferevent exists; NULL for a
 * plain connection, which its owner closes with hb_conn_closed). `closed`
 * is called once, on the worker thread, when the connection is gone. */
hb_conn_t *hb_conn_new(hb_edge_t *edge, SSL *ssl, int64_t read_timeout_ms,
                       void (*closed)(void *arg), void *arg);
/* The connection is up on bev: start its gate and slow-client deadline. */
void hb_conn_start(hb_conn_t *c, struct bufferevent *bev);
/* A plain connection (no SSL) is gone: what its SSL's free would do. */
void hb_conn_closed(hb_conn_t *c);

/* The connection a request came on (NULL if unknown); counts the request
 * for the slow-client deadline. While a request is being answered
 * asynchronously, hold the connection with hb_conn_busy and release it with
 * hb_conn_done (even if the client has gone meanwhile). */
/* A direct request, valid during the handler's call only: its route (the
 * index of its path in hb_edge_set_paths' list), its body and its header
 * lines, trimmed and NUL-terminated. */
typedef struct hb_conn_req {
    size_t route;
    const unsigned char *body;
    size_t body_len;
    size_t n_headers;
    struct {
        const char *name, *value;
    } headers[HB_CONN_HEAD_LINES];
} hb_conn_req_t;
/* The first header of that name (any case), as evhttp_find_header finds it. */
const char *hb_conn_req_header(const hb_conn_req_t *r, const char *name);
/* Returns 1 when the request is left pending (answered later with
 * hb_conn_answer), 0 when it was answered during the call. Either way the
 * handler gives the body back to the budget (hb_conn_release). */
typedef int (*hb_conn_direct_fn)(void *arg, hb_conn_t *c, const hb_conn_req_t *r);
void hb_conn_set_direct(hb_conn_t *c, hb_conn_direct_fn fn, void *arg);
/* The answer to the connection's direct request: the status line and
 * headers, then the body. Dropped if the client has gone. */
void hb_conn_answer(hb_conn_t *c, const char *head, size_t head_len, const void *body,
                    size_t body_len);
/* "address:port" of the client, for log lines. */
void hb_conn_peer(const hb_conn_t *c, char *buf, size_t len);

hb_conn_t *hb_conn_of(struct evhttp_request *req);
void hb_conn_busy(hb_conn_t *c);
void hb_conn_done(hb_conn_t *c);
/* The route is done with a request whose body was body_len bytes: give
 * them back to the budget. */
void hb_conn_release(hb_conn_t *c, size_t body_len);
/* Answer req, a refusal, with "Connection: close", and then close the
 * connection without losing the answer: our side is shut once it is
 * written, and the rest of what the client sends is read and dropped
 * until it closes, or for at most HB_CONN_LINGER_MS (lingering close).
 * Call before answering. c may be NULL (the answer then just closes). */
void hb_conn_linger(hb_conn_t *c, struct evhttp_request *req);

#endif
