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
#include "selo/store.h"

/* The schema version this binary writes (the last migration's). */
#define PGSTORE_SCHEMA_VERSION 2
/* The key of the transaction-level advisory lock that migrations hold, so
 * that nodes starting at once migrate one after another ("selo" in ASCII
 * and a 1: any constant; it only has to be the same in every node). */
#define PGSTORE_MIGRATION_LOCK 126879448104961 /* 0x73656c6f0001 */
/* The session-level advisory locks of the roles (store_lead): this plus
 * the role's number ("selo" and 0x0100 + role). */
#define PGSTORE_ROLE_LOCK 126879448105216 /* 0x73656c6f0100 */

/* The database's clock in ms, for leases: every node compares lease times
 * with the same clock, whatever its own says. */
#define PG_DB_NOW_MS "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"

struct pgstore_opts {
	const char *url;     /* libpq connection string or URI (store.url) */
	int pool_size;       /* connections kept (0: 4) */
	int timeout_ms;      /* store.timeout: 0 means 5000 */
	const char *node;    /* node.name: marks migrations and, later, claims */
	int lease_ms;        /* store.lease: how long a claim holds (0: 30000) */
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

/* ---- Values in and out: parameters go to the server as text, results
 * come back as text (bytea in its hex form). */
struct pg_num {
	char s[24];
};
/* The decimal text of v, in n. */
const char *pg_num(struct pg_num *n, int64_t v);
/* An integer column; NULL reads 0. */
int64_t pg_col_int(const PGresult *r, int row, int col);
/* A text column as a malloc'd copy; NULL for SQL NULL. */
char *pg_col_text(const PGresult *r, int row, int col);
/* A text column into out (cut at n - 1 bytes); "" for SQL NULL. */
void pg_col_copy(const PGresult *r, int row, int col, char *out, size_t n);

/* ---- Prepared statements, prepared on each connection the first time
 * that connection runs them (named "s<N>"). Each file of the backend has
 * its own range of ids and its own table of SQL, so that the files can
 * grow apart: store_pg.c's ids are the enum below; a file's own start at
 * its PG_S_*_BASE (an enum in that file, ending before the next base) and
 * its table is declared here, indexed from its base. */
enum pg_stmt {
	PG_S_MIG_VERSION,
	PG_S_MIG_RECORD,
	PG_S_META_GET,
	PG_S_META_PUT,
	PG_S_NODE_SEEN,
	PG_S_PING,
	PG_S_LEAD_TRY,
	PG_S_RENEW_NOTICES,
	PG_S_RENEW_OUTBOX,
	PG_S_EVENT_CLOCK,
	PG_S_EVENT_ADD,
	PG_S_DISC_ADD,
	PG_S_CORE_END,
	PG_S_NOTICE_BASE = 64,   /* store_pg_notice.c: accepting and changing notices */
	PG_S_READ_BASE = 192,    /* store_pg_read.c: reading notices, events, keys */
	PG_S_LOG_BASE = 256,     /* store_pg_log.c: the log, checkpoints, tracker hits */
	PG_S_WEBHOOK_BASE = 320, /* store_pg_webhook.c */
	PG_S_STATS_BASE = 384,   /* store_pg_stats.c */
	PG_S_COUNT = 448
};
/* Each file's SQL, indexed from its base; entries past its count are
 * unused ids. */
struct pg_sql_table {
	const char *const *sql;
	int count;
};
extern const struct pg_sql_table pg_sql_notice, pg_sql_read, pg_sql_log, pg_sql_webhook,
	pg_sql_stats;

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

/* ---- The backend behind store.h. struct pgstore starts with the
 * struct store base (store_backend.h), so a struct store * of this backend
 * is its struct pgstore *. */
struct pgstore *pgstore_of(struct store *s);
/* node.name and store.lease of this store. */
const char *pgstore_node(const struct pgstore *s);
int64_t pgstore_lease_ms(const struct pgstore *s);

/* The ops, by file (each has the contract of the store.h function of the
 * same name). store_pg.c: close, schema_version, ping, health. */
/* store_pg_notice.c: accepting and changing notices, events, keys. */
int pg_notices_accept(struct store *s, const struct notice_new *ns, size_t n,
		      struct accept_result *results, struct selo_err *err);
int pg_claim_due(struct store *s, int64_t now_ms, size_t max, struct notice_rec **out, size_t *n,
		 struct selo_err *err);
int pg_notices_sealed(struct store *s, const struct seal_rec *r, size_t n, struct selo_err *err);
int pg_delivery_results(struct store *s, const struct result_rec *r, size_t n,
			struct selo_err *err);
int pg_events_add(struct store *s, const struct event_new *ev, size_t n, struct selo_err *err);
int pg_notice_bounced(struct store *s, const char *id, json_t *fields,
		      const struct disclosures *disc, const char *last_error, struct selo_err *err);
int pg_notice_cancel(struct store *s, const char *id, int64_t apikey_id, const char *reason,
		     struct selo_err *err);
int pg_sequence_add(struct store *s, const struct sequence_new *q, char replay_id[32],
		    struct selo_err *err);
int pg_sequence_stop(struct store *s, const char *id, int64_t apikey_id, const char *reason,
		     int64_t *canceled, struct selo_err *err);
int pg_suppression_delete(struct store *s, int64_t apikey_id, const char *address,
			  struct selo_err *err);
int pg_recover_inflight(struct store *s, struct selo_err *err);
int pg_apikey_add(struct store *s, const char *name, const uint8_t hash[32], const char *prefix,
		  int64_t *id_out, struct selo_err *err);
int pg_apikey_revoke(struct store *s, int64_t id, struct selo_err *err);
/* store_pg_read.c: reads. */
int pg_apikey_find(struct store *s, const uint8_t hash[32], struct apikey *out,
		   struct selo_err *err);
int pg_apikey_list(struct store *s, struct apikey **out, size_t *n, struct selo_err *err);
int pg_notice_get(struct store *s, const char *id, int64_t apikey_id, struct notice_rec *out,
		  struct selo_err *err);
int pg_notice_list(struct store *s, const struct notice_filter *f, struct notice_rec **out,
		   size_t *n, struct selo_err *err);
int pg_notice_scan(struct store *s, int64_t *cursor, size_t max, struct notice_rec **out,
		   size_t *n, struct selo_err *err);
int pg_events_of(struct store *s, const char *notice_id, struct event_rec **out, size_t *n,
		 struct selo_err *err);
int pg_event_first(struct store *s, const char *notice_id, const char *type,
		   struct event_rec *out, struct selo_err *err);
int pg_confirmations_of(struct store *s, const char *notice_id, struct event_rec **out,
			size_t *n, struct selo_err *err);
int pg_events_after(struct store *s, int64_t after_seq, size_t max, struct event_rec **out,
		    size_t *n, struct selo_err *err);
int pg_attachments_of(struct store *s, const char *notice_id, struct attachment_rec **out,
		      size_t *n, struct selo_err *err);
int pg_message_get(struct store *s, const char *notice_id, struct buf *eml, char sha256[65],
		   struct selo_err *err);
int64_t pg_next_due(struct store *s);
int pg_sequence_get(struct store *s, const char *id, int64_t apikey_id, struct sequence_rec *out,
		    struct selo_err *err);
int pg_suppression_list(struct store *s, int64_t apikey_id, int64_t before, int limit,
			struct suppression_rec **out, size_t *n, struct selo_err *err);
int pg_token_lookup(struct store *s, const char *token, struct token_info *out,
		    struct selo_err *err);
int pg_notice_brief(struct store *s, const char *id, uint8_t salt[32], int64_t *accepted_ms,
		    struct selo_err *err);
int pg_counts(struct store *s, struct store_counts *out, struct selo_err *err);
int pg_disclosures_of(struct store *s, const char *notice_id, struct disclosures *out,
		      struct selo_err *err);
/* store_pg_log.c: tracker hits and folds, the log's storage, checkpoints. */
int pg_hits_add(struct store *s, const struct hit_new *h, size_t n, const struct fold_rule *rule,
		size_t *folded, struct selo_err *err);
int pg_folds_close(struct store *s, int64_t now_ms, size_t max, fold_fields_fn fields, void *arg,
		   size_t *closed, struct selo_err *err);
int pg_log_state(struct store *s, struct log_state *out, struct selo_err *err);
int pg_log_append(struct store *s, const struct log_append *a, struct selo_err *err);
int pg_log_tile(struct store *s, int level, uint64_t index, struct buf *data,
		struct selo_err *err);
int pg_log_entries(struct store *s, uint64_t from, size_t max, struct event_rec **out, size_t *n,
		   struct selo_err *err);
int pg_log_unindexed(struct store *s, int64_t last_seq, int64_t *count, struct selo_err *err);
int pg_checkpoint_add(struct store *s, uint64_t size, const char *note, int64_t created_ms,
		      struct selo_err *err);
int pg_checkpoint_timestamp(struct store *s, uint64_t size, const uint8_t *tst, size_t len,
			    int64_t tst_time_ms, struct selo_err *err);
int pg_checkpoint_find(struct store *s, uint64_t min_size, int timestamped,
		       struct checkpoint_rec *out, struct selo_err *err);
int pg_checkpoints_untimestamped(struct store *s, size_t max, struct checkpoint_rec **out,
				 size_t *n, struct selo_err *err);
int pg_checkpoints_all(struct store *s, struct checkpoint_rec **out, size_t *n,
		       struct selo_err *err);
/* store_pg_webhook.c */
int pg_webhook_add(struct store *s, const struct webhook_rec *w, size_t max_per_key,
		   struct selo_err *err);
int pg_webhook_list(struct store *s, int64_t apikey_id, struct webhook_rec **out, size_t *n,
		    struct selo_err *err);
int pg_webhook_get(struct store *s, const char *id, int64_t apikey_id, struct webhook_rec *out,
		   struct selo_err *err);
int pg_webhook_delete(struct store *s, const char *id, int64_t apikey_id, struct selo_err *err);
int pg_webhook_fanout(struct store *s, size_t max, size_t *added, struct selo_err *err);
int pg_webhook_rotate_secret(struct store *s, const char *id, int64_t apikey_id,
			     const uint8_t *secret, size_t secret_len, int64_t old_until_ms,
			     struct selo_err *err);
int pg_webhook_active(struct store *s, char (**ids)[32], size_t *n, struct selo_err *err);
int pg_webhook_due(struct store *s, const char *webhook_id, int64_t now_ms, size_t max,
		   struct webhook_delivery **out, size_t *n, struct selo_err *err);
int pg_webhook_results(struct store *s, const struct webhook_result *r, size_t n,
		       struct selo_err *err);
int pg_webhook_prune(struct store *s, int64_t before_ms, size_t max, size_t *pruned,
		     struct selo_err *err);
/* store_pg_stats.c */
int pg_stats_events(struct store *s, size_t max, int (*fn)(void *arg, const struct stats_event *e),
		    void *arg, int64_t *cursor, int64_t *last, struct selo_err *err);
int pg_stats_facts_get(struct store *s, struct stats_fact *f, size_t n, int *found,
		       struct selo_err *err);
int pg_stats_notice_info(struct store *s, const char *const *ids, size_t n,
			 struct stats_notice_info *out, int *found, struct selo_err *err);
int pg_stats_dim(struct store *s, const char *dkey, int64_t apikey_id, const char *template_name,
		 const char *segment, const char *tags_json, int64_t *id, struct selo_err *err);
int pg_stats_apply(struct store *s, const struct stats_batch *b, struct selo_err *err);
int pg_stats_scan(struct store *s, struct stats_scan *q, struct selo_err *err);

/* ---- Events (store_pg.c). Every event of this backend is added through
 * pg_event_add, inside the caller's transaction (pgstore_txn). It takes
 * the event clock's row lock first (table event_clock), which it keeps
 * until the transaction ends: so transactions that add events commit one
 * after another, each event's seq is one more than the last committed one
 * (a reader of "seq > cursor" never skips a row that commits late: the
 * sequence trap of docs/scale.md cannot happen), and its time is the later
 * of now and the last event's time (time never goes backwards along seq,
 * across nodes whose clocks differ). The entry is encoded here
 * (event_entry_encode) with that time; the disclosures are stored beside
 * it. Returns 0, 1 when the fields cannot be encoded (422 invalid-event,
 * the caller's mistake: roll back), -1 with *fail. *seq_out (may be NULL)
 * gets the event's seq. Cost: one extra statement per transaction that
 * adds events, and those transactions serialize on one row; fine at the
 * rate one database commits. */
int pg_event_add(struct pgconn *c, const char *notice_id, const char *type,
		 const json_t *fields, const struct disclosures *d, int64_t deadline,
		 int64_t *seq_out, enum pg_fail *fail, struct selo_err *err);
/* The fields of an event_new for pg_event_add: ev->fields as they are, or,
 * as the tracker sends them, its members' text (ev->fields_text) parsed
 * into *owned (the caller json_decref's it). 0, or 1 when that text is not
 * JSON members. */
int pg_event_new_fields(const struct event_new *ev, json_t **owned, const json_t **fields);

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
