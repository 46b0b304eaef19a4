/* store_sqlite_schema.c: the SQLite backend's schema and SQL text: the
 * migrations, applied in order at open (sqlite_migrate), and the SQL of
 * every statement the connections cache (sqlite_stmt_sql, indexed by enum
 * stmt_id). A query plan's reason is written beside its SQL. Errors: a
 * failed migration is rolled back and reported with SQLite's message (500). */
#include "store_sqlite_int.h"

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

const char *const sqlite_stmt_sql[S_COUNT] = {
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

/* ---- Migrations. */

static int schema_version_read(struct conn *c, int *out, struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_MIG_VERSION, err);
	if (!st)
		return -1;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int(st, 0);
	int r = rc == SQLITE_ROW ? 0 : sqlite_db_err(err, c, "reading the schema version");
	sqlite_stmt_done(st);
	return r;
}

static int migration_record(struct conn *c, const struct migration *m, struct selo_err *err)
{
	sqlite3_stmt *st = sqlite_stmt_get(c, S_MIG_RECORD, err);
	if (!st)
		return -1;
	if (sqlite3_bind_int(st, 1, m->version) | sqlite_bind_text(st, 2, m->name) |
	    sqlite3_bind_int64(st, 3, clock_now_ms()))
		return sqlite_bind_failed(c, st, err, "recording a migration");
	return sqlite_step_done(c, st, err, "recording a migration");
}

static int migration_apply(struct conn *c, const struct migration *m, struct selo_err *err)
{
	if (sqlite_run_simple(c, S_BEGIN, err, "starting a migration") != 0)
		return -1;
	int have = 0;
	/* Re-read under the write lock: another process may have migrated first. */
	if (schema_version_read(c, &have, err) != 0)
		goto undo;
	if (have >= m->version)
		return sqlite_run_simple(c, S_COMMIT, err, "ending a migration");
	char *msg = NULL;
	if (sqlite3_exec(c->db, m->sql, NULL, NULL, &msg) != SQLITE_OK) {
		err_set(err, 500, "storage-failed", "store: migration %d (%s): %s", m->version,
			m->name, msg ? msg : sqlite3_errmsg(c->db));
		sqlite3_free(msg);
		goto undo;
	}
	if (migration_record(c, m, err) != 0)
		goto undo;
	if (sqlite_run_simple(c, S_COMMIT, err, "committing a migration") == 0)
		return 0;
undo:
	if (!sqlite3_get_autocommit(c->db))
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

int sqlite_migrate(struct store_sqlite *s, struct selo_err *err)
{
	struct conn *c = s->w;
	if (sqlite3_exec(c->db, MIGRATIONS_TABLE, NULL, NULL, NULL) != SQLITE_OK)
		return sqlite_db_err(err, c, "creating schema_migrations");
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
