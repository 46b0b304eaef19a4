/* netcheck.h: is an address one that webhooks may reach? Selo POSTs to URLs
 * its API callers choose; without this check a caller could make Selo reach
 * its own loopback services, the private network or a cloud metadata
 * endpoint (SSRF). The check is a pure function of the address, so it is
 * used both when a URL is registered (on every address its name resolves to)
 * and on the very address each connection opens (no DNS rebinding). */
#ifndef SELO_NETCHECK_H
#define SELO_NETCHECK_H
#include <sys/socket.h>

/* 1 when sa (AF_INET or AF_INET6) is a globally routable unicast address.
 * IPv4: 0 for loopback, private (RFC 1918), link-local, CGNAT (100.64/10),
 * "this network" (0/8), multicast, broadcast, documentation, benchmarking
 * and reserved ranges. IPv6: only global unicast 2000::/3 passes, less the
 * IETF protocol assignments 2001::/23 (Teredo among them) and the
 * documentation prefixes 2001:db8::/32 and 3fff::/20; so loopback,
 * unspecified, IPv4-compatible ::/96, SIIT's ::ffff:0:0:0/96, NAT64 local
 * use, discard-only, unique local, link-local, site-local, multicast and
 * reserved space are all 0. IPv4 inside IPv6 that a host or a translator
 * reaches (mapped ::ffff:0:0/96, NAT64 64:ff9b::/96, 6to4 2002::/16) is
 * judged by the IPv4 address it carries. Any other family: 0. */
int netcheck_public(const struct sockaddr *sa);

/* The address as text (for messages), into out (at least 64 bytes). */
void netcheck_text(const struct sockaddr *sa, char *out, size_t n);

#endif
