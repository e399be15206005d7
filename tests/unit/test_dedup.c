/* The notification-id set: the window, the record sequence number kept with
 * each id (ack = published: a repeat is a duplicate once that record is
 * published), and the snapshot round trip. */
#include "test.h"

#include "hb/dedup.h"

#include <unistd.h>

#define ID(s) (s), strlen(s)

static void test_seq(void)
{
    hb_dedup_t *d = hb_dedup_new(60000, 1000);
    uint64_t seq = 99;
    ok(!hb_dedup_seen(d, ID("a"), 1000, &seq), "unknown id not seen");
    is_int((int)seq, 99, "seq untouched when not seen");
    hb_dedup_add(d, ID("a"), 1000, 42);
    ok(hb_dedup_seen(d, ID("a"), 1000, &seq), "added id seen");
    is_int((int)seq, 42, "seen gives the record's seq");
    ok(hb_dedup_seen(d, ID("a"), 1000, NULL), "seq may be NULL");

    hb_dedup_add(d, ID("a"), 1001, 50);
    hb_dedup_seen(d, ID("a"), 1001, &seq);
    is_int((int)seq, 42, "a later record of the same id keeps the first seq");
    hb_dedup_add(d, ID("a"), 1001, 7);
    hb_dedup_seen(d, ID("a"), 1001, &seq);
    is_int((int)seq, 7, "a lower seq (the journal read at open) replaces it");
    hb_dedup_add(d, ID("a"), 1001, 0);
    hb_dedup_seen(d, ID("a"), 1001, &seq);
    is_int((int)seq, 7, "an add without a seq keeps the known one");
    is_int((int)hb_dedup_count(d), 1, "one entry for one id");

    hb_dedup_add(d, ID("b"), 1002, 0);
    hb_dedup_seen(d, ID("b"), 1002, &seq);
    is_int((int)seq, 0, "an id without a record gives seq 0");
    hb_dedup_add(d, ID("b"), 1002, 9);
    hb_dedup_seen(d, ID("b"), 1002, &seq);
    is_int((int)seq, 9, "a seq learnt later (snapshot, then journal) is kept");

    ok(!hb_dedup_seen(d, ID("a"), 1000 + 60001 + 1, &seq), "outside the window: not seen");
    hb_dedup_free(d);
}

static void test_snapshot(void)
{
    char dir[] = "/tmp/hb-test-dedup-XXXXXX";
    ok(mkdtemp(dir) != NULL, "temp dir");
    char path[256];
    snprintf(path, sizeof(path), "%s/dedup.snapshot", dir);
    hb_dedup_t *d = hb_dedup_new(60000, 1000);
    hb_dedup_add(d, ID("x"), 5000, 11);
    hb_dedup_add(d, ID("y"), 5001, 12);
    is_int(hb_dedup_save(d, path), 0, "save");
    hb_dedup_free(d);

    d = hb_dedup_new(60000, 1000);
    is_int(hb_dedup_load(d, path), 0, "load");
    uint64_t seq = 99;
    ok(hb_dedup_seen(d, ID("x"), 5002, &seq), "x back from the snapshot");
    is_int((int)seq, 0, "the snapshot holds no seq (the journal gives it at open)");
    hb_dedup_add(d, ID("x"), 5000, 11); /* what the journal's on_record does */
    hb_dedup_seen(d, ID("x"), 5002, &seq);
    is_int((int)seq, 11, "the journal's seq joins the snapshot's id");
    ok(hb_dedup_seen(d, ID("y"), 5002, NULL), "y back from the snapshot");
    hb_dedup_free(d);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    test_seq();
    test_snapshot();
    return done_testing();
}
