/* JSON-lines formatting of events. See include/hb/jsonl.h. Strings are
 * escaped by jansson; the payload is copied, never re-serialised. */
#include "hb/fmacros.h"

#include "hb/jsonl.h"
#include "hb/util.h"

#include <string.h>

#include <jansson.h>

typedef struct {
    char **buf;
    size_t *len, *cap;
} out_t;

static void reserve(out_t *o, size_t more)
{
    if (*o->len + more <= *o->cap)
        return;
    while (*o->len + more > *o->cap)
        *o->cap = *o->cap ? *o->cap * 2 : 1 << 16;
    *o->buf = hb_realloc(*o->buf, *o->cap);
}

static void add(out_t *o, const char *s)
{
    size_t n = strlen(s);
    reserve(o, n);
    memcpy(*o->buf + *o->len, s, n);
    *o->len += n;
}

static void add_json_string(out_t *o, const char *s)
{
    json_t *js = s ? json_string(s) : NULL;
    if (!js) { /* absent, or not UTF-8 (cannot happen for parsed fields) */
        add(o, "null");
        return;
    }
    size_t need = json_dumpb(js, NULL, 0, JSON_ENCODE_ANY);
    reserve(o, need);
    *o->len += json_dumpb(js, *o->buf + *o->len, need, JSON_ENCODE_ANY);
    json_decref(js);
}

void hb_jsonl_event(const hb_msg_t *m, const char *sink, const char *error, char **buf, size_t *len,
                    size_t *cap)
{
    out_t o = {buf, len, cap};
    char ts[40];
    hb_format_rfc3339(m->received_at_ms, ts, sizeof(ts));
    add(&o, "{\"received_at\":\"");
    add(&o, ts);
    add(&o, "\",\"app_id\":");
    add_json_string(&o, m->app_id);
    add(&o, ",\"topic\":");
    add_json_string(&o, m->topic);
    add(&o, ",\"id\":");
    add_json_string(&o, m->id);
    if (sink) {
        add(&o, ",\"sink\":");
        add_json_string(&o, sink);
    }
    if (error) {
        add(&o, ",\"error\":");
        add_json_string(&o, error);
    }
    add(&o, ",\"payload\":");
    reserve(&o, m->body_len + 2);
    char *p = *buf + *len;
    for (size_t i = 0; i < m->body_len; i++) {
        char c = (char)m->body[i];
        p[i] = (c == '\n' || c == '\r') ? ' ' : c;
    }
    *len += m->body_len;
    add(&o, "}\n");
}
