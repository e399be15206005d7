/* Configuration: one static table of keys (name, type, default, offset into
 * hb_config_t, help), read from a `key = value` file, then overridden by
 * HOOKBRIDGE_* environment variables. See DESIGN.md section 2.
 *
 * Errors are returned as -1 with a message in err ("file:line: key: why").
 * hb_config_t is plain data, owned by the caller; free with hb_config_free.
 * Thread safety: load at start-up (and on SIGHUP on the main thread) only. */
#ifndef HB_CONFIG_H
#define HB_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum { HB_ACK_DURABLE = 0, HB_ACK_WRITTEN, HB_ACK_PUBLISHED } hb_ack_mode_t;

enum { HB_SINK_FILE = 1 << 0, HB_SINK_KAFKA = 1 << 1, HB_SINK_REDIS = 1 << 2 };

typedef struct hb_kv {
    char *key;
    char *value;
} hb_kv_t;

/* One webhook route: a path with its own signature scheme, secrets,
 * templates and limits (`route.<name>.<key>` in the file, with
 * HOOKBRIDGE_ROUTE_<NAME>_<KEY> overrides). The `intercom.*` keys are the
 * route named "intercom" and keep their meaning. Strings are owned by the
 * config; "" means "not set" where a key has no default of its own. The
 * scheme module (hb/scheme.h) parses and checks the scheme options. */
#define HB_CONFIG_MAX_ROUTES 64

/* Defaults of a route's templates (the route key table's defaults; the
 * sinks use them too for records of a route no longer configured). */
#define HB_ROUTE_KAFKA_TOPIC "{route}.{topic}"
#define HB_ROUTE_KAFKA_KEY "{source}"
#define HB_ROUTE_REDIS_STREAM "{route}:{source}:{topic}"

typedef struct hb_route_cfg {
    char *name;        /* [a-z][a-z0-9_]*, unique */
    char *path;        /* begins with '/', unique across routes */
    char *scheme;      /* intercom|github|stripe|shopify|slack|standard|hmac */
    char *secret;      /* comma list; secret: never logged; file:/path resolved by finish */
    int verify;        /* off = accept unsigned deliveries */
    char *kafka_topic; /* templates ({route}, {source}, {topic}, {id}, ...) */
    char *kafka_key;
    char *redis_stream;
    int64_t max_body;     /* 0 in the file = limits.max_body; finish fills it in */
    int64_t tolerance_ms; /* replay window of timestamped schemes */
    /* scheme options (hb/scheme.h says which scheme reads which) */
    int allow_sha1;       /* github: also accept X-Hub-Signature (SHA-1) */
    char *public_key;     /* standard: comma list of whpk_ Ed25519 keys (v1a) */
    char *header;         /* hmac: signature header name */
    char *algorithm;      /* hmac: sha1|sha256|sha512 */
    char *encoding;       /* hmac: hex|base64 */
    char *prefix;         /* hmac: text before the signature, e.g. "sha256=" */
    char *signed_payload; /* hmac: what is signed: "{body}", "{timestamp}.{body}", ... */
    char *id_field;       /* standard/hmac: "header:Name" or a JSON pointer "/a/b" */
    char *topic_field;
    char *source_field;
    char *timestamp_field; /* hmac: where the timestamp is; "" = no replay window */
} hb_route_cfg_t;

typedef struct hb_config {
    char *listen;
    char *tls_cert;
    char *tls_key;
    char *tls_min_version;
    char *tls_ciphers;      /* TLS 1.2 cipher list (OpenSSL syntax) */
    char *tls_ciphersuites; /* TLS 1.3 suites; "" = OpenSSL's defaults */
    char *admin_listen;
    char *admin_token; /* secret: never logged; "" = replay/redrive refused */
    char *data_dir;
    char *intercom_path;
    char *intercom_secret;    /* comma list; secret: never logged */
    char *intercom_allow_ips; /* "" = every source; see hb/allowlist.h */
    int intercom_verify;
    char *sinks_str;
    int sinks; /* HB_SINK_* bits, derived from sinks_str */
    char *kafka_brokers;
    char *kafka_topic;
    char *kafka_key;
    char *kafka_dead_letter_topic;
    char *redis_url; /* may hold a password: never logged */
    char *redis_stream;
    int64_t redis_maxlen;
    int64_t redis_wait_replicas; /* 0 = do not WAIT */
    int64_t redis_wait_timeout_ms;
    int redis_wait_aof;
    char *file_path;
    char *journal_dir;
    int64_t journal_max_bytes;
    int64_t journal_retain_ms;    /* 0 = delete segments once published */
    int64_t journal_retain_bytes; /* 0 = no size limit on retained segments */
    char *ack_str;
    hb_ack_mode_t ack;
    int64_t max_body;
    int64_t shutdown_grace_ms;
    int64_t workers; /* 0 = number of CPUs */
    int dedup;
    int64_t dedup_window_ms;
    int64_t dedup_max_ids;
    char *dedup_store;     /* local|redis */
    char *dedup_redis_url; /* secret: never logged; "" = redis_url */
    char *dedup_redis_prefix;
    int64_t dedup_redis_timeout_ms;
    int64_t max_connections;
    int64_t max_inflight_bytes; /* 0 in the file = sized to the machine by finish */
    int64_t read_timeout_ms;
    char *log_level;
    char *log_format;

    /* Every route, the Intercom route (from the intercom.* keys) first
     * unless intercom.path is empty; the others in the order their first
     * key appeared. Filled by hb_config_finish. */
    hb_route_cfg_t *routes;
    size_t n_routes;

    hb_kv_t *kafka_props; /* librdkafka pass-through, in file order */
    size_t n_kafka_props;
    char *path; /* the file it was read from, or NULL */
} hb_config_t;

void hb_config_init(hb_config_t *cfg); /* every key at its default */
void hb_config_free(hb_config_t *cfg); /* accepts a half-built config */

/* Read `path`; keys not in the file keep their value. */
int hb_config_load_file(hb_config_t *cfg, const char *path, char *err, size_t errlen);
/* Set one key from text, as the file parser does; `origin` prefixes errors. */
int hb_config_set(hb_config_t *cfg, const char *key, const char *value, const char *origin,
                  char *err, size_t errlen);
/* Apply HOOKBRIDGE_* overrides from the environment `envp` (NULL = environ). */
int hb_config_apply_env(hb_config_t *cfg, char **envp, char *err, size_t errlen);
/* Cross-key checks and derived fields; call after file and env. */
int hb_config_finish(hb_config_t *cfg, char *err, size_t errlen);

/* Defaults, file (if path) and env without the cross-key checks: for the
 * offline commands, which read a directory's location and must not need
 * the secrets or brokers of the machine a journal came from. */
int hb_config_load_unchecked(hb_config_t *cfg, const char *path, char *err, size_t errlen);
/* The value of secret `key` as hb_config_finish resolves it (file:/path
 * read, trailing whitespace cut): for the offline commands, whose
 * configuration is loaded unchecked. *out is malloc'd. */
int hb_config_secret(const char *key, const char *value, char **out, char *err, size_t errlen);
/* Everything in one call: defaults, file (if path), env, finish. */
int hb_config_load(hb_config_t *cfg, const char *path, char *err, size_t errlen);

/* The largest body any route accepts (limits.max_body or a route's
 * max_body): what the listener's budgets and the journal must hold. */
int64_t hb_config_max_body(const hb_config_t *cfg);
/* The route of that name, or NULL (after hb_config_finish). */
const hb_route_cfg_t *hb_config_route(const hb_config_t *cfg, const char *name);

/* Print every key with its default and help (for --help). */
void hb_config_print_help(FILE *out);
/* Print config/hookbridge.conf: every key, commented out at its default. */
void hb_config_print_template(FILE *out);
/* Name of key i, or NULL past the end (tests check config/hookbridge.conf). */
const char *hb_config_key_name(size_t i);
/* Name of route key i (the part after route.<name>.), or NULL past the end. */
const char *hb_config_route_key_name(size_t i);
/* The environment variable for a key: HOOKBRIDGE_ + upper, '.'/'-' -> '_'. */
void hb_config_env_name(const char *key, char *buf, size_t len);

#endif
