/* t_store.h: a fresh store for the unit tests that write through store.h
 * (the store conformance suite), on SQLite or on PostgreSQL. Include after
 * t.h and before the first TEST.
 *
 * SQLite (the default): store_fx_open makes /tmp/selo-<name>-XXXXXX and
 * opens DIR/selo.db in it; f.path is that file.
 *
 * PostgreSQL: a program built with T_STORE_PG defined (tests/unit/
 * test_<name>_onpg.c defines it and #includes test_<name>.c) runs the same
 * tests on PostgreSQL. The program starts one private cluster (t_pg.h) and
 * store_fx_open gives each test a fresh database, opened with
 * store_open_backend(postgres); f.path is then that database's connection
 * string, and store_open(f.path, ...) in a test opens that database again
 * (store_open is a macro here), so a test that closes and reopens its store
 * means the same on both backends. store_fx_raw_int/store_fx_raw_exec run
 * SQL beside the store on either backend (plain SQL both understand).
 *
 * SQLITE_ONLY(why) at the start of a test that only makes sense on SQLite
 * (the file, its WAL, damaged pages, SQLite's SQL) skips it on PostgreSQL.
 *
 * On PostgreSQL each test runs in a child process (its store, its
 * databases and its memory end with it; a crash is a failure, a leak too
 * under the sanitizers). Without the PostgreSQL binaries every test skips;
 * with them but a cluster that could not start, every test fails. */
#ifndef SELO_T_STORE_H
#define SELO_T_STORE_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "selo/store.h"

struct store_fx {
	char dir[64];
	char path[640]; /* SQLite: DIR/selo.db; PostgreSQL: the connection string */
	struct store *s;
};

#ifndef T_STORE_PG
#define SQLITE_ONLY(why) ((void)0)
#define T_STORE_BACKEND "sqlite"
#else
#include <sys/wait.h>
#include "t_pg.h"
#define T_STORE_BACKEND "postgres"
#define SQLITE_ONLY(why) SKIP("SQLite only: " why)

/* t_pg.h's restart, for the tests that want it (and no unused warning). */
static void (*const t_store_pg_restart)(void) __attribute__((unused)) = t_pg_restart;

/* LeakSanitizer's check, present in a sanitizer build only. */
extern void __lsan_do_leak_check(void) __attribute__((weak));

static inline int t_store_pg_open(const char *url, struct store **out, struct selo_err *err)
{
	struct store_params p = {.backend = "postgres", .target = url, .node = "t-node"};
	return store_open_backend(&p, out, err);
}
/* The test's store_open(f.path, ...) reopens f's database. */
#define store_open(path, out, err) t_store_pg_open((path), (out), (err))

enum { T_STORE_PG_PASS, T_STORE_PG_FAIL, T_STORE_PG_SKIP };

/* Drops the databases t<base+1>..t<base+4> that are there, quietly. */
static inline void t_store_pg_drop(int base)
{
	char url[640], sql[80];
	snprintf(url, sizeof(url), "%s dbname=selo", t_pg_base);
	PGconn *c = PQconnectdb(url);
	if (PQstatus(c) == CONNECTION_OK) {
		PQclear(PQexec(c, "SET client_min_messages = warning"));
		for (int i = 1; i <= 4; i++) {
			snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS t%d WITH (FORCE)", base + i);
			PQclear(PQexec(c, sql));
		}
	}
	PQfinish(c);
}

/* Runs one test in a child process, leaving nothing behind (its store,
 * its memory) in this one. The child
 * ends with _exit: the cluster is this process's (t_pg.h's atexit). */
static inline void t_store_pg_run(void (*fn)(void))
{
	static int ntest;
	int base = ++ntest * 1000; /* databases t<base+1>...: the child's own names */
	if (!t_pg_url()) {
		if (t_pg_absent)
			SKIP("PostgreSQL 15 binaries not installed");
		CHECK(!"the private PostgreSQL could not be started");
		return;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		CHECK(!"fork");
		return;
	}
	if (pid == 0) {
		t_pg_ndb = base;
		fn();
		fflush(NULL);
		if (__lsan_do_leak_check)
			__lsan_do_leak_check(); /* exits non-zero on a leak */
		_exit(t_failed_now ? T_STORE_PG_FAIL : t_skipped_now ? T_STORE_PG_SKIP : T_STORE_PG_PASS);
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0)
		;
	int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	if (code == T_STORE_PG_SKIP) {
		t_skipped_now = 1;
		t_store_pg_drop(base); /* a skip may leave the test's databases there */
	} else if (code != T_STORE_PG_PASS) {
		if (code < 0)
			fprintf(stderr, "  the test died of signal %d\n", WTERMSIG(st));
		t_failed_now = 1;
	}
}

/* t.h's TEST, with each test run through t_store_pg_run. */
#undef TEST
#define TEST(tn)                                                     \
	static void t_##tn(void);                                        \
	static void t_pgrun_##tn(void) { t_store_pg_run(t_##tn); }       \
	__attribute__((constructor)) static void t_reg_##tn(void) {      \
		t_cases[t_ncases].name = #tn;                                \
		t_cases[t_ncases++].fn = t_pgrun_##tn;                       \
	}                                                                \
	static void t_##tn(void)

/* One value (first column of the first row) of sql on the database url, as
 * an integer; -1 when the query fails or has no row. */
static inline int64_t store_fx_raw_int(const char *url, const char *sql)
{
	int64_t v = -1;
	PGconn *c = PQconnectdb(url);
	if (PQstatus(c) == CONNECTION_OK) {
		PGresult *r = PQexec(c, sql);
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
			v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		else if (PQresultStatus(r) != PGRES_TUPLES_OK)
			fprintf(stderr, "  raw sql: %s", PQerrorMessage(c));
		PQclear(r);
	}
	PQfinish(c);
	return v;
}

/* Runs sql (one or more statements) on the database url: 0 or -1. */
static inline int store_fx_raw_exec(const char *url, const char *sql)
{
	int rc = -1;
	PGconn *c = PQconnectdb(url);
	if (PQstatus(c) == CONNECTION_OK) {
		PGresult *r = PQexec(c, sql);
		ExecStatusType st = PQresultStatus(r);
		rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;
		if (rc)
			fprintf(stderr, "  raw sql: %s", PQerrorMessage(c));
		PQclear(r);
	}
	PQfinish(c);
	return rc;
}
#endif

/* Makes /tmp/selo-<name>-XXXXXX (both backends: some tests keep files
 * there) and opens a fresh store: 0, or -1 with why on stderr. */
static inline int store_fx_open(struct store_fx *f, const char *name)
{
	snprintf(f->dir, sizeof(f->dir), "/tmp/selo-%.20s-XXXXXX", name);
	f->s = NULL;
	f->path[0] = '\0';
	if (!mkdtemp(f->dir))
		return -1;
#ifdef T_STORE_PG
	if (t_pg_new_db(f->path, sizeof(f->path)) != 0) {
		rmdir(f->dir);
		return -1;
	}
#else
	snprintf(f->path, sizeof(f->path), "%s/selo.db", f->dir);
#endif
	struct selo_err e;
	err_clear(&e);
	if (store_open(f->path, &f->s, &e) != 0) {
		fprintf(stderr, "  store_open (%s): %s\n", T_STORE_BACKEND, e.msg);
		return -1;
	}
	return 0;
}

/* Removes the store: SQLite's database, WAL and journal files; PostgreSQL's
 * database (its connections must be closed); and the directory. */
static inline void store_fx_remove(struct store_fx *f)
{
#ifdef T_STORE_PG
	const char *db = strrchr(f->path, '='); /* t_pg_new_db's dbname=tN comes last */
	if (db && f->path[0]) {
		char sql[96];
		snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %.40s WITH (FORCE)", db + 1);
		t_pg_sql(NULL, sql);
	}
#else
	char p[700];
	static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
	for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", f->path, suffix[i]);
		unlink(p);
	}
#endif
	rmdir(f->dir);
}

static inline void store_fx_close(struct store_fx *f)
{
	store_close(f->s);
	f->s = NULL;
	store_fx_remove(f);
}

#endif
