/* diag.c: operator diagnostics on stderr (see diag.h). One write per line so
 * lines from several threads do not interleave. The limiters of repeating
 * errors live here too, so that every module limits the same way. */
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>
#include "selo/clock.h"
#include "selo/diag.h"

static enum diag_level min_level = DIAG_INFO;

void diag_set_level(enum diag_level min)
{
	min_level = min;
}

/* Writes one line: the prefix, fmt with ap, then tail (may be NULL). */
static void diag_write(enum diag_level lvl, const char *where, const char *tail,
		       const char *fmt, va_list ap)
{
	static const char *names[] = {"debug", "info", "warn", "error"};
	char line[1024], ts[32];
	clock_rfc3339(clock_now_ms(), ts);
	int n = snprintf(line, sizeof(line), "%s selo[%d] %s %s: ", ts, (int)getpid(), names[lvl], where);
	if (n > 0 && (size_t)n < sizeof(line))
		n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (n > 0 && (size_t)n < sizeof(line) && tail)
		n += snprintf(line + n, sizeof(line) - (size_t)n, "%s", tail);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line) - 1)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
}

void diag(enum diag_level lvl, const char *where, const char *fmt, ...)
{
	if (lvl < min_level)
		return;
	va_list ap;
	va_start(ap, fmt);
	diag_write(lvl, where, NULL, fmt, ap);
	va_end(ap);
}

/* 1 when this occurrence may be written now (and the caller owns the
 * line), 0 when it was counted instead. Two threads may both find the
 * interval over; the compare-and-swap lets one of them write. */
static int limit_take(struct diag_limit *l, int64_t now)
{
	long long last = atomic_load(&l->last_ms);
	if (last && now - last < DIAG_REPEAT_MS)
		return 0;
	return atomic_compare_exchange_strong(&l->last_ms, &last, now);
}

void diag_limited(struct diag_limit *l, enum diag_level lvl, const char *where,
		  const char *fmt, ...)
{
	if (atomic_fetch_add(&l->count, 1) == 0)
		atomic_store(&l->since_ms, clock_now_ms());
	int64_t now = clock_mono_ms();
	if (!limit_take(l, now ? now : 1)) {
		atomic_fetch_add(&l->held, 1);
		return;
	}
	atomic_store(&l->logged, 1);
	long long held = atomic_exchange(&l->held, 0);
	if (lvl < min_level)
		return;
	char tail[96] = "";
	if (held > 0)
		snprintf(tail, sizeof(tail), " [%lld more like this since the last line]", held);
	va_list ap;
	va_start(ap, fmt);
	diag_write(lvl, where, tail, fmt, ap);
	va_end(ap);
}

int diag_limit_end(struct diag_limit *l, const char *where, const char *fmt, ...)
{
	/* A run nobody was told about ends silently: its count stays, and the
	 * next line written reports it. */
	if (!atomic_exchange(&l->logged, 0))
		return 0;
	long long count = atomic_exchange(&l->count, 0);
	long long held = atomic_exchange(&l->held, 0);
	char since[32], tail[160];
	clock_rfc3339(atomic_load(&l->since_ms), since);
	int n = snprintf(tail, sizeof(tail), " (after %lld failure%s since %s", count,
			 count == 1 ? "" : "s", since);
	if (held > 0 && n > 0 && (size_t)n < sizeof(tail))
		n += snprintf(tail + n, sizeof(tail) - (size_t)n, ", %lld of them not logged one by one",
			      held);
	if (n > 0 && (size_t)n < sizeof(tail) - 1)
		snprintf(tail + n, sizeof(tail) - (size_t)n, ")");
	if (DIAG_INFO < min_level)
		return 1;
	va_list ap;
	va_start(ap, fmt);
	diag_write(DIAG_INFO, where, tail, fmt, ap);
	va_end(ap);
	return 1;
}
