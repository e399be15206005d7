/* Blocking admin client for the commands. See include/hb/cli_admin.h.
 *
 * HTTP/1.0 with Connection: close, so an answer is everything until the
 * server closes (evhttp sends Content-Length and closes). */
#include "hb/fmacros.h"

#include "hb/cli_admin.h"
#include "hb/config.h"
#include "hb/util.h"

#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int hb_admin_client_init(hb_admin_client_t *c, const char *config, const char *listen, char *err,
                         size_t errlen)
{
    hb_config_t cfg;
    int rc = -1;
    memset(c, 0, sizeof(*c));
    if (hb_config_load_unchecked(&cfg, config, err, errlen) < 0)
        goto cleanup;
    const char *addr = listen ? listen : cfg.admin_listen;
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || !colon[1]) {
        snprintf(err, errlen, "admin address '%s' is not host:port", addr);
        goto cleanup;
    }
    snprintf(c->host, sizeof(c->host), "%.*s", (int)(colon - addr), addr);
    snprintf(c->port, sizeof(c->port), "%s", colon + 1);
    if (c->host[0] == '[') {
        memmove(c->host, c->host + 1, strlen(c->host));
        c->host[strlen(c->host) - 1] = '\0';
    }
    if (!strcmp(c->host, "0.0.0.0"))
        snprintf(c->host, sizeof(c->host), "127.0.0.1");
    else if (!strcmp(c->host, "::"))
        snprintf(c->host, sizeof(c->host), "::1");
    if (hb_config_secret("admin.token", cfg.admin_token, &c->token, err, errlen) < 0)
        goto cleanup;
    rc = 0;
cleanup:
    hb_config_free(&cfg);
    return rc;
}

void hb_admin_client_free(hb_admin_client_t *c)
{
    free(c->token);
    c->token = NULL;
}

static int connect_to(const hb_admin_client_t *c, char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(c->host, c->port, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "admin listener %s:%s: %s", c->host, c->port, gai_strerror(gai));
        return -1;
    }
    int fd = -1, saved = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            saved = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        snprintf(err, errlen, "cannot reach the bridge's admin listener %s:%s: %s (is it running?)",
                 c->host, c->port, strerror(saved));
    return fd;
}

int hb_admin_request(hb_admin_client_t *c, const char *method, const char *target, const char *body,
                     size_t body_len, int *status, char **resp, char *err, size_t errlen)
{
    int fd = connect_to(c, err, errlen);
    if (fd < 0)
        return -1;
    int rc = -1;
    size_t hlen = strlen(method) + strlen(target) + strlen(c->token) + 200;
    char *head = hb_malloc(hlen), *in = NULL;
    size_t len = 0, cap = 0;
    snprintf(head, hlen,
             "%s %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\nContent-Length: %zu\r\n%s%s%s"
             "\r\n",
             method, target, c->host, body_len, c->token[0] ? "Authorization: Bearer " : "",
             c->token, c->token[0] ? "\r\n" : "");
    if (hb_write_full(fd, head, strlen(head)) < 0 ||
        (body_len && hb_write_full(fd, body, body_len) < 0)) {
        snprintf(err, errlen, "admin listener: cannot send: %s", strerror(errno));
        goto cleanup;
    }
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 16384;
            in = hb_realloc(in, cap);
        }
        ssize_t n = read(fd, in + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "admin listener: %s", strerror(errno));
            goto cleanup;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (!in)
        in = hb_malloc(1);
    in[len] = '\0';
    char *sep = strstr(in, "\r\n\r\n");
    if (!sep || sscanf(in, "HTTP/%*d.%*d %d", status) != 1) {
        snprintf(err, errlen, "admin listener: not an HTTP answer");
        goto cleanup;
    }
    sep += 4;
    memmove(in, sep, strlen(sep) + 1);
    *resp = in;
    in = NULL;
    rc = 0;
cleanup:
    explicit_bzero(head, hlen); /* it held the token */
    free(head);
    free(in);
    close(fd);
    return rc;
}

json_t *hb_admin_request_json(hb_admin_client_t *c, const char *method, const char *target,
                              const char *body, size_t body_len, int want, char *err, size_t errlen)
{
    int status = 0;
    char *resp = NULL;
    if (hb_admin_request(c, method, target, body, body_len, &status, &resp, err, errlen) < 0)
        return NULL;
    json_t *o = json_loads(resp, 0, NULL);
    if (status != want || !json_is_object(o)) {
        const char *why = json_string_value(json_object_get(o, "error"));
        snprintf(err, errlen, "the bridge answered %d: %s", status, why ? why : resp);
        json_decref(o);
        o = NULL;
    }
    free(resp);
    return o;
}
