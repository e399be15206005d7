/* Logging: one macro that checks the level before formatting anything.
 *
 * Lines go to stderr as one write(2) each, so lines from different threads
 * never interleave. Format is `text` (time level [component] message) or
 * `json` (one object per line). Callers must never pass secrets.
 *
 * Thread safety: every function may be called from any thread. */
#ifndef HB_LOG_H
#define HB_LOG_H

#include <stdarg.h>

typedef enum { HB_LOG_DEBUG = 0, HB_LOG_INFO, HB_LOG_WARN, HB_LOG_ERROR } hb_log_level_t;

extern int hb_log_level; /* read without locking: a stale level is harmless */

int hb_log_parse_level(const char *name, hb_log_level_t *out);
void hb_log_set_level(hb_log_level_t level);
void hb_log_set_json(int json);
void hb_log_write(hb_log_level_t level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void hb_log_vwrite(hb_log_level_t level, const char *component, const char *fmt, va_list ap);

/* Route libevent's and OpenSSL-independent library logs into ours. */
void hb_log_hook_libevent(void);

#define hb_log(level, component, ...)                                                              \
    do {                                                                                           \
        if ((int)(level) >= hb_log_level)                                                          \
            hb_log_write((level), (component), __VA_ARGS__);                                       \
    } while (0)

#define hb_debug(c, ...) hb_log(HB_LOG_DEBUG, c, __VA_ARGS__)
#define hb_info(c, ...) hb_log(HB_LOG_INFO, c, __VA_ARGS__)
#define hb_warn(c, ...) hb_log(HB_LOG_WARN, c, __VA_ARGS__)
#define hb_error(c, ...) hb_log(HB_LOG_ERROR, c, __VA_ARGS__)

/* The single out-of-memory path: logs and aborts. */
_Noreturn void hb_oom(const char *what);

#endif
