/* fuzz_notice.c: libFuzzer target for the API's untrusted input path: a
 * request body parsed by jansson as the API does, then notice_parse with
 * the embedded templates and default limits, then notice_prepare; and the
 * same body as a sequence (sequence_parse, which runs notice_parse per
 * step with send_at, windows and offsets). Must never crash, leak or trip
 * a sanitizer, whatever the bytes. */
#include <stdint.h>
#include <stdlib.h>
#include "selo/crypto.h"
#include "selo/notice.h"
#include "selo/sequence.h"

static struct template_set *ts;
static struct selo_config cfg;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!ts) {
		struct selo_err e;
		err_clear(&e);
		config_defaults(&cfg, "/nonexistent");
		cfg.max_attachment_bytes = 4096;
		if (template_set_load(NULL, &ts, &e) != 0)
			abort();
	}
	json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	if (!body)
		return 0;
	struct selo_err err;
	err_clear(&err);
	struct notice_req req;
	if (notice_parse(body, &cfg, ts, &req, &err) == 0) {
		uint8_t sha[32] = {0};
		struct notice_new n;
		json_t *fields;
		struct disclosures d = DISCLOSURES_INIT;
		notice_prepare(&req, 1, NULL, sha, &n, &fields, &d);
		json_decref(fields);
		disclosures_free(&d);
		free((char *)n.payload_json);
		notice_req_free(&req);
	}
	err_clear(&err);
	struct sequence_req q;
	uint8_t sha[32] = {0};
	if (sequence_parse(body, &cfg, ts, 1, sha, 1796000000000LL, &q, &err) == 0)
		sequence_req_free(&q);
	json_decref(body);
	return 0;
}
