/* redis://[user:password@]host:port[/db] (also redis://:password@host), as
 * the Redis sink and the shared dedup store both read it.
 *
 * The password is a secret: never log it (or the URL it came from). */
#ifndef HB_REDIS_URL_H
#define HB_REDIS_URL_H

#include <stddef.h>

typedef struct hb_redis_url {
    char host[256];
    int port; /* 6379 when the URL has none */
    int db;
    char *user, *password; /* NULL when absent; owned, wiped by clear */
} hb_redis_url_t;

/* Fill u from url (which must start with redis://); on error -1 with a
 * message naming `key` in err (never the URL). u needs clear either way. */
int hb_redis_url_parse(hb_redis_url_t *u, const char *url, const char *key, char *err,
                       size_t errlen);
/* Free the strings, the password wiped first; accepts a zeroed u. */
void hb_redis_url_clear(hb_redis_url_t *u);

#endif
