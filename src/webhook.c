/* webhook.c: webhook registrations and their deliverer (webhook.h).
 *
 * Registration: the URL is checked (webhook_url_check: scheme, form, and
 * every resolved address against netcheck.h), the event types against the
 * log's, a secret made and stored sealed under DIR/keys/webhook.key.
 *
 * Delivery: the deliverer thread, every 100 ms or when a delivery ends,
 * (1) fans integrated events out into outbox rows (store_webhook_fanout),
 * (2) reads each active webhook's due rows and queues those not already in
 * flight, at most half of the workers per webhook so one slow endpoint
 * cannot take them all; and once a minute (3) drops finished deliveries
 * older than webhooks.keep_days (store_webhook_prune).
 * Worker threads, each with its own curl handle (and so its own connection
 * cache), POST one delivery at a time and record its outcome at once. A
 * delivery in flight when the process dies stays pending and is sent again
 * with the same webhook-id: at least once.
 *
 * Each request is signed twice over the same bytes: v1 (HMAC-SHA256 with
 * the webhook's secret) and v1a (Ed25519 with DIR/keys/webhook-ed25519.pem,
 * whose public key GET /v1/webhooks/public-key publishes).
 *
 * Failures are logged with the webhook id and the outbox id, never the
 * secret or the body. */
#include <arpa/inet.h>
#include <errno.h>
#include <curl/curl.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "selo/clock.h"
#include "selo/codec.h"
#include "selo/crypto.h"
#include "selo/diag.h"
#include "selo/event.h"
#include "selo/fileio.h"
#include "selo/id.h"
#include "selo/keys.h"
#include "selo/netcheck.h"
#include "selo/store.h"
#include "selo/webhook.h"

#define KEY_FILE "webhook.key" /* in DIR/keys */
#define ED_KEY_FILE "keys/webhook-ed25519.pem"
#define SEAL_NONCE 12
#define SEAL_TAG 16
#define SEALED_LEN (SEAL_NONCE + WEBHOOK_SECRET_LEN + SEAL_TAG)
/* Events looked at per round (10 rounds a second): above the ledger's
 * 20,000 per round, so a tracker flood never leaves the fan-out behind. */
#define FANOUT_MAX 50000
#define POLL_MS 100
#define ANSWER_MAX (64 * 1024) /* the receiver's body is read and thrown away, up to this */
#define MAX_EVENT_TYPES 16

/* The log's event types a webhook may ask for ("notice." + type); "*" is
 * every type, including those added later. Keep in step with event.h. */
static const char *const EVENT_TYPES[] = {
	EV_SUBMISSION_ACCEPTED, EV_CONTENT_SEALED, EV_RELAY_ACCEPTED, EV_DELIVERY_ACCEPTED,
	EV_DELIVERY_DEFERRED, EV_DELIVERY_FAILED, EV_OPENED, EV_CLICKED, EV_READ_CONFIRMED,
	EV_CANCELED, EV_TRACKING_SUMMARY,
};

/* Standard Webhooks' suggested schedule (5 s, 5 min, 30 min, 2 h, 5 h,
 * 10 h...), with 10 h repeated until the last attempt is more than 3 days
 * after the first: 13 attempts over 77 h 35 min 5 s. */
static const int64_t RETRY_S[] = {5, 300, 1800, 7200, 18000, 36000, 36000, 36000,
				  36000, 36000, 36000, 36000};
#define RETRIES ((int)(sizeof(RETRY_S) / sizeof(RETRY_S[0])))

struct job {
	struct webhook_delivery d; /* owned */
	struct job *next;
};

struct webhooks {
	struct selo *app;
	uint8_t key[32];           /* seals the secrets */
	EVP_PKEY *ed;              /* signs v1a (Ed25519); its public key is published */
	pthread_mutex_t mu;        /* guards everything below */
	pthread_cond_t work;       /* workers wait for jobs */
	pthread_cond_t wake;       /* the deliverer waits for a finished job or the poll */
	struct job *qhead, *qtail;
	int64_t *inflight;         /* outbox ids queued or being delivered */
	char (*inflight_wh)[32];
	size_t ninflight;
	int stopping;
	int started;
	pthread_t deliverer;
	pthread_t *workers;
	int nworkers;
	/* Errors that repeat each round or each delivery (diag.h). */
	struct diag_limit round_log, record_log;
};

/* ---- sealing the secrets */

/* DIR/keys/webhook.key, made by the first start that needs it (under
 * serve.lock). Only an absent file is made: one that cannot be read is an
 * error, never replaced, or every sealed secret would be lost. */
static int key_load(struct webhooks *w, struct selo_err *err)
{
	char dir[1100], path[1200];
	config_path(&w->app->cfg, "keys", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, KEY_FILE);
	if (access(path, F_OK) == 0 || errno != ENOENT)
		return keys_load_secret(dir, KEY_FILE, "restore it from the backup made with the "
					"database", w->key, err);
	if (keys_make_secret(dir, KEY_FILE, w->key, err) != 0)
		return -1;
	diag_info("made %s, the key that seals webhook secrets: back it up with the database",
		  path);
	return 0;
}

static int ed_key_make(struct webhooks *w, const char *path, struct selo_err *err)
{
	w->ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	BIO *b = BIO_new(BIO_s_mem());
	char *pem = NULL;
	long n = 0;
	int ok = w->ed && b && PEM_write_bio_PrivateKey(b, w->ed, NULL, NULL, 0, NULL, NULL) == 1 &&
		 (n = BIO_get_mem_data(b, &pem)) > 0;
	int r = ok ? file_write_atomic(path, pem, (size_t)n, 0600, err)
		   : err_set(err, 500, "keys", "webhooks: making the Ed25519 key failed");
	BIO_free(b);
	if (r == 0)
		diag_info("made %s, the key that signs webhooks (v1a)", path);
	return r;
}

/* DIR/keys/webhook-ed25519.pem, made by the first start that needs it. */
static int ed_key_load(struct webhooks *w, struct selo_err *err)
{
	char path[1100];
	config_path(&w->app->cfg, ED_KEY_FILE, path, sizeof(path));
	struct buf b = BUF_INIT;
	struct selo_err e2;
	err_clear(&e2);
	if (file_read(path, 16384, &b, &e2) != 0) {
		buf_free(&b);
		return ed_key_make(w, path, err);
	}
	BIO *bio = BIO_new_mem_buf(b.data, (int)b.len);
	w->ed = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	OPENSSL_cleanse(b.data, b.len);
	buf_free(&b);
	if (!w->ed || EVP_PKEY_get_base_id(w->ed) != EVP_PKEY_ED25519)
		return err_set(err, 500, "keys", "%s must hold an Ed25519 private key (PEM)", path);
	return 0;
}

/* nonce || AES-256-GCM(secret) || tag, bound to the webhook id. */
static int seal(const uint8_t key[32], const char *id, const uint8_t *secret,
		uint8_t out[SEALED_LEN])
{
	random_bytes(out, SEAL_NONCE);
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int len = 0, ok = c && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, out) == 1 &&
			  EVP_EncryptUpdate(c, NULL, &len, (const uint8_t *)id, (int)strlen(id)) == 1 &&
			  EVP_EncryptUpdate(c, out + SEAL_NONCE, &len, secret, WEBHOOK_SECRET_LEN) == 1 &&
			  EVP_EncryptFinal_ex(c, out + SEAL_NONCE + len, &len) == 1 &&
			  EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, SEAL_TAG,
					      out + SEAL_NONCE + WEBHOOK_SECRET_LEN) == 1;
	EVP_CIPHER_CTX_free(c);
	return ok ? 0 : -1;
}

static int unseal(const uint8_t key[32], const char *id, const uint8_t *in, size_t n,
		  uint8_t secret[WEBHOOK_SECRET_LEN])
{
	if (n != SEALED_LEN)
		return -1;
	uint8_t tag[SEAL_TAG];
	memcpy(tag, in + SEAL_NONCE + WEBHOOK_SECRET_LEN, SEAL_TAG);
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int len = 0, ok = c && EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, in) == 1 &&
			  EVP_DecryptUpdate(c, NULL, &len, (const uint8_t *)id, (int)strlen(id)) == 1 &&
			  EVP_DecryptUpdate(c, secret, &len, in + SEAL_NONCE, WEBHOOK_SECRET_LEN) == 1 &&
			  EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, SEAL_TAG, tag) == 1 &&
			  EVP_DecryptFinal_ex(c, secret + len, &len) == 1;
	EVP_CIPHER_CTX_free(c);
	if (!ok)
		OPENSSL_cleanse(secret, WEBHOOK_SECRET_LEN);
	return ok ? 0 : -1;
}

/* ---- pure pieces */

void webhook_sign_v1(const uint8_t *secret, size_t secret_len, const char *msg_id,
		     int64_t timestamp, const char *body, size_t body_len, struct buf *out)
{
	struct buf m = BUF_INIT;
	buf_printf(&m, "%s.%lld.", msg_id, (long long)timestamp);
	buf_append(&m, body, body_len);
	uint8_t mac[32];
	hmac_sha256(secret, secret_len, m.data, m.len, mac);
	buf_free(&m);
	buf_puts(out, "v1,");
	base64_encode(out, mac, sizeof(mac), 0);
}

/* Appends " v1a," + base64(Ed25519 over msg_id "." timestamp "." body). */
static int sign_v1a(EVP_PKEY *k, const char *msg_id, int64_t timestamp, const char *body,
		    size_t body_len, struct buf *out)
{
	struct buf m = BUF_INIT;
	buf_printf(&m, "%s.%lld.", msg_id, (long long)timestamp);
	buf_append(&m, body, body_len);
	uint8_t sig[64];
	size_t n = sizeof(sig);
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	int ok = c && EVP_DigestSignInit(c, NULL, NULL, NULL, k) == 1 &&
		 EVP_DigestSign(c, sig, &n, (const uint8_t *)m.data, m.len) == 1 && n == 64;
	EVP_MD_CTX_free(c);
	buf_free(&m);
	if (!ok)
		return -1;
	buf_puts(out, " v1a,");
	base64_encode(out, sig, n, 0);
	return 0;
}

int webhooks_public_key(struct webhooks *w, json_t **out, struct selo_err *err)
{
	uint8_t pub[32];
	size_t n = sizeof(pub);
	BIO *b = BIO_new(BIO_s_mem());
	char *pem = NULL;
	long pl = 0;
	int ok = b && EVP_PKEY_get_raw_public_key(w->ed, pub, &n) == 1 && n == 32 &&
		 PEM_write_bio_PUBKEY(b, w->ed) == 1 && (pl = BIO_get_mem_data(b, &pem)) > 0;
	if (ok) {
		struct buf k = BUF_INIT;
		buf_puts(&k, "whpk_");
		base64_encode(&k, pub, n, 0);
		*out = json_pack("{s:s,s:s%}", "public_key", buf_str(&k), "pem", pem, (size_t)pl);
		buf_free(&k);
	}
	BIO_free(b);
	return ok ? 0 : err_set(err, 500, "keys", "webhooks: reading the Ed25519 public key failed");
}

int64_t webhook_retry_delay_ms(int attempts, int speedup)
{
	if (attempts < 1 || attempts > RETRIES)
		return -1;
	int64_t ms = RETRY_S[attempts - 1] * 1000 / (speedup > 0 ? speedup : 1);
	return ms > 0 ? ms : 1;
}

static int url_refuse(struct selo_err *err, const char *why)
{
	err_set(err, 422, "validation-failed", "the webhook was not registered: its url is refused");
	return err_field(err, "url", "%s", why);
}

/* A refusal by the address policy names the setting that lifts it, for
 * those who mean it (a receiver on their own network, tests). */
static int url_refuse_private(struct selo_err *err, const char *why)
{
	url_refuse(err, why);
	if (err)
		snprintf(err->msg, sizeof(err->msg),
			 "the webhook was not registered: its url reaches a loopback, private, "
			 "link-local or reserved address; to allow such receivers set "
			 "webhooks.allow_private = yes in selo.conf");
	return -1;
}

/* Every address of host must be public. */
static int host_public(const char *host, struct selo_err *err)
{
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	int rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc != 0) {
		char msg[200];
		snprintf(msg, sizeof(msg), "the host %.120s does not resolve", host);
		return url_refuse(err, msg);
	}
	int r = 0;
	for (struct addrinfo *a = res; a && r == 0; a = a->ai_next) {
		if (netcheck_public(a->ai_addr))
			continue;
		char addr[64], msg[320];
		netcheck_text(a->ai_addr, addr, sizeof(addr));
		if (!strcmp(host, addr))
			snprintf(msg, sizeof(msg), "%s is not a public address (loopback, private, "
				 "link-local and reserved addresses are refused)", addr);
		else
			snprintf(msg, sizeof(msg), "%.120s resolves to %s, not a public address "
				 "(loopback, private, link-local and reserved addresses are refused)",
				 host, addr);
		r = url_refuse_private(err, msg);
	}
	freeaddrinfo(res);
	return r;
}

static int url_parts_check(CURLU *u, int allow_private, struct selo_err *err)
{
	char *scheme = NULL, *host = NULL, *user = NULL, *frag = NULL;
	int r = 0;
	curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
	curl_url_get(u, CURLUPART_USER, &user, 0);
	curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0);
	curl_url_get(u, CURLUPART_HOST, &host, 0);
	if (!scheme || (strcasecmp(scheme, "http") && strcasecmp(scheme, "https")))
		r = url_refuse(err, "the scheme must be http or https");
	else if (user)
		r = url_refuse(err, "a user name or password in the URL is not allowed; "
			       "receivers check the signature instead");
	else if (frag)
		r = url_refuse(err, "a fragment (#...) has no meaning in a webhook URL");
	else if (!host || !host[0] || strchr(host, '%'))
		r = url_refuse(err, "the URL needs a host (no IPv6 zone)");
	if (r == 0 && !allow_private) {
		size_t n = strlen(host);
		if (host[0] == '[' && n > 2 && host[n - 1] == ']') { /* IPv6 literal */
			memmove(host, host + 1, n - 2);
			host[n - 2] = '\0';
		}
		r = host_public(host, err);
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(user);
	curl_free(frag);
	return r;
}

int webhook_url_check(const char *url, int allow_private, struct selo_err *err)
{
	if (!url || !url[0] || strlen(url) > WEBHOOK_URL_MAX)
		return url_refuse(err, "must be an absolute http or https URL of at most 2048 bytes");
	for (const char *p = url; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return url_refuse(err, "must be ASCII without spaces or control characters "
					  "(percent-encode the rest)");
	CURLU *u = curl_url();
	if (!u)
		abort();
	int r;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
		r = url_refuse(err, "is not a valid absolute URL");
	else
		r = url_parts_check(u, allow_private, err);
	curl_url_cleanup(u);
	return r;
}

/* ---- registration */

static int webhook_event_type_known(const char *t)
{
	for (size_t i = 0; i < sizeof(EVENT_TYPES) / sizeof(EVENT_TYPES[0]); i++)
		if (!strcmp(t, EVENT_TYPES[i]))
			return 1;
	return 0;
}

/* ["notice.opened", ...] -> ",opened,...,", or "*". */
static int events_parse(const json_t *arr, struct buf *out, struct selo_err *err)
{
	if (!json_is_array(arr) || json_array_size(arr) == 0 ||
	    json_array_size(arr) > MAX_EVENT_TYPES)
		return err_field(err, "events", "must be a list of 1 to %d event types such as "
				 "\"notice.delivery_accepted\", or [\"*\"] for all", MAX_EVENT_TYPES);
	size_t i;
	json_t *v;
	buf_puts(out, ",");
	json_array_foreach(arr, i, v) {
		const char *t = json_string_value(v);
		if (t && !strcmp(t, "*") && json_array_size(arr) == 1) {
			buf_reset(out);
			buf_puts(out, "*");
			return 0;
		}
		if (!t || strncmp(t, "notice.", 7) || !webhook_event_type_known(t + 7))
			return err_field(err, "events", "%.120s is not an event type: use \"notice.\" + "
					 "a log event type (docs/api.md), or [\"*\"] alone", t ? t : "(not a string)");
		char item[48];
		snprintf(item, sizeof(item), ",%s,", t + 7);
		if (!strstr(buf_str(out), item))
			buf_printf(out, "%s,", t + 7);
	}
	return 0;
}

static json_t *events_json(const char *events)
{
	json_t *a = json_array();
	if (!strcmp(events, "*")) {
		json_array_append_new(a, json_string("*"));
		return a;
	}
	const char *p = events;
	while (*p) {
		p += *p == ',';
		size_t n = strcspn(p, ",");
		if (n) {
			char t[64];
			snprintf(t, sizeof(t), "notice.%.*s", (int)n, p);
			json_array_append_new(a, json_string(t));
		}
		p += n;
	}
	return a;
}

static json_t *webhook_json(const struct webhook_rec *r, int counts)
{
	char created[32];
	clock_rfc3339(r->created_ms, created);
	json_t *o = json_pack("{s:s,s:s,s:o,s:s,s:s}", "id", r->id, "url", r->url, "events",
			      events_json(r->events), "status", r->disabled_ms ? "disabled" : "active",
			      "created_at", created);
	if (r->disabled_ms) {
		char at[32];
		clock_rfc3339(r->disabled_ms, at);
		json_object_set_new(o, "disabled_at", json_string(at));
		json_object_set_new(o, "disabled_reason",
				    json_string(r->disabled_reason ? r->disabled_reason : ""));
	}
	if (r->old_secret_until_ms > clock_now_ms()) {
		char until[32];
		clock_rfc3339(r->old_secret_until_ms, until);
		json_object_set_new(o, "previous_secret_expires_at", json_string(until));
	}
	if (counts)
		json_object_set_new(o, "deliveries",
				    json_pack("{s:I,s:I,s:I,s:I}", "pending", (json_int_t)r->pending,
					      "delivered", (json_int_t)r->delivered, "failed",
					      (json_int_t)r->failed, "dropped", (json_int_t)r->dropped));
	return o;
}

static int body_check(struct webhooks *w, const json_t *body, const char **url,
		      struct buf *events, struct selo_err *err)
{
	if (!json_is_object(body))
		return err_set(err, 400, "invalid-request", "the body must be a JSON object");
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)body, k, v)
		if (strcmp(k, "url") && strcmp(k, "events"))
			err_field(err, k, "unknown field");
	*url = json_string_value(json_object_get(body, "url"));
	if (!*url)
		err_field(err, "url", "required: the http or https URL to POST events to");
	events_parse(json_object_get(body, "events"), events, err);
	if (err->nfields == 0 && webhook_url_check(*url, w->app->cfg.webhooks_allow_private, err))
		return -1;
	if (err->nfields)
		return err_set(err, 422, "validation-failed", "the webhook has %d invalid field%s; "
			       "nothing was stored", err->nfields, err->nfields > 1 ? "s" : "");
	return 0;
}

int webhook_create(struct webhooks *w, int64_t apikey_id, const json_t *body, json_t **out,
		   struct selo_err *err)
{
	const char *url = NULL;
	struct buf events = BUF_INIT;
	if (body_check(w, body, &url, &events, err) != 0) {
		buf_free(&events);
		return -1;
	}
	struct webhook_rec r;
	memset(&r, 0, sizeof(r));
	uint8_t raw[SELO_ID_BYTES], secret[WEBHOOK_SECRET_LEN], sealed[SEALED_LEN];
	char idt[SELO_ID_TEXT + 1];
	id_new(raw);
	id_to_text(raw, idt);
	snprintf(r.id, sizeof(r.id), "wh_%s", idt);
	random_bytes(secret, sizeof(secret));
	r.apikey_id = apikey_id;
	r.url = (char *)url;
	r.events = (char *)buf_str(&events);
	r.secret = sealed;
	r.secret_len = sizeof(sealed);
	r.created_ms = clock_now_ms();
	int rc = seal(w->key, r.id, secret, sealed) == 0
			 ? store_webhook_add(w->app->store, &r, WEBHOOK_MAX_PER_KEY, err)
			 : err_set(err, 500, "internal", "webhook: sealing the secret failed");
	if (rc == 0) {
		*out = webhook_json(&r, 0);
		struct buf s = BUF_INIT;
		buf_puts(&s, "whsec_");
		base64_encode(&s, secret, sizeof(secret), 0);
		json_object_set_new(*out, "secret", json_string(buf_str(&s)));
		OPENSSL_cleanse(s.data, s.len);
		buf_free(&s);
	}
	OPENSSL_cleanse(secret, sizeof(secret));
	buf_free(&events);
	return rc;
}

int webhook_list(struct webhooks *w, int64_t apikey_id, json_t **out, struct selo_err *err)
{
	struct webhook_rec *l = NULL;
	size_t n = 0;
	if (store_webhook_list(w->app->store, apikey_id, &l, &n, err) != 0)
		return -1;
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, webhook_json(&l[i], 0));
	webhook_recs_free(l, n);
	*out = json_pack("{s:o}", "webhooks", a);
	return 0;
}

int webhook_get(struct webhooks *w, int64_t apikey_id, const char *id, json_t **out,
		struct selo_err *err)
{
	struct webhook_rec r;
	int found = store_webhook_get(w->app->store, id, apikey_id, &r, err);
	if (found < 0)
		return -1;
	if (found == 0)
		return err_set(err, 404, "not-found", "no webhook with this id for this API key");
	*out = webhook_json(&r, 1);
	free(r.url);
	free(r.events);
	free(r.secret);
	free(r.disabled_reason);
	return 0;
}

/* The optional body of a rotation: {"overlap_seconds": N}. */
static int overlap_parse(const json_t *body, int64_t *overlap_s, struct selo_err *err)
{
	*overlap_s = WEBHOOK_OVERLAP_DEFAULT_S;
	if (!body)
		return 0;
	if (!json_is_object(body))
		return err_set(err, 400, "invalid-request", "the body must be a JSON object (or empty)");
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)body, k, v)
		if (strcmp(k, "overlap_seconds"))
			err_field(err, k, "unknown field; the body takes only overlap_seconds");
	json_t *o = json_object_get(body, "overlap_seconds");
	if (o && (!json_is_integer(o) || json_integer_value(o) < 0 ||
		  json_integer_value(o) > WEBHOOK_OVERLAP_MAX_S))
		err_field(err, "overlap_seconds",
			  "must be a whole number of seconds from 0 to %d (7 days)",
			  WEBHOOK_OVERLAP_MAX_S);
	if (err->nfields)
		return err_set(err, 422, "validation-failed",
			       "the rotation was refused; the secret is unchanged");
	if (o)
		*overlap_s = json_integer_value(o);
	return 0;
}

int webhook_rotate_secret(struct webhooks *w, int64_t apikey_id, const char *id,
			  const json_t *body, json_t **out, struct selo_err *err)
{
	int64_t overlap_s;
	if (overlap_parse(body, &overlap_s, err) != 0)
		return -1;
	uint8_t secret[WEBHOOK_SECRET_LEN], sealed[SEALED_LEN];
	random_bytes(secret, sizeof(secret));
	int64_t until = clock_now_ms() + overlap_s * 1000;
	int found = seal(w->key, id, secret, sealed) == 0
			    ? store_webhook_rotate_secret(w->app->store, id, apikey_id, sealed,
							  sizeof(sealed), until, err)
			    : err_set(err, 500, "internal", "webhook: sealing the secret failed");
	if (found == 0)
		err_set(err, 404, "not-found", "no webhook with this id for this API key");
	if (found == 1) {
		char at[32];
		clock_rfc3339(until, at);
		struct buf s = BUF_INIT;
		buf_puts(&s, "whsec_");
		base64_encode(&s, secret, sizeof(secret), 0);
		*out = json_pack("{s:s,s:s,s:s}", "id", id, "secret", buf_str(&s),
				 "previous_secret_expires_at", at);
		OPENSSL_cleanse(s.data, s.len);
		buf_free(&s);
		diag_info("webhook %s: secret rotated; the previous one signs too until %s", id, at);
	}
	OPENSSL_cleanse(secret, sizeof(secret));
	return found == 1 ? 0 : -1;
}

int webhook_delete(struct webhooks *w, int64_t apikey_id, const char *id, struct selo_err *err)
{
	int found = store_webhook_delete(w->app->store, id, apikey_id, err);
	if (found < 0)
		return -1;
	return found ? 0 : err_set(err, 404, "not-found", "no webhook with this id for this API key");
}

/* ---- one delivery */

/* {"type":"notice.<type>","timestamp":<event time>,"data":{...}}: the same
 * bytes on every attempt (only the headers' timestamp changes). */
static char *payload_make(const struct webhook_delivery *d)
{
	char type[48], ts[32];
	snprintf(type, sizeof(type), "notice.%s", d->type);
	clock_rfc3339(d->time_ms, ts);
	json_t *data = json_pack("{s:s,s:o,s:I,s:s%}", "notice", d->notice_id, "reference",
				 d->reference ? json_string(d->reference) : json_null(), "log_index",
				 (json_int_t)d->log_index, "entry", d->entry, d->entry_len);
	json_t *o = json_pack("{s:s,s:s,s:o}", "type", type, "timestamp", ts, "data", data);
	char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(o);
	return s;
}

struct attempt {
	int allow_private;
	char refused[64];         /* the address the policy refused, if any */
	size_t answer_len;
};

static curl_socket_t open_checked(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct attempt *t = arg;
	(void)purpose;
	if (!t->allow_private && !netcheck_public(&a->addr)) {
		netcheck_text(&a->addr, t->refused, sizeof(t->refused));
		return CURL_SOCKET_BAD;
	}
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static size_t answer_discard(char *p, size_t size, size_t n, void *arg)
{
	struct attempt *t = arg;
	(void)p;
	t->answer_len += size * n;
	return t->answer_len > ANSWER_MAX ? 0 : size * n;
}

static struct curl_slist *headers_make(const char *msg_id, int64_t ts, const char *sig)
{
	char h[512];
	struct curl_slist *l = curl_slist_append(NULL, "Content-Type: application/json");
	l = curl_slist_append(l, "Expect:");
	snprintf(h, sizeof(h), "webhook-id: %s", msg_id);
	l = curl_slist_append(l, h);
	snprintf(h, sizeof(h), "webhook-timestamp: %lld", (long long)ts);
	l = curl_slist_append(l, h);
	snprintf(h, sizeof(h), "webhook-signature: %s", sig);
	return curl_slist_append(l, h);
}

static void curl_prepare(struct webhooks *w, CURL *c, const struct webhook_delivery *d,
			 const char *body, struct curl_slist *hdr, struct attempt *t, char *errbuf)
{
	long timeout = w->app->cfg.webhooks_timeout_ms;
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, d->url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_PROXY, ""); /* no http_proxy & co.: the check is on the target */
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "Selo-Webhooks/1");
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_checked);
	curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, t);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, answer_discard);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
}

/* The outcome of an attempt from curl's result and the HTTP status. */
static void outcome_of(struct webhooks *w, const struct webhook_delivery *d, CURLcode rc,
		       long status, const struct attempt *t, const char *errbuf,
		       struct webhook_result *r, char *why, size_t whyn)
{
	r->http_status = rc == CURLE_OK ? (int)status : 0;
	if (rc == CURLE_OK && status >= 200 && status < 300) {
		r->outcome = WEBHOOK_DELIVERED;
		return;
	}
	if (rc == CURLE_OK && status == 410) {
		r->outcome = WEBHOOK_GONE;
		snprintf(why, whyn, "410 Gone: webhook disabled");
		return;
	}
	if (t->refused[0])
		snprintf(why, whyn, "refused to connect to %s: not a public address "
			 "(webhooks.allow_private = yes allows it)", t->refused);
	else if (rc != CURLE_OK)
		snprintf(why, whyn, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
	else
		snprintf(why, whyn, "HTTP %ld", status);
	int64_t delay = webhook_retry_delay_ms(d->attempts + 1, w->app->cfg.webhooks_retry_speedup);
	r->outcome = delay < 0 ? WEBHOOK_GAVE_UP : WEBHOOK_RETRY;
	r->next_ms = clock_now_ms() + (delay < 0 ? 0 : delay);
}

static void deliver(struct webhooks *w, CURL *c, const struct webhook_delivery *d,
		    struct webhook_result *r, char *why, size_t whyn)
{
	uint8_t secret[WEBHOOK_SECRET_LEN];
	char msg_id[40];
	snprintf(msg_id, sizeof(msg_id), "msg_%lld", (long long)d->outbox_id);
	char *body = payload_make(d);
	if (!body || unseal(w->key, d->webhook_id, d->secret, d->secret_len, secret) != 0) {
		/* Our fault, not the receiver's: retried on the schedule like any failure. */
		free(body);
		snprintf(why, whyn, "%s", body ? "the secret cannot be unsealed (webhook.key changed?)"
					       : "the payload could not be made");
		int64_t delay = webhook_retry_delay_ms(d->attempts + 1, w->app->cfg.webhooks_retry_speedup);
		r->outcome = delay < 0 ? WEBHOOK_GAVE_UP : WEBHOOK_RETRY;
		r->next_ms = clock_now_ms() + (delay < 0 ? 0 : delay);
		return;
	}
	int64_t ts = clock_now_ms() / 1000;
	struct buf sig = BUF_INIT;
	webhook_sign_v1(secret, sizeof(secret), msg_id, ts, body, strlen(body), &sig);
	/* During a rotation's overlap the previous secret signs too, so a
	 * receiver that knows either one accepts (Standard Webhooks: several
	 * space-separated signatures, any one valid is enough). */
	if (d->old_secret &&
	    unseal(w->key, d->webhook_id, d->old_secret, d->old_secret_len, secret) == 0) {
		buf_putc(&sig, ' ');
		webhook_sign_v1(secret, sizeof(secret), msg_id, ts, body, strlen(body), &sig);
	}
	OPENSSL_cleanse(secret, sizeof(secret));
	if (sign_v1a(w->ed, msg_id, ts, body, strlen(body), &sig) != 0)
		diag_warn("webhook %s, message %s: the Ed25519 signature failed; sent with v1 only",
			  d->webhook_id, msg_id);
	struct curl_slist *hdr = headers_make(msg_id, ts, buf_str(&sig));
	struct attempt t;
	memset(&t, 0, sizeof(t));
	t.allow_private = w->app->cfg.webhooks_allow_private;
	char errbuf[CURL_ERROR_SIZE] = "";
	curl_prepare(w, c, d, body, hdr, &t, errbuf);
	CURLcode rc = curl_easy_perform(c);
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	outcome_of(w, d, rc, status, &t, errbuf, r, why, whyn);
	curl_slist_free_all(hdr);
	buf_free(&sig);
	free(body);
}

/* ---- threads */

static void delivery_strings_free(struct webhook_delivery *d)
{
	free(d->url);
	free(d->secret);
	free(d->old_secret);
	free(d->reference);
	free(d->entry);
}

static void inflight_remove(struct webhooks *w, int64_t id)
{
	for (size_t i = 0; i < w->ninflight; i++) {
		if (w->inflight[i] != id)
			continue;
		w->ninflight--;
		w->inflight[i] = w->inflight[w->ninflight];
		memcpy(w->inflight_wh[i], w->inflight_wh[w->ninflight], sizeof(w->inflight_wh[0]));
		return;
	}
}

static void result_count(struct webhooks *w, const struct webhook_result *r)
{
	struct selo_metrics *m = &w->app->metrics;
	atomic_llong *c = r->outcome == WEBHOOK_DELIVERED ? &m->webhooks_delivered
			  : r->outcome == WEBHOOK_GAVE_UP ? &m->webhooks_gave_up
			  : r->outcome == WEBHOOK_GONE ? &m->webhooks_disabled
						       : &m->webhooks_failed_attempts;
	atomic_fetch_add(c, 1);
}

static int stopping_now(struct webhooks *w)
{
	pthread_mutex_lock(&w->mu);
	int stop = w->stopping;
	pthread_mutex_unlock(&w->mu);
	return stop;
}

/* Sleeps ms in steps of 100, less when the deliverer stops; 1 when it does. */
static int record_pause(struct webhooks *w, int64_t ms)
{
	for (int64_t t = 0; t < ms; t += 100) {
		if (stopping_now(w))
			return 1;
		usleep(100 * 1000);
	}
	return stopping_now(w);
}

/* The attempt's result is written before its row may be picked again.
 * While the store fails (a full disk) the worker keeps the result and tries
 * again, the row staying in flight, so a delivered message is not POSTed
 * again every round meanwhile. A stop lets go: the row stays pending and is
 * sent again after the restart, with the same webhook-id (at least once). */
static void result_store(struct webhooks *w, const struct webhook_delivery *d,
			 const struct webhook_result *r)
{
	int64_t delay = 200;
	struct selo_err err;
	for (int tries = 1;; tries++) {
		err_clear(&err);
		if (store_webhook_results(w->app->store, r, 1, &err) == 0) {
			if (tries > 1)
				diag_ended(&w->record_log, "webhooks: attempts are recorded again");
			return;
		}
		struct store_health h;
		store_health(w->app->store, &h);
		if (err.status == 500 && h.failing) {
			diag_error_limited(&w->record_log, "webhook %s, message msg_%lld: recording the "
					   "attempt failed; kept, and tried again: %s", d->webhook_id,
					   (long long)d->outbox_id, err.msg);
			if (!record_pause(w, delay)) {
				delay = delay * 2 < 1000 ? delay * 2 : 1000;
				continue;
			}
		}
		diag_error("webhook %s, message msg_%lld: recording the attempt failed (it stays "
			   "pending and is sent again): %s", d->webhook_id, (long long)d->outbox_id,
			   err.msg);
		return;
	}
}

/* One line per failed attempt (docs/operations.md "Logs"): the webhook, the
 * message, the notice and event it carries, the answer or the error. Never
 * the URL (it may carry the receiver's own credentials) nor the secret. */
static void result_log(const struct webhook_delivery *d, const struct webhook_result *r)
{
	char msg_id[32], next[32] = "", why[300];
	snprintf(msg_id, sizeof(msg_id), "msg_%lld", (long long)d->outbox_id);
	const char *e = r->error ? r->error : "no error text";
	diag_scrub(e, strlen(e), why, sizeof(why));
	struct diag_field f[4];
	int nf = 0;
	f[nf++] = (struct diag_field){.key = "event", .str = d->type};
	if (r->http_status)
		f[nf++] = (struct diag_field){.key = "status", .num = r->http_status};
	if (r->outcome == WEBHOOK_RETRY) {
		clock_rfc3339(r->next_ms, next);
		f[nf++] = (struct diag_field){.key = "next_attempt", .str = next};
	}
	struct diag_ids ids = {.notice = d->notice_id[0] ? d->notice_id : NULL,
			       .attempt = d->attempts + 1, .webhook = d->webhook_id,
			       .delivery = msg_id, .fields = f, .nfields = nf};
	if (r->outcome == WEBHOOK_GONE)
		diag_with(DIAG_WARN, &ids, "webhook %s answered 410 Gone: disabled", d->webhook_id);
	else if (r->outcome == WEBHOOK_GAVE_UP)
		diag_with(DIAG_WARN, &ids, "webhook %s, message %s: giving up after %d attempts: %s",
			  d->webhook_id, msg_id, d->attempts + 1, why);
	else if (r->outcome == WEBHOOK_RETRY)
		diag_with(DIAG_INFO, &ids, "webhook %s, message %s: attempt %d failed (%s); next at %s",
			  d->webhook_id, msg_id, d->attempts + 1, why, next);
}

static void result_record(struct webhooks *w, const struct webhook_delivery *d,
			  const struct webhook_result *r)
{
	result_count(w, r);
	result_store(w, d, r);
	if (r->outcome != WEBHOOK_DELIVERED)
		result_log(d, r);
}

static void *worker_main(void *arg)
{
	struct webhooks *w = arg;
	CURL *c = curl_easy_init();
	if (!c)
		abort();
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->qhead && !w->stopping)
			pthread_cond_wait(&w->work, &w->mu);
		if (w->stopping)
			break;
		struct job *j = w->qhead;
		w->qhead = j->next;
		if (!w->qhead)
			w->qtail = NULL;
		pthread_mutex_unlock(&w->mu);
		struct webhook_result r;
		memset(&r, 0, sizeof(r));
		char why[CURL_ERROR_SIZE + 64] = "";
		r.outbox_id = j->d.outbox_id;
		r.webhook_id = j->d.webhook_id;
		r.error = why;
		deliver(w, c, &j->d, &r, why, sizeof(why));
		if (!why[0])
			r.error = NULL;
		result_record(w, &j->d, &r);
		pthread_mutex_lock(&w->mu);
		inflight_remove(w, j->d.outbox_id);
		pthread_cond_signal(&w->wake);
		delivery_strings_free(&j->d);
		free(j);
	}
	pthread_mutex_unlock(&w->mu);
	curl_easy_cleanup(c);
	return NULL;
}

/* Called with mu held: may d be queued now? Not when it is in flight, nor
 * when its webhook already holds half of the workers. */
static int may_queue(const struct webhooks *w, const struct webhook_delivery *d)
{
	int same = 0, cap = w->nworkers / 2 > 0 ? w->nworkers / 2 : 1;
	for (size_t i = 0; i < w->ninflight; i++) {
		if (w->inflight[i] == d->outbox_id)
			return 0;
		same += !strcmp(w->inflight_wh[i], d->webhook_id);
	}
	return same < cap;
}

static void queue_due(struct webhooks *w, struct webhook_delivery *d, size_t n)
{
	pthread_mutex_lock(&w->mu);
	for (size_t i = 0; i < n; i++) {
		if (w->ninflight >= (size_t)w->nworkers || !may_queue(w, &d[i])) {
			delivery_strings_free(&d[i]);
			continue;
		}
		struct job *j = xcalloc(1, sizeof(*j));
		j->d = d[i]; /* the job owns the strings now */
		w->inflight[w->ninflight] = d[i].outbox_id;
		memcpy(w->inflight_wh[w->ninflight], d[i].webhook_id, sizeof(w->inflight_wh[0]));
		w->ninflight++;
		if (w->qtail)
			w->qtail->next = j;
		else
			w->qhead = j;
		w->qtail = j;
		pthread_cond_signal(&w->work);
	}
	pthread_mutex_unlock(&w->mu);
	free(d);
}

/* A failing round (the store fails) comes back every POLL_MS: logged once
 * per interval, with the count (diag.h). */
static void round_failed(struct webhooks *w, const char *what, const struct selo_err *err)
{
	diag_error_limited(&w->round_log, "webhooks: %s failed (retried every %d ms): %s", what,
			   POLL_MS, err->msg);
}

/* How many more deliveries of this webhook may start now (its cap and the
 * free workers), and how many it has in flight. */
static size_t room_for(struct webhooks *w, const char *id, size_t *mine)
{
	size_t cap = w->nworkers / 2 > 0 ? (size_t)w->nworkers / 2 : 1;
	pthread_mutex_lock(&w->mu);
	size_t free_workers = (size_t)w->nworkers - w->ninflight;
	*mine = 0;
	for (size_t i = 0; i < w->ninflight; i++)
		*mine += !strcmp(w->inflight_wh[i], id);
	pthread_mutex_unlock(&w->mu);
	size_t own = cap > *mine ? cap - *mine : 0;
	return own < free_workers ? own : free_workers;
}

/* Due rows are read webhook by webhook, starting one further each round,
 * so a webhook with a backlog (a receiver that stalls) cannot hide the
 * others' rows behind its own. */
static void queue_round(struct webhooks *w, size_t *next)
{
	struct selo_err err;
	err_clear(&err);
	char (*ids)[32] = NULL;
	size_t n = 0;
	if (store_webhook_active(w->app->store, &ids, &n, &err) != 0) {
		round_failed(w, "listing webhooks", &err);
		return;
	}
	int64_t now = clock_now_ms();
	for (size_t k = 0; k < n; k++) {
		const char *id = ids[(*next + k) % n];
		size_t mine, room = room_for(w, id, &mine);
		if (room == 0)
			continue;
		struct webhook_delivery *d = NULL;
		size_t nd = 0;
		/* Rows in flight come back from the query too: ask for enough. */
		if (store_webhook_due(w->app->store, id, now, room + mine, &d, &nd, &err) != 0) {
			round_failed(w, "reading due deliveries", &err);
			break;
		}
		queue_due(w, d, nd);
	}
	*next = n ? (*next + 1) % n : 0;
	free(ids);
}

/* Finished deliveries older than webhooks.keep_days go, a bounded number
 * per round (PRUNE_MAX rows: one short writer job), at the first round and
 * then every PRUNE_EVERY_MS, more often while a backlog remains. */
#define PRUNE_MAX 5000
#define PRUNE_EVERY_MS (60 * 1000)

static void prune_round(struct webhooks *w, int64_t *due_ms)
{
	int64_t now = clock_mono_ms();
	if (now < *due_ms)
		return;
	struct selo_err err;
	err_clear(&err);
	size_t n = 0;
	int64_t keep = (int64_t)w->app->cfg.webhooks_keep_days * 86400 * 1000;
	/* One node prunes at a time, on a store several share (store_lead). */
	int lead = store_lead(w->app->store, STORE_ROLE_PRUNER, &err);
	if (lead < 0 || (lead == 1 && store_webhook_prune(w->app->store, clock_now_ms() - keep,
							  PRUNE_MAX, &n, &err) != 0))
		round_failed(w, "pruning finished deliveries", &err);
	*due_ms = now + (n == PRUNE_MAX ? POLL_MS * 10 : PRUNE_EVERY_MS);
}

static void deliverer_round(struct webhooks *w, size_t *next)
{
	struct selo_err err;
	err_clear(&err);
	size_t added = 0;
	if (store_webhook_fanout(w->app->store, FANOUT_MAX, &added, &err) != 0)
		round_failed(w, "writing deliveries", &err);
	else
		diag_ended(&w->round_log, "webhooks: writing deliveries works again");
	pthread_mutex_lock(&w->mu);
	int busy = w->ninflight >= (size_t)w->nworkers;
	pthread_mutex_unlock(&w->mu);
	if (!busy)
		queue_round(w, next);
}

static void *deliverer_main(void *arg)
{
	struct webhooks *w = arg;
	int64_t prune_ms = 0;
	size_t next = 0;
	pthread_mutex_lock(&w->mu);
	while (!w->stopping) {
		pthread_mutex_unlock(&w->mu);
		deliverer_round(w, &next);
		prune_round(w, &prune_ms);
		pthread_mutex_lock(&w->mu);
		if (w->stopping)
			break;
		struct timespec ts = clock_deadline(CLOCK_REALTIME, POLL_MS);
		pthread_cond_timedwait(&w->wake, &w->mu, &ts);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* ---- life cycle */

int webhooks_open(struct selo *app, struct webhooks **out, struct selo_err *err)
{
	struct webhooks *w = xcalloc(1, sizeof(*w));
	w->app = app;
	if (key_load(w, err) != 0 || ed_key_load(w, err) != 0) {
		OPENSSL_cleanse(w->key, sizeof(w->key));
		EVP_PKEY_free(w->ed);
		free(w);
		return -1;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		OPENSSL_cleanse(w->key, sizeof(w->key));
		EVP_PKEY_free(w->ed);
		free(w);
		return err_set(err, 500, "curl", "webhooks: libcurl could not be initialised");
	}
	w->nworkers = app->cfg.webhooks_workers;
	w->inflight = xcalloc((size_t)w->nworkers, sizeof(*w->inflight));
	w->inflight_wh = xcalloc((size_t)w->nworkers, sizeof(*w->inflight_wh));
	w->workers = xcalloc((size_t)w->nworkers, sizeof(*w->workers));
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->work, NULL);
	pthread_cond_init(&w->wake, NULL);
	*out = w;
	return 0;
}

int webhooks_start(struct webhooks *w, struct selo_err *err)
{
	for (int i = 0; i < w->nworkers; i++) {
		if (pthread_create(&w->workers[i], NULL, worker_main, w) != 0) {
			webhooks_stop(w);
			return err_set(err, 500, "thread", "webhooks: cannot start a delivery thread");
		}
		w->started = i + 1;
	}
	if (pthread_create(&w->deliverer, NULL, deliverer_main, w) != 0) {
		webhooks_stop(w);
		return err_set(err, 500, "thread", "webhooks: cannot start the deliverer");
	}
	w->started = w->nworkers + 1;
	return 0;
}

void webhooks_stop(struct webhooks *w)
{
	if (!w || !w->started)
		return;
	pthread_mutex_lock(&w->mu);
	w->stopping = 1;
	pthread_cond_broadcast(&w->work);
	pthread_cond_broadcast(&w->wake);
	pthread_mutex_unlock(&w->mu);
	if (w->started > w->nworkers)
		pthread_join(w->deliverer, NULL);
	for (int i = 0; i < w->started && i < w->nworkers; i++)
		pthread_join(w->workers[i], NULL);
	w->started = 0;
	/* Queued but not started: still pending in the store, sent after the restart. */
	while (w->qhead) {
		struct job *j = w->qhead;
		w->qhead = j->next;
		delivery_strings_free(&j->d);
		free(j);
	}
	w->qtail = NULL;
	w->ninflight = 0;
}

void webhooks_close(struct webhooks *w)
{
	if (!w)
		return;
	webhooks_stop(w);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->work);
	pthread_cond_destroy(&w->wake);
	OPENSSL_cleanse(w->key, sizeof(w->key));
	EVP_PKEY_free(w->ed);
	free(w->inflight);
	free(w->inflight_wh);
	free(w->workers);
	free(w);
	curl_global_cleanup();
}
