/* Journal record encoding: round trips, and the decoder's verdict on every
 * truncated prefix (SHORT) and every damaged byte (CORRUPT), which is what
 * journal recovery relies on to tell a torn tail from corruption. Decoding
 * works on exactly-sized heap copies so that ASan catches any over-read. */
#include "test.h"

#include "hb/crc32c.h"
#include "hb/record.h"

#include <stdlib.h>

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Recompute both checksums after deliberately editing a record, so that
 * only the edited field is wrong. */
static void reseal_all(unsigned char *buf)
{
    uint32_t plen = get32(buf + 4);
    put32(buf + 16, hb_crc32c(0, buf + HB_RECORD_HEADER, plen));
    put32(buf + 20, hb_crc32c(0, buf, 20));
}

static unsigned char *encode(const hb_record_t *r, uint64_t seq, size_t *len)
{
    size_t size = hb_record_size(r);
    unsigned char *buf = malloc(size);
    size_t n = hb_record_prepare(r, buf);
    hb_record_seal(buf, seq);
    *len = n;
    return buf;
}

/* Decode from an exactly-sized copy of buf[0..avail). */
static hb_decode_t decode_copy(const unsigned char *buf, size_t avail)
{
    unsigned char *copy = malloc(avail ? avail : 1);
    memcpy(copy, buf, avail);
    hb_record_t r;
    size_t used = 0;
    hb_decode_t d = hb_record_decode(copy, avail, &r, &used);
    free(copy);
    return d;
}

static int same_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static const unsigned char body_bytes[] =
    "{\"type\":\"notification_event\",\"topic\":\"contact.deleted\","
    "\"bin\":\"\0\xff\x80\"}";

static hb_record_t full_record(void)
{
    hb_record_t r = {
        .received_at_ms = 1768019869123u,
        .delivery_attempts = 3,
        .created_at = 1768019869,
        .topic = "contact.deleted",
        .topic_len = 15,
        .app_id = "k7x2m9pw",
        .app_id_len = 8,
        .id = "notif_d997a8b0",
        .id_len = 14,
        .body = body_bytes,
        .body_len = sizeof(body_bytes) - 1,
    };
    return r;
}

static void test_round_trip(void)
{
    hb_record_t in = full_record();
    size_t size = hb_record_size(&in);
    is_int(size, HB_RECORD_HEADER + HB_RECORD_FIXED + 15 + 8 + 14 + in.body_len,
           "hb_record_size: header + fixed + fields + body");
    unsigned char *buf = malloc(size + 8);
    memset(buf, 0xA5, size + 8);
    is_int(hb_record_prepare(&in, buf), size, "prepare returns the size");
    ok(buf[size] == 0xA5, "prepare writes nothing past the size");
    hb_record_seal(buf, 42);

    hb_record_t out;
    size_t used = 0;
    is_int(hb_record_decode(buf, size, &out, &used), HB_DECODE_OK, "decode OK");
    is_int(used, size, "used == size");
    is_int(out.seq, 42, "seq");
    is_int(out.received_at_ms, 1768019869123u, "received_at_ms");
    is_int(out.delivery_attempts, 3, "delivery_attempts");
    is_int(out.created_at, 1768019869, "created_at");
    ok(same_bytes(out.topic, out.topic_len, "contact.deleted", 15), "topic");
    ok(out.app_id && same_bytes(out.app_id, out.app_id_len, "k7x2m9pw", 8), "app_id");
    ok(out.id && same_bytes(out.id, out.id_len, "notif_d997a8b0", 14), "id");
    ok(same_bytes(out.body, out.body_len, in.body, in.body_len), "body byte for byte (NUL, 0xff)");
    ok(out.body >= buf && out.body + out.body_len <= buf + size, "decoded view points into buf");
    is_int(get32(buf), HB_RECORD_MAGIC, "magic first, little-endian");
    ok(memcmp(buf, "HBJ1", 4) == 0, "magic bytes read \"HBJ1\"");

    /* a larger avail than the record: decode still uses only the record */
    used = 0;
    is_int(hb_record_decode(buf, size + 8, &out, &used), HB_DECODE_OK,
           "decode with extra bytes after");
    is_int(used, size, "used excludes the extra bytes");

    /* resealing with another seq */
    hb_record_seal(buf, UINT64_MAX - 1);
    ok(hb_record_decode(buf, size, &out, &used) == HB_DECODE_OK && out.seq == UINT64_MAX - 1,
       "reseal with a 64-bit seq");
    free(buf);

    /* absent vs present-but-empty app_id and id */
    hb_record_t a = full_record();
    a.app_id = NULL;
    a.app_id_len = 5; /* ignored when absent */
    a.id = NULL;
    a.id_len = 0;
    a.delivery_attempts = -1;
    a.created_at = -1;
    size_t alen;
    unsigned char *ab = encode(&a, 1, &alen);
    is_int(alen, HB_RECORD_HEADER + HB_RECORD_FIXED + 15 + in.body_len,
           "absent fields take no bytes (their length is ignored)");
    ok(hb_record_decode(ab, alen, &out, &used) == HB_DECODE_OK, "absent app_id/id: decode OK");
    ok(out.app_id == NULL && out.id == NULL, "absent app_id and id decode as NULL");
    ok(out.delivery_attempts == -1 && out.created_at == -1, "-1 attempts/created_at round trip");
    ok(same_bytes(out.body, out.body_len, in.body, in.body_len), "body intact");
    free(ab);

    hb_record_t e = full_record();
    e.app_id = "";
    e.app_id_len = 0;
    e.id = "";
    e.id_len = 0;
    unsigned char *eb = encode(&e, 2, &alen);
    ok(hb_record_decode(eb, alen, &out, &used) == HB_DECODE_OK, "empty app_id/id: decode OK");
    ok(out.app_id != NULL && out.app_id_len == 0, "present-but-empty app_id is not NULL");
    ok(out.id != NULL && out.id_len == 0, "present-but-empty id is not NULL");
    free(eb);

    hb_record_t m = full_record();
    m.app_id = NULL;
    m.app_id_len = 0;
    unsigned char *mb = encode(&m, 3, &alen);
    ok(hb_record_decode(mb, alen, &out, &used) == HB_DECODE_OK && out.app_id == NULL && out.id &&
           same_bytes(out.id, out.id_len, "notif_d997a8b0", 14),
       "app_id absent, id present");
    free(mb);

    /* empty body, and a large one */
    hb_record_t z = full_record();
    z.body = (const unsigned char *)"";
    z.body_len = 0;
    unsigned char *zb = encode(&z, 4, &alen);
    ok(hb_record_decode(zb, alen, &out, &used) == HB_DECODE_OK && out.body_len == 0 && used == alen,
       "empty body round trips");
    free(zb);

    size_t blen = 3u << 20;
    unsigned char *big = malloc(blen);
    for (size_t i = 0; i < blen; i++)
        big[i] = (unsigned char)(i * 2654435761u >> 24);
    hb_record_t g = full_record();
    g.body = big;
    g.body_len = blen;
    unsigned char *gb = encode(&g, 5, &alen);
    ok(hb_record_decode(gb, alen, &out, &used) == HB_DECODE_OK &&
           same_bytes(out.body, out.body_len, big, blen),
       "3 MiB body round trips");
    free(gb);
    free(big);

    /* topic of the maximum length the route allows, and app_id/id at the u16 limit */
    char *longs = malloc(65535);
    memset(longs, 'i', 65535);
    hb_record_t l = full_record();
    l.id = longs;
    l.id_len = 65535;
    l.app_id = longs;
    l.app_id_len = 65535;
    unsigned char *lb = encode(&l, 6, &alen);
    ok(hb_record_decode(lb, alen, &out, &used) == HB_DECODE_OK && out.id_len == 65535 &&
           out.app_id_len == 65535 && same_bytes(out.body, out.body_len, in.body, in.body_len),
       "65535-byte app_id and id round trip");
    free(lb);
    free(longs);
}

static void test_short_and_corrupt(void)
{
    hb_record_t in = full_record();
    size_t size;
    unsigned char *buf = encode(&in, 7, &size);

    int all_short = 1;
    for (size_t n = 0; n < size; n++)
        if (decode_copy(buf, n) != HB_DECODE_SHORT) {
            diag("prefix of %zu bytes did not decode SHORT", n);
            all_short = 0;
        }
    ok(all_short, "every truncated prefix (0..%zu bytes) -> SHORT", size - 1);
    is_int(decode_copy(buf, size), HB_DECODE_OK, "the whole record -> OK");

    int all_corrupt = 1;
    for (size_t i = 0; i < size; i++) {
        for (int bit = 0; bit < 8; bit += 7) {
            buf[i] ^= (unsigned char)(1u << bit);
            hb_decode_t d = decode_copy(buf, size);
            if (d != HB_DECODE_CORRUPT) {
                diag("bit %d of byte %zu flipped: decode %d, want CORRUPT", bit, i, (int)d);
                all_corrupt = 0;
            }
            buf[i] ^= (unsigned char)(1u << bit);
        }
    }
    ok(all_corrupt, "a flipped bit (0 or 7) in any of the %zu bytes (header or payload) -> CORRUPT",
       size);

    /* a corrupt header is CORRUPT even when the record is incomplete, as
     * long as the 24 header bytes are there */
    buf[1] ^= 0x10;
    is_int(decode_copy(buf, HB_RECORD_HEADER), HB_DECODE_CORRUPT,
           "damaged header with only the header available -> CORRUPT");
    buf[1] ^= 0x10;

    /* wrong magic with valid checksums */
    unsigned char *w = malloc(size);
    memcpy(w, buf, size);
    memcpy(w, "HBJ2", 4);
    reseal_all(w);
    is_int(decode_copy(w, size), HB_DECODE_CORRUPT, "wrong magic (checksums valid) -> CORRUPT");
    memset(w, 0, size);
    is_int(decode_copy(w, size), HB_DECODE_CORRUPT,
           "all-zero bytes (a zero-filled tail) -> CORRUPT");

    /* lengths that disagree, checksums valid */
    memcpy(w, buf, size);
    put16(w + HB_RECORD_HEADER + 24, (uint16_t)(in.topic_len + 1));
    reseal_all(w);
    is_int(decode_copy(w, size), HB_DECODE_CORRUPT,
           "topic_len one too many (checksums valid) -> CORRUPT");
    memcpy(w, buf, size);
    put32(w + HB_RECORD_HEADER + 32, (uint32_t)in.body_len - 1);
    reseal_all(w);
    is_int(decode_copy(w, size), HB_DECODE_CORRUPT,
           "body_len one too few (checksums valid) -> CORRUPT");
    memcpy(w, buf, size);
    put32(w + HB_RECORD_HEADER + 32, 0xFFFFFFF0u);
    reseal_all(w);
    is_int(decode_copy(w, size), HB_DECODE_CORRUPT,
           "huge body_len (checksums valid) -> CORRUPT, no overflow");
    free(w);

    /* payload lengths out of range in a well-formed header */
    unsigned char h[HB_RECORD_HEADER + HB_RECORD_FIXED];
    memcpy(h, buf, sizeof(h));
    put32(h + 4, HB_RECORD_FIXED - 1);
    put32(h + 20, hb_crc32c(0, h, 20));
    is_int(decode_copy(h, sizeof(h)), HB_DECODE_CORRUPT,
           "payload_len below the fixed part -> CORRUPT");
    put32(h + 4, HB_RECORD_MAX_PAYLOAD + 1);
    put32(h + 20, hb_crc32c(0, h, 20));
    is_int(decode_copy(h, sizeof(h)), HB_DECODE_CORRUPT,
           "payload_len above the maximum -> CORRUPT, not SHORT (recovery would read to EOF)");
    put32(h + 4, 0xFFFFFFFFu);
    put32(h + 20, hb_crc32c(0, h, 20));
    is_int(decode_copy(h, sizeof(h)), HB_DECODE_CORRUPT, "payload_len 2^32-1 -> CORRUPT");

    /* prepared but never sealed: the writer has not claimed it */
    unsigned char *u = malloc(size);
    hb_record_prepare(&in, u);
    is_int(decode_copy(u, size), HB_DECODE_CORRUPT, "a prepared, unsealed record -> CORRUPT");
    free(u);
    free(buf);
}

static void test_back_to_back(void)
{
    hb_record_t a = full_record(), b = full_record();
    b.topic = "ping";
    b.topic_len = 4;
    b.id = NULL;
    b.body = (const unsigned char *)"{\"topic\":\"ping\"}";
    b.body_len = 16;
    size_t la = hb_record_size(&a), lb = hb_record_size(&b);
    unsigned char *buf = malloc(la + lb);
    hb_record_prepare(&a, buf);
    hb_record_prepare(&b, buf + la);
    hb_record_seal(buf, 100);
    hb_record_seal(buf + la, 101);

    hb_record_t r;
    size_t used = 0;
    ok(hb_record_decode(buf, la + lb, &r, &used) == HB_DECODE_OK && r.seq == 100 && used == la,
       "first of two: seq 100, used == its size");
    ok(same_bytes(r.topic, r.topic_len, "contact.deleted", 15), "first topic");
    size_t used2 = 0;
    ok(hb_record_decode(buf + used, la + lb - used, &r, &used2) == HB_DECODE_OK && r.seq == 101 &&
           used2 == lb,
       "second of two: seq 101, used == its size");
    ok(same_bytes(r.topic, r.topic_len, "ping", 4) && r.id == NULL && r.app_id != NULL,
       "second topic, id absent, app_id present");
    ok(same_bytes(r.body, r.body_len, "{\"topic\":\"ping\"}", 16), "second body");
    is_int(hb_record_decode(buf + la, lb - 1, &r, &used2), HB_DECODE_SHORT,
           "second record cut by one byte -> SHORT");
    free(buf);
}

/* Commit marks: what the journal closes each batch with (record.h). */
static void test_commit_mark(void)
{
    unsigned char buf[HB_COMMIT_SIZE + 8];
    hb_commit_t c = {.first_seq = 41,
                     .last_seq = 57,
                     .batch_bytes = 123456,
                     .synced_end = 987654321,
                     .batch_crc = 0xDEADBEEF},
                d;
    hb_commit_encode(&c, buf);
    hb_record_t r;
    size_t used = 0;
    is_int(hb_record_decode_any(buf, HB_COMMIT_SIZE, &r, &d, &used), HB_DECODE_COMMIT,
           "a commit mark decodes as one");
    is_int(used, HB_COMMIT_SIZE, "and uses HB_COMMIT_SIZE bytes");
    ok(d.first_seq == 41 && d.last_seq == 57 && d.batch_bytes == 123456 &&
           d.synced_end == 987654321 && d.batch_crc == 0xDEADBEEF,
       "every field round-trips");
    is_int(hb_record_decode(buf, HB_COMMIT_SIZE, &r, &used), HB_DECODE_CORRUPT,
           "hb_record_decode, which wants records only, calls it corrupt");
    is_int(hb_record_decode_any(buf, HB_COMMIT_SIZE - 1, &r, &d, &used), HB_DECODE_SHORT,
           "one byte short: short");
    int all_caught = 1;
    for (size_t i = 0; i < HB_COMMIT_SIZE; i++) {
        buf[i] ^= 0x10;
        if (hb_record_decode_any(buf, HB_COMMIT_SIZE, &r, &d, &used) == HB_DECODE_COMMIT)
            all_caught = 0;
        buf[i] ^= 0x10;
    }
    ok(all_caught, "a flipped bit anywhere in the mark is caught");
    /* the batch CRC chains record headers */
    uint32_t a = hb_commit_crc_add(0, buf), b = hb_commit_crc_add(a, buf);
    ok(a != b && b == hb_commit_crc_add(hb_commit_crc_add(0, buf), buf),
       "hb_commit_crc_add chains and is deterministic");
}

/* Routes: a record of another route carries its name and the provider's
 * headers in an ext after the body; the Intercom route writes none, so its
 * bytes (and every journal written before routes) stay as they were. */
static void test_route_ext(void)
{
    hb_record_t in = full_record();
    size_t plain = hb_record_size(&in);
    in.route = "intercom";
    in.route_len = 8;
    is_int(hb_record_size(&in), plain, "route intercom without headers: no ext");
    unsigned char *buf = malloc(plain);
    hb_record_prepare(&in, buf);
    is_int(get32(buf + HB_RECORD_HEADER + 36), 0, "ext_len 0 for the Intercom route");
    hb_record_t out;
    size_t used = 0;
    hb_record_seal(buf, 1);
    is_int(hb_record_decode(buf, plain, &out, &used), HB_DECODE_OK, "decode without ext");
    ok(same_bytes(out.route, out.route_len, "intercom", 8), "no ext decodes as route intercom");
    is_int(out.n_headers, 0, "no headers");
    size_t pos = 0;
    hb_record_hdr_t h;
    is_int(hb_record_hdr_next(&out, &pos, &h), -1, "no header to walk");
    free(buf);

    hb_record_hdr_t hdrs[] = {{"x-github-event", 14, "issues", 6},
                              {"x-github-delivery", 17, "72d3162e-cc78-11e3", 18},
                              {"x-empty", 7, "", 0}};
    in.route = "github";
    in.route_len = 6;
    in.headers = hdrs;
    in.n_headers = 3;
    size_t size = hb_record_size(&in);
    is_int(size, plain + 2 + 6 + 2 + (4 + 14 + 6) + (4 + 17 + 18) + (4 + 7), "ext size");
    buf = encode(&in, 7, &size);
    is_int(hb_record_decode(buf, size, &out, &used), HB_DECODE_OK, "decode with ext");
    is_int(used, size, "used covers the ext");
    ok(same_bytes(out.route, out.route_len, "github", 6), "route");
    ok(same_bytes(out.body, out.body_len, in.body, in.body_len), "body unchanged by the ext");
    is_int(out.n_headers, 3, "3 headers");
    pos = 0;
    for (size_t i = 0; i < 3; i++) {
        is_int(hb_record_hdr_next(&out, &pos, &h), 0, "header %zu", i);
        ok(same_bytes(h.name, h.name_len, hdrs[i].name, hdrs[i].name_len) &&
               same_bytes(h.value, h.value_len, hdrs[i].value, hdrs[i].value_len),
           "header %zu name and value", i);
    }
    is_int(hb_record_hdr_next(&out, &pos, &h), -1, "end of headers");
    /* every truncation is SHORT, and an ext that does not parse exactly is
     * CORRUPT even with valid checksums */
    int all_short = 1;
    for (size_t n = 0; n < size; n++)
        all_short &= decode_copy(buf, n) == HB_DECODE_SHORT;
    ok(all_short, "every prefix of an ext record is SHORT");
    unsigned char *bad = malloc(size);
    memcpy(bad, buf, size);
    put16(bad + size - (2 + 7 + 2), 0xffff); /* the last name_len points past the end */
    reseal_all(bad);
    is_int(decode_copy(bad, size), HB_DECODE_CORRUPT, "ext header past its end: CORRUPT");
    memcpy(bad, buf, size);
    put16(bad + HB_RECORD_HEADER + HB_RECORD_FIXED + in.topic_len + in.app_id_len + in.id_len +
              in.body_len,
          0);
    reseal_all(bad);
    is_int(decode_copy(bad, size), HB_DECODE_CORRUPT, "empty route name in an ext: CORRUPT");
    free(bad);
    free(buf);
}

int main(void)
{
    test_round_trip();
    test_route_ext();
    test_short_and_corrupt();
    test_back_to_back();
    test_commit_mark();
    return done_testing();
}
