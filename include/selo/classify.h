/* classify.h: who made a tracker hit. Every pixel fetch, link click, view of
 * the confirmation page and press of its button is labelled
 *   human    no machine rule matched (for a button press: a person pressed it)
 *   proxy    a mail provider's machine fetched it on the recipient's behalf:
 *            the message reached a mailbox, nothing more
 *   scanner  a link checker, prefetcher or other automated client
 * with the name of the rule that decided and the evidence in words.
 * Rules, evaluated in order, first match wins (docs/tracking.md has the
 * sources, from shared notes/tracking.md):
 *   head-request            scanner  method HEAD (any kind)
 *   prefetch-header         scanner  Purpose/Sec-Purpose contains "prefetch"
 *   apple-mpp               proxy    open whose agent is exactly "Mozilla/5.0"
 *   gmail-prefetch          proxy    Gmail's fixed prefetch agent
 *   gmail-proxy             proxy    agent contains "GoogleImageProxy"
 *   yahoo-proxy             proxy    agent contains "YahooMailProxy"
 *   known-scanner-agent     scanner  agent names an automated client (curl/,
 *                                    HeadlessChrome, python-requests, bot/ ...)
 *   seconds-after-delivery  scanner  click or page view within after_delivery_s
 *                                    of acceptance (never opens, never POSTs)
 *   link-burst              scanner  burst_links distinct links of one notice
 *                                    within burst_window_ms (clicks, page views)
 *   button-pressed          human    the confirmation button was POSTed
 *   no-rule                 human    nothing above matched
 * A user agent can add a machine label but never clear one: scanners send
 * ordinary browser agents, so "human" means "no rule matched", and only a
 * button press (a POST, which scanners do not perform) proves a person.
 * Timing and burst rules never apply to a button press; agent and method
 * rules do. Nothing here fails: a hit always gets a verdict. */
#ifndef SELO_CLASSIFY_H
#define SELO_CLASSIFY_H
#include <stddef.h>
#include <stdint.h>

enum hit_kind { HIT_OPEN, HIT_CLICK, HIT_READ_VIEW, HIT_READ_CONFIRM };

struct hit {
	enum hit_kind kind;
	const char *method;     /* "GET", "HEAD", "POST" */
	const char *user_agent; /* may be NULL */
	const char *purpose;    /* the Purpose or Sec-Purpose header, may be NULL */
	const char *ip;         /* textual client address (kept as evidence; no rule uses it yet) */
	char notice[27];        /* notice id, 26 characters + NUL */
	int link;               /* click: link index (1-based), else 0 */
	int64_t time_ms;        /* when the hit arrived (Unix ms) */
	int64_t accepted_ms;    /* when a relay/the recipient's server took the message; 0 unknown */
};

#define CLASS_HUMAN "human"
#define CLASS_PROXY "proxy"
#define CLASS_SCANNER "scanner"

struct verdict {
	const char *class_name; /* CLASS_HUMAN, CLASS_PROXY, CLASS_SCANNER (static strings) */
	const char *reason;     /* rule name, static string: "head-request", "prefetch-header",
	                           "apple-mpp", "gmail-prefetch", "gmail-proxy", "yahoo-proxy",
	                           "known-scanner-agent", "seconds-after-delivery", "link-burst",
	                           "button-pressed", "no-rule"; "unknown-kind" (scanner) for
	                           a kind outside enum hit_kind, a caller's bug */
	char detail[160];       /* the evidence in words, e.g.
	                           "clicked 4 s after delivery (threshold 30 s)" */
};

struct classify_config {
	int after_delivery_s; /* default 30; 0 disables seconds-after-delivery */
	int burst_window_ms;  /* default 2000 */
	int burst_links;      /* default 2: this many DISTINCT links of one notice within the
	                         window = scanner; below 2 disables link-burst */
	int max_notices;      /* default 4096: notices remembered for link-burst (bounded
	                         memory, least recently hit forgotten first) */
};

struct classifier;

void classify_config_defaults(struct classify_config *c);
/* NULL c means the defaults. Never returns NULL (out of memory aborts). */
struct classifier *classifier_new(const struct classify_config *c);
void classifier_free(struct classifier *c);

/* Classifies one hit. Hits must be given in arrival order; the classifier
 * remembers the last few clicks and page views of up to max_notices notices
 * (a fixed table, least recently hit evicted) for the burst rule. The hit
 * that completes a burst and later ones within the window are "link-burst";
 * the earlier hits of the burst keep the verdict they were given.
 * Thread-safe (a mutex). */
void classify_hit(struct classifier *c, const struct hit *h, struct verdict *v);

/* How many notices the classifier currently remembers (at most max_notices). */
size_t classifier_tracked(struct classifier *c);

/* The rules, for docs and tests: name, class, description. */
struct classify_rule {
	const char *name;
	const char *class_name;
	const char *description;
};
/* Sets *rules to the table in evaluation order (the human fallbacks
 * "button-pressed" and "no-rule" last) and returns its length. */
size_t classify_rules(const struct classify_rule **rules);

#endif
