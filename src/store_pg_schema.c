/* store_pg_schema.c: the PostgreSQL backend's schema, as an ordered list
 * of migrations, and the code that applies them (docs/scale.md "Schema").
 *
 * Migration 1 is the SQLite schema as of its migration 12 (store_sqlite.c)
 * written as PostgreSQL DDL: bigint for integers and millisecond times,
 * bytea for blobs, text for text; bigserial where a sequence is fine (ids
 * nobody orders by commit). Left out: SQLite's legacy events.log_index
 * (written only before SQLite migration 3 and never read since; log_ranges
 * holds every index) and WITHOUT ROWID. Migration 2 adds what several
 * nodes need: leases on the work that is claimed, the nodes seen, and the
 * keys every node must share.
 *
 * All pending migrations run in one transaction that first takes
 * pg_advisory_xact_lock(PGSTORE_MIGRATION_LOCK): nodes starting at once
 * queue on the lock, and each one, once it holds it, reads the version
 * anew (read committed: a new snapshot per statement) and finds nothing
 * left to do. A database newer than the binary is refused before anything
 * is written. To change the schema, append a migration; never edit one
 * that has shipped.
 *
 * Events and the order they become visible in (issue 19, "the classic
 * trap"): events.seq is not drawn from its sequence. pg_event_add
 * (store_pg.c) takes seq and time from the single row of event_clock,
 * whose lock the writing transaction keeps until it ends, so seq follows
 * commit order (a reader of "seq > cursor" never skips a row that commits
 * late) and time never goes backwards along seq whatever the nodes' clocks
 * say. The price, that event-writing transactions serialize on that row,
 * and the way out (a clock per notice and a read horizon) are in
 * docs/scale.md "The schema".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "selo/clock.h"
#include "store_pg_int.h"

static const struct pgstore_migration PG_MIGRATIONS[] = {
	{1, "initial schema (SQLite schema 12)",
	 "CREATE TABLE apikeys("
	 " id bigserial PRIMARY KEY,"
	 " name text NOT NULL,"
	 " hash bytea NOT NULL UNIQUE,"
	 " prefix text NOT NULL,"
	 " created_ms bigint NOT NULL,"
	 " revoked_ms bigint NOT NULL DEFAULT 0);"
	 "CREATE TABLE notices("
	 " id text PRIMARY KEY,"
	 " apikey_id bigint NOT NULL,"
	 " status text NOT NULL,"
	 " to_addr text NOT NULL,"
	 " template text,"
	 " reference text,"
	 " segment text,"
	 " tags_json text,"
	 " payload_json text NOT NULL,"
	 " salt bytea NOT NULL,"
	 " attempts bigint NOT NULL DEFAULT 0,"
	 " created_ms bigint NOT NULL,"
	 " updated_ms bigint NOT NULL,"
	 " next_attempt_ms bigint NOT NULL,"
	 " message_id text,"
	 " sha256 text,"
	 " last_error text,"
	 " send_at_ms bigint NOT NULL DEFAULT 0,"
	 " sequence_id text,"
	 " step bigint NOT NULL DEFAULT 0);"
	 "CREATE INDEX notices_by_key ON notices(apikey_id, id);"
	 "CREATE INDEX notices_by_reference ON notices(reference, id);"
	 "CREATE INDEX notices_by_status ON notices(status, id);"
	 "CREATE INDEX notices_due ON notices(status, next_attempt_ms, id);"
	 "CREATE INDEX notices_by_sequence ON notices(sequence_id, step) WHERE sequence_id IS NOT NULL;"
	 "CREATE TABLE attachments("
	 " notice_id text NOT NULL REFERENCES notices(id),"
	 " idx bigint NOT NULL,"
	 " filename text NOT NULL,"
	 " content_type text NOT NULL,"
	 " data bytea NOT NULL,"
	 " PRIMARY KEY(notice_id, idx));"
	 "CREATE TABLE messages("
	 " notice_id text PRIMARY KEY REFERENCES notices(id),"
	 " eml bytea NOT NULL,"
	 " sha256 text NOT NULL,"
	 " created_ms bigint NOT NULL);"
	 "CREATE TABLE tokens("
	 " token text PRIMARY KEY,"
	 " notice_id text NOT NULL REFERENCES notices(id),"
	 " kind text NOT NULL,"
	 " link bigint NOT NULL DEFAULT 0,"
	 " url text);"
	 "CREATE INDEX tokens_by_notice ON tokens(notice_id);"
	 "CREATE TABLE idempotency("
	 " apikey_id bigint NOT NULL,"
	 " key text NOT NULL,"
	 " request_sha256 bytea NOT NULL,"
	 " notice_id text NOT NULL REFERENCES notices(id),"
	 " created_ms bigint NOT NULL,"
	 " PRIMARY KEY(apikey_id, key));"
	 /* seq: see "Events and the order they become visible in" above. */
	 "CREATE TABLE events("
	 " seq bigserial PRIMARY KEY,"
	 " notice_id text NOT NULL REFERENCES notices(id),"
	 " type text NOT NULL,"
	 " time_ms bigint NOT NULL,"
	 " entry bytea NOT NULL);"
	 "CREATE INDEX events_by_notice ON events(notice_id, seq);"
	 "CREATE INDEX events_read_confirmed ON events(notice_id, seq) WHERE type = 'read_confirmed';"
	 "CREATE TABLE disclosures("
	 " notice_id text NOT NULL REFERENCES notices(id),"
	 " commitment text NOT NULL,"
	 " value bytea NOT NULL,"
	 " UNIQUE(notice_id, commitment));"
	 "CREATE TABLE log_state("
	 " id bigint PRIMARY KEY CHECK (id = 1),"
	 " size bigint NOT NULL,"
	 " root bytea NOT NULL,"
	 " last_seq bigint NOT NULL);"
	 "CREATE TABLE log_tiles("
	 " level bigint NOT NULL,"
	 " idx bigint NOT NULL,"
	 " data bytea NOT NULL,"
	 " PRIMARY KEY(level, idx));"
	 "CREATE TABLE log_ranges("
	 " first_index bigint PRIMARY KEY,"
	 " first_seq bigint NOT NULL UNIQUE,"
	 " n bigint NOT NULL CHECK (n > 0));"
	 "CREATE TABLE checkpoints("
	 " size bigint PRIMARY KEY,"
	 " note text NOT NULL,"
	 " created_ms bigint NOT NULL,"
	 " tst bytea,"
	 " tst_time_ms bigint);"
	 "CREATE INDEX checkpoints_untimestamped ON checkpoints(size) WHERE tst IS NULL;"
	 "CREATE TABLE webhooks("
	 " id text PRIMARY KEY,"
	 " apikey_id bigint NOT NULL,"
	 " url text NOT NULL,"
	 " events text NOT NULL,"
	 " secret bytea NOT NULL,"
	 " from_seq bigint NOT NULL,"
	 " created_ms bigint NOT NULL,"
	 " disabled_ms bigint NOT NULL DEFAULT 0,"
	 " disabled_reason text,"
	 " old_secret bytea,"
	 " old_secret_until_ms bigint NOT NULL DEFAULT 0);"
	 "CREATE INDEX webhooks_by_key ON webhooks(apikey_id, id);"
	 "CREATE TABLE webhook_outbox("
	 " id bigserial PRIMARY KEY,"
	 " webhook_id text NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,"
	 " seq bigint NOT NULL,"
	 " state text NOT NULL DEFAULT 'pending',"
	 " attempts bigint NOT NULL DEFAULT 0,"
	 " next_ms bigint NOT NULL,"
	 " last_status bigint NOT NULL DEFAULT 0,"
	 " last_error text,"
	 " created_ms bigint NOT NULL,"
	 " done_ms bigint NOT NULL DEFAULT 0,"
	 " UNIQUE(webhook_id, seq));"
	 "CREATE INDEX webhook_outbox_due ON webhook_outbox(next_ms, id) WHERE state = 'pending';"
	 "CREATE INDEX webhook_outbox_due_by_webhook ON webhook_outbox(webhook_id, next_ms, id)"
	 " WHERE state = 'pending';"
	 "CREATE INDEX webhook_outbox_done ON webhook_outbox(done_ms) WHERE state != 'pending';"
	 "CREATE TABLE webhook_cursor("
	 " id bigint PRIMARY KEY CHECK (id = 1),"
	 " seq bigint NOT NULL);"
	 "CREATE TABLE suppressions("
	 " id bigserial PRIMARY KEY,"
	 " apikey_id bigint NOT NULL,"
	 " address text NOT NULL,"
	 " address_key text NOT NULL,"
	 " enhanced text NOT NULL,"
	 " reason text NOT NULL,"
	 " notice_id text NOT NULL,"
	 " created_ms bigint NOT NULL,"
	 " UNIQUE(apikey_id, address_key));"
	 "CREATE INDEX suppressions_by_key ON suppressions(apikey_id, id);"
	 "CREATE TABLE sequences("
	 " id text PRIMARY KEY,"
	 " apikey_id bigint NOT NULL,"
	 " status text NOT NULL,"
	 " reason text,"
	 " request_json text NOT NULL,"
	 " idempotency_key text,"
	 " request_sha256 bytea,"
	 " created_ms bigint NOT NULL,"
	 " stopped_ms bigint NOT NULL DEFAULT 0);"
	 "CREATE INDEX sequences_by_key ON sequences(apikey_id, id);"
	 "CREATE UNIQUE INDEX sequences_idempotency ON sequences(apikey_id, idempotency_key)"
	 " WHERE idempotency_key IS NOT NULL;"
	 "CREATE TABLE stats_cursor("
	 " id bigint PRIMARY KEY CHECK (id = 1),"
	 " seq bigint NOT NULL);"
	 "CREATE TABLE stats_dims("
	 " id bigserial PRIMARY KEY,"
	 " dkey text NOT NULL UNIQUE,"
	 " apikey_id bigint NOT NULL,"
	 " template text,"
	 " segment text,"
	 " tags_json text);"
	 "CREATE INDEX stats_dims_by_key ON stats_dims(apikey_id, id);"
	 "CREATE TABLE stats_notices("
	 " notice_id text PRIMARY KEY,"
	 " apikey_id bigint NOT NULL,"
	 " dim bigint NOT NULL,"
	 " day bigint NOT NULL,"
	 " flags bigint NOT NULL,"
	 " accepted_ms bigint NOT NULL,"
	 " delivered_ms bigint NOT NULL,"
	 " open_ms bigint NOT NULL,"
	 " read_ms bigint NOT NULL,"
	 " open_hits_human bigint NOT NULL, open_hits_proxy bigint NOT NULL,"
	 " open_hits_scanner bigint NOT NULL, click_hits_human bigint NOT NULL,"
	 " click_hits_proxy bigint NOT NULL, click_hits_scanner bigint NOT NULL);"
	 "CREATE INDEX stats_notices_by_time ON stats_notices(apikey_id, accepted_ms);"
	 "CREATE TABLE stats_rollup("
	 " dim bigint NOT NULL,"
	 " day bigint NOT NULL,"
	 " accepted bigint NOT NULL, delivered bigint NOT NULL, deferred bigint NOT NULL,"
	 " failed bigint NOT NULL, canceled bigint NOT NULL,"
	 " opened_human bigint NOT NULL, opened_proxy bigint NOT NULL,"
	 " opened_scanner bigint NOT NULL, clicked_human bigint NOT NULL,"
	 " clicked_proxy bigint NOT NULL, clicked_scanner bigint NOT NULL,"
	 " read_confirmed bigint NOT NULL,"
	 " open_hits_human bigint NOT NULL, open_hits_proxy bigint NOT NULL,"
	 " open_hits_scanner bigint NOT NULL, click_hits_human bigint NOT NULL,"
	 " click_hits_proxy bigint NOT NULL, click_hits_scanner bigint NOT NULL,"
	 " PRIMARY KEY(dim, day));"
	 "CREATE TABLE stats_delays("
	 " id bigserial PRIMARY KEY,"
	 " dim bigint NOT NULL,"
	 " day bigint NOT NULL,"
	 " kind bigint NOT NULL,"
	 " chunk bigint NOT NULL,"
	 " vals bytea NOT NULL,"
	 " UNIQUE(dim, day, kind, chunk));"
	 "CREATE TABLE hit_tally("
	 " notice_id text PRIMARY KEY,"
	 " full_opened_human bigint NOT NULL, full_opened_proxy bigint NOT NULL,"
	 " full_opened_scanner bigint NOT NULL, full_clicked_human bigint NOT NULL,"
	 " full_clicked_proxy bigint NOT NULL, full_clicked_scanner bigint NOT NULL,"
	 " summaries bigint NOT NULL,"
	 " fold_first_ms bigint NOT NULL, fold_last_ms bigint NOT NULL,"
	 " fold_due_ms bigint NOT NULL,"
	 " fold_opened_human bigint NOT NULL, fold_opened_proxy bigint NOT NULL,"
	 " fold_opened_scanner bigint NOT NULL, fold_clicked_human bigint NOT NULL,"
	 " fold_clicked_proxy bigint NOT NULL, fold_clicked_scanner bigint NOT NULL,"
	 " fold_addresses bigint NOT NULL);"
	 "CREATE INDEX hit_tally_due ON hit_tally(fold_due_ms) WHERE fold_due_ms > 0;"
	 "CREATE TABLE hit_fold_addrs("
	 " notice_id text NOT NULL,"
	 " addr bytea NOT NULL,"
	 " PRIMARY KEY(notice_id, addr));"},
	/* Several nodes on one database (issue 19). Work a node claims (a
	 * notice to send, a webhook delivery) carries the claiming node and
	 * the time its lease ends; a claim takes rows FOR UPDATE SKIP LOCKED
	 * whose claimed_by is NULL or whose lease_until (ms) has passed, so a
	 * dead node's work returns after store.lease. nodes lists the nodes
	 * that ran (the schema each one wrote, when it was last seen);
	 * store_meta what all of them must agree on (the log's verifier key,
	 * the token key's fingerprint: pgstore_meta_check). */
	{2, "several nodes: leases, nodes, store_meta",
	 "ALTER TABLE notices ADD COLUMN claimed_by text;"
	 "ALTER TABLE notices ADD COLUMN lease_until bigint NOT NULL DEFAULT 0;"
	 "CREATE INDEX notices_leased ON notices(lease_until) WHERE claimed_by IS NOT NULL;"
	 "ALTER TABLE webhook_outbox ADD COLUMN claimed_by text;"
	 "ALTER TABLE webhook_outbox ADD COLUMN lease_until bigint NOT NULL DEFAULT 0;"
	 "CREATE INDEX webhook_outbox_leased ON webhook_outbox(lease_until)"
	 " WHERE claimed_by IS NOT NULL;"
	 "CREATE TABLE nodes("
	 " name text PRIMARY KEY,"
	 " started_ms bigint NOT NULL,"
	 " seen_ms bigint NOT NULL,"
	 " schema_version bigint NOT NULL);"
	 "CREATE TABLE store_meta("
	 " key text PRIMARY KEY,"
	 " value text NOT NULL,"
	 " set_ms bigint NOT NULL,"
	 " set_by text NOT NULL);"
	 /* The event clock (store_pg.c pg_event_add): one row whose lock every
	  * transaction that adds events takes first, so events get their seq in
	  * commit order and their time never goes backwards. */
	 "CREATE TABLE event_clock("
	 " id bigint PRIMARY KEY CHECK (id = 1),"
	 " seq bigint NOT NULL,"
	 " time_ms bigint NOT NULL);"
	 "INSERT INTO event_clock VALUES(1, 0, 0);"
	 /* store_pg_read.c. Notice ids compare byte by byte (collation "C"),
	  * as in SQLite, whatever the database's locale: paging by `after`
	  * and the order of lists must not depend on it (a locale may sort
	  * "AA" or "Z" elsewhere). row_id: a stable order of the table for
	  * store_notice_scan's integer cursor (ctid moves on update).
	  * disclosures.id: their insertion order (SQLite's rowid). */
	 "ALTER TABLE notices ALTER COLUMN id TYPE text COLLATE \"C\";"
	 "ALTER TABLE notices ADD COLUMN row_id bigserial;"
	 "CREATE UNIQUE INDEX notices_by_row ON notices(row_id);"
	 "ALTER TABLE disclosures ADD COLUMN id bigserial;"
	 /* store_pg_log.c: the log_state row exists from the start (the empty
	  * tree, root SHA-256("")), so that every log_append can lock it and
	  * compare (its fence), the first one included. */
	 "INSERT INTO log_state VALUES(1, 0,"
	 " decode('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 'hex'), 0);"},
};
#define PG_NMIGRATIONS (sizeof(PG_MIGRATIONS) / sizeof(PG_MIGRATIONS[0]))

_Static_assert(sizeof(PG_MIGRATIONS) / sizeof(PG_MIGRATIONS[0]) == PGSTORE_SCHEMA_VERSION,
	       "PGSTORE_SCHEMA_VERSION is the last migration's version");

static const char PG_MIGRATIONS_TABLE[] =
	"CREATE TABLE IF NOT EXISTS schema_migrations("
	" version bigint PRIMARY KEY, name text NOT NULL, applied_ms bigint NOT NULL,"
	" applied_by text NOT NULL)";

/* The lock as a literal: it is a constant, never input. */
#define PG_LOCK_SQL_(k) "SELECT pg_advisory_xact_lock(" #k ")"
#define PG_LOCK_SQL(k) PG_LOCK_SQL_(k)

static int pgschema_version_read(struct pgconn *c, int64_t deadline, int *version,
				 enum pg_fail *fail, struct selo_err *err)
{
	PGresult *r = pgconn_exec(c, PG_S_MIG_VERSION, 0, NULL, NULL, NULL, deadline, fail,
				  "reading the schema version", err);
	if (!r)
		return -1;
	*version = atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	return 0;
}

static int pgschema_record(struct pgconn *c, const struct pgstore_migration *m,
			   const char *node, int64_t deadline, enum pg_fail *fail,
			   struct selo_err *err)
{
	char v[16], ms[24];
	snprintf(v, sizeof v, "%d", m->version);
	snprintf(ms, sizeof ms, "%lld", (long long)clock_now_ms());
	const char *vals[] = {v, m->name, ms, node};
	PGresult *r = pgconn_exec(c, PG_S_MIG_RECORD, 4, vals, NULL, NULL, deadline, fail,
				  "recording a migration", err);
	if (!r)
		return -1;
	PQclear(r);
	return 0;
}

/* A database written by a newer Selo: its tables may mean things this
 * binary does not know, so it must not write them. */
static int pgschema_refuse_newer(int have, enum pg_fail *fail, struct selo_err *err)
{
	*fail = PG_FAILED;
	return err_set(err, 500, "store-schema-newer",
		       "store: the database's schema is version %d, newer than this selo's %d: "
		       "run the selo that migrated it (or a newer one), never an older one",
		       have, PGSTORE_SCHEMA_VERSION);
}

struct pgschema_arg {
	const char *node;
	int applied;
};

static int pgschema_migrate_txn(struct pgconn *c, void *arg, int64_t deadline,
				enum pg_fail *fail, struct selo_err *err)
{
	struct pgschema_arg *a = arg;
	int have = 0;
	a->applied = 0;
	if (pgconn_simple(c, PG_LOCK_SQL(PGSTORE_MIGRATION_LOCK), deadline, fail,
			  "waiting for the migration lock", err) != 0 ||
	    pgconn_simple(c, PG_MIGRATIONS_TABLE, deadline, fail, "creating schema_migrations",
			  err) != 0 ||
	    pgschema_version_read(c, deadline, &have, fail, err) != 0)
		return -1;
	if (have > PGSTORE_SCHEMA_VERSION)
		return pgschema_refuse_newer(have, fail, err);
	for (size_t i = 0; i < PG_NMIGRATIONS; i++) {
		const struct pgstore_migration *m = &PG_MIGRATIONS[i];
		if (m->version <= have)
			continue;
		char doing[96];
		snprintf(doing, sizeof doing, "migration %d (%s)", m->version, m->name);
		if (pgconn_simple(c, m->sql, deadline, fail, doing, err) != 0 ||
		    pgschema_record(c, m, a->node, deadline, fail, err) != 0)
			return -1;
		a->applied++;
	}
	return 0;
}

int pgschema_migrate(struct pgstore *s, const char *node, int *applied, struct selo_err *err)
{
	struct pgschema_arg a = {.node = node};
	enum pg_fail fail;
	if (pgstore_txn(s, pgschema_migrate_txn, &a, &fail, err) != 0)
		return -1;
	if (applied)
		*applied = a.applied;
	return 0;
}

int pgstore_schema_version(struct pgstore *s, int *version, struct selo_err *err)
{
	enum pg_fail fail;
	int64_t deadline = pgstore_deadline(s);
	struct pgconn *c = pgstore_acquire(s, deadline, err);
	if (!c)
		return -1;
	int rc = pgschema_version_read(c, deadline, version, &fail, err);
	pgstore_release(s, c);
	return rc;
}
