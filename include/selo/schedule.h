/* schedule.h: when a notice may go out. A notice may carry `send_at` (an
 * RFC 3339 instant, at most SCHEDULE_MAX_AHEAD_MS ahead) and a send window
 * ("08:00-20:00" local time in an IANA zone, America/Sao_Paulo unless
 * given): it is due at send_at, or at the window's next opening when
 * send_at falls outside it. Retries keep to the window too. Sequences
 * place their steps at a due date plus an offset ("-5d", "+3d", "+30s").
 * Pure functions over the tz database (GLib's GTimeZone, thread-safe);
 * docs/api.md "Scheduling" is the user's description. */
#ifndef SELO_SCHEDULE_H
#define SELO_SCHEDULE_H
#include <stddef.h>
#include <stdint.h>

#define SCHEDULE_MAX_AHEAD_MS (90LL * 24 * 3600 * 1000)
#define SCHEDULE_DEFAULT_ZONE "America/Sao_Paulo"
#define SCHEDULE_ZONE_MAX 64

struct send_window {
	int set;                      /* 0: no window, any time will do */
	int start_min, end_min;       /* minutes after local midnight; end may be <= start
				       * for a window across midnight; 1440 = 24:00 */
	char zone[SCHEDULE_ZONE_MAX]; /* IANA name */
};

/* Checks an IANA zone name (known to the tz database, no path tricks):
 * 0 ok, -1 with why. */
int schedule_zone_check(const char *zone, char *why, size_t whylen);

/* Parses "HH:MM-HH:MM" (00:00..23:59, end up to 24:00, start != end) in
 * zone (NULL: the default). 0 ok, -1 with a reason for the caller. */
int schedule_window_parse(const char *spec, const char *zone, struct send_window *w, char *why,
			  size_t whylen);

/* The first instant >= t_ms inside the window (t_ms itself when it is
 * inside, or when there is no window). */
int64_t schedule_window_next(const struct send_window *w, int64_t t_ms);

/* An offset: optional sign, 1-4 digits, a unit s|m|h|d ("-5d", "0d",
 * "+3d", "+30s"), at most 366 days either way. 0 ok, -1 otherwise. */
int schedule_offset_parse(const char *s, int64_t *ms);

/* A due date: "YYYY-MM-DD" (that day at at_hhmm local time in zone) or an
 * RFC 3339 instant. 0 ok, -1 with why. */
int schedule_due_parse(const char *s, const char *zone, const char *at_hhmm, int64_t *ms,
		       char *why, size_t whylen);

/* "HH:MM" -> minutes after midnight (end_ok allows 24:00), -1 if malformed. */
int schedule_hhmm(const char *s, int end_ok);

#endif
