/* baseurl.c: the start-time check that recipients can reach track.base_url
 * (baseurl.h). Pure functions of the configuration, no DNS and no network:
 * an IP literal is judged by its range, a name only by its form. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>
#include "selo/baseurl.h"
#include "selo/diag.h"
#include "selo/netcheck.h"

/* Names that never resolve for a recipient on the Internet. */
static const char *const LOCAL_SUFFIXES[] = {".localhost", ".local", ".internal", ".home.arpa",
					     ".lan"};

static int has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n > m && !strcasecmp(s + n - m, suffix);
}

static const char *ipv4_kind(uint32_t a)
{
	if ((a >> 24) == 127)
		return "a loopback address";
	if ((a >> 24) == 10 || (a >> 20) == 0xac1 || (a >> 16) == 0xc0a8)
		return "a private address";
	if ((a >> 16) == 0xa9fe)
		return "a link-local address";
	struct sockaddr_in s4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(a)};
	return netcheck_public((struct sockaddr *)&s4) ? NULL : "a non-public address";
}

static const char *ipv6_kind(const struct in6_addr *a)
{
	const uint8_t *b = a->s6_addr;
	if (IN6_IS_ADDR_LOOPBACK(a))
		return "a loopback address";
	if (IN6_IS_ADDR_V4MAPPED(a))
		return ipv4_kind((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 |
				 (uint32_t)b[14] << 8 | b[15]);
	if ((b[0] & 0xfe) == 0xfc)
		return "a private address";
	if (IN6_IS_ADDR_LINKLOCAL(a))
		return "a link-local address";
	struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_addr = *a};
	return netcheck_public((struct sockaddr *)&s6) ? NULL : "a non-public address";
}

/* The kind of a host as written in a URL or host:port (brackets allowed). */
static const char *host_kind(const char *host)
{
	char h[256];
	size_t n = strlen(host);
	if (n >= 2 && host[0] == '[' && host[n - 1] == ']')
		snprintf(h, sizeof(h), "%.*s", (int)(n - 2), host + 1);
	else
		snprintf(h, sizeof(h), "%s", host);
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, h, &a4) == 1)
		return ipv4_kind(ntohl(a4.s_addr));
	if (inet_pton(AF_INET6, h, &a6) == 1)
		return ipv6_kind(&a6);
	if (!strcasecmp(h, "localhost") || has_suffix(h, ".localhost"))
		return "a loopback address";
	for (size_t i = 0; i < sizeof(LOCAL_SUFFIXES) / sizeof(LOCAL_SUFFIXES[0]); i++)
		if (has_suffix(h, LOCAL_SUFFIXES[i]))
			return "a local name";
	if (!strchr(h, '.'))
		return "a local name";
	return NULL;
}

const char *baseurl_local_kind(const char *base_url, char *host, size_t n)
{
	if (host && n)
		host[0] = '\0';
	CURLU *u = curl_url();
	if (!u)
		return NULL;
	char *h = NULL;
	const char *kind = NULL;
	if (curl_url_set(u, CURLUPART_URL, base_url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK && h && h[0]) {
		kind = host_kind(h);
		if (host && n)
			snprintf(host, n, "%s", h);
	}
	curl_free(h);
	curl_url_cleanup(u);
	return kind;
}

/* The host part of "host:port" or "[v6]:port" (or a bare host). */
static void relay_host(const char *relay, char *out, size_t n)
{
	const char *colon = strrchr(relay, ':');
	size_t len = strlen(relay);
	if (relay[0] == '[') {
		const char *end = strchr(relay, ']');
		len = end ? (size_t)(end - relay + 1) : len;
	} else if (colon && strchr(relay, ':') == colon) {
		len = (size_t)(colon - relay);
	}
	snprintf(out, n, "%.*s", (int)len, relay);
}

const char *baseurl_mail_leaves(const struct selo_config *cfg, char *why, size_t n)
{
	if (cfg->smtp_mode == SMTP_MX) {
		snprintf(why, n, "smtp.mode = mx delivers to each recipient's mail server");
		return why;
	}
	if (cfg->smtp_mode != SMTP_RELAY)
		return NULL;
	char host[256];
	relay_host(cfg->smtp_relay, host, sizeof(host));
	const char *kind = host_kind(host);
	if (kind && !strcmp(kind, "a loopback address"))
		return NULL; /* a test sink, or a local MTA the operator configures */
	snprintf(why, n, "smtp.mode = relay hands mail to %.200s, which sends it on", host);
	return why;
}

int baseurl_warn(const struct selo_config *cfg)
{
	char host[256], leaves[300];
	const char *kind = baseurl_local_kind(cfg->track_base_url, host, sizeof(host));
	if (!kind || !baseurl_mail_leaves(cfg, leaves, sizeof(leaves)))
		return 0;
	diag_warn("**************************************************************************");
	diag_warn("track.base_url = %s names %s (%s),", cfg->track_base_url, kind, host);
	diag_warn("but %s.", leaves);
	diag_warn("Every message's links, tracking pixel and \"Confirmar recebimento\" link, and the");
	diag_warn("QR code of every PDF receipt, point at that address: recipients cannot reach it,");
	diag_warn("so no open, click or read confirmation will be recorded.");
	diag_warn("Set track.base_url in %s/selo.conf to the tracker's public URL", cfg->data_dir);
	diag_warn("(https://track.example.com.br; docs/first-run.md, \"track.base_url\").");
	diag_warn("**************************************************************************");
	return 1;
}
