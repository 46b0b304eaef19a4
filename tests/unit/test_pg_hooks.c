/* test_pg_hooks.c: the PostgreSQL backend's webhook and statistics ops
 * (store_pg_webhook.c, store_pg_stats.c) against a private PostgreSQL
 * (t_pg.h): each op with SQLite's contract, and what several nodes on one
 * database need: the per-key webhook limit across two stores, due
 * deliveries never claimed by two nodes at once (a dead node's claim
 * returns after its lease; its late result is fenced off), two fan-outs at
 * once adding each delivery once, two statistics followers at once
 * applying once. Fixture rows (keys, notices, events, the log's state) are
 * inserted with plain SQL. */
#include <pthread.h>
#include <stdarg.h>
#include "t.h"
#include "t_pg.h"
#include "selo/clock.h"
#include "selo/store.h"

/* ---- Fixtures */

static struct store *hk_open(const char *url, const char *node, int lease_ms)
{
	struct store *s = NULL;
	struct selo_err e;
	err_clear(&e);
	struct store_params p = {.backend = "postgres", .target = url, .node = node,
				 .timeout_ms = 20000, .lease_ms = lease_ms, .pool_size = 2};
	if (store_open_backend(&p, &s, &e) != 0)
		fprintf(stderr, "  store_open_backend: %s\n", e.msg);
	return s;
}

static int hk_sql(const char *url, const char *fmt, ...)
{
	char sql[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof sql, fmt, ap);
	va_end(ap);
	PGconn *c = PQconnectdb(url);
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
	if (!ok)
		fprintf(stderr, "  %s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
	return ok ? 0 : -1;
}

/* One integer from sql (-999 on failure). */
static long long hk_int(const char *url, const char *sql)
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

/* Keys 1 and 2, notice n1 of key 1 (reference ref-1), n2 of key 2. */
static int hk_keys_notices(const char *url)
{
	return hk_sql(url, "INSERT INTO apikeys(id, name, hash, prefix, created_ms) VALUES"
			   " (1, 'one', '\\x01', 'p1', 0), (2, 'two', '\\x02', 'p2', 0)") ||
	       hk_sql(url, "INSERT INTO notices(id, apikey_id, status, to_addr, template, reference,"
			   " segment, tags_json, payload_json, salt, created_ms, updated_ms,"
			   " next_attempt_ms) VALUES"
			   " ('n1', 1, 'queued', 'a@example.org', 't1', 'ref-1', 's1', '[\"x\"]', '{}',"
			   " '\\x00', 0, 0, 0),"
			   " ('n2', 2, 'queued', 'b@example.org', NULL, NULL, NULL, NULL, '{}',"
			   " '\\x00', 0, 0, 0)");
}

/* Events from..to of notice (odd: accepted, even: delivered; entry
 * "entry-<seq>", time 1000 + seq), and the log integrated up to last. */
static int hk_events(const char *url, const char *notice, int from, int to, int last)
{
	return hk_sql(url, "INSERT INTO events(seq, notice_id, type, time_ms, entry)"
			   " SELECT g, '%s', CASE WHEN g %% 2 = 0 THEN 'delivered' ELSE 'accepted' END,"
			   " 1000 + g, convert_to('entry-' || g, 'UTF8') FROM generate_series(%d, %d) g",
		      notice, from, to) ||
	       hk_sql(url, "UPDATE event_clock SET seq = %d", to) ||
	       hk_sql(url, "INSERT INTO log_state(id, size, root, last_seq) VALUES(1, %d, '\\x00', %d)"
			   " ON CONFLICT (id) DO UPDATE SET size = %d, last_seq = %d",
		      last, last, last, last) ||
	       hk_sql(url, "INSERT INTO log_ranges(first_index, first_seq, n) VALUES(0, 1, %d)"
			   " ON CONFLICT (first_index) DO UPDATE SET n = %d",
		      last, last);
}

static const uint8_t SECRET[5] = {'s', 0, 'e', 0xff, 'c'};

static int hk_add(struct store *s, const char *id, int64_t key, const char *events, size_t max,
		  struct selo_err *e)
{
	struct webhook_rec w = {.apikey_id = key, .url = "https://example.org/hook",
				.events = (char *)events, .secret = (uint8_t *)SECRET,
				.secret_len = sizeof SECRET};
	snprintf(w.id, sizeof w.id, "%s", id);
	err_clear(e);
	return store_webhook_add(s, &w, max, e);
}

#define HK_DB(url)                                                                   \
	char url[640];                                                                   \
	(void)t_pg_restart; /* t_pg.h's, unused here */                                  \
	T_PG_NEED();                                                                     \
	CHECK(t_pg_new_db(url, sizeof url) == 0)

/* ---- Webhooks, one store */

/* The webhook get's strings, without freeing the record itself. */
static void hk_rec_clear(struct webhook_rec *w)
{
	free(w->url);
	free(w->events);
	free(w->secret);
	free(w->disabled_reason);
	memset(w, 0, sizeof(*w));
}


TEST(webhook_register_list_get_rotate_delete)
{
	HK_DB(url);
	struct store *s = hk_open(url, "a", 0);
	CHECK(s != NULL);
	if (!s)
		return;
	struct selo_err e;
	CHECK(hk_add(s, "wh_a", 1, "*", 2, &e) == 0);
	CHECK(hk_add(s, "wh_b", 1, ",delivered,", 2, &e) == 0);
	CHECK(hk_add(s, "wh_c", 1, "*", 2, &e) == -1);
	CHECK(e.status == 422 && !strcmp(e.type, "too-many-webhooks"));
	CHECK(hk_add(s, "wh_a", 2, "*", 2, &e) == -1); /* the id exists */
	CHECK(e.status == 409);

	struct webhook_rec *w = NULL;
	size_t n = 0;
	CHECK(store_webhook_list(s, 1, &w, &n, &e) == 0);
	CHECK(n == 2);
	if (n == 2) {
		CHECK_STR(w[0].id, "wh_a");
		CHECK_STR(w[1].events, ",delivered,");
		CHECK(w[0].secret_len == sizeof SECRET && !memcmp(w[0].secret, SECRET, sizeof SECRET));
		CHECK(w[0].from_seq == 0 && w[0].created_ms > 0 && w[0].disabled_ms == 0);
		CHECK(w[0].disabled_reason == NULL);
	}
	webhook_recs_free(w, n);
	CHECK(store_webhook_list(s, 2, &w, &n, &e) == 0 && n == 0);
	webhook_recs_free(w, n);
	CHECK(store_webhook_list(s, -1, &w, &n, &e) == 0 && n == 2);
	webhook_recs_free(w, n);

	struct webhook_rec g;
	CHECK(store_webhook_get(s, "wh_a", 1, &g, &e) == 1);
	CHECK_STR(g.url, "https://example.org/hook");
	CHECK(g.pending == 0 && g.delivered == 0);
	hk_rec_clear(&g);
	CHECK(store_webhook_get(s, "wh_a", 2, &g, &e) == 0);

	const uint8_t fresh[3] = {1, 2, 3};
	CHECK(store_webhook_rotate_secret(s, "wh_a", 2, fresh, 3, 1, &e) == 0);
	CHECK(store_webhook_rotate_secret(s, "wh_a", 1, fresh, 3, 1, &e) == 1);
	CHECK(hk_int(url, "SELECT length(old_secret) FROM webhooks WHERE id = 'wh_a'") == 5);
	CHECK(hk_int(url, "SELECT length(secret) FROM webhooks WHERE id = 'wh_a'") == 3);
	size_t pruned = 9;
	CHECK(store_webhook_prune(s, clock_now_ms(), 10, &pruned, &e) == 0 && pruned == 0);
	/* the overlap (until 1 ms) is over: the old secret is deleted */
	CHECK(hk_int(url, "SELECT count(*) FROM webhooks WHERE old_secret IS NOT NULL") == 0);

	CHECK(store_webhook_delete(s, "wh_b", 2, &e) == 0);
	CHECK(store_webhook_delete(s, "wh_b", 1, &e) == 1);
	CHECK(store_webhook_list(s, 1, &w, &n, &e) == 0 && n == 1);
	webhook_recs_free(w, n);
	store_close(s);
}

static size_t hk_due(struct store *s, const char *id, struct webhook_delivery **d, size_t max)
{
	struct selo_err e;
	err_clear(&e);
	size_t n = 0;
	*d = NULL;
	if (store_webhook_due(s, id, clock_now_ms(), max, d, &n, &e) != 0)
		fprintf(stderr, "  due: %s\n", e.msg);
	return n;
}

TEST(webhook_fanout_due_results_prune)
{
	HK_DB(url);
	struct store *s = hk_open(url, "a", 0);
	CHECK(s != NULL);
	if (!s)
		return;
	struct selo_err e;
	size_t added = 9;
	CHECK(store_webhook_fanout(s, 100, &added, &e) == 0 && added == 0); /* no webhook */
	CHECK(hk_keys_notices(url) == 0);
	CHECK(hk_add(s, "wh_all", 1, "*", 5, &e) == 0);
	CHECK(hk_add(s, "wh_del", 1, ",delivered,", 5, &e) == 0);
	CHECK(hk_add(s, "wh_two", 2, "*", 5, &e) == 0); /* key 2: not n1's */
	CHECK(hk_events(url, "n1", 1, 4, 3) == 0);     /* 4 events, 3 integrated */
	CHECK(store_webhook_fanout(s, 100, &added, &e) == 0);
	CHECK(added == 4); /* wh_all: 1, 2, 3; wh_del: 2 */
	CHECK(store_webhook_fanout(s, 100, &added, &e) == 0 && added == 0);
	CHECK(hk_int(url, "SELECT seq FROM webhook_cursor") == 3);

	struct webhook_delivery *d;
	size_t n = hk_due(s, "wh_all", &d, 10);
	CHECK(n == 3);
	if (n == 3) {
		CHECK(d[0].entry_len == 7 && !memcmp(d[0].entry, "entry-1", 7));
		CHECK_STR(d[0].type, "accepted");
		CHECK_STR(d[1].type, "delivered");
		CHECK_STR(d[0].notice_id, "n1");
		CHECK_STR(d[0].reference, "ref-1");
		CHECK(d[0].log_index == 0 && d[2].log_index == 2);
		CHECK(d[0].time_ms == 1001 && d[0].attempts == 0);
		CHECK(d[0].secret_len == sizeof SECRET && d[0].old_secret == NULL);
		CHECK_STR(d[0].webhook_id, "wh_all");
		CHECK(d[0].outbox_id < d[1].outbox_id);
		struct webhook_result r[3] = {
			{d[0].outbox_id, "wh_all", WEBHOOK_DELIVERED, 0, 200, NULL},
			{d[1].outbox_id, "wh_all", WEBHOOK_RETRY, clock_now_ms() + 3600000, 500, "boom"},
			{d[2].outbox_id, "wh_all", WEBHOOK_GAVE_UP, 0, 0, "timeout"},
		};
		CHECK(store_webhook_results(s, r, 3, &e) == 0);
		struct webhook_result bad = {d[0].outbox_id, "wh_all", (enum webhook_outcome)9, 0, 0, NULL};
		CHECK(store_webhook_results(s, &bad, 1, &e) == -1 && e.status == 400);
	}
	webhook_deliveries_free(d, n);
	CHECK(hk_due(s, "wh_all", &d, 10) == 0); /* one later, two done */
	webhook_deliveries_free(d, 0);
	CHECK(hk_int(url, "SELECT count(*) FROM webhook_outbox WHERE claimed_by IS NOT NULL") == 0);
	struct webhook_rec g;
	CHECK(store_webhook_get(s, "wh_all", 1, &g, &e) == 1);
	CHECK(g.delivered == 1 && g.pending == 1 && g.failed == 1 && g.dropped == 0);
	hk_rec_clear(&g);
	CHECK(hk_int(url, "SELECT attempts FROM webhook_outbox WHERE last_error = 'boom'") == 1);

	/* a 410 disables the webhook and drops its pending rows */
	n = hk_due(s, "wh_del", &d, 10);
	CHECK(n == 1);
	if (n == 1) {
		struct webhook_result r = {d[0].outbox_id, "wh_del", WEBHOOK_GONE, 0, 410, NULL};
		CHECK(store_webhook_results(s, &r, 1, &e) == 0);
	}
	webhook_deliveries_free(d, n);
	char (*ids)[32] = NULL;
	CHECK(store_webhook_active(s, &ids, &n, &e) == 0 && n == 2);
	if (n == 2)
		CHECK_STR(ids[0], "wh_all");
	free(ids);
	CHECK(store_webhook_get(s, "wh_del", 1, &g, &e) == 1);
	CHECK(g.disabled_ms > 0 && g.disabled_reason && g.dropped == 1 && g.pending == 0);
	hk_rec_clear(&g);

	/* finished rows go (delivered, failed, wh_del's one); pending stays */
	size_t pruned = 0;
	CHECK(store_webhook_prune(s, clock_now_ms() + 1000, 10, &pruned, &e) == 0 && pruned == 3);
	CHECK(hk_int(url, "SELECT count(*) FROM webhook_outbox") == 1);
	/* event 4 integrated: only the active webhook gets it, pruned ones never return */
	CHECK(hk_events(url, "n1", 5, 5, 4) == 0);
	CHECK(store_webhook_fanout(s, 100, &added, &e) == 0 && added == 1);
	CHECK(hk_int(url, "SELECT count(*) FROM webhook_outbox") == 2);
	store_close(s);
}

/* ---- Several nodes on one database */

struct hk_adder {
	const char *url, *node;
	pthread_barrier_t *go;
	int ok, full, other;
};

static void *hk_add_many(void *arg)
{
	struct hk_adder *a = arg;
	struct store *s = hk_open(a->url, a->node, 0);
	pthread_barrier_wait(a->go);
	for (int i = 0; s && i < 6; i++) { /* s NULL: counted as nothing done */
		char id[32];
		struct selo_err e;
		snprintf(id, sizeof id, "wh_%s%d", a->node, i);
		if (hk_add(s, id, 7, "*", 5, &e) == 0)
			a->ok++;
		else if (e.status == 422)
			a->full++;
		else
			a->other++;
	}
	store_close(s);
	return NULL;
}

TEST(webhook_limit_holds_across_two_stores)
{
	HK_DB(url);
	struct store *init = hk_open(url, "init", 0); /* migrate once, before the race */
	store_close(init);
	pthread_barrier_t go;
	pthread_barrier_init(&go, NULL, 2);
	struct hk_adder a[2] = {{url, "a", &go, 0, 0, 0}, {url, "b", &go, 0, 0, 0}};
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, hk_add_many, &a[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&go);
	CHECK(a[0].ok + a[1].ok == 5);
	CHECK(a[0].full + a[1].full == 7);
	CHECK(a[0].other + a[1].other == 0);
	CHECK(hk_int(url, "SELECT count(*) FROM webhooks WHERE apikey_id = 7") == 5);
}

struct hk_claimer {
	struct store *s;
	pthread_barrier_t *go;
	struct webhook_delivery *d;
	size_t n;
};

static void *hk_claim(void *arg)
{
	struct hk_claimer *c = arg;
	pthread_barrier_wait(c->go);
	c->n = hk_due(c->s, "wh_all", &c->d, 100);
	return NULL;
}

/* Whether every outbox id of a is absent from b. */
static int hk_disjoint(const struct webhook_delivery *a, size_t na,
		       const struct webhook_delivery *b, size_t nb)
{
	for (size_t i = 0; i < na; i++)
		for (size_t j = 0; j < nb; j++)
			if (a[i].outbox_id == b[j].outbox_id)
				return 0;
	return 1;
}

TEST(due_deliveries_are_never_claimed_by_two_nodes)
{
	HK_DB(url);
	struct store *sa = hk_open(url, "a", 60000), *sb = hk_open(url, "b", 60000);
	CHECK(sa && sb);
	if (!sa || !sb)
		return;
	struct selo_err e;
	size_t added = 0;
	CHECK(hk_keys_notices(url) == 0);
	CHECK(hk_add(sa, "wh_all", 1, "*", 5, &e) == 0);
	CHECK(hk_events(url, "n1", 1, 60, 60) == 0);
	CHECK(store_webhook_fanout(sa, 1000, &added, &e) == 0 && added == 60);

	pthread_barrier_t go;
	pthread_barrier_init(&go, NULL, 2);
	struct hk_claimer c[2] = {{sa, &go, NULL, 0}, {sb, &go, NULL, 0}};
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, hk_claim, &c[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&go);
	CHECK(c[0].n + c[1].n == 60);
	CHECK(hk_disjoint(c[0].d, c[0].n, c[1].d, c[1].n));
	/* leases on the database's clock, store.lease long */
	CHECK(hk_int(url, "SELECT count(*) FROM webhook_outbox WHERE lease_until >"
			  " extract(epoch FROM now()) * 1000 + 50000") == 60);

	/* asked again, each node gets its own rows back (in flight there), never the other's */
	struct webhook_delivery *again = NULL;
	size_t na = hk_due(sb, "wh_all", &again, 100);
	CHECK(na == c[1].n);
	CHECK(hk_disjoint(again, na, c[0].d, c[0].n));
	webhook_deliveries_free(again, na);

	/* node a dies: once its lease has passed, b takes its rows */
	CHECK(hk_sql(url, "UPDATE webhook_outbox SET lease_until = 1 WHERE claimed_by = 'a'") == 0);
	na = hk_due(sb, "wh_all", &again, 100);
	CHECK(na == 60);
	webhook_deliveries_free(again, na);
	/* a's late result is fenced off; b's counts */
	if (c[0].n > 0) {
		struct webhook_result r = {c[0].d[0].outbox_id, "wh_all", WEBHOOK_DELIVERED, 0, 200, NULL};
		CHECK(store_webhook_results(sa, &r, 1, &e) == 0);
		CHECK(hk_int(url, "SELECT count(*) FROM webhook_outbox WHERE state = 'pending'") == 60);
		CHECK(store_webhook_results(sb, &r, 1, &e) == 0);
		CHECK(hk_int(url, "SELECT count(*) FROM webhook_outbox WHERE state = 'delivered'"
				  " AND attempts = 1 AND claimed_by IS NULL") == 1);
	}
	webhook_deliveries_free(c[0].d, c[0].n);
	webhook_deliveries_free(c[1].d, c[1].n);
	store_close(sa);
	store_close(sb);
}

TEST(a_lease_runs_out_by_itself)
{
	HK_DB(url);
	struct store *sa = hk_open(url, "a", 300), *sb = hk_open(url, "b", 60000);
	CHECK(sa && sb);
	if (!sa || !sb)
		return;
	struct selo_err e;
	size_t added = 0;
	CHECK(hk_keys_notices(url) == 0);
	CHECK(hk_add(sa, "wh_all", 1, "*", 5, &e) == 0);
	CHECK(hk_events(url, "n1", 1, 1, 1) == 0);
	CHECK(store_webhook_fanout(sa, 10, &added, &e) == 0 && added == 1);
	struct webhook_delivery *d = NULL;
	size_t n = hk_due(sa, "wh_all", &d, 10);
	CHECK(n == 1);
	webhook_deliveries_free(d, n);
	n = hk_due(sb, "wh_all", &d, 10);
	CHECK(n == 0); /* a holds it */
	webhook_deliveries_free(d, n);
	int64_t deadline = clock_mono_ms() + 10000;
	while (n == 0 && clock_mono_ms() < deadline) {
		struct timespec ts = {0, 50 * 1000000};
		nanosleep(&ts, NULL);
		n = hk_due(sb, "wh_all", &d, 10);
		webhook_deliveries_free(d, n);
	}
	CHECK(n == 1);
	store_close(sa);
	store_close(sb);
}

struct hk_fanner {
	struct store *s;
	pthread_barrier_t *go;
	size_t added;
	int failed;
};

static void *hk_fan(void *arg)
{
	struct hk_fanner *f = arg;
	pthread_barrier_wait(f->go);
	for (int i = 0; i < 12; i++) {
		struct selo_err e;
		size_t added = 0;
		err_clear(&e);
		if (store_webhook_fanout(f->s, 50, &added, &e) != 0) {
			fprintf(stderr, "  fanout: %s\n", e.msg);
			f->failed++;
		}
		f->added += added;
	}
	return NULL;
}

TEST(two_fanouts_at_once_add_each_delivery_once)
{
	HK_DB(url);
	struct store *sa = hk_open(url, "a", 0), *sb = hk_open(url, "b", 0);
	CHECK(sa && sb);
	if (!sa || !sb)
		return;
	struct selo_err e;
	CHECK(hk_keys_notices(url) == 0);
	CHECK(hk_add(sa, "wh_1", 1, "*", 5, &e) == 0);
	CHECK(hk_add(sa, "wh_2", 1, "*", 5, &e) == 0);
	CHECK(hk_add(sb, "wh_3", 1, ",accepted,", 5, &e) == 0);
	CHECK(hk_events(url, "n1", 1, 400, 400) == 0);
	pthread_barrier_t go;
	pthread_barrier_init(&go, NULL, 2);
	struct hk_fanner f[2] = {{sa, &go, 0, 0}, {sb, &go, 0, 0}};
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, hk_fan, &f[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&go);
	CHECK(f[0].failed + f[1].failed == 0);
	/* each delivery added once, by one of them: the counts add up exactly */
	CHECK(f[0].added + f[1].added == 1000);
	CHECK(hk_int(url, "SELECT count(*) FROM webhook_outbox") == 1000);
	CHECK(hk_int(url, "SELECT seq FROM webhook_cursor") == 400);
	store_close(sa);
	store_close(sb);
}

/* ---- Statistics */

struct hk_seen {
	int n;
	int64_t seq[16];
	int entry_ok;
};

static int hk_event_cb(void *arg, const struct stats_event *ev)
{
	struct hk_seen *s = arg;
	char want[32];
	snprintf(want, sizeof want, "entry-%lld", (long long)ev->seq);
	s->entry_ok += ev->entry_len == strlen(want) && !memcmp(ev->entry, want, ev->entry_len) &&
		       ev->time_ms == 1000 + ev->seq && !strcmp(ev->notice_id, "n1");
	if (s->n < 16)
		s->seq[s->n] = ev->seq;
	s->n++;
	return 0;
}

struct hk_scan {
	int dims, rollups, facts;
	int64_t accepted;
	size_t samples;
	int64_t first_sample, last_sample;
	int in_order;
};

static void hk_on_dim(void *arg, const struct stats_dim *d)
{
	struct hk_scan *x = arg;
	x->dims++;
	(void)d;
}

static void hk_on_rollup(void *arg, int64_t dim, int32_t day, const int64_t c[SC_COUNT])
{
	struct hk_scan *x = arg;
	(void)dim;
	x->rollups += day == 100;
	x->accepted += c[SC_ACCEPTED];
}

static void hk_on_delays(void *arg, int64_t dim, int32_t day, int kind, const int64_t *v, size_t n)
{
	struct hk_scan *x = arg;
	(void)dim, (void)day;
	if (kind != SD_OPEN)
		return;
	for (size_t i = 0; i < n; i++) {
		if (x->samples == 0)
			x->first_sample = v[i];
		x->in_order += v[i] == (int64_t)x->samples;
		x->last_sample = v[i];
		x->samples++;
	}
}

static void hk_on_fact(void *arg, const struct stats_fact *f)
{
	struct hk_scan *x = arg;
	x->facts += !strcmp(f->notice_id, "n1") && f->hits[5] == 6;
}

TEST(stats_events_dims_apply_facts_scan)
{
	HK_DB(url);
	struct store *s = hk_open(url, "a", 0);
	CHECK(s != NULL);
	if (!s)
		return;
	struct selo_err e;
	err_clear(&e);
	CHECK(hk_keys_notices(url) == 0);
	CHECK(hk_events(url, "n1", 1, 5, 5) == 0);
	struct hk_seen seen = {0};
	int64_t cursor = -1, last = -1;
	CHECK(store_stats_events(s, 3, hk_event_cb, &seen, &cursor, &last, &e) == 0);
	CHECK(cursor == 0 && last == 5 && seen.n == 3 && seen.entry_ok == 3 && seen.seq[2] == 3);

	const char *ids[3] = {"n1", "nx", "n2"};
	struct stats_notice_info info[3];
	int found[3];
	CHECK(store_stats_notice_info(s, ids, 3, info, found, &e) == 0);
	CHECK(found[0] == 1 && found[1] == 0 && found[2] == 1);
	CHECK(info[0].apikey_id == 1 && info[0].template_name && !strcmp(info[0].template_name, "t1"));
	CHECK(info[0].tags_json && !strcmp(info[0].tags_json, "[\"x\"]"));
	CHECK(info[2].apikey_id == 2 && info[2].template_name == NULL && info[2].segment == NULL);
	for (int i = 0; i < 3; i++)
		stats_notice_info_free(&info[i]);

	int64_t dim = 0, again = 0, other = 0;
	CHECK(store_stats_dim(s, "k1|t1", 1, "t1", "s1", "[\"x\"]", &dim, &e) == 0 && dim > 0);
	CHECK(store_stats_dim(s, "k1|t1", 1, "t1", "s1", "[\"x\"]", &again, &e) == 0 && again == dim);
	CHECK(store_stats_dim(s, "k2", 2, NULL, NULL, NULL, &other, &e) == 0 && other != dim);

	struct stats_fact fact = {.apikey_id = 1, .dim = dim, .day = 100, .flags = 3,
				  .accepted_ms = 5000, .delivered_ms = 6000,
				  .hits = {1, 2, 3, 4, 5, 6}};
	snprintf(fact.notice_id, sizeof fact.notice_id, "n1");
	int64_t samples[1502];
	for (int i = 0; i < 1502; i++)
		samples[i] = i;
	struct stats_delta delta = {.dim = dim, .day = 100};
	delta.c[SC_ACCEPTED] = 1;
	delta.delays[SD_OPEN] = samples;
	delta.ndelays[SD_OPEN] = 2;
	struct stats_batch b = {0, 3, &fact, 1, &delta, 1};
	CHECK(store_stats_apply(s, &b, &e) == 0);
	CHECK(store_stats_apply(s, &b, &e) == -1); /* the cursor is 3 now */
	CHECK(e.status == 409 && !strcmp(e.type, "stats-cursor-moved"));

	struct stats_fact got[2];
	memset(got, 0, sizeof got);
	snprintf(got[0].notice_id, sizeof got[0].notice_id, "n1");
	snprintf(got[1].notice_id, sizeof got[1].notice_id, "n2");
	CHECK(store_stats_facts_get(s, got, 2, found, &e) == 0);
	CHECK(found[0] == 1 && found[1] == 0);
	CHECK(got[0].dim == dim && got[0].day == 100 && got[0].flags == 3);
	CHECK(got[0].delivered_ms == 6000 && got[0].hits[5] == 6 && got[0].open_ms == 0);

	memset(&seen, 0, sizeof seen);
	CHECK(store_stats_events(s, 10, hk_event_cb, &seen, &cursor, &last, &e) == 0);
	CHECK(cursor == 3 && seen.n == 2 && seen.seq[0] == 4);

	/* more samples than a chunk holds: the last chunk fills, a new one follows */
	delta.delays[SD_OPEN] = samples + 2;
	delta.ndelays[SD_OPEN] = 1500;
	fact.flags = 7; /* written whole */
	struct stats_batch b2 = {3, 5, &fact, 1, &delta, 1};
	CHECK(store_stats_apply(s, &b2, &e) == 0);
	CHECK(hk_int(url, "SELECT count(*) FROM stats_delays") == 2);
	CHECK(hk_int(url, "SELECT flags FROM stats_notices WHERE notice_id = 'n1'") == 7);

	struct hk_scan x = {0};
	struct stats_scan q = {.apikey_id = 1, .day_from = 0, .day_to = 200,
			       .ms_from = {0}, .ms_to = {1000000}, .nranges = 1, .arg = &x,
			       .dim = hk_on_dim, .rollup = hk_on_rollup, .delays = hk_on_delays,
			       .fact = hk_on_fact};
	CHECK(store_stats_scan(s, &q, &e) == 0);
	CHECK(x.dims == 1 && x.rollups == 1 && x.accepted == 2 && x.facts == 1);
	CHECK(x.samples == 1502 && x.in_order == 1502 && x.last_sample == 1501);
	CHECK(q.cursor == 5 && q.last_seq == 5 && q.cursor_time_ms == 1005);
	memset(&x, 0, sizeof x);
	q.apikey_id = -1;
	q.day_from = 1, q.day_to = 0; /* no rollups */
	CHECK(store_stats_scan(s, &q, &e) == 0);
	CHECK(x.dims == 2 && x.rollups == 0 && x.samples == 0 && x.facts == 1);
	store_close(s);
}

struct hk_applier {
	struct store *s;
	pthread_barrier_t *go;
	int rc, status;
};

static void *hk_apply(void *arg)
{
	struct hk_applier *a = arg;
	struct stats_delta delta = {.dim = 1, .day = 1};
	delta.c[SC_DELIVERED] = 1;
	struct stats_batch b = {0, 5, NULL, 0, &delta, 1};
	struct selo_err e;
	err_clear(&e);
	pthread_barrier_wait(a->go);
	a->rc = store_stats_apply(a->s, &b, &e);
	a->status = e.status;
	return NULL;
}

TEST(two_followers_at_once_apply_once)
{
	HK_DB(url);
	struct store *sa = hk_open(url, "a", 0), *sb = hk_open(url, "b", 0);
	CHECK(sa && sb);
	if (!sa || !sb)
		return;
	pthread_barrier_t go;
	pthread_barrier_init(&go, NULL, 2);
	struct hk_applier a[2] = {{sa, &go, 0, 0}, {sb, &go, 0, 0}};
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, hk_apply, &a[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&go);
	CHECK((a[0].rc == 0) + (a[1].rc == 0) == 1);
	CHECK(a[0].status == 409 || a[1].status == 409);
	CHECK(hk_int(url, "SELECT delivered FROM stats_rollup") == 1);
	CHECK(hk_int(url, "SELECT seq FROM stats_cursor") == 5);
	store_close(sa);
	store_close(sb);
}

