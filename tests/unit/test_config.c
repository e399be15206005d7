/* Configuration: defaults, the file format and its errors (file:line and
 * the key), value types, kafka.* pass-through, environment overrides,
 * file: secrets, cross-key checks, and config/hookbridge.conf against the
 * key table. Temporary files live in a mkdtemp directory. */
#include "test.h"

#include "hb/config.h"

#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/hb-test-config.XXXXXX";
static int nfiles;

/* Write text to a new file in tmpdir; returns its path (static buffer ring). */
static const char *write_file(const char *text)
{
    static char paths[8][512];
    char *p = paths[nfiles % 8];
    snprintf(p, 512, "%s/f%d.conf", tmpdir, nfiles++);
    FILE *f = fopen(p, "w");
    if (!f) {
        perror(p);
        abort();
    }
    fputs(text, f);
    fclose(f);
    return p;
}

static int has(const char *err, const char *s)
{
    return strstr(err, s) != NULL;
}

static const char *kprop(const hb_config_t *c, const char *key)
{
    for (size_t i = 0; i < c->n_kafka_props; i++)
        if (strcmp(c->kafka_props[i].key, key) == 0)
            return c->kafka_props[i].value;
    return NULL;
}

static void test_defaults(void)
{
    hb_config_t c;
    hb_config_init(&c);
    is_str(c.listen, "0.0.0.0:8443", "default listen");
    is_str(c.admin_listen, "127.0.0.1:9090", "default admin.listen");
    is_str(c.tls_min_version, "1.2", "default tls.min_version");
    ok(c.tls_cert && !c.tls_cert[0] && c.tls_key && !c.tls_key[0], "tls.cert and tls.key unset");
    is_str(c.intercom_path, "/webhooks/intercom", "default intercom.path");
    ok(c.intercom_secret && c.intercom_secret[0] == '\0', "intercom.secret unset");
    is_int(c.intercom_verify, 1, "default intercom.verify on");
    is_str(c.sinks_str, "file", "default sinks");
    is_str(c.kafka_topic, "intercom.{topic}", "default kafka.topic");
    is_str(c.kafka_key, "{app_id}", "default kafka.key");
    is_str(c.kafka_dead_letter_topic, "intercom.dead-letter", "default kafka.dead_letter_topic");
    is_str(c.redis_stream, "intercom:{app_id}:{topic}", "default redis.stream");
    is_int(c.redis_maxlen, 1000000, "default redis.maxlen");
    is_str(c.file_path, "data/events.jsonl", "default file.path");
    is_str(c.journal_dir, "data/journal", "default journal.dir");
    is_int(c.journal_max_bytes, 1073741824, "default journal.max_bytes");
    is_str(c.ack_str, "durable", "default ack");
    is_int(c.ack, HB_ACK_DURABLE, "default ack mode durable");
    is_int(c.max_body, 1048576, "default limits.max_body");
    is_int(c.shutdown_grace_ms, 10000, "default shutdown.grace_ms");
    is_int(c.workers, 0, "default workers (0 = number of CPUs)");
    is_int(c.dedup, 1, "default dedup on");
    is_int(c.dedup_window_ms, 24 * 3600 * 1000, "default dedup.window 24h");
    is_int(c.max_connections, 10000, "default limits.max_connections");
    is_int(c.read_timeout_ms, 10000, "default limits.read_timeout_ms");
    is_str(c.log_level, "info", "default log.level");
    is_str(c.log_format, "text", "default log.format");
    is_int(c.n_kafka_props, 0, "no kafka pass-through properties");

    char err[512] = "";
    ok(hb_config_finish(&c, err, sizeof(err)) == -1 && has(err, "intercom.secret"),
       "defaults alone fail finish: intercom.secret required (%s)", err);
    hb_config_set(&c, "intercom.secret", "s", "test", err, sizeof(err));
    ok(hb_config_finish(&c, err, sizeof(err)) == 0, "defaults + a secret pass finish (%s)", err);
    is_int(c.sinks, HB_SINK_FILE, "sinks bits: file");
    hb_config_free(&c);
    hb_config_free(&c); /* twice: the first left it empty */

    hb_config_t z;
    memset(&z, 0, sizeof(z));
    hb_config_free(&z); /* a half-built (never initialised) config */
    ok(1, "hb_config_free accepts a zeroed config and a freed one");
}

static void test_file_format(void)
{
    char err[512] = "";
    hb_config_t c;
    hb_config_init(&c);
    const char *p = write_file("# hookbridge test\n"
                               "   # indented comment\n"
                               "\n"
                               "\t\n"
                               "listen=127.0.0.1:9443\n"
                               "  ack   =   written  \n"
                               "intercom.secret\t=\tabc,def\n"
                               "limits.max_body = 1m\n"
                               "journal.max_bytes = 4m\n"
                               "redis.maxlen = 0\n"
                               "intercom.verify = off\n"
                               "log.level = debug\n"
                               "kafka.topic = events.{workspace}.{topic}\n"
                               "file.path = /var/lib/hb/events=1.jsonl\n"
                               "listen = 127.0.0.1:9444\n"
                               "workers = 4"); /* no newline at the end */
    int rc = hb_config_load_file(&c, p, err, sizeof(err));
    is_int(rc, 0, "file with comments, blank lines and spaces loads (%s)", rc ? err : "ok");
    is_str(c.listen, "127.0.0.1:9444", "the later of two lines wins");
    is_str(c.ack_str, "written", "spaces around '=' and value trimmed");
    is_str(c.intercom_secret, "abc,def", "tabs around '=' trimmed");
    is_int(c.max_body, 1048576, "1m -> 1048576");
    is_int(c.journal_max_bytes, 4194304, "4m -> 4194304");
    is_int(c.redis_maxlen, 0, "redis.maxlen 0");
    is_int(c.intercom_verify, 0, "intercom.verify off");
    is_str(c.log_level, "debug", "log.level debug");
    is_str(c.kafka_topic, "events.{workspace}.{topic}", "kafka.topic template");
    is_str(c.file_path, "/var/lib/hb/events=1.jsonl", "only the first '=' separates");
    is_int(c.workers, 4, "last line without a newline is read");
    is_str(c.admin_listen, "127.0.0.1:9090", "keys not in the file keep their default");
    is_str(c.path, p, "cfg->path records the file");
    ok(hb_config_finish(&c, err, sizeof(err)) == 0, "finish passes (%s)", err);
    is_int(c.ack, HB_ACK_WRITTEN, "ack mode written after finish");
    hb_config_free(&c);

    /* CRLF line endings (a file edited on Windows) */
    hb_config_init(&c);
    p = write_file("listen = 10.0.0.1:8443\r\nack = published\r\n");
    rc = hb_config_load_file(&c, p, err, sizeof(err));
    ok(rc == 0, "CRLF line endings load (%s)", rc ? err : "ok");
    is_str(c.listen, "10.0.0.1:8443", "CRLF: value without the \\r");
    is_str(c.ack_str, "published", "CRLF: enum without the \\r");
    hb_config_free(&c);

    /* '#' only starts a comment at the beginning of a line */
    hb_config_init(&c);
    p = write_file("intercom.secret = abc#def # not a comment\n");
    ok(hb_config_load_file(&c, p, err, sizeof(err)) == 0 &&
           strcmp(c.intercom_secret, "abc#def # not a comment") == 0,
       "a '#' inside a value is part of it (secrets may contain '#')");
    hb_config_free(&c);

    /* an empty file changes nothing */
    hb_config_init(&c);
    p = write_file("");
    ok(hb_config_load_file(&c, p, err, sizeof(err)) == 0 && strcmp(c.listen, "0.0.0.0:8443") == 0,
       "an empty file loads and changes nothing");
    hb_config_free(&c);

    /* a missing file */
    hb_config_init(&c);
    char missing[600];
    snprintf(missing, sizeof(missing), "%s/does-not-exist.conf", tmpdir);
    rc = hb_config_load_file(&c, missing, err, sizeof(err));
    ok(rc == -1 && has(err, "does-not-exist.conf"), "a missing file fails naming it (%s)", err);
    hb_config_free(&c);
}

/* Load text that is bad at line `line` because of `key`. */
static void expect_error(const char *text, int line, const char *key, const char *what)
{
    char err[512] = "", loc[600];
    hb_config_t c;
    hb_config_init(&c);
    const char *p = write_file(text);
    int rc = hb_config_load_file(&c, p, err, sizeof(err));
    snprintf(loc, sizeof(loc), "%s:%d", p, line);
    ok(rc == -1, "%s -> error", what);
    ok(has(err, loc), "%s: error has file:line %s (%s)", what, loc, err);
    if (key)
        ok(has(err, key), "%s: error names '%s'", what, key);
    hb_config_free(&c);
}

static void test_file_errors(void)
{
    expect_error("# a comment\nlisten = 1.2.3.4:5\n\nbogus.key = 1\n", 4, "bogus.key",
                 "unknown key");
    expect_error("\n\n\n\n\nlisten.port = 1\n", 6, "listen.port", "unknown key after blank lines");
    expect_error("ack = sometimes\n", 1, "ack", "ack = sometimes");
    expect_error("\nlimits.max_body = abc\n", 2, "limits.max_body", "limits.max_body = abc");
    expect_error("dedup.window = 5x\n", 1, "dedup.window", "dedup.window = 5x");
    expect_error("log.level = loud\n", 1, "log.level", "log.level = loud");
    expect_error("log.format = xml\n", 1, "log.format", "log.format = xml");
    expect_error("intercom.verify = maybe\n", 1, "intercom.verify", "intercom.verify = maybe");
    expect_error("tls.min_version = 1.1\n", 1, "tls.min_version", "tls.min_version = 1.1");
    expect_error("limits.max_body = 2g\n", 1, "limits.max_body", "limits.max_body out of range");
    expect_error("limits.max_body = -5\n", 1, "limits.max_body", "negative size");
    expect_error("limits.max_body = \n", 1, "limits.max_body", "empty size");
    expect_error("limits.max_body = 1 m\n", 1, "limits.max_body",
                 "size with a space before the unit");
    expect_error("journal.max_bytes = 99999999999999999999999\n", 1, "journal.max_bytes",
                 "size overflowing 64 bits");
    expect_error("journal.max_bytes = 9223372036854775807g\n", 1, "journal.max_bytes",
                 "size whose unit overflows 64 bits");
    expect_error("redis.maxlen = 10k\n", 1, "redis.maxlen", "a unit on a plain integer");
    expect_error("workers = 1.5\n", 1, "workers", "a fraction for an integer");
    expect_error("kafka.topic = intercom.{nope}\n", 1, "kafka.topic",
                 "unknown template placeholder");
    expect_error("redis.stream = intercom:{topic\n", 1, "redis.stream", "unterminated placeholder");
    expect_error("listen 0.0.0.0:1\n", 1, NULL, "line without '='");
    expect_error("= value\n", 1, NULL, "line without a key");
    expect_error("kafka.bad/prop = 1\n", 1, "kafka.bad/prop", "kafka property name with '/'");
    expect_error("LISTEN = 0.0.0.0:1\n", 1, "LISTEN", "keys are case-sensitive");
}

static void test_units(void)
{
    static const struct {
        const char *key, *value;
        int64_t want;
        size_t off;
    } cases[] = {
        {"limits.max_body", "1m", 1048576, offsetof(hb_config_t, max_body)},
        {"limits.max_body", "1M", 1048576, offsetof(hb_config_t, max_body)},
        {"limits.max_body", "512k", 524288, offsetof(hb_config_t, max_body)},
        {"limits.max_body", "2048", 2048, offsetof(hb_config_t, max_body)},
        {"limits.max_body", "1mb", 1048576, offsetof(hb_config_t, max_body)},
        {"journal.max_bytes", "1g", 1073741824, offsetof(hb_config_t, journal_max_bytes)},
        {"journal.max_bytes", "20GiB", 20LL << 30, offsetof(hb_config_t, journal_max_bytes)},
        {"dedup.window", "24h", 86400000, offsetof(hb_config_t, dedup_window_ms)},
        {"dedup.window", "500ms", 500, offsetof(hb_config_t, dedup_window_ms)},
        {"dedup.window", "30s", 30000, offsetof(hb_config_t, dedup_window_ms)},
        {"dedup.window", "15m", 900000, offsetof(hb_config_t, dedup_window_ms)},
        {"dedup.window", "7d", 7LL * 86400000, offsetof(hb_config_t, dedup_window_ms)},
        {"dedup.window", "0ms", 0, offsetof(hb_config_t, dedup_window_ms)},
        {"shutdown.grace_ms", "2500", 2500, offsetof(hb_config_t, shutdown_grace_ms)},
        {"limits.read_timeout_ms", "100", 100, offsetof(hb_config_t, read_timeout_ms)},
        {"limits.max_connections", "1", 1, offsetof(hb_config_t, max_connections)},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hb_config_t c;
        char err[512] = "";
        hb_config_init(&c);
        int rc = hb_config_set(&c, cases[i].key, cases[i].value, "t", err, sizeof(err));
        int64_t got = *(int64_t *)((char *)&c + cases[i].off);
        ok(rc == 0 && got == cases[i].want, "%s = %s -> %" PRId64 " (got %" PRId64 "%s%s)",
           cases[i].key, cases[i].value, cases[i].want, got, rc ? ", " : "", rc ? err : "");
        hb_config_free(&c);
    }
    /* booleans */
    const char *on[] = {"on", "true", "yes", "1", "ON"}, *off[] = {"off", "false", "no", "0"};
    int all = 1;
    for (size_t i = 0; i < 5; i++) {
        hb_config_t c;
        char err[256];
        hb_config_init(&c);
        hb_config_set(&c, "dedup", "off", "t", err, sizeof(err));
        if (hb_config_set(&c, "dedup", on[i], "t", err, sizeof(err)) != 0 || c.dedup != 1)
            all = 0;
        if (i < 4 &&
            (hb_config_set(&c, "dedup", off[i], "t", err, sizeof(err)) != 0 || c.dedup != 0))
            all = 0;
        hb_config_free(&c);
    }
    ok(all, "booleans: on/true/yes/1 and off/false/no/0");
    /* hb_config_set names its origin in errors */
    hb_config_t c;
    char err[512] = "";
    hb_config_init(&c);
    ok(hb_config_set(&c, "ack", "never", "my-origin", err, sizeof(err)) == -1 &&
           has(err, "my-origin") && has(err, "ack") && has(err, "never"),
       "hb_config_set error: origin, key and value (%s)", err);
    is_str(c.ack_str, "durable", "a refused value leaves the old one");
    hb_config_free(&c);
}

static void test_kafka_props(void)
{
    char err[512] = "";
    hb_config_t c;
    hb_config_init(&c);
    const char *p = write_file("kafka.brokers = b1:9092,b2:9092\n"
                               "kafka.compression.type = lz4\n"
                               "kafka.topic = intercom.{topic}\n"
                               "kafka.linger.ms = 5\n"
                               "kafka.key = {workspace}\n"
                               "kafka.dead_letter_topic = dlq\n"
                               "kafka.enable.idempotence = true\n"
                               "kafka.compression.type = zstd\n");
    int rc = hb_config_load_file(&c, p, err, sizeof(err));
    is_int(rc, 0, "kafka keys load (%s)", rc ? err : "ok");
    is_str(c.kafka_brokers, "b1:9092,b2:9092", "kafka.brokers is hookbridge's own key");
    is_str(c.kafka_key, "{workspace}", "kafka.key is hookbridge's own key");
    is_str(c.kafka_dead_letter_topic, "dlq", "kafka.dead_letter_topic is hookbridge's own key");
    is_int(c.n_kafka_props, 3, "three pass-through properties (a repeated key counted once)");
    if (c.n_kafka_props == 3) {
        is_str(c.kafka_props[0].key, "compression.type", "first in file order: compression.type");
        is_str(c.kafka_props[0].value, "zstd", "the repeated key overrides in place: zstd");
        is_str(c.kafka_props[1].key, "linger.ms", "second: linger.ms");
        is_str(c.kafka_props[1].value, "5", "linger.ms = 5");
        is_str(c.kafka_props[2].key, "enable.idempotence", "third: enable.idempotence");
    }
    ok(!kprop(&c, "brokers") && !kprop(&c, "topic") && !kprop(&c, "key") &&
           !kprop(&c, "dead_letter_topic"),
       "owned keys never reach the pass-through list");
    hb_config_free(&c);

    expect_error("kafka. = 1\n", 1, NULL, "'kafka.' with no property");
}

static void test_env(void)
{
    char err[512] = "", name[128];
    hb_config_env_name("journal.max_bytes", name, sizeof(name));
    is_str(name, "HOOKBRIDGE_JOURNAL_MAX_BYTES", "env name of journal.max_bytes");
    hb_config_env_name("kafka.brokers", name, sizeof(name));
    is_str(name, "HOOKBRIDGE_KAFKA_BROKERS", "env name of kafka.brokers");
    hb_config_env_name("a-b.c_d", name, sizeof(name));
    is_str(name, "HOOKBRIDGE_A_B_C_D", "'-' and '.' become '_', letters upper-case");
    hb_config_env_name("limits.max_body", name, 16);
    is_str(name, "HOOKBRIDGE_LIMI", "truncated to the buffer, NUL-terminated");

    char guard[32];
    memset(guard, 'X', sizeof(guard));
    hb_config_env_name("listen", guard, 8);
    int intact = 1;
    for (size_t i = 8; i < sizeof(guard); i++)
        if (guard[i] != 'X')
            intact = 0;
    ok(intact && memchr(guard, '\0', 8) != NULL,
       "bug: hb_config_env_name with a buffer shorter than \"HOOKBRIDGE_\" stays inside it");

    /* every key's env name is derivable the documented way */
    int derived = 1;
    for (size_t i = 0; hb_config_key_name(i); i++) {
        const char *k = hb_config_key_name(i);
        char want[128];
        size_t n = (size_t)snprintf(want, sizeof(want), "HOOKBRIDGE_");
        for (const char *q = k; *q; q++)
            want[n++] =
                *q == '.' || *q == '-' ? '_' : (*q >= 'a' && *q <= 'z' ? (char)(*q - 32) : *q);
        want[n] = '\0';
        hb_config_env_name(k, name, sizeof(name));
        if (strcmp(name, want) != 0)
            derived = 0;
    }
    ok(derived, "every key's env name is HOOKBRIDGE_ + upper-case with '_'");

    hb_config_t c;
    hb_config_init(&c);
    const char *p = write_file("limits.max_body = 2048\nkafka.linger.ms = 5\nlisten = 1.1.1.1:1\n");
    ok(hb_config_load_file(&c, p, err, sizeof(err)) == 0, "file before env");
    char *envp[] = {
        "PATH=/usr/bin:/bin",
        "HOOKBRIDGE_LIMITS_MAX_BODY=1024",
        "HOOKBRIDGE_JOURNAL_MAX_BYTES=2m",
        "HOOKBRIDGE_KAFKA_COMPRESSION_TYPE=zstd",
        "HOOKBRIDGE_KAFKA_BROKERS=k1:9092,k2:9092",
        "HOOKBRIDGE_KAFKA_DEAD_LETTER_TOPIC=dead",
        "HOOKBRIDGE_KAFKA_LINGER_MS=20",
        "HOOKBRIDGE_DEDUP=off",
        "HOOKBRIDGE_DEDUP_WINDOW=1h",
        "HOOKBRIDGE_LISTENX=9.9.9.9:9",
        "XHOOKBRIDGE_WORKERS=7",
        "HOOKBRIDGE_ACK=published",
        "HOOKBRIDGE_INTERCOM_PATH=/hooks/ic",
        NULL,
    };
    int rc = hb_config_apply_env(&c, envp, err, sizeof(err));
    is_int(rc, 0, "apply_env (%s)", rc ? err : "ok");
    is_int(c.max_body, 1024, "HOOKBRIDGE_LIMITS_MAX_BODY=1024 overrides the file's 2048");
    is_int(c.journal_max_bytes, 2 * 1048576, "HOOKBRIDGE_JOURNAL_MAX_BYTES=2m");
    is_str(kprop(&c, "compression.type"), "zstd",
           "HOOKBRIDGE_KAFKA_COMPRESSION_TYPE=zstd -> compression.type");
    is_str(kprop(&c, "linger.ms"), "20",
           "HOOKBRIDGE_KAFKA_LINGER_MS overrides the file's linger.ms");
    is_str(c.kafka_brokers, "k1:9092,k2:9092", "HOOKBRIDGE_KAFKA_BROKERS sets kafka.brokers");
    ok(kprop(&c, "brokers") == NULL, "HOOKBRIDGE_KAFKA_BROKERS is not a pass-through property");
    is_str(c.kafka_dead_letter_topic, "dead",
           "HOOKBRIDGE_KAFKA_DEAD_LETTER_TOPIC sets the owned key");
    ok(kprop(&c, "dead.letter.topic") == NULL, "... and is not a pass-through property");
    is_int(c.n_kafka_props, 2, "exactly two pass-through properties (linger.ms, compression.type)");
    is_int(c.dedup, 0, "HOOKBRIDGE_DEDUP=off");
    is_int(c.dedup_window_ms, 3600000,
           "HOOKBRIDGE_DEDUP_WINDOW=1h (not taken for HOOKBRIDGE_DEDUP)");
    is_str(c.listen, "1.1.1.1:1", "HOOKBRIDGE_LISTENX does not set listen");
    is_int(c.workers, 0, "XHOOKBRIDGE_WORKERS is ignored");
    is_str(c.ack_str, "published", "HOOKBRIDGE_ACK=published");
    is_str(c.intercom_path, "/hooks/ic", "HOOKBRIDGE_INTERCOM_PATH");
    hb_config_free(&c);

    hb_config_init(&c);
    char *bad[] = {"HOOKBRIDGE_LIMITS_MAX_BODY=abc", NULL};
    rc = hb_config_apply_env(&c, bad, err, sizeof(err));
    ok(rc == -1 && has(err, "HOOKBRIDGE_LIMITS_MAX_BODY") && has(err, "limits.max_body"),
       "a bad env value fails naming the variable and the key (%s)", err);
    hb_config_free(&c);

    hb_config_init(&c);
    char *empty[] = {NULL};
    ok(hb_config_apply_env(&c, empty, err, sizeof(err)) == 0 && c.max_body == 1048576,
       "an empty environment changes nothing");
    hb_config_free(&c);

    /* NULL = the process environment */
    setenv("HOOKBRIDGE_REDIS_MAXLEN", "77", 1);
    setenv("HOOKBRIDGE_KAFKA_ACKS", "all", 1);
    hb_config_init(&c);
    rc = hb_config_apply_env(&c, NULL, err, sizeof(err));
    ok(rc == 0 && c.redis_maxlen == 77, "envp NULL reads environ: HOOKBRIDGE_REDIS_MAXLEN=77");
    is_str(kprop(&c, "acks"), "all", "envp NULL: HOOKBRIDGE_KAFKA_ACKS=all -> acks");
    hb_config_free(&c);
    unsetenv("HOOKBRIDGE_REDIS_MAXLEN");
    unsetenv("HOOKBRIDGE_KAFKA_ACKS");
}

/* file: secrets are read by hb_config_finish, after the environment had
 * its chance to override the file's value. */
static void test_secrets(void)
{
    char err[512] = "", line[2048];
    hb_config_t c;

    char sfile[300];
    snprintf(sfile, sizeof(sfile), "%s/intercom_secret", tmpdir);
    FILE *f = fopen(sfile, "w");
    fputs("s3cr3t-one,s3cr3t-two\n\n", f);
    fclose(f);

    hb_config_init(&c);
    snprintf(line, sizeof(line), "intercom.secret = file:%s\n", sfile);
    int rc = hb_config_load_file(&c, write_file(line), err, sizeof(err));
    if (rc == 0)
        rc = hb_config_finish(&c, err, sizeof(err));
    is_int(rc, 0, "intercom.secret = file:... loads and finishes (%s)", rc ? err : "ok");
    is_str(c.intercom_secret, "s3cr3t-one,s3cr3t-two",
           "secret read from the file, trailing newlines cut");
    hb_config_free(&c);

    hb_config_init(&c);
    snprintf(line, sizeof(line),
             "intercom.verify = off\nredis.url = file:%s\n"
             "kafka.sasl.password = file:%s\nkafka.client.id = file:%s\n",
             sfile, sfile, sfile);
    rc = hb_config_load_file(&c, write_file(line), err, sizeof(err));
    if (rc == 0)
        rc = hb_config_finish(&c, err, sizeof(err));
    ok(rc == 0 && strcmp(c.redis_url, "s3cr3t-one,s3cr3t-two") == 0,
       "redis.url may be file: too (%s)", rc ? err : "ok");
    is_str(kprop(&c, "sasl.password"), "s3cr3t-one,s3cr3t-two", "kafka.sasl.password may be file:");
    ok(kprop(&c, "client.id") && strncmp(kprop(&c, "client.id"), "file:", 5) == 0,
       "a kafka property that is not a secret keeps file: as text");
    hb_config_free(&c);

    hb_config_init(&c);
    char *envp[] = {line, NULL};
    snprintf(line, sizeof(line), "HOOKBRIDGE_INTERCOM_SECRET=file:%s", sfile);
    rc = hb_config_apply_env(&c, envp, err, sizeof(err));
    if (rc == 0)
        rc = hb_config_finish(&c, err, sizeof(err));
    ok(rc == 0 && strcmp(c.intercom_secret, "s3cr3t-one,s3cr3t-two") == 0,
       "HOOKBRIDGE_INTERCOM_SECRET=file:... reads the file (Docker secrets) (%s)", rc ? err : "ok");
    hb_config_free(&c);

    /* the environment overrides a file: value whose file does not exist */
    hb_config_init(&c);
    snprintf(line, sizeof(line), "intercom.secret = file:%s/no-such-secret\n", tmpdir);
    rc = hb_config_load_file(&c, write_file(line), err, sizeof(err));
    char *envp2[] = {"HOOKBRIDGE_INTERCOM_SECRET=from-env", NULL};
    if (rc == 0)
        rc = hb_config_apply_env(&c, envp2, err, sizeof(err));
    if (rc == 0)
        rc = hb_config_finish(&c, err, sizeof(err));
    ok(rc == 0 && strcmp(c.intercom_secret, "from-env") == 0,
       "the environment overrides the file's file: secret before it is read (%s)", rc ? err : "ok");
    hb_config_free(&c);

    /* a missing secret file is an error naming the key and the path */
    hb_config_init(&c);
    snprintf(line, sizeof(line), "\n\nintercom.secret = file:%s/no-such-secret\n", tmpdir);
    rc = hb_config_load_file(&c, write_file(line), err, sizeof(err));
    if (rc == 0)
        rc = hb_config_finish(&c, err, sizeof(err));
    ok(rc == -1 && has(err, "intercom.secret") && has(err, "no-such-secret"),
       "missing secret file -> error with key and path (%s)", err);
    hb_config_free(&c);

    /* a key that is not a secret keeps file: as text */
    hb_config_init(&c);
    snprintf(line, sizeof(line), "intercom.verify = off\nfile.path = file:%s\n", sfile);
    rc = hb_config_load_file(&c, write_file(line), err, sizeof(err));
    if (rc == 0)
        rc = hb_config_finish(&c, err, sizeof(err));
    ok(rc == 0 && strncmp(c.file_path, "file:", 5) == 0, "file.path = file:... is taken literally");
    hb_config_free(&c);
}

static int finish_text(const char *text, char *err, size_t errlen, hb_config_t *c)
{
    hb_config_init(c);
    if (hb_config_load_file(c, write_file(text), err, errlen) < 0)
        return -2;
    return hb_config_finish(c, err, errlen);
}

static void test_finish(void)
{
    char err[512];
    hb_config_t c;
    int rc;

    err[0] = '\0';
    rc = finish_text("sinks = file\n", err, sizeof(err), &c);
    ok(rc == -1 && has(err, "intercom.secret"), "verify on without a secret -> error (%s)", err);
    hb_config_free(&c);

    err[0] = '\0';
    rc = finish_text("intercom.verify = off\n", err, sizeof(err), &c);
    ok(rc == 0, "verify off without a secret is fine (%s)", err);
    hb_config_free(&c);

    err[0] = '\0';
    rc = finish_text("intercom.secret = s\nsinks = kafka\n", err, sizeof(err), &c);
    ok(rc == -1 && has(err, "kafka.brokers"), "sinks = kafka without kafka.brokers -> error (%s)",
       err);
    hb_config_free(&c);

    err[0] = '\0';
    rc = finish_text("intercom.secret = s\nsinks = kafka, file\nkafka.brokers = b:9092\n", err,
                     sizeof(err), &c);
    ok(rc == 0 && c.sinks == (HB_SINK_KAFKA | HB_SINK_FILE),
       "sinks = kafka, file -> both bits (%s)", err);
    hb_config_free(&c);

    err[0] = '\0';
    rc = finish_text("intercom.secret = s\nsinks = bogus\n", err, sizeof(err), &c);
    ok(rc == -1 && has(err, "sinks") && has(err, "bogus"), "sinks = bogus -> error naming it (%s)",
       err);
    hb_config_free(&c);

    err[0] = '\0';
    rc = finish_text("intercom.secret = s\nsinks = file,bogus\n", err, sizeof(err), &c);
    ok(rc == -1 && has(err, "bogus"), "sinks = file,bogus -> error (%s)", err);
    hb_config_free(&c);

    err[0] = '\0';
    rc = finish_text("intercom.secret = s\nsinks =\n", err, sizeof(err), &c);
    ok(rc == -1 && has(err, "sinks"), "sinks empty -> error (%s)", err);
    hb_config_free(&c);

    err[0] = '\0';
    rc = finish_text("intercom.secret = s\nsinks = redis\n", err, sizeof(err), &c);
    ok(rc == -1 && has(err, "redis.url"), "sinks = redis without redis.url -> error (%s)", err);
    hb_config_free(&c);

    err[0] = '\0';
    rc = finish_text("intercom.secret = s\nsinks = redis,kafka,file\nredis.url = redis://r:6379/0\n"
                     "kafka.brokers = b:9092\n",
                     err, sizeof(err), &c);
    ok(rc == 0 && c.sinks == (HB_SINK_KAFKA | HB_SINK_FILE | HB_SINK_REDIS), "all three sinks (%s)",
       err);
    hb_config_free(&c);

    err[0] = '\0';
    rc = finish_text("intercom.secret = s\ntls.cert = /etc/hb/cert.pem\n", err, sizeof(err), &c);
    ok(rc == -1 && has(err, "tls.key"), "tls.cert without tls.key -> error naming tls.key (%s)",
       err);
    hb_config_free(&c);

    err[0] = '\0';
    rc = finish_text("intercom.secret = s\ntls.key = /etc/hb/key.pem\n", err, sizeof(err), &c);
    ok(rc == -1 && has(err, "tls.cert"), "tls.key without tls.cert -> error naming tls.cert (%s)",
       err);
    hb_config_free(&c);

    err[0] = '\0';
    rc = finish_text("intercom.secret = s\ntls.cert = c.pem\ntls.key = k.pem\n", err, sizeof(err),
                     &c);
    ok(rc == 0, "tls.cert and tls.key together (%s)", err);
    hb_config_free(&c);

    err[0] = '\0';
    rc = finish_text("intercom.secret = s\nintercom.path = webhooks\n", err, sizeof(err), &c);
    ok(rc == -1 && has(err, "intercom.path"), "intercom.path without a leading '/' -> error (%s)",
       err);
    hb_config_free(&c);

    err[0] = '\0';
    rc = finish_text("intercom.secret = s\nack = published\n", err, sizeof(err), &c);
    ok(rc == 0 && c.ack == HB_ACK_PUBLISHED, "ack = published -> HB_ACK_PUBLISHED");
    hb_config_free(&c);
}

/* issue 11: route.<name>.<key>: the Intercom route first from the intercom.*
 * keys, the others in the order their first key appeared, with their
 * defaults; errors name the route; HOOKBRIDGE_ROUTE_<NAME>_<KEY>. */
static void test_routes(void)
{
    char err[512] = "";
    hb_config_t c;
    int rc = finish_text("intercom.secret = s\n", err, sizeof(err), &c);
    ok(rc == 0 && c.n_routes == 1, "no route keys: one route, Intercom's (%s)", err);
    if (rc == 0 && c.n_routes == 1) {
        const hb_route_cfg_t *r = &c.routes[0];
        is_str(r->name, "intercom", "the Intercom route is named intercom");
        is_str(r->path, "/webhooks/intercom", "... at intercom.path");
        is_str(r->scheme, "intercom", "... with the scheme intercom");
        is_str(r->secret, "s", "... and intercom.secret");
        is_str(r->kafka_topic, "intercom.{topic}", "... and the global kafka.topic");
        is_str(r->kafka_key, "{app_id}", "... and the global kafka.key");
        is_str(r->redis_stream, "intercom:{app_id}:{topic}", "... and the global redis.stream");
        is_int(r->max_body, 1048576, "... and limits.max_body");
        is_int(r->verify, 1, "... verifying");
    }
    hb_config_free(&c);

    rc = finish_text("intercom.secret = s\n"
                     "route.shop.scheme = shopify\n"
                     "route.github.path = /webhooks/github\n"
                     "route.github.secret = gh1, gh2\n"
                     "route.shop.path = /webhooks/shop\n"
                     "route.shop.secret = sh\n"
                     "route.shop.max_body = 64k\n"
                     "route.shop.kafka.topic = shop.{topic}\n"
                     "route.github.tolerance = 30s\n",
                     err, sizeof(err), &c);
    ok(rc == 0 && c.n_routes == 3, "three routes (%s)", err);
    if (rc == 0 && c.n_routes == 3) {
        is_str(c.routes[0].name, "intercom", "Intercom first");
        is_str(c.routes[1].name, "shop", "then in the order of their first key: shop");
        is_str(c.routes[2].name, "github", "... github");
        is_str(c.routes[2].scheme, "github", "scheme unset = the route's name when a scheme");
        is_str(c.routes[2].secret, "gh1, gh2", "route secret list");
        is_str(c.routes[2].kafka_topic, "{route}.{topic}", "default route kafka.topic");
        is_str(c.routes[2].kafka_key, "{source}", "default route kafka.key");
        is_str(c.routes[2].redis_stream, "{route}:{source}:{topic}", "default route redis.stream");
        is_int(c.routes[2].tolerance_ms, 30000, "route tolerance 30s");
        is_int(c.routes[1].tolerance_ms, 300000, "default tolerance 5m");
        is_int(c.routes[2].max_body, 1048576, "max_body unset = limits.max_body");
        is_int(c.routes[1].max_body, 65536, "route max_body 64k");
        is_str(c.routes[1].kafka_topic, "shop.{topic}", "route kafka.topic set");
        ok(hb_config_route(&c, "github") == &c.routes[2], "hb_config_route finds github");
        ok(hb_config_route(&c, "nope") == NULL, "hb_config_route: unknown name -> NULL");
    }
    hb_config_free(&c);

    rc = finish_text("intercom.path =\nroute.github.path = /gh\nroute.github.secret = g\n", err,
                     sizeof(err), &c);
    ok(rc == 0 && c.n_routes == 1 && !strcmp(c.routes[0].name, "github"),
       "intercom.path empty: no Intercom route, and no intercom.secret needed (%s)", err);
    hb_config_free(&c);

    rc = finish_text("intercom.secret = s\nroute.big.path = /big\nroute.big.scheme = hmac\n"
                     "route.big.secret = x\nroute.big.header = X-Sig\nroute.big.algorithm = "
                     "sha256\nroute.big.encoding = hex\nroute.big.max_body = 8m\n"
                     "route.big.topic = /type\n",
                     err, sizeof(err), &c);
    ok(rc == 0 && hb_config_max_body(&c) == 8 << 20,
       "hb_config_max_body: the largest route body (%s)", err);
    hb_config_free(&c);

    static const struct {
        const char *text, *want1, *want2;
    } bad[] = {
        {"route.github.pth = /x\n", "route.github", "pth"},
        {"route.Github.path = /x\n", "route.Github", "route name"},
        {"route.9x.path = /x\n", "route.9x", "route name"},
        {"route.github = /x\n", "route.github", "unknown route key"},
        {"route.intercom.path = /x\n", "route.intercom", "intercom.*"},
        {"route.github.scheme = gitlab\n", "route.github.scheme", "gitlab"},
        {"route.github.verify = maybe\n", "route.github.verify", "maybe"},
        {"route.github.max_body = 61m\n", "route.github.max_body", "range"},
        {"route.github.kafka.topic = x.{nope}\n", "route.github.kafka.topic", "nope"},
        {"route.github.secret = g\n", "route.github.path", "required"},
        {"route.github.path = gh\nroute.github.secret = g\n", "route.github.path", "'/'"},
        {"route.github.path = /a b\nroute.github.secret = g\n", "route.github.path", "ASCII"},
        {"route.github.path = /a?b=1\nroute.github.secret = g\n", "route.github.path", "'?'"},
        {"intercom.path = /hooks?x\n", "intercom.path", "'?'"},
        /* evhttp reads "//host/path" as a host and a path: never served */
        {"route.github.path = //webhooks/github\nroute.github.secret = g\n", "route.github.path",
         "one '/'"},
        {"route.github.path = /webhooks/intercom\nroute.github.secret = g\n", "route.github.path",
         "Intercom"},
        {"route.a.path = /x\nroute.a.scheme = github\nroute.a.secret = g\n"
         "route.b.path = /x\nroute.b.scheme = stripe\nroute.b.secret = g\n",
         "route.b.path", "route a"},
        {"route.custom.path = /c\nroute.custom.secret = g\n", "route.custom.scheme", "required"},
        {"route.github.path = /gh\n", "route.github.secret", "required"},
        {"route.github.path = /gh\nroute.github.secret = a,,b\n", "route.github.secret", "empty"},
        {"route.github.path = /gh\nroute.github.secret = file:/nonexistent/hb/x\n",
         "route.github.secret", "cannot read"},
        {"route.std.path = /std\nroute.std.scheme = standard\nroute.std.secret = "
         "whsec_!!not-base64!!\n",
         "route.std", ""},
        {"route.h.path = /h\nroute.h.scheme = hmac\nroute.h.secret = x\n", "route.h", ""},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[1024];
        snprintf(text, sizeof(text), "intercom.secret = s\n%s", bad[i].text);
        err[0] = '\0';
        rc = finish_text(text, err, sizeof(err), &c);
        ok(rc != 0 && has(err, bad[i].want1) && has(err, bad[i].want2),
           "refused naming %s (%s): %s", bad[i].want1, bad[i].want2, err);
        hb_config_free(&c);
    }
    err[0] = '\0';
    rc = finish_text("intercom.path =\n", err, sizeof(err), &c);
    ok(rc == -1 && has(err, "intercom.path"), "no route at all -> error (%s)", err);
    hb_config_free(&c);
    rc = finish_text("intercom.path =\nintercom.allow_ips = 10.0.0.0/8\nroute.github.path = /g\n"
                     "route.github.secret = g\n",
                     err, sizeof(err), &c);
    ok(rc == -1 && has(err, "intercom.allow_ips"), "allow_ips without an Intercom route (%s)", err);
    hb_config_free(&c);
    rc = finish_text("intercom.secret = s\nroute.github.path = /gh\nroute.github.verify = off\n",
                     err, sizeof(err), &c);
    ok(rc == 0, "verify = off needs no route secret (%s)", err);
    hb_config_free(&c);

    /* the environment: the longest route key ends the variable's name */
    hb_config_init(&c);
    char *envp[] = {
        "HOOKBRIDGE_ROUTE_GITHUB_KAFKA_TOPIC=gh.{topic}",
        "HOOKBRIDGE_ROUTE_GITHUB_PATH=/gh",
        "HOOKBRIDGE_ROUTE_GITHUB_SECRET=env-secret",
        "HOOKBRIDGE_ROUTE_MY_SHOP_SCHEME=shopify",
        "HOOKBRIDGE_ROUTE_MY_SHOP_PATH=/shop",
        "HOOKBRIDGE_ROUTE_MY_SHOP_SECRET=x",
        "HOOKBRIDGE_ROUTE_MY_SHOP_REDIS_STREAM=shop:{topic}",
        "HOOKBRIDGE_INTERCOM_SECRET=s",
        NULL,
    };
    rc = hb_config_apply_env(&c, envp, err, sizeof(err));
    if (rc == 0)
        rc = hb_config_finish(&c, err, sizeof(err));
    ok(rc == 0 && c.n_routes == 3, "routes from the environment (%s)", err);
    const hb_route_cfg_t *gh = hb_config_route(&c, "github"),
                         *shop = hb_config_route(&c, "my_shop");
    ok(gh && !strcmp(gh->kafka_topic, "gh.{topic}") && !strcmp(gh->path, "/gh"),
       "HOOKBRIDGE_ROUTE_GITHUB_KAFKA_TOPIC is route github's kafka.topic");
    ok(shop && !strcmp(shop->scheme, "shopify") && !strcmp(shop->redis_stream, "shop:{topic}"),
       "HOOKBRIDGE_ROUTE_MY_SHOP_*: route my_shop");
    hb_config_free(&c);
    hb_config_init(&c);
    char *badenv[] = {"HOOKBRIDGE_ROUTE_GITHUB_COLOUR=red", NULL};
    rc = hb_config_apply_env(&c, badenv, err, sizeof(err));
    ok(rc == -1 && has(err, "HOOKBRIDGE_ROUTE_GITHUB_COLOUR"),
       "an unknown route key in the environment names the variable (%s)", err);
    hb_config_free(&c);
    hb_config_init(&c);
    char *noname[] = {"HOOKBRIDGE_ROUTE_PATH=/x", NULL};
    rc = hb_config_apply_env(&c, noname, err, sizeof(err));
    ok(rc == -1 && has(err, "HOOKBRIDGE_ROUTE_PATH"), "a route variable without a name (%s)", err);
    hb_config_free(&c);
}

/* A line of the file that sets (or shows, commented out) `key`: optional
 * '#' and blanks, the key, then blanks or '='. */
static int mentions_key(const char *text, const char *key)
{
    size_t kl = strlen(key);
    for (const char *line = text; line && *line;) {
        const char *s = line;
        while (*s == ' ' || *s == '\t' || *s == '#')
            s++;
        if (strncmp(s, key, kl) == 0 && (s[kl] == ' ' || s[kl] == '\t' || s[kl] == '='))
            return 1;
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return 0;
}

static void test_shipped_conf(void)
{
    const char *path = HB_SOURCE_DIR "/config/hookbridge.conf";
    size_t nkeys = 0;
    while (hb_config_key_name(nkeys))
        nkeys++;
    /* every key of DESIGN.md section 2 is in the table */
    static const char *const documented[] = {"listen",
                                             "tls.cert",
                                             "tls.key",
                                             "tls.min_version",
                                             "admin.listen",
                                             "intercom.path",
                                             "intercom.secret",
                                             "sinks",
                                             "kafka.brokers",
                                             "kafka.topic",
                                             "kafka.key",
                                             "redis.url",
                                             "redis.stream",
                                             "redis.maxlen",
                                             "file.path",
                                             "journal.dir",
                                             "journal.max_bytes",
                                             "ack",
                                             "limits.max_body",
                                             "intercom.verify",
                                             "shutdown.grace_ms",
                                             "workers",
                                             "dedup",
                                             "dedup.window",
                                             "kafka.dead_letter_topic",
                                             "limits.max_connections",
                                             "limits.read_timeout_ms",
                                             "log.level",
                                             "log.format"};
    for (size_t d = 0; d < sizeof(documented) / sizeof(documented[0]); d++) {
        int found = 0;
        for (size_t i = 0; i < nkeys; i++)
            if (strcmp(hb_config_key_name(i), documented[d]) == 0)
                found = 1;
        ok(found, "documented key %s is in the key table", documented[d]);
    }
    if (access(path, F_OK) != 0) {
        skip("%s does not exist yet", path);
        return;
    }
    char err[512] = "";
    hb_config_t c;
    hb_config_init(&c);
    int rc = hb_config_load_file(&c, path, err, sizeof(err));
    is_int(rc, 0, "config/hookbridge.conf loads without error (%s)", rc ? err : "ok");
    hb_config_free(&c);
    size_t len;
    char *text = (char *)test_slurp(path, &len);
    ok(text != NULL, "read config/hookbridge.conf");
    if (!text)
        return;
    size_t missing = 0;
    for (size_t i = 0; i < nkeys; i++) {
        if (!mentions_key(text, hb_config_key_name(i))) {
            diag("config/hookbridge.conf does not mention %s", hb_config_key_name(i));
            missing++;
        }
    }
    ok(missing == 0, "config/hookbridge.conf mentions every one of the %zu keys (%zu missing)",
       nkeys, missing);
    missing = 0;
    for (size_t i = 0; hb_config_route_key_name(i); i++) {
        char key[128];
        snprintf(key, sizeof(key), "route.github.%s", hb_config_route_key_name(i));
        if (!mentions_key(text, key)) {
            diag("config/hookbridge.conf does not mention %s", key);
            missing++;
        }
    }
    ok(missing == 0, "config/hookbridge.conf shows every route key in its example route");
    free(text);
}

static void cleanup(void)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    char p[700];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof(p), "%s/%s", tmpdir, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(tmpdir);
}

/* issue 10: values that pass the parser but would configure nothing, or
 * less than meant, are errors that name the key */
static void test_misleading_values(void)
{
    static const struct {
        const char *text; /* config lines on top of a valid secret */
        const char *key;  /* the error must name it */
    } bad[] = {
        {"intercom.secret = ,\n", "intercom.secret"},
        {"intercom.secret = \t , \n", "intercom.secret"},
        {"intercom.secret = abc,,def\n", "intercom.secret"},
        {"intercom.secret = abc,\n", "intercom.secret"},
        {"intercom.verify = off\nintercom.secret = ,\n", "intercom.secret"},
        {"limits.max_body = 1m\njournal.max_bytes = 512k\n", "journal.max_bytes"},
        {"limits.max_body = 60m\njournal.max_bytes = 60m\n", "journal.max_bytes"},
        {"sinks = ,\n", "sinks"},
        {"sinks = file,,kafka\nkafka.brokers = k:9092\n", "sinks"},
        {"sinks = file,file\n", "sinks"},
        {"sinks = kafka\nkafka.brokers = ,\n", "kafka.brokers"},
        {"sinks = kafka\nkafka.brokers = k:9092,\n", "kafka.brokers"},
        {"sinks = kafka\nkafka.brokers = k:9092\nkafka.topic =\n", "kafka.topic"},
        {"sinks = kafka\nkafka.brokers = k:9092\nkafka.dead_letter_topic =\n",
         "kafka.dead_letter_topic"},
        {"sinks = redis\nredis.url = redis://r:6379\nredis.stream =\n", "redis.stream"},
        {"file.path =\n", "file.path"},
        {"journal.dir =\n", "journal.dir"},
        {"data.dir = \n", "data.dir"},
        {"listen = 127.0.0.1\n", "listen"},
        {"listen = 127.0.0.1:0\n", "listen"},
        {"listen = 127.0.0.1:65536\n", "listen"},
        {"listen = :8443\n", "listen"},
        {"admin.listen = 127.0.0.1:x\n", "admin.listen"},
        {"listen = 127.0.0.1:9000\nadmin.listen = 127.0.0.1:9000\n", "admin.listen"},
        {"dedup.window = 0\n", "dedup.window"},
        {"dedup.max_ids = 0\n", "dedup.max_ids"},
        {"limits.max_body = 0\n", "limits.max_body"},
        {"limits.max_body = -1\n", "limits.max_body"},
        {"journal.max_bytes = -1g\n", "journal.max_bytes"},
        {"limits.read_timeout_ms = 0\n", "limits.read_timeout_ms"},
        {"shutdown.grace_ms = -5\n", "shutdown.grace_ms"},
        {"limits.max_connections = 0\n", "limits.max_connections"},
        {"redis.wait_timeout_ms = 0\n", "redis.wait_timeout_ms"},
        {"tls.ciphers = NOT-A-CIPHER\n", "tls.ciphers"},
        {"tls.ciphers =\n", "tls.ciphers"},
        {"tls.ciphersuites = TLS_NOT_A_SUITE\n", "tls.ciphersuites"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[512], err[512] = "";
        snprintf(text, sizeof(text), "intercom.secret = s3cret_value\n%s", bad[i].text);
        hb_config_t c;
        int rc = hb_config_load(&c, write_file(text), err, sizeof(err));
        ok(rc == -1 && has(err, bad[i].key), "refused, naming %s: %.*s -> %s", bad[i].key,
           (int)strlen(bad[i].text) - 1, bad[i].text, err);
        ok(!has(err, "s3cret_value"), "the error does not quote the secret");
        hb_config_free(&c);
    }
    static const char *const good[] = {
        "intercom.secret = old_one , new_one\n", /* overrides the first line */
        "limits.max_body = 16k\njournal.max_bytes = 64k\n",
        "sinks = file, kafka\nkafka.brokers = a:9092, b:9092\n",
        "listen = [::1]:8443\n",
        "dedup = off\ndedup.window = 0\n",
        "tls.ciphers = ECDHE+AESGCM\ntls.ciphersuites = TLS_AES_256_GCM_SHA384\n",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char err[512] = "";
        hb_config_t c;
        char text[512];
        snprintf(text, sizeof(text), "intercom.secret = s3cret_value\n%s", good[i]);
        int rc = hb_config_load(&c, write_file(text), err, sizeof(err));
        ok(rc == 0, "accepted: %s (%s)", good[i], err);
        hb_config_free(&c);
    }
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    /* the process environment must not leak into the tests that read it */
    for (size_t i = 0; hb_config_key_name(i); i++) {
        char name[128];
        hb_config_env_name(hb_config_key_name(i), name, sizeof(name));
        unsetenv(name);
    }
    test_defaults();
    test_file_format();
    test_file_errors();
    test_units();
    test_kafka_props();
    test_env();
    test_secrets();
    test_finish();
    test_routes();
    test_misleading_values();
    test_shipped_conf();
    cleanup();
    return done_testing();
}
