/* The sink runner: one thread per sink. See include/hb/sink.h.
 *
 * The runner pulls durable records from its journal reader into a bounded
 * window of in-flight messages (so memory stays bounded however long the
 * destination is down: the backlog stays on disk), hands them to the sink,
 * and moves the journal cursor over the acknowledged prefix. A message the
 * sink reports as transiently failed is kept and published again after an
 * exponential backoff; nothing is dropped.
 *
 * Order under faults: after a failure nothing new is handed to the sink,
 * and the failed messages are published again (in sequence order, before
 * any later record) only once the sink has reported every message it
 * holds; so a record never reaches the destination after a later one of
 * the same key because an attempt of it failed. The sink's part is to let
 * nothing it still holds overtake a failure (sink_kafka.c). */
#include "hb/fmacros.h"

#include "hb/sink.h"
#include "hb/template.h"
#include "hb/jsonl.h"
#include "hb/log.h"
#include "hb/metrics.h"
#include "hb/util.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <unistd.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <event2/event.h>
#include <event2/thread.h>

#define C "sink"
#define MAX_INFLIGHT 4096
#define MAX_INFLIGHT_BYTES (32u << 20)
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
/* a replay is a background task: a small window, and a bounded number of
 * records read per loop pass so live records are never held up for long */
#define REPLAY_WINDOW 256
#define REPLAY_SCAN_PER_PASS 4096
/* finished messages' blocks kept for the next records read (a calloc and a
 * free per record were a sixth of the file sink thread's time), up to this
 * many bytes; a block above BLOCK_KEEP_MAX goes back to malloc */
#define SPARE_BYTES_MAX (8u << 20)
#define BLOCK_KEEP_MAX (64u << 10)
#define BLOCK_ROUND 1024

/* A message as the runner allocates it: the block's size, then the message
 * laid out as hb_msg_from_record does. */
typedef struct msg_block {
    struct msg_block *next_spare;
    size_t size;
    hb_msg_t msg;
} msg_block_t;

struct hb_sink {
    const hb_sink_ops_t *ops;
    void *state;
    size_t idx;
    hb_journal_t *j;
    hb_journal_reader_t *reader;
    const hb_config_t *cfg;

    pthread_t thread;
    struct event_base *base;
    struct event *wake_ev, *retry_ev, *stop_ev, *reread_ev;

    hb_msg_t *head, *tail; /* in flight, in sequence order */
    hb_msg_t *retry;       /* to publish again, any order */
    msg_block_t *spare;    /* blocks of finished messages, to reuse */
    size_t spare_bytes;    /* their sizes, summed */
    size_t at_sink;        /* handed to the sink, not reported yet */
    int retry_due;         /* backoff over, waiting for at_sink == 0 */
    size_t inflight, inflight_bytes;
    int backoff_ms;
    int read_backoff_ms; /* 0 while journal reads work */
    uint64_t retry_log_ms;
    uint64_t retry_quiet;

    atomic_int stopping;
    int joined; /* hb_sink_stop has run: a second call does nothing */
    uint64_t deadline_ms;
    char open_err[256];
    int open_rc;
    pthread_mutex_t start_lock;
    pthread_cond_t start_cond;
    int started;

    pthread_mutex_t status_lock;
    int status_ok; /* the destination, as the implementation reports it */
    char status_why[256];
    int read_ok; /* the journal, as the runner finds it */

    hb_sink_counters_t counters; /* read by the metrics renderer */

    /* replay: the request and status under replay_lock (any thread); the
     * reader and the window on the sink thread */
    pthread_mutex_t replay_lock;
    hb_replay_filter_t replay_req;
    int replay_pending;
    hb_replay_status_t replay_st;
    hb_journal_reader_t *replay_reader; /* NULL once the range is read */
    size_t replay_inflight;
    struct event *replay_ev;
};

static void pump(hb_sink_t *s);
static void publish(hb_sink_t *s, hb_msg_t *m);
static void replay_done(hb_sink_t *s, hb_msg_t *m, hb_sink_result_t res, const char *reason);

static msg_block_t *block_of(hb_msg_t *m)
{
    return (msg_block_t *)((char *)m - offsetof(msg_block_t, msg));
}

static void free_msg(hb_msg_t *m)
{
    free(m->error);
    free(block_of(m));
}

/* A finished message: its block is kept for the next one while the spare
 * blocks stay small. */
static void release_msg(hb_sink_t *s, hb_msg_t *m)
{
    msg_block_t *b = block_of(m);
    if (b->size > BLOCK_KEEP_MAX || s->spare_bytes + b->size > SPARE_BYTES_MAX) {
        free_msg(m);
        return;
    }
    free(m->error);
    b->next_spare = s->spare;
    s->spare = b;
    s->spare_bytes += b->size;
}

/* The last resort for a poison message: a JSON line with the reason in
 * <data.dir>/dead-letter.<sink>.jsonl, made durable before the message is
 * acknowledged. 0, or -1 (the message is then retried, never dropped). */
static int dead_letter_file(hb_sink_t *s, hb_msg_t *m, const char *reason)
{
    char path[PATH_MAX];
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = -1;
    snprintf(path, sizeof(path), "%s/dead-letter.%s.jsonl", s->cfg->data_dir, s->ops->name);
    hb_mkdir_p(s->cfg->data_dir, 0700);
    /* customer data: 0600 like the journal, also when an older version
     * created the file with a wider mode */
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0 && fchmod(fd, 0600) < 0) {
        close(fd);
        fd = -1;
    }
    if (fd >= 0) {
        hb_jsonl_event(m, s->ops->name, reason, &buf, &len, &cap);
        rc = hb_write_full(fd, buf, len) == 0 && fdatasync(fd) == 0 ? 0 : -1;
        close(fd);
    }
    if (rc < 0)
        hb_error(C, "%s: cannot write dead-letter file %s: %s", s->ops->name, path,
                 strerror(errno));
    else
        hb_error(C, "%s: record %" PRIu64 " (topic %s, id %s) written to %s: %s", s->ops->name,
                 m->seq, m->topic, m->id ? m->id : "-", path, reason);
    free(buf);
    return rc;
}

void hb_sink_route_templates(const hb_config_t *cfg, hb_msg_t *m)
{
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const hb_route_cfg_t *rc = &cfg->routes[i];
        if (strcmp(rc->name, m->route) == 0) {
            m->kafka_topic_tmpl = rc->kafka_topic;
            m->kafka_key_tmpl = rc->kafka_key;
            m->redis_stream_tmpl = rc->redis_stream;
            return;
        }
    }
    if (hb_msg_is_intercom(m)) {
        m->kafka_topic_tmpl = cfg->kafka_topic;
        m->kafka_key_tmpl = cfg->kafka_key;
        m->redis_stream_tmpl = cfg->redis_stream;
    } else {
        m->kafka_topic_tmpl = HB_ROUTE_KAFKA_TOPIC;
        m->kafka_key_tmpl = HB_ROUTE_KAFKA_KEY;
        m->redis_stream_tmpl = HB_ROUTE_REDIS_STREAM;
    }
}

void hb_msg_tmpl_fields(const hb_msg_t *m, hb_tmpl_fields_t *f)
{
    f->route = m->route;
    f->source = m->app_id;
    f->topic = m->topic;
    f->id = m->id;
}

static char *copy_str(char **p, const char *s, size_t len)
{
    char *d = *p;
    memcpy(d, s, len);
    d[len] = '\0';
    *p += len + 1;
    return d;
}

static size_t msg_size(const hb_record_t *r)
{
    return sizeof(hb_msg_t) + r->n_headers * sizeof(hb_msg_hdr_t) + r->topic_len + 1 +
           (r->app_id ? r->app_id_len + 1 : 0) + (r->id ? r->id_len + 1 : 0) + r->route_len + 1 +
           r->hdr_block_len + r->body_len + 1;
}

/* The message for r in m's block of at least msg_size(r) bytes. Only the
 * struct is zeroed: the rest is written in full (headers up to n_headers). */
static void msg_fill(hb_msg_t *m, const hb_record_t *r)
{
    memset(m, 0, sizeof(*m));
    hb_msg_hdr_t *hdrs = (hb_msg_hdr_t *)(m + 1);
    char *p = (char *)(hdrs + r->n_headers);
    m->seq = r->seq;
    m->received_at_ms = r->received_at_ms;
    m->delivery_attempts = r->delivery_attempts;
    m->topic = copy_str(&p, r->topic, r->topic_len);
    if (r->app_id)
        m->app_id = copy_str(&p, r->app_id, r->app_id_len);
    if (r->id)
        m->id = copy_str(&p, r->id, r->id_len);
    m->route = copy_str(&p, r->route, r->route_len);
    /* each header's name and value take their lengths plus two NULs: the
     * block's 4 length bytes per header pay for those */
    size_t pos = 0;
    hb_record_hdr_t h;
    while (m->n_headers < r->n_headers && hb_record_hdr_next(r, &pos, &h) == 0) {
        hdrs[m->n_headers].name = copy_str(&p, h.name, h.name_len);
        hdrs[m->n_headers].value = copy_str(&p, h.value, h.value_len);
        m->n_headers++;
    }
    m->headers = hdrs;
    memcpy(p, r->body, r->body_len);
    p[r->body_len] = '\0';
    m->body = (unsigned char *)p;
    m->body_len = r->body_len;
}

hb_msg_t *hb_msg_from_record(const hb_record_t *r)
{
    hb_msg_t *m = hb_malloc(msg_size(r));
    msg_fill(m, r);
    return m;
}

static hb_msg_t *msg_from_record(hb_sink_t *s, const hb_record_t *r)
{
    size_t need = offsetof(msg_block_t, msg) + msg_size(r);
    msg_block_t *b = s->spare;
    if (b && b->size >= need) {
        s->spare = b->next_spare;
        s->spare_bytes -= b->size;
    } else {
        /* the newest spare is too small: a larger record, so likely the
         * next ones too; it goes, and the new block has some room */
        if (b) {
            s->spare = b->next_spare;
            s->spare_bytes -= b->size;
            free(b);
        }
        size_t size = (need + BLOCK_ROUND - 1) / BLOCK_ROUND * BLOCK_ROUND;
        b = hb_malloc(size);
        b->size = size;
    }
    hb_msg_t *m = &b->msg;
    msg_fill(m, r);
    m->sink = s;
    hb_sink_route_templates(s->cfg, m);
    return m;
}

/* Keep m for the next round of on_retry. */
static void retry_later(hb_sink_t *s, hb_msg_t *m, const char *reason)
{
    atomic_fetch_add(&s->counters.retries, 1);
    /* one line per few seconds, not one per record: an outage fails
     * the whole in-flight window at once */
    uint64_t now = hb_mono_ms();
    if (now - s->retry_log_ms >= 5000) {
        hb_warn(C, "%s: record %" PRIu64 " not published (attempt %d): %s; will retry%s",
                s->ops->name, m->seq, m->attempts, reason ? reason : "unknown error",
                s->retry_quiet ? " (similar failures since the last line not shown)" : "");
        s->retry_log_ms = now;
        s->retry_quiet = 0;
    } else {
        s->retry_quiet++;
    }
    m->retry_next = s->retry;
    s->retry = m;
    if (!evtimer_pending(s->retry_ev, NULL)) {
        s->backoff_ms = hb_backoff_next(s->backoff_ms, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
        struct timeval tv = hb_ms_timeval((uint64_t)s->backoff_ms);
        evtimer_add(s->retry_ev, &tv);
    }
}

/* The report of one message, but for what the acknowledged prefix does
 * (settle); now_ms for its latency. 1 when m is acknowledged. */
static int done_one(hb_msg_t *m, hb_sink_result_t res, const char *reason, uint64_t now_ms)
{
    hb_sink_t *s = m->sink;
    if (--s->at_sink == 0 && s->retry_due)
        event_active(s->retry_ev, EV_TIMEOUT, 0); /* not from inside the sink's call */
    if (res == HB_SINK_RETRY) {
        retry_later(s, m, reason); /* a replayed one too: it keeps its place */
        return 0;
    }
    if (m->replay) {
        replay_done(s, m, res, reason);
        return 0;
    }
    if (res == HB_SINK_REJECT) {
        const char *why = reason ? reason : "rejected";
        if (!m->error) { /* first rejection (a dead-letter retry comes back here) */
            atomic_fetch_add(&s->counters.rejected, 1);
            m->error = hb_strdup(why);
        }
        if (!m->dead_letter && s->ops->has_dead_letter) {
            /* a poison message must not block the ones behind it */
            hb_error(C,
                     "%s: record %" PRIu64 " (topic %s, id %s) rejected for good: %s; "
                     "sending it to the dead-letter destination",
                     s->ops->name, m->seq, m->topic, m->id ? m->id : "-", why);
            m->dead_letter = 1;
            publish(s, m);
            return 0;
        }
        if (dead_letter_file(s, m, m->error) < 0) {
            m->attempts++;
            retry_later(s, m, "dead-letter file not writable");
            return 0;
        }
        atomic_fetch_add(&s->counters.dead_lettered, 1);
    } else if (m->dead_letter) {
        atomic_fetch_add(&s->counters.dead_lettered, 1);
    }
    m->acked = 1;
    s->backoff_ms = 0;
    atomic_fetch_add(&s->counters.published, 1);
    hb_histogram_observe(&s->counters.latency, (double)(now_ms - m->sent_ms) / 1000.0);
    return 1;
}

/* Move the journal cursor over the acknowledged prefix and free it: once
 * per report of a batch, since each acknowledgement to the journal and
 * each wake-up of this loop takes a lock. */
static void settle(hb_sink_t *s)
{
    uint64_t acked = 0;
    while (s->head && s->head->acked) {
        hb_msg_t *h = s->head;
        s->head = h->next;
        if (!s->head)
            s->tail = NULL;
        acked = h->seq;
        s->inflight--;
        s->inflight_bytes -= h->body_len;
        release_msg(s, h);
    }
    atomic_store(&s->counters.inflight, s->inflight);
    if (acked) {
        hb_journal_ack(s->j, s->idx, acked);
        /* room in the window: read more on the next loop pass */
        event_active(s->wake_ev, EV_READ, 0);
    }
}

void hb_sink_done(hb_msg_t *m, hb_sink_result_t res, const char *reason)
{
    hb_sink_t *s = m->sink;
    if (done_one(m, res, reason, hb_mono_ms()))
        settle(s);
}

void hb_sink_done_list(hb_msg_t *m, hb_sink_result_t res, const char *reason)
{
    if (!m)
        return;
    hb_sink_t *s = m->sink;
    uint64_t now = hb_mono_ms();
    int acked = 0;
    while (m) {
        hb_msg_t *next = m->impl_next;
        m->impl_next = NULL;
        acked |= done_one(m, res, reason, now);
        m = next;
    }
    if (acked)
        settle(s);
}

static void publish(hb_sink_t *s, hb_msg_t *m)
{
    m->attempts++;
    m->sent_ms = hb_mono_ms();
    s->at_sink++;
    s->ops->publish(s->state, m);
}

/* A failed journal read (an I/O error, no file descriptor left) is
 * usually transient: say so once, stop reading on every journal wake-up
 * (each failed read logs in the journal) and try again with backoff; say
 * once that it works again. The sink is not ready meanwhile. */
static void set_read_state(hb_sink_t *s, int ok)
{
    pthread_mutex_lock(&s->status_lock);
    int changed = s->read_ok != ok;
    s->read_ok = ok;
    atomic_store(&s->counters.ready, s->status_ok && ok);
    pthread_mutex_unlock(&s->status_lock);
    if (!changed)
        return;
    if (ok)
        hb_info(C, "%s: reading the journal works again", s->ops->name);
    else
        hb_error(C,
                 "%s: cannot read the journal (see the journal's error); nothing is lost, "
                 "reads are retried with backoff and the sink is not ready meanwhile",
                 s->ops->name);
}

static void pump(hb_sink_t *s)
{
    int n = 0;
    if (s->read_backoff_ms && evtimer_pending(s->reread_ev, NULL))
        return; /* the timer reads again */
    while (s->inflight < MAX_INFLIGHT && s->inflight_bytes < MAX_INFLIGHT_BYTES && !s->retry) {
        hb_record_t r;
        int rc = hb_journal_reader_next(s->reader, &r);
        if (rc < 0) {
            set_read_state(s, 0);
            s->read_backoff_ms =
                hb_backoff_next(s->read_backoff_ms, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
            struct timeval tv = hb_ms_timeval((uint64_t)s->read_backoff_ms);
            evtimer_add(s->reread_ev, &tv);
            break;
        }
        if (s->read_backoff_ms) {
            s->read_backoff_ms = 0;
            set_read_state(s, 1);
        }
        if (rc == 0)
            break;
        hb_msg_t *m = msg_from_record(s, &r);
        if (s->tail)
            s->tail->next = m;
        else
            s->head = m;
        s->tail = m;
        s->inflight++;
        s->inflight_bytes += m->body_len;
        publish(s, m);
        n++;
    }
    atomic_store(&s->counters.inflight, s->inflight);
    if (n && s->ops->flush)
        s->ops->flush(s->state);
}

/* ---- replay ---- */

int hb_replay_match(const hb_replay_filter_t *f, const hb_record_t *r)
{
    if (r->seq < f->from_seq || r->seq > f->to_seq || r->received_at_ms < f->since_ms ||
        r->received_at_ms >= f->until_ms)
        return 0;
    if (f->source[0] && (!r->app_id || r->app_id_len != strlen(f->source) ||
                         memcmp(r->app_id, f->source, r->app_id_len) != 0))
        return 0;
    if (f->route[0] &&
        (r->route_len != strlen(f->route) || memcmp(r->route, f->route, r->route_len) != 0))
        return 0;
    if (f->topic_glob[0]) {
        char topic[1024];
        if (r->topic_len >= sizeof(topic))
            return 0;
        memcpy(topic, r->topic, r->topic_len);
        topic[r->topic_len] = '\0';
        if (fnmatch(f->topic_glob, topic, 0) != 0)
            return 0;
    }
    return 1;
}

int hb_sink_replay(hb_sink_t *s, const hb_replay_filter_t *f, char *err, size_t errlen)
{
    /* records after the cursor are not published yet: the live path sends
     * them, and a replay must not run ahead of it */
    uint64_t cursor = hb_journal_cursor(s->j, s->idx);
    uint64_t from = f->from_seq ? f->from_seq : 1, to = f->to_seq < cursor ? f->to_seq : cursor;
    int rc = -1;
    pthread_mutex_lock(&s->replay_lock);
    if (s->replay_st.running) {
        snprintf(err, errlen, "a replay to %s is running (records %" PRIu64 "..%" PRIu64 ")",
                 s->ops->name, s->replay_st.first_seq, s->replay_st.last_seq);
    } else if (from > to) {
        snprintf(err, errlen,
                 "nothing to replay to %s: records %" PRIu64 "..%" PRIu64
                 " asked, the sink has published up to %" PRIu64,
                 s->ops->name, f->from_seq, f->to_seq, cursor);
    } else {
        s->replay_req = *f;
        s->replay_req.from_seq = from;
        s->replay_req.to_seq = to;
        s->replay_pending = 1;
        memset(&s->replay_st, 0, sizeof(s->replay_st));
        s->replay_st.running = 1;
        s->replay_st.dry_run = f->dry_run;
        s->replay_st.first_seq = from;
        s->replay_st.last_seq = to;
        s->replay_st.started_ms = hb_now_ms();
        rc = 0;
    }
    pthread_mutex_unlock(&s->replay_lock);
    if (rc == 0)
        event_active(s->replay_ev, EV_READ, 0);
    return rc;
}

void hb_sink_replay_status(hb_sink_t *s, hb_replay_status_t *out)
{
    pthread_mutex_lock(&s->replay_lock);
    *out = s->replay_st;
    pthread_mutex_unlock(&s->replay_lock);
}

/* Under replay_lock: the replay is over once its range is read and the
 * sink has reported every replayed message. */
static void replay_check_end(hb_sink_t *s)
{
    if (s->replay_st.running && !s->replay_pending && !s->replay_reader &&
        s->replay_inflight == 0) {
        s->replay_st.running = 0;
        s->replay_st.finished_ms = hb_now_ms();
        hb_info(C,
                "%s: replay of records %" PRIu64 "..%" PRIu64 " done: %" PRIu64 " matched, %" PRIu64
                " published, %" PRIu64 " rejected%s",
                s->ops->name, s->replay_st.first_seq, s->replay_st.last_seq, s->replay_st.matched,
                s->replay_st.published, s->replay_st.rejected,
                s->replay_st.dry_run ? " (dry run)" : "");
    }
}

static void replay_done(hb_sink_t *s, hb_msg_t *m, hb_sink_result_t res, const char *reason)
{
    pthread_mutex_lock(&s->replay_lock);
    if (res == HB_SINK_OK) {
        s->replay_st.published++;
    } else {
        /* already published or dead-lettered live: reported, not sent
         * to a dead-letter destination a second time */
        s->replay_st.rejected++;
        snprintf(s->replay_st.error, sizeof(s->replay_st.error), "record %" PRIu64 ": %s", m->seq,
                 reason ? reason : "rejected");
    }
    s->replay_inflight--;
    replay_check_end(s);
    pthread_mutex_unlock(&s->replay_lock);
    release_msg(s, m);
    event_active(s->replay_ev, EV_READ, 0);
}

static void replay_pump(hb_sink_t *s)
{
    hb_replay_filter_t f;
    pthread_mutex_lock(&s->replay_lock);
    int start = s->replay_pending;
    s->replay_pending = 0;
    f = s->replay_req;
    pthread_mutex_unlock(&s->replay_lock);
    if (start)
        s->replay_reader = hb_journal_reader_new(s->j, f.from_seq - 1);
    /* the live hold rules apply: nothing new while a failure waits */
    if (!s->replay_reader || s->retry || s->read_backoff_ms || atomic_load(&s->stopping))
        return;
    int scanned = 0, n = 0, ended = 0;
    uint64_t matched = 0, first = 0, last = 0;
    const char *error = NULL;
    while (s->replay_inflight < REPLAY_WINDOW && scanned < REPLAY_SCAN_PER_PASS) {
        hb_record_t r;
        int rc = hb_journal_reader_next(s->replay_reader, &r);
        if (rc <= 0 || r.seq > f.to_seq) {
            /* 0: the durable end (not below the cursor, but a replay never
             * waits for new records) */
            error = rc < 0 ? "cannot read the journal (see log)" : NULL;
            ended = 1;
            break;
        }
        scanned++;
        first = first ? first : r.seq;
        last = r.seq;
        if (!hb_replay_match(&f, &r))
            continue;
        matched++;
        if (f.dry_run)
            continue;
        hb_msg_t *m = msg_from_record(s, &r);
        m->replay = 1;
        s->replay_inflight++;
        publish(s, m);
        n++;
    }
    if (ended) {
        hb_journal_reader_free(s->replay_reader);
        s->replay_reader = NULL;
    }
    /* one update, so that a reader of the status never sees the end
     * without the counts of the last pass */
    pthread_mutex_lock(&s->replay_lock);
    s->replay_st.matched += matched;
    if (last)
        s->replay_st.scanned_seq = last;
    if (first && !s->replay_st.first_read_seq)
        s->replay_st.first_read_seq = first;
    if (error)
        snprintf(s->replay_st.error, sizeof(s->replay_st.error), "%s", error);
    replay_check_end(s);
    pthread_mutex_unlock(&s->replay_lock);
    if (n && s->ops->flush)
        s->ops->flush(s->state);
    if (s->replay_reader && s->replay_inflight < REPLAY_WINDOW)
        event_active(s->replay_ev, EV_READ, 0); /* the next slice, after live work */
}

static void on_replay(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    replay_pump(arg);
}

static int caught_up(hb_sink_t *s)
{
    return s->inflight == 0 && hb_journal_cursor(s->j, s->idx) >= hb_journal_durable_seq(s->j);
}

static void check_stop(hb_sink_t *s)
{
    if (!atomic_load(&s->stopping))
        return;
    if (caught_up(s) || hb_mono_ms() >= s->deadline_ms)
        event_base_loopbreak(s->base);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hb_sink_t *s = arg;
    pump(s);
    if (s->replay_reader)
        replay_pump(s); /* it waits, like pump, while journal reads fail */
    check_stop(s);
}

/* Publish again, in sequence order, everything that failed transiently,
 * once the sink has reported everything it was given. */
static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hb_sink_t *s = arg;
    if (s->at_sink > 0) {
        s->retry_due = 1; /* the last report brings us back */
        return;
    }
    s->retry_due = 0;
    hb_msg_t *list = s->retry;
    s->retry = NULL;
    /* reverse-free insertion sort by seq; the list is at most the window */
    hb_msg_t *sorted = NULL;
    while (list) {
        hb_msg_t *m = list, **pp = &sorted;
        list = list->retry_next;
        while (*pp && (*pp)->seq < m->seq)
            pp = &(*pp)->retry_next;
        m->retry_next = *pp;
        *pp = m;
    }
    int n = 0;
    while (sorted) {
        hb_msg_t *m = sorted;
        sorted = sorted->retry_next;
        m->retry_next = NULL;
        publish(s, m);
        n++;
        if (s->retry) {
            /* refused at once: the ones behind it wait for the next round */
            hb_msg_t **pp = &s->retry;
            while (*pp)
                pp = &(*pp)->retry_next;
            *pp = sorted;
            break;
        }
    }
    if (n && s->ops->flush)
        s->ops->flush(s->state);
    pump(s);
    if (!s->retry)
        replay_pump(s);
    check_stop(s);
}

static void on_stop_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    check_stop(arg);
}

static void journal_progress(void *arg)
{
    hb_sink_t *s = arg;
    event_active(s->wake_ev, EV_READ, 0);
}

static void *sink_main(void *arg)
{
    hb_sink_t *s = arg;
    char name[16];
    snprintf(name, sizeof(name), "hb-sink-%s", s->ops->name);
    hb_thread_name(name);
    s->state = s->ops->open(s, s->cfg, s->base, s->open_err, sizeof(s->open_err));
    pthread_mutex_lock(&s->start_lock);
    s->open_rc = s->state ? 0 : -1;
    s->started = 1;
    pthread_cond_signal(&s->start_cond);
    pthread_mutex_unlock(&s->start_lock);
    if (!s->state)
        return NULL;
    event_active(s->wake_ev, EV_READ, 0);
    event_base_loop(s->base, EVLOOP_NO_EXIT_ON_EMPTY);
    s->ops->close(s->state); /* reports what is in flight with RETRY */
    return NULL;
}

hb_sink_t *hb_sink_start(const hb_sink_ops_t *ops, size_t idx, const hb_config_t *cfg,
                         hb_journal_t *j, char *err, size_t errlen)
{
    hb_sink_t *s = hb_calloc(1, sizeof(*s));
    s->ops = ops;
    s->idx = idx;
    s->j = j;
    s->cfg = cfg;
    s->status_ok = 1;
    s->read_ok = 1;
    s->counters.name = ops->name;
    s->counters.idx = idx;
    atomic_init(&s->counters.ready, 1);
    pthread_mutex_init(&s->status_lock, NULL);
    pthread_mutex_init(&s->start_lock, NULL);
    pthread_cond_init(&s->start_cond, NULL);
    s->base = event_base_new();
    if (!s->base)
        hb_oom("event_base");
    s->wake_ev = event_new(s->base, -1, 0, on_wake, s);
    s->retry_ev = evtimer_new(s->base, on_retry, s);
    s->stop_ev = event_new(s->base, -1, EV_PERSIST, on_stop_tick, s);
    s->reread_ev = evtimer_new(s->base, on_wake, s);
    s->replay_ev = event_new(s->base, -1, 0, on_replay, s);
    pthread_mutex_init(&s->replay_lock, NULL);
    s->reader = hb_journal_reader_new(j, hb_journal_cursor(j, idx));
    hb_journal_on_progress(j, journal_progress, s);
    if (pthread_create(&s->thread, NULL, sink_main, s) != 0) {
        snprintf(err, errlen, "%s: cannot start thread", ops->name);
        return NULL; /* the journal still references s: leak on purpose, we exit */
    }
    pthread_mutex_lock(&s->start_lock);
    while (!s->started)
        pthread_cond_wait(&s->start_cond, &s->start_lock);
    pthread_mutex_unlock(&s->start_lock);
    if (s->open_rc < 0) {
        snprintf(err, errlen, "%s", s->open_err);
        pthread_join(s->thread, NULL);
        return NULL;
    }
    hb_info(C, "%s sink started at record %" PRIu64, ops->name, hb_journal_cursor(j, idx) + 1);
    return s;
}

void hb_sink_stop(hb_sink_t *s, uint64_t grace_ms)
{
    if (!s || s->joined)
        return;
    s->deadline_ms = hb_mono_ms() + grace_ms;
    atomic_store(&s->stopping, 1);
    /* re-check on a short tick too: the deadline must hold even while the
     * destination is silent */
    struct timeval tv = hb_ms_timeval(50);
    event_add(s->stop_ev, &tv);
    event_active(s->wake_ev, EV_READ, 0);
    pthread_join(s->thread, NULL);
    s->joined = 1;
    uint64_t left = hb_journal_durable_seq(s->j) - hb_journal_cursor(s->j, s->idx);
    if (left)
        hb_warn(C,
                "%s: stopped with %" PRIu64 " record(s) unpublished; they stay in the journal "
                "for the next start",
                s->ops->name, left);
}

void hb_sink_free(hb_sink_t *s)
{
    if (!s)
        return;
    /* everything in flight was handed back by close(); drop our copies */
    /* replayed messages are on no list but the retry list (walked before
     * the live ones it shares are freed) */
    while (s->retry) {
        hb_msg_t *m = s->retry;
        s->retry = m->retry_next;
        if (m->replay)
            free_msg(m);
    }
    while (s->head) {
        hb_msg_t *m = s->head;
        s->head = m->next;
        free_msg(m);
    }
    while (s->spare) {
        msg_block_t *b = s->spare;
        s->spare = b->next_spare;
        free(b);
    }
    hb_journal_reader_free(s->reader);
    hb_journal_reader_free(s->replay_reader);
    event_free(s->replay_ev);
    pthread_mutex_destroy(&s->replay_lock);
    event_free(s->wake_ev);
    event_free(s->retry_ev);
    event_free(s->stop_ev);
    event_free(s->reread_ev);
    event_base_free(s->base);
    pthread_mutex_destroy(&s->status_lock);
    pthread_mutex_destroy(&s->start_lock);
    pthread_cond_destroy(&s->start_cond);
    free(s);
}

const char *hb_sink_name(const hb_sink_t *s)
{
    return s->ops->name;
}

size_t hb_sink_index(const hb_sink_t *s)
{
    return s->idx;
}

void hb_sink_set_status(hb_sink_t *s, int ok, const char *reason)
{
    pthread_mutex_lock(&s->status_lock);
    int changed = s->status_ok != ok || (!ok && strcmp(s->status_why, reason ? reason : "") != 0);
    s->status_ok = ok;
    atomic_store(&s->counters.ready, ok && s->read_ok);
    snprintf(s->status_why, sizeof(s->status_why), "%s", ok ? "" : (reason ? reason : "down"));
    pthread_mutex_unlock(&s->status_lock);
    if (!changed)
        return;
    if (ok)
        hb_info(C, "%s sink is ready", s->ops->name);
    else
        hb_warn(C, "%s sink is not ready: %s", s->ops->name, reason ? reason : "down");
}

int hb_sink_ready(hb_sink_t *s, char *why, size_t whylen)
{
    pthread_mutex_lock(&s->status_lock);
    int ok = s->status_ok && s->read_ok;
    if (!s->read_ok)
        snprintf(why, whylen, "cannot read the journal (see log)%s%s", s->status_ok ? "" : "; ",
                 s->status_why);
    else
        snprintf(why, whylen, "%s", s->status_why);
    pthread_mutex_unlock(&s->status_lock);
    return ok;
}

void hb_sink_stats(hb_sink_t *s, hb_sink_stats_t *out)
{
    out->published = atomic_load(&s->counters.published);
    out->retries = atomic_load(&s->counters.retries);
    out->rejected = atomic_load(&s->counters.rejected);
    out->dead_lettered = atomic_load(&s->counters.dead_lettered);
    out->inflight = atomic_load(&s->counters.inflight);
    uint64_t d = hb_journal_durable_seq(s->j), c = hb_journal_cursor(s->j, s->idx);
    out->pending = d > c ? d - c : 0;
}

const hb_sink_counters_t *hb_sink_counters(const hb_sink_t *s)
{
    return &s->counters;
}

void hb_sink_count_reconnect(hb_sink_t *s)
{
    atomic_fetch_add(&s->counters.reconnects, 1);
}
