/* Requests on the HTTPS listener: which route (an exact path), method,
 * the route's limits, its signature scheme (hb/scheme.h), the journal
 * append, and every answer with its status code, JSON body and log line
 * naming the route.
 *
 * hb_route_t holds every route of the configuration and is shared by all
 * HTTP threads (read-mostly: each route's key set is swapped on SIGHUP, the
 * journal pointer is set once when it is open). hb_route_loop_t is one per
 * HTTP thread and lives on that thread's event_base: it receives journal
 * completions from the writer thread and answers them on its own thread,
 * and keeps that thread's key context per route for the current key sets
 * (rebuilt after a swap; no lock per request). */
#ifndef HB_ROUTE_H
#define HB_ROUTE_H

#include <stddef.h>
#include <sys/types.h>

#include "hb/config.h"
#include "hb/conn.h"
#include "hb/journal.h"
#include "hb/verify.h"

struct event_base;
struct evhttp_request;

typedef struct hb_route hb_route_t;
typedef struct hb_route_loop hb_route_loop_t;

/* Every route of cfg (finished: cfg->routes), each with its scheme and
 * key set; NULL with the reason in err. cfg and dedup (NULL when dedup =
 * off) must outlive the route. Names the routes' metrics labels. */
struct hb_dedup;
hb_route_t *hb_route_new(const hb_config_t *cfg, struct hb_dedup *dedup, char *err, size_t errlen);
void hb_route_free(hb_route_t *r);
/* dedup.store = redis: the shared store (NULL: none), before any loop is
 * created; each loop makes its own connection. s must outlive the loops. */
struct hb_dedup_shared;
void hb_route_set_dedup_shared(hb_route_t *r, struct hb_dedup_shared *s);
/* Until set, POSTs are answered 503 (journal not open yet). Create every
 * loop first. Loops must be freed only after the journal is closed (its
 * progress callbacks point at them). */
void hb_route_set_journal(hb_route_t *r, hb_journal_t *j);
/* SIGHUP: swap the secrets of the route named fresh->name for fresh's
 * (fresh->secret resolved); requests in flight finish with the set they
 * started with, and each loop drops its contexts of the old set at once.
 * Returns how many secrets the route has now, or -1 with the reason in err
 * (the old set is kept). Any thread, after the loops are created. */
ssize_t hb_route_set_secrets(hb_route_t *r, const hb_route_cfg_t *fresh, char *err, size_t errlen);

hb_route_loop_t *hb_route_loop_new(hb_route_t *r, struct event_base *base);
void hb_route_loop_free(hb_route_loop_t *l);
/* The evhttp general callback; arg is the hb_route_loop_t. */
void hb_route_handle(struct evhttp_request *req, void *arg);
/* The direct handler of a connection (hb/conn.h); arg is the
 * hb_route_loop_t of the connection's thread. */
int hb_route_direct(void *arg, hb_conn_t *conn, const hb_conn_req_t *rq);
/* Requests accepted but not answered yet (waiting for the journal). */
size_t hb_route_loop_pending(const hb_route_loop_t *l);

#endif
