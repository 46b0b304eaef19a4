/* webhook.h: webhooks, Standard Webhooks style (docs/api.md "Webhooks").
 * An API key registers URLs and the event types they want; every event of
 * that key's notices, once the ledger has given it its log index, becomes
 * a durable outbox row per webhook (store.h), and the deliverer POSTs it,
 * signed, until a 2xx, a 410 (which disables the webhook) or the end of the
 * retry schedule (at least 3 days).
 *
 * Secrets are `whsec_` + base64 of 32 random bytes, shown once; the store
 * keeps them sealed (AES-256-GCM under DIR/keys/webhook.key, the webhook's
 * id as associated data), so the database alone does not give them away.
 * Targets must be public addresses (netcheck.h) unless
 * webhooks.allow_private: checked on every resolved address at
 * registration and on the address each connection opens. No redirect is
 * followed, no proxy from the environment used. Each request also carries
 * a v1a Ed25519 signature under DIR/keys/webhook-ed25519.pem (made at the
 * first start), whose public key the API publishes.
 *
 * Errors: functions fill struct selo_err (422 with per-field errors for a
 * bad registration, 404 unknown webhook, 500 storage or key trouble). */
#ifndef SELO_WEBHOOK_H
#define SELO_WEBHOOK_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include "selo/buf.h"
#include "selo/err.h"
#include "selo/selo.h"

#define WEBHOOK_SECRET_LEN 32
#define WEBHOOK_MAX_PER_KEY 20
#define WEBHOOK_URL_MAX 2048

struct webhooks;

/* Loads (or, the first time, creates) DIR/keys/webhook.key; nothing starts. */
int webhooks_open(struct selo *app, struct webhooks **out, struct selo_err *err);
/* Starts the deliverer: one thread that fans events out and hands due
 * deliveries to webhooks.workers delivery threads. */
int webhooks_start(struct webhooks *w, struct selo_err *err);
/* Stops taking deliveries and waits for those in flight (each bounded by
 * webhooks.timeout_ms); what was not delivered stays pending in the store. */
void webhooks_stop(struct webhooks *w);
void webhooks_close(struct webhooks *w);

/* ---- The API's side (api.c): each returns 0 with *out (a JSON object to
 * answer with) or -1 with err. */
/* POST /v1/webhooks: {"url": ..., "events": ["notice.opened", ... | "*"]};
 * *out includes the secret, the only time it is shown. */
int webhook_create(struct webhooks *w, int64_t apikey_id, const json_t *body, json_t **out,
		   struct selo_err *err);
/* GET /v1/webhooks: {"webhooks": [...]} without secrets. */
int webhook_list(struct webhooks *w, int64_t apikey_id, json_t **out, struct selo_err *err);
/* GET /v1/webhooks/{id}: with delivery counts. 404 when not the key's. */
int webhook_get(struct webhooks *w, int64_t apikey_id, const char *id, json_t **out,
		struct selo_err *err);
/* DELETE /v1/webhooks/{id}: 404 when not the key's; its deliveries go too. */
int webhook_delete(struct webhooks *w, int64_t apikey_id, const char *id, struct selo_err *err);

/* POST /v1/webhooks/{id}/rotate-secret, body empty or {"overlap_seconds":
 * N} (default WEBHOOK_OVERLAP_DEFAULT_S, at most WEBHOOK_OVERLAP_MAX_S): a
 * new secret replaces the current one, which keeps signing beside it (two
 * "v1," values in webhook-signature) until the overlap ends, then is
 * deleted. *out: {"id", "secret" (shown once), "previous_secret_expires_at"}.
 * 404 when not the key's, 422 for a bad overlap. */
#define WEBHOOK_OVERLAP_DEFAULT_S (24 * 3600)
#define WEBHOOK_OVERLAP_MAX_S (7 * 24 * 3600)
int webhook_rotate_secret(struct webhooks *w, int64_t apikey_id, const char *id,
			  const json_t *body, json_t **out, struct selo_err *err);

/* GET /v1/webhooks/public-key: {"public_key": "whpk_" + base64 of the raw
 * Ed25519 key, "pem": SubjectPublicKeyInfo PEM}, to check v1a signatures. */
int webhooks_public_key(struct webhooks *w, json_t **out, struct selo_err *err);

/* ---- Pure pieces (unit tested). */
/* `v1,` + base64(HMAC-SHA256(secret, msg_id "." timestamp "." body)). */
void webhook_sign_v1(const uint8_t *secret, size_t secret_len, const char *msg_id,
		     int64_t timestamp, const char *body, size_t body_len, struct buf *out);
/* Delay before the next attempt once `attempts` attempts have failed, in
 * ms (divided by speedup), or -1 when the schedule is over (give up). */
int64_t webhook_retry_delay_ms(int attempts, int speedup);
/* Checks a webhook URL: http or https, a host, no user name or password,
 * no fragment, at most WEBHOOK_URL_MAX bytes; unless allow_private, every
 * address the host resolves to must be public. 0, or -1 with a 422 and a
 * per-field error on "url". */
int webhook_url_check(const char *url, int allow_private, struct selo_err *err);

#endif
