/* See envelope_ref.h. This is src/event.c as it was before the scanner,
 * unchanged but for the names: do not "improve" it, it is the reference. */
#include "hb/fmacros.h"

#include "envelope_ref.h"
#include "hb/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static char *scalar_text(json_t *v)
{
    char buf[32];
    /* a string with a NUL in it cannot be a routing key: treat as absent */
    if (json_is_string(v) && !memchr(json_string_value(v), 0, json_string_length(v)))
        return hb_strndup(json_string_value(v), json_string_length(v));
    if (json_is_integer(v)) {
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return hb_strdup(buf);
    }
    return NULL;
}

static int64_t int_field(json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

int ref_envelope_parse(const char *body, size_t len, ref_envelope_t *env, char *why, size_t whylen)
{
    json_error_t jerr;
    memset(env, 0, sizeof(*env));
    json_t *root = json_loadb(body, len, JSON_ALLOW_NUL, &jerr);
    if (!root && strstr(jerr.text, "too big"))
        root = json_loadb(body, len, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &jerr);
    if (!root) {
        snprintf(why, whylen, "body is not valid JSON (line %d, column %d: %s)", jerr.line,
                 jerr.column, jerr.text);
        return -1;
    }
    int rc = -1;
    if (!json_is_object(root)) {
        snprintf(why, whylen, "body is not a JSON object");
        goto cleanup;
    }
    json_t *topic = json_object_get(root, "topic");
    if (!json_is_string(topic)) {
        snprintf(why, whylen, "body has no string \"topic\"");
        goto cleanup;
    }
    if (json_string_length(topic) == 0 || json_string_length(topic) > 255 ||
        memchr(json_string_value(topic), 0, json_string_length(topic))) {
        snprintf(why, whylen, "\"topic\" must be 1 to 255 characters, without NUL");
        goto cleanup;
    }
    env->topic = hb_strndup(json_string_value(topic), json_string_length(topic));
    env->app_id = scalar_text(json_object_get(root, "app_id"));
    env->id = scalar_text(json_object_get(root, "id"));
    env->delivery_attempts = int_field(root, "delivery_attempts");
    env->created_at = int_field(root, "created_at");
    rc = 0;
cleanup:
    json_decref(root);
    return rc;
}

void ref_envelope_clear(ref_envelope_t *env)
{
    free(env->topic);
    free(env->app_id);
    free(env->id);
    memset(env, 0, sizeof(*env));
}
