/* Deduplication shared by replicas (dedup.store = redis).
 *
 * Several replicas behind a load balancer each keep their own local set
 * (hb/dedup.h), and Intercom may send a retry to another replica than the
 * first delivery. With a shared store, a replica that does not know an id
 * locally asks Redis before journaling the request:
 *
 *     GET <dedup.redis.prefix><route>:<id>
 *
 * and once the record is durable it claims the id for every replica:
 *
 *     SET <dedup.redis.prefix><route>:<id> <replica> NX PX <dedup.window>
 *
 * The local set stays the fast path (asked first) and the whole answer when
 * Redis cannot give one: down, refusing, or slower than
 * dedup.redis.timeout_ms. Then the id counts as new (at least once across
 * replicas, as without a shared store) and the fallback is counted in
 * hookbridge_dedup_shared_unavailable_total. A claim that finds the key
 * taken (another replica claimed it meanwhile: both accepted the same id at
 * once) is counted, not an error. A claim lost while Redis is unreachable is
 * not made again later.
 *
 * Ownership and threads: hb_dedup_shared_t is made and freed on the main
 * thread and only read in between. Each HTTP thread has its own
 * hb_dedup_shared_loop_t with its own connection on that thread's
 * event_base, made before the loop runs and freed after it stopped; its
 * functions are called on that thread only. Free every loop before the
 * shared part. */
#ifndef HB_DEDUP_SHARED_H
#define HB_DEDUP_SHARED_H

#include <stddef.h>

#include "hb/config.h"

struct event_base;

typedef struct hb_dedup_shared hb_dedup_shared_t;
typedef struct hb_dedup_shared_loop hb_dedup_shared_loop_t;

typedef enum {
    HB_DEDUP_SHARED_NEW = 0,   /* not claimed, or no answer from Redis: go on */
    HB_DEDUP_SHARED_DUPLICATE, /* claimed by a replica (maybe this one) */
    HB_DEDUP_SHARED_CANCELLED, /* the loop is being freed: release, never answer */
} hb_dedup_shared_verdict_t;

/* owner: the replica that claimed the id (DUPLICATE only; valid during the
 * call). Runs on the loop's thread, never inside hb_dedup_shared_check. */
typedef void (*hb_dedup_shared_cb)(hb_dedup_shared_verdict_t v, const char *owner, void *arg);

/* NULL with err[0] == '\0' when there is nothing to share (dedup = off or
 * dedup.store = local); NULL with a message when the store cannot be set
 * up. cfg must outlive the result. */
hb_dedup_shared_t *hb_dedup_shared_new(const hb_config_t *cfg, char *err, size_t errlen);
void hb_dedup_shared_free(hb_dedup_shared_t *s);

/* NULL when s is NULL. Starts connecting once base runs. */
hb_dedup_shared_loop_t *hb_dedup_shared_loop_new(hb_dedup_shared_t *s, struct event_base *base);
/* Checks still waiting get CANCELLED; accepts NULL. */
void hb_dedup_shared_loop_free(hb_dedup_shared_loop_t *l);

/* Ask whether `route`'s id was claimed. 0: cb(arg) will be called exactly
 * once, later; -1: no answer can come now (not connected, too many in
 * flight): the fallback is counted and the caller goes on as for NEW. */
int hb_dedup_shared_check(hb_dedup_shared_loop_t *l, const char *route, const char *id,
                          size_t id_len, hb_dedup_shared_cb cb, void *arg);
/* Claim `route`'s id, whose record is now durable (fire and forget). */
void hb_dedup_shared_claim(hb_dedup_shared_loop_t *l, const char *route, const char *id,
                           size_t id_len);

#endif
