/* TLS context management. See include/hb/tls.h.
 *
 * Policy: TLS 1.2 only with ECDHE key exchange and AEAD ciphers (tls.ciphers,
 * default in src/config.c), TLS 1.3 with OpenSSL's default suites unless
 * tls.ciphersuites says otherwise, no session tickets, no renegotiation,
 * no compression, buffers released while a connection is idle. */
#include "hb/fmacros.h"

#include "hb/tls.h"
#include "hb/log.h"
#include "hb/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/bn.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define C "tls"

#define HB_TLS_WATCH_S 2 /* how often the watcher looks at the files */

typedef struct {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} stamp_t;

struct hb_tls {
    pthread_mutex_t lock; /* guards ctx: taken by HTTP threads per connection */
    SSL_CTX *ctx;
    /* the watcher; wlock guards conf and the stamps */
    pthread_mutex_t wlock;
    pthread_cond_t wcond;
    pthread_t watcher;
    int watching, stop;
    hb_config_t conf; /* only the keys make_ctx reads */
    stamp_t cert_stamp, key_stamp;
};

static void ssl_err(char *err, size_t errlen, const char *what, const char *path)
{
    unsigned long e = ERR_get_error();
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    snprintf(err, errlen, "%s %s: %s", what, path, e ? buf : strerror(errno));
    ERR_clear_error();
}

int hb_tls_generate_self_signed(const char *cert_path, const char *key_path, char *err,
                                size_t errlen)
{
    int rc = -1, fd = -1;
    FILE *fp = NULL;
    X509 *x = NULL;
    X509_EXTENSION *ext = NULL;
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    if (!pkey) {
        ssl_err(err, errlen, "generate key", "P-256");
        goto cleanup;
    }
    x = X509_new();
    if (!x)
        hb_oom("X509_new");
    X509_set_version(x, 2);
    unsigned char serial[16];
    if (RAND_bytes(serial, sizeof(serial)) == 1) {
        serial[0] &= 0x7f;
        BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
        BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
        BN_free(bn);
    }
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 24 * 3600);
    X509_set_pubkey(x, pkey);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"hookbridge", -1,
                               -1, 0);
    X509_set_issuer_name(x, name);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1");
    if (ext)
        X509_add_ext(x, ext, -1);
    if (!X509_sign(x, pkey, EVP_sha256())) {
        ssl_err(err, errlen, "sign", cert_path);
        goto cleanup;
    }
    /* 0600 from creation on (umask can only narrow it), and fchmod for a
     * file that existed with a wider mode: O_CREAT does not change it */
    fd = open(key_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || fchmod(fd, 0600) < 0 || !(fp = fdopen(fd, "w"))) {
        snprintf(err, errlen, "%s: %s", key_path, strerror(errno));
        goto cleanup;
    }
    fd = -1;
    if (!PEM_write_PrivateKey(fp, pkey, NULL, NULL, 0, NULL, NULL) || fclose(fp) != 0) {
        fp = NULL;
        ssl_err(err, errlen, "write", key_path);
        goto cleanup;
    }
    fp = fopen(cert_path, "w");
    if (!fp || !PEM_write_X509(fp, x) || fclose(fp) != 0) {
        fp = NULL;
        ssl_err(err, errlen, "write", cert_path);
        goto cleanup;
    }
    fp = NULL;
    rc = 0;
cleanup:
    if (fp)
        fclose(fp);
    if (fd >= 0)
        close(fd);
    X509_EXTENSION_free(ext);
    X509_free(x);
    EVP_PKEY_free(pkey);
    return rc;
}

/* The certificate and key paths, generating the dev pair when unset. */
static int pair_paths(const hb_config_t *cfg, char *cert, char *key, size_t len, char *err,
                      size_t errlen)
{
    if (cfg->tls_cert[0]) {
        snprintf(cert, len, "%s", cfg->tls_cert);
        snprintf(key, len, "%s", cfg->tls_key);
        return 0;
    }
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof(dir) - 32, "%s/tls", cfg->data_dir) >= (int)sizeof(dir) - 32) {
        snprintf(err, errlen, "data.dir: path too long");
        return -1;
    }
    snprintf(cert, len, "%.*s/self-signed.crt", (int)(sizeof(dir) - 32), dir);
    snprintf(key, len, "%.*s/self-signed.key", (int)(sizeof(dir) - 32), dir);
    if (access(cert, R_OK) == 0 && access(key, R_OK) == 0)
        return 0;
    if (hb_mkdir_p(dir, 0700) < 0) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    if (hb_tls_generate_self_signed(cert, key, err, errlen) < 0)
        return -1;
    hb_warn(C,
            "no tls.cert/tls.key configured: generated a self-signed certificate %s (for "
            "development; configure a real certificate for production)",
            cert);
    return 0;
}

static SSL_CTX *make_ctx(const hb_config_t *cfg, char *err, size_t errlen)
{
    char cert[PATH_MAX], key[PATH_MAX];
    if (pair_paths(cfg, cert, key, sizeof(cert), err, errlen) < 0)
        return NULL;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        hb_oom("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(ctx, strcmp(cfg->tls_min_version, "1.3") == 0 ? TLS1_3_VERSION
                                                                                : TLS1_2_VERSION);
    /* No session tickets: their key would live as long as the process,
     * and whoever reads it later decrypts every TLS 1.2 session ever
     * resumed with it. Resumption goes through the server-side session
     * cache instead (TLS 1.3 then sends stateful tickets, ids into it). */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION | SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    /* idle keep-alive connections give their read and write buffers back */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* hb_config_finish checked both lists with OpenSSL already */
    if (SSL_CTX_set_cipher_list(ctx, cfg->tls_ciphers) != 1) {
        ssl_err(err, errlen, "tls.ciphers: not accepted:", cfg->tls_ciphers);
        goto fail;
    }
    if (cfg->tls_ciphersuites[0] && SSL_CTX_set_ciphersuites(ctx, cfg->tls_ciphersuites) != 1) {
        ssl_err(err, errlen, "tls.ciphersuites: not accepted:", cfg->tls_ciphersuites);
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        ssl_err(err, errlen, "tls.cert: cannot load", cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        ssl_err(err, errlen, "tls.key: cannot load", key);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ssl_err(err, errlen, "tls.key: does not match the certificate", key);
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* What identifies a file's content without reading it: a renewal tool
 * that writes in place changes mtime and size, one that renames a new file
 * into place changes the inode. */
static void stamp_of(const char *path, stamp_t *out)
{
    struct stat st;
    memset(out, 0, sizeof(*out));
    if (path[0] && stat(path, &st) == 0) {
        out->dev = st.st_dev;
        out->ino = st.st_ino;
        out->size = st.st_size;
        out->mtime = st.st_mtim;
    }
}

static int stamp_eq(const stamp_t *a, const stamp_t *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* The keys make_ctx reads, copied: the watcher outlives the caller's
 * config (SIGHUP frees the one it loaded). */
static void conf_copy(hb_config_t *dst, const hb_config_t *src)
{
    hb_config_free(dst);
    memset(dst, 0, sizeof(*dst));
    dst->tls_cert = hb_strdup(src->tls_cert);
    dst->tls_key = hb_strdup(src->tls_key);
    dst->tls_min_version = hb_strdup(src->tls_min_version);
    dst->tls_ciphers = hb_strdup(src->tls_ciphers);
    dst->tls_ciphersuites = hb_strdup(src->tls_ciphersuites);
    dst->data_dir = hb_strdup(src->data_dir);
}

static void swap_ctx(hb_tls_t *t, SSL_CTX *ctx)
{
    pthread_mutex_lock(&t->lock);
    SSL_CTX *old = t->ctx;
    t->ctx = ctx;
    pthread_mutex_unlock(&t->lock);
    SSL_CTX_free(old); /* live SSLs hold their own reference */
}

/* Load the pair of `conf` and remember what the files looked like before
 * reading them: a change during the load is seen at the next look. Called
 * with wlock held. */
static int load_locked(hb_tls_t *t, char *err, size_t errlen)
{
    stamp_of(t->conf.tls_cert, &t->cert_stamp);
    stamp_of(t->conf.tls_key, &t->key_stamp);
    SSL_CTX *ctx = make_ctx(&t->conf, err, errlen);
    if (!ctx)
        return -1;
    swap_ctx(t, ctx);
    return 0;
}

/* Certificates are renewed on disk (certbot, cert-manager) more often than
 * anyone remembers to send SIGHUP: look at the files every few seconds and
 * load them when they changed. A pair that does not load (a renewal tool
 * half-way between writing the certificate and the key) keeps the old one
 * and is tried again when the files change again. */
static void *watch(void *arg)
{
    hb_tls_t *t = arg;
    hb_thread_name("hb-tlswatch");
    pthread_mutex_lock(&t->wlock);
    while (!t->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += HB_TLS_WATCH_S;
        pthread_cond_timedwait(&t->wcond, &t->wlock, &ts);
        if (t->stop || !t->conf.tls_cert[0])
            continue;
        stamp_t c, k;
        stamp_of(t->conf.tls_cert, &c);
        stamp_of(t->conf.tls_key, &k);
        if (stamp_eq(&c, &t->cert_stamp) && stamp_eq(&k, &t->key_stamp))
            continue;
        char err[512];
        if (load_locked(t, err, sizeof(err)) < 0)
            hb_error(C,
                     "tls.cert or tls.key changed on disk but does not load (keeping the old "
                     "pair): %s",
                     err);
        else
            hb_info(C, "tls.cert or tls.key changed on disk: serving the new pair from %s",
                    t->conf.tls_cert);
    }
    pthread_mutex_unlock(&t->wlock);
    return NULL;
}

hb_tls_t *hb_tls_new(const hb_config_t *cfg, char *err, size_t errlen)
{
    hb_tls_t *t = hb_calloc(1, sizeof(*t));
    pthread_mutex_init(&t->lock, NULL);
    pthread_mutex_init(&t->wlock, NULL);
    pthread_cond_init(&t->wcond, NULL);
    conf_copy(&t->conf, cfg);
    if (load_locked(t, err, errlen) < 0) {
        hb_tls_free(t);
        return NULL;
    }
    if (pthread_create(&t->watcher, NULL, watch, t) == 0)
        t->watching = 1;
    else
        hb_warn(C, "cannot start the certificate watcher: reload with SIGHUP");
    return t;
}

int hb_tls_reload(hb_tls_t *t, const hb_config_t *cfg, char *err, size_t errlen)
{
    pthread_mutex_lock(&t->wlock);
    hb_config_t prev = t->conf;
    memset(&t->conf, 0, sizeof(t->conf));
    conf_copy(&t->conf, cfg);
    int rc = load_locked(t, err, errlen);
    if (rc < 0) {
        /* the old pair stays, and so do the paths the watcher looks at */
        hb_config_free(&t->conf);
        t->conf = prev;
    } else {
        hb_config_free(&prev);
    }
    pthread_mutex_unlock(&t->wlock);
    return rc;
}

SSL *hb_tls_new_ssl(hb_tls_t *t)
{
    pthread_mutex_lock(&t->lock);
    SSL *ssl = SSL_new(t->ctx);
    pthread_mutex_unlock(&t->lock);
    return ssl;
}

void hb_tls_free(hb_tls_t *t)
{
    if (!t)
        return;
    if (t->watching) {
        pthread_mutex_lock(&t->wlock);
        t->stop = 1;
        pthread_cond_signal(&t->wcond);
        pthread_mutex_unlock(&t->wlock);
        pthread_join(t->watcher, NULL);
    }
    SSL_CTX_free(t->ctx);
    hb_config_free(&t->conf);
    pthread_cond_destroy(&t->wcond);
    pthread_mutex_destroy(&t->wlock);
    pthread_mutex_destroy(&t->lock);
    free(t);
}
