/* CRC-32C (Castagnoli), the checksum of journal records: hardware
 * instruction where the CPU has SSE 4.2, a table otherwise. Pure. */
#ifndef HB_CRC32C_H
#define HB_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* crc32c(0, "123456789", 9) == 0xE3069283; chain by passing the previous
 * result as crc. */
uint32_t hb_crc32c(uint32_t crc, const void *buf, size_t len);

/* The same with the table, whatever the CPU: for tests, which check that
 * both paths agree. */
uint32_t hb_crc32c_sw(uint32_t crc, const void *buf, size_t len);

#endif
