/* Strict UTF-8, as jansson (and RFC 3629) define it: no overlong forms, no
 * encoded UTF-16 surrogates, nothing beyond U+10FFFF. Shared by the
 * envelope scanner (what a body may hold) and the JSON-lines writer (what
 * it may write). Pure. */
#ifndef HB_UTF8_H
#define HB_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Length of the well-formed sequence of 2 to 4 bytes at p (p < end), or 0
 * when there is none (ASCII included: callers handle it first). */
static inline size_t hb_utf8_seq(const unsigned char *p, const unsigned char *end)
{
    size_t n;
    uint32_t cp;
    if (p[0] >= 0xC2 && p[0] <= 0xDF)
        n = 2, cp = p[0] & 0x1Fu;
    else if (p[0] >= 0xE0 && p[0] <= 0xEF)
        n = 3, cp = p[0] & 0x0Fu;
    else if (p[0] >= 0xF0 && p[0] <= 0xF4)
        n = 4, cp = p[0] & 0x07u;
    else
        return 0;
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3Fu);
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || (n == 3 && cp < 0x800) ||
        (n == 4 && cp < 0x10000))
        return 0;
    return n;
}

#endif
