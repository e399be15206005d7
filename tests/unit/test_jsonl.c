/* JSON lines: the strings of a line are escaped without jansson now, so
 * jansson checks them: every line must decode to the very strings that went
 * in, and be byte for byte the line jansson's json_dumpb made before. */
#include "test.h"

#include "hb/jsonl.h"

#include <jansson.h>

/* The line as the jansson-based writer made it: each string through
 * json_string + json_dumpb (null when absent or not UTF-8). */
static void ref_string(char *out, size_t cap, const char *s)
{
    json_t *js = s ? json_string(s) : NULL;
    size_t n = js ? json_dumpb(js, out, cap - 1, JSON_ENCODE_ANY) : 0;
    if (!js)
        n = (size_t)snprintf(out, cap, "null");
    out[n < cap ? n : cap - 1] = '\0';
    json_decref(js);
}

static const char *field_text(json_t *line, const char *name)
{
    json_t *v = json_object_get(line, name);
    return json_is_string(v) ? json_string_value(v) : json_is_null(v) ? "(null)" : "(missing)";
}

/* One line carrying `s` in every string field; checks it against jansson. */
static void check(const char *what, const char *s, int utf8)
{
    static const unsigned char body[] = "{\"a\":\r\n1}";
    hb_msg_t m = {.received_at_ms = 1764400000123,
                  .topic = s,
                  .app_id = s,
                  .id = s,
                  .body = body,
                  .body_len = sizeof(body) - 1};
    char *buf = NULL;
    size_t len = 0, cap = 0;
    hb_jsonl_event(&m, s, s, &buf, &len, &cap);

    json_error_t err;
    json_t *line = len ? json_loadb(buf, len, 0, &err) : NULL;
    ok(line != NULL, "%s: the line is valid JSON (%s)", what, line ? "ok" : err.text);
    ok(len > 0 && buf[len - 1] == '\n' && memchr(buf, '\n', len) == buf + len - 1,
       "%s: one line, ended by its only LF", what);
    const char *want = s && utf8 ? s : "(null)";
    static const char *const names[] = {"topic", "app_id", "id", "sink", "error"};
    /* an absent sink or error is left out of the line */
    size_t fields = s ? 5 : 3;
    for (size_t i = 0; line && i < fields; i++)
        is_str(field_text(line, names[i]), want, "%s: %s decodes to what went in", what, names[i]);
    json_t *payload = line ? json_object_get(line, "payload") : NULL;
    ok(json_integer_value(json_object_get(payload, "a")) == 1, "%s: the payload is the body", what);
    is_str(line ? field_text(line, "received_at") : NULL, "2025-11-29T07:06:40.123Z",
           "%s: received_at", what);

    char ref[1024], expect[6 * 1024];
    ref_string(ref, sizeof(ref), s);
    snprintf(expect, sizeof(expect),
             "{\"received_at\":\"2025-11-29T07:06:40.123Z\",\"app_id\":%s,\"topic\":%s,\"id\":%s"
             "%s%s%s%s,\"payload\":{\"a\":  1}}\n",
             ref, ref, ref, s ? ",\"sink\":" : "", s ? ref : "", s ? ",\"error\":" : "",
             s ? ref : "");
    buf = realloc(buf, len + 1);
    buf[len] = '\0';
    is_str(buf, expect, "%s: the same bytes as jansson's json_dumpb", what);
    json_decref(line);
    free(buf);
}

/* Random short strings of the bytes that matter (controls, quote,
 * backslash, UTF-8 lead and continuation bytes, bytes never in UTF-8): each
 * is checked and escaped in one pass, so a bad sequence found after part of
 * the string is written must leave exactly jansson's null, and a good one
 * jansson's bytes. */
static void check_random(void)
{
    static const unsigned char pick[] = {'a',  'b',  'c',  'd',  'e',  'f',  'g',  'h',
                                         ' ',  '"',  '\\', '/',  1,    0x1f, '\n', 0x7f,
                                         0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98,
                                         0x80, 0xed, 0xa0, 0xff, 0xc0, 0xf4, 0x90};
    uint64_t x = 0x9E3779B97F4A7C15u;
    char *buf = NULL;
    size_t cap = 0;
    int same = 1, nulls = 0;
    for (int t = 0; t < 20000 && same; t++) {
        char str[24], ref[256], expect[1024];
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t n = x % sizeof(str);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            str[i] = (char)pick[x % sizeof(pick)];
        }
        str[n] = '\0';
        hb_msg_t m = {.received_at_ms = 1764400000123, .topic = str, .app_id = "x", .id = str};
        size_t len = 0;
        hb_jsonl_event(&m, NULL, NULL, &buf, &len, &cap);
        ref_string(ref, sizeof(ref), str);
        nulls += strcmp(ref, "null") == 0;
        int e = snprintf(expect, sizeof(expect),
                         "{\"received_at\":\"2025-11-29T07:06:40.123Z\",\"app_id\":\"x\","
                         "\"topic\":%s,\"id\":%s,\"payload\":}\n",
                         ref, ref);
        if (len != (size_t)e || memcmp(buf, expect, len) != 0) {
            diag("differs from jansson for string %d (%zu bytes)", t, n);
            same = 0;
        }
    }
    ok(same, "20000 random strings: the same bytes as jansson's json_dumpb");
    ok(nulls > 1000 && nulls < 19000, "both valid and invalid UTF-8 among them (%d null)", nulls);
    free(buf);
}

/* A route other than Intercom names itself and its source, and carries
 * the forwarded headers; the Intercom route's line keeps its old keys. */
static void check_route(void)
{
    static const unsigned char body[] = "{\"action\":\"opened\"}";
    hb_msg_hdr_t h[] = {{"x-github-event", "issues"}, {"x-github-delivery", "72d3\"162e"}};
    hb_msg_t m = {.received_at_ms = 1764400000123,
                  .topic = "issues.opened",
                  .app_id = "octo/hello",
                  .id = "72d3162e",
                  .route = "github",
                  .headers = h,
                  .n_headers = 2,
                  .delivery_attempts = 2,
                  .body = body,
                  .body_len = sizeof(body) - 1};
    char *buf = NULL;
    size_t len = 0, cap = 0;
    hb_jsonl_event(&m, NULL, NULL, &buf, &len, &cap);
    json_error_t err;
    json_t *line = json_loadb(buf, len, 0, &err);
    ok(line != NULL, "route line is valid JSON (%s)", line ? "ok" : err.text);
    is_str(field_text(line, "route"), "github", "route");
    is_str(field_text(line, "source"), "octo/hello", "source");
    is_str(field_text(line, "app_id"), "(missing)", "no app_id key on another route");
    is_str(field_text(line, "topic"), "issues.opened", "topic");
    ok(json_integer_value(json_object_get(line, "delivery_attempts")) == 2, "delivery_attempts");
    json_t *hs = json_object_get(line, "headers");
    ok(json_object_size(hs) == 2, "two headers");
    is_str(field_text(hs, "x-github-delivery"), "72d3\"162e", "header value escaped");
    is_str(json_string_value(json_object_get(json_object_get(line, "payload"), "action")), "opened",
           "payload");
    json_decref(line);

    len = 0;
    m.route = "intercom";
    hb_jsonl_event(&m, NULL, NULL, &buf, &len, &cap);
    line = json_loadb(buf, len, 0, &err);
    ok(line && json_object_size(line) == 5 && json_object_get(line, "app_id"),
       "the Intercom route's line keeps its five keys");
    json_decref(line);
    free(buf);
}

int main(void)
{
    check_route();
    check("plain ASCII", "conversation.user.created", 1);
    check("empty string", "", 1);
    check("quote, backslash, slash", "a\"b\\c/d", 1);
    check("short escapes", "\b\f\n\r\t", 1);
    char ctl[32];
    for (int c = 1; c < 32; c++)
        ctl[c - 1] = (char)c;
    ctl[31] = '\0';
    check("every control character", ctl, 1);
    check("DEL stays raw", "\x7f", 1);
    check("UTF-8 of 2, 3 and 4 bytes", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 1);
    check("U+2028 and U+2029", "\xe2\x80\xa8\xe2\x80\xa9", 1);
    check("not UTF-8: null", "bad \xff byte", 0);
    check("an encoded surrogate: null", "\xed\xa0\x80", 0);
    check("a truncated sequence: null", "\xe2\x82", 0);
    char all[200];
    size_t n = 0;
    for (int c = 1; c < 128; c++)
        all[n++] = (char)c;
    all[n] = '\0';
    check("every ASCII byte", all, 1);
    check("absent: null", NULL, 0);
    check_random();
    return done_testing();
}
