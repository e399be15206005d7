/* Admin endpoints. See include/hb/admin.h.
 *
 * /readyz is what a load balancer acts on: 503 with the reason while the
 * journal is not open, full or failing, or while any sink cannot publish.
 * /readyz/accepting asks only whether deliveries are being accepted (the
 * journal): a sink outage is what the journal is for, and a readiness
 * probe on /readyz would take every replica out of service while Kafka is
 * down, failing deliveries that the journals have room for. The sinks'
 * states are still listed in its body.
 *
 * /journal/... changes what the sinks publish, and the listener is often
 * reachable from outside (the image binds it on all interfaces for health
 * checks): it asks for admin.token as a bearer token, compared in constant
 * time, and answers 403 while no token is configured. */
#include "hb/fmacros.h"

#include "hb/admin.h"
#include "hb/event.h"
#include "hb/log.h"
#include "hb/metrics.h"
#include "hb/record.h"
#include "hb/server.h"
#include "hb/sink.h"
#include "hb/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

struct hb_admin {
    struct event_base *base;
    struct evhttp *http;
    hb_journal_t *journal;
    hb_sink_t *sinks[HB_JOURNAL_MAX_SINKS];
    size_t n_sinks;
    char *token; /* "" = the endpoints that change state are refused */
};

static void send_text(struct evhttp_request *req, int code, const char *reason, const char *ctype,
                      struct evbuffer *b)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
    evhttp_send_reply(req, code, reason, b);
}

static void readyz(hb_admin_t *a, struct evhttp_request *req, struct evbuffer *b, int sinks_count)
{
    char why[256];
    int ok = 1;
    if (!a->journal) {
        evbuffer_add_printf(b, "journal: not open yet\n");
        ok = 0;
    } else if (hb_journal_full(a->journal)) {
        evbuffer_add_printf(b, "journal: full (%llu of %llu bytes); new deliveries get 503\n",
                            (unsigned long long)hb_journal_bytes(a->journal),
                            (unsigned long long)hb_journal_max_bytes(a->journal));
        ok = 0;
    } else if (hb_journal_failed(a->journal)) {
        evbuffer_add_printf(b, "journal: writes failing (see log)\n");
        ok = 0;
    }
    for (size_t i = 0; i < a->n_sinks; i++) {
        if (!hb_sink_ready(a->sinks[i], why, sizeof(why))) {
            evbuffer_add_printf(b, "sink %s: %s%s\n", hb_sink_name(a->sinks[i]), why,
                                sinks_count ? "" : " (deliveries are journaled meanwhile)");
            if (sinks_count)
                ok = 0;
        }
    }
    if (ok)
        evbuffer_add_printf(b, "ready\n");
    send_text(req, ok ? 200 : 503, ok ? "OK" : "Service Unavailable", "text/plain", b);
}

static void send_json(struct evhttp_request *req, int code, const char *reason, struct evbuffer *b,
                      json_t *obj)
{
    char *text = json_dumps(obj, JSON_COMPACT);
    if (!text)
        hb_oom("json_dumps");
    evbuffer_add_printf(b, "%s\n", text);
    free(text);
    json_decref(obj);
    send_text(req, code, reason, "application/json", b);
}

static void send_error(struct evhttp_request *req, int code, const char *reason, struct evbuffer *b,
                       const char *msg)
{
    send_json(req, code, reason, b, json_pack("{s:s}", "error", msg));
}

/* 1 when the request carries the token; else the answer is sent. */
static int authorized(hb_admin_t *a, struct evhttp_request *req, struct evbuffer *b)
{
    if (!a->token[0]) {
        send_error(req, 403, "Forbidden", b,
                   "admin.token is not set: this endpoint changes state and is refused "
                   "without a token");
        return 0;
    }
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    const char *given = h && strncmp(h, "Bearer ", 7) == 0 ? h + 7 : NULL;
    size_t want_len = strlen(a->token);
    unsigned diff = !given || strlen(given) != want_len;
    for (size_t i = 0; given && !diff && i < want_len; i++)
        diff |= (unsigned)(given[i] ^ a->token[i]);
    if (diff) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                          "Bearer realm=\"hookbridge\"");
        send_error(req, 401, "Unauthorized", b,
                   given ? "wrong bearer token" : "missing Authorization: Bearer <admin.token>");
        return 0;
    }
    return 1;
}

static hb_sink_t *find_sink(hb_admin_t *a, const char *name)
{
    for (size_t i = 0; name && i < a->n_sinks; i++)
        if (strcmp(hb_sink_name(a->sinks[i]), name) == 0)
            return a->sinks[i];
    return NULL;
}

static int query_u64(const struct evkeyvalq *q, const char *key, uint64_t *out)
{
    const char *v = evhttp_find_header(q, key);
    if (!v)
        return 0;
    char *end;
    if (!*v || *v == '-')
        return -1;
    *out = strtoull(v, &end, 10);
    return *end ? -1 : 0;
}

static json_t *replay_json(hb_sink_t *s)
{
    hb_replay_status_t st;
    hb_sink_replay_status(s, &st);
    return json_pack(
        "{s:s,s:b,s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s}", "sink", hb_sink_name(s), "running",
        st.running, "dry_run", st.dry_run, "first_seq", (json_int_t)st.first_seq, "last_seq",
        (json_int_t)st.last_seq, "first_read_seq", (json_int_t)st.first_read_seq, "scanned_seq",
        (json_int_t)st.scanned_seq, "matched", (json_int_t)st.matched, "published",
        (json_int_t)st.published, "rejected", (json_int_t)st.rejected, "started_ms",
        (json_int_t)st.started_ms, "finished_ms", (json_int_t)st.finished_ms, "error", st.error);
}

/* POST /journal/replay?sink=NAME[&from=SEQ&to=SEQ&since_ms=&until_ms=
 * &topic=GLOB&source=ID&route=NAME&dry_run=1] starts a replay (202 + its status);
 * GET /journal/replay?sink=NAME reports it. */
static void journal_replay(hb_admin_t *a, struct evhttp_request *req, const char *query,
                           struct evbuffer *b)
{
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (cmd != EVHTTP_REQ_POST && cmd != EVHTTP_REQ_GET) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, POST");
        send_error(req, 405, "Method Not Allowed", b, "GET or POST");
        return;
    }
    struct evkeyvalq q;
    if (evhttp_parse_query_str(query ? query : "", &q) != 0) {
        send_error(req, 400, "Bad Request", b, "cannot parse the query string");
        return;
    }
    hb_sink_t *s = find_sink(a, evhttp_find_header(&q, "sink"));
    hb_replay_filter_t f;
    memset(&f, 0, sizeof(f));
    f.to_seq = f.until_ms = UINT64_MAX;
    const char *topic = evhttp_find_header(&q, "topic"), *source = evhttp_find_header(&q, "source");
    const char *dry = evhttp_find_header(&q, "dry_run"), *route = evhttp_find_header(&q, "route");
    char err[512];
    if (!s) {
        send_error(req, 404, "Not Found", b, "sink=NAME: not a configured sink");
    } else if (cmd == EVHTTP_REQ_GET) {
        send_json(req, 200, "OK", b, replay_json(s));
    } else if (query_u64(&q, "from", &f.from_seq) < 0 || query_u64(&q, "to", &f.to_seq) < 0 ||
               query_u64(&q, "since_ms", &f.since_ms) < 0 ||
               query_u64(&q, "until_ms", &f.until_ms) < 0 ||
               (topic && strlen(topic) >= sizeof(f.topic_glob)) ||
               (source && strlen(source) >= sizeof(f.source)) ||
               (route && strlen(route) >= sizeof(f.route))) {
        send_error(req, 400, "Bad Request", b,
                   "from, to, since_ms, until_ms are unsigned numbers; topic, source and route "
                   "shorter than 256 bytes");
    } else {
        snprintf(f.topic_glob, sizeof(f.topic_glob), "%s", topic ? topic : "");
        snprintf(f.source, sizeof(f.source), "%s", source ? source : "");
        snprintf(f.route, sizeof(f.route), "%s", route ? route : "");
        f.dry_run = dry && strcmp(dry, "0") != 0;
        if (hb_sink_replay(s, &f, err, sizeof(err)) < 0) {
            send_error(req, 409, "Conflict", b, err);
        } else {
            hb_info("admin", "replay to %s started: records %" PRIu64 "..%s%s%s%s%s%s",
                    hb_sink_name(s), f.from_seq,
                    evhttp_find_header(&q, "to") ? evhttp_find_header(&q, "to") : "cursor",
                    f.topic_glob[0] ? " topic " : "", f.topic_glob, f.source[0] ? " source " : "",
                    f.source, f.dry_run ? " (dry run)" : "");
            send_json(req, 202, "Accepted", b, replay_json(s));
        }
    }
    evhttp_clear_headers(&q);
}

/* One redriven event on its way through the journal writer. */
typedef struct redrive {
    hb_append_t a; /* first: the journal hands back &a */
    hb_journal_t *journal;
    struct evhttp_request *req;
    struct event *ev; /* on the admin base: the writer thread wakes it */
    int gone;         /* the client closed the connection: nobody to answer */
} redrive_t;

static void redrive_conn_closed(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    ((redrive_t *)arg)->gone = 1;
}

static void redrive_answer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    redrive_t *r = arg;
    /* as an HTTP loop does: every record queued has its hand-off counted,
     * or the two histograms' counts part after a redrive */
    hb_journal_handed_off(r->journal, &r->a, hb_mono_us());
    if (!r->gone) {
        evhttp_connection_set_closecb(evhttp_request_get_connection(r->req), NULL, NULL);
        struct evbuffer *b = evbuffer_new();
        if (!b)
            hb_oom("evbuffer");
        if (r->a.err == ENOSPC)
            send_error(r->req, 503, "Service Unavailable", b, "journal full: try again later");
        else if (r->a.err)
            send_error(r->req, 503, "Service Unavailable", b, strerror(r->a.err));
        else
            send_json(r->req, 200, "OK", b, json_pack("{s:I}", "seq", (json_int_t)r->a.seq));
        evbuffer_free(b);
    }
    event_free(r->ev);
    free(r);
}

/* Writer thread: back to the admin loop. */
static void redrive_appended(hb_append_t *a)
{
    event_active(((redrive_t *)a)->ev, EV_READ, 0);
}

/* The fields of another route's dead letter from the redrive query:
 * topic (required), id, source, and each forwarded header as
 * header=NAME:VALUE. Strings point into q. 0, or -1 with why. */
static int redrive_route_fields(const struct evkeyvalq *q, const char *route, int64_t attempts,
                                hb_record_t *rec, hb_record_hdr_t *hdrs, char *why, size_t whylen)
{
    const char *topic = evhttp_find_header(q, "topic"), *id = evhttp_find_header(q, "id");
    const char *source = evhttp_find_header(q, "source");
    if (!topic || !*topic || !*route) {
        snprintf(why, whylen, "a redrive on route %s needs topic=", route);
        return -1;
    }
    rec->route = route;
    rec->route_len = strlen(route);
    rec->topic = topic;
    rec->topic_len = strlen(topic);
    rec->id = id;
    rec->id_len = id ? strlen(id) : 0;
    rec->app_id = source;
    rec->app_id_len = source ? strlen(source) : 0;
    rec->delivery_attempts = attempts ? attempts : -1;
    rec->created_at = -1;
    rec->headers = hdrs;
    rec->n_headers = 0;
    for (const struct evkeyval *kv = q->tqh_first; kv; kv = kv->next.tqe_next) {
        if (strcmp(kv->key, "header") != 0)
            continue;
        const char *colon = strchr(kv->value, ':');
        if (!colon || colon == kv->value || rec->n_headers == HB_SINK_MAX_HEADERS) {
            snprintf(why, whylen, "header=NAME:VALUE, at most %d", HB_SINK_MAX_HEADERS);
            return -1;
        }
        hb_record_hdr_t *h = &hdrs[rec->n_headers++];
        h->name = kv->value;
        h->name_len = (size_t)(colon - kv->value);
        h->value = colon + 1;
        h->value_len = strlen(colon + 1);
    }
    if (rec->route_len > 0xffff) {
        snprintf(why, whylen, "route name too long");
        return -1;
    }
    return 0;
}

/* POST /dead-letter/redrive[?received_at_ms=MS], body = the event as
 * received: journaled again like a delivery (the same envelope extraction,
 * no dedup: it was seen before), then published by every sink. The answer
 * (its sequence number) comes once the record is durable. */
static void dead_letter_redrive(hb_admin_t *a, struct evhttp_request *req, const char *query,
                                struct evbuffer *b)
{
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
        send_error(req, 405, "Method Not Allowed", b, "POST the event as the body");
        return;
    }
    if (!a->journal) {
        send_error(req, 503, "Service Unavailable", b, "journal not open yet");
        return;
    }
    struct evkeyvalq q;
    uint64_t received_at = 0, attempts = 0;
    if (evhttp_parse_query_str(query ? query : "", &q) != 0 ||
        query_u64(&q, "received_at_ms", &received_at) < 0 ||
        query_u64(&q, "delivery_attempts", &attempts) < 0) {
        evhttp_clear_headers(&q); /* initialised by the parse, also on failure */
        send_error(req, 400, "Bad Request", b, "received_at_ms and delivery_attempts are numbers");
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = (const char *)evbuffer_pullup(in, -1);
    const char *route = evhttp_find_header(&q, "route");
    hb_envelope_t env;
    memset(&env, 0, sizeof(env));
    hb_record_hdr_t hdrs[HB_SINK_MAX_HEADERS];
    char why[256];
    hb_record_t rec = {
        .received_at_ms = received_at ? received_at : hb_now_ms(),
        .body = (const unsigned char *)body,
        .body_len = len,
    };
    if (route && strcmp(route, HB_RECORD_DEFAULT_ROUTE) != 0) {
        /* another route's event: its id, topic and source came from the
         * provider's headers or were found by its scheme, so the dead letter
         * line carries them and the body is taken as it is */
        if (redrive_route_fields(&q, route, (int64_t)attempts, &rec, hdrs, why, sizeof(why)) < 0) {
            evhttp_clear_headers(&q);
            send_error(req, 400, "Bad Request", b, why);
            return;
        }
    } else if (!body || hb_envelope_parse(body, len, &env, why, sizeof(why)) < 0) {
        evhttp_clear_headers(&q);
        send_error(req, 400, "Bad Request", b, body ? why : "empty body");
        return;
    } else {
        rec.delivery_attempts = env.delivery_attempts;
        rec.created_at = env.created_at;
        rec.topic = env.topic;
        rec.topic_len = env.topic_len;
        rec.app_id = env.app_id;
        rec.app_id_len = env.app_id_len;
        rec.id = env.id;
        rec.id_len = env.id_len;
    }
    if (rec.topic_len > 0xffff || rec.app_id_len > 0xffff || rec.id_len > 0xffff ||
        len > HB_RECORD_MAX_PAYLOAD / 2) {
        hb_envelope_clear(&env);
        evhttp_clear_headers(&q);
        send_error(req, 400, "Bad Request", b, "event too large for a journal record");
        return;
    }
    size_t size = hb_record_size(&rec);
    redrive_t *r = hb_calloc(1, sizeof(*r) + size);
    r->a.buf = (unsigned char *)(r + 1);
    r->a.len = hb_record_prepare(&rec, r->a.buf);
    r->a.stage = HB_STAGE_DURABLE;
    r->a.done = redrive_appended;
    r->journal = a->journal;
    r->req = req;
    r->ev = event_new(a->base, -1, 0, redrive_answer, r);
    if (!r->ev)
        hb_oom("event_new");
    evhttp_connection_set_closecb(evhttp_request_get_connection(req), redrive_conn_closed, r);
    hb_info("admin", "dead letter redriven: route %s, topic %.*s, id %.*s",
            route ? route : HB_RECORD_DEFAULT_ROUTE, (int)rec.topic_len, rec.topic,
            rec.id ? (int)rec.id_len : 1, rec.id ? rec.id : "-");
    hb_envelope_clear(&env);
    evhttp_clear_headers(&q);
    hb_journal_append(a->journal, &r->a);
}

/* GET /journal/published: the lowest sink cursor (every record up to it is
 * published or dead-lettered by every sink) and the durable end. */
static void journal_published(hb_admin_t *a, struct evhttp_request *req, struct evbuffer *b)
{
    if (!a->journal) {
        send_error(req, 503, "Service Unavailable", b, "journal not open yet");
        return;
    }
    send_json(req, 200, "OK", b,
              json_pack("{s:I,s:I}", "min_cursor", (json_int_t)hb_journal_min_cursor(a->journal),
                        "durable_seq", (json_int_t)hb_journal_durable_seq(a->journal)));
}

static void handle(struct evhttp_request *req, void *arg)
{
    hb_admin_t *a = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : "";
    struct evbuffer *b = evbuffer_new();
    if (!b)
        hb_oom("evbuffer");
    if (!path)
        path = "";
    if (strcmp(path, "/healthz") == 0) {
        evbuffer_add_printf(b, "ok\n");
        send_text(req, 200, "OK", "text/plain", b);
    } else if (strcmp(path, "/readyz") == 0) {
        readyz(a, req, b, 1);
    } else if (strcmp(path, "/readyz/accepting") == 0) {
        readyz(a, req, b, 0);
    } else if (strcmp(path, "/metrics") == 0) {
        const hb_sink_counters_t *c[HB_JOURNAL_MAX_SINKS];
        for (size_t i = 0; i < a->n_sinks; i++)
            c[i] = hb_sink_counters(a->sinks[i]);
        hb_metrics_render(b, a->journal, c, a->n_sinks);
        send_text(req, 200, "OK", "text/plain; version=0.0.4", b);
    } else if (strcmp(path, "/journal/replay") == 0) {
        if (authorized(a, req, b))
            journal_replay(a, req, uri ? evhttp_uri_get_query(uri) : NULL, b);
    } else if (strcmp(path, "/journal/published") == 0) {
        if (authorized(a, req, b))
            journal_published(a, req, b);
    } else if (strcmp(path, "/dead-letter/redrive") == 0) {
        if (authorized(a, req, b))
            dead_letter_redrive(a, req, uri ? evhttp_uri_get_query(uri) : NULL, b);
    } else {
        evbuffer_add_printf(b, "not found: try /healthz, /readyz, /metrics\n");
        send_text(req, 404, "Not Found", "text/plain", b);
    }
    evbuffer_free(b);
}

hb_admin_t *hb_admin_new(struct event_base *base, const char *listen, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    int sslen;
    char host[256];
    if (hb_parse_listen(listen, &ss, &sslen) < 0) {
        snprintf(err, errlen, "admin.listen: '%s' is not a numeric address:port", listen);
        return NULL;
    }
    const char *colon = strrchr(listen, ':');
    snprintf(host, sizeof(host), "%.*s", (int)(colon - listen), listen);
    if (host[0] == '[') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    hb_admin_t *a = hb_calloc(1, sizeof(*a));
    a->token = hb_strdup("");
    a->base = base;
    a->http = evhttp_new(base);
    if (!a->http)
        hb_oom("evhttp_new");
    evhttp_set_gencb(a->http, handle, a);
    evhttp_set_timeout(a->http, 10);
    /* a redriven event is one journal record */
    evhttp_set_max_body_size(a->http, HB_RECORD_MAX_PAYLOAD / 2);
    if (evhttp_bind_socket(a->http, host, (ev_uint16_t)atoi(colon + 1)) != 0) {
        snprintf(err, errlen, "admin.listen: cannot listen on %s", listen);
        hb_admin_free(a);
        return NULL;
    }
    hb_info("admin", "admin endpoints on http://%s (/healthz /readyz /metrics)", listen);
    return a;
}

void hb_admin_set_token(hb_admin_t *a, const char *token)
{
    free(a->token);
    a->token = hb_strdup(token ? token : "");
}

void hb_admin_set_journal(hb_admin_t *a, hb_journal_t *j)
{
    a->journal = j;
}

void hb_admin_set_sinks(hb_admin_t *a, hb_sink_t *const *sinks, size_t n)
{
    a->n_sinks = n;
    memcpy(a->sinks, sinks, n * sizeof(*sinks));
}

void hb_admin_free(hb_admin_t *a)
{
    if (!a)
        return;
    if (a->http)
        evhttp_free(a->http);
    free(a->token);
    free(a);
}
