/* Journal record encoding. See include/hb/record.h. */
#include "hb/fmacros.h"

#include "hb/record.h"
#include "hb/crc32c.h"

#include <string.h>

static void put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint16_t get16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* Whether r needs an ext: a route other than the default, or headers. */
static int has_ext(const hb_record_t *r)
{
    if (r->n_headers)
        return 1;
    return r->route && !(r->route_len == sizeof(HB_RECORD_DEFAULT_ROUTE) - 1 &&
                         memcmp(r->route, HB_RECORD_DEFAULT_ROUTE, r->route_len) == 0);
}

static size_t ext_size(const hb_record_t *r)
{
    if (!has_ext(r))
        return 0;
    size_t n = 2 + (r->route ? r->route_len : 0) + 2;
    for (size_t i = 0; i < r->n_headers; i++)
        n += 4 + r->headers[i].name_len + r->headers[i].value_len;
    return n;
}

size_t hb_record_size(const hb_record_t *r)
{
    return HB_RECORD_HEADER + HB_RECORD_FIXED + r->topic_len + (r->app_id ? r->app_id_len : 0) +
           (r->id ? r->id_len : 0) + r->body_len + ext_size(r);
}

static unsigned char *put_str16(unsigned char *p, const char *s, size_t len)
{
    put16(p, (uint16_t)len);
    if (len)
        memcpy(p + 2, s, len);
    return p + 2 + len;
}

size_t hb_record_prepare(const hb_record_t *r, unsigned char *buf)
{
    size_t total = hb_record_size(r);
    unsigned char *p = buf + HB_RECORD_HEADER;
    size_t alen = r->app_id ? r->app_id_len : 0, ilen = r->id ? r->id_len : 0;
    uint16_t flags = (uint16_t)((r->app_id ? HB_REC_HAS_APP_ID : 0) | (r->id ? HB_REC_HAS_ID : 0));
    put64(p, r->received_at_ms);
    put64(p + 8, (uint64_t)r->delivery_attempts);
    put64(p + 16, (uint64_t)r->created_at);
    put16(p + 24, (uint16_t)r->topic_len);
    put16(p + 26, (uint16_t)alen);
    put16(p + 28, (uint16_t)ilen);
    put16(p + 30, flags);
    size_t xlen = ext_size(r);
    put32(p + 32, (uint32_t)r->body_len);
    put32(p + 36, (uint32_t)xlen);
    p += HB_RECORD_FIXED;
    memcpy(p, r->topic, r->topic_len);
    p += r->topic_len;
    if (alen)
        memcpy(p, r->app_id, alen);
    p += alen;
    if (ilen)
        memcpy(p, r->id, ilen);
    p += ilen;
    memcpy(p, r->body, r->body_len);
    p += r->body_len;
    if (xlen) {
        p = put_str16(p, r->route, r->route ? r->route_len : 0);
        put16(p, (uint16_t)r->n_headers);
        p += 2;
        for (size_t i = 0; i < r->n_headers; i++) {
            p = put_str16(p, r->headers[i].name, r->headers[i].name_len);
            p = put_str16(p, r->headers[i].value, r->headers[i].value_len);
        }
    }
    uint32_t plen = (uint32_t)(total - HB_RECORD_HEADER);
    put32(buf, HB_RECORD_MAGIC);
    put32(buf + 4, plen);
    put64(buf + 8, 0);
    put32(buf + 16, hb_crc32c(0, buf + HB_RECORD_HEADER, plen));
    put32(buf + 20, 0);
    return total;
}

void hb_record_seal(unsigned char *buf, uint64_t seq)
{
    put64(buf + 8, seq);
    put32(buf + 20, hb_crc32c(0, buf, 20));
}

void hb_commit_encode(const hb_commit_t *c, unsigned char *buf)
{
    unsigned char *p = buf + HB_RECORD_HEADER;
    put64(p, c->first_seq);
    put64(p + 8, c->batch_bytes);
    put64(p + 16, c->synced_end);
    put32(p + 24, c->batch_crc);
    put32(p + 28, 0);
    put32(buf, HB_COMMIT_MAGIC);
    put32(buf + 4, HB_COMMIT_SIZE - HB_RECORD_HEADER);
    put64(buf + 8, c->last_seq);
    put32(buf + 16, hb_crc32c(0, p, HB_COMMIT_SIZE - HB_RECORD_HEADER));
    put32(buf + 20, hb_crc32c(0, buf, 20));
}

uint32_t hb_commit_crc_add(uint32_t crc, const unsigned char *record)
{
    return hb_crc32c(crc, record, HB_RECORD_HEADER);
}

static hb_decode_t decode_commit(const unsigned char *buf, size_t avail, hb_commit_t *c,
                                 size_t *used)
{
    if (get32(buf + 4) != HB_COMMIT_SIZE - HB_RECORD_HEADER)
        return HB_DECODE_CORRUPT;
    if (avail < HB_COMMIT_SIZE)
        return HB_DECODE_SHORT;
    const unsigned char *p = buf + HB_RECORD_HEADER;
    if (hb_crc32c(0, p, HB_COMMIT_SIZE - HB_RECORD_HEADER) != get32(buf + 16))
        return HB_DECODE_CORRUPT;
    if (c) {
        c->last_seq = get64(buf + 8);
        c->first_seq = get64(p);
        c->batch_bytes = get64(p + 8);
        c->synced_end = get64(p + 16);
        c->batch_crc = get32(p + 24);
    }
    *used = HB_COMMIT_SIZE;
    return HB_DECODE_COMMIT;
}

static int decode_ext(const unsigned char *p, size_t xlen, hb_record_t *r);

hb_decode_t hb_record_decode(const unsigned char *buf, size_t avail, hb_record_t *r, size_t *used)
{
    hb_decode_t d = hb_record_decode_any(buf, avail, r, NULL, used);
    return d == HB_DECODE_COMMIT ? HB_DECODE_CORRUPT : d;
}

hb_decode_t hb_record_decode_any(const unsigned char *buf, size_t avail, hb_record_t *r,
                                 hb_commit_t *commit, size_t *used)
{
    if (avail < HB_RECORD_HEADER)
        return HB_DECODE_SHORT;
    if (get32(buf + 20) != hb_crc32c(0, buf, 20))
        return HB_DECODE_CORRUPT;
    if (get32(buf) == HB_COMMIT_MAGIC)
        return decode_commit(buf, avail, commit, used);
    if (get32(buf) != HB_RECORD_MAGIC)
        return HB_DECODE_CORRUPT;
    uint32_t plen = get32(buf + 4);
    if (plen < HB_RECORD_FIXED || plen > HB_RECORD_MAX_PAYLOAD)
        return HB_DECODE_CORRUPT;
    if (avail < HB_RECORD_HEADER + (size_t)plen)
        return HB_DECODE_SHORT;
    const unsigned char *p = buf + HB_RECORD_HEADER;
    if (hb_crc32c(0, p, plen) != get32(buf + 16))
        return HB_DECODE_CORRUPT;
    size_t tlen = get16(p + 24), alen = get16(p + 26), ilen = get16(p + 28);
    uint16_t flags = get16(p + 30);
    size_t blen = get32(p + 32), xlen = get32(p + 36);
    if (xlen > plen || HB_RECORD_FIXED + tlen + alen + ilen + blen + xlen != plen)
        return HB_DECODE_CORRUPT;
    r->seq = get64(buf + 8);
    r->received_at_ms = get64(p);
    r->delivery_attempts = (int64_t)get64(p + 8);
    r->created_at = (int64_t)get64(p + 16);
    p += HB_RECORD_FIXED;
    r->topic = (const char *)p;
    r->topic_len = tlen;
    p += tlen;
    r->app_id = flags & HB_REC_HAS_APP_ID ? (const char *)p : NULL;
    r->app_id_len = alen;
    p += alen;
    r->id = flags & HB_REC_HAS_ID ? (const char *)p : NULL;
    r->id_len = ilen;
    p += ilen;
    r->body = p;
    r->body_len = blen;
    p += blen;
    r->route = HB_RECORD_DEFAULT_ROUTE;
    r->route_len = sizeof(HB_RECORD_DEFAULT_ROUTE) - 1;
    r->headers = NULL;
    r->n_headers = 0;
    r->hdr_block = NULL;
    r->hdr_block_len = 0;
    if (xlen && decode_ext(p, xlen, r) < 0)
        return HB_DECODE_CORRUPT;
    *used = HB_RECORD_HEADER + plen;
    return HB_DECODE_OK;
}

/* Length-prefixed string at *p within end; advances *p. */
static int get_str16(const unsigned char **p, const unsigned char *end, const char **s, size_t *len)
{
    if (end - *p < 2)
        return -1;
    size_t n = get16(*p);
    if ((size_t)(end - *p - 2) < n)
        return -1;
    *s = (const char *)*p + 2;
    *len = n;
    *p += 2 + n;
    return 0;
}

static int decode_ext(const unsigned char *p, size_t xlen, hb_record_t *r)
{
    const unsigned char *end = p + xlen;
    const char *route;
    size_t route_len;
    if (get_str16(&p, end, &route, &route_len) < 0 || route_len == 0 || end - p < 2)
        return -1;
    size_t n = get16(p);
    p += 2;
    r->hdr_block = p;
    r->hdr_block_len = (size_t)(end - p);
    /* every header must be whole, and nothing may follow the last */
    for (size_t i = 0; i < n; i++) {
        const char *s;
        size_t l;
        if (get_str16(&p, end, &s, &l) < 0 || get_str16(&p, end, &s, &l) < 0)
            return -1;
    }
    if (p != end)
        return -1;
    r->route = route;
    r->route_len = route_len;
    r->n_headers = n;
    return 0;
}

int hb_record_hdr_next(const hb_record_t *r, size_t *pos, hb_record_hdr_t *h)
{
    if (!r->hdr_block || *pos >= r->hdr_block_len)
        return -1;
    const unsigned char *p = r->hdr_block + *pos, *end = r->hdr_block + r->hdr_block_len;
    if (get_str16(&p, end, &h->name, &h->name_len) < 0 ||
        get_str16(&p, end, &h->value, &h->value_len) < 0)
        return -1;
    *pos = (size_t)(p - r->hdr_block);
    return 0;
}
