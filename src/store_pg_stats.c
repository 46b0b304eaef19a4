/* store_pg_stats.c: the PostgreSQL backend's statistics (store.h
 * "Statistics", docs/stats.md, docs/scale.md "store_pg_stats.c"), with
 * SQLite's contracts (store_sqlite_stats.c): the follower's events after
 * its cursor, per-notice facts, dims, rollups with their delay samples,
 * and the scans `selo stats` and the API read.
 *
 * Reads that must agree (the cursor and the events, a batch of facts, a
 * scan) run in one REPEATABLE READ READ ONLY transaction: one snapshot, as
 * SQLite's read transaction. Look-ups of many rows are sent in pipeline
 * mode (one round trip). stats_apply locks the cursor row (FOR UPDATE)
 * before it compares it: a second follower (the lead runs one per cluster,
 * above the store) waits, then finds the cursor moved and gets the 409,
 * with nothing written. Errors as in store_pg.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "selo/buf.h"
#include "selo/store.h"
#include "store_pg_int.h"

enum {
	PGS_CURSOR = PG_S_STATS_BASE,
	PGS_EVENTS,
	PGS_FACT_GET,
	PGS_INFO,
	PGS_DIM_ADD,
	PGS_DIM_ID,
	PGS_CURSOR_LOCK,
	PGS_CURSOR_INIT,
	PGS_CURSOR_SET,
	PGS_FACT_SET,
	PGS_ROLLUP_ADD,
	PGS_CHUNK_LAST,
	PGS_CHUNK_SET,
	PGS_CHUNK_ADD,
	PGS_DIMS,
	PGS_ROLLUPS,
	PGS_DELAYS,
	PGS_FACTS,
	PGS_CURSOR_TIME,
	PGS_END
};
_Static_assert((int)PGS_END <= (int)PG_S_COUNT, "store_pg_stats.c's ids fit in its range");

#define PGS_CHUNK_MAX 1024 /* delay samples per stats_delays row: bounds a row's rewrite */
#define PGS_COLS                                                                           \
	"accepted,delivered,deferred,failed,canceled,opened_human,opened_proxy,"            \
	"opened_scanner,clicked_human,clicked_proxy,clicked_scanner,read_confirmed,"        \
	"open_hits_human,open_hits_proxy,open_hits_scanner,click_hits_human,"               \
	"click_hits_proxy,click_hits_scanner"
#define PGS_FACT_COLS                                                                      \
	"notice_id,apikey_id,dim,day,flags,accepted_ms,delivered_ms,open_ms,read_ms,"        \
	"open_hits_human,open_hits_proxy,open_hits_scanner,click_hits_human,"               \
	"click_hits_proxy,click_hits_scanner"
#define PGS_ADD(c) c " = stats_rollup." c " + EXCLUDED." c
#define PGS_SET(c) c " = EXCLUDED." c

#define PGS_SQL(id) [(id) - PG_S_STATS_BASE]
static const char *const pg_stats_sql_text[PGS_END - PG_S_STATS_BASE] = {
	PGS_SQL(PGS_CURSOR) = "SELECT coalesce((SELECT seq FROM stats_cursor WHERE id = 1), 0),"
			      " coalesce((SELECT max(seq) FROM events), 0)",
	/* Safe past a cursor: events get their seq in commit order (the event
	 * clock, store_pg.c), so no row with a smaller seq commits later. */
	PGS_SQL(PGS_EVENTS) = "SELECT seq, notice_id, type, time_ms, entry FROM events"
			      " WHERE seq > $1 ORDER BY seq LIMIT $2",
	PGS_SQL(PGS_FACT_GET) = "SELECT " PGS_FACT_COLS " FROM stats_notices WHERE notice_id = $1",
	PGS_SQL(PGS_INFO) = "SELECT apikey_id, template, segment, tags_json FROM notices WHERE id = $1",
	PGS_SQL(PGS_DIM_ADD) = "INSERT INTO stats_dims(dkey, apikey_id, template, segment, tags_json)"
			       " VALUES($1, $2, $3, $4, $5) ON CONFLICT (dkey) DO NOTHING",
	PGS_SQL(PGS_DIM_ID) = "SELECT id FROM stats_dims WHERE dkey = $1",
	PGS_SQL(PGS_CURSOR_LOCK) = "SELECT seq FROM stats_cursor WHERE id = 1 FOR UPDATE",
	PGS_SQL(PGS_CURSOR_INIT) =
		"INSERT INTO stats_cursor(id, seq) VALUES(1, 0) ON CONFLICT (id) DO NOTHING",
	PGS_SQL(PGS_CURSOR_SET) = "UPDATE stats_cursor SET seq = $1 WHERE id = 1",
	/* Written whole (SQLite's INSERT OR REPLACE). */
	PGS_SQL(PGS_FACT_SET) =
		"INSERT INTO stats_notices(" PGS_FACT_COLS ") VALUES($1, $2, $3, $4, $5, $6, $7,"
		" $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT (notice_id) DO UPDATE SET "
		PGS_SET("apikey_id") "," PGS_SET("dim") "," PGS_SET("day") "," PGS_SET("flags") ","
		PGS_SET("accepted_ms") "," PGS_SET("delivered_ms") "," PGS_SET("open_ms") ","
		PGS_SET("read_ms") "," PGS_SET("open_hits_human") "," PGS_SET("open_hits_proxy") ","
		PGS_SET("open_hits_scanner") "," PGS_SET("click_hits_human") ","
		PGS_SET("click_hits_proxy") "," PGS_SET("click_hits_scanner"),
	PGS_SQL(PGS_ROLLUP_ADD) =
		"INSERT INTO stats_rollup(dim, day, " PGS_COLS ") VALUES($1, $2, $3, $4, $5, $6, $7,"
		" $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
		" ON CONFLICT (dim, day) DO UPDATE SET "
		PGS_ADD("accepted") "," PGS_ADD("delivered") "," PGS_ADD("deferred") ","
		PGS_ADD("failed") "," PGS_ADD("canceled") "," PGS_ADD("opened_human") ","
		PGS_ADD("opened_proxy") "," PGS_ADD("opened_scanner") "," PGS_ADD("clicked_human") ","
		PGS_ADD("clicked_proxy") "," PGS_ADD("clicked_scanner") "," PGS_ADD("read_confirmed") ","
		PGS_ADD("open_hits_human") "," PGS_ADD("open_hits_proxy") ","
		PGS_ADD("open_hits_scanner") "," PGS_ADD("click_hits_human") ","
		PGS_ADD("click_hits_proxy") "," PGS_ADD("click_hits_scanner"),
	PGS_SQL(PGS_CHUNK_LAST) = "SELECT id, chunk, vals FROM stats_delays WHERE dim = $1 AND day = $2"
				  " AND kind = $3 ORDER BY chunk DESC LIMIT 1",
	PGS_SQL(PGS_CHUNK_SET) = "UPDATE stats_delays SET vals = $2 WHERE id = $1",
	PGS_SQL(PGS_CHUNK_ADD) = "INSERT INTO stats_delays(dim, day, kind, chunk, vals)"
				 " VALUES($1, $2, $3, $4, $5) RETURNING id",
	PGS_SQL(PGS_DIMS) = "SELECT id, apikey_id, template, segment, tags_json FROM stats_dims"
			    " WHERE $1::bigint < 0 OR apikey_id = $1::bigint ORDER BY id",
	PGS_SQL(PGS_ROLLUPS) = "SELECT r.dim, r.day, " PGS_COLS " FROM stats_dims d JOIN stats_rollup r"
			       " ON r.dim = d.id AND r.day BETWEEN $2 AND $3 WHERE d.apikey_id = $1",
	PGS_SQL(PGS_DELAYS) = "SELECT x.dim, x.day, x.kind, x.vals FROM stats_dims d JOIN stats_delays x"
			      " ON x.dim = d.id AND x.day BETWEEN $2 AND $3 WHERE d.apikey_id = $1",
	PGS_SQL(PGS_FACTS) = "SELECT " PGS_FACT_COLS " FROM stats_notices"
			     " WHERE apikey_id = $1 AND accepted_ms >= $2 AND accepted_ms < $3",
	PGS_SQL(PGS_CURSOR_TIME) = "SELECT coalesce((SELECT time_ms FROM events WHERE seq = $1), 0)",
};
const struct pg_sql_table pg_sql_stats = {pg_stats_sql_text, PGS_END - PG_S_STATS_BASE};

/* ---- Values in and out, and the snapshot */

static const char *pgs_col_or_null(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

/* A bytea column (hex text) decoded; the caller PQfreemem's it. */
static unsigned char *pgs_col_bytes(const PGresult *r, int row, int col, size_t *len)
{
	*len = 0;
	if (PQgetisnull(r, row, col))
		return NULL;
	unsigned char *p = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), len);
	if (!p)
		abort(); /* out of memory: buf.h's policy */
	return p;
}

static PGresult *pgs_exec(struct pgconn *c, int st, int n, const char *const *vals,
			  const int *lens, const int *fmts, int64_t deadline, enum pg_fail *fail,
			  const char *doing, struct selo_err *err)
{
	return pgconn_exec(c, (enum pg_stmt)st, n, vals, lens, fmts, deadline, fail, doing, err);
}

/* The first statement of a read transaction: one snapshot, no writes. */
static int pgs_snapshot(struct pgconn *c, int64_t deadline, enum pg_fail *fail,
			struct selo_err *err)
{
	return pgconn_simple(c, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
			     deadline, fail, "starting a statistics read", err);
}

/* ---- The follower's reads */

struct pgs_events_arg {
	size_t max;
	int64_t cursor, last;
	PGresult *rows;
};

static int pgs_cursor_read(struct pgconn *c, int64_t deadline, int64_t *cursor, int64_t *last,
			   enum pg_fail *fail, struct selo_err *err)
{
	PGresult *r = pgs_exec(c, PGS_CURSOR, 0, NULL, NULL, NULL, deadline, fail,
			       "reading the statistics cursor", err);
	if (!r)
		return -1;
	*cursor = pg_col_int(r, 0, 0);
	*last = pg_col_int(r, 0, 1);
	PQclear(r);
	return 0;
}

static int pgs_events_txn(struct pgconn *c, void *arg, int64_t deadline, enum pg_fail *fail,
			  struct selo_err *err)
{
	struct pgs_events_arg *a = arg;
	PQclear(a->rows);
	a->rows = NULL;
	if (pgs_snapshot(c, deadline, fail, err) != 0 ||
	    pgs_cursor_read(c, deadline, &a->cursor, &a->last, fail, err) != 0)
		return -1;
	struct pg_num cur, max;
	const char *vals[2] = {pg_num(&cur, a->cursor), pg_num(&max, (int64_t)a->max)};
	a->rows = pgs_exec(c, PGS_EVENTS, 2, vals, NULL, NULL, deadline, fail,
			   "reading events for the statistics", err);
	return a->rows ? 0 : -1;
}

/* fn runs after the snapshot's transaction ended: no connection is held
 * while the follower works. */
int pg_stats_events(struct store *s, size_t max, int (*fn)(void *arg, const struct stats_event *e),
		    void *arg, int64_t *cursor, int64_t *last, struct selo_err *err)
{
	*cursor = *last = 0;
	struct pgs_events_arg a = {.max = max};
	enum pg_fail fail;
	if (pgstore_txn(pgstore_of(s), pgs_events_txn, &a, &fail, err) != 0) {
		PQclear(a.rows);
		return -1;
	}
	*cursor = a.cursor;
	*last = a.last;
	struct stats_event e;
	for (int i = 0; i < PQntuples(a.rows); i++) {
		memset(&e, 0, sizeof(e));
		e.seq = pg_col_int(a.rows, i, 0);
		pg_col_copy(a.rows, i, 1, e.notice_id, sizeof(e.notice_id));
		pg_col_copy(a.rows, i, 2, e.type, sizeof(e.type));
		e.time_ms = pg_col_int(a.rows, i, 3);
		unsigned char *entry = pgs_col_bytes(a.rows, i, 4, &e.entry_len);
		e.entry = (const char *)entry;
		int stop = fn(arg, &e) != 0;
		PQfreemem(entry);
		if (stop)
			break;
	}
	PQclear(a.rows);
	return 0;
}

/* n look-ups of one statement by one text key, in one snapshot and one
 * round trip: rows[i] for keys[i], each for the caller to PQclear. */
struct pgs_lookup_arg {
	int st;
	const char *const *keys;
	size_t n;
	PGresult **rows;
	const char *doing;
};

static void pgs_rows_clear(PGresult **rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		PQclear(rows[i]);
		rows[i] = NULL;
	}
}

static int pgs_lookup_txn(struct pgconn *c, void *arg, int64_t deadline, enum pg_fail *fail,
			  struct selo_err *err)
{
	struct pgs_lookup_arg *a = arg;
	pgs_rows_clear(a->rows, a->n);
	if (pgs_snapshot(c, deadline, fail, err) != 0)
		return -1;
	struct pgbatch_item *items = xcalloc(a->n, sizeof(*items));
	for (size_t i = 0; i < a->n; i++)
		items[i] = (struct pgbatch_item){(enum pg_stmt)a->st, 1, &a->keys[i], NULL, NULL};
	int r = pgconn_pipeline(c, items, (int)a->n, a->rows, deadline, fail, a->doing, err);
	free(items);
	return r;
}

static int pgs_lookup(struct store *s, struct pgs_lookup_arg *a, struct selo_err *err)
{
	a->rows = xcalloc(a->n ? a->n : 1, sizeof(*a->rows));
	if (a->n == 0)
		return 0;
	enum pg_fail fail;
	if (pgstore_txn(pgstore_of(s), pgs_lookup_txn, a, &fail, err) != 0) {
		pgs_rows_clear(a->rows, a->n);
		free(a->rows);
		a->rows = NULL;
		return -1;
	}
	return 0;
}

static void pgs_fact_from_row(const PGresult *r, int row, struct stats_fact *f)
{
	pg_col_copy(r, row, 0, f->notice_id, sizeof(f->notice_id));
	f->apikey_id = pg_col_int(r, row, 1);
	f->dim = pg_col_int(r, row, 2);
	f->day = (int32_t)pg_col_int(r, row, 3);
	f->flags = (uint32_t)pg_col_int(r, row, 4);
	f->accepted_ms = pg_col_int(r, row, 5);
	f->delivered_ms = pg_col_int(r, row, 6);
	f->open_ms = pg_col_int(r, row, 7);
	f->read_ms = pg_col_int(r, row, 8);
	for (int k = 0; k < STATS_NHITS; k++)
		f->hits[k] = pg_col_int(r, row, 9 + k);
}

int pg_stats_facts_get(struct store *s, struct stats_fact *f, size_t n, int *found,
		       struct selo_err *err)
{
	const char **keys = xcalloc(n ? n : 1, sizeof(*keys));
	for (size_t i = 0; i < n; i++) {
		keys[i] = f[i].notice_id;
		found[i] = 0;
	}
	struct pgs_lookup_arg a = {PGS_FACT_GET, keys, n, NULL, "reading statistics facts"};
	int r = pgs_lookup(s, &a, err);
	for (size_t i = 0; r == 0 && i < n; i++) {
		if (PQntuples(a.rows[i]) == 1) {
			pgs_fact_from_row(a.rows[i], 0, &f[i]);
			found[i] = 1;
		}
	}
	if (a.rows)
		pgs_rows_clear(a.rows, n);
	free(a.rows);
	free(keys);
	return r;
}

static char *pgs_text_dup(const PGresult *r, int row, int col)
{
	const char *v = pgs_col_or_null(r, row, col);
	return v ? xstrdup(v) : NULL;
}

int pg_stats_notice_info(struct store *s, const char *const *ids, size_t n,
			 struct stats_notice_info *out, int *found, struct selo_err *err)
{
	for (size_t i = 0; i < n; i++) {
		memset(&out[i], 0, sizeof(out[i]));
		found[i] = 0;
	}
	struct pgs_lookup_arg a = {PGS_INFO, ids, n, NULL, "reading a notice for the statistics"};
	int r = pgs_lookup(s, &a, err);
	for (size_t i = 0; r == 0 && i < n; i++) {
		if (PQntuples(a.rows[i]) != 1)
			continue;
		out[i].apikey_id = pg_col_int(a.rows[i], 0, 0);
		out[i].template_name = pgs_text_dup(a.rows[i], 0, 1);
		out[i].segment = pgs_text_dup(a.rows[i], 0, 2);
		out[i].tags_json = pgs_text_dup(a.rows[i], 0, 3);
		found[i] = 1;
	}
	if (a.rows)
		pgs_rows_clear(a.rows, n);
	free(a.rows);
	return r;
}

/* ---- Writes */

struct pgs_dim_arg {
	const char *dkey, *template_name, *segment, *tags_json;
	int64_t apikey_id, id;
};

/* Two statements: the SELECT's own snapshot (read committed) sees a row
 * another node inserted first, which the INSERT's ON CONFLICT skipped. */
static int pgs_dim_txn(struct pgconn *c, void *arg, int64_t deadline, enum pg_fail *fail,
		       struct selo_err *err)
{
	struct pgs_dim_arg *a = arg;
	struct pg_num key;
	const char *vals[5] = {a->dkey, pg_num(&key, a->apikey_id), a->template_name, a->segment,
			       a->tags_json};
	PGresult *r = pgs_exec(c, PGS_DIM_ADD, 5, vals, NULL, NULL, deadline, fail,
			       "storing a statistics dimension", err);
	if (!r)
		return -1;
	PQclear(r);
	r = pgs_exec(c, PGS_DIM_ID, 1, vals, NULL, NULL, deadline, fail,
		     "storing a statistics dimension", err);
	if (!r)
		return -1;
	int ok = PQntuples(r) == 1;
	if (ok)
		a->id = pg_col_int(r, 0, 0);
	PQclear(r);
	if (!ok) {
		*fail = PG_FAILED;
		return err_set(err, 500, "storage-failed", "store: a statistics dimension vanished");
	}
	return 0;
}

int pg_stats_dim(struct store *s, const char *dkey, int64_t apikey_id, const char *template_name,
		 const char *segment, const char *tags_json, int64_t *id, struct selo_err *err)
{
	struct pgs_dim_arg a = {dkey, template_name, segment, tags_json, apikey_id, 0};
	enum pg_fail fail;
	if (pgstore_txn(pgstore_of(s), pgs_dim_txn, &a, &fail, err) != 0)
		return -1;
	*id = a.id;
	return 0;
}

static void le64_put(uint8_t *p, int64_t v)
{
	uint64_t u = (uint64_t)v;
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(u >> (8 * i));
}

static int64_t le64_get(const uint8_t *p)
{
	uint64_t u = 0;
	for (int i = 0; i < 8; i++)
		u |= (uint64_t)p[i] << (8 * i);
	return (int64_t)u;
}

/* Locks the cursor row for the transaction and reads it; the row is made
 * the first time. */
static int pgs_cursor_lock(struct pgconn *c, int64_t deadline, int64_t *cursor,
			   enum pg_fail *fail, struct selo_err *err)
{
	for (int pass = 0; pass < 2; pass++) {
		PGresult *r = pgs_exec(c, PGS_CURSOR_LOCK, 0, NULL, NULL, NULL, deadline, fail,
				       "locking the statistics cursor", err);
		if (!r)
			return -1;
		int have = PQntuples(r) == 1;
		if (have)
			*cursor = pg_col_int(r, 0, 0);
		PQclear(r);
		if (have)
			return 0;
		r = pgs_exec(c, PGS_CURSOR_INIT, 0, NULL, NULL, NULL, deadline, fail,
			     "making the statistics cursor", err);
		if (!r)
			return -1;
		PQclear(r);
	}
	*fail = PG_FAILED;
	return err_set(err, 500, "storage-failed", "store: the statistics cursor row is missing");
}

/* The last chunk of (dim, day, kind): its id (0: none), number and samples
 * (into buf, *have of them). */
static int pgs_chunk_last(struct pgconn *c, const char *const *key, int64_t deadline,
			  int64_t *row, int64_t *chunk, uint8_t *buf, size_t *have,
			  enum pg_fail *fail, struct selo_err *err)
{
	PGresult *r = pgs_exec(c, PGS_CHUNK_LAST, 3, key, NULL, NULL, deadline, fail,
			       "reading delay samples", err);
	if (!r)
		return -1;
	*row = 0, *chunk = -1, *have = 0;
	if (PQntuples(r) == 1) {
		*row = pg_col_int(r, 0, 0);
		*chunk = pg_col_int(r, 0, 1);
		size_t len = 0;
		unsigned char *v = pgs_col_bytes(r, 0, 2, &len);
		*have = len / 8 <= PGS_CHUNK_MAX ? len / 8 : PGS_CHUNK_MAX;
		if (*have)
			memcpy(buf, v, *have * 8);
		PQfreemem(v);
	}
	PQclear(r);
	return 0;
}

/* Writes buf as chunk row (row 0: a new chunk, whose id *row gets). */
static int pgs_chunk_write(struct pgconn *c, const char *const *key, int64_t *row, int64_t chunk,
			   const uint8_t *buf, size_t have, int64_t deadline, enum pg_fail *fail,
			   struct selo_err *err)
{
	struct pg_num rs, cs;
	PGresult *r;
	if (*row) {
		const char *vals[2] = {pg_num(&rs, *row), (const char *)buf};
		const int lens[2] = {0, (int)(have * 8)}, fmts[2] = {0, 1};
		r = pgs_exec(c, PGS_CHUNK_SET, 2, vals, lens, fmts, deadline, fail,
			     "storing delay samples", err);
	} else {
		const char *vals[5] = {key[0], key[1], key[2], pg_num(&cs, chunk), (const char *)buf};
		const int lens[5] = {0, 0, 0, 0, (int)(have * 8)}, fmts[5] = {0, 0, 0, 0, 1};
		r = pgs_exec(c, PGS_CHUNK_ADD, 5, vals, lens, fmts, deadline, fail,
			     "storing delay samples", err);
		if (r && PQntuples(r) == 1)
			*row = pg_col_int(r, 0, 0);
	}
	if (!r)
		return -1;
	PQclear(r);
	return 0;
}

/* Appends the delta's samples of kind: fills the last chunk, then adds new
 * ones (as SQLite). */
static int pgs_delays_add(struct pgconn *c, const struct stats_delta *d, int kind,
			  int64_t deadline, enum pg_fail *fail, struct selo_err *err)
{
	const int64_t *v = d->delays[kind];
	size_t n = d->ndelays[kind], have = 0;
	int64_t row = 0, chunk = -1;
	struct pg_num dim, day, k;
	const char *key[3] = {pg_num(&dim, d->dim), pg_num(&day, d->day), pg_num(&k, kind)};
	uint8_t *buf = xcalloc(PGS_CHUNK_MAX, 8);
	int r = pgs_chunk_last(c, key, deadline, &row, &chunk, buf, &have, fail, err);
	while (r == 0 && n > 0) {
		if (have == PGS_CHUNK_MAX || chunk < 0) {
			row = 0; /* a new chunk */
			chunk++;
			have = 0;
		}
		size_t take = PGS_CHUNK_MAX - have < n ? PGS_CHUNK_MAX - have : n;
		for (size_t i = 0; i < take; i++)
			le64_put(buf + 8 * (have + i), v[i]);
		have += take, v += take, n -= take;
		r = pgs_chunk_write(c, key, &row, chunk, buf, have, deadline, fail, err);
	}
	free(buf);
	return r;
}

/* Sends n statements at once; the results only count. */
static int pgs_batch(struct pgconn *c, const struct pgbatch_item *items, size_t n,
		     int64_t deadline, enum pg_fail *fail, const char *doing, struct selo_err *err)
{
	if (n == 0)
		return 0;
	PGresult **res = xcalloc(n, sizeof(*res));
	int r = pgconn_pipeline(c, items, (int)n, res, deadline, fail, doing, err);
	pgs_rows_clear(res, n);
	free(res);
	return r;
}

#define PGS_FACT_NUMS 14 /* parameters of a fact after its notice_id */

static int pgs_facts_write(struct pgconn *c, const struct stats_batch *b, int64_t deadline,
			   enum pg_fail *fail, struct selo_err *err)
{
	size_t n = b->nfacts;
	struct pg_num *num = xcalloc(n ? n * PGS_FACT_NUMS : 1, sizeof(*num));
	const char **vals = xcalloc(n ? n * (PGS_FACT_NUMS + 1) : 1, sizeof(*vals));
	struct pgbatch_item *items = xcalloc(n ? n : 1, sizeof(*items));
	for (size_t i = 0; i < n; i++) {
		const struct stats_fact *f = &b->facts[i];
		const int64_t x[PGS_FACT_NUMS] = {
			f->apikey_id, f->dim, f->day, f->flags, f->accepted_ms, f->delivered_ms,
			f->open_ms, f->read_ms, f->hits[0], f->hits[1], f->hits[2], f->hits[3],
			f->hits[4], f->hits[5]};
		const char **v = &vals[i * (PGS_FACT_NUMS + 1)];
		v[0] = f->notice_id;
		for (int k = 0; k < PGS_FACT_NUMS; k++)
			v[1 + k] = pg_num(&num[i * PGS_FACT_NUMS + (size_t)k], x[k]);
		items[i] = (struct pgbatch_item){(enum pg_stmt)PGS_FACT_SET, PGS_FACT_NUMS + 1, v,
						 NULL, NULL};
	}
	int r = pgs_batch(c, items, n, deadline, fail, "storing statistics facts", err);
	free(items);
	free(vals);
	free(num);
	return r;
}

_Static_assert(STATS_NHITS == 6, "a fact has six hit counts");

static int pgs_rollups_write(struct pgconn *c, const struct stats_batch *b, int64_t deadline,
			     enum pg_fail *fail, struct selo_err *err)
{
	enum { W = 2 + SC_COUNT };
	size_t n = b->ndeltas;
	struct pg_num *num = xcalloc(n ? n * W : 1, sizeof(*num));
	const char **vals = xcalloc(n ? n * W : 1, sizeof(*vals));
	struct pgbatch_item *items = xcalloc(n ? n : 1, sizeof(*items));
	for (size_t i = 0; i < n; i++) {
		const struct stats_delta *d = &b->deltas[i];
		const char **v = &vals[i * W];
		struct pg_num *x = &num[i * W];
		v[0] = pg_num(&x[0], d->dim);
		v[1] = pg_num(&x[1], d->day);
		for (int k = 0; k < SC_COUNT; k++)
			v[2 + k] = pg_num(&x[2 + k], d->c[k]);
		items[i] = (struct pgbatch_item){(enum pg_stmt)PGS_ROLLUP_ADD, W, v, NULL, NULL};
	}
	int r = pgs_batch(c, items, n, deadline, fail, "storing statistics rollups", err);
	free(items);
	free(vals);
	free(num);
	return r;
}

static int pgs_apply_txn(struct pgconn *c, void *arg, int64_t deadline, enum pg_fail *fail,
			 struct selo_err *err)
{
	const struct stats_batch *b = arg;
	int64_t cursor = 0;
	if (pgs_cursor_lock(c, deadline, &cursor, fail, err) != 0)
		return -1;
	if (cursor != b->cursor_from) {
		*fail = PG_FAILED;
		return err_set(err, 409, "stats-cursor-moved",
			       "store: the statistics cursor moved (another process counted these "
			       "events)");
	}
	if (pgs_facts_write(c, b, deadline, fail, err) != 0 ||
	    pgs_rollups_write(c, b, deadline, fail, err) != 0)
		return -1;
	for (size_t i = 0; i < b->ndeltas; i++)
		for (int k = 0; k < SD_COUNT; k++)
			if (b->deltas[i].ndelays[k] &&
			    pgs_delays_add(c, &b->deltas[i], k, deadline, fail, err) != 0)
				return -1;
	struct pg_num to;
	const char *vals[1] = {pg_num(&to, b->cursor_to)};
	PGresult *r = pgs_exec(c, PGS_CURSOR_SET, 1, vals, NULL, NULL, deadline, fail,
			       "moving the statistics cursor", err);
	if (!r)
		return -1;
	PQclear(r);
	return 0;
}

int pg_stats_apply(struct store *s, const struct stats_batch *b, struct selo_err *err)
{
	enum pg_fail fail;
	return pgstore_txn(pgstore_of(s), pgs_apply_txn, (void *)b, &fail, err);
}

/* ---- The scan: one snapshot; callbacks run inside it (they only count). */

struct pgs_scan_ctx {
	struct pgconn *c;
	int64_t deadline;
	enum pg_fail *fail;
	struct selo_err *err;
};

static int pgs_scan_rollups(struct pgs_scan_ctx *x, struct stats_scan *q, const char *const *k3)
{
	PGresult *r = pgs_exec(x->c, PGS_ROLLUPS, 3, k3, NULL, NULL, x->deadline, x->fail,
			       "reading statistics rollups", x->err);
	if (!r)
		return -1;
	int64_t cnt[SC_COUNT];
	for (int i = 0; i < PQntuples(r); i++) {
		for (int k = 0; k < SC_COUNT; k++)
			cnt[k] = pg_col_int(r, i, 2 + k);
		q->rollup(q->arg, pg_col_int(r, i, 0), (int32_t)pg_col_int(r, i, 1), cnt);
	}
	PQclear(r);
	return 0;
}

static int pgs_scan_delays(struct pgs_scan_ctx *x, struct stats_scan *q, const char *const *k3)
{
	PGresult *r = pgs_exec(x->c, PGS_DELAYS, 3, k3, NULL, NULL, x->deadline, x->fail,
			       "reading statistics delays", x->err);
	if (!r)
		return -1;
	int64_t *v = xcalloc(PGS_CHUNK_MAX, sizeof(*v));
	for (int i = 0; i < PQntuples(r); i++) {
		size_t len = 0;
		unsigned char *p = pgs_col_bytes(r, i, 3, &len);
		size_t n = len / 8;
		int kind = (int)pg_col_int(r, i, 2);
		if (n <= PGS_CHUNK_MAX && kind >= 0 && kind < SD_COUNT) { /* else not ours */
			for (size_t j = 0; j < n; j++)
				v[j] = le64_get(p + 8 * j);
			q->delays(q->arg, pg_col_int(r, i, 0), (int32_t)pg_col_int(r, i, 1), kind, v,
				  n);
		}
		PQfreemem(p);
	}
	free(v);
	PQclear(r);
	return 0;
}

static int pgs_scan_facts(struct pgs_scan_ctx *x, struct stats_scan *q, const char *key)
{
	struct stats_fact f;
	for (int i = 0; i < q->nranges; i++) {
		struct pg_num from, to;
		const char *vals[3] = {key, pg_num(&from, q->ms_from[i]), pg_num(&to, q->ms_to[i])};
		PGresult *r = pgs_exec(x->c, PGS_FACTS, 3, vals, NULL, NULL, x->deadline, x->fail,
				       "reading statistics facts", x->err);
		if (!r)
			return -1;
		for (int j = 0; j < PQntuples(r); j++) {
			memset(&f, 0, sizeof(f));
			pgs_fact_from_row(r, j, &f);
			q->fact(q->arg, &f);
		}
		PQclear(r);
	}
	return 0;
}

/* The scan's rows of one key. */
static int pgs_scan_key(struct pgs_scan_ctx *x, struct stats_scan *q, int64_t key)
{
	struct pg_num k, from, to;
	const char *k3[3] = {pg_num(&k, key), pg_num(&from, q->day_from), pg_num(&to, q->day_to)};
	if (q->day_from <= q->day_to &&
	    (pgs_scan_rollups(x, q, k3) != 0 || pgs_scan_delays(x, q, k3) != 0))
		return -1;
	return pgs_scan_facts(x, q, k3[0]);
}

/* The dims, handed over; *keys gets their distinct keys in order of first
 * appearance (as SQLite's scan). */
static int pgs_scan_dims(struct pgs_scan_ctx *x, struct stats_scan *q, int64_t **keys,
			 size_t *nkeys)
{
	struct pg_num key;
	const char *vals[1] = {pg_num(&key, q->apikey_id)};
	PGresult *r = pgs_exec(x->c, PGS_DIMS, 1, vals, NULL, NULL, x->deadline, x->fail,
			       "reading statistics dimensions", x->err);
	if (!r)
		return -1;
	int rows = PQntuples(r);
	*keys = xcalloc(rows ? (size_t)rows : 1, sizeof(**keys));
	*nkeys = 0;
	struct stats_dim d;
	for (int i = 0; i < rows; i++) {
		d.id = pg_col_int(r, i, 0);
		d.apikey_id = pg_col_int(r, i, 1);
		d.template_name = pgs_col_or_null(r, i, 2);
		d.segment = pgs_col_or_null(r, i, 3);
		d.tags_json = pgs_col_or_null(r, i, 4);
		q->dim(q->arg, &d);
		size_t j = 0;
		while (j < *nkeys && (*keys)[j] != d.apikey_id)
			j++;
		if (j == *nkeys)
			(*keys)[(*nkeys)++] = d.apikey_id;
	}
	PQclear(r);
	return 0;
}

static int pgs_scan_txn(struct pgconn *c, void *arg, int64_t deadline, enum pg_fail *fail,
			struct selo_err *err)
{
	struct stats_scan *q = arg;
	struct pgs_scan_ctx x = {c, deadline, fail, err};
	if (pgs_snapshot(c, deadline, fail, err) != 0 ||
	    pgs_cursor_read(c, deadline, &q->cursor, &q->last_seq, fail, err) != 0)
		return -1;
	struct pg_num cur;
	const char *vals[1] = {pg_num(&cur, q->cursor)};
	PGresult *r = pgs_exec(c, PGS_CURSOR_TIME, 1, vals, NULL, NULL, deadline, fail,
			       "reading the statistics cursor's time", err);
	if (!r)
		return -1;
	q->cursor_time_ms = pg_col_int(r, 0, 0);
	PQclear(r);
	int64_t *keys = NULL;
	size_t nkeys = 0;
	int rc = pgs_scan_dims(&x, q, &keys, &nkeys);
	for (size_t i = 0; rc == 0 && i < nkeys; i++)
		rc = pgs_scan_key(&x, q, keys[i]);
	free(keys);
	return rc;
}

int pg_stats_scan(struct store *s, struct stats_scan *q, struct selo_err *err)
{
	enum pg_fail fail;
	return pgstore_txn(pgstore_of(s), pgs_scan_txn, q, &fail, err);
}
