/* The admin listener (plain HTTP, loopback by default): /healthz, /readyz
 * and /metrics, open; /journal/replay (GET status, POST start), only with
 * `Authorization: Bearer <admin.token>`. Runs on the main thread's event_base; everything it reads
 * from other modules is thread-safe. */
#ifndef HB_ADMIN_H
#define HB_ADMIN_H

#include <stddef.h>

#include "hb/journal.h"
#include "hb/sink.h"

struct event_base;
typedef struct hb_admin hb_admin_t;

hb_admin_t *hb_admin_new(struct event_base *base, const char *listen, char *err, size_t errlen);
/* What /readyz and /metrics look at; set as the parts come up. */
/* admin.token (copied); "" refuses the endpoints that change state. */
void hb_admin_set_token(hb_admin_t *a, const char *token);
void hb_admin_set_journal(hb_admin_t *a, hb_journal_t *j);
void hb_admin_set_sinks(hb_admin_t *a, hb_sink_t *const *sinks, size_t n);
void hb_admin_free(hb_admin_t *a);

#endif
