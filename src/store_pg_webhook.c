/* store_pg_webhook.c: the PostgreSQL backend's webhooks and their outbox
 * (store_pg_int.h; docs/scale.md). SCAFFOLDING: an op not written yet
 * answers 501 (pg_not_yet). */
#include <string.h>
#include "selo/store.h"
#include "store_pg_int.h"

static const char *const pg_webhook_sql_text[] = {NULL};
const struct pg_sql_table pg_sql_webhook = {pg_webhook_sql_text, 0};

int pg_webhook_add(struct store *s, const struct webhook_rec *w, size_t max_per_key, struct selo_err *err)
{
	(void)s;
	(void)w;
	(void)max_per_key;
	return pg_not_yet("webhook_add", err);
}

int pg_webhook_list(struct store *s, int64_t apikey_id, struct webhook_rec **out, size_t *n, struct selo_err *err)
{
	(void)s;
	(void)apikey_id;
	(void)out;
	(void)n;
	return pg_not_yet("webhook_list", err);
}

int pg_webhook_get(struct store *s, const char *id, int64_t apikey_id, struct webhook_rec *out, struct selo_err *err)
{
	(void)s;
	(void)id;
	(void)apikey_id;
	(void)out;
	return pg_not_yet("webhook_get", err);
}

int pg_webhook_delete(struct store *s, const char *id, int64_t apikey_id, struct selo_err *err)
{
	(void)s;
	(void)id;
	(void)apikey_id;
	return pg_not_yet("webhook_delete", err);
}

int pg_webhook_fanout(struct store *s, size_t max, size_t *added, struct selo_err *err)
{
	(void)s;
	(void)max;
	(void)added;
	return pg_not_yet("webhook_fanout", err);
}

int pg_webhook_rotate_secret(struct store *s, const char *id, int64_t apikey_id, const uint8_t *secret, size_t secret_len, int64_t old_until_ms, struct selo_err *err)
{
	(void)s;
	(void)id;
	(void)apikey_id;
	(void)secret;
	(void)secret_len;
	(void)old_until_ms;
	return pg_not_yet("webhook_rotate_secret", err);
}

int pg_webhook_active(struct store *s, char (**ids)[32], size_t *n, struct selo_err *err)
{
	(void)s;
	(void)ids;
	(void)n;
	return pg_not_yet("webhook_active", err);
}

int pg_webhook_due(struct store *s, const char *webhook_id, int64_t now_ms, size_t max, struct webhook_delivery **out, size_t *n, struct selo_err *err)
{
	(void)s;
	(void)webhook_id;
	(void)now_ms;
	(void)max;
	(void)out;
	(void)n;
	return pg_not_yet("webhook_due", err);
}

int pg_webhook_results(struct store *s, const struct webhook_result *r, size_t n, struct selo_err *err)
{
	(void)s;
	(void)r;
	(void)n;
	return pg_not_yet("webhook_results", err);
}

int pg_webhook_prune(struct store *s, int64_t before_ms, size_t max, size_t *pruned, struct selo_err *err)
{
	(void)s;
	(void)before_ms;
	(void)max;
	(void)pruned;
	return pg_not_yet("webhook_prune", err);
}
