/* test_tracker.c: the public listener (tracker.h) over real HTTP. One
 * fixture for all tests, made once in a mkdtemp directory under /tmp the
 * way `selo init` makes a data directory (keys_init, config_write_initial,
 * selo_open), with two sealed notices (one delivered a moment ago) and a
 * third that was never sealed, the ledger running and the tracker on a free
 * loopback port; curl is the client. Checks the pixel's bytes and headers,
 * redirects only to stored URLs, that forged, truncated, altered and
 * wrong-kind tokens are 404s that cost no store call, the confirmation page
 * and its POST (one event per press class), classification and the
 * committed evidence in the recorded events, the per-IP rate limit, and the
 * public log (checkpoint, hash tiles, entry bundles). Removed at exit. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "selo/clock.h"
#include "selo/config.h"
#include "selo/crypto.h"
#include "selo/event.h"
#include "selo/id.h"
#include "selo/keys.h"
#include "selo/ledger.h"
#include "selo/selo.h"
#include "selo/store.h"
#include "selo/tlog.h"
#include "selo/token.h"
#include "selo/tracker.h"
#include "t.h"

#define BROWSER "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
#define TARGET1 "https://example.org/pagar?boleto=123&x=1"
#define TARGET2 "https://example.org/contato"

struct notice_fx {
	char id[SELO_ID_TEXT + 1];
	char open[TOKEN_TEXT_LEN + 1], click1[TOKEN_TEXT_LEN + 1], click2[TOKEN_TEXT_LEN + 1],
		read[TOKEN_TEXT_LEN + 1];
};

struct fx {
	int ready, failed;
	char dir[64];
	struct selo app;
	uint8_t key[TOKEN_KEY_LEN];
	int port;
	struct notice_fx a;      /* sealed, not delivered */
	struct notice_fx b;      /* sealed and delivered just now */
	struct notice_fx gone;   /* genuine tokens, never sealed: unknown to the store */
};

static struct fx fx;

/* ---- HTTP through curl */

struct resp {
	int status;
	struct buf hdrs;
	struct buf body;
};

static void resp_free(struct resp *r)
{
	buf_free(&r->hdrs);
	buf_free(&r->body);
}

static void file_read(const char *path, struct buf *b)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return;
	char tmp[4096];
	size_t n;
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		buf_append(b, tmp, n);
	fclose(f);
}

/* curl with extra arguments (already shell-quoted) on path at port. */
static int http_at(int port, const char *args, const char *path, struct resp *r)
{
	memset(r, 0, sizeof(*r));
	char hp[128], bp[128], cmd[2048];
	snprintf(hp, sizeof(hp), "%s/resp.hdrs", fx.dir);
	snprintf(bp, sizeof(bp), "%s/resp.body", fx.dir);
	unlink(hp);
	unlink(bp);
	snprintf(cmd, sizeof(cmd),
		 "curl -s --max-time 10 -o '%s' -D '%s' -w '%%{http_code}' %s "
		 "'http://127.0.0.1:%d%s'",
		 bp, hp, args, port, path);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	if (fscanf(p, "%d", &r->status) != 1)
		r->status = -1;
	pclose(p);
	file_read(hp, &r->hdrs);
	file_read(bp, &r->body);
	return r->status;
}

static int http(const char *args, const char *path, struct resp *r)
{
	return http_at(fx.port, args, path, r);
}

/* The value of header name in r (first one), or NULL; into out. */
static const char *header(const struct resp *r, const char *name, char *out, size_t n)
{
	const char *p = buf_str(&r->hdrs);
	size_t nl = strlen(name);
	while (*p) {
		const char *eol = strstr(p, "\r\n");
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		if (len > nl + 1 && !strncasecmp(p, name, nl) && p[nl] == ':') {
			const char *v = p + nl + 1;
			while (*v == ' ')
				v++;
			size_t vl = len - (size_t)(v - p);
			if (vl >= n)
				vl = n - 1;
			memcpy(out, v, vl);
			out[vl] = '\0';
			return out;
		}
		p += len + (eol ? 2 : 0);
	}
	return NULL;
}

static int header_is(const struct resp *r, const char *name, const char *want)
{
	char v[512];
	return header(r, name, v, sizeof(v)) && !strcmp(v, want);
}

/* ---- fixture */

static int free_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int port = -1;
	if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(s, (struct sockaddr *)&a, &al) == 0)
		port = ntohs(a.sin_port);
	if (s >= 0)
		close(s);
	return port;
}

static void make_token(enum token_kind kind, int link, const uint8_t id[SELO_ID_BYTES],
		       char out[TOKEN_TEXT_LEN + 1])
{
	struct token t = {.kind = kind, .link = (uint16_t)link};
	memcpy(t.notice, id, SELO_ID_BYTES);
	token_make(fx.key, &t, out);
}

static int notice_add(struct notice_fx *n, int seal, int deliver)
{
	struct selo_err e;
	err_clear(&e);
	uint8_t id[SELO_ID_BYTES];
	id_new(id);
	id_to_text(id, n->id);
	make_token(TOKEN_OPEN, 0, id, n->open);
	make_token(TOKEN_CLICK, 1, id, n->click1);
	make_token(TOKEN_CLICK, 2, id, n->click2);
	make_token(TOKEN_READ, 0, id, n->read);
	if (!seal)
		return 0;
	struct notice_new nn;
	memset(&nn, 0, sizeof(nn));
	memcpy(nn.id, n->id, sizeof(nn.id));
	nn.apikey_id = 1;
	sha256(n->id, strlen(n->id), nn.request_sha256);
	random_bytes(nn.salt, sizeof(nn.salt));
	nn.to = "devedor@example.com";
	nn.template_name = "lembrete";
	nn.payload_json = "{\"template\":\"lembrete\"}";
	nn.event_fields = json_pack("{s:s}", "template", "lembrete");
	struct accept_result ar;
	memset(&ar, 0, sizeof(ar));
	int r = store_notices_accept(fx.app.store, &nn, 1, &ar, &e);
	json_decref(nn.event_fields);
	if (r != 0 || ar.failed) {
		fprintf(stderr, "  accept: %s %s\n", e.msg, ar.err.msg);
		return -1;
	}
	struct token_rec tk[4] = {{n->open, "open", 0, NULL}, {n->click1, "click", 1, TARGET1},
				  {n->click2, "click", 2, TARGET2}, {n->read, "read", 0, NULL}};
	const char *eml = "From: a@example.com\r\n\r\nolá\r\n";
	struct seal_rec s = {.id = n->id, .eml = eml, .len = strlen(eml), .message_id = "<m@x>",
			     .tokens = tk, .ntokens = 4};
	sha256_hex(eml, strlen(eml), s.sha256);
	s.event_fields = json_pack("{s:s}", "sha256", s.sha256);
	r = store_notices_sealed(fx.app.store, &s, 1, &e);
	json_decref(s.event_fields);
	if (r != 0) {
		fprintf(stderr, "  sealed: %s\n", e.msg);
		return -1;
	}
	if (!deliver)
		return 0;
	struct result_rec rr = {.id = n->id, .event_type = EV_DELIVERY_ACCEPTED,
				.state = "delivered"};
	rr.event_fields = json_pack("{s:i}", "code", 250);
	r = store_delivery_results(fx.app.store, &rr, 1, &e);
	json_decref(rr.event_fields);
	if (r != 0)
		fprintf(stderr, "  delivered: %s\n", e.msg);
	return r;
}

static void fx_teardown(void)
{
	if (!fx.ready)
		return;
	tracker_stop(fx.app.tracker);
	ledger_close(fx.app.ledger);
	selo_close(&fx.app);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx.dir);
	if (!strncmp(fx.dir, "/tmp/selo-test-tracker-", 23) && system(cmd) != 0)
		fprintf(stderr, "  cannot remove %s\n", fx.dir);
	fx.ready = 0;
}

static int fx_build(void)
{
	struct selo_err e;
	err_clear(&e);
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/selo-test-tracker-XXXXXX");
	if (!mkdtemp(fx.dir))
		return -1;
	char keys[128], conf[128];
	snprintf(keys, sizeof(keys), "%s/keys", fx.dir);
	snprintf(conf, sizeof(conf), "%s/selo.conf", fx.dir);
	struct keys_report rep;
	if (keys_init(keys, "example.com", "notificacoes@example.com", "example.com/selo-log", 0,
		      &rep, &e) != 0 ||
	    config_write_initial(conf, "example.com", "selo", "example.com/selo-log", &e) != 0 ||
	    selo_open(&fx.app, fx.dir, &e) != 0 || keys_load_token_key(keys, fx.key, &e) != 0) {
		fprintf(stderr, "  fixture: %s\n", e.msg);
		return -1;
	}
	fx.ready = 1;
	fx.port = free_port();
	snprintf(fx.app.cfg.track_listen, sizeof(fx.app.cfg.track_listen), "127.0.0.1:%d", fx.port);
	/* Plenty of room: only test_rate_limit exercises the buckets. Bursts
	 * need more distinct links than a notice has, so each test sees the
	 * rule it is about. */
	fx.app.cfg.track_rate_per_ip = 1000;
	fx.app.cfg.track_rate_burst = 1000;
	fx.app.cfg.track_burst_links = 1000;
	if (notice_add(&fx.a, 1, 0) != 0 || notice_add(&fx.b, 1, 1) != 0 ||
	    notice_add(&fx.gone, 0, 0) != 0)
		return -1;
	if (ledger_open(&fx.app, &fx.app.ledger, &e) != 0 || ledger_start(fx.app.ledger, &e) != 0 ||
	    tracker_start(&fx.app, &fx.app.tracker, &e) != 0) {
		fprintf(stderr, "  fixture: %s\n", e.msg);
		return -1;
	}
	return 0;
}

/* Every test starts with it; a broken fixture fails each test once. */
#define FIXTURE()                    \
	do {                             \
		if (fixture() != 0) {        \
			CHECK(!"fixture");       \
			return;                  \
		}                            \
	} while (0)

static int fixture(void)
{
	if (fx.ready || fx.failed)
		return fx.failed ? -1 : 0;
	/* OpenSSL's own exit handler must run after ours (atexit is LIFO):
	 * our teardown stops threads that still use OpenSSL. Options 0 would
	 * return early without registering it. */
	OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CRYPTO_STRINGS, NULL);
	atexit(fx_teardown);
	if (fx_build() != 0) {
		fx.failed = 1;
		return -1;
	}
	return 0;
}

/* ---- store helpers */

/* Events of type on notice; *last gets the newest one's entry (malloc'd). */
static size_t events_count(const char *notice, const char *type, char **last)
{
	struct event_rec *ev = NULL;
	size_t n = 0, k = 0;
	struct selo_err e;
	err_clear(&e);
	if (last)
		*last = NULL;
	if (store_events_of(fx.app.store, notice, &ev, &n, &e) != 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(ev[i].type, type) != 0)
			continue;
		k++;
		if (last) {
			free(*last);
			*last = strdup(ev[i].entry);
		}
	}
	event_recs_free(ev, n);
	return k;
}

/* Waits up to 2 s for at least want events of type; returns the count. */
static size_t events_wait(const char *notice, const char *type, size_t want, char **last)
{
	size_t k = 0;
	for (int i = 0; i < 200; i++) {
		k = events_count(notice, type, last);
		if (k >= want)
			return k;
		if (last)
			free(*last);
		usleep(10 * 1000);
	}
	return events_count(notice, type, last);
}

static int64_t all_events(void)
{
	struct store_counts k;
	struct selo_err e;
	err_clear(&e);
	return store_counts(fx.app.store, &k, &e) == 0 ? k.events : -1;
}

static const char *field(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* The entry's class, reason and method are as given, and its IP and user
 * agent are commitments whose disclosed values are 127.0.0.1 and ua. */
static void check_entry(const char *entry, const char *notice, const char *method,
			const char *cls, const char *reason, const char *ua)
{
	json_t *o = entry ? json_loads(entry, 0, NULL) : NULL;
	CHECK(o != NULL);
	if (!o)
		return;
	CHECK_STR(field(o, "method"), method);
	CHECK_STR(field(o, "class"), cls);
	CHECK_STR(field(o, "reason"), reason);
	CHECK(field(o, "detail") && *field(o, "detail"));
	const char *ip = field(o, "ip");
	const char *uac = field(o, "user_agent");
	CHECK(ip && !strncmp(ip, "sha256:", 7));
	CHECK(!ua || (uac && !strncmp(uac, "sha256:", 7)));
	CHECK(!strstr(entry, "127.0.0.1"));
	/* Apple's agent is a fixed string the detail names; any other agent
	 * must not appear in the public entry. */
	CHECK(!ua || !strcmp(ua, "Mozilla/5.0") || !strstr(entry, ua));
	struct disclosures d = DISCLOSURES_INIT;
	struct selo_err e;
	err_clear(&e);
	int ip_ok = 0, ua_ok = !ua;
	if (store_disclosures_of(fx.app.store, notice, &d, &e) == 0) {
		for (size_t i = 0; i < d.n; i++) {
			if (ip && !strcmp(d.v[i].commitment, ip) && !strcmp(d.v[i].value, "127.0.0.1"))
				ip_ok = 1;
			if (ua && uac && !strcmp(d.v[i].commitment, uac) && !strcmp(d.v[i].value, ua))
				ua_ok = 1;
		}
	}
	disclosures_free(&d);
	CHECK(ip_ok);
	CHECK(ua_ok);
	json_decref(o);
}

static void path_of(char *out, size_t n, const char *pre, const char *tok, const char *suf)
{
	snprintf(out, n, "/%s/%s%s", pre, tok, suf);
}

/* ---- the pixel */

TEST(pixel_is_the_gif_never_cached)
{
	FIXTURE();
	char p[128];
	path_of(p, sizeof(p), "o", fx.a.open, ".gif");
	struct resp r;
	size_t before = events_count(fx.a.id, "opened", NULL);
	CHECK(http("-A '" BROWSER "'", p, &r) == 200);
	static const unsigned char gif[] = {
		0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00,
		0x00, 0x00, 0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c,
		0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00,
		0x3b};
	CHECK(r.body.len == 43 && !memcmp(r.body.data, gif, 43));
	CHECK(header_is(&r, "Content-Type", "image/gif"));
	CHECK(header_is(&r, "Content-Length", "43"));
	CHECK(header_is(&r, "Cache-Control", "no-store, no-cache, must-revalidate, max-age=0"));
	CHECK(header_is(&r, "Pragma", "no-cache"));
	CHECK(header_is(&r, "Expires", "0"));
	resp_free(&r);
	char *last = NULL;
	CHECK(events_wait(fx.a.id, "opened", before + 1, &last) == before + 1);
	check_entry(last, fx.a.id, "GET", "human", "no-rule", BROWSER);
	/* Not delivered yet: no time since delivery to give. */
	CHECK(last && !strstr(last, "seconds_after_delivery"));
	free(last);
}

TEST(pixel_head_is_a_scanner)
{
	FIXTURE();
	char p[128];
	path_of(p, sizeof(p), "o", fx.a.open, ".gif");
	struct resp r;
	size_t before = events_count(fx.a.id, "opened", NULL);
	CHECK(http("-I -A '" BROWSER "'", p, &r) == 200);
	CHECK(header_is(&r, "Content-Type", "image/gif"));
	resp_free(&r);
	char *last = NULL;
	CHECK(events_wait(fx.a.id, "opened", before + 1, &last) == before + 1);
	check_entry(last, fx.a.id, "HEAD", "scanner", "head-request", BROWSER);
	free(last);
}

TEST(pixel_of_apple_mpp_is_a_proxy_and_prefetch_a_scanner)
{
	FIXTURE();
	char p[128];
	path_of(p, sizeof(p), "o", fx.a.open, ".gif");
	struct resp r;
	size_t before = events_count(fx.a.id, "opened", NULL);
	CHECK(http("-A 'Mozilla/5.0'", p, &r) == 200);
	resp_free(&r);
	char *last = NULL;
	CHECK(events_wait(fx.a.id, "opened", before + 1, &last) == before + 1);
	check_entry(last, fx.a.id, "GET", "proxy", "apple-mpp", "Mozilla/5.0");
	free(last);
	CHECK(http("-A '" BROWSER "' -H 'Sec-Purpose: prefetch'", p, &r) == 200);
	resp_free(&r);
	CHECK(events_wait(fx.a.id, "opened", before + 2, &last) == before + 2);
	check_entry(last, fx.a.id, "GET", "scanner", "prefetch-header", BROWSER);
	json_t *o = last ? json_loads(last, 0, NULL) : NULL;
	CHECK(o && field(o, "purpose") && !strncmp(field(o, "purpose"), "sha256:", 7));
	json_decref(o);
	free(last);
}

/* The disclosed value behind the newest opened event's user_agent. */
static char *opened_agent(const char *notice, size_t want)
{
	char *last = NULL;
	char *value = NULL;
	if (events_wait(notice, "opened", want, &last) != want || !last) {
		free(last);
		return NULL;
	}
	json_t *o = json_loads(last, 0, NULL);
	const char *c = field(o, "user_agent");
	struct disclosures d = DISCLOSURES_INIT;
	struct selo_err e;
	err_clear(&e);
	if (c && store_disclosures_of(fx.app.store, notice, &d, &e) == 0)
		for (size_t i = 0; i < d.n && !value; i++)
			if (!strcmp(d.v[i].commitment, c))
				value = strdup(d.v[i].value);
	disclosures_free(&d);
	json_decref(o);
	free(last);
	return value;
}

TEST(user_agent_is_capped_and_valid_utf8)
{
	FIXTURE();
	char p[128];
	path_of(p, sizeof(p), "o", fx.a.open, ".gif");
	size_t before = events_count(fx.a.id, "opened", NULL);
	struct resp r;
	/* 600 bytes: kept to 512. */
	CHECK(http("-A \"$(printf '%0600d' 0)\"", p, &r) == 200);
	resp_free(&r);
	char *ua = opened_agent(fx.a.id, before + 1);
	CHECK(ua && strlen(ua) == 512 && strspn(ua, "0") == 512);
	free(ua);
	/* Latin-1 is not UTF-8: such bytes become '?'. */
	CHECK(http("-A \"$(printf 'Caf\\351 Browser')\"", p, &r) == 200);
	resp_free(&r);
	ua = opened_agent(fx.a.id, before + 2);
	CHECK(ua && !strcmp(ua, "Caf? Browser"));
	free(ua);
	/* UTF-8 stays as sent. */
	CHECK(http("-A 'Navegador Ação/1.0'", p, &r) == 200);
	resp_free(&r);
	ua = opened_agent(fx.a.id, before + 3);
	CHECK(ua && !strcmp(ua, "Navegador Ação/1.0"));
	free(ua);
	/* A character the cap would cut in half is left out whole. */
	CHECK(http("-A \"$(printf '%0511d' 0)ç\"", p, &r) == 200);
	resp_free(&r);
	ua = opened_agent(fx.a.id, before + 4);
	CHECK(ua && strlen(ua) == 511 && strspn(ua, "0") == 511);
	free(ua);
}

TEST(pixel_of_an_unknown_notice_answers_and_records_nothing)
{
	FIXTURE();
	char p[128];
	path_of(p, sizeof(p), "o", fx.gone.open, ".gif");
	int64_t before = all_events();
	struct resp r;
	CHECK(http("-A '" BROWSER "'", p, &r) == 200);
	CHECK(r.body.len == 43);
	resp_free(&r);
	usleep(400 * 1000);
	CHECK(all_events() == before);
}

/* ---- clicks */

TEST(click_redirects_to_the_stored_url_only)
{
	FIXTURE();
	char p[256];
	path_of(p, sizeof(p), "c", fx.a.click1, "");
	size_t before = events_count(fx.a.id, "clicked", NULL);
	struct resp r;
	CHECK(http("-A '" BROWSER "'", p, &r) == 302);
	CHECK(header_is(&r, "Location", TARGET1));
	CHECK(header_is(&r, "Cache-Control", "no-store"));
	resp_free(&r);
	char *last = NULL;
	CHECK(events_wait(fx.a.id, "clicked", before + 1, &last) == before + 1);
	check_entry(last, fx.a.id, "GET", "human", "no-rule", BROWSER);
	json_t *o = last ? json_loads(last, 0, NULL) : NULL;
	CHECK(o && json_integer_value(json_object_get(o, "link")) == 1);
	json_decref(o);
	free(last);

	/* Nothing in the request picks the target. */
	path_of(p, sizeof(p), "c", fx.a.click2, "?url=http://evil.example&next=http://evil.example");
	CHECK(http("-A '" BROWSER "'", p, &r) == 302);
	CHECK(header_is(&r, "Location", TARGET2));
	CHECK(!strstr(buf_str(&r.hdrs), "evil"));
	resp_free(&r);
	CHECK(events_wait(fx.a.id, "clicked", before + 2, NULL) == before + 2);
	path_of(p, sizeof(p), "c", fx.a.click2, "/http://evil.example");
	CHECK(http("", p, &r) == 404);
	CHECK(!strstr(buf_str(&r.hdrs), "evil"));
	resp_free(&r);
}

TEST(click_head_redirects_and_is_a_scanner)
{
	FIXTURE();
	char p[128];
	path_of(p, sizeof(p), "c", fx.a.click1, "");
	size_t before = events_count(fx.a.id, "clicked", NULL);
	struct resp r;
	CHECK(http("-I -A '" BROWSER "'", p, &r) == 302);
	CHECK(header_is(&r, "Location", TARGET1));
	resp_free(&r);
	char *last = NULL;
	CHECK(events_wait(fx.a.id, "clicked", before + 1, &last) == before + 1);
	check_entry(last, fx.a.id, "HEAD", "scanner", "head-request", BROWSER);
	free(last);
}

TEST(click_by_curl_is_a_scanner)
{
	FIXTURE();
	char p[128];
	path_of(p, sizeof(p), "c", fx.a.click1, "");
	size_t before = events_count(fx.a.id, "clicked", NULL);
	struct resp r;
	CHECK(http("-A 'curl/7.88.1'", p, &r) == 302);
	resp_free(&r);
	char *last = NULL;
	CHECK(events_wait(fx.a.id, "clicked", before + 1, &last) == before + 1);
	check_entry(last, fx.a.id, "GET", "scanner", "known-scanner-agent", "curl/7.88.1");
	free(last);
}

TEST(click_right_after_delivery_is_a_scanner)
{
	FIXTURE();
	char p[128];
	path_of(p, sizeof(p), "c", fx.b.click1, "");
	struct resp r;
	CHECK(http("-A '" BROWSER "'", p, &r) == 302);
	resp_free(&r);
	char *last = NULL;
	CHECK(events_wait(fx.b.id, "clicked", 1, &last) == 1);
	check_entry(last, fx.b.id, "GET", "scanner", "seconds-after-delivery", BROWSER);
	json_t *o = last ? json_loads(last, 0, NULL) : NULL;
	json_t *s = json_object_get(o, "seconds_after_delivery");
	CHECK(json_is_integer(s) && json_integer_value(s) >= 0 && json_integer_value(s) < 30);
	json_decref(o);
	free(last);
	/* Opens are never timed out: a person may read at once. */
	path_of(p, sizeof(p), "o", fx.b.open, ".gif");
	CHECK(http("-A '" BROWSER "'", p, &r) == 200);
	resp_free(&r);
	CHECK(events_wait(fx.b.id, "opened", 1, &last) == 1);
	check_entry(last, fx.b.id, "GET", "human", "no-rule", BROWSER);
	CHECK(last && strstr(last, "\"seconds_after_delivery\":"));
	free(last);
}

TEST(click_of_an_unknown_notice_is_a_page_not_an_error)
{
	FIXTURE();
	char p[128];
	path_of(p, sizeof(p), "c", fx.gone.click1, "");
	int64_t before = all_events();
	struct resp r;
	CHECK(http("-A '" BROWSER "'", p, &r) == 200);
	CHECK(strstr(buf_str(&r.body), "Este link não está mais disponível.") != NULL);
	char loc[64];
	CHECK(!header(&r, "Location", loc, sizeof(loc)));
	resp_free(&r);
	usleep(300 * 1000);
	CHECK(all_events() == before);
}

/* ---- refused tokens: no store work at all */

TEST(forged_tokens_are_404_without_store_calls)
{
	FIXTURE();
	usleep(300 * 1000); /* let earlier hits be recorded */
	long long calls = tracker_store_calls(fx.app.tracker);
	int64_t events = all_events();
	char altered[TOKEN_TEXT_LEN + 1], truncated[TOKEN_TEXT_LEN];
	memcpy(altered, fx.a.click1, sizeof(altered));
	altered[20] = altered[20] == 'A' ? 'B' : 'A';
	memcpy(truncated, fx.a.click1, TOKEN_TEXT_LEN - 1);
	truncated[TOKEN_TEXT_LEN - 1] = '\0';
	char forged[TOKEN_TEXT_LEN + 1];
	uint8_t other_key[TOKEN_KEY_LEN];
	random_bytes(other_key, sizeof(other_key));
	struct token t = {.kind = TOKEN_CLICK, .link = 1};
	id_from_text(fx.a.id, t.notice);
	token_make(other_key, &t, forged);
	char paths[16][160];
	int np = 0;
	path_of(paths[np++], 160, "c", altered, "");
	path_of(paths[np++], 160, "c", truncated, "");
	path_of(paths[np++], 160, "c", forged, "");
	path_of(paths[np++], 160, "c", fx.a.open, "");          /* wrong kind */
	path_of(paths[np++], 160, "c", fx.a.read, "");          /* wrong kind */
	path_of(paths[np++], 160, "o", fx.a.click1, ".gif");    /* wrong kind */
	path_of(paths[np++], 160, "o", fx.a.open, "");          /* no .gif */
	path_of(paths[np++], 160, "o", fx.a.open, ".png");
	path_of(paths[np++], 160, "r", fx.a.open, "");          /* wrong kind */
	path_of(paths[np++], 160, "r", altered, "");
	path_of(paths[np++], 160, "c", fx.a.click1, "x");       /* one character too many */
	path_of(paths[np++], 160, "c", "", "");
	snprintf(paths[np++], 160, "/");
	snprintf(paths[np++], 160, "/x/%s", fx.a.click1);
	char body404[64] = "";
	for (int i = 0; i < np; i++) {
		struct resp r;
		CHECK(http("-A '" BROWSER "'", paths[i], &r) == 404);
		if (i == 0)
			snprintf(body404, sizeof(body404), "%s", buf_str(&r.body));
		else
			CHECK_STR(buf_str(&r.body), body404); /* all refusals look alike */
		resp_free(&r);
	}
	struct resp r;
	char p[160];
	path_of(p, sizeof(p), "r", altered, "");
	CHECK(http("-d '' -A '" BROWSER "'", p, &r) == 404);
	resp_free(&r);
	usleep(300 * 1000);
	CHECK(tracker_store_calls(fx.app.tracker) == calls);
	CHECK(all_events() == events);
}

TEST(wrong_methods_and_big_bodies)
{
	FIXTURE();
	char p[160];
	struct resp r;
	path_of(p, sizeof(p), "o", fx.a.open, ".gif");
	CHECK(http("-d 'x=1'", p, &r) == 405);
	CHECK(header_is(&r, "Allow", "GET, HEAD"));
	resp_free(&r);
	path_of(p, sizeof(p), "r", fx.a.read, "");
	CHECK(http("-X PUT", p, &r) == 405);
	CHECK(header_is(&r, "Allow", "GET, HEAD, POST"));
	resp_free(&r);
	char big[160];
	snprintf(big, sizeof(big), "%s/big.txt", fx.dir);
	FILE *f = fopen(big, "w");
	for (int i = 0; f && i < 5000; i++)
		fputc('a', f);
	if (f)
		fclose(f);
	char args[300];
	snprintf(args, sizeof(args), "--data-binary '@%s'", big);
	size_t before = events_count(fx.a.id, "read_confirmed", NULL);
	CHECK(http(args, p, &r) == 413);
	resp_free(&r);
	snprintf(args, sizeof(args), "-H 'Transfer-Encoding: chunked' --data-binary '@%s'", big);
	CHECK(http(args, p, &r) == 413);
	resp_free(&r);
	CHECK(events_count(fx.a.id, "read_confirmed", NULL) == before);
}

/* ---- the confirmation page */

TEST(read_page_and_its_post)
{
	FIXTURE();
	char p[128];
	path_of(p, sizeof(p), "r", fx.a.read, "");
	struct resp r;
	CHECK(http("-A '" BROWSER "'", p, &r) == 200);
	const char *b = buf_str(&r.body);
	CHECK(strstr(b, "<html lang=\"pt-BR\">") != NULL);
	CHECK(strstr(b, "<meta charset=\"utf-8\">") != NULL);
	CHECK(strstr(b, "name=\"viewport\"") != NULL);
	CHECK(strstr(b, "<form method=\"post\">") != NULL);
	CHECK(strstr(b, "<button type=\"submit\">Confirmar recebimento</button>") != NULL);
	CHECK(!strstr(b, "<script") && !strstr(b, "src=") && !strstr(b, "href="));
	CHECK(header_is(&r, "Content-Type", "text/html; charset=utf-8"));
	CHECK(header_is(&r, "Content-Security-Policy",
			"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"));
	CHECK(header_is(&r, "X-Frame-Options", "DENY"));
	CHECK(header_is(&r, "Referrer-Policy", "no-referrer"));
	CHECK(header_is(&r, "Cache-Control", "no-store"));
	resp_free(&r);
	/* Viewing records nothing. */
	usleep(300 * 1000);
	CHECK(events_count(fx.a.id, "read_confirmed", NULL) == 0);

	CHECK(http("-d '' -A '" BROWSER "'", p, &r) == 200);
	CHECK(strstr(buf_str(&r.body), "Recebimento confirmado em") != NULL);
	CHECK(strstr(buf_str(&r.body), "Obrigado.") != NULL);
	CHECK(!strstr(buf_str(&r.body), "<button"));
	char first[4096];
	snprintf(first, sizeof(first), "%s", buf_str(&r.body));
	resp_free(&r);
	/* Durable before the answer: no waiting here. */
	char *last = NULL;
	CHECK(events_count(fx.a.id, "read_confirmed", &last) == 1);
	check_entry(last, fx.a.id, "POST", "human", "button-pressed", BROWSER);
	free(last);

	/* Again: the same page, no new event. */
	CHECK(http("-d 'a=b' -A '" BROWSER "'", p, &r) == 200);
	CHECK_STR(buf_str(&r.body), first);
	resp_free(&r);
	CHECK(events_count(fx.a.id, "read_confirmed", NULL) == 1);
	/* The page now shows the confirmed state. */
	CHECK(http("-A '" BROWSER "'", p, &r) == 200);
	CHECK_STR(buf_str(&r.body), first);
	resp_free(&r);

	/* A machine's POST is its own fact and cannot replace the person's. */
	CHECK(http("-d '' -A 'python-requests/2.31'", p, &r) == 200);
	resp_free(&r);
	CHECK(http("-d '' -A 'python-requests/2.31'", p, &r) == 200);
	resp_free(&r);
	CHECK(events_count(fx.a.id, "read_confirmed", &last) == 2);
	check_entry(last, fx.a.id, "POST", "scanner", "known-scanner-agent", "python-requests/2.31");
	free(last);
}

TEST(read_page_of_an_unknown_notice)
{
	FIXTURE();
	char p[128];
	path_of(p, sizeof(p), "r", fx.gone.read, "");
	struct resp r;
	CHECK(http("", p, &r) == 200);
	CHECK(strstr(buf_str(&r.body), "Este link não está mais disponível.") != NULL);
	resp_free(&r);
	int64_t before = all_events();
	CHECK(http("-d '' -A '" BROWSER "'", p, &r) == 200);
	CHECK(strstr(buf_str(&r.body), "Este link não está mais disponível.") != NULL);
	resp_free(&r);
	CHECK(all_events() == before);
}

/* ---- rate limit */

TEST(rate_limit_per_ip)
{
	FIXTURE();
	/* A second listener with a tiny bucket: 3 hits, then 1 a second. */
	struct selo_config saved = fx.app.cfg;
	int port = free_port();
	snprintf(fx.app.cfg.track_listen, sizeof(fx.app.cfg.track_listen), "127.0.0.1:%d", port);
	fx.app.cfg.track_rate_per_ip = 1;
	fx.app.cfg.track_rate_burst = 3;
	struct tracker *t2 = NULL;
	struct selo_err e;
	err_clear(&e);
	int started = tracker_start(&fx.app, &t2, &e) == 0;
	fx.app.cfg = saved;
	CHECK(started);
	if (!started)
		return;
	usleep(300 * 1000);
	size_t before = events_count(fx.a.id, "opened", NULL);
	char p[128];
	path_of(p, sizeof(p), "o", fx.a.open, ".gif");
	struct resp r;
	for (int i = 0; i < 3; i++) {
		CHECK(http_at(port, "-A '" BROWSER "'", p, &r) == 200);
		resp_free(&r);
	}
	CHECK(http_at(port, "-A '" BROWSER "'", p, &r) == 429);
	CHECK(header_is(&r, "Retry-After", "1"));
	resp_free(&r);
	path_of(p, sizeof(p), "c", fx.a.click1, "");
	CHECK(http_at(port, "-A '" BROWSER "'", p, &r) == 429);
	resp_free(&r);
	tracker_stop(t2); /* flushes what it queued */
	CHECK(events_count(fx.a.id, "opened", NULL) == before + 3);
}

/* ---- the public log */

TEST(log_checkpoint)
{
	FIXTURE();
	struct selo_err e;
	err_clear(&e);
	usleep(300 * 1000);
	CHECK(ledger_sync(fx.app.ledger, 1, &e) >= 0);
	struct buf before = BUF_INIT, after = BUF_INIT;
	CHECK(ledger_latest_checkpoint(fx.app.ledger, &before, &e) == 1);
	struct resp r;
	CHECK(http("", "/log/checkpoint", &r) == 200);
	CHECK(ledger_latest_checkpoint(fx.app.ledger, &after, &e) == 1);
	CHECK(!strcmp(buf_str(&r.body), buf_str(&before)) ||
	      !strcmp(buf_str(&r.body), buf_str(&after)));
	CHECK(!strncmp(buf_str(&r.body), "example.com/selo-log\n", 21));
	CHECK(header_is(&r, "Content-Type", "text/plain; charset=utf-8"));
	CHECK(header_is(&r, "Cache-Control", "no-cache"));
	resp_free(&r);
	buf_free(&before);
	buf_free(&after);
	/* Without a ledger, the log is unavailable, not missing. */
	struct ledger *l = fx.app.ledger;
	fx.app.ledger = NULL;
	CHECK(http("", "/log/checkpoint", &r) == 503);
	resp_free(&r);
	CHECK(http("", "/log/tile/0/000.p/1", &r) == 503);
	resp_free(&r);
	fx.app.ledger = l;
	CHECK(http("-d x", "/log/checkpoint", &r) == 405);
	resp_free(&r);
}

TEST(log_tiles_and_bundles)
{
	FIXTURE();
	struct selo_err e;
	err_clear(&e);
	CHECK(ledger_sync(fx.app.ledger, 1, &e) >= 0);
	struct log_state st;
	CHECK(store_log_state(fx.app.store, &st, &e) == 0);
	CHECK(st.size > 2 && st.size < 256);
	if (st.size <= 2 || st.size >= 256)
		return;
	unsigned w = (unsigned)st.size;
	struct buf tile = BUF_INIT;
	CHECK(store_log_tile(fx.app.store, 0, 0, &tile, &e) == 1);
	CHECK(tile.len >= (size_t)w * 32);
	char p[96];
	struct resp r;
	snprintf(p, sizeof(p), "/log/tile/0/000.p/%u", w);
	CHECK(http("", p, &r) == 200);
	CHECK(r.body.len == (size_t)w * 32 && !memcmp(r.body.data, tile.data, r.body.len));
	CHECK(header_is(&r, "Content-Type", "application/octet-stream"));
	CHECK(header_is(&r, "Cache-Control", "public, max-age=31536000, immutable"));
	resp_free(&r);
	/* A smaller width of the same tile is its prefix. */
	CHECK(http("", "/log/tile/0/000.p/2", &r) == 200);
	CHECK(r.body.len == 64 && !memcmp(r.body.data, tile.data, 64));
	resp_free(&r);

	/* The entry bundle of the same width: uint16-prefixed entries. */
	snprintf(p, sizeof(p), "/log/tile/entries/000.p/%u", w);
	CHECK(http("", p, &r) == 200);
	struct event_rec *ev = NULL;
	size_t n = 0;
	CHECK(store_log_entries(fx.app.store, 0, w, &ev, &n, &e) == 0 && n == w);
	size_t off = 0, i = 0;
	const uint8_t *ent;
	size_t len;
	while (tlog_bundle_next((const uint8_t *)r.body.data, r.body.len, &off, &ent, &len) == 1) {
		CHECK(i < n && len == ev[i].len && !memcmp(ent, ev[i].entry, len));
		uint8_t leaf[32];
		tlog_leaf_hash(ent, len, leaf); /* the level-0 tile holds leaf hashes */
		CHECK(i < w && !memcmp(leaf, tile.data + i * 32, 32));
		i++;
	}
	CHECK(i == w && off == r.body.len);
	event_recs_free(ev, n);
	resp_free(&r);
	buf_free(&tile);

	/* What the tree does not hold yet, and malformed paths: 404. */
	const char *bad[] = {"/log/tile/0/000", "/log/tile/entries/000", "/log/tile/0/001.p/1",
			     "/log/tile/1/000.p/1", "/log/tile/0/000.p/0", "/log/tile/0/000.p/256",
			     "/log/tile/0/0000.p/1", "/log/tile/0/00.p/1", "/log/tile/x/000.p/1",
			     "/log/tile/64/000.p/1", "/log/tile/0/000.p/1/", "/log/tile/",
			     "/log/", "/log/other", "/log/tile/0/000.p/01", NULL};
	for (size_t k = 0; bad[k]; k++) {
		CHECK(http("", bad[k], &r) == 404);
		resp_free(&r);
	}
	snprintf(p, sizeof(p), "/log/tile/0/000.p/%u", w + 1);
	CHECK(http("", p, &r) == 404);
	resp_free(&r);
	snprintf(p, sizeof(p), "/log/tile/entries/000.p/%u", w + 1);
	CHECK(http("", p, &r) == 404);
	resp_free(&r);
}
