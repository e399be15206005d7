/* The Redis Streams sink (hiredis, asynchronous, on this sink's
 * event_base through hiredis' libevent adapter).
 *
 *   XADD <stream> [MAXLEN ~ <n>] * id <id> topic <topic> app_id <app_id>
 *        received_at <RFC 3339> payload <raw body>
 *
 * Many XADDs are in flight at once (pipelining). Redis answers in order,
 * so the messages waiting for a reply are a FIFO: the head is the oldest,
 * which is all the command timeout needs. hiredis 0.14 has no timeouts:
 * a timer frees a connection whose oldest reply is overdue, which hands
 * every pending message back as RETRY, and reconnects with backoff.
 *
 * @locality: sink thread only. */
#include "hb/fmacros.h"

#include "hb/sink.h"
#include "hb/log.h"
#include "hb/template.h"
#include "hb/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#define C "sink.redis"
#define REPLY_TIMEOUT_MS 10000
#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 5000

typedef struct redis_sink {
    hb_sink_t *sink;
    const hb_config_t *cfg;
    struct event_base *base;
    char host[256];
    int port, db;
    char *user, *password; /* never logged */
    redisAsyncContext *ac;
    int connected;
    hb_msg_t *head, **tail; /* waiting for a reply, in send order */
    struct event *tick_ev, *reconnect_ev;
    int backoff_ms;
    int ever_connected;
    int setup_failed; /* AUTH or SELECT refused on this connection */
} redis_sink_t;

static void schedule_reconnect(redis_sink_t *r);

/* redis://[user:password@]host:port[/db]; also redis://:password@host */
static int parse_url(redis_sink_t *r, const char *url, char *err, size_t errlen)
{
    const char *p = url + strlen("redis://");
    const char *at = strrchr(p, '@');
    r->port = 6379;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if (colon > p)
                r->user = hb_strndup(p, (size_t)(colon - p));
            r->password = hb_strndup(colon + 1, (size_t)(at - colon - 1));
        } else {
            r->password = hb_strndup(p, (size_t)(at - p));
        }
        p = at + 1;
    }
    const char *slash = strchr(p, '/');
    size_t hl = slash ? (size_t)(slash - p) : strlen(p);
    char hostport[256];
    if (hl == 0 || hl >= sizeof(hostport)) {
        snprintf(err, errlen, "redis.url: missing host");
        return -1;
    }
    memcpy(hostport, p, hl);
    hostport[hl] = '\0';
    char *colon = strrchr(hostport, ':');
    if (colon) {
        *colon = '\0';
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (*end || port <= 0 || port > 65535) {
            snprintf(err, errlen, "redis.url: bad port '%s'", colon + 1);
            return -1;
        }
        r->port = (int)port;
    }
    snprintf(r->host, sizeof(r->host), "%s", hostport);
    if (slash && slash[1]) {
        char *end;
        long db = strtol(slash + 1, &end, 10);
        if (*end || db < 0) {
            snprintf(err, errlen, "redis.url: bad database number '%s'", slash + 1);
            return -1;
        }
        r->db = (int)db;
    }
    return 0;
}

static void fail_pending(redis_sink_t *r, const char *why)
{
    /* hiredis calls every pending callback with a NULL reply when a
     * connection goes; anything left here was never sent */
    hb_msg_t *m = r->head;
    r->head = NULL;
    r->tail = &r->head;
    while (m) {
        hb_msg_t *next = m->impl_next;
        m->impl_next = NULL;
        hb_sink_done(m, HB_SINK_RETRY, why);
        m = next;
    }
}

/* Errors that no retry fixes for this message (the key holds another
 * type, a malformed command): poison. Everything else (OOM, LOADING,
 * READONLY, NOAUTH, MASTERDOWN) is transient. */
static int permanent_error(const char *s)
{
    return strncmp(s, "WRONGTYPE", 9) == 0 || strncasecmp(s, "ERR syntax", 10) == 0 ||
           strncasecmp(s, "ERR The ID", 10) == 0;
}

static void on_xadd(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redis_sink_t *r = ac->data;
    redisReply *rep = reply;
    hb_msg_t *m = privdata;
    /* replies come in send order: m is the head */
    if (r->head == m) {
        r->head = m->impl_next;
        if (!r->head)
            r->tail = &r->head;
    }
    m->impl_next = NULL;
    if (!rep) {
        hb_sink_done(m, HB_SINK_RETRY, "connection to Redis lost");
    } else if (rep->type == REDIS_REPLY_ERROR) {
        hb_sink_done(m, permanent_error(rep->str) ? HB_SINK_REJECT : HB_SINK_RETRY, rep->str);
    } else {
        hb_sink_done(m, HB_SINK_OK, NULL);
    }
}

static void on_setup_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    redis_sink_t *r = ac->data;
    redisReply *rep = reply;
    const char *what = privdata;
    /* the first refusal is the cause (a bad AUTH makes SELECT fail too) */
    if (rep && rep->type == REDIS_REPLY_ERROR && !r->setup_failed) {
        char why[640];
        r->setup_failed = 1;
        snprintf(why, sizeof(why), "Redis refused %s: %s", what, rep->str);
        hb_sink_set_status(r->sink, 0, why);
    }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    redis_sink_t *r = ac->data;
    if (status != REDIS_OK) {
        char why[640];
        snprintf(why, sizeof(why), "cannot connect to Redis at %s:%d: %s", r->host, r->port,
                 ac->errstr);
        hb_sink_set_status(r->sink, 0, why);
        r->ac = NULL; /* hiredis frees it after this callback */
        r->connected = 0;
        schedule_reconnect(r);
        return;
    }
    r->connected = 1;
    r->backoff_ms = 0;
    if (r->ever_connected)
        hb_sink_count_reconnect(r->sink);
    r->ever_connected = 1;
    hb_sink_set_status(r->sink, 1, NULL);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    redis_sink_t *r = ac->data;
    char why[640];
    snprintf(why, sizeof(why), "connection to Redis at %s:%d lost%s%s", r->host, r->port,
             status == REDIS_OK ? "" : ": ", status == REDIS_OK ? "" : ac->errstr);
    r->ac = NULL;
    r->connected = 0;
    hb_sink_set_status(r->sink, 0, why);
    fail_pending(r, why);
    schedule_reconnect(r);
}

static void connect_now(redis_sink_t *r)
{
    /* hostnames resolve with a blocking getaddrinfo inside hiredis; that
     * is acceptable here, on the sink's own thread */
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
    if (!ac || ac->err) {
        char why[640];
        snprintf(why, sizeof(why), "cannot connect to Redis at %s:%d: %s", r->host, r->port,
                 ac ? ac->errstr : "out of memory");
        hb_sink_set_status(r->sink, 0, why);
        if (ac)
            redisAsyncFree(ac);
        schedule_reconnect(r);
        return;
    }
    ac->data = r;
    redisLibeventAttach(ac, r->base);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    r->ac = ac;
    r->setup_failed = 0;
    /* queued before any XADD: Redis runs them first on this connection */
    if (r->password) {
        if (r->user)
            redisAsyncCommand(ac, on_setup_reply, "AUTH", "AUTH %s %s", r->user, r->password);
        else
            redisAsyncCommand(ac, on_setup_reply, "AUTH", "AUTH %s", r->password);
    }
    if (r->db)
        redisAsyncCommand(ac, on_setup_reply, "SELECT", "SELECT %d", r->db);
}

static void on_reconnect(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    connect_now(arg);
}

static void schedule_reconnect(redis_sink_t *r)
{
    r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : RECONNECT_MIN_MS;
    if (r->backoff_ms > RECONNECT_MAX_MS)
        r->backoff_ms = RECONNECT_MAX_MS;
    struct timeval tv = {r->backoff_ms / 1000, (r->backoff_ms % 1000) * 1000};
    event_add(r->reconnect_ev, &tv);
}

/* Own the command timeout hiredis 0.14 lacks. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    redis_sink_t *r = arg;
    if (r->ac && r->head && hb_mono_ms() - r->head->sent_ms > REPLY_TIMEOUT_MS) {
        hb_warn(C, "no reply from Redis for %d ms: dropping the connection and sending again",
                REPLY_TIMEOUT_MS);
        redisAsyncContext *ac = r->ac;
        redisAsyncFree(ac); /* pending callbacks get NULL, then on_disconnect */
        if (r->ac == ac) {  /* not connected yet: no disconnect callback */
            r->ac = NULL;
            r->connected = 0;
            fail_pending(r, "Redis reply timeout");
            schedule_reconnect(r);
        }
    }
}

static void redis_close(void *state);

static void *redis_open(hb_sink_t *sink, const hb_config_t *cfg, struct event_base *base, char *err,
                        size_t errlen)
{
    redis_sink_t *r = hb_calloc(1, sizeof(*r));
    r->sink = sink;
    r->cfg = cfg;
    r->base = base;
    r->tail = &r->head;
    if (parse_url(r, cfg->redis_url, err, errlen) < 0) {
        redis_close(r);
        return NULL;
    }
    r->reconnect_ev = evtimer_new(base, on_reconnect, r);
    r->tick_ev = event_new(base, -1, EV_PERSIST, on_tick, r);
    struct timeval tv = {1, 0};
    event_add(r->tick_ev, &tv);
    hb_sink_set_status(sink, 0, "connecting to Redis");
    hb_info(C, "publishing to Redis at %s:%d db %d (stream %s, maxlen ~%" PRId64 ")", r->host,
            r->port, r->db, cfg->redis_stream, cfg->redis_maxlen);
    connect_now(r);
    return r;
}

static void redis_publish(void *state, hb_msg_t *m)
{
    redis_sink_t *r = state;
    if (!r->ac || !r->connected) {
        hb_sink_done(m, HB_SINK_RETRY, "not connected to Redis");
        return;
    }
    char key[1024], ts[40], maxlen[24];
    size_t klen = hb_template_expand(r->cfg->redis_stream, HB_TMPL_REDIS_KEY, m->app_id, m->topic,
                                     m->id, key, sizeof(key));
    hb_format_rfc3339(m->received_at_ms, ts, sizeof(ts));
    const char *argv[16];
    size_t lens[16];
    int n = 0;
#define ARG(s, l) (argv[n] = (s), lens[n] = (l), n++)
#define STR(s) ARG((s), strlen(s))
    STR("XADD");
    ARG(key, klen);
    if (r->cfg->redis_maxlen > 0) {
        snprintf(maxlen, sizeof(maxlen), "%" PRId64, r->cfg->redis_maxlen);
        STR("MAXLEN");
        STR("~");
        STR(maxlen);
    }
    STR("*");
    STR("id");
    STR(m->id ? m->id : "");
    STR("topic");
    STR(m->topic);
    STR("app_id");
    STR(m->app_id ? m->app_id : "");
    STR("received_at");
    STR(ts);
    STR("payload");
    ARG((const char *)m->body, m->body_len);
#undef STR
#undef ARG
    if (redisAsyncCommandArgv(r->ac, on_xadd, m, n, argv, lens) != REDIS_OK) {
        hb_sink_done(m, HB_SINK_RETRY, "hiredis refused the command");
        return;
    }
    m->impl_next = NULL;
    *r->tail = m;
    r->tail = &m->impl_next;
}

static void redis_close(void *state)
{
    redis_sink_t *r = state;
    if (!r)
        return;
    if (r->ac) {
        redisAsyncContext *ac = r->ac;
        redisAsyncSetDisconnectCallback(ac, NULL);
        redisAsyncFree(ac); /* pending XADDs come back as RETRY */
        r->ac = NULL;
    }
    fail_pending(r, "shutting down");
    if (r->tick_ev)
        event_free(r->tick_ev);
    if (r->reconnect_ev)
        event_free(r->reconnect_ev);
    free(r->user);
    if (r->password) {
        memset(r->password, 0, strlen(r->password));
        free(r->password);
    }
    free(r);
}

const hb_sink_ops_t hb_sink_redis_ops = {
    .name = "redis",
    .open = redis_open,
    .publish = redis_publish,
    .flush = NULL,
    .close = redis_close,
};
