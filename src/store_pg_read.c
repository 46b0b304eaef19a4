/* store_pg_read.c: the PostgreSQL backend's reads (store_pg_int.h;
 * docs/scale.md "store_pg_read.c"): API keys, notices (get, list, scan),
 * events (of a notice, the first of a type, confirmations, after a seq),
 * attachments, sealed messages, disclosures, the next due time, sequences,
 * suppressions, tracker tokens, a notice's brief and the counts. Each has
 * the contract of the store.h function of the same name and answers as the
 * SQLite backend's (store_sqlite_notice.c) does: 1 found / 0 not found for
 * lookups, the same order and paging, another key's row reads as absent.
 *
 * Every read is ONE statement on a pooled connection, outside any explicit
 * transaction: PostgreSQL runs each statement on one snapshot, so a read
 * that needs two things to agree (a sequence and its steps, a salt and the
 * acceptance time, the counts and the events' count) asks for them in one
 * statement (a join, a subquery, UNION ALL). A database that is down gives
 * 503 store-unavailable (the pool's deadline); other failures 500.
 *
 * Damage: PostgreSQL's columns are typed and NOT NULL where the schema says
 * so, so the damage SQLite looks for in a notice row (an integer column
 * holding text, a NULL where none belongs) cannot be read back here. What
 * the types do not promise is still checked, as SQLite does: the id is a
 * notice id, the salt 32 bytes, sha256 64 hex digits or NULL, and text is
 * UTF-8 (a database created with SQL_ASCII keeps any bytes). A row failing
 * that is never returned as a notice (500 store-damaged), except by
 * notice_scan, which returns it with rec.damage set. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "selo/buf.h"
#include "selo/codec.h"
#include "selo/id.h"
#include "selo/store.h"
#include "selo/store_backend.h"
#include "store_pg_int.h"

#define PGR_LIST_MAX 1000            /* notice_list, notice_scan, suppression_list */
#define PGR_EVENTS_AFTER_MAX 100000  /* store.h: events_after caps max here */

enum {
	PGR_APIKEY_FIND = PG_S_READ_BASE,
	PGR_APIKEY_LIST,
	PGR_NOTICE_GET,
	PGR_LIST0, /* + (apikey ? 1) | (reference ? 2) | (status ? 4) */
	PGR_LIST7 = PGR_LIST0 + 7,
	PGR_NOTICE_SCAN,
	PGR_EVENTS_OF,
	PGR_EVENT_FIRST,
	PGR_CONFIRMATIONS_OF,
	PGR_EVENTS_AFTER,
	PGR_ATT_OF,
	PGR_MSG_GET,
	PGR_DISC_OF,
	PGR_NEXT_DUE,
	PGR_COUNTS,
	PGR_TOKEN_GET,
	PGR_BRIEF,
	PGR_SEQ_GET,
	PGR_SUP_LIST,
	PGR_END
};
_Static_assert((int)PGR_END <= (int)PG_S_LOG_BASE, "store_pg_read.c's ids end before the next file's");

/* The columns a notice is read from, in struct notice_rec's order (as
 * SQLite's NOTICE_COLS), from the table aliased n. */
#define PGR_NOTICE_COLS                                                                   \
	"n.id, n.apikey_id, n.status, n.to_addr, n.template, n.reference, n.segment,"    \
	" n.tags_json, n.payload_json, n.salt, n.attempts, n.created_ms, n.updated_ms,"  \
	" n.next_attempt_ms, n.message_id, n.sha256, n.last_error, n.send_at_ms,"        \
	" n.sequence_id, n.step"
#define PGR_NOTICE_NCOLS 20
/* One statement per combination of list filters, so that each one's plan
 * uses its index (a generic "$2 < 0 OR apikey_id = $2" would not, once
 * PostgreSQL switches to a generic plan). Parameters: $1 after, then those
 * of the filters present in the order key, reference, status, then the
 * limit: PostgreSQL refuses a statement that leaves a parameter unused.
 * notices.id has collation "C" (migration 2, "store_pg_read.c"), so ids
 * order byte by byte as in SQLite whatever the database's locale. */
#define PGR_LIST(cond, lim)                                                            \
	"SELECT " PGR_NOTICE_COLS " FROM notices n WHERE n.id > $1" cond                 \
	" ORDER BY n.id LIMIT " lim
/* An event's index in the log: from the run (log_ranges) that starts at or
 * before its seq, if the run reaches it; -1 otherwise. Events after the last
 * run (all that the ledger reads) skip the search: the uncorrelated bound
 * is an InitPlan, computed once per statement. */
#define PGR_LOG_INDEX                                                                    \
	"CASE WHEN e.seq > (SELECT first_seq + n - 1 FROM log_ranges"                     \
	" ORDER BY first_index DESC LIMIT 1) THEN -1 ELSE"                                 \
	" coalesce((SELECT CASE WHEN e.seq < r.first_seq + r.n"                            \
	" THEN r.first_index + e.seq - r.first_seq END FROM log_ranges r"                  \
	" WHERE r.first_seq <= e.seq ORDER BY r.first_seq DESC LIMIT 1), -1) END"
#define PGR_EVENT_COLS "e.seq, e.notice_id, e.type, e.time_ms, e.entry, " PGR_LOG_INDEX
#define R(x) [(x)-PG_S_READ_BASE]

static const char *const pg_read_sql_text[PGR_END - PG_S_READ_BASE] = {
	R(PGR_APIKEY_FIND) = "SELECT id, name, prefix, created_ms, revoked_ms FROM apikeys"
			     " WHERE hash = $1 AND revoked_ms = 0",
	R(PGR_APIKEY_LIST) = "SELECT id, name, prefix, created_ms, revoked_ms FROM apikeys"
			     " ORDER BY id",
	R(PGR_NOTICE_GET) = "SELECT " PGR_NOTICE_COLS " FROM notices n WHERE n.id = $1"
			    " AND ($2::bigint < 0 OR n.apikey_id = $2)",
	R(PGR_LIST0 + 0) = PGR_LIST("", "$2"),
	R(PGR_LIST0 + 1) = PGR_LIST(" AND n.apikey_id = $2", "$3"),
	R(PGR_LIST0 + 2) = PGR_LIST(" AND n.reference = $2", "$3"),
	R(PGR_LIST0 + 3) = PGR_LIST(" AND n.apikey_id = $2 AND n.reference = $3", "$4"),
	R(PGR_LIST0 + 4) = PGR_LIST(" AND n.status = $2", "$3"),
	R(PGR_LIST0 + 5) = PGR_LIST(" AND n.apikey_id = $2 AND n.status = $3", "$4"),
	R(PGR_LIST0 + 6) = PGR_LIST(" AND n.reference = $2 AND n.status = $3", "$4"),
	R(PGR_LIST0 + 7) = PGR_LIST(" AND n.apikey_id = $2 AND n.reference = $3"
				    " AND n.status = $4", "$5"),
	/* The table in insertion order by row_id (migration 2): independent of
	 * the id column, which may be what is damaged, and stable under
	 * updates (ctid is not: an updated row moves). row_id comes last so
	 * that the notice's column numbers hold. */
	R(PGR_NOTICE_SCAN) = "SELECT " PGR_NOTICE_COLS ", n.row_id FROM notices n"
			     " WHERE n.row_id > $1 ORDER BY n.row_id LIMIT $2",
	R(PGR_EVENTS_OF) = "SELECT " PGR_EVENT_COLS " FROM events e WHERE e.notice_id = $1"
			   " ORDER BY e.seq",
	/* Walks the notice's events by (notice_id, seq), stopping at the first
	 * of the type. */
	R(PGR_EVENT_FIRST) = "SELECT " PGR_EVENT_COLS " FROM events e WHERE e.notice_id = $1"
			     " AND e.type = $2 ORDER BY e.seq LIMIT 1",
	/* The type is a literal so that the partial index events_read_confirmed
	 * applies. */
	R(PGR_CONFIRMATIONS_OF) = "SELECT " PGR_EVENT_COLS " FROM events e"
				  " WHERE e.notice_id = $1 AND e.type = 'read_confirmed'"
				  " ORDER BY e.seq",
	R(PGR_EVENTS_AFTER) = "SELECT " PGR_EVENT_COLS " FROM events e WHERE e.seq > $1"
			      " ORDER BY e.seq LIMIT $2",
	R(PGR_ATT_OF) = "SELECT filename, content_type, data FROM attachments WHERE notice_id = $1"
			" ORDER BY idx",
	R(PGR_MSG_GET) = "SELECT eml, sha256 FROM messages WHERE notice_id = $1",
	/* id (migration 2) is the insertion order, as SQLite's rowid. */
	R(PGR_DISC_OF) = "SELECT commitment, value FROM disclosures WHERE notice_id = $1"
			 " ORDER BY id",
	R(PGR_NEXT_DUE) = "SELECT coalesce(min(t), 0) FROM (SELECT min(next_attempt_ms) AS t"
			  " FROM notices WHERE status = 'deferred' UNION ALL"
			  " SELECT min(next_attempt_ms) FROM notices WHERE status = 'scheduled') d",
	/* One statement, one snapshot: the last row (status NULL) is the
	 * events' count. pg_event_add hands out seq without gaps (the event
	 * clock), and events are never deleted, so the highest seq is it. */
	R(PGR_COUNTS) = "SELECT status, count(*) FROM notices GROUP BY status"
			" UNION ALL SELECT NULL, coalesce(max(seq), 0) FROM events",
	R(PGR_TOKEN_GET) = "SELECT notice_id, kind, link, url FROM tokens WHERE token = $1",
	/* The first acceptance by seq is the earliest (seq order is time
	 * order) and comes a few events into a notice's life: walking its
	 * events by (notice_id, seq) stops there, however many opens follow. */
	R(PGR_BRIEF) = "SELECT salt, coalesce((SELECT time_ms FROM events WHERE notice_id = $1"
		       " AND type IN ('relay_accepted', 'delivery_accepted')"
		       " ORDER BY seq LIMIT 1), 0) FROM notices WHERE id = $1",
	/* The sequence and its steps in one snapshot: a row per step (one with
	 * NULL notice columns when it has none), the sequence's columns after
	 * the notice's. */
	R(PGR_SEQ_GET) = "SELECT " PGR_NOTICE_COLS ", q.id, q.apikey_id, q.status, q.reason,"
			 " q.request_json, q.created_ms, q.stopped_ms FROM sequences q"
			 " LEFT JOIN notices n ON n.sequence_id = q.id WHERE q.id = $1"
			 " ORDER BY n.step",
	R(PGR_SUP_LIST) = "SELECT id, address, enhanced, reason, notice_id, created_ms"
			  " FROM suppressions WHERE apikey_id = $1 AND id < $2"
			  " ORDER BY id DESC LIMIT $3",
};
const struct pg_sql_table pg_sql_read = {pg_read_sql_text, PGR_END - PG_S_READ_BASE};

/* ---- Running a read. */

/* Runs statement st on a connection of the pool, on its own snapshot: the
 * result (for the caller to PQclear), or NULL with err. */
static PGresult *pgread_exec(struct store *base, int st, int n, const char *const *vals,
			     const int *lens, const int *fmts, const char *doing,
			     struct selo_err *err)
{
	struct pgstore *s = pgstore_of(base);
	int64_t deadline = pgstore_deadline(s);
	struct pgconn *c = pgstore_acquire(s, deadline, err);
	if (!c)
		return NULL;
	enum pg_fail fail = PG_OK;
	PGresult *r = pgconn_exec(c, (enum pg_stmt)st, n, vals, lens, fmts, deadline, &fail, doing,
				  err);
	pgstore_release(s, c);
	return r;
}

/* ---- Columns (results come as text; bytea in its text form). */

/* A bytea column as malloc'd bytes with a NUL after them (entries and
 * disclosures are text), *len their count; NULL stays "". */
static char *pgr_bytes(const PGresult *r, int row, int col, size_t *len)
{
	*len = 0;
	unsigned char *u = NULL;
	if (!PQgetisnull(r, row, col)) {
		u = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), len);
		if (!u) /* libpq's malloc failed: the policy of buf.h's x* allocators */
			abort();
	}
	char *d = xmalloc(*len + 1);
	if (*len)
		memcpy(d, u, *len);
	d[*len] = '\0';
	PQfreemem(u);
	return d;
}

/* ---- Notices. */

/* How each notice column is kept: T text, t text or NULL, I integer, S the
 * 32-byte salt, H 64 hex digits or NULL, D a notice id (as SQLite's
 * NOTICE_SHAPE). Only what PostgreSQL's types do not promise is checked. */
static const struct {
	const char *name;
	char kind;
} PGR_NOTICE_SHAPE[PGR_NOTICE_NCOLS] = {
	{"id", 'D'}, {"apikey_id", 'I'}, {"status", 'T'}, {"to_addr", 'T'}, {"template", 't'},
	{"reference", 't'}, {"segment", 't'}, {"tags_json", 't'}, {"payload_json", 'T'},
	{"salt", 'S'}, {"attempts", 'I'}, {"created_ms", 'I'}, {"updated_ms", 'I'},
	{"next_attempt_ms", 'I'}, {"message_id", 't'}, {"sha256", 'H'}, {"last_error", 't'},
	{"send_at_ms", 'I'}, {"sequence_id", 't'}, {"step", 'I'},
};

/* Why column c (of kind k) cannot be what the schema says, or NULL. */
static const char *pgr_column_wrong(const PGresult *r, int row, int c, char k)
{
	if (PQgetisnull(r, row, c)) /* NOT NULL columns: only if the schema was changed */
		return k == 't' || k == 'H' ? NULL : "is NULL";
	if (k == 'I')
		return NULL; /* bigint: always an integer */
	const char *t = PQgetvalue(r, row, c);
	if (k == 'S') {
		size_t n = 0;
		unsigned char *u = PQunescapeBytea((const unsigned char *)t, &n);
		PQfreemem(u);
		return u && n == 32 ? NULL : "is not 32 bytes";
	}
	size_t n = (size_t)PQgetlength(r, row, c);
	if (!utf8_valid(t, n))
		return "is not valid UTF-8 text";
	if (k == 'D' && !id_text_valid(t))
		return "is not a notice id";
	if (k == 'H' && (n != 64 || strspn(t, "0123456789abcdef") != 64))
		return "is not a SHA-256 in hex";
	return NULL;
}

/* 0 when the row (its notice columns from col0) holds what the schema
 * says; else 1 and why in out. */
static int pgr_notice_damage(const PGresult *r, int row, int col0, char *out, size_t n)
{
	for (int i = 0; i < PGR_NOTICE_NCOLS; i++) {
		const char *why = pgr_column_wrong(r, row, col0 + i, PGR_NOTICE_SHAPE[i].kind);
		if (why) {
			snprintf(out, n, "column %s %s", PGR_NOTICE_SHAPE[i].name, why);
			return 1;
		}
	}
	return 0;
}

static void pgr_notice_from_row(const PGresult *r, int row, int c, struct notice_rec *n)
{
	memset(n, 0, sizeof(*n));
	pg_col_copy(r, row, c + 0, n->id, sizeof(n->id));
	n->apikey_id = pg_col_int(r, row, c + 1);
	pg_col_copy(r, row, c + 2, n->status, sizeof(n->status));
	n->to = pg_col_text(r, row, c + 3);
	n->template_name = pg_col_text(r, row, c + 4);
	n->reference = pg_col_text(r, row, c + 5);
	n->segment = pg_col_text(r, row, c + 6);
	n->tags_json = pg_col_text(r, row, c + 7);
	n->payload_json = pg_col_text(r, row, c + 8);
	size_t saltlen = 0;
	char *salt = pgr_bytes(r, row, c + 9, &saltlen);
	memcpy(n->salt, salt, saltlen < 32 ? saltlen : 32);
	free(salt);
	n->attempts = (int)pg_col_int(r, row, c + 10);
	n->created_ms = pg_col_int(r, row, c + 11);
	n->updated_ms = pg_col_int(r, row, c + 12);
	n->next_attempt_ms = pg_col_int(r, row, c + 13);
	n->message_id = pg_col_text(r, row, c + 14);
	pg_col_copy(r, row, c + 15, n->sha256, sizeof(n->sha256));
	n->last_error = pg_col_text(r, row, c + 16);
	n->send_at_ms = pg_col_int(r, row, c + 17);
	n->sequence_id = pg_col_text(r, row, c + 18);
	n->step = (int)pg_col_int(r, row, c + 19);
}

/* A damaged row is an error that names the notice: the id asked for, or
 * the row's own id when it is one. */
static int pgr_notice_damaged(struct selo_err *err, const PGresult *r, int row, int col0,
			      const char *asked, const char *why)
{
	const char *own = PQgetvalue(r, row, col0);
	const char *id = asked ? asked : id_text_valid(own) ? own : "?";
	return err_set(err, 500, "store-damaged",
		       "store: the row of notice %s is damaged: %s; restore it from a backup of "
		       "the database (docs/operations.md, \"A damaged store\")",
		       id, why);
}

/* Reads a notice row, refusing a damaged one. 0 or -1. */
static int pgr_notice_read(const PGresult *r, int row, int col0, const char *asked,
			   struct notice_rec *n, struct selo_err *err)
{
	char why[160];
	if (pgr_notice_damage(r, row, col0, why, sizeof(why)))
		return pgr_notice_damaged(err, r, row, col0, asked, why);
	pgr_notice_from_row(r, row, col0, n);
	return 0;
}

/* Every row of r as notices (refusing damaged ones): 0 or -1, *out and *n
 * untouched on failure. */
static int pgr_notices_read(const PGresult *r, struct notice_rec **out, size_t *n,
			    struct selo_err *err)
{
	int rows = PQntuples(r);
	struct notice_rec *v = rows ? xcalloc((size_t)rows, sizeof(*v)) : NULL;
	for (int i = 0; i < rows; i++) {
		if (pgr_notice_read(r, i, 0, NULL, &v[i], err) != 0) {
			notice_recs_free(v, (size_t)i);
			return -1;
		}
	}
	*out = v;
	*n = (size_t)rows;
	return 0;
}

int pg_notice_get(struct store *s, const char *id, int64_t apikey_id, struct notice_rec *out,
		  struct selo_err *err)
{
	memset(out, 0, sizeof(*out));
	if (!id)
		return 0;
	struct pg_num k;
	const char *vals[2] = {id, pg_num(&k, apikey_id)};
	PGresult *r = pgread_exec(s, PGR_NOTICE_GET, 2, vals, NULL, NULL, "reading a notice", err);
	if (!r)
		return -1;
	int found = PQntuples(r) > 0;
	int rc = found ? pgr_notice_read(r, 0, 0, id, out, err) : 0;
	PQclear(r);
	return rc != 0 ? -1 : found;
}

int pg_notice_list(struct store *s, const struct notice_filter *f, struct notice_rec **out,
		   size_t *n, struct selo_err *err)
{
	*out = NULL;
	*n = 0;
	int limit = f->limit < 1 ? 1 : f->limit > PGR_LIST_MAX ? PGR_LIST_MAX : f->limit;
	int variant = (f->apikey_id >= 0 ? 1 : 0) | (f->reference ? 2 : 0) | (f->status ? 4 : 0);
	struct pg_num k, l;
	/* Every id is greater than "", so no `after` means from the first. */
	const char *vals[5] = {f->after ? f->after : ""};
	int nv = 1;
	if (variant & 1)
		vals[nv++] = pg_num(&k, f->apikey_id);
	if (variant & 2)
		vals[nv++] = f->reference;
	if (variant & 4)
		vals[nv++] = f->status;
	vals[nv++] = pg_num(&l, limit);
	PGresult *r = pgread_exec(s, PGR_LIST0 + variant, nv, vals, NULL, NULL, "listing notices",
				  err);
	if (!r)
		return -1;
	int rc = pgr_notices_read(r, out, n, err);
	PQclear(r);
	return rc;
}

int pg_notice_scan(struct store *s, int64_t *cursor, size_t max, struct notice_rec **out,
		   size_t *n, struct selo_err *err)
{
	*out = NULL;
	*n = 0;
	size_t lim = max < 1 ? 1 : max > PGR_LIST_MAX ? PGR_LIST_MAX : max;
	struct pg_num c, l;
	const char *vals[2] = {pg_num(&c, *cursor), pg_num(&l, (int64_t)lim)};
	PGresult *r = pgread_exec(s, PGR_NOTICE_SCAN, 2, vals, NULL, NULL, "scanning notices", err);
	if (!r)
		return -1;
	int rows = PQntuples(r);
	struct notice_rec *v = rows ? xcalloc((size_t)rows, sizeof(*v)) : NULL;
	for (int i = 0; i < rows; i++) {
		char why[160];
		int bad = pgr_notice_damage(r, i, 0, why, sizeof(why));
		pgr_notice_from_row(r, i, 0, &v[i]);
		if (bad)
			v[i].damage = xstrdup(why);
		*cursor = pg_col_int(r, i, PGR_NOTICE_NCOLS);
	}
	PQclear(r);
	*out = v;
	*n = (size_t)rows;
	return 0;
}

/* ---- Sequences. */

int pg_sequence_get(struct store *s, const char *id, int64_t apikey_id, struct sequence_rec *out,
		    struct selo_err *err)
{
	memset(out, 0, sizeof(*out));
	const char *vals[1] = {id};
	PGresult *r = pgread_exec(s, PGR_SEQ_GET, 1, vals, NULL, NULL, "reading a sequence", err);
	if (!r)
		return -1;
	int rows = PQntuples(r);
	const int q = PGR_NOTICE_NCOLS; /* the sequence's columns */
	if (rows == 0 || (apikey_id >= 0 && pg_col_int(r, 0, q + 1) != apikey_id)) {
		PQclear(r);
		return 0;
	}
	pg_col_copy(r, 0, q + 0, out->id, sizeof(out->id));
	out->apikey_id = pg_col_int(r, 0, q + 1);
	pg_col_copy(r, 0, q + 2, out->status, sizeof(out->status));
	out->reason = pg_col_text(r, 0, q + 3);
	out->request_json = pg_col_text(r, 0, q + 4);
	out->created_ms = pg_col_int(r, 0, q + 5);
	out->stopped_ms = pg_col_int(r, 0, q + 6);
	int steps = PQgetisnull(r, 0, 0) ? 0 : rows; /* no step: one row of NULL notice columns */
	out->steps = steps ? xcalloc((size_t)steps, sizeof(*out->steps)) : NULL;
	int rc = 1;
	for (int i = 0; i < steps && rc == 1; i++) {
		if (pgr_notice_read(r, i, 0, NULL, &out->steps[i], err) != 0)
			rc = -1;
		else
			out->nsteps++;
	}
	PQclear(r);
	if (rc != 1)
		sequence_rec_free(out);
	return rc;
}

/* ---- API keys. */

static void pgr_apikey_from_row(const PGresult *r, int row, struct apikey *k)
{
	memset(k, 0, sizeof(*k));
	k->id = pg_col_int(r, row, 0);
	pg_col_copy(r, row, 1, k->name, sizeof(k->name));
	pg_col_copy(r, row, 2, k->prefix, sizeof(k->prefix));
	k->created_ms = pg_col_int(r, row, 3);
	k->revoked_ms = pg_col_int(r, row, 4);
}

/* The hash is looked up through an index; since it is the SHA-256 of a
 * high-entropy key, timing reveals nothing about any stored key. */
int pg_apikey_find(struct store *s, const uint8_t hash[32], struct apikey *out,
		   struct selo_err *err)
{
	const char *vals[1] = {(const char *)hash};
	const int lens[1] = {32}, fmts[1] = {1};
	PGresult *r = pgread_exec(s, PGR_APIKEY_FIND, 1, vals, lens, fmts, "finding an API key",
				  err);
	if (!r)
		return -1;
	int found = PQntuples(r) > 0;
	if (found)
		pgr_apikey_from_row(r, 0, out);
	PQclear(r);
	return found;
}

int pg_apikey_list(struct store *s, struct apikey **out, size_t *n, struct selo_err *err)
{
	*out = NULL;
	*n = 0;
	PGresult *r = pgread_exec(s, PGR_APIKEY_LIST, 0, NULL, NULL, NULL, "listing API keys", err);
	if (!r)
		return -1;
	int rows = PQntuples(r);
	*out = rows ? xcalloc((size_t)rows, sizeof(**out)) : NULL;
	for (int i = 0; i < rows; i++)
		pgr_apikey_from_row(r, i, &(*out)[i]);
	*n = (size_t)rows;
	PQclear(r);
	return 0;
}

/* ---- Events. */

static void pgr_event_from_row(const PGresult *r, int row, struct event_rec *e)
{
	memset(e, 0, sizeof(*e));
	e->seq = pg_col_int(r, row, 0);
	pg_col_copy(r, row, 1, e->notice_id, sizeof(e->notice_id));
	pg_col_copy(r, row, 2, e->type, sizeof(e->type));
	e->time_ms = pg_col_int(r, row, 3);
	e->entry = pgr_bytes(r, row, 4, &e->len);
	e->log_index = pg_col_int(r, row, 5);
}

/* Runs an event query (1 or 2 parameters) and returns every row. */
static int pgr_events(struct store *s, int st, int nv, const char *const *vals,
		      struct event_rec **out, size_t *n, struct selo_err *err)
{
	*out = NULL;
	*n = 0;
	PGresult *r = pgread_exec(s, st, nv, vals, NULL, NULL, "reading events", err);
	if (!r)
		return -1;
	int rows = PQntuples(r);
	*out = rows ? xcalloc((size_t)rows, sizeof(**out)) : NULL;
	for (int i = 0; i < rows; i++)
		pgr_event_from_row(r, i, &(*out)[i]);
	*n = (size_t)rows;
	PQclear(r);
	return 0;
}

int pg_events_of(struct store *s, const char *notice_id, struct event_rec **out, size_t *n,
		 struct selo_err *err)
{
	if (!notice_id) {
		*out = NULL;
		*n = 0;
		return 0;
	}
	const char *vals[1] = {notice_id};
	return pgr_events(s, PGR_EVENTS_OF, 1, vals, out, n, err);
}

int pg_event_first(struct store *s, const char *notice_id, const char *type,
		   struct event_rec *out, struct selo_err *err)
{
	memset(out, 0, sizeof(*out));
	const char *vals[2] = {notice_id, type};
	PGresult *r = pgread_exec(s, PGR_EVENT_FIRST, 2, vals, NULL, NULL, "reading an event", err);
	if (!r)
		return -1;
	int found = PQntuples(r) > 0;
	if (found)
		pgr_event_from_row(r, 0, out);
	PQclear(r);
	return found;
}

int pg_confirmations_of(struct store *s, const char *notice_id, struct event_rec **out,
			size_t *n, struct selo_err *err)
{
	if (!notice_id) {
		*out = NULL;
		*n = 0;
		return 0;
	}
	const char *vals[1] = {notice_id};
	return pgr_events(s, PGR_CONFIRMATIONS_OF, 1, vals, out, n, err);
}

/* Safe with several nodes writing: pg_event_add takes the event clock's
 * row lock before it draws a seq and keeps it until its transaction ends,
 * so seq N+1 is drawn only after the transaction holding N has committed
 * (and become visible: PostgreSQL releases a transaction's locks after it
 * leaves the set of running ones) or rolled back (and with it the clock's
 * update, so N is drawn again: no gap). A snapshot that shows seq N+1 thus
 * shows every seq below it, and "seq > cursor" never skips a row that
 * commits late (the trap of docs/scale.md cannot happen). */
int pg_events_after(struct store *s, int64_t after_seq, size_t max, struct event_rec **out,
		    size_t *n, struct selo_err *err)
{
	if (!max) {
		*out = NULL;
		*n = 0;
		return 0;
	}
	size_t lim = max > PGR_EVENTS_AFTER_MAX ? PGR_EVENTS_AFTER_MAX : max;
	struct pg_num a, l;
	const char *vals[2] = {pg_num(&a, after_seq), pg_num(&l, (int64_t)lim)};
	return pgr_events(s, PGR_EVENTS_AFTER, 2, vals, out, n, err);
}

/* ---- A notice's attachments, message and disclosures. */

int pg_attachments_of(struct store *s, const char *notice_id, struct attachment_rec **out,
		      size_t *n, struct selo_err *err)
{
	*out = NULL;
	*n = 0;
	if (!notice_id)
		return 0;
	const char *vals[1] = {notice_id};
	PGresult *r = pgread_exec(s, PGR_ATT_OF, 1, vals, NULL, NULL, "reading attachments", err);
	if (!r)
		return -1;
	int rows = PQntuples(r);
	*out = rows ? xcalloc((size_t)rows, sizeof(**out)) : NULL;
	for (int i = 0; i < rows; i++) {
		struct attachment_rec *a = &(*out)[i];
		a->filename = pg_col_text(r, i, 0);
		a->content_type = pg_col_text(r, i, 1);
		a->data = (uint8_t *)pgr_bytes(r, i, 2, &a->len);
	}
	*n = (size_t)rows;
	PQclear(r);
	return 0;
}

int pg_message_get(struct store *s, const char *notice_id, struct buf *eml, char sha256[65],
		   struct selo_err *err)
{
	sha256[0] = '\0';
	if (!notice_id)
		return 0;
	const char *vals[1] = {notice_id};
	PGresult *r = pgread_exec(s, PGR_MSG_GET, 1, vals, NULL, NULL, "reading a message", err);
	if (!r)
		return -1;
	int found = PQntuples(r) > 0;
	if (found) {
		size_t len = 0;
		char *d = pgr_bytes(r, 0, 0, &len);
		buf_append(eml, d, len);
		free(d);
		pg_col_copy(r, 0, 1, sha256, 65);
	}
	PQclear(r);
	return found;
}

/* Appends to out, as SQLite's does (the caller may hold some already). */
int pg_disclosures_of(struct store *s, const char *notice_id, struct disclosures *out,
		      struct selo_err *err)
{
	if (!notice_id)
		return 0;
	const char *vals[1] = {notice_id};
	PGresult *r = pgread_exec(s, PGR_DISC_OF, 1, vals, NULL, NULL, "reading disclosures", err);
	if (!r)
		return -1;
	int rows = PQntuples(r);
	if (rows && out->n + (size_t)rows > out->cap) {
		out->cap = out->n + (size_t)rows;
		out->v = xreallocarray(out->v, out->cap, sizeof(*out->v));
	}
	for (int i = 0; i < rows; i++) {
		struct disclosure *d = &out->v[out->n++];
		memset(d, 0, sizeof(*d));
		pg_col_copy(r, i, 0, d->commitment, sizeof(d->commitment));
		d->value = pgr_bytes(r, i, 1, &d->len);
	}
	PQclear(r);
	return 0;
}

/* ---- The sender's next wake-up, counts. */

/* Errors read as "nothing deferred": the sender then polls on its own
 * schedule, which is safe (claims are what matters). */
int64_t pg_next_due(struct store *s)
{
	struct selo_err e;
	err_clear(&e);
	PGresult *r = pgread_exec(s, PGR_NEXT_DUE, 0, NULL, NULL, NULL, "reading the next due time",
				  &e);
	if (!r)
		return 0;
	int64_t t = PQntuples(r) ? pg_col_int(r, 0, 0) : 0;
	PQclear(r);
	return t;
}

int pg_counts(struct store *s, struct store_counts *out, struct selo_err *err)
{
	memset(out, 0, sizeof(*out));
	PGresult *r = pgread_exec(s, PGR_COUNTS, 0, NULL, NULL, NULL, "counting notices", err);
	if (!r)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		if (PQgetisnull(r, i, 0))
			out->events = pg_col_int(r, i, 1);
		else
			store_counts_add(out, PQgetvalue(r, i, 0), pg_col_int(r, i, 1));
	}
	PQclear(r);
	return 0;
}

/* ---- Suppressions. */

int pg_suppression_list(struct store *s, int64_t apikey_id, int64_t before, int limit,
			struct suppression_rec **out, size_t *n, struct selo_err *err)
{
	*out = NULL;
	*n = 0;
	if (limit < 1 || limit > PGR_LIST_MAX)
		return err_set(err, 400, "invalid-query", "limit must be 1..%d", PGR_LIST_MAX);
	struct pg_num k, b, l;
	const char *vals[3] = {pg_num(&k, apikey_id), pg_num(&b, before > 0 ? before : INT64_MAX),
			       pg_num(&l, limit)};
	PGresult *r = pgread_exec(s, PGR_SUP_LIST, 3, vals, NULL, NULL, "listing suppressions",
				  err);
	if (!r)
		return -1;
	int rows = PQntuples(r);
	*out = rows ? xcalloc((size_t)rows, sizeof(**out)) : NULL;
	for (int i = 0; i < rows; i++) {
		struct suppression_rec *p = &(*out)[i];
		p->id = pg_col_int(r, i, 0);
		p->address = pg_col_text(r, i, 1);
		pg_col_copy(r, i, 2, p->enhanced, sizeof(p->enhanced));
		p->reason = pg_col_text(r, i, 3);
		pg_col_copy(r, i, 4, p->notice_id, sizeof(p->notice_id));
		p->created_ms = pg_col_int(r, i, 5);
	}
	*n = (size_t)rows;
	PQclear(r);
	return 0;
}

/* ---- Tracker lookups. */

int pg_token_lookup(struct store *s, const char *token, struct token_info *out,
		    struct selo_err *err)
{
	memset(out, 0, sizeof(*out));
	const char *vals[1] = {token};
	PGresult *r = pgread_exec(s, PGR_TOKEN_GET, 1, vals, NULL, NULL, "reading a token", err);
	if (!r)
		return -1;
	int found = PQntuples(r) > 0;
	if (found) {
		pg_col_copy(r, 0, 0, out->notice_id, sizeof(out->notice_id));
		pg_col_copy(r, 0, 1, out->kind, sizeof(out->kind));
		out->link = (int)pg_col_int(r, 0, 2);
		out->url = pg_col_text(r, 0, 3);
	}
	PQclear(r);
	return found;
}

int pg_notice_brief(struct store *s, const char *id, uint8_t salt[32], int64_t *accepted_ms,
		    struct selo_err *err)
{
	const char *vals[1] = {id};
	PGresult *r = pgread_exec(s, PGR_BRIEF, 1, vals, NULL, NULL, "reading a notice", err);
	if (!r)
		return -1;
	int found = PQntuples(r) > 0;
	if (found) {
		size_t len = 0;
		char *b = pgr_bytes(r, 0, 0, &len);
		memset(salt, 0, 32);
		if (len == 32)
			memcpy(salt, b, 32);
		free(b);
		*accepted_ms = pg_col_int(r, 0, 1);
	}
	PQclear(r);
	return found;
}
