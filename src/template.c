/* Template expansion. See include/hb/template.h.
 *
 * Sanitising is applied to the whole result, literal text included, so a
 * template can never produce a topic name the broker refuses. */
#include "hb/fmacros.h"

#include "hb/template.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

typedef enum { PH_SOURCE, PH_ROUTE, PH_TOPIC, PH_ID } ph_t;

static const struct {
    const char *name;
    ph_t field;
} names[] = {{"source", PH_SOURCE}, {"app_id", PH_SOURCE}, {"workspace", PH_SOURCE},
             {"route", PH_ROUTE},   {"topic", PH_TOPIC},   {"id", PH_ID}};

static int placeholder(const char *p, size_t len)
{
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i].name) == len && strncmp(p, names[i].name, len) == 0)
            return (int)names[i].field;
    return -1;
}

int hb_template_check(const char *tmpl, char *err, size_t errlen)
{
    for (const char *p = tmpl; *p; p++) {
        if (*p == '}') {
            snprintf(err, errlen, "unmatched '}' in template");
            return -1;
        }
        if (*p != '{')
            continue;
        const char *end = strchr(p, '}');
        if (!end) {
            snprintf(err, errlen, "unterminated '{' in template");
            return -1;
        }
        if (placeholder(p + 1, (size_t)(end - p - 1)) < 0) {
            snprintf(err, errlen,
                     "unknown placeholder {%.*s} (use {route}, {source}, {topic}, {id}; "
                     "{app_id} and {workspace} are {source})",
                     (int)(end - p - 1), p + 1);
            return -1;
        }
        p = end;
    }
    if (*tmpl == '\0') {
        snprintf(err, errlen, "template is empty");
        return -1;
    }
    return 0;
}

static char clean(char c, hb_tmpl_kind_t kind)
{
    unsigned char u = (unsigned char)c;
    switch (kind) {
    case HB_TMPL_KAFKA_TOPIC:
        return (isalnum(u) || c == '.' || c == '_' || c == '-') ? c : '_';
    case HB_TMPL_REDIS_KEY:
        return (u > 0x20 && u < 0x7f) || u >= 0x80 ? c : '_';
    case HB_TMPL_RAW:
        break;
    }
    return c;
}

size_t hb_template_expand(const char *tmpl, hb_tmpl_kind_t kind, const hb_tmpl_fields_t *f,
                          char *out, size_t outlen)
{
    size_t n = 0, cap = outlen ? outlen - 1 : 0;
    if (kind == HB_TMPL_KAFKA_TOPIC && cap > 249)
        cap = 249;
    for (const char *p = tmpl; *p && n < cap; p++) {
        const char *end = *p == '{' ? strchr(p, '}') : NULL;
        int ph = end ? placeholder(p + 1, (size_t)(end - p - 1)) : -1;
        if (ph < 0) {
            out[n++] = clean(*p, kind);
            continue;
        }
        const char *v = ph == PH_SOURCE  ? f->source
                        : ph == PH_ROUTE ? f->route
                        : ph == PH_TOPIC ? f->topic
                                         : f->id;
        if (!v || !*v)
            v = "_";
        for (; *v && n < cap; v++)
            out[n++] = clean(*v, kind);
        p = end;
    }
    if (outlen)
        out[n] = '\0';
    return n;
}
