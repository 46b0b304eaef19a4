/* store_pg_notice.c: the PostgreSQL backend's writes to notices (store_pg_int.h,
 * docs/scale.md "store_pg_notice.c"): API keys; accepting notices
 * (idempotency keys, the key and suppression checks, scheduled notices,
 * attachments, sequence steps); claiming due notices with leases, for
 * several nodes at once; sealing, delivery results, bounces, cancels,
 * sequences and suppressions; and, at start, returning this node's claims.
 * Each op has the contract of its store.h function and mirrors
 * store_sqlite_notice.c: the same return values, error statuses and types,
 * and events in the same order.
 *
 * Every op runs in one pgstore_txn. An op that adds events takes the event
 * clock's row lock (event_clock) as its FIRST statement, rather than at its
 * first event (pg_event_add takes it there anyway, and keeps it to the
 * commit): those transactions then run one after another from their first
 * read, as SQLite's writer runs its jobs, so the idempotency, API-key and
 * suppression checks read what every earlier writer committed, and two of
 * them never deadlock on notice rows taken in different orders. Claims take
 * no clock lock: they add no event, and skip rows others hold (SKIP LOCKED).
 *
 * Errors: the caller's mistakes get the 4xx SQLite gives, with the
 * transaction rolled back and not retried (*fail = PG_FAILED); the
 * database's own failures come from store_pg.c (503 unavailable, 500). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "selo/buf.h"
#include "selo/clock.h"
#include "selo/diag.h"
#include "selo/event.h"
#include "selo/id.h"
#include "selo/store.h"
#include "selo/suppress.h"
#include "store_pg_int.h"

#define PGN_CLAIM_MAX 1000
#define PGN_COLS                                                                        \
	"id,apikey_id,status,to_addr,template,reference,segment,tags_json,payload_json,"  \
	"salt,attempts,created_ms,updated_ms,next_attempt_ms,message_id,sha256,last_error," \
	"send_at_ms,sequence_id,step"

/* Lease times are the database's clock, one clock for every node (as the
 * webhook outbox's): a node whose clock runs ahead cannot take another's
 * claim early. */

enum {
	PGN_CLOCK_LOCK = PG_S_NOTICE_BASE,
	PGN_APIKEY_ADD,
	PGN_APIKEY_REVOKE,
	PGN_APIKEY_ACTIVE,
	PGN_IDEM_GET,
	PGN_IDEM_ADD,
	PGN_STATUS_GET,
	PGN_NOTICE_ADD,
	PGN_NOTICE_TIMED,
	PGN_ATT_ADD,
	PGN_SUP_FIND,
	PGN_SUP_ADD,
	PGN_SUP_NOTICE,
	PGN_SUP_DELETE,
	PGN_CLAIM,
	PGN_NOTICE_LOCK,
	PGN_MSG_EXISTS,
	PGN_MSG_ADD,
	PGN_TOKEN_ADD,
	PGN_SEAL,
	PGN_LEASE_RENEW,
	PGN_RESULT,
	PGN_RECOVER,
	PGN_BOUNCED,
	PGN_BOUNCE_MARK,
	PGN_CANCEL_GET,
	PGN_CANCEL,
	PGN_SEQ_ADD,
	PGN_SEQ_IDEM,
	PGN_SEQ_KEY,
	PGN_SEQ_PENDING,
	PGN_SEQ_STOP,
	PGN_SEQ_OF,
	PGN_END
};
_Static_assert((int)PGN_END <= (int)PG_S_READ_BASE, "store_pg_notice.c's statements fit its range");

#define PGN(x) [PGN_##x - PG_S_NOTICE_BASE]
static const char *const pg_notice_sql_text[PGN_END - PG_S_NOTICE_BASE] = {
	/* the lock pg_event_add takes, taken first (see the top of this file) */
	PGN(CLOCK_LOCK) = "SELECT seq FROM event_clock WHERE id = 1 FOR UPDATE",
	/* DO NOTHING: a duplicate is the caller's 409, without aborting the transaction */
	PGN(APIKEY_ADD) = "INSERT INTO apikeys(name, hash, prefix, created_ms) VALUES($1, $2, $3, $4)"
			  " ON CONFLICT (hash) DO NOTHING RETURNING id",
	PGN(APIKEY_REVOKE) = "UPDATE apikeys SET revoked_ms = $2 WHERE id = $1 AND revoked_ms = 0",
	/* FOR SHARE: a revoke (on any node) waits for this accept, or this
	 * accept sees the revoke: never both committed the other way round */
	PGN(APIKEY_ACTIVE) = "SELECT 1 FROM apikeys WHERE id = $1 AND revoked_ms = 0 FOR SHARE",
	PGN(IDEM_GET) = "SELECT request_sha256, notice_id FROM idempotency WHERE apikey_id = $1"
			" AND key = $2",
	PGN(IDEM_ADD) = "INSERT INTO idempotency(apikey_id, key, request_sha256, notice_id,"
			" created_ms) VALUES($1, $2, $3, $4, $5)",
	PGN(STATUS_GET) = "SELECT status FROM notices WHERE id = $1",
	PGN(NOTICE_ADD) = "INSERT INTO notices(id, apikey_id, status, to_addr, template, reference,"
			  " segment, tags_json, payload_json, salt, attempts, created_ms, updated_ms,"
			  " next_attempt_ms, send_at_ms, sequence_id, step) VALUES($1, $2, $11, $3, $4,"
			  " $5, $6, $7, $8, $9, 0, $10, $10, $12, $12, $13, $14)",
	/* created_ms is the submission_accepted event's time (docs/store.md
	 * "States"), which pg_event_add chose: the row takes it from the event */
	PGN(NOTICE_TIMED) = "UPDATE notices SET created_ms = e.time_ms, updated_ms = e.time_ms,"
			    " status = CASE WHEN $3::bigint > e.time_ms THEN 'scheduled' ELSE 'queued' END,"
			    " next_attempt_ms = greatest($3::bigint, e.time_ms),"
			    " send_at_ms = greatest($3::bigint, e.time_ms)"
			    " FROM events e WHERE notices.id = $1 AND e.seq = $2 RETURNING notices.status",
	PGN(ATT_ADD) = "INSERT INTO attachments(notice_id, idx, filename, content_type, data)"
		       " VALUES($1, $2, $3, $4, $5)",
	PGN(SUP_FIND) = "SELECT id, address, enhanced, reason, notice_id, created_ms FROM suppressions"
			" WHERE apikey_id = $1 AND address_key = $2",
	PGN(SUP_ADD) = "INSERT INTO suppressions(apikey_id, address, address_key, enhanced, reason,"
		       " notice_id, created_ms) VALUES($1, $2, $3, $4, $5, $6, $7)"
		       " ON CONFLICT (apikey_id, address_key) DO NOTHING",
	PGN(SUP_NOTICE) = "SELECT apikey_id, to_addr FROM notices WHERE id = $1",
	PGN(SUP_DELETE) = "DELETE FROM suppressions WHERE apikey_id = $1 AND address_key = $2",
	/* Due notices, and those a node claimed and whose lease has run out (it
	 * died, or hangs). cand: the oldest few of each kind, one index range
	 * scan each (notices_due), as SQLite's S_DUE, rather than one OR that
	 * would sort every queued notice on each claim when the queue is long;
	 * $6 = 4 x max of them, so that rows another node is claiming right now
	 * leave this one enough. due: those rows locked, skipping rows others
	 * hold (FOR UPDATE is not allowed with UNION, hence two steps), with
	 * the condition again: a row changed since the statement's snapshot is
	 * re-checked against its new version when locked. Two nodes claiming
	 * at once get disjoint sets. */
	PGN(CLAIM) = "WITH cand AS (SELECT id FROM ("
		     "(SELECT id, next_attempt_ms AS t FROM notices WHERE status = 'queued'"
		     " ORDER BY next_attempt_ms, id LIMIT $6::bigint)"
		     " UNION ALL (SELECT id, next_attempt_ms FROM notices WHERE status = 'deferred'"
		     " AND next_attempt_ms <= $1::bigint ORDER BY next_attempt_ms, id LIMIT $6::bigint)"
		     " UNION ALL (SELECT id, next_attempt_ms FROM notices WHERE status = 'scheduled'"
		     " AND next_attempt_ms <= $1::bigint ORDER BY next_attempt_ms, id LIMIT $6::bigint)"
		     " UNION ALL (SELECT id, next_attempt_ms FROM notices WHERE status = 'sending'"
		     " AND lease_until < " PG_DB_NOW_MS " ORDER BY next_attempt_ms, id LIMIT $6::bigint)"
		     ") c ORDER BY t, id LIMIT $6::bigint),"
		     " due AS MATERIALIZED (SELECT id FROM notices WHERE id IN (SELECT id FROM cand)"
		     " AND (status = 'queued'"
		     " OR (status IN ('deferred', 'scheduled') AND next_attempt_ms <= $1::bigint)"
		     " OR (status = 'sending' AND lease_until < " PG_DB_NOW_MS "))"
		     " ORDER BY next_attempt_ms, id LIMIT $3::bigint FOR UPDATE SKIP LOCKED),"
		     " took AS (UPDATE notices SET status = 'sending', updated_ms = $2::bigint,"
		     " claimed_by = $4, lease_until = " PG_DB_NOW_MS " + $5::bigint"
		     " WHERE id IN (SELECT id FROM due) RETURNING " PGN_COLS ")"
		     " SELECT " PGN_COLS " FROM took ORDER BY next_attempt_ms, id",
	PGN(NOTICE_LOCK) = "SELECT 1 FROM notices WHERE id = $1 FOR UPDATE",
	PGN(MSG_EXISTS) = "SELECT 1 FROM messages WHERE notice_id = $1",
	PGN(MSG_ADD) = "INSERT INTO messages(notice_id, eml, sha256, created_ms) VALUES($1, $2, $3, $4)",
	PGN(TOKEN_ADD) = "INSERT INTO tokens(token, notice_id, kind, link, url) VALUES($1, $2, $3, $4, $5)"
			 " ON CONFLICT (token) DO NOTHING",
	PGN(SEAL) = "UPDATE notices SET message_id = $2, sha256 = $3, updated_ms = $4 WHERE id = $1",
	/* The claimant sealing its notice is alive and about to send: its
	 * lease starts again (the SMTP session is the long part) */
	PGN(LEASE_RENEW) = "UPDATE notices SET lease_until = " PG_DB_NOW_MS " + $3::bigint WHERE id = $1"
			   " AND claimed_by = $2 AND status = 'sending'",
	/* One outcome per notice (docs/store.md "States"); the claim ends */
	PGN(RESULT) = "UPDATE notices SET status = $2, attempts = attempts + 1, next_attempt_ms = $3,"
		      " last_error = $4, updated_ms = $5, claimed_by = NULL, lease_until = 0"
		      " WHERE id = $1 AND status NOT IN ('relayed', 'delivered', 'failed')",
	/* Only this node's: another node's claims are its own until their lease ends */
	PGN(RECOVER) = "UPDATE notices SET status = 'queued', updated_ms = $1, claimed_by = NULL,"
		       " lease_until = 0 WHERE status = 'sending' AND claimed_by = $2",
	PGN(BOUNCED) = "SELECT 1 FROM events WHERE notice_id = $1 AND type = 'delivery_failed'"
		       " AND convert_from(entry, 'UTF8')::jsonb ->> 'reason' = 'bounced' LIMIT 1",
	PGN(BOUNCE_MARK) = "UPDATE notices SET status = 'failed', last_error = $2, updated_ms = $3"
			   " WHERE id = $1",
	PGN(CANCEL_GET) = "SELECT apikey_id, status FROM notices WHERE id = $1 FOR UPDATE",
	/* Only a notice never handed to SMTP (docs/store.md "States") */
	PGN(CANCEL) = "UPDATE notices SET status = 'canceled', updated_ms = $2, last_error = $3"
		      " WHERE id = $1 AND status IN ('scheduled', 'queued') AND message_id IS NULL"
		      " AND attempts = 0",
	PGN(SEQ_ADD) = "INSERT INTO sequences(id, apikey_id, status, request_json, idempotency_key,"
		       " request_sha256, created_ms) VALUES($1, $2, 'active', $3, $4, $5, $6)",
	PGN(SEQ_IDEM) = "SELECT id, request_sha256 FROM sequences WHERE apikey_id = $1"
			" AND idempotency_key = $2",
	PGN(SEQ_KEY) = "SELECT apikey_id FROM sequences WHERE id = $1",
	PGN(SEQ_PENDING) = "SELECT id FROM notices WHERE sequence_id = $1"
			   " AND status IN ('scheduled', 'queued') AND message_id IS NULL"
			   " AND attempts = 0 ORDER BY step",
	PGN(SEQ_STOP) = "UPDATE sequences SET status = 'stopped', reason = $2, stopped_ms = $3"
			" WHERE id = $1 AND status = 'active'",
	PGN(SEQ_OF) = "SELECT sequence_id FROM notices WHERE id = $1 AND sequence_id IS NOT NULL",
};
#undef PGN
const struct pg_sql_table pg_sql_notice = {pg_notice_sql_text, PGN_END - PG_S_NOTICE_BASE};

/* ---- Running statements: one transaction's connection, deadline and
 * failure, and a statement's parameters built in place. */

struct pgn {
	struct pgconn *c;
	int64_t deadline;
	enum pg_fail *fail;
	struct selo_err *err;
};

#define PGN_MAXP 16
struct pgn_params {
	int n;
	const char *v[PGN_MAXP];
	int len[PGN_MAXP];
	int fmt[PGN_MAXP];
	char num[PGN_MAXP][24];
};

static void pp_text(struct pgn_params *p, const char *s)
{
	p->v[p->n] = s;
	p->len[p->n] = 0;
	p->fmt[p->n++] = 0;
}

static void pp_int(struct pgn_params *p, int64_t x)
{
	snprintf(p->num[p->n], sizeof p->num[0], "%lld", (long long)x);
	pp_text(p, p->num[p->n]);
}

/* bytea, sent binary (never NULL: an empty value is "") */
static void pp_bin(struct pgn_params *p, const void *data, size_t len)
{
	p->v[p->n] = data ? (const char *)data : "";
	p->len[p->n] = (int)len;
	p->fmt[p->n++] = 1;
}

static PGresult *pgn_run(struct pgn *x, int st, const struct pgn_params *p, const char *doing)
{
	return pgconn_exec(x->c, (enum pg_stmt)st, p ? p->n : 0, p ? p->v : NULL,
			   p ? p->len : NULL, p ? p->fmt : NULL, x->deadline, x->fail, doing, x->err);
}

/* Runs a statement whose rows are not wanted: 0 (*changed = rows it
 * touched or returned, when not NULL), or -1. */
static int pgn_do(struct pgn *x, int st, const struct pgn_params *p, const char *doing,
		  int64_t *changed)
{
	PGresult *r = pgn_run(x, st, p, doing);
	if (!r)
		return -1;
	if (changed)
		*changed = PQresultStatus(r) == PGRES_TUPLES_OK ? PQntuples(r)
								: strtoll(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return 0;
}

/* The caller's mistake (err already set): roll back, do not retry. */
static int pgn_refused(struct pgn *x)
{
	*x->fail = PG_FAILED;
	return -1;
}

/* The same, written around the err_set that says why: pgn_no(x, err_set(...)). */
static int pgn_no(struct pgn *x, int err_set_rc)
{
	(void)err_set_rc;
	return pgn_refused(x);
}

static int pgn_clock_lock(struct pgn *x)
{
	return pgn_do(x, PGN_CLOCK_LOCK, NULL, "taking the event clock", NULL);
}

/* A bytea column (text form) into out, when it is exactly n bytes: 1, else 0. */
static int pgn_bytes(const PGresult *r, int row, int col, uint8_t *out, size_t n)
{
	if (PQgetisnull(r, row, col))
		return 0;
	size_t len = 0;
	unsigned char *b = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), &len);
	int ok = b && len == n;
	if (ok)
		memcpy(out, b, n);
	PQfreemem(b);
	return ok;
}

/* One row of PGN_COLS. */
static void pgn_notice_from_row(const PGresult *r, int row, struct notice_rec *n)
{
	memset(n, 0, sizeof(*n));
	pg_col_copy(r, row, 0, n->id, sizeof(n->id));
	n->apikey_id = pg_col_int(r, row, 1);
	pg_col_copy(r, row, 2, n->status, sizeof(n->status));
	n->to = pg_col_text(r, row, 3);
	n->template_name = pg_col_text(r, row, 4);
	n->reference = pg_col_text(r, row, 5);
	n->segment = pg_col_text(r, row, 6);
	n->tags_json = pg_col_text(r, row, 7);
	n->payload_json = pg_col_text(r, row, 8);
	pgn_bytes(r, row, 9, n->salt, sizeof(n->salt));
	n->attempts = (int)pg_col_int(r, row, 10);
	n->created_ms = pg_col_int(r, row, 11);
	n->updated_ms = pg_col_int(r, row, 12);
	n->next_attempt_ms = pg_col_int(r, row, 13);
	n->message_id = pg_col_text(r, row, 14);
	pg_col_copy(r, row, 15, n->sha256, sizeof(n->sha256));
	n->last_error = pg_col_text(r, row, 16);
	n->send_at_ms = pg_col_int(r, row, 17);
	n->sequence_id = pg_col_text(r, row, 18);
	n->step = (int)pg_col_int(r, row, 19);
}

/* A text-id look-up: 1 a row (kept in *out when out is not NULL, else
 * cleared), 0 none, -1 failure. */
static int pgn_row(struct pgn *x, int st, const char *id, const char *doing, PGresult **out)
{
	struct pgn_params p = {0};
	pp_text(&p, id);
	PGresult *r = pgn_run(x, st, &p, doing);
	if (!r)
		return -1;
	int got = PQntuples(r) > 0;
	if (got && out)
		*out = r;
	else
		PQclear(r);
	return got;
}

/* ---- API keys. */

struct pgn_apikey {
	const char *name, *prefix;
	const uint8_t *hash;
	int64_t id;
};

static int pgn_apikey_add_txn(struct pgconn *c, void *arg, int64_t deadline, enum pg_fail *fail,
			      struct selo_err *err)
{
	struct pgn_apikey *a = arg;
	struct pgn x = {c, deadline, fail, err};
	struct pgn_params p = {0};
	pp_text(&p, a->name);
	pp_bin(&p, a->hash, 32);
	pp_text(&p, a->prefix);
	pp_int(&p, clock_now_ms());
	PGresult *r = pgn_run(&x, PGN_APIKEY_ADD, &p, "adding an API key");
	if (!r)
		return -1;
	int got = PQntuples(r) == 1;
	a->id = got ? pg_col_int(r, 0, 0) : 0;
	PQclear(r);
	if (!got)
		return pgn_no(&x, err_set(err, 409, "apikey-exists",
					  "store: an API key with this hash already exists"));
	return 0;
}

int pg_apikey_add(struct store *s, const char *name, const uint8_t hash[32], const char *prefix,
		  int64_t *id_out, struct selo_err *err)
{
	if (!name || !prefix || strlen(name) >= sizeof(((struct apikey *)0)->name) ||
	    strlen(prefix) >= sizeof(((struct apikey *)0)->prefix))
		return err_set(err, 400, "invalid-request",
			       "store: an API key needs a name under 128 bytes and a prefix under "
			       "16 bytes");
	struct pgn_apikey a = {name, prefix, hash, 0};
	enum pg_fail fail;
	if (pgstore_txn(pgstore_of(s), pgn_apikey_add_txn, &a, &fail, err) != 0)
		return -1;
	if (id_out)
		*id_out = a.id;
	return 0;
}

static int pgn_apikey_revoke_txn(struct pgconn *c, void *arg, int64_t deadline,
				 enum pg_fail *fail, struct selo_err *err)
{
	struct pgn_apikey *a = arg;
	struct pgn x = {c, deadline, fail, err};
	struct pgn_params p = {0};
	pp_int(&p, a->id);
	pp_int(&p, clock_now_ms());
	int64_t n = 0;
	if (pgn_do(&x, PGN_APIKEY_REVOKE, &p, "revoking an API key", &n) != 0)
		return -1;
	a->id = n; /* now: how many were revoked */
	return 0;
}

int pg_apikey_revoke(struct store *s, int64_t id, struct selo_err *err)
{
	struct pgn_apikey a = {.id = id};
	enum pg_fail fail;
	if (pgstore_txn(pgstore_of(s), pgn_apikey_revoke_txn, &a, &fail, err) != 0)
		return -1;
	return a.id > 0;
}

/* ---- Suppressions checked and recorded inside the writes. */

/* The 422 for a notice to a suppressed address (as SQLite words it). */
static void pgn_suppressed_err(struct selo_err *e, const char *address, const char *enhanced,
			       const char *reason, const char *notice_id, int64_t created_ms)
{
	char when[32];
	clock_rfc3339(created_ms, when);
	err_set(e, 422, "suppressed",
		"%.254s is suppressed for this API key since %s: notice %s bounced hard (%s: %.200s); "
		"nothing was queued. Use another channel, or DELETE /v1/suppressions/{address} once "
		"the address is fixed",
		address, when, notice_id, enhanced, reason ? reason : "");
	err_field(e, "to", "is suppressed since %s (%s, notice %s)", when, enhanced, notice_id);
}

/* 1: nn->to is suppressed for its key (res says why), 0: not, -1: failure. */
static int pgn_suppression_check(struct pgn *x, const struct notice_new *nn,
				 struct accept_result *res)
{
	char key[SUPPRESS_ADDR_MAX];
	if (!nn->to || suppress_address_key(nn->to, key, sizeof(key)) != 0)
		return 0; /* too long to be suppressed: nothing could have bounced */
	struct pgn_params p = {0};
	pp_int(&p, nn->apikey_id);
	pp_text(&p, key);
	PGresult *r = pgn_run(x, PGN_SUP_FIND, &p, "looking up a suppression");
	if (!r)
		return -1;
	int got = PQntuples(r) > 0;
	if (got) {
		char enhanced[16], notice[27];
		pg_col_copy(r, 0, 2, enhanced, sizeof enhanced);
		pg_col_copy(r, 0, 4, notice, sizeof notice);
		res->failed = 1;
		pgn_suppressed_err(&res->err, PQgetvalue(r, 0, 1), enhanced,
				   PQgetisnull(r, 0, 3) ? NULL : PQgetvalue(r, 0, 3), notice,
				   pg_col_int(r, 0, 5));
	}
	PQclear(r);
	return got;
}

static int pgn_suppression_add(struct pgn *x, int64_t key_id, const char *to, const char *id,
			       const char *enhanced, const char *reason)
{
	char shown[SUPPRESS_ADDR_MAX], key[SUPPRESS_ADDR_MAX];
	if (suppress_address_shown(to, shown, sizeof(shown)) != 0 ||
	    suppress_address_key(to, key, sizeof(key)) != 0)
		return 0; /* cannot be accepted again either (pgn_suppression_check) */
	struct pgn_params p = {0};
	pp_int(&p, key_id);
	pp_text(&p, shown);
	pp_text(&p, key);
	pp_text(&p, enhanced);
	pp_text(&p, reason ? reason : enhanced);
	pp_text(&p, id);
	pp_int(&p, clock_now_ms());
	return pgn_do(x, PGN_SUP_ADD, &p, "recording a suppression", NULL);
}

static int pgn_sequence_stop_after_bounce(struct pgn *x, const char *id);

/* After notice id's delivery_failed event: a hard bounce suppresses its
 * address for its key, and stops the sequence the notice is a step of, in
 * the same transaction (as SQLite's after_hard_bounce). */
static int pgn_after_hard_bounce(struct pgn *x, const char *id, const json_t *fields,
				 const char *reason)
{
	const char *enhanced;
	if (!suppress_fields_hard(fields, &enhanced))
		return 0;
	PGresult *r = NULL;
	int got = pgn_row(x, PGN_SUP_NOTICE, id, "reading a bounced notice", &r);
	if (got <= 0)
		return got;
	int64_t key_id = pg_col_int(r, 0, 0);
	char *to = pg_col_text(r, 0, 1);
	PQclear(r);
	int rc = to ? pgn_suppression_add(x, key_id, to, id, enhanced, reason) : 0;
	free(to);
	return rc == 0 ? pgn_sequence_stop_after_bounce(x, id) : rc;
}

/* ---- Accepting notices. */

/* 1: the key was used before (res says replay or refusal), 0: a new key,
 * -1: failure. */
static int pgn_idempotency_check(struct pgn *x, const struct notice_new *nn,
				 struct accept_result *res)
{
	struct pgn_params p = {0};
	pp_int(&p, nn->apikey_id);
	pp_text(&p, nn->idempotency_key);
	PGresult *r = pgn_run(x, PGN_IDEM_GET, &p, "looking up an idempotency key");
	if (!r)
		return -1;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return 0;
	}
	uint8_t h[32];
	int same = pgn_bytes(r, 0, 0, h, 32) && !memcmp(h, nn->request_sha256, 32);
	char first[27];
	pg_col_copy(r, 0, 1, first, sizeof first);
	PQclear(r);
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
	r = NULL;
	int got = pgn_row(x, PGN_STATUS_GET, first, "reading the status of a replayed notice", &r);
	if (got <= 0)
		return got < 0 ? -1 : pgn_no(x, err_set(x->err, 500, "storage-failed",
							 "store: the notice of an idempotency key is missing"));
	pg_col_copy(r, 0, 0, res->status, sizeof(res->status));
	PQclear(r);
	return 1;
}

static int pgn_notice_row_add(struct pgn *x, const struct notice_new *nn, int64_t t)
{
	struct pgn_params p = {0};
	pp_text(&p, nn->id);
	pp_int(&p, nn->apikey_id);
	pp_text(&p, nn->to);
	pp_text(&p, nn->template_name);
	pp_text(&p, nn->reference);
	pp_text(&p, nn->segment);
	pp_text(&p, nn->tags_json);
	pp_text(&p, nn->payload_json);
	pp_bin(&p, nn->salt, 32);
	pp_int(&p, t);
	pp_text(&p, nn->due_ms > t ? "scheduled" : "queued");
	pp_int(&p, nn->due_ms > t ? nn->due_ms : t);
	pp_text(&p, nn->sequence_id);
	pp_int(&p, nn->step);
	return pgn_do(x, PGN_NOTICE_ADD, &p, "storing a notice", NULL);
}

static int pgn_attachments_add(struct pgn *x, const struct notice_new *nn)
{
	for (size_t i = 0; i < nn->natt; i++) {
		const struct attachment_in *a = &nn->att[i];
		struct pgn_params p = {0};
		pp_text(&p, nn->id);
		pp_int(&p, (int64_t)i);
		pp_text(&p, a->filename);
		pp_text(&p, a->content_type);
		pp_bin(&p, a->data, a->len);
		if (pgn_do(x, PGN_ATT_ADD, &p, "storing an attachment", NULL) != 0)
			return -1;
	}
	return 0;
}

static int pgn_idempotency_add(struct pgn *x, const struct notice_new *nn, int64_t t)
{
	struct pgn_params p = {0};
	pp_int(&p, nn->apikey_id);
	pp_text(&p, nn->idempotency_key);
	pp_bin(&p, nn->request_sha256, 32);
	pp_text(&p, nn->id);
	pp_int(&p, t);
	return pgn_do(x, PGN_IDEM_ADD, &p, "storing an idempotency key", NULL);
}

/* Its times (and so its status) from the submission_accepted event. */
static int pgn_notice_timed(struct pgn *x, const struct notice_new *nn, int64_t seq,
			    char status[16])
{
	struct pgn_params p = {0};
	pp_text(&p, nn->id);
	pp_int(&p, seq);
	pp_int(&p, nn->due_ms);
	PGresult *r = pgn_run(x, PGN_NOTICE_TIMED, &p, "timing a notice");
	if (!r)
		return -1;
	if (PQntuples(r) == 1)
		pg_col_copy(r, 0, 0, status, 16);
	PQclear(r);
	return 0;
}

/* Every row of one notice: 0 ok, 1 the caller's mistake (err says it: a
 * duplicate id, fields that cannot be encoded), -1 failure. */
static int pgn_notice_insert(struct pgn *x, const struct notice_new *nn, char status[16])
{
	int64_t t = clock_now_ms(); /* provisional: pgn_notice_timed sets the event's */
	snprintf(status, 16, "%s", nn->due_ms > t ? "scheduled" : "queued");
	int64_t seq = 0;
	int r = pgn_notice_row_add(x, nn, t);
	if (r == 0)
		r = pgn_attachments_add(x, nn);
	if (r == 0 && nn->idempotency_key)
		r = pgn_idempotency_add(x, nn, t);
	if (r == 0)
		r = pg_event_add(x->c, nn->id, EV_SUBMISSION_ACCEPTED, nn->event_fields, nn->disc,
				 x->deadline, &seq, x->fail, x->err);
	if (r == 0)
		r = pgn_notice_timed(x, nn, seq, status);
	if (r < 0 && *x->fail == PG_CONFLICT) {
		err_set(x->err, 409, "conflict", "store: storing notice %s: %s", nn->id,
			"it exists already (duplicate key)");
		return 1;
	}
	return r;
}

/* SAVEPOINT, RELEASE, ROLLBACK TO: a refused notice of a batch leaves the others. */
static int pgn_savepoint(struct pgn *x, const char *sql)
{
	return pgconn_simple(x->c, sql, x->deadline, x->fail, "a notice's savepoint", x->err);
}

/* One notice of a batch. -1 only for a failure of the whole transaction. */
static int pgn_accept_one(struct pgn *x, const struct notice_new *nn, struct accept_result *res)
{
	memset(res, 0, sizeof(*res));
	snprintf(res->id, sizeof(res->id), "%s", nn->id);
	if (nn->idempotency_key) {
		int seen = pgn_idempotency_check(x, nn, res);
		if (seen != 0)
			return seen < 0 ? -1 : 0;
	}
	if (!id_text_valid(nn->id) || !nn->to || !nn->payload_json) {
		res->failed = 1;
		err_set(&res->err, 400, "invalid-notice",
			"store: a notice needs a valid id, a recipient and a payload");
		return 0;
	}
	int sup = pgn_suppression_check(x, nn, res);
	if (sup != 0)
		return sup < 0 ? -1 : 0;
	if (pgn_savepoint(x, "SAVEPOINT item") != 0)
		return -1;
	char status[16];
	struct pgn item = {x->c, x->deadline, x->fail, &res->err};
	int r = pgn_notice_insert(&item, nn, status);
	if (r < 0)
		return x->err ? (*x->err = res->err, -1) : -1;
	if (pgn_savepoint(x, r == 0 ? "RELEASE item" : "ROLLBACK TO item") != 0)
		return -1;
	if (r == 0)
		snprintf(res->status, sizeof(res->status), "%s", status);
	else
		res->failed = 1;
	return 0;
}

/* The key is checked in the accept's own transaction, so a revoke (by any
 * node, or `selo apikey revoke`) takes effect at once (auth.h). */
static int pgn_key_active(struct pgn *x, int64_t id)
{
	struct pgn_params p = {0};
	pp_int(&p, id);
	int64_t n = 0;
	if (pgn_do(x, PGN_APIKEY_ACTIVE, &p, "checking an API key", &n) != 0)
		return -1;
	if (n == 0)
		return pgn_no(x, err_set(x->err, 401, "unauthorized",
						    "invalid or revoked API key"));
	return 0;
}

struct pgn_accept {
	const struct notice_new *ns;
	size_t n;
	struct accept_result *res;
};

static int pgn_accept_txn(struct pgconn *c, void *arg, int64_t deadline, enum pg_fail *fail,
			  struct selo_err *err)
{
	struct pgn_accept *a = arg;
	struct pgn x = {c, deadline, fail, err};
	if (pgn_clock_lock(&x) != 0)
		return -1;
	int64_t checked = 0;
	int have = 0; /* checked holds a key found active */
	for (size_t i = 0; i < a->n; i++) {
		int64_t key = a->ns[i].apikey_id;
		if (a->ns[i].key_active && !(have && key == checked)) {
			if (pgn_key_active(&x, key) != 0)
				return -1;
			checked = key;
			have = 1;
		}
		if (pgn_accept_one(&x, &a->ns[i], &a->res[i]) != 0)
			return -1;
	}
	return 0;
}

int pg_notices_accept(struct store *s, const struct notice_new *ns, size_t n,
		      struct accept_result *results, struct selo_err *err)
{
	if (!n)
		return 0;
	struct pgn_accept a = {ns, n, results};
	enum pg_fail fail;
	return pgstore_txn(pgstore_of(s), pgn_accept_txn, &a, &fail, err);
}

/* ---- Claiming due notices, with leases. */

struct pgn_claim {
	struct pgstore *s;
	int64_t now;
	size_t max;
	struct notice_rec *out;
	size_t n;
};

static int pgn_claim_txn(struct pgconn *c, void *arg, int64_t deadline, enum pg_fail *fail,
			 struct selo_err *err)
{
	struct pgn_claim *a = arg;
	struct pgn x = {c, deadline, fail, err};
	int64_t t = clock_now_ms();
	struct pgn_params p = {0};
	pp_int(&p, a->now);
	pp_int(&p, t);
	pp_int(&p, (int64_t)a->max);
	pp_text(&p, pgstore_node(a->s));
	pp_int(&p, pgstore_lease_ms(a->s));
	pp_int(&p, 4 * (int64_t)a->max);
	PGresult *r = pgn_run(&x, PGN_CLAIM, &p, "claiming due notices");
	if (!r)
		return -1;
	notice_recs_free(a->out, a->n); /* a retried run starts over */
	a->n = (size_t)PQntuples(r);
	a->out = a->n ? xcalloc(a->n, sizeof(*a->out)) : NULL;
	for (size_t i = 0; i < a->n; i++)
		pgn_notice_from_row(r, (int)i, &a->out[i]);
	PQclear(r);
	return 0;
}

int pg_claim_due(struct store *s, int64_t now_ms, size_t max, struct notice_rec **out, size_t *n,
		 struct selo_err *err)
{
	*out = NULL;
	*n = 0;
	if (!max)
		return 0;
	struct pgn_claim a = {pgstore_of(s), now_ms, max > PGN_CLAIM_MAX ? PGN_CLAIM_MAX : max,
			      NULL, 0};
	enum pg_fail fail;
	if (pgstore_txn(a.s, pgn_claim_txn, &a, &fail, err) != 0) {
		/* the commit may have failed after the rows were read: nothing is claimed */
		notice_recs_free(a.out, a.n);
		return -1;
	}
	*out = a.out;
	*n = a.n;
	return 0;
}

static int pgn_recover_txn(struct pgconn *c, void *arg, int64_t deadline, enum pg_fail *fail,
			   struct selo_err *err)
{
	struct pgn_claim *a = arg;
	struct pgn x = {c, deadline, fail, err};
	struct pgn_params p = {0};
	pp_int(&p, clock_now_ms());
	pp_text(&p, pgstore_node(a->s));
	int64_t k = 0;
	if (pgn_do(&x, PGN_RECOVER, &p, "recovering notices in flight", &k) != 0)
		return -1;
	a->n = (size_t)k;
	return 0;
}

int pg_recover_inflight(struct store *s, struct selo_err *err)
{
	struct pgn_claim a = {.s = pgstore_of(s)};
	enum pg_fail fail;
	if (pgstore_txn(a.s, pgn_recover_txn, &a, &fail, err) != 0)
		return -1;
	return (int)a.n;
}

/* ---- Sealing. */

static int pgn_tokens_add(struct pgn *x, const struct seal_rec *r)
{
	for (size_t i = 0; i < r->ntokens; i++) {
		const struct token_rec *k = &r->tokens[i];
		struct pgn_params p = {0};
		pp_text(&p, k->token);
		pp_text(&p, r->id);
		pp_text(&p, k->kind);
		pp_int(&p, k->link);
		pp_text(&p, k->url);
		if (pgn_do(x, PGN_TOKEN_ADD, &p, "storing a token", NULL) != 0)
			return -1;
	}
	return 0;
}

static int pgn_message_add(struct pgn *x, const struct seal_rec *r, int64_t t)
{
	struct pgn_params p = {0};
	pp_text(&p, r->id);
	pp_bin(&p, r->eml, r->len);
	pp_text(&p, r->sha256);
	pp_int(&p, t);
	return pgn_do(x, PGN_MSG_ADD, &p, "storing a message", NULL);
}

static int pgn_seal_mark(struct pgn *x, const struct seal_rec *r, int64_t t)
{
	struct pgn_params p = {0};
	pp_text(&p, r->id);
	pp_text(&p, r->message_id);
	pp_text(&p, r->sha256);
	pp_int(&p, t);
	return pgn_do(x, PGN_SEAL, &p, "marking a notice sealed", NULL);
}

/* A notice sealed before keeps its first message, tokens and event: those
 * bytes may already have gone out (from another node, before its lease
 * ran out), and a resend must send them again. The notice's row lock
 * orders two nodes sealing one notice. */
static int pgn_lease_renew(struct pgn *x, struct pgstore *s, const char *id)
{
	struct pgn_params p = {0};
	pp_text(&p, id);
	pp_text(&p, pgstore_node(s));
	pp_int(&p, pgstore_lease_ms(s));
	return pgn_do(x, PGN_LEASE_RENEW, &p, "renewing a lease", NULL);
}

static int pgn_seal_one(struct pgn *x, struct pgstore *s, const struct seal_rec *r)
{
	if (!r->id || !r->eml)
		return pgn_no(x, err_set(x->err, 400, "invalid-request",
						    "store: a sealed message needs its notice id "
						    "and bytes"));
	int known = pgn_row(x, PGN_NOTICE_LOCK, r->id, "reading a notice", NULL);
	if (known <= 0)
		return known < 0 ? -1
				 : pgn_no(x, err_set(x->err, 404, "not-found",
								"store: notice %s not found", r->id));
	if (pgn_lease_renew(x, s, r->id) != 0)
		return -1;
	int have = pgn_row(x, PGN_MSG_EXISTS, r->id, "looking a row up", NULL);
	if (have != 0)
		return have < 0 ? -1 : 0;
	int64_t t = clock_now_ms();
	if (pgn_message_add(x, r, t) || pgn_tokens_add(x, r) || pgn_seal_mark(x, r, t))
		return -1;
	return pg_event_add(x->c, r->id, EV_CONTENT_SEALED, r->event_fields, r->disc, x->deadline,
			    NULL, x->fail, x->err) != 0 ? -1 : 0;
}

struct pgn_batch {
	const void *r;
	size_t n;
	struct pgstore *s;
};

static int pgn_sealed_txn(struct pgconn *c, void *arg, int64_t deadline, enum pg_fail *fail,
			  struct selo_err *err)
{
	struct pgn_batch *a = arg;
	const struct seal_rec *r = a->r;
	struct pgn x = {c, deadline, fail, err};
	if (pgn_clock_lock(&x) != 0)
		return -1;
	for (size_t i = 0; i < a->n; i++)
		if (pgn_seal_one(&x, a->s, &r[i]) != 0)
			return -1;
	return 0;
}

int pg_notices_sealed(struct store *s, const struct seal_rec *r, size_t n, struct selo_err *err)
{
	if (!n)
		return 0;
	struct pgn_batch a = {r, n, pgstore_of(s)};
	enum pg_fail fail;
	return pgstore_txn(a.s, pgn_sealed_txn, &a, &fail, err);
}

/* ---- Delivery results. */

static int pgn_state_final_or_retry(const char *st)
{
	return st && (!strcmp(st, "relayed") || !strcmp(st, "delivered") ||
		      !strcmp(st, "deferred") || !strcmp(st, "failed"));
}

static int pgn_result_one(struct pgn *x, const struct result_rec *r)
{
	if (!r->id || !r->event_type || !pgn_state_final_or_retry(r->state))
		return pgn_no(x, err_set(x->err, 400, "invalid-request",
				   "store: a delivery result for notice %s needs an event type and a "
				   "state of relayed, delivered, deferred or failed",
				   r->id ? r->id : "(none)"));
	struct pgn_params p = {0};
	pp_text(&p, r->id);
	pp_text(&p, r->state);
	pp_int(&p, r->next_attempt_ms);
	pp_text(&p, r->last_error);
	pp_int(&p, clock_now_ms());
	int64_t changed = 0;
	if (pgn_do(x, PGN_RESULT, &p, "recording a delivery result", &changed) != 0)
		return -1;
	if (changed == 0) {
		int known = pgn_row(x, PGN_STATUS_GET, r->id, "looking a row up", NULL);
		if (known <= 0)
			return known < 0 ? -1
					 : pgn_no(x, err_set(x->err, 404, "not-found",
									"store: notice %s not found",
									r->id));
		/* A node whose lease ran out while it sent, and the node that
		 * took the notice over, may both report: one outcome event. */
		diag_warn("store: notice %s already has its outcome; a second %s was not recorded",
			  r->id, r->event_type);
		return 0;
	}
	if (pg_event_add(x->c, r->id, r->event_type, r->event_fields, r->disc, x->deadline, NULL,
			 x->fail, x->err) != 0)
		return -1;
	return pgn_after_hard_bounce(x, r->id, r->event_fields, r->last_error);
}

static int pgn_results_txn(struct pgconn *c, void *arg, int64_t deadline, enum pg_fail *fail,
			   struct selo_err *err)
{
	struct pgn_batch *a = arg;
	const struct result_rec *r = a->r;
	struct pgn x = {c, deadline, fail, err};
	if (pgn_clock_lock(&x) != 0)
		return -1;
	for (size_t i = 0; i < a->n; i++)
		if (pgn_result_one(&x, &r[i]) != 0)
			return -1;
	return 0;
}

int pg_delivery_results(struct store *s, const struct result_rec *r, size_t n,
			struct selo_err *err)
{
	if (!n)
		return 0;
	struct pgn_batch a = {r, n, NULL};
	enum pg_fail fail;
	return pgstore_txn(pgstore_of(s), pgn_results_txn, &a, &fail, err);
}

/* ---- Events that change no notice state. */

/* ev's fields as an object: its own, or those made as text by
 * event_field_*() (a list of members: braces make it an object). *owned
 * is what the caller frees. 0, or 1 when the text is not JSON. */
static int pgn_event_new_add(struct pgn *x, const struct event_new *ev)
{
	json_t *owned;
	const json_t *fields;
	if (pg_event_new_fields(ev, &owned, &fields) != 0)
		return pgn_no(x, err_set(x->err, 422, "invalid-event",
				   "store: the %s event of notice %s cannot be encoded (fields must "
				   "be an object without the keys v, type, notice, time)",
				   ev->type, ev->notice_id));
	int r = pg_event_add(x->c, ev->notice_id, ev->type, fields, ev->disc, x->deadline, NULL,
			     x->fail, x->err);
	json_decref(owned);
	return r != 0 ? -1 : 0;
}

static int pgn_events_txn(struct pgconn *c, void *arg, int64_t deadline, enum pg_fail *fail,
			  struct selo_err *err)
{
	struct pgn_batch *a = arg;
	const struct event_new *ev = a->r;
	struct pgn x = {c, deadline, fail, err};
	if (pgn_clock_lock(&x) != 0)
		return -1;
	for (size_t i = 0; i < a->n; i++) {
		/* hits come in runs of one notice: one look-up per run */
		if (i == 0 || strcmp(ev[i].notice_id, ev[i - 1].notice_id) != 0) {
			int known = pgn_row(&x, PGN_STATUS_GET, ev[i].notice_id, "looking a row up",
					    NULL);
			if (known <= 0)
				return known < 0 ? -1
						 : pgn_no(&x, err_set(err, 404, "not-found",
										 "store: no notice %s",
										 ev[i].notice_id));
		}
		if (pgn_event_new_add(&x, &ev[i]) != 0)
			return -1;
	}
	return 0;
}

int pg_events_add(struct store *s, const struct event_new *ev, size_t n, struct selo_err *err)
{
	if (!n)
		return 0;
	struct pgn_batch a = {ev, n, NULL};
	enum pg_fail fail;
	return pgstore_txn(pgstore_of(s), pgn_events_txn, &a, &fail, err);
}

/* ---- Bounces after acceptance. */

struct pgn_bounce {
	const char *id;
	json_t *fields;
	const struct disclosures *disc;
	const char *last_error;
	int already;
};

static int pgn_bounced_txn(struct pgconn *c, void *arg, int64_t deadline, enum pg_fail *fail,
			   struct selo_err *err)
{
	struct pgn_bounce *a = arg;
	struct pgn x = {c, deadline, fail, err};
	a->already = 0;
	if (pgn_clock_lock(&x) != 0)
		return -1;
	PGresult *r = NULL;
	int got = pgn_row(&x, PGN_CANCEL_GET, a->id, "reading a notice", &r);
	if (got <= 0)
		return got < 0 ? -1
			       : pgn_no(&x, err_set(err, 404, "not-found",
							       "store: no notice %s", a->id));
	int sending = !strcmp(PQgetvalue(r, 0, 1), "sending");
	PQclear(r);
	/* its sender would overwrite the status with the attempt's outcome */
	if (sending)
		return pgn_no(&x, err_set(err, 409, "in-flight",
				   "store: notice %s is being sent right now; its bounce can be "
				   "recorded once this attempt is (in a few seconds)", a->id));
	got = pgn_row(&x, PGN_BOUNCED, a->id, "reading a notice", NULL);
	if (got != 0) {
		a->already = got > 0;
		return got < 0 ? -1 : 0;
	}
	struct pgn_params p = {0};
	pp_text(&p, a->id);
	pp_text(&p, a->last_error);
	pp_int(&p, clock_now_ms());
	if (pgn_do(&x, PGN_BOUNCE_MARK, &p, "recording a bounce", NULL) != 0)
		return -1;
	if (pg_event_add(c, a->id, EV_DELIVERY_FAILED, a->fields, a->disc, deadline, NULL, fail,
			 err) != 0)
		return -1;
	return pgn_after_hard_bounce(&x, a->id, a->fields, a->last_error);
}

int pg_notice_bounced(struct store *s, const char *id, json_t *fields,
		      const struct disclosures *disc, const char *last_error, struct selo_err *err)
{
	const char *reason = json_string_value(json_object_get(fields, "reason"));
	if (!id || !reason || strcmp(reason, "bounced") != 0)
		return err_set(err, 400, "invalid-request",
			       "store: a bounce needs a notice id and fields with \"reason\":\"bounced\"");
	struct pgn_bounce a = {id, fields, disc, last_error, 0};
	enum pg_fail fail;
	if (pgstore_txn(pgstore_of(s), pgn_bounced_txn, &a, &fail, err) != 0)
		return -1;
	return a.already ? 1 : 0;
}

/* ---- Canceling notices and stopping sequences (docs/store.md,
 * "Scheduling and sequences"). A claim locks the rows it takes and a
 * cancel's UPDATE waits for that lock and then finds the notice `sending`:
 * a notice is either claimed or canceled, never both, across nodes too. */

static int pgn_canceled_event(struct pgn *x, const char *id, const char *reason, const char *by,
			      const char *sequence_id, const char *bounced)
{
	json_t *f = json_object();
	json_object_set_new(f, "reason", json_string(reason));
	json_object_set_new(f, "by", json_string(by));
	if (sequence_id)
		json_object_set_new(f, "sequence", json_string(sequence_id));
	if (bounced)
		json_object_set_new(f, "bounced_notice", json_string(bounced));
	int r = pg_event_add(x->c, id, EV_CANCELED, f, NULL, x->deadline, NULL, x->fail, x->err);
	json_decref(f);
	if (r > 0)
		pgn_refused(x);
	return r != 0 ? -1 : 0;
}

/* 1 canceled now (with its event), 0 no longer cancelable, -1 failure. */
static int pgn_cancel_row(struct pgn *x, const char *id, const char *reason, const char *by,
			  const char *sequence_id, const char *bounced)
{
	char why[96];
	snprintf(why, sizeof(why), "canceled (%s)", reason);
	struct pgn_params p = {0};
	pp_text(&p, id);
	pp_int(&p, clock_now_ms());
	pp_text(&p, why);
	int64_t n = 0;
	if (pgn_do(x, PGN_CANCEL, &p, "canceling a notice", &n) != 0)
		return -1;
	if (n == 0)
		return 0;
	return pgn_canceled_event(x, id, reason, by, sequence_id, bounced) == 0 ? 1 : -1;
}

struct pgn_cancel {
	const char *id;
	int64_t apikey_id;
	const char *reason;
	int already;
	int64_t canceled;
};

static int pgn_cancel_txn(struct pgconn *c, void *arg, int64_t deadline, enum pg_fail *fail,
			  struct selo_err *err)
{
	struct pgn_cancel *a = arg;
	struct pgn x = {c, deadline, fail, err};
	a->already = 0;
	if (pgn_clock_lock(&x) != 0)
		return -1;
	PGresult *r = NULL;
	int got = pgn_row(&x, PGN_CANCEL_GET, a->id, "reading a notice", &r);
	if (got < 0)
		return -1;
	int64_t key = got ? pg_col_int(r, 0, 0) : 0;
	char status[16] = "";
	if (got)
		pg_col_copy(r, 0, 1, status, sizeof status);
	PQclear(r);
	if (!got || (a->apikey_id >= 0 && key != a->apikey_id))
		return pgn_no(&x, err_set(err, 404, "not-found", "no notice %s", a->id));
	if (!strcmp(status, "canceled")) {
		a->already = 1;
		return 0;
	}
	got = pgn_cancel_row(&x, a->id, a->reason, "api", NULL, NULL);
	if (got != 0)
		return got < 0 ? -1 : 0;
	if (!strcmp(status, "sending"))
		return pgn_no(&x, err_set(err, 409, "already-sent",
				   "notice %s is being handed to SMTP right now; it can no longer be "
				   "canceled", a->id));
	return pgn_no(&x, err_set(err, 409, "already-sent",
			   "notice %s was already handed to SMTP (status %s); it can no longer be "
			   "canceled", a->id, status));
}

int pg_notice_cancel(struct store *s, const char *id, int64_t apikey_id, const char *reason,
		     struct selo_err *err)
{
	struct pgn_cancel a = {id, apikey_id, reason, 0, 0};
	enum pg_fail fail;
	if (pgstore_txn(pgstore_of(s), pgn_cancel_txn, &a, &fail, err) != 0)
		return -1;
	return a.already ? 1 : 0;
}

/* Stops sequence sid (if active) and cancels its steps not yet handed to
 * SMTP (*n += how many). 0 stopped now, 1 it was not active, -1 failure. */
static int pgn_sequence_stop_on(struct pgn *x, const char *sid, const char *reason,
				const char *bounced, int64_t *n)
{
	struct pgn_params p = {0};
	pp_text(&p, sid);
	pp_text(&p, reason);
	pp_int(&p, clock_now_ms());
	int64_t stopped = 0;
	if (pgn_do(x, PGN_SEQ_STOP, &p, "stopping a sequence", &stopped) != 0)
		return -1;
	if (stopped == 0)
		return 1;
	struct pgn_params q = {0};
	pp_text(&q, sid);
	PGresult *r = pgn_run(x, PGN_SEQ_PENDING, &q, "reading a sequence's steps");
	if (!r)
		return -1;
	int rc = 0;
	for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
		int got = pgn_cancel_row(x, PQgetvalue(r, i, 0), reason, "sequence", sid, bounced);
		if (got < 0)
			rc = -1;
		else
			*n += got;
	}
	PQclear(r);
	return rc;
}

/* After notice id bounced hard: the sequence it belongs to stops. */
static int pgn_sequence_stop_after_bounce(struct pgn *x, const char *id)
{
	PGresult *r = NULL;
	int got = pgn_row(x, PGN_SEQ_OF, id, "reading a notice", &r);
	if (got <= 0)
		return got;
	char *sid = pg_col_text(r, 0, 0);
	PQclear(r);
	int64_t n = 0;
	int rc = pgn_sequence_stop_on(x, sid, "hard_bounce", id, &n) < 0 ? -1 : 0;
	free(sid);
	return rc;
}

static int pgn_sequence_stop_txn(struct pgconn *c, void *arg, int64_t deadline,
				 enum pg_fail *fail, struct selo_err *err)
{
	struct pgn_cancel *a = arg;
	struct pgn x = {c, deadline, fail, err};
	a->already = 0;
	a->canceled = 0;
	if (pgn_clock_lock(&x) != 0)
		return -1;
	PGresult *r = NULL;
	int got = pgn_row(&x, PGN_SEQ_KEY, a->id, "reading a sequence", &r);
	if (got < 0)
		return -1;
	int64_t key = got ? pg_col_int(r, 0, 0) : 0;
	PQclear(r);
	if (!got || (a->apikey_id >= 0 && key != a->apikey_id))
		return pgn_no(&x, err_set(err, 404, "not-found", "no sequence %s", a->id));
	got = pgn_sequence_stop_on(&x, a->id, a->reason, NULL, &a->canceled);
	if (got < 0)
		return -1;
	a->already = got;
	return 0;
}

int pg_sequence_stop(struct store *s, const char *id, int64_t apikey_id, const char *reason,
		     int64_t *canceled, struct selo_err *err)
{
	struct pgn_cancel a = {id, apikey_id, reason, 0, 0};
	enum pg_fail fail;
	int r = pgstore_txn(pgstore_of(s), pgn_sequence_stop_txn, &a, &fail, err);
	if (canceled)
		*canceled = r == 0 ? a.canceled : 0;
	return r != 0 ? -1 : a.already ? 1 : 0;
}

struct pgn_seq_add {
	const struct sequence_new *q;
	char replay_id[32];
	int replay;
};

/* 1: the idempotency key was seen with this request (replay_id set); 0:
 * not seen; -1 (422 when seen with another request). */
static int pgn_sequence_idem(struct pgn *x, const struct sequence_new *q, char replay_id[32])
{
	struct pgn_params p = {0};
	pp_int(&p, q->apikey_id);
	pp_text(&p, q->idempotency_key);
	PGresult *r = pgn_run(x, PGN_SEQ_IDEM, &p, "reading an idempotency key");
	if (!r)
		return -1;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return 0;
	}
	pg_col_copy(r, 0, 0, replay_id, 32);
	uint8_t h[32];
	int same = pgn_bytes(r, 0, 1, h, 32) && !memcmp(h, q->request_sha256, 32);
	PQclear(r);
	if (!same)
		return pgn_no(x, err_set(x->err, 422, "idempotency-key-reused",
				   "this Idempotency-Key was used for sequence %s with another "
				   "request; nothing was stored", replay_id));
	return 1;
}

static int pgn_sequence_add_txn(struct pgconn *c, void *arg, int64_t deadline,
				enum pg_fail *fail, struct selo_err *err)
{
	struct pgn_seq_add *a = arg;
	const struct sequence_new *q = a->q;
	struct pgn x = {c, deadline, fail, err};
	a->replay = 0;
	if (pgn_clock_lock(&x) != 0)
		return -1;
	if (q->idempotency_key) {
		int seen = pgn_sequence_idem(&x, q, a->replay_id);
		if (seen != 0) {
			a->replay = seen > 0;
			return seen < 0 ? -1 : 0;
		}
	}
	struct accept_result res;
	memset(&res, 0, sizeof(res));
	int sup = q->n ? pgn_suppression_check(&x, &q->steps[0], &res) : 0;
	if (sup != 0) {
		if (sup > 0 && err)
			*err = res.err;
		return sup > 0 ? pgn_refused(&x) : -1;
	}
	struct pgn_params p = {0};
	pp_text(&p, q->id);
	pp_int(&p, q->apikey_id);
	pp_text(&p, q->request_json);
	pp_text(&p, q->idempotency_key);
	pp_bin(&p, q->request_sha256, 32);
	pp_int(&p, clock_now_ms());
	if (pgn_do(&x, PGN_SEQ_ADD, &p, "storing a sequence", NULL) != 0)
		return -1;
	for (size_t i = 0; i < q->n; i++) {
		char status[16];
		int r = pgn_notice_insert(&x, &q->steps[i], status);
		if (r != 0)
			return r > 0 ? pgn_refused(&x) : -1;
	}
	return 0;
}

int pg_sequence_add(struct store *s, const struct sequence_new *q, char replay_id[32],
		    struct selo_err *err)
{
	struct pgn_seq_add a;
	memset(&a, 0, sizeof(a));
	a.q = q;
	enum pg_fail fail;
	if (pgstore_txn(pgstore_of(s), pgn_sequence_add_txn, &a, &fail, err) != 0)
		return -1;
	if (a.replay)
		memcpy(replay_id, a.replay_id, 32);
	return a.replay ? 1 : 0;
}

/* ---- Suppressions: deletes. */

struct pgn_sup_del {
	int64_t apikey_id;
	const char *key;
	int64_t n;
};

static int pgn_suppression_delete_txn(struct pgconn *c, void *arg, int64_t deadline,
				      enum pg_fail *fail, struct selo_err *err)
{
	struct pgn_sup_del *a = arg;
	struct pgn x = {c, deadline, fail, err};
	struct pgn_params p = {0};
	pp_int(&p, a->apikey_id);
	pp_text(&p, a->key);
	return pgn_do(&x, PGN_SUP_DELETE, &p, "deleting a suppression", &a->n);
}

int pg_suppression_delete(struct store *s, int64_t apikey_id, const char *address,
			  struct selo_err *err)
{
	char key[SUPPRESS_ADDR_MAX];
	if (!address || suppress_address_key(address, key, sizeof(key)) != 0)
		return 0; /* no suppression has an address this long */
	struct pgn_sup_del a = {apikey_id, key, 0};
	enum pg_fail fail;
	if (pgstore_txn(pgstore_of(s), pgn_suppression_delete_txn, &a, &fail, err) != 0)
		return -1;
	return a.n > 0 ? 1 : 0;
}
