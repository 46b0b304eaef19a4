/* test_classify.c: the tracker's hit classifier: every rule fires on its
 * input and only there, precedence, the timing and burst rules with their
 * edges, the button press that timing never downgrades, bounded memory for
 * 10^5 notices, and four threads hammering one classifier (run it under the
 * sanitizer build too). */
#include <pthread.h>
#include "selo/classify.h"
#include "t.h"

#define CHROME                                                                      \
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like " \
	"Gecko) Chrome/124.0.0.0 Safari/537.36"
#define GMAIL_PREFETCH                                                              \
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like " \
	"Gecko) Chrome/42.0.2311.135 Safari/537.36 Edge/12.246 Mozilla/5.0"
#define GOOGLE_PROXY "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
#define YAHOO_PROXY "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"
#define CUBOT                                                                          \
	"Mozilla/5.0 (Linux; Android 10; CUBOT X30 Build/QP1A.190711.020) AppleWebKit/537.36 " \
	"(KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36"

#define T0 1767225600000LL /* 2026-01-01T00:00:00Z */

/* A hit no rule should touch: desktop Chrome, GET, two minutes after
 * delivery. Tests change one thing at a time. */
static struct hit base(enum hit_kind k)
{
	struct hit h;
	memset(&h, 0, sizeof h);
	h.kind = k;
	h.method = k == HIT_READ_CONFIRM ? "POST" : "GET";
	h.user_agent = CHROME;
	h.ip = "198.51.100.7";
	strcpy(h.notice, "01KDQ8V6Z3N0000000000000AA");
	h.link = k == HIT_CLICK ? 1 : 0;
	h.accepted_ms = T0;
	h.time_ms = T0 + 120000;
	return h;
}

/* A 26-character notice id: two digits of prefix, then n in 24 digits. */
static void notice_of(char out[27], unsigned prefix, unsigned long n)
{
	out[0] = (char)('0' + prefix / 10 % 10);
	out[1] = (char)('0' + prefix % 10);
	for (int i = 25; i >= 2; i--, n /= 10)
		out[i] = (char)('0' + n % 10);
	out[26] = '\0';
}

static struct verdict run(struct classifier *c, const struct hit *h)
{
	struct verdict v;
	memset(&v, 0, sizeof v);
	classify_hit(c, h, &v);
	return v;
}

/* One hit on a fresh classifier. */
static struct verdict once(const struct hit *h)
{
	struct classifier *c = classifier_new(NULL);
	struct verdict v = run(c, h);
	classifier_free(c);
	return v;
}

#define EXPECT(h, cls, why)                         \
	do {                                        \
		struct verdict ev = once(&(h));     \
		CHECK_STR(ev.class_name, cls);      \
		CHECK_STR(ev.reason, why);          \
		CHECK(ev.detail[0] != '\0');        \
	} while (0)

static const enum hit_kind KINDS[] = {HIT_OPEN, HIT_CLICK, HIT_READ_VIEW, HIT_READ_CONFIRM};

TEST(defaults)
{
	struct classify_config cfg;
	classify_config_defaults(&cfg);
	CHECK(cfg.after_delivery_s == 30);
	CHECK(cfg.burst_window_ms == 2000);
	CHECK(cfg.burst_links == 2);
	CHECK(cfg.max_notices == 4096);
}

TEST(rule_table)
{
	static const char *const names[] = {
		"head-request", "prefetch-header", "apple-mpp", "gmail-prefetch", "gmail-proxy",
		"yahoo-proxy", "known-scanner-agent", "seconds-after-delivery", "link-burst",
		"button-pressed", "no-rule"};
	const struct classify_rule *r = NULL;
	size_t n = classify_rules(&r);
	CHECK(n == sizeof names / sizeof names[0]);
	for (size_t i = 0; i < n && i < sizeof names / sizeof names[0]; i++) {
		CHECK_STR(r[i].name, names[i]);
		CHECK(!strcmp(r[i].class_name, CLASS_HUMAN) || !strcmp(r[i].class_name, CLASS_PROXY) ||
		      !strcmp(r[i].class_name, CLASS_SCANNER));
		CHECK(r[i].description && strlen(r[i].description) > 20);
	}
}

TEST(baseline_is_human)
{
	for (size_t i = 0; i < 4; i++) {
		struct hit h = base(KINDS[i]);
		EXPECT(h, "human", KINDS[i] == HIT_READ_CONFIRM ? "button-pressed" : "no-rule");
	}
}

TEST(head_request)
{
	for (size_t i = 0; i < 4; i++) {
		struct hit h = base(KINDS[i]);
		h.method = "HEAD";
		EXPECT(h, "scanner", "head-request");
	}
	struct hit h = base(HIT_OPEN);
	h.method = "head"; /* methods are case-sensitive; "head" is not HEAD */
	EXPECT(h, "human", "no-rule");
}

TEST(prefetch_header)
{
	static const char *const yes[] = {"prefetch", "prefetch;prerender", "Prefetch"};
	for (size_t i = 0; i < 4; i++) {
		for (size_t j = 0; j < 3; j++) {
			struct hit h = base(KINDS[i]);
			h.purpose = yes[j];
			EXPECT(h, "scanner", "prefetch-header");
		}
	}
	struct hit h = base(HIT_OPEN);
	h.purpose = "";
	EXPECT(h, "human", "no-rule");
	h.purpose = "preview";
	EXPECT(h, "human", "no-rule");

	/* The header is untrusted: the detail carries no control bytes. */
	h.purpose = "prefetch\r\n\x01X-Evil: 1";
	struct verdict v = once(&h);
	CHECK_STR(v.reason, "prefetch-header");
	for (const char *p = v.detail; *p; p++)
		CHECK((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
}

TEST(apple_mpp_opens_only)
{
	struct hit h = base(HIT_OPEN);
	h.user_agent = "Mozilla/5.0";
	EXPECT(h, "proxy", "apple-mpp");

	/* Not a known Apple pattern for clicks, views or presses: no rule of its own. */
	h = base(HIT_CLICK);
	h.user_agent = "Mozilla/5.0";
	EXPECT(h, "human", "no-rule");
	h = base(HIT_READ_VIEW);
	h.user_agent = "Mozilla/5.0";
	EXPECT(h, "human", "no-rule");
	h = base(HIT_READ_CONFIRM);
	h.user_agent = "Mozilla/5.0";
	EXPECT(h, "human", "button-pressed");

	/* Exactly that string, nothing longer. */
	h = base(HIT_OPEN);
	h.user_agent = "Mozilla/5.0 ";
	EXPECT(h, "human", "no-rule");
	h.user_agent = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
		       "(KHTML, like Gecko)";
	EXPECT(h, "human", "no-rule");
}

TEST(gmail_prefetch)
{
	for (size_t i = 0; i < 4; i++) {
		struct hit h = base(KINDS[i]);
		h.user_agent = GMAIL_PREFETCH;
		EXPECT(h, "proxy", "gmail-prefetch");
	}
	/* The same agent without its trailing "Mozilla/5.0" is another agent. */
	struct hit h = base(HIT_OPEN);
	h.user_agent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
		       "Gecko) Chrome/42.0.2311.135 Safari/537.36 Edge/12.246";
	EXPECT(h, "human", "no-rule");
}

TEST(webmail_proxies)
{
	for (size_t i = 0; i < 4; i++) {
		struct hit h = base(KINDS[i]);
		h.user_agent = GOOGLE_PROXY;
		EXPECT(h, "proxy", "gmail-proxy");
		h.user_agent = YAHOO_PROXY;
		EXPECT(h, "proxy", "yahoo-proxy");
	}
}

TEST(known_scanner_agents)
{
	static const char *const bots[] = {
		"curl/8.5.0",
		"Wget/1.21.4",
		"python-requests/2.31.0",
		"Python-urllib/3.11",
		"Go-http-client/1.1",
		"libwww-perl/6.72",
		"Java/17.0.2",
		"okhttp/4.12.0",
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
		"HeadlessChrome/124.0.6367.29 Safari/537.36",
		"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
		"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
		"Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
		"SomeCrawler",
	};
	for (size_t i = 0; i < sizeof bots / sizeof bots[0]; i++) {
		for (size_t k = 0; k < 4; k++) {
			struct hit h = base(KINDS[k]);
			h.user_agent = bots[i];
			EXPECT(h, "scanner", "known-scanner-agent");
		}
	}
	struct hit h = base(HIT_CLICK);
	h.user_agent = "curl/8.5.0";
	struct verdict v = once(&h);
	CHECK(strstr(v.detail, "\"curl/\"") != NULL);

	/* Ordinary browsers, a phone named CUBOT and a missing agent: no agent rule. */
	static const char *const browsers[] = {
		CHROME, CUBOT,
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14.4; rv:125.0) Gecko/20100101 Firefox/125.0",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
		"(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
		NULL, ""};
	for (size_t i = 0; i < sizeof browsers / sizeof browsers[0]; i++) {
		h = base(HIT_CLICK);
		h.user_agent = browsers[i];
		EXPECT(h, "human", "no-rule");
	}
}

TEST(precedence)
{
	struct hit h = base(HIT_OPEN);
	h.method = "HEAD";
	h.user_agent = GMAIL_PREFETCH;
	EXPECT(h, "scanner", "head-request");

	h = base(HIT_OPEN);
	h.method = "HEAD";
	h.user_agent = "Mozilla/5.0";
	EXPECT(h, "scanner", "head-request");

	h = base(HIT_OPEN);
	h.purpose = "prefetch";
	h.user_agent = GOOGLE_PROXY;
	EXPECT(h, "scanner", "prefetch-header");

	/* An agent rule decides before timing. */
	h = base(HIT_CLICK);
	h.user_agent = "curl/8.5.0";
	h.time_ms = h.accepted_ms + 2000;
	EXPECT(h, "scanner", "known-scanner-agent");

	h = base(HIT_CLICK);
	h.user_agent = GOOGLE_PROXY;
	h.time_ms = h.accepted_ms + 2000;
	EXPECT(h, "proxy", "gmail-proxy");

	/* Two agent rules at once: the earlier row wins. */
	h = base(HIT_CLICK);
	h.user_agent = "curl/8.5.0 YahooMailProxy";
	EXPECT(h, "proxy", "yahoo-proxy");
}

TEST(seconds_after_delivery)
{
	struct hit h = base(HIT_CLICK);
	h.time_ms = h.accepted_ms + 120000;
	EXPECT(h, "human", "no-rule");

	h.time_ms = h.accepted_ms + 5000;
	struct verdict v = once(&h);
	CHECK_STR(v.class_name, "scanner");
	CHECK_STR(v.reason, "seconds-after-delivery");
	CHECK_STR(v.detail, "clicked 5 s after delivery (threshold 30 s)");

	h.time_ms = h.accepted_ms + 4500;
	v = once(&h);
	CHECK_STR(v.detail, "clicked 4.5 s after delivery (threshold 30 s)");

	/* The threshold itself is outside; one ms below is inside. */
	h.time_ms = h.accepted_ms + 30000;
	EXPECT(h, "human", "no-rule");
	h.time_ms = h.accepted_ms + 29999;
	EXPECT(h, "scanner", "seconds-after-delivery");

	/* Before the recorded delivery: clocks disagree, the machine label stays. */
	h.time_ms = h.accepted_ms - 3000;
	v = once(&h);
	CHECK_STR(v.reason, "seconds-after-delivery");
	CHECK(strstr(v.detail, "before the recorded delivery") != NULL);

	/* Delivery time unknown: no timing rule. */
	h.accepted_ms = 0;
	h.time_ms = T0;
	EXPECT(h, "human", "no-rule");

	/* The confirmation page is a link like the others. */
	h = base(HIT_READ_VIEW);
	h.time_ms = h.accepted_ms + 5000;
	EXPECT(h, "scanner", "seconds-after-delivery");

	/* Opens are not downgraded by timing: a person with the inbox open reads
	 * on arrival, and the machines that fetch on arrival are named by agent. */
	h = base(HIT_OPEN);
	h.time_ms = h.accepted_ms + 1000;
	EXPECT(h, "human", "no-rule");

	/* Nor is a button press. */
	h = base(HIT_READ_CONFIRM);
	h.time_ms = h.accepted_ms + 1000;
	EXPECT(h, "human", "button-pressed");

	/* after_delivery_s 0 disables the rule. */
	struct classify_config cfg;
	classify_config_defaults(&cfg);
	cfg.after_delivery_s = 0;
	struct classifier *c = classifier_new(&cfg);
	h = base(HIT_CLICK);
	h.time_ms = h.accepted_ms + 1000;
	v = run(c, &h);
	CHECK_STR(v.reason, "no-rule");
	classifier_free(c);

	/* A longer threshold from configuration. */
	classify_config_defaults(&cfg);
	cfg.after_delivery_s = 60;
	c = classifier_new(&cfg);
	h.time_ms = h.accepted_ms + 45000;
	v = run(c, &h);
	CHECK_STR(v.reason, "seconds-after-delivery");
	CHECK_STR(v.detail, "clicked 45 s after delivery (threshold 60 s)");
	classifier_free(c);
}

TEST(button_press)
{
	struct hit h = base(HIT_READ_CONFIRM);
	EXPECT(h, "human", "button-pressed");
	h.user_agent = NULL;
	EXPECT(h, "human", "button-pressed");
	h.user_agent = "python-requests/2.31.0";
	EXPECT(h, "scanner", "known-scanner-agent");
	h.user_agent = CHROME;
	h.purpose = "prefetch";
	EXPECT(h, "scanner", "prefetch-header");

	/* A press right after a burst of link hits is still a person. */
	struct classifier *c = classifier_new(NULL);
	struct hit a = base(HIT_CLICK), b = base(HIT_CLICK), p = base(HIT_READ_CONFIRM);
	b.link = 2;
	b.time_ms = a.time_ms + 300;
	p.time_ms = a.time_ms + 600;
	run(c, &a);
	CHECK_STR(run(c, &b).reason, "link-burst");
	struct verdict v = run(c, &p);
	CHECK_STR(v.class_name, "human");
	CHECK_STR(v.reason, "button-pressed");
	classifier_free(c);
}

TEST(link_burst)
{
	struct classifier *c = classifier_new(NULL);
	struct hit a = base(HIT_CLICK), b = base(HIT_CLICK);
	b.link = 2;
	b.time_ms = a.time_ms + 300;
	struct verdict va = run(c, &a), vb = run(c, &b);
	CHECK_STR(va.class_name, "human"); /* the first of a burst keeps its verdict */
	CHECK_STR(va.reason, "no-rule");
	CHECK_STR(vb.class_name, "scanner");
	CHECK_STR(vb.reason, "link-burst");
	CHECK_STR(vb.detail, "2 distinct links of this notice within 0.3 s (threshold 2 links in 2 s)");

	/* Later hits in the window are part of the burst too, repeats included. */
	struct hit d = base(HIT_CLICK);
	d.link = 3;
	d.time_ms = a.time_ms + 900;
	struct verdict vd = run(c, &d);
	CHECK_STR(vd.reason, "link-burst");
	CHECK(strncmp(vd.detail, "3 distinct links", 16) == 0);
	d.link = 2;
	d.time_ms = a.time_ms + 1200;
	CHECK_STR(run(c, &d).reason, "link-burst");

	/* Long after: a single link again is no burst. */
	d.link = 1;
	d.time_ms = a.time_ms + 60000;
	CHECK_STR(run(c, &d).reason, "no-rule");
	classifier_free(c);

	/* The same links of two different notices: no burst. */
	c = classifier_new(NULL);
	a = base(HIT_CLICK);
	b = base(HIT_CLICK);
	strcpy(b.notice, "01KDQ8V6Z3N0000000000000BB");
	b.link = 2;
	b.time_ms = a.time_ms + 300;
	CHECK_STR(run(c, &a).reason, "no-rule");
	CHECK_STR(run(c, &b).reason, "no-rule");
	classifier_free(c);

	/* The same link twice: no burst. */
	c = classifier_new(NULL);
	a = base(HIT_CLICK);
	b = a;
	b.time_ms = a.time_ms + 300;
	CHECK_STR(run(c, &a).reason, "no-rule");
	CHECK_STR(run(c, &b).reason, "no-rule");
	classifier_free(c);

	/* Just outside the window: no burst; at its edge: a burst. */
	c = classifier_new(NULL);
	a = base(HIT_CLICK);
	b = base(HIT_CLICK);
	b.link = 2;
	b.time_ms = a.time_ms + 2001;
	run(c, &a);
	CHECK_STR(run(c, &b).reason, "no-rule");
	struct hit e = base(HIT_CLICK);
	e.link = 3;
	e.time_ms = b.time_ms + 2000;
	CHECK_STR(run(c, &e).reason, "link-burst");
	classifier_free(c);

	/* The confirmation page counts as a link of its own. */
	c = classifier_new(NULL);
	a = base(HIT_CLICK);
	struct hit view = base(HIT_READ_VIEW);
	view.time_ms = a.time_ms + 300;
	run(c, &a);
	CHECK_STR(run(c, &view).reason, "link-burst");
	classifier_free(c);

	/* Opens are not links. */
	c = classifier_new(NULL);
	struct hit o = base(HIT_OPEN);
	a = base(HIT_CLICK);
	a.time_ms = o.time_ms + 100;
	CHECK_STR(run(c, &o).reason, "no-rule");
	CHECK_STR(run(c, &a).reason, "no-rule");
	classifier_free(c);

	/* A HEAD on one link counts for the burst that a GET completes. */
	c = classifier_new(NULL);
	a = base(HIT_CLICK);
	a.method = "HEAD";
	b = base(HIT_CLICK);
	b.link = 2;
	b.time_ms = a.time_ms + 500;
	CHECK_STR(run(c, &a).reason, "head-request");
	CHECK_STR(run(c, &b).reason, "link-burst");
	classifier_free(c);
}

TEST(link_burst_configured)
{
	struct classify_config cfg;
	classify_config_defaults(&cfg);
	cfg.burst_links = 3;
	cfg.burst_window_ms = 5000;
	struct classifier *c = classifier_new(&cfg);
	struct hit h = base(HIT_CLICK);
	CHECK_STR(run(c, &h).reason, "no-rule");
	h.link = 2;
	h.time_ms += 3000;
	CHECK_STR(run(c, &h).reason, "no-rule");
	h.link = 3;
	h.time_ms += 1500;
	CHECK_STR(run(c, &h).reason, "link-burst");
	classifier_free(c);

	/* burst_links below 2 disables the rule. */
	classify_config_defaults(&cfg);
	cfg.burst_links = 1;
	c = classifier_new(&cfg);
	h = base(HIT_CLICK);
	CHECK_STR(run(c, &h).reason, "no-rule");
	h.link = 2;
	h.time_ms += 100;
	CHECK_STR(run(c, &h).reason, "no-rule");
	classifier_free(c);
}

TEST(memory_bound)
{
	struct classifier *c = classifier_new(NULL);
	CHECK(classifier_tracked(c) == 0);
	struct hit h = base(HIT_CLICK);
	for (long i = 0; i < 100000; i++) {
		notice_of(h.notice, 1, (unsigned long)i);
		h.time_ms = T0 + 120000 + i;
		struct verdict v = run(c, &h);
		CHECK(v.reason != NULL);
	}
	size_t n = classifier_tracked(c);
	CHECK(n <= 4096);
	CHECK(n > 2048); /* the table is used, not left empty */

	/* After the flood, a fresh burst is still seen. */
	struct hit a = base(HIT_CLICK), b = base(HIT_CLICK);
	a.time_ms = T0 + 500000;
	b.time_ms = a.time_ms + 200;
	b.link = 2;
	run(c, &a);
	CHECK_STR(run(c, &b).reason, "link-burst");
	CHECK(classifier_tracked(c) <= 4096);
	classifier_free(c);

	/* A small configured table stays small. */
	struct classify_config cfg;
	classify_config_defaults(&cfg);
	cfg.max_notices = 5;
	c = classifier_new(&cfg);
	for (long i = 0; i < 1000; i++) {
		notice_of(h.notice, 1, (unsigned long)i);
		run(c, &h);
	}
	CHECK(classifier_tracked(c) <= 5);
	CHECK(classifier_tracked(c) > 0);
	classifier_free(c);
}

TEST(unknown_kind)
{
	struct hit h = base(HIT_OPEN);
	h.kind = (enum hit_kind)77;
	EXPECT(h, "scanner", "unknown-kind");
}

#define THREADS 4
#define PER_THREAD 20000

struct hammer {
	struct classifier *c;
	int id;
	int bursts, firsts_human, bad;
};

/* Each thread clicks link 1 then link 2 of its own notices 300 ms apart,
 * and mixes in opens and button presses. */
static void *hammer_run(void *arg)
{
	struct hammer *w = arg;
	for (int i = 0; i < PER_THREAD; i++) {
		struct hit a = base(HIT_CLICK), b;
		notice_of(a.notice, (unsigned)w->id, (unsigned long)i);
		a.time_ms = T0 + 120000 + (int64_t)i * 10;
		b = a;
		b.link = 2;
		b.time_ms = a.time_ms + 300;
		struct verdict v;
		classify_hit(w->c, &a, &v);
		w->firsts_human += !strcmp(v.reason, "no-rule");
		classify_hit(w->c, &b, &v);
		w->bursts += !strcmp(v.reason, "link-burst");
		struct hit o = base(i % 2 ? HIT_OPEN : HIT_READ_CONFIRM);
		o.user_agent = i % 3 ? CHROME : GOOGLE_PROXY;
		classify_hit(w->c, &o, &v);
		w->bad += v.class_name == NULL || v.reason == NULL;
	}
	return NULL;
}

TEST(threads)
{
	struct classify_config cfg;
	classify_config_defaults(&cfg);
	cfg.max_notices = 1 << 16;
	struct classifier *c = classifier_new(&cfg);
	pthread_t t[THREADS];
	struct hammer w[THREADS];
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct hammer){.c = c, .id = i};
		CHECK(pthread_create(&t[i], NULL, hammer_run, &w[i]) == 0);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < THREADS; i++) {
		CHECK(w[i].firsts_human == PER_THREAD); /* a new notice is never a burst */
		/* The second click finds the first unless the notice was evicted
		 * in between, which takes eight other notices in its set meanwhile. */
		CHECK(w[i].bursts >= PER_THREAD * 99 / 100);
		CHECK(w[i].bad == 0);
	}
	CHECK(classifier_tracked(c) <= (size_t)cfg.max_notices);
	classifier_free(c);
}
