/* store_pg_log.c: the PostgreSQL backend's tracker hits and their folds, the log's storage (state, tiles, index runs), checkpoints
 * (store_pg_int.h; docs/scale.md). SCAFFOLDING: an op not written yet
 * answers 501 (pg_not_yet). */
#include <string.h>
#include "selo/store.h"
#include "store_pg_int.h"

static const char *const pg_log_sql_text[] = {NULL};
const struct pg_sql_table pg_sql_log = {pg_log_sql_text, 0};

int pg_hits_add(struct store *s, const struct hit_new *h, size_t n, const struct fold_rule *rule, size_t *folded, struct selo_err *err)
{
	(void)s;
	(void)h;
	(void)n;
	(void)rule;
	(void)folded;
	return pg_not_yet("hits_add", err);
}

int pg_folds_close(struct store *s, int64_t now_ms, size_t max, fold_fields_fn fields, void *arg, size_t *closed, struct selo_err *err)
{
	(void)s;
	(void)now_ms;
	(void)max;
	(void)fields;
	(void)arg;
	(void)closed;
	return pg_not_yet("folds_close", err);
}

int pg_log_state(struct store *s, struct log_state *out, struct selo_err *err)
{
	(void)s;
	(void)out;
	return pg_not_yet("log_state", err);
}

int pg_log_append(struct store *s, const struct log_append *a, struct selo_err *err)
{
	(void)s;
	(void)a;
	return pg_not_yet("log_append", err);
}

int pg_log_tile(struct store *s, int level, uint64_t index, struct buf *data, struct selo_err *err)
{
	(void)s;
	(void)level;
	(void)index;
	(void)data;
	return pg_not_yet("log_tile", err);
}

int pg_log_entries(struct store *s, uint64_t from, size_t max, struct event_rec **out, size_t *n, struct selo_err *err)
{
	(void)s;
	(void)from;
	(void)max;
	(void)out;
	(void)n;
	return pg_not_yet("log_entries", err);
}

int pg_log_unindexed(struct store *s, int64_t last_seq, int64_t *count, struct selo_err *err)
{
	(void)s;
	(void)last_seq;
	(void)count;
	return pg_not_yet("log_unindexed", err);
}

int pg_checkpoint_add(struct store *s, uint64_t size, const char *note, int64_t created_ms, struct selo_err *err)
{
	(void)s;
	(void)size;
	(void)note;
	(void)created_ms;
	return pg_not_yet("checkpoint_add", err);
}

int pg_checkpoint_timestamp(struct store *s, uint64_t size, const uint8_t *tst, size_t len, int64_t tst_time_ms, struct selo_err *err)
{
	(void)s;
	(void)size;
	(void)tst;
	(void)len;
	(void)tst_time_ms;
	return pg_not_yet("checkpoint_timestamp", err);
}

int pg_checkpoint_find(struct store *s, uint64_t min_size, int timestamped, struct checkpoint_rec *out, struct selo_err *err)
{
	(void)s;
	(void)min_size;
	(void)timestamped;
	(void)out;
	return pg_not_yet("checkpoint_find", err);
}

int pg_checkpoints_untimestamped(struct store *s, size_t max, struct checkpoint_rec **out, size_t *n, struct selo_err *err)
{
	(void)s;
	(void)max;
	(void)out;
	(void)n;
	return pg_not_yet("checkpoints_untimestamped", err);
}

int pg_checkpoints_all(struct store *s, struct checkpoint_rec **out, size_t *n, struct selo_err *err)
{
	(void)s;
	(void)out;
	(void)n;
	return pg_not_yet("checkpoints_all", err);
}
