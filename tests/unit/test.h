/* A tiny assert harness for the unit tests (Redis test_cond, h2o picotest).
 *
 *   ok(cond, "what is checked %d", n);   prints "ok N - ..." or
 *                                         "not ok N - ... (file:line)"
 *   is_str(got, want, "name");            ok() that shows got/want on failure
 *   is_int(got, want, "name");            likewise for integers
 *   skip("why");                          prints "ok N # skip why"
 *   diag("note %s", x);                   prints "# note ..."
 *   return done_testing();                prints "N passed, M failed" last,
 *                                         non-zero when anything failed
 *
 * A check never stops the test: every check runs and is counted, so one run
 * shows every failure. Output is TAP-compatible. Include it first: it pulls
 * in hb/fmacros.h so that POSIX interfaces are declared. */
#ifndef HB_TEST_H
#define HB_TEST_H

#include "hb/fmacros.h"

#include "hb/log.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int test_count_, test_failed_;

__attribute__((unused)) static int test_vok_(int cond, const char *file, int line, const char *fmt,
                                             va_list ap)
{
    test_count_++;
    if (!cond)
        test_failed_++;
    printf("%sok %d - ", cond ? "" : "not ", test_count_);
    vprintf(fmt, ap);
    if (!cond)
        printf(" (%s:%d)", file, line);
    putchar('\n');
    fflush(stdout);
    return cond;
}

__attribute__((unused, format(printf, 4, 5))) static int test_ok_(int cond, const char *file,
                                                                  int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = test_vok_(cond, file, line, fmt, ap);
    va_end(ap);
    return r;
}

__attribute__((unused, format(printf, 5, 6))) static int
test_is_str_(const char *got, const char *want, const char *file, int line, const char *fmt, ...)
{
    int cond =
        (got == NULL && want == NULL) || (got != NULL && want != NULL && strcmp(got, want) == 0);
    va_list ap;
    va_start(ap, fmt);
    test_vok_(cond, file, line, fmt, ap);
    va_end(ap);
    if (!cond) {
        printf("#   got: %s%s%s\n", got ? "'" : "", got ? got : "NULL", got ? "'" : "");
        printf("#  want: %s%s%s\n", want ? "'" : "", want ? want : "NULL", want ? "'" : "");
    }
    return cond;
}

__attribute__((unused, format(printf, 5, 6))) static int
test_is_int_(intmax_t got, intmax_t want, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    test_vok_(got == want, file, line, fmt, ap);
    va_end(ap);
    if (got != want)
        printf("#   got: %jd\n#  want: %jd\n", got, want);
    return got == want;
}

__attribute__((unused, format(printf, 1, 2))) static void skip(const char *fmt, ...)
{
    va_list ap;
    test_count_++;
    printf("ok %d # skip ", test_count_);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

__attribute__((unused, format(printf, 1, 2))) static void diag(const char *fmt, ...)
{
    va_list ap;
    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

/* Skipped checks count as passed, as in TAP. */
__attribute__((unused)) static int done_testing(void)
{
    printf("1..%d\n%d passed, %d failed\n", test_count_, test_count_ - test_failed_, test_failed_);
    fflush(stdout);
    return test_failed_ != 0;
}

#define ok(cond, ...) test_ok_(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_str(got, want, ...) test_is_str_((got), (want), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, want, ...)                                                                     \
    test_is_int_((intmax_t)(got), (intmax_t)(want), __FILE__, __LINE__, __VA_ARGS__)

/* Read a whole file as raw bytes (NUL-terminated for convenience). NULL on
 * error. The caller frees. */
__attribute__((unused)) static unsigned char *test_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    unsigned char *buf = malloc(cap + 1);
    if (!buf)
        abort();
    for (;;) {
        if (n == cap) {
            cap *= 2;
            unsigned char *nb = realloc(buf, cap + 1);
            if (!nb)
                abort();
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        if (got == 0)
            break;
        n += got;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

/* Capture what the log thread writes (fd 2) into a fresh file. */
static char test_cap_path_[] = "/tmp/hb-test-log-XXXXXX";
static int test_cap_saved_ = -1;

__attribute__((unused)) static void test_capture_begin(void)
{
    int fd = mkstemp(test_cap_path_);
    test_cap_saved_ = dup(2);
    dup2(fd, 2);
    close(fd);
}

/* Everything logged since test_capture_begin; the caller frees. */
__attribute__((unused)) static char *test_capture_end(void)
{
    hb_log_flush();
    dup2(test_cap_saved_, 2);
    close(test_cap_saved_);
    size_t len;
    char *s = (char *)test_slurp(test_cap_path_, &len);
    unlink(test_cap_path_);
    memcpy(test_cap_path_ + strlen(test_cap_path_) - 6, "XXXXXX", 6);
    return s ? s : strdup("");
}

#endif
