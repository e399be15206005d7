/* Logging. See include/hb/log.h.
 *
 * Each line is formatted into a stack buffer and written with one write(2)
 * to stderr: atomic for lines under PIPE_BUF on pipes, and never interleaved
 * with another thread's line. JSON mode escapes the message with jansson's
 * encoder so that a reason containing quotes cannot break the line. */
#include "hb/fmacros.h"

#include "hb/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

int hb_log_level = HB_LOG_INFO;
static int log_json;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

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
    log_json = json;
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

void hb_log_vwrite(hb_log_level_t level, const char *component, const char *fmt, va_list ap)
{
    char msg[2048], line[4096], ts[40];
    int saved_errno = errno;
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (n < 0)
        return;
    format_time(ts, sizeof(ts));
    if (log_json) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "time", ts, "level", level_names[level],
                              "component", component, "msg", msg);
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        n = snprintf(line, sizeof(line), "%s\n", s ? s : "{}");
        free(s);
        json_decref(o);
    } else {
        n = snprintf(line, sizeof(line), "%s %-5s [%s] %s\n", ts, level_names[level], component,
                     msg);
    }
    if (n > (int)sizeof(line) - 1) {
        n = (int)sizeof(line) - 1;
        line[n - 1] = '\n';
    }
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w; /* nowhere left to report a failed log write */
    errno = saved_errno;
}

void hb_log_write(hb_log_level_t level, const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    hb_log_vwrite(level, component, fmt, ap);
    va_end(ap);
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
    hb_log_write(HB_LOG_ERROR, "main", "out of memory (%s); aborting", what);
    abort();
}
