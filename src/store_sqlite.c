/* store_sqlite.c: the SQLite backend of store.h. Everything Selo keeps lives
 * in one WAL-mode database file; docs/store.md describes the schema, the
 * states, the migrations and the durability argument.
 *
 * Concurrency: one writer thread owns the only read-write connection. A
 * public write wraps its work in a job, queues it and sleeps until the writer
 * has run it. The writer takes every job waiting (up to GROUP_MAX), runs them
 * in one BEGIN IMMEDIATE transaction, each inside its own SAVEPOINT (a failing
 * job is undone alone), commits once (synchronous=FULL: one fsync for the
 * whole group) and only then wakes the callers. Event entries are encoded by
 * the writer with a clock that never goes backwards, so seq order is time
 * order. Reads use a pool of up to READERS_MAX read-only connections opened
 * on demand; in WAL mode they see the last commit and never block the writer.
 * Every statement is prepared once per connection and cached; user text only
 * ever reaches SQLite as a bound parameter.
 *
 * Failure: every function fills struct selo_err with what failed and SQLite's
 * message, status 500 for storage failures and 4xx for the caller's
 * mistakes. A failed COMMIT fails every job of its group (none is durable).
 * Memory exhaustion aborts, as in buf.c. Messages name notice ids, never
 * addresses or other personal data. */
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

#define GROUP_MAX 256          /* jobs per transaction: bounds one group's latency */
#define READERS_MAX 8          /* read connections; more readers wait for one */
#define BUSY_TIMEOUT_MS 5000   /* another process (selo CLI) holding the write lock */
#define LIST_MAX 1000
#define CLAIM_MAX 1000
#define EVENTS_AFTER_MAX 100000
#define PING_FULL_EVERY_MS (10 * 60 * 1000) /* quick_check reads the whole file */

/* ---- Schema. Migrations are applied in order, each in its own transaction,
 * and recorded in schema_migrations. To change the schema, append an entry
 * with the next version; never edit one that has shipped. */
struct migration {
	int version;
	const char *name;
	const char *sql;
};

static const struct migration MIGRATIONS[] = {
	{1, "initial schema",
	 "CREATE TABLE apikeys("
	 " id INTEGER PRIMARY KEY AUTOINCREMENT,"
	 " name TEXT NOT NULL,"
	 " hash BLOB NOT NULL UNIQUE,"
	 " prefix TEXT NOT NULL,"
	 " created_ms INTEGER NOT NULL,"
	 " revoked_ms INTEGER NOT NULL DEFAULT 0);"
	 "CREATE TABLE notices("
	 " id TEXT PRIMARY KEY,"
	 " apikey_id INTEGER NOT NULL,"
	 " status TEXT NOT NULL,"
	 " to_addr TEXT NOT NULL,"
	 " template TEXT,"
	 " reference TEXT,"
	 " segment TEXT,"
	 " tags_json TEXT,"
	 " payload_json TEXT NOT NULL,"
	 " salt BLOB NOT NULL,"
	 " attempts INTEGER NOT NULL DEFAULT 0,"
	 " created_ms INTEGER NOT NULL,"
	 " updated_ms INTEGER NOT NULL,"
	 " next_attempt_ms INTEGER NOT NULL,"
	 " message_id TEXT,"
	 " sha256 TEXT,"
	 " last_error TEXT);"
	 "CREATE INDEX notices_by_key ON notices(apikey_id, id);"
	 "CREATE INDEX notices_by_reference ON notices(reference, id);"
	 "CREATE INDEX notices_by_status ON notices(status, id);"
	 "CREATE INDEX notices_due ON notices(status, next_attempt_ms, id);"
	 "CREATE TABLE attachments("
	 " notice_id TEXT NOT NULL REFERENCES notices(id),"
	 " idx INTEGER NOT NULL,"
	 " filename TEXT NOT NULL,"
	 " content_type TEXT NOT NULL,"
	 " data BLOB NOT NULL,"
	 " PRIMARY KEY(notice_id, idx));"
	 "CREATE TABLE messages("
	 " notice_id TEXT PRIMARY KEY REFERENCES notices(id),"
	 " eml BLOB NOT NULL,"
	 " sha256 TEXT NOT NULL,"
	 " created_ms INTEGER NOT NULL);"
	 "CREATE TABLE tokens("
	 " token TEXT PRIMARY KEY,"
	 " notice_id TEXT NOT NULL REFERENCES notices(id),"
	 " kind TEXT NOT NULL,"
	 " link INTEGER NOT NULL DEFAULT 0,"
	 " url TEXT);"
	 "CREATE INDEX tokens_by_notice ON tokens(notice_id);"
	 "CREATE TABLE idempotency("
	 " apikey_id INTEGER NOT NULL,"
	 " key TEXT NOT NULL,"
	 " request_sha256 BLOB NOT NULL,"
	 " notice_id TEXT NOT NULL REFERENCES notices(id),"
	 " created_ms INTEGER NOT NULL,"
	 " PRIMARY KEY(apikey_id, key)) WITHOUT ROWID;"
	 "CREATE TABLE events("
	 " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	 " notice_id TEXT NOT NULL REFERENCES notices(id),"
	 " type TEXT NOT NULL,"
	 " time_ms INTEGER NOT NULL,"
	 " entry BLOB NOT NULL);"
	 "CREATE INDEX events_by_notice ON events(notice_id, seq);"
	 "CREATE TABLE disclosures("
	 " notice_id TEXT NOT NULL REFERENCES notices(id),"
	 " commitment TEXT NOT NULL,"
	 " value BLOB NOT NULL,"
	 " UNIQUE(notice_id, commitment));"},
	{2, "merkle log",
	 "ALTER TABLE events ADD COLUMN log_index INTEGER;"
	 "CREATE UNIQUE INDEX events_by_log_index ON events(log_index) WHERE log_index IS NOT NULL;"
	 "CREATE TABLE log_state("
	 " id INTEGER PRIMARY KEY CHECK (id = 1),"
	 " size INTEGER NOT NULL,"
	 " root BLOB NOT NULL,"
	 " last_seq INTEGER NOT NULL);"
	 "CREATE TABLE log_tiles("
	 " level INTEGER NOT NULL,"
	 " idx INTEGER NOT NULL,"
	 " data BLOB NOT NULL,"
	 " PRIMARY KEY(level, idx)) WITHOUT ROWID;"
	 "CREATE TABLE checkpoints("
	 " size INTEGER PRIMARY KEY,"
	 " note TEXT NOT NULL,"
	 " created_ms INTEGER NOT NULL,"
	 " tst BLOB,"
	 " tst_time_ms INTEGER);"
	 "CREATE INDEX checkpoints_untimestamped ON checkpoints(size) WHERE tst IS NULL;"},
	/* An event's log index is no longer written into its row: rewriting
	 * every event row a second time cost the writer as much as inserting
	 * it (docs/store.md, "The ledger's tables"). One row per run of
	 * consecutive seqs integrated together; events.log_index keeps the
	 * indexes written before this migration and is no longer read. Runs are
	 * where seq - log_index is constant (indexes follow seq order). */
	{3, "log index ranges",
	 "CREATE TABLE log_ranges("
	 " first_index INTEGER PRIMARY KEY,"
	 " first_seq INTEGER NOT NULL UNIQUE,"
	 " n INTEGER NOT NULL CHECK (n > 0));"
	 "INSERT INTO log_ranges(first_index, first_seq, n)"
	 " SELECT min(log_index), min(seq), count(*) FROM events WHERE log_index IS NOT NULL"
	 " GROUP BY seq - log_index;"},
	/* Webhooks and their outbox (docs/store.md, "The webhook outbox"). The
	 * secret is stored sealed (webhook.c); deliveries are one row per
	 * (webhook, event), made from the log by store_webhook_fanout, whose
	 * progress is webhook_cursor's seq. */
	{4, "webhooks",
	 "CREATE TABLE webhooks("
	 " id TEXT PRIMARY KEY,"
	 " apikey_id INTEGER NOT NULL,"
	 " url TEXT NOT NULL,"
	 " events TEXT NOT NULL,"
	 " secret BLOB NOT NULL,"
	 " from_seq INTEGER NOT NULL,"
	 " created_ms INTEGER NOT NULL,"
	 " disabled_ms INTEGER NOT NULL DEFAULT 0,"
	 " disabled_reason TEXT);"
	 "CREATE INDEX webhooks_by_key ON webhooks(apikey_id, id);"
	 "CREATE TABLE webhook_outbox("
	 " id INTEGER PRIMARY KEY AUTOINCREMENT,"
	 " webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,"
	 " seq INTEGER NOT NULL,"
	 " state TEXT NOT NULL DEFAULT 'pending',"
	 " attempts INTEGER NOT NULL DEFAULT 0,"
	 " next_ms INTEGER NOT NULL,"
	 " last_status INTEGER NOT NULL DEFAULT 0,"
	 " last_error TEXT,"
	 " created_ms INTEGER NOT NULL,"
	 " done_ms INTEGER NOT NULL DEFAULT 0,"
	 " UNIQUE(webhook_id, seq));"
	 "CREATE INDEX webhook_outbox_due ON webhook_outbox(next_ms, id) WHERE state = 'pending';"
	 "CREATE TABLE webhook_cursor("
	 " id INTEGER PRIMARY KEY CHECK (id = 1),"
	 " seq INTEGER NOT NULL);"},
	/* Due deliveries are read per webhook, so that one webhook's backlog
	 * (a receiver that stalls) never hides another's due rows. */
	{5, "webhook deliveries by webhook",
	 "CREATE INDEX webhook_outbox_due_by_webhook ON webhook_outbox(webhook_id, next_ms, id)"
	 " WHERE state = 'pending';"},
	/* The confirmation page looks for a notice's read_confirmed events on
	 * every view: without this, a notice flooded with opens (hundreds of
	 * thousands of events) made each view read all of them. */
	{6, "read confirmations by notice",
	 "CREATE INDEX events_read_confirmed ON events(notice_id, seq)"
	 " WHERE type = 'read_confirmed';"},
	/* Addresses a hard bounce suppressed, per API key (docs/store.md,
	 * "Suppressions"). address_key is the compared form (suppress.h). */
	{7, "suppressions",
	 "CREATE TABLE suppressions("
	 " id INTEGER PRIMARY KEY AUTOINCREMENT,"
	 " apikey_id INTEGER NOT NULL,"
	 " address TEXT NOT NULL,"
	 " address_key TEXT NOT NULL,"
	 " enhanced TEXT NOT NULL,"
	 " reason TEXT NOT NULL,"
	 " notice_id TEXT NOT NULL,"
	 " created_ms INTEGER NOT NULL,"
	 " UNIQUE(apikey_id, address_key));"
	 "CREATE INDEX suppressions_by_key ON suppressions(apikey_id, id);"},
	/* Scheduled notices (status 'scheduled' until next_attempt_ms, the time
	 * they are due; send_at_ms keeps that first due time, from which the
	 * delivery lifetime counts) and dunning sequences, whose steps are
	 * notices (docs/store.md, "Scheduling and sequences"). */
	{8, "scheduling and sequences",
	 "ALTER TABLE notices ADD COLUMN send_at_ms INTEGER NOT NULL DEFAULT 0;"
	 "ALTER TABLE notices ADD COLUMN sequence_id TEXT;"
	 "ALTER TABLE notices ADD COLUMN step INTEGER NOT NULL DEFAULT 0;"
	 "CREATE INDEX notices_by_sequence ON notices(sequence_id, step)"
	 " WHERE sequence_id IS NOT NULL;"
	 "CREATE TABLE sequences("
	 " id TEXT PRIMARY KEY,"
	 " apikey_id INTEGER NOT NULL,"
	 " status TEXT NOT NULL,"
	 " reason TEXT,"
	 " request_json TEXT NOT NULL,"
	 " idempotency_key TEXT,"
	 " request_sha256 BLOB,"
	 " created_ms INTEGER NOT NULL,"
	 " stopped_ms INTEGER NOT NULL DEFAULT 0);"
	 "CREATE INDEX sequences_by_key ON sequences(apikey_id, id);"
	 "CREATE UNIQUE INDEX sequences_idempotency ON sequences(apikey_id, idempotency_key)"
	 " WHERE idempotency_key IS NOT NULL;"},
	/* Statistics (docs/stats.md): per-notice facts, rollups per (dim, day)
	 * with their delay samples, and the follower's cursor; all derived
	 * from the events by stats.c, so they can be rebuilt from the log. */
	{9, "statistics",
	 "CREATE TABLE stats_cursor("
	 " id INTEGER PRIMARY KEY CHECK (id = 1),"
	 " seq INTEGER NOT NULL);"
	 "CREATE TABLE stats_dims("
	 " id INTEGER PRIMARY KEY,"
	 " dkey TEXT NOT NULL UNIQUE,"
	 " apikey_id INTEGER NOT NULL,"
	 " template TEXT,"
	 " segment TEXT,"
	 " tags_json TEXT);"
	 "CREATE INDEX stats_dims_by_key ON stats_dims(apikey_id, id);"
	 "CREATE TABLE stats_notices("
	 " notice_id TEXT PRIMARY KEY,"
	 " apikey_id INTEGER NOT NULL,"
	 " dim INTEGER NOT NULL,"
	 " day INTEGER NOT NULL,"
	 " flags INTEGER NOT NULL,"
	 " accepted_ms INTEGER NOT NULL,"
	 " delivered_ms INTEGER NOT NULL,"
	 " open_ms INTEGER NOT NULL,"
	 " read_ms INTEGER NOT NULL,"
	 " open_hits_human INTEGER NOT NULL, open_hits_proxy INTEGER NOT NULL,"
	 " open_hits_scanner INTEGER NOT NULL, click_hits_human INTEGER NOT NULL,"
	 " click_hits_proxy INTEGER NOT NULL, click_hits_scanner INTEGER NOT NULL) WITHOUT ROWID;"
	 "CREATE INDEX stats_notices_by_time ON stats_notices(apikey_id, accepted_ms);"
	 "CREATE TABLE stats_rollup("
	 " dim INTEGER NOT NULL,"
	 " day INTEGER NOT NULL,"
	 " accepted INTEGER NOT NULL, delivered INTEGER NOT NULL, deferred INTEGER NOT NULL,"
	 " failed INTEGER NOT NULL, canceled INTEGER NOT NULL,"
	 " opened_human INTEGER NOT NULL, opened_proxy INTEGER NOT NULL,"
	 " opened_scanner INTEGER NOT NULL, clicked_human INTEGER NOT NULL,"
	 " clicked_proxy INTEGER NOT NULL, clicked_scanner INTEGER NOT NULL,"
	 " read_confirmed INTEGER NOT NULL,"
	 " open_hits_human INTEGER NOT NULL, open_hits_proxy INTEGER NOT NULL,"
	 " open_hits_scanner INTEGER NOT NULL, click_hits_human INTEGER NOT NULL,"
	 " click_hits_proxy INTEGER NOT NULL, click_hits_scanner INTEGER NOT NULL,"
	 " PRIMARY KEY(dim, day)) WITHOUT ROWID;"
	 "CREATE TABLE stats_delays("
	 " id INTEGER PRIMARY KEY,"
	 " dim INTEGER NOT NULL,"
	 " day INTEGER NOT NULL,"
	 " kind INTEGER NOT NULL,"
	 " chunk INTEGER NOT NULL,"
	 " vals BLOB NOT NULL,"
	 " UNIQUE(dim, day, kind, chunk));"},
	/* Finished webhook deliveries by the time they finished, so the
	 * deliverer can drop those past webhooks.keep_days without reading
	 * the whole outbox. */
	{10, "webhook outbox pruning",
	 "CREATE INDEX webhook_outbox_done ON webhook_outbox(done_ms)"
	 " WHERE state != 'pending';"},
	/* Tracker hits past the first ones of their kind and class are counted
	 * here, not logged one by one (store.h "Tracker hits"): per notice,
	 * the full events written so far, the summaries written, and the open
	 * fold; the distinct addresses of the open fold beside it. A notice
	 * without a row counts its events when first hit again. */
	{11, "tracker hit folds",
	 "CREATE TABLE hit_tally("
	 " notice_id TEXT PRIMARY KEY,"
	 " full_opened_human INTEGER NOT NULL, full_opened_proxy INTEGER NOT NULL,"
	 " full_opened_scanner INTEGER NOT NULL, full_clicked_human INTEGER NOT NULL,"
	 " full_clicked_proxy INTEGER NOT NULL, full_clicked_scanner INTEGER NOT NULL,"
	 " summaries INTEGER NOT NULL,"
	 " fold_first_ms INTEGER NOT NULL, fold_last_ms INTEGER NOT NULL,"
	 " fold_due_ms INTEGER NOT NULL,"
	 " fold_opened_human INTEGER NOT NULL, fold_opened_proxy INTEGER NOT NULL,"
	 " fold_opened_scanner INTEGER NOT NULL, fold_clicked_human INTEGER NOT NULL,"
	 " fold_clicked_proxy INTEGER NOT NULL, fold_clicked_scanner INTEGER NOT NULL,"
	 " fold_addresses INTEGER NOT NULL) WITHOUT ROWID;"
	 "CREATE INDEX hit_tally_due ON hit_tally(fold_due_ms) WHERE fold_due_ms > 0;"
	 "CREATE TABLE hit_fold_addrs("
	 " notice_id TEXT NOT NULL,"
	 " addr BLOB NOT NULL,"
	 " PRIMARY KEY(notice_id, addr)) WITHOUT ROWID;"},
	/* Webhook secret rotation (docs/keys.md): the secret replaced by
	 * POST /v1/webhooks/{id}/rotate-secret stays here, sealed as before,
	 * and signs beside the new one until old_secret_until_ms. */
	{12, "webhook secret rotation",
	 "ALTER TABLE webhooks ADD COLUMN old_secret BLOB;"
	 "ALTER TABLE webhooks ADD COLUMN old_secret_until_ms INTEGER NOT NULL DEFAULT 0;"},
};
#define NMIGRATIONS (sizeof(MIGRATIONS) / sizeof(MIGRATIONS[0]))

static const char MIGRATIONS_TABLE[] =
	"CREATE TABLE IF NOT EXISTS schema_migrations("
	" version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ms INTEGER NOT NULL)";

/* ---- Statements. Each connection prepares a statement the first time it
 * needs it and keeps it until close. */
#define NOTICE_COLS                                                                     \
	"id,apikey_id,status,to_addr,template,reference,segment,tags_json,payload_json,"  \
	"salt,attempts,created_ms,updated_ms,next_attempt_ms,message_id,sha256,last_error,"  \
	"send_at_ms,sequence_id,step"
/* One statement per combination of list filters, so that each can use its
 * index (a generic "?2 IS NULL OR col = ?2" defeats the planner). Unused
 * parameter numbers are simply left unbound. */
#define LIST_SQL(k, r, st) \
	"SELECT " NOTICE_COLS " FROM notices WHERE id > ?1" k r st " ORDER BY id LIMIT ?5"
#define LK " AND apikey_id = ?2"
#define LR " AND reference = ?3"
#define LS " AND status = ?4"
/* An event's log index: from the run (log_ranges) that starts at or before
 * its seq, if the run reaches it; -1 otherwise. Events after the last run
 * (all that the sequencer reads) skip the search: SQLite evaluates that
 * uncorrelated bound once per statement. */
#define LOG_INDEX_OF_EVENT                                                                \
	"CASE WHEN events.seq > (SELECT first_seq + n - 1 FROM log_ranges"                \
	" ORDER BY first_index DESC LIMIT 1) THEN -1 ELSE"                                 \
	" coalesce((SELECT CASE WHEN events.seq < r.first_seq + r.n"                       \
	" THEN r.first_index + events.seq - r.first_seq END FROM log_ranges r"             \
	" WHERE r.first_seq <= events.seq ORDER BY r.first_seq DESC LIMIT 1), -1) END"
#define EVENT_COLS "seq,notice_id,type,time_ms,entry," LOG_INDEX_OF_EVENT
/* hit_tally's columns after notice_id, in the order struct tally reads them. */
#define TALLY_COLS                                                                          \
	"full_opened_human,full_opened_proxy,full_opened_scanner,full_clicked_human,"      \
	"full_clicked_proxy,full_clicked_scanner,summaries,fold_first_ms,fold_last_ms,"    \
	"fold_due_ms,fold_opened_human,fold_opened_proxy,fold_opened_scanner,"             \
	"fold_clicked_human,fold_clicked_proxy,fold_clicked_scanner,fold_addresses"
#define CHECKPOINT_COLS "size,note,created_ms,tst,coalesce(tst_time_ms,0)"
#define WEBHOOK_COLS \
	"id,apikey_id,url,events,secret,from_seq,created_ms,disabled_ms,disabled_reason," \
	"old_secret_until_ms"

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

static const char *const SQL[S_COUNT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_JOB_SAVE] = "SAVEPOINT job",
	[S_JOB_RELEASE] = "RELEASE job",
	[S_JOB_UNDO] = "ROLLBACK TO job",
	[S_ITEM_SAVE] = "SAVEPOINT item",
	[S_ITEM_RELEASE] = "RELEASE item",
	[S_ITEM_UNDO] = "ROLLBACK TO item",
	[S_MIG_VERSION] = "SELECT coalesce(max(version), 0) FROM schema_migrations",
	[S_MIG_RECORD] = "INSERT INTO schema_migrations(version, name, applied_ms) VALUES(?1, ?2, ?3)",
	[S_LAST_EVENT_TIME] = "SELECT time_ms FROM events ORDER BY seq DESC LIMIT 1",
	[S_APIKEY_ADD] = "INSERT INTO apikeys(name, hash, prefix, created_ms) VALUES(?1, ?2, ?3, ?4)",
	[S_APIKEY_REVOKE] = "UPDATE apikeys SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms = 0",
	[S_IDEM_GET] = "SELECT request_sha256, notice_id FROM idempotency WHERE apikey_id = ?1 AND key = ?2",
	[S_IDEM_ADD] = "INSERT INTO idempotency(apikey_id, key, request_sha256, notice_id, created_ms)"
		       " VALUES(?1, ?2, ?3, ?4, ?5)",
	[S_STATUS_GET] = "SELECT status FROM notices WHERE id = ?1",
	[S_NOTICE_ADD] = "INSERT INTO notices(id, apikey_id, status, to_addr, template, reference,"
			 " segment, tags_json, payload_json, salt, attempts, created_ms, updated_ms,"
			 " next_attempt_ms, send_at_ms, sequence_id, step) VALUES(?1, ?2, ?11, ?3, ?4,"
			 " ?5, ?6, ?7, ?8, ?9, 0, ?10, ?10, ?12, ?12, ?13, ?14)",
	[S_ATT_ADD] = "INSERT INTO attachments(notice_id, idx, filename, content_type, data)"
		      " VALUES(?1, ?2, ?3, ?4, ?5)",
	[S_EVENT_ADD] = "INSERT INTO events(notice_id, type, time_ms, entry) VALUES(?1, ?2, ?3, ?4)",
	[S_DISC_ADD] = "INSERT INTO disclosures(notice_id, commitment, value) VALUES(?1, ?2, ?3)"
		       " ON CONFLICT(notice_id, commitment) DO NOTHING",
	/* Two index range scans merged, rather than one OR that would sort every
	 * queued notice on each claim when the queue is long. */
	[S_DUE] = "SELECT id, t FROM (SELECT id, next_attempt_ms AS t FROM notices"
		  " WHERE status = 'queued' ORDER BY next_attempt_ms, id LIMIT ?2)"
		  " UNION ALL SELECT id, t FROM (SELECT id, next_attempt_ms AS t FROM notices"
		  " WHERE status = 'deferred' AND next_attempt_ms <= ?1"
		  " ORDER BY next_attempt_ms, id LIMIT ?2)"
		  " UNION ALL SELECT id, t FROM (SELECT id, next_attempt_ms AS t FROM notices"
		  " WHERE status = 'scheduled' AND next_attempt_ms <= ?1"
		  " ORDER BY next_attempt_ms, id LIMIT ?2)"
		  " ORDER BY 2, 1 LIMIT ?2",
	[S_CLAIM] = "UPDATE notices SET status = 'sending', updated_ms = ?2 WHERE id = ?1"
		    " RETURNING " NOTICE_COLS,
	[S_NOTICE_EXISTS] = "SELECT 1 FROM notices WHERE id = ?1",
	[S_MSG_EXISTS] = "SELECT 1 FROM messages WHERE notice_id = ?1",
	[S_MSG_ADD] = "INSERT INTO messages(notice_id, eml, sha256, created_ms) VALUES(?1, ?2, ?3, ?4)",
	[S_TOKEN_ADD] = "INSERT INTO tokens(token, notice_id, kind, link, url) VALUES(?1, ?2, ?3, ?4, ?5)"
			" ON CONFLICT(token) DO NOTHING",
	[S_SEAL] = "UPDATE notices SET message_id = ?2, sha256 = ?3, updated_ms = ?4 WHERE id = ?1",
	/* An attempt's result applies only to a notice without an outcome yet:
	 * one outcome event per notice (store.md, "States"). */
	[S_RESULT] = "UPDATE notices SET status = ?2, attempts = attempts + 1, next_attempt_ms = ?3,"
		     " last_error = ?4, updated_ms = ?5 WHERE id = ?1"
		     " AND status NOT IN ('relayed', 'delivered', 'failed')",
	/* next_attempt_ms is kept: a recovered notice goes out before those
	 * accepted after it, so its resend is not left to the end of a long queue. */
	[S_RECOVER] = "UPDATE notices SET status = 'queued', updated_ms = ?1 WHERE status = 'sending'",
	/* entry is stored as a blob: JSON functions read it as text */
	[S_BOUNCED] = "SELECT 1 FROM events WHERE notice_id = ?1 AND type = 'delivery_failed'"
		      " AND json_extract(CAST(entry AS TEXT), '$.reason') = 'bounced' LIMIT 1",
	[S_BOUNCE_MARK] = "UPDATE notices SET status = 'failed', last_error = ?2, updated_ms = ?3"
			  " WHERE id = ?1",
	[S_CANCEL_GET] = "SELECT apikey_id, status, message_id IS NOT NULL, attempts FROM notices"
			 " WHERE id = ?1",
	/* Only a notice never handed to SMTP: not claimed, never attempted, and
	 * not sealed (a sealed one back in 'queued' was recovered after a crash
	 * and may have reached the server). */
	[S_CANCEL] = "UPDATE notices SET status = 'canceled', updated_ms = ?2, last_error = ?3"
		     " WHERE id = ?1 AND status IN ('scheduled', 'queued') AND message_id IS NULL"
		     " AND attempts = 0",
	[S_SEQ_ADD] = "INSERT INTO sequences(id, apikey_id, status, request_json, idempotency_key,"
		      " request_sha256, created_ms) VALUES(?1, ?2, 'active', ?3, ?4, ?5, ?6)",
	[S_SEQ_IDEM] = "SELECT id, request_sha256 FROM sequences WHERE apikey_id = ?1"
		       " AND idempotency_key = ?2",
	[S_SEQ_GET] = "SELECT id, apikey_id, status, reason, request_json, created_ms, stopped_ms"
		      " FROM sequences WHERE id = ?1",
	[S_SEQ_STEPS] = "SELECT " NOTICE_COLS " FROM notices WHERE sequence_id = ?1 ORDER BY step",
	[S_SEQ_PENDING] = "SELECT id FROM notices WHERE sequence_id = ?1"
			  " AND status IN ('scheduled', 'queued') AND message_id IS NULL"
			  " AND attempts = 0 ORDER BY step",
	[S_SEQ_STOP] = "UPDATE sequences SET status = 'stopped', reason = ?2, stopped_ms = ?3"
		       " WHERE id = ?1 AND status = 'active'",
	[S_SEQ_OF] = "SELECT sequence_id FROM notices WHERE id = ?1 AND sequence_id IS NOT NULL",
	[S_APIKEY_FIND] = "SELECT id, name, prefix, created_ms, revoked_ms FROM apikeys"
			  " WHERE hash = ?1 AND revoked_ms = 0",
	[S_APIKEY_ACTIVE] = "SELECT 1 FROM apikeys WHERE id = ?1 AND revoked_ms = 0",
	[S_APIKEY_LIST] = "SELECT id, name, prefix, created_ms, revoked_ms FROM apikeys ORDER BY id",
	[S_NOTICE_GET] = "SELECT " NOTICE_COLS " FROM notices WHERE id = ?1"
			 " AND (?2 < 0 OR apikey_id = ?2)",
	[S_LIST0 + 0] = LIST_SQL("", "", ""),
	[S_LIST0 + 1] = LIST_SQL(LK, "", ""),
	[S_LIST0 + 2] = LIST_SQL("", LR, ""),
	[S_LIST0 + 3] = LIST_SQL(LK, LR, ""),
	[S_LIST0 + 4] = LIST_SQL("", "", LS),
	[S_LIST0 + 5] = LIST_SQL(LK, "", LS),
	[S_LIST0 + 6] = LIST_SQL("", LR, LS),
	[S_LIST0 + 7] = LIST_SQL(LK, LR, LS),
	[S_EVENTS_OF] = "SELECT " EVENT_COLS " FROM events WHERE notice_id = ?1 ORDER BY seq",
	/* The type is a literal so that the partial index of migration 6 applies. */
	[S_CONFIRMATIONS_OF] = "SELECT " EVENT_COLS " FROM events WHERE notice_id = ?1"
			       " AND type = 'read_confirmed' ORDER BY seq",
	[S_EVENTS_AFTER] = "SELECT " EVENT_COLS " FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
	[S_ATT_OF] = "SELECT filename, content_type, data FROM attachments WHERE notice_id = ?1"
		     " ORDER BY idx",
	[S_MSG_GET] = "SELECT eml, sha256 FROM messages WHERE notice_id = ?1",
	[S_DISC_OF] = "SELECT commitment, value FROM disclosures WHERE notice_id = ?1 ORDER BY rowid",
	[S_NEXT_DUE] = "SELECT min(t) FROM (SELECT min(next_attempt_ms) AS t FROM notices"
		       " WHERE status = 'deferred' UNION ALL SELECT min(next_attempt_ms) FROM notices"
		       " WHERE status = 'scheduled')",
	[S_COUNTS] = "SELECT status, count(*) FROM notices GROUP BY status",
	[S_EVENTS_MAX] = "SELECT coalesce(max(seq), 0) FROM events",
	[S_QUICK_CHECK] = "PRAGMA quick_check",
	[S_CHEAP_CHECK] = "SELECT count(*) FROM schema_migrations",
	/* Walks the notice's events by (notice_id, seq) and stops at the first
	 * of the type: content_sealed is a notice's second event. */
	[S_EVENT_FIRST] = "SELECT " EVENT_COLS " FROM events WHERE notice_id = ?1 AND type = ?2"
			  " ORDER BY seq LIMIT 1",
	/* The table in storage order: independent of any index and of the id
	 * column, either of which may be what is damaged. rowid comes last so
	 * that store_notice_from_row's column numbers hold. */
	[S_NOTICE_SCAN] = "SELECT " NOTICE_COLS ", rowid FROM notices WHERE rowid > ?1"
			  " ORDER BY rowid LIMIT ?2",
	[S_LOG_STATE] = "SELECT size, root, last_seq FROM log_state WHERE id = 1",
	[S_LOG_STATE_SET] = "INSERT INTO log_state(id, size, root, last_seq) VALUES(1, ?1, ?2, ?3)"
			    " ON CONFLICT(id) DO UPDATE SET size = ?1, root = ?2, last_seq = ?3",
	[S_LOG_RANGE_ADD] = "INSERT INTO log_ranges(first_index, first_seq, n) VALUES(?1, ?2, ?3)",
	[S_LOG_RANGE_COUNT] = "SELECT count(*) FROM events WHERE seq BETWEEN ?1 AND ?2",
	[S_LOG_TILE_SET] = "INSERT INTO log_tiles(level, idx, data) VALUES(?1, ?2, ?3)"
			   " ON CONFLICT(level, idx) DO UPDATE SET data = ?3",
	[S_LOG_TILE_GET] = "SELECT data FROM log_tiles WHERE level = ?1 AND idx = ?2",
	/* Webhooks. A new webhook's from_seq is the last event at its commit. */
	/* The key's limit is checked in the insert itself, inside the writer:
	 * two registrations at once cannot both take the last place. */
	[S_WH_ADD] = "INSERT INTO webhooks(id, apikey_id, url, events, secret, from_seq, created_ms)"
		     " SELECT ?1, ?2, ?3, ?4, ?5, (SELECT coalesce(max(seq), 0) FROM events), ?6"
		     " WHERE (SELECT count(*) FROM webhooks WHERE apikey_id = ?2) < ?7",
	[S_WH_LIST] = "SELECT " WEBHOOK_COLS " FROM webhooks WHERE apikey_id = ?1 ORDER BY id",
	[S_WH_LIST_ALL] = "SELECT " WEBHOOK_COLS " FROM webhooks ORDER BY id",
	[S_WH_COUNTS] = "SELECT state, count(*) FROM webhook_outbox WHERE webhook_id = ?1"
			" GROUP BY state",
	[S_WH_DELETE] = "DELETE FROM webhooks WHERE id = ?1 AND apikey_id = ?2",
	[S_WH_CURSOR] = "SELECT coalesce((SELECT seq FROM webhook_cursor WHERE id = 1), 0)",
	[S_WH_MIN_FROM] = "SELECT min(from_seq) FROM webhooks WHERE disabled_ms = 0",
	/* Integrated events in (?1, ?2] that an active webhook of the notice's
	 * key wants (a revoked key's webhooks get no new deliveries): walks the
	 * events by seq, the notice and the key's webhooks by their keys. */
	[S_WH_CANDIDATES] = "SELECT e.seq, w.id FROM events e JOIN notices n ON n.id = e.notice_id"
			    " JOIN webhooks w ON w.apikey_id = n.apikey_id AND w.disabled_ms = 0"
			    " AND e.seq > w.from_seq"
			    " JOIN apikeys k ON k.id = w.apikey_id AND k.revoked_ms = 0"
			    " AND (w.events = '*' OR instr(w.events, ',' || e.type || ',') > 0)"
			    " WHERE e.seq > ?1 AND e.seq <= ?2 ORDER BY e.seq, w.id",
	/* The webhook may have been deleted or disabled since the candidates
	 * were read: then nothing is added. */
	[S_WH_OUTBOX_ADD] = "INSERT INTO webhook_outbox(webhook_id, seq, next_ms, created_ms)"
			    " SELECT ?1, ?2, ?3, ?3 WHERE EXISTS (SELECT 1 FROM webhooks"
			    " WHERE id = ?1 AND disabled_ms = 0) ON CONFLICT(webhook_id, seq) DO NOTHING",
	[S_WH_CURSOR_SET] = "INSERT INTO webhook_cursor(id, seq) VALUES(1, ?1)"
			    " ON CONFLICT(id) DO UPDATE SET seq = ?1",
	[S_WH_DUE] = "SELECT o.id, o.webhook_id, o.attempts, w.url, w.secret, events.type,"
		     " events.notice_id, events.time_ms, events.entry, n.reference, "
		     LOG_INDEX_OF_EVENT ","
		     " CASE WHEN w.old_secret_until_ms > ?1 THEN w.old_secret END"
		     " FROM webhook_outbox o"
		     " JOIN webhooks w ON w.id = o.webhook_id JOIN events ON events.seq = o.seq"
		     " JOIN notices n ON n.id = events.notice_id"
		     " WHERE o.webhook_id = ?3 AND o.state = 'pending' AND o.next_ms <= ?1"
		     " AND w.disabled_ms = 0 ORDER BY o.next_ms, o.id LIMIT ?2",
	/* The current secret becomes the old one: a second rotation within an
	 * overlap ends the first one's overlap. */
	[S_WH_ROTATE] = "UPDATE webhooks SET old_secret = secret, old_secret_until_ms = ?4,"
			" secret = ?3 WHERE id = ?1 AND apikey_id = ?2",
	[S_WH_OLD_DROP] = "UPDATE webhooks SET old_secret = NULL, old_secret_until_ms = 0"
			  " WHERE old_secret IS NOT NULL AND old_secret_until_ms <= ?1",
	[S_WH_ACTIVE] = "SELECT id FROM webhooks WHERE disabled_ms = 0 ORDER BY id",
	[S_WH_PRUNE] = "DELETE FROM webhook_outbox WHERE id IN (SELECT id FROM webhook_outbox"
		       " WHERE state != 'pending' AND done_ms < ?1 ORDER BY done_ms LIMIT ?2)",
	[S_SUP_NOTICE] = "SELECT apikey_id, to_addr FROM notices WHERE id = ?1",
	[S_SUP_ADD] = "INSERT INTO suppressions(apikey_id, address, address_key, enhanced, reason,"
		      " notice_id, created_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"
		      " ON CONFLICT(apikey_id, address_key) DO NOTHING",
	[S_SUP_FIND] = "SELECT id, address, enhanced, reason, notice_id, created_ms FROM suppressions"
		       " WHERE apikey_id = ?1 AND address_key = ?2",
	[S_SUP_LIST] = "SELECT id, address, enhanced, reason, notice_id, created_ms FROM suppressions"
		       " WHERE apikey_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
	[S_SUP_DELETE] = "DELETE FROM suppressions WHERE apikey_id = ?1 AND address_key = ?2",
	[S_WH_RESULT] = "UPDATE webhook_outbox SET state = ?2, attempts = attempts + 1, next_ms = ?3,"
			" last_status = ?4, last_error = ?5, done_ms = ?6"
			" WHERE id = ?1 AND state = 'pending'",
	[S_WH_DISABLE] = "UPDATE webhooks SET disabled_ms = ?2, disabled_reason = ?3"
			 " WHERE id = ?1 AND disabled_ms = 0",
	[S_WH_DROP] = "UPDATE webhook_outbox SET state = 'dropped', done_ms = ?2"
		      " WHERE webhook_id = ?1 AND state = 'pending'",
	/* The run holding index ?1, then each run's events in seq order: both
	 * loops walk a primary key, so no sort and no scan from the start. */
	[S_LOG_ENTRIES] = "SELECT e.seq, e.notice_id, e.type, e.time_ms, e.entry,"
			  " r.first_index + e.seq - r.first_seq FROM log_ranges r JOIN events e"
			  " ON e.seq >= r.first_seq + max(?1 - r.first_index, 0)"
			  " AND e.seq < r.first_seq + r.n"
			  " WHERE r.first_index >= coalesce((SELECT first_index FROM log_ranges"
			  " WHERE first_index <= ?1 ORDER BY first_index DESC LIMIT 1), 0)"
			  " ORDER BY r.first_index, e.seq LIMIT ?2",
	/* Counted, not assumed from the runs' lengths: the audit must see an
	 * event a run skipped. The upper bound inside the join keeps each run
	 * a range of the primary key (a separate `e.seq <= ?1` made SQLite
	 * scan from each run's start to ?1). */
	[S_LOG_UNINDEXED] = "SELECT (SELECT count(*) FROM events WHERE seq <= ?1) -"
			    " (SELECT count(*) FROM log_ranges r JOIN events e ON e.seq >= r.first_seq"
			    " AND e.seq < min(r.first_seq + r.n, ?1 + 1))",
	[S_CP_ADD] = "INSERT INTO checkpoints(size, note, created_ms) VALUES(?1, ?2, ?3)",
	[S_CP_TST] = "UPDATE checkpoints SET tst = ?2, tst_time_ms = ?3 WHERE size = ?1",
	[S_CP_FIND] = "SELECT " CHECKPOINT_COLS " FROM checkpoints WHERE size >= ?1"
		      " ORDER BY size DESC LIMIT 1",
	[S_CP_FIND_TST] = "SELECT " CHECKPOINT_COLS " FROM checkpoints WHERE size >= ?1"
			  " AND tst IS NOT NULL ORDER BY size DESC LIMIT 1",
	[S_CP_UNTIMESTAMPED] = "SELECT " CHECKPOINT_COLS " FROM checkpoints WHERE tst IS NULL"
			       " ORDER BY size DESC LIMIT ?1",
	[S_CP_ALL] = "SELECT " CHECKPOINT_COLS " FROM checkpoints ORDER BY size",
	[S_TOKEN_GET] = "SELECT notice_id, kind, link, url FROM tokens WHERE token = ?1",
	[S_BRIEF_SALT] = "SELECT salt FROM notices WHERE id = ?1",
	/* The first acceptance by seq is the earliest (seq order is time order),
	 * and it comes a few events into a notice's life: walking the notice's
	 * events in seq order stops there. min(time_ms) read every event of
	 * the notice, and the tracker asks every few seconds while a flood adds
	 * thousands of opened events a second to that very notice. */
	[S_BRIEF_ACCEPTED] = "SELECT coalesce((SELECT time_ms FROM events WHERE notice_id = ?1"
			     " AND type IN ('relay_accepted', 'delivery_accepted')"
			     " ORDER BY seq LIMIT 1), 0)",
	[S_TALLY_GET] = "SELECT " TALLY_COLS " FROM hit_tally WHERE notice_id = ?1",
	/* A notice hit before migration 11 (or whose row is missing): what its
	 * events say. A hit without a class we know is a scanner's, as in stats. */
	[S_TALLY_COUNT] = "SELECT type, CASE json_extract(CAST(entry AS TEXT), '$.class')"
			  " WHEN 'human' THEN 0 WHEN 'proxy' THEN 1 ELSE 2 END, count(*)"
			  " FROM events WHERE notice_id = ?1"
			  " AND type IN ('opened', 'clicked', 'tracking_summary') GROUP BY 1, 2",
	[S_TALLY_PUT] = "INSERT OR REPLACE INTO hit_tally(notice_id, " TALLY_COLS ")"
			" VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,"
			" ?16, ?17, ?18)",
	[S_FOLD_ADDR] = "INSERT INTO hit_fold_addrs(notice_id, addr) VALUES(?1, ?2)"
			" ON CONFLICT DO NOTHING",
	[S_FOLD_ADDRS_DROP] = "DELETE FROM hit_fold_addrs WHERE notice_id = ?1",
	[S_FOLDS_DUE] = "SELECT notice_id FROM hit_tally WHERE fold_due_ms > 0"
			" AND fold_due_ms <= ?1 ORDER BY fold_due_ms LIMIT ?2",
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

static const struct store_ops store_sqlite_ops;
static void sqlite_close(struct store *base);

static struct store_sqlite *store_sqlite_of(struct store *base)
{
	return (struct store_sqlite *)base;
}

/* ---- Small helpers. */

static char *xmemdup(const void *p, size_t n)
{
	char *d = xcalloc(n + 1, 1);
	if (n)
		memcpy(d, p, n);
	return d;
}

/* Doubles *cap when n has reached it. */
static void *grow(void *p, size_t n, size_t *cap, size_t size)
{
	if (n < *cap)
		return p;
	*cap = *cap ? *cap * 2 : 16;
	return xrealloc(p, *cap * size);
}

/* SQLite found the file's bytes inconsistent: not a failure to retry but
 * damage, which the operator must repair (docs/operations.md). */
static int damaged_file(int rc)
{
	return (rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB;
}

/* Keeps the failure's codes on the connection (the writer's health needs
 * them after the statement is reset) and fills err. */
static int db_err(struct selo_err *err, struct conn *c, const char *what)
{
	c->last_rc = sqlite3_extended_errcode(c->db);
	c->last_errno = sqlite3_system_errno(c->db);
	if (damaged_file(c->last_rc))
		return err_set(err, 500, "store-damaged",
			       "store: %s: the database file is damaged (%s); run `selo store check "
			       "--data DIR` and restore it from a backup (docs/operations.md, \"A "
			       "damaged store\")",
			       what, sqlite3_errmsg(c->db));
	return err_set(err, 500, "storage-failed", "store: %s: %s", what, sqlite3_errmsg(c->db));
}

static sqlite3_stmt *stmt_get(struct conn *c, enum stmt_id id, struct selo_err *err)
{
	if (c->st[id])
		return c->st[id];
	if (sqlite3_prepare_v3(c->db, SQL[id], -1, SQLITE_PREPARE_PERSISTENT, &c->st[id], NULL) !=
	    SQLITE_OK) {
		err_set(err, 500, "storage-failed", "store: preparing \"%.48s\": %s", SQL[id],
			sqlite3_errmsg(c->db));
		sqlite3_finalize(c->st[id]);
		c->st[id] = NULL;
	}
	return c->st[id];
}

/* Returns a cached statement to its unbound state, releasing its read lock. */
static void stmt_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Steps a statement that returns no row, then resets it. */
static int step_done(struct conn *c, sqlite3_stmt *st, struct selo_err *err, const char *what)
{
	int rc = sqlite3_step(st);
	c->last_rc = rc == SQLITE_DONE ? SQLITE_OK : sqlite3_extended_errcode(c->db);
	int r = rc == SQLITE_DONE ? 0 : db_err(err, c, what);
	stmt_done(st);
	return r;
}

static int run_simple(struct conn *c, enum stmt_id id, struct selo_err *err, const char *what)
{
	sqlite3_stmt *st = stmt_get(c, id, err);
	return st ? step_done(c, st, err, what) : -1;
}

/* Bind failures (a blob over SQLite's size limit) are reported like step
 * failures; the statement is reset so the cache stays clean. */
static int bind_failed(struct conn *c, sqlite3_stmt *st, struct selo_err *err, const char *what)
{
	db_err(err, c, what);
	stmt_done(st);
	return -1;
}

static int bind_text(sqlite3_stmt *st, int i, const char *s)
{
	return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

/* A zero-length blob must not become NULL (the columns are NOT NULL). */
static int bind_blob(sqlite3_stmt *st, int i, const void *p, size_t n)
{
	if (!p || !n)
		return sqlite3_bind_zeroblob(st, i, 0);
	return sqlite3_bind_blob64(st, i, p, n, SQLITE_STATIC);
}

static char *col_text(sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return NULL;
	const unsigned char *t = sqlite3_column_text(st, i);
	return xmemdup(t ? (const char *)t : "", t ? (size_t)sqlite3_column_bytes(st, i) : 0);
}

static void col_copy(sqlite3_stmt *st, int i, char *out, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	snprintf(out, cap, "%s", t ? (const char *)t : "");
}

/* A blob column as malloc'd bytes with a NUL after them (entries are text). */
static char *col_bytes(sqlite3_stmt *st, int i, size_t *len)
{
	const void *p = sqlite3_column_blob(st, i);
	*len = p ? (size_t)sqlite3_column_bytes(st, i) : 0;
	return xmemdup(p, *len);
}

/* ---- Connections. */

static struct conn *conn_open(const char *path, int flags, struct selo_err *err)
{
	struct conn *c = xcalloc(1, sizeof(*c));
	int rc = sqlite3_open_v2(path, &c->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_extended_result_codes(c->db, 1);
	sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
	/* Savepoint journals and sorts in memory: on disk, the writer's
	 * per-job savepoints spilled into a new temporary file (created,
	 * unlinked, written, closed, its blocks freed) about 290 times a second
	 * under load (`perf trace`, make bench). They hold at most one group's
	 * changed pages. */
	rc = sqlite3_exec(c->db, "PRAGMA temp_store=MEMORY", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		return c;
fail:
	err_set(err, 500, "storage-failed", "store: opening %s: %s", path,
		c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
	sqlite3_close(c->db);
	free(c);
	return NULL;
}

static void conn_close(struct conn *c)
{
	if (!c)
		return;
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(c->st[i]);
	sqlite3_close(c->db);
	free(c);
}

static int text_cb(void *arg, int ncol, char **vals, char **names)
{
	(void)names;
	if (ncol > 0 && vals[0])
		snprintf(arg, 16, "%s", vals[0]);
	return 0;
}

static int writer_setup(struct conn *c, struct selo_err *err)
{
	char mode[16] = "";
	if (sqlite3_exec(c->db, "PRAGMA journal_mode=WAL", text_cb, mode, NULL) != SQLITE_OK)
		return db_err(err, c, "setting WAL mode");
	if (strcmp(mode, "wal") != 0)
		return err_set(err, 500, "storage-failed",
			       "store: the database refused WAL mode (journal_mode is \"%s\"); it "
			       "must be on a local file system",
			       mode);
	/* FULL: a commit is on disk before its callers hear of it (a 202 is a promise).
	 * journal_size_limit: the WAL shrinks back to 256 MiB after a burst, but
	 * not below: the writer restarts it at 64 MiB (wal_restart), and a
	 * truncation in every cycle would free and reallocate its blocks (on a
	 * file system mounted with `discard`, a synchronous discard inside a
	 * commit: 50 ms measured). */
	/* wal_autocheckpoint=0: the writer never copies the WAL back itself (a
	 * checkpoint after a burst of sealed messages took hundreds of ms, and
	 * every waiting commit with it); the checkpointer thread does. */
	if (sqlite3_exec(c->db,
			 "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
			 " PRAGMA journal_size_limit=268435456; PRAGMA wal_autocheckpoint=0",
			 NULL, NULL, NULL) != SQLITE_OK)
		return db_err(err, c, "setting pragmas");
	return 0;
}

/* Creating the file ourselves gives it mode 0600 (it holds personal data);
 * SQLite gives its -wal and -shm files the same mode. */
static int file_precreate(const char *path, struct selo_err *err)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_set(err, 500, "storage-failed", "store: cannot open %s: %s", path,
			       strerror(errno));
	close(fd);
	return 0;
}

/* ---- Migrations. */

static int schema_version_read(struct conn *c, int *out, struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_MIG_VERSION, err);
	if (!st)
		return -1;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int(st, 0);
	int r = rc == SQLITE_ROW ? 0 : db_err(err, c, "reading the schema version");
	stmt_done(st);
	return r;
}

static int migration_record(struct conn *c, const struct migration *m, struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_MIG_RECORD, err);
	if (!st)
		return -1;
	if (sqlite3_bind_int(st, 1, m->version) | bind_text(st, 2, m->name) |
	    sqlite3_bind_int64(st, 3, clock_now_ms()))
		return bind_failed(c, st, err, "recording a migration");
	return step_done(c, st, err, "recording a migration");
}

static int migration_apply(struct conn *c, const struct migration *m, struct selo_err *err)
{
	if (run_simple(c, S_BEGIN, err, "starting a migration") != 0)
		return -1;
	int have = 0;
	/* Re-read under the write lock: another process may have migrated first. */
	if (schema_version_read(c, &have, err) != 0)
		goto undo;
	if (have >= m->version)
		return run_simple(c, S_COMMIT, err, "ending a migration");
	char *msg = NULL;
	if (sqlite3_exec(c->db, m->sql, NULL, NULL, &msg) != SQLITE_OK) {
		err_set(err, 500, "storage-failed", "store: migration %d (%s): %s", m->version,
			m->name, msg ? msg : sqlite3_errmsg(c->db));
		sqlite3_free(msg);
		goto undo;
	}
	if (migration_record(c, m, err) != 0)
		goto undo;
	if (run_simple(c, S_COMMIT, err, "committing a migration") == 0)
		return 0;
undo:
	if (!sqlite3_get_autocommit(c->db))
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

static int migrate(struct store_sqlite *s, struct selo_err *err)
{
	struct conn *c = s->w;
	if (sqlite3_exec(c->db, MIGRATIONS_TABLE, NULL, NULL, NULL) != SQLITE_OK)
		return db_err(err, c, "creating schema_migrations");
	int have = 0;
	if (schema_version_read(c, &have, err) != 0)
		return -1;
	int latest = MIGRATIONS[NMIGRATIONS - 1].version;
	if (have > latest)
		return err_set(err, 500, "schema-too-new",
			       "store: %s has schema version %d but this selo knows versions up to "
			       "%d; run a newer selo",
			       s->path, have, latest);
	for (size_t i = 0; i < NMIGRATIONS; i++)
		if (MIGRATIONS[i].version > have && migration_apply(c, &MIGRATIONS[i], err) != 0)
			return -1;
	return schema_version_read(c, &s->version, err);
}

/* Seeds the event clock with the newest event's time, so that time order
 * holds across restarts even if the wall clock was set back meanwhile. */
static int last_event_time_load(struct store_sqlite *s, struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(s->w, S_LAST_EVENT_TIME, err);
	if (!st)
		return -1;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		s->last_event_ms = sqlite3_column_int64(st, 0);
	int r = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_err(err, s->w, "reading the last event");
	stmt_done(st);
	return r;
}

/* ---- The writer. */

/* The time of the next event: the wall clock, held still rather than let it
 * go backwards, so that seq order and time order agree. */
static int64_t writer_time(struct store_sqlite *s)
{
	int64_t t = clock_now_ms();
	if (t < s->last_event_ms)
		t = s->last_event_ms;
	s->last_event_ms = t;
	return t;
}

/* Ends a savepoint: kept when ok, else undone. Returns 0 when kept, 1 when
 * undone, -1 when neither worked (the transaction must not commit). */
static int savepoint_end(struct conn *c, enum stmt_id release, enum stmt_id undo, int ok,
			 struct selo_err *err)
{
	if (ok && run_simple(c, release, err, "releasing a savepoint") == 0)
		return 0;
	struct selo_err e2;
	if (run_simple(c, undo, &e2, "undoing a savepoint") != 0 ||
	    run_simple(c, release, &e2, "releasing a savepoint") != 0) {
		if (err)
			*err = e2;
		return -1;
	}
	return 1;
}

/* ---- Health of writes (store.h "Health of writes"). */

/* The class of a failure from SQLite's extended code and the errno behind
 * it; NONE for codes that are not the storage's fault (a constraint, a
 * blob too big, a bug's SQL error). */
static enum store_fault fault_of(int rc, int sys_errno)
{
	switch (rc & 0xff) {
	case SQLITE_FULL:
		return STORE_FAULT_DISK_FULL;
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
		if (sys_errno == ENOSPC || sys_errno == EDQUOT)
			return STORE_FAULT_DISK_FULL;
		return sys_errno == EROFS ? STORE_FAULT_READ_ONLY : STORE_FAULT_IO;
	case SQLITE_READONLY:
		return STORE_FAULT_READ_ONLY;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_PROTOCOL:
		return STORE_FAULT_LOCKED;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return STORE_FAULT_DAMAGED;
	case SQLITE_NOMEM:
		return STORE_FAULT_OTHER;
	default:
		return STORE_FAULT_NONE;
	}
}

/* Notes the writer connection's last failure as the group's fault, when
 * it is the storage's and the group has none yet. */
static void group_fault(struct store_sqlite *s)
{
	enum store_fault f = fault_of(s->w->last_rc, s->w->last_errno);
	if (f == STORE_FAULT_NONE || s->g_fault != STORE_FAULT_NONE)
		return;
	s->g_fault = f;
	s->g_rc = s->w->last_rc;
}

/* Called by SQLite inside a commit that wrote frames to the WAL: that
 * commit proves that writes reach the disk. */
static int writer_wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	(void)db;
	(void)name;
	(void)frames;
	struct store_sqlite *s = arg;
	s->g_wrote = 1;
	return SQLITE_OK;
}

/* What store_health reports: failing while the last write that proved
 * anything failed, and for STORE_HEALTHY_AFTER_MS after any failure (h:
 * the writer's record, whose `failing` is the last outcome). */
static int health_failing(const struct store_health *h, int64_t now)
{
	return h->failing || (h->last_failure_ms && now - h->last_failure_ms < STORE_HEALTHY_AFTER_MS);
}

/* Publishes what the last group (or probe) learned: a fault makes the
 * store failing; a commit that wrote and met no fault ends the run of
 * failures (store_health still says failing for a while: health_failing). */
static void health_note(struct store_sqlite *s, int probe)
{
	enum store_fault f = s->g_fault;
	if (f == STORE_FAULT_NONE && !s->g_wrote && !probe)
		return;
	s->tried_ms = clock_mono_ms();
	if (f == STORE_FAULT_NONE && !s->g_wrote)
		return; /* a probe that committed without writing: cannot happen, proves nothing */
	int64_t now = clock_now_ms();
	pthread_mutex_lock(&s->hmu);
	struct store_health *h = &s->health;
	if (f != STORE_FAULT_NONE) {
		if (!health_failing(h, now))
			h->failing_since_ms = now;
		h->fault = f;
		h->last_failure_ms = now;
		h->failures += !probe;
		h->failing = 1;
	} else {
		h->failing = 0;
	}
	pthread_mutex_unlock(&s->hmu);
	if (f != STORE_FAULT_NONE)
		diag_error_limited(&s->fail_log, "store: a write failed (%s: %s); /healthz answers 503 "
				   "until one succeeds", store_fault_name(f), sqlite3_errstr(s->g_rc));
	else
		diag_ended(&s->fail_log, "store: writes succeed again");
}

static void sqlite_health(struct store *base, struct store_health *out)
{
	struct store_sqlite *s = store_sqlite_of(base);
	int64_t now = clock_now_ms();
	pthread_mutex_lock(&s->hmu);
	*out = s->health;
	pthread_mutex_unlock(&s->hmu);
	out->failing = health_failing(out, now);
	if (!out->failing)
		out->failing_since_ms = 0;
}

static int probe_int_cb(void *arg, int ncol, char **vals, char **names)
{
	(void)names;
	if (ncol > 0 && vals[0])
		*(int *)arg = atoi(vals[0]);
	return 0;
}

/* The probe: rewrites the header's user_version with the value it has (one
 * page written and committed; no row changes, nothing a reader sees). */
static void write_probe(struct store_sqlite *s)
{
	sqlite3 *db = s->w->db;
	s->g_fault = STORE_FAULT_NONE;
	s->g_wrote = 0;
	int v = 0;
	char sql[48];
	int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "PRAGMA user_version", probe_int_cb, &v, NULL);
	if (rc == SQLITE_OK) {
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v);
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		s->w->last_rc = sqlite3_extended_errcode(db);
		s->w->last_errno = sqlite3_system_errno(db);
		group_fault(s);
		if (s->g_fault == STORE_FAULT_NONE) {
			s->g_fault = STORE_FAULT_OTHER;
			s->g_rc = s->w->last_rc;
		}
		if (!sqlite3_get_autocommit(db))
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	}
	health_note(s, 1);
}

static int writes_failing(struct store_sqlite *s)
{
	pthread_mutex_lock(&s->hmu);
	int f = s->health.failing;
	pthread_mutex_unlock(&s->hmu);
	return f;
}

/* ---- Running a group. */

/* A group that cannot commit failed for the storage's reason, whichever
 * it was (OTHER when SQLite's code names none). */
static void group_abort(struct store_sqlite *s, struct job **g, size_t n, const char *why)
{
	group_fault(s);
	if (s->g_fault == STORE_FAULT_NONE) {
		s->g_fault = STORE_FAULT_OTHER;
		s->g_rc = s->w->last_rc;
	}
	if (!sqlite3_get_autocommit(s->w->db))
		sqlite3_exec(s->w->db, "ROLLBACK", NULL, NULL, NULL);
	for (size_t i = 0; i < n; i++) {
		g[i]->rc = -1;
		err_set(g[i]->err, 500, "storage-failed", "%s (nothing of this write was stored)", why);
	}
}

/* One transaction for the whole group, one savepoint per job. A job that
 * fails for the storage's reason is the group's fault even when the others
 * commit (s->g_fault, for health_note). */
static void group_run(struct store_sqlite *s, struct job **g, size_t n)
{
	struct selo_err e;
	err_clear(&e);
	s->g_fault = STORE_FAULT_NONE;
	s->g_wrote = 0;
	if (run_simple(s->w, S_BEGIN, &e, "starting a transaction") != 0) {
		group_abort(s, g, n, e.msg);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct job *j = g[i];
		s->w->last_rc = SQLITE_OK;
		j->rc = run_simple(s->w, S_JOB_SAVE, j->err, "opening a savepoint");
		if (j->rc == 0)
			j->rc = j->run(s, j);
		if (j->rc != 0)
			group_fault(s);
		int end = savepoint_end(s->w, S_JOB_RELEASE, S_JOB_UNDO, j->rc == 0, &e);
		if (end == 1 && j->rc == 0) {
			j->rc = -1;
			if (j->err)
				*j->err = e;
			group_fault(s);
		}
		/* An I/O error can end the transaction under us; then nothing of
		 * the group is left to commit. */
		if (end < 0 || sqlite3_get_autocommit(s->w->db)) {
			snprintf(e.msg, sizeof(e.msg), "store: a write failed and the transaction was "
				 "rolled back: %s", sqlite3_errmsg(s->w->db));
			group_abort(s, g, n, e.msg);
			return;
		}
	}
	if (run_simple(s->w, S_COMMIT, &e, "committing") != 0)
		group_abort(s, g, n, e.msg);
}

/* ---- Keeping the WAL small under a steady load. */

/* SQLite starts the WAL again from its first frame only when a write
 * transaction begins with every frame copied back and no reader on an older
 * snapshot. Under a steady stream of commits the checkpointer never gets
 * there (the writer adds frames while it copies), so the WAL grew by tens of
 * MB a second (2.6 GB in `make bench`), and appending to a growing file made
 * every commit's fsync write the file's metadata too. So once the WAL is
 * past RESTART_FRAMES (store_wal_limit), the checkpointer asks the writer,
 * between two groups, to finish the job: a RESTART checkpoint on the
 * writer's connection copies the little the checkpointer has not (what came
 * during its last pass) and waits at most 10 ms for the readers still on the
 * WAL; the next transaction then writes over the same file from its start.
 * Measured in `make bench`: 7-19 ms per restart, about one a second, and a
 * WAL of 130-145 MiB instead of 2.6 GB. */
#define RESTART_FRAMES 16384   /* 64 MiB of 4 KiB pages */
#define RESTART_WAIT_TRIES 40  /* x 250 us: a slow reader makes us try later */

static int restart_busy(void *arg, int tries)
{
	(void)arg;
	if (tries >= RESTART_WAIT_TRIES)
		return 0;
	usleep(250);
	return 1;
}

static void wal_restart(struct store_sqlite *s)
{
	sqlite3_busy_handler(s->w->db, restart_busy, NULL);
	int log = 0, done = 0;
	int rc = sqlite3_wal_checkpoint_v2(s->w->db, NULL, SQLITE_CHECKPOINT_RESTART, &log, &done);
	sqlite3_busy_timeout(s->w->db, BUSY_TIMEOUT_MS);
	if (rc == SQLITE_OK)
		atomic_fetch_add(&s->restarts, 1);
	else if (rc != SQLITE_BUSY)
		diag_warn("store: restarting the WAL failed: %s", sqlite3_errmsg(s->w->db));
}

static void sqlite_wal_limit(struct store *base, int frames)
{
	struct store_sqlite *s = store_sqlite_of(base);
	atomic_store(&s->restart_frames, frames > 0 ? frames : RESTART_FRAMES);
}

static int64_t sqlite_wal_restarts(struct store *base)
{
	struct store_sqlite *s = store_sqlite_of(base);
	return atomic_load(&s->restarts);
}

/* How long the writer may wait before its next probe: -1 no probe (writes
 * are not failing), 0 now. A group that tried to write counts as a probe;
 * groups that write nothing (a claim with nothing due) do not, so the
 * probe also comes between them. */
static int64_t probe_wait_ms(struct store_sqlite *s)
{
	if (!writes_failing(s))
		return -1;
	int64_t left = s->tried_ms + STORE_PROBE_MS - clock_mono_ms();
	return left > 0 ? left : 0;
}

/* With qmu held: waits for a job at most ms. */
static void writer_timed_wait(struct store_sqlite *s, int64_t ms)
{
	struct timespec ts = clock_deadline(CLOCK_REALTIME, ms);
	pthread_cond_timedwait(&s->qcv, &s->qmu, &ts);
}

/* No lock is held while a job's submitter is woken, and a submitter holds
 * qmu only to append its job: the senders run at nice 19, and one woken
 * writer used to preempt a sender that still held qmu (it signalled inside
 * it), so the writer and every API thread then waited 2-14 ms for the sender
 * to get a CPU again (`perf trace`: the writer's futex waits on qmu). */
static void *writer_main(void *arg)
{
	struct store_sqlite *s = arg;
	struct job *g[GROUP_MAX];
	for (;;) {
		pthread_mutex_lock(&s->qmu);
		int64_t wait;
		while (!s->qhead && !s->stopping && (wait = probe_wait_ms(s)) != 0) {
			if (wait < 0)
				pthread_cond_wait(&s->qcv, &s->qmu);
			else
				writer_timed_wait(s, wait);
		}
		size_t n = 0;
		while (s->qhead && n < GROUP_MAX) {
			g[n++] = s->qhead;
			s->qhead = s->qhead->next;
		}
		if (!s->qhead)
			s->qtail = NULL;
		int stopping = s->stopping;
		pthread_mutex_unlock(&s->qmu);
		if (n == 0 && stopping)
			break; /* every queued job has run */
		if (n > 0) {
			group_run(s, g, n);
			health_note(s, 0); /* before the callers hear: a 500 shows in /healthz */
			for (size_t i = 0; i < n; i++)
				sem_post(&g[i]->done); /* the job may be gone after this */
		}
		if (probe_wait_ms(s) == 0)
			write_probe(s);
		if (atomic_exchange(&s->restart_wanted, 0))
			wal_restart(s);
	}
	return NULL;
}

/* Queues j and sleeps until the writer has committed (or failed) it. */
static int job_submit(struct store_sqlite *s, struct job *j)
{
	j->rc = -1;
	j->next = NULL;
	if (sem_init(&j->done, 0, 0) != 0)
		return err_set(j->err, 500, "storage-failed", "store: cannot create a semaphore");
	pthread_mutex_lock(&s->qmu);
	if (s->stopping) {
		pthread_mutex_unlock(&s->qmu);
		sem_destroy(&j->done);
		return err_set(j->err, 503, "store-closed", "store: the store is closing");
	}
	if (s->qtail)
		s->qtail->next = j;
	else
		s->qhead = j;
	s->qtail = j;
	pthread_mutex_unlock(&s->qmu);
	/* After the unlock: the writer either saw the job or is already waiting. */
	pthread_cond_signal(&s->qcv);
	while (sem_wait(&j->done) != 0)
		; /* EINTR only: the semaphore is valid */
	sem_destroy(&j->done);
	return j->rc;
}

static int job_do(struct store_sqlite *s, int (*run)(struct store_sqlite *, struct job *), void *arg,
		  struct selo_err *err, int64_t *ival)
{
	struct job j;
	memset(&j, 0, sizeof(j));
	j.run = run;
	j.arg = arg;
	j.err = err;
	int r = job_submit(s, &j);
	if (ival)
		*ival = j.ival;
	return r;
}

/* ---- Writer-side building blocks (run inside a job). */

/* Inserts with a constraint failure reported as the caller's (409): 0 ok,
 * 1 constraint, -1 storage failure. */
static int step_insert(struct conn *c, sqlite3_stmt *st, struct selo_err *err, const char *what,
		       const char *id)
{
	if (step_done(c, st, err, what) == 0)
		return 0;
	if ((c->last_rc & 0xff) != SQLITE_CONSTRAINT)
		return -1;
	err_set(err, 409, "conflict", "store: %s for notice %s: %s", what, id ? id : "-",
		sqlite3_errmsg(c->db));
	return 1;
}

static int row_exists(struct conn *c, enum stmt_id id, const char *key, struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, id, err);
	if (!st)
		return -1;
	if (bind_text(st, 1, key))
		return bind_failed(c, st, err, "looking a row up");
	int rc = sqlite3_step(st);
	int r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : db_err(err, c, "looking a row up");
	stmt_done(st);
	return r;
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

static int disc_memo_has(struct disc_memo *m, const char *id, const char *commitment)
{
	if (!m)
		return 0;
	if (!m->notice || strcmp(m->notice, id) != 0) {
		m->notice = id;
		m->n = m->next = 0;
		return 0;
	}
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->commitment[i], commitment))
			return 1;
	return 0;
}

static void disc_memo_add(struct disc_memo *m, const char *commitment)
{
	if (!m)
		return;
	snprintf(m->commitment[m->next], sizeof(m->commitment[0]), "%s", commitment);
	m->next = (m->next + 1) % DISC_MEMO;
	if (m->n < DISC_MEMO)
		m->n++;
}

static int disclosures_add(struct conn *c, const char *id, const struct disclosures *d,
			   struct disc_memo *m, struct selo_err *err)
{
	sqlite3_stmt *st = d && d->n ? stmt_get(c, S_DISC_ADD, err) : NULL;
	if (d && d->n && !st)
		return -1;
	for (size_t i = 0; d && i < d->n; i++) {
		if (disc_memo_has(m, id, d->v[i].commitment))
			continue;
		if (bind_text(st, 1, id) | bind_text(st, 2, d->v[i].commitment) |
		    bind_blob(st, 3, d->v[i].value, d->v[i].len))
			return bind_failed(c, st, err, "storing a disclosure");
		if (step_done(c, st, err, "storing a disclosure") != 0)
			return -1;
		disc_memo_add(m, d->v[i].commitment);
	}
	return 0;
}

/* Stores one encoded event (entry bytes in e) with its disclosures. 0 ok,
 * 1 constraint (the caller's), -1 storage failure. */
static int store_event_row_add(struct conn *c, const char *id, const char *type, int64_t t,
			 const struct buf *e, const struct disclosures *d, struct disc_memo *m,
			 struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_EVENT_ADD, err);
	if (!st)
		return -1;
	if (bind_text(st, 1, id) | bind_text(st, 2, type) | sqlite3_bind_int64(st, 3, t) |
	    bind_blob(st, 4, e->data, e->len))
		return bind_failed(c, st, err, "storing an event");
	int r = step_insert(c, st, err, "storing an event", id);
	return r == 0 ? disclosures_add(c, id, d, m, err) : r;
}

static int store_event_unencodable(struct selo_err *err, const char *id, const char *type)
{
	err_set(err, 422, "invalid-event",
		"store: the %s event of notice %s cannot be encoded (fields must be an "
		"object without the keys v, type, notice, time)",
		type, id);
	return 1;
}

/* Encodes and stores one event with its disclosures. 0 ok, 1 the fields
 * cannot be encoded (the caller's mistake), -1 storage failure. */
static int store_event_add(struct conn *c, const char *id, const char *type, int64_t t,
		     const json_t *fields, const struct disclosures *d, struct selo_err *err)
{
	struct buf e = BUF_INIT;
	int r = event_entry_encode(&e, type, id, t, fields) != 0
			? store_event_unencodable(err, id, type)
			: store_event_row_add(c, id, type, t, &e, d, NULL, err);
	buf_free(&e);
	return r;
}

static void store_notice_from_row(sqlite3_stmt *st, struct notice_rec *r)
{
	memset(r, 0, sizeof(*r));
	col_copy(st, 0, r->id, sizeof(r->id));
	r->apikey_id = sqlite3_column_int64(st, 1);
	col_copy(st, 2, r->status, sizeof(r->status));
	r->to = col_text(st, 3);
	r->template_name = col_text(st, 4);
	r->reference = col_text(st, 5);
	r->segment = col_text(st, 6);
	r->tags_json = col_text(st, 7);
	r->payload_json = col_text(st, 8);
	const void *salt = sqlite3_column_blob(st, 9);
	size_t saltlen = salt ? (size_t)sqlite3_column_bytes(st, 9) : 0;
	memcpy(r->salt, salt ? salt : "", saltlen < 32 ? saltlen : 32);
	r->attempts = sqlite3_column_int(st, 10);
	r->created_ms = sqlite3_column_int64(st, 11);
	r->updated_ms = sqlite3_column_int64(st, 12);
	r->next_attempt_ms = sqlite3_column_int64(st, 13);
	r->message_id = col_text(st, 14);
	col_copy(st, 15, r->sha256, sizeof(r->sha256));
	r->last_error = col_text(st, 16);
	r->send_at_ms = sqlite3_column_int64(st, 17);
	r->sequence_id = col_text(st, 18);
	r->step = sqlite3_column_int(st, 19);
}

/* How each column of NOTICE_COLS is stored: T text, t text or NULL, I
 * integer, S the 32-byte salt, H 64 hex digits or NULL, D a notice id.
 * SQLite keeps any value in any column, so a flipped bit in a row's header
 * turns a text into a blob, a number or NULL, or its bytes into invalid
 * UTF-8, and the row still reads: each of those is damage to report, never
 * a value to pass on (a JSON writer drops text that is not UTF-8 without a
 * word). */
static const struct {
	const char *name;
	char kind;
} NOTICE_SHAPE[] = {
	{"id", 'D'}, {"apikey_id", 'I'}, {"status", 'T'}, {"to_addr", 'T'}, {"template", 't'},
	{"reference", 't'}, {"segment", 't'}, {"tags_json", 't'}, {"payload_json", 'T'},
	{"salt", 'S'}, {"attempts", 'I'}, {"created_ms", 'I'}, {"updated_ms", 'I'},
	{"next_attempt_ms", 'I'}, {"message_id", 't'}, {"sha256", 'H'}, {"last_error", 't'},
	{"send_at_ms", 'I'}, {"sequence_id", 't'}, {"step", 'I'},
};

#define NOTICE_NCOLS ((int)(sizeof(NOTICE_SHAPE) / sizeof(NOTICE_SHAPE[0])))

static const char *const TYPE_NAMES[] = {"?", "an integer", "a real", "text", "a blob", "NULL"};

/* Why column i (of kind k) cannot be what the schema says, or NULL. */
static const char *column_wrong(sqlite3_stmt *st, int i, char k)
{
	int type = sqlite3_column_type(st, i);
	if (type == SQLITE_NULL)
		return k == 't' || k == 'H' ? NULL : "is NULL";
	if (k == 'I')
		return type == SQLITE_INTEGER ? NULL : "is not an integer";
	if (k == 'S') {
		int ok = type == SQLITE_BLOB && sqlite3_column_bytes(st, i) == 32;
		return ok ? NULL : "is not 32 bytes";
	}
	if (type != SQLITE_TEXT)
		return "is not text";
	const char *t = (const char *)sqlite3_column_text(st, i);
	size_t n = (size_t)sqlite3_column_bytes(st, i);
	if (!utf8_valid(t, n) || memchr(t, 0, n))
		return "is not valid UTF-8 text";
	if (k == 'D' && !id_text_valid(t))
		return "is not a notice id";
	if (k == 'H' && (n != 64 || strspn(t, "0123456789abcdef") != 64))
		return "is not a SHA-256 in hex";
	return NULL;
}

/* 0 when the row holds what the schema says; else 1 and why (which column,
 * how) in out. Must run before any sqlite3_column_* call converts a value. */
static int store_notice_row_damage(sqlite3_stmt *st, char *out, size_t n)
{
	for (int i = 0; i < NOTICE_NCOLS; i++) {
		int type = sqlite3_column_type(st, i);
		const char *why = column_wrong(st, i, NOTICE_SHAPE[i].kind);
		if (why) {
			snprintf(out, n, "column %s %s (stored as %s)", NOTICE_SHAPE[i].name, why,
				 TYPE_NAMES[type >= 1 && type <= 5 ? type : 0]);
			return 1;
		}
	}
	return 0;
}

/* A damaged row is an error that names the notice: the id asked for, or the
 * row's own id when that reads. */
static int store_notice_damaged(struct selo_err *err, sqlite3_stmt *st, const char *asked,
			  const char *why)
{
	const unsigned char *t = sqlite3_column_text(st, 0);
	const char *id = asked ? asked : t && id_text_valid((const char *)t) ? (const char *)t : "?";
	return err_set(err, 500, "store-damaged",
		       "store: the row of notice %s is damaged: %s; run `selo store check --data "
		       "DIR` and restore the store from a backup (docs/operations.md, \"A damaged "
		       "store\")",
		       id, why);
}

/* Reads a notice row, refusing a damaged one. 0 or -1. */
static int store_notice_read(sqlite3_stmt *st, const char *asked, struct notice_rec *r,
		       struct selo_err *err)
{
	char why[160];
	if (store_notice_row_damage(st, why, sizeof(why)))
		return store_notice_damaged(err, st, asked, why);
	store_notice_from_row(st, r);
	return 0;
}

/* ---- API keys. */

struct apikey_args {
	const char *name;
	const uint8_t *hash;
	const char *prefix;
	int64_t id;
};

static int run_apikey_add(struct store_sqlite *s, struct job *j)
{
	struct apikey_args *a = j->arg;
	struct conn *c = s->w;
	sqlite3_stmt *st = stmt_get(c, S_APIKEY_ADD, j->err);
	if (!st)
		return -1;
	if (bind_text(st, 1, a->name) | bind_blob(st, 2, a->hash, 32) | bind_text(st, 3, a->prefix) |
	    sqlite3_bind_int64(st, 4, clock_now_ms()))
		return bind_failed(c, st, j->err, "adding an API key");
	int r = step_insert(c, st, j->err, "adding an API key", NULL);
	if (r > 0)
		err_set(j->err, 409, "apikey-exists", "store: an API key with this hash already exists");
	if (r != 0)
		return -1;
	j->ival = sqlite3_last_insert_rowid(c->db);
	return 0;
}

static int sqlite_apikey_add(struct store *base, const char *name, const uint8_t hash[32],
		     const char *prefix, int64_t *id_out, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	if (!name || !prefix || strlen(name) >= sizeof(((struct apikey *)0)->name) ||
	    strlen(prefix) >= sizeof(((struct apikey *)0)->prefix))
		return err_set(err, 400, "invalid-request",
			       "store: an API key needs a name under 128 bytes and a prefix under "
			       "16 bytes");
	struct apikey_args a = {name, hash, prefix, 0};
	int64_t id = 0;
	if (job_do(s, run_apikey_add, &a, err, &id) != 0)
		return -1;
	if (id_out)
		*id_out = id;
	return 0;
}

static int run_apikey_revoke(struct store_sqlite *s, struct job *j)
{
	struct conn *c = s->w;
	sqlite3_stmt *st = stmt_get(c, S_APIKEY_REVOKE, j->err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, *(int64_t *)j->arg) | sqlite3_bind_int64(st, 2, clock_now_ms()))
		return bind_failed(c, st, j->err, "revoking an API key");
	if (step_done(c, st, j->err, "revoking an API key") != 0)
		return -1;
	j->ival = sqlite3_changes(c->db);
	return 0;
}

static int sqlite_apikey_revoke(struct store *base, int64_t id, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	int64_t changed = 0;
	if (job_do(s, run_apikey_revoke, &id, err, &changed) != 0)
		return -1;
	return changed > 0;
}

/* ---- Accepting notices. */

/* Sets status to the notice's current status. */
/* ---- Suppressions in the writer: recorded with the failure that caused
 * them, checked in the transaction that would accept the notice. */

static void suppression_from_row(sqlite3_stmt *st, struct suppression_rec *r)
{
	memset(r, 0, sizeof(*r));
	r->id = sqlite3_column_int64(st, 0);
	r->address = col_text(st, 1);
	col_copy(st, 2, r->enhanced, sizeof(r->enhanced));
	r->reason = col_text(st, 3);
	col_copy(st, 4, r->notice_id, sizeof(r->notice_id));
	r->created_ms = sqlite3_column_int64(st, 5);
}

/* The 422 for a notice to a suppressed address: when, why, which notice. */
static void suppressed_err(struct selo_err *e, const struct suppression_rec *r)
{
	char when[32];
	clock_rfc3339(r->created_ms, when);
	err_set(e, 422, "suppressed",
		"%.254s is suppressed for this API key since %s: notice %s bounced hard (%s: %.200s); "
		"nothing was queued. Use another channel, or DELETE /v1/suppressions/{address} once "
		"the address is fixed",
		r->address, when, r->notice_id, r->enhanced, r->reason ? r->reason : "");
	err_field(e, "to", "is suppressed since %s (%s, notice %s)", when, r->enhanced, r->notice_id);
}

/* 1: nn->to is suppressed for its key (res says why), 0: not, -1: storage. */
static int suppression_check(struct conn *c, const struct notice_new *nn,
			     struct accept_result *res, struct selo_err *err)
{
	char key[SUPPRESS_ADDR_MAX];
	if (!nn->to || suppress_address_key(nn->to, key, sizeof(key)) != 0)
		return 0; /* too long to be suppressed: nothing could have bounced */
	sqlite3_stmt *st = stmt_get(c, S_SUP_FIND, err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, nn->apikey_id) | bind_text(st, 2, key))
		return bind_failed(c, st, err, "looking up a suppression");
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		int r = rc == SQLITE_DONE ? 0 : db_err(err, c, "looking up a suppression");
		stmt_done(st);
		return r;
	}
	struct suppression_rec rec;
	suppression_from_row(st, &rec);
	stmt_done(st);
	res->failed = 1;
	suppressed_err(&res->err, &rec);
	free(rec.address);
	free(rec.reason);
	return 1;
}

static int suppression_add(struct conn *c, int64_t key_id, const char *to, const char *id,
			   const char *enhanced, const char *reason, int64_t t, struct selo_err *err)
{
	char shown[SUPPRESS_ADDR_MAX], key[SUPPRESS_ADDR_MAX];
	if (suppress_address_shown(to, shown, sizeof(shown)) != 0 ||
	    suppress_address_key(to, key, sizeof(key)) != 0)
		return 0; /* cannot be accepted again either (suppression_check) */
	sqlite3_stmt *st = stmt_get(c, S_SUP_ADD, err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, key_id) | bind_text(st, 2, shown) | bind_text(st, 3, key) |
	    bind_text(st, 4, enhanced) | bind_text(st, 5, reason ? reason : enhanced) |
	    bind_text(st, 6, id) | sqlite3_bind_int64(st, 7, t))
		return bind_failed(c, st, err, "recording a suppression");
	return step_done(c, st, err, "recording a suppression");
}

/* Defined with the sequences, below. */
static int store_sequence_stop_after_bounce(struct conn *c, const char *id, int64_t t,
				      struct selo_err *err);

/* After notice id's delivery_failed event: a hard bounce (suppress.h)
 * suppresses its address for its key, and stops the sequence the notice is
 * a step of, in the same transaction. */
static int after_hard_bounce(struct conn *c, const char *id, const json_t *fields,
			     const char *reason, int64_t t, struct selo_err *err)
{
	const char *enhanced;
	if (!suppress_fields_hard(fields, &enhanced))
		return 0;
	sqlite3_stmt *st = stmt_get(c, S_SUP_NOTICE, err);
	if (!st)
		return -1;
	if (bind_text(st, 1, id))
		return bind_failed(c, st, err, "reading a bounced notice");
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		int r = rc == SQLITE_DONE ? 0 : db_err(err, c, "reading a bounced notice");
		stmt_done(st);
		return r;
	}
	int64_t key_id = sqlite3_column_int64(st, 0);
	char *to = col_text(st, 1);
	stmt_done(st);
	int r = to ? suppression_add(c, key_id, to, id, enhanced, reason, t, err) : 0;
	free(to);
	return r == 0 ? store_sequence_stop_after_bounce(c, id, t, err) : r;
}

static int status_read(struct conn *c, const char *id, char status[16], struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_STATUS_GET, err);
	if (!st)
		return -1;
	if (bind_text(st, 1, id))
		return bind_failed(c, st, err, "reading a status");
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		col_copy(st, 0, status, 16);
	int r = rc == SQLITE_ROW ? 0 : db_err(err, c, "reading the status of a replayed notice");
	stmt_done(st);
	return r;
}

/* 1: the key was used before (res says replay or refusal), 0: a new key,
 * -1: storage failure. Runs in the writer, so two requests with the same
 * key (in one batch, or concurrent) are seen one after the other. */
static int idempotency_check(struct conn *c, const struct notice_new *nn,
			     struct accept_result *res, struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_IDEM_GET, err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, nn->apikey_id) | bind_text(st, 2, nn->idempotency_key))
		return bind_failed(c, st, err, "looking up an idempotency key");
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		int r = rc == SQLITE_DONE ? 0 : db_err(err, c, "looking up an idempotency key");
		stmt_done(st);
		return r;
	}
	const void *h = sqlite3_column_blob(st, 0);
	int same = h && sqlite3_column_bytes(st, 0) == 32 && !memcmp(h, nn->request_sha256, 32);
	char first[27];
	col_copy(st, 1, first, sizeof(first));
	stmt_done(st);
	if (!same) {
		res->failed = 1;
		err_set(&res->err, 422, "idempotency-key-reused",
			"Idempotency-Key \"%.128s\" was already used with a different request; "
			"send a new key for a new notice",
			nn->idempotency_key);
		return 1;
	}
	res->replay = 1;
	snprintf(res->id, sizeof(res->id), "%s", first);
	return status_read(c, first, res->status, err) == 0 ? 1 : -1;
}

static int store_notice_row_add(struct conn *c, const struct notice_new *nn, int64_t t,
			  struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_NOTICE_ADD, err);
	if (!st)
		return -1;
	if (bind_text(st, 1, nn->id) | sqlite3_bind_int64(st, 2, nn->apikey_id) |
	    bind_text(st, 3, nn->to) | bind_text(st, 4, nn->template_name) |
	    bind_text(st, 5, nn->reference) | bind_text(st, 6, nn->segment) |
	    bind_text(st, 7, nn->tags_json) | bind_text(st, 8, nn->payload_json) |
	    bind_blob(st, 9, nn->salt, 32) | sqlite3_bind_int64(st, 10, t) |
	    bind_text(st, 11, nn->due_ms > t ? "scheduled" : "queued") |
	    sqlite3_bind_int64(st, 12, nn->due_ms > t ? nn->due_ms : t) |
	    bind_text(st, 13, nn->sequence_id) | sqlite3_bind_int64(st, 14, nn->step))
		return bind_failed(c, st, err, "storing a notice");
	return step_insert(c, st, err, "storing a notice", nn->id);
}

static int attachments_add(struct conn *c, const struct notice_new *nn, struct selo_err *err)
{
	sqlite3_stmt *st = nn->natt ? stmt_get(c, S_ATT_ADD, err) : NULL;
	if (nn->natt && !st)
		return -1;
	for (size_t i = 0; i < nn->natt; i++) {
		const struct attachment_in *a = &nn->att[i];
		if (bind_text(st, 1, nn->id) | sqlite3_bind_int64(st, 2, (sqlite3_int64)i) |
		    bind_text(st, 3, a->filename) | bind_text(st, 4, a->content_type) |
		    bind_blob(st, 5, a->data, a->len))
			return bind_failed(c, st, err, "storing an attachment");
		int r = step_insert(c, st, err, "storing an attachment", nn->id);
		if (r != 0)
			return r;
	}
	return 0;
}

static int idempotency_add(struct conn *c, const struct notice_new *nn, int64_t t,
			   struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_IDEM_ADD, err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, nn->apikey_id) | bind_text(st, 2, nn->idempotency_key) |
	    bind_blob(st, 3, nn->request_sha256, 32) | bind_text(st, 4, nn->id) |
	    sqlite3_bind_int64(st, 5, t))
		return bind_failed(c, st, err, "storing an idempotency key");
	return step_insert(c, st, err, "storing an idempotency key", nn->id);
}

/* Every row of one notice. 0 ok, 1 the caller's mistake, -1 storage. */
static int store_notice_insert(struct store_sqlite *s, const struct notice_new *nn, char status[16],
			 struct selo_err *err)
{
	struct conn *c = s->w;
	int64_t t = writer_time(s); /* created_ms is the submission_accepted time */
	snprintf(status, 16, "%s", nn->due_ms > t ? "scheduled" : "queued");
	int r = store_notice_row_add(c, nn, t, err);
	if (r == 0)
		r = attachments_add(c, nn, err);
	if (r == 0 && nn->idempotency_key)
		r = idempotency_add(c, nn, t, err);
	if (r == 0)
		r = store_event_add(c, nn->id, EV_SUBMISSION_ACCEPTED, t, nn->event_fields, nn->disc, err);
	return r;
}

/* One notice of a batch, in its own savepoint so that a refused notice
 * leaves the others. Returns -1 only for a storage failure (job fails). */
static int accept_one(struct store_sqlite *s, const struct notice_new *nn, struct accept_result *res,
		      struct selo_err *err)
{
	memset(res, 0, sizeof(*res));
	snprintf(res->id, sizeof(res->id), "%s", nn->id);
	if (nn->idempotency_key) {
		int seen = idempotency_check(s->w, nn, res, err);
		if (seen != 0)
			return seen < 0 ? -1 : 0;
	}
	if (!id_text_valid(nn->id) || !nn->to || !nn->payload_json) {
		res->failed = 1;
		err_set(&res->err, 400, "invalid-notice",
			"store: a notice needs a valid id, a recipient and a payload");
		return 0;
	}
	int sup = suppression_check(s->w, nn, res, err);
	if (sup != 0)
		return sup < 0 ? -1 : 0;
	if (run_simple(s->w, S_ITEM_SAVE, err, "opening a savepoint") != 0)
		return -1;
	char status[16];
	int r = store_notice_insert(s, nn, status, &res->err);
	int end = savepoint_end(s->w, S_ITEM_RELEASE, S_ITEM_UNDO, r == 0, err);
	if (end < 0)
		return -1;
	if (r == 0 && end == 0) {
		snprintf(res->status, sizeof(res->status), "%s", status);
		return 0;
	}
	if (r > 0) {
		res->failed = 1;
		return 0;
	}
	if (err && r < 0)
		*err = res->err;
	return -1;
}

struct accept_args {
	const struct notice_new *ns;
	size_t n;
	struct accept_result *res;
};

/* key_active: the key is checked in the accept's own transaction, so `selo
 * apikey revoke` (another process) takes effect at once even for a request
 * that authenticated just before it, or from the API's cache (auth.h). */
static int key_active(struct conn *c, int64_t id, struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_APIKEY_ACTIVE, err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, id))
		return bind_failed(c, st, err, "checking an API key");
	int rc = sqlite3_step(st);
	int r = rc == SQLITE_ROW ? 0
		: rc == SQLITE_DONE ? err_set(err, 401, "unauthorized", "invalid or revoked API key")
				    : db_err(err, c, "checking an API key");
	stmt_done(st);
	return r;
}

static int run_accept(struct store_sqlite *s, struct job *j)
{
	struct accept_args *a = j->arg;
	int64_t checked = 0;
	int have = 0; /* checked holds a key found active */
	for (size_t i = 0; i < a->n; i++) {
		int64_t key = a->ns[i].apikey_id;
		if (a->ns[i].key_active && !(have && key == checked)) {
			if (key_active(s->w, key, j->err) != 0)
				return -1;
			checked = key;
			have = 1;
		}
		if (accept_one(s, &a->ns[i], &a->res[i], j->err) != 0)
			return -1;
	}
	return 0;
}

static int sqlite_notices_accept(struct store *base, const struct notice_new *ns, size_t n,
			 struct accept_result *results, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	if (!n)
		return 0;
	struct accept_args a = {ns, n, results};
	return job_do(s, run_accept, &a, err, NULL);
}

/* ---- Claiming due notices. */

struct claim_args {
	int64_t now;
	size_t max;
	struct notice_rec *out;
	size_t n;
};

static int due_ids(struct conn *c, int64_t now, size_t max, char (*ids)[27], size_t *n,
		   struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_DUE, err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, now) | sqlite3_bind_int64(st, 2, (sqlite3_int64)max))
		return bind_failed(c, st, err, "finding due notices");
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < max)
		col_copy(st, 0, ids[(*n)++], 27);
	int r = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_err(err, c, "finding due notices");
	stmt_done(st);
	return r;
}

/* 1 claimed (*out filled), 0 the row vanished, -1 storage failure. */
static int claim_one(struct conn *c, const char *id, int64_t t, struct notice_rec *out,
		     struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_CLAIM, err);
	if (!st)
		return -1;
	if (bind_text(st, 1, id) | sqlite3_bind_int64(st, 2, t))
		return bind_failed(c, st, err, "claiming a notice");
	int rc = sqlite3_step(st);
	int got = rc == SQLITE_ROW;
	if (got) {
		store_notice_from_row(st, out);
		rc = sqlite3_step(st);
	}
	int r = rc == SQLITE_DONE ? got : db_err(err, c, "claiming a notice");
	if (r < 0 && got)
		notice_rec_free(out);
	stmt_done(st);
	return r;
}

static int run_claim(struct store_sqlite *s, struct job *j)
{
	struct claim_args *a = j->arg;
	char(*ids)[27] = xcalloc(a->max, sizeof(*ids));
	size_t n = 0;
	int r = due_ids(s->w, a->now, a->max, ids, &n, j->err);
	a->out = n ? xcalloc(n, sizeof(*a->out)) : NULL;
	int64_t t = clock_now_ms();
	for (size_t i = 0; i < n && r == 0; i++) {
		int got = claim_one(s->w, ids[i], t, &a->out[a->n], j->err);
		if (got < 0)
			r = -1;
		else
			a->n += (size_t)got;
	}
	free(ids);
	if (r != 0) {
		notice_recs_free(a->out, a->n);
		a->out = NULL;
		a->n = 0;
	}
	return r;
}

static int sqlite_claim_due(struct store *base, int64_t now_ms, size_t max, struct notice_rec **out,
		    size_t *n, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	*out = NULL;
	*n = 0;
	if (!max)
		return 0;
	struct claim_args a = {now_ms, max > CLAIM_MAX ? CLAIM_MAX : max, NULL, 0};
	if (job_do(s, run_claim, &a, err, NULL) != 0) {
		/* The job may have succeeded and the commit failed: nothing is claimed. */
		notice_recs_free(a.out, a.n);
		return -1;
	}
	*out = a.out;
	*n = a.n;
	return 0;
}

/* ---- Sealing. */

static int tokens_add(struct conn *c, const struct seal_rec *r, struct selo_err *err)
{
	sqlite3_stmt *st = r->ntokens ? stmt_get(c, S_TOKEN_ADD, err) : NULL;
	if (r->ntokens && !st)
		return -1;
	for (size_t i = 0; i < r->ntokens; i++) {
		const struct token_rec *k = &r->tokens[i];
		if (bind_text(st, 1, k->token) | bind_text(st, 2, r->id) | bind_text(st, 3, k->kind) |
		    sqlite3_bind_int(st, 4, k->link) | bind_text(st, 5, k->url))
			return bind_failed(c, st, err, "storing a token");
		if (step_done(c, st, err, "storing a token") != 0)
			return -1;
	}
	return 0;
}

static int message_add(struct conn *c, const struct seal_rec *r, int64_t t, struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_MSG_ADD, err);
	if (!st)
		return -1;
	if (bind_text(st, 1, r->id) | bind_blob(st, 2, r->eml, r->len) | bind_text(st, 3, r->sha256) |
	    sqlite3_bind_int64(st, 4, t))
		return bind_failed(c, st, err, "storing a message");
	return step_done(c, st, err, "storing a message");
}

static int seal_mark(struct conn *c, const struct seal_rec *r, int64_t t, struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_SEAL, err);
	if (!st)
		return -1;
	if (bind_text(st, 1, r->id) | bind_text(st, 2, r->message_id) | bind_text(st, 3, r->sha256) |
	    sqlite3_bind_int64(st, 4, t))
		return bind_failed(c, st, err, "marking a notice sealed");
	return step_done(c, st, err, "marking a notice sealed");
}

/* A notice sealed before keeps its first message, tokens and event: those
 * bytes may already have gone out, and a resend must send them again. */
static int seal_one(struct store_sqlite *s, const struct seal_rec *r, struct selo_err *err)
{
	struct conn *c = s->w;
	if (!r->id || !r->eml)
		return err_set(err, 400, "invalid-request", "store: a sealed message needs its notice "
			       "id and bytes");
	int have = row_exists(c, S_MSG_EXISTS, r->id, err);
	if (have != 0)
		return have < 0 ? -1 : 0;
	int known = row_exists(c, S_NOTICE_EXISTS, r->id, err);
	if (known <= 0)
		return known < 0 ? -1 : err_set(err, 404, "not-found", "store: notice %s not found", r->id);
	int64_t t = writer_time(s);
	if (message_add(c, r, t, err) || tokens_add(c, r, err) || seal_mark(c, r, t, err))
		return -1;
	return store_event_add(c, r->id, EV_CONTENT_SEALED, t, r->event_fields, r->disc, err) ? -1 : 0;
}

struct seal_args {
	const struct seal_rec *r;
	size_t n;
};

static int run_sealed(struct store_sqlite *s, struct job *j)
{
	struct seal_args *a = j->arg;
	for (size_t i = 0; i < a->n; i++)
		if (seal_one(s, &a->r[i], j->err) != 0)
			return -1;
	return 0;
}

static int sqlite_notices_sealed(struct store *base, const struct seal_rec *r, size_t n,
			 struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	if (!n)
		return 0;
	struct seal_args a = {r, n};
	return job_do(s, run_sealed, &a, err, NULL);
}

/* ---- Delivery results. */

static int state_final_or_retry(const char *st)
{
	return st && (!strcmp(st, "relayed") || !strcmp(st, "delivered") ||
		      !strcmp(st, "deferred") || !strcmp(st, "failed"));
}

static int result_one(struct store_sqlite *s, const struct result_rec *r, struct selo_err *err)
{
	struct conn *c = s->w;
	if (!r->id || !r->event_type || !state_final_or_retry(r->state))
		return err_set(err, 400, "invalid-request",
			       "store: a delivery result for notice %s needs an event type and a "
			       "state of relayed, delivered, deferred or failed",
			       r->id ? r->id : "(none)");
	sqlite3_stmt *st = stmt_get(c, S_RESULT, err);
	if (!st)
		return -1;
	int64_t t = writer_time(s);
	if (bind_text(st, 1, r->id) | bind_text(st, 2, r->state) |
	    sqlite3_bind_int64(st, 3, r->next_attempt_ms) | bind_text(st, 4, r->last_error) |
	    sqlite3_bind_int64(st, 5, t))
		return bind_failed(c, st, err, "recording a delivery result");
	if (step_done(c, st, err, "recording a delivery result") != 0)
		return -1;
	if (sqlite3_changes(c->db) == 0) {
		int known = row_exists(c, S_NOTICE_EXISTS, r->id, err);
		if (known <= 0)
			return known < 0 ? -1 : err_set(err, 404, "not-found", "store: notice %s not found",
							r->id);
		/* Only a second process sending from the same database (which
		 * `selo serve` refuses) could get here: one outcome event per notice. */
		diag_warn("store: notice %s already has its outcome; a second %s was not recorded",
			  r->id, r->event_type);
		return 0;
	}
	if (store_event_add(c, r->id, r->event_type, t, r->event_fields, r->disc, err) != 0)
		return -1;
	return after_hard_bounce(c, r->id, r->event_fields, r->last_error, t, err);
}

struct result_args {
	const struct result_rec *r;
	size_t n;
};

static int run_results(struct store_sqlite *s, struct job *j)
{
	struct result_args *a = j->arg;
	for (size_t i = 0; i < a->n; i++)
		if (result_one(s, &a->r[i], j->err) != 0)
			return -1;
	return 0;
}

static int sqlite_delivery_results(struct store *base, const struct result_rec *r, size_t n,
			   struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	if (!n)
		return 0;
	struct result_args a = {r, n};
	return job_do(s, run_results, &a, err, NULL);
}

static int run_recover(struct store_sqlite *s, struct job *j)
{
	struct conn *c = s->w;
	sqlite3_stmt *st = stmt_get(c, S_RECOVER, j->err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, clock_now_ms()))
		return bind_failed(c, st, j->err, "recovering notices in flight");
	if (step_done(c, st, j->err, "recovering notices in flight") != 0)
		return -1;
	j->ival = sqlite3_changes(c->db);
	return 0;
}

static int sqlite_recover_inflight(struct store *base, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	int64_t n = 0;
	if (job_do(s, run_recover, NULL, err, &n) != 0)
		return -1;
	return (int)n;
}

/* ---- Open and close. */

/* Readers close first: the last connection to close checkpoints and removes
 * the WAL, and only the writer can. */
static void store_free(struct store_sqlite *s)
{
	while (s->rfree) {
		struct conn *c = s->rfree;
		s->rfree = c->next;
		conn_close(c);
	}
	conn_close(s->ck);
	conn_close(s->w);
	pthread_cond_destroy(&s->ckcv);
	pthread_mutex_destroy(&s->qmu);
	pthread_cond_destroy(&s->qcv);
	pthread_mutex_destroy(&s->rmu);
	pthread_cond_destroy(&s->rcv);
	pthread_mutex_destroy(&s->hmu);
	free(s->path);
	free(s);
}

/* Every CKPT_MS, a PASSIVE checkpoint on its own connection: it copies
 * what it can without waiting for or blocking the writer or readers, so the
 * WAL stays small and no commit ever pays for a checkpoint. */
#define CKPT_MS 500

/* A failing checkpoint leaves the WAL growing: say so, at most once a
 * minute (a reader holding a snapshot only delays it, and is not this). */
static void ckpt_failed(struct store_sqlite *s)
{
	int64_t now = clock_mono_ms();
	if (s->ck_warned_ms && now - s->ck_warned_ms < 60000)
		return;
	s->ck_warned_ms = now;
	diag_warn("store: checkpointing the WAL failed: %s", sqlite3_errmsg(s->ck->db));
}

static void *checkpointer_main(void *arg)
{
	struct store_sqlite *s = arg;
	for (;;) {
		pthread_mutex_lock(&s->qmu);
		struct timespec ts = clock_deadline(CLOCK_REALTIME, CKPT_MS);
		if (!s->stopping)
			pthread_cond_timedwait(&s->ckcv, &s->qmu, &ts);
		int stop = s->stopping;
		pthread_mutex_unlock(&s->qmu);
		if (stop)
			return NULL;
		int log = 0, done = 0;
		if (sqlite3_wal_checkpoint_v2(s->ck->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log,
					      &done) != SQLITE_OK || log < 0)
			ckpt_failed(s);
		else if (log >= atomic_load(&s->restart_frames))
			atomic_store(&s->restart_wanted, 1);
	}
}

/* The checkpointer's connection. A connection that has not read the
 * database yet does not know it is in WAL mode, and a checkpoint on it is
 * a silent no-op (SQLite reports the log as -1 frames): the WAL then grew
 * without bound. Asking for the journal mode makes it open the WAL. */
static struct conn *checkpointer_conn(const char *path, struct selo_err *err)
{
	struct conn *c = conn_open(path, SQLITE_OPEN_READWRITE, err);
	if (!c)
		return NULL;
	char mode[16] = "";
	if (sqlite3_exec(c->db, "PRAGMA journal_mode", text_cb, mode, NULL) != SQLITE_OK ||
	    strcmp(mode, "wal") != 0) {
		err_set(err, 500, "storage-failed", "store: the checkpointer cannot open the WAL of %s",
			path);
		conn_close(c);
		return NULL;
	}
	return c;
}

int store_sqlite_open(const char *path, struct store **out, struct selo_err *err)
{
	*out = NULL;
	if (!sqlite3_threadsafe())
		return err_set(err, 500, "storage-failed",
			       "store: this SQLite library was built without thread support");
	if (file_precreate(path, err) != 0)
		return -1;
	struct store_sqlite *s = xcalloc(1, sizeof(*s));
	s->base.ops = &store_sqlite_ops;
	s->path = xmemdup(path, strlen(path));
	pthread_mutex_init(&s->qmu, NULL);
	pthread_cond_init(&s->qcv, NULL);
	pthread_mutex_init(&s->rmu, NULL);
	pthread_cond_init(&s->rcv, NULL);
	pthread_mutex_init(&s->hmu, NULL);
	s->w = conn_open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, err);
	pthread_cond_init(&s->ckcv, NULL);
	if (!s->w || writer_setup(s->w, err) || migrate(s, err) || last_event_time_load(s, err))
		goto fail;
	s->ck = checkpointer_conn(path, err);
	if (!s->ck)
		goto fail;
	atomic_init(&s->restart_wanted, 0);
	atomic_init(&s->restart_frames, RESTART_FRAMES);
	atomic_init(&s->restarts, 0);
	/* Tells a commit that wrote from one that had nothing to write (the
	 * health of writes); wal_autocheckpoint=0 left no hook to replace. */
	sqlite3_wal_hook(s->w->db, writer_wal_hook, s);
	int rc = pthread_create(&s->writer, NULL, writer_main, s);
	if (rc != 0) {
		err_set(err, 500, "storage-failed", "store: cannot start the writer thread: %s",
			strerror(rc));
		goto fail;
	}
	s->writer_started = 1;
	rc = pthread_create(&s->ckpt, NULL, checkpointer_main, s);
	if (rc != 0) {
		err_set(err, 500, "storage-failed", "store: cannot start the checkpointer thread: %s",
			strerror(rc));
		sqlite_close(&s->base); /* stops the writer */
		return -1;
	}
	s->ckpt_started = 1;
	*out = &s->base;
	return 0;
fail:
	store_free(s);
	return -1;
}

static void sqlite_close(struct store *base)
{
	struct store_sqlite *s = store_sqlite_of(base);
	if (!s)
		return;
	if (s->writer_started) {
		pthread_mutex_lock(&s->qmu);
		s->stopping = 1;
		pthread_cond_signal(&s->qcv);
		pthread_cond_broadcast(&s->ckcv);
		pthread_mutex_unlock(&s->qmu);
		pthread_join(s->writer, NULL);
		if (s->ckpt_started)
			pthread_join(s->ckpt, NULL);
	}
	/* Lets SQLite refresh its planner statistics where they have drifted. */
	sqlite3_exec(s->w->db, "PRAGMA optimize", NULL, NULL, NULL);
	store_free(s);
}

static int sqlite_schema_version(struct store *base)
{
	struct store_sqlite *s = store_sqlite_of(base);
	return s->version;
}

/* ---- Readers. */

static struct conn *reader_take(struct store_sqlite *s, struct selo_err *err)
{
	pthread_mutex_lock(&s->rmu);
	while (!s->rfree && s->nreaders >= READERS_MAX)
		pthread_cond_wait(&s->rcv, &s->rmu);
	struct conn *c = s->rfree;
	if (c) {
		s->rfree = c->next;
		pthread_mutex_unlock(&s->rmu);
		return c;
	}
	s->nreaders++; /* reserve the slot, open outside the lock */
	pthread_mutex_unlock(&s->rmu);
	c = conn_open(s->path, SQLITE_OPEN_READONLY, err);
	if (c)
		return c;
	pthread_mutex_lock(&s->rmu);
	s->nreaders--;
	pthread_cond_signal(&s->rcv);
	pthread_mutex_unlock(&s->rmu);
	return NULL;
}

static void reader_give(struct store_sqlite *s, struct conn *c)
{
	pthread_mutex_lock(&s->rmu);
	c->next = s->rfree;
	s->rfree = c;
	pthread_mutex_unlock(&s->rmu);
	pthread_cond_signal(&s->rcv); /* outside the lock, as job_submit */
}

static void apikey_from_row(sqlite3_stmt *st, struct apikey *k)
{
	memset(k, 0, sizeof(*k));
	k->id = sqlite3_column_int64(st, 0);
	col_copy(st, 1, k->name, sizeof(k->name));
	col_copy(st, 2, k->prefix, sizeof(k->prefix));
	k->created_ms = sqlite3_column_int64(st, 3);
	k->revoked_ms = sqlite3_column_int64(st, 4);
}

static int apikey_find_on(struct conn *c, const uint8_t hash[32], struct apikey *out,
			  struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_APIKEY_FIND, err);
	if (!st)
		return -1;
	if (bind_blob(st, 1, hash, 32))
		return bind_failed(c, st, err, "finding an API key");
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		apikey_from_row(st, out);
	int r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : db_err(err, c, "finding an API key");
	stmt_done(st);
	return r;
}

/* The hash is looked up through an index; since it is the SHA-256 of a
 * high-entropy key, timing reveals nothing about any stored key. */
static int sqlite_apikey_find(struct store *base, const uint8_t hash[32], struct apikey *out,
		      struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct conn *c = reader_take(s, err);
	if (!c)
		return -1;
	int r = apikey_find_on(c, hash, out, err);
	reader_give(s, c);
	return r;
}

static int apikey_list_on(struct conn *c, struct apikey **out, size_t *n, struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_APIKEY_LIST, err);
	if (!st)
		return -1;
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*out = grow(*out, *n, &cap, sizeof(**out));
		apikey_from_row(st, &(*out)[(*n)++]);
	}
	int r = rc == SQLITE_DONE ? 0 : db_err(err, c, "listing API keys");
	stmt_done(st);
	return r;
}

static int sqlite_apikey_list(struct store *base, struct apikey **out, size_t *n, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	*out = NULL;
	*n = 0;
	struct conn *c = reader_take(s, err);
	if (!c)
		return -1;
	int r = apikey_list_on(c, out, n, err);
	reader_give(s, c);
	if (r != 0) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return r;
}

static int store_notice_get_on(struct conn *c, const char *id, int64_t apikey_id,
			 struct notice_rec *out, struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_NOTICE_GET, err);
	if (!st)
		return -1;
	if (bind_text(st, 1, id) | sqlite3_bind_int64(st, 2, apikey_id))
		return bind_failed(c, st, err, "reading a notice");
	int rc = sqlite3_step(st);
	int r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : db_err(err, c, "reading a notice");
	if (r == 1 && store_notice_read(st, id, out, err) != 0)
		r = -1;
	stmt_done(st);
	return r;
}

static int sqlite_notice_get(struct store *base, const char *id, int64_t apikey_id, struct notice_rec *out,
		     struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	memset(out, 0, sizeof(*out));
	if (!id)
		return 0;
	struct conn *c = reader_take(s, err);
	if (!c)
		return -1;
	int r = store_notice_get_on(c, id, apikey_id, out, err);
	reader_give(s, c);
	return r;
}

static int store_notice_list_on(struct conn *c, const struct notice_filter *f, struct notice_rec **out,
			  size_t *n, struct selo_err *err)
{
	int variant = (f->apikey_id >= 0 ? 1 : 0) | (f->reference ? 2 : 0) | (f->status ? 4 : 0);
	int limit = f->limit < 1 ? 1 : f->limit > LIST_MAX ? LIST_MAX : f->limit;
	sqlite3_stmt *st = stmt_get(c, (enum stmt_id)(S_LIST0 + variant), err);
	if (!st)
		return -1;
	/* Every id is greater than "", so no `after` means from the first. */
	if (bind_text(st, 1, f->after ? f->after : "") | sqlite3_bind_int64(st, 2, f->apikey_id) |
	    bind_text(st, 3, f->reference) | bind_text(st, 4, f->status) |
	    sqlite3_bind_int(st, 5, limit))
		return bind_failed(c, st, err, "listing notices");
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*out = grow(*out, *n, &cap, sizeof(**out));
		if (store_notice_read(st, NULL, &(*out)[*n], err) != 0) {
			stmt_done(st);
			return -1;
		}
		(*n)++;
	}
	int r = rc == SQLITE_DONE ? 0 : db_err(err, c, "listing notices");
	stmt_done(st);
	return r;
}

static int sqlite_notice_list(struct store *base, const struct notice_filter *f, struct notice_rec **out,
		      size_t *n, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	*out = NULL;
	*n = 0;
	struct conn *c = reader_take(s, err);
	if (!c)
		return -1;
	int r = store_notice_list_on(c, f, out, n, err);
	reader_give(s, c);
	if (r != 0) {
		notice_recs_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return r;
}

static int store_notice_scan_on(struct conn *c, int64_t *cursor, size_t max, struct notice_rec **out,
			  size_t *n, struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_NOTICE_SCAN, err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, *cursor) | sqlite3_bind_int64(st, 2, (int64_t)max))
		return bind_failed(c, st, err, "scanning notices");
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*out = grow(*out, *n, &cap, sizeof(**out));
		struct notice_rec *r = &(*out)[(*n)++];
		char why[160];
		int bad = store_notice_row_damage(st, why, sizeof(why));
		store_notice_from_row(st, r);
		if (bad)
			r->damage = xmemdup(why, strlen(why));
		*cursor = sqlite3_column_int64(st, NOTICE_NCOLS);
	}
	int r = rc == SQLITE_DONE ? 0 : db_err(err, c, "scanning notices");
	stmt_done(st);
	return r;
}

static int sqlite_notice_scan(struct store *base, int64_t *cursor, size_t max, struct notice_rec **out,
		      size_t *n, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	*out = NULL;
	*n = 0;
	struct conn *c = reader_take(s, err);
	if (!c)
		return -1;
	int r = store_notice_scan_on(c, cursor, max < 1 ? 1 : max > LIST_MAX ? LIST_MAX : max, out, n, err);
	reader_give(s, c);
	if (r != 0) {
		notice_recs_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return r;
}

static void store_event_from_row(sqlite3_stmt *st, struct event_rec *e)
{
	memset(e, 0, sizeof(*e));
	e->seq = sqlite3_column_int64(st, 0);
	col_copy(st, 1, e->notice_id, sizeof(e->notice_id));
	col_copy(st, 2, e->type, sizeof(e->type));
	e->time_ms = sqlite3_column_int64(st, 3);
	e->entry = col_bytes(st, 4, &e->len);
	e->log_index = sqlite3_column_int64(st, 5);
}

/* Runs a prepared and bound event query to its end. */
static int events_collect(struct conn *c, sqlite3_stmt *st, struct event_rec **out, size_t *n,
			  struct selo_err *err)
{
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*out = grow(*out, *n, &cap, sizeof(**out));
		store_event_from_row(st, &(*out)[(*n)++]);
	}
	int r = rc == SQLITE_DONE ? 0 : db_err(err, c, "reading events");
	stmt_done(st);
	return r;
}

static int events_query(struct store_sqlite *s, enum stmt_id id, const char *notice_id, int64_t after,
			int64_t max, struct event_rec **out, size_t *n, struct selo_err *err)
{
	*out = NULL;
	*n = 0;
	struct conn *c = reader_take(s, err);
	if (!c)
		return -1;
	sqlite3_stmt *st = stmt_get(c, id, err);
	int r = -1;
	if (st && notice_id && bind_text(st, 1, notice_id))
		bind_failed(c, st, err, "reading events");
	else if (st && !notice_id && (sqlite3_bind_int64(st, 1, after) | sqlite3_bind_int64(st, 2, max)))
		bind_failed(c, st, err, "reading events");
	else if (st)
		r = events_collect(c, st, out, n, err);
	reader_give(s, c);
	if (r != 0) {
		event_recs_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return r;
}

static int sqlite_events_of(struct store *base, const char *notice_id, struct event_rec **out, size_t *n,
		    struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	if (!notice_id) {
		*out = NULL;
		*n = 0;
		return 0;
	}
	return events_query(s, S_EVENTS_OF, notice_id, 0, 0, out, n, err);
}

static int store_event_first_on(struct conn *c, const char *id, const char *type, struct event_rec *out,
			  struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_EVENT_FIRST, err);
	if (!st)
		return -1;
	if (bind_text(st, 1, id) | bind_text(st, 2, type))
		return bind_failed(c, st, err, "reading an event");
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		store_event_from_row(st, out);
	int r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : db_err(err, c, "reading an event");
	stmt_done(st);
	return r;
}

static int sqlite_event_first(struct store *base, const char *notice_id, const char *type,
		      struct event_rec *out, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	memset(out, 0, sizeof(*out));
	struct conn *c = reader_take(s, err);
	if (!c)
		return -1;
	int r = store_event_first_on(c, notice_id, type, out, err);
	reader_give(s, c);
	return r;
}

static int sqlite_confirmations_of(struct store *base, const char *notice_id, struct event_rec **out,
			   size_t *n, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	if (!notice_id) {
		*out = NULL;
		*n = 0;
		return 0;
	}
	return events_query(s, S_CONFIRMATIONS_OF, notice_id, 0, 0, out, n, err);
}

static int sqlite_events_after(struct store *base, int64_t after_seq, size_t max, struct event_rec **out,
		       size_t *n, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	if (!max) {
		*out = NULL;
		*n = 0;
		return 0;
	}
	int64_t lim = max > EVENTS_AFTER_MAX ? EVENTS_AFTER_MAX : (int64_t)max;
	return events_query(s, S_EVENTS_AFTER, NULL, after_seq, lim, out, n, err);
}

static int attachments_of_on(struct conn *c, const char *id, struct attachment_rec **out,
			     size_t *n, struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_ATT_OF, err);
	if (!st)
		return -1;
	if (bind_text(st, 1, id))
		return bind_failed(c, st, err, "reading attachments");
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*out = grow(*out, *n, &cap, sizeof(**out));
		struct attachment_rec *a = &(*out)[(*n)++];
		a->filename = col_text(st, 0);
		a->content_type = col_text(st, 1);
		a->data = (uint8_t *)col_bytes(st, 2, &a->len);
	}
	int r = rc == SQLITE_DONE ? 0 : db_err(err, c, "reading attachments");
	stmt_done(st);
	return r;
}

static int sqlite_attachments_of(struct store *base, const char *notice_id, struct attachment_rec **out,
			 size_t *n, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	*out = NULL;
	*n = 0;
	if (!notice_id)
		return 0;
	struct conn *c = reader_take(s, err);
	if (!c)
		return -1;
	int r = attachments_of_on(c, notice_id, out, n, err);
	reader_give(s, c);
	if (r != 0) {
		attachment_recs_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return r;
}

static int message_get_on(struct conn *c, const char *id, struct buf *eml, char sha256[65],
			  struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_MSG_GET, err);
	if (!st)
		return -1;
	if (bind_text(st, 1, id))
		return bind_failed(c, st, err, "reading a message");
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const void *p = sqlite3_column_blob(st, 0);
		buf_append(eml, p ? p : "", p ? (size_t)sqlite3_column_bytes(st, 0) : 0);
		col_copy(st, 1, sha256, 65);
	}
	int r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : db_err(err, c, "reading a message");
	stmt_done(st);
	return r;
}

static int sqlite_message_get(struct store *base, const char *notice_id, struct buf *eml, char sha256[65],
		      struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	sha256[0] = '\0';
	if (!notice_id)
		return 0;
	struct conn *c = reader_take(s, err);
	if (!c)
		return -1;
	int r = message_get_on(c, notice_id, eml, sha256, err);
	reader_give(s, c);
	return r;
}

static int disclosures_of_on(struct conn *c, const char *id, struct disclosures *out,
			     struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_DISC_OF, err);
	if (!st)
		return -1;
	if (bind_text(st, 1, id))
		return bind_failed(c, st, err, "reading disclosures");
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		out->v = grow(out->v, out->n, &out->cap, sizeof(*out->v));
		struct disclosure *d = &out->v[out->n++];
		memset(d, 0, sizeof(*d));
		col_copy(st, 0, d->commitment, sizeof(d->commitment));
		d->value = col_bytes(st, 1, &d->len);
	}
	int r = rc == SQLITE_DONE ? 0 : db_err(err, c, "reading disclosures");
	stmt_done(st);
	return r;
}

static int sqlite_disclosures_of(struct store *base, const char *notice_id, struct disclosures *out,
			 struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	if (!notice_id)
		return 0;
	struct conn *c = reader_take(s, err);
	if (!c)
		return -1;
	int r = disclosures_of_on(c, notice_id, out, err);
	reader_give(s, c);
	return r;
}

static int64_t next_due_on(struct conn *c)
{
	struct selo_err e;
	sqlite3_stmt *st = stmt_get(c, S_NEXT_DUE, &e);
	if (!st)
		return 0;
	int64_t t = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	stmt_done(st);
	return t;
}

/* Errors read as "nothing deferred": the sender then polls on its own
 * schedule, which is safe (claims are what matters, and they go through the
 * writer). */
static int64_t sqlite_next_due(struct store *base)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct selo_err e;
	struct conn *c = reader_take(s, &e);
	if (!c)
		return 0;
	int64_t t = next_due_on(c);
	reader_give(s, c);
	return t;
}

static void counts_add(struct store_counts *k, const char *status, int64_t n)
{
	static const struct {
		const char *name;
		size_t off;
	} map[] = {
		{"queued", offsetof(struct store_counts, queued)},
		{"sending", offsetof(struct store_counts, sending)},
		{"deferred", offsetof(struct store_counts, deferred)},
		{"relayed", offsetof(struct store_counts, relayed)},
		{"delivered", offsetof(struct store_counts, delivered)},
		{"failed", offsetof(struct store_counts, failed)},
		{"scheduled", offsetof(struct store_counts, scheduled)},
		{"canceled", offsetof(struct store_counts, canceled)},
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcmp(status, map[i].name))
			*(int64_t *)((char *)k + map[i].off) += n;
}

static int counts_on(struct conn *c, struct store_counts *out, struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_COUNTS, err);
	if (!st)
		return -1;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char status[16];
		col_copy(st, 0, status, sizeof(status));
		counts_add(out, status, sqlite3_column_int64(st, 1));
	}
	int r = rc == SQLITE_DONE ? 0 : db_err(err, c, "counting notices");
	stmt_done(st);
	if (r != 0 || !(st = stmt_get(c, S_EVENTS_MAX, err)))
		return -1;
	/* Events are never deleted, so the highest seq is their count. */
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		out->events = sqlite3_column_int64(st, 0);
	r = rc == SQLITE_ROW ? 0 : db_err(err, c, "counting events");
	stmt_done(st);
	return r;
}

static int sqlite_counts(struct store *base, struct store_counts *out, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	memset(out, 0, sizeof(*out));
	struct conn *c = reader_take(s, err);
	if (!c)
		return -1;
	int r = counts_on(c, out, err);
	reader_give(s, c);
	return r;
}

static int check_on(struct conn *c, enum stmt_id id, struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, id, err);
	if (!st)
		return -1;
	int rc = sqlite3_step(st);
	char first[128] = "";
	if (rc == SQLITE_ROW)
		col_copy(st, 0, first, sizeof(first));
	int r = 0;
	if (rc != SQLITE_ROW)
		r = db_err(err, c, "checking the database");
	else if (id == S_QUICK_CHECK && strcmp(first, "ok") != 0)
		r = err_set(err, 500, "storage-failed", "store: quick_check found damage: %s", first);
	stmt_done(st);
	return r;
}

/* quick_check reads the whole file, which /healthz must not do on every
 * probe of a large database: the full check runs at most every
 * PING_FULL_EVERY_MS, and in between a cheap query proves the file answers. */
static int sqlite_ping(struct store *base, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	int64_t now = clock_mono_ms();
	pthread_mutex_lock(&s->rmu);
	int full = !s->last_full_check_ms || now - s->last_full_check_ms >= PING_FULL_EVERY_MS;
	pthread_mutex_unlock(&s->rmu);
	struct conn *c = reader_take(s, err);
	if (!c)
		return -1;
	int r = check_on(c, full ? S_QUICK_CHECK : S_CHEAP_CHECK, err);
	reader_give(s, c);
	if (r == 0 && full) {
		pthread_mutex_lock(&s->rmu);
		s->last_full_check_ms = now;
		pthread_mutex_unlock(&s->rmu);
	}
	return r;
}

/* Hands each line of a check's finding to line(), up to max in all. */
static void check_lines(const char *t, int *lines, int max,
			void (*line)(void *arg, const char *text), void *arg)
{
	while (line && *t && *lines < max) {
		size_t n = strcspn(t, "\n");
		char one[512];
		snprintf(one, sizeof(one), "%.*s", (int)n, t);
		if (one[0])
			line(arg, one);
		(*lines)++;
		t += n + (t[n] == '\n');
	}
}

/* Runs the check on a connection of its own: a fresh one sees the file as
 * it is (the pool's may hold pages in their caches), and query_only makes
 * sure the check writes nothing. The check's own failure to read a page
 * that is damaged is a finding too, not an error. */
int store_check_file(const char *path, int full, int max_lines,
		     void (*line)(void *arg, const char *text), void *arg, struct selo_err *err)
{
	if (access(path, F_OK) != 0)
		return err_set(err, 500, "storage-failed", "store: %s: %s", path, strerror(errno));
	struct conn *c = conn_open(path, SQLITE_OPEN_READWRITE, err);
	if (!c)
		return -1;
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_exec(c->db, "PRAGMA query_only=1", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(c->db, full ? "PRAGMA integrity_check" : "PRAGMA quick_check",
					-1, &st, NULL);
	int found = 0, lines = 0;
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		rc = SQLITE_OK; /* on to the next row */
		const char *t = (const char *)sqlite3_column_text(st, 0);
		if (t && !strcmp(t, "ok"))
			continue;
		found = 1;
		check_lines(t ? t : "(no text)", &lines, max_lines, line, arg);
	}
	int r = found;
	if (rc != SQLITE_DONE && rc != SQLITE_OK) {
		int code = sqlite3_extended_errcode(c->db);
		if (damaged_file(code)) {
			check_lines(sqlite3_errmsg(c->db), &lines, max_lines, line, arg);
			r = 1;
		} else {
			r = err_set(err, 500, "storage-failed", "store: checking %s: %s", path,
				    sqlite3_errmsg(c->db));
		}
	}
	sqlite3_finalize(st);
	conn_close(c);
	return r;
}

/* ---- A consistent copy of the file while `selo serve` writes (backup.c).
 * The source is read on a connection of its own (query_only, as the check
 * above): in WAL mode a reader never blocks the writer nor waits for it.
 * sqlite3_backup_step(-1) copies every page inside one read transaction, so
 * the copy is the database as of one commit; a step in pieces would restart
 * each time the writer commits. The copy is then switched to a rollback
 * journal, so it is one self-contained file (serve turns WAL back on). */

static int log_state_on(struct conn *c, struct log_state *out, struct selo_err *err);

/* The latest checkpoint in the copy: 1 and its size and note, 0 none. */
static int copy_checkpoint(struct conn *c, struct store_copy_info *out, struct selo_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(c->db, "SELECT size, note FROM checkpoints ORDER BY size DESC "
				    "LIMIT 1", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		out->checkpoint_size = (uint64_t)sqlite3_column_int64(st, 0);
		const char *note = (const char *)sqlite3_column_text(st, 1);
		struct buf b = BUF_INIT;
		buf_puts(&b, note ? note : "");
		buf_putc(&b, '\0');
		out->checkpoint = buf_steal(&b, NULL);
	}
	int r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : db_err(err, c, "reading the copy");
	sqlite3_finalize(st);
	return r;
}

/* What the copy holds: schema version, tree state, latest checkpoint. */
static int copy_describe(struct conn *c, struct store_copy_info *out, struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_MIG_VERSION, err);
	if (!st)
		return -1;
	int rc = sqlite3_step(st);
	out->schema_version = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
	stmt_done(st);
	if (rc != SQLITE_ROW)
		return db_err(err, c, "reading the copy's schema version");
	struct log_state ls;
	if (log_state_on(c, &ls, err) != 0)
		return -1;
	out->tree_size = ls.size;
	memcpy(out->root, ls.root, 32);
	out->last_seq = ls.last_seq;
	return copy_checkpoint(c, out, err) < 0 ? -1 : 0;
}

/* Copies every page of src into dst's connection, retrying a busy source
 * (a WAL being recovered) for a few seconds. */
static int copy_pages(struct conn *src, struct conn *dst, struct selo_err *err)
{
	sqlite3_backup *b = sqlite3_backup_init(dst->db, "main", src->db, "main");
	if (!b)
		return db_err(err, dst, "starting the copy");
	int rc;
	for (int tries = 0;; tries++) {
		rc = sqlite3_backup_step(b, -1);
		if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || tries >= 50)
			break;
		sqlite3_sleep(100);
	}
	sqlite3_backup_finish(b);
	if (rc != SQLITE_DONE)
		return db_err(err, rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? src : dst, "copying the "
			      "database");
	return 0;
}

int store_copy_file(const char *src_path, const char *dst_path, struct store_copy_info *out,
		    struct selo_err *err)
{
	memset(out, 0, sizeof(*out));
	if (access(src_path, F_OK) != 0)
		return err_set(err, 500, "storage-failed", "store: %s: %s", src_path, strerror(errno));
	struct conn *src = conn_open(src_path, SQLITE_OPEN_READWRITE, err);
	if (!src)
		return -1;
	int r = -1;
	struct conn *dst = NULL;
	if (sqlite3_exec(src->db, "PRAGMA query_only=1", NULL, NULL, NULL) != SQLITE_OK) {
		db_err(err, src, "opening the database read-only");
		goto out;
	}
	dst = conn_open(dst_path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, err);
	if (!dst || copy_pages(src, dst, err) != 0)
		goto out;
	if (sqlite3_exec(dst->db, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL) != SQLITE_OK) {
		db_err(err, dst, "making the copy a single file");
		goto out;
	}
	r = copy_describe(dst, out, err);
out:
	conn_close(dst);
	conn_close(src);
	if (r != 0)
		store_copy_info_free(out);
	return r;
}

int store_describe_file(const char *path, struct store_copy_info *out, struct selo_err *err)
{
	memset(out, 0, sizeof(*out));
	if (access(path, F_OK) != 0)
		return err_set(err, 500, "storage-failed", "store: %s: %s", path, strerror(errno));
	struct conn *c = conn_open(path, SQLITE_OPEN_READWRITE, err);
	if (!c)
		return -1;
	int r = -1;
	if (sqlite3_exec(c->db, "PRAGMA query_only=1", NULL, NULL, NULL) != SQLITE_OK)
		db_err(err, c, "opening the database read-only");
	else
		r = copy_describe(c, out, err);
	conn_close(c);
	if (r != 0)
		store_copy_info_free(out);
	return r;
}

/* ---- Freeing results. */

/* ---- Events that change no notice state. */

struct events_args {
	const struct event_new *ev;
	size_t n;
};

/* One event of store_events_add, encoded into e (reused across the call:
 * a batch of hits is thousands of events). */
static int store_event_new_add(struct store_sqlite *s, const struct event_new *ev, struct buf *e,
			 struct disc_memo *m, struct selo_err *err)
{
	int64_t t = writer_time(s);
	buf_reset(e);
	int bad = ev->fields ? event_entry_encode(e, ev->type, ev->notice_id, t, ev->fields)
			     : event_entry_encode_text(e, ev->type, ev->notice_id, t, ev->fields_text,
						       ev->fields_text ? ev->fields_len : 0);
	if (bad)
		return store_event_unencodable(err, ev->notice_id, ev->type);
	return store_event_row_add(s->w, ev->notice_id, ev->type, t, e, ev->disc, m, err);
}

/* Inside the writer: 0 when the notice exists, else -1 (404 when it does
 * not: the caller's whole call is refused). */
static int store_notice_known(struct store_sqlite *s, const char *id, struct selo_err *err)
{
	int exists = row_exists(s->w, S_NOTICE_EXISTS, id, err);
	if (exists > 0)
		return 0;
	return exists < 0 ? -1 : err_set(err, 404, "not-found", "store: no notice %s", id);
}

static int run_events_add(struct store_sqlite *s, struct job *j)
{
	struct events_args *a = j->arg;
	struct buf e = BUF_INIT;
	struct disc_memo memo = {0};
	int r = 0;
	for (size_t i = 0; i < a->n && r == 0; i++) {
		const struct event_new *ev = &a->ev[i];
		/* Hits come in runs of one notice: one look-up per run (the
		 * transaction holds the write lock, so it cannot vanish meanwhile). */
		if ((i == 0 || strcmp(ev->notice_id, a->ev[i - 1].notice_id) != 0) &&
		    (r = store_notice_known(s, ev->notice_id, j->err)) != 0)
			break;
		r = store_event_new_add(s, ev, &e, &memo, j->err) != 0 ? -1 : 0;
	}
	buf_free(&e);
	return r;
}

static int sqlite_events_add(struct store *base, const struct event_new *ev, size_t n, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct events_args a = {ev, n};
	return n ? job_do(s, run_events_add, &a, err, NULL) : 0;
}

/* ---- Tracker hits and their folds (store.h "Tracker hits"). */

/* Runs a statement whose one parameter is a key and that returns no row. */
static int key_step(struct conn *c, enum stmt_id id, const char *key, struct selo_err *err,
		    const char *what)
{
	sqlite3_stmt *st = stmt_get(c, id, err);
	if (!st)
		return -1;
	if (bind_text(st, 1, key))
		return bind_failed(c, st, err, what);
	return step_done(c, st, err, what);
}

/* A notice's row of hit_tally, in memory while a job works on it. */
struct tally {
	int64_t full[HIT_KINDS][HIT_CLASSES];
	int64_t summaries;
	int64_t first_ms, last_ms, due_ms;   /* the open fold; due 0: none */
	int64_t fold[HIT_KINDS][HIT_CLASSES];
	int64_t addresses;
};

static void tally_from_row(sqlite3_stmt *st, struct tally *t)
{
	int col = 0;
	for (int k = 0; k < HIT_KINDS; k++)
		for (int c = 0; c < HIT_CLASSES; c++)
			t->full[k][c] = sqlite3_column_int64(st, col++);
	t->summaries = sqlite3_column_int64(st, col++);
	t->first_ms = sqlite3_column_int64(st, col++);
	t->last_ms = sqlite3_column_int64(st, col++);
	t->due_ms = sqlite3_column_int64(st, col++);
	for (int k = 0; k < HIT_KINDS; k++)
		for (int c = 0; c < HIT_CLASSES; c++)
			t->fold[k][c] = sqlite3_column_int64(st, col++);
	t->addresses = sqlite3_column_int64(st, col);
}

/* The tally of a notice without a row: counted from its events. */
static int tally_count(struct conn *c, const char *id, struct tally *t, struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_TALLY_COUNT, err);
	if (!st)
		return -1;
	if (bind_text(st, 1, id))
		return bind_failed(c, st, err, "counting a notice's hits");
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *type = (const char *)sqlite3_column_text(st, 0);
		int cls = sqlite3_column_int(st, 1);
		int64_t n = sqlite3_column_int64(st, 2);
		if (!type || cls < 0 || cls >= HIT_CLASSES)
			continue;
		if (!strcmp(type, EV_TRACKING_SUMMARY))
			t->summaries += n;
		else
			t->full[strcmp(type, EV_OPENED) ? HIT_KIND_CLICKED : HIT_KIND_OPENED][cls] += n;
	}
	int r = rc == SQLITE_DONE ? 0 : db_err(err, c, "counting a notice's hits");
	stmt_done(st);
	return r;
}

static int tally_load(struct conn *c, const char *id, struct tally *t, struct selo_err *err)
{
	memset(t, 0, sizeof(*t));
	sqlite3_stmt *st = stmt_get(c, S_TALLY_GET, err);
	if (!st)
		return -1;
	if (bind_text(st, 1, id))
		return bind_failed(c, st, err, "reading a notice's hit tally");
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		tally_from_row(st, t);
	int r = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0
						       : db_err(err, c, "reading a notice's hit tally");
	stmt_done(st);
	return r == 0 && rc == SQLITE_DONE ? tally_count(c, id, t, err) : r;
}

static int tally_put(struct conn *c, const char *id, const struct tally *t, struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_TALLY_PUT, err);
	if (!st)
		return -1;
	int64_t v[17], *p = v;
	for (int k = 0; k < HIT_KINDS; k++)
		for (int cl = 0; cl < HIT_CLASSES; cl++)
			*p++ = t->full[k][cl];
	*p++ = t->summaries;
	*p++ = t->first_ms;
	*p++ = t->last_ms;
	*p++ = t->due_ms;
	for (int k = 0; k < HIT_KINDS; k++)
		for (int cl = 0; cl < HIT_CLASSES; cl++)
			*p++ = t->fold[k][cl];
	*p = t->addresses;
	int bad = bind_text(st, 1, id);
	for (int i = 0; i < 17; i++)
		bad |= sqlite3_bind_int64(st, i + 2, v[i]);
	if (bad)
		return bind_failed(c, st, err, "storing a notice's hit tally");
	return step_done(c, st, err, "storing a notice's hit tally");
}

/* How long a notice's next fold stays open: the rule's window, doubled for
 * every summary the notice already has, up to the rule's longest. */
static int64_t fold_window(const struct fold_rule *r, int64_t summaries)
{
	int64_t w = r->window_ms > 0 ? r->window_ms : 1;
	for (int64_t i = 0; i < summaries && w < r->window_max_ms; i++)
		w *= 2;
	return w < r->window_max_ms ? w : r->window_max_ms;
}

/* Counts one hit in the notice's fold; a new address is remembered. */
static int fold_add(struct conn *c, const char *id, struct tally *t, const struct hit_new *h,
		    const struct fold_rule *rule, struct selo_err *err)
{
	if (t->due_ms == 0) {
		t->first_ms = t->last_ms = h->arrived_ms;
		t->due_ms = h->arrived_ms + fold_window(rule, t->summaries);
	}
	if (h->arrived_ms < t->first_ms)
		t->first_ms = h->arrived_ms;
	if (h->arrived_ms > t->last_ms)
		t->last_ms = h->arrived_ms;
	t->fold[h->kind][h->cls]++;
	sqlite3_stmt *st = stmt_get(c, S_FOLD_ADDR, err);
	if (!st)
		return -1;
	if (bind_text(st, 1, id) | bind_blob(st, 2, h->addr, sizeof(h->addr)))
		return bind_failed(c, st, err, "counting a hit's address");
	if (step_done(c, st, err, "counting a hit's address") != 0)
		return -1;
	t->addresses += sqlite3_changes(c->db) > 0;
	return 0;
}

struct hits_args {
	const struct hit_new *h;
	size_t n;
	const struct fold_rule *rule;
	size_t folded;
};

/* One hit: its event while its (kind, class) has room, else the fold. */
static int hit_add(struct store_sqlite *s, struct hits_args *a, const struct hit_new *h, struct tally *t,
		   struct buf *e, struct disc_memo *m, struct selo_err *err)
{
	if (h->kind < 0 || h->kind >= HIT_KINDS || h->cls < 0 || h->cls >= HIT_CLASSES)
		return err_set(err, 500, "internal", "store: a hit of an unknown kind or class");
	if (t->full[h->kind][h->cls] < a->rule->full_max) {
		t->full[h->kind][h->cls]++;
		return store_event_new_add(s, &h->ev, e, m, err) != 0 ? -1 : 0;
	}
	a->folded++;
	return fold_add(s->w, h->ev.notice_id, t, h, a->rule, err);
}

static int run_hits_add(struct store_sqlite *s, struct job *j)
{
	struct hits_args *a = j->arg;
	struct buf e = BUF_INIT;
	struct disc_memo memo = {0};
	struct tally t;
	int r = 0;
	for (size_t i = 0; i < a->n && r == 0; i++) {
		const char *id = a->h[i].ev.notice_id;
		/* Hits come in runs of one notice: its tally is read once a run
		 * and written back when the run ends. */
		if (i == 0 || strcmp(id, a->h[i - 1].ev.notice_id) != 0) {
			if ((r = store_notice_known(s, id, j->err)) != 0)
				break;
			r = tally_load(s->w, id, &t, j->err);
		}
		if (r == 0)
			r = hit_add(s, a, &a->h[i], &t, &e, &memo, j->err);
		if (r == 0 && (i + 1 == a->n || strcmp(id, a->h[i + 1].ev.notice_id) != 0))
			r = tally_put(s->w, id, &t, j->err);
	}
	buf_free(&e);
	return r;
}

static int sqlite_hits_add(struct store *base, const struct hit_new *h, size_t n, const struct fold_rule *rule,
		   size_t *folded, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct hits_args a = {h, n, rule, 0};
	int r = n ? job_do(s, run_hits_add, &a, err, NULL) : 0;
	if (folded)
		*folded = r == 0 ? a.folded : 0;
	return r;
}

struct folds_args {
	int64_t now_ms;
	size_t max;
	fold_fields_fn fields;
	void *arg;
	size_t closed;
};

/* Writes the summary of one notice's fold and empties it. */
static int fold_close(struct store_sqlite *s, const char *id, struct folds_args *a, struct selo_err *err)
{
	struct tally t;
	if (tally_load(s->w, id, &t, err) != 0)
		return -1;
	if (t.due_ms == 0)
		return 0;
	struct hit_fold f = {.first_ms = t.first_ms, .last_ms = t.last_ms,
			     .addresses = t.addresses, .summaries = t.summaries};
	snprintf(f.notice_id, sizeof(f.notice_id), "%s", id);
	memcpy(f.hits, t.fold, sizeof(f.hits));
	json_t *fields = a->fields(&f, a->arg);
	if (!fields)
		return err_set(err, 500, "internal", "store: a hit summary cannot be made");
	int r = store_event_add(s->w, id, EV_TRACKING_SUMMARY, writer_time(s), fields, NULL, err);
	json_decref(fields);
	if (r != 0)
		return -1;
	t.summaries++;
	t.first_ms = t.last_ms = t.due_ms = t.addresses = 0;
	memset(t.fold, 0, sizeof(t.fold));
	if (tally_put(s->w, id, &t, err) != 0 || key_step(s->w, S_FOLD_ADDRS_DROP, id, err, "forgetting a fold's addresses") != 0)
		return -1;
	a->closed++;
	return 0;
}

static int run_folds_close(struct store_sqlite *s, struct job *j)
{
	struct folds_args *a = j->arg;
	sqlite3_stmt *st = stmt_get(s->w, S_FOLDS_DUE, j->err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, a->now_ms) | sqlite3_bind_int64(st, 2, (int64_t)a->max))
		return bind_failed(s->w, st, j->err, "finding hit folds due");
	/* The ids first: the rows change as each fold closes. */
	char (*ids)[27] = xcalloc(a->max ? a->max : 1, sizeof(*ids));
	size_t n = 0;
	int rc = SQLITE_DONE;
	while (n < a->max && (rc = sqlite3_step(st)) == SQLITE_ROW)
		col_copy(st, 0, ids[n++], sizeof(ids[0]));
	int r = n == a->max || rc == SQLITE_DONE ? 0 : db_err(j->err, s->w, "finding hit folds due");
	stmt_done(st);
	for (size_t i = 0; r == 0 && i < n; i++)
		r = fold_close(s, ids[i], a, j->err);
	free(ids);
	return r;
}

/* 1 when a fold is due at now_ms, 0 none, -1 error: one index probe on a
 * reader, so the recorder's sweep costs the writer nothing while no fold
 * is due (nearly always). */
static int folds_due(struct store_sqlite *s, int64_t now_ms, struct selo_err *err)
{
	struct conn *c = reader_take(s, err);
	if (!c)
		return -1;
	sqlite3_stmt *st = stmt_get(c, S_FOLDS_DUE, err);
	int r = -1;
	if (st && !(sqlite3_bind_int64(st, 1, now_ms) | sqlite3_bind_int64(st, 2, 1))) {
		int rc = sqlite3_step(st);
		r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : db_err(err, c, "finding hit folds due");
		stmt_done(st);
	} else if (st) {
		bind_failed(c, st, err, "finding hit folds due");
	}
	reader_give(s, c);
	return r;
}

static int sqlite_folds_close(struct store *base, int64_t now_ms, size_t max, fold_fields_fn fields,
		      void *arg, size_t *closed, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct folds_args a = {now_ms, max, fields, arg, 0};
	int due = max ? folds_due(s, now_ms, err) : 0;
	int r = due > 0 ? job_do(s, run_folds_close, &a, err, NULL) : due;
	if (closed)
		*closed = r == 0 ? a.closed : 0;
	return r;
}

/* ---- Ledger storage (see store.h "Ledger"). */

static int log_state_on(struct conn *c, struct log_state *out, struct selo_err *err)
{
	memset(out, 0, sizeof(*out));
	/* The empty tree's root is SHA-256 of nothing. */
	static const uint8_t EMPTY[32] = {
		0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
		0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};
	memcpy(out->root, EMPTY, 32);
	sqlite3_stmt *st = stmt_get(c, S_LOG_STATE, err);
	if (!st)
		return -1;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		out->size = (uint64_t)sqlite3_column_int64(st, 0);
		if (sqlite3_column_bytes(st, 1) == 32)
			memcpy(out->root, sqlite3_column_blob(st, 1), 32);
		out->last_seq = sqlite3_column_int64(st, 2);
	}
	int r = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_err(err, c, "reading the log state");
	stmt_done(st);
	return r;
}

static int sqlite_log_state(struct store *base, struct log_state *out, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct conn *c = reader_take(s, err);
	if (!c)
		return -1;
	int r = log_state_on(c, out, err);
	reader_give(s, c);
	return r;
}

/* Indexes the run of events first_seq .. first_seq + n - 1 as
 * first_index ..: one row, after checking that every event of the run
 * exists (409 otherwise, nothing written). */
static int log_run_add(struct conn *c, int64_t first_seq, uint64_t first_index, int64_t n,
		       struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_LOG_RANGE_COUNT, err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, first_seq) | sqlite3_bind_int64(st, 2, first_seq + n - 1))
		return bind_failed(c, st, err, "indexing events");
	int rc = sqlite3_step(st);
	int64_t have = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	stmt_done(st);
	if (rc != SQLITE_ROW)
		return db_err(err, c, "indexing events");
	if (have != n)
		return err_set(err, 409, "conflict", "store: events %lld..%lld: %lld of %lld exist",
			       (long long)first_seq, (long long)(first_seq + n - 1), (long long)have,
			       (long long)n);
	st = stmt_get(c, S_LOG_RANGE_ADD, err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, (int64_t)first_index) | sqlite3_bind_int64(st, 2, first_seq) |
	    sqlite3_bind_int64(st, 3, n))
		return bind_failed(c, st, err, "indexing events");
	return step_done(c, st, err, "indexing events");
}

/* Gives the batch's events their indexes, one log_ranges row per run of
 * consecutive seqs (a batch is usually one run). The seqs must rise and
 * start after the last event integrated, so no event is indexed twice. */
static int log_runs_add(struct conn *c, const struct log_append *a, int64_t last_seq,
			struct selo_err *err)
{
	if (a->n && a->seqs[0] <= last_seq)
		return err_set(err, 409, "conflict", "store: event %lld is already in the log",
			       (long long)a->seqs[0]);
	size_t start = 0;
	for (size_t i = 1; i <= a->n; i++) {
		if (i < a->n && a->seqs[i] <= a->seqs[i - 1])
			return err_set(err, 409, "conflict", "store: events to index out of seq order");
		if (i < a->n && a->seqs[i] == a->seqs[i - 1] + 1)
			continue;
		if (log_run_add(c, a->seqs[start], a->first_index + start, (int64_t)(i - start), err) != 0)
			return -1;
		start = i;
	}
	return 0;
}

static int log_tile_set(struct conn *c, const struct log_tile_write *t, struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_LOG_TILE_SET, err);
	if (!st)
		return -1;
	if (sqlite3_bind_int(st, 1, t->level) | sqlite3_bind_int64(st, 2, (int64_t)t->index) |
	    bind_blob(st, 3, t->data, t->len))
		return bind_failed(c, st, err, "writing a log tile");
	return step_done(c, st, err, "writing a log tile");
}

static int run_log_append(struct store_sqlite *s, struct job *j)
{
	const struct log_append *a = j->arg;
	struct conn *c = s->w;
	struct log_state cur;
	if (log_state_on(c, &cur, j->err) != 0)
		return -1;
	if (cur.size != a->first_index)
		return err_set(j->err, 409, "conflict", "store: the log has %llu entries, not %llu",
			       (unsigned long long)cur.size, (unsigned long long)a->first_index);
	if (log_runs_add(c, a, cur.last_seq, j->err) != 0)
		return -1;
	for (size_t i = 0; i < a->ntiles; i++)
		if (log_tile_set(c, &a->tiles[i], j->err) != 0)
			return -1;
	sqlite3_stmt *st = stmt_get(c, S_LOG_STATE_SET, j->err);
	if (!st)
		return -1;
	int64_t last = a->n ? a->seqs[a->n - 1] : cur.last_seq;
	if (sqlite3_bind_int64(st, 1, (int64_t)(a->first_index + a->n)) | bind_blob(st, 2, a->root, 32) |
	    sqlite3_bind_int64(st, 3, last))
		return bind_failed(c, st, j->err, "writing the log state");
	return step_done(c, st, j->err, "writing the log state");
}

static int sqlite_log_append(struct store *base, const struct log_append *a, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	return job_do(s, run_log_append, (void *)a, err, NULL);
}

static int sqlite_log_tile(struct store *base, int level, uint64_t index, struct buf *data,
		   struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct conn *c = reader_take(s, err);
	if (!c)
		return -1;
	sqlite3_stmt *st = stmt_get(c, S_LOG_TILE_GET, err);
	int r = -1;
	if (st && (sqlite3_bind_int(st, 1, level) | sqlite3_bind_int64(st, 2, (int64_t)index))) {
		bind_failed(c, st, err, "reading a log tile");
	} else if (st) {
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			buf_append(data, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
			r = 1;
		} else {
			r = rc == SQLITE_DONE ? 0 : db_err(err, c, "reading a log tile");
		}
		stmt_done(st);
	}
	reader_give(s, c);
	return r;
}

static int sqlite_log_entries(struct store *base, uint64_t from, size_t max, struct event_rec **out,
		      size_t *n, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	int64_t lim = max > EVENTS_AFTER_MAX ? EVENTS_AFTER_MAX : (int64_t)max;
	return events_query(s, S_LOG_ENTRIES, NULL, (int64_t)from, lim, out, n, err);
}

static int sqlite_log_unindexed(struct store *base, int64_t last_seq, int64_t *count, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct conn *c = reader_take(s, err);
	if (!c)
		return -1;
	sqlite3_stmt *st = stmt_get(c, S_LOG_UNINDEXED, err);
	int r = -1;
	if (st && sqlite3_bind_int64(st, 1, last_seq)) {
		bind_failed(c, st, err, "counting events outside the log");
	} else if (st) {
		if (sqlite3_step(st) == SQLITE_ROW) {
			*count = sqlite3_column_int64(st, 0);
			r = 0;
		} else {
			r = db_err(err, c, "counting events outside the log");
		}
		stmt_done(st);
	}
	reader_give(s, c);
	return r;
}

struct checkpoint_args {
	uint64_t size;
	const char *note;
	int64_t ms;
	const uint8_t *tst;
	size_t len;
};

static int run_checkpoint_add(struct store_sqlite *s, struct job *j)
{
	struct checkpoint_args *a = j->arg;
	struct conn *c = s->w;
	sqlite3_stmt *st = stmt_get(c, S_CP_ADD, j->err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, (int64_t)a->size) | bind_text(st, 2, a->note) |
	    sqlite3_bind_int64(st, 3, a->ms))
		return bind_failed(c, st, j->err, "adding a checkpoint");
	return step_insert(c, st, j->err, "adding a checkpoint", NULL) == 0 ? 0 : -1;
}

static int sqlite_checkpoint_add(struct store *base, uint64_t size, const char *note, int64_t created_ms,
			 struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct checkpoint_args a = {size, note, created_ms, NULL, 0};
	return job_do(s, run_checkpoint_add, &a, err, NULL);
}

static int run_checkpoint_tst(struct store_sqlite *s, struct job *j)
{
	struct checkpoint_args *a = j->arg;
	struct conn *c = s->w;
	sqlite3_stmt *st = stmt_get(c, S_CP_TST, j->err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, (int64_t)a->size) | bind_blob(st, 2, a->tst, a->len) |
	    sqlite3_bind_int64(st, 3, a->ms))
		return bind_failed(c, st, j->err, "storing a checkpoint timestamp");
	return step_done(c, st, j->err, "storing a checkpoint timestamp");
}

static int sqlite_checkpoint_timestamp(struct store *base, uint64_t size, const uint8_t *tst, size_t len,
			       int64_t tst_time_ms, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct checkpoint_args a = {size, NULL, tst_time_ms, tst, len};
	return job_do(s, run_checkpoint_tst, &a, err, NULL);
}

static void checkpoint_from_row(sqlite3_stmt *st, struct checkpoint_rec *r)
{
	memset(r, 0, sizeof(*r));
	r->size = (uint64_t)sqlite3_column_int64(st, 0);
	r->note = col_text(st, 1);
	r->created_ms = sqlite3_column_int64(st, 2);
	if (sqlite3_column_type(st, 3) != SQLITE_NULL)
		r->tst = (uint8_t *)col_bytes(st, 3, &r->tst_len);
	r->tst_time_ms = sqlite3_column_int64(st, 4);
}

/* Runs a checkpoint query (bound by the caller via p1), collecting rows. */
static int checkpoints_query(struct store_sqlite *s, enum stmt_id id, int64_t p1, int bind,
			     struct checkpoint_rec **out, size_t *n, struct selo_err *err)
{
	*out = NULL;
	*n = 0;
	struct conn *c = reader_take(s, err);
	if (!c)
		return -1;
	sqlite3_stmt *st = stmt_get(c, id, err);
	int r = -1;
	if (st && bind && sqlite3_bind_int64(st, 1, p1)) {
		bind_failed(c, st, err, "reading checkpoints");
	} else if (st) {
		size_t cap = 0;
		int rc;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			*out = grow(*out, *n, &cap, sizeof(**out));
			checkpoint_from_row(st, &(*out)[(*n)++]);
		}
		r = rc == SQLITE_DONE ? 0 : db_err(err, c, "reading checkpoints");
		stmt_done(st);
	}
	reader_give(s, c);
	if (r != 0) {
		checkpoint_recs_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return r;
}

static int sqlite_checkpoint_find(struct store *base, uint64_t min_size, int timestamped,
			  struct checkpoint_rec *out, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct checkpoint_rec *rows;
	size_t n;
	if (checkpoints_query(s, timestamped ? S_CP_FIND_TST : S_CP_FIND, (int64_t)min_size, 1, &rows,
			      &n, err) != 0)
		return -1;
	if (n == 0) {
		free(rows);
		return 0;
	}
	*out = rows[0];
	free(rows);
	return 1;
}

static int sqlite_checkpoints_untimestamped(struct store *base, size_t max, struct checkpoint_rec **out,
				    size_t *n, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	return checkpoints_query(s, S_CP_UNTIMESTAMPED, (int64_t)(max ? max : 1), 1, out, n, err);
}

static int sqlite_checkpoints_all(struct store *base, struct checkpoint_rec **out, size_t *n,
			  struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	return checkpoints_query(s, S_CP_ALL, 0, 0, out, n, err);
}

/* ---- Tracker lookups (see store.h). */

static int sqlite_token_lookup(struct store *base, const char *token, struct token_info *out,
		       struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	memset(out, 0, sizeof(*out));
	struct conn *c = reader_take(s, err);
	if (!c)
		return -1;
	sqlite3_stmt *st = stmt_get(c, S_TOKEN_GET, err);
	int r = -1;
	if (st && bind_text(st, 1, token)) {
		bind_failed(c, st, err, "reading a token");
	} else if (st) {
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			col_copy(st, 0, out->notice_id, sizeof(out->notice_id));
			col_copy(st, 1, out->kind, sizeof(out->kind));
			out->link = sqlite3_column_int(st, 2);
			out->url = sqlite3_column_type(st, 3) == SQLITE_NULL ? NULL : col_text(st, 3);
			r = 1;
		} else {
			r = rc == SQLITE_DONE ? 0 : db_err(err, c, "reading a token");
		}
		stmt_done(st);
	}
	reader_give(s, c);
	return r;
}

/* One row, one column of a statement bound with a text id (and an optional
 * second text): 1 and the statement positioned on the row, 0 none. */
static int one_row(struct conn *c, sqlite3_stmt *st, const char *a, const char *b,
		   struct selo_err *err)
{
	if (bind_text(st, 1, a) || (b && bind_text(st, 2, b)))
		return bind_failed(c, st, err, "reading a notice");
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		return 1;
	int r = rc == SQLITE_DONE ? 0 : db_err(err, c, "reading a notice");
	stmt_done(st);
	return r;
}

static int sqlite_notice_brief(struct store *base, const char *id, uint8_t salt[32], int64_t *accepted_ms,
		       struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct conn *c = reader_take(s, err);
	if (!c)
		return -1;
	sqlite3_stmt *st = stmt_get(c, S_BRIEF_SALT, err);
	int r = st ? one_row(c, st, id, NULL, err) : -1;
	if (r == 1) {
		memset(salt, 0, 32);
		if (sqlite3_column_bytes(st, 0) == 32)
			memcpy(salt, sqlite3_column_blob(st, 0), 32);
		stmt_done(st);
		st = stmt_get(c, S_BRIEF_ACCEPTED, err);
		int r2 = st ? one_row(c, st, id, NULL, err) : -1;
		if (r2 == 1) {
			*accepted_ms = sqlite3_column_int64(st, 0);
			stmt_done(st);
		} else {
			r = -1;
		}
	}
	reader_give(s, c);
	return r;
}

/* ---- Bounces after acceptance (see store.h). */

struct bounce_args {
	const char *id;
	json_t *fields;
	const struct disclosures *disc;
	const char *last_error;
};

/* The notice's status into status: 1 found, 0 not, -1 error. */
static int bounce_status(struct conn *c, const char *id, char status[16], struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_STATUS_GET, err);
	int r = st ? one_row(c, st, id, NULL, err) : -1;
	if (r == 1) {
		col_copy(st, 0, status, 16);
		stmt_done(st);
	}
	return r;
}

static int run_bounced(struct store_sqlite *s, struct job *j)
{
	struct bounce_args *a = j->arg;
	struct conn *c = s->w;
	char status[16];
	int r = bounce_status(c, a->id, status, j->err);
	if (r <= 0)
		return r < 0 ? -1 : err_set(j->err, 404, "not-found", "store: no notice %s", a->id);
	/* Its sender would overwrite the status with the attempt's outcome. */
	if (!strcmp(status, "sending"))
		return err_set(j->err, 409, "in-flight",
			       "store: notice %s is being sent right now; its bounce can be recorded "
			       "once this attempt is (in a few seconds)", a->id);
	sqlite3_stmt *st = stmt_get(c, S_BOUNCED, j->err);
	r = st ? one_row(c, st, a->id, NULL, j->err) : -1;
	if (r != 0) {
		if (r == 1) {
			stmt_done(st);
			j->ival = 1; /* already recorded: nothing new */
		}
		return r < 0 ? -1 : 0;
	}
	int64_t t = writer_time(s);
	st = stmt_get(c, S_BOUNCE_MARK, j->err);
	if (!st)
		return -1;
	if (bind_text(st, 1, a->id) | bind_text(st, 2, a->last_error) | sqlite3_bind_int64(st, 3, t))
		return bind_failed(c, st, j->err, "recording a bounce");
	if (step_done(c, st, j->err, "recording a bounce") != 0)
		return -1;
	if (store_event_add(c, a->id, EV_DELIVERY_FAILED, t, a->fields, a->disc, j->err) != 0)
		return -1;
	return after_hard_bounce(c, a->id, a->fields, a->last_error, t, j->err);
}

static int sqlite_notice_bounced(struct store *base, const char *id, json_t *fields,
			 const struct disclosures *disc, const char *last_error,
			 struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	const char *reason = json_string_value(json_object_get(fields, "reason"));
	if (!id || !reason || strcmp(reason, "bounced") != 0)
		return err_set(err, 400, "invalid-request",
			       "store: a bounce needs a notice id and fields with \"reason\":\"bounced\"");
	struct bounce_args a = {id, fields, disc, last_error};
	int64_t already = 0;
	if (job_do(s, run_bounced, &a, err, &already) != 0)
		return -1;
	return already ? 1 : 0;
}

/* ---- Canceling scheduled notices and stopping sequences (docs/store.md,
 * "Scheduling and sequences"). A notice can be canceled only while it was
 * never handed to SMTP (S_CANCEL says exactly when); the writer runs claims
 * and cancels one at a time, so a notice is either claimed or canceled,
 * never both. */

static int canceled_event(struct conn *c, const char *id, int64_t t, const char *reason,
			  const char *by, const char *sequence_id, const char *bounced,
			  struct selo_err *err)
{
	json_t *f = json_object();
	json_object_set_new(f, "reason", json_string(reason));
	json_object_set_new(f, "by", json_string(by));
	if (sequence_id)
		json_object_set_new(f, "sequence", json_string(sequence_id));
	if (bounced)
		json_object_set_new(f, "bounced_notice", json_string(bounced));
	int r = store_event_add(c, id, EV_CANCELED, t, f, NULL, err);
	json_decref(f);
	return r;
}

/* 1 canceled now (with its event), 0 no longer cancelable, -1 storage. */
static int cancel_row(struct conn *c, const char *id, int64_t t, const char *reason,
		      const char *by, const char *sequence_id, const char *bounced,
		      struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_CANCEL, err);
	if (!st)
		return -1;
	char why[96];
	snprintf(why, sizeof(why), "canceled (%s)", reason);
	if (bind_text(st, 1, id) | sqlite3_bind_int64(st, 2, t) | bind_text(st, 3, why))
		return bind_failed(c, st, err, "canceling a notice");
	if (step_done(c, st, err, "canceling a notice") != 0)
		return -1;
	if (sqlite3_changes(c->db) == 0)
		return 0;
	return canceled_event(c, id, t, reason, by, sequence_id, bounced, err) == 0 ? 1 : -1;
}

struct cancel_args {
	const char *id;
	int64_t apikey_id;
	const char *reason;
};

static int run_cancel(struct store_sqlite *s, struct job *j)
{
	struct cancel_args *a = j->arg;
	struct conn *c = s->w;
	sqlite3_stmt *st = stmt_get(c, S_CANCEL_GET, j->err);
	int r = st ? one_row(c, st, a->id, NULL, j->err) : -1;
	if (r <= 0)
		return r < 0 ? -1 : err_set(j->err, 404, "not-found", "no notice %s", a->id);
	int64_t key = sqlite3_column_int64(st, 0);
	char status[16];
	col_copy(st, 1, status, sizeof(status));
	stmt_done(st);
	if (a->apikey_id >= 0 && key != a->apikey_id)
		return err_set(j->err, 404, "not-found", "no notice %s", a->id);
	if (!strcmp(status, "canceled")) {
		j->ival = 1;
		return 0;
	}
	r = cancel_row(c, a->id, writer_time(s), a->reason, "api", NULL, NULL, j->err);
	if (r != 0)
		return r < 0 ? -1 : 0;
	if (!strcmp(status, "sending"))
		return err_set(j->err, 409, "already-sent",
			       "notice %s is being handed to SMTP right now; it can no longer be "
			       "canceled", a->id);
	return err_set(j->err, 409, "already-sent",
		       "notice %s was already handed to SMTP (status %s); it can no longer be "
		       "canceled", a->id, status);
}

static int sqlite_notice_cancel(struct store *base, const char *id, int64_t apikey_id, const char *reason,
			struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct cancel_args a = {id, apikey_id, reason};
	int64_t already = 0;
	int r = job_do(s, run_cancel, &a, err, &already);
	return r != 0 ? -1 : already ? 1 : 0;
}

/* Stops sequence sid (if active) and cancels its steps not yet handed to
 * SMTP. *n = steps canceled. 0 stopped now, 1 it was not active. */
static int store_sequence_stop_on(struct conn *c, const char *sid, int64_t t, const char *reason,
			    const char *bounced, int64_t *n, struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_SEQ_STOP, err);
	if (!st)
		return -1;
	if (bind_text(st, 1, sid) | bind_text(st, 2, reason) | sqlite3_bind_int64(st, 3, t))
		return bind_failed(c, st, err, "stopping a sequence");
	if (step_done(c, st, err, "stopping a sequence") != 0)
		return -1;
	if (sqlite3_changes(c->db) == 0)
		return 1;
	if (!(st = stmt_get(c, S_SEQ_PENDING, err)))
		return -1;
	if (bind_text(st, 1, sid))
		return bind_failed(c, st, err, "reading a sequence's steps");
	char(*ids)[27] = NULL;
	size_t k = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		ids = grow(ids, k, &cap, sizeof(*ids));
		col_copy(st, 0, ids[k++], 27);
	}
	int r = rc == SQLITE_DONE ? 0 : db_err(err, c, "reading a sequence's steps");
	stmt_done(st);
	for (size_t i = 0; i < k && r == 0; i++) {
		int got = cancel_row(c, ids[i], t, reason, "sequence", sid, bounced, err);
		if (got < 0)
			r = -1;
		else
			*n += got;
	}
	free(ids);
	return r;
}

/* After notice id bounced hard: the sequence it belongs to stops. */
static int store_sequence_stop_after_bounce(struct conn *c, const char *id, int64_t t,
				      struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_SEQ_OF, err);
	int r = st ? one_row(c, st, id, NULL, err) : -1;
	if (r <= 0)
		return r;
	char sid[32];
	col_copy(st, 0, sid, sizeof(sid));
	stmt_done(st);
	int64_t n = 0;
	if (store_sequence_stop_on(c, sid, t, "hard_bounce", id, &n, err) < 0)
		return -1;
	return 0;
}

struct seq_stop_args {
	const char *id;
	int64_t apikey_id;
	const char *reason;
	int64_t canceled;
};

static int run_sequence_stop(struct store_sqlite *s, struct job *j)
{
	struct seq_stop_args *a = j->arg;
	struct conn *c = s->w;
	sqlite3_stmt *st = stmt_get(c, S_SEQ_GET, j->err);
	int r = st ? one_row(c, st, a->id, NULL, j->err) : -1;
	if (r <= 0)
		return r < 0 ? -1 : err_set(j->err, 404, "not-found", "no sequence %s", a->id);
	int64_t key = sqlite3_column_int64(st, 1);
	stmt_done(st);
	if (a->apikey_id >= 0 && key != a->apikey_id)
		return err_set(j->err, 404, "not-found", "no sequence %s", a->id);
	r = store_sequence_stop_on(c, a->id, writer_time(s), a->reason, NULL, &a->canceled, j->err);
	if (r < 0)
		return -1;
	j->ival = r;
	return 0;
}

static int sqlite_sequence_stop(struct store *base, const char *id, int64_t apikey_id, const char *reason,
			int64_t *canceled, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct seq_stop_args a = {id, apikey_id, reason, 0};
	int64_t already = 0;
	int r = job_do(s, run_sequence_stop, &a, err, &already);
	if (canceled)
		*canceled = a.canceled;
	return r != 0 ? -1 : already ? 1 : 0;
}

struct seq_add_args {
	const struct sequence_new *q;
	char replay_id[32];
};

/* 1: the key's idempotency key was seen with this request (replay_id set);
 * 0: not seen; -1 with err (422 when seen with another request). */
static int store_sequence_idem(struct conn *c, const struct sequence_new *q, char replay_id[32],
			 struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_SEQ_IDEM, err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, q->apikey_id) | bind_text(st, 2, q->idempotency_key))
		return bind_failed(c, st, err, "reading an idempotency key");
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		int r = rc == SQLITE_DONE ? 0 : db_err(err, c, "reading an idempotency key");
		stmt_done(st);
		return r;
	}
	col_copy(st, 0, replay_id, 32);
	const void *h = sqlite3_column_blob(st, 1);
	int same = h && sqlite3_column_bytes(st, 1) == 32 && !memcmp(h, q->request_sha256, 32);
	stmt_done(st);
	if (!same)
		return err_set(err, 422, "idempotency-key-reused",
			       "this Idempotency-Key was used for sequence %s with another request; "
			       "nothing was stored", replay_id);
	return 1;
}

static int run_sequence_add(struct store_sqlite *s, struct job *j)
{
	struct seq_add_args *a = j->arg;
	const struct sequence_new *q = a->q;
	struct conn *c = s->w;
	if (q->idempotency_key) {
		int seen = store_sequence_idem(c, q, a->replay_id, j->err);
		if (seen != 0) {
			j->ival = seen > 0;
			return seen < 0 ? -1 : 0;
		}
	}
	struct accept_result res;
	memset(&res, 0, sizeof(res));
	int sup = q->n ? suppression_check(c, &q->steps[0], &res, j->err) : 0;
	if (sup != 0) {
		if (sup > 0 && j->err)
			*j->err = res.err;
		return -1;
	}
	sqlite3_stmt *st = stmt_get(c, S_SEQ_ADD, j->err);
	if (!st)
		return -1;
	if (bind_text(st, 1, q->id) | sqlite3_bind_int64(st, 2, q->apikey_id) |
	    bind_text(st, 3, q->request_json) | bind_text(st, 4, q->idempotency_key) |
	    bind_blob(st, 5, q->request_sha256, 32) | sqlite3_bind_int64(st, 6, writer_time(s)))
		return bind_failed(c, st, j->err, "storing a sequence");
	if (step_insert(c, st, j->err, "storing a sequence", q->id) != 0)
		return -1;
	for (size_t i = 0; i < q->n; i++) {
		char status[16];
		if (store_notice_insert(s, &q->steps[i], status, j->err) != 0)
			return -1;
	}
	return 0;
}

static int sqlite_sequence_add(struct store *base, const struct sequence_new *q, char replay_id[32],
		       struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct seq_add_args a;
	memset(&a, 0, sizeof(a));
	a.q = q;
	int64_t replay = 0;
	if (job_do(s, run_sequence_add, &a, err, &replay) != 0)
		return -1;
	if (replay)
		memcpy(replay_id, a.replay_id, 32);
	return replay ? 1 : 0;
}

static int store_sequence_get_on(struct conn *c, const char *id, int64_t apikey_id,
			   struct sequence_rec *out, struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_SEQ_GET, err);
	int r = st ? one_row(c, st, id, NULL, err) : -1;
	if (r <= 0)
		return r;
	col_copy(st, 0, out->id, sizeof(out->id));
	out->apikey_id = sqlite3_column_int64(st, 1);
	col_copy(st, 2, out->status, sizeof(out->status));
	out->reason = col_text(st, 3);
	out->request_json = col_text(st, 4);
	out->created_ms = sqlite3_column_int64(st, 5);
	out->stopped_ms = sqlite3_column_int64(st, 6);
	stmt_done(st);
	if (apikey_id >= 0 && out->apikey_id != apikey_id)
		return 0;
	if (!(st = stmt_get(c, S_SEQ_STEPS, err)))
		return -1;
	if (bind_text(st, 1, id))
		return bind_failed(c, st, err, "reading a sequence's steps");
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		out->steps = grow(out->steps, out->nsteps, &cap, sizeof(*out->steps));
		if (store_notice_read(st, NULL, &out->steps[out->nsteps], err) != 0) {
			stmt_done(st);
			return -1;
		}
		out->nsteps++;
	}
	r = rc == SQLITE_DONE ? 1 : db_err(err, c, "reading a sequence's steps");
	stmt_done(st);
	return r;
}

static int sqlite_sequence_get(struct store *base, const char *id, int64_t apikey_id,
		       struct sequence_rec *out, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	memset(out, 0, sizeof(*out));
	struct conn *c = reader_take(s, err);
	if (!c)
		return -1;
	int r = store_sequence_get_on(c, id, apikey_id, out, err);
	reader_give(s, c);
	if (r != 1)
		sequence_rec_free(out);
	return r;
}


/* ---- Webhooks (store.h "Webhooks", docs/store.md "The webhook outbox"). */

static void store_webhook_from_row(sqlite3_stmt *st, struct webhook_rec *w)
{
	memset(w, 0, sizeof(*w));
	col_copy(st, 0, w->id, sizeof(w->id));
	w->apikey_id = sqlite3_column_int64(st, 1);
	w->url = col_text(st, 2);
	w->events = col_text(st, 3);
	w->secret = (uint8_t *)col_bytes(st, 4, &w->secret_len);
	w->from_seq = sqlite3_column_int64(st, 5);
	w->created_ms = sqlite3_column_int64(st, 6);
	w->disabled_ms = sqlite3_column_int64(st, 7);
	w->disabled_reason = col_text(st, 8);
	w->old_secret_until_ms = sqlite3_column_int64(st, 9);
}

struct webhook_add_args {
	const struct webhook_rec *w;
	size_t max_per_key;
};

static int run_webhook_add(struct store_sqlite *s, struct job *j)
{
	const struct webhook_add_args *a = j->arg;
	const struct webhook_rec *w = a->w;
	sqlite3_stmt *st = stmt_get(s->w, S_WH_ADD, j->err);
	if (!st)
		return -1;
	if (bind_text(st, 1, w->id) | sqlite3_bind_int64(st, 2, w->apikey_id) |
	    bind_text(st, 3, w->url) | bind_text(st, 4, w->events) |
	    bind_blob(st, 5, w->secret, w->secret_len) |
	    sqlite3_bind_int64(st, 6, w->created_ms ? w->created_ms : clock_now_ms()) |
	    sqlite3_bind_int64(st, 7, (sqlite3_int64)a->max_per_key))
		return bind_failed(s->w, st, j->err, "adding a webhook");
	if (step_insert(s->w, st, j->err, "adding a webhook", NULL) != 0)
		return -1;
	if (sqlite3_changes(s->w->db) == 0)
		return err_set(j->err, 422, "too-many-webhooks",
			       "an API key has at most %zu webhooks; delete one first", a->max_per_key);
	return 0;
}

static int sqlite_webhook_add(struct store *base, const struct webhook_rec *w, size_t max_per_key,
		      struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct webhook_add_args a = {w, max_per_key};
	return job_do(s, run_webhook_add, &a, err, NULL);
}

static int store_webhook_list_on(struct conn *c, const char *id, int64_t apikey_id,
			   struct webhook_rec **out, size_t *n, struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, apikey_id < 0 ? S_WH_LIST_ALL : S_WH_LIST, err);
	if (!st)
		return -1;
	if (apikey_id >= 0 && sqlite3_bind_int64(st, 1, apikey_id))
		return bind_failed(c, st, err, "listing webhooks");
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (id && strcmp((const char *)sqlite3_column_text(st, 0), id) != 0)
			continue;
		*out = grow(*out, *n, &cap, sizeof(**out));
		store_webhook_from_row(st, &(*out)[(*n)++]);
	}
	int r = rc == SQLITE_DONE ? 0 : db_err(err, c, "listing webhooks");
	stmt_done(st);
	return r;
}

static int sqlite_webhook_list(struct store *base, int64_t apikey_id, struct webhook_rec **out, size_t *n,
		       struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	*out = NULL;
	*n = 0;
	struct conn *c = reader_take(s, err);
	if (!c)
		return -1;
	int r = store_webhook_list_on(c, NULL, apikey_id, out, n, err);
	reader_give(s, c);
	if (r != 0) {
		webhook_recs_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return r;
}

static int store_webhook_counts_on(struct conn *c, struct webhook_rec *w, struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_WH_COUNTS, err);
	if (!st)
		return -1;
	if (bind_text(st, 1, w->id))
		return bind_failed(c, st, err, "counting deliveries");
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *state = (const char *)sqlite3_column_text(st, 0);
		int64_t k = sqlite3_column_int64(st, 1);
		if (!strcmp(state, "pending"))
			w->pending = k;
		else if (!strcmp(state, "delivered"))
			w->delivered = k;
		else if (!strcmp(state, "failed"))
			w->failed = k;
		else if (!strcmp(state, "dropped"))
			w->dropped = k;
	}
	int r = rc == SQLITE_DONE ? 0 : db_err(err, c, "counting deliveries");
	stmt_done(st);
	return r;
}

/* A key has few webhooks: its list, filtered by id, is the look-up. */
static int sqlite_webhook_get(struct store *base, const char *id, int64_t apikey_id, struct webhook_rec *out,
		      struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	memset(out, 0, sizeof(*out));
	struct webhook_rec *w = NULL;
	size_t n = 0;
	struct conn *c = reader_take(s, err);
	if (!c)
		return -1;
	int r = store_webhook_list_on(c, id, apikey_id, &w, &n, err);
	if (r == 0 && n == 1)
		r = store_webhook_counts_on(c, &w[0], err);
	reader_give(s, c);
	if (r == 0 && n == 1) {
		*out = w[0];
		free(w);
		return 1;
	}
	webhook_recs_free(w, n);
	return r == 0 ? 0 : -1;
}

struct webhook_del_args {
	const char *id;
	int64_t apikey_id;
};

static int run_webhook_delete(struct store_sqlite *s, struct job *j)
{
	const struct webhook_del_args *a = j->arg;
	sqlite3_stmt *st = stmt_get(s->w, S_WH_DELETE, j->err);
	if (!st)
		return -1;
	if (bind_text(st, 1, a->id) | sqlite3_bind_int64(st, 2, a->apikey_id))
		return bind_failed(s->w, st, j->err, "deleting a webhook");
	if (step_done(s->w, st, j->err, "deleting a webhook") != 0)
		return -1;
	j->ival = sqlite3_changes(s->w->db);
	return 0;
}

static int sqlite_webhook_delete(struct store *base, const char *id, int64_t apikey_id,
			 struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct webhook_del_args a = {id, apikey_id};
	int64_t n = 0;
	if (job_do(s, run_webhook_delete, &a, err, &n) != 0)
		return -1;
	return n > 0 ? 1 : 0;
}

/* One integer from a statement without parameters; *null when NULL. */
static int int_query_on(struct conn *c, enum stmt_id id, int64_t *out, int *null,
			struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, id, err);
	if (!st)
		return -1;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		if (null)
			*null = sqlite3_column_type(st, 0) == SQLITE_NULL;
	}
	int r = rc == SQLITE_ROW ? 0 : db_err(err, c, "reading the webhook cursor");
	stmt_done(st);
	return r;
}

struct fanout {
	int64_t cursor;       /* as read: the write checks it did not move */
	int64_t upto;         /* the new cursor */
	int64_t *seqs;
	char (*ids)[32];
	size_t n, cap;
};

/* The range (lo, hi] to fan out this round: past the cursor and every
 * active webhook's from_seq, up to the last integrated event. 0 when there
 * is nothing to do. */
static int fanout_range(struct conn *c, size_t max, struct fanout *f, int64_t *lo,
			struct selo_err *err)
{
	int64_t min_from = 0;
	int none = 1;
	struct log_state ls;
	if (int_query_on(c, S_WH_CURSOR, &f->cursor, NULL, err) != 0 ||
	    int_query_on(c, S_WH_MIN_FROM, &min_from, &none, err) != 0 ||
	    log_state_on(c, &ls, err) != 0)
		return -1;
	if (none)
		return 0; /* no active webhook: nothing to deliver, nothing to remember */
	*lo = f->cursor > min_from ? f->cursor : min_from;
	f->upto = ls.last_seq < *lo + (int64_t)max ? ls.last_seq : *lo + (int64_t)max;
	return f->upto > *lo;
}

static int fanout_read(struct conn *c, size_t max, struct fanout *f, struct selo_err *err)
{
	int64_t lo = 0;
	int r = fanout_range(c, max, f, &lo, err);
	if (r <= 0)
		return r;
	sqlite3_stmt *st = stmt_get(c, S_WH_CANDIDATES, err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, lo) | sqlite3_bind_int64(st, 2, f->upto))
		return bind_failed(c, st, err, "reading events for webhooks");
	int rc;
	size_t cap_ids = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		f->seqs = grow(f->seqs, f->n, &f->cap, sizeof(*f->seqs));
		f->ids = grow(f->ids, f->n, &cap_ids, sizeof(*f->ids));
		f->seqs[f->n] = sqlite3_column_int64(st, 0);
		col_copy(st, 1, f->ids[f->n], sizeof(f->ids[0]));
		f->n++;
	}
	r = rc == SQLITE_DONE ? 1 : db_err(err, c, "reading events for webhooks");
	stmt_done(st);
	return r;
}

static int run_webhook_fanout(struct store_sqlite *s, struct job *j)
{
	const struct fanout *f = j->arg;
	struct conn *c = s->w;
	int64_t cur = 0;
	if (int_query_on(c, S_WH_CURSOR, &cur, NULL, j->err) != 0)
		return -1;
	if (cur != f->cursor)
		return err_set(j->err, 409, "conflict", "store: the webhook cursor moved meanwhile");
	sqlite3_stmt *st = stmt_get(c, S_WH_OUTBOX_ADD, j->err);
	if (!st)
		return -1;
	int64_t now = clock_now_ms();
	for (size_t i = 0; i < f->n; i++) {
		if (bind_text(st, 1, f->ids[i]) | sqlite3_bind_int64(st, 2, f->seqs[i]) |
		    sqlite3_bind_int64(st, 3, now))
			return bind_failed(c, st, j->err, "adding a webhook delivery");
		if (step_done(c, st, j->err, "adding a webhook delivery") != 0)
			return -1;
		j->ival += sqlite3_changes(c->db);
	}
	st = stmt_get(c, S_WH_CURSOR_SET, j->err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, f->upto))
		return bind_failed(c, st, j->err, "moving the webhook cursor");
	return step_done(c, st, j->err, "moving the webhook cursor");
}

static int sqlite_webhook_fanout(struct store *base, size_t max, size_t *added, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	*added = 0;
	struct fanout f;
	memset(&f, 0, sizeof(f));
	struct conn *c = reader_take(s, err);
	if (!c)
		return -1;
	int r = fanout_read(c, max ? max : 1, &f, err);
	reader_give(s, c);
	int64_t n = 0;
	if (r > 0)
		r = job_do(s, run_webhook_fanout, &f, err, &n);
	free(f.seqs);
	free(f.ids);
	*added = (size_t)n;
	return r < 0 ? -1 : 0;
}

static void delivery_from_row(sqlite3_stmt *st, struct webhook_delivery *d)
{
	memset(d, 0, sizeof(*d));
	d->outbox_id = sqlite3_column_int64(st, 0);
	col_copy(st, 1, d->webhook_id, sizeof(d->webhook_id));
	d->attempts = sqlite3_column_int(st, 2);
	d->url = col_text(st, 3);
	d->secret = (uint8_t *)col_bytes(st, 4, &d->secret_len);
	col_copy(st, 5, d->type, sizeof(d->type));
	col_copy(st, 6, d->notice_id, sizeof(d->notice_id));
	d->time_ms = sqlite3_column_int64(st, 7);
	d->entry = col_bytes(st, 8, &d->entry_len);
	d->reference = col_text(st, 9);
	d->log_index = sqlite3_column_int64(st, 10);
	d->old_secret = (uint8_t *)col_bytes(st, 11, &d->old_secret_len);
}

static int sqlite_webhook_active(struct store *base, char (**ids)[32], size_t *n, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	*ids = NULL;
	*n = 0;
	struct conn *c = reader_take(s, err);
	if (!c)
		return -1;
	sqlite3_stmt *st = stmt_get(c, S_WH_ACTIVE, err);
	int r = -1;
	if (st) {
		size_t cap = 0;
		int rc;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			*ids = grow(*ids, *n, &cap, sizeof(**ids));
			col_copy(st, 0, (*ids)[(*n)++], sizeof(**ids));
		}
		r = rc == SQLITE_DONE ? 0 : db_err(err, c, "listing active webhooks");
		stmt_done(st);
	}
	reader_give(s, c);
	if (r != 0) {
		free(*ids);
		*ids = NULL;
		*n = 0;
	}
	return r;
}

static int sqlite_webhook_due(struct store *base, const char *webhook_id, int64_t now_ms, size_t max,
		      struct webhook_delivery **out, size_t *n, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	*out = NULL;
	*n = 0;
	struct conn *c = reader_take(s, err);
	if (!c)
		return -1;
	sqlite3_stmt *st = stmt_get(c, S_WH_DUE, err);
	int r = -1;
	if (st && (sqlite3_bind_int64(st, 1, now_ms) | sqlite3_bind_int64(st, 2, (int64_t)max) |
		   bind_text(st, 3, webhook_id))) {
		bind_failed(c, st, err, "reading due webhook deliveries");
	} else if (st) {
		size_t cap = 0;
		int rc;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			*out = grow(*out, *n, &cap, sizeof(**out));
			delivery_from_row(st, &(*out)[(*n)++]);
		}
		r = rc == SQLITE_DONE ? 0 : db_err(err, c, "reading due webhook deliveries");
		stmt_done(st);
	}
	reader_give(s, c);
	if (r != 0) {
		webhook_deliveries_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return r;
}

struct webhook_results_args {
	const struct webhook_result *r;
	size_t n;
};

/* A 410: the webhook is disabled and its other pending deliveries dropped. */
static int store_webhook_gone(struct conn *c, const struct webhook_result *r, int64_t now,
			struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_WH_DISABLE, err);
	if (!st)
		return -1;
	if (bind_text(st, 1, r->webhook_id) | sqlite3_bind_int64(st, 2, now) |
	    bind_text(st, 3, "the endpoint answered 410 Gone"))
		return bind_failed(c, st, err, "disabling a webhook");
	if (step_done(c, st, err, "disabling a webhook") != 0)
		return -1;
	st = stmt_get(c, S_WH_DROP, err);
	if (!st)
		return -1;
	if (bind_text(st, 1, r->webhook_id) | sqlite3_bind_int64(st, 2, now))
		return bind_failed(c, st, err, "dropping webhook deliveries");
	return step_done(c, st, err, "dropping webhook deliveries");
}

static int store_webhook_result_one(struct conn *c, const struct webhook_result *r, int64_t now,
			      struct selo_err *err)
{
	static const char *const STATE[] = {"pending", "delivered", "failed", "dropped"};
	if ((unsigned)r->outcome > WEBHOOK_GONE)
		return err_set(err, 400, "invalid-request", "store: unknown webhook outcome");
	sqlite3_stmt *st = stmt_get(c, S_WH_RESULT, err);
	if (!st)
		return -1;
	int done = r->outcome != WEBHOOK_RETRY;
	if (sqlite3_bind_int64(st, 1, r->outbox_id) | bind_text(st, 2, STATE[r->outcome]) |
	    sqlite3_bind_int64(st, 3, done ? 0 : r->next_ms) | sqlite3_bind_int(st, 4, r->http_status) |
	    bind_text(st, 5, r->error) | sqlite3_bind_int64(st, 6, done ? now : 0))
		return bind_failed(c, st, err, "recording a webhook delivery");
	if (step_done(c, st, err, "recording a webhook delivery") != 0)
		return -1;
	return r->outcome == WEBHOOK_GONE ? store_webhook_gone(c, r, now, err) : 0;
}

static int run_webhook_results(struct store_sqlite *s, struct job *j)
{
	const struct webhook_results_args *a = j->arg;
	int64_t now = clock_now_ms();
	for (size_t i = 0; i < a->n; i++)
		if (store_webhook_result_one(s->w, &a->r[i], now, j->err) != 0)
			return -1;
	return 0;
}

static int sqlite_webhook_results(struct store *base, const struct webhook_result *r, size_t n,
			  struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct webhook_results_args a = {r, n};
	return n ? job_do(s, run_webhook_results, &a, err, NULL) : 0;
}

struct webhook_prune_args {
	int64_t before_ms;
	size_t max;
};

static int run_webhook_prune(struct store_sqlite *s, struct job *j)
{
	const struct webhook_prune_args *a = j->arg;
	sqlite3_stmt *st = stmt_get(s->w, S_WH_PRUNE, j->err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, a->before_ms) | sqlite3_bind_int64(st, 2, (sqlite3_int64)a->max))
		return bind_failed(s->w, st, j->err, "pruning webhook deliveries");
	if (step_done(s->w, st, j->err, "pruning webhook deliveries") != 0)
		return -1;
	j->ival = sqlite3_changes(s->w->db);
	/* Secrets past their overlap are deleted, not only ignored. */
	st = stmt_get(s->w, S_WH_OLD_DROP, j->err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, clock_now_ms()))
		return bind_failed(s->w, st, j->err, "dropping old webhook secrets");
	return step_done(s->w, st, j->err, "dropping old webhook secrets");
}

struct webhook_rotate_args {
	const char *id;
	int64_t apikey_id;
	const uint8_t *secret;
	size_t secret_len;
	int64_t old_until_ms;
};

static int run_webhook_rotate(struct store_sqlite *s, struct job *j)
{
	const struct webhook_rotate_args *a = j->arg;
	sqlite3_stmt *st = stmt_get(s->w, S_WH_ROTATE, j->err);
	if (!st)
		return -1;
	if (bind_text(st, 1, a->id) | sqlite3_bind_int64(st, 2, a->apikey_id) |
	    bind_blob(st, 3, a->secret, a->secret_len) | sqlite3_bind_int64(st, 4, a->old_until_ms))
		return bind_failed(s->w, st, j->err, "rotating a webhook secret");
	if (step_done(s->w, st, j->err, "rotating a webhook secret") != 0)
		return -1;
	j->ival = sqlite3_changes(s->w->db);
	return 0;
}

static int sqlite_webhook_rotate_secret(struct store *base, const char *id, int64_t apikey_id,
				const uint8_t *secret, size_t secret_len, int64_t old_until_ms,
				struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct webhook_rotate_args a = {id, apikey_id, secret, secret_len, old_until_ms};
	int64_t n = 0;
	if (job_do(s, run_webhook_rotate, &a, err, &n) != 0)
		return -1;
	return n > 0;
}

static int sqlite_webhook_prune(struct store *base, int64_t before_ms, size_t max, size_t *pruned,
			struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct webhook_prune_args a = {before_ms, max};
	int64_t n = 0;
	int r = job_do(s, run_webhook_prune, &a, err, &n);
	*pruned = r == 0 ? (size_t)n : 0;
	return r;
}

/* ---- Suppressions: reads and deletes (store.h "Suppressions"). */

static int suppression_list_on(struct conn *c, int64_t apikey_id, int64_t before, int limit,
			       struct suppression_rec **out, size_t *n, struct selo_err *err)
{
	sqlite3_stmt *st = stmt_get(c, S_SUP_LIST, err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, apikey_id) | sqlite3_bind_int64(st, 2, before) |
	    sqlite3_bind_int(st, 3, limit))
		return bind_failed(c, st, err, "listing suppressions");
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*out = grow(*out, *n, &cap, sizeof(**out));
		suppression_from_row(st, &(*out)[(*n)++]);
	}
	int r = rc == SQLITE_DONE ? 0 : db_err(err, c, "listing suppressions");
	stmt_done(st);
	return r;
}

static int sqlite_suppression_list(struct store *base, int64_t apikey_id, int64_t before, int limit,
			   struct suppression_rec **out, size_t *n, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	*out = NULL;
	*n = 0;
	if (limit < 1 || limit > LIST_MAX)
		return err_set(err, 400, "invalid-query", "limit must be 1..%d", LIST_MAX);
	struct conn *c = reader_take(s, err);
	if (!c)
		return -1;
	int r = suppression_list_on(c, apikey_id, before > 0 ? before : INT64_MAX, limit, out, n,
				    err);
	reader_give(s, c);
	if (r != 0) {
		suppression_recs_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return r;
}

struct suppression_del_args {
	int64_t apikey_id;
	const char *key;
};

static int run_suppression_delete(struct store_sqlite *s, struct job *j)
{
	const struct suppression_del_args *a = j->arg;
	sqlite3_stmt *st = stmt_get(s->w, S_SUP_DELETE, j->err);
	if (!st)
		return -1;
	if (sqlite3_bind_int64(st, 1, a->apikey_id) | bind_text(st, 2, a->key))
		return bind_failed(s->w, st, j->err, "deleting a suppression");
	if (step_done(s->w, st, j->err, "deleting a suppression") != 0)
		return -1;
	j->ival = sqlite3_changes(s->w->db);
	return 0;
}

static int sqlite_suppression_delete(struct store *base, int64_t apikey_id, const char *address,
			     struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	char key[SUPPRESS_ADDR_MAX];
	if (!address || suppress_address_key(address, key, sizeof(key)) != 0)
		return 0; /* no suppression has an address this long */
	struct suppression_del_args a = {apikey_id, key};
	int64_t n = 0;
	if (job_do(s, run_suppression_delete, &a, err, &n) != 0)
		return -1;
	return n > 0 ? 1 : 0;
}

/* ---- Statistics (store.h "Statistics", docs/stats.md; migration 9). The
 * follower's statements are prepared for each call rather than cached per
 * connection: it runs a few times a second, and a query once per request,
 * so preparing costs microseconds against their milliseconds. */

#define STATS_CHUNK_MAX 1024 /* delay samples per stats_delays row: bounds a row's rewrite */
#define STATS_COLS                                                                         \
	"accepted,delivered,deferred,failed,canceled,opened_human,opened_proxy,"            \
	"opened_scanner,clicked_human,clicked_proxy,clicked_scanner,read_confirmed,"        \
	"open_hits_human,open_hits_proxy,open_hits_scanner,click_hits_human,"               \
	"click_hits_proxy,click_hits_scanner"
#define STATS_FACT_COLS                                                                    \
	"notice_id,apikey_id,dim,day,flags,accepted_ms,delivered_ms,open_ms,read_ms,"        \
	"open_hits_human,open_hits_proxy,open_hits_scanner,click_hits_human,"               \
	"click_hits_proxy,click_hits_scanner"

static const char STATS_SQL_CURSOR[] =
	"SELECT coalesce((SELECT seq FROM stats_cursor WHERE id = 1), 0),"
	" coalesce((SELECT max(seq) FROM events), 0)";
static const char STATS_SQL_EVENTS[] =
	"SELECT seq, notice_id, type, time_ms, entry FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2";
static const char STATS_SQL_FACT_GET[] =
	"SELECT " STATS_FACT_COLS " FROM stats_notices WHERE notice_id = ?1";
static const char STATS_SQL_INFO[] =
	"SELECT apikey_id, template, segment, tags_json FROM notices WHERE id = ?1";
static const char STATS_SQL_DIM_ADD[] =
	"INSERT INTO stats_dims(dkey, apikey_id, template, segment, tags_json)"
	" VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(dkey) DO NOTHING";
static const char STATS_SQL_DIM_ID[] = "SELECT id FROM stats_dims WHERE dkey = ?1";
static const char STATS_SQL_CURSOR_SET[] =
	"INSERT INTO stats_cursor(id, seq) VALUES(1, ?1) ON CONFLICT(id) DO UPDATE SET seq = ?1";
static const char STATS_SQL_FACT_SET[] =
	"INSERT OR REPLACE INTO stats_notices(" STATS_FACT_COLS ")"
	" VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)";
static const char STATS_SQL_ROLLUP_ADD[] =
	"INSERT INTO stats_rollup(dim, day, " STATS_COLS ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7,"
	" ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)"
	" ON CONFLICT(dim, day) DO UPDATE SET accepted = accepted + ?3,"
	" delivered = delivered + ?4, deferred = deferred + ?5, failed = failed + ?6,"
	" canceled = canceled + ?7, opened_human = opened_human + ?8,"
	" opened_proxy = opened_proxy + ?9, opened_scanner = opened_scanner + ?10,"
	" clicked_human = clicked_human + ?11, clicked_proxy = clicked_proxy + ?12,"
	" clicked_scanner = clicked_scanner + ?13, read_confirmed = read_confirmed + ?14,"
	" open_hits_human = open_hits_human + ?15, open_hits_proxy = open_hits_proxy + ?16,"
	" open_hits_scanner = open_hits_scanner + ?17, click_hits_human = click_hits_human + ?18,"
	" click_hits_proxy = click_hits_proxy + ?19, click_hits_scanner = click_hits_scanner + ?20";
static const char STATS_SQL_CHUNK_LAST[] =
	"SELECT id, chunk, vals FROM stats_delays WHERE dim = ?1 AND day = ?2 AND kind = ?3"
	" ORDER BY chunk DESC LIMIT 1";
static const char STATS_SQL_CHUNK_SET[] = "UPDATE stats_delays SET vals = ?2 WHERE id = ?1";
static const char STATS_SQL_CHUNK_ADD[] =
	"INSERT INTO stats_delays(dim, day, kind, chunk, vals) VALUES(?1, ?2, ?3, ?4, ?5)";
static const char STATS_SQL_DIMS[] =
	"SELECT id, apikey_id, template, segment, tags_json FROM stats_dims"
	" WHERE ?1 < 0 OR apikey_id = ?1 ORDER BY id";
static const char STATS_SQL_ROLLUPS[] =
	"SELECT r.dim, r.day, " STATS_COLS " FROM stats_dims d JOIN stats_rollup r"
	" ON r.dim = d.id AND r.day BETWEEN ?2 AND ?3 WHERE d.apikey_id = ?1";
static const char STATS_SQL_DELAYS[] =
	"SELECT x.dim, x.day, x.kind, x.vals FROM stats_dims d JOIN stats_delays x"
	" ON x.dim = d.id AND x.day BETWEEN ?2 AND ?3 WHERE d.apikey_id = ?1";
static const char STATS_SQL_FACTS[] =
	"SELECT " STATS_FACT_COLS " FROM stats_notices"
	" WHERE apikey_id = ?1 AND accepted_ms >= ?2 AND accepted_ms < ?3";
static const char STATS_SQL_CURSOR_TIME[] =
	"SELECT coalesce((SELECT time_ms FROM events WHERE seq = ?1), 0)";

static sqlite3_stmt *store_stats_prep(struct conn *c, const char *sql, struct selo_err *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v3(c->db, sql, -1, 0, &st, NULL) != SQLITE_OK) {
		err_set(err, 500, "storage-failed", "store: preparing \"%.48s\": %s", sql,
			sqlite3_errmsg(c->db));
		sqlite3_finalize(st);
		return NULL;
	}
	return st;
}

/* Ends a read transaction begun on a reader; its statements are finalized. */
static void store_stats_read_end(struct store_sqlite *s, struct conn *c, int began)
{
	if (began)
		sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
	reader_give(s, c);
}

static int store_stats_cursor_on(struct conn *c, int64_t *cursor, int64_t *last, struct selo_err *err)
{
	sqlite3_stmt *st = store_stats_prep(c, STATS_SQL_CURSOR, err);
	if (!st)
		return -1;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*cursor = sqlite3_column_int64(st, 0);
		*last = sqlite3_column_int64(st, 1);
	}
	int r = rc == SQLITE_ROW ? 0 : db_err(err, c, "reading the statistics cursor");
	sqlite3_finalize(st);
	return r;
}

static int sqlite_stats_events(struct store *base, size_t max,
		       int (*fn)(void *arg, const struct stats_event *e), void *arg,
		       int64_t *cursor, int64_t *last, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	*cursor = *last = 0;
	struct conn *c = reader_take(s, err);
	if (!c)
		return -1;
	int began = sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
	int r = store_stats_cursor_on(c, cursor, last, err);
	sqlite3_stmt *st = r == 0 ? store_stats_prep(c, STATS_SQL_EVENTS, err) : NULL;
	if (!st) {
		store_stats_read_end(s, c, began);
		return -1;
	}
	sqlite3_bind_int64(st, 1, *cursor);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
	int rc;
	struct stats_event e;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&e, 0, sizeof(e));
		e.seq = sqlite3_column_int64(st, 0);
		col_copy(st, 1, e.notice_id, sizeof(e.notice_id));
		col_copy(st, 2, e.type, sizeof(e.type));
		e.time_ms = sqlite3_column_int64(st, 3);
		e.entry = sqlite3_column_blob(st, 4);
		e.entry_len = (size_t)sqlite3_column_bytes(st, 4);
		if (fn(arg, &e) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	if (rc != SQLITE_DONE)
		r = db_err(err, c, "reading events for the statistics");
	sqlite3_finalize(st);
	store_stats_read_end(s, c, began);
	return r;
}

static void store_stats_fact_from_row(sqlite3_stmt *st, struct stats_fact *f)
{
	col_copy(st, 0, f->notice_id, sizeof(f->notice_id));
	f->apikey_id = sqlite3_column_int64(st, 1);
	f->dim = sqlite3_column_int64(st, 2);
	f->day = (int32_t)sqlite3_column_int64(st, 3);
	f->flags = (uint32_t)sqlite3_column_int64(st, 4);
	f->accepted_ms = sqlite3_column_int64(st, 5);
	f->delivered_ms = sqlite3_column_int64(st, 6);
	f->open_ms = sqlite3_column_int64(st, 7);
	f->read_ms = sqlite3_column_int64(st, 8);
	for (int k = 0; k < STATS_NHITS; k++)
		f->hits[k] = sqlite3_column_int64(st, 9 + k);
}

static int sqlite_stats_facts_get(struct store *base, struct stats_fact *f, size_t n, int *found,
			  struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct conn *c = reader_take(s, err);
	if (!c)
		return -1;
	int began = sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
	sqlite3_stmt *st = store_stats_prep(c, STATS_SQL_FACT_GET, err);
	int r = st ? 0 : -1;
	for (size_t i = 0; r == 0 && i < n; i++) {
		found[i] = 0;
		if (bind_text(st, 1, f[i].notice_id) != SQLITE_OK) {
			r = db_err(err, c, "reading statistics facts");
			break;
		}
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			store_stats_fact_from_row(st, &f[i]);
			found[i] = 1;
		} else if (rc != SQLITE_DONE) {
			r = db_err(err, c, "reading statistics facts");
		}
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	store_stats_read_end(s, c, began);
	return r;
}

static int sqlite_stats_notice_info(struct store *base, const char *const *ids, size_t n,
			    struct stats_notice_info *out, int *found, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct conn *c = reader_take(s, err);
	if (!c)
		return -1;
	sqlite3_stmt *st = store_stats_prep(c, STATS_SQL_INFO, err);
	int r = st ? 0 : -1;
	for (size_t i = 0; r == 0 && i < n; i++) {
		memset(&out[i], 0, sizeof(out[i]));
		found[i] = 0;
		if (bind_text(st, 1, ids[i]) != SQLITE_OK) {
			r = db_err(err, c, "reading a notice for the statistics");
			break;
		}
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			out[i].apikey_id = sqlite3_column_int64(st, 0);
			out[i].template_name = col_text(st, 1);
			out[i].segment = col_text(st, 2);
			out[i].tags_json = col_text(st, 3);
			found[i] = 1;
		} else if (rc != SQLITE_DONE) {
			r = db_err(err, c, "reading a notice for the statistics");
		}
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	reader_give(s, c);
	return r;
}

struct stats_dim_args {
	const char *dkey, *template_name, *segment, *tags_json;
	int64_t apikey_id;
};

static int run_stats_dim(struct store_sqlite *s, struct job *j)
{
	const struct stats_dim_args *a = j->arg;
	sqlite3_stmt *add = store_stats_prep(s->w, STATS_SQL_DIM_ADD, j->err);
	sqlite3_stmt *get = add ? store_stats_prep(s->w, STATS_SQL_DIM_ID, j->err) : NULL;
	int r = -1;
	if (get && bind_text(add, 1, a->dkey) == SQLITE_OK &&
	    sqlite3_bind_int64(add, 2, a->apikey_id) == SQLITE_OK &&
	    bind_text(add, 3, a->template_name) == SQLITE_OK &&
	    bind_text(add, 4, a->segment) == SQLITE_OK && bind_text(add, 5, a->tags_json) == SQLITE_OK &&
	    sqlite3_step(add) == SQLITE_DONE && bind_text(get, 1, a->dkey) == SQLITE_OK &&
	    sqlite3_step(get) == SQLITE_ROW) {
		j->ival = sqlite3_column_int64(get, 0);
		r = 0;
	} else if (get) {
		db_err(j->err, s->w, "storing a statistics dimension");
	}
	sqlite3_finalize(add);
	sqlite3_finalize(get);
	return r;
}

static int sqlite_stats_dim(struct store *base, const char *dkey, int64_t apikey_id,
		    const char *template_name, const char *segment, const char *tags_json,
		    int64_t *id, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	struct stats_dim_args a = {dkey, template_name, segment, tags_json, apikey_id};
	return job_do(s, run_stats_dim, &a, err, id);
}

static void le64_put(uint8_t *p, int64_t v)
{
	uint64_t u = (uint64_t)v;
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(u >> (8 * i));
}

static int64_t le64_get(const uint8_t *p)
{
	uint64_t u = 0;
	for (int i = 0; i < 8; i++)
		u |= (uint64_t)p[i] << (8 * i);
	return (int64_t)u;
}

/* The statements of one apply, prepared once for the whole batch. */
enum { SA_CURSOR, SA_CURSOR_SET, SA_FACT, SA_ROLLUP, SA_LAST, SA_SET, SA_ADD, SA_N };

/* Appends v[0..n) to the (dim, day, kind) samples: fills the last chunk,
 * then adds new ones. */
static int store_stats_delays_add(struct conn *c, sqlite3_stmt **st, const struct stats_delta *d,
			    int kind, struct selo_err *err)
{
	const int64_t *v = d->delays[kind];
	size_t n = d->ndelays[kind];
	int64_t row = 0, chunk = -1;
	size_t have = 0;
	uint8_t *buf = xcalloc(STATS_CHUNK_MAX, 8);
	sqlite3_stmt *q = st[SA_LAST];
	sqlite3_bind_int64(q, 1, d->dim);
	sqlite3_bind_int64(q, 2, d->day);
	sqlite3_bind_int(q, 3, kind);
	int rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		row = sqlite3_column_int64(q, 0);
		chunk = sqlite3_column_int64(q, 1);
		size_t len = (size_t)sqlite3_column_bytes(q, 2);
		have = len / 8 <= STATS_CHUNK_MAX ? len / 8 : STATS_CHUNK_MAX;
		if (have)
			memcpy(buf, sqlite3_column_blob(q, 2), have * 8);
	}
	sqlite3_reset(q);
	int r = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_err(err, c, "reading delay samples");
	while (r == 0 && n > 0) {
		if (have == STATS_CHUNK_MAX || chunk < 0) {
			row = 0; /* a new chunk */
			chunk++;
			have = 0;
		}
		size_t take = STATS_CHUNK_MAX - have < n ? STATS_CHUNK_MAX - have : n;
		for (size_t i = 0; i < take; i++)
			le64_put(buf + 8 * (have + i), v[i]);
		have += take, v += take, n -= take;
		sqlite3_stmt *w = row ? st[SA_SET] : st[SA_ADD];
		if (row) {
			sqlite3_bind_int64(w, 1, row);
			sqlite3_bind_blob(w, 2, buf, (int)(have * 8), SQLITE_TRANSIENT);
		} else {
			sqlite3_bind_int64(w, 1, d->dim);
			sqlite3_bind_int64(w, 2, d->day);
			sqlite3_bind_int(w, 3, kind);
			sqlite3_bind_int64(w, 4, chunk);
			sqlite3_bind_blob(w, 5, buf, (int)(have * 8), SQLITE_TRANSIENT);
		}
		if (sqlite3_step(w) != SQLITE_DONE)
			r = db_err(err, c, "storing delay samples");
		else if (!row)
			row = sqlite3_last_insert_rowid(c->db);
		sqlite3_reset(w);
	}
	free(buf);
	return r;
}

static int store_stats_fact_write(struct conn *c, sqlite3_stmt *st, const struct stats_fact *f,
			    struct selo_err *err)
{
	if (bind_text(st, 1, f->notice_id) | sqlite3_bind_int64(st, 2, f->apikey_id) |
	    sqlite3_bind_int64(st, 3, f->dim) | sqlite3_bind_int64(st, 4, f->day) |
	    sqlite3_bind_int64(st, 5, f->flags) | sqlite3_bind_int64(st, 6, f->accepted_ms) |
	    sqlite3_bind_int64(st, 7, f->delivered_ms) | sqlite3_bind_int64(st, 8, f->open_ms) |
	    sqlite3_bind_int64(st, 9, f->read_ms))
		return db_err(err, c, "storing statistics facts");
	for (int k = 0; k < STATS_NHITS; k++)
		if (sqlite3_bind_int64(st, 10 + k, f->hits[k]) != SQLITE_OK)
			return db_err(err, c, "storing statistics facts");
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : db_err(err, c, "storing statistics facts");
}

static int store_stats_rollup_write(struct conn *c, sqlite3_stmt *st, const struct stats_delta *d,
			      struct selo_err *err)
{
	sqlite3_bind_int64(st, 1, d->dim);
	sqlite3_bind_int64(st, 2, d->day);
	for (int k = 0; k < SC_COUNT; k++)
		sqlite3_bind_int64(st, 3 + k, d->c[k]);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : db_err(err, c, "storing statistics rollups");
}

static int store_stats_apply_on(struct conn *c, sqlite3_stmt **st, const struct stats_batch *b,
			  struct selo_err *err)
{
	int rc = sqlite3_step(st[SA_CURSOR]);
	if (rc != SQLITE_ROW)
		return db_err(err, c, "reading the statistics cursor");
	if (sqlite3_column_int64(st[SA_CURSOR], 0) != b->cursor_from)
		return err_set(err, 409, "stats-cursor-moved",
			       "store: the statistics cursor moved (another process counted these "
			       "events)");
	sqlite3_reset(st[SA_CURSOR]);
	for (size_t i = 0; i < b->nfacts; i++)
		if (store_stats_fact_write(c, st[SA_FACT], &b->facts[i], err) != 0)
			return -1;
	for (size_t i = 0; i < b->ndeltas; i++) {
		if (store_stats_rollup_write(c, st[SA_ROLLUP], &b->deltas[i], err) != 0)
			return -1;
		for (int k = 0; k < SD_COUNT; k++)
			if (b->deltas[i].ndelays[k] && store_stats_delays_add(c, st, &b->deltas[i], k, err))
				return -1;
	}
	sqlite3_bind_int64(st[SA_CURSOR_SET], 1, b->cursor_to);
	rc = sqlite3_step(st[SA_CURSOR_SET]);
	return rc == SQLITE_DONE ? 0 : db_err(err, c, "moving the statistics cursor");
}

static int run_stats_apply(struct store_sqlite *s, struct job *j)
{
	static const char *const sql[SA_N] = {
		[SA_CURSOR] = STATS_SQL_CURSOR, [SA_CURSOR_SET] = STATS_SQL_CURSOR_SET,
		[SA_FACT] = STATS_SQL_FACT_SET, [SA_ROLLUP] = STATS_SQL_ROLLUP_ADD,
		[SA_LAST] = STATS_SQL_CHUNK_LAST, [SA_SET] = STATS_SQL_CHUNK_SET,
		[SA_ADD] = STATS_SQL_CHUNK_ADD,
	};
	sqlite3_stmt *st[SA_N] = {0};
	int r = 0;
	for (int i = 0; i < SA_N && r == 0; i++)
		if (!(st[i] = store_stats_prep(s->w, sql[i], j->err)))
			r = -1;
	if (r == 0)
		r = store_stats_apply_on(s->w, st, j->arg, j->err);
	for (int i = 0; i < SA_N; i++)
		sqlite3_finalize(st[i]);
	return r;
}

static int sqlite_stats_apply(struct store *base, const struct stats_batch *b, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	return job_do(s, run_stats_apply, (void *)b, err, NULL);
}

/* The scan's rows of one key, on a reader inside its read transaction. */
static int store_stats_scan_key(struct conn *c, sqlite3_stmt **st, struct stats_scan *q, int64_t key,
			  struct selo_err *err)
{
	int rc = SQLITE_DONE;
	int64_t cnt[SC_COUNT];
	if (q->day_from <= q->day_to) {
		sqlite3_stmt *r = st[1];
		sqlite3_bind_int64(r, 1, key);
		sqlite3_bind_int64(r, 2, q->day_from);
		sqlite3_bind_int64(r, 3, q->day_to);
		while ((rc = sqlite3_step(r)) == SQLITE_ROW) {
			for (int k = 0; k < SC_COUNT; k++)
				cnt[k] = sqlite3_column_int64(r, 2 + k);
			q->rollup(q->arg, sqlite3_column_int64(r, 0),
				  (int32_t)sqlite3_column_int64(r, 1), cnt);
		}
		sqlite3_reset(r);
		if (rc != SQLITE_DONE)
			return db_err(err, c, "reading statistics rollups");
		sqlite3_stmt *d = st[2];
		sqlite3_bind_int64(d, 1, key);
		sqlite3_bind_int64(d, 2, q->day_from);
		sqlite3_bind_int64(d, 3, q->day_to);
		int64_t *v = xcalloc(STATS_CHUNK_MAX, sizeof(*v));
		while ((rc = sqlite3_step(d)) == SQLITE_ROW) {
			const uint8_t *p = sqlite3_column_blob(d, 3);
			size_t n = (size_t)sqlite3_column_bytes(d, 3) / 8;
			int kind = sqlite3_column_int(d, 2);
			if (n > STATS_CHUNK_MAX || kind < 0 || kind >= SD_COUNT)
				continue; /* not a row this code wrote */
			for (size_t i = 0; i < n; i++)
				v[i] = le64_get(p + 8 * i);
			q->delays(q->arg, sqlite3_column_int64(d, 0), (int32_t)sqlite3_column_int64(d, 1),
				  kind, v, n);
		}
		free(v);
		sqlite3_reset(d);
		if (rc != SQLITE_DONE)
			return db_err(err, c, "reading statistics delays");
	}
	struct stats_fact f;
	for (int i = 0; i < q->nranges; i++) {
		sqlite3_stmt *x = st[3];
		sqlite3_bind_int64(x, 1, key);
		sqlite3_bind_int64(x, 2, q->ms_from[i]);
		sqlite3_bind_int64(x, 3, q->ms_to[i]);
		while ((rc = sqlite3_step(x)) == SQLITE_ROW) {
			store_stats_fact_from_row(x, &f);
			q->fact(q->arg, &f);
		}
		sqlite3_reset(x);
		if (rc != SQLITE_DONE)
			return db_err(err, c, "reading statistics facts");
	}
	return 0;
}

static int store_stats_scan_on(struct conn *c, sqlite3_stmt **st, struct stats_scan *q,
			 struct selo_err *err)
{
	if (store_stats_cursor_on(c, &q->cursor, &q->last_seq, err) != 0)
		return -1;
	sqlite3_bind_int64(st[4], 1, q->cursor);
	if (sqlite3_step(st[4]) == SQLITE_ROW)
		q->cursor_time_ms = sqlite3_column_int64(st[4], 0);
	sqlite3_bind_int64(st[0], 1, q->apikey_id);
	int64_t *keys = NULL;
	size_t nkeys = 0, cap = 0;
	int rc;
	struct stats_dim d;
	while ((rc = sqlite3_step(st[0])) == SQLITE_ROW) {
		d.id = sqlite3_column_int64(st[0], 0);
		d.apikey_id = sqlite3_column_int64(st[0], 1);
		d.template_name = (const char *)sqlite3_column_text(st[0], 2);
		d.segment = (const char *)sqlite3_column_text(st[0], 3);
		d.tags_json = (const char *)sqlite3_column_text(st[0], 4);
		q->dim(q->arg, &d);
		size_t i = 0;
		while (i < nkeys && keys[i] != d.apikey_id)
			i++;
		if (i == nkeys) {
			keys = grow(keys, nkeys, &cap, sizeof(*keys));
			keys[nkeys++] = d.apikey_id;
		}
	}
	int r = rc == SQLITE_DONE ? 0 : db_err(err, c, "reading statistics dimensions");
	for (size_t i = 0; r == 0 && i < nkeys; i++)
		r = store_stats_scan_key(c, st, q, keys[i], err);
	free(keys);
	return r;
}

static int sqlite_stats_scan(struct store *base, struct stats_scan *q, struct selo_err *err)
{
	struct store_sqlite *s = store_sqlite_of(base);
	static const char *const sql[5] = {STATS_SQL_DIMS, STATS_SQL_ROLLUPS, STATS_SQL_DELAYS,
					   STATS_SQL_FACTS, STATS_SQL_CURSOR_TIME};
	struct conn *c = reader_take(s, err);
	if (!c)
		return -1;
	int began = sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
	sqlite3_stmt *st[5] = {0};
	int r = 0;
	for (int i = 0; i < 5 && r == 0; i++)
		if (!(st[i] = store_stats_prep(c, sql[i], err)))
			r = -1;
	if (r == 0)
		r = store_stats_scan_on(c, st, q, err);
	for (int i = 0; i < 5; i++)
		sqlite3_finalize(st[i]);
	store_stats_read_end(s, c, began);
	return r;
}

static const struct store_ops store_sqlite_ops = {
	.name = "sqlite",
	.close = sqlite_close,
	.schema_version = sqlite_schema_version,
	.apikey_add = sqlite_apikey_add,
	.apikey_find = sqlite_apikey_find,
	.apikey_list = sqlite_apikey_list,
	.apikey_revoke = sqlite_apikey_revoke,
	.notices_accept = sqlite_notices_accept,
	.notice_get = sqlite_notice_get,
	.notice_list = sqlite_notice_list,
	.notice_scan = sqlite_notice_scan,
	.events_of = sqlite_events_of,
	.event_first = sqlite_event_first,
	.confirmations_of = sqlite_confirmations_of,
	.events_after = sqlite_events_after,
	.attachments_of = sqlite_attachments_of,
	.message_get = sqlite_message_get,
	.claim_due = sqlite_claim_due,
	.next_due = sqlite_next_due,
	.notices_sealed = sqlite_notices_sealed,
	.delivery_results = sqlite_delivery_results,
	.events_add = sqlite_events_add,
	.hits_add = sqlite_hits_add,
	.folds_close = sqlite_folds_close,
	.notice_bounced = sqlite_notice_bounced,
	.notice_cancel = sqlite_notice_cancel,
	.sequence_add = sqlite_sequence_add,
	.sequence_get = sqlite_sequence_get,
	.sequence_stop = sqlite_sequence_stop,
	.suppression_list = sqlite_suppression_list,
	.suppression_delete = sqlite_suppression_delete,
	.token_lookup = sqlite_token_lookup,
	.notice_brief = sqlite_notice_brief,
	.recover_inflight = sqlite_recover_inflight,
	.counts = sqlite_counts,
	.wal_limit = sqlite_wal_limit,
	.wal_restarts = sqlite_wal_restarts,
	.log_state = sqlite_log_state,
	.log_append = sqlite_log_append,
	.log_tile = sqlite_log_tile,
	.log_entries = sqlite_log_entries,
	.log_unindexed = sqlite_log_unindexed,
	.checkpoint_add = sqlite_checkpoint_add,
	.checkpoint_timestamp = sqlite_checkpoint_timestamp,
	.checkpoint_find = sqlite_checkpoint_find,
	.checkpoints_untimestamped = sqlite_checkpoints_untimestamped,
	.checkpoints_all = sqlite_checkpoints_all,
	.disclosures_of = sqlite_disclosures_of,
	.ping = sqlite_ping,
	.health = sqlite_health,
	.webhook_add = sqlite_webhook_add,
	.webhook_list = sqlite_webhook_list,
	.webhook_get = sqlite_webhook_get,
	.webhook_delete = sqlite_webhook_delete,
	.webhook_fanout = sqlite_webhook_fanout,
	.webhook_rotate_secret = sqlite_webhook_rotate_secret,
	.webhook_active = sqlite_webhook_active,
	.webhook_due = sqlite_webhook_due,
	.webhook_results = sqlite_webhook_results,
	.webhook_prune = sqlite_webhook_prune,
	.stats_events = sqlite_stats_events,
	.stats_facts_get = sqlite_stats_facts_get,
	.stats_notice_info = sqlite_stats_notice_info,
	.stats_dim = sqlite_stats_dim,
	.stats_apply = sqlite_stats_apply,
	.stats_scan = sqlite_stats_scan,
};
