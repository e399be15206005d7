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

/* The reference implementation's vectors_sip64: key 00..0f, message 00..n-1. */
static void test_siphash_vectors(void)
{
    static const uint64_t want[48] = {
        0x726fdb47dd0e0e31, 0x74f839c593dc67fd, 0x0d6c8009d9a94f5a, 0x85676696d7fb7e2d,
        0xcf2794e0277187b7, 0x18765564cd99a68d, 0xcbc9466e58fee3ce, 0xab0200f58b01d137,
        0x93f5f5799a932462, 0x9e0082df0ba9e4b0, 0x7a5dbbc594ddb9f3, 0xf4b32f46226bada7,
        0x751e8fbc860ee5fb, 0x14ea5627c0843d90, 0xf723ca908e7af2ee, 0xa129ca6149be45e5,
        0x3f2acc7f57c29bdb, 0x699ae9f52cbe4794, 0x4bc1b3f0968dd39c, 0xbb6dc91da77961bd,
        0xbed65cf21aa2ee98, 0xd0f2cbb02e3b67c7, 0x93536795e3a33e88, 0xa80c038ccd5ccec8,
        0xb8ad50c6f649af94, 0xbce192de8a85b8ea, 0x17d835b85bbb15f3, 0x2f2e6163076bcfad,
        0xde4daaaca71dc9a5, 0xa6a2506687956571, 0xad87a3535c49ef28, 0x32d892fad841c342,
        0x7127512f72f27cce, 0xa7f32346f95978e3, 0x12e0b01abb051238, 0x15e034d40fa197ae,
        0x314dffbe0815a3b4, 0x027990f029623981, 0xcadcd4e59ef40c4d, 0x9abfd8766a33735c,
        0x0e3ea96b5304a7d0, 0xad0c42d6fc585992, 0x187306c89bc215a9, 0xd4a60abcf3792b95,
        0xf935451de4f21df2, 0xa9538f0419755787, 0xdb9acddff56ca510, 0xd06c98cd5c0975eb,
    };
    unsigned char key[16], msg[48];
    for (int i = 0; i < 16; i++)
        key[i] = (unsigned char)i;
    for (int i = 0; i < 48; i++)
        msg[i] = (unsigned char)i;
    int bad = 0;
    for (size_t n = 0; n < 48; n++) {
        uint64_t got = hb_siphash24(key, msg, n);
        if (got != want[n]) {
            diag("length %zu: got %016" PRIx64 ", want %016" PRIx64, n, got, want[n]);
            bad++;
        }
    }
    is_int(bad, 0, "SipHash-2-4 matches the 48 published vectors (every tail length, 0-5 blocks)");
}

/* issue 10: the set works the same with its hash keyed at random */
static void test_keyed_set(void)
{
    hb_dedup_t *d = hb_dedup_new(60000, 100000);
    char id[32];
    for (int i = 0; i < 900; i++) {
        int n = snprintf(id, sizeof(id), "notif_%d", i);
        hb_dedup_add(d, id, (size_t)n, 2000, (uint64_t)i + 1);
    }
    int seen = 0, wrong_seq = 0;
    for (int i = 0; i < 900; i++) {
        int n = snprintf(id, sizeof(id), "notif_%d", i);
        uint64_t seq = 0;
        seen += hb_dedup_seen(d, id, (size_t)n, 2001, &seq);
        wrong_seq += seq != (uint64_t)i + 1;
    }
    is_int(seen, 900, "900 ids added, 900 seen");
    is_int(wrong_seq, 0, "each with its own seq");
    ok(!hb_dedup_seen(d, "notif_900", 9, 2001, NULL), "an id never added is not seen");
    hb_dedup_free(d);
}

/* issue 11: each route its own id space; the Intercom route's ids stay
 * plain (old snapshots stay valid) and a route's keys survive a snapshot */
static void test_route_keys(void)
{
    char buf[16], *heap;
    size_t len;
    const char *id = "evt_1";
    const char *k = hb_dedup_key(NULL, 0, ID(id), buf, sizeof(buf), &heap, &len);
    ok(k == id && len == 5 && !heap, "no route: the id itself");
    k = hb_dedup_key(ID("intercom"), ID(id), buf, sizeof(buf), &heap, &len);
    ok(k == id && len == 5 && !heap, "the Intercom route: the id itself");
    k = hb_dedup_key(ID("github"), ID(id), buf, sizeof(buf), &heap, &len);
    ok(k == buf && len == 12 && !heap && memcmp(k, "github\0evt_1", 12) == 0,
       "another route: route NUL id, in the buffer");
    k = hb_dedup_key(ID("a_long_route_name"), ID(id), buf, sizeof(buf), &heap, &len);
    ok(heap && k == heap && len == 23 && memcmp(k, "a_long_route_name\0evt_1", 23) == 0,
       "a key longer than the buffer is allocated");
    free(heap);

    char dir[] = "/tmp/hb-test-dedup-XXXXXX", path[256];
    ok(mkdtemp(dir) != NULL, "temp dir");
    snprintf(path, sizeof(path), "%s/dedup.snapshot", dir);
    hb_dedup_t *d = hb_dedup_new(60000, 1000);
    k = hb_dedup_key(ID("github"), ID(id), buf, sizeof(buf), &heap, &len);
    hb_dedup_add(d, k, len, 5000, 3);
    ok(!hb_dedup_seen(d, ID(id), 5001, NULL), "the same id on the Intercom route is new");
    k = hb_dedup_key(ID("stripe"), ID(id), buf, sizeof(buf), &heap, &len);
    ok(!hb_dedup_seen(d, k, len, 5001, NULL), "the same id on another route is new");
    is_int(hb_dedup_save(d, path), 0, "save");
    hb_dedup_free(d);
    d = hb_dedup_new(60000, 1000);
    is_int(hb_dedup_load(d, path), 0, "load");
    k = hb_dedup_key(ID("github"), ID(id), buf, sizeof(buf), &heap, &len);
    ok(hb_dedup_seen(d, k, len, 5002, NULL), "a route's key comes back from the snapshot");
    ok(!hb_dedup_seen(d, ID(id), 5002, NULL), "... in its own space only");
    hb_dedup_free(d);
    unlink(path);
    rmdir(dir);
}

/* An empty id is no id, on every route: its key is empty, never
 * remembered, as the Intercom route's always was; "<route>\0" would make
 * every later delivery of that route without an id a duplicate. */
static void test_empty_id_is_never_a_duplicate(void)
{
    char buf[16], *heap;
    size_t len;
    hb_dedup_t *d = hb_dedup_new(60000, 1000);
    const char *k = hb_dedup_key(ID("stripe"), "", 0, buf, sizeof(buf), &heap, &len);
    ok(!heap && len == 0, "an empty id on another route: an empty key");
    hb_dedup_add(d, k, len, 5000, 3);
    k = hb_dedup_key(ID("stripe"), "", 0, buf, sizeof(buf), &heap, &len);
    ok(!hb_dedup_seen(d, k, len, 5001, NULL), "a second delivery without an id is new");
    is_int((int)hb_dedup_count(d), 0, "nothing remembered");
    hb_dedup_free(d);
}

int main(void)
{
    test_seq();
    test_snapshot();
    test_siphash_vectors();
    test_keyed_set();
    test_route_keys();
    test_empty_id_is_never_a_duplicate();
    return done_testing();
}
