/* Templates for Kafka topics and keys and Redis stream keys: which
 * templates are accepted, the defaults of DESIGN.md, "_" for missing
 * fields, sanitising per kind, and truncation that never writes past the
 * buffer. */
#include "test.h"

#include "hb/template.h"

/* Today's templates name only the Intercom fields; routes add {route}. */
static size_t expand(const char *tmpl, hb_tmpl_kind_t kind, const char *app_id, const char *topic,
                     const char *id, char *out, size_t outlen)
{
    hb_tmpl_fields_t f = {.route = "intercom", .source = app_id, .topic = topic, .id = id};
    return hb_template_expand(tmpl, kind, &f, out, outlen);
}

static void test_routes(void)
{
    char out[256], err[256];
    is_int(hb_template_check("{route}.{topic}", err, sizeof(err)), 0, "{route} is known");
    is_int(hb_template_check("{route}:{source}:{topic}", err, sizeof(err)), 0, "{source} is known");
    hb_tmpl_fields_t f = {.route = "github",
                          .source = "octo-org/hello-world",
                          .topic = "issues.opened",
                          .id = "72d3162e"};
    hb_template_expand("{route}.{topic}", HB_TMPL_KAFKA_TOPIC, &f, out, sizeof(out));
    is_str(out, "github.issues.opened", "{route}.{topic}");
    hb_template_expand("{source}", HB_TMPL_RAW, &f, out, sizeof(out));
    is_str(out, "octo-org/hello-world", "{source} as a Kafka key keeps its bytes");
    hb_template_expand("{route}:{source}:{topic}", HB_TMPL_REDIS_KEY, &f, out, sizeof(out));
    is_str(out, "github:octo-org/hello-world:issues.opened", "Redis stream key");
    hb_template_expand("{app_id}|{workspace}|{source}", HB_TMPL_RAW, &f, out, sizeof(out));
    is_str(out, "octo-org/hello-world|octo-org/hello-world|octo-org/hello-world",
           "{app_id} and {workspace} are aliases of {source}");
    f.source = NULL;
    f.route = NULL;
    hb_template_expand("{route}.{source}", HB_TMPL_KAFKA_TOPIC, &f, out, sizeof(out));
    is_str(out, "_._", "a missing route or source expands to _");
}

static void test_check(void)
{
    const char *good[] = {"intercom.{topic}",
                          "{app_id}",
                          "{workspace}.{id}",
                          "intercom:{app_id}:{topic}",
                          "{app_id}{topic}{id}",
                          "plain-text",
                          "{id}"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char err[256] = "";
        is_int(hb_template_check(good[i], err, sizeof(err)), 0, "check accepts \"%s\"", good[i]);
    }
    const char *bad[] = {"{nope}", "{topic",    "topic}",    "",
                         "{}",     "{{topic}}", "a}{topic}", "{app_id}.{"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[256] = "";
        int rc = hb_template_check(bad[i], err, sizeof(err));
        ok(rc == -1 && err[0] != '\0', "check rejects \"%s\" with a reason (%s)", bad[i], err);
    }
    char err[256] = "";
    hb_template_check("x.{nope}", err, sizeof(err));
    ok(strstr(err, "nope") != NULL, "the reason names the unknown placeholder: %s", err);
    /* a tiny error buffer is not overrun */
    char small[8];
    memset(small, 'X', sizeof(small));
    hb_template_check("{nope}", small, 4);
    ok(small[3] == '\0' && small[4] == 'X', "error text truncated to errlen");
}

static void test_expand_defaults(void)
{
    char out[512];
    size_t n = expand("intercom.{topic}", HB_TMPL_KAFKA_TOPIC, "k7x2m9pw", "contact.created",
                      "notif_1", out, sizeof(out));
    is_str(out, "intercom.contact.created", "default kafka.topic");
    is_int(n, strlen("intercom.contact.created"), "returns the length written");
    expand("intercom:{app_id}:{topic}", HB_TMPL_REDIS_KEY, "k7x2m9pw", "ping", NULL, out,
           sizeof(out));
    is_str(out, "intercom:k7x2m9pw:ping", "default redis.stream");
    expand("{app_id}", HB_TMPL_RAW, "k7x2m9pw", "ping", NULL, out, sizeof(out));
    is_str(out, "k7x2m9pw", "default kafka.key");
    expand("{workspace}/{topic}/{id}", HB_TMPL_RAW, "ws1", "t", "id9", out, sizeof(out));
    is_str(out, "ws1/t/id9", "{workspace} is {app_id}; {id} expands");
    expand("{topic}{topic}", HB_TMPL_RAW, "a", "t", "i", out, sizeof(out));
    is_str(out, "tt", "a placeholder may repeat");

    /* missing or null fields */
    expand("intercom:{app_id}:{topic}", HB_TMPL_REDIS_KEY, NULL, "ping", NULL, out, sizeof(out));
    is_str(out, "intercom:_:ping", "NULL app_id expands to _ (redis)");
    expand("{app_id}", HB_TMPL_RAW, NULL, "ping", NULL, out, sizeof(out));
    is_str(out, "_", "NULL app_id expands to _ (key)");
    expand("e.{id}", HB_TMPL_KAFKA_TOPIC, "a", "ping", NULL, out, sizeof(out));
    is_str(out, "e._", "NULL id expands to _ (topic)");
    expand("{workspace}.{topic}.{id}", HB_TMPL_KAFKA_TOPIC, NULL, NULL, NULL, out, sizeof(out));
    is_str(out, "_._._", "every field NULL");
}

static void test_sanitise(void)
{
    char out[1024];
    /* Kafka topics: [A-Za-z0-9._-] only, in values and literal text alike */
    expand("intercom.{topic}", HB_TMPL_KAFKA_TOPIC, "a", "conversation user/created#1", NULL, out,
           sizeof(out));
    is_str(out, "intercom.conversation_user_created_1", "kafka topic: space / # become _");
    expand("intercom:{app_id}", HB_TMPL_KAFKA_TOPIC, "a:b", "t", NULL, out, sizeof(out));
    is_str(out, "intercom_a_b", "kafka topic: ':' in literal text and value become _");
    expand("t.{topic}", HB_TMPL_KAFKA_TOPIC, "a", "caf\xc3\xa9", NULL, out, sizeof(out));
    is_str(out, "t.caf__", "kafka topic: each non-ASCII byte becomes _");
    expand("{topic}", HB_TMPL_KAFKA_TOPIC, "a", "AZaz09._-", NULL, out, sizeof(out));
    is_str(out, "AZaz09._-", "kafka topic: the allowed characters are kept");
    int all = 1;
    for (int c = 1; c < 256; c++) {
        char v[2] = {(char)c, 0};
        expand("{topic}", HB_TMPL_KAFKA_TOPIC, "a", v, NULL, out, sizeof(out));
        int allowed = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-';
        if (strlen(out) != 1 || out[0] != (allowed ? (char)c : '_')) {
            diag("byte 0x%02x became '%s'", c, out);
            all = 0;
        }
    }
    ok(all, "kafka topic: every byte 0x01..0xff is kept iff in [A-Za-z0-9._-], else _");

    /* Kafka topics are at most 249 characters */
    char longv[400];
    memset(longv, 'a', 300);
    longv[300] = '\0';
    memset(out, 'X', sizeof(out));
    size_t n = expand("intercom.{topic}", HB_TMPL_KAFKA_TOPIC, "a", longv, NULL, out, sizeof(out));
    is_int(n, 249, "kafka topic truncated to 249 characters");
    is_int(strlen(out), 249, "NUL-terminated at 249");
    ok(strncmp(out, "intercom.aaaa", 13) == 0, "truncation keeps the beginning");
    n = expand("{app_id}", HB_TMPL_RAW, longv, "t", NULL, out, sizeof(out));
    is_int(n, 300, "a RAW key is not cut at 249");

    /* Redis keys: no spaces or control characters */
    expand("s:{topic}", HB_TMPL_REDIS_KEY, "a",
           "a b\tc\x01"
           "d\x7f"
           "e\r\nf",
           NULL, out, sizeof(out));
    is_str(out, "s:a_b_c_d_e__f", "redis key: space, tab, control chars, DEL become _");
    expand("s {app_id}", HB_TMPL_REDIS_KEY, "ws:1/{x}", "t", NULL, out, sizeof(out));
    is_str(out, "s_ws:1/{x}", "redis key: printable punctuation kept, literal space replaced");

    /* RAW keeps the bytes */
    expand("{app_id}", HB_TMPL_RAW, "a b\tc/caf\xc3\xa9:#", "t", NULL, out, sizeof(out));
    is_str(out, "a b\tc/caf\xc3\xa9:#", "RAW keeps spaces, tabs, UTF-8 and punctuation");
}

static void test_truncation(void)
{
    char buf[64];
    memset(buf, 'X', sizeof(buf));
    size_t n =
        expand("intercom.{topic}", HB_TMPL_KAFKA_TOPIC, "a", "contact.created", NULL, buf, 5);
    is_int(n, 4, "outlen 5: 4 characters written");
    is_str(buf, "inte", "outlen 5: \"inte\"");
    ok(buf[5] == 'X', "outlen 5: nothing written past the buffer");

    memset(buf, 'X', sizeof(buf));
    n = expand("{app_id}:{topic}", HB_TMPL_REDIS_KEY, "abcdef", "ghij", NULL, buf, 4);
    is_str(buf, "abc", "outlen 4 cutting inside a value");
    ok(n == 3 && buf[4] == 'X', "returns 3, nothing written past the buffer");

    memset(buf, 'X', sizeof(buf));
    n = expand("{app_id}:{topic}", HB_TMPL_REDIS_KEY, "abc", "ghij", NULL, buf, 4);
    is_str(buf, "abc", "outlen 4 ending exactly at a placeholder's end");
    ok(n == 3 && buf[4] == 'X', "nothing written past the buffer");

    memset(buf, 'X', sizeof(buf));
    n = expand("{app_id}", HB_TMPL_RAW, "abc", "t", NULL, buf, 1);
    ok(n == 0 && buf[0] == '\0' && buf[1] == 'X', "outlen 1: empty string");

    memset(buf, 'X', sizeof(buf));
    n = expand("{app_id}", HB_TMPL_RAW, "abc", "t", NULL, buf, 0);
    ok(n == 0 && buf[0] == 'X', "outlen 0: nothing written at all");

    memset(buf, 'X', sizeof(buf));
    n = expand("{app_id}", HB_TMPL_RAW, "abc", "t", NULL, buf, 4);
    ok(n == 3 && strcmp(buf, "abc") == 0, "outlen exactly strlen+1 holds the whole value");

    /* the 249 cap and a smaller buffer: the smaller wins */
    char longv[300];
    memset(longv, 'b', 299);
    longv[299] = '\0';
    memset(buf, 'X', sizeof(buf));
    n = expand("{topic}", HB_TMPL_KAFKA_TOPIC, "a", longv, NULL, buf, 10);
    ok(n == 9 && strlen(buf) == 9 && buf[10] == 'X', "kafka topic into 10 bytes: 9 characters");
}

int main(void)
{
    test_routes();
    test_check();
    test_expand_defaults();
    test_sanitise();
    test_truncation();
    return done_testing();
}
