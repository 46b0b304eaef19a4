/* transport_mx.c: delivers each message to its recipient domain's own mail
 * servers (smtp.mode = mx), so an accepted message is the recipient's MX
 * saying 250 (delivery_accepted).
 *
 * A batch is split by recipient domain (lower-cased); each domain's messages
 * go in one SMTP session (connection reuse), to the domain's MX hosts in
 * preference order (equal preferences in random order, RFC 5321 5.1), each
 * host's IPv4 addresses in DNS order (its IPv6 ones when it has no IPv4). Only messages the session never
 * reached (no reply to their own transaction: refused, timeout, dropped,
 * TLS failure) move on to the next address; a reply, 4xx or 5xx, is final
 * for this attempt, as Postfix does for replies after the greeting.
 * smtp.mx_override (domain=host:port,...) replaces DNS for a domain;
 * smtp.resolver (host:port) names the DNS server asked, else the system's
 * (/etc/resolv.conf); smtp.mx_port is the port of hosts found in DNS (25;
 * tests change it). smtp.per_destination bounds the sessions open to one
 * domain across all workers (the workers themselves bound the total).
 *
 * DNS outcomes (docs/transports.md): NXDOMAIN for the domain, a null MX
 * (RFC 7505) or a domain with neither MX nor A records: PERMFAIL; a server
 * failure or no answer: TEMPFAIL; MX hosts whose addresses cannot be found
 * are skipped, and when none is left: TEMPFAIL.
 *
 * The SMTP sessions are transport_relay.c's (TLS per smtp.starttls, the
 * transcript rules, the outcome rules), pointed at one address at a time;
 * libesmtp resolves names with the system resolver, so this file resolves
 * MX hosts itself, to addresses; an IPv6 one reaches libesmtp through
 * transport_relay.c's IPv6 literal names.
 * Each message's transcript starts with "-- " notes naming the MX chosen
 * and every address tried before it.
 * Threads: one instance per worker; the per-destination counter is shared. */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <resolv.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "selo/buf.h"
#include "selo/crypto.h"
#include "selo/transport.h"

#define OVERRIDES_MAX 64
#define HOSTS_MAX 16         /* MX hosts tried per domain */
#define ADDRS_MAX 8          /* addresses tried per MX host */
#define DNS_ANSWER_MAX 8192
#define DOMAIN_MAX 255
#define ACTIVE_MAX 1024      /* domains with sessions open at once, process-wide */

struct override {
	char domain[DOMAIN_MAX + 1];
	char server[300];
};

struct mx {
	void *relay;                 /* transport_relay_open_direct */
	struct override ov[OVERRIDES_MAX];
	size_t nov;
	struct __res_state res;
	int res_ready;
	int port;
	int per_destination;
};

struct mx_host {
	char name[DOMAIN_MAX + 1];
	int pref;
	unsigned rnd;                /* orders equal preferences */
};

/* ---- the per-destination limit (process-wide) ---------------------------- */

static pthread_mutex_t active_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t active_cv = PTHREAD_COND_INITIALIZER;
static struct {
	char domain[DOMAIN_MAX + 1];
	int n;
} active[ACTIVE_MAX];

static int active_find(const char *domain)
{
	for (int i = 0; i < ACTIVE_MAX; i++)
		if (active[i].n > 0 && !strcmp(active[i].domain, domain))
			return i;
	return -1;
}

/* Waits until the domain has fewer than limit sessions (and a free slot in
 * the table), then counts one more. */
static void destination_enter(const char *domain, int limit)
{
	pthread_mutex_lock(&active_mu);
	for (;;) {
		int i = active_find(domain);
		if (i >= 0 && active[i].n < limit) {
			active[i].n++;
			break;
		}
		if (i < 0) {
			int j = 0;
			while (j < ACTIVE_MAX && active[j].n > 0)
				j++;
			if (j < ACTIVE_MAX) {
				transport_textf(active[j].domain, sizeof(active[j].domain), "%s", domain);
				active[j].n = 1;
				break;
			}
		}
		pthread_cond_wait(&active_cv, &active_mu);
	}
	pthread_mutex_unlock(&active_mu);
}

static void destination_leave(const char *domain)
{
	pthread_mutex_lock(&active_mu);
	int i = active_find(domain);
	if (i >= 0)
		active[i].n--;
	pthread_cond_broadcast(&active_cv);
	pthread_mutex_unlock(&active_mu);
}

/* ---- opening -------------------------------------------------------------- */

/* "host:port" with a port in range; the host is not resolved here. */
static int server_ok(const char *s)
{
	const char *colon = strrchr(s, ':');
	if (!colon || colon == s || strchr(s, ':') != colon)
		return 0;
	char *end;
	long port = strtol(colon + 1, &end, 10);
	return !*end && port >= 1 && port <= 65535;
}

static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

static int overrides_parse(struct mx *m, const char *spec, struct selo_err *err)
{
	char copy[1024];
	transport_textf(copy, sizeof(copy), "%s", spec);
	char *save = NULL;
	for (char *tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		char *eq = strchr(tok, '=');
		if (!eq || eq == tok || !server_ok(eq + 1) || (size_t)(eq - tok) > DOMAIN_MAX)
			return err_set(err, 500, "config", "smtp.mx_override: '%s' is not "
				       "domain=host:port", tok);
		if (m->nov == OVERRIDES_MAX)
			return err_set(err, 500, "config", "smtp.mx_override: more than %d domains",
				       OVERRIDES_MAX);
		struct override *o = &m->ov[m->nov++];
		transport_textf(o->domain, sizeof(o->domain), "%.*s", (int)(eq - tok), tok);
		lower(o->domain);
		transport_textf(o->server, sizeof(o->server), "%s", eq + 1);
	}
	return 0;
}

/* res_ninit reads /etc/resolv.conf; smtp.resolver then replaces its servers
 * with one IPv4 host:port (tests run their own DNS server on loopback). */
static int resolver_init(struct mx *m, const char *spec, int timeout_ms, struct selo_err *err)
{
	if (res_ninit(&m->res) != 0 && !spec[0])
		return err_set(err, 500, "config", "cannot read the system's resolver configuration "
			       "(/etc/resolv.conf); set smtp.resolver = host:port");
	m->res_ready = 1;
	m->res.retrans = timeout_ms / 1000 > 0 ? (timeout_ms / 1000 < 5 ? timeout_ms / 1000 : 5) : 1;
	m->res.retry = 2;
	if (!spec[0])
		return 0;
	char host[64];
	const char *colon = strrchr(spec, ':');
	long port = colon ? strtol(colon + 1, NULL, 10) : 0;
	transport_textf(host, sizeof(host), "%.*s", colon ? (int)(colon - spec) : 0, spec);
	struct in_addr a;
	if (!server_ok(spec) || inet_pton(AF_INET, host, &a) != 1 || port < 1 || port > 65535)
		return err_set(err, 500, "config", "smtp.resolver = %s: expected an IPv4 "
			       "address:port, e.g. 127.0.0.1:53", spec);
	memset(&m->res.nsaddr_list[0], 0, sizeof(m->res.nsaddr_list[0]));
	m->res.nsaddr_list[0].sin_family = AF_INET;
	m->res.nsaddr_list[0].sin_port = htons((uint16_t)port);
	m->res.nsaddr_list[0].sin_addr = a;
	m->res.nscount = 1;
	return 0;
}

static void mx_close(void *state)
{
	struct mx *m = state;
	if (!m)
		return;
	if (m->relay)
		transport_relay_ops.close(m->relay);
	if (m->res_ready)
		res_nclose(&m->res);
	free(m);
}

int transport_mx_open(const struct selo_config *cfg, void **state, struct selo_err *err)
{
	*state = NULL;
	struct mx *m = xcalloc(1, sizeof(*m));
	m->port = cfg->smtp_mx_port > 0 ? cfg->smtp_mx_port : 25;
	m->per_destination = cfg->smtp_per_destination > 0 ? cfg->smtp_per_destination : 4;
	if (overrides_parse(m, cfg->smtp_mx_override, err) != 0 ||
	    resolver_init(m, cfg->smtp_resolver, cfg->smtp_timeout_ms, err) != 0 ||
	    transport_relay_open_direct(cfg, &m->relay, err) != 0) {
		mx_close(m);
		return -1;
	}
	*state = m;
	return 0;
}

/* ---- DNS ------------------------------------------------------------------ */

enum dns_result { DNS_OK, DNS_NXDOMAIN, DNS_NODATA, DNS_TEMP };

/* Asks for name/type; on DNS_OK the answer is in ans (parsed into msg). */
static enum dns_result dns_ask(struct mx *m, const char *name, int type, unsigned char *ans,
			       ns_msg *msg)
{
	m->res.res_h_errno = 0;
	int n = res_nquery(&m->res, name, ns_c_in, type, ans, DNS_ANSWER_MAX);
	if (n < 0) {
		int e = m->res.res_h_errno;
		return e == HOST_NOT_FOUND ? DNS_NXDOMAIN : e == NO_DATA ? DNS_NODATA : DNS_TEMP;
	}
	if (ns_initparse(ans, n, msg) != 0)
		return DNS_TEMP;
	return ns_msg_count(*msg, ns_s_an) > 0 ? DNS_OK : DNS_NODATA;
}

static int host_cmp(const void *a, const void *b)
{
	const struct mx_host *x = a, *y = b;
	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	return x->rnd < y->rnd ? -1 : x->rnd > y->rnd;
}

/* The domain's MX hosts, best first: > 0 hosts; 0, *why and *enhanced
 * for a permanent answer (no such domain: 5.1.2; null MX: 5.1.10, RFC
 * 7505); -1 and *why for a temporary one. A domain with no MX records is
 * its own host (RFC 5321 5.1). */
static int mx_hosts(struct mx *m, const char *domain, struct mx_host *out, char *why, size_t wn,
		    const char **enhanced)
{
	unsigned char ans[DNS_ANSWER_MAX];
	ns_msg msg;
	enum dns_result r = dns_ask(m, domain, ns_t_mx, ans, &msg);
	if (r == DNS_NXDOMAIN) {
		transport_textf(why, wn, "the domain %s does not exist (DNS: NXDOMAIN)", domain);
		*enhanced = "5.1.2";
		return 0;
	}
	if (r == DNS_TEMP) {
		transport_textf(why, wn, "DNS lookup of the MX of %s failed (server failure or no "
			 "answer); will retry", domain);
		return -1;
	}
	if (r == DNS_NODATA) {
		transport_textf(out[0].name, sizeof(out[0].name), "%s", domain);
		out[0].pref = -1; /* implicit MX */
		return 1;
	}
	int n = 0, null_mx = 0;
	for (int i = 0; i < ns_msg_count(msg, ns_s_an) && n < HOSTS_MAX; i++) {
		ns_rr rr;
		if (ns_parserr(&msg, ns_s_an, i, &rr) != 0 || ns_rr_type(rr) != ns_t_mx ||
		    ns_rr_rdlen(rr) < 3)
			continue;
		char name[NS_MAXDNAME];
		if (ns_name_uncompress(ns_msg_base(msg), ns_msg_end(msg), ns_rr_rdata(rr) + 2, name,
				       sizeof(name)) < 0)
			continue;
		if (!name[0] || !strcmp(name, ".")) {
			null_mx = 1;
			continue;
		}
		if (strlen(name) > DOMAIN_MAX)
			continue;
		transport_textf(out[n].name, sizeof(out[n].name), "%s", name);
		lower(out[n].name);
		out[n].pref = ns_get16(ns_rr_rdata(rr));
		random_bytes((uint8_t *)&out[n].rnd, sizeof(out[n].rnd));
		n++;
	}
	if (null_mx && n == 0) {
		transport_textf(why, wn, "%s accepts no mail (null MX, RFC 7505)", domain);
		*enhanced = "5.1.10";
		return 0;
	}
	if (n == 0) {
		transport_textf(why, wn, "DNS answered MX records for %s that cannot be read; will retry",
			 domain);
		return -1;
	}
	qsort(out, (size_t)n, sizeof(*out), host_cmp);
	return n;
}

/* An address as it goes before ":port": "192.0.2.25" or "[2001:db8::25]". */
#define ADDR_TEXT_MAX (INET6_ADDRSTRLEN + 2)

/* The addresses of one record type in the answer, as address texts. */
static int answer_addrs(ns_msg msg, int type, char out[][ADDR_TEXT_MAX], int n)
{
	int af = type == ns_t_a ? AF_INET : AF_INET6;
	unsigned len = type == ns_t_a ? 4 : 16;
	for (int i = 0; i < ns_msg_count(msg, ns_s_an) && n < ADDRS_MAX; i++) {
		ns_rr rr;
		char text[INET6_ADDRSTRLEN];
		if (ns_parserr(&msg, ns_s_an, i, &rr) != 0 || (int)ns_rr_type(rr) != type ||
		    ns_rr_rdlen(rr) != len || !inet_ntop(af, ns_rr_rdata(rr), text, sizeof(text)))
			continue;
		transport_textf(out[n++], ADDR_TEXT_MAX, af == AF_INET6 ? "[%s]" : "%s", text);
	}
	return n;
}

/* The host's addresses: its IPv4 addresses (A) when it has any, else its
 * IPv6 ones (AAAA; RFC 5321 allows an MX with IPv6 addresses only). > 0
 * found; 0 none (no such host, or neither A nor AAAA records); -1 a
 * temporary failure. A host with both is reached over IPv4 only, as its
 * IPv6 addresses are the same server's. */
static int host_addrs(struct mx *m, const char *host, char out[][ADDR_TEXT_MAX])
{
	struct in_addr lit;
	if (inet_pton(AF_INET, host, &lit) == 1) {
		transport_textf(out[0], ADDR_TEXT_MAX, "%s", host);
		return 1;
	}
	unsigned char ans[DNS_ANSWER_MAX];
	ns_msg msg;
	enum dns_result r = dns_ask(m, host, ns_t_a, ans, &msg);
	int type = ns_t_a;
	if (r == DNS_NODATA) {
		r = dns_ask(m, host, ns_t_aaaa, ans, &msg);
		type = ns_t_aaaa;
	}
	if (r != DNS_OK)
		return r == DNS_TEMP ? -1 : 0;
	return answer_addrs(msg, type, out, 0);
}

/* ---- delivering one domain's messages ------------------------------------- */

struct group {
	char domain[DOMAIN_MAX + 1];
	struct transport_msg **msg;  /* the batch's messages for this domain */
	size_t n;
	struct buf notes;            /* "-- " lines for every transcript */
};

static void note(struct group *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct group *g, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	buf_puts(&g->notes, "-- ");
	buf_vprintf(&g->notes, fmt, ap);
	buf_putc(&g->notes, '\n');
	va_end(ap);
}

/* Every message not yet done ends with this outcome and reason. */
static void group_fail(struct group *g, int *done, enum transport_outcome o, const char *why)
{
	for (size_t i = 0; i < g->n; i++) {
		if (done[i])
			continue;
		g->msg[i]->outcome = o;
		transport_textf(g->msg[i]->error, sizeof(g->msg[i]->error), "%s", why);
		done[i] = 1;
	}
}

/* A destination domain that cannot take mail, known from DNS alone: fails
 * with the enhanced code an MTA's DSN would give (RFC 3463 5.1.2 bad
 * destination system; RFC 7505 5.1.10 for a null MX) and no reply code, so
 * that it suppresses the address like a 5.1.x reply (suppress.h). */
static void group_fail_domain(struct group *g, int *done, const char *why, const char *enhanced)
{
	for (size_t i = 0; i < g->n; i++)
		if (!done[i])
			transport_textf(g->msg[i]->enhanced, sizeof(g->msg[i]->enhanced), "%s", enhanced);
	group_fail(g, done, TRANSPORT_PERMFAIL, why);
}

/* A reply to the message's own transaction, or a local refusal: final. */
static int reached(const struct transport_msg *t)
{
	return t->code != 0 || t->outcome != TRANSPORT_TEMPFAIL;
}

static void take_result(struct transport_msg *dst, struct transport_msg *src, const char *mx)
{
	dst->outcome = src->outcome;
	dst->code = src->code;
	memcpy(dst->enhanced, src->enhanced, sizeof(dst->enhanced));
	buf_free(&dst->reply);
	buf_free(&dst->transcript);
	dst->reply = src->reply;
	dst->transcript = src->transcript;
	src->reply = (struct buf)BUF_INIT;
	src->transcript = (struct buf)BUF_INIT;
	memcpy(dst->peer, src->peer, sizeof(dst->peer));
	memcpy(dst->tls, src->tls, sizeof(dst->tls));
	memcpy(dst->tls_peer, src->tls_peer, sizeof(dst->tls_peer));
	memcpy(dst->error, src->error, sizeof(dst->error));
	memcpy(dst->queue_id, src->queue_id, sizeof(dst->queue_id));
	transport_textf(dst->mx, sizeof(dst->mx), "%s", mx);
}

/* One session to server with the group's messages still pending; those it
 * reached are done. Returns how many are still pending. */
static size_t try_server(struct mx *m, struct group *g, int *done, const char *server,
			 const char *mx_label, char *last, size_t ln)
{
	size_t k = 0;
	for (size_t i = 0; i < g->n; i++)
		k += !done[i];
	struct transport_msg *t = xcalloc(k, sizeof(*t));
	size_t *idx = xcalloc(k, sizeof(*idx));
	for (size_t i = 0, j = 0; i < g->n; i++) {
		if (done[i])
			continue;
		const struct transport_msg *o = g->msg[i];
		t[j] = (struct transport_msg){.notice_id = o->notice_id, .mail_from = o->mail_from,
					      .rcpt = o->rcpt, .data = o->data, .len = o->len};
		transport_msg_reset_out(&t[j]);
		idx[j++] = i;
	}
	transport_relay_session(m->relay, server, t, k);
	size_t pending = 0;
	for (size_t j = 0; j < k; j++) {
		if (reached(&t[j])) {
			take_result(g->msg[idx[j]], &t[j], mx_label);
			done[idx[j]] = 1;
		} else {
			transport_textf(last, ln, "%s", t[j].error[0] ? t[j].error : "no answer");
			pending++;
		}
		transport_msg_free(&t[j]);
	}
	if (pending)
		note(g, "%s: %s", server, last);
	free(t);
	free(idx);
	return pending;
}

/* The override's single server, or the MX hosts' addresses in order. */
static void deliver_group(struct mx *m, struct group *g, int *done)
{
	char last[256] = "";
	for (size_t i = 0; i < m->nov; i++) {
		if (strcmp(m->ov[i].domain, g->domain) != 0)
			continue;
		note(g, "%s: smtp.mx_override sends it to %s", g->domain, m->ov[i].server);
		if (try_server(m, g, done, m->ov[i].server, m->ov[i].server, last, sizeof(last)))
			group_fail(g, done, TRANSPORT_TEMPFAIL, last);
		return;
	}
	struct mx_host hosts[HOSTS_MAX];
	char why[320];
	const char *enhanced = "5.1.2";
	int nh = mx_hosts(m, g->domain, hosts, why, sizeof(why), &enhanced);
	if (nh <= 0) {
		note(g, "%s", why);
		if (nh == 0) /* mx_hosts' two permanent answers: NXDOMAIN, null MX */
			group_fail_domain(g, done, why, enhanced);
		else
			group_fail(g, done, TRANSPORT_TEMPFAIL, why);
		return;
	}
	int any_addr = 0, temp_dns = 0;
	for (int h = 0; h < nh; h++) {
		char addrs[ADDRS_MAX][ADDR_TEXT_MAX];
		int na = host_addrs(m, hosts[h].name, addrs);
		if (na <= 0) {
			temp_dns |= na == -1;
			note(g, "MX %s: %s", hosts[h].name, na == -1 ? "address lookup failed" : "no address");
			continue;
		}
		any_addr = 1;
		char label[300];
		if (hosts[h].pref < 0)
			transport_textf(label, sizeof(label), "%s (no MX record: the domain itself)",
				 hosts[h].name);
		else
			transport_textf(label, sizeof(label), "%s (preference %d)", hosts[h].name,
				 hosts[h].pref);
		for (int a = 0; a < na; a++) {
			char server[ADDR_TEXT_MAX + 8];
			transport_textf(server, sizeof(server), "%s:%d", addrs[a], m->port);
			if (try_server(m, g, done, server, label, last, sizeof(last)) == 0)
				return;
		}
	}
	if (!any_addr && hosts[0].pref < 0 && !temp_dns) {
		transport_textf(why, sizeof(why), "%s has neither an MX nor an A record", g->domain);
		group_fail_domain(g, done, why, "5.1.2");
		return;
	}
	if (!any_addr)
		transport_textf(last, sizeof(last), "no address found for any MX host of %s%s", g->domain,
			 temp_dns ? " (DNS failure); will retry" : "");
	group_fail(g, done, TRANSPORT_TEMPFAIL, last);
}

/* Notes go first in each transcript: how this MX was chosen. */
static void prepend_notes(struct group *g)
{
	for (size_t i = 0; i < g->n && g->notes.len; i++) {
		struct transport_msg *t = g->msg[i];
		struct buf b = BUF_INIT;
		buf_append(&b, g->notes.data, g->notes.len);
		if (t->transcript.len)
			buf_append(&b, t->transcript.data, t->transcript.len);
		buf_free(&t->transcript);
		t->transcript = b;
	}
}

static const char *rcpt_domain(const char *rcpt)
{
	const char *at = strrchr(rcpt, '@');
	return at && at[1] ? at + 1 : NULL;
}

static void send_domain(struct mx *m, struct transport_msg *msgs, size_t n, const char *domain,
			int *taken)
{
	struct group g = {.notes = BUF_INIT};
	transport_textf(g.domain, sizeof(g.domain), "%s", domain);
	lower(g.domain);
	g.msg = xcalloc(n, sizeof(*g.msg));
	int *done = xcalloc(n, sizeof(*done));
	for (size_t i = 0; i < n; i++) {
		const char *d = taken[i] ? NULL : rcpt_domain(msgs[i].rcpt);
		if (d && !strcasecmp(d, domain)) {
			g.msg[g.n++] = &msgs[i];
			taken[i] = 1;
		}
	}
	destination_enter(g.domain, m->per_destination);
	deliver_group(m, &g, done);
	destination_leave(g.domain);
	prepend_notes(&g);
	buf_free(&g.notes);
	free(g.msg);
	free(done);
}

static int mx_send(void *state, struct transport_msg *msgs, size_t n)
{
	struct mx *m = state;
	int *taken = xcalloc(n, sizeof(*taken));
	for (size_t i = 0; i < n; i++) {
		if (taken[i])
			continue;
		const char *d = rcpt_domain(msgs[i].rcpt);
		if (!d || strlen(d) > DOMAIN_MAX) {
			msgs[i].outcome = TRANSPORT_PERMFAIL;
			transport_textf(msgs[i].error, sizeof(msgs[i].error),
				 "the recipient address has no usable domain");
			taken[i] = 1;
			continue;
		}
		char domain[DOMAIN_MAX + 1];
		transport_textf(domain, sizeof(domain), "%s", d);
		send_domain(m, msgs, n, domain, taken);
	}
	free(taken);
	return 0;
}

const struct transport_ops transport_mx_ops = {
	.name = "mx",
	.accept_event = "delivery_accepted",
	.send = mx_send,
	.close = mx_close,
};
