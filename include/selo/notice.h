/* notice.h: one submission, from untrusted JSON to what the store keeps.
 * notice_parse is the single place a submission is validated, shared by
 * the API (POST /v1/notices, /batch) and `selo submit`: it checks every
 * field and its limits, collects one error per bad field (422), and never
 * lets a control character into anything that ends up in a header.
 * notice_prepare then gives the notice its id and salt and builds the
 * submission_accepted event, where personal data are commitments. */
#ifndef SELO_NOTICE_H
#define SELO_NOTICE_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include "selo/config.h"
#include "selo/err.h"
#include "selo/event.h"
#include "selo/schedule.h"
#include "selo/store.h"
#include "selo/template.h"

struct notice_req {
	json_t *payload;            /* normalised submission without attachment bytes (owned) */
	const char *to, *to_name;   /* point into payload */
	const char *template_name;  /* NULL in raw mode */
	const char *reference, *segment;
	char *tags_json;            /* owned, NULL if no tags */
	struct attachment_in *att;  /* decoded (owned) */
	size_t natt;
	int track_opens, track_clicks, track_read;
	/* Scheduling (schedule.h): send_at as asked (0: none), the window, and
	 * the time the notice is due: 0 to send now, else the later of send_at
	 * and the window's next opening. */
	int64_t send_at_ms;
	struct send_window window;
	int64_t due_ms;
};

/* Validates body (a JSON value) against cfg's limits and the templates.
 * On failure err is 422 (or 400 for a body that is not an object) with
 * per-field errors, and out holds nothing to free. */
int notice_parse(const json_t *body, const struct selo_config *cfg, const struct template_set *ts,
		 struct notice_req *out, struct selo_err *err);
void notice_req_free(struct notice_req *r);

/* The send window stored with a submission (payload_json), for retries:
 * w->set is 0 when it has none. */
void notice_window_of(const char *payload_json, struct send_window *w);

/* Fills n (borrowing from req) with a new id and salt and the
 * submission_accepted fields, recording each committed value in disc.
 * After the store call the caller frees *fields (json_decref), disc
 * (disclosures_free) and n->payload_json (free). */
void notice_prepare(const struct notice_req *req, int64_t apikey_id, const char *idempotency_key,
		    const uint8_t request_sha256[32], struct notice_new *n, json_t **fields,
		    struct disclosures *disc);

/* The committed text forms of content, shared with the receipt: vars as
 * compact JSON with sorted keys (malloc'd). */
char *notice_vars_canonical(const json_t *vars);

/* The notice as the API and `selo status` show it: id, status, reference,
 * to, template, segment, tags, attempts, times, message_id, sha256,
 * last_error and, when ev is not NULL, "events" (seq, type, time, entry as
 * parsed JSON). */
json_t *notice_json(const struct notice_rec *r, const struct event_rec *ev, size_t nev);

#endif
