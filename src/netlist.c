/* netlist.c: CIDR lists and the X-Forwarded-For walk (netlist.h).
 * Functions: netlist_parse (config load; says which entry is bad),
 * netlist_has, netlist_client (per request, only when the peer is a
 * trusted proxy). An IPv4-mapped IPv6 address or prefix is turned into its
 * IPv4 form first, so "127.0.0.1" matches a dual-stack socket's
 * ::ffff:127.0.0.1. Nothing here allocates or fails loudly: a bad list is
 * an error for the caller to print, a bad header entry ends the walk. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "selo/netlist.h"

#define ENTRY_MAX 64 /* longest text one address can take, port included */

static const uint8_t MAPPED[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static int is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* An address (no prefix) into p as a full-length prefix: 0, or -1. */
static int addr_parse(const char *s, struct netprefix *p)
{
	memset(p, 0, sizeof(*p));
	if (inet_pton(AF_INET, s, p->addr) == 1) {
		p->family = AF_INET;
		p->len = 32;
		return 0;
	}
	if (inet_pton(AF_INET6, s, p->addr) == 1) {
		p->family = AF_INET6;
		p->len = 128;
		return 0;
	}
	return -1;
}

/* ::ffff:a.b.c.d/len (len >= 96) is the IPv4 prefix a.b.c.d/(len - 96). */
static void unmap(struct netprefix *p)
{
	if (p->family != AF_INET6 || p->len < 96 || memcmp(p->addr, MAPPED, 12) != 0)
		return;
	memmove(p->addr, p->addr + 12, 4);
	memset(p->addr + 4, 0, 12);
	p->family = AF_INET;
	p->len = (uint8_t)(p->len - 96);
}

/* 1 when addr lies in p (same family). */
static int prefix_has(const struct netprefix *p, const uint8_t *addr)
{
	int full = p->len / 8, rest = p->len % 8;
	if (memcmp(addr, p->addr, (size_t)full) != 0)
		return 0;
	if (!rest)
		return 1;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (addr[full] & mask) == (p->addr[full] & mask);
}

/* 1 when p has a bit set past its length (10.1.2.3/8). */
static int host_bits_set(const struct netprefix *p)
{
	int bytes = p->family == AF_INET ? 4 : 16;
	for (int i = 0; i < bytes; i++) {
		int keep = p->len - i * 8; /* bits of this byte inside the prefix */
		uint8_t mask = keep >= 8 ? 0xff : keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
		if (p->addr[i] & (uint8_t)~mask)
			return 1;
	}
	return 0;
}

/* One entry "addr" or "addr/len" (NUL-terminated) into p. */
static int entry_parse(char *e, struct netprefix *p, char *why, size_t wn)
{
	char *slash = strchr(e, '/');
	if (slash)
		*slash = '\0';
	if (addr_parse(e, p) != 0)
		return snprintf(why, wn, "\"%s\" is not an IPv4 or IPv6 address", e), -1;
	if (slash) {
		char *end;
		errno = 0;
		long len = strtol(slash + 1, &end, 10);
		if (errno || end == slash + 1 || *end || len < 0 || len > p->len)
			return snprintf(why, wn, "\"%s/%s\": the prefix length must be 0 to %d", e,
					slash + 1, p->len), -1;
		p->len = (uint8_t)len;
		if (host_bits_set(p))
			return snprintf(why, wn, "\"%s/%s\" has bits set past the prefix length "
					"(write the network address)", e, slash + 1), -1;
	}
	unmap(p);
	return 0;
}

int netlist_parse(const char *text, struct netlist *out, char *why, size_t wn)
{
	memset(out, 0, sizeof(*out));
	const char *s = text ? text : "";
	while (*s) {
		size_t skip = strspn(s, ", \t");
		s += skip;
		size_t n = strcspn(s, ", \t");
		if (!n)
			break;
		char e[2 * ENTRY_MAX];
		if (n >= sizeof(e))
			return snprintf(why, wn, "\"%.40s...\" is too long for an address", s), -1;
		memcpy(e, s, n);
		e[n] = '\0';
		s += n;
		if (out->n == NETLIST_MAX)
			return snprintf(why, wn, "more than %d networks", NETLIST_MAX), -1;
		if (entry_parse(e, &out->p[out->n], why, wn) != 0)
			return -1;
		out->n++;
	}
	return 0;
}

/* sa as a full-length prefix (IPv4-mapped made IPv4): 0, or -1. */
static int sockaddr_prefix(const struct sockaddr *sa, struct netprefix *p)
{
	memset(p, 0, sizeof(*p));
	if (sa && sa->sa_family == AF_INET) {
		memcpy(p->addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		p->family = AF_INET;
		p->len = 32;
		return 0;
	}
	if (sa && sa->sa_family == AF_INET6) {
		memcpy(p->addr, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		p->family = AF_INET6;
		p->len = 128;
		unmap(p);
		return 0;
	}
	return -1;
}

static int list_has_prefix(const struct netlist *l, const struct netprefix *a)
{
	for (int i = 0; i < l->n; i++)
		if (l->p[i].family == a->family && prefix_has(&l->p[i], a->addr))
			return 1;
	return 0;
}

int netlist_has(const struct netlist *l, const struct sockaddr *sa)
{
	struct netprefix a;
	if (!l || l->n == 0 || sockaddr_prefix(sa, &a) != 0)
		return 0;
	return list_has_prefix(l, &a);
}

/* One X-Forwarded-For entry (s, n bytes, not NUL-terminated) into a
 * sockaddr: "v4", "v4:port", "v6", "[v6]", "[v6]:port", blanks around.
 * 0, or -1 for anything else. */
static int forwarded_entry(const char *s, size_t n, struct sockaddr_storage *out)
{
	while (n && is_blank(*s))
		s++, n--;
	while (n && is_blank(s[n - 1]))
		n--;
	if (!n || n >= ENTRY_MAX)
		return -1;
	char e[ENTRY_MAX];
	memcpy(e, s, n);
	e[n] = '\0';
	char *a = e, *port = NULL;
	if (e[0] == '[') {
		char *close = strchr(e, ']');
		if (!close)
			return -1;
		*close = '\0';
		a = e + 1;
		if (close[1] == ':')
			port = close + 2;
		else if (close[1])
			return -1;
	} else {
		char *colon = strchr(e, ':');
		if (colon && !strchr(colon + 1, ':')) { /* one colon: v4:port */
			*colon = '\0';
			port = colon + 1;
		}
	}
	if (port && (!*port || strspn(port, "0123456789") != strlen(port) || strlen(port) > 5))
		return -1;
	memset(out, 0, sizeof(*out));
	struct sockaddr_in *s4 = (struct sockaddr_in *)out;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
	if (a == e && inet_pton(AF_INET, a, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		return 0;
	}
	if (!port || a != e) { /* v6 only bare or bracketed */
		if (inet_pton(AF_INET6, a, &s6->sin6_addr) == 1) {
			s6->sin6_family = AF_INET6;
			return 0;
		}
	}
	return -1;
}

static void copy_peer(const struct sockaddr *peer, struct sockaddr_storage *out)
{
	memset(out, 0, sizeof(*out));
	memcpy(out, peer, peer->sa_family == AF_INET ? sizeof(struct sockaddr_in)
						    : sizeof(struct sockaddr_in6));
}

/* Walks one header's entries from the right; *took becomes 1 once an
 * entry is accepted into *out. Returns 1 when the client is found (in
 * *out), -1 when the walk must stop (a bad entry: *out keeps the last
 * accepted address), 0 when every entry was a trusted proxy (*out is the
 * leftmost of them, and the walk goes on in the header before). */
static int walk_header(const struct netlist *trusted, const char *h,
		       struct sockaddr_storage *out, int *took)
{
	size_t end = strlen(h);
	for (;;) {
		size_t start = end;
		while (start > 0 && h[start - 1] != ',')
			start--;
		struct sockaddr_storage a;
		if (forwarded_entry(h + start, end - start, &a) != 0)
			return -1;
		*out = a;
		*took = 1;
		if (!netlist_has(trusted, (const struct sockaddr *)&a))
			return 1;
		if (start == 0)
			return 0;
		end = start - 1; /* before the comma */
	}
}

int netlist_client(const struct netlist *trusted, const struct sockaddr *peer,
		   const char *const *xff, size_t n, struct sockaddr_storage *out)
{
	if (!peer || (peer->sa_family != AF_INET && peer->sa_family != AF_INET6))
		return -1;
	copy_peer(peer, out);
	if (!n || !netlist_has(trusted, peer))
		return 0;
	int took = 0;
	for (size_t i = n; i-- > 0;)
		if (walk_header(trusted, xff[i] ? xff[i] : "", out, &took) != 0)
			break; /* found, or a bad entry: *out is the last good one */
	return took;
}
