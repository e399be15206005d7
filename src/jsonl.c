/* JSON-lines formatting of events. See include/hb/jsonl.h. The few short
 * strings of a line are escaped here directly, byte for byte as jansson's
 * json_dumpb wrote them before (a json_t per string cost more than the
 * line); the payload is copied, never re-serialised. */
#include "hb/fmacros.h"

#include "hb/jsonl.h"
#include "hb/utf8.h"
#include "hb/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

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

/* As json_dumpb: '"', '\\' and control characters escaped (short forms where
 * JSON has them), everything else, UTF-8 included, as is. A string that is
 * not UTF-8 cannot be a JSON string: null, as jansson's json_string gave.
 * One pass checks and escapes (a check first was a second pass over each
 * string of every line); a bad sequence takes back what was written. */
static void add_json_string(out_t *o, const char *str)
{
    if (!str) {
        add(o, "null");
        return;
    }
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str);
    reserve(o, 6 * n + 2);
    char *p = *o->buf + *o->len;
    *p++ = '"';
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c >= 0x80) {
            size_t k = hb_utf8_seq(s + i, s + n);
            if (!k) {
                add(o, "null"); /* *o->len is still where the string began */
                return;
            }
            memcpy(p, s + i, k);
            p += k;
            i += k;
            continue;
        }
        i++;
        if (c >= 0x20 && c != '"' && c != '\\') {
            *p++ = (char)c;
            continue;
        }
        *p++ = '\\';
        switch (c) {
        case '"':
        case '\\':
            *p++ = (char)c;
            break;
        case '\b':
            *p++ = 'b';
            break;
        case '\f':
            *p++ = 'f';
            break;
        case '\n':
            *p++ = 'n';
            break;
        case '\r':
            *p++ = 'r';
            break;
        case '\t':
            *p++ = 't';
            break;
        default:
            memcpy(p, "u00", 3);
            p[3] = hex[c >> 4];
            p[4] = hex[c & 15];
            p += 5;
        }
    }
    *p++ = '"';
    *o->len = (size_t)(p - *o->buf);
}

void hb_jsonl_event(const hb_msg_t *m, const char *sink, const char *error, char **buf, size_t *len,
                    size_t *cap)
{
    out_t o = {buf, len, cap};
    char ts[40];
    hb_format_rfc3339(m->received_at_ms, ts, sizeof(ts));
    add(&o, "{\"received_at\":\"");
    add(&o, ts);
    /* the Intercom route keeps the line it always had; app_id is its name
     * for the source */
    int intercom = hb_msg_is_intercom(m);
    if (!intercom) {
        add(&o, "\",\"route\":");
        add_json_string(&o, m->route);
        add(&o, ",\"source\":");
    } else {
        add(&o, "\",\"app_id\":");
    }
    add_json_string(&o, m->app_id);
    add(&o, ",\"topic\":");
    add_json_string(&o, m->topic);
    add(&o, ",\"id\":");
    add_json_string(&o, m->id);
    if (!intercom) {
        if (m->delivery_attempts >= 0) {
            char n[48];
            snprintf(n, sizeof(n), ",\"delivery_attempts\":%" PRId64, m->delivery_attempts);
            add(&o, n);
        }
        add(&o, ",\"headers\":{");
        for (size_t i = 0; i < m->n_headers; i++) {
            if (i)
                add(&o, ",");
            add_json_string(&o, m->headers[i].name);
            add(&o, ":");
            add_json_string(&o, m->headers[i].value);
        }
        add(&o, "}");
    }
    if (sink) {
        add(&o, ",\"sink\":");
        add_json_string(&o, sink);
    }
    if (error) {
        add(&o, ",\"error\":");
        add_json_string(&o, error);
    }
    if (m->replay)
        add(&o, ",\"replay\":true");
    add(&o, ",\"payload\":");
    reserve(&o, m->body_len + 2);
    /* copied whole, then the rare CR/LF bytes found with memchr: the
     * payload is the bulk of every line, and a byte loop was the file
     * sink's largest cost of its own */
    char *p = *buf + *len, *end = p + m->body_len;
    if (m->body_len)
        memcpy(p, m->body, m->body_len);
    for (char *q = p; (q = memchr(q, '\n', (size_t)(end - q))) != NULL;)
        *q++ = ' ';
    for (char *q = p; (q = memchr(q, '\r', (size_t)(end - q))) != NULL;)
        *q++ = ' ';
    *len += m->body_len;
    add(&o, "}\n");
}
