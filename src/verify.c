/* Key sets, key contexts and HMAC matching. See include/hb/verify.h; the
 * providers' header formats are in src/scheme_*.c.
 *
 * A signature is decoded to raw bytes first and compared with
 * CRYPTO_memcmp against the HMAC of every configured secret (and every
 * candidate signature in the header), without stopping at the first
 * match, so timing does not reveal which secret (or how much of the
 * digest) matched.
 *
 * Cost per request: OpenSSL 3's one-shot HMAC() fetches the algorithm and
 * the digest from the provider and derives the key pads on every call. A
 * key context does that once per secret (EVP_MAC fetched once per process,
 * one EVP_MAC_CTX per secret initialised with its key); a request then
 * only re-initialises each context (EVP_MAC_init with a NULL key restores
 * the saved pad state) and hashes the body. */
#include "hb/fmacros.h"

#include "hb/verify.h"
#include "hb/log.h"
#include "hb/util.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <pthread.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>

struct hb_keyset {
    atomic_int refs;
    size_t n;
    char **secrets;
    size_t *lens;
};

hb_keyset_t *hb_keyset_new(const char *comma_list)
{
    hb_keyset_t *ks = hb_calloc(1, sizeof(*ks));
    atomic_init(&ks->refs, 1);
    const char *p = comma_list ? comma_list : "";
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *s = p;
        while (len && (*s == ' ' || *s == '\t'))
            s++, len--;
        while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
            len--;
        if (len) {
            ks->secrets = hb_realloc(ks->secrets, (ks->n + 1) * sizeof(char *));
            ks->lens = hb_realloc(ks->lens, (ks->n + 1) * sizeof(size_t));
            ks->secrets[ks->n] = hb_strndup(s, len);
            ks->lens[ks->n] = len;
            ks->n++;
        }
        p = comma ? comma + 1 : p + strlen(p);
    }
    if (ks->n == 0) {
        hb_keyset_unref(ks);
        return NULL;
    }
    return ks;
}

hb_keyset_t *hb_keyset_new_bytes(size_t n, const unsigned char *const keys[], const size_t lens[])
{
    if (n == 0)
        return NULL;
    hb_keyset_t *ks = hb_calloc(1, sizeof(*ks));
    atomic_init(&ks->refs, 1);
    ks->secrets = hb_calloc(n, sizeof(char *));
    ks->lens = hb_calloc(n, sizeof(size_t));
    for (size_t i = 0; i < n; i++) {
        ks->secrets[i] = hb_malloc(lens[i] + 1);
        memcpy(ks->secrets[i], keys[i], lens[i]);
        ks->secrets[i][lens[i]] = '\0';
        ks->lens[i] = lens[i];
    }
    ks->n = n;
    return ks;
}

hb_keyset_t *hb_keyset_ref(hb_keyset_t *ks)
{
    if (ks)
        atomic_fetch_add(&ks->refs, 1);
    return ks;
}

void hb_keyset_unref(hb_keyset_t *ks)
{
    if (!ks || atomic_fetch_sub(&ks->refs, 1) != 1)
        return;
    for (size_t i = 0; i < ks->n; i++) {
        OPENSSL_cleanse(ks->secrets[i], ks->lens[i]);
        free(ks->secrets[i]);
    }
    free(ks->secrets);
    free(ks->lens);
    free(ks);
}

size_t hb_keyset_count(const hb_keyset_t *ks)
{
    return ks ? ks->n : 0;
}

struct hb_keyctx {
    hb_keyset_t *ks; /* one reference: the secrets outlive their contexts */
    size_t n;        /* secrets */
    size_t n_digests;
    EVP_MAC_CTX *macs[]; /* [digest * n + secret], key already set */
};

static EVP_MAC *hmac_alg;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void hmac_fetch(void)
{
    hmac_alg = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
}

hb_keyctx_t *hb_keyctx_new_digests(hb_keyset_t *ks, const char *const digests[], size_t n_digests)
{
    pthread_once(&hmac_once, hmac_fetch);
    if (!hmac_alg)
        hb_oom("EVP_MAC_fetch(HMAC)"); /* the default provider always has it */
    size_t n = hb_keyset_count(ks);
    hb_keyctx_t *kc = hb_calloc(1, sizeof(*kc) + n * n_digests * sizeof(EVP_MAC_CTX *));
    kc->ks = hb_keyset_ref(ks);
    kc->n = n;
    kc->n_digests = n_digests;
    for (size_t d = 0; d < n_digests; d++) {
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)digests[d], 0),
            OSSL_PARAM_construct_end(),
        };
        for (size_t i = 0; i < n; i++) {
            EVP_MAC_CTX *m = kc->macs[d * n + i] = EVP_MAC_CTX_new(hmac_alg);
            if (!m || !EVP_MAC_init(m, (const unsigned char *)ks->secrets[i], ks->lens[i], params))
                hb_oom("EVP_MAC_init");
        }
    }
    return kc;
}

hb_keyctx_t *hb_keyctx_new(const hb_verifier_ops_t *ops, hb_keyset_t *ks)
{
    return hb_keyctx_new_digests(ks, &ops->digest, 1);
}

void hb_keyctx_free(hb_keyctx_t *kc)
{
    if (!kc)
        return;
    for (size_t i = 0; i < kc->n * kc->n_digests; i++)
        EVP_MAC_CTX_free(kc->macs[i]);
    hb_keyset_unref(kc->ks);
    free(kc);
}

/* HMAC of the parts with prepared context m into md (EVP_MAX_MD_SIZE);
 * its length, or 0. EVP_MAC_init with no key restores the saved pads. */
static size_t ctx_mac(EVP_MAC_CTX *m, const hb_span_t *parts, size_t n_parts, unsigned char *md)
{
    size_t mdlen = 0;
    if (!EVP_MAC_init(m, NULL, 0, NULL))
        return 0;
    for (size_t i = 0; i < n_parts; i++)
        if (!EVP_MAC_update(m, parts[i].p, parts[i].n))
            return 0;
    if (!EVP_MAC_final(m, md, &mdlen, EVP_MAX_MD_SIZE))
        return 0;
    return mdlen;
}

/* HMAC of body with secret i (first digest) into md; its length, or 0. */
static size_t keyctx_mac(hb_keyctx_t *kc, size_t i, const unsigned char *body, size_t len,
                         unsigned char *md)
{
    hb_span_t part = {body, len};
    return ctx_mac(kc->macs[i], &part, 1, md);
}

int hb_keyctx_match(hb_keyctx_t *kc, size_t digest, const hb_span_t *parts, size_t n_parts,
                    const unsigned char *const sigs[], const size_t siglens[], size_t n_sigs)
{
    int match = 0;
    if (!kc || digest >= kc->n_digests)
        return 0;
    for (size_t i = 0; i < kc->n; i++) {
        unsigned char md[EVP_MAX_MD_SIZE];
        size_t mdlen = ctx_mac(kc->macs[digest * kc->n + i], parts, n_parts, md);
        for (size_t k = 0; mdlen && k < n_sigs; k++)
            match |= siglens[k] == mdlen && CRYPTO_memcmp(sigs[k], md, mdlen) == 0;
        OPENSSL_cleanse(md, sizeof(md));
    }
    return match;
}

size_t hb_hmac_parts(const char *digest, const void *key, size_t keylen, const hb_span_t *parts,
                     size_t n_parts, unsigned char *md)
{
    pthread_once(&hmac_once, hmac_fetch);
    EVP_MAC_CTX *m = hmac_alg ? EVP_MAC_CTX_new(hmac_alg) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)digest, 0),
        OSSL_PARAM_construct_end(),
    };
    size_t mdlen = 0;
    /* HMAC accepts an empty key; OpenSSL wants a non-NULL pointer for it */
    if (m && EVP_MAC_init(m, keylen ? key : (const void *)"", keylen, params))
        mdlen = ctx_mac(m, parts, n_parts, md);
    EVP_MAC_CTX_free(m);
    return mdlen;
}

const char *hb_verify_result_str(hb_verify_result_t r)
{
    switch (r) {
    case HB_VERIFY_OK:
        return "ok";
    case HB_VERIFY_MISSING:
        return "missing signature";
    case HB_VERIFY_MALFORMED:
        return "malformed signature";
    case HB_VERIFY_MISMATCH:
        return "bad signature";
    }
    return "?";
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int hb_hex_decode(const char *s, size_t n, unsigned char *out, size_t cap)
{
    if (n % 2 || n / 2 > cap)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return (int)(n / 2);
}

/* Intercom: "sha1=" + 40 hex digits. Upper-case hex is accepted (the
 * digest is the same), surrounding spaces are not part of the value. */
static hb_verify_result_t intercom_verify(hb_keyctx_t *kc, const char *hv,
                                          const unsigned char *body, size_t len)
{
    unsigned char want[20], got[EVP_MAX_MD_SIZE];
    if (!hv)
        return HB_VERIFY_MISSING;
    while (*hv == ' ')
        hv++;
    if (strncasecmp(hv, "sha1=", 5) != 0)
        return HB_VERIFY_MALFORMED;
    hv += 5;
    size_t n = strlen(hv);
    while (n && hv[n - 1] == ' ')
        n--;
    if (n != 40 || hb_hex_decode(hv, n, want, sizeof(want)) != 20)
        return HB_VERIFY_MALFORMED;
    int match = 0;
    for (size_t i = 0; kc && i < kc->n; i++)
        match |= keyctx_mac(kc, i, body, len, got) == 20 && CRYPTO_memcmp(want, got, 20) == 0;
    return match ? HB_VERIFY_OK : HB_VERIFY_MISMATCH;
}

const hb_verifier_ops_t hb_verifier_intercom = {
    .name = "intercom",
    .header = "X-Hub-Signature",
    .digest = "SHA1",
    .verify = intercom_verify,
};

void hb_verify_intercom_sign(const char *secret, const unsigned char *body, size_t len, char *out,
                             size_t outlen)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    HMAC(EVP_sha1(), secret, (int)strlen(secret), body, len, md, &mdlen);
    size_t n = (size_t)snprintf(out, outlen, "sha1=");
    for (unsigned i = 0; i < mdlen && n + 2 < outlen; i++)
        n += (size_t)snprintf(out + n, outlen - n, "%02x", md[i]);
}
