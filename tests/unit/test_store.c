/* test_store.c: the store (store.h; SQLite, and PostgreSQL in
 * test_store_onpg.c) against a fresh database in a
 * temporary directory per test: migrations, API keys, accepting (batches,
 * idempotency, concurrency), claiming, sealing, delivery results, listing
 * and scoping, the exact bytes of events, damaged rows and files, the
 * health of writes, tracker hits and their folds. Prints
 * accepts/s with 8 threads. */
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "selo/auth.h"
#include "selo/clock.h"
#include "selo/crypto.h"
#include "selo/event.h"
#include "selo/id.h"
#include "selo/store.h"
#include "t.h"
#include "t_store.h"

/* A notice with fresh id and salt; the caller json_decref()s event_fields. */
static void notice_make(struct notice_new *n, int64_t key, const char *idem, const char *body,
			const char *ref)
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
	n->reference = ref;
	n->segment = "varejo";
	n->tags_json = "[\"a\"]";
	n->payload_json = "{\"template\":\"lembrete\"}";
	n->event_fields = json_pack("{s:s,s:s}", "to", "sha256:00", "template", "lembrete");
}

/* Accepts one notice; returns its result (failed set on any error). */
static struct accept_result accept1(struct store *s, int64_t key, const char *idem,
				    const char *body, const char *ref)
{
	struct notice_new n;
	notice_make(&n, key, idem, body, ref);
	struct accept_result r;
	memset(&r, 0, sizeof(r));
	struct selo_err e;
	err_clear(&e);
	if (store_notices_accept(s, &n, 1, &r, &e) != 0) {
		fprintf(stderr, "  accept: %s\n", e.msg);
		r.failed = 1;
	}
	json_decref(n.event_fields);
	return r;
}

/* path: the store's file, or on PostgreSQL its connection string (t_store.h). */
static int64_t raw_int(const char *path, const char *sql)
{
#ifdef T_STORE_PG
	return store_fx_raw_int(path, sql);
#endif
	sqlite3 *db = NULL;
	int64_t v = -1;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK) {
		sqlite3_stmt *st = NULL;
		if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
		    sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	return v;
}

static int raw_exec(const char *path, const char *sql)
{
#ifdef T_STORE_PG
	return store_fx_raw_exec(path, sql);
#endif
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -1;
}

static int cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

TEST(open_migrate_reopen)
{
	SQLITE_ONLY("the file's mode and WAL (migrations on PostgreSQL: test_store_pg.c)");
	struct store_fx f;
	CHECK(store_fx_open(&f, "store") == 0);
	if (!f.s)
		return;
	CHECK(store_schema_version(f.s) >= 2);
	struct stat sb;
	CHECK(stat(f.path, &sb) == 0 && (sb.st_mode & 0777) == 0600);
	store_close(f.s);
	struct selo_err e;
	err_clear(&e);
	CHECK(store_open(f.path, &f.s, &e) == 0);
	int version = store_schema_version(f.s);
	CHECK(version >= 2); /* 1 initial schema, 2 the Merkle log */
	struct apikey *keys = NULL;
	size_t nkeys = 0;
	CHECK(store_apikey_list(f.s, &keys, &nkeys, &e) == 0 && nkeys == 0); /* opens a reader */
	free(keys);
	store_close(f.s);
	f.s = NULL;
	/* A clean close leaves no WAL behind (the writer closes last). */
	char wal[700];
	snprintf(wal, sizeof(wal), "%s-wal", f.path);
	CHECK(access(wal, F_OK) != 0);
	CHECK(raw_int(f.path, "SELECT count(*) FROM schema_migrations") == version);
	CHECK(raw_int(f.path, "SELECT count(*) FROM pragma_journal_mode WHERE journal_mode='wal'") == 1);
	/* A database from a newer selo is refused, not half-understood. */
	CHECK(raw_exec(f.path, "INSERT INTO schema_migrations VALUES(99, 'future', 0)") == 0);
	err_clear(&e);
	CHECK(store_open(f.path, &f.s, &e) == -1);
	CHECK(f.s == NULL);
	CHECK_STR(e.type, "schema-too-new");
	store_fx_remove(&f);
}

/* The checkpointer copies the WAL back while the store is open: the main
 * file grows with the data, the WAL does not grow without bound. (It once
 * ran on a connection that had never opened the WAL, and did nothing.) */
TEST(checkpointer_copies_the_wal_back)
{
	SQLITE_ONLY("SQLite's WAL checkpointer");
	struct store_fx f;
	CHECK(store_fx_open(&f, "store") == 0);
	if (!f.s)
		return;
	struct stat before, after;
	CHECK(stat(f.path, &before) == 0);
	char body[64];
	for (int i = 0; i < 300; i++) {
		snprintf(body, sizeof(body), "{\"n\":%d}", i);
		CHECK(!accept1(f.s, 1, NULL, body, "CKPT").failed);
	}
	int grown = 0;
	for (int i = 0; i < 40 && !grown; i++) { /* CKPT_MS is 500 */
		usleep(100 * 1000);
		grown = stat(f.path, &after) == 0 && after.st_size > before.st_size + 64 * 1024;
	}
	CHECK(grown);
	store_fx_close(&f);
}

/* Another process reading all the time (two connections taking turns, so
 * that one of them always holds a snapshot): SQLite alone would then never
 * start the WAL again, since no write ever begins with no reader on it. */
struct wal_readers {
	const char *path;
	atomic_int stop;
	atomic_int turn;
};

static void *wal_reader(void *arg)
{
	struct wal_readers *r = arg;
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(r->path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 1000);
	usleep((unsigned)atomic_fetch_add(&r->turn, 1) * 2500); /* the second, half a turn later */
	while (!atomic_load(&r->stop)) {
		sqlite3_exec(db, "BEGIN; SELECT count(*) FROM notices", NULL, NULL, NULL);
		usleep(5000);
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	}
	sqlite3_close(db);
	return NULL;
}

/* Single accepts (each its own commit) until the store has restarted the WAL
 * `until` times, or 15 s have passed; returns how many accepts it took. */
static long accept_until_restarts(struct store *s, int64_t until)
{
	int64_t end = clock_mono_ms() + 15000;
	long n = 0;
	char body[64];
	while (store_wal_restarts(s) < until && clock_mono_ms() < end) {
		snprintf(body, sizeof(body), "{\"n\":%ld}", n++);
		CHECK(!accept1(s, 1, NULL, body, "WAL").failed);
		usleep(1000);
	}
	return n;
}

static long long file_size(const char *path, const char *suffix)
{
	char p[700];
	snprintf(p, sizeof(p), "%s%s", path, suffix);
	struct stat st;
	return stat(p, &st) == 0 ? (long long)st.st_size : -1;
}

/* With readers always on the WAL, SQLite alone never starts it again (the
 * first phase would time out): the store restarts it once it holds the
 * limit, and what is written after a restart goes over the same file from
 * its start. The file's size is its high-water mark, which depends on how
 * many accepts fit between two checkpointer passes (timing); so the check is
 * made right after a restart: a few accepts, far less than the file holds,
 * must leave its size as it was, where appending would add 8 pages each. */
TEST(wal_restarts_under_a_steady_load)
{
	SQLITE_ONLY("SQLite's WAL");
	struct store_fx f;
	CHECK(store_fx_open(&f, "store") == 0);
	if (!f.s)
		return;
	store_wal_limit(f.s, 256); /* 1 MiB: every restart follows at least that */
	struct wal_readers r = {.path = f.path};
	atomic_init(&r.stop, 0);
	atomic_init(&r.turn, 0);
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		CHECK(pthread_create(&th[i], NULL, wal_reader, &r) == 0);
	long n = accept_until_restarts(f.s, 3);
	CHECK(store_wal_restarts(f.s) >= 3);
	long long size = file_size(f.path, "-wal");
	printf("  %ld accepts until 3 restarts, WAL at most %lld KiB\n", n, size >> 10);
	char body[64];
	for (int round = 0; round < 3 && store_wal_restarts(f.s) >= 3; round++) {
		accept_until_restarts(f.s, store_wal_restarts(f.s) + 1);
		long long before = file_size(f.path, "-wal");
		/* 10 accepts write at most ~160 frames, under the 256 the WAL held */
		for (int i = 0; i < 10; i++) {
			snprintf(body, sizeof(body), "{\"round\":%d,\"i\":%d}", round, i);
			CHECK(!accept1(f.s, 1, NULL, body, "WAL").failed);
		}
		long long after = file_size(f.path, "-wal");
		if (after != before)
			printf("  round %d: WAL %lld -> %lld bytes after 10 accepts\n", round, before,
			       after);
		CHECK(before > 0 && after == before);
	}
	atomic_store(&r.stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	store_fx_close(&f);
}

TEST(apikeys)
{
	struct store_fx f;
	CHECK(store_fx_open(&f, "store") == 0);
	if (!f.s)
		return;
	struct selo_err e;
	err_clear(&e);
	uint8_t h1[32], h2[32];
	sha256("key-one", 7, h1);
	sha256("key-two", 7, h2);
	int64_t id1 = 0, id2 = 0;
	CHECK(store_apikey_add(f.s, "cobranca", h1, "selo_abc", &id1, &e) == 0);
	CHECK(store_apikey_add(f.s, "juridico", h2, "selo_def", &id2, &e) == 0);
	CHECK(id1 > 0 && id2 > id1);
	CHECK(store_apikey_add(f.s, "again", h1, "selo_abc", NULL, &e) == -1);
	CHECK(e.status == 409);
	struct apikey k;
	CHECK(store_apikey_find(f.s, h1, &k, &e) == 1);
	CHECK(k.id == id1);
	CHECK_STR(k.name, "cobranca");
	CHECK_STR(k.prefix, "selo_abc");
	CHECK(k.revoked_ms == 0 && k.created_ms > 0);
	struct apikey *list = NULL;
	size_t n = 0;
	CHECK(store_apikey_list(f.s, &list, &n, &e) == 0);
	CHECK(n == 2 && list[0].id == id1 && list[1].id == id2);
	free(list);
	CHECK(store_apikey_revoke(f.s, id1, &e) == 1);
	CHECK(store_apikey_revoke(f.s, id1, &e) == 0);
	CHECK(store_apikey_revoke(f.s, 12345, &e) == 0);
	CHECK(store_apikey_find(f.s, h1, &k, &e) == 0);
	CHECK(store_apikey_find(f.s, h2, &k, &e) == 1);
	CHECK(store_apikey_list(f.s, &list, &n, &e) == 0);
	CHECK(n == 2 && list[0].revoked_ms > 0 && list[1].revoked_ms == 0);
	free(list);
	store_fx_close(&f);
}

/* The API's key cache: a hit for AUTH_CACHE_MS, then the store again. It
 * may answer for a key revoked meanwhile; the accept's own check above is
 * what keeps that from storing anything. */
TEST(auth_cache_answers_for_a_second)
{
	struct store_fx f;
	CHECK(store_fx_open(&f, "store") == 0);
	if (!f.s)
		return;
	struct selo_err e;
	err_clear(&e);
	char key[AUTH_KEY_LEN + 1], prefix[16];
	uint8_t h[32];
	auth_key_new(key, h, prefix);
	int64_t id = 0;
	CHECK(store_apikey_add(f.s, "cobranca", h, prefix, &id, &e) == 0);
	char hdr[64];
	snprintf(hdr, sizeof(hdr), "Bearer %s", key);
	struct auth_cache *c = auth_cache_new();
	struct apikey k;
	CHECK(auth_check_bearer_cached(c, f.s, hdr, &k, &e) == 1 && k.id == id);
	CHECK(auth_check_bearer_cached(c, f.s, "Bearer selo_nope", &k, &e) == 0 && e.status == 401);
	CHECK(auth_check_bearer_cached(c, f.s, NULL, &k, &e) == 0 && e.status == 401);
	CHECK(store_apikey_revoke(f.s, id, &e) == 1);
	CHECK(auth_check_bearer(f.s, hdr, &k, &e) == 0);
	memset(&k, 0, sizeof(k));
	CHECK(auth_check_bearer_cached(c, f.s, hdr, &k, &e) == 1 && k.id == id);
	struct timespec ts = {AUTH_CACHE_MS / 1000, (AUTH_CACHE_MS % 1000 + 50) * 1000000L};
	nanosleep(&ts, NULL);
	err_clear(&e);
	CHECK(auth_check_bearer_cached(c, f.s, hdr, &k, &e) == 0 && e.status == 401);
	auth_cache_free(c);
	store_fx_close(&f);
}

/* key_active: the accept checks the key in its own transaction, so a key
 * revoked after the API authenticated it (or cached it) stores nothing. */
TEST(accept_checks_the_key_when_asked)
{
	struct store_fx f;
	CHECK(store_fx_open(&f, "store") == 0);
	if (!f.s)
		return;
	struct selo_err e;
	err_clear(&e);
	uint8_t h[32];
	sha256("key-active", 10, h);
	int64_t id = 0;
	CHECK(store_apikey_add(f.s, "cobranca", h, "selo_act", &id, &e) == 0);
	struct notice_new b[2];
	notice_make(&b[0], id, NULL, "one", "ref-a");
	notice_make(&b[1], id, NULL, "two", "ref-a");
	b[0].key_active = b[1].key_active = 1;
	struct accept_result r[2];
	memset(r, 0, sizeof(r));
	CHECK(store_notices_accept(f.s, b, 2, r, &e) == 0);
	CHECK(!r[0].failed && !r[1].failed);
	CHECK(store_apikey_revoke(f.s, id, &e) == 1);
	for (int i = 0; i < 2; i++) {
		json_decref(b[i].event_fields);
		notice_make(&b[i], id, i ? "idem-1" : NULL, "three", "ref-b");
		b[i].key_active = 1;
	}
	err_clear(&e);
	CHECK(store_notices_accept(f.s, b, 2, r, &e) == -1);
	CHECK(e.status == 401);
	CHECK_STR(e.type, "unauthorized");
	/* An unknown key is refused the same way; without the flag (the CLI's
	 * `selo submit`) no key is asked for. */
	json_decref(b[0].event_fields);
	notice_make(&b[0], id + 100, NULL, "four", "ref-b");
	b[0].key_active = 1;
	err_clear(&e);
	CHECK(store_notices_accept(f.s, b, 1, r, &e) == -1 && e.status == 401);
	b[0].key_active = 0;
	CHECK(store_notices_accept(f.s, b, 1, r, &e) == 0 && !r[0].failed);
	for (int i = 0; i < 2; i++)
		json_decref(b[i].event_fields);
	store_close(f.s);
	f.s = NULL;
	CHECK(raw_int(f.path, "SELECT count(*) FROM notices WHERE reference = 'ref-b'") == 1);
	CHECK(raw_int(f.path, "SELECT count(*) FROM notices WHERE reference = 'ref-a'") == 2);
	CHECK(raw_int(f.path, "SELECT count(*) FROM idempotency") == 0);
	store_fx_remove(&f);
}

TEST(accept_single_and_batch)
{
	struct store_fx f;
	CHECK(store_fx_open(&f, "store") == 0);
	if (!f.s)
		return;
	struct selo_err e;
	err_clear(&e);
	struct notice_new n;
	notice_make(&n, 1, NULL, "body", "ref-1");
	uint8_t pdf[] = {'%', 'P', 'D', 'F', 0, 1, 2};
	struct attachment_in att[2] = {{"boleto.pdf", "application/pdf", pdf, sizeof(pdf)},
				       {"vazio.txt", "text/plain", NULL, 0}};
	n.att = att;
	n.natt = 2;
	struct disclosures d = DISCLOSURES_INIT;
	json_decref(n.event_fields);
	n.event_fields = json_pack("{s:s}", "to", disclose(&d, n.salt, n.to, strlen(n.to)));
	disclose(&d, n.salt, "Maria", 5);
	disclose(&d, n.salt, n.to, strlen(n.to)); /* the same commitment twice is kept once */
	n.disc = &d;
	struct accept_result r;
	CHECK(store_notices_accept(f.s, &n, 1, &r, &e) == 0);
	CHECK(!r.failed && !r.replay);
	CHECK_STR(r.id, n.id);
	CHECK_STR(r.status, "queued");
	json_decref(n.event_fields);

	struct notice_rec rec;
	CHECK(store_notice_get(f.s, n.id, 1, &rec, &e) == 1);
	CHECK_STR(rec.status, "queued");
	CHECK_STR(rec.to, "devedor@example.com");
	CHECK_STR(rec.template_name, "lembrete");
	CHECK_STR(rec.reference, "ref-1");
	CHECK_STR(rec.segment, "varejo");
	CHECK_STR(rec.tags_json, "[\"a\"]");
	CHECK_STR(rec.payload_json, "{\"template\":\"lembrete\"}");
	CHECK(memcmp(rec.salt, n.salt, 32) == 0);
	CHECK(rec.attempts == 0 && rec.message_id == NULL && rec.sha256[0] == '\0');
	CHECK(rec.created_ms > 0 && rec.next_attempt_ms == rec.created_ms);
	notice_rec_free(&rec);

	struct attachment_rec *a = NULL;
	size_t na = 0;
	CHECK(store_attachments_of(f.s, n.id, &a, &na, &e) == 0);
	CHECK(na == 2);
	if (na == 2) {
		CHECK_STR(a[0].filename, "boleto.pdf");
		CHECK_STR(a[0].content_type, "application/pdf");
		CHECK(a[0].len == sizeof(pdf) && memcmp(a[0].data, pdf, sizeof(pdf)) == 0);
		CHECK_STR(a[1].filename, "vazio.txt");
		CHECK(a[1].len == 0);
	}
	attachment_recs_free(a, na);

	struct disclosures got = DISCLOSURES_INIT;
	CHECK(store_disclosures_of(f.s, n.id, &got, &e) == 0);
	CHECK(got.n == 2);
	if (got.n == 2) {
		CHECK_STR(got.v[0].commitment, d.v[0].commitment);
		CHECK_STR(got.v[0].value, "devedor@example.com");
		CHECK_STR(got.v[1].value, "Maria");
		CHECK(got.v[1].len == 5);
	}
	disclosures_free(&got);
	disclosures_free(&d);

	/* A batch: three accepted in one call, each with its own event. */
	struct notice_new b[3];
	struct accept_result br[3];
	for (int i = 0; i < 3; i++)
		notice_make(&b[i], 1, NULL, "b", "batch");
	CHECK(store_notices_accept(f.s, b, 3, br, &e) == 0);
	for (int i = 0; i < 3; i++) {
		CHECK(!br[i].failed && !br[i].replay);
		CHECK_STR(br[i].id, b[i].id);
		struct event_rec *ev = NULL;
		size_t nev = 0;
		CHECK(store_events_of(f.s, b[i].id, &ev, &nev, &e) == 0);
		CHECK(nev == 1);
		event_recs_free(ev, nev);
		json_decref(b[i].event_fields);
	}
	struct store_counts k;
	CHECK(store_counts(f.s, &k, &e) == 0);
	CHECK(k.queued == 4 && k.events == 4 && k.sending == 0);
	CHECK(store_ping(f.s, &e) == 0);
	CHECK(store_ping(f.s, &e) == 0);
	store_fx_close(&f);
}

TEST(accept_refusals_leave_the_rest)
{
	struct store_fx f;
	CHECK(store_fx_open(&f, "store") == 0);
	if (!f.s)
		return;
	struct selo_err e;
	err_clear(&e);
	struct notice_new b[3];
	struct accept_result r[3];
	for (int i = 0; i < 3; i++)
		notice_make(&b[i], 1, NULL, "x", NULL);
	json_object_set_new(b[1].event_fields, "type", json_string("forged")); /* reserved key */
	strcpy(b[2].id, b[0].id);                                             /* duplicate id */
	CHECK(store_notices_accept(f.s, b, 3, r, &e) == 0);
	CHECK(!r[0].failed);
	CHECK(r[1].failed && r[1].err.status == 422);
	CHECK(r[2].failed && r[2].err.status == 409);
	struct notice_rec rec;
	CHECK(store_notice_get(f.s, b[0].id, -1, &rec, &e) == 1);
	notice_rec_free(&rec);
	CHECK(store_notice_get(f.s, b[1].id, -1, &rec, &e) == 0);
	struct store_counts k;
	CHECK(store_counts(f.s, &k, &e) == 0);
	CHECK(k.queued == 1 && k.events == 1);
	for (int i = 0; i < 3; i++)
		json_decref(b[i].event_fields);
	store_fx_close(&f);
}

TEST(idempotency_replay_and_reuse)
{
	struct store_fx f;
	CHECK(store_fx_open(&f, "store") == 0);
	if (!f.s)
		return;
	struct accept_result a = accept1(f.s, 1, "k-1", "body-1", NULL);
	CHECK(!a.failed && !a.replay);
	struct accept_result b = accept1(f.s, 1, "k-1", "body-1", NULL);
	CHECK(!b.failed && b.replay);
	CHECK_STR(b.id, a.id);
	CHECK_STR(b.status, "queued");
	struct accept_result c = accept1(f.s, 1, "k-1", "body-2", NULL);
	CHECK(c.failed && !c.replay);
	CHECK(c.err.status == 422);
	CHECK_STR(c.err.type, "idempotency-key-reused");
	CHECK(strstr(c.err.msg, "Idempotency-Key") && strstr(c.err.msg, "different request"));
	/* Keys belong to an API key: another key may use the same text. */
	struct accept_result d = accept1(f.s, 2, "k-1", "body-2", NULL);
	CHECK(!d.failed && !d.replay && strcmp(d.id, a.id) != 0);
	/* Replay reports the current status. */
	struct selo_err e;
	err_clear(&e);
	struct notice_rec *got = NULL;
	size_t n = 0;
	CHECK(store_claim_due(f.s, clock_now_ms(), 10, &got, &n, &e) == 0 && n == 2);
	notice_recs_free(got, n);
	struct accept_result g = accept1(f.s, 1, "k-1", "body-1", NULL);
	CHECK(g.replay);
	CHECK_STR(g.status, "sending");
	store_fx_close(&f);
}

TEST(idempotency_duplicate_in_batch)
{
	struct store_fx f;
	CHECK(store_fx_open(&f, "store") == 0);
	if (!f.s)
		return;
	struct selo_err e;
	err_clear(&e);
	struct notice_new b[3];
	struct accept_result r[3];
	notice_make(&b[0], 1, "dup", "same", NULL);
	notice_make(&b[1], 1, "dup", "same", NULL);
	notice_make(&b[2], 1, "dup", "other", NULL);
	CHECK(store_notices_accept(f.s, b, 3, r, &e) == 0);
	CHECK(!r[0].failed && !r[0].replay);
	CHECK(!r[1].failed && r[1].replay);
	CHECK_STR(r[1].id, b[0].id);
	CHECK(r[2].failed && r[2].err.status == 422);
	struct notice_rec rec;
	CHECK(store_notice_get(f.s, b[1].id, -1, &rec, &e) == 0);
	CHECK(store_notice_get(f.s, b[2].id, -1, &rec, &e) == 0);
	struct store_counts k;
	CHECK(store_counts(f.s, &k, &e) == 0);
	CHECK(k.queued == 1 && k.events == 1);
	for (int i = 0; i < 3; i++)
		json_decref(b[i].event_fields);
	store_fx_close(&f);
}

/* ---- Concurrency. */

#define THREADS 8
#define PER_THREAD 200

struct worker {
	struct store *s;
	int index;
	const char *idem; /* non-NULL: every worker uses this key */
	char (*ids)[27];
	int failures;
	pthread_mutex_t *mu;
	size_t *claimed_n;
};

static void *accept_worker(void *arg)
{
	struct worker *w = arg;
	int count = w->idem ? 1 : PER_THREAD;
	for (int i = 0; i < count; i++) {
		struct accept_result r = accept1(w->s, 1, w->idem, "same-body", NULL);
		if (r.failed)
			w->failures++;
		else
			memcpy(w->ids[w->index * PER_THREAD + i], r.id, 27);
		if (w->idem && r.replay)
			w->failures += 1000; /* counted apart below */
	}
	return NULL;
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

TEST(concurrent_accepts)
{
	struct store_fx f;
	CHECK(store_fx_open(&f, "store") == 0);
	if (!f.s)
		return;
	char(*ids)[27] = calloc(THREADS * PER_THREAD, 27);
	struct worker w[THREADS];
	pthread_t th[THREADS];
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){.s = f.s, .index = i, .ids = ids};
		pthread_create(&th[i], NULL, accept_worker, &w[i]);
	}
	int failures = 0;
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		failures += w[i].failures;
	}
	double dt = seconds_since(&t0);
	printf("  store: %d accepts (8 threads, one notice per call) in %.3f s = %.0f accepts/s\n",
	       THREADS * PER_THREAD, dt, THREADS * PER_THREAD / dt);
	CHECK(failures == 0);

	/* Every accepted id is listed once. */
	struct selo_err e;
	err_clear(&e);
	char(*listed)[27] = calloc(THREADS * PER_THREAD + 1, 27);
	size_t nl = 0;
	char after[27] = "";
	for (;;) {
		struct notice_filter flt = {.apikey_id = -1, .after = after[0] ? after : NULL, .limit = 700};
		struct notice_rec *recs = NULL;
		size_t n = 0;
		CHECK(store_notice_list(f.s, &flt, &recs, &n, &e) == 0);
		for (size_t i = 0; i < n && nl < THREADS * PER_THREAD + 1; i++)
			memcpy(listed[nl++], recs[i].id, 27);
		if (n)
			memcpy(after, recs[n - 1].id, 27);
		notice_recs_free(recs, n);
		if (n < 700)
			break;
	}
	CHECK(nl == THREADS * PER_THREAD);
	qsort(ids, THREADS * PER_THREAD, 27, cmp_id);
	CHECK(memcmp(ids, listed, (size_t)THREADS * PER_THREAD * 27) == 0);

	/* seq order is time order. */
	struct event_rec *ev = NULL;
	size_t nev = 0;
	CHECK(store_events_after(f.s, 0, 100000, &ev, &nev, &e) == 0);
	CHECK(nev == THREADS * PER_THREAD);
	int ordered = 1;
	for (size_t i = 1; i < nev; i++)
		if (ev[i].seq != ev[i - 1].seq + 1 || ev[i].time_ms < ev[i - 1].time_ms)
			ordered = 0;
	CHECK(ordered);
	event_recs_free(ev, nev);
	CHECK(store_events_after(f.s, 1500, 10, &ev, &nev, &e) == 0);
	CHECK(nev == 10 && ev[0].seq == 1501);
	event_recs_free(ev, nev);
	free(ids);
	free(listed);
	store_fx_close(&f);
}

TEST(concurrent_same_idempotency_key)
{
	struct store_fx f;
	CHECK(store_fx_open(&f, "store") == 0);
	if (!f.s)
		return;
	char(*ids)[27] = calloc(THREADS * PER_THREAD, 27);
	struct worker w[THREADS];
	pthread_t th[THREADS];
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){.s = f.s, .index = i, .idem = "one-key", .ids = ids};
		pthread_create(&th[i], NULL, accept_worker, &w[i]);
	}
	int replays = 0, failures = 0;
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		replays += w[i].failures / 1000;
		failures += w[i].failures % 1000;
	}
	CHECK(failures == 0);
	CHECK(replays == THREADS - 1);
	for (int i = 1; i < THREADS; i++)
		CHECK_STR(ids[i * PER_THREAD], ids[0]);
	struct store_counts k;
	struct selo_err e;
	CHECK(store_counts(f.s, &k, &e) == 0);
	CHECK(k.queued == 1);
	free(ids);
	store_fx_close(&f);
}

static void *claim_worker(void *arg)
{
	struct worker *w = arg;
	for (;;) {
		struct notice_rec *r = NULL;
		size_t n = 0;
		struct selo_err e;
		if (store_claim_due(w->s, clock_now_ms(), 7, &r, &n, &e) != 0) {
			w->failures++;
			break;
		}
		pthread_mutex_lock(w->mu);
		for (size_t i = 0; i < n; i++) {
			if (strcmp(r[i].status, "sending") != 0)
				w->failures++;
			if (*w->claimed_n < 1000)
				memcpy(w->ids[(*w->claimed_n)++], r[i].id, 27);
		}
		pthread_mutex_unlock(w->mu);
		notice_recs_free(r, n);
		if (n == 0)
			break;
	}
	return NULL;
}

TEST(claim_due_is_exclusive)
{
	struct store_fx f;
	CHECK(store_fx_open(&f, "store") == 0);
	if (!f.s)
		return;
	enum { N = 400 };
	struct notice_new *b = calloc(N, sizeof(*b));
	struct accept_result *r = calloc(N, sizeof(*r));
	for (int i = 0; i < N; i++)
		notice_make(&b[i], 1, NULL, "x", NULL);
	struct selo_err e;
	err_clear(&e);
	CHECK(store_notices_accept(f.s, b, N, r, &e) == 0);
	for (int i = 0; i < N; i++)
		json_decref(b[i].event_fields);
	char(*ids)[27] = calloc(1000, 27);
	size_t claimed = 0;
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	struct worker w[THREADS];
	pthread_t th[THREADS];
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){.s = f.s, .ids = ids, .mu = &mu, .claimed_n = &claimed};
		pthread_create(&th[i], NULL, claim_worker, &w[i]);
	}
	int failures = 0;
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		failures += w[i].failures;
	}
	CHECK(failures == 0);
	CHECK(claimed == N);
	qsort(ids, claimed, 27, cmp_id);
	int dup = 0;
	for (size_t i = 1; i < claimed; i++)
		if (!strcmp(ids[i], ids[i - 1]))
			dup++;
	CHECK(dup == 0);
	struct store_counts k;
	CHECK(store_counts(f.s, &k, &e) == 0);
	CHECK(k.sending == N && k.queued == 0);
	free(ids);
	free(b);
	free(r);
	store_fx_close(&f);
}

struct result_worker {
	struct store *s;
	int failures;
	int refused;
};

static void *bad_result_worker(void *arg)
{
	struct result_worker *w = arg;
	for (int i = 0; i < 50; i++) {
		struct result_rec rr = {.id = "01ARZ3NDEKTSV4RRFFQ69G5FAV",
					.event_type = EV_DELIVERY_ACCEPTED, .state = "delivered"};
		struct selo_err e;
		err_clear(&e);
		if (store_delivery_results(w->s, &rr, 1, &e) == 0)
			w->failures++;
		else if (e.status == 404)
			w->refused++;
	}
	return NULL;
}

/* Failing writes share transactions with good ones and undo only themselves. */
TEST(failing_jobs_leave_their_group)
{
	struct store_fx f;
	CHECK(store_fx_open(&f, "store") == 0);
	if (!f.s)
		return;
	char(*ids)[27] = calloc(THREADS * PER_THREAD, 27);
	struct worker w[4];
	struct result_worker rw[4];
	pthread_t th[8];
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){.s = f.s, .index = i, .ids = ids};
		rw[i] = (struct result_worker){.s = f.s};
		pthread_create(&th[i], NULL, accept_worker, &w[i]);
		pthread_create(&th[4 + i], NULL, bad_result_worker, &rw[i]);
	}
	int failures = 0, refused = 0;
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		pthread_join(th[4 + i], NULL);
		failures += w[i].failures + rw[i].failures;
		refused += rw[i].refused;
	}
	CHECK(failures == 0);
	CHECK(refused == 200);
	struct store_counts k;
	struct selo_err e;
	CHECK(store_counts(f.s, &k, &e) == 0);
	CHECK(k.queued == 4 * PER_THREAD && k.events == 4 * PER_THREAD);
	free(ids);
	store_fx_close(&f);
}

/* ---- Sender side. */

TEST(sealed_twice_keeps_first)
{
	struct store_fx f;
	CHECK(store_fx_open(&f, "store") == 0);
	if (!f.s)
		return;
	struct accept_result a = accept1(f.s, 1, NULL, "x", NULL);
	struct selo_err e;
	err_clear(&e);
	struct notice_rec *got = NULL;
	size_t n = 0;
	CHECK(store_claim_due(f.s, clock_now_ms(), 5, &got, &n, &e) == 0 && n == 1);
	notice_recs_free(got, n);

	struct token_rec tk[2] = {{"tok-open", "open", 0, NULL}, {"tok-c1", "click", 1, "https://x.example/p"}};
	const char *eml1 = "From: a\r\n\r\nfirst\r\n";
	struct seal_rec s1 = {.id = a.id, .eml = eml1, .len = strlen(eml1), .message_id = "<m1@selo>",
			      .tokens = tk, .ntokens = 2};
	sha256_hex(eml1, strlen(eml1), s1.sha256);
	s1.event_fields = json_pack("{s:s}", "sha256", s1.sha256);
	CHECK(store_notices_sealed(f.s, &s1, 1, &e) == 0);

	struct token_rec tk2[1] = {{"tok-other", "open", 0, NULL}};
	const char *eml2 = "From: b\r\n\r\nsecond\r\n";
	struct seal_rec s2 = {.id = a.id, .eml = eml2, .len = strlen(eml2), .message_id = "<m2@selo>",
			      .tokens = tk2, .ntokens = 1, .event_fields = s1.event_fields};
	sha256_hex(eml2, strlen(eml2), s2.sha256);
	CHECK(store_notices_sealed(f.s, &s2, 1, &e) == 0);

	struct buf eml = BUF_INIT;
	char hex[65];
	CHECK(store_message_get(f.s, a.id, &eml, hex, &e) == 1);
	CHECK_STR(buf_str(&eml), eml1);
	CHECK_STR(hex, s1.sha256);
	buf_free(&eml);
	struct notice_rec rec;
	CHECK(store_notice_get(f.s, a.id, -1, &rec, &e) == 1);
	CHECK_STR(rec.status, "sending");
	CHECK_STR(rec.message_id, "<m1@selo>");
	CHECK_STR(rec.sha256, s1.sha256);
	notice_rec_free(&rec);
	struct event_rec *ev = NULL;
	size_t nev = 0;
	CHECK(store_events_of(f.s, a.id, &ev, &nev, &e) == 0);
	CHECK(nev == 2);
	if (nev == 2) {
		CHECK_STR(ev[0].type, EV_SUBMISSION_ACCEPTED);
		CHECK_STR(ev[1].type, EV_CONTENT_SEALED);
		CHECK(ev[1].seq > ev[0].seq);
	}
	event_recs_free(ev, nev);
	CHECK(raw_int(f.path, "SELECT count(*) FROM tokens") == 2);
	CHECK(raw_int(f.path, "SELECT link FROM tokens WHERE token='tok-c1'") == 1);

	/* Sealing a notice that does not exist changes nothing. */
	struct seal_rec s3 = s1;
	s3.id = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
	err_clear(&e);
	CHECK(store_notices_sealed(f.s, &s3, 1, &e) == -1);
	CHECK(e.status == 404);
	CHECK(store_message_get(f.s, s3.id, &eml, hex, &e) == 0);
	buf_free(&eml);
	json_decref(s1.event_fields);
	store_fx_close(&f);
}

TEST(delivery_results_and_deferral)
{
	struct store_fx f;
	CHECK(store_fx_open(&f, "store") == 0);
	if (!f.s)
		return;
	struct accept_result a = accept1(f.s, 1, NULL, "x", NULL);
	struct selo_err e;
	err_clear(&e);
	struct notice_rec *got = NULL;
	size_t n = 0;
	CHECK(store_claim_due(f.s, clock_now_ms(), 5, &got, &n, &e) == 0 && n == 1);
	notice_recs_free(got, n);
	CHECK(store_next_due(f.s) == 0);

	int64_t later = clock_now_ms() + 60000;
	json_t *fields = json_pack("{s:s}", "reply", "421 try again");
	struct result_rec rr = {.id = a.id, .event_type = EV_DELIVERY_DEFERRED, .event_fields = fields,
				.state = "deferred", .next_attempt_ms = later,
				.last_error = "421 try again later"};
	CHECK(store_delivery_results(f.s, &rr, 1, &e) == 0);
	struct notice_rec rec;
	CHECK(store_notice_get(f.s, a.id, 1, &rec, &e) == 1);
	CHECK_STR(rec.status, "deferred");
	CHECK(rec.attempts == 1 && rec.next_attempt_ms == later);
	CHECK_STR(rec.last_error, "421 try again later");
	notice_rec_free(&rec);
	CHECK(store_next_due(f.s) == later);

	CHECK(store_claim_due(f.s, later - 1, 5, &got, &n, &e) == 0 && n == 0);
	CHECK(store_claim_due(f.s, later, 5, &got, &n, &e) == 0 && n == 1);
	if (n == 1) {
		CHECK_STR(got[0].id, a.id);
		CHECK_STR(got[0].status, "sending");
		CHECK(got[0].attempts == 1);
	}
	notice_recs_free(got, n);

	struct result_rec ok = {.id = a.id, .event_type = EV_DELIVERY_ACCEPTED, .event_fields = fields,
				.state = "delivered"};
	CHECK(store_delivery_results(f.s, &ok, 1, &e) == 0);
	CHECK(store_notice_get(f.s, a.id, 1, &rec, &e) == 1);
	CHECK_STR(rec.status, "delivered");
	CHECK(rec.attempts == 2 && rec.last_error == NULL);
	notice_rec_free(&rec);
	struct event_rec *ev = NULL;
	size_t nev = 0;
	CHECK(store_events_of(f.s, a.id, &ev, &nev, &e) == 0);
	CHECK(nev == 3);
	if (nev == 3) {
		CHECK_STR(ev[1].type, EV_DELIVERY_DEFERRED);
		CHECK_STR(ev[2].type, EV_DELIVERY_ACCEPTED);
		CHECK(strstr(ev[1].entry, "\"reply\":\"421 try again\"") != NULL);
	}
	event_recs_free(ev, nev);

	/* A wrong state or unknown notice is refused and changes nothing. */
	struct result_rec bad = ok;
	bad.state = "lost";
	err_clear(&e);
	CHECK(store_delivery_results(f.s, &bad, 1, &e) == -1 && e.status == 400);
	struct result_rec two[2] = {ok, ok};
	two[1].id = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
	err_clear(&e);
	CHECK(store_delivery_results(f.s, two, 2, &e) == -1 && e.status == 404);
	CHECK(store_notice_get(f.s, a.id, 1, &rec, &e) == 1);
	CHECK(rec.attempts == 2); /* the first of the two was undone with the second */
	notice_rec_free(&rec);
	struct store_counts k;
	CHECK(store_counts(f.s, &k, &e) == 0);
	CHECK(k.delivered == 1 && k.events == 3);
	json_decref(fields);
	store_fx_close(&f);
}

TEST(recover_inflight)
{
	struct store_fx f;
	CHECK(store_fx_open(&f, "store") == 0);
	if (!f.s)
		return;
	for (int i = 0; i < 3; i++)
		accept1(f.s, 1, NULL, "x", NULL);
	struct selo_err e;
	err_clear(&e);
	struct notice_rec *got = NULL;
	size_t n = 0;
	CHECK(store_claim_due(f.s, clock_now_ms(), 2, &got, &n, &e) == 0 && n == 2);
	notice_recs_free(got, n);
	CHECK(store_recover_inflight(f.s, &e) == 2);
	CHECK(store_recover_inflight(f.s, &e) == 0);
	struct store_counts k;
	CHECK(store_counts(f.s, &k, &e) == 0);
	CHECK(k.queued == 3 && k.sending == 0);
	CHECK(store_claim_due(f.s, clock_now_ms(), 10, &got, &n, &e) == 0 && n == 3);
	notice_recs_free(got, n);
	store_fx_close(&f);
}

/* A crash between the relay's 250 and the result's commit leaves a notice in
 * `sending`. After recovery it is claimed again before notices accepted
 * after it (its resend is not left to the end of a long queue), and it gets
 * one outcome: a result for a notice that already has one records nothing. */
TEST(recovered_notice_keeps_its_place_and_one_outcome)
{
	struct store_fx f;
	CHECK(store_fx_open(&f, "store") == 0);
	if (!f.s)
		return;
	struct accept_result a = accept1(f.s, 1, NULL, "x", NULL);
	struct selo_err e;
	err_clear(&e);
	struct notice_rec *got = NULL;
	size_t n = 0;
	CHECK(store_claim_due(f.s, clock_now_ms(), 1, &got, &n, &e) == 0 && n == 1);
	notice_recs_free(got, n);
	struct timespec pause = {0, 5 * 1000000};
	nanosleep(&pause, NULL); /* b is accepted in a later millisecond */
	struct accept_result b = accept1(f.s, 1, NULL, "y", NULL);
	CHECK(store_recover_inflight(f.s, &e) == 1);
	CHECK(store_claim_due(f.s, clock_now_ms(), 1, &got, &n, &e) == 0 && n == 1);
	if (n == 1)
		CHECK_STR(got[0].id, a.id);
	notice_recs_free(got, n);

	json_t *fields = json_pack("{s:i}", "code", 250);
	struct result_rec ok = {.id = a.id, .event_type = EV_RELAY_ACCEPTED, .event_fields = fields,
				.state = "relayed"};
	CHECK(store_delivery_results(f.s, &ok, 1, &e) == 0);
	struct result_rec late[2] = {ok, ok};
	late[1].event_type = EV_DELIVERY_DEFERRED;
	late[1].state = "deferred";
	late[1].next_attempt_ms = clock_now_ms() + 60000;
	CHECK(store_delivery_results(f.s, late, 2, &e) == 0);
	struct notice_rec rec;
	CHECK(store_notice_get(f.s, a.id, 1, &rec, &e) == 1);
	CHECK_STR(rec.status, "relayed");
	CHECK(rec.attempts == 1);
	notice_rec_free(&rec);
	struct event_rec *ev = NULL;
	size_t nev = 0;
	CHECK(store_events_of(f.s, a.id, &ev, &nev, &e) == 0);
	CHECK(nev == 2);
	if (nev == 2)
		CHECK_STR(ev[1].type, EV_RELAY_ACCEPTED);
	event_recs_free(ev, nev);
	CHECK(store_notice_get(f.s, b.id, 1, &rec, &e) == 1);
	CHECK_STR(rec.status, "queued");
	notice_rec_free(&rec);
	json_decref(fields);
	store_fx_close(&f);
}

/* ---- Reading. */

static size_t list_ids(struct store *s, int64_t key, const char *ref, const char *status,
		       const char *after, int limit, char (*out)[27])
{
	struct notice_filter flt = {key, ref, status, after, limit};
	struct notice_rec *r = NULL;
	size_t n = 0;
	struct selo_err e;
	if (store_notice_list(s, &flt, &r, &n, &e) != 0)
		return (size_t)-1;
	for (size_t i = 0; i < n && out; i++)
		memcpy(out[i], r[i].id, 27);
	notice_recs_free(r, n);
	return n;
}

TEST(list_filters_paging_and_scoping)
{
	struct store_fx f;
	CHECK(store_fx_open(&f, "store") == 0);
	if (!f.s)
		return;
	char k1[12][27], k2[5][27];
	for (int i = 0; i < 12; i++) {
		struct accept_result r = accept1(f.s, 1, NULL, "x", i % 2 ? "r2" : "r1");
		memcpy(k1[i], r.id, 27);
	}
	for (int i = 0; i < 5; i++) {
		struct accept_result r = accept1(f.s, 2, NULL, "x", "r1");
		memcpy(k2[i], r.id, 27);
	}
	char all[20][27];
	CHECK(list_ids(f.s, -1, NULL, NULL, NULL, 100, all) == 17);
	int sorted = 1;
	for (int i = 1; i < 17; i++)
		if (strcmp(all[i - 1], all[i]) >= 0)
			sorted = 0;
	CHECK(sorted);
	CHECK(list_ids(f.s, 1, NULL, NULL, NULL, 100, NULL) == 12);
	CHECK(list_ids(f.s, 2, NULL, NULL, NULL, 100, NULL) == 5);
	CHECK(list_ids(f.s, 1, "r1", NULL, NULL, 100, NULL) == 6);
	CHECK(list_ids(f.s, -1, "r1", NULL, NULL, 100, NULL) == 11);
	CHECK(list_ids(f.s, -1, "none", NULL, NULL, 100, NULL) == 0);
	CHECK(list_ids(f.s, -1, NULL, "queued", NULL, 100, NULL) == 17);
	CHECK(list_ids(f.s, 0, NULL, NULL, NULL, 0, NULL) == 0);
	CHECK(list_ids(f.s, -1, NULL, NULL, NULL, 0, NULL) == 1);     /* clamped up to 1 */
	CHECK(list_ids(f.s, -1, NULL, NULL, NULL, 50000, NULL) == 17); /* clamped to 1000 */

	/* Paging by `after` walks key 1's notices once each, in order. */
	char page[5][27], seen[12][27];
	size_t total = 0;
	char after[27] = "";
	for (;;) {
		size_t n = list_ids(f.s, 1, NULL, NULL, after[0] ? after : NULL, 5, page);
		CHECK(n != (size_t)-1);
		if (n == (size_t)-1 || n == 0)
			break;
		for (size_t i = 0; i < n && total < 12; i++)
			memcpy(seen[total++], page[i], 27);
		memcpy(after, page[n - 1], 27);
	}
	CHECK(total == 12);
	qsort(k1, 12, 27, cmp_id);
	CHECK(memcmp(seen, k1, sizeof(k1)) == 0);

	/* Status filter after some are claimed. */
	struct selo_err e;
	err_clear(&e);
	struct notice_rec *got = NULL;
	size_t n = 0;
	CHECK(store_claim_due(f.s, clock_now_ms(), 3, &got, &n, &e) == 0 && n == 3);
	notice_recs_free(got, n);
	CHECK(list_ids(f.s, -1, NULL, "sending", NULL, 100, NULL) == 3);
	CHECK(list_ids(f.s, -1, NULL, "queued", NULL, 100, NULL) == 14);
	CHECK(list_ids(f.s, 1, "r1", "queued", NULL, 100, NULL) +
		      list_ids(f.s, 1, "r1", "sending", NULL, 100, NULL) == 6);

	/* A notice of another key is "not found". */
	struct notice_rec rec;
	CHECK(store_notice_get(f.s, k2[0], 1, &rec, &e) == 0);
	CHECK(store_notice_get(f.s, k2[0], 2, &rec, &e) == 1);
	notice_rec_free(&rec);
	CHECK(store_notice_get(f.s, k2[0], -1, &rec, &e) == 1);
	notice_rec_free(&rec);
	CHECK(store_notice_get(f.s, "01ARZ3NDEKTSV4RRFFQ69G5FAV", -1, &rec, &e) == 0);
	store_fx_close(&f);
}

TEST(event_entry_exact_bytes)
{
	struct store_fx f;
	CHECK(store_fx_open(&f, "store") == 0);
	if (!f.s)
		return;
	struct notice_new n;
	notice_make(&n, 1, NULL, "x", NULL);
	json_decref(n.event_fields);
	n.event_fields = json_pack("{s:s,s:s,s:i}", "to", "sha256:ab", "template", "cobrança", "natt", 0);
	struct accept_result r;
	struct selo_err e;
	err_clear(&e);
	CHECK(store_notices_accept(f.s, &n, 1, &r, &e) == 0 && !r.failed);
	struct event_rec *ev = NULL;
	size_t nev = 0;
	CHECK(store_events_of(f.s, n.id, &ev, &nev, &e) == 0);
	CHECK(nev == 1);
	if (nev == 1) {
		char prefix[128];
		snprintf(prefix, sizeof(prefix),
			 "{\"v\":1,\"type\":\"submission_accepted\",\"notice\":\"%s\",\"time\":\"", n.id);
		CHECK(strncmp(ev[0].entry, prefix, strlen(prefix)) == 0);
		CHECK(ev[0].len == strlen(ev[0].entry));
		CHECK_STR(ev[0].type, EV_SUBMISSION_ACCEPTED);
		CHECK_STR(ev[0].notice_id, n.id);
		struct buf want = BUF_INIT;
		CHECK(event_entry_encode(&want, EV_SUBMISSION_ACCEPTED, n.id, ev[0].time_ms,
					 n.event_fields) == 0);
		CHECK(want.len == ev[0].len && memcmp(want.data, ev[0].entry, want.len) == 0);
		CHECK(strstr(ev[0].entry, "cobrança") != NULL);
		buf_free(&want);
		struct notice_rec rec;
		CHECK(store_notice_get(f.s, n.id, -1, &rec, &e) == 1);
		CHECK(rec.created_ms == ev[0].time_ms);
		notice_rec_free(&rec);
	}
	event_recs_free(ev, nev);
	json_decref(n.event_fields);
	store_fx_close(&f);
}

/* Log indexes live in log_ranges, one row per run of consecutive seqs. */
static int append_seqs(struct store *s, uint64_t first, const int64_t *seqs, size_t n,
		       struct selo_err *e)
{
	struct log_append a = {first, seqs, n, NULL, 0, {0}, {0}};
	return store_log_append(s, &a, e);
}

/* The log index each of the first n events (by seq) reports, and the
 * entries from index `from` as (seq, index) pairs. */
static void indexes_of(struct store *s, int64_t *idx, size_t n)
{
	struct selo_err e;
	err_clear(&e);
	struct event_rec *ev = NULL;
	size_t nev = 0;
	CHECK(store_events_after(s, 0, n, &ev, &nev, &e) == 0 && nev == n);
	for (size_t i = 0; i < nev; i++) {
		struct event_rec *one = NULL;
		size_t k = 0;
		CHECK(store_events_of(s, ev[i].notice_id, &one, &k, &e) == 0 && k == 1);
		CHECK(k == 1 && one[0].log_index == ev[i].log_index);
		idx[i] = ev[i].log_index;
		event_recs_free(one, k);
	}
	event_recs_free(ev, nev);
}

static int entries_are(struct store *s, uint64_t from, size_t max, const int64_t *want_seq,
		       size_t want_n)
{
	struct selo_err e;
	err_clear(&e);
	struct event_rec *ev = NULL;
	size_t n = 0;
	int ok = store_log_entries(s, from, max, &ev, &n, &e) == 0 && n == want_n;
	for (size_t i = 0; ok && i < n; i++)
		ok = ev[i].seq == want_seq[i] && ev[i].log_index == (int64_t)(from + i);
	event_recs_free(ev, n);
	return ok;
}

TEST(log_indexes_by_runs_of_seqs)
{
	struct store_fx f;
	CHECK(store_fx_open(&f, "store") == 0);
	if (!f.s)
		return;
	struct selo_err e;
	err_clear(&e);
	char body[32];
	for (int i = 0; i < 6; i++) { /* events 1..6, one per notice */
		snprintf(body, sizeof(body), "{\"n\":%d}", i);
		CHECK(!accept1(f.s, 1, NULL, body, "LOG").failed);
	}
	const int64_t run[] = {1, 2, 3}, gap[] = {4, 6};
	CHECK(append_seqs(f.s, 0, run, 3, &e) == 0);
	int64_t idx[6];
	indexes_of(f.s, idx, 6);
	CHECK(idx[0] == 0 && idx[1] == 1 && idx[2] == 2 && idx[3] == -1 && idx[5] == -1);
	int64_t unindexed = -1;
	CHECK(store_log_unindexed(f.s, 3, &unindexed, &e) == 0 && unindexed == 0);
	CHECK(store_log_unindexed(f.s, 6, &unindexed, &e) == 0 && unindexed == 3);
	/* Seqs with a hole: two runs, and the skipped event stays outside. */
	CHECK(append_seqs(f.s, 3, gap, 2, &e) == 0);
	indexes_of(f.s, idx, 6);
	CHECK(idx[3] == 3 && idx[4] == -1 && idx[5] == 4);
	CHECK(store_log_unindexed(f.s, 6, &unindexed, &e) == 0 && unindexed == 1);
	CHECK(raw_int(f.path, "SELECT count(*) FROM log_ranges") == 3); /* 1-3, 4, 6 */
	const int64_t all[] = {1, 2, 3, 4, 6};
	CHECK(entries_are(f.s, 0, 10, all, 5));
	CHECK(entries_are(f.s, 2, 2, all + 2, 2));
	CHECK(entries_are(f.s, 4, 10, all + 4, 1));
	CHECK(entries_are(f.s, 5, 10, NULL, 0));
	/* Refused, nothing written: an event already in the log (or before
	 * the last one integrated), a missing one, the wrong size. */
	const int64_t again[] = {5}, missing[] = {7}, next[] = {8};
	err_clear(&e);
	CHECK(append_seqs(f.s, 5, again, 1, &e) == -1 && e.status == 409);
	err_clear(&e);
	CHECK(append_seqs(f.s, 5, missing, 1, &e) == -1 && e.status == 409);
	err_clear(&e);
	CHECK(append_seqs(f.s, 4, next, 1, &e) == -1 && e.status == 409);
	struct log_state st;
	CHECK(store_log_state(f.s, &st, &e) == 0 && st.size == 5 && st.last_seq == 6);
	CHECK(raw_int(f.path, "SELECT count(*) FROM log_ranges") == 3);
#ifdef T_STORE_PG
	store_fx_close(&f); /* what follows is SQLite's migrations */
	return;
#endif
	/* A database indexed before migration 3 (events.log_index) gets the
	 * same runs back when it opens. */
	store_close(f.s);
	f.s = NULL;
	/* Later migrations go too: a database of before migration 3 has none of
	 * their tables (4: webhooks, 7: suppressions, 8: sequences, 9:
	 * statistics, 11: hit folds), columns
	 * (8: scheduling) or indexes (6: read confirmations). */
	CHECK(raw_exec(f.path, "DROP TABLE log_ranges; DELETE FROM schema_migrations WHERE version >= 3;"
			       " DROP TABLE webhook_outbox; DROP TABLE webhook_cursor; DROP TABLE webhooks;"
			       " DROP INDEX events_read_confirmed; DROP TABLE suppressions;"
			       " DROP TABLE sequences; DROP INDEX notices_by_sequence;"
			       " ALTER TABLE notices DROP COLUMN send_at_ms;"
			       " ALTER TABLE notices DROP COLUMN sequence_id;"
			       " ALTER TABLE notices DROP COLUMN step;"
			       " DROP TABLE stats_cursor; DROP TABLE stats_dims; DROP TABLE stats_notices;"
			       " DROP TABLE stats_rollup; DROP TABLE stats_delays;"
			       " DROP TABLE hit_tally; DROP TABLE hit_fold_addrs;"
			       " UPDATE events SET log_index = seq - 1 WHERE seq <= 4;"
			       " UPDATE events SET log_index = 4 WHERE seq = 6;") == 0);
	err_clear(&e);
	CHECK(store_open(f.path, &f.s, &e) == 0);
	CHECK(raw_int(f.path, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND"
			      " name = 'events_read_confirmed'") == 1);
	if (f.s) {
		CHECK(store_schema_version(f.s) >= 3);
		int64_t again_idx[6];
		indexes_of(f.s, again_idx, 6);
		CHECK(memcmp(idx, again_idx, sizeof(idx)) == 0);
		CHECK(entries_are(f.s, 0, 10, all, 5));
		CHECK(raw_int(f.path, "SELECT count(*) FROM log_ranges") == 2); /* 1-4, 6 */
	}
	store_fx_close(&f);
}

/* A batch of hits repeating one commitment stores it once per notice, and
 * the same commitment text under another notice is still stored there. */
TEST(events_add_stores_each_disclosure_once_per_notice)
{
	struct store_fx f;
	CHECK(store_fx_open(&f, "store") == 0);
	if (!f.s)
		return;
	struct accept_result a = accept1(f.s, 1, NULL, "{\"a\":1}", "DISC");
	struct accept_result b = accept1(f.s, 1, NULL, "{\"b\":1}", "DISC");
	CHECK(!a.failed && !b.failed);
	struct disclosures ip = DISCLOSURES_INIT, both = DISCLOSURES_INIT;
	uint8_t salt[32] = {1};
	disclose(&ip, salt, "192.0.2.1", 9);
	disclose(&both, salt, "192.0.2.1", 9);
	disclose(&both, salt, "Mozilla/5.0", 11);
	const char *fields = "\"method\":\"GET\"";
	struct event_new ev[] = {
		{a.id, EV_OPENED, NULL, &ip, fields, strlen(fields)},
		{a.id, EV_OPENED, NULL, &both, fields, strlen(fields)},
		{a.id, EV_OPENED, NULL, &ip, fields, strlen(fields)},
		{b.id, EV_OPENED, NULL, &ip, fields, strlen(fields)},
		{a.id, EV_OPENED, NULL, &both, fields, strlen(fields)},
	};
	struct selo_err e;
	err_clear(&e);
	CHECK(store_events_add(f.s, ev, 5, &e) == 0);
	struct disclosures got = DISCLOSURES_INIT;
	CHECK(store_disclosures_of(f.s, a.id, &got, &e) == 0 && got.n == 2);
	disclosures_free(&got);
	CHECK(store_disclosures_of(f.s, b.id, &got, &e) == 0 && got.n == 1);
	CHECK(got.n == 1 && !strcmp(got.v[0].commitment, ip.v[0].commitment) &&
	      !strcmp(got.v[0].value, "192.0.2.1"));
	disclosures_free(&got);
	struct event_rec *evs = NULL;
	size_t n = 0;
	CHECK(store_events_of(f.s, a.id, &evs, &n, &e) == 0 && n == 5); /* the submission + 4 */
	CHECK(n == 5 && strstr(evs[4].entry, ",\"method\":\"GET\"}") != NULL);
	event_recs_free(evs, n);
	disclosures_free(&ip);
	disclosures_free(&both);
	store_fx_close(&f);
}

/* The brief's acceptance time is the notice's first relay_accepted or
 * delivery_accepted, whatever follows it; 0 before there is one. */
TEST(notice_brief_gives_the_first_acceptance)
{
	struct store_fx f;
	CHECK(store_fx_open(&f, "store") == 0);
	if (!f.s)
		return;
	struct accept_result a = accept1(f.s, 1, NULL, "{\"brief\":1}", "BRIEF");
	struct selo_err e;
	err_clear(&e);
	uint8_t salt[32];
	int64_t accepted = -1;
	CHECK(store_notice_brief(f.s, a.id, salt, &accepted, &e) == 1 && accepted == 0);
	struct notice_rec *got = NULL;
	size_t n = 0;
	CHECK(store_claim_due(f.s, clock_now_ms(), 5, &got, &n, &e) == 0 && n == 1);
	notice_recs_free(got, n);
	json_t *fields = json_pack("{s:s}", "reply", "250 ok");
	struct result_rec rr = {.id = a.id, .event_type = EV_RELAY_ACCEPTED, .event_fields = fields,
				.state = "relayed"};
	CHECK(store_delivery_results(f.s, &rr, 1, &e) == 0);
	json_decref(fields);
	const char *text = "\"method\":\"GET\"";
	struct event_new ev[50];
	for (size_t i = 0; i < 50; i++)
		ev[i] = (struct event_new){a.id, EV_OPENED, NULL, NULL, text, strlen(text)};
	usleep(2000); /* the opens come strictly later */
	CHECK(store_events_add(f.s, ev, 50, &e) == 0);
	struct event_rec *evs = NULL;
	CHECK(store_events_of(f.s, a.id, &evs, &n, &e) == 0 && n == 52);
	int64_t want = n == 52 ? evs[1].time_ms : -2;
	CHECK(n == 52 && !strcmp(evs[1].type, EV_RELAY_ACCEPTED) && evs[51].time_ms > want);
	event_recs_free(evs, n);
	CHECK(store_notice_brief(f.s, a.id, salt, &accepted, &e) == 1 && accepted == want);
	store_fx_close(&f);
}

TEST(reads_on_empty_store)
{
	struct store_fx f;
	CHECK(store_fx_open(&f, "store") == 0);
	if (!f.s)
		return;
	struct selo_err e;
	err_clear(&e);
	struct event_rec *ev = NULL;
	size_t n = 1;
	CHECK(store_events_after(f.s, 0, 10, &ev, &n, &e) == 0 && n == 0 && ev == NULL);
	struct buf eml = BUF_INIT;
	char hex[65];
	CHECK(store_message_get(f.s, "01ARZ3NDEKTSV4RRFFQ69G5FAV", &eml, hex, &e) == 0);
	buf_free(&eml);
	struct store_counts k;
	CHECK(store_counts(f.s, &k, &e) == 0 && k.events == 0 && k.queued == 0);
	struct notice_rec *got = NULL;
	CHECK(store_claim_due(f.s, clock_now_ms(), 10, &got, &n, &e) == 0 && n == 0);
	CHECK(store_recover_inflight(f.s, &e) == 0);
	CHECK(store_next_due(f.s) == 0);
	CHECK(store_ping(f.s, &e) == 0);
	store_fx_close(&f);
}

static void count_line(void *arg, const char *text)
{
	(void)text;
	(*(int *)arg)++;
}

/* A notices row whose bytes no longer match the schema (what a flipped bit
 * in a record reads as) is an error that names the notice and the column on
 * the read paths, and a row marked damaged in the audit's scan, which goes
 * on to the next row. */
TEST(damaged_rows_are_reported_not_read)
{
	SQLITE_ONLY("PostgreSQL refuses text that is not UTF-8 on write");
	struct store_fx f;
	CHECK(store_fx_open(&f, "store") == 0);
	if (!f.s)
		return;
	char ids[3][27];
	for (int i = 0; i < 3; i++) {
		struct accept_result r = accept1(f.s, 1, NULL, "{}", NULL);
		CHECK(!r.failed);
		memcpy(ids[i], r.id, 27);
	}
	char sql[300];
	snprintf(sql, sizeof(sql), "UPDATE notices SET message_id = CAST(x'41ff42' AS TEXT) WHERE "
		 "id = '%s'; UPDATE notices SET attempts = 'x' WHERE id = '%s'", ids[1], ids[2]);
	CHECK(raw_exec(f.path, sql) == 0);
	struct selo_err e;
	err_clear(&e);
	struct notice_rec rec;
	CHECK(store_notice_get(f.s, ids[0], -1, &rec, &e) == 1);
	notice_rec_free(&rec);
	CHECK(store_notice_get(f.s, ids[1], -1, &rec, &e) == -1);
	CHECK_STR(e.type, "store-damaged");
	CHECK(strstr(e.msg, ids[1]) && strstr(e.msg, "column message_id is not valid UTF-8"));
	err_clear(&e);
	struct notice_rec *recs = NULL;
	size_t n = 0;
	struct notice_filter all = {-1, NULL, NULL, NULL, 100};
	CHECK(store_notice_list(f.s, &all, &recs, &n, &e) == -1 && !recs && n == 0);
	/* ids made in one millisecond need not sort in the order made */
	CHECK(strstr(e.msg, "column message_id") || strstr(e.msg, "column attempts"));
	int64_t cursor = 0;
	CHECK(store_notice_scan(f.s, &cursor, 2, &recs, &n, &e) == 0 && n == 2);
	CHECK(n == 2 && !recs[0].damage && recs[1].damage &&
	      strstr(recs[1].damage, "message_id") && !strcmp(recs[1].id, ids[1]));
	notice_recs_free(recs, n);
	CHECK(store_notice_scan(f.s, &cursor, 2, &recs, &n, &e) == 0 && n == 1);
	CHECK(n == 1 && recs[0].damage && strstr(recs[0].damage, "column attempts is not an integer"));
	notice_recs_free(recs, n);
	CHECK(store_notice_scan(f.s, &cursor, 2, &recs, &n, &e) == 0 && n == 0 && cursor == 3);
	struct event_rec ev;
	CHECK(store_event_first(f.s, ids[0], EV_SUBMISSION_ACCEPTED, &ev, &e) == 1);
	CHECK_STR(ev.notice_id, ids[0]);
	static const char head[] = "{\"v\":1,\"type\":\"submission_accepted\"";
	CHECK(ev.entry && !strncmp(ev.entry, head, sizeof(head) - 1));
	event_rec_free(&ev);
	CHECK(store_event_first(f.s, ids[0], EV_CONTENT_SEALED, &ev, &e) == 0 && !ev.entry);
	int lines = 0;
	CHECK(store_check_file(f.path, 1, 10, count_line, &lines, &e) == 0 && lines == 0);
	CHECK(store_check_file(f.path, 0, 10, count_line, &lines, &e) == 0 && lines == 0);
	store_fx_close(&f);
}

/* A damaged page is a finding of the file check, with SQLite's own lines. */
TEST(file_check_finds_a_damaged_page)
{
	SQLITE_ONLY("damaged pages of the file");
	struct store_fx f;
	CHECK(store_fx_open(&f, "store") == 0);
	if (!f.s)
		return;
	for (int i = 0; i < 3; i++)
		CHECK(!accept1(f.s, 1, NULL, "{}", NULL).failed);
	int64_t page = raw_int(f.path, "SELECT rootpage FROM sqlite_schema WHERE name = "
			       "'notices_by_status'");
	store_close(f.s);
	f.s = NULL;
	CHECK(page > 1);
	FILE *db = fopen(f.path, "r+b");
	CHECK(db != NULL);
	if (db) {
		/* the page's type byte: no b-tree page has type 0x0b */
		CHECK(fseek(db, (long)(page - 1) * 4096, SEEK_SET) == 0 && fputc(0x0b, db) == 0x0b);
		fclose(db);
	}
	struct selo_err e;
	err_clear(&e);
	int lines = 0;
	CHECK(store_check_file(f.path, 0, 10, count_line, &lines, &e) == 1 && lines >= 1);
	lines = 0;
	CHECK(store_check_file(f.path, 1, 3, count_line, &lines, &e) == 1 && lines >= 1 &&
	      lines <= 3);
	char none[160];
	snprintf(none, sizeof(none), "%s/none.db", f.dir);
	CHECK(store_check_file(none, 0, 10, count_line, &lines, &e) == -1);
	store_fx_remove(&f);
}

/* A process killed at any moment keeps every notice it acknowledged: the
 * child reports each id only after store_notices_accept returned. */
TEST(acknowledged_accepts_survive_kill)
{
	struct store_fx f;
	CHECK(store_fx_open(&f, "store") == 0);
	if (!f.s)
		return;
#ifdef T_STORE_PG
	/* the child's 501 would not count here (t_store.h): meet it here first */
	CHECK(!accept1(f.s, 1, NULL, "x", NULL).failed);
#endif
	store_close(f.s);
	f.s = NULL;
	int fds[2];
	CHECK(pipe(fds) == 0);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[0]);
		struct store *s = NULL;
		struct selo_err e;
		if (store_open(f.path, &s, &e) != 0)
			_exit(2);
		for (;;) {
			struct accept_result r = accept1(s, 1, NULL, "x", NULL);
			if (r.failed || write(fds[1], r.id, 27) != 27)
				_exit(3);
		}
	}
	close(fds[1]);
	enum { WANT = 150 };
	char ids[WANT][27];
	size_t got = 0;
	while (got < WANT) {
		size_t off = 0;
		while (off < 27) {
			ssize_t k = read(fds[0], ids[got] + off, 27 - off);
			if (k <= 0)
				break;
			off += (size_t)k;
		}
		if (off < 27)
			break;
		got++;
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(fds[0]);
	CHECK(got == WANT);
	struct selo_err e;
	err_clear(&e);
	CHECK(store_open(f.path, &f.s, &e) == 0);
	if (!f.s) {
		store_fx_remove(&f);
		return;
	}
	size_t missing = 0;
	for (size_t i = 0; i < got; i++) {
		struct notice_rec rec;
		int r = store_notice_get(f.s, ids[i], -1, &rec, &e);
		if (r == 1)
			notice_rec_free(&rec);
		else
			missing++;
	}
	CHECK(missing == 0);
	CHECK(store_ping(f.s, &e) == 0);
	store_fx_close(&f);
}

/* ---- tracker hits and their folds */

static struct hit_fold last_fold;

static json_t *fold_fields(const struct hit_fold *f, void *arg)
{
	(void)arg;
	last_fold = *f;
	return json_pack("{s:I,s:I}", "opened_human", (json_int_t)f->hits[HIT_KIND_OPENED][HIT_CLASS_HUMAN],
			 "addresses", (json_int_t)f->addresses);
}

static struct hit_new hit_of(const char *id, int kind, int cls, char addr, int64_t arrived)
{
	struct hit_new h;
	memset(&h, 0, sizeof(h));
	h.ev.notice_id = id;
	h.ev.type = kind == HIT_KIND_OPENED ? EV_OPENED : EV_CLICKED;
	/* the class in the entry, as the tracker writes it: a tally is
	 * counted again from the entries */
	static const char *const cls_text[] = {"\"class\":\"human\"", "\"class\":\"proxy\"",
					       "\"class\":\"scanner\""};
	h.ev.fields_text = cls_text[cls];
	h.ev.fields_len = strlen(cls_text[cls]);
	h.kind = kind;
	h.cls = cls;
	memset(h.addr, addr, sizeof(h.addr));
	h.arrived_ms = arrived;
	return h;
}

static size_t events_typed(struct store *s, const char *id, const char *type)
{
	struct event_rec *ev = NULL;
	size_t n = 0, k = 0;
	struct selo_err e;
	err_clear(&e);
	CHECK(store_events_of(s, id, &ev, &n, &e) == 0);
	for (size_t i = 0; i < n; i++)
		k += !strcmp(ev[i].type, type);
	event_recs_free(ev, n);
	return k;
}

TEST(hits_fold_past_the_first_of_each_kind_and_class)
{
	struct store_fx f;
	CHECK(store_fx_open(&f, "store") == 0);
	if (!f.s)
		return;
	struct accept_result r = accept1(f.s, 1, NULL, "x", NULL);
	const char *id = r.id;
	struct fold_rule rule = {2, 1000, 4000};
	struct selo_err e;
	err_clear(&e);
	struct hit_new h[] = {
		hit_of(id, HIT_KIND_OPENED, HIT_CLASS_HUMAN, 'a', 1000),
		hit_of(id, HIT_KIND_OPENED, HIT_CLASS_HUMAN, 'a', 1001),
		hit_of(id, HIT_KIND_OPENED, HIT_CLASS_HUMAN, 'b', 1002),
		hit_of(id, HIT_KIND_OPENED, HIT_CLASS_PROXY, 'c', 1003),
		hit_of(id, HIT_KIND_CLICKED, HIT_CLASS_SCANNER, 'd', 1004),
	};
	size_t folded = 99;
	CHECK(store_hits_add(f.s, h, 5, &rule, &folded, &e) == 0 && folded == 1);
	struct hit_new more[] = {
		hit_of(id, HIT_KIND_OPENED, HIT_CLASS_HUMAN, 'a', 1500),
		hit_of(id, HIT_KIND_OPENED, HIT_CLASS_HUMAN, 'e', 900), /* arrived out of order */
	};
	CHECK(store_hits_add(f.s, more, 2, &rule, &folded, &e) == 0 && folded == 2);
	CHECK(events_typed(f.s, id, EV_OPENED) == 3 && events_typed(f.s, id, EV_CLICKED) == 1);
	size_t closed = 99;
	CHECK(store_folds_close(f.s, 2001, 10, fold_fields, NULL, &closed, &e) == 0 && closed == 0);
	CHECK(store_folds_close(f.s, 2002, 10, fold_fields, NULL, &closed, &e) == 0 && closed == 1);
	CHECK(last_fold.hits[HIT_KIND_OPENED][HIT_CLASS_HUMAN] == 3);
	CHECK(last_fold.hits[HIT_KIND_CLICKED][HIT_CLASS_SCANNER] == 0);
	CHECK(last_fold.addresses == 3); /* b, a, e */
	CHECK(last_fold.first_ms == 900 && last_fold.last_ms == 1500 && last_fold.summaries == 0);
	CHECK_STR(last_fold.notice_id, id);
	CHECK(events_typed(f.s, id, EV_TRACKING_SUMMARY) == 1);
	CHECK(store_folds_close(f.s, 99999, 10, fold_fields, NULL, &closed, &e) == 0 && closed == 0);
	/* the next fold stays open twice as long */
	struct hit_new late = hit_of(id, HIT_KIND_OPENED, HIT_CLASS_HUMAN, 'a', 5000);
	CHECK(store_hits_add(f.s, &late, 1, &rule, &folded, &e) == 0 && folded == 1);
	CHECK(store_folds_close(f.s, 6999, 10, fold_fields, NULL, &closed, &e) == 0 && closed == 0);
	CHECK(store_folds_close(f.s, 7000, 10, fold_fields, NULL, &closed, &e) == 0 && closed == 1);
	CHECK(last_fold.summaries == 1 && last_fold.addresses == 1);
	/* a notice without its tally row counts its events again */
	CHECK(raw_exec(f.path, "DELETE FROM hit_tally") == 0);
	struct hit_new again[] = {hit_of(id, HIT_KIND_OPENED, HIT_CLASS_HUMAN, 'z', 8000),
				  hit_of(id, HIT_KIND_OPENED, HIT_CLASS_PROXY, 'z', 8001),
				  hit_of(id, HIT_KIND_OPENED, HIT_CLASS_PROXY, 'z', 8002)};
	CHECK(store_hits_add(f.s, again, 3, &rule, &folded, &e) == 0 && folded == 2);
	CHECK(events_typed(f.s, id, EV_OPENED) == 4);
	CHECK(store_folds_close(f.s, 8000 + 4000, 10, fold_fields, NULL, &closed, &e) == 0 &&
	      closed == 1);
	CHECK(last_fold.summaries == 2 && last_fold.hits[HIT_KIND_OPENED][HIT_CLASS_PROXY] == 1);
	/* an unknown notice refuses the call, and writes nothing */
	struct hit_new ghost = hit_of("01JD0000000000000000000000", HIT_KIND_OPENED, HIT_CLASS_HUMAN,
				      'a', 1);
	err_clear(&e);
	CHECK(store_hits_add(f.s, &ghost, 1, &rule, &folded, &e) == -1 && e.status == 404);
	store_fx_close(&f);
}

/* Accepts a notice with a 1 MiB attachment: 0 stored, -1 refused. */
static int accept_large(struct store *s, struct selo_err *e)
{
	static uint8_t data[1 << 20];
	struct notice_new n;
	notice_make(&n, 1, NULL, "large", NULL);
	struct attachment_in att = {"grande.pdf", "application/pdf", data, sizeof(data)};
	n.att = &att;
	n.natt = 1;
	struct accept_result r;
	memset(&r, 0, sizeof(r));
	int rc = store_notices_accept(s, &n, 1, &r, e);
	json_decref(n.event_fields);
	return rc;
}

/* In a child (the file size limit is the process's): with RLIMIT_FSIZE at
 * 0 every write to the files fails, as on a full disk. The store says
 * failing, with the class; the writer's probes keep trying (and failing)
 * with no other write; once writes succeed the probe finds out, and the
 * store says healthy STORE_HEALTHY_AFTER_MS after the last failure. A
 * caller's mistake never counts. */
static void health_child(const char *path)
{
	struct store *s = NULL;
	struct selo_err e;
	err_clear(&e);
	if (store_open(path, &s, &e) != 0)
		_exit(2);
	struct store_health h;
	CHECK(!accept1(s, 1, NULL, "a", NULL).failed);
	CHECK(!accept1(s, 1, "k", "one", NULL).failed);
	CHECK(accept1(s, 1, "k", "two", NULL).failed); /* 422: the key came with another body */
	store_health(s, &h);
	CHECK(!h.failing && h.failures == 0 && h.fault == STORE_FAULT_NONE && !h.failing_since_ms);
	signal(SIGXFSZ, SIG_IGN);
	struct rlimit rl;
	getrlimit(RLIMIT_FSIZE, &rl);
	struct rlimit none = {0, rl.rlim_max};
	/* The limit holds for stderr too when it is a file: the checks come
	 * after it is lifted. */
	int limited = setrlimit(RLIMIT_FSIZE, &none) == 0;
	int refused = accept_large(s, &e) != 0 && e.status == 500;
	struct store_health h1, h2;
	store_health(s, &h1);
	usleep(2500 * 1000);
	store_health(s, &h2);
	CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);
	CHECK(limited && refused);
	CHECK(h1.failing && h1.failures == 1 && h1.failing_since_ms > 0 && h1.last_failure_ms > 0);
	CHECK(h1.fault == STORE_FAULT_IO || h1.fault == STORE_FAULT_DISK_FULL);
	CHECK(!strcmp(store_fault_name(h1.fault), "io-error") ||
	      !strcmp(store_fault_name(h1.fault), "disk-full"));
	CHECK(h2.failing && h2.failures == 1 && h2.last_failure_ms >= h1.last_failure_ms + STORE_PROBE_MS);
	h = h2;
	int64_t t0 = clock_now_ms();
	while (h.failing && clock_now_ms() - t0 < 60000) {
		usleep(100 * 1000);
		store_health(s, &h);
	}
	int64_t took = clock_now_ms() - t0;
	CHECK(!h.failing && !h.failing_since_ms && took >= STORE_HEALTHY_AFTER_MS - STORE_PROBE_MS - 500);
	CHECK(h.failures == 1); /* the probes are not counted */
	CHECK(accept_large(s, &e) == 0);
	store_close(s);
	_exit(t_failed_now ? 1 : 0);
}

TEST(health_follows_failing_writes)
{
	SQLITE_ONLY("failing writes to the file (RLIMIT_FSIZE)");
	struct store_fx f;
	CHECK(store_fx_open(&f, "health") == 0);
	if (!f.s)
		return;
	store_close(f.s);
	f.s = NULL;
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0)
		health_child(f.path);
	int st = 0;
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	store_fx_remove(&f);
}
