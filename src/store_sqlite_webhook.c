/* store_sqlite_webhook.c: webhooks and their outbox in the SQLite backend
 * (store.h "Webhooks", docs/store.md "The webhook outbox"): registration,
 * the fan-out of integrated events into outbox rows with its cursor,
 * due deliveries per webhook, results, secret rotation and pruning.
 * Errors as in store_sqlite.c. */
#include "store_sqlite_int.h"

/* ---- Webhooks (store.h "Webhooks", docs/store.md "The webhook outbox"). */

static void store_webhook_from_row(sqlite3_stmt *st, struct webhook_rec *w)
{
	memset(w, 0, sizeof(*w));
	sqlite_col_copy(st, 0, w->id, sizeof(w->id));
	w->apikey_id = sqlite3_column_int64(st, 1);
	w->url = sqlite_col_text(st, 2);
	w->events = sqlite_col_text(st, 3);
	w->secret = (uint8_t *)sqlite_col_bytes(st, 4, &w->secret_len);
	w->from_seq = sqlite3_column_int64(st, 5);
	w->created_ms = sqlite3_column_int64(st, 6);
	w->disabled_ms = sqlite3_column_int64(st, 7);
	w->disabled_reason = sqlite_col_text(st, 8);
	w->old_secret_until_ms = sqlite3_column_int64(st, 9);
}

struct webhook_add_args {
	const struct webhook_rec *w;
	size_t max_per_key;
};

static int run_webhook_add(struct store_sqlite *s, struct job *j)
{
	const struct webhook_add_args *a = j->arg;
	const struct webhook_rec *w = a->w;
	sqlite3_stmt *st = sqlite_stmt_get(s->w, S_WH_ADD, j->err);
	if (!st)
		return -1;
	if (sqlite_bind_text(st, 1, w->id) | sqlite3_bind_int64(st, 2, w->apikey_id) |
	    sqlite_bind_text(st, 3, w->url) | sqlite_bind_text(st, 4, w->events) |
	    sqlite_bind_blob(st, 5, w->secret, w->secret_len) |
	    sqlite3_bind_int64(st, 6, w->created_ms ? w->created_ms : clock_now_ms()) |
	    sqlite3_bind_int64(st, 7, (sqlite3_int64)a->max_per_key))
		return sqlite_bind_failed(s->w, st, j->err, "adding a webhook");
	if (sqlite_step_insert(s->w, st, j->err, "adding a webhook", NULL) != 0)
		return -1;
	if (sqlite3_changes(s->w->db) == 0)
		return err_set(j->err, 422, "too-many-webhooks",
			       "an API key has at most %zu webhooks; delete one first", a->max_per_key);
	return 0;
}

int sqlite_webhook_add(struct store *base, const struct webhook_rec *w, size_t max_per_key,
		       struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct webhook_add_args a = {w, max_per_key};
	return sqlite_job_do(s, run_webhook_add, &a, err, NULL);
}

static int store_webhook_list_on(struct conn *c, const char *id, int64_t apikey_id,
				 struct webhook_rec **out, size_t *n, struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, apikey_id < 0 ? S_WH_LIST_ALL : S_WH_LIST, err);
	if (!st)
		return -1;
	if (apikey_id >= 0 && sqlite3_bind_int64(st, 1, apikey_id))
		return sqlite_bind_failed(c, st, err, "listing webhooks");
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (id && strcmp((const char *)sqlite3_column_text(st, 0), id) != 0)
			continue;
		*out = sqlite_grow(*out, *n, &cap, sizeof(**out));
		store_webhook_from_row(st, &(*out)[(*n)++]);
	}
	int r = rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "listing webhooks");
	sqlite_stmt_done(st);
	return r;
}

int sqlite_webhook_list(struct store *base, int64_t apikey_id, struct webhook_rec **out, size_t *n,
			struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	*out = NULL;
	*n = 0;
	struct conn *c = sqlite_reader_take(s, err);
	if (!c)
		return -1;
	int r = store_webhook_list_on(c, NULL, apikey_id, out, n, err);
	sqlite_reader_give(s, c);
	if (r != 0) {
		webhook_recs_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return r;
}

static int store_webhook_counts_on(struct conn *c, struct webhook_rec *w, struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_WH_COUNTS, err);
	if (!st)
		return -1;
	if (sqlite_bind_text(st, 1, w->id))
		return sqlite_bind_failed(c, st, err, "counting deliveries");
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *state = (const char *)sqlite3_column_text(st, 0);
		int64_t k = sqlite3_column_int64(st, 1);
		if (!strcmp(state, "pending"))
			w->pending = k;
		else if (!strcmp(state, "delivered"))
			w->delivered = k;
		else if (!strcmp(state, "failed"))
			w->failed = k;
		else if (!strcmp(state, "dropped"))
			w->dropped = k;
	}
	int r = rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "counting deliveries");
	sqlite_stmt_done(st);
	return r;
}

/* A key has few webhooks: its list, filtered by id, is the look-up. */
int sqlite_webhook_get(struct store *base, const char *id, int64_t apikey_id,
		       struct webhook_rec *out, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	memset(out, 0, sizeof(*out));
	struct webhook_rec *w = NULL;
	size_t n = 0;
	struct conn *c = sqlite_reader_take(s, err);
	if (!c)
		return -1;
	int r = store_webhook_list_on(c, id, apikey_id, &w, &n, err);
	if (r == 0 && n == 1)
		r = store_webhook_counts_on(c, &w[0], err);
	sqlite_reader_give(s, c);
	if (r == 0 && n == 1) {
		*out = w[0];
		free(w);
		return 1;
	}
	webhook_recs_free(w, n);
	return r == 0 ? 0 : -1;
}

struct webhook_del_args {
	const char *id;
	int64_t apikey_id;
};

static int run_webhook_delete(struct store_sqlite *s, struct job *j)
{
	const struct webhook_del_args *a = j->arg;
	sqlite3_stmt *st = sqlite_stmt_get(s->w, S_WH_DELETE, j->err);
	if (!st)
		return -1;
	if (sqlite_bind_text(st, 1, a->id) | sqlite3_bind_int64(st, 2, a->apikey_id))
		return sqlite_bind_failed(s->w, st, j->err, "deleting a webhook");
	if (sqlite_step_done(s->w, st, j->err, "deleting a webhook") != 0)
		return -1;
	j->ival = sqlite3_changes(s->w->db);
	return 0;
}

int sqlite_webhook_delete(struct store *base, const char *id, int64_t apikey_id,
			  struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct webhook_del_args a = {id, apikey_id};
	int64_t n = 0;
	if (sqlite_job_do(s, run_webhook_delete, &a, err, &n) != 0)
		return -1;
	return n > 0 ? 1 : 0;
}

/* One integer from a statement without parameters; *null when NULL. */
static int int_query_on(struct conn *c, enum stmt_id id, int64_t *out, int *null,
			struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, id, err);
	if (!st)
		return -1;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		if (null)
			*null = sqlite3_column_type(st, 0) == SQLITE_NULL;
	}
	int r = rc == SQLITE_ROW ? 0 : sqlite_db_err(err, c, "reading the webhook cursor");
	sqlite_stmt_done(st);
	return r;
}

struct fanout {
	int64_t cursor;       /* as read: the write checks it did not move */
	int64_t upto;         /* the new cursor */
	int64_t *seqs;
	char (*ids)[32];
	size_t n, cap;
};

/* The range (lo, hi] to fan out this round: past the cursor and every
 * active webhook's from_seq, up to the last integrated event. 0 when there
 * is nothing to do. */
static int fanout_range(struct conn *c, size_t max, struct fanout *f, int64_t *lo,
			struct selo_err *err)
{
	int64_t min_from = 0;
	int none = 1;
	struct log_state ls;
	if (int_query_on(c, S_WH_CURSOR, &f->cursor, NULL, err) != 0 ||
	    int_query_on(c, S_WH_MIN_FROM, &min_from, &none, err) != 0 ||
	    sqlite_log_state_on(c, &ls, err) != 0)
		return -1;
	if (none)
		return 0; /* no active webhook: nothing to deliver, nothing to remember */
	*lo = f->cursor > min_from ? f->cursor : min_from;
	f->upto = ls.last_seq < *lo + (int64_t)max ? ls.last_seq : *lo + (int64_t)max;
	return f->upto > *lo;
}

static int fanout_read(struct conn *c, size_t max, struct fanout *f, struct selo_err *err)
{
	int64_t lo = 0;
	int r = fanout_range(c, max, f, &lo, err);
	if (r <= 0)
		return r;
	sqlite3_stmt *st = sqlite_stmt_get(c, S_WH_CANDIDATES, err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, lo) | sqlite3_bind_int64(st, 2, f->upto))
		return sqlite_bind_failed(c, st, err, "reading events for webhooks");
	int rc;
	size_t cap_ids = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		f->seqs = sqlite_grow(f->seqs, f->n, &f->cap, sizeof(*f->seqs));
		f->ids = sqlite_grow(f->ids, f->n, &cap_ids, sizeof(*f->ids));
		f->seqs[f->n] = sqlite3_column_int64(st, 0);
		sqlite_col_copy(st, 1, f->ids[f->n], sizeof(f->ids[0]));
		f->n++;
	}
	r = rc == SQLITE_DONE ? 1 : sqlite_db_err(err, c, "reading events for webhooks");
	sqlite_stmt_done(st);
	return r;
}

static int run_webhook_fanout(struct store_sqlite *s, struct job *j)
{
	const struct fanout *f = j->arg;
	struct conn *c = s->w;
	int64_t cur = 0;
	if (int_query_on(c, S_WH_CURSOR, &cur, NULL, j->err) != 0)
		return -1;
	if (cur != f->cursor)
		return err_set(j->err, 409, "conflict", "store: the webhook cursor moved meanwhile");
	sqlite3_stmt *st = sqlite_stmt_get(c, S_WH_OUTBOX_ADD, j->err);
	if (!st)
		return -1;
	int64_t now = clock_now_ms();
	for (size_t i = 0; i < f->n; i++) {
		if (sqlite_bind_text(st, 1, f->ids[i]) | sqlite3_bind_int64(st, 2, f->seqs[i]) |
		    sqlite3_bind_int64(st, 3, now))
			return sqlite_bind_failed(c, st, j->err, "adding a webhook delivery");
		if (sqlite_step_done(c, st, j->err, "adding a webhook delivery") != 0)
			return -1;
		j->ival += sqlite3_changes(c->db);
	}
	st = sqlite_stmt_get(c, S_WH_CURSOR_SET, j->err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, f->upto))
		return sqlite_bind_failed(c, st, j->err, "moving the webhook cursor");
	return sqlite_step_done(c, st, j->err, "moving the webhook cursor");
}

int sqlite_webhook_fanout(struct store *base, size_t max, size_t *added, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	*added = 0;
	struct fanout f;
	memset(&f, 0, sizeof(f));
	struct conn *c = sqlite_reader_take(s, err);
	if (!c)
		return -1;
	int r = fanout_read(c, max ? max : 1, &f, err);
	sqlite_reader_give(s, c);
	int64_t n = 0;
	if (r > 0)
		r = sqlite_job_do(s, run_webhook_fanout, &f, err, &n);
	free(f.seqs);
	free(f.ids);
	*added = (size_t)n;
	return r < 0 ? -1 : 0;
}

static void delivery_from_row(sqlite3_stmt *st, struct webhook_delivery *d)
{
	memset(d, 0, sizeof(*d));
	d->outbox_id = sqlite3_column_int64(st, 0);
	sqlite_col_copy(st, 1, d->webhook_id, sizeof(d->webhook_id));
	d->attempts = sqlite3_column_int(st, 2);
	d->url = sqlite_col_text(st, 3);
	d->secret = (uint8_t *)sqlite_col_bytes(st, 4, &d->secret_len);
	sqlite_col_copy(st, 5, d->type, sizeof(d->type));
	sqlite_col_copy(st, 6, d->notice_id, sizeof(d->notice_id));
	d->time_ms = sqlite3_column_int64(st, 7);
	d->entry = sqlite_col_bytes(st, 8, &d->entry_len);
	d->reference = sqlite_col_text(st, 9);
	d->log_index = sqlite3_column_int64(st, 10);
	d->old_secret = (uint8_t *)sqlite_col_bytes(st, 11, &d->old_secret_len);
}

int sqlite_webhook_active(struct store *base, char (**ids)[32], size_t *n, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	*ids = NULL;
	*n = 0;
	struct conn *c = sqlite_reader_take(s, err);
	if (!c)
		return -1;
	sqlite3_stmt *st = sqlite_stmt_get(c, S_WH_ACTIVE, err);
	int r = -1;
	if (st) {
		size_t cap = 0;
		int rc;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			*ids = sqlite_grow(*ids, *n, &cap, sizeof(**ids));
			sqlite_col_copy(st, 0, (*ids)[(*n)++], sizeof(**ids));
		}
		r = rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "listing active webhooks");
		sqlite_stmt_done(st);
	}
	sqlite_reader_give(s, c);
	if (r != 0) {
		free(*ids);
		*ids = NULL;
		*n = 0;
	}
	return r;
}

int sqlite_webhook_due(struct store *base, const char *webhook_id, int64_t now_ms, size_t max,
		       struct webhook_delivery **out, size_t *n, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	*out = NULL;
	*n = 0;
	struct conn *c = sqlite_reader_take(s, err);
	if (!c)
		return -1;
	sqlite3_stmt *st = sqlite_stmt_get(c, S_WH_DUE, err);
	int r = -1;
	if (st && (sqlite3_bind_int64(st, 1, now_ms) | sqlite3_bind_int64(st, 2, (int64_t)max) |
		   sqlite_bind_text(st, 3, webhook_id))) {
		sqlite_bind_failed(c, st, err, "reading due webhook deliveries");
	} else if (st) {
		size_t cap = 0;
		int rc;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			*out = sqlite_grow(*out, *n, &cap, sizeof(**out));
			delivery_from_row(st, &(*out)[(*n)++]);
		}
		r = rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "reading due webhook deliveries");
		sqlite_stmt_done(st);
	}
	sqlite_reader_give(s, c);
	if (r != 0) {
		webhook_deliveries_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return r;
}

struct webhook_results_args {
	const struct webhook_result *r;
	size_t n;
};

/* A 410: the webhook is disabled and its other pending deliveries dropped. */
static int store_webhook_gone(struct conn *c, const struct webhook_result *r, int64_t now,
			      struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_WH_DISABLE, err);
	if (!st)
		return -1;
	if (sqlite_bind_text(st, 1, r->webhook_id) | sqlite3_bind_int64(st, 2, now) |
	    sqlite_bind_text(st, 3, "the endpoint answered 410 Gone"))
		return sqlite_bind_failed(c, st, err, "disabling a webhook");
	if (sqlite_step_done(c, st, err, "disabling a webhook") != 0)
		return -1;
	st = sqlite_stmt_get(c, S_WH_DROP, err);
	if (!st)
		return -1;
	if (sqlite_bind_text(st, 1, r->webhook_id) | sqlite3_bind_int64(st, 2, now))
		return sqlite_bind_failed(c, st, err, "dropping webhook deliveries");
	return sqlite_step_done(c, st, err, "dropping webhook deliveries");
}

static int store_webhook_result_one(struct conn *c, const struct webhook_result *r, int64_t now,
				    struct selo_err *err)
{
	static const char *const STATE[] = {"pending", "delivered", "failed", "dropped"};
	if ((unsigned)r->outcome > WEBHOOK_GONE)
		return err_set(err, 400, "invalid-request", "store: unknown webhook outcome");
	sqlite3_stmt *st = sqlite_stmt_get(c, S_WH_RESULT, err);
	if (!st)
		return -1;
	int done = r->outcome != WEBHOOK_RETRY;
	if (sqlite3_bind_int64(st, 1, r->outbox_id) | sqlite_bind_text(st, 2, STATE[r->outcome]) |
	    sqlite3_bind_int64(st, 3, done ? 0 : r->next_ms) | sqlite3_bind_int(st, 4, r->http_status) |
	    sqlite_bind_text(st, 5, r->error) | sqlite3_bind_int64(st, 6, done ? now : 0))
		return sqlite_bind_failed(c, st, err, "recording a webhook delivery");
	if (sqlite_step_done(c, st, err, "recording a webhook delivery") != 0)
		return -1;
	return r->outcome == WEBHOOK_GONE ? store_webhook_gone(c, r, now, err) : 0;
}

static int run_webhook_results(struct store_sqlite *s, struct job *j)
{
	const struct webhook_results_args *a = j->arg;
	int64_t now = clock_now_ms();
	for (size_t i = 0; i < a->n; i++)
		if (store_webhook_result_one(s->w, &a->r[i], now, j->err) != 0)
			return -1;
	return 0;
}

int sqlite_webhook_results(struct store *base, const struct webhook_result *r, size_t n,
			   struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct webhook_results_args a = {r, n};
	return n ? sqlite_job_do(s, run_webhook_results, &a, err, NULL) : 0;
}

struct webhook_prune_args {
	int64_t before_ms;
	size_t max;
};

static int run_webhook_prune(struct store_sqlite *s, struct job *j)
{
	const struct webhook_prune_args *a = j->arg;
	sqlite3_stmt *st = sqlite_stmt_get(s->w, S_WH_PRUNE, j->err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, a->before_ms) | sqlite3_bind_int64(st, 2, (sqlite3_int64)a->max))
		return sqlite_bind_failed(s->w, st, j->err, "pruning webhook deliveries");
	if (sqlite_step_done(s->w, st, j->err, "pruning webhook deliveries") != 0)
		return -1;
	j->ival = sqlite3_changes(s->w->db);
	/* Secrets past their overlap are deleted, not only ignored. */
	st = sqlite_stmt_get(s->w, S_WH_OLD_DROP, j->err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, clock_now_ms()))
		return sqlite_bind_failed(s->w, st, j->err, "dropping old webhook secrets");
	return sqlite_step_done(s->w, st, j->err, "dropping old webhook secrets");
}

struct webhook_rotate_args {
	const char *id;
	int64_t apikey_id;
	const uint8_t *secret;
	size_t secret_len;
	int64_t old_until_ms;
};

static int run_webhook_rotate(struct store_sqlite *s, struct job *j)
{
	const struct webhook_rotate_args *a = j->arg;
	sqlite3_stmt *st = sqlite_stmt_get(s->w, S_WH_ROTATE, j->err);
	if (!st)
		return -1;
	if (sqlite_bind_text(st, 1, a->id) | sqlite3_bind_int64(st, 2, a->apikey_id) |
	    sqlite_bind_blob(st, 3, a->secret, a->secret_len) | sqlite3_bind_int64(st, 4, a->old_until_ms))
		return sqlite_bind_failed(s->w, st, j->err, "rotating a webhook secret");
	if (sqlite_step_done(s->w, st, j->err, "rotating a webhook secret") != 0)
		return -1;
	j->ival = sqlite3_changes(s->w->db);
	return 0;
}

int sqlite_webhook_rotate_secret(struct store *base, const char *id, int64_t apikey_id,
				 const uint8_t *secret, size_t secret_len, int64_t old_until_ms,
				 struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct webhook_rotate_args a = {id, apikey_id, secret, secret_len, old_until_ms};
	int64_t n = 0;
	if (sqlite_job_do(s, run_webhook_rotate, &a, err, &n) != 0)
		return -1;
	return n > 0;
}

int sqlite_webhook_prune(struct store *base, int64_t before_ms, size_t max, size_t *pruned,
			 struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct webhook_prune_args a = {before_ms, max};
	int64_t n = 0;
	int r = sqlite_job_do(s, run_webhook_prune, &a, err, &n);
	*pruned = r == 0 ? (size_t)n : 0;
	return r;
}
