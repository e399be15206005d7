/* hookbridge: receive webhooks over HTTPS, make each verified one durable,
 * answer at once, publish to the configured sinks.
 *
 * Start-up order: configuration, TLS, the listener (answering 503 until
 * the journal is open), the journal (recovery), the sinks, then the main
 * loop (admin endpoints and signals). Shutdown runs it backwards: stop
 * accepting and answer what is in flight, let the sinks catch up for up to
 * shutdown.grace_ms, close the journal (cursors persisted), exit 0. */
#include "hb/fmacros.h"

#include "hb/admin.h"
#include "hb/allowlist.h"
#include "hb/cli_deadletter.h"
#include "hb/cli_journal.h"
#include "hb/config.h"
#include "hb/dedup.h"
#include "hb/dedup_shared.h"
#include "hb/health.h"
#include "hb/journal.h"
#include "hb/log.h"
#include "hb/route.h"
#include "hb/server.h"
#include "hb/sink.h"
#include "hb/tls.h"
#include "hb/util.h"
#include "hb/verify.h"
#include "hb/version.h"
#ifdef HB_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/ssl.h>

#define C "main"

typedef struct app {
    hb_config_t cfg;
    const char *config_path;
    struct event_base *base;
    hb_tls_t *tls;
    hb_route_t *route;
    hb_server_t *server;
    hb_admin_t *admin;
    hb_journal_t *journal;
    /* The configured sinks, in one order that gives both the journal's
     * cursor names and each sink's cursor index: derived once, so that a
     * sink can never acknowledge another's cursor. */
    const hb_sink_ops_t *sink_ops[HB_JOURNAL_MAX_SINKS];
    hb_sink_t *sinks[HB_JOURNAL_MAX_SINKS];
    size_t n_sink_ops, n_sinks;
    hb_dedup_t *dedup;
    hb_dedup_shared_t *dedup_shared; /* dedup.store = redis */
    char dedup_path[PATH_MAX];
    pthread_t snap_thread;
    pthread_mutex_t snap_lock;
    pthread_cond_t snap_cond;
    int snap_stop, snap_started;
} app_t;

#define DEDUP_SNAPSHOT_MS 5000

/* The dedup set is saved every few seconds off the loops (blocking I/O).
 * A journal segment may only be deleted once a snapshot holds the ids of
 * its records, or a crash would forget them: ids are added when their
 * record's answer is processed, moments after it became durable, so a
 * snapshot covers every record that was durable when the previous
 * snapshot began, and segments after that are retained until then. */
static void *snapshot_main(void *arg)
{
    app_t *app = arg;
    hb_thread_name("hb-snapshot");
    /* ids of records durable now are in the set (rebuilt at open); the
     * journal keeps everything until the first snapshot has them */
    uint64_t covered = hb_journal_durable_seq(app->journal);
    pthread_mutex_lock(&app->snap_lock);
    while (!app->snap_stop) {
        struct timespec ts; /* snap_cond runs on CLOCK_MONOTONIC: a clock step never stalls it */
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += DEDUP_SNAPSHOT_MS / 1000;
        pthread_cond_timedwait(&app->snap_cond, &app->snap_lock, &ts);
        pthread_mutex_unlock(&app->snap_lock);
        uint64_t next = hb_journal_durable_seq(app->journal);
        if (hb_dedup_save(app->dedup, app->dedup_path) < 0) {
            hb_warn(C, "cannot save %s: %s (journal segments are kept until it works)",
                    app->dedup_path, strerror(errno));
        } else {
            hb_journal_retain_after(app->journal, covered);
            covered = next;
        }
        pthread_mutex_lock(&app->snap_lock);
    }
    pthread_mutex_unlock(&app->snap_lock);
    return NULL;
}

/* The journal's ids, each in its route's id space as route.c adds them. */
static void dedup_from_journal(const hb_record_t *r, void *arg)
{
    app_t *app = arg;
    char buf[256], *heap;
    size_t len;
    if (!r->id)
        return;
    const char *key =
        hb_dedup_key(r->route, r->route_len, r->id, r->id_len, buf, sizeof(buf), &heap, &len);
    hb_dedup_add(app->dedup, key, len, r->received_at_ms, r->seq);
    free(heap);
}

/* The allocator the binary runs on (see HB_JEMALLOC in CMakeLists.txt). */
static const char *allocator(void)
{
#ifdef HB_JEMALLOC
    static char name[64];
    const char *v = NULL;
    size_t len = sizeof(v);
    if (mallctl("version", (void *)&v, &len, NULL, 0) == 0 && v) {
        snprintf(name, sizeof(name), "jemalloc %.*s", (int)strcspn(v, "-"), v);
        return name;
    }
    return "jemalloc";
#else
    return "glibc malloc";
#endif
}

static void usage(FILE *out)
{
    fprintf(out, "Usage: hookbridge [-c|--config FILE] [--check-config] [--health] [--version] "
                 "[--help]\n\n"
                 "Receives webhooks over HTTPS (Intercom, and on routes GitHub, Stripe, Shopify,\n"
                 "Slack, Standard Webhooks or any HMAC scheme), verifies each signature, makes\n"
                 "each delivery durable in a local journal, answers 200, and publishes it to\n"
                 "Kafka, Redis Streams and/or a JSON-lines file.\n\n"
                 "  -c, --config FILE   read configuration from FILE (key = value lines)\n"
                 "      --check-config  validate the configuration and exit 0 or 1\n"
                 "      --health        ask the running instance's /healthz on admin.listen\n"
                 "                      (same configuration) and exit 0 if healthy, else 1\n"
                 "      --version       print the version and exit\n"
                 "  -h, --help          print this help and exit\n\n"
                 "       hookbridge journal verify|ls|cat|repair [-c FILE | --dir DIR] [options]\n"
                 "                      read-only views of the journal (journal --help)\n"
                 "       hookbridge journal replay -c FILE --sink NAME [range] [--dry-run]\n"
                 "                      publish records again through the running bridge\n"
                 "       hookbridge dead-letter ls|cat|redrive [-c FILE] [--sink NAME]\n"
                 "                      events a sink rejected for good; redrive journals them\n"
                 "                      again through the running bridge\n\n");
    hb_config_print_help(out);
}

static void on_signal(evutil_socket_t sig, short what, void *arg);

/* SIGHUP: secrets and the TLS pair are read again; anything that fails
 * keeps the old value and says why. Other keys need a restart. */
static void reload(app_t *app)
{
    hb_config_t fresh;
    char err[512];
    if (hb_config_load(&fresh, app->config_path, err, sizeof(err)) < 0) {
        hb_error(C, "SIGHUP: configuration not reloaded: %s", err);
        hb_config_free(&fresh);
        return;
    }
    for (size_t i = 0; i < fresh.n_routes; i++) {
        const hb_route_cfg_t *rc = &fresh.routes[i];
        ssize_t n = hb_route_set_secrets(app->route, rc, err, sizeof(err));
        if (n < 0)
            hb_error(C, "SIGHUP: route %s: secrets not reloaded (keeping the old ones): %s",
                     rc->name, err);
        else if (rc->verify)
            hb_info(C, "SIGHUP: reloaded %zd %s secret(s)", n, rc->name);
    }
    hb_allowlist_t *al = hb_allowlist_load(fresh.intercom_allow_ips, err, sizeof(err));
    if (!al && err[0]) {
        hb_error(C, "SIGHUP: intercom.allow_ips not reloaded (keeping the old list): %s", err);
    } else {
        /* said once it holds (tests wait for this line, then expect it) */
        size_t blocks = hb_allowlist_count(al);
        hb_server_set_allowlist(app->server, al);
        hb_info(C, "SIGHUP: intercom.allow_ips: %zu block(s)%s", blocks,
                al ? "" : " (every source allowed)");
    }
    hb_admin_set_token(app->admin, fresh.admin_token);
    hb_info(C, "SIGHUP: reloaded admin.token (%s)",
            fresh.admin_token[0] ? "set" : "not set: replay and redrive are refused");
    if (hb_tls_reload(app->tls, &fresh, err, sizeof(err)) < 0)
        hb_error(C, "SIGHUP: TLS certificate not reloaded (keeping the old one): %s", err);
    else
        hb_info(C, "SIGHUP: reloaded the TLS certificate and key");
    hb_config_free(&fresh);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    app_t *app = arg;
    if (sig == SIGHUP) {
        reload(app);
        return;
    }
    hb_info(C, "%s: stopping (grace %lld ms)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
            (long long)app->cfg.shutdown_grace_ms);
    event_base_loopbreak(app->base);
}

/* Every sink this build has, in the order their cursors are listed. */
static const struct {
    int bit;
    const hb_sink_ops_t *ops;
} sink_table[] = {
    {HB_SINK_KAFKA, &hb_sink_kafka_ops},
    {HB_SINK_REDIS, &hb_sink_redis_ops},
    {HB_SINK_FILE, &hb_sink_file_ops},
};

static void choose_sinks(app_t *app)
{
    for (size_t i = 0; i < sizeof(sink_table) / sizeof(sink_table[0]); i++)
        if (app->cfg.sinks & sink_table[i].bit)
            app->sink_ops[app->n_sink_ops++] = sink_table[i].ops;
}

static int start_sinks(app_t *app, char *err, size_t errlen)
{
    for (size_t i = 0; i < app->n_sink_ops; i++) {
        /* index i is the journal cursor named sink_ops[i]->name */
        app->sinks[i] = hb_sink_start(app->sink_ops[i], i, &app->cfg, app->journal, err, errlen);
        if (!app->sinks[i])
            return -1;
        app->n_sinks++;
    }
    return 0;
}

static int open_journal(app_t *app, char *err, size_t errlen)
{
    const char *names[HB_JOURNAL_MAX_SINKS];
    for (size_t i = 0; i < app->n_sink_ops; i++)
        names[i] = app->sink_ops[i]->name;
    hb_journal_opts_t o = {
        .dir = app->cfg.journal_dir,
        .max_bytes = (uint64_t)app->cfg.journal_max_bytes,
        .retain_ms = (uint64_t)app->cfg.journal_retain_ms,
        .retain_bytes = (uint64_t)app->cfg.journal_retain_bytes,
        .sinks = names,
        .n_sinks = app->n_sink_ops,
        .on_record = app->dedup ? dedup_from_journal : NULL,
        .on_record_arg = app,
        /* ids rebuilt from the journal are only in memory until the first
         * snapshot: keep their segments until then */
        .retain_all = app->dedup != NULL,
    };
    app->journal = hb_journal_open(&o, err, errlen);
    return app->journal ? 0 : -1;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"check-config", no_argument, NULL, 'k'},
        {"health", no_argument, NULL, 'H'},       {"version", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    app_t app;
    char err[1024];
    int check = 0, health = 0, c, rc = 1;
    memset(&app, 0, sizeof(app));
    if (argc > 1 && strcmp(argv[1], "journal") == 0)
        return hb_cli_journal(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "dead-letter") == 0)
        return hb_cli_dead_letter(argc - 1, argv + 1);
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            app.config_path = optarg;
            break;
        case 'k':
            check = 1;
            break;
        case 'H':
            health = 1;
            break;
        case 'v':
            printf("hookbridge %s (libevent %s, %s, %s)\n", HB_VERSION, event_get_version(),
                   OpenSSL_version(OPENSSL_VERSION), allocator());
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "hookbridge: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (hb_config_load(&app.cfg, app.config_path, err, sizeof(err)) < 0) {
        fprintf(stderr, "hookbridge: configuration error: %s\n", err);
        hb_config_free(&app.cfg);
        return 1;
    }
    if (check) {
        choose_sinks(&app);
        for (size_t i = 0; i < app.n_sink_ops; i++) {
            if (app.sink_ops[i]->check && app.sink_ops[i]->check(&app.cfg, err, sizeof(err)) < 0) {
                fprintf(stderr, "hookbridge: configuration error: %s\n", err);
                hb_config_free(&app.cfg);
                return 1;
            }
        }
        printf("hookbridge: configuration OK\n");
        hb_config_free(&app.cfg);
        return 0;
    }
    if (health) {
        rc = hb_health_check(app.cfg.admin_listen, 2000, err, sizeof(err)) == 0 ? 0 : 1;
        if (rc)
            fprintf(stderr, "hookbridge: unhealthy: %s\n", err);
        hb_config_free(&app.cfg);
        return rc;
    }
    hb_log_level_t level;
    hb_log_parse_level(app.cfg.log_level, &level);
    hb_log_set_level(level);
    hb_log_set_json(strcmp(app.cfg.log_format, "json") == 0);
    hb_log_hook_libevent();
    signal(SIGPIPE, SIG_IGN);
    if (evthread_use_pthreads() < 0) {
        hb_error(C, "libevent threading support unavailable");
        return 1;
    }
    hb_info(C,
            "hookbridge %s starting: sinks=%s ack=%s journal=%s max_bytes=%lld workers=%lld "
            "routes=%zu allocator=%s",
            HB_VERSION, app.cfg.sinks_str, app.cfg.ack_str, app.cfg.journal_dir,
            (long long)app.cfg.journal_max_bytes, (long long)app.cfg.workers, app.cfg.n_routes,
            allocator());
    for (size_t i = 0; i < app.cfg.n_routes; i++) {
        const hb_route_cfg_t *r = &app.cfg.routes[i];
        hb_info(C, "route %s: %s scheme=%s verify=%s secrets=%s max_body=%lld", r->name, r->path,
                r->scheme, r->verify ? "on" : "off", r->secret[0] ? "(set)" : "(none)",
                (long long)r->max_body);
    }

    struct event *sigs[3] = {NULL, NULL, NULL};
    app.base = event_base_new();
    if (!app.base)
        hb_oom("event_base_new");
    app.tls = hb_tls_new(&app.cfg, err, sizeof(err));
    if (!app.tls)
        goto fail;
    if (app.cfg.dedup) {
        app.dedup = hb_dedup_new((uint64_t)app.cfg.dedup_window_ms, (size_t)app.cfg.dedup_max_ids);
        snprintf(app.dedup_path, sizeof(app.dedup_path), "%s/dedup.snapshot", app.cfg.journal_dir);
        if (hb_dedup_load(app.dedup, app.dedup_path) < 0)
            hb_warn(C, "cannot read %s: %s (starting with journal ids only)", app.dedup_path,
                    strerror(errno));
    }
    app.route = hb_route_new(&app.cfg, app.dedup, err, sizeof(err));
    if (!app.route)
        goto fail;
    app.dedup_shared = hb_dedup_shared_new(&app.cfg, err, sizeof(err));
    if (!app.dedup_shared && err[0])
        goto fail;
    hb_route_set_dedup_shared(app.route, app.dedup_shared); /* before the server's loops */
    app.server = hb_server_new(&app.cfg, app.tls, app.route, err, sizeof(err));
    if (!app.server)
        goto fail;
    app.admin = hb_admin_new(app.base, app.cfg.admin_listen, err, sizeof(err));
    if (!app.admin)
        goto fail;
    if (hb_server_start(app.server, err, sizeof(err)) < 0)
        goto fail;
    choose_sinks(&app);
    if (open_journal(&app, err, sizeof(err)) < 0)
        goto fail;
    if (start_sinks(&app, err, sizeof(err)) < 0)
        goto fail;
    if (app.dedup) {
        hb_info(C, "dedup: %zu notification id(s) remembered from before the start",
                hb_dedup_count(app.dedup));
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_mutex_init(&app.snap_lock, NULL);
        pthread_cond_init(&app.snap_cond, &ca);
        pthread_condattr_destroy(&ca);
        app.snap_started = pthread_create(&app.snap_thread, NULL, snapshot_main, &app) == 0;
    }
    hb_route_set_journal(app.route, app.journal);
    hb_admin_set_journal(app.admin, app.journal);
    hb_admin_set_sinks(app.admin, app.sinks, app.n_sinks);
    hb_admin_set_token(app.admin, app.cfg.admin_token);

    int signums[3] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; i++) {
        sigs[i] = evsignal_new(app.base, signums[i], on_signal, &app);
        event_add(sigs[i], NULL);
    }
    for (size_t i = 0; i < app.cfg.n_routes; i++)
        hb_info(C, "ready: POST https://%s%s (route %s)", app.cfg.listen, app.cfg.routes[i].path,
                app.cfg.routes[i].name);
    event_base_dispatch(app.base);
    rc = 0;
    goto shutdown;

fail:
    hb_error(C, "cannot start: %s", err);
    rc = 1;
shutdown : {
    uint64_t grace = (uint64_t)app.cfg.shutdown_grace_ms, t0 = hb_mono_ms();
    hb_server_stop(app.server, grace);
    uint64_t spent = hb_mono_ms() - t0;
    for (size_t i = 0; i < app.n_sinks; i++)
        hb_sink_stop(app.sinks[i], grace > spent ? grace - spent : 0);
    if (app.snap_started) {
        pthread_mutex_lock(&app.snap_lock);
        app.snap_stop = 1;
        pthread_cond_signal(&app.snap_cond);
        pthread_mutex_unlock(&app.snap_lock);
        pthread_join(app.snap_thread, NULL); /* saves once more on the way out */
    }
    hb_journal_close(app.journal);
    for (size_t i = 0; i < app.n_sinks; i++)
        hb_sink_free(app.sinks[i]);
    hb_server_free(app.server);
    hb_admin_free(app.admin);
    hb_route_free(app.route);
    hb_dedup_shared_free(app.dedup_shared); /* after the loops (hb_server_free) */
    hb_dedup_free(app.dedup);
    hb_tls_free(app.tls);
    for (int i = 0; i < 3; i++)
        if (sigs[i])
            event_free(sigs[i]);
    event_base_free(app.base);
    if (rc == 0)
        hb_info(C, "stopped");
    hb_config_free(&app.cfg);
    libevent_global_shutdown();
}
    return rc;
}
