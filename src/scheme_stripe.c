/* Stripe: Stripe-Signature: t=<unix s>,v1=<hex>[,v1=<hex>...][,v0=...],
 * each v1 an HMAC-SHA256 of "<t>.<body>" (several while a secret is being
 * rolled); v0 and unknown schemes are ignored, as Stripe's libraries do.
 * t must lie within the tolerance (default 300 s). id, type (the topic),
 * account (Connect: the tenant) and created come from the body. */
#include "hb/fmacros.h"

#include "scheme_impl.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

static hb_scheme_status_t stripe_verify(const hb_scheme_t *s, hb_keyctx_t *kc,
                                        const hb_headers_t *h, const unsigned char *body,
                                        size_t len, int64_t now_s, char *why, size_t whylen)
{
    const char *v = hb_scheme_header(h, "Stripe-Signature");
    if (!v)
        return hb_scheme_unauthorized(why, whylen, "Stripe-Signature missing");
    unsigned char sig[HB_SCHEME_MAX_SIGS][32];
    const unsigned char *sigs[HB_SCHEME_MAX_SIGS];
    size_t lens[HB_SCHEME_MAX_SIGS], n = 0;
    const char *t = NULL;
    size_t tlen = 0;
    while (*v) {
        size_t k = strcspn(v, ",");
        const char *item = v;
        v += k + (v[k] == ',');
        while (k && *item == ' ')
            item++, k--;
        while (k && item[k - 1] == ' ')
            k--;
        if (k > 2 && item[0] == 't' && item[1] == '=') {
            t = item + 2;
            tlen = k - 2;
        } else if (k > 3 && memcmp(item, "v1=", 3) == 0 && n < HB_SCHEME_MAX_SIGS) {
            if (hb_hex_decode(item + 3, k - 3, sig[n], 32) != 32)
                return hb_scheme_unauthorized(why, whylen,
                                              "Stripe-Signature: v1 is not 64 hex digits");
            sigs[n] = sig[n];
            lens[n++] = 32;
        }
    }
    int64_t ts = t ? hb_parse_seconds(t, tlen) : -1;
    if (ts < 0)
        return hb_scheme_unauthorized(why, whylen, "Stripe-Signature has no t=<unix seconds>");
    if (n == 0)
        return hb_scheme_unauthorized(why, whylen, "Stripe-Signature has no v1= signature");
    hb_span_t parts[] = {{t, tlen}, {".", 1}, {body, len}};
    if (!hb_keyctx_match(kc, 0, parts, 3, sigs, lens, n))
        return hb_scheme_unauthorized(why, whylen,
                                      "Stripe-Signature: no v1 matches a configured secret");
    return hb_scheme_window(s, ts, now_s, why, whylen);
}

static hb_scheme_status_t stripe_fields(const hb_scheme_t *s, int verified, const hb_headers_t *h,
                                        const unsigned char *body, size_t len, int64_t now_s,
                                        hb_delivery_t *d, char *why, size_t whylen)
{
    d->topic = hb_json_text(d, json_object_get(d->json, "type"));
    if (!d->topic || !*d->topic) {
        snprintf(why, whylen, "body has no string \"type\"");
        return HB_SCHEME_BAD_REQUEST;
    }
    d->id = hb_json_text(d, json_object_get(d->json, "id"));
    d->source = hb_json_text(d, json_object_get(d->json, "account"));
    json_t *created = json_object_get(d->json, "created");
    if (json_is_integer(created))
        d->created_at = json_integer_value(created);
    return HB_SCHEME_OK;
}

static int stripe_sign(const hb_scheme_t *s, const unsigned char *key, size_t keylen,
                       const unsigned char *body, size_t len, int64_t now_s, const char *id,
                       char out[][2][256], size_t max)
{
    char t[32];
    char hex[129];
    int tlen = snprintf(t, sizeof(t), "%lld", (long long)now_s);
    hb_span_t parts[] = {{t, (size_t)tlen}, {".", 1}, {body, len}};
    hb_mac_text("SHA256", key, keylen, parts, 3, 0, hex);
    return hb_sign_put(out, max, 0, "Stripe-Signature", "t=%s,v1=%s", t, hex);
}

const hb_scheme_ops_t hb_scheme_stripe = {
    .name = "stripe",
    .verify = stripe_verify,
    .json = 1,
    .fields = stripe_fields,
    .sign = stripe_sign,
};
