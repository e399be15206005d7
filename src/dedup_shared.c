/* The shared dedup store in Redis. See include/hb/dedup_shared.h.
 *
 * One hiredis connection per HTTP thread, on that thread's event_base
 * (hiredis' libevent adapter): nothing blocks and nothing is locked per
 * request. Commands are pipelined and Redis answers them in order, so the
 * commands waiting for a reply form a FIFO whose head is the oldest.
 *
 * Timeouts: hiredis 0.14 has none. A check that is not answered within
 * dedup.redis.timeout_ms is answered NEW by a timer and stays in the FIFO,
 * marked, until its reply (or hiredis' NULL for a lost connection) comes.
 * A connection whose oldest reply is overdue by STUCK_MS is dropped; every
 * lost connection is made again with backoff. No command is sent before
 * the setup replies (AUTH, SELECT, PING) were OK: a GET behind a refused SELECT
 * would read another database.
 *
 * hiredis resolves a host name with a blocking getaddrinfo, so a name is
 * resolved with evdns on the loop, and hiredis is given the address.
 *
 * @locality: see the header; everything below runs on the loop's thread
 * except new/free of both objects. */
#include "hb/fmacros.h"

#include "hb/dedup_shared.h"
#include "hb/log.h"
#include "hb/metrics.h"
#include "hb/redis_url.h"
#include "hb/util.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#define C "dedup.redis"
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define STUCK_MS 5000       /* oldest reply overdue: the connection is dropped */
#define MAX_IN_FLIGHT 10000 /* commands waiting for a reply, per connection */

struct hb_dedup_shared {
    hb_redis_url_t url;
    const char *prefix; /* the config's */
    char replica[320];  /* the value of a claim: who took the id */
    uint64_t window_ms, timeout_ms;
};

/* A command waiting for its reply. cb NULL: a claim. */
typedef struct entry {
    struct entry *next;
    hb_dedup_shared_cb cb;
    void *arg;
    uint64_t sent_ms;
    int answered; /* a check answered already (timed out) */
} entry_t;

struct hb_dedup_shared_loop {
    hb_dedup_shared_t *s;
    struct event_base *base;
    struct evdns_base *dns; /* only for a host name */
    struct evdns_getaddrinfo_request *resolving;
    redisAsyncContext *ac;
    int ready;      /* connected and every setup reply was OK */
    int setup_left; /* setup replies still to come */
    int closing;    /* being freed: checks are CANCELLED */
    int down;       /* an outage was logged; its end is logged once */
    entry_t *head, **tail;
    size_t in_flight;
    struct event *timeout_ev, *reconnect_ev;
    int backoff_ms;
    uint64_t setup_ms; /* when connecting began: the setup's deadline counts from it */
};

static void schedule_reconnect(hb_dedup_shared_loop_t *l);

/* on_timeout just after the setup's deadline (a fresh connection has no
 * check waiting, so the timer is free). */
static void arm_setup_deadline(hb_dedup_shared_loop_t *l, uint64_t now)
{
    uint64_t due = l->setup_ms + STUCK_MS + l->s->timeout_ms + 1;
    struct timeval tv = hb_ms_timeval((int64_t)(due > now ? due - now : 0));
    evtimer_add(l->timeout_ev, &tv);
}

static void went_down(hb_dedup_shared_loop_t *l, const char *what, const char *why)
{
    l->ready = 0;
    if (!l->down)
        hb_warn(C,
                "%s Redis at %s:%d%s%s; deduplicating with the local set alone until it "
                "answers again",
                what, l->s->url.host, l->s->url.port, why ? ": " : "", why ? why : "");
    l->down = 1;
}

static void push(hb_dedup_shared_loop_t *l, entry_t *e)
{
    e->next = NULL;
    *l->tail = e;
    l->tail = &e->next;
    l->in_flight++;
}

/* Replies come in send order: e, when still queued, is the head. */
static void pop(hb_dedup_shared_loop_t *l, entry_t *e)
{
    if (l->head != e)
        return;
    l->head = e->next;
    if (!l->head)
        l->tail = &l->head;
    l->in_flight--;
}

static void answer(entry_t *e, hb_dedup_shared_verdict_t v, const char *owner)
{
    e->answered = 1;
    e->cb(v, owner, e->arg);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    hb_dedup_shared_loop_t *l = ac->data;
    redisReply *rep = reply;
    entry_t *e = privdata;
    pop(l, e);
    if (!e->cb) { /* a claim */
        if (rep && rep->type == REDIS_REPLY_STATUS)
            hb_metrics_dedup_shared(HB_SHARED_CLAIMED);
        else if (rep && rep->type == REDIS_REPLY_NIL)
            hb_metrics_dedup_shared(HB_SHARED_CLAIM_TAKEN);
        else if (!l->closing)
            hb_metrics_dedup_shared(HB_SHARED_CLAIM_UNAVAILABLE);
        if (rep && rep->type == REDIS_REPLY_ERROR)
            hb_log_limited(HB_LOG_WARN, C, "claim", "Redis refused a claim: %s", rep->str);
    } else if (!e->answered) {
        if (!rep && l->closing) {
            answer(e, HB_DEDUP_SHARED_CANCELLED, NULL);
        } else if (rep && rep->type == REDIS_REPLY_STRING) {
            char owner[128];
            hb_metrics_dedup_shared(HB_SHARED_HIT);
            snprintf(owner, sizeof(owner), "%.*s", (int)(rep->len < 100 ? rep->len : 100),
                     rep->str);
            answer(e, HB_DEDUP_SHARED_DUPLICATE, owner);
        } else if (rep && rep->type == REDIS_REPLY_NIL) {
            answer(e, HB_DEDUP_SHARED_NEW, NULL);
        } else {
            if (rep && rep->type == REDIS_REPLY_ERROR)
                hb_log_limited(HB_LOG_WARN, C, "check", "Redis refused a check: %s", rep->str);
            hb_metrics_dedup_shared(HB_SHARED_CHECK_UNAVAILABLE);
            answer(e, HB_DEDUP_SHARED_NEW, NULL);
        }
    }
    free(e);
}

/* Answer the checks past their deadline; drop a connection whose oldest
 * reply is long overdue. Re-armed for the next check still waiting. */
static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hb_dedup_shared_loop_t *l = arg;
    uint64_t now = hb_mono_ms(), t = l->s->timeout_ms;
    entry_t *next_wait = NULL;
    for (entry_t *e = l->head; e; e = e->next) {
        if (!e->cb || e->answered)
            continue;
        if (now - e->sent_ms < t) {
            next_wait = e;
            break;
        }
        hb_log_limited(HB_LOG_WARN, C, "late",
                       "no answer from Redis within %" PRIu64
                       " ms (dedup.redis.timeout_ms): the local set alone decides",
                       t);
        hb_metrics_dedup_shared(HB_SHARED_CHECK_UNAVAILABLE);
        answer(e, HB_DEDUP_SHARED_NEW, NULL);
    }
    /* a connect or setup (AUTH, SELECT, PING) unanswered: no check runs
     * on that connection, so nothing else would ever replace it */
    int setup_late = !l->ready && l->setup_left > 0 && now - l->setup_ms > STUCK_MS + t;
    if (l->ac && ((l->head && now - l->head->sent_ms > STUCK_MS + t) || setup_late)) {
        redisAsyncContext *ac = l->ac;
        went_down(l, "no reply from", "dropping the connection");
        redisAsyncFree(ac); /* waiting commands get NULL, then on_disconnect */
        if (l->ac == ac) {  /* not connected yet: no disconnect callback */
            l->ac = NULL;
            schedule_reconnect(l);
        }
        return;
    }
    if (next_wait) {
        struct timeval tv = hb_ms_timeval((int64_t)(next_wait->sent_ms + t - now));
        evtimer_add(l->timeout_ev, &tv);
    } else if (l->ac && l->head) {
        /* replies still owed (claims, checks answered by their deadline):
         * come back when the oldest is overdue, even if no new check is
         * sent meanwhile (none is once MAX_IN_FLIGHT commands wait) */
        struct timeval tv = hb_ms_timeval((int64_t)(l->head->sent_ms + STUCK_MS + t + 1 - now));
        evtimer_add(l->timeout_ev, &tv);
    } else if (l->ac && !l->ready && l->setup_left > 0) {
        arm_setup_deadline(l, now);
    }
}

static void setup_done(hb_dedup_shared_loop_t *l)
{
    /* the setup deadline, if armed: the next check arms its own */
    evtimer_del(l->timeout_ev);
    l->ready = 1;
    l->backoff_ms = 0;
    if (l->down)
        hb_info(C, "shared dedup store at %s:%d is back", l->s->url.host, l->s->url.port);
    else
        hb_debug(C, "connected to the shared dedup store at %s:%d", l->s->url.host, l->s->url.port);
    l->down = 0;
}

static void on_setup_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    hb_dedup_shared_loop_t *l = ac->data;
    redisReply *rep = reply;
    if (!rep)
        return; /* the connection is going: on_disconnect reports it */
    if (rep->type == REDIS_REPLY_ERROR) {
        went_down(l, "refused by", rep->str);
        l->setup_left = -1; /* never ready on this connection */
        redisAsyncDisconnect(ac);
        return;
    }
    (void)privdata;
    if (l->setup_left > 0 && --l->setup_left == 0)
        setup_done(l);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    hb_dedup_shared_loop_t *l = ac->data;
    if (status != REDIS_OK) {
        went_down(l, "cannot connect to", ac->errstr);
        l->ac = NULL; /* hiredis frees it after this callback */
        schedule_reconnect(l);
        return;
    }
    if (l->setup_left == 0)
        setup_done(l);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    hb_dedup_shared_loop_t *l = ac->data;
    l->ac = NULL;
    if (l->closing)
        return;
    went_down(l, "lost the connection to", status == REDIS_OK ? NULL : ac->errstr);
    schedule_reconnect(l);
}

static void connect_addr(hb_dedup_shared_loop_t *l, const char *addr)
{
    const hb_redis_url_t *u = &l->s->url;
    redisAsyncContext *ac = redisAsyncConnect(addr, u->port);
    if (!ac || ac->err) {
        went_down(l, "cannot connect to", ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        schedule_reconnect(l);
        return;
    }
    ac->data = l;
    redisLibeventAttach(ac, l->base);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    l->ac = ac;
    l->ready = 0;
    l->setup_left = 0;
    if (u->password) {
        int rc = u->user ? redisAsyncCommand(ac, on_setup_reply, NULL, "AUTH %s %s", u->user,
                                             u->password)
                         : redisAsyncCommand(ac, on_setup_reply, NULL, "AUTH %s", u->password);
        l->setup_left += rc == REDIS_OK;
    }
    if (u->db)
        l->setup_left +=
            redisAsyncCommand(ac, on_setup_reply, NULL, "SELECT %d", u->db) == REDIS_OK;
    /* a reply, not the TCP connect, says Redis is there: a proxy with no
     * Redis behind it (or Redis at maxclients) accepts, then closes, and
     * taken as working it would reset the backoff on every connection */
    l->setup_left += redisAsyncCommand(ac, on_setup_reply, NULL, "PING") == REDIS_OK;
    l->setup_ms = hb_mono_ms();
    if (l->setup_left > 0)
        arm_setup_deadline(l, l->setup_ms);
}

static void on_resolved(int err, struct evutil_addrinfo *ai, void *arg)
{
    hb_dedup_shared_loop_t *l = arg;
    l->resolving = NULL;
    if (err == EVUTIL_EAI_CANCEL)
        return; /* being freed */
    if (err || !ai) {
        went_down(l, "cannot resolve the host of", evutil_gai_strerror(err));
        schedule_reconnect(l);
        return;
    }
    /* an IPv4 address first: a name like localhost also has ::1, where a
     * Redis bound to 127.0.0.1 is not (hiredis itself would try each) */
    const struct evutil_addrinfo *pick = ai;
    for (const struct evutil_addrinfo *p = ai; p; p = p->ai_next)
        if (p->ai_family == AF_INET) {
            pick = p;
            break;
        }
    char addr[INET6_ADDRSTRLEN];
    const void *in = pick->ai_family == AF_INET6
                         ? (const void *)&((struct sockaddr_in6 *)pick->ai_addr)->sin6_addr
                         : (const void *)&((struct sockaddr_in *)pick->ai_addr)->sin_addr;
    evutil_inet_ntop(pick->ai_family, in, addr, sizeof(addr));
    evutil_freeaddrinfo(ai);
    connect_addr(l, addr);
}

static void on_reconnect(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hb_dedup_shared_loop_t *l = arg;
    if (l->ac || l->resolving)
        return;
    if (!l->dns) {
        connect_addr(l, l->s->url.host);
        return;
    }
    struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    l->resolving = evdns_getaddrinfo(l->dns, l->s->url.host, NULL, &hints, on_resolved, l);
}

static void schedule_reconnect(hb_dedup_shared_loop_t *l)
{
    l->ready = 0;
    if (l->closing)
        return;
    l->backoff_ms = hb_backoff_next(l->backoff_ms, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
    struct timeval tv = hb_ms_timeval(l->backoff_ms);
    evtimer_add(l->reconnect_ev, &tv);
}

static int numeric_host(const char *h)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, h, buf) == 1 || inet_pton(AF_INET6, h, buf) == 1;
}

hb_dedup_shared_t *hb_dedup_shared_new(const hb_config_t *cfg, char *err, size_t errlen)
{
    if (errlen)
        err[0] = '\0';
    if (!cfg->dedup || strcmp(cfg->dedup_store, "redis") != 0)
        return NULL;
    hb_dedup_shared_t *s = hb_calloc(1, sizeof(*s));
    const char *url = cfg->dedup_redis_url[0] ? cfg->dedup_redis_url : cfg->redis_url;
    if (hb_redis_url_parse(&s->url, url, "dedup.redis.url", err, errlen) < 0) {
        hb_dedup_shared_free(s);
        return NULL;
    }
    s->prefix = cfg->dedup_redis_prefix;
    s->window_ms = (uint64_t)cfg->dedup_window_ms;
    s->timeout_ms = (uint64_t)cfg->dedup_redis_timeout_ms;
    /* diagnostic only: which replica took an id */
    char host[256] = "?";
    gethostname(host, sizeof(host) - 1);
    snprintf(s->replica, sizeof(s->replica), "%s/%s", host, cfg->listen);
    hb_info(C,
            "shared dedup store: Redis at %s:%d db %d, keys %s<route>:<id>, answer within %" PRIu64
            " ms or the local set alone decides",
            s->url.host, s->url.port, s->url.db, s->prefix, s->timeout_ms);
    return s;
}

void hb_dedup_shared_free(hb_dedup_shared_t *s)
{
    if (!s)
        return;
    hb_redis_url_clear(&s->url);
    free(s);
}

hb_dedup_shared_loop_t *hb_dedup_shared_loop_new(hb_dedup_shared_t *s, struct event_base *base)
{
    if (!s)
        return NULL;
    hb_dedup_shared_loop_t *l = hb_calloc(1, sizeof(*l));
    l->s = s;
    l->base = base;
    l->tail = &l->head;
    l->timeout_ev = evtimer_new(base, on_timeout, l);
    l->reconnect_ev = evtimer_new(base, on_reconnect, l);
    if (!l->timeout_ev || !l->reconnect_ev)
        hb_oom("evtimer_new");
    /* reads resolv.conf and hosts now, on the main thread at start-up */
    if (!numeric_host(s->url.host) &&
        !(l->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                            EVDNS_BASE_DISABLE_WHEN_INACTIVE)))
        hb_oom("evdns_base_new");
    struct timeval now = {0, 0};
    evtimer_add(l->reconnect_ev, &now); /* connect on the loop's own thread */
    return l;
}

void hb_dedup_shared_loop_free(hb_dedup_shared_loop_t *l)
{
    if (!l)
        return;
    l->closing = 1;
    if (l->resolving)
        evdns_getaddrinfo_cancel(l->resolving);
    if (l->ac) {
        redisAsyncContext *ac = l->ac;
        redisAsyncFree(ac); /* waiting checks are CANCELLED by on_reply */
        l->ac = NULL;
    }
    /* a check that timed out already has no reply to wait for now */
    for (entry_t *e = l->head, *next; e; e = next) {
        next = e->next;
        free(e);
    }
    if (l->dns)
        evdns_base_free(l->dns, 0);
    event_free(l->timeout_ev);
    event_free(l->reconnect_ev);
    free(l);
}

/* Queue one command for e; -1 when hiredis would not take it. */
static int send_cmd(hb_dedup_shared_loop_t *l, entry_t *e, const char *route, const char *id,
                    size_t id_len)
{
    const hb_dedup_shared_t *s = l->s;
    int rc =
        e->cb ? redisAsyncCommand(l->ac, on_reply, e, "GET %s%s:%b", s->prefix, route, id, id_len)
              : redisAsyncCommand(l->ac, on_reply, e, "SET %s%s:%b %s NX PX %llu", s->prefix, route,
                                  id, id_len, s->replica, (unsigned long long)s->window_ms);
    if (rc != REDIS_OK)
        return -1;
    e->sent_ms = hb_mono_ms();
    push(l, e);
    return 0;
}

int hb_dedup_shared_check(hb_dedup_shared_loop_t *l, const char *route, const char *id,
                          size_t id_len, hb_dedup_shared_cb cb, void *arg)
{
    hb_metrics_dedup_shared(HB_SHARED_CHECKED);
    entry_t *e = NULL;
    if (l->ready && l->ac && l->in_flight < MAX_IN_FLIGHT) {
        e = hb_calloc(1, sizeof(*e));
        e->cb = cb;
        e->arg = arg;
        if (send_cmd(l, e, route, id, id_len) < 0) {
            free(e);
            e = NULL;
        }
    }
    if (!e) {
        hb_metrics_dedup_shared(HB_SHARED_CHECK_UNAVAILABLE);
        return -1;
    }
    if (!evtimer_pending(l->timeout_ev, NULL)) {
        struct timeval tv = hb_ms_timeval((int64_t)l->s->timeout_ms);
        evtimer_add(l->timeout_ev, &tv);
    }
    return 0;
}

void hb_dedup_shared_claim(hb_dedup_shared_loop_t *l, const char *route, const char *id,
                           size_t id_len)
{
    if (l->ready && l->ac && l->in_flight < MAX_IN_FLIGHT) {
        entry_t *e = hb_calloc(1, sizeof(*e));
        if (send_cmd(l, e, route, id, id_len) == 0)
            return;
        free(e);
    }
    hb_metrics_dedup_shared(HB_SHARED_CLAIM_UNAVAILABLE);
}
