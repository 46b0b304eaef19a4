/* event.c: encoding log entries (see event.h). The four leading keys are
 * written by hand in their fixed order; the event's own fields follow,
 * compact, in insertion order, with non-ASCII kept as UTF-8: dumped by
 * jansson, or written as text by event_field_* in the same bytes. */
#include <stdlib.h>
#include <string.h>
#include "selo/buf.h"
#include "selo/crypto.h"
#include "selo/clock.h"
#include "selo/event.h"
#include "selo/mime.h"

static int dump_cb(const char *p, size_t n, void *arg)
{
	buf_append(arg, p, n);
	return 0;
}

static int reserved(const char *k)
{
	/* By first letter: the tracker writes ten fields a hit. */
	switch (k[0]) {
	case 'v': return !k[1];
	case 't': return !strcmp(k, "type") || !strcmp(k, "time");
	case 'n': return !strcmp(k, "notice");
	default: return 0;
	}
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

/* {"v":1,"type":..,"notice":..,"time":.. : the head every entry starts with
 * (no closing brace). */
static void head_write(struct buf *out, const char *type, const char *notice_id, int64_t time_ms)
{
	char ts[32];
	clock_rfc3339(time_ms, ts);
	buf_puts(out, "{\"v\":1,\"type\":\"");
	buf_puts(out, type);
	buf_puts(out, "\",\"notice\":\"");
	buf_puts(out, notice_id);
	buf_puts(out, "\",\"time\":\"");
	buf_puts(out, ts);
	buf_putc(out, '"');
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
	size_t start = out->len;
	head_write(out, type, notice_id, time_ms);
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

int event_entry_encode_text(struct buf *out, const char *type, const char *notice_id,
			    int64_t time_ms, const char *fields, size_t len)
{
	if (!plain(type) || !plain(notice_id))
		return -1;
	head_write(out, type, notice_id, time_ms);
	if (len) {
		buf_putc(out, ',');
		buf_append(out, fields, len);
	}
	buf_putc(out, '}');
	return 0;
}

/* `,"key":` (no comma for the first member); 0, or -1 for a key the
 * entry's head owns or one that would need escaping. */
static int field_key(struct buf *f, const char *key)
{
	if (!plain(key) || reserved(key))
		return -1;
	if (f->len)
		buf_putc(f, ',');
	buf_putc(f, '"');
	buf_puts(f, key);
	buf_puts(f, "\":");
	return 0;
}

/* A JSON string as jansson dumps it without JSON_ENSURE_ASCII or
 * JSON_ESCAPE_SLASH: only '"', '\\' and control bytes are escaped, with
 * its short forms where JSON has one and \u00XX (upper-case hex)
 * otherwise; the runs between them are copied whole. */
static void json_string_write(struct buf *f, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	buf_putc(f, '"');
	const char *run = s;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		buf_append(f, run, (size_t)(s - run));
		run = s + 1;
		char esc[7] = {'\\', 0};
		switch (c) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
		}
		buf_puts(f, esc);
	}
	buf_append(f, run, (size_t)(s - run));
	buf_putc(f, '"');
}

/* Valid UTF-8; the full check only for text that is not plain ASCII
 * (every value the tracker writes is). */
static int text_valid(const char *s)
{
	const char *p = s;
	while (*p && !((unsigned char)*p & 0x80))
		p++;
	return !*p || utf8_valid(p, strlen(p));
}

int event_field_str(struct buf *fields, const char *key, const char *value)
{
	if (!text_valid(value))
		return -1;
	if (field_key(fields, key) != 0)
		return -1;
	json_string_write(fields, value);
	return 0;
}

int event_field_int(struct buf *fields, const char *key, long long value)
{
	if (field_key(fields, key) != 0)
		return -1;
	/* Digits by hand: printf's cost shows at tens of thousands of hits a
	 * second. Through unsigned, so LLONG_MIN negates without overflow. */
	char d[24];
	size_t i = sizeof(d);
	unsigned long long u = value < 0 ? 0ull - (unsigned long long)value : (unsigned long long)value;
	do {
		d[--i] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (value < 0)
		d[--i] = '-';
	buf_append(fields, d + i, sizeof(d) - i);
	return 0;
}

const char *disclose(struct disclosures *d, const uint8_t salt[32], const char *value, size_t len)
{
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 8;
		d->v = xreallocarray(d->v, cap, sizeof(*d->v));
		d->cap = cap;
	}
	struct disclosure *x = &d->v[d->n++];
	commitment(salt, 32, value, len, x->commitment);
	x->value = xmalloc(len + 1);
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
