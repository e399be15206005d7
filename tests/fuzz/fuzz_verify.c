/* libFuzzer driver: the X-Hub-Signature header parser and HMAC check.
 * Input: header value, a NUL byte, then the body. */
#include "hb/verify.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static hb_keyctx_t *kc;
    if (!kc) {
        hb_keyset_t *ks = hb_keyset_new("test_intercom_client_secret,second");
        kc = hb_keyctx_new(&hb_verifier_intercom, ks);
        hb_keyset_unref(ks);
    }
    const uint8_t *nul = memchr(data, 0, size);
    size_t hlen = nul ? (size_t)(nul - data) : size;
    char *header = malloc(hlen + 1);
    memcpy(header, data, hlen);
    header[hlen] = '\0';
    const uint8_t *body = nul ? nul + 1 : data + size;
    size_t blen = nul ? size - hlen - 1 : 0;
    hb_verifier_intercom.verify(kc, header, body, blen);
    free(header);
    return 0;
}
