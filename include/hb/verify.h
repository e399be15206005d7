/* The HMAC machinery under the signature schemes (hb/scheme.h, which the
 * routes use): key sets, per-thread prepared key contexts, constant-time
 * matching, and Intercom's `X-Hub-Signature: sha1=<hex HMAC-SHA1 of the
 * raw body>` verifier, which the intercom scheme calls as it is.
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
/* Build from n keys given as bytes (they may hold NULs: decoded base64
 * secrets); copies them. NULL when n is 0. */
hb_keyset_t *hb_keyset_new_bytes(size_t n, const unsigned char *const keys[], const size_t lens[]);

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

/* Bytes signed in pieces ("t", ".", body), hashed without joining them. */
typedef struct hb_span {
    const void *p;
    size_t n;
} hb_span_t;

/* A key context with one prepared HMAC per secret and per digest (e.g.
 * {"SHA256", "SHA1"} for a GitHub route that also accepts SHA-1). */
hb_keyctx_t *hb_keyctx_new_digests(hb_keyset_t *ks, const char *const digests[], size_t n_digests);
/* 1 when the HMAC (digest number `digest`) of the concatenated parts under
 * any secret equals any of the n_sigs candidate digests. Every secret and
 * every candidate is compared (CRYPTO_memcmp), whatever matched first. */
int hb_keyctx_match(hb_keyctx_t *kc, size_t digest, const hb_span_t *parts, size_t n_parts,
                    const unsigned char *const sigs[], const size_t siglens[], size_t n_sigs);
/* One-shot HMAC of the parts for signing (tests, tools); md holds
 * EVP_MAX_MD_SIZE (64). Returns the digest length, 0 on error. */
size_t hb_hmac_parts(const char *digest, const void *key, size_t keylen, const hb_span_t *parts,
                     size_t n_parts, unsigned char *md);

const char *hb_verify_result_str(hb_verify_result_t r);

/* Hex (either case) of s[0..n) into out (at most cap bytes): the decoded
 * length, or -1 when it is not hex or does not fit. */
int hb_hex_decode(const char *s, size_t n, unsigned char *out, size_t cap);

/* Compute "sha1=<hex>" for body with secret (tests and tools). out >= 46. */
void hb_verify_intercom_sign(const char *secret, const unsigned char *body, size_t len, char *out,
                             size_t outlen);

#endif
