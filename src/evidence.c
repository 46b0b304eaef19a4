/* evidence.c: checks evidence against what the log commits to before it
 * leaves Selo, and audits every notice the same way (see evidence.h). Only
 * reads: it never repairs, because the only sound copy of damaged evidence
 * is a backup. Every finding is an error of type "evidence-damaged" whose
 * message names the notice and what disagrees, never a personal value. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "selo/crypto.h"
#include "selo/evidence.h"
#include "selo/id.h"
#include "selo/tlog.h"

#define SCAN_PAGE 256     /* notices per read snapshot of the audit */
#define SCAN_GIVE_UP 1000 /* unreadable rows in a row before the audit stops walking */

/* Ends every finding handed out; the audit, which is that command, drops it. */
static const char ADVICE[] = ": the store is damaged; run `selo log verify` (docs/operations.md, "
			     "\"A damaged store\")";

static int damaged(struct selo_err *err, const char *id, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int damaged(struct selo_err *err, const char *id, const char *fmt, ...)
{
	char what[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return err_set(err, 500, EVIDENCE_DAMAGED, "notice %s: %s%s", id, what, ADVICE);
}

/* ---- Entries against the log's leaves */

/* One level-0 tile at a time: a receipt's events are mostly in one. */
struct leaf_tiles {
	struct store *s;
	int64_t tile;       /* the tile in b, -1 none */
	struct buf b;
};

static int entry_leaf_check(struct leaf_tiles *t, const struct event_rec *e, struct selo_err *err)
{
	if (e->log_index < 0)
		return 0;
	int64_t tile = e->log_index / TLOG_TILE_WIDTH;
	size_t at = (size_t)(e->log_index % TLOG_TILE_WIDTH) * TLOG_HASH_LEN;
	/* A cached tile too short for the entry is read again: a running
	 * `selo serve` integrates the entry and grows its tile together. */
	if (tile != t->tile || t->b.len < at + TLOG_HASH_LEN) {
		buf_reset(&t->b);
		t->tile = -1;
		int found = store_log_tile(t->s, 0, (uint64_t)tile, &t->b, err);
		if (found < 0)
			return -1;
		if (found)
			t->tile = tile;
	}
	if (t->tile != tile || t->b.len < at + TLOG_HASH_LEN)
		return damaged(err, e->notice_id, "the log has no leaf for its event %s (log entry %lld)",
			       e->type, (long long)e->log_index);
	uint8_t leaf[TLOG_HASH_LEN];
	tlog_leaf_hash(e->entry, e->len, leaf);
	if (memcmp(leaf, t->b.data + at, TLOG_HASH_LEN) != 0)
		return damaged(err, e->notice_id, "its stored %s event (log entry %lld) does not hash to "
			       "the leaf the log holds for it", e->type, (long long)e->log_index);
	return 0;
}

int evidence_entries(struct store *s, const struct event_rec *ev, size_t n, struct selo_err *err)
{
	struct leaf_tiles t = {s, -1, BUF_INIT};
	int r = 0;
	for (size_t i = 0; i < n && r == 0; i++)
		r = entry_leaf_check(&t, &ev[i], err);
	buf_free(&t.b);
	return r;
}

int evidence_entry_head(const struct event_rec *e, struct selo_err *err)
{
	struct buf head = BUF_INIT;
	/* The head as the writer makes it: the entry of an event with no fields
	 * is its head and a closing brace. */
	int ok = event_entry_encode_text(&head, e->type, e->notice_id, e->time_ms, NULL, 0) == 0 &&
		 head.len > 1 && e->len >= head.len && !memcmp(e->entry, head.data, head.len - 1) &&
		 (e->entry[head.len - 1] == ',' || e->entry[head.len - 1] == '}');
	buf_free(&head);
	if (ok)
		return 0;
	return damaged(err, id_text_valid(e->notice_id) ? e->notice_id : "?",
		       "event seq %lld: its row's type, notice or time is not what its entry says",
		       (long long)e->seq);
}

/* ---- Decoding entries */

/* The entry as a JSON object about this notice, or NULL with err. */
static json_t *entry_object(const struct event_rec *e, const char *id, struct selo_err *err)
{
	json_t *o = json_loadb(e->entry, e->len, JSON_REJECT_DUPLICATES, NULL);
	const char *type = json_string_value(json_object_get(o, "type"));
	const char *notice = json_string_value(json_object_get(o, "notice"));
	if (json_is_object(o) && type && notice && !strcmp(type, e->type) && !strcmp(notice, id))
		return o;
	json_decref(o);
	damaged(err, id, "its %s event (seq %lld) cannot be decoded as this notice's %s entry",
		e->type, (long long)e->seq, e->type);
	return NULL;
}

struct sealed {
	char sha256[65];
	int64_t size;
	char message_id[256];
};

static int hex64(const char *s)
{
	return s && strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

static int sealed_decode(const struct event_rec *e, const char *id, struct sealed *out,
			 struct selo_err *err)
{
	json_t *o = entry_object(e, id, err);
	if (!o)
		return -1;
	const char *h = json_string_value(json_object_get(o, "sha256"));
	const char *mid = json_string_value(json_object_get(o, "message_id"));
	json_t *size = json_object_get(o, "size");
	int ok = hex64(h) && mid && strlen(mid) < sizeof(out->message_id) && json_is_integer(size) &&
		 json_integer_value(size) >= 0;
	if (ok) {
		memcpy(out->sha256, h, 65);
		snprintf(out->message_id, sizeof(out->message_id), "%s", mid);
		out->size = json_integer_value(size);
	}
	json_decref(o);
	return ok ? 0 : damaged(err, id, "its content_sealed event (seq %lld) has no sha256, size or "
				"message_id it can be checked against", (long long)e->seq);
}

/* ---- The sealed message */

/* The message stored for the notice against its content_sealed event e
 * (NULL: none), e first against its leaf in the log (through tiles, the
 * caller's tile cache; NULL: the caller checked it): a damaged event must
 * not pass for a damaged message. Appends the bytes to eml only when they
 * match. */
static int message_check(struct store *s, const char *id, const struct event_rec *e,
			 struct leaf_tiles *tiles, struct buf *eml, char sha256[65], uint64_t *bytes,
			 struct selo_err *err)
{
	struct buf m = BUF_INIT;
	char column[65];
	int found = store_message_get(s, id, &m, column, err);
	int r = found < 0 ? -1 : 0;
	struct sealed z;
	if (found == 0 && !e)
		r = 0;
	else if (found == 0)
		r = damaged(err, id, "its content_sealed event (seq %lld) seals a message that is not "
			    "in the store", (long long)e->seq);
	else if (found == 1 && !e)
		r = damaged(err, id, "a message is stored but no content_sealed event seals it");
	else if (found == 1 && tiles && entry_leaf_check(tiles, e, err) != 0)
		r = -1;
	else if (found == 1 && sealed_decode(e, id, &z, err) != 0)
		r = -1;
	else if (found == 1) {
		char hex[65];
		sha256_hex(m.data, m.len, hex);
		if (strcmp(hex, z.sha256) != 0 || (int64_t)m.len != z.size)
			r = damaged(err, id, "its stored message (%zu bytes, SHA-256 %.16s...) is not the "
				    "one sealed in its content_sealed event (%lld bytes, SHA-256 "
				    "%.16s...)", m.len, hex,
				    (long long)z.size, z.sha256);
		else if (strcmp(column, z.sha256) != 0)
			r = damaged(err, id, "the digest stored beside its message is not the one its "
				    "content_sealed event seals");
		else {
			buf_append(eml, m.data, m.len);
			memcpy(sha256, z.sha256, 65);
			if (bytes)
				*bytes += m.len;
			r = 1;
		}
	}
	buf_free(&m);
	return r;
}

/* The first of the events of this type, or NULL. */
static const struct event_rec *first_of(const struct event_rec *ev, size_t n, const char *type)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(ev[i].type, type))
			return &ev[i];
	return NULL;
}

int evidence_message(struct store *s, const char *notice_id, struct buf *eml, char sha256[65],
		     struct selo_err *err)
{
	sha256[0] = '\0';
	struct event_rec e;
	int found = store_event_first(s, notice_id, EV_CONTENT_SEALED, &e, err);
	if (found < 0)
		return -1;
	struct leaf_tiles t = {s, -1, BUF_INIT};
	int r = message_check(s, notice_id, found ? &e : NULL, &t, eml, sha256, NULL, err);
	buf_free(&t.b);
	event_rec_free(&e);
	return r;
}

int evidence_message_sealed(struct store *s, const char *notice_id, const struct event_rec *ev,
			    size_t n, struct buf *eml, char sha256[65], struct selo_err *err)
{
	sha256[0] = '\0';
	return message_check(s, notice_id, first_of(ev, n, EV_CONTENT_SEALED), NULL, eml, sha256,
			     NULL, err);
}

/* ---- The notice's row against its events */

/* The entry's commitment under key against value under the row's salt:
 * absent when the row has no value. 1 agree, 0 not. */
static int commitment_agrees(json_t *o, const char *key, const uint8_t salt[32],
			     const char *value)
{
	const char *c = json_string_value(json_object_get(o, key));
	if (!value)
		return json_object_get(o, key) == NULL;
	char mine[SELO_COMMIT_LEN + 1];
	commitment(salt, 32, value, strlen(value), mine);
	return c && !strcmp(c, mine);
}

static int submission_agrees(const struct notice_rec *r, const struct event_rec *e,
			     struct selo_err *err)
{
	json_t *o = entry_object(e, r->id, err);
	if (!o)
		return -1;
	const char *field = NULL;
	json_t *key = json_object_get(o, "api_key");
	const char *tpl = json_string_value(json_object_get(o, "template"));
	if (!json_is_integer(key) || json_integer_value(key) != r->apikey_id)
		field = "api_key";
	else if (!commitment_agrees(o, "to", r->salt, r->to))
		field = "to_addr (or salt)";
	else if (!commitment_agrees(o, "reference", r->salt, r->reference))
		field = "reference (or salt)";
	else if (r->template_name ? !tpl || strcmp(tpl, r->template_name) : tpl != NULL)
		field = "template";
	json_decref(o);
	if (!field)
		return 0;
	return damaged(err, r->id, "its row's %s is not what its submission_accepted event (seq "
		       "%lld) commits to", field, (long long)e->seq);
}

static int sealed_agrees(const struct notice_rec *r, const struct event_rec *e,
			 struct selo_err *err)
{
	if (!e) {
		if (!r->message_id && !r->sha256[0])
			return 0;
		return damaged(err, r->id, "its row names a sealed message but no content_sealed "
			       "event seals one");
	}
	struct sealed z;
	if (sealed_decode(e, r->id, &z, err) != 0)
		return -1;
	const char *field = !r->message_id || strcmp(r->message_id, z.message_id) ? "message_id"
			    : strcmp(r->sha256, z.sha256)                         ? "sha256"
										  : NULL;
	if (!field)
		return 0;
	return damaged(err, r->id, "its row's %s is not the one its content_sealed event (seq "
		       "%lld) seals", field, (long long)e->seq);
}

int evidence_notice(const struct notice_rec *r, const struct event_rec *ev, size_t n,
		    struct selo_err *err)
{
	const struct event_rec *sub = first_of(ev, n, EV_SUBMISSION_ACCEPTED);
	if (!sub)
		return damaged(err, r->id, "it has no submission_accepted event (its row's id may be "
			       "damaged)");
	if (submission_agrees(r, sub, err) != 0)
		return -1;
	return sealed_agrees(r, first_of(ev, n, EV_CONTENT_SEALED), err);
}

int evidence_disclosures(const char *notice_id, const uint8_t salt[32],
			 const struct disclosures *d, struct selo_err *err)
{
	for (size_t i = 0; i < d->n; i++) {
		char c[SELO_COMMIT_LEN + 1];
		commitment(salt, 32, d->v[i].value, d->v[i].len, c);
		if (strcmp(c, d->v[i].commitment) != 0)
			return damaged(err, notice_id, "its disclosed value for %.24s... does not match "
				       "that commitment under its salt", d->v[i].commitment);
	}
	return 0;
}

/* ---- The audit */

struct audit {
	struct store *s;
	void (*report)(void *arg, int ok, const char *line);
	void *arg;
	struct evidence_tally *t;
	int found;          /* findings for the notice in hand */
	struct leaf_tiles tiles; /* storage order is about log order: mostly one tile */
};

/* One line per finding, always naming the notice (a store error does not). */
static void finding(struct audit *a, const char *id, const struct selo_err *e)
{
	a->found++;
	if (!a->report)
		return;
	if (!strcmp(e->type, EVIDENCE_DAMAGED)) {
		char line[sizeof(e->msg)];
		snprintf(line, sizeof(line), "%s", e->msg);
		size_t n = strlen(line), k = strlen(ADVICE);
		if (n > k && !strcmp(line + n - k, ADVICE))
			line[n - k] = '\0';
		a->report(a->arg, 0, line);
		return;
	}
	char line[700];
	snprintf(line, sizeof(line), "notice %s: %s", id, e->msg);
	a->report(a->arg, 0, line);
}

/* The notice's two events the row is checked against. *n of them. */
static int audit_events(struct audit *a, const char *id, struct event_rec ev[2], size_t *n,
			struct selo_err *err)
{
	static const char *const types[] = {EV_SUBMISSION_ACCEPTED, EV_CONTENT_SEALED};
	*n = 0;
	for (int i = 0; i < 2; i++) {
		int found = store_event_first(a->s, id, types[i], &ev[*n], err);
		if (found < 0)
			return -1;
		*n += (size_t)found;
	}
	return 0;
}

/* The sealed message and the disclosures of a notice. */
static void audit_contents(struct audit *a, const struct notice_rec *r,
			   const struct event_rec *sealed)
{
	struct selo_err e;
	err_clear(&e);
	struct buf eml = BUF_INIT;
	char hex[65];
	int m = message_check(a->s, r->id, sealed, &a->tiles, &eml, hex, &a->t->message_bytes, &e);
	if (m < 0)
		finding(a, r->id, &e);
	a->t->messages += m == 1;
	buf_free(&eml);
	struct disclosures d = DISCLOSURES_INIT;
	err_clear(&e);
	if (store_disclosures_of(a->s, r->id, &d, &e) != 0 ||
	    (!r->damage && evidence_disclosures(r->id, r->salt, &d, &e) != 0))
		finding(a, r->id, &e);
	a->t->disclosures += d.n;
	disclosures_free(&d);
}

/* Every check of one notice; each failing one is a finding, and the next
 * check still runs: the operator learns all that is wrong in one pass.
 * a->found counts the findings. */
static void audit_notice_pass(struct audit *a, const struct notice_rec *r)
{
	struct selo_err e;
	err_clear(&e);
	a->found = 0;
	if (r->damage) {
		int named = id_text_valid(r->id);
		damaged(&e, named ? r->id : "?", "its row cannot be decoded: %s", r->damage);
		finding(a, r->id, &e);
		if (!named) /* nothing to look its events up by */
			return;
	}
	struct event_rec ev[2];
	size_t n = 0;
	err_clear(&e);
	if (audit_events(a, r->id, ev, &n, &e) != 0)
		finding(a, r->id, &e);
	else if (!r->damage && evidence_notice(r, ev, n, &e) != 0)
		finding(a, r->id, &e);
	audit_contents(a, r, first_of(ev, n, EV_CONTENT_SEALED));
	for (size_t i = 0; i < n; i++)
		event_rec_free(&ev[i]);
}

/* A pass reads the row (in a page, earlier), the events and the message
 * each in its own snapshot, so a `selo serve` sealing the notice between
 * two reads can make them disagree for a moment. The first pass is quiet;
 * when it finds something, the notice is checked again from its row read
 * anew, and only that pass reports. A seal writes the row, the message and
 * its event in one transaction: the second pass, begun after the first
 * saw part of it, sees all of it. Damage stays damage on both passes. */
static void audit_notice(struct audit *a, const struct notice_rec *r)
{
	struct evidence_tally quiet = {0}, *tally = a->t;
	void (*report)(void *, int, const char *) = a->report;
	a->t = &quiet;
	a->report = NULL;
	audit_notice_pass(a, r);
	a->t = tally;
	a->report = report;
	if (!a->found) {
		tally->messages += quiet.messages;
		tally->message_bytes += quiet.message_bytes;
		tally->disclosures += quiet.disclosures;
		return;
	}
	struct notice_rec now;
	struct selo_err e;
	err_clear(&e);
	if (!r->damage && store_notice_get(a->s, r->id, -1, &now, &e) == 1) {
		audit_notice_pass(a, &now);
		notice_rec_free(&now);
	} else {
		audit_notice_pass(a, r);
	}
	tally->damaged += a->found > 0;
}

static void audit_summary(struct audit *a)
{
	char line[400];
	const struct evidence_tally *t = a->t;
	if (t->damaged)
		snprintf(line, sizeof(line), "%llu of %llu notices have damaged evidence (listed above)",
			 (unsigned long long)t->damaged, (unsigned long long)t->notices);
	else
		snprintf(line, sizeof(line), "%llu notices: every row decodes and agrees with its events; "
			 "%llu sealed messages (%.1f MB) hash to the digests their content_sealed "
			 "events seal; %llu disclosed values match their commitments",
			 (unsigned long long)t->notices, (unsigned long long)t->messages,
			 (double)t->message_bytes / 1e6, (unsigned long long)t->disclosures);
	if (a->report)
		a->report(a->arg, t->damaged == 0, line);
}

/* A notices row SQLite cannot read: reported (a notice whose evidence
 * cannot be checked), and the walk steps past it. Rows are numbered
 * densely (notices are never deleted), so stepping one at a time finds the
 * next readable one; after SCAN_GIVE_UP unreadable rows in a row the rest
 * is left to `selo store check` and a backup. */
static int scan_unreadable(struct audit *a, int64_t *cursor, int unread,
			   const struct selo_err *err)
{
	char line[700];
	if (unread < SCAN_GIVE_UP)
		snprintf(line, sizeof(line), "the notices row after table row %lld cannot be read%s%s",
			 (long long)*cursor, unread == 1 ? ": " : " either", unread == 1 ? err->msg : "");
	else
		snprintf(line, sizeof(line), "%d notices rows in a row cannot be read: the audit stops "
			 "at table row %lld", unread, (long long)*cursor);
	if (a->report)
		a->report(a->arg, 0, line);
	a->t->notices++;
	a->t->damaged++;
	(*cursor)++;
	return unread >= SCAN_GIVE_UP ? 1 : 0;
}

int evidence_audit(struct store *s, void (*report)(void *arg, int ok, const char *line),
		   void *arg, struct evidence_tally *t, struct selo_err *err)
{
	memset(t, 0, sizeof(*t));
	struct audit a = {s, report, arg, t, 0, {s, -1, BUF_INIT}};
	int64_t cursor = 0;
	size_t page = SCAN_PAGE;
	int r = 0;
	for (int unread = 0; r == 0;) {
		struct notice_rec *recs = NULL;
		size_t n = 0;
		if (store_notice_scan(s, &cursor, page, &recs, &n, err) == 0) {
			for (size_t i = 0; i < n; i++) {
				t->notices++;
				audit_notice(&a, &recs[i]);
			}
			notice_recs_free(recs, n);
			page = SCAN_PAGE;
			unread = 0;
			if (n == 0)
				break;
		} else if (strcmp(err->type, "store-damaged") != 0) {
			r = -1;
		} else if (page > 1) {
			page = 1; /* find the row SQLite cannot read, one at a time */
		} else {
			r = scan_unreadable(&a, &cursor, ++unread, err);
		}
	}
	buf_free(&a.tiles.b);
	if (r < 0)
		return -1;
	audit_summary(&a);
	return t->damaged ? 1 : 0;
}
