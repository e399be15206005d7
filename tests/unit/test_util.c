/* util.c: RFC 3339 timestamps (cached per second and thread), backoff and
 * millisecond timevals. */
#include "test.h"

#include "hb/util.h"

#include <string.h>
#include <sys/time.h>

static void test_rfc3339(void)
{
    char buf[32];
    hb_format_rfc3339(0, buf, sizeof(buf));
    is_str(buf, "1970-01-01T00:00:00.000Z", "the epoch");
    hb_format_rfc3339(1764451568123ull, buf, sizeof(buf));
    is_str(buf, "2025-11-29T21:26:08.123Z", "milliseconds kept");
    hb_format_rfc3339(1764451568007ull, buf, sizeof(buf));
    is_str(buf, "2025-11-29T21:26:08.007Z", "same second from the cache, leading zeros");
    hb_format_rfc3339(1764451569999ull, buf, sizeof(buf));
    is_str(buf, "2025-11-29T21:26:09.999Z", "the next second");
    hb_format_rfc3339(1764451568000ull, buf, sizeof(buf));
    is_str(buf, "2025-11-29T21:26:08.000Z", "back to an earlier second");
    hb_format_rfc3339(951782400500ull, buf, sizeof(buf));
    is_str(buf, "2000-02-29T00:00:00.500Z", "a leap day");
    char small[10] = "xxxxxxxxx";
    hb_format_rfc3339(0, small, sizeof(small));
    is_str(small, "", "a buffer too small gets an empty string, never a partial one");
}

static void test_backoff_and_timeval(void)
{
    is_int(hb_backoff_next(0, 100, 1000), 100, "first delay is the minimum");
    is_int(hb_backoff_next(100, 100, 1000), 200, "then doubles");
    is_int(hb_backoff_next(800, 100, 1000), 1000, "capped");
    is_int(hb_backoff_next(1000, 100, 1000), 1000, "stays capped");
    struct timeval tv = hb_ms_timeval(2345);
    ok(tv.tv_sec == 2 && tv.tv_usec == 345000, "2345 ms is 2 s 345000 us");
}

int main(void)
{
    test_rfc3339();
    test_backoff_and_timeval();
    return done_testing();
}
