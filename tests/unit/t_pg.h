/* t_pg.h: one private PostgreSQL 15 per unit-test program, for the tests
 * of the PostgreSQL store. The first t_pg_url() starts it through
 * tests/pg/cluster.sh (tests/integration/pgtest.py: initdb into a fresh
 * /tmp directory, as nobody when root, Unix socket there, password auth)
 * and registers an atexit handler that stops it by the pid in its
 * postmaster.pid; the cluster is also started with --watch <our pid>, so a
 * program that crashes still gets it stopped. Without the PostgreSQL
 * binaries t_pg_url() returns NULL and T_PG_NEED() SKIPs the test.
 * Needs the repository root as the working directory (as every unit test). */
#ifndef SELO_T_PG_H
#define SELO_T_PG_H
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The cluster's password: tests check that it never shows. */
#define T_PG_PASSWORD "Pw-t0p-S3cret-9f2c"

static char t_pg_dir[64];
static char t_pg_base[512];
static int t_pg_state; /* 0 not tried, 1 running, -1 unavailable */
static int t_pg_ndb;
static int t_pg_absent; /* cluster.sh said: no PostgreSQL binaries (exit 3) */

/* In a test: SKIP when PostgreSQL is not installed, fail when it is but
 * could not be started (a broken cluster must not pass as "skipped"). */
#define T_PG_NEED()                                                          \
	do {                                                                     \
		if (!t_pg_url()) {                                                   \
			if (t_pg_absent)                                                 \
				SKIP("PostgreSQL 15 binaries not installed");               \
			CHECK(!"the private PostgreSQL could not be started");           \
			return;                                                          \
		}                                                                    \
	} while (0)

static void t_pg_cmd(const char *verb)
{
	char cmd[256];
	snprintf(cmd, sizeof cmd, "tests/pg/cluster.sh %s %s >/dev/null 2>&1", verb, t_pg_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "t_pg: cluster.sh %s failed\n", verb);
}

static void t_pg_stop(void)
{
	if (t_pg_state != 1)
		return;
	t_pg_cmd("stop");
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", t_pg_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "t_pg: could not remove %s\n", t_pg_dir);
	t_pg_state = 0;
}

/* The connection string of the cluster's database "selo" (password
 * included), or NULL when PostgreSQL is not installed. */
static const char *t_pg_url(void)
{
	if (t_pg_state)
		return t_pg_state > 0 ? t_pg_base : NULL;
	t_pg_state = -1;
	snprintf(t_pg_dir, sizeof t_pg_dir, "/tmp/selo-tpg-XXXXXX");
	if (!mkdtemp(t_pg_dir))
		return NULL;
	char cmd[256];
	snprintf(cmd, sizeof cmd, "tests/pg/cluster.sh start %s --password %s --watch %d",
		 t_pg_dir, T_PG_PASSWORD, (int)getpid());
	FILE *p = popen(cmd, "r");
	if (!p)
		return NULL;
	int got = fgets(t_pg_base, sizeof t_pg_base, p) != NULL;
	int rc = pclose(p);
	if (!got || rc != 0) {
		t_pg_absent = WIFEXITED(rc) && WEXITSTATUS(rc) == 3;
		if (!t_pg_absent)
			fprintf(stderr, "t_pg: could not start PostgreSQL (cluster.sh exit %d)\n", rc);
		rmdir(t_pg_dir);
		return NULL;
	}
	t_pg_base[strcspn(t_pg_base, "\n")] = '\0';
	t_pg_state = 1;
	atexit(t_pg_stop);
	return t_pg_base;
}

/* Stops the cluster (fast shutdown) and starts it again on the same socket. */
static void t_pg_restart(void)
{
	t_pg_cmd("restart");
}

/* Runs sql on the cluster's database db ("selo" when NULL): 0 or -1. */
static int t_pg_sql(const char *db, const char *sql)
{
	char url[640];
	snprintf(url, sizeof url, "%s dbname=%s", t_pg_base, db ? db : "selo");
	PGconn *c = PQconnectdb(url);
	int ok = PQstatus(c) == CONNECTION_OK;
	if (ok) {
		PGresult *r = PQexec(c, sql);
		ExecStatusType st = PQresultStatus(r);
		ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
		if (!ok)
			fprintf(stderr, "t_pg: %s: %s", sql, PQerrorMessage(c));
		PQclear(r);
	}
	PQfinish(c);
	return ok ? 0 : -1;
}

/* A new empty database; url gets its connection string. 0 or -1. */
static int t_pg_new_db(char *url, size_t n)
{
	if (!t_pg_url())
		return -1;
	char sql[64], name[32];
	snprintf(name, sizeof name, "t%d", ++t_pg_ndb);
	snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
	if (t_pg_sql(NULL, sql) != 0)
		return -1;
	snprintf(url, n, "%s dbname=%s", t_pg_base, name);
	return 0;
}

#endif
