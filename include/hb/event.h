/* Envelope extraction: the few fields of an Intercom notification that the
 * bridge routes on. The raw body is never re-serialised; jansson parses it
 * once to validate it and read these fields, then the tree is dropped.
 *
 * Pure functions, callable from any thread. */
#ifndef HB_EVENT_H
#define HB_EVENT_H

#include <stddef.h>
#include <stdint.h>

typedef struct hb_envelope {
    char *topic;               /* always set after a successful parse */
    char *app_id;              /* NULL when missing or null */
    char *id;                  /* NULL when missing or null (a ping) */
    int64_t delivery_attempts; /* -1 when missing */
    int64_t created_at;        /* -1 when missing */
} hb_envelope_t;

/* Parse `body`; on failure returns -1 with a client-safe reason in why.
 * The envelope owns its strings: release with hb_envelope_clear. */
int hb_envelope_parse(const char *body, size_t len, hb_envelope_t *env, char *why, size_t whylen);
void hb_envelope_clear(hb_envelope_t *env);

#endif
