/* The notification-id set. See include/hb/dedup.h.
 *
 * Sixteen shards, each a chained hash table plus a FIFO of its entries in
 * insertion order, so expiry (by time or by count) always removes from the
 * FIFO head: O(1) amortised, no scan. Ids are hashed with SipHash-2-4
 * under a random per-process key (see random_key). */
#include "hb/fmacros.h"

#include "hb/dedup.h"
#include "hb/log.h"
#include "hb/record.h"
#include "hb/util.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/rand.h>

#define NSHARDS 16
_Static_assert(NSHARDS == 16, "SHARD() takes the top 4 bits of the hash");

typedef struct entry {
    struct entry *chain; /* bucket */
    struct entry *fifo;  /* next newer */
    uint64_t hash;
    uint64_t at_ms;
    uint64_t seq; /* the record's journal sequence number; 0 = none known */
    uint16_t len;
    char id[];
} entry_t;

typedef struct shard {
    pthread_mutex_t lock;
    entry_t **buckets;
    size_t nbuckets, count;
    entry_t *oldest, *newest;
} shard_t;

struct hb_dedup {
    uint64_t window_ms;
    size_t max_per_shard;
    unsigned char key[16]; /* SipHash key, random per set */
    shard_t shards[NSHARDS];
};

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static uint64_t load_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* SipHash-2-4 (Aumasson and Bernstein), the reference algorithm. */
uint64_t hb_siphash24(const unsigned char key[16], const void *msg, size_t len)
{
    const unsigned char *m = msg;
    uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
    uint64_t v0 = k0 ^ 0x736f6d6570736575ull, v1 = k1 ^ 0x646f72616e646f6dull;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ull, v3 = k1 ^ 0x7465646279746573ull;
    const unsigned char *end = m + (len & ~(size_t)7);
    for (; m != end; m += 8) {
        uint64_t w = load_le64(m);
        v3 ^= w;
        SIPROUND;
        SIPROUND;
        v0 ^= w;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < (len & 7); i++)
        b |= (uint64_t)m[i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* Ids come from the request body, and with intercom.verify = off anyone
 * chooses them: an unkeyed hash would let a client send ids that all land
 * in one chain and make every check a list walk under the shard lock.
 * SipHash with a key drawn per set (per process) makes collisions
 * unpredictable from outside. */
static void random_key(unsigned char key[16])
{
    size_t got = 0;
    while (got < 16) {
        ssize_t n = getrandom(key + got, 16 - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got < 16 && RAND_bytes(key, 16) != 1)
        hb_oom("a random key for the dedup hash");
}

static uint64_t hash(const hb_dedup_t *d, const char *s, size_t n)
{
    return hb_siphash24(d->key, s, n);
}

/* The shard comes from the top bits, the bucket from the bottom ones: with
 * both from the bottom, a shard would use one bucket in NSHARDS. */
#define SHARD(d, h) (&(d)->shards[(h) >> 60])

hb_dedup_t *hb_dedup_new(uint64_t window_ms, size_t max_ids)
{
    hb_dedup_t *d = hb_calloc(1, sizeof(*d));
    d->window_ms = window_ms;
    d->max_per_shard = max_ids / NSHARDS + 1;
    random_key(d->key);
    for (int i = 0; i < NSHARDS; i++) {
        pthread_mutex_init(&d->shards[i].lock, NULL);
        d->shards[i].nbuckets = 1024;
        d->shards[i].buckets = hb_calloc(1024, sizeof(entry_t *));
    }
    return d;
}

void hb_dedup_free(hb_dedup_t *d)
{
    if (!d)
        return;
    for (int i = 0; i < NSHARDS; i++) {
        for (entry_t *e = d->shards[i].oldest, *n; e; e = n) {
            n = e->fifo;
            free(e);
        }
        free(d->shards[i].buckets);
        pthread_mutex_destroy(&d->shards[i].lock);
    }
    free(d);
}

static void unlink_oldest(shard_t *s)
{
    entry_t *e = s->oldest;
    entry_t **pp = &s->buckets[e->hash & (s->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->chain;
    *pp = e->chain;
    s->oldest = e->fifo;
    if (!s->oldest)
        s->newest = NULL;
    s->count--;
    free(e);
}

static void expire(hb_dedup_t *d, shard_t *s, uint64_t now_ms)
{
    while (s->oldest && (s->count > d->max_per_shard || s->oldest->at_ms + d->window_ms < now_ms))
        unlink_oldest(s);
}

static void grow(shard_t *s)
{
    size_t nb = s->nbuckets * 2;
    entry_t **b = hb_calloc(nb, sizeof(entry_t *));
    for (size_t i = 0; i < s->nbuckets; i++) {
        for (entry_t *e = s->buckets[i], *n; e; e = n) {
            n = e->chain;
            e->chain = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = nb;
}

static entry_t *find(shard_t *s, uint64_t h, const char *id, size_t len)
{
    for (entry_t *e = s->buckets[h & (s->nbuckets - 1)]; e; e = e->chain)
        if (e->hash == h && e->len == len && memcmp(e->id, id, len) == 0)
            return e;
    return NULL;
}

int hb_dedup_seen(hb_dedup_t *d, const char *id, size_t len, uint64_t now_ms, uint64_t *seq)
{
    if (len == 0 || len > 0xffff)
        return 0;
    uint64_t h = hash(d, id, len);
    shard_t *s = SHARD(d, h);
    pthread_mutex_lock(&s->lock);
    expire(d, s, now_ms);
    entry_t *e = find(s, h, id, len);
    int seen = e && e->at_ms + d->window_ms >= now_ms;
    if (seen && seq)
        *seq = e->seq;
    pthread_mutex_unlock(&s->lock);
    return seen;
}

void hb_dedup_add(hb_dedup_t *d, const char *id, size_t len, uint64_t at_ms, uint64_t seq)
{
    if (len == 0 || len > 0xffff || d->window_ms == 0)
        return;
    uint64_t h = hash(d, id, len);
    shard_t *s = SHARD(d, h);
    pthread_mutex_lock(&s->lock);
    /* the FIFO must stay in time order: a slightly older id (threads
     * race to the journal) is kept as if it were as new as the newest */
    if (s->newest && at_ms < s->newest->at_ms)
        at_ms = s->newest->at_ms;
    entry_t *e = find(s, h, id, len);
    if (e) {
        /* The same id in several records (two deliveries raced past the
         * check, or the snapshot and the journal both name it): the id is
         * published as soon as its first record is, the lowest seq. */
        if (seq && (!e->seq || seq < e->seq))
            e->seq = seq;
    } else {
        e = hb_malloc(sizeof(*e) + len);
        e->hash = h;
        e->at_ms = at_ms;
        e->seq = seq;
        e->len = (uint16_t)len;
        memcpy(e->id, id, len);
        e->fifo = NULL;
        size_t b = h & (s->nbuckets - 1);
        e->chain = s->buckets[b];
        s->buckets[b] = e;
        if (s->newest)
            s->newest->fifo = e;
        else
            s->oldest = e;
        s->newest = e;
        if (++s->count > s->nbuckets)
            grow(s);
        expire(d, s, at_ms);
    }
    pthread_mutex_unlock(&s->lock);
}

size_t hb_dedup_count(hb_dedup_t *d)
{
    size_t n = 0;
    for (int i = 0; i < NSHARDS; i++) {
        pthread_mutex_lock(&d->shards[i].lock);
        n += d->shards[i].count;
        pthread_mutex_unlock(&d->shards[i].lock);
    }
    return n;
}

const char *hb_dedup_key(const char *route, size_t route_len, const char *id, size_t id_len,
                         char *buf, size_t cap, char **heap, size_t *key_len)
{
    *heap = NULL;
    /* an empty id is no id: its empty key is never remembered or seen */
    if (!route || id_len == 0 ||
        (route_len == sizeof(HB_RECORD_DEFAULT_ROUTE) - 1 &&
         memcmp(route, HB_RECORD_DEFAULT_ROUTE, route_len) == 0)) {
        *key_len = id_len;
        return id;
    }
    size_t n = route_len + 1 + id_len;
    char *k = n <= cap ? buf : (*heap = hb_malloc(n));
    memcpy(k, route, route_len);
    k[route_len] = '\0';
    memcpy(k + route_len + 1, id, id_len);
    *key_len = n;
    return k;
}

int hb_dedup_save(hb_dedup_t *d, const char *path)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = hb_malloc(cap);
    for (int i = 0; i < NSHARDS; i++) {
        shard_t *s = &d->shards[i];
        pthread_mutex_lock(&s->lock);
        for (entry_t *e = s->oldest; e; e = e->fifo) {
            if (len + e->len + 32 > cap) {
                cap = cap * 2 + e->len;
                buf = hb_realloc(buf, cap);
            }
            /* ids holding a newline or space are not saved: they would
             * break the line format, and the journal covers them anyway */
            if (memchr(e->id, '\n', e->len) || memchr(e->id, ' ', e->len))
                continue;
            len += (size_t)snprintf(buf + len, cap - len, "%" PRIu64 " ", e->at_ms);
            memcpy(buf + len, e->id, e->len);
            len += e->len;
            buf[len++] = '\n';
        }
        pthread_mutex_unlock(&s->lock);
    }
    int rc = hb_write_file_atomic(path, buf, len);
    free(buf);
    return rc;
}

int hb_dedup_load(hb_dedup_t *d, const char *path)
{
    size_t len;
    char *text = hb_read_file(path, &len);
    if (!text)
        return errno == ENOENT ? 0 : -1;
    /* Entries are added shard by shard in time order; sort-free because
     * each shard's FIFO only needs to be ordered within itself, and the
     * file was written shard by shard in FIFO order. */
    for (char *p = text, *nl; p < text + len; p = nl + 1) {
        nl = memchr(p, '\n', (size_t)(text + len - p));
        if (!nl)
            break;
        char *sp = memchr(p, ' ', (size_t)(nl - p));
        if (!sp)
            continue;
        uint64_t at = strtoull(p, NULL, 10);
        /* no seq: an id whose record is still in the journal gets it when
         * the journal is read at open; the others were published */
        hb_dedup_add(d, sp + 1, (size_t)(nl - sp - 1), at, 0);
    }
    free(text);
    return 0;
}
