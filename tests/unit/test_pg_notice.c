/* test_pg_notice.c: the PostgreSQL backend's notice writes (store_pg_notice.c)
 * against a private PostgreSQL (t_pg.h), through store.h: accepting
 * (batches, idempotency, refusals), claims with leases across two nodes on
 * one database (disjoint claims, a lapsed lease taken over, recovery of
 * only this node's claims), sealing, results, events, bounces and
 * suppressions, cancels, sequences, API keys, and the order of the events
 * of concurrent accepts. The reads of this backend are another file's, so
 * results are checked with SQL. */
#include <pthread.h>
#include <stdatomic.h>
#include "selo/clock.h"
#include "selo/crypto.h"
#include "selo/event.h"
#include "selo/id.h"
#include "selo/store.h"
#include "t.h"
#include "t_pg.h"

/* A store on database url as node `node`, with a lease of lease_ms. */
static struct store *pgn_open(const char *url, const char *node, int lease_ms)
{
	struct store *s = NULL;
	struct selo_err e;
	err_clear(&e);
	struct store_params p = {.backend = "postgres", .target = url, .node = node,
				 .timeout_ms = 10000, .lease_ms = lease_ms, .pool_size = 3};
	if (store_open_backend(&p, &s, &e) != 0)
		fprintf(stderr, "  store_open_backend: %s\n", e.msg);
	return s;
}

/* One value of a query on url, as text ("(error)" / "(none)"). */
static const char *q1(const char *url, const char *sql, char *out, size_t n)
{
	PGconn *c = PQconnectdb(url);
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		fprintf(stderr, "  q1: %s: %s", sql, PQerrorMessage(c));
	snprintf(out, n, "%s",
		 PQresultStatus(r) != PGRES_TUPLES_OK ? "(error)"
		 : PQntuples(r) == 0		      ? "(none)"
						      : PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(c);
	return out;
}

static long long q1i(const char *url, const char *sql)
{
	char v[64];
	return atoll(q1(url, sql, v, sizeof v));
}

static void notice_make(struct notice_new *n, int64_t key, const char *idem, const char *body)
{
	memset(n, 0, sizeof(*n));
	uint8_t id[SELO_ID_BYTES];
	id_new(id);
	id_to_text(id, n->id);
	n->apikey_id = key;
	n->idempotency_key = idem;
	sha256(body, strlen(body), n->request_sha256);
	random_bytes(n->salt, sizeof(n->salt));
	n->to = "devedor@example.com";
	n->template_name = "lembrete";
	n->payload_json = "{\"template\":\"lembrete\"}";
	n->event_fields = json_pack("{s:s}", "to", "sha256:00");
}

/* Accepts one notice: its result. */
static struct accept_result accept1(struct store *s, struct notice_new *n)
{
	struct accept_result r;
	struct selo_err e;
	err_clear(&e);
	if (store_notices_accept(s, n, 1, &r, &e) != 0) {
		r.failed = 1;
		r.err = e;
	}
	return r;
}

/* Accepts k plain notices of key 1. */
static void accept_many(struct store *s, int k)
{
	for (int i = 0; i < k; i++) {
		struct notice_new n;
		notice_make(&n, 1, NULL, "x");
		struct accept_result r = accept1(s, &n);
		CHECK(!r.failed);
		json_decref(n.event_fields);
	}
}

/* Runs sql on the database of url: 0 or -1. */
static int t_pg_sql_url(const char *url, const char *sql)
{
	PGconn *c = PQconnectdb(url);
	PGresult *r = PQexec(c, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
	if (!ok)
		fprintf(stderr, "  %s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
	return ok ? 0 : -1;
}

static char url_[640];
static const char *fresh_db(void)
{
	(void)t_pg_restart; /* t_pg.h's, not needed here */
	return t_pg_new_db(url_, sizeof url_) == 0 ? url_ : NULL;
}

TEST(accept_batches_idempotency_and_refusals)
{
	T_PG_NEED();
	const char *url = fresh_db();
	struct store *s = url ? pgn_open(url, "a", 0) : NULL;
	CHECK(s != NULL);
	if (!s)
		return;
	struct notice_new ns[4];
	notice_make(&ns[0], 1, "k1", "body1");
	notice_make(&ns[1], 1, NULL, "b");
	ns[1].due_ms = clock_now_ms() + 3600000; /* scheduled */
	notice_make(&ns[2], 1, NULL, "c");
	memcpy(ns[2].id, ns[1].id, sizeof ns[2].id); /* a duplicate id: refused alone */
	notice_make(&ns[3], 1, NULL, "d");
	ns[3].to = NULL; /* invalid */
	struct accept_result res[4];
	struct selo_err e;
	err_clear(&e);
	CHECK(store_notices_accept(s, ns, 4, res, &e) == 0);
	CHECK(!res[0].failed && !strcmp(res[0].status, "queued"));
	CHECK(!res[1].failed && !strcmp(res[1].status, "scheduled"));
	CHECK(res[2].failed && res[2].err.status == 409);
	CHECK(res[3].failed && res[3].err.status == 400);
	char sql[256], v[64];
	CHECK(q1i(url, "SELECT count(*) FROM notices") == 2);
	/* one submission_accepted each, the notice's times are the event's */
	CHECK(q1i(url, "SELECT count(*) FROM events WHERE type = 'submission_accepted'") == 2);
	CHECK(q1i(url, "SELECT count(*) FROM notices n JOIN events e ON e.notice_id = n.id"
		       " WHERE n.created_ms = e.time_ms AND n.updated_ms = e.time_ms") == 2);
	snprintf(sql, sizeof sql,
		 "SELECT next_attempt_ms = send_at_ms AND send_at_ms = %lld FROM notices"
		 " WHERE id = '%s'", (long long)ns[1].due_ms, ns[1].id);
	CHECK_STR(q1(url, sql, v, sizeof v), "t");
	snprintf(sql, sizeof sql, "SELECT next_attempt_ms = created_ms FROM notices WHERE id = '%s'",
		 ns[0].id);
	CHECK_STR(q1(url, sql, v, sizeof v), "t");
	/* the same key and request: the first notice again, nothing new */
	struct notice_new again;
	notice_make(&again, 1, "k1", "body1");
	struct accept_result r = accept1(s, &again);
	CHECK(!r.failed && r.replay && !strcmp(r.id, ns[0].id) && !strcmp(r.status, "queued"));
	json_decref(again.event_fields);
	/* the same key with another request: 422 */
	notice_make(&again, 1, "k1", "other");
	r = accept1(s, &again);
	CHECK(r.failed && r.err.status == 422 && !strcmp(r.err.type, "idempotency-key-reused"));
	json_decref(again.event_fields);
	/* fields that cannot be encoded: that notice alone is refused (422) */
	notice_make(&again, 1, NULL, "x");
	json_decref(again.event_fields);
	again.event_fields = json_pack("{s:s}", "type", "reserved");
	r = accept1(s, &again);
	CHECK(r.failed && r.err.status == 422);
	json_decref(again.event_fields);
	/* attachments are stored with the notice */
	notice_make(&again, 1, NULL, "att");
	struct attachment_in att[2] = {{"a.pdf", "application/pdf", (const uint8_t *)"%PDF", 4},
				       {"empty.txt", "text/plain", NULL, 0}};
	again.att = att;
	again.natt = 2;
	r = accept1(s, &again);
	CHECK(!r.failed);
	snprintf(sql, sizeof sql, "SELECT string_agg(filename || ':' || length(data), ',' ORDER BY"
		 " idx) FROM attachments WHERE notice_id = '%s'", again.id);
	CHECK_STR(q1(url, sql, v, sizeof v), "a.pdf:4,empty.txt:0");
	json_decref(again.event_fields);
	CHECK(q1i(url, "SELECT count(*) FROM notices") == 3);
	for (int i = 0; i < 4; i++)
		json_decref(ns[i].event_fields);
	store_close(s);
}

TEST(api_keys_and_key_active)
{
	T_PG_NEED();
	const char *url = fresh_db();
	struct store *s = url ? pgn_open(url, "a", 0) : NULL;
	CHECK(s != NULL);
	if (!s)
		return;
	uint8_t h1[32], h2[32];
	sha256("key1", 4, h1);
	sha256("key2", 4, h2);
	int64_t id1 = 0, id2 = 0;
	struct selo_err e;
	err_clear(&e);
	CHECK(store_apikey_add(s, "one", h1, "sk_1", &id1, &e) == 0 && id1 > 0);
	CHECK(store_apikey_add(s, "two", h2, "sk_2", &id2, &e) == 0 && id2 > id1);
	CHECK(store_apikey_add(s, "dup", h1, "sk_1", NULL, &e) == -1 && e.status == 409 &&
	      !strcmp(e.type, "apikey-exists"));
	CHECK(store_apikey_add(s, NULL, h1, "sk", NULL, &e) == -1 && e.status == 400);
	struct notice_new n;
	notice_make(&n, id1, NULL, "x");
	n.key_active = 1;
	struct accept_result r = accept1(s, &n);
	CHECK(!r.failed);
	json_decref(n.event_fields);
	CHECK(store_apikey_revoke(s, id1, &e) == 1);
	CHECK(store_apikey_revoke(s, id1, &e) == 0);
	CHECK(store_apikey_revoke(s, 999, &e) == 0);
	notice_make(&n, id1, NULL, "y");
	n.key_active = 1;
	r = accept1(s, &n);
	CHECK(r.failed && r.err.status == 401);
	json_decref(n.event_fields);
	CHECK(q1i(url, "SELECT count(*) FROM notices") == 1);
	store_close(s);
}

/* Claims of k notices: ids into seen (counting how often each came). */
struct claimer {
	struct store *s;
	char (*ids)[27];
	atomic_size_t *n;
	int failed;
};

static void *claim_loop(void *arg)
{
	struct claimer *c = arg;
	for (;;) {
		struct notice_rec *out = NULL;
		size_t n = 0;
		struct selo_err e;
		err_clear(&e);
		if (store_claim_due(c->s, clock_now_ms(), 7, &out, &n, &e) != 0) {
			fprintf(stderr, "  claim: %s\n", e.msg);
			c->failed = 1;
			return NULL;
		}
		if (n == 0)
			return NULL;
		for (size_t i = 0; i < n; i++)
			memcpy(c->ids[atomic_fetch_add(c->n, 1)], out[i].id, 27);
		notice_recs_free(out, n);
	}
}

static int cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

TEST(two_nodes_claim_disjoint_sets)
{
	T_PG_NEED();
	const char *url = fresh_db();
	struct store *a = url ? pgn_open(url, "node-a", 0) : NULL;
	struct store *b = url ? pgn_open(url, "node-b", 0) : NULL;
	CHECK(a && b);
	if (!a || !b)
		return;
	enum { K = 120 };
	accept_many(a, K / 2);
	accept_many(b, K / 2);
	static char ids[2 * K][27];
	atomic_size_t n = 0;
	struct claimer ca = {a, ids, &n, 0}, cb = {b, ids, &n, 0};
	pthread_t ta, tb;
	pthread_create(&ta, NULL, claim_loop, &ca);
	pthread_create(&tb, NULL, claim_loop, &cb);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	CHECK(!ca.failed && !cb.failed);
	CHECK(atomic_load(&n) == K);
	qsort(ids, atomic_load(&n), 27, cmp_id);
	int dup = 0;
	for (size_t i = 1; i < atomic_load(&n); i++)
		dup += !strcmp(ids[i], ids[i - 1]);
	CHECK(dup == 0);
	CHECK(q1i(url, "SELECT count(*) FROM notices WHERE status = 'sending' AND claimed_by IN"
		       " ('node-a', 'node-b') AND lease_until > 0") == K);
	store_close(a);
	store_close(b);
}

TEST(claims_take_what_is_due_oldest_first)
{
	T_PG_NEED();
	const char *url = fresh_db();
	struct store *s = url ? pgn_open(url, "a", 0) : NULL;
	CHECK(s != NULL);
	if (!s)
		return;
	struct notice_new ns[4];
	for (int i = 0; i < 4; i++) {
		notice_make(&ns[i], 1, NULL, "x");
		CHECK(!accept1(s, &ns[i]).failed);
	}
	char sql[256];
	int64_t later = clock_now_ms() + 3600000;
	snprintf(sql, sizeof sql, "UPDATE notices SET status = 'deferred', next_attempt_ms = %lld"
		 " WHERE id = '%s'", (long long)later, ns[0].id);
	CHECK(t_pg_sql_url(url, sql) == 0);
	snprintf(sql, sizeof sql, "UPDATE notices SET status = 'deferred', next_attempt_ms = 1"
		 " WHERE id = '%s'", ns[1].id);
	CHECK(t_pg_sql_url(url, sql) == 0);
	snprintf(sql, sizeof sql, "UPDATE notices SET status = 'scheduled', next_attempt_ms = 2"
		 " WHERE id = '%s'", ns[2].id);
	CHECK(t_pg_sql_url(url, sql) == 0);
	struct notice_rec *out = NULL;
	size_t n = 0;
	struct selo_err e;
	err_clear(&e);
	CHECK(store_claim_due(s, clock_now_ms(), 1, &out, &n, &e) == 0 && n == 1);
	CHECK(n == 1 && !strcmp(out[0].id, ns[1].id) && out[0].next_attempt_ms == 1);
	notice_recs_free(out, n);
	CHECK(store_claim_due(s, clock_now_ms(), 10, &out, &n, &e) == 0 && n == 2);
	if (n == 2) {
		CHECK(!strcmp(out[0].id, ns[2].id) && !strcmp(out[1].id, ns[3].id));
		CHECK(!strcmp(out[1].status, "sending") && out[1].apikey_id == 1);
		CHECK(out[1].to && !strcmp(out[1].to, "devedor@example.com"));
		CHECK(!memcmp(out[1].salt, ns[3].salt, 32));
		CHECK(out[1].payload_json && out[1].template_name && !out[1].reference);
	}
	notice_recs_free(out, n);
	/* the deferred one's time has not come */
	CHECK(store_claim_due(s, clock_now_ms(), 10, &out, &n, &e) == 0 && n == 0);
	notice_recs_free(out, n);
	CHECK(store_claim_due(s, later, 10, &out, &n, &e) == 0 && n == 1);
	notice_recs_free(out, n);
	for (int i = 0; i < 4; i++)
		json_decref(ns[i].event_fields);
	store_close(s);
}

TEST(lapsed_lease_is_taken_over_and_recovery_is_per_node)
{
	T_PG_NEED();
	const char *url = fresh_db();
	struct store *a = url ? pgn_open(url, "node-a", 300) : NULL;
	struct store *b = url ? pgn_open(url, "node-b", 60000) : NULL;
	CHECK(a && b);
	if (!a || !b)
		return;
	accept_many(a, 1);
	struct notice_rec *out = NULL;
	size_t n = 0;
	struct selo_err e;
	err_clear(&e);
	CHECK(store_claim_due(a, clock_now_ms(), 10, &out, &n, &e) == 0 && n == 1);
	char id[27];
	snprintf(id, sizeof id, "%s", n ? out[0].id : "");
	notice_recs_free(out, n);
	/* sealed by a: the Message-ID stays whoever sends it next */
	struct seal_rec sr = {.id = id, .eml = "Subject: x\r\n\r\nbody", .len = 17,
			      .sha256 = "ab", .message_id = "<m1@selo>"};
	sr.event_fields = json_pack("{s:s}", "sha256", "ab");
	long long before = q1i(url, "SELECT lease_until FROM notices");
	CHECK(store_notices_sealed(a, &sr, 1, &e) == 0);
	/* sealing renewed a's lease */
	CHECK(q1i(url, "SELECT lease_until FROM notices") >= before);
	/* b cannot take it while a's lease holds... */
	CHECK(store_claim_due(b, clock_now_ms(), 10, &out, &n, &e) == 0 && n == 0);
	notice_recs_free(out, n);
	/* ...and takes it once the lease has run out (a "died") */
	int64_t until = clock_mono_ms() + 5000;
	n = 0;
	while (n == 0 && clock_mono_ms() < until) {
		CHECK(store_claim_due(b, clock_now_ms(), 10, &out, &n, &e) == 0);
		if (n == 0) {
			notice_recs_free(out, n);
			struct timespec ts = {0, 20 * 1000000};
			nanosleep(&ts, NULL);
		}
	}
	CHECK(n == 1);
	if (n == 1) {
		CHECK(!strcmp(out[0].id, id));
		CHECK(out[0].message_id && !strcmp(out[0].message_id, "<m1@selo>"));
		CHECK(!strcmp(out[0].status, "sending"));
	}
	notice_recs_free(out, n);
	char v[64];
	CHECK_STR(q1(url, "SELECT claimed_by FROM notices", v, sizeof v), "node-b");
	/* a sealing again (a late resend) keeps the first message: one content_sealed */
	sr.message_id = "<m2@selo>";
	CHECK(store_notices_sealed(a, &sr, 1, &e) == 0);
	CHECK(q1i(url, "SELECT count(*) FROM events WHERE type = 'content_sealed'") == 1);
	CHECK_STR(q1(url, "SELECT message_id FROM notices", v, sizeof v), "<m1@selo>");
	json_decref(sr.event_fields);
	/* a restarting "node-a" recovers only its own claims: b's stays b's */
	accept_many(a, 1);
	CHECK(store_claim_due(a, clock_now_ms(), 10, &out, &n, &e) == 0 && n == 1);
	notice_recs_free(out, n);
	CHECK(q1i(url, "SELECT count(*) FROM notices WHERE status = 'sending'") == 2);
	CHECK(store_recover_inflight(a, &e) == 1);
	CHECK(q1i(url, "SELECT count(*) FROM notices WHERE status = 'sending'"
		       " AND claimed_by = 'node-b'") == 1);
	CHECK(q1i(url, "SELECT count(*) FROM notices WHERE status = 'queued'"
		       " AND claimed_by IS NULL AND lease_until = 0") == 1);
	CHECK(store_recover_inflight(a, &e) == 0);
	CHECK(store_recover_inflight(b, &e) == 1);
	store_close(a);
	store_close(b);
}

static json_t *fields_rejected(void)
{
	return json_pack("{s:s,s:i,s:s}", "reason", "rejected", "code", 550, "enhanced", "5.1.1");
}

TEST(results_outcome_once_and_hard_bounce_suppresses)
{
	T_PG_NEED();
	const char *url = fresh_db();
	struct store *s = url ? pgn_open(url, "a", 0) : NULL;
	CHECK(s != NULL);
	if (!s)
		return;
	accept_many(s, 2);
	struct notice_rec *out = NULL;
	size_t n = 0;
	struct selo_err e;
	err_clear(&e);
	CHECK(store_claim_due(s, clock_now_ms(), 10, &out, &n, &e) == 0 && n == 2);
	if (n != 2)
		return;
	json_t *ok = json_pack("{s:i}", "attempt", 1);
	json_t *bad = fields_rejected();
	struct result_rec rr[2] = {
		{out[0].id, EV_DELIVERY_ACCEPTED, ok, "delivered", 0, NULL, NULL},
		{out[1].id, EV_DELIVERY_FAILED, bad, "failed", 0, "550 5.1.1 no such user", NULL},
	};
	CHECK(store_delivery_results(s, rr, 2, &e) == 0);
	CHECK(q1i(url, "SELECT count(*) FROM notices WHERE claimed_by IS NULL AND attempts = 1")
	      == 2);
	CHECK(q1i(url, "SELECT count(*) FROM suppressions WHERE address_key ="
		       " 'devedor@example.com' AND enhanced = '5.1.1'") == 1);
	/* a second outcome is not recorded (a warning), the call goes on */
	CHECK(store_delivery_results(s, rr, 1, &e) == 0);
	CHECK(q1i(url, "SELECT count(*) FROM events WHERE type = 'delivery_accepted'") == 1);
	/* unknown notice 404, bad state 400: nothing of the call stays */
	struct result_rec bogus = {"01ARZ3NDEKTSV4RRFFQ69G5FAV", EV_DELIVERY_ACCEPTED, ok,
				   "delivered", 0, NULL, NULL};
	CHECK(store_delivery_results(s, &bogus, 1, &e) == -1 && e.status == 404);
	bogus.id = out[0].id;
	bogus.state = "lost";
	CHECK(store_delivery_results(s, &bogus, 1, &e) == -1 && e.status == 400);
	/* the address is suppressed for key 1: 422, and for key 2 not */
	struct notice_new nn;
	notice_make(&nn, 1, NULL, "z");
	nn.to = "Devedor@EXAMPLE.com";
	struct accept_result r = accept1(s, &nn);
	CHECK(r.failed && r.err.status == 422 && !strcmp(r.err.type, "suppressed"));
	nn.apikey_id = 2;
	r = accept1(s, &nn);
	CHECK(!r.failed);
	json_decref(nn.event_fields);
	CHECK(store_suppression_delete(s, 1, "devedor@example.COM", &e) == 1);
	CHECK(store_suppression_delete(s, 1, "devedor@example.com", &e) == 0);
	notice_make(&nn, 1, NULL, "z2");
	r = accept1(s, &nn);
	CHECK(!r.failed);
	json_decref(nn.event_fields);
	json_decref(ok);
	json_decref(bad);
	notice_recs_free(out, n);
	store_close(s);
}

TEST(events_add_and_bounces)
{
	T_PG_NEED();
	const char *url = fresh_db();
	struct store *s = url ? pgn_open(url, "a", 0) : NULL;
	CHECK(s != NULL);
	if (!s)
		return;
	struct notice_new nn;
	notice_make(&nn, 1, NULL, "x");
	CHECK(!accept1(s, &nn).failed);
	json_decref(nn.event_fields);
	struct buf ft = BUF_INIT;
	CHECK(event_field_str(&ft, "class", "human") == 0);
	CHECK(event_field_int(&ft, "n", 3) == 0);
	json_t *f = json_pack("{s:s}", "link", "1");
	struct event_new ev[2] = {
		{.notice_id = nn.id, .type = EV_OPENED, .fields_text = ft.data, .fields_len = ft.len},
		{.notice_id = nn.id, .type = EV_CLICKED, .fields = f},
	};
	struct selo_err e;
	err_clear(&e);
	CHECK(store_events_add(s, ev, 2, &e) == 0);
	char sql[256], v[256];
	snprintf(sql, sizeof sql, "SELECT convert_from(entry, 'UTF8') FROM events WHERE type ="
		 " 'opened'");
	q1(url, sql, v, sizeof v);
	CHECK(strstr(v, "\"class\":\"human\",\"n\":3}") != NULL);
	/* the same bytes SQLite writes from the text (event_entry_encode_text) */
	struct buf want = BUF_INIT;
	long long t = q1i(url, "SELECT time_ms FROM events WHERE type = 'opened'");
	CHECK(event_entry_encode_text(&want, EV_OPENED, nn.id, t, ft.data, ft.len) == 0);
	buf_putc(&want, '\0');
	CHECK_STR(v, want.data);
	buf_free(&want);
	struct event_new unknown = {.notice_id = "01ARZ3NDEKTSV4RRFFQ69G5FAV", .type = EV_OPENED};
	CHECK(store_events_add(s, &unknown, 1, &e) == -1 && e.status == 404);
	CHECK(q1i(url, "SELECT count(*) FROM events") == 3);
	/* a bounce after the hand-over */
	json_t *bf = json_pack("{s:s,s:s}", "reason", "bounced", "status", "5.1.1");
	CHECK(store_notice_bounced(s, nn.id, bf, NULL, "bounced: 5.1.1", &e) == 0);
	CHECK(store_notice_bounced(s, nn.id, bf, NULL, "bounced: 5.1.1", &e) == 1);
	CHECK(store_notice_bounced(s, "01ARZ3NDEKTSV4RRFFQ69G5FAV", bf, NULL, "x", &e) == -1 &&
	      e.status == 404);
	CHECK(store_notice_bounced(s, nn.id, f, NULL, "x", &e) == -1 && e.status == 400);
	snprintf(sql, sizeof sql, "SELECT status || ' ' || last_error FROM notices WHERE id = '%s'",
		 nn.id);
	CHECK_STR(q1(url, sql, v, sizeof v), "failed bounced: 5.1.1");
	CHECK(q1i(url, "SELECT count(*) FROM suppressions") == 1);
	/* a notice being sent: 409 */
	struct notice_new n2;
	notice_make(&n2, 2, NULL, "y");
	CHECK(!accept1(s, &n2).failed);
	struct notice_rec *out = NULL;
	size_t n = 0;
	CHECK(store_claim_due(s, clock_now_ms(), 10, &out, &n, &e) == 0 && n == 1);
	notice_recs_free(out, n);
	CHECK(store_notice_bounced(s, n2.id, bf, NULL, "x", &e) == -1 && e.status == 409);
	json_decref(n2.event_fields);
	json_decref(bf);
	json_decref(f);
	buf_free(&ft);
	store_close(s);
}

TEST(cancels_and_sequences)
{
	T_PG_NEED();
	const char *url = fresh_db();
	struct store *s = url ? pgn_open(url, "a", 0) : NULL;
	CHECK(s != NULL);
	if (!s)
		return;
	struct notice_new nn;
	notice_make(&nn, 1, NULL, "x");
	nn.due_ms = clock_now_ms() + 3600000;
	CHECK(!accept1(s, &nn).failed);
	json_decref(nn.event_fields);
	struct selo_err e;
	err_clear(&e);
	CHECK(store_notice_cancel(s, nn.id, 2, "paid", &e) == -1 && e.status == 404);
	CHECK(store_notice_cancel(s, nn.id, 1, "paid", &e) == 0);
	CHECK(store_notice_cancel(s, nn.id, -1, "paid", &e) == 1);
	CHECK(q1i(url, "SELECT count(*) FROM events WHERE type = 'canceled'") == 1);
	/* claimed: 409 */
	struct notice_new n2;
	notice_make(&n2, 1, NULL, "y");
	CHECK(!accept1(s, &n2).failed);
	json_decref(n2.event_fields);
	struct notice_rec *out = NULL;
	size_t n = 0;
	CHECK(store_claim_due(s, clock_now_ms(), 10, &out, &n, &e) == 0 && n == 1);
	notice_recs_free(out, n);
	CHECK(store_notice_cancel(s, n2.id, 1, "paid", &e) == -1 && e.status == 409 &&
	      !strcmp(e.type, "already-sent"));
	/* a sequence of two scheduled steps */
	struct notice_new steps[2];
	int64_t later = clock_now_ms() + 3600000;
	for (int i = 0; i < 2; i++) {
		notice_make(&steps[i], 1, NULL, "s");
		steps[i].to = "outro@example.com";
		steps[i].due_ms = later + i * 1000;
		steps[i].sequence_id = "seq_1";
		steps[i].step = i;
	}
	struct sequence_new q = {.id = "seq_1", .apikey_id = 1, .request_json = "{}",
				 .idempotency_key = "sk", .steps = steps, .n = 2};
	sha256("req", 3, q.request_sha256);
	char replay[32] = "";
	CHECK(store_sequence_add(s, &q, replay, &e) == 0);
	CHECK(q1i(url, "SELECT count(*) FROM notices WHERE sequence_id = 'seq_1' AND status ="
		       " 'scheduled'") == 2);
	q.id = "seq_2";
	CHECK(store_sequence_add(s, &q, replay, &e) == 1 && !strcmp(replay, "seq_1"));
	sha256("other", 5, q.request_sha256);
	CHECK(store_sequence_add(s, &q, replay, &e) == -1 && e.status == 422);
	int64_t canceled = -1;
	CHECK(store_sequence_stop(s, "seq_1", 2, "paid", &canceled, &e) == -1 && e.status == 404);
	CHECK(store_sequence_stop(s, "seq_1", 1, "paid", &canceled, &e) == 0 && canceled == 2);
	CHECK(store_sequence_stop(s, "seq_1", 1, "paid", &canceled, &e) == 1 && canceled == 0);
	CHECK(q1i(url, "SELECT count(*) FROM events WHERE type = 'canceled' AND"
		       " convert_from(entry, 'UTF8') LIKE '%\"by\":\"sequence\",\"sequence\":\"seq_1\"%'")
	      == 2);
	/* a hard bounce of a step stops its sequence and cancels the rest */
	for (int i = 0; i < 2; i++) {
		json_decref(steps[i].event_fields);
		notice_make(&steps[i], 1, NULL, "s");
		steps[i].to = "terceiro@example.com";
		steps[i].due_ms = later + i * 1000;
		steps[i].sequence_id = "seq_3";
		steps[i].step = i;
	}
	struct sequence_new q3 = {.id = "seq_3", .apikey_id = 1, .request_json = "{}",
				  .steps = steps, .n = 2};
	CHECK(store_sequence_add(s, &q3, replay, &e) == 0);
	json_t *bad = fields_rejected();
	struct result_rec rr = {steps[0].id, EV_DELIVERY_FAILED, bad, "failed", 0, "550", NULL};
	CHECK(store_delivery_results(s, &rr, 1, &e) == 0);
	char v[64];
	CHECK_STR(q1(url, "SELECT status || ' ' || reason FROM sequences WHERE id = 'seq_3'", v,
		     sizeof v), "stopped hard_bounce");
	char sql[160];
	snprintf(sql, sizeof sql, "SELECT status FROM notices WHERE id = '%s'", steps[1].id);
	CHECK_STR(q1(url, sql, v, sizeof v), "canceled");
	/* the recipient is suppressed now: a new sequence to it is refused */
	struct sequence_new q4 = {.id = "seq_4", .apikey_id = 1, .request_json = "{}",
				  .steps = steps, .n = 1};
	json_decref(steps[0].event_fields);
	notice_make(&steps[0], 1, NULL, "s");
	steps[0].to = "terceiro@example.com";
	steps[0].sequence_id = "seq_4";
	CHECK(store_sequence_add(s, &q4, replay, &e) == -1 && e.status == 422 &&
	      !strcmp(e.type, "suppressed"));
	CHECK(q1i(url, "SELECT count(*) FROM sequences WHERE id = 'seq_4'") == 0);
	json_decref(bad);
	for (int i = 0; i < 2; i++)
		json_decref(steps[i].event_fields);
	store_close(s);
}

struct acceptor {
	struct store *s;
	int k;
	int failed;
};

static void *accept_loop(void *arg)
{
	struct acceptor *a = arg;
	for (int i = 0; i < a->k; i++) {
		struct notice_new n;
		notice_make(&n, 1, NULL, "x");
		struct accept_result r = accept1(a->s, &n);
		if (r.failed) {
			fprintf(stderr, "  accept: %s\n", r.err.msg);
			a->failed = 1;
		}
		json_decref(n.event_fields);
	}
	return NULL;
}

/* Reads the events while accepts run: a reader must never see seq N+1
 * committed without N (count = max(seq) in every snapshot). */
struct watcher {
	const char *url;
	atomic_int stop;
	int reads, gaps;
};

static void *watch_loop(void *arg)
{
	struct watcher *w = arg;
	PGconn *c = PQconnectdb(w->url);
	while (!atomic_load(&w->stop) && PQstatus(c) == CONNECTION_OK) {
		PGresult *r = PQexec(c, "SELECT count(*) = coalesce(max(seq), 0) FROM events");
		if (PQresultStatus(r) == PGRES_TUPLES_OK) {
			w->reads++;
			w->gaps += strcmp(PQgetvalue(r, 0, 0), "t") != 0;
		}
		PQclear(r);
	}
	PQfinish(c);
	return NULL;
}

TEST(concurrent_accepts_get_seq_in_commit_order)
{
	T_PG_NEED();
	const char *url = fresh_db();
	struct store *a = url ? pgn_open(url, "node-a", 0) : NULL;
	struct store *b = url ? pgn_open(url, "node-b", 0) : NULL;
	CHECK(a && b);
	if (!a || !b)
		return;
	enum { T = 4, K = 40 };
	struct acceptor ac[T];
	pthread_t th[T], wt;
	struct watcher w = {.url = url};
	pthread_create(&wt, NULL, watch_loop, &w);
	for (int i = 0; i < T; i++) {
		ac[i] = (struct acceptor){i % 2 ? b : a, K, 0};
		pthread_create(&th[i], NULL, accept_loop, &ac[i]);
	}
	for (int i = 0; i < T; i++) {
		pthread_join(th[i], NULL);
		CHECK(!ac[i].failed);
	}
	atomic_store(&w.stop, 1);
	pthread_join(wt, NULL);
	CHECK(w.reads > 0);
	CHECK(w.gaps == 0);
	/* seq 1..N without a gap, and time never going back along seq */
	CHECK(q1i(url, "SELECT count(*) FROM events") == T * K);
	CHECK(q1i(url, "SELECT max(seq) FROM events") == T * K);
	CHECK(q1i(url, "SELECT count(*) FROM (SELECT time_ms < lag(time_ms) OVER (ORDER BY seq)"
		       " AS back FROM events) x WHERE back") == 0);
	CHECK(q1i(url, "SELECT count(*) FROM notices n JOIN events e ON e.notice_id = n.id"
		       " WHERE n.created_ms = e.time_ms") == T * K);
	store_close(a);
	store_close(b);
}

/* store_claims_renew: a node that renews its claims keeps them past
 * store.lease (a long SMTP session); once it stops renewing, the other
 * node takes the work over. The store asks to be renewed every lease/3. */
TEST(renewed_claims_hold_past_the_lease)
{
	T_PG_NEED();
	const char *url = fresh_db();
	struct store *a = url ? pgn_open(url, "node-a", 300) : NULL;
	struct store *b = url ? pgn_open(url, "node-b", 60000) : NULL;
	CHECK(a && b);
	if (!a || !b)
		return;
	accept_many(a, 1);
	struct notice_rec *out = NULL;
	size_t n = 0;
	struct selo_err e;
	err_clear(&e);
	CHECK(store_claim_due(a, clock_now_ms(), 10, &out, &n, &e) == 0 && n == 1);
	notice_recs_free(out, n);
	int64_t next = 0, end = clock_mono_ms() + 1200; /* four leases */
	int taken = 0;
	while (clock_mono_ms() < end) {
		CHECK(store_claims_renew(a, &next, &e) == 0);
		CHECK(next == 100);
		CHECK(store_claim_due(b, clock_now_ms(), 10, &out, &n, &e) == 0);
		taken += (int)n;
		notice_recs_free(out, n);
		struct timespec ts = {0, 50 * 1000000};
		nanosleep(&ts, NULL);
	}
	CHECK(taken == 0);
	/* a stops renewing ("dies"): b gets it within a lease or so */
	end = clock_mono_ms() + 5000;
	while (!taken && clock_mono_ms() < end) {
		CHECK(store_claim_due(b, clock_now_ms(), 10, &out, &n, &e) == 0);
		taken += (int)n;
		notice_recs_free(out, n);
		struct timespec ts = {0, 20 * 1000000};
		nanosleep(&ts, NULL);
	}
	CHECK(taken == 1);
	store_close(a);
	store_close(b);
}
