/* Standard Webhooks (standardwebhooks.com): webhook-id, webhook-timestamp
 * and webhook-signature, a space-separated list of "v1,<base64 HMAC-SHA256
 * of id.timestamp.body>" and "v1a,<base64 Ed25519 signature of the same>";
 * entries of other versions are ignored. HMAC secrets are "whsec_" +
 * base64 (a secret without the prefix is taken as base64 too, as the
 * reference libraries do); public_key is a comma list of "whpk_" + base64
 * raw Ed25519 keys, parsed once here. The timestamp must lie within the
 * tolerance (default 300 s, the spec's suggestion).
 *
 * id = webhook-id, topic = body type, source = nothing; each can be read
 * elsewhere with id_field, topic_field, source_field (header:Name or a
 * JSON pointer). webhook-id and webhook-timestamp are forwarded. */
#include "hb/fmacros.h"

#include "scheme_impl.h"

#include "hb/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

static int standard_init(hb_scheme_t *s, char *err, size_t errlen)
{
    const hb_route_cfg_t *rc = s->rc;
    if (hb_field_parse(&s->id, rc, "id", rc->id_field, err, errlen) ||
        hb_field_parse(&s->topic, rc, "topic", rc->topic_field, err, errlen) ||
        hb_field_parse(&s->source, rc, "source", rc->source_field, err, errlen))
        return -1;
    if (s->id.kind == HB_FIELD_NONE)
        s->id = (hb_field_t){HB_FIELD_HEADER, "webhook-id"};
    if (s->topic.kind == HB_FIELD_NONE)
        s->topic = (hb_field_t){HB_FIELD_POINTER, "/type"};
    const char *p = rc->public_key ? rc->public_key : "";
    while (*p) {
        size_t k = strcspn(p, ",");
        const char *item = p;
        p += k + (p[k] == ',');
        while (k && (*item == ' ' || *item == '\t'))
            item++, k--;
        while (k && (item[k - 1] == ' ' || item[k - 1] == '\t'))
            k--;
        if (!k)
            continue;
        if (k >= 5 && memcmp(item, "whpk_", 5) == 0)
            item += 5, k -= 5;
        unsigned char raw[33];
        EVP_PKEY *pk = NULL;
        if (hb_base64_decode(item, k, raw, sizeof(raw)) == 32)
            pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, 32);
        if (!pk) {
            snprintf(err, errlen,
                     "route.%s.public_key: item %zu is not whpk_<base64 of a 32-byte Ed25519 key>",
                     rc->name, s->n_pkeys + 1);
            return -1;
        }
        s->pkeys = hb_realloc(s->pkeys, (s->n_pkeys + 1) * sizeof(*s->pkeys));
        s->pkeys[s->n_pkeys++] = pk;
    }
    return 0;
}

/* 1 when sig is an Ed25519 signature of msg by any configured key. */
static int ed25519_match(const hb_scheme_t *s, const unsigned char *sig, const unsigned char *msg,
                         size_t len)
{
    int match = 0;
    for (size_t i = 0; i < s->n_pkeys; i++) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        if (ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, s->pkeys[i]) == 1)
            match |= EVP_DigestVerify(ctx, sig, 64, msg, len) == 1;
        EVP_MD_CTX_free(ctx);
    }
    return match;
}

static hb_scheme_status_t standard_verify(const hb_scheme_t *s, hb_keyctx_t *kc,
                                          const hb_headers_t *h, const unsigned char *body,
                                          size_t len, int64_t now_s, char *why, size_t whylen)
{
    const char *id = hb_scheme_header(h, "webhook-id");
    const char *t = hb_scheme_header(h, "webhook-timestamp");
    const char *v = hb_scheme_header(h, "webhook-signature");
    if (!v)
        return hb_scheme_unauthorized(why, whylen, "webhook-signature missing");
    if (!id || !*id)
        return hb_scheme_unauthorized(why, whylen, "webhook-id missing");
    if (!t)
        return hb_scheme_unauthorized(why, whylen, "webhook-timestamp missing");
    int64_t ts = hb_parse_seconds(t, strlen(t));
    if (ts < 0)
        return hb_scheme_unauthorized(why, whylen, "webhook-timestamp is not Unix seconds");
    unsigned char mac[HB_SCHEME_MAX_SIGS][32], ed[HB_SCHEME_MAX_SIGS][64];
    const unsigned char *macs[HB_SCHEME_MAX_SIGS];
    size_t maclens[HB_SCHEME_MAX_SIGS], n_mac = 0, n_ed = 0;
    while (*v) {
        size_t k = strcspn(v, " ");
        const char *item = v;
        v += k + (v[k] == ' ');
        if (k > 3 && memcmp(item, "v1,", 3) == 0 && n_mac < HB_SCHEME_MAX_SIGS) {
            unsigned char raw[33];
            if (hb_base64_decode(item + 3, k - 3, raw, sizeof(raw)) == 32) {
                memcpy(mac[n_mac], raw, 32);
                macs[n_mac] = mac[n_mac];
                maclens[n_mac++] = 32;
            }
        } else if (k > 4 && memcmp(item, "v1a,", 4) == 0 && n_ed < HB_SCHEME_MAX_SIGS) {
            unsigned char raw[65];
            if (hb_base64_decode(item + 4, k - 4, raw, sizeof(raw)) == 64)
                memcpy(ed[n_ed++], raw, 64);
        }
    }
    if (n_mac == 0 && n_ed == 0)
        return hb_scheme_unauthorized(why, whylen,
                                      "webhook-signature has no well-formed v1 or v1a signature");
    hb_span_t parts[] = {{id, strlen(id)}, {".", 1}, {t, strlen(t)}, {".", 1}, {body, len}};
    int match = hb_keyctx_match(kc, 0, parts, 5, macs, maclens, n_mac);
    if (n_ed && s->n_pkeys) {
        /* Ed25519 signs the message in one piece */
        size_t mlen = parts[0].n + parts[2].n + len + 2;
        unsigned char *msg = hb_malloc(mlen), *m = msg;
        for (size_t i = 0; i < 5; i++)
            memcpy(m, parts[i].p, parts[i].n), m += parts[i].n;
        for (size_t i = 0; i < n_ed; i++)
            match |= ed25519_match(s, ed[i], msg, mlen);
        free(msg);
    }
    if (!match)
        return hb_scheme_unauthorized(why, whylen,
                                      "webhook-signature: no signature matches a configured key");
    return hb_scheme_window(s, ts, now_s, why, whylen);
}

static hb_scheme_status_t standard_fields(const hb_scheme_t *s, int verified, const hb_headers_t *h,
                                          const unsigned char *body, size_t len, int64_t now_s,
                                          hb_delivery_t *d, char *why, size_t whylen)
{
    d->topic = hb_field_get(&s->topic, h, d);
    if (!d->topic || !*d->topic) {
        snprintf(why, whylen, "no topic at %s%s", s->topic.kind == HB_FIELD_HEADER ? "header:" : "",
                 s->topic.text);
        return HB_SCHEME_BAD_REQUEST;
    }
    d->id = hb_field_get(&s->id, h, d);
    d->source = hb_field_get(&s->source, h, d);
    hb_delivery_forward(d, h, "webhook-id");
    hb_delivery_forward(d, h, "webhook-timestamp");
    return HB_SCHEME_OK;
}

static int standard_sign(const hb_scheme_t *s, const unsigned char *key, size_t keylen,
                         const unsigned char *body, size_t len, int64_t now_s, const char *id,
                         char out[][2][256], size_t max)
{
    if (!id || keylen == 0)
        return -1;
    char t[32];
    char b64[129];
    int tlen = snprintf(t, sizeof(t), "%lld", (long long)now_s);
    hb_span_t parts[] = {{id, strlen(id)}, {".", 1}, {t, (size_t)tlen}, {".", 1}, {body, len}};
    hb_mac_text("SHA256", key, keylen, parts, 5, 1, b64);
    int n = hb_sign_put(out, max, 0, "webhook-id", "%s", id);
    n = hb_sign_put(out, max, n, "webhook-timestamp", "%s", t);
    return hb_sign_put(out, max, n, "webhook-signature", "v1,%s", b64);
}

const hb_scheme_ops_t hb_scheme_standard = {
    .name = "standard",
    .options = HB_OPT_PUBLIC_KEY | HB_OPT_ID_FIELD | HB_OPT_TOPIC_FIELD | HB_OPT_SOURCE_FIELD,
    .secret_base64 = 1,
    .init = standard_init,
    .verify = standard_verify,
    .json = 1,
    .fields = standard_fields,
    .sign = standard_sign,
};
