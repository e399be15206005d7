/* TLS for the HTTPS listener: the server SSL_CTX, the self-signed dev
 * default, and reload on SIGHUP.
 *
 * The current SSL_CTX is swapped under a mutex; an SSL made from the old
 * one keeps its own reference, so open connections are never dropped by a
 * reload. A watcher thread (started by hb_tls_new, joined by hb_tls_free)
 * reloads a configured pair when its files change on disk. hb_tls_new_ssl
 * is called from the HTTP threads, the rest from the main thread. */
#ifndef HB_TLS_H
#define HB_TLS_H

#include <stddef.h>

#include "hb/config.h"

typedef struct hb_tls hb_tls_t;
struct ssl_st;

hb_tls_t *hb_tls_new(const hb_config_t *cfg, char *err, size_t errlen);
/* Load the certificate and key again; on failure the old pair stays. */
int hb_tls_reload(hb_tls_t *t, const hb_config_t *cfg, char *err, size_t errlen);
struct ssl_st *hb_tls_new_ssl(hb_tls_t *t);
void hb_tls_free(hb_tls_t *t);

/* Generate a self-signed P-256 pair for localhost into the two files. */
int hb_tls_generate_self_signed(const char *cert_path, const char *key_path, char *err,
                                size_t errlen);

#endif
