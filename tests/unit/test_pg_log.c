/* test_pg_log.c: the log's storage, checkpoints and tracker hits of
 * store.h on PostgreSQL (store_pg_log.c, against a private PostgreSQL 15:
 * t_pg.h) and, for the fence that both backends have, on SQLite too: every
 * test runs once per backend. Notices and events are written with raw SQL
 * beside the store, so that these tests need no other op.
 * The fence: two appends grown from the same tree, one after the other and
 * at once: one wins, the other gets 409 log-moved and changes nothing. */
#include <libpq-fe.h>
#include <pthread.h>
#include <sqlite3.h>
#include "t.h"
#include "t_pg.h"
#include "t_store.h"
#include "selo/buf.h"
#include "selo/err.h"
#include "selo/store.h"

/* t_pg.h's restart is not needed here. */
static void (*const t_unused_restart)(void) __attribute__((unused)) = t_pg_restart;

static const uint8_t EMPTY_ROOT[32] = {
	0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
	0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};

/* A store of either backend, with raw SQL beside it. */
struct fx {
	int pg;
	char url[640];
	struct store_fx sq;
	struct store *s;
};

static int fx_open(struct fx *f, int pg)
{
	memset(f, 0, sizeof(*f));
	f->pg = pg;
	struct selo_err e;
	err_clear(&e);
	if (!pg) {
		if (store_fx_open(&f->sq, "pglog") != 0)
			return -1;
		f->s = f->sq.s;
		return 0;
	}
	if (t_pg_new_db(f->url, sizeof f->url) != 0)
		return -1;
	struct store_params p = {.backend = "postgres", .target = f->url, .node = "t-log",
				 .timeout_ms = 10000, .pool_size = 4};
	if (store_open_backend(&p, &f->s, &e) != 0) {
		fprintf(stderr, "  store_open_backend: %s\n", e.msg);
		return -1;
	}
	return 0;
}

static void fx_close(struct fx *f)
{
	if (!f->pg) {
		store_fx_close(&f->sq);
		return;
	}
	store_close(f->s);
}

/* Runs sql (several statements) on the fixture's database: 0 or -1. */
static int fx_sql(struct fx *f, const char *sql)
{
	if (f->pg) {
		PGconn *c = PQconnectdb(f->url);
		PGresult *r = PQexec(c, sql);
		ExecStatusType st = PQresultStatus(r);
		int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
		if (!ok)
			fprintf(stderr, "  %s: %s", sql, PQerrorMessage(c));
		PQclear(r);
		PQfinish(c);
		return ok ? 0 : -1;
	}
	sqlite3 *db = NULL;
	char *msg = NULL;
	int rc = sqlite3_open(f->sq.path, &db);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(db, 5000);
		rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	}
	if (rc != SQLITE_OK)
		fprintf(stderr, "  %s: %s\n", sql, msg ? msg : sqlite3_errmsg(db));
	sqlite3_free(msg);
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -1;
}

/* The integer the query gives (-1 on error). */
static long long fx_int(struct fx *f, const char *sql)
{
	long long v = -1;
	if (f->pg) {
		PGconn *c = PQconnectdb(f->url);
		PGresult *r = PQexec(c, sql);
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
			v = atoll(PQgetvalue(r, 0, 0));
		PQclear(r);
		PQfinish(c);
		return v;
	}
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	if (sqlite3_open(f->sq.path, &db) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* Notice id with events seq 1..n (one per event, type "accepted"); the
 * event clock follows on PostgreSQL. */
static int fx_events(struct fx *f, const char *id, int first, int n)
{
	char sql[4096];
	int o = snprintf(sql, sizeof sql,
			 "INSERT INTO notices(id, apikey_id, status, to_addr, payload_json, salt,"
			 " created_ms, updated_ms, next_attempt_ms) VALUES('%s', 1, 'queued', 'x',"
			 " '{}', 'salt', 0, 0, 0);", id);
	for (int i = first; i < first + n; i++)
		o += snprintf(sql + o, sizeof sql - (size_t)o,
			      "INSERT INTO events(seq, notice_id, type, time_ms, entry) VALUES(%d, '%s',"
			      " 'accepted', %d, '{\"v\":1,\"type\":\"accepted\",\"notice\":\"%s\","
			      "\"time\":%d}');", i, id, i, id, i);
	if (f->pg)
		snprintf(sql + o, sizeof sql - (size_t)o,
			 "UPDATE event_clock SET seq = (SELECT max(seq) FROM events);");
	return fx_sql(f, sql);
}

#define FOR_EACH_BACKEND(f)                                                   \
	for (int t_be = 0; t_be < 2; t_be++)                                     \
		for (struct fx f, *t_once = &f; t_once; t_once = NULL)              \
			if (t_be == 1 && !t_pg_url()) {                                  \
				if (t_pg_absent)                                             \
					fprintf(stderr, "  postgres: skipped (not installed)\n"); \
				else                                                         \
					CHECK(!"the private PostgreSQL could not be started");   \
			} else if (fx_open(&f, t_be) != 0) {                             \
				CHECK(!"the store opens");                                   \
			} else

static int append(struct store *s, uint64_t first, const uint8_t old_root[32], const int64_t *seqs,
		  size_t n, const struct log_tile_write *tiles, size_t ntiles, uint8_t fill,
		  struct selo_err *e)
{
	struct log_append a = {.first_index = first, .seqs = seqs, .n = n, .tiles = tiles,
			       .ntiles = ntiles};
	memset(a.root, fill, 32);
	if (old_root)
		memcpy(a.old_root, old_root, 32);
	err_clear(e);
	return store_log_append(s, &a, e);
}

static int entries_are(struct store *s, uint64_t from, size_t max, const int64_t *want, size_t n)
{
	struct selo_err e;
	struct event_rec *ev = NULL;
	size_t got = 0;
	int ok = store_log_entries(s, from, max, &ev, &got, &e) == 0 && got == n;
	for (size_t i = 0; ok && i < got; i++)
		ok = ev[i].seq == want[i] && ev[i].log_index == (int64_t)(from + i) &&
		     ev[i].len == strlen(ev[i].entry) && strstr(ev[i].entry, "\"accepted\"") &&
		     !strcmp(ev[i].type, "accepted") && ev[i].time_ms == want[i];
	event_recs_free(ev, got);
	return ok;
}

TEST(log_state_append_tiles_entries)
{
	FOR_EACH_BACKEND(f)
	{
		struct selo_err e;
		struct log_state st;
		CHECK(store_log_state(f.s, &st, &e) == 0 && st.size == 0 && st.last_seq == 0 &&
		      !memcmp(st.root, EMPTY_ROOT, 32));
		CHECK(fx_events(&f, "n1", 1, 6) == 0);
		uint8_t tile[3 * 32];
		memset(tile, 0xab, sizeof tile);
		struct log_tile_write tw = {0, 0, tile, sizeof tile};
		const int64_t run[] = {1, 2, 3}, gap[] = {4, 6};
		CHECK(append(f.s, 0, EMPTY_ROOT, run, 3, &tw, 1, 0x11, &e) == 0);
		CHECK(store_log_state(f.s, &st, &e) == 0 && st.size == 3 && st.last_seq == 3 &&
		      st.root[0] == 0x11 && st.root[31] == 0x11);
		struct buf b = BUF_INIT;
		CHECK(store_log_tile(f.s, 0, 0, &b, &e) == 1 && b.len == sizeof tile &&
		      !memcmp(b.data, tile, sizeof tile));
		buf_reset(&b);
		CHECK(store_log_tile(f.s, 1, 0, &b, &e) == 0 && b.len == 0);
		buf_free(&b);
		int64_t un = -1;
		CHECK(store_log_unindexed(f.s, 3, &un, &e) == 0 && un == 0);
		CHECK(store_log_unindexed(f.s, 6, &un, &e) == 0 && un == 3);
		/* a hole: two runs, and the skipped event stays outside */
		uint8_t r1[32];
		memset(r1, 0x11, 32);
		CHECK(append(f.s, 3, r1, gap, 2, NULL, 0, 0x22, &e) == 0);
		CHECK(store_log_unindexed(f.s, 6, &un, &e) == 0 && un == 1);
		CHECK(fx_int(&f, "SELECT count(*) FROM log_ranges") == 3);
		const int64_t all[] = {1, 2, 3, 4, 6};
		CHECK(entries_are(f.s, 0, 10, all, 5));
		CHECK(entries_are(f.s, 2, 2, all + 2, 2));
		CHECK(entries_are(f.s, 4, 10, all + 4, 1));
		CHECK(entries_are(f.s, 5, 10, NULL, 0));
		/* refused, nothing written: an event already in the log, a missing
		 * one, the wrong size */
		uint8_t r2[32];
		memset(r2, 0x22, 32);
		const int64_t again[] = {5}, missing[] = {7}, next[] = {8};
		CHECK(append(f.s, 5, r2, again, 1, NULL, 0, 0x33, &e) == -1 && e.status == 409);
		CHECK(append(f.s, 5, r2, missing, 1, NULL, 0, 0x33, &e) == -1 && e.status == 409);
		CHECK(append(f.s, 4, r2, next, 1, NULL, 0, 0x33, &e) == -1 && e.status == 409 &&
		      !strcmp(e.type, "log-moved"));
		CHECK(store_log_state(f.s, &st, &e) == 0 && st.size == 5 && st.last_seq == 6 &&
		      st.root[0] == 0x22);
		CHECK(fx_int(&f, "SELECT count(*) FROM log_ranges") == 3);
		fx_close(&f);
	}
}

TEST(log_fence_one_after_the_other)
{
	FOR_EACH_BACKEND(f)
	{
		struct selo_err e;
		CHECK(fx_events(&f, "n1", 1, 4) == 0);
		const int64_t base[] = {1, 2}, more[] = {3, 4};
		CHECK(append(f.s, 0, EMPTY_ROOT, base, 2, NULL, 0, 0x10, &e) == 0);
		uint8_t old[32];
		memset(old, 0x10, 32);
		/* two integrators grew the 2-entry tree: the first publishes */
		uint8_t ta[64], tb[64];
		memset(ta, 0xaa, sizeof ta);
		memset(tb, 0xbb, sizeof tb);
		struct log_tile_write wa = {0, 0, ta, sizeof ta}, wb = {3, 7, tb, sizeof tb};
		CHECK(append(f.s, 2, old, more, 2, &wa, 1, 0xa1, &e) == 0);
		/* the second, from the same old state, is fenced out */
		CHECK(append(f.s, 2, old, more, 2, &wb, 1, 0xb1, &e) == -1);
		CHECK(e.status == 409 && !strcmp(e.type, "log-moved"));
		struct log_state st;
		CHECK(store_log_state(f.s, &st, &e) == 0 && st.size == 4 && st.last_seq == 4 &&
		      st.root[0] == 0xa1);
		struct buf b = BUF_INIT;
		CHECK(store_log_tile(f.s, 3, 7, &b, &e) == 0); /* nothing of it written */
		buf_free(&b);
		CHECK(fx_int(&f, "SELECT count(*) FROM log_ranges") == 2);
		/* the same size over another root is fenced out too */
		uint8_t other[32];
		memset(other, 0x77, 32);
		CHECK(fx_events(&f, "n2", 5, 1) == 0);
		const int64_t five[] = {5};
		CHECK(append(f.s, 4, other, five, 1, NULL, 0, 0xc1, &e) == -1 &&
		      !strcmp(e.type, "log-moved"));
		uint8_t cur[32];
		memset(cur, 0xa1, 32);
		CHECK(append(f.s, 4, cur, five, 1, NULL, 0, 0xc1, &e) == 0);
		fx_close(&f);
	}
}

struct racer {
	struct store *s;
	pthread_barrier_t *go;
	uint8_t fill;
	int rc;
	struct selo_err e;
};

static void *race_append(void *arg)
{
	struct racer *r = arg;
	static const int64_t seqs[] = {2, 3};
	uint8_t old[32];
	memset(old, 0x10, 32);
	uint8_t tile[64];
	memset(tile, r->fill, sizeof tile);
	struct log_tile_write w = {2, r->fill, tile, sizeof tile};
	pthread_barrier_wait(r->go);
	r->rc = append(r->s, 1, old, seqs, 2, &w, 1, r->fill, &r->e);
	return NULL;
}

TEST(log_fence_at_once)
{
	FOR_EACH_BACKEND(f)
	{
		struct selo_err e;
		CHECK(fx_events(&f, "n1", 1, 3) == 0);
		const int64_t one[] = {1};
		CHECK(append(f.s, 0, EMPTY_ROOT, one, 1, NULL, 0, 0x10, &e) == 0);
		for (int round = 0; round < 1; round++) {
			pthread_barrier_t go;
			pthread_barrier_init(&go, NULL, 2);
			struct racer r[2] = {{f.s, &go, 0x41, 0, {0}}, {f.s, &go, 0x42, 0, {0}}};
			pthread_t th[2];
			for (int i = 0; i < 2; i++)
				pthread_create(&th[i], NULL, race_append, &r[i]);
			for (int i = 0; i < 2; i++)
				pthread_join(th[i], NULL);
			pthread_barrier_destroy(&go);
			CHECK((r[0].rc == 0) + (r[1].rc == 0) == 1);
			struct racer *lost = r[0].rc == 0 ? &r[1] : &r[0];
			struct racer *won = r[0].rc == 0 ? &r[0] : &r[1];
			CHECK(lost->rc == -1 && lost->e.status == 409 && !strcmp(lost->e.type, "log-moved"));
			struct log_state st;
			CHECK(store_log_state(f.s, &st, &e) == 0 && st.size == 3 && st.last_seq == 3 &&
			      st.root[0] == won->fill);
			struct buf b = BUF_INIT;
			CHECK(store_log_tile(f.s, 2, lost->fill, &b, &e) == 0);
			CHECK(store_log_tile(f.s, 2, won->fill, &b, &e) == 1);
			buf_free(&b);
		}
		fx_close(&f);
	}
}

TEST(log_full_tiles_never_change)
{
	FOR_EACH_BACKEND(f)
	{
		struct selo_err e;
		CHECK(fx_events(&f, "n1", 1, 3) == 0);
		static uint8_t full[8192], other[8192];
		memset(full, 0x5a, sizeof full);
		memset(other, 0x5b, sizeof other);
		uint8_t part[32] = {1};
		struct log_tile_write w[2] = {{0, 0, part, sizeof part}, {1, 4, full, sizeof full}};
		const int64_t s1[] = {1}, s2[] = {2}, s3[] = {3};
		CHECK(append(f.s, 0, EMPTY_ROOT, s1, 1, w, 2, 0x01, &e) == 0);
		/* a partial tile grows; the same full tile again is fine */
		uint8_t part2[64] = {1, 2};
		w[0] = (struct log_tile_write){0, 0, part2, sizeof part2};
		uint8_t r[32];
		memset(r, 0x01, 32);
		CHECK(append(f.s, 1, r, s2, 1, w, 2, 0x02, &e) == 0);
		/* other bytes over a full tile: refused, nothing written */
		w[1] = (struct log_tile_write){1, 4, other, sizeof other};
		memset(r, 0x02, 32);
		CHECK(append(f.s, 2, r, s3, 1, w + 1, 1, 0x03, &e) == -1 && e.status == 409 &&
		      !strcmp(e.type, "log-tile-immutable"));
		struct buf b = BUF_INIT;
		CHECK(store_log_tile(f.s, 1, 4, &b, &e) == 1 && b.len == sizeof full &&
		      !memcmp(b.data, full, sizeof full));
		buf_reset(&b);
		CHECK(store_log_tile(f.s, 0, 0, &b, &e) == 1 && b.len == sizeof part2);
		buf_free(&b);
		struct log_state st;
		CHECK(store_log_state(f.s, &st, &e) == 0 && st.size == 2);
		fx_close(&f);
	}
}

TEST(checkpoints_over_the_stored_tree)
{
	FOR_EACH_BACKEND(f)
	{
		struct selo_err e;
		err_clear(&e);
		CHECK(fx_events(&f, "n1", 1, 3) == 0);
		/* none for a tree that is not stored */
		CHECK(store_checkpoint_add(f.s, 2, "cp2\n", 100, &e) == -1 && e.status == 409 &&
		      !strcmp(e.type, "log-moved"));
		const int64_t s12[] = {1, 2}, s3[] = {3};
		CHECK(append(f.s, 0, EMPTY_ROOT, s12, 2, NULL, 0, 0x02, &e) == 0);
		CHECK(store_checkpoint_add(f.s, 2, "cp2\n", 100, &e) == 0);
		err_clear(&e);
		CHECK(store_checkpoint_add(f.s, 2, "cp2\n", 101, &e) == -1 && e.status == 409 &&
		      !strcmp(e.type, "conflict"));
		uint8_t r[32];
		memset(r, 0x02, 32);
		CHECK(append(f.s, 2, r, s3, 1, NULL, 0, 0x03, &e) == 0);
		CHECK(store_checkpoint_add(f.s, 2, "late\n", 102, &e) == -1 &&
		      !strcmp(e.type, "log-moved"));
		CHECK(store_checkpoint_add(f.s, 3, "cp3\n", 103, &e) == 0);
		struct checkpoint_rec *cps = NULL;
		size_t n = 0;
		CHECK(store_checkpoints_untimestamped(f.s, 10, &cps, &n, &e) == 0 && n == 2 &&
		      cps[0].size == 3 && cps[1].size == 2 && !cps[0].tst);
		checkpoint_recs_free(cps, n);
		const uint8_t tst[] = {0x30, 0x00, 0x82, 0xff};
		CHECK(store_checkpoint_timestamp(f.s, 2, tst, sizeof tst, 555, &e) == 0);
		struct checkpoint_rec one;
		CHECK(store_checkpoint_find(f.s, 1, 1, &one, &e) == 1 && one.size == 2 &&
		      one.tst_len == sizeof tst && !memcmp(one.tst, tst, sizeof tst) &&
		      one.tst_time_ms == 555 && !strcmp(one.note, "cp2\n") && one.created_ms == 100);
		free(one.note);
		free(one.tst);
		CHECK(store_checkpoint_find(f.s, 1, 0, &one, &e) == 1 && one.size == 3 && !one.tst);
		free(one.note);
		CHECK(store_checkpoint_find(f.s, 4, 0, &one, &e) == 0);
		CHECK(store_checkpoint_find(f.s, 3, 1, &one, &e) == 0);
		CHECK(store_checkpoints_untimestamped(f.s, 10, &cps, &n, &e) == 0 && n == 1 &&
		      cps[0].size == 3);
		checkpoint_recs_free(cps, n);
		CHECK(store_checkpoints_all(f.s, &cps, &n, &e) == 0 && n == 2 && cps[0].size == 2 &&
		      cps[1].size == 3 && !strcmp(cps[1].note, "cp3\n"));
		checkpoint_recs_free(cps, n);
		fx_close(&f);
	}
}

/* ---- Tracker hits and their folds */

static json_t *summary_fields(const struct hit_fold *f, void *arg)
{
	(void)arg;
	return json_pack("{s:I, s:I, s:I, s:I, s:I}", "opened_human",
			 (json_int_t)f->hits[HIT_KIND_OPENED][HIT_CLASS_HUMAN], "clicked_scanner",
			 (json_int_t)f->hits[HIT_KIND_CLICKED][HIT_CLASS_SCANNER], "addresses",
			 (json_int_t)f->addresses, "before", (json_int_t)f->summaries, "first",
			 (json_int_t)f->first_ms);
}

static struct hit_new hit(const char *id, int kind, int cls, uint8_t addr, int64_t at,
			  json_t *fields)
{
	struct hit_new h;
	memset(&h, 0, sizeof h);
	h.ev.notice_id = id;
	h.ev.type = kind == HIT_KIND_OPENED ? "opened" : "clicked";
	h.ev.fields = fields;
	h.kind = kind;
	h.cls = cls;
	memset(h.addr, addr, sizeof h.addr);
	h.arrived_ms = at;
	return h;
}

static long long count_of(struct fx *f, const char *id, const char *type)
{
	char sql[256];
	snprintf(sql, sizeof sql, "SELECT count(*) FROM events WHERE notice_id = '%s' AND type = '%s'",
		 id, type);
	return fx_int(f, sql);
}

TEST(hits_logged_then_folded_then_summarised)
{
	FOR_EACH_BACKEND(f)
	{
		struct selo_err e;
		err_clear(&e);
		CHECK(fx_events(&f, "n1", 1, 1) == 0);
		CHECK(fx_events(&f, "n2", 2, 1) == 0);
		json_t *human = json_pack("{s:s}", "class", "human");
		struct fold_rule rule = {.full_max = 2, .window_ms = 1000, .window_max_ms = 8000};
		/* an unknown notice refuses the whole call */
		struct hit_new bad[2] = {hit("n1", HIT_KIND_OPENED, HIT_CLASS_HUMAN, 1, 10, human),
					 hit("nope", HIT_KIND_OPENED, HIT_CLASS_HUMAN, 1, 10, human)};
		size_t folded = 99;
		CHECK(store_hits_add(f.s, bad, 2, &rule, &folded, &e) == -1 && e.status == 404 &&
		      folded == 0);
		CHECK(count_of(&f, "n1", "opened") == 0);
		/* n1: 2 logged, 3 folded from 2 addresses; n2 (interleaved, its hit
		 * as the tracker sends it: the members' text): logged */
		struct hit_new h[6] = {
			hit("n1", HIT_KIND_OPENED, HIT_CLASS_HUMAN, 1, 100, human),
			hit("n1", HIT_KIND_OPENED, HIT_CLASS_HUMAN, 1, 110, human),
			hit("n1", HIT_KIND_OPENED, HIT_CLASS_HUMAN, 2, 120, human),
			hit("n2", HIT_KIND_CLICKED, HIT_CLASS_SCANNER, 3, 125, NULL),
			hit("n1", HIT_KIND_OPENED, HIT_CLASS_HUMAN, 2, 130, human),
			hit("n1", HIT_KIND_OPENED, HIT_CLASS_HUMAN, 3, 105, human)};
		static const char txt[] = "\"class\":\"scanner\",\"link\":2";
		h[3].ev.fields_text = txt;
		h[3].ev.fields_len = strlen(txt);
		CHECK(store_hits_add(f.s, h, 6, &rule, &folded, &e) == 0 && folded == 3);
		CHECK(count_of(&f, "n1", "opened") == 2);
		CHECK(count_of(&f, "n2", "clicked") == 1);
		/* the members' text is the event's, after the head */
		CHECK(fx_int(&f, f.pg ? "SELECT count(*) FROM events WHERE notice_id = 'n2' AND"
				      " convert_from(entry, 'UTF8') LIKE '%\"class\":\"scanner\",\"link\":2}'"
				    : "SELECT count(*) FROM events WHERE notice_id = 'n2' AND"
				      " CAST(entry AS TEXT) LIKE '%\"class\":\"scanner\",\"link\":2}'") == 1);
		CHECK(fx_int(&f, "SELECT fold_addresses FROM hit_tally WHERE notice_id = 'n1'") == 2);
		CHECK(fx_int(&f, "SELECT fold_due_ms FROM hit_tally WHERE notice_id = 'n1'") == 1120);
		CHECK(fx_int(&f, "SELECT fold_first_ms FROM hit_tally WHERE notice_id = 'n1'") == 105);
		/* not due yet */
		size_t closed = 99;
		CHECK(store_folds_close(f.s, 1119, 10, summary_fields, NULL, &closed, &e) == 0 &&
		      closed == 0);
		CHECK(store_folds_close(f.s, 1120, 10, summary_fields, NULL, &closed, &e) == 0 &&
		      closed == 1);
		CHECK(count_of(&f, "n1", "tracking_summary") == 1);
		CHECK(fx_int(&f, "SELECT count(*) FROM hit_fold_addrs") == 0);
		CHECK(fx_int(&f, "SELECT summaries FROM hit_tally WHERE notice_id = 'n1'") == 1);
		CHECK(store_folds_close(f.s, 99999, 10, summary_fields, NULL, &closed, &e) == 0 &&
		      closed == 0);
		/* the next fold stays open twice as long */
		struct hit_new again = hit("n1", HIT_KIND_OPENED, HIT_CLASS_HUMAN, 9, 5000, human);
		CHECK(store_hits_add(f.s, &again, 1, &rule, &folded, &e) == 0 && folded == 1);
		CHECK(fx_int(&f, "SELECT fold_due_ms FROM hit_tally WHERE notice_id = 'n1'") == 7000);
		json_decref(human);
		fx_close(&f);
	}
}

TEST(hits_tally_counted_from_earlier_events)
{
	FOR_EACH_BACKEND(f)
	{
		struct selo_err e;
		err_clear(&e);
		CHECK(fx_events(&f, "n1", 1, 1) == 0);
		/* two human opens written before the notice had a tally row */
		const char *sql = f.pg ?
			"INSERT INTO events(seq, notice_id, type, time_ms, entry) VALUES"
			" (2, 'n1', 'opened', 2, '{\"v\":1,\"type\":\"opened\",\"class\":\"human\"}'),"
			" (3, 'n1', 'opened', 3, '{\"v\":1,\"type\":\"opened\",\"class\":\"human\"}');"
			"UPDATE event_clock SET seq = 3;" :
			"INSERT INTO events(seq, notice_id, type, time_ms, entry) VALUES"
			" (2, 'n1', 'opened', 2, '{\"v\":1,\"type\":\"opened\",\"class\":\"human\"}'),"
			" (3, 'n1', 'opened', 3, '{\"v\":1,\"type\":\"opened\",\"class\":\"human\"}');";
		CHECK(fx_sql(&f, sql) == 0);
		json_t *human = json_pack("{s:s}", "class", "human");
		json_t *proxy = json_pack("{s:s}", "class", "proxy");
		struct fold_rule rule = {.full_max = 2, .window_ms = 1000, .window_max_ms = 8000};
		struct hit_new h[2] = {hit("n1", HIT_KIND_OPENED, HIT_CLASS_HUMAN, 1, 100, human),
				       hit("n1", HIT_KIND_OPENED, HIT_CLASS_PROXY, 1, 100, proxy)};
		size_t folded = 0;
		CHECK(store_hits_add(f.s, h, 2, &rule, &folded, &e) == 0 && folded == 1);
		CHECK(count_of(&f, "n1", "opened") == 3);
		CHECK(fx_int(&f, "SELECT full_opened_human FROM hit_tally WHERE notice_id = 'n1'") == 2);
		CHECK(fx_int(&f, "SELECT full_opened_proxy FROM hit_tally WHERE notice_id = 'n1'") == 1);
		CHECK(fx_int(&f, "SELECT fold_opened_human FROM hit_tally WHERE notice_id = 'n1'") == 1);
		json_decref(human);
		json_decref(proxy);
		fx_close(&f);
	}
}

/* ---- Several nodes on one PostgreSQL database */

struct node_run {
	struct store *s;
	pthread_barrier_t *go;
	int reverse;
	size_t folded, closed;
	int failures;
	struct selo_err e;
};

static struct fold_rule node_rule = {.full_max = 5, .window_ms = 1000, .window_max_ms = 8000};

/* 10 calls of 2 hits each, on n1 and n2 (in either order: the tallies'
 * locks must still be taken without a deadlock). */
static void *node_hits(void *arg)
{
	struct node_run *r = arg;
	json_t *human = json_pack("{s:s}", "class", "human");
	pthread_barrier_wait(r->go);
	for (int i = 0; i < 10; i++) {
		struct hit_new h[2] = {hit(r->reverse ? "n2" : "n1", HIT_KIND_OPENED, HIT_CLASS_HUMAN,
					   (uint8_t)i, 100 + i, human),
				       hit(r->reverse ? "n1" : "n2", HIT_KIND_OPENED, HIT_CLASS_HUMAN,
					   (uint8_t)(i + r->reverse * 50), 100 + i, human)};
		size_t folded = 0;
		if (store_hits_add(r->s, h, 2, &node_rule, &folded, &r->e) != 0)
			r->failures++;
		r->folded += folded;
	}
	json_decref(human);
	return NULL;
}

static void *node_folds(void *arg)
{
	struct node_run *r = arg;
	pthread_barrier_wait(r->go);
	for (int i = 0; i < 3; i++) {
		size_t closed = 0;
		if (store_folds_close(r->s, 1000000, 1, summary_fields, NULL, &closed, &r->e) != 0)
			r->failures++;
		r->closed += closed;
	}
	return NULL;
}

static void nodes_run(struct store *a, struct store *b, void *(*fn)(void *), struct node_run r[2])
{
	pthread_barrier_t go;
	pthread_barrier_init(&go, NULL, 2);
	memset(r, 0, 2 * sizeof(*r));
	r[0].s = a;
	r[1].s = b;
	r[0].go = r[1].go = &go;
	r[1].reverse = 1;
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, fn, &r[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&go);
}

TEST(two_nodes_share_hits_and_folds)
{
	T_PG_NEED();
	struct fx f;
	CHECK(fx_open(&f, 1) == 0);
	if (!f.s)
		return;
	struct store_params p = {.backend = "postgres", .target = f.url, .node = "t-other",
				 .timeout_ms = 10000, .pool_size = 4};
	struct store *other = NULL;
	struct selo_err e;
	CHECK(store_open_backend(&p, &other, &e) == 0);
	CHECK(fx_events(&f, "n1", 1, 1) == 0 && fx_events(&f, "n2", 2, 1) == 0);
	struct node_run r[2];
	nodes_run(f.s, other, node_hits, r);
	CHECK(r[0].failures == 0 && r[1].failures == 0);
	/* 20 hits a notice: 5 logged, 15 folded, whoever wrote them */
	CHECK(r[0].folded + r[1].folded == 30);
	CHECK(count_of(&f, "n1", "opened") == 5 && count_of(&f, "n2", "opened") == 5);
	CHECK(fx_int(&f, "SELECT sum(fold_opened_human) FROM hit_tally") == 30);
	CHECK(fx_int(&f, "SELECT sum(full_opened_human) FROM hit_tally") == 10);
	/* seq follows commit order without a hole */
	CHECK(fx_int(&f, "SELECT max(seq) - count(*) FROM events") == 0);
	/* two sweeps at once: each fold closed once */
	nodes_run(f.s, other, node_folds, r);
	CHECK(r[0].failures == 0 && r[1].failures == 0);
	CHECK(r[0].closed + r[1].closed == 2);
	CHECK(count_of(&f, "n1", "tracking_summary") == 1 &&
	      count_of(&f, "n2", "tracking_summary") == 1);
	store_close(other);
	fx_close(&f);
}
