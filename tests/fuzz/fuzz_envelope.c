/* libFuzzer driver: envelope extraction from an arbitrary body. */
#include "hb/event.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hb_envelope_t env;
    char why[256];
    if (hb_envelope_parse((const char *)data, size, &env, why, sizeof(why)) == 0)
        hb_envelope_clear(&env);
    return 0;
}
