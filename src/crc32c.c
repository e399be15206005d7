/* CRC-32C. See include/hb/crc32c.h. The tables are built once on first
 * use; the hardware path is chosen once by cpuid.
 *
 * The SSE 4.2 crc32 instruction takes 3 cycles and depends on its previous
 * result, but a new one can start every cycle: one stream over a buffer
 * runs at a third of what the CPU can do. So the hardware path runs three
 * independent streams over three consecutive blocks of a buffer and joins
 * them (Mark Adler's crc32c.c): the crc of A followed by B is the crc of A
 * pushed through |B| zero bytes, xor the crc of B begun at 0. Pushing a
 * crc through a fixed number of zero bytes is linear in its 32 bits, so a
 * table per byte of the crc (4 x 256 entries) does it in four look-ups.
 * Blocks come in three fixed sizes, each with its table; what is left after
 * the last triple of the smallest blocks runs as one stream. */
#include "hb/fmacros.h"

#include "hb/crc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

/* block sizes of the three streams, multiples of 8 */
#define LONG_BLOCK 8192
#define SHORT_BLOCK 256
#define TINY_BLOCK 64

static uint32_t table[256];
static int use_hw;
static pthread_once_t once = PTHREAD_ONCE_INIT;
#if defined(__x86_64__)
/* [k][b]: the crc register holding byte b at byte k, pushed through
 * LONG_BLOCK (SHORT_BLOCK, TINY_BLOCK) zero bytes */
static uint32_t shift_long[4][256], shift_short[4][256], shift_tiny[4][256];

/* The crc register c (not inverted) pushed through n zero bytes. */
static uint32_t zeros_sw(uint32_t c, size_t n)
{
    while (n--)
        c = table[c & 0xff] ^ (c >> 8);
    return c;
}

static void make_shift_table(uint32_t t[4][256], size_t n)
{
    uint32_t bit[32];
    for (int i = 0; i < 32; i++)
        bit[i] = zeros_sw(1u << i, n);
    for (int k = 0; k < 4; k++)
        for (uint32_t b = 0; b < 256; b++) {
            uint32_t v = 0;
            for (int i = 0; i < 8; i++)
                if (b >> i & 1)
                    v ^= bit[8 * k + i];
            t[k][b] = v;
        }
}
#endif

static void init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        table[i] = c;
    }
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (__get_cpuid(1, &a, &b, &c, &d))
        use_hw = (c & bit_SSE4_2) != 0;
    if (use_hw) {
        make_shift_table(shift_long, LONG_BLOCK);
        make_shift_table(shift_short, SHORT_BLOCK);
        make_shift_table(shift_tiny, TINY_BLOCK);
    }
#endif
}

#if defined(__x86_64__)
static inline uint32_t shift(const uint32_t t[4][256], uint32_t c)
{
    return t[0][c & 0xff] ^ t[1][c >> 8 & 0xff] ^ t[2][c >> 16 & 0xff] ^ t[3][c >> 24];
}

static inline uint64_t load64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* The crc register c advanced over three consecutive blocks of `block`
 * bytes at p, as three streams. */
__attribute__((target("sse4.2"))) static inline uint32_t
crc_hw_triple(uint32_t c, const unsigned char *p, size_t block, const uint32_t t[4][256])
{
    uint64_t c0 = c, c1 = 0, c2 = 0;
    for (const unsigned char *end = p + block; p < end; p += 8) {
        c0 = __builtin_ia32_crc32di(c0, load64(p));
        c1 = __builtin_ia32_crc32di(c1, load64(p + block));
        c2 = __builtin_ia32_crc32di(c2, load64(p + 2 * block));
    }
    return shift(t, shift(t, (uint32_t)c0) ^ (uint32_t)c1) ^ (uint32_t)c2;
}

__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const unsigned char *p,
                                                         size_t n)
{
    for (; n >= 3 * LONG_BLOCK; p += 3 * LONG_BLOCK, n -= 3 * LONG_BLOCK)
        crc = crc_hw_triple(crc, p, LONG_BLOCK, shift_long);
    for (; n >= 3 * SHORT_BLOCK; p += 3 * SHORT_BLOCK, n -= 3 * SHORT_BLOCK)
        crc = crc_hw_triple(crc, p, SHORT_BLOCK, shift_short);
    for (; n >= 3 * TINY_BLOCK; p += 3 * TINY_BLOCK, n -= 3 * TINY_BLOCK)
        crc = crc_hw_triple(crc, p, TINY_BLOCK, shift_tiny);
    uint64_t c = crc;
    for (; n >= 8; p += 8, n -= 8)
        c = __builtin_ia32_crc32di(c, load64(p));
    uint32_t c32 = (uint32_t)c;
    while (n--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}
#endif

static uint32_t crc_sw(uint32_t crc, const unsigned char *p, size_t len)
{
    while (len--)
        crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

uint32_t hb_crc32c(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&once, init);
#if defined(__x86_64__)
    if (use_hw)
        return ~crc_hw(~crc, buf, len);
#endif
    return ~crc_sw(~crc, buf, len);
}

uint32_t hb_crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&once, init);
    return ~crc_sw(~crc, buf, len);
}
