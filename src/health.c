/* The self-check behind `hookbridge --health` (see hb/health.h). Plain
 * blocking HTTP/1.0 over a socket with send and receive timeouts: it runs
 * once in its own short-lived process, so blocking is what we want. */
#include "hb/fmacros.h"

#include "hb/health.h"
#include "hb/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* The admin endpoint may listen on every address; the probe runs in the
 * same network namespace, so loopback reaches it. */
static void to_loopback(struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
        if (v4->sin_addr.s_addr == htonl(INADDR_ANY))
            v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else {
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
        if (IN6_IS_ADDR_UNSPECIFIED(&v6->sin6_addr))
            v6->sin6_addr = in6addr_loopback;
    }
}

int hb_health_check(const char *admin_listen, int timeout_ms, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    int sslen, rc = -1, fd = -1;
    char buf[256];
    size_t got = 0;
    if (hb_parse_listen(admin_listen, &ss, &sslen) < 0) {
        snprintf(err, errlen, "admin.listen: '%s' is not a numeric address:port", admin_listen);
        return -1;
    }
    to_loopback(&ss);
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        goto cleanup;
    }
    /* SO_SNDTIMEO bounds connect() too on Linux */
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&ss, (socklen_t)sslen) < 0) {
        snprintf(err, errlen, "cannot connect to admin.listen %s: %s", admin_listen,
                 strerror(errno));
        goto cleanup;
    }
    static const char req[] = "GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n";
    if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof(req) - 1)) {
        snprintf(err, errlen, "cannot send to %s: %s", admin_listen, strerror(errno));
        goto cleanup;
    }
    /* only the status line matters: "HTTP/1.x 200 ..." */
    while (got < sizeof(buf) - 1 && !memchr(buf, '\n', got)) {
        ssize_t n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    if (strncmp(buf, "HTTP/1.", 7) == 0 && strncmp(buf + 8, " 200", 4) == 0) {
        rc = 0;
    } else {
        char *eol = strpbrk(buf, "\r\n");
        if (eol)
            *eol = '\0';
        snprintf(err, errlen, "GET http://%s/healthz: %s", admin_listen, got ? buf : "no answer");
    }
cleanup:
    if (fd >= 0)
        close(fd);
    return rc;
}
