/* `hookbridge dead-letter ls|cat`. See include/hb/cli_deadletter.h.
 *
 * The directory is --data-dir, or data.dir of the configuration (read
 * without its start-up checks, as `hookbridge journal` does). Lines are
 * parsed with jansson: this is no hot path, and a line the bridge did not
 * write whole (a crash mid-append) is counted and shown as unreadable
 * rather than skipped in silence. */
#include "hb/fmacros.h"

#include "hb/cli_deadletter.h"
#include "hb/config.h"
#include "hb/util.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
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
                 "                                     [--format jsonl|raw]\n\n"
                 "Events a sink rejected for good, from <data.dir>/dead-letter.<sink>.jsonl.\n"
                 "  ls    per sink: how many, first and last received_at, the reasons\n"
                 "  cat   the lines as they are (jsonl), or each payload alone (raw)\n");
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

int hb_cli_dead_letter(int argc, char **argv)
{
    enum { O_DATA = 256, O_SINK, O_FORMAT };
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},  {"data-dir", required_argument, NULL, O_DATA},
        {"sink", required_argument, NULL, O_SINK}, {"format", required_argument, NULL, O_FORMAT},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *verb = argv[1], *config = NULL, *dir = NULL, *sink = NULL;
    int cat = !strcmp(verb, "cat"), raw = 0, opt, bad = 0;
    if (!cat && strcmp(verb, "ls") != 0) {
        fprintf(stderr, PROG ": unknown command '%s' (ls, cat; see --help)\n", verb);
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
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            bad = 1;
        }
    }
    if (bad || optind < argc - 1 || (config && dir)) {
        usage(stderr);
        return 2;
    }
    if (dir)
        return run(dir, sink, cat, raw);
    hb_config_t cfg;
    char err[1024];
    int rc = 1;
    if (hb_config_load_unchecked(&cfg, config, err, sizeof(err)) < 0)
        fprintf(stderr, PROG ": configuration error: %s\n", err);
    else
        rc = run(cfg.data_dir, sink, cat, raw);
    hb_config_free(&cfg);
    return rc;
}
