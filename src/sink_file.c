/* The file sink: one JSON object per line, the embedded default.
 *
 *   {"received_at":"<RFC 3339>","app_id":...,"topic":...,"id":...,"payload":<event>}
 *
 * A replayed record (hb_sink_replay) has "replay":true before "payload".
 *
 * The payload is the raw body with CR and LF bytes made spaces (see
 * include/hb/jsonl.h for why that changes nothing).
 *
 * Lines collect in a buffer written with one write(2) once it holds
 * WRITE_BYTES (small enough to stay in the CPU's cache) or right before
 * each fdatasync; fdatasync runs on a cadence (every SYNC_MS, or sooner
 * once SYNC_BYTES are waiting). A write per batch of records read cost a
 * system call per few records, and no line is acknowledged before its
 * sync anyway. A message is acknowledged only once a sync covers it: the
 * acknowledgement lets the journal delete its record, so it must never
 * run ahead of what is on disk. A failed write or sync cuts the file back
 * to the last good sync and publishes what followed again. On open, a
 * partial last line (a crash mid-write) is cut off: its record was never
 * acknowledged and will be written again.
 *
 * Writeback starts early, every WRITEBACK_BYTES, without waiting
 * (sync_file_range, SYNC_FILE_RANGE_WRITE), so that the device gets the
 * output in steps rather than as one burst of up to SYNC_BYTES at each
 * fdatasync: the journal's own small write and flush queue behind that
 * burst on the same disk, and it showed in the bridge's answer latency
 * (1 % of the journal's fdatasyncs over 1 ms with this sink, 0.3 % with
 * Kafka). Steps of 256 KiB did as well for latency, but each step is one
 * more disk request (a virtio kick, tens of microseconds on a VM) and
 * they cost throughput at 256 connections. Only fdatasync makes anything
 * durable: the early writeback is a hint, and its errors are fdatasync's
 * to report.
 *
 * Output that a sync has covered is dropped from the page cache
 * (POSIX_FADV_DONTNEED): the bridge never reads it again, and a reader
 * following the file reads lines within the sync cadence, while they are
 * still cached. Kept, the page cache grows by the whole output, and in a
 * container that counts as the bridge's memory: in a microbenchmark on the
 * project's VM (1,700-byte lines, 64 KB writes, a sync every 4 MB, 2 GB) a
 * 128 MB memory cgroup sat at its limit, reclaiming, against 6 MB with the
 * pages dropped. The writes also get cheaper, as they reuse the pages just
 * freed instead of ones not touched lately (which on a VM that hands free
 * memory back to the host fault in the hypervisor): write(2) 0.7-0.9 us
 * per line against 1.2-2.2, the advice 0.15 us more. In the bench at 32
 * connections the sink thread's CPU per request did not move measurably.
 *
 * @locality: sink thread (blocking I/O is fine there). */
#include "hb/fmacros.h"

#include "hb/sink.h"
#include "hb/jsonl.h"
#include "hb/log.h"
#include "hb/util.h"

#include <event2/event.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SYNC_MS 50
#define SYNC_BYTES (4u << 20)
#define WRITE_BYTES (64u << 10)
#define WRITEBACK_BYTES (1u << 20)
#define DROP_ALIGN 4096

typedef struct file_sink {
    hb_sink_t *sink;
    char *path;
    int fd;
    off_t size, synced; /* bytes written, and covered by a sync */
    off_t flushing;     /* early writeback started up to here (or synced) */
    off_t dropped;      /* the page cache was told to drop what is before this */
    char *buf;
    size_t len, cap;
    hb_msg_t *batch, **batch_tail;       /* formatted in buf, not written yet */
    hb_msg_t *unsynced, **unsynced_tail; /* written, waiting for a sync */
    struct event *sync_ev;
} file_sink_t;

/* Cut a partial last line left by a crash in the middle of a write. */
static int cut_partial_line(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -1;
    off_t end = st.st_size;
    char chunk[4096];
    while (end > 0) {
        off_t from = end > (off_t)sizeof(chunk) ? end - (off_t)sizeof(chunk) : 0;
        ssize_t n = hb_pread_full(fd, chunk, (size_t)(end - from), from);
        if (n < 0)
            return -1;
        for (ssize_t i = n - 1; i >= 0; i--) {
            if (chunk[i] == '\n') {
                off_t keep = from + i + 1;
                if (keep == st.st_size)
                    return 0;
                hb_warn("sink.file", "cutting a partial last line (%lld bytes) left by a crash",
                        (long long)(st.st_size - keep));
                return ftruncate(fd, keep) < 0 || fsync(fd) < 0 ? -1 : 0;
            }
        }
        end = from;
    }
    if (st.st_size > 0) {
        hb_warn("sink.file", "cutting a partial first line left by a crash");
        return ftruncate(fd, 0);
    }
    return 0;
}

static int try_open(file_sink_t *f)
{
    char dir[PATH_MAX], why[PATH_MAX + 64];
    snprintf(dir, sizeof(dir), "%s", f->path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (hb_mkdir_p(dir, 0755) < 0)
            goto fail;
    }
    /* customer data: readable by the bridge's user only, like the journal */
    f->fd = open(f->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (f->fd < 0)
        goto fail;
    struct stat st;
    if (cut_partial_line(f->fd) < 0 || fstat(f->fd, &st) < 0) {
        close(f->fd);
        f->fd = -1;
        goto fail;
    }
    f->size = f->synced = f->flushing = st.st_size;
    f->dropped = st.st_size & ~(off_t)(DROP_ALIGN - 1);
    hb_sink_set_status(f->sink, 1, NULL);
    return 0;
fail:
    snprintf(why, sizeof(why), "cannot open %s: %s", f->path, strerror(errno));
    hb_sink_set_status(f->sink, 0, why);
    return -1;
}

static void on_sync_timer(evutil_socket_t fd, short what, void *arg);

static void *file_open(hb_sink_t *sink, const hb_config_t *cfg, struct event_base *base, char *err,
                       size_t errlen)
{
    (void)err;
    (void)errlen;
    file_sink_t *f = hb_calloc(1, sizeof(*f));
    f->sink = sink;
    f->path = hb_strdup(cfg->file_path);
    f->fd = -1;
    f->batch_tail = &f->batch;
    f->unsynced_tail = &f->unsynced;
    f->sync_ev = evtimer_new(base, on_sync_timer, f);
    if (!f->sync_ev)
        hb_oom("evtimer_new");
    try_open(f); /* a failure is retried on every flush */
    return f;
}

static void file_publish(void *state, hb_msg_t *m)
{
    file_sink_t *f = state;
    hb_jsonl_event(m, NULL, NULL, &f->buf, &f->len, &f->cap);
    m->impl_next = NULL;
    *f->batch_tail = m;
    f->batch_tail = &m->impl_next;
}

/* Hand a list back to the runner; the list is empty afterwards. */
static void finish_list(hb_msg_t **list, hb_msg_t ***tail, hb_sink_result_t res, const char *why)
{
    hb_msg_t *m = *list;
    *list = NULL;
    *tail = list;
    hb_sink_done_list(m, res, why);
}

/* The file cannot be trusted past its last good sync: cut it there, close
 * it (reopened on the next flush) and publish everything after again. */
static void file_failed(file_sink_t *f, const char *what)
{
    char why[PATH_MAX + 64];
    snprintf(why, sizeof(why), "%s %s failed: %s", what, f->path, strerror(errno));
    if (f->fd >= 0) {
        if (ftruncate(f->fd, f->synced) < 0)
            hb_error("sink.file", "cannot cut %s back to its last sync: %s", f->path,
                     strerror(errno));
        close(f->fd);
        f->fd = -1;
    }
    hb_sink_set_status(f->sink, 0, why);
    f->len = 0;
    finish_list(&f->unsynced, &f->unsynced_tail, HB_SINK_RETRY, why);
    finish_list(&f->batch, &f->batch_tail, HB_SINK_RETRY, why);
}

/* Write the formatted lines: their messages wait for the next sync. 0, or
 * -1 with the messages reported. */
static int write_batch(file_sink_t *f)
{
    if (!f->batch)
        return 0;
    if (f->fd < 0 && try_open(f) < 0) {
        f->len = 0;
        finish_list(&f->batch, &f->batch_tail, HB_SINK_RETRY, "file sink cannot open its file");
        return -1;
    }
    if (hb_write_full(f->fd, f->buf, f->len) < 0) {
        file_failed(f, "write to");
        return -1;
    }
    f->size += (off_t)f->len;
    f->len = 0;
    if (f->size - f->flushing >= (off_t)WRITEBACK_BYTES) {
        (void)sync_file_range(f->fd, f->flushing, f->size - f->flushing, SYNC_FILE_RANGE_WRITE);
        f->flushing = f->size;
    }
    *f->unsynced_tail = f->batch;
    f->unsynced_tail = f->batch_tail;
    f->batch = NULL;
    f->batch_tail = &f->batch;
    return 0;
}

/* Synced output leaves the page cache (see the top of this file): only
 * whole pages, so that the one still being filled stays. Advice only:
 * nothing depends on it having worked. */
static void drop_behind(file_sink_t *f)
{
    off_t to = f->synced & ~(off_t)(DROP_ALIGN - 1);
    if (to <= f->dropped)
        return;
    (void)posix_fadvise(f->fd, f->dropped, to - f->dropped, POSIX_FADV_DONTNEED);
    f->dropped = to;
}

static void sync_now(file_sink_t *f)
{
    evtimer_del(f->sync_ev);
    if (write_batch(f) < 0 || !f->unsynced)
        return;
    if (fdatasync(f->fd) < 0) {
        file_failed(f, "sync of");
        return;
    }
    f->synced = f->flushing = f->size;
    drop_behind(f);
    finish_list(&f->unsynced, &f->unsynced_tail, HB_SINK_OK, NULL);
}

static void on_sync_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sync_now(arg);
}

static void file_flush(void *state)
{
    file_sink_t *f = state;
    if (!f->batch)
        return;
    if (f->len >= WRITE_BYTES && write_batch(f) < 0)
        return;
    if ((size_t)(f->size - f->synced) + f->len >= SYNC_BYTES) {
        sync_now(f);
    } else if (!evtimer_pending(f->sync_ev, NULL)) {
        struct timeval tv = {0, SYNC_MS * 1000};
        evtimer_add(f->sync_ev, &tv);
    }
}

static void file_close(void *state)
{
    file_sink_t *f = state;
    if (!f)
        return;
    /* what is formatted is written and synced if the file works; what is
     * not was never acknowledged: it stays in the journal */
    if (f->fd >= 0)
        sync_now(f);
    finish_list(&f->batch, &f->batch_tail, HB_SINK_RETRY, "shutting down");
    if (f->fd >= 0)
        close(f->fd);
    event_free(f->sync_ev);
    free(f->buf);
    free(f->path);
    free(f);
}

const hb_sink_ops_t hb_sink_file_ops = {
    .name = "file",
    .open = file_open,
    .publish = file_publish,
    .flush = file_flush,
    .close = file_close,
};
