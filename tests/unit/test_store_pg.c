/* test_store_pg.c: the PostgreSQL backend's foundation (store_pg*.c)
 * against a private PostgreSQL 15 (t_pg.h): migrations (once, under the
 * lock, refusing a newer schema), the pool's deadlines and reconnection,
 * the SQLSTATE mapping, transaction retries, the shared-keys check, and
 * that no password ever shows in a message or a log line. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include "t.h"
#include "t_pg.h"
#include "t_stderr.h"
#include "selo/clock.h"
#include "selo/store.h"
#include "../../src/store_pg_int.h"

static struct pgstore *open_url(const char *url, int timeout_ms, struct selo_err *e)
{
	struct pgstore_opts o = {.url = url, .pool_size = 2, .timeout_ms = timeout_ms,
				 .node = "t-node"};
	err_clear(e);
	return pgstore_open(&o, e);
}

static const char *one_value(const char *url, const char *sql, char *out, size_t n)
{
	PGconn *c = PQconnectdb(url);
	PGresult *r = PQexec(c, sql);
	snprintf(out, n, "%s", PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) ?
		 PQgetvalue(r, 0, 0) : "(error)");
	PQclear(r);
	PQfinish(c);
	return out;
}

TEST(open_migrates_to_the_binary_schema)
{
	T_PG_NEED();
	char url[640], v[64];
	struct selo_err e;
	CHECK(t_pg_new_db(url, sizeof url) == 0);
	struct pgstore *s = open_url(url, 5000, &e);
	CHECK(s != NULL);
	if (!s) {
		fprintf(stderr, "  %s\n", e.msg);
		return;
	}
	int ver = -1;
	CHECK(pgstore_schema_version(s, &ver, &e) == 0);
	CHECK(ver == PGSTORE_SCHEMA_VERSION);
	CHECK_STR(one_value(url, "SELECT count(*) FROM schema_migrations", v, sizeof v), "2");
	CHECK_STR(one_value(url, "SELECT applied_by FROM schema_migrations WHERE version = 1", v,
			    sizeof v), "t-node");
	/* what several nodes need is there */
	CHECK_STR(one_value(url, "SELECT count(*) FROM information_schema.columns WHERE"
			    " column_name IN ('claimed_by', 'lease_until')", v, sizeof v), "4");
	CHECK_STR(one_value(url, "SELECT name FROM nodes", v, sizeof v), "t-node");
	CHECK_STR(one_value(url, "SELECT data_type FROM information_schema.columns WHERE"
			    " table_name = 'messages' AND column_name = 'eml'", v, sizeof v), "bytea");
	pgstore_close(s);
	/* opening again applies nothing and keeps the record */
	s = open_url(url, 5000, &e);
	CHECK(s != NULL);
	pgstore_close(s);
	CHECK_STR(one_value(url, "SELECT count(*) FROM schema_migrations", v, sizeof v), "2");
}

struct opener {
	const char *url;
	pthread_barrier_t *go;
	int ok;
	struct selo_err e;
};

static void *open_concurrently(void *arg)
{
	struct opener *o = arg;
	pthread_barrier_wait(o->go);
	struct pgstore *s = open_url(o->url, 20000, &o->e);
	o->ok = s != NULL;
	pgstore_close(s);
	return NULL;
}

TEST(concurrent_opens_migrate_once)
{
	T_PG_NEED();
	enum { N = 4 };
	char url[640], v[64];
	CHECK(t_pg_new_db(url, sizeof url) == 0);
	pthread_barrier_t go;
	pthread_barrier_init(&go, NULL, N);
	pthread_t th[N];
	struct opener op[N];
	for (int i = 0; i < N; i++) {
		op[i] = (struct opener){.url = url, .go = &go};
		pthread_create(&th[i], NULL, open_concurrently, &op[i]);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		CHECK(op[i].ok);
		if (!op[i].ok)
			fprintf(stderr, "  opener %d: %s\n", i, op[i].e.msg);
	}
	pthread_barrier_destroy(&go);
	/* a second run of migration 1 would have failed ("already exists") */
	CHECK_STR(one_value(url, "SELECT count(*) || '/' || count(DISTINCT version)"
			    " FROM schema_migrations", v, sizeof v), "2/2");
}

TEST(newer_schema_is_refused)
{
	T_PG_NEED();
	char url[640], db[32];
	struct selo_err e;
	CHECK(t_pg_new_db(url, sizeof url) == 0);
	struct pgstore *s = open_url(url, 5000, &e);
	CHECK(s != NULL);
	pgstore_close(s);
	snprintf(db, sizeof db, "t%d", t_pg_ndb);
	CHECK(t_pg_sql(db, "INSERT INTO schema_migrations VALUES (99, 'from the future', 0, 'x')")
	      == 0);
	s = open_url(url, 5000, &e);
	CHECK(s == NULL);
	CHECK(e.status == 500);
	CHECK_STR(e.type, "store-schema-newer");
	CHECK(strstr(e.msg, "version 99") != NULL);
	pgstore_close(s);
}

TEST(redaction_hides_passwords_in_every_form)
{
	char *r = pgstore_redact_url("host=/tmp/x port=5432 user=selo password=hunter2 dbname=selo");
	CHECK(strstr(r, "hunter2") == NULL);
	CHECK(strstr(r, "password=***") != NULL);
	CHECK(strstr(r, "host=/tmp/x") != NULL);
	free(r);
	r = pgstore_redact_url("postgresql://selo:hunter2@db1:5432,db2:5432/selo"
			       "?target_session_attrs=read-write&sslpassword=keypass");
	CHECK(strstr(r, "hunter2") == NULL);
	CHECK(strstr(r, "keypass") == NULL);
	CHECK(strstr(r, "target_session_attrs=read-write") != NULL);
	free(r);
	r = pgstore_redact_url("host='unterminated password=hunter2");
	CHECK(strstr(r, "hunter2") == NULL);
	free(r);
	r = pgstore_redact_url("password='a b\\' c' host=h");
	CHECK(strstr(r, "a b") == NULL);
	CHECK(strstr(r, "host=h") != NULL);
	free(r);
}

static void open_and_log(void *arg)
{
	struct selo_err *e = arg;
	char url[640];
	if (t_pg_new_db(url, sizeof url) != 0)
		return;
	pgstore_close(open_url(url, 5000, e)); /* logs "migrations applied to <url>" */
}

TEST(password_never_in_messages_or_logs)
{
	T_PG_NEED();
	struct selo_err e;
	char url[720];
	/* a wrong password: the error names the server, never either password */
	snprintf(url, sizeof url, "%s password=WrongPw-77x1", t_pg_url());
	struct pgstore *s = open_url(url, 5000, &e);
	CHECK(s == NULL);
	CHECK(e.status == 503);
	CHECK(strstr(e.msg, "password authentication failed") != NULL);
	CHECK(strstr(e.msg, "WrongPw-77x1") == NULL);
	CHECK(strstr(e.msg, T_PG_PASSWORD) == NULL);
	CHECK(strstr(e.msg, "password=***") != NULL);
	/* the log line of a successful open */
	char *log = stderr_of(open_and_log, &e);
	CHECK(log != NULL);
	if (log) {
		CHECK(strstr(log, "migration") != NULL);
		CHECK(strstr(log, T_PG_PASSWORD) == NULL);
	}
	free(log);
}

TEST(pool_survives_a_server_restart)
{
	T_PG_NEED();
	char url[640];
	struct selo_err e;
	CHECK(t_pg_new_db(url, sizeof url) == 0);
	struct pgstore *s = open_url(url, 5000, &e);
	CHECK(s != NULL);
	if (!s)
		return;
	int ver = 0;
	CHECK(pgstore_schema_version(s, &ver, &e) == 0);
	t_pg_restart();
	/* the pooled connections died with the old server: found stale and replaced */
	ver = 0;
	CHECK(pgstore_schema_version(s, &ver, &e) == 0);
	CHECK(ver == PGSTORE_SCHEMA_VERSION);
	CHECK(pgstore_meta_check(s, "log_vkey", "selo+abcd+AAAA", &e) == 0);
	pgstore_close(s);
}

TEST(unreachable_server_fails_within_the_timeout)
{
	/* a listener that never answers: libpq's startup waits for a reply */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
	CHECK(listen(fd, 8) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&a, &al) == 0);
	char url[160];
	snprintf(url, sizeof url, "host=127.0.0.1 port=%d dbname=selo user=selo password=Zz9-secret",
		 ntohs(a.sin_port));
	struct selo_err e;
	int64_t t0 = clock_mono_ms();
	struct pgstore *s = open_url(url, 400, &e);
	int64_t took = clock_mono_ms() - t0;
	CHECK(s == NULL);
	CHECK(e.status == 503);
	CHECK_STR(e.type, "store-unavailable");
	CHECK(took >= 350 && took < 1500);
	CHECK(strstr(e.msg, "Zz9-secret") == NULL);
	close(fd);
	/* nothing listening at all: at once */
	t0 = clock_mono_ms();
	s = open_url("host=/nonexistent-dir port=1 dbname=selo", 400, &e);
	CHECK(s == NULL && e.status == 503);
	CHECK(clock_mono_ms() - t0 < 1500);
}

static int sleepy(struct pgconn *c, void *arg, int64_t deadline, enum pg_fail *fail,
		  struct selo_err *err)
{
	(void)arg;
	return pgconn_simple(c, "SELECT pg_sleep(5)", deadline, fail, "sleeping", err);
}

TEST(a_slow_answer_fails_within_the_timeout)
{
	T_PG_NEED();
	char url[640];
	struct selo_err e;
	CHECK(t_pg_new_db(url, sizeof url) == 0);
	/* Migrated first with time to spare (on a loaded machine creating the
	 * schema can take longer than the short timeout under test). */
	pgstore_close(open_url(url, 30000, &e));
	struct pgstore *s = open_url(url, 400, &e);
	CHECK(s != NULL);
	if (!s) {
		fprintf(stderr, "  %s\n", e.msg);
		return;
	}
	enum pg_fail fail;
	int64_t t0 = clock_mono_ms();
	CHECK(pgstore_txn(s, sleepy, NULL, &fail, &e) == -1);
	int64_t took = clock_mono_ms() - t0;
	CHECK(fail == PG_UNAVAILABLE);
	CHECK(e.status == 503);
	CHECK(took < 1500);
	/* and the pool still works afterwards */
	int ver = 0;
	CHECK(pgstore_schema_version(s, &ver, &e) == 0 && ver == PGSTORE_SCHEMA_VERSION);
	pgstore_close(s);
}

static int insert_meta_twice(struct pgconn *c, void *arg, int64_t deadline, enum pg_fail *fail,
			     struct selo_err *err)
{
	(void)arg;
	const char *sql = "INSERT INTO store_meta VALUES ('dup', 'v', 0, 'n')";
	if (pgconn_simple(c, sql, deadline, fail, "first insert", err) != 0)
		return -1;
	return pgconn_simple(c, sql, deadline, fail, "second insert", err);
}

static int fails_twice_then_commits(struct pgconn *c, void *arg, int64_t deadline,
				    enum pg_fail *fail, struct selo_err *err)
{
	int *runs = arg;
	if (++*runs <= 2) /* as a serialization failure does */
		return pgconn_simple(c, "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING"
				     " ERRCODE = '40001'; END $$", deadline, fail, "racing", err);
	return pgconn_simple(c, "INSERT INTO store_meta VALUES ('retried', 'v', 0, 'n')", deadline,
			     fail, "inserting", err);
}

static int deadlocks_always(struct pgconn *c, void *arg, int64_t deadline, enum pg_fail *fail,
			    struct selo_err *err)
{
	int *runs = arg;
	++*runs;
	return pgconn_simple(c, "DO $$ BEGIN RAISE EXCEPTION 'dl' USING ERRCODE = '40P01'; END $$",
			     deadline, fail, "deadlocking", err);
}

TEST(sqlstates_map_to_errors_and_retries)
{
	T_PG_NEED();
	char url[640], v[64];
	struct selo_err e;
	enum pg_fail fail;
	CHECK(t_pg_new_db(url, sizeof url) == 0);
	struct pgstore *s = open_url(url, 5000, &e);
	CHECK(s != NULL);
	if (!s)
		return;
	CHECK(pgstore_txn(s, insert_meta_twice, NULL, &fail, &e) == -1);
	CHECK(fail == PG_CONFLICT);
	CHECK(e.status == 409);
	CHECK_STR(one_value(url, "SELECT count(*) FROM store_meta WHERE key = 'dup'", v, sizeof v),
		  "0"); /* rolled back */
	int runs = 0;
	CHECK(pgstore_txn(s, fails_twice_then_commits, &runs, &fail, &e) == 0);
	CHECK(runs == 3);
	CHECK_STR(one_value(url, "SELECT count(*) FROM store_meta WHERE key = 'retried'", v,
			    sizeof v), "1");
	runs = 0;
	CHECK(pgstore_txn(s, deadlocks_always, &runs, &fail, &e) == -1);
	CHECK(runs == PGSTORE_TXN_TRIES);
	CHECK(fail == PG_RETRY && e.status == 503);
	pgstore_close(s);
}

TEST(nodes_with_other_keys_are_refused)
{
	T_PG_NEED();
	char url[640];
	struct selo_err e;
	CHECK(t_pg_new_db(url, sizeof url) == 0);
	struct pgstore *s = open_url(url, 5000, &e);
	CHECK(s != NULL);
	if (!s)
		return;
	CHECK(pgstore_meta_check(s, "token_key_sha256", "aa11", &e) == 0);
	CHECK(pgstore_meta_check(s, "token_key_sha256", "aa11", &e) == 0);
	CHECK(pgstore_meta_check(s, "token_key_sha256", "bb22", &e) == -1);
	CHECK(e.status == 500);
	CHECK_STR(e.type, "store-keys-differ");
	CHECK(strstr(e.msg, "token_key_sha256") != NULL);
	CHECK(strstr(e.msg, "t-node") != NULL);
	pgstore_close(s);
}

struct batch_arg {
	int n;
	int bad; /* the index of an item whose value is NULL (not-null violation), or -1 */
	int got;
};

static int put_batch(struct pgconn *c, void *arg, int64_t deadline, enum pg_fail *fail,
		     struct selo_err *err)
{
	struct batch_arg *a = arg;
	static char keys[200][16];
	static const char *vals[200][4];
	struct pgbatch_item items[200];
	PGresult *res[200];
	for (int i = 0; i < a->n; i++) {
		snprintf(keys[i], sizeof keys[i], "k%d", i);
		vals[i][0] = keys[i];
		vals[i][1] = i == a->bad ? NULL : "v";
		vals[i][2] = "0";
		vals[i][3] = "batch";
		items[i] = (struct pgbatch_item){.st = PG_S_META_PUT, .n = 4, .vals = vals[i]};
	}
	int rc = pgconn_pipeline(c, items, a->n, res, deadline, fail, "storing a batch", err);
	for (int i = 0; rc == 0 && i < a->n; i++) {
		a->got += res[i] && PQcmdTuples(res[i])[0] == '1';
		PQclear(res[i]);
	}
	return rc;
}

TEST(pipeline_batches_commit_together_or_not_at_all)
{
	T_PG_NEED();
	char url[640], v[64];
	struct selo_err e;
	enum pg_fail fail;
	CHECK(t_pg_new_db(url, sizeof url) == 0);
	struct pgstore *s = open_url(url, 5000, &e);
	CHECK(s != NULL);
	if (!s)
		return;
	struct batch_arg a = {.n = 150, .bad = 70};
	CHECK(pgstore_txn(s, put_batch, &a, &fail, &e) == -1);
	CHECK(fail == PG_FAILED && e.status == 500);
	CHECK(strstr(e.msg, "storing a batch") != NULL);
	CHECK_STR(one_value(url, "SELECT count(*) FROM store_meta WHERE set_by = 'batch'", v,
			    sizeof v), "0");
	/* the connection came back usable: the same pool runs the good batch */
	a = (struct batch_arg){.n = 150, .bad = -1};
	CHECK(pgstore_txn(s, put_batch, &a, &fail, &e) == 0);
	CHECK(a.got == 150);
	CHECK_STR(one_value(url, "SELECT count(*) FROM store_meta WHERE set_by = 'batch'", v,
			    sizeof v), "150");
	pgstore_close(s);
}

/* store_lead: one node at a time holds a role; it goes with the session
 * (a closed store, a terminated backend) and another node takes it; the
 * roles are independent of each other. */
static struct store *open_node(const char *url, const char *node)
{
	struct store_params p = {.backend = "postgres", .target = url, .node = node,
				 .timeout_ms = 3000, .pool_size = 2};
	struct store *s = NULL;
	struct selo_err e;
	err_clear(&e);
	if (store_open_backend(&p, &s, &e) != 0)
		fprintf(stderr, "  open %s: %s\n", node, e.msg);
	return s;
}

static int lead(struct store *s, enum store_role role)
{
	struct selo_err e;
	err_clear(&e);
	int r = store_lead(s, role, &e);
	if (r < 0)
		fprintf(stderr, "  store_lead: %s\n", e.msg);
	return r;
}

/* Asks for role until it is held, for at most ms: 1 held, 0 not. */
static int lead_within(struct store *s, enum store_role role, int ms)
{
	int64_t end = clock_mono_ms() + ms;
	while (lead(s, role) != 1) {
		if (clock_mono_ms() > end)
			return 0;
		usleep(20000);
	}
	return 1;
}

TEST(roles_are_held_by_one_node_at_a_time)
{
	T_PG_NEED();
	char url[640], v[64];
	CHECK(t_pg_new_db(url, sizeof url) == 0);
	struct store *a = open_node(url, "node-a"), *b = open_node(url, "node-b");
	CHECK(a && b);
	if (!a || !b)
		goto out;
	CHECK(lead(a, STORE_ROLE_INTEGRATOR) == 1);
	CHECK(lead(b, STORE_ROLE_INTEGRATOR) == 0);
	CHECK(lead(a, STORE_ROLE_INTEGRATOR) == 1); /* asking again keeps it */
	CHECK(lead(b, STORE_ROLE_STATS) == 1);      /* another role, another holder */
	CHECK(lead(a, STORE_ROLE_STATS) == 0);
	/* Asking again does not stack the lock: one backend holds one lock per role. */
	CHECK_STR(one_value(url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
			    " AND granted", v, sizeof v), "2");
	/* The holder's session ends (an operator, a restart, a cut): the other
	 * node takes the role on its next ask, and the first learns it lost it. */
	CHECK_STR(one_value(url, "SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l"
			    " JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory'"
			    " AND l.granted AND a.application_name = 'selo node-a'", v, sizeof v), "1");
	CHECK(lead_within(b, STORE_ROLE_INTEGRATOR, 5000));
	CHECK(lead(a, STORE_ROLE_INTEGRATOR) == 0);
	/* A closed store frees its roles (once the server has ended its
	 * sessions: that takes a moment after the client hangs up). */
	store_close(b);
	b = NULL;
	CHECK(lead_within(a, STORE_ROLE_INTEGRATOR, 5000));
	CHECK(lead_within(a, STORE_ROLE_STATS, 5000));
out:
	store_close(a);
	store_close(b);
}

/* A store for one node (SQLite) always holds every role. */
TEST(sqlite_holds_every_role)
{
	char dir[] = "/tmp/selo-tlead-XXXXXX", path[64];
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof path, "%s/selo.db", dir);
	struct store *s = NULL;
	struct selo_err e;
	err_clear(&e);
	CHECK(store_open(path, &s, &e) == 0);
	for (int r = 0; s && r < STORE_ROLE_COUNT; r++)
		CHECK(lead(s, (enum store_role)r) == 1);
	CHECK(lead(s, STORE_ROLE_COUNT) == -1);
	int64_t next = 0; /* and has no leases to renew */
	CHECK(s && store_claims_renew(s, &next, &e) == 0 && next == -1);
	store_close(s);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
}
