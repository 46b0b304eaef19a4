/* test_proxy.c: track.trusted_proxies (netlist.h) on values built in
 * memory: the CIDR list parser (separators, bare addresses, IPv6, mapped
 * IPv4, and each kind of bad entry named in the message), membership, and
 * the X-Forwarded-For walk (rightmost untrusted address, several headers
 * joined in order, a peer that is not trusted, garbage that stops the walk
 * at the last good address). Also the config key through config_load. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include "selo/config.h"
#include "selo/netlist.h"
#include "t.h"

static struct sockaddr_storage addr(const char *text)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, text, &s4->sin_addr) == 1)
		s4->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, text, &s6->sin6_addr) == 1)
		s6->sin6_family = AF_INET6;
	else
		abort();
	return ss;
}

static int has(const struct netlist *l, const char *text)
{
	struct sockaddr_storage ss = addr(text);
	return netlist_has(l, (struct sockaddr *)&ss);
}

static struct netlist list(const char *text)
{
	struct netlist l;
	char why[200];
	if (netlist_parse(text, &l, why, sizeof(why)) != 0) {
		fprintf(stderr, "  unexpected: %s\n", why);
		abort();
	}
	return l;
}

/* The client netlist_client picks, as text ("" for -1). */
static const char *client(const struct netlist *l, const char *peer, const char *const *xff,
			  size_t n, int *from)
{
	static char out[INET6_ADDRSTRLEN];
	struct sockaddr_storage p = addr(peer), c;
	out[0] = '\0';
	*from = netlist_client(l, (struct sockaddr *)&p, xff, n, &c);
	if (*from < 0)
		return out;
	if (c.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&c)->sin_addr, out, sizeof(out));
	else
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&c)->sin6_addr, out, sizeof(out));
	return out;
}

TEST(parse_separators_and_bare_addresses)
{
	struct netlist l = list(" 127.0.0.1,10.0.0.0/8  fd00::/8 ,\t::1 ");
	CHECK(l.n == 4);
	CHECK(has(&l, "127.0.0.1"));
	CHECK(!has(&l, "127.0.0.2")); /* bare = /32 */
	CHECK(has(&l, "10.200.3.4"));
	CHECK(!has(&l, "11.0.0.1"));
	CHECK(has(&l, "fd12:3456::1"));
	CHECK(!has(&l, "fe80::1"));
	CHECK(has(&l, "::1"));
	CHECK(!has(&l, "::2")); /* bare = /128 */
}

TEST(parse_empty_is_the_empty_list)
{
	struct netlist l = list("");
	CHECK(l.n == 0);
	CHECK(!has(&l, "127.0.0.1"));
	l = list(" , ,");
	CHECK(l.n == 0);
	CHECK(netlist_has(&l, NULL) == 0);
}

TEST(parse_prefix_edges)
{
	struct netlist l = list("0.0.0.0/0");
	CHECK(has(&l, "203.0.113.9") && !has(&l, "2001:db8::1"));
	l = list("::/0");
	CHECK(has(&l, "2001:db8::1") && !has(&l, "203.0.113.9"));
	l = list("192.168.4.0/22");
	CHECK(has(&l, "192.168.7.255") && !has(&l, "192.168.8.0") && !has(&l, "192.168.3.255"));
	l = list("2001:db8:a:8000::/49");
	CHECK(has(&l, "2001:db8:a:ffff::1") && !has(&l, "2001:db8:a:7fff::1"));
}

TEST(mapped_ipv4_matches_either_way)
{
	struct netlist l = list("127.0.0.1");
	CHECK(has(&l, "::ffff:127.0.0.1")); /* a dual-stack socket's IPv4 peer */
	l = list("::ffff:10.0.0.0/104");
	CHECK(l.p[0].family == AF_INET && l.p[0].len == 8);
	CHECK(has(&l, "10.9.9.9") && has(&l, "::ffff:10.1.1.1") && !has(&l, "11.0.0.1"));
}

TEST(parse_errors_name_the_entry)
{
	struct netlist l;
	char why[200];
	CHECK(netlist_parse("127.0.0.1, nginx.local", &l, why, sizeof(why)) == -1);
	CHECK(strstr(why, "\"nginx.local\" is not an IPv4 or IPv6 address") != NULL);
	CHECK(netlist_parse("10.0.0.0/33", &l, why, sizeof(why)) == -1);
	CHECK(strstr(why, "10.0.0.0/33") && strstr(why, "0 to 32"));
	CHECK(netlist_parse("fd00::/129", &l, why, sizeof(why)) == -1);
	CHECK(strstr(why, "0 to 128") != NULL);
	CHECK(netlist_parse("10.0.0.0/", &l, why, sizeof(why)) == -1);
	CHECK(netlist_parse("10.0.0.0/8x", &l, why, sizeof(why)) == -1);
	CHECK(netlist_parse("10.0.0.0/-1", &l, why, sizeof(why)) == -1);
	CHECK(netlist_parse("10.1.2.3/8", &l, why, sizeof(why)) == -1);
	CHECK(strstr(why, "bits set past the prefix") != NULL);
	CHECK(netlist_parse("fd00::1/8", &l, why, sizeof(why)) == -1);
	CHECK(netlist_parse("1.2.3", &l, why, sizeof(why)) == -1);
	CHECK(netlist_parse("fe80::1%eth0", &l, why, sizeof(why)) == -1);
	char big[200];
	memset(big, '1', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CHECK(netlist_parse(big, &l, why, sizeof(why)) == -1);
	char many[2000] = "";
	for (int i = 0; i <= NETLIST_MAX; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many), "10.0.%d.1 ", i);
	CHECK(netlist_parse(many, &l, why, sizeof(why)) == -1);
	CHECK(strstr(why, "more than") != NULL);
}

TEST(walk_untrusted_peer_ignores_the_header)
{
	struct netlist l = list("127.0.0.1");
	const char *xff[] = {"198.51.100.7"};
	int from;
	CHECK_STR(client(&l, "127.0.0.9", xff, 1, &from), "127.0.0.9");
	CHECK(from == 0);
	struct netlist none = list("");
	CHECK_STR(client(&none, "127.0.0.1", xff, 1, &from), "127.0.0.1");
	CHECK(from == 0);
}

TEST(walk_takes_the_rightmost_untrusted)
{
	struct netlist l = list("127.0.0.1, 10.0.0.0/8");
	int from;
	/* The client forged "6.6.6.6"; our proxies appended what they saw. */
	const char *xff[] = {"6.6.6.6, 198.51.100.7, 10.1.1.1"};
	CHECK_STR(client(&l, "127.0.0.1", xff, 1, &from), "198.51.100.7");
	CHECK(from == 1);
	const char *one[] = {"198.51.100.7"};
	CHECK_STR(client(&l, "127.0.0.1", one, 1, &from), "198.51.100.7");
	const char *v6[] = {"2001:db8::5"};
	CHECK_STR(client(&l, "127.0.0.1", v6, 1, &from), "2001:db8::5");
}

TEST(walk_joins_several_headers_in_order)
{
	struct netlist l = list("127.0.0.1 10.0.0.0/8");
	int from;
	const char *xff[] = {"6.6.6.6", "198.51.100.7", "10.0.0.2, 10.0.0.3"};
	CHECK_STR(client(&l, "127.0.0.1", xff, 3, &from), "198.51.100.7");
	const char *split[] = {"6.6.6.6, 198.51.100.8", "10.0.0.2"};
	CHECK_STR(client(&l, "127.0.0.1", split, 2, &from), "198.51.100.8");
}

TEST(walk_all_trusted_gives_the_leftmost)
{
	struct netlist l = list("127.0.0.1 10.0.0.0/8");
	int from;
	const char *xff[] = {"10.0.0.5, 10.0.0.6"};
	CHECK_STR(client(&l, "127.0.0.1", xff, 1, &from), "10.0.0.5");
	CHECK(from == 1);
	CHECK_STR(client(&l, "127.0.0.1", NULL, 0, &from), "127.0.0.1");
	CHECK(from == 0);
}

TEST(walk_stops_at_garbage)
{
	struct netlist l = list("127.0.0.1 10.0.0.0/8");
	int from;
	const char *bad[] = {"198.51.100.7, garbage, 10.0.0.6"};
	CHECK_STR(client(&l, "127.0.0.1", bad, 1, &from), "10.0.0.6");
	CHECK(from == 1);
	const char *bad_first[] = {"198.51.100.7, unknown"};
	CHECK_STR(client(&l, "127.0.0.1", bad_first, 1, &from), "127.0.0.1");
	CHECK(from == 0);
	const char *empty_entry[] = {"198.51.100.7,,10.0.0.6"};
	CHECK_STR(client(&l, "127.0.0.1", empty_entry, 1, &from), "10.0.0.6");
	const char *empty[] = {""};
	CHECK_STR(client(&l, "127.0.0.1", empty, 1, &from), "127.0.0.1");
	const char *trailing[] = {"198.51.100.7, "};
	CHECK_STR(client(&l, "127.0.0.1", trailing, 1, &from), "127.0.0.1");
	const char *cidr[] = {"198.51.100.0/24"};
	CHECK_STR(client(&l, "127.0.0.1", cidr, 1, &from), "127.0.0.1");
	const char *huge[] = {"1111111111111111111111111111111111111111111111111111111111111111111"};
	CHECK_STR(client(&l, "127.0.0.1", huge, 1, &from), "127.0.0.1");
	const char *later[] = {"junk", "198.51.100.9"};
	CHECK_STR(client(&l, "127.0.0.1", later, 2, &from), "198.51.100.9");
}

TEST(walk_entry_forms)
{
	struct netlist l = list("127.0.0.1");
	int from;
	const char *port4[] = {" 198.51.100.7:4711 "};
	CHECK_STR(client(&l, "127.0.0.1", port4, 1, &from), "198.51.100.7");
	const char *br[] = {"[2001:db8::7]"};
	CHECK_STR(client(&l, "127.0.0.1", br, 1, &from), "2001:db8::7");
	const char *brport[] = {"[2001:db8::7]:443"};
	CHECK_STR(client(&l, "127.0.0.1", brport, 1, &from), "2001:db8::7");
	const char *badport[] = {"198.51.100.7:http"};
	CHECK_STR(client(&l, "127.0.0.1", badport, 1, &from), "127.0.0.1");
	const char *v4br[] = {"[198.51.100.7]"};
	CHECK_STR(client(&l, "127.0.0.1", v4br, 1, &from), "127.0.0.1");
	const char *unclosed[] = {"[2001:db8::7"};
	CHECK_STR(client(&l, "127.0.0.1", unclosed, 1, &from), "127.0.0.1");
	const char *after[] = {"[2001:db8::7]x"};
	CHECK_STR(client(&l, "127.0.0.1", after, 1, &from), "127.0.0.1");
	/* a mapped peer is the IPv4 proxy */
	const char *xff[] = {"198.51.100.7"};
	CHECK_STR(client(&l, "::ffff:127.0.0.1", xff, 1, &from), "198.51.100.7");
}

TEST(walk_refuses_non_ip_peer)
{
	struct netlist l = list("127.0.0.1");
	struct sockaddr_storage un, out;
	memset(&un, 0, sizeof(un));
	un.ss_family = AF_UNIX;
	CHECK(netlist_client(&l, (struct sockaddr *)&un, NULL, 0, &out) == -1);
	CHECK(netlist_client(&l, NULL, NULL, 0, &out) == -1);
}

/* The key through config_load: parsed at load, a bad entry names itself. */
static int load_conf(const char *body, struct selo_config *c, struct selo_err *err)
{
	char dir[] = "/tmp/selo-proxy-XXXXXX";
	if (!mkdtemp(dir))
		abort();
	char path[64];
	snprintf(path, sizeof(path), "%s/selo.conf", dir);
	FILE *f = fopen(path, "w");
	fputs(body, f);
	fclose(f);
	int r = config_load(dir, c, err);
	unlink(path);
	rmdir(dir);
	return r;
}

TEST(config_key)
{
	static struct selo_config c;
	struct selo_err err;
	err_clear(&err);
	CHECK(load_conf("[track]\nlisten = 127.0.0.1:1\n", &c, &err) == 0);
	CHECK(c.track_trusted_proxies.n == 0);
	CHECK(load_conf("[track]\ntrusted_proxies = 127.0.0.1, 10.0.0.0/8 fd00::/8\n", &c, &err) == 0);
	CHECK(c.track_trusted_proxies.n == 3);
	err_clear(&err);
	CHECK(load_conf("[track]\ntrusted_proxies = 127.0.0.1, 10.0.0.0/80\n", &c, &err) != 0);
	CHECK(strstr(err.msg, "trusted_proxies") && strstr(err.msg, "10.0.0.0/80") &&
	      strstr(err.msg, "line 2"));
}
