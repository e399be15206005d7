/* A timing tool, not a test: ns per hb_crc32c call over buffers of the
 * given lengths (default: 1600, a journal record of an Intercom event).
 *   build/tests/bench_crc32c [len...] */
#include "hb/fmacros.h"

#include "hb/crc32c.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    static unsigned char buf[1 << 16];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (unsigned char)(i * 2654435761u >> 13);
    size_t lens[64] = {1600};
    int nlens = 1;
    if (argc > 1)
        for (nlens = 0; nlens < argc - 1 && nlens < 64; nlens++)
            lens[nlens] = (size_t)strtoul(argv[nlens + 1], NULL, 10) % sizeof(buf);
    for (int k = 0; k < nlens; k++) {
        size_t len = lens[k];
        long iters = (long)(2e8 / (double)(len + 64));
        double best = 1e30;
        uint32_t sink = 0;
        for (int rep = 0; rep < 7; rep++) { /* the best of 7: the machine is shared */
            double t0 = now_ns();
            for (long i = 0; i < iters; i++)
                sink += hb_crc32c(sink, buf + (i & 7), len);
            double ns = (now_ns() - t0) / (double)iters;
            if (ns < best)
                best = ns;
        }
        printf("len %6zu: %8.1f ns/call %6.2f bytes/ns (%08x)\n", len, best, (double)len / best,
               sink);
    }
    return 0;
}
