/* The durable journal. See include/hb/journal.h for the contract.
 *
 * Layout of journal.dir:
 *   00000000000000000001.seg   records, named by the first sequence number
 *   cursors                    "<sink> <seq>" lines, replaced atomically
 *   spare                      the next segment, made ahead of need
 *
 * Two threads, so that the path from append to answer holds nothing but
 * a write and an fdatasync (Redis aof.c, PostgreSQL's WAL writer):
 *
 *  - the writer takes every queued append at once, seals the records,
 *    closes the batch with a commit mark (record.h), writes it with one
 *    pwrite at the segment's write offset and calls fdatasync once; only
 *    then are the batch's appends done and readers woken. Appends that
 *    arrive meanwhile form the next batch (group commit). Appends under
 *    ack = written are done once written, and their batches share syncs
 *    (SYNC_DEFER_US). A separate sync stage was tried: it overlaps a
 *    write of a few microseconds with the sync and costs a thread
 *    hand-off per batch, which on two cores was more CPU per request
 *    than it saved;
 *  - the keeper persists sink cursors, deletes published segments (once
 *    journal.retain / retain_bytes let them go: retained bytes count as
 *    free room, and over the low-water mark nothing is retained) and
 *    prepares the next segment ahead of time, all off that path. A
 *    preallocated segment means fdatasync flushes data pages only: the
 *    file's size and extents do not change, so no file-system journal
 *    commit rides on every batch. The next segment is a published one
 *    recycled (its blocks are written already) or, when none is coming,
 *    a new file zero-filled: copying those zeros into the page cache cost
 *    as much per request as writing the record itself. A recycled file
 *    keeps its earlier lives' bytes past what is written in this one; its
 *    header mark says so (HB_JOURNAL_RECYCLED), and recovery ignores
 *    records and marks from before the segment's first sequence number
 *    there, as it ignores a zero tail.
 *
 * Failure: a batch whose write fails is answered 503, and so is one whose
 * sync fails, with every batch written since the last good sync; the writer
 * goes back to the durable end and writes over the failed bytes, after a
 * failed sync once it has zeroed them (clear_tail; until then it answers
 * 503). Nothing is truncated on that path, so no clean-up can fail
 * half-way, and recovery never counts the failed bytes: they are zeros, or
 * a failed write's, which carry no valid commit mark.
 *
 * Readers only ever read up to a segment's durable size, so they never see
 * a record that a crash could still take back. */
#include "hb/fmacros.h"

#include "hb/journal.h"
#include "hb/log.h"
#include "hb/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define C "journal"
#define CURSOR_PERSIST_MS 200
#define SPARE_RETRY_MS 10000
/* how long the keeper waits for a published segment to recycle before it
 * zero-fills a new spare, once the active segment is half full
 * or was not made whole ahead of time (see keeper_main) */
#define SPARE_WAIT_MS 1000
#define MAX_BATCH_BYTES (4u << 20) /* a batch bigger than this is split */
/* A step of the writer this slow holds every answer of its batch: said in
 * the log (at most hb_log_limited's burst per interval), so that an
 * operator whose p99 jumps can tell the disk from the bridge. Intercom
 * deprioritises endpoints slower than 500 ms. */
#define SLOW_STEP_MS 100
#define ZERO_CHUNK (1u << 20)
/* ack = written: a batch of such appends is answered once written, and
 * while more keep coming the writer goes on to the next one; one
 * fdatasync covers them all once the writer has had nothing to do for
 * SYNC_IDLE_US, or the oldest unsynced batch is SYNC_DEFER_US old, or
 * SYNC_DEFER_BYTES wait. Syncing each such batch, as for ack = durable,
 * made every next batch wait for the previous one's sync, so written was
 * no faster than durable. The bound is what a power loss (or a failed
 * sync) may take of what was answered 200, and how late sinks see it. */
#define SYNC_IDLE_US 1000
#define SYNC_DEFER_US 5000
#define SYNC_DEFER_BYTES (1u << 20)

typedef struct segment {
    uint64_t first_seq;
    uint64_t end_seq;      /* one past the last durable record */
    uint64_t durable_size; /* bytes readers may read */
    char *path;
    int legacy; /* written before commit marks: never appended to again */
    /* offline scans only (hb_journal_scan): what is wrong and where */
    const char *why;
    uint64_t bad_off;
    int torn;
} segment_t;

typedef struct listener {
    void (*fn)(void *arg);
    void *arg;
    struct listener *next;
} listener_t;

typedef int (*fault_fn)(const char *op, void *arg);

/* A histogram for /metrics: counts per bucket (not cumulative), the last
 * one past every bound. Any thread adds (the handoff one is added to by
 * every HTTP loop and the admin loop) and reads. */
typedef struct hist {
    _Atomic uint64_t counts[HB_JOURNAL_HIST_MAX + 1];
    _Atomic uint64_t sum; /* in the unit of the bounds times 1e6 */
} hist_t;

static const double records_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
static const double seconds_bounds[] = {50e-6, 100e-6, 250e-6, 500e-6, 1e-3,   2.5e-3,
                                        5e-3,  10e-3,  25e-3,  50e-3,  100e-3, 250e-3};
/* per record: tens of microseconds matter there */
static const double wait_bounds[] = {10e-6, 25e-6,  50e-6, 100e-6, 250e-6, 500e-6,
                                     1e-3,  2.5e-3, 5e-3,  10e-3,  25e-3,  100e-3};
#define NBOUNDS(a) (sizeof(a) / sizeof((a)[0]))

static void hist_add(hist_t *h, const double *bounds, size_t n, double v)
{
    size_t i = 0;
    while (i < n && v > bounds[i])
        i++;
    atomic_fetch_add(&h->counts[i], 1);
    /* rounded, not truncated: v * 1e6 can land a hair below a whole
     * number (249 / 1e6 * 1e6 < 249) */
    atomic_fetch_add(&h->sum, (uint64_t)(v * 1e6 + 0.5));
}

/* A wait from from_us to to_us (hb_mono_us) in a wait_bounds histogram:
 * whole microseconds straight into the sum, with no round trip through
 * seconds; a clock read on another thread a hair earlier counts as 0. */
static void wait_add(hist_t *h, uint64_t from_us, uint64_t to_us)
{
    uint64_t us = to_us > from_us ? to_us - from_us : 0;
    size_t i = 0;
    while (i < NBOUNDS(wait_bounds) && (double)us > wait_bounds[i] * 1e6)
        i++;
    atomic_fetch_add(&h->counts[i], 1);
    atomic_fetch_add(&h->sum, us);
}

static void hist_read(const hist_t *h, const double *bounds, size_t n, hb_journal_hist_t *out)
{
    out->n = n;
    out->bounds = bounds;
    uint64_t c = 0;
    for (size_t i = 0; i <= n; i++) {
        c += atomic_load(&((hist_t *)h)->counts[i]);
        if (i < n)
            out->cumulative[i] = c;
    }
    out->count = c;
    out->sum = (double)atomic_load(&((hist_t *)h)->sum) / 1e6;
}

static double since_s(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

struct hb_journal {
    char *dir;
    uint64_t max_bytes, low_water, segment_bytes;
    int prealloc;
    /* hb_journal_scan: recovery reads and reports, never syncs, cuts or
     * refuses (no threads, no writer) */
    int readonly;
    size_t n_sinks;
    char **sink_names;
    _Atomic uint64_t cursors[HB_JOURNAL_MAX_SINKS];
    _Atomic uint64_t min_cursor;
    uint64_t persisted[HB_JOURNAL_MAX_SINKS]; /* keeper thread only */
    atomic_int cursors_dirty;

    pthread_mutex_t lock; /* everything below up to "writer only" */
    pthread_cond_t wcond; /* writer: appends queued */
    pthread_cond_t kcond; /* keeper (CLOCK_MONOTONIC): periodic work or stop */
    hb_append_t *qhead, *qtail;
    int writer_waiting; /* the writer sleeps on wcond: appends must wake it */
    uint64_t synced;    /* durable end of the active segment */
    int stop, kstop;
    int spare_ready;
    int active_full_size; /* the active segment was made whole (a spare) */
    segment_t *segs;
    size_t nsegs, capsegs;

    /* writer thread only */
    int fd;               /* active (newest) segment */
    uint64_t wpos;        /* its write offset */
    uint64_t whigh;       /* the highest offset ever written to it */
    int active_prealloc;  /* it was zero-filled to segment_bytes ahead of time */
    int progress_owed;    /* records made durable that the sinks were not told of */
    uint64_t progress_ms; /* when they were last told */
    uint64_t next_seq;
    unsigned char *wbuf;
    size_t wcap;
    /* batches written past j->synced and not synced yet (ack = written
     * only, see span_open): the first one's first seq, and when it was
     * written */
    uint64_t unsynced_seq, unsynced_us;
    int tail_dirty;         /* a failed span's bytes are not cleared yet (clear_tail) */
    uint64_t sync_defer_us; /* SYNC_DEFER_US unless a test says otherwise */

    /* keeper thread only */
    uint64_t last_persist_ms, spare_fail_ms, spare_need_ms, retain_seen;
    uint64_t retain_ms, retain_bytes; /* journal.retain, journal.retain_bytes */
    uint64_t retained_first;          /* segment that retained_oldest_ms was read from */
    _Atomic uint64_t retained_bytes, retained_oldest_ms;

    _Atomic uint64_t durable_seq;
    _Atomic uint64_t retain_after; /* UINT64_MAX: none */
    _Atomic uint64_t bytes;
    atomic_int full, failed;
    _Atomic(listener_t *) progress, published; /* pushed, never removed until close */
    fault_fn fault;
    void *fault_arg;
    hist_t h_records, h_write, h_sync, h_queue, h_handoff;
    pthread_t writer, keeper;
    int threads; /* how many of them were started */
};

struct hb_journal_reader {
    hb_journal_t *j;
    uint64_t after;
    uint64_t seg_first; /* first_seq of the open segment */
    int fd;
    uint64_t off; /* file offset of buf[0] */
    unsigned char *buf;
    size_t cap, start, end;
};

static int inject(hb_journal_t *j, const char *op)
{
    int e = j->fault ? j->fault(op, j->fault_arg) : 0;
    if (e)
        errno = e;
    return e ? -1 : 0;
}

static int pwrite_full(int fd, const void *buf, size_t len, off_t off)
{
    const unsigned char *p = buf;
    while (len) {
        ssize_t n = pwrite(fd, p, len, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        off += n;
        len -= (size_t)n;
    }
    return 0;
}

static void cond_init_mono(pthread_cond_t *c)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(c, &a);
    pthread_condattr_destroy(&a);
}

/* The CLOCK_MONOTONIC deadline `us` from now, for a cond_init_mono wait. */
static struct timespec mono_after_us(uint64_t us)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + us * 1000u;
    ts.tv_sec += (time_t)(ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    return ts;
}

/* ---- segments list (caller holds j->lock) ---- */

static segment_t *seg_add(hb_journal_t *j, uint64_t first_seq)
{
    char path[PATH_MAX];
    if (j->nsegs == j->capsegs) {
        j->capsegs = j->capsegs ? j->capsegs * 2 : 16;
        j->segs = hb_realloc(j->segs, j->capsegs * sizeof(*j->segs));
    }
    snprintf(path, sizeof(path), "%s/%020" PRIu64 ".seg", j->dir, first_seq);
    segment_t *s = &j->segs[j->nsegs++];
    memset(s, 0, sizeof(*s));
    s->first_seq = first_seq;
    s->end_seq = first_seq;
    s->durable_size = 0;
    s->path = hb_strdup(path);
    return s;
}

static segment_t *seg_find(hb_journal_t *j, uint64_t first_seq)
{
    for (size_t i = 0; i < j->nsegs; i++)
        if (j->segs[i].first_seq == first_seq)
            return &j->segs[i];
    return NULL;
}

/* ---- cursors ---- */

int hb_journal_read_cursors(const char *dir, void (*fn)(const char *name, uint64_t seq, void *arg),
                            void *arg, char *err, size_t errlen)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/cursors", dir);
    char *text = hb_read_file(path, NULL);
    if (!text) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *save = NULL;
    int n = 0;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[64];
        unsigned long long v;
        if (sscanf(line, "%63s %llu", name, &v) != 2)
            continue;
        fn(name, v, arg);
        n++;
    }
    free(text);
    return n;
}

typedef struct cursor_match {
    const hb_journal_t *j;
    uint64_t *vals;
    int *found;
} cursor_match_t;

static void cursor_match(const char *name, uint64_t seq, void *arg)
{
    cursor_match_t *m = arg;
    for (size_t i = 0; i < m->j->n_sinks; i++) {
        if (strcmp(name, m->j->sink_names[i]) == 0) {
            m->vals[i] = seq;
            m->found[i] = 1;
        }
    }
}

static int cursors_load(hb_journal_t *j, uint64_t *vals, int *found, char *err, size_t errlen)
{
    cursor_match_t m = {j, vals, found};
    return hb_journal_read_cursors(j->dir, cursor_match, &m, err, errlen) < 0 ? -1 : 0;
}

static int cursors_persist(hb_journal_t *j)
{
    char path[PATH_MAX], text[HB_JOURNAL_MAX_SINKS * 96];
    uint64_t vals[HB_JOURNAL_MAX_SINKS];
    size_t n = 0;
    atomic_store(&j->cursors_dirty, 0);
    for (size_t i = 0; i < j->n_sinks; i++) {
        vals[i] = atomic_load(&j->cursors[i]);
        n += (size_t)snprintf(text + n, sizeof(text) - n, "%s %" PRIu64 "\n", j->sink_names[i],
                              vals[i]);
    }
    snprintf(path, sizeof(path), "%s/cursors", j->dir);
    if (hb_write_file_atomic(path, text, n) < 0) {
        hb_error(C, "cannot persist sink cursors to %s: %s (will retry)", path, strerror(errno));
        atomic_store(&j->cursors_dirty, 1);
        return -1;
    }
    memcpy(j->persisted, vals, sizeof(vals[0]) * j->n_sinks);
    return 0;
}

static uint64_t min_of(const _Atomic uint64_t *v, size_t n)
{
    uint64_t m = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        uint64_t x = atomic_load(&v[i]);
        if (x < m)
            m = x;
    }
    return m;
}

/* Whether a published segment stays for journal.retain / retain_bytes:
 * while it is younger than retain_ms (its file's mtime is its last write)
 * and the published bytes kept are within retain_bytes. Room for new
 * deliveries comes first: over the low-water mark nothing is retained.
 * Keeper thread (stat is blocking I/O: never under j->lock). */
static int retained(hb_journal_t *j, const segment_t *s, uint64_t published_bytes)
{
    if ((!j->retain_ms && !j->retain_bytes) || atomic_load(&j->bytes) >= j->low_water)
        return 0;
    if (j->retain_bytes && published_bytes > j->retain_bytes)
        return 0;
    struct stat st;
    if (j->retain_ms) {
        if (stat(s->path, &st) < 0)
            return 0;
        uint64_t mtime =
            (uint64_t)st.st_mtim.tv_sec * 1000 + (uint64_t)st.st_mtim.tv_nsec / 1000000;
        uint64_t now = hb_now_ms();
        if (now > mtime && now - mtime >= j->retain_ms)
            return 0;
    }
    return 1;
}

/* The received_at of a segment's first record, for the retained span in
 * /metrics; 0 when it cannot be read. Keeper thread. */
static uint64_t first_received_ms(const char *path)
{
    unsigned char b[HB_COMMIT_SIZE + HB_RECORD_HEADER + 8];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = hb_pread_full(fd, b, sizeof(b), 0);
    close(fd);
    size_t off = HB_COMMIT_SIZE; /* after the segment's header mark */
    if (n >= 4 && (b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24) == HB_RECORD_MAGIC)
        off = 0; /* a legacy segment starts with a record */
    if (n < (ssize_t)(off + HB_RECORD_HEADER + 8))
        return 0;
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[off + HB_RECORD_HEADER + (size_t)i];
    return v;
}

static int spare_recycle(hb_journal_t *j, const char *seg);

/* A published segment can become the spare (see spare_recycle) when one is
 * wanted and the file is whole: at least segment_bytes, all written.
 * Caller holds j->lock. */
static int recyclable(const hb_journal_t *j, const segment_t *s)
{
    return j->prealloc && !s->legacy && s->durable_size >= j->segment_bytes;
}

/* Delete every segment but the newest whose records all sinks have
 * published according to the persisted cursors, unless retention keeps
 * it: after a crash the cursors file must never point before the oldest
 * segment left. The first one while a spare is wanted is recycled
 * instead. Then publish the retained span. Keeper thread. */
static void delete_published(hb_journal_t *j)
{
    uint64_t min = UINT64_MAX;
    for (size_t i = 0; i < j->n_sinks; i++)
        if (j->persisted[i] < min)
            min = j->persisted[i];
    uint64_t retain = atomic_load(&j->retain_after);
    if (retain < min && atomic_load(&j->bytes) < j->low_water)
        min = retain;
    int deleted = 0;
    uint64_t published = 0;
    segment_t s = {0};
    for (;;) {
        pthread_mutex_lock(&j->lock);
        published = 0;
        for (size_t i = 0; i + 1 < j->nsegs && j->segs[i].end_seq <= min + 1; i++)
            published += j->segs[i].durable_size;
        int candidate = j->nsegs >= 2 && j->segs[0].end_seq <= min + 1;
        if (candidate)
            s = j->segs[0]; /* only this thread removes segments: s.path stays valid */
        pthread_mutex_unlock(&j->lock);
        if (!candidate || retained(j, &s, published))
            break;
        pthread_mutex_lock(&j->lock);
        memmove(j->segs, j->segs + 1, (j->nsegs - 1) * sizeof(*j->segs));
        j->nsegs--;
        int recycle = !j->spare_ready && recyclable(j, &s);
        pthread_mutex_unlock(&j->lock);
        if ((!recycle || spare_recycle(j, s.path) < 0) && unlink(s.path) < 0 && errno != ENOENT)
            hb_error(C, "cannot delete published segment %s: %s", s.path, strerror(errno));
        atomic_fetch_sub(&j->bytes, s.durable_size);
        hb_debug(C, "deleted segment %s (records %" PRIu64 "..%" PRIu64 ")", s.path, s.first_seq,
                 s.end_seq - 1);
        free(s.path);
        deleted = 1;
    }
    if (deleted)
        hb_fsync_dir(j->dir);
    if (!published) {
        atomic_store(&j->retained_oldest_ms, 0);
    } else if (s.first_seq != j->retained_first) { /* s is the oldest segment here */
        j->retained_first = s.first_seq;
        atomic_store(&j->retained_oldest_ms, first_received_ms(s.path));
    }
    atomic_store(&j->retained_bytes, published);
}

/* ---- recovery ---- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* What lies after the last committed byte, read from `from` to the end:
 * all zeros (a preallocated segment's unused part), and the highest
 * synced_end that any valid commit mark claims there; legacy segments
 * (no commit marks) ask instead whether any record decodes there. For a
 * recycled segment: whether any record or mark there belongs to the
 * segment's own range (seq >= first_seq), and the highest claim of those. */
typedef struct tail_info {
    int all_zero;
    uint64_t claim;
    int record_after;
    int fresh;
    uint64_t fresh_claim;
} tail_info_t;

/* Whether a record or a commit mark may begin at p: decoding is tried only
 * there (both magics begin with the same byte, found with memchr). */
static int magic_at(const unsigned char *p, size_t avail)
{
    if (avail < 4)
        return 0;
    uint32_t m = p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
    return m == HB_RECORD_MAGIC || m == HB_COMMIT_MAGIC;
}

_Static_assert((HB_RECORD_MAGIC & 0xff) == (HB_COMMIT_MAGIC & 0xff), "magics share a first byte");

static int scan_tail(int fd, uint64_t from, int legacy, uint64_t first_seq, tail_info_t *t)
{
    memset(t, 0, sizeof(*t));
    t->all_zero = 1;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -1;
    /* Legacy segments were never preallocated: read the tail whole, since
     * a record there may be of any size. Otherwise in chunks that overlap
     * by a commit mark, so that a 64 MiB zero tail costs no 64 MiB. */
    size_t chunk = legacy ? (size_t)((uint64_t)st.st_size - from) : ZERO_CHUNK;
    unsigned char *buf = hb_malloc(chunk + HB_COMMIT_SIZE);
    for (uint64_t off = from; off < (uint64_t)st.st_size;) {
        ssize_t n = hb_pread_full(fd, buf, chunk + HB_COMMIT_SIZE, (off_t)off);
        if (n < 0) {
            free(buf);
            return -1;
        }
        ssize_t scan = n > (ssize_t)chunk ? (ssize_t)chunk : n, i = 0;
        if (t->all_zero) {
            while (i < scan && buf[i] == 0)
                i++;
            t->all_zero = i == scan;
        }
        for (; i < scan; i++) {
            const unsigned char *h =
                memchr(buf + i, (int)(HB_RECORD_MAGIC & 0xff), (size_t)(scan - i));
            if (!h)
                break;
            i = h - buf;
            if (!magic_at(h, (size_t)(n - i)))
                continue;
            hb_record_t r;
            hb_commit_t c;
            size_t used;
            hb_decode_t d = hb_record_decode_any(h, (size_t)(n - i), &r, &c, &used);
            if (d == HB_DECODE_COMMIT) {
                if (c.synced_end > t->claim)
                    t->claim = c.synced_end;
                if (c.first_seq >= first_seq) {
                    t->fresh = 1;
                    if (c.synced_end > t->fresh_claim)
                        t->fresh_claim = c.synced_end;
                }
            } else if (d == HB_DECODE_OK) {
                if (off > from || i > 0)
                    t->record_after = 1;
                if (r.seq >= first_seq)
                    t->fresh = 1;
            }
        }
        if (n <= (ssize_t)chunk)
            break;
        off += chunk;
    }
    free(buf);
    return 0;
}

/* The state of a segment scan: the buffer holds the file from `base`,
 * anchored at the start of the batch being read so that its records can be
 * handed to on_record once its commit mark proves it whole. */
typedef struct scan {
    int fd;
    unsigned char *buf;
    size_t cap, end;
    uint64_t base;
} scan_t;

/* Make buf[from..) hold at least `want` more bytes if the file has them. */
static ssize_t scan_fill(scan_t *sc, size_t *anchor, size_t *cur)
{
    if (*anchor > 0) {
        memmove(sc->buf, sc->buf + *anchor, sc->end - *anchor);
        sc->end -= *anchor;
        *cur -= *anchor;
        sc->base += *anchor;
        *anchor = 0;
    }
    if (sc->end == sc->cap) {
        sc->cap *= 2;
        sc->buf = hb_realloc(sc->buf, sc->cap);
    }
    ssize_t n =
        hb_pread_full(sc->fd, sc->buf + sc->end, sc->cap - sc->end, (off_t)(sc->base + sc->end));
    if (n > 0)
        sc->end += (size_t)n;
    return n;
}

static void replay_batch(const scan_t *sc, size_t from, size_t to, const hb_journal_opts_t *o)
{
    while (o->on_record && from < to) {
        hb_record_t r;
        size_t used;
        if (hb_record_decode(sc->buf + from, to - from, &r, &used) != HB_DECODE_OK)
            break; /* cannot happen: decoded once already */
        o->on_record(&r, o->on_record_arg);
        from += used;
    }
}

/* Scan one segment: returns 0 and fills s, or -1 with err. Only records a
 * valid commit mark covers count (a legacy segment, written before commit
 * marks, counts every record up to the first bad byte). What follows the
 * last commit is a torn tail unless a later mark says it had been synced:
 * that is damage, and so is any bad byte in a segment that is not the
 * newest. A torn tail of the newest segment is cut off. */
static int scan_segment(hb_journal_t *j, segment_t *s, int last, const hb_journal_opts_t *o,
                        char *err, size_t errlen)
{
    scan_t sc = {.fd = -1};
    int rc = -1;
    int fix = last && !j->readonly; /* may sync and cut the newest segment */
    sc.fd = open(s->path, fix ? O_RDWR | O_CLOEXEC : O_RDONLY | O_CLOEXEC);
    if (sc.fd < 0) {
        snprintf(err, errlen, "%s: %s", s->path, strerror(errno));
        return -1;
    }
    /* What the page cache holds of the newest segment may never have
     * reached the disk (kill -9 between write and fdatasync): make it
     * durable before any of it is trusted (dedup ids, replays). */
    if (fix && (inject(j, "open-sync") < 0 || fdatasync(sc.fd) < 0)) {
        snprintf(err, errlen, "%s: fdatasync: %s", s->path, strerror(errno));
        goto cleanup;
    }
    sc.cap = 1 << 20;
    sc.buf = hb_malloc(sc.cap);
    size_t anchor = 0, cur = 0; /* batch start, next byte to decode */
    uint64_t expect = s->first_seq, batch_first = s->first_seq, committed_seq = s->first_seq;
    uint64_t committed_end = 0, claim = 0;
    uint32_t bcrc = 0;
    int legacy = -1; /* unknown until the first record */
    int recycled = 0;
    const char *why = NULL;
    for (;;) {
        hb_record_t r;
        hb_commit_t c;
        size_t used;
        hb_decode_t d = hb_record_decode_any(sc.buf + cur, sc.end - cur, &r, &c, &used);
        if (legacy < 0 && d != HB_DECODE_SHORT)
            legacy = d == HB_DECODE_OK;
        if (d == HB_DECODE_OK) {
            if (r.seq != expect) {
                why = "sequence gap";
                break;
            }
            expect++;
            cur += used;
            if (legacy) {
                if (o->on_record)
                    o->on_record(&r, o->on_record_arg);
                anchor = cur;
                committed_end = sc.base + cur;
                committed_seq = expect;
            } else {
                bcrc = hb_commit_crc_add(bcrc, sc.buf + cur - used);
            }
            continue;
        }
        if (d == HB_DECODE_COMMIT && !legacy) {
            int header =
                sc.base + cur == 0 && c.first_seq == 0 && c.last_seq == 0 && c.batch_bytes == 0;
            int whole = expect > batch_first && c.first_seq == batch_first &&
                        c.last_seq == expect - 1 && c.batch_bytes == (uint64_t)(cur - anchor) &&
                        c.batch_crc == bcrc;
            if (!header && !whole) {
                why = "commit mark that does not match its batch";
                break;
            }
            if (header)
                recycled = c.batch_crc == HB_JOURNAL_RECYCLED;
            replay_batch(&sc, anchor, cur, o);
            cur += used;
            anchor = cur;
            committed_end = sc.base + cur;
            committed_seq = batch_first = expect;
            bcrc = 0;
            if (c.synced_end > claim)
                claim = c.synced_end;
            continue;
        }
        if (d != HB_DECODE_SHORT) {
            why = "bad checksum or header";
            break;
        }
        ssize_t n = scan_fill(&sc, &anchor, &cur);
        if (n < 0) {
            snprintf(err, errlen, "%s: read: %s", s->path, strerror(errno));
            goto cleanup;
        }
        if (n == 0) {
            if (cur < sc.end || anchor < cur)
                why = "torn batch at the end";
            break;
        }
    }
    tail_info_t t;
    if (scan_tail(sc.fd, committed_end, legacy > 0, s->first_seq, &t) < 0) {
        snprintf(err, errlen, "%s: read: %s", s->path, strerror(errno));
        goto cleanup;
    }
    if (recycled) {
        /* only this life's records and marks are a tail; the rest are
         * an earlier life's, as good as zeros */
        t.all_zero = !t.fresh;
        t.claim = t.fresh_claim;
    }
    if (t.claim > claim)
        claim = t.claim;
    if (!t.all_zero) {
        int damaged = legacy > 0 ? t.record_after : committed_end < claim;
        if (!why)
            why = "bytes after the last commit";
        if (j->readonly) {
            s->why = why;
            s->bad_off = committed_end;
            s->torn = !damaged && last;
        } else if (damaged || !last) {
            snprintf(err, errlen,
                     "%s: %s at offset %" PRIu64 "%s; the journal is damaged, not torn; refusing "
                     "to start. To repair, copy the file away, then cut it at offset %" PRIu64
                     " (truncate -s %" PRIu64 "), losing the records after it%s, or restore it "
                     "from a backup",
                     s->path, why, committed_end,
                     damaged ? " below what was already synced"
                             : " in a segment that is not the "
                               "newest",
                     committed_end, committed_end,
                     last ? "" : ", and move every later segment away");
            goto cleanup;
        } else {
            hb_warn(C,
                    "%s: %s at offset %" PRIu64 ": cutting off the torn tail (records never "
                    "acknowledged as durable)",
                    s->path, why, committed_end);
            if (ftruncate(sc.fd, (off_t)committed_end) < 0 || fsync(sc.fd) < 0) {
                snprintf(err, errlen, "%s: cannot cut torn tail: %s", s->path, strerror(errno));
                goto cleanup;
            }
        }
    }
    s->end_seq = committed_seq;
    s->legacy = legacy > 0;
    s->durable_size = committed_end;
    rc = 0;
cleanup:
    free(sc.buf);
    close(sc.fd);
    return rc;
}

/* `cursor_max`: the highest sink cursor (0 if none). The writer only ever
 * jumps over sequence numbers to continue after a cursor that is ahead of
 * the records on disk (after an operator's repair cut records away), so a
 * hole between segments that ends at or below it is expected; any other
 * hole is damage. */
static int recover(hb_journal_t *j, const hb_journal_opts_t *o, uint64_t cursor_max, char *err,
                   size_t errlen)
{
    DIR *d = opendir(j->dir);
    if (!d) {
        snprintf(err, errlen, "%s: %s", j->dir, strerror(errno));
        return -1;
    }
    uint64_t *firsts = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        unsigned long long v = strtoull(e->d_name, &end, 10);
        if (end == e->d_name || strcmp(end, ".seg") != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            firsts = hb_realloc(firsts, cap * sizeof(*firsts));
        }
        firsts[n++] = v;
    }
    closedir(d);
    if (n)
        qsort(firsts, n, sizeof(*firsts), cmp_u64);
    int rc = 0;
    uint64_t total = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        segment_t *s = seg_add(j, firsts[i]);
        int hole = i > 0 && s->first_seq != j->segs[i - 1].end_seq &&
                   !(s->first_seq > j->segs[i - 1].end_seq && s->first_seq <= cursor_max + 1);
        if (hole && !j->readonly) {
            snprintf(err, errlen,
                     "%s: starts at record %" PRIu64 " but the previous segment ends "
                     "at %" PRIu64 "; the journal has a hole",
                     s->path, s->first_seq, j->segs[i - 1].end_seq - 1);
            rc = -1;
            break;
        }
        rc = scan_segment(j, s, i == n - 1, o, err, errlen);
        total += s->durable_size;
        if (hole && !s->why && !j->segs[i - 1].why) { /* a damaged one ends early */
            s->why = "a hole before it: records missing after the previous segment";
            s->bad_off = 0;
        }
    }
    free(firsts);
    atomic_store(&j->bytes, total);
    return rc;
}

/* ---- the spare segment (keeper thread) ---- */

static void spare_path(const hb_journal_t *j, char *out, size_t len, int tmp)
{
    snprintf(out, len, "%s/spare%s", j->dir, tmp ? ".tmp" : "");
}

/* Write a segment header and zeros up to segment_bytes, sync, and name it
 * "spare": when no published segment can be recycled. Skipped while the
 * disk is short of room: a spare must never be what makes an append fail
 * with ENOSPC. */
static void spare_make(hb_journal_t *j)
{
    char tmp[PATH_MAX], path[PATH_MAX];
    struct statvfs vfs;
    if (statvfs(j->dir, &vfs) == 0 &&
        (uint64_t)vfs.f_bavail * vfs.f_frsize < 4 * j->segment_bytes + (64u << 20))
        return;
    spare_path(j, tmp, sizeof(tmp), 1);
    spare_path(j, path, sizeof(path), 0);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        goto fail;
    unsigned char *zero = hb_calloc(1, ZERO_CHUNK);
    hb_commit_t hdr = {0};
    hb_commit_encode(&hdr, zero);
    int ok = 1;
    for (uint64_t off = 0; ok && off < j->segment_bytes; off += ZERO_CHUNK) {
        size_t n =
            j->segment_bytes - off < ZERO_CHUNK ? (size_t)(j->segment_bytes - off) : ZERO_CHUNK;
        ok = hb_write_full(fd, zero, n) == 0;
        if (off == 0)
            memset(zero, 0, HB_COMMIT_SIZE);
        /* To the disk a megabyte at a time, at most two in flight: left to
         * the final fdatasync, the whole segment reached the disk at once
         * and the writer's syncs queued behind it (17-24 ms each in the
         * bench, session 10). Hints only: their errors are fdatasync's. */
        (void)sync_file_range(fd, (off_t)off, (off_t)n, SYNC_FILE_RANGE_WRITE);
        if (off >= ZERO_CHUNK)
            (void)sync_file_range(fd, (off_t)(off - ZERO_CHUNK), ZERO_CHUNK,
                                  SYNC_FILE_RANGE_WAIT_BEFORE);
    }
    free(zero);
    if (!ok || fdatasync(fd) < 0 || close(fd) < 0) {
        fd = -1;
        goto fail;
    }
    if (rename(tmp, path) < 0)
        goto fail;
    pthread_mutex_lock(&j->lock);
    j->spare_ready = 1;
    pthread_mutex_unlock(&j->lock);
    return;
fail:
    if (!j->spare_fail_ms)
        hb_warn(C,
                "cannot prepare the next segment ahead of time (%s): segments grow as they "
                "are written instead",
                strerror(errno));
    j->spare_fail_ms = hb_mono_ms();
    if (fd >= 0)
        close(fd);
    unlink(tmp);
}

/* Make the published segment file `seg` the spare instead of deleting it:
 * its blocks are allocated and written already, so nothing is zero-filled.
 * It leaves the segment list first, by a rename to spare.tmp made durable,
 * so that a crash at any later step leaves a spare.tmp, which the next
 * start deletes; only then is its header mark made the recycled one, its
 * size set to segment_bytes (a last batch may have run past it), all of it
 * synced, and the file named "spare". 0 when seg is gone (recycled, or
 * deleted after a failure), -1 when it is untouched: the caller deletes it.
 * Keeper thread. */
static int spare_recycle(hb_journal_t *j, const char *seg)
{
    char tmp[PATH_MAX], path[PATH_MAX];
    spare_path(j, tmp, sizeof(tmp), 1);
    spare_path(j, path, sizeof(path), 0);
    if (rename(seg, tmp) < 0)
        return -1;
    unsigned char hdr[HB_COMMIT_SIZE];
    hb_commit_t c = {.batch_crc = HB_JOURNAL_RECYCLED};
    hb_commit_encode(&c, hdr);
    struct stat st;
    int fd = hb_fsync_dir(j->dir) < 0 ? -1 : open(tmp, O_RDWR | O_CLOEXEC);
    int ok =
        fd >= 0 && fstat(fd, &st) == 0 && (uint64_t)st.st_size >= j->segment_bytes &&
        pwrite_full(fd, hdr, sizeof(hdr), 0) == 0 &&
        ((uint64_t)st.st_size == j->segment_bytes || ftruncate(fd, (off_t)j->segment_bytes) == 0) &&
        fdatasync(fd) == 0;
    if (fd >= 0 && close(fd) < 0)
        ok = 0;
    if (!ok || rename(tmp, path) < 0) {
        hb_warn(C, "cannot recycle %s as the next segment (%s): deleting it", seg, strerror(errno));
        unlink(tmp);
        return 0; /* gone either way */
    }
    pthread_mutex_lock(&j->lock);
    j->spare_ready = 1;
    pthread_mutex_unlock(&j->lock);
    hb_debug(C, "recycled segment %s as the spare", seg);
    return 0;
}

/* Whether a segment that can be recycled is on its way to being published:
 * then the keeper waits for it rather than zero-fill. Caller holds j->lock. */
static int recycle_coming(const hb_journal_t *j)
{
    for (size_t i = 0; i + 1 < j->nsegs; i++)
        if (recyclable(j, &j->segs[i]))
            return 1;
    return 0;
}

/* ---- the writer ---- */

static void notify(listener_t *l)
{
    for (; l; l = l->next)
        l->fn(l->arg);
}

/* Hand every append of `list` back; none may be touched afterwards. */
static void finish(hb_append_t *list, int err)
{
    uint64_t now = list ? hb_mono_us() : 0;
    while (list) {
        hb_append_t *next = list->next;
        if (err)
            list->err = err;
        list->done_us = now;
        list->done(list);
        list = next;
    }
}

/* Write zeros over [from, to) of the active segment and sync: what a failed
 * batch left past the durable end must not survive in a segment that stops
 * being the newest, where recovery takes any such byte for damage. */
static int zero_range(hb_journal_t *j, uint64_t from, uint64_t to)
{
    unsigned char *zero = hb_calloc(1, ZERO_CHUNK);
    int rc = 0;
    for (uint64_t off = from; rc == 0 && off < to; off += ZERO_CHUNK) {
        size_t n = to - off < ZERO_CHUNK ? (size_t)(to - off) : ZERO_CHUNK;
        rc = pwrite_full(j->fd, zero, n, (off_t)off);
    }
    free(zero);
    return rc == 0 ? fdatasync(j->fd) : rc;
}

/* Make a new segment starting at next_seq the active one: the spare
 * renamed (header and zeros already durable) or else a new empty file. The
 * writer's state changes only on success; a failed rotation keeps writing
 * to the old segment, which is only larger than planned. */
static void rotate(hb_journal_t *j)
{
    char spare[PATH_MAX];
    if (j->whigh > j->wpos && zero_range(j, j->wpos, j->whigh) < 0) {
        hb_error(C,
                 "cannot clear what a failed batch left in %020" PRIu64 ".seg: %s; "
                 "writing on in it",
                 j->segs[j->nsegs - 1].first_seq, strerror(errno));
        return;
    }
    pthread_mutex_lock(&j->lock);
    if (j->next_seq <= j->segs[j->nsegs - 1].first_seq) {
        /* nothing durable in the active segment (a failed sync took it
         * back): the next one would take its name */
        pthread_mutex_unlock(&j->lock);
        return;
    }
    int use_spare = j->spare_ready;
    j->spare_ready = 0;
    segment_t *s = seg_add(j, j->next_seq);
    char *path = hb_strdup(s->path);
    pthread_mutex_unlock(&j->lock);

    spare_path(j, spare, sizeof(spare), 0);
    int fd = -1;
    uint64_t wpos = 0;
    if (use_spare && rename(spare, path) == 0) {
        fd = open(path, O_WRONLY | O_CLOEXEC);
        wpos = HB_COMMIT_SIZE; /* the header is there, durable */
    }
    if (fd < 0) {
        wpos = 0;
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    }
    if (fd < 0 || hb_fsync_dir(j->dir) < 0) {
        hb_error(C, "cannot start a new segment %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        unlink(path);
        pthread_mutex_lock(&j->lock);
        free(j->segs[--j->nsegs].path);
        pthread_mutex_unlock(&j->lock);
        free(path);
        return;
    }
    free(path);
    close(j->fd);
    j->fd = fd;
    j->wpos = j->whigh = wpos;
    j->active_prealloc = wpos > 0;
    pthread_mutex_lock(&j->lock);
    j->active_full_size = j->active_prealloc;
    j->segs[j->nsegs - 1].durable_size = wpos;
    j->synced = wpos;
    pthread_cond_signal(&j->kcond); /* time to make the next spare */
    pthread_mutex_unlock(&j->lock);
    atomic_fetch_add(&j->bytes, wpos);
}

/* `records`: how many answers waited for the step; 0: none counted (the
 * batch being built, or after a sync of ack = written deliveries, already
 * answered, the ones queued behind it). */
static void slow_step(const char *what, double seconds, uint64_t records)
{
    if (seconds * 1e3 < SLOW_STEP_MS)
        return;
    char n[48] = "the deliveries queued behind it";
    if (records)
        snprintf(n, sizeof(n), "%" PRIu64 " deliver%s", records, records == 1 ? "y" : "ies");
    hb_log_limited(HB_LOG_WARN, C, "slow-step",
                   "%s took %.0f ms and %s waited for it: the disk is slow", what, seconds * 1e3,
                   n);
}

/* After a failed sync, the failed span's bytes are zeroed and synced before
 * anything is written after them. Left in place, a later batch of the span
 * could follow the batches written over its start with the very sequence
 * numbers they continue and a valid commit mark, and recovery would take
 * back records whose sync failed (pages that a write-back error left clean
 * may not be on the disk at all). 0, or -1 (tail_dirty stays set and
 * batches are answered 503 until it works). */
static int clear_tail(hb_journal_t *j)
{
    if (j->whigh > j->wpos && zero_range(j, j->wpos, j->whigh) < 0) {
        j->tail_dirty = 1;
        return -1;
    }
    j->whigh = j->wpos;
    j->tail_dirty = 0;
    return 0;
}

/* Whether batches were written past the last sync (ack = written). The
 * writer alone writes j->synced, so it reads it without the lock. */
static int span_open(const hb_journal_t *j)
{
    return j->wpos > j->synced;
}

static uint64_t count_list(const hb_append_t *a)
{
    uint64_t n = 0;
    for (; a; a = a->next)
        n++;
    return n;
}

/* fdatasync what was written since the last sync (the unsynced span), then
 * hand back `durable`. A failed sync takes the whole span back: the writer
 * returns to its start and writes over it (clear_tail), and its sequence
 * numbers go to the next appends. 0, or -1 when the sync failed. */
static int sync_span(hb_journal_t *j, hb_append_t *durable)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = inject(j, "sync") < 0 ? -1 : fdatasync(j->fd), e = errno;
    double sync_s = since_s(&t0);
    hist_add(&j->h_sync, seconds_bounds, NBOUNDS(seconds_bounds), sync_s);
    /* the list is walked only for a line that is logged; a failed sync is
     * logged once, as the failure below */
    if (rc == 0 && sync_s * 1e3 >= SLOW_STEP_MS)
        slow_step("fdatasync", sync_s, count_list(durable));
    if (rc < 0) {
        uint64_t records = j->next_seq - j->unsynced_seq, waiting = count_list(durable);
        /* After a failed sync nothing can be said of those pages (a later
         * sync that succeeds proves nothing about them): the span is
         * answered 503 and written over. Deliveries already answered
         * under ack = written are lost with it: the risk that mode takes. */
        if (waiting)
            hb_error(C, "journal fdatasync failed: %s; answering %" PRIu64 " deliveries 503",
                     strerror(e), waiting);
        if (records > waiting)
            hb_error(C,
                     "journal fdatasync failed: %s; %" PRIu64 " deliveries answered under "
                     "ack = written are lost",
                     strerror(e), records - waiting);
        j->next_seq = j->unsynced_seq;
        j->wpos = j->synced;
        atomic_store(&j->failed, 1);
        if (clear_tail(j) < 0)
            hb_error(C, "cannot clear the failed bytes: %s; answering 503 until it works",
                     strerror(errno));
        finish(durable, e);
        return -1;
    }
    pthread_mutex_lock(&j->lock);
    segment_t *s = &j->segs[j->nsegs - 1];
    s->end_seq = j->next_seq;
    atomic_fetch_add(&j->bytes, j->wpos - s->durable_size);
    s->durable_size = j->wpos;
    j->synced = j->wpos;
    pthread_mutex_unlock(&j->lock);
    atomic_store(&j->durable_seq, j->next_seq - 1);
    atomic_store(&j->failed, 0);
    j->progress_owed = 1; /* the sinks are woken by writer_main */
    finish(durable, 0);
    return 0;
}

/* Write wbuf[0..len) (records first..next_seq-1 and their commit mark)
 * and hand `written` back; then make it durable and hand `durable` back,
 * unless the batch has no such appends and its sync may wait (see
 * SYNC_DEFER_US). */
static void emit(hb_journal_t *j, size_t len, uint64_t first, hb_append_t *durable,
                 hb_append_t *written)
{
    if (j->wpos + len > j->whigh)
        j->whigh = j->wpos + len; /* a failed write may have written some of it */
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int wrc = inject(j, "write") < 0 ? -1 : pwrite_full(j->fd, j->wbuf, len, (off_t)j->wpos);
    hist_add(&j->h_write, seconds_bounds, NBOUNDS(seconds_bounds), since_s(&t0));
    hist_add(&j->h_records, records_bounds, NBOUNDS(records_bounds), (double)(j->next_seq - first));
    if (wrc < 0) {
        int e = errno;
        hb_error(C, "journal write failed: %s; answering %" PRIu64 " deliveries 503", strerror(e),
                 j->next_seq - first);
        j->next_seq = first; /* its bytes get written over; an unsynced span before it stays */
        atomic_store(&j->failed, 1);
        finish(written, e);
        finish(durable, e);
        return;
    }
    finish(written, 0);
    if (!span_open(j)) {
        j->unsynced_seq = first;
        j->unsynced_us = hb_mono_us();
    }
    j->wpos += len;
    if (durable || j->wpos - j->synced >= SYNC_DEFER_BYTES ||
        hb_mono_us() - j->unsynced_us >= j->sync_defer_us)
        sync_span(j, durable);
}

/* A segment that grows as it is written (the first one, made at open, or
 * one made while no spare was ready) is left for the spare as soon as one
 * is ready, so that syncs stop committing size changes early. Only once it
 * holds a record: the next segment's name is its first record's seq. */
static int want_prealloc(hb_journal_t *j)
{
    if (j->active_prealloc || !j->prealloc)
        return 0;
    pthread_mutex_lock(&j->lock);
    int want = j->spare_ready && j->next_seq > j->segs[j->nsegs - 1].first_seq;
    pthread_mutex_unlock(&j->lock);
    return want;
}

static void ensure_wcap(hb_journal_t *j, size_t need)
{
    if (need <= j->wcap)
        return;
    while (need > j->wcap)
        j->wcap = j->wcap ? j->wcap * 2 : 1 << 20;
    j->wbuf = hb_realloc(j->wbuf, j->wcap);
}

static void write_batch(hb_journal_t *j, hb_append_t *batch)
{
    uint64_t taken = 0;
    /* Two lists, because done() hands an append back to its owner, who may
     * free it at once: an append must never be on a list we walk later. */
    hb_append_t *durable = NULL, **dtail = &durable, *written = NULL, **wtail = &written;
    hb_append_t *refused = NULL;
    size_t len = 0;
    uint32_t bcrc = 0;
    uint64_t first = 0, bytes = 0;
    int tail_tried = 0; /* clear_tail at most once per call: a failing disk is slow */

    for (hb_append_t *a = batch, *next; a; a = next) {
        next = a->next;
        a->next = NULL;
        /* taken at each part of a batch split by MAX_BATCH_BYTES: a record
         * of a later part waited for the earlier parts' write and sync,
         * which no histogram of its own counts */
        if (len == 0)
            taken = hb_mono_us();
        wait_add(&j->h_queue, a->queued_us, taken);
        if (len == 0) {
            /* the segment left behind must be whole on disk: after a
             * failed sync the writer stays in it (next_seq may be back
             * at its first record, the next segment's name) */
            int rotating = j->wpos >= j->segment_bytes || want_prealloc(j);
            if (rotating && span_open(j) && sync_span(j, NULL) < 0)
                rotating = 0;
            if (rotating) {
                struct timespec r0;
                clock_gettime(CLOCK_MONOTONIC, &r0);
                rotate(j);
                slow_step("segment rotation", since_s(&r0), 0);
            }
            /* retained segments are room: the keeper deletes them first
             * once the journal is over its low-water mark */
            bytes = atomic_load(&j->bytes);
            uint64_t kept = atomic_load(&j->retained_bytes);
            bytes = bytes > kept ? bytes - kept : 0;
            bytes += j->wpos - j->synced; /* an open span: not in j->bytes until synced */
            first = j->next_seq;
            bcrc = 0;
            if (j->wpos == 0) { /* a new file announces its format */
                hb_commit_t hdr = {0};
                ensure_wcap(j, HB_COMMIT_SIZE);
                hb_commit_encode(&hdr, j->wbuf);
                len = HB_COMMIT_SIZE;
            }
        }
        if (len == 0 && j->tail_dirty && (tail_tried || clear_tail(j) < 0)) {
            tail_tried = 1;
            a->err = EIO;
            a->next = refused;
            refused = a;
        } else if (bytes + len + a->len + HB_COMMIT_SIZE > j->max_bytes) {
            if (!atomic_exchange(&j->full, 1))
                hb_warn(C,
                        "journal full (%" PRIu64 " of %" PRIu64 " bytes): refusing new "
                        "deliveries with 503 until sinks catch up",
                        bytes + len, j->max_bytes);
            a->err = ENOSPC;
            a->next = refused;
            refused = a;
        } else {
            ensure_wcap(j, len + a->len + HB_COMMIT_SIZE);
            a->seq = j->next_seq++;
            a->err = 0;
            hb_record_seal(a->buf, a->seq);
            bcrc = hb_commit_crc_add(bcrc, a->buf);
            memcpy(j->wbuf + len, a->buf, a->len);
            len += a->len;
            if (a->stage == HB_STAGE_WRITTEN) {
                *wtail = a;
                wtail = &a->next;
            } else {
                *dtail = a;
                dtail = &a->next;
            }
        }
        int records = j->next_seq > first;
        if (records && (!next || len >= MAX_BATCH_BYTES)) {
            size_t hdr = j->wpos == 0 ? HB_COMMIT_SIZE : 0;
            pthread_mutex_lock(&j->lock);
            uint64_t synced = j->synced;
            pthread_mutex_unlock(&j->lock);
            hb_commit_t c = {
                .first_seq = first,
                .last_seq = j->next_seq - 1,
                .batch_bytes = len - hdr,
                .synced_end = synced,
                .batch_crc = bcrc,
            };
            hb_commit_encode(&c, j->wbuf + len);
            len += HB_COMMIT_SIZE;
            emit(j, len, first, durable, written);
            durable = written = NULL;
            dtail = &durable;
            wtail = &written;
            len = 0;
        } else if (!records && !next) {
            len = 0;
        }
    }
    finish(refused, 0);
}

/* Waking the sinks. Each wake-up of a sleeping sink thread is a system
 * call here and a context switch there, and a sink is off the
 * acknowledgement path, so while the writer goes from batch to batch the
 * sinks are told of new records at most every SINK_WAKE_MS; whenever the
 * writer runs out of work they are told at once, so nothing waits on a
 * quiet journal. */
#define SINK_WAKE_MS 2
static void tell_sinks(hb_journal_t *j, int idle)
{
    uint64_t now = hb_mono_ms();
    if (!idle && now - j->progress_ms < SINK_WAKE_MS)
        return;
    j->progress_owed = 0;
    j->progress_ms = now;
    notify(atomic_load(&j->progress));
}

static void *writer_main(void *arg)
{
    hb_journal_t *j = arg;
    hb_thread_name("hb-journal");
    for (;;) {
        pthread_mutex_lock(&j->lock);
        if (j->progress_owed) { /* writer-only: no other thread sets it */
            int idle = !j->qhead;
            pthread_mutex_unlock(&j->lock);
            tell_sinks(j, idle);
            pthread_mutex_lock(&j->lock);
        }
        while (!j->qhead && !j->stop) {
            j->writer_waiting = 1;
            if (!span_open(j)) {
                pthread_cond_wait(&j->wcond, &j->lock);
            } else {
                /* an unsynced span (ack = written): synced once nothing
                 * came for SYNC_IDLE_US, or when it is due */
                uint64_t now = hb_mono_us(), due = j->unsynced_us + j->sync_defer_us;
                if (due > now + SYNC_IDLE_US)
                    due = now + SYNC_IDLE_US;
                if (due > now) {
                    struct timespec ts = mono_after_us(due - now);
                    pthread_cond_timedwait(&j->wcond, &j->lock, &ts);
                }
                if (!j->qhead && hb_mono_us() >= due) {
                    j->writer_waiting = 0;
                    break;
                }
            }
            j->writer_waiting = 0;
        }
        hb_append_t *batch = j->qhead;
        int stop = j->stop;
        j->qhead = j->qtail = NULL;
        pthread_mutex_unlock(&j->lock);
        if (batch)
            write_batch(j, batch);
        else if (span_open(j))
            sync_span(j, NULL);
        else if (stop)
            break;
    }
    return NULL;
}

/* Cursor persistence, deletion (or recycling), the full flag's low-water
 * check and the spare segment: every CURSOR_PERSIST_MS, on a monotonic
 * clock so that a step of the wall clock never stalls them. */
static void *keeper_main(void *arg)
{
    hb_journal_t *j = arg;
    hb_thread_name("hb-jkeeper");
    pthread_mutex_lock(&j->lock);
    for (;;) {
        int stop = j->kstop;
        pthread_mutex_unlock(&j->lock);
        uint64_t now = hb_mono_ms();
        if (atomic_load(&j->cursors_dirty) &&
            (stop || now - j->last_persist_ms >= CURSOR_PERSIST_MS)) {
            j->last_persist_ms = now;
            if (cursors_persist(j) == 0)
                delete_published(j);
        }
        /* a moved retention limit may free segments with no cursor change,
         * and so may time passing or the journal growing under retention */
        uint64_t retain = atomic_load(&j->retain_after);
        if (retain != j->retain_seen || j->retain_ms || j->retain_bytes) {
            j->retain_seen = retain;
            delete_published(j);
        }
        if (atomic_load(&j->full) && atomic_load(&j->bytes) < j->low_water) {
            atomic_store(&j->full, 0);
            hb_info(C, "journal below its low-water mark (%" PRIu64 " bytes): accepting again",
                    atomic_load(&j->bytes));
        }
        pthread_mutex_lock(&j->lock);
        int need_spare = j->prealloc && !j->spare_ready, coming = recycle_coming(j);
        /* While the active segment is a whole one less than half full, a
         * segment on its way to being published is waited for however
         * long the sinks take (a sink a few seconds behind, as Kafka's is
         * under load, used to cost a zero-fill, as much disk work as the
         * records themselves); past half, the other half is the margin
         * for a zero-fill, or while the active segment grows as it is
         * written, one second at most. */
        uint64_t fill = j->segs[j->nsegs - 1].durable_size;
        int roomy = j->active_full_size && fill < j->segment_bytes / 2;
        pthread_mutex_unlock(&j->lock);
        if (!need_spare)
            j->spare_need_ms = 0;
        else if (!j->spare_need_ms)
            j->spare_need_ms = now;
        int wait = coming && (roomy || now - j->spare_need_ms < SPARE_WAIT_MS);
        if (need_spare && !stop && !wait &&
            (!j->spare_fail_ms || now - j->spare_fail_ms >= SPARE_RETRY_MS))
            spare_make(j);
        pthread_mutex_lock(&j->lock);
        if (stop)
            break;
        struct timespec ts = mono_after_us(CURSOR_PERSIST_MS * 1000u);
        if (!j->kstop)
            pthread_cond_timedwait(&j->kcond, &j->lock, &ts);
    }
    pthread_mutex_unlock(&j->lock);
    return NULL;
}

/* ---- public ---- */

static int start_thread(hb_journal_t *j, pthread_t *t, void *(*fn)(void *))
{
    if (pthread_create(t, NULL, fn, j) != 0)
        return -1;
    j->threads++;
    return 0;
}

/* Open (or create) the newest segment for writing at its durable end. */
static int open_active(hb_journal_t *j, char *err, size_t errlen)
{
    segment_t *s = &j->segs[j->nsegs - 1];
    int fd = open(s->path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || hb_fsync_dir(j->dir) < 0) {
        snprintf(err, errlen, "%s: %s", s->path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    struct stat st;
    j->fd = fd;
    j->wpos = j->whigh = s->durable_size;
    j->synced = s->durable_size;
    /* a zero tail past the durable end: it was a spare */
    j->active_prealloc = fstat(fd, &st) == 0 && (uint64_t)st.st_size >= j->segment_bytes &&
                         (uint64_t)st.st_size > s->durable_size;
    j->active_full_size = j->active_prealloc; /* before the threads start */
    return 0;
}

hb_journal_t *hb_journal_open(const hb_journal_opts_t *o, char *err, size_t errlen)
{
    if (o->n_sinks == 0 || o->n_sinks > HB_JOURNAL_MAX_SINKS) {
        snprintf(err, errlen, "journal: 1 to %d sinks", HB_JOURNAL_MAX_SINKS);
        return NULL;
    }
    hb_journal_t *j = hb_calloc(1, sizeof(*j));
    j->fd = -1;
    atomic_init(&j->retain_after, o->retain_all ? 0 : UINT64_MAX);
    j->dir = hb_strdup(o->dir);
    j->max_bytes = o->max_bytes;
    j->low_water = o->max_bytes / 10 * 9;
    j->prealloc = !o->no_prealloc;
    j->retain_ms = o->retain_ms;
    j->retain_bytes = o->retain_bytes;
    j->fault = o->fault;
    j->fault_arg = o->fault_arg;
    j->sync_defer_us = o->sync_defer_us ? o->sync_defer_us : SYNC_DEFER_US;
    j->segment_bytes = o->segment_bytes;
    if (!j->segment_bytes) {
        j->segment_bytes = o->max_bytes / 8;
        if (j->segment_bytes > (64u << 20))
            j->segment_bytes = 64u << 20;
        if (j->segment_bytes < 4096)
            j->segment_bytes = 4096;
    }
    j->n_sinks = o->n_sinks;
    j->sink_names = hb_calloc(o->n_sinks, sizeof(char *));
    for (size_t i = 0; i < o->n_sinks; i++)
        j->sink_names[i] = hb_strdup(o->sinks[i]);
    pthread_mutex_init(&j->lock, NULL);
    cond_init_mono(&j->wcond); /* the writer's waits for a due sync */
    cond_init_mono(&j->kcond);

    uint64_t vals[HB_JOURNAL_MAX_SINKS] = {0};
    int found[HB_JOURNAL_MAX_SINKS] = {0};
    char spare[PATH_MAX];
    if (hb_mkdir_p(j->dir, 0700) < 0) {
        snprintf(err, errlen, "journal.dir %s: %s", j->dir, strerror(errno));
        goto fail;
    }
    spare_path(j, spare, sizeof(spare), 1);
    unlink(spare); /* half made when we stopped */
    spare_path(j, spare, sizeof(spare), 0);
    struct stat st;
    j->spare_ready =
        j->prealloc && stat(spare, &st) == 0 && (uint64_t)st.st_size == j->segment_bytes;
    if (cursors_load(j, vals, found, err, errlen) < 0)
        goto fail;
    uint64_t cursor_max = 0;
    for (size_t i = 0; i < j->n_sinks; i++)
        if (found[i] && vals[i] > cursor_max)
            cursor_max = vals[i];
    if (recover(j, o, cursor_max, err, errlen) < 0)
        goto fail;

    /* Sequence numbers continue after everything ever seen, even when every
     * segment has been deleted, so that a new record is never at or below a
     * sink's cursor. */
    uint64_t last = j->nsegs ? j->segs[j->nsegs - 1].end_seq - 1 : 0;
    for (size_t i = 0; i < j->n_sinks; i++)
        if (found[i] && vals[i] > last)
            last = vals[i];
    j->next_seq = last + 1;
    uint64_t oldest = j->nsegs ? j->segs[0].first_seq : j->next_seq;
    for (size_t i = 0; i < j->n_sinks; i++) {
        /* A sink without a cursor (new in the config) gets everything kept. */
        uint64_t c = found[i] ? vals[i] : oldest - 1;
        if (c < oldest - 1)
            c = oldest - 1; /* its records were already deleted: published */
        atomic_store(&j->cursors[i], c);
        j->persisted[i] = c;
    }
    atomic_store(&j->min_cursor, min_of(j->cursors, j->n_sinks));
    atomic_store(&j->durable_seq, last);
    /* A new segment when the newest is full, and also when sequence numbers
     * jump past its end (a cursor ahead of the records on disk): a segment
     * never has a gap inside. */
    /* And after a legacy segment (no commit marks, from before they existed):
     * batches with marks appended to it would read as damage to its rules. */
    if (j->nsegs == 0 || j->segs[j->nsegs - 1].durable_size >= j->segment_bytes ||
        j->segs[j->nsegs - 1].end_seq != j->next_seq || j->segs[j->nsegs - 1].legacy)
        seg_add(j, j->next_seq);
    if (open_active(j, err, errlen) < 0)
        goto fail;
    if (cursors_persist(j) < 0) {
        snprintf(err, errlen, "journal: cannot write %s/cursors: %s", j->dir, strerror(errno));
        goto fail;
    }
    delete_published(j);
    if (atomic_load(&j->bytes) >= j->max_bytes)
        atomic_store(&j->full, 1);
    if (start_thread(j, &j->writer, writer_main) < 0 ||
        start_thread(j, &j->keeper, keeper_main) < 0) {
        snprintf(err, errlen, "journal: cannot start its threads");
        goto fail;
    }
    hb_info(C, "journal %s open: %zu segment(s), %" PRIu64 " bytes, next record %" PRIu64, j->dir,
            j->nsegs, atomic_load(&j->bytes), j->next_seq);
    return j;
fail:
    hb_journal_close(j);
    return NULL;
}

/* Stop one thread: set its flag under the lock, wake it, join. */
static void stop_thread(hb_journal_t *j, int *flag, pthread_cond_t *cond, pthread_t t, int idx)
{
    if (j->threads <= idx)
        return;
    pthread_mutex_lock(&j->lock);
    *flag = 1;
    pthread_cond_broadcast(cond);
    pthread_mutex_unlock(&j->lock);
    pthread_join(t, NULL);
}

void hb_journal_close(hb_journal_t *j)
{
    if (!j)
        return;
    /* the writer finishes the queue, then the keeper persists the cursors
     * one last time */
    stop_thread(j, &j->stop, &j->wcond, j->writer, 0);
    stop_thread(j, &j->kstop, &j->kcond, j->keeper, 1);
    if (j->threads && atomic_load(&j->cursors_dirty))
        cursors_persist(j);
    if (j->fd >= 0)
        close(j->fd);
    for (size_t i = 0; i < j->nsegs; i++)
        free(j->segs[i].path);
    free(j->segs);
    for (size_t i = 0; i < j->n_sinks; i++)
        free(j->sink_names[i]);
    free(j->sink_names);
    for (int k = 0; k < 2; k++) {
        for (listener_t *l = atomic_load(k ? &j->published : &j->progress), *next; l; l = next) {
            next = l->next;
            free(l);
        }
    }
    free(j->wbuf);
    free(j->dir);
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->wcond);
    pthread_cond_destroy(&j->kcond);
    free(j);
}

/* The journal a thread appended to while holding its wake-ups (see
 * hb_journal_hold), or NULL. */
static _Thread_local hb_journal_t *held_by_thread;
static _Thread_local int holding;
static _Thread_local unsigned held_n;

void hb_journal_append(hb_journal_t *j, hb_append_t *a)
{
    a->next = NULL;
    a->queued_us = hb_mono_us();
    pthread_mutex_lock(&j->lock);
    if (j->qtail)
        j->qtail->next = a;
    else
        j->qhead = a;
    j->qtail = a;
    /* One wake-up per batch: a writer busy with one takes the whole queue
     * when it is done, so only a sleeping writer is woken, and on a
     * holding thread not before the end of its loop pass. */
    int wake = j->writer_waiting && !holding;
    if (wake)
        j->writer_waiting = 0; /* the next append need not signal again */
    pthread_mutex_unlock(&j->lock);
    if (wake)
        pthread_cond_signal(&j->wcond);
    else if (holding) {
        held_by_thread = j;
        held_n++;
    }
}

unsigned hb_journal_held(void)
{
    return held_n;
}

void hb_journal_hold(int on)
{
    holding = on;
}

void hb_journal_release_held(void)
{
    hb_journal_t *j = held_by_thread;
    held_n = 0;
    if (!j)
        return;
    held_by_thread = NULL;
    pthread_mutex_lock(&j->lock);
    int wake = j->writer_waiting && j->qhead;
    if (wake)
        j->writer_waiting = 0;
    pthread_mutex_unlock(&j->lock);
    if (wake)
        pthread_cond_signal(&j->wcond);
}

int hb_journal_full(const hb_journal_t *j)
{
    return atomic_load(&((hb_journal_t *)j)->full);
}

int hb_journal_failed(const hb_journal_t *j)
{
    return atomic_load(&((hb_journal_t *)j)->failed);
}

void hb_journal_ack(hb_journal_t *j, size_t idx, uint64_t seq)
{
    uint64_t cur = atomic_load(&j->cursors[idx]);
    while (seq > cur && !atomic_compare_exchange_weak(&j->cursors[idx], &cur, seq))
        ;
    if (seq <= cur)
        return;
    atomic_store(&j->cursors_dirty, 1);
    /* listeners care about records published everywhere: tell them only
     * when that moved, not on every sink's every acknowledgement */
    uint64_t min = min_of(j->cursors, j->n_sinks), old = atomic_load(&j->min_cursor);
    while (min > old && !atomic_compare_exchange_weak(&j->min_cursor, &old, min))
        ;
    if (min > old)
        notify(atomic_load(&j->published));
}

uint64_t hb_journal_cursor(const hb_journal_t *j, size_t idx)
{
    return atomic_load(&((hb_journal_t *)j)->cursors[idx]);
}

uint64_t hb_journal_min_cursor(const hb_journal_t *j)
{
    return atomic_load(&((hb_journal_t *)j)->min_cursor);
}

uint64_t hb_journal_durable_seq(const hb_journal_t *j)
{
    return atomic_load(&((hb_journal_t *)j)->durable_seq);
}

uint64_t hb_journal_bytes(const hb_journal_t *j)
{
    return atomic_load(&((hb_journal_t *)j)->bytes);
}

uint64_t hb_journal_max_bytes(const hb_journal_t *j)
{
    return j->max_bytes;
}

size_t hb_journal_segments(const hb_journal_t *j)
{
    hb_journal_t *m = (hb_journal_t *)j;
    pthread_mutex_lock(&m->lock);
    size_t n = m->nsegs;
    pthread_mutex_unlock(&m->lock);
    return n;
}

void hb_journal_histograms(const hb_journal_t *j, hb_journal_hists_t *out)
{
    hist_read(&j->h_records, records_bounds, NBOUNDS(records_bounds), &out->records);
    hist_read(&j->h_write, seconds_bounds, NBOUNDS(seconds_bounds), &out->write_s);
    hist_read(&j->h_sync, seconds_bounds, NBOUNDS(seconds_bounds), &out->sync_s);
    hist_read(&j->h_queue, wait_bounds, NBOUNDS(wait_bounds), &out->queue_s);
    hist_read(&j->h_handoff, wait_bounds, NBOUNDS(wait_bounds), &out->handoff_s);
}

void hb_journal_handed_off(hb_journal_t *j, const hb_append_t *a, uint64_t now_us)
{
    wait_add(&j->h_handoff, a->done_us, now_us);
}

void hb_journal_retained(const hb_journal_t *j, uint64_t *bytes, uint64_t *oldest_ms)
{
    hb_journal_t *m = (hb_journal_t *)j;
    *bytes = atomic_load(&m->retained_bytes);
    *oldest_ms = atomic_load(&m->retained_oldest_ms);
}

void hb_journal_retain_after(hb_journal_t *j, uint64_t seq)
{
    atomic_store(&j->retain_after, seq);
}

static void listen_on(_Atomic(listener_t *) *list, void (*fn)(void *arg), void *arg)
{
    listener_t *l = hb_malloc(sizeof(*l));
    l->fn = fn;
    l->arg = arg;
    l->next = atomic_load(list);
    while (!atomic_compare_exchange_weak(list, &l->next, l))
        ;
}

void hb_journal_on_progress(hb_journal_t *j, void (*fn)(void *arg), void *arg)
{
    listen_on(&j->progress, fn, arg);
}

void hb_journal_on_published(hb_journal_t *j, void (*fn)(void *arg), void *arg)
{
    listen_on(&j->published, fn, arg);
}

/* ---- readers ---- */

hb_journal_reader_t *hb_journal_reader_new(hb_journal_t *j, uint64_t after_seq)
{
    hb_journal_reader_t *r = hb_calloc(1, sizeof(*r));
    r->j = j;
    r->after = after_seq;
    r->fd = -1;
    r->cap = 256 * 1024;
    r->buf = hb_malloc(r->cap);
    return r;
}

void hb_journal_reader_free(hb_journal_reader_t *r)
{
    if (!r)
        return;
    if (r->fd >= 0)
        close(r->fd);
    free(r->buf);
    free(r);
}

/* Open the segment holding record after+1. 1 opened, 0 none durable yet. */
static int reader_open(hb_journal_reader_t *r)
{
    hb_journal_t *j = r->j;
    char path[PATH_MAX];
    int have = 0;
    pthread_mutex_lock(&j->lock);
    for (size_t i = 0; i < j->nsegs; i++) {
        /* the first segment holding a durable record after r->after */
        if (j->segs[i].end_seq > r->after + 1) {
            r->seg_first = j->segs[i].first_seq;
            snprintf(path, sizeof(path), "%s", j->segs[i].path);
            have = 1;
            break;
        }
    }
    pthread_mutex_unlock(&j->lock);
    if (!have)
        return 0;
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        hb_error(C, "reader: %s: %s", path, strerror(errno));
        return -1;
    }
    r->off = 0;
    r->start = r->end = 0;
    return 1;
}

/* Durable size of the open segment and whether a newer one exists; 0
 * with *gone set when the segment left the list (deleted or recycled). */
static uint64_t reader_limit(hb_journal_reader_t *r, int *newer, int *gone)
{
    hb_journal_t *j = r->j;
    uint64_t limit = 0;
    int found = 0;
    pthread_mutex_lock(&j->lock);
    segment_t *s = seg_find(j, r->seg_first);
    if (s) {
        limit = s->durable_size;
        found = 1;
    }
    *newer = j->nsegs > 0 && j->segs[j->nsegs - 1].first_seq > r->seg_first;
    pthread_mutex_unlock(&j->lock);
    *gone = !found;
    return limit;
}

int hb_journal_reader_next(hb_journal_reader_t *r, hb_record_t *rec)
{
    for (;;) {
        if (r->fd < 0) {
            int rc = reader_open(r);
            if (rc <= 0)
                return rc;
        }
        size_t used;
        hb_decode_t d =
            hb_record_decode_any(r->buf + r->start, r->end - r->start, rec, NULL, &used);
        if (d == HB_DECODE_COMMIT) {
            r->start += used;
            continue;
        }
        if (d == HB_DECODE_OK) {
            r->start += used;
            if (rec->seq <= r->after)
                continue;
            r->after = rec->seq;
            return 1;
        }
        if (d == HB_DECODE_CORRUPT) {
            hb_error(C, "reader: corrupt record in segment %020" PRIu64 " at offset %" PRIu64,
                     r->seg_first, r->off + r->start);
            return -1;
        }
        int newer, gone;
        uint64_t limit = reader_limit(r, &newer, &gone);
        if (gone) {
            /* deleted or recycled: every sink is past it, and so are we. A
             * record begun in the buffer is not waited for (it never comes:
             * waiting ended a replay early, as if the journal had no more),
             * as when a read finds the segment gone below. */
            close(r->fd);
            r->fd = -1;
            r->start = r->end = 0;
            continue;
        }
        uint64_t pos = r->off + r->end;
        if (pos >= limit) {
            if (!newer || r->end > r->start)
                return 0; /* wait for more durable bytes */
            close(r->fd);
            r->fd = -1;
            continue;
        }
        r->off += r->start;
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
        if (r->end == r->cap) {
            r->cap *= 2;
            r->buf = hb_realloc(r->buf, r->cap);
        }
        size_t want = r->cap - r->end;
        if (want > limit - pos)
            want = (size_t)(limit - pos);
        ssize_t n = hb_pread_full(r->fd, r->buf + r->end, want, (off_t)pos);
        /* A segment leaves the list before its file is recycled, and only a
         * recycled file is written again: if it is still listed now, what
         * was read is its own; if not, it may be a later life's. Then the
         * segment is done with, as when it is found deleted (every sink is
         * past it; a replay says what the journal no longer holds). */
        pthread_mutex_lock(&r->j->lock);
        int listed = seg_find(r->j, r->seg_first) != NULL;
        pthread_mutex_unlock(&r->j->lock);
        if (!listed) {
            close(r->fd);
            r->fd = -1;
            r->start = r->end = 0;
            continue;
        }
        if (n <= 0) {
            hb_error(C, "reader: segment %020" PRIu64 ": %s", r->seg_first,
                     n < 0 ? strerror(errno) : "shorter than its durable size");
            return -1;
        }
        r->end += (size_t)n;
    }
}

/* ---- offline scans ---- */

typedef struct offline {
    hb_journal_t *j;
    void (*on_record)(const hb_record_t *r, void *arg);
    void *arg;
    uint64_t *first_ms, *last_ms; /* per segment, by index */
    size_t cap;
    uint64_t cursor_max;
    int cursors;
} offline_t;

static void offline_record(const hb_record_t *r, void *arg)
{
    offline_t *o = arg;
    size_t i = o->j->nsegs - 1; /* recovery scans the newest segment added */
    if (i >= o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 16;
        while (cap <= i)
            cap *= 2;
        o->first_ms = hb_realloc(o->first_ms, cap * sizeof(uint64_t));
        o->last_ms = hb_realloc(o->last_ms, cap * sizeof(uint64_t));
        memset(o->first_ms + o->cap, 0, (cap - o->cap) * sizeof(uint64_t));
        memset(o->last_ms + o->cap, 0, (cap - o->cap) * sizeof(uint64_t));
        o->cap = cap;
    }
    if (!o->first_ms[i] || r->received_at_ms < o->first_ms[i])
        o->first_ms[i] = r->received_at_ms;
    if (r->received_at_ms > o->last_ms[i])
        o->last_ms[i] = r->received_at_ms;
    if (o->on_record)
        o->on_record(r, o->arg);
}

static void offline_cursor(const char *name, uint64_t seq, void *arg)
{
    (void)name;
    offline_t *o = arg;
    if (seq > o->cursor_max)
        o->cursor_max = seq;
}

int hb_journal_scan(const char *dir, void (*on_record)(const hb_record_t *r, void *arg),
                    void (*on_segment)(const hb_journal_seg_info_t *s, void *arg), void *arg,
                    char *err, size_t errlen)
{
    hb_journal_t *j = hb_calloc(1, sizeof(*j));
    j->fd = -1;
    j->readonly = 1;
    j->dir = hb_strdup(dir);
    pthread_mutex_init(&j->lock, NULL);
    cond_init_mono(&j->wcond); /* as hb_journal_open's, though nothing waits here */
    cond_init_mono(&j->kcond);
    offline_t o = {.j = j, .on_record = on_record, .arg = arg};
    hb_journal_opts_t opts = {.dir = dir, .on_record = offline_record, .on_record_arg = &o};
    int rc = -1;
    o.cursors = hb_journal_read_cursors(dir, offline_cursor, &o, err, errlen);
    if (o.cursors < 0 || recover(j, &opts, o.cursor_max, err, errlen) < 0)
        goto cleanup;
    if (j->nsegs == 0 && o.cursors == 0) {
        snprintf(err, errlen, "%s: not a journal directory (no *.seg segments, no cursors file)",
                 dir);
        goto cleanup;
    }
    for (size_t i = 0; on_segment && i < j->nsegs; i++) {
        const segment_t *s = &j->segs[i];
        struct stat st;
        hb_journal_seg_info_t info = {
            .path = s->path,
            .first_seq = s->first_seq,
            .end_seq = s->end_seq,
            .committed_bytes = s->durable_size,
            .file_bytes = stat(s->path, &st) == 0 ? (uint64_t)st.st_size : 0,
            .first_ms = i < o.cap ? o.first_ms[i] : 0,
            .last_ms = i < o.cap ? o.last_ms[i] : 0,
            .damage = s->why,
            .damage_offset = s->bad_off,
            .torn = s->torn,
        };
        on_segment(&info, arg);
    }
    rc = (int)j->nsegs;
cleanup:
    free(o.first_ms);
    free(o.last_ms);
    hb_journal_close(j);
    return rc;
}
