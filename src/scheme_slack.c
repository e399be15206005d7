/* Slack Events API: X-Slack-Signature: v0=<hex HMAC-SHA256 of
 * "v0:<X-Slack-Request-Timestamp>:<body>">, the timestamp within the
 * tolerance (default 5 min). A url_verification request is answered with
 * its challenge and not published. id = event_id, topic = event.type (or
 * the body's type when there is no event, e.g. app_rate_limited), source =
 * team_id. Slash commands and interactivity (form-encoded) are not events:
 * they verify but are refused with 400 as not JSON. */
#include "hb/fmacros.h"

#include "scheme_impl.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

static hb_scheme_status_t slack_verify(const hb_scheme_t *s, hb_keyctx_t *kc, const hb_headers_t *h,
                                       const unsigned char *body, size_t len, int64_t now_s,
                                       char *why, size_t whylen)
{
    const char *v = hb_scheme_header(h, "X-Slack-Signature");
    const char *t = hb_scheme_header(h, "X-Slack-Request-Timestamp");
    if (!v)
        return hb_scheme_unauthorized(why, whylen, "X-Slack-Signature missing");
    if (!t)
        return hb_scheme_unauthorized(why, whylen, "X-Slack-Request-Timestamp missing");
    int64_t ts = hb_parse_seconds(t, strlen(t));
    if (ts < 0)
        return hb_scheme_unauthorized(why, whylen, "X-Slack-Request-Timestamp is not Unix seconds");
    unsigned char want[32];
    if (hb_sig_hex(v, "v0=", want, 32) != 0)
        return hb_scheme_unauthorized(why, whylen, "X-Slack-Signature is not v0=<64 hex digits>");
    hb_span_t parts[] = {{"v0:", 3}, {t, strlen(t)}, {":", 1}, {body, len}};
    if (!hb_match_one(kc, 0, parts, 4, want, 32))
        return hb_scheme_unauthorized(why, whylen,
                                      "X-Slack-Signature matches no configured secret");
    return hb_scheme_window(s, ts, now_s, why, whylen);
}

static hb_scheme_status_t slack_fields(const hb_scheme_t *s, int verified, const hb_headers_t *h,
                                       const unsigned char *body, size_t len, int64_t now_s,
                                       hb_delivery_t *d, char *why, size_t whylen)
{
    const char *type = hb_json_text(d, json_object_get(d->json, "type"));
    if (type && strcmp(type, "url_verification") == 0) {
        json_t *challenge = json_object_get(d->json, "challenge");
        if (!json_is_string(challenge)) {
            snprintf(why, whylen, "url_verification without a string \"challenge\"");
            return HB_SCHEME_BAD_REQUEST;
        }
        /* jansson escapes it: the reply is JSON whatever the challenge holds */
        json_t *reply = json_pack("{sO}", "challenge", challenge);
        char *text = json_dumps(reply, JSON_COMPACT);
        json_decref(reply);
        if (!text || d->n_heap == sizeof(d->heap) / sizeof(d->heap[0])) {
            free(text);
            snprintf(why, whylen, "url_verification: cannot build the reply");
            return HB_SCHEME_BAD_REQUEST;
        }
        d->heap[d->n_heap++] = text;
        d->reply = text;
        d->reply_type = "application/json";
        return HB_SCHEME_HANDSHAKE;
    }
    json_t *event = json_object_get(d->json, "event");
    d->topic = event ? hb_json_text(d, json_object_get(event, "type")) : type;
    if (!d->topic || !*d->topic) {
        snprintf(why, whylen, "body has no event.type or type");
        return HB_SCHEME_BAD_REQUEST;
    }
    d->id = hb_json_text(d, json_object_get(d->json, "event_id"));
    d->source = hb_json_text(d, json_object_get(d->json, "team_id"));
    json_t *time = json_object_get(d->json, "event_time");
    if (json_is_integer(time))
        d->created_at = json_integer_value(time);
    /* Slack numbers its retries from 1 and sends no header on the first try */
    const char *retry = hb_scheme_header(h, "X-Slack-Retry-Num");
    int64_t r = retry ? hb_parse_seconds(retry, strlen(retry)) : 0;
    d->delivery_attempts = r >= 0 ? r + 1 : -1;
    hb_delivery_forward(d, h, "x-slack-retry-num");
    hb_delivery_forward(d, h, "x-slack-retry-reason");
    return HB_SCHEME_OK;
}

static int slack_sign(const hb_scheme_t *s, const unsigned char *key, size_t keylen,
                      const unsigned char *body, size_t len, int64_t now_s, const char *id,
                      char out[][2][256], size_t max)
{
    char t[32];
    char hex[129];
    int tlen = snprintf(t, sizeof(t), "%lld", (long long)now_s);
    hb_span_t parts[] = {{"v0:", 3}, {t, (size_t)tlen}, {":", 1}, {body, len}};
    hb_mac_text("SHA256", key, keylen, parts, 4, 0, hex);
    int n = hb_sign_put(out, max, 0, "X-Slack-Request-Timestamp", "%s", t);
    return hb_sign_put(out, max, n, "X-Slack-Signature", "v0=%s", hex);
}

const hb_scheme_ops_t hb_scheme_slack = {
    .name = "slack",
    .verify = slack_verify,
    .json = 1,
    .fields = slack_fields,
    .sign = slack_sign,
};
