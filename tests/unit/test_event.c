/* Envelope extraction: every sample notification in testdata, the bodies
 * the route must answer 400, the field shapes Intercom actually sends
 * (null, missing, numbers, escapes, unknown fields), and the edges of JSON
 * where the scanner must answer exactly as jansson did: each edge case has
 * its known answer, and jansson (tests/tools/envelope_ref.c) is asked too,
 * so a wrong "known" answer fails as well. */
#include "test.h"

#include "hb/event.h"

#include "envelope_ref.h"

#include <stdlib.h>

typedef struct {
    const char *file, *topic, *app_id, *id;
    int64_t delivery_attempts, created_at;
} sample_t;

/* Read off the files' top-level fields (not the nested item's). */
static const sample_t samples[] = {
    {"contact.deleted.json", "contact.deleted", "k7x2m9pw",
     "notif_d997a8b0-19f8-47df-b203-b7e8424a2029", 1, 1768019869},
    {"contact.user.created.json", "contact.user.created", "k7x2m9pw",
     "notif_c47f7aeb-bdeb-4d35-8fc7-eb945334fdad", 1, 1768018948},
    {"conversation.admin.replied.legacy-v1.json", "conversation.admin.replied", "i6wc9ipe",
     "notif_9b0e6a2c-1f4d-4c8e-a7b3-5d2e8f1c0a94", 1, 1553291112},
    {"conversation.user.created.json", "conversation.user.created", "k7x2m9pw",
     "notif_3ac27816-d27c-45fd-a65a-bbaf021cf780", 1, 1768120001},
    {"ping.json", "ping", "k7x2m9pw", NULL, 1, 1768114000},
    {"ticket.created.json", "ticket.created", "k7x2m9pw",
     "notif_381b4609-2b35-4720-8389-605f220e402a", 1, 1768114251},
    {"user.created.legacy-v1.json", "user.created", "a86dr8yl",
     "notif_78c122d0-23ba-11e4-9464-79b01267cc2e", -1, -1},
};

static void test_samples(void)
{
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        const sample_t *s = &samples[i];
        char path[4096], why[256] = "";
        snprintf(path, sizeof(path), "%s/intercom/%s", HB_TESTDATA, s->file);
        size_t len;
        unsigned char *body = test_slurp(path, &len);
        ok(body != NULL, "%s: read", s->file);
        if (!body)
            continue;
        hb_envelope_t env;
        int rc = hb_envelope_parse((const char *)body, len, &env, why, sizeof(why));
        is_int(rc, 0, "%s: parses (%s)", s->file, rc ? why : "ok");
        if (rc == 0) {
            is_str(env.topic, s->topic, "%s: topic", s->file);
            is_str(env.app_id, s->app_id, "%s: app_id", s->file);
            is_str(env.id, s->id, "%s: id", s->file);
            is_int(env.delivery_attempts, s->delivery_attempts, "%s: delivery_attempts", s->file);
            is_int(env.created_at, s->created_at, "%s: created_at", s->file);
            /* the request path's promise: a real notification costs no malloc */
            ok(env.heap == 0, "%s: every field fits the envelope's inline buffer", s->file);
        }
        hb_envelope_clear(&env);
        ok(env.topic == NULL && env.app_id == NULL && env.id == NULL,
           "%s: hb_envelope_clear empties the envelope", s->file);
        free(body);
    }
}

/* Parse a NUL-terminated body; returns rc and keeps the envelope in *env. */
static int parse(const char *body, hb_envelope_t *env, char *why, size_t whylen)
{
    why[0] = '\0';
    return hb_envelope_parse(body, strlen(body), env, why, whylen);
}

static void test_refusals(void)
{
    static const struct {
        const char *body, *what;
    } bad[] = {
        {"not json", "invalid JSON"},
        {"{\"topic\":\"ping\"", "truncated JSON object"},
        {"", "empty body"},
        {"[1,2,3]", "a JSON array"},
        {"[{\"topic\":\"ping\"}]", "an array holding an object with a topic"},
        {"\"ping\"", "a JSON string"},
        {"42", "a JSON number"},
        {"null", "JSON null"},
        {"{}", "an empty object"},
        {"{\"type\":\"notification_event\",\"app_id\":\"a\"}", "missing topic"},
        {"{\"topic\":42}", "topic 42"},
        {"{\"topic\":\"\"}", "topic \"\""},
        {"{\"topic\":null}", "topic null"},
        {"{\"topic\":[\"ping\"]}", "topic an array"},
        {"{\"topic\":{\"name\":\"ping\"}}", "topic an object"},
        {"{\"topic\":true}", "topic true"},
        {"{\"data\":{\"topic\":\"ping\"}}", "topic only nested"},
        {"{\"topic\":\"ping\"} {\"topic\":\"ping\"}", "two objects"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        hb_envelope_t env;
        char why[256];
        int rc = parse(bad[i].body, &env, why, sizeof(why));
        ok(rc == -1 && why[0] != '\0', "%s -> refused with a reason (%s)", bad[i].what, why);
        ok(env.topic == NULL && env.app_id == NULL && env.id == NULL,
           "%s: nothing left allocated in the envelope", bad[i].what);
        hb_envelope_clear(&env);
    }
}

static void test_fields(void)
{
    hb_envelope_t env;
    char why[256];

    int rc = parse("{\"topic\":\"ping\",\"app_id\":null,\"id\":null}", &env, why, sizeof(why));
    ok(rc == 0 && env.app_id == NULL && env.id == NULL, "app_id null and id null -> NULL");
    hb_envelope_clear(&env);

    rc = parse("{\"topic\":\"ping\"}", &env, why, sizeof(why));
    ok(rc == 0, "only a topic: parses");
    is_str(env.topic, "ping", "topic");
    ok(env.app_id == NULL && env.id == NULL, "missing app_id and id -> NULL");
    ok(env.delivery_attempts == -1 && env.created_at == -1,
       "missing delivery_attempts and created_at -> -1");
    hb_envelope_clear(&env);

    rc = parse("{\"topic\":\"user.created\",\"id\":12345,\"app_id\":678,\"delivery_attempts\":3,"
               "\"created_at\":1392731331}",
               &env, why, sizeof(why));
    ok(rc == 0, "numeric id and app_id: parses");
    is_str(env.id, "12345", "numeric id -> its text");
    is_str(env.app_id, "678", "numeric app_id -> its text");
    is_int(env.delivery_attempts, 3, "delivery_attempts 3");
    is_int(env.created_at, 1392731331, "created_at");
    hb_envelope_clear(&env);

    rc = parse("{\"topic\":\"t\",\"id\":9007199254740993}", &env, why, sizeof(why));
    ok(rc == 0, "id above 2^53 parses");
    is_str(env.id, "9007199254740993", "id above 2^53 keeps every digit");
    hb_envelope_clear(&env);

    rc = parse("{\"topic\":\"t\",\"id\":-7}", &env, why, sizeof(why));
    is_str(rc == 0 ? env.id : "(parse failed)", "-7", "negative numeric id -> its text");
    hb_envelope_clear(&env);

    rc = parse("{\"topic\":\"t\",\"delivery_attempts\":\"2\",\"created_at\":null}", &env, why,
               sizeof(why));
    ok(rc == 0 && env.delivery_attempts == -1 && env.created_at == -1,
       "delivery_attempts as a string and created_at null -> -1");
    hb_envelope_clear(&env);

    rc = parse("{\"topic\":\"t\",\"id\":{\"x\":1},\"app_id\":[\"a\"]}", &env, why, sizeof(why));
    ok(rc == 0 && env.id == NULL && env.app_id == NULL, "object id and array app_id -> NULL");
    hb_envelope_clear(&env);

    rc = parse("{\"type\":\"notification_event\",\"topic\":\"future.topic.v9\",\"app_id\":\"a\","
               "\"brand_new_field\":{\"nested\":[1,2,{\"deep\":null}]},\"self\":null,"
               "\"links\":{},\"first_sent_at\":1,\"x\":1.5e3,\"y\":false}",
               &env, why, sizeof(why));
    ok(rc == 0, "unknown fields and an unseen topic are accepted (%s)", rc ? why : "ok");
    is_str(env.topic, "future.topic.v9", "unseen topic kept as is");
    hb_envelope_clear(&env);

    rc =
        parse("{\"topic\":\"caf\\u00e9.created\",\"app_id\":\"\\u0041BC\",\"id\":\"q\\\"\\\\\\/x\","
              "\"data\":{\"emoji\":\"\\ud83d\\ude00\"}}",
              &env, why, sizeof(why));
    ok(rc == 0, "body with \\u escapes parses (%s)", rc ? why : "ok");
    is_str(env.topic, "caf\xc3\xa9.created", "\\u00e9 in topic -> UTF-8");
    is_str(env.app_id, "ABC", "\\u0041 in app_id -> 'A'");
    is_str(env.id, "q\"\\/x", "escaped quote, backslash and slash in id");
    hb_envelope_clear(&env);

    rc = parse("  \n\t{ \"topic\" : \"ping\" }\r\n  ", &env, why, sizeof(why));
    ok(rc == 0, "whitespace around and inside the object");
    hb_envelope_clear(&env);

    /* only `len` bytes are the body: what follows in memory is not read */
    const char *buf = "{\"topic\":\"ping\"}GARBAGE";
    rc = hb_envelope_parse(buf, 16, &env, why, sizeof(why));
    ok(rc == 0, "parses exactly len bytes of a longer buffer (%s)", rc ? why : "ok");
    hb_envelope_clear(&env);
    char *exact = malloc(16);
    memcpy(exact, buf, 16); /* not NUL-terminated: ASan catches an over-read */
    rc = hb_envelope_parse(exact, 16, &env, why, sizeof(why));
    ok(rc == 0 && env.topic && strcmp(env.topic, "ping") == 0,
       "a body that is not NUL-terminated parses");
    hb_envelope_clear(&env);
    free(exact);

    /* jansson keeps the last of repeated keys, and so does the scanner */
    rc = parse("{\"topic\":\"a\",\"topic\":\"b\"}", &env, why, sizeof(why));
    is_str(rc == 0 ? env.topic : "(parse failed)", "b", "a repeated topic key: the last one wins");
    hb_envelope_clear(&env);

    /* a tiny `why` buffer is not overrun */
    char small[8];
    memset(small, 'X', sizeof(small));
    rc = hb_envelope_parse("nope", 4, &env, small, 4);
    ok(rc == -1 && small[3] == '\0' && small[4] == 'X', "reason truncated to whylen");
    hb_envelope_clear(&env);
}

/* Valid JSON objects with a string topic that a strict parser might still
 * refuse. DESIGN.md: 400 is only for a body that is not a JSON object with a
 * string topic, and a 400 loses the event for good. */
static void test_valid_json_edge_cases(void)
{
    hb_envelope_t env;
    char why[256];
    int rc = parse("{\"type\":\"notification_event\",\"topic\":\"conversation.user.replied\","
                   "\"data\":{\"item\":{\"body\":\"before\\u0000after\"}}}",
                   &env, why, sizeof(why));
    ok(rc == 0, "bug: a \\u0000 escape inside a nested string is valid JSON and parses (%s)",
       rc ? why : "ok");
    hb_envelope_clear(&env);

    rc = parse(
        "{\"type\":\"notification_event\",\"topic\":\"contact.updated\","
        "\"data\":{\"item\":{\"custom_attributes\":{\"big\":123456789012345678901234567890}}}}",
        &env, why, sizeof(why));
    ok(rc == 0, "bug: an integer beyond 64 bits in a nested field is valid JSON and parses (%s)",
       rc ? why : "ok");
    hb_envelope_clear(&env);
}

/* An edge case: the body (sizeof, so NUL bytes count) and the known answer. */
typedef struct {
    const char *what, *body;
    size_t len;
    int rc;
    const char *topic, *app_id, *id;
    int64_t delivery_attempts, created_at;
} edge_t;

#define BODY(s) s, sizeof(s) - 1
#define REFUSED -1, NULL, NULL, NULL, -1, -1

/* Check one body against its known answer, and jansson against it too. */
static void check_edge(const edge_t *e)
{
    hb_envelope_t env;
    ref_envelope_t ref;
    char why[256] = "", ref_why[256] = "";
    int rc = hb_envelope_parse(e->body, e->len, &env, why, sizeof(why));
    int ref_rc = ref_envelope_parse(e->body, e->len, &ref, ref_why, sizeof(ref_why));
    ok(rc == e->rc, "%s: %s (%s)", e->what, e->rc ? "refused" : "accepted", rc ? why : "ok");
    ok(ref_rc == e->rc, "%s: jansson %s too (%s)", e->what, e->rc ? "refuses" : "accepts",
       ref_rc ? ref_why : "ok");
    if (rc == 0 && e->rc == 0) {
        is_str(env.topic, e->topic, "%s: topic", e->what);
        is_str(env.app_id, e->app_id, "%s: app_id", e->what);
        is_str(env.id, e->id, "%s: id", e->what);
        is_int(env.delivery_attempts, e->delivery_attempts, "%s: delivery_attempts", e->what);
        is_int(env.created_at, e->created_at, "%s: created_at", e->what);
        ok(env.topic_len == strlen(env.topic) &&
               env.app_id_len == (env.app_id ? strlen(env.app_id) : 0) &&
               env.id_len == (env.id ? strlen(env.id) : 0),
           "%s: lengths match the strings", e->what);
    }
    if (ref_rc == 0 && e->rc == 0) {
        is_str(ref.topic, e->topic, "%s: jansson's topic", e->what);
        is_str(ref.app_id, e->app_id, "%s: jansson's app_id", e->what);
        is_str(ref.id, e->id, "%s: jansson's id", e->what);
        is_int(ref.delivery_attempts, e->delivery_attempts, "%s: jansson's delivery_attempts",
               e->what);
        is_int(ref.created_at, e->created_at, "%s: jansson's created_at", e->what);
    }
    hb_envelope_clear(&env);
    ref_envelope_clear(&ref);
}

static const edge_t edges[] = {
    /* grammar */
    {"empty body", BODY(""), REFUSED},
    {"only whitespace", BODY(" \t\r\n"), REFUSED},
    {"whitespace after the object", BODY("{\"topic\":\"t\"} \t\r\n"), 0, "t", NULL, NULL, -1, -1},
    {"a form feed is not whitespace", BODY("{\"topic\":\"t\"}\f"), REFUSED},
    {"garbage after the object", BODY("{\"topic\":\"t\"} x"), REFUSED},
    {"a byte order mark", BODY("\xef\xbb\xbf{\"topic\":\"t\"}"), REFUSED},
    {"trailing comma in an object", BODY("{\"topic\":\"t\",}"), REFUSED},
    {"trailing comma in an array", BODY("{\"topic\":\"t\",\"a\":[1,]}"), REFUSED},
    {"missing colon", BODY("{\"topic\" \"t\"}"), REFUSED},
    {"unquoted key", BODY("{topic:\"t\"}"), REFUSED},
    {"single quotes", BODY("{'topic':'t'}"), REFUSED},
    {"true, false, null", BODY("{\"topic\":\"t\",\"a\":[true,false,null,{}]}"), 0, "t", NULL, NULL,
     -1, -1},
    {"a truncated literal", BODY("{\"topic\":\"t\",\"a\":tru}"), REFUSED},
    {"a literal with letters after it", BODY("{\"topic\":\"t\",\"a\":nulll}"), REFUSED},
    {"a literal with a digit after it", BODY("{\"topic\":\"t\",\"a\":[true1]}"), REFUSED},
    {"capitalised literal", BODY("{\"topic\":\"t\",\"a\":True}"), REFUSED},
    /* jansson's lexer puts back the byte after a number or a literal, and a
     * put-back NUL is lost: one NUL there parses, two do not */
    {"regression: one NUL after numbers and literals is skipped as jansson does",
     BODY("{\"topic\":\"t\",\"a\":1\0,\"b\":true\0,\"c\":null\0,\"d\":-0.5e1\0}"), 0, "t", NULL,
     NULL, -1, -1},
    {"two NULs after a number", BODY("{\"topic\":\"t\",\"a\":1\0\0}"), REFUSED},
    {"a NUL after a string", BODY("{\"topic\":\"t\"\0}"), REFUSED},
    {"a NUL after the object", BODY("{\"topic\":\"t\"}\0"), REFUSED},
    {"a raw NUL in a string", BODY("{\"topic\":\"t\0\"}"), REFUSED},
    /* strings and UTF-8 */
    {"escapes in keys name the fields",
     BODY("{\"t\\u006fpic\":\"escaped.key\",\"\\u0069d\":\"x\",\"app\\u005fid\":3}"), 0,
     "escaped.key", "3", "x", -1, -1},
    {"every short escape", BODY("{\"topic\":\"t\",\"id\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}"), 0, "t",
     NULL, "\"\\/\b\f\n\r\t", -1, -1},
    {"an unknown escape", BODY("{\"topic\":\"t\",\"a\":\"\\x\"}"), REFUSED},
    {"a short \\u escape", BODY("{\"topic\":\"t\",\"a\":\"\\u12\"}"), REFUSED},
    {"a \\u escape with a non-hex digit", BODY("{\"topic\":\"t\",\"a\":\"\\u12g4\"}"), REFUSED},
    {"upper-case hex and a surrogate pair",
     BODY("{\"topic\":\"t\",\"id\":\"\\uD834\\uDD1E\\u00E9\"}"), 0, "t", NULL,
     "\xf0\x9d\x84\x9e\xc3\xa9", -1, -1},
    {"a lone high surrogate", BODY("{\"topic\":\"t\",\"a\":\"\\ud800\"}"), REFUSED},
    {"a lone low surrogate", BODY("{\"topic\":\"t\",\"a\":\"\\udc00\"}"), REFUSED},
    {"a high surrogate before a letter", BODY("{\"topic\":\"t\",\"a\":\"\\ud800\\u0041\"}"),
     REFUSED},
    {"two high surrogates", BODY("{\"topic\":\"t\",\"a\":\"\\ud800\\udbff\"}"), REFUSED},
    {"\\u0000 in a value is allowed", BODY("{\"topic\":\"t\",\"a\":\"\\u0000\"}"), 0, "t", NULL,
     NULL, -1, -1},
    {"\\u0000 in id and app_id makes them absent",
     BODY("{\"topic\":\"t\",\"id\":\"a\\u0000b\",\"app_id\":\"\\u0000\"}"), 0, "t", NULL, NULL, -1,
     -1},
    {"\\u0000 in the topic", BODY("{\"topic\":\"t\\u0000\"}"), REFUSED},
    {"\\u0000 in a key", BODY("{\"topic\":\"t\",\"\\u0000\":1}"), REFUSED},
    {"\\u0000 in a nested key", BODY("{\"topic\":\"t\",\"d\":[{\"a\\u0000\":1}]}"), REFUSED},
    {"a raw tab in a string", BODY("{\"topic\":\"t\",\"a\":\"a\tb\"}"), REFUSED},
    {"a raw newline in a string", BODY("{\"topic\":\"t\",\"a\":\"a\nb\"}"), REFUSED},
    {"a raw DEL in a string", BODY("{\"topic\":\"t\",\"id\":\"\x7f\"}"), 0, "t", NULL, "\x7f", -1,
     -1},
    {"raw UTF-8 of 2, 3 and 4 bytes",
     BODY("{\"topic\":\"caf\xc3\xa9\",\"id\":\"\xe2\x82\xac\xf0\x9f\x98\x80\"}"), 0, "caf\xc3\xa9",
     NULL, "\xe2\x82\xac\xf0\x9f\x98\x80", -1, -1},
    {"overlong UTF-8", BODY("{\"topic\":\"t\",\"a\":\"\xc0\x80\"}"), REFUSED},
    {"overlong 3-byte UTF-8", BODY("{\"topic\":\"t\",\"a\":\"\xe0\x80\xaf\"}"), REFUSED},
    {"a surrogate encoded in UTF-8", BODY("{\"topic\":\"t\",\"a\":\"\xed\xa0\x80\"}"), REFUSED},
    {"UTF-8 beyond U+10FFFF", BODY("{\"topic\":\"t\",\"a\":\"\xf4\x90\x80\x80\"}"), REFUSED},
    {"truncated UTF-8", BODY("{\"topic\":\"t\",\"a\":\"\xe2\x82\"}"), REFUSED},
    {"a stray continuation byte", BODY("{\"topic\":\"t\",\"a\":\"\x80\"}"), REFUSED},
    {"byte 0xFF", BODY("{\"topic\":\"t\",\"a\":\"\xff\"}"), REFUSED},
    {"a non-ASCII byte outside a string", BODY("{\"topic\":\"t\",\"a\":\xc3\xa9}"), REFUSED},
    /* duplicate keys: the last one wins, even when it is not usable */
    {"repeated keys: the last wins",
     BODY("{\"topic\":\"a\",\"id\":\"1\",\"topic\":\"b\",\"id\":2,\"app_id\":\"x\",\"app_id\":null,"
          "\"created_at\":1,\"created_at\":\"2\"}"),
     0, "b", NULL, "2", -1, -1},
    {"a string topic then a number topic", BODY("{\"topic\":\"a\",\"topic\":5}"), REFUSED},
    {"a number topic then a string topic", BODY("{\"topic\":5,\"topic\":\"ok\"}"), 0, "ok", NULL,
     NULL, -1, -1},
    {"a nested topic does not count",
     BODY("{\"topic\":\"a\",\"d\":{\"topic\":\"b\",\"id\":\"n\"}}"), 0, "a", NULL, NULL, -1, -1},
    /* numbers */
    {"the largest 64-bit integers",
     BODY("{\"topic\":\"t\",\"id\":9223372036854775807,\"app_id\":-9223372036854775808,"
          "\"delivery_attempts\":9223372036854775807,\"created_at\":-9223372036854775808}"),
     0, "t", "-9223372036854775808", "9223372036854775807", INT64_MAX, INT64_MIN},
    {"-0 is the integer 0", BODY("{\"topic\":\"t\",\"id\":-0,\"delivery_attempts\":-0}"), 0, "t",
     NULL, "0", 0, -1},
    {"reals are not integers",
     BODY("{\"topic\":\"t\",\"id\":1.0,\"app_id\":1e2,\"delivery_attempts\":2.0,\"created_at\":"
          "-0.0}"),
     0, "t", NULL, NULL, -1, -1},
    {"2^63 turns every integer into a real",
     BODY("{\"topic\":\"t\",\"id\":5,\"created_at\":1,\"x\":9223372036854775808}"), 0, "t", NULL,
     NULL, -1, -1},
    {"-2^63-1 turns every integer into a real",
     BODY("{\"topic\":\"t\",\"x\":[-9223372036854775809],\"app_id\":7,\"delivery_attempts\":3}"), 0,
     "t", NULL, NULL, -1, -1},
    /* the integer part is read as it is scanned, in 64 bits that wrap:
     * what wraps must still count as beyond 64 bits */
    {"2^64 (wraps to 0) is beyond 64 bits",
     BODY("{\"topic\":\"t\",\"created_at\":18446744073709551616,\"id\":1}"), 0, "t", NULL, NULL, -1,
     -1},
    {"2^64+1 (wraps to 1) is beyond 64 bits",
     BODY("{\"topic\":\"t\",\"id\":-18446744073709551617,\"delivery_attempts\":2}"), 0, "t", NULL,
     NULL, -1, -1},
    {"19 nines are beyond 64 bits", BODY("{\"topic\":\"t\",\"created_at\":9999999999999999999}"), 0,
     "t", NULL, NULL, -1, -1},
    {"10^19, the least of 20 digits", BODY("{\"topic\":\"t\",\"id\":10000000000000000000}"), 0, "t",
     NULL, NULL, -1, -1},
    {"18 and 19 digits within 64 bits",
     BODY("{\"topic\":\"t\",\"delivery_attempts\":999999999999999999,\"created_at\":"
          "1000000000000000000,\"id\":-999999999999999999}"),
     0, "t", NULL, "-999999999999999999", 999999999999999999, 1000000000000000000},
    {"1e308", BODY("{\"topic\":\"t\",\"x\":1e308}"), 0, "t", NULL, NULL, -1, -1},
    {"1e309 overflows a double", BODY("{\"topic\":\"t\",\"x\":1e309}"), REFUSED},
    {"-1e309 overflows a double", BODY("{\"topic\":\"t\",\"x\":-1e309}"), REFUSED},
    {"the largest double", BODY("{\"topic\":\"t\",\"x\":1.7976931348623157e308}"), 0, "t", NULL,
     NULL, -1, -1},
    {"just past the largest double", BODY("{\"topic\":\"t\",\"x\":1.7976931348623159e308}"),
     REFUSED},
    {"1e-400 underflows, which is fine", BODY("{\"topic\":\"t\",\"x\":1e-400}"), 0, "t", NULL, NULL,
     -1, -1},
    {"zero with a huge exponent", BODY("{\"topic\":\"t\",\"x\":0.000e99999999999999999999}"), 0,
     "t", NULL, NULL, -1, -1},
    {"tiny mantissa, huge exponent", BODY("{\"topic\":\"t\",\"x\":0.0001e311}"), 0, "t", NULL, NULL,
     -1, -1},
    {"a leading zero", BODY("{\"topic\":\"t\",\"x\":01}"), REFUSED},
    {"a negative leading zero", BODY("{\"topic\":\"t\",\"x\":-01}"), REFUSED},
    {"a bare decimal point", BODY("{\"topic\":\"t\",\"x\":1.}"), REFUSED},
    {"no digit before the point", BODY("{\"topic\":\"t\",\"x\":.5}"), REFUSED},
    {"a plus sign", BODY("{\"topic\":\"t\",\"x\":+1}"), REFUSED},
    {"an empty exponent", BODY("{\"topic\":\"t\",\"x\":1e+}"), REFUSED},
    {"a lone minus", BODY("{\"topic\":\"t\",\"x\":-}"), REFUSED},
    {"exponent forms", BODY("{\"topic\":\"t\",\"x\":[1E+5,1e-5,2e0,0.5E05]}"), 0, "t", NULL, NULL,
     -1, -1},
};

/* Bodies too long to write out: nesting, long strings, numbers at the edge
 * of a double. */
static void check_built(const char *what, const char *prefix, const char *rep, size_t n,
                        const char *middle, const char *rep2, const char *suffix, int rc,
                        const char *topic)
{
    size_t len =
        strlen(prefix) + n * (strlen(rep) + strlen(rep2)) + strlen(middle) + strlen(suffix);
    char *b = malloc(len + 1), *o = b;
    o += sprintf(o, "%s", prefix);
    for (size_t i = 0; i < n; i++)
        o += sprintf(o, "%s", rep);
    o += sprintf(o, "%s", middle);
    for (size_t i = 0; i < n; i++)
        o += sprintf(o, "%s", rep2);
    sprintf(o, "%s", suffix);
    edge_t e = {what, b, len, rc, topic, NULL, NULL, -1, -1};
    check_edge(&e);
    free(b);
}

/* 2^1024 - 2^970: the least integer a double cannot hold (strtod rounds it up) */
#define DBL_OVERFLOW                                                                               \
    "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017"   \
    "977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273"   \
    "854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704"   \
    "342711559699508093042880177904174497792"
#define DBL_OVERFLOW_MINUS_1                                                                       \
    "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017"   \
    "977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273"   \
    "854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704"   \
    "342711559699508093042880177904174497791"

static void test_edges(void)
{
    for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
        check_edge(&edges[i]);

    /* depth: the root object is 1, every value (a scalar too) one more */
    check_built("a number at depth 2048", "{\"topic\":\"t\",\"d\":", "[", 2046, "1", "]", "}", 0,
                "t");
    check_built("a number at depth 2049", "{\"topic\":\"t\",\"d\":", "[", 2047, "1", "]", "}", -1,
                NULL);
    check_built("an empty array at depth 2048", "{\"topic\":\"t\",\"d\":", "[", 2047, "", "]", "}",
                0, "t");
    check_built("an empty array at depth 2049", "{\"topic\":\"t\",\"d\":", "[", 2048, "", "]", "}",
                -1, NULL);
    check_built("objects nested to 2048", "{\"topic\":\"t\",\"d\":", "{\"a\":", 2046, "1", "}", "}",
                0, "t");
    check_built("objects nested to 2049", "{\"topic\":\"t\",\"d\":", "{\"a\":", 2047, "1", "}", "}",
                -1, NULL);
    check_built("a 300-digit integer", "{\"topic\":\"t\",\"x\":", "1", 300, "", "", "}", 0, "t");
    check_built("a 310-digit integer overflows a double", "{\"topic\":\"t\",\"x\":", "1", 310, "",
                "", "}", -1, NULL);
    check_built("the least integer a double cannot hold", "{\"topic\":\"t\",\"x\":", "", 0,
                DBL_OVERFLOW, "", "}", -1, NULL);
    check_built("one below it", "{\"topic\":\"t\",\"x\":", "", 0, DBL_OVERFLOW_MINUS_1, "", "}", 0,
                "t");
    check_built("one below it, as a real with more digits", "{\"topic\":\"t\",\"x\":", "", 0,
                DBL_OVERFLOW_MINUS_1 ".99999e0", "", "}", 0, "t");
    check_built("it as 0.ddd e309", "{\"topic\":\"t\",\"x\":0.", "", 0, DBL_OVERFLOW "e309", "",
                "}", -1, NULL);
    check_built("it with a thousand zeros more, e-1000", "{\"topic\":\"t\",\"x\":" DBL_OVERFLOW,
                "0", 1000, "e-1000", "", "}", -1, NULL);

    /* topic length is counted in decoded bytes */
    char topic[256];
    memset(topic, 'x', 255);
    topic[255] = '\0';
    check_built("a 255-byte topic", "{\"topic\":\"", "x", 255, "", "", "\"}", 0, topic);
    check_built("a 256-byte topic", "{\"topic\":\"", "x", 256, "", "", "\"}", -1, NULL);
    char e9[256];
    for (int i = 0; i < 127; i++)
        memcpy(e9 + 2 * i, "\xc3\xa9", 2);
    e9[254] = 'x';
    e9[255] = '\0';
    check_built("a topic of 127 escaped e-acute and an x (255 bytes)", "{\"topic\":\"", "\\u00e9",
                127, "x", "", "\"}", 0, e9);
    check_built("a topic of 128 escaped e-acute (256 bytes)", "{\"topic\":\"", "\\u00e9", 128, "",
                "", "\"}", -1, NULL);
}

/* Strings that do not fit the envelope's inline buffer live on the heap;
 * every combination must read right and be released (ASan). */
static void test_long_strings(void)
{
    char body[4096], topic[256], app_id[200], id[1000];
    memset(topic, 'T', 255);
    topic[255] = '\0';
    memset(app_id, 'A', 199);
    app_id[199] = '\0';
    memset(id, 'I', 999);
    id[999] = '\0';
    snprintf(body, sizeof(body), "{\"id\":\"%s\",\"app_id\":\"%s\",\"topic\":\"%s\"}", id, app_id,
             topic);
    hb_envelope_t env;
    char why[256];
    int rc = parse(body, &env, why, sizeof(why));
    ok(rc == 0, "long topic, app_id and id parse (%s)", rc ? why : "ok");
    is_str(env.topic, topic, "255-byte topic");
    is_str(env.app_id, app_id, "199-byte app_id");
    is_str(env.id, id, "999-byte id");
    ok(env.topic_len == 255 && env.app_id_len == 199 && env.id_len == 999, "their lengths");
    hb_envelope_clear(&env);
    ok(env.topic == NULL && env.app_id == NULL && env.id == NULL && env.heap == 0,
       "hb_envelope_clear releases them");
}

/* The 400 log line says where and why. */
static void test_reasons(void)
{
    static const struct {
        const char *body, *reason;
    } cases[] = {
        {"{\"topic\":\"t\",}", "byte 13: expected a string key"},
        {"{\"topic\":\"t\",\"a\":01}", "byte 17: invalid number (leading zero)"},
        {"{\"topic\":\"t\",\"a\":\"\\ud800\"}", "byte 18: unpaired UTF-16 surrogate"},
        {"{\"topic\":\"t\",\"a\":1e999}", "byte 17: number too large for a double"},
        {"{\"topic\":\"t\"", "byte 12: expected ',' or '}'"},
        {"{\"topic\":\"t\"} x", "byte 14: data after the JSON value"},
        {"", "empty body"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hb_envelope_t env;
        char why[256];
        int rc = parse(cases[i].body, &env, why, sizeof(why));
        ok(rc == -1 && strstr(why, cases[i].reason) != NULL, "reason for %s: %s", cases[i].body,
           why);
        hb_envelope_clear(&env);
    }
}

/* Strings are scanned in blocks (8, 16 or 64 bytes, see skip_plain in
 * src/event.c): a special byte must be seen wherever it falls in a block.
 * These bodies are short, so the 16- and 8-byte blocks are used; longer
 * ones are in test_blocks. */
static void test_string_offsets(void)
{
    static const struct {
        const char *what, *insert, *decoded; /* decoded NULL: refused */
    } specials[] = {
        {"a tab", "\t", NULL},
        {"a NUL byte", "\0", NULL},
        {"byte 0x1f", "\x1f", NULL},
        {"byte 0xff", "\xff", NULL},
        {"a stray continuation byte", "\x80", NULL},
        {"an escaped quote", "\\\"", "\""},
        {"an escaped backslash", "\\\\", "\\"},
        {"\\u00e9", "\\u00e9", "\xc3\xa9"},
        {"raw e-acute", "\xc3\xa9", "\xc3\xa9"},
        {"a space", " ", " "},
        {"a tilde and DEL", "~\x7f", "~\x7f"},
    };
    for (size_t i = 0; i < sizeof(specials) / sizeof(specials[0]); i++) {
        int all_right = 1;
        for (size_t at = 0; at < 20; at++) {
            char body[128], want[64];
            size_t ins = specials[i].insert[0] ? strlen(specials[i].insert) : 1;
            size_t n = (size_t)snprintf(body, sizeof(body), "{\"topic\":\"t\",\"id\":\"");
            memset(body + n, 'a', at);
            memcpy(body + n + at, specials[i].insert, ins);
            n += at + ins;
            n += (size_t)snprintf(body + n, sizeof(body) - n, "bcdefghijklmnopq\"}");
            hb_envelope_t env;
            char why[256];
            int rc = hb_envelope_parse(body, n, &env, why, sizeof(why));
            if (specials[i].decoded) {
                memset(want, 'a', at);
                snprintf(want + at, sizeof(want) - at, "%sbcdefghijklmnopq", specials[i].decoded);
                all_right &= rc == 0 && strcmp(env.id, want) == 0;
            } else {
                all_right &= rc == -1;
            }
            hb_envelope_clear(&env);
        }
        ok(all_right, "%s at each of 20 offsets in a string: %s", specials[i].what,
           specials[i].decoded ? "decoded" : "refused");
    }
}

/* Does the scanner answer as jansson does on body (n bytes)? */
static int same_as_jansson(const char *body, size_t n)
{
    hb_envelope_t env;
    ref_envelope_t ref;
    char why[256], ref_why[256];
    int rc = hb_envelope_parse(body, n, &env, why, sizeof(why));
    int ref_rc = ref_envelope_parse(body, n, &ref, ref_why, sizeof(ref_why));
    int same = rc == ref_rc;
    if (same && rc == 0)
        same = strcmp(env.topic, ref.topic) == 0 && !env.id == !ref.id &&
               (!env.id || strcmp(env.id, ref.id) == 0);
    hb_envelope_clear(&env);
    ref_envelope_clear(&ref);
    return same;
}

/* The scanner classifies a body 64 bytes at a time and keeps the bits for
 * the strings that follow, and it reads the last bytes in blocks of 16 and
 * 8: a special byte at every offset of such a block, strings that end on a
 * block's edge, and bodies that end inside one, each as jansson answers. */
static void test_blocks(void)
{
    static const char *const specials[] = {
        "\"",   "\\\"", "\\u00e9", "\\ud834\\udd1e", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
        "\t",   "\x1f", "\x80",    "\xff",           "\xc3",     "\\",           "\\x",
        "\x7f",
    };
    static const size_t tails[] = {0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65};
    char body[512];
    for (size_t i = 0; i < sizeof(specials) / sizeof(specials[0]); i++) {
        int all_same = 1;
        size_t tried = 0;
        for (size_t pad = 0; pad < 72; pad++) {
            for (size_t at = 0; at < 80; at += 1 + (pad % 3)) {
                for (size_t t = 0; t < sizeof(tails) / sizeof(tails[0]); t++) {
                    /* {"pad":"xx..","id":"aa..<special>bb.."} and cut short */
                    size_t n = (size_t)snprintf(body, sizeof(body), "{\"pad\":\"");
                    memset(body + n, 'x', pad);
                    n += pad;
                    n += (size_t)snprintf(body + n, sizeof(body) - n, "\",\"id\":\"");
                    memset(body + n, 'a', at);
                    n += at;
                    n += (size_t)snprintf(body + n, sizeof(body) - n, "%s", specials[i]);
                    memset(body + n, 'b', tails[t]);
                    n += tails[t];
                    n += (size_t)snprintf(body + n, sizeof(body) - n, "\",\"topic\":\"t\"}");
                    all_same &= same_as_jansson(body, n);
                    /* the same body ending inside the string, at the block edges */
                    size_t cut = n - 13 - tails[t] + (tails[t] + 1) / 2;
                    all_same &= same_as_jansson(body, cut);
                    tried += 2;
                }
            }
        }
        ok(all_same, "special byte %zu at every offset of a block (%zu bodies): as jansson", i,
           tried);
    }
    /* strings of every length up to 200, so that each ends on every edge */
    int all_same = 1;
    for (size_t len = 0; len < 200; len++) {
        size_t n = (size_t)snprintf(body, sizeof(body), "{\"topic\":\"t\",\"id\":\"");
        memset(body + n, 'a', len);
        n += len;
        n += (size_t)snprintf(body + n, sizeof(body) - n, "\",\"k\":\"v\"}");
        all_same &= same_as_jansson(body, n);
    }
    ok(all_same, "strings of 0 to 199 bytes: as jansson");
}

/* Whitespace is looked for only where the expected byte is not found: a
 * run of it between any two bytes of a body, as jansson answers. */
static void test_whitespace_everywhere(void)
{
    static const char base[] = "{\"topic\":\"t\",\"id\":[1,{\"a\":null},\"x\",[]],\"b\":{},"
                               "\"app_id\":-2.5e3,\"created_at\":7}";
    static const char *const runs[] = {" ", "\t", "\n", "\r", " \r\n\t ", "\f", "\v"};
    char body[sizeof(base) + 8];
    int all_same = 1;
    size_t tried = 0;
    for (size_t at = 0; at <= sizeof(base) - 1; at++) {
        for (size_t r = 0; r < sizeof(runs) / sizeof(runs[0]); r++) {
            size_t n = strlen(runs[r]);
            memcpy(body, base, at);
            memcpy(body + at, runs[r], n);
            memcpy(body + at + n, base + at, sizeof(base) - 1 - at);
            all_same &= same_as_jansson(body, sizeof(base) - 1 + n);
            tried++;
        }
    }
    ok(all_same, "whitespace (and \\f, \\v) between any two bytes (%zu bodies): as jansson", tried);
}

int main(void)
{
    test_samples();
    test_refusals();
    test_fields();
    test_valid_json_edge_cases();
    test_edges();
    test_long_strings();
    test_reasons();
    test_string_offsets();
    test_blocks();
    test_whitespace_everywhere();
    return done_testing();
}
