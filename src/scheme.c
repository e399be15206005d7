/* Signature schemes: the parts every provider shares. See hb/scheme.h.
 *
 * hb_scheme_new picks the provider's ops table by rc->scheme, refuses
 * options that the provider does not read (a misplaced key is a typo until
 * proven otherwise) and lets the provider parse its own. Key sets and key
 * contexts are verify.c's, with one prepared HMAC per secret and digest.
 *
 * hb_scheme_read is called on an HTTP thread with that thread's key
 * context; everything here is re-entrant. Providers other than Intercom
 * parse the body with jansson once its signature matched; the Intercom
 * path (scheme_intercom.c) uses the envelope scanner and allocates
 * nothing more than it did before routes existed. */
#include "hb/fmacros.h"

#include "scheme_impl.h"

#include "hb/util.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/crypto.h>

static const hb_scheme_ops_t *const all_ops[] = {
    &hb_scheme_intercom, &hb_scheme_github,   &hb_scheme_stripe, &hb_scheme_shopify,
    &hb_scheme_slack,    &hb_scheme_standard, &hb_scheme_hmac,
};

#define DEFAULT_TOLERANCE_S 300 /* Stripe's, Slack's and Standard Webhooks' */

static int set(const char *v)
{
    return v && *v;
}

/* Each option with its key, so that "does not apply" names the key. */
static const struct {
    unsigned bit;
    const char *key;
    size_t off;
} string_opts[] = {
    {HB_OPT_PUBLIC_KEY, "public_key", offsetof(hb_route_cfg_t, public_key)},
    {HB_OPT_HEADER, "header", offsetof(hb_route_cfg_t, header)},
    {HB_OPT_ALGORITHM, "algorithm", offsetof(hb_route_cfg_t, algorithm)},
    {HB_OPT_ENCODING, "encoding", offsetof(hb_route_cfg_t, encoding)},
    {HB_OPT_PREFIX, "prefix", offsetof(hb_route_cfg_t, prefix)},
    {HB_OPT_SIGNED_PAYLOAD, "signed", offsetof(hb_route_cfg_t, signed_payload)},
    {HB_OPT_ID_FIELD, "id", offsetof(hb_route_cfg_t, id_field)},
    {HB_OPT_TOPIC_FIELD, "topic", offsetof(hb_route_cfg_t, topic_field)},
    {HB_OPT_SOURCE_FIELD, "source", offsetof(hb_route_cfg_t, source_field)},
    {HB_OPT_TIMESTAMP_FIELD, "timestamp", offsetof(hb_route_cfg_t, timestamp_field)},
};

hb_scheme_t *hb_scheme_new(const hb_route_cfg_t *rc, char *err, size_t errlen)
{
    const char *name = rc->name ? rc->name : "?";
    const char *scheme = set(rc->scheme) ? rc->scheme : "intercom";
    const hb_scheme_ops_t *ops = NULL;
    for (size_t i = 0; i < sizeof(all_ops) / sizeof(all_ops[0]); i++)
        if (strcmp(all_ops[i]->name, scheme) == 0)
            ops = all_ops[i];
    if (!ops) {
        snprintf(err, errlen,
                 "route.%s.scheme: unknown scheme '%s' (intercom, github, stripe, shopify, slack, "
                 "standard, hmac)",
                 name, scheme);
        return NULL;
    }
    if (rc->allow_sha1 && !(ops->options & HB_OPT_ALLOW_SHA1)) {
        snprintf(err, errlen, "route.%s.allow_sha1: does not apply to scheme %s", name, scheme);
        return NULL;
    }
    for (size_t i = 0; i < sizeof(string_opts) / sizeof(string_opts[0]); i++) {
        const char *v = *(char *const *)((const char *)rc + string_opts[i].off);
        if (set(v) && !(ops->options & string_opts[i].bit)) {
            snprintf(err, errlen, "route.%s.%s: does not apply to scheme %s", name,
                     string_opts[i].key, scheme);
            return NULL;
        }
    }
    hb_scheme_t *s = hb_calloc(1, sizeof(*s));
    s->ops = ops;
    s->rc = rc;
    /* rounded up without overflow: tolerance_ms may be INT64_MAX */
    s->tolerance_s = rc->tolerance_ms > 0 ? rc->tolerance_ms / 1000 + (rc->tolerance_ms % 1000 != 0)
                                          : DEFAULT_TOLERANCE_S;
    s->digests[0] = "SHA256";
    s->n_digests = 1;
    if (ops->init && ops->init(s, err, errlen) != 0) {
        hb_scheme_free(s);
        return NULL;
    }
    return s;
}

void hb_scheme_free(hb_scheme_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_pkeys; i++)
        EVP_PKEY_free(s->pkeys[i]);
    free(s->pkeys);
    free(s);
}

const char *hb_scheme_name(const hb_scheme_t *s)
{
    return s->ops->name;
}

int hb_scheme_needs_secret(const hb_scheme_t *s)
{
    return s->n_pkeys == 0;
}

/* The next comma-separated item of *p, trimmed of spaces and tabs. */
static int next_item(const char **p, const char **item, size_t *len)
{
    while (**p) {
        const char *comma = strchr(*p, ',');
        size_t n = comma ? (size_t)(comma - *p) : strlen(*p);
        const char *s = *p;
        *p = comma ? comma + 1 : *p + n;
        while (n && (*s == ' ' || *s == '\t'))
            s++, n--;
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        if (n) {
            *item = s;
            *len = n;
            return 1;
        }
    }
    return 0;
}

/* A secret as the scheme keys its HMAC with: standard's "whsec_" + base64
 * (the prefix optional, as in the reference libraries), else the bytes. */
static int decode_secret(const hb_scheme_t *s, const char *text, size_t n, unsigned char *out,
                         size_t cap)
{
    if (!s->ops->secret_base64) {
        if (n > cap)
            return -1;
        memcpy(out, text, n);
        return (int)n;
    }
    if (n >= 6 && memcmp(text, "whsec_", 6) == 0)
        text += 6, n -= 6;
    int k = hb_base64_decode(text, n, out, cap);
    return k > 0 ? k : -1;
}

#define MAX_SECRET 1024

hb_keyset_t *hb_scheme_keyset(const hb_scheme_t *s, const char *secrets, char *err, size_t errlen)
{
    const char *p = secrets ? secrets : "", *item;
    size_t len, n = 0;
    unsigned char **keys = NULL;
    size_t *lens = NULL;
    hb_keyset_t *ks = NULL;
    while (next_item(&p, &item, &len)) {
        unsigned char buf[MAX_SECRET];
        int k = decode_secret(s, item, len, buf, sizeof(buf));
        if (k < 0) {
            /* never the secret itself, not even a part of it */
            snprintf(err, errlen, "route.%s.secret: item %zu is not %s", s->rc->name, n + 1,
                     s->ops->secret_base64 ? "whsec_<base64>" : "a secret of at most 1024 bytes");
            OPENSSL_cleanse(buf, sizeof(buf));
            goto cleanup;
        }
        keys = hb_realloc(keys, (n + 1) * sizeof(*keys));
        lens = hb_realloc(lens, (n + 1) * sizeof(*lens));
        keys[n] = hb_malloc((size_t)k + 1);
        memcpy(keys[n], buf, (size_t)k);
        lens[n++] = (size_t)k;
        OPENSSL_cleanse(buf, sizeof(buf));
    }
    if (n == 0)
        snprintf(err, errlen, "route.%s.secret: no secret given", s->rc->name);
    else
        ks = hb_keyset_new_bytes(n, (const unsigned char *const *)keys, lens);
cleanup:
    for (size_t i = 0; i < n; i++) {
        OPENSSL_cleanse(keys[i], lens[i]);
        free(keys[i]);
    }
    free(keys);
    free(lens);
    return ks;
}

hb_keyctx_t *hb_scheme_keyctx(const hb_scheme_t *s, hb_keyset_t *ks)
{
    return hb_keyctx_new_digests(ks, s->digests, s->n_digests);
}

hb_scheme_status_t hb_scheme_read(const hb_scheme_t *s, hb_keyctx_t *kc, int verify,
                                  const hb_headers_t *h, const unsigned char *body, size_t len,
                                  int64_t now_s, hb_delivery_t *d, char *why, size_t whylen)
{
    /* not the envelope's inline buffer: the scanner sets what it uses */
    memset(d, 0, offsetof(hb_delivery_t, env));
    d->env.heap = 0;
    d->json = NULL;
    d->n_heap = 0;
    d->delivery_attempts = d->created_at = -1;
    if (whylen)
        why[0] = '\0';
    hb_scheme_status_t st = HB_SCHEME_OK;
    if (verify)
        st = s->ops->verify(s, kc, h, body, len, now_s, why, whylen);
    if (st == HB_SCHEME_OK && s->ops->json)
        st = hb_scheme_json(d, body, len, why, whylen);
    if (st == HB_SCHEME_OK)
        st = s->ops->fields(s, verify, h, body, len, now_s, d, why, whylen);
    if (st == HB_SCHEME_OK && !d->topic) { /* every provider checks; never journal one */
        snprintf(why, whylen, "no topic in the delivery");
        st = HB_SCHEME_BAD_REQUEST;
    }
    if (st != HB_SCHEME_OK && st != HB_SCHEME_HANDSHAKE) {
        hb_delivery_clear(d);
        return st;
    }
    if (d->id && !d->id_len) /* providers that know the lengths set them */
        d->id_len = strlen(d->id);
    if (d->topic && !d->topic_len)
        d->topic_len = strlen(d->topic);
    if (d->source && !d->source_len)
        d->source_len = strlen(d->source);
    return st;
}

void hb_delivery_clear(hb_delivery_t *d)
{
    hb_envelope_clear(&d->env);
    json_decref(d->json);
    for (size_t i = 0; i < d->n_heap; i++)
        free(d->heap[i]);
    memset(d, 0, offsetof(hb_delivery_t, env));
    d->delivery_attempts = d->created_at = -1;
    d->json = NULL;
    d->n_heap = 0;
}

int hb_scheme_sign(const hb_scheme_t *s, const char *secret, const unsigned char *body, size_t len,
                   int64_t now_s, const char *id, char out[][2][256], size_t max)
{
    unsigned char key[MAX_SECRET];
    int k = secret ? decode_secret(s, secret, strlen(secret), key, sizeof(key)) : -1;
    int n = -1;
    if (k >= 0 && s->ops->body_sig.digest) {
        char sig[129];
        hb_span_t part = {body, len};
        hb_mac_text(s->ops->body_sig.digest, key, (size_t)k, &part, 1, s->ops->body_sig.base64,
                    sig);
        n = hb_sign_put(out, max, 0, s->ops->body_sig.header, "%s%s", s->ops->body_sig.prefix, sig);
        if (id && s->ops->body_sig.id_header)
            n = hb_sign_put(out, max, n, s->ops->body_sig.id_header, "%s", id);
    } else if (k >= 0 && s->ops->sign) {
        n = s->ops->sign(s, key, (size_t)k, body, len, now_s, id, out, max);
    }
    OPENSSL_cleanse(key, sizeof(key));
    return n;
}

/* ---- helpers ---- */

int hb_sig_hex(const char *v, const char *prefix, unsigned char *out, size_t want)
{
    size_t plen = strlen(prefix);
    while (*v == ' ' || *v == '\t')
        v++;
    if (strncasecmp(v, prefix, plen) != 0)
        return -1;
    v += plen;
    size_t n = strlen(v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    return n == 2 * want && hb_hex_decode(v, n, out, want) == (int)want ? 0 : -1;
}

void hb_hex_encode(const unsigned char *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64val(char c)
{
    const char *p = c ? strchr(b64, c) : NULL;
    return p ? (int)(p - b64) : -1;
}

int hb_base64_decode(const char *s, size_t n, unsigned char *out, size_t cap)
{
    while (n && s[n - 1] == '=')
        n--;
    if (n % 4 == 1)
        return -1;
    size_t len = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64val(s[i]);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (len == cap)
                return -1;
            out[len++] = (unsigned char)(acc >> bits);
        }
    }
    return (int)len;
}

void hb_base64_encode(const unsigned char *p, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        out[o++] = b64[v >> 18 & 63];
        out[o++] = b64[v >> 12 & 63];
        out[o++] = i + 1 < n ? b64[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? b64[v & 63] : '=';
    }
    out[o] = '\0';
}

const char *hb_scheme_header(const hb_headers_t *h, const char *name)
{
    return h && h->get ? h->get(h->arg, name) : NULL;
}

int64_t hb_parse_seconds(const char *s, size_t n)
{
    int64_t v = 0;
    if (n == 0 || n > 18)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

hb_scheme_status_t hb_scheme_window(const hb_scheme_t *s, int64_t ts, int64_t now_s, char *why,
                                    size_t whylen)
{
    int64_t off = now_s - ts;
    if (off > s->tolerance_s)
        return hb_scheme_unauthorized(why, whylen,
                                      "timestamp %" PRId64 " is %" PRId64
                                      " s in the past, outside the %" PRId64 " s tolerance",
                                      ts, off, s->tolerance_s);
    if (-off > s->tolerance_s)
        return hb_scheme_unauthorized(why, whylen,
                                      "timestamp %" PRId64 " is %" PRId64
                                      " s in the future, outside the %" PRId64 " s tolerance",
                                      ts, -off, s->tolerance_s);
    return HB_SCHEME_OK;
}

int hb_match_one(hb_keyctx_t *kc, size_t digest, const hb_span_t *parts, size_t n_parts,
                 const unsigned char *want, size_t wantlen)
{
    const unsigned char *sigs[] = {want};
    return hb_keyctx_match(kc, digest, parts, n_parts, sigs, &wantlen, 1);
}

void hb_mac_text(const char *digest, const unsigned char *key, size_t keylen,
                 const hb_span_t *parts, size_t n_parts, int base64, char *out)
{
    unsigned char md[64];
    size_t n = hb_hmac_parts(digest, key, keylen, parts, n_parts, md);
    if (base64)
        hb_base64_encode(md, n, out);
    else
        hb_hex_encode(md, n, out);
    OPENSSL_cleanse(md, sizeof(md));
}

hb_scheme_status_t hb_scheme_unauthorized(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return HB_SCHEME_UNAUTHORIZED;
}

hb_scheme_status_t hb_scheme_json(hb_delivery_t *d, const unsigned char *body, size_t len,
                                  char *why, size_t whylen)
{
    json_error_t e;
    json_t *j = json_loadb((const char *)body, len, JSON_ALLOW_NUL, &e);
    if (!j) {
        /* not e.text: jansson quotes the body there ("near '...'") */
        snprintf(why, whylen, "body is not valid JSON (at byte %d)", e.position);
        return HB_SCHEME_BAD_REQUEST;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        snprintf(why, whylen, "body is not a JSON object");
        return HB_SCHEME_BAD_REQUEST;
    }
    d->json = j;
    return HB_SCHEME_OK;
}

void *hb_json_pointer(void *root, const char *ptr)
{
    json_t *j = root;
    if (!j || !ptr || *ptr != '/')
        return NULL;
    while (j && *ptr == '/') {
        const char *end = strchr(ptr + 1, '/');
        size_t n = end ? (size_t)(end - ptr - 1) : strlen(ptr + 1);
        char tok[256];
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            char c = ptr[1 + i];
            if (c == '~') { /* RFC 6901: ~0 is '~', ~1 is '/' */
                char e = i + 1 < n ? ptr[2 + i] : '\0';
                if (e != '0' && e != '1')
                    return NULL;
                c = e == '0' ? '~' : '/';
                i++;
            }
            if (k + 1 >= sizeof(tok))
                return NULL;
            tok[k++] = c;
        }
        tok[k] = '\0';
        if (json_is_object(j)) {
            j = json_object_getn(j, tok, k);
        } else if (json_is_array(j)) {
            int64_t idx = hb_parse_seconds(tok, k);
            if (idx < 0 || (k > 1 && tok[0] == '0'))
                return NULL;
            j = json_array_get(j, (size_t)idx);
        } else {
            return NULL;
        }
        ptr += 1 + n;
    }
    return j;
}

const char *hb_json_text(hb_delivery_t *d, void *v)
{
    json_t *j = v;
    if (json_is_string(j)) {
        const char *s = json_string_value(j);
        /* an id cut at an escaped NUL would collide with another one */
        return strlen(s) == json_string_length(j) ? s : NULL;
    }
    if (json_is_integer(j)) {
        char buf[32];
        int n = snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(j));
        return hb_delivery_keep(d, buf, (size_t)n);
    }
    return NULL;
}

const char *hb_field_get(const hb_field_t *f, const hb_headers_t *h, hb_delivery_t *d)
{
    if (f->kind == HB_FIELD_HEADER) {
        const char *v = hb_scheme_header(h, f->text);
        return v ? hb_delivery_keep(d, v, strlen(v)) : NULL;
    }
    if (f->kind == HB_FIELD_POINTER)
        return hb_json_text(d, hb_json_pointer(d->json, f->text));
    return NULL;
}

int hb_field_parse(hb_field_t *f, const hb_route_cfg_t *rc, const char *key, const char *text,
                   char *err, size_t errlen)
{
    f->kind = HB_FIELD_NONE;
    f->text = NULL;
    if (!set(text))
        return 0;
    if (strncasecmp(text, "header:", 7) == 0 && text[7]) {
        f->kind = HB_FIELD_HEADER;
        f->text = text + 7;
        return 0;
    }
    if (text[0] == '/') {
        for (const char *t = strchr(text, '~'); t; t = strchr(t + 2, '~'))
            if (t[1] != '0' && t[1] != '1') {
                snprintf(err, errlen,
                         "route.%s.%s: '~' in a JSON pointer must be ~0 or ~1 (RFC 6901)", rc->name,
                         key);
                return -1;
            }
        f->kind = HB_FIELD_POINTER;
        f->text = text;
        return 0;
    }
    snprintf(err, errlen, "route.%s.%s: '%s' is neither header:<Name> nor a JSON pointer /a/b",
             rc->name, key, text);
    return -1;
}

const char *hb_delivery_keep(hb_delivery_t *d, const char *s, size_t n)
{
    if (d->n_heap == sizeof(d->heap) / sizeof(d->heap[0]))
        return NULL; /* more than any scheme keeps: a bug, read as absent */
    char *c = hb_strndup(s, n);
    d->heap[d->n_heap++] = c;
    return c;
}

void hb_delivery_forward(hb_delivery_t *d, const hb_headers_t *h, const char *name)
{
    const char *v = hb_scheme_header(h, name);
    if (!v || d->n_headers == HB_DELIVERY_MAX_HEADERS)
        return;
    const char *kept = hb_delivery_keep(d, v, strlen(v));
    if (!kept)
        return;
    d->headers[d->n_headers].name = name;
    d->headers[d->n_headers++].value = kept;
}

int hb_sign_put(char out[][2][256], size_t max, int i, const char *name, const char *fmt, ...)
{
    if (i < 0 || (size_t)i >= max)
        return -1;
    snprintf(out[i][0], sizeof(out[i][0]), "%s", name);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out[i][1], sizeof(out[i][1]), fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= sizeof(out[i][1]) ? -1 : i + 1;
}
