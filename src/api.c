/* api.c: the private HTTP API (see api.h, docs/api.md). libmicrohttpd calls
 * api_access once after the headers, once per body chunk and once at the
 * end; bodies are collected up to api.max_body (413 beyond), their JSON
 * structure checked as it arrives (jsonscan.h: refused at the first limit
 * crossed, the rest discarded unread into memory), then routed. Bodies over
 * api.large_body need a valid key and one of api.large_requests slots.
 * Handlers build a json_t or a struct selo_err; the responders turn those
 * into JSON or problem+json. Writes block their listener thread until the
 * store's group commit is durable, so a 202 means "on disk". */
#include <arpa/inet.h>
#include <malloc.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "selo/accesslog.h"
#include "selo/api.h"
#include "selo/auth.h"
#include "selo/clock.h"
#include "selo/codec.h"
#include "selo/connguard.h"
#include "selo/crypto.h"
#include "selo/diag.h"
#include "selo/evidence.h"
#include "selo/export.h"
#include "selo/id.h"
#include "selo/jsonscan.h"
#include "selo/ledger.h"
#include "selo/notice.h"
#include "selo/sender.h"
#include "selo/sequence.h"
#include "selo/stats.h"
#include "selo/template.h"
#include "selo/webhook.h"

#define PROBLEM_BASE "urn:selo:problem:"
#define MAX_IDEM_KEY 255

/* JSON limits of a request body (docs/api.md "Limits"). The deepest
 * request is a batch's attachment, at depth 4. A notice at its largest has
 * about 36 values besides its template variables and attachments (20 tags,
 * track, the text fields); 128 leaves room for 90 variables, and each
 * attachment is 4. A request other than a batch may hold 64 notices' worth
 * (a sequence's 20 steps with their own variables fit). Parsed, a value
 * costs jansson 40 to 250 bytes, so a batch of 1000 is at most ~40 MB. */
#define API_JSON_DEPTH 16
#define API_NOTICE_VALUES 128
#define API_ATTACHMENT_VALUES 4
#define API_SINGLE_NOTICES 64
#define API_CONNECTIONS 1024u
/* Seconds a client refused for too many large requests should wait. */
#define API_BUSY_RETRY "2"

struct api {
	struct selo *app;
	struct MHD_Daemon *d;
	atomic_int stopping;  /* api_drain was called: new requests get 503 */
	atomic_int active;    /* requests begun and not yet answered and done */
	atomic_int large;     /* requests holding a large-body slot (api.large_requests) */
	struct exporter *exporter; /* PDF receipts; NULL without a ledger */
	struct auth_cache *keys;   /* for accepts only (auth.h) */
	struct connguard *guard;   /* api.request_timeout, room for new clients */
	struct diag_limit fail_log; /* 5xx answers (a full disk fails every accept): diag.h */
};

struct req {
	struct buf body;
	struct jsonscan scan;      /* the body's structure so far */
	struct selo_err *refused;  /* set: the answer; the rest of the body is discarded */
	int large;                 /* holds a large-body slot */
	int large_done;            /* held one until it was answered */
};

/* ---- responses */

static enum MHD_Result send_bytes(struct MHD_Connection *c, unsigned status, const char *ctype,
				  const void *p, size_t n, const char *const *headers)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(n, (void *)p, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", ctype);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	for (size_t i = 0; headers && headers[i]; i += 2)
		MHD_add_response_header(r, headers[i], headers[i + 1]);
	accesslog_note(c, n);
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_t *j,
				 const char *const *headers)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(j);
	if (!s)
		return MHD_NO;
	size_t n = strlen(s);
	s[n] = '\0';
	enum MHD_Result r = send_bytes(c, status, "application/json", s, n, headers);
	free(s);
	return r;
}

static const char *status_title(int status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 503: return "Service Unavailable";
	default: return status >= 500 ? "Internal Server Error" : "Error";
	}
}

/* "attachments[0].filename" -> "#/attachments/0/filename" (RFC 6901). */
static void field_pointer(const char *field, struct buf *out)
{
	buf_puts(out, "#/");
	for (const char *p = field; *p; p++) {
		if (*p == '.' || *p == '[')
			buf_putc(out, '/');
		else if (*p == ']')
			continue;
		else if (*p == '~')
			buf_puts(out, "~0");
		else if (*p == '/')
			buf_puts(out, "~1");
		else
			buf_putc(out, *p);
	}
}

/* RFC 9457 problem document for e (without sending it). */
static json_t *problem_json(const struct selo_err *e)
{
	int status = e->status ? e->status : 500;
	char type[96];
	snprintf(type, sizeof(type), PROBLEM_BASE "%s", e->type[0] ? e->type : "internal");
	json_t *p = json_pack("{s:s,s:s,s:i,s:s}", "type", type, "title", status_title(status),
			      "status", status, "detail",
			      status >= 500 && !e->msg[0] ? "internal error" : e->msg);
	if (e->nfields > 0) {
		json_t *errs = json_array();
		for (int i = 0; i < e->nfields; i++) {
			struct buf ptr = BUF_INIT;
			field_pointer(e->fields[i].field, &ptr);
			json_array_append_new(errs, json_pack("{s:s,s:s,s:s}", "field",
							      e->fields[i].field, "pointer",
							      buf_str(&ptr), "detail",
							      e->fields[i].msg));
			buf_free(&ptr);
		}
		json_object_set_new(p, "errors", errs);
	}
	return p;
}

/* Writes e as problem+json with its status and the extra headers; no
 * metrics, no rewriting: callers decide those. */
static enum MHD_Result send_problem_doc(struct MHD_Connection *c, const struct selo_err *e,
					const char *const *headers)
{
	json_t *p = problem_json(e);
	char *s = json_dumps(p, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(p);
	enum MHD_Result r = send_bytes(c, (unsigned)(e->status ? e->status : 500),
				       "application/problem+json", s, strlen(s), headers);
	free(s);
	return r;
}

static enum MHD_Result send_problem(struct api *a, struct MHD_Connection *c, struct selo_err *e)
{
	int status = e->status ? e->status : 500;
	if (status >= 500)
		diag_error_limited(&a->fail_log, "API request failed: %s", e->msg);
	if (status >= 500) {
		atomic_fetch_add(&a->app->metrics.http_5xx, 1);
		/* Storage errors can name paths (or a database's host); the caller
		 * gets a generic detail. A 503 (the database unreachable, a
		 * timeout) is worth retrying, and says so. */
		snprintf(e->msg, sizeof(e->msg), "%s",
			 status == 503 ? "temporarily unavailable; retry after the Retry-After delay "
					 "(the request changed nothing, or repeats safely with its "
					 "Idempotency-Key)"
				       : "internal error; the operator's log has the details");
	} else {
		atomic_fetch_add(&a->app->metrics.http_4xx, 1);
	}
	static const char *const auth_hdr[] = {"WWW-Authenticate", "Bearer realm=\"selo\"", NULL};
	static const char *const retry_hdr[] = {"Retry-After", "2", NULL};
	return send_problem_doc(c, e, status == 401 ? auth_hdr : status == 503 ? retry_hdr : NULL);
}

/* During a stop, on a connection opened before it: the client should come
 * back to the restarted process (its idempotency key makes a retry safe). */
static enum MHD_Result send_stopping(struct MHD_Connection *c)
{
	struct selo_err e;
	err_clear(&e);
	err_set(&e, 503, "stopping", "selo is stopping; retry in a few seconds");
	static const char *const hdrs[] = {"Retry-After", "5", "Connection", "close", NULL};
	return send_problem_doc(c, &e, hdrs);
}

/* A request refused by the body limits: 503 busy with Retry-After, not
 * logged (it is load, not a fault), or its 4xx (or a 500 of the key check). */
static enum MHD_Result send_refusal(struct api *a, struct MHD_Connection *c, struct selo_err *e)
{
	if (e->status != 503)
		return send_problem(a, c, e);
	atomic_fetch_add(&a->app->metrics.http_5xx, 1);
	static const char *const hdrs[] = {"Retry-After", API_BUSY_RETRY, NULL};
	return send_problem_doc(c, e, hdrs);
}

static enum MHD_Result send_error(struct api *a, struct MHD_Connection *c, int status,
				  const char *type, const char *msg)
{
	struct selo_err e;
	err_clear(&e);
	err_set(&e, status, type, "%s", msg);
	return send_problem(a, c, &e);
}

/* ---- helpers */

static int authenticate(struct api *a, struct MHD_Connection *c, struct apikey *key,
			struct selo_err *err)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	int r = auth_check_bearer(a->app->store, h, key, err);
	return r == 1 ? 0 : -1;
}

/* For accepts: the key may come from the cache, since the accept's own
 * transaction checks it again (store_notices_accept). */
static int authenticate_accept(struct api *a, struct MHD_Connection *c, struct apikey *key,
			       struct selo_err *err)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	int r = auth_check_bearer_cached(a->keys, a->app->store, h, key, err);
	return r == 1 ? 0 : -1;
}

static json_t *parse_body(const struct req *r, struct selo_err *err)
{
	json_error_t je;
	if (r->body.len == 0) {
		err_set(err, 400, "invalid-json", "the request body is empty; send a JSON object");
		return NULL;
	}
	json_t *j = json_loadb(r->body.data, r->body.len, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		err_set(err, 400, "invalid-json", "the body is not valid JSON (line %d, column %d): %s",
			je.line, je.column, je.text);
	return j;
}

static int check_content_type(struct MHD_Connection *c, struct selo_err *err)
{
	const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
	if (!ct)
		return 0;
	size_t n = strcspn(ct, ";");
	while (n > 0 && ct[n - 1] == ' ')
		n--;
	if ((n == 16 && !strncasecmp(ct, "application/json", 16)) ||
	    (n > 5 && !strncasecmp(ct + n - 5, "+json", 5)))
		return 0;
	return err_set(err, 415, "unsupported-media-type",
		       "send the notice as Content-Type: application/json");
}

/* Idempotency-Key: 1..255 visible ASCII characters. */
static int idempotency_key(struct MHD_Connection *c, const char **out, struct selo_err *err)
{
	const char *k = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
	*out = NULL;
	if (!k)
		return 0;
	size_t n = strlen(k);
	if (n == 0 || n > MAX_IDEM_KEY)
		return err_set(err, 400, "invalid-idempotency-key",
			       "Idempotency-Key must be 1 to %d visible ASCII characters", MAX_IDEM_KEY);
	for (size_t i = 0; i < n; i++)
		if (k[i] < 0x21 || k[i] > 0x7e)
			return err_set(err, 400, "invalid-idempotency-key",
				       "Idempotency-Key must be 1 to %d visible ASCII characters",
				       MAX_IDEM_KEY);
	*out = k;
	return 0;
}

/* What every JSON POST checks first, in this order: the Bearer key, the
 * Content-Type, the Idempotency-Key header (only when idem is not NULL) and
 * the body's JSON. NULL, with err filled, at the first that fails. An
 * accept (accept != 0) may take its key from the cache. */
static json_t *json_request(struct api *a, struct MHD_Connection *c, const struct req *r,
			    int accept, struct apikey *key, const char **idem,
			    struct selo_err *err)
{
	int bad = accept ? authenticate_accept(a, c, key, err) : authenticate(a, c, key, err);
	if (bad || check_content_type(c, err) || (idem && idempotency_key(c, idem, err)))
		return NULL;
	return parse_body(r, err);
}

/* ---- handlers */

struct accept_ctx {
	struct notice_req req;
	struct notice_new n;
	json_t *fields;
	struct disclosures disc;
	char idem[MAX_IDEM_KEY + 16];
	int parsed;
};

static void accept_ctx_free(struct accept_ctx *x)
{
	if (!x->parsed)
		return;
	json_decref(x->fields);
	disclosures_free(&x->disc);
	free((char *)x->n.payload_json);
	notice_req_free(&x->req);
	x->parsed = 0;
}

/* Validates one item and prepares it; err filled when it is refused. */
static int accept_prepare(struct api *a, const json_t *item, const struct apikey *key,
			  const char *idem, const uint8_t sha[32], struct accept_ctx *x,
			  struct selo_err *err)
{
	memset(x, 0, sizeof(*x));
	if (notice_parse(item, &a->app->cfg, a->app->templates, &x->req, err) != 0)
		return -1;
	if (idem)
		snprintf(x->idem, sizeof(x->idem), "%s", idem);
	x->parsed = 1;
	notice_prepare(&x->req, key->id, idem ? x->idem : NULL, sha, &x->n, &x->fields, &x->disc);
	x->n.event_fields = x->fields;
	x->n.key_active = 1; /* the key may be the cache's (authenticate_accept) */
	return 0;
}

/* A notice refused because its address bounced hard before: the outcome
 * line of what would have been a notice (docs/operations.md "Logs"). The
 * address stays out of the log; the API key and the rule's type say enough
 * to find the suppression (GET /v1/suppressions). */
static void log_suppressed(const struct accept_result *res, int64_t key_id)
{
	if (strcmp(res->err.type, "suppressed"))
		return;
	diag_info("suppressed: a notice for API key %lld was refused, its address is suppressed "
		  "(a hard bounce); nothing queued", (long long)key_id);
}

static enum MHD_Result post_notice(struct api *a, struct MHD_Connection *c, struct req *r)
{
	struct selo_err err;
	err_clear(&err);
	struct apikey key;
	const char *idem;
	json_t *body = json_request(a, c, r, 1, &key, &idem, &err);
	if (!body)
		return send_problem(a, c, &err);
	uint8_t sha[32];
	sha256(r->body.data, r->body.len, sha);
	struct accept_ctx x;
	int ok = accept_prepare(a, body, &key, idem, sha, &x, &err);
	json_decref(body);
	if (ok != 0) {
		atomic_fetch_add(&a->app->metrics.notices_rejected, 1);
		return send_problem(a, c, &err);
	}
	struct accept_result res;
	memset(&res, 0, sizeof(res));
	int st = store_notices_accept(a->app->store, &x.n, 1, &res, &err);
	accept_ctx_free(&x);
	if (st != 0)
		return send_problem(a, c, &err);
	if (res.failed) {
		log_suppressed(&res, key.id);
		return send_problem(a, c, &res.err);
	}
	static const char *const replay_hdr[] = {"Idempotent-Replayed", "true", NULL};
	if (res.replay) {
		atomic_fetch_add(&a->app->metrics.notices_replayed, 1);
	} else {
		atomic_fetch_add(&a->app->metrics.notices_accepted, 1);
		if (a->app->sender)
			sender_notify(a->app->sender);
	}
	char loc[64];
	snprintf(loc, sizeof(loc), "/v1/notices/%s", res.id);
	const char *hdrs[] = {"Location", loc, res.replay ? replay_hdr[0] : NULL, replay_hdr[1], NULL};
	return send_json(c, 202, json_pack("{s:s,s:s}", "id", res.id, "status", res.status), hdrs);
}

static enum MHD_Result post_batch(struct api *a, struct MHD_Connection *c, struct req *r)
{
	struct selo_err err;
	err_clear(&err);
	struct apikey key;
	const char *idem;
	json_t *body = json_request(a, c, r, 1, &key, &idem, &err);
	if (!body)
		return send_problem(a, c, &err);
	json_t *items = json_object_get(body, "notices");
	if (!json_is_object(body) || !json_is_array(items) || json_array_size(items) == 0 ||
	    json_object_size(body) != 1) {
		json_decref(body);
		err_set(&err, 422, "validation-failed", "the body must be {\"notices\": [notice, ...]}");
		err_field(&err, "notices", "must be a non-empty array of notices");
		return send_problem(a, c, &err);
	}
	size_t n = json_array_size(items);
	if (n > a->app->cfg.max_batch) {
		json_decref(body);
		err_set(&err, 413, "batch-too-large", "a batch holds at most %zu notices; this one has %zu",
			a->app->cfg.max_batch, n);
		return send_problem(a, c, &err);
	}
	struct accept_ctx *xs = xcalloc(n, sizeof(*xs));
	struct selo_err *errs = xcalloc(n, sizeof(*errs));
	struct notice_new *ns = xcalloc(n, sizeof(*ns));
	struct accept_result *res = xcalloc(n, sizeof(*res));
	size_t *slot = xcalloc(n, sizeof(*slot));
	size_t nvalid = 0;
	for (size_t i = 0; i < n; i++) {
		char ik[MAX_IDEM_KEY + 16];
		if (idem)
			snprintf(ik, sizeof(ik), "%s:%zu", idem, i);
		/* Each item's idempotency hash covers the item itself. */
		char *item_text = json_dumps(json_array_get(items, i), JSON_COMPACT | JSON_SORT_KEYS |
									     JSON_ENCODE_ANY);
		uint8_t sha[32];
		sha256(item_text, item_text ? strlen(item_text) : 0, sha);
		free(item_text);
		if (accept_prepare(a, json_array_get(items, i), &key, idem ? ik : NULL, sha, &xs[i],
				   &errs[i]) == 0) {
			ns[nvalid] = xs[i].n;
			slot[i] = nvalid++;
		}
	}
	json_decref(body);
	int st = nvalid ? store_notices_accept(a->app->store, ns, nvalid, res, &err) : 0;
	enum MHD_Result ret;
	if (st != 0) {
		ret = send_problem(a, c, &err);
	} else {
		json_t *out = json_array();
		size_t accepted = 0, rejected = 0;
		for (size_t i = 0; i < n; i++) {
			json_t *o = json_pack("{s:I}", "index", (json_int_t)i);
			struct accept_result *rr = xs[i].parsed ? &res[slot[i]] : NULL;
			if (!rr || rr->failed) {
				if (rr)
					log_suppressed(rr, key.id);
				json_object_set_new(o, "error", problem_json(rr ? &rr->err : &errs[i]));
				rejected++;
			} else {
				json_object_set_new(o, "id", json_string(rr->id));
				json_object_set_new(o, "status", json_string(rr->status));
				if (rr->replay)
					json_object_set_new(o, "replayed", json_true());
				accepted++;
			}
			json_array_append_new(out, o);
		}
		atomic_fetch_add(&a->app->metrics.notices_accepted, (long long)accepted);
		atomic_fetch_add(&a->app->metrics.notices_rejected, (long long)rejected);
		if (accepted && a->app->sender)
			sender_notify(a->app->sender);
		ret = send_json(c, 200, json_pack("{s:I,s:I,s:o}", "accepted", (json_int_t)accepted,
						  "rejected", (json_int_t)rejected, "results", out),
				NULL);
	}
	for (size_t i = 0; i < n; i++)
		accept_ctx_free(&xs[i]);
	free(xs);
	free(errs);
	free(ns);
	free(res);
	free(slot);
	return ret;
}

/* Authenticates the request and loads the caller's notice `id`. Returns 1
 * with *rec filled (notice_rec_free it), or 0 after sending the answer
 * (401, 404 for another key's or an unknown notice, 500). */
/* Key key_id's notice id into rec: 1, or 0 with the answer sent (404, 500). */
static int api_notice_of_key(struct api *a, struct MHD_Connection *c, const char *id, int64_t key_id,
			 struct notice_rec *rec, enum MHD_Result *sent)
{
	struct selo_err err;
	err_clear(&err);
	int found = id_text_valid(id) ? store_notice_get(a->app->store, id, key_id, rec, &err) : 0;
	if (found < 0)
		*sent = send_problem(a, c, &err);
	else if (found == 0)
		*sent = send_error(a, c, 404, "not-found", "no notice with this id for this API key");
	return found == 1;
}

static int owned_notice(struct api *a, struct MHD_Connection *c, const char *id,
			struct notice_rec *rec, enum MHD_Result *sent)
{
	struct selo_err err;
	err_clear(&err);
	struct apikey key;
	if (authenticate(a, c, &key, &err)) {
		*sent = send_problem(a, c, &err);
		return 0;
	}
	return api_notice_of_key(a, c, id, key.id, rec, sent);
}

/* The notice as GET /v1/notices/{id} shows it, to a key already checked. */
static enum MHD_Result send_notice(struct api *a, struct MHD_Connection *c, const char *id,
				   int64_t key_id)
{
	struct selo_err err;
	err_clear(&err);
	struct notice_rec rec;
	enum MHD_Result sent;
	if (!api_notice_of_key(a, c, id, key_id, &rec, &sent))
		return sent;
	struct event_rec *ev = NULL;
	size_t nev = 0;
	if (store_events_of(a->app->store, id, &ev, &nev, &err) != 0) {
		notice_rec_free(&rec);
		return send_problem(a, c, &err);
	}
	json_t *o = notice_json(&rec, ev, nev);
	notice_rec_free(&rec);
	event_recs_free(ev, nev);
	return send_json(c, 200, o, NULL);
}

static enum MHD_Result get_notice(struct api *a, struct MHD_Connection *c, const char *id)
{
	struct selo_err err;
	err_clear(&err);
	struct apikey key;
	if (authenticate(a, c, &key, &err))
		return send_problem(a, c, &err);
	return send_notice(a, c, id, key.id);
}

static int query_int(struct MHD_Connection *c, const char *name, int def, int lo, int hi, int *out,
		     struct selo_err *err)
{
	const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
	if (!v) {
		*out = def;
		return 0;
	}
	char *end;
	long n = strtol(v, &end, 10);
	if (end == v || *end || n < lo || n > hi)
		return err_set(err, 400, "invalid-query", "%s must be a number from %d to %d", name, lo, hi);
	*out = (int)n;
	return 0;
}

static int valid_status_name(const char *s)
{
	static const char *const names[] = {"scheduled", "queued", "sending", "deferred", "relayed",
					    "delivered", "failed", "canceled", NULL};
	for (size_t i = 0; names[i]; i++)
		if (!strcmp(s, names[i]))
			return 1;
	return 0;
}

static enum MHD_Result list_notices(struct api *a, struct MHD_Connection *c)
{
	struct selo_err err;
	err_clear(&err);
	struct apikey key;
	if (authenticate(a, c, &key, &err))
		return send_problem(a, c, &err);
	struct notice_filter f = {.apikey_id = key.id};
	f.reference = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "reference");
	f.status = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "status");
	f.after = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "after");
	if (query_int(c, "limit", 100, 1, 1000, &f.limit, &err))
		return send_problem(a, c, &err);
	if (f.status && !valid_status_name(f.status))
		return send_error(a, c, 400, "invalid-query",
				  "status must be one of scheduled, queued, sending, deferred, relayed, "
				  "delivered, failed, canceled");
	if (f.after && !id_text_valid(f.after))
		return send_error(a, c, 400, "invalid-query", "after must be a notice id");
	struct notice_rec *recs = NULL;
	size_t n = 0;
	if (store_notice_list(a->app->store, &f, &recs, &n, &err) != 0)
		return send_problem(a, c, &err);
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, notice_json(&recs[i], NULL, 0));
	json_t *next = n == (size_t)f.limit ? json_string(recs[n - 1].id) : json_null();
	notice_recs_free(recs, n);
	return send_json(c, 200, json_pack("{s:o,s:o}", "notices", arr, "next", next), NULL);
}

/* Damaged evidence is the operator's failure, and the caller must know
 * which notice it is and that nothing was handed out: the detail (it names
 * the notice, never a path or a personal value) is kept, unlike other 5xx. */
static enum MHD_Result send_evidence_damaged(struct api *a, struct MHD_Connection *c,
					     const struct selo_err *e)
{
	diag_error("API: %s", e->msg);
	atomic_fetch_add(&a->app->metrics.http_5xx, 1);
	return send_problem_doc(c, e, NULL);
}

static enum MHD_Result get_message(struct api *a, struct MHD_Connection *c, const char *id)
{
	struct selo_err err;
	err_clear(&err);
	struct notice_rec rec;
	enum MHD_Result sent;
	if (!owned_notice(a, c, id, &rec, &sent))
		return sent;
	notice_rec_free(&rec);
	struct buf eml = BUF_INIT;
	char hex[65];
	/* hex: the digest the log seals, and the bytes were checked against it */
	int found = evidence_message(a->app->store, id, &eml, hex, &err);
	if (found <= 0) {
		buf_free(&eml);
		if (found < 0 && !strcmp(err.type, EVIDENCE_DAMAGED))
			return send_evidence_damaged(a, c, &err);
		if (found < 0)
			return send_problem(a, c, &err);
		return send_error(a, c, 404, "not-sealed",
				  "the message has not been composed yet; try again shortly");
	}
	uint8_t d[32];
	hex_decode(hex, 64, d, sizeof(d));
	struct buf dig = BUF_INIT;
	buf_puts(&dig, "sha-256=:");
	base64_encode(&dig, d, 32, 0);
	buf_puts(&dig, ":");
	const char *hdrs[] = {"Repr-Digest", dig.data, "X-Selo-SHA256", hex, NULL};
	enum MHD_Result r = send_bytes(c, 200, "message/rfc822", eml.data, eml.len, hdrs);
	buf_free(&eml);
	buf_free(&dig);
	return r;
}

/* A receipt not yet covered by a timestamped checkpoint is 503 with a
 * retry hint: the detail is for the caller, as is. */
static enum MHD_Result api_receipt_failed(struct api *a, struct MHD_Connection *c,
				      struct selo_err *err)
{
	if (err->status == 503) {
		static const char *const retry[] = {"Retry-After", "2", NULL};
		return send_problem_doc(c, err, retry);
	}
	if (!strcmp(err->type, EVIDENCE_DAMAGED))
		return send_evidence_damaged(a, c, err);
	return send_problem(a, c, err);
}

static enum MHD_Result get_receipt(struct api *a, struct MHD_Connection *c, const char *id)
{
	struct selo_err err;
	err_clear(&err);
	struct notice_rec rec;
	enum MHD_Result sent;
	if (!owned_notice(a, c, id, &rec, &sent))
		return sent;
	notice_rec_free(&rec);
	const char *format = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "format");
	const char *form = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "form");
	const char *lang = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "lang");
	int pdf = format && !strcmp(format, "pdf");
	if (format && !pdf && strcmp(format, "json") != 0)
		return send_error(a, c, 400, "invalid-query", "format must be json or pdf");
	if (form && strcmp(form, "full") && strcmp(form, "short"))
		return send_error(a, c, 400, "invalid-query", "form must be full or short");
	if (lang && (!pdf || !export_lang(lang)))
		return send_error(a, c, 400, "invalid-query",
				  pdf ? "lang must be pt-BR or en" : "lang applies to format=pdf");
	if (!a->app->ledger) {
		err_set(&err, 503, "no-ledger", "the ledger is not running");
		return api_receipt_failed(a, c, &err);
	}
	int short_form = form && !strcmp(form, "short");
	struct buf json = BUF_INIT, out = BUF_INIT;
	if (export_receipt_json(a->app->ledger, id, short_form, &json, &err) != 0 ||
	    (pdf && export_receipt_pdf(a->exporter, id, short_form, lang, &json, &out, &err) != 0)) {
		buf_free(&json);
		buf_free(&out);
		return api_receipt_failed(a, c, &err);
	}
	char cd[80];
	snprintf(cd, sizeof(cd), "attachment; filename=\"receipt-%s.%s\"", id, pdf ? "pdf" : "json");
	const char *hdrs[] = {"Content-Disposition", cd, NULL};
	const struct buf *body = pdf ? &out : &json;
	enum MHD_Result ret = send_bytes(c, 200, pdf ? "application/pdf" : "application/json",
					 body->data, body->len, hdrs);
	buf_free(&json);
	buf_free(&out);
	return ret;
}

/* 503 when the database does not answer, or when its writes fail (a full
 * disk: the store's health, store.h). The reason is a class, never a path. */
static enum MHD_Result get_health(struct api *a, struct MHD_Connection *c)
{
	struct selo_err err;
	err_clear(&err);
	int answers = store_ping(a->app->store, &err) == 0;
	struct store_health h;
	store_health(a->app->store, &h);
	int ok = answers && !h.failing;
	json_t *o = json_pack("{s:s,s:s,s:s}", "status", ok ? "ok" : "unavailable", "store",
			      ok ? "ok" : "failing", "transport",
			      a->app->cfg.smtp_mode == SMTP_RELAY ? "relay"
			      : a->app->cfg.smtp_mode == SMTP_MX ? "mx" : "maildir");
	if (h.failing) {
		char since[32];
		clock_rfc3339(h.failing_since_ms, since);
		json_object_set_new(o, "store_reason", json_string(store_fault_name(h.fault)));
		json_object_set_new(o, "store_failing_since", json_string(since));
	} else if (!answers) {
		json_object_set_new(o, "store_reason", json_string("unreadable"));
	}
	return send_json(c, ok ? 200 : 503, o, NULL);
}

/* The store's health of writes. /metrics answers 200 even then: a
 * Prometheus scrape that failed would lose every other figure too, and
 * these gauges are what an alert needs. */
static void metrics_store_health(struct api *a, struct buf *b)
{
	struct store_health h;
	store_health(a->app->store, &h);
	buf_printf(b,
		   "# HELP selo_store_failing 1 while the store's writes fail (a full disk).\n"
		   "# TYPE selo_store_failing gauge\nselo_store_failing %d\n"
		   "# HELP selo_store_failing_since_seconds When the writes began to fail (Unix "
		   "time), 0 while they succeed.\n"
		   "# TYPE selo_store_failing_since_seconds gauge\n"
		   "selo_store_failing_since_seconds %.3f\n"
		   "# HELP selo_store_write_failures_total Writes of the store that failed.\n"
		   "# TYPE selo_store_write_failures_total counter\n"
		   "selo_store_write_failures_total %lld\n",
		   h.failing, (double)h.failing_since_ms / 1000.0, (long long)h.failures);
}

static enum MHD_Result get_metrics(struct api *a, struct MHD_Connection *c)
{
	struct selo_err err;
	err_clear(&err);
	struct store_counts k;
	memset(&k, 0, sizeof(k));
	store_counts(a->app->store, &k, &err);
	struct selo_metrics *m = &a->app->metrics;
	struct buf b = BUF_INIT;
	buf_printf(&b,
		   "# HELP selo_notices Notices by state.\n# TYPE selo_notices gauge\n"
		   "selo_notices{state=\"queued\"} %lld\nselo_notices{state=\"sending\"} %lld\n"
		   "selo_notices{state=\"deferred\"} %lld\nselo_notices{state=\"relayed\"} %lld\n"
		   "selo_notices{state=\"delivered\"} %lld\nselo_notices{state=\"failed\"} %lld\n"
		   "selo_notices{state=\"scheduled\"} %lld\nselo_notices{state=\"canceled\"} %lld\n"
		   "# HELP selo_events Events recorded.\n# TYPE selo_events gauge\nselo_events %lld\n",
		   (long long)k.queued, (long long)k.sending, (long long)k.deferred,
		   (long long)k.relayed, (long long)k.delivered, (long long)k.failed,
		   (long long)k.scheduled, (long long)k.canceled, (long long)k.events);
	struct { const char *name; atomic_llong *v; } ctr[] = {
		{"selo_http_requests_total", &m->http_requests},
		{"selo_http_client_errors_total", &m->http_4xx},
		{"selo_http_server_errors_total", &m->http_5xx},
		{"selo_notices_accepted_total", &m->notices_accepted},
		{"selo_notices_replayed_total", &m->notices_replayed},
		{"selo_notices_rejected_total", &m->notices_rejected},
		{"selo_smtp_sessions_total", &m->smtp_sessions},
		{"selo_messages_sealed_total", &m->messages_sealed},
		{"selo_messages_accepted_total", &m->messages_accepted},
		{"selo_messages_deferred_total", &m->messages_deferred},
		{"selo_messages_failed_total", &m->messages_failed},
		{"selo_webhook_deliveries_total", &m->webhooks_delivered},
		{"selo_webhook_failed_attempts_total", &m->webhooks_failed_attempts},
		{"selo_webhook_gave_up_total", &m->webhooks_gave_up},
		{"selo_webhooks_disabled_total", &m->webhooks_disabled},
		{"selo_track_hits_folded_total", &m->track_hits_folded},
	};
	for (size_t i = 0; i < sizeof(ctr) / sizeof(ctr[0]); i++)
		buf_printf(&b, "# TYPE %s counter\n%s %lld\n", ctr[i].name, ctr[i].name,
			   (long long)atomic_load(ctr[i].v));
	/* Requests begun and not yet finished, besides this one: what a stop
	 * waits for (api_stop). */
	buf_printf(&b, "# TYPE selo_http_requests_in_progress gauge\nselo_http_requests_in_progress %d\n",
		   atomic_load(&a->active) - 1);
	buf_printf(&b, "# TYPE selo_store_wal_restarts_total counter\nselo_store_wal_restarts_total %lld\n",
		   (long long)store_wal_restarts(a->app->store));
	metrics_store_health(a, &b);
	enum MHD_Result r = send_bytes(c, 200, "text/plain; version=0.0.4", b.data, b.len, NULL);
	buf_free(&b);
	return r;
}

/* ---- routing */

/* Webhooks: webhook.h does the work; this only maps HTTP onto it. */
static enum MHD_Result api_webhook_answer(struct api *a, struct MHD_Connection *c, int rc,
				      unsigned status, json_t *out, struct selo_err *err)
{
	if (rc != 0)
		return send_problem(a, c, err);
	if (!out) { /* 204: no body, so no Content-Type */
		struct MHD_Response *resp =
			MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
		if (!resp)
			return MHD_NO;
		accesslog_note(c, 0);
		enum MHD_Result ret = MHD_queue_response(c, status, resp);
		MHD_destroy_response(resp);
		return ret;
	}
	char loc[80] = "";
	json_t *id = json_object_get(out, "id");
	if (status == 201 && json_is_string(id))
		snprintf(loc, sizeof(loc), "/v1/webhooks/%s", json_string_value(id));
	const char *hdrs[] = {"Location", loc, NULL};
	return send_json(c, status, out, status == 201 ? hdrs : NULL);
}

/* What every webhook route checks first: the Bearer key, then that the
 * webhook worker runs. 0, or -1 with the answer sent in *sent. */
static int api_webhook_caller(struct api *a, struct MHD_Connection *c, struct apikey *key,
			  enum MHD_Result *sent)
{
	struct selo_err err;
	err_clear(&err);
	if (authenticate(a, c, key, &err)) {
		*sent = send_problem(a, c, &err);
		return -1;
	}
	if (!a->app->webhooks) {
		*sent = send_error(a, c, 503, "no-webhooks", "webhooks are not running");
		return -1;
	}
	return 0;
}

/* GET /v1/webhooks/public-key */
static enum MHD_Result get_webhooks_public_key(struct api *a, struct MHD_Connection *c)
{
	struct apikey key;
	enum MHD_Result sent;
	if (api_webhook_caller(a, c, &key, &sent))
		return sent;
	struct selo_err err;
	err_clear(&err);
	json_t *out = NULL;
	int rc = webhooks_public_key(a->app->webhooks, &out, &err);
	return api_webhook_answer(a, c, rc, 200, out, &err);
}

/* GET /v1/webhooks/{id} */
static enum MHD_Result get_webhook(struct api *a, struct MHD_Connection *c, const char *id)
{
	struct apikey key;
	enum MHD_Result sent;
	if (api_webhook_caller(a, c, &key, &sent))
		return sent;
	struct selo_err err;
	err_clear(&err);
	json_t *out = NULL;
	int rc = webhook_get(a->app->webhooks, key.id, id, &out, &err);
	return api_webhook_answer(a, c, rc, 200, out, &err);
}

/* DELETE /v1/webhooks/{id} */
static enum MHD_Result delete_webhook(struct api *a, struct MHD_Connection *c, const char *id)
{
	struct apikey key;
	enum MHD_Result sent;
	if (api_webhook_caller(a, c, &key, &sent))
		return sent;
	struct selo_err err;
	err_clear(&err);
	int rc = webhook_delete(a->app->webhooks, key.id, id, &err);
	return api_webhook_answer(a, c, rc, 204, NULL, &err);
}

/* GET /v1/webhooks */
static enum MHD_Result list_webhooks(struct api *a, struct MHD_Connection *c)
{
	struct apikey key;
	enum MHD_Result sent;
	if (api_webhook_caller(a, c, &key, &sent))
		return sent;
	struct selo_err err;
	err_clear(&err);
	json_t *out = NULL;
	int rc = webhook_list(a->app->webhooks, key.id, &out, &err);
	return api_webhook_answer(a, c, rc, 200, out, &err);
}

/* POST /v1/webhooks */
static enum MHD_Result post_webhook(struct api *a, struct MHD_Connection *c, struct req *r)
{
	struct apikey key;
	enum MHD_Result sent;
	if (api_webhook_caller(a, c, &key, &sent))
		return sent;
	struct selo_err err;
	err_clear(&err);
	json_t *body = check_content_type(c, &err) ? NULL : parse_body(r, &err);
	if (!body)
		return send_problem(a, c, &err);
	json_t *out = NULL;
	int rc = webhook_create(a->app->webhooks, key.id, body, &out, &err);
	json_decref(body);
	return api_webhook_answer(a, c, rc, 201, out, &err);
}

/* POST /v1/webhooks/{id}/rotate-secret (docs/keys.md): a new secret, the
 * old one signing beside it through the overlap. The body is optional. */
static enum MHD_Result rt_post_webhook_rotate(struct api *a, struct MHD_Connection *c,
					   struct req *r, const char *id)
{
	struct apikey key;
	enum MHD_Result sent;
	if (api_webhook_caller(a, c, &key, &sent))
		return sent;
	struct selo_err err;
	err_clear(&err);
	json_t *body = NULL;
	if (r->body.len && (check_content_type(c, &err) || !(body = parse_body(r, &err))))
		return send_problem(a, c, &err);
	json_t *out = NULL;
	int rc = webhook_rotate_secret(a->app->webhooks, key.id, id, body, &out, &err);
	json_decref(body);
	return api_webhook_answer(a, c, rc, 200, out, &err);
}

/* ---- /v1/suppressions (store.h "Suppressions"): the caller's own. */

static json_t *suppression_json(const struct suppression_rec *r)
{
	char when[32];
	clock_rfc3339(r->created_ms, when);
	return json_pack("{s:s,s:s,s:s,s:s,s:s}", "address", r->address ? r->address : "",
			 "enhanced", r->enhanced, "reason", r->reason ? r->reason : "",
			 "notice_id", r->notice_id, "created_at", when);
}

/* Newest first; "next" is the cursor to pass as ?after= for the next page. */
static enum MHD_Result list_suppressions(struct api *a, struct MHD_Connection *c)
{
	struct selo_err err;
	err_clear(&err);
	struct apikey key;
	int limit;
	if (authenticate(a, c, &key, &err) || query_int(c, "limit", 100, 1, 1000, &limit, &err))
		return send_problem(a, c, &err);
	const char *after = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "after");
	char *end = NULL;
	long long before = after ? strtoll(after, &end, 10) : 0;
	if (after && (end == after || *end || before < 1))
		return send_error(a, c, 400, "invalid-query", "after must be the \"next\" of a previous page");
	struct suppression_rec *recs = NULL;
	size_t n = 0;
	if (store_suppression_list(a->app->store, key.id, before, limit, &recs, &n, &err) != 0)
		return send_problem(a, c, &err);
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, suppression_json(&recs[i]));
	char cursor[24];
	snprintf(cursor, sizeof(cursor), "%lld", n ? (long long)recs[n - 1].id : 0LL);
	json_t *next = n == (size_t)limit ? json_string(cursor) : json_null();
	suppression_recs_free(recs, n);
	return send_json(c, 200, json_pack("{s:o,s:o}", "suppressions", arr, "next", next), NULL);
}

/* address arrives percent-decoded by libmicrohttpd. */
static enum MHD_Result delete_suppression(struct api *a, struct MHD_Connection *c,
					  const char *address)
{
	struct selo_err err;
	err_clear(&err);
	struct apikey key;
	if (authenticate(a, c, &key, &err))
		return send_problem(a, c, &err);
	int rc = store_suppression_delete(a->app->store, key.id, address, &err);
	if (rc == 0)
		return send_error(a, c, 404, "not-found", "this API key has no suppression of that address");
	return api_webhook_answer(a, c, rc < 0 ? -1 : 0, 204, NULL, &err);
}

/* ---- scheduling and sequences (sequence.h, store.h) */

/* DELETE /v1/notices/{id}[?reason=]: cancels a notice not yet handed to
 * SMTP; 409 once it has been. Canceling twice answers as the first did. */
static enum MHD_Result delete_notice(struct api *a, struct MHD_Connection *c, const char *id)
{
	struct selo_err err;
	err_clear(&err);
	struct apikey key;
	if (authenticate(a, c, &key, &err))
		return send_problem(a, c, &err);
	const char *reason = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "reason");
	if (!reason)
		reason = "other";
	if (!sequence_reason_valid(reason))
		return send_error(a, c, 400, "invalid-query",
				  "reason must be one of paid, agreement, disputed, other");
	int rc = store_notice_cancel(a->app->store, id, key.id, reason, &err);
	if (rc < 0)
		return send_problem(a, c, &err);
	if (rc == 0) /* the outcome line (docs/operations.md "Logs"); not again on a repeat */
		diag_with(DIAG_INFO, &(struct diag_ids){.notice = id}, "canceled (%s) by API key %lld",
			  reason, (long long)key.id);
	return send_notice(a, c, id, key.id);
}

static enum MHD_Result send_sequence(struct api *a, struct MHD_Connection *c, const char *id,
				     int64_t key_id, unsigned status, json_t *extra,
				     const char *const *headers)
{
	struct selo_err err;
	err_clear(&err);
	struct sequence_rec q;
	int r = store_sequence_get(a->app->store, id, key_id, &q, &err);
	if (r <= 0) {
		json_decref(extra);
		return r < 0 ? send_problem(a, c, &err)
			     : send_error(a, c, 404, "not-found", "no such sequence for this API key");
	}
	json_t *o = sequence_json(&q);
	sequence_rec_free(&q);
	if (extra)
		json_object_update(o, extra);
	json_decref(extra);
	return send_json(c, status, o, headers);
}

static enum MHD_Result post_sequence(struct api *a, struct MHD_Connection *c, struct req *r)
{
	struct selo_err err;
	err_clear(&err);
	struct apikey key;
	const char *idem;
	json_t *body = json_request(a, c, r, 0, &key, &idem, &err);
	if (!body)
		return send_problem(a, c, &err);
	struct sequence_req q;
	uint8_t sha[32];
	sha256(r->body.data, r->body.len, sha);
	int ok = sequence_parse(body, &a->app->cfg, a->app->templates, key.id, sha, clock_now_ms(),
				&q, &err);
	json_decref(body);
	if (ok != 0)
		return send_problem(a, c, &err);
	struct sequence_new sn = {q.id, key.id, q.request_json, idem, {0}, q.notices, q.n};
	memcpy(sn.request_sha256, sha, 32);
	char replay[32] = "";
	int rc = store_sequence_add(a->app->store, &sn, replay, &err);
	char id[32];
	snprintf(id, sizeof(id), "%s", rc == 1 ? replay : q.id);
	sequence_req_free(&q);
	if (rc < 0)
		return send_problem(a, c, &err);
	if (rc == 0 && a->app->sender)
		sender_notify(a->app->sender);
	char loc[64];
	snprintf(loc, sizeof(loc), "/v1/sequences/%s", id);
	const char *hdrs[] = {"Location", loc, rc == 1 ? "Idempotent-Replayed" : NULL, "true", NULL};
	return send_sequence(a, c, id, key.id, rc == 1 ? 200 : 201, NULL, hdrs);
}

static enum MHD_Result get_sequence(struct api *a, struct MHD_Connection *c, const char *id)
{
	struct selo_err err;
	err_clear(&err);
	struct apikey key;
	if (authenticate(a, c, &key, &err))
		return send_problem(a, c, &err);
	return send_sequence(a, c, id, key.id, 200, NULL, NULL);
}

/* POST /v1/sequences/{id}/stop {"reason": ...}: cancels what is left. */
static enum MHD_Result stop_sequence(struct api *a, struct MHD_Connection *c, const char *id,
				     struct req *r)
{
	struct selo_err err;
	err_clear(&err);
	struct apikey key;
	json_t *body = json_request(a, c, r, 0, &key, NULL, &err);
	if (!body)
		return send_problem(a, c, &err);
	const char *reason = json_string_value(json_object_get(body, "reason"));
	if (!json_is_object(body) || !sequence_reason_valid(reason) || json_object_size(body) != 1) {
		json_decref(body);
		err_set(&err, 422, "validation-failed", "the stop request is invalid; nothing changed");
		err_field(&err, "reason", "is required: paid, agreement, disputed or other (and the "
					  "only field)");
		return send_problem(a, c, &err);
	}
	int64_t canceled = 0;
	int rc = store_sequence_stop(a->app->store, id, key.id, reason, &canceled, &err);
	if (rc == 0)
		diag_info("sequence %s stopped (%s) by API key %lld: %lld notice(s) canceled", id, reason,
			  (long long)key.id, (long long)canceled);
	json_decref(body);
	if (rc < 0)
		return send_problem(a, c, &err);
	return send_sequence(a, c, id, key.id, 200,
			     json_pack("{s:I}", "canceled_now", (json_int_t)canceled), NULL);
}

/* GET /v1/stats (docs/stats.md): the caller's own notices only. */
static enum MHD_Result get_stats(struct api *a, struct MHD_Connection *c)
{
	struct selo_err err;
	err_clear(&err);
	struct apikey key;
	if (authenticate(a, c, &key, &err))
		return send_problem(a, c, &err);
	struct stats_params p = {
		MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "from"),
		MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "to"),
		MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "group_by"),
		MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "zone"), key.id};
	json_t *doc = NULL;
	if (stats_query(a->app->store, &p, &doc, &err) != 0)
		return send_problem(a, c, &err);
	return send_json(c, 200, doc, NULL);
}

/* ---- /v1/templates (template.h): what a notice's "template" may name */

/* GET /v1/templates: every template the server loaded, sorted by name. */
static enum MHD_Result list_templates(struct api *a, struct MHD_Connection *c)
{
	struct selo_err err;
	err_clear(&err);
	struct apikey key;
	if (authenticate(a, c, &key, &err))
		return send_problem(a, c, &err);
	const char **names;
	size_t n = template_names(a->app->templates, &names);
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, template_json(template_find(a->app->templates, names[i])));
	return send_json(c, 200, json_pack("{s:o}", "templates", arr), NULL);
}

/* GET /v1/templates/{name} */
static enum MHD_Result get_template(struct api *a, struct MHD_Connection *c, const char *name)
{
	struct selo_err err;
	err_clear(&err);
	struct apikey key;
	if (authenticate(a, c, &key, &err))
		return send_problem(a, c, &err);
	const struct template *t = template_find(a->app->templates, name);
	if (!t)
		return send_error(a, c, 404, "not-found", "no template with this name; GET /v1/templates lists them");
	return send_json(c, 200, template_json(t), NULL);
}

/* ---- the route table */

/* A {param} segment holds at most this many bytes; {param+} (the rest of
 * the path, slashes included) fits API_PARAM_CAP - 1. */
#define API_SEGMENT_MAX 64
#define API_PARAM_CAP 320

/* p: the pattern's {param} as libmicrohttpd decoded it, "" when none. */
typedef enum MHD_Result (*route_fn)(struct api *a, struct MHD_Connection *c, struct req *r,
				    const char *p);

/* Adapters from the table's one signature to each handler's own, so a
 * handler takes only what it uses. */
#define ROUTE_AC(name, fn)                                                                    \
	static enum MHD_Result name(struct api *a, struct MHD_Connection *c, struct req *r,    \
				    const char *p)                                             \
	{                                                                                      \
		(void)r, (void)p;                                                              \
		return fn(a, c);                                                               \
	}
#define ROUTE_ACR(name, fn)                                                                   \
	static enum MHD_Result name(struct api *a, struct MHD_Connection *c, struct req *r,    \
				    const char *p)                                             \
	{                                                                                      \
		(void)p;                                                                       \
		return fn(a, c, r);                                                            \
	}
#define ROUTE_ACP(name, fn)                                                                   \
	static enum MHD_Result name(struct api *a, struct MHD_Connection *c, struct req *r,    \
				    const char *p)                                             \
	{                                                                                      \
		(void)r;                                                                       \
		return fn(a, c, p);                                                            \
	}
ROUTE_AC(rt_get_health, get_health)
ROUTE_AC(rt_get_metrics, get_metrics)
ROUTE_AC(rt_list_notices, list_notices)
ROUTE_ACR(rt_post_notice, post_notice)
ROUTE_ACR(rt_post_batch, post_batch)
ROUTE_ACP(rt_get_notice, get_notice)
ROUTE_ACP(rt_delete_notice, delete_notice)
ROUTE_ACP(rt_get_message, get_message)
ROUTE_ACP(rt_get_receipt, get_receipt)
ROUTE_ACR(rt_post_sequence, post_sequence)
ROUTE_ACP(rt_get_sequence, get_sequence)
ROUTE_AC(rt_list_webhooks, list_webhooks)
ROUTE_ACR(rt_post_webhook, post_webhook)
ROUTE_AC(rt_get_webhooks_public_key, get_webhooks_public_key)
ROUTE_ACP(rt_get_webhook, get_webhook)
ROUTE_ACP(rt_delete_webhook, delete_webhook)
ROUTE_AC(rt_get_stats, get_stats)
ROUTE_AC(rt_list_suppressions, list_suppressions)
ROUTE_ACP(rt_delete_suppression, delete_suppression)
ROUTE_AC(rt_list_templates, list_templates)
ROUTE_ACP(rt_get_template, get_template)

static enum MHD_Result rt_stop_sequence(struct api *a, struct MHD_Connection *c, struct req *r,
					const char *p)
{
	return stop_sequence(a, c, p, r);
}

/* Every route of the API, one a line: docs/openapi.yaml must list the same
 * (tests/integration/test_openapi.py reads this table's text). A path takes
 * the first pattern that matches it, so a literal segment goes before a
 * {param} in the same place; the other methods of that pattern make its
 * 405's Allow. A GET route also answers HEAD (libmicrohttpd drops the
 * body). The method is checked before the key, as it always was. */
static const struct api_route {
	const char *method;
	const char *pattern;
	route_fn fn;
} api_routes[] = {
	{"GET", "/healthz", rt_get_health},
	{"GET", "/metrics", rt_get_metrics},
	{"GET", "/v1/notices", rt_list_notices},
	{"POST", "/v1/notices", rt_post_notice},
	{"POST", "/v1/notices/batch", rt_post_batch},
	{"GET", "/v1/notices/{id}", rt_get_notice},
	{"DELETE", "/v1/notices/{id}", rt_delete_notice},
	{"GET", "/v1/notices/{id}/message", rt_get_message},
	{"GET", "/v1/notices/{id}/receipt", rt_get_receipt},
	{"POST", "/v1/sequences", rt_post_sequence},
	{"GET", "/v1/sequences/{id}", rt_get_sequence},
	{"POST", "/v1/sequences/{id}/stop", rt_stop_sequence},
	{"GET", "/v1/webhooks", rt_list_webhooks},
	{"POST", "/v1/webhooks", rt_post_webhook},
	{"GET", "/v1/webhooks/public-key", rt_get_webhooks_public_key},
	{"GET", "/v1/webhooks/{id}", rt_get_webhook},
	{"DELETE", "/v1/webhooks/{id}", rt_delete_webhook},
	{"POST", "/v1/webhooks/{id}/rotate-secret", rt_post_webhook_rotate},
	{"GET", "/v1/stats", rt_get_stats},
	{"GET", "/v1/suppressions", rt_list_suppressions},
	{"DELETE", "/v1/suppressions/{address+}", rt_delete_suppression},
	{"GET", "/v1/templates", rt_list_templates},
	{"GET", "/v1/templates/{name}", rt_get_template},
};
#define API_NROUTES (sizeof(api_routes) / sizeof(api_routes[0]))

/* Does url have the shape of pattern? Literal text compares exactly; {x}
 * takes one non-empty segment of at most API_SEGMENT_MAX bytes, {x+} (last
 * only) the non-empty rest. The parameter's text goes to param. */
static int route_match(const char *pattern, const char *url, char param[API_PARAM_CAP])
{
	param[0] = '\0';
	while (*pattern) {
		if (*pattern != '{') {
			if (*pattern++ != *url++)
				return 0;
			continue;
		}
		const char *close = strchr(pattern, '}');
		int rest = close[-1] == '+';
		size_t n = rest ? strlen(url) : strcspn(url, "/");
		if (n == 0 || n > (rest ? API_PARAM_CAP - 1 : API_SEGMENT_MAX))
			return 0;
		memcpy(param, url, n);
		param[n] = '\0';
		url += n;
		pattern = close + 1;
	}
	return *url == '\0';
}

/* 405 with Allow: the methods of pattern's routes, HEAD after GET. */
static enum MHD_Result method_not_allowed(struct api *a, struct MHD_Connection *c,
					  const char *pattern)
{
	struct buf allow = BUF_INIT;
	for (size_t i = 0; i < API_NROUTES; i++) {
		if (strcmp(api_routes[i].pattern, pattern) != 0)
			continue;
		buf_printf(&allow, "%s%s", allow.len ? ", " : "", api_routes[i].method);
		if (!strcmp(api_routes[i].method, "GET"))
			buf_puts(&allow, ", HEAD");
	}
	struct selo_err e;
	err_clear(&e);
	err_set(&e, 405, "method-not-allowed", "this path accepts %s", buf_str(&allow));
	atomic_fetch_add(&a->app->metrics.http_4xx, 1);
	const char *h[] = {"Allow", buf_str(&allow), NULL};
	enum MHD_Result ret = send_problem_doc(c, &e, h);
	buf_free(&allow);
	return ret;
}

static enum MHD_Result route(struct api *a, struct MHD_Connection *c, const char *url,
			     const char *method, struct req *r)
{
	char param[API_PARAM_CAP];
	const char *pattern = NULL; /* the first that matched url */
	int head = !strcmp(method, "HEAD");
	for (size_t i = 0; i < API_NROUTES; i++) {
		const struct api_route *rt = &api_routes[i];
		if (pattern ? strcmp(rt->pattern, pattern) != 0 : !route_match(rt->pattern, url, param))
			continue;
		pattern = rt->pattern;
		if (!strcmp(rt->method, method) || (head && !strcmp(rt->method, "GET")))
			return rt->fn(a, c, r, param);
	}
	if (!pattern)
		return send_error(a, c, 404, "not-found", "no such resource; see docs/api.md");
	return method_not_allowed(a, c, pattern);
}

/* ---- request bodies: limits while they arrive */

static void refuse_too_big(const struct api *a, struct selo_err *err)
{
	err_set(err, 413, "body-too-large", "the body is larger than the limit of %zu bytes",
		a->app->cfg.api_max_body);
}

static void refuse_busy(const struct api *a, struct selo_err *err)
{
	err_set(err, 503, "busy",
		"%d large requests (bodies over %zu bytes, or batches of very many values) are in "
		"progress, the most at once; retry in a few seconds",
		a->app->cfg.api_large_requests, a->app->cfg.api_large_body);
}

static void refuse_json(const struct jsonscan *s, struct selo_err *err)
{
	switch (s->result) {
	case JSONSCAN_TOO_DEEP:
		err_set(err, 413, "json-too-complex",
			"the JSON nests deeper than %u levels; no request needs more", s->lim.max_depth);
		break;
	case JSONSCAN_TOO_MANY_ITEMS:
		err_set(err, 413, "batch-too-large",
			"a batch holds at most %zu notices; this one has more", s->lim.max_member_items);
		err_field(err, "notices", "must hold at most %zu notices", s->lim.max_member_items);
		break;
	default:
		err_set(err, 413, "json-too-complex",
			"the JSON holds more than %zu values (objects, arrays, strings, numbers, "
			"literals); see the limits in docs/api.md", s->lim.max_values);
		break;
	}
}

/* Takes a large-body slot: 1, or 0 when all api.large_requests are held. */
static int large_take(struct api *a)
{
	int n = atomic_load(&a->large);
	while (n < a->app->cfg.api_large_requests)
		if (atomic_compare_exchange_weak(&a->large, &n, n + 1))
			return 1;
	return 0;
}

/* A body over api.large_body: only with a valid key (the accept's cache is
 * enough, the handler checks the key again), so that no stranger can hold
 * the slots, and only with a slot free. 0, or -1 with err filled. */
static int large_admit(struct api *a, struct MHD_Connection *c, struct req *r,
		       struct selo_err *err)
{
	struct apikey key;
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	if (auth_check_bearer_cached(a->keys, a->app->store, h, &key, err) != 1)
		return -1;
	if (!large_take(a)) {
		refuse_busy(a, err);
		return -1;
	}
	r->large = 1;
	return 0;
}

static void large_release(struct api *a, struct req *r)
{
	if (r->large)
		atomic_fetch_sub(&a->large, 1);
	r->large = 0;
}

/* From now on the body is discarded as it arrives, its memory and slot
 * given back; the answer is sent once the client has sent it all (0.9.75
 * queues no response while a body is being received). */
static struct selo_err *req_refuse(struct api *a, struct req *r)
{
	r->refused = xcalloc(1, sizeof(*r->refused));
	buf_free(&r->body);
	large_release(a, r);
	return r->refused;
}

/* The JSON values one notice may need. */
static size_t api_notice_values(const struct selo_config *cfg)
{
	return API_NOTICE_VALUES + API_ATTACHMENT_VALUES * cfg->max_attachments;
}

/* The JSON limits for a request to url (docs/api.md "Limits"). */
static struct jsonscan_limits req_json_limits(const struct api *a, const char *url,
					      const char *method)
{
	const struct selo_config *cfg = &a->app->cfg;
	int batch = !strcmp(method, "POST") && !strcmp(url, "/v1/notices/batch");
	struct jsonscan_limits lim = {
		API_JSON_DEPTH, api_notice_values(cfg) * (batch ? cfg->max_batch : API_SINGLE_NOTICES),
		batch ? cfg->max_batch : 0};
	return lim;
}

/* Large: its body over api.large_body, or its JSON over what a request
 * other than a batch may hold (a small body of many values can cost the
 * parser 80 times its size). */
static int req_is_large(const struct api *a, const struct req *r, size_t n)
{
	const struct selo_config *cfg = &a->app->cfg;
	return r->body.len + n > cfg->api_large_body ||
	       r->scan.values > api_notice_values(cfg) * API_SINGLE_NOTICES;
}

/* The first call, after the headers: the request's state, or an answer at
 * once when the declared body is over a limit. */
static enum MHD_Result req_begin(struct api *a, struct MHD_Connection *c, const char *url,
				 const char *method, void **con_cls)
{
	atomic_fetch_add(&a->app->metrics.http_requests, 1);
	if (atomic_load(&a->stopping))
		return send_stopping(c);
	const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
	unsigned long long declared = cl ? strtoull(cl, NULL, 10) : 0;
	struct selo_err err;
	err_clear(&err);
	if (declared > a->app->cfg.api_max_body) {
		refuse_too_big(a, &err);
		return send_problem(a, c, &err);
	}
	struct req *r = xcalloc(1, sizeof(*r));
	if (declared > a->app->cfg.api_large_body && large_admit(a, c, r, &err) != 0) {
		free(r);
		return send_refusal(a, c, &err);
	}
	/* Admitted large bodies get their exact size at once: no doubling to
	 * twice the body, no copies as it grows. */
	if (r->large)
		buf_reserve(&r->body, (size_t)declared);
	struct jsonscan_limits lim = req_json_limits(a, url, method);
	jsonscan_init(&r->scan, &lim);
	*con_cls = r;
	atomic_fetch_add(&a->active, 1);
	return MHD_YES;
}

/* One chunk of the body: kept only while every limit holds. */
static void req_take_chunk(struct api *a, struct MHD_Connection *c, struct req *r,
			   const char *p, size_t n)
{
	if (r->refused)
		return;
	if (n > a->app->cfg.api_max_body - r->body.len) {
		refuse_too_big(a, req_refuse(a, r));
		return;
	}
	if (jsonscan_feed(&r->scan, p, n) != JSONSCAN_OK) {
		refuse_json(&r->scan, req_refuse(a, r));
		return;
	}
	if (!r->large && req_is_large(a, r, n)) {
		struct selo_err err;
		err_clear(&err);
		if (large_admit(a, c, r, &err) != 0) {
			*req_refuse(a, r) = err;
			return;
		}
	}
	buf_append(&r->body, p, n);
}

static enum MHD_Result api_answer(struct api *a, struct MHD_Connection *c, const char *url,
				  const char *method, const char *upload, size_t *upload_size,
				  void **con_cls)
{
	struct req *r = *con_cls;
	if (!r)
		return req_begin(a, c, url, method, con_cls);
	if (*upload_size) {
		req_take_chunk(a, c, r, upload, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	connguard_received(a->guard, c); /* the body is in: its deadline stops */
	if (r->refused)
		return send_refusal(a, c, r->refused);
	enum MHD_Result res = route(a, c, url, method, r);
	/* Answered (responses copy what they send): the body and its slot are
	 * free now, not only once libmicrohttpd has finished with the
	 * connection, which a client that already has its answer may beat. */
	buf_free(&r->body);
	r->large_done = r->large;
	large_release(a, r);
	return res;
}

static enum MHD_Result api_access(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	(void)version;
	struct api *a = cls;
	if (!a->app->cfg.api_access_log)
		return api_answer(a, c, url, method, upload, upload_size, con_cls);
	int64_t t0 = accesslog_begin(); /* api.access_log (accesslog.h) */
	enum MHD_Result res = api_answer(a, c, url, method, upload, upload_size, con_cls);
	accesslog_end(ACCESSLOG_API, c, method, url, NULL, t0);
	return res;
}

static void api_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			  enum MHD_RequestTerminationCode toe)
{
	(void)toe;
	struct api *a = cls;
	struct req *r = *con_cls;
	connguard_answered(a->guard, c); /* a keep-alive's next request: a new clock */
	if (!r)
		return;
	int large = r->large || r->large_done;
	large_release(a, r);
	buf_free(&r->body);
	free(r->refused);
	free(r);
	*con_cls = NULL;
	/* A large request's parse leaves the thread's malloc arena with tens of
	 * MB of small free chunks; give their pages back rather than keep
	 * each thread's peak for good. */
	if (large)
		malloc_trim(0);
	atomic_fetch_sub(&a->active, 1);
}

int api_parse_listen(const char *listen, struct sockaddr_storage *ss, unsigned *len)
{
	char host[128];
	const char *colon = strrchr(listen, ':');
	if (!colon || colon == listen || (size_t)(colon - listen) >= sizeof(host))
		return -1;
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (*end || port < 0 || port > 65535 || end == colon + 1)
		return -1;
	memcpy(host, listen, (size_t)(colon - listen));
	host[colon - listen] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (host[0] == '[') {
		size_t hl = strlen(host);
		if (hl < 3 || host[hl - 1] != ']')
			return -1;
		host[hl - 1] = '\0';
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1)
			return -1;
		*len = sizeof(*s6);
		return 0;
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)port);
	if (!strcmp(host, "localhost"))
		snprintf(host, sizeof(host), "127.0.0.1");
	if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
		return -1;
	*len = sizeof(*s4);
	return 0;
}

int api_start(struct selo *app, struct api **out, struct selo_err *err)
{
	struct sockaddr_storage ss;
	unsigned sl;
	if (api_parse_listen(app->cfg.api_listen, &ss, &sl) != 0)
		return err_set(err, 500, "config", "api.listen = %s is not host:port",
			       app->cfg.api_listen);
	struct api *a = xcalloc(1, sizeof(*a));
	a->app = app;
	if (app->ledger && exporter_open(&app->cfg, app->ledger, &a->exporter, err) != 0) {
		free(a);
		return -1;
	}
	a->keys = auth_cache_new();
	/* A request (its body too) must arrive within api.request_timeout: a
	 * key holder trickling bodies could otherwise keep the large-body
	 * slots, or every connection, for ever (connguard.h). */
	struct connguard_config gc = {app->cfg.api_request_timeout_s * 1000, API_CONNECTIONS,
				      (unsigned)app->cfg.api_threads, "api"};
	if (connguard_new(&gc, &a->guard, err) != 0) {
		exporter_close(a->exporter);
		auth_cache_free(a->keys);
		free(a);
		return -1;
	}
	/* ITC: MHD_quiesce_daemon needs it to close the listener under the pool. */
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_USE_ITC;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	a->d = MHD_start_daemon(flags, 0, NULL, NULL, api_access, a,
				MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				MHD_OPTION_THREAD_POOL_SIZE, (unsigned)app->cfg.api_threads,
				MHD_OPTION_NOTIFY_COMPLETED, api_completed, a,
				MHD_OPTION_CONNECTION_TIMEOUT, 30u,
				MHD_OPTION_CONNECTION_LIMIT, API_CONNECTIONS,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
				MHD_OPTION_NOTIFY_CONNECTION, connguard_notify, a->guard,
				MHD_OPTION_END);
	if (!a->d) {
		connguard_free(a->guard);
		exporter_close(a->exporter);
		auth_cache_free(a->keys);
		free(a);
		return err_set(err, 500, "listen", "cannot listen on %s (api.listen): address in use or not allowed",
			       app->cfg.api_listen);
	}
	*out = a;
	return 0;
}

void api_drain(struct api *a, int64_t deadline_ms)
{
	if (!a)
		return;
	atomic_store(&a->stopping, 1);
	MHD_socket fd = MHD_quiesce_daemon(a->d);
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
	int n = atomic_load(&a->active);
	if (n > 0)
		diag_info("waiting for %d API request(s) in progress", n);
	while (atomic_load(&a->active) > 0 && clock_mono_ms() < deadline_ms) {
		struct timespec ts = {0, 10 * 1000000};
		nanosleep(&ts, NULL);
	}
	n = atomic_load(&a->active);
	if (n > 0)
		diag_warn("%d API request(s) still in progress at the stop deadline; their clients "
			  "may get no answer (an Idempotency-Key makes the retry safe)", n);
}

void api_stop(struct api *a)
{
	if (!a)
		return;
	MHD_stop_daemon(a->d);
	connguard_free(a->guard);
	exporter_close(a->exporter);
	auth_cache_free(a->keys);
	free(a);
}
