/* Admin endpoints. See include/hb/admin.h.
 *
 * /readyz is what a load balancer acts on: 503 with the reason while the
 * journal is not open, full or failing, or while any sink cannot publish. */
#include "hb/fmacros.h"

#include "hb/admin.h"
#include "hb/log.h"
#include "hb/metrics.h"
#include "hb/server.h"
#include "hb/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/http.h>

struct hb_admin {
    struct evhttp *http;
    hb_journal_t *journal;
    hb_sink_t *sinks[HB_JOURNAL_MAX_SINKS];
    size_t n_sinks;
};

static void send_text(struct evhttp_request *req, int code, const char *reason, const char *ctype,
                      struct evbuffer *b)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
    evhttp_send_reply(req, code, reason, b);
}

static void readyz(hb_admin_t *a, struct evhttp_request *req, struct evbuffer *b)
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
            evbuffer_add_printf(b, "sink %s: %s\n", hb_sink_name(a->sinks[i]), why);
            ok = 0;
        }
    }
    if (ok)
        evbuffer_add_printf(b, "ready\n");
    send_text(req, ok ? 200 : 503, ok ? "OK" : "Service Unavailable", "text/plain", b);
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
        readyz(a, req, b);
    } else if (strcmp(path, "/metrics") == 0) {
        const hb_sink_counters_t *c[HB_JOURNAL_MAX_SINKS];
        for (size_t i = 0; i < a->n_sinks; i++)
            c[i] = hb_sink_counters(a->sinks[i]);
        hb_metrics_render(b, a->journal, c, a->n_sinks);
        send_text(req, 200, "OK", "text/plain; version=0.0.4", b);
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
    a->http = evhttp_new(base);
    if (!a->http)
        hb_oom("evhttp_new");
    evhttp_set_gencb(a->http, handle, a);
    evhttp_set_timeout(a->http, 10);
    if (evhttp_bind_socket(a->http, host, (ev_uint16_t)atoi(colon + 1)) != 0) {
        snprintf(err, errlen, "admin.listen: cannot listen on %s", listen);
        hb_admin_free(a);
        return NULL;
    }
    hb_info("admin", "admin endpoints on http://%s (/healthz /readyz /metrics)", listen);
    return a;
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
    free(a);
}
