/* Small helpers shared by every module: allocation that cannot fail (out
 * of memory goes through hb_oom), time, and careful file I/O. */
#ifndef HB_UTIL_H
#define HB_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>
#include <sys/types.h>

void *hb_malloc(size_t n);
void *hb_calloc(size_t n, size_t size);
void *hb_realloc(void *p, size_t n);
char *hb_strdup(const char *s);
char *hb_strndup(const char *s, size_t n);

uint64_t hb_now_ms(void);  /* wall clock, Unix milliseconds */
uint64_t hb_mono_ms(void); /* monotonic milliseconds */
uint64_t hb_mono_us(void); /* monotonic microseconds */
/* Name the calling thread (at most 15 bytes show), so that top -H, perf
 * and /proc/PID/task tell the pipeline's stages apart. */
void hb_thread_name(const char *name);
/* A libevent timeout of `ms` milliseconds. */
struct timeval hb_ms_timeval(int64_t ms);
/* Exponential backoff: the delay after `prev_ms` (0 before the first
 * failure) is min_ms, then twice the previous one, capped at max_ms. */
int hb_backoff_next(int prev_ms, int min_ms, int max_ms);
/* RFC 3339 UTC with milliseconds, e.g. 2026-11-27T07:46:08.123Z; buf >= 32. */
void hb_format_rfc3339(uint64_t unix_ms, char *buf, size_t len);

/* Write all of buf, looping on short writes and EINTR. 0 or -1 (errno). */
int hb_write_full(int fd, const void *buf, size_t len);
/* Read exactly len bytes at off; returns bytes read (< len only at EOF) or -1. */
ssize_t hb_pread_full(int fd, void *buf, size_t len, off_t off);
/* fsync a directory so that a create/rename/unlink in it is durable. */
int hb_fsync_dir(const char *dir);
/* mkdir -p; 0 or -1 (errno). */
int hb_mkdir_p(const char *path, unsigned mode);
/* Replace `path` atomically with `data`: temp file, fsync, rename, fsync dir. */
int hb_write_file_atomic(const char *path, const void *data, size_t len);
/* Read a whole small file into a NUL-terminated heap buffer; NULL on error. */
char *hb_read_file(const char *path, size_t *len_out);

#endif
