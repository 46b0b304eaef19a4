/* store.c: the store interface (store.h) above its backends (store_backend.h):
 * picks a backend by name (store_open, store_open_backend), hands each
 * store_* call to the backend's op of the same name, and frees the records
 * the reads return (plain structs, no backend state in them). Nothing here
 * touches SQL. Functions: store_open, store_open_backend, the store_*
 * dispatchers, store_fault_name, the *_free functions of store.h.
 * Errors: an unknown backend name is a 400 "invalid-config"; everything else
 * is the backend's. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "selo/store.h"
#include "selo/store_backend.h"

/* The backends by the name `store.backend` gives them. The first is the
 * default (an empty or NULL name). */
static int store_sqlite_open_params(const struct store_params *p, struct store **out,
				    struct selo_err *err)
{
	return store_sqlite_open(p->target, out, err);
}

static const struct store_backend {
	const char *name;
	int (*open)(const struct store_params *p, struct store **out, struct selo_err *err);
} STORE_BACKENDS[] = {
	{"sqlite", store_sqlite_open_params},
	{"postgres", store_pg_open},
};
#define NSTORE_BACKENDS (sizeof(STORE_BACKENDS) / sizeof(STORE_BACKENDS[0]))

int store_open_backend(const struct store_params *p, struct store **out, struct selo_err *err)
{
	*out = NULL;
	const char *backend = p->backend && *p->backend ? p->backend : STORE_BACKENDS[0].name;
	for (size_t i = 0; i < NSTORE_BACKENDS; i++)
		if (strcmp(STORE_BACKENDS[i].name, backend) == 0)
			return STORE_BACKENDS[i].open(p, out, err);
	return err_set(err, 400, "invalid-config", "store: no backend named '%s' (docs/store.md)",
		       backend);
}

int store_open(const char *path, struct store **out, struct selo_err *err)
{
	return store_sqlite_open(path, out, err);
}

/* ---- Dispatchers: one per op, in store.h's order. */

void store_close(struct store *s)
{
	if (s)
		s->ops->close(s);
}

int store_schema_version(struct store *s)
{
	return s->ops->schema_version(s);
}

int store_apikey_add(struct store *s, const char *name, const uint8_t hash[32], const char *prefix,
		     int64_t *id_out, struct selo_err *err)
{
	return s->ops->apikey_add(s, name, hash, prefix, id_out, err);
}

int store_apikey_find(struct store *s, const uint8_t hash[32], struct apikey *out,
		      struct selo_err *err)
{
	return s->ops->apikey_find(s, hash, out, err);
}

int store_apikey_list(struct store *s, struct apikey **out, size_t *n, struct selo_err *err)
{
	return s->ops->apikey_list(s, out, n, err);
}

int store_apikey_revoke(struct store *s, int64_t id, struct selo_err *err)
{
	return s->ops->apikey_revoke(s, id, err);
}

int store_notices_accept(struct store *s, const struct notice_new *ns, size_t n,
			 struct accept_result *results, struct selo_err *err)
{
	return s->ops->notices_accept(s, ns, n, results, err);
}

int store_notice_get(struct store *s, const char *id, int64_t apikey_id, struct notice_rec *out,
		     struct selo_err *err)
{
	return s->ops->notice_get(s, id, apikey_id, out, err);
}

int store_notice_list(struct store *s, const struct notice_filter *f, struct notice_rec **out,
		      size_t *n, struct selo_err *err)
{
	return s->ops->notice_list(s, f, out, n, err);
}

int store_notice_scan(struct store *s, int64_t *cursor, size_t max, struct notice_rec **out,
		      size_t *n, struct selo_err *err)
{
	return s->ops->notice_scan(s, cursor, max, out, n, err);
}

int store_events_of(struct store *s, const char *notice_id, struct event_rec **out, size_t *n,
		    struct selo_err *err)
{
	return s->ops->events_of(s, notice_id, out, n, err);
}

int store_event_first(struct store *s, const char *notice_id, const char *type,
		      struct event_rec *out, struct selo_err *err)
{
	return s->ops->event_first(s, notice_id, type, out, err);
}

int store_confirmations_of(struct store *s, const char *notice_id, struct event_rec **out,
			   size_t *n, struct selo_err *err)
{
	return s->ops->confirmations_of(s, notice_id, out, n, err);
}

int store_events_after(struct store *s, int64_t after_seq, size_t max, struct event_rec **out,
		       size_t *n, struct selo_err *err)
{
	return s->ops->events_after(s, after_seq, max, out, n, err);
}

int store_attachments_of(struct store *s, const char *notice_id, struct attachment_rec **out,
			 size_t *n, struct selo_err *err)
{
	return s->ops->attachments_of(s, notice_id, out, n, err);
}

int store_message_get(struct store *s, const char *notice_id, struct buf *eml, char sha256[65],
		      struct selo_err *err)
{
	return s->ops->message_get(s, notice_id, eml, sha256, err);
}

int store_claim_due(struct store *s, int64_t now_ms, size_t max, struct notice_rec **out, size_t *n,
		    struct selo_err *err)
{
	return s->ops->claim_due(s, now_ms, max, out, n, err);
}

int64_t store_next_due(struct store *s)
{
	return s->ops->next_due(s);
}

int store_notices_sealed(struct store *s, const struct seal_rec *r, size_t n, struct selo_err *err)
{
	return s->ops->notices_sealed(s, r, n, err);
}

int store_delivery_results(struct store *s, const struct result_rec *r, size_t n,
			   struct selo_err *err)
{
	return s->ops->delivery_results(s, r, n, err);
}

int store_events_add(struct store *s, const struct event_new *ev, size_t n, struct selo_err *err)
{
	return s->ops->events_add(s, ev, n, err);
}

int store_hits_add(struct store *s, const struct hit_new *h, size_t n, const struct fold_rule *rule,
		   size_t *folded, struct selo_err *err)
{
	return s->ops->hits_add(s, h, n, rule, folded, err);
}

int store_folds_close(struct store *s, int64_t now_ms, size_t max, fold_fields_fn fields, void *arg,
		      size_t *closed, struct selo_err *err)
{
	return s->ops->folds_close(s, now_ms, max, fields, arg, closed, err);
}

int store_notice_bounced(struct store *s, const char *id, json_t *fields,
			 const struct disclosures *disc, const char *last_error,
			 struct selo_err *err)
{
	return s->ops->notice_bounced(s, id, fields, disc, last_error, err);
}

int store_notice_cancel(struct store *s, const char *id, int64_t apikey_id, const char *reason,
			struct selo_err *err)
{
	return s->ops->notice_cancel(s, id, apikey_id, reason, err);
}

int store_sequence_add(struct store *s, const struct sequence_new *q, char replay_id[32],
		       struct selo_err *err)
{
	return s->ops->sequence_add(s, q, replay_id, err);
}

int store_sequence_get(struct store *s, const char *id, int64_t apikey_id, struct sequence_rec *out,
		       struct selo_err *err)
{
	return s->ops->sequence_get(s, id, apikey_id, out, err);
}

int store_sequence_stop(struct store *s, const char *id, int64_t apikey_id, const char *reason,
			int64_t *canceled, struct selo_err *err)
{
	return s->ops->sequence_stop(s, id, apikey_id, reason, canceled, err);
}

int store_suppression_list(struct store *s, int64_t apikey_id, int64_t before, int limit,
			   struct suppression_rec **out, size_t *n, struct selo_err *err)
{
	return s->ops->suppression_list(s, apikey_id, before, limit, out, n, err);
}

int store_suppression_delete(struct store *s, int64_t apikey_id, const char *address,
			     struct selo_err *err)
{
	return s->ops->suppression_delete(s, apikey_id, address, err);
}

int store_token_lookup(struct store *s, const char *token, struct token_info *out,
		       struct selo_err *err)
{
	return s->ops->token_lookup(s, token, out, err);
}

int store_notice_brief(struct store *s, const char *id, uint8_t salt[32], int64_t *accepted_ms,
		       struct selo_err *err)
{
	return s->ops->notice_brief(s, id, salt, accepted_ms, err);
}

int store_recover_inflight(struct store *s, struct selo_err *err)
{
	return s->ops->recover_inflight(s, err);
}

int store_counts(struct store *s, struct store_counts *out, struct selo_err *err)
{
	return s->ops->counts(s, out, err);
}

void store_wal_limit(struct store *s, int frames)
{
	if (s->ops->wal_limit)
		s->ops->wal_limit(s, frames);
}

int64_t store_wal_restarts(struct store *s)
{
	return s->ops->wal_restarts ? s->ops->wal_restarts(s) : 0;
}

int store_log_state(struct store *s, struct log_state *out, struct selo_err *err)
{
	return s->ops->log_state(s, out, err);
}

int store_log_append(struct store *s, const struct log_append *a, struct selo_err *err)
{
	return s->ops->log_append(s, a, err);
}

int store_log_tile(struct store *s, int level, uint64_t index, struct buf *data,
		   struct selo_err *err)
{
	return s->ops->log_tile(s, level, index, data, err);
}

int store_log_entries(struct store *s, uint64_t from, size_t max, struct event_rec **out, size_t *n,
		      struct selo_err *err)
{
	return s->ops->log_entries(s, from, max, out, n, err);
}

int store_log_unindexed(struct store *s, int64_t last_seq, int64_t *count, struct selo_err *err)
{
	return s->ops->log_unindexed(s, last_seq, count, err);
}

int store_checkpoint_add(struct store *s, uint64_t size, const char *note, int64_t created_ms,
			 struct selo_err *err)
{
	return s->ops->checkpoint_add(s, size, note, created_ms, err);
}

int store_checkpoint_timestamp(struct store *s, uint64_t size, const uint8_t *tst, size_t len,
			       int64_t tst_time_ms, struct selo_err *err)
{
	return s->ops->checkpoint_timestamp(s, size, tst, len, tst_time_ms, err);
}

int store_checkpoint_find(struct store *s, uint64_t min_size, int timestamped,
			  struct checkpoint_rec *out, struct selo_err *err)
{
	return s->ops->checkpoint_find(s, min_size, timestamped, out, err);
}

int store_checkpoints_untimestamped(struct store *s, size_t max, struct checkpoint_rec **out,
				    size_t *n, struct selo_err *err)
{
	return s->ops->checkpoints_untimestamped(s, max, out, n, err);
}

int store_checkpoints_all(struct store *s, struct checkpoint_rec **out, size_t *n,
			  struct selo_err *err)
{
	return s->ops->checkpoints_all(s, out, n, err);
}

int store_disclosures_of(struct store *s, const char *notice_id, struct disclosures *out,
			 struct selo_err *err)
{
	return s->ops->disclosures_of(s, notice_id, out, err);
}

int store_ping(struct store *s, struct selo_err *err)
{
	return s->ops->ping(s, err);
}

int store_lead(struct store *s, enum store_role role, struct selo_err *err)
{
	if ((unsigned)role >= STORE_ROLE_COUNT)
		return err_set(err, 500, "internal", "store_lead: no role %d", (int)role);
	return s->ops->lead ? s->ops->lead(s, role, err) : 1;
}

int store_claims_renew(struct store *s, int64_t *next_ms, struct selo_err *err)
{
	*next_ms = -1;
	return s->ops->claims_renew ? s->ops->claims_renew(s, next_ms, err) : 0;
}

void store_counts_add(struct store_counts *k, const char *status, int64_t n)
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

const char *store_role_name(enum store_role role)
{
	static const char *const names[STORE_ROLE_COUNT] = {"integrator", "stats", "pruner"};
	return (unsigned)role < STORE_ROLE_COUNT ? names[role] : "?";
}

void store_health(struct store *s, struct store_health *out)
{
	s->ops->health(s, out);
}

int store_webhook_add(struct store *s, const struct webhook_rec *w, size_t max_per_key,
		      struct selo_err *err)
{
	return s->ops->webhook_add(s, w, max_per_key, err);
}

int store_webhook_list(struct store *s, int64_t apikey_id, struct webhook_rec **out, size_t *n,
		       struct selo_err *err)
{
	return s->ops->webhook_list(s, apikey_id, out, n, err);
}

int store_webhook_get(struct store *s, const char *id, int64_t apikey_id, struct webhook_rec *out,
		      struct selo_err *err)
{
	return s->ops->webhook_get(s, id, apikey_id, out, err);
}

int store_webhook_delete(struct store *s, const char *id, int64_t apikey_id, struct selo_err *err)
{
	return s->ops->webhook_delete(s, id, apikey_id, err);
}

int store_webhook_fanout(struct store *s, size_t max, size_t *added, struct selo_err *err)
{
	return s->ops->webhook_fanout(s, max, added, err);
}

int store_webhook_rotate_secret(struct store *s, const char *id, int64_t apikey_id,
				const uint8_t *secret, size_t secret_len, int64_t old_until_ms,
				struct selo_err *err)
{
	return s->ops->webhook_rotate_secret(s, id, apikey_id, secret, secret_len, old_until_ms,
					     err);
}

int store_webhook_active(struct store *s, char (**ids)[32], size_t *n, struct selo_err *err)
{
	return s->ops->webhook_active(s, ids, n, err);
}

int store_webhook_due(struct store *s, const char *webhook_id, int64_t now_ms, size_t max,
		      struct webhook_delivery **out, size_t *n, struct selo_err *err)
{
	return s->ops->webhook_due(s, webhook_id, now_ms, max, out, n, err);
}

int store_webhook_results(struct store *s, const struct webhook_result *r, size_t n,
			  struct selo_err *err)
{
	return s->ops->webhook_results(s, r, n, err);
}

int store_webhook_prune(struct store *s, int64_t before_ms, size_t max, size_t *pruned,
			struct selo_err *err)
{
	return s->ops->webhook_prune(s, before_ms, max, pruned, err);
}

int store_stats_events(struct store *s, size_t max,
		       int (*fn)(void *arg, const struct stats_event *e), void *arg,
		       int64_t *cursor, int64_t *last, struct selo_err *err)
{
	return s->ops->stats_events(s, max, fn, arg, cursor, last, err);
}

int store_stats_facts_get(struct store *s, struct stats_fact *f, size_t n, int *found,
			  struct selo_err *err)
{
	return s->ops->stats_facts_get(s, f, n, found, err);
}

int store_stats_notice_info(struct store *s, const char *const *ids, size_t n,
			    struct stats_notice_info *out, int *found, struct selo_err *err)
{
	return s->ops->stats_notice_info(s, ids, n, out, found, err);
}

int store_stats_dim(struct store *s, const char *dkey, int64_t apikey_id, const char *template_name,
		    const char *segment, const char *tags_json, int64_t *id, struct selo_err *err)
{
	return s->ops->stats_dim(s, dkey, apikey_id, template_name, segment, tags_json, id, err);
}

int store_stats_apply(struct store *s, const struct stats_batch *b, struct selo_err *err)
{
	return s->ops->stats_apply(s, b, err);
}

int store_stats_scan(struct store *s, struct stats_scan *q, struct selo_err *err)
{
	return s->ops->stats_scan(s, q, err);
}

/* ---- Records the reads return, and names: no backend state. */

const char *store_fault_name(enum store_fault f)
{
	static const char *const names[] = {
		[STORE_FAULT_NONE] = "",           [STORE_FAULT_DISK_FULL] = "disk-full",
		[STORE_FAULT_IO] = "io-error",     [STORE_FAULT_READ_ONLY] = "read-only",
		[STORE_FAULT_LOCKED] = "locked",   [STORE_FAULT_DAMAGED] = "damaged",
		[STORE_FAULT_OTHER] = "other",
	};
	return (unsigned)f < sizeof(names) / sizeof(names[0]) ? names[f] : "other";
}

void store_copy_info_free(struct store_copy_info *info)
{
	free(info->checkpoint);
	info->checkpoint = NULL;
}

void notice_rec_free(struct notice_rec *r)
{
	if (!r)
		return;
	free(r->to);
	free(r->template_name);
	free(r->reference);
	free(r->segment);
	free(r->tags_json);
	free(r->payload_json);
	free(r->message_id);
	free(r->last_error);
	free(r->sequence_id);
	free(r->damage);
	r->to = r->template_name = r->reference = r->segment = NULL;
	r->tags_json = r->payload_json = r->message_id = r->last_error = r->sequence_id = NULL;
	r->damage = NULL;
}

void notice_recs_free(struct notice_rec *r, size_t n)
{
	for (size_t i = 0; r && i < n; i++)
		notice_rec_free(&r[i]);
	free(r);
}

void event_recs_free(struct event_rec *e, size_t n)
{
	for (size_t i = 0; e && i < n; i++)
		free(e[i].entry);
	free(e);
}

void attachment_recs_free(struct attachment_rec *a, size_t n)
{
	for (size_t i = 0; a && i < n; i++) {
		free(a[i].filename);
		free(a[i].content_type);
		free(a[i].data);
	}
	free(a);
}

void event_rec_free(struct event_rec *e)
{
	if (!e)
		return;
	free(e->entry);
	e->entry = NULL;
	e->len = 0;
}

void checkpoint_recs_free(struct checkpoint_rec *c, size_t n)
{
	for (size_t i = 0; c && i < n; i++) {
		free(c[i].note);
		free(c[i].tst);
	}
	free(c);
}

void sequence_rec_free(struct sequence_rec *q)
{
	free(q->reason);
	free(q->request_json);
	notice_recs_free(q->steps, q->nsteps);
	memset(q, 0, sizeof(*q));
}

void webhook_recs_free(struct webhook_rec *w, size_t n)
{
	for (size_t i = 0; w && i < n; i++) {
		free(w[i].url);
		free(w[i].events);
		free(w[i].secret);
		free(w[i].disabled_reason);
	}
	free(w);
}

void webhook_deliveries_free(struct webhook_delivery *d, size_t n)
{
	for (size_t i = 0; d && i < n; i++) {
		free(d[i].url);
		free(d[i].secret);
		free(d[i].old_secret);
		free(d[i].reference);
		free(d[i].entry);
	}
	free(d);
}

void suppression_recs_free(struct suppression_rec *r, size_t n)
{
	for (size_t i = 0; r && i < n; i++) {
		free(r[i].address);
		free(r[i].reason);
	}
	free(r);
}

void stats_notice_info_free(struct stats_notice_info *i)
{
	free(i->template_name);
	free(i->segment);
	free(i->tags_json);
	memset(i, 0, sizeof(*i));
}
