/* test_stats.c: the statistics (stats.h, docs/stats.md): nearest-rank
 * percentiles against a sort; the follower over a small store written with
 * SQL (counts per class, delays, the edges of a range, days in the zone, one
 * key's view), counted in batches of one event and at once with the same
 * result, and two followers taking turns without counting an event twice. */
#include <sqlite3.h>
#include <stdint.h>
#include <unistd.h>
#include "selo/stats.h"
#include "selo/store.h"
#include "t.h"
#include "t_store.h"

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

TEST(percentile_is_the_nearest_rank)
{
	int64_t one[] = {42};
	CHECK(stats_percentile(one, 1, 50) == 42 && stats_percentile(one, 1, 90) == 42);
	int64_t two[] = {9, 3};
	CHECK(stats_percentile(two, 2, 50) == 3);  /* ceil(0.5 * 2) = 1st */
	CHECK(stats_percentile(two, 2, 90) == 9);  /* ceil(0.9 * 2) = 2nd */
	int64_t ten[] = {10, 1, 9, 2, 8, 3, 7, 4, 6, 5};
	CHECK(stats_percentile(ten, 10, 50) == 5);
	CHECK(stats_percentile(ten, 10, 90) == 9);
	CHECK(stats_percentile(ten, 10, 100) == 10);
	uint64_t r = 88172645463325252ULL;
	for (int round = 0; round < 200; round++) {
		size_t n = 1 + (size_t)(round * 37 % 500);
		int64_t *v = calloc(n, sizeof(*v)), *w = calloc(n, sizeof(*w));
		for (size_t i = 0; i < n; i++) {
			r ^= r << 13, r ^= r >> 7, r ^= r << 17;
			v[i] = round % 3 == 0 ? (int64_t)(r % 5) : (int64_t)(r % 100000); /* repeats */
		}
		memcpy(w, v, n * sizeof(*v));
		qsort(w, n, sizeof(*w), cmp64);
		for (int p = 1; p <= 100; p += 7) {
			size_t rank = (size_t)((p * n + 99) / 100);
			CHECK(stats_percentile(v, n, p) == w[rank - 1]);
		}
		free(v);
		free(w);
	}
}

/* What the rows below need that the two backends spell differently. */
#ifdef T_STORE_PG
#define SQL_SALT "decode(repeat('00', 32), 'hex')"
#define SQL_BLOB(text) "convert_to(" text ", 'UTF8')"
#else
#define SQL_SALT "zeroblob(32)"
#define SQL_BLOB(text) "CAST(" text " AS BLOB)"
#endif

static void fx_sql(struct store_fx *f, const char *sql)
{
#ifdef T_STORE_PG
	CHECK(store_fx_raw_exec(f->path, sql) == 0);
	return;
#endif
	sqlite3 *db = NULL;
	CHECK(sqlite3_open(f->path, &db) == SQLITE_OK);
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		fprintf(stderr, "  sql: %s\n", msg);
		CHECK(0);
	}
	sqlite3_free(msg);
	sqlite3_close(db);
}

static void ev(struct store_fx *f, const char *id, const char *type, int64_t ms, const char *cls)
{
	char sql[512];
	snprintf(sql, sizeof(sql),
		 "INSERT INTO events(notice_id, type, time_ms, entry) VALUES('%s', '%s', %lld,"
		 " " SQL_BLOB("'{\"v\":1,\"type\":\"%s\",\"notice\":\"%s\",\"time\":\"x\"%s%s%s}'") ")",
		 id, type, (long long)ms, type, id, cls ? ",\"method\":\"GET\",\"class\":\"" : "",
		 cls ? cls : "", cls ? "\"" : "");
	fx_sql(f, sql);
}

static void notice(struct store_fx *f, const char *id, int key, const char *tpl, const char *tags,
		   int64_t ms)
{
	char sql[512];
	snprintf(sql, sizeof(sql),
		 "INSERT INTO notices(id, apikey_id, status, to_addr, template, tags_json,"
		 " payload_json, salt, created_ms, updated_ms, next_attempt_ms) VALUES('%s', %d,"
		 " 'queued', 'a@b.example', %s, %s, '{}', " SQL_SALT ", %lld, %lld, %lld)",
		 id, key, tpl, tags, (long long)ms, (long long)ms, (long long)ms);
	fx_sql(f, sql);
	ev(f, id, "submission_accepted", ms, NULL);
}

/* 2026-11-10T03:00:00Z is midnight of 2026-11-10 in São Paulo (UTC-3). */
#define DAY10 1794279600000LL
#define H (3600 * 1000LL)

/* A store with four notices of two keys and their events, written beside
 * the store as another process would. */
static int fx_open(struct store_fx *f)
{
	if (store_fx_open(f, "stats") != 0)
		return -1;
	struct selo_err e;
	store_close(f->s); /* the schema is there; write the events as another process */
	notice(f, "N1", 1, "'lembrete'", "'[\"pix\",\"vip\",\"pix\"]'", DAY10 + 1 * H);
	notice(f, "N2", 1, "'lembrete'", "NULL", DAY10 + 2 * H);
	notice(f, "N3", 1, "NULL", "'[]'", DAY10 + 23 * H);  /* 2026-11-10 23:00 local */
	notice(f, "N4", 2, "'atraso'", "NULL", DAY10 + 25 * H); /* another key, the next day */
	ev(f, "N1", "delivery_deferred", DAY10 + 1 * H + 10, NULL);
	ev(f, "N1", "delivery_deferred", DAY10 + 1 * H + 20, NULL);
	ev(f, "N1", "relay_accepted", DAY10 + 1 * H + 1000, NULL);
	ev(f, "N2", "delivery_accepted", DAY10 + 2 * H + 1000, NULL);
	ev(f, "N1", "opened", DAY10 + 1 * H + 2000, "proxy");
	ev(f, "N2", "opened", DAY10 + 2 * H + 500, "human"); /* before its delivery was written */
	ev(f, "N2", "opened", DAY10 + 2 * H + 61000, "human");
	ev(f, "N1", "opened", DAY10 + 1 * H + 31000, "human");
	ev(f, "N1", "clicked", DAY10 + 1 * H + 32000, "scanner");
	ev(f, "N1", "read_confirmed", DAY10 + 1 * H + 3000, "scanner"); /* a machine POST */
	ev(f, "N1", "read_confirmed", DAY10 + 1 * H + 91000, "human");
	ev(f, "N3", "canceled", DAY10 + 23 * H + 5, NULL);
	ev(f, "N4", "delivery_failed", DAY10 + 25 * H + 5, NULL);
	ev(f, "N4", "opened", DAY10 + 25 * H + 9, "human");
	err_clear(&e);
	return store_open(f->path, &f->s, &e);
}

static json_t *query(struct store_fx *f, int64_t key, const char *by, const char *from, const char *to)
{
	struct stats_params p = {from, to, by, NULL, key};
	json_t *doc = NULL;
	struct selo_err e;
	err_clear(&e);
	if (stats_query(f->s, &p, &doc, &e) != 0)
		fprintf(stderr, "  stats_query: %s\n", e.msg);
	return doc;
}

static long long num(json_t *o, const char *path)
{
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", path);
	json_t *v = o;
	for (char *save = NULL, *t = strtok_r(buf, ".", &save); t; t = strtok_r(NULL, ".", &save))
		v = json_object_get(v, t);
	return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

static double real(json_t *o, const char *a, const char *b)
{
	json_t *v = json_object_get(json_object_get(o, a), b);
	return json_is_number(v) ? json_number_value(v) : -1;
}

static void check_key1(json_t *d)
{
	json_t *t = json_object_get(d, "totals");
	CHECK(num(t, "accepted") == 3);
	CHECK(num(t, "delivered") == 2);
	CHECK(num(t, "deferred") == 1);   /* a notice, however many deferrals */
	CHECK(num(t, "canceled") == 1);
	CHECK(num(t, "failed") == 0);
	CHECK(num(t, "opened.human") == 2 && num(t, "opened.proxy") == 1);
	CHECK(num(t, "hits.opened.human") == 3 && num(t, "hits.opened.proxy") == 1);
	CHECK(num(t, "clicked.scanner") == 1 && num(t, "clicked.human") == 0);
	CHECK(num(t, "read_confirmed") == 1); /* the machine's POST is not a read */
	/* open delays: N1 30 s, N2 0 (opened before its delivery was written) */
	CHECK(num(t, "time_to_human_open.samples") == 2);
	CHECK(real(t, "time_to_human_open", "median_s") == 0.0);
	CHECK(real(t, "time_to_human_open", "p90_s") == 30.0);
	CHECK(real(t, "time_to_read", "median_s") == 90.0);
}

TEST(follower_counts_in_any_batch_size)
{
	struct store_fx f;
	CHECK(fx_open(&f) == 0);
	struct stats_follower *a = NULL, *b = NULL;
	struct selo_err e;
	err_clear(&e);
	CHECK(stats_follower_new(f.s, &a, &e) == 0 && stats_follower_new(f.s, &b, &e) == 0);
	/* two followers (two processes) take turns one event at a time: the
	 * cursor check keeps them from counting an event twice */
	size_t n = 1;
	for (int i = 0; n > 0 && i < 100; i++) {
		size_t m = 0;
		CHECK(stats_follow(i % 2 ? a : b, 1, &n, &e) == 0);
		CHECK(stats_follow(i % 3 ? b : a, 2, &m, &e) == 0);
		n += m;
	}
	json_t *d = query(&f, 1, "template", NULL, NULL);
	CHECK(d != NULL);
	check_key1(d);
	json_t *g = json_object_get(d, "groups");
	CHECK(json_array_size(g) == 2);
	CHECK_STR(json_string_value(json_object_get(json_array_get(g, 0), "group")), "lembrete");
	CHECK(json_is_null(json_object_get(json_array_get(g, 1), "group")));
	CHECK(num(json_array_get(g, 0), "accepted") == 2);
	json_decref(d);
	/* a key sees its own notices only */
	d = query(&f, 2, "day", NULL, NULL);
	CHECK(num(json_object_get(d, "totals"), "accepted") == 1);
	CHECK(num(json_object_get(d, "totals"), "opened.human") == 1);
	CHECK(num(json_object_get(d, "totals"), "time_to_human_open.samples") == 0); /* never delivered */
	CHECK_STR(json_string_value(json_object_get(json_array_get(json_object_get(d, "groups"), 0),
						    "group")), "2026-11-11");
	json_decref(d);
	stats_follower_free(a);
	stats_follower_free(b);
	store_fx_close(&f);
}

TEST(ranges_whole_days_and_edges)
{
	struct store_fx f;
	CHECK(fx_open(&f) == 0);
	struct stats_follower *a = NULL;
	struct selo_err e;
	err_clear(&e);
	CHECK(stats_follower_new(f.s, &a, &e) == 0 && stats_catch_up(a, &e) == 0);
	json_t *d = query(&f, 1, "tag", "2026-11-10", "2026-11-10"); /* a whole local day */
	check_key1(d);
	json_t *g = json_object_get(d, "groups");
	CHECK(json_array_size(g) == 3); /* pix, vip, null */
	CHECK(num(json_array_get(g, 0), "accepted") == 1); /* pix once, though repeated */
	CHECK(json_is_null(json_object_get(json_array_get(g, 2), "group")));
	CHECK(num(json_array_get(g, 2), "accepted") == 2);
	json_decref(d);
	/* date-times: the edges come from the notices' facts, to excluded */
	d = query(&f, 1, NULL, "2026-11-10T04:00:00Z", "2026-11-10T05:00:00Z");
	CHECK(num(json_object_get(d, "totals"), "accepted") == 1);
	CHECK(num(json_object_get(d, "totals"), "hits.opened.human") == 1);
	CHECK(real(json_object_get(d, "totals"), "time_to_read", "median_s") == 90.0);
	json_decref(d);
	d = query(&f, 1, "day", "2026-11-10T05:00:00Z", "2026-11-12");
	CHECK(num(json_object_get(d, "totals"), "accepted") == 2); /* N2, N3; N1 at 04:00Z is before */
	json_decref(d);
	d = query(&f, 1, NULL, "2026-11-09", "2026-11-09"); /* N1..N3 are the 10th */
	CHECK(num(json_object_get(d, "totals"), "accepted") == 0);
	json_decref(d);
	/* UTC days: N3 (23:00 local) is on the 11th */
	struct stats_params p = {NULL, NULL, "day", "UTC", 1};
	CHECK(stats_query(f.s, &p, &d, &e) == 0);
	CHECK(json_array_size(json_object_get(d, "groups")) == 2);
	json_decref(d);
	/* counting again changes nothing */
	CHECK(stats_catch_up(a, &e) == 0);
	d = query(&f, 1, NULL, NULL, NULL);
	check_key1(d);
	json_decref(d);
	stats_follower_free(a);
	store_fx_close(&f);
}

TEST(bad_parameters)
{
	struct store_fx f;
	CHECK(fx_open(&f) == 0);
	static const struct {
		const char *from, *to, *by, *zone;
		int status;
	} bad[] = {
		{NULL, NULL, "week", NULL, 400},
		{"2026-02-29", NULL, NULL, NULL, 400},
		{"2026-1-01", NULL, NULL, NULL, 400},
		{"20261101", NULL, NULL, NULL, 400},
		{NULL, "2026-11-01T00:00:00", NULL, NULL, 400}, /* no offset */
		{NULL, NULL, NULL, "Nowhere/City", 400},
		{"2026-11-02", "2026-11-01", NULL, NULL, 422},
		{"2026-11-02T00:00:00Z", "2026-11-01T20:00:00-03:00", NULL, NULL, 422},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct stats_params p = {bad[i].from, bad[i].to, bad[i].by, bad[i].zone, 1};
		json_t *d = NULL;
		struct selo_err e;
		err_clear(&e);
		CHECK(stats_query(f.s, &p, &d, &e) == -1 && d == NULL);
		CHECK(e.status == bad[i].status && e.nfields == 1);
	}
	store_fx_close(&f);
}
