/* The commands' side of the admin listener: `hookbridge journal replay`
 * and `hookbridge dead-letter redrive` ask the running bridge, so that the
 * journal keeps one writer. A blocking HTTP/1.0 client (the command's main
 * thread only), with admin.listen and admin.token from the configuration. */
#ifndef HB_CLI_ADMIN_H
#define HB_CLI_ADMIN_H

#include <stddef.h>

typedef struct hb_admin_client {
    char host[256], port[16];
    char *token; /* resolved (file:/path read); never printed */
} hb_admin_client_t;

/* admin.listen and admin.token from config (NULL: defaults and env only);
 * `listen` (--admin HOST:PORT) overrides admin.listen. An address of all
 * interfaces is asked on loopback. 0, or -1 + err. */
int hb_admin_client_init(hb_admin_client_t *c, const char *config, const char *listen, char *err,
                         size_t errlen);
void hb_admin_client_free(hb_admin_client_t *c);
/* One request with the bearer token; *status and *resp (malloc'd, NUL
 * terminated body) on an answer. 0, or -1 + err when there is none. */
int hb_admin_request(hb_admin_client_t *c, const char *method, const char *target, const char *body,
                     size_t body_len, int *status, char **resp, char *err, size_t errlen);

/* The same, for a JSON object answered with status `want`; NULL + err (the
 * status and the bridge's "error") otherwise. */
struct json_t;
struct json_t *hb_admin_request_json(hb_admin_client_t *c, const char *method, const char *target,
                                     const char *body, size_t body_len, int want, char *err,
                                     size_t errlen);

#endif
