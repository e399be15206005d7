/* The durable journal. See include/hb/journal.h for the contract.
 *
 * Layout of journal.dir:
 *   00000000000000000001.seg   records, named by the first sequence number
 *   cursors                    "<sink> <seq>" lines, replaced atomically
 *
 * Group commit (Redis aof.c, PostgreSQL's WAL writer): the HTTP threads
 * push prepared records onto a queue; the writer takes the whole queue,
 * copies it into one buffer, writes it with one write(2), calls fdatasync
 * once, and only then reports the batch durable. While it syncs, the next
 * batch gathers, so the cost of a sync is shared by every request that
 * arrived during the previous one.
 *
 * Readers only ever read up to a segment's durable size, so they never see
 * a record that a crash could still take back, nor a half-copied page. */
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
#include <time.h>
#include <unistd.h>

#define C "journal"
#define CURSOR_PERSIST_MS 200
#define MAX_PROGRESS 16

typedef struct segment {
    uint64_t first_seq;
    uint64_t end_seq;      /* one past the last durable record */
    uint64_t durable_size; /* bytes readers may read */
    char *path;
} segment_t;

typedef struct progress {
    void (*fn)(void *arg);
    void *arg;
} progress_t;

struct hb_journal {
    char *dir;
    uint64_t max_bytes, low_water, segment_bytes;
    size_t n_sinks;
    char **sink_names;
    _Atomic uint64_t cursors[HB_JOURNAL_MAX_SINKS];
    uint64_t persisted[HB_JOURNAL_MAX_SINKS]; /* writer thread only */
    atomic_int cursors_dirty;

    pthread_mutex_t lock; /* queue, stop, segs */
    pthread_cond_t cond;
    hb_append_t *qhead, *qtail;
    int stop;
    segment_t *segs;
    size_t nsegs, capsegs;

    /* writer thread only */
    int fd;           /* active (newest) segment */
    uint64_t fd_size; /* bytes written to it */
    uint64_t next_seq;
    unsigned char *wbuf;
    size_t wcap;
    uint64_t last_persist_ms;
    uint64_t retain_seen;

    _Atomic uint64_t durable_seq;
    _Atomic uint64_t retain_after; /* UINT64_MAX: none */
    _Atomic uint64_t bytes;
    atomic_int full, failed;
    progress_t progress[MAX_PROGRESS];
    atomic_int n_progress;
    pthread_t thread;
    int thread_started;
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

static int cursors_load(hb_journal_t *j, uint64_t *vals, int *found, char *err, size_t errlen)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/cursors", j->dir);
    char *text = hb_read_file(path, NULL);
    if (!text) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[64];
        unsigned long long v;
        if (sscanf(line, "%63s %llu", name, &v) != 2)
            continue;
        for (size_t i = 0; i < j->n_sinks; i++) {
            if (strcmp(name, j->sink_names[i]) == 0) {
                vals[i] = v;
                found[i] = 1;
            }
        }
    }
    free(text);
    return 0;
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

static uint64_t min_of(const uint64_t *v, size_t n)
{
    uint64_t m = UINT64_MAX;
    for (size_t i = 0; i < n; i++)
        if (v[i] < m)
            m = v[i];
    return m;
}

/* Delete every segment but the newest whose records all sinks have
 * published according to the persisted cursors: after a crash the cursors
 * file must never point before the oldest segment left. */
static void delete_published(hb_journal_t *j)
{
    uint64_t min = min_of(j->persisted, j->n_sinks);
    uint64_t retain = atomic_load(&j->retain_after);
    if (retain < min && atomic_load(&j->bytes) < j->low_water)
        min = retain;
    int deleted = 0;
    for (;;) {
        pthread_mutex_lock(&j->lock);
        if (j->nsegs < 2 || j->segs[0].end_seq > min + 1) {
            pthread_mutex_unlock(&j->lock);
            break;
        }
        segment_t s = j->segs[0];
        memmove(j->segs, j->segs + 1, (j->nsegs - 1) * sizeof(*j->segs));
        j->nsegs--;
        pthread_mutex_unlock(&j->lock);
        if (unlink(s.path) < 0 && errno != ENOENT)
            hb_error(C, "cannot delete published segment %s: %s", s.path, strerror(errno));
        atomic_fetch_sub(&j->bytes, s.durable_size);
        hb_debug(C, "deleted segment %s (records %" PRIu64 "..%" PRIu64 ")", s.path, s.first_seq,
                 s.end_seq - 1);
        free(s.path);
        deleted = 1;
    }
    if (deleted)
        hb_fsync_dir(j->dir);
}

/* ---- recovery ---- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Is there a record that decodes anywhere after `from`? Distinguishes a
 * torn tail (only garbage after the last good record) from damage in the
 * middle (good records after a bad one), which must not be cut silently. */
static int valid_record_after(int fd, uint64_t from)
{
    struct stat st;
    if (fstat(fd, &st) < 0 || (uint64_t)st.st_size <= from + 1)
        return 0;
    size_t len = (size_t)((uint64_t)st.st_size - from);
    unsigned char *buf = hb_malloc(len);
    ssize_t n = hb_pread_full(fd, buf, len, (off_t)from);
    int found = 0;
    for (ssize_t i = 1; n > 0 && i + HB_RECORD_HEADER <= n && !found; i++) {
        hb_record_t r;
        size_t used;
        found = hb_record_decode(buf + i, (size_t)(n - i), &r, &used) == HB_DECODE_OK;
    }
    free(buf);
    return found;
}

/* Scan one segment: returns 0 and fills s, or -1 with err. A bad tail is
 * cut off when `last`, else it is an error. */
static int scan_segment(hb_journal_t *j, segment_t *s, int last, const hb_journal_opts_t *o,
                        char *err, size_t errlen)
{
    int fd = open(s->path, last ? O_RDWR | O_CLOEXEC : O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", s->path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 20, start = 0, end = 0;
    unsigned char *buf = hb_malloc(cap);
    uint64_t off = 0, expect = s->first_seq;
    int rc = -1;
    const char *why = NULL;
    for (;;) {
        hb_record_t r;
        size_t used;
        hb_decode_t d = hb_record_decode(buf + start, end - start, &r, &used);
        if (d == HB_DECODE_OK) {
            if (r.seq != expect) {
                why = "sequence gap";
                break;
            }
            if (o->on_record)
                o->on_record(&r, o->on_record_arg);
            expect++;
            start += used;
            continue;
        }
        if (d == HB_DECODE_CORRUPT) {
            why = "bad checksum or header";
            break;
        }
        /* short: read more */
        off += start;
        memmove(buf, buf + start, end - start);
        end -= start;
        start = 0;
        if (end == cap) {
            cap *= 2;
            buf = hb_realloc(buf, cap);
        }
        ssize_t n = hb_pread_full(fd, buf + end, cap - end, (off_t)(off + end));
        if (n < 0) {
            snprintf(err, errlen, "%s: read: %s", s->path, strerror(errno));
            goto cleanup;
        }
        if (n == 0) {
            if (end > 0)
                why = "torn record at the end";
            break;
        }
        end += (size_t)n;
    }
    uint64_t good = off + start;
    int gap = why && strcmp(why, "sequence gap") == 0; /* a valid record, out of order */
    if (why && last && !gap && !valid_record_after(fd, good)) {
        /* only garbage follows: a torn tail */
    } else if (why && last) {
        snprintf(err, errlen,
                 "%s: %s at offset %" PRIu64 " with valid records after it: the journal is "
                 "damaged, not torn; refusing to start. To repair, copy the file away, then cut "
                 "it at offset %" PRIu64 " (truncate -s %" PRIu64 ") to lose the records after "
                 "the damage, or restore it from a backup",
                 s->path, why, good, good, good);
        goto cleanup;
    }
    if (why) {
        if (!last) {
            snprintf(err, errlen,
                     "%s: %s at offset %" PRIu64 " in a segment that is not the newest; refusing "
                     "to start. To repair, move this file and every later segment out of %s "
                     "(their records after offset %" PRIu64 " are lost)",
                     s->path, why, good, j->dir, good);
            goto cleanup;
        }
        struct stat st;
        fstat(fd, &st);
        hb_warn(C,
                "%s: %s at offset %" PRIu64 ": cutting off %" PRIu64
                " bytes (records never acknowledged as durable)",
                s->path, why, good, (uint64_t)st.st_size - good);
        if (ftruncate(fd, (off_t)good) < 0 || fsync(fd) < 0) {
            snprintf(err, errlen, "%s: cannot cut torn tail: %s", s->path, strerror(errno));
            goto cleanup;
        }
    }
    s->end_seq = expect;
    s->durable_size = good;
    rc = 0;
cleanup:
    free(buf);
    close(fd);
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
        if (i > 0 && s->first_seq != j->segs[i - 1].end_seq &&
            !(s->first_seq > j->segs[i - 1].end_seq && s->first_seq <= cursor_max + 1)) {
            snprintf(err, errlen,
                     "%s: starts at record %" PRIu64 " but the previous segment ends "
                     "at %" PRIu64 "; the journal has a hole",
                     s->path, s->first_seq, j->segs[i - 1].end_seq - 1);
            rc = -1;
            break;
        }
        rc = scan_segment(j, s, i == n - 1, o, err, errlen);
        total += s->durable_size;
    }
    free(firsts);
    atomic_store(&j->bytes, total);
    return rc;
}

/* Make the newest segment the one written to. The writer's state (fd,
 * fd_size) changes only on success; a segment file this call created is
 * removed again on failure, so a failed rotation leaves no trace. */
static int open_active(hb_journal_t *j, char *err, size_t errlen)
{
    segment_t *s = &j->segs[j->nsegs - 1];
    int existed = access(s->path, F_OK) == 0;
    int fd = open(s->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", s->path, strerror(errno));
        return -1;
    }
    if (hb_fsync_dir(j->dir) < 0) {
        snprintf(err, errlen, "%s: fsync: %s", j->dir, strerror(errno));
        close(fd);
        if (!existed)
            unlink(s->path);
        return -1;
    }
    j->fd = fd;
    j->fd_size = s->durable_size;
    return 0;
}

/* ---- the writer ---- */

static void notify_progress(hb_journal_t *j)
{
    int n = atomic_load(&j->n_progress);
    for (int i = 0; i < n; i++)
        j->progress[i].fn(j->progress[i].arg);
}

/* Hand every append of `list` back; none may be touched afterwards. */
static void finish(hb_append_t *list, int err)
{
    while (list) {
        hb_append_t *next = list->next;
        if (err)
            list->err = err;
        list->done(list);
        list = next;
    }
}

static void rotate_if_needed(hb_journal_t *j)
{
    /* never with undurable bytes at the end: they belong to this segment */
    if (j->fd_size < j->segment_bytes || j->fd_size != j->segs[j->nsegs - 1].durable_size)
        return;
    char err[256];
    int oldfd = j->fd;
    pthread_mutex_lock(&j->lock);
    seg_add(j, j->next_seq);
    pthread_mutex_unlock(&j->lock);
    if (open_active(j, err, sizeof(err)) < 0) {
        /* Keep writing to the old segment: it is only larger than planned
         * (open_active left fd and fd_size as they were). */
        hb_error(C, "cannot start a new segment: %s", err);
        pthread_mutex_lock(&j->lock);
        free(j->segs[--j->nsegs].path);
        pthread_mutex_unlock(&j->lock);
        return;
    }
    close(oldfd);
}

static void write_batch(hb_journal_t *j, hb_append_t *batch)
{
    /* Two lists, because done() hands an append back to its owner, who may
     * free it at once: an append must never be on a list we walk later. */
    hb_append_t *durable = NULL, **dtail = &durable, *written = NULL, **wtail = &written;
    hb_append_t *refused = NULL;
    size_t len = 0;
    uint64_t first = j->next_seq, bytes = atomic_load(&j->bytes);

    rotate_if_needed(j);
    for (hb_append_t *a = batch, *next; a; a = next) {
        next = a->next;
        a->next = NULL;
        if (bytes + len + a->len > j->max_bytes) {
            if (!atomic_exchange(&j->full, 1))
                hb_warn(C,
                        "journal full (%" PRIu64 " of %" PRIu64 " bytes): refusing new "
                        "deliveries with 503 until sinks catch up",
                        bytes + len, j->max_bytes);
            a->err = ENOSPC;
            a->next = refused;
            refused = a;
            continue;
        }
        if (len + a->len > j->wcap) {
            while (len + a->len > j->wcap)
                j->wcap = j->wcap ? j->wcap * 2 : 1 << 20;
            j->wbuf = hb_realloc(j->wbuf, j->wcap);
        }
        a->seq = j->next_seq++;
        a->err = 0;
        hb_record_seal(a->buf, a->seq);
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
    finish(refused, 0);
    if (!len)
        return;

    if (hb_write_full(j->fd, j->wbuf, len) < 0) {
        int e = errno;
        hb_error(C, "journal write failed: %s; answering %" PRIu64 " deliveries 503", strerror(e),
                 j->next_seq - first);
        if (ftruncate(j->fd, (off_t)j->fd_size) < 0)
            hb_error(C, "cannot cut the failed write: %s", strerror(errno));
        j->next_seq = first;
        atomic_store(&j->failed, 1);
        finish(written, e);
        finish(durable, e);
        return;
    }
    j->fd_size += len;
    finish(written, 0);
    if (fdatasync(j->fd) < 0) {
        /* After a failed sync nothing can be said of those pages (a later
         * sync that succeeds proves nothing about them), so the batch is
         * cut off and answered 503: its records are never published, and
         * the journal stays exactly as durable as it was. Deliveries of
         * the batch already answered under ack = written are lost with it:
         * that is the risk that mode takes. */
        int e = errno;
        hb_error(C, "journal fdatasync failed: %s; answering the batch 503", strerror(e));
        if (ftruncate(j->fd, (off_t)(j->fd_size - len)) < 0)
            hb_error(C, "cannot cut the unsynced batch: %s", strerror(errno));
        j->fd_size -= len;
        j->next_seq = first;
        atomic_store(&j->failed, 1);
        finish(durable, e);
        return;
    }
    atomic_store(&j->failed, 0);
    pthread_mutex_lock(&j->lock);
    segment_t *s = &j->segs[j->nsegs - 1];
    s->end_seq = j->next_seq;
    atomic_fetch_add(&j->bytes, j->fd_size - s->durable_size);
    s->durable_size = j->fd_size;
    pthread_mutex_unlock(&j->lock);
    atomic_store(&j->durable_seq, j->next_seq - 1);
    finish(durable, 0);
    notify_progress(j);
}

static void *writer_main(void *arg)
{
    hb_journal_t *j = arg;
    for (;;) {
        pthread_mutex_lock(&j->lock);
        while (!j->qhead && !j->stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += CURSOR_PERSIST_MS * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            if (pthread_cond_timedwait(&j->cond, &j->lock, &ts) == ETIMEDOUT)
                break;
        }
        hb_append_t *batch = j->qhead;
        int stop = j->stop;
        j->qhead = j->qtail = NULL;
        pthread_mutex_unlock(&j->lock);

        if (batch)
            write_batch(j, batch);
        /* the low-water check runs every pass, not only after a deletion:
         * a refused oversized record may leave the journal far from full */
        if (atomic_load(&j->full) && atomic_load(&j->bytes) < j->low_water) {
            atomic_store(&j->full, 0);
            hb_info(C, "journal below its low-water mark (%" PRIu64 " bytes): accepting again",
                    atomic_load(&j->bytes));
        }
        uint64_t now = hb_mono_ms();
        if (atomic_load(&j->cursors_dirty) &&
            (stop || now - j->last_persist_ms >= CURSOR_PERSIST_MS)) {
            j->last_persist_ms = now;
            if (cursors_persist(j) == 0)
                delete_published(j);
        }
        /* a moved retention limit may free segments with no cursor change */
        uint64_t retain = atomic_load(&j->retain_after);
        if (retain != j->retain_seen) {
            j->retain_seen = retain;
            delete_published(j);
        }
        if (stop && !batch)
            break;
    }
    return NULL;
}

/* ---- public ---- */

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
    pthread_cond_init(&j->cond, NULL);

    uint64_t vals[HB_JOURNAL_MAX_SINKS] = {0};
    int found[HB_JOURNAL_MAX_SINKS] = {0};
    if (hb_mkdir_p(j->dir, 0700) < 0) {
        snprintf(err, errlen, "journal.dir %s: %s", j->dir, strerror(errno));
        goto fail;
    }
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
    atomic_store(&j->durable_seq, last);
    /* A new segment when the newest is full, and also when sequence numbers
     * jump past its end (a cursor ahead of the records on disk): a segment
     * never has a gap inside. */
    if (j->nsegs == 0 || j->segs[j->nsegs - 1].durable_size >= j->segment_bytes ||
        j->segs[j->nsegs - 1].end_seq != j->next_seq)
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
    if (pthread_create(&j->thread, NULL, writer_main, j) != 0) {
        snprintf(err, errlen, "journal: cannot start writer thread");
        goto fail;
    }
    j->thread_started = 1;
    hb_info(C, "journal %s open: %zu segment(s), %" PRIu64 " bytes, next record %" PRIu64, j->dir,
            j->nsegs, atomic_load(&j->bytes), j->next_seq);
    return j;
fail:
    hb_journal_close(j);
    return NULL;
}

void hb_journal_close(hb_journal_t *j)
{
    if (!j)
        return;
    if (j->thread_started) {
        pthread_mutex_lock(&j->lock);
        j->stop = 1;
        pthread_cond_signal(&j->cond);
        pthread_mutex_unlock(&j->lock);
        pthread_join(j->thread, NULL);
        if (atomic_load(&j->cursors_dirty))
            cursors_persist(j);
    }
    if (j->fd >= 0)
        close(j->fd);
    for (size_t i = 0; i < j->nsegs; i++)
        free(j->segs[i].path);
    free(j->segs);
    for (size_t i = 0; i < j->n_sinks; i++)
        free(j->sink_names[i]);
    free(j->sink_names);
    free(j->wbuf);
    free(j->dir);
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->cond);
    free(j);
}

void hb_journal_append(hb_journal_t *j, hb_append_t *a)
{
    a->next = NULL;
    pthread_mutex_lock(&j->lock);
    if (j->qtail)
        j->qtail->next = a;
    else
        j->qhead = a;
    j->qtail = a;
    pthread_cond_signal(&j->cond);
    pthread_mutex_unlock(&j->lock);
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
    if (seq > cur) {
        atomic_store(&j->cursors_dirty, 1);
        notify_progress(j);
    }
}

uint64_t hb_journal_cursor(const hb_journal_t *j, size_t idx)
{
    return atomic_load(&((hb_journal_t *)j)->cursors[idx]);
}

uint64_t hb_journal_min_cursor(const hb_journal_t *j)
{
    uint64_t m = UINT64_MAX;
    for (size_t i = 0; i < j->n_sinks; i++) {
        uint64_t c = atomic_load(&((hb_journal_t *)j)->cursors[i]);
        if (c < m)
            m = c;
    }
    return m;
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

void hb_journal_retain_after(hb_journal_t *j, uint64_t seq)
{
    atomic_store(&j->retain_after, seq);
}

void hb_journal_on_progress(hb_journal_t *j, void (*fn)(void *arg), void *arg)
{
    int n = atomic_load(&j->n_progress);
    if (n >= MAX_PROGRESS)
        hb_oom("journal progress callbacks");
    j->progress[n].fn = fn;
    j->progress[n].arg = arg;
    atomic_store(&j->n_progress, n + 1);
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

/* Durable size of the open segment and whether a newer one exists. */
static uint64_t reader_limit(hb_journal_reader_t *r, int *newer)
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
    if (!found) /* deleted: every sink is past it, and so are we */
        limit = r->off + r->end;
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
        hb_decode_t d = hb_record_decode(r->buf + r->start, r->end - r->start, rec, &used);
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
        int newer;
        uint64_t limit = reader_limit(r, &newer);
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
        if (n <= 0) {
            hb_error(C, "reader: segment %020" PRIu64 ": %s", r->seg_first,
                     n < 0 ? strerror(errno) : "shorter than its durable size");
            return -1;
        }
        r->end += (size_t)n;
    }
}
