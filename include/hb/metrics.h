/* Process-wide counters and histograms, rendered in Prometheus text format
 * by the admin listener. Updates are lock-free atomics, callable from any
 * thread (Redis keeps its stat_ fields the same way). */
#ifndef HB_METRICS_H
#define HB_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct hb_journal;
struct hb_sink;

typedef enum { HB_EP_INTERCOM = 0, HB_EP_OTHER, HB_EP_N } hb_endpoint_t;

void hb_metrics_request(hb_endpoint_t ep, int status, double seconds);
void hb_metrics_verify_failure(void);
void hb_metrics_duplicate(void);
void hb_metrics_sink_publish(size_t sink_idx, double seconds);
void hb_metrics_sink_error(size_t sink_idx);
void hb_metrics_sink_reconnect(size_t sink_idx);
void hb_metrics_sink_dead_letter(size_t sink_idx);

void hb_metrics_render(struct evbuffer *out, struct hb_journal *j, struct hb_sink *const *sinks,
                       size_t n_sinks);

#endif
