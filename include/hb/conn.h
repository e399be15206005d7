/* One accepted HTTPS connection, as the listener and the request handler
 * both see it: the slow-client deadline and the count of requests being
 * answered asynchronously.
 *
 * server.c creates it for each accepted socket (and learns through the
 * `closed` callback when the connection is gone, for its connection cap);
 * route.c finds it from a request and holds it while an answer is pending.
 * It depends on neither, so both point down at it.
 *
 * Ownership: the connection's SSL object holds one reference (released
 * when OpenSSL frees the SSL, which evhttp does when the connection closes:
 * an ex_data free callback is the only close hook evhttp 2.1 offers), and
 * each request being answered holds another, so an answer that arrives
 * after the client left never touches freed memory. Everything runs on the
 * worker thread that accepted the connection. */
#ifndef HB_CONN_H
#define HB_CONN_H

#include <stdint.h>

#include <openssl/ssl.h>

struct bufferevent;
struct evhttp_request;

typedef struct hb_conn hb_conn_t;

/* Hang a new connection on ssl (before the bufferevent exists). `closed`
 * is called once, on the worker thread, when the SSL is freed. */
hb_conn_t *hb_conn_new(SSL *ssl, int64_t read_timeout_ms, void (*closed)(void *arg), void *arg);
/* The connection is up on bev: start its slow-client deadline. */
void hb_conn_start(hb_conn_t *c, struct bufferevent *bev);

/* The connection a request came on (NULL if unknown); counts the request
 * for the slow-client deadline. While a request is being answered
 * asynchronously, hold the connection with hb_conn_busy and release it with
 * hb_conn_done (even if the client has gone meanwhile). */
hb_conn_t *hb_conn_of(struct evhttp_request *req);
void hb_conn_busy(hb_conn_t *c);
void hb_conn_done(hb_conn_t *c);

#endif
