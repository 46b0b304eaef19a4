/* netlist.h: lists of networks (CIDR) and the client address behind
 * trusted reverse proxies. track.trusted_proxies is one such list; a
 * request whose TCP peer is in it may name its client in X-Forwarded-For,
 * and netlist_client walks that header from the right, past the trusted
 * proxies, to the first address that is not one (docs/deploy.md). Pure
 * functions of their inputs: no I/O, no allocation, no global state. */
#ifndef SELO_NETLIST_H
#define SELO_NETLIST_H
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define NETLIST_MAX 64 /* networks in one list: a deployment has a handful */

/* One network. IPv4 is kept as family AF_INET in addr[0..3]; an
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d, as a dual-stack socket shows
 * an IPv4 peer) is matched as the IPv4 address it carries. */
struct netprefix {
	uint8_t family; /* AF_INET or AF_INET6 */
	uint8_t len;    /* prefix length: 0..32 or 0..128 */
	uint8_t addr[16];
};

struct netlist {
	int n;
	struct netprefix p[NETLIST_MAX];
};

/* Parses a list such as "127.0.0.1, 10.0.0.0/8 fd00::/8" (separated by
 * commas and/or blanks; a bare address is a /32 or /128; an empty text is
 * the empty list) into out. 0, or -1 with why (a message naming the bad
 * entry) when an entry is not an address, its prefix length is out of
 * range, it has host bits set beyond the prefix (10.1.2.3/8: a typo more
 * often than an intent), or there are more than NETLIST_MAX. */
int netlist_parse(const char *text, struct netlist *out, char *why, size_t wn);

/* 1 when sa (AF_INET or AF_INET6) lies in one of l's networks, else 0. */
int netlist_has(const struct netlist *l, const struct sockaddr *sa);

/* The client's address for a request that came from peer, into out:
 * peer itself unless peer is in trusted. Then the X-Forwarded-For values
 * (xff[0..n-1], the headers in the order received, which together are
 * one list) are walked from the right: each address in trusted is a proxy
 * of ours and the walk goes on; the first that is not is the client. When
 * the walk runs out (every entry trusted) or meets an entry that is not an
 * address (empty, "unknown", garbage), it stops there and the client is
 * the last address it accepted: the leftmost trusted one walked, or peer.
 * So an entry nobody trusted wrote can never become the client. Entries
 * may be "a.b.c.d", "a.b.c.d:port", an IPv6 address, "[v6]" or
 * "[v6]:port", each with blanks around. 1 when the address came from the
 * header, 0 when it is peer (copied), -1 when peer is not AF_INET/6. */
int netlist_client(const struct netlist *trusted, const struct sockaddr *peer,
		   const char *const *xff, size_t n, struct sockaddr_storage *out);

#endif
