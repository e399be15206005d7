/* Issue 9, item 9: the journal's timed waits ran on the wall clock, so a
 * backward step of CLOCK_REALTIME stalled cursor persistence, segment
 * deletion and the return from "journal full". This binary is linked with
 * -Wl,--wrap=clock_gettime: every CLOCK_REALTIME reading made by our code
 * is an hour ahead of the kernel's, which is what a wait computed just
 * before the clock stepped back an hour sees. A deadline taken from it
 * would sleep for an hour; on CLOCK_MONOTONIC the acks are persisted
 * within the usual 200 ms. */
#include "test.h"

#include "hb/journal.h"
#include "hb/log.h"
#include "hb/record.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int __real_clock_gettime(clockid_t id, struct timespec *ts);
int __wrap_clock_gettime(clockid_t id, struct timespec *ts);

int __wrap_clock_gettime(clockid_t id, struct timespec *ts)
{
    int rc = __real_clock_gettime(id, ts);
    if (rc == 0 && id == CLOCK_REALTIME)
        ts->tv_sec += 3600;
    return rc;
}

static int done_flag;

static void on_done(hb_append_t *a)
{
    (void)a;
    __atomic_store_n(&done_flag, 1, __ATOMIC_SEQ_CST);
}

static int file_has(const char *path, const char *s)
{
    char *text = NULL;
    size_t cap = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    ssize_t n = getdelim(&text, &cap, '\0', f);
    fclose(f);
    int found = n > 0 && strstr(text, s) != NULL;
    free(text);
    return found;
}

int main(void)
{
    hb_log_set_level(HB_LOG_WARN);
    char dir[] = "/tmp/hb-test-clock.XXXXXX", err[256], cursors[64];
    ok(mkdtemp(dir) != NULL, "temporary directory");
    snprintf(cursors, sizeof(cursors), "%s/cursors", dir);
    const char *sinks[] = {"file"};
    hb_journal_opts_t o = {
        .dir = dir, .max_bytes = 1 << 20, .sinks = sinks, .n_sinks = 1, .no_prealloc = 1};
    hb_journal_t *j = hb_journal_open(&o, err, sizeof(err));
    ok(j != NULL, "open (%s)", err);
    if (!j)
        return done_testing();
    const char *body = "{\"topic\":\"t\"}";
    hb_record_t r = {.topic = "t",
                     .topic_len = 1,
                     .body = (const unsigned char *)body,
                     .body_len = strlen(body),
                     .delivery_attempts = -1,
                     .created_at = -1};
    hb_append_t a = {.buf = malloc(hb_record_size(&r)), .stage = HB_STAGE_DURABLE, .done = on_done};
    a.len = hb_record_prepare(&r, a.buf);
    hb_journal_append(j, &a);
    for (int i = 0; i < 3000 && !__atomic_load_n(&done_flag, __ATOMIC_SEQ_CST); i++)
        usleep(10000);
    ok(done_flag && a.err == 0 && a.seq == 1, "the append is durable");
    /* wait for a persistence pass to start sleeping, then ack */
    usleep(300000);
    hb_journal_ack(j, 0, 1);
    int persisted = 0;
    for (int i = 0; i < 1000 && !persisted; i++) {
        persisted = file_has(cursors, "file 1\n");
        if (!persisted)
            usleep(10000);
    }
    ok(persisted, "bug: with the wall clock an hour off, the ack is persisted within 10 s anyway");
    hb_journal_close(j);
    free(a.buf);
    unlink(cursors);
    char seg[128];
    snprintf(seg, sizeof(seg), "%s/%020d.seg", dir, 1);
    unlink(seg);
    rmdir(dir);
    return done_testing();
}
