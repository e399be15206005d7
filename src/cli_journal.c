/* `hookbridge journal verify|ls|cat|repair`. See include/hb/cli_journal.h.
 *
 * The journal directory comes from --dir, or from journal.dir of the
 * configuration (-c FILE and HOOKBRIDGE_* variables). The configuration is
 * read without its start-up checks: inspecting a copy of a journal must not
 * need the webhook secret or the brokers of the machine it came from.
 *
 * Everything is a single pass of hb_journal_scan: records arrive in
 * sequence order, then one summary per segment. */
#include "hb/fmacros.h"

#include "hb/cli_journal.h"
#include "hb/cli_admin.h"
#include "hb/config.h"
#include "hb/journal.h"
#include "hb/jsonl.h"
#include "hb/log.h"
#include "hb/util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/http.h>
#include <jansson.h>

#define PROG "hookbridge journal"

/* the bridge's replay filter, so cat shows exactly what replay publishes */
typedef struct filter {
    hb_replay_filter_t m;
    int raw;
} filter_t;

typedef struct segs {
    hb_journal_seg_info_t *v;
    char **paths;
    size_t n, cap;
} segs_t;

typedef struct cursor {
    char name[64];
    uint64_t seq;
} cursor_t;

typedef struct cli {
    const char *dir;
    filter_t f;
    segs_t segs;
    cursor_t cursors[HB_JOURNAL_MAX_SINKS * 2];
    size_t n_cursors;
    uint64_t printed;
    char *line;
    size_t line_len, line_cap;
    int write_failed;
} cli_t;

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: hookbridge journal COMMAND [-c FILE | --dir DIR] [options]\n\n"
            "Read-only views of a journal directory (use a copy while no bridge runs).\n\n"
            "  verify   check checksums, commit marks and sequence continuity of every\n"
            "           segment; name the file and offset of any damage; exit 0 or 1\n"
            "  ls       segments (records, time range, bytes), sink cursors, pending counts\n"
            "  cat      print records, one JSON line each (the file sink's fields)\n"
            "  repair --cut-at SEQ\n"
            "           keep only the records before SEQ (from the whole batches before it);\n"
            "           the cut bytes and later segments are moved to DIR/removed-<time>/\n"
            "  replay --sink NAME [range and filters] [--dry-run] [--admin HOST:PORT]\n"
            "           ask the running bridge (admin.listen, Authorization: Bearer\n"
            "           admin.token) to publish the matching records again to one sink,\n"
            "           marked as replayed; records the sink has not published yet are left\n"
            "           to it; --dry-run only counts them\n\n"
            "  -c, --config FILE   take journal.dir from this configuration\n"
            "      --dir DIR       the journal directory itself\n"
            "cat and replay options:\n"
            "      --from SEQ --to SEQ          sequence range (inclusive)\n"
            "      --since TIME --until TIME    received_at range (since <= t < until);\n"
            "                                   TIME is RFC 3339 UTC (2026-11-29T10:00:00Z),\n"
            "                                   a date (2026-11-29) or an age (90s, 15m, 2h, 1d)\n"
            "      --topic GLOB                 topic matches a shell pattern (ping, "
            "contact.*)\n"
            "      --source ID                  the source is ID (Intercom: the app_id)\n"
            "      --route NAME                 the route is NAME (intercom, github, ...)\n"
            "      --format jsonl|raw           cat: raw prints each body as received\n");
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!isdigit((unsigned char)s[0]) || *end || errno)
        return -1;
    *out = v;
    return 0;
}

int hb_cli_parse_time(const char *s, uint64_t *ms)
{
    size_t n = strlen(s);
    char unit = n ? s[n - 1] : 0;
    static const struct {
        char unit;
        uint64_t ms;
    } ages[] = {{'s', 1000}, {'m', 60000}, {'h', 3600000}, {'d', 86400000}};
    for (size_t i = 0; i < sizeof(ages) / sizeof(ages[0]); i++) {
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (unit == ages[i].unit && end == s + n - 1 && end > s && isdigit((unsigned char)s[0])) {
            uint64_t now = hb_now_ms(), age = v * ages[i].ms;
            *ms = age < now ? now - age : 0;
            return 0;
        }
    }
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *p = strptime(s, "%Y-%m-%d", &tm);
    if (!p)
        return -1;
    unsigned frac = 0;
    if (*p == 'T' || *p == ' ') {
        p = strptime(p + 1, "%H:%M:%S", &tm);
        if (!p)
            return -1;
        if (*p == '.') {
            unsigned scale = 100;
            for (p++; isdigit((unsigned char)*p); p++, scale /= 10)
                frac += (unsigned)(*p - '0') * scale;
        }
        if (*p == 'Z')
            p++;
        else if (strcmp(p, "+00:00") == 0)
            p += 6;
        else
            return -1;
    }
    if (*p)
        return -1;
    time_t t = timegm(&tm);
    if (t < 0)
        return -1;
    *ms = (uint64_t)t * 1000 + frac;
    return 0;
}

static int wanted(const filter_t *f, const hb_record_t *r)
{
    return hb_replay_match(&f->m, r);
}

static void cat_record(const hb_record_t *r, void *arg)
{
    cli_t *c = arg;
    if (c->write_failed || !wanted(&c->f, r))
        return;
    c->line_len = 0;
    if (c->f.raw) {
        if (fwrite(r->body, 1, r->body_len, stdout) != r->body_len || putchar('\n') == EOF)
            c->write_failed = 1;
    } else {
        /* the file sink's line */
        hb_msg_t *m = hb_msg_from_record(r);
        hb_jsonl_event(m, NULL, NULL, &c->line, &c->line_len, &c->line_cap);
        free(m);
        if (fwrite(c->line, 1, c->line_len, stdout) != c->line_len)
            c->write_failed = 1;
    }
    c->printed++;
}

static void keep_segment(const hb_journal_seg_info_t *s, void *arg)
{
    segs_t *v = &((cli_t *)arg)->segs;
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 16;
        v->v = hb_realloc(v->v, v->cap * sizeof(*v->v));
        v->paths = hb_realloc(v->paths, v->cap * sizeof(*v->paths));
    }
    v->paths[v->n] = hb_strdup(s->path);
    v->v[v->n] = *s;
    v->v[v->n].path = v->paths[v->n]; /* the scan's copy goes when it returns */
    v->n++;
}

static void keep_cursor(const char *name, uint64_t seq, void *arg)
{
    cli_t *c = arg;
    if (c->n_cursors == sizeof(c->cursors) / sizeof(c->cursors[0]))
        return;
    cursor_t *k = &c->cursors[c->n_cursors++];
    snprintf(k->name, sizeof(k->name), "%s", name);
    k->seq = seq;
}

static const char *base_name(const char *path)
{
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

static void fmt_time(uint64_t ms, char *buf, size_t len)
{
    if (ms)
        hb_format_rfc3339(ms, buf, len);
    else
        snprintf(buf, len, "-");
}

/* Sequence range of all segments: first record and one past the last. */
static void seq_span(const cli_t *c, uint64_t *first, uint64_t *end)
{
    *first = *end = 0;
    for (size_t i = 0; i < c->segs.n; i++) {
        const hb_journal_seg_info_t *s = &c->segs.v[i];
        if (s->end_seq > s->first_seq && !*first)
            *first = s->first_seq;
        if (s->end_seq > *end)
            *end = s->end_seq;
    }
}

static int cmd_verify(cli_t *c)
{
    int damaged = 0;
    uint64_t records = 0, first, end;
    for (size_t i = 0; i < c->segs.n; i++) {
        const hb_journal_seg_info_t *s = &c->segs.v[i];
        records += s->end_seq - s->first_seq;
        if (!s->damage)
            continue;
        if (s->torn) {
            printf("%s: torn tail at offset %" PRIu64 " (%s): never acknowledged as durable; "
                   "the bridge cuts it at start\n",
                   s->path, s->damage_offset, s->damage);
            continue;
        }
        damaged++;
        printf("%s: DAMAGED at offset %" PRIu64 ": %s; records from %" PRIu64
               " on in this segment are unreadable\n",
               s->path, s->damage_offset, s->damage, s->end_seq);
    }
    seq_span(c, &first, &end);
    if (damaged) {
        printf("%s: %d damaged segment(s) of %zu; the bridge refuses to start on this journal "
               "(see README, Replay: repair)\n",
               c->dir, damaged, c->segs.n);
        return 1;
    }
    if (records)
        printf("%s: sound: %zu segment(s), %" PRIu64 " record(s), %" PRIu64 "..%" PRIu64 "\n",
               c->dir, c->segs.n, records, first, end - 1);
    else
        printf("%s: sound: %zu segment(s), no records\n", c->dir, c->segs.n);
    return 0;
}

static int cmd_ls(cli_t *c)
{
    uint64_t records = 0, committed = 0, on_disk = 0, first, end, published = UINT64_MAX;
    for (size_t i = 0; i < c->n_cursors; i++)
        if (c->cursors[i].seq < published)
            published = c->cursors[i].seq;
    if (!c->n_cursors)
        published = 0;
    printf("%-24s %-21s %-24s %-24s %10s %10s  %s\n", "SEGMENT", "RECORDS", "FIRST_RECEIVED",
           "LAST_RECEIVED", "BYTES", "ON_DISK", "STATE");
    for (size_t i = 0; i < c->segs.n; i++) {
        const hb_journal_seg_info_t *s = &c->segs.v[i];
        char range[48], t0[40], t1[40];
        if (s->end_seq > s->first_seq)
            snprintf(range, sizeof(range), "%" PRIu64 "..%" PRIu64, s->first_seq, s->end_seq - 1);
        else
            snprintf(range, sizeof(range), "-");
        fmt_time(s->first_ms, t0, sizeof(t0));
        fmt_time(s->last_ms, t1, sizeof(t1));
        printf("%-24s %-21s %-24s %-24s %10" PRIu64 " %10" PRIu64 "  %s\n", base_name(s->path),
               range, t0, t1, s->committed_bytes, s->file_bytes,
               s->damage && !s->torn ? "DAMAGED (journal verify)"
               : s->torn             ? "torn tail"
               : s->end_seq <= s->first_seq || s->end_seq - 1 <= published ? "published"
                                                                           : "pending");
        records += s->end_seq - s->first_seq;
        committed += s->committed_bytes;
        on_disk += s->file_bytes;
    }
    seq_span(c, &first, &end);
    printf("total: %zu segment(s), %" PRIu64 " record(s), %" PRIu64 " bytes (%" PRIu64
           " on disk)\n",
           c->segs.n, records, committed, on_disk);
    printf("\n%-16s %12s %12s\n", "SINK", "CURSOR", "PENDING");
    for (size_t i = 0; i < c->n_cursors; i++) {
        const cursor_t *k = &c->cursors[i];
        uint64_t last = end ? end - 1 : 0;
        printf("%-16s %12" PRIu64 " %12" PRIu64 "\n", k->name, k->seq,
               last > k->seq ? last - k->seq : 0);
    }
    if (!c->n_cursors)
        printf("(no cursors file)\n");
    return 0;
}

static int cmd_cat(cli_t *c)
{
    if (fflush(stdout) != 0 || c->write_failed) {
        fprintf(stderr, PROG " cat: cannot write: %s\n", strerror(errno));
        return 1;
    }
    for (size_t i = 0; i < c->segs.n; i++) {
        const hb_journal_seg_info_t *s = &c->segs.v[i];
        if (s->damage && !s->torn)
            fprintf(stderr,
                    PROG " cat: %s: damaged at offset %" PRIu64 ": records from %" PRIu64
                         " in it were not printed (journal verify)\n",
                    s->path, s->damage_offset, s->end_seq);
    }
    return 0;
}

/* ---- repair --cut-at SEQ ---- */

/* The offset just past the last commit mark in path[0..committed) that
 * closes records below seq: what stays when records from seq on are cut.
 * The bytes were validated by the scan; *kept is the last record kept
 * (first_seq - 1 when none). -1 on a read error. */
static int64_t cut_offset(const hb_journal_seg_info_t *s, uint64_t seq, uint64_t *kept)
{
    size_t len = (size_t)s->committed_bytes;
    unsigned char *buf = hb_malloc(len ? len : 1);
    int64_t off = -1;
    int fd = open(s->path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && hb_pread_full(fd, buf, len, 0) == (ssize_t)len) {
        size_t pos = 0, used;
        off = 0;
        *kept = s->first_seq - 1;
        hb_record_t r;
        hb_commit_t m;
        while (pos < len) {
            hb_decode_t d = hb_record_decode_any(buf + pos, len - pos, &r, &m, &used);
            if (d != HB_DECODE_OK && d != HB_DECODE_COMMIT)
                break; /* cannot happen below committed_bytes */
            pos += used;
            if (d == HB_DECODE_COMMIT && m.last_seq < seq) {
                off = (int64_t)pos;
                if (m.last_seq)
                    *kept = m.last_seq;
            }
        }
    }
    if (fd >= 0)
        close(fd);
    free(buf);
    return off;
}

/* Copy path[from..) to dest, for the operator to keep. */
static int save_tail(const char *path, uint64_t from, const char *dest)
{
    int in = open(path, O_RDONLY | O_CLOEXEC), out = -1, rc = -1;
    unsigned char buf[65536];
    if (in < 0)
        return -1;
    out = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    for (off_t off = (off_t)from; out >= 0;) {
        ssize_t n = hb_pread_full(in, buf, sizeof(buf), off);
        if (n < 0 || (n > 0 && hb_write_full(out, buf, (size_t)n) < 0))
            break;
        off += n;
        if (n < (ssize_t)sizeof(buf)) {
            rc = fsync(out);
            break;
        }
    }
    close(in);
    if (out >= 0 && close(out) < 0)
        rc = -1;
    return rc;
}

/* Keep records below seq: the segment holding seq is cut after the last
 * whole batch before it (its cut-off bytes are saved), every later segment
 * is moved into DIR/removed-<time>/. Nothing is deleted. */
static int cmd_repair(cli_t *c, uint64_t seq)
{
    size_t i = c->segs.n;
    while (i > 0 && c->segs.v[i - 1].first_seq > seq)
        i--;
    if (i == 0) {
        fprintf(stderr,
                PROG " repair: record %" PRIu64 " is before the oldest segment: that "
                     "would cut the whole journal\n",
                seq);
        return 1;
    }
    /* damage must be cut off too: at or before the first damaged segment */
    size_t d = 0;
    while (d < c->segs.n && (!c->segs.v[d].damage || c->segs.v[d].torn))
        d++;
    if (d < c->segs.n && seq > c->segs.v[d].end_seq) {
        fprintf(stderr,
                PROG " repair: %s is damaged: records from %" PRIu64 " on are unreadable; "
                     "--cut-at must be at most %" PRIu64 "\n",
                c->segs.v[d].path, c->segs.v[d].end_seq, c->segs.v[d].end_seq);
        return 1;
    }
    if (d < c->segs.n && i > d + 1)
        i = d + 1;
    const hb_journal_seg_info_t *s = &c->segs.v[i - 1];
    if (i == c->segs.n && seq >= s->end_seq && d == c->segs.n) {
        printf("%s: nothing to cut: the last record is %" PRIu64 "\n", c->dir, s->end_seq - 1);
        return 0;
    }
    uint64_t kept;
    int64_t off = cut_offset(s, seq, &kept);
    char moved[PATH_MAX], dest[PATH_MAX + 64];
    if (off < 0) {
        fprintf(stderr, PROG " repair: %s: %s\n", s->path, strerror(errno));
        return 1;
    }
    snprintf(moved, sizeof(moved), "%s/removed-%" PRIu64, c->dir, hb_now_ms() / 1000);
    if (mkdir(moved, 0700) < 0) {
        fprintf(stderr, PROG " repair: %s: %s\n", moved, strerror(errno));
        return 1;
    }
    snprintf(dest, sizeof(dest), "%s/%s.cut-at-%" PRId64, moved, base_name(s->path), off);
    if (save_tail(s->path, (uint64_t)off, dest) < 0) {
        fprintf(stderr, PROG " repair: cannot save the cut bytes to %s: %s\n", dest,
                strerror(errno));
        return 1;
    }
    for (size_t k = i; k < c->segs.n; k++) {
        snprintf(dest, sizeof(dest), "%s/%s", moved, base_name(c->segs.v[k].path));
        if (rename(c->segs.v[k].path, dest) < 0) {
            fprintf(stderr, PROG " repair: cannot move %s aside: %s\n", c->segs.v[k].path,
                    strerror(errno));
            return 1;
        }
    }
    int fd = open(s->path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)off) < 0 || fsync(fd) < 0) {
        fprintf(stderr, PROG " repair: cannot cut %s: %s\n", s->path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return 1;
    }
    close(fd);
    hb_fsync_dir(moved);
    hb_fsync_dir(c->dir);
    printf("%s: cut at offset %" PRId64 "; records up to %" PRIu64
           " kept; the cut bytes and %zu later segment(s) moved to %s\n",
           s->path, off, kept, c->segs.n - i, moved);
    return 0;
}

/* journal.dir from the configuration, without start-up checks. */
typedef struct replay_opts {
    const char *config, *admin, *sink;
    int dry_run;
} replay_opts_t;

static void query_add(char *q, size_t qlen, const char *key, const char *value)
{
    char *enc = evhttp_uriencode(value, -1, 0);
    if (!enc)
        hb_oom("evhttp_uriencode");
    size_t used = strlen(q);
    snprintf(q + used, qlen - used, "%s%s=%s", used ? "&" : "", key, enc);
    free(enc);
}

static void query_u64(char *q, size_t qlen, const char *key, uint64_t v, uint64_t unset)
{
    char num[24];
    if (v == unset)
        return;
    snprintf(num, sizeof(num), "%" PRIu64, v);
    query_add(q, qlen, key, num);
}

static uint64_t get_u64(json_t *o, const char *key)
{
    json_int_t v = json_integer_value(json_object_get(o, key));
    return v > 0 ? (uint64_t)v : 0;
}

/* One request; the answer's JSON object, or NULL after saying why. */
static json_t *ask(hb_admin_client_t *ac, const char *method, const char *target, int want)
{
    char err[1024];
    json_t *o = hb_admin_request_json(ac, method, target, NULL, 0, want, err, sizeof(err));
    if (!o)
        fprintf(stderr, PROG " replay: %s\n", err);
    return o;
}

static void replay_progress(json_t *st, uint64_t t0)
{
    uint64_t first = get_u64(st, "first_seq"), last = get_u64(st, "last_seq");
    uint64_t at = get_u64(st, "scanned_seq"), matched = get_u64(st, "matched");
    double span = last >= first ? (double)(last - first + 1) : 1;
    double done = at >= first ? (double)(at - first + 1) / span : 0;
    double secs = (double)(hb_mono_ms() - t0) / 1000.0;
    double rate = secs > 0 ? (double)matched / secs : 0;
    fprintf(stderr, "\r%3.0f%%  %" PRIu64 " record(s), %.0f/s", done * 100, matched, rate);
    if (done > 0 && done < 1)
        fprintf(stderr, ", ETA %.0fs   ", secs / done - secs);
    else
        fprintf(stderr, "           ");
    fflush(stderr);
}

/* Start the replay through the admin listener and follow it to its end. */
static int cmd_replay(const hb_replay_filter_t *f, const replay_opts_t *o)
{
    hb_admin_client_t ac;
    char err[1024], q[2048] = "", target[2300];
    int rc = 1;
    json_t *st = NULL;
    if (hb_admin_client_init(&ac, o->config, o->admin, err, sizeof(err)) < 0) {
        fprintf(stderr, PROG " replay: configuration error: %s\n", err);
        return 1;
    }
    query_add(q, sizeof(q), "sink", o->sink);
    query_u64(q, sizeof(q), "from", f->from_seq, 0);
    query_u64(q, sizeof(q), "to", f->to_seq, UINT64_MAX);
    query_u64(q, sizeof(q), "since_ms", f->since_ms, 0);
    query_u64(q, sizeof(q), "until_ms", f->until_ms, UINT64_MAX);
    if (f->topic_glob[0])
        query_add(q, sizeof(q), "topic", f->topic_glob);
    if (f->source[0])
        query_add(q, sizeof(q), "source", f->source);
    if (f->route[0])
        query_add(q, sizeof(q), "route", f->route);
    if (o->dry_run)
        query_add(q, sizeof(q), "dry_run", "1");
    snprintf(target, sizeof(target), "/journal/replay?%s", q);
    st = ask(&ac, "POST", target, 202);
    if (!st)
        goto cleanup;
    int tty = isatty(STDERR_FILENO);
    uint64_t t0 = hb_mono_ms();
    char status_target[400];
    snprintf(status_target, sizeof(status_target), "/journal/replay?%.*s", (int)strcspn(q, "&"), q);
    while (json_is_true(json_object_get(st, "running"))) {
        if (tty)
            replay_progress(st, t0);
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
        json_decref(st);
        st = ask(&ac, "GET", status_target, 200);
        if (!st)
            goto cleanup;
    }
    if (tty) {
        replay_progress(st, t0);
        fputc('\n', stderr);
    }
    uint64_t matched = get_u64(st, "matched"), rejected = get_u64(st, "rejected");
    const char *why = json_string_value(json_object_get(st, "error"));
    if (o->dry_run)
        printf("dry run: %" PRIu64 " record(s) of records %" PRIu64 "..%" PRIu64
               " would be replayed to %s\n",
               matched, get_u64(st, "first_seq"), get_u64(st, "last_seq"), o->sink);
    else
        printf("replayed %" PRIu64 " record(s) of records %" PRIu64 "..%" PRIu64 " to %s: %" PRIu64
               " published, %" PRIu64 " rejected\n",
               matched, get_u64(st, "first_seq"), get_u64(st, "last_seq"), o->sink,
               get_u64(st, "published"), rejected);
    uint64_t first_read = get_u64(st, "first_read_seq"), first = get_u64(st, "first_seq");
    if (first_read > first || !get_u64(st, "scanned_seq"))
        fprintf(stderr,
                PROG " replay: the journal no longer holds records %" PRIu64 "..%" PRIu64
                     " (published segments are deleted unless journal.retain keeps them)\n",
                first, first_read ? first_read - 1 : get_u64(st, "last_seq"));
    if (why && *why)
        fprintf(stderr, PROG " replay: %s\n", why);
    rc = rejected || (why && *why) ? 1 : 0;
cleanup:
    json_decref(st);
    hb_admin_client_free(&ac);
    return rc;
}

static char *dir_from_config(const char *path)
{
    hb_config_t cfg;
    char err[1024];
    char *dir = NULL;
    if (hb_config_load_unchecked(&cfg, path, err, sizeof(err)) < 0)
        fprintf(stderr, PROG ": configuration error: %s\n", err);
    else
        dir = hb_strdup(cfg.journal_dir);
    hb_config_free(&cfg);
    return dir;
}

int hb_cli_journal(int argc, char **argv)
{
    enum {
        O_DIR = 256,
        O_CUT,
        O_SINK,
        O_ADMIN,
        O_DRY,
        O_FROM, /* from here on: range and filters (cat, replay) */
        O_TO,
        O_SINCE,
        O_UNTIL,
        O_TOPIC,
        O_SOURCE,
        O_ROUTE,
        O_FORMAT
    };
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"dir", required_argument, NULL, O_DIR},
                                         {"from", required_argument, NULL, O_FROM},
                                         {"to", required_argument, NULL, O_TO},
                                         {"since", required_argument, NULL, O_SINCE},
                                         {"until", required_argument, NULL, O_UNTIL},
                                         {"topic", required_argument, NULL, O_TOPIC},
                                         {"source", required_argument, NULL, O_SOURCE},
                                         {"route", required_argument, NULL, O_ROUTE},
                                         {"format", required_argument, NULL, O_FORMAT},
                                         {"cut-at", required_argument, NULL, O_CUT},
                                         {"sink", required_argument, NULL, O_SINK},
                                         {"admin", required_argument, NULL, O_ADMIN},
                                         {"dry-run", no_argument, NULL, O_DRY},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *verb = argv[1], *config = NULL, *dir_opt = NULL;
    int is_cat = !strcmp(verb, "cat"), is_repair = !strcmp(verb, "repair");
    int is_replay = !strcmp(verb, "replay");
    replay_opts_t ro = {0};
    uint64_t cut_at = 0;
    if (!is_cat && !is_repair && !is_replay && strcmp(verb, "verify") != 0 &&
        strcmp(verb, "ls") != 0) {
        fprintf(stderr,
                PROG ": unknown command '%s' (verify, ls, cat, repair, replay; see --help)\n",
                verb);
        return 2;
    }
    cli_t c;
    memset(&c, 0, sizeof(c));
    c.f.m.to_seq = c.f.m.until_ms = UINT64_MAX;
    int opt, bad = 0;
    optind = 1;
    while ((opt = getopt_long(argc - 1, argv + 1, "c:h", opts, NULL)) != -1) {
        if (((opt >= O_FROM && opt != O_FORMAT) && !is_cat && !is_replay) ||
            (opt == O_FORMAT && !is_cat)) {
            fprintf(stderr, PROG " %s: only cat (and replay) take range and filter options\n",
                    verb);
            bad = 1;
        }
        if ((opt == O_SINK || opt == O_ADMIN || opt == O_DRY || opt == O_DIR) &&
            is_replay != (opt != O_DIR)) {
            fprintf(stderr,
                    PROG " %s: --sink, --admin and --dry-run are replay's options, "
                         "--dir is not one\n",
                    verb);
            bad = 1;
        }
        if (opt == O_CUT && !is_repair) {
            fprintf(stderr, PROG " %s: --cut-at is an option of repair\n", verb);
            bad = 1;
        }
        switch (opt) {
        case O_CUT:
            if (parse_u64(optarg, &cut_at) < 0 || cut_at == 0) {
                fprintf(stderr, PROG " repair: not a sequence number: '%s'\n", optarg);
                bad = 1;
            }
            break;
        case 'c':
            config = optarg;
            break;
        case O_SINK:
            ro.sink = optarg;
            break;
        case O_ADMIN:
            ro.admin = optarg;
            break;
        case O_DRY:
            ro.dry_run = 1;
            break;
        case O_DIR:
            dir_opt = optarg;
            break;
        case O_FROM:
        case O_TO:
            if (parse_u64(optarg, opt == O_FROM ? &c.f.m.from_seq : &c.f.m.to_seq) < 0) {
                fprintf(stderr, PROG " cat: not a sequence number: '%s'\n", optarg);
                bad = 1;
            }
            break;
        case O_SINCE:
        case O_UNTIL:
            if (hb_cli_parse_time(optarg, opt == O_SINCE ? &c.f.m.since_ms : &c.f.m.until_ms) < 0) {
                fprintf(stderr,
                        PROG " cat: not a time: '%s' (2026-11-29T10:00:00Z, 2026-11-29, 2h)\n",
                        optarg);
                bad = 1;
            }
            break;
        case O_TOPIC:
        case O_SOURCE:
        case O_ROUTE: {
            char *dst = opt == O_TOPIC    ? c.f.m.topic_glob
                        : opt == O_SOURCE ? c.f.m.source
                                          : c.f.m.route;
            if (strlen(optarg) >= sizeof(c.f.m.source)) {
                fprintf(stderr, PROG " %s: --topic, --source and --route take under 256 bytes\n",
                        verb);
                bad = 1;
            }
            snprintf(dst, sizeof(c.f.m.source), "%s", optarg);
            break;
        }
        case O_FORMAT:
            c.f.raw = !strcmp(optarg, "raw");
            if (!c.f.raw && strcmp(optarg, "jsonl") != 0) {
                fprintf(stderr, PROG " cat: --format jsonl or raw, not '%s'\n", optarg);
                bad = 1;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            bad = 1;
        }
    }
    if (!bad && optind < argc - 1) {
        fprintf(stderr, PROG " %s: unexpected argument '%s'\n", verb, argv[optind + 1]);
        bad = 1;
    }
    if (!bad && config && dir_opt) {
        fprintf(stderr, PROG " %s: -c and --dir exclude each other\n", verb);
        bad = 1;
    }
    if (!bad && is_repair && !cut_at) {
        fprintf(stderr, PROG " repair: --cut-at SEQ is required: records from SEQ on are cut "
                             "away (moved aside), nothing else is ever changed\n");
        bad = 1;
    }
    if (!bad && is_replay && !ro.sink) {
        fprintf(stderr, PROG " replay: --sink NAME is required (file, kafka or redis)\n");
        bad = 1;
    }
    if (bad)
        return 2;
    if (is_replay) {
        ro.config = config;
        return cmd_replay(&c.f.m, &ro);
    }
    char *dir = dir_opt ? hb_strdup(dir_opt) : dir_from_config(config);
    if (!dir)
        return 1;
    c.dir = dir;
    char err[1024];
    int rc = 1;
    if (hb_journal_read_cursors(dir, keep_cursor, &c, err, sizeof(err)) < 0 ||
        hb_journal_scan(dir, is_cat ? cat_record : NULL, keep_segment, &c, err, sizeof(err)) < 0) {
        fprintf(stderr, PROG " %s: %s\n", verb, err);
        goto cleanup;
    }
    rc = is_cat                ? cmd_cat(&c)
         : is_repair           ? cmd_repair(&c, cut_at)
         : !strcmp(verb, "ls") ? cmd_ls(&c)
                               : cmd_verify(&c);
cleanup:
    for (size_t i = 0; i < c.segs.n; i++)
        free(c.segs.paths[i]);
    free(c.segs.paths);
    free(c.segs.v);
    free(c.line);
    free(dir);
    return rc;
}
