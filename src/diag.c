/* diag.c: operator diagnostics on stderr (see diag.h). One write per line so
 * lines from several threads do not interleave. */
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

void diag(enum diag_level lvl, const char *where, const char *fmt, ...)
{
	static const char *names[] = {"debug", "info", "warn", "error"};
	if (lvl < min_level)
		return;
	char line[1024], ts[32];
	clock_rfc3339(clock_now_ms(), ts);
	int n = snprintf(line, sizeof(line), "%s selo[%d] %s %s: ", ts, (int)getpid(), names[lvl], where);
	va_list ap;
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(line))
		n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line) - 1)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
}
