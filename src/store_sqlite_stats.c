/* store_sqlite_stats.c: statistics in the SQLite backend (store.h
 * "Statistics", docs/stats.md; migration 9): the follower's events and
 * cursor, per-notice facts, dims, rollups with their delay samples, and
 * the scans `selo stats` and the API read. Its SQL is its own, prepared
 * per call. Errors as in store_sqlite.c; a stale cursor is a 409. */
#include "store_sqlite_int.h"

/* ---- Statistics (store.h "Statistics", docs/stats.md; migration 9). The
 * follower's statements are prepared for each call rather than cached per
 * connection: it runs a few times a second, and a query once per request,
 * so preparing costs microseconds against their milliseconds. */

#define STATS_CHUNK_MAX 1024 /* delay samples per stats_delays row: bounds a row's rewrite */
#define STATS_COLS                                                                         \
	"accepted,delivered,deferred,failed,canceled,opened_human,opened_proxy,"            \
	"opened_scanner,clicked_human,clicked_proxy,clicked_scanner,read_confirmed,"        \
	"open_hits_human,open_hits_proxy,open_hits_scanner,click_hits_human,"               \
	"click_hits_proxy,click_hits_scanner"
#define STATS_FACT_COLS                                                                    \
	"notice_id,apikey_id,dim,day,flags,accepted_ms,delivered_ms,open_ms,read_ms,"        \
	"open_hits_human,open_hits_proxy,open_hits_scanner,click_hits_human,"               \
	"click_hits_proxy,click_hits_scanner"

static const char STATS_SQL_CURSOR[] =
	"SELECT coalesce((SELECT seq FROM stats_cursor WHERE id = 1), 0),"
	" coalesce((SELECT max(seq) FROM events), 0)";
static const char STATS_SQL_EVENTS[] =
	"SELECT seq, notice_id, type, time_ms, entry FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2";
static const char STATS_SQL_FACT_GET[] =
	"SELECT " STATS_FACT_COLS " FROM stats_notices WHERE notice_id = ?1";
static const char STATS_SQL_INFO[] =
	"SELECT apikey_id, template, segment, tags_json FROM notices WHERE id = ?1";
static const char STATS_SQL_DIM_ADD[] =
	"INSERT INTO stats_dims(dkey, apikey_id, template, segment, tags_json)"
	" VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(dkey) DO NOTHING";
static const char STATS_SQL_DIM_ID[] = "SELECT id FROM stats_dims WHERE dkey = ?1";
static const char STATS_SQL_CURSOR_SET[] =
	"INSERT INTO stats_cursor(id, seq) VALUES(1, ?1) ON CONFLICT(id) DO UPDATE SET seq = ?1";
static const char STATS_SQL_FACT_SET[] =
	"INSERT OR REPLACE INTO stats_notices(" STATS_FACT_COLS ")"
	" VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)";
static const char STATS_SQL_ROLLUP_ADD[] =
	"INSERT INTO stats_rollup(dim, day, " STATS_COLS ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7,"
	" ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)"
	" ON CONFLICT(dim, day) DO UPDATE SET accepted = accepted + ?3,"
	" delivered = delivered + ?4, deferred = deferred + ?5, failed = failed + ?6,"
	" canceled = canceled + ?7, opened_human = opened_human + ?8,"
	" opened_proxy = opened_proxy + ?9, opened_scanner = opened_scanner + ?10,"
	" clicked_human = clicked_human + ?11, clicked_proxy = clicked_proxy + ?12,"
	" clicked_scanner = clicked_scanner + ?13, read_confirmed = read_confirmed + ?14,"
	" open_hits_human = open_hits_human + ?15, open_hits_proxy = open_hits_proxy + ?16,"
	" open_hits_scanner = open_hits_scanner + ?17, click_hits_human = click_hits_human + ?18,"
	" click_hits_proxy = click_hits_proxy + ?19, click_hits_scanner = click_hits_scanner + ?20";
static const char STATS_SQL_CHUNK_LAST[] =
	"SELECT id, chunk, vals FROM stats_delays WHERE dim = ?1 AND day = ?2 AND kind = ?3"
	" ORDER BY chunk DESC LIMIT 1";
static const char STATS_SQL_CHUNK_SET[] = "UPDATE stats_delays SET vals = ?2 WHERE id = ?1";
static const char STATS_SQL_CHUNK_ADD[] =
	"INSERT INTO stats_delays(dim, day, kind, chunk, vals) VALUES(?1, ?2, ?3, ?4, ?5)";
static const char STATS_SQL_DIMS[] =
	"SELECT id, apikey_id, template, segment, tags_json FROM stats_dims"
	" WHERE ?1 < 0 OR apikey_id = ?1 ORDER BY id";
static const char STATS_SQL_ROLLUPS[] =
	"SELECT r.dim, r.day, " STATS_COLS " FROM stats_dims d JOIN stats_rollup r"
	" ON r.dim = d.id AND r.day BETWEEN ?2 AND ?3 WHERE d.apikey_id = ?1";
static const char STATS_SQL_DELAYS[] =
	"SELECT x.dim, x.day, x.kind, x.vals FROM stats_dims d JOIN stats_delays x"
	" ON x.dim = d.id AND x.day BETWEEN ?2 AND ?3 WHERE d.apikey_id = ?1";
static const char STATS_SQL_FACTS[] =
	"SELECT " STATS_FACT_COLS " FROM stats_notices"
	" WHERE apikey_id = ?1 AND accepted_ms >= ?2 AND accepted_ms < ?3";
static const char STATS_SQL_CURSOR_TIME[] =
	"SELECT coalesce((SELECT time_ms FROM events WHERE seq = ?1), 0)";

static sqlite3_stmt *store_stats_prep(struct conn *c, const char *sql, struct selo_err *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v3(c->db, sql, -1, 0, &st, NULL) != SQLITE_OK) {
		err_set(err, 500, "storage-failed", "store: preparing \"%.48s\": %s", sql,
			sqlite3_errmsg(c->db));
		sqlite3_finalize(st);
		return NULL;
	}
	return st;
}

/* Ends a read transaction begun on a reader; its statements are finalized. */
static void store_stats_read_end(struct store_sqlite *s, struct conn *c, int began)
{
	if (began)
		sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
	sqlite_reader_give(s, c);
}

static int store_stats_cursor_on(struct conn *c, int64_t *cursor, int64_t *last,
				 struct selo_err *err)
{
	sqlite3_stmt *st = store_stats_prep(c, STATS_SQL_CURSOR, err);
	if (!st)
		return -1;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*cursor = sqlite3_column_int64(st, 0);
		*last = sqlite3_column_int64(st, 1);
	}
	int r = rc == SQLITE_ROW ? 0 : sqlite_db_err(err, c, "reading the statistics cursor");
	sqlite3_finalize(st);
	return r;
}

int sqlite_stats_events(struct store *base, size_t max,
			int (*fn)(void *arg, const struct stats_event *e), void *arg,
			int64_t *cursor, int64_t *last, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	*cursor = *last = 0;
	struct conn *c = sqlite_reader_take(s, err);
	if (!c)
		return -1;
	int began = sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
	int r = store_stats_cursor_on(c, cursor, last, err);
	sqlite3_stmt *st = r == 0 ? store_stats_prep(c, STATS_SQL_EVENTS, err) : NULL;
	if (!st) {
		store_stats_read_end(s, c, began);
		return -1;
	}
	sqlite3_bind_int64(st, 1, *cursor);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
	int rc;
	struct stats_event e;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&e, 0, sizeof(e));
		e.seq = sqlite3_column_int64(st, 0);
		sqlite_col_copy(st, 1, e.notice_id, sizeof(e.notice_id));
		sqlite_col_copy(st, 2, e.type, sizeof(e.type));
		e.time_ms = sqlite3_column_int64(st, 3);
		e.entry = sqlite3_column_blob(st, 4);
		e.entry_len = (size_t)sqlite3_column_bytes(st, 4);
		if (fn(arg, &e) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	if (rc != SQLITE_DONE)
		r = sqlite_db_err(err, c, "reading events for the statistics");
	sqlite3_finalize(st);
	store_stats_read_end(s, c, began);
	return r;
}

static void store_stats_fact_from_row(sqlite3_stmt *st, struct stats_fact *f)
{
	sqlite_col_copy(st, 0, f->notice_id, sizeof(f->notice_id));
	f->apikey_id = sqlite3_column_int64(st, 1);
	f->dim = sqlite3_column_int64(st, 2);
	f->day = (int32_t)sqlite3_column_int64(st, 3);
	f->flags = (uint32_t)sqlite3_column_int64(st, 4);
	f->accepted_ms = sqlite3_column_int64(st, 5);
	f->delivered_ms = sqlite3_column_int64(st, 6);
	f->open_ms = sqlite3_column_int64(st, 7);
	f->read_ms = sqlite3_column_int64(st, 8);
	for (int k = 0; k < STATS_NHITS; k++)
		f->hits[k] = sqlite3_column_int64(st, 9 + k);
}

int sqlite_stats_facts_get(struct store *base, struct stats_fact *f, size_t n, int *found,
			   struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct conn *c = sqlite_reader_take(s, err);
	if (!c)
		return -1;
	int began = sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
	sqlite3_stmt *st = store_stats_prep(c, STATS_SQL_FACT_GET, err);
	int r = st ? 0 : -1;
	for (size_t i = 0; r == 0 && i < n; i++) {
		found[i] = 0;
		if (sqlite_bind_text(st, 1, f[i].notice_id) != SQLITE_OK) {
			r = sqlite_db_err(err, c, "reading statistics facts");
			break;
		}
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			store_stats_fact_from_row(st, &f[i]);
			found[i] = 1;
		} else if (rc != SQLITE_DONE) {
			r = sqlite_db_err(err, c, "reading statistics facts");
		}
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	store_stats_read_end(s, c, began);
	return r;
}

int sqlite_stats_notice_info(struct store *base, const char *const *ids, size_t n,
			     struct stats_notice_info *out, int *found, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct conn *c = sqlite_reader_take(s, err);
	if (!c)
		return -1;
	sqlite3_stmt *st = store_stats_prep(c, STATS_SQL_INFO, err);
	int r = st ? 0 : -1;
	for (size_t i = 0; r == 0 && i < n; i++) {
		memset(&out[i], 0, sizeof(out[i]));
		found[i] = 0;
		if (sqlite_bind_text(st, 1, ids[i]) != SQLITE_OK) {
			r = sqlite_db_err(err, c, "reading a notice for the statistics");
			break;
		}
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			out[i].apikey_id = sqlite3_column_int64(st, 0);
			out[i].template_name = sqlite_col_text(st, 1);
			out[i].segment = sqlite_col_text(st, 2);
			out[i].tags_json = sqlite_col_text(st, 3);
			found[i] = 1;
		} else if (rc != SQLITE_DONE) {
			r = sqlite_db_err(err, c, "reading a notice for the statistics");
		}
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	sqlite_reader_give(s, c);
	return r;
}

struct stats_dim_args {
	const char *dkey, *template_name, *segment, *tags_json;
	int64_t apikey_id;
};

static int run_stats_dim(struct store_sqlite *s, struct job *j)
{
	const struct stats_dim_args *a = j->arg;
	sqlite3_stmt *add = store_stats_prep(s->w, STATS_SQL_DIM_ADD, j->err);
	sqlite3_stmt *get = add ? store_stats_prep(s->w, STATS_SQL_DIM_ID, j->err) : NULL;
	int r = -1;
	if (get && sqlite_bind_text(add, 1, a->dkey) == SQLITE_OK &&
	    sqlite3_bind_int64(add, 2, a->apikey_id) == SQLITE_OK &&
	    sqlite_bind_text(add, 3, a->template_name) == SQLITE_OK &&
	    sqlite_bind_text(add, 4, a->segment) == SQLITE_OK && sqlite_bind_text(add, 5, a->tags_json) == SQLITE_OK &&
	    sqlite3_step(add) == SQLITE_DONE && sqlite_bind_text(get, 1, a->dkey) == SQLITE_OK &&
	    sqlite3_step(get) == SQLITE_ROW) {
		j->ival = sqlite3_column_int64(get, 0);
		r = 0;
	} else if (get) {
		sqlite_db_err(j->err, s->w, "storing a statistics dimension");
	}
	sqlite3_finalize(add);
	sqlite3_finalize(get);
	return r;
}

int sqlite_stats_dim(struct store *base, const char *dkey, int64_t apikey_id,
		     const char *template_name, const char *segment, const char *tags_json,
		     int64_t *id, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct stats_dim_args a = {dkey, template_name, segment, tags_json, apikey_id};
	return sqlite_job_do(s, run_stats_dim, &a, err, id);
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

/* The statements of one apply, prepared once for the whole batch. */
enum { SA_CURSOR, SA_CURSOR_SET, SA_FACT, SA_ROLLUP, SA_LAST, SA_SET, SA_ADD, SA_N };

/* Appends v[0..n) to the (dim, day, kind) samples: fills the last chunk,
 * then adds new ones. */
static int store_stats_delays_add(struct conn *c, sqlite3_stmt **st, const struct stats_delta *d,
				  int kind, struct selo_err *err)
{
	const int64_t *v = d->delays[kind];
	size_t n = d->ndelays[kind];
	int64_t row = 0, chunk = -1;
	size_t have = 0;
	uint8_t *buf = xcalloc(STATS_CHUNK_MAX, 8);
	sqlite3_stmt *q = st[SA_LAST];
	sqlite3_bind_int64(q, 1, d->dim);
	sqlite3_bind_int64(q, 2, d->day);
	sqlite3_bind_int(q, 3, kind);
	int rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		row = sqlite3_column_int64(q, 0);
		chunk = sqlite3_column_int64(q, 1);
		size_t len = (size_t)sqlite3_column_bytes(q, 2);
		have = len / 8 <= STATS_CHUNK_MAX ? len / 8 : STATS_CHUNK_MAX;
		if (have)
			memcpy(buf, sqlite3_column_blob(q, 2), have * 8);
	}
	sqlite3_reset(q);
	int r = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "reading delay samples");
	while (r == 0 && n > 0) {
		if (have == STATS_CHUNK_MAX || chunk < 0) {
			row = 0; /* a new chunk */
			chunk++;
			have = 0;
		}
		size_t take = STATS_CHUNK_MAX - have < n ? STATS_CHUNK_MAX - have : n;
		for (size_t i = 0; i < take; i++)
			le64_put(buf + 8 * (have + i), v[i]);
		have += take, v += take, n -= take;
		sqlite3_stmt *w = row ? st[SA_SET] : st[SA_ADD];
		if (row) {
			sqlite3_bind_int64(w, 1, row);
			sqlite3_bind_blob(w, 2, buf, (int)(have * 8), SQLITE_TRANSIENT);
		} else {
			sqlite3_bind_int64(w, 1, d->dim);
			sqlite3_bind_int64(w, 2, d->day);
			sqlite3_bind_int(w, 3, kind);
			sqlite3_bind_int64(w, 4, chunk);
			sqlite3_bind_blob(w, 5, buf, (int)(have * 8), SQLITE_TRANSIENT);
		}
		if (sqlite3_step(w) != SQLITE_DONE)
			r = sqlite_db_err(err, c, "storing delay samples");
		else if (!row)
			row = sqlite3_last_insert_rowid(c->db);
		sqlite3_reset(w);
	}
	free(buf);
	return r;
}

static int store_stats_fact_write(struct conn *c, sqlite3_stmt *st, const struct stats_fact *f,
				  struct selo_err *err)
{
	if (sqlite_bind_text(st, 1, f->notice_id) | sqlite3_bind_int64(st, 2, f->apikey_id) |
	    sqlite3_bind_int64(st, 3, f->dim) | sqlite3_bind_int64(st, 4, f->day) |
	    sqlite3_bind_int64(st, 5, f->flags) | sqlite3_bind_int64(st, 6, f->accepted_ms) |
	    sqlite3_bind_int64(st, 7, f->delivered_ms) | sqlite3_bind_int64(st, 8, f->open_ms) |
	    sqlite3_bind_int64(st, 9, f->read_ms))
		return sqlite_db_err(err, c, "storing statistics facts");
	for (int k = 0; k < STATS_NHITS; k++)
		if (sqlite3_bind_int64(st, 10 + k, f->hits[k]) != SQLITE_OK)
			return sqlite_db_err(err, c, "storing statistics facts");
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "storing statistics facts");
}

static int store_stats_rollup_write(struct conn *c, sqlite3_stmt *st, const struct stats_delta *d,
				    struct selo_err *err)
{
	sqlite3_bind_int64(st, 1, d->dim);
	sqlite3_bind_int64(st, 2, d->day);
	for (int k = 0; k < SC_COUNT; k++)
		sqlite3_bind_int64(st, 3 + k, d->c[k]);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "storing statistics rollups");
}

static int store_stats_apply_on(struct conn *c, sqlite3_stmt **st, const struct stats_batch *b,
				struct selo_err *err)
{
	int rc = sqlite3_step(st[SA_CURSOR]);
	if (rc != SQLITE_ROW)
		return sqlite_db_err(err, c, "reading the statistics cursor");
	if (sqlite3_column_int64(st[SA_CURSOR], 0) != b->cursor_from)
		return err_set(err, 409, "stats-cursor-moved",
			       "store: the statistics cursor moved (another process counted these "
			       "events)");
	sqlite3_reset(st[SA_CURSOR]);
	for (size_t i = 0; i < b->nfacts; i++)
		if (store_stats_fact_write(c, st[SA_FACT], &b->facts[i], err) != 0)
			return -1;
	for (size_t i = 0; i < b->ndeltas; i++) {
		if (store_stats_rollup_write(c, st[SA_ROLLUP], &b->deltas[i], err) != 0)
			return -1;
		for (int k = 0; k < SD_COUNT; k++)
			if (b->deltas[i].ndelays[k] && store_stats_delays_add(c, st, &b->deltas[i], k, err))
				return -1;
	}
	sqlite3_bind_int64(st[SA_CURSOR_SET], 1, b->cursor_to);
	rc = sqlite3_step(st[SA_CURSOR_SET]);
	return rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "moving the statistics cursor");
}

static int run_stats_apply(struct store_sqlite *s, struct job *j)
{
	static const char *const sql[SA_N] = {
		[SA_CURSOR] = STATS_SQL_CURSOR, [SA_CURSOR_SET] = STATS_SQL_CURSOR_SET,
		[SA_FACT] = STATS_SQL_FACT_SET, [SA_ROLLUP] = STATS_SQL_ROLLUP_ADD,
		[SA_LAST] = STATS_SQL_CHUNK_LAST, [SA_SET] = STATS_SQL_CHUNK_SET,
		[SA_ADD] = STATS_SQL_CHUNK_ADD,
	};
	sqlite3_stmt *st[SA_N] = {0};
	int r = 0;
	for (int i = 0; i < SA_N && r == 0; i++)
		if (!(st[i] = store_stats_prep(s->w, sql[i], j->err)))
			r = -1;
	if (r == 0)
		r = store_stats_apply_on(s->w, st, j->arg, j->err);
	for (int i = 0; i < SA_N; i++)
		sqlite3_finalize(st[i]);
	return r;
}

int sqlite_stats_apply(struct store *base, const struct stats_batch *b, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	return sqlite_job_do(s, run_stats_apply, (void *)b, err, NULL);
}

/* The scan's rows of one key, on a reader inside its read transaction. */
static int store_stats_scan_key(struct conn *c, sqlite3_stmt **st, struct stats_scan *q,
				int64_t key, struct selo_err *err)
{
	int rc = SQLITE_DONE;
	int64_t cnt[SC_COUNT];
	if (q->day_from <= q->day_to) {
		sqlite3_stmt *r = st[1];
		sqlite3_bind_int64(r, 1, key);
		sqlite3_bind_int64(r, 2, q->day_from);
		sqlite3_bind_int64(r, 3, q->day_to);
		while ((rc = sqlite3_step(r)) == SQLITE_ROW) {
			for (int k = 0; k < SC_COUNT; k++)
				cnt[k] = sqlite3_column_int64(r, 2 + k);
			q->rollup(q->arg, sqlite3_column_int64(r, 0),
				  (int32_t)sqlite3_column_int64(r, 1), cnt);
		}
		sqlite3_reset(r);
		if (rc != SQLITE_DONE)
			return sqlite_db_err(err, c, "reading statistics rollups");
		sqlite3_stmt *d = st[2];
		sqlite3_bind_int64(d, 1, key);
		sqlite3_bind_int64(d, 2, q->day_from);
		sqlite3_bind_int64(d, 3, q->day_to);
		int64_t *v = xcalloc(STATS_CHUNK_MAX, sizeof(*v));
		while ((rc = sqlite3_step(d)) == SQLITE_ROW) {
			const uint8_t *p = sqlite3_column_blob(d, 3);
			size_t n = (size_t)sqlite3_column_bytes(d, 3) / 8;
			int kind = sqlite3_column_int(d, 2);
			if (n > STATS_CHUNK_MAX || kind < 0 || kind >= SD_COUNT)
				continue; /* not a row this code wrote */
			for (size_t i = 0; i < n; i++)
				v[i] = le64_get(p + 8 * i);
			q->delays(q->arg, sqlite3_column_int64(d, 0), (int32_t)sqlite3_column_int64(d, 1),
				  kind, v, n);
		}
		free(v);
		sqlite3_reset(d);
		if (rc != SQLITE_DONE)
			return sqlite_db_err(err, c, "reading statistics delays");
	}
	struct stats_fact f;
	for (int i = 0; i < q->nranges; i++) {
		sqlite3_stmt *x = st[3];
		sqlite3_bind_int64(x, 1, key);
		sqlite3_bind_int64(x, 2, q->ms_from[i]);
		sqlite3_bind_int64(x, 3, q->ms_to[i]);
		while ((rc = sqlite3_step(x)) == SQLITE_ROW) {
			store_stats_fact_from_row(x, &f);
			q->fact(q->arg, &f);
		}
		sqlite3_reset(x);
		if (rc != SQLITE_DONE)
			return sqlite_db_err(err, c, "reading statistics facts");
	}
	return 0;
}

static int store_stats_scan_on(struct conn *c, sqlite3_stmt **st, struct stats_scan *q,
			       struct selo_err *err)
{
	if (store_stats_cursor_on(c, &q->cursor, &q->last_seq, err) != 0)
		return -1;
	sqlite3_bind_int64(st[4], 1, q->cursor);
	if (sqlite3_step(st[4]) == SQLITE_ROW)
		q->cursor_time_ms = sqlite3_column_int64(st[4], 0);
	sqlite3_bind_int64(st[0], 1, q->apikey_id);
	int64_t *keys = NULL;
	size_t nkeys = 0, cap = 0;
	int rc;
	struct stats_dim d;
	while ((rc = sqlite3_step(st[0])) == SQLITE_ROW) {
		d.id = sqlite3_column_int64(st[0], 0);
		d.apikey_id = sqlite3_column_int64(st[0], 1);
		d.template_name = (const char *)sqlite3_column_text(st[0], 2);
		d.segment = (const char *)sqlite3_column_text(st[0], 3);
		d.tags_json = (const char *)sqlite3_column_text(st[0], 4);
		q->dim(q->arg, &d);
		size_t i = 0;
		while (i < nkeys && keys[i] != d.apikey_id)
			i++;
		if (i == nkeys) {
			keys = sqlite_grow(keys, nkeys, &cap, sizeof(*keys));
			keys[nkeys++] = d.apikey_id;
		}
	}
	int r = rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "reading statistics dimensions");
	for (size_t i = 0; r == 0 && i < nkeys; i++)
		r = store_stats_scan_key(c, st, q, keys[i], err);
	free(keys);
	return r;
}

int sqlite_stats_scan(struct store *base, struct stats_scan *q, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	static const char *const sql[5] = {STATS_SQL_DIMS, STATS_SQL_ROLLUPS, STATS_SQL_DELAYS,
					   STATS_SQL_FACTS, STATS_SQL_CURSOR_TIME};
	struct conn *c = sqlite_reader_take(s, err);
	if (!c)
		return -1;
	int began = sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
	sqlite3_stmt *st[5] = {0};
	int r = 0;
	for (int i = 0; i < 5 && r == 0; i++)
		if (!(st[i] = store_stats_prep(c, sql[i], err)))
			r = -1;
	if (r == 0)
		r = store_stats_scan_on(c, st, q, err);
	for (int i = 0; i < 5; i++)
		sqlite3_finalize(st[i]);
	store_stats_read_end(s, c, began);
	return r;
}
