/* CRC-32C: the check value, the iSCSI vectors (RFC 3720 B.4), chaining,
 * and agreement with a bit-at-a-time reference on random data of every
 * small length and alignment (the hardware path works 8 bytes at a time, so
 * the tails and unaligned starts are where it could go wrong). The hardware
 * path runs three streams over blocks of 8192, 256 and 64 bytes and joins
 * them: known answers at each side of every such boundary, and the table
 * path and the hardware path agree on every length 0..4096. */
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

/* Known answers (computed bit by bit outside this code) for the first
 * len bytes of pattern(): lengths at and around each block and triple
 * boundary of the three-stream path, and past the end of each level. */
static const struct {
    size_t len;
    uint32_t crc;
} boundary_vectors[] = {
    {7, 0x3400C196u},     {8, 0xB3722367u},     {9, 0x4589635Du},     {63, 0xE78A3FC0u},
    {64, 0x18C093FEu},    {65, 0x0459CC51u},    {191, 0x2C87DBE1u},   {192, 0xFA3EDA76u},
    {193, 0x1CCA96C0u},   {199, 0xA5B09BFDu},   {200, 0xA0B360C9u},   {255, 0x61D761B8u},
    {256, 0x49631473u},   {257, 0x21A7BCA5u},   {767, 0x6FF0E683u},   {768, 0xA17CCCC2u},
    {769, 0x204A4F0Bu},   {967, 0xB4F634FDu},   {969, 0xD4DF4B7Cu},   {1600, 0x6B76EE6Eu},
    {8191, 0xF8D1D32Au},  {8192, 0x1AD410FFu},  {8193, 0x0D715713u},  {24575, 0xA85BE37Bu},
    {24576, 0xB9CAC31Fu}, {24577, 0xEEE2E1DAu}, {49152, 0xE55AE29Bu}, {50121, 0x4365FC3Eu},
};
#define PATTERN_LEN 50121

static void pattern(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)((((i * 167 + 13) >> 3) ^ i) & 0xff);
}

static void test_boundaries(void)
{
    unsigned char *p = malloc(PATTERN_LEN + 8);
    pattern(p, PATTERN_LEN);
    int known_ok = 1, sw_ok = 1, moved_ok = 1;
    for (size_t i = 0; i < sizeof(boundary_vectors) / sizeof(boundary_vectors[0]); i++) {
        size_t len = boundary_vectors[i].len;
        uint32_t want = boundary_vectors[i].crc;
        if (hb_crc32c(0, p, len) != want) {
            diag("length %zu: %08x, want %08x", len, hb_crc32c(0, p, len), want);
            known_ok = 0;
        }
        if (hb_crc32c_sw(0, p, len) != want)
            sw_ok = 0;
        /* the same bytes at an odd address */
        memmove(p + 3, p, len);
        if (hb_crc32c(0, p + 3, len) != want)
            moved_ok = 0;
        pattern(p, PATTERN_LEN);
    }
    ok(known_ok, "known answers at every block and triple boundary (hardware path if any)");
    ok(sw_ok, "known answers at every block and triple boundary (table path)");
    ok(moved_ok, "known answers at every boundary from an odd address");
    free(p);
}

/* Every length 0..4096 of random data, at a few alignments, and chained
 * from a random crc: the hardware path and the table path agree. */
static void test_hw_vs_sw(const unsigned char *buf)
{
    int same = 1;
    for (size_t align = 0; align < 8 && same; align += 3)
        for (size_t len = 0; len <= 4096 && same; len++) {
            uint32_t seed = len % 2 ? rng() : 0;
            if (hb_crc32c(seed, buf + align, len) != hb_crc32c_sw(seed, buf + align, len)) {
                diag("hardware and table differ at alignment %zu length %zu", align, len);
                same = 0;
            }
        }
    ok(same, "hardware and table paths agree on every length 0..4096");
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
    test_boundaries();
    test_hw_vs_sw(buf);

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
