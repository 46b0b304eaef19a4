/* test_suppression.c: which failures suppress (suppress.h) and the store's
 * suppressions (store.h "Suppressions"): a hard SMTP rejection and a hard
 * DSN suppress the address for the sending key in the transaction of the
 * failure; soft and policy failures do not; a notice of that key to the
 * address (any case) is refused with 422 "suppressed" and nothing stored,
 * another key's is accepted; listing newest first with paging; delete. */
#include <unistd.h>
#include "selo/clock.h"
#include "selo/crypto.h"
#include "selo/event.h"
#include "selo/id.h"
#include "selo/store.h"
#include "selo/suppress.h"
#include "t.h"
#include "t_store.h"

TEST(hard_status_codes)
{
	CHECK(suppress_status_hard("5.1.1") == 1);
	CHECK(suppress_status_hard("5.1.2") == 1);
	CHECK(suppress_status_hard("5.1.10") == 1);
	CHECK(suppress_status_hard("5.2.1") == 1);
	CHECK(suppress_status_hard("5.2.2") == 0); /* mailbox full: may empty */
	CHECK(suppress_status_hard("5.7.1") == 0); /* policy, not the address */
	CHECK(suppress_status_hard("4.1.1") == 0);
	CHECK(suppress_status_hard("5.0.0") == 0);
	CHECK(suppress_status_hard("") == 0);
	CHECK(suppress_status_hard(NULL) == 0);
	CHECK(suppress_status_hard("5.1") == 0);
	CHECK(suppress_status_hard("5.1.1 ") == 0);
	CHECK(suppress_status_hard("5.1.1x") == 0);
	CHECK(suppress_status_hard("-5.1.1") == 0);
	CHECK(suppress_status_hard("5.1.1234") == 0);
}

TEST(hard_event_fields)
{
	const char *enh = NULL;
	json_t *f = json_pack("{s:s,s:i,s:s}", "reason", "rejected", "code", 550, "enhanced", "5.1.1");
	CHECK(suppress_fields_hard(f, &enh) == 1);
	CHECK_STR(enh, "5.1.1");
	json_decref(f);
	f = json_pack("{s:s,s:i}", "reason", "rejected", "code", 550); /* bare 550 */
	CHECK(suppress_fields_hard(f, NULL) == 0);
	json_decref(f);
	f = json_pack("{s:s,s:i,s:s}", "reason", "rejected", "code", 550, "enhanced", "5.7.1");
	CHECK(suppress_fields_hard(f, NULL) == 0);
	json_decref(f);
	f = json_pack("{s:s,s:i,s:s}", "reason", "expired", "code", 451, "enhanced", "4.1.1");
	CHECK(suppress_fields_hard(f, NULL) == 0);
	json_decref(f);
	f = json_pack("{s:s,s:i,s:s}", "reason", "rejected", "code", 451, "enhanced", "5.1.1");
	CHECK(suppress_fields_hard(f, NULL) == 0); /* the reply class rules */
	json_decref(f);
	f = json_pack("{s:s,s:s,s:s}", "reason", "rejected", "transport", "mx", "enhanced", "5.1.2");
	CHECK(suppress_fields_hard(f, &enh) == 1); /* the mx transport's NXDOMAIN */
	CHECK_STR(enh, "5.1.2");
	json_decref(f);
	f = json_pack("{s:s,s:s}", "reason", "rejected", "error", "refused locally");
	CHECK(suppress_fields_hard(f, NULL) == 0);
	json_decref(f);
	f = json_pack("{s:s,s:s,s:s}", "reason", "bounced", "action", "failed", "status", "5.2.1");
	CHECK(suppress_fields_hard(f, &enh) == 1);
	CHECK_STR(enh, "5.2.1");
	json_decref(f);
	f = json_pack("{s:s,s:s}", "reason", "bounced", "status", "5.7.1");
	CHECK(suppress_fields_hard(f, NULL) == 0);
	json_decref(f);
	CHECK(suppress_fields_hard(NULL, NULL) == 0);
}

TEST(address_forms)
{
	char out[SUPPRESS_ADDR_MAX];
	CHECK(suppress_address_key("Ana.Silva@Example.COM", out, sizeof(out)) == 0);
	CHECK_STR(out, "ana.silva@example.com");
	CHECK(suppress_address_shown("Ana.Silva@Example.COM", out, sizeof(out)) == 0);
	CHECK_STR(out, "Ana.Silva@example.com");
	CHECK(suppress_address_shown("\"a@B\"@X.org", out, sizeof(out)) == 0);
	CHECK_STR(out, "\"a@B\"@x.org");
	CHECK(suppress_address_key("abc", out, 3) == -1);
	CHECK(suppress_address_key(NULL, out, sizeof(out)) == -1);
}

/* Accepts one notice of key to `to`; returns its result. */
static struct accept_result accept_to(struct store *s, int64_t key, const char *to)
{
	struct notice_new n;
	memset(&n, 0, sizeof(n));
	uint8_t id[SELO_ID_BYTES];
	id_new(id);
	id_to_text(id, n.id);
	n.apikey_id = key;
	random_bytes(n.salt, sizeof(n.salt));
	n.to = to;
	n.payload_json = "{}";
	n.event_fields = json_pack("{s:s}", "to", "sha256:00");
	struct accept_result r;
	memset(&r, 0, sizeof(r));
	struct selo_err e;
	err_clear(&e);
	if (store_notices_accept(s, &n, 1, &r, &e) != 0)
		r.failed = 1;
	json_decref(n.event_fields);
	return r;
}

static int fail_with(struct store *s, const char *id, int code, const char *enhanced,
		     const char *last)
{
	json_t *f = json_pack("{s:i,s:s,s:i,s:s}", "attempt", 1, "reason", "rejected", "code", code,
			      "enhanced", enhanced);
	struct result_rec rr = {id, EV_DELIVERY_FAILED, f, "failed", 0, last, NULL};
	struct selo_err e;
	err_clear(&e);
	int r = store_delivery_results(s, &rr, 1, &e);
	json_decref(f);
	return r;
}

static size_t count_list(struct store *s, int64_t key, struct suppression_rec **out)
{
	size_t n = 0;
	struct selo_err e;
	err_clear(&e);
	if (store_suppression_list(s, key, 0, 100, out, &n, &e) != 0)
		return (size_t)-1;
	return n;
}

static size_t notices_of(struct store *s, int64_t key)
{
	struct notice_filter f = {.apikey_id = key, .limit = 1000};
	struct notice_rec *r = NULL;
	size_t n = 0;
	struct selo_err e;
	err_clear(&e);
	if (store_notice_list(s, &f, &r, &n, &e) != 0)
		return (size_t)-1;
	notice_recs_free(r, n);
	return n;
}

TEST(smtp_hard_rejection_suppresses_for_that_key)
{
	struct store_fx f;
	CHECK(store_fx_open(&f, "sup") == 0);
	if (!f.s)
		return;
	struct accept_result a = accept_to(f.s, 1, "Devedor@Example.COM");
	CHECK(!a.failed);
	CHECK(fail_with(f.s, a.id, 550, "5.1.1", "550 5.1.1 no such user") == 0);
	struct suppression_rec *l = NULL;
	CHECK(count_list(f.s, 1, &l) == 1);
	if (l) {
		CHECK_STR(l[0].address, "Devedor@example.com");
		CHECK_STR(l[0].enhanced, "5.1.1");
		CHECK_STR(l[0].reason, "550 5.1.1 no such user");
		CHECK_STR(l[0].notice_id, a.id);
		CHECK(l[0].created_ms > 0);
	}
	suppression_recs_free(l, 1);
	CHECK(count_list(f.s, 2, &l) == 0);
	suppression_recs_free(l, 0);

	size_t before = notices_of(f.s, 1);
	struct accept_result b = accept_to(f.s, 1, "devedor@example.com");
	CHECK(b.failed && b.err.status == 422);
	CHECK_STR(b.err.type, "suppressed");
	CHECK(strstr(b.err.msg, a.id) && strstr(b.err.msg, "5.1.1"));
	CHECK(b.err.nfields == 1 && !strcmp(b.err.fields[0].field, "to"));
	CHECK(notices_of(f.s, 1) == before); /* nothing stored */
	CHECK(!accept_to(f.s, 2, "devedor@example.com").failed); /* another key */

	struct selo_err e;
	err_clear(&e);
	CHECK(store_suppression_delete(f.s, 2, "devedor@example.com", &e) == 0);
	CHECK(store_suppression_delete(f.s, 1, "DEVEDOR@example.com", &e) == 1);
	CHECK(store_suppression_delete(f.s, 1, "devedor@example.com", &e) == 0);
	CHECK(!accept_to(f.s, 1, "devedor@example.com").failed);
	store_fx_close(&f);
}

TEST(soft_and_policy_failures_do_not_suppress)
{
	struct store_fx f;
	CHECK(store_fx_open(&f, "sup") == 0);
	if (!f.s)
		return;
	struct accept_result a = accept_to(f.s, 1, "a@example.com");
	struct accept_result b = accept_to(f.s, 1, "b@example.com");
	struct accept_result c = accept_to(f.s, 1, "c@example.com");
	CHECK(fail_with(f.s, a.id, 550, "5.7.1", "550 5.7.1 policy") == 0);
	CHECK(fail_with(f.s, b.id, 550, "", "550 no") == 0);
	json_t *d = json_pack("{s:i,s:s,s:i,s:s}", "attempt", 1, "retry_at", "x", "code", 451,
			      "enhanced", "4.1.1");
	struct result_rec rr = {c.id, EV_DELIVERY_DEFERRED, d, "deferred", clock_now_ms() + 1000,
				"451", NULL};
	struct selo_err e;
	err_clear(&e);
	CHECK(store_delivery_results(f.s, &rr, 1, &e) == 0);
	json_decref(d);
	struct suppression_rec *l = NULL;
	CHECK(count_list(f.s, 1, &l) == 0);
	suppression_recs_free(l, 0);
	CHECK(!accept_to(f.s, 1, "a@example.com").failed);
	store_fx_close(&f);
}

TEST(dsn_bounce_suppresses_and_listing_pages_newest_first)
{
	struct store_fx f;
	CHECK(store_fx_open(&f, "sup") == 0);
	if (!f.s)
		return;
	struct accept_result a = accept_to(f.s, 7, "one@example.com");
	struct accept_result b = accept_to(f.s, 7, "two@example.com");
	CHECK(fail_with(f.s, a.id, 550, "5.1.2", "550 5.1.2 bad domain") == 0);
	json_t *fields = json_pack("{s:s,s:s,s:s}", "reason", "bounced", "action", "failed",
				   "status", "5.2.1");
	struct disclosures disc = DISCLOSURES_INIT;
	struct selo_err e;
	err_clear(&e);
	CHECK(store_notice_bounced(f.s, b.id, fields, &disc, "bounced (5.2.1): disabled", &e) == 0);
	json_decref(fields);
	struct suppression_rec *l = NULL;
	size_t n = 0;
	CHECK(store_suppression_list(f.s, 7, 0, 1, &l, &n, &e) == 0 && n == 1);
	int64_t cursor = n ? l[0].id : 0;
	if (n)
		CHECK_STR(l[0].address, "two@example.com");
	suppression_recs_free(l, n);
	CHECK(store_suppression_list(f.s, 7, cursor, 1, &l, &n, &e) == 0 && n == 1);
	if (n)
		CHECK_STR(l[0].address, "one@example.com");
	suppression_recs_free(l, n);
	CHECK(store_suppression_list(f.s, 7, 0, 0, &l, &n, &e) == -1 && e.status == 400);
	CHECK(accept_to(f.s, 7, "TWO@example.com").failed);
	store_fx_close(&f);
}
