/* Configuration table and parser. See include/hb/config.h.
 *
 * The table below is the single source of truth for keys: --help prints it,
 * tests check config/hookbridge.conf against it, and the environment
 * override names are derived from it. Types parse their own text so that
 * every error names the key and says what was expected. */
#include "hb/fmacros.h"

#include "hb/config.h"
#include "hb/allowlist.h"
#include "hb/log.h"
#include "hb/record.h"
#include "hb/scheme.h"
#include "hb/template.h"
#include "hb/util.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

extern char **environ;

typedef enum { T_STRING, T_INT, T_SIZE, T_DURATION, T_BOOL, T_ENUM, T_TEMPLATE } ctype_t;

#define F_SECRET 1 /* value may be file:/path and is never printed */

typedef struct {
    const char *name;
    ctype_t type;
    size_t offset;
    const char *def;
    const char *choices; /* T_ENUM: "a|b|c" */
    int64_t min, max;    /* numeric types */
    int flags;
    const char *help;
} key_t_;

#define OFF(f) offsetof(hb_config_t, f)
/* ECDHE key exchange, AEAD ciphers only: forward secrecy and no CBC padding
 * oracles; PSK and anonymous suites are never wanted on this listener. */
#define HB_TLS12_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20:!PSK:!aNULL"
#define BIG INT64_MAX

static const key_t_ keys[] = {
    {"listen", T_STRING, OFF(listen), "0.0.0.0:8443", NULL, 0, 0, 0,
     "address:port of the HTTPS listener"},
    {"tls.cert", T_STRING, OFF(tls_cert), "", NULL, 0, 0, 0,
     "PEM certificate chain; with tls.cert and tls.key unset a self-signed pair is generated "
     "under data.dir"},
    {"tls.key", T_STRING, OFF(tls_key), "", NULL, 0, 0, 0, "PEM private key"},
    {"tls.min_version", T_ENUM, OFF(tls_min_version), "1.2", "1.2|1.3", 0, 0, 0,
     "lowest TLS version accepted"},
    {"tls.ciphers", T_STRING, OFF(tls_ciphers), HB_TLS12_CIPHERS, NULL, 0, 0, 0,
     "TLS 1.2 cipher list in OpenSSL syntax; the default allows only ECDHE key exchange with "
     "AEAD ciphers (no CBC, no RSA key exchange)"},
    {"tls.ciphersuites", T_STRING, OFF(tls_ciphersuites), "", NULL, 0, 0, 0,
     "TLS 1.3 cipher suites in OpenSSL syntax; empty = OpenSSL's defaults"},
    {"admin.listen", T_STRING, OFF(admin_listen), "127.0.0.1:9090", NULL, 0, 0, 0,
     "plain HTTP listener for /healthz, /readyz and /metrics"},
    {"admin.token", T_STRING, OFF(admin_token), "", NULL, 0, 0, F_SECRET,
     "bearer token that the admin endpoints changing state ask for (journal replay, "
     "dead-letter redrive); empty = those endpoints answer 403"},
    {"data.dir", T_STRING, OFF(data_dir), "data", NULL, 0, 0, 0,
     "directory for generated state (the self-signed TLS pair)"},
    {"intercom.path", T_STRING, OFF(intercom_path), "/webhooks/intercom", NULL, 0, 0, 0,
     "path of the webhook endpoint"},
    {"intercom.secret", T_STRING, OFF(intercom_secret), "", NULL, 0, 0, F_SECRET,
     "the app's client secret; several, comma-separated, are all accepted (rotation); "
     "file:/path reads it from a file"},
    {"intercom.allow_ips", T_STRING, OFF(intercom_allow_ips), "", NULL, 0, 0, 0,
     "if set, only these sources may connect: comma list of CIDR blocks (IPv4, IPv6), or "
     "file:/path to a file of them (one per line, or Intercom's published JSON ranges); "
     "others get 403; reread on SIGHUP"},
    {"intercom.verify", T_BOOL, OFF(intercom_verify), "on", NULL, 0, 0, 0,
     "on, or off to accept unsigned deliveries"},
    {"sinks", T_STRING, OFF(sinks_str), "file", NULL, 0, 0, 0, "comma list of kafka, redis, file"},
    {"kafka.brokers", T_STRING, OFF(kafka_brokers), "", NULL, 0, 0, 0, "bootstrap servers"},
    {"kafka.topic", T_TEMPLATE, OFF(kafka_topic), "intercom.{topic}", NULL, 0, 0, 0,
     "topic template ({app_id}, {workspace}, {topic}, {id})"},
    {"kafka.key", T_TEMPLATE, OFF(kafka_key), "{app_id}", NULL, 0, 0, 0, "message key template"},
    {"kafka.dead_letter_topic", T_STRING, OFF(kafka_dead_letter_topic), "intercom.dead-letter",
     NULL, 0, 0, 0, "topic for events the broker rejects for good"},
    {"redis.url", T_STRING, OFF(redis_url), "", NULL, 0, 0, F_SECRET,
     "redis://[user:password@]host:port[/db]"},
    {"redis.stream", T_TEMPLATE, OFF(redis_stream), "intercom:{app_id}:{topic}", NULL, 0, 0, 0,
     "stream key template"},
    {"redis.maxlen", T_INT, OFF(redis_maxlen), "1000000", NULL, 0, BIG, 0,
     "approximate MAXLEN ~ trim of each stream; 0 = none"},
    {"redis.wait_replicas", T_INT, OFF(redis_wait_replicas), "0", NULL, 0, 1000, 0,
     "after each pipeline of XADDs, WAIT for this many replicas before the events count as "
     "published; 0 = off"},
    {"redis.wait_timeout_ms", T_INT, OFF(redis_wait_timeout_ms), "1000", NULL, 1, 600000, 0,
     "how long one WAIT or WAITAOF may block; on a shortfall the events are waited for again "
     "later"},
    {"redis.wait_aof", T_BOOL, OFF(redis_wait_aof), "off", NULL, 0, 0, 0,
     "on: WAITAOF until Redis has fsynced the events to its append-only file before they count "
     "as published (Redis 7.2 or later, appendonly yes)"},
    {"file.path", T_STRING, OFF(file_path), "data/events.jsonl", NULL, 0, 0, 0,
     "JSON-lines output of the file sink"},
    {"journal.dir", T_STRING, OFF(journal_dir), "data/journal", NULL, 0, 0, 0,
     "directory of the durable journal"},
    {"journal.max_bytes", T_SIZE, OFF(journal_max_bytes), "1073741824", NULL, 16384, BIG, 0,
     "journal size at which new deliveries get 503 + Retry-After (k, m, g suffixes allowed)"},
    {"journal.retain", T_DURATION, OFF(journal_retain_ms), "0", NULL, 0, BIG, 0,
     "keep published segments this long, for `hookbridge journal cat` (0 = delete once "
     "published); retained segments go first when the journal nears journal.max_bytes"},
    {"journal.retain_bytes", T_SIZE, OFF(journal_retain_bytes), "0", NULL, 0, BIG, 0,
     "keep at most this many bytes of published segments (0 = no size limit); with "
     "journal.retain, a segment goes when either limit is passed"},
    {"ack", T_ENUM, OFF(ack_str), "durable", "durable|written|published", 0, 0, 0,
     "when to answer 200: durable (after fdatasync), written (after write), published (after "
     "every sink acknowledged)"},
    {"limits.max_body", T_SIZE, OFF(max_body), "1048576", NULL, 64, 60 << 20, 0,
     "larger bodies get 413"},
    {"limits.max_inflight_bytes", T_SIZE, OFF(max_inflight_bytes), "0", NULL, 0, BIG, 0,
     "request bodies held in memory before they are journaled, all connections together; "
     "past it new requests get 503 + Retry-After; 0 = min(256m, RAM/8)"},
    {"limits.max_connections", T_INT, OFF(max_connections), "10000", NULL, 1, 1000000, 0,
     "connection cap of the HTTPS listener"},
    {"limits.read_timeout_ms", T_INT, OFF(read_timeout_ms), "10000", NULL, 100, 3600000, 0,
     "idle or slow clients are closed after this many milliseconds"},
    {"shutdown.grace_ms", T_INT, OFF(shutdown_grace_ms), "10000", NULL, 0, 3600000, 0,
     "how long SIGTERM waits for sinks to flush"},
    {"workers", T_INT, OFF(workers), "0", NULL, 0, 256, 0,
     "event-loop threads serving the HTTPS listener; 0 = number of CPUs"},
    {"dedup", T_BOOL, OFF(dedup), "on", NULL, 0, 0, 0,
     "answer a repeated notification id 200 without publishing it again"},
    {"dedup.window", T_DURATION, OFF(dedup_window_ms), "24h", NULL, 0, BIG, 0,
     "how long notification ids are remembered (ms, s, m, h, d suffixes)"},
    {"dedup.max_ids", T_INT, OFF(dedup_max_ids), "500000", NULL, 0, 100000000, 0,
     "at most this many notification ids are remembered (the oldest are forgotten first)"},
    {"dedup.store", T_ENUM, OFF(dedup_store), "local", "local|redis", 0, 0, 0,
     "local: each replica remembers its own ids; redis: replicas also share them in Redis "
     "(claimed once durable), falling back to the local set when Redis is unreachable"},
    {"dedup.redis.url", T_STRING, OFF(dedup_redis_url), "", NULL, 0, 0, F_SECRET,
     "redis://[user:password@]host:port[/db] of the shared dedup store; empty = redis.url"},
    {"dedup.redis.prefix", T_STRING, OFF(dedup_redis_prefix), "hookbridge:dedup:", NULL, 0, 0, 0,
     "key prefix of the shared dedup store; keys are <prefix><route>:<id>"},
    {"dedup.redis.timeout_ms", T_INT, OFF(dedup_redis_timeout_ms), "100", NULL, 1, 60000, 0,
     "how long a delivery waits for the shared store's answer before the local set alone "
     "decides"},
    {"log.level", T_ENUM, OFF(log_level), "info", "debug|info|warn|error", 0, 0, 0,
     "lowest level logged"},
    {"log.format", T_ENUM, OFF(log_format), "text", "text|json", 0, 0, 0, "log line format"},
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

/* The keys of one route, `route.<name>.<key>`: offsets into hb_route_cfg_t.
 * Every route starts at these defaults; the Intercom route is built from
 * the intercom.* keys instead (see intercom_route). */
#define ROFF(f) offsetof(hb_route_cfg_t, f)
#define MAX_BODY_LIMIT (60 << 20)
#define SCHEMES "intercom|github|stripe|shopify|slack|standard|hmac"

static const key_t_ route_keys[] = {
    {"path", T_STRING, ROFF(path), "", NULL, 0, 0, 0,
     "path of the route's endpoint; required, unique across routes"},
    {"scheme", T_ENUM, ROFF(scheme), "", SCHEMES, 0, 0, 0,
     "signature scheme; unset = the route's name when that is a scheme"},
    {"secret", T_STRING, ROFF(secret), "", NULL, 0, 0, F_SECRET,
     "signing secret(s), comma-separated, all accepted (rotation); file:/path reads them from a "
     "file; standard: whsec_<base64>; reread on SIGHUP"},
    {"verify", T_BOOL, ROFF(verify), "on", NULL, 0, 0, 0,
     "on, or off to accept unsigned deliveries"},
    {"kafka.topic", T_TEMPLATE, ROFF(kafka_topic), HB_ROUTE_KAFKA_TOPIC, NULL, 0, 0, 0,
     "topic template ({route}, {source}, {topic}, {id})"},
    {"kafka.key", T_TEMPLATE, ROFF(kafka_key), HB_ROUTE_KAFKA_KEY, NULL, 0, 0, 0,
     "message key template; {source} keeps each tenant in order"},
    {"redis.stream", T_TEMPLATE, ROFF(redis_stream), HB_ROUTE_REDIS_STREAM, NULL, 0, 0, 0,
     "stream key template"},
    {"max_body", T_SIZE, ROFF(max_body), "0", NULL, 0, MAX_BODY_LIMIT, 0,
     "larger bodies get 413; 0 = limits.max_body"},
    {"tolerance", T_DURATION, ROFF(tolerance_ms), "5m", NULL, 0, BIG, 0,
     "replay window of timestamped schemes (stripe, slack, standard, hmac with a timestamp): "
     "older or newer deliveries get 401"},
    {"allow_sha1", T_BOOL, ROFF(allow_sha1), "off", NULL, 0, 0, 0,
     "github: also accept the SHA-1 X-Hub-Signature when X-Hub-Signature-256 is absent"},
    {"public_key", T_STRING, ROFF(public_key), "", NULL, 0, 0, 0,
     "standard: Ed25519 public key(s) whpk_<base64>, comma-separated, for v1a signatures"},
    {"header", T_STRING, ROFF(header), "", NULL, 0, 0, 0, "hmac: the signature header"},
    {"algorithm", T_STRING, ROFF(algorithm), "", NULL, 0, 0, 0, "hmac: sha1, sha256 or sha512"},
    {"encoding", T_STRING, ROFF(encoding), "", NULL, 0, 0, 0, "hmac: hex or base64"},
    {"prefix", T_STRING, ROFF(prefix), "", NULL, 0, 0, 0,
     "hmac: text before the signature in the header, e.g. sha256="},
    {"signed", T_STRING, ROFF(signed_payload), "", NULL, 0, 0, 0,
     "hmac: what is signed, e.g. {body} or {timestamp}.{body}"},
    {"id", T_STRING, ROFF(id_field), "", NULL, 0, 0, 0,
     "standard, hmac: where the delivery id is: header:<Name> or a JSON pointer /a/b"},
    {"topic", T_STRING, ROFF(topic_field), "", NULL, 0, 0, 0,
     "standard, hmac: where the event type is (header:<Name> or /pointer)"},
    {"source", T_STRING, ROFF(source_field), "", NULL, 0, 0, 0,
     "standard, hmac: where the tenant is (header:<Name> or /pointer)"},
    {"timestamp", T_STRING, ROFF(timestamp_field), "", NULL, 0, 0, 0,
     "hmac: where the Unix timestamp is (header:<Name> or /pointer); unset = no replay window"},
};

#define NROUTEKEYS (sizeof(route_keys) / sizeof(route_keys[0]))
/* example values of the commented route block in config/hookbridge.conf */
#define EXAMPLE_ROUTE "github"
static const struct {
    const char *key, *value;
} route_example[] = {
    {"path", "/webhooks/github"},
    {"scheme", "github"},
    {"secret", "file:/run/secrets/github"},
};

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

const char *hb_config_key_name(size_t i)
{
    return i < NKEYS ? keys[i].name : NULL;
}

const char *hb_config_route_key_name(size_t i)
{
    return i < NROUTEKEYS ? route_keys[i].name : NULL;
}

void hb_config_env_name(const char *key, char *buf, size_t len)
{
    if (len == 0)
        return;
    size_t n = (size_t)snprintf(buf, len, "HOOKBRIDGE_");
    if (n >= len)
        n = len - 1;
    for (; *key && n + 1 < len; key++)
        buf[n++] = (*key == '.' || *key == '-') ? '_' : (char)toupper((unsigned char)*key);
    buf[n] = '\0';
}

static const key_t_ *find_key(const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

/* Parse a signed integer with an optional unit from `units`; the whole
 * string must be used. */
typedef struct {
    const char *suffix;
    int64_t mult;
} unit_t;

static const unit_t size_units[] = {
    {"", 1},           {"b", 1},           {"k", 1024},         {"kb", 1024},
    {"kib", 1024},     {"m", 1048576},     {"mb", 1048576},     {"mib", 1048576},
    {"g", 1073741824}, {"gb", 1073741824}, {"gib", 1073741824}, {NULL, 0}};
static const unit_t dur_units[] = {{"", 1000},     {"ms", 1},       {"s", 1000}, {"m", 60000},
                                   {"h", 3600000}, {"d", 86400000}, {NULL, 0}};
static const unit_t int_units[] = {{"", 1}, {NULL, 0}};

static int parse_number(const char *s, const unit_t *units, int64_t *out)
{
    char *end;
    errno = 0;
    while (isspace((unsigned char)*s))
        s++;
    if (!isdigit((unsigned char)*s) && *s != '-')
        return -1;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE || end == s)
        return -1;
    for (const unit_t *u = units; u->suffix; u++) {
        if (strcasecmp(end, u->suffix) == 0) {
            if (v != 0 && (v > INT64_MAX / u->mult || v < INT64_MIN / u->mult))
                return -1;
            *out = (int64_t)v * u->mult;
            return 0;
        }
    }
    return -1;
}

static int enum_has(const char *choices, const char *v)
{
    size_t vl = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t l = bar ? (size_t)(bar - p) : strlen(p);
        if (l == vl && strncmp(p, v, l) == 0)
            return 1;
        if (!bar)
            break;
        p = bar + 1;
    }
    return 0;
}

/* A value `file:/path` of a secret key is replaced by the file's content
 * with trailing whitespace removed (Docker secrets end with a newline). */
static int resolve_secret(const char *value, char **out, char *err, size_t errlen,
                          const char *origin, const char *key)
{
    if (strncmp(value, "file:", 5) != 0) {
        *out = hb_strdup(value);
        return 0;
    }
    size_t len;
    char *content = hb_read_file(value + 5, &len);
    if (!content)
        return fail(err, errlen, "%s: %s: cannot read secret file %s: %s", origin, key, value + 5,
                    strerror(errno));
    while (len > 0 && isspace((unsigned char)content[len - 1]))
        content[--len] = '\0';
    *out = content;
    return 0;
}

int hb_config_secret(const char *key, const char *value, char **out, char *err, size_t errlen)
{
    return resolve_secret(value, out, err, errlen, "config", key);
}

/* Set key k of the struct at base (an hb_config_t, or an hb_route_cfg_t for
 * a route key); `name` is the key as errors show it. */
static int set_key(void *base, const key_t_ *k, const char *name, const char *value,
                   const char *origin, char *err, size_t errlen)
{
    void *field = (char *)base + k->offset;
    int64_t n;
    switch (k->type) {
    case T_STRING:
    case T_ENUM:
    case T_TEMPLATE: {
        char *v;
        if (k->type == T_ENUM && !enum_has(k->choices, value))
            return fail(err, errlen, "%s: %s: '%s' is not one of %s", origin, name, value,
                        k->choices);
        if (k->type == T_TEMPLATE) {
            char terr[128];
            if (hb_template_check(value, terr, sizeof(terr)) < 0)
                return fail(err, errlen, "%s: %s: %s", origin, name, terr);
        }
        /* file: secrets are read in hb_config_finish, after the
         * environment had its chance to override the file's value */
        v = hb_strdup(value);
        free(*(char **)field);
        *(char **)field = v;
        return 0;
    }
    case T_BOOL:
        if (!strcasecmp(value, "on") || !strcasecmp(value, "true") || !strcasecmp(value, "yes") ||
            !strcmp(value, "1"))
            *(int *)field = 1;
        else if (!strcasecmp(value, "off") || !strcasecmp(value, "false") ||
                 !strcasecmp(value, "no") || !strcmp(value, "0"))
            *(int *)field = 0;
        else
            return fail(err, errlen, "%s: %s: '%s' is not on or off", origin, name, value);
        return 0;
    case T_INT:
    case T_SIZE:
    case T_DURATION: {
        const unit_t *u = k->type == T_SIZE       ? size_units
                          : k->type == T_DURATION ? dur_units
                                                  : int_units;
        const char *what = k->type == T_SIZE       ? "a size (e.g. 1048576 or 1m)"
                           : k->type == T_DURATION ? "a duration (e.g. 500ms, 30s, 24h)"
                                                   : "an integer";
        if (parse_number(value, u, &n) < 0)
            return fail(err, errlen, "%s: %s: '%s' is not %s", origin, name, value, what);
        if (n < k->min || n > k->max)
            return fail(err, errlen,
                        "%s: %s: %" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]", origin,
                        name, n, k->min, k->max);
        *(int64_t *)field = n;
        return 0;
    }
    }
    return fail(err, errlen, "%s: %s: internal error", origin, name);
}

/* Keys under kafka. that hookbridge does not own go to librdkafka as they
 * are; librdkafka itself validates them when the sink starts. */
static void set_kafka_prop(hb_config_t *cfg, const char *prop, const char *value)
{
    for (size_t i = 0; i < cfg->n_kafka_props; i++) {
        if (strcmp(cfg->kafka_props[i].key, prop) == 0) {
            free(cfg->kafka_props[i].value);
            cfg->kafka_props[i].value = hb_strdup(value);
            return;
        }
    }
    cfg->kafka_props =
        hb_realloc(cfg->kafka_props, (cfg->n_kafka_props + 1) * sizeof(*cfg->kafka_props));
    cfg->kafka_props[cfg->n_kafka_props].key = hb_strdup(prop);
    cfg->kafka_props[cfg->n_kafka_props].value = hb_strdup(value);
    cfg->n_kafka_props++;
}

/* ---- routes ---- */

static int route_name_ok(const char *s, size_t n)
{
    if (n == 0 || s[0] < 'a' || s[0] > 'z')
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

static const key_t_ *find_route_key(const char *name)
{
    for (size_t i = 0; i < NROUTEKEYS; i++)
        if (strcmp(route_keys[i].name, name) == 0)
            return &route_keys[i];
    return NULL;
}

static int is_string_type(ctype_t t)
{
    return t == T_STRING || t == T_ENUM || t == T_TEMPLATE;
}

/* A route at the defaults of the route key table. The template defaults
 * are set as they are: they are the table's own, and {route} / {source}
 * are known to every template. */
static void route_init(hb_route_cfg_t *rc, const char *name, size_t len)
{
    char err[256];
    memset(rc, 0, sizeof(*rc));
    rc->name = hb_strndup(name, len);
    for (size_t i = 0; i < NROUTEKEYS; i++) {
        const key_t_ *k = &route_keys[i];
        if (is_string_type(k->type))
            *(char **)((char *)rc + k->offset) = hb_strdup(k->def);
        else if (set_key(rc, k, k->name, k->def, "default", err, sizeof(err)) < 0)
            hb_oom(err); /* a bad default is a programming error */
    }
}

static void route_free(hb_route_cfg_t *rc)
{
    for (size_t i = 0; i < NROUTEKEYS; i++) {
        if (is_string_type(route_keys[i].type)) {
            char **f = (char **)((char *)rc + route_keys[i].offset);
            free(*f);
            *f = NULL;
        }
    }
    free(rc->name);
    rc->name = NULL;
}

/* The route named name[0..len), created at its defaults on first use:
 * routes keep the order in which their first key appeared. */
static hb_route_cfg_t *route_get(hb_config_t *cfg, const char *name, size_t len)
{
    for (size_t i = 0; i < cfg->n_routes; i++)
        if (strlen(cfg->routes[i].name) == len && memcmp(cfg->routes[i].name, name, len) == 0)
            return &cfg->routes[i];
    cfg->routes = hb_realloc(cfg->routes, (cfg->n_routes + 1) * sizeof(*cfg->routes));
    hb_route_cfg_t *rc = &cfg->routes[cfg->n_routes++];
    route_init(rc, name, len);
    return rc;
}

/* key is "route.<name>.<route key>". */
static int set_route_key(hb_config_t *cfg, const char *key, const char *value, const char *origin,
                         char *err, size_t errlen)
{
    const char *name = key + 6, *dot = strchr(name, '.');
    size_t nl = dot ? (size_t)(dot - name) : strlen(name);
    if (!route_name_ok(name, nl))
        return fail(err, errlen,
                    "%s: %s: a route name is a lower-case letter, then lower-case letters, digits "
                    "or '_' (route.<name>.<key>)",
                    origin, key);
    if (nl == 8 && memcmp(name, "intercom", 8) == 0)
        return fail(err, errlen,
                    "%s: %s: the route intercom is configured by the intercom.* keys "
                    "(intercom.path, intercom.secret, kafka.topic, ...)",
                    origin, key);
    const key_t_ *k = dot ? find_route_key(dot + 1) : NULL;
    if (!k)
        return fail(err, errlen, "%s: route.%.*s: unknown route key '%s' (see hookbridge --help)",
                    origin, (int)nl, name, dot ? dot + 1 : "");
    return set_key(route_get(cfg, name, nl), k, key, value, origin, err, errlen);
}

int hb_config_set(hb_config_t *cfg, const char *key, const char *value, const char *origin,
                  char *err, size_t errlen)
{
    const key_t_ *k = find_key(key);
    if (k)
        return set_key(cfg, k, k->name, value, origin, err, errlen);
    if (strncmp(key, "route.", 6) == 0)
        return set_route_key(cfg, key, value, origin, err, errlen);
    if (strncmp(key, "kafka.", 6) == 0 && key[6] != '\0') {
        const char *prop = key + 6;
        for (const char *p = prop; *p; p++)
            if (!(isalnum((unsigned char)*p) || *p == '.' || *p == '_' || *p == '-'))
                return fail(err, errlen, "%s: %s: not a librdkafka property name", origin, key);
        set_kafka_prop(cfg, prop, value);
        return 0;
    }
    return fail(err, errlen, "%s: unknown key '%s' (see hookbridge --help)", origin, key);
}

void hb_config_init(hb_config_t *cfg)
{
    char err[256];
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NKEYS; i++)
        if (set_key(cfg, &keys[i], keys[i].name, keys[i].def, "default", err, sizeof(err)) < 0)
            hb_oom(err); /* a bad default is a programming error */
}

void hb_config_free(hb_config_t *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < NKEYS; i++) {
        ctype_t t = keys[i].type;
        if (t == T_STRING || t == T_ENUM || t == T_TEMPLATE) {
            char **f = (char **)((char *)cfg + keys[i].offset);
            free(*f);
            *f = NULL;
        }
    }
    for (size_t i = 0; i < cfg->n_kafka_props; i++) {
        free(cfg->kafka_props[i].key);
        free(cfg->kafka_props[i].value);
    }
    free(cfg->kafka_props);
    cfg->kafka_props = NULL;
    cfg->n_kafka_props = 0;
    for (size_t i = 0; i < cfg->n_routes; i++)
        route_free(&cfg->routes[i]);
    free(cfg->routes);
    cfg->routes = NULL;
    cfg->n_routes = 0;
    free(cfg->path);
    cfg->path = NULL;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

/* Length of v without leading and trailing white space. */
static size_t trim_len(const char *v)
{
    while (isspace((unsigned char)*v))
        v++;
    size_t n = strlen(v);
    while (n && isspace((unsigned char)v[n - 1]))
        n--;
    return n;
}

int hb_config_load_file(hb_config_t *cfg, const char *path, char *err, size_t errlen)
{
    char *text = hb_read_file(path, NULL);
    if (!text)
        return fail(err, errlen, "%s: cannot read: %s", path, strerror(errno));
    int rc = 0, lineno = 0;
    char *save = NULL;
    /* strtok_r would skip empty lines and so miscount; split by hand. */
    for (char *line = text; line && rc == 0; line = save) {
        char *nl = strchr(line, '\n');
        save = nl ? nl + 1 : NULL;
        if (nl)
            *nl = '\0';
        lineno++;
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char origin[512];
        snprintf(origin, sizeof(origin), "%s:%d", path, lineno);
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = fail(err, errlen, "%s: expected 'key = value'", origin);
            break;
        }
        *eq = '\0';
        char *key = trim(s), *value = trim(eq + 1);
        if (*key == '\0') {
            rc = fail(err, errlen, "%s: missing key before '='", origin);
            break;
        }
        rc = hb_config_set(cfg, key, value, origin, err, errlen);
    }
    free(text);
    if (rc == 0) {
        free(cfg->path);
        cfg->path = hb_strdup(path);
    }
    return rc;
}

static const char *const kafka_owned_env[] = {"HOOKBRIDGE_KAFKA_BROKERS", "HOOKBRIDGE_KAFKA_TOPIC",
                                              "HOOKBRIDGE_KAFKA_KEY",
                                              "HOOKBRIDGE_KAFKA_DEAD_LETTER_TOPIC", NULL};

/* HOOKBRIDGE_ROUTE_<NAME>_<KEY>=value: KEY is the longest route key whose
 * environment spelling ends the variable's name (so _KAFKA_TOPIC is
 * kafka.topic, not a route "<name>_kafka" with the key topic). */
static int apply_route_env(hb_config_t *cfg, const char *var, char *err, size_t errlen)
{
    const char *eq = strchr(var, '='), *rest = var + 17;
    size_t rl = eq ? (size_t)(eq - rest) : 0, best = 0;
    const key_t_ *k = NULL;
    char name[128], upper[64];
    snprintf(name, sizeof(name), "%.*s", eq ? (int)(eq - var) : 0, var);
    for (size_t i = 0; i < NROUTEKEYS; i++) {
        hb_config_env_name(route_keys[i].name, upper, sizeof(upper));
        const char *suffix = upper + 11; /* after HOOKBRIDGE_ */
        size_t sl = strlen(suffix);
        if (sl + 1 < rl && sl > best && rest[rl - sl - 1] == '_' &&
            memcmp(rest + rl - sl, suffix, sl) == 0) {
            best = sl;
            k = &route_keys[i];
        }
    }
    if (!k)
        return fail(err, errlen,
                    "%s: no route key at the end of the name (HOOKBRIDGE_ROUTE_<NAME>_"
                    "<KEY>, see hookbridge --help)",
                    name);
    char key[192];
    size_t n = (size_t)snprintf(key, sizeof(key), "route.");
    for (size_t i = 0; i < rl - best - 1 && n + 1 < sizeof(key); i++)
        key[n++] = (char)tolower((unsigned char)rest[i]);
    snprintf(key + n, sizeof(key) - n, ".%s", k->name);
    return set_route_key(cfg, key, eq + 1, name, err, errlen);
}

int hb_config_apply_env(hb_config_t *cfg, char **envp, char *err, size_t errlen)
{
    char name[128];
    if (!envp)
        envp = environ;
    /* Known keys: look up each key's own variable name. */
    for (size_t i = 0; i < NKEYS; i++) {
        hb_config_env_name(keys[i].name, name, sizeof(name));
        size_t nl = strlen(name);
        for (char **e = envp; *e; e++) {
            if (strncmp(*e, name, nl) == 0 && (*e)[nl] == '=') {
                if (set_key(cfg, &keys[i], keys[i].name, *e + nl + 1, name, err, errlen) < 0)
                    return -1;
            }
        }
    }
    for (char **e = envp; *e; e++)
        if (strncmp(*e, "HOOKBRIDGE_ROUTE_", 17) == 0 && strchr(*e, '=') &&
            apply_route_env(cfg, *e, err, errlen) < 0)
            return -1;
    /* librdkafka pass-through: HOOKBRIDGE_KAFKA_COMPRESSION_TYPE -> compression.type */
    for (char **e = envp; *e; e++) {
        if (strncmp(*e, "HOOKBRIDGE_KAFKA_", 17) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        size_t nl = (size_t)(eq - *e);
        int owned = 0;
        for (const char *const *o = kafka_owned_env; *o; o++)
            if (strlen(*o) == nl && strncmp(*e, *o, nl) == 0)
                owned = 1;
        if (owned || nl == 17 || nl - 17 >= sizeof(name))
            continue;
        char prop[128];
        size_t pl = 0;
        for (const char *p = *e + 17; p < eq; p++)
            prop[pl++] = *p == '_' ? '.' : (char)tolower((unsigned char)*p);
        prop[pl] = '\0';
        char key[160];
        snprintf(key, sizeof(key), "kafka.%s", prop);
        snprintf(name, sizeof(name), "%.*s", (int)nl, *e);
        if (hb_config_set(cfg, key, eq + 1, name, err, errlen) < 0)
            return -1;
    }
    return 0;
}

static int is_secret_prop(const char *prop)
{
    return strstr(prop, "password") || strstr(prop, "secret");
}

/* A comma list in which every entry holds something after trimming spaces
 * and tabs (as hb_keyset_new and the sinks parser trim): "," or "a,,b" is a
 * typo that would otherwise configure nothing, or less than was meant.
 * `what` names the entries; values are never quoted (they may be secrets). */
static int check_list(const char *key, const char *what, const char *v, char *err, size_t errlen)
{
    int n = 0;
    for (const char *p = v;; p++) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        size_t blank = 0;
        while (blank < len && (p[blank] == ' ' || p[blank] == '\t'))
            blank++;
        n++;
        if (blank == len)
            return fail(err, errlen, "%s: %s %d of the comma list is empty", key, what, n);
        if (!end)
            return 0;
        p = end;
    }
}

/* host:port with a port from 1 to 65535 (the listener parses the host). */
static int check_listen(const char *key, const char *v, char *err, size_t errlen)
{
    const char *colon = strrchr(v, ':');
    char *end;
    long port = colon ? strtol(colon + 1, &end, 10) : 0;
    if (!colon || colon == v || end == colon + 1 || *end || port < 1 || port > 65535)
        return fail(err, errlen, "%s: '%s' is not address:port with a port from 1 to 65535", key,
                    v);
    return 0;
}

/* OpenSSL is the judge of its own cipher syntax: a list it rejects would
 * otherwise fail only at start, or leave TLS 1.3 without suites. */
static int check_tls_ciphers(const hb_config_t *cfg, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        hb_oom("SSL_CTX_new");
    int rc = 0;
    if (SSL_CTX_set_cipher_list(ctx, cfg->tls_ciphers) != 1)
        rc = fail(err, errlen, "tls.ciphers: OpenSSL accepts no cipher in '%s'", cfg->tls_ciphers);
    else if (cfg->tls_ciphersuites[0] && SSL_CTX_set_ciphersuites(ctx, cfg->tls_ciphersuites) != 1)
        rc = fail(err, errlen, "tls.ciphersuites: OpenSSL does not accept '%s'",
                  cfg->tls_ciphersuites);
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return rc;
}

/* One record of limits.max_body must fit in the journal, or a delivery of
 * the allowed size is answered 503 forever: the body, the fields copied
 * from it (each at most 65535 bytes, together never more than the body),
 * the record header and a commit record on each side. */
static int check_journal_room(const hb_config_t *cfg, char *err, size_t errlen)
{
    int64_t max_body = hb_config_max_body(cfg);
    int64_t fields = max_body < 3 * 65535 ? max_body : 3 * 65535;
    int64_t need = max_body + fields + HB_RECORD_HEADER + HB_RECORD_FIXED + 2 * HB_COMMIT_SIZE;
    if (cfg->journal_max_bytes < need)
        return fail(err, errlen,
                    "journal.max_bytes: %" PRId64 " cannot hold one delivery of the largest body "
                    "a route accepts (limits.max_body or a route's max_body: %" PRId64 ") with its "
                    "record overhead; at least %" PRId64 " is needed",
                    cfg->journal_max_bytes, max_body, need);
    return 0;
}

/* Cross-key checks that apply to any configuration. */
static int check_keys(const hb_config_t *cfg, char *err, size_t errlen)
{
    static const struct {
        const char *key;
        size_t off;
        int sink; /* only when this sink is on; 0 = always */
    } nonempty[] = {
        {"data.dir", OFF(data_dir), 0},
        {"journal.dir", OFF(journal_dir), 0},
        {"file.path", OFF(file_path), HB_SINK_FILE},
        {"kafka.topic", OFF(kafka_topic), HB_SINK_KAFKA},
        {"kafka.dead_letter_topic", OFF(kafka_dead_letter_topic), HB_SINK_KAFKA},
        {"redis.stream", OFF(redis_stream), HB_SINK_REDIS},
    };
    for (size_t i = 0; i < sizeof(nonempty) / sizeof(nonempty[0]); i++) {
        const char *v = *(char *const *)((const char *)cfg + nonempty[i].off);
        if ((!nonempty[i].sink || (cfg->sinks & nonempty[i].sink)) && !trim_len(v))
            return fail(err, errlen, "%s: must not be empty", nonempty[i].key);
    }
    if (check_listen("listen", cfg->listen, err, errlen) < 0 ||
        check_listen("admin.listen", cfg->admin_listen, err, errlen) < 0)
        return -1;
    if (strcmp(cfg->listen, cfg->admin_listen) == 0)
        return fail(err, errlen, "admin.listen: the same address as listen (%s)", cfg->listen);
    if (cfg->intercom_secret[0] &&
        check_list("intercom.secret", "secret", cfg->intercom_secret, err, errlen) < 0)
        return -1;
    if ((cfg->sinks & HB_SINK_KAFKA) &&
        check_list("kafka.brokers", "broker", cfg->kafka_brokers, err, errlen) < 0)
        return -1;
    if (cfg->dedup && (cfg->dedup_window_ms == 0 || cfg->dedup_max_ids == 0))
        return fail(err, errlen, "%s: 0 remembers no id; set dedup = off to turn it off",
                    cfg->dedup_window_ms == 0 ? "dedup.window" : "dedup.max_ids");
    if (!strcmp(cfg->dedup_store, "redis")) {
        const char *url = cfg->dedup_redis_url[0] ? cfg->dedup_redis_url : cfg->redis_url;
        if (!cfg->dedup)
            return fail(err, errlen, "dedup.store: redis needs dedup = on");
        if (strncmp(url, "redis://", 8) != 0)
            return fail(err, errlen,
                        "dedup.redis.url: required as redis://host:port[/db] when dedup.store = "
                        "redis (or set redis.url)");
        if (!trim_len(cfg->dedup_redis_prefix))
            return fail(err, errlen, "dedup.redis.prefix: must not be empty");
    }
    if (check_journal_room(cfg, err, errlen) < 0)
        return -1;
    return check_tls_ciphers(cfg, err, errlen);
}

static void replace_str(char **field, const char *v)
{
    free(*field);
    *field = hb_strdup(v);
}

/* The Intercom route, first, from the intercom.* keys and the global
 * templates and limits: a configuration without routes means exactly
 * what it meant before routes existed. */
static void add_intercom_route(hb_config_t *cfg)
{
    cfg->routes = hb_realloc(cfg->routes, (cfg->n_routes + 1) * sizeof(*cfg->routes));
    memmove(cfg->routes + 1, cfg->routes, cfg->n_routes * sizeof(*cfg->routes));
    cfg->n_routes++;
    hb_route_cfg_t *rc = &cfg->routes[0];
    route_init(rc, HB_RECORD_DEFAULT_ROUTE, strlen(HB_RECORD_DEFAULT_ROUTE));
    replace_str(&rc->path, cfg->intercom_path);
    replace_str(&rc->scheme, "intercom");
    replace_str(&rc->secret, cfg->intercom_secret);
    replace_str(&rc->kafka_topic, cfg->kafka_topic);
    replace_str(&rc->kafka_key, cfg->kafka_key);
    replace_str(&rc->redis_stream, cfg->redis_stream);
    rc->verify = cfg->intercom_verify;
    rc->max_body = cfg->max_body;
}

/* A scheme's reason names its key ("route.github.header: ..."); one that
 * does not gets the route's name in front. */
static int route_fail(char *err, size_t errlen, const hb_route_cfg_t *rc, const char *key,
                      const char *why)
{
    char prefix[160];
    snprintf(prefix, sizeof(prefix), "route.%s", rc->name);
    if (strstr(why, prefix))
        return fail(err, errlen, "%s", why);
    return fail(err, errlen, "%s%s%s: %s", prefix, key ? "." : "", key ? key : "", why);
}

/* A path as a request line carries it and the gate matches it: visible
 * ASCII (no blank, no control character), no query or fragment. Not
 * "//...": evhttp reads a target beginning so as host and path, so such a
 * route could never be served. */
static int path_ok(const char *p)
{
    if (p[0] != '/' || p[1] == '/')
        return 0;
    for (; *p; p++)
        if (*p <= ' ' || *p > '~' || *p == '?' || *p == '#')
            return 0;
    return 1;
}

/* Route i against its own rules and the routes before it. The Intercom
 * route's own keys are checked by hb_config_finish under their names. */
static int check_route(hb_config_t *cfg, size_t i, char *err, size_t errlen)
{
    hb_route_cfg_t *rc = &cfg->routes[i];
    const char *n = rc->name;
    int user = strcmp(n, HB_RECORD_DEFAULT_ROUTE) != 0;
    char why[256] = "", key[160];
    snprintf(key, sizeof(key), user ? "route.%s.path" : "intercom.path", n);
    if (user && !rc->path[0])
        return fail(err, errlen, "%s: required", key);
    if (!path_ok(rc->path))
        return fail(err, errlen,
                    "%s: must start with one '/' and hold only visible ASCII, no '?' or '#'", key);
    if (user) {
        if (!rc->scheme[0] && !enum_has(SCHEMES, n))
            return fail(err, errlen, "route.%s.scheme: required (one of %s)", n, SCHEMES);
        if (!rc->scheme[0])
            replace_str(&rc->scheme, n);
        if (!rc->max_body)
            rc->max_body = cfg->max_body;
        snprintf(key, sizeof(key), "route.%s.secret", n);
        if (rc->secret[0] && check_list(key, "secret", rc->secret, err, errlen) < 0)
            return -1;
        static const struct {
            const char *key;
            size_t off;
            int sink;
        } templates[] = {
            {"kafka.topic", ROFF(kafka_topic), HB_SINK_KAFKA},
            {"redis.stream", ROFF(redis_stream), HB_SINK_REDIS},
        };
        for (size_t t = 0; t < sizeof(templates) / sizeof(templates[0]); t++)
            if ((cfg->sinks & templates[t].sink) &&
                !trim_len(*(char **)((char *)rc + templates[t].off)))
                return fail(err, errlen, "route.%s.%s: must not be empty", n, templates[t].key);
    }
    for (size_t j = 0; j < i; j++)
        if (strcmp(cfg->routes[j].path, rc->path) == 0)
            return fail(err, errlen, "route.%s.path: %s is also the path of %s%s", n, rc->path,
                        strcmp(cfg->routes[j].name, HB_RECORD_DEFAULT_ROUTE) ? "route " : "",
                        strcmp(cfg->routes[j].name, HB_RECORD_DEFAULT_ROUTE)
                            ? cfg->routes[j].name
                            : "the Intercom route (intercom.path)");
    hb_scheme_t *s = hb_scheme_new(rc, why, sizeof(why));
    if (!s)
        return route_fail(err, errlen, rc, NULL, why[0] ? why : "scheme refused its options");
    int rc_ = 0;
    if (user && rc->verify && !rc->secret[0] && hb_scheme_needs_secret(s))
        rc_ = fail(err, errlen,
                   "route.%s.secret: required (or set route.%s.verify = off to accept unsigned "
                   "deliveries)",
                   n, n);
    else if (user && rc->verify && rc->secret[0]) {
        hb_keyset_t *ks = hb_scheme_keyset(s, rc->secret, why, sizeof(why));
        if (!ks)
            rc_ = route_fail(err, errlen, rc, "secret", why[0] ? why : "malformed");
        hb_keyset_unref(ks);
    }
    hb_scheme_free(s);
    return rc_;
}

/* Every route: the Intercom route first (unless intercom.path is empty),
 * then the route.<name>.* ones, each checked. */
static int finish_routes(hb_config_t *cfg, char *err, size_t errlen)
{
    int has_intercom = cfg->n_routes && !strcmp(cfg->routes[0].name, HB_RECORD_DEFAULT_ROUTE);
    for (size_t i = has_intercom; i < cfg->n_routes; i++) {
        char key[160], *v;
        snprintf(key, sizeof(key), "route.%s.secret", cfg->routes[i].name);
        if (resolve_secret(cfg->routes[i].secret, &v, err, errlen, "config", key) < 0)
            return -1;
        free(cfg->routes[i].secret);
        cfg->routes[i].secret = v;
    }
    if (cfg->intercom_path[0] && !has_intercom)
        add_intercom_route(cfg);
    if (!cfg->n_routes)
        return fail(err, errlen,
                    "intercom.path: empty, and no route.<name>.path is set: no "
                    "endpoint would accept anything");
    for (size_t i = 0; i < cfg->n_routes; i++)
        if (check_route(cfg, i, err, errlen) < 0)
            return -1;
    return 0;
}

int64_t hb_config_max_body(const hb_config_t *cfg)
{
    int64_t m = cfg->max_body;
    for (size_t i = 0; i < cfg->n_routes; i++)
        if (cfg->routes[i].max_body > m)
            m = cfg->routes[i].max_body;
    return m;
}

const hb_route_cfg_t *hb_config_route(const hb_config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_routes; i++)
        if (strcmp(cfg->routes[i].name, name) == 0)
            return &cfg->routes[i];
    return NULL;
}

int hb_config_finish(hb_config_t *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (!(keys[i].flags & F_SECRET))
            continue;
        char **f = (char **)((char *)cfg + keys[i].offset), *v;
        if (resolve_secret(*f, &v, err, errlen, "config", keys[i].name) < 0)
            return -1;
        free(*f);
        *f = v;
    }
    for (size_t i = 0; i < cfg->n_kafka_props; i++) {
        char *v, key[160];
        if (!is_secret_prop(cfg->kafka_props[i].key))
            continue;
        snprintf(key, sizeof(key), "kafka.%s", cfg->kafka_props[i].key);
        if (resolve_secret(cfg->kafka_props[i].value, &v, err, errlen, "config", key) < 0)
            return -1;
        free(cfg->kafka_props[i].value);
        cfg->kafka_props[i].value = v;
    }
    /* sinks: a non-empty comma list of known names, each at most once. */
    cfg->sinks = 0;
    char *copy = hb_strdup(cfg->sinks_str), *save = NULL;
    int rc = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *n = trim(t);
        int bit = !strcmp(n, "file")    ? HB_SINK_FILE
                  : !strcmp(n, "kafka") ? HB_SINK_KAFKA
                  : !strcmp(n, "redis") ? HB_SINK_REDIS
                                        : 0;
        if (!bit) {
            rc = fail(err, errlen, "sinks: unknown sink '%s' (kafka, redis, file)", n);
            break;
        }
        if (cfg->sinks & bit) {
            rc = fail(err, errlen, "sinks: '%s' is listed twice", n);
            break;
        }
        cfg->sinks |= bit;
    }
    free(copy);
    if (rc < 0)
        return rc;
    if (!cfg->sinks)
        return fail(err, errlen, "sinks: at least one sink is required");
    if (check_list("sinks", "sink", cfg->sinks_str, err, errlen) < 0)
        return -1;
    cfg->ack = !strcmp(cfg->ack_str, "durable")   ? HB_ACK_DURABLE
               : !strcmp(cfg->ack_str, "written") ? HB_ACK_WRITTEN
                                                  : HB_ACK_PUBLISHED;
    /* intercom.path empty: no Intercom route, and so no secret for it */
    if (cfg->intercom_path[0] && cfg->intercom_verify && cfg->intercom_secret[0] == '\0')
        return fail(err, errlen,
                    "intercom.secret: required (or set intercom.verify = off to accept unsigned "
                    "deliveries, or intercom.path = (empty) for no Intercom route)");
    if (cfg->intercom_path[0] && cfg->intercom_path[0] != '/')
        return fail(err, errlen, "intercom.path: must start with '/'");
    if (!cfg->intercom_path[0] && cfg->intercom_allow_ips[0])
        return fail(err, errlen,
                    "intercom.allow_ips: applies to the Intercom route, which an "
                    "empty intercom.path turns off");
    if ((cfg->tls_cert[0] == '\0') != (cfg->tls_key[0] == '\0'))
        return fail(err, errlen, "%s: tls.cert and tls.key must be set together",
                    cfg->tls_cert[0] ? "tls.key" : "tls.cert");
    if ((cfg->sinks & HB_SINK_KAFKA) && cfg->kafka_brokers[0] == '\0')
        return fail(err, errlen, "kafka.brokers: required when sinks includes kafka");
    if ((cfg->sinks & HB_SINK_REDIS) && strncmp(cfg->redis_url, "redis://", 8) != 0)
        return fail(err, errlen,
                    "redis.url: required as redis://host:port[/db] when sinks "
                    "includes redis");
    if (finish_routes(cfg, err, errlen) < 0)
        return -1;
    /* large bodies may use 3/4 of the budget, a chunked one reserves up to
     * twice limits.max_body (at least 64k more): below this the largest
     * bodies would be refused for ever */
    int64_t max_body = hb_config_max_body(cfg);
    if (cfg->max_inflight_bytes &&
        (cfg->max_inflight_bytes < 4 * max_body || cfg->max_inflight_bytes < 262144))
        return fail(err, errlen,
                    "limits.max_inflight_bytes: %" PRId64 " is below 4 x the largest body a route "
                    "accepts (%" PRId64 ") or 256k: the largest bodies would be refused for ever",
                    cfg->max_inflight_bytes, max_body);
    char why[256];
    hb_allowlist_t *al = hb_allowlist_load(cfg->intercom_allow_ips, why, sizeof(why));
    hb_allowlist_free(al);
    if (!al && why[0])
        return fail(err, errlen, "intercom.allow_ips: %s", why);
    return check_keys(cfg, err, errlen);
}

int hb_config_load_unchecked(hb_config_t *cfg, const char *path, char *err, size_t errlen)
{
    hb_config_init(cfg);
    if (path && hb_config_load_file(cfg, path, err, errlen) < 0)
        return -1;
    return hb_config_apply_env(cfg, NULL, err, errlen);
}

int hb_config_load(hb_config_t *cfg, const char *path, char *err, size_t errlen)
{
    if (hb_config_load_unchecked(cfg, path, err, errlen) < 0)
        return -1;
    return hb_config_finish(cfg, err, errlen);
}

void hb_config_print_help(FILE *out)
{
    char env[128];
    fprintf(out, "Configuration keys (file: key = value; environment: HOOKBRIDGE_<KEY>):\n\n");
    for (size_t i = 0; i < NKEYS; i++) {
        hb_config_env_name(keys[i].name, env, sizeof(env));
        fprintf(out, "  %-26s %s\n  %-26s default: %s%s%s   env: %s\n\n", keys[i].name,
                keys[i].help, "", keys[i].def[0] ? keys[i].def : "(none)",
                keys[i].choices ? "   one of: " : "", keys[i].choices ? keys[i].choices : "", env);
    }
    fprintf(out,
            "  kafka.<property>           any librdkafka producer property, passed as is\n"
            "  %-26s env: HOOKBRIDGE_KAFKA_<PROPERTY with _ for .>\n\n",
            "");
    fprintf(out,
            "Routes: route.<name>.<key>, name [a-z][a-z0-9_]* (not intercom: the intercom.*\n"
            "keys above are the route intercom); environment: HOOKBRIDGE_ROUTE_<NAME>_<KEY>\n\n");
    for (size_t i = 0; i < NROUTEKEYS; i++) {
        char name[64];
        snprintf(name, sizeof(name), "route.<name>.%s", route_keys[i].name);
        hb_config_env_name(route_keys[i].name, env, sizeof(env));
        fprintf(out, "  %-26s %s\n  %-26s default: %s%s%s   env: HOOKBRIDGE_ROUTE_<NAME>_%s\n\n",
                name, route_keys[i].help, "", route_keys[i].def[0] ? route_keys[i].def : "(none)",
                route_keys[i].choices ? "   one of: " : "",
                route_keys[i].choices ? route_keys[i].choices : "", env + 11);
    }
}

void hb_config_print_template(FILE *out)
{
    char env[128];
    fprintf(out, "# hookbridge configuration: `key = value` lines, '#' starts a comment.\n"
                 "# Every key below is shown commented out at its default. Each can also be\n"
                 "# set by an environment variable, named after the line `# env:`; a secret\n"
                 "# may be given as file:/path to read it from a file (Docker secrets).\n"
                 "# This file is generated from the key table in src/config.c and checked by\n"
                 "# the unit tests, so it always lists every key.\n");
    for (size_t i = 0; i < NKEYS; i++) {
        hb_config_env_name(keys[i].name, env, sizeof(env));
        fprintf(out, "\n# %s\n", keys[i].help);
        if (keys[i].choices)
            fprintf(out, "# one of: %s\n", keys[i].choices);
        fprintf(out, "# env: %s\n#%s = %s\n", env, keys[i].name, keys[i].def);
    }
    fprintf(out, "\n# Any librdkafka producer property, passed to librdkafka as is; a property\n"
                 "# librdkafka rejects stops start-up. env: HOOKBRIDGE_KAFKA_<PROPERTY, _ for .>\n"
                 "#kafka.compression.type = zstd\n#kafka.linger.ms = 5\n");
    fprintf(out,
            "\n# Routes: more providers on their own paths, each with its own signature\n"
            "# scheme, secrets, templates and limits: route.<name>.<key>, the name made of\n"
            "# [a-z0-9_] and starting with a letter. The intercom.* keys above are the\n"
            "# route intercom (set intercom.path empty for none). Every route key, shown\n"
            "# for an example route " EXAMPLE_ROUTE " (uncomment path, scheme and secret for a\n"
            "# GitHub route; the others are shown at their defaults).\n");
    for (size_t i = 0; i < NROUTEKEYS; i++) {
        const char *v = route_keys[i].def;
        for (size_t e = 0; e < sizeof(route_example) / sizeof(route_example[0]); e++)
            if (!strcmp(route_example[e].key, route_keys[i].name))
                v = route_example[e].value;
        hb_config_env_name(route_keys[i].name, env, sizeof(env));
        fprintf(out, "\n# %s\n", route_keys[i].help);
        if (route_keys[i].choices)
            fprintf(out, "# one of: %s\n", route_keys[i].choices);
        fprintf(out, "# env: HOOKBRIDGE_ROUTE_%s_%s\n#route.%s.%s = %s\n", "GITHUB", env + 11,
                EXAMPLE_ROUTE, route_keys[i].name, v);
    }
}
