/* The envelope extraction hookbridge used before src/event.c's scanner,
 * kept as the scanner's oracle: jansson parses the whole body into a tree
 * and the five fields are read from it. Test-only (the differential fuzz
 * target, test_event and the timing tool link it). */
#ifndef HB_ENVELOPE_REF_H
#define HB_ENVELOPE_REF_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *topic, *app_id, *id; /* malloc'd; NULL when missing */
    int64_t delivery_attempts, created_at;
} ref_envelope_t;

/* 0, or -1 with jansson's error in why. */
int ref_envelope_parse(const char *body, size_t len, ref_envelope_t *env, char *why, size_t whylen);
void ref_envelope_clear(ref_envelope_t *env);

#endif
