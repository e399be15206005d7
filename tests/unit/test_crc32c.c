/* CRC-32C: the check value, the iSCSI vectors (RFC 3720 B.4), chaining,
 * and agreement with a bit-at-a-time reference on random data of every
 * small length and alignment (the hardware path works 8 bytes at a time, so
 * the tails and unaligned starts are where it could go wrong). */
#include "test.h"

#include "hb/crc32c.h"

#include <stdlib.h>

/* The definition, one bit at a time, reflected polynomial 0x82F63B78. */
static uint32_t ref_crc32c(uint32_t crc, const unsigned char *p, size_t n)
{
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = crc & 1 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    }
    return ~crc;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint32_t rng(void)
{
    /* xorshift64*: deterministic, so a failure reproduces */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1Du) >> 32);
}

int main(void)
{
    /* the standard check value */
    is_int(hb_crc32c(0, "123456789", 9), 0xE3069283u, "crc32c(\"123456789\") == 0xE3069283");
    is_int(ref_crc32c(0, (const unsigned char *)"123456789", 9), 0xE3069283u,
           "the reference implementation agrees on the check value");

    /* empty input: crc 0 stays 0, and any crc passes through unchanged */
    is_int(hb_crc32c(0, "", 0), 0, "empty input gives 0");
    is_int(hb_crc32c(0, NULL, 0), 0, "empty input with a NULL pointer gives 0");
    is_int(hb_crc32c(0xE3069283u, "x", 0), 0xE3069283u, "empty input leaves a chained crc as is");

    /* RFC 3720 B.4 */
    unsigned char v[32];
    memset(v, 0, sizeof(v));
    is_int(hb_crc32c(0, v, 32), 0x8A9136AAu, "32 zero bytes (RFC 3720)");
    memset(v, 0xff, sizeof(v));
    is_int(hb_crc32c(0, v, 32), 0x62A8AB43u, "32 0xff bytes (RFC 3720)");
    for (int i = 0; i < 32; i++)
        v[i] = (unsigned char)i;
    is_int(hb_crc32c(0, v, 32), 0x46DD794Eu, "32 incrementing bytes (RFC 3720)");
    for (int i = 0; i < 32; i++)
        v[i] = (unsigned char)(31 - i);
    is_int(hb_crc32c(0, v, 32), 0x113FDB5Cu, "32 decrementing bytes (RFC 3720)");

    /* a single byte differs from its neighbour (no constant output) */
    ok(hb_crc32c(0, "a", 1) != hb_crc32c(0, "b", 1), "different bytes give different crcs");

    /* chaining: crc(a+b) == crc(crc(a), b) at every split point */
    const char *ab = "The quick brown fox jumps over the lazy dog";
    size_t ablen = strlen(ab);
    uint32_t whole = hb_crc32c(0, ab, ablen);
    is_int(whole, 0x22620404u, "crc32c of the quick brown fox");
    int chain_ok = 1;
    for (size_t split = 0; split <= ablen; split++)
        if (hb_crc32c(hb_crc32c(0, ab, split), ab + split, ablen - split) != whole)
            chain_ok = 0;
    ok(chain_ok, "crc(a+b) == crc(crc(a), b) at every split of a 43-byte string");

    /* every length 0..300 at every alignment 0..15 against the reference */
    size_t big = 1 << 20;
    unsigned char *buf = malloc(big + 16);
    for (size_t i = 0; i < big + 16; i++)
        buf[i] = (unsigned char)rng();
    int small_ok = 1;
    for (size_t align = 0; align < 16 && small_ok; align++)
        for (size_t len = 0; len <= 300 && small_ok; len++)
            if (hb_crc32c(0, buf + align, len) != ref_crc32c(0, buf + align, len)) {
                diag("mismatch at alignment %zu length %zu", align, len);
                small_ok = 0;
            }
    ok(small_ok, "matches the bit-wise reference for lengths 0..300 at alignments 0..15");

    /* a large random buffer: one call, the reference, byte by byte chained,
     * and random-sized chunks chained all agree */
    uint32_t one = hb_crc32c(0, buf + 3, big);
    is_int(one, ref_crc32c(0, buf + 3, big), "1 MiB random buffer matches the reference");
    uint32_t c = 0;
    for (size_t i = 0; i < big; i++)
        c = hb_crc32c(c, buf + 3 + i, 1);
    is_int(c, one, "1 MiB random buffer: byte by byte chained == one call");
    c = 0;
    for (size_t off = 0; off < big;) {
        size_t n = rng() % 5000;
        if (n > big - off)
            n = big - off;
        c = hb_crc32c(c, buf + 3 + off, n);
        off += n;
    }
    is_int(c, one, "1 MiB random buffer: random-sized chunks chained == one call");

    /* a single flipped bit anywhere changes the crc */
    int flip_ok = 1;
    for (int t = 0; t < 64; t++) {
        size_t pos = rng() % 4096;
        uint32_t before = hb_crc32c(0, buf, 4096);
        buf[pos] ^= (unsigned char)(1u << (rng() % 8));
        if (hb_crc32c(0, buf, 4096) == before)
            flip_ok = 0;
    }
    ok(flip_ok, "a single flipped bit always changes the crc of a 4 KiB block");

    free(buf);
    return done_testing();
}
