/* fuzz_dsn.c: libFuzzer target for `selo bounce`'s untrusted input: the
 * DSN parser, the search for our address in a message's headers, and the
 * VERP address parser. Every field dsn_parse fills must be a printable
 * ASCII string inside its buffer; dsn_failure must name a real recipient
 * block; an address dsn_verp_parse accepts must be one dsn_verp_make makes
 * (up to case and angle brackets). */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "selo/dsn.h"

static void check_text(const char *s, size_t cap)
{
	const char *end = memchr(s, '\0', cap);
	if (!end)
		abort();
	for (; s < end; s++)
		if (*s < 32 || *s > 126)
			abort();
}

static void check_dsn(const struct dsn *d)
{
	if (d->nrcpt == 0 || d->nrcpt > DSN_MAX_RCPTS)
		abort();
	check_text(d->reporting_mta, sizeof(d->reporting_mta));
	check_text(d->original_envelope_id, sizeof(d->original_envelope_id));
	check_text(d->arrival_date, sizeof(d->arrival_date));
	check_text(d->message_id, sizeof(d->message_id));
	for (size_t i = 0; i < d->nrcpt; i++) {
		const struct dsn_rcpt *r = &d->rcpt[i];
		check_text(r->final_recipient, sizeof(r->final_recipient));
		check_text(r->original_recipient, sizeof(r->original_recipient));
		check_text(r->action, sizeof(r->action));
		check_text(r->status, sizeof(r->status));
		check_text(r->remote_mta, sizeof(r->remote_mta));
		check_text(r->diagnostic, sizeof(r->diagnostic));
		check_text(r->last_attempt, sizeof(r->last_attempt));
		if (!r->final_recipient[0] || !r->action[0] || !r->status[0])
			abort();
	}
	struct selo_err err;
	err_clear(&err);
	int f = dsn_failure(d, &err);
	if (f >= (int)d->nrcpt || (f >= 0 && strcmp(d->rcpt[f].action, "failed") != 0) ||
	    (f < 0 && !err.msg[0]))
		abort();
}

static void check_verp(const uint8_t *key, const uint8_t *data, size_t size)
{
	char id[SELO_ID_TEXT + 1], again[DSN_ADDR_MAX + 1], rp[DSN_ADDR_MAX + 1];
	if (dsn_verp_parse(key, (const char *)data, size, id) != 0)
		return;
	const char *s = (const char *)data;
	size_t n = size;
	if (n >= 2 && s[0] == '<') {
		s++;
		n -= 2;
	}
	/* rebuild the address from its own local part and domain */
	const char *at = memrchr(s, '@', n);
	const char *plus = memrchr(s, '+', (size_t)(at - s));
	snprintf(rp, sizeof(rp), "%.*s%.*s", (int)(plus - s), s, (int)(n - (size_t)(at - s)), at);
	struct selo_err err;
	err_clear(&err);
	if (dsn_verp_make(key, rp, id, again, &err) != 0)
		return; /* e.g. a local part mime.h would not send from */
	if (strlen(again) != n || strncasecmp(again, s, n) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t key[DSN_KEY_LEN] = {9, 8, 7, 6, 5, 4, 3, 2, 1};
	static struct dsn d;
	struct selo_err err;
	err_clear(&err);
	if (dsn_parse((const char *)data, size, &d, &err) == 0)
		check_dsn(&d);
	else if (!err.msg[0])
		abort();
	char id[SELO_ID_TEXT + 1], addr[DSN_ADDR_MAX + 1];
	err_clear(&err);
	if (dsn_find_verp(key, (const char *)data, size, id, addr, &err) == 0 && strlen(id) != 26)
		abort();
	if (size <= DSN_ADDR_MAX + 2)
		check_verp(key, data, size);
	return 0;
}
