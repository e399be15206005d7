/* Envelope extraction. See include/hb/event.h.
 *
 * Only `type` and `topic` are reliably present in a notification; every
 * other field may be missing, null, or (in old API versions) a number, so
 * scalars are turned into text and anything else counts as missing.
 *
 * Why not jansson: building a tree of a 1.5 KB body to read five top-level
 * fields cost a quarter of a request's CPU. One pass below validates the
 * whole body without allocating, remembers where the last value of each
 * wanted top-level key is (jansson keeps the last of duplicate keys too),
 * and decodes only those values.
 *
 * It accepts exactly what the code before it accepted: jansson 2.14's
 * json_loadb with JSON_ALLOW_NUL, retried with JSON_DECODE_INT_AS_REAL
 * when an integer is too big (tests/tools/envelope_ref.c keeps that code
 * as the oracle of tests/fuzz/fuzz_envelope_diff.c). jansson's rules, each
 * checked against the library:
 *  - RFC 8259 grammar; whitespace is space, tab, CR and LF; the top level
 *    must be an object or an array (an array is then refused as such);
 *  - the input is strict UTF-8 (no overlongs, no encoded surrogates,
 *    nothing beyond U+10FFFF); \u surrogates must come in pairs; \u0000
 *    is fine in a value but refused in any key, however deep;
 *  - every value, scalars included, counts towards a depth of at most
 *    2048 (JSON_PARSER_MAX_DEPTH): 2047 arrays around a 1 parse, 2048 not;
 *  - a number that overflows a double is refused, one that underflows is
 *    not;
 *  - an integer beyond 64 bits is fine, but then jansson re-reads the body
 *    with every integer as a real: no field is an integer any more, and an
 *    integer that overflows a double is refused;
 *  - jansson's lexer drops one NUL byte right after a number or a
 *    true/false/null (it puts the byte back, and its stream skips a put-back
 *    NUL), so `{"a":1<NUL>}` parses. Reproduced: whatever jansson accepted
 *    is still accepted, nothing more. */
#include "hb/fmacros.h"

#include "hb/event.h"
#include "hb/utf8.h"
#include "hb/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define MAX_DEPTH 2048 /* jansson's JSON_PARSER_MAX_DEPTH */
#define MAX_TOPIC 255
#define EXP_CAP 1000000000000000 /* exponents saturate here: far beyond any body */

/* 2^1024 - 2^970, the least number strtod rounds to infinity, as the digits
 * d.ddd of its d.ddd * 10^308 */
static const char dbl_overflow[] =
    "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017"
    "977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273"
    "854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704"
    "342711559699508093042880177904174497792";

enum { F_TOPIC, F_APP_ID, F_ID, F_DELIVERY_ATTEMPTS, F_CREATED_AT, F_COUNT, F_NONE = F_COUNT };

static const struct {
    const char *name;
    size_t len;
} field_names[F_COUNT] = {
    {"topic", 5}, {"app_id", 6}, {"id", 2}, {"delivery_attempts", 17}, {"created_at", 10},
};

typedef enum { K_MISSING = 0, K_OTHER, K_STRING, K_INTEGER } kind_t;

typedef struct {
    kind_t kind;
    const unsigned char *s; /* K_STRING: the raw bytes between the quotes */
    size_t n;
    int escaped; /* has a backslash, so needs decoding */
    int nul;     /* decodes to a string holding a NUL */
    int64_t i;   /* K_INTEGER */
} value_t;

/* The special bytes (see special8) of the 64 at base, a bit each: most
 * strings are short, so one classification serves several of them. The
 * body never changes, so the bits never go stale; the scan only moves
 * forward, so it never asks about a byte before base. */
typedef struct {
    const unsigned char *base;
    uint64_t bits;
} window_t;

typedef struct {
    const unsigned char *begin, *end;
    const char *err; /* why the body is not valid JSON, at byte err_off */
    size_t err_off;
    int root_object;
    int big_integer;    /* some integer is beyond 64 bits */
    value_t f[F_COUNT]; /* the last value of each wanted top-level key */
} scan_t;

/* Records why the body is refused and returns NULL, so that each step of
 * the scan, which returns where it ended, can fail with `return fail(..)`. */
static const unsigned char *fail(scan_t *s, const unsigned char *at, const char *why)
{
    s->err = why;
    s->err_off = (size_t)(at - s->begin);
    return NULL;
}

static int is_digit(unsigned c)
{
    return c - '0' < 10;
}

static int is_alpha(unsigned c)
{
    return (c | 0x20) - 'a' < 26;
}

/* space, tab, LF and CR, as one test of a bit in a word */
#define WS_BITS (1ull << ' ' | 1ull << '\t' | 1ull << '\n' | 1ull << '\r')

static const unsigned char *skip_ws(const unsigned char *p, const unsigned char *end)
{
    while (p < end && *p <= ' ' && (WS_BITS >> *p & 1))
        p++;
    return p;
}

/* The value of 4 hex digits at p, or -1. */
static int32_t hex4(const unsigned char *p, const unsigned char *end)
{
    if (end - p < 4)
        return -1;
    int32_t v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], lc = c | 0x20;
        if (is_digit(c))
            v = v << 4 | (int32_t)(c - '0');
        else if (lc >= 'a' && lc <= 'f')
            v = v << 4 | (int32_t)(lc - 'a' + 10);
        else
            return -1;
    }
    return v;
}

static size_t utf8_put(uint32_t cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A top bit set in each of the 8 bytes at p that is not printable ASCII
 * or is '"' or '\\': a byte below 0x20 borrows in x - 0x20.., '"' and '\\'
 * become 0 and borrow in (x ^ c..) - 0x01.., and a byte >= 0x80 sets its
 * own top bit. A borrow only starts at such a byte, so the lowest flagged
 * byte is exact; bytes above it may be flagged wrongly. */
static uint64_t special8(const unsigned char *p)
{
    const uint64_t ones = 0x0101010101010101u, top = 0x8080808080808080u;
    uint64_t x;
    memcpy(&x, p, 8);
    return ((x - 0x20 * ones) | ((x ^ '"' * ones) - ones) | ((x ^ '\\' * ones) - ones) | x) & top;
}

#if defined(__SSE2__) && !defined(HB_EVENT_NO_SIMD)
/* A bit set for each special byte (see special8) among the 16 at p. */
static inline unsigned special16(const unsigned char *p)
{
    __m128i b = _mm_loadu_si128((const void *)p);
    /* the compare is signed: a byte >= 0x80 is below ' ' too */
    __m128i special = _mm_or_si128(_mm_cmplt_epi8(b, _mm_set1_epi8(' ')),
                                   _mm_or_si128(_mm_cmpeq_epi8(b, _mm_set1_epi8('"')),
                                                _mm_cmpeq_epi8(b, _mm_set1_epi8('\\'))));
    return (unsigned)_mm_movemask_epi8(special);
}

static inline uint64_t special64(const unsigned char *p)
{
    return special16(p) | (uint64_t)special16(p + 16) << 16 | (uint64_t)special16(p + 32) << 32 |
           (uint64_t)special16(p + 48) << 48;
}
#endif

/* The first byte at or after p that does not stand for itself in a string
 * (see special8), or the end of the body. Such runs are most of any body.
 * With SSE2 (baseline on x86-64) the body is classified 64 bytes at a time
 * into a window_t kept by the scan: the next string's end is then a shift
 * and a count of trailing zeros, not another round of loads and compares
 * on the path from one string to the next. Elsewhere, and for the last
 * bytes, blocks of 16 or 8 bytes are tested and their first special byte
 * counted. HB_EVENT_NO_SIMD builds the portable path on x86 too, to test
 * it. */
static const unsigned char *skip_plain_slow(window_t *w, const unsigned char *p,
                                            const unsigned char *end)
{
#if defined(__SSE2__) && !defined(HB_EVENT_NO_SIMD)
    while (end - p >= 64) {
        size_t off = (size_t)(p - w->base); /* p never goes back before base */
        if (off >= 64) {
            w->base = p;
            w->bits = special64(p);
            off = 0;
        }
        uint64_t bits = w->bits >> off;
        if (bits)
            return p + __builtin_ctzll(bits);
        p = w->base + 64;
    }
    for (; end - p >= 16; p += 16) {
        unsigned mask = special16(p);
        if (mask)
            return p + __builtin_ctz(mask);
    }
#endif
    for (; end - p >= 8; p += 8) {
        uint64_t mask = special8(p);
        if (mask) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            return p + (__builtin_ctzll(mask) >> 3);
#else
            break; /* the first byte in memory is the word's highest */
#endif
        }
    }
    while (p < end && (unsigned)(*p - 0x20) < 0x60 && *p != '"' && *p != '\\')
        p++;
    return p;
}

/* skip_plain's common case, inlined: a special byte after p in the window.
 * (Before the first window, base is the body's start and bits are 0.) */
static inline const unsigned char *skip_plain(window_t *w, const unsigned char *p,
                                              const unsigned char *end)
{
    size_t off = (size_t)(p - w->base); /* p never goes back before base */
    uint64_t bits = off < 64 ? w->bits >> off : 0;
    return bits ? p + __builtin_ctzll(bits) : skip_plain_slow(w, p, end);
}

/* The rest of the string v from p, the first byte that skip_plain stopped
 * at; returns where it ends, past the closing quote. */
static const unsigned char *scan_string_rest(scan_t *s, window_t *w, const unsigned char *p,
                                             value_t *v)
{
    const unsigned char *end = s->end;
    v->escaped = v->nul = 0;
    for (;;) {
        p = skip_plain(w, p, end);
        if (p == end)
            return fail(s, p, "unterminated string");
        if (*p == '"')
            break;
        if (*p < 0x20)
            return fail(s, p, "control character in a string");
        if (*p >= 0x80) {
            size_t n = hb_utf8_seq(p, end);
            if (!n)
                return fail(s, p, "invalid UTF-8");
            p += n;
            continue;
        }
        v->escaped = 1;
        if (end - p < 2)
            return fail(s, p, "unterminated string");
        if (p[1] != 'u') {
            if (!memchr("\"\\/bfnrt", p[1], 8))
                return fail(s, p, "invalid escape");
            p += 2;
            continue;
        }
        int32_t cp = hex4(p + 2, end);
        if (cp < 0)
            return fail(s, p, "invalid \\u escape");
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            return fail(s, p, "unpaired UTF-16 surrogate");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (end - p < 8 || p[6] != '\\' || p[7] != 'u')
                return fail(s, p, "unpaired UTF-16 surrogate");
            int32_t lo = hex4(p + 8, end);
            if (lo < 0)
                return fail(s, p + 6, "invalid \\u escape");
            if (lo < 0xDC00 || lo > 0xDFFF)
                return fail(s, p, "unpaired UTF-16 surrogate");
            p += 12;
            continue;
        }
        if (cp == 0)
            v->nul = 1;
        p += 6;
    }
    v->n = (size_t)(p - v->s);
    return p + 1;
}

/* A string whose opening quote is just before p; returns where it ends,
 * past the closing quote. Most strings are plain to their quote, and this
 * part is small enough to be inlined into the scan loop. */
static inline const unsigned char *scan_string(scan_t *s, window_t *w, const unsigned char *p,
                                               value_t *v)
{
    const unsigned char *q = skip_plain(w, p, s->end);
    v->s = p;
    if (q < s->end && *q == '"') {
        v->n = (size_t)(q - p);
        v->escaped = v->nul = 0;
        return q + 1;
    }
    return scan_string_rest(s, w, q, v);
}

/* Decode a string that scan_string accepted into out (at least n bytes). */
static size_t unescape(const unsigned char *p, size_t n, char *out)
{
    const unsigned char *end = p + n;
    char *o = out;
    while (p < end) {
        if (*p != '\\') {
            *o++ = (char)*p++;
            continue;
        }
        unsigned c = p[1];
        p += 2;
        switch (c) {
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'n':
            *o++ = '\n';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 't':
            *o++ = '\t';
            break;
        case 'u': {
            uint32_t cp = (uint32_t)hex4(p, end);
            p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)hex4(p + 2, end) - 0xDC00);
                p += 6;
            }
            o += utf8_put(cp, o);
            break;
        }
        default: /* '"', '\\', '/' */
            *o++ = (char)c;
        }
    }
    return (size_t)(o - out);
}

/* Is the number with significant digits [p, end) (a '.' among them is
 * skipped) whose first digit stands for 10^mag too big for a double? */
static int overflows_double(const unsigned char *p, const unsigned char *end, int64_t mag)
{
    for (; p < end && (*p == '0' || *p == '.'); p++)
        mag -= *p == '0';
    if (p == end)
        return 0; /* zero */
    if (mag != 308)
        return mag > 308;
    size_t i = 0, n = sizeof(dbl_overflow) - 1;
    for (; p < end; p++) {
        if (*p == '.')
            continue;
        if (i == n || *p != (unsigned char)dbl_overflow[i])
            return i == n || *p > (unsigned char)dbl_overflow[i];
        i++;
    }
    return i == n; /* a shorter prefix of dbl_overflow is below it */
}

/* A number at p (a '-' or a digit); returns where it ends. An integer
 * within 64 bits becomes K_INTEGER; any other number only needs to fit a
 * double. */
static const unsigned char *scan_number(scan_t *s, const unsigned char *p, value_t *v)
{
    const unsigned char *end = s->end, *start = p;
    int neg = *p == '-';
    p += neg;
    if (p == end || !is_digit(*p))
        return fail(s, start, "invalid number");
    const unsigned char *digits = p;
    uint64_t u = 0; /* the integer part, read as it is scanned: one loop exit */
    if (*p == '0') {
        if (++p < end && is_digit(*p))
            return fail(s, start, "invalid number (leading zero)");
    } else {
        for (; p < end && is_digit(*p); p++)
            u = u * 10 + (unsigned)(*p - '0');
    }
    int64_t mag = (int64_t)(p - digits) - 1;
    int real = 0;
    if (p < end && *p == '.') {
        if (++p == end || !is_digit(*p))
            return fail(s, start, "invalid number");
        while (p < end && is_digit(*p))
            p++;
        real = 1;
    }
    const unsigned char *mantissa_end = p;
    if (p < end && (*p == 'e' || *p == 'E')) {
        int eneg = 0;
        int64_t e = 0;
        if (++p < end && (*p == '+' || *p == '-'))
            eneg = *p++ == '-';
        if (p == end || !is_digit(*p))
            return fail(s, start, "invalid number");
        for (; p < end && is_digit(*p); p++)
            if (e < EXP_CAP)
                e = e * 10 + (*p - '0');
        mag += eneg ? -e : e;
        real = 1;
    }
    if (!real) {
        /* with no leading zeros, up to 19 digits are below 2^64, so u is
         * exact; 20 or more are beyond 64 bits anyway */
        uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        if (mantissa_end - digits <= 19 && u <= limit) {
            v->kind = K_INTEGER;
            v->i = !neg ? (int64_t)u : u > (uint64_t)INT64_MAX ? INT64_MIN : -(int64_t)u;
            return p;
        }
        s->big_integer = 1;
    }
    if (overflows_double(digits, mantissa_end, mag))
        return fail(s, start, "number too large for a double");
    return p;
}

/* true, false or null at p; returns where it ends. jansson reads a whole
 * run of letters as one word, so a letter after it is refused. */
static const unsigned char *scan_literal(scan_t *s, const unsigned char *p)
{
    size_t room = (size_t)(s->end - p), n = 0;
    if (room >= 4 && (memcmp(p, "true", 4) == 0 || memcmp(p, "null", 4) == 0))
        n = 4;
    else if (room >= 5 && memcmp(p, "false", 5) == 0)
        n = 5;
    if (n == 0 || (n < room && is_alpha(p[n])))
        return fail(s, p, "invalid literal");
    return p + n;
}

static int field_of(const value_t *key)
{
    const unsigned char *name = key->s;
    size_t n = key->n;
    char buf[6 * 17]; /* the longest wanted name, each byte written as \u00XX */
    if (key->escaped) {
        if (n > sizeof(buf))
            return F_NONE;
        n = unescape(key->s, key->n, buf);
        name = (const unsigned char *)buf;
    }
    for (int f = 0; f < F_COUNT; f++)
        if (n == field_names[f].len && memcmp(name, field_names[f].name, n) == 0)
            return f;
    return F_NONE;
}

typedef enum { S_VALUE, S_KEY, S_NEXT } state_t;

/* The whole body, iteratively: a bit per open container says whether it is
 * an object, so depth costs no stack frames. The cursor lives in a local,
 * not in *s: stores through the byte pointers could alias s, which would
 * make the compiler reload it after each. Returns the end of the body, or
 * NULL. */
static const unsigned char *scan(scan_t *s)
{
    const unsigned char *p = s->begin, *end = s->end;
    unsigned char is_object[MAX_DEPTH / 8];
    size_t depth = 0;
    int in_object = 0;  /* the innermost open container's bit, read at every comma */
    int field = F_NONE; /* the wanted top-level key whose value comes next */
    state_t st = S_VALUE;
    window_t win = {p, 0};
    p = skip_ws(p, end);
    if (p == end)
        return fail(s, p, "empty body");
    if (*p != '{' && *p != '[')
        return fail(s, p, "expected '{'");
    s->root_object = *p == '{';
#if defined(__SSE2__) && !defined(HB_EVENT_NO_SIMD)
    if (end - p >= 64) { /* else skip_plain never looks at the window */
        win.base = p;
        win.bits = special64(p);
    }
#endif
    for (;;) {
        switch (st) {
        case S_VALUE: {
            p = skip_ws(p, end);
            if (p == end)
                return fail(s, p, "unexpected end of body");
            if (depth == MAX_DEPTH)
                return fail(s, p, "nested deeper than 2048");
            value_t other, *v = field == F_NONE ? &other : &s->f[field];
            field = F_NONE;
            v->kind = K_OTHER;
            unsigned c = *p;
            st = S_NEXT;
            if (c == '"') {
                p = scan_string(s, &win, p + 1, v);
                if (!p)
                    return NULL;
                v->kind = K_STRING;
            } else if (c == '{' || c == '[') {
                unsigned bit = 1u << (depth & 7);
                is_object[depth / 8] = (unsigned char)(c == '{' ? is_object[depth / 8] | bit
                                                                : is_object[depth / 8] & ~bit);
                p = skip_ws(p + 1, end);
                if (p < end && *p == (c == '{' ? '}' : ']'))
                    p++; /* empty: closed at once */
                else
                    depth++, in_object = c == '{', st = in_object ? S_KEY : S_VALUE;
            } else {
                if (c == '-' || is_digit(c))
                    p = scan_number(s, p, v);
                else if (is_alpha(c))
                    p = scan_literal(s, p);
                else
                    return fail(s, p, "unexpected character");
                if (!p)
                    return NULL;
                if (p < end && *p == '\0')
                    p++; /* jansson's lexer loses it (see the top of the file) */
            }
            break;
        }
        case S_KEY: {
            /* between tokens, the expected byte is tested before whitespace:
             * whitespace is rare in a notification, and the test costs */
            if (p == end || *p != '"') {
                p = skip_ws(p, end);
                if (p == end || *p != '"')
                    return fail(s, p, "expected a string key");
            }
            const unsigned char *at = p;
            value_t key;
            p = scan_string(s, &win, p + 1, &key);
            if (!p)
                return NULL;
            if (key.nul)
                return fail(s, at, "NUL in an object key");
            if (depth == 1)
                field = field_of(&key);
            if (p == end || *p != ':') {
                p = skip_ws(p, end);
                if (p == end || *p != ':')
                    return fail(s, p, "expected ':'");
            }
            p++;
            st = S_VALUE;
            break;
        }
        case S_NEXT: {
            unsigned close = in_object ? '}' : ']';
            if (depth == 0 || p == end || (*p != ',' && *p != close))
                p = skip_ws(p, end);
            if (depth == 0)
                return p == end ? p : fail(s, p, "data after the JSON value");
            if (p < end && *p == ',') {
                p++;
                st = in_object ? S_KEY : S_VALUE;
            } else if (p < end && *p == close) {
                p++;
                depth--;
                in_object = depth > 0 && (is_object[(depth - 1) / 8] >> ((depth - 1) & 7) & 1);
            } else {
                return fail(s, p, in_object ? "expected ',' or '}'" : "expected ',' or ']'");
            }
            break;
        }
        }
    }
}

enum { HEAP_TOPIC = 1, HEAP_APP_ID = 2, HEAP_ID = 4 };

/* Copy (decoding escapes) n raw bytes into the envelope's inline buffer,
 * or into the heap when they do not fit. */
static char *store(hb_envelope_t *env, size_t *used, unsigned heap_bit, const void *raw, size_t n,
                   int escaped, size_t *len)
{
    char *out;
    int inline_ = n < sizeof(env->inline_buf) - *used;
    if (inline_) {
        out = env->inline_buf + *used;
    } else {
        out = hb_malloc(n + 1);
        env->heap |= heap_bit;
    }
    if (escaped) {
        *len = unescape(raw, n, out);
    } else {
        memcpy(out, raw, n);
        *len = n;
    }
    out[*len] = '\0';
    if (inline_)
        *used += *len + 1;
    return out;
}

static char *scalar_text(hb_envelope_t *env, size_t *used, unsigned heap_bit, const value_t *v,
                         int big_integer, size_t *len)
{
    /* a string with a NUL in it cannot be a routing key: treat as absent */
    if (v->kind == K_STRING && !v->nul)
        return store(env, used, heap_bit, v->s, v->n, v->escaped, len);
    if (v->kind == K_INTEGER && !big_integer) {
        char buf[24];
        int n = snprintf(buf, sizeof(buf), "%" PRId64, v->i);
        return store(env, used, heap_bit, buf, (size_t)n, 0, len);
    }
    *len = 0;
    return NULL;
}

static int64_t int_field(const value_t *v, int big_integer)
{
    return v->kind == K_INTEGER && !big_integer ? v->i : -1;
}

int hb_envelope_parse(const char *body, size_t len, hb_envelope_t *env, char *why, size_t whylen)
{
    env->topic = env->app_id = env->id = NULL;
    env->topic_len = env->app_id_len = env->id_len = 0;
    env->delivery_attempts = env->created_at = -1;
    env->heap = 0;
    if (!body || len == 0) {
        snprintf(why, whylen, "body is not valid JSON (empty body)");
        return -1;
    }
    scan_t s;
    memset(&s, 0, sizeof(s));
    s.begin = (const unsigned char *)body;
    s.end = s.begin + len;
    if (!scan(&s)) {
        snprintf(why, whylen, "body is not valid JSON (byte %zu: %s)", s.err_off, s.err);
        return -1;
    }
    if (!s.root_object) {
        snprintf(why, whylen, "body is not a JSON object");
        return -1;
    }
    const value_t *topic = &s.f[F_TOPIC];
    if (topic->kind != K_STRING) {
        snprintf(why, whylen, "body has no string \"topic\"");
        return -1;
    }
    size_t used = 0;
    if (!topic->nul && topic->n > 0)
        env->topic =
            store(env, &used, HEAP_TOPIC, topic->s, topic->n, topic->escaped, &env->topic_len);
    if (!env->topic || env->topic_len > MAX_TOPIC) {
        hb_envelope_clear(env);
        snprintf(why, whylen, "\"topic\" must be 1 to %d characters, without NUL", MAX_TOPIC);
        return -1;
    }
    env->app_id =
        scalar_text(env, &used, HEAP_APP_ID, &s.f[F_APP_ID], s.big_integer, &env->app_id_len);
    env->id = scalar_text(env, &used, HEAP_ID, &s.f[F_ID], s.big_integer, &env->id_len);
    env->delivery_attempts = int_field(&s.f[F_DELIVERY_ATTEMPTS], s.big_integer);
    env->created_at = int_field(&s.f[F_CREATED_AT], s.big_integer);
    return 0;
}

void hb_envelope_clear(hb_envelope_t *env)
{
    if (env->heap & HEAP_TOPIC)
        free(env->topic);
    if (env->heap & HEAP_APP_ID)
        free(env->app_id);
    if (env->heap & HEAP_ID)
        free(env->id);
    env->topic = env->app_id = env->id = NULL;
    env->topic_len = env->app_id_len = env->id_len = 0;
    env->delivery_attempts = env->created_at = -1;
    env->heap = 0;
}
