/* Sinks: where journal records are published. Each sink runs on its own
 * thread with its own event_base (so a slow or blocking sink never holds
 * up the HTTP threads or another sink), reads the journal from its own
 * cursor, and publishes through a table of function pointers
 * (Fluent Bit's output plugins). The front end and the journal never see
 * rdkafka.h or hiredis.h.
 *
 * Ownership: each record in flight to a sink is one hb_msg_t, owned by the
 * sink runner. The implementation gets it in publish() and gives it back
 * exactly once with hb_sink_done(); msg must not be touched after that.
 * The runner advances the journal cursor over the contiguous prefix of
 * acknowledged messages, so acknowledgements may arrive in any order.
 *
 * @locality: every ops function and hb_sink_done run on the sink thread. */
#ifndef HB_SINK_H
#define HB_SINK_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hb/config.h"
#include "hb/journal.h"
#include "hb/metrics.h"
#include "hb/record.h"

struct event_base;
typedef struct hb_sink hb_sink_t;

#define HB_SINK_MAX_HEADERS 16 /* forwarded provider headers a sink writes, at most */

typedef struct hb_msg_hdr {
    const char *name; /* lower-case, NUL-terminated */
    const char *value;
} hb_msg_hdr_t;

typedef struct hb_msg {
    uint64_t seq;
    uint64_t received_at_ms;
    int64_t delivery_attempts; /* -1 when absent */
    const char *topic;         /* NUL-terminated */
    const char *app_id;        /* the source (tenant); NULL when absent */
    const char *id;            /* NULL when absent */
    const unsigned char *body; /* raw bytes as received */
    size_t body_len;
    const char *route; /* "intercom" for today's endpoint and old records; NULL = "intercom" */
    const hb_msg_hdr_t *headers; /* the provider's forwarded headers */
    size_t n_headers;
    /* the route's templates (see hb_sink_route_templates) */
    const char *kafka_topic_tmpl, *kafka_key_tmpl, *redis_stream_tmpl;
    struct hb_msg *impl_next; /* free for the sink implementation's own lists */
    int impl_status;          /* likewise */
    int impl_flags;           /* likewise */
    uint64_t impl_since_ms;   /* likewise */
    /* set when a REJECT sends the message to the sink's own dead-letter
     * destination (Kafka: kafka.dead_letter_topic); error is the reason */
    int dead_letter;
    char *error;
    /* published again on request (hb_sink_replay), not live: the sink marks
     * it (Kafka header hookbridge-replay: 1, Redis field replay 1, file sink
     * "replay":true) and the runner never moves the cursor for it */
    int replay;
    /* runner bookkeeping */
    hb_sink_t *sink;
    struct hb_msg *next, *retry_next;
    uint64_t sent_ms;
    int attempts;
    int acked;
} hb_msg_t;

/* A record whose route is no longer configured is published with the
 * route defaults (HB_ROUTE_* in hb/config.h), except "intercom", which
 * falls back to the global kafka.topic, kafka.key and redis.stream. */

/* The Intercom route keeps the message shape it had before routes. */
static inline int hb_msg_is_intercom(const hb_msg_t *m)
{
    return !m->route || strcmp(m->route, HB_RECORD_DEFAULT_ROUTE) == 0;
}

/* A message for a decoded record: one allocation (the struct, the header
 * array, the strings and the body), released with free(); no sink and no
 * templates set. (The runner lays its messages out the same way in blocks
 * it reuses; one handed to a sink is never the sink's to free.) */
hb_msg_t *hb_msg_from_record(const hb_record_t *r);

/* Set m's templates from its route's configuration in cfg. */
void hb_sink_route_templates(const hb_config_t *cfg, hb_msg_t *m);
/* The fields m's templates expand. */
struct hb_tmpl_fields;
void hb_msg_tmpl_fields(const hb_msg_t *m, struct hb_tmpl_fields *f);

typedef enum {
    HB_SINK_OK = 0, /* durably accepted by the destination */
    HB_SINK_RETRY,  /* transient failure: publish again later */
    HB_SINK_REJECT  /* permanent failure for this message (poison): it goes to
                       the dead-letter destination and the sink moves on */
} hb_sink_result_t;

typedef struct hb_sink_ops {
    const char *name;
    /* 1 if publish() honours msg->dead_letter (sends it to a dead-letter
     * destination of its own); otherwise, and when that fails too, the
     * runner writes it to <data.dir>/dead-letter.<sink>.jsonl. */
    int has_dead_letter;
    /* Create private state on the sink thread's base; NULL + err on failure
     * of the configuration (a server that is down is not a failure: report
     * it through ready() and HB_SINK_RETRY). */
    void *(*open)(hb_sink_t *sink, const hb_config_t *cfg, struct event_base *base, char *err,
                  size_t errlen);
    void (*publish)(void *state, hb_msg_t *msg);
    /* End of a batch of publish() calls; may be NULL. */
    void (*flush)(void *state);
    /* Give up on everything in flight (report it with RETRY) and free. */
    void (*close)(void *state);
    /* --check-config: what only the sink's library can judge (Kafka: every
     * kafka.* property, through librdkafka), without connecting to a
     * broker. 0, or -1 with the reason in err. May be NULL. */
    int (*check)(const hb_config_t *cfg, char *err, size_t errlen);
} hb_sink_ops_t;

extern const hb_sink_ops_t hb_sink_file_ops;
extern const hb_sink_ops_t hb_sink_kafka_ops;
extern const hb_sink_ops_t hb_sink_redis_ops;

/* How long the Kafka sink retries a record that the cluster refuses with
 * an error an operator may fix (unknown topic or partition, topic not
 * authorized), counted from its first such error, before it goes to the
 * dead-letter topic. 30 s by default; tests shorten it. Any thread. */
void hb_sink_kafka_set_topic_grace_ms(uint64_t ms);

/* Start a sink thread publishing records after the journal cursor `idx`. */
hb_sink_t *hb_sink_start(const hb_sink_ops_t *ops, size_t idx, const hb_config_t *cfg,
                         hb_journal_t *j, char *err, size_t errlen);
/* Publish until caught up with the journal or grace_ms passed, then stop
 * the thread. Whatever is unpublished stays in the journal. Accepts NULL
 * and a sink already stopped. */
void hb_sink_stop(hb_sink_t *s, uint64_t grace_ms);
/* Free a stopped sink, after the journal is closed (the journal's progress
 * callback points at it until then). */
void hb_sink_free(hb_sink_t *s);

void hb_sink_done(hb_msg_t *msg, hb_sink_result_t res, const char *reason);
/* hb_sink_done for each message of a list linked through impl_next (all
 * of one sink), with one journal acknowledgement and one wake-up of the
 * runner for the whole list: a sink reports a batch this way. */
void hb_sink_done_list(hb_msg_t *list, hb_sink_result_t res, const char *reason);
/* The server connection was made again (a counter for /metrics). */
void hb_sink_count_reconnect(hb_sink_t *s);
/* Connection state for /readyz and the log (a change is logged once). */
void hb_sink_set_status(hb_sink_t *s, int ok, const char *reason);

/* Replay (issue 12): records of the journal published again to one sink.
 * A second journal reader on the sink's thread walks the range; it never
 * passes the sink's cursor as it was when the replay started (what is not
 * published yet goes out live anyway), never acknowledges anything, and
 * waits like the live records while the sink is retrying a failure. */
typedef struct hb_replay_filter {
    uint64_t from_seq, to_seq;   /* inclusive */
    uint64_t since_ms, until_ms; /* received_at: since inclusive, until exclusive */
    char topic_glob[256];        /* "" = any topic; else a shell pattern */
    char source[256];            /* "" = any source (Intercom's app_id) */
    char route[256];             /* "" = any route */
    int dry_run;                 /* count the matches, publish nothing */
} hb_replay_filter_t;
/* 1 when r is in the filter's range and matches its topic, source and
 * route. */
int hb_replay_match(const hb_replay_filter_t *f, const hb_record_t *r);

typedef struct hb_replay_status {
    int running, dry_run;
    uint64_t first_seq, last_seq;     /* the range walked (last = min(to, cursor)) */
    uint64_t first_read_seq;          /* the first record read: past first_seq when the journal no
                                         longer holds the start (journal.retain) */
    uint64_t scanned_seq;             /* the last record read */
    uint64_t matched;                 /* matching records read (dry run: the count) */
    uint64_t published, rejected;     /* reports of the sink for the matches */
    uint64_t started_ms, finished_ms; /* wall clock; finished 0 while running */
    char error[256];                  /* the last rejection or read error, "" if none */
} hb_replay_status_t;
/* Start a replay; -1 + err when one is running on this sink or the range
 * is empty. Any thread. */
int hb_sink_replay(hb_sink_t *s, const hb_replay_filter_t *f, char *err, size_t errlen);
/* The current or last replay of this sink. Any thread. */
void hb_sink_replay_status(hb_sink_t *s, hb_replay_status_t *out);

/* Any thread. */
const char *hb_sink_name(const hb_sink_t *s);
size_t hb_sink_index(const hb_sink_t *s);
int hb_sink_ready(hb_sink_t *s, char *why, size_t whylen);
typedef struct hb_sink_stats {
    uint64_t published, retries, rejected, dead_lettered;
    uint64_t pending; /* durable records not yet acknowledged */
    uint64_t inflight;
} hb_sink_stats_t;
void hb_sink_stats(hb_sink_t *s, hb_sink_stats_t *out);
/* The sink's counters, for the metrics renderer; valid until hb_sink_free. */
const hb_sink_counters_t *hb_sink_counters(const hb_sink_t *s);

#endif
