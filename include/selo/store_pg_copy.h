/* store_pg_copy.h: moving a SQLite installation to PostgreSQL with its log
 * intact (`selo store copy`, docs/scale.md "Moving from SQLite: selo store
 * copy"). Every table's rows are copied byte for byte (ids, seqs, times,
 * entries, tiles, checkpoints, webhooks and their sealed secrets,
 * statistics, suppressions, sequences, idempotency keys) from one read
 * transaction of the SQLite file into one PostgreSQL transaction, then
 * checked before COMMIT: all or nothing. */
#ifndef SELO_STORE_PG_COPY_H
#define SELO_STORE_PG_COPY_H
#include <stddef.h>
#include <stdint.h>
#include "selo/err.h"
#include "selo/store.h"

/* The SQLite schema version this binary writes (store_sqlite_schema.c's
 * last migration): the only one store_pg_copy reads. */
#define PGCOPY_SQLITE_SCHEMA 12

/* What was copied. Table names point at static strings. */
#define PGCOPY_MAX_TABLES 32
struct pgcopy_report {
	size_t ntables;
	struct pgcopy_table_count {
		const char *table;
		int64_t rows;
	} tables[PGCOPY_MAX_TABLES];
	uint64_t log_size;        /* leaves integrated into the log (log_state.size) */
	uint8_t root[32];         /* its root */
	int64_t last_seq;         /* the last event integrated */
	int64_t events;           /* events copied (some may not be integrated yet) */
	uint64_t checkpoint_size; /* the latest checkpoint's tree size (0: none) */
	char *checkpoint;         /* its signed note; NULL when there is none */
	char *target;             /* the target's connection string, password redacted */
};

/* Copies the SQLite database at sqlite_path (which nothing may be writing:
 * the caller stops `selo serve`) into the PostgreSQL database `to` names
 * (to->backend must be "postgres"; migrations are applied first), which
 * must hold no Selo data. Refuses a SQLite file whose schema is not
 * PGCOPY_SQLITE_SCHEMA (409 schema-mismatch: run this selo on it once),
 * a target that is not empty (409 target-not-empty, naming the tables
 * that hold rows), a value PostgreSQL cannot hold as SQLite does (422
 * copy-refused, naming the table and column). A failed check after the
 * rows are in (counts, log state, latest checkpoint) is 500
 * copy-mismatch. On any failure nothing is committed. A database that is
 * down: 503 store-unavailable. Never prints the URL's password. 0 and *out
 * (free with pgcopy_report_free), or -1 with err. */
int store_pg_copy(const char *sqlite_path, const struct store_params *to,
		  struct pgcopy_report *out, struct selo_err *err);
void pgcopy_report_free(struct pgcopy_report *r);

#endif
