/* netcheck.c: the address policy of webhooks (netcheck.h). IPv4: a table
 * of prefixes that are never a webhook's target. IPv6: global unicast only,
 * less a table of its special ranges; forms that carry an IPv4 address are
 * judged by that address. No I/O. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "selo/netcheck.h"

struct prefix4 {
	uint32_t net;
	int len;
};

/* IANA IPv4 special-purpose registry entries that are not globally
 * reachable, plus multicast and the reserved 240/4. */
static const struct prefix4 DENY4[] = {
	{0x00000000, 8},  /* "this network", 0.0.0.0 */
	{0x0a000000, 8},  /* RFC 1918 */
	{0x64400000, 10}, /* CGNAT, RFC 6598 */
	{0x7f000000, 8},  /* loopback */
	{0xa9fe0000, 16}, /* link-local (cloud metadata 169.254.169.254) */
	{0xac100000, 12}, /* RFC 1918 */
	{0xc0000000, 24}, /* IETF protocol assignments */
	{0xc0000200, 24}, /* TEST-NET-1 */
	{0xc0586300, 24}, /* 6to4 relay anycast (deprecated) */
	{0xc0a80000, 16}, /* RFC 1918 */
	{0xc6120000, 15}, /* benchmarking */
	{0xc6336400, 24}, /* TEST-NET-2 */
	{0xcb007100, 24}, /* TEST-NET-3 */
	{0xe0000000, 4},  /* multicast */
	{0xf0000000, 4},  /* reserved, and 255.255.255.255 */
};

struct prefix6 {
	uint8_t net[16];
	int len;
};

/* Inside global unicast 2000::/3, the entries of the IANA IPv6
 * special-purpose registry that are not globally reachable. */
static const struct prefix6 DENY6[] = {
	{{0x20, 0x01, 0x00, 0x00}, 23}, /* IETF protocol assignments: Teredo 2001::/32,
					   benchmarking, ORCHID, AMT, AS112, anycast */
	{{0x20, 0x01, 0x0d, 0xb8}, 32}, /* documentation */
	{{0x3f, 0xff}, 20},             /* documentation (RFC 9637) */
};

static int v4_public(uint32_t a)
{
	for (size_t i = 0; i < sizeof(DENY4) / sizeof(DENY4[0]); i++) {
		uint32_t mask = DENY4[i].len ? 0xffffffffu << (32 - DENY4[i].len) : 0;
		if ((a & mask) == DENY4[i].net)
			return 0;
	}
	return 1;
}

static int prefix6_has(const struct prefix6 *p, const uint8_t *a)
{
	int full = p->len / 8, rest = p->len % 8;
	if (memcmp(a, p->net, (size_t)full) != 0)
		return 0;
	if (!rest)
		return 1;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a[full] & mask) == (p->net[full] & mask);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* IPv6 is judged the other way round: only global unicast (2000::/3) may
 * be a target, less DENY6. Everything outside it is loopback, unspecified,
 * IPv4-compatible, SIIT's IPv4-translated ::ffff:0:0:0/96, NAT64 local use
 * 64:ff9b:1::/48, discard-only 100::/64, the dummy prefix 100:0:0:1::/64,
 * SRv6 SIDs 5f00::/16, unique local, link-local, site-local, multicast, or
 * space IANA keeps reserved (so a special range defined there later is
 * refused already). The forms that carry an IPv4 address a host or a
 * translator reaches are judged by that address: IPv4-mapped
 * ::ffff:0:0/96, NAT64's well-known 64:ff9b::/96 and 6to4 2002::/16. */
static int v6_public(const uint8_t *a)
{
	static const uint8_t MAPPED[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	static const uint8_t NAT64[12] = {0x00, 0x64, 0xff, 0x9b};
	if (!memcmp(a, MAPPED, 12) || !memcmp(a, NAT64, 12))
		return v4_public(be32(a + 12));
	if ((a[0] & 0xe0) != 0x20)
		return 0;
	if (a[0] == 0x20 && a[1] == 0x02) /* 6to4: the IPv4 address follows */
		return v4_public(be32(a + 2));
	for (size_t i = 0; i < sizeof(DENY6) / sizeof(DENY6[0]); i++)
		if (prefix6_has(&DENY6[i], a))
			return 0;
	return 1;
}

int netcheck_public(const struct sockaddr *sa)
{
	if (!sa)
		return 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		return v4_public(ntohl(s4->sin_addr.s_addr));
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		return v6_public(s6->sin6_addr.s6_addr);
	}
	return 0;
}

void netcheck_text(const struct sockaddr *sa, char *out, size_t n)
{
	snprintf(out, n, "?");
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)n);
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)n);
}
