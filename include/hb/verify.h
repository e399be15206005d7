/* Signature schemes behind one table of function pointers, so that other
 * providers (GitHub, Stripe, Shopify, Standard Webhooks) slot in beside
 * Intercom's `X-Hub-Signature: sha1=<hex HMAC-SHA1 of the raw body>`.
 *
 * A key set is immutable once built and shared by reference: SIGHUP builds
 * a new one and swaps it in (hb_keyset_ref/unref are thread-safe).
 *
 * A key context is one thread's prepared HMAC state for a key set (the
 * algorithm looked up and each key's pads derived once, not per request).
 * It is not thread-safe: each HTTP thread builds its own and keeps it until
 * the key set changes. */
#ifndef HB_VERIFY_H
#define HB_VERIFY_H

#include <stddef.h>

typedef struct hb_keyset hb_keyset_t;

/* Build from a comma-separated list; empty items are ignored. NULL if the
 * list holds no secret. The caller owns the one reference returned. */
hb_keyset_t *hb_keyset_new(const char *comma_list);
hb_keyset_t *hb_keyset_ref(hb_keyset_t *ks);
void hb_keyset_unref(hb_keyset_t *ks);
size_t hb_keyset_count(const hb_keyset_t *ks);

typedef struct hb_keyctx hb_keyctx_t;

typedef enum {
    HB_VERIFY_OK = 0,
    HB_VERIFY_MISSING,   /* no signature header */
    HB_VERIFY_MALFORMED, /* header present but not in the scheme's format */
    HB_VERIFY_MISMATCH   /* well-formed, matches no secret */
} hb_verify_result_t;

typedef struct hb_verifier_ops {
    const char *name;   /* provider, e.g. "intercom" */
    const char *header; /* request header carrying the signature */
    const char *digest; /* HMAC digest name for the key contexts, e.g. "SHA1" */
    /* header_value may be NULL (missing), kc too (never verifies).
     * Constant-time in the secret. */
    hb_verify_result_t (*verify)(hb_keyctx_t *kc, const char *header_value,
                                 const unsigned char *body, size_t len);
} hb_verifier_ops_t;

extern const hb_verifier_ops_t hb_verifier_intercom;

/* A key context for ops's scheme over ks (takes its own reference; ks may
 * be NULL: nothing verifies). Used by one thread at a time. */
hb_keyctx_t *hb_keyctx_new(const hb_verifier_ops_t *ops, hb_keyset_t *ks);
void hb_keyctx_free(hb_keyctx_t *kc);

const char *hb_verify_result_str(hb_verify_result_t r);

/* Compute "sha1=<hex>" for body with secret (tests and tools). out >= 46. */
void hb_verify_intercom_sign(const char *secret, const unsigned char *body, size_t len, char *out,
                             size_t outlen);

#endif
