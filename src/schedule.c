/* schedule.c: send windows, offsets and due dates (see schedule.h). Local
 * times go through GLib's GTimeZone, which reads the system tz database and
 * handles offsets changing over the years (Brazil dropped DST in 2019). */
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "selo/clock.h"
#include "selo/schedule.h"

#define DAY_MS (24LL * 3600 * 1000)
#define OFFSET_MAX_MS (366LL * DAY_MS)

static int say(char *why, size_t n, const char *text)
{
	if (why && n)
		snprintf(why, n, "%s", text);
	return -1;
}

/* A name the tz database could hold: no leading slash (GLib would read any
 * file by path) and no "..". */
static int zone_name_plain(const char *z)
{
	size_t n = strlen(z);
	if (n == 0 || n >= SCHEDULE_ZONE_MAX || z[0] == '/' || strstr(z, ".."))
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = z[i];
		if (!g_ascii_isalnum(c) && c != '/' && c != '_' && c != '-' && c != '+')
			return 0;
	}
	return 1;
}

static GTimeZone *zone_open(const char *zone)
{
	return zone_name_plain(zone) ? g_time_zone_new_identifier(zone) : NULL;
}

int schedule_zone_check(const char *zone, char *why, size_t whylen)
{
	GTimeZone *tz = zone_open(zone);
	if (!tz)
		return say(why, whylen, "is not a time zone of the tz database "
					"(for example America/Sao_Paulo)");
	g_time_zone_unref(tz);
	return 0;
}

int schedule_hhmm(const char *s, int end_ok)
{
	if (strlen(s) != 5 || s[2] != ':' || !g_ascii_isdigit(s[0]) || !g_ascii_isdigit(s[1]) ||
	    !g_ascii_isdigit(s[3]) || !g_ascii_isdigit(s[4]))
		return -1;
	int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
	if (m > 59 || h > 24 || (h == 24 && (m != 0 || !end_ok)))
		return -1;
	return h * 60 + m;
}

int schedule_window_parse(const char *spec, const char *zone, struct send_window *w, char *why,
			  size_t whylen)
{
	memset(w, 0, sizeof(*w));
	char a[8], b[8];
	if (strlen(spec) != 11 || spec[5] != '-')
		return say(why, whylen, "must be \"HH:MM-HH:MM\" (for example \"08:00-20:00\")");
	memcpy(a, spec, 5);
	a[5] = 0;
	memcpy(b, spec + 6, 5);
	b[5] = 0;
	int s = schedule_hhmm(a, 0), e = schedule_hhmm(b, 1);
	if (s < 0 || e < 0)
		return say(why, whylen, "must be \"HH:MM-HH:MM\" with hours 00-23 (24:00 only as "
					"the end) and minutes 00-59");
	if (s == e || (s == 0 && e == 1440))
		return say(why, whylen, "opens and closes at the same time: leave it out to send "
					"at any hour");
	if (!zone)
		zone = SCHEDULE_DEFAULT_ZONE;
	if (schedule_zone_check(zone, why, whylen) != 0)
		return -1;
	w->set = 1;
	w->start_min = s;
	w->end_min = e;
	snprintf(w->zone, sizeof(w->zone), "%s", zone);
	return 0;
}

static int inside(const struct send_window *w, int minute)
{
	if (w->start_min < w->end_min)
		return minute >= w->start_min && minute < w->end_min;
	return minute >= w->start_min || minute < w->end_min; /* across midnight */
}

static int64_t unix_ms(GDateTime *d)
{
	return (int64_t)g_date_time_to_unix(d) * 1000;
}

int64_t schedule_window_next(const struct send_window *w, int64_t t_ms)
{
	if (!w->set)
		return t_ms;
	GTimeZone *tz = zone_open(w->zone);
	if (!tz)
		return t_ms; /* checked when parsed: only a tz database removed under us */
	int64_t secs = t_ms / 1000;
	GDateTime *utc = g_date_time_new_from_unix_utc(secs);
	GDateTime *local = utc ? g_date_time_to_timezone(utc, tz) : NULL;
	int64_t out = t_ms;
	if (local && !inside(w, g_date_time_get_hour(local) * 60 + g_date_time_get_minute(local))) {
		/* Today's opening, else tomorrow's (or the day after, should a DST
		 * change swallow the hour). */
		for (int d = 0; d < 3; d++) {
			GDateTime *day = g_date_time_add_days(local, d);
			GDateTime *open = g_date_time_new(tz, g_date_time_get_year(day),
							  g_date_time_get_month(day),
							  g_date_time_get_day_of_month(day),
							  w->start_min / 60, w->start_min % 60, 0);
			g_date_time_unref(day);
			int64_t o = open ? unix_ms(open) : 0;
			if (open)
				g_date_time_unref(open);
			if (o >= t_ms) {
				out = o;
				break;
			}
		}
	}
	if (local)
		g_date_time_unref(local);
	if (utc)
		g_date_time_unref(utc);
	g_time_zone_unref(tz);
	return out;
}

int schedule_offset_parse(const char *s, int64_t *ms)
{
	const char *p = s;
	int sign = 1;
	if (*p == '+' || *p == '-')
		sign = *p++ == '-' ? -1 : 1;
	int64_t v = 0;
	int digits = 0;
	while (g_ascii_isdigit(*p) && digits < 5) {
		v = v * 10 + (*p++ - '0');
		digits++;
	}
	if (digits == 0 || digits > 4 || p[0] == 0 || p[1] != 0)
		return -1;
	int64_t unit;
	switch (*p) {
	case 's': unit = 1000; break;
	case 'm': unit = 60 * 1000; break;
	case 'h': unit = 3600 * 1000; break;
	case 'd': unit = DAY_MS; break;
	default: return -1;
	}
	if (v * unit > OFFSET_MAX_MS)
		return -1;
	*ms = sign * v * unit;
	return 0;
}

static int date_only(const char *s, int *y, int *mo, int *d)
{
	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return 0;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && !g_ascii_isdigit(s[i]))
			return 0;
	*y = atoi(s);
	*mo = atoi(s + 5);
	*d = atoi(s + 8);
	return g_date_valid_dmy((GDateDay)*d, (GDateMonth)*mo, (GDateYear)*y);
}

int schedule_due_parse(const char *s, const char *zone, const char *at_hhmm, int64_t *ms,
		       char *why, size_t whylen)
{
	int y, mo, d;
	if (!date_only(s, &y, &mo, &d)) {
		if (clock_parse_rfc3339(s, ms) == 0)
			return 0;
		return say(why, whylen, "must be a date (\"2026-12-10\") or an RFC 3339 time "
					"(\"2026-12-10T09:00:00-03:00\")");
	}
	int at = schedule_hhmm(at_hhmm ? at_hhmm : "09:00", 0);
	if (at < 0)
		return say(why, whylen, "the time of day must be \"HH:MM\"");
	GTimeZone *tz = zone_open(zone ? zone : SCHEDULE_DEFAULT_ZONE);
	if (!tz)
		return say(why, whylen, "names an unknown time zone");
	GDateTime *t = g_date_time_new(tz, y, mo, d, at / 60, at % 60, 0);
	g_time_zone_unref(tz);
	if (!t)
		return say(why, whylen, "is not a valid date");
	*ms = unix_ms(t);
	g_date_time_unref(t);
	return 0;
}
