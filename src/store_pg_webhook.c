/* store_pg_webhook.c: the PostgreSQL backend's webhooks and their outbox
 * (store.h "Webhooks", docs/store.md "The webhook outbox", docs/scale.md
 * "store_pg_webhook.c"), with SQLite's contracts (store_sqlite_webhook.c)
 * and what several nodes on one database need besides:
 * - the per-key limit is counted under a transaction-level advisory lock of
 *   the key, so two nodes cannot both take its last place;
 * - the fan-out locks the cursor row (FOR UPDATE) for its whole
 *   transaction, so two nodes fanning out at once take turns and no event
 *   fans out twice;
 * - store_webhook_due claims the rows it returns (claimed_by, lease_until,
 *   FOR UPDATE SKIP LOCKED), so two nodes never deliver one attempt at
 *   once; a dead node's claim returns after store.lease, and
 *   store_webhook_results clears it (and ignores a result from a node whose
 *   claim another node has taken over since: fencing).
 * Lease times are the database's clock, one clock for every node.
 * Errors as in store_pg.c (503 unavailable, 409 conflict, 500). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "selo/buf.h"
#include "selo/clock.h"
#include "selo/store.h"
#include "store_pg_int.h"

enum {
	PGW_LOCK_KEY = PG_S_WEBHOOK_BASE,
	PGW_ADD,
	PGW_LIST,
	PGW_LIST_ALL,
	PGW_COUNTS,
	PGW_DELETE,
	PGW_CURSOR_LOCK,
	PGW_CURSOR_INIT,
	PGW_RANGE,
	PGW_FANOUT,
	PGW_CURSOR_SET,
	PGW_DUE,
	PGW_RESULT,
	PGW_DISABLE,
	PGW_DROP,
	PGW_ROTATE,
	PGW_OLD_DROP,
	PGW_ACTIVE,
	PGW_PRUNE,
	PGW_END
};
_Static_assert((int)PGW_END <= (int)PG_S_STATS_BASE, "store_pg_webhook.c's ids fit in its range");

#define PGW_COLS                                                                          \
	"id,apikey_id,url,events,secret,from_seq,created_ms,disabled_ms,disabled_reason," \
	"old_secret_until_ms"
/* The database's clock in ms: leases are compared on one clock, whatever
 * the nodes' clocks say. */
/* The log index of event e (-1 when not integrated), as SQLite's
 * LOG_INDEX_OF_EVENT: the run of log_ranges that holds its seq. */
#define PGW_LOG_INDEX                                                                   \
	"CASE WHEN e.seq > (SELECT first_seq + n - 1 FROM log_ranges"                    \
	" ORDER BY first_index DESC LIMIT 1) THEN -1 ELSE"                               \
	" coalesce((SELECT CASE WHEN e.seq < r.first_seq + r.n"                           \
	" THEN r.first_index + e.seq - r.first_seq END FROM log_ranges r"                 \
	" WHERE r.first_seq <= e.seq ORDER BY r.first_seq DESC LIMIT 1), -1) END"

static const char *const pg_webhook_sql_text[PGW_END - PG_S_WEBHOOK_BASE] = {
	/* Two-key form ("selw", the key): its own key space, apart from the
	 * migration lock's one-key form. Keys that collide modulo 2^31-1 only
	 * wait for each other. */
	[PGW_LOCK_KEY - PG_S_WEBHOOK_BASE] =
		"SELECT pg_advisory_xact_lock(1936026743, ($1::bigint % 2147483647)::int)",
	/* Counted in the statement after the lock (read committed: a new
	 * snapshot, which sees the last holder's insert). */
	[PGW_ADD - PG_S_WEBHOOK_BASE] =
		"INSERT INTO webhooks(id, apikey_id, url, events, secret, from_seq, created_ms)"
		" SELECT $1::text, $2::bigint, $3::text, $4::text, $5::bytea,"
		" (SELECT coalesce(max(seq), 0) FROM events), $6::bigint"
		" WHERE (SELECT count(*) FROM webhooks WHERE apikey_id = $2::bigint) < $7::bigint",
	[PGW_LIST - PG_S_WEBHOOK_BASE] =
		"SELECT " PGW_COLS " FROM webhooks WHERE apikey_id = $1 ORDER BY id",
	[PGW_LIST_ALL - PG_S_WEBHOOK_BASE] = "SELECT " PGW_COLS " FROM webhooks ORDER BY id",
	[PGW_COUNTS - PG_S_WEBHOOK_BASE] =
		"SELECT state, count(*) FROM webhook_outbox WHERE webhook_id = $1 GROUP BY state",
	[PGW_DELETE - PG_S_WEBHOOK_BASE] = "DELETE FROM webhooks WHERE id = $1 AND apikey_id = $2",
	[PGW_CURSOR_LOCK - PG_S_WEBHOOK_BASE] = "SELECT seq FROM webhook_cursor WHERE id = 1 FOR UPDATE",
	[PGW_CURSOR_INIT - PG_S_WEBHOOK_BASE] =
		"INSERT INTO webhook_cursor(id, seq) VALUES(1, 0) ON CONFLICT (id) DO NOTHING",
	/* min(from_seq) is NULL when no webhook is active; the cursor as
	 * committed, unlocked (the look before the lock). */
	[PGW_RANGE - PG_S_WEBHOOK_BASE] =
		"SELECT (SELECT min(from_seq) FROM webhooks WHERE disabled_ms = 0),"
		" coalesce((SELECT last_seq FROM log_state WHERE id = 1), 0),"
		" coalesce((SELECT seq FROM webhook_cursor WHERE id = 1), 0)",
	/* Integrated events in ($1, $2] that an active webhook of the notice's
	 * key wants (a revoked key's get none), as SQLite's S_WH_CANDIDATES.
	 * FOR SHARE OF w: a webhook deleted or disabled meanwhile is waited
	 * for and then left out (read committed re-checks the row), instead of
	 * failing the foreign key or filling a disabled webhook's outbox. */
	[PGW_FANOUT - PG_S_WEBHOOK_BASE] =
		"WITH c AS (SELECT e.seq, w.id FROM events e JOIN notices n ON n.id = e.notice_id"
		" JOIN webhooks w ON w.apikey_id = n.apikey_id AND w.disabled_ms = 0"
		" AND e.seq > w.from_seq"
		" JOIN apikeys k ON k.id = w.apikey_id AND k.revoked_ms = 0"
		" WHERE e.seq > $1::bigint AND e.seq <= $2::bigint"
		" AND (w.events = '*' OR strpos(w.events, ',' || e.type || ',') > 0)"
		" ORDER BY e.seq, w.id FOR SHARE OF w)"
		" INSERT INTO webhook_outbox(webhook_id, seq, next_ms, created_ms)"
		" SELECT c.id, c.seq, $3::bigint, $3::bigint FROM c ORDER BY c.seq, c.id"
		" ON CONFLICT (webhook_id, seq) DO NOTHING",
	[PGW_CURSOR_SET - PG_S_WEBHOOK_BASE] = "UPDATE webhook_cursor SET seq = $1 WHERE id = 1",
	/* Claims up to $2 due rows of webhook $3 for node $4 until the
	 * database's now + $5 ms: rows nobody holds, whose lease ended, or this
	 * node's own (in flight here: webhook.c asks for them too and skips
	 * them; asking again renews their lease). Rows another claimer holds
	 * locked right now are skipped, not waited for. */
	[PGW_DUE - PG_S_WEBHOOK_BASE] =
		"WITH due AS (SELECT o.id FROM webhook_outbox o JOIN webhooks w ON w.id = o.webhook_id"
		" WHERE o.webhook_id = $3 AND o.state = 'pending' AND o.next_ms <= $1::bigint"
		" AND w.disabled_ms = 0 AND (o.claimed_by IS NULL OR o.claimed_by = $4::text"
		" OR o.lease_until <= " PG_DB_NOW_MS ")"
		" ORDER BY o.next_ms, o.id LIMIT $2 FOR UPDATE OF o SKIP LOCKED),"
		" got AS (UPDATE webhook_outbox o SET claimed_by = $4::text,"
		" lease_until = " PG_DB_NOW_MS " + $5::bigint FROM due WHERE o.id = due.id"
		" RETURNING o.id, o.webhook_id, o.attempts, o.seq, o.next_ms)"
		" SELECT g.id, g.webhook_id, g.attempts, w.url, w.secret, e.type, e.notice_id,"
		" e.time_ms, e.entry, n.reference, " PGW_LOG_INDEX ","
		" CASE WHEN w.old_secret_until_ms > $1::bigint THEN w.old_secret END"
		" FROM got g JOIN webhooks w ON w.id = g.webhook_id JOIN events e ON e.seq = g.seq"
		" JOIN notices n ON n.id = e.notice_id ORDER BY g.next_ms, g.id",
	/* Fenced: a node whose claim another node took over (its lease ended)
	 * records nothing; the claim's holder records the attempt. */
	[PGW_RESULT - PG_S_WEBHOOK_BASE] =
		"UPDATE webhook_outbox SET state = $2, attempts = attempts + 1, next_ms = $3,"
		" last_status = $4, last_error = $5, done_ms = $6, claimed_by = NULL, lease_until = 0"
		" WHERE id = $1 AND state = 'pending' AND (claimed_by IS NULL OR claimed_by = $7)",
	[PGW_DISABLE - PG_S_WEBHOOK_BASE] =
		"UPDATE webhooks SET disabled_ms = $2, disabled_reason = $3"
		" WHERE id = $1 AND disabled_ms = 0",
	[PGW_DROP - PG_S_WEBHOOK_BASE] =
		"UPDATE webhook_outbox SET state = 'dropped', done_ms = $2, claimed_by = NULL,"
		" lease_until = 0 WHERE webhook_id = $1 AND state = 'pending'",
	/* A second rotation within an overlap ends the first one's overlap. */
	[PGW_ROTATE - PG_S_WEBHOOK_BASE] =
		"UPDATE webhooks SET old_secret = secret, old_secret_until_ms = $4, secret = $3"
		" WHERE id = $1 AND apikey_id = $2",
	[PGW_OLD_DROP - PG_S_WEBHOOK_BASE] =
		"UPDATE webhooks SET old_secret = NULL, old_secret_until_ms = 0"
		" WHERE old_secret IS NOT NULL AND old_secret_until_ms <= $1",
	[PGW_ACTIVE - PG_S_WEBHOOK_BASE] = "SELECT id FROM webhooks WHERE disabled_ms = 0 ORDER BY id",
	[PGW_PRUNE - PG_S_WEBHOOK_BASE] =
		"DELETE FROM webhook_outbox WHERE id IN (SELECT id FROM webhook_outbox"
		" WHERE state != 'pending' AND done_ms < $1 ORDER BY done_ms LIMIT $2)",
};
const struct pg_sql_table pg_sql_webhook = {pg_webhook_sql_text, PGW_END - PG_S_WEBHOOK_BASE};

/* ---- Values in and out (text format; bytea as binary parameters). */

/* A bytea column (hex text) as malloc'd bytes; NULL (and *len 0) for SQL
 * NULL. An empty value is a 1-byte allocation, as SQLite's copy. */
static uint8_t *pgw_col_bytes(const PGresult *r, int row, int col, size_t *len)
{
	*len = 0;
	if (PQgetisnull(r, row, col))
		return NULL;
	size_t n = 0;
	unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), &n);
	if (!raw)
		abort(); /* out of memory: buf.h's policy */
	uint8_t *out = xmalloc(n ? n : 1);
	memcpy(out, raw, n);
	PQfreemem(raw);
	*len = n;
	return out;
}

/* Rows the statement changed (INSERT, UPDATE, DELETE). */
static int64_t pgw_changed(const PGresult *r)
{
	return strtoll(PQcmdTuples((PGresult *)r), NULL, 10);
}

/* Runs one statement whose result only counts; *changed (may be NULL) gets
 * the rows it changed. */
static int pgw_run(struct pgconn *c, int st, int n, const char *const *vals, const int *lens,
		   const int *fmts, int64_t deadline, int64_t *changed, enum pg_fail *fail,
		   const char *doing, struct selo_err *err)
{
	PGresult *r = pgconn_exec(c, (enum pg_stmt)st, n, vals, lens, fmts, deadline, fail, doing,
				  err);
	if (!r)
		return -1;
	if (changed)
		*changed = pgw_changed(r);
	PQclear(r);
	return 0;
}

/* One read statement on a pooled connection, outside a transaction. */
static PGresult *pgw_read(struct pgstore *s, int st, int n, const char *const *vals,
			  const char *doing, struct selo_err *err)
{
	int64_t deadline = pgstore_deadline(s);
	struct pgconn *c = pgstore_acquire(s, deadline, err);
	if (!c)
		return NULL;
	enum pg_fail fail = PG_OK;
	PGresult *r = pgconn_exec(c, (enum pg_stmt)st, n, vals, NULL, NULL, deadline, &fail, doing,
				  err);
	pgstore_release(s, c);
	return r;
}

/* ---- Registration */

struct pgw_add_arg {
	const struct webhook_rec *w;
	size_t max_per_key;
	int64_t added;
};

static int pgw_add_txn(struct pgconn *c, void *arg, int64_t deadline, enum pg_fail *fail,
		       struct selo_err *err)
{
	struct pgw_add_arg *a = arg;
	const struct webhook_rec *w = a->w;
	struct pg_num key, created, max;
	pg_num(&key, w->apikey_id);
	const char *lock[1] = {key.s};
	if (pgw_run(c, PGW_LOCK_KEY, 1, lock, NULL, NULL, deadline, NULL, fail,
		    "locking the key's webhooks", err) != 0)
		return -1;
	const char *vals[7] = {w->id, key.s, w->url, w->events, (const char *)w->secret,
			       pg_num(&created, w->created_ms ? w->created_ms : clock_now_ms()),
			       pg_num(&max, (int64_t)a->max_per_key)};
	const int lens[7] = {0, 0, 0, 0, (int)w->secret_len, 0, 0};
	const int fmts[7] = {0, 0, 0, 0, 1, 0, 0};
	/* libpq sends a NULL value as SQL NULL: an empty secret is an empty value. */
	if (!w->secret)
		vals[4] = "";
	return pgw_run(c, PGW_ADD, 7, vals, lens, fmts, deadline, &a->added, fail,
		       "adding a webhook", err);
}

int pg_webhook_add(struct store *s, const struct webhook_rec *w, size_t max_per_key,
		   struct selo_err *err)
{
	struct pgw_add_arg a = {w, max_per_key, 0};
	enum pg_fail fail;
	if (pgstore_txn(pgstore_of(s), pgw_add_txn, &a, &fail, err) != 0)
		return -1;
	if (a.added == 0)
		return err_set(err, 422, "too-many-webhooks",
			       "an API key has at most %zu webhooks; delete one first", max_per_key);
	return 0;
}

static void pgw_webhook_from_row(const PGresult *r, int row, struct webhook_rec *w)
{
	memset(w, 0, sizeof(*w));
	pg_col_copy(r, row, 0, w->id, sizeof(w->id));
	w->apikey_id = pg_col_int(r, row, 1);
	w->url = pg_col_text(r, row, 2);
	w->events = pg_col_text(r, row, 3);
	w->secret = pgw_col_bytes(r, row, 4, &w->secret_len);
	w->from_seq = pg_col_int(r, row, 5);
	w->created_ms = pg_col_int(r, row, 6);
	w->disabled_ms = pg_col_int(r, row, 7);
	w->disabled_reason = pg_col_text(r, row, 8);
	w->old_secret_until_ms = pg_col_int(r, row, 9);
}

/* The rows of r whose id is id (every row when id is NULL). */
static void pgw_webhooks_from(const PGresult *r, const char *id, struct webhook_rec **out,
			      size_t *n)
{
	int rows = PQntuples(r);
	*out = rows ? xcalloc((size_t)rows, sizeof(**out)) : NULL;
	*n = 0;
	for (int i = 0; i < rows; i++)
		if (!id || !strcmp(PQgetvalue(r, i, 0), id))
			pgw_webhook_from_row(r, i, &(*out)[(*n)++]);
}

int pg_webhook_list(struct store *s, int64_t apikey_id, struct webhook_rec **out, size_t *n,
		    struct selo_err *err)
{
	*out = NULL;
	*n = 0;
	struct pg_num key;
	const char *vals[1] = {pg_num(&key, apikey_id)};
	PGresult *r = apikey_id < 0 ? pgw_read(pgstore_of(s), PGW_LIST_ALL, 0, NULL,
						"listing webhooks", err)
				    : pgw_read(pgstore_of(s), PGW_LIST, 1, vals, "listing webhooks", err);
	if (!r)
		return -1;
	pgw_webhooks_from(r, NULL, out, n);
	PQclear(r);
	return 0;
}

static void pgw_counts_from(const PGresult *r, struct webhook_rec *w)
{
	for (int i = 0; i < PQntuples(r); i++) {
		const char *state = PQgetvalue(r, i, 0);
		int64_t k = pg_col_int(r, i, 1);
		if (!strcmp(state, "pending"))
			w->pending = k;
		else if (!strcmp(state, "delivered"))
			w->delivered = k;
		else if (!strcmp(state, "failed"))
			w->failed = k;
		else if (!strcmp(state, "dropped"))
			w->dropped = k;
	}
}

/* A key has few webhooks: its list, filtered by id, is the look-up (as in
 * SQLite); the counts on the same connection. */
static int pgw_get_on(struct pgconn *c, const char *id, int64_t apikey_id, struct webhook_rec *out,
		      int64_t deadline, struct selo_err *err)
{
	enum pg_fail fail = PG_OK;
	struct pg_num key;
	const char *vals[1] = {pg_num(&key, apikey_id)};
	PGresult *r = pgconn_exec(c, (enum pg_stmt)(apikey_id < 0 ? PGW_LIST_ALL : PGW_LIST), apikey_id < 0 ? 0 : 1,
				  vals, NULL, NULL, deadline, &fail, "reading a webhook", err);
	if (!r)
		return -1;
	struct webhook_rec *w = NULL;
	size_t n = 0;
	pgw_webhooks_from(r, id, &w, &n);
	PQclear(r);
	if (n != 1) {
		webhook_recs_free(w, n);
		return 0;
	}
	const char *idv[1] = {id};
	r = pgconn_exec(c, (enum pg_stmt)PGW_COUNTS, 1, idv, NULL, NULL, deadline, &fail, "counting deliveries",
			err);
	if (!r) {
		webhook_recs_free(w, n);
		return -1;
	}
	pgw_counts_from(r, &w[0]);
	PQclear(r);
	*out = w[0];
	free(w);
	return 1;
}

int pg_webhook_get(struct store *s, const char *id, int64_t apikey_id, struct webhook_rec *out,
		   struct selo_err *err)
{
	struct pgstore *ps = pgstore_of(s);
	memset(out, 0, sizeof(*out));
	int64_t deadline = pgstore_deadline(ps);
	struct pgconn *c = pgstore_acquire(ps, deadline, err);
	if (!c)
		return -1;
	int r = pgw_get_on(c, id, apikey_id, out, deadline, err);
	pgstore_release(ps, c);
	return r;
}

/* One write statement in its own transaction; *changed = rows changed. */
struct pgw_one_arg {
	int st, n;
	const char *const *vals;
	const int *lens, *fmts;
	const char *doing;
	int64_t changed;
};

static int pgw_one_txn(struct pgconn *c, void *arg, int64_t deadline, enum pg_fail *fail,
		       struct selo_err *err)
{
	struct pgw_one_arg *a = arg;
	return pgw_run(c, a->st, a->n, a->vals, a->lens, a->fmts, deadline, &a->changed, fail,
		       a->doing, err);
}

static int pgw_one(struct store *s, struct pgw_one_arg *a, struct selo_err *err)
{
	enum pg_fail fail;
	return pgstore_txn(pgstore_of(s), pgw_one_txn, a, &fail, err);
}

int pg_webhook_delete(struct store *s, const char *id, int64_t apikey_id, struct selo_err *err)
{
	struct pg_num key;
	const char *vals[2] = {id, pg_num(&key, apikey_id)};
	struct pgw_one_arg a = {.st = PGW_DELETE, .n = 2, .vals = vals, .doing = "deleting a webhook"};
	if (pgw_one(s, &a, err) != 0)
		return -1;
	return a.changed > 0 ? 1 : 0;
}

int pg_webhook_rotate_secret(struct store *s, const char *id, int64_t apikey_id,
			     const uint8_t *secret, size_t secret_len, int64_t old_until_ms,
			     struct selo_err *err)
{
	struct pg_num key, until;
	const char *vals[4] = {id, pg_num(&key, apikey_id), secret ? (const char *)secret : "",
			       pg_num(&until, old_until_ms)};
	const int lens[4] = {0, 0, (int)secret_len, 0};
	const int fmts[4] = {0, 0, 1, 0};
	struct pgw_one_arg a = {.st = PGW_ROTATE, .n = 4, .vals = vals, .lens = lens, .fmts = fmts,
				.doing = "rotating a webhook secret"};
	if (pgw_one(s, &a, err) != 0)
		return -1;
	return a.changed > 0;
}

/* ---- The fan-out */

struct pgw_fanout_arg {
	size_t max;
	int64_t added;
};

/* Locks the cursor row for the transaction and reads it; the row is made
 * the first time (a second maker waits on the first and finds it). */
static int pgw_cursor_lock(struct pgconn *c, int64_t deadline, int64_t *cursor,
			   enum pg_fail *fail, struct selo_err *err)
{
	for (int pass = 0; pass < 2; pass++) {
		PGresult *r = pgconn_exec(c, (enum pg_stmt)PGW_CURSOR_LOCK, 0, NULL, NULL, NULL, deadline, fail,
					  "locking the webhook cursor", err);
		if (!r)
			return -1;
		int have = PQntuples(r) == 1;
		if (have)
			*cursor = pg_col_int(r, 0, 0);
		PQclear(r);
		if (have)
			return 0;
		if (pgw_run(c, PGW_CURSOR_INIT, 0, NULL, NULL, NULL, deadline, NULL, fail,
			    "making the webhook cursor", err) != 0)
			return -1;
	}
	*fail = PG_FAILED;
	return err_set(err, 500, "storage-failed", "store: the webhook cursor row is missing");
}

/* What a round looks at: the active webhooks' smallest from_seq (none:
 * no active webhook), the last integrated event, the cursor. */
struct pgw_range {
	int none;
	int64_t min_from, last, cursor;
};

static int pgw_range_read(struct pgconn *c, int64_t deadline, struct pgw_range *g,
			  enum pg_fail *fail, struct selo_err *err)
{
	PGresult *r = pgconn_exec(c, (enum pg_stmt)PGW_RANGE, 0, NULL, NULL, NULL, deadline, fail,
				  "reading the range to fan out", err);
	if (!r)
		return -1;
	g->none = PQgetisnull(r, 0, 0);
	g->min_from = g->none ? 0 : pg_col_int(r, 0, 0);
	g->last = pg_col_int(r, 0, 1);
	g->cursor = pg_col_int(r, 0, 2);
	PQclear(r);
	return 0;
}

/* The range (lo, upto] to fan out, as SQLite's fanout_range: past the
 * cursor and every active webhook's from_seq, up to the last integrated
 * event. 0 when there is nothing to do. */
static int pgw_range_of(const struct pgw_range *g, size_t max, int64_t *lo, int64_t *upto)
{
	if (g->none)
		return 0; /* no active webhook: nothing to deliver, nothing to remember */
	*lo = g->cursor > g->min_from ? g->cursor : g->min_from;
	*upto = g->last < *lo + (int64_t)max ? g->last : *lo + (int64_t)max;
	return *upto > *lo;
}

/* Looks first without the lock, so that an idle round (every poll, on
 * every node) writes nothing; then locks the cursor and takes the range
 * from the cursor as locked (another node may have moved it meanwhile). */
static int pgw_fanout_txn(struct pgconn *c, void *arg, int64_t deadline, enum pg_fail *fail,
			  struct selo_err *err)
{
	struct pgw_fanout_arg *a = arg;
	struct pgw_range g;
	int64_t lo = 0, upto = 0;
	a->added = 0;
	if (pgw_range_read(c, deadline, &g, fail, err) != 0)
		return -1;
	if (!pgw_range_of(&g, a->max, &lo, &upto))
		return 0;
	if (pgw_cursor_lock(c, deadline, &g.cursor, fail, err) != 0)
		return -1;
	if (!pgw_range_of(&g, a->max, &lo, &upto))
		return 0;
	struct pg_num lo_s, upto_s, now_s;
	const char *vals[3] = {pg_num(&lo_s, lo), pg_num(&upto_s, upto),
			       pg_num(&now_s, clock_now_ms())};
	if (pgw_run(c, PGW_FANOUT, 3, vals, NULL, NULL, deadline, &a->added, fail,
		    "adding webhook deliveries", err) != 0)
		return -1;
	const char *set[1] = {upto_s.s};
	return pgw_run(c, PGW_CURSOR_SET, 1, set, NULL, NULL, deadline, NULL, fail,
		       "moving the webhook cursor", err);
}

int pg_webhook_fanout(struct store *s, size_t max, size_t *added, struct selo_err *err)
{
	*added = 0;
	struct pgw_fanout_arg a = {max ? max : 1, 0};
	enum pg_fail fail;
	if (pgstore_txn(pgstore_of(s), pgw_fanout_txn, &a, &fail, err) != 0)
		return -1;
	*added = (size_t)a.added;
	return 0;
}

/* ---- Deliveries */

int pg_webhook_active(struct store *s, char (**ids)[32], size_t *n, struct selo_err *err)
{
	*ids = NULL;
	*n = 0;
	PGresult *r = pgw_read(pgstore_of(s), PGW_ACTIVE, 0, NULL, "listing active webhooks", err);
	if (!r)
		return -1;
	int rows = PQntuples(r);
	*ids = rows ? xcalloc((size_t)rows, sizeof(**ids)) : NULL;
	for (int i = 0; i < rows; i++)
		pg_col_copy(r, i, 0, (*ids)[i], sizeof(**ids));
	*n = (size_t)rows;
	PQclear(r);
	return 0;
}

static void pgw_delivery_from_row(const PGresult *r, int row, struct webhook_delivery *d)
{
	memset(d, 0, sizeof(*d));
	d->outbox_id = pg_col_int(r, row, 0);
	pg_col_copy(r, row, 1, d->webhook_id, sizeof(d->webhook_id));
	d->attempts = (int)pg_col_int(r, row, 2);
	d->url = pg_col_text(r, row, 3);
	d->secret = pgw_col_bytes(r, row, 4, &d->secret_len);
	pg_col_copy(r, row, 5, d->type, sizeof(d->type));
	pg_col_copy(r, row, 6, d->notice_id, sizeof(d->notice_id));
	d->time_ms = pg_col_int(r, row, 7);
	d->entry = (char *)pgw_col_bytes(r, row, 8, &d->entry_len);
	d->reference = pg_col_text(r, row, 9);
	d->log_index = pg_col_int(r, row, 10);
	d->old_secret = pgw_col_bytes(r, row, 11, &d->old_secret_len);
}

/* One statement (autocommit): the claim and the rows it returns. */
int pg_webhook_due(struct store *s, const char *webhook_id, int64_t now_ms, size_t max,
		   struct webhook_delivery **out, size_t *n, struct selo_err *err)
{
	struct pgstore *ps = pgstore_of(s);
	*out = NULL;
	*n = 0;
	struct pg_num now_s, max_s, lease_s;
	const char *vals[5] = {pg_num(&now_s, now_ms), pg_num(&max_s, (int64_t)max), webhook_id,
			       pgstore_node(ps), pg_num(&lease_s, pgstore_lease_ms(ps))};
	PGresult *r = pgw_read(ps, PGW_DUE, 5, vals, "claiming due webhook deliveries", err);
	if (!r)
		return -1;
	int rows = PQntuples(r);
	*out = rows ? xcalloc((size_t)rows, sizeof(**out)) : NULL;
	for (int i = 0; i < rows; i++)
		pgw_delivery_from_row(r, i, &(*out)[i]);
	*n = (size_t)rows;
	PQclear(r);
	return 0;
}

struct pgw_results_arg {
	const struct webhook_result *r;
	size_t n;
	const char *node;
};

/* A 410: the webhook is disabled and its other pending deliveries dropped. */
static int pgw_gone(struct pgconn *c, const struct webhook_result *r, const char *now,
		    int64_t deadline, enum pg_fail *fail, struct selo_err *err)
{
	const char *dis[3] = {r->webhook_id, now, "the endpoint answered 410 Gone"};
	const char *drop[2] = {r->webhook_id, now};
	if (pgw_run(c, PGW_DISABLE, 3, dis, NULL, NULL, deadline, NULL, fail,
		    "disabling a webhook", err) != 0)
		return -1;
	return pgw_run(c, PGW_DROP, 2, drop, NULL, NULL, deadline, NULL, fail,
		       "dropping webhook deliveries", err);
}

static int pgw_result_one(struct pgconn *c, const struct webhook_result *r, const char *node,
			  const char *now, int64_t deadline, enum pg_fail *fail,
			  struct selo_err *err)
{
	static const char *const STATE[] = {"pending", "delivered", "failed", "dropped"};
	if ((unsigned)r->outcome > WEBHOOK_GONE) {
		*fail = PG_FAILED;
		return err_set(err, 400, "invalid-request", "store: unknown webhook outcome");
	}
	int done = r->outcome != WEBHOOK_RETRY;
	struct pg_num id, next, status;
	const char *vals[7] = {pg_num(&id, r->outbox_id), STATE[r->outcome],
			       pg_num(&next, done ? 0 : r->next_ms),
			       pg_num(&status, r->http_status), r->error, done ? now : "0", node};
	if (pgw_run(c, PGW_RESULT, 7, vals, NULL, NULL, deadline, NULL, fail,
		    "recording a webhook delivery", err) != 0)
		return -1;
	return r->outcome == WEBHOOK_GONE ? pgw_gone(c, r, now, deadline, fail, err) : 0;
}

static int pgw_results_txn(struct pgconn *c, void *arg, int64_t deadline, enum pg_fail *fail,
			   struct selo_err *err)
{
	const struct pgw_results_arg *a = arg;
	struct pg_num now;
	pg_num(&now, clock_now_ms());
	for (size_t i = 0; i < a->n; i++)
		if (pgw_result_one(c, &a->r[i], a->node, now.s, deadline, fail, err) != 0)
			return -1;
	return 0;
}

int pg_webhook_results(struct store *s, const struct webhook_result *r, size_t n,
		       struct selo_err *err)
{
	struct pgw_results_arg a = {r, n, pgstore_node(pgstore_of(s))};
	enum pg_fail fail;
	return n ? pgstore_txn(pgstore_of(s), pgw_results_txn, &a, &fail, err) : 0;
}

struct pgw_prune_arg {
	int64_t before_ms;
	size_t max;
	int64_t pruned;
};

static int pgw_prune_txn(struct pgconn *c, void *arg, int64_t deadline, enum pg_fail *fail,
			 struct selo_err *err)
{
	struct pgw_prune_arg *a = arg;
	struct pg_num before, max, now;
	const char *vals[2] = {pg_num(&before, a->before_ms), pg_num(&max, (int64_t)a->max)};
	if (pgw_run(c, PGW_PRUNE, 2, vals, NULL, NULL, deadline, &a->pruned, fail,
		    "pruning webhook deliveries", err) != 0)
		return -1;
	/* Secrets past their overlap are deleted, not only ignored. */
	const char *old[1] = {pg_num(&now, clock_now_ms())};
	return pgw_run(c, PGW_OLD_DROP, 1, old, NULL, NULL, deadline, NULL, fail,
		       "dropping old webhook secrets", err);
}

int pg_webhook_prune(struct store *s, int64_t before_ms, size_t max, size_t *pruned,
		     struct selo_err *err)
{
	struct pgw_prune_arg a = {before_ms, max, 0};
	enum pg_fail fail;
	int r = pgstore_txn(pgstore_of(s), pgw_prune_txn, &a, &fail, err);
	*pruned = r == 0 ? (size_t)a.pruned : 0;
	return r;
}
