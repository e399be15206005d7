/* The file sink: one JSON object per line, the embedded default.
 *
 *   {"received_at":"<RFC 3339>","app_id":...,"topic":...,"id":...,"payload":<event>}
 *
 * The payload is the raw body with CR and LF bytes made spaces (see
 * include/hb/jsonl.h for why that changes nothing).
 *
 * A batch of messages is written with one write(2) and made durable with
 * one fdatasync before any of them is acknowledged. On open, a partial last
 * line (a crash mid-write) is cut off: its record was never acknowledged
 * and will be written again.
 *
 * @locality: sink thread (blocking I/O is fine there). */
#include "hb/fmacros.h"

#include "hb/sink.h"
#include "hb/jsonl.h"
#include "hb/log.h"
#include "hb/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct file_sink {
    hb_sink_t *sink;
    char *path;
    int fd;
    char *buf;
    size_t len, cap;
    hb_msg_t *batch, **batch_tail;
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
    f->fd = open(f->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (f->fd < 0)
        goto fail;
    if (cut_partial_line(f->fd) < 0) {
        close(f->fd);
        f->fd = -1;
        goto fail;
    }
    hb_sink_set_status(f->sink, 1, NULL);
    return 0;
fail:
    snprintf(why, sizeof(why), "cannot open %s: %s", f->path, strerror(errno));
    hb_sink_set_status(f->sink, 0, why);
    return -1;
}

static void *file_open(hb_sink_t *sink, const hb_config_t *cfg, struct event_base *base, char *err,
                       size_t errlen)
{
    (void)base;
    (void)err;
    (void)errlen;
    file_sink_t *f = hb_calloc(1, sizeof(*f));
    f->sink = sink;
    f->path = hb_strdup(cfg->file_path);
    f->fd = -1;
    f->batch_tail = &f->batch;
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

static void finish_batch(file_sink_t *f, hb_sink_result_t res, const char *why)
{
    hb_msg_t *m = f->batch;
    f->batch = NULL;
    f->batch_tail = &f->batch;
    f->len = 0;
    hb_sink_done_list(m, res, why);
}

static void file_flush(void *state)
{
    file_sink_t *f = state;
    char why[PATH_MAX + 64];
    if (!f->batch)
        return;
    if (f->fd < 0 && try_open(f) < 0) {
        finish_batch(f, HB_SINK_RETRY, "file sink cannot open its file");
        return;
    }
    struct stat st;
    off_t before = fstat(f->fd, &st) == 0 ? st.st_size : -1;
    if (hb_write_full(f->fd, f->buf, f->len) < 0 || fdatasync(f->fd) < 0) {
        snprintf(why, sizeof(why), "write to %s failed: %s", f->path, strerror(errno));
        if (before >= 0 && ftruncate(f->fd, before) < 0)
            hb_error("sink.file", "cannot cut a failed write: %s", strerror(errno));
        hb_sink_set_status(f->sink, 0, why);
        close(f->fd);
        f->fd = -1;
        finish_batch(f, HB_SINK_RETRY, why);
        return;
    }
    finish_batch(f, HB_SINK_OK, NULL);
}

static void file_close(void *state)
{
    file_sink_t *f = state;
    if (!f)
        return;
    /* unflushed lines were never acknowledged: they stay in the journal */
    finish_batch(f, HB_SINK_RETRY, "shutting down");
    if (f->fd >= 0)
        close(f->fd);
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
