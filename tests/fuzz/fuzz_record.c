/* libFuzzer driver: the journal record decoder on arbitrary bytes, which
 * is what recovery meets after a crash or on a damaged disk. A decoded
 * record's fields must lie inside the input. */
#include "hb/record.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0, used;
    hb_record_t r;
    while (off < size && hb_record_decode(data + off, size - off, &r, &used) == HB_DECODE_OK) {
        const uint8_t *end = data + size;
        if ((const uint8_t *)r.topic + r.topic_len > end || r.body + r.body_len > end ||
            used > size - off)
            abort();
        off += used;
    }
    return 0;
}
