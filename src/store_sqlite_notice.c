/* store_sqlite_notice.c: notices in the SQLite backend: API keys; accepting
 * notices (idempotency keys, the suppression check, scheduled notices),
 * claiming the due ones, sealing, delivery results, bounces, cancels,
 * sequences and suppressions, each a job the writer runs in its group's
 * transaction; and the reads of notices, events, attachments, messages,
 * disclosures, tokens and counts on the reader pool. Errors as in
 * store_sqlite.c: 4xx for the caller's mistakes, 500 for storage. */
#include "store_sqlite_int.h"

#define LIST_MAX 1000
#define CLAIM_MAX 1000

static int row_exists(struct conn *c, enum stmt_id id, const char *key, struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, id, err);
	if (!st)
		return -1;
	if (sqlite_bind_text(st, 1, key))
		return sqlite_bind_failed(c, st, err, "looking a row up");
	int rc = sqlite3_step(st);
	int r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "looking a row up");
	sqlite_stmt_done(st);
	return r;
}

static void store_notice_from_row(sqlite3_stmt *st, struct notice_rec *r)
{
	memset(r, 0, sizeof(*r));
	sqlite_col_copy(st, 0, r->id, sizeof(r->id));
	r->apikey_id = sqlite3_column_int64(st, 1);
	sqlite_col_copy(st, 2, r->status, sizeof(r->status));
	r->to = sqlite_col_text(st, 3);
	r->template_name = sqlite_col_text(st, 4);
	r->reference = sqlite_col_text(st, 5);
	r->segment = sqlite_col_text(st, 6);
	r->tags_json = sqlite_col_text(st, 7);
	r->payload_json = sqlite_col_text(st, 8);
	const void *salt = sqlite3_column_blob(st, 9);
	size_t saltlen = salt ? (size_t)sqlite3_column_bytes(st, 9) : 0;
	memcpy(r->salt, salt ? salt : "", saltlen < 32 ? saltlen : 32);
	r->attempts = sqlite3_column_int(st, 10);
	r->created_ms = sqlite3_column_int64(st, 11);
	r->updated_ms = sqlite3_column_int64(st, 12);
	r->next_attempt_ms = sqlite3_column_int64(st, 13);
	r->message_id = sqlite_col_text(st, 14);
	sqlite_col_copy(st, 15, r->sha256, sizeof(r->sha256));
	r->last_error = sqlite_col_text(st, 16);
	r->send_at_ms = sqlite3_column_int64(st, 17);
	r->sequence_id = sqlite_col_text(st, 18);
	r->step = sqlite3_column_int(st, 19);
}

/* How each column of NOTICE_COLS is stored: T text, t text or NULL, I
 * integer, S the 32-byte salt, H 64 hex digits or NULL, D a notice id.
 * SQLite keeps any value in any column, so a flipped bit in a row's header
 * turns a text into a blob, a number or NULL, or its bytes into invalid
 * UTF-8, and the row still reads: each of those is damage to report, never
 * a value to pass on (a JSON writer drops text that is not UTF-8 without a
 * word). */
static const struct {
	const char *name;
	char kind;
} NOTICE_SHAPE[] = {
	{"id", 'D'}, {"apikey_id", 'I'}, {"status", 'T'}, {"to_addr", 'T'}, {"template", 't'},
	{"reference", 't'}, {"segment", 't'}, {"tags_json", 't'}, {"payload_json", 'T'},
	{"salt", 'S'}, {"attempts", 'I'}, {"created_ms", 'I'}, {"updated_ms", 'I'},
	{"next_attempt_ms", 'I'}, {"message_id", 't'}, {"sha256", 'H'}, {"last_error", 't'},
	{"send_at_ms", 'I'}, {"sequence_id", 't'}, {"step", 'I'},
};

#define NOTICE_NCOLS ((int)(sizeof(NOTICE_SHAPE) / sizeof(NOTICE_SHAPE[0])))

static const char *const TYPE_NAMES[] = {"?", "an integer", "a real", "text", "a blob", "NULL"};

/* Why column i (of kind k) cannot be what the schema says, or NULL. */
static const char *column_wrong(sqlite3_stmt *st, int i, char k)
{
	int type = sqlite3_column_type(st, i);
	if (type == SQLITE_NULL)
		return k == 't' || k == 'H' ? NULL : "is NULL";
	if (k == 'I')
		return type == SQLITE_INTEGER ? NULL : "is not an integer";
	if (k == 'S') {
		int ok = type == SQLITE_BLOB && sqlite3_column_bytes(st, i) == 32;
		return ok ? NULL : "is not 32 bytes";
	}
	if (type != SQLITE_TEXT)
		return "is not text";
	const char *t = (const char *)sqlite3_column_text(st, i);
	size_t n = (size_t)sqlite3_column_bytes(st, i);
	if (!utf8_valid(t, n) || memchr(t, 0, n))
		return "is not valid UTF-8 text";
	if (k == 'D' && !id_text_valid(t))
		return "is not a notice id";
	if (k == 'H' && (n != 64 || strspn(t, "0123456789abcdef") != 64))
		return "is not a SHA-256 in hex";
	return NULL;
}

/* 0 when the row holds what the schema says; else 1 and why (which column,
 * how) in out. Must run before any sqlite3_column_* call converts a value. */
static int store_notice_row_damage(sqlite3_stmt *st, char *out, size_t n)
{
	for (int i = 0; i < NOTICE_NCOLS; i++) {
		int type = sqlite3_column_type(st, i);
		const char *why = column_wrong(st, i, NOTICE_SHAPE[i].kind);
		if (why) {
			snprintf(out, n, "column %s %s (stored as %s)", NOTICE_SHAPE[i].name, why,
				 TYPE_NAMES[type >= 1 && type <= 5 ? type : 0]);
			return 1;
		}
	}
	return 0;
}

/* A damaged row is an error that names the notice: the id asked for, or the
 * row's own id when that reads. */
static int store_notice_damaged(struct selo_err *err, sqlite3_stmt *st, const char *asked,
				const char *why)
{
	const unsigned char *t = sqlite3_column_text(st, 0);
	const char *id = asked ? asked : t && id_text_valid((const char *)t) ? (const char *)t : "?";
	return err_set(err, 500, "store-damaged",
		       "store: the row of notice %s is damaged: %s; run `selo store check --data "
		       "DIR` and restore the store from a backup (docs/operations.md, \"A damaged "
		       "store\")",
		       id, why);
}

/* Reads a notice row, refusing a damaged one. 0 or -1. */
static int store_notice_read(sqlite3_stmt *st, const char *asked, struct notice_rec *r,
			     struct selo_err *err)
{
	char why[160];
	if (store_notice_row_damage(st, why, sizeof(why)))
		return store_notice_damaged(err, st, asked, why);
	store_notice_from_row(st, r);
	return 0;
}

/* ---- API keys. */

struct apikey_args {
	const char *name;
	const uint8_t *hash;
	const char *prefix;
	int64_t id;
};

static int run_apikey_add(struct store_sqlite *s, struct job *j)
{
	struct apikey_args *a = j->arg;
	struct conn *c = s->w;
	sqlite3_stmt *st = sqlite_stmt_get(c, S_APIKEY_ADD, j->err);
	if (!st)
		return -1;
	if (sqlite_bind_text(st, 1, a->name) | sqlite_bind_blob(st, 2, a->hash, 32) | sqlite_bind_text(st, 3, a->prefix) |
	    sqlite3_bind_int64(st, 4, clock_now_ms()))
		return sqlite_bind_failed(c, st, j->err, "adding an API key");
	int r = sqlite_step_insert(c, st, j->err, "adding an API key", NULL);
	if (r > 0)
		err_set(j->err, 409, "apikey-exists", "store: an API key with this hash already exists");
	if (r != 0)
		return -1;
	j->ival = sqlite3_last_insert_rowid(c->db);
	return 0;
}

int sqlite_apikey_add(struct store *base, const char *name, const uint8_t hash[32],
		      const char *prefix, int64_t *id_out, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	if (!name || !prefix || strlen(name) >= sizeof(((struct apikey *)0)->name) ||
	    strlen(prefix) >= sizeof(((struct apikey *)0)->prefix))
		return err_set(err, 400, "invalid-request",
			       "store: an API key needs a name under 128 bytes and a prefix under "
			       "16 bytes");
	struct apikey_args a = {name, hash, prefix, 0};
	int64_t id = 0;
	if (sqlite_job_do(s, run_apikey_add, &a, err, &id) != 0)
		return -1;
	if (id_out)
		*id_out = id;
	return 0;
}

static int run_apikey_revoke(struct store_sqlite *s, struct job *j)
{
	struct conn *c = s->w;
	sqlite3_stmt *st = sqlite_stmt_get(c, S_APIKEY_REVOKE, j->err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, *(int64_t *)j->arg) | sqlite3_bind_int64(st, 2, clock_now_ms()))
		return sqlite_bind_failed(c, st, j->err, "revoking an API key");
	if (sqlite_step_done(c, st, j->err, "revoking an API key") != 0)
		return -1;
	j->ival = sqlite3_changes(c->db);
	return 0;
}

int sqlite_apikey_revoke(struct store *base, int64_t id, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	int64_t changed = 0;
	if (sqlite_job_do(s, run_apikey_revoke, &id, err, &changed) != 0)
		return -1;
	return changed > 0;
}

/* ---- Accepting notices. */

/* Sets status to the notice's current status. */
/* ---- Suppressions in the writer: recorded with the failure that caused
 * them, checked in the transaction that would accept the notice. */

static void suppression_from_row(sqlite3_stmt *st, struct suppression_rec *r)
{
	memset(r, 0, sizeof(*r));
	r->id = sqlite3_column_int64(st, 0);
	r->address = sqlite_col_text(st, 1);
	sqlite_col_copy(st, 2, r->enhanced, sizeof(r->enhanced));
	r->reason = sqlite_col_text(st, 3);
	sqlite_col_copy(st, 4, r->notice_id, sizeof(r->notice_id));
	r->created_ms = sqlite3_column_int64(st, 5);
}

/* The 422 for a notice to a suppressed address: when, why, which notice. */
static void suppressed_err(struct selo_err *e, const struct suppression_rec *r)
{
	char when[32];
	clock_rfc3339(r->created_ms, when);
	err_set(e, 422, "suppressed",
		"%.254s is suppressed for this API key since %s: notice %s bounced hard (%s: %.200s); "
		"nothing was queued. Use another channel, or DELETE /v1/suppressions/{address} once "
		"the address is fixed",
		r->address, when, r->notice_id, r->enhanced, r->reason ? r->reason : "");
	err_field(e, "to", "is suppressed since %s (%s, notice %s)", when, r->enhanced, r->notice_id);
}

/* 1: nn->to is suppressed for its key (res says why), 0: not, -1: storage. */
static int suppression_check(struct conn *c, const struct notice_new *nn, struct accept_result *res,
			     struct selo_err *err)
{
	char key[SUPPRESS_ADDR_MAX];
	if (!nn->to || suppress_address_key(nn->to, key, sizeof(key)) != 0)
		return 0; /* too long to be suppressed: nothing could have bounced */
	sqlite3_stmt *st = sqlite_stmt_get(c, S_SUP_FIND, err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, nn->apikey_id) | sqlite_bind_text(st, 2, key))
		return sqlite_bind_failed(c, st, err, "looking up a suppression");
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		int r = rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "looking up a suppression");
		sqlite_stmt_done(st);
		return r;
	}
	struct suppression_rec rec;
	suppression_from_row(st, &rec);
	sqlite_stmt_done(st);
	res->failed = 1;
	suppressed_err(&res->err, &rec);
	free(rec.address);
	free(rec.reason);
	return 1;
}

static int suppression_add(struct conn *c, int64_t key_id, const char *to, const char *id,
			   const char *enhanced, const char *reason, int64_t t,
			   struct selo_err *err)
{
	char shown[SUPPRESS_ADDR_MAX], key[SUPPRESS_ADDR_MAX];
	if (suppress_address_shown(to, shown, sizeof(shown)) != 0 ||
	    suppress_address_key(to, key, sizeof(key)) != 0)
		return 0; /* cannot be accepted again either (suppression_check) */
	sqlite3_stmt *st = sqlite_stmt_get(c, S_SUP_ADD, err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, key_id) | sqlite_bind_text(st, 2, shown) | sqlite_bind_text(st, 3, key) |
	    sqlite_bind_text(st, 4, enhanced) | sqlite_bind_text(st, 5, reason ? reason : enhanced) |
	    sqlite_bind_text(st, 6, id) | sqlite3_bind_int64(st, 7, t))
		return sqlite_bind_failed(c, st, err, "recording a suppression");
	return sqlite_step_done(c, st, err, "recording a suppression");
}

/* Defined with the sequences, below. */
static int store_sequence_stop_after_bounce(struct conn *c, const char *id, int64_t t,
					    struct selo_err *err);

/* After notice id's delivery_failed event: a hard bounce (suppress.h)
 * suppresses its address for its key, and stops the sequence the notice is
 * a step of, in the same transaction. */
static int after_hard_bounce(struct conn *c, const char *id, const json_t *fields,
			     const char *reason, int64_t t, struct selo_err *err)
{
	const char *enhanced;
	if (!suppress_fields_hard(fields, &enhanced))
		return 0;
	sqlite3_stmt *st = sqlite_stmt_get(c, S_SUP_NOTICE, err);
	if (!st)
		return -1;
	if (sqlite_bind_text(st, 1, id))
		return sqlite_bind_failed(c, st, err, "reading a bounced notice");
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		int r = rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "reading a bounced notice");
		sqlite_stmt_done(st);
		return r;
	}
	int64_t key_id = sqlite3_column_int64(st, 0);
	char *to = sqlite_col_text(st, 1);
	sqlite_stmt_done(st);
	int r = to ? suppression_add(c, key_id, to, id, enhanced, reason, t, err) : 0;
	free(to);
	return r == 0 ? store_sequence_stop_after_bounce(c, id, t, err) : r;
}

static int status_read(struct conn *c, const char *id, char status[16], struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_STATUS_GET, err);
	if (!st)
		return -1;
	if (sqlite_bind_text(st, 1, id))
		return sqlite_bind_failed(c, st, err, "reading a status");
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		sqlite_col_copy(st, 0, status, 16);
	int r = rc == SQLITE_ROW ? 0 : sqlite_db_err(err, c, "reading the status of a replayed notice");
	sqlite_stmt_done(st);
	return r;
}

/* 1: the key was used before (res says replay or refusal), 0: a new key,
 * -1: storage failure. Runs in the writer, so two requests with the same
 * key (in one batch, or concurrent) are seen one after the other. */
static int idempotency_check(struct conn *c, const struct notice_new *nn, struct accept_result *res,
			     struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_IDEM_GET, err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, nn->apikey_id) | sqlite_bind_text(st, 2, nn->idempotency_key))
		return sqlite_bind_failed(c, st, err, "looking up an idempotency key");
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		int r = rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "looking up an idempotency key");
		sqlite_stmt_done(st);
		return r;
	}
	const void *h = sqlite3_column_blob(st, 0);
	int same = h && sqlite3_column_bytes(st, 0) == 32 && !memcmp(h, nn->request_sha256, 32);
	char first[27];
	sqlite_col_copy(st, 1, first, sizeof(first));
	sqlite_stmt_done(st);
	if (!same) {
		res->failed = 1;
		err_set(&res->err, 422, "idempotency-key-reused",
			"Idempotency-Key \"%.128s\" was already used with a different request; "
			"send a new key for a new notice",
			nn->idempotency_key);
		return 1;
	}
	res->replay = 1;
	snprintf(res->id, sizeof(res->id), "%s", first);
	return status_read(c, first, res->status, err) == 0 ? 1 : -1;
}

static int store_notice_row_add(struct conn *c, const struct notice_new *nn, int64_t t,
				struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_NOTICE_ADD, err);
	if (!st)
		return -1;
	if (sqlite_bind_text(st, 1, nn->id) | sqlite3_bind_int64(st, 2, nn->apikey_id) |
	    sqlite_bind_text(st, 3, nn->to) | sqlite_bind_text(st, 4, nn->template_name) |
	    sqlite_bind_text(st, 5, nn->reference) | sqlite_bind_text(st, 6, nn->segment) |
	    sqlite_bind_text(st, 7, nn->tags_json) | sqlite_bind_text(st, 8, nn->payload_json) |
	    sqlite_bind_blob(st, 9, nn->salt, 32) | sqlite3_bind_int64(st, 10, t) |
	    sqlite_bind_text(st, 11, nn->due_ms > t ? "scheduled" : "queued") |
	    sqlite3_bind_int64(st, 12, nn->due_ms > t ? nn->due_ms : t) |
	    sqlite_bind_text(st, 13, nn->sequence_id) | sqlite3_bind_int64(st, 14, nn->step))
		return sqlite_bind_failed(c, st, err, "storing a notice");
	return sqlite_step_insert(c, st, err, "storing a notice", nn->id);
}

static int attachments_add(struct conn *c, const struct notice_new *nn, struct selo_err *err)
{
	sqlite3_stmt *st = nn->natt ? sqlite_stmt_get(c, S_ATT_ADD, err) : NULL;
	if (nn->natt && !st)
		return -1;
	for (size_t i = 0; i < nn->natt; i++) {
		const struct attachment_in *a = &nn->att[i];
		if (sqlite_bind_text(st, 1, nn->id) | sqlite3_bind_int64(st, 2, (sqlite3_int64)i) |
		    sqlite_bind_text(st, 3, a->filename) | sqlite_bind_text(st, 4, a->content_type) |
		    sqlite_bind_blob(st, 5, a->data, a->len))
			return sqlite_bind_failed(c, st, err, "storing an attachment");
		int r = sqlite_step_insert(c, st, err, "storing an attachment", nn->id);
		if (r != 0)
			return r;
	}
	return 0;
}

static int idempotency_add(struct conn *c, const struct notice_new *nn, int64_t t,
			   struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_IDEM_ADD, err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, nn->apikey_id) | sqlite_bind_text(st, 2, nn->idempotency_key) |
	    sqlite_bind_blob(st, 3, nn->request_sha256, 32) | sqlite_bind_text(st, 4, nn->id) |
	    sqlite3_bind_int64(st, 5, t))
		return sqlite_bind_failed(c, st, err, "storing an idempotency key");
	return sqlite_step_insert(c, st, err, "storing an idempotency key", nn->id);
}

/* Every row of one notice. 0 ok, 1 the caller's mistake, -1 storage. */
static int store_notice_insert(struct store_sqlite *s, const struct notice_new *nn, char status[16],
			       struct selo_err *err)
{
	struct conn *c = s->w;
	int64_t t = sqlite_writer_time(s); /* created_ms is the submission_accepted time */
	snprintf(status, 16, "%s", nn->due_ms > t ? "scheduled" : "queued");
	int r = store_notice_row_add(c, nn, t, err);
	if (r == 0)
		r = attachments_add(c, nn, err);
	if (r == 0 && nn->idempotency_key)
		r = idempotency_add(c, nn, t, err);
	if (r == 0)
		r = store_sqlite_event_add(c, nn->id, EV_SUBMISSION_ACCEPTED, t, nn->event_fields, nn->disc, err);
	return r;
}

/* One notice of a batch, in its own savepoint so that a refused notice
 * leaves the others. Returns -1 only for a storage failure (job fails). */
static int accept_one(struct store_sqlite *s, const struct notice_new *nn,
		      struct accept_result *res, struct selo_err *err)
{
	memset(res, 0, sizeof(*res));
	snprintf(res->id, sizeof(res->id), "%s", nn->id);
	if (nn->idempotency_key) {
		int seen = idempotency_check(s->w, nn, res, err);
		if (seen != 0)
			return seen < 0 ? -1 : 0;
	}
	if (!id_text_valid(nn->id) || !nn->to || !nn->payload_json) {
		res->failed = 1;
		err_set(&res->err, 400, "invalid-notice",
			"store: a notice needs a valid id, a recipient and a payload");
		return 0;
	}
	int sup = suppression_check(s->w, nn, res, err);
	if (sup != 0)
		return sup < 0 ? -1 : 0;
	if (sqlite_run_simple(s->w, S_ITEM_SAVE, err, "opening a savepoint") != 0)
		return -1;
	char status[16];
	int r = store_notice_insert(s, nn, status, &res->err);
	int end = sqlite_savepoint_end(s->w, S_ITEM_RELEASE, S_ITEM_UNDO, r == 0, err);
	if (end < 0)
		return -1;
	if (r == 0 && end == 0) {
		snprintf(res->status, sizeof(res->status), "%s", status);
		return 0;
	}
	if (r > 0) {
		res->failed = 1;
		return 0;
	}
	if (err && r < 0)
		*err = res->err;
	return -1;
}

struct accept_args {
	const struct notice_new *ns;
	size_t n;
	struct accept_result *res;
};

/* key_active: the key is checked in the accept's own transaction, so `selo
 * apikey revoke` (another process) takes effect at once even for a request
 * that authenticated just before it, or from the API's cache (auth.h). */
static int key_active(struct conn *c, int64_t id, struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_APIKEY_ACTIVE, err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, id))
		return sqlite_bind_failed(c, st, err, "checking an API key");
	int rc = sqlite3_step(st);
	int r = rc == SQLITE_ROW ? 0
		: rc == SQLITE_DONE ? err_set(err, 401, "unauthorized", "invalid or revoked API key")
				    : sqlite_db_err(err, c, "checking an API key");
	sqlite_stmt_done(st);
	return r;
}

static int run_accept(struct store_sqlite *s, struct job *j)
{
	struct accept_args *a = j->arg;
	int64_t checked = 0;
	int have = 0; /* checked holds a key found active */
	for (size_t i = 0; i < a->n; i++) {
		int64_t key = a->ns[i].apikey_id;
		if (a->ns[i].key_active && !(have && key == checked)) {
			if (key_active(s->w, key, j->err) != 0)
				return -1;
			checked = key;
			have = 1;
		}
		if (accept_one(s, &a->ns[i], &a->res[i], j->err) != 0)
			return -1;
	}
	return 0;
}

int sqlite_notices_accept(struct store *base, const struct notice_new *ns, size_t n,
			  struct accept_result *results, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	if (!n)
		return 0;
	struct accept_args a = {ns, n, results};
	return sqlite_job_do(s, run_accept, &a, err, NULL);
}

/* ---- Claiming due notices. */

struct claim_args {
	int64_t now;
	size_t max;
	struct notice_rec *out;
	size_t n;
};

static int due_ids(struct conn *c, int64_t now, size_t max, char (*ids)[27], size_t *n,
		   struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_DUE, err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, now) | sqlite3_bind_int64(st, 2, (sqlite3_int64)max))
		return sqlite_bind_failed(c, st, err, "finding due notices");
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < max)
		sqlite_col_copy(st, 0, ids[(*n)++], 27);
	int r = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "finding due notices");
	sqlite_stmt_done(st);
	return r;
}

/* 1 claimed (*out filled), 0 the row vanished, -1 storage failure. */
static int claim_one(struct conn *c, const char *id, int64_t t, struct notice_rec *out,
		     struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_CLAIM, err);
	if (!st)
		return -1;
	if (sqlite_bind_text(st, 1, id) | sqlite3_bind_int64(st, 2, t))
		return sqlite_bind_failed(c, st, err, "claiming a notice");
	int rc = sqlite3_step(st);
	int got = rc == SQLITE_ROW;
	if (got) {
		store_notice_from_row(st, out);
		rc = sqlite3_step(st);
	}
	int r = rc == SQLITE_DONE ? got : sqlite_db_err(err, c, "claiming a notice");
	if (r < 0 && got)
		notice_rec_free(out);
	sqlite_stmt_done(st);
	return r;
}

static int run_claim(struct store_sqlite *s, struct job *j)
{
	struct claim_args *a = j->arg;
	char(*ids)[27] = xcalloc(a->max, sizeof(*ids));
	size_t n = 0;
	int r = due_ids(s->w, a->now, a->max, ids, &n, j->err);
	a->out = n ? xcalloc(n, sizeof(*a->out)) : NULL;
	int64_t t = clock_now_ms();
	for (size_t i = 0; i < n && r == 0; i++) {
		int got = claim_one(s->w, ids[i], t, &a->out[a->n], j->err);
		if (got < 0)
			r = -1;
		else
			a->n += (size_t)got;
	}
	free(ids);
	if (r != 0) {
		notice_recs_free(a->out, a->n);
		a->out = NULL;
		a->n = 0;
	}
	return r;
}

int sqlite_claim_due(struct store *base, int64_t now_ms, size_t max, struct notice_rec **out,
		     size_t *n, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	*out = NULL;
	*n = 0;
	if (!max)
		return 0;
	struct claim_args a = {now_ms, max > CLAIM_MAX ? CLAIM_MAX : max, NULL, 0};
	if (sqlite_job_do(s, run_claim, &a, err, NULL) != 0) {
		/* The job may have succeeded and the commit failed: nothing is claimed. */
		notice_recs_free(a.out, a.n);
		return -1;
	}
	*out = a.out;
	*n = a.n;
	return 0;
}

/* ---- Sealing. */

static int tokens_add(struct conn *c, const struct seal_rec *r, struct selo_err *err)
{
	sqlite3_stmt *st = r->ntokens ? sqlite_stmt_get(c, S_TOKEN_ADD, err) : NULL;
	if (r->ntokens && !st)
		return -1;
	for (size_t i = 0; i < r->ntokens; i++) {
		const struct token_rec *k = &r->tokens[i];
		if (sqlite_bind_text(st, 1, k->token) | sqlite_bind_text(st, 2, r->id) | sqlite_bind_text(st, 3, k->kind) |
		    sqlite3_bind_int(st, 4, k->link) | sqlite_bind_text(st, 5, k->url))
			return sqlite_bind_failed(c, st, err, "storing a token");
		if (sqlite_step_done(c, st, err, "storing a token") != 0)
			return -1;
	}
	return 0;
}

static int message_add(struct conn *c, const struct seal_rec *r, int64_t t, struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_MSG_ADD, err);
	if (!st)
		return -1;
	if (sqlite_bind_text(st, 1, r->id) | sqlite_bind_blob(st, 2, r->eml, r->len) | sqlite_bind_text(st, 3, r->sha256) |
	    sqlite3_bind_int64(st, 4, t))
		return sqlite_bind_failed(c, st, err, "storing a message");
	return sqlite_step_done(c, st, err, "storing a message");
}

static int seal_mark(struct conn *c, const struct seal_rec *r, int64_t t, struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_SEAL, err);
	if (!st)
		return -1;
	if (sqlite_bind_text(st, 1, r->id) | sqlite_bind_text(st, 2, r->message_id) | sqlite_bind_text(st, 3, r->sha256) |
	    sqlite3_bind_int64(st, 4, t))
		return sqlite_bind_failed(c, st, err, "marking a notice sealed");
	return sqlite_step_done(c, st, err, "marking a notice sealed");
}

/* A notice sealed before keeps its first message, tokens and event: those
 * bytes may already have gone out, and a resend must send them again. */
static int seal_one(struct store_sqlite *s, const struct seal_rec *r, struct selo_err *err)
{
	struct conn *c = s->w;
	if (!r->id || !r->eml)
		return err_set(err, 400, "invalid-request", "store: a sealed message needs its notice "
			       "id and bytes");
	int have = row_exists(c, S_MSG_EXISTS, r->id, err);
	if (have != 0)
		return have < 0 ? -1 : 0;
	int known = row_exists(c, S_NOTICE_EXISTS, r->id, err);
	if (known <= 0)
		return known < 0 ? -1 : err_set(err, 404, "not-found", "store: notice %s not found", r->id);
	int64_t t = sqlite_writer_time(s);
	if (message_add(c, r, t, err) || tokens_add(c, r, err) || seal_mark(c, r, t, err))
		return -1;
	return store_sqlite_event_add(c, r->id, EV_CONTENT_SEALED, t, r->event_fields, r->disc, err) ? -1 : 0;
}

struct seal_args {
	const struct seal_rec *r;
	size_t n;
};

static int run_sealed(struct store_sqlite *s, struct job *j)
{
	struct seal_args *a = j->arg;
	for (size_t i = 0; i < a->n; i++)
		if (seal_one(s, &a->r[i], j->err) != 0)
			return -1;
	return 0;
}

int sqlite_notices_sealed(struct store *base, const struct seal_rec *r, size_t n,
			  struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	if (!n)
		return 0;
	struct seal_args a = {r, n};
	return sqlite_job_do(s, run_sealed, &a, err, NULL);
}

/* ---- Delivery results. */

static int state_final_or_retry(const char *st)
{
	return st && (!strcmp(st, "relayed") || !strcmp(st, "delivered") ||
		      !strcmp(st, "deferred") || !strcmp(st, "failed"));
}

static int result_one(struct store_sqlite *s, const struct result_rec *r, struct selo_err *err)
{
	struct conn *c = s->w;
	if (!r->id || !r->event_type || !state_final_or_retry(r->state))
		return err_set(err, 400, "invalid-request",
			       "store: a delivery result for notice %s needs an event type and a "
			       "state of relayed, delivered, deferred or failed",
			       r->id ? r->id : "(none)");
	sqlite3_stmt *st = sqlite_stmt_get(c, S_RESULT, err);
	if (!st)
		return -1;
	int64_t t = sqlite_writer_time(s);
	if (sqlite_bind_text(st, 1, r->id) | sqlite_bind_text(st, 2, r->state) |
	    sqlite3_bind_int64(st, 3, r->next_attempt_ms) | sqlite_bind_text(st, 4, r->last_error) |
	    sqlite3_bind_int64(st, 5, t))
		return sqlite_bind_failed(c, st, err, "recording a delivery result");
	if (sqlite_step_done(c, st, err, "recording a delivery result") != 0)
		return -1;
	if (sqlite3_changes(c->db) == 0) {
		int known = row_exists(c, S_NOTICE_EXISTS, r->id, err);
		if (known <= 0)
			return known < 0 ? -1 : err_set(err, 404, "not-found", "store: notice %s not found",
							r->id);
		/* Only a second process sending from the same database (which
		 * `selo serve` refuses) could get here: one outcome event per notice. */
		diag_warn("store: notice %s already has its outcome; a second %s was not recorded",
			  r->id, r->event_type);
		return 0;
	}
	if (store_sqlite_event_add(c, r->id, r->event_type, t, r->event_fields, r->disc, err) != 0)
		return -1;
	return after_hard_bounce(c, r->id, r->event_fields, r->last_error, t, err);
}

struct result_args {
	const struct result_rec *r;
	size_t n;
};

static int run_results(struct store_sqlite *s, struct job *j)
{
	struct result_args *a = j->arg;
	for (size_t i = 0; i < a->n; i++)
		if (result_one(s, &a->r[i], j->err) != 0)
			return -1;
	return 0;
}

int sqlite_delivery_results(struct store *base, const struct result_rec *r, size_t n,
			    struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	if (!n)
		return 0;
	struct result_args a = {r, n};
	return sqlite_job_do(s, run_results, &a, err, NULL);
}

static int run_recover(struct store_sqlite *s, struct job *j)
{
	struct conn *c = s->w;
	sqlite3_stmt *st = sqlite_stmt_get(c, S_RECOVER, j->err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, clock_now_ms()))
		return sqlite_bind_failed(c, st, j->err, "recovering notices in flight");
	if (sqlite_step_done(c, st, j->err, "recovering notices in flight") != 0)
		return -1;
	j->ival = sqlite3_changes(c->db);
	return 0;
}

int sqlite_recover_inflight(struct store *base, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	int64_t n = 0;
	if (sqlite_job_do(s, run_recover, NULL, err, &n) != 0)
		return -1;
	return (int)n;
}

/* ---- Reads, each on a connection of the reader pool. */

static void apikey_from_row(sqlite3_stmt *st, struct apikey *k)
{
	memset(k, 0, sizeof(*k));
	k->id = sqlite3_column_int64(st, 0);
	sqlite_col_copy(st, 1, k->name, sizeof(k->name));
	sqlite_col_copy(st, 2, k->prefix, sizeof(k->prefix));
	k->created_ms = sqlite3_column_int64(st, 3);
	k->revoked_ms = sqlite3_column_int64(st, 4);
}

static int apikey_find_on(struct conn *c, const uint8_t hash[32], struct apikey *out,
			  struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_APIKEY_FIND, err);
	if (!st)
		return -1;
	if (sqlite_bind_blob(st, 1, hash, 32))
		return sqlite_bind_failed(c, st, err, "finding an API key");
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		apikey_from_row(st, out);
	int r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "finding an API key");
	sqlite_stmt_done(st);
	return r;
}

/* The hash is looked up through an index; since it is the SHA-256 of a
 * high-entropy key, timing reveals nothing about any stored key. */
int sqlite_apikey_find(struct store *base, const uint8_t hash[32], struct apikey *out,
		       struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct conn *c = sqlite_reader_take(s, err);
	if (!c)
		return -1;
	int r = apikey_find_on(c, hash, out, err);
	sqlite_reader_give(s, c);
	return r;
}

static int apikey_list_on(struct conn *c, struct apikey **out, size_t *n, struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_APIKEY_LIST, err);
	if (!st)
		return -1;
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*out = sqlite_grow(*out, *n, &cap, sizeof(**out));
		apikey_from_row(st, &(*out)[(*n)++]);
	}
	int r = rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "listing API keys");
	sqlite_stmt_done(st);
	return r;
}

int sqlite_apikey_list(struct store *base, struct apikey **out, size_t *n, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	*out = NULL;
	*n = 0;
	struct conn *c = sqlite_reader_take(s, err);
	if (!c)
		return -1;
	int r = apikey_list_on(c, out, n, err);
	sqlite_reader_give(s, c);
	if (r != 0) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return r;
}

static int store_notice_get_on(struct conn *c, const char *id, int64_t apikey_id,
			       struct notice_rec *out, struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_NOTICE_GET, err);
	if (!st)
		return -1;
	if (sqlite_bind_text(st, 1, id) | sqlite3_bind_int64(st, 2, apikey_id))
		return sqlite_bind_failed(c, st, err, "reading a notice");
	int rc = sqlite3_step(st);
	int r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "reading a notice");
	if (r == 1 && store_notice_read(st, id, out, err) != 0)
		r = -1;
	sqlite_stmt_done(st);
	return r;
}

int sqlite_notice_get(struct store *base, const char *id, int64_t apikey_id, struct notice_rec *out,
		      struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	memset(out, 0, sizeof(*out));
	if (!id)
		return 0;
	struct conn *c = sqlite_reader_take(s, err);
	if (!c)
		return -1;
	int r = store_notice_get_on(c, id, apikey_id, out, err);
	sqlite_reader_give(s, c);
	return r;
}

static int store_notice_list_on(struct conn *c, const struct notice_filter *f,
				struct notice_rec **out, size_t *n, struct selo_err *err)
{
	int variant = (f->apikey_id >= 0 ? 1 : 0) | (f->reference ? 2 : 0) | (f->status ? 4 : 0);
	int limit = f->limit < 1 ? 1 : f->limit > LIST_MAX ? LIST_MAX : f->limit;
	sqlite3_stmt *st = sqlite_stmt_get(c, (enum stmt_id)(S_LIST0 + variant), err);
	if (!st)
		return -1;
	/* Every id is greater than "", so no `after` means from the first. */
	if (sqlite_bind_text(st, 1, f->after ? f->after : "") | sqlite3_bind_int64(st, 2, f->apikey_id) |
	    sqlite_bind_text(st, 3, f->reference) | sqlite_bind_text(st, 4, f->status) |
	    sqlite3_bind_int(st, 5, limit))
		return sqlite_bind_failed(c, st, err, "listing notices");
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*out = sqlite_grow(*out, *n, &cap, sizeof(**out));
		if (store_notice_read(st, NULL, &(*out)[*n], err) != 0) {
			sqlite_stmt_done(st);
			return -1;
		}
		(*n)++;
	}
	int r = rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "listing notices");
	sqlite_stmt_done(st);
	return r;
}

int sqlite_notice_list(struct store *base, const struct notice_filter *f, struct notice_rec **out,
		       size_t *n, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	*out = NULL;
	*n = 0;
	struct conn *c = sqlite_reader_take(s, err);
	if (!c)
		return -1;
	int r = store_notice_list_on(c, f, out, n, err);
	sqlite_reader_give(s, c);
	if (r != 0) {
		notice_recs_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return r;
}

static int store_notice_scan_on(struct conn *c, int64_t *cursor, size_t max,
				struct notice_rec **out, size_t *n, struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_NOTICE_SCAN, err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, *cursor) | sqlite3_bind_int64(st, 2, (int64_t)max))
		return sqlite_bind_failed(c, st, err, "scanning notices");
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*out = sqlite_grow(*out, *n, &cap, sizeof(**out));
		struct notice_rec *r = &(*out)[(*n)++];
		char why[160];
		int bad = store_notice_row_damage(st, why, sizeof(why));
		store_notice_from_row(st, r);
		if (bad)
			r->damage = sqlite_xmemdup(why, strlen(why));
		*cursor = sqlite3_column_int64(st, NOTICE_NCOLS);
	}
	int r = rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "scanning notices");
	sqlite_stmt_done(st);
	return r;
}

int sqlite_notice_scan(struct store *base, int64_t *cursor, size_t max, struct notice_rec **out,
		       size_t *n, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	*out = NULL;
	*n = 0;
	struct conn *c = sqlite_reader_take(s, err);
	if (!c)
		return -1;
	int r = store_notice_scan_on(c, cursor, max < 1 ? 1 : max > LIST_MAX ? LIST_MAX : max, out, n, err);
	sqlite_reader_give(s, c);
	if (r != 0) {
		notice_recs_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return r;
}

static void store_event_from_row(sqlite3_stmt *st, struct event_rec *e)
{
	memset(e, 0, sizeof(*e));
	e->seq = sqlite3_column_int64(st, 0);
	sqlite_col_copy(st, 1, e->notice_id, sizeof(e->notice_id));
	sqlite_col_copy(st, 2, e->type, sizeof(e->type));
	e->time_ms = sqlite3_column_int64(st, 3);
	e->entry = sqlite_col_bytes(st, 4, &e->len);
	e->log_index = sqlite3_column_int64(st, 5);
}

/* Runs a prepared and bound event query to its end. */
static int events_collect(struct conn *c, sqlite3_stmt *st, struct event_rec **out, size_t *n,
			  struct selo_err *err)
{
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*out = sqlite_grow(*out, *n, &cap, sizeof(**out));
		store_event_from_row(st, &(*out)[(*n)++]);
	}
	int r = rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "reading events");
	sqlite_stmt_done(st);
	return r;
}

int sqlite_events_query(struct store_sqlite *s, enum stmt_id id, const char *notice_id,
			int64_t after, int64_t max, struct event_rec **out, size_t *n,
			struct selo_err *err)
{
	*out = NULL;
	*n = 0;
	struct conn *c = sqlite_reader_take(s, err);
	if (!c)
		return -1;
	sqlite3_stmt *st = sqlite_stmt_get(c, id, err);
	int r = -1;
	if (st && notice_id && sqlite_bind_text(st, 1, notice_id))
		sqlite_bind_failed(c, st, err, "reading events");
	else if (st && !notice_id && (sqlite3_bind_int64(st, 1, after) | sqlite3_bind_int64(st, 2, max)))
		sqlite_bind_failed(c, st, err, "reading events");
	else if (st)
		r = events_collect(c, st, out, n, err);
	sqlite_reader_give(s, c);
	if (r != 0) {
		event_recs_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return r;
}

int sqlite_events_of(struct store *base, const char *notice_id, struct event_rec **out, size_t *n,
		     struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	if (!notice_id) {
		*out = NULL;
		*n = 0;
		return 0;
	}
	return sqlite_events_query(s, S_EVENTS_OF, notice_id, 0, 0, out, n, err);
}

static int store_event_first_on(struct conn *c, const char *id, const char *type,
				struct event_rec *out, struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_EVENT_FIRST, err);
	if (!st)
		return -1;
	if (sqlite_bind_text(st, 1, id) | sqlite_bind_text(st, 2, type))
		return sqlite_bind_failed(c, st, err, "reading an event");
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		store_event_from_row(st, out);
	int r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "reading an event");
	sqlite_stmt_done(st);
	return r;
}

int sqlite_event_first(struct store *base, const char *notice_id, const char *type,
		       struct event_rec *out, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	memset(out, 0, sizeof(*out));
	struct conn *c = sqlite_reader_take(s, err);
	if (!c)
		return -1;
	int r = store_event_first_on(c, notice_id, type, out, err);
	sqlite_reader_give(s, c);
	return r;
}

int sqlite_confirmations_of(struct store *base, const char *notice_id, struct event_rec **out,
			    size_t *n, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	if (!notice_id) {
		*out = NULL;
		*n = 0;
		return 0;
	}
	return sqlite_events_query(s, S_CONFIRMATIONS_OF, notice_id, 0, 0, out, n, err);
}

int sqlite_events_after(struct store *base, int64_t after_seq, size_t max, struct event_rec **out,
			size_t *n, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	if (!max) {
		*out = NULL;
		*n = 0;
		return 0;
	}
	int64_t lim = max > EVENTS_AFTER_MAX ? EVENTS_AFTER_MAX : (int64_t)max;
	return sqlite_events_query(s, S_EVENTS_AFTER, NULL, after_seq, lim, out, n, err);
}

static int attachments_of_on(struct conn *c, const char *id, struct attachment_rec **out, size_t *n,
			     struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_ATT_OF, err);
	if (!st)
		return -1;
	if (sqlite_bind_text(st, 1, id))
		return sqlite_bind_failed(c, st, err, "reading attachments");
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*out = sqlite_grow(*out, *n, &cap, sizeof(**out));
		struct attachment_rec *a = &(*out)[(*n)++];
		a->filename = sqlite_col_text(st, 0);
		a->content_type = sqlite_col_text(st, 1);
		a->data = (uint8_t *)sqlite_col_bytes(st, 2, &a->len);
	}
	int r = rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "reading attachments");
	sqlite_stmt_done(st);
	return r;
}

int sqlite_attachments_of(struct store *base, const char *notice_id, struct attachment_rec **out,
			  size_t *n, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	*out = NULL;
	*n = 0;
	if (!notice_id)
		return 0;
	struct conn *c = sqlite_reader_take(s, err);
	if (!c)
		return -1;
	int r = attachments_of_on(c, notice_id, out, n, err);
	sqlite_reader_give(s, c);
	if (r != 0) {
		attachment_recs_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return r;
}

static int message_get_on(struct conn *c, const char *id, struct buf *eml, char sha256[65],
			  struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_MSG_GET, err);
	if (!st)
		return -1;
	if (sqlite_bind_text(st, 1, id))
		return sqlite_bind_failed(c, st, err, "reading a message");
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const void *p = sqlite3_column_blob(st, 0);
		buf_append(eml, p ? p : "", p ? (size_t)sqlite3_column_bytes(st, 0) : 0);
		sqlite_col_copy(st, 1, sha256, 65);
	}
	int r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "reading a message");
	sqlite_stmt_done(st);
	return r;
}

int sqlite_message_get(struct store *base, const char *notice_id, struct buf *eml, char sha256[65],
		       struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	sha256[0] = '\0';
	if (!notice_id)
		return 0;
	struct conn *c = sqlite_reader_take(s, err);
	if (!c)
		return -1;
	int r = message_get_on(c, notice_id, eml, sha256, err);
	sqlite_reader_give(s, c);
	return r;
}

static int disclosures_of_on(struct conn *c, const char *id, struct disclosures *out,
			     struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_DISC_OF, err);
	if (!st)
		return -1;
	if (sqlite_bind_text(st, 1, id))
		return sqlite_bind_failed(c, st, err, "reading disclosures");
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		out->v = sqlite_grow(out->v, out->n, &out->cap, sizeof(*out->v));
		struct disclosure *d = &out->v[out->n++];
		memset(d, 0, sizeof(*d));
		sqlite_col_copy(st, 0, d->commitment, sizeof(d->commitment));
		d->value = sqlite_col_bytes(st, 1, &d->len);
	}
	int r = rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "reading disclosures");
	sqlite_stmt_done(st);
	return r;
}

int sqlite_disclosures_of(struct store *base, const char *notice_id, struct disclosures *out,
			  struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	if (!notice_id)
		return 0;
	struct conn *c = sqlite_reader_take(s, err);
	if (!c)
		return -1;
	int r = disclosures_of_on(c, notice_id, out, err);
	sqlite_reader_give(s, c);
	return r;
}

static int64_t next_due_on(struct conn *c)
{
	struct selo_err e;
	sqlite3_stmt *st = sqlite_stmt_get(c, S_NEXT_DUE, &e);
	if (!st)
		return 0;
	int64_t t = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite_stmt_done(st);
	return t;
}

/* Errors read as "nothing deferred": the sender then polls on its own
 * schedule, which is safe (claims are what matters, and they go through the
 * writer). */
int64_t sqlite_next_due(struct store *base)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct selo_err e;
	struct conn *c = sqlite_reader_take(s, &e);
	if (!c)
		return 0;
	int64_t t = next_due_on(c);
	sqlite_reader_give(s, c);
	return t;
}

static int counts_on(struct conn *c, struct store_counts *out, struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_COUNTS, err);
	if (!st)
		return -1;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char status[16];
		sqlite_col_copy(st, 0, status, sizeof(status));
		store_counts_add(out, status, sqlite3_column_int64(st, 1));
	}
	int r = rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "counting notices");
	sqlite_stmt_done(st);
	if (r != 0 || !(st = sqlite_stmt_get(c, S_EVENTS_MAX, err)))
		return -1;
	/* Events are never deleted, so the highest seq is their count. */
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		out->events = sqlite3_column_int64(st, 0);
	r = rc == SQLITE_ROW ? 0 : sqlite_db_err(err, c, "counting events");
	sqlite_stmt_done(st);
	return r;
}

int sqlite_counts(struct store *base, struct store_counts *out, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	memset(out, 0, sizeof(*out));
	struct conn *c = sqlite_reader_take(s, err);
	if (!c)
		return -1;
	int r = counts_on(c, out, err);
	sqlite_reader_give(s, c);
	return r;
}

/* ---- Events that change no notice state. */

struct events_args {
	const struct event_new *ev;
	size_t n;
};

/* One event of store_events_add, encoded into e (reused across the call:
 * a batch of hits is thousands of events). */
int store_sqlite_event_new_add(struct store_sqlite *s, const struct event_new *ev, struct buf *e,
			       struct disc_memo *m, struct selo_err *err)
{
	int64_t t = sqlite_writer_time(s);
	buf_reset(e);
	int bad = ev->fields ? event_entry_encode(e, ev->type, ev->notice_id, t, ev->fields)
			     : event_entry_encode_text(e, ev->type, ev->notice_id, t, ev->fields_text,
						       ev->fields_text ? ev->fields_len : 0);
	if (bad)
		return store_sqlite_event_unencodable(err, ev->notice_id, ev->type);
	return store_sqlite_event_row_add(s->w, ev->notice_id, ev->type, t, e, ev->disc, m, err);
}

/* Inside the writer: 0 when the notice exists, else -1 (404 when it does
 * not: the caller's whole call is refused). */
int store_sqlite_notice_known(struct store_sqlite *s, const char *id, struct selo_err *err)
{
	int exists = row_exists(s->w, S_NOTICE_EXISTS, id, err);
	if (exists > 0)
		return 0;
	return exists < 0 ? -1 : err_set(err, 404, "not-found", "store: no notice %s", id);
}

static int run_events_add(struct store_sqlite *s, struct job *j)
{
	struct events_args *a = j->arg;
	struct buf e = BUF_INIT;
	struct disc_memo memo = {0};
	int r = 0;
	for (size_t i = 0; i < a->n && r == 0; i++) {
		const struct event_new *ev = &a->ev[i];
		/* Hits come in runs of one notice: one look-up per run (the
		 * transaction holds the write lock, so it cannot vanish meanwhile). */
		if ((i == 0 || strcmp(ev->notice_id, a->ev[i - 1].notice_id) != 0) &&
		    (r = store_sqlite_notice_known(s, ev->notice_id, j->err)) != 0)
			break;
		r = store_sqlite_event_new_add(s, ev, &e, &memo, j->err) != 0 ? -1 : 0;
	}
	buf_free(&e);
	return r;
}

int sqlite_events_add(struct store *base, const struct event_new *ev, size_t n,
		      struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct events_args a = {ev, n};
	return n ? sqlite_job_do(s, run_events_add, &a, err, NULL) : 0;
}

/* ---- Tracker lookups (see store.h). */

int sqlite_token_lookup(struct store *base, const char *token, struct token_info *out,
			struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	memset(out, 0, sizeof(*out));
	struct conn *c = sqlite_reader_take(s, err);
	if (!c)
		return -1;
	sqlite3_stmt *st = sqlite_stmt_get(c, S_TOKEN_GET, err);
	int r = -1;
	if (st && sqlite_bind_text(st, 1, token)) {
		sqlite_bind_failed(c, st, err, "reading a token");
	} else if (st) {
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			sqlite_col_copy(st, 0, out->notice_id, sizeof(out->notice_id));
			sqlite_col_copy(st, 1, out->kind, sizeof(out->kind));
			out->link = sqlite3_column_int(st, 2);
			out->url = sqlite3_column_type(st, 3) == SQLITE_NULL ? NULL : sqlite_col_text(st, 3);
			r = 1;
		} else {
			r = rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "reading a token");
		}
		sqlite_stmt_done(st);
	}
	sqlite_reader_give(s, c);
	return r;
}

/* One row, one column of a statement bound with a text id (and an optional
 * second text): 1 and the statement positioned on the row, 0 none. */
static int one_row(struct conn *c, sqlite3_stmt *st, const char *a, const char *b,
		   struct selo_err *err)
{
	if (sqlite_bind_text(st, 1, a) || (b && sqlite_bind_text(st, 2, b)))
		return sqlite_bind_failed(c, st, err, "reading a notice");
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		return 1;
	int r = rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "reading a notice");
	sqlite_stmt_done(st);
	return r;
}

int sqlite_notice_brief(struct store *base, const char *id, uint8_t salt[32], int64_t *accepted_ms,
			struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct conn *c = sqlite_reader_take(s, err);
	if (!c)
		return -1;
	sqlite3_stmt *st = sqlite_stmt_get(c, S_BRIEF_SALT, err);
	int r = st ? one_row(c, st, id, NULL, err) : -1;
	if (r == 1) {
		memset(salt, 0, 32);
		if (sqlite3_column_bytes(st, 0) == 32)
			memcpy(salt, sqlite3_column_blob(st, 0), 32);
		sqlite_stmt_done(st);
		st = sqlite_stmt_get(c, S_BRIEF_ACCEPTED, err);
		int r2 = st ? one_row(c, st, id, NULL, err) : -1;
		if (r2 == 1) {
			*accepted_ms = sqlite3_column_int64(st, 0);
			sqlite_stmt_done(st);
		} else {
			r = -1;
		}
	}
	sqlite_reader_give(s, c);
	return r;
}

/* ---- Bounces after acceptance (see store.h). */

struct bounce_args {
	const char *id;
	json_t *fields;
	const struct disclosures *disc;
	const char *last_error;
};

/* The notice's status into status: 1 found, 0 not, -1 error. */
static int bounce_status(struct conn *c, const char *id, char status[16], struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_STATUS_GET, err);
	int r = st ? one_row(c, st, id, NULL, err) : -1;
	if (r == 1) {
		sqlite_col_copy(st, 0, status, 16);
		sqlite_stmt_done(st);
	}
	return r;
}

static int run_bounced(struct store_sqlite *s, struct job *j)
{
	struct bounce_args *a = j->arg;
	struct conn *c = s->w;
	char status[16];
	int r = bounce_status(c, a->id, status, j->err);
	if (r <= 0)
		return r < 0 ? -1 : err_set(j->err, 404, "not-found", "store: no notice %s", a->id);
	/* Its sender would overwrite the status with the attempt's outcome. */
	if (!strcmp(status, "sending"))
		return err_set(j->err, 409, "in-flight",
			       "store: notice %s is being sent right now; its bounce can be recorded "
			       "once this attempt is (in a few seconds)", a->id);
	sqlite3_stmt *st = sqlite_stmt_get(c, S_BOUNCED, j->err);
	r = st ? one_row(c, st, a->id, NULL, j->err) : -1;
	if (r != 0) {
		if (r == 1) {
			sqlite_stmt_done(st);
			j->ival = 1; /* already recorded: nothing new */
		}
		return r < 0 ? -1 : 0;
	}
	int64_t t = sqlite_writer_time(s);
	st = sqlite_stmt_get(c, S_BOUNCE_MARK, j->err);
	if (!st)
		return -1;
	if (sqlite_bind_text(st, 1, a->id) | sqlite_bind_text(st, 2, a->last_error) | sqlite3_bind_int64(st, 3, t))
		return sqlite_bind_failed(c, st, j->err, "recording a bounce");
	if (sqlite_step_done(c, st, j->err, "recording a bounce") != 0)
		return -1;
	if (store_sqlite_event_add(c, a->id, EV_DELIVERY_FAILED, t, a->fields, a->disc, j->err) != 0)
		return -1;
	return after_hard_bounce(c, a->id, a->fields, a->last_error, t, j->err);
}

int sqlite_notice_bounced(struct store *base, const char *id, json_t *fields,
			  const struct disclosures *disc, const char *last_error,
			  struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	const char *reason = json_string_value(json_object_get(fields, "reason"));
	if (!id || !reason || strcmp(reason, "bounced") != 0)
		return err_set(err, 400, "invalid-request",
			       "store: a bounce needs a notice id and fields with \"reason\":\"bounced\"");
	struct bounce_args a = {id, fields, disc, last_error};
	int64_t already = 0;
	if (sqlite_job_do(s, run_bounced, &a, err, &already) != 0)
		return -1;
	return already ? 1 : 0;
}

/* ---- Canceling scheduled notices and stopping sequences (docs/store.md,
 * "Scheduling and sequences"). A notice can be canceled only while it was
 * never handed to SMTP (S_CANCEL says exactly when); the writer runs claims
 * and cancels one at a time, so a notice is either claimed or canceled,
 * never both. */

static int canceled_event(struct conn *c, const char *id, int64_t t, const char *reason,
			  const char *by, const char *sequence_id, const char *bounced,
			  struct selo_err *err)
{
	json_t *f = json_object();
	json_object_set_new(f, "reason", json_string(reason));
	json_object_set_new(f, "by", json_string(by));
	if (sequence_id)
		json_object_set_new(f, "sequence", json_string(sequence_id));
	if (bounced)
		json_object_set_new(f, "bounced_notice", json_string(bounced));
	int r = store_sqlite_event_add(c, id, EV_CANCELED, t, f, NULL, err);
	json_decref(f);
	return r;
}

/* 1 canceled now (with its event), 0 no longer cancelable, -1 storage. */
static int cancel_row(struct conn *c, const char *id, int64_t t, const char *reason, const char *by,
		      const char *sequence_id, const char *bounced, struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_CANCEL, err);
	if (!st)
		return -1;
	char why[96];
	snprintf(why, sizeof(why), "canceled (%s)", reason);
	if (sqlite_bind_text(st, 1, id) | sqlite3_bind_int64(st, 2, t) | sqlite_bind_text(st, 3, why))
		return sqlite_bind_failed(c, st, err, "canceling a notice");
	if (sqlite_step_done(c, st, err, "canceling a notice") != 0)
		return -1;
	if (sqlite3_changes(c->db) == 0)
		return 0;
	return canceled_event(c, id, t, reason, by, sequence_id, bounced, err) == 0 ? 1 : -1;
}

struct cancel_args {
	const char *id;
	int64_t apikey_id;
	const char *reason;
};

static int run_cancel(struct store_sqlite *s, struct job *j)
{
	struct cancel_args *a = j->arg;
	struct conn *c = s->w;
	sqlite3_stmt *st = sqlite_stmt_get(c, S_CANCEL_GET, j->err);
	int r = st ? one_row(c, st, a->id, NULL, j->err) : -1;
	if (r <= 0)
		return r < 0 ? -1 : err_set(j->err, 404, "not-found", "no notice %s", a->id);
	int64_t key = sqlite3_column_int64(st, 0);
	char status[16];
	sqlite_col_copy(st, 1, status, sizeof(status));
	sqlite_stmt_done(st);
	if (a->apikey_id >= 0 && key != a->apikey_id)
		return err_set(j->err, 404, "not-found", "no notice %s", a->id);
	if (!strcmp(status, "canceled")) {
		j->ival = 1;
		return 0;
	}
	r = cancel_row(c, a->id, sqlite_writer_time(s), a->reason, "api", NULL, NULL, j->err);
	if (r != 0)
		return r < 0 ? -1 : 0;
	if (!strcmp(status, "sending"))
		return err_set(j->err, 409, "already-sent",
			       "notice %s is being handed to SMTP right now; it can no longer be "
			       "canceled", a->id);
	return err_set(j->err, 409, "already-sent",
		       "notice %s was already handed to SMTP (status %s); it can no longer be "
		       "canceled", a->id, status);
}

int sqlite_notice_cancel(struct store *base, const char *id, int64_t apikey_id, const char *reason,
			 struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct cancel_args a = {id, apikey_id, reason};
	int64_t already = 0;
	int r = sqlite_job_do(s, run_cancel, &a, err, &already);
	return r != 0 ? -1 : already ? 1 : 0;
}

/* Stops sequence sid (if active) and cancels its steps not yet handed to
 * SMTP. *n = steps canceled. 0 stopped now, 1 it was not active. */
static int store_sequence_stop_on(struct conn *c, const char *sid, int64_t t, const char *reason,
				  const char *bounced, int64_t *n, struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_SEQ_STOP, err);
	if (!st)
		return -1;
	if (sqlite_bind_text(st, 1, sid) | sqlite_bind_text(st, 2, reason) | sqlite3_bind_int64(st, 3, t))
		return sqlite_bind_failed(c, st, err, "stopping a sequence");
	if (sqlite_step_done(c, st, err, "stopping a sequence") != 0)
		return -1;
	if (sqlite3_changes(c->db) == 0)
		return 1;
	if (!(st = sqlite_stmt_get(c, S_SEQ_PENDING, err)))
		return -1;
	if (sqlite_bind_text(st, 1, sid))
		return sqlite_bind_failed(c, st, err, "reading a sequence's steps");
	char(*ids)[27] = NULL;
	size_t k = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		ids = sqlite_grow(ids, k, &cap, sizeof(*ids));
		sqlite_col_copy(st, 0, ids[k++], 27);
	}
	int r = rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "reading a sequence's steps");
	sqlite_stmt_done(st);
	for (size_t i = 0; i < k && r == 0; i++) {
		int got = cancel_row(c, ids[i], t, reason, "sequence", sid, bounced, err);
		if (got < 0)
			r = -1;
		else
			*n += got;
	}
	free(ids);
	return r;
}

/* After notice id bounced hard: the sequence it belongs to stops. */
static int store_sequence_stop_after_bounce(struct conn *c, const char *id, int64_t t,
					    struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_SEQ_OF, err);
	int r = st ? one_row(c, st, id, NULL, err) : -1;
	if (r <= 0)
		return r;
	char sid[32];
	sqlite_col_copy(st, 0, sid, sizeof(sid));
	sqlite_stmt_done(st);
	int64_t n = 0;
	if (store_sequence_stop_on(c, sid, t, "hard_bounce", id, &n, err) < 0)
		return -1;
	return 0;
}

struct seq_stop_args {
	const char *id;
	int64_t apikey_id;
	const char *reason;
	int64_t canceled;
};

static int run_sequence_stop(struct store_sqlite *s, struct job *j)
{
	struct seq_stop_args *a = j->arg;
	struct conn *c = s->w;
	sqlite3_stmt *st = sqlite_stmt_get(c, S_SEQ_GET, j->err);
	int r = st ? one_row(c, st, a->id, NULL, j->err) : -1;
	if (r <= 0)
		return r < 0 ? -1 : err_set(j->err, 404, "not-found", "no sequence %s", a->id);
	int64_t key = sqlite3_column_int64(st, 1);
	sqlite_stmt_done(st);
	if (a->apikey_id >= 0 && key != a->apikey_id)
		return err_set(j->err, 404, "not-found", "no sequence %s", a->id);
	r = store_sequence_stop_on(c, a->id, sqlite_writer_time(s), a->reason, NULL, &a->canceled, j->err);
	if (r < 0)
		return -1;
	j->ival = r;
	return 0;
}

int sqlite_sequence_stop(struct store *base, const char *id, int64_t apikey_id, const char *reason,
			 int64_t *canceled, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct seq_stop_args a = {id, apikey_id, reason, 0};
	int64_t already = 0;
	int r = sqlite_job_do(s, run_sequence_stop, &a, err, &already);
	if (canceled)
		*canceled = a.canceled;
	return r != 0 ? -1 : already ? 1 : 0;
}

struct seq_add_args {
	const struct sequence_new *q;
	char replay_id[32];
};

/* 1: the key's idempotency key was seen with this request (replay_id set);
 * 0: not seen; -1 with err (422 when seen with another request). */
static int store_sequence_idem(struct conn *c, const struct sequence_new *q, char replay_id[32],
			       struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_SEQ_IDEM, err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, q->apikey_id) | sqlite_bind_text(st, 2, q->idempotency_key))
		return sqlite_bind_failed(c, st, err, "reading an idempotency key");
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		int r = rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "reading an idempotency key");
		sqlite_stmt_done(st);
		return r;
	}
	sqlite_col_copy(st, 0, replay_id, 32);
	const void *h = sqlite3_column_blob(st, 1);
	int same = h && sqlite3_column_bytes(st, 1) == 32 && !memcmp(h, q->request_sha256, 32);
	sqlite_stmt_done(st);
	if (!same)
		return err_set(err, 422, "idempotency-key-reused",
			       "this Idempotency-Key was used for sequence %s with another request; "
			       "nothing was stored", replay_id);
	return 1;
}

static int run_sequence_add(struct store_sqlite *s, struct job *j)
{
	struct seq_add_args *a = j->arg;
	const struct sequence_new *q = a->q;
	struct conn *c = s->w;
	if (q->idempotency_key) {
		int seen = store_sequence_idem(c, q, a->replay_id, j->err);
		if (seen != 0) {
			j->ival = seen > 0;
			return seen < 0 ? -1 : 0;
		}
	}
	struct accept_result res;
	memset(&res, 0, sizeof(res));
	int sup = q->n ? suppression_check(c, &q->steps[0], &res, j->err) : 0;
	if (sup != 0) {
		if (sup > 0 && j->err)
			*j->err = res.err;
		return -1;
	}
	sqlite3_stmt *st = sqlite_stmt_get(c, S_SEQ_ADD, j->err);
	if (!st)
		return -1;
	if (sqlite_bind_text(st, 1, q->id) | sqlite3_bind_int64(st, 2, q->apikey_id) |
	    sqlite_bind_text(st, 3, q->request_json) | sqlite_bind_text(st, 4, q->idempotency_key) |
	    sqlite_bind_blob(st, 5, q->request_sha256, 32) | sqlite3_bind_int64(st, 6, sqlite_writer_time(s)))
		return sqlite_bind_failed(c, st, j->err, "storing a sequence");
	if (sqlite_step_insert(c, st, j->err, "storing a sequence", q->id) != 0)
		return -1;
	for (size_t i = 0; i < q->n; i++) {
		char status[16];
		if (store_notice_insert(s, &q->steps[i], status, j->err) != 0)
			return -1;
	}
	return 0;
}

int sqlite_sequence_add(struct store *base, const struct sequence_new *q, char replay_id[32],
			struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct seq_add_args a;
	memset(&a, 0, sizeof(a));
	a.q = q;
	int64_t replay = 0;
	if (sqlite_job_do(s, run_sequence_add, &a, err, &replay) != 0)
		return -1;
	if (replay)
		memcpy(replay_id, a.replay_id, 32);
	return replay ? 1 : 0;
}

static int store_sequence_get_on(struct conn *c, const char *id, int64_t apikey_id,
				 struct sequence_rec *out, struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_SEQ_GET, err);
	int r = st ? one_row(c, st, id, NULL, err) : -1;
	if (r <= 0)
		return r;
	sqlite_col_copy(st, 0, out->id, sizeof(out->id));
	out->apikey_id = sqlite3_column_int64(st, 1);
	sqlite_col_copy(st, 2, out->status, sizeof(out->status));
	out->reason = sqlite_col_text(st, 3);
	out->request_json = sqlite_col_text(st, 4);
	out->created_ms = sqlite3_column_int64(st, 5);
	out->stopped_ms = sqlite3_column_int64(st, 6);
	sqlite_stmt_done(st);
	if (apikey_id >= 0 && out->apikey_id != apikey_id)
		return 0;
	if (!(st = sqlite_stmt_get(c, S_SEQ_STEPS, err)))
		return -1;
	if (sqlite_bind_text(st, 1, id))
		return sqlite_bind_failed(c, st, err, "reading a sequence's steps");
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		out->steps = sqlite_grow(out->steps, out->nsteps, &cap, sizeof(*out->steps));
		if (store_notice_read(st, NULL, &out->steps[out->nsteps], err) != 0) {
			sqlite_stmt_done(st);
			return -1;
		}
		out->nsteps++;
	}
	r = rc == SQLITE_DONE ? 1 : sqlite_db_err(err, c, "reading a sequence's steps");
	sqlite_stmt_done(st);
	return r;
}

int sqlite_sequence_get(struct store *base, const char *id, int64_t apikey_id,
			struct sequence_rec *out, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	memset(out, 0, sizeof(*out));
	struct conn *c = sqlite_reader_take(s, err);
	if (!c)
		return -1;
	int r = store_sequence_get_on(c, id, apikey_id, out, err);
	sqlite_reader_give(s, c);
	if (r != 1)
		sequence_rec_free(out);
	return r;
}

/* ---- Suppressions: reads and deletes (store.h "Suppressions"). */

static int suppression_list_on(struct conn *c, int64_t apikey_id, int64_t before, int limit,
			       struct suppression_rec **out, size_t *n, struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_SUP_LIST, err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, apikey_id) | sqlite3_bind_int64(st, 2, before) |
	    sqlite3_bind_int(st, 3, limit))
		return sqlite_bind_failed(c, st, err, "listing suppressions");
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*out = sqlite_grow(*out, *n, &cap, sizeof(**out));
		suppression_from_row(st, &(*out)[(*n)++]);
	}
	int r = rc == SQLITE_DONE ? 0 : sqlite_db_err(err, c, "listing suppressions");
	sqlite_stmt_done(st);
	return r;
}

int sqlite_suppression_list(struct store *base, int64_t apikey_id, int64_t before, int limit,
			    struct suppression_rec **out, size_t *n, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	*out = NULL;
	*n = 0;
	if (limit < 1 || limit > LIST_MAX)
		return err_set(err, 400, "invalid-query", "limit must be 1..%d", LIST_MAX);
	struct conn *c = sqlite_reader_take(s, err);
	if (!c)
		return -1;
	int r = suppression_list_on(c, apikey_id, before > 0 ? before : INT64_MAX, limit, out, n,
				    err);
	sqlite_reader_give(s, c);
	if (r != 0) {
		suppression_recs_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return r;
}

struct suppression_del_args {
	int64_t apikey_id;
	const char *key;
};

static int run_suppression_delete(struct store_sqlite *s, struct job *j)
{
	const struct suppression_del_args *a = j->arg;
	sqlite3_stmt *st = sqlite_stmt_get(s->w, S_SUP_DELETE, j->err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, a->apikey_id) | sqlite_bind_text(st, 2, a->key))
		return sqlite_bind_failed(s->w, st, j->err, "deleting a suppression");
	if (sqlite_step_done(s->w, st, j->err, "deleting a suppression") != 0)
		return -1;
	j->ival = sqlite3_changes(s->w->db);
	return 0;
}

int sqlite_suppression_delete(struct store *base, int64_t apikey_id, const char *address,
			      struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	char key[SUPPRESS_ADDR_MAX];
	if (!address || suppress_address_key(address, key, sizeof(key)) != 0)
		return 0; /* no suppression has an address this long */
	struct suppression_del_args a = {apikey_id, key};
	int64_t n = 0;
	if (sqlite_job_do(s, run_suppression_delete, &a, err, &n) != 0)
		return -1;
	return n > 0 ? 1 : 0;
}
