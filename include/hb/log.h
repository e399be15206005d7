/* Logging: one macro that checks the level before formatting anything.
 *
 * A line is formatted and escaped on the calling thread, then copied into a
 * bounded in-memory buffer that one log thread writes to stderr: a slow log
 * consumer never stalls an event loop. When the buffer is full the line is
 * dropped and counted, and the log thread says how many lines it lost.
 *
 * Every byte of the message that is not printable ASCII is written as \xNN
 * (and a backslash as \\), so a path, id or topic quoted from a client can
 * neither split a line nor make a JSON line invalid. Format is `text` (time
 * level [component] message) or `json` (one object per line). Callers must
 * never pass secrets.
 *
 * Lines a client can cause at will (refusals) go through hb_log_limited: at
 * most `burst` lines per reason per interval, then one "N more like this"
 * line per interval from the log thread.
 *
 * Thread safety: every function may be called from any thread. */
#ifndef HB_LOG_H
#define HB_LOG_H

#include <stdarg.h>
#include <stddef.h>

typedef enum { HB_LOG_DEBUG = 0, HB_LOG_INFO, HB_LOG_WARN, HB_LOG_ERROR } hb_log_level_t;

extern int hb_log_level; /* read without locking: a stale level is harmless */

int hb_log_parse_level(const char *name, hb_log_level_t *out);
void hb_log_set_level(hb_log_level_t level);
void hb_log_set_json(int json);
void hb_log_write(hb_log_level_t level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void hb_log_vwrite(hb_log_level_t level, const char *component, const char *fmt, va_list ap);

/* Wait (at most a few seconds) until every line logged so far, and the
 * "more like this" summaries due, have been written. Also run at exit. */
void hb_log_flush(void);

/* Rate limit for lines a client can cause: 1 when a line for `reason` (a
 * string literal, e.g. "401") may be written now, 0 when it is counted
 * for the next summary instead. Lock-free. */
int hb_log_allow(const char *component, const char *reason);
/* Lines per reason per interval (defaults: 20 per 10000 ms); for tests. */
void hb_log_set_limit(unsigned burst, unsigned interval_ms);

/* Write src[0..srclen) into dst (always NUL-terminated) with every byte
 * outside 0x20..0x7e as \xNN and a backslash as \\; stops before an escape
 * that would not fit. Returns the length written. */
size_t hb_log_escape(char *dst, size_t dstlen, const char *src, size_t srclen);

/* Route libevent's and OpenSSL-independent library logs into ours. */
void hb_log_hook_libevent(void);

#define hb_log(level, component, ...)                                                              \
    do {                                                                                           \
        if ((int)(level) >= hb_log_level)                                                          \
            hb_log_write((level), (component), __VA_ARGS__);                                       \
    } while (0)

/* A line a client can cause at will: see hb_log_allow. */
#define hb_log_limited(level, component, reason, ...)                                              \
    do {                                                                                           \
        if ((int)(level) >= hb_log_level && hb_log_allow((component), (reason)))                   \
            hb_log_write((level), (component), __VA_ARGS__);                                       \
    } while (0)

#define hb_debug(c, ...) hb_log(HB_LOG_DEBUG, c, __VA_ARGS__)
#define hb_info(c, ...) hb_log(HB_LOG_INFO, c, __VA_ARGS__)
#define hb_warn(c, ...) hb_log(HB_LOG_WARN, c, __VA_ARGS__)
#define hb_error(c, ...) hb_log(HB_LOG_ERROR, c, __VA_ARGS__)

/* The single out-of-memory path: logs and aborts. */
_Noreturn void hb_oom(const char *what);

#endif
