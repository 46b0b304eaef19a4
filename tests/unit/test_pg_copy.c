/* test_pg_copy.c: `selo store copy` (src/store_pg_copy.c) from a SQLite
 * store into a private PostgreSQL (t_pg.h). The SQLite store is made
 * through store.h (an API key, notices accepted) and with raw
 * sqlite3 inserts for the rest of its tables (edge values: NULLs, empty and
 * binary blobs, UTF-8, extreme integers, a message larger than one COPY
 * chunk, thousands of events). Then every table is compared row by row
 * between the two databases, read raw: the tables and columns come from
 * SQLite's own catalogue, not from the copy's table list, so a table the
 * copy forgets fails here. Also: the event clock and the sequences after
 * the copy, a second copy refused without change, copies that fail
 * half-way leaving the target empty, a schema that is not this binary's
 * refused, and the URL's password never shown. */
#include <sqlite3.h>
#include <stdarg.h>
#include "t.h"
#include "t_pg.h"
#include "selo/buf.h"
#include "selo/codec.h"
#include "selo/crypto.h"
#include "selo/id.h"
#include "selo/store.h"
#include "selo/store_pg_copy.h"

/* t_pg.h's restart is not needed here. */
static void (*const cp_restart)(void) __attribute__((unused)) = t_pg_restart;

/* ---- The SQLite side */

struct cp_src {
	char dir[64];
	char path[128];
};

static int cp_sqlite_exec(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	char *msg = NULL;
	int rc = sqlite3_open(path, &db);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		fprintf(stderr, "  sqlite: %s\n", msg ? msg : sqlite3_errmsg(db));
	sqlite3_free(msg);
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -1;
}

/* A notice accepted through the store, with an idempotency key. */
static int cp_accept(struct store *s, int64_t key, const char *idem)
{
	struct notice_new n;
	memset(&n, 0, sizeof n);
	uint8_t id[SELO_ID_BYTES];
	id_new(id);
	id_to_text(id, n.id);
	n.apikey_id = key;
	n.idempotency_key = idem;
	sha256(idem, strlen(idem), n.request_sha256);
	random_bytes(n.salt, sizeof n.salt);
	n.to = "devedor@example.com";
	n.template_name = "lembrete";
	n.reference = "ref-1";
	n.segment = "varejo";
	n.tags_json = "[\"a\"]";
	n.payload_json = "{\"template\":\"lembrete\"}";
	n.event_fields = json_pack("{s:s,s:s}", "to", "sha256:00", "template", "lembrete");
	struct accept_result r;
	memset(&r, 0, sizeof r);
	struct selo_err e;
	err_clear(&e);
	int rc = store_notices_accept(s, &n, 1, &r, &e);
	if (rc != 0)
		fprintf(stderr, "  accept: %s\n", e.msg);
	json_decref(n.event_fields);
	return rc == 0 && !r.failed ? 0 : -1;
}

/* What store.h writes, then raw rows in every other table. */
static const char CP_RAW[] =
	"INSERT INTO apikeys(name, hash, prefix, created_ms, revoked_ms)"
	" VALUES('revoked é', x'00ff00', 'sk_x', 9223372036854775807, -9223372036854775808);"
	"INSERT INTO notices(id, apikey_id, status, to_addr, template, reference, segment,"
	" tags_json, payload_json, salt, attempts, created_ms, updated_ms, next_attempt_ms,"
	" message_id, sha256, last_error, send_at_ms, sequence_id, step) VALUES"
	" ('nraw1', 1, 'delivered', 'ação@exemplo.com.br', NULL, NULL, NULL, NULL, '{}',"
	"  x'', 3, 1, 2, 3, '<m1@x>', 'ab', 'erro: ç', 0, NULL, 0),"
	" ('nraw2', 1, 'sending', 'b@x', 'acordo', 'r2', 's', '[]', '{\"a\":1}', randomblob(32),"
	"  1, 10, 11, 12, NULL, NULL, NULL, 5, 'seq1', 2);"
	"INSERT INTO attachments VALUES('nraw1', 0, 'a.pdf', 'application/pdf', x'00010203ff'),"
	" ('nraw1', 1, 'vazio.txt', 'text/plain', x'');"
	"INSERT INTO messages VALUES('nraw1', randomblob(600000), 'cafe', 77);"
	"INSERT INTO tokens VALUES('tok1', 'nraw1', 'open', 0, NULL), ('tok2', 'nraw1', 'click', 3,"
	" 'https://exemplo.com.br/?q=ç&x=1');"
	"INSERT INTO idempotency VALUES(2, 'k-raw', randomblob(32), 'nraw2', 5);"
	"WITH RECURSIVE c(i) AS (SELECT 1000 UNION ALL SELECT i + 1 FROM c WHERE i < 3999)"
	" INSERT INTO events(seq, notice_id, type, time_ms, entry)"
	" SELECT i, CASE i % 2 WHEN 0 THEN 'nraw1' ELSE 'nraw2' END, 'opened', 1000000 + i,"
	" randomblob(200 + i % 50) FROM c;"
	"INSERT INTO disclosures VALUES('nraw1', 'sha256:zz', x'61c3a7'), ('nraw1', 'sha256:aa',"
	" x''), ('nraw2', 'sha256:bb', x'00');"
	"INSERT INTO log_state VALUES(1, 3000, randomblob(32), 3999);"
	"INSERT INTO log_tiles VALUES(0, 0, randomblob(8192)), (0, 1, randomblob(8192)),"
	" (1, 0, randomblob(64)), (0, 11, randomblob(32 * 184));"
	"INSERT INTO log_ranges VALUES(0, 1000, 3000);"
	"INSERT INTO checkpoints VALUES(1, 'example.org/log\n1\nX=\n\n— s\n', 40, NULL, NULL),"
	" (2000, 'example.org/log\n2000\nAAA=\n\n— sig\n', 50, NULL,"
	" NULL), (3000, 'example.org/log\n3000\nBBB=\n\n— sig\n', 60, randomblob(900), 61);"
	"INSERT INTO webhooks VALUES('wh1', 1, 'https://h.example/a', ',opened,', randomblob(60),"
	" 0, 5, 0, NULL, NULL, 0), ('wh2', 1, 'https://h.example/b', '*', randomblob(60), 7, 6,"
	" 9, 'gone (410)', randomblob(60), 99);"
	"INSERT INTO webhook_outbox(webhook_id, seq, state, attempts, next_ms, last_status,"
	" last_error, created_ms, done_ms) VALUES('wh1', 1000, 'pending', 0, 1, 0, NULL, 1, 0),"
	" ('wh1', 1001, 'done', 1, 2, 200, NULL, 1, 3), ('wh2', 1001, 'dropped', 4, 2, 500,"
	" 'HTTP 500', 1, 3);"
	"DELETE FROM webhook_outbox WHERE id = 3;"
	"INSERT INTO webhook_cursor VALUES(1, 1001);"
	"INSERT INTO suppressions(apikey_id, address, address_key, enhanced, reason, notice_id,"
	" created_ms) VALUES(1, 'B@X', 'b@x', '5.1.1', 'bounced', 'nraw2', 8);"
	"INSERT INTO sequences VALUES('seq1', 1, 'active', NULL, '{\"steps\":[]}', 'k-seq',"
	" randomblob(32), 4, 0), ('seq2', 1, 'stopped', 'pago', '{}', NULL, NULL, 4, 9);"
	"INSERT INTO stats_cursor VALUES(1, 3999);"
	"INSERT INTO stats_dims VALUES(1, 'k1|lembrete||', 1, 'lembrete', NULL, NULL),"
	" (5, 'k1|acordo|s|[\"t\"]', 1, 'acordo', 's', '[\"t\"]');"
	"INSERT INTO stats_notices VALUES('nraw1', 1, 1, 20000, 7, 1, 2, 3, 4, 1, 0, 2, 0, 0, 1);"
	"INSERT INTO stats_rollup VALUES(1, 20000, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1, 0, 2,"
	" 0, 0, 1);"
	"INSERT INTO stats_delays VALUES(3, 1, 20000, 0, 0, randomblob(400));"
	"INSERT INTO hit_tally VALUES('nraw1', 1, 0, 2, 0, 0, 1, 1, 100, 200, 300, 1, 0, 0, 0, 0,"
	" 0, 1);"
	"INSERT INTO hit_fold_addrs VALUES('nraw1', x'7f000001'), ('nraw1', x'');";

/* A SQLite store with rows in every table. 0 or -1. */
static int cp_src_make(struct cp_src *src)
{
	snprintf(src->dir, sizeof src->dir, "/tmp/selo-pgcopy-XXXXXX");
	if (!mkdtemp(src->dir))
		return -1;
	snprintf(src->path, sizeof src->path, "%s/selo.db", src->dir);
	struct store *s = NULL;
	struct selo_err e;
	err_clear(&e);
	if (store_open(src->path, &s, &e) != 0) {
		fprintf(stderr, "  store_open: %s\n", e.msg);
		return -1;
	}
	uint8_t h[32];
	sha256("key-1", 5, h);
	int64_t key = 0;
	int rc = store_apikey_add(s, "one", h, "sk_1", &key, &e);
	for (int i = 0; rc == 0 && i < 3; i++) {
		char idem[24];
		snprintf(idem, sizeof idem, "idem-%d", i);
		rc = cp_accept(s, key, idem);
	}
	if (rc != 0)
		fprintf(stderr, "  fixture: %s\n", e.msg);
	store_close(s);
	return rc == 0 ? cp_sqlite_exec(src->path, CP_RAW) : -1;
}

static void cp_src_free(struct cp_src *src)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", src->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "  could not remove %s\n", src->dir);
}

/* ---- Reading both sides raw: each row as one line of canonical values
 * (N null, i<decimal> an integer, x<hex> text or bytes), sorted. */

static void cp_hex_value(struct buf *b, const void *p, size_t n)
{
	char *hex = xmalloc(2 * n + 1);
	hex_encode(p, n, hex);
	buf_printf(b, "x%s", hex);
	free(hex);
}

static int cp_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

struct cp_rows {
	char **row;
	size_t n;
};

static void cp_rows_free(struct cp_rows *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->row[i]);
	free(r->row);
	memset(r, 0, sizeof *r);
}

static void cp_rows_add(struct cp_rows *r, struct buf *line)
{
	r->row = xreallocarray(r->row, r->n + 1, sizeof *r->row);
	buf_putc(line, '\0');
	r->row[r->n++] = buf_steal(line, NULL);
}

/* The table's columns in SQLite, without the legacy events.log_index. */
static char *cp_sqlite_cols(sqlite3 *db, const char *table)
{
	char sql[128];
	snprintf(sql, sizeof sql, "SELECT name FROM pragma_table_info('%s') ORDER BY cid", table);
	sqlite3_stmt *st = NULL;
	sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	struct buf b = BUF_INIT;
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *c = (const char *)sqlite3_column_text(st, 0);
		if (!strcmp(table, "events") && !strcmp(c, "log_index"))
			continue;
		buf_printf(&b, "%s%s", b.len ? "," : "", c);
	}
	sqlite3_finalize(st);
	buf_putc(&b, '\0');
	return buf_steal(&b, NULL);
}

static void cp_sqlite_rows(sqlite3 *db, const char *table, const char *cols, struct cp_rows *out)
{
	char sql[1024];
	snprintf(sql, sizeof sql, "SELECT %s FROM %s", cols, table);
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fprintf(stderr, "  %s: %s\n", sql, sqlite3_errmsg(db));
	struct buf line = BUF_INIT;
	while (st && sqlite3_step(st) == SQLITE_ROW) {
		for (int i = 0; i < sqlite3_column_count(st); i++) {
			buf_puts(&line, i ? "|" : "");
			int t = sqlite3_column_type(st, i);
			if (t == SQLITE_NULL)
				buf_puts(&line, "N");
			else if (t == SQLITE_INTEGER)
				buf_printf(&line, "i%lld", (long long)sqlite3_column_int64(st, i));
			else
				cp_hex_value(&line, sqlite3_column_blob(st, i),
					     (size_t)sqlite3_column_bytes(st, i));
		}
		cp_rows_add(out, &line);
	}
	sqlite3_finalize(st);
	qsort(out->row, out->n, sizeof *out->row, cp_cmp);
}

/* Binary results: int8 as 8 bytes big-endian, text and bytea as bytes. */
static void cp_pg_rows(PGconn *c, const char *table, const char *cols, struct cp_rows *out)
{
	char sql[1024];
	snprintf(sql, sizeof sql, "SELECT %s FROM %s", cols, table);
	PGresult *r = PQexecParams(c, sql, 0, NULL, NULL, NULL, NULL, 1);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		fprintf(stderr, "  %s: %s", sql, PQerrorMessage(c));
	struct buf line = BUF_INIT;
	for (int row = 0; PQresultStatus(r) == PGRES_TUPLES_OK && row < PQntuples(r); row++) {
		for (int i = 0; i < PQnfields(r); i++) {
			buf_puts(&line, i ? "|" : "");
			const uint8_t *v = (const uint8_t *)PQgetvalue(r, row, i);
			if (PQgetisnull(r, row, i)) {
				buf_puts(&line, "N");
			} else if (PQftype(r, i) == 20) { /* int8 */
				uint64_t x = 0;
				for (int k = 0; k < 8; k++)
					x = x << 8 | v[k];
				buf_printf(&line, "i%lld", (long long)(int64_t)x);
			} else {
				cp_hex_value(&line, v, (size_t)PQgetlength(r, row, i));
			}
		}
		cp_rows_add(out, &line);
	}
	PQclear(r);
	qsort(out->row, out->n, sizeof *out->row, cp_cmp);
}

/* Every SQLite table but its bookkeeping equals its PostgreSQL copy, row
 * by row. Returns the number of tables that differ (-1: none compared). */
static int cp_compare_all(const char *sqlite_path, const char *url, int *ntables)
{
	sqlite3 *db = NULL;
	sqlite3_open_v2(sqlite_path, &db, SQLITE_OPEN_READONLY, NULL);
	PGconn *c = PQconnectdb(url);
	sqlite3_stmt *st = NULL;
	sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT IN"
			   " ('sqlite_sequence', 'schema_migrations') ORDER BY name", -1, &st, NULL);
	int differ = 0;
	*ntables = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(st, 0);
		char *cols = cp_sqlite_cols(db, t);
		struct cp_rows a = {0}, b = {0};
		cp_sqlite_rows(db, t, cols, &a);
		cp_pg_rows(c, t, cols, &b);
		int same = a.n == b.n;
		for (size_t i = 0; same && i < a.n; i++)
			same = !strcmp(a.row[i], b.row[i]);
		if (!same) {
			fprintf(stderr, "  table %s differs (%zu rows in SQLite, %zu in PostgreSQL)\n", t,
				a.n, b.n);
			differ++;
		}
		(*ntables)++;
		cp_rows_free(&a);
		cp_rows_free(&b);
		free(cols);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	PQfinish(c);
	return differ;
}

/* One integer from PostgreSQL (-999 on failure). */
static long long cp_pg_int(const char *url, const char *sql)
{
	PGconn *c = PQconnectdb(url);
	PGresult *r = PQexec(c, sql);
	long long v = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
			      !PQgetisnull(r, 0, 0)
			  ? strtoll(PQgetvalue(r, 0, 0), NULL, 10)
			  : -999;
	if (v == -999)
		fprintf(stderr, "  %s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
	return v;
}

/* The same order of two lists of ids (notices by rowid / row_id). */
static int cp_same_order(const char *sqlite_path, const char *sqlite_sql, const char *url,
			 const char *pg_sql)
{
	sqlite3 *db = NULL;
	sqlite3_open_v2(sqlite_path, &db, SQLITE_OPEN_READONLY, NULL);
	sqlite3_stmt *st = NULL;
	sqlite3_prepare_v2(db, sqlite_sql, -1, &st, NULL);
	PGconn *c = PQconnectdb(url);
	PGresult *r = PQexec(c, pg_sql);
	int row = 0, same = PQresultStatus(r) == PGRES_TUPLES_OK;
	while (same && sqlite3_step(st) == SQLITE_ROW) {
		same = row < PQntuples(r) &&
		       !strcmp((const char *)sqlite3_column_text(st, 0), PQgetvalue(r, row, 0));
		row++;
	}
	same = same && row == PQntuples(r);
	sqlite3_finalize(st);
	sqlite3_close(db);
	PQclear(r);
	PQfinish(c);
	return same;
}

/* Rows in every table of ours, in all. */
static long long cp_pg_total(const char *url)
{
	return cp_pg_int(url,
			 "SELECT (SELECT count(*) FROM apikeys) + (SELECT count(*) FROM notices) +"
			 " (SELECT count(*) FROM events) + (SELECT count(*) FROM log_tiles) +"
			 " (SELECT count(*) FROM checkpoints) + (SELECT count(*) FROM webhooks) +"
			 " (SELECT count(*) FROM webhook_outbox) + (SELECT count(*) FROM stats_rollup) +"
			 " (SELECT count(*) FROM attachments) + (SELECT count(*) FROM messages) +"
			 " (SELECT count(*) FROM hit_fold_addrs) + (SELECT seq FROM event_clock)");
}

static int cp_copy(const char *sqlite_path, const char *url, struct pgcopy_report *rep,
		   struct selo_err *e)
{
	struct store_params to = {.backend = "postgres", .target = url, .node = "t-copy"};
	err_clear(e);
	return store_pg_copy(sqlite_path, &to, rep, e);
}

/* ---- Tests */

TEST(copy_every_table_row_by_row)
{
	T_PG_NEED();
	struct cp_src src;
	CHECK(cp_src_make(&src) == 0);
	char url[640];
	CHECK(t_pg_new_db(url, sizeof url) == 0);
	struct pgcopy_report rep;
	struct selo_err e;
	int rc = cp_copy(src.path, url, &rep, &e);
	if (rc != 0)
		fprintf(stderr, "  copy: %s\n", e.msg);
	CHECK(rc == 0);
	int ntables = 0;
	CHECK(cp_compare_all(src.path, url, &ntables) == 0);
	CHECK(ntables == 24);
	/* The comparison can fail: one byte of one entry changed. */
	CHECK(t_pg_sql(strstr(url, "dbname=") + 7,
		       "UPDATE events SET entry = set_byte(entry, 0, get_byte(entry, 0) # 1)"
		       " WHERE seq = 1500") == 0);
	CHECK(cp_compare_all(src.path, url, &ntables) == 1);
	CHECK(t_pg_sql(strstr(url, "dbname=") + 7,
		       "UPDATE events SET entry = set_byte(entry, 0, get_byte(entry, 0) # 1)"
		       " WHERE seq = 1500") == 0);
	/* The report: rows per table, the log, the latest checkpoint. */
	CHECK(rep.ntables == 24);
	CHECK(rep.events == 3000 + cp_pg_int(url, "SELECT count(*) FROM events WHERE seq < 1000"));
	CHECK(rep.log_size == 3000 && rep.last_seq == 3999);
	CHECK(rep.checkpoint_size == 3000);
	CHECK_STR(rep.checkpoint, "example.org/log\n3000\nBBB=\n\n— sig\n");
	CHECK(rep.target && !strstr(rep.target, T_PG_PASSWORD));
	/* The event clock at the last event; claims empty. */
	CHECK(cp_pg_int(url, "SELECT seq FROM event_clock") == 3999);
	CHECK(cp_pg_int(url, "SELECT time_ms FROM event_clock") ==
	      cp_pg_int(url, "SELECT max(time_ms) FROM events"));
	CHECK(cp_pg_int(url, "SELECT count(*) FROM notices WHERE claimed_by IS NOT NULL"
			     " OR lease_until <> 0") == 0);
	/* Sequences past the copied ids, and past SQLite's AUTOINCREMENT mark
	 * (outbox row 3 was deleted: its id is never given again). */
	CHECK(cp_pg_int(url, "SELECT nextval('webhook_outbox_id_seq')") == 4);
	CHECK(cp_pg_int(url, "SELECT nextval('apikeys_id_seq')") == 3);
	CHECK(cp_pg_int(url, "SELECT nextval('stats_dims_id_seq')") == 6);
	CHECK(cp_pg_int(url, "SELECT nextval('events_seq_seq')") == 4000);
	/* row_id and disclosures.id in SQLite's rowid order. */
	CHECK(cp_same_order(src.path, "SELECT id FROM notices ORDER BY rowid", url,
			    "SELECT id FROM notices ORDER BY row_id"));
	CHECK(cp_same_order(src.path, "SELECT commitment FROM disclosures ORDER BY rowid", url,
			    "SELECT commitment FROM disclosures ORDER BY id"));
	pgcopy_report_free(&rep);
	cp_src_free(&src);
}

TEST(copy_into_a_store_that_holds_data_is_refused)
{
	T_PG_NEED();
	struct cp_src src;
	CHECK(cp_src_make(&src) == 0);
	char url[640];
	CHECK(t_pg_new_db(url, sizeof url) == 0);
	struct pgcopy_report rep;
	struct selo_err e;
	CHECK(cp_copy(src.path, url, &rep, &e) == 0);
	pgcopy_report_free(&rep);
	long long before = cp_pg_total(url);
	CHECK(cp_copy(src.path, url, &rep, &e) == -1);
	CHECK(e.status == 409 && !strcmp(e.type, "target-not-empty"));
	CHECK(strstr(e.msg, "notices") && strstr(e.msg, "events") && strstr(e.msg, "event_clock"));
	CHECK(cp_pg_total(url) == before);
	int ntables;
	CHECK(cp_compare_all(src.path, url, &ntables) == 0);
	cp_src_free(&src);
}

/* A row PostgreSQL refuses in the middle (an event of a notice that does
 * not exist: the foreign key; notices and more went over before it). */
TEST(copy_failing_half_way_leaves_the_target_empty)
{
	T_PG_NEED();
	struct cp_src src;
	CHECK(cp_src_make(&src) == 0);
	CHECK(cp_sqlite_exec(src.path, "INSERT INTO events VALUES(5000, 'ghost', 'opened', 1,"
				       " x'00', NULL)") == 0);
	char url[640];
	CHECK(t_pg_new_db(url, sizeof url) == 0);
	struct pgcopy_report rep;
	struct selo_err e;
	CHECK(cp_copy(src.path, url, &rep, &e) == -1);
	fprintf(stderr, "  (as expected: %s)\n", e.msg);
	CHECK(e.status == 500 && strstr(e.msg, "events"));
	CHECK(!strstr(e.msg, "ghost"));
	CHECK(cp_pg_total(url) == 0);
	CHECK(cp_pg_int(url, "SELECT count(*) FROM notices") == 0);
	/* Once the bad row is gone, the same target takes the copy. */
	CHECK(cp_sqlite_exec(src.path, "DELETE FROM events WHERE seq = 5000") == 0);
	CHECK(cp_copy(src.path, url, &rep, &e) == 0);
	pgcopy_report_free(&rep);
	cp_src_free(&src);
}

/* A value PostgreSQL cannot keep as SQLite holds it: text in an integer
 * column (SQLite's typing allows it), refused naming the column. */
TEST(copy_refuses_a_value_of_the_wrong_type)
{
	T_PG_NEED();
	struct cp_src src;
	CHECK(cp_src_make(&src) == 0);
	CHECK(cp_sqlite_exec(src.path, "UPDATE webhooks SET created_ms = 'soon' WHERE id = 'wh2'") == 0);
	char url[640];
	CHECK(t_pg_new_db(url, sizeof url) == 0);
	struct pgcopy_report rep;
	struct selo_err e;
	CHECK(cp_copy(src.path, url, &rep, &e) == -1);
	CHECK(e.status == 422 && strstr(e.msg, "webhooks.created_ms"));
	CHECK(cp_pg_total(url) == 0);
	cp_src_free(&src);
}

TEST(copy_refuses_another_sqlite_schema)
{
	T_PG_NEED();
	/* This binary's SQLite schema is the one the copy reads. */
	struct cp_src src;
	CHECK(cp_src_make(&src) == 0);
	struct store *s = NULL;
	struct selo_err e;
	CHECK(store_open(src.path, &s, &e) == 0);
	CHECK(store_schema_version(s) == PGCOPY_SQLITE_SCHEMA);
	store_close(s);
	CHECK(cp_sqlite_exec(src.path, "DELETE FROM schema_migrations WHERE version = 12") == 0);
	char url[640];
	CHECK(t_pg_new_db(url, sizeof url) == 0);
	struct pgcopy_report rep;
	CHECK(cp_copy(src.path, url, &rep, &e) == -1);
	CHECK(e.status == 409 && !strcmp(e.type, "schema-mismatch") && strstr(e.msg, "older"));
	CHECK(cp_sqlite_exec(src.path, "INSERT INTO schema_migrations VALUES(12, 'x', 0),"
				       " (13, 'future', 0)") == 0);
	CHECK(cp_copy(src.path, url, &rep, &e) == -1);
	CHECK(e.status == 409 && strstr(e.msg, "newer"));
	CHECK(cp_copy("/nonexistent/selo.db", url, &rep, &e) == -1 && e.status == 404);
	/* Refused before the target is even opened: not a table made. */
	CHECK(cp_pg_int(url, "SELECT count(*) FROM information_schema.tables"
			     " WHERE table_schema = 'public'") == 0);
	cp_src_free(&src);
}

/* A target that does not answer: 503, and the password never shows. */
TEST(copy_to_a_database_that_is_down)
{
	T_PG_NEED();
	struct cp_src src;
	CHECK(cp_src_make(&src) == 0);
	char url[700];
	snprintf(url, sizeof url, "host=/nonexistent-dir port=1 dbname=x user=u password=%s",
		 T_PG_PASSWORD);
	struct pgcopy_report rep;
	struct selo_err e;
	CHECK(cp_copy(src.path, url, &rep, &e) == -1);
	fprintf(stderr, "  (as expected: %s)\n", e.msg);
	CHECK(e.status == 503);
	CHECK(!strstr(e.msg, T_PG_PASSWORD));
	cp_src_free(&src);
}

/* Every PostgreSQL table is a copied one or known to have no SQLite
 * counterpart: a table added to the PostgreSQL schema must be thought
 * about here (and in store_pg_copy.c). */
TEST(every_postgres_table_is_accounted_for)
{
	T_PG_NEED();
	struct cp_src src;
	CHECK(cp_src_make(&src) == 0);
	char url[640];
	CHECK(t_pg_new_db(url, sizeof url) == 0);
	struct pgcopy_report rep;
	struct selo_err e;
	CHECK(cp_copy(src.path, url, &rep, &e) == 0);
	pgcopy_report_free(&rep);
	CHECK(cp_pg_int(url, "SELECT count(*) FROM information_schema.tables WHERE table_schema ="
			     " 'public' AND table_name NOT IN ('schema_migrations', 'nodes',"
			     " 'store_meta', 'event_clock')") == 24);
	cp_src_free(&src);
}

/* A store whose log never grew (no log_state row in SQLite): the target
 * keeps the empty tree its schema starts with, and the copy succeeds. */
TEST(copy_of_a_store_without_a_log)
{
	T_PG_NEED();
	char dir[64] = "/tmp/selo-pgcopy-XXXXXX", path[128];
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof path, "%s/selo.db", dir);
	struct store *s = NULL;
	struct selo_err e;
	err_clear(&e);
	CHECK(store_open(path, &s, &e) == 0);
	uint8_t h[32];
	sha256("key-0", 5, h);
	int64_t key = 0;
	CHECK(store_apikey_add(s, "zero", h, "sk_0", &key, &e) == 0);
	store_close(s);
	char url[640];
	CHECK(t_pg_new_db(url, sizeof url) == 0);
	struct pgcopy_report rep;
	int rc = cp_copy(path, url, &rep, &e);
	if (rc != 0)
		fprintf(stderr, "  copy: %s\n", e.msg);
	CHECK(rc == 0);
	CHECK(rep.log_size == 0 && rep.events == 0 && !rep.checkpoint);
	CHECK(cp_pg_int(url, "SELECT count(*) FROM log_state WHERE size = 0 AND last_seq = 0"
			     " AND root = sha256(''::bytea)") == 1);
	CHECK(cp_pg_int(url, "SELECT count(*) FROM apikeys") == 1);
	pgcopy_report_free(&rep);
	/* A second copy is refused: the key is there. */
	CHECK(cp_copy(path, url, &rep, &e) == -1 && e.status == 409 && strstr(e.msg, "apikeys"));
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
}

/* The check before COMMIT catches what PostgreSQL stored differently from
 * what was sent: a trigger in the target changes one entry, one tile, the
 * latest checkpoint's note or the log's root, or drops a row. Each is 500
 * copy-mismatch naming what, and nothing is committed. */
static void cp_mismatch(const struct cp_src *src, const char *table, const char *body,
			const char *what)
{
	char url[640];
	CHECK(t_pg_new_db(url, sizeof url) == 0);
	struct store *s = NULL;
	struct selo_err e;
	err_clear(&e);
	struct store_params p = {.backend = "postgres", .target = url, .node = "t-schema"};
	CHECK(store_open_backend(&p, &s, &e) == 0); /* the schema, for the trigger */
	store_close(s);
	char sql[1024];
	snprintf(sql, sizeof sql,
		 "CREATE FUNCTION tamper() RETURNS trigger AS $$ BEGIN %s RETURN NEW; END $$"
		 " LANGUAGE plpgsql; CREATE TRIGGER tamper BEFORE INSERT ON %s"
		 " FOR EACH ROW EXECUTE FUNCTION tamper()", body, table);
	CHECK(t_pg_sql(strstr(url, "dbname=") + 7, sql) == 0);
	struct pgcopy_report rep;
	CHECK(cp_copy(src->path, url, &rep, &e) == -1);
	CHECK(e.status == 500 && !strcmp(e.type, "copy-mismatch"));
	if (!strstr(e.msg, what))
		fprintf(stderr, "  wanted \"%s\" in: %s\n", what, e.msg);
	CHECK(strstr(e.msg, what) != NULL);
	CHECK(cp_pg_total(url) == 0);
}

TEST(copy_check_catches_what_the_target_changed)
{
	T_PG_NEED();
	struct cp_src src;
	CHECK(cp_src_make(&src) == 0);
	cp_mismatch(&src, "events",
		    "IF NEW.seq = 1500 THEN NEW.entry := NEW.entry || '\\x00'::bytea; END IF;",
		    "an event entry");
	cp_mismatch(&src, "log_tiles",
		    "IF NEW.level = 1 THEN NEW.data := NEW.data || '\\x01'::bytea; END IF;",
		    "a tile of the log");
	cp_mismatch(&src, "checkpoints",
		    "IF NEW.size = 3000 THEN NEW.note := NEW.note || ' '; END IF;",
		    "the latest checkpoint");
	cp_mismatch(&src, "log_state", "NEW.root := sha256(NEW.root);", "the log's state");
	cp_mismatch(&src, "tokens", "IF NEW.token = 'tok2' THEN RETURN NULL; END IF;",
		    "the number of rows of tokens");
	cp_src_free(&src);
}
