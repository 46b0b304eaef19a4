/* store_pg_copy.c: `selo store copy`: a SQLite installation moved into an
 * empty PostgreSQL database with its log intact (store_pg_copy.h;
 * docs/scale.md "Moving from SQLite: selo store copy").
 *
 * The SQLite file is read with sqlite3 directly, in ONE read transaction
 * (the copy is of one commit), on a connection that writes nothing. The
 * target is opened through the PostgreSQL backend (so its migrations run)
 * and written in ONE transaction: the event clock's row is locked first
 * (as every event writer does, so no node adds an event meanwhile), the
 * target must hold no Selo data, then each table goes over with COPY FROM
 * STDIN in binary format, in foreign-key order: integers as int8, text and
 * blobs as the exact bytes SQLite holds, so ids, seqs, times, entries,
 * tiles and checkpoints arrive byte for byte. Table and column names come
 * from PGCOPY_TABLES below, never from input. Then the sequences are moved
 * past the copied ids (past SQLite's AUTOINCREMENT high-water marks too, so
 * a pruned webhook delivery's id is never handed out again), the event
 * clock is set to the last event's seq and time, claims stay empty, and
 * before COMMIT the copy is checked: rows per table, the log's state (size,
 * root, last seq), the latest checkpoint, and digests of every event entry
 * and every tile read back. Anything wrong rolls it all back.
 *
 * Columns PostgreSQL has and SQLite has not are left to their defaults:
 * notices.claimed_by (NULL) and lease_until (0), webhook_outbox's claim
 * columns, and notices.row_id and disclosures.id, which the sequences fill
 * in the order the rows are sent: SQLite's rowid order, which is what they
 * stand for. SQLite's legacy events.log_index is not copied (log_ranges
 * holds every index; store_pg_schema.c). */
#include <errno.h>
#include <poll.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "selo/buf.h"
#include "selo/clock.h"
#include "selo/codec.h"
#include "selo/crypto.h"
#include "selo/store_pg_copy.h"
#include "store_pg_int.h"

/* How long one step (a statement, a chunk of COPY data) may wait for the
 * server when the caller gives no store.timeout: a copy is one long
 * transaction, so each step gets its own deadline, not the whole copy. */
#define PGCOPY_STEP_TIMEOUT_MS 60000
/* COPY data is sent in chunks of about this many bytes. */
#define PGCOPY_CHUNK (256 * 1024)

/* One table: its columns (the same names on both sides), one kind letter
 * per column (i int8, t text, b bytea), the order rows are sent in, and
 * the column a PostgreSQL sequence numbers (moved past the copied ids). */
struct pgcopy_table {
	const char *name;
	const char *cols;
	const char *kinds;
	const char *order;
	const char *serial;
};

#define PC_STATS_HITS                                                                  \
	"open_hits_human,open_hits_proxy,open_hits_scanner,click_hits_human,"           \
	"click_hits_proxy,click_hits_scanner"

/* In foreign-key order: notices before what refers to them, webhooks
 * before their outbox. */
static const struct pgcopy_table PGCOPY_TABLES[] = {
	{"apikeys", "id,name,hash,prefix,created_ms,revoked_ms", "itbtii", "id", "id"},
	{"notices",
	 "id,apikey_id,status,to_addr,template,reference,segment,tags_json,payload_json,salt,"
	 "attempts,created_ms,updated_ms,next_attempt_ms,message_id,sha256,last_error,send_at_ms,"
	 "sequence_id,step",
	 "titttttttbiiiitttiti", "rowid", NULL},
	{"attachments", "notice_id,idx,filename,content_type,data", "tittb", "rowid", NULL},
	{"messages", "notice_id,eml,sha256,created_ms", "tbti", "rowid", NULL},
	{"tokens", "token,notice_id,kind,link,url", "tttit", "rowid", NULL},
	{"idempotency", "apikey_id,key,request_sha256,notice_id,created_ms", "itbti",
	 "apikey_id,key", NULL},
	{"events", "seq,notice_id,type,time_ms,entry", "ittib", "seq", "seq"},
	{"disclosures", "notice_id,commitment,value", "ttb", "rowid", NULL},
	{"log_state", "id,size,root,last_seq", "iibi", "id", NULL},
	{"log_tiles", "level,idx,data", "iib", "level,idx", NULL},
	{"log_ranges", "first_index,first_seq,n", "iii", "first_index", NULL},
	{"checkpoints", "size,note,created_ms,tst,tst_time_ms", "itibi", "size", NULL},
	{"webhooks",
	 "id,apikey_id,url,events,secret,from_seq,created_ms,disabled_ms,disabled_reason,"
	 "old_secret,old_secret_until_ms",
	 "tittbiiitbi", "rowid", NULL},
	{"webhook_outbox",
	 "id,webhook_id,seq,state,attempts,next_ms,last_status,last_error,created_ms,done_ms",
	 "ititiiitii", "id", "id"},
	{"webhook_cursor", "id,seq", "ii", "id", NULL},
	{"suppressions", "id,apikey_id,address,address_key,enhanced,reason,notice_id,created_ms",
	 "iittttti", "id", "id"},
	{"sequences",
	 "id,apikey_id,status,reason,request_json,idempotency_key,request_sha256,created_ms,"
	 "stopped_ms",
	 "tittttbii", "rowid", NULL},
	{"stats_cursor", "id,seq", "ii", "id", NULL},
	{"stats_dims", "id,dkey,apikey_id,template,segment,tags_json", "itittt", "id", "id"},
	{"stats_notices",
	 "notice_id,apikey_id,dim,day,flags,accepted_ms,delivered_ms,open_ms,read_ms," PC_STATS_HITS,
	 "tiiiiiiiiiiiiii", "notice_id", NULL},
	{"stats_rollup",
	 "dim,day,accepted,delivered,deferred,failed,canceled,opened_human,opened_proxy,"
	 "opened_scanner,clicked_human,clicked_proxy,clicked_scanner,read_confirmed," PC_STATS_HITS,
	 "iiiiiiiiiiiiiiiiiiii", "dim,day", NULL},
	{"stats_delays", "id,dim,day,kind,chunk,vals", "iiiiib", "id", "id"},
	{"hit_tally",
	 "notice_id,full_opened_human,full_opened_proxy,full_opened_scanner,full_clicked_human,"
	 "full_clicked_proxy,full_clicked_scanner,summaries,fold_first_ms,fold_last_ms,"
	 "fold_due_ms,fold_opened_human,fold_opened_proxy,fold_opened_scanner,"
	 "fold_clicked_human,fold_clicked_proxy,fold_clicked_scanner,fold_addresses",
	 "tiiiiiiiiiiiiiiiii", "notice_id", NULL},
	{"hit_fold_addrs", "notice_id,addr", "tb", "notice_id,addr", NULL},
};
#define PGCOPY_NTABLES (sizeof(PGCOPY_TABLES) / sizeof(PGCOPY_TABLES[0]))
_Static_assert(PGCOPY_NTABLES <= PGCOPY_MAX_TABLES, "the report holds every table");

/* The empty tree's root, SHA-256(""): the log_state row PostgreSQL's
 * schema starts with (store_pg_schema.c, store_pg_log.c's fence), which a
 * SQLite log_state row replaces; a SQLite store whose log never grew has
 * none, and the copy keeps PostgreSQL's. */
#define PGCOPY_EMPTY_ROOT_HEX "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define PGCOPY_EMPTY_ROOT "decode('" PGCOPY_EMPTY_ROOT_HEX "', 'hex')"

/* Digests of the log's bytes as sent, checked against the same read back
 * from PostgreSQL: per block, the SHA-256 of the SHA-256s of its rows in
 * order (events: each entry, blocks of PGCOPY_DIGEST_SEQS seqs; tiles:
 * each tile's data, one block per level, by index). Blocks bound what
 * either side holds at once (32 bytes a row of one block), whatever the
 * size of the log. */
#define PGCOPY_DIGEST_SEQS 65536
struct pgcopy_digest {
	int64_t block;   /* the block being summed */
	struct buf rows; /* its rows' SHA-256s */
	struct buf done; /* each finished block: int64 block, then 32 bytes */
};

/* One copy in progress. */
struct pgcopy {
	sqlite3 *db;            /* the source, inside its read transaction */
	struct pgstore *pg;     /* the target's pool */
	struct pgconn *c;       /* the connection of the copy's transaction */
	struct pgcopy_report *out;
	struct pgcopy_digest digest[2]; /* events, tiles */
	struct buf data;        /* COPY data not sent yet */
};

/* ---- The source */

static int pgcopy_sqlite_err(sqlite3 *db, const char *doing, struct selo_err *err)
{
	return err_set(err, 500, "storage-failed", "store copy: %s: %s", doing, sqlite3_errmsg(db));
}

/* Opens the file without creating it; query_only: nothing is written (a
 * WAL a crash left is still read, as any reader does). BEGIN, then the
 * first read starts the one read transaction every later read shares. */
static int pgcopy_sqlite_open(struct pgcopy *k, const char *path, struct selo_err *err)
{
	if (access(path, R_OK) != 0)
		return err_set(err, 404, "not-found", "store copy: %s: %s", path, strerror(errno));
	if (sqlite3_open_v2(path, &k->db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
		return pgcopy_sqlite_err(k->db, "opening the SQLite database", err);
	sqlite3_busy_timeout(k->db, 5000);
	if (sqlite3_exec(k->db, "PRAGMA query_only=1; BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		return pgcopy_sqlite_err(k->db, "starting the read transaction", err);
	return 0;
}

/* One row of integers from sql (with ?1 bound to arg when not NULL) into
 * v[0..n-1]; NULL reads as 0. 1 a row, 0 none, -1 err. */
static int pgcopy_sqlite_ints(sqlite3 *db, const char *sql, const char *arg, int64_t *v, int n,
			      struct selo_err *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return pgcopy_sqlite_err(db, "reading the SQLite database", err);
	if (arg)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	for (int i = 0; rc == SQLITE_ROW && i < n; i++)
		v[i] = sqlite3_column_int64(st, i);
	int r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
	if (r < 0)
		pgcopy_sqlite_err(db, "reading the SQLite database", err);
	sqlite3_finalize(st);
	return r;
}

/* Only the schema this binary writes: an older one lacks columns, a newer
 * one may mean things this binary cannot copy. */
static int pgcopy_sqlite_version(struct pgcopy *k, struct selo_err *err)
{
	int64_t v = 0;
	if (pgcopy_sqlite_ints(k->db, "SELECT max(version) FROM schema_migrations", NULL, &v, 1,
			       err) < 0)
		return -1;
	if (v == PGCOPY_SQLITE_SCHEMA)
		return 0;
	if (v < PGCOPY_SQLITE_SCHEMA)
		return err_set(err, 409, "schema-mismatch",
			       "store copy: the SQLite database has schema version %lld, older than "
			       "this selo's %d: open it once with this selo while store.backend is "
			       "still sqlite (`selo store check --data DIR` migrates it), then copy",
			       (long long)v, PGCOPY_SQLITE_SCHEMA);
	return err_set(err, 409, "schema-mismatch",
		       "store copy: the SQLite database has schema version %lld, newer than this "
		       "selo's %d: copy it with the selo that wrote it",
		       (long long)v, PGCOPY_SQLITE_SCHEMA);
}

/* ---- The target: statements with results, on the copy's connection,
 * each with a deadline of its own (the copy is one long transaction). */

static int pgcopy_lost(const char *doing, struct selo_err *err, const char *why)
{
	return err_set(err, 503, "store-unavailable", "store unavailable: %s: %s", doing, why);
}

/* Sends what libpq holds, then waits until a whole result is in. */
static int pgcopy_wait(struct pgcopy *k, const char *doing, struct selo_err *err)
{
	PGconn *conn = pgconn_handle(k->c);
	int64_t deadline = pgstore_deadline(k->pg);
	int f;
	for (;;) {
		f = PQflush(conn);
		if (f < 0)
			return pgcopy_lost(doing, err, PQerrorMessage(conn));
		if (f == 0 && !PQisBusy(conn))
			return 0;
		int fd = PQsocket(conn);
		int64_t left = deadline - clock_mono_ms();
		if (fd < 0 || left <= 0)
			return pgcopy_lost(doing, err, fd < 0 ? "no connection" : "no answer in time");
		struct pollfd p = {.fd = fd, .events = (short)(POLLIN | (f ? POLLOUT : 0))};
		int rc = poll(&p, 1, left > 1000 ? 1000 : (int)left);
		if (rc < 0 && errno != EINTR)
			return pgcopy_lost(doing, err, strerror(errno));
		if (rc > 0 && !PQconsumeInput(conn))
			return pgcopy_lost(doing, err, PQerrorMessage(conn));
	}
}

/* Reads every result of what was sent: the first failure, or the last
 * result (for the caller to PQclear). NULL with err on failure. want is
 * the status a success has. */
static PGresult *pgcopy_results(struct pgcopy *k, ExecStatusType want, const char *doing,
				struct selo_err *err)
{
	PGconn *conn = pgconn_handle(k->c);
	PGresult *keep = NULL;
	int bad = 0;
	for (;;) {
		if (pgcopy_wait(k, doing, err) != 0) {
			PQclear(keep);
			return NULL;
		}
		PGresult *r = PQgetResult(conn);
		if (!r)
			break;
		ExecStatusType st = PQresultStatus(r);
		if (bad) {
			PQclear(r);
			continue;
		}
		PQclear(keep);
		keep = r;
		bad = st != want;
		if (st == PGRES_COPY_IN && !bad)
			break; /* the server waits for our data: no NULL result before it */
	}
	if (!keep) {
		pgcopy_lost(doing, err, "the connection was lost");
		return NULL;
	}
	if (bad) {
		pgstore_map_error(conn, keep, doing, err);
		PQclear(keep);
		return NULL;
	}
	return keep;
}

/* One statement with text parameters (values never enter the SQL). */
static PGresult *pgcopy_query(struct pgcopy *k, const char *sql, int n, const char *const *vals,
			      const char *doing, struct selo_err *err)
{
	PGconn *conn = pgconn_handle(k->c);
	if (!PQsendQueryParams(conn, sql, n, NULL, vals, NULL, NULL, 0)) {
		pgcopy_lost(doing, err, PQerrorMessage(conn));
		return NULL;
	}
	return pgcopy_results(k, PGRES_TUPLES_OK, doing, err);
}

/* ---- The target must be empty */

/* Every table of ours that holds a row, an event clock that moved, a log
 * that is not the empty tree the schema starts with: rows there would mix
 * two logs. "" when empty. Caller frees. */
static char *pgcopy_target_rows(struct pgcopy *k, struct selo_err *err)
{
	struct buf sql = BUF_INIT;
	buf_puts(&sql, "SELECT 'event_clock' FROM event_clock WHERE seq <> 0 OR time_ms <> 0"
		 " UNION ALL SELECT 'log_state' FROM log_state WHERE size <> 0 OR last_seq <> 0"
		 " OR root <> " PGCOPY_EMPTY_ROOT);
	for (size_t i = 0; i < PGCOPY_NTABLES; i++)
		if (strcmp(PGCOPY_TABLES[i].name, "log_state") != 0)
			buf_printf(&sql, " UNION ALL SELECT '%s' WHERE EXISTS (SELECT 1 FROM %s)",
				   PGCOPY_TABLES[i].name, PGCOPY_TABLES[i].name);
	PGresult *r = pgcopy_query(k, buf_str(&sql), 0, NULL, "checking that the target is empty", err);
	buf_free(&sql);
	if (!r)
		return NULL;
	struct buf names = BUF_INIT;
	for (int i = 0; i < PQntuples(r); i++)
		buf_printf(&names, "%s%s", i ? ", " : "", PQgetvalue(r, i, 0));
	buf_putc(&names, '\0');
	PQclear(r);
	return buf_steal(&names, NULL);
}

/* Takes the event clock's row lock (every event writer takes it first, so
 * no node adds an event while the copy runs, and a second copy waits for
 * this one), then refuses a target that holds anything. */
static int pgcopy_target_empty(struct pgcopy *k, struct selo_err *err)
{
	PGresult *r = pgcopy_query(k, "SELECT seq FROM event_clock WHERE id = 1 FOR UPDATE", 0,
				   NULL, "locking the event clock", err);
	if (!r)
		return -1;
	PQclear(r);
	char *names = pgcopy_target_rows(k, err);
	if (!names)
		return -1;
	int r2 = 0;
	if (*names)
		r2 = err_set(err, 409, "target-not-empty",
			     "store copy: the target database already holds Selo data (in %s): "
			     "copy into a new, empty database",
			     names);
	free(names);
	return r2;
}

/* ---- COPY of one table */

static void pgcopy_put_u16(struct buf *b, uint16_t v)
{
	uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	buf_append(b, x, 2);
}

static void pgcopy_put_u32(struct buf *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	buf_append(b, x, 4);
}

static void pgcopy_put_i64(struct buf *b, int64_t sv)
{
	uint64_t v = (uint64_t)sv;
	pgcopy_put_u32(b, (uint32_t)(v >> 32));
	pgcopy_put_u32(b, (uint32_t)v);
}

/* libpq took no more data: the server ended the COPY with an error (a
 * constraint, say), which is what err should say; else the link is gone. */
static int pgcopy_refused(struct pgcopy *k, const char *doing, struct selo_err *err)
{
	PGresult *r = pgcopy_results(k, PGRES_COMMAND_OK, doing, err);
	if (!r)
		return -1;
	PQclear(r);
	return pgcopy_lost(doing, err, PQerrorMessage(pgconn_handle(k->c)));
}

/* Hands the buffered COPY data to libpq (waiting while its buffer is full)
 * and empties it. */
static int pgcopy_send(struct pgcopy *k, const char *doing, struct selo_err *err)
{
	PGconn *conn = pgconn_handle(k->c);
	for (;;) {
		int rc = PQputCopyData(conn, k->data.data, (int)k->data.len);
		if (rc < 0)
			return pgcopy_refused(k, doing, err);
		if (rc == 1)
			break;
		if (pgcopy_wait(k, doing, err) != 0) /* would block: let it drain */
			return -1;
	}
	buf_reset(&k->data);
	return 0;
}

/* One SQLite value as a binary COPY field of the column's kind. Only
 * what PostgreSQL holds as the same bytes is taken: an integer column
 * must hold integers, a text or blob column text or bytes. 0, or -1 with
 * err (422 copy-refused) naming the table and column, never the value. */
static int pgcopy_field(struct pgcopy *k, sqlite3_stmt *st, int i, char kind,
			const struct pgcopy_table *t, struct selo_err *err)
{
	int type = sqlite3_column_type(st, i);
	if (type == SQLITE_NULL) {
		pgcopy_put_u32(&k->data, 0xffffffffu);
		return 0;
	}
	int ok = kind == 'i' ? type == SQLITE_INTEGER : type == SQLITE_TEXT || type == SQLITE_BLOB;
	if (!ok)
		return err_set(err, 422, "copy-refused",
			       "store copy: %s.%s holds a %s where this schema has %s: PostgreSQL "
			       "could not keep it as it is; nothing was copied",
			       t->name, sqlite3_column_name(st, i),
			       type == SQLITE_INTEGER ? "integer" : type == SQLITE_FLOAT ? "real"
				       : type == SQLITE_TEXT ? "text" : "blob",
			       kind == 'i' ? "integers" : kind == 't' ? "text" : "bytes");
	if (kind == 'i') {
		pgcopy_put_u32(&k->data, 8);
		pgcopy_put_i64(&k->data, sqlite3_column_int64(st, i));
		return 0;
	}
	const void *p = sqlite3_column_blob(st, i);
	int n = sqlite3_column_bytes(st, i);
	pgcopy_put_u32(&k->data, (uint32_t)n);
	if (n > 0)
		buf_append(&k->data, p, (size_t)n);
	return 0;
}

static void pgcopy_digest_close(struct pgcopy_digest *d)
{
	if (!d->rows.len)
		return;
	uint8_t h[32];
	sha256(d->rows.data, d->rows.len, h);
	buf_append(&d->done, &d->block, sizeof d->block);
	buf_append(&d->done, h, 32);
	buf_reset(&d->rows);
}

/* A row of events (entry: column 4) or of log_tiles (data: column 2)
 * into its block's digest; other tables have none. */
static void pgcopy_digest_row(struct pgcopy *k, const struct pgcopy_table *t, sqlite3_stmt *st)
{
	int ev = !strcmp(t->name, "events");
	if (!ev && strcmp(t->name, "log_tiles") != 0)
		return;
	struct pgcopy_digest *d = &k->digest[!ev];
	int col = ev ? 4 : 2;
	int64_t block = ev ? sqlite3_column_int64(st, 0) / PGCOPY_DIGEST_SEQS
			   : sqlite3_column_int64(st, 0);
	if (block != d->block)
		pgcopy_digest_close(d);
	d->block = block;
	uint8_t h[32];
	sha256(sqlite3_column_blob(st, col), (size_t)sqlite3_column_bytes(st, col), h);
	buf_append(&d->rows, h, 32);
}

/* Reads t's rows from SQLite into the COPY stream; *rows counts them. */
static int pgcopy_rows(struct pgcopy *k, const struct pgcopy_table *t, sqlite3_stmt *st,
		       int64_t *rows, const char *doing, struct selo_err *err)
{
	int ncols = (int)strlen(t->kinds), rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		pgcopy_put_u16(&k->data, (uint16_t)ncols);
		for (int i = 0; i < ncols; i++)
			if (pgcopy_field(k, st, i, t->kinds[i], t, err) != 0)
				return -1;
		pgcopy_digest_row(k, t, st);
		(*rows)++;
		if (k->data.len >= PGCOPY_CHUNK && pgcopy_send(k, doing, err) != 0)
			return -1;
	}
	if (rc != SQLITE_DONE)
		return pgcopy_sqlite_err(k->db, doing, err);
	return 0;
}

/* Ends the COPY: with reason NULL the server takes the rows; otherwise it
 * fails the COPY (and so the transaction). */
static int pgcopy_end(struct pgcopy *k, const char *reason, const char *doing,
		      struct selo_err *err)
{
	struct selo_err ignored; /* giving up: err already says why */
	struct selo_err *e = reason ? &ignored : err;
	PGconn *conn = pgconn_handle(k->c);
	int rc;
	while ((rc = PQputCopyEnd(conn, reason)) == 0)
		if (pgcopy_wait(k, doing, e) != 0)
			return -1;
	if (rc < 0)
		return reason ? -1 : pgcopy_refused(k, doing, err);
	PGresult *r = pgcopy_results(k, PGRES_COMMAND_OK, doing, e);
	PQclear(r);
	return r && !reason ? 0 : -1;
}

/* SQLite's log_state row, when it has one, replaces the empty tree the
 * target starts with (checked empty by pgcopy_target_empty). */
static int pgcopy_log_state_clear(struct pgcopy *k, struct selo_err *err)
{
	int64_t n = 0;
	if (pgcopy_sqlite_ints(k->db, "SELECT count(*) FROM log_state", NULL, &n, 1, err) < 0)
		return -1;
	if (n == 0)
		return 0;
	PGresult *r = pgcopy_query(k, "DELETE FROM log_state RETURNING id", 0, NULL,
				   "replacing the empty tree", err);
	PQclear(r);
	return r ? 0 : -1;
}

static const char PGCOPY_HEADER[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";

/* COPY t FROM STDIN (binary): the header, every row, the trailer. */
static int pgcopy_table(struct pgcopy *k, const struct pgcopy_table *t, int64_t *rows,
			struct selo_err *err)
{
	char doing[96], sql[1024];
	snprintf(doing, sizeof doing, "copying %s", t->name);
	sqlite3_stmt *st = NULL;
	snprintf(sql, sizeof sql, "SELECT %s FROM %s ORDER BY %s", t->cols, t->name, t->order);
	if (sqlite3_prepare_v2(k->db, sql, -1, &st, NULL) != SQLITE_OK)
		return pgcopy_sqlite_err(k->db, doing, err);
	if (!strcmp(t->name, "log_state") && pgcopy_log_state_clear(k, err) != 0) {
		sqlite3_finalize(st);
		return -1;
	}
	snprintf(sql, sizeof sql, "COPY %s(%s) FROM STDIN (FORMAT binary)", t->name, t->cols);
	PGconn *conn = pgconn_handle(k->c);
	PGresult *r = NULL;
	if (!PQsendQuery(conn, sql))
		pgcopy_lost(doing, err, PQerrorMessage(conn));
	else
		r = pgcopy_results(k, PGRES_COPY_IN, doing, err);
	if (!r) {
		sqlite3_finalize(st);
		return -1;
	}
	PQclear(r);
	buf_reset(&k->data);
	buf_append(&k->data, PGCOPY_HEADER, sizeof PGCOPY_HEADER);
	*rows = 0;
	int rc = pgcopy_rows(k, t, st, rows, doing, err);
	sqlite3_finalize(st);
	if (rc == 0) {
		pgcopy_put_u16(&k->data, 0xffffu);
		rc = pgcopy_send(k, doing, err);
	}
	if (rc != 0) {
		pgcopy_end(k, "selo store copy gave up", doing, err); /* the connection may be gone */
		return -1;
	}
	return pgcopy_end(k, NULL, doing, err);
}

/* Every table, in order; the report gets the rows of each. */
static int pgcopy_tables(struct pgcopy *k, struct selo_err *err)
{
	int r = 0;
	for (size_t i = 0; i < PGCOPY_NTABLES && r == 0; i++) {
		const struct pgcopy_table *t = &PGCOPY_TABLES[i];
		k->out->tables[i].table = t->name;
		r = pgcopy_table(k, t, &k->out->tables[i].rows, err);
		k->out->ntables = i + 1;
	}
	pgcopy_digest_close(&k->digest[0]);
	pgcopy_digest_close(&k->digest[1]);
	return r;
}

/* ---- After the rows */

/* Each sequence past the ids copied, and past SQLite's AUTOINCREMENT
 * high-water mark (sqlite_sequence keeps the largest id ever given, also
 * of rows since deleted, such as pruned webhook deliveries). */
static int pgcopy_sequences(struct pgcopy *k, struct selo_err *err)
{
	for (size_t i = 0; i < PGCOPY_NTABLES; i++) {
		const struct pgcopy_table *t = &PGCOPY_TABLES[i];
		if (!t->serial)
			continue;
		char sql[256];
		snprintf(sql, sizeof sql,
			 "SELECT max(coalesce((SELECT max(%s) FROM %s), 0),"
			 " coalesce((SELECT seq FROM sqlite_sequence WHERE name = ?1), 0))",
			 t->serial, t->name);
		int64_t v = 0;
		if (pgcopy_sqlite_ints(k->db, sql, t->name, &v, 1, err) < 0)
			return -1;
		if (v <= 0)
			continue; /* nothing copied: the sequence starts at 1 as it is */
		char n[24];
		snprintf(n, sizeof n, "%lld", (long long)v);
		const char *vals[] = {t->name, t->serial, n};
		PGresult *r = pgcopy_query(k, "SELECT setval(pg_get_serial_sequence($1, $2), $3::bigint)",
					   3, vals, "moving a sequence past the copied ids", err);
		if (!r)
			return -1;
		PQclear(r);
	}
	return 0;
}

/* The event clock at the last event copied: the next event's seq follows
 * it and its time never goes back before it. */
static int pgcopy_event_clock(struct pgcopy *k, struct selo_err *err)
{
	int64_t v[2] = {0, 0};
	if (pgcopy_sqlite_ints(k->db, "SELECT coalesce(max(seq), 0), coalesce(max(time_ms), 0)"
			       " FROM events", NULL, v, 2, err) < 0)
		return -1;
	char seq[24], t[24];
	snprintf(seq, sizeof seq, "%lld", (long long)v[0]);
	snprintf(t, sizeof t, "%lld", (long long)v[1]);
	const char *vals[] = {seq, t};
	PGresult *r = pgcopy_query(k, "UPDATE event_clock SET seq = $1, time_ms = $2 WHERE id = 1"
				   " RETURNING seq", 2, vals, "setting the event clock", err);
	if (!r)
		return -1;
	int one = PQntuples(r) == 1;
	PQclear(r);
	return one ? 0 : err_set(err, 500, "copy-mismatch", "store copy: the target has no event clock");
}

/* ---- The check before COMMIT */

static int pgcopy_mismatch(const char *what, struct selo_err *err)
{
	return err_set(err, 500, "copy-mismatch",
		       "store copy: after the copy, %s differs between SQLite and PostgreSQL: "
		       "nothing was committed",
		       what);
}

/* Rows per table: as many in PostgreSQL as were sent as SQLite counts. */
static int pgcopy_check_counts(struct pgcopy *k, struct selo_err *err)
{
	for (size_t i = 0; i < k->out->ntables; i++) {
		const struct pgcopy_table *t = &PGCOPY_TABLES[i];
		char sql[128];
		snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", t->name);
		int64_t have = -1;
		if (pgcopy_sqlite_ints(k->db, sql, NULL, &have, 1, err) < 0)
			return -1;
		PGresult *r = pgcopy_query(k, sql, 0, NULL, "counting the copied rows", err);
		if (!r)
			return -1;
		int64_t got = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		PQclear(r);
		int kept = !strcmp(t->name, "log_state") && have == 0 && got == 1; /* the empty tree */
		if (have != k->out->tables[i].rows || (got != have && !kept)) {
			char what[96];
			snprintf(what, sizeof what, "the number of rows of %s", t->name);
			return pgcopy_mismatch(what, err);
		}
	}
	return 0;
}

/* One row of text from SQLite (NULL columns as ""), tab separated. */
static char *pgcopy_sqlite_line(sqlite3 *db, const char *sql, struct selo_err *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		pgcopy_sqlite_err(db, "reading the SQLite database", err);
		return NULL;
	}
	struct buf b = BUF_INIT;
	int rc = sqlite3_step(st);
	for (int i = 0; rc == SQLITE_ROW && i < sqlite3_column_count(st); i++) {
		const unsigned char *v = sqlite3_column_text(st, i);
		buf_printf(&b, "%s%s", i ? "\t" : "", v ? (const char *)v : "");
	}
	buf_putc(&b, '\0');
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		buf_free(&b);
		pgcopy_sqlite_err(db, "reading the SQLite database", err);
		return NULL;
	}
	return buf_steal(&b, NULL);
}

/* The same row of text from the target. */
static char *pgcopy_pg_line(struct pgcopy *k, const char *sql, struct selo_err *err)
{
	PGresult *r = pgcopy_query(k, sql, 0, NULL, "checking the copy", err);
	if (!r)
		return NULL;
	struct buf b = BUF_INIT;
	for (int i = 0; PQntuples(r) > 0 && i < PQnfields(r); i++)
		buf_printf(&b, "%s%s", i ? "\t" : "", PQgetvalue(r, 0, i));
	buf_putc(&b, '\0');
	PQclear(r);
	return buf_steal(&b, NULL);
}

/* The same question to both databases (SQL each understands the same way,
 * hex in lowercase on both): equal answers, or a mismatch naming what. */
static int pgcopy_check_same(struct pgcopy *k, const char *sqlite_sql, const char *pg_sql,
			     const char *what, struct selo_err *err)
{
	char *a = pgcopy_sqlite_line(k->db, sqlite_sql, err);
	char *b = a ? pgcopy_pg_line(k, pg_sql, err) : NULL;
	int r = !a || !b ? -1 : strcmp(a, b) ? pgcopy_mismatch(what, err) : 0;
	free(a);
	free(b);
	return r;
}

/* Every entry and tile read back equals what was sent, block by block
 * (with the equal row counts, no block of the target holds a row more). */
static int pgcopy_check_digests(struct pgcopy *k, struct selo_err *err)
{
	static const struct {
		const char *sql, *what;
	} q[] = {
		{"SELECT encode(sha256(string_agg(sha256(entry), ''::bytea ORDER BY seq)), 'hex')"
		 " FROM events WHERE seq >= $1::bigint * $2::bigint"
		 " AND seq < ($1::bigint + 1) * $2::bigint", "an event entry"},
		{"SELECT encode(sha256(string_agg(sha256(data), ''::bytea ORDER BY idx)), 'hex')"
		 " FROM log_tiles WHERE level = $1::bigint AND $2::bigint > 0", "a tile of the log"},
	};
	char per[24];
	snprintf(per, sizeof per, "%d", PGCOPY_DIGEST_SEQS);
	for (size_t i = 0; i < 2; i++) {
		const struct buf *done = &k->digest[i].done;
		for (size_t off = 0; off + 40 <= done->len; off += 40) {
			int64_t block;
			memcpy(&block, done->data + off, sizeof block);
			char b[24], hex[65];
			snprintf(b, sizeof b, "%lld", (long long)block);
			hex_encode((const uint8_t *)done->data + off + 8, 32, hex);
			const char *vals[] = {b, per};
			PGresult *r = pgcopy_query(k, q[i].sql, 2, vals, "checking the copy", err);
			if (!r)
				return -1;
			int same = PQntuples(r) == 1 && !strcmp(PQgetvalue(r, 0, 0), hex);
			PQclear(r);
			if (!same)
				return pgcopy_mismatch(q[i].what, err);
		}
	}
	return 0;
}

static int pgcopy_check(struct pgcopy *k, struct selo_err *err)
{
	if (pgcopy_check_counts(k, err) != 0 || pgcopy_check_digests(k, err) != 0)
		return -1;
	if (pgcopy_check_same(k, "SELECT coalesce((SELECT size FROM log_state WHERE id = 1), 0),"
			      " coalesce((SELECT lower(hex(root)) FROM log_state WHERE id = 1), '"
			      PGCOPY_EMPTY_ROOT_HEX "'),"
			      " coalesce((SELECT last_seq FROM log_state WHERE id = 1), 0)",
			      "SELECT size, encode(root, 'hex'), last_seq FROM log_state WHERE id = 1",
			      "the log's state (size, root, last seq)", err) != 0)
		return -1;
	return pgcopy_check_same(
		k,
		"SELECT size, note, created_ms, lower(hex(tst)), coalesce(tst_time_ms, -1)"
		" FROM checkpoints ORDER BY size DESC LIMIT 1",
		"SELECT size, note, created_ms, coalesce(encode(tst, 'hex'), ''),"
		" coalesce(tst_time_ms, -1) FROM checkpoints ORDER BY size DESC LIMIT 1",
		"the latest checkpoint", err);
}

/* ---- The report: what the log holds, read from the source. */
static int pgcopy_describe(struct pgcopy *k, struct selo_err *err)
{
	struct pgcopy_report *o = k->out;
	sha256("", 0, o->root); /* a log that never grew: the empty tree */
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(k->db, "SELECT size, root, last_seq FROM log_state WHERE id = 1",
				    -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		o->log_size = (uint64_t)sqlite3_column_int64(st, 0);
		if (sqlite3_column_bytes(st, 1) == 32)
			memcpy(o->root, sqlite3_column_blob(st, 1), 32);
		o->last_seq = sqlite3_column_int64(st, 2);
	}
	sqlite3_finalize(st);
	st = NULL;
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		rc = sqlite3_prepare_v2(k->db, "SELECT size, note FROM checkpoints ORDER BY size DESC"
					" LIMIT 1", -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		o->checkpoint_size = (uint64_t)sqlite3_column_int64(st, 0);
		const unsigned char *note = sqlite3_column_text(st, 1);
		o->checkpoint = xstrdup(note ? (const char *)note : "");
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return pgcopy_sqlite_err(k->db, "reading the log's state", err);
	for (size_t i = 0; i < o->ntables; i++)
		if (!strcmp(o->tables[i].table, "events"))
			o->events = o->tables[i].rows;
	return 0;
}

/* ---- The whole copy */

/* Inside the target's transaction: the rows, then the sequences and the
 * clock, then the check. */
static int pgcopy_txn_body(struct pgcopy *k, struct selo_err *err)
{
	if (pgcopy_target_empty(k, err) != 0 || pgcopy_tables(k, err) != 0 ||
	    pgcopy_sequences(k, err) != 0 || pgcopy_event_clock(k, err) != 0 ||
	    pgcopy_check(k, err) != 0)
		return -1;
	return pgcopy_describe(k, err);
}

static int pgcopy_txn(struct pgcopy *k, struct selo_err *err)
{
	enum pg_fail fail;
	k->c = pgstore_acquire(k->pg, pgstore_deadline(k->pg), err);
	if (!k->c)
		return -1;
	int r = pgconn_simple(k->c, "BEGIN", pgstore_deadline(k->pg), &fail,
			      "starting the copy's transaction", err);
	if (r == 0 && (r = pgcopy_txn_body(k, err)) != 0) {
		struct selo_err ignored;
		pgconn_simple(k->c, "ROLLBACK", pgstore_deadline(k->pg), &fail, "rolling back",
			      &ignored);
	}
	if (r == 0 && pgconn_simple(k->c, "COMMIT", pgstore_deadline(k->pg), &fail,
				    "committing the copy", err) != 0)
		r = -1;
	pgstore_release(k->pg, k->c);
	k->c = NULL;
	return r;
}

/* Each table's kinds name each of its columns once (a slip in the table
 * above would shift every later column). */
static int pgcopy_tables_sound(struct selo_err *err)
{
	for (size_t i = 0; i < PGCOPY_NTABLES; i++) {
		const struct pgcopy_table *t = &PGCOPY_TABLES[i];
		size_t cols = 1;
		for (const char *c = t->cols; *c; c++)
			cols += *c == ',';
		if (cols != strlen(t->kinds) || strspn(t->kinds, "itb") != cols)
			return err_set(err, 500, "internal", "store copy: the columns of %s are "
				       "misdescribed", t->name);
	}
	return 0;
}

int store_pg_copy(const char *sqlite_path, const struct store_params *to,
		  struct pgcopy_report *out, struct selo_err *err)
{
	memset(out, 0, sizeof *out);
	if (pgcopy_tables_sound(err) != 0)
		return -1;
	if (!to->backend || strcmp(to->backend, "postgres") != 0)
		return err_set(err, 400, "invalid-config",
			       "store copy: the target must be a PostgreSQL database");
	struct pgcopy k = {.out = out, .data = BUF_INIT};
	struct store *st = NULL;
	struct store_params p = *to;
	if (p.timeout_ms <= 0)
		p.timeout_ms = PGCOPY_STEP_TIMEOUT_MS;
	int r = -1;
	if (pgcopy_sqlite_open(&k, sqlite_path, err) != 0 || pgcopy_sqlite_version(&k, err) != 0 ||
	    store_open_backend(&p, &st, err) != 0)
		goto done;
	k.pg = pgstore_of(st);
	r = pgcopy_txn(&k, err);
	if (r == 0)
		out->target = pgstore_redact_url(to->target);
done:
	store_close(st);
	if (k.db) {
		sqlite3_exec(k.db, "ROLLBACK", NULL, NULL, NULL);
		sqlite3_close(k.db);
	}
	buf_free(&k.data);
	for (int i = 0; i < 2; i++) {
		buf_free(&k.digest[i].rows);
		buf_free(&k.digest[i].done);
	}
	if (r != 0)
		pgcopy_report_free(out);
	return r;
}

void pgcopy_report_free(struct pgcopy_report *r)
{
	if (!r)
		return;
	free(r->checkpoint);
	free(r->target);
	memset(r, 0, sizeof *r);
}
