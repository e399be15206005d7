/* Redis URLs. See include/hb/redis_url.h. */
#include "hb/fmacros.h"

#include "hb/redis_url.h"
#include "hb/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int hb_redis_url_parse(hb_redis_url_t *u, const char *url, const char *key, char *err,
                       size_t errlen)
{
    memset(u, 0, sizeof(*u));
    u->port = 6379;
    if (strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen, "%s: must be redis://[user:password@]host:port[/db]", key);
        return -1;
    }
    const char *p = url + 8;
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if (colon > p)
                u->user = hb_strndup(p, (size_t)(colon - p));
            u->password = hb_strndup(colon + 1, (size_t)(at - colon - 1));
        } else {
            u->password = hb_strndup(p, (size_t)(at - p));
        }
        p = at + 1;
    }
    const char *slash = strchr(p, '/');
    size_t hl = slash ? (size_t)(slash - p) : strlen(p);
    char hostport[256];
    if (hl == 0 || hl >= sizeof(hostport)) {
        snprintf(err, errlen, "%s: missing host", key);
        return -1;
    }
    memcpy(hostport, p, hl);
    hostport[hl] = '\0';
    char *colon = strrchr(hostport, ':');
    if (colon) {
        *colon = '\0';
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (*end || port <= 0 || port > 65535) {
            /* not quoted: without "@host" it is the password */
            snprintf(err, errlen, "%s: bad port (want 1-65535 after the last ':')", key);
            return -1;
        }
        u->port = (int)port;
    }
    snprintf(u->host, sizeof(u->host), "%s", hostport);
    if (slash && slash[1]) {
        char *end;
        long db = strtol(slash + 1, &end, 10);
        if (*end || db < 0 || db > 1000000) {
            snprintf(err, errlen, "%s: bad database number (want 0-1000000 after '/')", key);
            return -1;
        }
        u->db = (int)db;
    }
    return 0;
}

void hb_redis_url_clear(hb_redis_url_t *u)
{
    free(u->user);
    if (u->password) {
        memset(u->password, 0, strlen(u->password));
        free(u->password);
    }
    u->user = u->password = NULL;
}
