/* Signature schemes. See include/hb/verify.h.
 *
 * The header is decoded to raw bytes first and compared with CRYPTO_memcmp
 * against the HMAC of every configured secret, without stopping at the
 * first match, so timing does not reveal which secret (or how much of the
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
    size_t n;
    EVP_MAC_CTX *macs[]; /* one per secret, key already set */
};

static EVP_MAC *hmac_alg;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void hmac_fetch(void)
{
    hmac_alg = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
}

hb_keyctx_t *hb_keyctx_new(const hb_verifier_ops_t *ops, hb_keyset_t *ks)
{
    pthread_once(&hmac_once, hmac_fetch);
    if (!hmac_alg)
        hb_oom("EVP_MAC_fetch(HMAC)"); /* the default provider always has it */
    size_t n = hb_keyset_count(ks);
    hb_keyctx_t *kc = hb_calloc(1, sizeof(*kc) + n * sizeof(EVP_MAC_CTX *));
    kc->ks = hb_keyset_ref(ks);
    kc->n = n;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)ops->digest, 0),
        OSSL_PARAM_construct_end(),
    };
    for (size_t i = 0; i < n; i++) {
        kc->macs[i] = EVP_MAC_CTX_new(hmac_alg);
        if (!kc->macs[i] ||
            !EVP_MAC_init(kc->macs[i], (const unsigned char *)ks->secrets[i], ks->lens[i], params))
            hb_oom("EVP_MAC_init");
    }
    return kc;
}

void hb_keyctx_free(hb_keyctx_t *kc)
{
    if (!kc)
        return;
    for (size_t i = 0; i < kc->n; i++)
        EVP_MAC_CTX_free(kc->macs[i]);
    hb_keyset_unref(kc->ks);
    free(kc);
}

/* HMAC of body with secret i into md (EVP_MAX_MD_SIZE); its length, or 0. */
static size_t keyctx_mac(hb_keyctx_t *kc, size_t i, const unsigned char *body, size_t len,
                         unsigned char *md)
{
    size_t mdlen = 0;
    EVP_MAC_CTX *m = kc->macs[i];
    if (!EVP_MAC_init(m, NULL, 0, NULL) || !EVP_MAC_update(m, body, len) ||
        !EVP_MAC_final(m, md, &mdlen, EVP_MAX_MD_SIZE))
        return 0;
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

/* Intercom: "sha1=" + 40 hex digits. Upper-case hex is accepted (the
 * digest is the same), surrounding whitespace is not part of the value. */
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
    for (int i = 0; i < 20; i++) {
        int hi = hexval(hv[2 * i]), lo = hi < 0 ? -1 : hexval(hv[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return HB_VERIFY_MALFORMED;
        want[i] = (unsigned char)(hi << 4 | lo);
    }
    for (const char *t = hv + 40; *t; t++)
        if (*t != ' ')
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
