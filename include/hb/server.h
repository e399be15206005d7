/* The HTTPS listener: one listening socket shared by `workers` event-loop
 * threads, each with its own event_base, evhttp and route loop, so that
 * throughput scales per core with no lock on the request path.
 *
 * hb_server_new binds (so a port in use fails start-up at once) and
 * hb_server_start runs the threads. hb_server_stop stops accepting,
 * answers what is in flight (bounded by grace_ms) and joins the threads;
 * hb_server_free comes after the journal is closed. Main thread only. */
#ifndef HB_SERVER_H
#define HB_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "hb/allowlist.h"
#include "hb/config.h"
#include "hb/route.h"
#include "hb/tls.h"

typedef struct hb_server hb_server_t;

hb_server_t *hb_server_new(const hb_config_t *cfg, hb_tls_t *tls, hb_route_t *route, char *err,
                           size_t errlen);
int hb_server_start(hb_server_t *s, char *err, size_t errlen);
void hb_server_stop(hb_server_t *s, uint64_t grace_ms);
void hb_server_free(hb_server_t *s);
/* Swap intercom.allow_ips (takes ownership; NULL = every source); for
 * connections accepted from now on. Any thread. */
void hb_server_set_allowlist(hb_server_t *s, hb_allowlist_t *al);

/* Parse "host:port" ("[v6]:port" too) into a sockaddr; 0 or -1. */
struct sockaddr_storage;
int hb_parse_listen(const char *spec, struct sockaddr_storage *ss, int *sslen);

#endif
