/* `hookbridge dead-letter ls|cat|redrive`. See include/hb/cli_deadletter.h.
 *
 * The directory is --data-dir, or data.dir of the configuration (read
 * without its start-up checks, as `hookbridge journal` does). Lines are
 * parsed with jansson: this is no hot path, and a line the bridge did not
 * write whole (a crash mid-append) is counted and shown as unreadable
 * rather than skipped in silence. */
#include "hb/fmacros.h"

#include "hb/cli_deadletter.h"
#include "hb/cli_admin.h"
#include "hb/cli_journal.h"
#include "hb/config.h"
#include "hb/log.h"
#include "hb/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <event2/http.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "hookbridge dead-letter"
#define PREFIX "dead-letter."
#define SUFFIX ".jsonl"
#define MAX_REASONS 8

typedef struct reason {
    char *text;
    size_t count;
} reason_t;

static void usage(FILE *out)
{
    fprintf(out, "Usage: hookbridge dead-letter ls|cat [-c FILE | --data-dir DIR] [--sink NAME]\n"
                 "                                     [--format jsonl|raw]\n"
                 "       hookbridge dead-letter redrive [-c FILE] [--sink NAME | --file DUMP]\n"
                 "                                      [--admin HOST:PORT] [--wait SECONDS]\n\n"
                 "Events a sink rejected for good, from <data.dir>/dead-letter.<sink>.jsonl.\n"
                 "  ls       per sink: how many, first and last received_at, the reasons\n"
                 "  cat      the lines as they are (jsonl), or each payload alone (raw)\n"
                 "  redrive  journal the events again through the running bridge (admin.listen,\n"
                 "           Authorization: Bearer admin.token), so every sink publishes them;\n"
                 "           a line leaves its file once its event is published, and what a sink\n"
                 "           rejects again is reported (and dead-lettered again). --file DUMP\n"
                 "           takes the lines of a kcat -J dump of the Kafka dead-letter topic\n"
                 "           (or a dead-letter file kept elsewhere) and rewrites DUMP likewise.\n");
}

/* The sink name of a dead-letter file name, or NULL. */
static const char *sink_of(const char *name, char *out, size_t len)
{
    size_t n = strlen(name), p = strlen(PREFIX), s = strlen(SUFFIX);
    if (n <= p + s || strncmp(name, PREFIX, p) != 0 || strcmp(name + n - s, SUFFIX) != 0 ||
        n - p - s >= len)
        return NULL;
    memcpy(out, name + p, n - p - s);
    out[n - p - s] = '\0';
    return out;
}

/* The payload of a line: the raw body, which the writer puts last. */
static int print_payload(const char *line, size_t len)
{
    const char *key = "\"payload\":";
    const char *p = strstr(line, key);
    if (!p || len < 2 || line[len - 1] != '}')
        return -1;
    p += strlen(key);
    size_t n = (size_t)(line + len - 1 - p);
    return fwrite(p, 1, n, stdout) == n && putchar('\n') != EOF ? 0 : -1;
}

static void add_reason(reason_t *r, size_t *n, const char *text)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp(r[i].text, text) == 0) {
            r[i].count++;
            return;
        }
    }
    if (*n < MAX_REASONS - 1) {
        r[*n].text = hb_strdup(text);
        r[(*n)++].count = 1;
        return;
    }
    if (*n == MAX_REASONS - 1) /* the last slot counts every other reason */
        r[(*n)++].text = hb_strdup("(other reasons)");
    r[MAX_REASONS - 1].count++;
}

/* One file: ls prints a summary, cat the lines. 0 or -1. */
static int one_file(const char *path, const char *sink, int cat, int raw)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *line = NULL, first[40] = "-", last[40] = "-";
    size_t cap = 0, events = 0, bad = 0, nr = 0;
    reason_t reasons[MAX_REASONS] = {{0}};
    ssize_t n;
    int rc = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] == '\n')
            line[--n] = '\0';
        json_t *o = json_loadb(line, (size_t)n, 0, NULL);
        const char *at = o ? json_string_value(json_object_get(o, "received_at")) : NULL;
        const char *err = o ? json_string_value(json_object_get(o, "error")) : NULL;
        if (!at) {
            bad++;
        } else {
            events++;
            if (events == 1)
                snprintf(first, sizeof(first), "%s", at);
            snprintf(last, sizeof(last), "%s", at);
            add_reason(reasons, &nr, err ? err : "(no reason given)");
        }
        json_decref(o);
        if (cat && at && (raw ? print_payload(line, (size_t)n) : printf("%s\n", line)) < 0)
            rc = -1;
    }
    if (ferror(f)) {
        fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
        rc = -1;
    }
    if (cat && bad)
        fprintf(stderr, PROG ": %s: %zu unreadable line(s) not printed\n", path, bad);
    if (!cat) {
        printf("%-12s %8zu  %-24s  %-24s  %s\n", sink, events, first, last, path);
        for (size_t i = 0; i < nr; i++)
            printf("%12s %8zu  %s\n", "", reasons[i].count, reasons[i].text);
        if (bad)
            printf("%12s %8zu  (unreadable lines)\n", "", bad);
    }
    for (size_t i = 0; i < nr; i++)
        free(reasons[i].text);
    free(line);
    fclose(f);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run(const char *dir, const char *only, int cat, int raw)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, PROG ": %s: %s\n", dir, strerror(errno));
        return 1;
    }
    char **names = NULL, sink[128];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!sink_of(e->d_name, sink, sizeof(sink)) || (only && strcmp(sink, only) != 0))
            continue;
        names = hb_realloc(names, (n + 1) * sizeof(*names));
        names[n++] = hb_strdup(e->d_name);
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof(*names), cmp_str);
    int rc = 0;
    if (!cat)
        printf("%-12s %8s  %-24s  %-24s  %s\n", "SINK", "EVENTS", "FIRST_RECEIVED", "LAST_RECEIVED",
               "FILE");
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (one_file(path, sink_of(names[i], sink, sizeof(sink)), cat, raw) < 0)
            rc = 1;
        free(names[i]);
    }
    free(names);
    if (!n)
        fprintf(stderr, PROG ": no dead letters%s%s in %s\n", only ? " for sink " : "",
                only ? only : "", dir);
    return rc;
}

/* ---- redrive ---- */

typedef struct item {
    char *line;       /* as read, without its newline */
    char *id, *topic; /* for the report; NULL when unknown */
    uint64_t seq;     /* journaled again as this record; 0: not */
    char *why;        /* why it was not journaled */
} item_t;

typedef struct redrive {
    hb_admin_client_t ac;
    const char *dir;
    item_t *v;
    size_t n, cap;
    /* the dead-letter files' sizes before: what a sink rejects again is
     * appended after them */
    char **dl_paths;
    off_t *dl_sizes;
    size_t n_dl;
    unsigned wait_s;
} redrive_t;

static char *json_str_dup(json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? hb_strdup(v) : NULL;
}

/* kcat -J puts headers in a flat array: name, value, name, value ... */
static const char *kcat_header(json_t *o, const char *name)
{
    json_t *h = json_object_get(o, "headers");
    for (size_t i = 0; json_is_array(h) && i + 1 < json_array_size(h); i += 2) {
        const char *n = json_string_value(json_array_get(h, i));
        if (n && !strcmp(n, name))
            return json_string_value(json_array_get(h, i + 1));
    }
    return NULL;
}

static void query_add(char **q, const char *key, const char *value)
{
    if (!value)
        return;
    char *enc = evhttp_uriencode(value, -1, 0);
    if (!enc)
        hb_oom("evhttp_uriencode");
    size_t old = *q ? strlen(*q) : 0, need = old + strlen(key) + strlen(enc) + 3;
    *q = hb_realloc(*q, need);
    snprintf(*q + old, need - old, "&%s=%s", key, enc);
    free(enc);
}

static void query_header(char **q, const char *name, const char *value)
{
    char *nv = hb_malloc(strlen(name) + strlen(value) + 2);
    sprintf(nv, "%s:%s", name, value);
    query_add(q, "header", nv);
    free(nv);
}

/* What the redrive query says of an event of a route other than Intercom:
 * its route, topic, id, source and forwarded headers (the bridge found
 * them in the provider's headers, not in the body). NULL for Intercom. */
static char *route_query(json_t *o, int kcat)
{
    char *q = NULL;
    if (!kcat) {
        const char *route = json_string_value(json_object_get(o, "route"));
        if (!route || !strcmp(route, "intercom"))
            return NULL;
        query_add(&q, "route", route);
        query_add(&q, "topic", json_string_value(json_object_get(o, "topic")));
        query_add(&q, "id", json_string_value(json_object_get(o, "id")));
        query_add(&q, "source", json_string_value(json_object_get(o, "source")));
        json_t *n = json_object_get(o, "delivery_attempts");
        if (json_is_integer(n)) {
            char a[24];
            snprintf(a, sizeof(a), "%" JSON_INTEGER_FORMAT, json_integer_value(n));
            query_add(&q, "delivery_attempts", a);
        }
        const char *name;
        json_t *v;
        json_object_foreach(json_object_get(o, "headers"), name, v)
        {
            if (json_is_string(v))
                query_header(&q, name, json_string_value(v));
        }
        return q;
    }
    const char *route = kcat_header(o, "hookbridge-route");
    if (!route || !strcmp(route, "intercom"))
        return NULL;
    query_add(&q, "route", route);
    query_add(&q, "topic", kcat_header(o, "hookbridge-topic"));
    query_add(&q, "id", kcat_header(o, "hookbridge-id"));
    query_add(&q, "source", kcat_header(o, "hookbridge-source"));
    query_add(&q, "delivery_attempts", kcat_header(o, "hookbridge-delivery-attempts"));
    json_t *h = json_object_get(o, "headers");
    for (size_t i = 0; json_is_array(h) && i + 1 < json_array_size(h); i += 2) {
        const char *n = json_string_value(json_array_get(h, i));
        const char *v = json_string_value(json_array_get(h, i + 1));
        /* the provider's own headers; the bridge adds its own again */
        if (n && v && strncmp(n, "hookbridge-", 11) != 0 && strncmp(n, "intercom-", 9) != 0 &&
            strcmp(n, "content-type") != 0)
            query_header(&q, n, v);
    }
    return q;
}

/* The event of a line and its received_at: a dead-letter file's line (the
 * payload is the raw body, last in the line) or a line of `kcat -J` (the
 * payload a string). *owned is what to free. 0, or -1 + why. */
static int line_event(item_t *it, const char **body, size_t *len, char **owned, uint64_t *at,
                      char **query, const char **why)
{
    json_t *o = json_loads(it->line, 0, NULL);
    json_t *payload = json_object_get(o, "payload");
    const char *when = NULL;
    int rc = -1;
    *owned = NULL;
    *at = 0;
    if (json_is_string(payload)) { /* kcat */
        *len = json_string_length(payload);
        *owned = hb_malloc(*len + 1);
        memcpy(*owned, json_string_value(payload), *len + 1);
        *body = *owned;
        when = kcat_header(o, "hookbridge-received-at");
        it->id = kcat_header(o, "intercom-notification-id")
                     ? hb_strdup(kcat_header(o, "intercom-notification-id"))
                     : NULL;
        it->topic =
            kcat_header(o, "intercom-topic") ? hb_strdup(kcat_header(o, "intercom-topic")) : NULL;
        *query = route_query(o, 1);
    } else if (json_is_object(payload)) {
        /* the raw bytes as the bridge wrote them, not a re-serialisation */
        const char *p = strstr(it->line, "\"payload\":");
        const char *end = strrchr(it->line, '}');
        if (!p || !end || end <= p) {
            *why = "payload is not the last field";
            goto cleanup;
        }
        *body = p + strlen("\"payload\":");
        *len = (size_t)(end - *body);
        when = json_string_value(json_object_get(o, "received_at"));
        it->id = json_str_dup(o, "id");
        it->topic = json_str_dup(o, "topic");
        *query = route_query(o, 0);
    } else {
        *why = o ? "no payload object or string" : "not a JSON line";
        goto cleanup;
    }
    if (when && hb_cli_parse_time(when, at) < 0)
        *at = 0; /* the bridge stamps it now */
    rc = 0;
cleanup:
    json_decref(o);
    return rc;
}

static void journal_again(redrive_t *r, item_t *it)
{
    const char *body = NULL, *why = NULL;
    char *owned, *query = NULL, err[1024];
    size_t len = 0;
    uint64_t at;
    if (line_event(it, &body, &len, &owned, &at, &query, &why) < 0) {
        it->why = hb_strdup(why);
        return;
    }
    size_t tlen = 64 + (query ? strlen(query) : 0);
    char *target = hb_malloc(tlen);
    snprintf(target, tlen, "/dead-letter/redrive?received_at_ms=%" PRIu64 "%s", at,
             query ? query : "");
    free(query);
    json_t *o = hb_admin_request_json(&r->ac, "POST", target, body, len, 200, err, sizeof(err));
    json_int_t seq = json_integer_value(json_object_get(o, "seq"));
    if (seq > 0)
        it->seq = (uint64_t)seq;
    else
        it->why = hb_strdup(o ? "no sequence number in the answer" : err);
    json_decref(o);
    free(target);
    free(owned);
}

/* Until every sink is past `seq` or the wait is over: the lowest cursor. */
static uint64_t wait_published(redrive_t *r, uint64_t seq)
{
    uint64_t t_end = hb_mono_ms() + (uint64_t)r->wait_s * 1000, cursor = 0;
    char err[1024];
    for (;;) {
        json_t *o = hb_admin_request_json(&r->ac, "GET", "/journal/published", NULL, 0, 200, err,
                                          sizeof(err));
        if (!o)
            fprintf(stderr, PROG " redrive: %s\n", err);
        json_int_t c = json_integer_value(json_object_get(o, "min_cursor"));
        json_decref(o);
        if (c > 0)
            cursor = (uint64_t)c;
        if (cursor >= seq || hb_mono_ms() >= t_end)
            return cursor;
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static void note_dead_letter_files(redrive_t *r)
{
    DIR *d = opendir(r->dir);
    struct dirent *e;
    char sink[128], path[PATH_MAX];
    while (d && (e = readdir(d))) {
        struct stat st;
        if (!sink_of(e->d_name, sink, sizeof(sink)))
            continue;
        snprintf(path, sizeof(path), "%s/%s", r->dir, e->d_name);
        if (stat(path, &st) < 0)
            continue;
        r->dl_paths = hb_realloc(r->dl_paths, (r->n_dl + 1) * sizeof(*r->dl_paths));
        r->dl_sizes = hb_realloc(r->dl_sizes, (r->n_dl + 1) * sizeof(*r->dl_sizes));
        r->dl_paths[r->n_dl] = hb_strdup(path);
        r->dl_sizes[r->n_dl++] = st.st_size;
    }
    if (d)
        closedir(d);
}

static int same(const char *a, const char *b)
{
    return a && b ? strcmp(a, b) == 0 : a == b;
}

/* What a sink wrote to its dead-letter file since we began, for one of
 * ours (same id and topic): rejected again. Returns how many. */
static size_t report_rejected_again(redrive_t *r)
{
    size_t found = 0;
    DIR *d = opendir(r->dir);
    struct dirent *e;
    char sink[128], path[PATH_MAX];
    while (d && (e = readdir(d))) {
        if (!sink_of(e->d_name, sink, sizeof(sink)))
            continue;
        snprintf(path, sizeof(path), "%s/%s", r->dir, e->d_name);
        off_t from = 0;
        for (size_t i = 0; i < r->n_dl; i++)
            if (!strcmp(r->dl_paths[i], path))
                from = r->dl_sizes[i];
        FILE *f = fopen(path, "r");
        if (!f || fseeko(f, from, SEEK_SET) < 0) {
            if (f)
                fclose(f);
            continue;
        }
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, f) > 0) {
            json_t *o = json_loads(line, 0, NULL);
            const char *id = json_string_value(json_object_get(o, "id"));
            const char *topic = json_string_value(json_object_get(o, "topic"));
            for (size_t i = 0; o && i < r->n; i++) {
                if (r->v[i].seq && same(r->v[i].id, id) && same(r->v[i].topic, topic)) {
                    const char *why = json_string_value(json_object_get(o, "error"));
                    printf("rejected again by %s: topic %s, id %s: %s\n", sink, topic ? topic : "-",
                           id ? id : "-", why ? why : "(no reason)");
                    found++;
                    break;
                }
            }
            json_decref(o);
        }
        free(line);
        fclose(f);
    }
    if (d)
        closedir(d);
    return found;
}

static void read_items(redrive_t *r, FILE *f)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (!n)
            continue;
        if (r->n == r->cap) {
            r->cap = r->cap ? r->cap * 2 : 64;
            r->v = hb_realloc(r->v, r->cap * sizeof(*r->v));
        }
        memset(&r->v[r->n], 0, sizeof(r->v[0]));
        r->v[r->n++].line = hb_strdup(line);
    }
    free(line);
}

static int stays(const item_t *it, uint64_t cursor)
{
    /* published (or dead-lettered again, with its new reason) goes */
    return !it->seq || it->seq > cursor;
}

/* Write the lines that stay to path (appended, or replacing it), durably. */
static int keep_lines(const item_t *v, size_t n, const char *path, uint64_t cursor, int append)
{
    char tmp[PATH_MAX + 8];
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        kept += stays(&v[i], cursor);
    if (append && !kept)
        return 0;
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(append ? path : tmp,
                  O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0600);
    if (fd < 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        if (stays(&v[i], cursor) &&
            (hb_write_full(fd, v[i].line, strlen(v[i].line)) < 0 || hb_write_full(fd, "\n", 1) < 0))
            rc = -1;
    if (rc == 0 && fdatasync(fd) < 0)
        rc = -1;
    close(fd);
    if (!append && rc == 0)
        rc = rename(tmp, path);
    return rc;
}

/* One source: a sink's dead-letter file (moved aside first, so that the
 * bridge appends what it rejects again to a new one), or a dump given with
 * --file (rewritten in place). */
typedef struct source {
    char path[PATH_MAX], work[PATH_MAX + 16];
    int is_dump, taken;
    size_t first, end; /* its items */
} source_t;

static int take(redrive_t *r, source_t *src)
{
    snprintf(src->work, sizeof(src->work), "%s%s", src->path, src->is_dump ? "" : ".redrive");
    if (!src->is_dump && access(src->work, F_OK) == 0) {
        fprintf(stderr, PROG " redrive: resuming %s (left by an interrupted redrive)\n", src->work);
    } else if (!src->is_dump && rename(src->path, src->work) < 0) {
        fprintf(stderr, PROG " redrive: %s: %s\n", src->path, strerror(errno));
        return -1;
    }
    /* the file of that name starts empty now */
    for (size_t i = 0; !src->is_dump && i < r->n_dl; i++)
        if (!strcmp(r->dl_paths[i], src->path))
            r->dl_sizes[i] = 0;
    FILE *f = fopen(src->work, "r");
    if (!f) {
        fprintf(stderr, PROG " redrive: %s: %s\n", src->work, strerror(errno));
        return -1;
    }
    src->taken = 1;
    src->first = r->n;
    read_items(r, f);
    fclose(f);
    src->end = r->n;
    for (size_t i = src->first; i < src->end; i++) {
        journal_again(r, &r->v[i]);
        if (!r->v[i].seq)
            fprintf(stderr, PROG " redrive: %s line %zu stays: %s\n", src->path, i - src->first + 1,
                    r->v[i].why);
    }
    return 0;
}

/* The lines not published go back: appended to the sink's file (which the
 * bridge may have created again meanwhile), or the dump rewritten. */
static int finish(redrive_t *r, source_t *src, uint64_t cursor)
{
    size_t sent = 0, published = 0;
    for (size_t i = src->first; i < src->end; i++) {
        sent += r->v[i].seq != 0;
        published += r->v[i].seq && r->v[i].seq <= cursor;
    }
    printf("%s: %zu event(s), %zu journaled again, %zu published by every sink\n", src->path,
           src->end - src->first, sent, published);
    if (published < sent)
        fprintf(stderr,
                PROG " redrive: %zu event(s) not published within %us: their lines stay (a "
                     "later redrive may publish them twice)\n",
                sent - published, r->wait_s);
    if (keep_lines(r->v + src->first, src->end - src->first, src->path, cursor, !src->is_dump) <
        0) {
        fprintf(stderr, PROG " redrive: cannot rewrite %s: %s (%s kept)\n", src->path,
                strerror(errno), src->work);
        return -1;
    }
    if (!src->is_dump && unlink(src->work) < 0)
        fprintf(stderr, PROG " redrive: cannot remove %s: %s\n", src->work, strerror(errno));
    return src->end - src->first == published ? 0 : -1;
}

static int redrive(const char *config, const char *admin, const char *dir, const char *only,
                   const char *dump, unsigned wait_s)
{
    redrive_t r;
    memset(&r, 0, sizeof(r));
    r.dir = dir;
    r.wait_s = wait_s;
    char err[1024];
    if (hb_admin_client_init(&r.ac, config, admin, err, sizeof(err)) < 0) {
        fprintf(stderr, PROG " redrive: configuration error: %s\n", err);
        return 1;
    }
    note_dead_letter_files(&r);
    source_t *src = hb_calloc(r.n_dl + 1, sizeof(*src));
    size_t n_src = 0;
    int rc = 0;
    if (dump) {
        snprintf(src[n_src].path, sizeof(src[0].path), "%s", dump);
        src[n_src++].is_dump = 1;
    }
    for (size_t i = 0; !dump && i < r.n_dl; i++) {
        char sink[128];
        const char *base = strrchr(r.dl_paths[i], '/') + 1;
        if (!only || strcmp(sink_of(base, sink, sizeof(sink)), only) == 0)
            snprintf(src[n_src++].path, sizeof(src[0].path), "%s", r.dl_paths[i]);
    }
    if (!n_src)
        fprintf(stderr, PROG " redrive: no dead letters%s%s in %s\n", only ? " for sink " : "",
                only ? only : "", dir);
    uint64_t last = 0, cursor = 0;
    for (size_t i = 0; i < n_src; i++)
        if (take(&r, &src[i]) < 0)
            rc = 1;
    for (size_t i = 0; i < r.n; i++)
        last = r.v[i].seq > last ? r.v[i].seq : last;
    if (last)
        cursor = wait_published(&r, last);
    /* before any line goes back, so that only the sinks' new lines count */
    if (report_rejected_again(&r))
        rc = 1;
    for (size_t i = 0; i < n_src; i++)
        if (src[i].taken && finish(&r, &src[i], cursor) < 0)
            rc = 1;
    for (size_t i = 0; i < r.n; i++) {
        free(r.v[i].line);
        free(r.v[i].id);
        free(r.v[i].topic);
        free(r.v[i].why);
    }
    free(r.v);
    free(src);
    for (size_t i = 0; i < r.n_dl; i++)
        free(r.dl_paths[i]);
    free(r.dl_paths);
    free(r.dl_sizes);
    hb_admin_client_free(&r.ac);
    return rc;
}

int hb_cli_dead_letter(int argc, char **argv)
{
    enum { O_DATA = 256, O_SINK, O_FORMAT, O_FILE, O_ADMIN, O_WAIT };
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"data-dir", required_argument, NULL, O_DATA},
                                         {"sink", required_argument, NULL, O_SINK},
                                         {"format", required_argument, NULL, O_FORMAT},
                                         {"file", required_argument, NULL, O_FILE},
                                         {"admin", required_argument, NULL, O_ADMIN},
                                         {"wait", required_argument, NULL, O_WAIT},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *verb = argv[1], *config = NULL, *dir = NULL, *sink = NULL;
    const char *dump = NULL, *admin = NULL;
    int cat = !strcmp(verb, "cat"), is_redrive = !strcmp(verb, "redrive"), raw = 0, opt, bad = 0;
    unsigned wait_s = 300;
    if (!cat && !is_redrive && strcmp(verb, "ls") != 0) {
        fprintf(stderr, PROG ": unknown command '%s' (ls, cat, redrive; see --help)\n", verb);
        return 2;
    }
    optind = 1;
    while ((opt = getopt_long(argc - 1, argv + 1, "c:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case O_DATA:
            dir = optarg;
            break;
        case O_SINK:
            sink = optarg;
            break;
        case O_FORMAT:
            raw = !strcmp(optarg, "raw");
            bad |= !raw && strcmp(optarg, "jsonl") != 0;
            bad |= is_redrive;
            break;
        case O_FILE:
            dump = optarg;
            bad |= !is_redrive;
            break;
        case O_ADMIN:
            admin = optarg;
            bad |= !is_redrive;
            break;
        case O_WAIT:
            wait_s = (unsigned)atoi(optarg);
            bad |= !is_redrive || wait_s == 0;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            bad = 1;
        }
    }
    if (bad || optind < argc - 1 || (config && dir && !is_redrive) || (dump && sink)) {
        usage(stderr);
        return 2;
    }
    if (dir && !is_redrive)
        return run(dir, sink, cat, raw);
    hb_config_t cfg;
    char err[1024];
    int rc = 1;
    if (hb_config_load_unchecked(&cfg, config, err, sizeof(err)) < 0)
        fprintf(stderr, PROG ": configuration error: %s\n", err);
    else if (is_redrive)
        rc = redrive(config, admin, dir ? dir : cfg.data_dir, sink, dump, wait_s);
    else
        rc = run(cfg.data_dir, sink, cat, raw);
    hb_config_free(&cfg);
    return rc;
}
