/* redis:// URLs as the Redis sink and the shared dedup store read them:
 * user and password, default port, database, and errors that name the key
 * but never repeat the URL (it may hold a password). */
#include "test.h"

#include "hb/redis_url.h"

static void parses(const char *url, const char *host, int port, int db, const char *user,
                   const char *password)
{
    hb_redis_url_t u;
    char err[256] = "";
    is_int(hb_redis_url_parse(&u, url, "redis.url", err, sizeof(err)), 0, "parses %s", url);
    is_str(u.host, host, "%s: host", url);
    is_int(u.port, port, "%s: port", url);
    is_int(u.db, db, "%s: db", url);
    is_str(u.user, user, "%s: user", url);
    is_str(u.password, password, "%s: password", url);
    hb_redis_url_clear(&u);
    ok(u.user == NULL && u.password == NULL, "%s: clear frees the strings", url);
}

static void refuses(const char *url, const char *why)
{
    hb_redis_url_t u;
    char err[256] = "";
    int rc = hb_redis_url_parse(&u, url, "dedup.redis.url", err, sizeof(err));
    ok(rc == -1 && strstr(err, "dedup.redis.url: ") == err && strstr(err, why), "refuses %s: %s",
       url, err);
    ok(!strstr(err, "s3cret"), "the error does not repeat the password");
    hb_redis_url_clear(&u);
}

int main(void)
{
    parses("redis://127.0.0.1:6380", "127.0.0.1", 6380, 0, NULL, NULL);
    parses("redis://redis.internal", "redis.internal", 6379, 0, NULL, NULL);
    parses("redis://:s3cret@10.0.0.1:7000/3", "10.0.0.1", 7000, 3, NULL, "s3cret");
    parses("redis://app:s3cret@host:1/0", "host", 1, 0, "app", "s3cret");
    parses("redis://app:p@ss@host:2", "host", 2, 0, "app", "p@ss"); /* the last @ ends it */
    refuses("http://host:1", "must be redis://");
    refuses("redis://:s3cret@host:99999", "bad port");
    refuses("redis://:s3cret@host:1/x", "bad database");
    refuses("redis://:s3cret@/0", "missing host");
    /* regression: the text after the last ':' or '/' was quoted, which is
     * the password when "@host" was forgotten, or a query that holds one */
    refuses("redis://app:s3cret", "bad port");
    refuses("redis://host:1/0?password=s3cret", "bad database");
    return done_testing();
}
