/* diag.h: diagnostics for operators, on stderr, one line each, in one of
 * two formats (log.format, docs/operations.md "Logs"):
 * - text (default): "2026-11-23T18:00:00.123Z selo[pid] LEVEL where: message",
 *   then " key=value" for each id or field the line carries;
 * - json: one object per line, {"time","level","module","where","pid",
 *   "message", then the ids ("notice", "attempt", "webhook", "delivery")
 *   and fields as members}; every string JSON-escaped (control characters,
 *   quotes, invalid UTF-8 as U+FFFD).
 * Lines below log.level (error, warn, info, debug; default info) are not
 * written. Never pass secrets (keys, passwords, tokens, message bodies,
 * recipient addresses) to these functions. */
#ifndef SELO_DIAG_H
#define SELO_DIAG_H
#include <stdatomic.h>
#include <stddef.h>

enum diag_level { DIAG_DEBUG, DIAG_INFO, DIAG_WARN, DIAG_ERROR };
enum diag_format { DIAG_TEXT, DIAG_JSON };

void diag_set_level(enum diag_level min);
void diag_set_format(enum diag_format f);
/* "error", "warn", "info", "debug" / "text", "json": 0, else -1. */
int diag_level_parse(const char *s, enum diag_level *out);
int diag_format_parse(const char *s, enum diag_format *out);
/* Both at once from configuration strings (log.level, log.format);
 * -1 and nothing changed when either is not a valid name. */
int diag_configure(const char *level, const char *format);
/* Whether a line at lvl would be written: lets a caller skip building it. */
int diag_enabled(enum diag_level lvl);

/* One extra field of a line: a string (str), a number written by the
 * caller ("1.250", unquoted in JSON), or else the integer num. A field
 * json_only is left out of text lines (their message already says it). */
struct diag_field {
	const char *key;
	const char *str;
	long long num;
	const char *number;
	int json_only;
};

/* What a line is about. Unset members (NULL, 0) are left out. */
struct diag_ids {
	const char *notice;     /* notice id */
	int attempt;            /* delivery attempt, from 1 */
	const char *webhook;    /* webhook id */
	const char *delivery;   /* webhook message id ("msg_12") */
	const struct diag_field *fields;
	int nfields;
};

/* Text from outside (an SMTP reply, an error) made fit for the log: each
 * word holding an '@' (an address, as servers like to quote the recipient)
 * becomes "[address]", line breaks and other control characters a space.
 * out has n bytes (n > 0); the text is cut to fit. Returns out. */
char *diag_scrub(const char *in, size_t len, char *out, size_t n);

/* The general form: module is a source file (__FILE__: "src/sender.c"
 * gives "sender") or a plain name ("access"); ids may be NULL. */
void diag_at(enum diag_level lvl, const char *module, const char *where,
	     const struct diag_ids *ids, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* The original form (module unknown: "selo"). */
void diag(enum diag_level lvl, const char *where, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define diag_info(...) diag_at(DIAG_INFO, __FILE__, __func__, NULL, __VA_ARGS__)
#define diag_warn(...) diag_at(DIAG_WARN, __FILE__, __func__, NULL, __VA_ARGS__)
#define diag_error(...) diag_at(DIAG_ERROR, __FILE__, __func__, NULL, __VA_ARGS__)
#define diag_debug(...) diag_at(DIAG_DEBUG, __FILE__, __func__, NULL, __VA_ARGS__)
/* A line about a notice, a webhook delivery...: diag_with(DIAG_INFO,
 * &(struct diag_ids){.notice = id, .attempt = 2}, "deferred: %s", why). */
#define diag_with(lvl, ids, ...) diag_at(lvl, __FILE__, __func__, ids, __VA_ARGS__)

/* ---- Errors that repeat (one per request, per batch, per round while the
 * disk is full, say) must not flood the log. A limiter belongs to one call
 * site (a static there, or a field of its module's state; zeroed memory or
 * DIAG_LIMIT_INIT is a fresh one) and is safe to share between threads:
 * - diag_limited logs the first occurrence at once, and after that at most
 *   one line per DIAG_REPEAT_MS: the occurrences in between are counted, and
 *   the next line written ends "[N more like this since the last line]";
 * - diag_limit_end says, once, that the condition is over: when the run of
 *   occurrences was logged, one line at info "<message> (after N failures
 *   since <time>[, M of them not logged one by one])", and the limiter
 *   starts a new run; otherwise it writes nothing.
 * So a site writes at most two lines per interval, however often it fails. */
#define DIAG_REPEAT_MS 10000

struct diag_limit {
	atomic_llong last_ms;  /* clock_mono_ms of the last line written; 0: none */
	atomic_llong held;     /* occurrences not written since that line */
	atomic_llong count;    /* occurrences in this run */
	atomic_llong since_ms; /* wall clock of the run's first occurrence */
	atomic_int logged;     /* a line of this run was written */
};
#define DIAG_LIMIT_INIT {0, 0, 0, 0, 0}

void diag_limited_at(struct diag_limit *l, enum diag_level lvl, const char *module,
		     const char *where, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Returns 1 when it wrote its line, else 0. */
int diag_limit_end_at(struct diag_limit *l, const char *module, const char *where,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The original forms (module "selo"). */
void diag_limited(struct diag_limit *l, enum diag_level lvl, const char *where,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
int diag_limit_end(struct diag_limit *l, const char *where, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define diag_error_limited(l, ...) diag_limited_at(l, DIAG_ERROR, __FILE__, __func__, __VA_ARGS__)
#define diag_warn_limited(l, ...) diag_limited_at(l, DIAG_WARN, __FILE__, __func__, __VA_ARGS__)
#define diag_ended(l, ...) diag_limit_end_at(l, __FILE__, __func__, __VA_ARGS__)

#endif
