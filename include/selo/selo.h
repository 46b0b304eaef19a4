/* selo.h: the one process-wide context of `selo serve` (and of the CLI
 * commands that need the store): configuration, store, templates, composer
 * and the running parts. Nothing else in Selo keeps mutable global state. */
#ifndef SELO_SELO_H
#define SELO_SELO_H
#include <stdatomic.h>
#include <stdint.h>
#include "selo/config.h"
#include "selo/err.h"
#include "selo/store.h"
#include "selo/template.h"

struct composer;
struct sender;
struct api;
struct ledger;
struct tracker;
struct webhooks;

struct selo_metrics {
	atomic_llong http_requests;
	atomic_llong http_4xx;
	atomic_llong http_5xx;
	atomic_llong notices_accepted;
	atomic_llong notices_replayed;
	atomic_llong notices_rejected;
	atomic_llong smtp_sessions;
	atomic_llong messages_sealed;
	atomic_llong messages_accepted;
	atomic_llong messages_deferred;
	atomic_llong messages_failed;
	atomic_llong webhooks_delivered;       /* 2xx answers */
	atomic_llong webhooks_failed_attempts; /* attempts to retry */
	atomic_llong webhooks_gave_up;         /* deliveries whose schedule ran out */
	atomic_llong webhooks_disabled;        /* 410 answers */
	atomic_llong track_hits_folded;        /* hits counted in a summary, not logged alone */
};

struct selo {
	struct selo_config cfg;
	struct store *store;
	struct template_set *templates;
	struct composer *composer;    /* serve only */
	struct sender *sender;        /* serve only */
	struct api *api;              /* serve only */
	struct tracker *tracker;      /* serve only: the public listener */
	struct ledger *ledger;        /* serve only: the Merkle log and its sequencer */
	struct webhooks *webhooks;    /* serve only: registrations and the deliverer */
	struct selo_metrics metrics;
	int64_t started_ms;
	uint8_t token_key[32];        /* DIR/keys/token.key: MACs of bounce (VERP) addresses */
};

/* Loads the configuration and the token key, checks that mail.return_path
 * can carry bounce addresses (dsn.h), opens the store and loads the
 * templates. */
int selo_open(struct selo *app, const char *data_dir, struct selo_err *err);
void selo_close(struct selo *app);

#endif
