/* Signature schemes. See include/hb/verify.h.
 *
 * The header is decoded to raw bytes first and compared with CRYPTO_memcmp
 * against the HMAC of every configured secret, without stopping at the
 * first match, so timing does not reveal which secret (or how much of the
 * digest) matched. */
#include "hb/fmacros.h"

#include "hb/verify.h"
#include "hb/util.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

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
static hb_verify_result_t intercom_verify(const hb_keyset_t *ks, const char *hv,
                                          const unsigned char *body, size_t len)
{
    unsigned char want[20], got[EVP_MAX_MD_SIZE];
    unsigned int gotlen;
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
    for (size_t i = 0; ks && i < ks->n; i++) {
        if (!HMAC(EVP_sha1(), ks->secrets[i], (int)ks->lens[i], body, len, got, &gotlen))
            continue;
        match |= gotlen == 20 && CRYPTO_memcmp(want, got, 20) == 0;
    }
    return match ? HB_VERIFY_OK : HB_VERIFY_MISMATCH;
}

const hb_verifier_ops_t hb_verifier_intercom = {
    .name = "intercom",
    .header = "X-Hub-Signature",
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
