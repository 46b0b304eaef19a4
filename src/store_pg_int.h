/* store_pg_int.h: the private parts of the PostgreSQL backend (store_pg*.c),
 * not part of include/selo/: the connection pool, statement execution with
 * a deadline, the mapping of SQLSTATEs to struct selo_err, transactions
 * retried on serialization failures and deadlocks, the schema and its
 * migrations, the record of the keys every node must share, and the
 * redaction of connection strings. The store.h operations will be built on
 * these (docs/scale.md). Only libpq is used.
 *
 * Time: every call that reaches the database takes a deadline (monotonic
 * ms, clock_mono_ms() + store.timeout): waiting for a free connection,
 * connecting, and waiting for each answer all stop there, and the call
 * fails with status 503, type "store-unavailable". Nothing hangs. */
#ifndef SELO_STORE_PG_INT_H
#define SELO_STORE_PG_INT_H
#include <libpq-fe.h>
#include <stdint.h>
#include "selo/err.h"

/* The schema version this binary writes (the last migration's). */
#define PGSTORE_SCHEMA_VERSION 2
/* The key of the transaction-level advisory lock that migrations hold, so
 * that nodes starting at once migrate one after another ("selo" in ASCII
 * and a 1: any constant; it only has to be the same in every node). */
#define PGSTORE_MIGRATION_LOCK 126879448104961 /* 0x73656c6f0001 */

struct pgstore_opts {
	const char *url;     /* libpq connection string or URI (store.url) */
	int pool_size;       /* connections kept (0: 4) */
	int timeout_ms;      /* store.timeout: 0 means 5000 */
	const char *node;    /* node.name: marks migrations and, later, claims */
};

struct pgstore;
struct pgconn;

/* Opens the pool, connects once (a database unreachable at start is an
 * error: 503 store-unavailable), applies the migrations this database lacks
 * under PGSTORE_MIGRATION_LOCK, and refuses a database whose schema is newer
 * than this binary's (500 store-schema-newer). NULL and err on failure. */
struct pgstore *pgstore_open(const struct pgstore_opts *o, struct selo_err *err);
/* Closes every connection; waits for none (callers have returned theirs). */
void pgstore_close(struct pgstore *s);
/* The database's schema version (max(schema_migrations.version)). */
int pgstore_schema_version(struct pgstore *s, int *version, struct selo_err *err);
/* A copy of a libpq connection string (keyword=value or URI form) whose
 * password is replaced by "***", for logs and messages; something that does
 * not parse becomes "(unparsable connection string)", since it may hold one.
 * Never NULL; the caller frees it. */
char *pgstore_redact_url(const char *url);
/* The deadline a call starting now gets (clock_mono_ms() + store.timeout). */
int64_t pgstore_deadline(const struct pgstore *s);

/* ---- Prepared statements: one table, prepared on each connection the
 * first time that connection runs them (named "s<N>"). */
enum pg_stmt {
	PG_S_MIG_VERSION,
	PG_S_MIG_RECORD,
	PG_S_META_GET,
	PG_S_META_PUT,
	PG_S_NODE_SEEN,
	PG_S_PING,
	PG_S_COUNT
};

/* What a failure means to the caller (besides its struct selo_err). */
enum pg_fail {
	PG_OK = 0,
	PG_UNAVAILABLE, /* connection lost or refused, server shutting down, deadline: 503, retry later */
	PG_CONFLICT,    /* 23505 unique violation: the caller's conflict (409 unless it says otherwise) */
	PG_RETRY,       /* 40001 serialization failure, 40P01 deadlock: run the transaction again */
	PG_FAILED       /* anything else: 500 storage-failed */
};

/* A connection of the pool, for one caller until pgstore_release. */
struct pgconn *pgstore_acquire(struct pgstore *s, int64_t deadline, struct selo_err *err);
/* Gives c back; a connection whose last failure was PG_UNAVAILABLE (or that
 * is not idle) is closed, and the next acquire of its slot reconnects. */
void pgstore_release(struct pgstore *s, struct pgconn *c);
/* Runs statement st with n text parameters (vals[i] NULL is SQL NULL;
 * lens/fmts may be NULL, or give binary parameters, fmts[i] = 1). Returns
 * the result (PGRES_COMMAND_OK or PGRES_TUPLES_OK) for the caller to PQclear,
 * or NULL with err filled and *fail set. doing names the step for messages. */
PGresult *pgconn_exec(struct pgconn *c, enum pg_stmt st, int n, const char *const *vals,
		      const int *lens, const int *fmts, int64_t deadline, enum pg_fail *fail,
		      const char *doing, struct selo_err *err);
/* One statement of a batch (pgconn_pipeline). */
struct pgbatch_item {
	enum pg_stmt st;
	int n;
	const char *const *vals;
	const int *lens;  /* NULL: text parameters */
	const int *fmts;
};
/* Sends the n statements of items at once in pipeline mode (one round trip
 * instead of n) and reads their results in order into results[i] (each a
 * result for the caller to PQclear, or NULL for a statement that was not
 * run because an earlier one failed). Inside the caller's transaction, a
 * failure aborts it (roll back); outside, each statement commits alone.
 * 0, or -1 with err and *fail from the first failure. */
int pgconn_pipeline(struct pgconn *c, const struct pgbatch_item *items, int n,
		    PGresult **results, int64_t deadline, enum pg_fail *fail, const char *doing,
		    struct selo_err *err);
/* Runs sql without parameters (BEGIN, COMMIT, DDL): 0, or -1 with *fail. */
int pgconn_simple(struct pgconn *c, const char *sql, int64_t deadline, enum pg_fail *fail,
		  const char *doing, struct selo_err *err);
/* The connection's libpq handle, for what the helpers do not cover. */
PGconn *pgconn_handle(struct pgconn *c);

/* Maps a failed result (or, r NULL, the connection's state) to err and a
 * pg_fail: 08xxx, 57P01-57P03 and a lost connection are PG_UNAVAILABLE,
 * 23505 PG_CONFLICT, 40001/40P01 PG_RETRY, the rest PG_FAILED. The server's
 * message is kept (it names no parameter values: we log no DETAIL). */
enum pg_fail pgstore_map_error(PGconn *conn, const PGresult *r, const char *doing,
			       struct selo_err *err);

/* Runs fn inside BEGIN ... COMMIT on one connection, with one deadline:
 * fn returns 0 (commit) or -1 with *fail set (rollback). A PG_RETRY failure
 * runs it again, up to PGSTORE_TXN_TRIES times in all; a connection lost
 * before anything of the transaction was sent (a stale pooled connection)
 * is replaced once. A lost connection during COMMIT is 503 "outcome
 * unknown": the callers' idempotency keys make a retry safe. */
#define PGSTORE_TXN_TRIES 4
typedef int (*pgstore_txn_fn)(struct pgconn *c, void *arg, int64_t deadline,
			      enum pg_fail *fail, struct selo_err *err);
int pgstore_txn(struct pgstore *s, pgstore_txn_fn fn, void *arg, enum pg_fail *fail,
		struct selo_err *err);

/* store_meta holds what every node must agree on: key "log_vkey" (the
 * log's verifier key) and "token_key_sha256" (the token key's
 * fingerprint), for example. The first node records its value; a later one
 * with another value is refused (500 store-keys-differ, naming the key,
 * never the values of secrets: callers pass fingerprints). */
int pgstore_meta_check(struct pgstore *s, const char *key, const char *value,
		       struct selo_err *err);

/* ---- Schema (store_pg_schema.c). */
struct pgstore_migration {
	int version;
	const char *name;
	const char *sql;
};
/* Applies the migrations the database lacks, all in one transaction under
 * PGSTORE_MIGRATION_LOCK; *applied (may be NULL) counts those this call
 * applied. Refuses a newer schema (500 store-schema-newer). */
int pgschema_migrate(struct pgstore *s, const char *node, int *applied, struct selo_err *err);

#endif
