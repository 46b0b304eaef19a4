/* store_pg_stats.c: the PostgreSQL backend's statistics tables
 * (store_pg_int.h; docs/scale.md). SCAFFOLDING: an op not written yet
 * answers 501 (pg_not_yet). */
#include <string.h>
#include "selo/store.h"
#include "store_pg_int.h"

static const char *const pg_stats_sql_text[] = {NULL};
const struct pg_sql_table pg_sql_stats = {pg_stats_sql_text, 0};

int pg_stats_events(struct store *s, size_t max, int (*fn)(void *arg, const struct stats_event *e), void *arg, int64_t *cursor, int64_t *last, struct selo_err *err)
{
	(void)s;
	(void)max;
	(void)fn;
	(void)arg;
	(void)cursor;
	(void)last;
	return pg_not_yet("stats_events", err);
}

int pg_stats_facts_get(struct store *s, struct stats_fact *f, size_t n, int *found, struct selo_err *err)
{
	(void)s;
	(void)f;
	(void)n;
	(void)found;
	return pg_not_yet("stats_facts_get", err);
}

int pg_stats_notice_info(struct store *s, const char *const *ids, size_t n, struct stats_notice_info *out, int *found, struct selo_err *err)
{
	(void)s;
	(void)ids;
	(void)n;
	(void)out;
	(void)found;
	return pg_not_yet("stats_notice_info", err);
}

int pg_stats_dim(struct store *s, const char *dkey, int64_t apikey_id, const char *template_name, const char *segment, const char *tags_json, int64_t *id, struct selo_err *err)
{
	(void)s;
	(void)dkey;
	(void)apikey_id;
	(void)template_name;
	(void)segment;
	(void)tags_json;
	(void)id;
	return pg_not_yet("stats_dim", err);
}

int pg_stats_apply(struct store *s, const struct stats_batch *b, struct selo_err *err)
{
	(void)s;
	(void)b;
	return pg_not_yet("stats_apply", err);
}

int pg_stats_scan(struct store *s, struct stats_scan *q, struct selo_err *err)
{
	(void)s;
	(void)q;
	return pg_not_yet("stats_scan", err);
}
