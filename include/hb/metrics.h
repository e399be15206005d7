/* Process-wide counters and histograms, rendered in Prometheus text format
 * by the admin listener. Updates are lock-free relaxed atomics, callable
 * from any thread (Redis keeps its stat_ fields the same way).
 *
 * A leaf module: the HTTP counters live here, while each sink's counters
 * are a plain hb_sink_counters_t that the sink runner owns and updates and
 * that the renderer only reads (h2o's way), so this module knows nothing
 * of sinks. */
#ifndef HB_METRICS_H
#define HB_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct hb_journal;

/* The request counters and latency are labelled by route: name the routes
 * once at start-up, before the first request, in the order of their
 * indexes (the Intercom route first keeps the label "intercom"; names
 * must outlive the process's metrics). A request to no route is counted
 * under "other". */
#define HB_METRICS_MAX_ROUTES 64
#define HB_METRICS_NO_ROUTE ((size_t)-1)
void hb_metrics_set_routes(const char *const *names, size_t n);

/* seconds < 0: not timed (answers that never reached a route's work) */
void hb_metrics_request(size_t route, int status, double seconds);
void hb_metrics_verify_failure(void);
/* Connections accepted per HTTP worker (shows how evenly they spread). */
#define HB_METRICS_MAX_WORKERS 256
void hb_metrics_set_workers(size_t n);
void hb_metrics_accepted(int worker);
void hb_metrics_duplicate(void);

/* Outcomes of the shared dedup store (hb/dedup_shared.h). */
typedef enum {
    HB_SHARED_CHECKED = 0,       /* an id asked of Redis */
    HB_SHARED_HIT,               /* a duplicate found only in Redis */
    HB_SHARED_CHECK_UNAVAILABLE, /* answered by the local set alone: Redis down or late */
    HB_SHARED_CLAIMED,           /* SET NX took the id */
    HB_SHARED_CLAIM_TAKEN,       /* another replica had claimed it meanwhile (a race) */
    HB_SHARED_CLAIM_UNAVAILABLE, /* the claim was not made: Redis down or refusing */
    HB_SHARED_N
} hb_shared_event_t;
void hb_metrics_dedup_shared(hb_shared_event_t e);

#define HB_METRICS_BUCKETS 14
typedef struct hb_histogram {
    atomic_ullong counts[HB_METRICS_BUCKETS + 1]; /* last: +Inf */
    atomic_ullong sum_us;
} hb_histogram_t;
void hb_histogram_observe(hb_histogram_t *h, double seconds);

/* One sink's figures; zero-initialised. `name` and `idx` (its journal
 * cursor) are set once before the sink is rendered. */
typedef struct hb_sink_counters {
    const char *name;
    size_t idx;
    atomic_ullong published;     /* acknowledged, dead-lettered included */
    atomic_ullong retries;       /* failed publish attempts, each retried */
    atomic_ullong rejected;      /* refused for good */
    atomic_ullong dead_lettered; /* of those, sent to a dead-letter destination */
    atomic_ullong reconnects;
    atomic_ullong inflight; /* gauge */
    atomic_int ready;       /* gauge: 1 when the sink can publish */
    hb_histogram_t latency; /* hand-over to acknowledgement */
} hb_sink_counters_t;

void hb_metrics_render(struct evbuffer *out, struct hb_journal *j,
                       const hb_sink_counters_t *const *sinks, size_t n_sinks);

#endif
