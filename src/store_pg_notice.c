/* store_pg_notice.c: the PostgreSQL backend's accepting and changing notices (accept, claim, seal, results, events, bounces, cancels, sequences, suppressions, API keys, recovery)
 * (store_pg_int.h; docs/scale.md). SCAFFOLDING: an op not written yet
 * answers 501 (pg_not_yet). */
#include <string.h>
#include "selo/store.h"
#include "store_pg_int.h"

static const char *const pg_notice_sql_text[] = {NULL};
const struct pg_sql_table pg_sql_notice = {pg_notice_sql_text, 0};

int pg_notices_accept(struct store *s, const struct notice_new *ns, size_t n, struct accept_result *results, struct selo_err *err)
{
	(void)s;
	(void)ns;
	(void)n;
	(void)results;
	return pg_not_yet("notices_accept", err);
}

int pg_claim_due(struct store *s, int64_t now_ms, size_t max, struct notice_rec **out, size_t *n, struct selo_err *err)
{
	(void)s;
	(void)now_ms;
	(void)max;
	(void)out;
	(void)n;
	return pg_not_yet("claim_due", err);
}

int pg_notices_sealed(struct store *s, const struct seal_rec *r, size_t n, struct selo_err *err)
{
	(void)s;
	(void)r;
	(void)n;
	return pg_not_yet("notices_sealed", err);
}

int pg_delivery_results(struct store *s, const struct result_rec *r, size_t n, struct selo_err *err)
{
	(void)s;
	(void)r;
	(void)n;
	return pg_not_yet("delivery_results", err);
}

int pg_events_add(struct store *s, const struct event_new *ev, size_t n, struct selo_err *err)
{
	(void)s;
	(void)ev;
	(void)n;
	return pg_not_yet("events_add", err);
}

int pg_notice_bounced(struct store *s, const char *id, json_t *fields, const struct disclosures *disc, const char *last_error, struct selo_err *err)
{
	(void)s;
	(void)id;
	(void)fields;
	(void)disc;
	(void)last_error;
	return pg_not_yet("notice_bounced", err);
}

int pg_notice_cancel(struct store *s, const char *id, int64_t apikey_id, const char *reason, struct selo_err *err)
{
	(void)s;
	(void)id;
	(void)apikey_id;
	(void)reason;
	return pg_not_yet("notice_cancel", err);
}

int pg_sequence_add(struct store *s, const struct sequence_new *q, char replay_id[32], struct selo_err *err)
{
	(void)s;
	(void)q;
	(void)replay_id;
	return pg_not_yet("sequence_add", err);
}

int pg_sequence_stop(struct store *s, const char *id, int64_t apikey_id, const char *reason, int64_t *canceled, struct selo_err *err)
{
	(void)s;
	(void)id;
	(void)apikey_id;
	(void)reason;
	(void)canceled;
	return pg_not_yet("sequence_stop", err);
}

int pg_suppression_delete(struct store *s, int64_t apikey_id, const char *address, struct selo_err *err)
{
	(void)s;
	(void)apikey_id;
	(void)address;
	return pg_not_yet("suppression_delete", err);
}

int pg_recover_inflight(struct store *s, struct selo_err *err)
{
	(void)s;
	return pg_not_yet("recover_inflight", err);
}

int pg_apikey_add(struct store *s, const char *name, const uint8_t hash[32], const char *prefix, int64_t *id_out, struct selo_err *err)
{
	(void)s;
	(void)name;
	(void)hash;
	(void)prefix;
	(void)id_out;
	return pg_not_yet("apikey_add", err);
}

int pg_apikey_revoke(struct store *s, int64_t id, struct selo_err *err)
{
	(void)s;
	(void)id;
	return pg_not_yet("apikey_revoke", err);
}
