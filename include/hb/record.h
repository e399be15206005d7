/* Journal record encoding: pure functions, no I/O.
 *
 * A record is a 24-byte header and a payload, all integers little-endian:
 *
 *   header:  u32 magic "HBJ1" | u32 payload_len | u64 seq | u32 payload_crc | u32 header_crc
 *   payload: u64 received_at_ms | i64 delivery_attempts | i64 created_at
 *            | u16 topic_len | u16 app_id_len | u16 id_len | u16 flags | u32 body_len
 *            | u32 ext_len | topic | app_id | id | body | ext
 *   ext:     u16 route_len | route | u16 n_headers
 *            | n_headers x (u16 name_len | name | u16 value_len | value)
 *
 * app_id holds the delivery's source (the tenant: Intercom's app_id,
 * GitHub's repository, Stripe's account, ...). ext_len 0 (no ext) means
 * the route "intercom" with no forwarded headers: records written before
 * routes existed decode unchanged, and the Intercom route writes the same
 * bytes as before.
 *
 * payload_crc (CRC-32C of the payload) is computed by the thread that
 * prepares the record; the journal writer assigns seq and seals the header
 * (header_crc covers its first 20 bytes), so the writer's work per record
 * is constant. A missing app_id or id is flagged, not stored as "".
 *
 * A commit mark closes each batch the journal writes (and opens each
 * segment, as an empty batch, so that a segment file announces its format):
 *
 *   header:  u32 magic "HBC1" | u32 payload_len (32) | u64 last_seq | u32 payload_crc
 *            | u32 header_crc
 *   payload: u64 first_seq | u64 batch_bytes | u64 synced_end | u32 batch_crc | u32 reserved
 *
 * batch_bytes are the record bytes between the previous mark and this one;
 * batch_crc is the CRC-32C of those records' 24-byte headers (each header
 * holds its payload's CRC, so the chain covers every byte). synced_end is
 * an offset in the segment that was already durable when the batch was
 * written. Recovery counts only records a valid mark covers (a power cut
 * may keep later pages of an unsynced batch and lose earlier ones), and
 * bad bytes below the highest synced_end any mark claims are damage, not a
 * torn tail. */
#ifndef HB_RECORD_H
#define HB_RECORD_H

#include <stddef.h>
#include <stdint.h>

#define HB_RECORD_HEADER 24
#define HB_RECORD_FIXED 40          /* fixed part of the payload */
#define HB_RECORD_MAGIC 0x314A4248u /* "HBJ1" read little-endian */
#define HB_COMMIT_MAGIC 0x31434248u /* "HBC1" */
#define HB_COMMIT_SIZE 56
#define HB_RECORD_MAX_PAYLOAD (64u << 20) /* > limits.max_body's 60 MiB + envelope */

#define HB_REC_HAS_APP_ID 1
#define HB_REC_HAS_ID 2

/* A forwarded provider header (e.g. x-github-delivery), not NUL-terminated
 * in a decoded view. */
typedef struct hb_record_hdr {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} hb_record_hdr_t;

#define HB_RECORD_DEFAULT_ROUTE "intercom"

typedef struct hb_record {
    uint64_t seq;
    uint64_t received_at_ms;
    int64_t delivery_attempts; /* -1 when absent */
    int64_t created_at;        /* -1 when absent */
    const char *topic;         /* not NUL-terminated in a decoded view */
    size_t topic_len;
    const char *app_id; /* NULL when absent */
    size_t app_id_len;
    const char *id; /* NULL when absent */
    size_t id_len;
    const unsigned char *body;
    size_t body_len;
    /* The route; NULL (or "intercom") with no headers writes no ext. A
     * decoded view always sets it (to "intercom" for a record without
     * ext). */
    const char *route;
    size_t route_len;
    /* encoding: the headers to store; decoding: n_headers and the raw
     * header list in hdr_block, walked with hb_record_hdr_next */
    const hb_record_hdr_t *headers;
    size_t n_headers;
    const unsigned char *hdr_block;
    size_t hdr_block_len;
} hb_record_t;

/* The next forwarded header of a decoded record: start with *pos = 0;
 * returns 0 and fills h, or -1 after the last. */
int hb_record_hdr_next(const hb_record_t *r, size_t *pos, hb_record_hdr_t *h);

/* Bytes needed to encode r (header included). */
size_t hb_record_size(const hb_record_t *r);
/* Encode r into buf (>= hb_record_size) with seq 0 and the header unsealed. */
size_t hb_record_prepare(const hb_record_t *r, unsigned char *buf);
/* Set seq and the header checksum of a prepared record. */
void hb_record_seal(unsigned char *buf, uint64_t seq);

typedef struct hb_commit {
    uint64_t first_seq, last_seq; /* an empty batch (segment start): both 0 */
    uint64_t batch_bytes;
    uint64_t synced_end;
    uint32_t batch_crc;
} hb_commit_t;

/* Encode a commit mark into buf (HB_COMMIT_SIZE bytes). */
void hb_commit_encode(const hb_commit_t *c, unsigned char *buf);
/* Fold one record's header (the first HB_RECORD_HEADER bytes of a sealed
 * record) into a batch CRC; start from 0. */
uint32_t hb_commit_crc_add(uint32_t crc, const unsigned char *record);

typedef enum {
    HB_DECODE_COMMIT = 2, /* a valid commit mark (hb_record_decode fills *commit) */
    HB_DECODE_OK = 1,
    HB_DECODE_SHORT = 0,   /* need more bytes (a torn tail if at EOF) */
    HB_DECODE_CORRUPT = -1 /* bad magic, length or checksum */
} hb_decode_t;

/* Decode one record from buf; on OK fills r (pointing into buf) and *used.
 * A commit mark is HB_DECODE_COMMIT with *used set and, when commit is
 * not NULL, *commit filled. */
hb_decode_t hb_record_decode_any(const unsigned char *buf, size_t avail, hb_record_t *r,
                                 hb_commit_t *commit, size_t *used);
/* The same for callers that only want records: a commit mark is CORRUPT. */
hb_decode_t hb_record_decode(const unsigned char *buf, size_t avail, hb_record_t *r, size_t *used);

#endif
