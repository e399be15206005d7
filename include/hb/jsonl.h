/* One event as one JSON line, shared by the file sink and the dead-letter
 * file:
 *   {"received_at":...,"app_id":...,"topic":...,"id":...[,"sink":...,
 *    "error":...],"payload":<raw body>}\n
 * and, on a route other than "intercom":
 *   {"received_at":...,"route":...,"source":...,"topic":...,"id":...
 *    [,"delivery_attempts":n],"headers":{<forwarded>}[,"sink":...,"error":...],
 *    "payload":<raw body>}\n
 * The payload is the raw body with each CR or LF byte replaced by a space:
 * JSON strings cannot hold raw CR/LF, so those bytes are insignificant
 * whitespace and the JSON value (and the length) is unchanged. Pure. */
#ifndef HB_JSONL_H
#define HB_JSONL_H

#include <stddef.h>

#include "hb/sink.h"

/* Append the line to *buf (realloc'd; len and cap updated). sink and error
 * may be NULL. */
void hb_jsonl_event(const hb_msg_t *m, const char *sink, const char *error, char **buf, size_t *len,
                    size_t *cap);

#endif
