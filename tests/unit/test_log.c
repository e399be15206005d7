/* Unit tests for src/log.c: escaping of quoted bytes, the refusal rate
 * limiter, and a log consumer that does not keep up. */
#include "test.h"

#include "hb/log.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void test_escape(void)
{
    char out[64];
    const char in[] = "/a\x1b[2J\\b\xff\xc3\x28\r\nend";
    size_t n = hb_log_escape(out, sizeof(out), in, sizeof(in) - 1);
    is_str(out, "/a\\x1b[2J\\\\b\\xff\\xc3(\\x0d\\x0aend", "ESC, backslash, invalid UTF-8, CR LF");
    is_int(n, strlen(out), "returns the length written");
    n = hb_log_escape(out, 6, "ab\x01zz", 5);
    is_str(out, "ab", "an escape that does not fit is left out whole, not cut");
    n = hb_log_escape(out, sizeof(out), "a\0b", 3);
    is_str(out, "a\\x00b", "a NUL byte is escaped, not the end");
}

static void test_line_escaped(void)
{
    const char path[] = "/x\x1b]0;owned\x07\xff\xfe\ny";
    test_capture_begin();
    hb_log_set_json(0);
    hb_log_write(HB_LOG_WARN, "http", "404 to 127.0.0.1: no endpoint at %s", path);
    char *s = test_capture_end();
    is_int(count_lines(s), 1, "text: one line, not split by the quoted newline");
    ok(strstr(s, "no endpoint at /x\\x1b]0;owned\\x07\\xff\\xfe\\x0ay\n") != NULL,
       "text: every byte that is not printable ASCII escaped: %s", s);
    free(s);

    test_capture_begin();
    hb_log_set_json(1);
    hb_log_write(HB_LOG_WARN, "http", "404 to 127.0.0.1: no endpoint at %s \"q\"", path);
    hb_log_set_json(0);
    s = test_capture_end();
    is_int(count_lines(s), 1, "json: one line");
    json_error_t e;
    json_t *o = json_loads(s, 0, &e);
    ok(o != NULL, "json: the line is valid JSON (%s): %s", o ? "" : e.text, s);
    const char *msg = json_string_value(json_object_get(o, "msg"));
    is_str(msg, "404 to 127.0.0.1: no endpoint at /x\\x1b]0;owned\\x07\\xff\\xfe\\x0ay \"q\"",
           "json: msg holds the escaped path, not {}");
    is_str(json_string_value(json_object_get(o, "level")), "warn", "json: level");
    json_decref(o);
    free(s);
}

static void test_limiter(void)
{
    hb_log_set_limit(3, 60000);
    int allowed = 0;
    for (int i = 0; i < 10; i++)
        allowed += hb_log_allow("http", "test-401");
    is_int(allowed, 3, "3 of 10 lines of one reason pass in one interval");
    ok(hb_log_allow("http", "test-404"), "another reason has its own budget");
    test_capture_begin();
    char *s = test_capture_end(); /* the flush runs the summary sweep */
    ok(strstr(s, "[http] 7 more like this (test-401) in the last ") != NULL,
       "one summary line for the 7 held back: %s", s);
    ok(strstr(s, "test-404") == NULL, "no summary for a reason with nothing held back");
    free(s);
    test_capture_begin();
    s = test_capture_end();
    ok(strstr(s, "more like this") == NULL, "a summary is said once, not again: %s", s);
    free(s);

    /* a new window gives a new budget */
    hb_log_set_limit(2, 50);
    struct timespec ts = {0, 60 * 1000000};
    nanosleep(&ts, NULL);
    allowed = 0;
    for (int i = 0; i < 5; i++)
        allowed += hb_log_allow("http", "test-401");
    is_int(allowed, 2, "after the interval, the next window's budget passes");
    test_capture_begin();
    free(test_capture_end());

    /* the macro: limited lines, and nothing counted below the level */
    hb_log_set_limit(2, 60000);
    test_capture_begin();
    for (int i = 0; i < 5; i++)
        hb_log_limited(HB_LOG_WARN, "http", "test-macro", "refused %d", i);
    for (int i = 0; i < 5; i++)
        hb_log_limited(HB_LOG_DEBUG, "http", "test-macro-debug", "debug %d", i);
    s = test_capture_end();
    ok(strstr(s, "refused 1\n") && !strstr(s, "refused 2"), "hb_log_limited: 2 lines: %s", s);
    ok(strstr(s, "3 more like this (test-macro)") != NULL, "and one summary for 3");
    ok(!strstr(s, "test-macro-debug"), "a level not logged is not counted either");
    free(s);
}

static atomic_int mt_allowed;

static void *hammer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 5000; i++)
        if (hb_log_allow("http", "test-mt"))
            atomic_fetch_add(&mt_allowed, 1);
    return NULL;
}

static void test_limiter_threads(void)
{
    hb_log_set_limit(5, 600000);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, hammer, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    is_int(atomic_load(&mt_allowed), 5, "4 threads x 5000: exactly the burst passes in a window");
    test_capture_begin();
    char *s = test_capture_end();
    ok(strstr(s, "19995 more like this (test-mt)") != NULL, "every other call counted: %s", s);
    free(s);
}

typedef struct {
    int fd;
    char *buf;
    size_t len, cap;
} reader_t;

static void *drain(void *arg)
{
    reader_t *r = arg;
    for (;;) {
        if (r->cap - r->len < 65536) {
            r->cap = r->cap * 2 + 65536;
            r->buf = realloc(r->buf, r->cap);
        }
        ssize_t n = read(r->fd, r->buf + r->len, r->cap - r->len - 1);
        if (n <= 0)
            break;
        r->len += (size_t)n;
    }
    r->buf[r->len] = '\0';
    return NULL;
}

/* regression: a consumer that does not read must not stall the caller */
static void test_slow_consumer_drops_counted(void)
{
    int p[2];
    if (pipe(p) < 0) {
        skip("pipe");
        return;
    }
    int saved = dup(2);
    dup2(p[1], 2);
    close(p[1]);
    /* nobody reads yet: the log thread blocks in write(2) after 64 KiB,
     * and logging 2 MB more must still return */
    enum { N = 10000 };
    for (int i = 0; i < N; i++)
        hb_log_write(HB_LOG_INFO, "test", "filler %05d %0180d", i, 0);
    ok(1, "10000 lines logged while the consumer does not read: no stall");
    reader_t r = {.fd = p[0]};
    pthread_t t;
    pthread_create(&t, NULL, drain, &r);
    hb_log_flush();
    dup2(saved, 2);
    close(saved);
    pthread_join(t, NULL);
    close(p[0]);
    int filler = 0;
    for (const char *s = r.buf; (s = strstr(s, "filler ")); s++)
        filler++;
    long dropped = 0; /* summed: the log thread may say it more than once */
    for (const char *d = r.buf; (d = strstr(d, " log lines dropped")); d++) {
        const char *b = d;
        while (b > r.buf && b[-1] >= '0' && b[-1] <= '9')
            b--;
        dropped += strtol(b, NULL, 10);
    }
    ok(dropped > 0, "lines were dropped and said so (%ld)", dropped);
    is_int(filler + dropped, N, "written + dropped = logged (%d written)", filler);
    free(r.buf);
}

int main(void)
{
    test_escape();
    test_line_escaped();
    test_limiter();
    test_limiter_threads();
    test_slow_consumer_drops_counted();
    return done_testing();
}
