/* store_backend.h: for store backends only (store_sqlite*.c, store_pg*.c)
 * and the store conformance tests; callers use store.h and never see this.
 * A backend fills one `struct store_ops` and embeds `struct store` as the
 * first member of its own state, so that the `struct store *` a dispatcher
 * of store.c hands it is its own state too (the cast back is valid C: a
 * pointer to a struct and a pointer to its first member convert both ways).
 *
 * Why a header of its own rather than inside store.h (as transport.h keeps
 * its ops): store.h is the contract with some thirty callers, and a change to
 * the table should neither recompile them nor tempt one of them to call an
 * op directly; transport.h has four ops, the store 65. Why in include/selo/
 * rather than beside the backend in src/: the PostgreSQL backend's files and
 * the store conformance suite (tests/unit) include it too.
 *
 * Each op has the contract of the store_* function of the same name in
 * store.h (same arguments, return values and err statuses), in store.h's
 * order. docs/store.md "The interface and its backends" says what a backend
 * must guarantee for each group of ops (atomicity, durability on return, the
 * order of event seq, idempotency). Every op is required unless its comment
 * says NULL is allowed. */
#ifndef SELO_STORE_BACKEND_H
#define SELO_STORE_BACKEND_H
#include "selo/store.h"

struct store_ops {
	const char *name; /* "sqlite", "postgres": for messages */
	void (*close)(struct store *s);
	int (*schema_version)(struct store *s);
	int (*apikey_add)(struct store *s, const char *name, const uint8_t hash[32],
			  const char *prefix, int64_t *id_out, struct selo_err *err);
	int (*apikey_find)(struct store *s, const uint8_t hash[32], struct apikey *out,
			   struct selo_err *err);
	int (*apikey_list)(struct store *s, struct apikey **out, size_t *n, struct selo_err *err);
	int (*apikey_revoke)(struct store *s, int64_t id, struct selo_err *err);
	int (*notices_accept)(struct store *s, const struct notice_new *ns, size_t n,
			      struct accept_result *results, struct selo_err *err);
	int (*notice_get)(struct store *s, const char *id, int64_t apikey_id,
			  struct notice_rec *out, struct selo_err *err);
	int (*notice_list)(struct store *s, const struct notice_filter *f, struct notice_rec **out,
			   size_t *n, struct selo_err *err);
	int (*notice_scan)(struct store *s, int64_t *cursor, size_t max, struct notice_rec **out,
			   size_t *n, struct selo_err *err);
	int (*events_of)(struct store *s, const char *notice_id, struct event_rec **out, size_t *n,
			 struct selo_err *err);
	int (*event_first)(struct store *s, const char *notice_id, const char *type,
			   struct event_rec *out, struct selo_err *err);
	int (*confirmations_of)(struct store *s, const char *notice_id, struct event_rec **out,
				size_t *n, struct selo_err *err);
	int (*events_after)(struct store *s, int64_t after_seq, size_t max, struct event_rec **out,
			    size_t *n, struct selo_err *err);
	int (*attachments_of)(struct store *s, const char *notice_id, struct attachment_rec **out,
			      size_t *n, struct selo_err *err);
	int (*message_get)(struct store *s, const char *notice_id, struct buf *eml, char sha256[65],
			   struct selo_err *err);
	int (*claim_due)(struct store *s, int64_t now_ms, size_t max, struct notice_rec **out,
			 size_t *n, struct selo_err *err);
	int64_t (*next_due)(struct store *s);
	int (*notices_sealed)(struct store *s, const struct seal_rec *r, size_t n,
			      struct selo_err *err);
	int (*delivery_results)(struct store *s, const struct result_rec *r, size_t n,
				struct selo_err *err);
	int (*events_add)(struct store *s, const struct event_new *ev, size_t n,
			  struct selo_err *err);
	int (*hits_add)(struct store *s, const struct hit_new *h, size_t n,
			const struct fold_rule *rule, size_t *folded, struct selo_err *err);
	int (*folds_close)(struct store *s, int64_t now_ms, size_t max, fold_fields_fn fields,
			   void *arg, size_t *closed, struct selo_err *err);
	int (*notice_bounced)(struct store *s, const char *id, json_t *fields,
			      const struct disclosures *disc, const char *last_error,
			      struct selo_err *err);
	int (*notice_cancel)(struct store *s, const char *id, int64_t apikey_id, const char *reason,
			     struct selo_err *err);
	int (*sequence_add)(struct store *s, const struct sequence_new *q, char replay_id[32],
			    struct selo_err *err);
	int (*sequence_get)(struct store *s, const char *id, int64_t apikey_id,
			    struct sequence_rec *out, struct selo_err *err);
	int (*sequence_stop)(struct store *s, const char *id, int64_t apikey_id, const char *reason,
			     int64_t *canceled, struct selo_err *err);
	int (*suppression_list)(struct store *s, int64_t apikey_id, int64_t before, int limit,
				struct suppression_rec **out, size_t *n, struct selo_err *err);
	int (*suppression_delete)(struct store *s, int64_t apikey_id, const char *address,
				  struct selo_err *err);
	int (*token_lookup)(struct store *s, const char *token, struct token_info *out,
			    struct selo_err *err);
	int (*notice_brief)(struct store *s, const char *id, uint8_t salt[32], int64_t *accepted_ms,
			    struct selo_err *err);
	int (*recover_inflight)(struct store *s, struct selo_err *err);
	int (*counts)(struct store *s, struct store_counts *out, struct selo_err *err);
	/* SQLite's WAL (docs/store.md "Durability"): NULL allowed for both, then
	 * store_wal_limit does nothing and store_wal_restarts answers 0. */
	void (*wal_limit)(struct store *s, int frames);
	int64_t (*wal_restarts)(struct store *s);
	int (*log_state)(struct store *s, struct log_state *out, struct selo_err *err);
	int (*log_append)(struct store *s, const struct log_append *a, struct selo_err *err);
	int (*log_tile)(struct store *s, int level, uint64_t index, struct buf *data,
			struct selo_err *err);
	int (*log_entries)(struct store *s, uint64_t from, size_t max, struct event_rec **out,
			   size_t *n, struct selo_err *err);
	int (*log_unindexed)(struct store *s, int64_t last_seq, int64_t *count,
			     struct selo_err *err);
	int (*checkpoint_add)(struct store *s, uint64_t size, const char *note, int64_t created_ms,
			      struct selo_err *err);
	int (*checkpoint_timestamp)(struct store *s, uint64_t size, const uint8_t *tst, size_t len,
				    int64_t tst_time_ms, struct selo_err *err);
	int (*checkpoint_find)(struct store *s, uint64_t min_size, int timestamped,
			       struct checkpoint_rec *out, struct selo_err *err);
	int (*checkpoints_untimestamped)(struct store *s, size_t max, struct checkpoint_rec **out,
					 size_t *n, struct selo_err *err);
	int (*checkpoints_all)(struct store *s, struct checkpoint_rec **out, size_t *n,
			       struct selo_err *err);
	int (*disclosures_of)(struct store *s, const char *notice_id, struct disclosures *out,
			      struct selo_err *err);
	int (*ping)(struct store *s, struct selo_err *err);
	/* NULL allowed: a store for one node, which has no leases. */
	int (*claims_renew)(struct store *s, int64_t *next_ms, struct selo_err *err);
	/* NULL allowed: a store for one node, where store_lead answers 1. */
	int (*lead)(struct store *s, enum store_role role, struct selo_err *err);
	void (*health)(struct store *s, struct store_health *out);
	int (*webhook_add)(struct store *s, const struct webhook_rec *w, size_t max_per_key,
			   struct selo_err *err);
	int (*webhook_list)(struct store *s, int64_t apikey_id, struct webhook_rec **out, size_t *n,
			    struct selo_err *err);
	int (*webhook_get)(struct store *s, const char *id, int64_t apikey_id,
			   struct webhook_rec *out, struct selo_err *err);
	int (*webhook_delete)(struct store *s, const char *id, int64_t apikey_id,
			      struct selo_err *err);
	int (*webhook_fanout)(struct store *s, size_t max, size_t *added, struct selo_err *err);
	int (*webhook_rotate_secret)(struct store *s, const char *id, int64_t apikey_id,
				     const uint8_t *secret, size_t secret_len, int64_t old_until_ms,
				     struct selo_err *err);
	int (*webhook_active)(struct store *s, char (**ids)[32], size_t *n, struct selo_err *err);
	int (*webhook_due)(struct store *s, const char *webhook_id, int64_t now_ms, size_t max,
			   struct webhook_delivery **out, size_t *n, struct selo_err *err);
	int (*webhook_results)(struct store *s, const struct webhook_result *r, size_t n,
			       struct selo_err *err);
	int (*webhook_prune)(struct store *s, int64_t before_ms, size_t max, size_t *pruned,
			     struct selo_err *err);
	int (*stats_events)(struct store *s, size_t max,
			    int (*fn)(void *arg, const struct stats_event *e), void *arg,
			    int64_t *cursor, int64_t *last, struct selo_err *err);
	int (*stats_facts_get)(struct store *s, struct stats_fact *f, size_t n, int *found,
			       struct selo_err *err);
	int (*stats_notice_info)(struct store *s, const char *const *ids, size_t n,
				 struct stats_notice_info *out, int *found, struct selo_err *err);
	int (*stats_dim)(struct store *s, const char *dkey, int64_t apikey_id,
			 const char *template_name, const char *segment, const char *tags_json,
			 int64_t *id, struct selo_err *err);
	int (*stats_apply)(struct store *s, const struct stats_batch *b, struct selo_err *err);
	int (*stats_scan)(struct store *s, struct stats_scan *q, struct selo_err *err);
};

/* The base every backend's state starts with. */
struct store {
	const struct store_ops *ops;
};

/* The backends, as store_open_backend finds them by name (store.c). Each
 * opens (creating and migrating as needed) the store that target names and
 * sets *out to its base. */
int store_sqlite_open(const char *path, struct store **out, struct selo_err *err);

/* For the counts op (store_counts): adds n notices of status to the
 * counter of that status in k; an unknown status counts nowhere. */
void store_counts_add(struct store_counts *k, const char *status, int64_t n);
int store_pg_open(const struct store_params *p, struct store **out, struct selo_err *err);

#endif
