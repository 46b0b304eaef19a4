/* diag.h: diagnostics for operators, on stderr, one line each:
 * "2026-11-23T18:00:00.123Z selo[pid] LEVEL where: message". Never pass
 * secrets (keys, passwords, tokens, message bodies) to these functions. */
#ifndef SELO_DIAG_H
#define SELO_DIAG_H
#include <stdatomic.h>

enum diag_level { DIAG_DEBUG, DIAG_INFO, DIAG_WARN, DIAG_ERROR };

void diag_set_level(enum diag_level min);
void diag(enum diag_level lvl, const char *where, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define diag_info(...) diag(DIAG_INFO, __func__, __VA_ARGS__)
#define diag_warn(...) diag(DIAG_WARN, __func__, __VA_ARGS__)
#define diag_error(...) diag(DIAG_ERROR, __func__, __VA_ARGS__)
#define diag_debug(...) diag(DIAG_DEBUG, __func__, __VA_ARGS__)

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

void diag_limited(struct diag_limit *l, enum diag_level lvl, const char *where,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Returns 1 when it wrote its line, else 0. */
int diag_limit_end(struct diag_limit *l, const char *where, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define diag_error_limited(l, ...) diag_limited(l, DIAG_ERROR, __func__, __VA_ARGS__)
#define diag_warn_limited(l, ...) diag_limited(l, DIAG_WARN, __func__, __VA_ARGS__)
#define diag_ended(l, ...) diag_limit_end(l, __func__, __VA_ARGS__)

#endif
