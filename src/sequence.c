/* sequence.c: dunning sequences (see sequence.h). Each step becomes an
 * ordinary notice body handed to notice_parse, so a step is checked exactly
 * as POST /v1/notices would check it; this file only adds the sequence's
 * own fields (due, offsets, per-step vars) and names errors after the step
 * they come from. */
#include <stdlib.h>
#include <string.h>
#include "selo/buf.h"
#include "selo/clock.h"
#include "selo/id.h"
#include "selo/schedule.h"
#include "selo/sequence.h"

/* A step whose time passed longer ago than this is skipped; a little less
 * is "now" (notice.c allows the same skew on send_at). */
#define STEP_SKEW_MS (60 * 1000)

static const char *const KNOWN_FIELDS[] = {
	"to", "to_name", "vars", "due", "due_time", "zone", "window", "window_zone",
	"reference", "segment", "tags", "track", "steps", NULL,
};
/* Copied to every step's notice as they are. */
static const char *const SHARED[] = {
	"to", "to_name", "reference", "segment", "tags", "track", "window", NULL,
};
static const char *const REASONS[] = {"paid", "agreement", "disputed", "other", NULL};

int sequence_reason_valid(const char *reason)
{
	for (size_t i = 0; reason && REASONS[i]; i++)
		if (!strcmp(reason, REASONS[i]))
			return 1;
	return 0;
}

static int in_list(const char *const *list, const char *k)
{
	for (size_t i = 0; list[i]; i++)
		if (!strcmp(list[i], k))
			return 1;
	return 0;
}

static const char *str_field(const json_t *o, const char *name, struct selo_err *err,
			     const char *field)
{
	json_t *v = json_object_get(o, name);
	if (!v || json_is_null(v))
		return NULL;
	if (!json_is_string(v)) {
		err_field(err, field, "must be a string");
		return NULL;
	}
	return json_string_value(v);
}

/* A step's notice errors under the sequence's field names: the step's own
 * fields as steps[i].x (its send_at is its offset), shared ones once. */
static void copy_errors(const struct selo_err *from, size_t i, struct selo_err *to)
{
	for (int k = 0; k < from->nfields; k++) {
		const char *f = from->fields[k].field, *msg = from->fields[k].msg;
		char name[96];
		if (!strcmp(f, "send_at"))
			snprintf(name, sizeof(name), "steps[%zu].offset", i);
		else if (!strncmp(f, "template", 8) || !strncmp(f, "vars", 4) ||
			 !strncmp(f, "subject", 7))
			snprintf(name, sizeof(name), "steps[%zu].%s", i, f);
		else
			snprintf(name, sizeof(name), "%s", f);
		int seen = 0;
		for (int m = 0; m < to->nfields && !seen; m++)
			seen = !strcmp(to->fields[m].field, name);
		if (!seen)
			err_field(to, name, "%s", msg);
	}
	if (from->type[0] && strcmp(from->type, "validation-failed") && !to->type[0])
		snprintf(to->type, sizeof(to->type), "%s", from->type);
}

/* The step's vars: of the sequence's shared vars, those its template
 * declares (one vars object serves templates that need different ones),
 * then the step's own over them, checked strictly by notice_parse. */
static json_t *merged_vars(const json_t *shared, const json_t *own, const struct template *t)
{
	json_t *v = json_object();
	const char *const *names;
	size_t n = t ? template_vars(t, &names, NULL) : 0;
	for (size_t i = 0; i < n && json_is_object(shared); i++) {
		json_t *x = json_object_get(shared, names[i]);
		if (x)
			json_object_set(v, names[i], x);
	}
	if (!t && json_is_object(shared))
		json_object_update(v, (json_t *)shared); /* unknown template: its own error */
	if (json_is_object(own))
		json_object_update(v, (json_t *)own);
	return v;
}

/* The notice body of one step, due at t_ms. */
static json_t *step_body(const json_t *body, const json_t *step, const char *zone, int64_t t_ms,
			 const struct template_set *ts)
{
	json_t *n = json_object();
	for (size_t k = 0; SHARED[k]; k++) {
		json_t *v = json_object_get(body, SHARED[k]);
		if (v)
			json_object_set(n, SHARED[k], v);
	}
	if (json_object_get(body, "window"))
		json_object_set_new(n, "window_zone", json_string(zone)); /* checked by notice_parse */
	json_object_set(n, "template", json_object_get(step, "template"));
	const char *tname = json_string_value(json_object_get(step, "template"));
	json_object_set_new(n, "vars", merged_vars(json_object_get(body, "vars"),
						   json_object_get(step, "vars"),
						   tname ? template_find(ts, tname) : NULL));
	char when[32];
	clock_rfc3339(t_ms, when);
	json_object_set_new(n, "send_at", json_string(when));
	return n;
}

struct plan {
	int64_t due_ms;
	const char *zone;
	json_t *steps;  /* the plan, one object per step */
};

/* The sequence's own fields. zone is the due date's zone and the window's
 * unless window_zone is given. */
static void check_top(const json_t *body, struct plan *p, struct selo_err *err)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)body, k, v) {
		if (!in_list(KNOWN_FIELDS, k))
			err_field(err, k, "unknown field");
	}
	char why[160];
	const char *zone = str_field(body, "zone", err, "zone");
	if (zone && schedule_zone_check(zone, why, sizeof(why)) != 0) {
		err_field(err, "zone", "%s", why);
		zone = NULL;
	}
	const char *wz = str_field(body, "window_zone", err, "window_zone");
	p->zone = wz ? wz : zone ? zone : SCHEDULE_DEFAULT_ZONE;
	const char *at = str_field(body, "due_time", err, "due_time");
	if (at && schedule_hhmm(at, 0) < 0)
		err_field(err, "due_time", "must be \"HH:MM\" (the time of day a date-only due means)");
	const char *due = str_field(body, "due", err, "due");
	if (!due)
		err_field(err, "due", "is required (the debt's due date, e.g. \"2026-12-10\")");
	else if (schedule_due_parse(due, zone, at, &p->due_ms, why, sizeof(why)) != 0)
		err_field(err, "due", "%s", why);
	json_t *vars = json_object_get(body, "vars");
	if (vars && !json_is_object(vars))
		err_field(err, "vars", "must be an object (the variables the steps' templates share)");
	json_t *steps = json_object_get(body, "steps");
	if (!json_is_array(steps) || json_array_size(steps) == 0)
		err_field(err, "steps", "must be a non-empty array of {\"template\", \"offset\"}");
	else if (json_array_size(steps) > SEQUENCE_MAX_STEPS)
		err_field(err, "steps", "has %zu steps; the limit is %d", json_array_size(steps),
			  SEQUENCE_MAX_STEPS);
}

/* Checks the step's own fields; its time into *t_ms. */
static void check_step(const json_t *s, size_t i, const struct plan *p, int64_t *t_ms,
		       struct selo_err *err)
{
	char f[96];
	if (!json_is_object(s)) {
		snprintf(f, sizeof(f), "steps[%zu]", i);
		err_field(err, f, "must be an object {\"template\", \"offset\"[, \"vars\"]}");
		return;
	}
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)s, k, v) {
		if (strcmp(k, "template") && strcmp(k, "offset") && strcmp(k, "vars")) {
			snprintf(f, sizeof(f), "steps[%zu].%.24s", i, k);
			err_field(err, f, "unknown field");
		}
	}
	snprintf(f, sizeof(f), "steps[%zu].template", i);
	if (!json_is_string(json_object_get(s, "template")))
		err_field(err, f, "is required (a template name)");
	snprintf(f, sizeof(f), "steps[%zu].offset", i);
	const char *off = str_field(s, "offset", err, f);
	int64_t o = 0;
	if (!off)
		err_field(err, f, "is required (e.g. \"-5d\", \"0d\", \"+3d\")");
	else if (schedule_offset_parse(off, &o) != 0)
		err_field(err, f, "must be a sign, a number and a unit s, m, h or d (e.g. \"-5d\"), "
				  "at most 366 days");
	json_t *vars = json_object_get(s, "vars");
	snprintf(f, sizeof(f), "steps[%zu].vars", i);
	if (vars && !json_is_object(vars))
		err_field(err, f, "must be an object");
	*t_ms = p->due_ms + o;
}

static void step_free(struct sequence_step *st)
{
	json_decref(st->fields);
	disclosures_free(&st->disc);
	free((char *)st->n.payload_json);
	notice_req_free(&st->req);
}

void sequence_req_free(struct sequence_req *r)
{
	for (size_t i = 0; i < r->n; i++)
		step_free(&r->steps[i]);
	free(r->steps);
	free(r->notices);
	free(r->request_json);
	memset(r, 0, sizeof(*r));
}

/* Builds step i's notice (when its time has not passed) and its plan line. */
static void build_step(const json_t *body, const json_t *s, size_t i, int64_t t_ms, int64_t now,
		       const struct selo_config *cfg, const struct template_set *ts,
		       struct sequence_req *out, struct plan *p, struct selo_err *err)
{
	char when[32];
	clock_rfc3339(t_ms, when);
	json_t *line = json_pack("{s:I,s:O,s:O,s:s}", "step", (json_int_t)i, "template",
				 json_object_get(s, "template"), "offset", json_object_get(s, "offset"),
				 "at", when);
	if (json_object_get(s, "vars"))
		json_object_set(line, "vars", json_object_get(s, "vars"));
	int skipped = t_ms < now - STEP_SKEW_MS;
	json_object_set_new(line, "skipped", json_boolean(skipped));
	json_array_append_new(p->steps, line);
	if (skipped)
		return;
	json_t *nb = step_body(body, s, p->zone, t_ms, ts);
	struct selo_err e;
	err_clear(&e);
	struct sequence_step *st = &out->steps[out->n];
	memset(st, 0, sizeof(*st));
	st->index = (int)i;
	if (notice_parse(nb, cfg, ts, &st->req, &e) != 0)
		copy_errors(&e, i, err);
	else
		out->n++;
	json_decref(nb);
}

static void prepare_steps(struct sequence_req *out, int64_t apikey_id, const uint8_t sha[32])
{
	out->notices = xcalloc(out->n, sizeof(*out->notices));
	size_t k = 0;
	for (size_t i = 0; i < out->n; i++) {
		struct sequence_step *st = &out->steps[i];
		notice_prepare(&st->req, apikey_id, NULL, sha, &st->n, &st->fields, &st->disc);
		st->n.event_fields = st->fields;
		st->n.sequence_id = out->id;
		st->n.step = st->index;
		json_object_set_new(st->fields, "step", json_integer(st->index));
		json_object_set_new(st->fields, "sequence", json_string(out->id));
		out->notices[k++] = st->n;
	}
}

int sequence_parse(const json_t *body, const struct selo_config *cfg,
		   const struct template_set *ts, int64_t apikey_id, const uint8_t request_sha256[32],
		   int64_t now_ms, struct sequence_req *out, struct selo_err *err)
{
	memset(out, 0, sizeof(*out));
	if (!json_is_object(body))
		return err_set(err, 400, "invalid-request", "the request body must be a JSON object");
	struct plan p = {0, NULL, json_array()};
	check_top(body, &p, err);
	json_t *steps = json_object_get(body, "steps");
	size_t nsteps = err->nfields ? 0 : json_array_size(steps);
	int64_t *times = xcalloc(nsteps, sizeof(*times));
	for (size_t i = 0; i < nsteps; i++)
		check_step(json_array_get(steps, i), i, &p, &times[i], err);
	if (!err->nfields) {
		uint8_t id[SELO_ID_BYTES];
		char text[27];
		id_new(id);
		id_to_text(id, text);
		snprintf(out->id, sizeof(out->id), "seq_%s", text);
		out->steps = xcalloc(nsteps, sizeof(*out->steps));
		for (size_t i = 0; i < nsteps; i++)
			build_step(body, json_array_get(steps, i), i, times[i], now_ms, cfg, ts, out, &p,
				   err);
	}
	free(times);
	if (!err->nfields && out->n == 0)
		err_field(err, "steps", "every step's time has passed (the due date plus each offset "
					"is in the past): nothing to schedule");
	if (err->nfields) {
		json_decref(p.steps);
		sequence_req_free(out);
		err->status = 422;
		if (!err->type[0])
			snprintf(err->type, sizeof(err->type), "validation-failed");
		snprintf(err->msg, sizeof(err->msg), "the sequence has %d invalid field%s; nothing "
						      "was stored", err->nfields,
			 err->nfields > 1 ? "s" : "");
		return -1;
	}
	prepare_steps(out, apikey_id, request_sha256);
	json_t *req = json_deep_copy(body);
	json_object_set_new(req, "steps", p.steps);
	out->request_json = json_dumps(req, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(req);
	return 0;
}

/* ---- the public JSON form */

static void ms_or_null(json_t *o, const char *key, int64_t ms)
{
	char t[32];
	clock_rfc3339(ms, t);
	json_object_set_new(o, key, ms > 0 ? json_string(t) : json_null());
}

static int final_status(const char *s)
{
	return !strcmp(s, "relayed") || !strcmp(s, "delivered") || !strcmp(s, "failed") ||
	       !strcmp(s, "canceled");
}

static const struct notice_rec *step_notice(const struct sequence_rec *q, json_int_t step)
{
	for (size_t i = 0; i < q->nsteps; i++)
		if (q->steps[i].step == step)
			return &q->steps[i];
	return NULL;
}

json_t *sequence_json(const struct sequence_rec *q)
{
	json_t *req = json_loads(q->request_json ? q->request_json : "{}", 0, NULL);
	json_t *o = json_pack("{s:s}", "id", q->id);
	int done = 1;
	json_t *steps = json_array();
	size_t i;
	json_t *line;
	json_array_foreach(json_object_get(req, "steps"), i, line) {
		json_t *s = json_deep_copy(line);
		const struct notice_rec *n =
			step_notice(q, json_integer_value(json_object_get(line, "step")));
		json_object_set_new(s, "notice", n ? json_string(n->id) : json_null());
		json_object_set_new(s, "status", json_string(n ? n->status : "skipped"));
		if (n && !final_status(n->status))
			done = 0;
		json_array_append_new(steps, s);
	}
	const char *status = strcmp(q->status, "active") ? q->status : done ? "completed" : "active";
	json_object_set_new(o, "status", json_string(status));
	json_object_set_new(o, "reason", q->reason ? json_string(q->reason) : json_null());
	ms_or_null(o, "created_at", q->created_ms);
	ms_or_null(o, "stopped_at", q->stopped_ms);
	static const char *const shown[] = {"to", "to_name", "reference", "due", "due_time", "zone",
					    "window", "window_zone", "segment", "tags", NULL};
	for (size_t k = 0; shown[k]; k++) {
		json_t *v = json_object_get(req, shown[k]);
		if (v)
			json_object_set(o, shown[k], v);
	}
	json_object_set_new(o, "steps", steps);
	json_decref(req);
	return o;
}
