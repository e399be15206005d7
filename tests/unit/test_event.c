/* Envelope extraction: every sample notification in testdata, the bodies
 * the route must answer 400, and the field shapes Intercom actually sends
 * (null, missing, numbers, escapes, unknown fields). */
#include "test.h"

#include "hb/event.h"

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

    /* the first occurrence of a repeated key or the last: either way a string topic */
    rc = parse("{\"topic\":\"a\",\"topic\":\"b\"}", &env, why, sizeof(why));
    ok(rc == 0 && env.topic && (strcmp(env.topic, "a") == 0 || strcmp(env.topic, "b") == 0),
       "a repeated topic key still gives one of its values");
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

int main(void)
{
    test_samples();
    test_refusals();
    test_fields();
    test_valid_json_edge_cases();
    return done_testing();
}
