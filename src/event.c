/* event.c: encoding log entries (see event.h). The four leading keys are
 * written by hand in their fixed order; the event's own fields follow,
 * compact, in insertion order, with non-ASCII kept as UTF-8. */
#include <string.h>
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
