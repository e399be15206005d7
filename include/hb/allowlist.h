/* The source allowlist (intercom.allow_ips): a set of IPv4 and IPv6 CIDR
 * blocks, and whether a peer address falls in one of them.
 *
 * Parsed from a comma (or whitespace, or newline) separated list of blocks,
 * or from `file:/path` naming a file that holds such a list ('#' starts a
 * comment) or the JSON of address ranges that Intercom publishes per region,
 * shaped like AWS ip-ranges.json: of its `prefixes` (`ip_prefix`) and
 * `ipv6_prefixes` (`ipv6_prefix`), only the entries whose `service` is
 * INTERCOM-OUTBOUND are taken. A list that ends up empty is an error, not
 * "allow nobody": that would look like an outage, not like a setting.
 *
 * An hb_allowlist_t is immutable once built: any thread may match against
 * it; whoever swaps it (SIGHUP) must keep the old one until no thread uses
 * it. IPv4-mapped IPv6 peers (::ffff:a.b.c.d) match the IPv4 blocks. */
#ifndef HB_ALLOWLIST_H
#define HB_ALLOWLIST_H

#include <stddef.h>

struct sockaddr;

typedef struct hb_allowlist hb_allowlist_t;

/* Build from a setting: a list of blocks, or file:/path. An empty spec
 * gives NULL with err[0] = '\0' (no allowlist: every source allowed);
 * NULL with a message in err is an error. */
hb_allowlist_t *hb_allowlist_load(const char *spec, char *err, size_t errlen);
/* Build from the text of a list or of the JSON ranges (text need not be
 * NUL-terminated). NULL with a message in err on any error. */
hb_allowlist_t *hb_allowlist_parse(const char *text, size_t len, char *err, size_t errlen);
void hb_allowlist_free(hb_allowlist_t *al);

/* 1 if sa (AF_INET or AF_INET6) is in a block, else 0. */
int hb_allowlist_match(const hb_allowlist_t *al, const struct sockaddr *sa);
/* Number of blocks (IPv4 and IPv6 together). */
size_t hb_allowlist_count(const hb_allowlist_t *al);

#endif
