/* store_pg_log.c: the PostgreSQL backend's tracker hits and their folds,
 * the log's storage (tree state, tiles, index runs) and signed checkpoints,
 * with the contracts of store.h (the SQLite twin is store_sqlite_log.c;
 * docs/scale.md "store_pg_log.c").
 *
 * Several nodes share the database, so what SQLite gets from its single
 * writer is made explicit here:
 * - a notice's hit tally is read FOR UPDATE (seeded from its events the
 *   first time), and every tally a call touches is locked, in notice-id
 *   order, before its first event: pg_event_add's event clock is then the
 *   last lock any of these transactions takes, so they cannot deadlock;
 * - folds are claimed FOR UPDATE SKIP LOCKED, so two nodes never write the
 *   same summary;
 * - log_append is fenced: it locks the log_state row and writes only when
 *   the stored tree is still the one the append grew from (size, and root
 *   when the caller gives it), else 409 "log-moved" and nothing written; a
 *   full tile never changes; a checkpoint is added only for the stored size.
 * Errors: 503 store-unavailable when the database is away (the pool), the
 * caller's mistakes as SQLite answers them, 500 storage-failed otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "selo/buf.h"
#include "selo/event.h"
#include "selo/store.h"
#include "store_pg_int.h"

enum {
	PGL_NOTICE_EXISTS = PG_S_LOG_BASE,
	PGL_TALLY_GET,
	PGL_TALLY_SEED,
	PGL_TALLY_PUT,
	PGL_FOLD_ADDR,
	PGL_FOLD_ADDRS_DROP,
	PGL_FOLDS_DUE,
	PGL_FOLDS_CLAIM,
	PGL_STATE_GET,
	PGL_STATE_LOCK,
	PGL_STATE_SET,
	PGL_RANGE_COUNT,
	PGL_RANGE_ADD,
	PGL_TILE_SET,
	PGL_TILE_GET,
	PGL_ENTRIES,
	PGL_UNINDEXED,
	PGL_CP_ADD,
	PGL_CP_TST,
	PGL_CP_FIND,
	PGL_CP_FIND_TST,
	PGL_CP_UNTIMESTAMPED,
	PGL_CP_ALL,
	PGL_END
};
_Static_assert((int)PGL_END <= (int)PG_S_WEBHOOK_BASE, "store_pg_log.c's statements fit its range");

/* A full tile: 256 hashes of 32 bytes (tlog-tiles). */
#define PGL_TILE_FULL 8192
/* The most events one log read returns (as SQLite's EVENTS_AFTER_MAX). */
#define PGL_READ_MAX 100000

/* hit_tally's columns after notice_id, in the order struct pgl_tally reads. */
#define PGL_TALLY_COLS                                                                   \
	"full_opened_human, full_opened_proxy, full_opened_scanner, full_clicked_human,"  \
	" full_clicked_proxy, full_clicked_scanner, summaries, fold_first_ms, fold_last_ms," \
	" fold_due_ms, fold_opened_human, fold_opened_proxy, fold_opened_scanner,"         \
	" fold_clicked_human, fold_clicked_proxy, fold_clicked_scanner, fold_addresses"
#define PGL_CP_COLS "size, note, created_ms, tst, coalesce(tst_time_ms, 0)"
/* A hit's class from its entry, as SQLite reads it: unknown is a scanner. */
#define PGL_HIT_CLASS                                                                     \
	"CASE convert_from(entry, 'UTF8')::json->>'class' WHEN 'human' THEN 0"              \
	" WHEN 'proxy' THEN 1 ELSE 2 END"
#define PGL_COUNT(t, c) " count(*) FILTER (WHERE type = '" t "' AND cls = " #c "),"

static const char *const pg_log_sql_text[PGL_END - PG_S_LOG_BASE] = {
	[PGL_NOTICE_EXISTS - PG_S_LOG_BASE] = "SELECT 1 FROM notices WHERE id = $1",
	[PGL_TALLY_GET - PG_S_LOG_BASE] = "SELECT " PGL_TALLY_COLS " FROM hit_tally"
					  " WHERE notice_id = $1 FOR UPDATE",
	/* A notice hit before it had a row: what its events say. */
	[PGL_TALLY_SEED - PG_S_LOG_BASE] =
		"INSERT INTO hit_tally(notice_id, " PGL_TALLY_COLS ") SELECT $1,"
		PGL_COUNT("opened", 0) PGL_COUNT("opened", 1) PGL_COUNT("opened", 2)
		PGL_COUNT("clicked", 0) PGL_COUNT("clicked", 1) PGL_COUNT("clicked", 2)
		" count(*) FILTER (WHERE type = 'tracking_summary'), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0"
		" FROM (SELECT type, " PGL_HIT_CLASS " AS cls FROM events WHERE notice_id = $1"
		" AND type IN ('opened', 'clicked', 'tracking_summary')) h"
		" ON CONFLICT (notice_id) DO NOTHING",
	[PGL_TALLY_PUT - PG_S_LOG_BASE] =
		"UPDATE hit_tally SET full_opened_human = $2, full_opened_proxy = $3,"
		" full_opened_scanner = $4, full_clicked_human = $5, full_clicked_proxy = $6,"
		" full_clicked_scanner = $7, summaries = $8, fold_first_ms = $9, fold_last_ms = $10,"
		" fold_due_ms = $11, fold_opened_human = $12, fold_opened_proxy = $13,"
		" fold_opened_scanner = $14, fold_clicked_human = $15, fold_clicked_proxy = $16,"
		" fold_clicked_scanner = $17, fold_addresses = $18 WHERE notice_id = $1",
	[PGL_FOLD_ADDR - PG_S_LOG_BASE] = "INSERT INTO hit_fold_addrs(notice_id, addr)"
					  " VALUES($1, $2) ON CONFLICT DO NOTHING",
	[PGL_FOLD_ADDRS_DROP - PG_S_LOG_BASE] = "DELETE FROM hit_fold_addrs WHERE notice_id = $1",
	[PGL_FOLDS_DUE - PG_S_LOG_BASE] = "SELECT notice_id FROM hit_tally WHERE fold_due_ms > 0"
					  " AND fold_due_ms <= $1 ORDER BY fold_due_ms LIMIT $2",
	[PGL_FOLDS_CLAIM - PG_S_LOG_BASE] = "SELECT notice_id FROM hit_tally WHERE fold_due_ms > 0"
					    " AND fold_due_ms <= $1 ORDER BY fold_due_ms LIMIT $2"
					    " FOR UPDATE SKIP LOCKED",
	[PGL_STATE_GET - PG_S_LOG_BASE] = "SELECT size, root, last_seq FROM log_state WHERE id = 1",
	/* The fence: every append takes this row lock first and compares. */
	[PGL_STATE_LOCK - PG_S_LOG_BASE] = "SELECT size, root, last_seq FROM log_state WHERE id = 1"
					   " FOR UPDATE",
	[PGL_STATE_SET - PG_S_LOG_BASE] = "UPDATE log_state SET size = $1, root = $2, last_seq = $3"
					  " WHERE id = 1",
	[PGL_RANGE_COUNT - PG_S_LOG_BASE] = "SELECT count(*) FROM events WHERE seq BETWEEN $1 AND $2",
	[PGL_RANGE_ADD - PG_S_LOG_BASE] = "INSERT INTO log_ranges(first_index, first_seq, n)"
					  " VALUES($1, $2, $3)",
	/* A partial tile grows; a full one never changes (no row: refused). */
	[PGL_TILE_SET - PG_S_LOG_BASE] = "INSERT INTO log_tiles(level, idx, data) VALUES($1, $2, $3)"
					 " ON CONFLICT (level, idx) DO UPDATE SET data = EXCLUDED.data"
					 " WHERE length(log_tiles.data) < 8192"
					 " OR log_tiles.data = EXCLUDED.data",
	[PGL_TILE_GET - PG_S_LOG_BASE] = "SELECT data FROM log_tiles WHERE level = $1 AND idx = $2",
	/* As SQLite's: the run holding index $1, then each run's events. */
	[PGL_ENTRIES - PG_S_LOG_BASE] =
		"SELECT e.seq, e.notice_id, e.type, e.time_ms, e.entry,"
		" r.first_index + e.seq - r.first_seq FROM log_ranges r JOIN events e"
		" ON e.seq >= r.first_seq + greatest($1 - r.first_index, 0)"
		" AND e.seq < r.first_seq + r.n"
		" WHERE r.first_index >= coalesce((SELECT first_index FROM log_ranges"
		" WHERE first_index <= $1 ORDER BY first_index DESC LIMIT 1), 0)"
		" ORDER BY r.first_index, e.seq LIMIT $2",
	/* Counted, not assumed from the runs' lengths: an audit must see an
	 * event a run skipped. One statement: one snapshot. */
	[PGL_UNINDEXED - PG_S_LOG_BASE] =
		"SELECT (SELECT count(*) FROM events WHERE seq <= $1) -"
		" (SELECT count(*) FROM log_ranges r JOIN events e ON e.seq >= r.first_seq"
		" AND e.seq < least(r.first_seq + r.n, $1 + 1))",
	/* Only over the stored tree, whose row lock a concurrent append holds:
	 * FOR SHARE waits for it and then sees the new size. */
	[PGL_CP_ADD - PG_S_LOG_BASE] = "INSERT INTO checkpoints(size, note, created_ms)"
				       " SELECT $1, $2, $3 FROM log_state WHERE id = 1 AND size = $1"
				       " FOR SHARE",
	[PGL_CP_TST - PG_S_LOG_BASE] = "UPDATE checkpoints SET tst = $2, tst_time_ms = $3"
				       " WHERE size = $1",
	[PGL_CP_FIND - PG_S_LOG_BASE] = "SELECT " PGL_CP_COLS " FROM checkpoints WHERE size >= $1"
					" ORDER BY size DESC LIMIT 1",
	[PGL_CP_FIND_TST - PG_S_LOG_BASE] = "SELECT " PGL_CP_COLS " FROM checkpoints"
					    " WHERE size >= $1 AND tst IS NOT NULL"
					    " ORDER BY size DESC LIMIT 1",
	[PGL_CP_UNTIMESTAMPED - PG_S_LOG_BASE] = "SELECT " PGL_CP_COLS " FROM checkpoints"
						 " WHERE tst IS NULL ORDER BY size DESC LIMIT $1",
	[PGL_CP_ALL - PG_S_LOG_BASE] = "SELECT " PGL_CP_COLS " FROM checkpoints ORDER BY size",
};
const struct pg_sql_table pg_sql_log = {pg_log_sql_text, PGL_END - PG_S_LOG_BASE};

/* ---- Small helpers */

/* A bytea column as malloc'd bytes with a NUL after them (entries are
 * text); *len its length. */
static char *pgl_bytes(const PGresult *r, int row, int col, size_t *len)
{
	size_t n = 0;
	unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), &n);
	char *out = xmalloc(n + 1);
	if (raw && n)
		memcpy(out, raw, n);
	out[n] = '\0';
	PQfreemem(raw);
	*len = raw ? n : 0;
	return out;
}

/* Runs st and keeps only its success: 0, or -1 with *fail and err. */
static int pgl_run(struct pgconn *c, int st, int n, const char *const *vals, const int *lens,
		   const int *fmts, int64_t deadline, enum pg_fail *fail, const char *doing,
		   struct selo_err *err, int64_t *changed)
{
	PGresult *r = pgconn_exec(c, (enum pg_stmt)st, n, vals, lens, fmts, deadline, fail, doing, err);
	if (!r)
		return -1;
	if (changed)
		*changed = strtoll(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return 0;
}

/* A caller's mistake inside a transaction: err as given, roll back. */
static int pgl_refuse(enum pg_fail *fail)
{
	*fail = PG_FAILED;
	return -1;
}

/* A read on a pooled connection outside any transaction: one statement. */
static PGresult *pgl_read(struct store *base, int st, int n, const char *const *vals,
			  const int *lens, const int *fmts, const char *doing, struct selo_err *err)
{
	struct pgstore *s = pgstore_of(base);
	int64_t deadline = pgstore_deadline(s);
	struct pgconn *c = pgstore_acquire(s, deadline, err);
	if (!c)
		return NULL;
	enum pg_fail fail;
	PGresult *r = pgconn_exec(c, (enum pg_stmt)st, n, vals, lens, fmts, deadline, &fail, doing, err);
	pgstore_release(s, c);
	return r;
}

/* ---- Tracker hits and their folds (store.h "Tracker hits"). */

/* A notice's row of hit_tally while a transaction holds its lock. */
struct pgl_tally {
	const char *id;
	int64_t full[HIT_KINDS][HIT_CLASSES];
	int64_t summaries;
	int64_t first_ms, last_ms, due_ms; /* the open fold; due 0: none */
	int64_t fold[HIT_KINDS][HIT_CLASSES];
	int64_t addresses;
};

static void pgl_tally_from_row(const PGresult *r, struct pgl_tally *t)
{
	int col = 0;
	for (int k = 0; k < HIT_KINDS; k++)
		for (int c = 0; c < HIT_CLASSES; c++)
			t->full[k][c] = pg_col_int(r, 0, col++);
	t->summaries = pg_col_int(r, 0, col++);
	t->first_ms = pg_col_int(r, 0, col++);
	t->last_ms = pg_col_int(r, 0, col++);
	t->due_ms = pg_col_int(r, 0, col++);
	for (int k = 0; k < HIT_KINDS; k++)
		for (int c = 0; c < HIT_CLASSES; c++)
			t->fold[k][c] = pg_col_int(r, 0, col++);
	t->addresses = pg_col_int(r, 0, col);
}

/* Reads and locks the notice's tally: 1 found, 0 no row, -1 error. */
static int pgl_tally_get(struct pgconn *c, struct pgl_tally *t, int64_t deadline,
			 enum pg_fail *fail, struct selo_err *err)
{
	PGresult *r = pgconn_exec(c, (enum pg_stmt)PGL_TALLY_GET, 1, &t->id, NULL, NULL, deadline, fail,
				  "reading a notice's hit tally", err);
	if (!r)
		return -1;
	int found = PQntuples(r) == 1;
	if (found)
		pgl_tally_from_row(r, t);
	PQclear(r);
	return found;
}

/* Locks the tally of notice t->id, seeding its row from its events the
 * first time (a concurrent seeder's row wins: ON CONFLICT DO NOTHING waits
 * for it, and the second read sees it). */
static int pgl_tally_lock(struct pgconn *c, struct pgl_tally *t, int64_t deadline,
			  enum pg_fail *fail, struct selo_err *err)
{
	const char *id = t->id;
	memset(t, 0, sizeof(*t));
	t->id = id;
	int got = pgl_tally_get(c, t, deadline, fail, err);
	if (got != 0)
		return got < 0 ? -1 : 0;
	if (pgl_run(c, PGL_TALLY_SEED, 1, &t->id, NULL, NULL, deadline, fail,
		    "counting a notice's hits", err, NULL) != 0)
		return -1;
	got = pgl_tally_get(c, t, deadline, fail, err);
	if (got == 0) {
		*fail = PG_FAILED;
		return err_set(err, 500, "storage-failed", "store: the hit tally of %s vanished", id);
	}
	return got < 0 ? -1 : 0;
}

static int pgl_tally_put(struct pgconn *c, const struct pgl_tally *t, int64_t deadline,
			 enum pg_fail *fail, struct selo_err *err)
{
	struct pg_num num[17];
	const char *vals[18];
	int i = 0;
	vals[0] = t->id;
	for (int k = 0; k < HIT_KINDS; k++)
		for (int cl = 0; cl < HIT_CLASSES; cl++, i++)
			vals[i + 1] = pg_num(&num[i], t->full[k][cl]);
	const int64_t mid[] = {t->summaries, t->first_ms, t->last_ms, t->due_ms};
	for (size_t m = 0; m < 4; m++, i++)
		vals[i + 1] = pg_num(&num[i], mid[m]);
	for (int k = 0; k < HIT_KINDS; k++)
		for (int cl = 0; cl < HIT_CLASSES; cl++, i++)
			vals[i + 1] = pg_num(&num[i], t->fold[k][cl]);
	vals[i + 1] = pg_num(&num[i], t->addresses);
	return pgl_run(c, PGL_TALLY_PUT, 18, vals, NULL, NULL, deadline, fail,
		       "storing a notice's hit tally", err, NULL);
}

/* 0 when the notice exists, else -1 (404 for the whole call). */
static int pgl_notice_known(struct pgconn *c, const char *id, int64_t deadline,
			    enum pg_fail *fail, struct selo_err *err)
{
	PGresult *r = pgconn_exec(c, (enum pg_stmt)PGL_NOTICE_EXISTS, 1, &id, NULL, NULL, deadline, fail,
				  "looking up a notice", err);
	if (!r)
		return -1;
	int found = PQntuples(r) > 0;
	PQclear(r);
	if (found)
		return 0;
	err_set(err, 404, "not-found", "store: no notice %s", id);
	return pgl_refuse(fail);
}

/* How long a notice's next fold stays open: the rule's window, doubled for
 * every summary the notice already has, up to the rule's longest. */
static int64_t pgl_fold_window(const struct fold_rule *r, int64_t summaries)
{
	int64_t w = r->window_ms > 0 ? r->window_ms : 1;
	for (int64_t i = 0; i < summaries && w < r->window_max_ms; i++)
		w *= 2;
	return w < r->window_max_ms ? w : r->window_max_ms;
}

/* Counts one hit in the notice's fold; a new address is remembered. */
static int pgl_fold_add(struct pgconn *c, struct pgl_tally *t, const struct hit_new *h,
			const struct fold_rule *rule, int64_t deadline, enum pg_fail *fail,
			struct selo_err *err)
{
	if (t->due_ms == 0) {
		t->first_ms = t->last_ms = h->arrived_ms;
		t->due_ms = h->arrived_ms + pgl_fold_window(rule, t->summaries);
	}
	if (h->arrived_ms < t->first_ms)
		t->first_ms = h->arrived_ms;
	if (h->arrived_ms > t->last_ms)
		t->last_ms = h->arrived_ms;
	t->fold[h->kind][h->cls]++;
	const char *vals[2] = {t->id, (const char *)h->addr};
	const int lens[2] = {0, (int)sizeof(h->addr)};
	const int fmts[2] = {0, 1};
	int64_t added = 0;
	if (pgl_run(c, PGL_FOLD_ADDR, 2, vals, lens, fmts, deadline, fail,
		    "counting a hit's address", err, &added) != 0)
		return -1;
	t->addresses += added > 0;
	return 0;
}

/* Writes one event of an event_new: its fields as jansson gives them or,
 * as the tracker sends them, as the members' text (parsed here so that
 * pg_event_add stays the one place that encodes). */
static int pgl_event_new_add(struct pgconn *c, const struct event_new *ev, int64_t deadline,
			     enum pg_fail *fail, struct selo_err *err)
{
	json_t *parsed;
	const json_t *fields;
	if (pg_event_new_fields(ev, &parsed, &fields) != 0) {
		err_set(err, 422, "invalid-event",
			"store: the %s event of notice %s cannot be encoded (its fields are "
			"not JSON members)", ev->type, ev->notice_id);
		return pgl_refuse(fail);
	}
	int r = pg_event_add(c, ev->notice_id, ev->type, fields, ev->disc, deadline, NULL, fail, err);
	json_decref(parsed);
	return r == 0 ? 0 : -1;
}

struct pgl_hits {
	const struct hit_new *h;
	size_t n;
	const struct fold_rule *rule;
	size_t folded;
	struct pgl_tally *t; /* one per distinct notice, sorted by id */
	size_t nt;
};

static int pgl_tally_cmp(const void *a, const void *b)
{
	return strcmp(((const struct pgl_tally *)a)->id, ((const struct pgl_tally *)b)->id);
}

/* The distinct notices of the hits, sorted: the order their locks are
 * taken in, so two calls never wait on each other in a circle. */
static void pgl_hits_notices(struct pgl_hits *a)
{
	a->t = xcalloc(a->n, sizeof(*a->t));
	for (size_t i = 0; i < a->n; i++)
		a->t[i].id = a->h[i].ev.notice_id;
	qsort(a->t, a->n, sizeof(*a->t), pgl_tally_cmp);
	a->nt = 0;
	for (size_t i = 0; i < a->n; i++)
		if (a->nt == 0 || strcmp(a->t[a->nt - 1].id, a->t[i].id) != 0)
			a->t[a->nt++].id = a->t[i].id;
}

static struct pgl_tally *pgl_hits_tally(struct pgl_hits *a, const char *id)
{
	struct pgl_tally key = {.id = id};
	return bsearch(&key, a->t, a->nt, sizeof(*a->t), pgl_tally_cmp);
}

/* One hit: its event while its (kind, class) has room, else the fold. */
static int pgl_hit_add(struct pgconn *c, struct pgl_hits *a, const struct hit_new *h,
		       int64_t deadline, enum pg_fail *fail, struct selo_err *err)
{
	if (h->kind < 0 || h->kind >= HIT_KINDS || h->cls < 0 || h->cls >= HIT_CLASSES) {
		err_set(err, 500, "internal", "store: a hit of an unknown kind or class");
		return pgl_refuse(fail);
	}
	struct pgl_tally *t = pgl_hits_tally(a, h->ev.notice_id);
	if (t->full[h->kind][h->cls] < a->rule->full_max) {
		t->full[h->kind][h->cls]++;
		return pgl_event_new_add(c, &h->ev, deadline, fail, err);
	}
	a->folded++;
	return pgl_fold_add(c, t, h, a->rule, deadline, fail, err);
}

static int pgl_hits_txn(struct pgconn *c, void *arg, int64_t deadline, enum pg_fail *fail,
			struct selo_err *err)
{
	struct pgl_hits *a = arg;
	a->folded = 0; /* a retried transaction starts over */
	for (size_t i = 0; i < a->nt; i++)
		if (pgl_notice_known(c, a->t[i].id, deadline, fail, err) != 0 ||
		    pgl_tally_lock(c, &a->t[i], deadline, fail, err) != 0)
			return -1;
	for (size_t i = 0; i < a->n; i++)
		if (pgl_hit_add(c, a, &a->h[i], deadline, fail, err) != 0)
			return -1;
	for (size_t i = 0; i < a->nt; i++)
		if (pgl_tally_put(c, &a->t[i], deadline, fail, err) != 0)
			return -1;
	return 0;
}

int pg_hits_add(struct store *s, const struct hit_new *h, size_t n, const struct fold_rule *rule,
		size_t *folded, struct selo_err *err)
{
	if (folded)
		*folded = 0;
	if (n == 0)
		return 0;
	struct pgl_hits a = {.h = h, .n = n, .rule = rule};
	pgl_hits_notices(&a);
	enum pg_fail fail;
	int r = pgstore_txn(pgstore_of(s), pgl_hits_txn, &a, &fail, err);
	free(a.t);
	if (r == 0 && folded)
		*folded = a.folded;
	return r;
}

struct pgl_folds {
	int64_t now_ms;
	size_t max;
	fold_fields_fn fields;
	void *arg;
	size_t closed;
};

/* Writes the summary of one claimed notice's fold and empties it. */
static int pgl_fold_close(struct pgconn *c, struct pgl_folds *a, const char *id,
			  int64_t deadline, enum pg_fail *fail, struct selo_err *err)
{
	struct pgl_tally t = {.id = id};
	int got = pgl_tally_get(c, &t, deadline, fail, err);
	if (got <= 0 || t.due_ms == 0)
		return got < 0 ? -1 : 0;
	struct hit_fold f = {.first_ms = t.first_ms, .last_ms = t.last_ms,
			     .addresses = t.addresses, .summaries = t.summaries};
	snprintf(f.notice_id, sizeof(f.notice_id), "%s", id);
	memcpy(f.hits, t.fold, sizeof(f.hits));
	json_t *fields = a->fields(&f, a->arg);
	if (!fields) {
		err_set(err, 500, "internal", "store: a hit summary cannot be made");
		return pgl_refuse(fail);
	}
	int r = pg_event_add(c, id, EV_TRACKING_SUMMARY, fields, NULL, deadline, NULL, fail, err);
	json_decref(fields);
	if (r != 0)
		return -1;
	t.summaries++;
	t.first_ms = t.last_ms = t.due_ms = t.addresses = 0;
	memset(t.fold, 0, sizeof(t.fold));
	if (pgl_tally_put(c, &t, deadline, fail, err) != 0 ||
	    pgl_run(c, PGL_FOLD_ADDRS_DROP, 1, &id, NULL, NULL, deadline, fail,
		    "forgetting a fold's addresses", err, NULL) != 0)
		return -1;
	a->closed++;
	return 0;
}

static int pgl_folds_txn(struct pgconn *c, void *arg, int64_t deadline, enum pg_fail *fail,
			 struct selo_err *err)
{
	struct pgl_folds *a = arg;
	a->closed = 0;
	struct pg_num now, max;
	const char *vals[2] = {pg_num(&now, a->now_ms), pg_num(&max, (int64_t)a->max)};
	/* Claimed: another node's sweep skips these and takes the next ones. */
	PGresult *r = pgconn_exec(c, (enum pg_stmt)PGL_FOLDS_CLAIM, 2, vals, NULL, NULL, deadline, fail,
				  "claiming hit folds due", err);
	if (!r)
		return -1;
	int rc = 0;
	for (int i = 0; rc == 0 && i < PQntuples(r); i++)
		rc = pgl_fold_close(c, a, PQgetvalue(r, i, 0), deadline, fail, err);
	PQclear(r);
	return rc;
}

/* 1 when a fold is due at now_ms, 0 none, -1 error: one index probe outside
 * a transaction, so a sweep costs next to nothing while none is due. */
static int pgl_folds_due(struct store *s, int64_t now_ms, struct selo_err *err)
{
	struct pg_num now;
	const char *vals[2] = {pg_num(&now, now_ms), "1"};
	PGresult *r = pgl_read(s, PGL_FOLDS_DUE, 2, vals, NULL, NULL, "finding hit folds due", err);
	if (!r)
		return -1;
	int due = PQntuples(r) > 0;
	PQclear(r);
	return due;
}

int pg_folds_close(struct store *s, int64_t now_ms, size_t max, fold_fields_fn fields, void *arg,
		   size_t *closed, struct selo_err *err)
{
	if (closed)
		*closed = 0;
	int due = max ? pgl_folds_due(s, now_ms, err) : 0;
	if (due <= 0)
		return due;
	struct pgl_folds a = {now_ms, max, fields, arg, 0};
	enum pg_fail fail;
	int r = pgstore_txn(pgstore_of(s), pgl_folds_txn, &a, &fail, err);
	if (r == 0 && closed)
		*closed = a.closed;
	return r;
}

/* ---- The log's storage (store.h "Ledger"). */

/* The empty tree's root is SHA-256 of nothing. */
static const uint8_t PGL_EMPTY_ROOT[32] = {
	0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
	0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};

/* The state from a (size, root, last_seq) result; no row: the empty tree. */
static void pgl_state_from(const PGresult *r, struct log_state *out)
{
	memset(out, 0, sizeof(*out));
	memcpy(out->root, PGL_EMPTY_ROOT, 32);
	if (PQntuples(r) != 1)
		return;
	out->size = (uint64_t)pg_col_int(r, 0, 0);
	size_t len = 0;
	char *root = pgl_bytes(r, 0, 1, &len);
	if (len == 32)
		memcpy(out->root, root, 32);
	free(root);
	out->last_seq = pg_col_int(r, 0, 2);
}

int pg_log_state(struct store *s, struct log_state *out, struct selo_err *err)
{
	PGresult *r = pgl_read(s, PGL_STATE_GET, 0, NULL, NULL, NULL, "reading the log state", err);
	if (!r)
		return -1;
	pgl_state_from(r, out);
	PQclear(r);
	return 0;
}

static int pgl_is_zero(const uint8_t *p, size_t n)
{
	uint8_t d = 0;
	for (size_t i = 0; i < n; i++)
		d |= p[i];
	return d == 0;
}

/* The fence: locks the log_state row and checks that the stored tree is
 * the one the append grew from. *cur gets it. */
static int pgl_fence(struct pgconn *c, const struct log_append *a, struct log_state *cur,
		     int64_t deadline, enum pg_fail *fail, struct selo_err *err)
{
	PGresult *r = pgconn_exec(c, (enum pg_stmt)PGL_STATE_LOCK, 0, NULL, NULL, NULL, deadline, fail,
				  "locking the log state", err);
	if (!r)
		return -1;
	int rows = PQntuples(r);
	pgl_state_from(r, cur);
	PQclear(r);
	if (rows != 1) { /* migration 2 makes it: without it nothing can fence */
		*fail = PG_FAILED;
		return err_set(err, 500, "storage-failed", "store: the log_state row is missing");
	}
	if (cur->size != a->first_index ||
	    (!pgl_is_zero(a->old_root, 32) && memcmp(cur->root, a->old_root, 32) != 0)) {
		err_set(err, 409, "log-moved",
			"store: the log is no longer the %llu-entry tree this append grew from "
			"(it has %llu entries): another node integrated; read the state again",
			(unsigned long long)a->first_index, (unsigned long long)cur->size);
		return pgl_refuse(fail);
	}
	return 0;
}

/* Indexes the run of events first_seq .. first_seq + n - 1 as first_index ..
 * after checking that every event of the run exists (409 otherwise). */
static int pgl_run_add(struct pgconn *c, int64_t first_seq, uint64_t first_index, int64_t n,
		       int64_t deadline, enum pg_fail *fail, struct selo_err *err)
{
	struct pg_num p[3];
	const char *span[2] = {pg_num(&p[0], first_seq), pg_num(&p[1], first_seq + n - 1)};
	PGresult *r = pgconn_exec(c, (enum pg_stmt)PGL_RANGE_COUNT, 2, span, NULL, NULL, deadline, fail,
				  "indexing events", err);
	if (!r)
		return -1;
	int64_t have = pg_col_int(r, 0, 0);
	PQclear(r);
	if (have != n) {
		err_set(err, 409, "conflict", "store: events %lld..%lld: %lld of %lld exist",
			(long long)first_seq, (long long)(first_seq + n - 1), (long long)have,
			(long long)n);
		return pgl_refuse(fail);
	}
	struct pg_num count;
	const char *vals[3] = {pg_num(&p[2], (int64_t)first_index), span[0], pg_num(&count, n)};
	return pgl_run(c, PGL_RANGE_ADD, 3, vals, NULL, NULL, deadline, fail, "indexing events", err,
		       NULL);
}

/* The batch's events get their indexes, one log_ranges row per run of
 * consecutive seqs; the seqs rise and start after the last one integrated. */
static int pgl_runs_add(struct pgconn *c, const struct log_append *a, int64_t last_seq,
			int64_t deadline, enum pg_fail *fail, struct selo_err *err)
{
	if (a->n && a->seqs[0] <= last_seq) {
		err_set(err, 409, "conflict", "store: event %lld is already in the log",
			(long long)a->seqs[0]);
		return pgl_refuse(fail);
	}
	size_t start = 0;
	for (size_t i = 1; i <= a->n; i++) {
		if (i < a->n && a->seqs[i] <= a->seqs[i - 1]) {
			err_set(err, 409, "conflict", "store: events to index out of seq order");
			return pgl_refuse(fail);
		}
		if (i < a->n && a->seqs[i] == a->seqs[i - 1] + 1)
			continue;
		if (pgl_run_add(c, a->seqs[start], a->first_index + start, (int64_t)(i - start),
				deadline, fail, err) != 0)
			return -1;
		start = i;
	}
	return 0;
}

/* One tile's parameters for the pipeline. */
struct pgl_tile_params {
	struct pg_num level, index;
	const char *vals[3];
	int lens[3];
};

static const int PGL_TILE_FMTS[3] = {0, 0, 1};
static const int PGL_STATE_FMTS[3] = {0, 1, 0};

/* 0 when every tile's upsert wrote its row; a full tile that holds other
 * bytes wrote none: 409, and the caller rolls everything back. */
static int pgl_tiles_check(const struct log_append *a, PGresult **res, enum pg_fail *fail,
			   struct selo_err *err)
{
	for (size_t i = 0; i < a->ntiles; i++) {
		if (strtoll(PQcmdTuples(res[i]), NULL, 10) == 1)
			continue;
		err_set(err, 409, "log-tile-immutable",
			"store: log tile %d/%llu is full and holds other hashes: a full tile never "
			"changes", a->tiles[i].level, (unsigned long long)a->tiles[i].index);
		return pgl_refuse(fail);
	}
	return 0;
}

/* The tiles and the new state, in one round trip (pipeline mode): a batch
 * writes a few tiles, and the integrator's rate is bounded by round trips. */
static int pgl_tree_write(struct pgconn *c, const struct log_append *a, int64_t last_seq,
			  int64_t deadline, enum pg_fail *fail, struct selo_err *err)
{
	size_t n = a->ntiles + 1;
	struct pgl_tile_params *tp = xcalloc(a->ntiles ? a->ntiles : 1, sizeof(*tp));
	struct pgbatch_item *items = xcalloc(n, sizeof(*items));
	PGresult **res = xcalloc(n, sizeof(*res));
	for (size_t i = 0; i < a->ntiles; i++) {
		const struct log_tile_write *t = &a->tiles[i];
		tp[i].vals[0] = pg_num(&tp[i].level, t->level);
		tp[i].vals[1] = pg_num(&tp[i].index, (int64_t)t->index);
		tp[i].vals[2] = (const char *)t->data;
		tp[i].lens[2] = (int)t->len;
		items[i] = (struct pgbatch_item){(enum pg_stmt)PGL_TILE_SET, 3, tp[i].vals, tp[i].lens,
						 PGL_TILE_FMTS};
	}
	struct pg_num sz, last;
	const char *vals[3] = {pg_num(&sz, (int64_t)(a->first_index + a->n)), (const char *)a->root,
			       pg_num(&last, last_seq)};
	const int lens[3] = {0, 32, 0};
	items[a->ntiles] = (struct pgbatch_item){(enum pg_stmt)PGL_STATE_SET, 3, vals, lens,
						 PGL_STATE_FMTS};
	int r = pgconn_pipeline(c, items, (int)n, res, deadline, fail,
				"writing the log's tiles and state", err);
	if (r == 0)
		r = pgl_tiles_check(a, res, fail, err);
	for (size_t i = 0; i < n; i++)
		PQclear(res[i]);
	free(res);
	free(items);
	free(tp);
	return r;
}

static int pgl_append_txn(struct pgconn *c, void *arg, int64_t deadline, enum pg_fail *fail,
			  struct selo_err *err)
{
	const struct log_append *a = arg;
	struct log_state cur;
	if (pgl_fence(c, a, &cur, deadline, fail, err) != 0 ||
	    pgl_runs_add(c, a, cur.last_seq, deadline, fail, err) != 0)
		return -1;
	return pgl_tree_write(c, a, a->n ? a->seqs[a->n - 1] : cur.last_seq, deadline, fail, err);
}

int pg_log_append(struct store *s, const struct log_append *a, struct selo_err *err)
{
	enum pg_fail fail;
	return pgstore_txn(pgstore_of(s), pgl_append_txn, (void *)a, &fail, err);
}

int pg_log_tile(struct store *s, int level, uint64_t index, struct buf *data, struct selo_err *err)
{
	struct pg_num lv, ix;
	const char *vals[2] = {pg_num(&lv, level), pg_num(&ix, (int64_t)index)};
	PGresult *r = pgl_read(s, PGL_TILE_GET, 2, vals, NULL, NULL, "reading a log tile", err);
	if (!r)
		return -1;
	int found = PQntuples(r) == 1;
	if (found) {
		size_t len = 0;
		char *b = pgl_bytes(r, 0, 0, &len);
		buf_append(data, b, len);
		free(b);
	}
	PQclear(r);
	return found;
}

int pg_log_entries(struct store *s, uint64_t from, size_t max, struct event_rec **out, size_t *n,
		   struct selo_err *err)
{
	*out = NULL;
	*n = 0;
	struct pg_num f, m;
	const char *vals[2] = {pg_num(&f, (int64_t)from),
			       pg_num(&m, max > PGL_READ_MAX ? PGL_READ_MAX : (int64_t)max)};
	PGresult *r = pgl_read(s, PGL_ENTRIES, 2, vals, NULL, NULL, "reading log entries", err);
	if (!r)
		return -1;
	int rows = PQntuples(r);
	*out = rows ? xcalloc((size_t)rows, sizeof(**out)) : NULL;
	for (int i = 0; i < rows; i++) {
		struct event_rec *e = &(*out)[i];
		e->seq = pg_col_int(r, i, 0);
		pg_col_copy(r, i, 1, e->notice_id, sizeof(e->notice_id));
		pg_col_copy(r, i, 2, e->type, sizeof(e->type));
		e->time_ms = pg_col_int(r, i, 3);
		e->entry = pgl_bytes(r, i, 4, &e->len);
		e->log_index = pg_col_int(r, i, 5);
	}
	*n = (size_t)rows;
	PQclear(r);
	return 0;
}

int pg_log_unindexed(struct store *s, int64_t last_seq, int64_t *count, struct selo_err *err)
{
	struct pg_num l;
	const char *vals[1] = {pg_num(&l, last_seq)};
	PGresult *r = pgl_read(s, PGL_UNINDEXED, 1, vals, NULL, NULL,
			       "counting events outside the log", err);
	if (!r)
		return -1;
	*count = pg_col_int(r, 0, 0);
	PQclear(r);
	return 0;
}

/* ---- Checkpoints */

struct pgl_cp {
	uint64_t size;
	const char *note;
	int64_t ms;
};

static int pgl_cp_add_txn(struct pgconn *c, void *arg, int64_t deadline, enum pg_fail *fail,
			  struct selo_err *err)
{
	const struct pgl_cp *a = arg;
	struct pg_num sz, ms;
	const char *vals[3] = {pg_num(&sz, (int64_t)a->size), a->note, pg_num(&ms, a->ms)};
	int64_t added = 0;
	if (pgl_run(c, PGL_CP_ADD, 3, vals, NULL, NULL, deadline, fail, "adding a checkpoint", err,
		    &added) != 0)
		return -1; /* a checkpoint of this size exists: 409 conflict, as SQLite */
	if (added == 1)
		return 0;
	err_set(err, 409, "log-moved",
		"store: no checkpoint of %llu entries: the stored tree has another size",
		(unsigned long long)a->size);
	return pgl_refuse(fail);
}

int pg_checkpoint_add(struct store *s, uint64_t size, const char *note, int64_t created_ms,
		      struct selo_err *err)
{
	struct pgl_cp a = {size, note, created_ms};
	enum pg_fail fail;
	return pgstore_txn(pgstore_of(s), pgl_cp_add_txn, &a, &fail, err);
}

struct pgl_tst {
	uint64_t size;
	const uint8_t *tst;
	size_t len;
	int64_t ms;
};

static int pgl_cp_tst_txn(struct pgconn *c, void *arg, int64_t deadline, enum pg_fail *fail,
			  struct selo_err *err)
{
	const struct pgl_tst *a = arg;
	struct pg_num sz, ms;
	const char *vals[3] = {pg_num(&sz, (int64_t)a->size), (const char *)a->tst,
			       pg_num(&ms, a->ms)};
	const int lens[3] = {0, (int)a->len, 0};
	const int fmts[3] = {0, 1, 0};
	return pgl_run(c, PGL_CP_TST, 3, vals, lens, fmts, deadline, fail,
		       "storing a checkpoint timestamp", err, NULL);
}

int pg_checkpoint_timestamp(struct store *s, uint64_t size, const uint8_t *tst, size_t len,
			    int64_t tst_time_ms, struct selo_err *err)
{
	struct pgl_tst a = {size, tst, len, tst_time_ms};
	enum pg_fail fail;
	return pgstore_txn(pgstore_of(s), pgl_cp_tst_txn, &a, &fail, err);
}

static void pgl_cp_from_row(const PGresult *r, int i, struct checkpoint_rec *cp)
{
	memset(cp, 0, sizeof(*cp));
	cp->size = (uint64_t)pg_col_int(r, i, 0);
	cp->note = xstrdup(PQgetvalue(r, i, 1));
	cp->created_ms = pg_col_int(r, i, 2);
	if (!PQgetisnull(r, i, 3))
		cp->tst = (uint8_t *)pgl_bytes(r, i, 3, &cp->tst_len);
	cp->tst_time_ms = pg_col_int(r, i, 4);
}

/* Runs a checkpoint query with at most one integer parameter. */
static int pgl_cp_query(struct store *s, int st, const int64_t *p1, struct checkpoint_rec **out,
			size_t *n, struct selo_err *err)
{
	*out = NULL;
	*n = 0;
	struct pg_num v;
	const char *vals[1] = {p1 ? pg_num(&v, *p1) : NULL};
	PGresult *r = pgl_read(s, st, p1 ? 1 : 0, vals, NULL, NULL, "reading checkpoints", err);
	if (!r)
		return -1;
	int rows = PQntuples(r);
	*out = rows ? xcalloc((size_t)rows, sizeof(**out)) : NULL;
	for (int i = 0; i < rows; i++)
		pgl_cp_from_row(r, i, &(*out)[i]);
	*n = (size_t)rows;
	PQclear(r);
	return 0;
}

int pg_checkpoint_find(struct store *s, uint64_t min_size, int timestamped,
		       struct checkpoint_rec *out, struct selo_err *err)
{
	struct checkpoint_rec *rows;
	size_t n;
	int64_t min = (int64_t)min_size;
	if (pgl_cp_query(s, timestamped ? PGL_CP_FIND_TST : PGL_CP_FIND, &min, &rows, &n, err) != 0)
		return -1;
	if (n == 0)
		return 0;
	*out = rows[0];
	free(rows);
	return 1;
}

int pg_checkpoints_untimestamped(struct store *s, size_t max, struct checkpoint_rec **out,
				 size_t *n, struct selo_err *err)
{
	int64_t lim = (int64_t)(max ? max : 1);
	return pgl_cp_query(s, PGL_CP_UNTIMESTAMPED, &lim, out, n, err);
}

int pg_checkpoints_all(struct store *s, struct checkpoint_rec **out, size_t *n,
		       struct selo_err *err)
{
	return pgl_cp_query(s, PGL_CP_ALL, NULL, out, n, err);
}
