/* suppress.c: the hard-bounce rule and the address forms of suppress.h.
 * Conservative on purpose: suppressing wrongly stops a debtor's notices
 * until someone deletes the entry, so only codes that name the address
 * itself as bad count (RFC 3463: X.1.x addressing, X.2.1 disabled), and
 * only with a permanent (5) class. No I/O, no errors beyond "does not fit". */
#include <stdlib.h>
#include <string.h>
#include "selo/suppress.h"

/* "5.1.1" -> class 5, subject 1, detail 1; -1 when not that shape. */
static int status_parse(const char *s, int *cls, int *subj, int *det)
{
	if (!s || !*s)
		return -1;
	char *end;
	long v[3];
	const char *p = s;
	for (int i = 0; i < 3; i++) {
		if (*p < '0' || *p > '9')
			return -1;
		v[i] = strtol(p, &end, 10);
		if (end - p > 3 || (i < 2 && *end != '.') || (i == 2 && *end))
			return -1;
		p = end + 1;
	}
	*cls = (int)v[0];
	*subj = (int)v[1];
	*det = (int)v[2];
	return 0;
}

int suppress_status_hard(const char *enhanced)
{
	int c, s, d;
	if (status_parse(enhanced, &c, &s, &d) != 0 || c != 5)
		return 0;
	return s == 1 || (s == 2 && d == 1);
}

static const char *field_str(const json_t *f, const char *name)
{
	return json_string_value(json_object_get(f, name));
}

int suppress_fields_hard(const json_t *fields, const char **enhanced)
{
	const char *reason = field_str(fields, "reason");
	const char *code = NULL;
	if (reason && !strcmp(reason, "rejected")) {
		/* No code: the mx transport's DNS verdict (no such domain, null
		 * MX), which names its own 5.1.x; a relay's codes come with replies. */
		json_int_t smtp = json_integer_value(json_object_get(fields, "code"));
		if ((smtp >= 500 && smtp <= 599) || !json_object_get(fields, "code"))
			code = field_str(fields, "enhanced");
	} else if (reason && !strcmp(reason, "bounced")) {
		code = field_str(fields, "status"); /* a 5.x.x status is the DSN's "failed" */
	}
	if (!suppress_status_hard(code))
		return 0;
	if (enhanced)
		*enhanced = code;
	return 1;
}

static char ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

int suppress_address_key(const char *addr, char *out, size_t n)
{
	size_t len = addr ? strlen(addr) : 0;
	if (!addr || len >= n)
		return -1;
	for (size_t i = 0; i <= len; i++)
		out[i] = ascii_lower(addr[i]);
	return 0;
}

int suppress_address_shown(const char *addr, char *out, size_t n)
{
	size_t len = addr ? strlen(addr) : 0;
	if (!addr || len >= n)
		return -1;
	memcpy(out, addr, len + 1);
	char *at = strrchr(out, '@');
	for (char *p = at; p && *p; p++)
		*p = ascii_lower(*p);
	return 0;
}
