/* Intercom: X-Hub-Signature: sha1=<hex HMAC-SHA1 of the body>; id, topic,
 * app_id, delivery_attempts and created_at from the envelope scanner.
 *
 * The hot path of every existing deployment, so it is exactly what the
 * route did before schemes: verify.c's prepared SHA-1 contexts and
 * event.c's scanner, no jansson and no allocation of its own. No delivery
 * headers are forwarded: the sinks add the intercom-* ones themselves. */
#include "hb/fmacros.h"

#include "scheme_impl.h"

#include <string.h>

static int intercom_init(hb_scheme_t *s, char *err, size_t errlen)
{
    s->digests[0] = hb_verifier_intercom.digest;
    return 0;
}

static hb_scheme_status_t intercom_verify(const hb_scheme_t *s, hb_keyctx_t *kc,
                                          const hb_headers_t *h, const unsigned char *body,
                                          size_t len, int64_t now_s, char *why, size_t whylen)
{
    hb_verify_result_t v = hb_verifier_intercom.verify(
        kc, hb_scheme_header(h, hb_verifier_intercom.header), body, len);
    if (v != HB_VERIFY_OK)
        return hb_scheme_unauthorized(why, whylen, "X-Hub-Signature: %s", hb_verify_result_str(v));
    return HB_SCHEME_OK;
}

static hb_scheme_status_t intercom_fields(const hb_scheme_t *s, int verified, const hb_headers_t *h,
                                          const unsigned char *body, size_t len, int64_t now_s,
                                          hb_delivery_t *d, char *why, size_t whylen)
{
    if (hb_envelope_parse((const char *)body, len, &d->env, why, whylen) != 0)
        return HB_SCHEME_BAD_REQUEST;
    d->id = d->env.id;
    d->topic = d->env.topic;
    d->source = d->env.app_id;
    d->id_len = d->env.id_len;
    d->topic_len = d->env.topic_len;
    d->source_len = d->env.app_id_len;
    d->delivery_attempts = d->env.delivery_attempts;
    d->created_at = d->env.created_at;
    return HB_SCHEME_OK;
}

const hb_scheme_ops_t hb_scheme_intercom = {
    .name = "intercom",
    .init = intercom_init,
    .verify = intercom_verify,
    .fields = intercom_fields,
    .body_sig = {"SHA1", 0, "X-Hub-Signature", "sha1=", NULL},
};
