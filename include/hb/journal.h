/* The durable journal: append-only segment files of records (see
 * record.h), one writer thread with group commit, and one cursor per sink.
 *
 * Threads:
 *  - hb_journal_append / hb_journal_full / stats: any thread, never block
 *    on I/O (a mutex held for a list push only).
 *  - two threads owned here: the writer writes each batch, makes it
 *    durable with one fdatasync and calls each append's done callback;
 *    the keeper persists cursors, deletes segments every sink is past and
 *    prepares the next segment.
 *  - a reader belongs to one sink thread; hb_journal_reader_next does
 *    blocking pread on that thread.
 *
 * On open, segments are scanned: only batches closed by a valid commit
 * mark count (record.h); a torn tail of the newest segment is cut off with
 * a warning; bad bytes that a later commit mark says were synced, or any in
 * an older segment, refuse to start (the error says how to repair).
 *
 * Recycled segments: a published segment file is reused for a later one
 * rather than deleted and a new one zero-filled. Its header mark (the empty
 * batch at offset 0) then carries HB_JOURNAL_RECYCLED in batch_crc, and
 * what follows its last commit may be left from the file's earlier lives:
 * there, only records and marks of the segment's own range (sequence
 * numbers from the one in its name on) count as a tail; anything older is
 * no damage, as a zero tail is none. */
#ifndef HB_JOURNAL_H
#define HB_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "hb/record.h"

typedef struct hb_journal hb_journal_t;
typedef struct hb_journal_reader hb_journal_reader_t;

#define HB_JOURNAL_MAX_SINKS 8
#define HB_JOURNAL_RECYCLED 0x31594352u /* "RCY1": a recycled segment's header mark */

typedef enum {
    HB_STAGE_WRITTEN = 0, /* done after write(2), before fdatasync */
    HB_STAGE_DURABLE      /* done after fdatasync */
} hb_stage_t;

/* One append. Owned by the caller, lent to the journal from
 * hb_journal_append until done() is called (on the writer thread; done must
 * not block). buf holds a record from hb_record_prepare; the writer seals
 * it in place. */
typedef struct hb_append {
    struct hb_append *next; /* journal's while queued */
    unsigned char *buf;
    size_t len;
    hb_stage_t stage;
    uint64_t seq; /* out: the record's sequence number */
    int err;      /* out: 0, ENOSPC (journal full) or the errno of a failed write/sync */
    void (*done)(struct hb_append *a);
    /* Journal's, for /metrics (hb_mono_us): when it was appended, and when
     * the journal was done with it (written, or synced: the moment done is
     * called for). See hb_journal_handed_off. */
    uint64_t queued_us, done_us;
} hb_append_t;

typedef struct hb_journal_opts {
    const char *dir;
    uint64_t max_bytes;
    uint64_t segment_bytes;   /* 0 = derived from max_bytes */
    const char *const *sinks; /* names, for the cursor file */
    size_t n_sinks;
    /* Called for each record found while opening (dedup rebuild); may be NULL. */
    void (*on_record)(const hb_record_t *r, void *arg);
    void *on_record_arg;
    /* Start with hb_journal_retain_after(j, 0): keep every segment until
     * the caller has persisted what it needs (the dedup snapshot). */
    int retain_all;
    /* Do not prepare the next segment ahead of time, by recycling or
     * zero-filling (segments then grow as they are written, and each
     * fdatasync also commits their size). */
    int no_prealloc;
    /* journal.retain, journal.retain_bytes: keep published segments while
     * younger than retain_ms and within retain_bytes (0: no such limit;
     * both 0: delete once published). Never over the low-water mark. */
    uint64_t retain_ms, retain_bytes;
    /* Tests: fault(op, arg) is asked before each "write" and "sync" of a
     * batch and before the "open-sync" of the newest segment at open; an
     * errno it returns fails that step as the system call would. */
    int (*fault)(const char *op, void *arg);
    void *fault_arg;
    /* Tests: how long batches of ack = written appends may go unsynced
     * while more keep coming (0: the default, 5 ms). */
    uint64_t sync_defer_us;
} hb_journal_opts_t;

hb_journal_t *hb_journal_open(const hb_journal_opts_t *opts, char *err, size_t errlen);
/* Stops the writer after the queued appends are done, persists cursors. */
void hb_journal_close(hb_journal_t *j);

/* Queue an append. Always accepted: a refusal (full, I/O error) arrives
 * through done() with err set. */
void hb_journal_append(hb_journal_t *j, hb_append_t *a);
/* Batching across an event-loop pass. An HTTP loop reads several requests
 * per pass; woken at the first append, the writer would start a batch
 * with that one alone and leave the rest of the pass for the next sync.
 * A thread that calls hb_journal_hold(1) has its appends queued without
 * waking the writer, and must call hb_journal_release_held() before its
 * loop can block (at the end of a pass, or of a few non-blocking passes
 * in a row: server.c), which wakes the writer once for everything held.
 * A writer busy with a batch takes the queue when it is done either way. */
void hb_journal_hold(int on);
void hb_journal_release_held(void);
/* Appends this thread made while holding since its last release. */
unsigned hb_journal_held(void);
/* Non-blocking hint for the front end: 1 while the journal is over its
 * limit and has not drained below the low-water mark yet. */
int hb_journal_full(const hb_journal_t *j);
/* 1 after a write or sync failure until a later batch succeeds. */
int hb_journal_failed(const hb_journal_t *j);

/* Sink `idx` has published every record up to and including seq. */
void hb_journal_ack(hb_journal_t *j, size_t idx, uint64_t seq);
uint64_t hb_journal_cursor(const hb_journal_t *j, size_t idx);
/* Lowest cursor over all sinks: every record <= it is published everywhere. */
uint64_t hb_journal_min_cursor(const hb_journal_t *j);
/* Highest durable sequence number. */
uint64_t hb_journal_durable_seq(const hb_journal_t *j);
uint64_t hb_journal_bytes(const hb_journal_t *j);
uint64_t hb_journal_max_bytes(const hb_journal_t *j);
size_t hb_journal_segments(const hb_journal_t *j);

/* Histograms for /metrics: records per batch written, seconds per batch
 * write and per fdatasync round, and, per record, the seconds it waited for
 * the writer after its append (queue) and from the journal being done with
 * it to its owner taking the answer up (handoff). With the sync they make
 * up a durable answer's time in the journal. Any thread. */
#define HB_JOURNAL_HIST_MAX 16
typedef struct hb_journal_hist {
    size_t n;                                 /* bounds */
    const double *bounds;                     /* upper bounds, ascending */
    uint64_t cumulative[HB_JOURNAL_HIST_MAX]; /* observations <= bounds[i] */
    uint64_t count;                           /* all observations (+Inf) */
    double sum;
} hb_journal_hist_t;
typedef struct hb_journal_hists {
    hb_journal_hist_t records, write_s, sync_s, queue_s, handoff_s;
} hb_journal_hists_t;
void hb_journal_histograms(const hb_journal_t *j, hb_journal_hists_t *out);

/* The owner of a (the thread its done callback handed it to) takes up its
 * answer now: counts now_us - a->done_us in the handoff histogram. A
 * cross-thread wake-up that has to bring an idle CPU back is most of it.
 * Any thread. */
void hb_journal_handed_off(hb_journal_t *j, const hb_append_t *a, uint64_t now_us);

/* The retained span for /metrics: bytes of published segments kept, and
 * the received_at of their oldest record (0 when none). Any thread. */
void hb_journal_retained(const hb_journal_t *j, uint64_t *bytes, uint64_t *oldest_ms);

/* Keep every segment holding a record after `seq`, even once published
 * (the dedup snapshot must cover a record's id before its segment goes).
 * Default: no such limit. The limit yields when the journal is over its
 * low-water mark: accepting deliveries matters more than remembering ids.
 * Any thread. */
void hb_journal_retain_after(hb_journal_t *j, uint64_t seq);

/* Register a function called after each durable batch (to wake the sink
 * threads), or whenever the lowest sink cursor moves (to answer
 * ack=published requests). Must not block. Any number, from any thread,
 * any time before hb_journal_close; never removed. */
void hb_journal_on_progress(hb_journal_t *j, void (*fn)(void *arg), void *arg);
void hb_journal_on_published(hb_journal_t *j, void (*fn)(void *arg), void *arg);

/* A reader of durable records after `after_seq` (usually the sink cursor). */
hb_journal_reader_t *hb_journal_reader_new(hb_journal_t *j, uint64_t after_seq);
void hb_journal_reader_free(hb_journal_reader_t *r);
/* 1: rec filled (valid until the next call), 0: nothing durable yet,
 * -1: I/O error or corruption (logged). */
int hb_journal_reader_next(hb_journal_reader_t *r, hb_record_t *rec);

/* ---- offline and read-only: the `hookbridge journal` commands ---- */

/* The sink cursors persisted in dir ("<sink> <seq>" lines): fn once per
 * cursor. Returns how many, 0 when there is no cursors file, -1 + err. */
int hb_journal_read_cursors(const char *dir, void (*fn)(const char *name, uint64_t seq, void *arg),
                            void *arg, char *err, size_t errlen);

typedef struct hb_journal_seg_info {
    const char *path;
    uint64_t first_seq;         /* from the file name */
    uint64_t end_seq;           /* one past the last committed record */
    uint64_t committed_bytes;   /* up to the end of the last valid commit mark */
    uint64_t file_bytes;        /* on disk, a preallocated tail included */
    uint64_t first_ms, last_ms; /* received_at range of its records; 0 when none */
    const char *damage;         /* NULL when sound, else what is wrong at damage_offset */
    uint64_t damage_offset;
    int torn; /* the damage is only a torn tail of the newest segment (cut at start) */
} hb_journal_seg_info_t;

/* Scan the journal in dir with the recovery code of hb_journal_open, but
 * read-only (nothing synced, cut, created or deleted): on_record for each
 * committed record in order, then on_segment for each segment, oldest
 * first. Damage is reported through on_segment, and records before it are
 * still read. Returns the number of segments, or -1 with err when dir
 * cannot be read or is not a journal (neither segments nor cursors). Either
 * callback may be NULL. Blocking I/O: not on an event-loop thread. */
int hb_journal_scan(const char *dir, void (*on_record)(const hb_record_t *r, void *arg),
                    void (*on_segment)(const hb_journal_seg_info_t *s, void *arg), void *arg,
                    char *err, size_t errlen);

#endif
