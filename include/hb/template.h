/* Templates for Kafka topics and keys and Redis stream keys: literal text
 * with {route}, {source} (the tenant; {app_id} and {workspace} are its
 * Intercom names), {topic} and {id}. A field that is missing or null
 * expands to "_". Pure functions, any thread. */
#ifndef HB_TEMPLATE_H
#define HB_TEMPLATE_H

#include <stddef.h>

typedef enum {
    HB_TMPL_RAW = 0,     /* Kafka message key: any bytes */
    HB_TMPL_KAFKA_TOPIC, /* [A-Za-z0-9._-], at most 249 chars */
    HB_TMPL_REDIS_KEY    /* printable, no spaces */
} hb_tmpl_kind_t;

/* 0 if every {placeholder} is known, else -1 with the reason. */
int hb_template_check(const char *tmpl, char *err, size_t errlen);

/* The values a template refers to; NULL when absent. */
typedef struct hb_tmpl_fields {
    const char *route;
    const char *source;
    const char *topic;
    const char *id;
} hb_tmpl_fields_t;

/* Expand into out (always NUL-terminated, truncated to outlen-1; for Kafka
 * topics to 249). Returns the length written. */
size_t hb_template_expand(const char *tmpl, hb_tmpl_kind_t kind, const hb_tmpl_fields_t *f,
                          char *out, size_t outlen);

#endif
