/* The Redis Streams sink (hiredis, asynchronous, on this sink's
 * event_base through hiredis' libevent adapter).
 *
 *   XADD <stream> [MAXLEN ~ <n>] * id <id> topic <topic> app_id <app_id>
 *        received_at <RFC 3339> [replay 1] payload <raw body>
 *
 * Many XADDs are in flight at once (pipelining). Redis answers in order,
 * so the messages waiting for a reply are a FIFO: the head is the oldest,
 * which is all the command timeout needs. hiredis 0.14 has no timeouts:
 * a timer frees a connection whose oldest reply is overdue, which hands
 * every pending message back as RETRY, and reconnects with backoff.
 *
 * Setup gate: Redis runs a pipeline in order whatever the earlier replies
 * were, so an XADD queued behind a refused SELECT lands in database 0 and
 * one behind a refused AUTH runs as the default user. No XADD is sent on a
 * connection until every setup reply (AUTH, SELECT, the WAITAOF probe) was
 * OK; a refusal is an outage: the connection is dropped and made again
 * with backoff, /readyz carries Redis's reason, the records stay journaled.
 *
 * Confirmation (redis.wait_replicas, redis.wait_aof): an XADD reply only
 * says the entry is in the server's memory. When asked, each pipeline of
 * XADDs is followed by WAIT (replicas) and/or WAITAOF (local AOF fsync),
 * which cover every earlier write on the connection. Messages whose XADD
 * succeeded are held until a confirmation answers in full; a shortfall
 * keeps them held (not ready, with the reason) and waits again later on
 * the same connection, so the entries are not XADDed twice. A lost
 * connection hands held messages back as RETRY: an unconfirmed entry may
 * have died with the server, so it is sent again.
 *
 * @locality: sink thread only. */
#include "hb/fmacros.h"

#include "hb/sink.h"
#include "hb/log.h"
#include "hb/template.h"
#include "hb/util.h"

#include <inttypes.h>
#include <stdarg.h>
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
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

typedef struct redis_sink redis_sink_t;

/* Messages in send order, linked through impl_next. */
typedef struct {
    hb_msg_t *head, **tail;
} msg_fifo_t;

/* One confirmation (WAIT and/or WAITAOF) sent after a pipeline; it covers
 * every XADD sent before it on the connection. Freed when its last reply
 * (or hiredis' NULL for a lost connection) has come. */
typedef struct redis_wait {
    redis_sink_t *r;
    int replies_left;
    int shortfall; /* the events are not confirmed; why says how */
    int lost;      /* the connection went before the replies came */
    char why[256];
    uint64_t sent_ms;
    struct redis_wait *next;
} redis_wait_t;

struct redis_sink {
    hb_sink_t *sink;
    const hb_config_t *cfg;
    struct event_base *base;
    char host[256];
    int port, db;
    char *user, *password; /* never logged */
    redisAsyncContext *ac;
    uint64_t connect_ms;               /* when ac was created: bounds connect + setup */
    int ready;                         /* connected and every setup reply was OK */
    int setup_left;                    /* setup replies still to come */
    int setup_failed;                  /* a setup command was refused on this connection */
    char why[640];                     /* why not ready (the reason given for a RETRY) */
    msg_fifo_t sent;                   /* XADD sent, waiting for its reply */
    msg_fifo_t held;                   /* XADD done, waiting for a confirmation */
    redis_wait_t *waits, **waits_tail; /* confirmations in flight, in order */
    int unconfirmed;                   /* XADDs sent since the last confirmation */
    uint64_t reply_timeout_ms;
    struct event *tick_ev, *reconnect_ev, *rewait_ev;
    int backoff_ms, rewait_backoff_ms;
    int ever_connected;
};

static void fifo_push(msg_fifo_t *f, hb_msg_t *m)
{
    m->impl_next = NULL;
    *f->tail = m;
    f->tail = &m->impl_next;
}

static hb_msg_t *fifo_pop(msg_fifo_t *f)
{
    hb_msg_t *m = f->head;
    if (m) {
        f->head = m->impl_next;
        if (!f->head)
            f->tail = &f->head;
        m->impl_next = NULL;
    }
    return m;
}

/* Hand every message of f back to the runner. */
static void fifo_done(msg_fifo_t *f, hb_sink_result_t res, const char *why)
{
    hb_msg_t *m;
    while ((m = fifo_pop(f)))
        hb_sink_done(m, res, why);
}

/* Double *ms within [BACKOFF_MIN_MS, BACKOFF_MAX_MS] and arm ev with it. */
static void backoff(int *ms, struct event *ev)
{
    *ms = hb_backoff_next(*ms, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
    struct timeval tv = hb_ms_timeval(*ms);
    evtimer_add(ev, &tv);
}

static int confirming(const redis_sink_t *r)
{
    return r->cfg->redis_wait_replicas > 0 || r->cfg->redis_wait_aof;
}

static void not_ready(redis_sink_t *r, const char *why)
{
    snprintf(r->why, sizeof(r->why), "%s", why);
    hb_sink_set_status(r->sink, 0, why);
}

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

/* The connection is gone (or going): everything sent on it comes back as
 * RETRY. hiredis has already called each pending callback with a NULL
 * reply; whatever is left here never got one. */
static void fail_pending(redis_sink_t *r, const char *why)
{
    r->ready = 0;
    fifo_done(&r->sent, HB_SINK_RETRY, why);
    fifo_done(&r->held, HB_SINK_RETRY, why);
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
    redis_sink_t *r = ac->data;
    redisReply *rep = reply;
    hb_msg_t *m = privdata;
    /* replies come in send order: m is the head */
    if (r->sent.head == m)
        fifo_pop(&r->sent);
    m->impl_next = NULL;
    if (!rep) {
        hb_sink_done(m, HB_SINK_RETRY, "connection to Redis lost");
    } else if (rep->type == REDIS_REPLY_ERROR) {
        hb_sink_done(m, permanent_error(rep->str) ? HB_SINK_REJECT : HB_SINK_RETRY, rep->str);
    } else if (confirming(r)) {
        fifo_push(&r->held, m);
    } else {
        hb_sink_done(m, HB_SINK_OK, NULL);
    }
}

static void send_confirmation(redis_sink_t *r);

/* Judge one reply of a confirmation: WAIT answers the number of replicas
 * that have every earlier write, WAITAOF [local fsynced, replicas]. */
static void judge_confirmation(redis_wait_t *w, const redisReply *rep)
{
    const hb_config_t *cfg = w->r->cfg;
    int t = (int)cfg->redis_wait_timeout_ms;
    if (w->shortfall)
        return; /* the first shortfall is the reason */
    w->shortfall = 1;
    if (!rep) {
        w->lost = 1;
        snprintf(w->why, sizeof(w->why), "connection to Redis lost");
    } else if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(w->why, sizeof(w->why), "Redis refused to confirm the events: %s", rep->str);
    } else if (rep->type == REDIS_REPLY_INTEGER) {
        if (rep->integer >= cfg->redis_wait_replicas)
            w->shortfall = 0;
        else
            snprintf(w->why, sizeof(w->why),
                     "WAIT: %lld of %" PRId64 " Redis replica(s) acknowledged within %d ms "
                     "(redis.wait_replicas); events held until enough replicas have them",
                     rep->integer, cfg->redis_wait_replicas, t);
    } else if (rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 &&
               rep->element[0]->type == REDIS_REPLY_INTEGER && rep->element[0]->integer >= 1) {
        w->shortfall = 0;
    } else {
        snprintf(w->why, sizeof(w->why),
                 "WAITAOF: Redis did not fsync its append-only file within %d ms "
                 "(redis.wait_aof); events held until it does",
                 t);
    }
}

static void on_confirmation(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redis_wait_t *w = privdata;
    redis_sink_t *r = w->r;
    judge_confirmation(w, reply);
    if (--w->replies_left > 0)
        return;
    /* replies come in order: w is the oldest confirmation, and every
     * message in `held` got its XADD reply before w's */
    r->waits = w->next;
    if (!r->waits)
        r->waits_tail = &r->waits;
    if (!w->shortfall) {
        fifo_done(&r->held, HB_SINK_OK, NULL);
        r->rewait_backoff_ms = 0;
        if (r->ready)
            hb_sink_set_status(r->sink, 1, NULL);
    } else if (!w->lost) {
        not_ready(r, w->why);
        /* a later confirmation already in flight covers the held ones too */
        if (r->ready && !r->waits && r->held.head)
            backoff(&r->rewait_backoff_ms, r->rewait_ev);
    }
    free(w);
}

/* Queue WAIT and/or WAITAOF behind the XADDs sent so far. */
static void send_confirmation(redis_sink_t *r)
{
    const hb_config_t *cfg = r->cfg;
    int t = (int)cfg->redis_wait_timeout_ms;
    redis_wait_t *w = hb_calloc(1, sizeof(*w));
    w->r = r;
    w->sent_ms = hb_mono_ms();
    /* replies_left counts commands hiredis accepted: each one's callback
     * runs exactly once, with a reply or with NULL when the link goes */
    if (cfg->redis_wait_replicas > 0 &&
        redisAsyncCommand(r->ac, on_confirmation, w, "WAIT %d %d", (int)cfg->redis_wait_replicas,
                          t) == REDIS_OK)
        w->replies_left++;
    if (cfg->redis_wait_aof &&
        redisAsyncCommand(r->ac, on_confirmation, w, "WAITAOF 1 0 %d", t) == REDIS_OK)
        w->replies_left++;
    if (!w->replies_left) { /* hiredis is tearing the connection down */
        free(w);
        return;
    }
    *r->waits_tail = w;
    r->waits_tail = &w->next;
    r->unconfirmed = 0;
}

static void on_rewait(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    redis_sink_t *r = arg;
    if (r->ready && r->held.head && !r->waits)
        send_confirmation(r);
}

static void setup_done(redis_sink_t *r)
{
    r->ready = 1;
    r->backoff_ms = 0;
    if (r->ever_connected)
        hb_sink_count_reconnect(r->sink);
    r->ever_connected = 1;
    hb_sink_set_status(r->sink, 1, NULL);
}

static void on_setup_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    redis_sink_t *r = ac->data;
    redisReply *rep = reply;
    const char *what = privdata;
    if (!rep || r->setup_failed)
        return; /* the connection is going: on_disconnect reports it */
    if (rep->type == REDIS_REPLY_ERROR) {
        /* the first refusal is the cause (a bad AUTH makes SELECT fail
         * too). No XADD was sent behind it, so nothing ran in the wrong
         * database or as the wrong user. hiredis frees the connection when
         * this callback returns; on_disconnect keeps this reason. */
        char why[640];
        r->setup_failed = 1;
        snprintf(why, sizeof(why), "Redis refused %s: %s", what, rep->str);
        not_ready(r, why);
        redisAsyncFree(ac);
        return;
    }
    if (--r->setup_left == 0)
        setup_done(r);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    redis_sink_t *r = ac->data;
    if (status != REDIS_OK) {
        char why[640];
        snprintf(why, sizeof(why), "cannot connect to Redis at %s:%d: %s", r->host, r->port,
                 ac->errstr);
        not_ready(r, why);
        r->ac = NULL; /* hiredis frees it after this callback */
        r->ready = 0;
        schedule_reconnect(r);
        return;
    }
    if (r->setup_left == 0)
        setup_done(r);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    redis_sink_t *r = ac->data;
    if (!r->setup_failed) { /* a refused setup keeps its own reason */
        char why[640];
        snprintf(why, sizeof(why), "connection to Redis at %s:%d lost%s%s", r->host, r->port,
                 status == REDIS_OK ? "" : ": ", status == REDIS_OK ? "" : ac->errstr);
        not_ready(r, why);
    }
    r->ac = NULL;
    fail_pending(r, r->why);
    schedule_reconnect(r);
}

/* Queue one setup command; its reply gates publishing (on_setup_reply). */
static void setup_command(redis_sink_t *r, const char *what, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (redisvAsyncCommand(r->ac, on_setup_reply, (void *)what, fmt, ap) == REDIS_OK)
        r->setup_left++;
    va_end(ap);
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
        not_ready(r, why);
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
    r->connect_ms = hb_mono_ms();
    r->ready = 0;
    r->setup_left = 0;
    r->setup_failed = 0;
    r->unconfirmed = 0;
    if (r->password) {
        if (r->user)
            setup_command(r, "AUTH", "AUTH %s %s", r->user, r->password);
        else
            setup_command(r, "AUTH", "AUTH %s", r->password);
    }
    if (r->db)
        setup_command(r, "SELECT", "SELECT %d", r->db);
    /* fail before publishing, not after: WAITAOF exists from Redis 7.2 and
     * refuses numlocal 1 without appendonly; nothing written yet, so it
     * answers at once */
    if (r->cfg->redis_wait_aof)
        setup_command(r, "WAITAOF (redis.wait_aof = on needs Redis 7.2 or later, appendonly yes)",
                      "WAITAOF 1 0 1");
}

static void on_reconnect(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    connect_now(arg);
}

static void schedule_reconnect(redis_sink_t *r)
{
    backoff(&r->backoff_ms, r->reconnect_ev);
}

/* Own the command timeout hiredis 0.14 lacks: the oldest of an XADD, a
 * confirmation, or a connection still in setup. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    redis_sink_t *r = arg;
    if (!r->ac)
        return;
    uint64_t oldest = r->ready ? UINT64_MAX : r->connect_ms;
    if (r->sent.head && r->sent.head->sent_ms < oldest)
        oldest = r->sent.head->sent_ms;
    if (r->waits && r->waits->sent_ms < oldest)
        oldest = r->waits->sent_ms;
    if (oldest == UINT64_MAX || hb_mono_ms() - oldest <= r->reply_timeout_ms)
        return;
    hb_warn(C, "no reply from Redis for %" PRIu64 " ms: dropping the connection and sending again",
            r->reply_timeout_ms);
    redisAsyncContext *ac = r->ac;
    redisAsyncFree(ac); /* pending callbacks get NULL, then on_disconnect */
    if (r->ac == ac) {  /* not connected yet: no disconnect callback */
        r->ac = NULL;
        not_ready(r, "Redis reply timeout");
        fail_pending(r, r->why);
        schedule_reconnect(r);
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
    r->sent.tail = &r->sent.head;
    r->held.tail = &r->held.head;
    r->waits_tail = &r->waits;
    /* a confirmation may block for its timeout, and the XADDs behind it
     * wait as long (WAIT and WAITAOF: twice) */
    r->reply_timeout_ms =
        REPLY_TIMEOUT_MS + (confirming(r) ? 2 * (uint64_t)cfg->redis_wait_timeout_ms : 0);
    if (parse_url(r, cfg->redis_url, err, errlen) < 0) {
        redis_close(r);
        return NULL;
    }
    r->reconnect_ev = evtimer_new(base, on_reconnect, r);
    r->rewait_ev = evtimer_new(base, on_rewait, r);
    r->tick_ev = event_new(base, -1, EV_PERSIST, on_tick, r);
    struct timeval tv = {1, 0};
    event_add(r->tick_ev, &tv);
    not_ready(r, "connecting to Redis");
    hb_info(C, "publishing to Redis at %s:%d db %d (stream %s, maxlen ~%" PRId64 ")", r->host,
            r->port, r->db, cfg->redis_stream, cfg->redis_maxlen);
    if (cfg->redis_wait_replicas > 0)
        hb_info(C,
                "events count as published once %" PRId64 " replica(s) have them (WAIT, %" PRId64
                " ms)",
                cfg->redis_wait_replicas, cfg->redis_wait_timeout_ms);
    if (cfg->redis_wait_aof)
        hb_info(C, "events count as published once Redis fsynced its AOF (WAITAOF, %" PRId64 " ms)",
                cfg->redis_wait_timeout_ms);
    connect_now(r);
    return r;
}

static void redis_publish(void *state, hb_msg_t *m)
{
    redis_sink_t *r = state;
    if (!r->ac || !r->ready) {
        hb_sink_done(m, HB_SINK_RETRY, r->why);
        return;
    }
    char key[1024], ts[40], maxlen[24], attempts[24];
    hb_tmpl_fields_t f;
    hb_msg_tmpl_fields(m, &f);
    size_t klen = hb_template_expand(m->redis_stream_tmpl, HB_TMPL_REDIS_KEY, &f, key, sizeof(key));
    hb_format_rfc3339(m->received_at_ms, ts, sizeof(ts));
    int intercom = hb_msg_is_intercom(m);
    /* XADD key MAXLEN ~ n *, up to 8 field-value pairs, and the headers */
    const char *argv[24 + 2 * HB_SINK_MAX_HEADERS];
    size_t lens[24 + 2 * HB_SINK_MAX_HEADERS];
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
    /* the Intercom route keeps the fields it always had; app_id is its
     * name for the source */
    STR(intercom ? "app_id" : "source");
    STR(m->app_id ? m->app_id : "");
    if (!intercom) {
        STR("route");
        STR(m->route);
        if (m->delivery_attempts >= 0) {
            snprintf(attempts, sizeof(attempts), "%" PRId64, m->delivery_attempts);
            STR("delivery_attempts");
            STR(attempts);
        }
    }
    STR("received_at");
    STR(ts);
    for (size_t i = 0; i < m->n_headers && i < HB_SINK_MAX_HEADERS; i++) {
        STR(m->headers[i].name);
        STR(m->headers[i].value);
    }
    if (m->replay) {
        STR("replay");
        STR("1");
    }
    STR("payload");
    ARG((const char *)m->body, m->body_len);
#undef STR
#undef ARG
    if (redisAsyncCommandArgv(r->ac, on_xadd, m, n, argv, lens) != REDIS_OK) {
        hb_sink_done(m, HB_SINK_RETRY, "hiredis refused the command");
        return;
    }
    fifo_push(&r->sent, m);
    r->unconfirmed++;
}

/* End of a pipeline: confirm it when redis.wait_* asks for that. */
static void redis_flush(void *state)
{
    redis_sink_t *r = state;
    if (confirming(r) && r->ready && r->unconfirmed)
        send_confirmation(r);
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
    if (r->rewait_ev)
        event_free(r->rewait_ev);
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
    .flush = redis_flush,
    .close = redis_close,
};
