/* Signature schemes: how one provider signs its deliveries and where each
 * delivery's id, topic and source (the tenant) are found. One table of
 * function pointers per provider (src/scheme_<provider>.c):
 *
 *   intercom  X-Hub-Signature: sha1=<hex HMAC-SHA1(body)>; body id/topic/app_id
 *   github    X-Hub-Signature-256: sha256=<hex>; X-GitHub-Delivery /
 *             X-GitHub-Event[.action] / repository.full_name or installation.id
 *   stripe    Stripe-Signature: t=..,v1=..; HMAC-SHA256("t.body"); id/type/account
 *   shopify   X-Shopify-Hmac-SHA256: base64; X-Shopify-Webhook-Id /
 *             X-Shopify-Topic / X-Shopify-Shop-Domain
 *   slack     X-Slack-Signature: v0=<hex HMAC-SHA256("v0:ts:body")>;
 *             event_id / event.type / team_id; url_verification answered
 *   standard  Standard Webhooks: webhook-id/-timestamp/-signature, v1 HMAC
 *             (whsec_ secrets) and v1a Ed25519 (whpk_ public keys)
 *   hmac      generic: header, algorithm, encoding, prefix, signed payload
 *             and fields configurable
 *
 * An hb_scheme_t is a scheme with its route's options parsed: immutable
 * once built, shared by every HTTP thread. Secrets live in an hb_keyset_t
 * (hb/verify.h, swapped on SIGHUP); each thread prepares its own key
 * context from it with hb_scheme_keyctx (not thread-safe, one per thread).
 *
 * Everything a client sends is untrusted: verification is constant-time in
 * the secret, every configured secret is tried, and the body is looked at
 * only after the signature matched. Timestamped schemes (stripe, slack,
 * standard, hmac with timestamp_field) refuse a timestamp more than
 * rc->tolerance_ms away from now, past or future; tolerance_ms <= 0 means
 * the providers' 300 s. Every scheme but intercom wants the body to be a
 * JSON object (400 otherwise) and reads it with jansson once verified. */
#ifndef HB_SCHEME_H
#define HB_SCHEME_H

#include <stddef.h>
#include <stdint.h>

#include "hb/config.h"
#include "hb/event.h"
#include "hb/verify.h"

typedef struct hb_scheme hb_scheme_t;

/* Build the scheme named rc->scheme (NULL or "" = intercom) with rc's
 * options; NULL with the reason in err ("route.<name>.<key>: why") when an
 * option is missing, malformed, or set (non-NULL, non-empty; allow_sha1
 * non-zero) on a scheme that does not read it. Which scheme reads which:
 * github allow_sha1; standard public_key, id_field, topic_field,
 * source_field; hmac header, algorithm, encoding, prefix, signed_payload,
 * id_field, topic_field, source_field, timestamp_field. Does not read
 * rc->secret (see hb_scheme_keyset). rc must outlive the scheme. */
hb_scheme_t *hb_scheme_new(const hb_route_cfg_t *rc, char *err, size_t errlen);
void hb_scheme_free(hb_scheme_t *s);
const char *hb_scheme_name(const hb_scheme_t *s); /* "github", ... */

/* 0 when the route verifies without a shared secret (a standard route
 * with public_key only: its v1a signatures need no key set), else 1. */
int hb_scheme_needs_secret(const hb_scheme_t *s);

/* The key set for this scheme from a comma list of secrets, decoded as the
 * scheme wants (standard: "whsec_" + base64, the prefix optional; the
 * others: the bytes as given, Stripe's "whsec_..." included). NULL with the
 * reason in err ("route.<name>.secret: ...", never the secret) if an entry
 * is malformed or the list is empty. The caller owns it. */
hb_keyset_t *hb_scheme_keyset(const hb_scheme_t *s, const char *secrets, char *err, size_t errlen);
/* One thread's prepared HMAC contexts for ks (ks may be NULL: then only a
 * standard route's v1a signatures can verify). Free with hb_keyctx_free. */
hb_keyctx_t *hb_scheme_keyctx(const hb_scheme_t *s, hb_keyset_t *ks);

/* Request headers as the route sees them: get returns the value of the
 * first header named `name` (case-insensitive), or NULL. */
typedef struct hb_headers {
    const char *(*get)(void *arg, const char *name);
    void *arg;
} hb_headers_t;

#define HB_DELIVERY_MAX_HEADERS 8

typedef struct hb_delivery_header {
    const char *name; /* lower-case, e.g. "x-github-event" */
    const char *value;
} hb_delivery_header_t;

/* What a verified delivery is routed on. Strings are NUL-terminated and
 * owned by the delivery (release with hb_delivery_clear); NULL when absent.
 * A delivery must not be copied or moved between read and clear. */
typedef struct hb_delivery {
    const char *id;     /* dedup key within the route; NULL = never deduplicated */
    const char *topic;  /* always set on HB_SCHEME_OK */
    const char *source; /* the tenant: app_id, repository, account, shop, team */
    size_t id_len, topic_len, source_len;
    int64_t delivery_attempts; /* -1 when the provider does not say */
    int64_t created_at;        /* -1 when the provider does not say */
    /* provider delivery headers that consumers need, forwarded by the sinks
     * (e.g. x-github-event, x-github-delivery) */
    hb_delivery_header_t headers[HB_DELIVERY_MAX_HEADERS];
    size_t n_headers;
    /* HB_SCHEME_HANDSHAKE: answer 200 with this body and content type, and
     * publish nothing (Slack's url_verification challenge) */
    const char *reply;
    const char *reply_type;
    /* storage, not part of the contract */
    hb_envelope_t env; /* intercom: the fast scanner's fields */
    void *json;        /* other schemes: the parsed body (a json_t) */
    char *heap[HB_DELIVERY_MAX_HEADERS + 8];
    size_t n_heap;
} hb_delivery_t;

typedef enum {
    HB_SCHEME_OK = 0,       /* verified, fields read: journal it */
    HB_SCHEME_HANDSHAKE,    /* verified, answer d->reply, publish nothing */
    HB_SCHEME_UNAUTHORIZED, /* 401: signature missing/malformed/wrong, or timestamp outside
                               the replay window */
    HB_SCHEME_BAD_REQUEST   /* 400: verified but the body or a required field is unusable */
} hb_scheme_status_t;

/* Verify the delivery when `verify` (kc NULL then never verifies, except a
 * standard route's v1a signatures, which need no key set; verify 0 skips
 * signature and replay window alike), check the replay window against
 * now_s (Unix seconds), then read its fields into d (d need not be
 * initialised). On anything but OK/HANDSHAKE d holds nothing and why has
 * a client-safe reason (never a secret or a computed digest), e.g.
 * "timestamp 1700000000 is 412 s in the past, outside the 300 s
 * tolerance". A signature that matches no secret gives the same reason
 * whether the secret or the body was wrong. Thread-safe given one kc per
 * thread. Call hb_delivery_clear after OK/HANDSHAKE (harmless otherwise). */
hb_scheme_status_t hb_scheme_read(const hb_scheme_t *s, hb_keyctx_t *kc, int verify,
                                  const hb_headers_t *h, const unsigned char *body, size_t len,
                                  int64_t now_s, hb_delivery_t *d, char *why, size_t whylen);
void hb_delivery_clear(hb_delivery_t *d);

/* Sign a body the way the scheme's provider does, for tests, tools and the
 * README's curl examples: fills the headers a sender would send (name,
 * value) into out (at most max), with timestamp now_s and id where the
 * scheme signs or carries them (github X-GitHub-Delivery, shopify
 * X-Shopify-Webhook-Id, standard webhook-id: required there). Headers
 * that are not signed (X-GitHub-Event, X-Shopify-Topic...) are the
 * caller's. Returns how many, or -1 (no secret, a standard route without
 * id, or max too small). Secret as in hb_scheme_keyset, one entry. */
int hb_scheme_sign(const hb_scheme_t *s, const char *secret, const unsigned char *body, size_t len,
                   int64_t now_s, const char *id, char out[][2][256], size_t max);

#endif
