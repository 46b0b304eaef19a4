/* sequence.h: dunning sequences ("régua de cobrança"). A request names a
 * recipient, shared variables, a due date and steps of {template, offset}
 * ("-5d", "0d", "+3d"); sequence_parse validates it and builds one
 * scheduled notice per step, each through notice_parse (the same checks
 * and limits as POST /v1/notices) with send_at = due + offset. A step
 * whose time has passed when the sequence is made is skipped, not sent
 * late; the store keeps the plan and the step notices in one transaction
 * (store_sequence_add). docs/api.md "Sequences" is the user's side. */
#ifndef SELO_SEQUENCE_H
#define SELO_SEQUENCE_H
#include <jansson.h>
#include <stdint.h>
#include "selo/config.h"
#include "selo/err.h"
#include "selo/event.h"
#include "selo/notice.h"
#include "selo/store.h"
#include "selo/template.h"

#define SEQUENCE_MAX_STEPS 20

struct sequence_step {
	struct notice_req req;
	struct notice_new n;
	json_t *fields;
	struct disclosures disc;
	int index;                   /* its place in the request's steps */
};

struct sequence_req {
	char id[32];                 /* "seq_" + a notice-style id */
	char *request_json;          /* the normalised request with its plan (malloc'd) */
	struct sequence_step *steps; /* the steps to send (skipped ones are not here) */
	size_t n;
	struct notice_new *notices;  /* steps[i].n, contiguous for the store */
};

/* Validates body and prepares the step notices for apikey_id at time
 * now_ms. On failure err is 400/422 with per-field errors named like
 * "steps[1].offset", and out holds nothing to free. */
int sequence_parse(const json_t *body, const struct selo_config *cfg,
		   const struct template_set *ts, int64_t apikey_id, const uint8_t request_sha256[32],
		   int64_t now_ms, struct sequence_req *out, struct selo_err *err);
void sequence_req_free(struct sequence_req *r);

/* 1 when reason is one a caller may give to stop a sequence (paid,
 * agreement, disputed, other) or cancel a notice. */
int sequence_reason_valid(const char *reason);

/* The sequence as GET /v1/sequences/{id} shows it: its status (active,
 * completed once every step has an outcome, stopped) and each step of the
 * plan with its notice's status (skipped steps have no notice). */
json_t *sequence_json(const struct sequence_rec *q);

#endif
