/* notice.c: validating a submission and preparing it for the store (see
 * notice.h). Every check adds a field error and goes on, so one 422 lists
 * everything wrong with a request. Nothing here touches the store. */
#include <string.h>
#include "selo/buf.h"
#include "selo/clock.h"
#include "selo/codec.h"
#include "selo/compose.h"
#include "selo/crypto.h"
#include "selo/id.h"
#include "selo/mime.h"
#include "selo/notice.h"

#define MAX_NAME 256
#define MAX_SUBJECT 512
#define MAX_REFERENCE 128
#define MAX_SEGMENT 64
#define MAX_TAGS 20
#define MAX_TAG 64
#define MAX_FILENAME 255
/* A send_at this far in the past is taken as "now": the caller's clock may
 * be a little ahead of ours. */
#define SEND_AT_SKEW_MS (60 * 1000)

static const char *const KNOWN_FIELDS[] = {
	"to", "to_name", "template", "vars", "subject", "text", "html", "attachments",
	"reference", "segment", "tags", "track", "send_at", "window", "window_zone", NULL,
};

static int known_field(const char *k)
{
	for (size_t i = 0; KNOWN_FIELDS[i]; i++)
		if (!strcmp(KNOWN_FIELDS[i], k))
			return 1;
	return 0;
}

/* A string field, or NULL when absent; a present non-string is an error. */
static const char *opt_string(const json_t *o, const char *name, struct selo_err *err)
{
	json_t *v = json_object_get(o, name);
	if (!v || json_is_null(v))
		return NULL;
	if (!json_is_string(v)) {
		err_field(err, name, "must be a string");
		return NULL;
	}
	return json_string_value(v);
}

/* Body text: UTF-8, no control characters (C0, DEL, C1) other than TAB,
 * CR, LF. The line separators and bidirectional controls a header text
 * refuses are text here: right-to-left paragraphs need them. */
static void check_body_text(const char *s, size_t len, size_t max, const char *field,
			    struct selo_err *err)
{
	if (len > max) {
		err_field(err, field, "is %zu bytes; the limit is %zu", len, max);
		return;
	}
	const uint8_t *p = (const uint8_t *)s;
	uint32_t cp;
	for (size_t i = 0, k; i < len; i += k) {
		if (!(k = utf8_decode(p + i, len - i, &cp))) {
			err_field(err, field, "is not valid UTF-8 (byte %zu)", i);
			return;
		}
		if ((cp < 0x20 && cp != '\t' && cp != '\r' && cp != '\n') ||
		    (cp >= 0x7f && cp <= 0x9f)) {
			err_field(err, field, "contains U+%04X (a control character) at byte %zu: "
				  "control characters other than TAB, CR and LF are refused",
				  (unsigned)cp, i);
			return;
		}
	}
}

static void check_short_text(const char *s, size_t max, const char *field, struct selo_err *err)
{
	if (s)
		mime_header_text_check(s, max, field, err);
}

static void parse_track(const json_t *body, struct notice_req *r, struct selo_err *err)
{
	r->track_opens = r->track_clicks = r->track_read = 1;
	json_t *t = json_object_get(body, "track");
	if (!t || json_is_null(t))
		return;
	if (!json_is_object(t)) {
		err_field(err, "track", "must be an object with opens, clicks, read_confirmation");
		return;
	}
	const char *k;
	json_t *v;
	json_object_foreach(t, k, v) {
		int *dst = !strcmp(k, "opens") ? &r->track_opens
			 : !strcmp(k, "clicks") ? &r->track_clicks
			 : !strcmp(k, "read_confirmation") ? &r->track_read : NULL;
		char field[96];
		snprintf(field, sizeof(field), "track.%.80s", k);
		if (!dst)
			err_field(err, field, "unknown field (opens, clicks, read_confirmation)");
		else if (!json_is_boolean(v))
			err_field(err, field, "must be true or false");
		else
			*dst = json_is_true(v);
	}
}

/* send_at, window, window_zone (schedule.h): checks them and works out
 * when the notice is due. */
static void parse_schedule(const json_t *body, struct notice_req *r, struct selo_err *err)
{
	char why[160];
	int64_t now = clock_now_ms();
	const char *send_at = opt_string(body, "send_at", err);
	if (send_at) {
		if (clock_parse_rfc3339(send_at, &r->send_at_ms) != 0)
			err_field(err, "send_at", "must be an RFC 3339 time such as "
						  "\"2026-12-10T09:00:00-03:00\"");
		else if (r->send_at_ms < now - SEND_AT_SKEW_MS)
			err_field(err, "send_at", "is in the past");
		else if (r->send_at_ms > now + SCHEDULE_MAX_AHEAD_MS)
			err_field(err, "send_at", "is more than 90 days ahead");
	}
	const char *zone = opt_string(body, "window_zone", err);
	const char *window = opt_string(body, "window", err);
	if (zone && !window)
		err_field(err, "window_zone", "needs a window");
	else if (zone && schedule_zone_check(zone, why, sizeof(why)) != 0)
		err_field(err, "window_zone", "%s", why);
	else if (window && schedule_window_parse(window, zone, &r->window, why, sizeof(why)) != 0)
		err_field(err, "window", "%s", why);
	if (err->nfields)
		return;
	int64_t t = r->send_at_ms > now ? r->send_at_ms : now;
	t = schedule_window_next(&r->window, t);
	r->due_ms = t > now ? t : 0;
}

static void put_schedule(json_t *payload, const struct notice_req *r)
{
	if (r->send_at_ms) {
		char ts[32];
		clock_rfc3339(r->send_at_ms, ts);
		json_object_set_new(payload, "send_at", json_string(ts));
	}
	if (!r->window.set)
		return;
	char w[48];
	snprintf(w, sizeof(w), "%02d:%02d-%02d:%02d", r->window.start_min / 60,
		 r->window.start_min % 60, r->window.end_min / 60, r->window.end_min % 60);
	json_object_set_new(payload, "window", json_string(w));
	json_object_set_new(payload, "window_zone", json_string(r->window.zone));
}

void notice_window_of(const char *payload_json, struct send_window *w)
{
	memset(w, 0, sizeof(*w));
	json_t *p = payload_json ? json_loads(payload_json, 0, NULL) : NULL;
	const char *spec = json_string_value(json_object_get(p, "window"));
	if (spec && schedule_window_parse(spec, json_string_value(json_object_get(p, "window_zone")),
					  w, NULL, 0) != 0)
		memset(w, 0, sizeof(*w));
	json_decref(p);
}

static void parse_tags(const json_t *body, struct notice_req *r, struct selo_err *err)
{
	json_t *t = json_object_get(body, "tags");
	if (!t || json_is_null(t))
		return;
	if (!json_is_array(t) || json_array_size(t) > MAX_TAGS) {
		err_field(err, "tags", "must be an array of at most %d strings", MAX_TAGS);
		return;
	}
	size_t i;
	json_t *v;
	json_array_foreach(t, i, v) {
		char field[32];
		snprintf(field, sizeof(field), "tags[%zu]", i);
		if (!json_is_string(v) || json_string_length(v) == 0)
			err_field(err, field, "must be a non-empty string");
		else
			mime_header_text_check(json_string_value(v), MAX_TAG, field, err);
	}
	r->tags_json = json_dumps(t, JSON_COMPACT);
}

static int decode_attachment(const json_t *a, size_t i, const struct selo_config *cfg,
			     struct attachment_in *out, json_t *meta, struct selo_err *err)
{
	char f[64];
	snprintf(f, sizeof(f), "attachments[%zu]", i);
	if (!json_is_object(a))
		return err_field(err, f, "must be an object with filename, content_type, content_base64");
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)a, k, v) {
		if (strcmp(k, "filename") && strcmp(k, "content_type") && strcmp(k, "content_base64")) {
			char ff[160];
			snprintf(ff, sizeof(ff), "%s.%.80s", f, k);
			err_field(err, ff, "unknown field (filename, content_type, content_base64)");
		}
	}
	json_t *fn = json_object_get(a, "filename"), *ct = json_object_get(a, "content_type");
	json_t *b64 = json_object_get(a, "content_base64");
	char ff[96];
	int bad = 0;
	snprintf(ff, sizeof(ff), "%s.filename", f);
	if (!json_is_string(fn) || json_string_length(fn) == 0)
		bad = err_field(err, ff, "is required (a non-empty string)");
	else if (mime_header_text_check(json_string_value(fn), MAX_FILENAME, ff, err) != 0)
		bad = -1;
	else if (strpbrk(json_string_value(fn), "/\\"))
		bad = err_field(err, ff, "must be a plain file name, without / or \\");
	snprintf(ff, sizeof(ff), "%s.content_type", f);
	if (!json_is_string(ct))
		bad = err_field(err, ff, "is required, e.g. application/pdf");
	else if (mime_content_type_check(json_string_value(ct), ff, err) != 0)
		bad = -1;
	snprintf(ff, sizeof(ff), "%s.content_base64", f);
	if (!json_is_string(b64))
		return err_field(err, ff, "is required (standard base64)");
	size_t slen = json_string_length(b64);
	if (base64_decoded_max(slen) > cfg->max_attachment_bytes + 3 &&
	    slen / 4 * 3 > cfg->max_attachment_bytes + 2)
		return err_field(err, ff, "decodes to more than %zu bytes (the attachment limit)",
				 cfg->max_attachment_bytes);
	uint8_t *data = xmalloc(base64_decoded_max(slen) + 1);
	ssize_t n = base64_decode(json_string_value(b64), slen, data, base64_decoded_max(slen));
	if (n < 0 || (size_t)n > cfg->max_attachment_bytes) {
		free(data);
		return err_field(err, ff, n < 0 ? "is not valid base64 (RFC 4648, with padding, no line breaks)"
					 : "decodes to more than the attachment limit");
	}
	if (bad) {
		free(data);
		return -1;
	}
	out->filename = json_string_value(fn);
	out->content_type = json_string_value(ct);
	out->data = data;
	out->len = (size_t)n;
	char hex[65];
	sha256_hex(data, (size_t)n, hex);
	json_array_append_new(meta, json_pack("{s:s,s:s,s:I,s:s}", "filename", out->filename,
					      "content_type", out->content_type, "size",
					      (json_int_t)n, "sha256", hex));
	return 0;
}

static void parse_attachments(const json_t *body, const struct selo_config *cfg,
			      struct notice_req *r, json_t *payload, struct selo_err *err)
{
	json_t *a = json_object_get(body, "attachments");
	if (!a || json_is_null(a))
		return;
	if (!json_is_array(a)) {
		err_field(err, "attachments", "must be an array");
		return;
	}
	if (json_array_size(a) > cfg->max_attachments) {
		err_field(err, "attachments", "has %zu items; the limit is %zu", json_array_size(a),
			  cfg->max_attachments);
		return;
	}
	r->att = xcalloc(json_array_size(a) + 1, sizeof(*r->att));
	json_t *meta = json_array();
	size_t i;
	json_t *v;
	json_array_foreach(a, i, v) {
		if (decode_attachment(v, i, cfg, &r->att[r->natt], meta, err) == 0)
			r->natt++;
	}
	json_object_set_new(payload, "attachments", meta);
}

/* The subject is a header: a long variable could make the rendered one too
 * long to send, which must be a 422 now, not a failure at send time. */
static void check_rendered_subject(const struct template *t, const json_t *vars,
				   struct selo_err *err)
{
	struct rendered r;
	struct selo_err e2;
	err_clear(&e2);
	if (template_render(t, vars, &r, &e2) != 0) {
		err_field(err, "vars", "the template cannot be rendered with these values: %.150s",
			  e2.msg);
		return;
	}
	size_t n = strlen(r.subject);
	struct selo_err e3;
	err_clear(&e3);
	if (n > COMPOSE_HEADER_TEXT_MAX)
		err_field(err, "vars", "the rendered subject is %zu bytes; the limit is %d", n,
			  COMPOSE_HEADER_TEXT_MAX);
	else if (mime_header_text_check(r.subject, COMPOSE_HEADER_TEXT_MAX, "subject", &e3) != 0)
		err_field(err, "vars", "the rendered subject %s", e3.nfields ? e3.fields[0].msg
			  : e3.msg);
	rendered_free(&r);
}

/* An unknown template's error lists the known ones, so the caller can fix
 * the name without reading the docs (GET /v1/templates has the details). */
static void notice_template_unknown(const struct template_set *ts, const char *name,
			     struct selo_err *err)
{
	const char **names;
	size_t n = ts ? template_names(ts, &names) : 0;
	char known[160] = "";
	size_t used = 0;
	for (size_t i = 0; i < n && used < sizeof(known); i++)
		used += (size_t)snprintf(known + used, sizeof(known) - used, "%s%s", i ? ", " : "",
					 names[i]);
	err_field(err, "template", "unknown template \"%.40s\"; known: %s", name,
		  n ? known : "none");
}

static void parse_content(const json_t *body, const struct selo_config *cfg,
			  const struct template_set *ts, struct notice_req *r, json_t *payload,
			  struct selo_err *err)
{
	const char *tpl = opt_string(body, "template", err);
	const char *subject = opt_string(body, "subject", err);
	const char *text = opt_string(body, "text", err);
	const char *html = opt_string(body, "html", err);
	json_t *vars = json_object_get(body, "vars");
	if (tpl && (subject || text || html)) {
		err_field(err, "template", "give either template + vars, or subject + text, not both");
		return;
	}
	if (tpl) {
		const struct template *t = template_find(ts, tpl);
		if (!t) {
			notice_template_unknown(ts, tpl, err);
			snprintf(err->type, sizeof(err->type), "unknown-template");
			return;
		}
		json_t *empty = NULL;
		if (!vars || json_is_null(vars))
			vars = empty = json_object();
		if (template_check(t, vars, cfg->max_text_bytes, err) == 0)
			check_rendered_subject(t, vars, err);
		r->template_name = template_name(t);
		json_object_set_new(payload, "template", json_string(template_name(t)));
		json_object_set(payload, "vars", vars);
		json_decref(empty);
		return;
	}
	if (vars && !json_is_null(vars))
		err_field(err, "vars", "only with a template");
	if (!subject && !text) {
		err_field(err, "template", "give a template (with vars) or a subject and text");
		return;
	}
	if (!subject || !*subject)
		err_field(err, "subject", "is required with text");
	else
		mime_header_text_check(subject, MAX_SUBJECT, "subject", err);
	if (!text)
		err_field(err, "text", "is required with subject");
	else
		check_body_text(text, strlen(text), cfg->max_text_bytes, "text", err);
	if (html)
		check_body_text(html, strlen(html), cfg->max_text_bytes, "html", err);
	if (subject)
		json_object_set_new(payload, "subject", json_string(subject));
	if (text)
		json_object_set_new(payload, "text", json_string(text));
	if (html)
		json_object_set_new(payload, "html", json_string(html));
}

int notice_parse(const json_t *body, const struct selo_config *cfg, const struct template_set *ts,
		 struct notice_req *out, struct selo_err *err)
{
	memset(out, 0, sizeof(*out));
	if (!json_is_object(body))
		return err_set(err, 400, "invalid-request", "the request body must be a JSON object");
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)body, k, v) {
		if (!known_field(k))
			err_field(err, k, "unknown field");
	}
	json_t *payload = json_object();
	const char *to = opt_string(body, "to", err);
	if (!to)
		err_field(err, "to", "is required (the recipient's e-mail address)");
	else
		mime_addr_check(to, "to", err);
	const char *to_name = opt_string(body, "to_name", err);
	check_short_text(to_name, MAX_NAME, "to_name", err);
	const char *reference = opt_string(body, "reference", err);
	check_short_text(reference, MAX_REFERENCE, "reference", err);
	const char *segment = opt_string(body, "segment", err);
	check_short_text(segment, MAX_SEGMENT, "segment", err);
	parse_content(body, cfg, ts, out, payload, err);
	parse_attachments(body, cfg, out, payload, err);
	parse_tags(body, out, err);
	parse_track(body, out, err);
	parse_schedule(body, out, err);
	if (err->nfields > 0) {
		json_decref(payload);
		notice_req_free(out);
		if (!err->type[0] || !strcmp(err->type, "validation-failed"))
			snprintf(err->type, sizeof(err->type), "validation-failed");
		err->status = 422;
		if (!strcmp(err->type, "unknown-template"))
			snprintf(err->msg, sizeof(err->msg), "the template named in the request does not "
				 "exist; the field error lists the known ones");
		else
			snprintf(err->msg, sizeof(err->msg), "the notice has %d invalid field%s; nothing was stored",
				 err->nfields, err->nfields > 1 ? "s" : "");
		return -1;
	}
	json_object_set_new(payload, "to", json_string(to));
	if (to_name)
		json_object_set_new(payload, "to_name", json_string(to_name));
	if (reference)
		json_object_set_new(payload, "reference", json_string(reference));
	if (segment)
		json_object_set_new(payload, "segment", json_string(segment));
	if (out->tags_json)
		json_object_set_new(payload, "tags", json_loads(out->tags_json, 0, NULL));
	json_object_set_new(payload, "track", json_pack("{s:b,s:b,s:b}", "opens", out->track_opens,
							"clicks", out->track_clicks,
							"read_confirmation", out->track_read));
	put_schedule(payload, out);
	out->payload = payload;
	out->to = json_string_value(json_object_get(payload, "to"));
	out->to_name = json_string_value(json_object_get(payload, "to_name"));
	out->reference = json_string_value(json_object_get(payload, "reference"));
	out->segment = json_string_value(json_object_get(payload, "segment"));
	/* attachment names must outlive body: point them into payload */
	json_t *meta = json_object_get(payload, "attachments");
	for (size_t i = 0; i < out->natt; i++) {
		json_t *m = json_array_get(meta, i);
		out->att[i].filename = json_string_value(json_object_get(m, "filename"));
		out->att[i].content_type = json_string_value(json_object_get(m, "content_type"));
	}
	return 0;
}

void notice_req_free(struct notice_req *r)
{
	for (size_t i = 0; i < r->natt; i++)
		free((void *)r->att[i].data);
	free(r->att);
	free(r->tags_json);
	json_decref(r->payload);
	memset(r, 0, sizeof(*r));
}

char *notice_vars_canonical(const json_t *vars)
{
	return json_dumps(vars, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

static void commit_str(json_t *fields, struct disclosures *d, const uint8_t salt[32],
		       const char *key, const char *value)
{
	if (value)
		json_object_set_new(fields, key, json_string(disclose(d, salt, value, strlen(value))));
}

void notice_prepare(const struct notice_req *req, int64_t apikey_id, const char *idempotency_key,
		    const uint8_t request_sha256[32], struct notice_new *n, json_t **fields,
		    struct disclosures *disc)
{
	memset(n, 0, sizeof(*n));
	uint8_t id[SELO_ID_BYTES];
	id_new(id);
	id_to_text(id, n->id);
	random_bytes(n->salt, sizeof(n->salt));
	n->apikey_id = apikey_id;
	n->idempotency_key = idempotency_key;
	memcpy(n->request_sha256, request_sha256, 32);
	n->to = req->to;
	n->template_name = req->template_name;
	n->reference = req->reference;
	n->segment = req->segment;
	n->tags_json = req->tags_json;
	n->att = req->att;
	n->natt = req->natt;

	json_t *f = json_object();
	json_object_set_new(f, "api_key", json_integer(apikey_id));
	commit_str(f, disc, n->salt, "to", req->to);
	commit_str(f, disc, n->salt, "to_name", req->to_name);
	commit_str(f, disc, n->salt, "reference", req->reference);
	const json_t *p = req->payload;
	if (req->template_name) {
		json_object_set_new(f, "template", json_string(req->template_name));
		char *vars = notice_vars_canonical(json_object_get(p, "vars"));
		commit_str(f, disc, n->salt, "vars", vars);
		free(vars);
	} else {
		commit_str(f, disc, n->salt, "subject", json_string_value(json_object_get(p, "subject")));
		commit_str(f, disc, n->salt, "text", json_string_value(json_object_get(p, "text")));
		commit_str(f, disc, n->salt, "html", json_string_value(json_object_get(p, "html")));
	}
	json_t *atts = json_array();
	json_t *meta = json_object_get(p, "attachments");
	for (size_t i = 0; i < req->natt; i++) {
		json_t *m = json_array_get(meta, i);
		json_t *a = json_pack("{s:O,s:O,s:O}", "sha256", json_object_get(m, "sha256"), "size",
				      json_object_get(m, "size"), "content_type",
				      json_object_get(m, "content_type"));
		commit_str(a, disc, n->salt, "filename", req->att[i].filename);
		json_array_append_new(atts, a);
	}
	json_object_set_new(f, "attachments", atts);
	json_object_set(f, "track", json_object_get(p, "track"));
	n->due_ms = req->due_ms;
	if (req->due_ms) {
		char ts[32];
		clock_rfc3339(req->due_ms, ts);
		json_object_set_new(f, "due", json_string(ts));
	}
	if (req->window.set) {
		json_object_set(f, "window", json_object_get(p, "window"));
		json_object_set(f, "window_zone", json_object_get(p, "window_zone"));
	}
	*fields = f;
	n->payload_json = json_dumps(p, JSON_COMPACT | JSON_PRESERVE_ORDER);
	n->disc = disc;
}

/* ---- the public JSON form of a notice */

static void ms_text(json_t *o, const char *key, int64_t ms)
{
	if (ms <= 0) {
		json_object_set_new(o, key, json_null());
		return;
	}
	char t[32];
	clock_rfc3339(ms, t);
	json_object_set_new(o, key, json_string(t));
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *copy_or_null(json_t *v)
{
	return v ? json_incref(v) : json_null();
}

json_t *notice_json(const struct notice_rec *r, const struct event_rec *ev, size_t nev)
{
	json_t *o = json_pack("{s:s,s:s}", "id", r->id, "status", r->status);
	json_object_set_new(o, "reference", str_or_null(r->reference));
	json_object_set_new(o, "to", str_or_null(r->to));
	json_object_set_new(o, "template", str_or_null(r->template_name));
	json_object_set_new(o, "segment", str_or_null(r->segment));
	json_object_set_new(o, "tags", r->tags_json ? json_loads(r->tags_json, 0, NULL) : json_array());
	json_object_set_new(o, "attempts", json_integer(r->attempts));
	ms_text(o, "created_at", r->created_ms);
	ms_text(o, "updated_at", r->updated_ms);
	if (!strcmp(r->status, "deferred") || !strcmp(r->status, "queued") ||
	    !strcmp(r->status, "scheduled"))
		ms_text(o, "next_attempt_at", r->next_attempt_ms);
	json_t *p = r->payload_json ? json_loads(r->payload_json, 0, NULL) : NULL;
	json_object_set_new(o, "send_at", copy_or_null(json_object_get(p, "send_at")));
	json_object_set_new(o, "window", copy_or_null(json_object_get(p, "window")));
	if (json_object_get(p, "window"))
		json_object_set(o, "window_zone", json_object_get(p, "window_zone"));
	json_decref(p);
	if (r->sequence_id) {
		json_object_set_new(o, "sequence", json_string(r->sequence_id));
		json_object_set_new(o, "step", json_integer(r->step));
	}
	json_object_set_new(o, "message_id", str_or_null(r->message_id));
	json_object_set_new(o, "sha256", r->sha256[0] ? json_string(r->sha256) : json_null());
	json_object_set_new(o, "last_error", str_or_null(r->last_error));
	if (!ev)
		return o;
	json_t *events = json_array();
	for (size_t i = 0; i < nev; i++) {
		json_t *entry = json_loadb(ev[i].entry, ev[i].len, 0, NULL);
		json_t *e = json_pack("{s:I,s:s}", "seq", (json_int_t)ev[i].seq, "type", ev[i].type);
		ms_text(e, "time", ev[i].time_ms);
		json_object_set_new(e, "entry", entry ? entry : json_null());
		json_array_append_new(events, e);
	}
	json_object_set_new(o, "events", events);
	return o;
}

