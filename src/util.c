/* Shared helpers. See include/hb/util.h. These may block (file I/O) and so
 * are never called on an HTTP event-loop thread except at start-up. */
#include "hb/fmacros.h"

#include "hb/util.h"
#include "hb/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void *hb_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        hb_oom("malloc");
    return p;
}

void *hb_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        hb_oom("calloc");
    return p;
}

void *hb_realloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        hb_oom("realloc");
    return p;
}

char *hb_strdup(const char *s)
{
    return hb_strndup(s, strlen(s));
}

char *hb_strndup(const char *s, size_t n)
{
    char *p = hb_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

uint64_t hb_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void hb_thread_name(const char *name)
{
    char n[16];
    snprintf(n, sizeof(n), "%s", name); /* the kernel keeps 15 bytes */
    pthread_setname_np(pthread_self(), n);
}

uint64_t hb_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t hb_mono_ms(void)
{
    return hb_mono_us() / 1000u;
}

struct timeval hb_ms_timeval(int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

int hb_backoff_next(int prev_ms, int min_ms, int max_ms)
{
    if (prev_ms <= 0)
        return min_ms;
    return prev_ms >= max_ms / 2 ? max_ms : prev_ms * 2;
}

void hb_format_rfc3339(uint64_t unix_ms, char *buf, size_t len)
{
    /* Every sink formats this per event, mostly within the same second:
     * gmtime_r and strftime (which takes glibc's time-zone lock) run once
     * per second and thread. */
    static _Thread_local time_t last_secs = -1;
    static _Thread_local char prefix[24];
    static _Thread_local size_t plen;
    time_t secs = (time_t)(unix_ms / 1000);
    if (secs != last_secs) {
        struct tm tm;
        gmtime_r(&secs, &tm);
        plen = strftime(prefix, sizeof(prefix), "%Y-%m-%dT%H:%M:%S", &tm);
        last_secs = secs;
    }
    unsigned ms = (unsigned)(unix_ms % 1000);
    if (len < plen + 6) {
        if (len)
            buf[0] = '\0';
        return;
    }
    memcpy(buf, prefix, plen);
    buf[plen] = '.';
    buf[plen + 1] = (char)('0' + ms / 100);
    buf[plen + 2] = (char)('0' + ms / 10 % 10);
    buf[plen + 3] = (char)('0' + ms % 10);
    buf[plen + 4] = 'Z';
    buf[plen + 5] = '\0';
}

int hb_write_full(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

ssize_t hb_pread_full(int fd, void *buf, size_t len, off_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, (char *)buf + got, len - got, off + (off_t)got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

int hb_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int hb_mkdir_p(const char *path, unsigned mode)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

int hb_write_file_atomic(const char *path, const void *data, size_t len)
{
    char tmp[PATH_MAX], dir[PATH_MAX];
    int fd = -1, rc = -1;
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        goto cleanup;
    if (hb_write_full(fd, data, len) < 0 || fsync(fd) < 0)
        goto cleanup;
    if (close(fd) < 0) {
        fd = -1;
        goto cleanup;
    }
    fd = -1;
    if (rename(tmp, path) < 0)
        goto cleanup;
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof(dir), ".");
    rc = hb_fsync_dir(dir);
cleanup:
    if (fd >= 0) {
        int saved = errno;
        close(fd);
        errno = saved;
    }
    return rc;
}

char *hb_read_file(const char *path, size_t *len_out)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    for (;;) {
        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 8192;
            buf = hb_realloc(buf, cap + 1);
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int saved = errno;
            free(buf);
            close(fd);
            errno = saved;
            return NULL;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (!buf)
        buf = hb_malloc(1);
    buf[len] = '\0';
    if (len_out)
        *len_out = len;
    return buf;
}
