/* test_pg_read.c: the PostgreSQL backend's reads (store_pg_read.c) on rows
 * written with plain SQL on a connection of the test's own (t_pg.h), so
 * that they are tested apart from the backend's writes: each read's output
 * field by field, absent rows, other keys' rows, empty results, paging,
 * the log index of events, damage a notice row can still carry in typed
 * columns, and a database that is down (503). */
#include "t.h"
#include "t_pg.h"
#include "selo/store.h"

/* Notice ids (Crockford base32, 26 characters) of the fixture. */
#define N1 "01J00000000000000000000001"
#define N2 "01J00000000000000000000002"
#define N3 "01J00000000000000000000003"
#define N4 "01J0000000000000000000000Z" /* key 2's */
#define SALT "'\\x" "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'"
#define SHA "'" "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef'"

/* A fresh database with the schema (the store opened on it), and its name
 * for t_pg_sql. NULL when it could not be made. */
static struct store *open_db(char *db, size_t n)
{
	char url[640];
	if (t_pg_new_db(url, sizeof url) != 0)
		return NULL;
	const char *name = strstr(url, "dbname=t");
	snprintf(db, n, "%s", name ? name + 7 : "?");
	struct store *s = NULL;
	struct selo_err e;
	err_clear(&e);
	struct store_params p = {.backend = "postgres", .target = url, .node = "t-read",
				 .timeout_ms = 5000};
	if (store_open_backend(&p, &s, &e) != 0) {
		fprintf(stderr, "  open: %s\n", e.msg);
		return NULL;
	}
	return s;
}

static const char FIXTURE[] =
	"INSERT INTO apikeys(id, name, hash, prefix, created_ms, revoked_ms) VALUES"
	" (1, 'one', '\\x" "1111111111111111111111111111111111111111111111111111111111111111',"
	"  'sk_one', 100, 0),"
	" (2, 'two', '\\x" "2222222222222222222222222222222222222222222222222222222222222222',"
	"  'sk_two', 200, 0),"
	" (3, 'gone', '\\x" "3333333333333333333333333333333333333333333333333333333333333333',"
	"  'sk_gone', 300, 350);"
	"INSERT INTO notices(id, apikey_id, status, to_addr, template, reference, segment,"
	" tags_json, payload_json, salt, attempts, created_ms, updated_ms, next_attempt_ms,"
	" message_id, sha256, last_error, send_at_ms, sequence_id, step) VALUES"
	" ('" N1 "', 1, 'delivered', 'a@example.org', 'dunning', 'ref-1', 'retail',"
	"  '[\"x\"]', '{\"p\":1}', " SALT ", 1, 1000, 1100, 0, '<m1@x>', " SHA ", NULL, 1000,"
	"  NULL, 0),"
	" ('" N2 "', 1, 'scheduled', 'b@example.org', NULL, 'ref-2', NULL, NULL, '{}', " SALT ","
	"  0, 2000, 2000, 9000, NULL, NULL, NULL, 9000, 'seq_1', 1),"
	" ('" N3 "', 1, 'deferred', 'c@example.org', NULL, 'ref-1', NULL, NULL, '{}', " SALT ","
	"  2, 3000, 3100, 7000, NULL, NULL, 'busy', 3000, 'seq_1', 0),"
	" ('" N4 "', 2, 'queued', 'd@example.org', NULL, 'ref-1', NULL, NULL, '{}', " SALT ","
	"  0, 4000, 4000, 4000, NULL, NULL, NULL, 4000, NULL, 0);"
	"INSERT INTO events(seq, notice_id, type, time_ms, entry) VALUES"
	" (1, '" N1 "', 'submission_accepted', 1000, '\\x7b2261223a317d'),"
	" (2, '" N1 "', 'content_sealed', 1010, '\\x7b2262223a327d'),"
	" (3, '" N3 "', 'submission_accepted', 3000, '\\x7b7d'),"
	" (4, '" N1 "', 'relay_accepted', 1020, '\\x7b7d'),"
	" (5, '" N1 "', 'delivery_accepted', 1030, '\\x7b7d'),"
	" (6, '" N1 "', 'opened', 1040, '\\x7b7d'),"
	" (7, '" N1 "', 'read_confirmed', 1050, '\\x7b2272223a317d'),"
	" (8, '" N1 "', 'read_confirmed', 1060, '\\x7b2272223a327d');"
	/* the event clock as pg_event_add would have left it */
	"UPDATE event_clock SET seq = 8, time_ms = 1060;"
	/* seq 1..3 are log indexes 0..2, seq 4 index 3; 5.. not integrated */
	"INSERT INTO log_ranges(first_index, first_seq, n) VALUES (0, 1, 3), (3, 4, 1);"
	"INSERT INTO attachments(notice_id, idx, filename, content_type, data) VALUES"
	" ('" N1 "', 1, 'b.pdf', 'application/pdf', '\\x00ff00'),"
	" ('" N1 "', 0, 'a.txt', 'text/plain', '\\x6869');"
	"INSERT INTO messages(notice_id, eml, sha256, created_ms) VALUES"
	" ('" N1 "', '\\x5375626a6563743a2078000d0a', " SHA ", 1010);"
	"INSERT INTO disclosures(notice_id, commitment, value) VALUES"
	" ('" N1 "', 'sha256:bb', '\\x7a7a'), ('" N1 "', 'sha256:aa', '\\x6161');"
	"INSERT INTO tokens(token, notice_id, kind, link, url) VALUES"
	" ('tok-open', '" N1 "', 'open', 0, NULL),"
	" ('tok-click', '" N1 "', 'click', 2, 'https://example.org/pay');"
	"INSERT INTO sequences(id, apikey_id, status, reason, request_json, created_ms,"
	" stopped_ms) VALUES ('seq_1', 1, 'active', NULL, '{\"steps\":2}', 1500, 0),"
	" ('seq_2', 2, 'stopped', 'paid', '{}', 1600, 1700);"
	"INSERT INTO suppressions(id, apikey_id, address, address_key, enhanced, reason,"
	" notice_id, created_ms) VALUES"
	" (10, 1, 'x@Example.org', 'x@example.org', '5.1.1', 'no such user', '" N1 "', 10),"
	" (11, 1, 'y@example.org', 'y@example.org', '5.1.1', 'gone', '" N2 "', 11),"
	" (12, 2, 'z@example.org', 'z@example.org', '5.2.1', 'disabled', '" N4 "', 12),"
	" (13, 1, 'w@example.org', 'w@example.org', '5.1.10', 'null mx', '" N3 "', 13);";

static struct store *open_fixture(char *db, size_t n)
{
	struct store *s = open_db(db, n);
	if (s && t_pg_sql(db, FIXTURE) != 0) {
		store_close(s);
		return NULL;
	}
	return s;
}

static void hash_of(uint8_t h[32], uint8_t b)
{
	memset(h, b, 32);
}

TEST(apikey_find_and_list)
{
	T_PG_NEED();
	char db[32];
	struct store *s = open_fixture(db, sizeof db);
	CHECK(s != NULL);
	if (!s)
		return;
	struct selo_err e;
	struct apikey k;
	uint8_t h[32];
	hash_of(h, 0x22);
	CHECK(store_apikey_find(s, h, &k, &e) == 1);
	CHECK(k.id == 2 && k.created_ms == 200 && k.revoked_ms == 0);
	CHECK_STR(k.name, "two");
	CHECK_STR(k.prefix, "sk_two");
	hash_of(h, 0x33); /* revoked */
	CHECK(store_apikey_find(s, h, &k, &e) == 0);
	hash_of(h, 0x44); /* unknown */
	CHECK(store_apikey_find(s, h, &k, &e) == 0);
	struct apikey *v = NULL;
	size_t n = 0;
	CHECK(store_apikey_list(s, &v, &n, &e) == 0);
	CHECK(n == 3);
	if (n == 3) {
		CHECK(v[0].id == 1 && v[1].id == 2 && v[2].id == 3);
		CHECK_STR(v[2].name, "gone");
		CHECK(v[2].revoked_ms == 350);
	}
	free(v);
	store_close(s);
}

static const uint8_t SALT_BYTES[32] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10,
				       11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
				       22, 23, 24, 25, 26, 27, 28, 29, 30, 31};

TEST(notice_get_reads_every_field_and_scopes_by_key)
{
	T_PG_NEED();
	char db[32];
	struct store *s = open_fixture(db, sizeof db);
	CHECK(s != NULL);
	if (!s)
		return;
	struct selo_err e;
	struct notice_rec r;
	CHECK(store_notice_get(s, N1, 1, &r, &e) == 1);
	CHECK_STR(r.id, N1);
	CHECK(r.apikey_id == 1);
	CHECK_STR(r.status, "delivered");
	CHECK_STR(r.to, "a@example.org");
	CHECK_STR(r.template_name, "dunning");
	CHECK_STR(r.reference, "ref-1");
	CHECK_STR(r.segment, "retail");
	CHECK_STR(r.tags_json, "[\"x\"]");
	CHECK_STR(r.payload_json, "{\"p\":1}");
	CHECK(memcmp(r.salt, SALT_BYTES, 32) == 0);
	CHECK(r.attempts == 1 && r.created_ms == 1000 && r.updated_ms == 1100);
	CHECK(r.next_attempt_ms == 0 && r.send_at_ms == 1000 && r.step == 0);
	CHECK_STR(r.message_id, "<m1@x>");
	CHECK_STR(r.sha256, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	CHECK(r.last_error == NULL && r.sequence_id == NULL && r.damage == NULL);
	notice_rec_free(&r);
	/* NULLs stay NULL, sha256 "" before sealing */
	CHECK(store_notice_get(s, N3, -1, &r, &e) == 1);
	CHECK(r.template_name == NULL && r.segment == NULL && r.tags_json == NULL);
	CHECK(r.message_id == NULL);
	CHECK_STR(r.sha256, "");
	CHECK_STR(r.last_error, "busy");
	CHECK_STR(r.sequence_id, "seq_1");
	notice_rec_free(&r);
	/* another key's notice is not found; any key (-1) finds it */
	CHECK(store_notice_get(s, N4, 1, &r, &e) == 0);
	CHECK(store_notice_get(s, N4, -1, &r, &e) == 1);
	CHECK(r.apikey_id == 2);
	notice_rec_free(&r);
	CHECK(store_notice_get(s, "01J00000000000000000000009", -1, &r, &e) == 0);
	CHECK(store_notice_get(s, NULL, -1, &r, &e) == 0);
	store_close(s);
}

static int list(struct store *s, int64_t key, const char *ref, const char *status,
		const char *after, int limit, char *ids, size_t cap)
{
	struct notice_filter f = {key, ref, status, after, limit};
	struct notice_rec *v = NULL;
	size_t n = 0;
	struct selo_err e;
	ids[0] = '\0';
	if (store_notice_list(s, &f, &v, &n, &e) != 0)
		return -1;
	for (size_t i = 0; i < n; i++) /* the ids' last characters */
		snprintf(ids + strlen(ids), cap - strlen(ids), "%c", v[i].id[25]);
	notice_recs_free(v, n);
	return (int)n;
}

TEST(notice_list_filters_order_and_pages)
{
	T_PG_NEED();
	char db[32], ids[64];
	struct store *s = open_fixture(db, sizeof db);
	CHECK(s != NULL);
	if (!s)
		return;
	CHECK(list(s, -1, NULL, NULL, NULL, 100, ids, sizeof ids) == 4);
	CHECK_STR(ids, "123Z");
	CHECK(list(s, 1, NULL, NULL, NULL, 100, ids, sizeof ids) == 3);
	CHECK_STR(ids, "123");
	CHECK(list(s, -1, "ref-1", NULL, NULL, 100, ids, sizeof ids) == 3);
	CHECK_STR(ids, "13Z");
	CHECK(list(s, 1, "ref-1", NULL, NULL, 100, ids, sizeof ids) == 2);
	CHECK_STR(ids, "13");
	CHECK(list(s, -1, NULL, "queued", NULL, 100, ids, sizeof ids) == 1);
	CHECK_STR(ids, "Z");
	CHECK(list(s, 2, NULL, "queued", NULL, 100, ids, sizeof ids) == 1);
	CHECK(list(s, 1, NULL, "queued", NULL, 100, ids, sizeof ids) == 0);
	CHECK(list(s, -1, "ref-1", "deferred", NULL, 100, ids, sizeof ids) == 1);
	CHECK_STR(ids, "3");
	CHECK(list(s, 1, "ref-1", "deferred", NULL, 100, ids, sizeof ids) == 1);
	CHECK(list(s, 2, "ref-1", "deferred", NULL, 100, ids, sizeof ids) == 0);
	CHECK(list(s, -1, "nope", NULL, NULL, 100, ids, sizeof ids) == 0);
	/* paging: after is exclusive; the limit is clamped to 1..1000 */
	CHECK(list(s, -1, NULL, NULL, NULL, 2, ids, sizeof ids) == 2);
	CHECK_STR(ids, "12");
	CHECK(list(s, -1, NULL, NULL, N2, 2, ids, sizeof ids) == 2);
	CHECK_STR(ids, "3Z");
	CHECK(list(s, -1, NULL, NULL, N4, 2, ids, sizeof ids) == 0);
	CHECK(list(s, -1, NULL, NULL, NULL, 0, ids, sizeof ids) == 1);
	CHECK(list(s, -1, NULL, NULL, NULL, 5000, ids, sizeof ids) == 4);
	/* ids compare byte by byte whatever the locale: a lowercase "after"
	 * is above every (uppercase) id, as in SQLite */
	CHECK(list(s, -1, NULL, NULL, "01j00000000000000000000001", 10, ids, sizeof ids) == 0);
	CHECK(t_pg_sql(db, "DO $$BEGIN IF (SELECT collation_name FROM information_schema.columns"
		       " WHERE table_name = 'notices' AND column_name = 'id') <> 'C' THEN"
		       " RAISE 'notices.id is not collation C'; END IF; END$$") == 0);
	store_close(s);
}

TEST(events_with_log_index_first_confirmations_after)
{
	T_PG_NEED();
	char db[32];
	struct store *s = open_fixture(db, sizeof db);
	CHECK(s != NULL);
	if (!s)
		return;
	struct selo_err e;
	struct event_rec *v = NULL;
	size_t n = 0;
	CHECK(store_events_of(s, N1, &v, &n, &e) == 0);
	CHECK(n == 7);
	if (n == 7) {
		CHECK(v[0].seq == 1 && v[0].time_ms == 1000 && v[0].log_index == 0);
		CHECK_STR(v[0].type, "submission_accepted");
		CHECK_STR(v[0].notice_id, N1);
		CHECK(v[0].len == 7 && memcmp(v[0].entry, "{\"a\":1}", 8) == 0); /* NUL-ended */
		CHECK(v[1].seq == 2 && v[1].log_index == 1);
		CHECK(v[2].seq == 4 && v[2].log_index == 3);
		CHECK(v[3].seq == 5 && v[3].log_index == -1);
		CHECK(v[6].seq == 8 && v[6].log_index == -1);
	}
	event_recs_free(v, n);
	CHECK(store_events_of(s, N2, &v, &n, &e) == 0);
	CHECK(n == 0 && v == NULL);
	CHECK(store_events_of(s, NULL, &v, &n, &e) == 0 && n == 0);
	struct event_rec one;
	CHECK(store_event_first(s, N1, "read_confirmed", &one, &e) == 1);
	CHECK(one.seq == 7);
	CHECK_STR(one.entry, "{\"r\":1}");
	event_rec_free(&one);
	CHECK(store_event_first(s, N1, "clicked", &one, &e) == 0);
	CHECK(store_event_first(s, N3, "submission_accepted", &one, &e) == 1);
	CHECK(one.seq == 3 && one.log_index == 2);
	event_rec_free(&one);
	CHECK(store_confirmations_of(s, N1, &v, &n, &e) == 0);
	CHECK(n == 2 && v[0].seq == 7 && v[1].seq == 8);
	event_recs_free(v, n);
	CHECK(store_confirmations_of(s, N3, &v, &n, &e) == 0 && n == 0);
	CHECK(store_events_after(s, 0, 3, &v, &n, &e) == 0);
	CHECK(n == 3 && v[0].seq == 1 && v[2].seq == 3 && v[2].log_index == 2);
	CHECK_STR(v[2].notice_id, N3);
	event_recs_free(v, n);
	CHECK(store_events_after(s, 5, 100, &v, &n, &e) == 0);
	CHECK(n == 3 && v[0].seq == 6 && v[2].seq == 8);
	event_recs_free(v, n);
	CHECK(store_events_after(s, 8, 100, &v, &n, &e) == 0 && n == 0);
	CHECK(store_events_after(s, 0, 0, &v, &n, &e) == 0 && n == 0);
	/* an empty log_ranges: nothing integrated, every index -1 */
	CHECK(t_pg_sql(db, "DELETE FROM log_ranges") == 0);
	CHECK(store_events_after(s, 0, 1, &v, &n, &e) == 0);
	CHECK(n == 1 && v[0].log_index == -1);
	event_recs_free(v, n);
	store_close(s);
}

TEST(attachments_message_disclosures)
{
	T_PG_NEED();
	char db[32];
	struct store *s = open_fixture(db, sizeof db);
	CHECK(s != NULL);
	if (!s)
		return;
	struct selo_err e;
	struct attachment_rec *a = NULL;
	size_t n = 0;
	CHECK(store_attachments_of(s, N1, &a, &n, &e) == 0);
	CHECK(n == 2);
	if (n == 2) {
		CHECK_STR(a[0].filename, "a.txt");
		CHECK_STR(a[0].content_type, "text/plain");
		CHECK(a[0].len == 2 && memcmp(a[0].data, "hi", 2) == 0);
		CHECK_STR(a[1].filename, "b.pdf");
		CHECK(a[1].len == 3 && memcmp(a[1].data, "\0\xff\0", 3) == 0);
	}
	attachment_recs_free(a, n);
	CHECK(store_attachments_of(s, N2, &a, &n, &e) == 0 && n == 0 && a == NULL);
	struct buf eml = BUF_INIT;
	char sha[65];
	CHECK(store_message_get(s, N1, &eml, sha, &e) == 1);
	CHECK(eml.len == 13 && memcmp(eml.data, "Subject: x\0\r\n", 13) == 0);
	CHECK_STR(sha, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	buf_reset(&eml);
	CHECK(store_message_get(s, N2, &eml, sha, &e) == 0);
	CHECK(eml.len == 0 && sha[0] == '\0');
	buf_free(&eml);
	struct disclosures d = {0};
	CHECK(store_disclosures_of(s, N1, &d, &e) == 0);
	CHECK(d.n == 2);
	if (d.n == 2) { /* insertion order, not the commitments' */
		CHECK_STR(d.v[0].commitment, "sha256:bb");
		CHECK_STR(d.v[0].value, "zz");
		CHECK(d.v[0].len == 2);
		CHECK_STR(d.v[1].commitment, "sha256:aa");
	}
	/* appends to what the caller holds */
	CHECK(store_disclosures_of(s, N1, &d, &e) == 0);
	CHECK(d.n == 4);
	disclosures_free(&d);
	struct disclosures none = {0};
	CHECK(store_disclosures_of(s, N3, &none, &e) == 0 && none.n == 0);
	disclosures_free(&none);
	store_close(s);
}

TEST(next_due_counts_tokens_brief)
{
	T_PG_NEED();
	char db[32];
	struct store *s = open_db(db, sizeof db);
	CHECK(s != NULL);
	if (!s)
		return;
	struct selo_err e;
	struct store_counts k;
	/* empty database */
	CHECK(store_next_due(s) == 0);
	CHECK(store_counts(s, &k, &e) == 0);
	CHECK(k.queued == 0 && k.events == 0);
	CHECK(t_pg_sql(db, FIXTURE) == 0);
	CHECK(store_next_due(s) == 7000); /* deferred 7000, scheduled 9000 */
	CHECK(store_counts(s, &k, &e) == 0);
	CHECK(k.queued == 1 && k.delivered == 1 && k.deferred == 1 && k.scheduled == 1);
	CHECK(k.sending == 0 && k.relayed == 0 && k.failed == 0 && k.canceled == 0);
	CHECK(k.events == 8);
	struct token_info t;
	CHECK(store_token_lookup(s, "tok-click", &t, &e) == 1);
	CHECK_STR(t.notice_id, N1);
	CHECK_STR(t.kind, "click");
	CHECK(t.link == 2);
	CHECK_STR(t.url, "https://example.org/pay");
	free(t.url);
	CHECK(store_token_lookup(s, "tok-open", &t, &e) == 1);
	CHECK(t.url == NULL && t.link == 0);
	CHECK_STR(t.kind, "open");
	CHECK(store_token_lookup(s, "tok-none", &t, &e) == 0);
	uint8_t salt[32];
	int64_t acc = -1;
	CHECK(store_notice_brief(s, N1, salt, &acc, &e) == 1);
	CHECK(memcmp(salt, SALT_BYTES, 32) == 0);
	CHECK(acc == 1020); /* the first of relay_accepted, delivery_accepted */
	CHECK(store_notice_brief(s, N3, salt, &acc, &e) == 1);
	CHECK(acc == 0);
	CHECK(store_notice_brief(s, "01J00000000000000000000009", salt, &acc, &e) == 0);
	store_close(s);
}

TEST(sequence_get_with_steps_and_keys)
{
	T_PG_NEED();
	char db[32];
	struct store *s = open_fixture(db, sizeof db);
	CHECK(s != NULL);
	if (!s)
		return;
	struct selo_err e;
	struct sequence_rec q;
	CHECK(store_sequence_get(s, "seq_1", 1, &q, &e) == 1);
	CHECK_STR(q.id, "seq_1");
	CHECK(q.apikey_id == 1 && q.created_ms == 1500 && q.stopped_ms == 0);
	CHECK_STR(q.status, "active");
	CHECK(q.reason == NULL);
	CHECK_STR(q.request_json, "{\"steps\":2}");
	CHECK(q.nsteps == 2);
	if (q.nsteps == 2) { /* by step */
		CHECK_STR(q.steps[0].id, N3);
		CHECK(q.steps[0].step == 0);
		CHECK_STR(q.steps[1].id, N2);
		CHECK(q.steps[1].step == 1 && q.steps[1].next_attempt_ms == 9000);
	}
	sequence_rec_free(&q);
	CHECK(store_sequence_get(s, "seq_1", 2, &q, &e) == 0); /* another key's */
	CHECK(store_sequence_get(s, "seq_1", -1, &q, &e) == 1);
	sequence_rec_free(&q);
	CHECK(store_sequence_get(s, "seq_2", 2, &q, &e) == 1); /* no steps */
	CHECK(q.nsteps == 0 && q.steps == NULL && q.stopped_ms == 1700);
	CHECK_STR(q.reason, "paid");
	CHECK_STR(q.status, "stopped");
	sequence_rec_free(&q);
	CHECK(store_sequence_get(s, "seq_9", -1, &q, &e) == 0);
	store_close(s);
}

TEST(suppression_list_newest_first_paged_per_key)
{
	T_PG_NEED();
	char db[32];
	struct store *s = open_fixture(db, sizeof db);
	CHECK(s != NULL);
	if (!s)
		return;
	struct selo_err e;
	struct suppression_rec *v = NULL;
	size_t n = 0;
	CHECK(store_suppression_list(s, 1, 0, 10, &v, &n, &e) == 0);
	CHECK(n == 3);
	if (n == 3) {
		CHECK(v[0].id == 13 && v[1].id == 11 && v[2].id == 10);
		CHECK_STR(v[2].address, "x@Example.org");
		CHECK_STR(v[2].enhanced, "5.1.1");
		CHECK_STR(v[2].reason, "no such user");
		CHECK_STR(v[2].notice_id, N1);
		CHECK(v[2].created_ms == 10);
		CHECK_STR(v[0].enhanced, "5.1.10");
	}
	suppression_recs_free(v, n);
	CHECK(store_suppression_list(s, 1, 13, 1, &v, &n, &e) == 0);
	CHECK(n == 1 && v[0].id == 11);
	suppression_recs_free(v, n);
	CHECK(store_suppression_list(s, 1, 10, 10, &v, &n, &e) == 0 && n == 0);
	CHECK(store_suppression_list(s, 3, 0, 10, &v, &n, &e) == 0 && n == 0);
	CHECK(store_suppression_list(s, 1, 0, 0, &v, &n, &e) == -1);
	CHECK(e.status == 400);
	CHECK(store_suppression_list(s, 1, 0, 1001, &v, &n, &e) == -1);
	store_close(s);
}

TEST(damaged_rows_are_refused_and_scanned_with_damage)
{
	T_PG_NEED();
	char db[32];
	struct store *s = open_fixture(db, sizeof db);
	CHECK(s != NULL);
	if (!s)
		return;
	struct selo_err e;
	/* what typed columns still let through: a short salt, an id that is
	 * not one, a sha256 that is not hex */
	CHECK(t_pg_sql(db, "INSERT INTO notices(id, apikey_id, status, to_addr, payload_json, salt,"
		       " created_ms, updated_ms, next_attempt_ms) VALUES"
		       " ('01J00000000000000000000005', 1, 'queued', 'e@x', '{}', '\\x0102',"
		       "  5000, 5000, 5000),"
		       " ('not-an-id', 1, 'queued', 'f@x', '{}', " SALT ", 6000, 6000, 6000);"
		       "UPDATE notices SET sha256 = 'XYZ' WHERE id = '" N3 "'") == 0);
	struct notice_rec r;
	err_clear(&e);
	CHECK(store_notice_get(s, "01J00000000000000000000005", 1, &r, &e) == -1);
	CHECK(e.status == 500);
	CHECK_STR(e.type, "store-damaged");
	CHECK(strstr(e.msg, "01J00000000000000000000005") && strstr(e.msg, "salt"));
	CHECK(store_notice_get(s, N3, 1, &r, &e) == -1);
	CHECK(strstr(e.msg, "sha256") != NULL);
	struct notice_filter f = {1, NULL, NULL, NULL, 100};
	struct notice_rec *v = NULL;
	size_t n = 0;
	CHECK(store_notice_list(s, &f, &v, &n, &e) == -1);
	CHECK(n == 0 && v == NULL);
	struct sequence_rec q;
	CHECK(store_sequence_get(s, "seq_1", 1, &q, &e) == -1); /* its step N3 */
	CHECK_STR(e.type, "store-damaged");
	/* the scan returns every row in insertion order, damage marked */
	int64_t cursor = 0;
	char seen[16] = "";
	int damaged = 0;
	for (int pages = 0; pages < 10; pages++) {
		CHECK(store_notice_scan(s, &cursor, 2, &v, &n, &e) == 0);
		if (n == 0)
			break;
		CHECK(n <= 2);
		for (size_t i = 0; i < n; i++) {
			snprintf(seen + strlen(seen), sizeof seen - strlen(seen), "%c",
				 v[i].id[strlen(v[i].id) - 1]);
			damaged += v[i].damage != NULL;
		}
		if (n >= 1 && v[0].id[25] == '5')
			CHECK(strstr(v[0].damage, "salt") != NULL);
		notice_recs_free(v, n);
	}
	CHECK_STR(seen, "123Z5d");
	CHECK(damaged == 3);
	store_close(s);
}

TEST(a_database_that_is_down_is_503)
{
	T_PG_NEED();
	char db[32];
	struct store *s = open_fixture(db, sizeof db);
	CHECK(s != NULL);
	if (!s)
		return;
	struct selo_err e;
	t_pg_cmd("stop");
	struct notice_rec r;
	err_clear(&e);
	CHECK(store_notice_get(s, N1, 1, &r, &e) == -1);
	CHECK(e.status == 503);
	CHECK_STR(e.type, "store-unavailable");
	CHECK(strstr(e.msg, T_PG_PASSWORD) == NULL);
	struct event_rec *v = NULL;
	size_t n = 0;
	CHECK(store_events_after(s, 0, 10, &v, &n, &e) == -1 && n == 0 && v == NULL);
	CHECK(store_next_due(s) == 0);
	t_pg_restart(); /* stop, then start on the same socket */
	store_close(s);
}

/* ---- events_after with several nodes: writers on two stores (two nodes'
 * pools) add events while a reader follows "seq > cursor"; the reader
 * must see every seq once, in order, with no gap (docs/scale.md). */
#include <pthread.h>
#include <time.h>
#include "../../src/store_pg_int.h"

#define W_TXNS 40
#define W_THREADS 4

struct writer {
	struct store *s;
	int failed;
};

static int add_two_events(struct pgconn *c, void *arg, int64_t deadline, enum pg_fail *fail,
			  struct selo_err *err)
{
	(void)arg;
	json_t *f = json_pack("{s:i}", "k", 1);
	int rc = pg_event_add(c, N1, "opened", f, NULL, deadline, NULL, fail, err);
	/* hold the transaction open a little: a late commit */
	struct timespec ts = {0, (long)(rand() % 3) * 1000000L};
	nanosleep(&ts, NULL);
	if (rc == 0)
		rc = pg_event_add(c, N1, "clicked", f, NULL, deadline, NULL, fail, err);
	json_decref(f);
	return rc == 0 ? 0 : -1;
}

static void *writer_run(void *arg)
{
	struct writer *w = arg;
	for (int i = 0; i < W_TXNS; i++) {
		struct selo_err e;
		enum pg_fail fail;
		err_clear(&e);
		if (pgstore_txn(pgstore_of(w->s), add_two_events, NULL, &fail, &e) != 0) {
			fprintf(stderr, "  writer: %s\n", e.msg);
			w->failed++;
		}
	}
	return NULL;
}

TEST(events_after_never_skips_with_two_nodes_writing)
{
	T_PG_NEED();
	char db[32], url[640];
	struct store *a = open_fixture(db, sizeof db);
	CHECK(a != NULL);
	if (!a)
		return;
	snprintf(url, sizeof url, "%s dbname=%s", t_pg_base, db);
	struct store *b = NULL;
	struct selo_err e;
	struct store_params p = {.backend = "postgres", .target = url, .node = "t-read-2",
				 .timeout_ms = 20000};
	CHECK(store_open_backend(&p, &b, &e) == 0);
	if (!b) {
		store_close(a);
		return;
	}
	pthread_t th[W_THREADS];
	struct writer w[W_THREADS];
	for (int i = 0; i < W_THREADS; i++) {
		w[i] = (struct writer){i % 2 ? b : a, 0};
		pthread_create(&th[i], NULL, writer_run, &w[i]);
	}
	const int64_t want = 8 + 2 * W_TXNS * W_THREADS;
	int64_t cursor = 0, gaps = 0;
	time_t end = time(NULL) + 60;
	while (cursor < want && time(NULL) < end) {
		struct event_rec *v = NULL;
		size_t n = 0;
		if (store_events_after(a, cursor, 7, &v, &n, &e) != 0) {
			fprintf(stderr, "  reader: %s\n", e.msg);
			break;
		}
		for (size_t i = 0; i < n; i++) {
			gaps += v[i].seq != cursor + 1;
			cursor = v[i].seq;
		}
		event_recs_free(v, n);
	}
	for (int i = 0; i < W_THREADS; i++) {
		pthread_join(th[i], NULL);
		CHECK(w[i].failed == 0);
	}
	CHECK(gaps == 0);
	CHECK(cursor == want);
	struct store_counts k;
	CHECK(store_counts(b, &k, &e) == 0 && k.events == want);
	store_close(b);
	store_close(a);
}
