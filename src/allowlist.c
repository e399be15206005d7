/* The source allowlist. See include/hb/allowlist.h.
 *
 * Blocks are kept as 16-byte addresses with a prefix length, IPv4 ones in
 * their IPv4-mapped form (::ffff:0:0/96 + the IPv4 prefix), so that one
 * comparison serves both families and a dual-stack listener's mapped peers.
 * The lists are short (Intercom publishes a few dozen ranges per region),
 * so matching is a linear scan: no allocation, no lock. */
#include "hb/fmacros.h"

#include "hb/allowlist.h"
#include "hb/util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <jansson.h>

#define JSON_SERVICE "INTERCOM-OUTBOUND"

typedef struct {
    unsigned char addr[16];
    unsigned bits; /* 0..128, counted in the mapped form for IPv4 */
} block_t;

struct hb_allowlist {
    block_t *b;
    size_t n, cap;
};

static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static int prefix_match(const unsigned char *a, const unsigned char *net, unsigned bits)
{
    unsigned full = bits / 8, rest = bits % 8;
    if (memcmp(a, net, full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[full] & mask) == (net[full] & mask);
}

/* Parse one "addr[/bits]" block into al; -1 with err on a bad one. */
static int add_block(hb_allowlist_t *al, const char *s, size_t len, char *err, size_t errlen)
{
    char buf[INET6_ADDRSTRLEN + 8];
    if (len == 0 || len >= sizeof(buf)) {
        snprintf(err, errlen, "'%.*s' is not a CIDR block", (int)(len > 60 ? 60 : len), s);
        return -1;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *slash = strchr(buf, '/');
    long bits = -1;
    if (slash) {
        char *end;
        *slash = '\0';
        bits = strtol(slash + 1, &end, 10);
        if (end == slash + 1 || *end || !isdigit((unsigned char)slash[1]))
            bits = 999;
    }
    block_t blk;
    struct in_addr v4;
    if (inet_pton(AF_INET, buf, &v4) == 1) {
        if (bits == -1)
            bits = 32;
        if (bits > 32)
            goto bad;
        memcpy(blk.addr, v4_mapped, 12);
        memcpy(blk.addr + 12, &v4, 4);
        blk.bits = 96 + (unsigned)bits;
    } else if (inet_pton(AF_INET6, buf, blk.addr) == 1) {
        if (bits == -1)
            bits = 128;
        if (bits > 128)
            goto bad;
        blk.bits = (unsigned)bits;
    } else {
        goto bad;
    }
    /* Host bits set ("10.0.0.1/8") are most likely a typo for a narrower
     * block: refuse rather than silently allow the wider one. */
    for (unsigned i = blk.bits; i < 128; i++) {
        if (blk.addr[i / 8] & (0x80 >> (i % 8))) {
            snprintf(err, errlen, "'%.*s': address has bits set beyond the /%ld prefix", (int)len,
                     s, bits);
            return -1;
        }
    }
    if (al->n == al->cap) {
        al->cap = al->cap ? al->cap * 2 : 16;
        al->b = hb_realloc(al->b, al->cap * sizeof(*al->b));
    }
    al->b[al->n++] = blk;
    return 0;
bad:
    snprintf(err, errlen, "'%.*s' is not a CIDR block (address or address/bits)", (int)len, s);
    return -1;
}

static int parse_list(hb_allowlist_t *al, const char *t, size_t len, char *err, size_t errlen)
{
    size_t i = 0;
    while (i < len) {
        char c = t[i];
        if (c == '#') {
            while (i < len && t[i] != '\n')
                i++;
            continue;
        }
        if (c == ',' || isspace((unsigned char)c)) {
            i++;
            continue;
        }
        size_t start = i;
        while (i < len && t[i] != ',' && t[i] != '#' && !isspace((unsigned char)t[i]))
            i++;
        if (add_block(al, t + start, i - start, err, errlen) < 0)
            return -1;
    }
    return 0;
}

/* One array of the JSON ranges: take `field` of each INTERCOM-OUTBOUND
 * entry. A missing array is fine (a region may publish no IPv6). */
static int parse_json_array(hb_allowlist_t *al, json_t *root, const char *array, const char *field,
                            char *err, size_t errlen)
{
    json_t *arr = json_object_get(root, array);
    if (!arr)
        return 0;
    if (!json_is_array(arr)) {
        snprintf(err, errlen, "'%s' is not an array", array);
        return -1;
    }
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        const char *svc = json_string_value(json_object_get(e, "service"));
        if (!svc || strcmp(svc, JSON_SERVICE) != 0)
            continue;
        const char *p = json_string_value(json_object_get(e, field));
        if (!p) {
            snprintf(err, errlen, "%s[%zu]: no string '%s'", array, i, field);
            return -1;
        }
        if (add_block(al, p, strlen(p), err, errlen) < 0)
            return -1;
    }
    return 0;
}

static int parse_json(hb_allowlist_t *al, const char *t, size_t len, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loadb(t, len, JSON_REJECT_DUPLICATES, &je);
    if (!root || !json_is_object(root)) {
        snprintf(err, errlen, "JSON ranges: %s (line %d)", root ? "not an object" : je.text,
                 je.line);
        json_decref(root);
        return -1;
    }
    int rc = parse_json_array(al, root, "prefixes", "ip_prefix", err, errlen);
    if (rc == 0)
        rc = parse_json_array(al, root, "ipv6_prefixes", "ipv6_prefix", err, errlen);
    json_decref(root);
    return rc;
}

hb_allowlist_t *hb_allowlist_parse(const char *text, size_t len, char *err, size_t errlen)
{
    hb_allowlist_t *al = hb_calloc(1, sizeof(*al));
    size_t i = 0;
    while (i < len && isspace((unsigned char)text[i]))
        i++;
    int json = i < len && text[i] == '{';
    int rc = json ? parse_json(al, text, len, err, errlen) : parse_list(al, text, len, err, errlen);
    if (rc == 0 && al->n == 0) {
        snprintf(err, errlen,
                 json ? "no " JSON_SERVICE " ranges in the JSON (every source would be refused)"
                      : "no CIDR block (every source would be refused)");
        rc = -1;
    }
    if (rc < 0) {
        hb_allowlist_free(al);
        return NULL;
    }
    return al;
}

hb_allowlist_t *hb_allowlist_load(const char *spec, char *err, size_t errlen)
{
    err[0] = '\0';
    if (!spec || spec[0] == '\0')
        return NULL;
    if (strncmp(spec, "file:", 5) != 0)
        return hb_allowlist_parse(spec, strlen(spec), err, errlen);
    size_t len;
    char *text = hb_read_file(spec + 5, &len);
    if (!text) {
        snprintf(err, errlen, "cannot read %s", spec + 5);
        return NULL;
    }
    char why[256];
    hb_allowlist_t *al = hb_allowlist_parse(text, len, why, sizeof(why));
    free(text);
    if (!al)
        snprintf(err, errlen, "%s: %s", spec + 5, why);
    return al;
}

void hb_allowlist_free(hb_allowlist_t *al)
{
    if (!al)
        return;
    free(al->b);
    free(al);
}

int hb_allowlist_match(const hb_allowlist_t *al, const struct sockaddr *sa)
{
    unsigned char a[16];
    if (sa->sa_family == AF_INET) {
        memcpy(a, v4_mapped, 12);
        memcpy(a + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        memcpy(a, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    } else {
        return 0;
    }
    for (size_t i = 0; i < al->n; i++)
        if (prefix_match(a, al->b[i].addr, al->b[i].bits))
            return 1;
    return 0;
}

size_t hb_allowlist_count(const hb_allowlist_t *al)
{
    return al ? al->n : 0;
}
