/* diag.c: operator diagnostics on stderr (see diag.h), as text or as one
 * JSON object per line. Each line is built in a buffer on the stack and
 * written with one write(2), so lines from several threads do not
 * interleave and no lock is taken. The limiters of repeating errors live
 * here too, so that every module limits the same way. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "selo/clock.h"
#include "selo/codec.h"
#include "selo/diag.h"

static enum diag_level min_level = DIAG_INFO;
static enum diag_format format = DIAG_TEXT;

static const char *level_names[] = {"debug", "info", "warn", "error"};

void diag_set_level(enum diag_level min)
{
	min_level = min;
}

void diag_set_format(enum diag_format f)
{
	format = f;
}

int diag_enabled(enum diag_level lvl)
{
	return lvl >= min_level;
}

int diag_level_parse(const char *s, enum diag_level *out)
{
	for (int i = DIAG_DEBUG; i <= DIAG_ERROR; i++)
		if (!strcmp(s, level_names[i]))
			return *out = (enum diag_level)i, 0;
	return -1;
}

int diag_format_parse(const char *s, enum diag_format *out)
{
	if (!strcmp(s, "text"))
		return *out = DIAG_TEXT, 0;
	if (!strcmp(s, "json"))
		return *out = DIAG_JSON, 0;
	return -1;
}

int diag_configure(const char *level, const char *fmt)
{
	enum diag_level l;
	enum diag_format f;
	if (diag_level_parse(level, &l) != 0 || diag_format_parse(fmt, &f) != 0)
		return -1;
	min_level = l;
	format = f;
	return 0;
}

/* Characters that end a word when looking for addresses: space and the
 * brackets and quotes servers put around them. */
static int scrub_sep(unsigned char c)
{
	return c <= ' ' || c == 0x7f || strchr("<>()[]\"',;", c) != NULL;
}

char *diag_scrub(const char *in, size_t len, char *out, size_t n)
{
	size_t o = 0, i = 0;
	while (i < len && o + 1 < n) {
		if (scrub_sep((unsigned char)in[i])) {
			unsigned char c = (unsigned char)in[i++];
			out[o++] = c < ' ' || c == 0x7f ? ' ' : (char)c;
			continue;
		}
		size_t end = i;
		while (end < len && !scrub_sep((unsigned char)in[end]))
			end++;
		if (memchr(in + i, '@', end - i)) {
			static const char mark[] = "[address]";
			size_t k = sizeof(mark) - 1 < n - 1 - o ? sizeof(mark) - 1 : n - 1 - o;
			memcpy(out + o, mark, k);
			o += k;
		} else {
			size_t k = end - i < n - 1 - o ? end - i : n - 1 - o;
			memcpy(out + o, in + i, k);
			o += k;
		}
		i = end;
	}
	out[o] = '\0';
	return out;
}

/* A line under construction: the bytes, and room kept for the closing
 * "}\n" so that a cut line still ends well formed. */
#define LINE_MAX 2048
#define LINE_TAIL 3
struct line {
	char b[LINE_MAX];
	size_t n;
};

static void put(struct line *l, const char *s, size_t len)
{
	size_t room = LINE_MAX - LINE_TAIL - l->n;
	if (len > room)
		len = room;
	memcpy(l->b + l->n, s, len);
	l->n += len;
}

static void put_str(struct line *l, const char *s)
{
	put(l, s, strlen(s));
}

static void putf(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct line *l, const char *fmt, ...)
{
	size_t room = LINE_MAX - LINE_TAIL - l->n;
	va_list ap;
	va_start(ap, fmt);
	/* room + 1: the NUL may land in the room kept for the end. */
	int w = vsnprintf(l->b + l->n, room + 1, fmt, ap);
	va_end(ap);
	if (w > 0)
		l->n += (size_t)w < room ? (size_t)w : room;
}

/* s as the inside of a JSON string: quotes and backslashes escaped,
 * control characters as \u00XX, bytes that are not UTF-8 as U+FFFD. A
 * character that does not fit whole is left out. */
static void put_json_str(struct line *l, const char *s)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t n = strlen(s);
	while (n > 0) {
		char esc[8];
		const char *out = esc;
		size_t len;
		uint32_t cp;
		size_t k = utf8_decode(p, n, &cp);
		if (k == 0) {
			out = "\\ufffd", len = 6, k = 1;
		} else if (cp == '"' || cp == '\\') {
			esc[0] = '\\', esc[1] = (char)cp, len = 2;
		} else if (cp < 0x20 || cp == 0x7f) {
			len = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", (unsigned)cp);
		} else {
			out = (const char *)p, len = k;
		}
		if (len + 1 > LINE_MAX - LINE_TAIL - l->n) /* + 1: the closing quote */
			return;
		put(l, out, len);
		p += k, n -= k;
	}
}

/* Text lines keep what they are given but for line breaks and other
 * control characters, which would forge a second line: they become a space. */
static void put_text_clean(struct line *l, size_t from)
{
	for (size_t i = from; i < l->n; i++)
		if ((unsigned char)l->b[i] < 0x20 || l->b[i] == 0x7f)
			l->b[i] = ' ';
}

/* "src/sender.c" -> "sender"; a plain name stays as it is. */
static void module_name(const char *file, char out[48])
{
	const char *base = strrchr(file, '/');
	base = base ? base + 1 : file;
	size_t len = strcspn(base, ".");
	if (len >= 48)
		len = 47;
	memcpy(out, base, len);
	out[len] = '\0';
}

static void ids_text(struct line *l, const struct diag_ids *ids)
{
	if (ids->notice)
		putf(l, " notice=%s", ids->notice);
	if (ids->attempt)
		putf(l, " attempt=%d", ids->attempt);
	if (ids->webhook)
		putf(l, " webhook=%s", ids->webhook);
	if (ids->delivery)
		putf(l, " delivery=%s", ids->delivery);
	for (int i = 0; i < ids->nfields; i++) {
		const struct diag_field *f = &ids->fields[i];
		if (f->json_only)
			continue;
		if (f->str || f->number)
			putf(l, " %s=%s", f->key, f->str ? (f->str[0] ? f->str : "-") : f->number);
		else
			putf(l, " %s=%lld", f->key, f->num);
	}
}

static void json_member(struct line *l, const char *key, const char *value)
{
	put_str(l, ",\"");
	put_json_str(l, key);
	put_str(l, "\":\"");
	put_json_str(l, value);
	put_str(l, "\"");
}

static void ids_json(struct line *l, const struct diag_ids *ids)
{
	if (ids->notice)
		json_member(l, "notice", ids->notice);
	if (ids->attempt)
		putf(l, ",\"attempt\":%d", ids->attempt);
	if (ids->webhook)
		json_member(l, "webhook", ids->webhook);
	if (ids->delivery)
		json_member(l, "delivery", ids->delivery);
	for (int i = 0; i < ids->nfields; i++) {
		const struct diag_field *f = &ids->fields[i];
		if (f->str) {
			json_member(l, f->key, f->str);
		} else {
			put_str(l, ",\"");
			put_json_str(l, f->key);
			if (f->number)
				putf(l, "\":%s", f->number);
			else
				putf(l, "\":%lld", f->num);
		}
	}
}

/* Writes one line: fmt with ap, then tail (may be NULL), with the ids. */
static void diag_write(enum diag_level lvl, const char *module, const char *where,
		       const struct diag_ids *ids, const char *tail, const char *fmt, va_list ap)
{
	struct line l;
	l.n = 0;
	char ts[32];
	clock_rfc3339(clock_now_ms(), ts);
	if (format == DIAG_TEXT) {
		putf(&l, "%s selo[%d] %s %s: ", ts, (int)getpid(), level_names[lvl], where);
		size_t from = l.n;
		char msg[1024];
		vsnprintf(msg, sizeof(msg), fmt, ap);
		put_str(&l, msg);
		if (tail)
			put_str(&l, tail);
		if (ids)
			ids_text(&l, ids);
		put_text_clean(&l, from);
		l.b[l.n++] = '\n';
	} else {
		char mod[48], msg[1024];
		module_name(module, mod);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		putf(&l, "{\"time\":\"%s\",\"level\":\"%s\"", ts, level_names[lvl]);
		json_member(&l, "module", mod);
		json_member(&l, "where", where);
		putf(&l, ",\"pid\":%d", (int)getpid());
		if (ids)
			ids_json(&l, ids);
		/* The message last: a long one is cut, the object stays whole. */
		put_str(&l, ",\"message\":\"");
		put_json_str(&l, msg);
		if (tail)
			put_json_str(&l, tail);
		put_str(&l, "\"");
		l.b[l.n++] = '}';
		l.b[l.n++] = '\n';
	}
	ssize_t w = write(STDERR_FILENO, l.b, l.n);
	(void)w;
}

void diag_at(enum diag_level lvl, const char *module, const char *where,
	     const struct diag_ids *ids, const char *fmt, ...)
{
	if (lvl < min_level)
		return;
	va_list ap;
	va_start(ap, fmt);
	diag_write(lvl, module, where, ids, NULL, fmt, ap);
	va_end(ap);
}

void diag(enum diag_level lvl, const char *where, const char *fmt, ...)
{
	if (lvl < min_level)
		return;
	va_list ap;
	va_start(ap, fmt);
	diag_write(lvl, "selo", where, NULL, NULL, fmt, ap);
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

static void limited_v(struct diag_limit *l, enum diag_level lvl, const char *module,
		      const char *where, const char *fmt, va_list ap)
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
	diag_write(lvl, module, where, NULL, tail, fmt, ap);
}

void diag_limited_at(struct diag_limit *l, enum diag_level lvl, const char *module,
		     const char *where, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	limited_v(l, lvl, module, where, fmt, ap);
	va_end(ap);
}

void diag_limited(struct diag_limit *l, enum diag_level lvl, const char *where,
		  const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	limited_v(l, lvl, "selo", where, fmt, ap);
	va_end(ap);
}

static int limit_end_v(struct diag_limit *l, const char *module, const char *where,
		       const char *fmt, va_list ap)
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
	diag_write(DIAG_INFO, module, where, NULL, tail, fmt, ap);
	return 1;
}

int diag_limit_end_at(struct diag_limit *l, const char *module, const char *where,
		      const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = limit_end_v(l, module, where, fmt, ap);
	va_end(ap);
	return r;
}

int diag_limit_end(struct diag_limit *l, const char *where, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = limit_end_v(l, "selo", where, fmt, ap);
	va_end(ap);
	return r;
}
