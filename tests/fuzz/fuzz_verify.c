/* libFuzzer driver: the signature schemes.
 *
 * Input, either
 *   header value, a NUL byte, then the body: Intercom's X-Hub-Signature
 *   parser and HMAC check (hb_verifier_intercom), as before; or
 *   0xff, a scheme selector byte, then "Name: value\n" header lines, an
 *   empty line, and the body: hb_scheme_read of that scheme (intercom,
 *   github, stripe, shopify, slack, standard with an Ed25519 key, hmac).
 *
 * Besides not crashing, a delivery read OK (or HANDSHAKE) with the right
 * secrets must be refused with other secrets: nothing is accepted without
 * the right MAC (or, on the standard route, a v1a signature, which the
 * check's scheme has no key for). The seeds in corpus/verify/ hold valid
 * signed deliveries (now = 1700000000), so mutations reach the body code. */
#include "hb/fmacros.h"

#include "hb/scheme.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NOW 1700000000
#define MAX_HEADERS 16

typedef struct {
    char *name[MAX_HEADERS], *value[MAX_HEADERS];
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

/* The routes fuzzed: the same as tests/fuzz/gen_verify_seeds.py signs. */
static hb_route_cfg_t routes[7], nopk;
static hb_scheme_t *schemes[7], *check_standard;
static hb_keyctx_t *right[7], *wrong[7];

static hb_keyctx_t *keyctx(const hb_scheme_t *s, const char *secrets)
{
    char err[256];
    hb_keyset_t *ks = hb_scheme_keyset(s, secrets, err, sizeof(err));
    if (!ks) {
        fprintf(stderr, "fuzz_verify: %s\n", err);
        abort();
    }
    hb_keyctx_t *kc = hb_scheme_keyctx(s, ks);
    hb_keyset_unref(ks);
    return kc;
}

static void setup(void)
{
    static const char *names[7] = {"intercom", "github",   "stripe", "shopify",
                                   "slack",    "standard", "hmac"};
    for (int i = 0; i < 7; i++) {
        routes[i].name = (char *)names[i];
        routes[i].scheme = (char *)names[i];
        routes[i].verify = 1;
    }
    routes[1].allow_sha1 = 1;
    /* public key of the Ed25519 seed "fuzz-seed-fuzz-seed-fuzz-seed-32" */
    routes[5].public_key = "whpk_rQS2shiC4YMUXx8Ao0vdzyaPYfLuly+al0bhowsEIg8=";
    routes[5].source_field = "header:X-Tenant";
    nopk = routes[5];
    nopk.public_key = NULL;
    routes[6].header = "X-Sig";
    routes[6].prefix = "sha512=";
    routes[6].algorithm = "sha512";
    routes[6].encoding = "base64";
    routes[6].signed_payload = "{timestamp}.{id}.{body}";
    routes[6].timestamp_field = "header:X-Ts";
    routes[6].id_field = "header:X-Id";
    routes[6].topic_field = "/a~1b";
    routes[6].source_field = "/s/0";
    char err[256];
    for (int i = 0; i < 7; i++) {
        schemes[i] = hb_scheme_new(&routes[i], err, sizeof(err));
        if (!schemes[i]) {
            fprintf(stderr, "fuzz_verify: %s\n", err);
            abort();
        }
        const char *good = i == 5 ? "whsec_c2VjcmV0LW9uZQ==,whsec_c2VjcmV0LXR3bw=="
                                  : "secret-one,secret-two";
        right[i] = keyctx(schemes[i], good);
        wrong[i] = keyctx(schemes[i], i == 5 ? "whsec_d3Jvbmc=" : "wrong");
    }
    check_standard = hb_scheme_new(&nopk, err, sizeof(err));
}

static void fuzz_intercom_header(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t hlen = nul ? (size_t)(nul - data) : size;
    char *header = malloc(hlen + 1);
    memcpy(header, data, hlen);
    header[hlen] = '\0';
    const uint8_t *body = nul ? nul + 1 : data + size;
    size_t blen = nul ? size - hlen - 1 : 0;
    hb_verifier_intercom.verify(right[0], header, body, blen);
    free(header);
}

/* Split "Name: value\n"... "\n" body; the strings are malloc'd in r. */
static const uint8_t *parse_request(const uint8_t *p, const uint8_t *end, req_t *r)
{
    while (p < end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        const uint8_t *line_end = nl ? nl : end;
        if (line_end == p)
            return nl ? nl + 1 : end; /* the empty line */
        const uint8_t *colon = memchr(p, ':', (size_t)(line_end - p));
        if (colon && r->n < MAX_HEADERS) {
            const uint8_t *v = colon + 1;
            while (v < line_end && *v == ' ')
                v++;
            r->name[r->n] = strndup((const char *)p, (size_t)(colon - p));
            r->value[r->n] = strndup((const char *)v, (size_t)(line_end - v));
            r->n++;
        }
        p = nl ? nl + 1 : end;
    }
    return end;
}

static void fuzz_scheme(int which, const uint8_t *p, const uint8_t *end)
{
    req_t r = {0};
    const uint8_t *body = parse_request(p, end, &r);
    size_t len = (size_t)(end - body);
    hb_headers_t h = {req_get, &r};
    hb_delivery_t d;
    char why[256];
    hb_scheme_status_t st =
        hb_scheme_read(schemes[which], right[which], 1, &h, body, len, NOW, &d, why, sizeof(why));
    if (st == HB_SCHEME_OK || st == HB_SCHEME_HANDSHAKE) {
        if (st == HB_SCHEME_OK && (!d.topic || d.topic_len != strlen(d.topic)))
            abort(); /* OK always has a topic, and its length */
        if (st == HB_SCHEME_HANDSHAKE && !d.reply)
            abort();
        hb_delivery_clear(&d);
        const hb_scheme_t *check = which == 5 ? check_standard : schemes[which];
        hb_scheme_status_t again =
            hb_scheme_read(check, wrong[which], 1, &h, body, len, NOW, &d, why, sizeof(why));
        if (again != HB_SCHEME_UNAUTHORIZED) {
            fprintf(stderr, "fuzz_verify: scheme %d accepted a delivery with the wrong secret\n",
                    which);
            abort();
        }
    } else if (d.topic || d.json || d.n_heap || d.n_headers) {
        abort(); /* a refused delivery holds nothing */
    }
    hb_delivery_clear(&d);
    /* verify off reads the same bytes without a signature */
    hb_scheme_read(schemes[which], NULL, 0, &h, body, len, NOW, &d, why, sizeof(why));
    hb_delivery_clear(&d);
    for (size_t i = 0; i < r.n; i++) {
        free(r.name[i]);
        free(r.value[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!schemes[0])
        setup();
    if (size >= 2 && data[0] == 0xff)
        fuzz_scheme(data[1] % 7, data + 2, data + size);
    else
        fuzz_intercom_header(data, size);
    return 0;
}
