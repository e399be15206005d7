/* Signature schemes (hb/scheme.h): each provider with the vectors it
 * publishes where there is one, bodies signed here with an independent
 * computation otherwise (digests fixed once with `openssl dgst -hmac`, or
 * OpenSSL's one-shot HMAC(), which shares no code with the prepared
 * EVP_MAC contexts under test), and the refusals: wrong secret, wrong
 * prefix, missing header, one byte changed, a timestamp too old or too
 * new. Every refusal must be UNAUTHORIZED with its own reason. */
#include "test.h"

#include "hb/scheme.h"

#include <strings.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

/* ---- a request: headers and a route ---- */

typedef struct {
    const char *name[16];
    char value[16][256]; /* copied: a request owns its headers */
    size_t n;
} req_t;

static const char *req_get(void *arg, const char *name)
{
    req_t *r = arg;
    for (size_t i = 0; i < r->n; i++)
        if (strcasecmp(r->name[i], name) == 0)
            return r->value[i];
    return NULL;
}

/* Set (or with value NULL remove) a header. */
static void hset(req_t *r, const char *name, const char *value)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcasecmp(r->name[i], name) == 0) {
            if (value) {
                snprintf(r->value[i], sizeof(r->value[i]), "%s", value);
            } else {
                r->n--;
                r->name[i] = r->name[r->n];
                memcpy(r->value[i], r->value[r->n], sizeof(r->value[i]));
            }
            return;
        }
    if (value && r->n < 16) {
        r->name[r->n] = name;
        snprintf(r->value[r->n++], sizeof(r->value[0]), "%s", value);
    }
}

static hb_route_cfg_t route(const char *scheme)
{
    hb_route_cfg_t rc;
    memset(&rc, 0, sizeof(rc));
    rc.name = "r";
    rc.scheme = (char *)scheme;
    rc.verify = 1;
    return rc;
}

static hb_scheme_t *scheme_new(const hb_route_cfg_t *rc)
{
    char err[256] = "";
    hb_scheme_t *s = hb_scheme_new(rc, err, sizeof(err));
    if (!s)
        diag("hb_scheme_new(%s): %s", rc->scheme, err);
    return s;
}

/* hb_scheme_new's error for rc, or "" when it built. */
static const char *new_error(const hb_route_cfg_t *rc)
{
    static char err[256];
    err[0] = '\0';
    hb_scheme_t *s = hb_scheme_new(rc, err, sizeof(err));
    if (s) {
        hb_scheme_free(s);
        snprintf(err, sizeof(err), "(built)");
    }
    return err;
}

static char why[256];

/* Read a delivery with a fresh key set and key context from `secrets`
 * (NULL: no key set), twice on the same context: a prepared context must
 * answer the same on its next request. d is left filled by the second. */
static hb_scheme_status_t rd(const hb_scheme_t *s, const char *secrets, req_t *r, const char *body,
                             size_t len, int64_t now, hb_delivery_t *d)
{
    char err[256];
    hb_keyset_t *ks = secrets ? hb_scheme_keyset(s, secrets, err, sizeof(err)) : NULL;
    if (secrets && !ks)
        diag("hb_scheme_keyset: %s", err);
    hb_keyctx_t *kc = hb_scheme_keyctx(s, ks);
    hb_keyset_unref(ks);
    hb_headers_t h = {req_get, r};
    hb_scheme_status_t first =
        hb_scheme_read(s, kc, 1, &h, (const unsigned char *)body, len, now, d, why, sizeof(why));
    hb_delivery_clear(d);
    hb_scheme_status_t st =
        hb_scheme_read(s, kc, 1, &h, (const unsigned char *)body, len, now, d, why, sizeof(why));
    hb_keyctx_free(kc);
    if (st != first)
        diag("the same request on the same key context answered %d, then %d", first, st);
    return st == first ? st : (hb_scheme_status_t)-1;
}

static hb_scheme_status_t rds(const hb_scheme_t *s, const char *secrets, req_t *r, const char *body,
                              int64_t now, hb_delivery_t *d)
{
    return rd(s, secrets, r, body, strlen(body), now, d);
}

/* The forwarded header `name`, or NULL. */
static const char *fwd(const hb_delivery_t *d, const char *name)
{
    for (size_t i = 0; i < d->n_headers; i++)
        if (strcmp(d->headers[i].name, name) == 0)
            return d->headers[i].value;
    return NULL;
}

/* Reasons given for refusals of one scheme: each must differ. */
static char reasons[16][256];
static size_t n_reasons;

/* An UNAUTHORIZED check that records the reason for distinct_reasons(). */
static void refused(hb_scheme_status_t st, const char *what)
{
    is_int(st, HB_SCHEME_UNAUTHORIZED, "%s -> UNAUTHORIZED (%s)", what, why);
    ok(why[0] != '\0', "%s: a reason is given", what);
    if (n_reasons < 16)
        snprintf(reasons[n_reasons++], sizeof(reasons[0]), "%s", why);
}

/* A signature that matches no secret: wrong secret and changed body look
 * the same to the receiver, so they share one reason, recorded once. */
static char mismatch_reason[256];

static void mismatch(hb_scheme_status_t st, const char *what)
{
    is_int(st, HB_SCHEME_UNAUTHORIZED, "%s -> UNAUTHORIZED (%s)", what, why);
    if (!mismatch_reason[0]) {
        snprintf(mismatch_reason, sizeof(mismatch_reason), "%s", why);
        if (n_reasons < 16)
            snprintf(reasons[n_reasons++], sizeof(reasons[0]), "%s", why);
    } else {
        is_str(why, mismatch_reason, "%s: the mismatch reason", what);
    }
}

static void distinct_reasons(const char *scheme)
{
    int distinct = 1;
    for (size_t i = 0; i < n_reasons; i++)
        for (size_t k = i + 1; k < n_reasons; k++)
            if (strcmp(reasons[i], reasons[k]) == 0) {
                diag("same reason twice: %s", reasons[i]);
                distinct = 0;
            }
    ok(distinct && n_reasons >= 3, "%s: %zu refusals, each with its own reason", scheme, n_reasons);
    n_reasons = 0;
    mismatch_reason[0] = '\0';
}

/* The body with byte i flipped (a static copy). */
static const char *flip(const char *body, size_t i)
{
    static char copy[4096];
    snprintf(copy, sizeof(copy), "%s", body);
    copy[i] ^= 0x01;
    return copy;
}

/* Sign with the scheme into r (which keeps pointers into `out`). */
static int sign_into(const hb_scheme_t *s, const char *secret, const char *body, int64_t now,
                     const char *id, char out[][2][256], req_t *r)
{
    int n = hb_scheme_sign(s, secret, (const unsigned char *)body, strlen(body), now, id, out, 4);
    for (int i = 0; i < n; i++)
        hset(r, out[i][0], out[i][1]);
    return n;
}

/* ---- GitHub ---- */

static void test_github(void)
{
    hb_route_cfg_t rc = route("github");
    hb_scheme_t *s = scheme_new(&rc);
    ok(s != NULL, "github scheme built");
    if (!s)
        return;
    is_str(hb_scheme_name(s), "github", "its name");
    hb_delivery_t d;
    req_t r = {0};

    /* GitHub's documented example ("Validating webhook deliveries",
     * docs.github.com): secret "It's a Secret to Everybody", payload
     * "Hello, World!". Not JSON, so it verifies and is then refused 400. */
    const char *secret = "It's a Secret to Everybody";
    char out[4][2][256];
    is_int(hb_scheme_sign(s, secret, (const unsigned char *)"Hello, World!", 13, 0, NULL, out, 4),
           1, "sign: one header without a delivery id");
    is_str(out[0][0], "X-Hub-Signature-256", "sign: header name");
    is_str(out[0][1], "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
           "sign: GitHub's documented signature");
    hset(&r, "X-Hub-Signature-256",
         "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
    hset(&r, "X-GitHub-Event", "push");
    is_int(rds(s, secret, &r, "Hello, World!", 0, &d), HB_SCHEME_BAD_REQUEST,
           "documented vector verifies, then 400 as not JSON (%s)", why);
    ok(strstr(why, "JSON") != NULL, "the reason says the body is not JSON");
    is_int(rds(s, secret, &r, "Hello, World?", 0, &d), HB_SCHEME_UNAUTHORIZED,
           "documented signature on another payload -> UNAUTHORIZED");

    /* an issues event */
    const char *body = "{\"action\":\"opened\",\"issue\":{\"number\":1},"
                       "\"repository\":{\"full_name\":\"octo-org/hello-world\"},"
                       "\"installation\":{\"id\":42}}";
    memset(&r, 0, sizeof(r));
    sign_into(s, secret, body, 0, "72d3162e-cc78-11e3-81ab-4c9367dc0958", out, &r);
    hset(&r, "X-GitHub-Event", "issues");
    hset(&r, "X-GitHub-Hook-ID", "292430182");
    hset(&r, "X-GitHub-Hook-Installation-Target-Type", "repository");
    is_int(rds(s, secret, &r, body, 0, &d), HB_SCHEME_OK, "issues event -> OK (%s)", why);
    is_str(d.id, "72d3162e-cc78-11e3-81ab-4c9367dc0958", "id = X-GitHub-Delivery");
    is_str(d.topic, "issues.opened", "topic = event.action");
    is_int(d.topic_len, strlen("issues.opened"), "topic_len");
    is_str(d.source, "octo-org/hello-world", "source = repository.full_name");
    is_int(d.source_len, strlen("octo-org/hello-world"), "source_len");
    is_int(d.n_headers, 4, "four delivery headers forwarded");
    is_str(fwd(&d, "x-github-event"), "issues", "x-github-event forwarded");
    is_str(fwd(&d, "x-github-delivery"), "72d3162e-cc78-11e3-81ab-4c9367dc0958",
           "x-github-delivery forwarded");
    is_str(fwd(&d, "x-github-hook-id"), "292430182", "x-github-hook-id forwarded");
    is_str(fwd(&d, "x-github-hook-installation-target-type"), "repository",
           "x-github-hook-installation-target-type forwarded");
    ok(d.reply == NULL && d.delivery_attempts == -1, "no reply, attempts unknown");
    hb_delivery_clear(&d);

    /* two secrets, the second matches (rotation) */
    is_int(rds(s, "old-secret, It's a Secret to Everybody", &r, body, 0, &d), HB_SCHEME_OK,
           "two secrets, the second matches -> OK");
    hb_delivery_clear(&d);
    is_int(rds(s, "It's a Secret to Everybody,old-secret", &r, body, 0, &d), HB_SCHEME_OK,
           "two secrets, the first matches -> OK");
    hb_delivery_clear(&d);

    /* ping: published, topic "ping"; the source falls back */
    const char *ping = "{\"zen\":\"Design for failure.\",\"hook_id\":1,"
                       "\"organization\":{\"login\":\"octo-org\"}}";
    req_t p = {0};
    sign_into(s, secret, ping, 0, "d1", out, &p);
    hset(&p, "X-GitHub-Event", "ping");
    is_int(rds(s, secret, &p, ping, 0, &d), HB_SCHEME_OK, "ping -> OK, published");
    is_str(d.topic, "ping", "ping topic");
    is_str(d.source, "octo-org", "source = organization.login without repository/installation");
    hb_delivery_clear(&d);
    const char *inst = "{\"action\":\"created\",\"installation\":{\"id\":42}}";
    memset(&p, 0, sizeof(p));
    sign_into(s, secret, inst, 0, NULL, out, &p);
    hset(&p, "X-GitHub-Event", "installation");
    is_int(rds(s, secret, &p, inst, 0, &d), HB_SCHEME_OK, "installation event -> OK");
    is_str(d.source, "42", "source = installation.id as decimal text");
    ok(d.id == NULL, "no X-GitHub-Delivery: no id (never deduplicated)");
    hb_delivery_clear(&d);
    hset(&p, "X-GitHub-Event", NULL);
    is_int(rds(s, secret, &p, inst, 0, &d), HB_SCHEME_BAD_REQUEST,
           "verified but no X-GitHub-Event -> BAD_REQUEST (%s)", why);
    const char *form = "payload=%7B%7D";
    memset(&p, 0, sizeof(p));
    sign_into(s, secret, form, 0, NULL, out, &p);
    hset(&p, "X-GitHub-Event", "push");
    is_int(rds(s, secret, &p, form, 0, &d), HB_SCHEME_BAD_REQUEST,
           "form-encoded delivery -> BAD_REQUEST (%s)", why);
    const char *arr = "[1,2]";
    memset(&p, 0, sizeof(p));
    sign_into(s, secret, arr, 0, NULL, out, &p);
    hset(&p, "X-GitHub-Event", "push");
    is_int(rds(s, secret, &p, arr, 0, &d), HB_SCHEME_BAD_REQUEST, "JSON array -> BAD_REQUEST");
    ok(strstr(why, "not a JSON object") != NULL, "reason: not a JSON object (%s)", why);

    /* refusals */
    mismatch(rds(s, "not the secret", &r, body, 0, &d), "wrong secret");
    char sig[128];
    snprintf(sig, sizeof(sig), "sha1=%s", req_get(&r, "X-Hub-Signature-256") + 7);
    req_t bad = r;
    hset(&bad, "X-Hub-Signature-256", sig);
    refused(rds(s, secret, &bad, body, 0, &d), "sha1= prefix on X-Hub-Signature-256");
    hset(&bad, "X-Hub-Signature-256", NULL);
    refused(rds(s, secret, &bad, body, 0, &d), "no signature header");
    size_t blen = strlen(body);
    int all = 1;
    for (size_t i = 0; i < blen; i++)
        all &= rd(s, secret, &r, flip(body, i), blen, 0, &d) == HB_SCHEME_UNAUTHORIZED;
    ok(all, "one flipped body byte at each of %zu positions -> UNAUTHORIZED", blen);
    mismatch(rds(s, secret, &r, flip(body, 5), 0, &d), "body changed by one byte");
    ok(d.topic == NULL && d.json == NULL && d.n_heap == 0, "a refused delivery holds nothing");

    /* SHA-1 only when allow_sha1; never a downgrade from a SHA-256 header */
    char sha1[64];
    hb_verify_intercom_sign(secret, (const unsigned char *)body, blen, sha1, sizeof(sha1));
    req_t old = {0};
    hset(&old, "X-Hub-Signature", sha1);
    hset(&old, "X-GitHub-Event", "issues");
    refused(rds(s, secret, &old, body, 0, &d), "X-Hub-Signature (SHA-1) without allow_sha1");
    distinct_reasons("github");
    hb_scheme_free(s);

    rc.allow_sha1 = 1;
    s = scheme_new(&rc);
    is_int(rds(s, secret, &old, body, 0, &d), HB_SCHEME_OK, "allow_sha1: SHA-1 header -> OK");
    hb_delivery_clear(&d);
    hset(&old, "X-Hub-Signature-256",
         "sha256=" /* valid form, wrong digest */
         "0000000000000000000000000000000000000000000000000000000000000000");
    is_int(rds(s, secret, &old, body, 0, &d), HB_SCHEME_UNAUTHORIZED,
           "a wrong SHA-256 header is not rescued by a right SHA-1 one");
    hb_scheme_free(s);
}

/* ---- Stripe ---- */

#define STRIPE_SECRET "whsec_hookbridge_test"
#define STRIPE_BODY                                                                                \
    "{\"id\":\"evt_1NG8Du2eZvKYlo2CUI79vXWy\",\"object\":\"event\",\"account\":"                   \
    "\"acct_1032D82eZvKYlo2C\",\"created\":1700000000,\"type\":\"invoice.paid\"}"
/* printf '1700000000.%s' "$STRIPE_BODY" | openssl dgst -sha256 -hmac whsec_hookbridge_test */
#define STRIPE_V1 "c91af6aa04b4ba673cae8f521958d0ce65de1f54d3efb91769b0bde7871cb974"

static void test_stripe(void)
{
    hb_route_cfg_t rc = route("stripe");
    hb_scheme_t *s = scheme_new(&rc);
    ok(s != NULL, "stripe scheme built");
    if (!s)
        return;
    hb_delivery_t d;
    req_t r = {0};
    char out[4][2][256];
    is_int(sign_into(s, STRIPE_SECRET, STRIPE_BODY, 1700000000, NULL, out, &r), 1,
           "sign: 1 header");
    is_str(out[0][1], "t=1700000000,v1=" STRIPE_V1, "sign matches openssl's HMAC of t.body");
    /* Stripe's signing secret is used as it is, whsec_ prefix and all */
    is_int(rds(s, STRIPE_SECRET, &r, STRIPE_BODY, 1700000100, &d), HB_SCHEME_OK, "stripe -> OK");
    is_str(d.id, "evt_1NG8Du2eZvKYlo2CUI79vXWy", "id = body id");
    is_str(d.topic, "invoice.paid", "topic = body type");
    is_str(d.source, "acct_1032D82eZvKYlo2C", "source = body account");
    is_int(d.created_at, 1700000000, "created_at = body created");
    is_int(d.n_headers, 0, "no headers forwarded");
    hb_delivery_clear(&d);

    /* several v1 (a secret being rolled) and a v0, in any order */
    hset(&r, "Stripe-Signature",
         "t=1700000000,v1="
         "5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd"
         ",v1=" STRIPE_V1 ",v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39");
    is_int(rds(s, STRIPE_SECRET, &r, STRIPE_BODY, 1700000100, &d), HB_SCHEME_OK,
           "the second of two v1 matches -> OK (%s)", why);
    hb_delivery_clear(&d);
    is_int(rds(s, "whsec_old, " STRIPE_SECRET, &r, STRIPE_BODY, 1700000100, &d), HB_SCHEME_OK,
           "two secrets, the second matches -> OK");
    hb_delivery_clear(&d);

    hset(&r, "Stripe-Signature", "t=1700000000,v1=" STRIPE_V1);
    mismatch(rds(s, "whsec_other", &r, STRIPE_BODY, 1700000100, &d), "wrong secret");
    mismatch(rds(s, STRIPE_SECRET, &r, flip(STRIPE_BODY, 10), 1700000100, &d),
             "body changed by one byte");
    refused(rds(s, STRIPE_SECRET, &r, STRIPE_BODY, 1700000000 + 301, &d), "301 s old");
    ok(strstr(why, "in the past") && strstr(why, "300 s tolerance"), "reason: %s", why);
    refused(rds(s, STRIPE_SECRET, &r, STRIPE_BODY, 1700000000 - 301, &d), "301 s in the future");
    ok(strstr(why, "in the future") != NULL, "reason: %s", why);
    is_int(rds(s, STRIPE_SECRET, &r, STRIPE_BODY, 1700000000 + 300, &d), HB_SCHEME_OK,
           "exactly 300 s old is inside");
    hb_delivery_clear(&d);
    hset(&r, "Stripe-Signature", "t=1700000000,v0=" STRIPE_V1);
    refused(rds(s, STRIPE_SECRET, &r, STRIPE_BODY, 1700000100, &d), "v0= only, no v1");
    hset(&r, "Stripe-Signature", "v1=" STRIPE_V1);
    refused(rds(s, STRIPE_SECRET, &r, STRIPE_BODY, 1700000100, &d), "no t=");
    hset(&r, "Stripe-Signature", NULL);
    refused(rds(s, STRIPE_SECRET, &r, STRIPE_BODY, 1700000100, &d), "no Stripe-Signature");
    hset(&r, "Stripe-Signature", "t=1700000000,v1=c91af6aa");
    refused(rds(s, STRIPE_SECRET, &r, STRIPE_BODY, 1700000100, &d), "short v1");
    distinct_reasons("stripe");
    hb_scheme_free(s);

    rc.tolerance_ms = 600000;
    s = scheme_new(&rc);
    hset(&r, "Stripe-Signature", "t=1700000000,v1=" STRIPE_V1);
    is_int(rds(s, STRIPE_SECRET, &r, STRIPE_BODY, 1700000000 + 599, &d), HB_SCHEME_OK,
           "tolerance 600 s: 599 s old -> OK");
    hb_delivery_clear(&d);
    is_int(rds(s, STRIPE_SECRET, &r, STRIPE_BODY, 1700000000 + 601, &d), HB_SCHEME_UNAUTHORIZED,
           "tolerance 600 s: 601 s old -> UNAUTHORIZED");
    hb_scheme_free(s);
}

/* ---- Shopify ---- */

#define SHOPIFY_BODY "{\"id\":820982911946154500,\"email\":\"jon@example.com\"}"
/* printf '%s' "$SHOPIFY_BODY" | openssl dgst -sha256 -hmac shpss_hookbridge -binary | base64 */
#define SHOPIFY_SIG "Jj5dtUDEHOGEgIRr2JBhZjrLxNssjIIZkA7LBUhj6bw="

static void test_shopify(void)
{
    hb_route_cfg_t rc = route("shopify");
    hb_scheme_t *s = scheme_new(&rc);
    ok(s != NULL, "shopify scheme built");
    if (!s)
        return;
    hb_delivery_t d;
    req_t r = {0};
    char out[4][2][256];
    is_int(sign_into(s, "shpss_hookbridge", SHOPIFY_BODY, 0, "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
                     out, &r),
           2, "sign: signature and webhook id");
    is_str(out[0][1], SHOPIFY_SIG, "sign matches openssl's base64 HMAC");
    hset(&r, "X-Shopify-Topic", "orders/create");
    hset(&r, "X-Shopify-Shop-Domain", "example.myshopify.com");
    hset(&r, "X-Shopify-API-Version", "2024-07");
    is_int(rds(s, "shpss_hookbridge", &r, SHOPIFY_BODY, 0, &d), HB_SCHEME_OK, "shopify -> OK");
    is_str(d.id, "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", "id = X-Shopify-Webhook-Id");
    is_str(d.topic, "orders/create", "topic = X-Shopify-Topic");
    is_str(d.source, "example.myshopify.com", "source = X-Shopify-Shop-Domain");
    is_int(d.n_headers, 4, "the four X-Shopify-* headers sent are forwarded");
    is_str(fwd(&d, "x-shopify-api-version"), "2024-07", "x-shopify-api-version forwarded");
    hb_delivery_clear(&d);
    is_int(rds(s, "other,shpss_hookbridge", &r, SHOPIFY_BODY, 0, &d), HB_SCHEME_OK,
           "two secrets, the second matches -> OK");
    hb_delivery_clear(&d);

    mismatch(rds(s, "shpss_other", &r, SHOPIFY_BODY, 0, &d), "wrong secret");
    mismatch(rds(s, "shpss_hookbridge", &r, flip(SHOPIFY_BODY, 3), 0, &d),
             "body changed by one byte");
    req_t bad = r;
    hset(&bad, "X-Shopify-Hmac-SHA256",
         "263e5db5401c1ce18480846bd89061663acbc4db2c8c8219900ecb054863e9bc"); /* hex, not base64 */
    refused(rds(s, "shpss_hookbridge", &bad, SHOPIFY_BODY, 0, &d), "hex instead of base64");
    hset(&bad, "X-Shopify-Hmac-SHA256", NULL);
    refused(rds(s, "shpss_hookbridge", &bad, SHOPIFY_BODY, 0, &d), "no signature header");
    hset(&bad, "X-Shopify-Hmac-SHA256", "sha256=" SHOPIFY_SIG);
    is_int(rds(s, "shpss_hookbridge", &bad, SHOPIFY_BODY, 0, &d), HB_SCHEME_UNAUTHORIZED,
           "a prefix before the base64 -> UNAUTHORIZED");
    hset(&r, "X-Shopify-Topic", NULL);
    is_int(rds(s, "shpss_hookbridge", &r, SHOPIFY_BODY, 0, &d), HB_SCHEME_BAD_REQUEST,
           "verified without X-Shopify-Topic -> BAD_REQUEST (%s)", why);
    mismatch(rds(s, "shpss_hookbridge", &r, SHOPIFY_BODY " ", 0, &d), "a byte appended");
    distinct_reasons("shopify");
    hb_scheme_free(s);
}

/* ---- Slack ---- */

/* Slack's documented example ("Verifying requests from Slack",
 * api.slack.com/authentication/verifying-requests-from-slack): a slash
 * command, form-encoded, signed at 1531420618. */
#define SLACK_DOC_SECRET "8f742231b10e8888abcd99yyyzzz85a5"
#define SLACK_DOC_BODY                                                                             \
    "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id="         \
    "G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-"     \
    "collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%"             \
    "2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121."               \
    "803a0bc887a14d10d2c447fce8b6703c"
#define SLACK_DOC_SIG "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"

static void test_slack(void)
{
    hb_route_cfg_t rc = route("slack");
    hb_scheme_t *s = scheme_new(&rc);
    ok(s != NULL, "slack scheme built");
    if (!s)
        return;
    hb_delivery_t d;
    req_t r = {0};
    char out[4][2][256];
    is_int(sign_into(s, SLACK_DOC_SECRET, SLACK_DOC_BODY, 1531420618, NULL, out, &r), 2,
           "sign: timestamp and signature");
    is_str(req_get(&r, "X-Slack-Signature"), SLACK_DOC_SIG, "sign gives Slack's documented value");
    is_str(req_get(&r, "X-Slack-Request-Timestamp"), "1531420618", "and its timestamp");
    hset(&r, "X-Slack-Signature", SLACK_DOC_SIG);
    is_int(rds(s, SLACK_DOC_SECRET, &r, SLACK_DOC_BODY, 1531420618 + 10, &d), HB_SCHEME_BAD_REQUEST,
           "documented vector verifies; a slash command is not an event");
    is_int(rds(s, SLACK_DOC_SECRET, &r, SLACK_DOC_BODY "x", 1531420618 + 10, &d),
           HB_SCHEME_UNAUTHORIZED, "documented signature, one byte more -> UNAUTHORIZED");

    const char *body = "{\"token\":\"x\",\"team_id\":\"T061EG9R6\",\"api_app_id\":\"A0PNCHHK2\","
                       "\"event\":{\"type\":\"app_mention\",\"user\":\"U061F7AUR\"},"
                       "\"type\":\"event_callback\",\"event_id\":\"Ev0PV52K21\","
                       "\"event_time\":1700000000}";
    const char *secret = "slack-signing-secret";
    memset(&r, 0, sizeof(r));
    sign_into(s, secret, body, 1700000000, NULL, out, &r);
    is_int(rds(s, secret, &r, body, 1700000005, &d), HB_SCHEME_OK, "event -> OK (%s)", why);
    is_str(d.id, "Ev0PV52K21", "id = event_id");
    is_str(d.topic, "app_mention", "topic = event.type");
    is_str(d.source, "T061EG9R6", "source = team_id");
    is_int(d.delivery_attempts, 1, "first try: delivery_attempts 1");
    is_int(d.n_headers, 0, "no retry headers on a first try");
    hb_delivery_clear(&d);
    hset(&r, "X-Slack-Retry-Num", "2");
    hset(&r, "X-Slack-Retry-Reason", "http_timeout");
    is_int(rds(s,
               "first, "
               "slack-signing-secret",
               &r, body, 1700000005, &d),
           HB_SCHEME_OK, "a retry, two secrets, the second matches -> OK");
    is_int(d.delivery_attempts, 3, "X-Slack-Retry-Num 2 -> delivery_attempts 3");
    is_str(fwd(&d, "x-slack-retry-num"), "2", "x-slack-retry-num forwarded");
    is_str(fwd(&d, "x-slack-retry-reason"), "http_timeout", "x-slack-retry-reason forwarded");
    hb_delivery_clear(&d);

    /* no event: the body's own type */
    const char *limited = "{\"token\":\"x\",\"type\":\"app_rate_limited\",\"team_id\":\"T1\","
                          "\"minute_rate_limited\":1518467820,\"api_app_id\":\"A1\"}";
    req_t l = {0};
    sign_into(s, secret, limited, 1700000000, NULL, out, &l);
    is_int(rds(s, secret, &l, limited, 1700000000, &d), HB_SCHEME_OK, "app_rate_limited -> OK");
    is_str(d.topic, "app_rate_limited", "topic = type without an event");
    hb_delivery_clear(&d);

    /* url_verification: answered, not published; the challenge escaped */
    const char *uv = "{\"token\":\"Jhj5dZrVaK7ZwHHjRyZWjbDl\",\"challenge\":"
                     "\"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P\","
                     "\"type\":\"url_verification\"}";
    req_t u = {0};
    sign_into(s, secret, uv, 1700000000, NULL, out, &u);
    is_int(rds(s, secret, &u, uv, 1700000000, &d), HB_SCHEME_HANDSHAKE,
           "url_verification -> HANDSHAKE");
    is_str(d.reply, "{\"challenge\":\"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P\"}",
           "reply holds the challenge");
    is_str(d.reply_type, "application/json", "reply type");
    hb_delivery_clear(&d);
    const char *uvq = "{\"challenge\":\"a\\\"b\\\\c</\",\"type\":\"url_verification\"}";
    memset(&u, 0, sizeof(u));
    sign_into(s, secret, uvq, 1700000000, NULL, out, &u);
    is_int(rds(s, secret, &u, uvq, 1700000000, &d), HB_SCHEME_HANDSHAKE,
           "url_verification with a quote and a backslash -> HANDSHAKE");
    is_str(d.reply, "{\"challenge\":\"a\\\"b\\\\c</\"}", "the reply is escaped JSON");
    hb_delivery_clear(&d);
    mismatch(rds(s, "wrong", &u, uvq, 1700000000, &d), "url_verification with a wrong secret");

    hset(&r, "X-Slack-Retry-Num", NULL);
    refused(rds(s, secret, &r, body, 1700000000 + 301, &d), "timestamp 301 s old");
    ok(strstr(why, "in the past") != NULL, "reason: %s", why);
    refused(rds(s, secret, &r, body, 1700000000 - 301, &d), "timestamp 301 s ahead");
    ok(strstr(why, "in the future") != NULL, "reason: %s", why);
    mismatch(rds(s, secret, &r, flip(body, 40), 1700000000, &d), "body changed by one byte");
    req_t bad = r;
    char v1[128];
    snprintf(v1, sizeof(v1), "v1=%s", req_get(&r, "X-Slack-Signature") + 3);
    hset(&bad, "X-Slack-Signature", v1);
    refused(rds(s, secret, &bad, body, 1700000000, &d), "v1= instead of v0=");
    hset(&bad, "X-Slack-Signature", NULL);
    refused(rds(s, secret, &bad, body, 1700000000, &d), "no X-Slack-Signature");
    bad = r;
    hset(&bad, "X-Slack-Request-Timestamp", NULL);
    refused(rds(s, secret, &bad, body, 1700000000, &d), "no X-Slack-Request-Timestamp");
    hset(&bad, "X-Slack-Request-Timestamp", "1700000001");
    is_int(rds(s, secret, &bad, body, 1700000000, &d), HB_SCHEME_UNAUTHORIZED,
           "another timestamp than the one signed -> UNAUTHORIZED");
    distinct_reasons("slack");
    hb_scheme_free(s);
}

/* ---- Standard Webhooks ---- */

/* The reference libraries' test vectors (standard-webhooks/standard-webhooks,
 * libraries/go/webhook_test.go TestWebhookSign and
 * webhook_asymmetric_test.go TestAsymmetricWebhookSign). */
#define SW_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SW_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SW_TS 1614265330
#define SW_BODY "{\"test\": 2432232314}"
#define SW_V1 "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
#define SW_ED_SEED "VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk="
#define SW_V1A                                                                                     \
    "v1a,tQ9V2XOqn7jL/DQenEFpqIugdBVtiMmER5mhSkXBNwM0mkATuDe6KYYUuxqtaiHeYGb7KaaBRdM5WqyeFiL8Ag=="
/* the same libraries' "invalid signature" entry */
#define SW_BAD "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="

/* "whpk_" + base64 of the public half of key pair k. */
static void whpk(EVP_PKEY *k, char *out, size_t outlen)
{
    unsigned char raw[32];
    size_t n = sizeof(raw);
    EVP_PKEY_get_raw_public_key(k, raw, &n);
    unsigned char b64[64];
    EVP_EncodeBlock(b64, raw, (int)n);
    snprintf(out, outlen, "whpk_%s", b64);
}

/* "v1a," + base64 Ed25519 signature of msg with k (OpenSSL directly). */
static void v1a_sign(EVP_PKEY *k, const char *msg, char *out, size_t outlen)
{
    unsigned char sig[64], b64[96];
    size_t n = sizeof(sig);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestSignInit(ctx, NULL, NULL, NULL, k);
    EVP_DigestSign(ctx, sig, &n, (const unsigned char *)msg, strlen(msg));
    EVP_MD_CTX_free(ctx);
    EVP_EncodeBlock(b64, sig, (int)n);
    snprintf(out, outlen, "v1a,%s", b64);
}

static void test_standard(void)
{
    hb_route_cfg_t rc = route("standard");
    rc.topic_field = "/test"; /* the vectors' body has no type */
    hb_scheme_t *s = scheme_new(&rc);
    ok(s != NULL, "standard scheme built");
    if (!s)
        return;
    ok(hb_scheme_needs_secret(s), "an HMAC-only standard route needs a secret");
    hb_delivery_t d;
    req_t r = {0};
    char out[4][2][256];
    is_int(sign_into(s, SW_SECRET, SW_BODY, SW_TS, SW_ID, out, &r), 3, "sign: three headers");
    is_str(req_get(&r, "webhook-signature"), SW_V1, "sign gives the reference libraries' vector");
    is_str(req_get(&r, "webhook-id"), SW_ID, "webhook-id");
    is_str(req_get(&r, "webhook-timestamp"), "1614265330", "webhook-timestamp");
    hset(&r, "webhook-signature", SW_V1);
    is_int(rds(s, SW_SECRET, &r, SW_BODY, SW_TS, &d), HB_SCHEME_OK, "the vector verifies (%s)",
           why);
    is_str(d.id, SW_ID, "id = webhook-id");
    is_str(d.topic, "2432232314", "topic from topic_field /test (an integer as text)");
    ok(d.source == NULL, "no source_field: no source");
    is_str(fwd(&d, "webhook-id"), SW_ID, "webhook-id forwarded");
    is_str(fwd(&d, "webhook-timestamp"), "1614265330", "webhook-timestamp forwarded");
    hb_delivery_clear(&d);
    is_int(rds(s, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &r, SW_BODY, SW_TS, &d), HB_SCHEME_OK,
           "a secret without whsec_ is base64 too");
    hb_delivery_clear(&d);
    is_int(rds(s, "whsec_c2Vjb25k, " SW_SECRET, &r, SW_BODY, SW_TS, &d), HB_SCHEME_OK,
           "two secrets, the second matches -> OK");
    hb_delivery_clear(&d);
    /* the reference libraries' "valid multi sig" case */
    hset(&r, "webhook-signature",
         SW_BAD " v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= " SW_V1 " " SW_BAD);
    is_int(rds(s, SW_SECRET, &r, SW_BODY, SW_TS, &d), HB_SCHEME_OK,
           "space-separated list, the valid one third -> OK");
    hb_delivery_clear(&d);

    hset(&r, "webhook-signature", SW_BAD);
    mismatch(rds(s, SW_SECRET, &r, SW_BODY, SW_TS, &d), "the libraries' invalid signature");
    hset(&r, "webhook-signature", SW_V1);
    mismatch(rds(s, "whsec_b3RoZXI=", &r, SW_BODY, SW_TS, &d), "wrong secret");
    refused(rds(s, SW_SECRET, &r, SW_BODY, SW_TS + 301, &d), "timestamp 301 s old");
    refused(rds(s, SW_SECRET, &r, SW_BODY, SW_TS - 301, &d), "timestamp 301 s ahead");
    mismatch(rds(s, SW_SECRET, &r, flip(SW_BODY, 3), SW_TS, &d), "body changed by one byte");
    req_t bad = r;
    hset(&bad, "webhook-signature", "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    refused(rds(s, SW_SECRET, &bad, SW_BODY, SW_TS, &d), "v2, prefix (unknown version)");
    hset(&bad, "webhook-signature", NULL);
    refused(rds(s, SW_SECRET, &bad, SW_BODY, SW_TS, &d), "no webhook-signature");
    bad = r;
    hset(&bad, "webhook-id", NULL);
    refused(rds(s, SW_SECRET, &bad, SW_BODY, SW_TS, &d), "no webhook-id");
    hset(&bad, "webhook-id", "msg_other");
    is_int(rds(s, SW_SECRET, &bad, SW_BODY, SW_TS, &d), HB_SCHEME_UNAUTHORIZED,
           "another webhook-id than signed -> UNAUTHORIZED");
    bad = r;
    hset(&bad, "webhook-timestamp", NULL);
    refused(rds(s, SW_SECRET, &bad, SW_BODY, SW_TS, &d), "no webhook-timestamp");
    distinct_reasons("standard");
    hb_scheme_free(s);

    /* bad secrets and keys name the key, never the secret */
    s = scheme_new(&rc);
    char err[256] = "";
    ok(hb_scheme_keyset(s, "whsec_not*base64!", err, sizeof(err)) == NULL,
       "a whsec_ secret that is not base64 is refused");
    ok(strncmp(err, "route.r.secret:", 15) == 0 && !strstr(err, "not*base64"),
       "the error names the key and not the secret: %s", err);
    hb_scheme_free(s);
    rc.public_key = "whpk_dG9vIHNob3J0";
    is_str(new_error(&rc),
           "route.r.public_key: item 1 is not whpk_<base64 of a 32-byte Ed25519 key>",
           "a public key of the wrong size is refused");

    /* v1a: the reference libraries' Ed25519 vector; the public key derived
     * from its private seed with OpenSSL */
    unsigned char seed[32];
    EVP_DecodeBlock(seed, (const unsigned char *)SW_ED_SEED, 44);
    EVP_PKEY *ref = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
    char pk[80], msg[256], sig[128];
    whpk(ref, pk, sizeof(pk));
    rc.public_key = pk;
    s = scheme_new(&rc);
    ok(s && !hb_scheme_needs_secret(s), "a v1a-only standard route needs no secret");
    memset(&r, 0, sizeof(r));
    hset(&r, "webhook-id", SW_ID);
    hset(&r, "webhook-timestamp", "1614265330");
    hset(&r, "webhook-signature", SW_V1A);
    is_int(rds(s, NULL, &r, SW_BODY, SW_TS, &d), HB_SCHEME_OK,
           "the libraries' v1a vector verifies with no key set (%s)", why);
    hb_delivery_clear(&d);
    mismatch(rds(s, NULL, &r, flip(SW_BODY, 2), SW_TS, &d), "v1a: body changed by one byte");
    is_int(hb_scheme_sign(s, NULL, (const unsigned char *)"{}", 2, SW_TS, "x", out, 4), -1,
           "sign without a secret: -1");

    /* a key pair made here; the other one's signatures never verify */
    EVP_PKEY *k1 = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    EVP_PKEY *k2 = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    char pk1[80], pks[200];
    whpk(k1, pk1, sizeof(pk1));
    snprintf(pks, sizeof(pks), "%s, %s", pk, pk1);
    rc.public_key = pks;
    rc.topic_field = NULL;
    hb_scheme_free(s);
    s = scheme_new(&rc);
    const char *body = "{\"type\":\"invoice.paid\",\"data\":{\"tenant\":\"acme\"}}";
    snprintf(msg, sizeof(msg), "msg_1.1700000000.%s", body);
    v1a_sign(k1, msg, sig, sizeof(sig));
    memset(&r, 0, sizeof(r));
    hset(&r, "webhook-id", "msg_1");
    hset(&r, "webhook-timestamp", "1700000000");
    hset(&r, "webhook-signature", sig);
    is_int(rds(s, SW_SECRET, &r, body, 1700000000, &d), HB_SCHEME_OK,
           "v1a by a generated key, the second public key -> OK (%s)", why);
    is_str(d.topic, "invoice.paid", "topic = body type");
    hb_delivery_clear(&d);
    v1a_sign(k2, msg, sig, sizeof(sig));
    hset(&r, "webhook-signature", sig);
    mismatch(rds(s, SW_SECRET, &r, body, 1700000000, &d), "v1a by a key not configured");
    v1a_sign(k1, msg, sig, sizeof(sig));
    hset(&r, "webhook-signature", sig);
    refused(rds(s, SW_SECRET, &r, body, 1700000000 + 301, &d), "v1a: timestamp 301 s old");
    n_reasons = 0, mismatch_reason[0] = '\0';
    hb_scheme_free(s);

    /* id, topic and source elsewhere */
    rc.public_key = NULL;
    rc.topic_field = NULL;
    rc.source_field = "/data/tenant";
    rc.id_field = "header:X-Request-Id";
    s = scheme_new(&rc);
    memset(&r, 0, sizeof(r));
    sign_into(s, SW_SECRET, body, 1700000000, "msg_2", out, &r);
    hset(&r, "X-Request-Id", "req-9");
    is_int(rds(s, SW_SECRET, &r, body, 1700000000, &d), HB_SCHEME_OK, "fields elsewhere -> OK");
    is_str(d.topic, "invoice.paid", "topic = body type by default");
    is_str(d.source, "acme", "source from /data/tenant");
    is_str(d.id, "req-9", "id from header:X-Request-Id");
    hb_delivery_clear(&d);
    is_int(rds(s, SW_SECRET, &r, SW_BODY, 1700000000, &d), HB_SCHEME_UNAUTHORIZED,
           "another body under the same headers -> UNAUTHORIZED");
    hb_scheme_free(s);
    EVP_PKEY_free(ref);
    EVP_PKEY_free(k1);
    EVP_PKEY_free(k2);
}

/* ---- generic HMAC ---- */

#define HMAC_BODY "{\"event\":\"order.paid\",\"tenant\":{\"name\":\"acme\"},\"ts\":1700000000}"

/* Independent: OpenSSL's one-shot HMAC() and its own encoders. */
static void oneshot(const EVP_MD *md, int base64, const char *key, const char *msg, char *out)
{
    unsigned char mac[64];
    unsigned int n = 0;
    HMAC(md, key, (int)strlen(key), (const unsigned char *)msg, strlen(msg), mac, &n);
    if (base64) {
        EVP_EncodeBlock((unsigned char *)out, mac, (int)n);
        return;
    }
    for (unsigned i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", mac[i]);
}

static void test_hmac(void)
{
    const char *algs[] = {"sha1", "sha256", "sha512"};
    const EVP_MD *mds[] = {EVP_sha1(), EVP_sha256(), EVP_sha512()};
    const char *encs[] = {"hex", "base64"};
    hb_delivery_t d;
    for (int a = 0; a < 3; a++)
        for (int e = 0; e < 2; e++) {
            hb_route_cfg_t rc = route("hmac");
            rc.header = "X-Signature";
            rc.algorithm = (char *)algs[a];
            rc.encoding = (char *)encs[e];
            rc.prefix = a == 1 ? "sha256=" : "";
            rc.topic_field = "/event";
            rc.source_field = "/tenant/name";
            rc.id_field = "header:X-Delivery";
            hb_scheme_t *s = scheme_new(&rc);
            char sig[160], hv[200];
            oneshot(mds[a], e, "generic-secret", HMAC_BODY, sig);
            snprintf(hv, sizeof(hv), "%s%s", rc.prefix, sig);
            req_t r = {0};
            hset(&r, "X-Signature", hv);
            hset(&r, "X-Delivery", "dlv-1");
            is_int(rds(s, "x,generic-secret", &r, HMAC_BODY, 0, &d), HB_SCHEME_OK,
                   "hmac %s/%s -> OK (%s)", algs[a], encs[e], why);
            is_str(d.topic, "order.paid", "%s/%s: topic /event", algs[a], encs[e]);
            is_str(d.source, "acme", "%s/%s: source /tenant/name", algs[a], encs[e]);
            is_str(d.id, "dlv-1", "%s/%s: id header:X-Delivery", algs[a], encs[e]);
            hb_delivery_clear(&d);
            char out[4][2][256];
            req_t r2 = {0};
            sign_into(s, "generic-secret", HMAC_BODY, 0, "dlv-1", out, &r2);
            is_str(req_get(&r2, "X-Signature"), hv, "%s/%s: sign agrees with HMAC()", algs[a],
                   encs[e]);
            is_int(rds(s, "other", &r, HMAC_BODY, 0, &d), HB_SCHEME_UNAUTHORIZED,
                   "%s/%s: wrong secret -> UNAUTHORIZED", algs[a], encs[e]);
            is_int(rds(s, "generic-secret", &r, flip(HMAC_BODY, 7), 0, &d), HB_SCHEME_UNAUTHORIZED,
                   "%s/%s: one byte changed -> UNAUTHORIZED", algs[a], encs[e]);
            hb_scheme_free(s);
        }

    /* fixed with: printf '%s' "$HMAC_BODY" | openssl dgst -sha256 -hmac generic-secret */
    hb_route_cfg_t rc = route("hmac");
    rc.header = "X-Signature";
    rc.prefix = "sha256=";
    rc.topic_field = "/event";
    hb_scheme_t *s = scheme_new(&rc);
    req_t r = {0};
    hset(&r, "X-Signature",
         "sha256=5c1538cf57a94ba83784818e99e6e64b8f97ea5fc079a0f86d79696faaa3ba81");
    is_int(rds(s, "generic-secret", &r, HMAC_BODY, 0, &d), HB_SCHEME_OK,
           "defaults sha256/hex: the openssl digest verifies");
    ok(d.id == NULL && d.source == NULL, "no id_field/source_field: none");
    hb_delivery_clear(&d);
    mismatch(rds(s, "wrong", &r, HMAC_BODY, 0, &d), "wrong secret");
    mismatch(rds(s, "generic-secret", &r, flip(HMAC_BODY, 2), 0, &d), "one byte changed");
    hset(&r, "X-Signature",
         "sha1=5c1538cf57a94ba83784818e99e6e64b8f97ea5fc079a0f86d79696faaa3ba81");
    refused(rds(s, "generic-secret", &r, HMAC_BODY, 0, &d), "wrong prefix");
    hset(&r, "X-Signature", "sha256=5c1538cf57a94ba8");
    refused(rds(s, "generic-secret", &r, HMAC_BODY, 0, &d), "short digest");
    hset(&r, "X-Signature", NULL);
    refused(rds(s, "generic-secret", &r, HMAC_BODY, 0, &d), "no header");
    distinct_reasons("hmac");
    hb_scheme_free(s);

    /* "{timestamp}.{body}", timestamp in a header; fixed with
     * printf '1700000000.%s' "$HMAC_BODY" | openssl dgst -sha512 -hmac generic-secret -binary |
     * base64 */
    rc = route("hmac");
    rc.header = "X-Signature";
    rc.algorithm = "sha512";
    rc.encoding = "base64";
    rc.signed_payload = "{timestamp}.{body}";
    rc.timestamp_field = "header:X-Timestamp";
    rc.topic_field = "/event";
    s = scheme_new(&rc);
    memset(&r, 0, sizeof(r));
    hset(&r, "X-Signature",
         "TXFOHUWuc44b5oTzQaY73G9XOHVIl40W7uN4/somMfYfs0CcYOj0u+k8Kn+NLkanEeaf3YiF"
         "JFqFTjshkENl4A==");
    hset(&r, "X-Timestamp", "1700000000");
    is_int(rds(s, "generic-secret", &r, HMAC_BODY, 1700000010, &d), HB_SCHEME_OK,
           "{timestamp}.{body} -> OK (%s)", why);
    is_int(d.created_at, 1700000000, "created_at = the timestamp");
    hb_delivery_clear(&d);
    refused(rds(s, "generic-secret", &r, HMAC_BODY, 1700000000 + 301, &d), "301 s old");
    refused(rds(s, "generic-secret", &r, HMAC_BODY, 1700000000 - 301, &d), "301 s ahead");
    hset(&r, "X-Timestamp", "1700000001");
    mismatch(rds(s, "generic-secret", &r, HMAC_BODY, 1700000000, &d), "another timestamp");
    hset(&r, "X-Timestamp", NULL);
    refused(rds(s, "generic-secret", &r, HMAC_BODY, 1700000000, &d), "no timestamp header");
    n_reasons = 0, mismatch_reason[0] = '\0';
    hb_scheme_free(s);

    /* the timestamp in the body, read once the signature matched */
    rc = route("hmac");
    rc.header = "X-Signature";
    rc.timestamp_field = "/ts";
    rc.topic_field = "/event";
    s = scheme_new(&rc);
    memset(&r, 0, sizeof(r));
    hset(&r, "X-Signature", "5c1538cf57a94ba83784818e99e6e64b8f97ea5fc079a0f86d79696faaa3ba81");
    is_int(rds(s, "generic-secret", &r, HMAC_BODY, 1700000000, &d), HB_SCHEME_OK,
           "timestamp_field /ts inside the window -> OK");
    hb_delivery_clear(&d);
    is_int(rds(s, "generic-secret", &r, HMAC_BODY, 1700000000 + 301, &d), HB_SCHEME_UNAUTHORIZED,
           "timestamp_field /ts 301 s old -> UNAUTHORIZED (%s)", why);
    /* verify off: no signature, and no replay window either */
    req_t none = {0};
    hb_headers_t h = {req_get, &none};
    is_int(hb_scheme_read(s, NULL, 0, &h, (const unsigned char *)HMAC_BODY, strlen(HMAC_BODY),
                          1700000000 + 301, &d, why, sizeof(why)),
           HB_SCHEME_OK, "verify off: unsigned and 301 s old -> OK");
    is_str(d.topic, "order.paid", "verify off: fields still read");
    hb_delivery_clear(&d);
    is_int(hb_scheme_read(s, NULL, 1, &h, (const unsigned char *)HMAC_BODY, strlen(HMAC_BODY),
                          1700000000, &d, why, sizeof(why)),
           HB_SCHEME_UNAUTHORIZED, "verify on, unsigned -> UNAUTHORIZED");
    hb_scheme_free(s);

    /* RFC 6901 escapes */
    rc = route("hmac");
    rc.header = "X-Signature";
    rc.topic_field = "/a~1b/c~0d";
    rc.source_field = "/list/1";
    s = scheme_new(&rc);
    const char *esc = "{\"a/b\":{\"c~d\":\"escaped\"},\"list\":[\"zero\",\"one\"]}";
    char sig[160];
    oneshot(EVP_sha256(), 0, "k", esc, sig);
    memset(&r, 0, sizeof(r));
    hset(&r, "X-Signature", sig);
    is_int(rds(s, "k", &r, esc, 0, &d), HB_SCHEME_OK, "JSON pointer with ~1 and ~0 -> OK");
    is_str(d.topic, "escaped", "topic at /a~1b/c~0d");
    is_str(d.source, "one", "source at /list/1");
    hb_delivery_clear(&d);
    const char *notopic = "{\"a/b\":{}}";
    oneshot(EVP_sha256(), 0, "k", notopic, sig);
    hset(&r, "X-Signature", sig);
    is_int(rds(s, "k", &r, notopic, 0, &d), HB_SCHEME_BAD_REQUEST,
           "verified, topic missing -> BAD_REQUEST (%s)", why);
    hb_scheme_free(s);
}

/* ---- Intercom through the scheme interface ---- */

static void test_intercom(void)
{
    hb_route_cfg_t rc = route("intercom");
    hb_scheme_t *s = scheme_new(&rc);
    ok(s != NULL, "intercom scheme built");
    if (!s)
        return;
    const char *body = "{\"type\":\"notification_event\",\"app_id\":\"k7x2m9pw\","
                       "\"id\":\"notif_1\",\"topic\":\"contact.created\",\"delivery_attempts\":2,"
                       "\"created_at\":1700000000}";
    hb_delivery_t d;
    req_t r = {0};
    char out[4][2][256], sig[64];
    sign_into(s, "test_intercom_client_secret", body, 0, NULL, out, &r);
    hb_verify_intercom_sign("test_intercom_client_secret", (const unsigned char *)body,
                            strlen(body), sig, sizeof(sig));
    is_str(req_get(&r, "X-Hub-Signature"), sig, "sign = hb_verify_intercom_sign");
    is_int(rds(s, "a,test_intercom_client_secret", &r, body, 0, &d), HB_SCHEME_OK, "intercom OK");
    is_str(d.id, "notif_1", "id");
    is_str(d.topic, "contact.created", "topic");
    is_str(d.source, "k7x2m9pw", "source = app_id");
    is_int(d.delivery_attempts, 2, "delivery_attempts");
    is_int(d.created_at, 1700000000, "created_at");
    is_int(d.n_headers, 0, "no headers forwarded (the sinks add intercom-*)");
    ok(d.json == NULL && d.n_heap == 0, "no jansson tree, nothing allocated");
    hb_delivery_clear(&d);
    mismatch(rds(s, "wrong", &r, body, 0, &d), "wrong secret");
    mismatch(rds(s, "test_intercom_client_secret", &r, flip(body, 9), 0, &d), "one byte changed");
    req_t bad = {0};
    refused(rds(s, "test_intercom_client_secret", &bad, body, 0, &d), "no header");
    hset(&bad, "X-Hub-Signature", req_get(&r, "X-Hub-Signature") + 5);
    refused(rds(s, "test_intercom_client_secret", &bad, body, 0, &d), "no sha1= prefix");
    distinct_reasons("intercom");
    is_int(rds(s, "test_intercom_client_secret", &r, "{\"x\":", 0, &d), HB_SCHEME_UNAUTHORIZED,
           "signature of another body first: UNAUTHORIZED before parsing");

    /* verify off: no signature needed; verify on with no key context: never */
    hb_headers_t h = {req_get, &bad};
    is_int(hb_scheme_read(s, NULL, 0, &h, (const unsigned char *)body, strlen(body), 0, &d, why,
                          sizeof(why)),
           HB_SCHEME_OK, "verify off: unsigned delivery -> OK");
    hb_delivery_clear(&d);
    h.arg = &r;
    is_int(hb_scheme_read(s, NULL, 1, &h, (const unsigned char *)body, strlen(body), 0, &d, why,
                          sizeof(why)),
           HB_SCHEME_UNAUTHORIZED, "verify on, no key context -> UNAUTHORIZED");
    hb_scheme_free(s);
}

/* ---- hb_scheme_new refuses what does not fit ---- */

static void test_config_errors(void)
{
    hb_route_cfg_t rc = route("gitlab");
    ok(strncmp(new_error(&rc), "route.r.scheme: unknown scheme 'gitlab'", 39) == 0,
       "unknown scheme: %s", new_error(&rc));
    rc = route("github");
    rc.prefix = "sha256=";
    is_str(new_error(&rc), "route.r.prefix: does not apply to scheme github", "prefix on github");
    rc = route("stripe");
    rc.allow_sha1 = 1;
    is_str(new_error(&rc), "route.r.allow_sha1: does not apply to scheme stripe",
           "allow_sha1 on stripe");
    rc = route("slack");
    rc.public_key = "whpk_x";
    is_str(new_error(&rc), "route.r.public_key: does not apply to scheme slack",
           "public_key on slack");
    rc = route("shopify");
    rc.source_field = "/x";
    is_str(new_error(&rc), "route.r.source: does not apply to scheme shopify",
           "source_field on shopify");
    rc = route("intercom");
    rc.header = "";
    is_str(new_error(&rc), "(built)", "an empty option counts as unset");

    rc = route("hmac");
    rc.topic_field = "/type";
    is_str(new_error(&rc), "route.r.header: required by scheme hmac", "hmac without header");
    rc.header = "X-Sig";
    rc.algorithm = "md5";
    is_str(new_error(&rc), "route.r.algorithm: 'md5' is not sha1, sha256 or sha512", "md5");
    rc.algorithm = "sha512";
    rc.encoding = "base32";
    is_str(new_error(&rc), "route.r.encoding: 'base32' is not hex or base64", "base32");
    rc.encoding = NULL;
    rc.topic_field = NULL;
    is_str(new_error(&rc), "route.r.topic: required by scheme hmac", "no topic");
    rc.topic_field = "type";
    ok(strncmp(new_error(&rc), "route.r.topic: 'type' is neither", 31) == 0,
       "a field that is neither header: nor a pointer: %s", new_error(&rc));
    rc.topic_field = "/a~2";
    ok(strstr(new_error(&rc), "~0 or ~1") != NULL, "a bad ~ escape: %s", new_error(&rc));
    rc.topic_field = "/type";
    rc.signed_payload = "{timestamp}.{body}";
    rc.timestamp_field = "/ts";
    ok(strstr(new_error(&rc), "route.r.signed: {timestamp} needs timestamp") != NULL,
       "{timestamp} from the body is refused: %s", new_error(&rc));
    rc.signed_payload = "{id}.{body}";
    ok(strstr(new_error(&rc), "{id} needs id = header:") != NULL, "{id} without an id header");
    rc.signed_payload = "{ts}.{body}";
    ok(strstr(new_error(&rc), "unknown placeholder") != NULL, "unknown placeholder");
    rc.signed_payload = "{timestamp}";
    rc.timestamp_field = "header:X-Ts";
    is_str(new_error(&rc), "route.r.signed: must hold {body} exactly once",
           "a payload without the body");
    rc.signed_payload = "{body}{body}";
    is_str(new_error(&rc), "route.r.signed: must hold {body} exactly once", "twice");
    rc.signed_payload = "v0:{timestamp}:{body}";
    is_str(new_error(&rc), "(built)", "v0:{timestamp}:{body} builds");

    /* secrets: trimmed and split as hb_keyset_new does; refusals name the key */
    rc = route("github");
    hb_scheme_t *s = scheme_new(&rc);
    char err[256] = "";
    hb_keyset_t *ks = hb_scheme_keyset(s, " a , b,, ", err, sizeof(err));
    is_int(hb_keyset_count(ks), 2, "' a , b,, ' is two secrets");
    hb_keyset_unref(ks);
    ok(hb_scheme_keyset(s, " , ", err, sizeof(err)) == NULL, "no secret: NULL");
    is_str(err, "route.r.secret: no secret given", "and why");
    char *big = malloc(1100);
    memset(big, 'x', 1099);
    big[1099] = '\0';
    ok(hb_scheme_keyset(s, big, err, sizeof(err)) == NULL, "a 1099-byte secret is refused");
    is_str(err, "route.r.secret: item 1 is not a secret of at most 1024 bytes", "and why");
    free(big);
    hb_scheme_free(s);
    hb_scheme_free(NULL); /* accepted */
}

/* ---- regressions ---- */

/* hmac with timestamp = header:X but a signed payload without {timestamp}:
 * the window was checked on a header the signature does not cover, so a
 * captured delivery replayed with a fresh timestamp header was accepted
 * whenever it arrived. Such a route is refused when built. */
static void test_hmac_unsigned_timestamp_header_replayed(void)
{
    hb_route_cfg_t rc = route("hmac");
    rc.header = "X-Signature";
    rc.topic_field = "/event";
    rc.timestamp_field = "header:X-Timestamp";
    ok(strstr(new_error(&rc), "route.r.timestamp: header:X-Timestamp is not signed") != NULL,
       "a timestamp header outside the signed payload is refused: %s", new_error(&rc));
    hb_scheme_t *s = hb_scheme_new(&rc, why, sizeof(why));
    if (s) { /* what it allowed: a week-old delivery, replayed with a fresh header */
        char sig[160];
        oneshot(EVP_sha256(), 0, "generic-secret", HMAC_BODY, sig);
        req_t r = {0};
        hb_delivery_t d;
        hset(&r, "X-Signature", sig);
        hset(&r, "X-Timestamp", "1700604800");
        diag("replayed a week later: %d", rds(s, "generic-secret", &r, HMAC_BODY, 1700604800, &d));
        hb_delivery_clear(&d);
        hb_scheme_free(s);
    }
    /* signed, or inside the signed body: built */
    rc.signed_payload = "{timestamp}.{body}";
    is_str(new_error(&rc), "(built)", "header timestamp in the signed payload builds");
    rc.signed_payload = NULL;
    rc.timestamp_field = "/ts";
    is_str(new_error(&rc), "(built)", "a timestamp inside the signed body builds");
}

/* tolerance = INT64_MAX ms (the key's maximum) overflowed rounding up to
 * seconds: a negative window that refused every delivery (and undefined
 * behaviour). */
static void test_tolerance_max_overflow(void)
{
    hb_route_cfg_t rc = route("stripe");
    rc.tolerance_ms = INT64_MAX;
    hb_scheme_t *s = scheme_new(&rc);
    req_t r = {0};
    char out[4][2][256];
    hb_delivery_t d;
    sign_into(s, STRIPE_SECRET, STRIPE_BODY, 1700000000, NULL, out, &r);
    is_int(rds(s, STRIPE_SECRET, &r, STRIPE_BODY, 1700000000, &d), HB_SCHEME_OK,
           "tolerance INT64_MAX ms: a fresh delivery -> OK (%s)", why);
    hb_delivery_clear(&d);
    is_int(rds(s, STRIPE_SECRET, &r, STRIPE_BODY, 1700000000 + 86400 * 365, &d), HB_SCHEME_OK,
           "and a year-old one too (%s)", why);
    hb_delivery_clear(&d);
    hb_scheme_free(s);
    rc.tolerance_ms = 1001; /* still rounded up */
    s = scheme_new(&rc);
    is_int(rds(s, STRIPE_SECRET, &r, STRIPE_BODY, 1700000002, &d), HB_SCHEME_OK,
           "tolerance 1001 ms: 2 s -> OK (%s)", why);
    hb_delivery_clear(&d);
    is_int(rds(s, STRIPE_SECRET, &r, STRIPE_BODY, 1700000003, &d), HB_SCHEME_UNAUTHORIZED,
           "tolerance 1001 ms: 3 s -> UNAUTHORIZED");
    hb_scheme_free(s);
}

/* Refusals named the struct fields (route.r.topic_field, signed_payload)
 * where the route keys an operator sets are topic, signed, id, source and
 * timestamp (src/config.c's route key table): the message sent them to a
 * key that does not exist. Every key named must be one of the table's. */
static void test_errors_name_keys_that_do_not_exist(void)
{
    static const char *const keys[] = {
        "scheme",   "secret", "tolerance", "allow_sha1", "public_key", "header", "algorithm",
        "encoding", "prefix", "signed",    "id",         "topic",      "source", "timestamp",
    };
    hb_route_cfg_t cases[8];
    for (size_t i = 0; i < 8; i++)
        cases[i] = route("hmac"), cases[i].header = "X-Sig", cases[i].topic_field = "/t";
    cases[0].topic_field = NULL;                                 /* required */
    cases[1].signed_payload = "{ts}.{body}";                     /* unknown placeholder */
    cases[2].signed_payload = "{id}.{body}";                     /* {id} needs a header */
    cases[3].signed_payload = "{timestamp}";                     /* no body */
    cases[4].timestamp_field = "header:X-Ts";                    /* unsigned timestamp header */
    cases[5].id_field = "id";                                    /* neither header: nor a pointer */
    cases[6] = route("github"), cases[6].source_field = "/x";    /* does not apply */
    cases[7] = route("standard"), cases[7].topic_field = "/a~2"; /* bad escape */
    for (size_t i = 0; i < 8; i++) {
        const char *e = new_error(&cases[i]);
        char key[64] = "";
        sscanf(e, "route.r.%63[^:]", key);
        int known = 0;
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
            known |= strcmp(key, keys[k]) == 0;
        ok(known, "case %zu names a route key: %s", i, e);
        if (i == 2 || i == 4)
            ok(strstr(e, "_field") == NULL && strstr(e, "signed_payload") == NULL,
               "and its advice too: %s", e);
    }
}

int main(void)
{
    test_github();
    test_stripe();
    test_shopify();
    test_slack();
    test_standard();
    test_hmac();
    test_intercom();
    test_config_errors();
    test_hmac_unsigned_timestamp_header_replayed();
    test_tolerance_max_overflow();
    test_errors_name_keys_that_do_not_exist();
    return done_testing();
}
