/* Intercom's X-Hub-Signature: the shared vectors (testdata/intercom/
 * signatures.tsv and the two in testdata/README.md), the refusals the route
 * maps to 401, and secret rotation. */
#include "test.h"

#include "hb/verify.h"

#include <stdlib.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#define SECRET "test_intercom_client_secret"

/* A fresh key context per call, and a second call on the same context, so
 * that the per-request re-initialisation of a prepared context is checked
 * as well as its first use. */
static hb_verify_result_t verify(hb_keyset_t *ks, const char *hv, const void *body, size_t len)
{
    hb_keyctx_t *kc = hb_keyctx_new(&hb_verifier_intercom, ks);
    hb_verify_result_t first = hb_verifier_intercom.verify(kc, hv, body, len);
    hb_verify_result_t again = hb_verifier_intercom.verify(kc, hv, body, len);
    hb_keyctx_free(kc);
    if (first != again)
        diag("a reused key context answered %d, then %d", (int)first, (int)again);
    return first == again ? first : (hb_verify_result_t)-1;
}

static void upper(char *s)
{
    for (; *s; s++)
        if (*s >= 'a' && *s <= 'f')
            *s = (char)(*s - 'a' + 'A');
}

static void test_vectors_file(hb_keyset_t *ks)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/intercom/signatures.tsv", HB_TESTDATA);
    FILE *f = fopen(path, "r");
    ok(f != NULL, "open %s", path);
    if (!f)
        return;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0')
            continue;
        char *file = line, *secret = strchr(file, '\t');
        char *sig = secret ? strchr(secret + 1, '\t') : NULL;
        ok(sig != NULL, "signatures.tsv line has three tab-separated fields: %s", line);
        if (!sig)
            continue;
        *secret++ = '\0';
        *sig++ = '\0';
        n++;
        char bpath[8192];
        snprintf(bpath, sizeof(bpath), "%s/intercom/%s", HB_TESTDATA, file);
        size_t len;
        unsigned char *body = test_slurp(bpath, &len);
        ok(body != NULL && len > 0, "%s: read the body as raw bytes (%zu)", file, body ? len : 0);
        if (!body)
            continue;
        is_str(secret, SECRET, "%s: vector uses the test secret", file);
        char got[64];
        hb_verify_intercom_sign(secret, body, len, got, sizeof(got));
        is_str(got, sig, "%s: sign() computes the recorded header", file);
        is_int(verify(ks, sig, body, len), HB_VERIFY_OK, "%s: verifies OK", file);
        char up[64];
        snprintf(up, sizeof(up), "%s", sig);
        upper(up + 5);
        is_int(verify(ks, up, body, len), HB_VERIFY_OK, "%s: upper-case hex verifies OK", file);
        /* one byte more or less is another body */
        is_int(verify(ks, sig, body, len - 1), HB_VERIFY_MISMATCH,
               "%s: last byte dropped -> MISMATCH", file);
        free(body);
    }
    fclose(f);
    ok(n >= 7, "signatures.tsv holds at least the 7 sample vectors (%d)", n);
}

static void test_extra_vectors(void)
{
    char got[64];
    hb_verify_intercom_sign("It's a Secret to Everybody", (const unsigned char *)"Hello, World!",
                            13, got, sizeof(got));
    is_str(got, "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59",
           "sign(\"It's a Secret to Everybody\", \"Hello, World!\")");
    hb_keyset_t *ks = hb_keyset_new("It's a Secret to Everybody");
    ok(ks != NULL && hb_keyset_count(ks) == 1, "keyset of one secret with spaces and a quote");
    is_int(verify(ks, "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59", "Hello, World!", 13),
           HB_VERIFY_OK, "\"Hello, World!\" vector verifies");
    hb_keyset_unref(ks);

    const char *ping = "{\"type\":\"notification_event\",\"topic\":\"ping\"}";
    hb_verify_intercom_sign(SECRET, (const unsigned char *)ping, strlen(ping), got, sizeof(got));
    is_str(got, "sha1=3fb87a0b2a68f3f92ae8f770ce5f5bba9a798b6a", "sign(test secret, minimal ping)");
    ks = hb_keyset_new(SECRET);
    is_int(verify(ks, "sha1=3fb87a0b2a68f3f92ae8f770ce5f5bba9a798b6a", ping, strlen(ping)),
           HB_VERIFY_OK, "minimal ping vector verifies");
    hb_keyset_unref(ks);

    /* the output buffer documented as enough (46) holds the whole header */
    char exact[46];
    hb_verify_intercom_sign(SECRET, (const unsigned char *)ping, strlen(ping), exact,
                            sizeof(exact));
    is_str(exact, "sha1=3fb87a0b2a68f3f92ae8f770ce5f5bba9a798b6a", "sign() into a 46-byte buffer");
}

static void test_refusals(hb_keyset_t *ks)
{
    const char *body = "{\"type\":\"notification_event\",\"topic\":\"ping\"}";
    size_t len = strlen(body);
    const char *good = "sha1=3fb87a0b2a68f3f92ae8f770ce5f5bba9a798b6a";

    is_int(verify(ks, NULL, body, len), HB_VERIFY_MISSING, "no header -> MISSING");
    is_int(verify(ks, "", body, len), HB_VERIFY_MALFORMED, "empty header -> MALFORMED");
    is_int(verify(ks, "sha256=3fb87a0b2a68f3f92ae8f770ce5f5bba9a798b6a3fb87a0b2a68f3f92ae8f770",
                  body, len),
           HB_VERIFY_MALFORMED, "sha256=... -> MALFORMED");
    is_int(verify(ks, "3fb87a0b2a68f3f92ae8f770ce5f5bba9a798b6a", body, len), HB_VERIFY_MALFORMED,
           "hex without sha1= -> MALFORMED");
    is_int(verify(ks, "sha1=", body, len), HB_VERIFY_MALFORMED, "sha1= and nothing -> MALFORMED");
    is_int(verify(ks, "sha1=3fb87a0b", body, len), HB_VERIFY_MALFORMED, "short hex -> MALFORMED");
    is_int(verify(ks, "sha1=3fb87a0b2a68f3f92ae8f770ce5f5bba9a798b6", body, len),
           HB_VERIFY_MALFORMED, "39 hex digits -> MALFORMED");
    is_int(verify(ks, "sha1=3fb87a0b2a68f3f92ae8f770ce5f5bba9a798b6a0", body, len),
           HB_VERIFY_MALFORMED, "41 hex digits -> MALFORMED");
    is_int(verify(ks, "sha1=3fb87a0b2a68f3f92ae8f770ce5f5bba9a798b6a,", body, len),
           HB_VERIFY_MALFORMED, "trailing garbage -> MALFORMED");
    is_int(verify(ks, "sha1=3fb87a0b2a68f3f92ae8f770ce5f5bba9a798b6g", body, len),
           HB_VERIFY_MALFORMED, "non-hex digit 'g' -> MALFORMED");
    is_int(verify(ks, "sha1=zzb87a0b2a68f3f92ae8f770ce5f5bba9a798b6a", body, len),
           HB_VERIFY_MALFORMED, "non-hex digits 'zz' -> MALFORMED");
    is_int(verify(ks, "sha1=3fb87a0b2a68f3f92ae8f770ce5f5bba9a798b-a", body, len),
           HB_VERIFY_MALFORMED, "a '-' among the digits -> MALFORMED");

    is_int(verify(ks, good, body, len), HB_VERIFY_OK, "the good header verifies");
    is_int(verify(ks, "sha1=3FB87A0B2A68F3F92AE8F770CE5F5BBA9A798B6A", body, len), HB_VERIFY_OK,
           "upper-case hex verifies");
    is_int(verify(ks, "sha1=3Fb87A0b2a68f3f92ae8f770ce5f5bba9a798b6A", body, len), HB_VERIFY_OK,
           "mixed-case hex verifies");
    is_int(verify(ks, "sha1=3fb87a0b2a68f3f92ae8f770ce5f5bba9a798b6b", body, len),
           HB_VERIFY_MISMATCH, "last digit changed -> MISMATCH");
    is_int(verify(ks, "sha1=0000000000000000000000000000000000000000", body, len),
           HB_VERIFY_MISMATCH, "all-zero digest -> MISMATCH");

    /* one flipped byte anywhere in the body */
    char *copy = strdup(body);
    int all = 1;
    for (size_t i = 0; i < len; i++) {
        copy[i] ^= 0x01;
        if (verify(ks, good, copy, len) != HB_VERIFY_MISMATCH) {
            diag("flipping byte %zu did not give MISMATCH", i);
            all = 0;
        }
        copy[i] ^= 0x01;
    }
    ok(all, "one flipped body byte, at each of the %zu positions -> MISMATCH", len);
    is_int(verify(ks, good, copy, len), HB_VERIFY_OK, "the restored body verifies again");
    free(copy);

    /* a signature made with another secret */
    char other[64];
    hb_verify_intercom_sign("not_the_secret", (const unsigned char *)body, len, other,
                            sizeof(other));
    is_int(verify(ks, other, body, len), HB_VERIFY_MISMATCH,
           "signed with another secret -> MISMATCH");
    /* no key set at all never verifies */
    is_int(verify(NULL, good, body, len), HB_VERIFY_MISMATCH, "NULL key set -> MISMATCH, no crash");

    /* empty body */
    char sig[64];
    hb_verify_intercom_sign(SECRET, (const unsigned char *)"", 0, sig, sizeof(sig));
    is_int(verify(ks, sig, "", 0), HB_VERIFY_OK, "empty body signed and verified");
    is_int(verify(ks, sig, "x", 1), HB_VERIFY_MISMATCH,
           "that signature on a 1-byte body -> MISMATCH");

    /* bodies with NUL bytes are bytes, not strings */
    const unsigned char nul[] = {'{', 0, '}', 0};
    hb_verify_intercom_sign(SECRET, nul, sizeof(nul), sig, sizeof(sig));
    is_int(verify(ks, sig, nul, sizeof(nul)), HB_VERIFY_OK, "body with NUL bytes verifies");
    is_int(verify(ks, sig, nul, 1), HB_VERIFY_MISMATCH,
           "only the bytes before the NUL -> MISMATCH");
}

static void test_keysets(void)
{
    ok(hb_keyset_new("") == NULL, "hb_keyset_new(\"\") == NULL");
    ok(hb_keyset_new(" , ") == NULL, "hb_keyset_new(\" , \") == NULL");
    ok(hb_keyset_new(",,,") == NULL, "hb_keyset_new(\",,,\") == NULL");
    ok(hb_keyset_new(NULL) == NULL, "hb_keyset_new(NULL) == NULL");
    is_int(hb_keyset_count(NULL), 0, "count of NULL is 0");

    const char *body = "{\"topic\":\"contact.created\",\"app_id\":\"k7x2m9pw\"}";
    size_t len = strlen(body);
    const char *secrets[] = {"old-secret", SECRET, "third secret"};
    hb_keyset_t *ks = hb_keyset_new(" old-secret ,test_intercom_client_secret,, third secret ");
    ok(ks != NULL, "rotation key set built");
    is_int(hb_keyset_count(ks), 3, "three secrets, the empty item ignored");
    char sig[64];
    for (int i = 0; i < 3; i++) {
        hb_verify_intercom_sign(secrets[i], (const unsigned char *)body, len, sig, sizeof(sig));
        is_int(verify(ks, sig, body, len), HB_VERIFY_OK,
               "rotation: signed with secret %d ('%s') -> OK", i, secrets[i]);
    }
    hb_verify_intercom_sign(" old-secret ", (const unsigned char *)body, len, sig, sizeof(sig));
    is_int(verify(ks, sig, body, len), HB_VERIFY_MISMATCH,
           "spaces around a listed secret are not part of it");
    hb_verify_intercom_sign("old-secret,test_intercom_client_secret", (const unsigned char *)body,
                            len, sig, sizeof(sig));
    is_int(verify(ks, sig, body, len), HB_VERIFY_MISMATCH, "the whole list is not a secret");
    hb_verify_intercom_sign("old", (const unsigned char *)body, len, sig, sizeof(sig));
    is_int(verify(ks, sig, body, len), HB_VERIFY_MISMATCH, "a prefix of a secret -> MISMATCH");

    /* references: the set stays valid while any reference is held */
    hb_keyset_t *ref = hb_keyset_ref(ks);
    ok(ref == ks, "hb_keyset_ref returns the same set");
    hb_keyset_unref(ks);
    hb_verify_intercom_sign(SECRET, (const unsigned char *)body, len, sig, sizeof(sig));
    is_int(verify(ref, sig, body, len), HB_VERIFY_OK, "still usable through the second reference");
    hb_keyset_unref(ref);
    hb_keyset_unref(NULL); /* accepted */
    ok(hb_keyset_ref(NULL) == NULL, "hb_keyset_ref(NULL) == NULL");

    /* a key context holds its own reference: SIGHUP drops the old set
     * while an HTTP thread may still be verifying with it */
    hb_keyset_t *dropped = hb_keyset_new(SECRET);
    hb_keyctx_t *kc = hb_keyctx_new(&hb_verifier_intercom, dropped);
    hb_keyset_unref(dropped);
    hb_verify_intercom_sign(SECRET, (const unsigned char *)body, len, sig, sizeof(sig));
    is_int(hb_verifier_intercom.verify(kc, sig, (const unsigned char *)body, len), HB_VERIFY_OK,
           "a key context verifies after its key set's last outside reference is dropped");
    hb_keyctx_free(kc);
    kc = hb_keyctx_new(&hb_verifier_intercom, NULL);
    is_int(hb_verifier_intercom.verify(kc, sig, (const unsigned char *)body, len),
           HB_VERIFY_MISMATCH, "a key context of no key set never verifies");
    hb_keyctx_free(kc);
    hb_keyctx_free(NULL); /* accepted */
}

static void test_ops(void)
{
    is_str(hb_verifier_intercom.name, "intercom", "verifier name");
    ok(hb_verifier_intercom.header &&
           strcasecmp(hb_verifier_intercom.header, "X-Hub-Signature") == 0,
       "verifier reads X-Hub-Signature");
    const char *s[4];
    for (int i = 0; i < 4; i++)
        s[i] = hb_verify_result_str((hb_verify_result_t)i);
    int distinct = 1;
    for (int i = 0; i < 4; i++)
        for (int k = i + 1; k < 4; k++)
            if (!s[i] || !s[k] || strcmp(s[i], s[k]) == 0)
                distinct = 0;
    ok(distinct, "hb_verify_result_str gives four distinct texts");
}

/* The pieces the other schemes are built from: byte keys, several
 * digests per context, several candidate signatures, split payloads. */
static void test_match(void)
{
    const unsigned char k0[] = "first", k1[] = {'n', 0, 'u', 'l'}, k2[] = "It's a Secret";
    const unsigned char *keys[] = {k0, k1, k2};
    const size_t lens[] = {5, 4, 13};
    ok(hb_keyset_new_bytes(0, keys, lens) == NULL, "no keys: NULL");
    hb_keyset_t *ks = hb_keyset_new_bytes(3, keys, lens);
    is_int(hb_keyset_count(ks), 3, "three byte keys");
    const char *digests[] = {"SHA256", "SHA1"};
    hb_keyctx_t *kc = hb_keyctx_new_digests(ks, digests, 2);
    hb_keyset_unref(ks);

    const char *msg = "1700000000.{\"a\":1}";
    unsigned char want256[3][32], want1[20];
    unsigned int n = 0;
    for (int i = 0; i < 3; i++)
        HMAC(EVP_sha256(), keys[i], (int)lens[i], (const unsigned char *)msg, strlen(msg),
             want256[i], &n);
    HMAC(EVP_sha1(), k1, 4, (const unsigned char *)msg, strlen(msg), want1, &n);
    hb_span_t whole = {msg, strlen(msg)};
    hb_span_t split[] = {{msg, 10}, {msg + 10, 1}, {msg + 11, strlen(msg) - 11}, {"", 0}};
    size_t l32 = 32, l20 = 20;
    for (int i = 0; i < 3; i++) {
        const unsigned char *sig[] = {want256[i]};
        ok(hb_keyctx_match(kc, 0, &whole, 1, sig, &l32, 1), "SHA-256 under key %d matches", i);
        ok(hb_keyctx_match(kc, 0, split, 4, sig, &l32, 1), "the same over split parts (key %d)", i);
        ok(!hb_keyctx_match(kc, 1, &whole, 1, sig, &l32, 1),
           "a SHA-256 digest does not match the SHA-1 contexts (key %d)", i);
    }
    const unsigned char *sig1[] = {want1};
    ok(hb_keyctx_match(kc, 1, &whole, 1, sig1, &l20, 1), "SHA-1 under the key holding a NUL");
    ok(!hb_keyctx_match(kc, 2, &whole, 1, sig1, &l20, 1), "digest index out of range: no match");
    ok(!hb_keyctx_match(NULL, 0, &whole, 1, sig1, &l20, 1), "no key context: no match");

    unsigned char zero[32] = {0}, shortened[32];
    memcpy(shortened, want256[2], 32);
    const unsigned char *cands[] = {zero, shortened, want256[2]};
    size_t clens[] = {32, 31, 32};
    ok(hb_keyctx_match(kc, 0, &whole, 1, cands, clens, 3), "the third of three candidates matches");
    ok(!hb_keyctx_match(kc, 0, &whole, 1, cands, clens, 2),
       "a zero digest and a truncated right one: no match");
    hb_span_t other = {msg, strlen(msg) - 1};
    ok(!hb_keyctx_match(kc, 0, &other, 1, cands, clens, 3), "one byte less: no match");
    hb_keyctx_free(kc);

    unsigned char md[64];
    is_int(hb_hmac_parts("SHA256", k1, 4, split, 4, md), 32, "hb_hmac_parts: 32 bytes");
    ok(memcmp(md, want256[1], 32) == 0, "hb_hmac_parts agrees with HMAC()");
    is_int(hb_hmac_parts("SHA512", "", 0, &whole, 1, md), 64, "an empty key is a key (SHA-512)");

    unsigned char out[4];
    is_int(hb_hex_decode("00fFa9", 6, out, 4), 3, "hex of either case");
    ok(out[0] == 0 && out[1] == 0xff && out[2] == 0xa9, "decoded bytes");
    is_int(hb_hex_decode("abc", 3, out, 4), -1, "odd length -> -1");
    is_int(hb_hex_decode("0011223344", 10, out, 4), -1, "more than fits -> -1");
    is_int(hb_hex_decode("0g", 2, out, 4), -1, "not hex -> -1");
    is_int(hb_hex_decode("", 0, out, 4), 0, "empty -> 0 bytes");
}

int main(void)
{
    hb_keyset_t *ks = hb_keyset_new(SECRET);
    ok(ks != NULL && hb_keyset_count(ks) == 1, "key set with the test secret");
    test_vectors_file(ks);
    test_extra_vectors();
    test_refusals(ks);
    test_keysets();
    test_ops();
    test_match();
    hb_keyset_unref(ks);
    return done_testing();
}
