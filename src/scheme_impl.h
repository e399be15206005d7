/* Private to the scheme modules (src/scheme*.c): the ops table each
 * provider fills, the built scheme, and the helpers they share. Nothing
 * outside them includes it; the contract is include/hb/scheme.h. */
#ifndef HB_SCHEME_IMPL_H
#define HB_SCHEME_IMPL_H

#include "hb/scheme.h"

#include <openssl/evp.h>

/* The route options a scheme reads: one set that does not apply is an
 * error in hb_scheme_new, so a typo'd or misplaced key is caught. */
enum {
    HB_OPT_ALLOW_SHA1 = 1 << 0,
    HB_OPT_PUBLIC_KEY = 1 << 1,
    HB_OPT_HEADER = 1 << 2,
    HB_OPT_ALGORITHM = 1 << 3,
    HB_OPT_ENCODING = 1 << 4,
    HB_OPT_PREFIX = 1 << 5,
    HB_OPT_SIGNED_PAYLOAD = 1 << 6,
    HB_OPT_ID_FIELD = 1 << 7,
    HB_OPT_TOPIC_FIELD = 1 << 8,
    HB_OPT_SOURCE_FIELD = 1 << 9,
    HB_OPT_TIMESTAMP_FIELD = 1 << 10,
};

/* Where a field is read: a request header or a JSON pointer into the body. */
typedef enum { HB_FIELD_NONE = 0, HB_FIELD_HEADER, HB_FIELD_POINTER } hb_field_kind_t;
typedef struct hb_field {
    hb_field_kind_t kind;
    const char *text; /* header name or RFC 6901 pointer, in the route config */
} hb_field_t;

/* One piece of the generic scheme's signed payload. */
typedef enum { HB_PART_TEXT, HB_PART_BODY, HB_PART_TIMESTAMP, HB_PART_ID } hb_part_kind_t;
typedef struct hb_part {
    hb_part_kind_t kind;
    const char *text; /* HB_PART_TEXT: into rc->signed_payload */
    size_t len;
} hb_part_t;

#define HB_SCHEME_MAX_PARTS 16
#define HB_SCHEME_MAX_SIGS 8 /* candidate signatures looked at in one header */

typedef struct hb_scheme_ops hb_scheme_ops_t;

struct hb_scheme {
    const hb_scheme_ops_t *ops;
    const hb_route_cfg_t *rc;
    int64_t tolerance_s;
    const char *digests[2]; /* HMAC digests prepared in the key contexts */
    size_t n_digests;
    /* standard and hmac: where id, topic, source and timestamp are read */
    hb_field_t id, topic, source, timestamp;
    /* standard: v1a public keys */
    EVP_PKEY **pkeys;
    size_t n_pkeys;
    /* hmac */
    size_t md_len;
    int base64;
    size_t prefix_len;
    hb_part_t parts[HB_SCHEME_MAX_PARTS];
    size_t n_parts;
};

struct hb_scheme_ops {
    const char *name;
    unsigned options;  /* HB_OPT_* it reads */
    int secret_base64; /* secrets are "whsec_" + base64 */
    /* parse the options of s->rc; err names the key. NULL: nothing to do */
    int (*init)(hb_scheme_t *s, char *err, size_t errlen);
    /* check the signature (and the replay window) before anything else;
     * kc may be NULL (nothing verifies) */
    hb_scheme_status_t (*verify)(const hb_scheme_t *s, hb_keyctx_t *kc, const hb_headers_t *h,
                                 const unsigned char *body, size_t len, int64_t now_s, char *why,
                                 size_t whylen);
    int json; /* parse the body into d->json (an object) before fields */
    /* read id, topic, source... into d (zeroed); OK, HANDSHAKE or
     * BAD_REQUEST (UNAUTHORIZED: a replay window only readable from the
     * body, checked when `verified`) */
    hb_scheme_status_t (*fields)(const hb_scheme_t *s, int verified, const hb_headers_t *h,
                                 const unsigned char *body, size_t len, int64_t now_s,
                                 hb_delivery_t *d, char *why, size_t whylen);
    /* schemes that sign the body alone: how, for hb_scheme_sign */
    struct {
        const char *digest; /* NULL: use sign */
        int base64;
        const char *header, *prefix;
        const char *id_header; /* carries hb_scheme_sign's id; NULL: none */
    } body_sig;
    /* headers a sender sends, key already decoded (when body_sig does not say) */
    int (*sign)(const hb_scheme_t *s, const unsigned char *key, size_t keylen,
                const unsigned char *body, size_t len, int64_t now_s, const char *id,
                char out[][2][256], size_t max);
};

extern const hb_scheme_ops_t hb_scheme_intercom, hb_scheme_github, hb_scheme_stripe,
    hb_scheme_shopify, hb_scheme_slack, hb_scheme_standard, hb_scheme_hmac;

/* ---- helpers (src/scheme.c) ---- */

/* Decoder into out (at most cap bytes): the decoded length, or -1 when
 * the text is not base64 (standard alphabet, padding optional) or does
 * not fit. hb_hex_decode is verify.c's. */
int hb_base64_decode(const char *s, size_t n, unsigned char *out, size_t cap);
/* NUL-terminated encodings into out (2n+1 / 4*ceil(n/3)+1 bytes). */
void hb_hex_encode(const unsigned char *p, size_t n, char *out);
void hb_base64_encode(const unsigned char *p, size_t n, char *out);

/* A header value "<prefix><hex of want bytes>" (prefix compared without
 * case, spaces around ignored) decoded into out: 0, or -1 if malformed. */
int hb_sig_hex(const char *v, const char *prefix, unsigned char *out, size_t want);

/* The request header `name`, or NULL. */
const char *hb_scheme_header(const hb_headers_t *h, const char *name);
/* A non-negative decimal integer (the whole of s[0..n)); -1 if it is not. */
int64_t hb_parse_seconds(const char *s, size_t n);
/* The replay window: OK, or UNAUTHORIZED with why saying how far out. */
hb_scheme_status_t hb_scheme_window(const hb_scheme_t *s, int64_t ts, int64_t now_s, char *why,
                                    size_t whylen);
/* 1 when the HMAC (digest number `digest`) of the parts under any secret
 * is want (wantlen bytes); see hb_keyctx_match. */
int hb_match_one(hb_keyctx_t *kc, size_t digest, const hb_span_t *parts, size_t n_parts,
                 const unsigned char *want, size_t wantlen);
/* HMAC of the parts with key, hex or base64 encoded into out (>= 129). */
void hb_mac_text(const char *digest, const unsigned char *key, size_t keylen,
                 const hb_span_t *parts, size_t n_parts, int base64, char *out);

/* Write the reason into why and return HB_SCHEME_UNAUTHORIZED. */
hb_scheme_status_t hb_scheme_unauthorized(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Parse the body into d->json: BAD_REQUEST with why unless a JSON object. */
hb_scheme_status_t hb_scheme_json(hb_delivery_t *d, const unsigned char *body, size_t len,
                                  char *why, size_t whylen);
/* RFC 6901 pointer into d->json; NULL when absent. */
void *hb_json_pointer(void *root, const char *ptr);
/* A string (without NUL inside) or an integer (as decimal text, kept in
 * d) at the JSON value j; NULL otherwise. */
const char *hb_json_text(hb_delivery_t *d, void *j);
/* A field's text from its header or pointer; NULL when absent. */
const char *hb_field_get(const hb_field_t *f, const hb_headers_t *h, hb_delivery_t *d);
/* Parse "header:Name" / "/pointer" / "" (none) for route key `key`. */
int hb_field_parse(hb_field_t *f, const hb_route_cfg_t *rc, const char *key, const char *text,
                   char *err, size_t errlen);

/* Keep a copy of s (n bytes) in d; returns it. */
const char *hb_delivery_keep(hb_delivery_t *d, const char *s, size_t n);
/* Forward request header `name` (lower-case) when present. */
void hb_delivery_forward(hb_delivery_t *d, const hb_headers_t *h, const char *name);

/* Fill one out[i] = {name, value}; returns i + 1, or -1 when it does not fit. */
int hb_sign_put(char out[][2][256], size_t max, int i, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
