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

int event_entry_encode(struct buf *out, const char *type, const char *notice_id,
		       int64_t time_ms, const json_t *fields)
{
	char ts[32];
	clock_rfc3339(time_ms, ts);
	json_t *head = json_pack("{s:i,s:s,s:s,s:s}", "v", 1, "type", type, "notice", notice_id,
				 "time", ts);
	if (!head)
		return -1;
	if (fields) {
		if (!json_is_object(fields)) {
			json_decref(head);
			return -1;
		}
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)fields, k, v) {
			if (reserved(k) || json_object_set(head, k, v) != 0) {
				json_decref(head);
				return -1;
			}
		}
	}
	int r = json_dump_callback(head, dump_cb, out, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(head);
	return r == 0 ? 0 : -1;
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
