/* Shopify: X-Shopify-Hmac-SHA256: <base64 HMAC-SHA256 of the body>; id,
 * topic and shop domain (the tenant) from the X-Shopify-* headers, which
 * are forwarded too. The body is only checked to be a JSON object (as on
 * every route, so that sinks and consumers get JSON); none of its fields
 * is read. No replay window: Shopify signs no timestamp. */
#include "hb/fmacros.h"

#include "scheme_impl.h"

#include <stdio.h>
#include <string.h>

static hb_scheme_status_t shopify_verify(const hb_scheme_t *s, hb_keyctx_t *kc,
                                         const hb_headers_t *h, const unsigned char *body,
                                         size_t len, int64_t now_s, char *why, size_t whylen)
{
    const char *v = hb_scheme_header(h, "X-Shopify-Hmac-SHA256");
    if (!v)
        return hb_scheme_unauthorized(why, whylen, "X-Shopify-Hmac-SHA256 missing");
    unsigned char want[33];
    while (*v == ' ')
        v++;
    size_t n = strlen(v);
    while (n && v[n - 1] == ' ')
        n--;
    if (hb_base64_decode(v, n, want, sizeof(want)) != 32)
        return hb_scheme_unauthorized(why, whylen,
                                      "X-Shopify-Hmac-SHA256 is not a base64 SHA-256 digest");
    hb_span_t part = {body, len};
    if (!hb_match_one(kc, 0, &part, 1, want, 32))
        return hb_scheme_unauthorized(why, whylen,
                                      "X-Shopify-Hmac-SHA256 matches no configured secret");
    return HB_SCHEME_OK;
}

static const char *const forwarded[] = {
    "x-shopify-topic",       "x-shopify-shop-domain", "x-shopify-webhook-id",
    "x-shopify-api-version", "x-shopify-event-id",    "x-shopify-triggered-at",
};

/* The forwarded copy of a header (they are kept once), or NULL. */
static const char *forwarded_value(const hb_delivery_t *d, const char *name)
{
    for (size_t i = 0; i < d->n_headers; i++)
        if (strcmp(d->headers[i].name, name) == 0)
            return *d->headers[i].value ? d->headers[i].value : NULL;
    return NULL;
}

static hb_scheme_status_t shopify_fields(const hb_scheme_t *s, int verified, const hb_headers_t *h,
                                         const unsigned char *body, size_t len, int64_t now_s,
                                         hb_delivery_t *d, char *why, size_t whylen)
{
    for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
        hb_delivery_forward(d, h, forwarded[i]);
    d->topic = forwarded_value(d, "x-shopify-topic");
    if (!d->topic) {
        snprintf(why, whylen, "X-Shopify-Topic missing");
        return HB_SCHEME_BAD_REQUEST;
    }
    d->id = forwarded_value(d, "x-shopify-webhook-id");
    d->source = forwarded_value(d, "x-shopify-shop-domain");
    return HB_SCHEME_OK;
}

const hb_scheme_ops_t hb_scheme_shopify = {
    .name = "shopify",
    .verify = shopify_verify,
    .json = 1,
    .fields = shopify_fields,
    .body_sig = {"SHA256", 1, "X-Shopify-Hmac-SHA256", "", "X-Shopify-Webhook-Id"},
};
