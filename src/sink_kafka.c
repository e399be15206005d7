/* The Kafka sink (librdkafka).
 *
 * An idempotent producer with acks=all: a record counts as published only
 * when its delivery report says the broker has it. The raw body is the
 * message value, zero-copy (the hb_msg_t owns it until the report); topic
 * and key come from templates; the envelope goes into headers.
 *
 * Reports are served without blocking anything: librdkafka writes to a
 * pipe when its main queue becomes non-empty (rd_kafka_queue_io_event_
 * enable), the pipe is an event on this sink's event_base, and the handler
 * calls rd_kafka_poll(rk, 0). Delivery callbacks only collect results;
 * they are handed to the runner after rd_kafka_poll returns, so no message
 * is freed inside a librdkafka callback.
 *
 * A failed or timed-out delivery (message.timeout.ms) goes back to the
 * runner as RETRY and is produced again from the journal's copy, so an
 * outage of any length loses nothing.
 *
 * Order per partition (one workspace's events) holds under faults too,
 * and through one producer, so one producer id and its sequence numbers
 * cover every attempt. librdkafka keeps the order of what it holds, but
 * when it fails a record (a timeout, a refused batch) it carries on with
 * the records behind it. So the first failure in a report batch "holds"
 * the sink: what librdkafka has not sent yet is purged (it comes back
 * unsent, so no duplicate), what this sink keeps back is handed back, and
 * the runner publishes the failed records again, in sequence order, only
 * once every report is in (sink.c). In-flight batches behind a refused one
 * are refused by the idempotent broker for the gap in sequence numbers, but
 * librdkafka would send them again under a bumped epoch, racing the purge;
 * enable.gapless.guarantee makes it stop instead (a fatal error), and the
 * producer is replaced as for any fatal error: still one producer at a
 * time, and everything unacknowledged produced again in order through it.
 *
 * The broker refuses a whole batch for one bad record (or because the
 * batch is larger than the topic's max.message.bytes), and librdkafka
 * reports the error on every record in it. So a record refused that way is
 * produced again alone: through the same producer, once nothing else is in
 * flight, with everything behind it kept back until its report is in. Only
 * a record refused on its own is poison and goes to the dead-letter topic.
 * A fatal idempotence error purges and recreates the producer (librdkafka
 * examples/idempotent_producer.c).
 *
 * @locality: sink thread; error, log and stats callbacks come from
 * librdkafka's threads and only touch atomics and the log. */
#include "hb/fmacros.h"

#include "hb/sink.h"
#include "hb/log.h"
#include "hb/template.h"
#include "hb/util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>

#define C "sink.kafka"

typedef struct kafka_sink {
    hb_sink_t *sink;
    const hb_config_t *cfg;
    struct event_base *base;
    rd_kafka_t *rk;
    rd_kafka_queue_t *mainq;
    size_t outstanding;          /* produced, report not served yet */
    hb_msg_t *held, **held_tail; /* kept back behind a record produced alone */
    const hb_msg_t *alone;       /* that record, until its report */
    int pipefd[2];
    struct event *pipe_ev, *tick_ev;
    hb_msg_t *reports, **reports_tail; /* collected during rd_kafka_poll */
    atomic_int fatal;
    atomic_int brokers_up; /* from the statistics callback; -1 = unknown */
    atomic_int all_down;
    char last_error[512];
    uint64_t recreated;
    uint64_t opened_ms;
} kafka_sink_t;

static void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    /* We set this property on purpose (make_producer); librdkafka warns
     * on every start that it is experimental, which reads like a fault. */
    if (strcmp(fac, "CONFWARN") == 0 && strstr(buf, "enable.gapless.guarantee is experimental")) {
        hb_log(HB_LOG_DEBUG, "librdkafka", "%s: %s", fac, buf);
        return;
    }
    hb_log_level_t l = level <= 3   ? HB_LOG_ERROR
                       : level <= 4 ? HB_LOG_WARN
                       : level <= 6 ? HB_LOG_INFO
                                    : HB_LOG_DEBUG;
    hb_log(l, "librdkafka", "%s: %s", fac, buf);
}

static void kafka_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    kafka_sink_t *k = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        atomic_store(&k->fatal, 1);
        hb_error(C,
                 "fatal producer error: %s; the producer will be recreated and undelivered "
                 "records produced again",
                 reason);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        atomic_store(&k->all_down, 1);
    hb_warn(C, "%s: %s", rd_kafka_err2name(err), reason);
}

/* Count brokers in state UP from librdkafka's statistics (every second):
 * the non-blocking way to know whether the cluster is reachable. */
static int kafka_stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    (void)rk;
    kafka_sink_t *k = opaque;
    json_t *root = json_loadb(json, len, 0, NULL);
    json_t *brokers = json_object_get(root, "brokers");
    const char *name;
    json_t *b;
    int up = 0;
    json_object_foreach(brokers, name, b)
    {
        const char *state = json_string_value(json_object_get(b, "state"));
        json_int_t nodeid = json_integer_value(json_object_get(b, "nodeid"));
        if (state && strcmp(state, "UP") == 0 && nodeid >= 0)
            up++;
    }
    json_decref(root);
    atomic_store(&k->brokers_up, up);
    if (up)
        atomic_store(&k->all_down, 0);
    return 0; /* we did not keep json */
}

static void kafka_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    kafka_sink_t *k = opaque;
    hb_msg_t *msg = m->_private;
    if (!msg)
        return;
    msg->impl_status = (int)m->err;
    msg->impl_next = NULL;
    *k->reports_tail = msg;
    k->reports_tail = &msg->impl_next;
}

#define KAFKA_SOLO 1 /* impl_flags: produce alone (its batch was refused) */

/* Errors the broker gives a whole batch for what may be one record. */
static int batch_level(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
           err == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE ||
           err == RD_KAFKA_RESP_ERR_INVALID_RECORD || err == RD_KAFKA_RESP_ERR_INVALID_MSG ||
           err == RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE;
}

/* Errors that no retry can fix for this message: it is poison. */
static int permanent(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
        return 1;
    default:
        return 0;
    }
}

/* Errors that an operator may fix (create the topic, grant access) but
 * that otherwise never go away: retried for a grace period (and reported
 * in the log and /readyz), then treated as poison so that the records
 * behind it are not held up for good. A cluster that is recovering from
 * an outage gives them too, for a moment, while the real topic exists: so
 * the grace is timed per class of error, from a record's first error of
 * that class, and any other outcome (a timeout, a broken connection, a
 * different error) starts it again. Time spent failing for other reasons
 * never counts. */
enum { CLASS_NONE = 0, CLASS_NO_TOPIC, CLASS_DENIED, CLASS_INVALID_ARG };
#define CLASS_SHIFT 8 /* impl_flags: the class of the current run of errors */
#define CLASS_MASK (0xff << CLASS_SHIFT)

static _Atomic uint64_t topic_grace_ms = 30000;

void hb_sink_kafka_set_topic_grace_ms(uint64_t ms)
{
    atomic_store(&topic_grace_ms, ms);
}

static int maybe_permanent(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
        return CLASS_NO_TOPIC;
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
        return CLASS_DENIED;
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
        return CLASS_INVALID_ARG;
    default:
        return CLASS_NONE;
    }
}

static hb_sink_result_t classify(rd_kafka_resp_err_t err, hb_msg_t *m)
{
    if (permanent(err))
        return HB_SINK_REJECT;
    int cls = maybe_permanent(err);
    uint64_t now = hb_mono_ms();
    if (cls != (m->impl_flags & CLASS_MASK) >> CLASS_SHIFT) {
        m->impl_flags = (m->impl_flags & ~CLASS_MASK) | cls << CLASS_SHIFT;
        m->impl_since_ms = now;
        return HB_SINK_RETRY;
    }
    if (cls != CLASS_NONE && now - m->impl_since_ms >= atomic_load(&topic_grace_ms))
        return HB_SINK_REJECT;
    return HB_SINK_RETRY;
}

static void target_topic(const kafka_sink_t *k, const hb_msg_t *m, char *topic, size_t len)
{
    hb_tmpl_fields_t f;
    hb_msg_tmpl_fields(m, &f);
    hb_template_expand(m->dead_letter ? k->cfg->kafka_dead_letter_topic : m->kafka_topic_tmpl,
                       HB_TMPL_KAFKA_TOPIC, &f, topic, len);
}

/* One wording for an error, whether librdkafka refused the produce call or
 * reported it later: the operator reads this in the log and /readyz. */
static void describe(kafka_sink_t *k, rd_kafka_resp_err_t err, const hb_msg_t *m)
{
    char topic[256];
    target_topic(k, m, topic, sizeof(topic));
    if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC)
        snprintf(k->last_error, sizeof(k->last_error),
                 "topic %s does not exist and the broker does not create it (%s)", topic,
                 rd_kafka_err2str(err));
    else if (err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
        snprintf(k->last_error, sizeof(k->last_error), "not authorized to write to topic %s",
                 topic);
    else
        snprintf(k->last_error, sizeof(k->last_error), "record %" PRIu64 " to %s: %s", m->seq,
                 topic, rd_kafka_err2str(err));
}

static void update_status(kafka_sink_t *k)
{
    int up = atomic_load(&k->brokers_up);
    if (atomic_load(&k->all_down) || up == 0) {
        char why[800];
        snprintf(why, sizeof(why), "no Kafka broker reachable at %s%s%s", k->cfg->kafka_brokers,
                 k->last_error[0] ? "; last error: " : "", k->last_error);
        hb_sink_set_status(k->sink, 0, why);
    } else if (k->last_error[0]) {
        hb_sink_set_status(k->sink, 0, k->last_error);
    } else if (up < 0 && hb_mono_ms() - k->opened_ms < 3000) {
        /* no statistics yet: still "connecting" */
    } else {
        /* up > 0, or unknown (statistics turned off by the user): trust
         * the error callback's all-brokers-down signal alone */
        hb_sink_set_status(k->sink, 1, NULL);
    }
}

static void produce(kafka_sink_t *k, hb_msg_t *m);

/* Give back, as RETRY, everything this sink keeps back. */
static void hand_back_held(kafka_sink_t *k, const char *why)
{
    hb_msg_t *m = k->held;
    k->held = NULL;
    k->held_tail = &k->held;
    hb_sink_done_list(m, HB_SINK_RETRY, why);
}

/* A record failed: nothing behind it may reach the broker first. */
static void hold(kafka_sink_t *k)
{
    rd_kafka_purge(k->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_NON_BLOCKING);
    hand_back_held(k, "held back behind a failed record");
}

/* Produce what was kept back, up to the next record that must go alone. */
static void release_held(kafka_sink_t *k)
{
    while (k->held && !k->alone) {
        hb_msg_t *m = k->held;
        if ((m->impl_flags & KAFKA_SOLO) && k->outstanding > 0)
            return; /* alone means alone: wait for the rest to report */
        k->held = m->impl_next;
        if (!k->held)
            k->held_tail = &k->held;
        m->impl_next = NULL;
        produce(k, m);
    }
}

static void serve(kafka_sink_t *k)
{
    rd_kafka_poll(k->rk, 0);
    hb_msg_t *m = k->reports;
    k->reports = NULL;
    k->reports_tail = &k->reports;
    int failed = 0;
    while (m) {
        hb_msg_t *next = m->impl_next;
        rd_kafka_resp_err_t err = (rd_kafka_resp_err_t)m->impl_status;
        m->impl_next = NULL;
        k->outstanding--;
        if (m == k->alone)
            k->alone = NULL;
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            k->last_error[0] = '\0';
            hb_sink_done(m, HB_SINK_OK, NULL);
            m = next;
            continue;
        }
        if (err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT) {
            /* our own doing (hold, a fatal error): says nothing about the
             * record, and the reason to show stays the failure's */
            hb_sink_done(m, HB_SINK_RETRY, "held back behind a failed record");
            m = next;
            continue;
        }
        hb_sink_result_t res;
        describe(k, err, m);
        if (batch_level(err) && !(m->impl_flags & KAFKA_SOLO)) {
            /* maybe only a neighbour in its batch was bad: try it alone */
            m->impl_flags |= KAFKA_SOLO;
            res = HB_SINK_RETRY;
        } else {
            res = classify(err, m);
        }
        failed |= res == HB_SINK_RETRY;
        hb_sink_done(m, res, k->last_error);
        m = next;
    }
    if (failed)
        hold(k);
    else
        release_held(k);
}

static void on_pipe(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    char buf[64];
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    serve(arg);
}

static rd_kafka_t *make_producer(kafka_sink_t *k, char *err, size_t errlen);

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    kafka_sink_t *k = arg;
    serve(k);
    if (atomic_load(&k->fatal)) {
        /* Purge hands everything back (as RETRY through serve), then a new
         * producer takes over; the runner produces the records again. */
        char errstr[256];
        rd_kafka_purge(k->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        serve(k);
        rd_kafka_t *fresh = make_producer(k, errstr, sizeof(errstr));
        if (!fresh) {
            hb_error(C, "cannot recreate the producer: %s (will retry)", errstr);
            return;
        }
        rd_kafka_queue_destroy(k->mainq);
        rd_kafka_destroy(k->rk);
        k->rk = fresh;
        k->mainq = rd_kafka_queue_get_main(k->rk);
        rd_kafka_queue_io_event_enable(k->mainq, k->pipefd[1], "1", 1);
        atomic_store(&k->fatal, 0);
        k->recreated++;
        hb_sink_count_reconnect(k->sink);
    }
    update_status(k);
}

/* The producer's configuration: our defaults, the user's kafka.*
 * properties, then the guarantees (a user's property that tried to change
 * one is logged). NULL with the reason in err when librdkafka refuses a
 * property. */
static rd_kafka_conf_t *kafka_conf(const hb_config_t *cfg, char *err, size_t errlen)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* ours first, so that a user's property can override the defaults
     * but never the guarantees below */
    static const char *const defaults[][2] = {
        {"statistics.interval.ms", "1000"},
        {"linger.ms", "5"},
    };
    static const char *const fixed[][2] = {
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"enable.gapless.guarantee", "true"},
    };
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
        rd_kafka_conf_set(conf, defaults[i][0], defaults[i][1], errstr, sizeof(errstr));
    if (rd_kafka_conf_set(conf, "bootstrap.servers", cfg->kafka_brokers, errstr, sizeof(errstr)) !=
        RD_KAFKA_CONF_OK) {
        snprintf(err, errlen, "kafka.brokers: %s", errstr);
        goto fail;
    }
    for (size_t i = 0; i < cfg->n_kafka_props; i++) {
        if (rd_kafka_conf_set(conf, cfg->kafka_props[i].key, cfg->kafka_props[i].value, errstr,
                              sizeof(errstr)) != RD_KAFKA_CONF_OK) {
            snprintf(err, errlen, "kafka.%s: rejected by librdkafka: %s", cfg->kafka_props[i].key,
                     errstr);
            goto fail;
        }
    }
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        for (size_t p = 0; p < cfg->n_kafka_props; p++)
            if (strcmp(cfg->kafka_props[p].key, fixed[i][0]) == 0 &&
                strcmp(cfg->kafka_props[p].value, fixed[i][1]) != 0)
                hb_warn(C, "kafka.%s = %s ignored: hookbridge's delivery guarantee needs %s",
                        fixed[i][0], cfg->kafka_props[p].value, fixed[i][1]);
        rd_kafka_conf_set(conf, fixed[i][0], fixed[i][1], errstr, sizeof(errstr));
    }
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

static int kafka_check(const hb_config_t *cfg, char *err, size_t errlen)
{
    char errstr[512];
    rd_kafka_conf_t *conf = kafka_conf(cfg, err, errlen);
    if (!conf)
        return -1;
    /* librdkafka judges some properties only together, when the producer
     * is made (max.in.flight with enable.idempotence, the ssl.* files):
     * make one that knows no broker, so that it connects to none, and
     * keep its own log lines out of --check-config's answer. */
    rd_kafka_conf_set(conf, "bootstrap.servers", "", errstr, sizeof(errstr));
    rd_kafka_conf_set_log_cb(conf, NULL);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        snprintf(err, errlen, "kafka.*: rejected by librdkafka: %s", errstr);
        rd_kafka_conf_destroy(conf); /* rd_kafka_new takes it only on success */
        return -1;
    }
    rd_kafka_destroy(rk);
    return 0;
}

static rd_kafka_t *make_producer(kafka_sink_t *k, char *err, size_t errlen)
{
    char errstr[512];
    rd_kafka_conf_t *conf = kafka_conf(k->cfg, err, errlen);
    if (!conf)
        return NULL;
    rd_kafka_conf_set_opaque(conf, k);
    rd_kafka_conf_set_dr_msg_cb(conf, kafka_dr_cb);
    rd_kafka_conf_set_error_cb(conf, kafka_error_cb);
    rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
    rd_kafka_conf_set_stats_cb(conf, kafka_stats_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        snprintf(err, errlen, "kafka: cannot create producer: %s", errstr);
        goto fail;
    }
    return rk; /* rd_kafka_new took conf */
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

static void kafka_close(void *state);

static void *kafka_open(hb_sink_t *sink, const hb_config_t *cfg, struct event_base *base, char *err,
                        size_t errlen)
{
    kafka_sink_t *k = hb_calloc(1, sizeof(*k));
    k->sink = sink;
    k->cfg = cfg;
    k->base = base;
    k->pipefd[0] = k->pipefd[1] = -1;
    k->reports_tail = &k->reports;
    atomic_init(&k->brokers_up, -1);
    k->opened_ms = hb_mono_ms();
    k->held_tail = &k->held;
    k->rk = make_producer(k, err, errlen);
    if (!k->rk)
        goto fail;
    if (pipe2(k->pipefd, O_NONBLOCK | O_CLOEXEC) < 0) {
        snprintf(err, errlen, "kafka: pipe: %s", strerror(errno));
        goto fail;
    }
    k->mainq = rd_kafka_queue_get_main(k->rk);
    rd_kafka_queue_io_event_enable(k->mainq, k->pipefd[1], "1", 1);
    k->pipe_ev = event_new(base, k->pipefd[0], EV_READ | EV_PERSIST, on_pipe, k);
    k->tick_ev = event_new(base, -1, EV_PERSIST, on_tick, k);
    struct timeval tv = hb_ms_timeval(200);
    event_add(k->pipe_ev, NULL);
    event_add(k->tick_ev, &tv);
    hb_sink_set_status(sink, 0, "connecting to Kafka");
    hb_info(C, "producing to %s (topic %s, key %s, idempotent, acks=all)", cfg->kafka_brokers,
            cfg->kafka_topic, cfg->kafka_key);
    return k;
fail:
    kafka_close(k);
    return NULL;
}

static void add_header(rd_kafka_headers_t *h, const char *name, const char *v)
{
    if (v)
        rd_kafka_header_add(h, name, -1, v, -1);
}

static void produce(kafka_sink_t *k, hb_msg_t *m)
{
    char topic[256], key[1024], ts[40], attempts[24];
    hb_tmpl_fields_t f;
    hb_msg_tmpl_fields(m, &f);
    target_topic(k, m, topic, sizeof(topic));
    size_t klen = hb_template_expand(m->kafka_key_tmpl, HB_TMPL_RAW, &f, key, sizeof(key));
    hb_format_rfc3339(m->received_at_ms, ts, sizeof(ts));
    rd_kafka_headers_t *h = rd_kafka_headers_new(12 + m->n_headers);
    if (m->delivery_attempts >= 0)
        snprintf(attempts, sizeof(attempts), "%" PRId64, m->delivery_attempts);
    if (hb_msg_is_intercom(m)) {
        add_header(h, "intercom-topic", m->topic);
        add_header(h, "intercom-app-id", m->app_id);
        add_header(h, "intercom-notification-id", m->id);
        if (m->delivery_attempts >= 0)
            add_header(h, "intercom-delivery-attempts", attempts);
    } else if (m->delivery_attempts >= 0) {
        add_header(h, "hookbridge-delivery-attempts", attempts);
    }
    /* the same names on every route, so one consumer reads them all */
    add_header(h, "hookbridge-route", m->route ? m->route : HB_RECORD_DEFAULT_ROUTE);
    add_header(h, "hookbridge-topic", m->topic);
    add_header(h, "hookbridge-id", m->id);
    add_header(h, "hookbridge-source", m->app_id);
    for (size_t i = 0; i < m->n_headers; i++)
        add_header(h, m->headers[i].name, m->headers[i].value);
    add_header(h, "hookbridge-received-at", ts);
    add_header(h, "content-type", "application/json");
    if (m->dead_letter)
        add_header(h, "hookbridge-error", m->error);
    if (m->replay)
        add_header(h, "hookbridge-replay", "1");
    /* no RD_KAFKA_MSG_F_COPY: m owns the body until its delivery report */
    rd_kafka_resp_err_t err =
        rd_kafka_producev(k->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, klen),
                          RD_KAFKA_V_VALUE((void *)m->body, m->body_len), RD_KAFKA_V_HEADERS(h),
                          RD_KAFKA_V_OPAQUE(m), RD_KAFKA_V_END);
    if (err) {
        rd_kafka_headers_destroy(h);
        describe(k, err, m);
        hb_sink_result_t res = classify(err, m);
        if (res == HB_SINK_RETRY)
            hand_back_held(k, "held back behind a failed record");
        hb_sink_done(m, res, k->last_error);
        return;
    }
    k->outstanding++;
    if (m->impl_flags & KAFKA_SOLO)
        k->alone = m;
}

static void kafka_publish(void *state, hb_msg_t *m)
{
    kafka_sink_t *k = state;
    /* a dead-letter record goes to another topic: it never waits */
    if (!m->dead_letter &&
        (k->held || k->alone || ((m->impl_flags & KAFKA_SOLO) && k->outstanding > 0))) {
        m->impl_next = NULL;
        *k->held_tail = m;
        k->held_tail = &m->impl_next;
        return;
    }
    produce(k, m);
}

static void kafka_close(void *state)
{
    kafka_sink_t *k = state;
    if (!k)
        return;
    hand_back_held(k, "sink closing");
    if (k->rk) {
        /* The runner already waited out the grace period: hand back what
         * is still in flight (it stays in the journal) and go. */
        rd_kafka_purge(k->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(k->rk, 0);
        serve(k);
        if (k->mainq) {
            rd_kafka_queue_io_event_enable(k->mainq, -1, NULL, 0);
            rd_kafka_queue_destroy(k->mainq);
        }
        rd_kafka_destroy(k->rk);
    }
    if (k->pipe_ev)
        event_free(k->pipe_ev);
    if (k->tick_ev)
        event_free(k->tick_ev);
    if (k->pipefd[0] >= 0)
        close(k->pipefd[0]);
    if (k->pipefd[1] >= 0)
        close(k->pipefd[1]);
    free(k);
}

const hb_sink_ops_t hb_sink_kafka_ops = {
    .name = "kafka",
    .has_dead_letter = 1,
    .open = kafka_open,
    .publish = kafka_publish,
    .flush = NULL,
    .close = kafka_close,
    .check = kafka_check,
};
