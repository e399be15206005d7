/* The source allowlist: CIDR lists, the JSON ranges Intercom publishes
 * (only INTERCOM-OUTBOUND entries), IPv4-mapped peers, and the settings
 * that must be refused rather than silently allow or refuse everyone. */
#include "test.h"

#include "hb/allowlist.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static int match(const hb_allowlist_t *al, const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1)
        v4->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, ip, &v6->sin6_addr) == 1)
        v6->sin6_family = AF_INET6;
    else
        abort();
    return hb_allowlist_match(al, (struct sockaddr *)&ss);
}

static hb_allowlist_t *parse(const char *text, char *err, size_t errlen)
{
    return hb_allowlist_parse(text, strlen(text), err, errlen);
}

static void test_list(void)
{
    char err[256];
    hb_allowlist_t *al = parse("10.1.0.0/16, 192.0.2.7,2001:db8::/32\n# comment 1.1.1.1\n"
                               "198.51.100.128/25",
                               err, sizeof(err));
    ok(al != NULL, "a mixed list parses (%s)", al ? "" : err);
    if (!al)
        return;
    is_int((long long)hb_allowlist_count(al), 4, "four blocks; the comment is skipped");
    ok(match(al, "10.1.255.3"), "inside a /16");
    ok(!match(al, "10.2.0.1"), "outside the /16");
    ok(match(al, "192.0.2.7") && !match(al, "192.0.2.8"), "a bare address is a /32");
    ok(match(al, "198.51.100.200") && !match(al, "198.51.100.127"), "a /25 splits a byte");
    ok(match(al, "2001:db8:1::5") && !match(al, "2001:db9::1"), "an IPv6 /32");
    ok(match(al, "::ffff:10.1.2.3"), "an IPv4-mapped peer matches the IPv4 block");
    ok(!match(al, "::ffff:1.1.1.1"), "the comment's address is not a block");
    ok(!match(al, "::a01:203"), "an IPv6 peer never matches an IPv4 block by its low bits");
    hb_allowlist_free(al);
}

static void test_json(void)
{
    char err[256];
    const char *j =
        "{\"syncToken\":\"1\",\"prefixes\":["
        "{\"ip_prefix\":\"34.197.76.213/32\",\"region\":\"us-east-1\","
        "\"service\":\"INTERCOM-OUTBOUND\"},"
        "{\"ip_prefix\":\"52.0.0.0/8\",\"region\":\"us-east-1\",\"service\":\"AMAZON\"},"
        "{\"ip_prefix\":\"35.171.78.0/24\",\"service\":\"INTERCOM-OUTBOUND\"}],"
        "\"ipv6_prefixes\":[{\"ipv6_prefix\":\"2600:1f18::/36\","
        "\"service\":\"INTERCOM-OUTBOUND\"}]}";
    hb_allowlist_t *al = parse(j, err, sizeof(err));
    ok(al != NULL, "the JSON ranges parse (%s)", al ? "" : err);
    if (!al)
        return;
    is_int((long long)hb_allowlist_count(al), 3, "only the INTERCOM-OUTBOUND entries");
    ok(match(al, "34.197.76.213") && match(al, "35.171.78.9"), "IPv4 ranges of the JSON");
    ok(!match(al, "52.1.2.3"), "another service's range is not taken");
    ok(match(al, "2600:1f18::1"), "IPv6 ranges of the JSON");
    hb_allowlist_free(al);
}

static void test_errors(void)
{
    char err[256];
    const char *bad[] = {"10.0.0.0/33",
                         "10.0.0.1/8",
                         "host.example",
                         "1.2.3.4/",
                         "1.2.3.4/x",
                         "::1/129",
                         "",
                         " , # nothing\n",
                         "{\"prefixes\":[{\"ip_prefix\":\"1.2.3.0/24\",\"service\":\"S3\"}]}",
                         "{\"prefixes\":[",
                         "{\"prefixes\":[{\"service\":\"INTERCOM-OUTBOUND\"}]}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        hb_allowlist_t *al = parse(bad[i], err, sizeof(err));
        ok(al == NULL && err[0], "refused: '%s' (%s)", bad[i], err);
        hb_allowlist_free(al);
    }
    hb_allowlist_t *none = hb_allowlist_load("", err, sizeof(err));
    ok(none == NULL && err[0] == '\0', "an empty setting is no allowlist, not an error");
    none = hb_allowlist_load("file:/nonexistent/ranges.json", err, sizeof(err));
    ok(none == NULL && strstr(err, "/nonexistent/ranges.json"), "a missing file is named");
}

static void test_file(void)
{
    char path[] = "/tmp/hb-test-allowlist.XXXXXX";
    int fd = mkstemp(path);
    ok(fd >= 0, "temp file");
    if (fd < 0)
        return;
    const char *text = "# ranges\n203.0.113.0/24\n\n2001:db8:ff::/48  # v6\n";
    ok(write(fd, text, strlen(text)) == (ssize_t)strlen(text), "written");
    close(fd);
    char spec[64], err[256];
    snprintf(spec, sizeof(spec), "file:%s", path);
    hb_allowlist_t *al = hb_allowlist_load(spec, err, sizeof(err));
    ok(al && hb_allowlist_count(al) == 2, "file: with one block per line and comments");
    ok(al && match(al, "203.0.113.77") && match(al, "2001:db8:ff::9") && !match(al, "8.8.8.8"),
       "blocks of the file match");
    hb_allowlist_free(al);
    unlink(path);
}

int main(void)
{
    test_list();
    test_json();
    test_errors();
    test_file();
    return done_testing();
}
