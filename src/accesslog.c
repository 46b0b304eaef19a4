/* accesslog.c: one line per answered HTTP request, tokens and addresses
 * hidden (see accesslog.h). The body size travels from the code that queues
 * a response to the end of the access handler in a thread-local note:
 * libmicrohttpd runs the handler and the queueing in one call on one
 * thread, so the note of that call is this request's. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "selo/accesslog.h"
#include "selo/diag.h"

static __thread struct {
	struct MHD_Connection *c;
	long long bytes;
	const struct MHD_Response *shared; /* the size is looked up when a line is written */
} note;

void accesslog_note(struct MHD_Connection *c, size_t bytes)
{
	note.c = c;
	note.bytes = (long long)bytes;
	note.shared = NULL;
}

/* Responses made once at start: appended, never removed, read without a
 * lock (a slot's pointer is published after its size). */
#define SHARED_MAX 64
static struct {
	_Atomic(const struct MHD_Response *) r;
	size_t bytes;
} shared[SHARED_MAX];
static atomic_int nshared;

void accesslog_remember(const struct MHD_Response *r, size_t bytes)
{
	int i = atomic_fetch_add(&nshared, 1);
	if (i >= SHARED_MAX)
		return;
	shared[i].bytes = bytes;
	atomic_store(&shared[i].r, r);
}

void accesslog_note_shared(struct MHD_Connection *c, const struct MHD_Response *r)
{
	note.c = c;
	note.shared = r; /* looked up only when a line is written: the pixel stays cheap */
}

/* The remembered size of a shared response, or -1. Newest first: a
 * response freed at a stop may share its address with one made by a later
 * start in the same process (tests). */
static long long shared_size(const struct MHD_Response *r)
{
	int n = atomic_load(&nshared);
	for (int i = (n < SHARED_MAX ? n : SHARED_MAX) - 1; i >= 0; i--)
		if (atomic_load(&shared[i].r) == r)
			return (long long)shared[i].bytes;
	return -1;
}

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t accesslog_begin(void)
{
	note.c = NULL;
	return mono_us();
}

/* Appends s (len bytes) to out at *o, cut to n - 1. */
static void path_put(char *out, size_t n, size_t *o, const char *s, size_t len)
{
	if (*o + 1 >= n)
		return;
	if (len > n - 1 - *o)
		len = n - 1 - *o;
	memcpy(out + *o, s, len);
	*o += len;
}

/* A segment that must not be logged as it is: an address ('@', or its
 * percent-encoding should a path come undecoded), or something as long as
 * a token. */
static const char *segment_hidden(const char *s, size_t len)
{
	if (memchr(s, '@', len))
		return ":address";
	for (size_t i = 0; i + 3 <= len; i++)
		if (s[i] == '%' && s[i + 1] == '4' && s[i + 2] == '0')
			return ":address";
	if (len > 64)
		return ":long";
	return NULL;
}

/* The tracker's token paths, whatever follows the prefix. */
static const struct {
	const char *prefix, *shown;
} TOKEN_PATHS[] = {
	{"/o/", "/o/:token"},
	{"/c/", "/c/:token"},
	{"/r/", "/r/:token"},
};

void accesslog_path(enum accesslog_listener l, const char *url, char *out, size_t n)
{
	size_t o = 0;
	out[0] = '\0';
	if (!url || !*url)
		return;
	if (l == ACCESSLOG_TRACKER)
		for (size_t i = 0; i < sizeof(TOKEN_PATHS) / sizeof(TOKEN_PATHS[0]); i++) {
			size_t k = strlen(TOKEN_PATHS[i].prefix);
			if (strncmp(url, TOKEN_PATHS[i].prefix, k))
				continue;
			path_put(out, n, &o, TOKEN_PATHS[i].shown, strlen(TOKEN_PATHS[i].shown));
			size_t ul = strlen(url);
			if (i == 0 && ul >= 4 && !strcmp(url + ul - 4, ".gif"))
				path_put(out, n, &o, ".gif", 4);
			out[o] = '\0';
			return;
		}
	const char *p = url;
	while (*p) {
		if (*p == '/') {
			path_put(out, n, &o, "/", 1);
			p++;
			continue;
		}
		size_t len = strcspn(p, "/");
		const char *hide = segment_hidden(p, len);
		if (hide)
			path_put(out, n, &o, hide, strlen(hide));
		else
			path_put(out, n, &o, p, len);
		p += len;
	}
	out[o] = '\0';
}

static void peer_ip(struct MHD_Connection *c, char out[INET6_ADDRSTRLEN])
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;
	out[0] = '\0';
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, INET6_ADDRSTRLEN);
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out,
			  INET6_ADDRSTRLEN);
}

int accesslog_answered(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_HTTP_STATUS);
	return ci && ci->http_status;
}

void accesslog_end(enum accesslog_listener l, struct MHD_Connection *c, const char *method,
		   const char *url, const char *ip, int64_t start_us)
{
	/* The status is libmicrohttpd's: set only once a response is queued,
	 * and the handler is not called again after that, so a status here
	 * means this call answered. */
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_HTTP_STATUS);
	if (!ci || !ci->http_status || !diag_enabled(DIAG_INFO))
		return;
	int64_t us = mono_us() - start_us;
	char path[256], peer[INET6_ADDRSTRLEN], ms[32];
	accesslog_path(l, url, path, sizeof(path));
	if (!ip) {
		peer_ip(c, peer);
		ip = peer;
	}
	snprintf(ms, sizeof(ms), "%lld.%03lld", (long long)(us / 1000), (long long)(us % 1000));
	const char *name = l == ACCESSLOG_API ? "api" : "tracker";
	struct diag_field f[7] = {
		{"listener", name, 0, NULL, 1},
		{"method", method, 0, NULL, 1},
		{"path", path, 0, NULL, 1},
		{"status", NULL, (long long)ci->http_status, NULL, 1},
		{"bytes", NULL, note.c != c ? -1 : note.shared ? shared_size(note.shared) : note.bytes,
		 NULL, 0},
		{"duration_ms", NULL, 0, ms, 0},
		{"ip", ip[0] ? ip : "-", 0, NULL, 0},
	};
	struct diag_ids ids = {.fields = f, .nfields = 7};
	diag_at(DIAG_INFO, "access", "access", &ids, "%s %s %s %u", name, method, path,
		ci->http_status);
}
