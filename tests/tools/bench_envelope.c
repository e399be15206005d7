/* Time envelope extraction: ns per parse of each body given, with the
 * scanner (src/event.c) and with the jansson code it replaced
 * (envelope_ref.c). A measuring tool, not a test: nothing is asserted.
 *   build/tests/bench_envelope body.json...   (e.g. testdata/intercom/ samples)
 * Each figure is the best of 15 rounds of `iterations` parses (default 20000)
 * in the thread's CPU time, so that a busy machine disturbs it less: time
 * spent descheduled is not counted, only what sharing a core costs. */
#include "hb/fmacros.h"

#include "envelope_ref.h"
#include "hb/event.h"
#include "hb/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int scanner(const char *body, size_t len)
{
    hb_envelope_t env;
    char why[256];
    int rc = hb_envelope_parse(body, len, &env, why, sizeof(why));
    hb_envelope_clear(&env);
    return rc;
}

static int jansson(const char *body, size_t len)
{
    ref_envelope_t env;
    char why[256];
    int rc = ref_envelope_parse(body, len, &env, why, sizeof(why));
    ref_envelope_clear(&env);
    return rc;
}

static double best_ns(int (*parse)(const char *, size_t), const char *body, size_t len, long iters)
{
    double best = 0;
    for (int round = 0; round < 15; round++) {
        double t0 = now_ns();
        for (long i = 0; i < iters; i++)
            if (parse(body, len) != 0)
                return -1;
        double ns = (now_ns() - t0) / (double)iters;
        if (round == 0 || ns < best)
            best = ns;
    }
    return best;
}

int main(int argc, char **argv)
{
    long iters = getenv("ITERATIONS") ? atol(getenv("ITERATIONS")) : 20000;
    if (argc < 2 || iters <= 0) {
        fprintf(stderr, "usage: [ITERATIONS=n] %s body.json...\n", argv[0]);
        return 2;
    }
    printf("%-45s %7s %12s %12s %8s\n", "body", "bytes", "jansson ns", "scanner ns", "speedup");
    for (int i = 1; i < argc; i++) {
        size_t len;
        char *body = hb_read_file(argv[i], &len);
        if (!body) {
            perror(argv[i]);
            return 1;
        }
        double old = best_ns(jansson, body, len, iters);
        double new = best_ns(scanner, body, len, iters);
        const char *name = strrchr(argv[i], '/') ? strrchr(argv[i], '/') + 1 : argv[i];
        if (old < 0 || new < 0)
            printf("%-45s %7zu  (refused, not timed)\n", name, len);
        else
            printf("%-45s %7zu %12.0f %12.0f %7.1fx\n", name, len, old, new, old / new);
        free(body);
    }
    return 0;
}
