/* The durable journal, driven through its public interface only: appends
 * complete on the writer thread (waited for with a condition variable and
 * a bounded deadline), records read back byte for byte, cursors, reopen,
 * torn-tail recovery, corruption, segment rotation and deletion, the full
 * state and several sinks. Each test works in its own mkdtemp directory.
 *
 * Waits are bounded: for an append, until its done() ran (30 s at most);
 * for the writer's periodic work (cursor persistence every ~200 ms, then
 * segment deletion), polling an observable outcome for a few seconds. */
#include "test.h"

#include "hb/journal.h"
#include "hb/log.h"
#include "hb/record.h"
#include "hb/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TOPIC "test.topic"
#define APP "ws1"
#define REC_OVERHEAD (HB_RECORD_HEADER + HB_RECORD_FIXED + 10 + 3)
#define H HB_COMMIT_SIZE /* a segment's header, and the mark closing each batch */
#define APPEND_WAIT_S 30
#define POLL_MS 5000

/* ---- appends ---- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

typedef struct tappend {
    hb_append_t a; /* first: done() gets &a */
    int done;      /* under mu */
    pthread_t thread;
} tappend_t;

static void on_done(hb_append_t *a)
{
    tappend_t *t = (tappend_t *)a;
    pthread_mutex_lock(&mu);
    t->done = 1;
    t->thread = pthread_self();
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* Body number k of bsize bytes: a JSON object that names k, padded. */
static void make_body(int k, size_t bsize, char *out)
{
    int n = snprintf(out, bsize + 1, "{\"topic\":\"" TOPIC "\",\"k\":%d,\"pad\":\"", k);
    size_t i = (size_t)n;
    for (; i + 2 < bsize; i++)
        out[i] = (char)('a' + (k + (int)i) % 26);
    out[i++] = '"';
    out[i++] = '}';
    out[i] = '\0';
}

static tappend_t *make_append(int k, size_t bsize, hb_stage_t stage)
{
    char *body = malloc(bsize + 1);
    make_body(k, bsize, body);
    hb_record_t r = {
        .received_at_ms = 1768000000000u + (uint64_t)k,
        .delivery_attempts = 1,
        .created_at = 1768000000 + k,
        .topic = TOPIC,
        .topic_len = strlen(TOPIC),
        .app_id = APP,
        .app_id_len = strlen(APP),
        .id = NULL,
        .body = (const unsigned char *)body,
        .body_len = bsize,
    };
    tappend_t *t = calloc(1, sizeof(*t));
    t->a.buf = malloc(hb_record_size(&r));
    t->a.len = hb_record_prepare(&r, t->a.buf);
    t->a.stage = stage;
    t->a.done = on_done;
    t->a.err = -1;
    free(body);
    return t;
}

static void free_append(tappend_t *t)
{
    if (t) {
        free(t->a.buf);
        free(t);
    }
}

/* Wait until every one of ts[0..n) is done; 1 if so within the deadline. */
static int wait_all(tappend_t **ts, int n)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += APPEND_WAIT_S;
    int all = 0;
    pthread_mutex_lock(&mu);
    for (;;) {
        all = 1;
        for (int i = 0; i < n; i++)
            if (!ts[i]->done)
                all = 0;
        if (all || pthread_cond_timedwait(&cv, &mu, &dl) == ETIMEDOUT)
            break;
    }
    if (!all) {
        all = 1;
        for (int i = 0; i < n; i++)
            if (!ts[i]->done)
                all = 0;
    }
    pthread_mutex_unlock(&mu);
    return all;
}

/* Append records k0..k0+n-1 (bodies of bsize) in batches of `wave` queued
 * at once, each wave waited for before the next (so that the writer sees
 * separate batches and may rotate between them). Fills seqs/errs when not
 * NULL. Returns 1 if every append completed in time. */
static int append_range(hb_journal_t *j, int k0, int n, size_t bsize, int wave, uint64_t *seqs,
                        int *errs)
{
    int ok_all = 1;
    tappend_t **ts = calloc((size_t)n, sizeof(*ts));
    for (int i = 0; i < n; i += wave) {
        int m = n - i < wave ? n - i : wave;
        for (int w = 0; w < m; w++) {
            ts[i + w] = make_append(k0 + i + w, bsize, HB_STAGE_DURABLE);
            hb_journal_append(j, &ts[i + w]->a);
        }
        if (!wait_all(ts + i, m)) {
            ok_all = 0;
            /* leak the stragglers rather than free what the writer holds */
            for (int w = 0; w < m; w++)
                if (!ts[i + w]->done)
                    ts[i + w] = NULL;
            break;
        }
    }
    for (int i = 0; i < n; i++) {
        if (ts[i]) {
            if (seqs)
                seqs[i] = ts[i]->a.seq;
            if (errs)
                errs[i] = ts[i]->a.err;
        }
        free_append(ts[i]);
    }
    free(ts);
    return ok_all;
}

/* Append one record; returns its err and fills *seq. */
static int append_one(hb_journal_t *j, int k, size_t bsize, uint64_t *seq)
{
    uint64_t s = 0;
    int e = -1;
    if (!append_range(j, k, 1, bsize, 1, &s, &e))
        return -2;
    if (seq)
        *seq = s;
    return e;
}

/* ---- reading ---- */

/* Read every durable record after `after`; check that seqs are after+1,
 * after+2, ... and that the record with seq s has body k = s - seq0 + k0
 * (bodies of bsize). Returns the number read, or -1 on a mismatch. */
static int read_check(hb_journal_t *j, uint64_t after, uint64_t seq0, int k0, size_t bsize)
{
    hb_journal_reader_t *r = hb_journal_reader_new(j, after);
    char *want = malloc(bsize + 1);
    hb_record_t rec;
    int n = 0, rc, bad = 0;
    uint64_t expect = after + 1;
    while ((rc = hb_journal_reader_next(r, &rec)) == 1) {
        int k = (int)(rec.seq - seq0) + k0;
        make_body(k, bsize, want);
        if (rec.seq != expect) {
            diag("read seq %" PRIu64 ", want %" PRIu64, rec.seq, expect);
            bad = 1;
            break;
        }
        if (rec.body_len != bsize || memcmp(rec.body, want, bsize) != 0 ||
            rec.topic_len != strlen(TOPIC) || memcmp(rec.topic, TOPIC, rec.topic_len) != 0 ||
            !rec.app_id || rec.app_id_len != 3 || memcmp(rec.app_id, APP, 3) != 0 || rec.id ||
            rec.received_at_ms != 1768000000000u + (uint64_t)k ||
            rec.created_at != 1768000000 + k || rec.delivery_attempts != 1) {
            diag("record %" PRIu64 " (body %d) differs from what was appended", rec.seq, k);
            bad = 1;
            break;
        }
        expect++;
        n++;
    }
    if (rc < 0) {
        diag("hb_journal_reader_next failed after %d records", n);
        bad = 1;
    }
    free(want);
    hb_journal_reader_free(r);
    return bad ? -1 : n;
}

/* ---- files ---- */

static void mk_tmpdir(char *out, size_t len, const char *name)
{
    snprintf(out, len, "/tmp/hb-test-journal-%s.XXXXXX", name);
    if (!mkdtemp(out)) {
        perror("mkdtemp");
        abort();
    }
}

static void rm_tmpdir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[4096];
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The *.seg files of dir, by first seq (from the name). Returns the count. */
static int list_segs(const char *dir, uint64_t *firsts, int max)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 4, ".seg") != 0)
            continue;
        if (n < max)
            firsts[n] = strtoull(e->d_name, NULL, 10);
        n++;
    }
    if (d)
        closedir(d);
    qsort(firsts, (size_t)(n < max ? n : max), sizeof(*firsts), cmp_u64);
    return n;
}

static void seg_path(const char *dir, uint64_t first, char *out, size_t len)
{
    snprintf(out, len, "%s/%020" PRIu64 ".seg", dir, first);
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static uint64_t dir_seg_bytes(const char *dir)
{
    uint64_t f[256], total = 0;
    int n = list_segs(dir, f, 256);
    char p[4096];
    for (int i = 0; i < n && i < 256; i++) {
        seg_path(dir, f[i], p, sizeof(p));
        total += (uint64_t)file_size(p);
    }
    return total;
}

static void xor_byte(const char *path, off_t off, unsigned char x)
{
    int fd = open(path, O_RDWR);
    unsigned char b;
    if (fd < 0 || pread(fd, &b, 1, off) != 1) {
        perror(path);
        abort();
    }
    b ^= x;
    if (pwrite(fd, &b, 1, off) != 1)
        abort();
    close(fd);
}

static void append_bytes(const char *path, unsigned char byte, size_t n)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    unsigned char *b = malloc(n);
    memset(b, byte, n);
    if (fd < 0 || write(fd, b, n) != (ssize_t)n) {
        perror(path);
        abort();
    }
    free(b);
    close(fd);
}

static int file_contains(const char *path, const char *s)
{
    unsigned char *t = test_slurp(path, NULL);
    int r = t && strstr((char *)t, s) != NULL;
    free(t);
    return r;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Until the journal counts `want` segments and has finished deleting the
 * others: the list shrinks first, then the file goes and the byte count
 * follows, so wait for all three to agree. */
static int segments_settled(hb_journal_t *j, const char *dir, size_t want)
{
    uint64_t f[256];
    return hb_journal_segments(j) == want && list_segs(dir, f, 256) == (int)want &&
           hb_journal_bytes(j) == dir_seg_bytes(dir);
}

static int poll_segments(hb_journal_t *j, const char *dir, size_t want, int ms)
{
    uint64_t end = mono_ms() + (uint64_t)ms;
    while (!segments_settled(j, dir, want) && mono_ms() < end)
        sleep_ms(10);
    return segments_settled(j, dir, want);
}

/* The keeper publishes the retained span after it has deleted segments
 * (and synced the directory): a caller that saw the segments go polls for
 * the span too. The span's bytes, once they are want or the time is up. */
static uint64_t poll_retained_bytes(hb_journal_t *j, uint64_t want, int ms)
{
    uint64_t end = mono_ms() + (uint64_t)ms, bytes, oldest;
    hb_journal_retained(j, &bytes, &oldest);
    while (bytes != want && mono_ms() < end) {
        sleep_ms(10);
        hb_journal_retained(j, &bytes, &oldest);
    }
    return bytes;
}

static int poll_full(hb_journal_t *j, int want, int ms)
{
    uint64_t end = mono_ms() + (uint64_t)ms;
    while (hb_journal_full(j) != want && mono_ms() < end)
        sleep_ms(10);
    return hb_journal_full(j) == want;
}

static int poll_file_contains(const char *path, const char *s, int ms)
{
    uint64_t end = mono_ms() + (uint64_t)ms;
    while (!file_contains(path, s) && mono_ms() < end)
        sleep_ms(10);
    return file_contains(path, s);
}

/* ---- opening ---- */

static const char *const one_sink[] = {"file"};

static hb_journal_t *open_j(const char *dir, uint64_t max_bytes, uint64_t segment_bytes,
                            const char *const *sinks, size_t n_sinks, char *err, size_t errlen)
{
    hb_journal_opts_t o = {
        .dir = dir,
        .max_bytes = max_bytes,
        .segment_bytes = segment_bytes,
        .sinks = sinks,
        .n_sinks = n_sinks,
        /* segment files the size of what they hold, so that the tests can
         * compare them with the byte count; test_prealloc covers spares */
        .no_prealloc = 1,
    };
    err[0] = '\0';
    return hb_journal_open(&o, err, errlen);
}

/* on_record during open */
typedef struct {
    int n;
    uint64_t last;
    int ordered;
} scan_t;

static void on_record(const hb_record_t *r, void *arg)
{
    scan_t *s = arg;
    if (s->n > 0 && r->seq != s->last + 1)
        s->ordered = 0;
    s->last = r->seq;
    s->n++;
}

static atomic_int progress_calls;

static void on_progress(void *arg)
{
    (void)arg;
    atomic_fetch_add(&progress_calls, 1);
}

/* ---- tests ---- */

/* hb_journal_hold: a thread that holds its wake-ups (an HTTP worker)
 * queues appends without waking the writer and wakes it once with
 * hb_journal_release_held at the end of each loop pass. Nothing may be
 * left in the queue with the writer asleep: a held append alone, and
 * holding and ordinary threads appending at once, all complete. */
#define HELD_THREADS 4
#define HELD_PER_THREAD 300

typedef struct {
    hb_journal_t *j;
    int id, holding, ok;
} held_arg_t;

static void *held_appender(void *arg)
{
    held_arg_t *h = arg;
    tappend_t *ts[HELD_PER_THREAD];
    hb_journal_hold(h->holding);
    for (int i = 0; i < HELD_PER_THREAD;) {
        /* a "loop pass" of 1 to 7 appends, then the pass's end */
        int pass = 1 + (h->id + i) % 7;
        for (int k = 0; k < pass && i < HELD_PER_THREAD; k++, i++) {
            ts[i] = make_append(h->id * HELD_PER_THREAD + i, 100, HB_STAGE_DURABLE);
            hb_journal_append(h->j, &ts[i]->a);
        }
        if (h->holding)
            hb_journal_release_held();
        if (i % 50 < 7)
            sleep_ms(1); /* let the writer fall asleep now and then */
    }
    h->ok = wait_all(ts, HELD_PER_THREAD);
    for (int i = 0; i < HELD_PER_THREAD; i++)
        if (h->ok)
            free_append(ts[i]);
    hb_journal_hold(0);
    return NULL;
}

static void test_held_wakeups(void)
{
    char dir[128], err[512];
    mk_tmpdir(dir, sizeof(dir), "held");
    hb_journal_t *j = open_j(dir, 64 << 20, 0, one_sink, 1, err, sizeof(err));
    ok(j != NULL, "open (%s)", err);
    if (!j)
        goto out;
    /* one append on a holding thread, after the writer has gone idle */
    ok(append_one(j, 0, 100, NULL) == 0, "an ordinary append first");
    sleep_ms(50);
    hb_journal_hold(1);
    tappend_t *t = make_append(1, 100, HB_STAGE_DURABLE);
    hb_journal_append(j, &t->a);
    hb_journal_release_held();
    int done = wait_all(&t, 1);
    ok(done && t->a.err == 0, "a held append is written once the pass ends");
    if (done)
        free_append(t);
    hb_journal_release_held(); /* nothing held: a no-op */
    hb_journal_hold(0);

    pthread_t th[HELD_THREADS];
    held_arg_t args[HELD_THREADS];
    for (int i = 0; i < HELD_THREADS; i++) {
        args[i] = (held_arg_t){.j = j, .id = i + 1, .holding = i % 2 == 0};
        pthread_create(&th[i], NULL, held_appender, &args[i]);
    }
    int all = 1;
    for (int i = 0; i < HELD_THREADS; i++) {
        pthread_join(th[i], NULL);
        all &= args[i].ok;
    }
    ok(all, "%d threads, half of them holding, %d appends each: all written", HELD_THREADS,
       HELD_PER_THREAD);
    is_int(hb_journal_durable_seq(j), 2 + HELD_THREADS * HELD_PER_THREAD, "every record durable");
    hb_journal_close(j);
out:
    rm_tmpdir(dir);
}

static void test_basic(void)
{
    char dir[128], err[512], path[4096];
    mk_tmpdir(dir, sizeof(dir), "basic");
    const size_t B = 200;
    const int N = 100;
    hb_journal_t *j = open_j(dir, 1 << 20, 0, one_sink, 1, err, sizeof(err));
    ok(j != NULL, "open a fresh journal (%s)", err);
    if (!j)
        goto out;
    hb_journal_on_progress(j, on_progress, NULL);
    is_int(hb_journal_cursor(j, 0), 0, "fresh journal: cursor 0");
    is_int(hb_journal_min_cursor(j), 0, "fresh journal: min cursor 0");
    is_int(hb_journal_durable_seq(j), 0, "fresh journal: durable seq 0");
    is_int(hb_journal_bytes(j), 0, "fresh journal: 0 bytes");
    is_int(hb_journal_max_bytes(j), 1 << 20, "max_bytes as opened");
    is_int(hb_journal_segments(j), 1, "fresh journal: one (empty) segment");
    ok(hb_journal_full(j) == 0 && hb_journal_failed(j) == 0, "fresh journal: not full, not failed");
    hb_journal_reader_t *r = hb_journal_reader_new(j, 0);
    hb_record_t rec;
    is_int(hb_journal_reader_next(r, &rec), 0, "reader on an empty journal: nothing yet");

    /* N appends queued at once */
    tappend_t *ts[100];
    for (int i = 0; i < N; i++) {
        ts[i] = make_append(i, B, HB_STAGE_DURABLE);
        hb_journal_append(j, &ts[i]->a);
    }
    ok(wait_all(ts, N), "%d appends all completed within %d s", N, APPEND_WAIT_S);
    int errs_ok = 1, consecutive = 1, on_writer = 1;
    for (int i = 0; i < N; i++) {
        if (ts[i]->a.err != 0)
            errs_ok = 0;
        if (ts[i]->a.seq != ts[0]->a.seq + (uint64_t)i)
            consecutive = 0;
        if (pthread_equal(ts[i]->thread, pthread_self()))
            on_writer = 0;
    }
    ok(errs_ok, "every append done with err == 0");
    is_int(ts[0]->a.seq, 1, "the first record of a fresh journal is seq 1");
    ok(consecutive, "seqs are consecutive in append order");
    ok(on_writer, "done() ran on the writer thread, not the caller's");
    int stamped = 1;
    uint64_t handed = hb_mono_us(), in_journal_us = 0, handoff_us = 0;
    for (int i = 0; i < N; i++) {
        if (!ts[i]->a.queued_us || ts[i]->a.done_us < ts[i]->a.queued_us ||
            ts[i]->a.done_us > handed)
            stamped = 0;
        else
            in_journal_us += ts[i]->a.done_us - ts[i]->a.queued_us;
        if (i < N / 2) {
            hb_journal_handed_off(j, &ts[i]->a, handed);
            handoff_us += handed - ts[i]->a.done_us;
        }
    }
    ok(stamped, "each append stamped when queued and when done, in that order");
    for (int i = 0; i < N; i++)
        free_append(ts[i]);
    is_int(hb_journal_durable_seq(j), N, "durable seq == last seq");
    uint64_t marks = hb_journal_bytes(j) - (uint64_t)N * (B + REC_OVERHEAD);
    ok(hb_journal_bytes(j) == dir_seg_bytes(dir) && marks % H == 0 && marks >= 2 * H,
       "bytes == the records, a segment header and a commit mark per batch (%" PRIu64 ")",
       hb_journal_bytes(j));
    ok(atomic_load(&progress_calls) > 0, "the progress callback ran after the durable batch");
    hb_journal_hists_t h;
    hb_journal_histograms(j, &h);
    hb_journal_hist_t hr = h.records, hw = h.write_s, hs = h.sync_s, hq = h.queue_s,
                      hh = h.handoff_s;
    ok(hr.count >= 1 && hr.sum == N && hr.cumulative[hr.n - 1] == hr.count,
       "batch-size histogram: %" PRIu64 " batches holding %g records", hr.count, hr.sum);
    ok(hw.count == hr.count && hs.count >= 1 && hs.count <= hr.count && hs.sum > 0,
       "one write per batch, at most one sync per batch (%" PRIu64 " syncs)", hs.count);
    /* a wait ends when the writer takes the batch, before the journal is
     * done with it: a stamp left at 0 would make one far longer */
    ok(hq.count == (uint64_t)N && hq.sum <= (double)in_journal_us / 1e6,
       "queue histogram: one wait per record (%" PRIu64 "), %g s in all, at most the %g s "
       "from append to done",
       hq.count, hq.sum, (double)in_journal_us / 1e6);
    ok(hh.count == (uint64_t)N / 2 && hh.sum == (double)handoff_us / 1e6,
       "handoff histogram: one per record handed off (%" PRIu64 " of %d), %g s in all (%g s)",
       hh.count, N / 2, hh.sum, (double)handoff_us / 1e6);

    /* the earlier reader sees them now */
    int got = 0, in_order = 1;
    uint64_t prev = 0;
    while (hb_journal_reader_next(r, &rec) == 1) {
        if (rec.seq != prev + 1)
            in_order = 0;
        prev = rec.seq;
        got++;
    }
    ok(got == N && in_order, "a reader made before the appends reads all %d in order (%d)", N, got);
    hb_journal_reader_free(r);

    is_int(read_check(j, 0, 1, 0, B), N, "reader from 0: all records, bodies byte for byte");
    is_int(read_check(j, 50, 1, 0, B), N - 50, "reader from 50 starts at 51");
    is_int(read_check(j, N, 1, 0, B), 0, "reader from the last seq: nothing");

    /* a reader at the end picks up a later append */
    r = hb_journal_reader_new(j, N);
    is_int(hb_journal_reader_next(r, &rec), 0, "reader at the end: 0 (nothing durable yet)");
    uint64_t s = 0;
    is_int(append_one(j, N, B, &s), 0, "one more append");
    is_int(s, N + 1, "its seq is the next one");
    ok(hb_journal_reader_next(r, &rec) == 1 && rec.seq == (uint64_t)N + 1,
       "the waiting reader now reads it");
    char want[256];
    make_body(N, B, want);
    ok(rec.body_len == B && memcmp(rec.body, want, B) == 0, "... with its body");
    is_int(hb_journal_reader_next(r, &rec), 0, "and then nothing again");
    hb_journal_reader_free(r);

    /* cursors */
    hb_journal_ack(j, 0, 50);
    is_int(hb_journal_cursor(j, 0), 50, "ack 50 moves the cursor");
    hb_journal_ack(j, 0, 30);
    is_int(hb_journal_cursor(j, 0), 50, "an older ack does not move it back");
    is_int(hb_journal_min_cursor(j), 50, "min cursor with one sink");
    hb_journal_close(j);
    snprintf(path, sizeof(path), "%s/cursors", dir);
    ok(file_contains(path, "file 50\n"), "close persists the cursor ('file 50' in %s)", path);

    /* reopen: the on_record scan, the cursor, the records, the next seq */
    scan_t sc = {0, 0, 1};
    hb_journal_opts_t o = {.dir = dir,
                           .max_bytes = 1 << 20,
                           .sinks = one_sink,
                           .n_sinks = 1,
                           .on_record = on_record,
                           .on_record_arg = &sc};
    j = hb_journal_open(&o, err, sizeof(err));
    ok(j != NULL, "reopen (%s)", err);
    if (!j)
        goto out;
    ok(sc.n == N + 1 && sc.ordered && sc.last == (uint64_t)N + 1,
       "on_record saw every record in order while opening (%d)", sc.n);
    is_int(hb_journal_cursor(j, 0), 50, "cursor survives a reopen");
    is_int(hb_journal_durable_seq(j), N + 1, "durable seq survives a reopen");
    is_int(read_check(j, hb_journal_cursor(j, 0), 1, 0, B), N + 1 - 50,
           "records after the cursor are still readable after reopen");
    is_int(append_one(j, N + 1, B, &s), 0, "append after reopen");
    is_int(s, N + 2, "seqs continue after reopen");
    hb_journal_close(j);
out:
    rm_tmpdir(dir);
}

/* The hand-off and queue histograms take whole microseconds as seconds:
 * their sum truncated 249 / 1e6 * 1e6 (a hair under 249) to 248, a
 * microsecond lost for about 1.5 % of the records. Also where each value
 * falls: a bound is "less than or equal". */
static void test_handoff_sum_whole_microseconds(void)
{
    char dir[128], err[512];
    mk_tmpdir(dir, sizeof(dir), "handoffus");
    hb_journal_t *j = open_j(dir, 1 << 20, 0, one_sink, 1, err, sizeof(err));
    ok(j != NULL, "open a fresh journal (%s)", err);
    if (!j)
        goto out;
    static const uint64_t waits_us[] = {10, 11, 249, 250, 251};
    const uint64_t done = 1000000;
    uint64_t total = 0;
    for (size_t i = 0; i < sizeof(waits_us) / sizeof(waits_us[0]); i++) {
        hb_append_t a = {.done_us = done};
        hb_journal_handed_off(j, &a, done + waits_us[i]);
        total += waits_us[i];
    }
    hb_journal_hists_t h;
    hb_journal_histograms(j, &h);
    const hb_journal_hist_t *hh = &h.handoff_s;
    ok(hh->count == 5 && hh->sum == (double)total / 1e6,
       "handoff sum: every microsecond counted (%.6f s, want %.6f s)", hh->sum,
       (double)total / 1e6);
    ok(hh->n >= 6 && hh->bounds[0] == 10e-6 && hh->cumulative[0] == 1 && hh->bounds[1] == 25e-6 &&
           hh->cumulative[1] == 2 && hh->bounds[4] == 250e-6 && hh->cumulative[4] == 4 &&
           hh->bounds[5] == 500e-6 && hh->cumulative[5] == 5,
       "10 us in le=1e-05, 11 us in le=2.5e-05, 249 and 250 us in le=0.00025, 251 us past it");
    hb_journal_close(j);
out:
    rm_tmpdir(dir);
}

static void test_stage_written(void)
{
    char dir[128], err[512];
    mk_tmpdir(dir, sizeof(dir), "written");
    hb_journal_t *j = open_j(dir, 1 << 20, 0, one_sink, 1, err, sizeof(err));
    ok(j != NULL, "open (%s)", err);
    if (!j)
        goto out;
    tappend_t *ts[10];
    for (int i = 0; i < 10; i++) {
        ts[i] = make_append(i, 100, i % 2 ? HB_STAGE_WRITTEN : HB_STAGE_DURABLE);
        hb_journal_append(j, &ts[i]->a);
    }
    ok(wait_all(ts, 10), "mixed WRITTEN and DURABLE appends all complete");
    int good = 1;
    for (int i = 0; i < 10; i++)
        if (ts[i]->a.err != 0 || ts[i]->a.seq != (uint64_t)i + 1)
            good = 0;
    ok(good, "... with err 0 and seqs 1..10");
    /* freed only once the writer has stopped: see the next test for why */
    hb_journal_close(j);
    for (int i = 0; i < 10; i++)
        free_append(ts[i]);
    j = open_j(dir, 1 << 20, 0, one_sink, 1, err, sizeof(err));
    is_int(j ? read_check(j, 0, 1, 0, 100) : -1, 10, "all 10 readable after close and reopen");
    hb_journal_close(j);
out:
    rm_tmpdir(dir);
}

/* The journal lends an append back with done(); from then on the owner
 * may free or reuse it at once (the route frees its request on the loop
 * thread). Here the owner reuses each WRITTEN-stage append inside done() as
 * a fresh DURABLE one with another callback: if the writer still walks the
 * batch list after fdatasync, it calls that callback. */
static atomic_int late_calls;

static void on_done_late(hb_append_t *a)
{
    (void)a;
    atomic_fetch_add(&late_calls, 1);
}

static void on_done_reuse(hb_append_t *a)
{
    tappend_t *t = (tappend_t *)a;
    pthread_mutex_lock(&mu);
    t->thread = pthread_self();
    t->a.seq = a->seq; /* keep what the test checks */
    a->next = NULL;
    a->stage = HB_STAGE_DURABLE;
    a->done = on_done_late;
    t->done = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void test_written_not_touched_after_done(void)
{
    char dir[128], err[512];
    mk_tmpdir(dir, sizeof(dir), "reuse");
    hb_journal_t *j = open_j(dir, 1 << 20, 0, one_sink, 1, err, sizeof(err));
    ok(j != NULL, "open (%s)", err);
    if (!j)
        goto out;
    tappend_t *ts[4];
    for (int i = 0; i < 4; i++) {
        ts[i] = make_append(i, 100, HB_STAGE_WRITTEN);
        ts[i]->a.done = on_done_reuse;
    }
    for (int i = 0; i < 4; i++)
        hb_journal_append(j, &ts[i]->a);
    ok(wait_all(ts, 4), "4 WRITTEN appends done");
    hb_journal_close(j); /* joins the writer: every pass over the batch is over */
    is_int(atomic_load(&late_calls), 0,
           "bug: the writer never touches an append after its done() (ack = written: the list is "
           "walked again after fdatasync)");
    for (int i = 0; i < 4; i++)
        free_append(ts[i]);
out:
    rm_tmpdir(dir);
}

/* Records larger than the reader's and the recovery scan's first buffers. */
static void test_big_records(void)
{
    char dir[128], err[512];
    mk_tmpdir(dir, sizeof(dir), "big");
    const size_t B = 3u << 20;
    hb_journal_t *j = open_j(dir, 64u << 20, 0, one_sink, 1, err, sizeof(err));
    ok(j != NULL, "open (%s)", err);
    if (!j)
        goto out;
    ok(append_range(j, 0, 3, B, 3, NULL, NULL), "three 3 MiB appends");
    is_int(read_check(j, 0, 1, 0, B), 3, "three 3 MiB records read back byte for byte");
    hb_journal_close(j);
    scan_t sc = {0, 0, 1};
    hb_journal_opts_t o = {.dir = dir,
                           .max_bytes = 64u << 20,
                           .sinks = one_sink,
                           .n_sinks = 1,
                           .on_record = on_record,
                           .on_record_arg = &sc};
    j = hb_journal_open(&o, err, sizeof(err));
    ok(j != NULL && sc.n == 3, "reopen scans the 3 big records (%d) (%s)", sc.n, err);
    is_int(j ? read_check(j, 1, 1, 0, B) : -1, 2, "and they read back after reopen");
    hb_journal_close(j);
out:
    rm_tmpdir(dir);
}

/* A batch over MAX_BATCH_BYTES (4 MiB) is written and synced in parts; the
 * queue wait of a record in a later part ended when the writer took the
 * whole batch, so its wait for the earlier part's write and sync was in no
 * histogram. Three 3 MiB records, appended in one go: two make the first
 * part, the third waits for them (however the writer splits the queue, it
 * is never taken before the first record is done). */
static void test_split_batch_queue_wait(void)
{
    char dir[128], err[512];
    mk_tmpdir(dir, sizeof(dir), "splitq");
    const size_t B = 3u << 20;
    hb_journal_t *j = open_j(dir, 64u << 20, 0, one_sink, 1, err, sizeof(err));
    ok(j != NULL, "open (%s)", err);
    if (!j)
        goto out;
    tappend_t *ts[3];
    for (int i = 0; i < 3; i++)
        ts[i] = make_append(i, B, HB_STAGE_DURABLE);
    hb_journal_hold(1); /* one wake-up for the three: one batch, two parts */
    for (int i = 0; i < 3; i++)
        hb_journal_append(j, &ts[i]->a);
    hb_journal_release_held();
    hb_journal_hold(0);
    int all = wait_all(ts, 3);
    ok(all, "three 3 MiB appends completed within %d s", APPEND_WAIT_S);
    if (all) {
        /* 0 if a writer that was not asleep took the first one alone and
         * finished it before the third came */
        uint64_t behind_us =
            ts[0]->a.done_us > ts[2]->a.queued_us ? ts[0]->a.done_us - ts[2]->a.queued_us : 0;
        hb_journal_hists_t h;
        hb_journal_histograms(j, &h);
        ok(h.queue_s.count == 3 && h.queue_s.sum >= (double)behind_us / 1e6,
           "the third record's queue wait covers the first part's write and sync (%.6f s in "
           "all, at least %.6f s)",
           h.queue_s.sum, (double)behind_us / 1e6);
    }
    hb_journal_close(j); /* the writer finishes the queue: done with all three */
    for (int i = 0; i < 3; i++)
        free_append(ts[i]);
out:
    rm_tmpdir(dir);
}

static void test_torn_tail(void)
{
    char dir[128], err[512], seg[4096];
    mk_tmpdir(dir, sizeof(dir), "torn");
    /* one record a batch: RB bytes each, after the segment's header */
    const size_t B = 300, R = B + REC_OVERHEAD, RB = R + H;
    uint64_t s;
    hb_journal_t *j = open_j(dir, 1 << 20, 0, one_sink, 1, err, sizeof(err));
    ok(j != NULL, "open (%s)", err);
    if (!j)
        goto out;
    ok(append_range(j, 0, 10, B, 1, NULL, NULL), "10 appends, one batch each");
    hb_journal_close(j);
    uint64_t f[8];
    is_int(list_segs(dir, f, 8), 1, "one segment file");
    seg_path(dir, 1, seg, sizeof(seg));
    is_int(file_size(seg), H + 10 * RB, "segment holds a header and the 10 batches");

    /* cut the last batch in the middle */
    if (truncate(seg, (off_t)(H + 10 * RB - RB / 2)) < 0)
        perror("truncate");
    j = open_j(dir, 1 << 20, 0, one_sink, 1, err, sizeof(err));
    ok(j != NULL, "torn batch: reopen succeeds (%s)", err);
    if (!j)
        goto out;
    is_int(hb_journal_durable_seq(j), 9, "torn batch: durable seq 9");
    is_int(read_check(j, 0, 1, 0, B), 9, "torn batch: the 9 earlier records are intact");
    is_int(file_size(seg), H + 9 * RB, "torn batch: the file is cut after the last commit");
    is_int(hb_journal_bytes(j), H + 9 * RB, "torn batch: bytes counts what is left");
    is_int(append_one(j, 9, B, &s), 0, "append after recovery");
    is_int(s, 10, "the next append takes seq 10 again");
    is_int(read_check(j, 0, 1, 0, B), 10, "10 records readable, the new one included");
    hb_journal_close(j);

    /* garbage after the last batch */
    append_bytes(seg, 0xAB, 100);
    j = open_j(dir, 1 << 20, 0, one_sink, 1, err, sizeof(err));
    ok(j != NULL, "100 bytes of garbage at the end: reopen succeeds (%s)", err);
    if (!j)
        goto out;
    is_int(file_size(seg), H + 10 * RB, "garbage cut off");
    is_int(read_check(j, 0, 1, 0, B), 10, "garbage: 10 records intact");
    is_int(append_one(j, 10, B, &s), 0, "append after garbage");
    is_int(s, 11, "next seq 11");
    hb_journal_close(j);

    /* less than a header of garbage */
    append_bytes(seg, 0x48, 7);
    j = open_j(dir, 1 << 20, 0, one_sink, 1, err, sizeof(err));
    ok(j != NULL && file_size(seg) == (off_t)(H + 11 * RB),
       "7 stray bytes: reopen succeeds, cut (%s)", err);
    is_int(j ? read_check(j, 0, 1, 0, B) : -1, 11, "7 stray bytes: 11 records intact");
    hb_journal_close(j);

    /* a zero-filled tail: what a preallocated segment holds past its end */
    append_bytes(seg, 0, 4096);
    j = open_j(dir, 1 << 20, 0, one_sink, 1, err, sizeof(err));
    ok(j != NULL, "4 KiB of zeros: reopen succeeds (%s)", err);
    if (!j)
        goto out;
    is_int(file_size(seg), H + 11 * RB + 4096, "zeros: nothing to cut");
    is_int(read_check(j, 0, 1, 0, B), 11, "zeros: 11 records intact");
    is_int(append_one(j, 11, B, &s), 0, "append over the zeros");
    is_int(s, 12, "next seq 12");
    hb_journal_close(j);
    j = open_j(dir, 1 << 20, 0, one_sink, 1, err, sizeof(err));
    is_int(j ? read_check(j, 0, 1, 0, B) : -1, 12, "zeros: the record written over them stays");
    hb_journal_close(j);

    /* cut inside the last batch's record header */
    if (truncate(seg, (off_t)(H + 11 * RB + 10)) < 0)
        perror("truncate");
    j = open_j(dir, 1 << 20, 0, one_sink, 1, err, sizeof(err));
    ok(j != NULL, "cut inside a header: reopen succeeds (%s)", err);
    if (!j)
        goto out;
    is_int(read_check(j, 0, 1, 0, B), 11, "cut inside a header: 11 records intact");
    is_int(append_one(j, 11, B, &s), 0, "append");
    is_int(s, 12, "next seq 12 again");
    hb_journal_close(j);
out:
    rm_tmpdir(dir);
}

/* Issue 9, item 3: a power cut in the middle of a batch may keep later
 * pages and lose earlier ones. Reproduced as in the report: 20 deliveries,
 * a clean stop, then 4096 zero bytes and a copy of the segment's first
 * records appended; the next start refused with "damaged, not torn". With
 * commit marks, what follows the last commit is a torn tail. */
static void test_power_cut_mid_batch(void)
{
    char dir[128], err[512], seg[4096];
    mk_tmpdir(dir, sizeof(dir), "powercut");
    const size_t B = 300, R = B + REC_OVERHEAD, RB = R + H;
    hb_journal_t *j = open_j(dir, 1 << 20, 0, one_sink, 1, err, sizeof(err));
    ok(j != NULL, "open (%s)", err);
    if (!j)
        goto out;
    ok(append_range(j, 0, 20, B, 1, NULL, NULL), "20 deliveries");
    hb_journal_close(j);
    seg_path(dir, 1, seg, sizeof(seg));
    off_t size = file_size(seg);
    unsigned char *head = malloc(3 * RB + H);
    int fd = open(seg, O_RDWR);
    ok(fd >= 0 && pread(fd, head, 3 * RB + H, 0) == (ssize_t)(3 * RB + H),
       "read the first records back");
    close(fd);
    append_bytes(seg, 0, 4096);
    fd = open(seg, O_WRONLY | O_APPEND);
    ok(fd >= 0 && write(fd, head, 3 * RB + H) == (ssize_t)(3 * RB + H),
       "zeros and a copy of the first records appended");
    close(fd);
    free(head);
    scan_t sc = {0, 0, 1};
    hb_journal_opts_t o = {.dir = dir,
                           .max_bytes = 1 << 20,
                           .sinks = one_sink,
                           .n_sinks = 1,
                           .on_record = on_record,
                           .on_record_arg = &sc,
                           .no_prealloc = 1};
    j = hb_journal_open(&o, err, sizeof(err));
    ok(j != NULL, "bug: a power cut mid-batch refused to start: now it opens (%s)", err);
    if (!j)
        goto out;
    ok(sc.n == 20 && sc.last == 20 && sc.ordered, "the 20 committed records are scanned (%d)",
       sc.n);
    is_int(read_check(j, 0, 1, 0, B), 20, "and readable");
    is_int(file_size(seg), size, "the tail is cut at the last commit");
    hb_journal_close(j);

    /* a batch whose first page was lost while a later record and the
     * commit mark reached the disk: the whole batch is torn, the ones
     * before stay */
    j = open_j(dir, 1 << 20, 0, one_sink, 1, err, sizeof(err));
    ok(j && append_range(j, 20, 10, B, 10, NULL, NULL), "10 more, queued at once");
    hb_journal_close(j);
    int last_start = -1, n_last = 0;
    unsigned char *all = malloc((size_t)file_size(seg));
    fd = open(seg, O_RDONLY);
    ssize_t got = pread(fd, all, (size_t)file_size(seg), 0);
    close(fd);
    for (ssize_t off = size, start = size, n = 0; off < got;) {
        hb_record_t r;
        size_t used;
        hb_decode_t d = hb_record_decode_any(all + off, (size_t)(got - off), &r, NULL, &used);
        if (d == HB_DECODE_OK) {
            n++;
        } else if (d == HB_DECODE_COMMIT) {
            last_start = (int)start;
            n_last = (int)n;
            start = off + (ssize_t)used;
            n = 0;
        } else {
            break;
        }
        off += (ssize_t)used;
    }
    free(all);
    ok(last_start > 0 && n_last >= 1, "the last batch holds %d records", n_last);
    xor_byte(seg, last_start + 20, 0x01); /* its first record's header */
    memset(&sc, 0, sizeof(sc));
    sc.ordered = 1;
    j = hb_journal_open(&o, err, sizeof(err));
    ok(j != NULL, "a lost first page of the last batch: a torn batch, opens (%s)", err);
    is_int(sc.n, 30 - n_last, "no record of the torn batch reaches on_record");
    is_int(j ? read_check(j, 0, 1, 0, B) : -1, 30 - n_last, "the records before it are intact");
    hb_journal_close(j);
out:
    rm_tmpdir(dir);
}

static void test_corruption(void)
{
    char dir[128], err[512], seg[4096], seg2[4096], moved[4200];
    mk_tmpdir(dir, sizeof(dir), "corrupt");
    const size_t B = 400;
    hb_journal_t *j = open_j(dir, 1 << 20, 2048, one_sink, 1, err, sizeof(err));
    ok(j != NULL, "open with 2 KiB segments (%s)", err);
    if (!j)
        goto out;
    ok(append_range(j, 0, 30, B, 1, NULL, NULL), "30 appends, one batch each");
    size_t nseg = hb_journal_segments(j);
    ok(nseg >= 3, "several segments (%zu)", nseg);
    hb_journal_close(j);
    uint64_t f[64];
    int n = list_segs(dir, f, 64);
    is_int(n, nseg, "as many segment files as segments");
    if (n < 3)
        goto out;

    /* the last record of the newest segment damaged: a torn tail */
    seg_path(dir, f[n - 1], seg, sizeof(seg));
    off_t sz = file_size(seg);
    xor_byte(seg, sz - 1, 0xFF);
    j = open_j(dir, 1 << 20, 2048, one_sink, 1, err, sizeof(err));
    ok(j != NULL, "damaged last record of the newest segment: cut, open succeeds (%s)", err);
    is_int(j ? read_check(j, 0, 1, 0, B) : -1, 29, "the 29 records before it are intact");
    hb_journal_close(j);
    n = list_segs(dir, f, 64);

    /* a flipped byte in the oldest segment */
    seg_path(dir, f[0], seg, sizeof(seg));
    sz = file_size(seg);
    xor_byte(seg, sz / 2, 0x20);
    j = open_j(dir, 1 << 20, 2048, one_sink, 1, err, sizeof(err));
    ok(j == NULL, "a bad checksum in a segment that is not the newest: open fails");
    const char *base = strrchr(seg, '/') + 1;
    ok(strstr(err, base) != NULL, "the error names the file %s (%s)", base, err);
    hb_journal_close(j);
    is_int(file_size(seg), sz, "the damaged segment was not truncated");
    xor_byte(seg, sz / 2, 0x20);
    j = open_j(dir, 1 << 20, 2048, one_sink, 1, err, sizeof(err));
    ok(j != NULL, "byte restored: open succeeds (%s)", err);
    is_int(j ? read_check(j, 0, 1, 0, B) : -1, 29, "byte restored: all 29 records");
    hb_journal_close(j);

    /* the same in a middle segment */
    seg_path(dir, f[1], seg, sizeof(seg));
    xor_byte(seg, 5, 0x01); /* in the first record's header */
    j = open_j(dir, 1 << 20, 2048, one_sink, 1, err, sizeof(err));
    ok(j == NULL && strstr(err, strrchr(seg, '/') + 1),
       "a bad header in a middle segment: open fails naming it (%s)", err);
    hb_journal_close(j);
    xor_byte(seg, 5, 0x01);

    /* a missing middle segment is a hole */
    snprintf(moved, sizeof(moved), "%s.away", seg);
    rename(seg, moved);
    j = open_j(dir, 1 << 20, 2048, one_sink, 1, err, sizeof(err));
    seg_path(dir, f[2], seg2, sizeof(seg2));
    ok(j == NULL && strstr(err, strrchr(seg2, '/') + 1),
       "a missing middle segment: open fails naming the segment after the hole (%s)", err);
    hb_journal_close(j);
    rename(moved, seg);
    j = open_j(dir, 1 << 20, 2048, one_sink, 1, err, sizeof(err));
    ok(j != NULL, "everything restored: open succeeds (%s)", err);
    is_int(j ? read_check(j, 0, 1, 0, B) : -1, 29, "all 29 records");
    hb_journal_close(j);
out:
    rm_tmpdir(dir);
}

/* DESIGN.md: "at start a torn tail is cut with a loud log line, while a bad
 * checksum in the middle refuses to start and says how to repair". A record
 * followed by valid records is not a tail: cutting there would throw away
 * records that were answered 200. */
static void test_corruption_mid_newest(void)
{
    char dir[128], err[512], seg[4096];
    mk_tmpdir(dir, sizeof(dir), "midnewest");
    const size_t B = 300, R = B + REC_OVERHEAD;
    hb_journal_t *j = open_j(dir, 1 << 20, 0, one_sink, 1, err, sizeof(err));
    ok(j != NULL, "open (%s)", err);
    if (!j)
        goto out;
    /* one batch each: every later commit mark says record 3 was synced */
    ok(append_range(j, 0, 10, B, 1, NULL, NULL), "10 appends into one segment");
    hb_journal_close(j);
    seg_path(dir, 1, seg, sizeof(seg));
    xor_byte(seg, (off_t)(H + 2 * (R + H) + HB_RECORD_HEADER + 50), 0x01); /* record 3's body */
    j = open_j(dir, 1 << 20, 0, one_sink, 1, err, sizeof(err));
    ok(j == NULL, "bug: a bad checksum in the middle of the newest segment (7 valid records after "
                  "it) refuses to start");
    if (j) {
        diag("opened anyway: %d records readable, file now %lld bytes (was %zu)",
             read_check(j, 0, 1, 0, B), (long long)file_size(seg), 10 * R);
        hb_journal_close(j);
    } else {
        ok(strstr(err, "00000000000000000001.seg") != NULL, "the error names the file (%s)", err);
    }
out:
    rm_tmpdir(dir);
}

static void test_rotation_and_deletion(void)
{
    char dir[128], err[512], path[4096];
    mk_tmpdir(dir, sizeof(dir), "rotate");
    const size_t B = 520, R = B + REC_OVERHEAD; /* 600 bytes a record */
    const uint64_t MAX = 64 * 1024;             /* segments of MAX/8 = 8 KiB */
    hb_journal_t *j = open_j(dir, MAX, 0, one_sink, 1, err, sizeof(err));
    ok(j != NULL, "open with max_bytes 64 KiB (%s)", err);
    if (!j)
        goto out;
    ok(append_range(j, 0, 80, B, 5, NULL, NULL), "80 appends of %zu bytes in batches of 5", R);
    size_t nseg = hb_journal_segments(j);
    ok(nseg >= 4, "several segments (%zu)", nseg);
    uint64_t f[64];
    int n = list_segs(dir, f, 64);
    is_int(n, nseg, "one file per segment");
    is_int(hb_journal_bytes(j), dir_seg_bytes(dir), "journal bytes == the files' sizes");
    uint64_t marks = (hb_journal_bytes(j) - 80 * R) / H;
    ok((hb_journal_bytes(j) - 80 * R) % H == 0 && marks >= 16 + nseg && marks <= 80 + nseg,
       "journal bytes == 80 records, a header per segment, a mark per batch (%" PRIu64 ")", marks);
    int sized = 1, named = 1;
    for (int i = 0; i < n; i++) {
        seg_path(dir, f[i], path, sizeof(path));
        off_t sz = file_size(path);
        if (i < n - 1 && sz > (off_t)(8192 + 5 * R))
            sized = 0;
        /* the file is named after the seq of its first record */
        hb_journal_reader_t *r = hb_journal_reader_new(j, f[i] - 1);
        hb_record_t rec;
        if (sz > 0 && (hb_journal_reader_next(r, &rec) != 1 || rec.seq != f[i]))
            named = 0;
        hb_journal_reader_free(r);
    }
    ok(sized, "no full segment is much larger than 8 KiB (rotation after a batch)");
    ok(named, "each segment file is named after its first seq");
    is_int(read_check(j, 0, 1, 0, B), 80, "reader crosses every segment boundary in order");

    /* a reader parked at the end follows into segments created later */
    hb_journal_reader_t *r = hb_journal_reader_new(j, 0);
    hb_record_t rec;
    int got = 0;
    while (hb_journal_reader_next(r, &rec) == 1)
        got++;
    ok(append_range(j, 80, 20, B, 5, NULL, NULL), "20 more appends");
    ok(hb_journal_segments(j) > nseg, "they started a new segment");
    int later = 0, order = 1;
    uint64_t prev = 80;
    while (hb_journal_reader_next(r, &rec) == 1) {
        if (rec.seq != prev + 1)
            order = 0;
        prev = rec.seq;
        later++;
    }
    ok(got == 80 && later == 20 && order, "a parked reader continues into the new segments (%d+%d)",
       got, later);
    hb_journal_reader_free(r);

    /* partial ack: exactly the segments wholly at or below the cursor go */
    n = list_segs(dir, f, 64);
    const uint64_t cur = 45;
    int deletable = 0;
    for (int i = 0; i + 1 < n; i++)
        if (f[i + 1] - 1 <= cur)
            deletable++;
    uint64_t before = hb_journal_bytes(j);
    hb_journal_ack(j, 0, cur);
    int gone = deletable > 0 && poll_segments(j, dir, (size_t)(n - deletable), POLL_MS);
    ok(gone, "ack 45: %d of %d segments deleted (%zu left)", deletable, n, hb_journal_segments(j));
    uint64_t f2[64];
    int n2 = list_segs(dir, f2, 64);
    is_int(n2, n - deletable, "the files are gone from the directory");
    ok(n2 > 0 && f2[0] <= cur + 1, "the oldest file left still holds record %" PRIu64, cur + 1);
    ok(hb_journal_bytes(j) < before && hb_journal_bytes(j) == dir_seg_bytes(dir),
       "bytes shrank to the files left");
    is_int(read_check(j, cur, 1, 0, B), 100 - cur, "every record after the cursor is readable");

    /* ack everything: only the newest segment stays */
    before = hb_journal_bytes(j);
    hb_journal_ack(j, 0, 100);
    gone = poll_segments(j, dir, 1, POLL_MS);
    ok(gone, "ack all: one segment left (%zu)", hb_journal_segments(j));
    is_int(list_segs(dir, f2, 64), 1, "one segment file left");
    ok(hb_journal_bytes(j) < before, "bytes shrank (%" PRIu64 " < %" PRIu64 ")",
       hb_journal_bytes(j), before);
    is_int(read_check(j, 100, 1, 0, B), 0, "nothing after the cursor");
    hb_journal_close(j);

    j = open_j(dir, MAX, 0, one_sink, 1, err, sizeof(err));
    ok(j != NULL, "reopen after deletion (%s)", err);
    if (!j)
        goto out;
    is_int(hb_journal_cursor(j, 0), 100, "cursor 100 after reopen");
    uint64_t s;
    is_int(append_one(j, 100, B, &s), 0, "append after reopen");
    is_int(s, 101, "seq 101");
    hb_journal_ack(j, 0, 101);
    hb_journal_close(j);

    /* every segment removed by hand: seqs still continue after the cursor */
    n2 = list_segs(dir, f2, 64);
    for (int i = 0; i < n2; i++) {
        seg_path(dir, f2[i], path, sizeof(path));
        unlink(path);
    }
    j = open_j(dir, MAX, 0, one_sink, 1, err, sizeof(err));
    ok(j != NULL, "reopen with no segment files (%s)", err);
    if (!j)
        goto out;
    is_int(append_one(j, 101, B, &s), 0, "append");
    is_int(s, 102, "seq continues after the persisted cursor (102), never reusing a published one");
    hb_journal_close(j);
out:
    rm_tmpdir(dir);
}

/* A segment goes exactly when every sink has acked its last record: not
 * one record earlier. */
static void test_deletion_boundary(void)
{
    char dir[128], err[512], cpath[4096], line[64];
    mk_tmpdir(dir, sizeof(dir), "boundary");
    snprintf(cpath, sizeof(cpath), "%s/cursors", dir);
    const size_t B = 300;
    hb_journal_t *j = open_j(dir, 1 << 20, 2048, one_sink, 1, err, sizeof(err));
    ok(j != NULL, "open with 2 KiB segments (%s)", err);
    if (!j)
        goto out;
    ok(append_range(j, 0, 20, B, 1, NULL, NULL), "20 appends, one batch each");
    uint64_t f[64];
    int n = list_segs(dir, f, 64);
    ok(n >= 3, "several segments (%d)", n);
    if (n < 3) {
        hb_journal_close(j);
        goto out;
    }
    uint64_t last0 = f[1] - 1; /* the last record of the oldest segment */
    hb_journal_ack(j, 0, last0 - 1);
    snprintf(line, sizeof(line), "file %" PRIu64 "\n", last0 - 1);
    ok(poll_file_contains(cpath, line, POLL_MS), "ack %" PRIu64 " persisted", last0 - 1);
    /* the writer deletes right after persisting; one more batch through it
     * proves that pass is over */
    ok(append_range(j, 20, 1, B, 1, NULL, NULL), "one more append through the writer");
    char oldest[4096];
    seg_path(dir, f[0], oldest, sizeof(oldest));
    ok(hb_journal_segments(j) >= (size_t)n && access(oldest, F_OK) == 0,
       "acked up to one before the end of the oldest segment: it is kept (%zu segments)",
       hb_journal_segments(j));
    size_t before = hb_journal_segments(j);
    hb_journal_ack(j, 0, last0);
    int gone = poll_segments(j, dir, before - 1, POLL_MS);
    ok(gone, "acked its last record (%" PRIu64 "): the oldest segment is deleted", last0);
    list_segs(dir, f, 64);
    is_int(f[0], last0 + 1, "the oldest file left starts right after the cursor");
    is_int(read_check(j, last0, 1, 0, B), 21 - last0, "every record after the cursor is readable");
    hb_journal_close(j);
out:
    rm_tmpdir(dir);
}

static void test_full(void)
{
    char dir[128], err[512];
    mk_tmpdir(dir, sizeof(dir), "full");
    const size_t B = 1000, R = B + REC_OVERHEAD;
    const uint64_t MAX = 64 * 1024;
    hb_journal_t *j = open_j(dir, MAX, 0, one_sink, 1, err, sizeof(err));
    ok(j != NULL, "open with max_bytes 64 KiB (%s)", err);
    if (!j)
        goto out;
    uint64_t last = 0, s = 0;
    int e = 0, accepted = 0;
    for (int i = 0; i < 200; i++) {
        e = append_one(j, i, B, &s);
        if (e != 0)
            break;
        last = s;
        accepted++;
    }
    is_int(e, ENOSPC, "without acks, an append eventually fails with ENOSPC");
    ok(accepted > 0 && hb_journal_bytes(j) + R + 2 * H > MAX,
       "after exactly as many records as fit (%d): one more would not", accepted);
    is_int(hb_journal_full(j), 1, "hb_journal_full() == 1");
    ok(hb_journal_bytes(j) <= MAX, "bytes stay within max_bytes (%" PRIu64 ")",
       hb_journal_bytes(j));
    uint64_t bytes_full = hb_journal_bytes(j);
    is_int(append_one(j, 1000, B, &s), ENOSPC, "the next append is refused too");
    is_int(hb_journal_bytes(j), bytes_full, "refusals write nothing");
    is_int(hb_journal_durable_seq(j), last, "refusals take no seq");
    is_int(read_check(j, 0, 1, 0, B), accepted, "every accepted record is readable");

    hb_journal_ack(j, 0, last);
    int cleared = poll_full(j, 0, POLL_MS);
    ok(cleared, "after acking everything the journal is no longer full");
    ok(hb_journal_bytes(j) < MAX / 10 * 9, "bytes below the low-water mark (%" PRIu64 ")",
       hb_journal_bytes(j));
    is_int(append_one(j, accepted, B, &s), 0, "appends succeed again");
    is_int(s, last + 1, "with the next seq (refused appends took none)");
    hb_journal_close(j);
out:
    rm_tmpdir(dir);
}

/* The limit holds inside one batch too: appends queued together are
 * accepted only while they fit. */
static void test_full_one_batch(void)
{
    char dir[128], err[512];
    mk_tmpdir(dir, sizeof(dir), "fullbatch");
    const size_t B = 1000, R = B + REC_OVERHEAD;
    const uint64_t MAX = 64 * 1024;
    const int N = 100;
    hb_journal_t *j = open_j(dir, MAX, 0, one_sink, 1, err, sizeof(err));
    ok(j != NULL, "open with max_bytes 64 KiB (%s)", err);
    if (!j)
        goto out;
    uint64_t seqs[100];
    int errs[100];
    ok(append_range(j, 0, N, B, N, seqs, errs), "%d appends queued at once all complete", N);
    int accepted = 0, refused = 0, other = 0, prefix = 1;
    for (int i = 0; i < N; i++) {
        if (errs[i] == 0) {
            if (accepted != i)
                prefix = 0;
            accepted++;
        } else if (errs[i] == ENOSPC) {
            refused++;
        } else {
            other++;
        }
    }
    ok(accepted > 0 && hb_journal_bytes(j) + R + 2 * H > MAX,
       "exactly as many accepted as fit (%d): one more would not", accepted);
    ok(refused == N - accepted && other == 0, "the rest refused with ENOSPC (%d)", refused);
    ok(prefix, "the accepted ones are the first queued (same-size records)");
    ok(hb_journal_bytes(j) <= MAX, "bytes within max_bytes (%" PRIu64 ")", hb_journal_bytes(j));
    is_int(read_check(j, 0, 1, 0, B), accepted, "every accepted record is readable");
    hb_journal_close(j);
out:
    rm_tmpdir(dir);
}

/* One refused oversized append must not latch "full" on a journal that
 * holds almost nothing: the front end answers 503 while full, so no new
 * append would ever rotate a segment and let the flag clear. */
static void test_full_latch_single_segment(void)
{
    char dir[128], err[512];
    mk_tmpdir(dir, sizeof(dir), "latch");
    const uint64_t MAX = 64 * 1024;
    hb_journal_t *j = open_j(dir, MAX, 0, one_sink, 1, err, sizeof(err));
    ok(j != NULL, "open with max_bytes 64 KiB (%s)", err);
    if (!j)
        goto out;
    uint64_t s1 = 0, s2 = 0;
    is_int(append_one(j, 0, 1000, &s1), 0, "a 1 KB record is accepted");
    is_int(append_one(j, 1, 63 * 1024, &s2), ENOSPC, "a 63 KiB record does not fit: ENOSPC");
    hb_journal_ack(j, 0, s1);
    int cleared = poll_full(j, 0, 3000);
    ok(cleared,
       "bug: with 1 KB in the journal and everything acked, hb_journal_full() returns to 0 "
       "(bytes %" PRIu64 ", segments %zu)",
       hb_journal_bytes(j), hb_journal_segments(j));
    hb_journal_close(j);
out:
    rm_tmpdir(dir);
}

static void test_two_sinks(void)
{
    char dir[128], err[512], cpath[4096];
    mk_tmpdir(dir, sizeof(dir), "sinks");
    snprintf(cpath, sizeof(cpath), "%s/cursors", dir);
    const size_t B = 300;
    const char *const two[] = {"kafka", "redis"};
    hb_journal_t *j = open_j(dir, 1 << 20, 2048, two, 2, err, sizeof(err));
    ok(j != NULL, "open with sinks kafka and redis (%s)", err);
    if (!j)
        goto out;
    ok(file_contains(cpath, "kafka 0\n") && file_contains(cpath, "redis 0\n"),
       "the cursor file lists both sinks from the start");
    ok(append_range(j, 0, 40, B, 2, NULL, NULL), "40 appends");
    size_t nseg = hb_journal_segments(j);
    ok(nseg >= 4, "several segments (%zu)", nseg);

    hb_journal_ack(j, 0, 40);
    ok(poll_file_contains(cpath, "kafka 40\n", POLL_MS), "kafka's ack is persisted");
    hb_journal_ack(j, 1, 1);
    ok(poll_file_contains(cpath, "redis 1\n", POLL_MS), "redis's ack is persisted, kafka's kept");
    ok(file_contains(cpath, "kafka 40\n"), "the cursor file keeps each sink's cursor");
    is_int(hb_journal_min_cursor(j), 1, "min cursor is the slower sink's");
    is_int(hb_journal_segments(j), nseg,
           "no segment is deleted while one sink has not acked it (kafka at 40, redis at 1)");

    uint64_t f[64];
    int n = list_segs(dir, f, 64);
    int deletable = 0;
    for (int i = 0; i + 1 < n; i++)
        if (f[i + 1] - 1 <= 20)
            deletable++;
    hb_journal_ack(j, 1, 20);
    int gone = deletable > 0 && poll_segments(j, dir, (size_t)(n - deletable), POLL_MS);
    ok(gone, "redis at 20: the %d segments both sinks passed are deleted (%zu left)", deletable,
       hb_journal_segments(j));
    is_int(read_check(j, 20, 1, 0, B), 20, "records 21..40 still readable for redis");
    hb_journal_close(j);

    /* cursors are by name, not position */
    const char *const swapped[] = {"redis", "kafka"};
    j = open_j(dir, 1 << 20, 2048, swapped, 2, err, sizeof(err));
    ok(j != NULL, "reopen with the sinks listed the other way round (%s)", err);
    if (!j)
        goto out;
    ok(hb_journal_cursor(j, 0) == 20 && hb_journal_cursor(j, 1) == 40,
       "each sink gets its own cursor back (redis 20, kafka 40)");
    hb_journal_close(j);

    /* a sink new in the config gets everything still kept */
    const char *const three[] = {"kafka", "redis", "file"};
    j = open_j(dir, 1 << 20, 2048, three, 3, err, sizeof(err));
    ok(j != NULL, "reopen with a third, new sink (%s)", err);
    if (!j)
        goto out;
    n = list_segs(dir, f, 64);
    ok(n > 0 && hb_journal_cursor(j, 2) == f[0] - 1,
       "the new sink starts before the oldest record kept (%" PRIu64 ")", hb_journal_cursor(j, 2));
    ok(hb_journal_cursor(j, 0) == 40 && hb_journal_cursor(j, 1) == 20, "the others keep theirs");
    is_int(read_check(j, hb_journal_cursor(j, 2), f[0], (int)f[0] - 1, B), 40 - (f[0] - 1),
           "the new sink can read every record kept");
    for (size_t i = 0; i < 3; i++)
        hb_journal_ack(j, i, 40);
    ok(poll_segments(j, dir, 1, POLL_MS), "every sink at 40: one segment left");
    hb_journal_close(j);
out:
    rm_tmpdir(dir);
}

/* Regression (code review): a cursor ahead of the records on disk (after
 * an operator cut damaged records away, or a restored backup) made the
 * writer append records with a sequence gap inside the newest segment, and
 * the next start cut them off as a "torn tail" although they had been
 * answered 200. Now the writer starts a new segment at the cursor, and a
 * hole between segments below the highest cursor is accepted. */
static void test_cursor_ahead_of_records(void)
{
    char dir[256], err[512], path[512];
    const char *sinks[] = {"file"};
    mk_tmpdir(dir, sizeof(dir), "ahead");
    hb_journal_t *j = open_j(dir, 1 << 20, 0, sinks, 1, err, sizeof(err));
    ok(j != NULL, "ahead: open: %s", err);
    if (!j)
        return;
    uint64_t seqs[5];
    int errs[5];
    ok(append_range(j, 0, 5, 100, 1, seqs, errs) && seqs[4] == 5, "ahead: records 1..5");
    hb_journal_close(j);
    /* an operator's repair: the sink is said to have published up to 10 */
    snprintf(path, sizeof(path), "%s/cursors", dir);
    FILE *f = fopen(path, "w");
    fputs("file 10\n", f);
    fclose(f);
    j = open_j(dir, 1 << 20, 0, sinks, 1, err, sizeof(err));
    ok(j != NULL, "ahead: reopen with the cursor at 10: %s", err);
    if (!j)
        return;
    uint64_t s11 = 0, s12 = 0;
    int e11 = append_one(j, 11, 100, &s11), e12 = append_one(j, 12, 100, &s12);
    ok(e11 == 0 && e12 == 0 && s11 == 11 && s12 == 12,
       "ahead: new records continue after the cursor (%" PRIu64 ", %" PRIu64 ")", s11, s12);
    hb_journal_close(j);
    scan_t sc = {0, 0, 1};
    hb_journal_opts_t o = {.dir = dir,
                           .max_bytes = 1 << 20,
                           .sinks = sinks,
                           .n_sinks = 1,
                           .on_record = on_record,
                           .on_record_arg = &sc};
    j = hb_journal_open(&o, err, sizeof(err));
    ok(j != NULL, "ahead: third open accepts the hole below the cursor: %s", err);
    if (!j)
        return;
    /* records 1..5 were published (cursor 10) and their segment deleted */
    ok(sc.n == 2 && sc.last == 12, "ahead: nothing cut: %d records scanned, last %" PRIu64, sc.n,
       sc.last);
    ok(read_check(j, 10, 11, 11, 100) == 2, "ahead: the sink reads records 11 and 12");
    hb_journal_close(j);
    rm_tmpdir(dir);
}

static void test_open_errors(void)
{
    char dir[128], err[512], path[4096];
    mk_tmpdir(dir, sizeof(dir), "errors");
    hb_journal_t *j = open_j(dir, 1 << 20, 0, one_sink, 0, err, sizeof(err));
    ok(j == NULL && err[0], "no sinks: open fails (%s)", err);
    const char *nine[9] = {"a", "b", "c", "d", "e", "f", "g", "h", "i"};
    j = open_j(dir, 1 << 20, 0, nine, 9, err, sizeof(err));
    ok(j == NULL && err[0], "more than HB_JOURNAL_MAX_SINKS sinks: open fails (%s)", err);
    snprintf(path, sizeof(path), "%s/plainfile", dir);
    FILE *fp = fopen(path, "w");
    fclose(fp);
    snprintf(path, sizeof(path), "%s/plainfile/journal", dir);
    j = open_j(path, 1 << 20, 0, one_sink, 1, err, sizeof(err));
    ok(j == NULL && strstr(err, "plainfile"),
       "a dir under a regular file: open fails naming it (%s)", err);
    snprintf(path, sizeof(path), "%s/new/nested/journal", dir);
    j = open_j(path, 1 << 20, 0, one_sink, 1, err, sizeof(err));
    ok(j != NULL, "a missing directory is created (%s)", err);
    hb_journal_close(j);
    hb_journal_close(NULL);
    char sub[4096];
    snprintf(sub, sizeof(sub), "%s/new/nested/journal", dir);
    rm_tmpdir(sub);
    snprintf(sub, sizeof(sub), "%s/new/nested", dir);
    rmdir(sub);
    snprintf(sub, sizeof(sub), "%s/new", dir);
    rmdir(sub);
    rm_tmpdir(dir);
}

/* A journal in a new directory, with preallocated segments of PRE_SEG
 * bytes and its spare at `spare`; o is filled for reopening. */
#define PRE_SEG 8192
static hb_journal_t *open_prealloc(const char *name, char *dir, size_t dlen, char *spare,
                                   size_t slen, hb_journal_opts_t *o, char *err, size_t errlen)
{
    mk_tmpdir(dir, dlen, name);
    snprintf(spare, slen, "%s/spare", dir);
    *o = (hb_journal_opts_t){.dir = dir,
                             .max_bytes = 1 << 20,
                             .segment_bytes = PRE_SEG,
                             .sinks = one_sink,
                             .n_sinks = 1};
    err[0] = '\0';
    hb_journal_t *j = hb_journal_open(o, err, errlen);
    ok(j != NULL, "open with preallocation (%s)", err);
    return j;
}

/* Preallocated segments: the keeper zero-fills a spare ahead of need, the
 * writer rotates into it (the file keeps its size; fdatasync then commits
 * no size change), and recovery reads a zero tail as the end. */
static void test_prealloc(void)
{
    char dir[128], err[512], spare[4096], path[4096];
    const size_t B = 500;
    const uint64_t SEG = PRE_SEG;
    hb_journal_opts_t o;
    hb_journal_t *j =
        open_prealloc("prealloc", dir, sizeof(dir), spare, sizeof(spare), &o, err, sizeof(err));
    if (!j)
        goto out;
    int ready = 0;
    for (uint64_t t0 = mono_ms(); !ready && mono_ms() - t0 < POLL_MS; sleep_ms(10))
        ready = file_size(spare) == (off_t)SEG;
    ok(ready, "the keeper made a spare segment of segment_bytes");
    sleep_ms(50); /* the keeper flags it ready just after naming it */
    struct stat st;
    ino_t spare_ino = stat(spare, &st) == 0 ? st.st_ino : 0;
    ok(append_range(j, 0, 60, B, 3, NULL, NULL), "60 appends");
    uint64_t f[64];
    int n = list_segs(dir, f, 64), used = 0;
    for (int i = 1; i < n; i++) {
        seg_path(dir, f[i], path, sizeof(path));
        if (stat(path, &st) == 0 && st.st_ino == spare_ino)
            used = 1;
    }
    ok(n >= 3 && used, "the first rotation renamed the spare into a segment (%d segments)", n);
    is_int(read_check(j, 0, 1, 0, B), 60, "every record readable across preallocated segments");
    hb_journal_close(j);
    scan_t sc = {0, 0, 1};
    o.on_record = on_record;
    o.on_record_arg = &sc;
    j = hb_journal_open(&o, err, sizeof(err));
    ok(j != NULL, "reopen: zero tails are no damage (%s)", err);
    ok(sc.n == 60 && sc.ordered, "reopen scans the 60 records (%d)", sc.n);
    uint64_t s = 0;
    is_int(j ? append_one(j, 60, B, &s) : -1, 0, "append after reopen");
    is_int(s, 61, "seq 61");
    is_int(j ? read_check(j, 0, 1, 0, B) : -1, 61, "61 records");
    hb_journal_close(j);
out:
    rm_tmpdir(dir);
}

/* Fault injection for the write and sync steps. */
typedef struct faults {
    atomic_int writes, syncs;
    int fail_write, fail_sync; /* 1-based call to fail; 0 = none */
    int sync_delay_ms;         /* lets appends pile up into bigger batches */
    int write_delay_ms;
    int hold_write;              /* 1-based write held until `release` */
    atomic_int holding, release; /* the writer waits in that write; let it go */
    uint64_t sync_defer_us;      /* hb_journal_opts_t's, 0: the default */
    int no_prealloc;             /* hb_journal_opts_t's */
    atomic_int open_synced, scanned_before_sync;
} faults_t;

static int fault_fn(const char *op, void *arg)
{
    faults_t *f = arg;
    if (strcmp(op, "write") == 0) {
        int n = atomic_fetch_add(&f->writes, 1) + 1;
        if (n == f->hold_write) {
            atomic_store(&f->holding, 1);
            for (int i = 0; i < 30000 && !atomic_load(&f->release); i++)
                sleep_ms(1);
        }
        if (f->write_delay_ms)
            sleep_ms(f->write_delay_ms);
        return n == f->fail_write ? ENOSPC : 0;
    }
    if (strcmp(op, "sync") == 0) {
        if (f->sync_delay_ms)
            sleep_ms(f->sync_delay_ms);
        return atomic_fetch_add(&f->syncs, 1) + 1 == f->fail_sync ? EIO : 0;
    }
    if (strcmp(op, "open-sync") == 0)
        atomic_store(&f->open_synced, 1);
    return 0;
}

/* A journal of 1 MiB for one sink whose write and sync steps ask `fl`. */
static hb_journal_t *open_faulty(const char *dir, uint64_t segment_bytes, faults_t *fl, char *err,
                                 size_t errlen)
{
    hb_journal_opts_t o = {.dir = dir,
                           .max_bytes = 1 << 20,
                           .segment_bytes = segment_bytes,
                           .sinks = one_sink,
                           .n_sinks = 1,
                           .fault = fault_fn,
                           .fault_arg = fl,
                           .sync_defer_us = fl->sync_defer_us,
                           .no_prealloc = fl->no_prealloc};
    err[0] = '\0'; /* hb_journal_open writes it only on failure */
    hb_journal_t *j = hb_journal_open(&o, err, errlen);
    ok(j != NULL, "open (%s)", err);
    return j;
}

static int body_k(const hb_record_t *r)
{
    const char *p = memmem(r->body, r->body_len, "\"k\":", 4);
    return p ? atoi(p + 4) : -1;
}

/* Wait (up to 10 s) until cond(j, arg) holds; returns whether it did. */
static int wait_until(int (*cond)(hb_journal_t *j, void *arg), hb_journal_t *j, void *arg)
{
    for (int i = 0; i < 10000; i++) {
        if (cond(j, arg))
            return 1;
        sleep_ms(1);
    }
    return cond(j, arg);
}

static int is_holding(hb_journal_t *j, void *arg)
{
    (void)j;
    return atomic_load(&((faults_t *)arg)->holding);
}

static int durable_at(hb_journal_t *j, void *arg)
{
    return hb_journal_durable_seq(j) >= *(uint64_t *)arg;
}

static int has_failed(hb_journal_t *j, void *arg)
{
    (void)arg;
    return hb_journal_failed(j);
}

/* Appends ts[0] and holds the writer in its write (fl->hold_write = 1),
 * queues ts[1..n) behind it, then lets the writer go: two batches, the
 * second complete before the writer takes it. Whether all n were answered. */
static int hold_then_queue(hb_journal_t *j, faults_t *fl, tappend_t **ts, int n)
{
    hb_journal_append(j, &ts[0]->a);
    ok(wait_until(is_holding, j, fl), "the writer holds in the first batch's write");
    for (int i = 1; i < n; i++)
        hb_journal_append(j, &ts[i]->a);
    atomic_store(&fl->release, 1);
    return wait_all(ts, n);
}

/* Appends A (its write held) then B1..B3 queued behind it, all under
 * ack = written, in a journal that lets such batches go unsynced for a
 * minute while more keep coming: both batches are answered once written,
 * the second without waiting for a sync of the first. */
static hb_journal_t *written_pair(const char *dir, faults_t *fl, tappend_t **ts, char *err,
                                  size_t errlen)
{
    fl->hold_write = 1;
    fl->sync_defer_us = 60u * 1000 * 1000;
    fl->no_prealloc = 1; /* no switch to a spare segment, which syncs first */
    hb_journal_t *j = open_faulty(dir, 0, fl, err, errlen);
    if (!j)
        return NULL;
    for (int i = 0; i < 4; i++)
        ts[i] = make_append(i, 200, HB_STAGE_WRITTEN);
    ok(hold_then_queue(j, fl, ts, 4), "the 4 ack = written appends are answered");
    int good = 1;
    for (int i = 0; i < 4; i++)
        if (ts[i]->a.err != 0 || ts[i]->a.seq != (uint64_t)i + 1)
            good = 0;
    ok(good, "... with err 0 and seqs 1..4");
    return j;
}

/* ack = written: batches written back to back share one fdatasync, taken
 * once the writer is idle. Before, each batch was synced before the next
 * was written, so written answers waited for the previous batch's sync
 * and the mode was no faster than durable. */
static void test_written_batches_share_a_sync(void)
{
    char dir[128], err[512];
    mk_tmpdir(dir, sizeof(dir), "wshare");
    faults_t fl = {0};
    tappend_t *ts[4];
    hb_journal_t *j = written_pair(dir, &fl, ts, err, sizeof(err));
    if (!j)
        goto out;
    uint64_t last = 4;
    int durable = wait_until(durable_at, j, &last);
    ok(durable, "the idle writer makes them durable (durable seq %" PRIu64 ")",
       hb_journal_durable_seq(j));
    is_int(atomic_load(&fl.writes), 2, "two batches written");
    is_int(atomic_load(&fl.syncs), 1,
           "one fdatasync covers both (before: one per batch, the second batch waiting for the "
           "first's)");
    is_int(hb_journal_failed(j), 0, "not failed");
    hb_journal_close(j);
    for (int i = 0; i < 4; i++)
        free_append(ts[i]);
    fl.hold_write = 0;
    j = open_faulty(dir, 0, &fl, err, sizeof(err));
    is_int(j ? read_check(j, 0, 1, 0, 200) : -1, 4, "all 4 readable after close and reopen");
    hb_journal_close(j);
out:
    rm_tmpdir(dir);
}

/* A failed sync takes back every batch it was to cover: the deliveries
 * answered under ack = written are lost (the risk that mode takes, as
 * after a power loss), nothing of them is readable, their sequence numbers
 * go to the next appends, and the journal stays usable. */
static void test_written_failed_sync_takes_the_span_back(void)
{
    char dir[128], err[512];
    mk_tmpdir(dir, sizeof(dir), "wfail");
    faults_t fl = {.fail_sync = 1};
    tappend_t *ts[4];
    hb_journal_t *j = written_pair(dir, &fl, ts, err, sizeof(err));
    if (!j)
        goto out;
    ok(wait_until(has_failed, j, NULL), "the injected sync failure is seen");
    is_int(atomic_load(&fl.syncs), 1, "one sync, for both batches");
    is_int(hb_journal_durable_seq(j), 0, "nothing of the span is durable");
    fl.fail_sync = 0; /* the writer is idle: no race */
    uint64_t seq = 0;
    is_int(append_one(j, 10, 200, &seq), 0, "an ack = durable append after the failure");
    is_int(seq, 1, "takes seq 1: the failed span's numbers are reused");
    is_int(hb_journal_failed(j), 0, "a later good sync cleared the failed state");
    is_int(read_check(j, 0, 1, 10, 200), 1, "the reader sees that record alone");
    hb_journal_close(j);
    for (int i = 0; i < 4; i++)
        free_append(ts[i]);
    fl.hold_write = 0;
    j = open_faulty(dir, 0, &fl, err, sizeof(err));
    if (j) {
        /* the failed span's bytes were zeroed: nothing of it comes back
         * (a later batch of it, left whole, would follow that record with
         * the very seqs it continues and a valid commit mark) */
        is_int(read_check(j, 0, 1, 10, 200), 1, "after reopen: that record alone");
    }
    hb_journal_close(j);
out:
    rm_tmpdir(dir);
}

static int spare_ready(const char *dir)
{
    char p[256];
    struct stat st;
    snprintf(p, sizeof(p), "%s/spare", dir);
    return stat(p, &st) == 0;
}

/* A segment switch after a failed sync of a span that began at the active
 * segment's first record: next_seq went back to that record, so the next
 * segment would have taken the active one's name (the spare renamed over
 * it, two list entries for one file, the active file deleted once a sink
 * passed it, and a durable record answered 200 lost with it). The writer
 * now stays in the segment. */
static void test_failed_sync_before_rotation(void)
{
    char dir[128], err[512];
    mk_tmpdir(dir, sizeof(dir), "wrot");
    faults_t fl = {.fail_sync = 1, .hold_write = 1, .sync_defer_us = 60u * 1000 * 1000};
    hb_journal_t *j = open_faulty(dir, 64 * 1024, &fl, err, sizeof(err));
    if (!j)
        goto out;
    for (int i = 0; i < 10000 && !spare_ready(dir); i++)
        sleep_ms(1);
    ok(spare_ready(dir), "a spare segment is ready: the first one, growing, is left at once");
    tappend_t *ts[2];
    for (int i = 0; i < 2; i++)
        ts[i] = make_append(i, 200, HB_STAGE_WRITTEN);
    ok(hold_then_queue(j, &fl, ts, 2), "both answered");
    uint64_t one = 1;
    ok(wait_until(durable_at, j, &one), "the second one made durable");
    is_int(atomic_load(&fl.syncs), 2, "after the failed sync before the switch, and its own");
    is_int(ts[1]->a.seq, 1, "the second took seq 1: the first's was taken back");
    uint64_t seq = 0;
    is_int(append_one(j, 2, 200, &seq), 0, "an ack = durable append");
    is_int(seq, 2, "takes seq 2");
    hb_journal_ack(j, 0, 1);
    sleep_ms(800); /* the keeper's passes: it deletes what every sink passed */
    is_int(append_one(j, 3, 200, &seq), 0, "another one");
    is_int(seq, 3, "takes seq 3");
    is_int(read_check(j, 1, 2, 2, 200), 2, "both readable live");
    hb_journal_close(j);
    for (int i = 0; i < 2; i++)
        free_append(ts[i]);
    fl.hold_write = 0;
    j = open_faulty(dir, 64 * 1024, &fl, err, sizeof(err));
    is_int(j ? read_check(j, 1, 2, 2, 200) : -1, 2,
           "the durable records answered 200 after the failure survive a reopen");
    hb_journal_close(j);
out:
    rm_tmpdir(dir);
}

/* A span's unsynced bytes count against max_bytes: they are on their way
 * to the disk like any durable record, though not in the journal's
 * durable byte count until their sync. Here 700 KiB written and not
 * synced leave room in the 1 MiB journal for one more 200 KiB append, not
 * three (all three fitted before). */
static void test_written_span_counts_against_max_bytes(void)
{
    char dir[128], err[512];
    mk_tmpdir(dir, sizeof(dir), "wfull");
    faults_t fl = {.hold_write = 1, .sync_defer_us = 60u * 1000 * 1000, .no_prealloc = 1};
    hb_journal_t *j = open_faulty(dir, 4u << 20, &fl, err, sizeof(err));
    if (!j)
        goto out;
    tappend_t *ts[4];
    for (int i = 0; i < 4; i++)
        ts[i] = make_append(i, i ? 200u << 10 : 700u << 10, HB_STAGE_WRITTEN);
    ok(hold_then_queue(j, &fl, ts, 4), "all four answered");
    int taken = 0, full = 0;
    for (int i = 1; i < 4; i++) {
        if (ts[i]->a.err == 0)
            taken++;
        else if (ts[i]->a.err == ENOSPC)
            full++;
    }
    is_int(ts[0]->a.err, 0, "the 700 KiB one is taken");
    ok(taken == 1 && full == 2, "of three 200 KiB ones, %d taken and %d refused as full (1 and 2)",
       taken, full);
    hb_journal_close(j);
    for (int i = 0; i < 4; i++)
        free_append(ts[i]);
out:
    rm_tmpdir(dir);
}

/* Under ack = written the writer never idles while appends keep coming
 * faster than it writes (each write here takes 2 ms, an append comes every
 * 0.5 ms for 75 ms or more): the age limit still makes them durable while
 * they come, not only once they stop. Without it, only the first record
 * was durable by the last append; with it, 133-144 of 150 (a sync every
 * 5 ms and its own time): 10 leaves room for a slow disk. */
static void test_written_synced_while_busy(void)
{
    char dir[128], err[512];
    mk_tmpdir(dir, sizeof(dir), "wbusy");
    faults_t fl = {.write_delay_ms = 2};
    hb_journal_t *j = open_faulty(dir, 0, &fl, err, sizeof(err));
    if (!j)
        goto out;
    enum { N = 150 };
    tappend_t *ts[N];
    uint64_t durable_during = 0;
    for (int i = 0; i < N; i++) {
        ts[i] = make_append(i, 200, HB_STAGE_WRITTEN);
        hb_journal_append(j, &ts[i]->a);
        usleep(500);
        if (i == N - 1)
            durable_during = hb_journal_durable_seq(j);
    }
    ok(wait_all(ts, N), "%d ack = written appends answered", N);
    ok(durable_during >= 10,
       "records were made durable while appends kept coming (durable seq %" PRIu64
       " when the last was queued, after %d writes and %d syncs)",
       durable_during, atomic_load(&fl.writes), atomic_load(&fl.syncs));
    uint64_t last = N;
    ok(wait_until(durable_at, j, &last), "and all of them once they stopped");
    hb_journal_close(j);
    for (int i = 0; i < N; i++)
        free_append(ts[i]);
out:
    rm_tmpdir(dir);
}

/* A fdatasync of 100 ms or more is said in the log with how many
 * deliveries waited for it; a quick one is not. The fault hook runs inside
 * the timed sync, so its sleep stands in for a slow disk. */
static void test_slow_sync_logged(void)
{
    char dir[128], err[512];
    mk_tmpdir(dir, sizeof(dir), "slowsync");
    faults_t fl = {.sync_delay_ms = 0};
    hb_journal_t *j = open_faulty(dir, 0, &fl, err, sizeof(err));
    if (!j)
        goto out;
    char *logged[2];
    for (int slow = 0; slow < 2; slow++) {
        fl.sync_delay_ms = slow ? 150 : 0; /* the writer is idle between rounds */
        tappend_t *t = make_append(slow, 200, HB_STAGE_DURABLE);
        test_capture_begin();
        hb_journal_append(j, &t->a);
        int done = wait_all(&t, 1);
        logged[slow] = test_capture_end();
        ok(done && t->a.err == 0, "append %d durable", slow);
        if (done)
            free_append(t);
    }
    ok(strstr(logged[0], "took") == NULL, "a quick sync is not logged: '%s'", logged[0]);
    ok(strstr(logged[1], "[journal] fdatasync took") != NULL &&
           strstr(logged[1], "1 delivery waited for it") != NULL,
       "a 150 ms sync is logged with the deliveries it held: '%s'", logged[1]);
    const char *ms = strstr(logged[1], "took ");
    ok(ms && atoi(ms + 5) >= 150 && atoi(ms + 5) < 60000, "with its duration in ms (%d)",
       ms ? atoi(ms + 5) : -1);
    free(logged[0]);
    free(logged[1]);
    hb_journal_close(j);
out:
    rm_tmpdir(dir);
}

/* Issue 9, item 7: when the clean-up after a failed write or fdatasync
 * failed too, the writer's idea of the file was wrong and sequence numbers
 * were reused: records answered 503 could be published and records
 * answered 200 skipped. Now nothing is cut on that path: the failed
 * batches (and every one written after them that was not durable yet) are
 * answered 503 and written over from the durable end. */
static void test_failed_sync_reuses_no_acknowledged_seq(void)
{
    char dir[128], err[512];
    mk_tmpdir(dir, sizeof(dir), "failsync");
    const size_t B = 300;
    enum { N = 240 };
    faults_t fl = {.fail_write = 3, .fail_sync = 2, .sync_delay_ms = 3};
    hb_journal_t *j = open_faulty(dir, 16384, &fl, err, sizeof(err));
    if (!j)
        goto out;
    tappend_t *ts[N];
    for (int i = 0; i < N; i++) {
        ts[i] = make_append(i, B, HB_STAGE_DURABLE);
        hb_journal_append(j, &ts[i]->a);
        if (i % 4 == 3)
            sleep_ms(1); /* a steady stream: many batches */
    }
    ok(wait_all(ts, N), "every append completed");
    int good = 0, failed = 0, other = 0;
    int *want = calloc(N + 1, sizeof(int)); /* seq -> k + 1 of the append answered 200 */
    int unique = 1;
    for (int i = 0; i < N; i++) {
        if (ts[i]->a.err == 0) {
            good++;
            if (ts[i]->a.seq == 0 || ts[i]->a.seq > N || want[ts[i]->a.seq - 1])
                unique = 0;
            else
                want[ts[i]->a.seq - 1] = i + 1;
        } else if (ts[i]->a.err == EIO || ts[i]->a.err == ENOSPC) {
            failed++;
        } else {
            other++;
        }
    }
    ok(failed >= 2 && good > 0 && other == 0,
       "the injected write and sync failures answered %d appends 503, %d got 200", failed, good);
    ok(unique, "no sequence number went to two appends answered 200");
    int contiguous = 1;
    for (int s = 0; s < good; s++)
        if (!want[s])
            contiguous = 0;
    ok(contiguous, "the 200s hold exactly the seqs 1..%d", good);
    ok(atomic_load(&fl.writes) >= fl.fail_write && atomic_load(&fl.syncs) >= fl.fail_sync,
       "both injected failures happened (%d writes, %d syncs)", atomic_load(&fl.writes),
       atomic_load(&fl.syncs));
    fl.fail_write = fl.fail_sync = 0; /* the writer is idle: no race */
    uint64_t extra = 0;
    is_int(append_one(j, N, B, &extra), 0, "one more append after the failures");
    is_int(extra, (uint64_t)good + 1, "takes the next seq");
    want[good++] = N + 1;
    is_int(hb_journal_failed(j), 0, "a later successful sync cleared the failed state");
    for (int pass = 0; pass < 2; pass++) {
        hb_journal_reader_t *r = hb_journal_reader_new(j, 0);
        hb_record_t rec;
        int n = 0, match = 1;
        while (hb_journal_reader_next(r, &rec) == 1) {
            if (rec.seq != (uint64_t)n + 1 || rec.seq > N + 1 ||
                want[rec.seq - 1] - 1 != body_k(&rec))
                match = 0;
            n++;
        }
        hb_journal_reader_free(r);
        ok(n == good && match,
           "%s: the reader sees exactly the records answered 200, in order (%d of %d)",
           pass ? "after reopen" : "live", n, good);
        if (pass)
            break;
        hb_journal_close(j);
        fl.fail_write = fl.fail_sync = 0;
        j = open_faulty(dir, 16384, &fl, err, sizeof(err)); /* reopened after the failures */
        if (!j)
            break;
    }
    uint64_t s = 0;
    is_int(j ? append_one(j, N + 1, B, &s) : -1, 0, "append after reopen");
    is_int(s, (uint64_t)good + 1, "takes the seq after the last one answered 200");
    hb_journal_close(j);
    free(want);
    for (int i = 0; i < N; i++)
        free_append(ts[i]);
out:
    rm_tmpdir(dir);
}

static void on_record_check_synced(const hb_record_t *r, void *arg)
{
    (void)r;
    faults_t *f = arg;
    if (!atomic_load(&f->open_synced))
        atomic_fetch_add(&f->scanned_before_sync, 1);
}

static int fault_open_only(const char *op, void *arg)
{
    return strcmp(op, "open-sync") == 0 ? fault_fn(op, arg) : 0;
}

/* Issue 9, item 8: after kill -9, records written but never synced were
 * accepted at start and their ids entered the dedup set. The newest
 * segment is now made durable before any record of it is reported. */
static void test_open_syncs_before_trusting_records(void)
{
    char dir[128], err[512];
    mk_tmpdir(dir, sizeof(dir), "opensync");
    hb_journal_t *j = open_j(dir, 1 << 20, 0, one_sink, 1, err, sizeof(err));
    ok(j && append_range(j, 0, 5, 200, 1, NULL, NULL), "5 records");
    hb_journal_close(j);
    faults_t fl = {0};
    hb_journal_opts_t o = {.dir = dir,
                           .max_bytes = 1 << 20,
                           .sinks = one_sink,
                           .n_sinks = 1,
                           .on_record = on_record_check_synced,
                           .on_record_arg = &fl,
                           .fault = fault_open_only,
                           .fault_arg = &fl};
    j = hb_journal_open(&o, err, sizeof(err));
    ok(j != NULL, "reopen (%s)", err);
    ok(atomic_load(&fl.open_synced) && atomic_load(&fl.scanned_before_sync) == 0,
       "the newest segment was synced before any of its records was reported");
    hb_journal_close(j);
    rm_tmpdir(dir);
}

/* hb_journal_scan (`hookbridge journal verify|ls|cat`): the recovery code,
 * read-only. It reads every committed record, names the file and offset of
 * damage, and changes no byte, not even the torn tail that open would cut. */
typedef struct {
    int nseg, damaged, torn;
    char where[4096];
    uint64_t off, records, first_ms, last_ms;
} seg_seen_t;

static void on_seg(const hb_journal_seg_info_t *s, void *arg)
{
    seg_seen_t *v = arg;
    v->nseg++;
    v->records += s->end_seq - s->first_seq;
    if (s->first_ms && (!v->first_ms || s->first_ms < v->first_ms))
        v->first_ms = s->first_ms;
    if (s->last_ms > v->last_ms)
        v->last_ms = s->last_ms;
    if (s->damage) {
        v->torn += s->torn;
        v->damaged += !s->torn;
        snprintf(v->where, sizeof(v->where), "%s", s->path);
        v->off = s->damage_offset;
    }
}

typedef struct {
    scan_t recs;
    seg_seen_t segs;
} scan_both_t;

static void on_scan_record(const hb_record_t *r, void *arg)
{
    on_record(r, &((scan_both_t *)arg)->recs);
}

static void on_scan_seg(const hb_journal_seg_info_t *s, void *arg)
{
    on_seg(s, &((scan_both_t *)arg)->segs);
}

static int scan_dir(const char *dir, scan_both_t *b, char *err, size_t errlen)
{
    memset(b, 0, sizeof(*b));
    b->recs.ordered = 1;
    err[0] = '\0';
    return hb_journal_scan(dir, on_scan_record, on_scan_seg, b, err, errlen);
}

static void test_scan_readonly(void)
{
    char dir[128], err[512], seg[4096], other[160];
    mk_tmpdir(dir, sizeof(dir), "scan");
    const size_t B = 400, R = B + REC_OVERHEAD;
    hb_journal_t *j = open_j(dir, 1 << 20, 2048, one_sink, 1, err, sizeof(err));
    ok(j != NULL, "open with 2 KiB segments (%s)", err);
    if (!j)
        goto out;
    ok(append_range(j, 0, 30, B, 1, NULL, NULL), "30 appends, one batch each");
    hb_journal_close(j);
    uint64_t f[64];
    int n = list_segs(dir, f, 64);
    ok(n >= 3, "several segments (%d)", n);
    if (n < 3)
        goto out;

    scan_both_t b;
    is_int(scan_dir(dir, &b, err, sizeof(err)), n, "a sound journal: every segment (%s)", err);
    is_int(b.recs.n, 30, "every record read");
    ok(b.recs.ordered && b.recs.last == 30, "in sequence order, 1..30 (last %" PRIu64 ")",
       b.recs.last);
    is_int(b.segs.records, 30, "the segments' ranges add up to 30 records");
    ok(b.segs.damaged == 0 && b.segs.torn == 0, "no damage reported");
    ok(b.segs.first_ms == 1768000000000u && b.segs.last_ms == 1768000000029u,
       "received_at range of the records (%" PRIu64 "..%" PRIu64 ")", b.segs.first_ms,
       b.segs.last_ms);

    /* a bad byte in a middle segment: named with its offset, nothing changed */
    seg_path(dir, f[1], seg, sizeof(seg));
    off_t sz = file_size(seg);
    size_t len0;
    unsigned char *before = test_slurp(seg, &len0);
    off_t bad = H + R + H + HB_RECORD_HEADER + 10; /* the second record's payload */
    ok(bad < sz, "segment %s holds two records", seg);
    xor_byte(seg, bad, 0x04);
    is_int(scan_dir(dir, &b, err, sizeof(err)), n, "damage is reported, not an error (%s)", err);
    is_int(b.segs.damaged, 1, "one damaged segment");
    is_str(b.segs.where, seg, "the damaged segment is named");
    is_int(b.segs.off, H + R + H, "damage at the end of the last sound batch");
    ok(b.recs.n < 30 && b.recs.n > 0, "records before the damage still read (%d)", b.recs.n);
    is_int(file_size(seg), sz, "the damaged segment was not truncated");
    xor_byte(seg, bad, 0x04);
    size_t len1;
    unsigned char *after = test_slurp(seg, &len1);
    ok(before && after && len0 == len1 && memcmp(before, after, len0) == 0,
       "byte restored: the file is as it was");
    free(before);
    free(after);

    /* a torn tail of the newest segment: reported, not cut */
    seg_path(dir, f[n - 1], seg, sizeof(seg));
    append_bytes(seg, 0x5A, 100);
    sz = file_size(seg);
    is_int(scan_dir(dir, &b, err, sizeof(err)), n, "torn tail (%s)", err);
    ok(b.segs.torn == 1 && b.segs.damaged == 0, "reported as a torn tail (torn %d, damaged %d)",
       b.segs.torn, b.segs.damaged);
    is_int(b.segs.off, sz - 100, "at the old end of the file");
    is_int(file_size(seg), sz, "the torn tail was left in place");
    is_int(b.recs.n, 30, "all 30 records read");

    /* not a journal */
    snprintf(other, sizeof(other), "%s/empty", dir);
    mkdir(other, 0700);
    ok(scan_dir(other, &b, err, sizeof(err)) < 0 && strstr(err, "not a journal"),
       "an empty directory is refused (%s)", err);
    struct stat st;
    ok(stat(other, &st) == 0, "and left alone");
    rmdir(other);
    snprintf(other, sizeof(other), "%s/missing", dir);
    ok(scan_dir(other, &b, err, sizeof(err)) < 0 && stat(other, &st) < 0,
       "a missing directory is refused, not created (%s)", err);
out:
    rm_tmpdir(dir);
}

static hb_journal_t *open_retain(const char *dir, uint64_t max_bytes, uint64_t retain_ms,
                                 uint64_t retain_bytes, char *err, size_t errlen)
{
    hb_journal_opts_t o = {
        .dir = dir,
        .max_bytes = max_bytes,
        .sinks = one_sink,
        .n_sinks = 1,
        .no_prealloc = 1,
        .retain_ms = retain_ms,
        .retain_bytes = retain_bytes,
    };
    err[0] = '\0';
    return hb_journal_open(&o, err, errlen);
}

static void set_mtime_ago(const char *path, int seconds)
{
    struct timespec ts[2];
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= seconds;
    ts[1] = ts[0];
    utimensat(AT_FDCWD, path, ts, 0);
}

/* Until the cursors file says the sink is at seq (deletion follows it). */
static int poll_cursor_file(const char *dir, uint64_t seq)
{
    char path[4096], want[64];
    snprintf(path, sizeof(path), "%s/cursors", dir);
    snprintf(want, sizeof(want), "file %" PRIu64 "\n", seq);
    return poll_file_contains(path, want, POLL_MS);
}

/* journal.retain: published segments stay until their last write is older
 * than retain; then they go, oldest first, and /metrics' span follows. */
static void test_retention_by_time(void)
{
    char dir[128], err[512], path[4096];
    mk_tmpdir(dir, sizeof(dir), "retain-time");
    const size_t B = 520;
    hb_journal_t *j = open_retain(dir, 64 * 1024, 3600 * 1000, 0, err, sizeof(err));
    ok(j != NULL, "open with journal.retain = 1h (%s)", err);
    if (!j)
        goto out;
    ok(append_range(j, 0, 60, B, 5, NULL, NULL), "60 appends into 8 KiB segments");
    uint64_t f[64];
    int n = list_segs(dir, f, 64);
    ok(n >= 4, "several segments (%d)", n);
    hb_journal_ack(j, 0, 60);
    ok(poll_cursor_file(dir, 60), "everything published and the cursor persisted");
    sleep_ms(1000); /* several keeper rounds (200 ms) after the cursor moved */
    is_int(list_segs(dir, f, 64), n, "all %d segments retained although published", n);
    uint64_t rbytes, oldest;
    hb_journal_retained(j, &rbytes, &oldest);
    seg_path(dir, f[n - 1], path, sizeof(path));
    is_int(rbytes, dir_seg_bytes(dir) - (uint64_t)file_size(path),
           "retained bytes: every segment but the newest");
    is_int(oldest, 1768000000000u, "retained span starts at record 1's received_at");

    /* the two oldest age past retain: exactly they go */
    for (int i = 0; i < 2; i++) {
        seg_path(dir, f[i], path, sizeof(path));
        set_mtime_ago(path, 2 * 3600);
    }
    ok(poll_segments(j, dir, (size_t)n - 2, POLL_MS), "the two aged segments deleted (%zu left)",
       hb_journal_segments(j));
    uint64_t f2[64];
    ok(list_segs(dir, f2, 64) == n - 2 && f2[0] == f[2], "the oldest left is the third");
    uint64_t until = mono_ms() + POLL_MS; /* the span follows the deletion */
    do {
        hb_journal_retained(j, &rbytes, &oldest);
    } while (oldest != 1768000000000u + f[2] - 1 && mono_ms() < until && (sleep_ms(10), 1));
    is_int(oldest, 1768000000000u + f[2] - 1, "the span starts at its first record");
    hb_journal_close(j);

    /* retention is read from the options at each open: 0 is today's rule */
    j = open_retain(dir, 64 * 1024, 0, 0, err, sizeof(err));
    ok(j && poll_segments(j, dir, 1, POLL_MS), "reopened with retain 0: published segments go");
    if (j) {
        rbytes = poll_retained_bytes(j, 0, POLL_MS);
        hb_journal_retained(j, &rbytes, &oldest);
        ok(rbytes == 0 && oldest == 0, "nothing retained");
    }
    hb_journal_close(j);
out:
    rm_tmpdir(dir);
}

/* journal.retain_bytes: the newest published segments that fit stay. */
static void test_retention_by_size(void)
{
    char dir[128], err[512], path[4096];
    mk_tmpdir(dir, sizeof(dir), "retain-size");
    const size_t B = 520;
    /* sized after the segments are written: the two newest published ones */
    hb_journal_t *j = open_retain(dir, 64 * 1024, 0, 0, err, sizeof(err));
    ok(j != NULL, "open (%s)", err);
    if (!j)
        goto out;
    ok(append_range(j, 0, 80, B, 5, NULL, NULL), "80 appends into 8 KiB segments");
    hb_journal_close(j);
    uint64_t f[64];
    int n = list_segs(dir, f, 64);
    ok(n >= 5, "several segments (%d)", n);
    if (n < 5)
        goto out;
    uint64_t two = 0;
    for (int i = n - 3; i < n - 1; i++) {
        seg_path(dir, f[i], path, sizeof(path));
        two += (uint64_t)file_size(path);
    }
    j = open_retain(dir, 64 * 1024, 0, two, err, sizeof(err));
    ok(j != NULL, "reopen with journal.retain_bytes = %" PRIu64 " (%s)", two, err);
    if (!j)
        goto out;
    hb_journal_ack(j, 0, 80);
    ok(poll_segments(j, dir, 3, POLL_MS), "the newest and two retained segments left (%zu)",
       hb_journal_segments(j));
    uint64_t f2[64];
    ok(list_segs(dir, f2, 64) == 3 && f2[0] == f[n - 3], "the two newest published ones");
    is_int(poll_retained_bytes(j, two, POLL_MS), two, "retained bytes");
    hb_journal_close(j);
out:
    rm_tmpdir(dir);
}

/* Retained bytes never refuse a delivery: a journal full of published,
 * retained segments accepts past max_bytes' worth of appends, and the
 * retained segments go once it is over its low-water mark. */
static void test_retention_never_blocks(void)
{
    char dir[128], err[512];
    mk_tmpdir(dir, sizeof(dir), "retain-room");
    const size_t B = 520;
    const uint64_t MAX = 64 * 1024;
    hb_journal_t *j = open_retain(dir, MAX, 3600 * 1000, 0, err, sizeof(err));
    ok(j != NULL, "open with journal.retain = 1h (%s)", err);
    if (!j)
        goto out;
    int errs[40], refused = 0, k = 0;
    for (int round = 0; round < 6; round++) { /* 240 records: over 2 x max_bytes */
        uint64_t seqs[40];
        append_range(j, k, 40, B, 5, seqs, errs);
        for (int i = 0; i < 40; i++)
            refused += errs[i] != 0;
        hb_journal_ack(j, 0, seqs[39]);
        k += 40;
        /* as without retention, room comes back once the keeper has
         * persisted the cursor (every 200 ms): here it is counted as
         * retained rather than deleted */
        uint64_t rb, om, until = mono_ms() + POLL_MS;
        do {
            sleep_ms(10);
            hb_journal_retained(j, &rb, &om);
        } while (hb_journal_bytes(j) - rb > MAX / 4 && mono_ms() < until);
    }
    is_int(refused, 0, "no append refused while retained segments held the room");
    ok(!hb_journal_full(j), "not full");
    uint64_t end = mono_ms() + POLL_MS;
    while (hb_journal_bytes(j) >= MAX / 10 * 9 && mono_ms() < end)
        sleep_ms(10);
    ok(hb_journal_bytes(j) < MAX / 10 * 9, "retained segments deleted down to the low-water mark");
    ok(hb_journal_segments(j) > 1, "and no further: %zu segments still retained",
       hb_journal_segments(j));
    hb_journal_close(j);
out:
    rm_tmpdir(dir);
}

/* A journal written before commit marks existed: its records count as they
 * are, and new batches go to a new segment. Appending marked batches to the
 * legacy segment made the second start after an upgrade refuse it as
 * damaged (valid records after what its rules took for bad bytes). */
static void test_legacy_segment_is_not_appended_to(void)
{
    char dir[128], err[512], seg[4096];
    mk_tmpdir(dir, sizeof(dir), "legacy");
    const size_t B = 200;
    seg_path(dir, 1, seg, sizeof(seg));
    FILE *f = fopen(seg, "wb");
    for (int k = 0; k < 5; k++) {
        tappend_t *t = make_append(k, B, HB_STAGE_DURABLE);
        hb_record_seal(t->a.buf, (uint64_t)k + 1);
        fwrite(t->a.buf, 1, t->a.len, f);
        free_append(t);
    }
    fclose(f);
    for (int round = 0; round < 3; round++) {
        hb_journal_t *j = open_j(dir, 1 << 20, 0, one_sink, 1, err, sizeof(err));
        ok(j != NULL, "start %d on a legacy journal (%s)", round + 1, err);
        if (!j)
            break;
        uint64_t s = 0, s2 = 0;
        /* two batches: marks between them are what the legacy rules refused */
        is_int(append_one(j, 5 + 2 * round, B, &s), 0, "append after start %d", round + 1);
        is_int(append_one(j, 6 + 2 * round, B, &s2), 0, "and another batch");
        ok(s == (uint64_t)6 + 2 * (uint64_t)round && s2 == s + 1, "seqs continue (%" PRIu64 ")", s);
        is_int(read_check(j, 0, 1, 0, B), 7 + 2 * round, "every record readable, old and new");
        hb_journal_close(j);
    }
    uint64_t firsts[8];
    ok(list_segs(dir, firsts, 8) >= 2, "new batches went to a new segment");
    rm_tmpdir(dir);
}

/* ---- recycled segments ---- */

static ino_t inode_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_ino : 0;
}

/* Whether the file at path starts with a header mark carrying `tag`. */
static int header_tag_is(const char *path, uint32_t tag)
{
    unsigned char b[H];
    hb_commit_t c;
    hb_record_t r;
    size_t used;
    int fd = open(path, O_RDONLY);
    int got = fd >= 0 && pread(fd, b, H, 0) == (ssize_t)H;
    if (fd >= 0)
        close(fd);
    return got && hb_record_decode_any(b, H, &r, &c, &used) == HB_DECODE_COMMIT &&
           c.first_seq == 0 && c.last_seq == 0 && c.batch_crc == tag;
}

/* Walk a segment file from its header: end of the last commit mark of the
 * records from `first` on (*committed), and how many whole records with a
 * seq before `first` lie anywhere after it (an earlier life's). */
static int stale_after_commit(const char *path, uint64_t first, uint64_t *committed)
{
    size_t len = 0;
    unsigned char *b = test_slurp(path, &len);
    size_t off = 0, end = 0;
    int stale = 0;
    while (b) {
        hb_record_t r;
        hb_commit_t c;
        size_t used;
        hb_decode_t d = hb_record_decode_any(b + off, len - off, &r, &c, &used);
        if (d == HB_DECODE_COMMIT && (off == 0 || c.first_seq >= first))
            end = off + used;
        else if (d != HB_DECODE_OK || r.seq < first)
            break;
        off += used;
    }
    for (size_t i = end; b && i < len; i++) {
        hb_record_t r;
        size_t used;
        if (hb_record_decode(b + i, len - i, &r, &used) == HB_DECODE_OK && r.seq < first)
            stale++;
    }
    free(b);
    *committed = end;
    return stale;
}

/* Append one record at a time until the newest segment file is the one
 * with inode `ino`, then `more` records into it; k counts records. */
static int fill_into(hb_journal_t *j, const char *dir, ino_t ino, int *k, size_t B, int more,
                     uint64_t *first)
{
    for (int i = 0; i < 200; i++) {
        uint64_t f[256];
        char p[4096];
        int n = list_segs(dir, f, 256);
        seg_path(dir, f[n - 1], p, sizeof(p));
        if (n > 0 && inode_of(p) == ino) {
            *first = f[n - 1];
            return append_range(j, *k, more, B, 1, NULL, NULL) ? (*k += more, 1) : 0;
        }
        if (append_one(j, (*k)++, B, NULL) != 0)
            return 0;
    }
    return 0;
}

/* Issue 8: a published segment becomes the next spare instead of being
 * deleted while a new spare is zero-filled. The file then holds an earlier
 * life's records past what this life wrote: recovery must read exactly this
 * life's records, neither cut nor refuse the old ones, and still cut a torn
 * tail and refuse damage of this life. A crash mid-recycle leaves a
 * spare.tmp (deleted at start) or a recycled spare (used as any other). */
static void test_recycle(void)
{
    char dir[128], err[512], spare[4096], path[4096], tmp[4096];
    const size_t B = 500;
    const uint64_t SEG = PRE_SEG;
    hb_journal_opts_t o;
    hb_journal_t *j =
        open_prealloc("recycle", dir, sizeof(dir), spare, sizeof(spare), &o, err, sizeof(err));
    if (!j)
        goto out;

    /* rounds of appends, all published at once, until the spare is a file
     * that was a segment */
    ino_t seen[512];
    int nseen = 0, k = 0, recycled = 0;
    uint64_t acked = 0;
    for (int round = 0; round < 10 && !recycled; round++) {
        ok(append_range(j, k, 15, B, 1, NULL, NULL), "round %d: 15 appends", round);
        k += 15;
        uint64_t f[256];
        int n = list_segs(dir, f, 256);
        for (int i = 0; i < n && nseen < 512; i++) {
            seg_path(dir, f[i], path, sizeof(path));
            seen[nseen++] = inode_of(path);
        }
        acked = (uint64_t)k;
        hb_journal_ack(j, 0, acked);
        for (uint64_t end = mono_ms() + 2000; !recycled && mono_ms() < end; sleep_ms(10)) {
            ino_t si = inode_of(spare);
            for (int i = 0; si && i < nseen; i++)
                recycled |= seen[i] == si;
        }
    }
    ok(recycled, "a published segment became the spare");
    ino_t rino = inode_of(spare);
    sleep_ms(50); /* the keeper flags it ready just after naming it */
    ok(file_size(spare) == (off_t)SEG && header_tag_is(spare, HB_JOURNAL_RECYCLED),
       "the recycled spare: segment_bytes long, its header mark says recycled");

    /* a few records into it: its earlier life's records stay past them */
    uint64_t first = 0, committed = 0;
    ok(fill_into(j, dir, rino, &k, B, 3, &first), "rotated into the recycled spare, 3 records");
    hb_journal_close(j);
    seg_path(dir, first, path, sizeof(path));
    int stale = stale_after_commit(path, first, &committed);
    ok(stale > 0 && committed > H, "%d records of its earlier life after the last commit", stale);

    scan_both_t sb;
    ok(scan_dir(dir, &sb, err, sizeof(err)) > 0 && sb.segs.damaged == 0 && sb.segs.torn == 0,
       "journal verify: no damage, no torn tail (%s)", err);
    scan_t sc = {0, 0, 1};
    o.on_record = on_record;
    o.on_record_arg = &sc;
    j = hb_journal_open(&o, err, sizeof(err));
    ok(j != NULL, "reopen: an earlier life's records are no damage (%s)", err);
    if (!j)
        goto out;
    ok(sc.ordered && sc.last == (uint64_t)k, "reopen scans this life's records only, in order");
    is_int(file_size(path), SEG, "nothing cut");
    is_int(read_check(j, acked, acked + 1, (int)acked, B), k - (int)acked,
           "every record after the cursor reads back");
    uint64_t s = 0;
    is_int(append_one(j, k, B, &s), 0, "append after reopen");
    is_int(s, (uint64_t)k + 1, "seq %d", k + 1);
    k++;
    hb_journal_close(j);
    sc = (scan_t){0, 0, 1};
    j = hb_journal_open(&o, err, sizeof(err));
    ok(j && sc.last == (uint64_t)k &&
           read_check(j, acked, acked + 1, (int)acked, B) == k - (int)acked,
       "reopen again: %d records after the cursor", k - (int)acked);
    hb_journal_close(j);

    /* a torn batch of this life over the old bytes: cut, as in any segment */
    stale_after_commit(path, first, &committed);
    unsigned char rec[2048];
    int fd = open(path, O_RDWR);
    size_t rlen = B + REC_OVERHEAD;
    ok(fd >= 0 && pread(fd, rec, rlen, H) == (ssize_t)rlen &&
           pwrite(fd, rec, rlen, (off_t)committed) == (ssize_t)rlen,
       "a record of this life written after the last commit (a torn batch)");
    if (fd >= 0)
        close(fd);
    j = hb_journal_open(&o, err, sizeof(err));
    ok(j != NULL, "reopen with a torn tail (%s)", err);
    is_int(file_size(path), committed, "the torn tail is cut at the last commit");
    is_int(j ? read_check(j, acked, acked + 1, (int)acked, B) : -1, k - (int)acked,
           "records intact");
    hb_journal_close(j);

    /* damage of this life: a later mark of it claims the bad bytes synced */
    xor_byte(path, H + 100, 0x20);
    j = hb_journal_open(&o, err, sizeof(err));
    ok(j == NULL && strstr(err, "damaged"), "a bad byte below a claim of this life refuses (%s)",
       err);
    hb_journal_close(j);
    xor_byte(path, H + 100, 0x20);

    /* crash mid-recycle: spare.tmp (renamed out, header changed, not yet
     * the spare) is deleted at start */
    snprintf(tmp, sizeof(tmp), "%s/spare.tmp", dir);
    size_t len = 0;
    unsigned char *copy = test_slurp(path, &len);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ok(copy && fd >= 0 && write(fd, copy, len) == (ssize_t)len, "a spare.tmp left by a crash");
    if (fd >= 0)
        close(fd);
    j = hb_journal_open(&o, err, sizeof(err));
    ok(j != NULL && inode_of(tmp) == 0, "start deletes it (%s)", err);
    hb_journal_close(j);

    /* crash just after: a recycled spare holding records that are older
     * than any segment it becomes */
    unlink(spare);
    fd = open(spare, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ok(copy && fd >= 0 && write(fd, copy, len) == (ssize_t)len && ftruncate(fd, (off_t)SEG) == 0,
       "a recycled spare with records of its own");
    if (fd >= 0)
        close(fd);
    free(copy);
    ino_t sino = inode_of(spare);
    j = hb_journal_open(&o, err, sizeof(err));
    ok(j != NULL, "open with it (%s)", err);
    if (!j)
        goto out;
    ok(fill_into(j, dir, sino, &k, B, 2, &first), "rotated into it, 2 records");
    hb_journal_close(j);
    sc = (scan_t){0, 0, 1};
    j = hb_journal_open(&o, err, sizeof(err));
    ok(j && sc.ordered && sc.last == (uint64_t)k, "reopen: its old records are not read (%s)", err);
    is_int(j ? read_check(j, acked, acked + 1, (int)acked, B) : -1, k - (int)acked,
           "every record after the cursor, once");
    hb_journal_close(j);
out:
    rm_tmpdir(dir);
}

int main(void)
{
    hb_log_set_level(HB_LOG_WARN);
    uint64_t t0 = mono_ms();
    test_basic();
    test_handoff_sum_whole_microseconds();
    test_stage_written();
    test_written_not_touched_after_done();
    test_big_records();
    test_split_batch_queue_wait();
    test_torn_tail();
    test_power_cut_mid_batch();
    test_corruption();
    test_corruption_mid_newest();
    test_rotation_and_deletion();
    test_deletion_boundary();
    test_full();
    test_full_one_batch();
    test_full_latch_single_segment();
    test_two_sinks();
    test_cursor_ahead_of_records();
    test_prealloc();
    test_failed_sync_reuses_no_acknowledged_seq();
    test_slow_sync_logged();
    test_written_batches_share_a_sync();
    test_written_failed_sync_takes_the_span_back();
    test_failed_sync_before_rotation();
    test_written_span_counts_against_max_bytes();
    test_written_synced_while_busy();
    test_open_syncs_before_trusting_records();
    test_legacy_segment_is_not_appended_to();
    test_open_errors();
    test_scan_readonly();
    test_retention_by_time();
    test_retention_by_size();
    test_retention_never_blocks();
    test_recycle();
    test_held_wakeups();
    diag("journal tests took %" PRIu64 " ms", mono_ms() - t0);
    return done_testing();
}
