/* classify.c: the tracker's hit classifier (see classify.h). One table,
 * `rules` below, lists every rule in evaluation order: its name (the reason
 * a verdict records), its class, the kinds of hit it looks at, a predicate
 * and a description with the source of the fact it rests on (shared
 * notes/tracking.md; docs/tracking.md explains each). To add a rule, write
 * a predicate and insert a row where its precedence belongs.
 * The only state is the burst memory: a fixed set-associative table of
 * notices, each with its last few clicks and page views, evicting the least
 * recently hit notice of a set, behind one mutex. Nothing here fails after
 * classifier_new. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "selo/buf.h"
#include "selo/classify.h"

#define DEFAULT_AFTER_DELIVERY_S 30
#define DEFAULT_BURST_WINDOW_MS 2000
#define DEFAULT_BURST_LINKS 2
#define DEFAULT_MAX_NOTICES 4096
#define MAX_NOTICES_CAP (1 << 18) /* ~80 MB of table; beyond it is a typo */
#define WAYS 8                    /* notices per set */
#define RECENT 16                 /* hits remembered per notice */
#define NOTICE_LEN 26

/* ---- the burst memory ---------------------------------------------------- */

struct recent_hit {
	int link;     /* link index; 0 for the confirmation page */
	int64_t time_ms;
};

struct notice_slot {
	char notice[NOTICE_LEN + 1]; /* "" = free */
	uint64_t last_tick;          /* for LRU within the set */
	unsigned next;               /* ring position in recent[] */
	unsigned count;              /* valid entries in recent[] (<= RECENT) */
	struct recent_hit recent[RECENT];
};

struct classifier {
	struct classify_config cfg;
	pthread_mutex_t mu;
	uint64_t tick;
	size_t nsets, ways, used;
	struct notice_slot *slots; /* nsets * ways */
};

/* What the burst memory says about the hit being classified: how many
 * distinct links of its notice (itself included) fall within the window,
 * and over how many ms they spread. */
struct burst_info {
	int distinct;
	int64_t span_ms;
};

struct rule_ctx {
	const struct hit *hit;
	const struct classify_config *cfg;
	struct burst_info burst;
};

/* ---- helpers ------------------------------------------------------------- */

static int has_text(const char *s)
{
	return s && *s;
}

static int agent_is(const struct hit *h, const char *exact)
{
	return h->user_agent && strcmp(h->user_agent, exact) == 0;
}

static int agent_has(const struct hit *h, const char *needle)
{
	return h->user_agent && strcasestr(h->user_agent, needle) != NULL;
}

/* Copies at most 40 bytes of an untrusted header into out, printable ASCII
 * only, so a detail never carries control bytes into an event. */
static void sanitize(const char *in, char *out, size_t n)
{
	size_t j = 0;
	for (size_t i = 0; in[i] && i < 40 && j + 1 < n; i++) {
		unsigned char ch = (unsigned char)in[i];
		out[j++] = (ch >= 0x20 && ch < 0x7f && ch != '"') ? (char)ch : '?';
	}
	out[j] = '\0';
}

/* "4 s", "4.5 s", in words for a detail. */
static void seconds_text(int64_t ms, char *out, size_t n)
{
	if (ms % 1000 == 0)
		snprintf(out, n, "%lld s", (long long)(ms / 1000));
	else
		snprintf(out, n, "%.1f s", (double)ms / 1000.0);
}

static const char *kind_verb(enum hit_kind k)
{
	switch (k) {
	case HIT_OPEN: return "opened";
	case HIT_CLICK: return "clicked";
	case HIT_READ_VIEW: return "viewed the confirmation page";
	case HIT_READ_CONFIRM: return "pressed the button";
	}
	return "hit";
}

/* ---- the rules ------------------------------------------------------------- */

/* Which kinds a rule looks at. */
#define K_OPEN (1u << HIT_OPEN)
#define K_CLICK (1u << HIT_CLICK)
#define K_VIEW (1u << HIT_READ_VIEW)
#define K_CONFIRM (1u << HIT_READ_CONFIRM)
#define K_ANY (K_OPEN | K_CLICK | K_VIEW | K_CONFIRM)

typedef int (*rule_match_fn)(const struct rule_ctx *x, char *detail, size_t n);

static int match_head(const struct rule_ctx *x, char *detail, size_t n)
{
	if (!x->hit->method || strcmp(x->hit->method, "HEAD") != 0)
		return 0;
	snprintf(detail, n, "HEAD request: a prefetch or link check, no body was shown");
	return 1;
}

static int match_prefetch_header(const struct rule_ctx *x, char *detail, size_t n)
{
	char v[48];
	if (!has_text(x->hit->purpose) || !strcasestr(x->hit->purpose, "prefetch"))
		return 0;
	sanitize(x->hit->purpose, v, sizeof v);
	snprintf(detail, n, "Purpose/Sec-Purpose header \"%s\": a speculative load", v);
	return 1;
}

static int match_apple_mpp(const struct rule_ctx *x, char *detail, size_t n)
{
	if (!agent_is(x->hit, "Mozilla/5.0"))
		return 0;
	snprintf(detail, n, "user agent is exactly \"Mozilla/5.0\": Apple Mail Privacy "
			    "Protection fetches images on arrival, read or not");
	return 1;
}

#define GMAIL_PREFETCH_AGENT                                                              \
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) " \
	"Chrome/42.0.2311.135 Safari/537.36 Edge/12.246 Mozilla/5.0"

static int match_gmail_prefetch(const struct rule_ctx *x, char *detail, size_t n)
{
	if (!agent_is(x->hit, GMAIL_PREFETCH_AGENT))
		return 0;
	snprintf(detail, n, "user agent is Gmail's fixed prefetch agent (Chrome/42 Edge/12.246): "
			    "fetched before the message was shown");
	return 1;
}

static int match_gmail_proxy(const struct rule_ctx *x, char *detail, size_t n)
{
	if (!agent_has(x->hit, "GoogleImageProxy"))
		return 0;
	snprintf(detail, n, "user agent contains \"GoogleImageProxy\": fetched through Gmail's "
			    "image proxy, the reader's device and address are hidden");
	return 1;
}

static int match_yahoo_proxy(const struct rule_ctx *x, char *detail, size_t n)
{
	if (!agent_has(x->hit, "YahooMailProxy"))
		return 0;
	snprintf(detail, n, "user agent contains \"YahooMailProxy\": fetched through Yahoo's "
			    "image proxy, the reader's device and address are hidden");
	return 1;
}

/* Agents that name themselves as automated clients. Matched
 * case-insensitively as substrings. These are generic HTTP libraries,
 * command-line tools, headless browsers and self-declared robots, not
 * agents of particular security gateways: the notes found none published
 * (gateways send ordinary browser agents), so none is invented. "bot" is
 * matched only as "bot/", "bot;" or "bot)" so a phone model such as
 * "CUBOT X30" stays a browser. */
static const char *const scanner_agents[] = {
	"curl/",           /* curl: also the test suite's client */
	"Wget/",
	"libwww-perl",
	"python-requests",
	"python-urllib",
	"aiohttp",
	"Go-http-client",
	"Java/",           /* the JDK's default agent */
	"Apache-HttpClient",
	"okhttp",
	"node-fetch",
	"axios/",
	"HeadlessChrome",  /* Chrome/Chromium in headless mode, e.g. Playwright's default */
	"PhantomJS",
	"bot/",
	"bot;",
	"bot)",
	"crawler",
	"spider",
};

static int match_scanner_agent(const struct rule_ctx *x, char *detail, size_t n)
{
	for (size_t i = 0; i < sizeof scanner_agents / sizeof scanner_agents[0]; i++) {
		if (agent_has(x->hit, scanner_agents[i])) {
			snprintf(detail, n, "user agent contains \"%s\": an automated client",
				 scanner_agents[i]);
			return 1;
		}
	}
	return 0;
}

static int match_after_delivery(const struct rule_ctx *x, char *detail, size_t n)
{
	const struct hit *h = x->hit;
	int64_t threshold = (int64_t)x->cfg->after_delivery_s * 1000;
	char d[32], t[32];
	if (threshold <= 0 || h->accepted_ms <= 0)
		return 0;
	int64_t delta = h->time_ms - h->accepted_ms;
	if (delta >= threshold)
		return 0;
	seconds_text(threshold, t, sizeof t);
	if (delta < 0) {
		/* Neither a person nor a scanner reaches a link before the message
		 * is taken: the clocks disagree. Keep the machine label; the raw
		 * times stay in the event. */
		seconds_text(-delta, d, sizeof d);
		snprintf(detail, n, "%s %s before the recorded delivery (threshold %s)",
			 kind_verb(h->kind), d, t);
	} else {
		seconds_text(delta, d, sizeof d);
		snprintf(detail, n, "%s %s after delivery (threshold %s)", kind_verb(h->kind), d,
			 t);
	}
	return 1;
}

static int match_link_burst(const struct rule_ctx *x, char *detail, size_t n)
{
	char span[32], win[32];
	if (x->cfg->burst_links < 2 || x->burst.distinct < x->cfg->burst_links)
		return 0;
	seconds_text(x->burst.span_ms, span, sizeof span);
	seconds_text(x->cfg->burst_window_ms, win, sizeof win);
	snprintf(detail, n, "%d distinct links of this notice within %s (threshold %d links in %s)",
		 x->burst.distinct, span, x->cfg->burst_links, win);
	return 1;
}

static int match_button(const struct rule_ctx *x, char *detail, size_t n)
{
	(void)x;
	snprintf(detail, n, "the confirmation button was pressed (POST); scanners do not POST");
	return 1;
}

static int match_always(const struct rule_ctx *x, char *detail, size_t n)
{
	(void)x;
	snprintf(detail, n, "no machine rule matched");
	return 1;
}

struct rule_row {
	const char *name;
	const char *class_name;
	unsigned kinds;
	rule_match_fn match;
	const char *description;
};

/* THE table. Evaluated top to bottom, first match wins; the last two rows
 * always match their kinds, so every hit gets a verdict. */
static const struct rule_row rules[] = {
	{"head-request", CLASS_SCANNER, K_ANY, match_head,
	 "method HEAD: a prefetch never counts as an open or a click "
	 "(Mautic non-trackable requests, mautic/developer-documentation-new PR 550)"},
	{"prefetch-header", CLASS_SCANNER, K_ANY, match_prefetch_header,
	 "Purpose or Sec-Purpose contains \"prefetch\": a browser's or client's speculative "
	 "load (mautic/developer-documentation-new PR 550)"},
	{"apple-mpp", CLASS_PROXY, K_OPEN, match_apple_mpp,
	 "open whose user agent is exactly \"Mozilla/5.0\": Apple Mail Privacy Protection "
	 "fetches every image on arrival; proves delivery to an Apple Mail client only "
	 "(ua-parser/uap-core issue 509; SocketLabs; wordtothewise.com 2021/09; Twilio "
	 "sg_machine_open)"},
	{"gmail-prefetch", CLASS_PROXY, K_ANY, match_gmail_prefetch,
	 "Gmail's fixed prefetch agent (Chrome/42 Edge/12.246): fetched before the message "
	 "list is shown, always a machine (SparkPost is_prefetched; Mautic PR 10245; Keila "
	 "PR 164; gmass.co)"},
	{"gmail-proxy", CLASS_PROXY, K_ANY, match_gmail_proxy,
	 "user agent contains \"GoogleImageProxy\": Gmail's image proxy, which hides the "
	 "reader and caches (wordtothewise.com 2013; scientiamobile.com)"},
	{"yahoo-proxy", CLASS_PROXY, K_ANY, match_yahoo_proxy,
	 "user agent contains \"YahooMailProxy\": Yahoo's image proxy, which hides the "
	 "reader and caches (validity.com on Yahoo image caching)"},
	{"known-scanner-agent", CLASS_SCANNER, K_ANY, match_scanner_agent,
	 "user agent names an automated client (curl/, Wget/, python-requests, "
	 "Go-http-client, HeadlessChrome, bot/, crawler, spider ...); a user agent can add "
	 "a machine label but never clear one (gophish issues 2357, 2446, 2646)"},
	{"seconds-after-delivery", CLASS_SCANNER, K_CLICK | K_VIEW, match_after_delivery,
	 "click or confirmation-page view within after_delivery_s (default 30 s) of "
	 "acceptance: security gateways follow links on delivery (gophish issues 973, "
	 "2115, 2357, 2446, 2646; Act-On; Barracuda; senders use 30-60 s)"},
	{"link-burst", CLASS_SCANNER, K_CLICK | K_VIEW, match_link_burst,
	 "burst_links (default 2) distinct links of one notice within burst_window_ms "
	 "(default 2 s): scanners fetch every link about a second apart (gophish issues; "
	 "django-anymail issue 200; mautic issue 9798)"},
	{"button-pressed", CLASS_HUMAN, K_CONFIRM, match_button,
	 "the confirmation button was POSTed: only an action scanners do not perform "
	 "proves a person; never downgraded by timing or bursts"},
	{"no-rule", CLASS_HUMAN, K_OPEN | K_CLICK | K_VIEW, match_always,
	 "no machine rule matched: the best evidence of a person a GET can give, not proof"},
};

#define NRULES (sizeof rules / sizeof rules[0])

static struct classify_rule public_rules[NRULES];
static pthread_once_t public_once = PTHREAD_ONCE_INIT;

static void public_rules_fill(void)
{
	for (size_t i = 0; i < NRULES; i++) {
		public_rules[i].name = rules[i].name;
		public_rules[i].class_name = rules[i].class_name;
		public_rules[i].description = rules[i].description;
	}
}

size_t classify_rules(const struct classify_rule **out)
{
	pthread_once(&public_once, public_rules_fill);
	*out = public_rules;
	return NRULES;
}

/* ---- configuration and lifetime ------------------------------------------ */

void classify_config_defaults(struct classify_config *c)
{
	c->after_delivery_s = DEFAULT_AFTER_DELIVERY_S;
	c->burst_window_ms = DEFAULT_BURST_WINDOW_MS;
	c->burst_links = DEFAULT_BURST_LINKS;
	c->max_notices = DEFAULT_MAX_NOTICES;
}

struct classifier *classifier_new(const struct classify_config *cfg)
{
	struct classifier *c = xcalloc(1, sizeof *c);
	if (cfg)
		c->cfg = *cfg;
	else
		classify_config_defaults(&c->cfg);
	if (c->cfg.after_delivery_s < 0)
		c->cfg.after_delivery_s = 0;
	if (c->cfg.burst_window_ms < 0)
		c->cfg.burst_window_ms = 0;
	/* The notice itself plus RECENT remembered hits is the most a burst
	 * can count; a larger threshold could never be reached. */
	if (c->cfg.burst_links > RECENT + 1)
		c->cfg.burst_links = RECENT + 1;
	if (c->cfg.max_notices <= 0)
		c->cfg.max_notices = DEFAULT_MAX_NOTICES;
	if (c->cfg.max_notices > MAX_NOTICES_CAP)
		c->cfg.max_notices = MAX_NOTICES_CAP;
	c->ways = (size_t)c->cfg.max_notices < WAYS ? (size_t)c->cfg.max_notices : WAYS;
	c->nsets = (size_t)c->cfg.max_notices / c->ways;
	c->slots = xcalloc(c->nsets * c->ways, sizeof *c->slots);
	pthread_mutex_init(&c->mu, NULL);
	return c;
}

void classifier_free(struct classifier *c)
{
	if (!c)
		return;
	pthread_mutex_destroy(&c->mu);
	free(c->slots);
	free(c);
}

size_t classifier_tracked(struct classifier *c)
{
	pthread_mutex_lock(&c->mu);
	size_t n = c->used;
	pthread_mutex_unlock(&c->mu);
	return n;
}

/* ---- burst memory ---------------------------------------------------------- */

static uint64_t classify_notice_hash(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

/* The slot of notice (len bytes), claiming the set's free or least recently
 * hit slot when the notice is not remembered. Called with c->mu held. */
static struct notice_slot *slot_get(struct classifier *c, const char *notice, size_t len)
{
	struct notice_slot *set = c->slots + (classify_notice_hash(notice, len) % c->nsets) * c->ways;
	struct notice_slot *victim = &set[0]; /* c->ways >= 1 */
	for (size_t i = 0; i < c->ways; i++) {
		struct notice_slot *s = &set[i];
		if (s->notice[0] && strncmp(s->notice, notice, len) == 0 && s->notice[len] == '\0')
			return s;
		if (victim->notice[0] && (!s->notice[0] || s->last_tick < victim->last_tick))
			victim = s;
	}
	if (!victim->notice[0])
		c->used++;
	memset(victim, 0, sizeof *victim);
	memcpy(victim->notice, notice, len);
	victim->notice[len] = '\0';
	return victim;
}

/* Counts the distinct links of the notice within the window around now
 * (the current link included), then remembers the current hit. Hits from
 * several tracker threads may arrive a little out of order, so the window
 * is taken both ways. Called with c->mu held. */
static struct burst_info burst_note(struct classifier *c, struct notice_slot *s, int link,
				    int64_t now)
{
	struct burst_info b = {1, 0};
	int seen[RECENT + 1];
	int nseen = 0;
	seen[nseen++] = link;
	for (unsigned i = 0; i < s->count; i++) {
		const struct recent_hit *r = &s->recent[i];
		int64_t d = now - r->time_ms;
		if (d < 0)
			d = -d;
		if (d > c->cfg.burst_window_ms)
			continue;
		int dup = 0;
		for (int j = 0; j < nseen; j++)
			dup |= seen[j] == r->link;
		if (dup)
			continue;
		seen[nseen++] = r->link;
		b.distinct++;
		if (d > b.span_ms)
			b.span_ms = d;
	}
	s->recent[s->next] = (struct recent_hit){link, now};
	s->next = (s->next + 1) % RECENT;
	if (s->count < RECENT)
		s->count++;
	s->last_tick = ++c->tick;
	return b;
}

/* ---- classification ---------------------------------------------------------- */

void classify_hit(struct classifier *c, const struct hit *h, struct verdict *v)
{
	struct rule_ctx x = {.hit = h, .cfg = &c->cfg, .burst = {1, 0}};
	size_t len = strnlen(h->notice, NOTICE_LEN);

	if ((unsigned)h->kind > HIT_READ_CONFIRM) {
		v->class_name = CLASS_SCANNER;
		v->reason = "unknown-kind";
		snprintf(v->detail, sizeof v->detail, "unknown kind of hit %d", (int)h->kind);
		return;
	}

	/* Every click and page view enters the memory whatever its verdict: a
	 * HEAD on one link and a GET on another a second later is a burst too.
	 * The confirmation page counts as link 0, a link of its own. */
	if ((h->kind == HIT_CLICK || h->kind == HIT_READ_VIEW) && len > 0) {
		int link = h->kind == HIT_READ_VIEW ? 0 : h->link;
		pthread_mutex_lock(&c->mu);
		struct notice_slot *s = slot_get(c, h->notice, len);
		x.burst = burst_note(c, s, link, h->time_ms);
		pthread_mutex_unlock(&c->mu);
	}

	v->detail[0] = '\0';
	for (size_t i = 0; i < NRULES; i++) {
		const struct rule_row *r = &rules[i];
		if (!(r->kinds & (1u << h->kind)))
			continue;
		if (r->match(&x, v->detail, sizeof v->detail)) {
			v->class_name = r->class_name;
			v->reason = r->name;
			return;
		}
	}
	/* Unreachable while the table ends with its fallbacks. */
	v->class_name = CLASS_HUMAN;
	v->reason = "no-rule";
	snprintf(v->detail, sizeof v->detail, "no machine rule matched");
}
