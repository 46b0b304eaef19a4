/* event.c: encoding log entries (see event.h). The four leading keys are
 * written by hand in their fixed order; the event's own fields follow,
 * compact, in insertion order, with non-ASCII kept as UTF-8. */
#include <stdlib.h>
#include <string.h>
#include "selo/crypto.h"
#include "selo/clock.h"
#include "selo/event.h"

static int dump_cb(const char *p, size_t n, void *arg)
{
	buf_append(arg, p, n);
	return 0;
}

static int reserved(const char *k)
{
	return !strcmp(k, "v") || !strcmp(k, "type") || !strcmp(k, "notice") || !strcmp(k, "time");
}

/* Type names and notice ids are plain tokens; anything else (a caller's
 * mistake) is refused rather than escaped. */
static int plain(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') &&
		    !(*s >= '0' && *s <= '9') && *s != '_' && *s != '-')
			return 0;
	return 1;
}

/* The head is written as text and the fields object dumped after it with
 * its opening brace turned into a comma: the same bytes jansson would
 * write for the merged object, without building that object (half the
 * cost of recording a tracker hit went to building and freeing it). */
int event_entry_encode(struct buf *out, const char *type, const char *notice_id,
		       int64_t time_ms, const json_t *fields)
{
	if (!plain(type) || !plain(notice_id) || (fields && !json_is_object(fields)))
		return -1;
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)fields, k, v)
		if (reserved(k))
			return -1;
	char ts[32];
	clock_rfc3339(time_ms, ts);
	size_t start = out->len;
	buf_puts(out, "{\"v\":1,\"type\":\"");
	buf_puts(out, type);
	buf_puts(out, "\",\"notice\":\"");
	buf_puts(out, notice_id);
	buf_puts(out, "\",\"time\":\"");
	buf_puts(out, ts);
	buf_putc(out, '"');
	if (!fields || json_object_size(fields) == 0) {
		buf_putc(out, '}');
		return 0;
	}
	size_t brace = out->len;
	if (json_dump_callback(fields, dump_cb, out, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0 ||
	    out->len == brace || out->data[brace] != '{') {
		out->len = start;
		out->data[start] = '\0';
		return -1;
	}
	out->data[brace] = ',';
	return 0;
}

const char *disclose(struct disclosures *d, const uint8_t salt[32], const char *value, size_t len)
{
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 8;
		struct disclosure *v = realloc(d->v, cap * sizeof(*v));
		if (!v)
			abort();
		d->v = v;
		d->cap = cap;
	}
	struct disclosure *x = &d->v[d->n++];
	commitment(salt, 32, value, len, x->commitment);
	x->value = malloc(len + 1);
	if (!x->value)
		abort();
	memcpy(x->value, value, len);
	x->value[len] = '\0';
	x->len = len;
	return x->commitment;
}

void disclosures_free(struct disclosures *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->v[i].value);
	free(d->v);
	d->v = NULL;
	d->n = d->cap = 0;
}
