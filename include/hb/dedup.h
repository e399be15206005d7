/* Deduplication of the provider's retries by notification id.
 *
 * Intercom delivers at least once: when an answer is lost, the same
 * notification id arrives again. The set remembers ids whose record was
 * made durable, for `window` milliseconds and at most `max_ids` ids (the
 * oldest go first), so a retry is answered 200 without being stored or
 * published again. An id is only added once its record is durable: a
 * delivery answered 503 must be accepted when it comes back.
 *
 * Each id keeps the journal sequence number of its record, so that under
 * `ack = published` the caller can tell "published" (seq at or below the
 * journal's lowest sink cursor) from "durable, still waiting for a sink".
 *
 * After a restart the set is rebuilt from a snapshot file (written every
 * few seconds and at shutdown) and from the records still in the journal.
 * The snapshot holds no sequence numbers: the ids whose records are still
 * in the journal get theirs when the journal is read at open (after the
 * snapshot), and a record no longer in the journal has been published.
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

/* 1 if id was seen (committed) within the window; then *seq (when not
 * NULL) gets the sequence number of its record, 0 if none is known. */
int hb_dedup_seen(hb_dedup_t *d, const char *id, size_t len, uint64_t now_ms, uint64_t *seq);
/* Remember id as committed at time at_ms (ignored when outside the window)
 * in the journal record `seq` (0: none known). Adding a known id keeps its
 * entry, with the lowest non-zero seq given. */
void hb_dedup_add(hb_dedup_t *d, const char *id, size_t len, uint64_t at_ms, uint64_t seq);
size_t hb_dedup_count(hb_dedup_t *d);

/* Each route has its own id space. The Intercom route's ids (route NULL or
 * "intercom") are keys as they are, so snapshots written before routes
 * stay valid; another route's id is the key "<route>\0<id>" (no id holds
 * a NUL, so spaces never meet). hb_dedup_key returns the key: id itself
 * for the Intercom route (and for an empty id, whose empty key is never
 * remembered: no id to tell deliveries apart), else built in buf when it
 * fits (cap bytes), else malloc'd into *heap (free it after use). */
const char *hb_dedup_key(const char *route, size_t route_len, const char *id, size_t id_len,
                         char *buf, size_t cap, char **heap, size_t *key_len);

/* SipHash-2-4 of msg under key: the set's keyed hash, exposed for the
 * published test vectors. */
uint64_t hb_siphash24(const unsigned char key[16], const void *msg, size_t len);

/* Snapshot: "<ms> <id>\n" lines, replaced atomically. Blocking I/O. */
int hb_dedup_save(hb_dedup_t *d, const char *path);
int hb_dedup_load(hb_dedup_t *d, const char *path);

#endif
