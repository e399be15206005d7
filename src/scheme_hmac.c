/* The generic HMAC scheme, for providers without a scheme of their own:
 *
 *   header          the signature header (required)
 *   algorithm       sha1 | sha256 (default) | sha512
 *   encoding        hex (default) | base64
 *   prefix          text before the signature, e.g. "sha256=" (default "")
 *   signed_payload  what is signed (default "{body}"); {timestamp} and {id}
 *                   insert those fields, e.g. "{timestamp}.{body}"
 *   id_field, topic_field (required), source_field, timestamp_field:
 *                   "header:Name" or an RFC 6901 JSON pointer into the body
 *
 * A timestamp_field turns the replay window on (Unix seconds, an integer or
 * a decimal string). A field that the signed payload uses must come from a
 * header: the body is not read before the signature matched. */
#include "hb/fmacros.h"

#include "scheme_impl.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *name, *digest;
    size_t len;
} algorithms[] = {{"sha1", "SHA1", 20}, {"sha256", "SHA256", 32}, {"sha512", "SHA512", 64}};

static int uses(const hb_scheme_t *s, hb_part_kind_t kind)
{
    for (size_t i = 0; i < s->n_parts; i++)
        if (s->parts[i].kind == kind)
            return 1;
    return 0;
}

static int parse_payload(hb_scheme_t *s, char *err, size_t errlen)
{
    const char *name = s->rc->name;
    const char *p =
        s->rc->signed_payload && *s->rc->signed_payload ? s->rc->signed_payload : "{body}";
    int bodies = 0;
    while (*p) {
        if (s->n_parts == HB_SCHEME_MAX_PARTS) {
            snprintf(err, errlen, "route.%s.signed: more than %d pieces", name,
                     HB_SCHEME_MAX_PARTS);
            return -1;
        }
        hb_part_t *part = &s->parts[s->n_parts++];
        if (*p != '{') {
            part->kind = HB_PART_TEXT;
            part->text = p;
            part->len = strcspn(p, "{");
            p += part->len;
            continue;
        }
        const hb_field_t *needs = NULL;
        if (strncmp(p, "{body}", 6) == 0) {
            part->kind = HB_PART_BODY;
            bodies++;
        } else if (strncmp(p, "{timestamp}", 11) == 0) {
            part->kind = HB_PART_TIMESTAMP;
            needs = &s->timestamp;
        } else if (strncmp(p, "{id}", 4) == 0) {
            part->kind = HB_PART_ID;
            needs = &s->id;
        } else {
            snprintf(err, errlen,
                     "route.%s.signed: unknown placeholder at '%.20s' (use {body}, "
                     "{timestamp}, {id})",
                     name, p);
            return -1;
        }
        if (needs && needs->kind != HB_FIELD_HEADER) {
            snprintf(err, errlen,
                     "route.%s.signed: {%s} needs %s = header:<Name> (the body is read "
                     "only after the signature matched)",
                     name, part->kind == HB_PART_ID ? "id" : "timestamp",
                     part->kind == HB_PART_ID ? "id" : "timestamp");
            return -1;
        }
        p = strchr(p, '}') + 1;
    }
    if (bodies != 1) {
        snprintf(err, errlen, "route.%s.signed: must hold {body} exactly once", name);
        return -1;
    }
    /* a window on a header that no signature covers stops no replay: the
     * replayer sends a fresh one (a body field is signed with the body) */
    if (s->timestamp.kind == HB_FIELD_HEADER && !uses(s, HB_PART_TIMESTAMP)) {
        snprintf(err, errlen,
                 "route.%s.timestamp: header:%s is not signed; add {timestamp} to "
                 "signed, or leave timestamp unset",
                 name, s->timestamp.text);
        return -1;
    }
    return 0;
}

static int hmac_init(hb_scheme_t *s, char *err, size_t errlen)
{
    const hb_route_cfg_t *rc = s->rc;
    if (!rc->header || !*rc->header) {
        snprintf(err, errlen, "route.%s.header: required by scheme hmac", rc->name);
        return -1;
    }
    const char *alg = rc->algorithm && *rc->algorithm ? rc->algorithm : "sha256";
    for (size_t i = 0; i < sizeof(algorithms) / sizeof(algorithms[0]); i++)
        if (strcasecmp(alg, algorithms[i].name) == 0) {
            s->digests[0] = algorithms[i].digest;
            s->md_len = algorithms[i].len;
        }
    if (!s->md_len) {
        snprintf(err, errlen, "route.%s.algorithm: '%s' is not sha1, sha256 or sha512", rc->name,
                 alg);
        return -1;
    }
    const char *enc = rc->encoding && *rc->encoding ? rc->encoding : "hex";
    if (strcasecmp(enc, "base64") == 0) {
        s->base64 = 1;
    } else if (strcasecmp(enc, "hex") != 0) {
        snprintf(err, errlen, "route.%s.encoding: '%s' is not hex or base64", rc->name, enc);
        return -1;
    }
    s->prefix_len = rc->prefix ? strlen(rc->prefix) : 0;
    if (hb_field_parse(&s->id, rc, "id", rc->id_field, err, errlen) ||
        hb_field_parse(&s->topic, rc, "topic", rc->topic_field, err, errlen) ||
        hb_field_parse(&s->source, rc, "source", rc->source_field, err, errlen) ||
        hb_field_parse(&s->timestamp, rc, "timestamp", rc->timestamp_field, err, errlen))
        return -1;
    if (s->topic.kind == HB_FIELD_NONE) {
        snprintf(err, errlen, "route.%s.topic: required by scheme hmac", rc->name);
        return -1;
    }
    return parse_payload(s, err, errlen);
}

/* The signed bytes as spans: literal text, body, and header fields. */
static size_t payload_parts(const hb_scheme_t *s, const char *ts, const char *id,
                            const unsigned char *body, size_t len, hb_span_t *out)
{
    for (size_t i = 0; i < s->n_parts; i++) {
        const hb_part_t *p = &s->parts[i];
        switch (p->kind) {
        case HB_PART_TEXT:
            out[i] = (hb_span_t){p->text, p->len};
            break;
        case HB_PART_BODY:
            out[i] = (hb_span_t){body, len};
            break;
        case HB_PART_TIMESTAMP:
            out[i] = (hb_span_t){ts, strlen(ts)};
            break;
        case HB_PART_ID:
            out[i] = (hb_span_t){id, strlen(id)};
            break;
        }
    }
    return s->n_parts;
}

static hb_scheme_status_t hmac_verify(const hb_scheme_t *s, hb_keyctx_t *kc, const hb_headers_t *h,
                                      const unsigned char *body, size_t len, int64_t now_s,
                                      char *why, size_t whylen)
{
    const char *hname = s->rc->header;
    const char *v = hb_scheme_header(h, hname);
    if (!v)
        return hb_scheme_unauthorized(why, whylen, "%s missing", hname);
    while (*v == ' ' || *v == '\t')
        v++;
    if (s->prefix_len && strncasecmp(v, s->rc->prefix, s->prefix_len) != 0)
        return hb_scheme_unauthorized(why, whylen, "%s does not begin with '%s'", hname,
                                      s->rc->prefix);
    v += s->prefix_len;
    size_t n = strlen(v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    unsigned char want[65];
    int k = s->base64 ? hb_base64_decode(v, n, want, sizeof(want))
                      : hb_hex_decode(v, n, want, sizeof(want));
    if (k != (int)s->md_len)
        return hb_scheme_unauthorized(why, whylen, "%s is not a %s %s digest", hname,
                                      s->base64 ? "base64" : "hex", s->digests[0]);
    const char *ts = uses(s, HB_PART_TIMESTAMP) ? hb_scheme_header(h, s->timestamp.text) : "";
    const char *id = uses(s, HB_PART_ID) ? hb_scheme_header(h, s->id.text) : "";
    if (!ts)
        return hb_scheme_unauthorized(why, whylen, "%s missing", s->timestamp.text);
    if (!id)
        return hb_scheme_unauthorized(why, whylen, "%s missing", s->id.text);
    hb_span_t parts[HB_SCHEME_MAX_PARTS];
    if (!hb_match_one(kc, 0, parts, payload_parts(s, ts, id, body, len, parts), want, s->md_len))
        return hb_scheme_unauthorized(why, whylen, "%s matches no configured secret", hname);
    return HB_SCHEME_OK;
}

static hb_scheme_status_t hmac_fields(const hb_scheme_t *s, int verified, const hb_headers_t *h,
                                      const unsigned char *body, size_t len, int64_t now_s,
                                      hb_delivery_t *d, char *why, size_t whylen)
{
    hb_scheme_status_t st;
    if (verified && s->timestamp.kind != HB_FIELD_NONE) {
        const char *t = hb_field_get(&s->timestamp, h, d);
        int64_t ts = t ? hb_parse_seconds(t, strlen(t)) : -1;
        if (ts < 0)
            return hb_scheme_unauthorized(why, whylen, "timestamp (%s) missing or not Unix seconds",
                                          s->timestamp.text);
        if ((st = hb_scheme_window(s, ts, now_s, why, whylen)) != HB_SCHEME_OK)
            return st;
        d->created_at = ts;
    }
    d->topic = hb_field_get(&s->topic, h, d);
    if (!d->topic || !*d->topic) {
        snprintf(why, whylen, "no topic at %s", s->rc->topic_field);
        return HB_SCHEME_BAD_REQUEST;
    }
    d->id = hb_field_get(&s->id, h, d);
    d->source = hb_field_get(&s->source, h, d);
    return HB_SCHEME_OK;
}

static int hmac_sign(const hb_scheme_t *s, const unsigned char *key, size_t keylen,
                     const unsigned char *body, size_t len, int64_t now_s, const char *id,
                     char out[][2][256], size_t max)
{
    char ts[32], sig[129];
    snprintf(ts, sizeof(ts), "%lld", (long long)now_s);
    if (uses(s, HB_PART_ID) && !id)
        return -1;
    hb_span_t parts[HB_SCHEME_MAX_PARTS];
    size_t n_parts = payload_parts(s, ts, id ? id : "", body, len, parts);
    hb_mac_text(s->digests[0], key, keylen, parts, n_parts, s->base64, sig);
    int n =
        hb_sign_put(out, max, 0, s->rc->header, "%s%s", s->rc->prefix ? s->rc->prefix : "", sig);
    if (s->timestamp.kind == HB_FIELD_HEADER)
        n = hb_sign_put(out, max, n, s->timestamp.text, "%s", ts);
    if (id && s->id.kind == HB_FIELD_HEADER)
        n = hb_sign_put(out, max, n, s->id.text, "%s", id);
    return n;
}

const hb_scheme_ops_t hb_scheme_hmac = {
    .name = "hmac",
    .options = HB_OPT_HEADER | HB_OPT_ALGORITHM | HB_OPT_ENCODING | HB_OPT_PREFIX |
               HB_OPT_SIGNED_PAYLOAD | HB_OPT_ID_FIELD | HB_OPT_TOPIC_FIELD | HB_OPT_SOURCE_FIELD |
               HB_OPT_TIMESTAMP_FIELD,
    .init = hmac_init,
    .verify = hmac_verify,
    .json = 1,
    .fields = hmac_fields,
    .sign = hmac_sign,
};
