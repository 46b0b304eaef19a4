/* store_sqlite_log.c: the log's storage in the SQLite backend: tracker hits
 * and their folds (store.h "Tracker hits"), the Merkle log's tree state,
 * tiles and index runs (store_log_append writes them with the events'
 * indexes in one transaction), and signed checkpoints with their
 * timestamps. Errors as in store_sqlite.c; a log_append that does not
 * continue the stored tree (size and root: the fence) is a 409 log-moved
 * and writes nothing, and so is a checkpoint of another size; a full tile
 * is never overwritten with other bytes. */
#include "store_sqlite_int.h"

/* A full tile: 256 hashes of 32 bytes (tlog-tiles). */
#define LOG_TILE_FULL 8192

/* ---- Tracker hits and their folds (store.h "Tracker hits"). */

/* Runs a statement whose one parameter is a key and that returns no row. */
static int key_step(struct conn *c, enum stmt_id id, const char *key, struct selo_err *err,
		    const char *what)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, id, err);
	if (!st)
		return -1;
	if (sqlite_bind_text(st, 1, key))
		return sqlite_bind_failed(c, st, err, what);
	return sqlite_step_done(c, st, err, what);
}

/* A notice's row of hit_tally, in memory while a job works on it. */
struct tally {
	int64_t full[HIT_KINDS][HIT_CLASSES];
	int64_t summaries;
	int64_t first_ms, last_ms, due_ms;   /* the open fold; due 0: none */
	int64_t fold[HIT_KINDS][HIT_CLASSES];
	int64_t addresses;
};

static void tally_from_row(sqlite3_stmt *st, struct tally *t)
{
	int col = 0;
	for (int k = 0; k < HIT_KINDS; k++)
		for (int c = 0; c < HIT_CLASSES; c++)
			t->full[k][c] = sqlite3_column_int64(st, col++);
	t->summaries = sqlite3_column_int64(st, col++);
	t->first_ms = sqlite3_column_int64(st, col++);
	t->last_ms = sqlite3_column_int64(st, col++);
	t->due_ms = sqlite3_column_int64(st, col++);
	for (int k = 0; k < HIT_KINDS; k++)
		for (int c = 0; c < HIT_CLASSES; c++)
			t->fold[k][c] = sqlite3_column_int64(st, col++);
	t->addresses = sqlite3_column_int64(st, col);
}

/* The tally of a notice without a row: counted from its events. */
static int tally_count(struct conn *c, const char *id, struct tally *t, struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_TALLY_COUNT, err);
	if (!st)
		return -1;
	if (sqlite_bind_text(st, 1, id))
		return sqlite_bind_failed(c, st, err, "counting a notice's hits");
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *type = (const char *)sqlite3_column_text(st, 0);
		int cls = sqlite3_column_int(st, 1);
		int64_t n = sqlite3_column_int64(st, 2);
		if (!type || cls < 0 || cls >= HIT_CLASSES)
			continue;
		if (!strcmp(type, EV_TRACKING_SUMMARY))
			t->summaries += n;
		else
			t->full[strcmp(type, EV_OPENED) ? HIT_KIND_CLICKED : HIT_KIND_OPENED][cls] += n;
	}
	int r = rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "counting a notice's hits");
	sqlite_stmt_done(st);
	return r;
}

static int tally_load(struct conn *c, const char *id, struct tally *t, struct selo_err *err)
{
	memset(t, 0, sizeof(*t));
	sqlite3_stmt *st = sqlite_stmt_get(c, S_TALLY_GET, err);
	if (!st)
		return -1;
	if (sqlite_bind_text(st, 1, id))
		return sqlite_bind_failed(c, st, err, "reading a notice's hit tally");
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		tally_from_row(st, t);
	int r = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0
						       : sqlite_db_err(err, c, "reading a notice's hit tally");
	sqlite_stmt_done(st);
	return r == 0 && rc == SQLITE_DONE ? tally_count(c, id, t, err) : r;
}

static int tally_put(struct conn *c, const char *id, const struct tally *t, struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_TALLY_PUT, err);
	if (!st)
		return -1;
	int64_t v[17], *p = v;
	for (int k = 0; k < HIT_KINDS; k++)
		for (int cl = 0; cl < HIT_CLASSES; cl++)
			*p++ = t->full[k][cl];
	*p++ = t->summaries;
	*p++ = t->first_ms;
	*p++ = t->last_ms;
	*p++ = t->due_ms;
	for (int k = 0; k < HIT_KINDS; k++)
		for (int cl = 0; cl < HIT_CLASSES; cl++)
			*p++ = t->fold[k][cl];
	*p = t->addresses;
	int bad = sqlite_bind_text(st, 1, id);
	for (int i = 0; i < 17; i++)
		bad |= sqlite3_bind_int64(st, i + 2, v[i]);
	if (bad)
		return sqlite_bind_failed(c, st, err, "storing a notice's hit tally");
	return sqlite_step_done(c, st, err, "storing a notice's hit tally");
}

/* How long a notice's next fold stays open: the rule's window, doubled for
 * every summary the notice already has, up to the rule's longest. */
static int64_t fold_window(const struct fold_rule *r, int64_t summaries)
{
	int64_t w = r->window_ms > 0 ? r->window_ms : 1;
	for (int64_t i = 0; i < summaries && w < r->window_max_ms; i++)
		w *= 2;
	return w < r->window_max_ms ? w : r->window_max_ms;
}

/* Counts one hit in the notice's fold; a new address is remembered. */
static int fold_add(struct conn *c, const char *id, struct tally *t, const struct hit_new *h,
		    const struct fold_rule *rule, struct selo_err *err)
{
	if (t->due_ms == 0) {
		t->first_ms = t->last_ms = h->arrived_ms;
		t->due_ms = h->arrived_ms + fold_window(rule, t->summaries);
	}
	if (h->arrived_ms < t->first_ms)
		t->first_ms = h->arrived_ms;
	if (h->arrived_ms > t->last_ms)
		t->last_ms = h->arrived_ms;
	t->fold[h->kind][h->cls]++;
	sqlite3_stmt *st = sqlite_stmt_get(c, S_FOLD_ADDR, err);
	if (!st)
		return -1;
	if (sqlite_bind_text(st, 1, id) | sqlite_bind_blob(st, 2, h->addr, sizeof(h->addr)))
		return sqlite_bind_failed(c, st, err, "counting a hit's address");
	if (sqlite_step_done(c, st, err, "counting a hit's address") != 0)
		return -1;
	t->addresses += sqlite3_changes(c->db) > 0;
	return 0;
}

struct hits_args {
	const struct hit_new *h;
	size_t n;
	const struct fold_rule *rule;
	size_t folded;
};

/* One hit: its event while its (kind, class) has room, else the fold. */
static int hit_add(struct store_sqlite *s, struct hits_args *a, const struct hit_new *h,
		   struct tally *t, struct buf *e, struct disc_memo *m, struct selo_err *err)
{
	if (h->kind < 0 || h->kind >= HIT_KINDS || h->cls < 0 || h->cls >= HIT_CLASSES)
		return err_set(err, 500, "internal", "store: a hit of an unknown kind or class");
	if (t->full[h->kind][h->cls] < a->rule->full_max) {
		t->full[h->kind][h->cls]++;
		return store_sqlite_event_new_add(s, &h->ev, e, m, err) != 0 ? -1 : 0;
	}
	a->folded++;
	return fold_add(s->w, h->ev.notice_id, t, h, a->rule, err);
}

static int run_hits_add(struct store_sqlite *s, struct job *j)
{
	struct hits_args *a = j->arg;
	struct buf e = BUF_INIT;
	struct disc_memo memo = {0};
	struct tally t;
	int r = 0;
	for (size_t i = 0; i < a->n && r == 0; i++) {
		const char *id = a->h[i].ev.notice_id;
		/* Hits come in runs of one notice: its tally is read once a run
		 * and written back when the run ends. */
		if (i == 0 || strcmp(id, a->h[i - 1].ev.notice_id) != 0) {
			if ((r = store_sqlite_notice_known(s, id, j->err)) != 0)
				break;
			r = tally_load(s->w, id, &t, j->err);
		}
		if (r == 0)
			r = hit_add(s, a, &a->h[i], &t, &e, &memo, j->err);
		if (r == 0 && (i + 1 == a->n || strcmp(id, a->h[i + 1].ev.notice_id) != 0))
			r = tally_put(s->w, id, &t, j->err);
	}
	buf_free(&e);
	return r;
}

int sqlite_hits_add(struct store *base, const struct hit_new *h, size_t n,
		    const struct fold_rule *rule, size_t *folded, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct hits_args a = {h, n, rule, 0};
	int r = n ? sqlite_job_do(s, run_hits_add, &a, err, NULL) : 0;
	if (folded)
		*folded = r == 0 ? a.folded : 0;
	return r;
}

struct folds_args {
	int64_t now_ms;
	size_t max;
	fold_fields_fn fields;
	void *arg;
	size_t closed;
};

/* Writes the summary of one notice's fold and empties it. */
static int fold_close(struct store_sqlite *s, const char *id, struct folds_args *a,
		      struct selo_err *err)
{
	struct tally t;
	if (tally_load(s->w, id, &t, err) != 0)
		return -1;
	if (t.due_ms == 0)
		return 0;
	struct hit_fold f = {.first_ms = t.first_ms, .last_ms = t.last_ms,
			     .addresses = t.addresses, .summaries = t.summaries};
	snprintf(f.notice_id, sizeof(f.notice_id), "%s", id);
	memcpy(f.hits, t.fold, sizeof(f.hits));
	json_t *fields = a->fields(&f, a->arg);
	if (!fields)
		return err_set(err, 500, "internal", "store: a hit summary cannot be made");
	int r = store_sqlite_event_add(s->w, id, EV_TRACKING_SUMMARY, sqlite_writer_time(s), fields, NULL, err);
	json_decref(fields);
	if (r != 0)
		return -1;
	t.summaries++;
	t.first_ms = t.last_ms = t.due_ms = t.addresses = 0;
	memset(t.fold, 0, sizeof(t.fold));
	if (tally_put(s->w, id, &t, err) != 0 || key_step(s->w, S_FOLD_ADDRS_DROP, id, err, "forgetting a fold's addresses") != 0)
		return -1;
	a->closed++;
	return 0;
}

static int run_folds_close(struct store_sqlite *s, struct job *j)
{
	struct folds_args *a = j->arg;
	sqlite3_stmt *st = sqlite_stmt_get(s->w, S_FOLDS_DUE, j->err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, a->now_ms) | sqlite3_bind_int64(st, 2, (int64_t)a->max))
		return sqlite_bind_failed(s->w, st, j->err, "finding hit folds due");
	/* The ids first: the rows change as each fold closes. */
	char (*ids)[27] = xcalloc(a->max ? a->max : 1, sizeof(*ids));
	size_t n = 0;
	int rc = SQLITE_DONE;
	while (n < a->max && (rc = sqlite3_step(st)) == SQLITE_ROW)
		sqlite_col_copy(st, 0, ids[n++], sizeof(ids[0]));
	int r = n == a->max || rc == SQLITE_DONE ? 0 : sqlite_db_err(j->err, s->w, "finding hit folds due");
	sqlite_stmt_done(st);
	for (size_t i = 0; r == 0 && i < n; i++)
		r = fold_close(s, ids[i], a, j->err);
	free(ids);
	return r;
}

/* 1 when a fold is due at now_ms, 0 none, -1 error: one index probe on a
 * reader, so the recorder's sweep costs the writer nothing while no fold
 * is due (nearly always). */
static int folds_due(struct store_sqlite *s, int64_t now_ms, struct selo_err *err)
{
	struct conn *c = sqlite_reader_take(s, err);
	if (!c)
		return -1;
	sqlite3_stmt *st = sqlite_stmt_get(c, S_FOLDS_DUE, err);
	int r = -1;
	if (st && !(sqlite3_bind_int64(st, 1, now_ms) | sqlite3_bind_int64(st, 2, 1))) {
		int rc = sqlite3_step(st);
		r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "finding hit folds due");
		sqlite_stmt_done(st);
	} else if (st) {
		sqlite_bind_failed(c, st, err, "finding hit folds due");
	}
	sqlite_reader_give(s, c);
	return r;
}

int sqlite_folds_close(struct store *base, int64_t now_ms, size_t max, fold_fields_fn fields,
		       void *arg, size_t *closed, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct folds_args a = {now_ms, max, fields, arg, 0};
	int due = max ? folds_due(s, now_ms, err) : 0;
	int r = due > 0 ? sqlite_job_do(s, run_folds_close, &a, err, NULL) : due;
	if (closed)
		*closed = r == 0 ? a.closed : 0;
	return r;
}

/* ---- Ledger storage (see store.h "Ledger"). */

int sqlite_log_state_on(struct conn *c, struct log_state *out, struct selo_err *err)
{
	memset(out, 0, sizeof(*out));
	/* The empty tree's root is SHA-256 of nothing. */
	static const uint8_t EMPTY[32] = {
		0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
		0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};
	memcpy(out->root, EMPTY, 32);
	sqlite3_stmt *st = sqlite_stmt_get(c, S_LOG_STATE, err);
	if (!st)
		return -1;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		out->size = (uint64_t)sqlite3_column_int64(st, 0);
		if (sqlite3_column_bytes(st, 1) == 32)
			memcpy(out->root, sqlite3_column_blob(st, 1), 32);
		out->last_seq = sqlite3_column_int64(st, 2);
	}
	int r = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "reading the log state");
	sqlite_stmt_done(st);
	return r;
}

int sqlite_log_state(struct store *base, struct log_state *out, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct conn *c = sqlite_reader_take(s, err);
	if (!c)
		return -1;
	int r = sqlite_log_state_on(c, out, err);
	sqlite_reader_give(s, c);
	return r;
}

/* Indexes the run of events first_seq .. first_seq + n - 1 as
 * first_index ..: one row, after checking that every event of the run
 * exists (409 otherwise, nothing written). */
static int log_run_add(struct conn *c, int64_t first_seq, uint64_t first_index, int64_t n,
		       struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_LOG_RANGE_COUNT, err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, first_seq) | sqlite3_bind_int64(st, 2, first_seq + n - 1))
		return sqlite_bind_failed(c, st, err, "indexing events");
	int rc = sqlite3_step(st);
	int64_t have = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	sqlite_stmt_done(st);
	if (rc != SQLITE_ROW)
		return sqlite_db_err(err, c, "indexing events");
	if (have != n)
		return err_set(err, 409, "conflict", "store: events %lld..%lld: %lld of %lld exist",
			       (long long)first_seq, (long long)(first_seq + n - 1), (long long)have,
			       (long long)n);
	st = sqlite_stmt_get(c, S_LOG_RANGE_ADD, err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, (int64_t)first_index) | sqlite3_bind_int64(st, 2, first_seq) |
	    sqlite3_bind_int64(st, 3, n))
		return sqlite_bind_failed(c, st, err, "indexing events");
	return sqlite_step_done(c, st, err, "indexing events");
}

/* Gives the batch's events their indexes, one log_ranges row per run of
 * consecutive seqs (a batch is usually one run). The seqs must rise and
 * start after the last event integrated, so no event is indexed twice. */
static int log_runs_add(struct conn *c, const struct log_append *a, int64_t last_seq,
			struct selo_err *err)
{
	if (a->n && a->seqs[0] <= last_seq)
		return err_set(err, 409, "conflict", "store: event %lld is already in the log",
			       (long long)a->seqs[0]);
	size_t start = 0;
	for (size_t i = 1; i <= a->n; i++) {
		if (i < a->n && a->seqs[i] <= a->seqs[i - 1])
			return err_set(err, 409, "conflict", "store: events to index out of seq order");
		if (i < a->n && a->seqs[i] == a->seqs[i - 1] + 1)
			continue;
		if (log_run_add(c, a->seqs[start], a->first_index + start, (int64_t)(i - start), err) != 0)
			return -1;
		start = i;
	}
	return 0;
}

/* A full tile never changes (store.h): 0 when t may be written, 409 when
 * it would change one. The check reads only full tiles' rows, one per 256
 * entries. */
static int log_tile_check(struct conn *c, const struct log_tile_write *t, struct selo_err *err)
{
	if (t->len != LOG_TILE_FULL)
		return 0;
	sqlite3_stmt *st = sqlite_stmt_get(c, S_LOG_TILE_GET, err);
	if (!st)
		return -1;
	if (sqlite3_bind_int(st, 1, t->level) | sqlite3_bind_int64(st, 2, (int64_t)t->index))
		return sqlite_bind_failed(c, st, err, "reading a log tile");
	int rc = sqlite3_step(st);
	int differs = rc == SQLITE_ROW && sqlite3_column_bytes(st, 0) == LOG_TILE_FULL &&
		      memcmp(sqlite3_column_blob(st, 0), t->data, LOG_TILE_FULL) != 0;
	sqlite_stmt_done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sqlite_db_err(err, c, "reading a log tile");
	if (differs)
		return err_set(err, 409, "log-tile-immutable",
			       "store: log tile %d/%llu is full and holds other hashes: a full tile "
			       "never changes", t->level, (unsigned long long)t->index);
	return 0;
}

static int log_tile_set(struct conn *c, const struct log_tile_write *t, struct selo_err *err)
{
	if (log_tile_check(c, t, err) != 0)
		return -1;
	sqlite3_stmt *st = sqlite_stmt_get(c, S_LOG_TILE_SET, err);
	if (!st)
		return -1;
	if (sqlite3_bind_int(st, 1, t->level) | sqlite3_bind_int64(st, 2, (int64_t)t->index) |
	    sqlite_bind_blob(st, 3, t->data, t->len))
		return sqlite_bind_failed(c, st, err, "writing a log tile");
	return sqlite_step_done(c, st, err, "writing a log tile");
}

/* The root the append says it grew from matches the stored one; all zero
 * means the caller did not say (then the size alone fences). */
static int log_root_matches(const uint8_t old_root[32], const uint8_t root[32])
{
	uint8_t zero = 0;
	for (int i = 0; i < 32; i++)
		zero |= old_root[i];
	return zero == 0 || memcmp(old_root, root, 32) == 0;
}

static int run_log_append(struct store_sqlite *s, struct job *j)
{
	const struct log_append *a = j->arg;
	struct conn *c = s->w;
	struct log_state cur;
	if (sqlite_log_state_on(c, &cur, j->err) != 0)
		return -1;
	/* The fence (store.h "log_append"): the writer's transaction holds the
	 * write lock, so the tree cannot move between this check and the commit. */
	if (cur.size != a->first_index || !log_root_matches(a->old_root, cur.root))
		return err_set(j->err, 409, "log-moved",
			       "store: the log is no longer the %llu-entry tree this append grew "
			       "from (it has %llu entries): read the state again",
			       (unsigned long long)a->first_index, (unsigned long long)cur.size);
	if (log_runs_add(c, a, cur.last_seq, j->err) != 0)
		return -1;
	for (size_t i = 0; i < a->ntiles; i++)
		if (log_tile_set(c, &a->tiles[i], j->err) != 0)
			return -1;
	sqlite3_stmt *st = sqlite_stmt_get(c, S_LOG_STATE_SET, j->err);
	if (!st)
		return -1;
	int64_t last = a->n ? a->seqs[a->n - 1] : cur.last_seq;
	if (sqlite3_bind_int64(st, 1, (int64_t)(a->first_index + a->n)) | sqlite_bind_blob(st, 2, a->root, 32) |
	    sqlite3_bind_int64(st, 3, last))
		return sqlite_bind_failed(c, st, j->err, "writing the log state");
	return sqlite_step_done(c, st, j->err, "writing the log state");
}

int sqlite_log_append(struct store *base, const struct log_append *a, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	return sqlite_job_do(s, run_log_append, (void *)a, err, NULL);
}

int sqlite_log_tile(struct store *base, int level, uint64_t index, struct buf *data,
		    struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct conn *c = sqlite_reader_take(s, err);
	if (!c)
		return -1;
	sqlite3_stmt *st = sqlite_stmt_get(c, S_LOG_TILE_GET, err);
	int r = -1;
	if (st && (sqlite3_bind_int(st, 1, level) | sqlite3_bind_int64(st, 2, (int64_t)index))) {
		sqlite_bind_failed(c, st, err, "reading a log tile");
	} else if (st) {
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			buf_append(data, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
			r = 1;
		} else {
			r = rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "reading a log tile");
		}
		sqlite_stmt_done(st);
	}
	sqlite_reader_give(s, c);
	return r;
}

int sqlite_log_entries(struct store *base, uint64_t from, size_t max, struct event_rec **out,
		       size_t *n, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	int64_t lim = max > EVENTS_AFTER_MAX ? EVENTS_AFTER_MAX : (int64_t)max;
	return sqlite_events_query(s, S_LOG_ENTRIES, NULL, (int64_t)from, lim, out, n, err);
}

int sqlite_log_unindexed(struct store *base, int64_t last_seq, int64_t *count, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct conn *c = sqlite_reader_take(s, err);
	if (!c)
		return -1;
	sqlite3_stmt *st = sqlite_stmt_get(c, S_LOG_UNINDEXED, err);
	int r = -1;
	if (st && sqlite3_bind_int64(st, 1, last_seq)) {
		sqlite_bind_failed(c, st, err, "counting events outside the log");
	} else if (st) {
		if (sqlite3_step(st) == SQLITE_ROW) {
			*count = sqlite3_column_int64(st, 0);
			r = 0;
		} else {
			r = sqlite_db_err(err, c, "counting events outside the log");
		}
		sqlite_stmt_done(st);
	}
	sqlite_reader_give(s, c);
	return r;
}

struct checkpoint_args {
	uint64_t size;
	const char *note;
	int64_t ms;
	const uint8_t *tst;
	size_t len;
};

static int run_checkpoint_add(struct store_sqlite *s, struct job *j)
{
	struct checkpoint_args *a = j->arg;
	struct conn *c = s->w;
	/* Only over the stored tree (store.h), as the log_append fence. */
	struct log_state cur;
	if (sqlite_log_state_on(c, &cur, j->err) != 0)
		return -1;
	if (cur.size != a->size)
		return err_set(j->err, 409, "log-moved",
			       "store: no checkpoint of %llu entries: the stored tree has %llu",
			       (unsigned long long)a->size, (unsigned long long)cur.size);
	sqlite3_stmt *st = sqlite_stmt_get(c, S_CP_ADD, j->err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, (int64_t)a->size) | sqlite_bind_text(st, 2, a->note) |
	    sqlite3_bind_int64(st, 3, a->ms))
		return sqlite_bind_failed(c, st, j->err, "adding a checkpoint");
	return sqlite_step_insert(c, st, j->err, "adding a checkpoint", NULL) == 0 ? 0 : -1;
}

int sqlite_checkpoint_add(struct store *base, uint64_t size, const char *note, int64_t created_ms,
			  struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct checkpoint_args a = {size, note, created_ms, NULL, 0};
	return sqlite_job_do(s, run_checkpoint_add, &a, err, NULL);
}

static int run_checkpoint_tst(struct store_sqlite *s, struct job *j)
{
	struct checkpoint_args *a = j->arg;
	struct conn *c = s->w;
	sqlite3_stmt *st = sqlite_stmt_get(c, S_CP_TST, j->err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, (int64_t)a->size) | sqlite_bind_blob(st, 2, a->tst, a->len) |
	    sqlite3_bind_int64(st, 3, a->ms))
		return sqlite_bind_failed(c, st, j->err, "storing a checkpoint timestamp");
	return sqlite_step_done(c, st, j->err, "storing a checkpoint timestamp");
}

int sqlite_checkpoint_timestamp(struct store *base, uint64_t size, const uint8_t *tst, size_t len,
				int64_t tst_time_ms, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct checkpoint_args a = {size, NULL, tst_time_ms, tst, len};
	return sqlite_job_do(s, run_checkpoint_tst, &a, err, NULL);
}

static void checkpoint_from_row(sqlite3_stmt *st, struct checkpoint_rec *r)
{
	memset(r, 0, sizeof(*r));
	r->size = (uint64_t)sqlite3_column_int64(st, 0);
	r->note = sqlite_col_text(st, 1);
	r->created_ms = sqlite3_column_int64(st, 2);
	if (sqlite3_column_type(st, 3) != SQLITE_NULL)
		r->tst = (uint8_t *)sqlite_col_bytes(st, 3, &r->tst_len);
	r->tst_time_ms = sqlite3_column_int64(st, 4);
}

/* Runs a checkpoint query (bound by the caller via p1), collecting rows. */
static int checkpoints_query(struct store_sqlite *s, enum stmt_id id, int64_t p1, int bind,
			     struct checkpoint_rec **out, size_t *n, struct selo_err *err)
{
	*out = NULL;
	*n = 0;
	struct conn *c = sqlite_reader_take(s, err);
	if (!c)
		return -1;
	sqlite3_stmt *st = sqlite_stmt_get(c, id, err);
	int r = -1;
	if (st && bind && sqlite3_bind_int64(st, 1, p1)) {
		sqlite_bind_failed(c, st, err, "reading checkpoints");
	} else if (st) {
		size_t cap = 0;
		int rc;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			*out = sqlite_grow(*out, *n, &cap, sizeof(**out));
			checkpoint_from_row(st, &(*out)[(*n)++]);
		}
		r = rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "reading checkpoints");
		sqlite_stmt_done(st);
	}
	sqlite_reader_give(s, c);
	if (r != 0) {
		checkpoint_recs_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return r;
}

int sqlite_checkpoint_find(struct store *base, uint64_t min_size, int timestamped,
			   struct checkpoint_rec *out, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct checkpoint_rec *rows;
	size_t n;
	if (checkpoints_query(s, timestamped ? S_CP_FIND_TST : S_CP_FIND, (int64_t)min_size, 1, &rows,
			      &n, err) != 0)
		return -1;
	if (n == 0) {
		free(rows);
		return 0;
	}
	*out = rows[0];
	free(rows);
	return 1;
}

int sqlite_checkpoints_untimestamped(struct store *base, size_t max, struct checkpoint_rec **out,
				     size_t *n, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	return checkpoints_query(s, S_CP_UNTIMESTAMPED, (int64_t)(max ? max : 1), 1, out, n, err);
}

int sqlite_checkpoints_all(struct store *base, struct checkpoint_rec **out, size_t *n,
			   struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	return checkpoints_query(s, S_CP_ALL, 0, 0, out, n, err);
}
