/* store_pg.c: the foundation of the PostgreSQL backend (store_pg_int.h,
 * docs/scale.md): a pool of libpq connections, statements prepared on each
 * connection on first use from one table, every wait bounded by a deadline,
 * SQLSTATEs mapped to struct selo_err, transactions retried on
 * serialization failures and deadlocks, the keys every node must share, and
 * connection strings with their password hidden.
 *
 * Waiting: connections are made with PQconnectStartParams/PQconnectPoll and
 * used in non-blocking mode; every send, flush and read waits in poll()
 * until the call's deadline, and a call past it fails with 503
 * store-unavailable and drops its connection (an answer may still be on
 * its way; the server ends the statement itself at statement_timeout, set
 * to store.timeout on each session). Host names are resolved by libpq
 * before the first poll, with the system resolver's own timeouts.
 *
 * Losing the server: a connection that failed with a lost-connection class
 * error is closed when released, and bumps the pool's epoch: every idle
 * connection made before it is closed too, instead of failing one caller
 * each (after a restart or a failover they are all dead). The next acquire
 * connects again (with target_session_attrs in store.url, to whichever host
 * is the primary now).
 *
 * Secrets: store.url may hold a password. It reaches no message: errors
 * name the connection string through pgstore_redact_url, and the text libpq
 * or the server sends back is scrubbed of the password too. Memory
 * exhaustion aborts (buf.h). */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "selo/buf.h"
#include "selo/clock.h"
#include "selo/diag.h"
#include "selo/event.h"
#include "selo/store_backend.h"
#include "store_pg_int.h"

#define PG_POOL_DEFAULT 4
#define PG_TIMEOUT_DEFAULT_MS 5000
#define PG_LEASE_DEFAULT_MS 30000

static const char *const pg_sql_core[PG_S_CORE_END] = {
	[PG_S_MIG_VERSION] = "SELECT coalesce(max(version), 0) FROM schema_migrations",
	[PG_S_MIG_RECORD] = "INSERT INTO schema_migrations(version, name, applied_ms, applied_by)"
			    " VALUES($1, $2, $3, $4)",
	[PG_S_META_GET] = "SELECT value, set_by FROM store_meta WHERE key = $1",
	[PG_S_META_PUT] = "INSERT INTO store_meta(key, value, set_ms, set_by) VALUES($1, $2, $3, $4)"
			  " ON CONFLICT (key) DO NOTHING",
	[PG_S_NODE_SEEN] = "INSERT INTO nodes(name, started_ms, seen_ms, schema_version)"
			   " VALUES($1, $2, $2, $3) ON CONFLICT (name) DO UPDATE"
			   " SET started_ms = $2, seen_ms = $2, schema_version = $3",
	[PG_S_PING] = "SELECT 1",
	[PG_S_LEAD_TRY] = "SELECT pg_try_advisory_lock($1)",
	[PG_S_RENEW_NOTICES] = "UPDATE notices SET lease_until = " PG_DB_NOW_MS " + $2::bigint"
			       " WHERE claimed_by = $1 AND status = 'sending'",
	[PG_S_RENEW_OUTBOX] = "UPDATE webhook_outbox SET lease_until = " PG_DB_NOW_MS " + $2::bigint"
			      " WHERE claimed_by = $1 AND state = 'pending'",
	[PG_S_EVENT_CLOCK] = "UPDATE event_clock SET seq = seq + $1, time_ms = greatest(time_ms, $2)"
			     " WHERE id = 1 RETURNING seq, time_ms",
	[PG_S_EVENT_ADD] = "INSERT INTO events(seq, notice_id, type, time_ms, entry)"
			   " VALUES($1, $2, $3, $4, $5)",
	[PG_S_DISC_ADD] = "INSERT INTO disclosures(notice_id, commitment, value) VALUES($1, $2, $3)"
			  " ON CONFLICT DO NOTHING",
};

/* The SQL of statement st (store_pg_int.h "Prepared statements"), or NULL
 * for an id no file uses. */
static const char *pg_sql_of(int st)
{
	static const struct {
		int base;
		const struct pg_sql_table *t;
	} ranges[] = {
		{PG_S_NOTICE_BASE, &pg_sql_notice}, {PG_S_READ_BASE, &pg_sql_read},
		{PG_S_LOG_BASE, &pg_sql_log},       {PG_S_WEBHOOK_BASE, &pg_sql_webhook},
		{PG_S_STATS_BASE, &pg_sql_stats},
	};
	if (st >= 0 && st < PG_S_CORE_END)
		return pg_sql_core[st];
	for (size_t i = sizeof(ranges) / sizeof(ranges[0]); i-- > 0;)
		if (st >= ranges[i].base)
			return st - ranges[i].base < ranges[i].t->count ? ranges[i].t->sql[st - ranges[i].base]
								       : NULL;
	return NULL;
}

struct pgconn {
	struct pgstore *s;              /* the pool it belongs to */
	PGconn *conn;
	unsigned epoch;                 /* the pool's epoch when connected */
	int busy;
	int lost;                       /* 1: drop it when released; 2: and the other idle ones */
	unsigned char prepared[PG_S_COUNT];
};

struct pgstore {
	struct store base;  /* first: see store_backend.h */
	char *url;
	char *url_shown;    /* redacted, for messages */
	char *password;     /* the url's password (or NULL): scrubbed from libpq's texts */
	char *node;
	int timeout_ms;
	int64_t lease_ms;
	int n;
	unsigned epoch;
	pthread_mutex_t mu;
	pthread_cond_t cv;  /* a connection came back (CLOCK_MONOTONIC) */
	struct pgconn *conns;
	struct pglead {             /* store_lead: one session per role, outside the pool */
		pthread_mutex_t mu;
		struct pgconn c;
		int held;
	} lead[STORE_ROLE_COUNT];
};

/* ---- Redaction */

static void pgstore_append_value(struct buf *b, const char *v)
{
	int plain = *v != '\0';
	for (const char *p = v; *p; p++)
		if (*p == ' ' || *p == '\'' || *p == '\\' || *p == '\t' || *p == '\n')
			plain = 0;
	if (plain) {
		buf_puts(b, v);
		return;
	}
	buf_putc(b, '\'');
	for (const char *p = v; *p; p++) {
		if (*p == '\'' || *p == '\\')
			buf_putc(b, '\\');
		buf_putc(b, *p);
	}
	buf_putc(b, '\'');
}

char *pgstore_redact_url(const char *url)
{
	char *errmsg = NULL;
	PQconninfoOption *opts = PQconninfoParse(url ? url : "", &errmsg);
	if (!opts) {
		/* libpq's message quotes the string: it may hold the password. */
		PQfreemem(errmsg);
		return xstrdup("(unparsable connection string)");
	}
	struct buf b = BUF_INIT;
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (!o->val)
			continue;
		if (b.len)
			buf_putc(&b, ' ');
		buf_printf(&b, "%s=", o->keyword);
		/* dispchar '*' marks the secrets: password, sslpassword. */
		if (o->dispchar && o->dispchar[0] == '*')
			buf_puts(&b, "***");
		else
			pgstore_append_value(&b, o->val);
	}
	PQconninfoFree(opts);
	if (!b.len)
		buf_puts(&b, "(defaults)");
	return buf_steal(&b, NULL);
}

/* The password of url (NULL if none), to scrub it from texts we pass on. */
static char *pgstore_url_password(const char *url)
{
	char *errmsg = NULL, *pw = NULL;
	PQconninfoOption *opts = PQconninfoParse(url, &errmsg);
	PQfreemem(errmsg);
	for (PQconninfoOption *o = opts; o && o->keyword; o++)
		if (o->val && o->val[0] && o->dispchar && o->dispchar[0] == '*' && !pw)
			pw = xstrdup(o->val);
	PQconninfoFree(opts);
	return pw;
}

/* Copies text into out (n bytes), each occurrence of the password replaced
 * by "***" and line breaks by spaces (libpq's messages end in one). */
static void pgstore_scrub(const struct pgstore *s, const char *text, char *out, size_t n)
{
	size_t o = 0, pwlen = s->password ? strlen(s->password) : 0;
	for (const char *p = text ? text : ""; *p && o + 1 < n;) {
		if (pwlen && strncmp(p, s->password, pwlen) == 0) {
			for (const char *r = "***"; *r && o + 1 < n; r++)
				out[o++] = *r;
			p += pwlen;
			continue;
		}
		out[o++] = (*p == '\n' || *p == '\r') ? ' ' : *p;
		p++;
	}
	while (o > 0 && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
}

/* ---- Errors */

static enum pg_fail pgstore_class(const char *state)
{
	if (!state || !*state)
		return PG_UNAVAILABLE; /* no SQLSTATE: libpq's own failure, the connection */
	if (strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
	    strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0 ||
	    strncmp(state, "53", 2) == 0 || strcmp(state, "57014") == 0 ||
	    strcmp(state, "25006") == 0)
		return PG_UNAVAILABLE; /* 25006: a read-only standby now; reconnect to the primary */
	if (strcmp(state, "23505") == 0)
		return PG_CONFLICT;
	if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)
		return PG_RETRY;
	return PG_FAILED;
}

static enum pg_fail pgstore_fail_set(const struct pgstore *s, enum pg_fail f, const char *doing,
				     const char *text, struct selo_err *err)
{
	char msg[384];
	pgstore_scrub(s, text, msg, sizeof msg);
	switch (f) {
	case PG_UNAVAILABLE:
		err_set(err, 503, "store-unavailable", "store unavailable: %s: %s", doing, msg);
		break;
	case PG_CONFLICT:
		err_set(err, 409, "conflict", "store: %s: %s", doing, msg);
		break;
	case PG_RETRY:
		err_set(err, 503, "store-busy", "store busy: %s: %s", doing, msg);
		break;
	default:
		err_set(err, 500, "storage-failed", "store: %s: %s", doing, msg);
		break;
	}
	return f;
}

static enum pg_fail pgstore_map(const struct pgstore *s, PGconn *conn, const PGresult *r,
				const char *doing, struct selo_err *err)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char *text = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	enum pg_fail f = pgstore_class(state);
	if (!state && conn && PQstatus(conn) == CONNECTION_OK && r)
		f = PG_FAILED; /* a result without SQLSTATE on a live connection */
	if (!text || !*text)
		text = conn ? PQerrorMessage(conn) : "no connection";
	return pgstore_fail_set(s, f, doing, text, err);
}

/* Without a pool at hand (the header's general form): nothing to scrub
 * beyond what the server sends, which never echoes the password. */
enum pg_fail pgstore_map_error(PGconn *conn, const PGresult *r, const char *doing,
			       struct selo_err *err)
{
	struct pgstore none = {0};
	return pgstore_map(&none, conn, r, doing, err);
}

/* ---- Waiting with a deadline */

/* Waits until conn's socket is ready for events or the deadline: 1 ready,
 * 0 timed out, -1 error. */
static int pgstore_poll(PGconn *conn, short events, int64_t deadline)
{
	int fd = PQsocket(conn);
	if (fd < 0)
		return -1;
	for (;;) {
		int64_t left = deadline - clock_mono_ms();
		if (left <= 0)
			return 0;
		struct pollfd p = {.fd = fd, .events = events};
		int rc = poll(&p, 1, left > 1000 ? 1000 : (int)left);
		if (rc > 0)
			return 1;
		if (rc < 0 && errno != EINTR)
			return -1;
	}
}

static enum pg_fail pgstore_timeout(const struct pgstore *s, struct pgconn *c, const char *doing,
				    struct selo_err *err)
{
	c->lost = 1;
	err_set(err, 503, "store-unavailable", "store unavailable: %s: no answer within %d ms",
		doing, s->timeout_ms);
	return PG_UNAVAILABLE;
}

static enum pg_fail pgstore_lost(const struct pgstore *s, struct pgconn *c, const char *doing,
				 struct selo_err *err)
{
	c->lost = 2;
	return pgstore_fail_set(s, PG_UNAVAILABLE, doing, PQerrorMessage(c->conn), err);
}

/* Sends what libpq buffered, then waits until a whole result is in. */
static enum pg_fail pgstore_wait_result(const struct pgstore *s, struct pgconn *c,
					int64_t deadline, const char *doing, struct selo_err *err)
{
	int f;
	while ((f = PQflush(c->conn)) == 1) {
		int rc = pgstore_poll(c->conn, POLLIN | POLLOUT, deadline);
		if (rc == 0)
			return pgstore_timeout(s, c, doing, err);
		if (rc < 0 || !PQconsumeInput(c->conn))
			return pgstore_lost(s, c, doing, err);
	}
	if (f < 0)
		return pgstore_lost(s, c, doing, err);
	while (PQisBusy(c->conn)) {
		int rc = pgstore_poll(c->conn, POLLIN, deadline);
		if (rc == 0)
			return pgstore_timeout(s, c, doing, err);
		if (rc < 0 || !PQconsumeInput(c->conn))
			return pgstore_lost(s, c, doing, err);
	}
	return PG_OK;
}

/* Reads every result of what was sent; keeps the first failure (or the last
 * success) and returns it. NULL with *fail on failure. */
static PGresult *pgstore_collect(struct pgstore *s, struct pgconn *c, int64_t deadline,
				 enum pg_fail *fail, const char *doing, struct selo_err *err)
{
	PGresult *keep = NULL;
	int bad = 0;
	for (;;) {
		enum pg_fail w = pgstore_wait_result(s, c, deadline, doing, err);
		if (w != PG_OK) {
			PQclear(keep);
			*fail = w;
			return NULL;
		}
		PGresult *r = PQgetResult(c->conn);
		if (!r)
			break;
		ExecStatusType st = PQresultStatus(r);
		int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
		if (bad) { /* keep the first failure */
			PQclear(r);
			continue;
		}
		PQclear(keep);
		keep = r;
		bad = !ok;
	}
	if (!keep) { /* nothing at all: the connection went away */
		*fail = pgstore_lost(s, c, doing, err);
		return NULL;
	}
	if (bad) {
		*fail = pgstore_map(s, c->conn, keep, doing, err);
		if (*fail == PG_UNAVAILABLE)
			c->lost = 2;
		PQclear(keep);
		return NULL;
	}
	*fail = PG_OK;
	return keep;
}

/* ---- Statements */

static int pgconn_prepare(struct pgstore *s, struct pgconn *c, enum pg_stmt st, int64_t deadline,
			  enum pg_fail *fail, struct selo_err *err)
{
	char name[16];
	snprintf(name, sizeof name, "s%d", (int)st);
	const char *sql = pg_sql_of((int)st);
	if (!sql) {
		*fail = PG_FAILED;
		return err_set(err, 500, "internal", "store: no SQL for statement %d", (int)st);
	}
	if (!PQsendPrepare(c->conn, name, sql, 0, NULL)) {
		*fail = pgstore_lost(s, c, "preparing a statement", err);
		return -1;
	}
	PGresult *r = pgstore_collect(s, c, deadline, fail, "preparing a statement", err);
	if (!r)
		return -1;
	PQclear(r);
	c->prepared[st] = 1;
	return 0;
}

PGresult *pgconn_exec(struct pgconn *c, enum pg_stmt st, int n, const char *const *vals,
		      const int *lens, const int *fmts, int64_t deadline, enum pg_fail *fail,
		      const char *doing, struct selo_err *err)
{
	struct pgstore *s = c->s;
	if (!c->prepared[st] && pgconn_prepare(s, c, st, deadline, fail, err) != 0)
		return NULL;
	char name[16];
	snprintf(name, sizeof name, "s%d", (int)st);
	if (!PQsendQueryPrepared(c->conn, name, n, vals, lens, fmts, 0)) {
		*fail = pgstore_lost(s, c, doing, err);
		return NULL;
	}
	return pgstore_collect(s, c, deadline, fail, doing, err);
}

int pgconn_simple(struct pgconn *c, const char *sql, int64_t deadline, enum pg_fail *fail,
		  const char *doing, struct selo_err *err)
{
	struct pgstore *s = c->s;
	if (!PQsendQuery(c->conn, sql)) {
		*fail = pgstore_lost(s, c, doing, err);
		return -1;
	}
	PGresult *r = pgstore_collect(s, c, deadline, fail, doing, err);
	if (!r)
		return -1;
	PQclear(r);
	return 0;
}

/* ---- Batches in pipeline mode */

/* Reads one statement's result and the NULL that ends it; a NULL result
 * with PG_OK when the statement was skipped after an earlier failure. */
static PGresult *pgconn_pipeline_read(struct pgconn *c, int64_t deadline, enum pg_fail *fail,
				      const char *doing, struct selo_err *err)
{
	*fail = pgstore_wait_result(c->s, c, deadline, doing, err);
	if (*fail != PG_OK)
		return NULL;
	PGresult *r = PQgetResult(c->conn);
	if (!r) {
		*fail = pgstore_lost(c->s, c, doing, err);
		return NULL;
	}
	if ((*fail = pgstore_wait_result(c->s, c, deadline, doing, err)) != PG_OK) {
		PQclear(r);
		return NULL;
	}
	PGresult *end = PQgetResult(c->conn); /* NULL: the end of this statement's results */
	PQclear(end);
	return r;
}

/* Reads the results of n statements and the sync that follows them. */
static int pgconn_pipeline_collect(struct pgconn *c, int n, PGresult **results,
				   int64_t deadline, enum pg_fail *fail, const char *doing,
				   struct selo_err *err)
{
	int rc = 0;
	*fail = PG_OK;
	for (int i = 0; i < n; i++) {
		enum pg_fail f;
		PGresult *r = pgconn_pipeline_read(c, deadline, &f, doing, err);
		if (!r) {
			*fail = f;
			return -1; /* the connection is lost or late: it is dropped */
		}
		ExecStatusType st = PQresultStatus(r);
		if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
			results[i] = r;
			continue;
		}
		if (st != PGRES_PIPELINE_ABORTED && rc == 0) {
			*fail = pgstore_map(c->s, c->conn, r, doing, err);
			rc = -1;
		}
		PQclear(r);
	}
	if ((*fail == PG_OK || rc != 0) &&
	    pgstore_wait_result(c->s, c, deadline, doing, err) == PG_OK) {
		PGresult *sync = PQgetResult(c->conn);
		int synced = sync && PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
		PQclear(sync);
		if (synced && PQexitPipelineMode(c->conn))
			return rc;
	}
	if (rc == 0)
		*fail = pgstore_lost(c->s, c, doing, err);
	c->lost = c->lost ? c->lost : 1;
	return -1;
}

int pgconn_pipeline(struct pgconn *c, const struct pgbatch_item *items, int n,
		    PGresult **results, int64_t deadline, enum pg_fail *fail, const char *doing,
		    struct selo_err *err)
{
	for (int i = 0; i < n; i++) {
		results[i] = NULL;
		if (!c->prepared[items[i].st] &&
		    pgconn_prepare(c->s, c, items[i].st, deadline, fail, err) != 0)
			return -1;
	}
	if (!PQenterPipelineMode(c->conn)) {
		*fail = pgstore_lost(c->s, c, doing, err);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		char name[16];
		snprintf(name, sizeof name, "s%d", (int)items[i].st);
		if (!PQsendQueryPrepared(c->conn, name, items[i].n, items[i].vals, items[i].lens,
					 items[i].fmts, 0)) {
			*fail = pgstore_lost(c->s, c, doing, err);
			return -1;
		}
	}
	if (!PQpipelineSync(c->conn)) {
		*fail = pgstore_lost(c->s, c, doing, err);
		return -1;
	}
	if (pgconn_pipeline_collect(c, n, results, deadline, fail, doing, err) == 0)
		return 0;
	for (int i = 0; i < n; i++) {
		PQclear(results[i]);
		results[i] = NULL;
	}
	return -1;
}

PGconn *pgconn_handle(struct pgconn *c)
{
	return c->conn;
}

/* ---- Connecting */

static void pgconn_drop(struct pgconn *c)
{
	if (c->conn)
		PQfinish(c->conn);
	c->conn = NULL;
	c->lost = 0;
	memset(c->prepared, 0, sizeof c->prepared);
}

/* Session settings: the server ends a statement (and an abandoned
 * transaction) that outlives store.timeout, so a caller that gave up never
 * leaves work holding locks. */
static int pgconn_setup(struct pgstore *s, struct pgconn *c, int64_t deadline,
			struct selo_err *err)
{
	char sql[160];
	enum pg_fail fail;
	snprintf(sql, sizeof sql,
		 "SET statement_timeout = %d; SET idle_in_transaction_session_timeout = %d",
		 s->timeout_ms, s->timeout_ms * 2);
	return pgconn_simple(c, sql, deadline, &fail, "setting up a connection", err);
}

static void pgconn_notice_drop(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

static int pgconn_connect(struct pgstore *s, struct pgconn *c, int64_t deadline,
			  struct selo_err *err)
{
	char app[80];
	snprintf(app, sizeof app, "selo %s", s->node);
	/* Ours first: a later (expanded) keyword in store.url overrides them. */
	const char *kw[] = {"application_name", "connect_timeout", "dbname", NULL};
	char ct[16];
	snprintf(ct, sizeof ct, "%d", (s->timeout_ms + 999) / 1000 + 1);
	const char *val[] = {app, ct, s->url, NULL};
	pgconn_drop(c);
	c->conn = PQconnectStartParams(kw, val, 1);
	if (!c->conn)
		abort(); /* libpq could not allocate: the memory policy of buf.h */
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	while (PQstatus(c->conn) != CONNECTION_BAD && st != PGRES_POLLING_OK &&
	       st != PGRES_POLLING_FAILED) {
		int rc = pgstore_poll(c->conn, st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline);
		if (rc == 0) {
			pgconn_drop(c);
			return err_set(err, 503, "store-unavailable",
				       "store unavailable: connecting to %s: no answer within %d ms",
				       s->url_shown, s->timeout_ms);
		}
		st = PQconnectPoll(c->conn);
	}
	if (PQstatus(c->conn) != CONNECTION_OK) {
		char msg[384];
		pgstore_scrub(s, PQerrorMessage(c->conn), msg, sizeof msg);
		pgconn_drop(c);
		return err_set(err, 503, "store-unavailable", "store unavailable: connecting to %s: %s",
			       s->url_shown, msg);
	}
	c->epoch = s->epoch;
	/* libpq prints notices (and a FATAL that arrives while idle) on
	 * stderr by default: ours are none of a person's business. */
	PQsetNoticeProcessor(c->conn, pgconn_notice_drop, NULL);
	if (PQsetnonblocking(c->conn, 1) != 0 || pgconn_setup(s, c, deadline, err) != 0) {
		pgconn_drop(c);
		return -1;
	}
	return 0;
}

/* ---- The pool */

/* Whether an idle connection still has its server. A server that shut
 * down or died closed the socket, after a FATAL 57P01 or not, which makes
 * it readable; an idle session is sent nothing else we ask for (no LISTEN),
 * so a readable idle socket is a connection to replace. Costs one poll()
 * with no wait. */
static int pgconn_idle_ok(struct pgconn *c)
{
	if (!c->conn || PQstatus(c->conn) != CONNECTION_OK)
		return 0;
	struct pollfd p = {.fd = PQsocket(c->conn), .events = POLLIN};
	if (p.fd < 0)
		return 0;
	return poll(&p, 1, 0) == 0;
}

/* A free slot, preferring one with a connection; -1 if all are busy. */
static int pgstore_free_slot(struct pgstore *s)
{
	int empty = -1;
	for (int i = 0; i < s->n; i++) {
		if (s->conns[i].busy)
			continue;
		if (s->conns[i].conn)
			return i;
		if (empty < 0)
			empty = i;
	}
	return empty;
}

struct pgconn *pgstore_acquire(struct pgstore *s, int64_t deadline, struct selo_err *err)
{
	pthread_mutex_lock(&s->mu);
	int i;
	while ((i = pgstore_free_slot(s)) < 0) {
		struct timespec ts = clock_deadline(CLOCK_MONOTONIC, deadline - clock_mono_ms());
		if (clock_mono_ms() >= deadline ||
		    pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT) {
			if ((i = pgstore_free_slot(s)) >= 0)
				break;
			pthread_mutex_unlock(&s->mu);
			err_set(err, 503, "store-unavailable",
				"store unavailable: no free database connection within %d ms (pool of %d)",
				s->timeout_ms, s->n);
			return NULL;
		}
	}
	struct pgconn *c = &s->conns[i];
	c->busy = 1;
	int stale = c->conn && c->epoch != s->epoch;
	pthread_mutex_unlock(&s->mu);
	if (stale || (c->conn && !pgconn_idle_ok(c)))
		pgconn_drop(c);
	if (!c->conn && pgconn_connect(s, c, deadline, err) != 0) {
		pgstore_release(s, c);
		return NULL;
	}
	return c;
}

void pgstore_release(struct pgstore *s, struct pgconn *c)
{
	int lost = c->lost;
	if (c->conn && (lost || PQtransactionStatus(c->conn) != PQTRANS_IDLE))
		pgconn_drop(c);
	pthread_mutex_lock(&s->mu);
	if (lost == 2)
		s->epoch++; /* the others made before this loss are likely dead too */
	c->busy = 0;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

int64_t pgstore_deadline(const struct pgstore *s)
{
	return clock_mono_ms() + s->timeout_ms;
}

/* ---- Transactions */

/* A short random pause before running a transaction again, so that two
 * that deadlocked do not meet again at once; never past the deadline. */
static void pgstore_backoff(int attempt, int64_t deadline)
{
	int64_t ms = (5 << attempt) + (int64_t)(random() % 20);
	if (clock_mono_ms() + ms >= deadline)
		return;
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

/* One run: BEGIN, fn, COMMIT (or ROLLBACK). *began says whether BEGIN got
 * through, i.e. whether anything of the transaction reached the server. */
static int pgstore_txn_once(struct pgconn *c, pgstore_txn_fn fn, void *arg, int64_t deadline,
			    int *began, enum pg_fail *fail, struct selo_err *err)
{
	*began = 0;
	if (pgconn_simple(c, "BEGIN", deadline, fail, "starting a transaction", err) != 0)
		return -1;
	*began = 1;
	if (fn(c, arg, deadline, fail, err) != 0) {
		struct selo_err ignored;
		enum pg_fail f2;
		if (!c->lost && pgconn_simple(c, "ROLLBACK", deadline, &f2, "rolling back", &ignored))
			c->lost = 1;
		return -1;
	}
	if (pgconn_simple(c, "COMMIT", deadline, fail, "committing", err) != 0) {
		if (*fail == PG_UNAVAILABLE)
			err_set(err, 503, "store-unavailable",
				"store unavailable: the connection was lost while committing: "
				"the outcome is unknown; retry (with the same idempotency key)");
		return -1;
	}
	return 0;
}

int pgstore_txn(struct pgstore *s, pgstore_txn_fn fn, void *arg, enum pg_fail *fail,
		struct selo_err *err)
{
	int64_t deadline = pgstore_deadline(s);
	int replaced = 0;
	for (int attempt = 0; attempt < PGSTORE_TXN_TRIES;) {
		struct pgconn *c = pgstore_acquire(s, deadline, err);
		if (!c) {
			*fail = PG_UNAVAILABLE;
			return -1;
		}
		int began;
		int rc = pgstore_txn_once(c, fn, arg, deadline, &began, fail, err);
		pgstore_release(s, c);
		if (rc == 0)
			return 0;
		if (!began && *fail == PG_UNAVAILABLE && !replaced) {
			replaced = 1; /* a stale pooled connection: nothing was sent; once more */
			continue;
		}
		if (*fail != PG_RETRY)
			return -1;
		pgstore_backoff(attempt++, deadline);
	}
	return -1;
}

/* ---- Keys every node shares */

struct pgstore_meta_arg {
	const char *key, *value, *node;
	char set_by[128];
	int differs;
};

static int pgstore_meta_txn(struct pgconn *c, void *arg, int64_t deadline, enum pg_fail *fail,
			    struct selo_err *err)
{
	struct pgstore_meta_arg *a = arg;
	char ms[24];
	snprintf(ms, sizeof ms, "%lld", (long long)clock_now_ms());
	const char *put[] = {a->key, a->value, ms, a->node};
	PGresult *r = pgconn_exec(c, PG_S_META_PUT, 4, put, NULL, NULL, deadline, fail,
				  "recording the shared keys", err);
	if (!r)
		return -1;
	PQclear(r);
	r = pgconn_exec(c, PG_S_META_GET, 1, &a->key, NULL, NULL, deadline, fail,
			"reading the shared keys", err);
	if (!r)
		return -1;
	const char *have = PQntuples(r) ? PQgetvalue(r, 0, 0) : "";
	size_t hl = strlen(have), vl = strlen(a->value);
	unsigned char d = hl != vl;
	for (size_t i = 0; i < hl && i < vl; i++)
		d |= (unsigned char)(have[i] ^ a->value[i]);
	a->differs = d != 0;
	snprintf(a->set_by, sizeof a->set_by, "%s", PQntuples(r) ? PQgetvalue(r, 0, 1) : "?");
	PQclear(r);
	return 0;
}

int pgstore_meta_check(struct pgstore *s, const char *key, const char *value,
		       struct selo_err *err)
{
	struct pgstore_meta_arg a = {.key = key, .value = value, .node = s->node};
	enum pg_fail fail;
	if (pgstore_txn(s, pgstore_meta_txn, &a, &fail, err) != 0)
		return -1;
	if (a.differs)
		return err_set(err, 500, "store-keys-differ",
			       "store: this node's %s differs from the one the database records "
			       "(first set by node %s): every node must hold the same keys",
			       key, a.set_by);
	return 0;
}

/* ---- Opening */

static int pgstore_node_seen(struct pgstore *s, struct selo_err *err)
{
	int64_t deadline = pgstore_deadline(s);
	struct pgconn *c = pgstore_acquire(s, deadline, err);
	if (!c)
		return -1;
	char ms[24], v[16];
	snprintf(ms, sizeof ms, "%lld", (long long)clock_now_ms());
	snprintf(v, sizeof v, "%d", PGSTORE_SCHEMA_VERSION);
	const char *vals[] = {s->node, ms, v};
	enum pg_fail fail;
	PGresult *r = pgconn_exec(c, PG_S_NODE_SEEN, 3, vals, NULL, NULL, deadline, &fail,
				  "recording this node", err);
	PQclear(r);
	pgstore_release(s, c);
	return r ? 0 : -1;
}

static struct pgstore *pgstore_new(const struct pgstore_opts *o)
{
	struct pgstore *s = xcalloc(1, sizeof *s);
	s->url = xstrdup(o->url ? o->url : "");
	s->url_shown = pgstore_redact_url(s->url);
	s->password = pgstore_url_password(s->url);
	s->node = xstrdup(o->node && *o->node ? o->node : "selo");
	s->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : PG_TIMEOUT_DEFAULT_MS;
	s->lease_ms = o->lease_ms > 0 ? o->lease_ms : PG_LEASE_DEFAULT_MS;
	s->n = o->pool_size > 0 ? o->pool_size : PG_POOL_DEFAULT;
	s->conns = xcalloc((size_t)s->n, sizeof *s->conns);
	for (int i = 0; i < s->n; i++)
		s->conns[i].s = s;
	for (int i = 0; i < STORE_ROLE_COUNT; i++) {
		pthread_mutex_init(&s->lead[i].mu, NULL);
		s->lead[i].c.s = s;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cv, &ca);
	pthread_condattr_destroy(&ca);
	return s;
}

struct pgstore *pgstore_open(const struct pgstore_opts *o, struct selo_err *err)
{
	struct pgstore *s = pgstore_new(o);
	char *errmsg = NULL;
	PQconninfoOption *parsed = PQconninfoParse(s->url, &errmsg);
	PQfreemem(errmsg); /* it may quote the password */
	if (!parsed) {
		err_set(err, 500, "config-invalid",
			"store: store.url is not a libpq connection string (keyword=value or "
			"postgresql:// URI)");
		pgstore_close(s);
		return NULL;
	}
	PQconninfoFree(parsed);
	int applied = 0;
	if (pgschema_migrate(s, s->node, &applied, err) != 0 || pgstore_node_seen(s, err) != 0) {
		pgstore_close(s);
		return NULL;
	}
	if (applied)
		diag_info("store: %d migration(s) applied to %s (schema %d)", applied, s->url_shown,
			  PGSTORE_SCHEMA_VERSION);
	return s;
}

void pgstore_close(struct pgstore *s)
{
	if (!s)
		return;
	for (int i = 0; i < s->n; i++)
		pgconn_drop(&s->conns[i]);
	for (int i = 0; i < STORE_ROLE_COUNT; i++) { /* ending the session frees its role */
		pgconn_drop(&s->lead[i].c);
		pthread_mutex_destroy(&s->lead[i].mu);
	}
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s->conns);
	if (s->password)
		explicit_bzero(s->password, strlen(s->password));
	free(s->password);
	explicit_bzero(s->url, strlen(s->url));
	free(s->url);
	free(s->url_shown);
	free(s->node);
	free(s);
}

/* ---- Values in and out (store_pg_int.h). */

const char *pg_num(struct pg_num *n, int64_t v)
{
	snprintf(n->s, sizeof n->s, "%lld", (long long)v);
	return n->s;
}

int64_t pg_col_int(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

char *pg_col_text(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : xstrdup(PQgetvalue(r, row, col));
}

void pg_col_copy(const PGresult *r, int row, int col, char *out, size_t n)
{
	snprintf(out, n, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

/* ---- The backend behind store.h (store_backend.h). */

struct pgstore *pgstore_of(struct store *s)
{
	return (struct pgstore *)s;
}

const char *pgstore_node(const struct pgstore *s)
{
	return s->node;
}

int64_t pgstore_lease_ms(const struct pgstore *s)
{
	return s->lease_ms;
}

/* Scaffolding with the stubs: the store conformance suite on PostgreSQL
 * (tests/unit/t_store.h) sets this to end a test that met a stub as
 * skipped rather than failed. Goes with the last stub. */
static void pg_close(struct store *st)
{
	pgstore_close(pgstore_of(st));
}

static int pg_schema_version(struct store *st)
{
	struct selo_err err;
	err_clear(&err);
	int v = 0;
	return pgstore_schema_version(pgstore_of(st), &v, &err) == 0 ? v : -1;
}

static int pg_ping(struct store *st, struct selo_err *err)
{
	struct pgstore *s = pgstore_of(st);
	int64_t deadline = pgstore_deadline(s);
	struct pgconn *c = pgstore_acquire(s, deadline, err);
	if (!c)
		return -1;
	enum pg_fail fail = PG_OK;
	PGresult *r = pgconn_exec(c, PG_S_PING, 0, NULL, NULL, NULL, deadline, &fail, "ping", err);
	PQclear(r);
	pgstore_release(s, c);
	return r ? 0 : -1;
}

/* Health of writes as SQLite's writer tracks it (store.h): not tracked yet
 * here; a failing database shows in the calls' own errors. */
static void pg_health(struct store *st, struct store_health *out)
{
	(void)st;
	memset(out, 0, sizeof(*out));
}

/* ---- Events (store_pg_int.h "Events"). */

static int pg_event_clock(struct pgconn *c, int64_t deadline, int64_t *seq, int64_t *t,
			  enum pg_fail *fail, struct selo_err *err)
{
	char now[24];
	snprintf(now, sizeof now, "%lld", (long long)clock_now_ms());
	const char *vals[2] = {"1", now};
	PGresult *r = pgconn_exec(c, PG_S_EVENT_CLOCK, 2, vals, NULL, NULL, deadline, fail,
				  "taking the event clock", err);
	if (!r)
		return -1;
	int ok = PQntuples(r) == 1;
	if (ok) {
		*seq = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		*t = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	}
	PQclear(r);
	if (!ok) {
		*fail = PG_FAILED;
		return err_set(err, 500, "storage-failed", "store: the event clock row is missing");
	}
	return 0;
}

static int pg_disclosures_add(struct pgconn *c, const char *id, const struct disclosures *d,
			      int64_t deadline, enum pg_fail *fail, struct selo_err *err)
{
	for (size_t i = 0; d && i < d->n; i++) {
		const char *vals[3] = {id, d->v[i].commitment, d->v[i].value};
		const int lens[3] = {0, 0, (int)d->v[i].len};
		const int fmts[3] = {0, 0, 1};
		PGresult *r = pgconn_exec(c, PG_S_DISC_ADD, 3, vals, lens, fmts, deadline, fail,
					  "storing a disclosure", err);
		if (!r)
			return -1;
		PQclear(r);
	}
	return 0;
}

int pg_event_add(struct pgconn *c, const char *notice_id, const char *type,
		 const json_t *fields, const struct disclosures *d, int64_t deadline,
		 int64_t *seq_out, enum pg_fail *fail, struct selo_err *err)
{
	int64_t seq = 0, t = 0;
	if (pg_event_clock(c, deadline, &seq, &t, fail, err) != 0)
		return -1;
	struct buf e = BUF_INIT;
	if (event_entry_encode(&e, type, notice_id, t, fields) != 0) {
		buf_free(&e);
		*fail = PG_FAILED;
		err_set(err, 422, "invalid-event",
			"store: the %s event of notice %s cannot be encoded (fields must be an "
			"object without the keys v, type, notice, time)",
			type, notice_id);
		return 1;
	}
	char sq[24], tm[24];
	snprintf(sq, sizeof sq, "%lld", (long long)seq);
	snprintf(tm, sizeof tm, "%lld", (long long)t);
	const char *vals[5] = {sq, notice_id, type, tm, e.data};
	const int lens[5] = {0, 0, 0, 0, (int)e.len};
	const int fmts[5] = {0, 0, 0, 0, 1};
	PGresult *r = pgconn_exec(c, PG_S_EVENT_ADD, 5, vals, lens, fmts, deadline, fail,
				  "storing an event", err);
	buf_free(&e);
	if (!r)
		return -1;
	PQclear(r);
	if (seq_out)
		*seq_out = seq;
	return pg_disclosures_add(c, notice_id, d, deadline, fail, err);
}

/* ---- Roles (store.h "Work only one node does at a time"). Each role is a
 * session-level advisory lock held on a connection of its own, outside the
 * pool (a pooled connection is shared, and the lock belongs to a session):
 * it lasts as long as that session. A node killed, or cut off, loses its
 * session: the kernel closes the socket of a killed process at once; a
 * node cut off by the network is noticed by the server through the TCP
 * keepalives set below (about 15 s), and by the node itself on its next
 * check, which fails within store.timeout. A node that lost its role and
 * does not know it yet is stopped by the fences of the writes. */
static int pg_lead_session(struct pgstore *s, struct pglead *l, int64_t deadline,
			   struct selo_err *err)
{
	if (pgconn_connect(s, &l->c, deadline, err) != 0)
		return -1;
	enum pg_fail fail;
	if (pgconn_simple(&l->c, "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2;"
				 " SET tcp_keepalives_count = 5", deadline, &fail,
			  "setting up a role's session", err) != 0) {
		pgconn_drop(&l->c);
		return -1;
	}
	return 0;
}

static int pg_lead_locked(struct pgstore *s, struct pglead *l, enum store_role role,
			  int64_t deadline, struct selo_err *err)
{
	enum pg_fail fail;
	if (l->held) {
		if (pgconn_idle_ok(&l->c) &&
		    pgconn_simple(&l->c, "SELECT 1", deadline, &fail, "checking a role", err) == 0)
			return 1;
		l->held = 0;
		pgconn_drop(&l->c);
		diag_warn("store: this node (%s) lost the %s role: its database session ended",
			  s->node, store_role_name(role));
	}
	if (l->c.conn && !pgconn_idle_ok(&l->c))
		pgconn_drop(&l->c); /* its server went away: ask on a new session */
	if (!l->c.conn && pg_lead_session(s, l, deadline, err) != 0)
		return -1;
	char key[24];
	snprintf(key, sizeof key, "%lld", (long long)PGSTORE_ROLE_LOCK + (long long)role);
	const char *vals[1] = {key};
	PGresult *r = pgconn_exec(&l->c, PG_S_LEAD_TRY, 1, vals, NULL, NULL, deadline, &fail,
				  "asking for a role", err);
	if (!r) {
		pgconn_drop(&l->c);
		return -1;
	}
	l->held = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	if (l->held)
		diag_info("store: this node (%s) now has the %s role", s->node, store_role_name(role));
	return l->held;
}

static int pg_lead(struct store *st, enum store_role role, struct selo_err *err)
{
	struct pgstore *s = pgstore_of(st);
	struct pglead *l = &s->lead[role];
	pthread_mutex_lock(&l->mu);
	int r = pg_lead_locked(s, l, role, pgstore_deadline(s), err);
	pthread_mutex_unlock(&l->mu);
	return r;
}

/* ---- Leases (store.h store_claims_renew): two statements, each an index
 * scan of this node's claimed rows (the partial indexes of migration 2). */
static int pg_claims_renew(struct store *st, int64_t *next_ms, struct selo_err *err)
{
	struct pgstore *s = pgstore_of(st);
	*next_ms = s->lease_ms / 3 > 0 ? s->lease_ms / 3 : 1;
	int64_t deadline = pgstore_deadline(s);
	struct pgconn *c = pgstore_acquire(s, deadline, err);
	if (!c)
		return -1;
	char lease[24];
	snprintf(lease, sizeof lease, "%lld", (long long)s->lease_ms);
	const char *vals[2] = {s->node, lease};
	enum pg_fail fail = PG_OK;
	int rc = 0;
	static const enum pg_stmt stmts[2] = {PG_S_RENEW_NOTICES, PG_S_RENEW_OUTBOX};
	for (int i = 0; i < 2 && rc == 0; i++) {
		PGresult *r = pgconn_exec(c, stmts[i], 2, vals, NULL, NULL, deadline, &fail,
					  "renewing this node's claims", err);
		rc = r ? 0 : -1;
		PQclear(r);
	}
	pgstore_release(s, c);
	return rc;
}

int pg_event_new_fields(const struct event_new *ev, json_t **owned, const json_t **fields)
{
	*owned = NULL;
	*fields = ev->fields;
	if (ev->fields || !ev->fields_text || !ev->fields_len)
		return 0;
	struct buf b = BUF_INIT;
	buf_putc(&b, '{');
	buf_append(&b, ev->fields_text, ev->fields_len);
	buf_putc(&b, '}');
	*owned = json_loadb(b.data, b.len, 0, NULL);
	buf_free(&b);
	*fields = *owned;
	return *owned ? 0 : 1;
}

static const struct store_ops pg_ops = {
	.name = "postgres",
	.close = pg_close,
	.schema_version = pg_schema_version,
	.apikey_add = pg_apikey_add,
	.apikey_find = pg_apikey_find,
	.apikey_list = pg_apikey_list,
	.apikey_revoke = pg_apikey_revoke,
	.notices_accept = pg_notices_accept,
	.notice_get = pg_notice_get,
	.notice_list = pg_notice_list,
	.notice_scan = pg_notice_scan,
	.events_of = pg_events_of,
	.event_first = pg_event_first,
	.confirmations_of = pg_confirmations_of,
	.events_after = pg_events_after,
	.attachments_of = pg_attachments_of,
	.message_get = pg_message_get,
	.claim_due = pg_claim_due,
	.next_due = pg_next_due,
	.notices_sealed = pg_notices_sealed,
	.delivery_results = pg_delivery_results,
	.events_add = pg_events_add,
	.hits_add = pg_hits_add,
	.folds_close = pg_folds_close,
	.notice_bounced = pg_notice_bounced,
	.notice_cancel = pg_notice_cancel,
	.sequence_add = pg_sequence_add,
	.sequence_get = pg_sequence_get,
	.sequence_stop = pg_sequence_stop,
	.suppression_list = pg_suppression_list,
	.suppression_delete = pg_suppression_delete,
	.token_lookup = pg_token_lookup,
	.notice_brief = pg_notice_brief,
	.recover_inflight = pg_recover_inflight,
	.counts = pg_counts,
	.wal_limit = NULL,
	.wal_restarts = NULL,
	.log_state = pg_log_state,
	.log_append = pg_log_append,
	.log_tile = pg_log_tile,
	.log_entries = pg_log_entries,
	.log_unindexed = pg_log_unindexed,
	.checkpoint_add = pg_checkpoint_add,
	.checkpoint_timestamp = pg_checkpoint_timestamp,
	.checkpoint_find = pg_checkpoint_find,
	.checkpoints_untimestamped = pg_checkpoints_untimestamped,
	.checkpoints_all = pg_checkpoints_all,
	.disclosures_of = pg_disclosures_of,
	.ping = pg_ping,
	.lead = pg_lead,
	.claims_renew = pg_claims_renew,
	.health = pg_health,
	.webhook_add = pg_webhook_add,
	.webhook_list = pg_webhook_list,
	.webhook_get = pg_webhook_get,
	.webhook_delete = pg_webhook_delete,
	.webhook_fanout = pg_webhook_fanout,
	.webhook_rotate_secret = pg_webhook_rotate_secret,
	.webhook_active = pg_webhook_active,
	.webhook_due = pg_webhook_due,
	.webhook_results = pg_webhook_results,
	.webhook_prune = pg_webhook_prune,
	.stats_events = pg_stats_events,
	.stats_facts_get = pg_stats_facts_get,
	.stats_notice_info = pg_stats_notice_info,
	.stats_dim = pg_stats_dim,
	.stats_apply = pg_stats_apply,
	.stats_scan = pg_stats_scan,
};

int store_pg_open(const struct store_params *p, struct store **out, struct selo_err *err)
{
	*out = NULL;
	const struct pgstore_opts o = {p->target, p->pool_size, p->timeout_ms, p->node, p->lease_ms};
	struct pgstore *s = pgstore_open(&o, err);
	if (!s)
		return -1;
	s->base.ops = &pg_ops;
	*out = &s->base;
	return 0;
}
