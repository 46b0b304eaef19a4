/* config.c: embedded defaults and DIR/selo.conf (INI, libinih) on top (see
 * config.h). Each key is described once in a table (section, name, kind,
 * where it goes), so parsing, validation and the error for an unknown key
 * come from one place. A bad line fails the load with its line number. */
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "selo/config.h"
#include "selo/diag.h"
#include "selo/fileio.h"

enum kind { K_STR, K_INT, K_SIZE, K_BOOL, K_MODE, K_TLS, K_NETS };

struct key {
	const char *section, *name;
	enum kind kind;
	size_t off, size;  /* offset and size of the field in struct selo_config */
	long long min, max; /* for K_INT / K_SIZE */
};

#define STR(sec, nm, field) {sec, nm, K_STR, offsetof(struct selo_config, field), \
	sizeof(((struct selo_config *)0)->field), 0, 0}
#define INT(sec, nm, field, lo, hi) {sec, nm, K_INT, offsetof(struct selo_config, field), \
	sizeof(int), lo, hi}
#define SIZE(sec, nm, field, lo, hi) {sec, nm, K_SIZE, offsetof(struct selo_config, field), \
	sizeof(size_t), lo, hi}

static const struct key KEYS[] = {
	STR("api", "listen", api_listen),
	SIZE("api", "max_body", api_max_body, 1024, 1LL << 30),
	INT("api", "threads", api_threads, 1, 64),
	INT("api", "request_timeout", api_request_timeout_s, 1, 3600),
	SIZE("api", "large_body", api_large_body, 1024, 1LL << 30),
	INT("api", "large_requests", api_large_requests, 1, 1024),
	{"api", "access_log", K_BOOL, offsetof(struct selo_config, api_access_log), sizeof(int), 0, 1},
	SIZE("limits", "max_attachments", max_attachments, 0, 100),
	SIZE("limits", "max_attachment_bytes", max_attachment_bytes, 1, 1LL << 30),
	SIZE("limits", "max_message_bytes", max_message_bytes, 1024, 1LL << 30),
	SIZE("limits", "max_batch", max_batch, 1, 10000),
	SIZE("limits", "max_text_bytes", max_text_bytes, 64, 16LL << 20),
	STR("track", "listen", track_listen),
	STR("track", "base_url", track_base_url),
	INT("track", "threads", track_threads, 1, 64),
	INT("track", "max_connections", track_max_connections, 16, 1000000),
	INT("track", "per_ip_connections", track_per_ip_connections, 1, 100000),
	INT("track", "head_timeout", track_head_timeout_s, 1, 3600),
	INT("track", "rate_per_ip", track_rate_per_ip, 1, 1000000),
	INT("track", "rate_burst", track_rate_burst, 1, 1000000),
	INT("track", "after_delivery_s", track_after_delivery_s, 0, 86400),
	INT("track", "burst_window_ms", track_burst_window_ms, 0, 600000),
	INT("track", "burst_links", track_burst_links, 2, 1000),
	INT("track", "full_hits", track_full_hits, 1, 100000),
	INT("track", "summary_window", track_summary_window_s, 1, 30 * 86400),
	{"track", "trusted_proxies", K_NETS, offsetof(struct selo_config, track_trusted_proxies),
	 sizeof(struct netlist), 0, 0},
	{"track", "access_log", K_BOOL, offsetof(struct selo_config, track_access_log), sizeof(int), 0, 1},
	{"smtp", "mode", K_MODE, offsetof(struct selo_config, smtp_mode), sizeof(int), 0, 0},
	STR("smtp", "relay", smtp_relay),
	{"smtp", "starttls", K_TLS, offsetof(struct selo_config, starttls), sizeof(int), 0, 0},
	STR("smtp", "auth_user", smtp_auth_user),
	STR("smtp", "auth_password", smtp_auth_password),
	STR("smtp", "cafile", smtp_cafile),
	{"smtp", "tls_verify", K_BOOL, offsetof(struct selo_config, smtp_tls_verify), sizeof(int), 0, 1},
	INT("smtp", "timeout_ms", smtp_timeout_ms, 100, 3600000),
	STR("smtp", "helo", smtp_helo),
	STR("smtp", "mx_override", smtp_mx_override),
	STR("smtp", "resolver", smtp_resolver),
	INT("smtp", "mx_port", smtp_mx_port, 1, 65535),
	INT("smtp", "per_destination", smtp_per_destination, 1, 1000),
	STR("mail", "domain", mail_domain),
	STR("mail", "from_address", mail_from_address),
	STR("mail", "from_name", mail_from_name),
	STR("mail", "return_path", mail_return_path),
	STR("dkim", "domain", dkim_domain),
	STR("dkim", "selector", dkim_selector),
	INT("sender", "workers", sender_workers, 1, 64),
	INT("sender", "batch", sender_batch, 1, 1000),
	INT("sender", "retry_base", retry_base_s, 1, 86400),
	INT("sender", "retry_max", retry_max_s, 1, 7 * 86400),
	INT("sender", "lifetime", lifetime_s, 1, 30 * 86400),
	INT("sender", "stop_timeout", sender_stop_timeout_s, 0, 3600),
	STR("tsa", "url", tsa_url),
	STR("tsa", "ca", tsa_ca),
	INT("tsa", "timeout_ms", tsa_timeout_ms, 100, 600000),
	STR("log", "origin", log_origin),
	STR("log", "level", log_level),
	STR("log", "format", log_format),
	STR("receipt", "sign_key", receipt_sign_key),
	STR("receipt", "sign_cert", receipt_sign_cert),
	STR("receipt", "sign_chain", receipt_sign_chain),
	STR("templates", "dir", templates_dir),
	{"webhooks", "allow_private", K_BOOL, offsetof(struct selo_config, webhooks_allow_private),
	 sizeof(int), 0, 1},
	INT("webhooks", "timeout_ms", webhooks_timeout_ms, 100, 60000),
	INT("webhooks", "workers", webhooks_workers, 1, 256),
	INT("webhooks", "retry_speedup", webhooks_retry_speedup, 1, 10000000),
	INT("webhooks", "keep_days", webhooks_keep_days, 1, 3650),
	STR("store", "backend", store_backend),
	STR("store", "url", store_url),
	INT("store", "timeout", store_timeout_ms, 100, 600000),
	INT("store", "lease", store_lease_ms, 1000, 86400000),
	INT("store", "pool", store_pool, 1, 256),
	STR("node", "name", node_name),
};

/* A node name: what claims and leases are marked with, and what an operator
 * reads in the nodes table and in logs: letters, digits, '.', '_', '-'. */
static int node_name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '.' || ch == '_' || ch == '-';
}

static int node_name_valid(const char *v)
{
	if (!v[0])
		return 0;
	for (; *v; v++)
		if (!node_name_char(*v))
			return 0;
	return 1;
}

/* The host name (cut to fit, any other character as '-'), or "selo". */
static void node_name_default(char *out, size_t n)
{
	char host[256];
	if (gethostname(host, sizeof(host)) != 0 || !host[0])
		snprintf(host, sizeof(host), "selo");
	host[sizeof(host) - 1] = '\0';
	snprintf(out, n, "%.63s", host);
	for (char *p = out; *p; p++)
		if (!node_name_char(*p))
			*p = '-';
}

void config_defaults(struct selo_config *c, const char *data_dir)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->data_dir, sizeof(c->data_dir), "%s", data_dir);
	snprintf(c->api_listen, sizeof(c->api_listen), "127.0.0.1:8480");
	c->api_max_body = 32u << 20;
	c->api_threads = 16;
	c->api_request_timeout_s = 120;
	/* Four bodies of 32 MiB at once, each parsed, stay well under a GB
	 * (docs/operations.md, "Memory"); smaller bodies are not counted. */
	c->api_large_body = 1u << 20;
	c->api_large_requests = 4;
	c->max_attachments = 10;
	c->max_attachment_bytes = 10u << 20;
	c->max_message_bytes = 25u << 20;
	c->max_batch = 1000;
	c->max_text_bytes = 256u << 10;
	snprintf(c->track_listen, sizeof(c->track_listen), "127.0.0.1:8481");
	snprintf(c->track_base_url, sizeof(c->track_base_url), "http://127.0.0.1:8481");
	/* Half the cores serve, the rest record: on 2 cores one listener
	 * thread kept the pixel's p99 at 5-6 ms where two gave 7-12 ms, for
	 * 10% fewer requests/s (make bench, docs/tracking.md). */
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	c->track_threads = cores >= 4 ? (int)(cores / 2 > 64 ? 64 : cores / 2) : 1;
	c->track_max_connections = 4096;
	c->track_per_ip_connections = 64;
	c->track_head_timeout_s = 5;
	c->track_rate_per_ip = 20;
	c->track_rate_burst = 100;
	c->track_after_delivery_s = 30;
	c->track_burst_window_ms = 2000;
	c->track_burst_links = 2;
	c->track_full_hits = 10;
	c->track_summary_window_s = 3600;
	c->smtp_mode = SMTP_MAILDIR;
	c->smtp_mx_port = 25;
	c->smtp_per_destination = 4;
	c->starttls = STARTTLS_TRY;
	c->smtp_timeout_ms = 60000;
	snprintf(c->mail_domain, sizeof(c->mail_domain), "example.com");
	snprintf(c->mail_from_name, sizeof(c->mail_from_name), "Selo");
	snprintf(c->dkim_selector, sizeof(c->dkim_selector), "selo");
	c->sender_workers = 4;
	c->sender_batch = 50;
	c->retry_base_s = 60;
	c->retry_max_s = 4 * 3600;
	c->lifetime_s = 5 * 86400;
	c->sender_stop_timeout_s = 30;
	c->tsa_timeout_ms = 10000;
	c->webhooks_timeout_ms = 10000;
	c->webhooks_workers = 8;
	c->webhooks_retry_speedup = 1;
	c->webhooks_keep_days = 30;
	snprintf(c->log_level, sizeof(c->log_level), "info");
	snprintf(c->log_format, sizeof(c->log_format), "text");
	snprintf(c->store_backend, sizeof(c->store_backend), "sqlite");
	c->store_timeout_ms = 5000;
	c->store_lease_ms = 30000;
	c->store_pool = 8;
	node_name_default(c->node_name, sizeof(c->node_name));
}

/* Values derived from others unless set explicitly. */
static void config_derive(struct selo_config *c)
{
	if (!c->mail_from_address[0])
		snprintf(c->mail_from_address, sizeof(c->mail_from_address), "notificacoes@%s",
			 c->mail_domain);
	if (!c->mail_return_path[0])
		snprintf(c->mail_return_path, sizeof(c->mail_return_path), "%s", c->mail_from_address);
	if (!c->dkim_domain[0])
		snprintf(c->dkim_domain, sizeof(c->dkim_domain), "%s", c->mail_domain);
	if (!c->smtp_helo[0])
		snprintf(c->smtp_helo, sizeof(c->smtp_helo), "%s", c->mail_domain);
	if (!c->log_origin[0])
		snprintf(c->log_origin, sizeof(c->log_origin), "%.200s/selo-log", c->mail_domain);
	size_t n = strlen(c->track_base_url);
	while (n > 0 && c->track_base_url[n - 1] == '/')
		c->track_base_url[--n] = '\0';
}

struct parse_ctx {
	struct selo_config *c;
	struct selo_err *err;
	const char *path;
	int failed;
	char why[420];
};

static int parse_number(const char *v, long long min, long long max, long long *out)
{
	char *end;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	long long mult = 1;
	if (end != v && (*end == 'k' || *end == 'K'))
		mult = 1024, end++;
	else if (end != v && (*end == 'm' || *end == 'M'))
		mult = 1024 * 1024, end++;
	if (errno || end == v || *end || n < 0 || (mult > 1 && n > LLONG_MAX / mult))
		return -1;
	n *= mult;
	if (n < min || n > max)
		return -1;
	*out = n;
	return 0;
}

static int set_value(const struct key *k, struct selo_config *c, const char *v, char *why, size_t wn)
{
	char *field = (char *)c + k->off;
	long long n;
	switch (k->kind) {
	case K_STR:
		if (strlen(v) >= k->size)
			return snprintf(why, wn, "longer than %zu characters", k->size - 1), -1;
		memcpy(field, v, strlen(v) + 1);
		return 0;
	case K_INT:
	case K_SIZE:
		if (parse_number(v, k->min, k->max, &n))
			return snprintf(why, wn, "must be a number from %lld to %lld (k/M suffixes allowed)",
					k->min, k->max), -1;
		if (k->kind == K_INT)
			*(int *)field = (int)n;
		else
			*(size_t *)field = (size_t)n;
		return 0;
	case K_BOOL:
		if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1"))
			return *(int *)field = 1, 0;
		if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "0"))
			return *(int *)field = 0, 0;
		return snprintf(why, wn, "must be yes or no"), -1;
	case K_MODE:
		if (!strcmp(v, "maildir"))
			return *(int *)field = SMTP_MAILDIR, 0;
		if (!strcmp(v, "relay"))
			return *(int *)field = SMTP_RELAY, 0;
		if (!strcmp(v, "mx"))
			return *(int *)field = SMTP_MX, 0;
		return snprintf(why, wn, "must be maildir, relay or mx"), -1;
	case K_TLS:
		if (!strcmp(v, "no"))
			return *(int *)field = STARTTLS_NO, 0;
		if (!strcmp(v, "try"))
			return *(int *)field = STARTTLS_TRY, 0;
		if (!strcmp(v, "require"))
			return *(int *)field = STARTTLS_REQUIRE, 0;
		return snprintf(why, wn, "must be no, try or require"), -1;
	case K_NETS: { /* a CIDR list, checked whole here so a typo names itself */
		char bad[200];
		if (netlist_parse(v, (struct netlist *)field, bad, sizeof(bad)) != 0)
			return snprintf(why, wn, "%s (a list of addresses or networks such as "
					"127.0.0.1, 10.0.0.0/8, fd00::/8)", bad), -1;
		return 0;
	}
	}
	return -1;
}

/* Levenshtein distance of a and b (each cut at 63 bytes: keys are shorter). */
static size_t edit_distance(const char *a, const char *b)
{
	size_t n = strnlen(a, 63), m = strnlen(b, 63);
	size_t row[64];
	for (size_t j = 0; j <= m; j++)
		row[j] = j;
	for (size_t i = 1; i <= n; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= m; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[m];
}

static int section_known(const char *section)
{
	for (size_t i = 0; i < sizeof(KEYS) / sizeof(KEYS[0]); i++)
		if (!strcmp(KEYS[i].section, section))
			return 1;
	return 0;
}

/* The key a typo most likely meant, for "did you mean ...?": the same name
 * in another section when there is one (a key put under the wrong
 * heading), else the nearest "section.name" by edit distance, if it is near
 * enough to be a typo (at most a third of its length, and 3 edits). */
static const struct key *key_nearest(const char *section, const char *name)
{
	for (size_t i = 0; i < sizeof(KEYS) / sizeof(KEYS[0]); i++)
		if (!strcmp(KEYS[i].name, name))
			return &KEYS[i];
	char want[128], have[128];
	snprintf(want, sizeof(want), "%s.%s", section, name);
	const struct key *best = NULL;
	size_t best_d = (size_t)-1;
	for (size_t i = 0; i < sizeof(KEYS) / sizeof(KEYS[0]); i++) {
		snprintf(have, sizeof(have), "%s.%s", KEYS[i].section, KEYS[i].name);
		size_t d = edit_distance(want, have);
		if (d < best_d)
			best = &KEYS[i], best_d = d;
	}
	size_t limit = strlen(want) / 3;
	return best && best_d <= (limit < 3 ? limit : 3) ? best : NULL;
}

/* Why a key is not known, with the nearest known one when there is one. */
static void key_unknown_why(const char *section, const char *name, char *why, size_t n)
{
	const struct key *k = key_nearest(section, name);
	const char *what = section_known(section) ? "unknown key" : "unknown section";
	if (k)
		snprintf(why, n, "%s; did you mean %s.%s ([%s] %s)?", what, k->section, k->name,
			 k->section, k->name);
	else
		snprintf(why, n, "%s (every key: docs/operations.md)", what);
}

static int on_ini(void *user, const char *section, const char *name, const char *value)
{
	struct parse_ctx *p = user;
	if (p->failed)
		return 0;
	char why[300] = "";
	for (size_t i = 0; i < sizeof(KEYS) / sizeof(KEYS[0]) && !why[0]; i++) {
		if (strcmp(KEYS[i].section, section) || strcmp(KEYS[i].name, name))
			continue;
		if (set_value(&KEYS[i], p->c, value, why, sizeof(why)) == 0)
			return 1;
	}
	if (!why[0])
		key_unknown_why(section, name, why, sizeof(why));
	/* inih reports the line of the first refused key as its return value. */
	p->failed = 1;
	snprintf(p->why, sizeof(p->why), "[%.64s] %.64s: %.280s", section, name, why);
	return 0;
}

char *config_path(const struct selo_config *c, const char *rel, char *out, size_t n)
{
	snprintf(out, n, "%s/%s", c->data_dir, rel);
	return out;
}

int config_file(const struct selo_config *c, const char *value, char *out, size_t n)
{
	int w = value[0] == '/' ? snprintf(out, n, "%s", value)
				: snprintf(out, n, "%s/%s", c->data_dir, value);
	return w < 0 || (size_t)w >= n ? -1 : 0;
}

int config_store_postgres(const struct selo_config *c)
{
	return !strcmp(c->store_backend, "postgres");
}

/* [store] and [node]: a URL with the sqlite backend is refused rather than
 * ignored, since a node meant for a shared database would otherwise run
 * alone on its own file, unseen. */
static int config_check_store(const struct selo_config *c, const char *path, struct selo_err *err)
{
	if (strcmp(c->store_backend, "sqlite") && strcmp(c->store_backend, "postgres"))
		return err_set(err, 500, "config", "%s: store.backend must be sqlite or postgres",
			       path);
	if (config_store_postgres(c) && !c->store_url[0])
		return err_set(err, 500, "config", "%s: store.backend = postgres needs store.url, a "
			       "libpq connection string such as \"host=db1 dbname=selo user=selo\" "
			       "(docs/scale.md)", path);
	if (!config_store_postgres(c) && c->store_url[0])
		return err_set(err, 500, "config", "%s: store.url is set but store.backend is sqlite: "
			       "set store.backend = postgres to use it, or remove store.url", path);
	if (c->store_lease_ms <= c->store_timeout_ms)
		return err_set(err, 500, "config", "%s: store.lease (%d ms) must be longer than "
			       "store.timeout (%d ms): a claim must outlive the longest store call",
			       path, c->store_lease_ms, c->store_timeout_ms);
	if (!node_name_valid(c->node_name))
		return err_set(err, 500, "config", "%s: node.name must be letters, digits, '.', '_' "
			       "or '-' (at most %zu), unique per node", path,
			       sizeof(c->node_name) - 1);
	return 0;
}

int config_load(const char *data_dir, struct selo_config *c, struct selo_err *err)
{
	config_defaults(c, data_dir);
	char path[1100];
	config_path(c, "selo.conf", path, sizeof(path));
	struct buf text = BUF_INIT;
	if (file_read(path, 1 << 20, &text, err) != 0) {
		buf_free(&text);
		return err_set(err, 500, "config", "cannot read %s (run `selo init --data %s` first)",
			       path, data_dir);
	}
	struct parse_ctx p = {c, err, path, 0, ""};
	int r = ini_parse_string(buf_str(&text), on_ini, &p);
	buf_free(&text);
	if (p.failed)
		return err_set(err, 500, "config", "%s line %d: %s", path, r, p.why);
	if (r != 0)
		return err_set(err, 500, "config", "%s line %d: not a valid INI line", path, r);
	config_derive(c);
	if (c->tsa_url[0] && !c->tsa_ca[0])
		return err_set(err, 500, "config", "%s: tsa.url needs tsa.ca, the CA bundle its tokens "
			       "are verified against", path);
	/* Applied at once, so that every line the process writes after reading
	 * its configuration (the store's checks at open included) has its form. */
	if (diag_configure(c->log_level, c->log_format) != 0)
		return err_set(err, 500, "config", "%s: log.level must be error, warn, info or debug "
			       "and log.format text or json", path);
	if (c->smtp_mode == SMTP_RELAY && !c->smtp_relay[0])
		return err_set(err, 500, "config", "%s: smtp.mode = relay needs smtp.relay = host:port",
			       path);
	return config_check_store(c, path, err);
}

int config_write_initial(const char *path, const char *domain, const char *selector,
			 const char *origin, struct selo_err *err)
{
	struct buf b = BUF_INIT;
	buf_printf(&b,
		   "# Selo configuration (INI). Every key and its default: docs/operations.md.\n"
		   "\n[api]\n# Private API listener (collection systems).\nlisten = 127.0.0.1:8480\n"
		   "\n[track]\n# Public tracker listener (recipients), and the URL that reaches it.\n"
		   "listen = 127.0.0.1:8481\nbase_url = http://127.0.0.1:8481\n"
		   "\n[smtp]\n# maildir (write to DIR/outbox, no network) | relay | mx\nmode = maildir\n"
		   "# relay = smtp.example.net:587\nstarttls = try\n"
		   "\n[mail]\ndomain = %s\nfrom_address = notificacoes@%s\nfrom_name = Selo\n"
		   "\n[dkim]\nselector = %s\n"
		   "\n[log]\norigin = %s\n"
		   "\n[tsa]\n# Empty: the built-in TSA. Else the URL of an RFC 3161 server.\nurl =\n"
		   "\n[sender]\nworkers = 4\n",
		   domain, domain, selector, origin);
	int r = file_write_atomic(path, b.data, b.len, 0600, err);
	buf_free(&b);
	return r;
}
