/* Deduplication of the provider's retries by notification id.
 *
 * Intercom delivers at least once: when an answer is lost, the same
 * notification id arrives again. The set remembers ids whose record was
 * made durable, for `window` milliseconds and at most `max_ids` ids (the
 * oldest go first), so a retry is answered 200 without being stored or
 * published again. An id is only added once its record is durable: a
 * delivery answered 503 must be accepted when it comes back.
 *
 * After a restart the set is rebuilt from a snapshot file (written every
 * few seconds and at shutdown) and from the records still in the journal.
 * Dedup is an optimisation on top of at-least-once delivery, never a way
 * to lose data: when in doubt an id is treated as new.
 *
 * Thread safety: check/add from any thread (sharded locks). */
#ifndef HB_DEDUP_H
#define HB_DEDUP_H

#include <stddef.h>
#include <stdint.h>

typedef struct hb_dedup hb_dedup_t;

hb_dedup_t *hb_dedup_new(uint64_t window_ms, size_t max_ids);
void hb_dedup_free(hb_dedup_t *d);

/* 1 if id was seen (committed) within the window. */
int hb_dedup_seen(hb_dedup_t *d, const char *id, size_t len, uint64_t now_ms);
/* Remember id as committed at time at_ms (ignored when outside the window). */
void hb_dedup_add(hb_dedup_t *d, const char *id, size_t len, uint64_t at_ms);
size_t hb_dedup_count(hb_dedup_t *d);

/* Snapshot: "<ms> <id>\n" lines, replaced atomically. Blocking I/O. */
int hb_dedup_save(hb_dedup_t *d, const char *path);
int hb_dedup_load(hb_dedup_t *d, const char *path);

#endif
