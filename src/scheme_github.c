/* GitHub: X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>; the
 * SHA-1 X-Hub-Signature only with allow_sha1, and only when no SHA-256
 * header came (a sender that has SHA-256 is not downgraded).
 *
 * id = X-GitHub-Delivery, topic = X-GitHub-Event + "." + body action when
 * it is a string ("issues.opened"; "ping" for the ping event, which is
 * published), source = repository.full_name, else installation.id, else
 * organization.login. The body must be JSON: a webhook configured with
 * content type application/x-www-form-urlencoded is refused with 400. */
#include "hb/fmacros.h"

#include "scheme_impl.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

static int github_init(hb_scheme_t *s, char *err, size_t errlen)
{
    if (s->rc->allow_sha1) {
        s->digests[1] = "SHA1";
        s->n_digests = 2;
    }
    return 0;
}

static hb_scheme_status_t github_verify(const hb_scheme_t *s, hb_keyctx_t *kc,
                                        const hb_headers_t *h, const unsigned char *body,
                                        size_t len, int64_t now_s, char *why, size_t whylen)
{
    const char *sig256 = hb_scheme_header(h, "X-Hub-Signature-256");
    const char *sig1 = s->rc->allow_sha1 ? hb_scheme_header(h, "X-Hub-Signature") : NULL;
    unsigned char want[32];
    hb_span_t part = {body, len};
    if (sig256) {
        if (hb_sig_hex(sig256, "sha256=", want, 32) != 0)
            return hb_scheme_unauthorized(why, whylen,
                                          "X-Hub-Signature-256 is not sha256=<64 hex digits>");
        if (!hb_match_one(kc, 0, &part, 1, want, 32))
            return hb_scheme_unauthorized(why, whylen,
                                          "X-Hub-Signature-256 matches no configured secret");
        return HB_SCHEME_OK;
    }
    if (!sig1 && !s->rc->allow_sha1 && hb_scheme_header(h, "X-Hub-Signature"))
        return hb_scheme_unauthorized(why, whylen,
                                      "X-Hub-Signature-256 missing (SHA-1 X-Hub-Signature is "
                                      "accepted only with allow_sha1)");
    if (!sig1)
        return hb_scheme_unauthorized(why, whylen, "X-Hub-Signature-256 missing");
    if (hb_sig_hex(sig1, "sha1=", want, 20) != 0)
        return hb_scheme_unauthorized(why, whylen, "X-Hub-Signature is not sha1=<40 hex digits>");
    if (!hb_match_one(kc, 1, &part, 1, want, 20))
        return hb_scheme_unauthorized(why, whylen, "X-Hub-Signature matches no configured secret");
    return HB_SCHEME_OK;
}

static const char *const forwarded[] = {
    "x-github-event",
    "x-github-delivery",
    "x-github-hook-id",
    "x-github-hook-installation-target-id",
    "x-github-hook-installation-target-type",
};

static hb_scheme_status_t github_fields(const hb_scheme_t *s, int verified, const hb_headers_t *h,
                                        const unsigned char *body, size_t len, int64_t now_s,
                                        hb_delivery_t *d, char *why, size_t whylen)
{
    const char *event = hb_scheme_header(h, "X-GitHub-Event");
    if (!event || !*event) {
        snprintf(why, whylen, "X-GitHub-Event missing");
        return HB_SCHEME_BAD_REQUEST;
    }
    json_t *action = json_object_get(d->json, "action");
    const char *a = json_is_string(action) ? hb_json_text(d, action) : NULL;
    if (a && *a) {
        char topic[512]; /* cut there: a topic, not a payload */
        snprintf(topic, sizeof(topic), "%s.%s", event, a);
        d->topic = hb_delivery_keep(d, topic, strlen(topic));
    } else {
        d->topic = hb_delivery_keep(d, event, strlen(event));
    }
    const char *id = hb_scheme_header(h, "X-GitHub-Delivery");
    d->id = id && *id ? hb_delivery_keep(d, id, strlen(id)) : NULL;
    d->source = hb_json_text(d, hb_json_pointer(d->json, "/repository/full_name"));
    if (!d->source)
        d->source = hb_json_text(d, hb_json_pointer(d->json, "/installation/id"));
    if (!d->source)
        d->source = hb_json_text(d, hb_json_pointer(d->json, "/organization/login"));
    for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
        hb_delivery_forward(d, h, forwarded[i]);
    return HB_SCHEME_OK;
}

const hb_scheme_ops_t hb_scheme_github = {
    .name = "github",
    .options = HB_OPT_ALLOW_SHA1,
    .init = github_init,
    .verify = github_verify,
    .json = 1,
    .fields = github_fields,
    .body_sig = {"SHA256", 0, "X-Hub-Signature-256", "sha256=", "X-GitHub-Delivery"},
};
