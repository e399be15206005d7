/* `hookbridge --health`: the container's HEALTHCHECK. It asks the running
 * process's /healthz on admin.listen, read from the same configuration and
 * HOOKBRIDGE_* overrides the server uses, so the check follows the port
 * wherever the operator moves it and the image needs no curl. A one-shot
 * command with blocking sockets; never called from an event loop. */
#ifndef HB_HEALTH_H
#define HB_HEALTH_H

#include <stddef.h>

/* GET /healthz on `admin_listen` ("host:port"; a wildcard address is
 * probed on loopback) within `timeout_ms` overall per step. 0 when the
 * answer is 200, otherwise -1 with the reason in err. */
int hb_health_check(const char *admin_listen, int timeout_ms, char *err, size_t errlen);

#endif
