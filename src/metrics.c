/* Metrics in Prometheus text format. See include/hb/metrics.h.
 *
 * Everything is a relaxed atomic counter; histograms keep cumulative-free
 * bucket counts and are summed when rendered. Gauges that belong to other
 * modules (journal size, sink backlog) are read from them at render time,
 * so there is one source of truth for each figure. */
#include "hb/fmacros.h"

#include "hb/metrics.h"
#include "hb/journal.h"
#include "hb/version.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

static const int statuses[] = {200, 400, 401, 404, 405, 413, 500, 503, 0};
#define NSTATUS (sizeof(statuses) / sizeof(statuses[0]))
/* index HB_METRICS_MAX_ROUTES: requests to no route */
#define OTHER HB_METRICS_MAX_ROUTES
static const char *route_names[HB_METRICS_MAX_ROUTES + 1] = {[0] = "intercom", [OTHER] = "other"};
static size_t n_routes = 1;

static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                 0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))
_Static_assert(NBUCKETS == HB_METRICS_BUCKETS, "HB_METRICS_BUCKETS must match the buckets");

static atomic_ullong requests[HB_METRICS_MAX_ROUTES + 1][NSTATUS];
static hb_histogram_t request_latency[HB_METRICS_MAX_ROUTES];
static atomic_ullong verify_failures, duplicates;
static atomic_ullong accepted[HB_METRICS_MAX_WORKERS];
static atomic_size_t n_workers;
static atomic_ullong shared[HB_SHARED_N];

void hb_histogram_observe(hb_histogram_t *h, double s)
{
    size_t i = 0;
    while (i < NBUCKETS && s > buckets[i])
        i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, (unsigned long long)(s * 1e6), memory_order_relaxed);
}

void hb_metrics_set_routes(const char *const *names, size_t n)
{
    n_routes = n < HB_METRICS_MAX_ROUTES ? n : HB_METRICS_MAX_ROUTES;
    for (size_t i = 0; i < n_routes; i++)
        route_names[i] = names[i];
}

void hb_metrics_request(size_t route, int status, double seconds)
{
    size_t i = 0;
    while (statuses[i] && statuses[i] != status)
        i++;
    if (route >= n_routes)
        route = OTHER;
    atomic_fetch_add_explicit(&requests[route][i], 1, memory_order_relaxed);
    if (route != OTHER && seconds >= 0)
        hb_histogram_observe(&request_latency[route], seconds);
}

void hb_metrics_verify_failure(void)
{
    atomic_fetch_add_explicit(&verify_failures, 1, memory_order_relaxed);
}

void hb_metrics_set_workers(size_t n)
{
    atomic_store(&n_workers, n < HB_METRICS_MAX_WORKERS ? n : HB_METRICS_MAX_WORKERS);
}

void hb_metrics_accepted(int worker)
{
    if (worker >= 0 && worker < HB_METRICS_MAX_WORKERS)
        atomic_fetch_add_explicit(&accepted[worker], 1, memory_order_relaxed);
}

void hb_metrics_duplicate(void)
{
    atomic_fetch_add_explicit(&duplicates, 1, memory_order_relaxed);
}

void hb_metrics_dedup_shared(hb_shared_event_t e)
{
    atomic_fetch_add_explicit(&shared[e], 1, memory_order_relaxed);
}

static void render_dedup_shared(struct evbuffer *o)
{
#define V(e) (unsigned long long)atomic_load_explicit(&shared[e], memory_order_relaxed)
    evbuffer_add_printf(
        o,
        "# HELP hookbridge_dedup_shared_checks_total Notification ids looked up in the shared "
        "dedup store (dedup.store = redis).\n"
        "# TYPE hookbridge_dedup_shared_checks_total counter\n"
        "hookbridge_dedup_shared_checks_total %llu\n"
        "# HELP hookbridge_dedup_shared_hits_total Duplicates found only in the shared store "
        "(claimed by another replica).\n"
        "# TYPE hookbridge_dedup_shared_hits_total counter\n"
        "hookbridge_dedup_shared_hits_total %llu\n"
        "# HELP hookbridge_dedup_shared_claims_total Claims of durable ids in the shared store; "
        "taken = another replica had claimed the id meanwhile.\n"
        "# TYPE hookbridge_dedup_shared_claims_total counter\n"
        "hookbridge_dedup_shared_claims_total{result=\"claimed\"} %llu\n"
        "hookbridge_dedup_shared_claims_total{result=\"taken\"} %llu\n"
        "# HELP hookbridge_dedup_shared_unavailable_total Checks answered by the local set "
        "alone and claims not made, because the shared store was down, refused or was late.\n"
        "# TYPE hookbridge_dedup_shared_unavailable_total counter\n"
        "hookbridge_dedup_shared_unavailable_total{op=\"check\"} %llu\n"
        "hookbridge_dedup_shared_unavailable_total{op=\"claim\"} %llu\n",
        V(HB_SHARED_CHECKED), V(HB_SHARED_HIT), V(HB_SHARED_CLAIMED), V(HB_SHARED_CLAIM_TAKEN),
        V(HB_SHARED_CHECK_UNAVAILABLE), V(HB_SHARED_CLAIM_UNAVAILABLE));
#undef V
}

static void render_histogram(struct evbuffer *o, const char *name, const char *labels,
                             const hb_histogram_t *h)
{
    unsigned long long cum = 0;
    const char *sep = labels[0] ? "," : "";
    for (size_t i = 0; i <= NBUCKETS; i++) {
        cum += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        if (i < NBUCKETS)
            evbuffer_add_printf(o, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, buckets[i],
                                cum);
        else
            evbuffer_add_printf(o, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, cum);
    }
    const char *l = labels[0] ? "{" : "", *r = labels[0] ? "}" : "";
    evbuffer_add_printf(o, "%s_sum%s%s%s %.6f\n%s_count%s%s%s %llu\n", name, l, labels, r,
                        (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6, name,
                        l, labels, r, cum);
}

/* One counter (or gauge) of every sink, under one HELP/TYPE header. */
static void render_per_sink(struct evbuffer *o, const char *name, const char *type,
                            const char *help, const hb_sink_counters_t *const *sinks, size_t n,
                            size_t field)
{
    evbuffer_add_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    for (size_t i = 0; i < n; i++) {
        const atomic_ullong *v = (const atomic_ullong *)((const char *)sinks[i] + field);
        evbuffer_add_printf(o, "%s{sink=\"%s\"} %llu\n", name, sinks[i]->name,
                            atomic_load_explicit(v, memory_order_relaxed));
    }
}

static void render_journal_hist(struct evbuffer *o, const char *name, const char *help,
                                const hb_journal_hist_t *h)
{
    evbuffer_add_printf(o, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (size_t i = 0; i < h->n; i++)
        evbuffer_add_printf(o, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i],
                            (unsigned long long)h->cumulative[i]);
    evbuffer_add_printf(o, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
                        (unsigned long long)h->count, name, h->sum, name,
                        (unsigned long long)h->count);
}

static void render_journal_histograms(struct evbuffer *o, struct hb_journal *j)
{
    hb_journal_hists_t h;
    hb_journal_histograms(j, &h);
    render_journal_hist(o, "hookbridge_journal_batch_records", "Records per journal batch.",
                        &h.records);
    render_journal_hist(o, "hookbridge_journal_write_seconds", "Time to write one journal batch.",
                        &h.write_s);
    render_journal_hist(o, "hookbridge_journal_fdatasync_seconds",
                        "Time of one journal fdatasync (one per batch).", &h.sync_s);
    render_journal_hist(o, "hookbridge_journal_queue_seconds",
                        "Time a record waited for the journal writer after its append (a burst "
                        "being gathered, a sync in progress).",
                        &h.queue_s);
    render_journal_hist(o, "hookbridge_journal_handoff_seconds",
                        "Time from the journal being done with a record (synced, or written "
                        "under ack = written) to its HTTP loop taking up the answer.",
                        &h.handoff_s);
}

void hb_metrics_render(struct evbuffer *o, struct hb_journal *j,
                       const hb_sink_counters_t *const *sinks, size_t n_sinks)
{
    evbuffer_add_printf(o,
                        "# HELP hookbridge_build_info Build information.\n"
                        "# TYPE hookbridge_build_info gauge\n"
                        "hookbridge_build_info{version=\"%s\"} 1\n",
                        HB_VERSION);
    evbuffer_add_printf(o, "# HELP hookbridge_requests_total HTTP requests answered, by route "
                           "and status.\n# TYPE hookbridge_requests_total counter\n");
    for (size_t r = 0; r <= OTHER; r++) {
        if (r >= n_routes && r != OTHER)
            continue;
        for (size_t i = 0; i < NSTATUS; i++) {
            unsigned long long v = atomic_load(&requests[r][i]);
            /* every route shows its 200s, at 0 too: a rate is defined */
            if (!v && (statuses[i] != 200 || r == OTHER))
                continue;
            if (statuses[i])
                evbuffer_add_printf(o,
                                    "hookbridge_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                                    route_names[r], statuses[i], v);
            else
                evbuffer_add_printf(
                    o, "hookbridge_requests_total{route=\"%s\",status=\"other\"} %llu\n",
                    route_names[r], v);
        }
    }
    evbuffer_add_printf(o, "# HELP hookbridge_request_duration_seconds Time from a webhook's "
                           "arrival to its answer.\n"
                           "# TYPE hookbridge_request_duration_seconds histogram\n");
    for (size_t r = 0; r < n_routes; r++) {
        char labels[96];
        snprintf(labels, sizeof(labels), "route=\"%s\"", route_names[r]);
        render_histogram(o, "hookbridge_request_duration_seconds", labels, &request_latency[r]);
    }
    evbuffer_add_printf(o,
                        "# HELP hookbridge_verification_failures_total Deliveries refused "
                        "for a missing or wrong signature.\n"
                        "# TYPE hookbridge_verification_failures_total counter\n"
                        "hookbridge_verification_failures_total %llu\n",
                        (unsigned long long)atomic_load(&verify_failures));
    evbuffer_add_printf(o,
                        "# HELP hookbridge_duplicates_total Repeated notification ids "
                        "answered without publishing.\n"
                        "# TYPE hookbridge_duplicates_total counter\n"
                        "hookbridge_duplicates_total %llu\n",
                        (unsigned long long)atomic_load(&duplicates));
    render_dedup_shared(o);
    evbuffer_add_printf(o, "# HELP hookbridge_connections_accepted_total HTTPS connections "
                           "accepted, by worker thread.\n"
                           "# TYPE hookbridge_connections_accepted_total counter\n");
    for (size_t w = 0; w < atomic_load(&n_workers); w++)
        evbuffer_add_printf(o, "hookbridge_connections_accepted_total{worker=\"%zu\"} %llu\n", w,
                            (unsigned long long)atomic_load(&accepted[w]));
    if (j) {
        evbuffer_add_printf(
            o,
            "# HELP hookbridge_journal_bytes Bytes held in journal segments.\n"
            "# TYPE hookbridge_journal_bytes gauge\nhookbridge_journal_bytes %llu\n"
            "# HELP hookbridge_journal_max_bytes Journal size limit.\n"
            "# TYPE hookbridge_journal_max_bytes gauge\nhookbridge_journal_max_bytes %llu\n"
            "# HELP hookbridge_journal_segments Journal segment files.\n"
            "# TYPE hookbridge_journal_segments gauge\nhookbridge_journal_segments %zu\n"
            "# HELP hookbridge_journal_full 1 while new deliveries are refused for lack of room.\n"
            "# TYPE hookbridge_journal_full gauge\nhookbridge_journal_full %d\n"
            "# HELP hookbridge_journal_records_total Records made durable (last sequence number).\n"
            "# TYPE hookbridge_journal_records_total counter\nhookbridge_journal_records_total "
            "%llu\n",
            (unsigned long long)hb_journal_bytes(j), (unsigned long long)hb_journal_max_bytes(j),
            hb_journal_segments(j), hb_journal_full(j),
            (unsigned long long)hb_journal_durable_seq(j));
        render_journal_histograms(o, j);
        uint64_t kept, oldest_ms;
        hb_journal_retained(j, &kept, &oldest_ms);
        evbuffer_add_printf(o,
                            "# HELP hookbridge_journal_retained_bytes Bytes of published segments "
                            "kept by journal.retain / journal.retain_bytes.\n"
                            "# TYPE hookbridge_journal_retained_bytes gauge\n"
                            "hookbridge_journal_retained_bytes %llu\n"
                            "# HELP hookbridge_journal_retained_oldest_timestamp_seconds "
                            "received_at of the oldest retained record (0: none).\n"
                            "# TYPE hookbridge_journal_retained_oldest_timestamp_seconds gauge\n"
                            "hookbridge_journal_retained_oldest_timestamp_seconds %.3f\n",
                            (unsigned long long)kept, (double)oldest_ms / 1000.0);
    }
    if (!n_sinks)
        return;
    evbuffer_add_printf(o, "# HELP hookbridge_sink_pending_records Durable records not yet "
                           "acknowledged by the sink.\n"
                           "# TYPE hookbridge_sink_pending_records gauge\n");
    for (size_t i = 0; i < n_sinks; i++) {
        uint64_t d = j ? hb_journal_durable_seq(j) : 0;
        uint64_t c = j ? hb_journal_cursor(j, sinks[i]->idx) : 0;
        evbuffer_add_printf(o, "hookbridge_sink_pending_records{sink=\"%s\"} %llu\n",
                            sinks[i]->name, (unsigned long long)(d > c ? d - c : 0));
    }
    render_per_sink(o, "hookbridge_sink_published_total", "counter",
                    "Records acknowledged by the sink.", sinks, n_sinks,
                    offsetof(hb_sink_counters_t, published));
    render_per_sink(o, "hookbridge_sink_errors_total", "counter",
                    "Failed publish attempts (each is retried).", sinks, n_sinks,
                    offsetof(hb_sink_counters_t, retries));
    render_per_sink(o, "hookbridge_sink_reconnects_total", "counter",
                    "Reconnections to the sink's server.", sinks, n_sinks,
                    offsetof(hb_sink_counters_t, reconnects));
    render_per_sink(o, "hookbridge_sink_dead_lettered_total", "counter",
                    "Records rejected for good and sent to the dead-letter destination.", sinks,
                    n_sinks, offsetof(hb_sink_counters_t, dead_lettered));
    evbuffer_add_printf(o, "# HELP hookbridge_sink_ready 1 when the sink can publish.\n"
                           "# TYPE hookbridge_sink_ready gauge\n");
    for (size_t i = 0; i < n_sinks; i++)
        evbuffer_add_printf(o, "hookbridge_sink_ready{sink=\"%s\"} %d\n", sinks[i]->name,
                            atomic_load(&sinks[i]->ready));
    evbuffer_add_printf(o, "# HELP hookbridge_sink_publish_duration_seconds Time from handing a "
                           "record to the sink to its acknowledgement.\n"
                           "# TYPE hookbridge_sink_publish_duration_seconds histogram\n");
    for (size_t i = 0; i < n_sinks; i++) {
        char labels[64];
        snprintf(labels, sizeof(labels), "sink=\"%s\"", sinks[i]->name);
        render_histogram(o, "hookbridge_sink_publish_duration_seconds", labels, &sinks[i]->latency);
    }
}
