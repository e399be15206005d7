/* Logging. See include/hb/log.h.
 *
 * Why a buffer and a thread: a write(2) to stderr blocks when the consumer
 * (journald, a pipe to a shipper, a terminal on a slow link) does not read,
 * and a refusal flood would then stall the HTTP thread that logs it. So a
 * line is formatted on the calling thread and copied into `fill`, one of
 * two fixed buffers; the log thread swaps the buffers under the mutex and
 * writes the full one outside it. The mutex is held only for a memcpy of
 * one line, never across I/O. When `fill` has no room the line is dropped
 * and counted: memory stays bounded and the caller never waits for the
 * consumer; the log thread then writes "N log lines dropped". Two buffers
 * rather than a ring of slots because the writer takes everything at once
 * with one write(2) per swap, and a line is never split across the wrap.
 *
 * The thread starts with the first line and is joined at exit after a
 * flush; if it cannot be started, lines are written synchronously. What
 * the buffer holds when the process is killed outright is lost (it is
 * written within a wake-up of the log thread); hb_oom, about to abort,
 * writes its line directly. The two buffers cost 512 KiB of static memory.
 *
 * The rate limiter is a small table of per-reason slots claimed with a
 * compare-and-swap; the hot path is a few atomic operations and no lock.
 * Counts per fixed window are approximate under races (a line or two more
 * than `burst` when a window turns over), which is all a limit needs. */
#include "hb/fmacros.h"

#include "hb/log.h"
#include "hb/util.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#define BUF_CAP (256 * 1024)
#define LINE_MAX_LEN 4096
#define LIMIT_SLOTS 64

int hb_log_level = HB_LOG_INFO;
static atomic_int log_json;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* The two buffers and the thread that writes them. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;    /* the log thread waits here for lines */
    pthread_cond_t drained; /* flushers wait here for the writes */
    char bufs[2][BUF_CAP];
    char *fill;
    size_t fill_len;
    uint64_t dropped;
    uint64_t queued;  /* lines accepted into `fill`, ever */
    uint64_t written; /* lines of those written (or failed for good) */
    int started, stopping, sync_mode;
    pthread_t thread;
} q = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .drained = PTHREAD_COND_INITIALIZER,
};
static pthread_once_t q_once = PTHREAD_ONCE_INIT;

typedef struct {
    _Atomic(const char *) reason; /* NULL: free; claimed once, never freed */
    _Atomic(const char *) component;
    _Atomic uint64_t window_start_ms;
    _Atomic uint64_t count;
    _Atomic uint64_t suppressed;
    _Atomic uint64_t last_report_ms; /* of the last summary sweep */
} limit_slot_t;

static limit_slot_t limits[LIMIT_SLOTS];
static atomic_uint limit_burst = 20;
static atomic_uint limit_interval_ms = 10000;

int hb_log_parse_level(const char *name, hb_log_level_t *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (hb_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

void hb_log_set_level(hb_log_level_t level)
{
    hb_log_level = (int)level;
}

void hb_log_set_json(int json)
{
    atomic_store(&log_json, json);
}

void hb_log_set_limit(unsigned burst, unsigned interval_ms)
{
    atomic_store(&limit_burst, burst);
    atomic_store(&limit_interval_ms, interval_ms ? interval_ms : 1);
}

size_t hb_log_escape(char *dst, size_t dstlen, const char *src, size_t srclen)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (dstlen == 0)
        return 0;
    for (size_t i = 0; i < srclen; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            if (o + 1 >= dstlen)
                break;
            dst[o++] = (char)c;
        } else if (c == '\\') {
            if (o + 2 >= dstlen)
                break;
            dst[o++] = '\\';
            dst[o++] = '\\';
        } else {
            if (o + 4 >= dstlen)
                break;
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        }
    }
    dst[o] = '\0';
    return o;
}

static size_t format_time(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
    return n;
}

/* One complete line, newline included, into line[LINE_MAX_LEN]. `msg` is
 * escaped already: printable ASCII without a bare backslash, so JSON needs
 * only its quotes and backslashes escaped and cannot fail. */
static size_t format_line(char *line, hb_log_level_t level, const char *component, const char *msg)
{
    char ts[40];
    format_time(ts, sizeof(ts));
    size_t cap = LINE_MAX_LEN - 2; /* room for "\n" and the NUL */
    int n;
    if (atomic_load(&log_json)) {
        n = snprintf(line, cap, "{\"time\":\"%s\",\"level\":\"%s\",\"component\":\"%s\",\"msg\":\"",
                     ts, level_names[level], component);
        size_t o = n > 0 && (size_t)n < cap ? (size_t)n : 0;
        for (const char *p = msg; *p && o + 4 < cap; p++) {
            if (*p == '"' || *p == '\\')
                line[o++] = '\\';
            line[o++] = *p;
        }
        line[o++] = '"';
        line[o++] = '}';
        n = (int)o;
    } else {
        n = snprintf(line, cap, "%s %-5s [%s] %s", ts, level_names[level], component, msg);
        if (n < 0)
            n = 0;
        else if ((size_t)n >= cap)
            n = (int)cap - 1;
    }
    line[n++] = '\n';
    line[n] = '\0';
    return (size_t)n;
}

static void write_all(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(STDERR_FILENO, buf, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* nowhere left to report a failed log write */
        buf += w;
        len -= (size_t)w;
    }
}

static void emit(hb_log_level_t level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Log thread: the "N more like this" lines for the windows that ended. */
static void sweep(uint64_t now)
{
    for (int i = 0; i < LIMIT_SLOTS; i++) {
        limit_slot_t *s = &limits[i];
        const char *reason = atomic_load(&s->reason);
        if (!reason)
            break;
        uint64_t n = atomic_exchange(&s->suppressed, 0);
        uint64_t last = atomic_exchange(&s->last_report_ms, now);
        uint64_t since = last && now > last ? now - last : atomic_load(&limit_interval_ms);
        if (n == 0)
            continue;
        const char *component = atomic_load(&s->component);
        emit(HB_LOG_WARN, component ? component : "log",
             "%" PRIu64 " more like this (%s) in the last %" PRIu64 "s", n, reason,
             (since + 999) / 1000);
    }
}

static void *log_thread(void *arg)
{
    (void)arg;
    hb_thread_name("hb-log");
    char *out;
    size_t len;
    uint64_t dropped, upto;
    uint64_t next_sweep = hb_mono_ms() + atomic_load(&limit_interval_ms);
    pthread_mutex_lock(&q.lock);
    for (;;) {
        while (q.fill_len == 0 && !q.dropped && !q.stopping) {
            uint64_t now = hb_mono_ms();
            if (now >= next_sweep)
                break;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            uint64_t wait = next_sweep - now;
            ts.tv_sec += (time_t)(wait / 1000);
            ts.tv_nsec += (long)(wait % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&q.wake, &q.lock, &ts);
        }
        uint64_t now = hb_mono_ms();
        if (now >= next_sweep) {
            next_sweep = now + atomic_load(&limit_interval_ms);
            pthread_mutex_unlock(&q.lock);
            sweep(now); /* queues its lines like any caller */
            pthread_mutex_lock(&q.lock);
        }
        out = q.fill;
        len = q.fill_len;
        dropped = q.dropped;
        upto = q.queued;
        q.fill = q.fill == q.bufs[0] ? q.bufs[1] : q.bufs[0];
        q.fill_len = 0;
        q.dropped = 0;
        int stop = q.stopping && len == 0 && dropped == 0;
        pthread_mutex_unlock(&q.lock);
        if (dropped) {
            char line[LINE_MAX_LEN], msg[160];
            snprintf(msg, sizeof(msg),
                     "%" PRIu64 " log lines dropped: the log is written slower than it grows",
                     dropped);
            write_all(line, format_line(line, HB_LOG_WARN, "log", msg));
        }
        write_all(out, len);
        pthread_mutex_lock(&q.lock);
        q.written = upto;
        pthread_cond_broadcast(&q.drained);
        if (stop)
            break;
    }
    pthread_mutex_unlock(&q.lock);
    return NULL;
}

static void log_at_exit(void)
{
    hb_log_flush();
    pthread_mutex_lock(&q.lock);
    int started = q.started;
    q.stopping = 1;
    pthread_cond_signal(&q.wake);
    pthread_mutex_unlock(&q.lock);
    if (started)
        pthread_join(q.thread, NULL);
    pthread_mutex_lock(&q.lock);
    q.started = 0;
    q.sync_mode = 1; /* a line logged by a later atexit handler */
    pthread_mutex_unlock(&q.lock);
}

static void start_thread(void)
{
    q.fill = q.bufs[0];
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    if (pthread_create(&q.thread, &attr, log_thread, NULL) == 0) {
        q.started = 1;
        atexit(log_at_exit);
    } else {
        q.sync_mode = 1;
    }
    pthread_attr_destroy(&attr);
}

static void enqueue(const char *line, size_t len)
{
    pthread_once(&q_once, start_thread);
    pthread_mutex_lock(&q.lock);
    if (q.sync_mode) {
        /* no log thread: under the lock so that lines never interleave */
        write_all(line, len);
    } else if (BUF_CAP - q.fill_len < len) {
        q.dropped++;
    } else {
        int was_empty = q.fill_len == 0;
        memcpy(q.fill + q.fill_len, line, len);
        q.fill_len += len;
        q.queued++;
        if (was_empty)
            pthread_cond_signal(&q.wake);
    }
    pthread_mutex_unlock(&q.lock);
}

void hb_log_vwrite(hb_log_level_t level, const char *component, const char *fmt, va_list ap)
{
    char msg[2048], esc[LINE_MAX_LEN], line[LINE_MAX_LEN];
    int saved_errno = errno;
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (n < 0)
        return;
    hb_log_escape(esc, sizeof(esc), msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
    enqueue(line, format_line(line, level, component, esc));
    errno = saved_errno;
}

void hb_log_write(hb_log_level_t level, const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    hb_log_vwrite(level, component, fmt, ap);
    va_end(ap);
}

static void emit(hb_log_level_t level, const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    hb_log_vwrite(level, component, fmt, ap);
    va_end(ap);
}

void hb_log_flush(void)
{
    pthread_mutex_lock(&q.lock);
    int started = q.started;
    pthread_mutex_unlock(&q.lock);
    if (!started)
        return;
    sweep(hb_mono_ms()); /* the summaries due so far are part of what was logged */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 5; /* a consumer that never reads must not hang exit */
    pthread_mutex_lock(&q.lock);
    uint64_t target = q.queued;
    pthread_cond_signal(&q.wake);
    while (q.written < target && q.started &&
           pthread_cond_timedwait(&q.drained, &q.lock, &deadline) == 0) {
    }
    pthread_mutex_unlock(&q.lock);
}

static limit_slot_t *limit_slot(const char *component, const char *reason)
{
    for (int i = 0; i < LIMIT_SLOTS - 1; i++) {
        limit_slot_t *s = &limits[i];
        const char *r = atomic_load(&s->reason);
        if (!r) {
            const char *expected = NULL;
            if (atomic_compare_exchange_strong(&s->reason, &expected, reason)) {
                atomic_store(&s->component, component);
                return s;
            }
            r = expected; /* another thread claimed it first */
        }
        if (r == reason || strcmp(r, reason) == 0)
            return s;
    }
    /* more reasons than slots: the last one limits all the others together */
    limit_slot_t *s = &limits[LIMIT_SLOTS - 1];
    const char *expected = NULL;
    if (atomic_compare_exchange_strong(&s->reason, &expected, "other"))
        atomic_store(&s->component, component);
    return s;
}

int hb_log_allow(const char *component, const char *reason)
{
    limit_slot_t *s = limit_slot(component, reason);
    uint64_t now = hb_mono_ms();
    uint64_t start = atomic_load(&s->window_start_ms);
    if ((now - start >= atomic_load(&limit_interval_ms) || start == 0) &&
        atomic_compare_exchange_strong(&s->window_start_ms, &start, now ? now : 1))
        atomic_store(&s->count, 0);
    if (atomic_fetch_add(&s->count, 1) < atomic_load(&limit_burst))
        return 1;
    atomic_fetch_add(&s->suppressed, 1);
    return 0;
}

static void libevent_log_cb(int severity, const char *msg)
{
    hb_log_level_t l = severity <= EVENT_LOG_DEBUG  ? HB_LOG_DEBUG
                       : severity == EVENT_LOG_MSG  ? HB_LOG_INFO
                       : severity == EVENT_LOG_WARN ? HB_LOG_WARN
                                                    : HB_LOG_ERROR;
    hb_log(l, "libevent", "%s", msg);
}

void hb_log_hook_libevent(void)
{
    event_set_log_callback(libevent_log_cb);
}

_Noreturn void hb_oom(const char *what)
{
    /* straight to stderr: the process is about to abort, not to flush */
    char msg[256], esc[1024], line[LINE_MAX_LEN];
    int n = snprintf(msg, sizeof(msg), "out of memory (%s); aborting", what);
    hb_log_escape(esc, sizeof(esc), msg, n > 0 && (size_t)n < sizeof(msg) ? (size_t)n : 0);
    write_all(line, format_line(line, HB_LOG_ERROR, "main", esc));
    abort();
}
