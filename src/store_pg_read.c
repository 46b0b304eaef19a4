/* store_pg_read.c: the PostgreSQL backend's reads of notices, events, attachments, messages, keys, sequences, suppressions, tokens and counts
 * (store_pg_int.h; docs/scale.md). SCAFFOLDING: an op not written yet
 * answers 501 (pg_not_yet). */
#include <string.h>
#include "selo/store.h"
#include "store_pg_int.h"

static const char *const pg_read_sql_text[] = {NULL};
const struct pg_sql_table pg_sql_read = {pg_read_sql_text, 0};

int pg_apikey_find(struct store *s, const uint8_t hash[32], struct apikey *out, struct selo_err *err)
{
	(void)s;
	(void)hash;
	(void)out;
	return pg_not_yet("apikey_find", err);
}

int pg_apikey_list(struct store *s, struct apikey **out, size_t *n, struct selo_err *err)
{
	(void)s;
	(void)out;
	(void)n;
	return pg_not_yet("apikey_list", err);
}

int pg_notice_get(struct store *s, const char *id, int64_t apikey_id, struct notice_rec *out, struct selo_err *err)
{
	(void)s;
	(void)id;
	(void)apikey_id;
	(void)out;
	return pg_not_yet("notice_get", err);
}

int pg_notice_list(struct store *s, const struct notice_filter *f, struct notice_rec **out, size_t *n, struct selo_err *err)
{
	(void)s;
	(void)f;
	(void)out;
	(void)n;
	return pg_not_yet("notice_list", err);
}

int pg_notice_scan(struct store *s, int64_t *cursor, size_t max, struct notice_rec **out, size_t *n, struct selo_err *err)
{
	(void)s;
	(void)cursor;
	(void)max;
	(void)out;
	(void)n;
	return pg_not_yet("notice_scan", err);
}

int pg_events_of(struct store *s, const char *notice_id, struct event_rec **out, size_t *n, struct selo_err *err)
{
	(void)s;
	(void)notice_id;
	(void)out;
	(void)n;
	return pg_not_yet("events_of", err);
}

int pg_event_first(struct store *s, const char *notice_id, const char *type, struct event_rec *out, struct selo_err *err)
{
	(void)s;
	(void)notice_id;
	(void)type;
	(void)out;
	return pg_not_yet("event_first", err);
}

int pg_confirmations_of(struct store *s, const char *notice_id, struct event_rec **out, size_t *n, struct selo_err *err)
{
	(void)s;
	(void)notice_id;
	(void)out;
	(void)n;
	return pg_not_yet("confirmations_of", err);
}

int pg_events_after(struct store *s, int64_t after_seq, size_t max, struct event_rec **out, size_t *n, struct selo_err *err)
{
	(void)s;
	(void)after_seq;
	(void)max;
	(void)out;
	(void)n;
	return pg_not_yet("events_after", err);
}

int pg_attachments_of(struct store *s, const char *notice_id, struct attachment_rec **out, size_t *n, struct selo_err *err)
{
	(void)s;
	(void)notice_id;
	(void)out;
	(void)n;
	return pg_not_yet("attachments_of", err);
}

int pg_message_get(struct store *s, const char *notice_id, struct buf *eml, char sha256[65], struct selo_err *err)
{
	(void)s;
	(void)notice_id;
	(void)eml;
	(void)sha256;
	return pg_not_yet("message_get", err);
}

int64_t pg_next_due(struct store *s)
{
	(void)s;
	return 0;
}

int pg_sequence_get(struct store *s, const char *id, int64_t apikey_id, struct sequence_rec *out, struct selo_err *err)
{
	(void)s;
	(void)id;
	(void)apikey_id;
	(void)out;
	return pg_not_yet("sequence_get", err);
}

int pg_suppression_list(struct store *s, int64_t apikey_id, int64_t before, int limit, struct suppression_rec **out, size_t *n, struct selo_err *err)
{
	(void)s;
	(void)apikey_id;
	(void)before;
	(void)limit;
	(void)out;
	(void)n;
	return pg_not_yet("suppression_list", err);
}

int pg_token_lookup(struct store *s, const char *token, struct token_info *out, struct selo_err *err)
{
	(void)s;
	(void)token;
	(void)out;
	return pg_not_yet("token_lookup", err);
}

int pg_notice_brief(struct store *s, const char *id, uint8_t salt[32], int64_t *accepted_ms, struct selo_err *err)
{
	(void)s;
	(void)id;
	(void)salt;
	(void)accepted_ms;
	return pg_not_yet("notice_brief", err);
}

int pg_counts(struct store *s, struct store_counts *out, struct selo_err *err)
{
	(void)s;
	(void)out;
	return pg_not_yet("counts", err);
}

int pg_disclosures_of(struct store *s, const char *notice_id, struct disclosures *out, struct selo_err *err)
{
	(void)s;
	(void)notice_id;
	(void)out;
	return pg_not_yet("disclosures_of", err);
}
