/* Connections on the HTTPS listener. See include/hb/conn.h.
 *
 * The slow-client deadline: evhttp's own timeout only fires when a client
 * sends nothing for limits.read_timeout_ms, so a client trickling a byte at
 * a time (slowloris) would hold its connection for ever. Here a connection
 * that completes no request within each period, while none of its requests
 * is being answered, is shut down. */
#include "hb/fmacros.h"

#include "hb/conn.h"
#include "hb/log.h"
#include "hb/util.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>

#define C "server"

struct hb_conn {
    struct bufferevent *bev; /* NULL until started and once the connection is gone */
    struct event *deadline;
    int64_t timeout_ms;
    unsigned requests, seen; /* requests read in full; value at the last tick */
    int busy;                /* requests being answered */
    int refs;
    void (*closed)(void *arg);
    void *closed_arg;
};

static int conn_ex_index = -1;
static pthread_once_t conn_ex_once = PTHREAD_ONCE_INIT;

static void conn_unref(hb_conn_t *c)
{
    if (--c->refs > 0)
        return;
    if (c->deadline)
        event_free(c->deadline);
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
    if (c->busy || c->requests != c->seen) {
        c->seen = c->requests;
        arm_deadline(c);
        return;
    }
    evutil_socket_t sfd = bufferevent_getfd(c->bev);
    if (sfd >= 0) {
        hb_info(C,
                "closing a connection that completed no request in %lld ms (slow or idle "
                "client)",
                (long long)c->timeout_ms);
        shutdown(sfd, SHUT_RDWR); /* evhttp sees the end and frees it */
    }
}

static void conn_freed(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    hb_conn_t *c = ptr;
    if (!c)
        return;
    c->bev = NULL;
    if (c->deadline)
        event_del(c->deadline);
    void (*closed)(void *) = c->closed;
    void *arg = c->closed_arg;
    conn_unref(c);
    closed(arg);
}

static void conn_ex_init(void)
{
    conn_ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, conn_freed);
}

hb_conn_t *hb_conn_new(SSL *ssl, int64_t read_timeout_ms, void (*closed)(void *arg), void *arg)
{
    pthread_once(&conn_ex_once, conn_ex_init);
    hb_conn_t *c = hb_calloc(1, sizeof(*c));
    c->timeout_ms = read_timeout_ms;
    c->refs = 1;
    c->closed = closed;
    c->closed_arg = arg;
    SSL_set_ex_data(ssl, conn_ex_index, c);
    return c;
}

void hb_conn_start(hb_conn_t *c, struct bufferevent *bev)
{
    c->bev = bev;
    c->deadline = evtimer_new(bufferevent_get_base(bev), on_deadline, c);
    if (!c->deadline)
        hb_oom("evtimer_new");
    arm_deadline(c);
}

hb_conn_t *hb_conn_of(struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
    hb_conn_t *c = ssl ? SSL_get_ex_data(ssl, conn_ex_index) : NULL;
    if (c)
        c->requests++;
    return c;
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
