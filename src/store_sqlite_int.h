/* store_sqlite_int.h: what the files of the SQLite backend share, and
 * nothing else (not for callers: they see store.h; not for other backends:
 * they see store_backend.h). The backend is one module split over several
 * files, one concern each, as docs/architecture.md says:
 *   store_sqlite.c          open and close, connections and their statement
 *                           cache, the writer thread and group commit, health
 *                           of writes, the WAL, ping; small helpers; the ops table
 *   store_sqlite_schema.c   migrations and the SQL of every cached statement
 *   store_sqlite_notice.c   API keys, notices (accept, claim, seal, results,
 *                           bounce, cancel), sequences, suppressions, reads
 *                           of notices, events, attachments, messages,
 *                           disclosures, counts, tokens
 *   store_sqlite_log.c      tracker hits and their folds; ledger storage
 *                           (tree state, tiles, index runs) and checkpoints
 *   store_sqlite_webhook.c  webhooks and their outbox
 *   store_sqlite_stats.c    statistics (their own SQL, prepared per call)
 *   store_sqlite_file.c     check, copy and describe a database file
 * The concurrency and failure rules of the whole backend are in
 * store_sqlite.c's opening comment. Names shared here carry the sqlite_ or
 * store_sqlite_ prefix; a helper one file uses stays static in it. The
 * sqlite_<op> functions below are the ops table's entries (store_sqlite.c),
 * each with the contract of store_<op> in store.h. */
#ifndef SELO_STORE_SQLITE_INT_H
#define SELO_STORE_SQLITE_INT_H
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "selo/buf.h"
#include "selo/clock.h"
#include "selo/diag.h"
#include "selo/event.h"
#include "selo/id.h"
#include "selo/mime.h"
#include "selo/store.h"
#include "selo/store_backend.h"
#include "selo/suppress.h"

#define EVENTS_AFTER_MAX 100000 /* store_events_after and the log's reads cap max here */

/* Every statement a connection caches (sqlite_stmt_get), by id; the SQL of
 * each is sqlite_stmt_sql[id], in store_sqlite_schema.c. */
enum stmt_id {
	S_BEGIN, S_COMMIT, S_ROLLBACK,
	S_JOB_SAVE, S_JOB_RELEASE, S_JOB_UNDO,
	S_ITEM_SAVE, S_ITEM_RELEASE, S_ITEM_UNDO,
	S_MIG_VERSION, S_MIG_RECORD, S_LAST_EVENT_TIME,
	S_APIKEY_ADD, S_APIKEY_REVOKE,
	S_IDEM_GET, S_IDEM_ADD, S_STATUS_GET, S_NOTICE_ADD, S_ATT_ADD, S_EVENT_ADD, S_DISC_ADD,
	S_DUE, S_CLAIM, S_NOTICE_EXISTS, S_MSG_EXISTS, S_MSG_ADD, S_TOKEN_ADD, S_SEAL,
	S_RESULT, S_RECOVER, S_BOUNCED, S_BOUNCE_MARK,
	/* scheduling and sequences */
	S_CANCEL_GET, S_CANCEL, S_SEQ_ADD, S_SEQ_IDEM, S_SEQ_GET, S_SEQ_STEPS, S_SEQ_PENDING,
	S_SEQ_STOP, S_SEQ_OF,
	/* reads */
	S_APIKEY_FIND, S_APIKEY_ACTIVE, S_APIKEY_LIST, S_NOTICE_GET,
	S_LIST0, S_LIST7 = S_LIST0 + 7,
	S_EVENTS_OF, S_CONFIRMATIONS_OF, S_EVENTS_AFTER, S_ATT_OF, S_MSG_GET, S_DISC_OF, S_NEXT_DUE, S_COUNTS,
	S_EVENTS_MAX, S_QUICK_CHECK, S_CHEAP_CHECK, S_EVENT_FIRST, S_NOTICE_SCAN,
	/* ledger */
	S_LOG_STATE, S_LOG_STATE_SET, S_LOG_RANGE_ADD, S_LOG_RANGE_COUNT, S_LOG_TILE_SET, S_LOG_TILE_GET,
	S_LOG_ENTRIES, S_LOG_UNINDEXED, S_CP_ADD, S_CP_TST, S_CP_FIND, S_CP_FIND_TST,
	S_CP_UNTIMESTAMPED, S_CP_ALL,
	/* tracker */
	S_TOKEN_GET, S_BRIEF_SALT, S_BRIEF_ACCEPTED, S_TALLY_GET, S_TALLY_COUNT, S_TALLY_PUT,
	S_FOLD_ADDR, S_FOLD_ADDRS_DROP, S_FOLDS_DUE,
	/* webhooks */
	S_WH_ADD, S_WH_LIST, S_WH_LIST_ALL, S_WH_COUNTS, S_WH_DELETE, S_WH_CURSOR, S_WH_MIN_FROM,
	S_WH_CANDIDATES, S_WH_OUTBOX_ADD, S_WH_CURSOR_SET, S_WH_DUE, S_WH_RESULT, S_WH_DISABLE,
	S_WH_DROP, S_WH_ACTIVE, S_WH_PRUNE, S_WH_ROTATE, S_WH_OLD_DROP,
	/* suppressions */
	S_SUP_NOTICE, S_SUP_ADD, S_SUP_FIND, S_SUP_LIST, S_SUP_DELETE,
	S_COUNT
};

/* A connection and its statement cache. Used by one thread at a time. */
struct conn {
	sqlite3 *db;
	sqlite3_stmt *st[S_COUNT];
	int last_rc;       /* extended code of the last failed step: tells constraints apart */
	int last_errno;    /* the system's errno behind it (ENOSPC tells a full disk) */
	struct conn *next; /* reader free list */
};

struct store_sqlite;

/* A write waiting for the writer. Lives on the caller's stack; the caller
 * sleeps on cv until done. */
struct job {
	int (*run)(struct store_sqlite *s, struct job *j);
	void *arg;
	struct selo_err *err; /* the caller's (may be NULL) */
	int rc;               /* run's result; -1 when the group did not commit */
	int64_t ival;         /* small results: a new id, a row count */
	sem_t done;           /* posted by the writer once rc is final */
	struct job *next;
};

/* The backend's state; base comes first (store_backend.h). */
struct store_sqlite {
	struct store base;
	char *path;
	int version;

	/* Writer: after store_open, w and last_event_ms are touched only by the
	 * writer thread (and by store_close once it has joined). */
	struct conn *w;
	int64_t last_event_ms;
	pthread_t writer;
	int writer_started;
	pthread_mutex_t qmu; /* guards the queue and stopping */
	pthread_cond_t qcv;
	struct job *qhead, *qtail;
	int stopping;

	pthread_t ckpt;      /* the checkpointer: copies the WAL back, off the writer's path */
	atomic_int restart_wanted; /* set by the checkpointer, done by the writer */
	atomic_int restart_frames; /* the WAL size that asks for it (store_wal_limit) */
	atomic_llong restarts;     /* RESTART checkpoints done, for /metrics */
	int64_t ck_warned_ms; /* the checkpointer's last warning (its thread only) */
	pthread_cond_t ckcv; /* with qmu: wakes it to stop */
	int ckpt_started;
	struct conn *ck;

	/* Health of writes (store_health). The writer keeps what the group it
	 * runs has learned in g_*, then publishes it under hmu. */
	enum store_fault g_fault; /* the first fault of the group, NONE: none */
	int g_rc;                 /* its SQLite code */
	int g_wrote;              /* a commit of the group wrote to the WAL (wal hook) */
	int64_t tried_ms;         /* clock_mono_ms of the last write tried (probe or group) */
	pthread_mutex_t hmu;
	struct store_health health;
	struct diag_limit fail_log;

	pthread_mutex_t rmu; /* guards the reader pool and the ping cache */
	pthread_cond_t rcv;
	struct conn *rfree;
	int nreaders;
	int64_t last_full_check_ms;
};

static inline struct store_sqlite *store_sqlite_of(struct store *base)
{
	return (struct store_sqlite *)base;
}

/* The commitments one store_events_add call has stored for the notice of
 * the current run of events. A flood of hits from one address and agent
 * repeats the same commitments thousands of times a batch, and each repeat
 * was an index probe finding the row already there. Skipping one is what
 * ON CONFLICT DO NOTHING would do inside the same transaction; forgetting
 * one only costs that probe. */
#define DISC_MEMO 4
struct disc_memo {
	const char *notice;           /* NULL: nothing remembered */
	char commitment[DISC_MEMO][72];
	size_t n, next;
};

extern const char *const sqlite_stmt_sql[S_COUNT];

/* ---- store_sqlite.c */
char *sqlite_xmemdup(const void *p, size_t n);
void *sqlite_grow(void *p, size_t n, size_t *cap, size_t size);
int sqlite_damaged_file(int rc);
int sqlite_db_err(struct selo_err *err, struct conn *c, const char *what);
sqlite3_stmt *sqlite_stmt_get(struct conn *c, enum stmt_id id, struct selo_err *err);
void sqlite_stmt_done(sqlite3_stmt *st);
int sqlite_step_done(struct conn *c, sqlite3_stmt *st, struct selo_err *err, const char *what);
int sqlite_run_simple(struct conn *c, enum stmt_id id, struct selo_err *err, const char *what);
int sqlite_bind_failed(struct conn *c, sqlite3_stmt *st, struct selo_err *err, const char *what);
int sqlite_bind_text(sqlite3_stmt *st, int i, const char *s);
int sqlite_bind_blob(sqlite3_stmt *st, int i, const void *p, size_t n);
char *sqlite_col_text(sqlite3_stmt *st, int i);
void sqlite_col_copy(sqlite3_stmt *st, int i, char *out, size_t cap);
char *sqlite_col_bytes(sqlite3_stmt *st, int i, size_t *len);
struct conn *sqlite_conn_open(const char *path, int flags, struct selo_err *err);
void sqlite_conn_close(struct conn *c);
int64_t sqlite_writer_time(struct store_sqlite *s);
int sqlite_savepoint_end(struct conn *c, enum stmt_id release, enum stmt_id undo, int ok,
			 struct selo_err *err);
int sqlite_job_do(struct store_sqlite *s, int (*run)(struct store_sqlite *, struct job *),
		  void *arg, struct selo_err *err, int64_t *ival);
int sqlite_step_insert(struct conn *c, sqlite3_stmt *st, struct selo_err *err, const char *what,
		       const char *id);
int store_sqlite_event_row_add(struct conn *c, const char *id, const char *type, int64_t t,
			       const struct buf *e, const struct disclosures *d,
			       struct disc_memo *m, struct selo_err *err);
int store_sqlite_event_unencodable(struct selo_err *err, const char *id, const char *type);
int store_sqlite_event_add(struct conn *c, const char *id, const char *type, int64_t t,
			   const json_t *fields, const struct disclosures *d, struct selo_err *err);
struct conn *sqlite_reader_take(struct store_sqlite *s, struct selo_err *err);
void sqlite_reader_give(struct store_sqlite *s, struct conn *c);

/* ---- store_sqlite_schema.c */
int sqlite_migrate(struct store_sqlite *s, struct selo_err *err);

/* ---- store_sqlite_notice.c */
int sqlite_apikey_add(struct store *base, const char *name, const uint8_t hash[32],
		      const char *prefix, int64_t *id_out, struct selo_err *err);
int sqlite_apikey_revoke(struct store *base, int64_t id, struct selo_err *err);
int sqlite_notices_accept(struct store *base, const struct notice_new *ns, size_t n,
			  struct accept_result *results, struct selo_err *err);
int sqlite_claim_due(struct store *base, int64_t now_ms, size_t max, struct notice_rec **out,
		     size_t *n, struct selo_err *err);
int sqlite_notices_sealed(struct store *base, const struct seal_rec *r, size_t n,
			  struct selo_err *err);
int sqlite_delivery_results(struct store *base, const struct result_rec *r, size_t n,
			    struct selo_err *err);
int sqlite_recover_inflight(struct store *base, struct selo_err *err);
int sqlite_apikey_find(struct store *base, const uint8_t hash[32], struct apikey *out,
		       struct selo_err *err);
int sqlite_apikey_list(struct store *base, struct apikey **out, size_t *n, struct selo_err *err);
int sqlite_notice_get(struct store *base, const char *id, int64_t apikey_id, struct notice_rec *out,
		      struct selo_err *err);
int sqlite_notice_list(struct store *base, const struct notice_filter *f, struct notice_rec **out,
		       size_t *n, struct selo_err *err);
int sqlite_notice_scan(struct store *base, int64_t *cursor, size_t max, struct notice_rec **out,
		       size_t *n, struct selo_err *err);
int sqlite_events_query(struct store_sqlite *s, enum stmt_id id, const char *notice_id,
			int64_t after, int64_t max, struct event_rec **out, size_t *n,
			struct selo_err *err);
int sqlite_events_of(struct store *base, const char *notice_id, struct event_rec **out, size_t *n,
		     struct selo_err *err);
int sqlite_event_first(struct store *base, const char *notice_id, const char *type,
		       struct event_rec *out, struct selo_err *err);
int sqlite_confirmations_of(struct store *base, const char *notice_id, struct event_rec **out,
			    size_t *n, struct selo_err *err);
int sqlite_events_after(struct store *base, int64_t after_seq, size_t max, struct event_rec **out,
			size_t *n, struct selo_err *err);
int sqlite_attachments_of(struct store *base, const char *notice_id, struct attachment_rec **out,
			  size_t *n, struct selo_err *err);
int sqlite_message_get(struct store *base, const char *notice_id, struct buf *eml, char sha256[65],
		       struct selo_err *err);
int sqlite_disclosures_of(struct store *base, const char *notice_id, struct disclosures *out,
			  struct selo_err *err);
int64_t sqlite_next_due(struct store *base);
int sqlite_counts(struct store *base, struct store_counts *out, struct selo_err *err);
int store_sqlite_event_new_add(struct store_sqlite *s, const struct event_new *ev, struct buf *e,
			       struct disc_memo *m, struct selo_err *err);
int store_sqlite_notice_known(struct store_sqlite *s, const char *id, struct selo_err *err);
int sqlite_events_add(struct store *base, const struct event_new *ev, size_t n,
		      struct selo_err *err);
int sqlite_token_lookup(struct store *base, const char *token, struct token_info *out,
			struct selo_err *err);
int sqlite_notice_brief(struct store *base, const char *id, uint8_t salt[32], int64_t *accepted_ms,
			struct selo_err *err);
int sqlite_notice_bounced(struct store *base, const char *id, json_t *fields,
			  const struct disclosures *disc, const char *last_error,
			  struct selo_err *err);
int sqlite_notice_cancel(struct store *base, const char *id, int64_t apikey_id, const char *reason,
			 struct selo_err *err);
int sqlite_sequence_stop(struct store *base, const char *id, int64_t apikey_id, const char *reason,
			 int64_t *canceled, struct selo_err *err);
int sqlite_sequence_add(struct store *base, const struct sequence_new *q, char replay_id[32],
			struct selo_err *err);
int sqlite_sequence_get(struct store *base, const char *id, int64_t apikey_id,
			struct sequence_rec *out, struct selo_err *err);
int sqlite_suppression_list(struct store *base, int64_t apikey_id, int64_t before, int limit,
			    struct suppression_rec **out, size_t *n, struct selo_err *err);
int sqlite_suppression_delete(struct store *base, int64_t apikey_id, const char *address,
			      struct selo_err *err);

/* ---- store_sqlite_log.c */
int sqlite_hits_add(struct store *base, const struct hit_new *h, size_t n,
		    const struct fold_rule *rule, size_t *folded, struct selo_err *err);
int sqlite_folds_close(struct store *base, int64_t now_ms, size_t max, fold_fields_fn fields,
		       void *arg, size_t *closed, struct selo_err *err);
int sqlite_log_state_on(struct conn *c, struct log_state *out, struct selo_err *err);
int sqlite_log_state(struct store *base, struct log_state *out, struct selo_err *err);
int sqlite_log_append(struct store *base, const struct log_append *a, struct selo_err *err);
int sqlite_log_tile(struct store *base, int level, uint64_t index, struct buf *data,
		    struct selo_err *err);
int sqlite_log_entries(struct store *base, uint64_t from, size_t max, struct event_rec **out,
		       size_t *n, struct selo_err *err);
int sqlite_log_unindexed(struct store *base, int64_t last_seq, int64_t *count, struct selo_err *err);
int sqlite_checkpoint_add(struct store *base, uint64_t size, const char *note, int64_t created_ms,
			  struct selo_err *err);
int sqlite_checkpoint_timestamp(struct store *base, uint64_t size, const uint8_t *tst, size_t len,
				int64_t tst_time_ms, struct selo_err *err);
int sqlite_checkpoint_find(struct store *base, uint64_t min_size, int timestamped,
			   struct checkpoint_rec *out, struct selo_err *err);
int sqlite_checkpoints_untimestamped(struct store *base, size_t max, struct checkpoint_rec **out,
				     size_t *n, struct selo_err *err);
int sqlite_checkpoints_all(struct store *base, struct checkpoint_rec **out, size_t *n,
			   struct selo_err *err);

/* ---- store_sqlite_webhook.c */
int sqlite_webhook_add(struct store *base, const struct webhook_rec *w, size_t max_per_key,
		       struct selo_err *err);
int sqlite_webhook_list(struct store *base, int64_t apikey_id, struct webhook_rec **out, size_t *n,
			struct selo_err *err);
int sqlite_webhook_get(struct store *base, const char *id, int64_t apikey_id,
		       struct webhook_rec *out, struct selo_err *err);
int sqlite_webhook_delete(struct store *base, const char *id, int64_t apikey_id,
			  struct selo_err *err);
int sqlite_webhook_fanout(struct store *base, size_t max, size_t *added, struct selo_err *err);
int sqlite_webhook_active(struct store *base, char (**ids)[32], size_t *n, struct selo_err *err);
int sqlite_webhook_due(struct store *base, const char *webhook_id, int64_t now_ms, size_t max,
		       struct webhook_delivery **out, size_t *n, struct selo_err *err);
int sqlite_webhook_results(struct store *base, const struct webhook_result *r, size_t n,
			   struct selo_err *err);
int sqlite_webhook_rotate_secret(struct store *base, const char *id, int64_t apikey_id,
				 const uint8_t *secret, size_t secret_len, int64_t old_until_ms,
				 struct selo_err *err);
int sqlite_webhook_prune(struct store *base, int64_t before_ms, size_t max, size_t *pruned,
			 struct selo_err *err);

/* ---- store_sqlite_stats.c */
int sqlite_stats_events(struct store *base, size_t max,
			int (*fn)(void *arg, const struct stats_event *e), void *arg,
			int64_t *cursor, int64_t *last, struct selo_err *err);
int sqlite_stats_facts_get(struct store *base, struct stats_fact *f, size_t n, int *found,
			   struct selo_err *err);
int sqlite_stats_notice_info(struct store *base, const char *const *ids, size_t n,
			     struct stats_notice_info *out, int *found, struct selo_err *err);
int sqlite_stats_dim(struct store *base, const char *dkey, int64_t apikey_id,
		     const char *template_name, const char *segment, const char *tags_json,
		     int64_t *id, struct selo_err *err);
int sqlite_stats_apply(struct store *base, const struct stats_batch *b, struct selo_err *err);
int sqlite_stats_scan(struct store *base, struct stats_scan *q, struct selo_err *err);

#endif
