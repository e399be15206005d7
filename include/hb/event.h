/* Envelope extraction: the few fields of an Intercom notification that the
 * bridge routes on. The raw body is never re-serialised; one pass over it
 * validates it as JSON and finds these fields, and only their values are
 * decoded. What counts as valid is exactly what jansson's json_loadb
 * accepts (see src/event.c; tests/fuzz/fuzz_envelope_diff.c holds the two
 * against each other).
 *
 * Pure functions, callable from any thread. */
#ifndef HB_EVENT_H
#define HB_EVENT_H

#include <stddef.h>
#include <stdint.h>

/* room for the decoded strings of a typical notification, so that a parse
 * allocates nothing; a longer string is malloc'd */
#define HB_ENVELOPE_INLINE 320

typedef struct hb_envelope {
    char *topic;               /* always set after a successful parse */
    char *app_id;              /* NULL when missing, null, or not a string/integer */
    char *id;                  /* NULL when missing or null (a ping) */
    size_t topic_len;          /* bytes, without the terminating NUL */
    size_t app_id_len;         /* 0 when app_id is NULL */
    size_t id_len;             /* 0 when id is NULL */
    int64_t delivery_attempts; /* -1 when missing */
    int64_t created_at;        /* -1 when missing */
    /* Storage, not part of the contract: the strings above may point into
     * `inline_buf`, so an envelope must not be copied or moved between
     * parse and clear. `heap` has a bit for each string that was malloc'd. */
    unsigned heap;
    char inline_buf[HB_ENVELOPE_INLINE];
} hb_envelope_t;

/* Parse `body` (len bytes, need not be NUL-terminated); on failure returns
 * -1 with a client-safe reason (byte offset and cause) in why, and the
 * envelope holds nothing. The strings are NUL-terminated and never contain
 * a NUL. Release with hb_envelope_clear. */
int hb_envelope_parse(const char *body, size_t len, hb_envelope_t *env, char *why, size_t whylen);
void hb_envelope_clear(hb_envelope_t *env);

#endif
